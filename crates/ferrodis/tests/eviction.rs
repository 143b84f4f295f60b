//! maxmemory and eviction: each policy filled far past `maxmemory` keeps the allocator's
//! `used_memory` near the limit and the server answering; volatile policies evict only keys with
//! a TTL; `noeviction` answers Redis's OOM error (compared with redis-server's) to commands that
//! may grow memory and still serves reads and deletes; evictions reach a replica as DELs.

use crate::harness::{field, q, wait_until, Client, Server};
use std::time::Duration;

const MAX: u64 = 8 * 1024 * 1024;

/// Writes `n` keys of 200 bytes in pipelines of 500 (`ttl`: with EX 1000), ignoring OOM errors.
fn fill(port: u16, prefix: &str, n: usize, ttl: bool) {
    let mut con = crate::harness::conn(port).unwrap();
    let value = "v".repeat(200);
    for chunk in (0..n).collect::<Vec<_>>().chunks(500) {
        let mut p = redis::pipe();
        for i in chunk {
            let c = p.cmd("SET").arg(format!("{prefix}:{i}")).arg(&value);
            if ttl {
                c.arg("EX").arg(1000);
            }
            c.ignore();
        }
        let _ = p.query::<()>(&mut con);
    }
}

fn used(port: u16) -> u64 {
    field(port, "memory", "used_memory").parse().unwrap()
}

#[test]
fn every_policy_keeps_memory_near_maxmemory_and_keeps_answering() {
    let max = MAX.to_string();
    for policy in ["allkeys-lru", "allkeys-lfu", "allkeys-random", "volatile-lru", "volatile-lfu", "volatile-random", "volatile-ttl"] {
        let s = Server::ferrodis(&["--maxmemory", &max, "--maxmemory-policy", policy]);
        let volatile = policy.starts_with("volatile");
        if volatile {
            fill(s.port, "keep", 2000, false);
        }
        // About 15 times maxmemory written.
        fill(s.port, "k", 400_000, true);
        let u = used(s.port);
        assert!(u <= MAX + MAX / 20, "{policy}: used_memory {u} over maxmemory {MAX}");
        let evicted: u64 = field(s.port, "stats", "evicted_keys").parse().unwrap();
        assert!(evicted > 100_000, "{policy}: evicted {evicted}");
        assert_eq!(Client::connect(s.port).text(&["PING"]), "+PONG\r\n");
        if volatile {
            let kept: i64 = (0..2000).filter(|i| q::<i64>(s.port, &["EXISTS", &format!("keep:{i}")]).unwrap() == 1).count() as i64;
            assert_eq!(kept, 2000, "{policy} evicted keys without a TTL");
        }
    }
}

#[test]
fn noeviction_answers_oom_as_redis_and_serves_reads() {
    let max = MAX.to_string();
    let ours = Server::ferrodis(&["--maxmemory", &max, "--maxmemory-policy", "noeviction"]);
    let theirs = Server::redis(&["--maxmemory", &max, "--maxmemory-policy", "noeviction"]);
    for s in [&ours, &theirs] {
        fill(s.port, "k", 60_000, false);
        assert!(wait_until(Duration::from_secs(10), || used(s.port) > MAX));
    }
    let (mut a, mut b) = (Client::connect(ours.port), Client::connect(theirs.port));
    for case in [&["SET", "new", "x"][..], &["LPUSH", "l", "x"], &["GET", "k:1"], &["DEL", "k:2"], &["EXISTS", "k:3"], &["INCR", "k:4"]] {
        assert_eq!(a.text(case), b.text(case), "{:?}", case);
    }
    assert_eq!(a.text(&["SET", "new", "x"]), "-OOM command not allowed when used memory > 'maxmemory'.\r\n");
    // A transaction holding a write is refused at EXEC, as Redis does.
    for c in [&mut a, &mut b] {
        c.text(&["MULTI"]);
    }
    assert_eq!(a.text(&["SET", "new", "x"]), b.text(&["SET", "new", "x"]));
    assert_eq!(a.text(&["EXEC"]), b.text(&["EXEC"]));
}

#[test]
fn evictions_reach_the_replica_as_dels() {
    let max = MAX.to_string();
    let master = Server::ferrodis(&["--maxmemory", &max, "--maxmemory-policy", "allkeys-random"]);
    let mp = master.port.to_string();
    let replica = Server::ferrodis(&["--replicaof", "127.0.0.1", &mp, "--repl-diskless-sync-delay", "0"]);
    assert!(wait_until(Duration::from_secs(30), || field(replica.port, "replication", "master_link_status") == "up"));
    fill(master.port, "k", 100_000, false);
    let evicted: u64 = field(master.port, "stats", "evicted_keys").parse().unwrap();
    assert!(evicted > 10_000);
    // The replica ignores maxmemory (replica-ignore-maxmemory) and evicts nothing itself; it
    // ends with exactly the master's keys.
    assert!(
        wait_until(Duration::from_secs(30), || q::<i64>(master.port, &["DBSIZE"]).unwrap() == q::<i64>(replica.port, &["DBSIZE"]).unwrap())
    );
    assert_eq!(field(replica.port, "stats", "evicted_keys"), "0");
    let d1: String = q(master.port, &["DEBUG", "DIGEST"]).unwrap();
    let d2: String = q(replica.port, &["DEBUG", "DIGEST"]).unwrap();
    assert_eq!(d1, d2);
}

#[test]
fn a_lone_key_is_found_and_evicted_under_every_policy() {
    // With a handful of keys, random sampling of the stripes misses them; eviction must still
    // find them (as Redis's does), not answer OOM while keys remain. CONFIG SET maxmemory
    // evicts at once.
    for policy in ["allkeys-lru", "allkeys-lfu", "allkeys-random", "volatile-lru", "volatile-ttl", "volatile-random"] {
        let s = Server::ferrodis(&["--maxmemory-policy", policy]);
        let mut c = s.client();
        assert_eq!(c.text(&["SET", "lonely", "v", "EX", "1000"]), "+OK\r\n");
        assert_eq!(c.text(&["CONFIG", "SET", "maxmemory", "1"]), "+OK\r\n");
        assert_eq!(c.text(&["DBSIZE"]), ":0\r\n", "{policy}: the key should be evicted");
        assert_eq!(c.text(&["CONFIG", "SET", "maxmemory", "0"]), "+OK\r\n");
    }
}
