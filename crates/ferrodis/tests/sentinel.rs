//! Sentinel mode: three sentinels, a master and replicas, each a process on loopback. A killed
//! master (kill -9 under writes), a hung one (SIGSTOP past down-after-milliseconds, then
//! SIGCONT), the hot standby (lowest replica-priority) chosen and skipped, a leader that dies
//! after promoting, a quorum not reached, the state kept across a restart, Redis Sentinel over
//! ferrodis, ferrodis sentinels over redis-server, both kinds electing together, and the `redis`
//! crate's and redis-py's sentinel clients. Every wait has a deadline.

use crate::harness::{conn, field, free_port, launch_at, q, require_redis, tempdir, wait_until, Server, FERRODIS};
use redis::{Commands, FromRedisValue};
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const LONG: Duration = Duration::from_secs(60);

/// A sentinel binary: ferrodis (`ferrodis sentinel.conf --sentinel`) or Redis's.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Ferrodis,
    Redis,
}

/// Starts a sentinel watching `master_port` as "m" with the given quorum and timeouts.
fn sentinel(kind: Kind, master_port: u16, quorum: u32, down_after: u64, failover_timeout: u64, extra: &str) -> Server {
    if kind == Kind::Redis {
        require_redis();
    }
    let port = free_port();
    let dir = tempdir("sentinel");
    let conf = dir.join("sentinel.conf");
    std::fs::write(
        &conf,
        format!(
            "port {port}\nbind 127.0.0.1\ndir {}\nsentinel monitor m 127.0.0.1 {master_port} {quorum}\n\
             sentinel down-after-milliseconds m {down_after}\nsentinel failover-timeout m {failover_timeout}\n{extra}",
            dir.display()
        ),
    )
    .expect("write sentinel.conf");
    let bin = if kind == Kind::Ferrodis { FERRODIS } else { "redis-sentinel" };
    let child = std::process::Command::new(bin)
        .arg(&conf)
        .arg("--sentinel")
        .current_dir(&dir)
        .stdout(std::fs::File::create(dir.join("log")).expect("log"))
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start a sentinel");
    let s = Server { child, port, dir };
    s.wait_ready();
    s
}

fn server(bin: &str, port: u16, dir: std::path::PathBuf, args: &[&str]) -> Server {
    let s = launch_at(bin, port, args, dir);
    s.wait_ready();
    s
}

struct Group {
    master: Server,
    replicas: Vec<Server>,
    sentinels: Vec<Server>,
}

/// A master, replicas (with these priorities) and sentinels of these kinds, all agreed: every
/// sentinel knows every replica and the other sentinels, and every replica is in sync.
fn group(bin: &str, priorities: &[u32], kinds: &[Kind], quorum: u32, server_args: &[&str]) -> Group {
    let master = server(bin, free_port(), tempdir("sm"), server_args);
    let mp = master.port.to_string();
    let replicas: Vec<Server> = priorities
        .iter()
        .map(|p| {
            let p = p.to_string();
            let mut a = vec!["--replicaof", "127.0.0.1", mp.as_str(), "--replica-priority", p.as_str()];
            a.extend_from_slice(server_args);
            server(bin, free_port(), tempdir("sr"), &a)
        })
        .collect();
    let sentinels: Vec<Server> = kinds.iter().map(|k| sentinel(*k, master.port, quorum, 1000, 10_000, "")).collect();
    let g = Group { master, replicas, sentinels };
    g.wait_agreed(g.master.port);
    g
}

impl Group {
    fn addr(&self, s: &Server) -> Option<u16> {
        let a: Vec<String> = q(s.port, &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", "m"]).ok()?;
        a.get(1)?.parse().ok()
    }
    /// Waits until every sentinel names `master` and knows the replicas and sentinels, and
    /// every live replica follows `master` with its link up.
    fn wait_agreed(&self, master: u16) {
        let n = self.sentinels.len();
        let ok = wait_until(LONG, || {
            self.sentinels.iter().all(|s| {
                // Replicas known, connected and heard from (INFO), so they can be chosen.
                let reps: Vec<std::collections::HashMap<String, String>> = q(s.port, &["SENTINEL", "REPLICAS", "m"]).unwrap_or_default();
                let ready = reps
                    .iter()
                    .filter(|r| {
                        r.get("flags").map(String::as_str) == Some("slave") && r.get("master-link-status").map(String::as_str) == Some("ok")
                    })
                    .count();
                let sens: Vec<redis::Value> = q(s.port, &["SENTINEL", "SENTINELS", "m"]).unwrap_or_default();
                self.addr(s) == Some(master) && ready >= self.replicas.len() && sens.len() == n - 1
            })
        });
        assert!(ok, "sentinels did not agree on master {}:\n{}", master, self.logs());
    }
    fn logs(&self) -> String {
        let mut out = String::new();
        for s in &self.sentinels {
            out.push_str(&format!("--- sentinel {}\n{}\n", s.port, s.log()));
        }
        out
    }
    /// Kills the master (SIGKILL) and waits until every sentinel names a new one and the
    /// other replica follows it; returns the new master's port.
    fn kill_master_and_fail_over(&mut self) -> u16 {
        let old = self.master.port;
        let _ = self.master.child.kill();
        let all: Vec<&Server> = self.sentinels.iter().collect();
        let new = self.wait_switch(old, &all);
        let other = self.replicas.iter().find(|r| r.port != new).expect("two replicas").port;
        assert!(wait_until(LONG, || follows(other, new)), "{}", self.logs());
        new
    }
    /// Sets `key` on the master and waits until every replica has it.
    fn set_everywhere(&self, key: &str, value: &str) {
        let _: String = q(self.master.port, &["SET", key, value]).unwrap();
        let ok = wait_until(LONG, || self.replicas.iter().all(|r| q::<Option<String>>(r.port, &["GET", key]).ok().flatten().is_some()));
        assert!(ok, "{key} did not reach every replica");
    }
    /// Waits until every listed sentinel names a master other than `old`; returns it.
    fn wait_switch(&self, old: u16, sentinels: &[&Server]) -> u16 {
        let mut new = 0;
        let ok = wait_until(LONG, || {
            let addrs: HashSet<Option<u16>> = sentinels.iter().map(|s| self.addr(s)).collect();
            match addrs.into_iter().collect::<Vec<_>>()[..] {
                [Some(p)] if p != old => {
                    new = p;
                    true
                }
                _ => false,
            }
        });
        assert!(ok, "no failover away from {}:\n{}", old, self.logs());
        new
    }
}

fn follows(port: u16, master: u16) -> bool {
    field(port, "replication", "role") == "slave"
        && field(port, "replication", "master_port") == master.to_string()
        && field(port, "replication", "master_link_status") == "up"
}

/// Writes `k:N` to wherever the sentinels say the master is, and records the acknowledged N.
struct Writer {
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<u64>>>,
    after: Arc<Mutex<Vec<(u16, u64)>>>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Writer {
    fn start(sentinels: Vec<u16>) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(Vec::new()));
        let after = Arc::new(Mutex::new(Vec::new()));
        let (st, ac, af) = (stop.clone(), acked.clone(), after.clone());
        let handle = std::thread::spawn(move || {
            let mut n = 0u64;
            let mut c: Option<(u16, redis::Connection)> = None;
            while !st.load(Ordering::Relaxed) {
                if c.is_none() {
                    let port = sentinels.iter().find_map(|s| {
                        let a: Vec<String> = q(*s, &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", "m"]).ok()?;
                        a.get(1)?.parse::<u16>().ok()
                    });
                    c = port.and_then(|p| Some((p, conn(p).ok()?)));
                }
                if let Some((p, con)) = c.as_mut() {
                    let r: redis::RedisResult<String> = con.set(format!("k:{n}"), n);
                    match r {
                        Ok(_) => {
                            ac.lock().unwrap().push(n);
                            af.lock().unwrap().push((*p, n));
                        }
                        Err(_) => c = None,
                    }
                }
                n += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        Writer { stop, acked, after, handle: Some(handle) }
    }
    fn acked_on(&self, port: u16) -> usize {
        self.after.lock().unwrap().iter().filter(|(p, _)| *p == port).count()
    }
    fn finish(mut self) -> Vec<u64> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
        self.acked.lock().unwrap().clone()
    }
}

fn lost(port: u16, acked: &[u64]) -> Vec<u64> {
    let mut c = conn(port).expect("connect to the new master");
    acked.iter().copied().filter(|n| c.get::<_, Option<u64>>(format!("k:{n}")).ok().flatten().is_none()).collect()
}

#[test]
fn killed_master_under_writes_fails_over_and_rejoins_as_replica_with_no_acknowledged_write_lost() {
    // sync-replicas 1: every acknowledged write is on a replica before its reply.
    let args = ["--sync-replicas", "1", "--sync-replicas-timeout", "500"];
    let mut g = group(FERRODIS, &[100, 100], &[Kind::Ferrodis; 3], 2, &args);
    let old = g.master.port;
    let w = Writer::start(g.sentinels.iter().map(|s| s.port).collect());
    assert!(wait_until(LONG, || w.acked.lock().unwrap().len() > 100), "no writes acknowledged");
    let _ = g.master.child.kill();
    let _ = g.master.child.wait();
    let all: Vec<&Server> = g.sentinels.iter().collect();
    let new = g.wait_switch(old, &all);
    // Clients reconnect: writes are acknowledged by the new master.
    assert!(wait_until(LONG, || w.acked_on(new) > 50), "no writes on the new master:\n{}", g.logs());
    let other = g.replicas.iter().find(|r| r.port != new).expect("two replicas").port;
    assert!(wait_until(LONG, || follows(other, new)), "the other replica does not follow {}:\n{}", new, g.logs());
    // The old master comes back and is made a replica of the new one.
    let dir = tempdir("sm-again");
    let back = server(FERRODIS, old, dir, &args);
    assert!(wait_until(LONG, || follows(back.port, new)), "the old master did not rejoin:\n{}", g.logs());
    let acked = w.finish();
    let gone = lost(new, &acked);
    assert!(gone.is_empty(), "{} of {} acknowledged writes lost: {:?}", gone.len(), acked.len(), &gone[..gone.len().min(10)]);
    // Every sentinel's config file holds the new master and the old one as a replica.
    for s in &g.sentinels {
        let conf = std::fs::read_to_string(s.dir.join("sentinel.conf")).unwrap();
        assert!(conf.contains(&format!("sentinel monitor m 127.0.0.1 {new} 2")), "{conf}");
        assert!(conf.contains(&format!("sentinel known-replica m 127.0.0.1 {old}")), "{conf}");
    }
    g.master = back;
}

#[test]
fn hot_standby_is_promoted_first_and_skipped_when_down() {
    // Replica 0 is the hot standby (lowest priority).
    let g = group(FERRODIS, &[10, 100, 100], &[Kind::Ferrodis], 1, &[]);
    let s = g.sentinels[0].port;
    let standby = g.replicas[0].port;
    let _: String = q(s, &["SENTINEL", "FAILOVER", "m"]).expect("SENTINEL FAILOVER");
    let new = g.wait_switch(g.master.port, &[&g.sentinels[0]]);
    assert_eq!(new, standby, "the hot standby was not chosen:\n{}", g.logs());
    // The old master and the other replicas follow it.
    for p in [g.master.port, g.replicas[1].port, g.replicas[2].port] {
        assert!(wait_until(LONG, || follows(p, new)), "{} does not follow the standby:\n{}", p, g.logs());
    }
    // Now replica 2 is the standby (priority 5) and replica 1 may never be promoted (0); with
    // replica 2 down, the old master (priority 100) is the one left to choose.
    let _: String = q(g.replicas[2].port, &["CONFIG", "SET", "replica-priority", "5"]).unwrap();
    let _: String = q(g.replicas[1].port, &["CONFIG", "SET", "replica-priority", "0"]).unwrap();
    let priorities = |p: u16| {
        let reps: Vec<std::collections::HashMap<String, String>> = q(s, &["SENTINEL", "REPLICAS", "m"]).unwrap_or_default();
        reps.into_iter()
            .find(|r| r.get("port").map(String::as_str) == Some(p.to_string().as_str()))
            .and_then(|r| r.get("slave-priority").cloned())
    };
    assert!(wait_until(LONG, || priorities(g.replicas[2].port).as_deref() == Some("5")
        && priorities(g.replicas[1].port).as_deref() == Some("0")));
    let mut replicas = g.replicas;
    let _ = replicas[2].child.kill();
    let _ = replicas[2].child.wait();
    assert!(wait_until(LONG, || q::<String>(s, &["SENTINEL", "FAILOVER", "m"]).is_ok()), "{}", g.sentinels[0].log());
    let newer = wait_switch_from(&g.sentinels[0], standby);
    assert_eq!(newer, g.master.port, "expected the old master, the only eligible replica:\n{}", g.sentinels[0].log());
}

fn wait_switch_from(s: &Server, old: u16) -> u16 {
    let mut new = 0;
    let ok = wait_until(LONG, || {
        let a: Vec<String> = q(s.port, &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", "m"]).unwrap_or_default();
        new = a.get(1).and_then(|p| p.parse().ok()).unwrap_or(old);
        new != old
    });
    assert!(ok, "no failover away from {}:\n{}", old, s.log());
    new
}

#[test]
fn quorum_not_reached_means_no_failover() {
    let mut g = group(FERRODIS, &[100], &[Kind::Ferrodis; 3], 3, &[]);
    let old = g.master.port;
    // One sentinel gone: two can see the master down, but the quorum is three.
    let _ = g.sentinels[2].child.kill();
    let _ = g.master.child.kill();
    let s = g.sentinels[0].port;
    assert!(
        wait_until(LONG, || {
            let m: std::collections::HashMap<String, String> = q(s, &["SENTINEL", "MASTER", "m"]).unwrap_or_default();
            m.get("flags").is_some_and(|f| f.contains("s_down"))
        }),
        "the master was not seen down:\n{}",
        g.logs()
    );
    // Five times down-after-milliseconds: enough for a failover if the quorum were reachable.
    std::thread::sleep(Duration::from_secs(5));
    let m: std::collections::HashMap<String, String> = q(s, &["SENTINEL", "MASTER", "m"]).unwrap();
    assert!(!m["flags"].contains("o_down"), "{:?}", m);
    assert_eq!(g.addr(&g.sentinels[0]), Some(old));
    assert_eq!(g.addr(&g.sentinels[1]), Some(old));
    assert!(!g.sentinels[0].log().contains("+try-failover"));
    let ck: redis::RedisResult<String> = q(s, &["SENTINEL", "CKQUORUM", "m"]);
    let e = ck.unwrap_err().to_string();
    assert!(e.contains("NOQUORUM") && e.contains("usable Sentinels"), "{e}");
}

#[cfg(unix)]
fn signal(pid: u32, sig: i32) {
    // SAFETY: a signal to a child process this test started.
    unsafe { libc::kill(pid as i32, sig) };
}

#[test]
fn hung_master_is_failed_over_and_demoted_when_it_wakes_losing_its_divergent_writes() {
    let g = group(FERRODIS, &[100, 100], &[Kind::Ferrodis; 3], 2, &[]);
    let old = g.master.port;
    g.set_everywhere("before", "1");
    signal(g.master.child.id(), libc::SIGSTOP);
    let all: Vec<&Server> = g.sentinels.iter().collect();
    let new = g.wait_switch(old, &all);
    signal(g.master.child.id(), libc::SIGCONT);
    // Awake, it still thinks it is a master: a write there diverges from the new master.
    let _: redis::RedisResult<String> = q(old, &["SET", "divergent", "1"]);
    assert!(wait_until(LONG, || follows(old, new)), "the old master was not demoted:\n{}", g.logs());
    assert!(
        wait_until(LONG, || q::<Option<String>>(old, &["GET", "divergent"]).ok().flatten().is_none()),
        "the divergent write survived:\n{}\n{}\n{}",
        g.master.dir.display(),
        q::<String>(old, &["INFO", "replication"]).unwrap_or_default(),
        g.logs()
    );
    assert_eq!(q::<Option<String>>(old, &["GET", "before"]).unwrap().as_deref(), Some("1"));
    assert!(g.sentinels.iter().any(|s| s.log().contains("+convert-to-slave")), "{}", g.logs());
}

#[test]
fn another_sentinel_completes_the_failover_when_the_leader_dies_after_promoting() {
    let mut g = group(FERRODIS, &[100, 100], &[Kind::Ferrodis; 3], 2, &[]);
    // Sentinel 0 notices first and needs no one to agree (quorum 1; the others wait longer), so
    // it starts the failover, is elected, and crashes after promoting.
    let _: String = q(g.sentinels[0].port, &["SENTINEL", "SIMULATE-FAILURE", "crash-after-promotion"]).unwrap();
    let _: String = q(g.sentinels[0].port, &["SENTINEL", "SET", "m", "quorum", "1"]).unwrap();
    for s in &g.sentinels[1..] {
        let _: String = q(s.port, &["SENTINEL", "SET", "m", "down-after-milliseconds", "3000", "failover-timeout", "3000"]).unwrap();
    }
    let old = g.master.port;
    let _ = g.master.child.kill();
    let crashed = g.sentinels[0].wait_exit(LONG);
    assert!(crashed.is_some(), "the leader did not crash:\n{}", g.logs());
    let rest: Vec<&Server> = g.sentinels[1..].iter().collect();
    let new = g.wait_switch(old, &rest);
    let other = g.replicas.iter().find(|r| r.port != new).expect("two replicas").port;
    assert!(wait_until(LONG, || follows(other, new)), "{}", g.logs());
    assert_eq!(field(new, "replication", "role"), "master");
}

/// Stops a sentinel (SIGKILL) and starts `kind` in its place: the same port, directory and
/// sentinel.conf, as the sentinel last wrote it.
fn restart_as(s: &mut Server, kind: Kind) {
    let _ = s.child.kill();
    let _ = s.child.wait();
    let bin = if kind == Kind::Ferrodis { FERRODIS } else { "redis-sentinel" };
    s.child = std::process::Command::new(bin)
        .arg(s.dir.join("sentinel.conf"))
        .arg("--sentinel")
        .current_dir(&s.dir)
        .stdout(std::fs::File::create(s.dir.join("log")).expect("log"))
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("restart a sentinel");
    s.wait_ready();
}

#[test]
fn sentinel_restarted_keeps_its_state() {
    let g = group(FERRODIS, &[100], &[Kind::Ferrodis; 2], 1, &[]);
    let mut s = g.sentinels.into_iter().next().unwrap();
    let id: String = q(s.port, &["SENTINEL", "MYID"]).unwrap();
    let port = s.port;
    restart_as(&mut s, Kind::Ferrodis);
    assert_eq!(q::<String>(port, &["SENTINEL", "MYID"]).unwrap(), id);
    // Known at once from the file, before any INFO or hello.
    let reps: Vec<redis::Value> = q(port, &["SENTINEL", "REPLICAS", "m"]).unwrap();
    let sens: Vec<redis::Value> = q(port, &["SENTINEL", "SENTINELS", "m"]).unwrap();
    assert_eq!((reps.len(), sens.len()), (1, 1));
    let role: Vec<redis::Value> = q(port, &["ROLE"]).unwrap();
    assert_eq!(String::from_redis_value(role[0].clone()).unwrap(), "sentinel");
}

#[test]
fn sentinels_restarted_from_each_others_files_fail_over_together() {
    // A ferrodis sentinel and a Redis one swap programs: each restarts from the sentinel.conf the
    // other wrote (its id, epochs, known replicas and sentinels), beside a third that stays.
    let mut g = group(FERRODIS, &[100, 100], &[Kind::Ferrodis, Kind::Redis, Kind::Ferrodis], 2, &[]);
    for (i, kind) in [(0, Kind::Redis), (1, Kind::Ferrodis)] {
        let s = &mut g.sentinels[i];
        let id: String = q(s.port, &["SENTINEL", "MYID"]).unwrap();
        let _: String = q(s.port, &["SENTINEL", "FLUSHCONFIG"]).unwrap();
        restart_as(s, kind);
        assert_eq!(q::<String>(s.port, &["SENTINEL", "MYID"]).unwrap(), id, "the id from the other's file");
        let reps: Vec<redis::Value> = q(s.port, &["SENTINEL", "REPLICAS", "m"]).unwrap();
        let sens: Vec<redis::Value> = q(s.port, &["SENTINEL", "SENTINELS", "m"]).unwrap();
        assert_eq!((reps.len(), sens.len()), (2, 2), "known at once from the other's file");
    }
    g.wait_agreed(g.master.port);
    let old = g.master.port;
    let new = g.kill_master_and_fail_over();
    assert_eq!(field(new, "replication", "role"), "master");
    assert_ne!(new, old);
}

/// Field names (not values) of a flat SENTINEL reply.
fn names(v: &redis::Value) -> Vec<String> {
    let items: Vec<String> = FromRedisValue::from_redis_value(v.clone()).unwrap_or_default();
    items.iter().step_by(2).cloned().collect()
}

#[test]
fn redis_sentinel_and_ferrodis_sentinels_together() {
    // ferrodis servers, one ferrodis sentinel and two of Redis's: Redis Sentinel fails ferrodis
    // over (SENTINEL FAILOVER on one of Redis's), and the ferrodis sentinel follows.
    let g = group(FERRODIS, &[100, 100], &[Kind::Ferrodis, Kind::Redis, Kind::Redis], 2, &[]);
    // Replies as Redis Sentinel's: the same fields in the same order.
    for args in [["SENTINEL", "MASTER", "m"].as_slice(), &["SENTINEL", "REPLICAS", "m"], &["SENTINEL", "SENTINELS", "m"]] {
        let ours: redis::Value = q(g.sentinels[0].port, args).unwrap();
        let theirs: redis::Value = q(g.sentinels[1].port, args).unwrap();
        let pick = |v: &redis::Value| match v {
            redis::Value::Array(a) if args[1] != "MASTER" => a.first().map(names).unwrap_or_default(),
            v => names(v),
        };
        assert_eq!(pick(&ours), pick(&theirs), "{:?}", args);
    }
    let e1 = q::<String>(g.sentinels[0].port, &["SENTINEL", "MASTER", "nope"]).unwrap_err().to_string();
    let e2 = q::<String>(g.sentinels[1].port, &["SENTINEL", "MASTER", "nope"]).unwrap_err().to_string();
    assert_eq!(e1, e2);
    let old = g.master.port;
    let _: String = q(g.sentinels[1].port, &["SENTINEL", "FAILOVER", "m"]).unwrap();
    let all: Vec<&Server> = g.sentinels.iter().collect();
    let new = g.wait_switch(old, &all);
    assert!(wait_until(LONG, || follows(old, new)), "{}", g.logs());
    drop(g);

    // ferrodis servers, two ferrodis sentinels and one of Redis's: the master is killed, and the
    // three elect a leader among them.
    let mut g = group(FERRODIS, &[100, 100], &[Kind::Ferrodis, Kind::Ferrodis, Kind::Redis], 2, &[]);
    let new = g.kill_master_and_fail_over();
    assert_eq!(field(new, "replication", "role"), "master");
}

#[test]
fn ferrodis_sentinels_fail_over_redis_servers() {
    let mut g = group("redis-server", &[100, 100], &[Kind::Ferrodis; 3], 2, &[]);
    let new = g.kill_master_and_fail_over();
    assert_eq!(field(new, "replication", "role"), "master");
}

#[test]
fn redis_crate_sentinel_client_follows_the_failover() {
    let g = group(FERRODIS, &[100], &[Kind::Ferrodis], 1, &[]);
    let urls = vec![format!("redis://127.0.0.1:{}/", g.sentinels[0].port)];
    let mut client = redis::sentinel::SentinelClient::build(urls, "m".to_string(), None, redis::sentinel::SentinelServerType::Master)
        .expect("sentinel client");
    let mut c = client.get_connection().expect("connection to the master");
    let _: () = c.set("before", 1).unwrap();
    let _: String = q(g.sentinels[0].port, &["SENTINEL", "FAILOVER", "m"]).unwrap();
    let new = g.wait_switch(g.master.port, &[&g.sentinels[0]]);
    // A new connection from the same client reaches the new master and writes there.
    assert!(wait_until(LONG, || {
        client.get_connection().and_then(|mut c| c.set::<_, _, ()>("after", 2)).is_ok()
            && q::<Option<String>>(new, &["GET", "after"]).ok().flatten().is_some()
    }));
    assert_eq!(q::<Option<String>>(new, &["GET", "before"]).unwrap().as_deref(), Some("1"));
}

/// redis-py's `Sentinel(...).master_for(...)` keeps writing across a failover
/// (`tests/python/sentinel_py.py`).
#[test]
fn redis_py_sentinel_client_follows_the_failover() {
    let g = group(FERRODIS, &[100, 100], &[Kind::Ferrodis; 3], 2, &[]);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/sentinel_py.py");
    let out = std::process::Command::new("python3")
        .arg(script)
        .args(g.sentinels.iter().map(|s| s.port.to_string()))
        .output()
        .expect("python3 (and `pip install redis`, which scripts/test.sh does)");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && text.contains("sentinel-py ok"), "{text}\n{}", g.logs());
}

/// `sentinel notification-script` runs for warning events with (type, description), and
/// `sentinel client-reconfig-script` with (name, role, state, from ip, from port, to ip, to port).
#[test]
fn notification_and_client_reconfig_scripts_run() {
    let master = server(FERRODIS, free_port(), tempdir("sm"), &[]);
    let mp = master.port.to_string();
    let replica = server(FERRODIS, free_port(), tempdir("sr"), &["--replicaof", "127.0.0.1", &mp]);
    let dir = tempdir("scripts");
    let script = dir.join("record.sh");
    let out = dir.join("calls.txt");
    std::fs::write(&script, format!("#!/bin/sh\necho \"$@\" >> {}\n", out.display())).unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let extra = format!("sentinel notification-script m {0}\nsentinel client-reconfig-script m {0}\n", script.display());
    let s = sentinel(Kind::Ferrodis, master.port, 1, 1000, 10_000, &extra);
    assert!(wait_until(LONG, || q::<String>(s.port, &["SENTINEL", "FAILOVER", "m"]).is_ok()), "{}", s.log());
    let new = wait_switch_from(&s, master.port);
    assert_eq!(new, replica.port);
    let want_reconf = format!("m leader start 127.0.0.1 {} 127.0.0.1 {}", master.port, replica.port);
    let ok = wait_until(LONG, || {
        let calls = std::fs::read_to_string(&out).unwrap_or_default();
        calls.contains(&want_reconf) && calls.lines().any(|l| l.starts_with("+switch-master m 127.0.0.1"))
    });
    assert!(ok, "{}\n{}", std::fs::read_to_string(&out).unwrap_or_default(), s.log());
    // The scripts may not be changed at run time (deny-scripts-reconfig yes, the default).
    let e = q::<String>(s.port, &["SENTINEL", "SET", "m", "notification-script", "/bin/true"]).unwrap_err().to_string();
    assert!(e.contains("denied for security reasons"), "{e}");
}

/// A sentinel that was stopped (its timer late by more than 2 s) enters TILT: it keeps watching
/// but acts on nothing for 30 s, as Redis Sentinel does.
#[test]
fn a_stalled_sentinel_enters_tilt() {
    let master = server(FERRODIS, free_port(), tempdir("sm"), &[]);
    let s = sentinel(Kind::Ferrodis, master.port, 1, 1000, 10_000, "");
    assert_eq!(field(s.port, "sentinel", "sentinel_tilt"), "0");
    signal(s.child.id(), libc::SIGSTOP);
    std::thread::sleep(Duration::from_millis(2500));
    signal(s.child.id(), libc::SIGCONT);
    assert!(wait_until(LONG, || field(s.port, "sentinel", "sentinel_tilt") == "1"), "{}", s.log());
    assert!(s.log().contains("+tilt #tilt mode entered"), "{}", s.log());
    // In TILT it tells no one that a master is down.
    let r: Vec<redis::Value> = q(s.port, &["SENTINEL", "IS-MASTER-DOWN-BY-ADDR", "127.0.0.1", &master.port.to_string(), "0", "*"]).unwrap();
    assert_eq!(r[0], redis::Value::Int(0));
}

/// A master that shut down cleanly (its RDB keeps its replication id and offset) is failed over;
/// restarted, it rejoins as a replica of the new master with a partial resynchronization.
#[test]
fn old_master_restarted_from_its_snapshot_rejoins_with_a_partial_resync() {
    let g = group(FERRODIS, &[100, 100], &[Kind::Ferrodis; 3], 2, &[]);
    let old = g.master.port;
    g.set_everywhere("k", "v");
    let _: redis::RedisResult<String> = q(old, &["SHUTDOWN", "SAVE"]);
    let all: Vec<&Server> = g.sentinels.iter().collect();
    let new = g.wait_switch(old, &all);
    let back = server(FERRODIS, old, g.master.dir.clone(), &[]);
    assert!(wait_until(LONG, || follows(back.port, new)), "{}", g.logs());
    assert!(back.log().contains("Master accepted a Partial Resynchronization"), "{}", back.log());
    assert_eq!(q::<Option<String>>(old, &["GET", "k"]).unwrap().as_deref(), Some("v"));
}

/// A consumer-group workload against wherever the sentinels say the master is (see
/// `streams::workload_step`).
struct StreamWriter {
    stop: Arc<AtomicBool>,
    added: Arc<Mutex<Vec<u64>>>,
    acked: Arc<Mutex<Vec<String>>>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl StreamWriter {
    fn start(sentinels: Vec<u16>) -> StreamWriter {
        let stop = Arc::new(AtomicBool::new(false));
        let (added, acked) = (Arc::new(Mutex::new(Vec::new())), Arc::new(Mutex::new(Vec::new())));
        let (st, ad, ac) = (stop.clone(), added.clone(), acked.clone());
        let handle = std::thread::spawn(move || {
            let mut n = 1u64;
            let mut c: Option<redis::Connection> = None;
            while !st.load(Ordering::Relaxed) {
                if c.is_none() {
                    let port = sentinels.iter().find_map(|s| {
                        let a: Vec<String> = q(*s, &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", "m"]).ok()?;
                        a.get(1)?.parse::<u16>().ok()
                    });
                    c = port.and_then(|p| conn(p).ok());
                }
                if let Some(con) = c.as_mut() {
                    if !crate::streams::workload_step(con, "s", n, &ad, &ac) {
                        c = None;
                    }
                }
                n += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        StreamWriter { stop, added, acked, handle: Some(handle) }
    }
    fn finish(mut self) -> (Vec<u64>, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
        let (a, b) = (self.added.lock().unwrap().clone(), self.acked.lock().unwrap().clone());
        (a, b)
    }
}

#[test]
fn failover_in_a_consumer_group_workload_keeps_every_acknowledged_xadd_and_xack() {
    let args = ["--sync-replicas", "1", "--sync-replicas-timeout", "500"];
    let mut g = group(FERRODIS, &[100, 100], &[Kind::Ferrodis; 3], 2, &args);
    let old = g.master.port;
    let _: String = q(old, &["XGROUP", "CREATE", "s", "g", "$", "MKSTREAM"]).unwrap();
    let w = StreamWriter::start(g.sentinels.iter().map(|s| s.port).collect());
    assert!(wait_until(LONG, || w.acked.lock().unwrap().len() > 20), "no acknowledged XACKs");
    let _ = g.master.child.kill();
    let _ = g.master.child.wait();
    let all: Vec<&Server> = g.sentinels.iter().collect();
    let new = g.wait_switch(old, &all);
    let before = w.added.lock().unwrap().len();
    assert!(wait_until(LONG, || w.added.lock().unwrap().len() > before + 50), "no XADDs on the new master:\n{}", g.logs());
    let (added, acked) = w.finish();
    crate::streams::assert_kept(new, "s", &added, &acked);
}
