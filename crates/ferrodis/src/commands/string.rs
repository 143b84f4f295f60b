//! The string family (Redis's t_string.c).
// PERF-CRITICAL: GET and SET are the most frequent commands.
#![allow(unreachable_patterns, irrefutable_let_patterns)]

use super::table::{cmd, flag::*, range, CommandSpec, Keys, ONE_KEY};
use super::{arg_i64, eq, Ctx, NOT_INT, OVERFLOW, SYNTAX, WRONGTYPE};
use crate::types::{StrValue, Value};
use crate::util::parse_i64;

pub static COMMANDS: &[CommandSpec] = &[
    cmd("get", 2, READONLY | FAST, "@read @string @fast", ONE_KEY, get),
    cmd("set", -3, WRITE | DENYOOM, "@write @string @slow", ONE_KEY, set),
    cmd("setnx", 3, WRITE | DENYOOM | FAST, "@write @string @fast", ONE_KEY, setnx),
    cmd("setex", 4, WRITE | DENYOOM, "@write @string @slow", ONE_KEY, setex),
    cmd("psetex", 4, WRITE | DENYOOM, "@write @string @slow", ONE_KEY, psetex),
    cmd("getset", 3, WRITE | DENYOOM | FAST, "@write @string @fast", ONE_KEY, getset),
    cmd("getdel", 2, WRITE | FAST, "@write @string @fast", ONE_KEY, getdel),
    cmd("getex", -2, WRITE | FAST, "@write @string @fast", ONE_KEY, getex),
    cmd("mget", -2, READONLY | FAST, "@read @string @fast", range(1, -1, 1), mget),
    cmd("mset", -3, WRITE | DENYOOM, "@write @string @slow", range(1, -1, 2), mset),
    cmd("msetnx", -3, WRITE | DENYOOM, "@write @string @slow", range(1, -1, 2), msetnx),
    cmd("append", 3, WRITE | DENYOOM | FAST, "@write @string @fast", ONE_KEY, append),
    cmd("strlen", 2, READONLY | FAST, "@read @string @fast", ONE_KEY, strlen),
    cmd("incr", 2, WRITE | DENYOOM | FAST, "@write @string @fast", ONE_KEY, incr),
    cmd("decr", 2, WRITE | DENYOOM | FAST, "@write @string @fast", ONE_KEY, decr),
    cmd("incrby", 3, WRITE | DENYOOM | FAST, "@write @string @fast", ONE_KEY, incrby),
    cmd("decrby", 3, WRITE | DENYOOM | FAST, "@write @string @fast", ONE_KEY, decrby),
    cmd("incrbyfloat", 3, WRITE | DENYOOM | FAST, "@write @string @fast", ONE_KEY, incrbyfloat),
    cmd("getrange", 4, READONLY, "@read @string @slow", ONE_KEY, getrange),
    cmd("substr", 4, READONLY, "@read @string @slow", ONE_KEY, getrange),
    cmd("setrange", 4, WRITE | DENYOOM, "@write @string @slow", ONE_KEY, setrange),
    cmd("lcs", -3, READONLY, "@read @string @slow", Keys::Range { first: 1, last: 2, step: 1 }, lcs),
];

/// Redis's 512 MB string limit (checked against proto-max-bulk-len).
pub fn check_string_len(ctx: &mut Ctx, len: u64) -> bool {
    let max = ctx.st.config.hot.proto_max_bulk_len.load(std::sync::atomic::Ordering::Relaxed) as u64;
    if len > max {
        ctx.out.error("ERR string exceeds maximum allowed size (proto-max-bulk-len)");
        return false;
    }
    true
}

fn get(ctx: &mut Ctx, argv: &[&[u8]]) {
    let (e, out) = ctx.entry(argv[1], true);
    match e {
        None => out.null(),
        Some(e) => match &e.value {
            Value::Str(s) => {
                let mut b = itoa::Buffer::new();
                out.bulk(s.bytes(&mut b))
            }
            _ => out.error(WRONGTYPE),
        },
    }
}

/// The old value as GET would reply it; Err(()) after replying WRONGTYPE.
fn old_value(ctx: &mut Ctx, key: &[u8]) -> Result<Option<Vec<u8>>, ()> {
    let (e, out) = ctx.entry(key, true);
    match e {
        None => Ok(None),
        Some(e) => match &e.value {
            Value::Str(s) => Ok(Some(s.to_vec())),
            _ => {
                out.error(WRONGTYPE);
                Err(())
            }
        },
    }
}

/// Parses an EX/PX/EXAT/PXAT value into an absolute Unix time in ms, replying the error Redis
/// gives (`cmd` names the command in "invalid expire time in 'set' command").
pub fn parse_expire(ctx: &mut Ctx, unit: &[u8], v: &[u8], cmd: &str) -> Option<i64> {
    let n = arg_i64(ctx, v)?;
    let bad = |ctx: &mut Ctx| ctx.out.error(&format!("ERR invalid expire time in '{}' command", cmd));
    if n <= 0 {
        bad(ctx);
        return None;
    }
    let (secs, abs) = (eq(unit, "ex") || eq(unit, "exat"), eq(unit, "exat") || eq(unit, "pxat"));
    let ms = if secs {
        match n.checked_mul(1000) {
            Some(m) => m,
            None => {
                bad(ctx);
                return None;
            }
        }
    } else {
        n
    };
    let at = if abs { Some(ms) } else { ms.checked_add(ctx.now) };
    match at {
        Some(a) => Some(a),
        None => {
            bad(ctx);
            None
        }
    }
}

fn set(ctx: &mut Ctx, argv: &[&[u8]]) {
    let (mut nx, mut xx, mut getf, mut keepttl) = (false, false, false, false);
    let mut expire: Option<(&[u8], &[u8])> = None;
    let mut i = 3;
    while i < argv.len() {
        let a = argv[i];
        let next = argv.get(i + 1);
        if eq(a, "nx") && !xx {
            nx = true;
        } else if eq(a, "xx") && !nx {
            xx = true;
        } else if eq(a, "get") {
            getf = true;
        } else if eq(a, "keepttl") && expire.is_none() {
            keepttl = true;
        } else if (eq(a, "ex") || eq(a, "px") || eq(a, "exat") || eq(a, "pxat")) && !keepttl && expire.is_none() && next.is_some() {
            expire = Some((a, next.copied().unwrap_or_default()));
            i += 1;
        } else {
            ctx.out.error(SYNTAX);
            return;
        }
        i += 1;
    }
    let key = argv[1];
    let at = match expire {
        Some((unit, v)) => match parse_expire(ctx, unit, v, "set") {
            Some(a) => a,
            None => return,
        },
        None => 0,
    };
    // Fast path: a plain SET.
    if !nx && !xx && !getf && !keepttl && at == 0 {
        ctx.store(key, Value::Str(StrValue::from_bytes(argv[2])), 0);
        ctx.out.ok();
        return;
    }
    let old = if getf {
        match old_value(ctx, key) {
            Ok(o) => Some(o),
            Err(()) => return,
        }
    } else {
        None
    };
    let (exists, old_expire) = match ctx.entry(key, false).0 {
        Some(e) => (true, e.expire),
        None => (false, 0),
    };
    if (nx && exists) || (xx && !exists) {
        match old {
            Some(o) => reply_opt(ctx, o),
            None => ctx.out.null(),
        }
        return;
    }
    let new_expire = if keepttl { old_expire } else { at };
    ctx.store(key, Value::Str(StrValue::from_bytes(argv[2])), new_expire);
    // The effect, as replicas must replay it: the absolute expiry, no conditions.
    if at != 0 {
        let ms = itoa::Buffer::new().format(at).to_owned();
        ctx.propagate(&[b"SET", key, argv[2], b"PXAT", ms.as_bytes()]);
    } else if keepttl {
        ctx.propagate(&[b"SET", key, argv[2], b"KEEPTTL"]);
    } else {
        ctx.propagate(&[b"SET", key, argv[2]]);
    }
    match old {
        Some(o) => reply_opt(ctx, o),
        None => ctx.out.ok(),
    }
}

fn reply_opt(ctx: &mut Ctx, v: Option<Vec<u8>>) {
    match v {
        Some(v) => ctx.out.bulk(&v),
        None => ctx.out.null(),
    }
}

fn setnx(ctx: &mut Ctx, argv: &[&[u8]]) {
    if ctx.exists(argv[1]) {
        ctx.out.int(0);
    } else {
        ctx.store(argv[1], Value::Str(StrValue::from_bytes(argv[2])), 0);
        ctx.out.int(1);
    }
}

fn setex_generic(ctx: &mut Ctx, argv: &[&[u8]], unit: &str, name: &str) {
    let Some(at) = parse_expire(ctx, unit.as_bytes(), argv[2], name) else {
        return;
    };
    ctx.store(argv[1], Value::Str(StrValue::from_bytes(argv[3])), at);
    let ms = itoa::Buffer::new().format(at).to_owned();
    ctx.propagate(&[b"SET", argv[1], argv[3], b"PXAT", ms.as_bytes()]);
    ctx.out.ok();
}

fn setex(ctx: &mut Ctx, argv: &[&[u8]]) {
    setex_generic(ctx, argv, "ex", "setex")
}

fn psetex(ctx: &mut Ctx, argv: &[&[u8]]) {
    setex_generic(ctx, argv, "px", "psetex")
}

fn getset(ctx: &mut Ctx, argv: &[&[u8]]) {
    let Ok(old) = old_value(ctx, argv[1]) else {
        return;
    };
    ctx.store(argv[1], Value::Str(StrValue::from_bytes(argv[2])), 0);
    ctx.propagate(&[b"SET", argv[1], argv[2]]);
    reply_opt(ctx, old);
}

fn getdel(ctx: &mut Ctx, argv: &[&[u8]]) {
    let Ok(old) = old_value(ctx, argv[1]) else {
        return;
    };
    if old.is_some() {
        ctx.delete(argv[1]);
        ctx.propagate(&[b"DEL", argv[1]]);
    }
    reply_opt(ctx, old);
}

fn getex(ctx: &mut Ctx, argv: &[&[u8]]) {
    let mut action: Option<Option<i64>> = None; // Some(None) = PERSIST, Some(Some(at)) = expire
    let mut i = 2;
    while i < argv.len() {
        let a = argv[i];
        if eq(a, "persist") && action.is_none() {
            action = Some(None);
        } else if (eq(a, "ex") || eq(a, "px") || eq(a, "exat") || eq(a, "pxat")) && action.is_none() && i + 1 < argv.len() {
            let Some(at) = parse_expire(ctx, a, argv[i + 1], "getex") else {
                return;
            };
            action = Some(Some(at));
            i += 1;
        } else {
            ctx.out.error(SYNTAX);
            return;
        }
        i += 1;
    }
    let Ok(old) = old_value(ctx, argv[1]) else {
        return;
    };
    if old.is_some() {
        match action {
            Some(Some(at)) if at <= ctx.now => {
                ctx.delete(argv[1]);
                ctx.propagate(&[b"DEL", argv[1]]);
            }
            Some(Some(at)) => {
                ctx.set_expire(argv[1], at);
                let ms = itoa::Buffer::new().format(at).to_owned();
                ctx.propagate(&[b"PEXPIREAT", argv[1], ms.as_bytes()]);
            }
            Some(None) if ctx.entry(argv[1], false).0.is_some_and(|e| e.expire != 0) => {
                ctx.set_expire(argv[1], 0);
                ctx.propagate(&[b"PERSIST", argv[1]]);
            }
            Some(None) => {}
            None => {}
        }
    }
    reply_opt(ctx, old);
}

fn mget(ctx: &mut Ctx, argv: &[&[u8]]) {
    ctx.out.array(argv.len() - 1);
    for k in &argv[1..] {
        let (e, out) = ctx.entry(k, true);
        match e.map(|e| &e.value) {
            Some(Value::Str(s)) => {
                let mut b = itoa::Buffer::new();
                out.bulk(s.bytes(&mut b))
            }
            _ => out.null(),
        }
    }
}

fn mset(ctx: &mut Ctx, argv: &[&[u8]]) {
    if argv.len().is_multiple_of(2) {
        ctx.out.error(&format!("ERR wrong number of arguments for '{}' command", ctx.table.full_name(ctx.cmd_id)));
        return;
    }
    for p in argv[1..].chunks(2) {
        ctx.store(p[0], Value::Str(StrValue::from_bytes(p[1])), 0);
    }
    ctx.out.ok();
}

fn msetnx(ctx: &mut Ctx, argv: &[&[u8]]) {
    if argv.len().is_multiple_of(2) {
        ctx.out.error(&format!("ERR wrong number of arguments for '{}' command", ctx.table.full_name(ctx.cmd_id)));
        return;
    }
    for p in argv[1..].chunks(2) {
        if ctx.exists(p[0]) {
            ctx.out.int(0);
            return;
        }
    }
    for p in argv[1..].chunks(2) {
        ctx.store(p[0], Value::Str(StrValue::from_bytes(p[1])), 0);
    }
    ctx.out.int(1);
}

/// The length of the string at `key` (None when missing); Err after replying WRONGTYPE.
fn str_len(ctx: &mut Ctx, key: &[u8]) -> Result<Option<usize>, ()> {
    match ctx.entry(key, false).0.map(|e| &e.value) {
        None => Ok(None),
        Some(Value::Str(s)) => Ok(Some(s.len())),
        Some(_) => {
            ctx.out.error(WRONGTYPE);
            Err(())
        }
    }
}

fn append(ctx: &mut Ctx, argv: &[&[u8]]) {
    let Ok(cur) = str_len(ctx, argv[1]) else { return };
    match cur {
        None => {
            ctx.store(argv[1], Value::Str(StrValue::from_bytes(argv[2])), 0);
            ctx.out.int(argv[2].len() as i64);
        }
        Some(len) => {
            if !check_string_len(ctx, (len + argv[2].len()) as u64) {
                return;
            }
            let (e, out) = ctx.entry(argv[1], false);
            if let Some(Value::Str(s)) = e.map(|e| &mut e.value) {
                let v = s.make_raw();
                v.extend_from_slice(argv[2]);
                out.int(v.len() as i64);
            }
            ctx.touched();
        }
    }
}

fn strlen(ctx: &mut Ctx, argv: &[&[u8]]) {
    let (e, out) = ctx.entry(argv[1], true);
    match e.map(|e| &e.value) {
        None => out.int(0),
        Some(Value::Str(s)) => out.int(s.len() as i64),
        Some(_) => out.error(WRONGTYPE),
    }
}

fn incr_generic(ctx: &mut Ctx, key: &[u8], by: i64) {
    let (e, out) = ctx.entry(key, false);
    match e {
        Some(e) => {
            let Value::Str(s) = &mut e.value else {
                out.error(WRONGTYPE);
                return;
            };
            let Some(cur) = s.as_int() else {
                out.error(NOT_INT);
                return;
            };
            let Some(n) = cur.checked_add(by) else {
                out.error(OVERFLOW);
                return;
            };
            *s = StrValue::Int(n);
            out.int(n);
            ctx.touched();
        }
        None => {
            ctx.store(key, Value::Str(StrValue::Int(by)), 0);
            ctx.out.int(by);
        }
    }
}

fn incr(ctx: &mut Ctx, argv: &[&[u8]]) {
    incr_generic(ctx, argv[1], 1)
}
fn decr(ctx: &mut Ctx, argv: &[&[u8]]) {
    incr_generic(ctx, argv[1], -1)
}
fn incrby(ctx: &mut Ctx, argv: &[&[u8]]) {
    if let Some(by) = arg_i64(ctx, argv[2]) {
        incr_generic(ctx, argv[1], by)
    }
}
fn decrby(ctx: &mut Ctx, argv: &[&[u8]]) {
    let Some(by) = arg_i64(ctx, argv[2]) else {
        return;
    };
    if by == i64::MIN {
        ctx.out.error("ERR decrement would overflow");
        return;
    }
    incr_generic(ctx, argv[1], -by)
}

extern "C" {
    fn ferrodis_incrbyfloat(cur: *const u8, curlen: usize, incr: *const u8, incrlen: usize, out: *mut u8, outlen: usize) -> i32;
}

/// INCRBYFLOAT's arithmetic exactly as Redis does it (long double, `%.17Lf`, trimmed).
pub fn incr_float(cur: Option<&[u8]>, by: &[u8]) -> Result<Vec<u8>, &'static str> {
    let mut buf = [0u8; 5200];
    let (p, l) = match cur {
        Some(c) => (c.as_ptr(), c.len()),
        None => (std::ptr::null(), 0),
    };
    // SAFETY: the C helper reads exactly the given lengths and writes at most buf.len() bytes.
    let n = unsafe { ferrodis_incrbyfloat(p, l, by.as_ptr(), by.len(), buf.as_mut_ptr(), buf.len()) };
    match n {
        -1 => Err(super::NOT_FLOAT),
        n if n < 0 => Err("ERR increment would produce NaN or Infinity"),
        n => Ok(buf[..n as usize].to_vec()),
    }
}

fn incrbyfloat(ctx: &mut Ctx, argv: &[&[u8]]) {
    let (e, out) = ctx.entry(argv[1], false);
    let cur = match e.map(|e| &e.value) {
        None => None,
        Some(Value::Str(s)) => Some(s.to_vec()),
        Some(_) => {
            out.error(WRONGTYPE);
            return;
        }
    };
    // Redis checks the increment first, then the stored value.
    if let Err(err) = incr_float(None, argv[2]) {
        if err == super::NOT_FLOAT {
            ctx.out.error(err);
            return;
        }
    }
    match incr_float(cur.as_deref(), argv[2]) {
        Err(err) => ctx.out.error(err),
        Ok(v) => {
            let keep = ctx.entry(argv[1], false).0.map_or(0, |e| e.expire);
            // Redis stores the formatted result as a string (embstr), never as an int.
            ctx.store(argv[1], Value::Str(StrValue::Bytes(crate::types::SmallBytes::new(&v))), keep);
            ctx.propagate(&[b"SET", argv[1], &v, b"KEEPTTL"]);
            ctx.out.bulk(&v);
        }
    }
}

/// Clamps Redis-style (start, end) indices to a length; None for an empty range.
pub fn clamp_range(mut start: i64, mut end: i64, len: i64) -> Option<(usize, usize)> {
    if start < 0 && end < 0 && start > end {
        return None;
    }
    if start < 0 {
        start += len;
    }
    if end < 0 {
        end += len;
    }
    start = start.max(0);
    end = end.max(0);
    if end >= len {
        end = len - 1;
    }
    if len == 0 || start > end {
        return None;
    }
    Some((start as usize, end as usize))
}

fn getrange(ctx: &mut Ctx, argv: &[&[u8]]) {
    let (Some(start), Some(end)) = (parse_i64(argv[2]), parse_i64(argv[3])) else {
        ctx.out.error(NOT_INT);
        return;
    };
    let (e, out) = ctx.entry(argv[1], true);
    match e.map(|e| &e.value) {
        None => out.bulk(b""),
        Some(Value::Str(s)) => {
            let mut b = itoa::Buffer::new();
            let v = s.bytes(&mut b);
            match clamp_range(start, end, v.len() as i64) {
                Some((s, e)) => out.bulk(&v[s..=e]),
                None => out.bulk(b""),
            }
        }
        Some(_) => out.error(WRONGTYPE),
    }
}

fn setrange(ctx: &mut Ctx, argv: &[&[u8]]) {
    let Some(offset) = arg_i64(ctx, argv[2]) else {
        return;
    };
    if offset < 0 {
        ctx.out.error("ERR offset is out of range");
        return;
    }
    let val = argv[3];
    let Ok(cur) = str_len(ctx, argv[1]) else { return };
    if val.is_empty() {
        ctx.out.int(cur.unwrap_or(0) as i64);
        return;
    }
    if !check_string_len(ctx, offset as u64 + val.len() as u64) {
        return;
    }
    let offset = offset as usize;
    if cur.is_none() {
        let mut v = vec![0u8; offset + val.len()];
        v[offset..].copy_from_slice(val);
        let n = v.len();
        ctx.store(argv[1], Value::Str(StrValue::from_vec_raw(v)), 0);
        ctx.out.int(n as i64);
        return;
    }
    let (e, out) = ctx.entry(argv[1], false);
    if let Some(Value::Str(s)) = e.map(|e| &mut e.value) {
        let v = s.make_raw();
        if v.len() < offset + val.len() {
            v.resize(offset + val.len(), 0);
        }
        v[offset..offset + val.len()].copy_from_slice(val);
        out.int(v.len() as i64);
    }
    ctx.touched();
}

/// One LCS match: (start, end) in the first string, (start, end) in the second, length.
type LcsMatch = ((usize, usize), (usize, usize), usize);

fn lcs(ctx: &mut Ctx, argv: &[&[u8]]) {
    let (mut getlen, mut getidx, mut withlen, mut minlen) = (false, false, false, 0i64);
    let mut i = 3;
    while i < argv.len() {
        let a = argv[i];
        if eq(a, "idx") {
            getidx = true;
        } else if eq(a, "len") {
            getlen = true;
        } else if eq(a, "withmatchlen") {
            withlen = true;
        } else if eq(a, "minmatchlen") && i + 1 < argv.len() {
            let Some(v) = arg_i64(ctx, argv[i + 1]) else {
                return;
            };
            minlen = v.max(0);
            i += 1;
        } else {
            ctx.out.error(SYNTAX);
            return;
        }
        i += 1;
    }
    let mut vals: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
    for (j, k) in argv[1..3].iter().enumerate() {
        match ctx.entry(k, true).0.map(|e| &e.value) {
            None => {}
            Some(Value::Str(s)) => vals[j] = s.to_vec(),
            Some(_) => {
                ctx.out.error("ERR The specified keys must contain string values");
                return;
            }
        }
    }
    if getidx && getlen {
        ctx.out.error("ERR If you want both the length and indexes, please just use IDX.");
        return;
    }
    let (a, b) = (&vals[0], &vals[1]);
    let (al, bl) = (a.len(), b.len());
    if (al as u64 + 1) * (bl as u64 + 1) > (u32::MAX as u64) / 4 {
        ctx.out.error("ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len");
        return;
    }
    // Dynamic programming table of LCS lengths, (al+1) x (bl+1).
    let w = bl + 1;
    let mut dp = vec![0u32; (al + 1) * w];
    for i in 1..=al {
        for j in 1..=bl {
            dp[i * w + j] = if a[i - 1] == b[j - 1] { dp[(i - 1) * w + j - 1] + 1 } else { dp[(i - 1) * w + j].max(dp[i * w + j - 1]) };
        }
    }
    let total = dp[al * w + bl] as usize;
    if getlen {
        ctx.out.int(total as i64);
        return;
    }
    // Walk back, collecting the common string and the matching ranges (as Redis does).
    let mut result = vec![0u8; total];
    let mut idx = total;
    let (mut i, mut j) = (al, bl);
    let mut matches: Vec<LcsMatch> = Vec::new();
    let mut cur: Option<(usize, usize, usize, usize)> = None; // a_start, a_end, b_start, b_end
    let flush = |cur: &mut Option<(usize, usize, usize, usize)>, matches: &mut Vec<_>| {
        if let Some((as_, ae, bs, be)) = cur.take() {
            let len = ae - as_ + 1;
            if len as i64 >= minlen {
                matches.push(((as_, ae), (bs, be), len));
            }
        }
    };
    while i > 0 && j > 0 {
        if a[i - 1] == b[j - 1] {
            idx -= 1;
            result[idx] = a[i - 1];
            match &mut cur {
                Some((as_, _, bs, _)) if *as_ == i && *bs == j => {
                    *as_ = i - 1;
                    *bs = j - 1;
                }
                _ => {
                    flush(&mut cur, &mut matches);
                    cur = Some((i - 1, i - 1, j - 1, j - 1));
                }
            }
            i -= 1;
            j -= 1;
        } else if dp[(i - 1) * w + j] > dp[i * w + j - 1] {
            i -= 1;
        } else {
            j -= 1;
        }
    }
    flush(&mut cur, &mut matches);
    if !getidx {
        ctx.out.bulk(&result);
        return;
    }
    ctx.out.map(2);
    ctx.out.bulk(b"matches");
    ctx.out.array(matches.len());
    for ((as_, ae), (bs, be), len) in &matches {
        ctx.out.array(if withlen { 3 } else { 2 });
        ctx.out.array(2);
        ctx.out.int(*as_ as i64);
        ctx.out.int(*ae as i64);
        ctx.out.array(2);
        ctx.out.int(*bs as i64);
        ctx.out.int(*be as i64);
        if withlen {
            ctx.out.int(*len as i64);
        }
    }
    ctx.out.bulk(b"len");
    ctx.out.int(total as i64);
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn incrbyfloat_matches_redis_arithmetic() {
        assert_eq!(incr_float(Some(b"10.5"), b"0.1").unwrap(), b"10.6");
        assert_eq!(incr_float(None, b"3.0e3").unwrap(), b"3000");
        assert_eq!(incr_float(Some(b"5.0e3"), b"2.0e2").unwrap(), b"5200");
        assert_eq!(incr_float(Some(b"abc"), b"1").unwrap_err(), crate::commands::NOT_FLOAT);
        assert!(incr_float(Some(b"1"), b" 1").is_err());
    }
    #[test]
    fn ranges() {
        assert_eq!(clamp_range(0, -1, 5), Some((0, 4)));
        assert_eq!(clamp_range(-3, -1, 5), Some((2, 4)));
        assert_eq!(clamp_range(3, 1, 5), None);
        assert_eq!(clamp_range(0, 100, 0), None);
        assert_eq!(clamp_range(-1, -5, 5), None);
    }
}
