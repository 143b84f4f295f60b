//! Transactions (Redis's multi.c): MULTI, EXEC, DISCARD, WATCH, UNWATCH.
//!
//! Dispatch queues commands while a connection is in MULTI (checking them first: an unknown
//! command or a wrong arity makes EXEC answer EXECABORT). EXEC locks the stripes of every queued
//! command's keys and every watched key, in ascending order, runs the commands one after another
//! under those locks (so the transaction is atomic against every other client), and sends their
//! effects to the journal as one MULTI ... EXEC block. Blocked clients woken by the transaction are
//! served after it (dispatch serves the ready keys once EXEC returns).

use super::dispatch::run_handler;
use super::table::{cmd, flag::*, range, CommandSpec, NO_KEYS};
use super::{Ctx, Multi};
use crate::keyspace::STRIPES;
use smallvec::SmallVec;
use std::sync::atomic::Ordering;

const FLAGS: u32 = NOSCRIPT | LOADING | STALE;

pub static COMMANDS: &[CommandSpec] = &[
    cmd("multi", 1, FLAGS | FAST | ALLOW_BUSY, "@fast @transaction", NO_KEYS, multi),
    cmd("exec", 1, FLAGS | SKIP_SLOWLOG, "@slow @transaction", NO_KEYS, exec),
    cmd("discard", 1, FLAGS | FAST | ALLOW_BUSY, "@fast @transaction", NO_KEYS, discard),
    cmd("watch", -2, FLAGS | FAST | ALLOW_BUSY, "@fast @transaction", range(1, -1, 1), watch),
    cmd("unwatch", 1, FLAGS | FAST | ALLOW_BUSY, "@fast @transaction", NO_KEYS, unwatch),
];

fn multi(ctx: &mut Ctx, _argv: &[&[u8]]) {
    if ctx.conn.multi.is_some() {
        return ctx.out.error("ERR MULTI calls can not be nested");
    }
    ctx.conn.multi = Some(Multi::default());
    ctx.out.ok();
}

/// Drops all of the connection's watches (EXEC, DISCARD, UNWATCH, RESET, disconnect).
pub fn unwatch_all(st: &crate::state::State, conn: &mut super::ConnState) {
    if !conn.watched.is_empty() {
        st.watches.unwatch(&conn.watched, &conn.watch_dirty);
        conn.watched.clear();
        conn.watched_absent.clear();
    }
    conn.watch_dirty.store(false, Ordering::Release);
}

fn discard(ctx: &mut Ctx, _argv: &[&[u8]]) {
    if ctx.conn.multi.take().is_none() {
        return ctx.out.error("ERR DISCARD without MULTI");
    }
    unwatch_all(ctx.st, ctx.conn);
    ctx.out.ok();
}

fn watch(ctx: &mut Ctx, argv: &[&[u8]]) {
    if ctx.conn.multi.is_some() {
        return ctx.out.error("ERR WATCH inside MULTI is not allowed");
    }
    let db = ctx.conn.db;
    for k in &argv[1..] {
        // A key already expired is gone now (and so cannot count as touched later).
        let exists = ctx.entry(k, false).0.is_some();
        if !ctx.conn.watched.iter().any(|(d, w)| *d == db && w.as_slice() == *k) && ctx.st.watches.watch(db, k, &ctx.conn.watch_dirty) {
            ctx.conn.watched.push((db, k.to_vec()));
            if !exists {
                ctx.conn.watched_absent.push((db, k.to_vec()));
            }
        }
    }
    ctx.out.ok();
}

fn unwatch(ctx: &mut Ctx, _argv: &[&[u8]]) {
    unwatch_all(ctx.st, ctx.conn);
    ctx.out.ok();
}

/// Locks the stripes of the queued commands' keys and of the watched keys, ascending.
fn lock_keys(ctx: &mut Ctx, cmds: &[(usize, Vec<Vec<u8>>)]) {
    // A script may touch any key: a transaction holding one takes every stripe.
    if cmds.iter().any(|(id, _)| super::dispatch::is_script(ctx.table.full_name(*id))) {
        return ctx.lock_all_stripes();
    }
    let mut stripes: SmallVec<[usize; 16]> = SmallVec::new();
    for (id, argv) in cmds {
        let refs: SmallVec<[&[u8]; 8]> = argv.iter().map(|a| a.as_slice()).collect();
        let mut idx: SmallVec<[usize; 8]> = SmallVec::new();
        ctx.table.spec(*id).key_indices(&refs, &mut idx);
        stripes.extend(idx.into_iter().map(|i| crate::util::key_slot(&argv[i]) % STRIPES));
    }
    stripes.extend(ctx.conn.watched.iter().map(|(_, k)| crate::util::key_slot(k) % STRIPES));
    stripes.sort_unstable();
    stripes.dedup();
    for s in stripes {
        ctx.lock_stripe(s);
    }
}

/// Runs a whole-keyspace command (FLUSHALL, KEYS, SCAN, ...: it locks every stripe itself) inside
/// a transaction or script: sends the effects captured so far as their own block, lets go of the
/// locks, and runs it with its effects going straight to the journal, in the order it happens.
/// The caller takes its locks back; capturing resumes.
pub(crate) fn run_unlocked(ctx: &mut Ctx, spec: &CommandSpec, argv: &[&[u8]]) {
    flush_capture(ctx);
    let capturing = ctx.capture.take().is_some();
    ctx.unlock_all();
    let _exclusive = ctx.st.keyspace.latches.exclusive();
    run_handler(ctx, spec, argv);
    if capturing {
        ctx.capture = Some(Vec::new());
    }
}

/// Sends the effects captured so far to the journal as one MULTI ... EXEC block.
pub(crate) fn flush_capture(ctx: &mut Ctx) {
    let Some(items) = ctx.capture.as_mut() else { return };
    if items.is_empty() {
        return;
    }
    // One effect needs no wrapping (Redis 7 wraps only when an execution unit propagates more
    // than one command).
    if items.len() == 1 {
        let batch = std::mem::take(items);
        let end = ctx.st.journal.append_batch(&batch);
        if end > 0 {
            ctx.conn.woff = end;
        }
        return;
    }
    let mut batch = Vec::with_capacity(items.len() + 2);
    let first_db = items[0].0;
    let last_db = items[items.len() - 1].0;
    batch.push((first_db, vec![b"MULTI".to_vec()]));
    batch.append(items);
    batch.push((last_db, vec![b"EXEC".to_vec()]));
    let end = ctx.st.journal.append_batch(&batch);
    if end > 0 {
        ctx.conn.woff = end;
    }
}

fn exec(ctx: &mut Ctx, _argv: &[&[u8]]) {
    let Some(m) = ctx.conn.multi.take() else {
        return ctx.out.error("ERR EXEC without MULTI");
    };
    // A transaction that may reach any key waits for the pipeline groups running to end; any
    // other waits for those holding the slots of its keys.
    let exclusive = m.cmds.iter().any(|(id, _)| super::dispatch::needs_exclusive(ctx.table.spec(*id)));
    let _exclusive = exclusive.then(|| ctx.st.keyspace.latches.exclusive());
    lock_keys(ctx, &m.cmds);
    if !exclusive && !ctx.st.keyspace.latches.quiet() {
        let mut keys: Vec<Vec<u8>> = ctx.conn.watched.iter().map(|(_, k)| k.clone()).collect();
        for (id, argv) in &m.cmds {
            let refs: SmallVec<[&[u8]; 8]> = argv.iter().map(|a| a.as_slice()).collect();
            let mut idx: SmallVec<[usize; 8]> = SmallVec::new();
            ctx.table.spec(*id).key_indices(&refs, &mut idx);
            keys.extend(idx.iter().map(|&i| argv[i].clone()));
        }
        let refs: Vec<&[u8]> = keys.iter().map(|k| k.as_slice()).collect();
        super::dispatch::wait_for_groups(ctx, &refs, |ctx| lock_keys(ctx, &m.cmds));
    }
    // A watched key that expired since WATCH counts as touched: looking it up now deletes it,
    // which flags it.
    let watched = ctx.conn.watched.clone();
    for (db, k) in &watched {
        if !ctx.conn.watched_absent.iter().any(|(d, a)| d == db && a == k) {
            ctx.entry_in(*db, k, false);
        }
    }
    let touched = ctx.conn.watch_dirty.load(Ordering::Acquire);
    unwatch_all(ctx.st, ctx.conn);
    if m.error {
        return ctx.out.error("EXECABORT Transaction discarded because of previous errors.");
    }
    if touched {
        return ctx.out.null_array();
    }
    ctx.out.array(m.cmds.len());
    let exec_id = ctx.cmd_id;
    ctx.conn.deny_blocking = true;
    ctx.capture = Some(Vec::new());
    let addr = ctx.conn.info.clone();
    for (i, (id, argv)) in m.cmds.iter().enumerate() {
        let spec = ctx.table.spec(*id);
        let refs: SmallVec<[&[u8]; 8]> = argv.iter().map(|a| a.as_slice()).collect();
        ctx.cmd_id = *id;
        super::dispatch::monitor_inner(ctx.st, ctx.conn.db, &addr.addr, spec, &refs, true);
        let at = ctx.out.buf.len();
        let t0 = std::time::Instant::now();
        if spec.flags & WHOLE_KEYSPACE != 0 {
            run_unlocked(ctx, spec, &refs);
            lock_keys(ctx, &m.cmds[i + 1..]);
        } else {
            run_handler(ctx, spec, &refs);
        }
        // The slow log gets each command of the transaction (EXEC itself is not logged).
        let slower = ctx.st.config.hot.slowlog_slower_than.load(Ordering::Relaxed);
        let usec = t0.elapsed().as_micros() as i64;
        if slower >= 0 && usec >= slower && spec.flags & SKIP_SLOWLOG == 0 {
            super::dispatch::slowlog(ctx.st, ctx.table, ctx.conn, *id, &refs, usec, ctx.now);
        }
        super::dispatch::monitor_inner(ctx.st, ctx.conn.db, &addr.addr, spec, &refs, false);
        let error = (ctx.out.buf.get(at) == Some(&b'-')).then(|| ctx.out.buf[at..].to_vec());
        super::dispatch::count_nested(ctx, Some(*id), error.as_deref(), false);
    }
    flush_capture(ctx);
    ctx.capture = None;
    ctx.conn.deny_blocking = false;
    ctx.cmd_id = exec_id;
    // The queued commands counted and journaled their own changes.
    ctx.dirty = 0;
}
