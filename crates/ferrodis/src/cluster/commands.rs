//! CLUSTER and its subcommands, ASKING, READONLY and READWRITE, with Redis 7.0's replies and
//! error texts.

use super::bus::{self, SLOTS};
use super::gossip::Bus;
use super::node::{name_str, random_name};
use super::Shared;
use crate::commands::table::{cmd, container, flag::*, CommandSpec, NO_KEYS};
use crate::commands::{eq, Ctx, NOT_INT};
use crate::util::parse_i64;
use std::fmt::Write as _;
use std::sync::Arc;

const A: &str = "@admin @slow @dangerous";
const S: &str = "@slow";

pub static COMMANDS: &[CommandSpec] = &[
    container(
        "cluster",
        -2,
        S,
        &[
            cmd("addslots", -3, ADMIN | STALE, A, NO_KEYS, addslots),
            cmd("addslotsrange", -4, ADMIN | STALE, A, NO_KEYS, addslotsrange),
            cmd("bumpepoch", 2, ADMIN | STALE, A, NO_KEYS, bumpepoch),
            cmd("count-failure-reports", 3, ADMIN | STALE, A, NO_KEYS, count_failure_reports),
            cmd("countkeysinslot", 3, STALE, S, NO_KEYS, countkeysinslot),
            cmd("delslots", -3, ADMIN | STALE, A, NO_KEYS, delslots),
            cmd("delslotsrange", -4, ADMIN | STALE, A, NO_KEYS, delslotsrange),
            cmd("failover", -2, ADMIN | STALE, A, NO_KEYS, failover),
            cmd("flushslots", 2, ADMIN | STALE, A, NO_KEYS, flushslots),
            cmd("forget", 3, ADMIN | STALE, A, NO_KEYS, forget),
            cmd("getkeysinslot", 4, STALE, S, NO_KEYS, getkeysinslot),
            cmd("help", 2, LOADING | STALE, S, NO_KEYS, help),
            cmd("info", 2, STALE, S, NO_KEYS, info),
            cmd("keyslot", 3, STALE, S, NO_KEYS, keyslot),
            cmd("links", 2, STALE, S, NO_KEYS, links),
            cmd("meet", -4, ADMIN | STALE, A, NO_KEYS, meet),
            cmd("myid", 2, STALE, S, NO_KEYS, myid),
            cmd("myshardid", 2, STALE, S, NO_KEYS, myshardid),
            cmd("nodes", 2, STALE, S, NO_KEYS, nodes),
            cmd("replicas", 3, ADMIN | STALE, A, NO_KEYS, replicas),
            cmd("replicate", 3, ADMIN | STALE, A, NO_KEYS, replicate),
            cmd("reset", -2, ADMIN | STALE | NOSCRIPT, A, NO_KEYS, reset),
            cmd("saveconfig", 2, ADMIN | STALE, A, NO_KEYS, saveconfig),
            cmd("set-config-epoch", 3, ADMIN | STALE, A, NO_KEYS, set_config_epoch),
            cmd("setslot", -4, ADMIN | STALE, A, NO_KEYS, setslot),
            cmd("shards", 2, STALE, S, NO_KEYS, shards),
            cmd("slaves", 3, ADMIN | STALE, A, NO_KEYS, replicas),
            cmd("slots", 2, STALE, S, NO_KEYS, slots),
        ],
    ),
    cmd("asking", 1, FAST, "@fast @connection", NO_KEYS, asking),
    cmd("readonly", 1, FAST | LOADING | STALE, "@fast @connection", NO_KEYS, readonly),
    cmd("readwrite", 1, FAST | LOADING | STALE, "@fast @connection", NO_KEYS, readwrite),
];

const DISABLED: &str = "ERR This instance has cluster support disabled";

fn cluster(ctx: &mut Ctx) -> Option<&'static Arc<Shared>> {
    let sh = super::shared();
    if sh.is_none() {
        ctx.out.error(DISABLED);
    }
    sh
}

/// Runs `f` on the cluster's state through the algorithm (so saves, routing and messages
/// follow), answering DISABLED when cluster mode is off.
fn with_bus<R>(ctx: &mut Ctx, f: impl FnOnce(&mut Bus) -> R) -> Option<R> {
    let sh = cluster(ctx)?;
    Some(sh.with_bus(f).0)
}

/// OK, or the error the change was refused with.
fn reply(ctx: &mut Ctx, res: Result<(), String>) {
    match res {
        Ok(()) => ctx.out.ok(),
        Err(e) => ctx.out.error(&e),
    }
}

fn unknown_node(ctx: &mut Ctx, n: &[u8]) {
    ctx.out.error(&format!("ERR Unknown node {}", String::from_utf8_lossy(n)));
}

fn asking(ctx: &mut Ctx, _argv: &[&[u8]]) {
    if cluster(ctx).is_some() {
        ctx.conn.asking = true;
        ctx.out.ok();
    }
}

fn readonly(ctx: &mut Ctx, _argv: &[&[u8]]) {
    if cluster(ctx).is_some() {
        ctx.conn.cluster_readonly = true;
        ctx.out.ok();
    }
}

fn readwrite(ctx: &mut Ctx, _argv: &[&[u8]]) {
    if cluster(ctx).is_some() {
        ctx.conn.cluster_readonly = false;
        ctx.out.ok();
    }
}

fn help(ctx: &mut Ctx, _argv: &[&[u8]]) {
    let lines = [
        "CLUSTER <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "ADDSLOTS <slot> [<slot> ...]",
        "ADDSLOTSRANGE <start slot> <end slot> [<start slot> <end slot> ...]",
        "BUMPEPOCH",
        "COUNT-FAILURE-REPORTS <node-id>",
        "COUNTKEYSINSLOT <slot>",
        "DELSLOTS <slot> [<slot> ...]",
        "DELSLOTSRANGE <start slot> <end slot> [<start slot> <end slot> ...]",
        "FAILOVER [FORCE|TAKEOVER]",
        "FORGET <node-id>",
        "FLUSHSLOTS",
        "GETKEYSINSLOT <slot> <count>",
        "INFO",
        "KEYSLOT <key>",
        "LINKS",
        "MEET <ip> <port> [<bus-port>]",
        "MYID",
        "MYSHARDID",
        "NODES",
        "REPLICATE <node-id>",
        "RESET [HARD|SOFT]",
        "SET-CONFIG-EPOCH <epoch>",
        "SETSLOT <slot> (IMPORTING <node-id>|MIGRATING <node-id>|STABLE|NODE <node-id>)",
        "REPLICAS <node-id>",
        "SAVECONFIG",
        "SHARDS",
        "SLOTS",
        "HELP",
        "    Print this help.",
    ];
    crate::commands::reply_help(ctx, &lines);
}

fn info(ctx: &mut Ctx, _argv: &[&[u8]]) {
    let Some(sh) = cluster(ctx) else { return };
    let c = sh.c.lock();
    let (mut ok, mut pfail, mut fail, mut assigned) = (0, 0, 0, 0);
    for j in 0..SLOTS {
        if let Some(n) = c.slots[j].and_then(|o| c.nodes.get(&o)) {
            assigned += 1;
            if n.failed() {
                fail += 1;
            } else if n.timed_out() {
                pfail += 1;
            } else {
                ok += 1;
            }
        }
    }
    let me = c.me();
    let my_epoch = if me.is_replica() { me.slaveof.and_then(|m| c.nodes.get(&m)).map_or(0, |m| m.config_epoch) } else { me.config_epoch };
    let mut s = format!(
        "cluster_state:{}\r\ncluster_slots_assigned:{}\r\ncluster_slots_ok:{}\r\ncluster_slots_pfail:{}\r\ncluster_slots_fail:{}\r\ncluster_known_nodes:{}\r\ncluster_size:{}\r\ncluster_current_epoch:{}\r\ncluster_my_epoch:{}\r\n",
        if c.state_ok { "ok" } else { "fail" },
        assigned,
        ok,
        pfail,
        fail,
        c.nodes.len(),
        c.size,
        c.current_epoch,
        my_epoch
    );
    let mut total = 0;
    for (i, n) in c.stats_sent.iter().enumerate() {
        if *n > 0 {
            let _ = write!(s, "cluster_stats_messages_{}_sent:{}\r\n", bus::TYPE_NAMES[i], n);
            total += n;
        }
    }
    let _ = write!(s, "cluster_stats_messages_sent:{}\r\n", total);
    let mut total = 0;
    for (i, n) in c.stats_received.iter().enumerate() {
        if *n > 0 {
            let _ = write!(s, "cluster_stats_messages_{}_received:{}\r\n", bus::TYPE_NAMES[i], n);
            total += n;
        }
    }
    let _ = write!(s, "cluster_stats_messages_received:{}\r\ntotal_cluster_links_buffer_limit_exceeded:0\r\n", total);
    drop(c);
    ctx.out.verbatim(s.as_bytes());
}

fn myid(ctx: &mut Ctx, _argv: &[&[u8]]) {
    let Some(sh) = cluster(ctx) else { return };
    let id = sh.c.lock().myself;
    ctx.out.bulk(&id);
}

fn myshardid(ctx: &mut Ctx, _argv: &[&[u8]]) {
    let Some(sh) = cluster(ctx) else { return };
    let id = sh.c.lock().me().shard_id;
    ctx.out.bulk(&id);
}

fn nodes(ctx: &mut Ctx, _argv: &[&[u8]]) {
    let Some(sh) = cluster(ctx) else { return };
    let s = sh.c.lock().nodes_text(!ctx.conn.tls);
    ctx.out.verbatim(s.as_bytes());
}

fn keyslot(ctx: &mut Ctx, argv: &[&[u8]]) {
    ctx.out.int(crate::util::key_slot(argv[2]) as i64);
}

/// Redis's getSlotOrReply.
fn slot_arg(ctx: &mut Ctx, a: &[u8]) -> Option<usize> {
    match parse_i64(a) {
        Some(s) if (0..SLOTS as i64).contains(&s) => Some(s as usize),
        _ => {
            ctx.out.error("ERR Invalid or out of range slot");
            None
        }
    }
}

fn countkeysinslot(ctx: &mut Ctx, argv: &[&[u8]]) {
    if cluster(ctx).is_none() {
        return;
    }
    match parse_i64(argv[2]) {
        None => ctx.out.error(NOT_INT),
        Some(s) if !(0..SLOTS as i64).contains(&s) => ctx.out.error("ERR Invalid slot"),
        Some(s) => {
            let n = super::keys_in_slot(ctx.st, s as usize);
            ctx.out.int(n as i64);
        }
    }
}

fn getkeysinslot(ctx: &mut Ctx, argv: &[&[u8]]) {
    if cluster(ctx).is_none() {
        return;
    }
    let (Some(slot), Some(count)) = (parse_i64(argv[2]), parse_i64(argv[3])) else {
        ctx.out.error(NOT_INT);
        return;
    };
    if !(0..SLOTS as i64).contains(&slot) || count < 0 {
        ctx.out.error("ERR Invalid slot or number of keys");
        return;
    }
    let slot = slot as usize;
    let keys: Vec<Vec<u8>> = {
        let g = ctx.st.keyspace.lock(slot % crate::keyspace::STRIPES);
        g.slot(0, slot).map(|t| t.iter().take(count as usize).map(|e| e.key.to_vec()).collect()).unwrap_or_default()
    };
    ctx.out.array(keys.len());
    for k in keys {
        ctx.out.bulk(&k);
    }
}

fn meet(ctx: &mut Ctx, argv: &[&[u8]]) {
    if argv.len() > 5 {
        ctx.out.error("ERR wrong number of arguments for 'cluster|meet' command");
        return;
    }
    let ip = String::from_utf8_lossy(argv[2]).into_owned();
    let Some(port) = parse_i64(argv[3]).filter(|p| (0..=65535).contains(p)) else {
        ctx.out.error(&format!("ERR Invalid TCP base port specified: {}", String::from_utf8_lossy(argv[3])));
        return;
    };
    let cport = match argv.get(4) {
        Some(a) => match parse_i64(a).filter(|p| (0..=65535).contains(p)) {
            Some(p) => p,
            None => {
                ctx.out.error(&format!("ERR Invalid TCP bus port specified: {}", String::from_utf8_lossy(a)));
                return;
            }
        },
        None => port + 10000,
    };
    let normalized = match ip.parse::<std::net::IpAddr>() {
        Ok(a) if port != 0 && cport != 0 && cport <= 65535 => a.to_string(),
        _ => {
            ctx.out.error(&format!("ERR Invalid node address specified: {}:{}", ip, port));
            return;
        }
    };
    if with_bus(ctx, |b| b.start_handshake(&normalized, port as u16, cport as u16, true)).is_some() {
        ctx.out.ok();
    }
}

/// Parses slot arguments (single slots, or ranges) and checks each against the slot map.
fn slot_list(ctx: &mut Ctx, argv: &[&[u8]], ranges: bool) -> Option<Vec<usize>> {
    let args = &argv[2..];
    if ranges && !args.len().is_multiple_of(2) {
        ctx.out.error(&format!(
            "ERR wrong number of arguments for 'cluster|{}' command",
            String::from_utf8_lossy(argv[1]).to_ascii_lowercase()
        ));
        return None;
    }
    let mut v = Vec::new();
    if ranges {
        for p in args.chunks(2) {
            let a = slot_arg(ctx, p[0])?;
            let b = slot_arg(ctx, p[1])?;
            if a > b {
                ctx.out.error(&format!("ERR start slot number {} is greater than end slot number {}", a, b));
                return None;
            }
            v.extend(a..=b);
        }
    } else {
        for a in args {
            v.push(slot_arg(ctx, a)?);
        }
    }
    Some(v)
}

fn add_or_del(ctx: &mut Ctx, argv: &[&[u8]], ranges: bool, add: bool) {
    let Some(sh) = cluster(ctx) else { return };
    let Some(slots) = slot_list(ctx, argv, ranges) else { return };
    let res = sh.with_bus(|b| {
        let mut seen = vec![false; SLOTS];
        for &j in &slots {
            if add && b.s.slots[j].is_some() {
                return Err(format!("ERR Slot {} is already busy", j));
            }
            if !add && b.s.slots[j].is_none() {
                return Err(format!("ERR Slot {} is already unassigned", j));
            }
            if seen[j] {
                return Err(format!("ERR Slot {} specified multiple times", j));
            }
            seen[j] = true;
        }
        let me = b.s.myself;
        for &j in &slots {
            if add {
                b.s.importing[j] = None;
                b.s.add_slot(me, j);
            } else {
                b.s.del_slot(j);
            }
        }
        b.s.todo_save = true;
        b.s.todo_update_state = true;
        Ok(())
    });
    reply(ctx, res.0)
}

fn addslots(ctx: &mut Ctx, argv: &[&[u8]]) {
    add_or_del(ctx, argv, false, true)
}
fn addslotsrange(ctx: &mut Ctx, argv: &[&[u8]]) {
    add_or_del(ctx, argv, true, true)
}
fn delslots(ctx: &mut Ctx, argv: &[&[u8]]) {
    add_or_del(ctx, argv, false, false)
}
fn delslotsrange(ctx: &mut Ctx, argv: &[&[u8]]) {
    add_or_del(ctx, argv, true, false)
}

fn flushslots(ctx: &mut Ctx, _argv: &[&[u8]]) {
    if cluster(ctx).is_none() {
        return;
    }
    if ctx.st.keyspace.dbsize(0) != 0 {
        ctx.out.error("ERR DB must be empty to perform CLUSTER FLUSHSLOTS.");
        return;
    }
    with_bus(ctx, |b| {
        let me = b.s.myself;
        b.s.del_node_slots(&me);
        b.s.todo_save = true;
        b.s.todo_update_state = true;
    });
    ctx.out.ok();
}

fn setslot(ctx: &mut Ctx, argv: &[&[u8]]) {
    let Some(sh) = cluster(ctx) else { return };
    if sh.c.lock().me().is_replica() {
        ctx.out.error("ERR Please use SETSLOT only with masters.");
        return;
    }
    let Some(slot) = slot_arg(ctx, argv[2]) else { return };
    let action = String::from_utf8_lossy(argv[3]).to_ascii_lowercase();
    let keys = super::keys_in_slot(ctx.st, slot);
    let res = sh.with_bus(|b| -> Result<(), String> {
        let me = b.s.myself;
        let node_arg = |b: &Bus, i: usize| argv.get(i).and_then(|a| b.s.lookup(a));
        match (action.as_str(), argv.len()) {
            ("migrating", 5) => {
                if b.s.slots[slot] != Some(me) {
                    return Err(format!("ERR I'm not the owner of hash slot {}", slot));
                }
                let n = node_arg(b, 4).ok_or_else(|| format!("ERR I don't know about node {}", String::from_utf8_lossy(argv[4])))?;
                if b.s.nodes[&n].is_replica() {
                    return Err("ERR Target node is not a master".into());
                }
                b.s.migrating[slot] = Some(n);
            }
            ("importing", 5) => {
                if b.s.slots[slot] == Some(me) {
                    return Err(format!("ERR I'm already the owner of hash slot {}", slot));
                }
                let n = node_arg(b, 4).ok_or_else(|| format!("ERR I don't know about node {}", String::from_utf8_lossy(argv[4])))?;
                if b.s.nodes[&n].is_replica() {
                    return Err("ERR Target node is not a master".into());
                }
                b.s.importing[slot] = Some(n);
            }
            ("stable", 4) => {
                b.s.migrating[slot] = None;
                b.s.importing[slot] = None;
            }
            ("node", 5) => {
                let n = node_arg(b, 4).ok_or_else(|| format!("ERR Unknown node {}", String::from_utf8_lossy(argv[4])))?;
                if b.s.nodes[&n].is_replica() {
                    return Err(format!("ERR Can't assign hashslot {} to a replica node.", slot));
                }
                let was_mine = b.s.slots[slot] == Some(me);
                if was_mine && n != me && keys != 0 {
                    return Err(format!(
                        "ERR Can't assign hashslot {} to a different node while I still hold keys for this hash slot.",
                        slot
                    ));
                }
                if keys == 0 && b.s.migrating[slot].is_some() {
                    b.s.migrating[slot] = None;
                }
                if n == me && b.s.importing[slot].is_some() {
                    // Our ownership must win over the old owner's: a new epoch, without
                    // agreement (Redis does the same here).
                    if b.bump_epoch_without_consensus() {
                        tracing::info!("configEpoch updated after importing slot {}", slot);
                    }
                    b.s.importing[slot] = None;
                }
                b.s.del_slot(slot);
                b.s.add_slot(n, slot);
                if was_mine && n != me && b.s.me().numslots == 0 && b.env.allow_replica_migration {
                    b.set_my_master(n);
                }
            }
            _ => return Err("ERR Invalid CLUSTER SETSLOT action or number of arguments. Try CLUSTER HELP".into()),
        }
        b.s.todo_save = true;
        b.s.todo_update_state = true;
        Ok(())
    });
    reply(ctx, res.0)
}

fn replicate(ctx: &mut Ctx, argv: &[&[u8]]) {
    let Some(sh) = cluster(ctx) else { return };
    let dbsize = ctx.st.keyspace.dbsize(0);
    let res = sh.with_bus(|b| -> Result<(), String> {
        let Some(n) = b.s.lookup(argv[2]) else {
            return Err(format!("ERR Unknown node {}", String::from_utf8_lossy(argv[2])));
        };
        if n == b.s.myself {
            return Err("ERR Can't replicate myself".into());
        }
        if b.s.nodes[&n].is_replica() {
            return Err("ERR I can only replicate a master, not a replica.".into());
        }
        if b.s.me().is_master() && (b.s.me().numslots != 0 || dbsize != 0) {
            return Err("ERR To set a master the node must be empty and without assigned slots.".into());
        }
        b.set_my_master(n);
        Ok(())
    });
    reply(ctx, res.0)
}

fn replicas(ctx: &mut Ctx, argv: &[&[u8]]) {
    let Some(sh) = cluster(ctx) else { return };
    let c = sh.c.lock();
    let Some(n) = c.lookup(argv[2]) else {
        drop(c);
        unknown_node(ctx, argv[2]);
        return;
    };
    if c.nodes[&n].is_replica() {
        drop(c);
        ctx.out.error("ERR The specified node is not a master");
        return;
    }
    let lines: Vec<String> = c.replicas_of(&n).iter().map(|r| c.describe(&c.nodes[r], true, !ctx.conn.tls)).collect();
    drop(c);
    ctx.out.array(lines.len());
    for l in lines {
        ctx.out.bulk(l.as_bytes());
    }
}

fn forget(ctx: &mut Ctx, argv: &[&[u8]]) {
    let Some(sh) = cluster(ctx) else { return };
    let res = sh.with_bus(|b| -> Result<(), String> {
        let Some(n) = b.s.lookup(argv[2]) else {
            return Err(format!("ERR Unknown node {}", String::from_utf8_lossy(argv[2])));
        };
        if n == b.s.myself {
            return Err("ERR I tried hard but I can't forget myself...".into());
        }
        if b.s.me().is_replica() && b.s.me().slaveof == Some(n) {
            return Err("ERR Can't forget my master!".into());
        }
        let until = b.env.now + 60_000;
        b.s.blacklist.insert(n, until);
        b.s.del_node(&n);
        b.s.todo_save = true;
        b.s.todo_update_state = true;
        Ok(())
    });
    reply(ctx, res.0)
}

fn count_failure_reports(ctx: &mut Ctx, argv: &[&[u8]]) {
    let Some(sh) = cluster(ctx) else { return };
    let now = crate::util::now_ms();
    let timeout = ctx.st.config.get_int("cluster-node-timeout");
    let c = sh.c.lock();
    let Some(n) = c.lookup(argv[2]) else {
        drop(c);
        unknown_node(ctx, argv[2]);
        return;
    };
    let count = c.nodes[&n].fail_reports.iter().filter(|(_, t)| now - t <= timeout * 2).count();
    drop(c);
    ctx.out.int(count as i64);
}

fn saveconfig(ctx: &mut Ctx, _argv: &[&[u8]]) {
    let Some(sh) = cluster(ctx) else { return };
    let mut c = sh.c.lock();
    if super::save_config(sh, &mut c) {
        drop(c);
        ctx.out.ok();
    } else {
        drop(c);
        ctx.out.error("ERR error saving the cluster node config: see the log");
    }
}

fn set_config_epoch(ctx: &mut Ctx, argv: &[&[u8]]) {
    let Some(sh) = cluster(ctx) else { return };
    let Some(epoch) = parse_i64(argv[2]) else {
        ctx.out.error(NOT_INT);
        return;
    };
    if epoch < 0 {
        ctx.out.error(&format!("ERR Invalid config epoch specified: {}", epoch));
        return;
    }
    let res = sh.with_bus(|b| -> Result<(), String> {
        if b.s.nodes.len() > 1 {
            return Err("ERR The user can assign a config epoch only when the node does not know any other node.".into());
        }
        if b.s.me().config_epoch != 0 {
            return Err("ERR Node config epoch is already non-zero".into());
        }
        b.s.me_mut().config_epoch = epoch as u64;
        tracing::info!("configEpoch set to {} via CLUSTER SET-CONFIG-EPOCH", epoch);
        if b.s.current_epoch < epoch as u64 {
            b.s.current_epoch = epoch as u64;
        }
        b.s.todo_save = true;
        Ok(())
    });
    reply(ctx, res.0)
}

fn bumpepoch(ctx: &mut Ctx, _argv: &[&[u8]]) {
    let Some((bumped, e)) = with_bus(ctx, |b| {
        let bumped = b.bump_epoch_without_consensus();
        (bumped, b.s.me().config_epoch)
    }) else {
        return;
    };
    ctx.out.simple(format!("{} {}", if bumped { "BUMPED" } else { "STILL" }, e).as_bytes());
}

fn failover(ctx: &mut Ctx, argv: &[&[u8]]) {
    let Some(sh) = cluster(ctx) else { return };
    let (mut force, mut takeover) = (false, false);
    match argv.len() {
        2 => {}
        3 if eq(argv[2], "force") => force = true,
        3 if eq(argv[2], "takeover") => takeover = true,
        _ => {
            ctx.out.error(crate::commands::SYNTAX);
            return;
        }
    }
    let res = sh.with_bus(|b| -> Result<(), String> {
        let me = b.s.me();
        if me.is_master() {
            return Err("ERR You should send CLUSTER FAILOVER to a replica".into());
        }
        let Some(master) = me.slaveof.and_then(|m| b.s.nodes.get(&m)) else {
            return Err("ERR I'm a replica but my master is unknown to me".into());
        };
        if !force && !takeover && (master.failed() || master.link.is_none()) {
            return Err("ERR Master is down or failed, please use CLUSTER FAILOVER FORCE".into());
        }
        let master = master.name;
        b.reset_manual_failover();
        b.s.mf_end = b.env.now + 5000;
        if takeover {
            tracing::info!("Taking over the master (user request).");
            b.bump_epoch_without_consensus();
            b.replace_my_master();
        } else if force {
            tracing::info!("Forced failover user request accepted.");
            b.s.mf_can_start = true;
        } else {
            tracing::info!("Manual failover user request accepted.");
            let mut m = bus::Msg::decode(&b.ping_msg(bus::PING, None)).expect("our own message");
            m.kind = bus::MFSTART;
            m.body = bus::Body::Empty;
            m.mflags = [0; 3];
            b.s.stats_sent[bus::MFSTART as usize] += 1;
            b.fx.out.push(super::gossip::Out::To(master, m.encode()));
        }
        Ok(())
    });
    reply(ctx, res.0)
}

fn reset(ctx: &mut Ctx, argv: &[&[u8]]) {
    let Some(sh) = cluster(ctx) else { return };
    let hard = match argv.get(2) {
        None => false,
        Some(a) if eq(a, "hard") && argv.len() == 3 => true,
        Some(a) if eq(a, "soft") && argv.len() == 3 => false,
        _ => {
            ctx.out.error(crate::commands::SYNTAX);
            return;
        }
    };
    let is_master = sh.c.lock().me().is_master();
    if is_master && ctx.st.keyspace.dbsize(0) != 0 {
        ctx.out.error("ERR CLUSTER RESET can't be called with master nodes containing keys");
        return;
    }
    let was_replica = !is_master;
    if was_replica {
        crate::replication::promote(ctx.st);
        let mut guards = ctx.st.keyspace.lock_all();
        for g in guards.iter_mut() {
            for db in 0..ctx.st.keyspace.databases {
                drop(g.take_db(db));
            }
        }
    }
    with_bus(ctx, |b| reset_state(b, hard));
    ctx.out.ok();
}

/// Redis's clusterReset: forget every other node and every slot; HARD also takes a new name
/// and zeroes the epochs.
fn reset_state(b: &mut Bus, hard: bool) {
    let me = b.s.myself;
    for j in 0..SLOTS {
        b.s.migrating[j] = None;
        b.s.importing[j] = None;
    }
    b.s.del_node_slots(&me);
    let others: Vec<_> = b.s.nodes.keys().copied().filter(|n| *n != me).collect();
    for n in others {
        b.s.del_node(&n);
    }
    {
        let m = b.s.me_mut();
        m.flags = bus::F_MYSELF | bus::F_MASTER;
        m.slaveof = None;
    }
    if hard {
        b.s.current_epoch = 0;
        b.s.last_vote_epoch = 0;
        let mut node = b.s.nodes.remove(&me).expect("myself");
        node.config_epoch = 0;
        node.name = random_name();
        let new = node.name;
        b.s.nodes.insert(new, node);
        b.s.myself = new;
        tracing::info!("Node hard reset, now I'm {}", name_str(&new));
    }
    b.s.todo_save = true;
    b.s.todo_update_state = true;
}

fn node_reply(ctx: &mut Ctx, n: &super::node::Node) {
    ctx.out.array(4);
    ctx.out.bulk(n.ip.as_bytes());
    ctx.out.int(n.client_port(!ctx.conn.tls) as i64);
    ctx.out.bulk(&n.name);
    if n.hostname.is_empty() {
        ctx.out.map(0);
    } else {
        ctx.out.map(1);
        ctx.out.bulk(b"hostname");
        ctx.out.bulk(n.hostname.as_bytes());
    }
}

fn slots(ctx: &mut Ctx, _argv: &[&[u8]]) {
    let Some(sh) = cluster(ctx) else { return };
    let c = sh.c.lock();
    let mut ranges = Vec::new();
    let mut j = 0;
    while j < SLOTS {
        if let Some(o) = c.slots[j] {
            let start = j;
            while j + 1 < SLOTS && c.slots[j + 1] == Some(o) {
                j += 1;
            }
            ranges.push((start, j, o));
        }
        j += 1;
    }
    ctx.out.array(ranges.len());
    for (a, b, o) in ranges {
        let master = &c.nodes[&o];
        let reps: Vec<_> = c.replicas_of(&o).into_iter().filter(|r| !c.nodes[r].failed()).collect();
        ctx.out.array(3 + reps.len());
        ctx.out.int(a as i64);
        ctx.out.int(b as i64);
        node_reply(ctx, master);
        for r in reps {
            node_reply(ctx, &c.nodes[&r]);
        }
    }
}

fn shards(ctx: &mut Ctx, _argv: &[&[u8]]) {
    let Some(sh) = cluster(ctx) else { return };
    let my_offset = ctx.st.journal.offset();
    let c = sh.c.lock();
    let mut masters: Vec<_> = c.nodes.values().filter(|n| n.is_master()).map(|n| n.name).collect();
    masters.sort();
    ctx.out.array(masters.len());
    for m in masters {
        let node = &c.nodes[&m];
        ctx.out.map(2);
        ctx.out.bulk(b"slots");
        let pairs = node.slots.ranges();
        ctx.out.array(pairs.len() * 2);
        for (a, b) in pairs {
            ctx.out.int(a as i64);
            ctx.out.int(b as i64);
        }
        ctx.out.bulk(b"nodes");
        let mut members = vec![m];
        members.extend(c.replicas_of(&m));
        ctx.out.array(members.len());
        for n in members {
            let n = &c.nodes[&n];
            let offset = if n.name == c.myself { my_offset } else { n.repl_offset };
            // tls-cluster: "tls-port" is the node's port, "port" its plaintext one (if any).
            let tls_cluster = ctx.st.config.get("tls-cluster").as_deref() == Some("yes");
            let ports = usize::from(!tls_cluster || n.pport != 0) + usize::from(tls_cluster);
            let fields = 6 + ports + usize::from(!n.hostname.is_empty());
            ctx.out.map(fields);
            ctx.out.bulk(b"id");
            ctx.out.bulk(&n.name);
            if tls_cluster {
                if n.pport != 0 {
                    ctx.out.bulk(b"port");
                    ctx.out.int(n.pport as i64);
                }
                ctx.out.bulk(b"tls-port");
                ctx.out.int(n.port as i64);
            } else {
                ctx.out.bulk(b"port");
                ctx.out.int(n.port as i64);
            }
            ctx.out.bulk(b"ip");
            ctx.out.bulk(n.ip.as_bytes());
            ctx.out.bulk(b"endpoint");
            ctx.out.bulk(n.ip.as_bytes());
            if !n.hostname.is_empty() {
                ctx.out.bulk(b"hostname");
                ctx.out.bulk(n.hostname.as_bytes());
            }
            ctx.out.bulk(b"role");
            ctx.out.bulk(if n.is_master() { b"master" as &[u8] } else { b"replica" });
            ctx.out.bulk(b"replication-offset");
            ctx.out.int(offset as i64);
            ctx.out.bulk(b"health");
            let health: &[u8] = if n.failed() {
                b"fail"
            } else if n.is_replica() && offset == 0 {
                b"loading"
            } else {
                b"online"
            };
            ctx.out.bulk(health);
        }
    }
}

fn links(ctx: &mut Ctx, _argv: &[&[u8]]) {
    let Some(sh) = cluster(ctx) else { return };
    let c = sh.c.lock();
    let mut items = Vec::new();
    for n in c.nodes.values() {
        if let Some(l) = &n.link {
            items.push(("to", n.name, l.ctime));
        }
        if let Some((_, t)) = n.inbound {
            items.push(("from", n.name, t));
        }
    }
    drop(c);
    ctx.out.array(items.len());
    for (dir, name, t) in items {
        ctx.out.map(6);
        ctx.out.bulk(b"direction");
        ctx.out.bulk(dir.as_bytes());
        ctx.out.bulk(b"node");
        ctx.out.bulk(&name);
        ctx.out.bulk(b"create-time");
        ctx.out.int(t);
        ctx.out.bulk(b"events");
        ctx.out.bulk(if dir == "to" { b"rw" as &[u8] } else { b"r" });
        ctx.out.bulk(b"send-buffer-allocated");
        ctx.out.int(0);
        ctx.out.bulk(b"send-buffer-used");
        ctx.out.int(0);
    }
}
