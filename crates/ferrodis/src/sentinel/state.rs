//! Sentinel's view of the world, as data: masters, their replicas, the other sentinels, and
//! the failover state of each master. Times are milliseconds (`util::now_ms`), 0 meaning never.

use crate::state::State;
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::Notify;

pub const PING_PERIOD: i64 = 1000;
pub const INFO_PERIOD: i64 = 10_000;
pub const PUBLISH_PERIOD: i64 = 2000;
pub const ASK_PERIOD: i64 = 1000;
pub const DEFAULT_DOWN_AFTER: i64 = 30_000;
pub const DEFAULT_FAILOVER_TIMEOUT: i64 = 180_000;
pub const MAX_DESYNC: i64 = 1000;
pub const ELECTION_TIMEOUT: i64 = 10_000;
pub const SLAVE_RECONF_TIMEOUT: i64 = 10_000;
pub const HELLO_CHANNEL: &str = "__sentinel__:hello";
pub const TILT_TRIGGER: i64 = 2000;
pub const START_JITTER: i64 = 150;
pub const TILT_PERIOD: i64 = 30_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Master,
    Replica,
    Sentinel,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Master => "master",
            Kind::Replica => "slave",
            Kind::Sentinel => "sentinel",
        }
    }
}

/// Instance flags beyond the kind (Redis's SRI_*).
pub mod flag {
    pub const MASTER_DOWN: u32 = 1 << 0;
    pub const FAILOVER_IN_PROGRESS: u32 = 1 << 1;
    pub const PROMOTED: u32 = 1 << 2;
    pub const RECONF_SENT: u32 = 1 << 3;
    pub const RECONF_INPROG: u32 = 1 << 4;
    pub const RECONF_DONE: u32 = 1 << 5;
    pub const FORCE_FAILOVER: u32 = 1 << 6;
    pub const SCRIPT_KILL_SENT: u32 = 1 << 7;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum FailoverState {
    None,
    WaitStart,
    SelectSlave,
    SendSlaveofNoone,
    WaitPromotion,
    ReconfSlaves,
    UpdateConfig,
}

impl FailoverState {
    pub fn name(self) -> &'static str {
        match self {
            FailoverState::None => "none",
            FailoverState::WaitStart => "wait_start",
            FailoverState::SelectSlave => "select_slave",
            FailoverState::SendSlaveofNoone => "send_slaveof_noone",
            FailoverState::WaitPromotion => "wait_promotion",
            FailoverState::ReconfSlaves => "reconf_slaves",
            FailoverState::UpdateConfig => "update_config",
        }
    }
}

/// The state of an instance's connections (Redis's instanceLink).
pub struct Link {
    /// The running command-link task's id (0: none running).
    pub cmd_task: u64,
    pub pubsub_task: u64,
    pub connected: bool,
    pub pc_connected: bool,
    pub cc_conn_time: i64,
    /// When the oldest unanswered PING was sent (0: none outstanding).
    pub act_ping_time: i64,
    pub last_ping_time: i64,
    /// Last reply of any kind to a PING.
    pub last_pong_time: i64,
    /// Last valid reply to a PING (PONG, -LOADING, -MASTERDOWN).
    pub last_avail_time: i64,
    pub pending: usize,
    /// Wakes the command link (queued commands, a question to ask).
    pub wake: Arc<Notify>,
}

impl Link {
    fn new(now: i64) -> Self {
        Link {
            cmd_task: 0,
            pubsub_task: 0,
            connected: false,
            pc_connected: false,
            cc_conn_time: 0,
            act_ping_time: now,
            last_ping_time: 0,
            last_pong_time: now,
            last_avail_time: now,
            pending: 0,
            wake: Arc::new(Notify::new()),
        }
    }
}

/// A monitored master, one of its replicas, or another sentinel.
pub struct Inst {
    pub kind: Kind,
    /// Masters: the configured name; replicas: "ip:port"; sentinels: "ip:port".
    pub name: String,
    pub host: String,
    pub port: u16,
    pub runid: Option<String>,
    pub flags: u32,
    pub link: Link,
    pub s_down_since: i64,
    pub o_down_since: i64,
    pub down_after: i64,
    pub info_refresh: i64,
    pub info: String,
    pub role_reported: Kind,
    pub role_reported_time: i64,
    pub slave_conf_change_time: i64,
    pub last_pub_time: i64,
    // Replicas (from their INFO).
    pub master_link_down_time: i64,
    pub slave_priority: i64,
    pub slave_master_host: Option<String>,
    pub slave_master_port: u16,
    pub slave_master_link_up: bool,
    pub slave_repl_offset: u64,
    pub replica_announced: bool,
    pub slave_reconf_sent_time: i64,
    // Sentinels.
    pub last_hello_time: i64,
    pub last_master_down_reply_time: i64,
    /// Whom this sentinel voted for (sentinels), or whom we voted for (a master's own record).
    pub leader: Option<String>,
    pub leader_epoch: u64,
    /// Ask this sentinel SENTINEL IS-MASTER-DOWN-BY-ADDR (with our run id when electing).
    pub ask: Option<bool>,
    /// Commands to send on the command link, in order (a MULTI ... EXEC block is one entry).
    pub queue: Vec<Vec<Vec<Vec<u8>>>>,
    /// Ask for INFO at the next chance (after SLAVEOF was sent).
    pub info_now: bool,
}

impl Inst {
    pub fn new(kind: Kind, name: String, host: String, port: u16, down_after: i64) -> Self {
        let now = crate::util::now_ms();
        Inst {
            kind,
            name,
            host,
            port,
            runid: None,
            flags: 0,
            link: Link::new(now),
            s_down_since: 0,
            o_down_since: 0,
            down_after,
            info_refresh: 0,
            info: String::new(),
            role_reported: kind,
            role_reported_time: now,
            slave_conf_change_time: now,
            last_pub_time: 0,
            master_link_down_time: 0,
            slave_priority: 100,
            slave_master_host: None,
            slave_master_port: 0,
            slave_master_link_up: false,
            slave_repl_offset: 0,
            replica_announced: true,
            slave_reconf_sent_time: 0,
            // As Redis: creation counts as the last hello (SENTINEL SENTINELS last-hello-message).
            last_hello_time: now,
            last_master_down_reply_time: now,
            leader: None,
            leader_epoch: 0,
            ask: None,
            queue: Vec::new(),
            info_now: false,
        }
    }
    pub fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
    pub fn sdown(&self) -> bool {
        self.s_down_since != 0
    }
    pub fn odown(&self) -> bool {
        self.o_down_since != 0
    }
    /// Not down (subjectively or objectively) for at least `ms`.
    pub fn no_down_for(&self, ms: i64, now: i64) -> bool {
        let since = self.s_down_since.max(self.o_down_since);
        since == 0 || now - since > ms
    }
    pub fn queue_cmd(&mut self, block: Vec<Vec<Vec<u8>>>) {
        self.queue.push(block);
        self.link.wake.notify_one();
    }
}

pub struct Master {
    pub inst: Inst,
    pub quorum: u32,
    pub parallel_syncs: u32,
    pub failover_timeout: i64,
    pub auth_pass: Option<String>,
    pub auth_user: Option<String>,
    pub notification_script: Option<String>,
    pub client_reconfig_script: Option<String>,
    pub reboot_down_after: i64,
    /// `sentinel rename-command`: the command's name in lower case -> (the name as written,
    /// its new name). Names match without regard to case, and are written back as given.
    pub renamed: BTreeMap<String, (String, String)>,
    pub config_epoch: u64,
    pub failover_epoch: u64,
    pub failover_state: FailoverState,
    pub failover_state_change_time: i64,
    pub failover_start_time: i64,
    pub failover_delay_logged: bool,
    /// A random wait (0..START_JITTER ms) after ODOWN before this sentinel starts a failover, so
    /// that sentinels that saw the master fail in the same instant do not split the vote.
    pub start_jitter: i64,
    /// The replica being promoted (its key in `replicas`).
    pub promoted: Option<String>,
    pub replicas: BTreeMap<String, Inst>,
    /// Other sentinels, by "ip:port".
    pub sentinels: BTreeMap<String, Inst>,
}

impl Master {
    pub fn new(name: String, host: String, port: u16, quorum: u32) -> Self {
        Master {
            inst: Inst::new(Kind::Master, name, host, port, DEFAULT_DOWN_AFTER),
            quorum,
            parallel_syncs: 1,
            failover_timeout: DEFAULT_FAILOVER_TIMEOUT,
            auth_pass: None,
            auth_user: None,
            notification_script: None,
            client_reconfig_script: None,
            reboot_down_after: 0,
            renamed: BTreeMap::new(),
            config_epoch: 0,
            failover_epoch: 0,
            failover_state: FailoverState::None,
            failover_state_change_time: 0,
            failover_start_time: 0,
            failover_delay_logged: false,
            start_jitter: 0,
            promoted: None,
            replicas: BTreeMap::new(),
            sentinels: BTreeMap::new(),
        }
    }
    pub fn name(&self) -> &str {
        &self.inst.name
    }
    /// The address clients should use: the promoted replica's once it is promoted.
    pub fn current_addr(&self) -> (String, u16) {
        if self.failover_state >= FailoverState::ReconfSlaves {
            if let Some(p) = self.promoted.as_ref().and_then(|k| self.replicas.get(k)) {
                return (p.host.clone(), p.port);
            }
        }
        (self.inst.host.clone(), self.inst.port)
    }
    /// A command's name as the master's renamed commands say (`sentinel rename-command`).
    pub fn cmd_name(&self, name: &str) -> Vec<u8> {
        self.renamed.get(&name.to_ascii_lowercase()).map(|(_, to)| to.clone()).unwrap_or_else(|| name.to_string()).into_bytes()
    }
    pub fn set_down_after(&mut self, ms: i64) {
        self.inst.down_after = ms;
        for r in self.replicas.values_mut().chain(self.sentinels.values_mut()) {
            r.down_after = ms;
        }
    }
}

/// What is not per master: identity, epoch, global options, and the server's state.
pub struct Env {
    pub myid: String,
    pub myid_generated: bool,
    pub current_epoch: u64,
    pub config_file: String,
    pub port: u16,
    pub announce_ip: String,
    pub announce_port: u16,
    pub resolve_hostnames: bool,
    pub announce_hostnames: bool,
    pub sentinel_user: String,
    pub sentinel_pass: String,
    pub deny_scripts_reconfig: bool,
    /// SENTINEL SIMULATE-FAILURE flags: 1 crash-after-election, 2 crash-after-promotion.
    pub simfailure: u32,
    /// TILT mode (Redis's): the timer saw the clock jump or the process stall, so what it knows
    /// may be stale; it keeps listening but acts on nothing until `tilt_since` + TILT_PERIOD.
    pub tilt_since: i64,
    pub last_tick: i64,
    /// The configuration changed and must be written.
    pub dirty: bool,
    pub scripts_running: Arc<std::sync::atomic::AtomicUsize>,
    pub st: Option<Arc<State>>,
    /// The notification script of the master being worked on (set by `Env::enter`), run for
    /// every warning-level event about it.
    pub notify_script: Option<String>,
}

pub const SIMFAILURE_CRASH_AFTER_ELECTION: u32 = 1;
pub const SIMFAILURE_CRASH_AFTER_PROMOTION: u32 = 2;

impl Env {
    /// Logs an event as Redis Sentinel does and publishes it on the channel named by its type.
    /// Warnings also run the notification script of the master entered last.
    pub fn event(&mut self, level: tracing::Level, ty: &str, msg: &str) {
        if level == tracing::Level::WARN {
            tracing::warn!("{} {}", ty, msg);
        } else {
            tracing::info!("{} {}", ty, msg);
        }
        if let Some(st) = &self.st {
            crate::commands::pubsub::publish_message(st, false, ty.as_bytes(), msg.as_bytes(), crate::util::now_ms());
        }
        if level == tracing::Level::WARN {
            if let Some(script) = self.notify_script.clone() {
                self.run_script(&script, &[ty.to_string(), msg.to_string()]);
            }
        }
    }
    /// Events from now on are about master `m` (its notification script runs for them).
    pub fn enter(&mut self, m: &Master) {
        self.notify_script = m.notification_script.clone();
    }
    /// Runs a script (notification or client reconfiguration) without waiting for it; one that
    /// runs past 60 seconds is killed, as Redis Sentinel does.
    pub fn run_script(&self, path: &str, args: &[String]) {
        let Ok(mut child) = std::process::Command::new(path)
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
        else {
            tracing::warn!("-script-error {} 0 2", path);
            return;
        };
        let running = self.scripts_running.clone();
        running.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = path.to_string();
        std::thread::spawn(move || {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
            loop {
                match child.try_wait() {
                    Ok(Some(status)) => {
                        if !status.success() {
                            tracing::warn!("-script-error {} {} 0", path, status.code().unwrap_or(-1));
                        }
                        break;
                    }
                    Ok(None) if std::time::Instant::now() < deadline => std::thread::sleep(std::time::Duration::from_millis(50)),
                    _ => {
                        let _ = child.kill();
                        let _ = child.wait();
                        tracing::warn!("-script-timeout {} {}", path, child.id());
                        break;
                    }
                }
            }
            running.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        });
    }
}

pub struct Sentinel {
    pub env: Env,
    pub masters: BTreeMap<String, Master>,
}

impl Sentinel {
    pub fn new(config_file: String, port: u16) -> Self {
        Sentinel {
            env: Env {
                myid: String::new(),
                myid_generated: false,
                current_epoch: 0,
                config_file,
                port,
                announce_ip: String::new(),
                announce_port: 0,
                resolve_hostnames: false,
                announce_hostnames: false,
                sentinel_user: String::new(),
                sentinel_pass: String::new(),
                deny_scripts_reconfig: true,
                simfailure: 0,
                dirty: false,
                scripts_running: Default::default(),
                st: None,
                notify_script: None,
                tilt_since: 0,
                last_tick: 0,
            },
            masters: BTreeMap::new(),
        }
    }
    /// The master monitored at this address, if any.
    pub fn master_by_addr(&self, host: &str, port: u16) -> Option<&str> {
        self.masters.values().find(|m| m.inst.host == host && m.inst.port == port).map(|m| m.name())
    }
}

/// An instance as events describe it: `<kind> <name> <ip> <port>`, and for replicas and
/// sentinels ` @ <master name> <master ip> <master port>`.
pub fn describe(i: &Inst, master: Option<&Inst>) -> String {
    let name = match (i.kind, &i.runid) {
        (Kind::Sentinel, Some(r)) => r.as_str(),
        _ => i.name.as_str(),
    };
    match master {
        Some(m) if i.kind != Kind::Master => format!("{} {} {} {} @ {} {} {}", i.kind.name(), name, i.host, i.port, m.name, m.host, m.port),
        _ => format!("{} {} {} {}", i.kind.name(), name, i.host, i.port),
    }
}

/// A new run id: 40 hex characters.
pub fn random_id() -> String {
    use rand::Rng;
    let mut r = rand::thread_rng();
    (0..40).map(|_| std::char::from_digit(r.gen_range(0..16), 16).expect("digit")).collect()
}
