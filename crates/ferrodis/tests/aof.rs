//! The append-only file against Debian's redis-server 7.0.15: each server loads the other's
//! AOF directory (manifest, RDB base, incr files) with equal contents; with `appendfsync always`
//! no acknowledged write is lost across `kill -9`, nor with `everysec` or `no` (the file is
//! written before the replies, as Redis does); a torn last command is dropped (aof-load-truncated yes) or
//! stops the start (no); BGREWRITEAOF keeps the data and replaces the files.

use crate::harness::{launch, tempdir, Server, FERRODIS};
use crate::persistence::{contents, digests, fill, DBS};
use std::path::Path;
use std::time::Duration;

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read dir") {
        let e = e.expect("entry");
        std::fs::copy(e.path(), to.join(e.file_name())).expect("copy");
    }
}

/// Starts a server of kind `bin` with AOF on, on a copy of `from`'s appendonlydir.
fn carry_aof(from: &Server, bin: &str, args: &[&str]) -> Server {
    let dir = tempdir("aof-carried");
    copy_dir(&from.dir.join("appendonlydir"), &dir.join("appendonlydir"));
    let mut a = vec!["--appendonly", "yes"];
    a.extend_from_slice(args);
    if bin == FERRODIS {
        Server::ferrodis_in(dir, &a)
    } else {
        Server::redis_in(dir, &a)
    }
}

/// One key as `contents` reports it: type, value items, absolute expiry.
type Entry = (String, Vec<Vec<u8>>, Vec<u8>);

fn same_data(a: &Server, b: &Server) {
    let (mut ca, mut cb) = (a.client(), b.client());
    let (x, y) = (contents(&mut ca, DBS), contents(&mut cb, DBS));
    assert!(x.len() > 25);
    for (k, v) in &x {
        // (Compared by hand: a failing assert_eq on these would print megabytes.)
        if Some(v) != y.get(k) {
            let show = |v: Option<&Entry>| {
                v.map(|(t, items, exp)| {
                    format!(
                        "{t}, {} items, first {:?}, expiry {:?}",
                        items.len(),
                        items.first().map(|i| String::from_utf8_lossy(&i[..i.len().min(60)]).into_owned()),
                        String::from_utf8_lossy(exp)
                    )
                })
            };
            panic!("key {:?} in db {}: {:?} vs {:?}", String::from_utf8_lossy(&k.1), k.0, show(Some(v)), show(y.get(k)));
        }
    }
    assert_eq!(x.len(), y.len());
    assert_eq!(digests(&mut ca, DBS), digests(&mut cb, DBS));
    assert_eq!(cb.cmd(&["FCALL", "persisted_f", "0"]), b":42\r\n");
}

/// Writes past the base: a transaction, an expiry, deletes, in several databases.
fn more_writes(s: &Server) {
    let mut c = s.client();
    for cmd in [
        &["MULTI"][..],
        &["INCR", "counter"],
        &["RPUSH", "biglist", "tail"],
        &["EXEC"],
        &["SELECT", "1"],
        &["DEL", "db1hash"],
        &["SET", "later", "v", "PX", "90000000"],
        &["SELECT", "0"],
        &["HDEL", "bighash", "field3"],
        &["ZINCRBY", "bigzset", "2.5", "member7"],
    ] {
        assert!(!c.text(cmd).starts_with('-'), "{cmd:?}");
    }
}

#[test]
fn aof_written_by_redis_loads_into_ferrodis() {
    let r = Server::redis(&["--appendonly", "yes", "--appendfsync", "always"]);
    fill(&mut r.client());
    more_writes(&r);
    let f = carry_aof(&r, FERRODIS, &[]);
    assert!(f.log().contains("DB loaded from append only file"), "{}", f.log());
    same_data(&r, &f);
    // And after a rewrite on the Redis side (the base holds everything).
    assert!(r.client().text(&["BGREWRITEAOF"]).starts_with("+Background"));
    assert!(crate::harness::wait_until(Duration::from_secs(20), || r
        .client()
        .text(&["INFO", "persistence"])
        .contains("aof_rewrite_in_progress:0")));
    let f2 = carry_aof(&r, FERRODIS, &[]);
    same_data(&r, &f2);
}

#[test]
fn aof_written_by_ferrodis_loads_into_redis() {
    let f = Server::ferrodis(&["--appendonly", "yes", "--appendfsync", "always"]);
    fill(&mut f.client());
    more_writes(&f);
    let r = carry_aof(&f, "redis-server", &[]);
    same_data(&f, &r);
    // After BGREWRITEAOF: a new base and incr, the old files gone.
    let mut c = f.client();
    assert_eq!(c.text(&["BGREWRITEAOF"]), "+Background append only file rewriting started\r\n");
    assert!(crate::harness::wait_until(Duration::from_secs(20), || c.text(&["INFO", "persistence"]).contains("aof_rewrite_in_progress:0")));
    c.cmd(&["SET", "after-rewrite", "1"]);
    let manifest = std::fs::read_to_string(f.dir.join("appendonlydir/appendonly.aof.manifest")).expect("manifest");
    assert!(manifest.contains("appendonly.aof.2.base.rdb") && manifest.contains("appendonly.aof.2.incr.aof"), "{manifest}");
    assert!(!f.dir.join("appendonlydir/appendonly.aof.1.incr.aof").exists());
    let r2 = carry_aof(&f, "redis-server", &[]);
    same_data(&f, &r2);
    let g = carry_aof(&f, FERRODIS, &[]);
    same_data(&f, &g);
}

/// Writes INCRs from four clients (each its own key), counting the acknowledged ones, kills the
/// server with SIGKILL (by PID) meanwhile, restarts on the same files; returns, per client,
/// (acknowledged, recovered).
fn incr_then_kill(bin: &str, fsync: &str) -> Vec<(i64, i64)> {
    let mut s = launch(bin, &["--appendonly", "yes", "--appendfsync", fsync], tempdir("before-kill"));
    s.wait_ready();
    let port = s.port;
    let writers: Vec<_> = (0..4)
        .map(|w| {
            std::thread::spawn(move || {
                let key = format!("n{w}");
                let mut c = crate::harness::Client::connect(port);
                let mut acked = 0i64;
                for _ in 0..200_000 {
                    c.send(&crate::harness::encode(&[b"INCR", key.as_bytes()]));
                    match c.read_reply() {
                        Some(r) if r.starts_with(b":") => acked = String::from_utf8_lossy(&r[1..r.len() - 2]).parse().expect("int"),
                        _ => break,
                    }
                }
                acked
            })
        })
        .collect();
    // Kill once every writer has had some writes acknowledged (a deadline-bounded wait).
    let mut probe = s.client();
    let progressed = crate::harness::wait_until(Duration::from_secs(20), || {
        (0..4).all(|w| probe.text(&["GET", &format!("n{w}")]).lines().nth(1).and_then(|v| v.parse::<i64>().ok()).unwrap_or(0) >= 100)
    });
    assert!(progressed, "the writers made no progress");
    // SIGKILL: no shutdown, no final save.
    // SAFETY: kill(2) on the PID of the child this test started.
    unsafe {
        libc::kill(s.child.id() as i32, libc::SIGKILL);
    }
    let _ = s.wait_exit(Duration::from_secs(10));
    let acked: Vec<i64> = writers.into_iter().map(|w| w.join().expect("writer")).collect();
    let dir = tempdir("after-kill");
    copy_dir(&s.dir.join("appendonlydir"), &dir.join("appendonlydir"));
    let g = launch(bin, &["--appendonly", "yes"], dir);
    g.wait_ready();
    let mut c = g.client();
    let out: Vec<(i64, i64)> = acked
        .iter()
        .enumerate()
        .map(|(w, &a)| {
            let got = c.text(&["GET", &format!("n{w}")]);
            (a, got.lines().nth(1).and_then(|v| v.parse().ok()).unwrap_or(0))
        })
        .collect();
    eprintln!("{bin} appendfsync {fsync}: (acknowledged, recovered) per client {out:?}");
    out
}

#[test]
fn kill_9_with_appendfsync_always_loses_no_acknowledged_write() {
    for (acked, recovered) in incr_then_kill(FERRODIS, "always") {
        assert!(acked > 0, "a writer got no reply before the kill");
        assert!(recovered >= acked, "acknowledged {acked}, recovered {recovered}");
    }
}

/// A process crash (not a power loss) loses no acknowledged write with `everysec` or `no`
/// either: the AOF is written to the file before the replies go out, as Redis does; only the
/// fsync waits for the policy. Five runs each, on ferrodis and on redis-server; INCR's value is
/// its position in the sequence, so what comes back is a prefix, never a gap.
#[test]
fn kill_9_with_appendfsync_everysec_or_no_loses_no_acknowledged_write() {
    crate::harness::require_redis();
    for fsync in ["everysec", "no"] {
        for run in 0..5 {
            for bin in [FERRODIS, "redis-server"] {
                for (acked, recovered) in incr_then_kill(bin, fsync) {
                    assert!(acked > 0, "a writer got no reply before the kill");
                    // (One more than acknowledged: the write whose reply the kill cut off.)
                    assert!(
                        recovered >= acked && recovered <= acked + 1,
                        "{bin} appendfsync {fsync} run {run}: acknowledged {acked}, recovered {recovered}"
                    );
                }
            }
        }
    }
}

#[test]
fn torn_last_command_is_dropped_or_stops_the_start() {
    let f = Server::ferrodis(&["--appendonly", "yes", "--appendfsync", "always"]);
    let mut c = f.client();
    c.cmd(&["SET", "a", "1"]);
    c.cmd(&["SET", "b", "2"]);
    let incr = f.dir.join("appendonlydir/appendonly.aof.1.incr.aof");
    let whole = std::fs::read(&incr).expect("incr file");
    let torn = &whole[..whole.len() - 5];
    // aof-load-truncated yes (the default): starts without the torn SET, and truncates the file.
    let dir = tempdir("torn");
    copy_dir(&f.dir.join("appendonlydir"), &dir.join("appendonlydir"));
    std::fs::write(dir.join("appendonlydir/appendonly.aof.1.incr.aof"), torn).expect("write");
    let g = Server::ferrodis_in(dir, &["--appendonly", "yes"]);
    let mut gc = g.client();
    assert_eq!(gc.text(&["GET", "a"]), "$1\r\n1\r\n");
    assert_eq!(gc.text(&["EXISTS", "b"]), ":0\r\n");
    assert!(g.log().contains("loaded anyway because aof-load-truncated is enabled"), "{}", g.log());
    // And Redis agrees.
    let dir = tempdir("torn-redis");
    copy_dir(&f.dir.join("appendonlydir"), &dir.join("appendonlydir"));
    std::fs::write(dir.join("appendonlydir/appendonly.aof.1.incr.aof"), torn).expect("write");
    let r = Server::redis_in(dir, &["--appendonly", "yes"]);
    assert_eq!(r.client().text(&["EXISTS", "a", "b"]), ":1\r\n");
    // aof-load-truncated no: the start stops, naming the file.
    let dir = tempdir("torn-strict");
    copy_dir(&f.dir.join("appendonlydir"), &dir.join("appendonlydir"));
    std::fs::write(dir.join("appendonlydir/appendonly.aof.1.incr.aof"), torn).expect("write");
    let mut h = launch(FERRODIS, &["--appendonly", "yes", "--aof-load-truncated", "no"], dir);
    let status = h.wait_exit(Duration::from_secs(20)).expect("the server must refuse to start");
    assert!(!status.success());
    assert!(h.log().contains("appendonly.aof.1.incr.aof"), "{}", h.log());
    // Garbage in the middle stops it too, whatever aof-load-truncated says.
    let dir = tempdir("garbage");
    copy_dir(&f.dir.join("appendonlydir"), &dir.join("appendonlydir"));
    let mut bad = whole.clone();
    bad.splice(0..0, b"*1\r\n$4\r\nPING\r\nxyz\r\n".iter().copied());
    std::fs::write(dir.join("appendonlydir/appendonly.aof.1.incr.aof"), &bad).expect("write");
    let mut h = launch(FERRODIS, &["--appendonly", "yes"], dir);
    assert!(h.wait_exit(Duration::from_secs(20)).is_some_and(|s| !s.success()), "{}", h.log());
    assert!(h.log().contains("Bad file format"), "{}", h.log());
}

#[test]
fn config_set_appendonly_starts_and_stops_the_aof() {
    let f = Server::ferrodis(&[]);
    let mut c = f.client();
    c.cmd(&["SET", "before", "1"]);
    assert_eq!(c.text(&["CONFIG", "SET", "appendonly", "yes"]), "+OK\r\n");
    assert!(crate::harness::wait_until(Duration::from_secs(20), || c.text(&["INFO", "persistence"]).contains("aof_enabled:1")
        && c.text(&["INFO", "persistence"]).contains("aof_rewrite_in_progress:0")));
    c.cmd(&["SET", "after", "2"]);
    assert_eq!(c.text(&["DEBUG", "LOADAOF"]), "+OK\r\n");
    assert_eq!(c.text(&["MGET", "before", "after"]), "*2\r\n$1\r\n1\r\n$1\r\n2\r\n");
    assert_eq!(c.text(&["CONFIG", "SET", "appendonly", "no"]), "+OK\r\n");
    assert!(c.text(&["INFO", "persistence"]).contains("aof_enabled:0"));
}

/// aof-use-rdb-preamble no: the base is written as commands (`.base.aof`), and both servers
/// load it.
#[test]
fn rewrite_without_rdb_preamble_writes_a_command_base() {
    let f = Server::ferrodis(&["--appendonly", "yes", "--appendfsync", "always", "--aof-use-rdb-preamble", "no"]);
    fill(&mut f.client());
    let mut c = f.client();
    assert_eq!(c.text(&["BGREWRITEAOF"]), "+Background append only file rewriting started\r\n");
    assert!(crate::harness::wait_until(Duration::from_secs(20), || c.text(&["INFO", "persistence"]).contains("aof_rewrite_in_progress:0")));
    more_writes(&f);
    let base = std::fs::read(f.dir.join("appendonlydir/appendonly.aof.2.base.aof")).expect("a command base");
    assert!(base.starts_with(b"*"), "{:?}", String::from_utf8_lossy(&base[..20.min(base.len())]));
    let r = carry_aof(&f, "redis-server", &[]);
    same_data(&f, &r);
    let g = carry_aof(&f, FERRODIS, &[]);
    same_data(&f, &g);
}

/// A pre-7.0 single-file `appendonly.aof` in the working directory is upgraded as Redis 7 does:
/// it becomes the base of the new layout, and both servers load the same data from it.
#[test]
fn pre_7_single_file_aof_is_upgraded() {
    let mut old = Vec::new();
    for cmd in [&["SELECT", "0"][..], &["SET", "a", "1"], &["RPUSH", "l", "x", "y"], &["SELECT", "1"], &["SET", "c", "3"]] {
        let args: Vec<&[u8]> = cmd.iter().map(|s| s.as_bytes()).collect();
        old.extend_from_slice(&crate::harness::encode(&args));
    }
    let mut servers = Vec::new();
    for bin in [FERRODIS, "redis-server"] {
        let dir = tempdir("old-aof");
        std::fs::write(dir.join("appendonly.aof"), &old).expect("write");
        let args = ["--appendonly", "yes", "--appendfsync", "always"];
        let s = if bin == FERRODIS { Server::ferrodis_in(dir, &args) } else { Server::redis_in(dir, &args) };
        let manifest = std::fs::read_to_string(s.dir.join("appendonlydir/appendonly.aof.manifest")).expect("a manifest");
        assert!(manifest.contains("file appendonly.aof seq 1 type b"), "{bin}: {manifest}");
        assert!(!s.dir.join("appendonly.aof").exists());
        servers.push(s);
    }
    let (mut f, mut r) = (servers[0].client(), servers[1].client());
    for cmd in [&["MGET", "a", "c"][..], &["LRANGE", "l", "0", "-1"], &["SELECT", "1"], &["GET", "c"]] {
        assert_eq!(f.text(cmd), r.text(cmd), "{cmd:?}");
    }
    // Writes after the upgrade go to a new incr file that Redis reads too.
    f.cmd(&["SELECT", "0"]);
    f.cmd(&["SET", "after", "1"]);
    let g = carry_aof(&servers[0], "redis-server", &[]);
    assert_eq!(g.client().text(&["EXISTS", "a", "after"]), ":2\r\n");
}
