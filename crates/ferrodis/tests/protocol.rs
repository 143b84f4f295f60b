//! The wire: inline commands, pipelining, limits, output buffers, client commands.

use crate::harness::{encode, redis_cli, wait_until, Client, Server};
use std::time::Duration;

#[test]
fn inline_and_deep_pipelining() {
    let s = Server::ferrodis(&[]);
    let mut c = s.client();
    c.send(b"PING\r\nSET k \"a b\"\r\nGET k\r\n");
    assert_eq!(c.read_reply().unwrap(), b"+PONG\r\n");
    assert_eq!(c.read_reply().unwrap(), b"+OK\r\n");
    assert_eq!(c.read_reply().unwrap(), b"$3\r\na b\r\n");
    let mut batch = Vec::new();
    for i in 0..10_000 {
        batch.extend(encode(&[b"INCR", b"n"]));
        if i % 1000 == 0 {
            batch.extend(b"PING\r\n");
        }
    }
    c.send(&batch);
    for i in 0..10_000 {
        assert_eq!(c.read_reply().unwrap(), format!(":{}\r\n", i + 1).as_bytes());
        if i % 1000 == 0 {
            assert_eq!(c.read_reply().unwrap(), b"+PONG\r\n");
        }
    }
}

#[test]
fn protocol_error_closes_connection() {
    let s = Server::ferrodis(&[]);
    let mut c = s.client();
    c.send(b"*1\r\n$3\r\nGET\r\n*x\r\n");
    assert_eq!(c.read_reply().unwrap(), b"-ERR wrong number of arguments for 'get' command\r\n");
    assert_eq!(c.read_reply().unwrap(), b"-ERR Protocol error: invalid multibulk length\r\n");
    assert!(c.closed());
    // The server is still fine for others.
    assert_eq!(s.client().text(&["PING"]), "+PONG\r\n");
}

#[test]
fn query_buffer_limit_closes_client() {
    let s = Server::ferrodis(&[]);
    let mut c = s.client();
    assert_eq!(c.text(&["CONFIG", "SET", "client-query-buffer-limit", "1mb"]), "+OK\r\n");
    // A 2 MB bulk that never completes: the buffer passes the limit and the client is dropped.
    c.send(b"*2\r\n$3\r\nGET\r\n$2000000\r\n");
    let chunk = vec![b'x'; 64 * 1024];
    for _ in 0..24 {
        if std::io::Write::write_all(&mut c.s, &chunk).is_err() {
            break;
        }
    }
    assert!(c.closed());
    let mut d = s.client();
    assert!(d.text(&["INFO", "stats"]).contains("client_query_buffer_limit_disconnections:1"));
}

#[test]
fn output_buffer_limit_closes_client() {
    let s = Server::ferrodis(&[]);
    let mut c = s.client();
    assert_eq!(c.text(&["CONFIG", "SET", "client-output-buffer-limit", "normal 1mb 0 0"]), "+OK\r\n");
    let big = "x".repeat(1536 * 1024);
    assert_eq!(c.text(&["SET", "big", &big]), "+OK\r\n");
    // A reply larger than the hard limit closes the client, as in Redis.
    c.send(&encode(&[b"GET", b"big"]));
    assert!(c.closed());
    let mut d = s.client();
    assert!(wait_until(Duration::from_secs(5), || d.text(&["INFO", "stats"]).contains("client_output_buffer_limit_disconnections:1")));
}

#[test]
fn slow_reader_gets_backpressure_not_memory_growth() {
    // A client that pipelines big replies and never reads: ferrodis stops reading from it
    // while its socket is full, so its pending output stays around one batch.
    let s = Server::ferrodis(&[]);
    let mut c = s.client();
    let big = "x".repeat(512 * 1024);
    assert_eq!(c.text(&["SET", "big", &big]), "+OK\r\n");
    let mut batch = Vec::new();
    for _ in 0..64 {
        batch.extend(encode(&[b"GET", b"big"]));
    }
    c.s.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
    let _ = std::io::Write::write_all(&mut c.s, &batch);
    let mut d = s.client();
    let info = d.text(&["CLIENT", "LIST"]);
    let omem: usize =
        info.lines().filter_map(|l| l.split(' ').find_map(|f| f.strip_prefix("omem=")).and_then(|v| v.parse().ok())).max().unwrap_or(0);
    assert!(omem <= 2 * 512 * 1024 + 128 * 1024, "pending output {} bytes", omem);
    assert_eq!(d.text(&["PING"]), "+PONG\r\n");
}

#[test]
fn maxclients_rejects_with_redis_error() {
    let s = Server::ferrodis(&["--maxclients", "2"]);
    let mut a = s.client();
    let mut b = s.client();
    assert_eq!(a.text(&["PING"]), "+PONG\r\n");
    assert_eq!(b.text(&["PING"]), "+PONG\r\n");
    let mut c = s.client();
    assert_eq!(c.read_reply().unwrap(), b"-ERR max number of clients reached\r\n");
    assert!(c.closed());
}

#[test]
fn idle_timeout_and_client_kill() {
    let s = Server::ferrodis(&["--timeout", "1"]);
    let mut idle = s.client();
    assert_eq!(idle.text(&["PING"]), "+PONG\r\n");
    assert!(idle.closed(), "idle client closed after timeout");

    let s = Server::ferrodis(&[]);
    let mut victim = s.client();
    let id = victim.text(&["CLIENT", "ID"]);
    let id = id.trim_start_matches(':').trim();
    let mut killer = s.client();
    assert_eq!(killer.text(&["CLIENT", "KILL", "ID", id]), ":1\r\n");
    assert!(victim.closed());
    assert!(killer.text(&["CLIENT", "LIST"]).contains("cmd=client|list"));
}

#[test]
fn client_reply_off_and_skip() {
    let s = Server::ferrodis(&[]);
    let mut c = s.client();
    c.send(&encode(&[b"CLIENT", b"REPLY", b"OFF"]));
    c.send(&encode(&[b"SET", b"a", b"1"]));
    c.send(&encode(&[b"CLIENT", b"REPLY", b"ON"]));
    assert_eq!(c.read_reply().unwrap(), b"+OK\r\n");
    c.send(&encode(&[b"CLIENT", b"REPLY", b"SKIP"]));
    c.send(&encode(&[b"GET", b"a"]));
    c.send(&encode(&[b"GET", b"a"]));
    assert_eq!(c.read_reply().unwrap(), b"$1\r\n1\r\n");
}

#[test]
fn auth_with_requirepass() {
    let s = Server::ferrodis(&["--requirepass", "secret"]);
    let mut c = s.client();
    assert_eq!(c.text(&["GET", "k"]), "-NOAUTH Authentication required.\r\n");
    assert_eq!(c.text(&["AUTH", "wrong"]), "-WRONGPASS invalid username-password pair or user is disabled.\r\n");
    assert_eq!(c.text(&["AUTH", "secret"]), "+OK\r\n");
    assert_eq!(c.text(&["GET", "k"]), "$-1\r\n");
    let mut d = s.client();
    assert!(d.text(&["HELLO", "3"]).starts_with("-NOAUTH HELLO must be called"));
    assert!(d.text(&["HELLO", "3", "AUTH", "default", "secret"]).starts_with("%7\r\n"));
    assert_eq!(redis_cli(s.port, &["-a", "secret", "--no-auth-warning", "PING"]).trim(), "PONG");
}

#[test]
fn client_pause_holds_writes_until_unpause() {
    let s = Server::ferrodis(&[]);
    let mut admin = s.client();
    assert_eq!(admin.text(&["CLIENT", "PAUSE", "100000", "WRITE"]), "+OK\r\n");
    let port = s.port;
    let writer = std::thread::spawn(move || Client::connect(port).text(&["SET", "k", "v"]));
    // Reads still go through while writes wait.
    assert_eq!(admin.text(&["GET", "k"]), "$-1\r\n");
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(admin.text(&["GET", "k"]), "$-1\r\n", "the paused write has not run");
    assert_eq!(admin.text(&["CLIENT", "UNPAUSE"]), "+OK\r\n");
    assert_eq!(writer.join().unwrap(), "+OK\r\n");
    assert_eq!(admin.text(&["GET", "k"]), "$1\r\nv\r\n");
}

#[test]
fn latency_monitor_records_slow_commands() {
    let s = Server::ferrodis(&[]);
    let mut c = s.client();
    assert_eq!(c.text(&["LATENCY", "LATEST"]), "*0\r\n");
    assert_eq!(c.text(&["CONFIG", "SET", "latency-monitor-threshold", "20"]), "+OK\r\n");
    assert_eq!(c.text(&["DEBUG", "SLEEP", "0.05"]), "+OK\r\n");
    let latest = c.text(&["LATENCY", "LATEST"]);
    assert!(latest.starts_with("*1\r\n*4\r\n$7\r\ncommand\r\n"), "{}", latest);
    let ms: i64 = latest.lines().nth(4).unwrap().trim_start_matches(':').parse().unwrap();
    assert!(ms >= 50, "{}", latest);
    assert!(c.text(&["LATENCY", "HISTORY", "command"]).starts_with("*1\r\n*2\r\n"));
    assert_eq!(c.text(&["LATENCY", "RESET"]), ":1\r\n");
    assert_eq!(c.text(&["LATENCY", "LATEST"]), "*0\r\n");
}

/// AUTH pipelined in front of a large argument: the limits for unauthenticated clients no
/// longer apply to the commands after it (found by MIGRATE, which sends AUTH, SELECT and
/// RESTOREs in one write).
#[test]
fn pipelined_auth_lifts_unauthenticated_limits_for_what_follows() {
    use crate::harness::{encode, Server};
    let f = Server::ferrodis(&["--requirepass", "pw"]);
    let mut c = f.client();
    let big = vec![b'x'; 100_000];
    let mut batch = encode(&[b"AUTH", b"pw"]);
    batch.extend_from_slice(&encode(&[b"SET", b"k", &big]));
    c.send(&batch);
    assert_eq!(c.read_reply().expect("AUTH reply"), b"+OK\r\n");
    assert_eq!(c.read_reply().expect("SET reply"), b"+OK\r\n");
    assert_eq!(c.text(&["STRLEN", "k"]), ":100000\r\n");
}
