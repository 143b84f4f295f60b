//! WATCHed keys (Redis's multi.c touchWatchedKey): per (db, key), the flags of the clients that
//! watch it. A write to a watched key (by any client, by expiry, FLUSHALL, SWAPDB, RENAME, ...)
//! sets those flags, and a flagged client's EXEC fails with a null reply.
//!
//! Writers check `any()` first (one atomic load), so with nobody watching this costs nothing.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

/// A client's "a watched key was touched" flag (Redis's CLIENT_DIRTY_CAS).
pub type DirtyFlag = Arc<AtomicBool>;

/// (db, key) → the flags of the clients watching it.
type WatchMap = HashMap<(usize, Vec<u8>), Vec<DirtyFlag>>;

#[derive(Default)]
pub struct Watches {
    count: AtomicUsize,
    map: Mutex<WatchMap>,
}

impl Watches {
    #[inline]
    pub fn any(&self) -> bool {
        self.count.load(Ordering::Acquire) > 0
    }
    /// Registers a client's watch on a key (once per key).
    pub fn watch(&self, db: usize, key: &[u8], flag: &DirtyFlag) -> bool {
        let mut m = self.map.lock();
        let v = m.entry((db, key.to_vec())).or_default();
        if v.iter().any(|f| Arc::ptr_eq(f, flag)) {
            return false;
        }
        v.push(flag.clone());
        self.count.fetch_add(1, Ordering::AcqRel);
        true
    }
    /// Drops a client's watches on these keys.
    pub fn unwatch(&self, keys: &[(usize, Vec<u8>)], flag: &DirtyFlag) {
        let mut m = self.map.lock();
        for k in keys {
            if let Some(v) = m.get_mut(k) {
                let before = v.len();
                v.retain(|f| !Arc::ptr_eq(f, flag));
                self.count.fetch_sub(before - v.len(), Ordering::AcqRel);
                if v.is_empty() {
                    m.remove(k);
                }
            }
        }
    }
    /// A key was modified: flag every client watching it.
    pub fn touch(&self, db: usize, key: &[u8]) {
        if !self.any() {
            return;
        }
        if let Some(v) = self.map.lock().get(&(db, key.to_vec())) {
            for f in v {
                f.store(true, Ordering::Release);
            }
        }
    }
    /// The watched keys of a database (FLUSHDB, FLUSHALL and SWAPDB touch those that exist).
    pub fn keys_in_db(&self, db: usize) -> Vec<Vec<u8>> {
        if !self.any() {
            return Vec::new();
        }
        self.map.lock().keys().filter(|(d, _)| *d == db).map(|(_, k)| k.clone()).collect()
    }
}
