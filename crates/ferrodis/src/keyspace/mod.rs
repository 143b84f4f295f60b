//! The keyspace: per database, 16384 slot tables (allocated lazily), grouped into lock stripes.
//! A slot table owns its keys, values and expiry times and keeps its counts.
//!
//! Slot `s` lives in stripe `s % STRIPES`, at index `s / STRIPES` inside it. A command locks the
//! stripes of its keys in ascending order (see `commands::dispatch`), so multi-key commands cannot
//! deadlock; all-keyspace operations take stripes one by one, or all of them in order.
//!
//! Architecture invariant: the keyspace never touches the network and never formats replies; it
//! knows values (`types`) and nothing above them.
// PERF-CRITICAL

pub mod latch;

use crate::types::{SmallBytes, Value};
use crate::util::key_slot;
use hashbrown::HashTable;
use parking_lot::{Mutex, MutexGuard};
use std::hash::BuildHasher;

pub const SLOTS: usize = 16384;
pub const STRIPES: usize = 256;
const PER_STRIPE: usize = SLOTS / STRIPES;

/// One key and what it holds. `expire` is a Unix time in ms, 0 when the key has none.
#[derive(Debug, Clone)]
pub struct Entry {
    pub key: SmallBytes,
    pub value: Value,
    pub expire: i64,
    /// Last access, in seconds of the server's LRU clock (for `OBJECT IDLETIME`).
    pub lru: u32,
}

impl Entry {
    #[inline]
    pub fn expired(&self, now_ms: i64) -> bool {
        self.expire != 0 && self.expire <= now_ms
    }
}

/// One hash slot of one database. Entries are boxed: slot tables are small and hashbrown keeps
/// them between 7/16 and 7/8 full, so an empty bucket costs 8 bytes instead of a whole entry
/// (at 1M small keys this is 84 bytes per key instead of 145; Redis uses 99).
#[derive(Default)]
pub struct SlotTable {
    table: HashTable<Box<Entry>>,
    volatile: u32,
}

impl SlotTable {
    pub fn len(&self) -> usize {
        self.table.len()
    }
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }
    pub fn volatile(&self) -> usize {
        self.volatile as usize
    }
    pub fn iter(&self) -> impl Iterator<Item = &Entry> {
        self.table.iter().map(|b| &**b)
    }
    /// Removes every entry for which `f` returns true; returns the removed entries.
    pub fn extract_if(&mut self, mut f: impl FnMut(&Entry) -> bool) -> Vec<Entry> {
        let mut out = Vec::new();
        self.table.retain(|e| {
            if f(e) {
                out.push((**e).clone());
                false
            } else {
                true
            }
        });
        for e in &out {
            if e.expire != 0 {
                self.volatile -= 1;
            }
        }
        out
    }
}

/// One database's share of a stripe: PER_STRIPE slot tables and their counts.
pub struct StripeDb {
    slots: Box<[SlotTable]>,
    keys: usize,
    volatile: usize,
}

impl StripeDb {
    fn new() -> Self {
        StripeDb { slots: (0..PER_STRIPE).map(|_| SlotTable::default()).collect(), keys: 0, volatile: 0 }
    }
}

/// Keeps a slot's and a stripe-database's counts of keys with an expiry in step with one key
/// gaining or losing its expiry.
fn track_volatile(slot: &mut u32, db: &mut usize, was: bool, is: bool) {
    match (was, is) {
        (false, true) => {
            *slot += 1;
            *db += 1;
        }
        (true, false) => {
            *slot -= 1;
            *db -= 1;
        }
        _ => {}
    }
}

/// A lock stripe: for each database, the slot tables of the slots that map to this stripe.
pub struct Stripe {
    dbs: Vec<Option<Box<StripeDb>>>,
    /// The snapshot in progress, while it has not seen every slot of this stripe.
    snap: Option<Box<StripeSnap>>,
}

/// A running snapshot's view of one stripe: which (database, slot) tables it has been handed.
struct StripeSnap {
    sink: std::sync::Arc<dyn SnapshotSink>,
    index: usize,
    /// Per database, one bit per slot of this stripe (PER_STRIPE = 64).
    done: Vec<u64>,
}

/// What a lookup does with a key past its expiry time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expiry {
    /// Delete it and report it expired (a master).
    Delete,
    /// Report it missing and keep it (a replica's clients: the master's DEL will come).
    Hide,
    /// Report it live (a replica applying its master's stream).
    Ignore,
}

/// What [`Stripe::find_live`] found.
pub enum Found<'a> {
    Live(&'a mut Entry),
    /// The key had expired and was removed (the caller journals its DEL).
    Expired(Entry),
    Missing,
}

/// Where a key lives: computed once per key per command.
#[derive(Clone, Copy, Debug)]
pub struct KeyLoc {
    pub slot: usize,
    pub stripe: usize,
    pub hash: u64,
}

impl Stripe {
    /// Before a slot table changes while a snapshot runs: hands the table as it is to the
    /// snapshot, once (core design section 4: a write to a slot not yet serialized serializes it
    /// first). One branch when no snapshot runs.
    #[inline]
    fn before_write(&mut self, db: usize, idx: usize) {
        if self.snap.is_some() {
            self.snapshot_slot(db, idx);
        }
    }

    #[cold]
    fn snapshot_slot(&mut self, db: usize, idx: usize) {
        let Stripe { dbs, snap } = self;
        let Some(snap) = snap.as_mut() else { return };
        if snap.done[db] & (1 << idx) != 0 {
            return;
        }
        if let Some(d) = &dbs[db] {
            snap.sink.slot(db, idx * STRIPES + snap.index, &d.slots[idx]);
        }
        snap.done[db] |= 1 << idx;
    }

    /// Hands every slot table of `db` the snapshot has not seen yet.
    fn snapshot_db(&mut self, db: usize) {
        if self.snap.is_some() {
            for idx in 0..PER_STRIPE {
                self.snapshot_slot(db, idx);
            }
        }
    }

    fn db_mut(&mut self, db: usize) -> &mut StripeDb {
        self.dbs[db].get_or_insert_with(|| Box::new(StripeDb::new()))
    }
    #[inline]
    pub fn get(&self, db: usize, loc: &KeyLoc, key: &[u8]) -> Option<&Entry> {
        let d = self.dbs[db].as_ref()?;
        d.slots[loc.slot / STRIPES].table.find(loc.hash, |e| e.key.as_slice() == key).map(|b| &**b)
    }
    #[inline]
    pub fn get_mut(&mut self, db: usize, loc: &KeyLoc, key: &[u8]) -> Option<&mut Entry> {
        self.before_write(db, loc.slot / STRIPES);
        let d = self.dbs[db].as_mut()?;
        d.slots[loc.slot / STRIPES].table.find_mut(loc.hash, |e| e.key.as_slice() == key).map(|b| &mut **b)
    }
    /// Finds a key, removing it instead when it has expired at `now` (one hash lookup).
    #[inline]
    pub fn find_live(&mut self, db: usize, loc: &KeyLoc, key: &[u8], now: i64, expiry: Expiry) -> Found<'_> {
        self.before_write(db, loc.slot / STRIPES);
        let Some(d) = self.dbs[db].as_mut() else { return Found::Missing };
        let slot = &mut d.slots[loc.slot / STRIPES];
        match slot.table.find_entry(loc.hash, |e| e.key.as_slice() == key) {
            Err(_) => Found::Missing,
            Ok(o) if expiry != Expiry::Ignore && o.get().expired(now) => {
                if expiry == Expiry::Hide {
                    return Found::Missing;
                }
                let e = *o.remove().0;
                d.keys -= 1;
                slot.volatile -= 1;
                d.volatile -= 1;
                Found::Expired(e)
            }
            Ok(o) => Found::Live(o.into_mut()),
        }
    }

    /// Inserts or replaces the key's entry; returns the previous entry.
    #[inline]
    pub fn insert(&mut self, db: usize, loc: &KeyLoc, entry: Entry, hasher: &Hasher) -> Option<Entry> {
        self.before_write(db, loc.slot / STRIPES);
        let d = self.db_mut(db);
        let new_volatile = entry.expire != 0;
        let slot = &mut d.slots[loc.slot / STRIPES];
        let key = entry.key.clone();
        let old = match slot.table.entry(loc.hash, |e| e.key.as_slice() == key.as_slice(), |e| hasher.hash_one(e.key.as_slice())) {
            // Overwrites reuse the entry's allocation.
            hashbrown::hash_table::Entry::Occupied(mut o) => Some(std::mem::replace(&mut **o.get_mut(), entry)),
            hashbrown::hash_table::Entry::Vacant(v) => {
                v.insert(Box::new(entry));
                None
            }
        };
        let old_volatile = old.as_ref().is_some_and(|e| e.expire != 0);
        if old.is_none() {
            d.keys += 1;
        }
        track_volatile(&mut slot.volatile, &mut d.volatile, old_volatile, new_volatile);
        old
    }
    /// Removes the key; returns its entry.
    #[inline]
    pub fn remove(&mut self, db: usize, loc: &KeyLoc, key: &[u8]) -> Option<Entry> {
        self.before_write(db, loc.slot / STRIPES);
        let d = self.dbs[db].as_mut()?;
        let slot = &mut d.slots[loc.slot / STRIPES];
        let e = *slot.table.find_entry(loc.hash, |e| e.key.as_slice() == key).ok()?.remove().0;
        d.keys -= 1;
        if e.expire != 0 {
            slot.volatile -= 1;
            d.volatile -= 1;
        }
        Some(e)
    }
    /// Sets or clears (0) the expiry of an existing key. Returns false if the key is absent.
    pub fn set_expire(&mut self, db: usize, loc: &KeyLoc, key: &[u8], at: i64) -> bool {
        self.before_write(db, loc.slot / STRIPES);
        let Some(d) = self.dbs[db].as_mut() else {
            return false;
        };
        let slot = &mut d.slots[loc.slot / STRIPES];
        let Some(e) = slot.table.find_mut(loc.hash, |e| e.key.as_slice() == key) else {
            return false;
        };
        let was = e.expire != 0;
        e.expire = at;
        track_volatile(&mut slot.volatile, &mut d.volatile, was, at != 0);
        true
    }
    /// The slot table of `slot` in `db`, if allocated.
    pub fn slot(&self, db: usize, slot: usize) -> Option<&SlotTable> {
        self.dbs[db].as_ref().map(|d| &d.slots[slot / STRIPES])
    }
    /// Mutable slot table; the caller must keep counts right through [`Stripe::fix_counts`].
    pub fn slot_mut(&mut self, db: usize, slot: usize) -> Option<&mut SlotTable> {
        self.before_write(db, slot / STRIPES);
        self.dbs[db].as_mut().map(|d| &mut d.slots[slot / STRIPES])
    }
    /// Recomputes the stripe's per-database counters (after bulk edits through `slot_mut`).
    pub fn fix_counts(&mut self, db: usize) {
        if let Some(d) = self.dbs[db].as_mut() {
            d.keys = d.slots.iter().map(|s| s.len()).sum();
            d.volatile = d.slots.iter().map(|s| s.volatile()).sum();
        }
    }
    pub fn keys(&self, db: usize) -> usize {
        self.dbs[db].as_ref().map_or(0, |d| d.keys)
    }
    pub fn volatile(&self, db: usize) -> usize {
        self.dbs[db].as_ref().map_or(0, |d| d.volatile)
    }
    /// Drops a database's share; returns it so that the caller may free it elsewhere (ASYNC).
    pub fn take_db(&mut self, db: usize) -> Option<Box<StripeDb>> {
        self.snapshot_db(db);
        self.dbs[db].take()
    }
    pub fn swap_dbs(&mut self, a: usize, b: usize) {
        self.snapshot_db(a);
        self.snapshot_db(b);
        self.dbs.swap(a, b);
    }
    /// Every entry of database `db` in this stripe, slot by slot.
    pub fn entries(&self, db: usize) -> impl Iterator<Item = &Entry> {
        self.dbs.get(db).and_then(|d| d.as_ref()).into_iter().flat_map(|d| d.slots.iter().flat_map(|s| s.iter()))
    }
    /// This stripe's slot tables of a database (eviction samples them).
    pub fn db_slots(&self, db: usize) -> Option<&[SlotTable]> {
        self.dbs[db].as_ref().map(|d| &d.slots[..])
    }
    pub fn databases(&self) -> usize {
        self.dbs.len()
    }
}

/// Receives the slot tables of a point-in-time snapshot, each once and before anything changes
/// it, under its stripe's lock (core design section 4). Implemented by `persistence`; the
/// keyspace only calls it.
pub trait SnapshotSink: Send + Sync {
    fn slot(&self, db: usize, slot: usize, table: &SlotTable);
}

pub type Hasher = foldhash::quality::RandomState;

/// Cache-line padding so that two stripes never share a line.
#[repr(align(128))]
pub struct Padded<T>(pub T);

pub struct Keyspace {
    stripes: Box<[Padded<Mutex<Stripe>>]>,
    /// Per hash slot, the pipeline group holding it (pipeline atomicity).
    pub latches: latch::Latches,
    pub databases: usize,
    pub hasher: Hasher,
    /// A snapshot is running (one at a time).
    snapshot_active: std::sync::atomic::AtomicBool,
}

impl Keyspace {
    pub fn new(databases: usize) -> Self {
        let stripes =
            (0..STRIPES).map(|_| Padded(Mutex::new(Stripe { dbs: (0..databases).map(|_| None).collect(), snap: None }))).collect();
        Keyspace { stripes, latches: Default::default(), databases, hasher: Hasher::default(), snapshot_active: Default::default() }
    }
    #[inline]
    pub fn locate(&self, key: &[u8]) -> KeyLoc {
        let slot = key_slot(key);
        KeyLoc { slot, stripe: slot % STRIPES, hash: self.hasher.hash_one(key) }
    }
    #[inline]
    pub fn lock(&self, stripe: usize) -> MutexGuard<'_, Stripe> {
        self.stripes[stripe].0.lock()
    }
    /// Locks one stripe for a caller that keeps the lock order itself (`Ctx`).
    #[inline]
    pub fn lock_ordered(&self, stripe: usize) -> MutexGuard<'_, Stripe> {
        self.stripes[stripe].0.lock()
    }
    /// Locks one stripe if nobody holds it.
    #[inline]
    pub fn try_lock(&self, stripe: usize) -> Option<MutexGuard<'_, Stripe>> {
        self.stripes[stripe].0.try_lock()
    }
    /// Locks every stripe, in order (FLUSHALL, SWAPDB, DEBUG RELOAD).
    pub fn lock_all(&self) -> Vec<MutexGuard<'_, Stripe>> {
        self.stripes.iter().map(|s| s.0.lock()).collect()
    }

    /// Starts a point-in-time snapshot: under every stripe lock, `at_start` sees the whole
    /// keyspace (to record counts and the journal offset) and each stripe gets the snapshot's
    /// state. From then on a slot table goes to `sink` before its first change (`Stripe`'s
    /// mutating methods check), so a command pays for at most the slots it writes. False when a
    /// snapshot is running.
    pub fn begin_snapshot(&self, sink: std::sync::Arc<dyn SnapshotSink>, at_start: impl FnOnce(&[MutexGuard<'_, Stripe>])) -> bool {
        use std::sync::atomic::Ordering;
        let mut guards = self.lock_all();
        if self.snapshot_active.load(Ordering::Relaxed) {
            return false;
        }
        for (index, g) in guards.iter_mut().enumerate() {
            g.snap = Some(Box::new(StripeSnap { sink: sink.clone(), index, done: vec![0; self.databases] }));
        }
        at_start(&guards);
        self.snapshot_active.store(true, Ordering::Relaxed);
        true
    }

    /// Hands the sink every slot table it has not seen, one slot per lock hold so that clients
    /// wait at most for one slot (`between` runs after each stripe, with no lock held), then
    /// ends the snapshot.
    pub fn finish_snapshot(&self, mut between: impl FnMut(usize)) {
        for i in 0..STRIPES {
            for idx in 0..PER_STRIPE {
                let mut g = self.lock(i);
                for db in 0..self.databases {
                    g.before_write(db, idx);
                }
            }
            self.lock(i).snap = None;
            between(i);
        }
        self.snapshot_active.store(false, std::sync::atomic::Ordering::Relaxed);
    }
    /// Number of keys in a database (a sum of counters).
    /// The databases holding keys (one pass over the stripes).
    pub fn nonempty_dbs(&self) -> Vec<usize> {
        let mut seen = vec![false; self.databases];
        for s in self.stripes.iter() {
            let g = s.0.lock();
            for (db, v) in seen.iter_mut().enumerate() {
                *v |= g.keys(db) > 0;
            }
        }
        seen.iter().enumerate().filter(|(_, v)| **v).map(|(d, _)| d).collect()
    }
    pub fn dbsize(&self, db: usize) -> usize {
        self.stripes.iter().map(|s| s.0.lock().keys(db)).sum()
    }
    /// Keys and keys with an expiry in a database.
    pub fn db_counts(&self, db: usize) -> (usize, usize) {
        self.stripes.iter().fold((0, 0), |(k, v), s| {
            let g = s.0.lock();
            (k + g.keys(db), v + g.volatile(db))
        })
    }
}

/// LFU as Redis keeps it in the 24-bit LRU field: 16 bits of "last decrement time" in minutes,
/// 8 bits of a logarithmic access counter (used when `maxmemory-policy` is an LFU policy).
pub mod lfu {
    pub const INIT_VAL: u32 = 5;

    fn minutes(now_ms: i64) -> u32 {
        ((now_ms / 1000 / 60) & 0xFFFF) as u32
    }
    /// The field of a new key.
    pub fn new(now_ms: i64) -> u32 {
        (minutes(now_ms) << 8) | INIT_VAL
    }
    /// The counter after decay (what OBJECT FREQ reports).
    pub fn decayed(field: u32, now_ms: i64, decay_time: i64) -> u32 {
        let ldt = field >> 8;
        let counter = field & 255;
        let now = minutes(now_ms);
        let elapsed = if now >= ldt { now - ldt } else { 65535 - ldt + now };
        let periods = if decay_time > 0 { elapsed / decay_time as u32 } else { 0 };
        counter.saturating_sub(periods)
    }
    /// An access: decay, then a probabilistic logarithmic increment.
    pub fn touch(field: u32, now_ms: i64, log_factor: i64, decay_time: i64, r: f64) -> u32 {
        let mut c = decayed(field, now_ms, decay_time);
        if c < 255 {
            let base = c.saturating_sub(INIT_VAL) as f64;
            if r < 1.0 / (base * log_factor as f64 + 1.0) {
                c += 1;
            }
        }
        (minutes(now_ms) << 8) | c
    }
}

/// Seconds clock for LRU idle times.
pub fn lru_clock() -> u32 {
    (crate::util::now_ms() / 1000) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::StrValue;

    fn entry(k: &[u8], v: &[u8], exp: i64) -> Entry {
        Entry { key: SmallBytes::new(k), value: Value::Str(StrValue::from_bytes(v)), expire: exp, lru: 0 }
    }

    #[test]
    fn insert_get_remove_and_counts() {
        let ks = Keyspace::new(16);
        let loc = ks.locate(b"foo");
        assert_eq!(loc.slot, 12182);
        {
            let mut s = ks.lock(loc.stripe);
            assert!(s.insert(0, &loc, entry(b"foo", b"bar", 0), &ks.hasher).is_none());
            assert!(s.insert(0, &loc, entry(b"foo", b"baz", 5), &ks.hasher).is_some());
            assert_eq!(s.volatile(0), 1);
            assert!(s.get(0, &loc, b"foo").is_some());
            assert!(s.get(1, &loc, b"foo").is_none());
        }
        assert_eq!(ks.dbsize(0), 1);
        assert_eq!(ks.db_counts(0), (1, 1));
        {
            let mut s = ks.lock(loc.stripe);
            assert!(s.set_expire(0, &loc, b"foo", 0));
            assert_eq!(s.volatile(0), 0);
            assert!(s.remove(0, &loc, b"foo").is_some());
        }
        assert_eq!(ks.dbsize(0), 0);
    }

    #[test]
    fn lfu_counts_logarithmically_and_decays() {
        let now = 1_000_000_000_000;
        let mut f = lfu::new(now);
        assert_eq!(lfu::decayed(f, now, 1), 5);
        for i in 0..1000 {
            f = lfu::touch(f, now, 10, 1, (i % 100) as f64 / 100.0);
        }
        let c = lfu::decayed(f, now, 1);
        assert!(c > 5 && c < 60, "{c}");
        assert_eq!(lfu::decayed(f, now + 10 * 60_000, 1), c - 10);
    }

    #[test]
    fn entry_is_compact() {
        assert!(std::mem::size_of::<Entry>() <= 64, "{}", std::mem::size_of::<Entry>());
    }
}
