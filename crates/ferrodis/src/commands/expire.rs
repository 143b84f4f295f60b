//! Expiry: EXPIRE and friends, TTL and friends, PERSIST, and the active expiry cycle.
#![allow(unreachable_patterns, irrefutable_let_patterns)]

use super::table::{cmd, flag::*, CommandSpec, ONE_KEY};
use super::{arg_i64, eq, Ctx};
use crate::keyspace::{SLOTS, STRIPES};
use crate::state::State;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

pub static COMMANDS: &[CommandSpec] = &[
    cmd("expire", -3, WRITE | FAST, "@keyspace @write @fast", ONE_KEY, expire),
    cmd("pexpire", -3, WRITE | FAST, "@keyspace @write @fast", ONE_KEY, pexpire),
    cmd("expireat", -3, WRITE | FAST, "@keyspace @write @fast", ONE_KEY, expireat),
    cmd("pexpireat", -3, WRITE | FAST, "@keyspace @write @fast", ONE_KEY, pexpireat),
    cmd("ttl", 2, READONLY | FAST, "@keyspace @read @fast", ONE_KEY, ttl),
    cmd("pttl", 2, READONLY | FAST, "@keyspace @read @fast", ONE_KEY, pttl),
    cmd("expiretime", 2, READONLY | FAST, "@keyspace @read @fast", ONE_KEY, expiretime),
    cmd("pexpiretime", 2, READONLY | FAST, "@keyspace @read @fast", ONE_KEY, pexpiretime),
    cmd("persist", 2, WRITE | FAST, "@keyspace @write @fast", ONE_KEY, persist),
];

fn expire_generic(ctx: &mut Ctx, argv: &[&[u8]], unit_ms: bool, absolute: bool) {
    let name = ctx.table.full_name(ctx.cmd_id).to_string();
    let Some(when) = arg_i64(ctx, argv[2]) else {
        return;
    };
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    for a in &argv[3..] {
        if eq(a, "nx") {
            nx = true;
        } else if eq(a, "xx") {
            xx = true;
        } else if eq(a, "gt") {
            gt = true;
        } else if eq(a, "lt") {
            lt = true;
        } else {
            ctx.out.error(&format!("ERR Unsupported option {}", String::from_utf8_lossy(a)));
            return;
        }
    }
    if nx && (xx || gt || lt) {
        ctx.out.error("ERR NX and XX, GT or LT options at the same time are not compatible");
        return;
    }
    if gt && lt {
        ctx.out.error("ERR GT and LT options at the same time are not compatible");
        return;
    }
    let ms = if unit_ms { Some(when) } else { when.checked_mul(1000) };
    let at = ms.and_then(|m| if absolute { Some(m) } else { m.checked_add(ctx.now) });
    let Some(at) = at else {
        ctx.out.error(&format!("ERR invalid expire time in '{}' command", name));
        return;
    };
    let key = argv[1];
    let cur = match ctx.entry(key, false).0 {
        None => {
            ctx.out.int(0);
            return;
        }
        Some(e) => e.expire,
    };
    let has = cur != 0;
    if (nx && has) || (xx && !has) || (gt && (!has || at <= cur)) || (lt && has && at >= cur) {
        ctx.out.int(0);
        return;
    }
    if at <= ctx.now {
        ctx.delete(key);
        ctx.propagate(&[b"DEL", key]);
    } else {
        ctx.set_expire(key, at);
        let s = itoa::Buffer::new().format(at).to_owned();
        ctx.propagate(&[b"PEXPIREAT", key, s.as_bytes()]);
    }
    ctx.out.int(1);
}

fn expire(ctx: &mut Ctx, argv: &[&[u8]]) {
    expire_generic(ctx, argv, false, false)
}
fn pexpire(ctx: &mut Ctx, argv: &[&[u8]]) {
    expire_generic(ctx, argv, true, false)
}
fn expireat(ctx: &mut Ctx, argv: &[&[u8]]) {
    expire_generic(ctx, argv, false, true)
}
fn pexpireat(ctx: &mut Ctx, argv: &[&[u8]]) {
    expire_generic(ctx, argv, true, true)
}

fn ttl_generic(ctx: &mut Ctx, argv: &[&[u8]], ms: bool, absolute: bool) {
    // The wall clock now, not the command clock (which may trail it by a millisecond): a TTL
    // never reads more than what was set.
    let now = crate::util::now_ms().max(ctx.now);
    let (e, out) = ctx.entry_notouch(argv[1]);
    match e {
        None => out.int(-2),
        Some(e) if e.expire == 0 => out.int(-1),
        Some(e) => {
            let v = if absolute { e.expire } else { (e.expire - now).max(0) };
            out.int(if ms { v } else { (v + 500) / 1000 })
        }
    }
}

fn ttl(ctx: &mut Ctx, argv: &[&[u8]]) {
    ttl_generic(ctx, argv, false, false)
}
fn pttl(ctx: &mut Ctx, argv: &[&[u8]]) {
    ttl_generic(ctx, argv, true, false)
}
fn expiretime(ctx: &mut Ctx, argv: &[&[u8]]) {
    ttl_generic(ctx, argv, false, true)
}
fn pexpiretime(ctx: &mut Ctx, argv: &[&[u8]]) {
    ttl_generic(ctx, argv, true, true)
}

fn persist(ctx: &mut Ctx, argv: &[&[u8]]) {
    let has = ctx.entry(argv[1], false).0.is_some_and(|e| e.expire != 0);
    if has {
        ctx.set_expire(argv[1], 0);
    }
    ctx.out.int(has as i64);
}

/// The active expiry cycle (Redis's activeExpireCycle): walks the stripes, and in each the slots
/// of every database that holds keys with a TTL, deleting the expired ones (a DEL for each goes to
/// the journal, under the stripe lock). It keeps going while more than 10% of what it sampled had
/// expired and its time budget lasts. A stripe with no volatile keys costs one lock and a counter
/// read, so an idle keyspace costs 256 uncontended lock round trips per cycle.
#[derive(Default)]
pub struct ActiveExpire {
    stripe: usize,
}

/// What follows the deletion of an expired key, its stripe still locked (Redis's
/// deleteExpiredKeyAndPropagate): the DEL to the journal, WATCH flagged, caching clients told,
/// the `expired` event.
pub fn expired_key_gone(st: &State, db: usize, key: &[u8], now: i64) {
    st.journal.append(db, &[b"DEL", key]);
    st.watches.touch(db, key);
    if st.tracking.active() {
        st.tracking.invalidate(&st.inboxes, key, None, 0);
    }
    crate::commands::pubsub::keyspace_event(st, db, crate::config::notify::EXPIRED, "expired", key, now);
}

/// Deletes the expired keys of one slot table of a stripe its caller locked, as a lookup would
/// (SCAN and RANDOMKEY meet them so); a replica leaves them for its master's DELs.
pub fn reap_slot(st: &State, stripe: &mut crate::keyspace::Stripe, db: usize, slot: usize, now: i64) {
    if st.repl.is_replica() || stripe.volatile(db) == 0 {
        return;
    }
    let Some(t) = stripe.slot_mut(db, slot) else { return };
    if t.volatile() == 0 {
        return;
    }
    let gone = t.extract_if(|e| e.expired(now));
    if gone.is_empty() {
        return;
    }
    stripe.fix_counts(db);
    for e in &gone {
        expired_key_gone(st, db, e.key.as_slice(), now);
    }
    st.stats.expired_keys.fetch_add(gone.len() as u64, Ordering::Relaxed);
    st.dirty.fetch_add(gone.len() as u64, Ordering::Relaxed);
}

impl ActiveExpire {
    /// Runs one cycle with a time budget; returns (sampled, expired).
    pub fn cycle(&mut self, st: &State, budget: Duration) -> (u64, u64) {
        let start = Instant::now();
        let (mut sampled, mut expired) = (0u64, 0u64);
        let effort = st.config.hot.active_expire_effort.load(Ordering::Relaxed).clamp(1, 10) as u64;
        let per_batch = 20 * effort;
        let acceptable_stale = 10 - (effort - 1); // percent
        let dbs = st.keyspace.databases;
        let mut batch = (0u64, 0u64);
        let now = crate::util::now_ms();
        for _ in 0..STRIPES {
            let s = self.stripe;
            self.stripe = (self.stripe + 1) % STRIPES;
            let mut stripe = st.keyspace.lock(s);
            let mut gone_here: Vec<(usize, crate::keyspace::Entry)> = Vec::new();
            for db in 0..dbs {
                if stripe.volatile(db) == 0 {
                    continue;
                }
                for slot in (s..SLOTS).step_by(STRIPES) {
                    let Some(t) = stripe.slot_mut(db, slot) else { break };
                    if t.volatile() == 0 {
                        continue;
                    }
                    sampled += t.volatile() as u64;
                    batch.0 += t.volatile() as u64;
                    for e in t.extract_if(|e| e.expired(now)) {
                        gone_here.push((db, e));
                    }
                }
                stripe.fix_counts(db);
            }
            for (db, e) in &gone_here {
                expired_key_gone(st, *db, e.key.as_slice(), now);
            }
            drop(stripe);
            let g = gone_here.len() as u64;
            expired += g;
            batch.1 += g;
            if batch.0 >= per_batch {
                let stale = batch.1 * 100 / batch.0.max(1);
                batch = (0, 0);
                if stale <= acceptable_stale {
                    break;
                }
            }
            if start.elapsed() >= budget {
                break;
            }
        }
        st.stats.expired_keys.fetch_add(expired, Ordering::Relaxed);
        st.tracking.flush_bcast(&st.inboxes);
        if expired > 0 {
            st.dirty.fetch_add(expired, Ordering::Relaxed);
        }
        (sampled, expired)
    }
}
