//! Pub/Sub (Redis's pubsub.c): SUBSCRIBE, PSUBSCRIBE, SSUBSCRIBE and their UNSUBSCRIBEs,
//! PUBLISH, SPUBLISH, PUBSUB. Subscriptions live in `state::pubsub`; the connection delivers the
//! messages from its mailbox (`server::connection`).

use super::table::{cmd, container, flag::*, range, CommandSpec, NO_KEYS};
use super::{ConnState, Ctx, PubSubConn};
use crate::state::pubsub::{Kind, Limits};
use std::sync::atomic::Ordering;

const SUB: u32 = PUBSUB | NOSCRIPT | LOADING | STALE | PUSH_REPLY;

static PUBSUB_SUBS: &[CommandSpec] = &[
    cmd("channels", -2, PUBSUB | LOADING | STALE, "@pubsub @slow", NO_KEYS, pubsub_channels),
    cmd("numsub", -2, PUBSUB | LOADING | STALE, "@pubsub @slow", NO_KEYS, pubsub_numsub),
    cmd("numpat", 2, PUBSUB | LOADING | STALE, "@pubsub @slow", NO_KEYS, pubsub_numpat),
    cmd("shardchannels", -2, PUBSUB | LOADING | STALE, "@pubsub @slow", NO_KEYS, pubsub_shardchannels),
    cmd("shardnumsub", -2, PUBSUB | LOADING | STALE, "@pubsub @slow", NO_KEYS, pubsub_shardnumsub),
    cmd("help", 2, LOADING | STALE, "@slow", NO_KEYS, pubsub_help),
];

pub static COMMANDS: &[CommandSpec] = &[
    cmd("subscribe", -2, SUB, "@pubsub @slow", NO_KEYS, subscribe),
    cmd("unsubscribe", -1, SUB, "@pubsub @slow", NO_KEYS, unsubscribe),
    cmd("psubscribe", -2, SUB, "@pubsub @slow", NO_KEYS, psubscribe),
    cmd("punsubscribe", -1, SUB, "@pubsub @slow", NO_KEYS, punsubscribe),
    cmd("ssubscribe", -2, SUB, "@pubsub @slow", range(1, -1, 1), ssubscribe),
    cmd("sunsubscribe", -1, SUB, "@pubsub @slow", range(1, -1, 1), sunsubscribe),
    cmd("publish", 3, PUBSUB | LOADING | STALE | FAST | MAY_REPLICATE, "@pubsub @fast", NO_KEYS, publish),
    cmd("spublish", 3, PUBSUB | LOADING | STALE | FAST | MAY_REPLICATE, "@pubsub @fast", range(1, 1, 1), spublish),
    container("pubsub", -2, "@slow", PUBSUB_SUBS),
];

/// The connection's subscription state, created on its first subscription.
fn conn_pubsub<'a>(ctx: &'a mut Ctx) -> &'a mut PubSubConn {
    ctx.conn.inbox(&ctx.st.inboxes)
}

fn list_of(ps: &mut PubSubConn, k: Kind) -> &mut Vec<Vec<u8>> {
    match k {
        Kind::Channel => &mut ps.channels,
        Kind::Pattern => &mut ps.patterns,
        Kind::Shard => &mut ps.shard,
    }
}

/// The count a (un)subscribe confirmation carries: channels + patterns, or shard channels.
fn count_for(ps: &PubSubConn, k: Kind) -> usize {
    match k {
        Kind::Shard => ps.shard.len(),
        _ => ps.channels.len() + ps.patterns.len(),
    }
}

fn confirm(ctx: &mut Ctx, what: &[u8], name: Option<&[u8]>, count: usize) {
    ctx.out.push(3);
    ctx.out.bulk(what);
    match name {
        Some(n) => ctx.out.bulk(n),
        None => ctx.out.null(),
    }
    ctx.out.int(count as i64);
}

fn update_info(ctx: &mut Ctx) {
    let (c, p, s) = ctx.conn.pubsub.as_ref().map_or((0, 0, 0), |ps| (ps.channels.len(), ps.patterns.len(), ps.shard.len()));
    let info = &ctx.conn.info;
    info.sub.store(c, Ordering::Relaxed);
    info.psub.store(p, Ordering::Relaxed);
    info.ssub.store(s, Ordering::Relaxed);
}

fn subscribe_generic(ctx: &mut Ctx, argv: &[&[u8]], k: Kind, what: &[u8]) {
    for name in &argv[1..] {
        let st = ctx.st;
        let ps = conn_pubsub(ctx);
        if st.pubsub.subscribe(k, name, &ps.mailbox) {
            list_of(ps, k).push(name.to_vec());
        }
        let n = count_for(ps, k);
        confirm(ctx, what, Some(name), n);
    }
    update_info(ctx);
}

/// Removes subscriptions (all of a kind when `names` is empty), confirming each.
fn unsubscribe_generic(ctx: &mut Ctx, names: &[&[u8]], k: Kind, what: &[u8], reply: bool) {
    let st = ctx.st;
    let id = ctx.conn.info.id;
    let targets: Vec<Vec<u8>> = if names.is_empty() {
        ctx.conn.pubsub.as_mut().map(|ps| list_of(ps, k).clone()).unwrap_or_default()
    } else {
        names.iter().map(|n| n.to_vec()).collect()
    };
    if targets.is_empty() && reply {
        let n = ctx.conn.pubsub.as_ref().map_or(0, |ps| count_for(ps, k));
        confirm(ctx, what, None, n);
    }
    for name in targets {
        st.pubsub.unsubscribe(k, &name, id);
        let n = match ctx.conn.pubsub.as_mut() {
            Some(ps) => {
                list_of(ps, k).retain(|x| *x != name);
                count_for(ps, k)
            }
            None => 0,
        };
        if reply {
            confirm(ctx, what, Some(&name), n);
        }
    }
    update_info(ctx);
}

/// Drops every subscription of the connection, silently (RESET, disconnect).
pub fn unsubscribe_all(st: &crate::state::State, conn: &mut ConnState) {
    let Some(ps) = conn.pubsub.as_mut() else { return };
    let id = conn.info.id;
    for (k, names) in [(Kind::Channel, &mut ps.channels), (Kind::Pattern, &mut ps.patterns), (Kind::Shard, &mut ps.shard)] {
        for n in names.drain(..) {
            st.pubsub.unsubscribe(k, &n, id);
        }
    }
    conn.info.sub.store(0, Ordering::Relaxed);
    conn.info.psub.store(0, Ordering::Relaxed);
    conn.info.ssub.store(0, Ordering::Relaxed);
}

fn subscribe(ctx: &mut Ctx, argv: &[&[u8]]) {
    subscribe_generic(ctx, argv, Kind::Channel, b"subscribe")
}
fn psubscribe(ctx: &mut Ctx, argv: &[&[u8]]) {
    subscribe_generic(ctx, argv, Kind::Pattern, b"psubscribe")
}
fn ssubscribe(ctx: &mut Ctx, argv: &[&[u8]]) {
    subscribe_generic(ctx, argv, Kind::Shard, b"ssubscribe")
}
fn unsubscribe(ctx: &mut Ctx, argv: &[&[u8]]) {
    unsubscribe_generic(ctx, &argv[1..], Kind::Channel, b"unsubscribe", true)
}
fn punsubscribe(ctx: &mut Ctx, argv: &[&[u8]]) {
    unsubscribe_generic(ctx, &argv[1..], Kind::Pattern, b"punsubscribe", true)
}
fn sunsubscribe(ctx: &mut Ctx, argv: &[&[u8]]) {
    unsubscribe_generic(ctx, &argv[1..], Kind::Shard, b"sunsubscribe", true)
}

/// Publishes on a channel (PUBLISH, SPUBLISH, keyspace notifications), disconnecting
/// subscribers over their output limits; returns the number of receivers.
pub fn publish_message(st: &crate::state::State, shard: bool, channel: &[u8], msg: &[u8], now: i64) -> usize {
    let h = &st.config.hot;
    let lim = Limits {
        hard: h.pubsub_hard.load(Ordering::Relaxed),
        soft: h.pubsub_soft.load(Ordering::Relaxed),
        soft_secs: h.pubsub_soft_secs.load(Ordering::Relaxed),
    };
    let mut over = Vec::new();
    let n = st.pubsub.publish(shard, channel, msg, lim, now, &mut over);
    for mb in over {
        // Redis: "scheduled to be closed ASAP for overcoming of output buffer limits".
        if !mb.info.is_killed() {
            tracing::warn!(
                "Client id={} addr={} scheduled to be closed ASAP for overcoming of output buffer limits.",
                mb.info.id,
                mb.info.addr
            );
            st.stats.client_output_buffer_limit_disconnections.fetch_add(1, Ordering::Relaxed);
            st.kill_client(mb.info.id);
        }
    }
    n
}

/// A keyspace notification (Redis's notifyKeyspaceEvent): `__keyspace@<db>__:<key>` carries the
/// event, `__keyevent@<db>__:<event>` the key, as `notify-keyspace-events` enables them.
pub fn keyspace_event(st: &crate::state::State, db: usize, class: u32, event: &str, key: &[u8], now: i64) {
    use crate::config::notify::{KEYEVENT, KEYSPACE};
    let flags = st.config.hot.notify_flags.load(Ordering::Relaxed);
    if flags & class == 0 {
        return;
    }
    if flags & KEYSPACE != 0 {
        let ch = [format!("__keyspace@{db}__:").as_bytes(), key].concat();
        publish_message(st, false, &ch, event.as_bytes(), now);
    }
    if flags & KEYEVENT != 0 {
        let ch = format!("__keyevent@{db}__:{event}");
        publish_message(st, false, ch.as_bytes(), key, now);
    }
}

fn publish_generic(ctx: &mut Ctx, argv: &[&[u8]], shard: bool) {
    let n = publish_message(ctx.st, shard, argv[1], argv[2], ctx.now);
    // Cluster mode: the other nodes (SPUBLISH: those of this shard) deliver it too.
    if let Some(send) = ctx.st.cluster.bus_publish.get().filter(|_| ctx.st.cluster.enabled.load(Ordering::Relaxed)) {
        send(shard, argv[1], argv[2]);
    }
    ctx.out.int(n as i64);
}

fn publish(ctx: &mut Ctx, argv: &[&[u8]]) {
    publish_generic(ctx, argv, false)
}
fn spublish(ctx: &mut Ctx, argv: &[&[u8]]) {
    publish_generic(ctx, argv, true)
}

fn names_reply(ctx: &mut Ctx, argv: &[&[u8]], k: Kind) {
    let names = ctx.st.pubsub.names(k, argv.get(2).copied());
    ctx.out.array(names.len());
    for n in names {
        ctx.out.bulk(&n);
    }
}

fn numsub_reply(ctx: &mut Ctx, argv: &[&[u8]], k: Kind) {
    // RESP3 answers a map, RESP2 a flat array of channel, count pairs.
    ctx.out.map(argv.len() - 2);
    for ch in &argv[2..] {
        ctx.out.bulk(ch);
        ctx.out.int(ctx.st.pubsub.numsub(k, ch) as i64);
    }
}

fn pubsub_channels(ctx: &mut Ctx, argv: &[&[u8]]) {
    names_reply(ctx, argv, Kind::Channel)
}
fn pubsub_shardchannels(ctx: &mut Ctx, argv: &[&[u8]]) {
    names_reply(ctx, argv, Kind::Shard)
}
fn pubsub_numsub(ctx: &mut Ctx, argv: &[&[u8]]) {
    numsub_reply(ctx, argv, Kind::Channel)
}
fn pubsub_shardnumsub(ctx: &mut Ctx, argv: &[&[u8]]) {
    numsub_reply(ctx, argv, Kind::Shard)
}
fn pubsub_numpat(ctx: &mut Ctx, _argv: &[&[u8]]) {
    ctx.out.int(ctx.st.pubsub.count(Kind::Pattern) as i64);
}

fn pubsub_help(ctx: &mut Ctx, _argv: &[&[u8]]) {
    super::reply_help(
        ctx,
        &[
            "PUBSUB <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "CHANNELS [<pattern>]",
            "    Return the currently active channels matching a <pattern> (default: '*').",
            "NUMPAT",
            "    Return number of subscriptions to patterns.",
            "NUMSUB [<channel> ...]",
            "    Return the number of subscribers for the specified channels, excluding",
            "    pattern subscriptions(default: no channels).",
            "SHARDCHANNELS [<pattern>]",
            "    Return the currently active shard level channels matching a <pattern> (default: '*').",
            "SHARDNUMSUB [<shardchannel> ...]",
            "    Return the number of subscribers for the specified shard level channel(s)",
            "HELP",
            "    Prints this help.",
        ],
    );
}

/// True when a RESP2 connection in subscriber mode may run this (top-level) command.
pub fn allowed_in_subscriber_mode(name: &str) -> bool {
    matches!(name, "ping" | "subscribe" | "ssubscribe" | "sunsubscribe" | "unsubscribe" | "psubscribe" | "punsubscribe" | "quit" | "reset")
}
