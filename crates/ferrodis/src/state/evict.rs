//! What eviction keeps between commands: the allocator's measurement of used memory (refreshed
//! at most every millisecond on the command path), Redis's eviction pool of the best candidates
//! seen so far, and the count of evicted keys.

use parking_lot::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// A key that may be evicted; a higher score is a better victim.
#[derive(Clone, Debug)]
pub struct Candidate {
    pub score: u64,
    pub db: usize,
    pub key: Vec<u8>,
}

pub const POOL_SIZE: usize = 16;

#[derive(Default)]
pub struct Evict {
    used: AtomicU64,
    measured_us: AtomicI64,
    /// Bytes freed by evictions since the last measurement (subtracted from it), so that
    /// commands between two measurements do not evict again what was already made room for.
    credit: AtomicU64,
    pub pool: Mutex<Vec<Candidate>>,
    /// One thread evicts at a time; the others wait for it.
    pub running: Mutex<()>,
    pub evicted: AtomicU64,
    /// (when, which databases held keys) for the sampler.
    pub dbs: Mutex<(i64, Vec<usize>)>,
}

impl Evict {
    /// Bytes the allocator holds for us (jemalloc's `stats.allocated`), measured at most 1 ms
    /// ago unless `fresh`, less what evictions freed since.
    pub fn used(&self, fresh: bool) -> u64 {
        let now = crate::util::now_us();
        if fresh || now - self.measured_us.load(Ordering::Relaxed) >= 1000 {
            use tikv_jemalloc_ctl::{epoch, stats};
            let _ = epoch::advance();
            let v = stats::allocated::read().unwrap_or(0) as u64;
            self.used.store(v, Ordering::Relaxed);
            self.credit.store(0, Ordering::Relaxed);
            self.measured_us.store(now, Ordering::Relaxed);
            return v;
        }
        self.used.load(Ordering::Relaxed).saturating_sub(self.credit.load(Ordering::Relaxed))
    }
    /// An eviction freed about `bytes`.
    pub fn freed(&self, bytes: u64) {
        self.credit.fetch_add(bytes, Ordering::Relaxed);
    }
}
