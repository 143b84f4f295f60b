//! Replication state (Redis's `server.master*`, `server.replid*`, `server.slaves`): this server's
//! role, its replication ids, the link to its master and the replicas attached to it. Plain data
//! that INFO, ROLE and dispatch read; `crate::replication` does the work.

use crate::journal::Reader;
use parking_lot::Mutex;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

/// PSYNC2's two histories: the current id, and the one this server followed before its last
/// promotion (valid up to `second_offset`, Redis's `second_repl_offset`, -1 when none).
#[derive(Clone, Debug)]
pub struct Ids {
    pub replid: String,
    pub replid2: String,
    pub second_offset: i64,
}

/// The replica side's link state (Redis's `repl_state`, as ROLE and INFO name it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkState {
    Connect,
    Connecting,
    Handshake,
    Transfer,
    Connected,
}

impl LinkState {
    /// ROLE's words.
    pub fn role_name(self) -> &'static str {
        match self {
            LinkState::Connect => "connect",
            LinkState::Connecting => "connecting",
            LinkState::Handshake => "handshake",
            LinkState::Transfer => "sync",
            LinkState::Connected => "connected",
        }
    }
}

/// Where this replica's master is and how the link stands.
#[derive(Clone, Debug)]
pub struct MasterLink {
    pub host: String,
    pub port: u16,
    pub state: LinkState,
    /// Last time anything arrived from the master (ms).
    pub last_io_ms: i64,
    /// When the link went down (ms), 0 when it never came up.
    pub down_since_ms: i64,
    /// During a full resync: the payload's size (-1 when EOF-marked) and bytes read so far.
    pub sync_total: i64,
    pub sync_read: i64,
    /// A sync with this master's history has completed (our offset is worth a PSYNC).
    pub synced: bool,
}

/// A replica attached to this server.
#[derive(Debug)]
pub struct ReplicaLink {
    pub client_id: u64,
    pub ip: String,
    /// REPLCONF listening-port.
    pub port: u16,
    /// "wait_bgsave", "send_bulk" or "online".
    pub state: Mutex<&'static str>,
    /// The offset the replica last acknowledged, and when (ms).
    pub ack: AtomicU64,
    pub last_ack_ms: AtomicI64,
    pub reader: Mutex<Option<Arc<Reader>>>,
}

pub const FAILOVER_NONE: u8 = 0;
pub const FAILOVER_WAITING: u8 = 1;
pub const FAILOVER_IN_PROGRESS: u8 = 2;

pub struct Repl {
    replica: AtomicBool,
    /// Our offset belongs to `ids.replid`'s history (worth a PSYNC with it).
    pub history: AtomicBool,
    pub ids: Mutex<Ids>,
    pub master: Mutex<Option<MasterLink>>,
    /// Bumped whenever the master changes: a link task whose generation is stale ends.
    pub link_gen: AtomicU64,
    pub replicas: Mutex<Vec<Arc<ReplicaLink>>>,
    pub sync_full: AtomicU64,
    pub sync_partial_ok: AtomicU64,
    pub sync_partial_err: AtomicU64,
    /// Woken when a replica acknowledges an offset (WAIT, synchronous acknowledgement).
    pub acked: tokio::sync::Notify,
    /// A REPLCONF GETACK is in the stream and no acknowledgement has arrived since.
    pub getack_pending: AtomicBool,
    /// A full resync's payload is being loaded: clients get -LOADING meanwhile.
    pub loading: AtomicBool,
    /// FAILOVER: `FAILOVER_*`, and FAILOVER ABORT's request.
    pub failover_state: std::sync::atomic::AtomicU8,
    pub failover_abort: AtomicBool,
    /// Since when (ms) no replica is attached: `repl-backlog-ttl` frees the backlog after it.
    pub no_replicas_since: AtomicI64,
}

impl Default for Repl {
    fn default() -> Self {
        Repl {
            replica: AtomicBool::new(false),
            history: AtomicBool::new(false),
            ids: Mutex::new(Ids { replid: crate::util::random_hex40(), replid2: "0".repeat(40), second_offset: -1 }),
            master: Mutex::new(None),
            link_gen: AtomicU64::new(0),
            replicas: Mutex::new(Vec::new()),
            sync_full: AtomicU64::new(0),
            sync_partial_ok: AtomicU64::new(0),
            sync_partial_err: AtomicU64::new(0),
            acked: tokio::sync::Notify::new(),
            getack_pending: AtomicBool::new(false),
            loading: AtomicBool::new(false),
            failover_state: Default::default(),
            failover_abort: AtomicBool::new(false),
            no_replicas_since: AtomicI64::new(crate::util::now_ms()),
        }
    }
}

impl Repl {
    #[inline]
    pub fn is_replica(&self) -> bool {
        self.replica.load(Ordering::Relaxed)
    }
    pub fn set_replica(&self, on: bool) {
        self.replica.store(on, Ordering::Release);
    }
    /// The link is up (the master's stream is being applied).
    pub fn link_up(&self) -> bool {
        self.master.lock().as_ref().is_some_and(|m| m.state == LinkState::Connected)
    }
    /// Starts a new history after a promotion (Redis's shiftReplicationId): the old id stays
    /// valid up to `offset`, so the old master's other replicas continue with a partial resync.
    pub fn shift_ids(&self, offset: u64) {
        let mut ids = self.ids.lock();
        ids.replid2 = std::mem::replace(&mut ids.replid, crate::util::random_hex40());
        ids.second_offset = offset as i64 + 1;
    }
    /// Continues the history an RDB file was saved at (its `repl-id` and `repl-offset`): the
    /// stream resumes at `offset` with an empty backlog, so replicas (or, on a replica, its
    /// master) can continue with a partial resync from exactly there.
    pub fn restore_history(&self, journal: &crate::journal::Journal, replid: String, offset: u64) {
        self.ids.lock().replid = replid;
        journal.reset(offset);
        journal.enable();
        self.history.store(true, Ordering::Release);
    }
    /// Replicas (online) whose acknowledged offset has reached `target`.
    pub fn acked(&self, target: u64) -> usize {
        self.replicas.lock().iter().filter(|r| *r.state.lock() == "online" && r.ack.load(Ordering::Acquire) >= target).count()
    }
    /// Online replicas whose last acknowledgement is at most `max_lag` seconds old
    /// (`min-replicas-max-lag`).
    pub fn good_replicas(&self, max_lag: i64, now_ms: i64) -> usize {
        self.replicas
            .lock()
            .iter()
            .filter(|r| *r.state.lock() == "online" && (now_ms - r.last_ack_ms.load(Ordering::Relaxed)) / 1000 <= max_lag)
            .count()
    }
    pub fn remove_replica(&self, client_id: u64) {
        let mut r = self.replicas.lock();
        r.retain(|x| x.client_id != client_id);
        if r.is_empty() {
            self.no_replicas_since.store(crate::util::now_ms(), Ordering::Relaxed);
        }
    }

    /// INFO's "# Replication" section, with Redis 7.0's fields in Redis's order.
    pub fn info(&self, journal: &crate::journal::Journal, config: &crate::config::Config) -> String {
        let mut s = String::new();
        let now = crate::util::now_ms();
        let offset = journal.offset();
        if let Some(m) = self.master.lock().clone() {
            let up = m.state == LinkState::Connected;
            let _ = write!(
                s,
                "role:slave\r\nmaster_host:{}\r\nmaster_port:{}\r\nmaster_link_status:{}\r\nmaster_last_io_seconds_ago:{}\r\nmaster_sync_in_progress:{}\r\nslave_read_repl_offset:{}\r\nslave_repl_offset:{}\r\n",
                m.host,
                m.port,
                if up { "up" } else { "down" },
                if up { (now - m.last_io_ms) / 1000 } else { -1 },
                (m.state == LinkState::Transfer) as i32,
                offset,
                offset,
            );
            if m.state == LinkState::Transfer {
                let left = if m.sync_total >= 0 { m.sync_total - m.sync_read } else { 0 };
                let perc = if m.sync_total > 0 { m.sync_read as f64 * 100.0 / m.sync_total as f64 } else { 0.0 };
                let _ = write!(
                    s,
                    "master_sync_total_bytes:{}\r\nmaster_sync_read_bytes:{}\r\nmaster_sync_left_bytes:{}\r\nmaster_sync_perc:{:.2}\r\nmaster_sync_last_io_seconds_ago:{}\r\n",
                    m.sync_total,
                    m.sync_read,
                    left,
                    perc,
                    (now - m.last_io_ms) / 1000
                );
            }
            if !up {
                let since = if m.down_since_ms > 0 { (now - m.down_since_ms) / 1000 } else { -1 };
                let _ = write!(s, "master_link_down_since_seconds:{}\r\n", since);
            }
            let _ = write!(
                s,
                "slave_priority:{}\r\nslave_read_only:{}\r\nreplica_announced:{}\r\n",
                config.get_int("replica-priority"),
                (config.get("replica-read-only").as_deref() != Some("no")) as i32,
                (config.get("replica-announced").as_deref() != Some("no")) as i32,
            );
        } else {
            s.push_str("role:master\r\n");
        }
        let replicas = self.replicas.lock().clone();
        let _ = write!(s, "connected_slaves:{}\r\n", replicas.len());
        let (min_write, max_lag) = (config.get_int("min-replicas-to-write"), config.get_int("min-replicas-max-lag"));
        if min_write > 0 && max_lag > 0 {
            let _ = write!(s, "min_slaves_good_slaves:{}\r\n", self.good_replicas(max_lag, now));
        }
        for (i, r) in replicas.iter().enumerate() {
            let _ = write!(
                s,
                "slave{}:ip={},port={},state={},offset={},lag={}\r\n",
                i,
                r.ip,
                r.port,
                r.state.lock(),
                r.ack.load(Ordering::Relaxed),
                (now - r.last_ack_ms.load(Ordering::Relaxed)) / 1000
            );
        }
        let ids = self.ids.lock().clone();
        let (start, len, cap) = journal.backlog();
        let active = journal.active();
        let _ = write!(
            s,
            "master_failover_state:{}\r\nmaster_replid:{}\r\nmaster_replid2:{}\r\nmaster_repl_offset:{}\r\nsecond_repl_offset:{}\r\nrepl_backlog_active:{}\r\nrepl_backlog_size:{}\r\nrepl_backlog_first_byte_offset:{}\r\nrepl_backlog_histlen:{}\r\n",
            match self.failover_state.load(Ordering::Relaxed) {
                FAILOVER_WAITING => "waiting-for-sync",
                FAILOVER_IN_PROGRESS => "failover-in-progress",
                _ => "no-failover",
            },
            ids.replid,
            ids.replid2,
            offset,
            ids.second_offset,
            active as i32,
            cap,
            if active { start + 1 } else { 0 },
            len,
        );
        s
    }
}
