//! Blocking commands, run as scripted scenarios with several clients against redis-server 7.0.15
//! and ferrodis: every reply, including the ones a blocked client receives later, must be the
//! same. Waits poll `blocked_clients` with a deadline; nothing depends on timing.

use crate::harness::{Client, Server};
use std::time::Duration;

#[derive(Clone, Copy)]
pub(crate) enum Step<'a> {
    /// Client n sends a command and reads its reply.
    Cmd(usize, &'a str),
    /// Client n sends a command without reading (it will block).
    Send(usize, &'a str),
    /// Client n reads one reply.
    Read(usize),
    /// Wait until this many clients are blocked.
    Blocked(usize),
    /// Client n sends a command whose reply is not compared (ids differ between servers).
    Quiet(usize, &'a str),
    /// Client n polls EXISTS on a key until it is gone (an expiry), with a deadline.
    Gone(usize, &'a str),
    /// Client n (a RESP2 subscriber) sends PING and logs every message before the pong.
    Drain(usize),
}
pub(crate) use Step::*;

fn blocked_clients(c: &mut Client) -> usize {
    let info = String::from_utf8_lossy(&c.cmd(&["INFO", "clients"])).into_owned();
    info.lines().find_map(|l| l.strip_prefix("blocked_clients:")).and_then(|v| v.trim().parse().ok()).expect("blocked_clients in INFO")
}

/// Runs a scenario on one server; `$ID1` in a command is client 1's id.
fn run(server: &Server, steps: &[Step]) -> Vec<String> {
    let mut clients: Vec<Client> = (0..4).map(|_| server.client()).collect();
    let id1 = String::from_utf8_lossy(&clients[1].cmd(&["CLIENT", "ID"])).trim_start_matches(':').trim().to_string();
    let mut admin = server.client();
    let mut log = Vec::new();
    let words = |s: &str| -> Vec<String> {
        resp::split_args(s.replace("$ID1", &id1).as_bytes()).expect("quotes").into_iter().map(|w| String::from_utf8(w).unwrap()).collect()
    };
    for (i, step) in steps.iter().enumerate() {
        match *step {
            Cmd(n, c) | Quiet(n, c) => {
                let w = words(c);
                let a: Vec<&str> = w.iter().map(|s| s.as_str()).collect();
                let r = clients[n].cmd(&a);
                if matches!(step, Cmd(..)) {
                    log.push(format!("{i} c{n} {c} -> {}", String::from_utf8_lossy(&r)));
                }
            }
            Send(n, c) => {
                let w = words(c);
                let a: Vec<&[u8]> = w.iter().map(|s| s.as_bytes()).collect();
                clients[n].send(&crate::harness::encode(&a));
            }
            Read(n) => {
                let r = clients[n].read_reply().expect("a reply");
                log.push(format!("{i} c{n} read -> {}", String::from_utf8_lossy(&r)));
            }
            Gone(n, key) => {
                let ok = crate::harness::wait_until(Duration::from_secs(10), || clients[n].cmd(&["EXISTS", key]) == b":0\r\n");
                assert!(ok, "step {i}: {key} should expire");
            }
            Drain(n) => {
                clients[n].send(&crate::harness::encode(&[b"PING"]));
                loop {
                    let r = clients[n].read_reply().expect("a message or the pong");
                    if r == b"*2\r\n$4\r\npong\r\n$0\r\n\r\n" {
                        break;
                    }
                    log.push(format!("{i} c{n} read -> {}", String::from_utf8_lossy(&r)));
                }
            }
            Blocked(k) => {
                let ok = crate::harness::wait_until(Duration::from_secs(10), || blocked_clients(&mut admin) == k);
                assert!(ok, "step {i}: {k} blocked clients expected");
            }
        }
    }
    log
}

pub(crate) fn same_as_redis(name: &str, steps: &[Step]) -> Vec<String> {
    let r = Server::redis(&[]);
    let f = Server::ferrodis(&[]);
    let (a, b) = (run(&r, steps), run(&f, steps));
    if a != b {
        // The whole of both logs, to see every difference at once.
        eprintln!("scenario {name}, redis:\n{}\nferrodis:\n{}", a.join("\n"), b.join("\n"));
    }
    for (x, y) in a.iter().zip(b.iter()) {
        assert_eq!(x, y, "scenario {name}: redis vs ferrodis");
    }
    assert_eq!(a.len(), b.len());
    b
}

#[test]
fn waiters_are_served_oldest_first() {
    let log = same_as_redis(
        "fifo",
        &[
            Send(1, "BLPOP k 0"),
            Blocked(1),
            Send(2, "BLPOP other k 0"),
            Blocked(2),
            Cmd(3, "RPUSH k a"),
            Read(1),
            Cmd(3, "RPUSH k b"),
            Read(2),
            Cmd(3, "LLEN k"),
            // Several elements in one push serve several waiters, in order.
            Send(1, "BRPOP k 0"),
            Blocked(1),
            Send(2, "BRPOP k 0"),
            Blocked(2),
            Cmd(3, "RPUSH k a b c"),
            Read(1),
            Read(2),
            Cmd(3, "LRANGE k 0 -1"),
        ],
    );
    assert!(log.iter().any(|l| l.starts_with("5 c1 read -> *2\r\n$1\r\nk\r\n$1\r\na")), "{log:?}");
}

#[test]
fn blmove_chains_to_the_next_waiter() {
    same_as_redis(
        "chain",
        &[
            Send(1, "BLMOVE src mid LEFT RIGHT 0"),
            Blocked(1),
            Send(2, "BLPOP mid 0"),
            Blocked(2),
            Cmd(3, "LPUSH src x"),
            Read(1),
            Read(2),
            Cmd(3, "EXISTS src mid"),
            Send(1, "BRPOPLPUSH src2 dst2 0"),
            Blocked(1),
            Cmd(3, "RPUSH src2 a b"),
            Read(1),
            Cmd(3, "LRANGE dst2 0 -1"),
            Cmd(3, "LRANGE src2 0 -1"),
        ],
    );
}

#[test]
fn timeouts_unblock_and_kill_leave_no_trace() {
    same_as_redis(
        "timeouts",
        &[
            Cmd(1, "BLPOP k 0.05"),
            Cmd(1, "BLMOVE a b LEFT LEFT 0.01"),
            Cmd(1, "BZPOPMIN z 0.01"),
            Cmd(1, "BLMPOP 0.01 1 k LEFT"),
            Cmd(1, "BLPOP k -1"),
            Cmd(1, "BLPOP k x"),
            Cmd(1, "BLMPOP x 1 k LEFT"),
            Cmd(1, "BLMPOP 0 0 k LEFT"),
            Cmd(1, "BLMOVE a b UP LEFT 0"),
            Quiet(1, "HELLO 3"),
            Cmd(1, "BLPOP k 0.01"),
            Cmd(1, "BLMOVE a b LEFT LEFT 0.01"),
            Quiet(1, "HELLO 2"),
            Send(1, "BLPOP k 0"),
            Blocked(1),
            Cmd(2, "CLIENT UNBLOCK $ID1"),
            Read(1),
            Send(1, "BZPOPMIN k 0"),
            Blocked(1),
            Cmd(2, "CLIENT UNBLOCK $ID1 ERROR"),
            Read(1),
            Cmd(2, "CLIENT UNBLOCK $ID1"),
            Cmd(2, "CLIENT UNBLOCK $ID1 BOGUS"),
            Cmd(2, "CLIENT UNBLOCK x"),
            Send(1, "BLPOP k 0"),
            Blocked(1),
            Quiet(2, "CLIENT KILL ID $ID1"),
            Blocked(0),
            Cmd(2, "RPUSH k a"),
            Cmd(2, "LRANGE k 0 -1"),
        ],
    );
}

#[test]
fn sorted_set_and_mpop_waiters() {
    same_as_redis(
        "zsets",
        &[
            Send(1, "BZMPOP 0 2 z1 z2 MAX COUNT 2"),
            Blocked(1),
            Send(2, "BLMPOP 0 1 l RIGHT COUNT 5"),
            Blocked(2),
            Cmd(3, "ZADD z2 1 a 2 b 3 c"),
            Read(1),
            Cmd(3, "RPUSH l x y"),
            Read(2),
            Send(1, "BZPOPMAX z2 0"),
            Read(1),
            Quiet(1, "HELLO 3"),
            Send(1, "BZPOPMIN zz 0"),
            Blocked(1),
            // A key of the wrong type does not serve the waiter; it keeps waiting.
            Cmd(3, "RPUSH zz a"),
            Cmd(3, "DEL zz"),
            Cmd(3, "ZADD zz 1.5 m 2 n"),
            Read(1),
            Send(1, "BZMPOP 0 1 zz MIN"),
            Read(1),
        ],
    );
}

#[test]
fn pipelined_commands_wait_for_the_blocked_one() {
    same_as_redis(
        "pipeline",
        &[Send(1, "BLPOP k 0"), Send(1, "PING"), Send(1, "LLEN k"), Blocked(1), Cmd(2, "RPUSH k a b"), Read(1), Read(1), Read(1)],
    );
}

#[test]
fn waiters_belong_to_their_database() {
    same_as_redis(
        "databases",
        &[
            Cmd(1, "SELECT 1"),
            Send(1, "BLPOP k 0"),
            Blocked(1),
            Cmd(2, "RPUSH k a"),
            Cmd(2, "SELECT 1"),
            Cmd(2, "RPUSH k b"),
            Read(1),
            Send(1, "BLPOP sw 0"),
            Blocked(1),
            Cmd(3, "RPUSH sw x"),
            Cmd(3, "SWAPDB 0 1"),
            Read(1),
        ],
    );
}
