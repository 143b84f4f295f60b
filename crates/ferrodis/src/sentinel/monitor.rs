//! The sentinel's brain (Redis's sentinel.c timer and reply callbacks): subjective and
//! objective down, the leader election for an epoch, the failover state machine, what INFO
//! replies and hello messages teach, and the config rewrite after every change.
//! Everything here runs under the sentinel lock, called by the timer or by a link's reply.

use super::link::{command_link, pubsub_link, InstRef, Params};
use super::state::*;
use super::Shared;
use resp::Reply;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tracing::Level;

const WARN: Level = Level::WARN;
const NOTICE: Level = Level::INFO;

static NEXT_TASK: AtomicU64 = AtomicU64::new(1);

/// A request a link sends, and what its reply means.
pub enum Req {
    Ping(Vec<Vec<Vec<u8>>>),
    Info(Vec<Vec<Vec<u8>>>),
    Hello(Vec<Vec<Vec<u8>>>),
    Ask(Vec<Vec<Vec<u8>>>),
    Raw(Vec<Vec<Vec<u8>>>),
}

fn now() -> i64 {
    crate::util::now_ms()
}

fn jitter(max: i64) -> i64 {
    use rand::Rng;
    rand::thread_rng().gen_range(0..max)
}

fn words(a: &[&str]) -> Vec<Vec<u8>> {
    a.iter().map(|s| s.as_bytes().to_vec()).collect()
}

pub fn inst_of<'a>(m: &'a mut Master, kind: Kind, key: &str) -> Option<&'a mut Inst> {
    match kind {
        Kind::Master => Some(&mut m.inst),
        Kind::Replica => m.replicas.get_mut(key),
        Kind::Sentinel => m.sentinels.get_mut(key),
    }
}

fn inst_ref<'a>(m: &'a Master, kind: Kind, key: &str) -> Option<&'a Inst> {
    match kind {
        Kind::Master => Some(&m.inst),
        Kind::Replica => m.replicas.get(key),
        Kind::Sentinel => m.sentinels.get(key),
    }
}

/// The instance a task serves, when the task is still its current one.
fn task_inst<'a>(s: &'a mut Sentinel, r: &InstRef) -> Option<(&'a mut Env, &'a mut Master)> {
    let Sentinel { env, masters } = &mut *s;
    let m = masters.get_mut(&r.master)?;
    let i = inst_of(m, r.kind, &r.key)?;
    let current = if r.pubsub { i.link.pubsub_task } else { i.link.cmd_task };
    (current == r.task).then_some((env, m))
}

/// Writes the config file when something changed.
pub fn flush_config(s: &mut Sentinel) {
    if !s.env.dirty {
        return;
    }
    s.env.dirty = false;
    match super::config::rewrite(s) {
        Ok(()) => tracing::info!("Sentinel new configuration saved on disk"),
        Err(e) => tracing::warn!("WARNING: Sentinel was not able to save the new configuration on disk!!!: {}", e),
    }
}

// ---- what the links ask ----------------------------------------------------------------

pub fn link_params(s: &mut Sentinel, r: &InstRef) -> Option<Params> {
    let (env, m) = task_inst(s, r)?;
    let auth = if r.kind == Kind::Sentinel {
        (!env.sentinel_pass.is_empty())
            .then(|| ((!env.sentinel_user.is_empty()).then(|| env.sentinel_user.clone()), env.sentinel_pass.clone()))
    } else {
        m.auth_pass.clone().map(|p| (m.auth_user.clone(), p))
    };
    let myid8: String = env.myid.chars().take(8).collect();
    let i = inst_ref(m, r.kind, &r.key)?;
    Some(Params {
        host: i.host.clone(),
        port: i.port,
        auth,
        client_name: format!("sentinel-{}-{}", myid8, if r.pubsub { "pubsub" } else { "cmd" }),
        reply_timeout: Duration::from_millis((i.down_after / 2).max(100) as u64),
        wake: i.link.wake.clone(),
    })
}

/// A link connected or lost; false when the task is stale.
pub fn set_link(s: &mut Sentinel, r: &InstRef, up: bool) -> bool {
    let Some((_, m)) = task_inst(s, r) else { return false };
    let i = inst_of(m, r.kind, &r.key).expect("checked");
    if r.pubsub {
        i.link.pc_connected = up;
    } else {
        i.link.connected = up;
        i.link.pending = 0;
        if up {
            i.link.cc_conn_time = now();
        }
    }
    true
}

/// What the command link sends now (None: the task is stale and ends).
pub fn next_requests(s: &mut Sentinel, r: &InstRef, local_ip: &str) -> Option<Vec<Req>> {
    let (env, m) = task_inst(s, r)?;
    let t = now();
    let master_busy = m.inst.odown() || m.inst.flags & flag::FAILOVER_IN_PROGRESS != 0;
    let (mhost, mport) = m.current_addr();
    let hello = format!(
        "{},{},{},{},{},{},{},{}",
        if env.announce_ip.is_empty() { local_ip } else { &env.announce_ip },
        if env.announce_port != 0 { env.announce_port } else { env.port },
        env.myid,
        env.current_epoch,
        m.name(),
        mhost,
        mport,
        m.config_epoch
    );
    let ask_args = (m.inst.host.clone(), m.inst.port, env.current_epoch, env.myid.clone());
    let info_cmd = m.cmd_name("INFO");
    let ping_cmd = m.cmd_name("PING");
    let publish_cmd = m.cmd_name("PUBLISH");
    let i = inst_of(m, r.kind, &r.key)?;
    let mut out = Vec::new();
    for block in i.queue.drain(..) {
        out.push(Req::Raw(block));
    }
    if i.kind != Kind::Sentinel {
        let info_period = if i.kind == Kind::Replica && (master_busy || i.master_link_down_time != 0) { 1000 } else { INFO_PERIOD };
        if i.info_now || i.info_refresh == 0 || t - i.info_refresh > info_period {
            i.info_now = false;
            out.push(Req::Info(vec![vec![info_cmd]]));
        }
    }
    let ping_period = i.down_after.min(PING_PERIOD);
    // A new connection is PINGed at once (the first answer clears the ping pending since the
    // instance was created); then every ping period.
    let fresh = i.link.last_ping_time < i.link.cc_conn_time;
    if fresh || (t - i.link.last_pong_time > ping_period && t - i.link.last_ping_time > ping_period / 2) {
        i.link.last_ping_time = t;
        if i.link.act_ping_time == 0 {
            i.link.act_ping_time = t;
        }
        out.push(Req::Ping(vec![vec![ping_cmd]]));
    }
    if t - i.last_pub_time > PUBLISH_PERIOD {
        i.last_pub_time = t;
        out.push(Req::Hello(vec![vec![publish_cmd, HELLO_CHANNEL.as_bytes().to_vec(), hello.into_bytes()]]));
    }
    if let Some(elect) = i.ask.take() {
        let (h, p, e, id) = ask_args;
        let runid = if elect { id } else { "*".to_string() };
        out.push(Req::Ask(vec![words(&["SENTINEL", "is-master-down-by-addr", &h, &p.to_string(), &e.to_string(), &runid])]));
    }
    i.link.pending = out.len();
    Some(out)
}

/// A reply on the command link (false: the task is stale and ends).
pub fn on_reply(s: &mut Sentinel, r: &InstRef, req: Req, reply: Reply) -> bool {
    let Some((env, m)) = task_inst(s, r) else { return false };
    env.enter(m);
    let t = now();
    match req {
        Req::Ping(_) => {
            let i = inst_of(m, r.kind, &r.key).expect("checked");
            i.link.last_pong_time = t;
            let ok = match &reply {
                Reply::Status(s) => s == "PONG",
                Reply::Error(e) => e.starts_with("LOADING") || e.starts_with("MASTERDOWN"),
                _ => false,
            };
            if ok {
                i.link.last_avail_time = t;
                i.link.act_ping_time = 0;
            } else if let Reply::Error(e) = &reply {
                if e.starts_with("BUSY") && i.sdown() && i.flags & flag::SCRIPT_KILL_SENT == 0 {
                    i.flags |= flag::SCRIPT_KILL_SENT;
                    i.queue_cmd(vec![words(&["SCRIPT", "KILL"])]);
                }
            }
        }
        Req::Info(_) => {
            if let Some(text) = reply.text() {
                refresh_info(env, m, r.kind, &r.key, &text, t);
            }
        }
        Req::Ask(_) => {
            let it = reply.items();
            if it.len() == 3 {
                if let (Reply::Int(down), Some(leader), Reply::Int(epoch)) = (&it[0], it[1].text(), &it[2]) {
                    let i = inst_of(m, r.kind, &r.key).expect("checked");
                    i.last_master_down_reply_time = t;
                    if *down == 1 {
                        i.flags |= flag::MASTER_DOWN;
                    } else {
                        i.flags &= !flag::MASTER_DOWN;
                    }
                    if leader != "*" {
                        if i.leader_epoch != *epoch as u64 || i.leader.as_deref() != Some(&leader) {
                            tracing::info!("{} voted for {} {}", i.runid.as_deref().unwrap_or(&i.name), leader, epoch);
                        }
                        i.leader = Some(leader);
                        i.leader_epoch = *epoch as u64;
                    }
                }
            }
        }
        Req::Hello(_) | Req::Raw(_) => {}
    }
    if let Some(i) = inst_of(m, r.kind, &r.key) {
        i.link.pending = i.link.pending.saturating_sub(1);
    }
    flush_config(s);
    true
}

fn field<'a>(info: &'a str, name: &str) -> Option<&'a str> {
    info.lines().find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(':'))).map(str::trim)
}

/// What an INFO reply teaches (Redis's sentinelRefreshInstanceInfo).
fn refresh_info(env: &mut Env, m: &mut Master, kind: Kind, key: &str, info: &str, t: i64) {
    let role = match field(info, "role") {
        Some("master") => Kind::Master,
        Some("slave") => Kind::Replica,
        _ => return,
    };
    let mdesc = m.inst.clone_desc();
    let (mhost, mport) = (m.inst.host.clone(), m.inst.port);
    // Replicas the master lists.
    let mut found = Vec::new();
    if kind == Kind::Master {
        for l in info.lines() {
            if !(l.starts_with("slave") && l.as_bytes().get(5).is_some_and(|b| b.is_ascii_digit())) {
                continue;
            }
            let Some((_, v)) = l.split_once(':') else { continue };
            let mut ip = None;
            let mut port = None;
            for kv in v.trim().split(',') {
                match kv.split_once('=') {
                    Some(("ip", x)) => ip = Some(x.to_string()),
                    Some(("port", x)) => port = x.parse::<u16>().ok(),
                    _ => {}
                }
            }
            if let (Some(ip), Some(port)) = (ip, port) {
                found.push((ip, port));
            }
        }
    }
    {
        let i = inst_of(m, kind, key).expect("caller found it");
        i.info = info.to_string();
        i.info_refresh = t;
        if let Some(id) = field(info, "run_id") {
            if i.runid.as_deref().is_some_and(|old| old != id) {
                let d = describe(i, Some(&mdesc));
                env.event(NOTICE, "+reboot", &d);
            }
            i.runid = Some(id.to_string());
        }
        if i.role_reported != role {
            i.role_reported = role;
            i.role_reported_time = t;
            if role == Kind::Replica {
                i.slave_conf_change_time = t;
            }
        }
        if role == Kind::Replica {
            let host = field(info, "master_host").map(str::to_string);
            let port = field(info, "master_port").and_then(|p| p.parse().ok()).unwrap_or(0);
            if host != i.slave_master_host || port != i.slave_master_port {
                i.slave_conf_change_time = t;
            }
            i.slave_master_host = host;
            i.slave_master_port = port;
            i.slave_master_link_up = field(info, "master_link_status") == Some("up");
            i.master_link_down_time =
                field(info, "master_link_down_since_seconds").and_then(|v| v.parse::<i64>().ok()).map(|s| s * 1000).unwrap_or(0);
            if let Some(p) = field(info, "slave_priority").or_else(|| field(info, "replica_priority")).and_then(|v| v.parse().ok()) {
                i.slave_priority = p;
            }
            if let Some(o) = field(info, "slave_repl_offset").and_then(|v| v.parse().ok()) {
                i.slave_repl_offset = o;
            }
            if let Some(a) = field(info, "replica_announced") {
                i.replica_announced = a == "1";
            }
        }
    }
    for (ip, port) in found {
        let k = format!("{}:{}", ip, port);
        if !m.replicas.contains_key(&k) {
            let r = Inst::new(Kind::Replica, k.clone(), ip, port, m.inst.down_after);
            let d = describe(&r, Some(&mdesc));
            m.replicas.insert(k, r);
            env.event(NOTICE, "+slave", &d);
            env.dirty = true;
        }
    }
    // In TILT, what INFO says is recorded but not acted upon.
    if kind != Kind::Replica || env.tilt_since != 0 {
        return;
    }
    let in_failover = m.inst.flags & flag::FAILOVER_IN_PROGRESS != 0;
    let sane = master_looks_sane(m, t);
    let failover_state = m.failover_state;
    let promoted_addr = m.promoted.as_ref().and_then(|k| m.replicas.get(k)).map(|p| (p.host.clone(), p.port));
    let i = m.replicas.get_mut(key).expect("caller found it");
    if role == Kind::Master {
        if i.flags & flag::PROMOTED != 0 {
            if in_failover && failover_state == FailoverState::WaitPromotion {
                let d = describe(i, Some(&mdesc));
                let (nh, np) = (i.host.clone(), i.port);
                m.config_epoch = m.failover_epoch;
                m.failover_state = FailoverState::ReconfSlaves;
                m.failover_state_change_time = t;
                env.dirty = true;
                env.event(WARN, "+promoted-slave", &d);
                if env.simfailure & SIMFAILURE_CRASH_AFTER_PROMOTION != 0 {
                    tracing::warn!("Simulated failure after promotion: exiting");
                    std::process::exit(99);
                }
                env.event(WARN, "+failover-state-reconf-slaves", &describe(&m.inst, None));
                if let Some(script) = m.client_reconfig_script.clone() {
                    env.run_script(&script, &reconf_args(m.name(), "leader", "start", (&mhost, mport), (&nh, np)));
                }
                // Tell everyone at once (Redis's sentinelForceHelloUpdateForMaster).
                m.inst.last_pub_time = 0;
                for r in m.replicas.values_mut().chain(m.sentinels.values_mut()) {
                    r.last_pub_time = 0;
                }
            }
        } else {
            // A replica that says it is a master (an old master back, say): make it follow ours.
            let wait = PUBLISH_PERIOD * 4;
            if sane && i.no_down_for(wait, t) && t - i.role_reported_time > wait {
                let block = slaveof_block(&m.renamed, Some((&mhost, mport)));
                let i = m.replicas.get_mut(key).expect("present");
                i.queue_cmd(block);
                i.info_now = true;
                let d = describe(i, Some(&mdesc));
                env.event(NOTICE, "+convert-to-slave", &d);
            }
        }
        return;
    }
    // A replica of the wrong master, outside a failover: point it at ours.
    let points_elsewhere = i.slave_master_port != mport || i.slave_master_host.as_deref() != Some(mhost.as_str());
    if points_elsewhere && i.flags & (flag::RECONF_SENT | flag::RECONF_INPROG) == 0 && !in_failover {
        let wait = m.failover_timeout;
        if sane && i.no_down_for(wait, t) && t - i.slave_conf_change_time > wait {
            let block = slaveof_block(&m.renamed, Some((&mhost, mport)));
            let i = m.replicas.get_mut(key).expect("present");
            i.queue_cmd(block);
            let d = describe(i, Some(&mdesc));
            env.event(NOTICE, "+fix-slave-config", &d);
        }
        return;
    }
    // A replica being re-pointed during a failover.
    if let Some((ph, pp)) = promoted_addr {
        let i = m.replicas.get_mut(key).expect("present");
        let at_new = i.slave_master_port == pp && i.slave_master_host.as_deref() == Some(ph.as_str());
        if i.flags & flag::RECONF_SENT != 0 && at_new {
            i.flags = (i.flags & !flag::RECONF_SENT) | flag::RECONF_INPROG;
            let d = describe(i, Some(&mdesc));
            env.event(NOTICE, "+slave-reconf-inprog", &d);
        }
        let i = m.replicas.get_mut(key).expect("present");
        if i.flags & flag::RECONF_INPROG != 0 && i.slave_master_link_up {
            i.flags = (i.flags & !flag::RECONF_INPROG) | flag::RECONF_DONE;
            let d = describe(i, Some(&mdesc));
            env.event(NOTICE, "+slave-reconf-done", &d);
        }
    }
}

impl Inst {
    /// Just what `describe` needs of a master, to describe its replicas while they are borrowed.
    pub fn clone_desc(&self) -> Inst {
        Inst::new(self.kind, self.name.clone(), self.host.clone(), self.port, self.down_after)
    }
}

fn reconf_args(name: &str, role: &str, state: &str, from: (&str, u16), to: (&str, u16)) -> Vec<String> {
    vec![name.into(), role.into(), state.into(), from.0.into(), from.1.to_string(), to.0.into(), to.1.to_string()]
}

fn master_looks_sane(m: &Master, t: i64) -> bool {
    m.inst.role_reported == Kind::Master && !m.inst.sdown() && !m.inst.odown() && t - m.inst.link.last_avail_time < INFO_PERIOD * 2
}

/// The block Redis Sentinel sends to (re)point an instance: MULTI, SLAVEOF, CONFIG REWRITE,
/// CLIENT KILL of normal and Pub/Sub clients (so they reconnect to the right place), EXEC.
pub fn slaveof_block(renamed: &std::collections::BTreeMap<String, (String, String)>, to: Option<(&str, u16)>) -> Vec<Vec<Vec<u8>>> {
    let n = |c: &str| renamed.get(c).map(|(_, to)| to.clone()).unwrap_or_else(|| c.to_uppercase()).into_bytes();
    let (h, p) = match to {
        Some((h, p)) => (h.as_bytes().to_vec(), p.to_string().into_bytes()),
        None => (b"NO".to_vec(), b"ONE".to_vec()),
    };
    vec![
        vec![n("multi")],
        vec![n("slaveof"), h, p],
        vec![n("config"), b"REWRITE".to_vec()],
        vec![n("client"), b"KILL".to_vec(), b"TYPE".to_vec(), b"normal".to_vec()],
        vec![n("client"), b"KILL".to_vec(), b"TYPE".to_vec(), b"pubsub".to_vec()],
        vec![n("exec")],
    ]
}

// ---- hello messages -----------------------------------------------------------------------

/// A hello message from another sentinel (on a Pub/Sub link, or PUBLISHed to us):
/// `ip,port,runid,current_epoch,master_name,master_ip,master_port,master_config_epoch`.
/// Returns false when the link that heard it is stale.
pub fn on_hello(s: &mut Sentinel, via: Option<&InstRef>, msg: &str) -> bool {
    if let Some(r) = via {
        if task_inst(s, r).is_none() {
            return false;
        }
    }
    let tok: Vec<&str> = msg.split(',').collect();
    if tok.len() != 8 {
        return true;
    }
    let (Ok(port), Ok(cur_epoch), Ok(mport), Ok(mepoch)) =
        (tok[1].parse::<u16>(), tok[3].parse::<u64>(), tok[6].parse::<u16>(), tok[7].parse::<u64>())
    else {
        return true;
    };
    let (ip, runid, mname, mip) = (tok[0], tok[2], tok[4], tok[5]);
    let Sentinel { env, masters } = &mut *s;
    if runid == env.myid {
        return true;
    }
    let Some(m) = masters.get_mut(mname) else { return true };
    env.enter(m);
    let t = now();
    let key = format!("{}:{}", ip, port);
    let mdesc = m.inst.clone_desc();
    let known = m.sentinels.get(&key).is_some_and(|x| x.runid.as_deref() == Some(runid));
    if !known {
        let before = m.sentinels.len();
        m.sentinels.retain(|_, x| x.runid.as_deref() != Some(runid));
        if m.sentinels.len() != before {
            env.event(
                NOTICE,
                "+sentinel-address-switch",
                &format!("master {} {} {} ip {} port {} for {}", mname, mdesc.host, mdesc.port, ip, port, runid),
            );
        }
        let mut si = Inst::new(Kind::Sentinel, key.clone(), ip.to_string(), port, m.inst.down_after);
        si.runid = Some(runid.to_string());
        let d = describe(&si, Some(&mdesc));
        m.sentinels.insert(key.clone(), si);
        env.event(NOTICE, "+sentinel", &d);
        env.dirty = true;
    }
    if let Some(si) = m.sentinels.get_mut(&key) {
        si.last_hello_time = t;
    }
    if cur_epoch > env.current_epoch {
        env.current_epoch = cur_epoch;
        env.dirty = true;
        env.event(WARN, "+new-epoch", &cur_epoch.to_string());
    }
    if m.config_epoch < mepoch {
        m.config_epoch = mepoch;
        env.dirty = true;
        if mip != m.inst.host || mport != m.inst.port {
            let d = m.sentinels.get(&key).map(|si| describe(si, Some(&mdesc))).unwrap_or_default();
            env.event(WARN, "+config-update-from", &d);
            env.event(WARN, "+switch-master", &format!("{} {} {} {} {}", mname, m.inst.host, m.inst.port, mip, mport));
            if let Some(script) = m.client_reconfig_script.clone() {
                let args = reconf_args(mname, "observer", "start", (&m.inst.host, m.inst.port), (mip, mport));
                env.run_script(&script, &args);
            }
            reset_and_change_addr(env, m, mip.to_string(), mport);
        }
    }
    flush_config(s);
    true
}

// ---- voting ---------------------------------------------------------------------------------

/// Votes for `runid` as the leader of `epoch` unless we already voted in it (Raft's one vote per
/// term); returns whom we voted for in our latest epoch.
pub fn vote_leader(env: &mut Env, m: &mut Master, req_epoch: u64, runid: &str) -> (Option<String>, u64) {
    if req_epoch > env.current_epoch {
        env.current_epoch = req_epoch;
        env.dirty = true;
        env.event(WARN, "+new-epoch", &req_epoch.to_string());
    }
    if m.inst.leader_epoch < req_epoch && env.current_epoch <= req_epoch {
        m.inst.leader = Some(runid.to_string());
        m.inst.leader_epoch = env.current_epoch;
        env.dirty = true;
        env.event(WARN, "+vote-for-leader", &format!("{} {}", runid, m.inst.leader_epoch));
        // Voting for someone else: don't start our own failover for a while.
        if runid != env.myid {
            m.failover_start_time = now() + jitter(MAX_DESYNC);
        }
    }
    (m.inst.leader.clone(), m.inst.leader_epoch)
}

/// The leader of `epoch`, when it has a majority of the known sentinels and at least quorum
/// votes (our own vote goes to the most voted, or to ourselves).
fn get_leader(env: &mut Env, m: &mut Master, epoch: u64) -> Option<String> {
    let mut votes: std::collections::BTreeMap<String, u64> = Default::default();
    let voters = m.sentinels.len() as u64 + 1;
    for si in m.sentinels.values() {
        if let Some(l) = &si.leader {
            if si.leader_epoch == epoch {
                *votes.entry(l.clone()).or_default() += 1;
            }
        }
    }
    let best = |v: &std::collections::BTreeMap<String, u64>| v.iter().max_by_key(|(_, n)| **n).map(|(k, n)| (k.clone(), *n));
    let winner = best(&votes).map(|(k, _)| k);
    let myid = env.myid.clone();
    let (mine, mine_epoch) = vote_leader(env, m, epoch, winner.as_deref().unwrap_or(&myid));
    if let Some(v) = mine {
        if mine_epoch == epoch {
            *votes.entry(v).or_default() += 1;
        }
    }
    let (w, n) = best(&votes)?;
    // A majority of the voters (voters / 2 + 1 or more), and the quorum.
    (n > voters / 2 && n >= m.quorum as u64).then_some(w)
}

// ---- the timer ---------------------------------------------------------------------------------

pub async fn run(sh: Arc<Shared>) {
    loop {
        let spawn = tick(&sh);
        for r in spawn {
            let sh = sh.clone();
            if r.pubsub {
                tokio::task::spawn_local(pubsub_link(sh, r));
            } else {
                tokio::task::spawn_local(command_link(sh, r));
            }
        }
        // 14 to 25 ticks a second, at random (Redis varies its sentinel timer's hz too), so
        // that sentinels started together do not act in the same instant; each step of a
        // failover waits for a tick, so ticks this frequent make the failover quicker.
        tokio::time::sleep(Duration::from_millis(40 + jitter(30) as u64)).await;
    }
}

fn tick(sh: &Shared) -> Vec<InstRef> {
    let mut s = sh.s.lock();
    if s.env.st.is_none() {
        s.env.st = Some(sh.st.clone());
    }
    let t = now();
    check_tilt(&mut s.env, t);
    let tilt = s.env.tilt_since != 0;
    let mut spawn = Vec::new();
    let mut switch = Vec::new();
    let names: Vec<String> = s.masters.keys().cloned().collect();
    for name in names {
        let Sentinel { env, masters } = &mut *s;
        let m = masters.get_mut(&name).expect("listed");
        env.enter(m);
        ensure_links(m, &mut spawn);
        if tilt {
            continue;
        }
        let keys: Vec<(Kind, String)> = std::iter::once((Kind::Master, String::new()))
            .chain(m.replicas.keys().map(|k| (Kind::Replica, k.clone())))
            .chain(m.sentinels.keys().map(|k| (Kind::Sentinel, k.clone())))
            .collect();
        for (kind, key) in keys {
            check_sdown(env, m, kind, &key, t);
        }
        check_odown(env, m, t);
        if start_failover_if_needed(env, m, t) {
            ask_others(m, t, true);
        }
        failover_state_machine(env, m, t);
        ask_others(m, t, false);
        if m.failover_state == FailoverState::UpdateConfig {
            switch.push(name);
        }
    }
    for name in switch {
        let Sentinel { env, masters } = &mut *s;
        let m = masters.get_mut(&name).expect("listed");
        env.enter(m);
        let (nh, np) = m.current_addr();
        env.event(WARN, "+switch-master", &format!("{} {} {} {} {}", name, m.inst.host, m.inst.port, nh, np));
        reset_and_change_addr(env, m, nh, np);
    }
    flush_config(&mut s);
    spawn
}

/// Enters TILT when the timer ran late by more than TILT_TRIGGER or the clock went back; leaves
/// it after TILT_PERIOD (Redis's sentinelCheckTiltCondition).
fn check_tilt(env: &mut Env, t: i64) {
    let delta = t - env.last_tick;
    if env.last_tick != 0 && !(0..=TILT_TRIGGER).contains(&delta) {
        env.tilt_since = t;
        env.event(WARN, "+tilt", "#tilt mode entered");
    }
    env.last_tick = t;
    if env.tilt_since != 0 && t - env.tilt_since >= TILT_PERIOD {
        env.tilt_since = 0;
        env.event(WARN, "-tilt", "#tilt mode exited");
    }
}

fn ensure_links(m: &mut Master, spawn: &mut Vec<InstRef>) {
    let master = m.name().to_string();
    let mut need = |i: &mut Inst, key: &str| {
        if i.link.cmd_task == 0 {
            i.link.cmd_task = NEXT_TASK.fetch_add(1, Ordering::Relaxed);
            spawn.push(InstRef { master: master.clone(), kind: i.kind, key: key.to_string(), task: i.link.cmd_task, pubsub: false });
        }
        if i.kind != Kind::Sentinel && i.link.pubsub_task == 0 {
            i.link.pubsub_task = NEXT_TASK.fetch_add(1, Ordering::Relaxed);
            spawn.push(InstRef { master: master.clone(), kind: i.kind, key: key.to_string(), task: i.link.pubsub_task, pubsub: true });
        }
    };
    need(&mut m.inst, "");
    for (k, r) in m.replicas.iter_mut().chain(m.sentinels.iter_mut()) {
        need(r, k);
    }
}

fn check_sdown(env: &mut Env, m: &mut Master, kind: Kind, key: &str, t: i64) {
    let mdesc = m.inst.clone_desc();
    let Some(i) = inst_of(m, kind, key) else { return };
    let elapsed = if i.link.act_ping_time != 0 {
        t - i.link.act_ping_time
    } else if !i.link.connected {
        t - i.link.last_avail_time
    } else {
        0
    };
    let down = elapsed > i.down_after
        || (kind == Kind::Master && i.role_reported == Kind::Replica && t - i.role_reported_time > i.down_after + INFO_PERIOD * 2);
    if down && !i.sdown() {
        i.s_down_since = t;
        let d = describe(i, Some(&mdesc));
        env.event(WARN, "+sdown", &d);
    } else if !down && i.sdown() {
        i.s_down_since = 0;
        i.flags &= !flag::SCRIPT_KILL_SENT;
        let d = describe(i, Some(&mdesc));
        env.event(WARN, "-sdown", &d);
    }
}

fn check_odown(env: &mut Env, m: &mut Master, t: i64) {
    let mut votes = 0u32;
    let mut odown = false;
    if m.inst.sdown() {
        votes = 1 + m.sentinels.values().filter(|s| s.flags & flag::MASTER_DOWN != 0).count() as u32;
        odown = votes >= m.quorum;
    }
    if odown && !m.inst.odown() {
        m.inst.o_down_since = t;
        m.start_jitter = jitter(START_JITTER);
        env.event(WARN, "+odown", &format!("{} #quorum {}/{}", describe(&m.inst, None), votes, m.quorum));
    } else if !odown && m.inst.odown() {
        m.inst.o_down_since = 0;
        env.event(WARN, "-odown", &describe(&m.inst, None));
    }
}

/// Starts a failover: a new epoch, and the election for it.
pub fn start_failover(env: &mut Env, m: &mut Master, t: i64) {
    m.failover_state = FailoverState::WaitStart;
    m.failover_state_change_time = t;
    m.inst.flags |= flag::FAILOVER_IN_PROGRESS;
    env.current_epoch += 1;
    m.failover_epoch = env.current_epoch;
    env.dirty = true;
    env.event(WARN, "+new-epoch", &env.current_epoch.to_string());
    env.event(WARN, "+try-failover", &describe(&m.inst, None));
    m.failover_start_time = t + jitter(MAX_DESYNC);
    m.failover_delay_logged = false;
}

fn start_failover_if_needed(env: &mut Env, m: &mut Master, t: i64) -> bool {
    if !m.inst.odown() || m.inst.flags & flag::FAILOVER_IN_PROGRESS != 0 {
        return false;
    }
    // Beyond Redis: a random wait after ODOWN (Raft's randomized election timeout). Whoever
    // starts first asks the others at once, and a sentinel that voted does not start its own.
    if t - m.inst.o_down_since < m.start_jitter {
        return false;
    }
    if t - m.failover_start_time < m.failover_timeout * 2 {
        if m.failover_start_time > 0 && !m.failover_delay_logged {
            m.failover_delay_logged = true;
            tracing::warn!(
                "Next failover delay: I will not start a failover before {} ms from now",
                m.failover_timeout * 2 - (t - m.failover_start_time)
            );
        }
        return false;
    }
    start_failover(env, m, t);
    true
}

/// Asks the other sentinels whether they see the master down (and, electing, for their vote).
fn ask_others(m: &mut Master, t: i64, forced: bool) {
    let sdown = m.inst.sdown();
    let electing = m.failover_state > FailoverState::None;
    for si in m.sentinels.values_mut() {
        let elapsed = t - si.last_master_down_reply_time;
        if elapsed > ASK_PERIOD * 5 {
            si.flags &= !flag::MASTER_DOWN;
            si.leader = None;
        }
        if !sdown || !si.link.connected || si.ask.is_some() || si.link.pending > 0 && !forced {
            continue;
        }
        if !forced && elapsed < ASK_PERIOD {
            continue;
        }
        si.ask = Some(electing);
        si.link.wake.notify_one();
    }
}

fn abort_failover(m: &mut Master, t: i64) {
    m.inst.flags &= !(flag::FAILOVER_IN_PROGRESS | flag::FORCE_FAILOVER);
    m.failover_state = FailoverState::None;
    m.failover_state_change_time = t;
    if let Some(k) = m.promoted.take() {
        if let Some(p) = m.replicas.get_mut(&k) {
            p.flags &= !flag::PROMOTED;
        }
    }
}

/// The replica to promote: healthy, recently heard from, not disconnected from its master for
/// too long, priority not 0; then the lowest priority, the greatest offset, the smallest run id.
pub fn select_slave(m: &Master, t: i64) -> Option<String> {
    let max_down = (if m.inst.sdown() { t - m.inst.s_down_since } else { 0 }) + m.inst.down_after * 10;
    let validity = if m.inst.sdown() { PING_PERIOD * 5 } else { INFO_PERIOD * 3 };
    let mut c: Vec<&Inst> = m
        .replicas
        .values()
        .filter(|r| {
            !r.sdown()
                && !r.odown()
                && r.link.connected
                && t - r.link.last_avail_time <= PING_PERIOD * 5
                && r.slave_priority != 0
                && r.info_refresh != 0
                && t - r.info_refresh <= validity
                && r.master_link_down_time <= max_down
        })
        .collect();
    c.sort_by(|a, b| {
        a.slave_priority.cmp(&b.slave_priority).then(b.slave_repl_offset.cmp(&a.slave_repl_offset)).then_with(|| {
            match (&a.runid, &b.runid) {
                (Some(x), Some(y)) => x.cmp(y),
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (None, None) => std::cmp::Ordering::Equal,
            }
        })
    });
    c.first().map(|r| r.name.clone())
}

fn failover_state_machine(env: &mut Env, m: &mut Master, t: i64) {
    if m.inst.flags & flag::FAILOVER_IN_PROGRESS == 0 {
        return;
    }
    let mdesc = m.inst.clone_desc();
    match m.failover_state {
        FailoverState::WaitStart => {
            let epoch = m.failover_epoch;
            let leader = get_leader(env, m, epoch);
            let is_leader = leader.as_deref() == Some(env.myid.as_str());
            if !is_leader && m.inst.flags & flag::FORCE_FAILOVER == 0 {
                let election_timeout = ELECTION_TIMEOUT.min(m.failover_timeout);
                if t - m.failover_start_time > election_timeout {
                    env.event(WARN, "-failover-abort-not-elected", &describe(&mdesc, None));
                    abort_failover(m, t);
                }
                return;
            }
            env.event(WARN, "+elected-leader", &describe(&mdesc, None));
            if env.simfailure & SIMFAILURE_CRASH_AFTER_ELECTION != 0 {
                tracing::warn!("Simulated failure after election: exiting");
                std::process::exit(99);
            }
            m.failover_state = FailoverState::SelectSlave;
            m.failover_state_change_time = t;
            env.event(WARN, "+failover-state-select-slave", &describe(&mdesc, None));
            // Fresh offsets before choosing (beyond Redis, which may use INFO up to a second
            // old): the replica with every write the master acknowledged is the one to promote.
            for r in m.replicas.values_mut() {
                r.info_now = true;
                r.link.wake.notify_one();
            }
        }
        FailoverState::SelectSlave if waiting_for_fresh_info(m, t) => {}
        FailoverState::SelectSlave => match select_slave(m, t) {
            None => {
                env.event(WARN, "-failover-abort-no-good-slave", &describe(&mdesc, None));
                abort_failover(m, t);
            }
            Some(k) => {
                let r = m.replicas.get_mut(&k).expect("selected");
                r.flags |= flag::PROMOTED;
                let d = describe(r, Some(&mdesc));
                m.promoted = Some(k);
                m.failover_state = FailoverState::SendSlaveofNoone;
                m.failover_state_change_time = t;
                env.event(WARN, "+selected-slave", &d);
                env.event(NOTICE, "+failover-state-send-slaveof-noone", &d);
            }
        },
        FailoverState::SendSlaveofNoone => {
            let block = slaveof_block(&m.renamed, None);
            let Some(p) = m.promoted.as_ref().and_then(|k| m.replicas.get_mut(k)) else { return };
            if !p.link.connected {
                if t - m.failover_state_change_time > m.failover_timeout {
                    env.event(WARN, "-failover-abort-slave-timeout", &describe(&mdesc, None));
                    abort_failover(m, t);
                }
                return;
            }
            p.queue_cmd(block);
            p.info_now = true;
            let d = describe(p, Some(&mdesc));
            env.event(NOTICE, "+failover-state-wait-promotion", &d);
            m.failover_state = FailoverState::WaitPromotion;
            m.failover_state_change_time = t;
        }
        FailoverState::WaitPromotion => {
            if t - m.failover_state_change_time > m.failover_timeout {
                env.event(WARN, "-failover-abort-slave-timeout", &describe(&mdesc, None));
                abort_failover(m, t);
            } else if let Some(p) = m.promoted.as_ref().and_then(|k| m.replicas.get_mut(k)) {
                // Ask the promoted replica for INFO often, to see the promotion at once.
                if t - p.info_refresh > 100 {
                    p.info_now = true;
                    p.link.wake.notify_one();
                }
            }
        }
        FailoverState::ReconfSlaves => reconf_next_slaves(env, m, t),
        FailoverState::None | FailoverState::UpdateConfig => {}
    }
}

/// While a reachable replica has not answered INFO since the selection began (at most
/// FRESH_INFO_WAIT ms).
fn waiting_for_fresh_info(m: &Master, t: i64) -> bool {
    const FRESH_INFO_WAIT: i64 = 1000;
    let since = m.failover_state_change_time;
    t - since < FRESH_INFO_WAIT && m.replicas.values().any(|r| r.link.connected && !r.sdown() && r.info_refresh < since)
}

fn reconf_next_slaves(env: &mut Env, m: &mut Master, t: i64) {
    let mdesc = m.inst.clone_desc();
    let Some((ph, pp)) = m.promoted.as_ref().and_then(|k| m.replicas.get(k)).map(|p| (p.host.clone(), p.port)) else { return };
    let block = slaveof_block(&m.renamed, Some((&ph, pp)));
    let mut in_progress = m.replicas.values().filter(|r| r.flags & (flag::RECONF_SENT | flag::RECONF_INPROG) != 0).count() as u32;
    for r in m.replicas.values_mut() {
        if in_progress >= m.parallel_syncs.max(1) {
            break;
        }
        if r.flags & (flag::PROMOTED | flag::RECONF_DONE) != 0 {
            continue;
        }
        if r.flags & flag::RECONF_SENT != 0 && t - r.slave_reconf_sent_time > SLAVE_RECONF_TIMEOUT {
            let d = describe(r, Some(&mdesc));
            env.event(NOTICE, "-slave-reconf-sent-timeout", &d);
            r.flags = (r.flags & !flag::RECONF_SENT) | flag::RECONF_DONE;
            continue;
        }
        if r.flags & (flag::RECONF_SENT | flag::RECONF_INPROG) != 0 || !r.link.connected {
            continue;
        }
        r.queue_cmd(block.clone());
        r.info_now = true;
        r.flags |= flag::RECONF_SENT;
        r.slave_reconf_sent_time = t;
        let d = describe(r, Some(&mdesc));
        env.event(NOTICE, "+slave-reconf-sent", &d);
        in_progress += 1;
    }
    // Replicas being re-pointed: ask for INFO often, to see them follow.
    for r in m.replicas.values_mut() {
        if r.flags & (flag::RECONF_SENT | flag::RECONF_INPROG) != 0 && t - r.info_refresh > 200 {
            r.info_now = true;
            r.link.wake.notify_one();
        }
    }
    detect_end(env, m, t, &block);
}

fn detect_end(env: &mut Env, m: &mut Master, t: i64, block: &[Vec<Vec<u8>>]) {
    let mdesc = m.inst.clone_desc();
    let Some(p) = m.promoted.as_ref().and_then(|k| m.replicas.get(k)) else { return };
    if p.sdown() {
        return;
    }
    let mut pending = m.replicas.values().filter(|r| r.flags & (flag::PROMOTED | flag::RECONF_DONE) == 0 && !r.sdown()).count();
    let timeout = t - m.failover_state_change_time > m.failover_timeout;
    if timeout {
        pending = 0;
        env.event(WARN, "+failover-end-for-timeout", &describe(&mdesc, None));
    }
    if pending > 0 {
        return;
    }
    env.event(WARN, "+failover-end", &describe(&mdesc, None));
    m.failover_state = FailoverState::UpdateConfig;
    m.failover_state_change_time = t;
    if timeout {
        for r in m.replicas.values_mut() {
            if r.flags & (flag::PROMOTED | flag::RECONF_DONE | flag::RECONF_SENT) != 0 || !r.link.connected {
                continue;
            }
            r.queue_cmd(block.to_vec());
            r.flags |= flag::RECONF_SENT;
            let d = describe(r, Some(&mdesc));
            env.event(NOTICE, "+slave-reconf-sent-be", &d);
        }
    }
    if let Some(script) = m.client_reconfig_script.clone() {
        if let Some(p) = m.promoted.as_ref().and_then(|k| m.replicas.get(k)) {
            env.run_script(&script, &reconf_args(m.name(), "leader", "end", (&mdesc.host, mdesc.port), (&p.host, p.port)));
        }
    }
}

/// Forgets what was learned about a master (replicas, optionally sentinels, links, failover).
pub fn reset_master(m: &mut Master, keep_sentinels: bool) {
    let down_after = m.inst.down_after;
    let leader_epoch = m.inst.leader_epoch;
    let (name, host, port) = (m.inst.name.clone(), m.inst.host.clone(), m.inst.port);
    m.inst = Inst::new(Kind::Master, name, host, port, down_after);
    m.inst.leader_epoch = leader_epoch;
    m.replicas.clear();
    if !keep_sentinels {
        m.sentinels.clear();
    }
    m.failover_state = FailoverState::None;
    m.failover_state_change_time = 0;
    m.promoted = None;
}

/// After a failover (ours, or another sentinel's seen in a hello): the master is now at
/// `host:port`, and its replicas are the old replicas plus the old master.
pub fn reset_and_change_addr(env: &mut Env, m: &mut Master, host: String, port: u16) {
    let mut replicas: Vec<(String, u16)> =
        m.replicas.values().filter(|r| !(r.host == host && r.port == port)).map(|r| (r.host.clone(), r.port)).collect();
    if !(m.inst.host == host && m.inst.port == port) {
        replicas.push((m.inst.host.clone(), m.inst.port));
    }
    reset_master(m, true);
    m.inst.host = host;
    m.inst.port = port;
    let mdesc = m.inst.clone_desc();
    for (h, p) in replicas {
        let k = format!("{}:{}", h, p);
        let r = Inst::new(Kind::Replica, k.clone(), h, p, m.inst.down_after);
        let d = describe(&r, Some(&mdesc));
        m.replicas.insert(k, r);
        env.event(NOTICE, "+slave", &d);
    }
    env.dirty = true;
}
