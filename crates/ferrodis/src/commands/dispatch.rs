//! The one gatekeeper: every command, from a client or (later) from a master's stream, goes
//! through `execute`, which runs Redis's checks in Redis's order from the table's data, locks the
//! stripes of the command's keys in ascending order, runs the handler, propagates its effect to the
//! journal while the locks are held, and keeps the statistics.
// PERF-CRITICAL

use super::table::flag;
use super::{ConnState, Ctx, ReplyMode};
use crate::keyspace::STRIPES;
use crate::state::stats::SlowEntry;
use crate::state::{State, ThreadStats};
use resp::ReplyBuf;
use smallvec::SmallVec;
use std::sync::atomic::Ordering;
use std::time::Instant;

/// What the connection should do after a command.
#[derive(Debug, PartialEq, Eq)]
pub enum Flow {
    Continue,
    /// Close the connection after writing what is buffered (QUIT, CLIENT KILL of self, SHUTDOWN).
    Close,
    /// The server is paused for this command (CLIENT PAUSE): retry it later.
    Paused,
}

fn unknown_command(argv: &[&[u8]]) -> String {
    let mut args = String::new();
    for a in &argv[1..] {
        if args.len() >= 128 {
            break;
        }
        let room = 128 - args.len();
        let s = String::from_utf8_lossy(a);
        let s: String = s.chars().take(room).collect();
        args.push_str(&format!("'{}' ", s));
    }
    let name: String = String::from_utf8_lossy(argv[0]).chars().take(128).collect();
    format!("ERR unknown command '{}', with args beginning with: {}", name, args)
}

/// A clock read once per command: wall-clock ms are derived from a monotonic reading anchored
/// once per batch, and the end of one command is the start of the next.
pub struct Clock {
    base_ms: i64,
    base: Instant,
    last: Instant,
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock {
    pub fn new() -> Clock {
        let now = Instant::now();
        Clock { base_ms: crate::util::now_ms(), base: now, last: now }
    }
    /// Starts a batch of requests: reads the monotonic clock, and the wall clock again when the
    /// anchor is older than 100 ms (so wall-clock steps are seen within that time).
    pub fn anchor(&mut self) {
        self.last = Instant::now();
        if self.last.duration_since(self.base).as_millis() >= 100 {
            *self = Clock::new();
        }
    }
    fn now_ms(&self) -> i64 {
        self.base_ms + self.last.duration_since(self.base).as_millis() as i64
    }
}

/// Runs one command. `argv` is the request; replies go to `out`.
pub fn execute(
    st: &State,
    table: &super::CommandTable,
    conn: &mut ConnState,
    out: &mut ReplyBuf,
    ts: &ThreadStats,
    argv: &[&[u8]],
) -> Flow {
    execute_timed(st, table, conn, out, ts, argv, &mut Clock::new())
}

/// `execute_timed` for a client's connection, in a containment zone (`crate::crash`): a panic
/// in a command that was not writing is answered with an error, logged with a bug report, and
/// closes this connection while the server goes on; a panic during a write aborts the process
/// with the report. (The replication link and AOF loading call `execute_timed` outside any zone,
/// so a panic there is always fatal: they must apply every command.)
#[allow(clippy::too_many_arguments)]
pub fn execute_client<'g>(
    st: &'g State,
    table: &super::CommandTable,
    conn: &mut ConnState,
    out: &mut ReplyBuf,
    ts: &ThreadStats,
    argv: &[&[u8]],
    clock: &mut Clock,
    group: &mut Group<'g>,
) -> Flow {
    let reply_start = out.buf.len();
    match crate::crash::contained(|| execute_in(st, table, conn, out, ts, argv, clock, group)) {
        Ok(flow) => flow,
        Err(p) => command_panicked(st, table, conn, out, argv, reply_start, p),
    }
}

/// A contained panic: the fatal path when a write was under way, else the error reply, the
/// report in the log, and the connection closed.
#[cold]
fn command_panicked(
    st: &State,
    table: &super::CommandTable,
    conn: &mut ConnState,
    out: &mut ReplyBuf,
    argv: &[&[u8]],
    reply_start: usize,
    p: crate::crash::Panic,
) -> Flow {
    let name = match table.lookup(argv[0]) {
        Some(id) => table.full_name(id).to_string(),
        None => String::from_utf8_lossy(argv[0]).to_lowercase(),
    };
    let info = &conn.info;
    let mut client = vec![format!("id={} addr={} laddr={} db={} cmd={}", info.id, info.addr, info.laddr, conn.db, name)];
    client.push(format!("argc: '{}'", argv.len()));
    for (i, a) in argv.iter().enumerate().take(16) {
        let a: String = String::from_utf8_lossy(a).chars().take(128).collect();
        client.push(format!("argv[{i}]: '{a}'"));
    }
    if p.during_write {
        crate::crash::fatal(&p, &client);
    }
    for line in crate::crash::report(&p, false, &client) {
        tracing::warn!("{line}");
    }
    st.stats.record_error("ERR");
    out.buf.truncate(reply_start);
    out.error(&format!(
        "ERR internal error while running '{name}': the command was stopped before it changed anything and this connection is closed (see the server log)"
    ));
    Flow::Close
}

/// `execute` with the connection's clock.
pub fn execute_timed(
    st: &State,
    table: &super::CommandTable,
    conn: &mut ConnState,
    out: &mut ReplyBuf,
    ts: &ThreadStats,
    argv: &[&[u8]],
    clock: &mut Clock,
) -> Flow {
    execute_in(st, table, conn, out, ts, argv, clock, &mut Group::new(&st.keyspace, conn.info.id))
}

/// `execute` with the connection's clock, as a command of a pipeline group when one is active
/// (the hot path).
#[allow(clippy::too_many_arguments)]
fn execute_in<'g>(
    st: &'g State,
    table: &super::CommandTable,
    conn: &mut ConnState,
    out: &mut ReplyBuf,
    ts: &ThreadStats,
    argv: &[&[u8]],
    clock: &mut Clock,
    group: &mut Group<'g>,
) -> Flow {
    if st.tracking.clients() > 0 {
        tracking_before(st, conn, out);
    }
    let reply_start = out.buf.len();
    let was_asking = conn.asking;
    let flow = execute_inner(st, table, conn, out, ts, argv, reply_start, clock, group);
    // ASKING holds for the next command only (outside MULTI), as Redis's resetClient.
    if was_asking && conn.multi.is_none() && !argv[0].eq_ignore_ascii_case(b"asking") {
        conn.asking = false;
    }
    // Error statistics come from the reply itself, so handlers need not report them. A script's
    // error that a command it called already counted is not counted twice (Redis's
    // ERR_REPLY_FLAG_NO_STATS_UPDATE).
    if !std::mem::take(&mut conn.nested_error) {
        count_error_reply(st, &out.buf[reply_start..]);
    }
    // CLIENT REPLY OFF / SKIP (pushes still go out).
    if (conn.skip_this || conn.reply_mode == ReplyMode::Off) && !replies_with_push(table, argv) {
        out.buf.truncate(reply_start);
    }
    conn.skip_this = false;
    if conn.reply_mode == ReplyMode::SkipNext {
        conn.reply_mode = ReplyMode::On;
        conn.skip_this = true;
    }
    tracking_after(st, conn, out, argv);
    flow
}

/// Whether a command's reply is a push (SUBSCRIBE and the like: a RESP3 push, a RESP2 array),
/// which CLIENT REPLY OFF/SKIP does not suppress, as Redis 7.0.
#[cold]
fn replies_with_push(table: &super::CommandTable, argv: &[&[u8]]) -> bool {
    table.lookup(argv[0]).is_some_and(|id| table.spec(id).flags & flag::PUSH_REPLY != 0)
}

/// Client-side caching before a command (Redis's processCommand): the tracking table is kept
/// within `tracking-table-max-keys`, and invalidations already in this client's mailbox go out
/// before the reply.
#[cold]
fn tracking_before(st: &State, conn: &mut ConnState, out: &mut ReplyBuf) {
    st.tracking.limit(&st.inboxes, st.config.hot.tracking_table_max_keys.load(Ordering::Relaxed));
    if let Some(ps) = conn.pubsub.as_mut() {
        let msgs = ps.drain();
        out.raw(&msgs);
    }
}

/// Client-side caching after a command: the invalidations it caused for its own client follow
/// its reply (even with CLIENT REPLY OFF, as pushes), broadcast keys go out, and CLIENT CACHING
/// holds for one command (or one transaction) only.
#[inline]
fn tracking_after(st: &State, conn: &mut ConnState, out: &mut ReplyBuf, argv: &[&[u8]]) {
    use crate::state::tracking::flag as tf;
    if conn.info.tracking.load(Ordering::Relaxed) & tf::CACHING != 0 && conn.multi.is_none() && !argv[0].eq_ignore_ascii_case(b"client") {
        conn.info.tracking.fetch_and(!tf::CACHING, Ordering::Relaxed);
    }
    if !conn.tracking_pending.is_empty() {
        st.tracking.send_pending(&st.inboxes, &conn.info, &mut conn.tracking_pending, &mut out.buf);
    }
    st.tracking.flush_bcast(&st.inboxes);
}

#[allow(clippy::too_many_arguments)]
fn execute_inner<'g>(
    st: &'g State,
    table: &super::CommandTable,
    conn: &mut ConnState,
    out: &mut ReplyBuf,
    ts: &ThreadStats,
    argv: &[&[u8]],
    _start: usize,
    clock: &mut Clock,
    group: &mut Group<'g>,
) -> Flow {
    // 1. Find the command (and subcommand), check arity.
    let Some(mut id) = table.lookup_command(argv[0]) else {
        out.error(&unknown_command(argv));
        flag_transaction(conn);
        return Flow::Continue;
    };
    let mut spec = table.spec(id);
    if !(spec.subcommands.is_empty() || argv.len() == 1 && spec.arity_ok(1)) {
        if argv.len() < 2 {
            out.error(&format!("ERR wrong number of arguments for '{}' command", table.full_name(id)));
            return Flow::Continue;
        }
        match table.lookup_sub(id, argv[1]) {
            Some(sid) => {
                id = sid;
                spec = table.spec(id);
            }
            None => {
                out.error(&format!(
                    "ERR unknown subcommand '{}'. Try {} HELP.",
                    String::from_utf8_lossy(argv[1]).chars().take(128).collect::<String>(),
                    spec.name.to_ascii_uppercase()
                ));
                flag_transaction(conn);
                return Flow::Continue;
            }
        }
    }
    if !spec.arity_ok(argv.len()) {
        out.error(&format!("ERR wrong number of arguments for '{}' command", table.full_name(id)));
        ThreadStats::add(&ts.cmd[id].rejected, 1);
        flag_transaction(conn);
        return Flow::Continue;
    }
    // 2. Authentication.
    if !conn.authenticated && spec.flags & flag::NO_AUTH == 0 && st.config.hot.requirepass_set.load(Ordering::Relaxed) {
        out.error("NOAUTH Authentication required.");
        ThreadStats::add(&ts.cmd[id].rejected, 1);
        flag_transaction(conn);
        return Flow::Continue;
    }
    // 2'. ACL: the user's command, key and channel permissions (one atomic load for a user
    // allowed everything, such as the default user).
    if let Some(u) = conn.user.as_ref().filter(|u| !u.unrestricted.load(Ordering::Acquire) && spec.flags & flag::NO_AUTH == 0).cloned() {
        if u.deleted.load(Ordering::Relaxed) {
            return Flow::Close;
        }
        if let Some(err) = super::acl::denied(st, table, conn, &u, id, argv) {
            out.error(&err);
            ThreadStats::add(&ts.cmd[id].rejected, 1);
            flag_transaction(conn);
            return Flow::Continue;
        }
    }
    // 2a. Cluster mode: keyed commands go to the node serving their slot (Redis's
    // getNodeByQuery): MOVED, ASK, CROSSSLOT, TRYAGAIN, CLUSTERDOWN.
    if st.cluster.enabled.load(Ordering::Relaxed) && !conn.is_master {
        if let Some(err) = cluster_route(st, table, conn, spec, argv, clock.now_ms()) {
            return reject_before_queueing(conn, out, ts, id, spec, &err);
        }
    }
    // 2a'. maxmemory: evict first; with nothing left to evict (or noeviction), commands that
    // may grow memory get OOM, as Redis's processCommand.
    if !conn.is_master && !super::evict::perform(st, clock.now_ms()) && denyoom(table, conn, spec) {
        return reject_before_queueing(conn, out, ts, id, spec, super::evict::OOM);
    }
    // 2b. A failed RDB save stops writes (and PING) while save points and
    // stop-writes-on-bgsave-error are on, as Redis's writeCommandsDeniedByDiskError.
    let flags = effective_flags(table, conn, spec);
    if !st.rdb.last_ok.load(Ordering::Relaxed) && (flags & flag::WRITE != 0 || spec.name == "ping") && writes_denied_by_disk_error(st) {
        return reject_before_queueing(conn, out, ts, id, spec, MISCONF);
    }
    // 2c. Replication: a read-only replica refuses writes (but for its master's), a master with
    // min-replicas-to-write refuses them without enough good replicas, and a replica whose link
    // is down answers only STALE commands when replica-serve-stale-data is no.
    if !conn.is_master {
        if let Some(err) = replication_denies(st, flags, clock.now_ms()) {
            return reject_before_queueing(conn, out, ts, id, spec, err);
        }
    }
    // 3. CLIENT PAUSE holds commands (writes only, or all) until it ends.
    let now = clock.now_ms();
    if st.pause_until.load(Ordering::Relaxed) > now
        && spec.flags & flag::NO_AUTH == 0
        && !is_unpause(table, id)
        && st.paused(flags & (flag::WRITE | flag::MAY_REPLICATE) != 0, now)
    {
        return Flow::Paused;
    }

    // A script running past busy-reply-threshold: only ALLOW_BUSY commands (SCRIPT KILL, ...).
    // Until then the command waits for the script here (as Redis does not read meanwhile), so it
    // does not queue on the script's stripe locks past the threshold.
    if spec.flags & flag::ALLOW_BUSY == 0 && crate::state::scripts::RUNNING_SINCE.load(Ordering::Acquire) != 0 {
        let threshold = st.config.get_int("busy-reply-threshold");
        let mut spins = 0u32;
        loop {
            let since = crate::state::scripts::RUNNING_SINCE.load(Ordering::Acquire);
            if since == 0 {
                break;
            }
            if crate::util::now_ms() - since >= threshold {
                return reject_before_queueing(conn, out, ts, id, spec, crate::state::scripts::busy_err());
            }
            // Most scripts take microseconds: yield first, sleep only for long ones.
            spins += 1;
            if spins < 1000 {
                std::thread::yield_now();
            } else {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        }
    }

    // RESP2 subscriber mode allows only the subscription commands, PING, QUIT and RESET.
    if conn.in_subscriber_mode() {
        let top = table.full_name(id).split('|').next().unwrap_or_default();
        if !super::pubsub::allowed_in_subscriber_mode(top) {
            out.error(&format!(
                "ERR Can't execute '{}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context",
                table.full_name(id)
            ));
            flag_transaction(conn);
            return Flow::Continue;
        }
    }

    // MULTI: everything but the transaction commands is queued (checked above, run by EXEC).
    if let Some(m) = conn.multi.as_mut() {
        let top = table.full_name(id).split('|').next().unwrap_or_default();
        if !matches!(top, "exec" | "discard" | "multi" | "watch" | "quit" | "reset") {
            if spec.flags & flag::NO_MULTI != 0 {
                out.error("ERR Command not allowed inside a transaction");
                m.error = true;
            } else {
                if !m.error {
                    m.cmds.push((id, argv.iter().map(|a| a.to_vec()).collect()));
                }
                out.simple(b"QUEUED");
            }
            return Flow::Continue;
        }
    }

    // A script is shown to MONITOR before it runs, so the commands it calls follow it (Redis).
    if st.monitor_count.load(Ordering::Relaxed) > 0 && is_script(spec.name) {
        st.feed_monitors(conn.db, &conn.info.addr, argv);
    }

    // 4. Lock the stripes of the command's keys, ascending. A command that may reach any key
    // first waits for the pipeline groups running to end (holding no stripe: they need them).
    let _exclusive = needs_exclusive(spec).then(|| st.keyspace.latches.exclusive());
    if group.active() {
        group.acquire();
    }
    let mut ctx = Ctx::new(st, table, conn, out, ts, id, now);
    if spec.flags & flag::WHOLE_KEYSPACE == 0 {
        let mut idx: SmallVec<[usize; 8]> = SmallVec::new();
        spec.key_indices(argv, &mut idx);
        let lock = |ctx: &mut Ctx| {
            if idx.len() == 1 {
                ctx.lock_stripe(crate::util::key_slot(argv[idx[0]]) % STRIPES);
            } else if !idx.is_empty() {
                let mut stripes: SmallVec<[usize; 8]> = idx.iter().map(|&i| crate::util::key_slot(argv[i]) % STRIPES).collect();
                stripes.sort_unstable();
                stripes.dedup();
                for s in stripes {
                    ctx.lock_stripe(s);
                }
            }
        };
        lock(&mut ctx);
        // Another connection's pipeline on these keys' slots runs whole first.
        if !idx.is_empty() && !st.keyspace.latches.quiet() {
            let keys: SmallVec<[&[u8]; 8]> = idx.iter().map(|&i| argv[i]).collect();
            wait_for_groups(&mut ctx, &keys, lock);
        }
    }

    ctx.conn.info.last_cmd.store(id + 1, Ordering::Relaxed);
    // 5. Run it, and propagate while the locks are held.
    let t0 = clock.last;
    run_handler(&mut ctx, spec, argv);
    let ready = std::mem::take(&mut ctx.ready);
    drop(ctx);
    // Keys this command made ready: serve blocked clients now, before anything else runs here
    // (as Redis does after each command).
    if !ready.is_empty() {
        super::blocking::serve_ready(st, table, ts, ready);
    }
    // MONITOR sees the command after it ran (so SELECT shows its new database), as in Redis.
    if st.monitor_count.load(Ordering::Relaxed) > 0 && spec.flags & (flag::ADMIN | flag::SKIP_MONITOR) == 0 {
        st.feed_monitors(conn.db, &conn.info.addr, &redact(table.full_name(id), argv));
    }
    clock.last = Instant::now();
    let ns = clock.last.duration_since(t0).as_nanos() as u64;
    let usec = ns / 1000;

    // 6. Statistics and the slow log.
    let cs = &ts.cmd[id];
    ThreadStats::add(&cs.calls, 1);
    ThreadStats::add(&cs.usec, usec);
    if st.config.hot.latency_tracking.load(Ordering::Relaxed) {
        cs.record_latency(ns);
    }
    ThreadStats::add(&ts.commands, 1);
    if out.buf.len() > _start && out.buf[_start] == b'-' {
        ThreadStats::add(&cs.failed, 1);
    }
    let info = &conn.info;
    info.last_interaction_ms.store(now, Ordering::Relaxed);
    let threshold = st.config.hot.latency_threshold.load(Ordering::Relaxed);
    if threshold > 0 && (usec / 1000) as i64 >= threshold {
        let event = if spec.flags & flag::FAST != 0 { "fast-command" } else { "command" };
        st.latency_add(event, usec / 1000, now / 1000);
    }
    let slower = st.config.hot.slowlog_slower_than.load(Ordering::Relaxed);
    if slower >= 0 && spec.flags & flag::SKIP_SLOWLOG == 0 {
        if conn.blocked.is_some() {
            // A blocked command is logged when it completes, with the time it waited (Redis).
            conn.blocked_call = Some((argv.iter().map(|a| a.to_vec()).collect(), t0));
        } else if usec as i64 >= slower {
            slowlog(st, table, conn, id, argv, usec as i64, now);
        }
    }
    if conn.close_after_reply {
        Flow::Close
    } else {
        Flow::Continue
    }
}

const MISCONF: &str = "MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist to disk. Commands that may modify the data set are disabled, because this instance is configured to report errors during writes if RDB snapshotting fails (stop-writes-on-bgsave-error option). Please check the Redis logs for details about the RDB error.";

fn writes_denied_by_disk_error(st: &State) -> bool {
    st.config.get("stop-writes-on-bgsave-error").is_none_or(|v| v == "yes") && !st.config.get("save").unwrap_or_default().trim().is_empty()
}

/// Redis's processCommand checks of the replication state (READONLY, NOREPLICAS, MASTERDOWN).
#[inline]
fn replication_denies(st: &State, flags: u32, now: i64) -> Option<&'static str> {
    let h = &st.config.hot;
    let write = flags & flag::WRITE != 0;
    if st.repl.is_replica() {
        if flags & flag::LOADING == 0 && st.repl.loading.load(Ordering::Acquire) {
            return Some("LOADING Redis is loading the dataset in memory");
        }
        if write && h.replica_read_only.load(Ordering::Relaxed) {
            return Some("READONLY You can't write against a read only replica.");
        }
        if flags & flag::STALE == 0 && !h.replica_serve_stale.load(Ordering::Relaxed) && !st.repl.link_up() {
            return Some("MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.");
        }
    } else if write {
        let n = h.min_replicas_to_write.load(Ordering::Relaxed);
        let lag = h.min_replicas_max_lag.load(Ordering::Relaxed);
        if n > 0 && lag > 0 && (st.repl.good_replicas(lag, now) as i64) < n {
            return Some("NOREPLICAS Not enough good replicas to write.");
        }
    }
    None
}

/// The flags the state checks see: a command's own, or for EXEC those of its transaction (a
/// write if any queued command writes, not STALE or LOADING if any queued command is not), as
/// Redis checks EXEC against the server's state when it runs.
fn effective_flags(table: &super::CommandTable, conn: &ConnState, spec: &super::CommandSpec) -> u32 {
    let Some(m) = conn.multi.as_ref().filter(|_| spec.name == "exec") else { return spec.flags };
    let mut f = spec.flags;
    for (id, _) in &m.cmds {
        let q = table.spec(*id).flags;
        f |= q & (flag::WRITE | flag::DENYOOM | flag::MAY_REPLICATE);
        f &= !(!q & (flag::STALE | flag::LOADING));
    }
    f
}

/// Redis's reject_cmd_on_oom: a DENYOOM command, or EXEC of a transaction holding one.
#[cold]
fn denyoom(table: &super::CommandTable, conn: &ConnState, spec: &super::CommandSpec) -> bool {
    if spec.name == "exec" {
        return conn.multi.as_ref().is_some_and(|m| m.cmds.iter().any(|(id, _)| table.spec(*id).flags & flag::DENYOOM != 0));
    }
    spec.flags & flag::DENYOOM != 0
}

/// The keys a command (or, for EXEC, every queued command) touches, routed by the slot map.
#[cold]
fn cluster_route(
    st: &State,
    table: &super::CommandTable,
    conn: &ConnState,
    spec: &super::CommandSpec,
    argv: &[&[u8]],
    now: i64,
) -> Option<String> {
    let exists = |db: usize, key: &[u8]| {
        let loc = st.keyspace.locate(key);
        st.keyspace.lock(loc.stripe).get(db, &loc, key).is_some_and(|e| !e.expired(now))
    };
    let mut q = crate::state::cluster::Query {
        db: conn.db,
        is_write: spec.is_write(),
        readonly: conn.cluster_readonly,
        asking: conn.asking || spec.flags & flag::ASKING != 0,
        is_migrate: spec.name == "migrate",
        pubsub_shard: matches!(spec.name, "spublish" | "ssubscribe" | "sunsubscribe"),
        plain: !conn.tls,
    };
    let mut idx: SmallVec<[usize; 8]> = SmallVec::new();
    if spec.name == "exec" {
        let m = conn.multi.as_ref()?;
        let mut keys: Vec<&[u8]> = Vec::new();
        for (cid, args) in &m.cmds {
            let s = table.spec(*cid);
            q.is_write |= s.is_write();
            let a: SmallVec<[&[u8]; 8]> = args.iter().map(|x| &x[..]).collect();
            idx.clear();
            s.key_indices(&a, &mut idx);
            keys.extend(idx.iter().map(|&i| &args[i][..]));
        }
        return st.cluster.route(&q, keys, exists);
    }
    spec.key_indices(argv, &mut idx);
    if idx.is_empty() {
        return None;
    }
    st.cluster.route(&q, idx.iter().map(|&i| argv[i]), exists)
}

/// Refuses a command before it would be queued or run: an EXEC refused so discards its
/// transaction, any other command makes the transaction fail (Redis's flagTransaction).
#[cold]
fn reject_before_queueing(
    conn: &mut ConnState,
    out: &mut ReplyBuf,
    ts: &ThreadStats,
    id: usize,
    spec: &super::CommandSpec,
    err: &str,
) -> Flow {
    ThreadStats::add(&ts.cmd[id].rejected, 1);
    if spec.name == "exec" {
        // EXEC refused ends the transaction, with the reason (Redis's execCommandAbort).
        if conn.multi.take().is_some() {
            out.error(&format!("EXECABORT Transaction discarded because of: {err}"));
        } else {
            out.error(err);
        }
    } else {
        out.error(err);
        flag_transaction(conn);
    }
    Flow::Continue
}

/// A command rejected while queuing makes EXEC fail (Redis's flagTransaction).
fn flag_transaction(conn: &mut ConnState) {
    if let Some(m) = conn.multi.as_mut() {
        m.error = true;
    }
}

/// A command run inside EXEC or a script has run (or was refused: `rejected`): its call is
/// counted, and an error reply in errorstats and its failed (or rejected) calls, as Redis counts
/// each nested call.
/// `error`: the error reply, if it was one.
pub(crate) fn count_nested(ctx: &mut Ctx, id: Option<usize>, error: Option<&[u8]>, rejected: bool) {
    if let Some(id) = id.filter(|_| !rejected) {
        ThreadStats::add(&ctx.ts.cmd[id].calls, 1);
    }
    let Some(reply) = error else { return };
    count_error_reply(ctx.st, reply);
    ctx.conn.nested_error = true;
    if let Some(id) = id {
        let c = &ctx.ts.cmd[id];
        ThreadStats::add(if rejected { &c.rejected } else { &c.failed }, 1);
    }
}

/// Runs a handler on a context whose stripes are locked, journals its effect (the argv of a write
/// unless the handler gave its own) and flags clients watching the keys it changed.
/// Counts an error reply in errorstats under its code (the word after '-').
pub(crate) fn count_error_reply(st: &State, reply: &[u8]) {
    if reply.first() == Some(&b'-') {
        let end = reply[1..].iter().position(|&c| c == b' ' || c == b'\r').map_or(reply.len(), |p| 1 + p);
        st.stats.record_error(&String::from_utf8_lossy(&reply[1..end]));
    }
}

pub(crate) fn run_handler(ctx: &mut Ctx, spec: &super::CommandSpec, argv: &[&[u8]]) -> u64 {
    ctx.dirty = 0;
    ctx.custom_propagated = false;
    ctx.touched_keys = None;
    let reply_at = ctx.conn.pubsub.is_some().then_some(ctx.out.buf.len());
    // A panic while a write handler runs is fatal (crate::crash): the keyspace, the journal and
    // the replicas might no longer agree.
    let writing = spec.is_write().then(crate::crash::WriteGuard::enter);
    (spec.handler)(ctx, argv);
    crate::crash::failpoint(spec.name);
    drop(writing);
    let dirty = ctx.dirty();
    if (dirty > 0 && spec.is_write()) || !ctx.deferred.is_empty() {
        super::notify::fire(ctx, spec.name, argv, dirty > 0 && spec.is_write());
    }
    // A subscribed (RESP3) client gets the messages its own command published (PUBLISH to its
    // channel, keyspace events of its writes) before the command's reply, as in Redis.
    if let (Some(at), Some(ps)) = (reply_at, ctx.conn.pubsub.as_mut()) {
        let msgs = ps.drain();
        if !msgs.is_empty() {
            ctx.out.buf.splice(at..at, msgs);
        }
    }
    if dirty > 0 {
        let db = ctx.conn.db;
        if !ctx.custom_propagated && spec.is_write() {
            ctx.emit(db, argv);
        }
        ctx.st.dirty.fetch_add(dirty, Ordering::Relaxed);
        if spec.is_write() && (ctx.st.watches.any() || ctx.st.tracking.active()) {
            let mut idx: SmallVec<[usize; 8]> = SmallVec::new();
            match &ctx.touched_keys {
                Some(only) => idx.extend(only.iter().copied()),
                None => spec.key_indices(argv, &mut idx),
            }
            for i in idx {
                ctx.touch_key(db, argv[i]);
            }
        }
    }
    if ctx.conn.info.tracking.load(Ordering::Relaxed) & crate::state::tracking::flag::ON != 0 {
        remember_read_keys(ctx, spec, argv);
    }
    dirty
}

/// Client-side caching: a tracking client's read-only command records the keys it read (Redis's
/// trackingRememberKeys). Inside a script, a read-only command makes the script's declared keys
/// tracked instead, once the script ends; EVAL_RO and FCALL_RO themselves track nothing.
fn remember_read_keys(ctx: &mut Ctx, spec: &super::CommandSpec, argv: &[&[u8]]) {
    use crate::state::tracking::flag as tf;
    let f = ctx.conn.info.tracking.load(Ordering::Relaxed);
    if f & tf::BCAST != 0 {
        return;
    }
    let script_read = std::mem::take(&mut ctx.conn.tracking_script_read);
    let read_only = spec.flags & flag::READONLY != 0 && !matches!(spec.name, "eval_ro" | "evalsha_ro" | "fcall_ro");
    if ctx.conn.in_script {
        ctx.conn.tracking_script_read = script_read || read_only;
        return;
    }
    if !(read_only || script_read) || spec.flags & flag::PUBSUB != 0 {
        return;
    }
    // OPTIN tracks only after CLIENT CACHING yes, OPTOUT all but after CLIENT CACHING no.
    let caching = f & tf::CACHING != 0;
    if (f & tf::OPTIN != 0 && !caching) || (f & tf::OPTOUT != 0 && caching) {
        return;
    }
    let mut idx: SmallVec<[usize; 8]> = SmallVec::new();
    spec.key_indices(argv, &mut idx);
    ctx.st.tracking.remember(ctx.conn.info.id, idx.iter().map(|&i| argv[i]));
}

fn is_unpause(table: &super::CommandTable, id: usize) -> bool {
    let n = table.full_name(id);
    n == "client|unpause" || n == "shutdown"
}

#[cold]
pub(crate) fn slowlog(st: &State, table: &super::CommandTable, conn: &ConnState, id: usize, argv: &[&[u8]], usec: i64, now: i64) {
    let max_args = 32;
    let mut args: Vec<Vec<u8>> = Vec::new();
    // Credentials never reach the slow log (Redis redacts them as for MONITOR).
    let argv = redact(table.full_name(id), argv);
    for (i, a) in argv.iter().enumerate() {
        if i == max_args - 1 && argv.len() > max_args {
            args.push(format!("... ({} more arguments)", argv.len() - max_args + 1).into_bytes());
            break;
        }
        if a.len() > 128 {
            let mut v = a[..128].to_vec();
            v.extend_from_slice(format!("... ({} more bytes)", a.len() - 128).as_bytes());
            args.push(v);
        } else {
            args.push(a.to_vec());
        }
    }
    let name = String::from_utf8_lossy(&conn.info.name.lock()).into_owned();
    let max = st.config.hot.slowlog_max_len.load(Ordering::Relaxed);
    st.slowlog.lock().push(SlowEntry { id: 0, time: now / 1000, usec, args, peer: conn.info.addr.clone(), name }, max);
}

/// The arguments MONITOR and SLOWLOG show (by full command name): passwords and user names
/// replaced by "(redacted)", as Redis does for AUTH, HELLO ... AUTH, MIGRATE ... AUTH/AUTH2,
/// ACL SETUSER and CONFIG SET of a secret.
fn redact<'a>(name: &str, argv: &[&'a [u8]]) -> SmallVec<[&'a [u8]; 8]> {
    const R: &[u8] = b"(redacted)";
    let mut v: SmallVec<[&[u8]; 8]> = argv.iter().copied().collect();
    match name {
        "auth" => v[1..].iter_mut().for_each(|a| *a = R),
        // A user's rules may hold passwords: all of them, the name too (Redis).
        "acl|setuser" => v[2..].iter_mut().for_each(|a| *a = R),
        "config|set" => {
            for pair in v[2..].chunks_mut(2) {
                let secret = ["masterauth", "masteruser", "requirepass", "tls-key-file-pass", "tls-client-key-file-pass"]
                    .iter()
                    .any(|s| pair[0].eq_ignore_ascii_case(s.as_bytes()));
                if secret && pair.len() == 2 {
                    pair[1] = R;
                }
            }
        }
        "hello" | "migrate" => {
            // MIGRATE's options follow host, port, key, db and timeout.
            let mut i = if name == "migrate" { 6 } else { 1 };
            while i < v.len() {
                let n = if v[i].eq_ignore_ascii_case(b"auth") {
                    if name == "hello" {
                        2
                    } else {
                        1
                    }
                } else if name == "migrate" && v[i].eq_ignore_ascii_case(b"auth2") {
                    2
                } else {
                    0
                };
                for a in v.iter_mut().skip(i + 1).take(n) {
                    *a = R;
                }
                i += 1 + n;
            }
        }
        _ => {}
    }
    v
}

/// Shows a command run inside a transaction or a script to MONITOR (`addr` is "lua" for a
/// script's calls), after it ran; a script inside a transaction is shown before it runs.
pub(crate) fn monitor_inner(st: &State, db: usize, addr: &str, spec: &super::CommandSpec, argv: &[&[u8]], before: bool) {
    if st.monitor_count.load(Ordering::Relaxed) == 0 || is_script(spec.name) != before {
        return;
    }
    if before || spec.flags & (flag::ADMIN | flag::SKIP_MONITOR) == 0 {
        st.feed_monitors(db, addr, argv);
    }
}

/// Commands that run a script or function: they take every stripe.
pub(crate) fn is_script(name: &str) -> bool {
    name.starts_with("eval") || name.starts_with("fcall")
}

/// The most commands one pipeline group runs.
const GROUP_MAX: usize = 1024;

/// Pipeline atomicity. The commands a connection's read brought (a pipeline) run without other
/// connections' commands on their keys between them, as Redis runs every complete command of
/// one read before it serves another client: before the first of them runs, the connection
/// takes the latch of every hash slot their keys name (`keyspace::latch`), all at once, and
/// holds them until the last has run. Every other command checks the latches of its keys and
/// waits while another connection holds one; commands on other slots run in parallel.
///
/// A group ends before a command that reaches every key or waits on I/O: scripts and FCALL,
/// whole-keyspace commands (KEYS, SCAN, FLUSHALL, ...: these run as exclusive sections, after
/// the groups running have ended), MIGRATE, and commands without keys that are not fast (INFO,
/// CONFIG, DEBUG, SAVE, CLIENT KILL, WAIT, ...). That command runs alone and a new group may
/// follow. The latches are let go before any await (a flush of 64 KiB of replies in the middle
/// of a pipeline, a pause, a block) and taken again before the next command.
pub struct Group<'g> {
    latches: &'g crate::keyspace::latch::Latches,
    /// The connection's id (a latch's holder).
    owner: u64,
    /// The slots the group's commands name, ascending.
    slots: SmallVec<[u16; 16]>,
    /// Commands of the group still to run (0: no group).
    remaining: usize,
    /// Whether it holds the latches now.
    held: bool,
    /// A pipeline with a command that may reach any key: it runs as one exclusive section.
    exclusive: bool,
    section: Option<crate::keyspace::latch::Exclusive<'g>>,
}

impl<'g> Group<'g> {
    pub fn new(ks: &'g crate::keyspace::Keyspace, owner: u64) -> Group<'g> {
        Group { latches: &ks.latches, owner, slots: SmallVec::new(), remaining: 0, held: false, exclusive: false, section: None }
    }

    /// True while commands of a group are still to run.
    #[inline]
    pub fn active(&self) -> bool {
        self.remaining > 0
    }

    /// Takes the latches (again) unless it holds them, waiting for them.
    fn acquire(&mut self) {
        if !self.held && self.active() {
            if self.exclusive {
                self.section = Some(self.latches.exclusive());
            }
            self.latches.take(&self.slots, self.owner, self.exclusive);
            self.held = true;
        }
    }

    /// Takes the latches if they are all free at once, else none: true when it holds them. The
    /// connection tries this before the group's first command and, while another connection
    /// holds some, lets its worker serve other connections meanwhile.
    pub fn try_acquire(&mut self) -> bool {
        if self.exclusive {
            self.acquire();
        } else if !self.held && self.active() {
            self.held = self.latches.try_take(&self.slots, self.owner, false);
        }
        self.held || !self.active()
    }

    /// Lets go of the latches; the group goes on (`acquire` before its next command).
    pub fn release(&mut self) {
        if self.held {
            self.latches.release(&self.slots);
            self.held = false;
        }
        self.section = None;
    }

    /// Ends the group: no more commands run under its latches.
    pub fn end(&mut self) {
        self.release();
        self.remaining = 0;
    }

    /// One command of the group has run.
    #[inline]
    pub fn step(&mut self) {
        if self.remaining > 0 {
            self.remaining -= 1;
            if self.remaining == 0 {
                self.release();
            }
        }
    }

    /// Plans a group from `first` (parsed, about to run) and the complete requests after it in
    /// `rest`: as many as may run as one (at least two, else no group). The requests it parsed
    /// are left in `parsed` (in order, empty ones included, each relative to its own start) for
    /// the connection to run without parsing them again; returns how many.
    pub fn plan(
        &mut self,
        table: &super::CommandTable,
        conn: &ConnState,
        first: &[&[u8]],
        rest: &[u8],
        limits: &resp::Limits,
        parsed: &mut Vec<resp::Request>,
    ) -> usize {
        self.end();
        self.slots.clear();
        self.exclusive = false;
        if !group_member(table, conn, first, &mut self.slots, &mut self.exclusive) {
            return 0;
        }
        let (mut n, mut k, mut off) = (1, 0, 0);
        while n < GROUP_MAX && off < rest.len() {
            if parsed.len() <= k {
                parsed.push(resp::Request::default());
            }
            let req = &mut parsed[k];
            match resp::parse_request(&rest[off..], limits, req) {
                Ok(true) => {}
                // Nothing but an empty line: kept, as the connection would skip it.
                Ok(false) if req.consumed > 0 => {}
                _ => break,
            }
            let base = &rest[off..];
            let argv: SmallVec<[&[u8]; 8]> = (0..req.argc()).map(|i| req.arg(base, i)).collect();
            if !argv.is_empty() {
                if !group_member(table, conn, &argv, &mut self.slots, &mut self.exclusive) {
                    break;
                }
                n += 1;
            }
            off += req.consumed;
            k += 1;
        }
        if n < 2 {
            self.slots.clear();
            return 0;
        }
        self.slots.sort_unstable();
        self.slots.dedup();
        self.remaining = n;
        k
    }
}

impl Drop for Group<'_> {
    fn drop(&mut self) {
        self.release();
    }
}

/// Whether a command may run in a pipeline group, adding the slots of its keys (`exclusive`: it
/// may reach any key). Commands refused before they run (unknown, wrong arity) touch nothing and
/// belong.
fn group_member(
    table: &super::CommandTable,
    conn: &ConnState,
    argv: &[&[u8]],
    slots: &mut SmallVec<[u16; 16]>,
    exclusive: &mut bool,
) -> bool {
    let Some(id) = table.lookup(argv[0]) else { return true };
    let mut spec = table.spec(id);
    if !spec.subcommands.is_empty() && argv.len() >= 2 {
        match table.lookup_sub(id, argv[1]) {
            Some(sid) => spec = table.spec(sid),
            None => return true,
        }
    }
    if !spec.arity_ok(argv.len()) {
        return true;
    }
    if spec.name == "migrate" {
        return false;
    }
    *exclusive |= needs_exclusive(spec);
    let mut idx: SmallVec<[usize; 8]> = SmallVec::new();
    spec.key_indices(argv, &mut idx);
    if spec.name == "exec" {
        // EXEC runs the commands queued before this read, and checks the watched keys.
        if let Some(m) = conn.multi.as_ref() {
            for (cid, args) in &m.cmds {
                let s = table.spec(*cid);
                *exclusive |= needs_exclusive(s);
                let refs: SmallVec<[&[u8]; 8]> = args.iter().map(|a| a.as_slice()).collect();
                idx.clear();
                s.key_indices(&refs, &mut idx);
                slots.extend(idx.iter().map(|&i| crate::util::key_slot(&args[i]) as u16));
            }
        }
        slots.extend(conn.watched.iter().map(|(_, k)| crate::util::key_slot(k) as u16));
        return true;
    }
    if idx.is_empty() {
        return spec.flags & flag::FAST != 0 || needs_exclusive(spec);
    }
    slots.extend(idx.iter().map(|&i| crate::util::key_slot(argv[i]) as u16));
    true
}

/// Commands that may reach any key: they run as exclusive sections (`keyspace::latch`).
pub(crate) fn needs_exclusive(spec: &super::CommandSpec) -> bool {
    spec.flags & flag::WHOLE_KEYSPACE != 0 || is_script(spec.name)
}

/// Waits, holding no stripe, while another connection's pipeline group holds the latch of a
/// slot of these keys; returns with the stripes locked again (`lock` locks them).
pub(crate) fn wait_for_groups(ctx: &mut Ctx, keys: &[&[u8]], mut lock: impl FnMut(&mut Ctx)) {
    let latches = &ctx.st.keyspace.latches;
    let me = ctx.conn.info.id;
    while !latches.quiet() && keys.iter().any(|k| latches.held_by_other(crate::util::key_slot(k), me)) {
        ctx.unlock_all();
        latches.wait_free(keys.iter().map(|k| crate::util::key_slot(k)), me);
        lock(ctx);
    }
}
