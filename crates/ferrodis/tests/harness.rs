//! Test harness: spawn ferrodis or redis-server on a free loopback port, a guard that kills the
//! process by PID on drop, and a raw RESP client that returns replies byte for byte.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const FERRODIS: &str = env!("CARGO_BIN_EXE_ferrodis");

/// A free port below 55536 (so that port + 10000 stays valid for cluster buses).
pub fn free_port() -> u16 {
    loop {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
        let p = l.local_addr().expect("local addr").port();
        if p < 55536 {
            return p;
        }
    }
}

/// A running server; killed (by PID) and reaped when dropped.
pub struct Server {
    pub child: Child,
    pub port: u16,
    pub dir: std::path::PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A new directory for one server. The counter makes names unique within this process (a port
/// number alone is not: the OS hands the same free port out again, and two cluster nodes sharing
/// a directory would share one nodes.conf, hence one node id).
pub fn tempdir(tag: &str) -> std::path::PathBuf {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let d = std::env::temp_dir().join(format!("ferrodis-test-{}-{}-{}", tag, std::process::id(), n));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("create temp dir");
    d
}

fn spawn(bin: &str, args: &[&str], tag: &str) -> Server {
    let s = launch(bin, args, tempdir(tag));
    s.wait_ready();
    s
}

/// Starts a server in `dir` (which it owns from now on: removed on drop), without waiting for it.
pub fn launch(bin: &str, args: &[&str], dir: std::path::PathBuf) -> Server {
    launch_at(bin, free_port(), args, dir)
}

/// `launch` on a given port (a server restarted where its clients and replicas expect it).
pub fn launch_at(bin: &str, port: u16, args: &[&str], dir: std::path::PathBuf) -> Server {
    launch_with_env(bin, port, args, dir, &[])
}

/// `launch_at` with environment variables (test-only switches such as FERRODIS_FAILPOINTS).
pub fn launch_with_env(bin: &str, port: u16, args: &[&str], dir: std::path::PathBuf, env: &[(&str, &str)]) -> Server {
    let mut cmd = Command::new(bin);
    cmd.envs(env.iter().copied());
    cmd.arg("--port").arg(port.to_string()).arg("--bind").arg("127.0.0.1").arg("--save").arg("").arg("--appendonly").arg("no");
    cmd.arg("--enable-debug-command").arg("yes").arg("--dir").arg(&dir);
    cmd.args(args).stdout(Stdio::from(std::fs::File::create(dir.join("log")).expect("log file"))).stderr(Stdio::null());
    let child = cmd.spawn().unwrap_or_else(|e| panic!("start {}: {}", bin, e));
    Server { child, port, dir }
}

impl Server {
    pub fn ferrodis(args: &[&str]) -> Server {
        spawn(FERRODIS, args, "ferrodis")
    }
    /// Debian's redis-server 7.0.15, the reference.
    pub fn redis(args: &[&str]) -> Server {
        require_redis();
        spawn("redis-server", args, "redis")
    }
    /// Starts ferrodis in a prepared directory (e.g. one holding a dump.rdb).
    pub fn ferrodis_in(dir: std::path::PathBuf, args: &[&str]) -> Server {
        let s = launch(FERRODIS, args, dir);
        s.wait_ready();
        s
    }
    pub fn redis_in(dir: std::path::PathBuf, args: &[&str]) -> Server {
        require_redis();
        let s = launch("redis-server", args, dir);
        s.wait_ready();
        s
    }
    pub fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            // A connection closed before the reply is "not ready yet" (a process that held the
            // port a moment ago, or one still starting), not a failure.
            if let Ok(mut c) = Client::try_connect(self.port) {
                let sent = c.s.write_all(&encode(&[b"PING"])).is_ok();
                if let Some(r) = c.read_reply().filter(|_| sent) {
                    if r == b"+PONG\r\n" || r.starts_with(b"-NOAUTH") {
                        return;
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("server on port {} did not become ready; log:\n{}", self.port, self.log());
    }
    pub fn client(&self) -> Client {
        Client::connect(self.port)
    }
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }
    /// Waits (bounded) for the process to exit; returns its status.
    pub fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

pub fn require_redis() {
    let ok = Command::new("redis-server").arg("--version").output().map(|o| o.status.success()).unwrap_or(false);
    assert!(ok, "redis-server is required (apt-get install redis-server redis-tools); .ci/run installs it");
}

/// Encodes a command as a RESP multibulk.
pub fn encode(args: &[&[u8]]) -> Vec<u8> {
    let mut v = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        v.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        v.extend_from_slice(a);
        v.extend_from_slice(b"\r\n");
    }
    v
}

/// A raw RESP client: sends bytes, reads exactly one reply (RESP2 or RESP3) as raw bytes.
pub struct Client {
    pub s: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    pub fn try_connect(port: u16) -> std::io::Result<Client> {
        let s = TcpStream::connect(("127.0.0.1", port))?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        s.set_nodelay(true)?;
        Ok(Client { s, buf: Vec::new() })
    }
    pub fn connect(port: u16) -> Client {
        Self::try_connect(port).expect("connect")
    }
    pub fn send(&mut self, bytes: &[u8]) {
        self.s.write_all(bytes).expect("write");
    }
    pub fn cmd(&mut self, args: &[&str]) -> Vec<u8> {
        let a: Vec<&[u8]> = args.iter().map(|s| s.as_bytes()).collect();
        self.cmd_bytes(&a)
    }
    pub fn cmd_bytes(&mut self, args: &[&[u8]]) -> Vec<u8> {
        self.send(&encode(args));
        self.read_reply().expect("a reply")
    }
    /// The reply as text, for assertions.
    pub fn text(&mut self, args: &[&str]) -> String {
        String::from_utf8_lossy(&self.cmd(args)).into_owned()
    }
    fn fill(&mut self) -> Option<()> {
        let mut tmp = [0u8; 65536];
        match self.s.read(&mut tmp) {
            Ok(0) | Err(_) => None,
            Ok(n) => {
                self.buf.extend_from_slice(&tmp[..n]);
                Some(())
            }
        }
    }
    /// Reads one complete reply; None if the connection closed first.
    pub fn read_reply(&mut self) -> Option<Vec<u8>> {
        loop {
            if let Some(n) = reply_len(&self.buf, 0) {
                return Some(self.buf.drain(..n).collect());
            }
            self.fill()?;
        }
    }
    /// True if the server closed the connection (after any pending bytes).
    pub fn closed(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let mut tmp = [0u8; 4096];
            match self.s.read(&mut tmp) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut => return false,
                Err(_) => return true,
            }
        }
        false
    }
}

fn line_end(b: &[u8], from: usize) -> Option<usize> {
    b[from..].windows(2).position(|w| w == b"\r\n").map(|p| from + p)
}

/// Length of the complete reply starting at `at`, if the buffer holds all of it. (A loop with a
/// count of the values still to read, not recursion: a script's reply may nest 8000 deep.)
pub fn reply_len(b: &[u8], at: usize) -> Option<usize> {
    let mut pos = at;
    let mut todo: u64 = 1;
    while todo > 0 {
        todo -= 1;
        if pos >= b.len() {
            return None;
        }
        let e = line_end(b, pos)?;
        let head = std::str::from_utf8(&b[pos + 1..e]).ok()?;
        let after = e + 2;
        match b[pos] {
            b'+' | b'-' | b':' | b'_' | b',' | b'#' | b'(' => pos = after,
            b'$' | b'=' | b'!' => {
                let n: i64 = head.parse().ok()?;
                pos = if n < 0 { after } else { after + n as usize + 2 };
                if pos > b.len() {
                    return None;
                }
            }
            b'*' | b'~' | b'>' | b'%' | b'|' => {
                let n: i64 = head.parse().ok()?;
                let n = n.max(0) as u64;
                // A map has two values per entry; an attribute precedes the actual reply.
                todo += match b[pos] {
                    b'%' => 2 * n,
                    b'|' => 2 * n + 1,
                    _ => n,
                };
                pos = after;
            }
            _ => return None,
        }
    }
    Some(pos - at)
}

/// Splits an aggregate reply into its element replies (raw), for order-insensitive compares.
pub fn elements(b: &[u8]) -> Vec<Vec<u8>> {
    let e = line_end(b, 0).expect("header");
    let mut pos = e + 2;
    let mut out = Vec::new();
    while pos < b.len() {
        let n = reply_len(b, pos).expect("element");
        out.push(b[pos..pos + n].to_vec());
        pos += n;
    }
    out
}

/// Runs redis-cli with arguments against a port; returns stdout.
pub fn redis_cli(port: u16, args: &[&str]) -> String {
    let o = Command::new("redis-cli").arg("-p").arg(port.to_string()).args(args).output().expect("redis-cli (apt-get install redis-tools)");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Polls `f` until it returns true or the deadline passes.
pub fn wait_until(within: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// A `redis` crate connection to a loopback port, with timeouts.
pub fn conn(port: u16) -> redis::RedisResult<redis::Connection> {
    let c = redis::Client::open(format!("redis://127.0.0.1:{}/", port))?;
    let con = c.get_connection_with_timeout(Duration::from_secs(2))?;
    con.set_read_timeout(Some(Duration::from_secs(5)))?;
    Ok(con)
}

/// One command on a fresh connection.
pub fn q<T: redis::FromRedisValue>(port: u16, args: &[&str]) -> redis::RedisResult<T> {
    let mut c = conn(port)?;
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query(&mut c)
}

/// One field of an INFO section ("" when missing or unreachable).
pub fn field(port: u16, section: &str, name: &str) -> String {
    let text: String = q(port, &["INFO", section]).unwrap_or_default();
    text.lines().find_map(|l| l.strip_prefix(&format!("{name}:"))).unwrap_or_default().trim().to_string()
}
