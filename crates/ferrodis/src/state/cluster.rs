//! What dispatch needs of the cluster to route a command (Redis's getNodeByQuery), as plain
//! data: per slot its owner, and the node it migrates to or imports from; the nodes' addresses;
//! this node's place; whether the cluster is up. The `cluster` family keeps it current; dispatch
//! reads it with a few atomic loads per keyed command and never imports `cluster`.

use parking_lot::RwLock;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

pub const SLOTS: usize = 16384;

const CROSSSLOT: &str = "CROSSSLOT Keys in request don't hash to the same slot";
const TRYAGAIN: &str = "TRYAGAIN Multiple keys request during rehashing of slot";
const DOWN: &str = "CLUSTERDOWN The cluster is down";
const DOWN_RO: &str = "CLUSTERDOWN The cluster is down and only accepts read commands";
const UNBOUND: &str = "CLUSTERDOWN Hash slot not served";

/// Sends (shard?, channel, message) over the cluster bus.
pub type BusPublish = fn(bool, &[u8], &[u8]);

/// Routing data. Node references are small indexes the `cluster` family assigns (`+1`, 0 = none).
pub struct Routing {
    pub enabled: AtomicBool,
    /// Per slot: owner (bits 0..16), migrating to (16..32), importing from (32..48).
    slots: Box<[AtomicU64]>,
    /// Index → (ip, port, plaintext port or 0) for MOVED and ASK.
    addrs: RwLock<Vec<(String, u16, u16)>>,
    /// This node's index + 1.
    pub me: AtomicU32,
    /// Our master's index + 1 when we are a replica, else 0.
    pub my_master: AtomicU32,
    /// cluster_state:ok.
    pub ok: AtomicBool,
    pub allow_reads_when_down: AtomicBool,
    pub allow_pubsubshard_when_down: AtomicBool,
    /// Our replicas the cluster does not see failing (PFAIL or FAIL): what `sync-replicas`
    /// waits for at most in cluster mode.
    pub healthy_replicas: AtomicU32,
    /// Sends a PUBLISH (false) or SPUBLISH (true) over the bus; set by the `cluster` family.
    pub bus_publish: std::sync::OnceLock<BusPublish>,
}

impl Default for Routing {
    fn default() -> Self {
        Routing {
            enabled: AtomicBool::new(false),
            slots: (0..SLOTS).map(|_| AtomicU64::new(0)).collect(),
            addrs: RwLock::new(Vec::new()),
            me: AtomicU32::new(0),
            my_master: AtomicU32::new(0),
            ok: AtomicBool::new(false),
            allow_reads_when_down: AtomicBool::new(false),
            allow_pubsubshard_when_down: AtomicBool::new(true),
            healthy_replicas: AtomicU32::new(0),
            bus_publish: std::sync::OnceLock::new(),
        }
    }
}

/// A slot's routing word, unpacked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SlotRoute {
    pub owner: u32,
    pub migrating: u32,
    pub importing: u32,
}

/// What one command asks of the router.
pub struct Query {
    pub db: usize,
    pub is_write: bool,
    /// The client sent READONLY (reads may be served by a replica of the slot's master).
    pub readonly: bool,
    /// The client sent ASKING just before (or the command is RESTORE-ASKING).
    pub asking: bool,
    /// MIGRATE works on the local node while its slot is open.
    pub is_migrate: bool,
    /// SPUBLISH, SSUBSCRIBE, SUNSUBSCRIBE: channels, not keys; a replica serves its shard's.
    pub pubsub_shard: bool,
    /// A plaintext client: redirected to a node's plaintext port where it has one (tls-cluster).
    pub plain: bool,
}

impl Routing {
    /// `sync-replicas` as it applies now: in cluster mode, at most the replicas of ours that the
    /// cluster sees healthy (a master whose only replica failed, or one just promoted, still
    /// answers writes; a replica being waited for is never one the cluster gave up on).
    pub fn sync_replicas(&self, configured: i64) -> i64 {
        if configured > 0 && self.enabled.load(Ordering::Relaxed) {
            configured.min(self.healthy_replicas.load(Ordering::Relaxed) as i64)
        } else {
            configured
        }
    }

    pub fn set_slot(&self, slot: usize, r: SlotRoute) {
        let w = (r.owner as u64 & 0xffff) | ((r.migrating as u64 & 0xffff) << 16) | ((r.importing as u64 & 0xffff) << 32);
        self.slots[slot].store(w, Ordering::Release);
    }
    pub fn slot(&self, slot: usize) -> SlotRoute {
        let w = self.slots[slot].load(Ordering::Acquire);
        SlotRoute { owner: (w & 0xffff) as u32, migrating: ((w >> 16) & 0xffff) as u32, importing: ((w >> 32) & 0xffff) as u32 }
    }
    /// Sets node `idx`'s address (idx as given to `set_slot`, i.e. index + 1).
    pub fn set_addr(&self, idx: u32, ip: &str, port: u16, pport: u16) {
        let mut a = self.addrs.write();
        let i = idx as usize;
        if a.len() <= i {
            a.resize(i + 1, (String::new(), 0, 0));
        }
        if a[i].0 != ip || a[i].1 != port || a[i].2 != pport {
            a[i] = (ip.to_string(), port, pport);
        }
    }
    fn addr(&self, idx: u32, plain: bool) -> String {
        let a = self.addrs.read();
        match a.get(idx as usize) {
            Some((ip, _, pport)) if plain && *pport != 0 => format!("{}:{}", ip, pport),
            Some((ip, port, _)) => format!("{}:{}", ip, port),
            None => ":0".into(),
        }
    }

    /// For a client blocked on `key` (Redis's clusterRedirectBlockedClientIfNeeded, run from
    /// its client cron): the error that ends its wait when the cluster is down, the slot is
    /// unassigned, or the slot is served elsewhere and not being imported here; None to go on
    /// waiting. `readonly_read`: a READONLY client's read, which a replica of the slot's master
    /// may serve.
    pub fn blocked_redirect(&self, key: &[u8], readonly_read: bool, plain: bool) -> Option<String> {
        if !self.enabled.load(Ordering::Relaxed) {
            return None;
        }
        if !self.ok.load(Ordering::Acquire) {
            return Some(DOWN.into());
        }
        let slot = crate::util::key_slot(key);
        let r = self.slot(slot);
        let me = self.me.load(Ordering::Relaxed);
        let mine = r.owner == me || (readonly_read && r.owner != 0 && self.my_master.load(Ordering::Relaxed) == r.owner);
        if mine || r.importing != 0 {
            return None;
        }
        if r.owner == 0 {
            return Some(UNBOUND.into());
        }
        Some(format!("MOVED {} {}", slot, self.addr(r.owner, plain)))
    }

    /// Routes a command with these keys. None: serve it here; Some: the error to answer
    /// (MOVED, ASK, CROSSSLOT, TRYAGAIN, CLUSTERDOWN), as Redis 7.0's getNodeByQuery decides.
    /// `exists` says whether a key exists (in `q.db`, and not expired).
    pub fn route<'a>(&self, q: &Query, keys: impl IntoIterator<Item = &'a [u8]>, exists: impl Fn(usize, &[u8]) -> bool) -> Option<String> {
        let me = self.me.load(Ordering::Relaxed);
        let mut first: Option<(&[u8], usize, SlotRoute)> = None;
        let mut multiple_keys = false;
        let mut missing = 0usize;
        for key in keys {
            let slot = crate::util::key_slot(key);
            match first {
                None => {
                    let r = self.slot(slot);
                    if r.owner == 0 {
                        return Some(UNBOUND.into());
                    }
                    first = Some((key, slot, r));
                }
                Some((fk, fs, _)) => {
                    if fk != key {
                        if fs != slot {
                            return Some(CROSSSLOT.into());
                        }
                        multiple_keys = true;
                    }
                }
            }
            let (_, _, r) = first.expect("set above");
            let migrating = r.owner == me && r.migrating != 0;
            let importing = r.importing != 0;
            if (migrating || importing) && !q.pubsub_shard && !exists(q.db, key) {
                missing += 1;
            }
        }
        let (_, slot, r) = first?;
        if !self.ok.load(Ordering::Acquire) {
            if q.pubsub_shard {
                if !self.allow_pubsubshard_when_down.load(Ordering::Relaxed) {
                    return Some(DOWN.into());
                }
            } else if !self.allow_reads_when_down.load(Ordering::Relaxed) {
                return Some(DOWN.into());
            }
            if q.is_write {
                return Some(DOWN_RO.into());
            }
        }
        let migrating = r.owner == me && r.migrating != 0;
        let importing = r.importing != 0;
        if (migrating || importing) && q.is_migrate {
            return None;
        }
        if migrating && missing > 0 {
            return Some(format!("ASK {} {}", slot, self.addr(r.migrating, q.plain)));
        }
        if importing && q.asking {
            if multiple_keys && missing > 0 {
                return Some(TRYAGAIN.into());
            }
            return None;
        }
        if r.owner == me {
            return None;
        }
        let master = self.my_master.load(Ordering::Relaxed);
        if (q.readonly || q.pubsub_shard) && !q.is_write && master != 0 && master == r.owner {
            return None;
        }
        Some(format!("MOVED {} {}", slot, self.addr(r.owner, q.plain)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(is_write: bool) -> Query {
        Query { db: 0, is_write, readonly: false, asking: false, is_migrate: false, pubsub_shard: false, plain: true }
    }

    #[test]
    fn routes_as_redis_decides() {
        // An empty keyspace.
        let none = |_: usize, _: &[u8]| false;
        let r = Routing::default();
        r.me.store(1, Ordering::Relaxed);
        r.ok.store(true, Ordering::Relaxed);
        r.set_addr(1, "127.0.0.1", 7000, 0);
        r.set_addr(2, "127.0.0.1", 7001, 0);
        let foo = crate::util::key_slot(b"foo");
        let bar = crate::util::key_slot(b"bar");
        assert_eq!(r.route(&q(false), [&b"foo"[..]], none), Some("CLUSTERDOWN Hash slot not served".into()));
        r.set_slot(foo, SlotRoute { owner: 1, ..Default::default() });
        r.set_slot(bar, SlotRoute { owner: 2, ..Default::default() });
        assert_eq!(r.route(&q(true), [&b"foo"[..]], none), None);
        assert_eq!(r.route(&q(true), [&b"bar"[..]], none), Some(format!("MOVED {} 127.0.0.1:7001", bar)));
        assert_eq!(r.route(&q(true), [&b"foo"[..], &b"bar"[..]], none), Some(CROSSSLOT.into()));
        assert_eq!(r.route(&q(true), [&b"{foo}a"[..], &b"{foo}b"[..]], none), None);
        assert_eq!(r.route(&q(true), std::iter::empty(), none), None);
        // A replica serves reads of its master's slots to READONLY clients only.
        r.my_master.store(2, Ordering::Relaxed);
        let ro = Query { readonly: true, ..q(false) };
        assert_eq!(r.route(&ro, [&b"bar"[..]], none), None);
        assert!(r.route(&Query { readonly: true, ..q(true) }, [&b"bar"[..]], none).unwrap().starts_with("MOVED"));
        // Migrating: a missing key is asked for at the target; importing serves ASKING clients.
        r.set_slot(foo, SlotRoute { owner: 1, migrating: 2, importing: 0 });
        assert_eq!(r.route(&q(false), [&b"foo"[..]], none), Some(format!("ASK {} 127.0.0.1:7001", foo)));
        r.set_slot(bar, SlotRoute { owner: 2, migrating: 0, importing: 2 });
        assert_eq!(r.route(&Query { asking: true, ..q(true) }, [&b"bar"[..]], none), None);
        assert_eq!(r.route(&Query { asking: true, ..q(true) }, [&b"{bar}1"[..], &b"{bar}2"[..]], none), Some(TRYAGAIN.into()));
        // Down.
        r.ok.store(false, Ordering::Relaxed);
        assert_eq!(r.route(&q(false), [&b"foo"[..]], none), Some(DOWN.into()));
        r.allow_reads_when_down.store(true, Ordering::Relaxed);
        assert_eq!(r.route(&q(true), [&b"foo"[..]], none), Some(DOWN_RO.into()));
    }
}
