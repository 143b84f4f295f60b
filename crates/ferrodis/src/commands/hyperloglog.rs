//! The HyperLogLog family (Redis's hyperloglog.c): HLLs are strings in Redis's byte format
//! (`types::hll`).

use super::table::{cmd, flag::*, range, CommandSpec, NO_KEYS, ONE_KEY};
use super::{eq, Ctx, WRONGTYPE};
use crate::types::{hll, StrValue, Value};

pub static COMMANDS: &[CommandSpec] = &[
    cmd("pfadd", -2, WRITE | DENYOOM | FAST, "@write @hyperloglog @fast", ONE_KEY, pfadd),
    cmd("pfcount", -2, READONLY | MAY_REPLICATE, "@read @hyperloglog @slow", range(1, -1, 1), pfcount),
    cmd("pfmerge", -2, WRITE | DENYOOM, "@write @hyperloglog @slow", range(1, -1, 1), pfmerge),
    cmd("pfdebug", 3, WRITE | DENYOOM | ADMIN, "@write @hyperloglog @admin @slow @dangerous", range(2, 2, 1), pfdebug),
    cmd("pfselftest", 1, ADMIN, "@hyperloglog @admin @slow @dangerous", NO_KEYS, pfselftest),
];

const NOT_HLL: &str = "WRONGTYPE Key is not a valid HyperLogLog string value.";
const CORRUPT: &str = "INVALIDOBJ Corrupted HLL object detected";

fn sparse_max(ctx: &Ctx) -> usize {
    ctx.st.config.get_int("hll-sparse-max-bytes").max(0) as usize
}

/// The HLL bytes at `key` for changing in place: Ok(None) when missing, Err after replying
/// WRONGTYPE (not a string, or not an HLL).
fn hll_mut<'a>(ctx: &'a mut Ctx, key: &[u8], read: bool) -> Result<Option<&'a mut Vec<u8>>, ()> {
    let (e, out) = ctx.entry(key, read);
    let Some(e) = e else { return Ok(None) };
    let Value::Str(s) = &mut e.value else {
        out.error(WRONGTYPE);
        return Err(());
    };
    if !hll::is_valid(s.bytes(&mut itoa::Buffer::new())) {
        out.error(NOT_HLL);
        return Err(());
    }
    Ok(Some(s.make_raw()))
}

fn pfadd(ctx: &mut Ctx, argv: &[&[u8]]) {
    let max = sparse_max(ctx);
    // Changes as Redis counts them: the creation, and each element that raised a register.
    let mut updated = 0u64;
    let b = match hll_mut(ctx, argv[1], false) {
        Err(()) => return,
        Ok(Some(b)) => b,
        Ok(None) => {
            ctx.store(argv[1], Value::Str(StrValue::from_vec_raw(hll::new_sparse())), 0);
            updated = 1;
            hll_mut(ctx, argv[1], false).ok().flatten().expect("just stored")
        }
    };
    for e in &argv[2..] {
        match hll::add(b, e, max) {
            Some(true) => updated += 1,
            Some(false) => {}
            None => return ctx.out.error(CORRUPT),
        }
    }
    if updated > 0 {
        hll::invalidate_cache(b);
        ctx.set_changes(updated);
    }
    ctx.out.int((updated > 0) as i64);
}

fn pfcount(ctx: &mut Ctx, argv: &[&[u8]]) {
    if argv.len() == 2 {
        let b = match hll_mut(ctx, argv[1], true) {
            Err(()) => return,
            Ok(None) => return ctx.out.int(0),
            Ok(Some(b)) => b,
        };
        if let Some(c) = hll::cached(b) {
            return ctx.out.int(c as i64);
        }
        let Some(regs) = hll::registers(b) else { return ctx.out.error(CORRUPT) };
        let c = hll::count_registers(&regs);
        // The cache is part of the value: the change goes to replicas as Redis sends it.
        hll::set_cache(b, c);
        ctx.touched();
        ctx.propagate(argv);
        return ctx.out.int(c as i64);
    }
    let mut max = vec![0u8; hll::REGISTERS];
    for k in &argv[1..] {
        match hll_mut(ctx, k, true) {
            Err(()) => return,
            Ok(None) => {}
            Ok(Some(b)) => match hll::registers(b) {
                Some(r) => max.iter_mut().zip(r).for_each(|(m, v)| *m = (*m).max(v)),
                None => return ctx.out.error(CORRUPT),
            },
        }
    }
    ctx.out.int(hll::count_registers(&max) as i64);
}

fn pfmerge(ctx: &mut Ctx, argv: &[&[u8]]) {
    let mut max = vec![0u8; hll::REGISTERS];
    let mut dense = false;
    for k in &argv[1..] {
        match hll_mut(ctx, k, false) {
            Err(()) => return,
            Ok(None) => {}
            Ok(Some(b)) => {
                dense |= b[4] == 0;
                match hll::registers(b) {
                    Some(r) => max.iter_mut().zip(r).for_each(|(m, v)| *m = (*m).max(v)),
                    None => return ctx.out.error(CORRUPT),
                }
            }
        }
    }
    let sparse_max = sparse_max(ctx);
    if !ctx.exists(argv[1]) {
        ctx.store(argv[1], Value::Str(StrValue::from_vec_raw(hll::new_sparse())), 0);
    }
    let Ok(Some(b)) = hll_mut(ctx, argv[1], false) else { return };
    if dense && !hll::to_dense(b) {
        return ctx.out.error(CORRUPT);
    }
    for (i, m) in max.iter().enumerate() {
        if *m != 0 && hll::set(b, i, *m, sparse_max).is_none() {
            return ctx.out.error(CORRUPT);
        }
    }
    hll::invalidate_cache(b);
    ctx.set_changes(1);
    ctx.out.ok();
}

/// PFSELFTEST: the HyperLogLog implementation checks itself (`hll::selftest`).
fn pfselftest(ctx: &mut Ctx, _argv: &[&[u8]]) {
    match hll::selftest() {
        Ok(()) => ctx.out.ok(),
        Err(e) => ctx.out.error(&e),
    }
}

/// PFDEBUG GETREG|ENCODING|TODENSE|DECODE key.
fn pfdebug(ctx: &mut Ctx, argv: &[&[u8]]) {
    let sub = argv[1];
    let b = match hll_mut(ctx, argv[2], false) {
        Err(()) => return,
        Ok(None) => return ctx.out.error("ERR The specified key does not exist"),
        Ok(Some(b)) => b,
    };
    if eq(sub, "getreg") {
        let was_sparse = b[4] == 1;
        if !hll::to_dense(b) {
            return ctx.out.error(CORRUPT);
        }
        let regs = hll::registers(b).unwrap_or_default();
        if was_sparse {
            ctx.touched();
        }
        ctx.out.array(regs.len());
        for r in regs {
            ctx.out.int(r as i64);
        }
    } else if eq(sub, "encoding") {
        let e: &[u8] = if b[4] == 0 { b"dense" } else { b"sparse" };
        ctx.out.simple(e);
    } else if eq(sub, "todense") {
        let was_sparse = b[4] == 1;
        if !hll::to_dense(b) {
            return ctx.out.error(CORRUPT);
        }
        if was_sparse {
            ctx.touched();
        }
        ctx.out.int(was_sparse as i64);
    } else {
        ctx.out.error(&format!("ERR Unknown PFDEBUG subcommand '{}'", String::from_utf8_lossy(sub)));
    }
}
