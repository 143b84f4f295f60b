//! Abusive clients: a 1 GB bulk header, a multibulk count past the limit and an endless inline
//! line get Redis's protocol errors (compared with redis-server) and are disconnected; a 500 MB
//! bulk announced is not reserved up front; a client
//! that pipelines a million commands without reading its replies is held back by backpressure,
//! so the server's memory stays bounded while another client keeps being served.

use crate::harness::{Client, Server};
use std::io::{Read, Write};
use std::time::{Duration, Instant};

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()))
        .unwrap_or(0)
}

/// What the server answers a raw request, and whether it then closed the connection.
fn answer(port: u16, bytes: &[u8]) -> (String, bool) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = s.write_all(bytes);
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let closed = loop {
        match s.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(_) => break false,
        }
    };
    (String::from_utf8_lossy(&out).into_owned(), closed)
}

#[test]
fn oversized_requests_get_redis_protocol_errors_and_are_cut_off() {
    let ours = Server::ferrodis(&[]);
    let theirs = Server::redis(&[]);
    let endless_inline = vec![b'a'; 70 * 1024];
    for req in [&b"*1\r\n$1073741824\r\n"[..], b"*3000000000\r\n", b"*1\r\n$-5\r\n", &endless_inline] {
        let a = answer(ours.port, req);
        let b = answer(theirs.port, req);
        assert_eq!(a, b, "{:?}", String::from_utf8_lossy(&req[..req.len().min(20)]));
        assert!(a.1, "the connection is closed after a protocol error: {:?}", a);
    }
    // A 500 MB bulk (within proto-max-bulk-len) announced and 4 MB sent: the server waits for
    // the rest without reserving the announced size, and serves others meanwhile.
    let pid = ours.child.id();
    let before = rss_kb(pid);
    let mut s = std::net::TcpStream::connect(("127.0.0.1", ours.port)).unwrap();
    s.write_all(b"*2\r\n$3\r\nGET\r\n$500000000\r\n").unwrap();
    s.write_all(&vec![b'x'; 4 << 20]).unwrap();
    assert_eq!(Client::connect(ours.port).text(&["PING"]), "+PONG\r\n");
    assert!(rss_kb(pid) < before + 128 * 1024, "RSS {} kB after a 500 MB bulk header (before {before} kB)", rss_kb(pid));
    drop(s);
    assert_eq!(Client::connect(ours.port).text(&["PING"]), "+PONG\r\n");
}

#[test]
fn a_client_that_never_reads_is_held_back_and_others_are_served() {
    let s = Server::ferrodis(&[]);
    let pid = s.child.id();
    let before = rss_kb(pid);
    let port = s.port;
    // The flooder: a million PINGs (and 100k SETs of 1 KB) written as fast as the socket takes
    // them, replies never read. Writes block once both socket buffers are full.
    let flooder = std::thread::spawn(move || {
        let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        c.set_write_timeout(Some(Duration::from_secs(3))).unwrap();
        let pings = b"PING\r\n".repeat(10_000);
        let mut sent = 0usize;
        for _ in 0..100 {
            match c.write_all(&pings) {
                Ok(()) => sent += 10_000,
                Err(_) => break,
            }
        }
        let value = "x".repeat(1024);
        let set = format!("*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n${}\r\n{}\r\n", value.len(), value).repeat(1000);
        for _ in 0..100 {
            if c.write_all(set.as_bytes()).is_err() {
                break;
            }
        }
        (sent, c)
    });
    // Meanwhile another client is served.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut c = Client::connect(port);
    for i in 0..200 {
        assert_eq!(c.text(&["SET", &format!("k{i}"), "v"]), "+OK\r\n");
        assert!(Instant::now() < deadline);
    }
    let (sent, conn) = flooder.join().unwrap();
    let after = rss_kb(pid);
    // The flooder's unread replies (a million +PONG would be 7 MB, and more with the SETs) are
    // not buffered without bound: the server stopped reading it.
    assert!(after < before + 64 * 1024, "RSS grew from {before} kB to {after} kB while a client did not read (sent {sent} commands)");
    drop(conn);
    assert_eq!(Client::connect(port).text(&["PING"]), "+PONG\r\n");
}

/// maxmemory-clients: three clients each hold MBs of an unfinished bulk; past the limit, the
/// one holding the most is disconnected, never one with CLIENT NO-EVICT on; others keep being
/// served. The same outcome on redis-server 7.0 (which reserves a big bulk's announced size at
/// once, where ferrodis grows the buffer as the bytes come).
#[test]
fn clients_past_maxmemory_clients_are_evicted_biggest_first_except_no_evict() {
    for bin in ["ferrodis", "redis-server"] {
        let srv = match bin {
            "ferrodis" => Server::ferrodis(&["--maxmemory-clients", "32mb"]),
            _ => Server::redis(&["--maxmemory-clients", "32mb"]),
        };
        let stat = |name: &str| -> u64 {
            let info = Client::connect(srv.port).text(&["INFO", "stats"]);
            info.lines().find_map(|l| l.strip_prefix(&format!("{name}:"))).and_then(|v| v.trim().parse().ok()).unwrap_or(0)
        };
        let mut keep = Client::connect(srv.port);
        assert_eq!(keep.text(&["CLIENT", "NO-EVICT", "on"]), "+OK\r\n");
        let mut small = Client::connect(srv.port);
        let mut big = Client::connect(srv.port);
        // 10 MB, 2 MB and up to 30 MB of 40 MB bulks; a write to an evicted client may fail.
        for (c, mb) in [(&mut keep, 10usize), (&mut small, 2), (&mut big, 30)] {
            let _ = c.s.write_all(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$40000000\r\n");
            for _ in 0..mb {
                if c.s.write_all(&vec![b'x'; 1 << 20]).is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while stat("evicted_clients") == 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(stat("evicted_clients") >= 1, "{bin}: no client evicted");
        assert!(big.closed(), "{bin}: the biggest client is evicted");
        // The protected client is still there, and new clients are served.
        let list = Client::connect(srv.port).text(&["CLIENT", "LIST"]);
        assert!(list.lines().any(|l| l.contains("flags=e")), "{bin}: the NO-EVICT client is gone:\n{list}");
        assert_eq!(Client::connect(srv.port).text(&["PING"]), "+PONG\r\n");
        drop((keep, small));
    }
}
