//! Generic key commands (Redis's db.c): DEL, EXISTS, TYPE, RENAME, COPY, MOVE, OBJECT, KEYS,
//! SCAN, RANDOMKEY, DBSIZE, FLUSHDB, FLUSHALL, SWAPDB.
#![allow(unreachable_patterns, irrefutable_let_patterns)]

use super::table::{cmd, container, flag::*, range, CommandSpec, Keys, NO_KEYS, ONE_KEY};
use super::{eq, Ctx, NOT_INT, SYNTAX};
use crate::keyspace::{SLOTS, STRIPES};
use crate::types::{StrValue, Value};
use crate::util::{glob_match, parse_i64};
use std::sync::atomic::Ordering;

const TWO_KEYS: Keys = Keys::Range { first: 1, last: 2, step: 1 };

pub static COMMANDS: &[CommandSpec] = &[
    cmd("del", -2, WRITE, "@keyspace @write @slow", range(1, -1, 1), del),
    cmd("unlink", -2, WRITE | FAST, "@keyspace @write @fast", range(1, -1, 1), del),
    cmd("exists", -2, READONLY | FAST, "@keyspace @read @fast", range(1, -1, 1), exists),
    // TOUCH is EXISTS with another name: both look every key up (touching it) and count.
    cmd("touch", -2, READONLY | FAST, "@keyspace @read @fast", range(1, -1, 1), touch),
    cmd("type", 2, READONLY | FAST, "@keyspace @read @fast", ONE_KEY, type_cmd),
    cmd("rename", 3, WRITE, "@keyspace @write @slow", TWO_KEYS, rename),
    cmd("renamenx", 3, WRITE | FAST, "@keyspace @write @fast", TWO_KEYS, renamenx),
    cmd("copy", -3, WRITE | DENYOOM, "@keyspace @write @slow", TWO_KEYS, copy),
    cmd("move", 3, WRITE | FAST, "@keyspace @write @fast", ONE_KEY, move_cmd),
    container("object", -2, "@slow", OBJECT),
    cmd("keys", 2, READONLY | WHOLE_KEYSPACE, "@keyspace @read @slow @dangerous", NO_KEYS, keys),
    cmd("scan", -2, READONLY | WHOLE_KEYSPACE, "@keyspace @read @slow", NO_KEYS, scan),
    cmd("randomkey", 1, READONLY | WHOLE_KEYSPACE, "@keyspace @read @slow", NO_KEYS, randomkey),
    cmd("dbsize", 1, READONLY | FAST | WHOLE_KEYSPACE, "@keyspace @read @fast", NO_KEYS, dbsize),
    cmd("flushdb", -1, WRITE | WHOLE_KEYSPACE, "@keyspace @write @slow @dangerous", NO_KEYS, flushdb),
    cmd("flushall", -1, WRITE | WHOLE_KEYSPACE, "@keyspace @write @slow @dangerous", NO_KEYS, flushall),
    cmd("swapdb", 3, WRITE | FAST | WHOLE_KEYSPACE, "@keyspace @write @fast @dangerous", NO_KEYS, swapdb),
];

static OBJECT: &[CommandSpec] = &[
    cmd("encoding", 3, READONLY, "@keyspace @read @slow", Keys::Range { first: 2, last: 2, step: 1 }, object_encoding),
    cmd("freq", 3, READONLY, "@keyspace @read @slow", Keys::Range { first: 2, last: 2, step: 1 }, object_freq),
    cmd("idletime", 3, READONLY, "@keyspace @read @slow", Keys::Range { first: 2, last: 2, step: 1 }, object_idletime),
    cmd("refcount", 3, READONLY, "@keyspace @read @slow", Keys::Range { first: 2, last: 2, step: 1 }, object_refcount),
    cmd("help", 2, LOADING | STALE, "@keyspace @slow", NO_KEYS, object_help),
];

fn del(ctx: &mut Ctx, argv: &[&[u8]]) {
    let mut n = 0;
    for k in &argv[1..] {
        if ctx.delete(k) {
            n += 1;
        }
    }
    ctx.out.int(n);
}

/// TOUCH: EXISTS that counts as an access (OBJECT IDLETIME restarts).
fn touch(ctx: &mut Ctx, argv: &[&[u8]]) {
    let mut n = 0;
    for k in &argv[1..] {
        if ctx.entry(k, true).0.is_some() {
            n += 1;
        }
    }
    ctx.out.int(n);
}

fn exists(ctx: &mut Ctx, argv: &[&[u8]]) {
    let mut n = 0;
    // A lookup that does not count as an access (OBJECT IDLETIME stays), as Redis's LOOKUP_NOTOUCH.
    for k in &argv[1..] {
        if ctx.entry_notouch(k).0.is_some() {
            n += 1;
        }
    }
    ctx.out.int(n);
}

fn type_cmd(ctx: &mut Ctx, argv: &[&[u8]]) {
    let (e, out) = ctx.entry_notouch(argv[1]);
    out.simple(e.map_or("none", |e| e.value.type_name()).as_bytes());
}

fn rename_generic(ctx: &mut Ctx, argv: &[&[u8]], nx: bool) {
    let (src, dst) = (argv[1], argv[2]);
    let Some(e) = ctx.entry(src, false).0.map(|e| (e.value.clone(), e.expire)) else {
        ctx.out.error("ERR no such key");
        return;
    };
    if src == dst {
        if nx {
            ctx.out.int(0);
        } else {
            ctx.out.ok();
        }
        return;
    }
    if nx && ctx.exists(dst) {
        ctx.out.int(0);
        return;
    }
    ctx.delete_quiet(src);
    ctx.store(dst, e.0, e.1);
    ctx.set_changes(1);
    if nx {
        ctx.out.int(1);
    } else {
        ctx.out.ok();
    }
}

fn rename(ctx: &mut Ctx, argv: &[&[u8]]) {
    rename_generic(ctx, argv, false)
}
fn renamenx(ctx: &mut Ctx, argv: &[&[u8]]) {
    rename_generic(ctx, argv, true)
}

/// Parses a DB index argument, replying Redis's errors.
pub fn parse_db(ctx: &mut Ctx, a: &[u8]) -> Option<usize> {
    match parse_i64(a) {
        None => {
            ctx.out.error(NOT_INT);
            None
        }
        Some(d) if d < 0 || d as usize >= ctx.st.keyspace.databases => {
            ctx.out.error("ERR DB index is out of range");
            None
        }
        Some(d) => Some(d as usize),
    }
}

fn copy(ctx: &mut Ctx, argv: &[&[u8]]) {
    let (src, dst) = (argv[1], argv[2]);
    let mut db = ctx.db();
    let mut replace = false;
    let mut i = 3;
    while i < argv.len() {
        if eq(argv[i], "replace") {
            replace = true;
        } else if eq(argv[i], "db") && i + 1 < argv.len() {
            let Some(d) = parse_db(ctx, argv[i + 1]) else {
                return;
            };
            db = d;
            i += 1;
        } else {
            ctx.out.error(SYNTAX);
            return;
        }
        i += 1;
    }
    if src == dst && db == ctx.db() {
        ctx.out.error("ERR source and destination objects are the same");
        return;
    }
    let Some((v, exp)) = ctx.entry(src, true).0.map(|e| (e.value.clone(), e.expire)) else {
        ctx.out.int(0);
        return;
    };
    if ctx.entry_in(db, dst, false).0.is_some() {
        if !replace {
            ctx.out.int(0);
            return;
        }
        ctx.delete_in(db, dst);
    }
    ctx.store_in(db, dst, v, exp);
    ctx.out.int(1);
}

fn move_cmd(ctx: &mut Ctx, argv: &[&[u8]]) {
    let Some(db) = parse_db(ctx, argv[2]) else {
        return;
    };
    if db == ctx.db() {
        ctx.out.error("ERR source and destination objects are the same");
        return;
    }
    let key = argv[1];
    let Some((v, exp)) = ctx.entry(key, false).0.map(|e| (e.value.clone(), e.expire)) else {
        ctx.out.int(0);
        return;
    };
    if ctx.entry_in(db, key, false).0.is_some() {
        ctx.out.int(0);
        return;
    }
    ctx.delete_quiet(key);
    ctx.store_in(db, key, v, exp);
    ctx.out.int(1);
}

fn object_encoding(ctx: &mut Ctx, argv: &[&[u8]]) {
    let (e, out) = ctx.peek(argv[2]);
    match e {
        None => out.null(),
        Some(e) => out.bulk(e.value.encoding().as_bytes()),
    }
}

fn object_freq(ctx: &mut Ctx, argv: &[&[u8]]) {
    let hot = &ctx.st.config.hot;
    let lfu = hot.lfu_policy.load(Ordering::Relaxed);
    let decay = hot.lfu_decay_time.load(Ordering::Relaxed);
    let now = ctx.now;
    let (e, out) = ctx.peek(argv[2]);
    match e {
        None => out.null(),
        Some(_) if !lfu => out.error("ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust."),
        Some(e) => out.int(crate::keyspace::lfu::decayed(e.lru, now, decay) as i64),
    }
}

fn object_idletime(ctx: &mut Ctx, argv: &[&[u8]]) {
    let lfu = ctx.st.config.hot.lfu_policy.load(Ordering::Relaxed);
    let (e, out) = ctx.peek(argv[2]);
    match e {
        None => out.null(),
        Some(_) if lfu => out.error("ERR An LFU maxmemory policy is selected, idle time not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust."),
        Some(e) => out.int(crate::keyspace::lru_clock().saturating_sub(e.lru) as i64),
    }
}

fn object_refcount(ctx: &mut Ctx, argv: &[&[u8]]) {
    let (e, out) = ctx.peek(argv[2]);
    match e {
        None => out.null(),
        // Redis shares the integers 0..9999 and reports them with OBJ_SHARED_REFCOUNT.
        Some(e) => match e.value {
            Value::Str(StrValue::Int(n)) if (0..10000).contains(&n) => out.int(i32::MAX as i64),
            _ => out.int(1),
        },
    }
}

fn object_help(ctx: &mut Ctx, _argv: &[&[u8]]) {
    let lines = [
        "OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "ENCODING <key>",
        "    Return the kind of internal representation used in order to store the value",
        "    associated with a <key>.",
        "FREQ <key>",
        "    Return the access frequency index of the <key>. The returned integer is",
        "    proportional to the logarithm of the recent access frequency of the key.",
        "IDLETIME <key>",
        "    Return the idle time of the <key>, that is the approximated number of",
        "    seconds elapsed since the last access to the key.",
        "REFCOUNT <key>",
        "    Return the number of references of the value associated with the specified",
        "    <key>.",
        "HELP",
        "    Print this help.",
    ];
    super::reply_help(ctx, &lines);
}

/// Walks the live keys of one slot of the current database, under its stripe lock.
fn for_slot_keys(ctx: &Ctx, db: usize, slot: usize, mut f: impl FnMut(&crate::keyspace::Entry)) {
    let now = ctx.now;
    let stripe = ctx.st.keyspace.lock(slot % STRIPES);
    if stripe.keys(db) == 0 {
        return;
    }
    if let Some(t) = stripe.slot(db, slot) {
        for e in t.iter() {
            if !e.expired(now) {
                f(e);
            }
        }
    }
}

fn keys(ctx: &mut Ctx, argv: &[&[u8]]) {
    let pat = argv[1];
    let all = pat == b"*";
    let db = ctx.db();
    let mut found: Vec<Vec<u8>> = Vec::new();
    for slot in 0..SLOTS {
        for_slot_keys(ctx, db, slot, |e| {
            if all || glob_match(pat, &e.key, false) {
                found.push(e.key.to_vec());
            }
        });
    }
    ctx.out.array(found.len());
    for k in &found {
        ctx.out.bulk(k);
    }
}

/// SCAN's cursor is the next slot to visit: each call returns whole slots, so every key present
/// for the whole iteration is returned at least once, whatever resizes happen in between.
fn scan(ctx: &mut Ctx, argv: &[&[u8]]) {
    let cursor = match std::str::from_utf8(argv[1]).ok().and_then(|s| s.parse::<u64>().ok()) {
        Some(c) => c,
        None => {
            ctx.out.error("ERR invalid cursor");
            return;
        }
    };
    let (mut count, mut pat, mut typ): (i64, Option<&[u8]>, Option<&[u8]>) = (10, None, None);
    let mut i = 2;
    while i < argv.len() {
        if eq(argv[i], "count") && i + 1 < argv.len() {
            match parse_i64(argv[i + 1]) {
                None => {
                    ctx.out.error(NOT_INT);
                    return;
                }
                Some(c) if c < 1 => {
                    ctx.out.error(SYNTAX);
                    return;
                }
                Some(c) => count = c,
            }
            i += 2;
        } else if eq(argv[i], "match") && i + 1 < argv.len() {
            pat = if argv[i + 1] == b"*" { None } else { Some(argv[i + 1]) };
            i += 2;
        } else if eq(argv[i], "type") && i + 1 < argv.len() {
            typ = Some(argv[i + 1]);
            i += 2;
        } else {
            ctx.out.error(SYNTAX);
            return;
        }
    }
    let db = ctx.db();
    let mut slot = cursor.min(SLOTS as u64) as usize;
    let mut found: Vec<Vec<u8>> = Vec::new();
    let mut visited = 0i64;
    while slot < SLOTS && (found.len() as i64) < count && visited < count.saturating_mul(10).max(100) {
        // Expired keys met on the way are deleted, as Redis's SCAN does.
        super::expire::reap_slot(ctx.st, &mut ctx.st.keyspace.lock(slot % STRIPES), db, slot, ctx.now);
        for_slot_keys(ctx, db, slot, |e| {
            visited += 1;
            if pat.is_some_and(|p| !glob_match(p, &e.key, false)) {
                return;
            }
            if typ.is_some_and(|t| !t.eq_ignore_ascii_case(e.value.type_name().as_bytes())) {
                return;
            }
            found.push(e.key.to_vec());
        });
        slot += 1;
    }
    let next = if slot >= SLOTS { 0 } else { slot };
    ctx.out.array(2);
    ctx.out.bulk(itoa::Buffer::new().format(next).as_bytes());
    ctx.out.array(found.len());
    for k in &found {
        ctx.out.bulk(k);
    }
}

fn randomkey(ctx: &mut Ctx, _argv: &[&[u8]]) {
    use rand::Rng;
    let db = ctx.db();
    let mut rng = rand::thread_rng();
    let pick = |ctx: &Ctx, slot: usize, rng: &mut rand::rngs::ThreadRng| -> Option<Vec<u8>> {
        let mut stripe = ctx.st.keyspace.lock(slot % STRIPES);
        // Expired keys met are deleted, as Redis's RANDOMKEY does.
        super::expire::reap_slot(ctx.st, &mut stripe, db, slot, ctx.now);
        let t = stripe.slot(db, slot)?;
        let live: Vec<&crate::keyspace::Entry> = t.iter().filter(|e| !e.expired(ctx.now)).collect();
        if live.is_empty() {
            return None;
        }
        Some(live[rng.gen_range(0..live.len())].key.to_vec())
    };
    for _ in 0..64 {
        let slot = rng.gen_range(0..SLOTS);
        if let Some(k) = pick(ctx, slot, &mut rng) {
            ctx.out.bulk(&k);
            return;
        }
    }
    // Sparse database: list the non-empty slots and pick among them.
    let mut slots = Vec::new();
    for slot in 0..SLOTS {
        let stripe = ctx.st.keyspace.lock(slot % STRIPES);
        if stripe.slot(db, slot).is_some_and(|t| !t.is_empty()) {
            slots.push(slot);
        }
    }
    while !slots.is_empty() {
        let i = rng.gen_range(0..slots.len());
        if let Some(k) = pick(ctx, slots[i], &mut rng) {
            ctx.out.bulk(&k);
            return;
        }
        slots.swap_remove(i);
    }
    ctx.out.null();
}

fn dbsize(ctx: &mut Ctx, _argv: &[&[u8]]) {
    let n = ctx.st.keyspace.dbsize(ctx.db());
    ctx.out.int(n as i64);
}

/// Parses FLUSHALL/FLUSHDB's optional ASYNC|SYNC; Some(async).
fn flush_mode(ctx: &mut Ctx, argv: &[&[u8]]) -> Option<bool> {
    match argv.len() {
        1 => Some(false),
        2 if eq(argv[1], "async") => Some(true),
        2 if eq(argv[1], "sync") => Some(false),
        _ => {
            ctx.out.error(SYNTAX);
            None
        }
    }
}

/// Flags clients watching keys of `db` that exist (unexpired) in `db` (or in `other`, for
/// SWAPDB), as Redis's touchAllWatchedKeysInDb; every stripe is locked by the caller (`guards`).
fn touch_watched_in_db(ctx: &Ctx, guards: &[parking_lot::MutexGuard<'_, crate::keyspace::Stripe>], db: usize, other: Option<usize>) {
    for k in ctx.st.watches.keys_in_db(db) {
        let loc = ctx.st.keyspace.locate(&k);
        let g = &guards[loc.stripe];
        // A logically expired key counts as missing: replacing it with nothing (or with another
        // expired key) changes nothing a client could see.
        let live = |d: usize| g.get(d, &loc, &k).is_some_and(|e| !e.expired(ctx.now));
        if live(db) || other.is_some_and(live) {
            ctx.st.watches.touch(db, &k);
        }
    }
}

fn flushdb(ctx: &mut Ctx, argv: &[&[u8]]) {
    let Some(lazy) = flush_mode(ctx, argv) else {
        return;
    };
    let db = ctx.db();
    let mut guards = ctx.st.keyspace.lock_all();
    touch_watched_in_db(ctx, &guards, db, None);
    let mut garbage = Vec::new();
    let mut removed = 0u64;
    for g in guards.iter_mut() {
        removed += g.keys(db) as u64;
        if let Some(d) = g.take_db(db) {
            garbage.push(d);
        }
    }
    ctx.propagate(&[b"FLUSHDB"]);
    drop(guards);
    ctx.invalidate_all_tracked();
    wake_flushed(ctx, db..db + 1);
    // Each key removed is a change, as Redis counts them (propagated even when none was).
    ctx.set_changes(removed);
    drop_maybe_async(garbage, lazy);
    ctx.out.ok();
}

fn flushall(ctx: &mut Ctx, argv: &[&[u8]]) {
    let Some(lazy) = flush_mode(ctx, argv) else {
        return;
    };
    let mut guards = ctx.st.keyspace.lock_all();
    for db in 0..ctx.st.keyspace.databases {
        touch_watched_in_db(ctx, &guards, db, None);
    }
    let mut garbage = Vec::new();
    let mut removed = 0u64;
    for g in guards.iter_mut() {
        for db in 0..ctx.st.keyspace.databases {
            removed += g.keys(db) as u64;
            if let Some(d) = g.take_db(db) {
                garbage.push(d);
            }
        }
    }
    ctx.propagate(&[b"FLUSHALL"]);
    drop(guards);
    ctx.invalidate_all_tracked();
    wake_flushed(ctx, 0..ctx.st.keyspace.databases);
    // With save points, the empty dataset is saved at once and nothing is left unsaved
    // (Redis's flushAllDataAndResetRDB); otherwise FLUSHALL counts as one change.
    let saved = !ctx.st.config.get("save").unwrap_or_default().trim().is_empty()
        && !ctx.st.rdb.in_progress.load(std::sync::atomic::Ordering::Acquire)
        && super::persistence::save_rdb(ctx.st).is_ok();
    if saved {
        ctx.st.dirty.store(0, std::sync::atomic::Ordering::Relaxed);
    } else {
        ctx.set_changes(removed);
    }
    drop_maybe_async(garbage, lazy);
    ctx.out.ok();
}

/// Keys that clients wait on in flushed databases are ready: XREADGROUP readers learn that
/// their stream is gone (Redis 7.0), the others find nothing and go on waiting.
fn wake_flushed(ctx: &mut Ctx, dbs: std::ops::Range<usize>) {
    if ctx.st.blocking.any() {
        for db in dbs {
            ctx.ready.extend(ctx.st.blocking.keys_in_db(db).into_iter().map(|k| (db, k)));
        }
    }
}

fn drop_maybe_async<T: Send + 'static>(garbage: Vec<T>, lazy: bool) {
    if lazy && !garbage.is_empty() {
        std::thread::spawn(move || drop(garbage));
    } else {
        drop(garbage);
    }
}

fn swapdb(ctx: &mut Ctx, argv: &[&[u8]]) {
    let n = ctx.st.keyspace.databases as i64;
    let a = match parse_i64(argv[1]) {
        Some(a) => a,
        None => return ctx.out.error("ERR invalid first DB index"),
    };
    let b = match parse_i64(argv[2]) {
        Some(b) => b,
        None => return ctx.out.error("ERR invalid second DB index"),
    };
    if a < 0 || a >= n || b < 0 || b >= n {
        ctx.out.error("ERR DB index is out of range");
        return;
    }
    let mut guards = ctx.st.keyspace.lock_all();
    touch_watched_in_db(ctx, &guards, a as usize, Some(b as usize));
    touch_watched_in_db(ctx, &guards, b as usize, Some(a as usize));
    for g in guards.iter_mut() {
        g.swap_dbs(a as usize, b as usize);
    }
    // Clients blocked in either database may find their keys there now.
    if ctx.st.blocking.any() {
        for db in [a as usize, b as usize] {
            ctx.ready.extend(ctx.st.blocking.keys_in_db(db).into_iter().map(|k| (db, k)));
        }
    }
    ctx.propagate(argv);
    drop(guards);
    ctx.touched();
    ctx.out.ok();
}
