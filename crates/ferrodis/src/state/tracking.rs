//! Client-side caching (Redis's tracking.c): which clients may hold which keys, and the
//! invalidation messages they get when those keys change.
//!
//! - **Default mode**: a read-only command of a tracking client records (key → client id) in
//!   the tracking table, sharded by key so tracking readers on different threads do not meet on
//!   one lock. A change to the key (any write, expiry, eviction) takes the key out of the table
//!   and sends each client recorded there one `invalidate` message. Keys are tracked without
//!   their database, as Redis tracks them.
//! - **Broadcast mode** (BCAST): a client registers key prefixes; every changed key that matches
//!   one is collected under it, and `flush_bcast` (after each command, after an active-expiry
//!   cycle: Redis's beforeSleep) sends each registered client one message per prefix.
//! - **Delivery**: in RESP3 as a push on the client's own connection, or on the connection it
//!   redirects to (RESP3: push; RESP2 in Pub/Sub mode: a message on `__redis__:invalidate`),
//!   through the connections' mailboxes (`pubsub::Inboxes`). Invalidations caused by the client's
//!   own running command wait in its `pending` list and follow its reply, as Redis's
//!   tracking_pending_keys.
//!
//! Writers check `active()` first (two atomic loads), so with no tracking this costs nothing.

use super::clients::ClientInfo;
use super::pubsub::Inboxes;
use parking_lot::Mutex;
use smallvec::SmallVec;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};

/// `ClientInfo::tracking` bits (Redis's CLIENT_TRACKING_* flags).
pub mod flag {
    pub const ON: u32 = 1;
    pub const BCAST: u32 = 1 << 1;
    pub const OPTIN: u32 = 1 << 2;
    pub const OPTOUT: u32 = 1 << 3;
    /// CLIENT CACHING yes (OPTIN) or no (OPTOUT) was given for the next command.
    pub const CACHING: u32 = 1 << 4;
    pub const NOLOOP: u32 = 1 << 5;
    pub const BROKEN_REDIR: u32 = 1 << 6;
}

const SHARDS: usize = 64;

/// An invalidation waiting for the end of the running command: a key, or None for "every key"
/// (FLUSHALL, FLUSHDB).
pub type Pending = Vec<Option<Vec<u8>>>;

/// The client whose command is running: its id, and where invalidations for itself wait.
pub struct Current<'a> {
    pub id: u64,
    pub pending: &'a mut Pending,
}

/// What an invalidation message carries.
enum Payload<'a> {
    Keys(&'a [&'a [u8]]),
    /// Every key (a flush): a null.
    All,
}

type Shard = Mutex<HashMap<Box<[u8]>, SmallVec<[u64; 2]>>>;

/// Changed keys, each with the client that changed it (0: the server).
type ChangedKeys = BTreeMap<Vec<u8>, u64>;

/// A broadcast prefix: its clients, and the keys changed since the last flush with the client
/// that changed each (0: the server itself, by expiry or eviction), for NOLOOP.
#[derive(Default)]
struct Bcast {
    clients: Vec<u64>,
    keys: ChangedKeys,
}

pub struct Tracking {
    shards: Box<[Shard]>,
    keys: AtomicUsize,
    items: AtomicUsize,
    clients: AtomicUsize,
    prefixes: Mutex<BTreeMap<Vec<u8>, Bcast>>,
    nprefixes: AtomicUsize,
    bcast_pending: AtomicBool,
    /// Rounds in a row `limit` ended above the limit (each round tries 100 keys more).
    rounds_over: AtomicU32,
    next_shard: AtomicUsize,
}

impl Default for Tracking {
    fn default() -> Self {
        Tracking {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            keys: AtomicUsize::new(0),
            items: AtomicUsize::new(0),
            clients: AtomicUsize::new(0),
            prefixes: Mutex::default(),
            nprefixes: AtomicUsize::new(0),
            bcast_pending: AtomicBool::new(false),
            rounds_over: AtomicU32::new(0),
            next_shard: AtomicUsize::new(0),
        }
    }
}

fn shard_of(key: &[u8]) -> usize {
    crate::util::key_slot(key) % SHARDS
}

/// Whether one prefix starts the other (Redis's stringCheckPrefix).
fn overlap(a: &[u8], b: &[u8]) -> bool {
    let n = a.len().min(b.len());
    a[..n] == b[..n]
}

/// One invalidation message as `to` sees it: a RESP3 push, or (RESP2, redirected, in Pub/Sub
/// mode) a message on `__redis__:invalidate`; None when `to` cannot get one (RESP2 otherwise).
/// A flush's null is written in the protocol of the tracking client, as Redis writes it.
fn encode(to: &ClientInfo, redirected: bool, payload: &Payload, tracker_resp3: bool) -> Option<Vec<u8>> {
    let mut v = Vec::with_capacity(64);
    if to.resp.load(Ordering::Relaxed) >= 3 {
        v.extend_from_slice(b">2\r\n$10\r\ninvalidate\r\n");
    } else if redirected && to.sub.load(Ordering::Relaxed) + to.psub.load(Ordering::Relaxed) + to.ssub.load(Ordering::Relaxed) > 0 {
        v.extend_from_slice(b"*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n");
    } else {
        return None;
    }
    match payload {
        Payload::Keys(keys) => {
            v.push(b'*');
            v.extend_from_slice(itoa::Buffer::new().format(keys.len()).as_bytes());
            v.extend_from_slice(b"\r\n");
            for k in keys.iter() {
                v.push(b'$');
                v.extend_from_slice(itoa::Buffer::new().format(k.len()).as_bytes());
                v.extend_from_slice(b"\r\n");
                v.extend_from_slice(k);
                v.extend_from_slice(b"\r\n");
            }
        }
        Payload::All => v.extend_from_slice(if tracker_resp3 { b"_\r\n" } else { b"$-1\r\n" }),
    }
    Some(v)
}

impl Tracking {
    /// Whether a change to a key may concern anyone (keys tracked, or prefixes registered).
    #[inline]
    pub fn active(&self) -> bool {
        self.keys.load(Ordering::Relaxed) > 0 || self.nprefixes.load(Ordering::Relaxed) > 0
    }
    /// INFO: tracking_clients, tracking_total_keys, tracking_total_items, tracking_total_prefixes.
    pub fn clients(&self) -> usize {
        self.clients.load(Ordering::Relaxed)
    }
    pub fn total_keys(&self) -> usize {
        self.keys.load(Ordering::Relaxed)
    }
    pub fn total_items(&self) -> usize {
        self.items.load(Ordering::Relaxed)
    }
    pub fn total_prefixes(&self) -> usize {
        self.nprefixes.load(Ordering::Relaxed)
    }

    /// CLIENT TRACKING ON: sets the client's mode and redirection, registers its new prefixes
    /// (BCAST; none given means the empty prefix, every key). The caller checked the options.
    pub fn enable(&self, info: &ClientInfo, redirect: u64, options: u32, new_prefixes: &[&[u8]], prefixes: &mut Vec<Vec<u8>>) {
        let old = info.tracking.load(Ordering::Relaxed);
        if old & flag::ON == 0 {
            self.clients.fetch_add(1, Ordering::Relaxed);
        }
        let keep = old & flag::CACHING;
        let mode = options & (flag::BCAST | flag::OPTIN | flag::OPTOUT | flag::NOLOOP);
        info.tracking_redir.store(redirect, Ordering::Relaxed);
        info.tracking.store(flag::ON | keep | mode, Ordering::Release);
        if options & flag::BCAST != 0 {
            let empty: [&[u8]; 1] = [b""];
            let list = if new_prefixes.is_empty() { &empty[..] } else { new_prefixes };
            let mut table = self.prefixes.lock();
            for p in list {
                if prefixes.iter().any(|q| q.as_slice() == *p) {
                    continue;
                }
                prefixes.push(p.to_vec());
                let b = table.entry(p.to_vec()).or_insert_with(|| {
                    self.nprefixes.fetch_add(1, Ordering::Relaxed);
                    Bcast::default()
                });
                b.clients.push(info.id);
            }
        }
    }

    /// CLIENT TRACKING OFF (and RESET, and the end of the connection). Its keys stay in the
    /// table until they change, as in Redis: a client that does not track gets nothing for them.
    pub fn disable(&self, info: &ClientInfo, prefixes: &mut Vec<Vec<u8>>) {
        if !prefixes.is_empty() {
            let mut table = self.prefixes.lock();
            for p in prefixes.drain(..) {
                if let Some(b) = table.get_mut(&p) {
                    b.clients.retain(|&c| c != info.id);
                    if b.clients.is_empty() {
                        table.remove(&p);
                        self.nprefixes.fetch_sub(1, Ordering::Relaxed);
                    }
                }
            }
        }
        if info.tracking.swap(0, Ordering::AcqRel) & flag::ON != 0 {
            self.clients.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Redis's checkPrefixCollisionsOrReply: the error for prefixes that overlap the client's
    /// own or each other.
    pub fn prefix_collision(existing: &[Vec<u8>], new: &[&[u8]]) -> Option<String> {
        let s = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        for (i, p) in new.iter().enumerate() {
            if let Some(e) = existing.iter().find(|e| overlap(e, p)) {
                return Some(format!(
                    "ERR Prefix '{}' overlaps with an existing prefix '{}'. Prefixes for a single client must not overlap.",
                    s(p),
                    s(e)
                ));
            }
            if let Some(q) = new[i + 1..].iter().find(|q| overlap(p, q)) {
                return Some(format!(
                    "ERR Prefix '{}' overlaps with another provided prefix '{}'. Prefixes for a single client must not overlap.",
                    s(p),
                    s(q)
                ));
            }
        }
        None
    }

    /// A tracking client read these keys: it may now cache them.
    pub fn remember<'k>(&self, id: u64, keys: impl Iterator<Item = &'k [u8]>) {
        for k in keys {
            let mut g = self.shards[shard_of(k)].lock();
            let ids = match g.get_mut(k) {
                Some(ids) => ids,
                None => {
                    self.keys.fetch_add(1, Ordering::Relaxed);
                    g.entry(k.into()).or_default()
                }
            };
            if !ids.contains(&id) {
                ids.push(id);
                self.items.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// A key changed (Redis's trackingInvalidateKey): the clients that may cache it are told,
    /// and it leaves the table. `current`: the client whose command changed it, if one is
    /// running (NOLOOP skips it; otherwise its message follows its reply). `by`: that client's
    /// id for broadcast NOLOOP, 0 when the server changed the key (expiry, eviction).
    pub fn invalidate(&self, inboxes: &Inboxes, key: &[u8], mut current: Option<&mut Current>, by: u64) {
        if self.nprefixes.load(Ordering::Relaxed) > 0 {
            self.remember_for_bcast(key, by);
        }
        if self.keys.load(Ordering::Relaxed) == 0 {
            return;
        }
        let Some(ids) = self.shards[shard_of(key)].lock().remove(key) else { return };
        self.keys.fetch_sub(1, Ordering::Relaxed);
        self.items.fetch_sub(ids.len(), Ordering::Relaxed);
        for id in ids {
            let Some(mb) = inboxes.get(id) else { continue };
            let f = mb.info.tracking.load(Ordering::Acquire);
            // A client in BCAST mode gets nothing for keys it tracked before switching.
            if f & flag::ON == 0 || f & flag::BCAST != 0 {
                continue;
            }
            if let Some(cur) = current.as_deref_mut().filter(|c| c.id == id) {
                if f & flag::NOLOOP == 0 {
                    cur.pending.push(Some(key.to_vec()));
                }
                continue;
            }
            self.send(inboxes, &mb.info, None, &Payload::Keys(&[key]));
        }
    }

    /// FLUSHALL / FLUSHDB (Redis's trackingInvalidateKeysOnFlush): every tracking client is
    /// told that every key changed, and the table is emptied.
    pub fn invalidate_all(&self, inboxes: &Inboxes, mut current: Option<&mut Current>) {
        if self.clients() > 0 {
            for mb in inboxes.all() {
                if mb.info.tracking.load(Ordering::Acquire) & flag::ON == 0 {
                    continue;
                }
                match current.as_deref_mut().filter(|c| c.id == mb.info.id) {
                    Some(cur) => cur.pending.push(None),
                    None => self.send(inboxes, &mb.info, None, &Payload::All),
                }
            }
        }
        for s in self.shards.iter() {
            let mut g = s.lock();
            let items: usize = g.values().map(|v| v.len()).sum();
            self.keys.fetch_sub(g.len(), Ordering::Relaxed);
            self.items.fetch_sub(items, Ordering::Relaxed);
            g.clear();
        }
    }

    /// After a client's command: the invalidations its command caused for itself, after its
    /// reply (`own`: its reply buffer).
    pub fn send_pending(&self, inboxes: &Inboxes, info: &ClientInfo, pending: &mut Pending, own: &mut Vec<u8>) {
        for p in pending.drain(..) {
            match p {
                Some(k) => self.send(inboxes, info, Some(own), &Payload::Keys(&[&k])),
                None => self.send(inboxes, info, Some(own), &Payload::All),
            }
        }
    }

    /// Sends one message for `tracker` (Redis's sendTrackingMessage): to the client it
    /// redirects to, else to itself (`own`: its reply buffer when its own connection sends).
    fn send(&self, inboxes: &Inboxes, tracker: &ClientInfo, own: Option<&mut Vec<u8>>, payload: &Payload) {
        let tracker_resp3 = tracker.resp.load(Ordering::Relaxed) >= 3;
        let redir = tracker.tracking_redir.load(Ordering::Relaxed);
        if redir != 0 {
            match inboxes.get(redir).filter(|t| !t.info.is_killed()) {
                Some(target) => {
                    if let Some(msg) = encode(&target.info, true, payload, tracker_resp3) {
                        target.push(msg);
                    }
                }
                None => {
                    // The client it redirects to is gone: it is told so (RESP3), as Redis.
                    tracker.tracking.fetch_or(flag::BROKEN_REDIR, Ordering::AcqRel);
                    if tracker_resp3 {
                        let mut msg = b">2\r\n$21\r\ntracking-redir-broken\r\n:".to_vec();
                        msg.extend_from_slice(itoa::Buffer::new().format(redir).as_bytes());
                        msg.extend_from_slice(b"\r\n");
                        deliver_own(inboxes, tracker, own, msg);
                    }
                }
            }
            return;
        }
        if let Some(msg) = encode(tracker, false, payload, tracker_resp3) {
            deliver_own(inboxes, tracker, own, msg);
        }
    }

    /// Collects a changed key under every broadcast prefix it matches.
    fn remember_for_bcast(&self, key: &[u8], by: u64) {
        let mut table = self.prefixes.lock();
        let mut any = false;
        for (p, b) in table.iter_mut() {
            if key.starts_with(p) {
                b.keys.insert(key.to_vec(), by);
                any = true;
            }
        }
        if any {
            self.bcast_pending.store(true, Ordering::Release);
        }
    }

    /// Sends the keys collected under each prefix to its clients, one message per (prefix,
    /// client); a NOLOOP client does not hear of the keys it changed itself.
    pub fn flush_bcast(&self, inboxes: &Inboxes) {
        if !self.bcast_pending.load(Ordering::Relaxed) || !self.bcast_pending.swap(false, Ordering::AcqRel) {
            return;
        }
        let batches: Vec<(Vec<u64>, ChangedKeys)> = {
            let mut table = self.prefixes.lock();
            table.values_mut().filter(|b| !b.keys.is_empty()).map(|b| (b.clients.clone(), std::mem::take(&mut b.keys))).collect()
        };
        for (clients, keys) in batches {
            for id in clients {
                let Some(mb) = inboxes.get(id) else { continue };
                let noloop = mb.info.tracking.load(Ordering::Acquire) & flag::NOLOOP != 0;
                let list: Vec<&[u8]> = keys.iter().filter(|(_, &by)| !(noloop && by == id)).map(|(k, _)| k.as_slice()).collect();
                if !list.is_empty() {
                    self.send(inboxes, &mb.info, None, &Payload::Keys(&list));
                }
            }
        }
    }

    /// `tracking-table-max-keys` (Redis's trackingLimitUsedSlots): above it, keys leave the
    /// table (their clients invalidated), 100 per call more for each call in a row that ended
    /// still above it.
    pub fn limit(&self, inboxes: &Inboxes, max: usize) {
        if max == 0 || self.keys.load(Ordering::Relaxed) <= max {
            self.rounds_over.store(0, Ordering::Relaxed);
            return;
        }
        let mut effort = 100 * (self.rounds_over.load(Ordering::Relaxed) as usize + 1);
        while effort > 0 {
            let Some(key) = self.some_key() else { break };
            effort -= 1;
            self.invalidate(inboxes, &key, None, 0);
            if self.keys.load(Ordering::Relaxed) <= max {
                self.rounds_over.store(0, Ordering::Relaxed);
                return;
            }
        }
        self.rounds_over.fetch_add(1, Ordering::Relaxed);
    }

    /// A key of the table, from the shards in turn.
    fn some_key(&self) -> Option<Vec<u8>> {
        for _ in 0..SHARDS {
            let i = self.next_shard.fetch_add(1, Ordering::Relaxed) % SHARDS;
            if let Some(k) = self.shards[i].lock().keys().next() {
                return Some(k.to_vec());
            }
        }
        None
    }
}

/// A message for the tracking client itself: into its reply buffer when its own connection is
/// sending, else into its mailbox.
fn deliver_own(inboxes: &Inboxes, tracker: &ClientInfo, own: Option<&mut Vec<u8>>, msg: Vec<u8>) {
    match own {
        Some(buf) => buf.extend_from_slice(&msg),
        None => {
            if let Some(mb) = inboxes.get(tracker.id) {
                mb.push(msg);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn client(id: u64, resp: u8) -> Arc<ClientInfo> {
        Arc::new(ClientInfo { id, resp: resp.into(), ..Default::default() })
    }

    type Rx = tokio::sync::mpsc::UnboundedReceiver<Vec<u8>>;

    /// A table, the mailboxes, and one RESP3 client with tracking on in default mode (and the
    /// receiving end of its mailbox).
    fn one_tracker(id: u64) -> (Tracking, Inboxes, Arc<ClientInfo>, Rx) {
        let (t, inb, c) = (Tracking::default(), Inboxes::default(), client(id, 3));
        let (_mb, rx) = inb.attach(&c);
        t.enable(&c, 0, 0, &[], &mut Vec::new());
        (t, inb, c, rx)
    }

    #[test]
    fn a_read_key_is_invalidated_once_and_leaves_the_table() {
        let (t, inb, _c, mut rx) = one_tracker(7);
        t.remember(7, [&b"k"[..], b"j"].into_iter());
        t.remember(7, [&b"k"[..]].into_iter());
        assert_eq!((t.total_keys(), t.total_items()), (2, 2));
        t.invalidate(&inb, b"k", None, 0);
        assert_eq!(rx.try_recv().unwrap(), b">2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\nk\r\n");
        t.invalidate(&inb, b"k", None, 0);
        assert!(rx.try_recv().is_err());
        assert_eq!((t.total_keys(), t.total_items()), (1, 1));
    }

    #[test]
    fn the_running_client_gets_its_own_invalidation_after_its_reply_and_noloop_none() {
        let (t, inb, c, mut rx) = one_tracker(1);
        t.remember(1, [&b"k"[..]].into_iter());
        let mut pending = Pending::new();
        t.invalidate(&inb, b"k", Some(&mut Current { id: 1, pending: &mut pending }), 1);
        assert!(rx.try_recv().is_err());
        let mut out = b"+OK\r\n".to_vec();
        t.send_pending(&inb, &c, &mut pending, &mut out);
        assert_eq!(out, b"+OK\r\n>2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\nk\r\n");
        t.disable(&c, &mut Vec::new());
        t.enable(&c, 0, flag::NOLOOP, &[], &mut Vec::new());
        t.remember(1, [&b"k"[..]].into_iter());
        t.invalidate(&inb, b"k", Some(&mut Current { id: 1, pending: &mut pending }), 1);
        assert!(pending.is_empty());
    }

    #[test]
    fn a_redirect_to_a_resp2_subscriber_is_a_message_and_to_a_gone_client_is_reported() {
        let t = Tracking::default();
        let inb = Inboxes::default();
        let (c, target) = (client(1, 3), client(2, 2));
        target.sub.store(1, Ordering::Relaxed);
        let (_m1, mut rx1) = inb.attach(&c);
        let (_m2, mut rx2) = inb.attach(&target);
        t.enable(&c, 2, 0, &[], &mut Vec::new());
        t.remember(1, [&b"k"[..]].into_iter());
        t.invalidate(&inb, b"k", None, 0);
        assert_eq!(rx2.try_recv().unwrap(), b"*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n*1\r\n$1\r\nk\r\n");
        inb.detach(2);
        t.remember(1, [&b"k"[..]].into_iter());
        t.invalidate(&inb, b"k", None, 0);
        assert_eq!(rx1.try_recv().unwrap(), b">2\r\n$21\r\ntracking-redir-broken\r\n:2\r\n");
        assert_ne!(c.tracking.load(Ordering::Relaxed) & flag::BROKEN_REDIR, 0);
    }

    #[test]
    fn broadcast_sends_one_message_per_prefix_and_noloop_drops_own_keys() {
        let t = Tracking::default();
        let inb = Inboxes::default();
        let c = client(1, 3);
        let (_mb, mut rx) = inb.attach(&c);
        let mut prefixes = Vec::new();
        t.enable(&c, 0, flag::BCAST | flag::NOLOOP, &[b"a:", b"b:"], &mut prefixes);
        assert_eq!(t.total_prefixes(), 2);
        for k in [&b"a:1"[..], b"a:2", b"b:1", b"c:1"] {
            t.invalidate(&inb, k, None, 9);
        }
        t.invalidate(&inb, b"b:2", None, 1);
        t.flush_bcast(&inb);
        assert_eq!(rx.try_recv().unwrap(), b">2\r\n$10\r\ninvalidate\r\n*2\r\n$3\r\na:1\r\n$3\r\na:2\r\n");
        assert_eq!(rx.try_recv().unwrap(), b">2\r\n$10\r\ninvalidate\r\n*1\r\n$3\r\nb:1\r\n");
        assert!(rx.try_recv().is_err());
        t.disable(&c, &mut prefixes);
        assert_eq!(t.total_prefixes(), 0);
    }

    #[test]
    fn prefixes_that_overlap_are_refused_with_redis_text() {
        let e = Tracking::prefix_collision(&[], &[b"FOOBAR", b"FOO"]).unwrap();
        assert!(e.starts_with("ERR Prefix 'FOOBAR' overlaps with another provided prefix 'FOO'"), "{e}");
        let e = Tracking::prefix_collision(&[b"FOO".to_vec()], &[b"FO"]).unwrap();
        assert!(e.starts_with("ERR Prefix 'FO' overlaps with an existing prefix 'FOO'"), "{e}");
        assert!(Tracking::prefix_collision(&[b"FOO".to_vec()], &[b"BAR"]).is_none());
    }

    #[test]
    fn the_limit_evicts_until_under_it_with_growing_effort() {
        let (t, inb, _c, mut rx) = one_tracker(1);
        let keys: Vec<Vec<u8>> = (0..250).map(|i| format!("key{i}").into_bytes()).collect();
        t.remember(1, keys.iter().map(|k| k.as_slice()));
        t.limit(&inb, 1);
        assert_eq!(t.total_keys(), 150);
        t.limit(&inb, 1);
        assert_eq!(t.total_keys(), 1);
        let mut n = 0;
        while rx.try_recv().is_ok() {
            n += 1;
        }
        assert_eq!(n, 249);
    }
}
