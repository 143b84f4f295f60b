//! Pub/Sub: the channel, pattern and shard-channel registries, and each subscriber's mailbox.
//!
//! PUBLISH runs on the publisher's thread: it encodes the message in each subscriber's protocol
//! and puts it in the subscriber's mailbox (an unbounded channel whose queued bytes are counted);
//! the subscriber's connection moves messages from its mailbox to its socket. The count enforces
//! `client-output-buffer-limit pubsub`: past the hard limit, or above the soft limit for longer
//! than its seconds, the subscriber is disconnected and its queue dropped, so a subscriber that
//! never reads cannot make the server's memory grow without bound.

use super::ClientInfo;
use parking_lot::RwLock;
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::Arc;

pub struct Mailbox {
    pub info: Arc<ClientInfo>,
    tx: tokio::sync::mpsc::UnboundedSender<Vec<u8>>,
    queued: AtomicUsize,
    soft_since: AtomicI64,
}

/// `client-output-buffer-limit pubsub`: hard bytes, soft bytes, soft seconds (0: none).
#[derive(Clone, Copy, Debug, Default)]
pub struct Limits {
    pub hard: usize,
    pub soft: usize,
    pub soft_secs: i64,
}

impl Mailbox {
    pub fn new(info: Arc<ClientInfo>) -> (Arc<Mailbox>, tokio::sync::mpsc::UnboundedReceiver<Vec<u8>>) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        (Arc::new(Mailbox { info, tx, queued: AtomicUsize::new(0), soft_since: AtomicI64::new(0) }), rx)
    }
    /// Queues a message; false when the subscriber is over its limits (it must be disconnected).
    fn deliver(&self, msg: Vec<u8>, lim: Limits, now_ms: i64) -> bool {
        let q = self.queued.fetch_add(msg.len(), Ordering::AcqRel) + msg.len();
        if lim.hard > 0 && q > lim.hard {
            return false;
        }
        if lim.soft > 0 && lim.soft_secs > 0 {
            if q > lim.soft {
                let since = self.soft_since.load(Ordering::Acquire);
                if since == 0 {
                    self.soft_since.store(now_ms, Ordering::Release);
                } else if now_ms - since >= lim.soft_secs * 1000 {
                    return false;
                }
            } else {
                self.soft_since.store(0, Ordering::Release);
            }
        }
        let _ = self.tx.send(msg);
        true
    }
    /// Queues a message the client must get whatever its buffers hold (a tracking invalidation,
    /// which Redis adds to the client's reply as any reply).
    pub fn push(&self, msg: Vec<u8>) {
        self.queued.fetch_add(msg.len(), Ordering::AcqRel);
        let _ = self.tx.send(msg);
    }
    /// The connection took `n` bytes out of the mailbox.
    pub fn drained(&self, n: usize) {
        self.queued.fetch_sub(n, Ordering::AcqRel);
    }
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }
}

/// Every connection's mailbox, by client id, for the messages other connections send it by id
/// (tracking invalidations redirected to it). A connection gets its mailbox from here when it
/// first needs one (a subscription, CLIENT TRACKING); another connection that needs to reach a
/// client with none yet creates it and parks the receiving end, which the client's connection
/// takes at its next turn (`ClientInfo::inbox_parked`).
#[derive(Default)]
pub struct Inboxes {
    boxes: RwLock<HashMap<u64, Arc<Mailbox>>>,
    parked: parking_lot::Mutex<HashMap<u64, tokio::sync::mpsc::UnboundedReceiver<Vec<u8>>>>,
}

impl Inboxes {
    /// The mailbox of a client that has one.
    pub fn get(&self, id: u64) -> Option<Arc<Mailbox>> {
        self.boxes.read().get(&id).cloned()
    }
    /// The client's own connection: its mailbox and the receiving end (created now, or the one
    /// parked for it).
    pub fn attach(&self, info: &Arc<ClientInfo>) -> (Arc<Mailbox>, tokio::sync::mpsc::UnboundedReceiver<Vec<u8>>) {
        let mut boxes = self.boxes.write();
        if let Some(mb) = boxes.get(&info.id) {
            if let Some(rx) = self.parked.lock().remove(&info.id) {
                info.inbox_parked.store(false, Ordering::Release);
                return (mb.clone(), rx);
            }
        }
        let (mb, rx) = Mailbox::new(info.clone());
        boxes.insert(info.id, mb.clone());
        (mb, rx)
    }
    /// Another connection: the client's mailbox, created (and its receiver parked) if need be.
    pub fn reach(&self, info: &Arc<ClientInfo>) -> Arc<Mailbox> {
        let mut boxes = self.boxes.write();
        if let Some(mb) = boxes.get(&info.id) {
            return mb.clone();
        }
        let (mb, rx) = Mailbox::new(info.clone());
        boxes.insert(info.id, mb.clone());
        self.parked.lock().insert(info.id, rx);
        info.inbox_parked.store(true, Ordering::Release);
        mb
    }
    /// Every mailbox (FLUSHALL tells every tracking client).
    pub fn all(&self) -> Vec<Arc<Mailbox>> {
        self.boxes.read().values().cloned().collect()
    }
    /// The connection ended: its mailbox goes (messages sent to it later are dropped).
    pub fn detach(&self, id: u64) {
        self.boxes.write().remove(&id);
        self.parked.lock().remove(&id);
    }
}

/// Which registry: plain channels, patterns, or shard channels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Channel,
    Pattern,
    Shard,
}

type Registry = RwLock<HashMap<Vec<u8>, Vec<Arc<Mailbox>>>>;

#[derive(Default)]
pub struct PubSub {
    channels: Registry,
    patterns: Registry,
    shard: Registry,
}

/// A message as a subscriber in `resp3` sees it: [kind, (pattern,) channel, payload].
fn encode(resp3: bool, parts: &[&[u8]]) -> Vec<u8> {
    let mut v = Vec::with_capacity(parts.iter().map(|p| p.len() + 16).sum::<usize>() + 8);
    v.push(if resp3 { b'>' } else { b'*' });
    v.extend_from_slice(itoa::Buffer::new().format(parts.len()).as_bytes());
    v.extend_from_slice(b"\r\n");
    for p in parts {
        v.push(b'$');
        v.extend_from_slice(itoa::Buffer::new().format(p.len()).as_bytes());
        v.extend_from_slice(b"\r\n");
        v.extend_from_slice(p);
        v.extend_from_slice(b"\r\n");
    }
    v
}

impl PubSub {
    fn reg(&self, k: Kind) -> &Registry {
        match k {
            Kind::Channel => &self.channels,
            Kind::Pattern => &self.patterns,
            Kind::Shard => &self.shard,
        }
    }
    /// Adds a subscription; false when the client already had it.
    pub fn subscribe(&self, k: Kind, name: &[u8], mb: &Arc<Mailbox>) -> bool {
        let mut g = self.reg(k).write();
        let v = g.entry(name.to_vec()).or_default();
        if v.iter().any(|m| m.info.id == mb.info.id) {
            return false;
        }
        v.push(mb.clone());
        true
    }
    /// Removes every subscription of a client (one that was killed).
    pub fn drop_client(&self, client: u64) {
        for reg in [&self.channels, &self.patterns, &self.shard] {
            let mut g = reg.write();
            g.retain(|_, v| {
                v.retain(|m| m.info.id != client);
                !v.is_empty()
            });
        }
    }
    /// Removes a subscription; false when the client did not have it.
    pub fn unsubscribe(&self, k: Kind, name: &[u8], client: u64) -> bool {
        let mut g = self.reg(k).write();
        let Some(v) = g.get_mut(name) else { return false };
        let before = v.len();
        v.retain(|m| m.info.id != client);
        let removed = v.len() != before;
        if v.is_empty() {
            g.remove(name);
        }
        removed
    }
    /// Delivers a message to the channel's subscribers (and, for plain channels, to matching
    /// patterns); returns the number of receivers. Subscribers over their limits are returned in
    /// `over` for the caller to disconnect.
    pub fn publish(&self, shard: bool, channel: &[u8], msg: &[u8], lim: Limits, now_ms: i64, over: &mut Vec<Arc<Mailbox>>) -> usize {
        let mut n = 0;
        let mut cache: [Option<Vec<u8>>; 2] = [None, None];
        let reg = if shard { &self.shard } else { &self.channels };
        if let Some(v) = reg.read().get(channel) {
            let kind: &[u8] = if shard { b"smessage" } else { b"message" };
            for mb in v {
                let r3 = mb.info.resp.load(Ordering::Relaxed) >= 3;
                let m = cache[r3 as usize].get_or_insert_with(|| encode(r3, &[kind, channel, msg])).clone();
                if !mb.deliver(m, lim, now_ms) {
                    over.push(mb.clone());
                }
                n += 1;
            }
        }
        if !shard {
            for (pat, v) in self.patterns.read().iter() {
                if !crate::util::glob_match(pat, channel, false) {
                    continue;
                }
                for mb in v {
                    let r3 = mb.info.resp.load(Ordering::Relaxed) >= 3;
                    if !mb.deliver(encode(r3, &[b"pmessage", pat, channel, msg]), lim, now_ms) {
                        over.push(mb.clone());
                    }
                    n += 1;
                }
            }
        }
        n
    }
    /// Active channels (or shard channels) matching an optional pattern (PUBSUB CHANNELS).
    pub fn names(&self, k: Kind, pattern: Option<&[u8]>) -> Vec<Vec<u8>> {
        self.reg(k).read().keys().filter(|c| pattern.is_none_or(|p| crate::util::glob_match(p, c, false))).cloned().collect()
    }
    /// Subscribers of a channel (PUBSUB NUMSUB).
    pub fn numsub(&self, k: Kind, name: &[u8]) -> usize {
        self.reg(k).read().get(name).map_or(0, |v| v.len())
    }
    /// Distinct names in a registry (INFO's pubsub_channels, PUBSUB NUMPAT).
    pub fn count(&self, k: Kind) -> usize {
        self.reg(k).read().len()
    }
}
