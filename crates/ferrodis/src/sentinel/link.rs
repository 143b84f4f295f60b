//! Sentinel's connections to the instances it watches, as tasks on the sentinel thread: a
//! command link to every master, replica and sentinel (PING, INFO, hello PUBLISH, questions to
//! other sentinels, and the failover's commands) and a Pub/Sub link to every master and replica
//! (hello messages on `__sentinel__:hello`). Each reply goes to `monitor`, under the lock.
//! A task ends when its instance is gone or has a newer task (its id no longer matches).

use super::monitor::{self, Req};
use super::state::{Kind, HELLO_CHANNEL, PING_PERIOD, PUBLISH_PERIOD};
use super::Shared;
use resp::Reply;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Which instance a task serves: its master's name, its kind and key, and the task's id.
#[derive(Clone, Debug)]
pub struct InstRef {
    pub master: String,
    pub kind: Kind,
    pub key: String,
    pub task: u64,
    pub pubsub: bool,
}

/// What a link needs to connect.
pub struct Params {
    pub host: String,
    pub port: u16,
    pub auth: Option<(Option<String>, String)>,
    pub client_name: String,
    pub reply_timeout: Duration,
    pub wake: Arc<tokio::sync::Notify>,
}

pub struct Conn {
    s: crate::net::Stream,
    buf: Vec<u8>,
    out: Vec<u8>,
}

impl Conn {
    /// With `tls` (tls-replication), the link is TLS, as Redis Sentinel's links are then.
    pub async fn connect(host: &str, port: u16, tls: Option<&crate::net::Tls>, timeout: Duration) -> std::io::Result<Conn> {
        let s = crate::net::connect(host, port, tls, timeout).await?;
        Ok(Conn { s, buf: Vec::new(), out: Vec::new() })
    }
    pub fn local_ip(&self) -> String {
        self.s.tcp().local_addr().map(|a| a.ip().to_string()).unwrap_or_default()
    }
    pub fn queue(&mut self, args: &[Vec<u8>]) {
        let refs: Vec<&[u8]> = args.iter().map(|a| a.as_slice()).collect();
        resp::encode_command(&mut self.out, &refs);
    }
    pub async fn flush(&mut self) -> std::io::Result<()> {
        let r = self.s.write_all(&self.out).await;
        self.out.clear();
        r?;
        self.s.flush().await
    }
    pub async fn read(&mut self, timeout: Duration) -> std::io::Result<Reply> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match resp::parse_reply(&self.buf) {
                Ok(Some((r, n))) => {
                    self.buf.drain(..n);
                    return Ok(r);
                }
                Ok(None) => {}
                Err(e) => return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
            }
            if self.buf.len() > 64 << 20 {
                return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "reply too large"));
            }
            let mut chunk = [0u8; 16384];
            let n = tokio::time::timeout_at(deadline, self.s.read(&mut chunk))
                .await
                .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no reply in time"))??;
            if n == 0 {
                return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "connection closed"));
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

fn args(a: &[&str]) -> Vec<Vec<u8>> {
    a.iter().map(|s| s.as_bytes().to_vec()).collect()
}

/// Connects and says who we are (AUTH when configured, CLIENT SETNAME); the replies are read
/// and dropped, as Redis Sentinel does (a wrong password shows as failing PINGs).
async fn open(p: &Params, tls: Option<&crate::net::Tls>) -> std::io::Result<Conn> {
    let mut c = Conn::connect(&p.host, p.port, tls, Duration::from_millis(1000)).await?;
    let mut n = 1;
    if let Some((user, pass)) = &p.auth {
        match user {
            Some(u) => c.queue(&args(&["AUTH", u, pass])),
            None => c.queue(&args(&["AUTH", pass])),
        }
        n += 1;
    }
    c.queue(&args(&["CLIENT", "SETNAME", &p.client_name]));
    c.flush().await?;
    for _ in 0..n {
        c.read(p.reply_timeout.max(Duration::from_millis(1000))).await?;
    }
    Ok(c)
}

/// Connects for `r`, retrying every PING_PERIOD; None when the task is stale.
async fn connect(sh: &Shared, r: &InstRef) -> Option<(Params, Conn)> {
    loop {
        let p = monitor::link_params(&mut sh.s.lock(), r)?;
        let tls = sh.st.tls_if("tls-replication");
        match open(&p, tls.as_deref()).await {
            Ok(c) => return Some((p, c)),
            Err(_) if monitor::set_link(&mut sh.s.lock(), r, false) => tokio::time::sleep(Duration::from_millis(PING_PERIOD as u64)).await,
            Err(_) => return None,
        }
    }
}

/// The command link of one instance.
pub async fn command_link(sh: Arc<Shared>, r: InstRef) {
    loop {
        let Some((p, mut c)) = connect(&sh, &r).await else { return };
        if !monitor::set_link(&mut sh.s.lock(), &r, true) {
            return;
        }
        let local_ip = c.local_ip();
        let err = 'session: loop {
            let Some(reqs) = monitor::next_requests(&mut sh.s.lock(), &r, &local_ip) else { return };
            if reqs.is_empty() {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                    _ = p.wake.notified() => {}
                }
                continue;
            }
            for q in &reqs {
                for cmd in q.commands() {
                    c.queue(cmd);
                }
            }
            if c.flush().await.is_err() {
                break 'session true;
            }
            for q in reqs {
                let mut last = Reply::Bulk(None);
                for _ in 0..q.commands().len() {
                    match c.read(p.reply_timeout).await {
                        Ok(rep) => last = rep,
                        Err(_) => break 'session true,
                    }
                }
                if !monitor::on_reply(&mut sh.s.lock(), &r, q, last) {
                    return;
                }
            }
        };
        if err && !monitor::set_link(&mut sh.s.lock(), &r, false) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The Pub/Sub link of a master or replica: hello messages from the other sentinels.
pub async fn pubsub_link(sh: Arc<Shared>, r: InstRef) {
    loop {
        let Some((_, mut c)) = connect(&sh, &r).await else { return };
        c.queue(&args(&["SUBSCRIBE", HELLO_CHANNEL]));
        if c.flush().await.is_err() {
            continue;
        }
        if !monitor::set_link(&mut sh.s.lock(), &r, true) {
            return;
        }
        let mut last_activity = tokio::time::Instant::now();
        loop {
            match c.read(Duration::from_millis(500)).await {
                Ok(rep) => {
                    last_activity = tokio::time::Instant::now();
                    let items = rep.items();
                    if items.len() == 3 && items[0].text().as_deref() == Some("message") {
                        if let Some(msg) = items[2].text() {
                            if !monitor::on_hello(&mut sh.s.lock(), Some(&r), &msg) {
                                return;
                            }
                        }
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                    if monitor::link_params(&mut sh.s.lock(), &r).is_none() {
                        return;
                    }
                    // Nothing heard for three publish periods: reconnect (Redis does the same).
                    if last_activity.elapsed() > Duration::from_millis(PUBLISH_PERIOD as u64 * 3) {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        if !monitor::set_link(&mut sh.s.lock(), &r, false) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

impl Req {
    pub fn commands(&self) -> &[Vec<Vec<u8>>] {
        match self {
            Req::Ping(c) | Req::Info(c) | Req::Hello(c) | Req::Ask(c) | Req::Raw(c) => c,
        }
    }
}
