//! Bit commands (Redis's bitops.c): SETBIT, GETBIT, BITCOUNT, BITPOS, BITOP, BITFIELD(_RO).
//! Bit 0 is the most significant bit of byte 0, as in Redis.
#![allow(unreachable_patterns, irrefutable_let_patterns)]

use super::table::{cmd, flag::*, range, CommandSpec, ONE_KEY};
use super::{eq, Ctx, NOT_INT, SYNTAX, WRONGTYPE};
use crate::types::{StrValue, Value};
use crate::util::parse_i64;
use std::sync::atomic::Ordering;

pub static COMMANDS: &[CommandSpec] = &[
    cmd("setbit", 4, WRITE | DENYOOM, "@write @bitmap @slow", ONE_KEY, setbit),
    cmd("getbit", 3, READONLY | FAST, "@read @bitmap @fast", ONE_KEY, getbit),
    cmd("bitcount", -2, READONLY, "@read @bitmap @slow", ONE_KEY, bitcount),
    cmd("bitpos", -3, READONLY, "@read @bitmap @slow", ONE_KEY, bitpos),
    cmd("bitop", -4, WRITE | DENYOOM, "@write @bitmap @slow", range(2, -1, 1), bitop),
    cmd("bitfield", -2, WRITE | DENYOOM, "@write @bitmap @slow", ONE_KEY, bitfield),
    cmd("bitfield_ro", -2, READONLY | FAST, "@read @bitmap @fast", ONE_KEY, bitfield_ro),
];

const BAD_OFFSET: &str = "ERR bit offset is not an integer or out of range";

fn max_bulk(ctx: &Ctx) -> i64 {
    ctx.st.config.hot.proto_max_bulk_len.load(Ordering::Relaxed)
}

/// Parses a bit offset (`#N` multiplies by `bits` when `hash` is allowed).
fn parse_offset(ctx: &mut Ctx, a: &[u8], hash: bool, bits: i64) -> Option<u64> {
    let (mul, digits) = if hash && a.first() == Some(&b'#') { (bits, &a[1..]) } else { (1, a) };
    let v = parse_i64(digits).and_then(|v| v.checked_mul(mul));
    match v {
        Some(v) if v >= 0 && (v >> 3) < max_bulk(ctx) => Some(v as u64),
        _ => {
            ctx.out.error(BAD_OFFSET);
            None
        }
    }
}

/// The string's bytes for reading; Err after replying WRONGTYPE.
fn read_bytes(ctx: &mut Ctx, key: &[u8]) -> Result<Option<Vec<u8>>, ()> {
    let (e, out) = ctx.entry(key, true);
    match e.map(|e| &e.value) {
        None => Ok(None),
        Some(Value::Str(s)) => Ok(Some(s.to_vec())),
        Some(_) => {
            out.error(WRONGTYPE);
            Err(())
        }
    }
}

/// Makes sure `key` holds a raw string of at least `len` bytes and returns it for writing.
/// How `writable` found the string: made now (`Ctx::store` counted that change), grown to the
/// length asked (a change whatever is written next, as Redis counts it), or as it was.
#[derive(Clone, Copy, PartialEq)]
enum Shape {
    Created,
    Grown,
    Same,
}

/// The string at `key` as bytes at least `len` long (created or zero-padded as needed).
fn writable<'a>(ctx: &'a mut Ctx, key: &[u8], len: usize) -> Result<(&'a mut Vec<u8>, Shape), ()> {
    let mut shape = Shape::Same;
    match ctx.entry(key, false).0.map(|e| &e.value) {
        None => {
            ctx.store(key, Value::Str(StrValue::from_vec_raw(Vec::new())), 0);
            shape = Shape::Created;
        }
        Some(Value::Str(_)) => {}
        Some(_) => {
            ctx.out.error(WRONGTYPE);
            return Err(());
        }
    }
    let (e, _) = ctx.entry(key, false);
    match e.map(|e| &mut e.value) {
        Some(Value::Str(s)) => {
            let v = s.make_raw();
            if v.len() < len {
                v.resize(len, 0);
                if shape == Shape::Same {
                    shape = Shape::Grown;
                }
            }
            Ok((v, shape))
        }
        _ => Err(()),
    }
}

fn get_bit(v: &[u8], off: u64) -> u8 {
    let byte = (off >> 3) as usize;
    if byte >= v.len() {
        0
    } else {
        (v[byte] >> (7 - (off & 7))) & 1
    }
}

fn setbit(ctx: &mut Ctx, argv: &[&[u8]]) {
    let Some(off) = parse_offset(ctx, argv[2], false, 1) else {
        return;
    };
    let bit = match argv[3] {
        b"0" => 0u8,
        b"1" => 1u8,
        _ => {
            ctx.out.error("ERR bit is not an integer or out of range");
            return;
        }
    };
    let Ok((v, shape)) = writable(ctx, argv[1], (off >> 3) as usize + 1) else {
        return;
    };
    let byte = (off >> 3) as usize;
    let shift = 7 - (off & 7);
    let old = (v[byte] >> shift) & 1;
    v[byte] = (v[byte] & !(1 << shift)) | (bit << shift);
    // Writing the bit it already had changes nothing (no dirty, no event, no propagation); a
    // new key was counted when stored.
    if shape == Shape::Grown || (shape == Shape::Same && old != bit) {
        ctx.touched();
    }
    ctx.out.int(old as i64);
}

fn getbit(ctx: &mut Ctx, argv: &[&[u8]]) {
    let Some(off) = parse_offset(ctx, argv[2], false, 1) else {
        return;
    };
    let Ok(v) = read_bytes(ctx, argv[1]) else {
        return;
    };
    ctx.out.int(v.map_or(0, |v| get_bit(&v, off)) as i64);
}

/// Parses `[start end [BYTE|BIT]]` into (start, end, is_bit). None after replying an error.
fn parse_range(ctx: &mut Ctx, argv: &[&[u8]], from: usize) -> Option<(i64, i64, bool)> {
    let (Some(s), Some(e)) = (parse_i64(argv[from]), parse_i64(argv[from + 1])) else {
        ctx.out.error(NOT_INT);
        return None;
    };
    let isbit = match argv.get(from + 2) {
        None => false,
        Some(a) if eq(a, "bit") => true,
        Some(a) if eq(a, "byte") => false,
        Some(_) => {
            ctx.out.error(SYNTAX);
            return None;
        }
    };
    Some((s, e, isbit))
}

/// Normalises a range as Redis does; returns byte range and edge masks.
fn normalize(mut start: i64, mut end: i64, isbit: bool, strlen: i64) -> (i64, i64, u8, u8) {
    let tot = if isbit { strlen << 3 } else { strlen };
    if start < 0 {
        start += tot;
    }
    if end < 0 {
        end += tot;
    }
    start = start.max(0);
    end = end.max(0);
    if end >= tot {
        end = tot - 1;
    }
    let (mut first_mask, mut last_mask) = (0u8, 0u8);
    if isbit && start <= end {
        first_mask = (!((1u16 << (8 - (start & 7))) - 1) & 0xFF) as u8;
        last_mask = ((1u16 << (7 - (end & 7))) - 1) as u8;
        start >>= 3;
        end >>= 3;
    }
    (start, end, first_mask, last_mask)
}

fn bitcount(ctx: &mut Ctx, argv: &[&[u8]]) {
    let range = match argv.len() {
        2 => None,
        4 | 5 => Some(()),
        _ => {
            ctx.out.error(SYNTAX);
            return;
        }
    };
    let Ok(v) = read_bytes(ctx, argv[1]) else {
        return;
    };
    // As Redis 7.0: a missing key answers 0 before the range is parsed.
    let Some(v) = v else {
        ctx.out.int(0);
        return;
    };
    let parsed = if range.is_some() {
        match parse_range(ctx, argv, 2) {
            Some(r) => Some(r),
            None => return,
        }
    } else {
        None
    };
    let len = v.len() as i64;
    // Both ends negative with the start after the end: 0, before clamping (Redis 7.0).
    if parsed.is_some_and(|(s, e, _)| s < 0 && e < 0 && s > e) {
        ctx.out.int(0);
        return;
    }
    let (start, end, fm, lm) = match parsed {
        Some((s, e, b)) => normalize(s, e, b, len),
        None => (0, len - 1, 0, 0),
    };
    if start > end || len == 0 {
        ctx.out.int(0);
        return;
    }
    let bytes = &v[start as usize..=end as usize];
    let mut n: i64 = bytes.iter().map(|b| b.count_ones() as i64).sum();
    n -= (bytes[0] & fm).count_ones() as i64;
    n -= (bytes[bytes.len() - 1] & lm).count_ones() as i64;
    ctx.out.int(n);
}

/// First position of `bit` in `s`; for bit 0 with none found, the position after the end.
fn find_bit(s: &[u8], bit: u8) -> i64 {
    for (i, &b) in s.iter().enumerate() {
        let b = if bit == 1 { b } else { !b };
        if b != 0 {
            return (i as i64) * 8 + b.leading_zeros() as i64;
        }
    }
    if bit == 1 {
        -1
    } else {
        (s.len() as i64) * 8
    }
}

fn bitpos(ctx: &mut Ctx, argv: &[&[u8]]) {
    let bit = match parse_i64(argv[2]) {
        Some(0) => 0u8,
        Some(1) => 1u8,
        Some(_) => {
            ctx.out.error("ERR The bit argument must be 1 or 0.");
            return;
        }
        None => {
            ctx.out.error(NOT_INT);
            return;
        }
    };
    if argv.len() > 6 {
        ctx.out.error(SYNTAX);
        return;
    }
    let Ok(v) = read_bytes(ctx, argv[1]) else {
        return;
    };
    let Some(v) = v else {
        ctx.out.int(if bit == 1 { -1 } else { 0 });
        return;
    };
    let mut end_given = false;
    let (mut s, mut e, mut isbit) = (0i64, -1i64, false);
    if argv.len() >= 4 {
        let Some(x) = parse_i64(argv[3]) else {
            ctx.out.error(NOT_INT);
            return;
        };
        s = x;
        if argv.len() >= 5 {
            let Some(y) = parse_i64(argv[4]) else {
                ctx.out.error(NOT_INT);
                return;
            };
            e = y;
            end_given = true;
            if argv.len() == 6 {
                if eq(argv[5], "bit") {
                    isbit = true;
                } else if !eq(argv[5], "byte") {
                    ctx.out.error(SYNTAX);
                    return;
                }
            }
        }
    }
    let len = v.len() as i64;
    let (start, end, fm, lm) = normalize(
        s,
        if end_given {
            e
        } else {
            if isbit {
                (len << 3) - 1
            } else {
                len - 1
            }
        },
        isbit,
        len,
    );
    if start > end {
        ctx.out.int(-1);
        return;
    }
    let (mut start, end) = (start as usize, end as usize);
    let mut bytes = end - start + 1;
    let pos: i64 = 'result: {
        if fm != 0 {
            let mut t = if bit == 1 { v[start] & !fm } else { v[start] | fm };
            if lm != 0 && bytes == 1 {
                t = if bit == 1 { t & !lm } else { t | lm };
            }
            let p = find_bit(&[t], bit);
            if bytes == 1 || (p != -1 && p != 8) {
                break 'result p;
            }
            start += 1;
            bytes -= 1;
        }
        let cur = bytes - if lm != 0 { 1 } else { 0 };
        if cur > 0 {
            let p = find_bit(&v[start..start + cur], bit);
            if bytes == cur || (p != -1 && p != (cur as i64) << 3) {
                break 'result p;
            }
            start += cur;
            bytes -= cur;
        }
        let t = if bit == 1 { v[end] & !lm } else { v[end] | lm };
        find_bit(&[t], bit)
    };
    if end_given && bit == 0 && pos == (bytes as i64) << 3 {
        ctx.out.int(-1);
        return;
    }
    ctx.out.int(if pos != -1 { pos + ((start as i64) << 3) } else { pos });
}

fn bitop(ctx: &mut Ctx, argv: &[&[u8]]) {
    let op = argv[1];
    let kind = if eq(op, "and") {
        0
    } else if eq(op, "or") {
        1
    } else if eq(op, "xor") {
        2
    } else if eq(op, "not") {
        3
    } else {
        ctx.out.error(SYNTAX);
        return;
    };
    if kind == 3 && argv.len() != 4 {
        ctx.out.error("ERR BITOP NOT must be called with a single source key.");
        return;
    }
    let mut srcs: Vec<Vec<u8>> = Vec::new();
    for k in &argv[3..] {
        match ctx.entry(k, true).0.map(|e| &e.value) {
            None => srcs.push(Vec::new()),
            Some(Value::Str(s)) => srcs.push(s.to_vec()),
            Some(_) => {
                ctx.out.error(WRONGTYPE);
                return;
            }
        }
    }
    let maxlen = srcs.iter().map(|s| s.len()).max().unwrap_or(0);
    let mut res = vec![0u8; maxlen];
    for (i, r) in res.iter_mut().enumerate() {
        let byte = |s: &Vec<u8>| s.get(i).copied().unwrap_or(0);
        *r = match kind {
            3 => !byte(&srcs[0]),
            _ => {
                let mut acc = byte(&srcs[0]);
                for s in &srcs[1..] {
                    let b = byte(s);
                    acc = match kind {
                        0 => acc & b,
                        1 => acc | b,
                        _ => acc ^ b,
                    };
                }
                acc
            }
        };
    }
    let dest = argv[2];
    if res.is_empty() {
        if ctx.delete(dest) {
            ctx.propagate(&[b"DEL", dest]);
        }
    } else {
        ctx.store(dest, Value::Str(StrValue::from_vec_raw(res)), 0);
    }
    ctx.out.int(maxlen as i64);
}

#[derive(Clone, Copy, PartialEq)]
enum Overflow {
    Wrap,
    Sat,
    Fail,
}

#[derive(Clone, Copy)]
enum Op {
    Get,
    Set(i64),
    Incr(i64),
}

struct FieldOp {
    op: Op,
    signed: bool,
    bits: u32,
    offset: u64,
    overflow: Overflow,
}

fn parse_type(a: &[u8]) -> Option<(bool, u32)> {
    let signed = match a.first()? {
        b'i' | b'I' => true,
        b'u' | b'U' => false,
        _ => return None,
    };
    let bits = parse_i64(&a[1..])?;
    if bits < 1 || (signed && bits > 64) || (!signed && bits > 63) {
        return None;
    }
    Some((signed, bits as u32))
}

fn read_field(v: &[u8], off: u64, bits: u32, signed: bool) -> i64 {
    let mut u: u64 = 0;
    for i in 0..bits as u64 {
        u = (u << 1) | get_bit(v, off + i) as u64;
    }
    if signed && bits < 64 && (u >> (bits - 1)) & 1 == 1 {
        (u | (u64::MAX << bits)) as i64
    } else {
        u as i64
    }
}

fn write_field(v: &mut [u8], off: u64, bits: u32, val: i64) {
    let u = val as u64;
    for i in 0..bits as u64 {
        let bit = ((u >> (bits as u64 - 1 - i)) & 1) as u8;
        let p = off + i;
        let byte = (p >> 3) as usize;
        let shift = 7 - (p & 7);
        v[byte] = (v[byte] & !(1 << shift)) | (bit << shift);
    }
}

/// Applies Redis's overflow rules; None when FAIL and it overflows.
fn with_overflow(base: i128, incr: i128, bits: u32, signed: bool, ow: Overflow) -> Option<i64> {
    let v = base + incr;
    let m: i128 = 1i128 << bits;
    let (min, max) = if signed { (-(m >> 1), (m >> 1) - 1) } else { (0, m - 1) };
    if v >= min && v <= max {
        return Some(v as i64);
    }
    match ow {
        Overflow::Fail => None,
        Overflow::Sat => Some(if v > max { max as i64 } else { min as i64 }),
        Overflow::Wrap => {
            let mut c = v.rem_euclid(m);
            if signed && c > max {
                c -= m;
            }
            Some(c as i64)
        }
    }
}

fn bitfield_generic(ctx: &mut Ctx, argv: &[&[u8]], ro: bool) {
    let mut ops: Vec<FieldOp> = Vec::new();
    let mut ow = Overflow::Wrap;
    let mut i = 2;
    while i < argv.len() {
        let a = argv[i];
        let left = argv.len() - i - 1;
        if eq(a, "overflow") && left >= 1 {
            let t = argv[i + 1];
            ow = if eq(t, "wrap") {
                Overflow::Wrap
            } else if eq(t, "sat") {
                Overflow::Sat
            } else if eq(t, "fail") {
                Overflow::Fail
            } else {
                ctx.out.error("ERR Invalid OVERFLOW type specified");
                return;
            };
            i += 2;
            continue;
        }
        let is_get = eq(a, "get") && left >= 2;
        let is_set = eq(a, "set") && left >= 3;
        let is_incr = eq(a, "incrby") && left >= 3;
        if !(is_get || is_set || is_incr) {
            ctx.out.error(SYNTAX);
            return;
        }
        let Some((signed, bits)) = parse_type(argv[i + 1]) else {
            ctx.out.error("ERR Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is.");
            return;
        };
        let Some(offset) = parse_offset(ctx, argv[i + 2], true, bits as i64) else {
            return;
        };
        let op = if is_get {
            Op::Get
        } else {
            let Some(v) = parse_i64(argv[i + 3]) else {
                ctx.out.error(NOT_INT);
                return;
            };
            if is_set {
                Op::Set(v)
            } else {
                Op::Incr(v)
            }
        };
        if ro && !matches!(op, Op::Get) {
            ctx.out.error("ERR BITFIELD_RO only supports the GET subcommand");
            return;
        }
        ops.push(FieldOp { op, signed, bits, offset, overflow: ow });
        i += if is_get { 3 } else { 4 };
    }
    let writes = ops.iter().any(|o| !matches!(o.op, Op::Get));
    if !writes {
        let Ok(v) = read_bytes(ctx, argv[1]) else {
            return;
        };
        let v = v.unwrap_or_default();
        ctx.out.array(ops.len());
        for o in &ops {
            ctx.out.int(read_field(&v, o.offset, o.bits, o.signed));
        }
        return;
    }
    let need =
        ops.iter().filter(|o| !matches!(o.op, Op::Get)).map(|o| ((o.offset + o.bits as u64 - 1) >> 3) as usize + 1).max().unwrap_or(0);
    let mut results: Vec<Option<i64>> = Vec::with_capacity(ops.len());
    // Ops that changed their field (SET to another value, any INCRBY), as Redis counts them.
    let mut changes = 0u64;
    let shape;
    {
        let Ok((v, s)) = writable(ctx, argv[1], need) else {
            return;
        };
        shape = s;
        for o in &ops {
            let cur = read_field(v, o.offset, o.bits, o.signed);
            let base = |x: i64| {
                if o.signed {
                    x as i128
                } else {
                    (x as u64) as i128
                }
            };
            match o.op {
                Op::Get => results.push(Some(cur)),
                Op::Set(val) => match with_overflow(base(val), 0, o.bits, o.signed, o.overflow) {
                    Some(nv) => {
                        // SET to the value the field holds changes nothing.
                        changes += (cur != nv) as u64;
                        write_field(v, o.offset, o.bits, nv);
                        results.push(Some(cur));
                    }
                    None => results.push(None),
                },
                Op::Incr(by) => match with_overflow(base(cur), by as i128, o.bits, o.signed, o.overflow) {
                    Some(nv) => {
                        write_field(v, o.offset, o.bits, nv);
                        changes += 1;
                        results.push(Some(nv));
                    }
                    None => results.push(None),
                },
            }
        }
    }
    // A key made or grown counts as one change at least; a new key's was counted when stored.
    let total = if shape == Shape::Same { changes } else { changes.max(1) };
    for _ in 0..total - (shape == Shape::Created) as u64 {
        ctx.touched();
    }
    ctx.out.array(results.len());
    for r in results {
        match r {
            Some(n) => ctx.out.int(n),
            None => ctx.out.null(),
        }
    }
}

fn bitfield(ctx: &mut Ctx, argv: &[&[u8]]) {
    bitfield_generic(ctx, argv, false)
}

fn bitfield_ro(ctx: &mut Ctx, argv: &[&[u8]]) {
    bitfield_generic(ctx, argv, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn fields_roundtrip_and_overflow() {
        let mut v = vec![0u8; 8];
        write_field(&mut v, 3, 5, 0b10110);
        assert_eq!(read_field(&v, 3, 5, false), 0b10110);
        assert_eq!(read_field(&v, 3, 5, true), 0b10110 - 32);
        assert_eq!(with_overflow(255, 1, 8, false, Overflow::Wrap), Some(0));
        assert_eq!(with_overflow(255, 1, 8, false, Overflow::Sat), Some(255));
        assert_eq!(with_overflow(127, 1, 8, true, Overflow::Wrap), Some(-128));
        assert_eq!(with_overflow(-128, -1, 8, true, Overflow::Sat), Some(-128));
        assert_eq!(with_overflow(0, -1, 8, false, Overflow::Fail), None);
        assert_eq!(find_bit(&[0xff, 0xff], 0), 16);
        assert_eq!(find_bit(&[0x00, 0x10], 1), 11);
    }
}
