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
        let d = self.dbs[db].as_mut()?;
        d.slots[loc.slot / STRIPES].table.find_mut(loc.hash, |e| e.key.as_slice() == key).map(|b| &mut **b)
    }
    /// Finds a key, removing it instead when it has expired at `now` (one hash lookup).
    #[inline]
    pub fn find_live(&mut self, db: usize, loc: &KeyLoc, key: &[u8], now: i64) -> Found<'_> {
        let Some(d) = self.dbs[db].as_mut() else { return Found::Missing };
        let slot = &mut d.slots[loc.slot / STRIPES];
        match slot.table.find_entry(loc.hash, |e| e.key.as_slice() == key) {
            Err(_) => Found::Missing,
            Ok(o) if o.get().expired(now) => {
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
        self.dbs[db].take()
    }
    pub fn swap_dbs(&mut self, a: usize, b: usize) {
        self.dbs.swap(a, b);
    }
    /// Every entry of database `db` in this stripe, slot by slot.
    pub fn entries(&self, db: usize) -> impl Iterator<Item = &Entry> {
        self.dbs.get(db).and_then(|d| d.as_ref()).into_iter().flat_map(|d| d.slots.iter().flat_map(|s| s.iter()))
    }
    pub fn databases(&self) -> usize {
        self.dbs.len()
    }
}

/// Receives each stripe of a point-in-time snapshot, under that stripe's lock, before anything
/// changes it (core design section 4). Implemented by `persistence`; the keyspace only calls it.
pub trait SnapshotSink: Send + Sync {
    fn stripe(&self, index: usize, stripe: &Stripe);
}

/// The snapshot in progress, if any: which stripes it has seen.
struct SnapshotHook {
    active: std::sync::atomic::AtomicBool,
    done: Box<[std::sync::atomic::AtomicBool]>,
    sink: parking_lot::RwLock<Option<std::sync::Arc<dyn SnapshotSink>>>,
}

impl SnapshotHook {
    /// Hands the stripe to the snapshot if it has not seen it yet (the caller holds its lock).
    #[cold]
    fn visit(&self, index: usize, stripe: &Stripe) {
        use std::sync::atomic::Ordering;
        if self.done[index].load(Ordering::Acquire) {
            return;
        }
        let sink = self.sink.read().clone();
        if let Some(sink) = sink {
            sink.stripe(index, stripe);
        }
        self.done[index].store(true, Ordering::Release);
    }
}

pub type Hasher = foldhash::quality::RandomState;

/// Cache-line padding so that two stripes never share a line.
#[repr(align(128))]
pub struct Padded<T>(pub T);

pub struct Keyspace {
    stripes: Box<[Padded<Mutex<Stripe>>]>,
    pub databases: usize,
    pub hasher: Hasher,
    snapshot: SnapshotHook,
}

impl Keyspace {
    pub fn new(databases: usize) -> Self {
        let stripes = (0..STRIPES).map(|_| Padded(Mutex::new(Stripe { dbs: (0..databases).map(|_| None).collect() }))).collect();
        let snapshot = SnapshotHook {
            active: Default::default(),
            done: (0..STRIPES).map(|_| Default::default()).collect(),
            sink: parking_lot::RwLock::new(None),
        };
        Keyspace { stripes, databases, hasher: Hasher::default(), snapshot }
    }
    #[inline]
    pub fn locate(&self, key: &[u8]) -> KeyLoc {
        let slot = key_slot(key);
        KeyLoc { slot, stripe: slot % STRIPES, hash: self.hasher.hash_one(key) }
    }
    /// Locks a stripe. While a snapshot runs, a stripe it has not seen yet goes to it first, so
    /// that the snapshot holds the stripe as it was when the snapshot began.
    #[inline]
    pub fn lock(&self, stripe: usize) -> MutexGuard<'_, Stripe> {
        let g = self.stripes[stripe].0.lock();
        // (Relaxed suffices: the flag is set while every stripe lock is held, and this lock's
        // acquisition orders it.)
        if self.snapshot.active.load(std::sync::atomic::Ordering::Relaxed) {
            self.snapshot.visit(stripe, &g);
        }
        g
    }
    /// Locks every stripe, in order (FLUSHALL, SWAPDB, DEBUG RELOAD).
    pub fn lock_all(&self) -> Vec<MutexGuard<'_, Stripe>> {
        (0..STRIPES).map(|i| self.lock(i)).collect()
    }

    /// Starts a point-in-time snapshot: under every stripe lock, `at_start` sees the whole
    /// keyspace (to record counts and the journal offset) and `sink` is installed; from then on
    /// each stripe goes to `sink` once, before anything changes it. False when one is running.
    pub fn begin_snapshot(&self, sink: std::sync::Arc<dyn SnapshotSink>, at_start: impl FnOnce(&[MutexGuard<'_, Stripe>])) -> bool {
        use std::sync::atomic::Ordering;
        let guards: Vec<_> = self.stripes.iter().map(|s| s.0.lock()).collect();
        if self.snapshot.active.load(Ordering::Relaxed) {
            return false;
        }
        for d in self.snapshot.done.iter() {
            d.store(false, Ordering::Relaxed);
        }
        *self.snapshot.sink.write() = Some(sink);
        at_start(&guards);
        self.snapshot.active.store(true, Ordering::Release);
        true
    }

    /// Visits every stripe the snapshot has not seen (locking each in turn), then ends it.
    pub fn finish_snapshot(&self, mut between: impl FnMut(usize)) {
        for i in 0..STRIPES {
            drop(self.lock(i));
            between(i);
        }
        let guards: Vec<_> = self.stripes.iter().map(|s| s.0.lock()).collect();
        self.snapshot.active.store(false, std::sync::atomic::Ordering::Release);
        *self.snapshot.sink.write() = None;
        drop(guards);
    }
    /// Number of keys in a database (a sum of counters).
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
