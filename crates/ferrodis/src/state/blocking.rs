//! Clients blocked on keys (BLPOP, BLMOVE, BZPOPMIN, ...): per (db, key), the waiters in arrival
//! order (core.md section 6). This is only the registry; `commands::blocking` serves waiters when
//! a command makes one of their keys ready, and the connection awaits its waiter's reply.
//!
//! Invariants:
//! - A waiter registers while its command still holds the stripe locks of all its keys, and a
//!   command that creates a list or sorted set checks `any()` under the stripe lock of that key,
//!   so a push can never slip between "the key is empty" and "the client waits".
//! - Exactly one party finishes a waiter: whoever wins `claim()` (the server serving it, its
//!   timeout, CLIENT UNBLOCK, or its connection closing), and that party removes it from here.
//! - Lock order: the registry's mutex may be taken while holding stripe locks, never the reverse.

use super::ClientInfo;
use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;

/// What a blocked command does once one of its keys is ready.
#[derive(Clone, Debug)]
pub enum BlockOp {
    /// BLPOP / BRPOP: pop one element, reply [key, element].
    ListPop { left: bool },
    /// BLMPOP: pop up to `count`, reply [key, [elements]].
    ListMPop { left: bool, count: usize },
    /// BLMOVE / BRPOPLPUSH: move one element to `dst`, reply it.
    ListMove { dst: Vec<u8>, from_left: bool, to_left: bool },
    /// BZPOPMIN / BZPOPMAX: reply [key, member, score].
    ZPop { max: bool },
    /// BZMPOP: reply [key, [[member, score] ...]].
    ZMPop { max: bool, count: usize },
    /// XREAD / XREADGROUP: where each key is read from, the COUNT, and the group and
    /// consumer (with NOACK) of XREADGROUP.
    Stream { from: Vec<crate::types::stream::ReadFrom>, count: usize, group: Option<(Vec<u8>, Vec<u8>)>, noack: bool },
}

impl BlockOp {
    /// True for the list commands (false: sorted sets).
    pub fn on_lists(&self) -> bool {
        matches!(self, BlockOp::ListPop { .. } | BlockOp::ListMPop { .. } | BlockOp::ListMove { .. })
    }
    /// True for XREAD / XREADGROUP: serving one reader consumes nothing, so every waiter on a
    /// key is tried, not only the first.
    pub fn on_streams(&self) -> bool {
        matches!(self, BlockOp::Stream { .. })
    }
}

const WAITING: u8 = 0;
const CLAIMED: u8 = 1;

pub struct Waiter {
    pub info: Arc<ClientInfo>,
    pub db: usize,
    pub keys: Vec<Vec<u8>>,
    pub op: BlockOp,
    pub resp3: bool,
    /// The command's table id (its statistics and its name in replies).
    pub cmd_id: usize,
    /// The reply when the wait ends without data (timeout, CLIENT UNBLOCK TIMEOUT).
    pub timeout_reply: &'static [u8],
    state: AtomicU8,
    reply: Mutex<Option<Vec<u8>>>,
    done: tokio::sync::Notify,
}

impl Waiter {
    pub fn new(info: Arc<ClientInfo>, db: usize, keys: Vec<Vec<u8>>, op: BlockOp, resp3: bool, cmd_id: usize) -> Waiter {
        // Redis 7.0 answers a timeout with a null array for every blocking command (BLMOVE too).
        let timeout_reply: &'static [u8] = if resp3 { b"_\r\n" } else { b"*-1\r\n" };
        Waiter {
            info,
            db,
            keys,
            op,
            resp3,
            cmd_id,
            timeout_reply,
            state: AtomicU8::new(WAITING),
            reply: Mutex::new(None),
            done: tokio::sync::Notify::new(),
        }
    }
    /// Takes the right to finish this waiter; false when someone else already has.
    pub fn claim(&self) -> bool {
        self.state.compare_exchange(WAITING, CLAIMED, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }
    pub fn is_waiting(&self) -> bool {
        self.state.load(Ordering::Acquire) == WAITING
    }
    /// Hands the reply to the blocked connection (after a successful `claim`).
    pub fn finish(&self, reply: Vec<u8>) {
        *self.reply.lock() = Some(reply);
        self.done.notify_one();
    }
    /// Waits for `finish` and returns the reply.
    pub async fn wait(&self) -> Vec<u8> {
        loop {
            if let Some(r) = self.reply.lock().take() {
                return r;
            }
            self.done.notified().await;
        }
    }
}

#[derive(Default)]
struct Inner {
    by_key: HashMap<(usize, Vec<u8>), VecDeque<Arc<Waiter>>>,
    by_client: HashMap<u64, Arc<Waiter>>,
}

#[derive(Default)]
pub struct Blocking {
    count: AtomicUsize,
    inner: Mutex<Inner>,
}

impl Blocking {
    /// True when any client is blocked (the fast path of every command that creates a key).
    #[inline]
    pub fn any(&self) -> bool {
        self.count.load(Ordering::Acquire) > 0
    }
    /// Blocked clients (INFO's `blocked_clients`).
    pub fn len(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn register(&self, w: Arc<Waiter>) {
        let mut g = self.inner.lock();
        for k in &w.keys {
            let q = g.by_key.entry((w.db, k.clone())).or_default();
            if !q.iter().any(|x| Arc::ptr_eq(x, &w)) {
                q.push_back(w.clone());
            }
        }
        g.by_client.insert(w.info.id, w.clone());
        self.count.fetch_add(1, Ordering::AcqRel);
    }
    /// Removes a waiter from every key it waits on.
    pub fn remove(&self, w: &Arc<Waiter>) {
        let mut g = self.inner.lock();
        if g.by_client.get(&w.info.id).is_some_and(|x| Arc::ptr_eq(x, w)) {
            g.by_client.remove(&w.info.id);
            self.count.fetch_sub(1, Ordering::AcqRel);
        }
        for k in &w.keys {
            let slot = (w.db, k.clone());
            if let Some(q) = g.by_key.get_mut(&slot) {
                q.retain(|x| !Arc::ptr_eq(x, w));
                if q.is_empty() {
                    g.by_key.remove(&slot);
                }
            }
        }
    }
    /// The oldest waiter on (db, key) that is still waiting.
    pub fn first(&self, db: usize, key: &[u8]) -> Option<Arc<Waiter>> {
        let g = self.inner.lock();
        g.by_key.get(&(db, key.to_vec()))?.iter().find(|w| w.is_waiting()).cloned()
    }
    /// Every client waiting on a key, in arrival order.
    pub fn waiting(&self, db: usize, key: &[u8]) -> Vec<Arc<Waiter>> {
        let g = self.inner.lock();
        g.by_key.get(&(db, key.to_vec())).map(|q| q.iter().filter(|w| w.is_waiting()).cloned().collect()).unwrap_or_default()
    }
    /// The keys of `db` that clients wait on (SWAPDB makes them ready).
    pub fn keys_in_db(&self, db: usize) -> Vec<Vec<u8>> {
        self.inner.lock().by_key.keys().filter(|(d, _)| *d == db).map(|(_, k)| k.clone()).collect()
    }
    /// The waiter of a client (CLIENT UNBLOCK).
    pub fn of_client(&self, id: u64) -> Option<Arc<Waiter>> {
        self.inner.lock().by_client.get(&id).cloned()
    }
}
