//! The command engine (table and dispatch) and the command families that register into it.
//!
//! A handler is `fn(&mut Ctx, &[&[u8]])`: it parses its arguments, runs its operation against
//! the keys dispatch has already locked (through `Ctx`'s key access, which applies lazy expiry),
//! and writes its reply. Policy (arity, auth, pause) lives only in `dispatch`.

pub mod acl;
pub mod blocking;
pub mod dispatch;
pub mod table;

pub mod bitops;
pub mod connection;
pub mod evict;
pub mod expire;
pub mod geo;
pub mod hash;
pub mod hyperloglog;
pub mod keys;
pub mod list;
pub mod lua_libs;
pub mod multi;
pub mod notify;
pub mod persistence;
pub mod pubsub;
pub mod scripting;
pub mod server;
pub mod set;
pub mod sort;
pub mod stream;
pub mod string;
pub mod zset;

#[cfg(test)]
mod tests;

use crate::keyspace::{Entry, Found, KeyLoc, Stripe};
use crate::state::blocking::{BlockOp, Waiter};
use crate::state::{ClientInfo, State, ThreadStats};
use crate::types::{SmallBytes, Value};
use parking_lot::MutexGuard;
use resp::ReplyBuf;
use smallvec::SmallVec;
use std::sync::Arc;
pub use table::{CommandSpec, CommandTable};

pub const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";
pub const NOT_INT: &str = "ERR value is not an integer or out of range";
pub const NOT_FLOAT: &str = "ERR value is not a valid float";
pub const SYNTAX: &str = "ERR syntax error";
pub const OVERFLOW: &str = "ERR increment or decrement would overflow";

/// All the families' tables, in the order COMMAND lists them.
pub fn build_table() -> CommandTable {
    let mut t = CommandTable::new();
    t.register(string::COMMANDS);
    t.register(bitops::COMMANDS);
    t.register(list::COMMANDS);
    t.register(hash::COMMANDS);
    t.register(set::COMMANDS);
    t.register(zset::COMMANDS);
    t.register(stream::COMMANDS);
    t.register(hyperloglog::COMMANDS);
    t.register(geo::COMMANDS);
    t.register(sort::COMMANDS);
    t.register(multi::COMMANDS);
    t.register(pubsub::COMMANDS);
    t.register(scripting::COMMANDS);
    t.register(keys::COMMANDS);
    t.register(expire::COMMANDS);
    t.register(connection::COMMANDS);
    t.register(server::COMMANDS);
    t.register(persistence::COMMANDS);
    t.register(acl::COMMANDS);
    t
}

/// CLIENT REPLY state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ReplyMode {
    #[default]
    On,
    Off,
    /// Skip the reply of the next command only.
    SkipNext,
}

/// Per-connection state that commands read and change.
pub struct ConnState {
    pub db: usize,
    pub authenticated: bool,
    pub info: Arc<ClientInfo>,
    pub close_after_reply: bool,
    pub reply_mode: ReplyMode,
    pub skip_this: bool,
    /// Set by MONITOR: the lines this connection must forward.
    pub monitor: Option<tokio::sync::mpsc::Receiver<Vec<u8>>>,
    /// Set by a blocking command that found no data: the connection awaits this waiter.
    pub blocked: Option<(Arc<Waiter>, Option<std::time::Instant>)>,
    /// Inside MULTI: the queued commands.
    pub multi: Option<Multi>,
    /// WATCHed keys, and the flag any write to them sets.
    pub watched: Vec<(usize, Vec<u8>)>,
    /// The watched keys that did not exist when watched: an expired key found there at EXEC
    /// (one SWAPDB brought in) did not "expire since WATCH".
    pub watched_absent: Vec<(usize, Vec<u8>)>,
    pub watch_dirty: crate::state::watch::DirtyFlag,
    /// Blocking commands answer at once as if timed out (inside EXEC and scripts).
    pub deny_blocking: bool,
    /// A script is running on this connection (XREAD BLOCK is refused there, as Redis).
    pub in_script: bool,
    /// The AOF loader's client: its commands obey as written (no trimming LIMIT), as the master's.
    pub loading: bool,
    /// Pub/Sub subscriptions and the mailbox their messages (and tracking invalidations)
    /// arrive in.
    pub pubsub: Option<PubSubConn>,
    /// Client-side caching: this client's broadcast prefixes, the invalidations its running
    /// command caused for itself (sent after its reply), and whether the script it runs called a
    /// read-only command (its declared keys are then tracked, as Redis).
    pub tracking_prefixes: Vec<Vec<u8>>,
    pub tracking_pending: crate::state::tracking::Pending,
    pub tracking_script_read: bool,
    /// A command run inside EXEC or a script had its error counted in errorstats (the
    /// script's own error reply is then not counted again).
    pub nested_error: bool,
    /// A blocked command's arguments and start, for the slow log when it completes.
    pub blocked_call: Option<(Vec<Vec<u8>>, std::time::Instant)>,
    /// This connection is our master's replication link (a replica applying its stream).
    pub is_master: bool,
    /// The journal offset after this client's last write (Redis's `woff`): WAIT's target.
    pub woff: u64,
    /// Set by a command that hands the connection over (PSYNC, SYNC) or blocks it on replica
    /// acknowledgements (WAIT); the connection acts on it after the reply is written.
    pub handoff: Option<Handoff>,
    /// What a replica told us with REPLCONF before PSYNC.
    pub replconf: ReplConf,
    /// Cluster mode: ASKING was sent (for the next command only), READONLY is on.
    pub asking: bool,
    pub cluster_readonly: bool,
    /// The client came in on the tls-port (with tls-cluster, others are told plaintext ports).
    pub tls: bool,
    /// The ACL user this connection runs as (None: no ACL, as in unit tests).
    pub user: Option<Arc<crate::state::acl::UserCell>>,
}

/// REPLCONF listening-port / ip-address / capa, as a replica announced them.
#[derive(Debug, Default, Clone)]
pub struct ReplConf {
    pub port: u16,
    pub ip: Option<String>,
    pub capa_eof: bool,
    pub capa_psync2: bool,
}

/// What a connection does after its batch (see `ConnState::handoff`).
#[derive(Debug)]
pub enum Handoff {
    /// PSYNC (replid, offset) or SYNC (None): the connection becomes a replica's stream.
    Replica { psync: Option<(Vec<u8>, i64)> },
    /// WAIT: reply how many replicas acknowledged `target` once `needed` have, or at `deadline`.
    WaitAcks { target: u64, needed: usize, deadline: Option<std::time::Instant> },
}

pub struct PubSubConn {
    pub mailbox: Arc<crate::state::pubsub::Mailbox>,
    pub rx: tokio::sync::mpsc::UnboundedReceiver<Vec<u8>>,
    pub channels: Vec<Vec<u8>>,
    pub patterns: Vec<Vec<u8>>,
    pub shard: Vec<Vec<u8>>,
}

impl PubSubConn {
    /// Takes every message waiting in the mailbox, in order.
    pub fn drain(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        while let Ok(m) = self.rx.try_recv() {
            out.extend_from_slice(&m);
        }
        self.mailbox.drained(out.len());
        out
    }
}

/// Writes `count` random picks one at a time (SRANDMEMBER, HRANDFIELD and ZRANDMEMBER with a
/// negative count: repeats allowed), nothing collected first; it stops early once the reply
/// passes the client output buffer's hard limit, where the connection is closed anyway (as
/// Redis closes it), so a huge count cannot take memory without bound beyond that limit.
/// `hard`: `Ctx::obuf_hard`, read before the collection is borrowed.
pub fn write_picks(out: &mut ReplyBuf, hard: usize, count: u64, mut one: impl FnMut(&mut ReplyBuf)) {
    for _ in 0..count {
        one(out);
        if hard > 0 && out.buf.len() > hard {
            return;
        }
    }
}

impl ConnState {
    /// The connection's mailbox (created now, or taken from where another connection parked
    /// it: `pubsub::Inboxes`); the connection loop reads it once it exists.
    pub fn inbox(&mut self, inboxes: &crate::state::pubsub::Inboxes) -> &mut PubSubConn {
        let info = &self.info;
        self.pubsub.get_or_insert_with(|| {
            let (mailbox, rx) = inboxes.attach(info);
            PubSubConn { mailbox, rx, channels: Vec::new(), patterns: Vec::new(), shard: Vec::new() }
        })
    }
    /// RESP2 subscriber mode: only (P|S)(UN)SUBSCRIBE, PING, QUIT and RESET are allowed.
    pub fn in_subscriber_mode(&self) -> bool {
        self.pubsub.as_ref().is_some_and(|p| !(p.channels.is_empty() && p.patterns.is_empty() && p.shard.is_empty()))
            && self.info.resp.load(std::sync::atomic::Ordering::Relaxed) < 3
    }
}

/// A keyspace event fired after the command's own: (class, event, db, key).
pub type DeferredEvent = (u32, &'static str, usize, Vec<u8>);

/// A transaction being queued.
#[derive(Default)]
pub struct Multi {
    /// (command id, argv) in order.
    pub cmds: Vec<(usize, Vec<Vec<u8>>)>,
    /// A command was rejected while queuing: EXEC answers EXECABORT.
    pub error: bool,
}

impl ConnState {
    pub fn new(info: Arc<ClientInfo>, authenticated: bool) -> Self {
        ConnState {
            db: 0,
            authenticated,
            info,
            close_after_reply: false,
            reply_mode: ReplyMode::On,
            skip_this: false,
            monitor: None,
            blocked: None,
            multi: None,
            watched: Vec::new(),
            watched_absent: Vec::new(),
            watch_dirty: Default::default(),
            deny_blocking: false,
            in_script: false,
            loading: false,
            pubsub: None,
            tracking_prefixes: Vec::new(),
            tracking_pending: Vec::new(),
            tracking_script_read: false,
            nested_error: false,
            blocked_call: None,
            is_master: false,
            woff: 0,
            handoff: None,
            replconf: ReplConf::default(),
            asking: false,
            cluster_readonly: false,
            tls: false,
            user: None,
        }
    }
}

/// What a handler sees: shared state, its connection, the reply buffer and the locked stripes.
pub struct Ctx<'a> {
    pub st: &'a State,
    pub table: &'a CommandTable,
    pub conn: &'a mut ConnState,
    pub out: &'a mut ReplyBuf,
    pub ts: &'a ThreadStats,
    pub now: i64,
    pub cmd_id: usize,
    guards: Guards<'a>,
    dirty: u64,
    custom_propagated: bool,
    /// Keys this command made ready for blocked clients: (db, key).
    pub ready: SmallVec<[(usize, Vec<u8>); 1]>,
    /// Set by a handler that changed only some of its keys (SMOVE into a set that already held
    /// the member): the argument indices WATCH sees touched, instead of every key.
    pub touched_keys: Option<SmallVec<[usize; 2]>>,
    /// Keyspace events to fire after the command's own (the "del" of a key it deleted).
    pub deferred: SmallVec<[DeferredEvent; 1]>,
    /// Inside EXEC: journal effects collected here, to go to the journal as one MULTI/EXEC block.
    pub capture: Option<Vec<(usize, Vec<Vec<u8>>)>>,
    /// A script's redis.set_repl(redis.REPL_NONE): its commands' effects stay out of the journal.
    pub propagate_off: bool,
    /// What lookups do with expired keys (delete them; on a replica, hide them or ignore expiry).
    expiry: crate::keyspace::Expiry,
}

/// Stripe locks held by a context: (stripe, guard), sorted by stripe.
pub type Guards<'g> = SmallVec<[(usize, MutexGuard<'g, Stripe>); 8]>;

impl<'a> Ctx<'a> {
    pub fn new(
        st: &'a State,
        table: &'a CommandTable,
        conn: &'a mut ConnState,
        out: &'a mut ReplyBuf,
        ts: &'a ThreadStats,
        cmd_id: usize,
        now: i64,
    ) -> Self {
        let expiry = if !st.repl.is_replica() {
            crate::keyspace::Expiry::Delete
        } else if conn.is_master {
            crate::keyspace::Expiry::Ignore
        } else {
            crate::keyspace::Expiry::Hide
        };
        Ctx {
            st,
            table,
            conn,
            out,
            ts,
            now,
            cmd_id,
            guards: SmallVec::new(),
            dirty: 0,
            custom_propagated: false,
            ready: SmallVec::new(),
            touched_keys: None,
            deferred: SmallVec::new(),
            capture: None,
            propagate_off: false,
            expiry,
        }
    }

    /// Locks a stripe (dispatch calls this in ascending order before the handler runs). Locks
    /// are taken in ascending order, so no two threads wait for each other; a stripe below one
    /// already held is taken only if it is free, and otherwise every lock is let go and taken
    /// again in order.
    pub fn lock_stripe(&mut self, stripe: usize) {
        self.guard_pos(stripe);
    }
    /// Where a stripe's guard is in `guards` (kept sorted by stripe), or None.
    #[inline]
    fn find_guard(&self, stripe: usize) -> Option<usize> {
        if self.guards.len() <= 8 {
            self.guards.iter().position(|(s, _)| *s == stripe)
        } else {
            self.guards.binary_search_by_key(&stripe, |(s, _)| *s).ok()
        }
    }
    /// The position of a stripe's guard, locking the stripe first if this context does not
    /// hold it (see `lock_stripe` for the order kept).
    fn guard_pos(&mut self, stripe: usize) -> usize {
        if let Some(p) = self.find_guard(stripe) {
            return p;
        }
        let ks = &self.st.keyspace;
        if self.guards.last().is_none_or(|(s, _)| *s < stripe) {
            self.guards.push((stripe, ks.lock_ordered(stripe)));
            return self.guards.len() - 1;
        }
        let at = self.guards.partition_point(|(s, _)| *s < stripe);
        if let Some(g) = ks.try_lock(stripe) {
            self.guards.insert(at, (stripe, g));
            return at;
        }
        let mut want: SmallVec<[usize; 16]> = self.guards.iter().map(|(s, _)| *s).collect();
        want.insert(at, stripe);
        self.unlock_all();
        for s in want {
            self.guards.push((s, ks.lock_ordered(s)));
        }
        at
    }
    /// True when this context holds every stripe (a script, or an EXEC containing one).
    pub fn holds_all(&self) -> bool {
        self.guards.len() == crate::keyspace::STRIPES
    }
    /// Takes every stripe lock, in order (releasing first whatever it held, to keep the order).
    pub fn lock_all_stripes(&mut self) {
        if !self.holds_all() {
            self.unlock_all();
            for s in 0..crate::keyspace::STRIPES {
                self.guards.push((s, self.st.keyspace.lock_ordered(s)));
            }
        }
    }
    /// Releases every stripe lock (whole-keyspace handlers lock and release as they walk).
    pub fn unlock_all(&mut self) {
        self.guards.clear();
    }
    #[inline]
    fn stripe(&mut self, stripe: usize) -> &mut Stripe {
        let pos = match self.find_guard(stripe) {
            Some(p) => p,
            None => {
                // A key outside the command's declared key positions: lock it now. Only reached
                // by handlers whose spec is incomplete; dispatch locks declared keys in order.
                debug_assert!(false, "stripe {stripe} not locked by dispatch");
                self.guard_pos(stripe)
            }
        };
        &mut self.guards[pos].1
    }

    #[inline]
    pub fn db(&self) -> usize {
        self.conn.db
    }

    /// Finds a live key in the current database: expired keys are deleted on the way (and a DEL
    /// goes to the journal). `read` counts keyspace hits/misses and touches the LRU clock.
    #[inline]
    pub fn entry(&mut self, key: &[u8], read: bool) -> (Option<&mut Entry>, &mut ReplyBuf) {
        let db = self.conn.db;
        self.entry_in(db, key, read)
    }

    pub fn entry_in(&mut self, db: usize, key: &[u8], read: bool) -> (Option<&mut Entry>, &mut ReplyBuf) {
        self.lookup(db, key, read, true)
    }

    /// A read lookup (hits, misses, "keymiss") that leaves the key's LRU/LFU data alone: TYPE and
    /// the TTL family (Redis's lookupKeyReadWithFlags with LOOKUP_NOTOUCH).
    pub fn entry_notouch(&mut self, key: &[u8]) -> (Option<&mut Entry>, &mut ReplyBuf) {
        let db = self.conn.db;
        self.lookup(db, key, true, false)
    }

    /// Finds a live key without touching its LRU/LFU data or counting a hit (OBJECT, MEMORY,
    /// DEBUG: Redis's LOOKUP_NOTOUCH).
    pub fn peek(&mut self, key: &[u8]) -> (Option<&mut Entry>, &mut ReplyBuf) {
        let db = self.conn.db;
        self.lookup(db, key, false, false)
    }

    /// The access-time field of a key touched now: seconds for LRU, or the LFU field.
    fn touched_field(&self, old: Option<u32>) -> u32 {
        let hot = &self.st.config.hot;
        if hot.lfu_policy.load(std::sync::atomic::Ordering::Relaxed) {
            match old {
                None => crate::keyspace::lfu::new(self.now),
                Some(f) => crate::keyspace::lfu::touch(
                    f,
                    self.now,
                    hot.lfu_log_factor.load(std::sync::atomic::Ordering::Relaxed),
                    hot.lfu_decay_time.load(std::sync::atomic::Ordering::Relaxed),
                    rand::random::<f64>(),
                ),
            }
        } else {
            (self.now / 1000) as u32
        }
    }

    fn lookup(&mut self, db: usize, key: &[u8], read: bool, touch: bool) -> (Option<&mut Entry>, &mut ReplyBuf) {
        let loc = self.st.keyspace.locate(key);
        let now = self.now;
        let pos = match self.find_guard(loc.stripe) {
            Some(p) => p,
            None => {
                debug_assert!(false, "stripe {} not locked by dispatch", loc.stripe);
                self.guard_pos(loc.stripe)
            }
        };
        let stripe = &mut *self.guards[pos].1;
        // A replica never expires keys itself: its clients do not see logically expired keys, and
        // its master's commands see them as they are, until the master's DEL (Redis's rule).
        let e = match stripe.find_live(db, &loc, key, now, self.expiry) {
            Found::Live(e) => Some(e),
            Found::Missing => None,
            Found::Expired(_) => {
                // (`emit` inline: only these fields are free while the stripe is borrowed.)
                match self.capture.as_mut() {
                    Some(c) if self.st.journal.enabled() => c.push((db, vec![b"DEL".to_vec(), key.to_vec()])),
                    Some(_) => {}
                    None => {
                        self.st.journal.append(db, &[b"DEL", key]);
                    }
                }
                if self.st.config.hot.notify_flags.load(std::sync::atomic::Ordering::Relaxed) & crate::config::notify::EXPIRED != 0 {
                    pubsub::keyspace_event(self.st, db, crate::config::notify::EXPIRED, "expired", key, now);
                }
                self.st.watches.touch(db, key);
                if self.st.tracking.active() {
                    let mut cur = crate::state::tracking::Current { id: self.conn.info.id, pending: &mut self.conn.tracking_pending };
                    self.st.tracking.invalidate(&self.st.inboxes, key, Some(&mut cur), 0);
                }
                ThreadStats::add(&self.ts.expired, 1);
                self.dirty += 1;
                None
            }
        };
        if read {
            ThreadStats::add(if e.is_some() { &self.ts.hits } else { &self.ts.misses }, 1);
            // A read that misses fires "keymiss" (class m), as Redis's lookupKeyRead does.
            if e.is_none()
                && self.st.config.hot.notify_flags.load(std::sync::atomic::Ordering::Relaxed) & crate::config::notify::KEY_MISS != 0
            {
                pubsub::keyspace_event(self.st, db, crate::config::notify::KEY_MISS, "keymiss", key, now);
            }
        }
        match e {
            Some(e) => {
                if touch {
                    let hot = &self.st.config.hot;
                    e.lru = if hot.lfu_policy.load(std::sync::atomic::Ordering::Relaxed) {
                        crate::keyspace::lfu::touch(
                            e.lru,
                            now,
                            hot.lfu_log_factor.load(std::sync::atomic::Ordering::Relaxed),
                            hot.lfu_decay_time.load(std::sync::atomic::Ordering::Relaxed),
                            rand::random::<f64>(),
                        )
                    } else {
                        (now / 1000) as u32
                    };
                }
                (Some(e), &mut *self.out)
            }
            None => (None, &mut *self.out),
        }
    }

    /// The value at `key` projected to one type: Ok(None) when the key is missing, Err after
    /// replying WRONGTYPE when it holds another type.
    pub(crate) fn typed<T: ?Sized>(
        &mut self,
        key: &[u8],
        read: bool,
        project: impl FnOnce(&mut Value) -> Option<&mut T>,
    ) -> Result<Option<&mut T>, ()> {
        let (e, out) = self.entry(key, read);
        match e {
            None => Ok(None),
            Some(e) => match project(&mut e.value) {
                Some(t) => Ok(Some(t)),
                None => {
                    out.error(WRONGTYPE);
                    Err(())
                }
            },
        }
    }

    /// Deletes `key` if it holds a collection that became empty (Redis never keeps those).
    pub fn delete_if_empty(&mut self, key: &[u8]) {
        if self.entry(key, false).0.is_some_and(|e| e.value.is_empty_collection()) {
            self.delete(key);
        }
    }

    /// After removing `n` elements from the collection at `key`: counts `n` changes (as Redis
    /// counts HDEL, SREM, ZREM, LREM) and deletes the key if it became empty.
    pub fn removed(&mut self, key: &[u8], n: usize) {
        if n > 0 {
            self.delete_if_empty(key);
            self.set_changes(n as u64);
        }
    }

    /// True when the key exists (and is not expired), without counting a hit.
    pub fn exists(&mut self, key: &[u8]) -> bool {
        self.entry(key, false).0.is_some()
    }

    /// Stores a value under `key`, replacing any old one; `expire` 0 means no expiry.
    #[inline]
    pub fn store(&mut self, key: &[u8], value: Value, expire: i64) {
        let db = self.conn.db;
        self.store_in(db, key, value, expire);
    }

    pub fn store_in(&mut self, db: usize, key: &[u8], value: Value, expire: i64) {
        let loc = self.st.keyspace.locate(key);
        let hasher = &self.st.keyspace.hasher;
        let pos = self.guard_pos(loc.stripe);
        let lru = self.touched_field(None);
        // A new list or sorted set may be what a blocked client waits for (checked under the
        // key's stripe lock; see state::blocking).
        let mut ready = matches!(value, Value::List(_) | Value::ZSet(_) | Value::Stream(_)) && self.st.blocking.any();
        let e = Entry { key: SmallBytes::new(key), value, expire, lru };
        let old = self.guards[pos].1.insert(db, &loc, e, hasher);
        // A stream replaced by another value ends its XREADGROUP waits (Redis 7.0).
        ready |= self.st.blocking.any() && old.as_ref().is_some_and(|o| matches!(o.value, Value::Stream(_)));
        if ready {
            self.ready.push((db, key.to_vec()));
        }
        if old.is_none() {
            self.notify(crate::config::notify::NEW, "new", db, key);
        }
        if let Some(old) = old {
            // Under LFU an overwritten key keeps its access frequency, counting this write as an
            // access (Redis's lookupKeyWrite then dbOverwrite).
            if self.st.config.hot.lfu_policy.load(std::sync::atomic::Ordering::Relaxed) {
                let field = self.touched_field(Some(old.lru));
                if let Some(e) = self.guards[pos].1.get_mut(db, &loc, key) {
                    e.lru = field;
                }
            }
        }
        self.dirty += 1;
    }

    /// Deletes a live key; true if it existed. Fires "del" (after the command's own event).
    pub fn delete(&mut self, key: &[u8]) -> bool {
        let db = self.conn.db;
        let gone = self.delete_in(db, key).is_some();
        if gone && self.notifying(crate::config::notify::GENERIC) {
            self.deferred.push((crate::config::notify::GENERIC, "del", db, key.to_vec()));
        }
        gone
    }
    /// Deletes a key as part of moving it (RENAME, MOVE): no "del" event.
    pub fn delete_quiet(&mut self, key: &[u8]) -> bool {
        let db = self.conn.db;
        self.delete_in(db, key).is_some()
    }
    /// True when events of this class are published.
    #[inline]
    pub fn notifying(&self, class: u32) -> bool {
        self.st.config.hot.notify_flags.load(std::sync::atomic::Ordering::Relaxed) & class != 0
    }
    /// Fires a keyspace event now.
    pub fn notify(&mut self, class: u32, event: &str, db: usize, key: &[u8]) {
        if self.notifying(class) {
            pubsub::keyspace_event(self.st, db, class, event, key, self.now);
        }
    }

    pub fn delete_in(&mut self, db: usize, key: &[u8]) -> Option<Entry> {
        self.entry_in(db, key, false).0.as_ref()?;
        let loc = self.st.keyspace.locate(key);
        let e = self.stripe(loc.stripe).remove(db, &loc, key);
        self.dirty += 1;
        // A deleted stream ends its XREADGROUP waits (Redis 7.0's signalDeletedKeyAsReady).
        if self.st.blocking.any() && e.as_ref().is_some_and(|e| matches!(e.value, Value::Stream(_))) {
            self.ready.push((db, key.to_vec()));
        }
        e
    }

    /// Sets (or with 0 clears) the expiry of an existing key.
    pub fn set_expire(&mut self, key: &[u8], at: i64) -> bool {
        let db = self.conn.db;
        let loc: KeyLoc = self.st.keyspace.locate(key);
        let ok = self.stripe(loc.stripe).set_expire(db, &loc, key, at);
        if ok {
            self.dirty += 1;
        }
        ok
    }

    /// Blocks the client on `keys` (a blocking command that found no data): registers its waiter
    /// while the stripe locks are still held. `timeout_ms` 0 waits forever.
    pub fn block(&mut self, keys: &[&[u8]], op: BlockOp, timeout_ms: i64) {
        if self.conn.deny_blocking {
            // Inside EXEC (or a script) nothing blocks: the answer is the timeout's.
            // (Redis answers BLMOVE/BRPOPLPUSH with a null bulk here, the others with a null array.)
            match op {
                BlockOp::ListMove { .. } => self.out.null(),
                _ => self.out.null_array(),
            }
            return;
        }
        let w = Arc::new(Waiter::new(
            self.conn.info.clone(),
            self.conn.db,
            keys.iter().map(|k| k.to_vec()).collect(),
            op,
            self.out.resp3(),
            self.cmd_id,
        ));
        self.st.blocking.register(w.clone());
        let deadline = (timeout_ms > 0).then(|| std::time::Instant::now() + std::time::Duration::from_millis(timeout_ms as u64));
        self.conn.blocked = Some((w, deadline));
    }

    /// `client-output-buffer-limit normal`'s hard limit in bytes (0: none).
    pub fn obuf_hard(&self) -> usize {
        self.st.config.hot.obuf_hard.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// A key this client's command changed (Redis's signalModifiedKey): clients WATCHing it
    /// fail their EXEC, clients that may cache it are told.
    pub fn touch_key(&mut self, db: usize, key: &[u8]) {
        self.st.watches.touch(db, key);
        if self.st.tracking.active() {
            let id = self.conn.info.id;
            let mut cur = crate::state::tracking::Current { id, pending: &mut self.conn.tracking_pending };
            self.st.tracking.invalidate(&self.st.inboxes, key, Some(&mut cur), id);
        }
    }

    /// FLUSHALL / FLUSHDB: every tracking client is told that every key changed (this client
    /// after its reply).
    pub fn invalidate_all_tracked(&mut self) {
        let mut cur = crate::state::tracking::Current { id: self.conn.info.id, pending: &mut self.conn.tracking_pending };
        self.st.tracking.invalidate_all(&self.st.inboxes, Some(&mut cur));
    }

    /// This command's changes as Redis counts them (`rdb_changes_since_last_save`, save points):
    /// replaces what `store` and `touched` counted. Only for a command that changed something.
    pub fn set_changes(&mut self, n: u64) {
        self.dirty = n;
    }

    /// Counts a change made in place through `entry` (APPEND, INCR, SETRANGE ...).
    #[inline]
    pub fn touched(&mut self) {
        self.dirty += 1;
    }

    /// Appends a custom effect to the journal instead of the command's own argv (SET EX becomes
    /// SET PXAT ...). May be called several times; the default propagation is then skipped.
    pub fn propagate(&mut self, args: &[&[u8]]) {
        self.custom_propagated = true;
        self.emit(self.conn.db, args);
    }
    pub fn propagate_in(&mut self, db: usize, args: &[&[u8]]) {
        self.custom_propagated = true;
        self.emit(db, args);
    }
    /// Sends one effect to the journal (or to the EXEC being captured).
    pub fn emit(&mut self, db: usize, args: &[&[u8]]) {
        if self.propagate_off {
            return;
        }
        match self.capture.as_mut() {
            Some(c) if self.st.journal.enabled() => c.push((db, args.iter().map(|a| a.to_vec()).collect())),
            Some(_) => {}
            None => {
                let end = self.st.journal.append(db, args);
                if end > 0 {
                    self.conn.woff = end;
                }
            }
        }
    }

    pub fn dirty(&self) -> u64 {
        self.dirty
    }

    /// A write with no journal effect (a no-op that still counts as a change is rare; used by
    /// FLUSHALL-style commands that propagate themselves).
    pub fn mark_propagated(&mut self) {
        self.custom_propagated = true;
    }
}

/// Reads an integer argument, replying Redis's error when it is not one.
pub fn arg_i64(ctx: &mut Ctx, a: &[u8]) -> Option<i64> {
    let v = crate::util::parse_i64(a);
    if v.is_none() {
        ctx.out.error(NOT_INT);
    }
    v
}

/// Parses HSCAN/SSCAN's `cursor [MATCH pattern] [COUNT count]` (the cursor at `argv[2]`);
/// returns the pattern (None for all), or None after replying Redis's error.
pub fn scan_options<'a>(ctx: &mut Ctx, argv: &[&'a [u8]]) -> Option<Option<&'a [u8]>> {
    if std::str::from_utf8(argv[2]).ok().and_then(|s| s.parse::<u64>().ok()).is_none() {
        ctx.out.error("ERR invalid cursor");
        return None;
    }
    let mut pat: Option<&[u8]> = None;
    let mut i = 3;
    while i < argv.len() {
        if eq(argv[i], "match") && i + 1 < argv.len() {
            pat = Some(argv[i + 1]).filter(|p| *p != b"*");
        } else if eq(argv[i], "count") && i + 1 < argv.len() {
            match crate::util::parse_i64(argv[i + 1]) {
                None => {
                    ctx.out.error(NOT_INT);
                    return None;
                }
                Some(c) if c < 1 => {
                    ctx.out.error(SYNTAX);
                    return None;
                }
                Some(_) => {}
            }
        } else {
            ctx.out.error(SYNTAX);
            return None;
        }
        i += 2;
    }
    Some(pat)
}

/// Replies a HELP text: one simple string per line.
pub fn reply_help(ctx: &mut Ctx, lines: &[&str]) {
    ctx.out.array(lines.len());
    for l in lines {
        ctx.out.simple(l.as_bytes());
    }
}

/// Case-insensitive comparison of an argument with an ASCII keyword.
#[inline]
/// Redis's allowProtectedAction: an `enable-*-command` / `enable-protected-configs` setting of
/// `yes`, or `local` for a client connected from a loopback address.
pub fn allowed_by(ctx: &Ctx, setting: &str) -> bool {
    match ctx.st.config.get(setting).as_deref() {
        Some("yes") => true,
        Some("local") => ctx.conn.info.addr.parse::<std::net::SocketAddr>().is_ok_and(|a| a.ip().is_loopback()),
        _ => false,
    }
}

pub fn eq(a: &[u8], kw: &str) -> bool {
    a.eq_ignore_ascii_case(kw.as_bytes())
}

/// Parses LMPOP/ZMPOP-style `numkeys key [key ...] <where> [COUNT count]` with numkeys at
/// `argv[nk]`; `side` reads the where-token. Replies Redis's error and returns None when bad.
pub fn mpop_args<'a, 'b>(
    ctx: &mut Ctx,
    argv: &'b [&'a [u8]],
    nk: usize,
    side: fn(&[u8]) -> Option<bool>,
) -> Option<(&'b [&'a [u8]], bool, usize)> {
    let numkeys = match crate::util::parse_i64(argv[nk]) {
        Some(n) if n > 0 => n as usize,
        _ => {
            ctx.out.error("ERR numkeys should be greater than 0");
            return None;
        }
    };
    if numkeys > argv.len().saturating_sub(nk + 2) {
        ctx.out.error(SYNTAX);
        return None;
    }
    let keys = &argv[nk + 1..nk + 1 + numkeys];
    let rest = &argv[nk + 1 + numkeys..];
    let Some(which) = side(rest[0]) else {
        ctx.out.error(SYNTAX);
        return None;
    };
    let mut count = 1usize;
    match rest.len() {
        1 => {}
        3 if eq(rest[1], "count") => match crate::util::parse_i64(rest[2]) {
            Some(n) if n > 0 => count = n as usize,
            _ => {
                ctx.out.error("ERR count should be greater than 0");
                return None;
            }
        },
        _ => {
            ctx.out.error(SYNTAX);
            return None;
        }
    }
    Some((keys, which, count))
}
