//! The set family (Redis's t_set.c).

use super::table::{cmd, flag::*, range, CommandSpec, Keys, ONE_KEY};
use super::{eq, Ctx, NOT_INT, SYNTAX};
use crate::types::{Set, Value};
use crate::util::parse_i64;
use std::sync::atomic::Ordering;

pub static COMMANDS: &[CommandSpec] = &[
    cmd("sadd", -3, WRITE | DENYOOM | FAST, "@write @set @fast", ONE_KEY, sadd),
    cmd("srem", -3, WRITE | FAST, "@write @set @fast", ONE_KEY, srem),
    cmd("smembers", 2, READONLY, "@read @set @slow", ONE_KEY, smembers),
    cmd("sismember", 3, READONLY | FAST, "@read @set @fast", ONE_KEY, sismember),
    cmd("smismember", -3, READONLY | FAST, "@read @set @fast", ONE_KEY, smismember),
    cmd("scard", 2, READONLY | FAST, "@read @set @fast", ONE_KEY, scard),
    cmd("spop", -2, WRITE | FAST, "@write @set @fast", ONE_KEY, spop),
    cmd("srandmember", -2, READONLY, "@read @set @slow", ONE_KEY, srandmember),
    cmd("smove", 4, WRITE | FAST, "@write @set @fast", Keys::Range { first: 1, last: 2, step: 1 }, smove),
    cmd("sinter", -2, READONLY, "@read @set @slow", range(1, -1, 1), sinter),
    cmd("sintercard", -3, READONLY, "@read @set @slow", Keys::NumKeys { numkeys: 1, first: 2, step: 1 }, sintercard),
    cmd("sinterstore", -3, WRITE | DENYOOM, "@write @set @slow", range(1, -1, 1), sinterstore),
    cmd("sunion", -2, READONLY, "@read @set @slow", range(1, -1, 1), sunion),
    cmd("sunionstore", -3, WRITE | DENYOOM, "@write @set @slow", range(1, -1, 1), sunionstore),
    cmd("sdiff", -2, READONLY, "@read @set @slow", range(1, -1, 1), sdiff),
    cmd("sdiffstore", -3, WRITE | DENYOOM, "@write @set @slow", range(1, -1, 1), sdiffstore),
    cmd("sscan", -3, READONLY, "@read @set @slow", ONE_KEY, sscan),
];

fn max_ints(ctx: &Ctx) -> usize {
    ctx.st.config.hot.set_max_intset.load(Ordering::Relaxed)
}

/// The set at `key`: Ok(None) when missing, Err after replying WRONGTYPE.
fn set_mut<'a>(ctx: &'a mut Ctx, key: &[u8], read: bool) -> Result<Option<&'a mut Set>, ()> {
    ctx.typed(key, read, |v| match v {
        Value::Set(x) => Some(&mut **x),
        _ => None,
    })
}

fn sadd(ctx: &mut Ctx, argv: &[&[u8]]) {
    let max = max_ints(ctx);
    // One change per member added, as Redis counts them (a new key's store counts the first).
    let (added, changes) = match set_mut(ctx, argv[1], false) {
        Err(()) => return,
        Ok(Some(s)) => {
            let n = argv[2..].iter().filter(|m| s.add(m, max)).count();
            (n, n)
        }
        Ok(None) => {
            let mut s = Set::default();
            let n = argv[2..].iter().filter(|m| s.add(m, max)).count();
            ctx.store(argv[1], Value::Set(Box::new(s)), 0);
            (n, n.saturating_sub(1))
        }
    };
    for _ in 0..changes {
        ctx.touched();
    }
    ctx.out.int(added as i64);
}

fn srem(ctx: &mut Ctx, argv: &[&[u8]]) {
    let n = match set_mut(ctx, argv[1], false) {
        Err(()) => return,
        Ok(None) => 0,
        Ok(Some(s)) => argv[2..].iter().filter(|m| s.remove(m)).count(),
    };
    ctx.removed(argv[1], n);
    ctx.out.int(n as i64);
}

fn reply_members(out: &mut resp::ReplyBuf, members: &[Vec<u8>]) {
    out.set(members.len());
    for m in members {
        out.bulk(m);
    }
}

fn smembers(ctx: &mut Ctx, argv: &[&[u8]]) {
    let members = match set_mut(ctx, argv[1], true) {
        Err(()) => return,
        Ok(None) => Vec::new(),
        Ok(Some(s)) => s.members(),
    };
    reply_members(ctx.out, &members);
}

fn sismember(ctx: &mut Ctx, argv: &[&[u8]]) {
    let Ok(s) = set_mut(ctx, argv[1], true) else { return };
    let r = s.is_some_and(|s| s.contains(argv[2]));
    ctx.out.int(r as i64);
}

fn smismember(ctx: &mut Ctx, argv: &[&[u8]]) {
    let Ok(s) = set_mut(ctx, argv[1], true) else { return };
    let r: Vec<bool> = argv[2..].iter().map(|m| s.as_ref().is_some_and(|s| s.contains(m))).collect();
    ctx.out.array(r.len());
    for b in r {
        ctx.out.int(b as i64);
    }
}

fn scard(ctx: &mut Ctx, argv: &[&[u8]]) {
    let Ok(s) = set_mut(ctx, argv[1], true) else { return };
    let n = s.map_or(0, |s| s.len());
    ctx.out.int(n as i64);
}

fn spop(ctx: &mut Ctx, argv: &[&[u8]]) {
    use rand::Rng;
    if argv.len() > 3 {
        return ctx.out.error(SYNTAX);
    }
    let count = match argv.get(2) {
        None => None,
        Some(a) => match parse_i64(a) {
            Some(n) if n >= 0 => Some(n as usize),
            _ => return ctx.out.error("ERR value is out of range, must be positive"),
        },
    };
    let popped: Vec<Vec<u8>> = match set_mut(ctx, argv[1], false) {
        Err(()) => return,
        Ok(None) => {
            return if count.is_some() { ctx.out.set(0) } else { ctx.out.null() };
        }
        Ok(Some(s)) => {
            let mut rng = rand::thread_rng();
            let n = count.unwrap_or(1).min(s.len());
            (0..n).map(|_| s.remove_at(rng.gen_range(0..s.len()))).collect()
        }
    };
    if !popped.is_empty() {
        ctx.touched();
        // The effect, as replicas must replay it: the members that were removed.
        let mut eff: Vec<&[u8]> = vec![b"SREM", argv[1]];
        eff.extend(popped.iter().map(|m| m.as_slice()));
        ctx.propagate(&eff);
    } else {
        ctx.mark_propagated();
    }
    ctx.delete_if_empty(argv[1]);
    // One change per member popped, as Redis counts SPOP.
    if !popped.is_empty() {
        ctx.set_changes(popped.len() as u64);
    }
    match count {
        None => ctx.out.bulk(&popped[0]),
        Some(_) => reply_members(ctx.out, &popped),
    }
}

fn srandmember(ctx: &mut Ctx, argv: &[&[u8]]) {
    use rand::Rng;
    if argv.len() > 3 {
        return ctx.out.error(SYNTAX);
    }
    let count = match argv.get(2) {
        None => None,
        Some(a) => match parse_i64(a) {
            Some(c) if (-(i64::MAX / 2)..=i64::MAX / 2).contains(&c) => Some(c),
            Some(_) => return ctx.out.error("ERR value is out of range"),
            None => return ctx.out.error(NOT_INT),
        },
    };
    let mut rng = rand::thread_rng();
    if let Some(c) = count.filter(|c| *c < 0) {
        // Repeats allowed: written as picked, nothing collected.
        let hard = ctx.obuf_hard();
        let (e, out) = ctx.entry(argv[1], true);
        let s = match e.map(|e| &e.value) {
            None => return out.array(0),
            Some(Value::Set(s)) => s,
            Some(_) => return out.error(super::WRONGTYPE),
        };
        let (k, n) = (c.unsigned_abs(), s.len());
        out.array(k as usize);
        return super::write_picks(out, hard, k, |out| out.bulk(&s.member_at(rng.gen_range(0..n))));
    }
    let picked: Vec<Vec<u8>> = match set_mut(ctx, argv[1], true) {
        Err(()) => return,
        Ok(None) => return if count.is_some() { ctx.out.array(0) } else { ctx.out.null() },
        Ok(Some(s)) => {
            let n = s.len();
            match count {
                None => {
                    let m = s.member_at(rng.gen_range(0..n));
                    return ctx.out.bulk(&m);
                }
                Some(c) if c as usize >= n => s.members(),
                Some(c) => rand::seq::index::sample(&mut rng, n, c as usize).into_iter().map(|i| s.member_at(i)).collect(),
            }
        }
    };
    ctx.out.array(picked.len());
    for m in &picked {
        ctx.out.bulk(m);
    }
}

fn smove(ctx: &mut Ctx, argv: &[&[u8]]) {
    let (src, dst, m) = (argv[1], argv[2], argv[3]);
    let max = max_ints(ctx);
    let has = match set_mut(ctx, src, false) {
        Err(()) => return,
        Ok(None) => return ctx.out.int(0),
        Ok(Some(s)) => s.contains(m),
    };
    if set_mut(ctx, dst, false).is_err() {
        return;
    }
    if !has {
        return ctx.out.int(0);
    }
    if src == dst {
        return ctx.out.int(1);
    }
    if let Ok(Some(s)) = set_mut(ctx, src, false) {
        s.remove(m);
    }
    // As Redis's smoveCommand: the source changed (one change, its "srem"); the destination
    // only if the member was not there already (a second change, its "sadd", and WATCH).
    let db = ctx.db();
    ctx.notify(crate::config::notify::SET, "srem", db, src);
    // (A source emptied is deleted, and that deletion is its one change.)
    let before = ctx.dirty();
    ctx.delete_if_empty(src);
    if ctx.dirty() == before {
        ctx.touched();
    }
    let added = match set_mut(ctx, dst, false) {
        Ok(Some(d)) => Some(d.add(m, max)),
        _ => None,
    };
    match added {
        Some(true) => ctx.touched(),
        Some(false) => ctx.touched_keys = Some(smallvec::smallvec![1]),
        None => {
            // A new destination (the store counts its change).
            let mut d = Set::default();
            d.add(m, max);
            ctx.store(dst, Value::Set(Box::new(d)), 0);
        }
    }
    if added != Some(false) {
        ctx.notify(crate::config::notify::SET, "sadd", db, dst);
    }
    ctx.out.int(1);
}

/// Loads the sets named by `keys` (missing keys are empty sets); Err after replying WRONGTYPE.
fn load_sets(ctx: &mut Ctx, keys: &[&[u8]]) -> Result<Vec<Option<Set>>, ()> {
    let mut out = Vec::with_capacity(keys.len());
    for k in keys {
        out.push(set_mut(ctx, k, true)?.map(|s| s.clone()));
    }
    Ok(out)
}

/// The intersection, in the iteration order of the smallest set (as Redis replies it).
fn intersect(sets: &[Option<Set>], limit: usize) -> Vec<Vec<u8>> {
    if sets.iter().any(|s| s.is_none()) {
        return Vec::new();
    }
    let mut sets: Vec<&Set> = sets.iter().flatten().collect();
    sets.sort_by_key(|s| s.len());
    let mut out = Vec::new();
    for m in sets[0].members() {
        if sets[1..].iter().all(|s| s.contains(&m)) {
            out.push(m);
            if limit > 0 && out.len() >= limit {
                break;
            }
        }
    }
    out
}

/// Builds a result set from members (intset when possible, as Redis's temporary sets are).
fn build(members: impl IntoIterator<Item = Vec<u8>>, max: usize) -> Set {
    let mut s = Set::default();
    for m in members {
        s.add(&m, max);
    }
    s
}

fn sinter(ctx: &mut Ctx, argv: &[&[u8]]) {
    let Ok(sets) = load_sets(ctx, &argv[1..]) else { return };
    let r = intersect(&sets, 0);
    reply_members(ctx.out, &r);
}

fn sintercard(ctx: &mut Ctx, argv: &[&[u8]]) {
    let numkeys = match parse_i64(argv[1]) {
        Some(n) if n > 0 => n as usize,
        _ => return ctx.out.error("ERR numkeys should be greater than 0"),
    };
    if numkeys > argv.len() - 2 {
        return ctx.out.error("ERR Number of keys can't be greater than number of args");
    }
    let rest = &argv[2 + numkeys..];
    let mut limit = 0usize;
    match rest.len() {
        0 => {}
        2 if eq(rest[0], "limit") => match parse_i64(rest[1]) {
            Some(l) if l >= 0 => limit = l as usize,
            _ => return ctx.out.error("ERR LIMIT can't be negative"),
        },
        _ => return ctx.out.error(SYNTAX),
    }
    let Ok(sets) = load_sets(ctx, &argv[2..2 + numkeys]) else { return };
    let n = intersect(&sets, limit).len();
    ctx.out.int(n as i64);
}

fn union(sets: &[Option<Set>], max: usize) -> Set {
    build(sets.iter().flatten().flat_map(|s| s.members()), max)
}

fn diff(sets: &[Option<Set>], max: usize) -> Set {
    let Some(Some(first)) = sets.first() else { return Set::default() };
    build(first.members().into_iter().filter(|m| !sets[1..].iter().flatten().any(|s| s.contains(m))), max)
}

fn sunion(ctx: &mut Ctx, argv: &[&[u8]]) {
    let Ok(sets) = load_sets(ctx, &argv[1..]) else { return };
    let r = union(&sets, max_ints(ctx));
    reply_members(ctx.out, &r.members());
}

fn sdiff(ctx: &mut Ctx, argv: &[&[u8]]) {
    let Ok(sets) = load_sets(ctx, &argv[1..]) else { return };
    let r = diff(&sets, max_ints(ctx));
    reply_members(ctx.out, &r.members());
}

/// Stores a computed set at `dst` (deleting `dst` when empty) and replies its size.
fn store_result(ctx: &mut Ctx, dst: &[u8], s: Set) {
    let n = s.len();
    if n == 0 {
        ctx.delete(dst);
        ctx.mark_propagated();
        ctx.propagate(&[b"DEL", dst]);
    } else {
        ctx.store(dst, Value::Set(Box::new(s)), 0);
    }
    ctx.out.int(n as i64);
}

fn sinterstore(ctx: &mut Ctx, argv: &[&[u8]]) {
    let Ok(sets) = load_sets(ctx, &argv[2..]) else { return };
    let r = build(intersect(&sets, 0), max_ints(ctx));
    store_result(ctx, argv[1], r);
}

fn sunionstore(ctx: &mut Ctx, argv: &[&[u8]]) {
    let Ok(sets) = load_sets(ctx, &argv[2..]) else { return };
    let r = union(&sets, max_ints(ctx));
    store_result(ctx, argv[1], r);
}

fn sdiffstore(ctx: &mut Ctx, argv: &[&[u8]]) {
    let Ok(sets) = load_sets(ctx, &argv[2..]) else { return };
    let r = diff(&sets, max_ints(ctx));
    store_result(ctx, argv[1], r);
}

/// SSCAN returns the whole set in one call (cursor 0); MATCH filters, COUNT is a hint.
fn sscan(ctx: &mut Ctx, argv: &[&[u8]]) {
    let Some(pat) = super::scan_options(ctx, argv) else { return };
    let members = match set_mut(ctx, argv[1], true) {
        Err(()) => return,
        Ok(None) => Vec::new(),
        Ok(Some(s)) => s.members(),
    };
    let members: Vec<_> = members.into_iter().filter(|m| pat.is_none_or(|p| crate::util::glob_match(p, m, false))).collect();
    ctx.out.array(2);
    ctx.out.bulk(b"0");
    ctx.out.array(members.len());
    for m in members {
        ctx.out.bulk(&m);
    }
}
