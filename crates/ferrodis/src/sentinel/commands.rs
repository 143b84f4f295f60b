//! Sentinel mode's commands: SENTINEL and its subcommands, and sentinel mode's own INFO, ROLE
//! and PUBLISH (which takes only hello messages). Replies as Redis Sentinel 7.0's.

use super::monitor;
use super::state::*;
use crate::commands::table::{cmd, container, flag::*, CommandSpec, NO_KEYS};
use crate::commands::{eq, Ctx};
use crate::util::now_ms;

const S: &str = "@admin @slow @dangerous";

pub static COMMANDS: &[CommandSpec] = &[
    container(
        "sentinel",
        -2,
        S,
        &[
            cmd("ckquorum", 3, ADMIN, S, NO_KEYS, ckquorum),
            cmd("config", -3, ADMIN, S, NO_KEYS, config),
            cmd("failover", 3, ADMIN, S, NO_KEYS, failover),
            cmd("flushconfig", 2, ADMIN, S, NO_KEYS, flushconfig),
            cmd("get-master-addr-by-name", 3, ADMIN, S, NO_KEYS, get_master_addr),
            cmd("help", 2, ADMIN | LOADING | STALE, S, NO_KEYS, help),
            cmd("info-cache", -3, ADMIN, S, NO_KEYS, info_cache),
            cmd("is-master-down-by-addr", 6, ADMIN, S, NO_KEYS, is_master_down),
            cmd("master", 3, ADMIN, S, NO_KEYS, master),
            cmd("masters", 2, ADMIN, S, NO_KEYS, masters),
            cmd("monitor", 6, ADMIN, S, NO_KEYS, monitor_cmd),
            cmd("myid", 2, ADMIN, S, NO_KEYS, myid),
            cmd("pending-scripts", 2, ADMIN, S, NO_KEYS, pending_scripts),
            cmd("remove", 3, ADMIN, S, NO_KEYS, remove),
            cmd("replicas", 3, ADMIN, S, NO_KEYS, replicas),
            cmd("reset", 3, ADMIN, S, NO_KEYS, reset),
            cmd("sentinels", 3, ADMIN, S, NO_KEYS, sentinels),
            cmd("set", -5, ADMIN, S, NO_KEYS, set),
            cmd("simulate-failure", -3, ADMIN, S, NO_KEYS, simulate_failure),
            cmd("slaves", 3, ADMIN, S, NO_KEYS, replicas),
        ],
    ),
    cmd("info", -1, LOADING | STALE, "@slow @dangerous", NO_KEYS, info),
    cmd("role", 1, NOSCRIPT | LOADING | STALE | FAST, "@admin @fast @dangerous", NO_KEYS, role),
    cmd("publish", 3, PUBSUB | LOADING | STALE | FAST, "@pubsub @fast", NO_KEYS, publish),
];

fn shared() -> &'static super::Shared {
    super::shared().expect("sentinel commands run in sentinel mode only")
}

fn text(a: &[u8]) -> String {
    String::from_utf8_lossy(a).into_owned()
}

const NO_MASTER: &str = "ERR No such master with that name";

/// One instance as SENTINEL MASTER/REPLICAS/SENTINELS show it (field names and order of
/// Redis 7.0's addReplySentinelRedisInstance).
fn reply_instance(ctx: &mut Ctx, m: &Master, i: &Inst) {
    let t = now_ms();
    let mut f: Vec<(&str, String)> = Vec::with_capacity(40);
    let name = match (i.kind, &i.runid) {
        (Kind::Sentinel, Some(r)) => r.clone(),
        _ => i.name.clone(),
    };
    f.push(("name", name));
    f.push(("ip", i.host.clone()));
    f.push(("port", i.port.to_string()));
    f.push(("runid", i.runid.clone().unwrap_or_default()));
    let mut flags = Vec::new();
    if i.sdown() {
        flags.push("s_down");
    }
    if i.odown() {
        flags.push("o_down");
    }
    flags.push(i.kind.name());
    if !i.link.connected {
        flags.push("disconnected");
    }
    for (b, n) in [
        (flag::MASTER_DOWN, "master_down"),
        (flag::FAILOVER_IN_PROGRESS, "failover_in_progress"),
        (flag::PROMOTED, "promoted"),
        (flag::RECONF_SENT, "reconf_sent"),
        (flag::RECONF_INPROG, "reconf_inprog"),
        (flag::RECONF_DONE, "reconf_done"),
        (flag::FORCE_FAILOVER, "force_failover"),
        (flag::SCRIPT_KILL_SENT, "script_kill_sent"),
    ] {
        if i.flags & b != 0 {
            flags.push(n);
        }
    }
    f.push(("flags", flags.join(",")));
    f.push(("link-pending-commands", i.link.pending.to_string()));
    f.push(("link-refcount", "1".into()));
    if i.flags & flag::FAILOVER_IN_PROGRESS != 0 {
        f.push(("failover-state", m.failover_state.name().into()));
    }
    f.push(("last-ping-sent", if i.link.act_ping_time != 0 { t - i.link.act_ping_time } else { 0 }.to_string()));
    f.push(("last-ok-ping-reply", (t - i.link.last_avail_time).to_string()));
    f.push(("last-ping-reply", (t - i.link.last_pong_time).to_string()));
    if i.sdown() {
        f.push(("s-down-time", (t - i.s_down_since).to_string()));
    }
    if i.odown() {
        f.push(("o-down-time", (t - i.o_down_since).to_string()));
    }
    f.push(("down-after-milliseconds", i.down_after.to_string()));
    if i.kind != Kind::Sentinel {
        f.push(("info-refresh", if i.info_refresh != 0 { t - i.info_refresh } else { 0 }.to_string()));
        f.push(("role-reported", i.role_reported.name().into()));
        f.push(("role-reported-time", (t - i.role_reported_time).to_string()));
    }
    match i.kind {
        Kind::Master => {
            f.push(("config-epoch", m.config_epoch.to_string()));
            f.push(("num-slaves", m.replicas.len().to_string()));
            f.push(("num-other-sentinels", m.sentinels.len().to_string()));
            f.push(("quorum", m.quorum.to_string()));
            f.push(("failover-timeout", m.failover_timeout.to_string()));
            f.push(("parallel-syncs", m.parallel_syncs.to_string()));
            if let Some(s) = &m.notification_script {
                f.push(("notification-script", s.clone()));
            }
            if let Some(s) = &m.client_reconfig_script {
                f.push(("client-reconfig-script", s.clone()));
            }
        }
        Kind::Replica => {
            f.push(("master-link-down-time", i.master_link_down_time.to_string()));
            f.push(("master-link-status", if i.slave_master_link_up { "ok" } else { "err" }.into()));
            f.push(("master-host", i.slave_master_host.clone().unwrap_or_else(|| "?".into())));
            f.push(("master-port", i.slave_master_port.to_string()));
            f.push(("slave-priority", i.slave_priority.to_string()));
            f.push(("slave-repl-offset", i.slave_repl_offset.to_string()));
            f.push(("replica-announced", (i.replica_announced as u8).to_string()));
        }
        Kind::Sentinel => {
            f.push(("last-hello-message", if i.last_hello_time != 0 { t - i.last_hello_time } else { 0 }.to_string()));
            f.push(("voted-leader", i.leader.clone().unwrap_or_else(|| "?".into())));
            f.push(("voted-leader-epoch", i.leader_epoch.to_string()));
        }
    }
    ctx.out.map(f.len());
    for (k, v) in f {
        ctx.out.bulk(k.as_bytes());
        ctx.out.bulk(v.as_bytes());
    }
}

fn masters(ctx: &mut Ctx, _argv: &[&[u8]]) {
    let s = shared().s.lock();
    ctx.out.array(s.masters.len());
    for m in s.masters.values() {
        reply_instance(ctx, m, &m.inst);
    }
}

fn master(ctx: &mut Ctx, argv: &[&[u8]]) {
    let s = shared().s.lock();
    match s.masters.get(&text(argv[2])) {
        Some(m) => reply_instance(ctx, m, &m.inst),
        None => ctx.out.error(NO_MASTER),
    }
}

/// SENTINEL REPLICAS / SENTINELS: the instances `pick` chooses of the named master.
fn list(ctx: &mut Ctx, argv: &[&[u8]], pick: fn(&Master) -> &std::collections::BTreeMap<String, Inst>) {
    let s = shared().s.lock();
    match s.masters.get(&text(argv[2])) {
        Some(m) => {
            ctx.out.array(pick(m).len());
            for r in pick(m).values() {
                reply_instance(ctx, m, r);
            }
        }
        None => ctx.out.error(NO_MASTER),
    }
}

fn replicas(ctx: &mut Ctx, argv: &[&[u8]]) {
    list(ctx, argv, |m| &m.replicas)
}

fn sentinels(ctx: &mut Ctx, argv: &[&[u8]]) {
    list(ctx, argv, |m| &m.sentinels)
}

fn get_master_addr(ctx: &mut Ctx, argv: &[&[u8]]) {
    let s = shared().s.lock();
    match s.masters.get(&text(argv[2])) {
        Some(m) => {
            let (h, p) = m.current_addr();
            ctx.out.array(2);
            ctx.out.bulk(h.as_bytes());
            ctx.out.bulk(p.to_string().as_bytes());
        }
        None => ctx.out.null_array(),
    }
}

fn is_master_down(ctx: &mut Ctx, argv: &[&[u8]]) {
    let (Some(port), Some(epoch)) = (crate::util::parse_i64(argv[3]), crate::util::parse_i64(argv[4])) else {
        ctx.out.error("ERR value is not an integer or out of range");
        return;
    };
    let runid = text(argv[5]);
    let mut guard = shared().s.lock();
    let s = &mut *guard;
    let host = text(argv[2]);
    let name = s.master_by_addr(&host, port as u16).map(str::to_string).filter(|_| (0..=65535).contains(&port));
    let mut down = false;
    let mut leader = None;
    let mut leader_epoch = 0;
    if let Some(name) = name {
        let m = s.masters.get_mut(&name).expect("found");
        s.env.enter(m);
        down = s.env.tilt_since == 0 && m.inst.sdown() && m.inst.role_reported == Kind::Master;
        if runid != "*" {
            let (l, e) = monitor::vote_leader(&mut s.env, m, epoch.max(0) as u64, &runid);
            leader = l;
            leader_epoch = e;
        }
    }
    monitor::flush_config(s);
    ctx.out.array(3);
    ctx.out.int(down as i64);
    ctx.out.bulk(leader.as_deref().unwrap_or("*").as_bytes());
    ctx.out.int(if runid != "*" { leader_epoch as i64 } else { 0 });
}

fn reset(ctx: &mut Ctx, argv: &[&[u8]]) {
    let mut guard = shared().s.lock();
    let s = &mut *guard;
    let mut n = 0;
    for m in s.masters.values_mut() {
        if crate::util::glob_match(argv[2], m.name().as_bytes(), false) {
            monitor::reset_master(m, false);
            s.env.enter(m);
            s.env.event(tracing::Level::WARN, "+reset-master", &describe(&m.inst, None));
            n += 1;
        }
    }
    s.env.dirty = true;
    monitor::flush_config(s);
    ctx.out.int(n);
}

fn failover(ctx: &mut Ctx, argv: &[&[u8]]) {
    let mut guard = shared().s.lock();
    let s = &mut *guard;
    let Some(m) = s.masters.get_mut(&text(argv[2])) else {
        ctx.out.error(NO_MASTER);
        return;
    };
    if m.inst.flags & flag::FAILOVER_IN_PROGRESS != 0 {
        ctx.out.error("INPROG Failover already in progress");
        return;
    }
    let t = now_ms();
    if monitor::select_slave(m, t).is_none() {
        ctx.out.error("NOGOODSLAVE No suitable replica to promote");
        return;
    }
    tracing::warn!("Executing user requested FAILOVER of '{}'", m.name());
    s.env.enter(m);
    monitor::start_failover(&mut s.env, m, t);
    m.inst.flags |= flag::FORCE_FAILOVER;
    monitor::flush_config(s);
    ctx.out.ok();
}

fn ckquorum(ctx: &mut Ctx, argv: &[&[u8]]) {
    let s = shared().s.lock();
    let Some(m) = s.masters.get(&text(argv[2])) else {
        ctx.out.error(NO_MASTER);
        return;
    };
    let voters = m.sentinels.len() + 1;
    let usable = 1 + m.sentinels.values().filter(|x| !x.sdown() && x.link.connected).count();
    let noquorum = usable < m.quorum as usize;
    let noauth = usable < voters / 2 + 1;
    if !noquorum && !noauth {
        ctx.out.simple(format!("OK {} usable Sentinels. Quorum and failover authorization can be reached", usable).as_bytes());
        return;
    }
    let mut e = format!("NOQUORUM {} usable Sentinels. ", usable);
    if noquorum {
        e.push_str("Not enough available Sentinels to reach the specified quorum for this master");
    }
    if noauth {
        if noquorum {
            e.push_str(". ");
        }
        e.push_str("Not enough available Sentinels to reach the majority and authorize a failover");
    }
    ctx.out.error(&e);
}

fn flushconfig(ctx: &mut Ctx, _argv: &[&[u8]]) {
    let s = shared().s.lock();
    match super::config::rewrite(&s) {
        Ok(()) => ctx.out.ok(),
        Err(e) => ctx.out.error(&format!("ERR Failed to save config file: {}", e)),
    }
}

fn monitor_cmd(ctx: &mut Ctx, argv: &[&[u8]]) {
    let (name, host) = (text(argv[2]), text(argv[3]));
    let Some(quorum) = crate::util::parse_i64(argv[5]) else {
        ctx.out.error("ERR Invalid quorum");
        return;
    };
    if quorum <= 0 {
        ctx.out.error("ERR Quorum must be 1 or greater.");
        return;
    }
    let Some(port) = crate::util::parse_i64(argv[4]) else {
        ctx.out.error("ERR Invalid port");
        return;
    };
    if !(0..=65535).contains(&port) {
        ctx.out.error("ERR Invalid port number.");
        return;
    }
    let mut guard = shared().s.lock();
    let s = &mut *guard;
    if super::config::check_host(&s.env, &host).is_err() {
        ctx.out.error("ERR Invalid IP address or hostname specified");
        return;
    }
    if s.masters.contains_key(&name) {
        ctx.out.error("ERR Duplicate master name.");
        return;
    }
    let m = Master::new(name.clone(), host, port as u16, quorum as u32);
    let d = format!("{} quorum {}", describe(&m.inst, None), quorum);
    s.env.enter(&m);
    s.masters.insert(name, m);
    s.env.event(tracing::Level::WARN, "+monitor", &d);
    s.env.dirty = true;
    monitor::flush_config(s);
    ctx.out.ok();
}

fn remove(ctx: &mut Ctx, argv: &[&[u8]]) {
    let mut guard = shared().s.lock();
    let s = &mut *guard;
    let Some(m) = s.masters.remove(&text(argv[2])) else {
        ctx.out.error(NO_MASTER);
        return;
    };
    s.env.enter(&m);
    s.env.event(tracing::Level::WARN, "-monitor", &describe(&m.inst, None));
    s.env.dirty = true;
    monitor::flush_config(s);
    ctx.out.ok();
}

fn myid(ctx: &mut Ctx, _argv: &[&[u8]]) {
    let id = shared().s.lock().env.myid.clone();
    ctx.out.bulk(id.as_bytes());
}

fn pending_scripts(ctx: &mut Ctx, _argv: &[&[u8]]) {
    // Scripts start at once (no queue); nothing is ever pending.
    ctx.out.array(0);
}

fn simulate_failure(ctx: &mut Ctx, argv: &[&[u8]]) {
    let mut s = shared().s.lock();
    let mut flags = 0;
    for a in &argv[2..] {
        if eq(a, "crash-after-election") {
            flags |= SIMFAILURE_CRASH_AFTER_ELECTION;
            tracing::warn!("Failure simulation: this Sentinel will crash after being successfully elected as failover leader");
        } else if eq(a, "crash-after-promotion") {
            flags |= SIMFAILURE_CRASH_AFTER_PROMOTION;
            tracing::warn!("Failure simulation: this Sentinel will crash after promoting the selected replica to master");
        } else if eq(a, "help") {
            ctx.out.array(2);
            ctx.out.bulk(b"crash-after-election");
            ctx.out.bulk(b"crash-after-promotion");
            return;
        } else {
            ctx.out.error("ERR Unknown failure simulation specified");
            return;
        }
    }
    s.env.simfailure = flags;
    ctx.out.ok();
}

fn info_cache(ctx: &mut Ctx, argv: &[&[u8]]) {
    let s = shared().s.lock();
    let t = now_ms();
    let wanted: Vec<&Master> = s.masters.values().filter(|m| argv[2..].iter().any(|a| *a == m.name().as_bytes())).collect();
    ctx.out.array(wanted.len() * 2);
    for m in wanted {
        ctx.out.bulk(m.name().as_bytes());
        ctx.out.array(1 + m.replicas.len());
        for i in std::iter::once(&m.inst).chain(m.replicas.values()) {
            ctx.out.array(2);
            ctx.out.int(if i.info_refresh != 0 { t - i.info_refresh } else { 0 });
            if i.info.is_empty() {
                ctx.out.null();
            } else {
                ctx.out.bulk(i.info.as_bytes());
            }
        }
    }
}

fn set(ctx: &mut Ctx, argv: &[&[u8]]) {
    let mut guard = shared().s.lock();
    let s = &mut *guard;
    let Some(m) = s.masters.get_mut(&text(argv[2])) else {
        ctx.out.error(NO_MASTER);
        return;
    };
    let mut j = 3;
    let mut changed = Vec::new();
    while j < argv.len() {
        let opt = text(argv[j]).to_ascii_lowercase();
        let needs = if opt == "rename-command" { 2 } else { 1 };
        if j + needs >= argv.len() {
            ctx.out.error(&format!("ERR Unknown option or number of arguments for SENTINEL SET '{}'", opt));
            return;
        }
        let val = text(argv[j + 1]);
        let bad = |ctx: &mut Ctx| ctx.out.error(&format!("ERR Invalid argument '{}' for SENTINEL SET '{}'", val, opt));
        let positive = val.parse::<i64>().ok().filter(|v| *v > 0);
        match opt.as_str() {
            "down-after-milliseconds" => match positive {
                Some(v) => m.set_down_after(v),
                None => return bad(ctx),
            },
            "failover-timeout" => match positive {
                Some(v) => m.failover_timeout = v,
                None => return bad(ctx),
            },
            "parallel-syncs" => match positive {
                Some(v) => m.parallel_syncs = v as u32,
                None => return bad(ctx),
            },
            "quorum" => match positive {
                Some(v) => m.quorum = v as u32,
                None => return bad(ctx),
            },
            "master-reboot-down-after-period" => match val.parse::<i64>().ok().filter(|v| *v >= 0) {
                Some(v) => m.reboot_down_after = v,
                None => return bad(ctx),
            },
            "notification-script" | "client-reconfig-script" => {
                if s.env.deny_scripts_reconfig {
                    ctx.out.error("ERR Reconfiguration of scripts path is denied for security reasons. Check the deny-scripts-reconfig configuration directive in your Sentinel configuration");
                    return;
                }
                if !val.is_empty() && !super::config::executable(&val) {
                    ctx.out.error(&format!(
                        "ERR {} seems non existing or non executable",
                        if opt == "notification-script" { "Notification script" } else { "Client reconfiguration script" }
                    ));
                    return;
                }
                let v = (!val.is_empty()).then(|| val.clone());
                if opt == "notification-script" {
                    m.notification_script = v
                } else {
                    m.client_reconfig_script = v
                }
            }
            "auth-pass" => m.auth_pass = (!val.is_empty()).then(|| val.clone()),
            "auth-user" => m.auth_user = (!val.is_empty()).then(|| val.clone()),
            "rename-command" => {
                let to = text(argv[j + 2]);
                let from = val.to_ascii_lowercase();
                if to.is_empty() || from == to.to_ascii_lowercase() {
                    m.renamed.remove(&from);
                } else {
                    m.renamed.insert(from, (val.clone(), to));
                }
            }
            _ => {
                ctx.out.error(&format!("ERR Unknown option or number of arguments for SENTINEL SET '{}'", opt));
                return;
            }
        }
        changed.push(argv[j..=j + needs].iter().map(|a| text(a)).collect::<Vec<_>>().join(" "));
        j += needs + 1;
    }
    let d = describe(&m.inst, None);
    s.env.enter(m);
    for c in changed {
        s.env.event(tracing::Level::WARN, "+set", &format!("{} {}", d, c));
    }
    s.env.dirty = true;
    monitor::flush_config(s);
    ctx.out.ok();
}

const CONFIG_NAMES: &[&str] =
    &["resolve-hostnames", "announce-hostnames", "announce-ip", "announce-port", "sentinel-user", "sentinel-pass"];

fn config(ctx: &mut Ctx, argv: &[&[u8]]) {
    let mut guard = shared().s.lock();
    let s = &mut *guard;
    let yn = |b: bool| if b { "yes" } else { "no" }.to_string();
    if eq(argv[2], "get") && argv.len() == 4 {
        let e = &s.env;
        let vals = [
            yn(e.resolve_hostnames),
            yn(e.announce_hostnames),
            e.announce_ip.clone(),
            e.announce_port.to_string(),
            e.sentinel_user.clone(),
            e.sentinel_pass.clone(),
        ];
        let hits: Vec<(&str, &String)> = CONFIG_NAMES
            .iter()
            .zip(vals.iter())
            .filter(|(n, _)| crate::util::glob_match(argv[3], n.as_bytes(), true))
            .map(|(n, v)| (*n, v))
            .collect();
        ctx.out.map(hits.len());
        for (n, v) in hits {
            ctx.out.bulk(n.as_bytes());
            ctx.out.bulk(v.as_bytes());
        }
        return;
    }
    if eq(argv[2], "set") && argv.len() == 5 {
        let (name, val) = (text(argv[3]).to_ascii_lowercase(), text(argv[4]));
        let yes_no = match val.to_ascii_lowercase().as_str() {
            "yes" => Some(true),
            "no" => Some(false),
            _ => None,
        };
        let e = &mut s.env;
        let ok = match name.as_str() {
            "resolve-hostnames" => yes_no.map(|v| e.resolve_hostnames = v).is_some(),
            "announce-hostnames" => yes_no.map(|v| e.announce_hostnames = v).is_some(),
            "announce-ip" => {
                e.announce_ip = val.clone();
                true
            }
            "announce-port" => val.parse::<u16>().map(|p| e.announce_port = p).is_ok(),
            "sentinel-user" => {
                e.sentinel_user = val.clone();
                true
            }
            "sentinel-pass" => {
                e.sentinel_pass = val.clone();
                true
            }
            _ => {
                ctx.out.error(&format!("ERR Invalid argument '{}' to SENTINEL CONFIG SET", name));
                return;
            }
        };
        if !ok {
            ctx.out.error(&format!("ERR Invalid value '{}' to SENTINEL CONFIG SET '{}'", val, name));
            return;
        }
        s.env.dirty = true;
        monitor::flush_config(s);
        ctx.out.ok();
        return;
    }
    ctx.out.error("ERR Only SENTINEL CONFIG GET <option> / SET <option> <value> are supported.");
}

fn help(ctx: &mut Ctx, _argv: &[&[u8]]) {
    let lines = [
        "SENTINEL <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "CKQUORUM <master-name>",
        "    Check if the current Sentinel configuration is able to reach the quorum needed",
        "    to failover a master and the majority needed to authorize the failover.",
        "CONFIG SET <param> <value>",
        "    Set a global Sentinel configuration parameter.",
        "CONFIG GET <param>",
        "    Get global Sentinel configuration parameter.",
        "GET-MASTER-ADDR-BY-NAME <master-name>",
        "    Return the ip and port number of the master with that name.",
        "FAILOVER <master-name>",
        "    Manually failover a master node without asking for agreement from other",
        "    Sentinels",
        "FLUSHCONFIG",
        "    Force Sentinel to rewrite its configuration on disk, including the current",
        "    Sentinel state.",
        "INFO-CACHE <master-name>",
        "    Return last cached INFO output from masters and all its replicas.",
        "IS-MASTER-DOWN-BY-ADDR <ip> <port> <current-epoch> <runid>",
        "    Check if the master specified by ip:port is down from current Sentinel's",
        "    point of view.",
        "MASTER <master-name>",
        "    Show the state and info of the specified master.",
        "MASTERS",
        "    Show a list of monitored masters and their state.",
        "MONITOR <name> <ip> <port> <quorum>",
        "    Start monitoring a new master with the specified name, ip, port and quorum.",
        "MYID",
        "    Return the ID of the Sentinel instance.",
        "PENDING-SCRIPTS",
        "    Get pending scripts information.",
        "REMOVE <master-name>",
        "    Remove master from Sentinel's monitor list.",
        "REPLICAS <master-name>",
        "    Show a list of replicas for this master and their state.",
        "RESET <pattern>",
        "    Reset masters for specific master name matching this pattern.",
        "SENTINELS <master-name>",
        "    Show a list of Sentinel instances for this master and their state.",
        "SET <master-name> <option> <value> [<option> <value> ...]",
        "    Set configuration paramters for certain masters.",
        "SIMULATE-FAILURE [CRASH-AFTER-ELECTION] [CRASH-AFTER-PROMOTION] [HELP]",
        "    Simulate a Sentinel crash.",
        "HELP",
        "    Print this help.",
    ];
    crate::commands::reply_help(ctx, &lines);
}

/// INFO in sentinel mode: server, clients, stats, CPU and the Sentinel section.
fn info(ctx: &mut Ctx, argv: &[&[u8]]) {
    let asked: Vec<String> = argv[1..].iter().map(|a| text(a).to_ascii_lowercase()).collect();
    let all = asked.is_empty() || asked.iter().any(|s| matches!(s.as_str(), "all" | "default" | "everything"));
    let base: Vec<String> =
        ["server", "clients", "stats", "cpu"].iter().filter(|s| all || asked.iter().any(|a| a == *s)).map(|s| s.to_string()).collect();
    let mut out = if base.is_empty() { String::new() } else { crate::commands::server::info_text(ctx, &base) };
    out = out.replace("redis_mode:standalone", "redis_mode:sentinel");
    if all || asked.iter().any(|a| a == "sentinel") {
        let s = shared().s.lock();
        if !out.is_empty() {
            out.push_str("\r\n");
        }
        out.push_str(&format!(
            "# Sentinel\r\nsentinel_masters:{}\r\nsentinel_tilt:{}\r\nsentinel_tilt_since_seconds:{}\r\nsentinel_running_scripts:{}\r\nsentinel_scripts_queue_length:0\r\nsentinel_simulate_failure_flags:{}\r\n",
            s.masters.len(),
            (s.env.tilt_since != 0) as u8,
            if s.env.tilt_since != 0 { (now_ms() - s.env.tilt_since) / 1000 } else { -1 },
            s.env.scripts_running.load(std::sync::atomic::Ordering::Relaxed),
            s.env.simfailure
        ));
        for (n, m) in s.masters.values().enumerate() {
            let status = if m.inst.odown() {
                "odown"
            } else if m.inst.sdown() {
                "sdown"
            } else {
                "ok"
            };
            out.push_str(&format!(
                "master{}:name={},status={},address={}:{},slaves={},sentinels={}\r\n",
                n,
                m.name(),
                status,
                m.inst.host,
                m.inst.port,
                m.replicas.len(),
                m.sentinels.len() + 1
            ));
        }
    }
    ctx.out.verbatim(out.as_bytes());
}

fn role(ctx: &mut Ctx, _argv: &[&[u8]]) {
    let s = shared().s.lock();
    ctx.out.array(2);
    ctx.out.bulk(b"sentinel");
    ctx.out.array(s.masters.len());
    for n in s.masters.keys() {
        ctx.out.bulk(n.as_bytes());
    }
}

/// PUBLISH to a sentinel: only hello messages, which are processed as if heard on a link.
fn publish(ctx: &mut Ctx, argv: &[&[u8]]) {
    if argv[1] != HELLO_CHANNEL.as_bytes() {
        ctx.out.error("ERR Only HELLO messages are accepted by Sentinel instances.");
        return;
    }
    let mut s = shared().s.lock();
    monitor::on_hello(&mut s, None, &text(argv[2]));
    ctx.out.int(1);
}
