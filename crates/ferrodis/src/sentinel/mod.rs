//! Sentinel mode (Redis Sentinel 7.0): monitors masters and their replicas, agrees with other
//! sentinels that a master is down, elects a leader for the epoch, fails the master over to the
//! best replica, re-points the others, and tells clients (SENTINEL GET-MASTER-ADDR-BY-NAME,
//! events on its Pub/Sub channels).
//!
//! - `state`: the instances (masters, their replicas and the other sentinels), as data.
//! - `config`: the `sentinel ...` directives, read at start and rewritten on every change.
//! - `link`: the connections to instances (a command link and, to masters and replicas, a
//!   Pub/Sub link on `__sentinel__:hello`), as tasks on the sentinel thread.
//! - `monitor`: the timer (SDOWN, ODOWN, elections, the failover state machine) and what the
//!   links' replies do (INFO, hello messages, votes).
//! - `commands`: SENTINEL, and the INFO / ROLE / PUBLISH of sentinel mode.
//!
//! A family (layer 5), beside `replication`: `server` builds sentinel mode's command table from
//! it and starts it; it reaches the rest of the server only through `State` (Pub/Sub, INFO).

pub mod commands;
pub mod config;
pub mod link;
pub mod monitor;
pub mod state;

use crate::state::State;
use parking_lot::Mutex;
use state::Sentinel;
use std::sync::{Arc, OnceLock};

/// The sentinel of this process (sentinel mode only).
static SENTINEL: OnceLock<Arc<Shared>> = OnceLock::new();

/// What the sentinel thread, the links and the command handlers share.
pub struct Shared {
    pub st: Arc<State>,
    pub s: Mutex<Sentinel>,
}

pub fn shared() -> Option<&'static Arc<Shared>> {
    SENTINEL.get()
}

/// Reads the `sentinel` directives (Redis's errors, with the line) and checks that the config
/// file can be rewritten; called before the server starts. Err: the text to print, exit 1.
pub fn prepare(cfg: &crate::config::Config) -> Result<Sentinel, String> {
    let Some(file) = cfg.file.clone() else {
        return Err("Sentinel needs config file on disk to save state. Exiting...\n".into());
    };
    if let Err(e) = std::fs::OpenOptions::new().append(true).open(&file) {
        return Err(format!("Sentinel config file {} is not writable: {}. Exiting...\n", file, e));
    }
    // With tls-replication, the other sentinels are told the TLS port (Redis's hello).
    let port = match (cfg.get("tls-replication").as_deref(), cfg.get_int("tls-port")) {
        (Some("yes"), tp) if tp != 0 => tp,
        _ => cfg.get_int("port"),
    };
    let mut s = Sentinel::new(file, port as u16);
    config::load(&mut s, &cfg.sentinel_lines)?;
    Ok(s)
}

/// Starts the sentinel: its thread (timer and links), after the listeners are up.
pub fn start(st: Arc<State>, s: Sentinel) {
    let sh = Arc::new(Shared { st, s: Mutex::new(s) });
    let _ = SENTINEL.set(sh.clone());
    {
        let mut s = sh.s.lock();
        if s.env.myid_generated {
            s.env.dirty = true;
        }
        monitor::flush_config(&mut s);
        tracing::warn!("Sentinel ID is {}", s.env.myid);
        let names: Vec<String> = s.masters.keys().cloned().collect();
        for n in names {
            let Sentinel { env, masters } = &mut *s;
            let m = &masters[&n];
            env.enter(m);
            let d = format!("{} quorum {}", state::describe(&m.inst, None), m.quorum);
            env.event(tracing::Level::WARN, "+monitor", &d);
        }
    }
    std::thread::Builder::new()
        .name("sentinel".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("sentinel runtime");
            let local = tokio::task::LocalSet::new();
            local.block_on(&rt, monitor::run(sh));
        })
        .expect("spawn the sentinel thread");
}
