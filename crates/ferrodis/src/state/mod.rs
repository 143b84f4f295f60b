//! The process-wide state that every command sees: keyspace, journal, configuration, statistics,
//! the client registry and server-wide flags. It sits below the command engine (layer 4) and
//! above the keyspace, journal and config, so that commands never import `server`.

pub mod acl;
pub mod blocking;
pub mod clients;
pub mod cluster;
pub mod evict;
pub mod pubsub;
pub mod repl;
pub mod scripts;
pub mod stats;
pub mod tracking;
pub mod watch;

use crate::config::Config;
use crate::journal::Journal;
use crate::keyspace::Keyspace;
use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

pub use clients::{ClientInfo, Clients};
pub use stats::{SlowLog, Stats, ThreadStats};

/// Why the server is shutting down, and how (SHUTDOWN's flags, or a signal).
#[derive(Clone, Copy, Debug, Default)]
pub struct ShutdownRequest {
    pub nosave: bool,
    pub save: bool,
    pub now: bool,
    pub force: bool,
}

pub struct State {
    pub config: Config,
    pub keyspace: Keyspace,
    pub journal: Journal,
    pub stats: Stats,
    pub clients: Clients,
    pub slowlog: Mutex<SlowLog>,
    pub run_id: String,
    pub start_ms: i64,
    pub tcp_port: u16,
    pub executable: String,
    pub active_expire: AtomicBool,
    /// DEBUG PAUSE-CRON: the periodic tasks (server::cron) skip their turns.
    pub cron_paused: AtomicBool,
    pub lastsave: AtomicI64,
    /// Changes since the last save (`rdb_changes_since_last_save`).
    pub dirty: AtomicU64,
    pub shutdown: Mutex<Option<ShutdownRequest>>,
    pub shutdown_notify: tokio::sync::Notify,
    /// CLIENT PAUSE: until when (ms) and whether only writes are paused.
    pub pause_until: AtomicI64,
    pub pause_writes_only: AtomicBool,
    /// Connections holding a command back for CLIENT PAUSE (INFO counts them in blocked_clients,
    /// as Redis counts its paused clients).
    pub paused_clients: std::sync::atomic::AtomicUsize,
    /// Connections in MONITOR mode: (client id, bounded queue of formatted lines).
    pub monitors: Mutex<Vec<(u64, tokio::sync::mpsc::Sender<Vec<u8>>)>>,
    pub monitor_count: std::sync::atomic::AtomicUsize,
    /// The latency monitor: per event, samples (second, ms) and the all-time maximum.
    pub latency: Mutex<std::collections::BTreeMap<&'static str, LatencyEvent>>,
    /// Clients blocked on keys.
    pub blocking: blocking::Blocking,
    /// WATCHed keys.
    pub watches: watch::Watches,
    /// Pub/Sub subscriptions.
    pub pubsub: pubsub::PubSub,
    /// Every connection's mailbox, by client id.
    pub inboxes: pubsub::Inboxes,
    /// Client-side caching: tracked keys and broadcast prefixes.
    pub tracking: tracking::Tracking,
    /// The Lua script cache.
    pub scripts: scripts::Scripts,
    /// RDB saves: in progress, last result, counters (INFO persistence).
    pub rdb: SaveState,
    /// The append-only file, and its rewrites.
    pub aof: crate::persistence::aof::Aof,
    pub aof_rewrite: SaveState,
    /// Replication: role, ids, the master link, attached replicas.
    pub repl: repl::Repl,
    /// Cluster mode: the slot map dispatch routes keyed commands with.
    pub cluster: cluster::Routing,
    /// maxmemory: used memory as measured, the eviction pool, evicted keys.
    pub evict: evict::Evict,
    /// ACL users, set once the command table exists (`server::run`).
    pub acl: std::sync::OnceLock<acl::Acl>,
    /// The TLS contexts (`tls-*` directives) when TLS is configured; replaced on CONFIG SET.
    pub tls: parking_lot::RwLock<Option<Arc<crate::net::Tls>>>,
    /// This State itself, for work that outlives a command (BGSAVE's thread).
    me: std::sync::Weak<State>,
}

/// A kind of background save (the RDB, or the AOF rewrite): running, last result, counts.
pub struct SaveState {
    /// A save (SAVE or BGSAVE) is running.
    pub in_progress: AtomicBool,
    /// When the running save started (ms), 0 when none.
    pub started_ms: AtomicI64,
    /// BGSAVE SCHEDULE asked for a save while one ran.
    pub scheduled: AtomicBool,
    pub last_ok: AtomicBool,
    /// When the last save attempt ended (ms); failed save points wait before retrying.
    pub last_try_ms: AtomicI64,
    pub last_time_sec: AtomicI64,
    /// Saves done (`rdb_saves`, `aof_rewrites`).
    pub saves: AtomicU64,
    pub last_load_loaded: AtomicU64,
    pub last_load_expired: AtomicU64,
}

impl Default for SaveState {
    fn default() -> Self {
        SaveState {
            in_progress: AtomicBool::new(false),
            started_ms: AtomicI64::new(0),
            scheduled: AtomicBool::new(false),
            last_ok: AtomicBool::new(true),
            last_try_ms: AtomicI64::new(0),
            last_time_sec: AtomicI64::new(-1),
            saves: AtomicU64::new(0),
            last_load_loaded: AtomicU64::new(0),
            last_load_expired: AtomicU64::new(0),
        }
    }
}

/// One latency monitor event (Redis keeps the last 160 samples, one per second at most).
#[derive(Default)]
pub struct LatencyEvent {
    pub samples: std::collections::VecDeque<(i64, u64)>,
    pub max: u64,
}

const LATENCY_SAMPLES: usize = 160;

impl State {
    /// The TLS context for outbound links when `directive` (`tls-replication`, `tls-cluster`)
    /// is yes; None for plain TCP.
    pub fn tls_if(&self, directive: &str) -> Option<Arc<crate::net::Tls>> {
        match self.config.get(directive).as_deref() == Some("yes") {
            true => self.tls.read().clone(),
            false => None,
        }
    }

    /// `acl-pubsub-default` into the ACL registry (what new users get for channels).
    pub fn sync_acl_pubsub_default(&self) {
        if let Some(acl) = self.acl.get() {
            let all = self.config.get("acl-pubsub-default").as_deref() == Some("allchannels");
            acl.all_channels_default.store(all, Ordering::Relaxed);
        }
    }
    /// `requirepass` is the default user's password (Redis: resetpass, then >pass, or nopass
    /// when empty); connections then start unauthenticated unless the default user needs none.
    pub fn sync_requirepass(&self) {
        let Some(acl) = self.acl.get() else { return };
        let pass = self.config.get("requirepass").unwrap_or_default();
        let cell = acl.default_user();
        let mut u = cell.user.read().clone();
        let _ = acl.apply(&mut u, "resetpass");
        let _ = acl.apply(&mut u, &if pass.is_empty() { "nopass".to_string() } else { format!(">{pass}") });
        cell.set(u);
        self.sync_default_user();
    }
    /// Whether new connections must authenticate (the default user is off or has a password).
    pub fn sync_default_user(&self) {
        let Some(acl) = self.acl.get() else { return };
        let cell = acl.default_user();
        let u = cell.user.read();
        self.config.hot.requirepass_set.store(!(u.enabled && u.nopass), Ordering::Relaxed);
    }

    pub fn new(config: Config, tcp_port: u16) -> Arc<State> {
        let dbs = config.get_int("databases").max(1) as usize;
        let backlog = config.get_int("repl-backlog-size").max(1) as usize;
        let aof = crate::persistence::aof::Aof::new(
            std::path::PathBuf::from(config.get("appenddirname").unwrap_or_else(|| "appendonlydir".into())),
            config.get("appendfilename").unwrap_or_else(|| "appendonly.aof".into()),
        );
        let st = Arc::new_cyclic(|me| State {
            me: me.clone(),
            config,
            keyspace: Keyspace::new(dbs),
            journal: Journal::new(backlog),
            stats: Stats::default(),
            clients: Clients::default(),
            slowlog: Mutex::new(SlowLog::default()),
            run_id: crate::util::random_hex40(),
            start_ms: crate::util::now_ms(),
            tcp_port,
            executable: std::env::current_exe().map(|p| p.display().to_string()).unwrap_or_default(),
            active_expire: AtomicBool::new(true),
            cron_paused: AtomicBool::new(false),
            lastsave: AtomicI64::new(crate::util::now_ms() / 1000),
            dirty: AtomicU64::new(0),
            shutdown: Mutex::new(None),
            shutdown_notify: tokio::sync::Notify::new(),
            pause_until: AtomicI64::new(0),
            pause_writes_only: AtomicBool::new(false),
            paused_clients: Default::default(),
            monitors: Mutex::new(Vec::new()),
            monitor_count: std::sync::atomic::AtomicUsize::new(0),
            latency: Mutex::new(Default::default()),
            blocking: Default::default(),
            watches: Default::default(),
            pubsub: Default::default(),
            inboxes: Default::default(),
            tracking: Default::default(),
            scripts: Default::default(),
            rdb: Default::default(),
            aof,
            aof_rewrite: Default::default(),
            repl: Default::default(),
            cluster: Default::default(),
            evict: Default::default(),
            acl: std::sync::OnceLock::new(),
            tls: parking_lot::RwLock::new(None),
        });
        st.apply_replication_limits();
        st
    }
    /// Applies `repl-backlog-size` and `client-output-buffer-limit replica` (hard) to the journal,
    /// and with `sync-replicas` keeps the stream (writes must be journaled to be acknowledged).
    pub fn apply_replication_limits(&self) {
        self.journal.set_capacity(self.config.get_int("repl-backlog-size").max(1) as usize);
        self.journal.reader_limit.store(self.config.hot.replica_obuf_hard.load(Ordering::Relaxed) as u64, Ordering::Relaxed);
        if self.config.hot.sync_replicas.load(Ordering::Relaxed) > 0 {
            self.journal.enable();
        }
    }
    /// A counted reference to this State (None only while it is being dropped).
    pub fn arc(&self) -> Option<Arc<State>> {
        self.me.upgrade()
    }
    /// Asks the server to shut down (SHUTDOWN, SIGTERM, SIGINT).
    pub fn request_shutdown(&self, req: ShutdownRequest) {
        *self.shutdown.lock() = Some(req);
        self.shutdown_notify.notify_waiters();
        self.shutdown_notify.notify_one();
    }
    pub fn uptime_s(&self) -> i64 {
        (crate::util::now_ms() - self.start_ms) / 1000
    }
    /// Sends one command line to every MONITOR client; a monitor whose queue is full is dropped
    /// (it reads too slowly), so memory stays bounded.
    pub fn feed_monitors(&self, db: usize, addr: &str, argv: &[&[u8]]) {
        let us = crate::util::now_us();
        let mut line = format!("+{}.{:06} [{} {}]", us / 1_000_000, us % 1_000_000, db, addr).into_bytes();
        for a in argv {
            line.push(b' ');
            repr(&mut line, a);
        }
        line.extend_from_slice(b"\r\n");
        let mut m = self.monitors.lock();
        m.retain(|(id, tx)| {
            let ok = tx.try_send(line.clone()).is_ok();
            if !ok {
                self.clients.kill(*id);
            }
            ok
        });
        self.monitor_count.store(m.len(), std::sync::atomic::Ordering::Relaxed);
    }
    /// Records a latency sample (Redis's latencyAddSample): samples in the same second merge
    /// into their maximum.
    pub fn latency_add(&self, event: &'static str, ms: u64, now_s: i64) {
        let mut l = self.latency.lock();
        let ev = l.entry(event).or_default();
        ev.max = ev.max.max(ms);
        match ev.samples.back_mut() {
            Some((t, v)) if *t == now_s => *v = (*v).max(ms),
            _ => {
                ev.samples.push_back((now_s, ms));
                if ev.samples.len() > LATENCY_SAMPLES {
                    ev.samples.pop_front();
                }
            }
        }
    }

    /// Disconnects a client (CLIENT KILL, idle timeout, a subscriber past its output limit): by
    /// the time this returns it is gone from the client list, the counts of INFO clients, the
    /// blocked clients, the subscribers and the monitors; its connection task ends at its next
    /// step. False when no such client is connected.
    pub fn kill_client(&self, id: u64) -> bool {
        if !self.clients.kill(id) {
            return false;
        }
        if let Some(w) = self.blocking.of_client(id) {
            if w.claim() {
                self.blocking.remove(&w);
            }
        }
        self.pubsub.drop_client(id);
        self.remove_monitor(id);
        true
    }
    pub fn remove_monitor(&self, id: u64) {
        let mut m = self.monitors.lock();
        m.retain(|(i, _)| *i != id);
        self.monitor_count.store(m.len(), std::sync::atomic::Ordering::Relaxed);
    }

    pub fn paused(&self, write: bool, now: i64) -> bool {
        let until = self.pause_until.load(Ordering::Relaxed);
        until > now && (write || !self.pause_writes_only.load(Ordering::Relaxed))
    }
}

/// Redis's `sdscatrepr`: a quoted string with C-style escapes.
pub fn repr(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'"');
    for &c in s {
        match c {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'"' => out.extend_from_slice(b"\\\""),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            7 => out.extend_from_slice(b"\\a"),
            8 => out.extend_from_slice(b"\\b"),
            c if c.is_ascii_graphic() || c == b' ' => out.push(c),
            c => out.extend_from_slice(format!("\\x{:02x}", c).as_bytes()),
        }
    }
    out.push(b'"');
}
