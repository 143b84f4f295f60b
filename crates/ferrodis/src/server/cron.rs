//! The server cron (Redis's serverCron), on its own thread: the active expiry cycle and
//! idle-client timeouts, `hz` times a second; RDB save points once a second. It waits for
//! stripe locks (a running script holds them all), so it must never share a thread with the
//! acceptor or the shutdown path: those stay responsive while a script runs, as in Redis.

use crate::commands::expire::ActiveExpire;
use crate::state::State;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Starts the cron thread; it runs until the process exits.
pub fn start(st: Arc<State>) {
    std::thread::Builder::new().name("cron".into()).spawn(move || run(st)).expect("spawn the cron thread");
}

fn run(st: Arc<State>) {
    let mut expire = ActiveExpire::default();
    let mut last_timeout_check = Instant::now();
    let mut last_sample = Instant::now();
    let mut last_ping = Instant::now();
    loop {
        let hz = st.config.hot.hz.load(Ordering::Relaxed).clamp(1, 500) as u64;
        let period = Duration::from_millis(1000 / hz);
        std::thread::sleep(period);
        if st.cron_paused.load(Ordering::Relaxed) {
            continue;
        }
        // A replica waits for its master's DELs (Redis's rule).
        if st.active_expire.load(Ordering::Relaxed) && !st.repl.is_replica() {
            // Redis's slow cycle: at most 25% of the cron period.
            let t0 = Instant::now();
            expire.cycle(&st, period / 4);
            let ms = t0.elapsed().as_millis() as u64;
            st.stats.expire_cycle_cpu_ms.fetch_add(ms, Ordering::Relaxed);
            // The latency monitor's "expire-cycle" event (a big key freed, say).
            let threshold = st.config.hot.latency_threshold.load(Ordering::Relaxed);
            if threshold > 0 && ms as i64 >= threshold {
                st.latency_add("expire-cycle", ms, crate::util::now_ms() / 1000);
            }
        }
        // Client-side caching: the tracking table within tracking-table-max-keys.
        if st.tracking.clients() > 0 {
            st.tracking.limit(&st.inboxes, st.config.hot.tracking_table_max_keys.load(Ordering::Relaxed));
        }
        if last_sample.elapsed() >= Duration::from_millis(100) {
            last_sample = Instant::now();
            clients_limit(&st);
            let s = &st.stats;
            let totals = [s.sum(|t| &t.commands), s.sum(|t| &t.net_in), s.sum(|t| &t.net_out)];
            s.instantaneous.lock().sample(totals);
        }
        if last_timeout_check.elapsed() >= Duration::from_secs(1) {
            last_timeout_check = Instant::now();
            save_points(&st);
            replication_cron(&st, &mut last_ping);
            let timeout = st.config.hot.timeout_s.load(Ordering::Relaxed);
            if timeout > 0 {
                let now = crate::util::now_ms();
                for c in st.clients.all() {
                    if now - c.last_interaction_ms.load(Ordering::Relaxed) > timeout * 1000 {
                        tracing::debug!("Closing idle client");
                        st.kill_client(c.id);
                    }
                }
            }
        }
    }
}

/// `maxmemory-clients` in bytes: a size, or a percentage of maxmemory; and eviction if the
/// limit came down below what clients hold.
fn clients_limit(st: &State) {
    let v = st.config.get("maxmemory-clients").unwrap_or_default();
    let limit = match v.strip_suffix('%') {
        Some(p) => (st.config.get_int("maxmemory").max(0) as f64 * p.parse::<f64>().unwrap_or(0.0) / 100.0) as usize,
        None => v.parse::<usize>().unwrap_or(0),
    };
    st.clients.mem_limit.store(limit, Ordering::Relaxed);
    if limit > 0 && st.clients.mem_total.load(Ordering::Relaxed) > limit {
        st.clients.evict();
    }
}

/// Redis's `save <seconds> <changes>` points: a background save when any point is reached (after
/// a failed save, not before 5 seconds have passed, as Redis's CONFIG_BGSAVE_RETRY_DELAY).
fn save_points(st: &Arc<State>) {
    if st.rdb.in_progress.load(Ordering::Relaxed) {
        return;
    }
    let now = crate::util::now_ms();
    let dirty = st.dirty.load(Ordering::Relaxed);
    let since = now / 1000 - st.lastsave.load(Ordering::Relaxed);
    let retry_ok = st.rdb.last_ok.load(Ordering::Relaxed) || now - st.rdb.last_try_ms.load(Ordering::Relaxed) > 5000;
    let points = st.config.get("save").unwrap_or_default();
    let nums: Vec<i64> = points.split_whitespace().filter_map(|p| p.parse().ok()).collect();
    for p in nums.chunks_exact(2) {
        let (secs, changes) = (p[0], p[1]);
        if dirty as i64 >= changes && since > secs && retry_ok {
            tracing::info!("{} changes in {} seconds. Saving...", changes, secs);
            let _ = crate::commands::persistence::start_bgsave(st);
            return;
        }
    }
}

/// The master's PING into the stream every `repl-ping-replica-period` seconds while replicas
/// are attached (it keeps their `repl-timeout` from firing on an idle master).
fn replication_cron(st: &State, last_ping: &mut Instant) {
    let period = st.config.get_int("repl-ping-replica-period").max(1) as u64;
    if last_ping.elapsed() >= Duration::from_secs(period) {
        *last_ping = Instant::now();
        if !st.repl.is_replica() && !st.repl.replicas.lock().is_empty() {
            st.journal.append_nodb(&[b"PING"]);
        }
    }
    // repl-backlog-ttl: a master without replicas for that long frees its backlog, and takes a
    // new replication id so that nobody can continue from the freed history (as Redis does).
    let ttl = st.config.get_int("repl-backlog-ttl");
    let alone_ms = crate::util::now_ms() - st.repl.no_replicas_since.load(Ordering::Relaxed);
    // (Not under sync-replicas: its writes must stay journaled to be acknowledged.)
    let sync = st.config.hot.sync_replicas.load(Ordering::Relaxed) > 0;
    if ttl > 0
        && !sync
        && alone_ms > ttl * 1000
        && !st.repl.is_replica()
        && st.repl.history.load(Ordering::Relaxed)
        && st.repl.replicas.lock().is_empty()
    {
        tracing::info!("Replication backlog freed after {} seconds without connected replicas.", ttl);
        st.journal.free_backlog();
        let mut ids = st.repl.ids.lock();
        ids.replid = crate::util::random_hex40();
        ids.replid2 = "0".repeat(40);
        ids.second_offset = -1;
        drop(ids);
        st.repl.history.store(false, Ordering::Release);
    }
}
