//! Transactions with several clients: WATCH against other clients' writes and expiry, blocked
//! clients woken only after an EXEC, compared reply for reply with redis-server; and the
//! classic patterns users write with the `redis` crate: the optimistic WATCH retry loop under two
//! competing clients, a lock taken with SET NX PX and released by a Lua compare-and-delete, and a
//! Lua rate limiter.

use crate::blocking::{same_as_redis, Step::*};
use crate::harness::Server;

#[test]
fn watch_sees_other_clients_and_expiry() {
    let log = same_as_redis(
        "watch",
        &[
            Cmd(1, "SET k 1"),
            Cmd(1, "WATCH k"),
            Cmd(2, "INCR k"),
            Cmd(1, "MULTI"),
            Cmd(1, "SET k 100"),
            Cmd(1, "EXEC"),
            Cmd(1, "GET k"),
            // A write to another key does not matter.
            Cmd(1, "WATCH k"),
            Cmd(2, "SET other 1"),
            Cmd(1, "MULTI"),
            Cmd(1, "SET k 100"),
            Cmd(1, "EXEC"),
            // Another client's no-op write (SET NX on an existing key) does not touch it either.
            Cmd(1, "WATCH k"),
            Cmd(2, "SET k x NX"),
            Cmd(1, "MULTI"),
            Cmd(1, "INCR k"),
            Cmd(1, "EXEC"),
            // An expiry does.
            Cmd(1, "SET t v PX 30"),
            Cmd(1, "WATCH t"),
            Gone(2, "t"),
            Cmd(1, "MULTI"),
            Cmd(1, "SET t again"),
            Cmd(1, "EXEC"),
            Cmd(1, "EXISTS t"),
            // And a watched key touched by a served blocked client.
            Send(3, "BLPOP bq 0"),
            Blocked(1),
            Cmd(1, "WATCH bq"),
            Cmd(2, "RPUSH bq item"),
            Read(3),
            Cmd(1, "MULTI"),
            Cmd(1, "PING"),
            Cmd(1, "EXEC"),
        ],
    );
    assert!(log.iter().any(|l| l.starts_with("5 c1 EXEC -> *-1")), "{log:?}");
}

#[test]
fn blocked_clients_wake_after_the_transaction() {
    same_as_redis(
        "exec wakes",
        &[
            Send(1, "BLPOP q 0"),
            Blocked(1),
            Cmd(2, "MULTI"),
            Cmd(2, "RPUSH q a"),
            Cmd(2, "LPOP q"),
            Cmd(2, "EXEC"),
            Blocked(1),
            Cmd(2, "MULTI"),
            Cmd(2, "RPUSH q b c"),
            Cmd(2, "LPOP q"),
            Cmd(2, "EXEC"),
            Read(1),
            Cmd(2, "LRANGE q 0 -1"),
        ],
    );
}

/// The optimistic-locking loop: two clients each add 1 to a counter 200 times through
/// WATCH/GET/MULTI/SET/EXEC, retrying when EXEC aborts. No increment may be lost.
#[test]
fn watch_retry_loop_loses_no_increment() {
    let f = Server::ferrodis(&[]);
    let url = f.url();
    let worker = move || {
        let client = redis::Client::open(url.as_str()).expect("client");
        let mut con = client.get_connection().expect("connect");
        let mut retries = 0u32;
        for _ in 0..200 {
            loop {
                redis::cmd("WATCH").arg("counter").query::<()>(&mut con).expect("watch");
                let v: Option<i64> = redis::cmd("GET").arg("counter").query(&mut con).expect("get");
                let r: Option<(String,)> =
                    redis::pipe().atomic().cmd("SET").arg("counter").arg(v.unwrap_or(0) + 1).query(&mut con).expect("exec");
                if r.is_some() {
                    break;
                }
                retries += 1;
            }
        }
        retries
    };
    let a = std::thread::spawn(worker.clone());
    let b = std::thread::spawn(worker);
    let (ra, rb) = (a.join().expect("thread a"), b.join().expect("thread b"));
    let mut c = f.client();
    assert_eq!(c.text(&["GET", "counter"]), "$3\r\n400\r\n", "retries: {ra} + {rb}");
}

/// A script running past busy-reply-threshold: other clients get -BUSY, SCRIPT KILL stops it
/// (its caller gets Redis's error), and a script that has written cannot be killed.
#[test]
fn long_script_answers_busy_and_script_kill_stops_it() {
    use crate::harness::{encode, wait_until};
    use std::time::Duration;
    let f = Server::ferrodis(&["--busy-reply-threshold", "100"]);
    let mut a = f.client();
    let mut b = f.client();
    assert_eq!(b.text(&["SCRIPT", "KILL"]), "-NOTBUSY No scripts in execution right now.\r\n");
    a.send(&encode(&[b"EVAL", b"local i = 0 while true do i = i + 1 end", b"0"]));
    // PING touches no key, so it never waits on the script's locks: it answers PONG, then BUSY.
    assert!(wait_until(Duration::from_secs(10), || b.text(&["PING"]).starts_with("-BUSY Redis is busy running a script.")));
    // FUNCTION STATS is refused while an EVAL script runs.
    assert!(b.text(&["FUNCTION", "STATS"]).starts_with("-BUSY"));
    assert_eq!(b.text(&["SCRIPT", "KILL"]), "+OK\r\n");
    let r = String::from_utf8(a.read_reply().expect("the killed script's reply")).unwrap();
    assert!(r.starts_with("-ERR Script killed by user with SCRIPT KILL... script: "), "{r}");
    assert_eq!(b.text(&["GET", "x"]), "$-1\r\n");
    a.send(&encode(&[b"EVAL", b"redis.call('set', 'w', '1') while true do end", b"0"]));
    assert!(wait_until(Duration::from_secs(10), || b.text(&["PING"]).starts_with("-BUSY")));
    assert!(b.text(&["SCRIPT", "KILL"]).starts_with("-UNKILLABLE Sorry the script already executed write commands"));
    // The server is killed by its PID when `f` drops.
}

/// A running function: FUNCTION STATS shows it (name, calling command, run time), FUNCTION KILL
/// stops it.
#[test]
fn function_stats_shows_the_running_function_and_function_kill_stops_it() {
    use crate::harness::{encode, wait_until};
    use std::time::Duration;
    let f = Server::ferrodis(&["--busy-reply-threshold", "100"]);
    let mut a = f.client();
    let mut b = f.client();
    let lib = "#!lua name=spinlib\nredis.register_function('spin', function(keys, args) while true do end end)";
    assert_eq!(b.text(&["FUNCTION", "LOAD", lib]), "$7\r\nspinlib\r\n");
    a.send(&encode(&[b"FCALL", b"spin", b"0", b"arg1"]));
    assert!(wait_until(Duration::from_secs(10), || b.text(&["PING"]).starts_with("-BUSY")));
    let stats = b.text(&["FUNCTION", "STATS"]);
    assert!(
        stats.starts_with("*4\r\n$14\r\nrunning_script\r\n*6\r\n$4\r\nname\r\n$4\r\nspin\r\n$7\r\ncommand\r\n*4\r\n$5\r\nFCALL\r\n$4\r\nspin\r\n$1\r\n0\r\n$4\r\narg1\r\n$11\r\nduration_ms\r\n:"),
        "{stats}"
    );
    assert_eq!(b.text(&["FUNCTION", "KILL"]), "+OK\r\n");
    let r = String::from_utf8(a.read_reply().expect("the killed function's reply")).unwrap();
    assert!(r.starts_with("-ERR Script killed by user with SCRIPT KILL..."), "{r}");
    assert!(b.text(&["FUNCTION", "STATS"]).starts_with("*4\r\n$14\r\nrunning_script\r\n$-1\r\n"));
}

/// The distributed lock users write: `SET lock token NX PX ms` to take it, a Lua
/// compare-and-delete to release it. Four clients each do 50 unprotected read-modify-write
/// increments of a counter under the lock; none may be lost, and a release with the wrong
/// token leaves the lock alone.
#[test]
fn lock_with_set_nx_px_and_lua_release_serialises_clients() {
    const RELEASE: &str = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end";
    let f = Server::ferrodis(&[]);
    let url = f.url();
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let url = url.clone();
            std::thread::spawn(move || {
                let client = redis::Client::open(url.as_str()).expect("client");
                let mut con = client.get_connection().expect("connect");
                let release = redis::Script::new(RELEASE);
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
                for i in 0..50 {
                    let token = format!("{w}-{i}");
                    loop {
                        let got: Option<String> =
                            redis::cmd("SET").arg("lock").arg(&token).arg("NX").arg("PX").arg(30_000).query(&mut con).expect("set nx");
                        if got.is_some() {
                            break;
                        }
                        assert!(std::time::Instant::now() < deadline, "lock never acquired");
                        std::thread::yield_now();
                    }
                    // Another client's token never releases it.
                    let wrong: i64 = release.key("lock").arg("not-mine").invoke(&mut con).expect("release wrong");
                    assert_eq!(wrong, 0);
                    let v: Option<i64> = redis::cmd("GET").arg("counter").query(&mut con).expect("get");
                    redis::cmd("SET").arg("counter").arg(v.unwrap_or(0) + 1).query::<()>(&mut con).expect("set");
                    let released: i64 = release.key("lock").arg(&token).invoke(&mut con).expect("release");
                    assert_eq!(released, 1);
                }
            })
        })
        .collect();
    for w in workers {
        w.join().expect("worker");
    }
    let mut c = f.client();
    assert_eq!(c.text(&["GET", "counter"]), "$3\r\n200\r\n");
    assert_eq!(c.text(&["EXISTS", "lock"]), ":0\r\n");
}

/// A fixed-window rate limiter in Lua (INCR, EXPIRE on the first hit), called 40 times by each
/// of three clients against a limit of 25 per window: exactly 25 calls are allowed, and the
/// window key carries its TTL.
#[test]
fn lua_rate_limiter_allows_exactly_the_limit() {
    const LIMITER: &str = "local n = redis.call('incr', KEYS[1]) \
        if n == 1 then redis.call('expire', KEYS[1], ARGV[2]) end \
        if n > tonumber(ARGV[1]) then return 0 end return 1";
    let f = Server::ferrodis(&[]);
    let url = f.url();
    let workers: Vec<_> = (0..3)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || {
                let client = redis::Client::open(url.as_str()).expect("client");
                let mut con = client.get_connection().expect("connect");
                let script = redis::Script::new(LIMITER);
                (0..40).map(|_| script.key("rate:user1").arg(25).arg(600).invoke::<i64>(&mut con).expect("limiter")).sum::<i64>()
            })
        })
        .collect();
    let allowed: i64 = workers.into_iter().map(|w| w.join().expect("worker")).sum();
    assert_eq!(allowed, 25);
    let mut c = f.client();
    assert_eq!(c.text(&["GET", "rate:user1"]), "$3\r\n120\r\n");
    let ttl = c.text(&["TTL", "rate:user1"]);
    assert!(ttl.starts_with(':') && ttl != ":-1\r\n" && ttl != ":-2\r\n", "{ttl}");
}

/// What a command counts as changes (rdb_changes_since_last_save) and whether a WATCH on its
/// destination sees it, compared with redis-server: SMOVE of a member the destination already
/// holds leaves the destination untouched; SADD counts one change per member added.
#[test]
fn changes_and_watch_touches_match_redis() {
    let run = |s: &Server| -> Vec<String> {
        let (mut a, mut b) = (s.client(), s.client());
        let changes = |c: &mut crate::harness::Client| -> i64 {
            let t = c.text(&["INFO", "persistence"]);
            t.lines().find_map(|l| l.strip_prefix("rdb_changes_since_last_save:")).and_then(|v| v.trim().parse().ok()).unwrap_or(-1)
        };
        let mut out = Vec::new();
        for cmd in [
            &["SADD", "a", "x", "y"][..],
            &["SADD", "b", "x"],
            &["SADD", "b", "p", "q", "r"],
            &["SADD", "b", "p"],
            &["SMOVE", "a", "b", "x"],
            &["SMOVE", "a", "c", "y"],
            &["SMOVE", "b", "a", "nope"],
        ] {
            let before = changes(&mut b);
            b.cmd(cmd);
            out.push(format!("{:?} +{}", cmd, changes(&mut b) - before));
        }
        // WATCH the destination; SMOVE a member it already holds; EXEC goes through.
        b.cmd(&["SADD", "src", "m", "n"]);
        b.cmd(&["SADD", "dst", "m"]);
        a.cmd(&["WATCH", "dst"]);
        b.cmd(&["SMOVE", "src", "dst", "m"]);
        a.cmd(&["MULTI"]);
        a.cmd(&["PING"]);
        out.push(a.text(&["EXEC"]));
        // And when the member is new there, the WATCH fires.
        a.cmd(&["WATCH", "dst"]);
        b.cmd(&["SMOVE", "src", "dst", "n"]);
        a.cmd(&["MULTI"]);
        a.cmd(&["PING"]);
        out.push(a.text(&["EXEC"]));
        out
    };
    let (r, f) = (Server::redis(&[]), Server::ferrodis(&[]));
    let want = run(&r);
    assert_eq!(want[want.len() - 2], "*1\r\n+PONG\r\n");
    assert_eq!(run(&f), want);
}
