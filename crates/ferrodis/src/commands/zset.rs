//! The sorted set family (Redis's t_zset.c).

use super::blocking::timeout_arg;
use super::table::{blocking_cmd, cmd, flag::*, range, CommandSpec, Keys, ONE_KEY};
use super::{eq, Ctx, NOT_FLOAT, NOT_INT, SYNTAX, WRONGTYPE};
use crate::state::blocking::{BlockOp, Waiter};
use crate::types::hash::Limits;
use crate::types::{Value, ZSet};
use crate::util::{fmt_g17, parse_f64, parse_i64};
use resp::ReplyBuf;
use smallvec::SmallVec;
use std::collections::HashMap;
use std::sync::atomic::Ordering;

const NUMKEYS1: Keys = Keys::NumKeys { numkeys: 1, first: 2, step: 1 };

pub static COMMANDS: &[CommandSpec] = &[
    cmd("zadd", -4, WRITE | DENYOOM | FAST, "@write @sortedset @fast", ONE_KEY, zadd),
    cmd("zincrby", 4, WRITE | DENYOOM | FAST, "@write @sortedset @fast", ONE_KEY, zincrby),
    cmd("zrem", -3, WRITE | FAST, "@write @sortedset @fast", ONE_KEY, zrem),
    cmd("zcard", 2, READONLY | FAST, "@read @sortedset @fast", ONE_KEY, zcard),
    cmd("zcount", 4, READONLY | FAST, "@read @sortedset @fast", ONE_KEY, zcount),
    cmd("zlexcount", 4, READONLY | FAST, "@read @sortedset @fast", ONE_KEY, zlexcount),
    cmd("zscore", 3, READONLY | FAST, "@read @sortedset @fast", ONE_KEY, zscore),
    cmd("zmscore", -3, READONLY | FAST, "@read @sortedset @fast", ONE_KEY, zmscore),
    cmd("zrank", 3, READONLY | FAST, "@read @sortedset @fast", ONE_KEY, zrank),
    cmd("zrevrank", 3, READONLY | FAST, "@read @sortedset @fast", ONE_KEY, zrevrank),
    cmd("zrange", -4, READONLY, "@read @sortedset @slow", ONE_KEY, zrange),
    cmd("zrangestore", -5, WRITE | DENYOOM, "@write @sortedset @slow", Keys::Range { first: 1, last: 2, step: 1 }, zrangestore),
    cmd("zrevrange", -4, READONLY, "@read @sortedset @slow", ONE_KEY, zrevrange),
    cmd("zrangebyscore", -4, READONLY, "@read @sortedset @slow", ONE_KEY, zrangebyscore),
    cmd("zrevrangebyscore", -4, READONLY, "@read @sortedset @slow", ONE_KEY, zrevrangebyscore),
    cmd("zrangebylex", -4, READONLY, "@read @sortedset @slow", ONE_KEY, zrangebylex),
    cmd("zrevrangebylex", -4, READONLY, "@read @sortedset @slow", ONE_KEY, zrevrangebylex),
    cmd("zremrangebyrank", 4, WRITE, "@write @sortedset @slow", ONE_KEY, zremrangebyrank),
    cmd("zremrangebyscore", 4, WRITE, "@write @sortedset @slow", ONE_KEY, zremrangebyscore),
    cmd("zremrangebylex", 4, WRITE, "@write @sortedset @slow", ONE_KEY, zremrangebylex),
    cmd("zpopmin", -2, WRITE | FAST, "@write @sortedset @fast", ONE_KEY, zpopmin),
    cmd("zpopmax", -2, WRITE | FAST, "@write @sortedset @fast", ONE_KEY, zpopmax),
    cmd("zmpop", -4, WRITE, "@write @sortedset @slow", NUMKEYS1, zmpop),
    blocking_cmd(
        "bzpopmin",
        -3,
        WRITE | NOSCRIPT | BLOCKING | FAST,
        "@write @sortedset @fast @blocking",
        range(1, -2, 1),
        bzpopmin,
        serve_blocked,
    ),
    blocking_cmd(
        "bzpopmax",
        -3,
        WRITE | NOSCRIPT | BLOCKING | FAST,
        "@write @sortedset @fast @blocking",
        range(1, -2, 1),
        bzpopmax,
        serve_blocked,
    ),
    blocking_cmd(
        "bzmpop",
        -5,
        WRITE | BLOCKING,
        "@write @sortedset @slow @blocking",
        Keys::NumKeys { numkeys: 2, first: 3, step: 1 },
        bzmpop,
        serve_blocked,
    ),
    cmd("zunion", -3, READONLY, "@read @sortedset @slow", NUMKEYS1, zunion),
    cmd("zinter", -3, READONLY, "@read @sortedset @slow", NUMKEYS1, zinter),
    cmd("zdiff", -3, READONLY, "@read @sortedset @slow", NUMKEYS1, zdiff),
    cmd("zunionstore", -4, WRITE | DENYOOM, "@write @sortedset @slow", super::table::STORE_NUMKEYS, zunionstore),
    cmd("zinterstore", -4, WRITE | DENYOOM, "@write @sortedset @slow", super::table::STORE_NUMKEYS, zinterstore),
    cmd("zdiffstore", -4, WRITE | DENYOOM, "@write @sortedset @slow", super::table::STORE_NUMKEYS, zdiffstore),
    cmd("zintercard", -3, READONLY, "@read @sortedset @slow", NUMKEYS1, zintercard),
    cmd("zrandmember", -2, READONLY, "@read @sortedset @slow", ONE_KEY, zrandmember),
    cmd("zscan", -3, READONLY, "@read @sortedset @slow", ONE_KEY, zscan),
];

pub fn limits(ctx: &Ctx) -> Limits {
    let h = &ctx.st.config.hot;
    Limits { max_entries: h.zset_max_entries.load(Ordering::Relaxed), max_value: h.zset_max_value.load(Ordering::Relaxed) }
}

/// The sorted set at `key`: Ok(None) when missing, Err after replying WRONGTYPE.
pub(crate) fn zset_mut<'a>(ctx: &'a mut Ctx, key: &[u8], read: bool) -> Result<Option<&'a mut ZSet>, ()> {
    ctx.typed(key, read, |v| match v {
        Value::ZSet(x) => Some(&mut **x),
        _ => None,
    })
}

/// The sorted set at `key` with the reply buffer beside it (for replies written while reading).
pub(crate) fn zset_read<'a>(ctx: &'a mut Ctx, key: &[u8]) -> Result<(Option<&'a ZSet>, &'a mut ReplyBuf), ()> {
    let (e, out) = ctx.entry(key, true);
    match e.map(|e| &e.value) {
        None => Ok((None, out)),
        Some(Value::ZSet(z)) => Ok((Some(z), out)),
        Some(_) => {
            out.error(WRONGTYPE);
            Err(())
        }
    }
}

/// A score reply: `%.17g`, `inf`, `-inf` (a double in RESP3, a bulk string in RESP2).
pub fn reply_score(out: &mut ReplyBuf, s: f64) {
    out.double_str(fmt_g17(s).as_bytes());
}

/// Members (with scores) as ZRANGE replies them: flat in RESP2, [member, score] pairs in RESP3.
fn reply_entries(out: &mut ReplyBuf, entries: &[(Vec<u8>, f64)], withscores: bool) {
    let pairs = withscores && out.resp3();
    out.array(if withscores && !pairs { entries.len() * 2 } else { entries.len() });
    for (m, s) in entries {
        if pairs {
            out.array(2);
        }
        out.bulk(m);
        if withscores {
            reply_score(out, *s);
        }
    }
}

// ---------------------------------------------------------------- ranges

/// `strtod` over the whole argument, as Redis parses range bounds (leading blanks and an empty
/// string are accepted, NaN is not).
fn strtod_full(b: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(b).ok()?.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    if s.is_empty() {
        return Some(0.0);
    }
    let v: f64 = s.parse().ok()?;
    (!v.is_nan()).then_some(v)
}

#[derive(Clone, Copy, Debug)]
pub struct ScoreRange {
    pub min: f64,
    pub minex: bool,
    pub max: f64,
    pub maxex: bool,
}

fn score_bound(a: &[u8]) -> Option<(f64, bool)> {
    match a.first() {
        Some(b'(') => strtod_full(&a[1..]).map(|v| (v, true)),
        _ => strtod_full(a).map(|v| (v, false)),
    }
}

pub fn parse_score_range(min: &[u8], max: &[u8]) -> Option<ScoreRange> {
    let (min, minex) = score_bound(min)?;
    let (max, maxex) = score_bound(max)?;
    Some(ScoreRange { min, minex, max, maxex })
}

impl ScoreRange {
    /// Ranks `start..end` of the entries in range.
    pub fn ranks(&self, z: &ZSet) -> (usize, usize) {
        let start = z.count_while(|s, _| if self.minex { s <= self.min } else { s < self.min });
        let end = z.count_while(|s, _| if self.maxex { s < self.max } else { s <= self.max });
        (start, end.max(start))
    }
}

#[derive(Clone, Debug)]
enum LexBound {
    NegInf,
    PosInf,
    Incl(Vec<u8>),
    Excl(Vec<u8>),
}

fn lex_bound(a: &[u8]) -> Option<LexBound> {
    match a.first() {
        Some(b'+') if a.len() == 1 => Some(LexBound::PosInf),
        Some(b'-') if a.len() == 1 => Some(LexBound::NegInf),
        Some(b'[') => Some(LexBound::Incl(a[1..].to_vec())),
        Some(b'(') => Some(LexBound::Excl(a[1..].to_vec())),
        _ => None,
    }
}

#[derive(Clone, Debug)]
struct LexRange {
    min: LexBound,
    max: LexBound,
}

fn parse_lex_range(min: &[u8], max: &[u8]) -> Option<LexRange> {
    Some(LexRange { min: lex_bound(min)?, max: lex_bound(max)? })
}

impl LexRange {
    fn ranks(&self, z: &ZSet) -> (usize, usize) {
        let start = z.count_while(|_, m| match &self.min {
            LexBound::NegInf => false,
            LexBound::PosInf => true,
            LexBound::Incl(x) => m < x.as_slice(),
            LexBound::Excl(x) => m <= x.as_slice(),
        });
        let end = z.count_while(|_, m| match &self.max {
            LexBound::NegInf => false,
            LexBound::PosInf => true,
            LexBound::Incl(x) => m <= x.as_slice(),
            LexBound::Excl(x) => m < x.as_slice(),
        });
        (start, end.max(start))
    }
}

const NOT_FLOAT_RANGE: &str = "ERR min or max is not a float";
const NOT_LEX_RANGE: &str = "ERR min or max not valid string range item";

/// Redis's rank arithmetic (negative from the end, clamped): ranks `start..end`, maybe empty.
fn rank_range(start: i64, end: i64, len: usize) -> (usize, usize) {
    let len = len as i64;
    let mut start = if start < 0 { start + len } else { start };
    let mut end = if end < 0 { end + len } else { end };
    if start < 0 {
        start = 0;
    }
    if start > end || start >= len {
        return (0, 0);
    }
    if end >= len {
        end = len - 1;
    }
    (start as usize, end as usize + 1)
}

// ---------------------------------------------------------------- ZADD / ZINCRBY

const ZADD_NAN: &str = "ERR resulting score is not a number (NaN)";

pub(crate) fn zadd_generic(ctx: &mut Ctx, argv: &[&[u8]], incr_cmd: bool) {
    let (mut nx, mut xx, mut gt, mut lt, mut ch, mut incr) = (false, false, false, false, false, incr_cmd);
    let mut i = 2;
    while i < argv.len() && !incr_cmd {
        let a = argv[i];
        if eq(a, "nx") {
            nx = true;
        } else if eq(a, "xx") {
            xx = true;
        } else if eq(a, "gt") {
            gt = true;
        } else if eq(a, "lt") {
            lt = true;
        } else if eq(a, "ch") {
            ch = true;
        } else if eq(a, "incr") {
            incr = true;
        } else {
            break;
        }
        i += 1;
    }
    let pairs = &argv[i..];
    if pairs.is_empty() || !pairs.len().is_multiple_of(2) {
        return ctx.out.error(SYNTAX);
    }
    if nx && xx {
        return ctx.out.error("ERR XX and NX options at the same time are not compatible");
    }
    if (gt && lt) || (nx && (gt || lt)) {
        return ctx.out.error("ERR GT, LT, and/or NX options at the same time are not compatible");
    }
    if incr && pairs.len() > 2 {
        return ctx.out.error("ERR INCR option supports a single increment-element pair");
    }
    let mut scores: SmallVec<[f64; 8]> = SmallVec::new();
    for p in pairs.chunks(2) {
        match parse_f64(p[0]) {
            Some(s) => scores.push(s),
            None => return ctx.out.error(NOT_FLOAT),
        }
    }
    let lim = limits(ctx);
    let key = argv[1];
    let z = match zset_mut(ctx, key, false) {
        Err(()) => return,
        Ok(Some(z)) => z,
        Ok(None) if xx => {
            return if incr { ctx.out.null() } else { ctx.out.int(0) };
        }
        Ok(None) => {
            let max_member = pairs.chunks(2).map(|p| p[1].len()).max().unwrap_or(0);
            ctx.store(key, Value::ZSet(Box::new(ZSet::with_hint(pairs.len() / 2, max_member, lim))), 0);
            zset_mut(ctx, key, false).ok().flatten().expect("just stored")
        }
    };
    let (mut added, mut updated, mut processed) = (0i64, 0i64, 0i64);
    let mut last_score = 0.0;
    let mut nan = false;
    for (p, &score) in pairs.chunks(2).zip(scores.iter()) {
        let m = p[1];
        match z.score(m) {
            Some(cur) => {
                if nx {
                    continue;
                }
                let mut new = score;
                if incr {
                    new += cur;
                    if new.is_nan() {
                        nan = true;
                        break;
                    }
                }
                if (lt && new >= cur) || (gt && new <= cur) {
                    continue;
                }
                processed += 1;
                last_score = new;
                if new != cur {
                    z.set(m, new, lim);
                    updated += 1;
                }
            }
            None => {
                if xx {
                    continue;
                }
                z.set(m, score, lim);
                added += 1;
                processed += 1;
                last_score = score;
            }
        }
    }
    ctx.delete_if_empty(key);
    // One change per member added or updated, as Redis counts them.
    if added + updated > 0 {
        ctx.set_changes((added + updated) as u64);
    }
    if nan {
        return ctx.out.error(ZADD_NAN);
    }
    if incr {
        if processed > 0 {
            reply_score(ctx.out, last_score)
        } else {
            ctx.out.null()
        }
    } else {
        ctx.out.int(if ch { added + updated } else { added })
    }
}

fn zadd(ctx: &mut Ctx, argv: &[&[u8]]) {
    zadd_generic(ctx, argv, false)
}

fn zincrby(ctx: &mut Ctx, argv: &[&[u8]]) {
    zadd_generic(ctx, argv, true)
}

fn zrem(ctx: &mut Ctx, argv: &[&[u8]]) {
    let n = match zset_mut(ctx, argv[1], false) {
        Err(()) => return,
        Ok(None) => 0,
        Ok(Some(z)) => argv[2..].iter().filter(|m| z.remove(m)).count(),
    };
    ctx.removed(argv[1], n);
    ctx.out.int(n as i64);
}

// ---------------------------------------------------------------- point reads

fn zcard(ctx: &mut Ctx, argv: &[&[u8]]) {
    let Ok(z) = zset_mut(ctx, argv[1], true) else { return };
    let n = z.map_or(0, |z| z.len());
    ctx.out.int(n as i64);
}

fn zscore(ctx: &mut Ctx, argv: &[&[u8]]) {
    let Ok((z, out)) = zset_read(ctx, argv[1]) else { return };
    match z.and_then(|z| z.score(argv[2])) {
        Some(s) => reply_score(out, s),
        None => out.null(),
    }
}

fn zmscore(ctx: &mut Ctx, argv: &[&[u8]]) {
    let Ok((z, out)) = zset_read(ctx, argv[1]) else { return };
    out.array(argv.len() - 2);
    for m in &argv[2..] {
        match z.and_then(|z| z.score(m)) {
            Some(s) => reply_score(out, s),
            None => out.null(),
        }
    }
}

fn rank_generic(ctx: &mut Ctx, argv: &[&[u8]], rev: bool) {
    let Ok((z, out)) = zset_read(ctx, argv[1]) else { return };
    match z.and_then(|z| z.rank(argv[2]).map(|r| if rev { z.len() - 1 - r } else { r })) {
        Some(r) => out.int(r as i64),
        None => out.null(),
    }
}

fn zrank(ctx: &mut Ctx, argv: &[&[u8]]) {
    rank_generic(ctx, argv, false)
}
fn zrevrank(ctx: &mut Ctx, argv: &[&[u8]]) {
    rank_generic(ctx, argv, true)
}

fn zcount(ctx: &mut Ctx, argv: &[&[u8]]) {
    let Some(r) = parse_score_range(argv[2], argv[3]) else { return ctx.out.error(NOT_FLOAT_RANGE) };
    let Ok((z, out)) = zset_read(ctx, argv[1]) else { return };
    out.int(z.map_or(0, |z| {
        let (a, b) = r.ranks(z);
        b - a
    }) as i64);
}

fn zlexcount(ctx: &mut Ctx, argv: &[&[u8]]) {
    let Some(r) = parse_lex_range(argv[2], argv[3]) else { return ctx.out.error(NOT_LEX_RANGE) };
    let Ok((z, out)) = zset_read(ctx, argv[1]) else { return };
    out.int(z.map_or(0, |z| {
        let (a, b) = r.ranks(z);
        b - a
    }) as i64);
}

// ---------------------------------------------------------------- ZRANGE and friends

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Rank,
    Score,
    Lex,
}

/// Redis's zrangeGenericCommand. `at` is the index of the source key; `kind` and `rev` are
/// fixed by the legacy commands (None: chosen by ZRANGE's options); `dst` for ZRANGESTORE.
fn zrange_generic(ctx: &mut Ctx, argv: &[&[u8]], at: usize, dst: Option<&[u8]>, kind: Option<Kind>, rev: Option<bool>) {
    let (mut k, mut r) = (kind, rev);
    let (mut withscores, mut offset, mut limit) = (false, 0i64, -1i64);
    let mut j = at + 3;
    while j < argv.len() {
        let left = argv.len() - j - 1;
        let a = argv[j];
        if dst.is_none() && eq(a, "withscores") {
            withscores = true;
        } else if eq(a, "limit") && left >= 2 {
            let (Some(o), Some(l)) = (parse_i64(argv[j + 1]), parse_i64(argv[j + 2])) else { return ctx.out.error(NOT_INT) };
            offset = o;
            limit = l;
            j += 2;
        } else if rev.is_none() && eq(a, "rev") {
            r = Some(true);
        } else if kind.is_none() && eq(a, "bylex") {
            k = Some(Kind::Lex);
        } else if kind.is_none() && eq(a, "byscore") {
            k = Some(Kind::Score);
        } else {
            return ctx.out.error(SYNTAX);
        }
        j += 1;
    }
    let kind = k.unwrap_or(Kind::Rank);
    let rev = r.unwrap_or(false);
    if kind == Kind::Rank && (offset != 0 || limit != -1) {
        return ctx.out.error("ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX");
    }
    if withscores && kind == Kind::Lex {
        return ctx.out.error("ERR syntax error, WITHSCORES not supported in combination with BYLEX");
    }
    let (mut lo, mut hi) = (argv[at + 1], argv[at + 2]);
    if rev && kind != Kind::Rank {
        std::mem::swap(&mut lo, &mut hi);
    }
    enum R {
        Rank(i64, i64),
        Score(ScoreRange),
        Lex(LexRange),
    }
    let range = match kind {
        Kind::Rank => match (parse_i64(lo), parse_i64(hi)) {
            (Some(a), Some(b)) => R::Rank(a, b),
            _ => return ctx.out.error(NOT_INT),
        },
        Kind::Score => match parse_score_range(lo, hi) {
            Some(s) => R::Score(s),
            None => return ctx.out.error(NOT_FLOAT_RANGE),
        },
        Kind::Lex => match parse_lex_range(lo, hi) {
            Some(l) => R::Lex(l),
            None => return ctx.out.error(NOT_LEX_RANGE),
        },
    };
    let Ok((z, out)) = zset_read(ctx, argv[at]) else { return };
    let mut picked: Vec<(Vec<u8>, f64)> = Vec::new();
    if let Some(z) = z {
        let (start, end) = match &range {
            R::Rank(a, b) => {
                // Ranks count from the top when reversed.
                let (s, e) = rank_range(*a, *b, z.len());
                if rev {
                    (z.len() - e, z.len() - s)
                } else {
                    (s, e)
                }
            }
            R::Score(s) => s.ranks(z),
            R::Lex(l) => l.ranks(z),
        };
        let n = end.saturating_sub(start);
        let skip = if offset < 0 { n } else { (offset as usize).min(n) };
        let take = if limit < 0 { n - skip } else { (limit as usize).min(n - skip) };
        let (a, b) = if rev { (end - skip - take, end - skip) } else { (start + skip, start + skip + take) };
        picked.reserve(take);
        z.walk(a, b, rev, |m, s| {
            picked.push((m.to_vec(), s));
            true
        });
    }
    match dst {
        None => reply_entries(out, &picked, withscores),
        Some(d) => {
            if rev {
                picked.reverse();
            }
            store_result(ctx, d, picked);
        }
    }
}

/// Stores a STORE command's result (deleting the destination when it is empty) and replies
/// its size.
pub(crate) fn store_result(ctx: &mut Ctx, dst: &[u8], entries: Vec<(Vec<u8>, f64)>) {
    let n = entries.len();
    if n > 0 {
        let lim = limits(ctx);
        ctx.store(dst, Value::ZSet(Box::new(ZSet::from_sorted(entries, lim))), 0);
    } else {
        ctx.delete(dst);
    }
    ctx.out.int(n as i64);
}

fn zrange(ctx: &mut Ctx, argv: &[&[u8]]) {
    zrange_generic(ctx, argv, 1, None, None, None)
}
fn zrangestore(ctx: &mut Ctx, argv: &[&[u8]]) {
    zrange_generic(ctx, argv, 2, Some(argv[1]), None, None)
}
fn zrevrange(ctx: &mut Ctx, argv: &[&[u8]]) {
    zrange_generic(ctx, argv, 1, None, Some(Kind::Rank), Some(true))
}
fn zrangebyscore(ctx: &mut Ctx, argv: &[&[u8]]) {
    zrange_generic(ctx, argv, 1, None, Some(Kind::Score), Some(false))
}
fn zrevrangebyscore(ctx: &mut Ctx, argv: &[&[u8]]) {
    zrange_generic(ctx, argv, 1, None, Some(Kind::Score), Some(true))
}
fn zrangebylex(ctx: &mut Ctx, argv: &[&[u8]]) {
    zrange_generic(ctx, argv, 1, None, Some(Kind::Lex), Some(false))
}
fn zrevrangebylex(ctx: &mut Ctx, argv: &[&[u8]]) {
    zrange_generic(ctx, argv, 1, None, Some(Kind::Lex), Some(true))
}

// ---------------------------------------------------------------- ZREMRANGEBY*

fn zremrange_generic(ctx: &mut Ctx, argv: &[&[u8]], kind: Kind) {
    enum R {
        Rank(i64, i64),
        Score(ScoreRange),
        Lex(LexRange),
    }
    let range = match kind {
        Kind::Rank => match (parse_i64(argv[2]), parse_i64(argv[3])) {
            (Some(a), Some(b)) => R::Rank(a, b),
            _ => return ctx.out.error(NOT_INT),
        },
        Kind::Score => match parse_score_range(argv[2], argv[3]) {
            Some(s) => R::Score(s),
            None => return ctx.out.error(NOT_FLOAT_RANGE),
        },
        Kind::Lex => match parse_lex_range(argv[2], argv[3]) {
            Some(l) => R::Lex(l),
            None => return ctx.out.error(NOT_LEX_RANGE),
        },
    };
    let n = match zset_mut(ctx, argv[1], false) {
        Err(()) => return,
        Ok(None) => 0,
        Ok(Some(z)) => {
            let (a, b) = match &range {
                R::Rank(a, b) => rank_range(*a, *b, z.len()),
                R::Score(s) => s.ranks(z),
                R::Lex(l) => l.ranks(z),
            };
            z.remove_range(a, b).len()
        }
    };
    ctx.removed(argv[1], n);
    ctx.out.int(n as i64);
}

fn zremrangebyrank(ctx: &mut Ctx, argv: &[&[u8]]) {
    zremrange_generic(ctx, argv, Kind::Rank)
}
fn zremrangebyscore(ctx: &mut Ctx, argv: &[&[u8]]) {
    zremrange_generic(ctx, argv, Kind::Score)
}
fn zremrangebylex(ctx: &mut Ctx, argv: &[&[u8]]) {
    zremrange_generic(ctx, argv, Kind::Lex)
}

// ---------------------------------------------------------------- pops

/// Pops up to `count` entries from the low (`max` false) or high end of the set at `key`, which
/// must exist and be a sorted set; propagates the pop as ZPOPMIN/ZPOPMAX with its count.
pub fn pop_entries(ctx: &mut Ctx, key: &[u8], max: bool, count: usize) -> Vec<(Vec<u8>, f64)> {
    let Ok(Some(z)) = zset_mut(ctx, key, false) else { return Vec::new() };
    let n = count.min(z.len());
    let len = z.len();
    let mut got = if max { z.remove_range(len - n, len) } else { z.remove_range(0, n) };
    if max {
        got.reverse();
    }
    if !got.is_empty() {
        ctx.touched();
        let db = ctx.db();
        ctx.notify(crate::config::notify::ZSET, if max { "zpopmax" } else { "zpopmin" }, db, key);
        ctx.delete_if_empty(key);
        let c = itoa::Buffer::new().format(got.len()).to_owned();
        ctx.propagate(&[if max { b"ZPOPMAX" } else { b"ZPOPMIN" }, key, c.as_bytes()]);
    }
    got
}

/// One popped entry set as the pop commands reply it: nested pairs when `nested`, else flat.
pub fn reply_popped(out: &mut ReplyBuf, got: &[(Vec<u8>, f64)], nested: bool) {
    out.array(if nested { got.len() } else { got.len() * 2 });
    for (m, s) in got {
        if nested {
            out.array(2);
        }
        out.bulk(m);
        reply_score(out, *s);
    }
}

fn zpop_generic(ctx: &mut Ctx, argv: &[&[u8]], max: bool) {
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
    match zset_mut(ctx, argv[1], false) {
        Err(()) => return,
        Ok(None) => return ctx.out.array(0),
        Ok(Some(_)) => {}
    }
    if count == Some(0) {
        return ctx.out.array(0);
    }
    let got = pop_entries(ctx, argv[1], max, count.unwrap_or(1));
    if !got.is_empty() {
        ctx.set_changes(got.len() as u64);
    }
    let nested = count.is_some() && ctx.out.resp3();
    reply_popped(ctx.out, &got, nested);
}

fn zpopmin(ctx: &mut Ctx, argv: &[&[u8]]) {
    zpop_generic(ctx, argv, false)
}
fn zpopmax(ctx: &mut Ctx, argv: &[&[u8]]) {
    zpop_generic(ctx, argv, true)
}

/// MIN or MAX.
pub fn min_max(a: &[u8]) -> Option<bool> {
    if eq(a, "min") {
        Some(false)
    } else if eq(a, "max") {
        Some(true)
    } else {
        None
    }
}

/// Pops from the first non-empty of `keys` and replies [key, [[member, score] ...]]; false when
/// every key is missing (nothing replied) or after a WRONGTYPE reply (`Err`).
pub(crate) fn mpop_from(ctx: &mut Ctx, keys: &[&[u8]], max: bool, count: usize) -> Result<bool, ()> {
    for k in keys {
        if zset_mut(ctx, k, false)?.is_none() {
            continue;
        }
        let got = pop_entries(ctx, k, max, count);
        ctx.out.array(2);
        ctx.out.bulk(k);
        reply_popped(ctx.out, &got, true);
        return Ok(true);
    }
    Ok(false)
}

fn zmpop(ctx: &mut Ctx, argv: &[&[u8]]) {
    let Some((keys, max, count)) = super::mpop_args(ctx, argv, 1, min_max) else { return };
    if let Ok(false) = mpop_from(ctx, keys, max, count) {
        ctx.out.null_array();
    }
}

/// Pops one entry from `key` (a non-empty sorted set) and replies [key, member, score].
fn pop_keyed(ctx: &mut Ctx, key: &[u8], max: bool) {
    let got = pop_entries(ctx, key, max, 1);
    if let Some((m, s)) = got.first() {
        ctx.out.array(3);
        ctx.out.bulk(key);
        ctx.out.bulk(m);
        reply_score(ctx.out, *s);
    }
}

fn bzpop_generic(ctx: &mut Ctx, argv: &[&[u8]], max: bool) {
    let Some(timeout) = timeout_arg(ctx, argv[argv.len() - 1]) else { return };
    let keys = &argv[1..argv.len() - 1];
    for k in keys {
        match zset_mut(ctx, k, false) {
            Err(()) => return,
            Ok(None) => continue,
            Ok(Some(_)) => return pop_keyed(ctx, k, max),
        }
    }
    ctx.block(keys, BlockOp::ZPop { max }, timeout);
}

fn bzpopmin(ctx: &mut Ctx, argv: &[&[u8]]) {
    bzpop_generic(ctx, argv, false)
}
fn bzpopmax(ctx: &mut Ctx, argv: &[&[u8]]) {
    bzpop_generic(ctx, argv, true)
}

fn bzmpop(ctx: &mut Ctx, argv: &[&[u8]]) {
    let Some(timeout) = timeout_arg(ctx, argv[1]) else { return };
    let Some((keys, max, count)) = super::mpop_args(ctx, argv, 2, min_max) else { return };
    if let Ok(false) = mpop_from(ctx, keys, max, count) {
        ctx.block(keys, BlockOp::ZMPop { max, count }, timeout);
    }
}

/// Serves a client blocked by a sorted set command once `key` holds a sorted set.
fn serve_blocked(ctx: &mut Ctx, key: &[u8], w: &Waiter) -> bool {
    if !matches!(zset_mut(ctx, key, false), Ok(Some(_))) || !w.claim() {
        return false;
    }
    match &w.op {
        BlockOp::ZPop { max } => pop_keyed(ctx, key, *max),
        BlockOp::ZMPop { max, count } => {
            let _ = mpop_from(ctx, &[key], *max, *count);
        }
        _ => unreachable!("a sorted set command blocks with a sorted set operation"),
    }
    true
}

// ---------------------------------------------------------------- ZUNION / ZINTER / ZDIFF

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Union,
    Inter,
    Diff,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Agg {
    Sum,
    Min,
    Max,
}

fn aggregate(target: &mut f64, v: f64, agg: Agg) {
    match agg {
        Agg::Sum => {
            *target += v;
            if target.is_nan() {
                *target = 0.0;
            }
        }
        Agg::Min => {
            if v < *target {
                *target = v
            }
        }
        Agg::Max => {
            if v > *target {
                *target = v
            }
        }
    }
}

/// An input of a set operation, read out of the keyspace: entries in iteration order and a
/// member index.
struct Src {
    entries: Vec<(Vec<u8>, f64)>,
    index: HashMap<Vec<u8>, f64>,
    weight: f64,
}

/// Sources are read lookups even for the STORE forms (Redis 7.0 counts and notifies their misses).
fn read_src(ctx: &mut Ctx, key: &[u8]) -> Result<Src, ()> {
    let (e, out) = ctx.entry(key, true);
    let entries: Vec<(Vec<u8>, f64)> = match e.map(|e| &e.value) {
        None => Vec::new(),
        Some(Value::ZSet(z)) => z.entries(),
        Some(Value::Set(s)) => s.members().into_iter().map(|m| (m, 1.0)).collect(),
        Some(_) => {
            out.error(WRONGTYPE);
            return Err(());
        }
    };
    let index = entries.iter().cloned().collect();
    Ok(Src { entries, index, weight: 1.0 })
}

/// Redis's zunionInterDiffGenericCommand. `nk` is the index of numkeys.
fn setop_generic(ctx: &mut Ctx, argv: &[&[u8]], dst: Option<&[u8]>, nk: usize, op: Op, card_only: bool) {
    let Some(numkeys) = parse_i64(argv[nk]) else { return ctx.out.error(NOT_INT) };
    if numkeys < 1 {
        let name = ctx.table.full_name(ctx.cmd_id).to_string();
        return ctx.out.error(&format!("ERR at least 1 input key is needed for '{name}' command"));
    }
    let numkeys = numkeys as usize;
    if numkeys > argv.len() - nk - 1 {
        return ctx.out.error(SYNTAX);
    }
    let mut srcs = Vec::with_capacity(numkeys);
    for k in &argv[nk + 1..nk + 1 + numkeys] {
        match read_src(ctx, k) {
            Ok(s) => srcs.push(s),
            Err(()) => return,
        }
    }
    let (mut agg, mut withscores, mut limit) = (Agg::Sum, false, 0usize);
    let mut j = nk + 1 + numkeys;
    while j < argv.len() {
        let remaining = argv.len() - j;
        let a = argv[j];
        if op != Op::Diff && !card_only && eq(a, "weights") && remaining > numkeys {
            for (i, s) in srcs.iter_mut().enumerate() {
                match parse_f64(argv[j + 1 + i]) {
                    Some(w) => s.weight = w,
                    None => return ctx.out.error("ERR weight value is not a float"),
                }
            }
            j += numkeys;
        } else if op != Op::Diff && !card_only && eq(a, "aggregate") && remaining >= 2 {
            let v = argv[j + 1];
            agg = if eq(v, "sum") {
                Agg::Sum
            } else if eq(v, "min") {
                Agg::Min
            } else if eq(v, "max") {
                Agg::Max
            } else {
                return ctx.out.error(SYNTAX);
            };
            j += 1;
        } else if dst.is_none() && !card_only && eq(a, "withscores") {
            withscores = true;
        } else if card_only && eq(a, "limit") && remaining >= 2 {
            match parse_i64(argv[j + 1]) {
                Some(l) if l >= 0 => limit = l as usize,
                // Redis's getPositiveLongFromObjectOrReply: one message for both.
                _ => return ctx.out.error("ERR LIMIT can't be negative"),
            }
            j += 1;
        } else {
            return ctx.out.error(SYNTAX);
        }
        j += 1;
    }
    if op != Op::Diff {
        // Smallest first, as Redis orders its inputs (the order of a float sum follows it).
        srcs.sort_by_key(|s| s.entries.len());
    }
    let weighted = |s: &Src, v: f64| {
        let x = s.weight * v;
        if x.is_nan() {
            0.0
        } else {
            x
        }
    };
    let mut result: Vec<(Vec<u8>, f64)> = Vec::new();
    match op {
        Op::Inter => {
            if srcs[0].entries.is_empty() {
                // Any empty input makes the intersection empty.
            } else {
                'outer: for (m, v) in &srcs[0].entries {
                    let mut score = weighted(&srcs[0], *v);
                    for s in &srcs[1..] {
                        match s.index.get(m) {
                            Some(x) => aggregate(&mut score, s.weight * x, agg),
                            None => continue 'outer,
                        }
                    }
                    result.push((m.clone(), score));
                    if card_only && limit > 0 && result.len() >= limit {
                        break;
                    }
                }
            }
        }
        Op::Union => {
            let mut acc: HashMap<Vec<u8>, f64> = HashMap::new();
            let mut order: Vec<Vec<u8>> = Vec::new();
            for s in &srcs {
                for (m, v) in &s.entries {
                    let x = weighted(s, *v);
                    match acc.get_mut(m) {
                        Some(t) => aggregate(t, x, agg),
                        None => {
                            acc.insert(m.clone(), x);
                            order.push(m.clone());
                        }
                    }
                }
            }
            result = order
                .into_iter()
                .map(|m| {
                    let s = acc[&m];
                    (m, s)
                })
                .collect();
        }
        Op::Diff => {
            for (m, v) in &srcs[0].entries {
                if !srcs[1..].iter().any(|s| s.index.contains_key(m)) {
                    result.push((m.clone(), *v));
                }
            }
        }
    }
    if card_only {
        return ctx.out.int(result.len() as i64);
    }
    result.sort_by(|a, b| crate::types::zset::cmp_entry(a.1, &a.0, b.1, &b.0));
    match dst {
        Some(d) => store_result(ctx, d, result),
        None => reply_entries(ctx.out, &result, withscores),
    }
}

fn zunion(ctx: &mut Ctx, argv: &[&[u8]]) {
    setop_generic(ctx, argv, None, 1, Op::Union, false)
}
fn zinter(ctx: &mut Ctx, argv: &[&[u8]]) {
    setop_generic(ctx, argv, None, 1, Op::Inter, false)
}
fn zdiff(ctx: &mut Ctx, argv: &[&[u8]]) {
    setop_generic(ctx, argv, None, 1, Op::Diff, false)
}
fn zunionstore(ctx: &mut Ctx, argv: &[&[u8]]) {
    setop_generic(ctx, argv, Some(argv[1]), 2, Op::Union, false)
}
fn zinterstore(ctx: &mut Ctx, argv: &[&[u8]]) {
    setop_generic(ctx, argv, Some(argv[1]), 2, Op::Inter, false)
}
fn zdiffstore(ctx: &mut Ctx, argv: &[&[u8]]) {
    setop_generic(ctx, argv, Some(argv[1]), 2, Op::Diff, false)
}
fn zintercard(ctx: &mut Ctx, argv: &[&[u8]]) {
    setop_generic(ctx, argv, None, 1, Op::Inter, true)
}

// ---------------------------------------------------------------- ZRANDMEMBER / ZSCAN

fn zrandmember(ctx: &mut Ctx, argv: &[&[u8]]) {
    use rand::Rng;
    let mut count: Option<i64> = None;
    let mut withscores = false;
    if argv.len() >= 3 {
        match parse_i64(argv[2]) {
            // -LONG_MIN has no positive: out of range (Redis's -LONG_MAX..LONG_MAX).
            Some(i64::MIN) => return ctx.out.error("ERR value is out of range"),
            Some(c) => count = Some(c),
            None => return ctx.out.error(NOT_INT),
        }
        if argv.len() == 4 {
            if !eq(argv[3], "withscores") {
                return ctx.out.error(SYNTAX);
            }
            withscores = true;
            // Member and score make two replies per pick: half the range (Redis's check).
            if count.is_some_and(|c| c < -(i64::MAX / 2)) {
                return ctx.out.error("ERR value is out of range");
            }
        } else if argv.len() > 4 {
            return ctx.out.error(SYNTAX);
        }
    }
    let hard = ctx.obuf_hard();
    let Ok((z, out)) = zset_read(ctx, argv[1]) else { return };
    let Some(z) = z else {
        return if count.is_some() { out.array(0) } else { out.null() };
    };
    let n = z.len();
    let mut rng = rand::thread_rng();
    let picked: Vec<(Vec<u8>, f64)> = match count {
        None => return out.bulk(&z.get(rng.gen_range(0..n)).0),
        Some(c) if c < 0 => {
            // Repeats allowed: written as picked, nothing collected.
            let k = c.unsigned_abs();
            let pairs = withscores && out.resp3();
            out.array((if withscores && !pairs { k * 2 } else { k }) as usize);
            return super::write_picks(out, hard, k, |out| {
                let (m, s) = z.get(rng.gen_range(0..n));
                if pairs {
                    out.array(2);
                }
                out.bulk(&m);
                if withscores {
                    reply_score(out, s);
                }
            });
        }
        Some(c) if c as u64 >= n as u64 => z.entries(),
        Some(c) => rand::seq::index::sample(&mut rng, n, c as usize).into_iter().map(|i| z.get(i)).collect(),
    };
    reply_entries(out, &picked, withscores);
}

/// ZSCAN returns the whole set in one call (cursor 0); MATCH filters members, COUNT is a hint.
fn zscan(ctx: &mut Ctx, argv: &[&[u8]]) {
    let Some(pat) = super::scan_options(ctx, argv) else { return };
    let Ok((z, out)) = zset_read(ctx, argv[1]) else { return };
    let entries: Vec<(Vec<u8>, f64)> = z
        .map(|z| z.entries())
        .unwrap_or_default()
        .into_iter()
        .filter(|(m, _)| pat.is_none_or(|p| crate::util::glob_match(p, m, false)))
        .collect();
    out.array(2);
    out.bulk(b"0");
    out.array(entries.len() * 2);
    for (m, s) in entries {
        out.bulk(&m);
        out.bulk(fmt_g17(s).as_bytes());
    }
}
