//! Counters for INFO. Hot counters are per thread (each thread writes only its own, relaxed) and
//! summed on read; rare events use shared atomics.

use parking_lot::Mutex;
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Per-command counters (INFO commandstats).
#[derive(Default)]
pub struct CmdStat {
    pub calls: AtomicU64,
    pub usec: AtomicU64,
    pub rejected: AtomicU64,
    pub failed: AtomicU64,
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
