//! Replication, with Debian's redis-server 7.0.15 on either side: full sync, live writes of every
//! type (compared key by key and by DEBUG DIGEST), partial resync after a cut link, PSYNC2 after
//! a promotion, a restarted replica continuing from its RDB, a backlog too small for the gap,
//! read-only replicas, WAIT, ROLE, min-replicas-to-write, replicas that do not expire keys, and
//! the synchronous acknowledgement (`sync-replicas`). Every wait has a deadline.

use crate::harness::{launch_at, tempdir, wait_until, Client, Server, FERRODIS};
use crate::persistence::{assert_same_contents as assert_same, fill};
use std::time::Duration;

const SYNC_WAIT: Duration = Duration::from_secs(30);

fn info(c: &mut Client, field: &str) -> String {
    let text = c.text(&["INFO", "all"]);
    text.lines().find_map(|l| l.strip_prefix(&format!("{field}:"))).unwrap_or_default().trim().to_string()
}

fn info_i(c: &mut Client, field: &str) -> i64 {
    info(c, field).parse().unwrap_or(-1)
}

fn start(bin: &str, args: &[&str]) -> Server {
    let mut a = vec!["--repl-diskless-sync-delay", "0"];
    a.extend_from_slice(args);
    if bin == FERRODIS {
        Server::ferrodis(&a)
    } else {
        Server::redis(&a)
    }
}

fn replica_of(bin: &str, master: &Server, extra: &[&str]) -> Server {
    let port = master.port.to_string();
    let mut a = vec!["--replicaof", "127.0.0.1", port.as_str()];
    a.extend_from_slice(extra);
    start(bin, &a)
}

/// Waits until the replica's link is up and it has applied everything the master has written.
fn wait_synced(master: &Server, replica: &Server) {
    let (mut m, mut r) = (master.client(), replica.client());
    let ok = wait_until(SYNC_WAIT, || {
        info(&mut r, "master_link_status") == "up" && info_i(&mut r, "slave_repl_offset") == info_i(&mut m, "master_repl_offset")
    });
    assert!(ok, "replica did not catch up;\nmaster log:\n{}\nreplica log:\n{}", master.log(), replica.log());
}

/// Writes whose effects must be replicated, not re-executed: expiries, random pops, floats,
/// scripts, transactions, a blocking pop served later, functions, every type, several databases.
fn live_writes(m: &Server, round: usize) {
    let mut c = m.client();
    let r = |s: &str| format!("{s}{round}");
    let ok = |reply: Vec<u8>, what: &str| assert!(!reply.starts_with(b"-"), "{what}: {}", String::from_utf8_lossy(&reply));
    ok(c.cmd(&["SET", &r("live-str"), "v", "EX", "1000"]), "set ex");
    ok(c.cmd(&["SADD", &r("live-set"), "a", "b", "c", "d", "e", "f"]), "sadd");
    ok(c.cmd(&["SPOP", &r("live-set"), "2"]), "spop");
    ok(c.cmd(&["INCRBYFLOAT", &r("live-float"), "10.5"]), "incrbyfloat");
    ok(c.cmd(&["INCRBYFLOAT", &r("live-float"), "0.1"]), "incrbyfloat");
    ok(
        c.cmd(&[
            "EVAL",
            "redis.call('set', KEYS[1], math.random()) redis.call('rpush', KEYS[2], 'x', 'y')",
            "2",
            &r("live-script"),
            &r("live-list"),
        ]),
        "eval",
    );
    ok(c.cmd(&["MULTI"]), "multi");
    c.cmd(&["HSET", &r("live-hash"), "f", "1", "g", "2"]);
    c.cmd(&["ZADD", &r("live-zset"), "1", "a", "2", "b"]);
    c.cmd(&["LPOP", &r("live-list")]);
    ok(c.cmd(&["EXEC"]), "exec");
    ok(c.cmd(&["SELECT", "1"]), "select");
    ok(c.cmd(&["SET", &r("live-db1"), "one"]), "set db1");
    ok(c.cmd(&["PEXPIRE", "db1key", "500000"]), "pexpire");
    ok(c.cmd(&["SELECT", "0"]), "select");
    ok(c.cmd(&["DEL", "str", "int"]), "del");
    ok(c.cmd(&["APPEND", "long", "tail"]), "append");
    ok(
        c.cmd(&[
            "FUNCTION",
            "LOAD",
            "REPLACE",
            "#!lua name=live\nredis.register_function{function_name='live_f', callback=function() return 7 end, flags={'no-writes'}}",
        ]),
        "function",
    );
    // Streams: generated IDs, an approximate trim, group reads, acknowledgements, claims (their
    // effects are what replicates: XCLAIM ... LASTID, XGROUP SETID, CREATECONSUMER).
    let s = r("live-stream");
    for i in 0..30 {
        ok(c.cmd(&["XADD", &s, "MAXLEN", "~", "20", "*", "n", &i.to_string()]), "xadd");
    }
    ok(c.cmd(&["XGROUP", "CREATE", &s, "g", "0"]), "xgroup create");
    ok(c.cmd(&["XREADGROUP", "GROUP", "g", "c1", "COUNT", "4", "STREAMS", &s, ">"]), "xreadgroup");
    ok(c.cmd(&["XREADGROUP", "GROUP", "g", "c2", "NOACK", "COUNT", "2", "STREAMS", &s, ">"]), "xreadgroup noack");
    ok(c.cmd(&["XAUTOCLAIM", &s, "g", "c3", "0", "0", "COUNT", "1"]), "xautoclaim");
    ok(c.cmd(&["XGROUP", "CREATE", &s, "g2", "$"]), "xgroup create $");
    ok(c.cmd(&["XTRIM", &s, "MAXLEN", "~", "5"]), "xtrim");
    // A group read blocked until an entry arrives.
    let mut reader = m.client();
    reader.send(&crate::harness::encode(&[b"XREADGROUP", b"GROUP", b"g2", b"c9", b"BLOCK", b"10000", b"STREAMS", s.as_bytes(), b">"]));
    assert!(wait_until(SYNC_WAIT, || info_i(&mut c, "blocked_clients") == 1));
    ok(c.cmd(&["XADD", &s, "*", "late", "1"]), "xadd late");
    assert!(reader.read_reply().expect("XREADGROUP reply").starts_with(b"*1"));
    // A blocking pop served by a later push: the pop reaches the replica as its effect.
    let mut blocked = m.client();
    blocked.send(&crate::harness::encode(&[b"BLPOP", r("live-queue").as_bytes(), b"10"]));
    assert!(wait_until(SYNC_WAIT, || info_i(&mut c, "blocked_clients") == 1));
    ok(c.cmd(&["RPUSH", &r("live-queue"), "job1", "job2"]), "rpush");
    assert!(blocked.read_reply().expect("BLPOP reply").starts_with(b"*2"));
}

/// Master and replica of the given kinds: full sync of a filled dataset, live writes, then a cut
/// link that must be resumed with a partial resync.
fn replicate(master_bin: &str, replica_bin: &str) {
    let master = start(master_bin, &[]);
    let mut mc = master.client();
    fill(&mut mc);
    let replica = replica_of(replica_bin, &master, &[]);
    wait_synced(&master, &replica);
    assert_same(&master, &replica);
    if replica_bin == FERRODIS {
        // repl-diskless-load disabled: the received payload is also the replica's dump.rdb.
        assert!(replica.dir.join("dump.rdb").exists(), "{}", replica.log());
    }
    live_writes(&master, 1);
    wait_synced(&master, &replica);
    assert_same(&master, &replica);
    assert_eq!(replica.client().cmd(&["FCALL_RO", "live_f", "0"]), b":7\r\n");

    // Cut the link: the replica reconnects and continues from the backlog.
    let (full, partial) = (info_i(&mut mc, "sync_full"), info_i(&mut mc, "sync_partial_ok"));
    let mut rc = replica.client();
    assert_eq!(rc.text(&["CLIENT", "KILL", "TYPE", "master"]), ":1\r\n");
    live_writes(&master, 2);
    wait_synced(&master, &replica);
    assert_same(&master, &replica);
    assert_eq!(info_i(&mut mc, "sync_full"), full, "a cut link resyncs partially");
    assert_eq!(info_i(&mut mc, "sync_partial_ok"), partial + 1);
}

#[test]
fn ferrodis_replicates_to_ferrodis() {
    replicate(FERRODIS, FERRODIS);
}

#[test]
fn ferrodis_replica_of_redis_server() {
    replicate("redis-server", FERRODIS);
}

#[test]
fn redis_server_replica_of_ferrodis() {
    replicate(FERRODIS, "redis-server");
}

#[test]
fn read_only_replica_role_wait_and_min_replicas() {
    let master = start(FERRODIS, &[]);
    let replica = replica_of(FERRODIS, &master, &[]);
    let (mut m, mut r) = (master.client(), replica.client());
    wait_synced(&master, &replica);
    assert_eq!(r.text(&["SET", "k", "v"]), "-READONLY You can't write against a read only replica.\r\n");
    assert!(r.text(&["WAIT", "1", "0"]).starts_with("-ERR WAIT cannot be used with replica instances."));
    assert_eq!(m.text(&["SET", "k", "v"]), "+OK\r\n");
    assert_eq!(m.text(&["WAIT", "1", "5000"]), ":1\r\n");
    assert_eq!(r.text(&["GET", "k"]), "$1\r\nv\r\n");
    // Two replicas asked, one exists: WAIT returns when its timeout passes.
    assert_eq!(m.text(&["WAIT", "2", "100"]), ":1\r\n");
    let role = m.text(&["ROLE"]);
    assert!(role.starts_with("*3\r\n$6\r\nmaster\r\n:"), "{role}");
    assert!(role.contains(&format!("$9\r\n127.0.0.1\r\n${}\r\n{}\r\n", replica.port.to_string().len(), replica.port)), "{role}");
    let role = r.text(&["ROLE"]);
    let expect = format!("*5\r\n$5\r\nslave\r\n$9\r\n127.0.0.1\r\n:{}\r\n$9\r\nconnected\r\n:", master.port);
    assert!(role.starts_with(&expect), "{role}");
    assert_eq!(info(&mut r, "role"), "slave");
    assert_eq!(info(&mut m, "connected_slaves"), "1");
    assert!(info(&mut m, "slave0").starts_with(&format!("ip=127.0.0.1,port={},state=online,offset=", replica.port)));
    // min-replicas-to-write: with fewer good replicas than asked, writes are refused.
    assert_eq!(m.text(&["CONFIG", "SET", "min-replicas-to-write", "2"]), "+OK\r\n");
    assert_eq!(m.text(&["SET", "k", "w"]), "-NOREPLICAS Not enough good replicas to write.\r\n");
    assert_eq!(m.text(&["CONFIG", "SET", "min-replicas-to-write", "1"]), "+OK\r\n");
    assert_eq!(m.text(&["SET", "k", "w"]), "+OK\r\n");
    // A writable replica takes local writes.
    assert_eq!(r.text(&["CONFIG", "SET", "replica-read-only", "no"]), "+OK\r\n");
    assert_eq!(r.text(&["SET", "local", "1"]), "+OK\r\n");
}

#[test]
fn a_replica_hides_expired_keys_and_waits_for_the_masters_del() {
    let master = start(FERRODIS, &[]);
    let replica = replica_of(FERRODIS, &master, &[]);
    let (mut m, mut r) = (master.client(), replica.client());
    wait_synced(&master, &replica);
    assert_eq!(m.text(&["DEBUG", "SET-ACTIVE-EXPIRE", "0"]), "+OK\r\n");
    assert_eq!(m.text(&["SET", "short", "v", "PX", "50"]), "+OK\r\n");
    wait_synced(&master, &replica);
    std::thread::sleep(Duration::from_millis(120));
    // Expired: the replica's clients do not see it, but it stays until the master's DEL.
    assert_eq!(r.text(&["GET", "short"]), "$-1\r\n");
    assert_eq!(r.text(&["DBSIZE"]), ":1\r\n");
    assert_eq!(m.text(&["GET", "short"]), "$-1\r\n");
    wait_synced(&master, &replica);
    assert_eq!(r.text(&["DBSIZE"]), ":0\r\n");
}

#[test]
fn promotion_keeps_partial_resync_for_the_others_psync2() {
    let master = start(FERRODIS, &[]);
    fill(&mut master.client());
    let r1 = replica_of(FERRODIS, &master, &[]);
    let r2 = replica_of(FERRODIS, &master, &[]);
    wait_synced(&master, &r1);
    wait_synced(&master, &r2);
    live_writes(&master, 1);
    wait_synced(&master, &r1);
    wait_synced(&master, &r2);
    let (mut c1, mut c2, mut cm) = (r1.client(), r2.client(), master.client());
    let old_id = info(&mut cm, "master_replid");
    // The master goes quiet; r1 is promoted and r2, then the old master, follow it.
    assert_eq!(c1.text(&["REPLICAOF", "NO", "ONE"]), "+OK\r\n");
    assert_eq!(info(&mut c1, "master_replid2"), old_id);
    assert_ne!(info(&mut c1, "master_replid"), old_id);
    let port1 = r1.port.to_string();
    assert_eq!(c2.text(&["REPLICAOF", "127.0.0.1", &port1]), "+OK\r\n");
    assert_eq!(cm.text(&["REPLICAOF", "127.0.0.1", &port1]), "+OK\r\n");
    wait_synced(&r1, &r2);
    wait_synced(&r1, &master);
    live_writes(&r1, 2);
    wait_synced(&r1, &r2);
    wait_synced(&r1, &master);
    assert_same(&r1, &r2);
    assert_same(&r1, &master);
    assert_eq!(info_i(&mut c1, "sync_full"), 0, "r1 log:\n{}", r1.log());
    assert_eq!(info_i(&mut c1, "sync_partial_ok"), 2);
    assert_eq!(info(&mut c2, "master_replid"), info(&mut c1, "master_replid"));
}

#[test]
fn a_restarted_replica_continues_with_a_partial_resync() {
    let master = start(FERRODIS, &[]);
    fill(&mut master.client());
    let dir = tempdir("replica-restart");
    let port = master.port.to_string();
    let args = ["--replicaof", "127.0.0.1", port.as_str()];
    let mut replica = Server::ferrodis_in(dir.clone(), &args);
    wait_synced(&master, &replica);
    live_writes(&master, 1);
    wait_synced(&master, &replica);
    // SHUTDOWN saves an RDB holding repl-id and repl-offset.
    replica.client().send(&crate::harness::encode(&[b"SHUTDOWN", b"SAVE"]));
    assert!(replica.wait_exit(SYNC_WAIT).is_some());
    let dir2 = tempdir("replica-restarted");
    std::fs::copy(dir.join("dump.rdb"), dir2.join("dump.rdb")).expect("the replica saved dump.rdb");
    drop(replica);
    let mut mc = master.client();
    live_writes(&master, 2);
    let replica = Server::ferrodis_in(dir2, &args);
    wait_synced(&master, &replica);
    assert_same(&master, &replica);
    assert_eq!(info_i(&mut mc, "sync_full"), 1, "replica log:\n{}", replica.log());
    assert_eq!(info_i(&mut mc, "sync_partial_ok"), 1);
}

#[test]
fn a_gap_larger_than_the_backlog_means_a_full_resync() {
    let master = start(FERRODIS, &["--repl-backlog-size", "16kb"]);
    fill(&mut master.client());
    let replica = replica_of(FERRODIS, &master, &[]);
    wait_synced(&master, &replica);
    let mut mc = master.client();
    assert_eq!(replica.client().text(&["CLIENT", "KILL", "TYPE", "master"]), ":1\r\n");
    // 200 KB written while the replica is away (it reconnects after a second).
    let mut pipe = Vec::new();
    for i in 0..2000 {
        pipe.extend(crate::harness::encode(&[b"SET", format!("gap{i}").as_bytes(), &[b'x'; 100]]));
    }
    mc.send(&pipe);
    for _ in 0..2000 {
        assert_eq!(mc.read_reply().unwrap(), b"+OK\r\n");
    }
    wait_synced(&master, &replica);
    assert_same(&master, &replica);
    assert_eq!(info_i(&mut mc, "sync_full"), 2, "master log:\n{}", master.log());
    assert_eq!(info_i(&mut mc, "sync_partial_err"), 1);
}

#[test]
fn full_sync_of_many_keys_while_writes_continue() {
    let master = start(FERRODIS, &[]);
    let mut mc = master.client();
    assert_eq!(mc.text(&["DEBUG", "POPULATE", "200000", "key", "64"]), "+OK\r\n");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (port, stop) = (master.port, stop.clone());
        std::thread::spawn(move || {
            let mut c = Client::connect(port);
            let mut i = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && i < 1_000_000 {
                c.cmd(&["INCR", "counter"]);
                c.cmd(&["SET", &format!("key:{}", i % 200_000), &i.to_string()]);
                i += 1;
            }
            i
        })
    };
    let replica = replica_of(FERRODIS, &master, &[]);
    let mut rc = replica.client();
    assert!(wait_until(SYNC_WAIT, || info(&mut rc, "master_link_status") == "up"), "{}\nmaster:\n{}", replica.log(), master.log());
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let n = writer.join().unwrap();
    assert!(n > 0);
    wait_synced(&master, &replica);
    assert_eq!(rc.text(&["GET", "counter"]), format!("${}\r\n{}\r\n", n.to_string().len(), n));
    assert_eq!(mc.cmd(&["DEBUG", "DIGEST"]), rc.cmd(&["DEBUG", "DIGEST"]));
    assert_eq!(rc.text(&["DBSIZE"]), ":200001\r\n");
}

#[test]
fn sync_replicas_acknowledges_a_write_only_once_a_replica_has_it() {
    let master = start(FERRODIS, &["--sync-replicas", "1", "--sync-replicas-timeout", "300"]);
    let mut mc = master.client();
    // No replica: the write is applied, but its acknowledgement is an error, not a lie.
    let r = mc.text(&["SET", "alone", "1"]);
    assert!(r.starts_with("-NOREPLICAS Not enough replicas acknowledged the write"), "{r}");
    // In a pipeline, each write's reply is the error and the reads' replies stay.
    mc.send(&[crate::harness::encode(&[b"GET", b"alone"]), crate::harness::encode(&[b"INCR", b"alone"])].concat());
    assert_eq!(mc.read_reply().unwrap(), b"$1\r\n1\r\n");
    assert!(mc.read_reply().unwrap().starts_with(b"-NOREPLICAS"));
    assert_eq!(mc.text(&["GET", "alone"]), "$1\r\n2\r\n");
    // With a replica, a generous timeout: a slow machine must not turn the checks below into
    // timeouts (the property tested is "acknowledged implies on the replica", not speed).
    assert_eq!(mc.text(&["CONFIG", "SET", "sync-replicas-timeout", "30000"]), "+OK\r\n");
    let replica = replica_of(FERRODIS, &master, &[]);
    wait_synced(&master, &replica);
    let mut rc = replica.client();
    for i in 1..=200 {
        assert_eq!(mc.text(&["INCR", "n"]), format!(":{i}\r\n"));
        // Acknowledged means the replica has applied it: read it there right away.
        assert_eq!(rc.text(&["GET", "n"]), format!("${}\r\n{i}\r\n", i.to_string().len()));
    }
    // A pipeline of writes is acknowledged as a whole once its last write is on the replica.
    let mut pipe = Vec::new();
    for _ in 0..50 {
        pipe.extend(crate::harness::encode(&[b"INCR", b"p"]));
    }
    mc.send(&pipe);
    for i in 1..=50 {
        assert_eq!(mc.read_reply().unwrap(), format!(":{i}\r\n").into_bytes());
    }
    assert_eq!(rc.text(&["GET", "p"]), "$2\r\n50\r\n");
    // Reads do not wait; a transaction's reply waits like a write.
    assert_eq!(mc.text(&["GET", "n"]), "$3\r\n200\r\n");
    mc.cmd(&["MULTI"]);
    mc.cmd(&["INCR", "n"]);
    assert_eq!(mc.text(&["EXEC"]), "*1\r\n:201\r\n");
    assert_eq!(rc.text(&["GET", "n"]), "$3\r\n201\r\n");
}

#[test]
fn failover_command_switches_roles_without_losing_writes() {
    let master = start(FERRODIS, &[]);
    fill(&mut master.client());
    let replica = replica_of(FERRODIS, &master, &[]);
    wait_synced(&master, &replica);
    let (mut m, mut r) = (master.client(), replica.client());
    assert_eq!(r.text(&["FAILOVER"]), "-ERR FAILOVER is not valid when server is a replica.\r\n");
    assert_eq!(m.text(&["FAILOVER", "ABORT"]), "-ERR No failover in progress.\r\n");
    assert_eq!(m.text(&["FAILOVER", "TO", "127.0.0.1", "1"]), "-ERR FAILOVER target HOST and PORT is not a replica.\r\n");
    // Bad arguments get Redis's errors (compared with redis-server 7.0.15).
    assert_eq!(m.text(&["FAILOVER", "TIMEOUT", "x"]), "-ERR value is not an integer or out of range\r\n");
    assert_eq!(m.text(&["FAILOVER", "TIMEOUT", "0"]), "-ERR FAILOVER timeout must be greater than 0\r\n");
    assert_eq!(m.text(&["FAILOVER", "ABORT", "TIMEOUT", "5"]), "-ERR syntax error\r\n");
    assert_eq!(m.text(&["PSYNC", "a", "b"]), "-ERR value is not an integer or out of range\r\n");
    assert_eq!(m.text(&["REPLCONF", "foo", "bar"]), "-ERR Unrecognized REPLCONF option: foo\r\n");
    assert_eq!(m.text(&["WAIT", "1", "-1"]), "-ERR timeout is negative\r\n");
    live_writes(&master, 1);
    let port = replica.port.to_string();
    assert_eq!(m.text(&["FAILOVER", "TO", "127.0.0.1", &port, "TIMEOUT", "10000"]), "+OK\r\n");
    let switched = wait_until(SYNC_WAIT, || {
        info(&mut r, "role") == "master" && info(&mut m, "role") == "slave" && info(&mut m, "master_link_status") == "up"
    });
    assert!(switched, "master log:\n{}\nreplica log:\n{}", master.log(), replica.log());
    assert_eq!(info(&mut m, "master_failover_state"), "no-failover");
    live_writes(&replica, 2);
    wait_synced(&replica, &master);
    assert_same(&replica, &master);
    assert_eq!(info_i(&mut r, "sync_full"), 0, "the old master continues with a partial resync");
    assert_eq!(info_i(&mut r, "sync_partial_ok"), 1);
}

#[test]
fn a_replica_paused_past_repl_timeout_is_dropped_and_resumes_partially() {
    let master = start(FERRODIS, &["--repl-timeout", "2"]);
    fill(&mut master.client());
    let replica = replica_of(FERRODIS, &master, &["--repl-timeout", "2"]);
    wait_synced(&master, &replica);
    let mut m = master.client();
    // SIGSTOP: a hang, not a crash. The master drops it once repl-timeout passes without an ACK.
    let pid = replica.child.id().to_string();
    assert!(std::process::Command::new("kill").args(["-STOP", &pid]).status().unwrap().success());
    let dropped = wait_until(SYNC_WAIT, || info(&mut m, "connected_slaves") == "0");
    live_writes(&master, 1);
    assert!(std::process::Command::new("kill").args(["-CONT", &pid]).status().unwrap().success());
    assert!(dropped, "master log:\n{}", master.log());
    wait_synced(&master, &replica);
    assert_same(&master, &replica);
    assert_eq!(info_i(&mut m, "sync_full"), 1);
    assert_eq!(info_i(&mut m, "sync_partial_ok"), 1, "master log:\n{}", master.log());
}

#[test]
fn a_restarted_master_continues_its_replicas_partially() {
    let dir = tempdir("master-restart");
    let master = Server::ferrodis_in(dir.clone(), &["--repl-diskless-sync-delay", "0"]);
    fill(&mut master.client());
    let replica = replica_of(FERRODIS, &master, &[]);
    wait_synced(&master, &replica);
    live_writes(&master, 1);
    wait_synced(&master, &replica);
    // SHUTDOWN SAVE keeps the replication id and offset in dump.rdb; the master restarts on the
    // same port with it, and its replica continues where it was.
    let port = master.port;
    master.client().send(&crate::harness::encode(&[b"SHUTDOWN", b"SAVE"]));
    let mut master = master;
    assert!(master.wait_exit(SYNC_WAIT).is_some());
    let dir2 = tempdir("master-restarted");
    std::fs::copy(dir.join("dump.rdb"), dir2.join("dump.rdb")).expect("the master saved dump.rdb");
    drop(master);
    let master = launch_at(FERRODIS, port, &[], dir2);
    master.wait_ready();
    wait_synced(&master, &replica);
    live_writes(&master, 2);
    wait_synced(&master, &replica);
    assert_same(&master, &replica);
    let mut m = master.client();
    assert_eq!(info_i(&mut m, "sync_full"), 0, "master log:\n{}", master.log());
    assert_eq!(info_i(&mut m, "sync_partial_ok"), 1);
}

#[test]
fn a_replica_that_stops_reading_is_dropped_at_its_output_limit_and_resyncs() {
    let master = start(FERRODIS, &["--client-output-buffer-limit", "replica 2mb 0 0", "--repl-backlog-size", "16kb"]);
    fill(&mut master.client());
    let replica = replica_of(FERRODIS, &master, &[]);
    wait_synced(&master, &replica);
    let mut m = master.client();
    let pid = replica.child.id().to_string();
    assert!(std::process::Command::new("kill").args(["-STOP", &pid]).status().unwrap().success());
    // 40 MB while the replica reads nothing: far past the socket buffers and the 2 MB limit.
    let value = vec![b'v'; 100_000];
    let mut dropped = false;
    for i in 0..400 {
        assert_eq!(m.cmd_bytes(&[b"SET", format!("big{}", i % 50).as_bytes(), &value]), b"+OK\r\n");
        if i % 20 == 19 && info(&mut m, "connected_slaves") == "0" {
            dropped = true;
            break;
        }
    }
    let dropped = dropped || wait_until(SYNC_WAIT, || info(&mut m, "connected_slaves") == "0");
    assert!(std::process::Command::new("kill").args(["-CONT", &pid]).status().unwrap().success());
    assert!(dropped, "master log:\n{}", master.log());
    assert!(info_i(&mut m, "client_output_buffer_limit_disconnections") >= 1);
    // The journal kept at most about the limit for it.
    assert!(info_i(&mut m, "repl_backlog_histlen") < 4 * 1024 * 1024, "{}", info(&mut m, "repl_backlog_histlen"));
    wait_synced(&master, &replica);
    assert_same(&master, &replica);
    assert_eq!(info_i(&mut m, "sync_full"), 2, "too far behind for the backlog: a full resync");
}

#[test]
fn a_replica_of_a_replica_gets_the_top_masters_stream() {
    let master = start(FERRODIS, &[]);
    fill(&mut master.client());
    let middle = replica_of(FERRODIS, &master, &[]);
    wait_synced(&master, &middle);
    let leaf = replica_of(FERRODIS, &middle, &[]);
    wait_synced(&middle, &leaf);
    live_writes(&master, 1);
    wait_synced(&master, &middle);
    wait_synced(&master, &leaf);
    assert_same(&master, &leaf);
    let (mut m, mut l) = (master.client(), leaf.client());
    assert_eq!(info(&mut l, "master_replid"), info(&mut m, "master_replid"));
    assert_eq!(info(&mut l, "master_repl_offset"), info(&mut m, "master_repl_offset"));
    assert_eq!(info(&mut middle.client(), "connected_slaves"), "1");
}

#[test]
fn repl_backlog_ttl_frees_the_backlog_of_a_master_left_alone() {
    let master = start(FERRODIS, &["--repl-backlog-ttl", "1"]);
    fill(&mut master.client());
    let replica = replica_of(FERRODIS, &master, &[]);
    wait_synced(&master, &replica);
    let mut m = master.client();
    let id = info(&mut m, "master_replid");
    assert_eq!(replica.client().text(&["REPLICAOF", "NO", "ONE"]), "+OK\r\n");
    assert!(wait_until(SYNC_WAIT, || info(&mut m, "repl_backlog_active") == "0"), "{}", master.log());
    assert_ne!(info(&mut m, "master_replid"), id, "a freed history takes a new id");
    // Coming back, the replica cannot continue: a full resync.
    let port = master.port.to_string();
    assert_eq!(replica.client().text(&["REPLICAOF", "127.0.0.1", &port]), "+OK\r\n");
    wait_synced(&master, &replica);
    assert_same(&master, &replica);
    assert_eq!(info_i(&mut m, "sync_full"), 2);
}

#[test]
fn a_master_restarted_from_its_aof_is_followed_again() {
    let dir = tempdir("master-aof");
    let master = Server::ferrodis_in(dir.clone(), &["--appendonly", "yes", "--appendfsync", "always", "--repl-diskless-sync-delay", "0"]);
    fill(&mut master.client());
    let replica = replica_of(FERRODIS, &master, &[]);
    wait_synced(&master, &replica);
    live_writes(&master, 1);
    wait_synced(&master, &replica);
    let port = master.port;
    let mut master = master;
    master.child.kill().expect("kill -9 the master");
    let _ = master.child.wait();
    let dir2 = tempdir("master-aof-restarted");
    let copy = std::process::Command::new("cp").arg("-r").arg(dir.join("appendonlydir")).arg(&dir2).status().expect("cp");
    assert!(copy.success());
    drop(master);
    let master = launch_at(FERRODIS, port, &["--appendonly", "yes", "--repl-diskless-sync-delay", "0"], dir2);
    master.wait_ready();
    // The replica reconnects by itself and converges on the master's (AOF-recovered) data.
    wait_synced(&master, &replica);
    live_writes(&master, 2);
    wait_synced(&master, &replica);
    assert_same(&master, &replica);
}
