//! RDB persistence against Debian's redis-server 7.0.15: a dump.rdb written by either server
//! loads into the other with equal contents (compared key by key: type, value, absolute expiry,
//! per database; and DEBUG DIGEST); redis-check-rdb accepts ours; DUMP payloads restore both
//! ways; a restart keeps the data; a failed save keeps the old file and turns on MISCONF; a
//! corrupt file stops the start with its offset named.

use crate::harness::{elements, encode, launch, tempdir, Client, Server, FERRODIS};
use std::collections::BTreeMap;
use std::time::Duration;

type Contents = BTreeMap<(usize, Vec<u8>), (String, Vec<Vec<u8>>, Vec<u8>)>;

/// The payload of a bulk string reply.
pub(crate) fn bulk(r: &[u8]) -> Vec<u8> {
    let e = r.windows(2).position(|w| w == b"\r\n").expect("header");
    r[e + 2..r.len() - 2].to_vec()
}

/// Every key of the given databases: its type, its value (hash fields and set members sorted)
/// and its absolute expiry (PEXPIRETIME).
pub(crate) fn contents(c: &mut Client, dbs: &[usize]) -> Contents {
    let mut out = BTreeMap::new();
    for &db in dbs {
        c.cmd(&["SELECT", &db.to_string()]);
        for k in elements(&c.cmd(&["KEYS", "*"])).iter().map(|e| bulk(e)) {
            let t = String::from_utf8_lossy(&c.cmd_bytes(&[b"TYPE", &k])).trim().trim_start_matches('+').to_string();
            let mut v: Vec<Vec<u8>> = match t.as_str() {
                "string" => vec![c.cmd_bytes(&[b"GET", &k])],
                "list" => elements(&c.cmd_bytes(&[b"LRANGE", &k, b"0", b"-1"])),
                "set" => elements(&c.cmd_bytes(&[b"SMEMBERS", &k])),
                "zset" => elements(&c.cmd_bytes(&[b"ZRANGE", &k, b"0", b"-1", b"WITHSCORES"])),
                "hash" => elements(&c.cmd_bytes(&[b"HGETALL", &k])).chunks(2).map(|p| p.concat()).collect(),
                "stream" => stream_state(c, &k),
                other => panic!("unexpected type {other}"),
            };
            if t == "set" || t == "hash" {
                v.sort();
            }
            let exp = c.cmd_bytes(&[b"PEXPIRETIME", &k]);
            out.insert((db, k), (t, v, exp));
        }
    }
    c.cmd(&["SELECT", "0"]);
    out
}

/// A stream as its replies show it, without what depends on the clock: the entries, the
/// counters of XINFO STREAM, XINFO GROUPS (name, consumers, pending, last-delivered-id), and per
/// group the pending entries (ID, consumer, delivery count) and the consumers with their pending
/// counts.
pub(crate) fn stream_state(c: &mut Client, k: &[u8]) -> Vec<Vec<u8>> {
    let mut v = vec![c.cmd_bytes(&[b"XRANGE", k, b"-", b"+"])];
    let info = elements(&c.cmd_bytes(&[b"XINFO", b"STREAM", k]));
    for pair in info.chunks(2) {
        let name = bulk(&pair[0]);
        if [&b"length"[..], b"last-generated-id", b"max-deleted-entry-id", b"entries-added", b"recorded-first-entry-id", b"groups"]
            .contains(&name.as_slice())
        {
            v.push([name, pair[1].clone()].concat());
        }
    }
    // Without entries-read and lag: Redis 7.0.15 does not replicate entries-read (its replicas
    // show nil where the master counts), so a Redis master and its replica differ there.
    let groups = c.cmd_bytes(&[b"XINFO", b"GROUPS", k]);
    for g in elements(&groups) {
        let fields = elements(&g);
        v.push(fields[..8].concat());
        let g = bulk(&fields[1]);
        for row in elements(&c.cmd_bytes(&[b"XPENDING", k, &g, b"-", b"+", b"1000000"])) {
            let e = elements(&row);
            v.push([e[0].clone(), e[1].clone(), e[3].clone()].concat());
        }
        for con in elements(&c.cmd_bytes(&[b"XINFO", b"CONSUMERS", k, &g])) {
            let e = elements(&con);
            v.push([e[1].clone(), e[3].clone()].concat());
        }
    }
    v
}

pub(crate) fn digests(c: &mut Client, dbs: &[usize]) -> Vec<Vec<u8>> {
    let d = dbs
        .iter()
        .map(|db| {
            c.cmd(&["SELECT", &db.to_string()]);
            c.cmd(&["DEBUG", "DIGEST"])
        })
        .collect();
    c.cmd(&["SELECT", "0"]);
    d
}

pub(crate) const DBS: &[usize] = &[0, 1, 5];

/// Fills a server with every type, small and large, in every encoding, with expiries, across
/// several databases, and a FUNCTION library.
pub(crate) fn fill(c: &mut Client) {
    let mut cmds: Vec<Vec<Vec<u8>>> = Vec::new();
    let mut add = |args: &[&[u8]]| cmds.push(args.iter().map(|a| a.to_vec()).collect());
    add(&[b"SET", b"str", b"hello"]);
    add(&[b"SET", b"int", b"12345"]);
    add(&[b"SET", b"neg", b"-7"]);
    add(&[b"SET", b"bigint", b"1234567890123"]);
    add(&[b"SET", b"long", &[b'a'; 1000]]);
    let binary: Vec<u8> = (0..=255u8).chain(0..=255u8).collect();
    add(&[b"SET", b"binary", &binary]);
    add(&[b"SET", b"empty", b""]);
    add(&[b"RPUSH", b"smalllist", b"a", b"b", b"1", b"-3", b"1000", b"70000"]);
    let items: Vec<Vec<u8>> = (0..3000).map(|i| format!("element-{}-{}", i, "x".repeat(i % 50)).into_bytes()).collect();
    for chunk in items.chunks(500) {
        let mut a: Vec<&[u8]> = vec![b"RPUSH", b"biglist"];
        a.extend(chunk.iter().map(|v| v.as_slice()));
        add(&a);
    }
    add(&[b"RPUSH", b"biglist", &[b'p'; 10000]]);
    add(&[b"HSET", b"smallhash", b"f1", b"v1", b"n", b"5"]);
    let fields: Vec<Vec<u8>> = (0..300).flat_map(|i| [format!("field{i}").into_bytes(), format!("value{i}").into_bytes()]).collect();
    let mut a: Vec<&[u8]> = vec![b"HSET", b"bighash"];
    a.extend(fields.iter().map(|v| v.as_slice()));
    add(&a);
    add(&[b"HSET", b"widehash", b"f", &[b'w'; 100]]);
    add(&[b"SADD", b"intset", b"1", b"2", b"3", b"-5", b"100000", b"5000000000"]);
    add(&[b"SADD", b"strset", b"a", b"b", b"c"]);
    let ints: Vec<Vec<u8>> = (0..1000).map(|i| (i * 7).to_string().into_bytes()).collect();
    let mut a: Vec<&[u8]> = vec![b"SADD", b"bigintset"];
    a.extend(ints.iter().map(|v| v.as_slice()));
    add(&a);
    add(&[b"ZADD", b"smallzset", b"1", b"a", b"2.5", b"b", b"-inf", b"c", b"0.1", b"d", b"1e20", b"e"]);
    let zs: Vec<Vec<u8>> = (0..200).flat_map(|i| [format!("{}.{}", i, i % 7).into_bytes(), format!("member{i}").into_bytes()]).collect();
    let mut a: Vec<&[u8]> = vec![b"ZADD", b"bigzset"];
    a.extend(zs.iter().map(|v| v.as_slice()));
    add(&a);
    add(&[b"PFADD", b"hll", b"a", b"b", b"c"]);
    let els: Vec<Vec<u8>> = (0..3000).map(|i| format!("e{i}").into_bytes()).collect();
    let mut a: Vec<&[u8]> = vec![b"PFADD", b"hllbig"];
    a.extend(els.iter().map(|v| v.as_slice()));
    add(&a);
    add(&[b"GEOADD", b"geo", b"13.361389", b"38.115556", b"Palermo", b"15.087269", b"37.502669", b"Catania"]);
    add(&[b"SET", b"ttl-str", b"v", b"PX", b"100000000"]);
    add(&[b"RPUSH", b"ttl-list", b"a"]);
    add(&[b"PEXPIREAT", b"ttl-list", b"4102444800000"]);
    // Streams: several nodes with deletions, consumer groups with pending entries and an idle
    // consumer, an empty stream with a group, a stream emptied by XDEL.
    for i in 1..=260u64 {
        let (id, v) = (format!("{}-{}", 1000 + i / 3, i % 3), i.to_string());
        if i % 50 == 0 {
            add(&[b"XADD", b"bigstream", id.as_bytes(), b"other", v.as_bytes()]);
        } else {
            add(&[b"XADD", b"bigstream", id.as_bytes(), b"f", v.as_bytes(), b"g", b"x"]);
        }
    }
    add(&[b"XDEL", b"bigstream", b"1001-0", b"1010-1", b"1050-2"]);
    add(&[b"XGROUP", b"CREATE", b"bigstream", b"g1", b"0"]);
    add(&[b"XGROUP", b"CREATE", b"bigstream", b"g2", b"1020-0", b"ENTRIESREAD", b"40"]);
    add(&[b"XREADGROUP", b"GROUP", b"g1", b"alice", b"COUNT", b"5", b"STREAMS", b"bigstream", b">"]);
    add(&[b"XREADGROUP", b"GROUP", b"g1", b"bob", b"COUNT", b"3", b"STREAMS", b"bigstream", b">"]);
    add(&[b"XACK", b"bigstream", b"g1", b"1000-2"]);
    add(&[b"XGROUP", b"CREATECONSUMER", b"bigstream", b"g1", b"idle"]);
    add(&[b"XCLAIM", b"bigstream", b"g1", b"carol", b"0", b"1001-1", b"RETRYCOUNT", b"5", b"JUSTID"]);
    // A big PEL over many consumers.
    for c in [&b"c1"[..], b"c2", b"c3", b"c4", b"c5"] {
        add(&[b"XREADGROUP", b"GROUP", b"g2", c, b"COUNT", b"30", b"STREAMS", b"bigstream", b">"]);
    }
    add(&[b"XGROUP", b"CREATE", b"emptystream", b"g", b"$", b"MKSTREAM"]);
    add(&[b"XADD", b"gonestream", b"5-5", b"a", b"1"]);
    add(&[b"XDEL", b"gonestream", b"5-5"]);
    add(&[b"SELECT", b"1"]);
    add(&[b"XADD", b"db1stream", b"1-1", b"a", b"1"]);
    add(&[b"SET", b"db1key", b"one"]);
    add(&[b"HSET", b"db1hash", b"a", b"1"]);
    add(&[b"SELECT", b"5"]);
    add(&[b"ZADD", b"db5z", b"1", b"x"]);
    add(&[b"SET", b"db5ttl", b"v", b"EX", b"86400"]);
    add(&[b"SELECT", b"0"]);
    add(&[b"FUNCTION", b"LOAD", b"#!lua name=persisted\nredis.register_function('persisted_f', function() return 42 end)"]);
    for cmd in &cmds {
        let a: Vec<&[u8]> = cmd.iter().map(|v| v.as_slice()).collect();
        let r = c.cmd_bytes(&a);
        assert!(!r.starts_with(b"-"), "{:?}: {}", String::from_utf8_lossy(a[0]), String::from_utf8_lossy(&r));
    }
}

/// Saves on `from`, then starts a server of the other kind on a copy of its dump.rdb.
fn carry_dump(from: &Server, to_bin: &str) -> Server {
    let mut c = from.client();
    assert_eq!(c.text(&["SAVE"]), "+OK\r\n");
    let dir = tempdir("carried");
    std::fs::copy(from.dir.join("dump.rdb"), dir.join("dump.rdb")).expect("copy dump.rdb");
    if to_bin == FERRODIS {
        Server::ferrodis_in(dir, &[])
    } else {
        Server::redis_in(dir, &[])
    }
}

/// Two servers hold the same keys in `DBS` (type, value, absolute expiry) and the same digests.
pub(crate) fn assert_same_contents(a: &Server, b: &Server) {
    let (mut ca, mut cb) = (a.client(), b.client());
    let (x, y) = (contents(&mut ca, DBS), contents(&mut cb, DBS));
    assert!(x.len() > 25, "{} keys", x.len());
    for (k, v) in &x {
        if Some(v) != y.get(k) {
            // The parts that differ, readable.
            let other = y.get(k).map(|w| w.1.clone()).unwrap_or_default();
            let diff: Vec<String> =
                v.1.iter()
                    .zip(other.iter().chain(std::iter::repeat(&Vec::new())))
                    .filter(|(p, q)| p != q)
                    .map(|(p, q)| format!("  {:?}\n  {:?}", String::from_utf8_lossy(p), String::from_utf8_lossy(q)))
                    .collect();
            panic!("key {:?} in db {} differs:\n{}\n{:?}", String::from_utf8_lossy(&k.1), k.0, diff.join("\n"), (v, y.get(k)));
        }
    }
    assert_eq!(x.len(), y.len());
    assert_eq!(digests(&mut ca, DBS), digests(&mut cb, DBS));
}

fn assert_same_data(a: &Server, b: &Server) {
    assert_same_contents(a, b);
    let (mut ca, mut cb) = (a.client(), b.client());
    assert_eq!(ca.cmd(&["FCALL", "persisted_f", "0"]), b":42\r\n");
    assert_eq!(cb.cmd(&["FCALL", "persisted_f", "0"]), b":42\r\n");
}

#[test]
fn rdb_written_by_redis_loads_into_ferrodis() {
    let r = Server::redis(&[]);
    fill(&mut r.client());
    let f = carry_dump(&r, FERRODIS);
    assert!(f.log().contains("DB loaded from disk"), "{}", f.log());
    assert_same_data(&r, &f);
}

#[test]
fn rdb_written_by_ferrodis_loads_into_redis_and_passes_redis_check_rdb() {
    let f = Server::ferrodis(&[]);
    fill(&mut f.client());
    let r = carry_dump(&f, "redis-server");
    assert_same_data(&f, &r);
    let out = std::process::Command::new("redis-check-rdb").arg(f.dir.join("dump.rdb")).output().expect("redis-check-rdb");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("RDB looks OK"), "{text}");
    // Uncompressed and without a checksum, too.
    let mut c = f.client();
    c.cmd(&["CONFIG", "SET", "rdbcompression", "no"]);
    c.cmd(&["CONFIG", "SET", "rdbchecksum", "no"]);
    let r2 = carry_dump(&f, "redis-server");
    assert_same_data(&f, &r2);
}

#[test]
fn restart_keeps_the_data_and_shutdown_saves() {
    let f = Server::ferrodis(&[]);
    fill(&mut f.client());
    let mut c = f.client();
    let before = contents(&mut c, DBS);
    c.cmd(&["SET", "written-after-save", "1"]);
    // SHUTDOWN SAVE writes the final snapshot even without save points.
    c.send(&encode(&[b"SHUTDOWN", b"SAVE"]));
    let mut f = f;
    assert!(f.wait_exit(Duration::from_secs(20)).is_some(), "no exit; log:\n{}", f.log());
    let dir = tempdir("restart");
    std::fs::copy(f.dir.join("dump.rdb"), dir.join("dump.rdb")).expect("dump.rdb after shutdown");
    let g = Server::ferrodis_in(dir, &[]);
    let mut c = g.client();
    let mut after = contents(&mut c, DBS);
    assert!(after.remove(&(0, b"written-after-save".to_vec())).is_some());
    assert_eq!(before, after);
    let info = c.text(&["INFO", "persistence"]);
    assert!(info.contains(&format!("rdb_last_load_keys_loaded:{}", before.len() + 1)), "{info}");
}

#[test]
fn dump_payloads_restore_both_ways() {
    let r = Server::redis(&[]);
    let f = Server::ferrodis(&[]);
    fill(&mut r.client());
    fill(&mut f.client());
    let (mut cr, mut cf) = (r.client(), f.client());
    let keys: Vec<Vec<u8>> = elements(&cr.cmd(&["KEYS", "*"])).iter().map(|e| bulk(e)).collect();
    for k in &keys {
        for (from, to) in [(&mut cr as *mut Client, &mut cf as *mut Client), (&mut cf as *mut Client, &mut cr as *mut Client)] {
            // SAFETY: two distinct clients; the raw pointers only swap the direction.
            let (from, to) = unsafe { (&mut *from, &mut *to) };
            let payload = bulk(&from.cmd_bytes(&[b"DUMP", k]));
            let copy = [b"copy-".as_slice(), k].concat();
            // The same absolute expiry, so that the digests (which cover it) compare.
            let exp = String::from_utf8_lossy(&to.cmd_bytes(&[b"PEXPIRETIME", k])).trim().trim_start_matches(':').to_string();
            let restore: Vec<&[u8]> = if exp.starts_with('-') {
                vec![b"RESTORE", &copy, b"0", &payload]
            } else {
                vec![b"RESTORE", &copy, exp.as_bytes(), &payload, b"ABSTTL"]
            };
            assert_eq!(to.cmd_bytes(&restore), b"+OK\r\n", "{}", String::from_utf8_lossy(k));
            assert_eq!(
                to.cmd_bytes(&[b"DEBUG", b"DIGEST-VALUE", &copy]),
                to.cmd_bytes(&[b"DEBUG", b"DIGEST-VALUE", k]),
                "{}",
                String::from_utf8_lossy(k)
            );
            assert_eq!(to.cmd_bytes(&[b"RESTORE", &copy, b"0", &payload]), b"-BUSYKEY Target key name already exists.\r\n");
            to.cmd_bytes(&[b"DEL", &copy]);
        }
    }
    // The options, compared reply for reply.
    let payload = bulk(&cr.cmd(&["DUMP", "smallhash"]));
    let mut bad = payload.clone();
    bad[1] ^= 0x55;
    let cases: Vec<Vec<&[u8]>> = vec![
        vec![b"RESTORE", b"o1", b"5000", &payload],
        vec![b"PTTL", b"o1"],
        vec![b"RESTORE", b"o2", b"4102444800000", &payload, b"ABSTTL"],
        vec![b"PEXPIRETIME", b"o2"],
        vec![b"RESTORE", b"o2", b"0", &payload, b"REPLACE", b"IDLETIME", b"100"],
        vec![b"OBJECT", b"IDLETIME", b"o2"],
        vec![b"RESTORE", b"o3", b"0", &payload, b"FREQ", b"300"],
        vec![b"RESTORE", b"o3", b"0", &payload, b"IDLETIME", b"-1"],
        vec![b"RESTORE", b"o3", b"0", &payload, b"FREQ", b"1", b"IDLETIME", b"1"],
        vec![b"RESTORE", b"o3", b"-1", &payload],
        vec![b"RESTORE", b"o3", b"x", &payload],
        vec![b"RESTORE", b"o3", b"0", &bad],
        vec![b"RESTORE", b"o3", b"0", b"short"],
        vec![b"RESTORE", b"o3", b"1", &payload, b"ABSTTL"],
        vec![b"EXISTS", b"o3"],
        vec![b"RESTORE", b"o3", b"0", &payload, b"BOGUS"],
        vec![b"DUMP", b"nokey"],
    ];
    for case in &cases {
        let (a, b) = (cr.cmd_bytes(case), cf.cmd_bytes(case));
        if case[0] == b"PTTL" {
            // Milliseconds pass between the two servers' replies.
            let ms = |r: &[u8]| String::from_utf8_lossy(r).trim().trim_start_matches(':').parse::<i64>().unwrap_or(-9);
            assert!(
                (4000..=5000).contains(&ms(&a)) && (4000..=5000).contains(&ms(&b)),
                "{:?} {:?}",
                String::from_utf8_lossy(&a),
                String::from_utf8_lossy(&b)
            );
            continue;
        }
        assert_eq!(
            String::from_utf8_lossy(&a),
            String::from_utf8_lossy(&b),
            "{:?}",
            case.iter().map(|x| String::from_utf8_lossy(x)).collect::<Vec<_>>()
        );
    }
}

#[test]
fn failed_save_keeps_the_old_file_and_stops_writes() {
    let f = Server::ferrodis(&["--save", "3600 1"]);
    let mut c = f.client();
    c.cmd(&["SET", "k", "old"]);
    assert_eq!(c.text(&["SAVE"]), "+OK\r\n");
    let saved = std::fs::read(f.dir.join("dump.rdb")).expect("dump.rdb");
    // A directory where the temporary file goes makes the next save fail.
    let pid = f.child.id();
    let blocker = f.dir.join(format!("temp-{pid}.rdb"));
    std::fs::create_dir(&blocker).expect("blocker dir");
    c.cmd(&["SET", "k", "new"]);
    assert_eq!(c.text(&["SAVE"]), "-ERR\r\n");
    assert_eq!(std::fs::read(f.dir.join("dump.rdb")).expect("dump.rdb"), saved, "a failed save must not touch dump.rdb");
    assert!(c.text(&["INFO", "persistence"]).contains("rdb_last_bgsave_status:err"));
    assert!(c.text(&["SET", "k", "x"]).starts_with("-MISCONF "));
    assert_eq!(c.text(&["GET", "k"]), "$3\r\nnew\r\n");
    std::fs::remove_dir(&blocker).expect("remove blocker");
    assert_eq!(c.text(&["BGSAVE"]), "+Background saving started\r\n");
    assert!(crate::harness::wait_until(Duration::from_secs(20), || c.text(&["INFO", "persistence"]).contains("rdb_last_bgsave_status:ok")));
    assert_eq!(c.text(&["SET", "k", "x"]), "+OK\r\n");
}

#[test]
fn corrupt_or_truncated_rdb_stops_the_start() {
    let f = Server::ferrodis(&[]);
    fill(&mut f.client());
    assert_eq!(f.client().text(&["SAVE"]), "+OK\r\n");
    let good = std::fs::read(f.dir.join("dump.rdb")).expect("dump.rdb");
    for (what, bytes) in [
        ("truncated", good[..good.len() / 2].to_vec()),
        ("flipped", {
            let mut b = good.clone();
            let i = b.len() / 3;
            b[i] ^= 0xff;
            b
        }),
    ] {
        let dir = tempdir(what);
        std::fs::write(dir.join("dump.rdb"), &bytes).expect("write");
        let mut s = launch(FERRODIS, &[], dir);
        let status = s.wait_exit(Duration::from_secs(20)).unwrap_or_else(|| panic!("{what}: the server kept running on a bad file"));
        assert!(!status.success(), "{what}");
        let log = s.log();
        assert!(log.contains("dump.rdb") && log.contains("offset"), "{what}: {log}");
    }
}

#[test]
fn debug_reload_and_bgsave_schedule() {
    let f = Server::ferrodis(&[]);
    fill(&mut f.client());
    let mut c = f.client();
    let before = digests(&mut c, DBS);
    assert_eq!(c.text(&["DEBUG", "RELOAD"]), "+OK\r\n");
    assert_eq!(digests(&mut c, DBS), before);
    assert_eq!(c.text(&["FCALL", "persisted_f", "0"]), ":42\r\n");
    assert_eq!(c.text(&["BGSAVE", "NOW"]), "-ERR syntax error\r\n");
    let r = c.text(&["BGSAVE"]);
    assert_eq!(r, "+Background saving started\r\n");
    let again = c.text(&["BGSAVE", "SCHEDULE"]);
    assert!(again == "+Background saving scheduled\r\n" || again == "+Background saving started\r\n", "{again}");
    assert!(crate::harness::wait_until(Duration::from_secs(20), || c.text(&["INFO", "persistence"]).contains("rdb_bgsave_in_progress:0")));
    let lastsave = c.text(&["LASTSAVE"]);
    assert!(lastsave.starts_with(':'), "{lastsave}");
}

/// MIGRATE between every pair of servers: the keys arrive equal (DEBUG DIGEST-VALUE), leave
/// the source unless COPY, and the error replies match Redis's.
#[test]
fn migrate_moves_keys_between_redis_and_ferrodis() {
    let sources = [Server::redis(&[]), Server::ferrodis(&[])];
    let targets = [Server::redis(&["--requirepass", "pw"]), Server::ferrodis(&["--requirepass", "pw"])];
    let mut logs: Vec<Vec<String>> = Vec::new();
    for src in &sources {
        let mut log = Vec::new();
        for dst in &targets {
            let mut c = src.client();
            let mut d = dst.client();
            d.cmd(&["AUTH", "pw"]);
            d.cmd(&["FLUSHALL"]);
            c.cmd(&["FLUSHALL"]);
            c.cmd(&["FUNCTION", "FLUSH"]);
            fill(&mut c);
            let port = dst.port.to_string();
            let digest = |cl: &mut Client, k: &str| cl.cmd(&["DEBUG", "DIGEST-VALUE", k]);
            let before = digest(&mut c, "bighash");
            let mut run = |c: &mut Client, args: &[&str]| {
                let r = c.text(args);
                log.push(format!("{} -> {}", args.join(" "), r.trim_end()));
                r
            };
            // Single key, AUTH, to database 3.
            assert_eq!(run(&mut c, &["MIGRATE", "127.0.0.1", &port, "bighash", "3", "5000", "AUTH", "pw"]), "+OK\r\n");
            d.cmd(&["SELECT", "3"]);
            assert_eq!(digest(&mut d, "bighash"), before);
            run(&mut c, &["EXISTS", "bighash"]);
            // KEYS form with COPY and AUTH2: the keys stay here too.
            run(
                &mut c,
                &["MIGRATE", "127.0.0.1", &port, "", "3", "5000", "COPY", "AUTH2", "default", "pw", "KEYS", "biglist", "intset", "nokey"],
            );
            assert_eq!(digest(&mut d, "biglist"), digest(&mut c, "biglist"));
            run(&mut c, &["EXISTS", "biglist", "intset"]);
            // Again without REPLACE: the target refuses (BUSYKEY), with REPLACE it takes them.
            run(&mut c, &["MIGRATE", "127.0.0.1", &port, "biglist", "3", "5000", "AUTH", "pw"]);
            run(&mut c, &["MIGRATE", "127.0.0.1", &port, "biglist", "3", "5000", "REPLACE", "AUTH", "pw"]);
            run(&mut c, &["EXISTS", "biglist"]);
            // TTLs travel.
            run(&mut c, &["MIGRATE", "127.0.0.1", &port, "ttl-str", "3", "5000", "AUTH", "pw"]);
            let ttl = d.text(&["PTTL", "ttl-str"]);
            assert!(ttl.starts_with(":9") || ttl.starts_with(":1"), "{ttl}");
            // No key, wrong password, bad arguments.
            run(&mut c, &["MIGRATE", "127.0.0.1", &port, "nokey", "3", "5000"]);
            run(&mut c, &["MIGRATE", "127.0.0.1", &port, "smallhash", "3", "5000", "AUTH", "wrong"]);
            run(&mut c, &["MIGRATE", "127.0.0.1", &port, "smallhash", "3", "5000", "KEYS", "a"]);
            run(&mut c, &["MIGRATE", "127.0.0.1", &port, "smallhash", "x", "5000"]);
            run(&mut c, &["MIGRATE", "127.0.0.1", &port, "smallhash", "3", "5000", "BOGUS"]);
        }
        logs.push(log);
    }
    assert_eq!(logs[0], logs[1], "redis as the source vs ferrodis as the source");
}

// ---------------------------------------------------------------- encodings of Redis 6 and older

/// A ziplist as Redis 6 and older wrote them (entries: strings, or integers in the smallest of
/// Redis's integer forms).
fn ziplist(items: &[&[u8]]) -> Vec<u8> {
    let mut body = Vec::new();
    let mut prev = 0usize;
    let mut tail = 10;
    for it in items {
        let start = body.len();
        tail = 10 + start;
        if prev < 254 {
            body.push(prev as u8);
        } else {
            body.push(0xfe);
            body.extend_from_slice(&(prev as u32).to_le_bytes());
        }
        let as_int = rdb::strict_i64(it);
        match as_int {
            Some(v @ 0..=12) => body.push(0xf1 + v as u8),
            Some(v) if i8::try_from(v).is_ok() => body.extend_from_slice(&[0xfe, v as i8 as u8]),
            Some(v) if i16::try_from(v).is_ok() => {
                body.push(0xc0);
                body.extend_from_slice(&(v as i16).to_le_bytes());
            }
            Some(v) if (-(1 << 23)..(1 << 23)).contains(&v) => {
                body.push(0xf0);
                body.extend_from_slice(&(v as i32).to_le_bytes()[..3]);
            }
            Some(v) if i32::try_from(v).is_ok() => {
                body.push(0xd0);
                body.extend_from_slice(&(v as i32).to_le_bytes());
            }
            Some(v) => {
                body.push(0xe0);
                body.extend_from_slice(&v.to_le_bytes());
            }
            None if it.len() < 64 => body.push(it.len() as u8),
            None if it.len() < 16384 => body.extend_from_slice(&[0x40 | (it.len() >> 8) as u8, it.len() as u8]),
            None => {
                body.push(0x80);
                body.extend_from_slice(&(it.len() as u32).to_be_bytes());
            }
        }
        if as_int.is_none() {
            body.extend_from_slice(it);
        }
        prev = body.len() - start;
    }
    let mut z = Vec::new();
    z.extend_from_slice(&((body.len() + 11) as u32).to_le_bytes());
    z.extend_from_slice(&(tail as u32).to_le_bytes());
    z.extend_from_slice(&(items.len().min(65535) as u16).to_le_bytes());
    z.extend_from_slice(&body);
    z.push(0xff);
    z
}

/// A zipmap (hashes before Redis 2.6).
fn zipmap(pairs: &[(&[u8], &[u8])]) -> Vec<u8> {
    let mut z = vec![pairs.len().min(253) as u8];
    for (f, v) in pairs {
        z.push(f.len() as u8);
        z.extend_from_slice(f);
        z.push(v.len() as u8);
        z.push(0); // free bytes
        z.extend_from_slice(v);
    }
    z.push(0xff);
    z
}

/// An RDB version 9 file in the encodings Redis 6 and older wrote (ziplist lists, hashes and
/// sorted sets, quicklists of ziplists, zipmaps, intsets, text scores, expiry in seconds) loads
/// into redis-server 7.0.15 and into ferrodis with the same contents.
#[test]
fn rdb_9_with_old_encodings_loads_as_redis_loads_it() {
    use rdb::encode::{put_len, put_string};
    let mut f = b"REDIS0009".to_vec();
    rdb::file::put_aux(&mut f, b"redis-ver", b"6.2.14");
    rdb::file::put_select_db(&mut f, 0);
    let long = vec![b'z'; 300];
    let items: Vec<&[u8]> = vec![b"a", b"5", b"-100", b"300", b"70000", b"-8000000", b"3000000000", b"text", &long];
    // LIST_ZIPLIST (10)
    f.push(10);
    put_string(&mut f, b"zl-list", false);
    put_string(&mut f, &ziplist(&items), false);
    // LIST_QUICKLIST (14): two ziplist nodes
    f.push(14);
    put_string(&mut f, b"ql-list", false);
    put_len(&mut f, 2);
    put_string(&mut f, &ziplist(&items[..4]), false);
    put_string(&mut f, &ziplist(&items[4..]), true);
    // HASH_ZIPLIST (13)
    f.push(13);
    put_string(&mut f, b"zl-hash", false);
    put_string(&mut f, &ziplist(&[b"f1", b"v1", b"n", b"12345", b"big", b"99999999999"]), false);
    // HASH_ZIPMAP (9)
    f.push(9);
    put_string(&mut f, b"zm-hash", false);
    put_string(&mut f, &zipmap(&[(b"name", b"redis"), (b"ver", b"2.4")]), false);
    // ZSET_ZIPLIST (12): member, score, ... in score order
    f.push(12);
    put_string(&mut f, b"zl-zset", false);
    put_string(&mut f, &ziplist(&[b"low", b"-2.5", b"mid", b"1", b"high", b"100"]), false);
    // ZSET (3) with text scores, including infinities
    f.push(3);
    put_string(&mut f, b"old-zset", false);
    put_len(&mut f, 3);
    for (m, s) in [(&b"a"[..], &b"1.5"[..]), (b"b", b"inf"), (b"c", b"-inf")] {
        put_string(&mut f, m, false);
        match s {
            b"inf" => f.push(254),
            b"-inf" => f.push(255),
            _ => {
                f.push(s.len() as u8);
                f.extend_from_slice(s);
            }
        }
    }
    // SET_INTSET (11) and an expiry in seconds (253) on a plain string
    f.push(11);
    put_string(&mut f, b"is-set", false);
    put_string(&mut f, &rdb::intset::encode(vec![5, -3, 70000, 1 << 40]), false);
    f.push(253);
    // (Seconds in a signed 32-bit number: 2033, in the future until then.)
    f.extend_from_slice(&2_000_000_000i32.to_le_bytes());
    f.push(0);
    put_string(&mut f, b"old-ttl", false);
    put_string(&mut f, b"v", false);
    rdb::file::put_select_db(&mut f, 2);
    f.push(1); // LIST (1): plain strings
    put_string(&mut f, b"plain-list", false);
    put_len(&mut f, 2);
    put_string(&mut f, b"x", false);
    put_string(&mut f, b"12", false);
    f.push(255);
    let crc = rdb::CRC64.checksum(&f);
    f.extend_from_slice(&crc.to_le_bytes());

    let mut servers = Vec::new();
    for bin in [FERRODIS, "redis-server"] {
        let dir = tempdir("rdb9");
        std::fs::write(dir.join("dump.rdb"), &f).expect("write");
        servers.push(if bin == FERRODIS { Server::ferrodis_in(dir, &[]) } else { Server::redis_in(dir, &[]) });
    }
    let (mut a, mut b) = (servers[0].client(), servers[1].client());
    let (x, y) = (contents(&mut a, &[0, 2]), contents(&mut b, &[0, 2]));
    assert_eq!(x.len(), 9, "{:?}", x.keys().collect::<Vec<_>>());
    assert_eq!(x, y);
    assert_eq!(digests(&mut a, &[0, 2]), digests(&mut b, &[0, 2]));
}

#[test]
fn every_command_counts_changes_as_redis_counts_them() {
    // rdb_changes_since_last_save is what `save <seconds> <changes>` triggers on: each command of
    // the corpus must add what it adds on redis-server (per element for HSET, RPUSH, ZADD ...).
    let lines: Vec<&str> = include_str!("corpus/dirty.txt").lines().filter(|l| !l.trim().is_empty() && !l.starts_with('#')).collect();
    let r = Server::redis(&["--save", ""]);
    let f = Server::ferrodis(&["--save", ""]);
    let (mut rc, mut fc) = (r.client(), f.client());
    let changes = |c: &mut Client| -> i64 {
        let info = String::from_utf8_lossy(&c.cmd(&["INFO", "persistence"])).into_owned();
        info.lines().find_map(|l| l.strip_prefix("rdb_changes_since_last_save:")).and_then(|v| v.trim().parse().ok()).expect("the field")
    };
    let mut differ = Vec::new();
    for line in lines {
        let words: Vec<Vec<u8>> = resp::split_args(line.as_bytes()).expect("quotes");
        let args: Vec<&[u8]> = words.iter().map(|w| w.as_slice()).collect();
        let mut deltas = [0i64; 2];
        for (i, c) in [&mut rc, &mut fc].into_iter().enumerate() {
            let before = changes(c);
            c.cmd_bytes(&args);
            deltas[i] = changes(c) - before;
        }
        if deltas[0] != deltas[1] {
            differ.push(format!("{line}: redis {} ferrodis {}", deltas[0], deltas[1]));
        }
    }
    assert!(differ.is_empty(), "change counts differ:\n{}", differ.join("\n"));
}
