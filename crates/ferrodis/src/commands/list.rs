//! The list family (Redis's t_list.c), blocking commands included.

use super::blocking::timeout_arg;
use super::table::{blocking_cmd, cmd, flag::*, range, CommandSpec, Keys, ONE_KEY};
use super::{eq, Ctx, NOT_INT, SYNTAX, WRONGTYPE};
use crate::state::blocking::{BlockOp, Waiter};
use crate::types::{List, Value};
use crate::util::parse_i64;

const TWO_KEYS: Keys = Keys::Range { first: 1, last: 2, step: 1 };

pub static COMMANDS: &[CommandSpec] = &[
    cmd("lpush", -3, WRITE | DENYOOM | FAST, "@write @list @fast", ONE_KEY, lpush),
    cmd("rpush", -3, WRITE | DENYOOM | FAST, "@write @list @fast", ONE_KEY, rpush),
    cmd("lpushx", -3, WRITE | DENYOOM | FAST, "@write @list @fast", ONE_KEY, lpushx),
    cmd("rpushx", -3, WRITE | DENYOOM | FAST, "@write @list @fast", ONE_KEY, rpushx),
    cmd("lpop", -2, WRITE | FAST, "@write @list @fast", ONE_KEY, lpop),
    cmd("rpop", -2, WRITE | FAST, "@write @list @fast", ONE_KEY, rpop),
    cmd("llen", 2, READONLY | FAST, "@read @list @fast", ONE_KEY, llen),
    cmd("lrange", 4, READONLY, "@read @list @slow", ONE_KEY, lrange),
    cmd("lindex", 3, READONLY, "@read @list @slow", ONE_KEY, lindex),
    cmd("lset", 4, WRITE | DENYOOM, "@write @list @slow", ONE_KEY, lset),
    cmd("linsert", 5, WRITE | DENYOOM, "@write @list @slow", ONE_KEY, linsert),
    cmd("lrem", 4, WRITE, "@write @list @slow", ONE_KEY, lrem),
    cmd("ltrim", 4, WRITE, "@write @list @slow", ONE_KEY, ltrim),
    cmd("lpos", -3, READONLY, "@read @list @slow", ONE_KEY, lpos),
    cmd("lmove", 5, WRITE | DENYOOM, "@write @list @slow", TWO_KEYS, lmove),
    cmd("rpoplpush", 3, WRITE | DENYOOM, "@write @list @slow", TWO_KEYS, rpoplpush),
    cmd("lmpop", -4, WRITE, "@write @list @slow", Keys::NumKeys { numkeys: 1, first: 2, step: 1 }, lmpop),
    blocking_cmd("blpop", -3, WRITE | NOSCRIPT | BLOCKING, "@write @list @slow @blocking", range(1, -2, 1), blpop, serve_blocked),
    blocking_cmd("brpop", -3, WRITE | NOSCRIPT | BLOCKING, "@write @list @slow @blocking", range(1, -2, 1), brpop, serve_blocked),
    blocking_cmd(
        "brpoplpush",
        4,
        WRITE | DENYOOM | NOSCRIPT | BLOCKING,
        "@write @list @slow @blocking",
        TWO_KEYS,
        brpoplpush,
        serve_blocked,
    ),
    blocking_cmd("blmove", 6, WRITE | DENYOOM | NOSCRIPT | BLOCKING, "@write @list @slow @blocking", TWO_KEYS, blmove, serve_blocked),
    blocking_cmd(
        "blmpop",
        -5,
        WRITE | BLOCKING,
        "@write @list @slow @blocking",
        Keys::NumKeys { numkeys: 2, first: 3, step: 1 },
        blmpop,
        serve_blocked,
    ),
];

/// The list at `key`: Ok(None) when missing, Err after replying WRONGTYPE.
fn list_mut<'a>(ctx: &'a mut Ctx, key: &[u8], read: bool) -> Result<Option<&'a mut List>, ()> {
    ctx.typed(key, read, |v| match v {
        Value::List(x) => Some(&mut **x),
        _ => None,
    })
}

fn push_generic(ctx: &mut Ctx, argv: &[&[u8]], left: bool, only_existing: bool) {
    let key = argv[1];
    let Ok(l) = list_mut(ctx, key, false) else { return };
    let len = match l {
        Some(l) => {
            for v in &argv[2..] {
                l.push(left, v);
            }
            let n = l.len();
            ctx.touched();
            n
        }
        None if only_existing => 0,
        None => {
            let mut l = List::new();
            for v in &argv[2..] {
                l.push(left, v);
            }
            let n = l.len();
            ctx.store(key, Value::List(Box::new(l)), 0);
            n
        }
    };
    // One change per element pushed, as Redis counts them.
    if len > 0 {
        ctx.set_changes((argv.len() - 2) as u64);
    }
    ctx.out.int(len as i64);
}

fn lpush(ctx: &mut Ctx, argv: &[&[u8]]) {
    push_generic(ctx, argv, true, false)
}
fn rpush(ctx: &mut Ctx, argv: &[&[u8]]) {
    push_generic(ctx, argv, false, false)
}
fn lpushx(ctx: &mut Ctx, argv: &[&[u8]]) {
    push_generic(ctx, argv, true, true)
}
fn rpushx(ctx: &mut Ctx, argv: &[&[u8]]) {
    push_generic(ctx, argv, false, true)
}

/// Parses a positive count ("value is out of range, must be positive" as Redis says).
fn positive_count(ctx: &mut Ctx, a: &[u8]) -> Option<usize> {
    match parse_i64(a) {
        Some(n) if n >= 0 => Some(n as usize),
        _ => {
            ctx.out.error("ERR value is out of range, must be positive");
            None
        }
    }
}

fn pop_generic(ctx: &mut Ctx, argv: &[&[u8]], left: bool) {
    if argv.len() > 3 {
        ctx.out.error(&format!("ERR wrong number of arguments for '{}' command", ctx.table.full_name(ctx.cmd_id)));
        return;
    }
    let count = match argv.get(2) {
        None => None,
        Some(a) => match positive_count(ctx, a) {
            Some(n) => Some(n),
            None => return,
        },
    };
    let key = argv[1];
    let Ok(l) = list_mut(ctx, key, false) else { return };
    let Some(l) = l else {
        if count.is_some() {
            ctx.out.null_array();
        } else {
            ctx.out.null();
        }
        return;
    };
    let popped = match count {
        None => {
            let v = l.pop(left);
            match v {
                Some(v) => ctx.out.bulk(&v),
                None => ctx.out.null(),
            }
            1
        }
        Some(n) => {
            let n = n.min(l.len());
            let items: Vec<_> = (0..n).filter_map(|_| l.pop(left)).collect();
            ctx.out.array(items.len());
            for v in &items {
                ctx.out.bulk(v);
            }
            items.len()
        }
    };
    ctx.delete_if_empty(key);
    // One change per element popped, as Redis counts them.
    if popped > 0 {
        ctx.set_changes(popped as u64);
    }
}

fn lpop(ctx: &mut Ctx, argv: &[&[u8]]) {
    pop_generic(ctx, argv, true)
}
fn rpop(ctx: &mut Ctx, argv: &[&[u8]]) {
    pop_generic(ctx, argv, false)
}

fn llen(ctx: &mut Ctx, argv: &[&[u8]]) {
    let Ok(l) = list_mut(ctx, argv[1], true) else { return };
    let n = l.map_or(0, |l| l.len());
    ctx.out.int(n as i64);
}

fn two_ints(ctx: &mut Ctx, a: &[u8], b: &[u8]) -> Option<(i64, i64)> {
    match (parse_i64(a), parse_i64(b)) {
        (Some(x), Some(y)) => Some((x, y)),
        _ => {
            ctx.out.error(NOT_INT);
            None
        }
    }
}

fn lrange(ctx: &mut Ctx, argv: &[&[u8]]) {
    let Some((start, end)) = two_ints(ctx, argv[2], argv[3]) else { return };
    let (e, out) = ctx.entry(argv[1], true);
    let l = match e.map(|e| &e.value) {
        None => return out.array(0),
        Some(Value::List(l)) => l,
        Some(_) => return out.error(WRONGTYPE),
    };
    let Some((start, end)) = list_range(start, end, l.len()) else {
        return out.array(0);
    };
    out.array(end - start + 1);
    for v in l.iter().skip(start).take(end - start + 1) {
        out.bulk(v);
    }
}

/// LRANGE/LTRIM's (start, stop) resolved against `len` (negative from the tail, clamped);
/// None for an empty range.
fn list_range(mut start: i64, mut end: i64, len: usize) -> Option<(usize, usize)> {
    let len = len as i64;
    if start < 0 {
        start += len;
    }
    if end < 0 {
        end += len;
    }
    start = start.max(0);
    if start > end || start >= len {
        return None;
    }
    Some((start as usize, end.min(len - 1) as usize))
}

/// A Redis list index (negative from the tail) resolved against `len`.
fn resolve(index: i64, len: usize) -> Option<usize> {
    let i = if index < 0 { len as i64 + index } else { index };
    (i >= 0 && (i as usize) < len).then_some(i as usize)
}

fn lindex(ctx: &mut Ctx, argv: &[&[u8]]) {
    let Some(index) = parse_i64(argv[2]) else {
        ctx.out.error(NOT_INT);
        return;
    };
    let (e, out) = ctx.entry(argv[1], true);
    match e.map(|e| &e.value) {
        None => out.null(),
        Some(Value::List(l)) => match resolve(index, l.len()).and_then(|i| l.get(i)) {
            Some(v) => out.bulk(v),
            None => out.null(),
        },
        Some(_) => out.error(WRONGTYPE),
    }
}

fn lset(ctx: &mut Ctx, argv: &[&[u8]]) {
    let Some(index) = parse_i64(argv[2]) else {
        ctx.out.error(NOT_INT);
        return;
    };
    let Ok(l) = list_mut(ctx, argv[1], false) else { return };
    let Some(l) = l else {
        ctx.out.error("ERR no such key");
        return;
    };
    match resolve(index, l.len()) {
        Some(i) => {
            l.set(i, argv[3]);
            ctx.touched();
            ctx.out.ok();
        }
        None => ctx.out.error("ERR index out of range"),
    }
}

fn linsert(ctx: &mut Ctx, argv: &[&[u8]]) {
    let after = if eq(argv[2], "after") {
        true
    } else if eq(argv[2], "before") {
        false
    } else {
        ctx.out.error(SYNTAX);
        return;
    };
    let Ok(l) = list_mut(ctx, argv[1], false) else { return };
    let Some(l) = l else {
        ctx.out.int(0);
        return;
    };
    let pos = l.iter().position(|v| v == argv[3]);
    match pos {
        None => ctx.out.int(-1),
        Some(p) => {
            l.insert(if after { p + 1 } else { p }, argv[4]);
            let n = l.len();
            ctx.touched();
            ctx.out.int(n as i64);
        }
    }
}

fn lrem(ctx: &mut Ctx, argv: &[&[u8]]) {
    let Some(count) = parse_i64(argv[2]) else {
        ctx.out.error(NOT_INT);
        return;
    };
    let Ok(l) = list_mut(ctx, argv[1], false) else { return };
    let Some(l) = l else {
        ctx.out.int(0);
        return;
    };
    let n = l.remove_matching(argv[3], count.unsigned_abs() as usize, count < 0);
    ctx.removed(argv[1], n);
    ctx.out.int(n as i64);
}

fn ltrim(ctx: &mut Ctx, argv: &[&[u8]]) {
    let Some((start, end)) = two_ints(ctx, argv[2], argv[3]) else { return };
    let Ok(l) = list_mut(ctx, argv[1], false) else { return };
    let Some(l) = l else {
        ctx.out.ok();
        return;
    };
    let before = l.len();
    match list_range(start, end, l.len()) {
        None => l.clear(),
        Some((start, end)) => l.trim(start, end),
    }
    // One change per element trimmed away, as Redis counts them (none: nothing changed).
    let trimmed = before - l.len();
    ctx.delete_if_empty(argv[1]);
    ctx.set_changes(trimmed as u64);
    ctx.out.ok();
}

fn lpos(ctx: &mut Ctx, argv: &[&[u8]]) {
    let (mut rank, mut count, mut maxlen): (i64, Option<i64>, i64) = (1, None, 0);
    let mut i = 3;
    while i < argv.len() {
        let Some(v) = argv.get(i + 1) else {
            ctx.out.error(SYNTAX);
            return;
        };
        let Some(n) = parse_i64(v) else {
            ctx.out.error(NOT_INT);
            return;
        };
        if eq(argv[i], "rank") {
            if n == 0 {
                ctx.out.error("ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list");
                return;
            }
            if n == i64::MIN {
                ctx.out.error("ERR value is out of range");
                return;
            }
            rank = n;
        } else if eq(argv[i], "count") {
            if n < 0 {
                ctx.out.error("ERR COUNT can't be negative");
                return;
            }
            count = Some(n);
        } else if eq(argv[i], "maxlen") {
            if n < 0 {
                ctx.out.error("ERR MAXLEN can't be negative");
                return;
            }
            maxlen = n;
        } else {
            ctx.out.error(SYNTAX);
            return;
        }
        i += 2;
    }
    let (e, out) = ctx.entry(argv[1], true);
    let l = match e.map(|e| &e.value) {
        None => {
            if count.is_some() {
                out.array(0);
            } else {
                out.null();
            }
            return;
        }
        Some(Value::List(l)) => l,
        Some(_) => return out.error(WRONGTYPE),
    };
    let len = l.len();
    let limit = if maxlen == 0 { len } else { (maxlen as usize).min(len) };
    let want = match count {
        Some(0) => usize::MAX,
        Some(c) => c as usize,
        None => 1,
    };
    let mut skip = rank.unsigned_abs() - 1;
    let mut found = Vec::new();
    let indexes: Box<dyn Iterator<Item = usize>> = if rank > 0 { Box::new(0..limit) } else { Box::new((len - limit..len).rev()) };
    for idx in indexes {
        if found.len() >= want {
            break;
        }
        if l.get(idx) == Some(argv[2]) {
            if skip > 0 {
                skip -= 1;
            } else {
                found.push(idx);
            }
        }
    }
    match count {
        None => match found.first() {
            Some(i) => out.int(*i as i64),
            None => out.null(),
        },
        Some(_) => {
            out.array(found.len());
            for i in found {
                out.int(i as i64);
            }
        }
    }
}

/// Parses LEFT|RIGHT.
fn side(a: &[u8]) -> Option<bool> {
    if eq(a, "left") {
        Some(true)
    } else if eq(a, "right") {
        Some(false)
    } else {
        None
    }
}

/// Moves one element from `src` (popped at `from_left`) to `dst` (pushed at `to_left`).
fn move_generic(ctx: &mut Ctx, src: &[u8], dst: &[u8], from_left: bool, to_left: bool) {
    let Ok(s) = list_mut(ctx, src, false) else { return };
    if s.is_none() {
        ctx.out.null();
        return;
    }
    // The destination must be a list (or missing) before anything moves.
    if list_mut(ctx, dst, false).is_err() {
        return;
    }
    let Ok(Some(s)) = list_mut(ctx, src, false) else { return };
    let Some(v) = s.pop(from_left) else {
        ctx.out.null();
        return;
    };
    ctx.touched();
    // A rotation (src == dst) never empties the list, even for a moment.
    if src != dst {
        ctx.delete_if_empty(src);
    }
    match list_mut(ctx, dst, false) {
        Ok(Some(d)) => {
            d.push(to_left, &v);
            ctx.touched();
        }
        _ => {
            let mut l = List::new();
            l.push(to_left, &v);
            ctx.store(dst, Value::List(Box::new(l)), 0);
        }
    }
    // Redis notifies the push on the destination before the pop on the source.
    let db = ctx.db();
    ctx.notify(crate::config::notify::LIST, if to_left { "lpush" } else { "rpush" }, db, dst);
    ctx.notify(crate::config::notify::LIST, pop_event(from_left), db, src);
    let end = |left: bool| if left { &b"LEFT"[..] } else { &b"RIGHT"[..] };
    ctx.propagate(&[b"LMOVE", src, dst, end(from_left), end(to_left)]);
    ctx.set_changes(1);
    ctx.out.bulk(&v);
}

fn lmove(ctx: &mut Ctx, argv: &[&[u8]]) {
    let (Some(from), Some(to)) = (side(argv[3]), side(argv[4])) else {
        ctx.out.error(SYNTAX);
        return;
    };
    move_generic(ctx, argv[1], argv[2], from, to)
}

fn rpoplpush(ctx: &mut Ctx, argv: &[&[u8]]) {
    move_generic(ctx, argv[1], argv[2], false, true)
}

fn lmpop(ctx: &mut Ctx, argv: &[&[u8]]) {
    let Some((keys, left, count)) = super::mpop_args(ctx, argv, 1, side) else { return };
    if let Ok(false) = mpop_from(ctx, keys, left, count) {
        ctx.out.null_array();
    }
}

/// Pops up to `count` elements from the first non-empty list of `keys` and replies
/// [key, [elements]]; Ok(false) when every key is missing (nothing replied), Err after WRONGTYPE.
fn mpop_from(ctx: &mut Ctx, keys: &[&[u8]], left: bool, count: usize) -> Result<bool, ()> {
    for k in keys {
        let Some(l) = list_mut(ctx, k, false)? else { continue };
        let n = count.min(l.len());
        let items: Vec<_> = (0..n).filter_map(|_| l.pop(left)).collect();
        let db = ctx.db();
        ctx.notify(crate::config::notify::LIST, pop_event(left), db, k);
        ctx.delete_if_empty(k);
        // One change per element popped, as Redis counts them.
        ctx.set_changes(items.len() as u64);
        let n_s = itoa::Buffer::new().format(items.len()).to_owned();
        ctx.propagate(&[if left { b"LPOP" } else { b"RPOP" }, k, n_s.as_bytes()]);
        ctx.out.array(2);
        ctx.out.bulk(k);
        ctx.out.array(items.len());
        for v in &items {
            ctx.out.bulk(v);
        }
        return Ok(true);
    }
    Ok(false)
}

// ---------------------------------------------------------------- blocking commands

fn pop_event(left: bool) -> &'static str {
    if left {
        "lpop"
    } else {
        "rpop"
    }
}

/// Pops one element from `key` (a non-empty list) and replies [key, element].
fn pop_keyed(ctx: &mut Ctx, key: &[u8], left: bool) {
    let Ok(Some(l)) = list_mut(ctx, key, false) else { return };
    let Some(v) = l.pop(left) else { return };
    ctx.touched();
    let db = ctx.db();
    ctx.notify(crate::config::notify::LIST, pop_event(left), db, key);
    ctx.delete_if_empty(key);
    ctx.propagate(&[if left { b"LPOP" } else { b"RPOP" }, key]);
    ctx.out.array(2);
    ctx.out.bulk(key);
    ctx.out.bulk(&v);
}

fn bpop_generic(ctx: &mut Ctx, argv: &[&[u8]], left: bool) {
    let Some(timeout) = timeout_arg(ctx, argv[argv.len() - 1]) else { return };
    let keys = &argv[1..argv.len() - 1];
    for k in keys {
        match list_mut(ctx, k, false) {
            Err(()) => return,
            Ok(None) => continue,
            Ok(Some(_)) => return pop_keyed(ctx, k, left),
        }
    }
    ctx.block(keys, BlockOp::ListPop { left }, timeout);
}

fn blpop(ctx: &mut Ctx, argv: &[&[u8]]) {
    bpop_generic(ctx, argv, true)
}
fn brpop(ctx: &mut Ctx, argv: &[&[u8]]) {
    bpop_generic(ctx, argv, false)
}

fn bmove_generic(ctx: &mut Ctx, src: &[u8], dst: &[u8], from_left: bool, to_left: bool, timeout: &[u8]) {
    let Some(timeout) = timeout_arg(ctx, timeout) else { return };
    match list_mut(ctx, src, false) {
        Err(()) => {}
        Ok(Some(_)) => move_generic(ctx, src, dst, from_left, to_left),
        Ok(None) => ctx.block(&[src], BlockOp::ListMove { dst: dst.to_vec(), from_left, to_left }, timeout),
    }
}

fn blmove(ctx: &mut Ctx, argv: &[&[u8]]) {
    let (Some(from), Some(to)) = (side(argv[3]), side(argv[4])) else {
        return ctx.out.error(SYNTAX);
    };
    bmove_generic(ctx, argv[1], argv[2], from, to, argv[5])
}

fn brpoplpush(ctx: &mut Ctx, argv: &[&[u8]]) {
    bmove_generic(ctx, argv[1], argv[2], false, true, argv[3])
}

fn blmpop(ctx: &mut Ctx, argv: &[&[u8]]) {
    let Some(timeout) = timeout_arg(ctx, argv[1]) else { return };
    let Some((keys, left, count)) = super::mpop_args(ctx, argv, 2, side) else { return };
    if let Ok(false) = mpop_from(ctx, keys, left, count) {
        ctx.block(keys, BlockOp::ListMPop { left, count }, timeout);
    }
}

/// Serves a client blocked by a list command once `key` holds a list.
fn serve_blocked(ctx: &mut Ctx, key: &[u8], w: &Waiter) -> bool {
    if !matches!(list_mut(ctx, key, false), Ok(Some(_))) || !w.claim() {
        return false;
    }
    match &w.op {
        BlockOp::ListPop { left } => pop_keyed(ctx, key, *left),
        BlockOp::ListMPop { left, count } => {
            let _ = mpop_from(ctx, &[key], *left, *count);
        }
        BlockOp::ListMove { dst, from_left, to_left } => move_generic(ctx, key, dst, *from_left, *to_left),
        BlockOp::ZPop { .. } | BlockOp::ZMPop { .. } | BlockOp::Stream { .. } => {
            unreachable!("a list command blocks with a list operation")
        }
    }
    true
}
