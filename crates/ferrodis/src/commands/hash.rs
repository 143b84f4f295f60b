//! The hash family (Redis's t_hash.c).

use super::table::{cmd, flag::*, CommandSpec, ONE_KEY};
use super::{eq, Ctx, NOT_INT, OVERFLOW, SYNTAX, WRONGTYPE};
use crate::types::hash::Limits;
use crate::types::{Hash, Value};
use crate::util::parse_i64;
use std::sync::atomic::Ordering;

pub static COMMANDS: &[CommandSpec] = &[
    cmd("hset", -4, WRITE | DENYOOM | FAST, "@write @hash @fast", ONE_KEY, hset),
    cmd("hsetnx", 4, WRITE | DENYOOM | FAST, "@write @hash @fast", ONE_KEY, hsetnx),
    cmd("hmset", -4, WRITE | DENYOOM | FAST, "@write @hash @fast", ONE_KEY, hmset),
    cmd("hget", 3, READONLY | FAST, "@read @hash @fast", ONE_KEY, hget),
    cmd("hmget", -3, READONLY | FAST, "@read @hash @fast", ONE_KEY, hmget),
    cmd("hgetall", 2, READONLY, "@read @hash @slow", ONE_KEY, hgetall),
    cmd("hkeys", 2, READONLY, "@read @hash @slow", ONE_KEY, hkeys),
    cmd("hvals", 2, READONLY, "@read @hash @slow", ONE_KEY, hvals),
    cmd("hdel", -3, WRITE | FAST, "@write @hash @fast", ONE_KEY, hdel),
    cmd("hlen", 2, READONLY | FAST, "@read @hash @fast", ONE_KEY, hlen),
    cmd("hexists", 3, READONLY | FAST, "@read @hash @fast", ONE_KEY, hexists),
    cmd("hstrlen", 3, READONLY | FAST, "@read @hash @fast", ONE_KEY, hstrlen),
    cmd("hincrby", 4, WRITE | DENYOOM | FAST, "@write @hash @fast", ONE_KEY, hincrby),
    cmd("hincrbyfloat", 4, WRITE | DENYOOM | FAST, "@write @hash @fast", ONE_KEY, hincrbyfloat),
    cmd("hrandfield", -2, READONLY, "@read @hash @slow", ONE_KEY, hrandfield),
    cmd("hscan", -3, READONLY, "@read @hash @slow", ONE_KEY, hscan),
];

fn limits(ctx: &Ctx) -> Limits {
    let h = &ctx.st.config.hot;
    Limits { max_entries: h.hash_max_entries.load(Ordering::Relaxed), max_value: h.hash_max_value.load(Ordering::Relaxed) }
}

/// The hash at `key`: Ok(None) when missing, Err after replying WRONGTYPE.
fn hash_mut<'a>(ctx: &'a mut Ctx, key: &[u8], read: bool) -> Result<Option<&'a mut Hash>, ()> {
    ctx.typed(key, read, |v| match v {
        Value::Hash(x) => Some(x),
        _ => None,
    })
}

/// The hash at `key`, created empty when missing (for writes).
fn hash_create<'a>(ctx: &'a mut Ctx, key: &[u8]) -> Result<&'a mut Hash, ()> {
    match hash_mut(ctx, key, false) {
        Err(()) => return Err(()),
        Ok(None) => ctx.store(key, Value::Hash(Hash::default()), 0),
        Ok(Some(_)) => {}
    }
    match hash_mut(ctx, key, false) {
        Ok(Some(h)) => Ok(h),
        _ => Err(()),
    }
}

fn set_pairs(ctx: &mut Ctx, argv: &[&[u8]]) -> Option<i64> {
    if !argv.len().is_multiple_of(2) {
        ctx.out.error(&format!("ERR wrong number of arguments for '{}' command", ctx.table.full_name(ctx.cmd_id)));
        return None;
    }
    let l = limits(ctx);
    let Ok(h) = hash_create(ctx, argv[1]) else { return None };
    let added = h.set_many(&argv[2..], l) as i64;
    // Redis counts every pair given as a change.
    ctx.set_changes(((argv.len() - 2) / 2) as u64);
    Some(added)
}

fn hset(ctx: &mut Ctx, argv: &[&[u8]]) {
    if let Some(n) = set_pairs(ctx, argv) {
        ctx.out.int(n);
    }
}

fn hmset(ctx: &mut Ctx, argv: &[&[u8]]) {
    if set_pairs(ctx, argv).is_some() {
        ctx.out.ok();
    }
}

fn hsetnx(ctx: &mut Ctx, argv: &[&[u8]]) {
    let l = limits(ctx);
    let exists = match hash_mut(ctx, argv[1], false) {
        Err(()) => return,
        Ok(h) => h.is_some_and(|h| h.get(argv[2]).is_some()),
    };
    if exists {
        ctx.out.int(0);
        return;
    }
    let Ok(h) = hash_create(ctx, argv[1]) else { return };
    h.set(argv[2], argv[3], l);
    ctx.touched();
    ctx.out.int(1);
}

/// Runs `f` on the hash at `key` for a read reply; a missing key is `on_missing`.
fn read_hash(ctx: &mut Ctx, key: &[u8], on_missing: impl FnOnce(&mut resp::ReplyBuf), f: impl FnOnce(&Hash, &mut resp::ReplyBuf)) {
    let (e, out) = ctx.entry(key, true);
    match e.map(|e| &e.value) {
        None => on_missing(out),
        Some(Value::Hash(h)) => f(h, out),
        Some(_) => out.error(WRONGTYPE),
    }
}

fn hget(ctx: &mut Ctx, argv: &[&[u8]]) {
    read_hash(
        ctx,
        argv[1],
        |o| o.null(),
        |h, o| match h.get(argv[2]) {
            Some(v) => o.bulk(v),
            None => o.null(),
        },
    );
}

fn hmget(ctx: &mut Ctx, argv: &[&[u8]]) {
    let fields = &argv[2..];
    read_hash(
        ctx,
        argv[1],
        |o| {
            o.array(fields.len());
            for _ in fields {
                o.null();
            }
        },
        |h, o| {
            o.array(fields.len());
            for f in fields {
                match h.get(f) {
                    Some(v) => o.bulk(v),
                    None => o.null(),
                }
            }
        },
    );
}

fn hgetall(ctx: &mut Ctx, argv: &[&[u8]]) {
    read_hash(
        ctx,
        argv[1],
        |o| o.map(0),
        |h, o| {
            let pairs = h.pairs();
            o.map(pairs.len());
            for (f, v) in pairs {
                o.bulk(f);
                o.bulk(v);
            }
        },
    );
}

/// HKEYS and HVALS: one side of every pair.
fn reply_side(ctx: &mut Ctx, key: &[u8], keys: bool) {
    read_hash(
        ctx,
        key,
        |o| o.array(0),
        |h, o| {
            let pairs = h.pairs();
            o.array(pairs.len());
            for (f, v) in pairs {
                o.bulk(if keys { f } else { v });
            }
        },
    );
}

fn hkeys(ctx: &mut Ctx, argv: &[&[u8]]) {
    reply_side(ctx, argv[1], true)
}

fn hvals(ctx: &mut Ctx, argv: &[&[u8]]) {
    reply_side(ctx, argv[1], false)
}

fn hdel(ctx: &mut Ctx, argv: &[&[u8]]) {
    let Ok(h) = hash_mut(ctx, argv[1], false) else { return };
    let Some(h) = h else {
        ctx.out.int(0);
        return;
    };
    let n = argv[2..].iter().filter(|f| h.remove(f)).count();
    ctx.removed(argv[1], n);
    ctx.out.int(n as i64);
}

fn hlen(ctx: &mut Ctx, argv: &[&[u8]]) {
    read_hash(ctx, argv[1], |o| o.int(0), |h, o| o.int(h.len() as i64));
}

fn hexists(ctx: &mut Ctx, argv: &[&[u8]]) {
    read_hash(ctx, argv[1], |o| o.int(0), |h, o| o.int(h.get(argv[2]).is_some() as i64));
}

fn hstrlen(ctx: &mut Ctx, argv: &[&[u8]]) {
    read_hash(ctx, argv[1], |o| o.int(0), |h, o| o.int(h.get(argv[2]).map_or(0, |v| v.len()) as i64));
}

fn hincrby(ctx: &mut Ctx, argv: &[&[u8]]) {
    let Some(by) = parse_i64(argv[3]) else {
        ctx.out.error(NOT_INT);
        return;
    };
    let l = limits(ctx);
    let cur = match hash_mut(ctx, argv[1], false) {
        Err(()) => return,
        Ok(h) => h.and_then(|h| h.get(argv[2]).map(|v| v.to_vec())),
    };
    let cur = match cur {
        None => 0,
        Some(v) => match parse_i64(&v) {
            Some(n) => n,
            None => return ctx.out.error("ERR hash value is not an integer"),
        },
    };
    let Some(n) = cur.checked_add(by) else {
        return ctx.out.error(OVERFLOW);
    };
    let Ok(h) = hash_create(ctx, argv[1]) else { return };
    h.set(argv[2], itoa::Buffer::new().format(n).as_bytes(), l);
    ctx.touched();
    ctx.out.int(n);
}

fn hincrbyfloat(ctx: &mut Ctx, argv: &[&[u8]]) {
    if super::string::incr_float(None, argv[3]).is_err_and(|e| e == super::NOT_FLOAT) {
        return ctx.out.error(super::NOT_FLOAT);
    }
    if crate::util::parse_f64(argv[3]).is_some_and(|f| f.is_infinite()) {
        return ctx.out.error("ERR value is NaN or Infinity");
    }
    let l = limits(ctx);
    let cur = match hash_mut(ctx, argv[1], false) {
        Err(()) => return,
        Ok(h) => h.and_then(|h| h.get(argv[2]).map(|v| v.to_vec())),
    };
    let v = match super::string::incr_float(cur.as_deref(), argv[3]) {
        Ok(v) => v,
        Err(e) if e == super::NOT_FLOAT => return ctx.out.error("ERR hash value is not a float"),
        Err(e) => return ctx.out.error(e),
    };
    let Ok(h) = hash_create(ctx, argv[1]) else { return };
    h.set(argv[2], &v, l);
    ctx.propagate(&[b"HSET", argv[1], argv[2], &v]);
    ctx.out.bulk(&v);
}

fn hrandfield(ctx: &mut Ctx, argv: &[&[u8]]) {
    use rand::Rng;
    let mut count: Option<i64> = None;
    let mut withvalues = false;
    if argv.len() >= 3 {
        match parse_i64(argv[2]) {
            Some(c) if (-(i64::MAX / 2)..=i64::MAX / 2).contains(&c) => count = Some(c),
            Some(_) => return ctx.out.error("ERR value is out of range"),
            None => return ctx.out.error(NOT_INT),
        }
        if argv.len() == 4 {
            if !eq(argv[3], "withvalues") {
                return ctx.out.error(SYNTAX);
            }
            withvalues = true;
        } else if argv.len() > 4 {
            return ctx.out.error(SYNTAX);
        }
    }
    let hard = ctx.obuf_hard();
    let (e, out) = ctx.entry(argv[1], true);
    let h = match e.map(|e| &e.value) {
        None => return if count.is_some() { out.array(0) } else { out.null() },
        Some(Value::Hash(h)) => h,
        Some(_) => return out.error(WRONGTYPE),
    };
    let n = h.len();
    let mut rng = rand::thread_rng();
    let picked: Vec<(&[u8], &[u8])> = match count {
        None => {
            let (f, _) = h.pair_at(rng.gen_range(0..n));
            return out.bulk(f);
        }
        Some(c) if c < 0 => {
            // Repeats allowed: written as picked, nothing collected.
            let k = c.unsigned_abs();
            let pairs = withvalues && out.resp3();
            out.array((if withvalues && !pairs { k * 2 } else { k }) as usize);
            return super::write_picks(out, hard, k, |out| {
                let (f, v) = h.pair_at(rng.gen_range(0..n));
                if pairs {
                    out.array(2);
                }
                out.bulk(f);
                if withvalues {
                    out.bulk(v);
                }
            });
        }
        Some(c) if c as usize >= n => h.pairs(),
        Some(c) => rand::seq::index::sample(&mut rng, n, c as usize).into_iter().map(|i| h.pair_at(i)).collect(),
    };
    if withvalues && out.resp3() {
        out.array(picked.len());
        for (f, v) in &picked {
            out.array(2);
            out.bulk(f);
            out.bulk(v);
        }
    } else {
        out.array(picked.len() * if withvalues { 2 } else { 1 });
        for (f, v) in &picked {
            out.bulk(f);
            if withvalues {
                out.bulk(v);
            }
        }
    }
}

/// HSCAN returns the whole hash in one call (cursor 0), which Redis also does for small hashes;
/// MATCH filters fields, COUNT is a hint.
fn hscan(ctx: &mut Ctx, argv: &[&[u8]]) {
    let Some(pat) = super::scan_options(ctx, argv) else { return };
    read_hash(
        ctx,
        argv[1],
        |o| {
            o.array(2);
            o.bulk(b"0");
            o.array(0);
        },
        |h, o| {
            let pairs: Vec<_> = h.pairs().into_iter().filter(|(f, _)| pat.is_none_or(|p| crate::util::glob_match(p, f, false))).collect();
            o.array(2);
            o.bulk(b"0");
            o.array(pairs.len() * 2);
            for (f, v) in pairs {
                o.bulk(f);
                o.bulk(v);
            }
        },
    );
}
