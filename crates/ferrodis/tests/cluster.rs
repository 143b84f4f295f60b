//! Cluster mode: six nodes (three masters, three replicas) on loopback, created with
//! `redis-cli --cluster create`. Routing and redirects with redis-cli, the `redis` crate's
//! cluster client and redis-py's RedisCluster; a master killed under writes (with synchronous
//! acknowledgement: nothing acknowledged is lost), a hung master (SIGSTOP, then SIGCONT), a master
//! left in the minority, a manual failover, a restarted replica continuing partially, a slot moved
//! under writes; and replies compared with redis-server's. Every wait has a deadline.

use crate::harness::{field, free_port, launch_at, q, require_redis, tempdir, wait_until, Client, Server, FERRODIS};
use redis::Commands;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const LONG: Duration = Duration::from_secs(60);

/// A reply as a short string: a status or error line without CRLF, a bulk string's contents.
trait Short {
    fn t(&mut self, args: &[&str]) -> String;
}

impl Short for Client {
    fn t(&mut self, args: &[&str]) -> String {
        let raw = self.text(args);
        let t = raw.trim_end_matches("\r\n");
        match t.strip_prefix('$') {
            Some(b) => b.split_once("\r\n").map_or("", |x| x.1).to_string(),
            None => t.to_string(),
        }
    }
}

/// A free port whose bus port (+10000) is free too.
fn cluster_port() -> u16 {
    loop {
        let p = free_port();
        if std::net::TcpListener::bind(("127.0.0.1", p + 10000)).is_ok() {
            return p;
        }
    }
}

fn node_args(extra: &[String]) -> Vec<String> {
    let mut a: Vec<String> = ["--cluster-enabled", "yes", "--cluster-node-timeout", "1000"].iter().map(|s| s.to_string()).collect();
    a.extend(extra.iter().cloned());
    a
}

/// Starts a node on a free port pair. Ports are picked free and then bound by the child, so
/// another test may take one in between: a node that did not come up on its own (it exited, or
/// another process answers on its port) is started again on other ports.
fn start_node(bin: &str, extra: &[String]) -> Server {
    let args = node_args(extra);
    let a: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
    for _ in 0..5 {
        let mut s = launch_at(bin, cluster_port(), &a, tempdir("cluster"));
        let up = wait_until(Duration::from_secs(20), || {
            matches!(s.child.try_wait(), Ok(None))
                && q::<Vec<String>>(s.port, &["CONFIG", "GET", "dir"])
                    .is_ok_and(|v| v.get(1).is_some_and(|d| std::path::Path::new(d) == s.dir.as_path()))
        });
        if up && matches!(s.child.try_wait(), Ok(None)) {
            return s;
        }
    }
    panic!("could not start a cluster node");
}

/// One line of CLUSTER NODES.
#[derive(Debug, Clone)]
struct NodeLine {
    id: String,
    port: u16,
    flags: String,
    master: String,
}

fn nodes(port: u16) -> Vec<NodeLine> {
    let text: String = q(port, &["CLUSTER", "NODES"]).unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let addr = f.get(1)?.split('@').next()?;
            Some(NodeLine {
                id: f[0].to_string(),
                port: addr.rsplit(':').next()?.parse().ok()?,
                flags: f.get(2)?.to_string(),
                master: f.get(3)?.to_string(),
            })
        })
        .collect()
}

fn myself(port: u16) -> Option<NodeLine> {
    nodes(port).into_iter().find(|n| n.flags.contains("myself"))
}

struct Cluster {
    /// The program of each node (ferrodis or redis-server).
    bins: Vec<&'static str>,
    nodes: Vec<Server>,
    extra: Vec<String>,
}

impl Cluster {
    /// `n` nodes, created by redis-cli with `replicas` replicas per master, all agreed and in sync.
    fn create(bin: &'static str, n: usize, replicas: usize, extra: &[&str]) -> Cluster {
        Cluster::create_of(&vec![bin; n], replicas, extra)
    }
    /// A cluster whose nodes run these programs (ferrodis and redis-server may be mixed).
    fn create_of(bins: &[&'static str], replicas: usize, extra: &[&str]) -> Cluster {
        if bins.iter().any(|b| *b != FERRODIS) {
            require_redis();
        }
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let nodes: Vec<Server> = bins.iter().map(|b| start_node(b, &extra)).collect();
        let addrs: Vec<String> = nodes.iter().map(|s| format!("127.0.0.1:{}", s.port)).collect();
        let out = std::process::Command::new("timeout")
            .arg("60")
            .arg("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .output()
            .expect("redis-cli (apt-get install redis-tools)");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let c = Cluster { bins: bins.to_vec(), nodes, extra };
        assert!(out.status.success() && text.contains("[OK] All 16384 slots covered."), "create failed:\n{text}\n{}", c.logs());
        c.wait_healthy(&c.ports());
        c
    }
    fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(|s| s.port).collect()
    }
    fn logs(&self) -> String {
        self.nodes.iter().map(|s| format!("--- node {} ---\n{}", s.port, s.log())).collect()
    }
    /// Every listed node says cluster_state:ok and every replica among them has its link up.
    fn wait_healthy(&self, ports: &[u16]) {
        let ok = wait_until(LONG, || {
            ports.iter().all(|&p| {
                let info: String = q(p, &["CLUSTER", "INFO"]).unwrap_or_default();
                let role = field(p, "replication", "role");
                info.contains("cluster_state:ok") && (role == "master" || field(p, "replication", "master_link_status") == "up")
            })
        });
        assert!(ok, "cluster not healthy\n{}", self.logs());
    }
    /// The port serving `slot`, as the first live node answering CLUSTER SLOTS says.
    fn owner(&self, slot: i64, skip: &[u16]) -> Option<u16> {
        let ports: Vec<u16> = self.ports().into_iter().filter(|p| !skip.contains(p)).collect();
        owner_among(&ports, slot)
    }
    /// The replica of the master at `port` (from the master's CLUSTER NODES).
    fn replica_of(&self, port: u16) -> u16 {
        let me = myself(port).expect("master answers").id;
        nodes(port).into_iter().find(|n| n.master == me).expect("the master has a replica").port
    }
    fn index(&self, port: u16) -> usize {
        self.nodes.iter().position(|s| s.port == port).expect("a node of this cluster")
    }
    /// Restarts the node at `port` in place (same directory: its nodes.conf and RDB).
    fn restart(&mut self, port: u16) {
        let i = self.index(port);
        let _ = self.nodes[i].child.kill();
        let _ = self.nodes[i].child.wait();
        let dir = self.nodes[i].dir.clone();
        let args = node_args(&self.extra);
        let a: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
        let child = std::process::Command::new(self.bins[i])
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir"])
            .arg(&dir)
            .args(&a)
            .stdout(std::fs::OpenOptions::new().append(true).open(dir.join("log")).expect("log"))
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("restart the node");
        std::mem::forget(std::mem::replace(&mut self.nodes[i].child, child));
        self.nodes[i].wait_ready();
    }
    fn signal(&self, port: u16, sig: &str) {
        let pid = self.nodes[self.index(port)].child.id().to_string();
        assert!(std::process::Command::new("kill").args([sig, &pid]).status().expect("kill").success());
    }
}

/// The port serving `slot`, as the first of `ports` answering CLUSTER SLOTS says.
fn owner_among(ports: &[u16], slot: i64) -> Option<u16> {
    for &p in ports {
        let Ok(ranges) = q::<Vec<redis::Value>>(p, &["CLUSTER", "SLOTS"]) else { continue };
        for r in ranges {
            let redis::Value::Array(r) = r else { continue };
            let start: i64 = redis::from_redis_value(r[0].clone()).unwrap_or(-1);
            let end: i64 = redis::from_redis_value(r[1].clone()).unwrap_or(-1);
            if (start..=end).contains(&slot) {
                let redis::Value::Array(m) = &r[2] else { continue };
                return redis::from_redis_value::<i64>(m[1].clone()).ok().map(|p| p as u16);
            }
        }
    }
    None
}

fn keyslot(port: u16, key: &str) -> i64 {
    q(port, &["CLUSTER", "KEYSLOT", key]).expect("CLUSTER KEYSLOT")
}

/// A writer that sets `{tag}:<n>` = n through whichever node serves the slot (re-located after
/// every failure, as failover.sh does), recording what was acknowledged.
struct Writer {
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<u64>>>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Writer {
    fn start(ports: Vec<u16>, tag: &'static str, dead: Arc<Mutex<Vec<u16>>>) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(Vec::new()));
        let (s, a) = (stop.clone(), acked.clone());
        let handle = std::thread::spawn(move || {
            let slot: i64 = q(ports[0], &["CLUSTER", "KEYSLOT", tag]).expect("keyslot");
            let locate = |dead: &[u16]| -> Option<u16> {
                let alive: Vec<u16> = ports.iter().copied().filter(|p| !dead.contains(p)).collect();
                owner_among(&alive, slot)
            };
            let mut n = 0u64;
            let mut target = None;
            while !s.load(Ordering::Relaxed) {
                if target.is_none() {
                    target = locate(&dead.lock().unwrap());
                }
                let ok = target.is_some_and(|p| {
                    crate::harness::conn(p).and_then(|mut c| c.set::<_, _, String>(format!("{tag}:{n}"), n)).is_ok_and(|r| r == "OK")
                });
                if ok {
                    a.lock().unwrap().push(n);
                } else {
                    target = None;
                    std::thread::sleep(Duration::from_millis(20));
                }
                n += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        Writer { stop, acked, handle: Some(handle) }
    }
    fn finish(mut self) -> Vec<u64> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
        self.acked.lock().unwrap().clone()
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Acknowledged keys the node at `port` does not have.
fn missing(port: u16, tag: &str, acked: &[u64]) -> Vec<u64> {
    let mut c = crate::harness::conn(port).expect("connect");
    acked.iter().copied().filter(|n| c.get::<_, Option<String>>(format!("{tag}:{n}")).ok().flatten().is_none()).collect()
}

/// redis-cli creates the cluster; redirects, CROSSSLOT and SELECT answer as Redis; redis-cli -c,
/// the `redis` crate's cluster client and redis-py's RedisCluster read and write through it;
/// READONLY reads on a replica; `redis-cli --cluster check`, `reshard` and `rebalance` work.
#[test]
fn redis_cli_creates_a_cluster_that_routes_and_reshards() {
    let c = Cluster::create(FERRODIS, 6, 1, &[]);
    let ports = c.ports();
    for &p in &ports {
        let info: String = q(p, &["CLUSTER", "INFO"]).unwrap();
        assert!(info.contains("cluster_known_nodes:6") && info.contains("cluster_size:3"), "{info}");
        assert_eq!(field(p, "cluster", "cluster_enabled"), "1");
        assert_eq!(field(p, "server", "redis_mode"), "cluster");
    }
    let masters: Vec<u16> = ports.iter().copied().filter(|&p| field(p, "replication", "role") == "master").collect();
    assert_eq!(masters.len(), 3);
    let slot = keyslot(ports[0], "foo");
    let owner = c.owner(slot, &[]).expect("foo's slot is served");
    let other = *masters.iter().find(|&&p| p != owner).unwrap();
    let mut raw = Client::connect(other);
    assert_eq!(raw.t(&["SET", "foo", "bar"]), format!("-MOVED {slot} 127.0.0.1:{owner}"));
    let mut raw = Client::connect(owner);
    assert_eq!(raw.t(&["SET", "foo", "bar"]), "+OK");
    assert_eq!(raw.t(&["MSET", "a", "1", "b", "2"]), "-CROSSSLOT Keys in request don't hash to the same slot");
    assert_eq!(raw.t(&["SELECT", "1"]), "-ERR SELECT is not allowed in cluster mode");
    assert_eq!(raw.t(&["SELECT", "0"]), "+OK");
    // A replica redirects reads unless READONLY was sent on the connection.
    let replica = c.replica_of(owner);
    assert!(wait_until(LONG, || q::<String>(owner, &["WAIT", "1", "100"]).is_ok()
        && field(replica, "replication", "master_link_status") == "up"));
    assert!(wait_until(LONG, || {
        let mut r = Client::connect(replica);
        r.t(&["READONLY"]) == "+OK" && r.t(&["GET", "foo"]) == "bar"
    }));
    assert_eq!(Client::connect(replica).t(&["GET", "foo"]), format!("-MOVED {slot} 127.0.0.1:{owner}"));
    assert_eq!(Client::connect(replica).t(&["SET", "foo", "x"]), format!("-MOVED {slot} 127.0.0.1:{owner}"));
    // Pub/Sub over the bus: PUBLISH reaches subscribers on every node; SPUBLISH (served by
    // the channel's shard) reaches subscribers on that shard's replica.
    let mut sub = Client::connect(other);
    sub.cmd(&["SUBSCRIBE", "news"]);
    let cslot = keyslot(owner, "{foo}ch");
    assert_eq!(cslot, slot);
    let mut ssub = Client::connect(replica);
    assert_eq!(Client::connect(other).t(&["SSUBSCRIBE", "{foo}ch"]), format!("-MOVED {slot} 127.0.0.1:{owner}"));
    ssub.cmd(&["SSUBSCRIBE", "{foo}ch"]);
    let _: i64 = q(replica, &["PUBLISH", "news", "hello"]).unwrap();
    let _: i64 = q(owner, &["SPUBLISH", "{foo}ch", "shard-hello"]).unwrap();
    let m = String::from_utf8_lossy(&sub.read_reply().unwrap()).into_owned();
    assert!(m.contains("message") && m.contains("hello"), "{m}");
    let m = String::from_utf8_lossy(&ssub.read_reply().unwrap()).into_owned();
    assert!(m.contains("smessage") && m.contains("shard-hello"), "{m}");
    // redis-cli -c follows MOVED.
    let out = std::process::Command::new("redis-cli").args(["-c", "-p", &other.to_string(), "GET", "foo"]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "bar");
    // The redis crate's cluster client.
    let client = redis::cluster::ClusterClient::new(vec![format!("redis://127.0.0.1:{}/", ports[0])]).unwrap();
    let mut cc = client.get_connection().unwrap();
    for i in 0..300 {
        let _: () = cc.set(format!("rs:{i}"), i).unwrap();
    }
    for i in 0..300 {
        assert_eq!(cc.get::<_, i64>(format!("rs:{i}")).unwrap(), i);
    }
    let counts: i64 = masters.iter().map(|&p| q::<i64>(p, &["DBSIZE"]).unwrap()).sum();
    assert_eq!(counts, 301);
    let s = keyslot(owner, "foo").to_string();
    assert_eq!(q::<i64>(owner, &["CLUSTER", "COUNTKEYSINSLOT", &s]).unwrap(), 1);
    assert_eq!(q::<Vec<String>>(owner, &["CLUSTER", "GETKEYSINSLOT", &s, "10"]).unwrap(), vec!["foo".to_string()]);
    // Every node's nodes.conf names itself.
    for n in &c.nodes {
        let conf = std::fs::read_to_string(n.dir.join("nodes.conf")).unwrap();
        assert!(conf.contains("myself") && conf.contains("vars currentEpoch"), "{conf}");
    }
    // redis-py's RedisCluster.
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/cluster_py.py");
    let run_py = |mode: &str| {
        let out = std::process::Command::new("python3")
            .arg(script)
            .arg(mode)
            .arg(ports[0].to_string())
            .output()
            .expect("python3 (and `pip install redis`, which scripts/test.sh does)");
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success() && text.contains("cluster-py ok"), "{text}\n{}", c.logs());
    };
    run_py("write");
    // Reshard 1000 slots from one master to another with redis-cli, then rebalance back.
    let from = myself(masters[0]).unwrap().id;
    let to = myself(masters[1]).unwrap().id;
    let cli = |args: &[&str]| {
        let out = std::process::Command::new("timeout").arg("120").arg("redis-cli").arg("--cluster").args(args).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
    };
    let a0 = format!("127.0.0.1:{}", masters[0]);
    let text = cli(&["reshard", &a0, "--cluster-from", &from, "--cluster-to", &to, "--cluster-slots", "1000", "--cluster-yes"]);
    assert!(!text.contains("[ERR]"), "{text}");
    assert!(
        wait_until(LONG, || cli(&["check", &a0]).contains("[OK] All nodes agree about slots configuration.")),
        "{}",
        cli(&["check", &a0])
    );
    run_py("read");
    for i in 0..300 {
        assert_eq!(cc.get::<_, i64>(format!("rs:{i}")).unwrap(), i);
    }
    let text = cli(&["rebalance", &a0, "--cluster-yes"]);
    assert!(!text.contains("[ERR]"), "{text}");
    assert!(wait_until(LONG, || cli(&["check", &a0]).contains("[OK] All 16384 slots covered.")));
    run_py("read");
}

/// A master killed (kill -9) under writes with `sync-replicas 1`: its replica takes over with
/// every acknowledged write, all 16384 slots are served again, and the old master restarted
/// rejoins as a replica of the new one.
#[test]
fn killed_master_is_replaced_with_no_acknowledged_write_lost_and_rejoins_as_replica() {
    let mut c = Cluster::create(FERRODIS, 6, 1, &["--sync-replicas", "1"]);
    let ports = c.ports();
    let slot = keyslot(ports[0], "{kill}");
    let old = c.owner(slot, &[]).unwrap();
    let replica = c.replica_of(old);
    let dead = Arc::new(Mutex::new(Vec::new()));
    let w = Writer::start(ports.clone(), "{kill}", dead.clone());
    assert!(wait_until(LONG, || w.acked.lock().unwrap().len() > 50));
    dead.lock().unwrap().push(old);
    let i = c.index(old);
    let _ = c.nodes[i].child.kill();
    let _ = c.nodes[i].child.wait();
    assert!(wait_until(LONG, || myself(replica).is_some_and(|m| m.flags.contains("master"))), "{}", c.logs());
    let alive: Vec<u16> = ports.iter().copied().filter(|&p| p != old).collect();
    c.wait_healthy(&alive);
    let before = w.acked.lock().unwrap().len();
    assert!(wait_until(LONG, || w.acked.lock().unwrap().len() > before + 20), "no writes after the failover\n{}", c.logs());
    let acked = w.finish();
    assert_eq!(c.owner(slot, &[old]), Some(replica));
    let lost = missing(replica, "{kill}", &acked);
    assert!(lost.is_empty(), "acknowledged writes lost: {:?} of {}", lost, acked.len());
    // The old master comes back as a replica of the new one.
    c.restart(old);
    assert!(
        wait_until(LONG, || myself(old)
            .is_some_and(|m| m.flags.contains("slave") && Some(m.master.clone()) == myself(replica).map(|r| r.id))),
        "{}",
        c.logs()
    );
    c.wait_healthy(&ports);
    assert!(missing(replica, "{kill}", &acked).is_empty());
}

/// A hung master (SIGSTOP past cluster-node-timeout) is failed over; after SIGCONT it learns
/// the new configuration and becomes a replica of its replica.
#[test]
fn hung_master_is_failed_over_and_demoted_after_sigcont() {
    let c = Cluster::create(FERRODIS, 6, 1, &[]);
    let ports = c.ports();
    let slot = keyslot(ports[0], "{hang}");
    let old = c.owner(slot, &[]).unwrap();
    let replica = c.replica_of(old);
    let _: String = q(old, &["SET", "{hang}x", "before"]).unwrap();
    assert_eq!(q::<i64>(old, &["WAIT", "1", "5000"]).unwrap(), 1);
    c.signal(old, "-STOP");
    assert!(wait_until(LONG, || myself(replica).is_some_and(|m| m.flags.contains("master"))), "{}", c.logs());
    let alive: Vec<u16> = ports.iter().copied().filter(|&p| p != old).collect();
    c.wait_healthy(&alive);
    let _: String = q(replica, &["SET", "{hang}x", "after"]).unwrap();
    c.signal(old, "-CONT");
    let new_id = myself(replica).unwrap().id;
    assert!(wait_until(LONG, || myself(old).is_some_and(|m| m.flags.contains("slave") && m.master == new_id)), "{}", c.logs());
    c.wait_healthy(&ports);
    assert!(wait_until(LONG, || {
        let Ok(mut con) = crate::harness::conn(old) else { return false };
        redis::cmd("READONLY").query::<String>(&mut con).is_ok()
            && con.get::<_, Option<String>>("{hang}x").ok().flatten().as_deref() == Some("after")
    }));
    assert_eq!(Client::connect(old).t(&["SET", "{hang}x", "y"]), format!("-MOVED {slot} 127.0.0.1:{replica}"));
}

/// A master cut off from the other masters (they hang) sees it is in the minority after
/// cluster-node-timeout and refuses commands with CLUSTERDOWN; it serves again once they are back.
#[test]
fn a_master_in_the_minority_stops_accepting_writes() {
    let c = Cluster::create(FERRODIS, 3, 0, &[]);
    let ports = c.ports();
    let lone = ports[0];
    let key = (0..1000).map(|i| format!("k{i}")).find(|k| c.owner(keyslot(lone, k), &[]) == Some(lone)).unwrap();
    assert_eq!(Client::connect(lone).t(&["SET", &key, "1"]), "+OK");
    for &p in &ports[1..] {
        c.signal(p, "-STOP");
    }
    let down = wait_until(LONG, || Client::connect(lone).t(&["SET", &key, "2"]) == "-CLUSTERDOWN The cluster is down");
    for &p in &ports[1..] {
        c.signal(p, "-CONT");
    }
    assert!(down, "the lone master kept accepting writes\n{}", c.logs());
    c.wait_healthy(&ports);
    assert!(wait_until(LONG, || Client::connect(lone).t(&["SET", &key, "3"]) == "+OK"));
}

/// CLUSTER FAILOVER on a replica under writes: the roles swap and no acknowledged write is lost.
#[test]
fn manual_failover_loses_no_write() {
    let c = Cluster::create(FERRODIS, 6, 1, &[]);
    let ports = c.ports();
    let slot = keyslot(ports[0], "{manual}");
    let old = c.owner(slot, &[]).unwrap();
    let replica = c.replica_of(old);
    let w = Writer::start(ports.clone(), "{manual}", Arc::new(Mutex::new(Vec::new())));
    assert!(wait_until(LONG, || w.acked.lock().unwrap().len() > 50));
    assert_eq!(q::<String>(replica, &["CLUSTER", "FAILOVER"]).unwrap(), "OK");
    assert!(wait_until(LONG, || myself(replica).is_some_and(|m| m.flags.contains("master"))), "{}", c.logs());
    assert!(wait_until(LONG, || myself(old).is_some_and(|m| m.flags.contains("slave"))), "{}", c.logs());
    let before = w.acked.lock().unwrap().len();
    assert!(wait_until(LONG, || w.acked.lock().unwrap().len() > before + 20));
    let acked = w.finish();
    let lost = missing(replica, "{manual}", &acked);
    assert!(lost.is_empty(), "acknowledged writes lost: {:?} of {}", lost, acked.len());
    c.wait_healthy(&ports);
}

/// A replica shut down (SHUTDOWN SAVE) and restarted continues from its RDB with a partial
/// resync, while every slot stays served.
#[test]
fn restarted_replica_resyncs_partially_while_the_cluster_serves() {
    let mut c = Cluster::create(FERRODIS, 6, 1, &[]);
    let ports = c.ports();
    let master = c.owner(keyslot(ports[0], "{rr}"), &[]).unwrap();
    let replica = c.replica_of(master);
    for i in 0..100 {
        let _: String = q(master, &["SET", &format!("{{rr}}{i}"), "v"]).unwrap();
    }
    assert_eq!(q::<i64>(master, &["WAIT", "1", "5000"]).unwrap(), 1);
    let partial_before: i64 = field(master, "stats", "sync_partial_ok").parse().unwrap();
    let _ = q::<String>(replica, &["SHUTDOWN", "SAVE"]);
    let i = c.index(replica);
    assert!(c.nodes[i].wait_exit(LONG).is_some());
    // Every slot is still served while the replica is away.
    let alive: Vec<u16> = ports.iter().copied().filter(|&p| p != replica).collect();
    c.wait_healthy(&alive);
    let _: String = q(master, &["SET", "{rr}during", "v"]).unwrap();
    c.restart(replica);
    c.wait_healthy(&ports);
    let partial_after: i64 = field(master, "stats", "sync_partial_ok").parse().unwrap();
    assert_eq!(partial_after, partial_before + 1, "{}", c.logs());
    assert!(wait_until(LONG, || {
        let Ok(mut con) = crate::harness::conn(replica) else { return false };
        redis::cmd("READONLY").query::<String>(&mut con).is_ok() && con.get::<_, Option<String>>("{rr}during").ok().flatten().is_some()
    }));
}

/// One slot moved with SETSLOT and MIGRATE, batch by batch, while a client writes and reads back
/// keys of that slot through the redis crate's cluster client (following ASK and MOVED): no key
/// lost, none left behind, and no client error.
#[test]
fn slot_moves_under_writes_with_no_key_lost() {
    let c = Cluster::create(FERRODIS, 3, 0, &[]);
    let ports = c.ports();
    let slot = keyslot(ports[0], "{mv}");
    let src = c.owner(slot, &[]).unwrap();
    let dst = *ports.iter().find(|&&p| p != src).unwrap();
    let src_id = myself(src).unwrap().id;
    let dst_id = myself(dst).unwrap().id;
    for i in 0..300 {
        let _: String = q(src, &["SET", &format!("{{mv}}pre{i}"), &i.to_string()]).unwrap();
    }
    let stop = Arc::new(AtomicBool::new(false));
    let (stop2, seed) = (stop.clone(), ports[0]);
    let writer = std::thread::spawn(move || -> Result<usize, String> {
        let client = redis::cluster::ClusterClient::new(vec![format!("redis://127.0.0.1:{seed}/")]).unwrap();
        let mut cc = client.get_connection().map_err(|e| e.to_string())?;
        let mut n = 0usize;
        while !stop2.load(Ordering::Relaxed) {
            let k = format!("{{mv}}w{n}");
            cc.set::<_, _, ()>(&k, n).map_err(|e| format!("SET {k}: {e}"))?;
            let v: usize = cc.get(&k).map_err(|e| format!("GET {k}: {e}"))?;
            if v != n {
                return Err(format!("{k} read back {v}"));
            }
            n += 1;
            std::thread::sleep(Duration::from_millis(2));
        }
        Ok(n)
    });
    std::thread::sleep(Duration::from_millis(300));
    let s = slot.to_string();
    assert_eq!(q::<String>(dst, &["CLUSTER", "SETSLOT", &s, "IMPORTING", &src_id]).unwrap(), "OK");
    assert_eq!(q::<String>(src, &["CLUSTER", "SETSLOT", &s, "MIGRATING", &dst_id]).unwrap(), "OK");
    loop {
        let keys: Vec<String> = q(src, &["CLUSTER", "GETKEYSINSLOT", &s, "20"]).unwrap();
        if keys.is_empty() {
            break;
        }
        let mut args =
            vec!["MIGRATE".to_string(), "127.0.0.1".into(), dst.to_string(), "".into(), "0".into(), "5000".into(), "KEYS".into()];
        args.extend(keys);
        let a: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
        assert_eq!(q::<String>(src, &a).unwrap(), "OK");
        std::thread::sleep(Duration::from_millis(30));
    }
    for p in [dst, src] {
        assert_eq!(q::<String>(p, &["CLUSTER", "SETSLOT", &s, "NODE", &dst_id]).unwrap(), "OK");
    }
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    let written = writer.join().unwrap().unwrap_or_else(|e| panic!("client error during the move: {e}\n{}", c.logs()));
    assert!(written > 10);
    assert_eq!(q::<i64>(src, &["CLUSTER", "COUNTKEYSINSLOT", &s]).unwrap(), 0);
    assert_eq!(q::<i64>(dst, &["CLUSTER", "COUNTKEYSINSLOT", &s]).unwrap(), 300 + written as i64);
    assert!(wait_until(LONG, || ports.iter().all(|&p| c.owner(slot, &[]) == Some(dst) && myself(p).is_some())));
    let mut con = crate::harness::conn(dst).unwrap();
    for i in 0..300 {
        assert_eq!(con.get::<_, String>(format!("{{mv}}pre{i}")).unwrap(), i.to_string());
    }
    assert!(wait_until(LONG, || ports
        .iter()
        .all(|&p| Client::connect(p).t(&["GET", "{mv}pre1"]) != format!("-MOVED {slot} 127.0.0.1:{src}"))));
}

/// CLUSTER replies and errors compared byte for byte with redis-server 7.0's, each a one-node
/// cluster owning every slot.
#[test]
fn cluster_replies_match_redis() {
    let ours = start_node(FERRODIS, &[]);
    require_redis();
    let theirs = start_node("redis-server", &[]);
    for s in [&ours, &theirs] {
        assert_eq!(Client::connect(s.port).t(&["CLUSTER", "ADDSLOTSRANGE", "0", "16383"]), "+OK");
    }
    let cases: &[&[&str]] = &[
        &["CLUSTER", "KEYSLOT", "foo"],
        &["CLUSTER", "KEYSLOT", "{user1000}.following"],
        &["CLUSTER", "ADDSLOTS", "99999"],
        &["CLUSTER", "ADDSLOTS", "5"],
        &["CLUSTER", "ADDSLOTS", "x"],
        &["CLUSTER", "ADDSLOTSRANGE", "1", "2", "3"],
        &["CLUSTER", "ADDSLOTSRANGE", "10", "5"],
        &["CLUSTER", "DELSLOTS", "16384"],
        &["CLUSTER", "COUNTKEYSINSLOT", "-1"],
        &["CLUSTER", "COUNTKEYSINSLOT", "x"],
        &["CLUSTER", "COUNTKEYSINSLOT", "7"],
        &["CLUSTER", "GETKEYSINSLOT", "1", "-1"],
        &["CLUSTER", "GETKEYSINSLOT", "1", "10"],
        &["CLUSTER", "REPLICATE", "0000000000000000000000000000000000000000"],
        &["CLUSTER", "FORGET", "0000000000000000000000000000000000000000"],
        &["CLUSTER", "COUNT-FAILURE-REPORTS", "0000000000000000000000000000000000000000"],
        &["CLUSTER", "FAILOVER"],
        &["CLUSTER", "FAILOVER", "bogus"],
        &["CLUSTER", "SETSLOT", "1", "bogus"],
        &["CLUSTER", "SETSLOT", "1", "MIGRATING", "0000000000000000000000000000000000000000"],
        &["CLUSTER", "SETSLOT", "1", "IMPORTING", "0000000000000000000000000000000000000000"],
        &["CLUSTER", "SETSLOT", "1", "NODE", "0000000000000000000000000000000000000000"],
        &["CLUSTER", "SET-CONFIG-EPOCH", "-1"],
        &["CLUSTER", "MEET", "nonsense", "7000"],
        &["CLUSTER", "MEET", "127.0.0.1", "x"],
        &["CLUSTER", "RESET", "bogus"],
        &["CLUSTER", "BOGUS"],
        &["CLUSTER"],
        &["SELECT", "1"],
        &["SELECT", "0"],
        &["SET", "foo", "1"],
        &["MSET", "foo", "1", "bar", "2"],
        &["MSET", "{a}1", "1", "{a}2", "2"],
        &["READONLY"],
        &["READWRITE"],
        &["ASKING"],
        &["CLUSTER", "COUNTKEYSINSLOT", "12182"],
    ];
    let (mut a, mut b) = (Client::connect(ours.port), Client::connect(theirs.port));
    for case in cases {
        assert_eq!(a.text(case), b.text(case), "{:?}", case);
    }
    // CLUSTER INFO: the same fields in the same order (values differ: ids, message counts).
    let names = |p: u16| -> Vec<String> {
        let t: String = q(p, &["CLUSTER", "INFO"]).unwrap();
        t.lines().map(|l| l.split(':').next().unwrap().to_string()).filter(|n| !n.starts_with("cluster_stats_messages_")).collect()
    };
    assert_eq!(names(ours.port), names(theirs.port));
    // CLUSTER SLOTS and SHARDS: the same shape once ids and ports are masked.
    let mask = |p: u16, args: &[&str]| -> String {
        let id: String = q(p, &["CLUSTER", "MYID"]).unwrap();
        let raw = Client::connect(p).cmd(args);
        String::from_utf8_lossy(&raw).replace(&id, "ID").replace(&p.to_string(), "PORT").replace(&(p as u32 + 10000).to_string(), "CPORT")
    };
    assert_eq!(mask(ours.port, &["CLUSTER", "SLOTS"]), mask(theirs.port, &["CLUSTER", "SLOTS"]));
    let shards = |p: u16| -> String {
        let s = mask(p, &["CLUSTER", "SHARDS"]);
        // The replication offset differs between the two servers.
        s.lines().filter(|l| !l.starts_with(':')).collect::<Vec<_>>().join("\n")
    };
    assert_eq!(shards(ours.port), shards(theirs.port));
    // CLUSTER NODES: the same line once ids, ports and timestamps are masked.
    let line = |p: u16| -> Vec<String> {
        let t = mask(p, &["CLUSTER", "NODES"]);
        let l = t.lines().nth(1).unwrap_or_default().to_string();
        let mut f: Vec<String> = l.split(' ').map(|s| s.to_string()).collect();
        if f.len() > 5 {
            f[5] = "T".into();
        }
        f
    };
    assert_eq!(line(ours.port), line(theirs.port));
}

/// ferrodis and redis-server nodes in one cluster: redis-cli creates it, both kinds agree on the
/// configuration, and a master of each kind killed is replaced by its replica, whichever kind
/// it is (votes and FAIL reports cross between the two implementations); the killed masters
/// restarted rejoin as replicas.
#[test]
fn ferrodis_and_redis_nodes_form_one_cluster_and_fail_over_each_other() {
    let bins = [FERRODIS, "redis-server", FERRODIS, "redis-server", FERRODIS, "redis-server"];
    let mut c = Cluster::create_of(&bins, 1, &[]);
    let ports = c.ports();
    let client = redis::cluster::ClusterClient::new(vec![format!("redis://127.0.0.1:{}/", ports[0])]).unwrap();
    let mut cc = client.get_connection().unwrap();
    for i in 0..200 {
        let _: () = cc.set(format!("mix:{i}"), i).unwrap();
    }
    let mut dead = Vec::new();
    for kind in [FERRODIS, "redis-server"] {
        let Some(victim) = ports
            .iter()
            .copied()
            .find(|&p| c.bins[c.index(p)] == kind && !dead.contains(&p) && myself(p).is_some_and(|m| m.flags.contains("master")))
        else {
            continue;
        };
        let replica = c.replica_of(victim);
        let i = c.index(victim);
        let _ = c.nodes[i].child.kill();
        let _ = c.nodes[i].child.wait();
        dead.push(victim);
        assert!(wait_until(LONG, || myself(replica).is_some_and(|m| m.flags.contains("master"))), "{}", c.logs());
        let alive: Vec<u16> = ports.iter().copied().filter(|p| !dead.contains(p)).collect();
        c.wait_healthy(&alive);
    }
    assert_eq!(dead.len(), 2, "a master of each kind");
    for p in dead.clone() {
        c.restart(p);
    }
    assert!(wait_until(LONG, || dead.iter().all(|&p| myself(p).is_some_and(|m| m.flags.contains("slave")))), "{}", c.logs());
    c.wait_healthy(&ports);
    let client = redis::cluster::ClusterClient::new(vec![format!("redis://127.0.0.1:{}/", ports[1])]).unwrap();
    let mut cc = client.get_connection().unwrap();
    for i in 0..200 {
        assert_eq!(cc.get::<_, i64>(format!("mix:{i}")).unwrap(), i);
    }
}

/// Replica migration: a master that loses its only replica gets one from the master that has
/// two (7 nodes: 3 masters, 4 replicas; `cluster-migration-barrier 1`).
#[test]
fn orphaned_master_receives_a_migrating_replica() {
    let mut c = Cluster::create(FERRODIS, 7, 1, &[]);
    let ports = c.ports();
    let replicas_of = |m: u16| -> Vec<u16> {
        let id = myself(m).map(|n| n.id).unwrap_or_default();
        nodes(m).into_iter().filter(|n| n.master == id && !n.flags.contains("fail")).map(|n| n.port).collect()
    };
    let masters: Vec<u16> = ports.iter().copied().filter(|&p| field(p, "replication", "role") == "master").collect();
    assert_eq!(masters.len(), 3);
    let poor = *masters.iter().find(|&&m| replicas_of(m).len() == 1).expect("a master with one replica");
    let victim = replicas_of(poor)[0];
    let i = c.index(victim);
    let _ = c.nodes[i].child.kill();
    let _ = c.nodes[i].child.wait();
    let ok = wait_until(LONG, || {
        replicas_of(poor).into_iter().any(|r| r != victim && field(r, "replication", "master_port") == poor.to_string())
    });
    assert!(ok, "no replica migrated to the orphaned master\n{}", c.logs());
    let alive: Vec<u16> = ports.iter().copied().filter(|&p| p != victim).collect();
    c.wait_healthy(&alive);
    c.restart(victim);
    c.wait_healthy(&ports);
}

/// redis-py's RedisCluster keeps writing across a failover: the test script kills the master of
/// its keys' slot and goes on through the same client until the promoted replica takes writes.
#[test]
fn redis_py_cluster_client_follows_a_failover() {
    let c = Cluster::create(FERRODIS, 6, 1, &["--sync-replicas", "1"]);
    let ports = c.ports();
    let victim = c.owner(keyslot(ports[0], "{py}"), &[]).unwrap();
    let pid = c.nodes[c.index(victim)].child.id().to_string();
    let seed = ports.iter().find(|&&p| p != victim).unwrap().to_string();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/cluster_py.py");
    let out = std::process::Command::new("python3")
        .args([script, "failover", &seed, "{py}", &pid])
        .output()
        .expect("python3 (and `pip install redis`, which scripts/test.sh does)");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && text.contains("cluster-py ok"), "{text}\n{}", c.logs());
}

/// A master killed under a consumer-group workload (`sync-replicas 1`): its replica takes over
/// with every acknowledged XADD and XACK.
#[test]
fn killed_master_in_a_consumer_group_workload_keeps_every_acknowledged_xadd_and_xack() {
    let mut c = Cluster::create(FERRODIS, 6, 1, &["--sync-replicas", "1"]);
    let ports = c.ports();
    let key = "{xs}s";
    let slot = keyslot(ports[0], key);
    let old = c.owner(slot, &[]).unwrap();
    let replica = c.replica_of(old);
    let _: String = q(old, &["XGROUP", "CREATE", key, "g", "$", "MKSTREAM"]).unwrap();
    let (stop, added, acked) = (Arc::new(AtomicBool::new(false)), Arc::new(Mutex::new(Vec::new())), Arc::new(Mutex::new(Vec::new())));
    let dead = Arc::new(Mutex::new(Vec::new()));
    let worker = {
        let (stop, added, acked, dead, ports) = (stop.clone(), added.clone(), acked.clone(), dead.clone(), ports.clone());
        std::thread::spawn(move || {
            let mut n = 1u64;
            let mut target: Option<redis::Connection> = None;
            while !stop.load(Ordering::Relaxed) {
                if target.is_none() {
                    let alive: Vec<u16> = ports.iter().copied().filter(|p| !dead.lock().unwrap().contains(p)).collect();
                    target = owner_among(&alive, slot).and_then(|p| crate::harness::conn(p).ok());
                }
                if let Some(con) = target.as_mut() {
                    if !crate::streams::workload_step(con, key, n, &added, &acked) {
                        target = None;
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }
                n += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    assert!(wait_until(LONG, || acked.lock().unwrap().len() > 20), "no acknowledged XACKs");
    dead.lock().unwrap().push(old);
    let i = c.index(old);
    let _ = c.nodes[i].child.kill();
    let _ = c.nodes[i].child.wait();
    assert!(wait_until(LONG, || myself(replica).is_some_and(|m| m.flags.contains("master"))), "{}", c.logs());
    let before = added.lock().unwrap().len();
    assert!(wait_until(LONG, || added.lock().unwrap().len() > before + 50), "no XADDs after the failover\n{}", c.logs());
    stop.store(true, Ordering::Relaxed);
    let _ = worker.join();
    let (added, acked) = (added.lock().unwrap().clone(), acked.lock().unwrap().clone());
    crate::streams::assert_kept(replica, key, &added, &acked);
}

/// Clients blocked on a slot that moves away: a group reader whose stream MIGRATE takes is told
/// `-UNBLOCKED the stream key no longer exists`; a plain XREAD and a BLPOP are told `-MOVED`
/// once the slot is assigned to the other node (Redis's clusterRedirectBlockedClientIfNeeded).
#[test]
fn blocked_clients_of_a_moved_slot_are_unblocked_or_redirected() {
    // The same steps on redis-server nodes, then on ferrodis nodes.
    blocked_clients_of_a_moved_slot("redis-server");
    blocked_clients_of_a_moved_slot(FERRODIS);
}

fn blocked_clients_of_a_moved_slot(bin: &'static str) {
    let c = Cluster::create(bin, 3, 0, &[]);
    let ports = c.ports();
    let slot = keyslot(ports[0], "{bl}");
    let src = c.owner(slot, &[]).unwrap();
    let dst = *ports.iter().find(|&&p| p != src).unwrap();
    let (src_id, dst_id) = (myself(src).unwrap().id, myself(dst).unwrap().id);
    let _: String = q(src, &["XGROUP", "CREATE", "{bl}s", "g", "$", "MKSTREAM"]).unwrap();
    let send = |args: &[&str]| {
        let mut cl = Client::connect(src);
        let a: Vec<&[u8]> = args.iter().map(|x| x.as_bytes()).collect();
        cl.send(&crate::harness::encode(&a));
        cl
    };
    let blocked = || field(src, "clients", "blocked_clients");
    let mut group = send(&["XREADGROUP", "GROUP", "g", "c", "BLOCK", "0", "STREAMS", "{bl}s", ">"]);
    let mut plain = send(&["XREAD", "BLOCK", "0", "STREAMS", "{bl}t", "$"]);
    let mut list = send(&["BLPOP", "{bl}l", "0"]);
    assert!(wait_until(LONG, || blocked() == "3"), "clients did not block");
    let s = slot.to_string();
    assert_eq!(q::<String>(dst, &["CLUSTER", "SETSLOT", &s, "IMPORTING", &src_id]).unwrap(), "OK");
    assert_eq!(q::<String>(src, &["CLUSTER", "SETSLOT", &s, "MIGRATING", &dst_id]).unwrap(), "OK");
    let r: String = q(src, &["MIGRATE", "127.0.0.1", &dst.to_string(), "{bl}s", "0", "5000"]).unwrap();
    assert_eq!(r, "OK");
    let reply = String::from_utf8_lossy(&group.read_reply().expect("the group reader's reply")).into_owned();
    assert_eq!(reply, "-UNBLOCKED the stream key no longer exists\r\n", "{bin}");
    for p in [src, dst] {
        assert_eq!(q::<String>(p, &["CLUSTER", "SETSLOT", &s, "NODE", &dst_id]).unwrap(), "OK");
    }
    let moved = format!("-MOVED {slot} 127.0.0.1:{dst}\r\n");
    for cl in [&mut plain, &mut list] {
        let reply = String::from_utf8_lossy(&cl.read_reply().expect("a redirect")).into_owned();
        assert_eq!(reply, moved, "{bin}");
    }
}
