//! sentinel.conf read as Redis Sentinel 7.0.15 reads it. The same texts (every `sentinel`
//! option, in several orders: options before their `monitor` line, after it, reversed, shuffled)
//! are started with redis-sentinel and with ferrodis, and compared on SENTINEL MASTER, REPLICAS,
//! SENTINELS, CONFIG GET * and the state each writes back (SENTINEL FLUSHCONFIG); a file
//! rewritten by either starts the other with the same state; bad files stop both with the same
//! FATAL CONFIG FILE ERROR block.
//!
//! The masters, replicas and sentinels named in the files are ports where nothing listens, so the
//! state compared is the file's and stays as it is while the test reads it.

use crate::harness::{free_port, q, require_redis, tempdir, wait_until, Server, FERRODIS};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

#[derive(Clone, Copy, PartialEq, Debug)]
enum Kind {
    Ferrodis,
    Redis,
}

/// Starts a sentinel of `kind` from `conf` (its directory is the working directory); stderr
/// goes to `stderr` beside it.
fn spawn(kind: Kind, conf: &std::path::Path) -> std::process::Child {
    let dir = conf.parent().expect("a directory");
    let bin = if kind == Kind::Ferrodis { FERRODIS } else { "redis-sentinel" };
    std::process::Command::new(bin)
        .arg(conf)
        .arg("--sentinel")
        .current_dir(dir)
        .stdout(std::fs::File::create(dir.join("log")).expect("log"))
        .stderr(std::fs::File::create(dir.join("stderr")).expect("stderr"))
        .spawn()
        .expect("start a sentinel")
}

fn start(kind: Kind, conf: &std::path::Path, port: u16) -> Server {
    Server { child: spawn(kind, conf), port, dir: conf.parent().expect("a directory").to_path_buf() }
}

/// Writes `text` (with a `port` line first) to a new directory and starts `kind` from it.
fn start_text(kind: Kind, text: &str) -> Server {
    let port = free_port();
    let dir = tempdir("sconf");
    let conf = dir.join("sentinel.conf");
    std::fs::write(&conf, format!("port {port}\nbind 127.0.0.1\n{text}\n")).expect("write sentinel.conf");
    let s = start(kind, &conf, port);
    s.wait_ready();
    s
}

/// A loopback port held bound and never listening, for the whole test: connecting to it is
/// refused, and no server started meanwhile can be given it (a free port that was merely
/// released could become the port of a sentinel the test starts, which then answers). The
/// socket is held only to keep the port.
struct Held(#[allow(dead_code)] socket2::Socket, u16);

fn hold() -> Held {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    s.bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into()).expect("bind");
    let port = s.local_addr().expect("local address").as_socket().expect("an IP address").port();
    Held(s, port)
}

/// Ports nobody listens on, for the instances the files name.
struct Ports {
    m: u16,
    n: u16,
    r1: u16,
    r2: u16,
    r3: u16,
    s1: u16,
    _held: Vec<Held>,
}

impl Ports {
    fn new() -> Ports {
        let held: Vec<Held> = (0..6).map(|_| hold()).collect();
        let p: Vec<u16> = held.iter().map(|h| h.1).collect();
        Ports { m: p[0], n: p[1], r1: p[2], r2: p[3], r3: p[4], s1: p[5], _held: held }
    }
}

/// Every `sentinel` option of a file, for two masters: monitor lines first, then the options
/// of the masters, then the global ones.
fn every_option(p: &Ports) -> Vec<String> {
    [
        format!("sentinel monitor m 127.0.0.1 {} 2", p.m),
        format!("sentinel monitor n 127.0.0.1 {} 3", p.n),
        "sentinel down-after-milliseconds m 5000".into(),
        "sentinel failover-timeout m 60000".into(),
        "sentinel parallel-syncs m 2".into(),
        "sentinel notification-script m /bin/true".into(),
        "sentinel client-reconfig-script m /bin/true".into(),
        "sentinel auth-pass m secret".into(),
        "sentinel auth-user m bob".into(),
        "sentinel config-epoch m 7".into(),
        "sentinel leader-epoch m 6".into(),
        format!("sentinel known-replica m 127.0.0.1 {}", p.r1),
        format!("sentinel known-slave m 127.0.0.1 {}", p.r2),
        format!("sentinel known-sentinel m 127.0.0.1 {} aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", p.s1),
        "sentinel rename-command m CONFIG XCONFIG".into(),
        "sentinel rename-command m slaveof xslaveof".into(),
        "sentinel master-reboot-down-after-period m 100".into(),
        "sentinel down-after-milliseconds n 7000".into(),
        "sentinel config-epoch n 3".into(),
        format!("sentinel known-replica n 127.0.0.1 {}", p.r3),
        "sentinel announce-ip 127.0.0.2".into(),
        "sentinel announce-port 26999".into(),
        "sentinel deny-scripts-reconfig no".into(),
        "sentinel sentinel-user su".into(),
        "sentinel sentinel-pass sp".into(),
        "sentinel resolve-hostnames yes".into(),
        "sentinel announce-hostnames yes".into(),
        "sentinel current-epoch 9".into(),
        "sentinel myid 0123456789abcdef0123456789abcdef01234567".into(),
    ]
    .to_vec()
}

/// The orders tried: as written, every option before the monitor lines, reversed, and
/// four shuffles (a fixed xorshift, so a failure can be rerun as it was).
fn orders(lines: &[String]) -> Vec<Vec<String>> {
    let mut out = vec![lines.to_vec()];
    let (mon, rest): (Vec<String>, Vec<String>) = lines.iter().cloned().partition(|l| l.starts_with("sentinel monitor"));
    out.push(rest.into_iter().chain(mon).collect());
    out.push(lines.iter().rev().cloned().collect());
    for seed in 1..=4u64 {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut v = lines.to_vec();
        for i in (1..v.len()).rev() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            v.swap(i, (x % (i as u64 + 1)) as usize);
        }
        out.push(v);
    }
    out
}

/// A flat SENTINEL reply (field, value, field, value ...) as a map.
fn map(v: &redis::Value) -> BTreeMap<String, String> {
    let items: Vec<String> = redis::FromRedisValue::from_redis_value(v.clone()).unwrap_or_default();
    items.chunks(2).filter(|c| c.len() == 2).map(|c| (c[0].clone(), c[1].clone())).collect()
}

/// What a sentinel holds from its file, as its replies show it. Fields that change with time or
/// with connection attempts (last-ping-sent, flags, link-pending-commands ...) are left out;
/// replicas and sentinels are sets (Redis lists them in hash order).
fn state(port: u16) -> BTreeMap<String, String> {
    const MASTER: [&str; 13] = [
        "name",
        "ip",
        "port",
        "down-after-milliseconds",
        "config-epoch",
        "num-slaves",
        "num-other-sentinels",
        "quorum",
        "failover-timeout",
        "parallel-syncs",
        "notification-script",
        "client-reconfig-script",
        "role-reported",
    ];
    let mut out = BTreeMap::new();
    let myid: String = q(port, &["SENTINEL", "MYID"]).expect("SENTINEL MYID");
    out.insert("myid".into(), myid);
    let conf: redis::Value = q(port, &["SENTINEL", "CONFIG", "GET", "*"]).expect("SENTINEL CONFIG GET");
    out.insert("config".into(), format!("{:?}", map(&conf)));
    let masters: Vec<redis::Value> = q(port, &["SENTINEL", "MASTERS"]).expect("SENTINEL MASTERS");
    let mut names = BTreeSet::new();
    for m in &masters {
        let m = map(m);
        let name = m.get("name").cloned().unwrap_or_default();
        let picked: BTreeMap<&str, String> = MASTER.iter().filter_map(|f| m.get(*f).map(|v| (*f, v.clone()))).collect();
        out.insert(format!("master {name}"), format!("{picked:?}"));
        names.insert(name);
    }
    for name in names {
        for (what, fields) in [("REPLICAS", ["name", "ip", "port", "slave-priority"]), ("SENTINELS", ["name", "ip", "port", "runid"])] {
            let listed: Vec<redis::Value> = q(port, &["SENTINEL", what, &name]).expect("SENTINEL REPLICAS/SENTINELS");
            let set: BTreeSet<String> =
                listed.iter().map(map).map(|r| format!("{:?}", fields.map(|f| r.get(f).cloned().unwrap_or_default()))).collect();
            out.insert(format!("{what} {name}"), format!("{set:?}"));
        }
    }
    out
}

/// The `sentinel` lines a sentinel writes for its state (SENTINEL FLUSHCONFIG), as a set of
/// argument lists: Redis keeps lines where they were and quotes some values, so neither the
/// order nor the quoting is compared.
fn written(s: &Server) -> BTreeSet<Vec<String>> {
    let ok: String = q(s.port, &["SENTINEL", "FLUSHCONFIG"]).expect("SENTINEL FLUSHCONFIG");
    assert_eq!(ok, "OK");
    let text = std::fs::read_to_string(s.dir.join("sentinel.conf")).expect("read sentinel.conf");
    text.lines()
        .filter(|l| l.trim_start().starts_with("sentinel "))
        .map(|l| {
            l.split_whitespace()
                .map(|w| w.trim_matches('"'))
                // Redis writes known-replica and leaves a known-slave line of the file as it was.
                .map(|w| if w == "known-slave" { "known-replica".to_string() } else { w.to_string() })
                .collect()
        })
        .collect()
}

fn diff(a: &BTreeMap<String, String>, b: &BTreeMap<String, String>) -> String {
    let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    let mut out = String::new();
    for k in keys {
        if a.get(k) != b.get(k) {
            out.push_str(&format!("{k}:\n  redis:    {:?}\n  ferrodis: {:?}\n", a.get(k), b.get(k)));
        }
    }
    out
}

#[test]
fn every_order_of_every_option_starts_as_redis_sentinel_starts() {
    require_redis();
    let p = Ports::new();
    for (i, lines) in orders(&every_option(&p)).iter().enumerate() {
        let text = lines.join("\n");
        let theirs = start_text(Kind::Redis, &text);
        let ours = start_text(Kind::Ferrodis, &text);
        let (a, b) = (state(theirs.port), state(ours.port));
        assert!(a == b, "order {i}:\n{text}\n\ndiffers:\n{}", diff(&a, &b));
        // Two masters with their options, as the file says.
        assert!(a["master m"].contains("\"down-after-milliseconds\": \"5000\"") && a.contains_key("master n"), "{a:?}");
        let (wa, wb) = (written(&theirs), written(&ours));
        let only = |x: &BTreeSet<Vec<String>>, y: &BTreeSet<Vec<String>>| x.difference(y).cloned().collect::<Vec<_>>();
        assert!(wa == wb, "order {i}: written state differs\nredis only: {:?}\nferrodis only: {:?}", only(&wa, &wb), only(&wb, &wa));
    }
}

#[test]
fn a_file_rewritten_by_either_starts_the_other_with_the_same_state() {
    require_redis();
    let p = Ports::new();
    // An order with options before their monitor line: Redis Sentinel's own rewrite keeps
    // lines where they are, so the files it writes look like this.
    // No known-slave line: Redis Sentinel 7.0.15 adds a known-replica line for the same replica
    // and keeps the known-slave one, and then refuses its own file ("Duplicate hostname and port
    // for replica."), as ferrodis does.
    let lines: Vec<String> = every_option(&p).into_iter().filter(|l| !l.contains("known-slave")).collect();
    let text = orders(&lines)[1].join("\n");
    for (first, second) in [(Kind::Redis, Kind::Ferrodis), (Kind::Ferrodis, Kind::Redis)] {
        let mut s = start_text(first, &text);
        let before = state(s.port);
        let lines = written(&s);
        let _ = s.child.kill();
        let _ = s.child.wait();
        // The same port, directory and file, the other program.
        s.child = spawn(second, &s.dir.join("sentinel.conf"));
        s.wait_ready();
        let after = state(s.port);
        assert!(before == after, "{first:?} -> {second:?}:\n{}", diff(&before, &after));
        assert_eq!(lines, written(&s), "{first:?} -> {second:?}: the state written back");
    }
}

/// Starts `kind` from `text` and returns what it printed to stderr once it exited (None: it
/// did not exit within 10 s, i.e. it started).
fn refusal(kind: Kind, text: &str) -> Option<String> {
    let port = free_port();
    let dir = tempdir("sbad");
    let conf = dir.join("sentinel.conf");
    std::fs::write(&conf, format!("port {port}\n{text}\n")).expect("write sentinel.conf");
    let mut s = start(kind, &conf, port);
    let started = wait_until(Duration::from_secs(10), || {
        matches!(s.child.try_wait(), Ok(Some(_))) || crate::harness::Client::try_connect(port).is_ok()
    });
    assert!(started, "{kind:?} neither started nor exited on:\n{text}");
    let status = s.wait_exit(Duration::from_millis(300))?;
    assert!(!status.success(), "{kind:?} exited 0 on:\n{text}");
    let err = std::fs::read_to_string(dir.join("stderr")).unwrap_or_default();
    // The block from the FATAL line on (Redis logs "Failed to resolve hostname" before it).
    Some(err[err.find("*** FATAL").unwrap_or(0)..].to_string())
}

#[test]
fn bad_files_are_refused_with_redis_sentinels_error_and_good_ones_start() {
    require_redis();
    let p = Ports::new();
    let mon = format!("sentinel monitor m 127.0.0.1 {} 2", p.m);
    let id = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let refused = [
        "sentinel down-after-milliseconds m 5000".to_string(),
        format!("sentinel down-after-milliseconds nosuch 5000\n{mon}"),
        format!("{mon}\n{mon}"),
        "sentinel monitor m 127.0.0.1 99999 2".into(),
        "sentinel monitor m 127.0.0.1 6379 0".into(),
        "sentinel monitor m localhost 6379 2".into(),
        format!("{mon}\nsentinel known-replica m 127.0.0.1 70000"),
        format!("sentinel known-replica m 127.0.0.1 {}\n{mon}\nsentinel known-replica m 127.0.0.1 {}", p.r1, p.r1),
        format!("{mon}\nsentinel known-sentinel m 127.0.0.1 {} {id}\nsentinel known-sentinel m 127.0.0.1 {} {id}", p.s1, p.r1),
        format!("{mon}\nsentinel rename-command m config a\nsentinel rename-command m CONFIG b"),
        format!("{mon}\nsentinel down-after-milliseconds m 0"),
        format!("sentinel failover-timeout m -5\n{mon}"),
        format!("{mon}\nsentinel master-reboot-down-after-period m -1"),
        format!("{mon}\nsentinel notification-script m /nonexistent/script"),
        format!("{mon}\nsentinel client-reconfig-script m /nonexistent/script"),
        format!("{mon}\nsentinel resolve-hostnames maybe"),
        format!("sentinel announce-hostnames maybe\n{mon}"),
        format!("{mon}\nsentinel deny-scripts-reconfig maybe"),
        "sentinel myid abc".into(),
        format!("{mon}\nsentinel frobnicate m 1"),
        format!("{mon}\nsentinel parallel-syncs m"),
    ];
    for text in &refused {
        let theirs = refusal(Kind::Redis, text).unwrap_or_else(|| panic!("Redis Sentinel started on:\n{text}"));
        let ours = refusal(Kind::Ferrodis, text).unwrap_or_else(|| panic!("ferrodis started on:\n{text}\nRedis said:\n{theirs}"));
        assert_eq!(ours, theirs, "on:\n{text}");
    }
    let started = [
        format!("sentinel\n{mon}"),
        format!("{mon}\nsentinel known-sentinel m 127.0.0.1 {}", p.s1),
        format!("sentinel down-after-milliseconds m 12abc\n{mon}\nsentinel parallel-syncs m -3"),
        format!("sentinel resolve-hostnames yes\n{mon}\nsentinel known-replica m nosuch.invalid {}", p.r1),
        format!("sentinel announce-ip \"\"\nsentinel sentinel-user \"\"\n{mon}"),
    ];
    for text in &started {
        assert!(refusal(Kind::Redis, text).is_none(), "Redis Sentinel refused:\n{text}");
        assert!(refusal(Kind::Ferrodis, text).is_none(), "ferrodis refused:\n{text}");
    }
}
