//! Counters for INFO. Hot counters are per thread (each thread writes only its own, relaxed) and
//! summed on read; rare events use shared atomics.

use parking_lot::Mutex;
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Per-command counters (INFO commandstats), and the latency histogram (INFO latencystats),
/// allocated on the command's first call while `latency-tracking` is on.
#[derive(Default)]
pub struct CmdStat {
    pub calls: AtomicU64,
    pub usec: AtomicU64,
    pub rejected: AtomicU64,
    pub failed: AtomicU64,
    pub latency: std::sync::OnceLock<Histogram>,
}

impl CmdStat {
    /// Records one call's duration (only the owning thread records).
    #[inline]
    pub fn record_latency(&self, ns: u64) {
        self.latency.get_or_init(Histogram::default).record(ns);
    }
}

/// A latency histogram in nanoseconds, 1 ns to 1 s (longer calls count as 1 s), as Redis's
/// per-command HDR histograms: log-linear buckets, 32 per power of two (within about 3%).
pub struct Histogram {
    counts: Box<[AtomicU64]>,
}

const SUB_BITS: u32 = 5;
const SUB: usize = 1 << SUB_BITS;
const MAX_NS: u64 = 1_000_000_000;

impl Default for Histogram {
    fn default() -> Self {
        Histogram { counts: (0..=Histogram::bucket(MAX_NS)).map(|_| AtomicU64::new(0)).collect() }
    }
}

impl Histogram {
    fn bucket(ns: u64) -> usize {
        let v = ns.clamp(1, MAX_NS);
        if v < SUB as u64 {
            return v as usize;
        }
        let shift = 63 - v.leading_zeros() - SUB_BITS;
        (shift as usize + 1) * SUB + ((v >> shift) as usize - SUB)
    }
    /// The highest value a bucket holds (what HDR's value_at_percentile reports).
    fn highest(b: usize) -> u64 {
        if b < SUB {
            return b as u64;
        }
        let shift = (b / SUB - 1) as u32;
        let sub = (b % SUB + SUB) as u64;
        ((sub + 1) << shift) - 1
    }
    #[inline]
    pub fn record(&self, ns: u64) {
        ThreadStats::add(&self.counts[Self::bucket(ns)], 1);
    }
    pub fn clear(&self) {
        for c in self.counts.iter() {
            c.store(0, Ordering::Relaxed);
        }
    }
    /// Adds this histogram's counts into `into` (per-thread histograms merged for INFO).
    pub fn merge_into(&self, into: &mut Vec<u64>) {
        into.resize(self.counts.len(), 0);
        for (a, c) in into.iter_mut().zip(self.counts.iter()) {
            *a += c.load(Ordering::Relaxed);
        }
    }
    /// LATENCY HISTOGRAM's buckets (HDR's log iteration from 1024 ns, base 2): (microseconds,
    /// calls at or under it), for each power of two where the count grew.
    pub fn log_cdf(counts: &[u64]) -> Vec<(u64, u64)> {
        let total: u64 = counts.iter().sum();
        let mut out = Vec::new();
        let (mut seen, mut b, mut limit) = (0u64, 0usize, 1024u64);
        while seen < total {
            let before = seen;
            while b < counts.len() && Self::highest(b) < limit {
                seen += counts[b];
                b += 1;
            }
            if seen > before {
                out.push((limit / 1000, seen));
            }
            if b >= counts.len() {
                break;
            }
            limit *= 2;
        }
        out
    }
    /// The value at a percentile (0 to 100) of merged counts, in nanoseconds.
    pub fn value_at(counts: &[u64], percentile: f64) -> u64 {
        let total: u64 = counts.iter().sum();
        let target = ((percentile / 100.0 * total as f64).ceil() as u64).clamp(1, total.max(1));
        let mut seen = 0;
        for (b, &c) in counts.iter().enumerate() {
            seen += c;
            if seen >= target && c > 0 {
                return Self::highest(b);
            }
        }
        0
    }
}

/// Counters owned by one worker thread.
pub struct ThreadStats {
    pub commands: AtomicU64,
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub net_in: AtomicU64,
    pub net_out: AtomicU64,
    pub expired: AtomicU64,
    pub cmd: Box<[CmdStat]>,
}

impl ThreadStats {
    pub fn new(ncommands: usize) -> Self {
        ThreadStats {
            commands: AtomicU64::new(0),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            net_in: AtomicU64::new(0),
            net_out: AtomicU64::new(0),
            expired: AtomicU64::new(0),
            cmd: (0..ncommands).map(|_| CmdStat::default()).collect(),
        }
    }
    #[inline]
    pub fn add(c: &AtomicU64, n: u64) {
        // Only this thread writes: a plain load/store pair avoids a locked instruction.
        c.store(c.load(Ordering::Relaxed) + n, Ordering::Relaxed);
    }
}

/// Redis's instantaneous metrics: a sample every 100 ms, the rate averaged over the last 16.
#[derive(Default)]
pub struct Instantaneous {
    last: Option<(std::time::Instant, [u64; 3])>,
    rates: [VecDeque<f64>; 3],
}

impl Instantaneous {
    /// Takes a sample of (commands, bytes in, bytes out) totals.
    pub fn sample(&mut self, totals: [u64; 3]) {
        let now = std::time::Instant::now();
        if let Some((t, prev)) = self.last {
            let dt = now.duration_since(t).as_secs_f64();
            if dt > 0.0 {
                for (i, r) in self.rates.iter_mut().enumerate() {
                    r.push_back(totals[i].saturating_sub(prev[i]) as f64 / dt);
                    if r.len() > 16 {
                        r.pop_front();
                    }
                }
            }
        }
        self.last = Some((now, totals));
    }
    /// (ops/s, input KB/s, output KB/s).
    pub fn rates(&self) -> (u64, f64, f64) {
        let avg = |r: &VecDeque<f64>| if r.is_empty() { 0.0 } else { r.iter().sum::<f64>() / r.len() as f64 };
        (avg(&self.rates[0]) as u64, avg(&self.rates[1]) / 1024.0, avg(&self.rates[2]) / 1024.0)
    }
}

#[derive(Default)]
pub struct Stats {
    pub instantaneous: Mutex<Instantaneous>,
    pub threads: Mutex<Vec<Arc<ThreadStats>>>,
    pub connections_received: AtomicU64,
    pub rejected_connections: AtomicU64,
    pub expired_keys: AtomicU64,
    pub expired_stale_perc: AtomicU64,
    pub expire_cycle_cpu_ms: AtomicU64,
    pub total_error_replies: AtomicU64,
    pub unexpected_error_replies: AtomicU64,
    pub errors: Mutex<BTreeMap<String, u64>>,
    pub client_query_buffer_limit_disconnections: AtomicU64,
    pub client_output_buffer_limit_disconnections: AtomicU64,
}

impl Stats {
    pub fn register_thread(&self, t: Arc<ThreadStats>) {
        self.threads.lock().push(t);
    }
    pub fn sum(&self, f: impl Fn(&ThreadStats) -> &AtomicU64) -> u64 {
        self.threads.lock().iter().map(|t| f(t).load(Ordering::Relaxed)).sum()
    }
    /// Totals for command `id`: (calls, usec, rejected, failed).
    pub fn cmd(&self, id: usize) -> (u64, u64, u64, u64) {
        self.threads.lock().iter().fold((0, 0, 0, 0), |a, t| {
            let c = &t.cmd[id];
            let l = |x: &AtomicU64| x.load(Ordering::Relaxed);
            (a.0 + l(&c.calls), a.1 + l(&c.usec), a.2 + l(&c.rejected), a.3 + l(&c.failed))
        })
    }
    /// Command `id`'s latency histograms of every thread, merged (empty if it has none).
    pub fn latency(&self, id: usize) -> Vec<u64> {
        let mut v = Vec::new();
        for t in self.threads.lock().iter() {
            if let Some(h) = t.cmd[id].latency.get() {
                h.merge_into(&mut v);
            }
        }
        v
    }
    pub fn record_error(&self, prefix: &str) {
        self.total_error_replies.fetch_add(1, Ordering::Relaxed);
        let mut e = self.errors.lock();
        if let Some(v) = e.get_mut(prefix) {
            *v += 1;
        } else if e.len() < 128 {
            e.insert(prefix.to_string(), 1);
        }
    }
    pub fn reset(&self) {
        for t in self.threads.lock().iter() {
            for c in [&t.commands, &t.hits, &t.misses, &t.net_in, &t.net_out, &t.expired] {
                c.store(0, Ordering::Relaxed);
            }
            for c in t.cmd.iter() {
                for x in [&c.calls, &c.usec, &c.rejected, &c.failed] {
                    x.store(0, Ordering::Relaxed);
                }
                if let Some(h) = c.latency.get() {
                    h.clear();
                }
            }
        }
        for c in [&self.connections_received, &self.rejected_connections, &self.expired_keys, &self.total_error_replies] {
            c.store(0, Ordering::Relaxed);
        }
        self.errors.lock().clear();
    }
}

/// One SLOWLOG entry.
pub struct SlowEntry {
    pub id: u64,
    pub time: i64,
    pub usec: i64,
    pub args: Vec<Vec<u8>>,
    pub peer: String,
    pub name: String,
}

#[derive(Default)]
pub struct SlowLog {
    pub next_id: u64,
    pub entries: VecDeque<SlowEntry>,
}

impl SlowLog {
    pub fn push(&mut self, mut e: SlowEntry, max_len: usize) {
        e.id = self.next_id;
        self.next_id += 1;
        self.entries.push_front(e);
        self.entries.truncate(max_len);
    }
}

#[cfg(test)]
mod tests {
    use super::Histogram;

    #[test]
    fn histogram_percentiles_are_within_the_bucket_precision() {
        let h = Histogram::default();
        for ns in 1..=1000u64 {
            h.record(ns * 1000);
        }
        let mut v = Vec::new();
        h.merge_into(&mut v);
        for (p, want) in [(50.0, 500_000u64), (99.0, 990_000), (100.0, 1_000_000)] {
            let got = Histogram::value_at(&v, p);
            assert!(got >= want && (got - want) as f64 <= want as f64 * 0.035, "p{p}: {got} vs {want}");
        }
        assert_eq!(Histogram::value_at(&v, 0.0), Histogram::highest(Histogram::bucket(1000)));
        // Beyond a second counts as a second; nothing is below 1 ns.
        h.clear();
        h.record(5_000_000_000);
        h.record(0);
        let mut v = Vec::new();
        h.merge_into(&mut v);
        assert!(Histogram::value_at(&v, 100.0) >= 1_000_000_000);
        assert_eq!(Histogram::value_at(&v, 10.0), 1);
    }

    #[test]
    fn the_log_cdf_counts_calls_at_or_under_each_power_of_two() {
        let h = Histogram::default();
        for ns in [500, 1500, 1600, 3000, 100_000] {
            h.record(ns);
        }
        let mut v = Vec::new();
        h.merge_into(&mut v);
        assert_eq!(Histogram::log_cdf(&v), vec![(1, 1), (2, 3), (4, 4), (131, 5)]);
        assert!(Histogram::log_cdf(&[]).is_empty());
    }
}
