//! Serving blocked clients (Redis's handleClientsBlockedOnKeys). After a command that made keys
//! ready has finished and released its locks, dispatch hands those keys here; each key's waiters
//! are served oldest first, each through its command's `serve` function from the table, on the
//! thread that made the key ready, before that thread runs anything else. A served BLMOVE may
//! make its destination ready in turn: that key joins the queue (chained wake-ups).
//!
//! Like dispatch, this engine imports no family: the families' `serve` functions are data in the
//! command table.

use super::{CommandTable, ConnState, Ctx};
use crate::keyspace::STRIPES;
use crate::state::blocking::{BlockOp, Waiter};
use crate::state::{State, ThreadStats};
use resp::{Proto, ReplyBuf};
use smallvec::SmallVec;
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Parses a blocking command's timeout (seconds, fractional allowed) into milliseconds, as
/// Redis's getTimeoutFromObjectOrReply; replies its error and returns None when bad.
pub fn timeout_arg(ctx: &mut Ctx, a: &[u8]) -> Option<i64> {
    let Some(secs) = crate::util::parse_f64(a) else {
        ctx.out.error("ERR timeout is not a float or out of range");
        return None;
    };
    let ms = secs * 1000.0;
    if ms > i64::MAX as f64 {
        ctx.out.error("ERR timeout is out of range");
        return None;
    }
    let ms = ms.ceil() as i64;
    if ms < 0 {
        ctx.out.error("ERR timeout is negative");
        return None;
    }
    Some(ms)
}

/// Keys made ready for blocked clients: (db, key).
type ReadyKeys = SmallVec<[(usize, Vec<u8>); 1]>;

/// Serves the waiters of every ready key, and of the keys those services make ready.
pub fn serve_ready(st: &State, table: &CommandTable, ts: &ThreadStats, ready: impl IntoIterator<Item = (usize, Vec<u8>)>) {
    // Serving pops for the waiters is a write: a panic here is fatal (crate::crash).
    let _writing = crate::crash::WriteGuard::enter();
    let mut queue: VecDeque<(usize, Vec<u8>)> = ready.into_iter().collect();
    while let Some((db, key)) = queue.pop_front() {
        // In arrival order. Stream readers consume nothing, so each is tried; list and sorted
        // set waiters are served while the key has data for the next one in line.
        let mut drained = false;
        for w in st.blocking.waiting(db, &key) {
            if w.op.on_streams() || !drained {
                let served = serve_one(st, table, ts, &w, &key);
                let done = served.is_some() || !w.is_waiting();
                if let Some(chained) = served {
                    queue.extend(chained);
                }
                if done {
                    st.blocking.remove(&w);
                } else if !w.op.on_streams() {
                    drained = true;
                }
            }
        }
    }
}

/// Runs one waiter's service for `key` with the waiter's database and protocol; on success the
/// waiter has its reply, and the keys the service made ready are returned.
fn serve_one(st: &State, table: &CommandTable, ts: &ThreadStats, w: &Arc<Waiter>, key: &[u8]) -> Option<ReadyKeys> {
    let spec = table.spec(w.cmd_id);
    let Some(serve) = spec.serve else {
        // Not a blocking command (cannot happen): release the client rather than hang it.
        if w.claim() {
            w.finish(w.timeout_reply.to_vec());
        }
        return None;
    };
    let mut conn = ConnState::new(w.info.clone(), true);
    conn.db = w.db;
    let mut out = ReplyBuf::new(if w.resp3 { Proto::Resp3 } else { Proto::Resp2 });
    let mut ctx = Ctx::new(st, table, &mut conn, &mut out, ts, w.cmd_id, crate::util::now_ms());
    let mut stripes: SmallVec<[usize; 2]> = SmallVec::new();
    stripes.push(crate::util::key_slot(key) % STRIPES);
    if let BlockOp::ListMove { dst, .. } = &w.op {
        stripes.push(crate::util::key_slot(dst) % STRIPES);
    }
    stripes.sort_unstable();
    stripes.dedup();
    for s in stripes {
        ctx.lock_stripe(s);
    }
    let served = serve(&mut ctx, key, w);
    super::notify::fire_deferred(&mut ctx);
    st.dirty.fetch_add(ctx.dirty(), Ordering::Relaxed);
    let chained = std::mem::take(&mut ctx.ready);
    drop(ctx);
    if !served {
        return None;
    }
    // The call was counted when the command blocked (once per command, as Redis). An error
    // that ends the wait (a stream or group gone) counts as a failed call and in errorstats.
    if out.buf.first() == Some(&b'-') {
        ThreadStats::add(&ts.cmd[w.cmd_id].failed, 1);
        super::dispatch::count_error_reply(st, &out.buf);
    }
    st.watches.touch(w.db, key);
    if let BlockOp::ListMove { dst, .. } = &w.op {
        st.watches.touch(w.db, dst);
    }
    if st.tracking.active() || !conn.tracking_pending.is_empty() {
        // The served client is the one running here: what it changed and itself tracks is
        // invalidated after its reply, as Redis.
        let mut cur = crate::state::tracking::Current { id: w.info.id, pending: &mut conn.tracking_pending };
        st.tracking.invalidate(&st.inboxes, key, Some(&mut cur), w.info.id);
        if let BlockOp::ListMove { dst, .. } = &w.op {
            st.tracking.invalidate(&st.inboxes, dst, Some(&mut cur), w.info.id);
        }
        st.tracking.send_pending(&st.inboxes, &w.info, &mut conn.tracking_pending, &mut out.buf);
    }
    w.finish(out.buf);
    Some(chained)
}

/// CLIENT UNBLOCK: ends a client's wait as a timeout, or with an error; false when the client
/// is not blocked.
pub fn unblock_client(st: &State, id: u64, error: bool) -> bool {
    let Some(w) = st.blocking.of_client(id) else { return false };
    if !w.claim() {
        return false;
    }
    st.blocking.remove(&w);
    let reply: Vec<u8> = if error { b"-UNBLOCKED client unblocked via CLIENT UNBLOCK\r\n".to_vec() } else { w.timeout_reply.to_vec() };
    w.finish(reply);
    true
}
