//! `maxmemory` and eviction (Redis's evict.c): before a command runs, if the allocator holds
//! more than `maxmemory`, keys are evicted by the policy until it does not, within a time budget
//! set by `maxmemory-eviction-tenacity`. LRU, LFU and TTL policies sample `maxmemory-samples`
//! keys per database into a pool of the 16 best candidates kept across calls (Redis's
//! approximation); random policies take a random key. An evicted key is deleted under its
//! stripe lock and its `DEL` goes to the journal (replicas and the AOF), with an `evicted`
//! keyspace event. A replica does not evict (`replica-ignore-maxmemory`): it follows its master.

use crate::keyspace::STRIPES;
use crate::state::evict::{Candidate, POOL_SIZE};
use crate::state::State;
use rand::Rng;
use std::sync::atomic::Ordering;

pub const NOEVICTION: u8 = 0;
pub const ALLKEYS_LRU: u8 = 1;
pub const VOLATILE_LRU: u8 = 2;
pub const ALLKEYS_LFU: u8 = 3;
pub const VOLATILE_LFU: u8 = 4;
pub const ALLKEYS_RANDOM: u8 = 5;
pub const VOLATILE_RANDOM: u8 = 6;
pub const VOLATILE_TTL: u8 = 7;

pub const OOM: &str = "OOM command not allowed when used memory > 'maxmemory'.";

/// The time budget of one call, as Redis's evictionTimeLimitUs.
fn time_limit_us(tenacity: i64) -> u64 {
    let t = tenacity.clamp(0, 100);
    if t <= 10 {
        50 * t as u64
    } else if t < 100 {
        (500.0 * 1.15f64.powi((t - 10) as i32)) as u64
    } else {
        u64::MAX
    }
}

/// Makes room if memory is over `maxmemory`. False: still over, and nothing could be evicted
/// (the caller refuses commands that may grow memory with OOM).
#[inline]
pub fn perform(st: &State, now_ms: i64) -> bool {
    let h = &st.config.hot;
    let max = h.maxmemory.load(Ordering::Relaxed);
    if max <= 0 {
        return true;
    }
    // The cached measurement (at most 1 ms old) when clearly under the limit; near it, a fresh
    // one, so that a big write just before is seen by the next command (as Redis measures).
    let used = st.evict.used(false);
    if used <= max as u64 / 10 * 9 || (used <= max as u64 && st.evict.used(true) <= max as u64) {
        return true;
    }
    evict_slow(st, max as u64, now_ms)
}

#[cold]
fn evict_slow(st: &State, max: u64, now_ms: i64) -> bool {
    let h = &st.config.hot;
    if st.repl.is_replica() && h.replica_ignore_maxmemory.load(Ordering::Relaxed) {
        return true;
    }
    let policy = h.maxmemory_policy.load(Ordering::Relaxed);
    if policy == NOEVICTION {
        return false;
    }
    // One evictor at a time; the others go on (the one running makes room for them too).
    let Some(_one) = st.evict.running.try_lock() else { return true };
    // Evicting deletes keys and journals their DELs: a panic here is fatal (crate::crash).
    let _writing = crate::crash::WriteGuard::enter();
    let start = std::time::Instant::now();
    let budget = time_limit_us(h.maxmemory_tenacity.load(Ordering::Relaxed));
    let dbs = nonempty_dbs(st, now_ms);
    // The measurement is at most 1 ms old (jemalloc's statistics cost too much to refresh per
    // key), less an estimate of what evictions freed since: evict until that says we are under,
    // so memory stays within about a millisecond of writes of `maxmemory`.
    loop {
        let Some((db, key)) = pick(st, policy, &dbs, now_ms) else {
            return st.evict.used(true) <= max;
        };
        delete(st, db, &key, now_ms);
        if st.evict.used(false) <= max || start.elapsed().as_micros() as u64 > budget {
            return true;
        }
    }
}

/// The databases holding keys, recomputed at most every 100 ms (it locks every stripe).
fn nonempty_dbs(st: &State, now_ms: i64) -> Vec<usize> {
    let mut c = st.evict.dbs.lock();
    if c.1.is_empty() || now_ms - c.0 >= 100 {
        *c = (now_ms, st.keyspace.nonempty_dbs());
    }
    c.1.clone()
}

/// The score of a sampled entry (higher: evict first), or None if the policy skips it.
fn score(policy: u8, e: &crate::keyspace::Entry, lru_now: u32, now_ms: i64, decay: i64) -> Option<u64> {
    let volatile = matches!(policy, VOLATILE_LRU | VOLATILE_LFU | VOLATILE_RANDOM | VOLATILE_TTL);
    if volatile && e.expire == 0 {
        return None;
    }
    Some(match policy {
        ALLKEYS_LRU | VOLATILE_LRU => lru_now.saturating_sub(e.lru) as u64,
        ALLKEYS_LFU | VOLATILE_LFU => 255 - crate::keyspace::lfu::decayed(e.lru, now_ms, decay).min(255) as u64,
        VOLATILE_TTL => u64::MAX - e.expire.max(0) as u64,
        _ => 0,
    })
}

/// Samples up to `n` entries of `db` from random slot tables, calling `f` with each.
fn sample(st: &State, db: usize, n: usize, mut f: impl FnMut(&crate::keyspace::Entry)) {
    let mut rng = rand::thread_rng();
    let mut got = 0;
    let mut from_stripe = |s: usize, got: &mut usize, rng: &mut rand::rngs::ThreadRng| {
        let g = st.keyspace.lock(s);
        let Some(slots) = g.db_slots(db) else { return };
        let start = rng.gen_range(0..slots.len());
        let Some(t) = (0..slots.len()).map(|i| &slots[(start + i) % slots.len()]).find(|t| !t.is_empty()) else { return };
        let take = (n - *got).min(t.len());
        let skip = rng.gen_range(0..t.len());
        for e in t.iter().skip(skip).chain(t.iter()).take(take) {
            f(e);
            *got += 1;
        }
    };
    for _ in 0..n * 4 {
        if got >= n {
            return;
        }
        from_stripe(rng.gen_range(0..STRIPES), &mut got, &mut rng);
    }
    // A sparse database (a few keys in few of the stripes): random stripes miss them, so walk
    // every stripe from a random one until something is found, as Redis's sampling always
    // finds a key when there is one.
    if got == 0 {
        let first = rng.gen_range(0..STRIPES);
        for i in 0..STRIPES {
            from_stripe((first + i) % STRIPES, &mut got, &mut rng);
            if got > 0 {
                return;
            }
        }
    }
}

/// The next victim by the policy.
fn pick(st: &State, policy: u8, dbs: &[usize], now_ms: i64) -> Option<(usize, Vec<u8>)> {
    if dbs.is_empty() {
        return None;
    }
    let h = &st.config.hot;
    let samples = h.maxmemory_samples.load(Ordering::Relaxed).clamp(1, 64) as usize;
    let decay = h.lfu_decay_time.load(Ordering::Relaxed);
    let lru_now = crate::keyspace::lru_clock();
    if matches!(policy, ALLKEYS_RANDOM | VOLATILE_RANDOM) {
        let mut rng = rand::thread_rng();
        for _ in 0..dbs.len() * 4 {
            let db = dbs[rng.gen_range(0..dbs.len())];
            let mut found = None;
            sample(st, db, samples, |e| {
                if found.is_none() && score(policy, e, lru_now, now_ms, decay).is_some() {
                    found = Some(e.key.to_vec());
                }
            });
            if let Some(k) = found {
                return Some((db, k));
            }
        }
        return None;
    }
    let mut pool = st.evict.pool.lock();
    for &db in dbs {
        sample(st, db, samples, |e| {
            let Some(s) = score(policy, e, lru_now, now_ms, decay) else { return };
            if pool.iter().any(|c| c.db == db && c.key[..] == e.key[..]) {
                return;
            }
            if pool.len() >= POOL_SIZE && pool.first().is_some_and(|c| c.score >= s) {
                return;
            }
            pool.push(Candidate { score: s, db, key: e.key.to_vec() });
            pool.sort_by_key(|c| c.score);
            if pool.len() > POOL_SIZE {
                pool.remove(0);
            }
        });
    }
    // The best candidate still present.
    while let Some(c) = pool.pop() {
        let loc = st.keyspace.locate(&c.key);
        if st.keyspace.lock(loc.stripe).get(c.db, &loc, &c.key).is_some() {
            return Some((c.db, c.key));
        }
    }
    None
}

/// Deletes an evicted key, journaling its DEL under the stripe lock; fires "evicted".
fn delete(st: &State, db: usize, key: &[u8], now_ms: i64) -> bool {
    let loc = st.keyspace.locate(key);
    let removed = {
        let mut g = st.keyspace.lock(loc.stripe);
        let r = g.remove(db, &loc, key);
        if r.is_some() {
            st.journal.append(db, &[b"DEL", key]);
        }
        r
    };
    let Some(e) = removed else { return false };
    // What the allocator gets back, roughly: the entry and what its key and value own.
    st.evict.freed((std::mem::size_of::<crate::keyspace::Entry>() + e.key.heap_size() + e.value.heap_size()) as u64 + 16);
    drop(e);
    if st.watches.any() {
        st.watches.touch(db, key);
    }
    if st.tracking.active() {
        st.tracking.invalidate(&st.inboxes, key, None, 0);
    }
    st.evict.evicted.fetch_add(1, Ordering::Relaxed);
    super::pubsub::keyspace_event(st, db, crate::config::notify::EVICTED, "evicted", key, now_ms);
    true
}

#[cfg(test)]
mod tests {
    #[test]
    fn time_limit_follows_tenacity() {
        assert_eq!(super::time_limit_us(10), 500);
        assert_eq!(super::time_limit_us(0), 0);
        assert!(super::time_limit_us(50) > 500);
        assert_eq!(super::time_limit_us(100), u64::MAX);
    }
}
