//! The registry of connected clients, for CLIENT LIST/KILL/INFO and INFO clients.
//! Connections register on accept and leave on close; per-command updates are relaxed atomics
//! on the connection's own `ClientInfo`, never a registry lock.

use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;

#[derive(Default)]
pub struct ClientInfo {
    pub id: u64,
    pub addr: String,
    pub laddr: String,
    pub fd: i32,
    pub created_ms: i64,
    pub name: Mutex<Vec<u8>>,
    pub lib_name: Mutex<Vec<u8>>,
    pub lib_ver: Mutex<Vec<u8>>,
    pub last_interaction_ms: AtomicI64,
    pub db: AtomicUsize,
    pub resp: AtomicU8,
    /// Last command's id in the command table, plus one (0: none yet).
    pub last_cmd: AtomicUsize,
    pub qbuf: AtomicUsize,
    pub obuf: AtomicUsize,
    pub commands: AtomicU64,
    pub killed: AtomicBool,
    pub no_evict: AtomicBool,
    /// Bytes its buffers hold (query buffer and reply buffer capacity), as last reported.
    pub mem: AtomicUsize,
    /// Waiting in a blocking command (CLIENT LIST's flag `b`).
    pub blocked: AtomicBool,
    /// Pub/Sub subscriptions: channels, patterns, shard channels.
    pub sub: AtomicUsize,
    pub psub: AtomicUsize,
    pub ssub: AtomicUsize,
    pub user: Mutex<String>,
    /// `KIND_MASTER` for our master's link, `KIND_REPLICA` for a replica's, else 0.
    pub repl_kind: std::sync::atomic::AtomicU8,
    /// Client-side caching: the `tracking::flag` bits, and the client invalidations are
    /// redirected to (0: none).
    pub tracking: std::sync::atomic::AtomicU32,
    pub tracking_redir: AtomicU64,
    /// Another connection created this client's mailbox (`pubsub::Inboxes::reach`): its
    /// connection takes the receiving end at its next turn.
    pub inbox_parked: AtomicBool,
}

pub const KIND_NORMAL: u8 = 0;
pub const KIND_MASTER: u8 = 1;
pub const KIND_REPLICA: u8 = 2;
pub const KIND_PUBSUB: u8 = 3;

impl ClientInfo {
    /// The client's class for CLIENT LIST/KILL TYPE (`KIND_*`).
    pub fn kind(&self) -> u8 {
        match self.repl_kind.load(Ordering::Relaxed) {
            0 if self.sub.load(Ordering::Relaxed) + self.psub.load(Ordering::Relaxed) + self.ssub.load(Ordering::Relaxed) > 0 => {
                KIND_PUBSUB
            }
            k => k,
        }
    }
    /// CLIENT LIST/KILL's TYPE argument as a `KIND_*`.
    pub fn kind_named(name: &[u8]) -> Option<u8> {
        match name.to_ascii_lowercase().as_slice() {
            b"normal" => Some(KIND_NORMAL),
            b"master" => Some(KIND_MASTER),
            b"replica" | b"slave" => Some(KIND_REPLICA),
            b"pubsub" => Some(KIND_PUBSUB),
            _ => None,
        }
    }
    /// Marks the client killed and shuts its socket down, which ends its connection task at its
    /// next read. Only called through `Clients::kill`, under the registry lock, so the fd is
    /// still the connection's own (it unregisters before its socket closes).
    fn kill_locked(&self) {
        self.killed.store(true, Ordering::Release);
        // SAFETY: shutdown(2) on an fd the registry guarantees is this client's open socket.
        unsafe { libc::shutdown(self.fd, libc::SHUT_RDWR) };
    }
    /// CLIENT LIST's flags, in Redis's order (N: none).
    fn flags(&self) -> String {
        use crate::state::tracking::flag as tf;
        let mut f = String::new();
        let kind = self.repl_kind.load(Ordering::Relaxed);
        if kind == KIND_REPLICA {
            f.push('S');
        }
        if kind == KIND_MASTER {
            f.push('M');
        }
        if self.sub.load(Ordering::Relaxed) + self.psub.load(Ordering::Relaxed) + self.ssub.load(Ordering::Relaxed) > 0 {
            f.push('P');
        }
        if self.blocked.load(Ordering::Relaxed) {
            f.push('b');
        }
        let t = self.tracking.load(Ordering::Relaxed);
        for (bit, c) in [(tf::ON, 't'), (tf::BROKEN_REDIR, 'R'), (tf::BCAST, 'B')] {
            if t & bit != 0 {
                f.push(c);
            }
        }
        if self.no_evict.load(Ordering::Relaxed) && kind == 0 {
            f.push('e');
        }
        if f.is_empty() {
            f.push('N');
        }
        f
    }
    pub fn is_killed(&self) -> bool {
        self.killed.load(Ordering::Acquire)
    }
    /// One line of CLIENT LIST / CLIENT INFO, with Redis 7.0's fields in Redis's order.
    /// `cmd_name` maps a command id to its full name ("client|list").
    pub fn describe(&self, now_ms: i64, cmd_name: &dyn Fn(usize) -> String) -> String {
        let name = String::from_utf8_lossy(&self.name.lock()).into_owned();
        let qbuf = self.qbuf.load(Ordering::Relaxed);
        let obuf = self.obuf.load(Ordering::Relaxed);
        format!(
            "id={} addr={} laddr={} fd={} name={} age={} idle={} flags={} db={} sub={} psub={} ssub={} multi=-1 qbuf={} qbuf-free={} argv-mem=0 multi-mem=0 rbs=16384 rbp=16384 obl=0 oll=0 omem={} tot-mem={} events=r cmd={} user={} redir={} resp={} lib-name={} lib-ver={}",
            self.id,
            self.addr,
            self.laddr,
            self.fd,
            name,
            (now_ms - self.created_ms) / 1000,
            (now_ms - self.last_interaction_ms.load(Ordering::Relaxed)).max(0) / 1000,
            self.flags(),
            self.db.load(Ordering::Relaxed),
            self.sub.load(Ordering::Relaxed),
            self.psub.load(Ordering::Relaxed),
            self.ssub.load(Ordering::Relaxed),
            qbuf,
            16384usize.saturating_sub(qbuf),
            obuf,
            (qbuf + obuf).max(self.mem.load(Ordering::Relaxed)),
            match self.last_cmd.load(Ordering::Relaxed) {
                0 => "NULL".to_string(),
                id => cmd_name(id - 1),
            },
            self.user.lock(),
            match self.tracking.load(Ordering::Relaxed) & crate::state::tracking::flag::ON {
                0 => -1,
                _ => self.tracking_redir.load(Ordering::Relaxed) as i64,
            },
            self.resp.load(Ordering::Relaxed).max(2),
            String::from_utf8_lossy(&self.lib_name.lock()),
            String::from_utf8_lossy(&self.lib_ver.lock()),
        )
    }
}

#[derive(Default)]
pub struct Clients {
    next_id: AtomicU64,
    map: Mutex<BTreeMap<u64, Arc<ClientInfo>>>,
    /// The buffers every connection reported, replication links included (a replica's is what
    /// it held when PSYNC handed it over; INFO's mem_clients_normal).
    pub mem_total: AtomicUsize,
    /// `maxmemory-clients` in bytes (a percentage already applied to maxmemory); 0: no limit.
    pub mem_limit: AtomicUsize,
    /// Clients evicted for `maxmemory-clients` (INFO's evicted_clients).
    pub evicted: AtomicU64,
}

impl Clients {
    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed) + 1
    }
    pub fn register(&self, c: Arc<ClientInfo>) {
        self.map.lock().insert(c.id, c);
    }
    pub fn unregister(&self, id: u64) {
        if let Some(c) = self.map.lock().remove(&id) {
            self.set_mem(&c, 0);
        }
    }
    /// A client's buffers now hold `bytes`; true when all clients together are past
    /// `maxmemory-clients` (then `evict` is due).
    pub fn set_mem(&self, c: &ClientInfo, bytes: usize) -> bool {
        // A killed client has left the registry: its buffers no longer count.
        let bytes = if c.is_killed() { 0 } else { bytes };
        let old = c.mem.swap(bytes, Ordering::Relaxed);
        let total = match bytes >= old {
            true => self.mem_total.fetch_add(bytes - old, Ordering::Relaxed) + (bytes - old),
            false => self.mem_total.fetch_sub(old - bytes, Ordering::Relaxed) - (old - bytes),
        };
        let limit = self.mem_limit.load(Ordering::Relaxed);
        limit > 0 && total > limit
    }
    /// Redis 7's client eviction: while all clients' buffers are past `maxmemory-clients`,
    /// the client holding the most is disconnected (never replication links, nor clients
    /// with CLIENT NO-EVICT on). Returns how many were evicted.
    pub fn evict(&self) -> usize {
        let limit = self.mem_limit.load(Ordering::Relaxed);
        let map = self.map.lock();
        let mut total = self.mem_total.load(Ordering::Relaxed);
        if limit == 0 || total <= limit {
            return 0;
        }
        let mut candidates: Vec<&Arc<ClientInfo>> = map
            .values()
            .filter(|c| c.repl_kind.load(Ordering::Relaxed) == 0 && !c.no_evict.load(Ordering::Relaxed) && !c.is_killed())
            .collect();
        candidates.sort_by_key(|c| std::cmp::Reverse(c.mem.load(Ordering::Relaxed)));
        let mut n = 0;
        for c in candidates {
            if total <= limit {
                break;
            }
            let m = c.mem.load(Ordering::Relaxed);
            tracing::debug!("Evicting client: id={} addr={} tot-mem={}", c.id, c.addr, m);
            c.kill_locked();
            total = total.saturating_sub(m);
            n += 1;
        }
        self.evicted.fetch_add(n as u64, Ordering::Relaxed);
        n
    }
    pub fn count(&self) -> usize {
        self.map.lock().len()
    }
    pub fn all(&self) -> Vec<Arc<ClientInfo>> {
        self.map.lock().values().cloned().collect()
    }
    pub fn get(&self, id: u64) -> Option<Arc<ClientInfo>> {
        self.map.lock().get(&id).cloned()
    }
    /// Kills a connected client (CLIENT KILL, idle timeout); false if it is gone already. It
    /// leaves the registry at once, as Redis frees a client before CLIENT KILL answers: no
    /// listing or count sees it after this returns, though its connection task ends a moment
    /// later.
    pub fn kill(&self, id: u64) -> bool {
        let mut map = self.map.lock();
        match map.remove(&id) {
            Some(c) => {
                c.kill_locked();
                drop(map);
                self.set_mem(&c, 0);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The clients' total comes back to zero when they leave, whatever they became meanwhile
    /// (a connection handed to replication keeps what it reported as a normal client).
    #[test]
    fn client_memory_total_balances_and_reports_the_limit() {
        let clients = Clients::default();
        let a = Arc::new(ClientInfo { id: 1, ..Default::default() });
        let b = Arc::new(ClientInfo { id: 2, ..Default::default() });
        clients.register(a.clone());
        clients.register(b.clone());
        clients.mem_limit.store(100, Ordering::Relaxed);
        assert!(!clients.set_mem(&a, 60));
        assert!(clients.set_mem(&b, 50));
        b.repl_kind.store(KIND_REPLICA, Ordering::Relaxed);
        assert!(!clients.set_mem(&a, 40));
        clients.unregister(1);
        clients.unregister(2);
        assert_eq!(clients.mem_total.load(Ordering::Relaxed), 0);
    }
}
