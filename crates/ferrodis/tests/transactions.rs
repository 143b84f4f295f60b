//! Transactions with several clients: WATCH against other clients' writes and expiry, blocked
//! clients woken only after an EXEC, compared reply for reply with redis-server; and the
//! optimistic WATCH retry loop users write, under two competing clients (the `redis` crate).

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
    assert_eq!(b.text(&["SCRIPT", "KILL"]), "+OK\r\n");
    let r = String::from_utf8(a.read_reply().expect("the killed script's reply")).unwrap();
    assert!(r.starts_with("-ERR Script killed by user with SCRIPT KILL... script: "), "{r}");
    assert_eq!(b.text(&["GET", "x"]), "$-1\r\n");
    a.send(&encode(&[b"EVAL", b"redis.call('set', 'w', '1') while true do end", b"0"]));
    assert!(wait_until(Duration::from_secs(10), || b.text(&["PING"]).starts_with("-BUSY")));
    assert!(b.text(&["SCRIPT", "KILL"]).starts_with("-UNKILLABLE Sorry the script already executed write commands"));
    // The server is killed by its PID when `f` drops.
}
