//! Streams beyond the differential corpus: blocked XREAD / XREADGROUP readers served, timed out,
//! and woken with Redis's errors when their group or key goes, each scenario run on redis-server
//! 7.0.15 and on ferrodis with the replies compared; and replicas of a ferrodis master (ferrodis
//! and redis-server) that keep every consumer group exact (entries-read, delivery counts of
//! history reads), where Redis 7.0's own replicas lose them.

use crate::harness::{encode, wait_until, Client, Server};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

fn blocked(c: &mut Client) -> i64 {
    let info = c.text(&["INFO", "clients"]);
    info.lines().find_map(|l| l.strip_prefix("blocked_clients:")).and_then(|v| v.trim().parse().ok()).unwrap_or(-1)
}

/// Sends a blocking command on its own connection and waits until the server counts it blocked.
fn block_on(s: &Server, ctl: &mut Client, args: &[&str], already: i64) -> Client {
    let mut c = s.client();
    let a: Vec<&[u8]> = args.iter().map(|x| x.as_bytes()).collect();
    c.send(&encode(&a));
    assert!(wait_until(WAIT, || blocked(ctl) == already + 1), "{:?} did not block", args);
    c
}

/// One scenario's replies, in order.
fn scenario(s: &Server) -> Vec<String> {
    let mut out = Vec::new();
    let mut ctl = s.client();
    let mut say = |r: Vec<u8>| out.push(String::from_utf8_lossy(&r).into_owned());
    // Readers of new entries by "$", of everything after 0, and of a group's new entries, in
    // RESP2 and RESP3, all served by one XADD.
    say(ctl.cmd(&["XGROUP", "CREATE", "s", "g", "$", "MKSTREAM"]));
    let mut a = block_on(s, &mut ctl, &["XREAD", "BLOCK", "0", "STREAMS", "s", "$"], 0);
    let mut b = block_on(s, &mut ctl, &["XREAD", "COUNT", "5", "BLOCK", "0", "STREAMS", "other", "s", "0", "0"], 1);
    let mut r3 = s.client();
    say(r3.cmd(&["HELLO", "3"]).into_iter().take(1).collect());
    r3.send(&encode(&[b"XREADGROUP", b"GROUP", b"g", b"alice", b"BLOCK", b"0", b"STREAMS", b"s", b">"]));
    assert!(wait_until(WAIT, || blocked(&mut ctl) == 3));
    say(ctl.cmd(&["XADD", "s", "1-1", "f", "v"]));
    for c in [&mut a, &mut b, &mut r3] {
        say(c.read_reply().expect("a served reader"));
    }
    say(ctl.cmd(&["XPENDING", "s", "g"]));
    // A reader whose entries came before it blocked waits for the next one.
    let mut d = block_on(s, &mut ctl, &["XREAD", "BLOCK", "0", "STREAMS", "s", "1-1"], 0);
    say(ctl.cmd(&["XADD", "s", "2-1", "n", "2"]));
    say(d.read_reply().expect("served"));
    // A timeout answers nil; inside MULTI nothing blocks.
    say(ctl.cmd(&["XREAD", "BLOCK", "50", "STREAMS", "s", "$"]));
    say(ctl.cmd(&["XREADGROUP", "GROUP", "g", "bob", "BLOCK", "50", "STREAMS", "s", ">"]));
    ctl.cmd(&["MULTI"]);
    ctl.cmd(&["XREAD", "BLOCK", "0", "STREAMS", "s", "$"]);
    say(ctl.cmd(&["EXEC"]));
    // A destroyed group, a deleted stream, a stream replaced by a string: group readers get
    // Redis's errors; a plain reader keeps waiting until its timeout.
    let mut e = block_on(s, &mut ctl, &["XREADGROUP", "GROUP", "g", "bob", "BLOCK", "0", "STREAMS", "s", ">"], 0);
    say(ctl.cmd(&["XGROUP", "DESTROY", "s", "g"]));
    say(e.read_reply().expect("woken"));
    say(ctl.cmd(&["XGROUP", "CREATE", "s", "g", "$"]));
    let mut f = block_on(s, &mut ctl, &["XREADGROUP", "GROUP", "g", "bob", "BLOCK", "0", "STREAMS", "s", ">"], 0);
    let mut p = block_on(s, &mut ctl, &["XREAD", "BLOCK", "1500", "STREAMS", "s", "$"], 1);
    say(ctl.cmd(&["DEL", "s"]));
    say(f.read_reply().expect("woken"));
    say(ctl.cmd(&["SET", "s", "now a string"]));
    say(p.read_reply().expect("timed out"));
    say(ctl.cmd(&["XGROUP", "CREATE", "t", "g", "$", "MKSTREAM"]));
    let mut h = block_on(s, &mut ctl, &["XREADGROUP", "GROUP", "g", "c", "BLOCK", "0", "STREAMS", "t", ">"], 0);
    say(ctl.cmd(&["SET", "t", "x"]));
    say(h.read_reply().expect("woken"));
    // Several readers in arrival order, each served once by one XADD.
    say(ctl.cmd(&["XGROUP", "CREATE", "u", "g", "$", "MKSTREAM"]));
    let mut r1 = block_on(s, &mut ctl, &["XREADGROUP", "GROUP", "g", "c1", "BLOCK", "0", "STREAMS", "u", ">"], 0);
    let mut r2 = block_on(s, &mut ctl, &["XREADGROUP", "GROUP", "g", "c2", "BLOCK", "0", "STREAMS", "u", ">"], 1);
    say(ctl.cmd(&["XADD", "u", "1-1", "a", "1"]));
    say(r1.read_reply().expect("first reader served"));
    say(ctl.cmd(&["XADD", "u", "1-2", "a", "2"]));
    say(r2.read_reply().expect("second reader served"));
    say(ctl.cmd(&["XPENDING", "u", "g"]));
    out
}

#[test]
fn blocked_readers_behave_as_redis_readers() {
    let r = Server::redis(&[]);
    let f = Server::ferrodis(&[]);
    let (a, b) = (scenario(&r), scenario(&f));
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert_eq!(x, y, "reply {i} differs (redis, ferrodis)");
    }
    assert_eq!(a.len(), b.len());
    // The scenario did what it says (not errors all along).
    let all = a.join("");
    for want in
        ["-NOGROUP the consumer group this client was blocked on", "-UNBLOCKED the stream key no longer exists", "$3\r\n1-1\r\n", "*-1\r\n"]
    {
        assert!(all.contains(want), "{want:?} not in Redis's replies:\n{all}");
    }
}

fn synced(master: &Server, replica: &Server) -> bool {
    let (mut m, mut r) = (master.client(), replica.client());
    let field = |c: &mut Client, f: &str| {
        let t = c.text(&["INFO", "replication"]);
        t.lines().find_map(|l| l.strip_prefix(&format!("{f}:"))).unwrap_or_default().trim().to_string()
    };
    wait_until(WAIT, || {
        field(&mut r, "master_link_status") == "up" && field(&mut r, "slave_repl_offset") == field(&mut m, "master_repl_offset")
    })
}

/// XINFO GROUPS and XPENDING (without the idle times) of a stream.
fn groups_state(s: &Server, key: &str) -> Vec<String> {
    let mut c = s.client();
    let mut out = vec![c.text(&["XINFO", "GROUPS", key])];
    for g in ["g", "g2"] {
        let rows = crate::harness::elements(&c.cmd(&["XPENDING", key, g, "-", "+", "100"]));
        for r in rows {
            let e = crate::harness::elements(&r);
            out.push(format!("{} {} {}", String::from_utf8_lossy(&e[0]), String::from_utf8_lossy(&e[1]), String::from_utf8_lossy(&e[3])));
        }
    }
    out
}

#[test]
fn replicas_of_ferrodis_keep_consumer_groups_exact() {
    let m = Server::ferrodis(&["--repl-diskless-sync-delay", "0"]);
    let port = m.port.to_string();
    let rf = Server::ferrodis(&["--replicaof", "127.0.0.1", &port]);
    let rr = Server::redis(&["--replicaof", "127.0.0.1", &port]);
    let mut c = m.client();
    // A reader blocked on a replica is served by the master's XADD as it arrives.
    assert!(synced(&m, &rf), "replica did not sync");
    let mut ctl = rf.client();
    let mut reader = block_on(&rf, &mut ctl, &["XREAD", "BLOCK", "0", "STREAMS", "s", "$"], 0);
    c.cmd(&["XADD", "s", "1-0", "first", "1"]);
    assert!(String::from_utf8_lossy(&reader.read_reply().expect("served on the replica")).contains("first"));
    for i in 1..20 {
        c.cmd(&["XADD", "s", &format!("1-{i}"), "n", &i.to_string()]);
    }
    c.cmd(&["XGROUP", "CREATE", "s", "g", "0"]);
    c.cmd(&["XGROUP", "CREATE", "s", "g2", "$"]);
    c.cmd(&["XREADGROUP", "GROUP", "g", "a", "COUNT", "5", "STREAMS", "s", ">"]);
    c.cmd(&["XREADGROUP", "GROUP", "g", "b", "NOACK", "COUNT", "3", "STREAMS", "s", ">"]);
    // A history read counts a delivery (Redis 7.0 does not replicate that count).
    c.cmd(&["XREADGROUP", "GROUP", "g", "a", "STREAMS", "s", "0"]);
    c.cmd(&["XACK", "s", "g", "1-0"]);
    c.cmd(&["XADD", "s", "2-0", "late", "1"]);
    c.cmd(&["XREADGROUP", "GROUP", "g2", "z", "STREAMS", "s", ">"]);
    c.cmd(&["XDEL", "s", "1-1"]);
    assert!(synced(&m, &rf) && synced(&m, &rr), "replicas did not catch up");
    let want = groups_state(&m, "s");
    assert!(want[0].contains("entries-read\r\n:"), "the master counts entries read: {}", want[0]);
    assert_eq!(groups_state(&rf, "s"), want, "ferrodis replica");
    assert_eq!(groups_state(&rr, "s"), want, "redis-server replica");
    let d = |s: &Server| s.client().text(&["DEBUG", "DIGEST"]);
    assert_eq!(d(&rf), d(&m));
    assert_eq!(d(&rr), d(&m));
}

/// The keyspace events (keyevent channel) a stream workload fires, in order.
fn stream_events(s: &Server) -> Vec<String> {
    let mut ctl = s.client();
    ctl.cmd(&["CONFIG", "SET", "notify-keyspace-events", "KEA"]);
    let mut sub = s.client();
    sub.cmd(&["PSUBSCRIBE", "__keyevent@0__:*"]);
    for c in [
        &["XADD", "s", "1-1", "a", "1"][..],
        &["XGROUP", "CREATE", "s", "g", "0"],
        &["XREADGROUP", "GROUP", "g", "c", "STREAMS", "s", ">"],
        &["XCLAIM", "s", "g", "d", "0", "1-1"],
        &["XAUTOCLAIM", "s", "g", "e", "0", "0"],
        &["XACK", "s", "g", "1-1"],
        &["XGROUP", "CREATECONSUMER", "s", "g", "f"],
        &["XADD", "s", "MAXLEN", "0", "2-1", "a", "1"],
        &["XGROUP", "SETID", "s", "g", "0"],
        &["XGROUP", "DELCONSUMER", "s", "g", "c"],
        &["XGROUP", "DESTROY", "s", "g"],
        &["XSETID", "s", "5-5"],
        &["XADD", "s", "6-1", "a", "1"],
        &["XDEL", "s", "6-1"],
        &["XTRIM", "s", "MAXLEN", "0"],
        &["XGROUP", "CREATE", "n", "g", "$", "MKSTREAM"],
        &["PUBLISH", "__keyevent@0__:end", "x"],
    ] {
        ctl.cmd(c);
    }
    let mut out = Vec::new();
    loop {
        let m = crate::harness::elements(&sub.read_reply().expect("an event"));
        let channel = String::from_utf8_lossy(&crate::persistence::bulk(&m[2])).into_owned();
        if channel.ends_with(":end") {
            return out;
        }
        out.push(format!("{} {}", channel, String::from_utf8_lossy(&crate::persistence::bulk(&m[3]))));
    }
}

#[test]
fn stream_keyspace_events_are_redis_events() {
    let (r, f) = (Server::redis(&[]), Server::ferrodis(&[]));
    let want = stream_events(&r);
    assert!(want.iter().any(|e| e.contains("xgroup-createconsumer")), "{want:?}");
    assert_eq!(stream_events(&f), want);
}

/// One step of a consumer-group workload: `XADD key n-1 v n`, and for every third n the next
/// entry read into group "g" and acknowledged. Acknowledged XADDs and XACKs are recorded; false
/// when the connection failed (the caller locates the master again).
pub(crate) fn workload_step(
    con: &mut redis::Connection,
    key: &str,
    n: u64,
    added: &std::sync::Mutex<Vec<u64>>,
    acked: &std::sync::Mutex<Vec<String>>,
) -> bool {
    let r: redis::RedisResult<String> = redis::cmd("XADD").arg(key).arg(format!("{n}-1")).arg("v").arg(n).query(con);
    match r {
        Ok(_) => added.lock().unwrap().push(n),
        Err(e) if e.to_string().contains("equal or smaller") => {}
        Err(_) => return false,
    }
    if !n.is_multiple_of(3) {
        return true;
    }
    let read: redis::RedisResult<redis::Value> =
        redis::cmd("XREADGROUP").arg("GROUP").arg("g").arg("c").arg("COUNT").arg(1).arg("STREAMS").arg(key).arg(">").query(con);
    let Ok(read) = read else { return false };
    if let Some(id) = first_read_id(&read) {
        match redis::cmd("XACK").arg(key).arg("g").arg(&id).query::<i64>(con) {
            Ok(1) => acked.lock().unwrap().push(id),
            Ok(_) => {}
            Err(_) => return false,
        }
    }
    true
}

/// The ID of the first entry of an XREADGROUP reply ([[key, [[id, fields]]]]).
fn first_read_id(v: &redis::Value) -> Option<String> {
    use redis::FromRedisValue;
    let streams: Vec<redis::Value> = FromRedisValue::from_redis_value(v.clone()).ok()?;
    let stream: Vec<redis::Value> = FromRedisValue::from_redis_value(streams.first()?.clone()).ok()?;
    let entries: Vec<redis::Value> = FromRedisValue::from_redis_value(stream.get(1)?.clone()).ok()?;
    let entry: Vec<redis::Value> = FromRedisValue::from_redis_value(entries.first()?.clone()).ok()?;
    String::from_redis_value(entry.first()?.clone()).ok()
}

/// Every acknowledged XADD is in the stream on the node at `port`, and no acknowledged XACK's
/// entry is pending there.
pub(crate) fn assert_kept(port: u16, key: &str, added: &[u64], acked: &[String]) {
    use redis::FromRedisValue;
    let mut c = crate::harness::conn(port).expect("connect to the new master");
    let missing: Vec<u64> = added
        .iter()
        .copied()
        .filter(|n| {
            let id = format!("{n}-1");
            let r: Vec<redis::Value> = redis::cmd("XRANGE").arg(key).arg(&id).arg(&id).query(&mut c).unwrap_or_default();
            r.is_empty()
        })
        .collect();
    assert!(missing.is_empty(), "{} of {} acknowledged XADDs lost: {:?}", missing.len(), added.len(), &missing[..missing.len().min(10)]);
    let pending: Vec<redis::Value> = redis::cmd("XPENDING").arg(key).arg("g").arg("-").arg("+").arg(1_000_000).query(&mut c).unwrap();
    let pending: std::collections::HashSet<String> = pending
        .into_iter()
        .filter_map(|row| {
            let row: Vec<redis::Value> = FromRedisValue::from_redis_value(row).ok()?;
            String::from_redis_value(row.first()?.clone()).ok()
        })
        .collect();
    let undone: Vec<&String> = acked.iter().filter(|id| pending.contains(*id)).collect();
    assert!(undone.is_empty(), "{} of {} acknowledged XACKs undone: {:?}", undone.len(), acked.len(), undone);
    assert!(acked.len() > 20 && added.len() > 100, "a workload too small to tell: {} XADDs, {} XACKs", added.len(), acked.len());
}
