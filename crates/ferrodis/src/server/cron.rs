//! The server cron (Redis's serverCron), on the acceptor thread: the active expiry cycle and
//! idle-client timeouts, `hz` times a second.

use crate::commands::expire::ActiveExpire;
use crate::state::State;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub async fn run(st: Arc<State>) {
    let mut expire = ActiveExpire::default();
    let mut last_timeout_check = Instant::now();
    let mut last_sample = Instant::now();
    loop {
        let hz = st.config.hot.hz.load(Ordering::Relaxed).clamp(1, 500) as u64;
        let period = Duration::from_millis(1000 / hz);
        tokio::time::sleep(period).await;
        if st.active_expire.load(Ordering::Relaxed) {
            // Redis's slow cycle: at most 25% of the cron period.
            let t0 = Instant::now();
            expire.cycle(&st, period / 4);
            st.stats.expire_cycle_cpu_ms.fetch_add(t0.elapsed().as_millis() as u64, Ordering::Relaxed);
        }
        if last_sample.elapsed() >= Duration::from_millis(100) {
            last_sample = Instant::now();
            let s = &st.stats;
            let totals = [s.sum(|t| &t.commands), s.sum(|t| &t.net_in), s.sum(|t| &t.net_out)];
            s.instantaneous.lock().sample(totals);
        }
        if last_timeout_check.elapsed() >= Duration::from_secs(1) {
            last_timeout_check = Instant::now();
            let timeout = st.config.hot.timeout_s.load(Ordering::Relaxed);
            if timeout > 0 {
                let now = crate::util::now_ms();
                for c in st.clients.all() {
                    if now - c.last_interaction_ms.load(Ordering::Relaxed) > timeout * 1000 {
                        tracing::debug!("Closing idle client");
                        st.clients.kill(c.id);
                    }
                }
            }
        }
    }
}
