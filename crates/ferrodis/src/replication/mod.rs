//! Master–replica replication (Redis's replication.c): the commands (REPLICAOF/SLAVEOF, REPLCONF,
//! PSYNC/SYNC, WAIT, ROLE), the master side that serves a replica (`master`: full resync from a
//! fork-less snapshot, partial resync from the journal's backlog, then the live stream) and the
//! replica side (`replica`: the link to the master, handshake, loading, applying the stream).
//!
//! A family (layer 5): it registers its commands into the table and works through `State`,
//! the journal and dispatch below it. `server` hands it connections that asked for PSYNC/SYNC.

pub mod master;
pub mod replica;

use crate::commands::table::{cmd, flag::*, CommandSpec, NO_KEYS};
use crate::commands::{eq, CommandTable, Ctx, Handoff};
use crate::state::State;
use crate::util::parse_i64;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};

pub static COMMANDS: &[CommandSpec] = &[
    cmd("replicaof", 3, ADMIN | NOSCRIPT | STALE | NO_ASYNC_LOADING, "@admin @slow @dangerous", NO_KEYS, replicaof),
    cmd("slaveof", 3, ADMIN | NOSCRIPT | STALE | NO_ASYNC_LOADING, "@admin @slow @dangerous", NO_KEYS, replicaof),
    cmd("replconf", -1, ADMIN | NOSCRIPT | LOADING | STALE | ALLOW_BUSY, "@admin @slow @dangerous", NO_KEYS, replconf),
    cmd("psync", -3, ADMIN | NOSCRIPT | NO_ASYNC_LOADING | NO_MULTI, "@admin @slow @dangerous", NO_KEYS, psync),
    cmd("sync", 1, ADMIN | NOSCRIPT | NO_ASYNC_LOADING | NO_MULTI, "@admin @slow @dangerous", NO_KEYS, psync),
    cmd("wait", 3, NOSCRIPT, "@slow @connection", NO_KEYS, wait),
    cmd("role", 1, NOSCRIPT | LOADING | STALE | FAST, "@admin @fast @dangerous", NO_KEYS, role),
    cmd("failover", -1, ADMIN | NOSCRIPT | STALE, "@admin @slow @dangerous", NO_KEYS, failover),
];

/// The command table, for the replica link (which runs its master's stream through dispatch).
static TABLE: OnceLock<Arc<CommandTable>> = OnceLock::new();

/// Called once by the server after the table is built.
pub fn init(table: Arc<CommandTable>) {
    let _ = TABLE.set(table);
}

fn table() -> Arc<CommandTable> {
    TABLE.get().expect("replication::init ran at start-up").clone()
}

/// Makes this server a replica of `host:port` (REPLICAOF, the `replicaof` directive): writes stop
/// unless replica-read-only is off, attached replicas are dropped (they reconnect and continue
/// with a partial resync), and a link task connects to the master.
pub fn set_master(st: &Arc<State>, host: &str, port: u16) {
    let was_master = !st.repl.is_replica();
    if was_master {
        // Our own history is what we continue from (Redis's replicationCacheMasterUsingMyself).
        st.repl.history.store(st.journal.active(), Ordering::Release);
    }
    st.repl.set_replica(true);
    crate::util::LOG_ROLE.store(b'S', Ordering::Relaxed);
    st.journal.set_follower(true);
    st.journal.drop_readers();
    // Clients blocked on keys wait for data a replica's clients cannot write.
    *st.repl.master.lock() = Some(crate::state::repl::MasterLink {
        host: host.to_string(),
        port,
        state: crate::state::repl::LinkState::Connect,
        last_io_ms: 0,
        down_since_ms: crate::util::now_ms(),
        sync_total: 0,
        sync_read: 0,
        synced: false,
    });
    let gen = st.repl.link_gen.fetch_add(1, Ordering::AcqRel) + 1;
    replica::start(st.clone(), table(), gen);
}

/// REPLICAOF NO ONE: ends the link and makes this server a master with a new replication id;
/// the old id stays valid up to the current offset, so the other replicas of the old master
/// continue from us with a partial resync (PSYNC2).
pub fn promote(st: &State) {
    if !st.repl.is_replica() {
        return;
    }
    st.repl.link_gen.fetch_add(1, Ordering::AcqRel);
    *st.repl.master.lock() = None;
    st.repl.shift_ids(st.journal.offset());
    st.repl.set_replica(false);
    crate::util::LOG_ROLE.store(b'M', Ordering::Relaxed);
    st.journal.set_follower(false);
    // Our replicas reconnect and learn the new id with +CONTINUE.
    st.journal.drop_readers();
    st.repl.history.store(true, Ordering::Release);
    tracing::info!("MASTER MODE enabled (user request)");
}

fn replicaof(ctx: &mut Ctx, argv: &[&[u8]]) {
    let st = ctx.st;
    if eq(argv[1], "no") && eq(argv[2], "one") {
        if st.repl.is_replica() {
            promote(st);
        }
        ctx.out.ok();
        return;
    }
    let port = match parse_i64(argv[2]) {
        Some(p) if (0..=65535).contains(&p) => p as u16,
        _ => {
            ctx.out.error("ERR Invalid master port");
            return;
        }
    };
    let host = String::from_utf8_lossy(argv[1]).into_owned();
    if st.repl.master.lock().as_ref().is_some_and(|m| m.host.eq_ignore_ascii_case(&host) && m.port == port) {
        tracing::info!(
            "REPLICAOF would result into synchronization with the master we are already connected with. No operation performed."
        );
        ctx.out.simple(b"OK Already connected to specified master");
        return;
    }
    let Some(arc) = st.arc() else { return };
    set_master(&arc, &host, port);
    tracing::info!("REPLICAOF {}:{} enabled (user request from '{}')", host, port, ctx.conn.info.addr);
    ctx.out.ok();
}

fn replconf(ctx: &mut Ctx, argv: &[&[u8]]) {
    if argv.len().is_multiple_of(2) {
        ctx.out.error(crate::commands::SYNTAX);
        return;
    }
    let mut i = 1;
    while i < argv.len() {
        let (k, v) = (argv[i], argv[i + 1]);
        if eq(k, "listening-port") {
            match parse_i64(v) {
                Some(p) if (0..=65535).contains(&p) => ctx.conn.replconf.port = p as u16,
                _ => {
                    ctx.out.error(crate::commands::NOT_INT);
                    return;
                }
            }
        } else if eq(k, "ip-address") {
            ctx.conn.replconf.ip = Some(String::from_utf8_lossy(v).into_owned());
        } else if eq(k, "capa") {
            if eq(v, "eof") {
                ctx.conn.replconf.capa_eof = true;
            } else if eq(v, "psync2") {
                ctx.conn.replconf.capa_psync2 = true;
            }
        } else if eq(k, "ack") || eq(k, "getack") {
            // Acknowledgements reach the master's replica task, and GETACK the replica's link,
            // without dispatch; from anyone else they get no reply, as in Redis.
            return;
        } else if eq(k, "rdb-only") || eq(k, "rdb-filter-only") {
        } else {
            ctx.out.error(&format!("ERR Unrecognized REPLCONF option: {}", String::from_utf8_lossy(k)));
            return;
        }
        i += 2;
    }
    ctx.out.ok();
}

fn psync(ctx: &mut Ctx, argv: &[&[u8]]) {
    if ctx.conn.is_master {
        return;
    }
    // PSYNC <replid> <offset> FAILOVER: our master hands over to us (FAILOVER TO us); it must
    // share our history. We become a master, then serve it as a replica of ours.
    if argv.len() > 3 && eq(argv[0], "psync") && eq(argv[3], "failover") {
        if argv[1] != ctx.st.repl.ids.lock().replid.as_bytes() {
            ctx.out.error("ERR PSYNC FAILOVER replid must match my replid.");
            return;
        }
        tracing::info!("Failover request received for replid {}.", String::from_utf8_lossy(argv[1]));
        promote(ctx.st);
    }
    if ctx.st.repl.is_replica() && !ctx.st.repl.link_up() {
        ctx.out.error("NOMASTERLINK Can't SYNC while not connected with my master");
        return;
    }
    let psync = match argv.get(2) {
        None => None,
        Some(off) => match parse_i64(off) {
            Some(off) => Some((argv[1].to_vec(), off)),
            None => {
                ctx.out.error(crate::commands::NOT_INT);
                return;
            }
        },
    };
    ctx.conn.handoff = Some(Handoff::Replica { psync });
}

fn wait(ctx: &mut Ctx, argv: &[&[u8]]) {
    if ctx.st.repl.is_replica() {
        ctx.out.error("ERR WAIT cannot be used with replica instances. Please also note that since Redis 4.0 if a replica is configured to be writable (which is not the default) writes to replicas are just local and are not propagated.");
        return;
    }
    let (Some(needed), Some(timeout)) = (parse_i64(argv[1]), parse_i64(argv[2])) else {
        ctx.out.error(crate::commands::NOT_INT);
        return;
    };
    if timeout < 0 {
        ctx.out.error("ERR timeout is negative");
        return;
    }
    let target = ctx.conn.woff;
    let acked = ctx.st.repl.acked(target);
    if acked as i64 >= needed || ctx.conn.deny_blocking {
        ctx.out.int(acked as i64);
        return;
    }
    ask_for_acks(ctx.st);
    let deadline = (timeout > 0).then(|| std::time::Instant::now() + std::time::Duration::from_millis(timeout as u64));
    ctx.conn.handoff = Some(Handoff::WaitAcks { target, needed: needed.max(0) as usize, deadline });
}

/// Asks every replica for its offset now (REPLCONF GETACK * in the stream), unless a request is
/// already out that no acknowledgement has answered yet (many waiting clients, one request).
pub fn ask_for_acks(st: &State) {
    if !st.repl.getack_pending.swap(true, Ordering::AcqRel) {
        st.journal.append_nodb(&[b"REPLCONF", b"GETACK", b"*"]);
    }
}

fn role(ctx: &mut Ctx, _argv: &[&[u8]]) {
    let st = ctx.st;
    let out = &mut *ctx.out;
    if let Some(m) = st.repl.master.lock().clone() {
        out.array(5);
        out.bulk(b"slave");
        out.bulk(m.host.as_bytes());
        out.int(m.port as i64);
        out.bulk(m.state.role_name().as_bytes());
        out.int(if m.state == crate::state::repl::LinkState::Connected { st.journal.offset() as i64 } else { -1 });
        return;
    }
    let replicas = st.repl.replicas.lock().clone();
    out.array(3);
    out.bulk(b"master");
    out.int(st.journal.offset() as i64);
    out.array(replicas.len());
    for r in replicas {
        out.array(3);
        out.bulk(r.ip.as_bytes());
        out.bulk(r.port.to_string().as_bytes());
        out.bulk(r.ack.load(Ordering::Relaxed).to_string().as_bytes());
    }
}

use crate::state::repl::{FAILOVER_IN_PROGRESS, FAILOVER_NONE, FAILOVER_WAITING};

/// FAILOVER [TO host port [FORCE]] [ABORT] [TIMEOUT ms]: a coordinated switch. Writes pause,
/// the target replica (or, without TO, one that has everything) catches up, then this server
/// becomes its replica with `PSYNC <replid> <offset> FAILOVER`, which makes the target promote
/// itself first; both keep one history, so nothing acknowledged is lost.
fn failover(ctx: &mut Ctx, argv: &[&[u8]]) {
    let st = ctx.st;
    let (mut to, mut force, mut abort, mut timeout) = (None, false, false, 0i64);
    let mut i = 1;
    while i < argv.len() {
        if eq(argv[i], "to") && i + 2 < argv.len() && to.is_none() {
            let Some(port) = parse_i64(argv[i + 2]) else {
                ctx.out.error(crate::commands::NOT_INT);
                return;
            };
            // A port no replica can have simply matches none.
            to = Some((String::from_utf8_lossy(argv[i + 1]).into_owned(), u16::try_from(port).unwrap_or(0)));
            i += 3;
        } else if eq(argv[i], "timeout") && i + 1 < argv.len() && timeout == 0 {
            match parse_i64(argv[i + 1]) {
                Some(t) if t > 0 => timeout = t,
                Some(_) => {
                    ctx.out.error("ERR FAILOVER timeout must be greater than 0");
                    return;
                }
                None => {
                    ctx.out.error(crate::commands::NOT_INT);
                    return;
                }
            }
            i += 2;
        } else if eq(argv[i], "force") && !force {
            force = true;
            i += 1;
        } else if eq(argv[i], "abort") && !abort {
            abort = true;
            i += 1;
        } else {
            ctx.out.error(crate::commands::SYNTAX);
            return;
        }
    }
    if abort {
        if to.is_some() || force || timeout != 0 {
            ctx.out.error(crate::commands::SYNTAX);
        } else if st.repl.failover_state.load(Ordering::Acquire) == FAILOVER_NONE {
            ctx.out.error("ERR No failover in progress.");
        } else {
            st.repl.failover_abort.store(true, Ordering::Release);
            ctx.out.ok();
        }
        return;
    }
    if st.repl.is_replica() {
        ctx.out.error("ERR FAILOVER is not valid when server is a replica.");
        return;
    }
    if st.repl.replicas.lock().is_empty() {
        ctx.out.error("ERR FAILOVER requires connected replicas.");
        return;
    }
    if force && (to.is_none() || timeout == 0) {
        ctx.out.error("ERR FAILOVER with force option requires both a timeout and target HOST and IP.");
        return;
    }
    if st.repl.failover_state.load(Ordering::Acquire) != FAILOVER_NONE {
        ctx.out.error("ERR FAILOVER already in progress.");
        return;
    }
    if let Some((h, p)) = &to {
        let known = st.repl.replicas.lock().iter().any(|r| r.port == *p && r.ip.eq_ignore_ascii_case(h) && *r.state.lock() == "online");
        if !known {
            ctx.out.error("ERR FAILOVER target HOST and PORT is not a replica.");
            return;
        }
    }
    let Some(arc) = st.arc() else { return };
    st.repl.failover_abort.store(false, Ordering::Release);
    st.repl.failover_state.store(FAILOVER_WAITING, Ordering::Release);
    // Writes wait (as CLIENT PAUSE WRITE) until the switch is done or aborted.
    st.pause_writes_only.store(true, Ordering::Relaxed);
    st.pause_until.store(i64::MAX, Ordering::Relaxed);
    tracing::info!("FAILOVER requested to {}.", to.as_ref().map_or("any replica".to_string(), |(h, p)| format!("{h}:{p}")));
    let spawned = std::thread::Builder::new().name("failover".into()).spawn(move || run_failover(&arc, to, force, timeout));
    if spawned.is_err() {
        end_failover(st);
    }
    ctx.out.ok();
}

fn end_failover(st: &State) {
    st.repl.failover_state.store(FAILOVER_NONE, Ordering::Release);
    st.pause_until.store(0, Ordering::Relaxed);
}

/// Waits for the target to have every write, then switches (or aborts).
fn run_failover(st: &Arc<State>, to: Option<(String, u16)>, force: bool, timeout_ms: i64) {
    let deadline = (timeout_ms > 0).then(|| crate::util::now_ms() + timeout_ms);
    let target = loop {
        if st.repl.failover_abort.load(Ordering::Acquire) {
            tracing::info!("FAILOVER aborted: failover aborted by the user.");
            return end_failover(st);
        }
        let offset = st.journal.offset();
        let caught_up = st.repl.replicas.lock().iter().find_map(|r| {
            let wanted = to.as_ref().is_none_or(|(h, p)| r.port == *p && r.ip.eq_ignore_ascii_case(h));
            (wanted && r.ack.load(Ordering::Acquire) >= offset).then(|| (r.ip.clone(), r.port))
        });
        if let Some(t) = caught_up {
            break t;
        }
        if deadline.is_some_and(|d| crate::util::now_ms() >= d) {
            match (&to, force) {
                (Some(t), true) => break t.clone(),
                _ => {
                    tracing::info!("FAILOVER aborted: replica never caught up before timeout.");
                    return end_failover(st);
                }
            }
        }
        ask_for_acks(st);
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    tracing::info!("Failover target {}:{} is synced, failing over.", target.0, target.1);
    st.repl.failover_state.store(FAILOVER_IN_PROGRESS, Ordering::Release);
    set_master(st, &target.0, target.1);
    st.pause_until.store(0, Ordering::Relaxed);
}

/// The replica link calls this when the PSYNC ... FAILOVER has been answered: the switch is
/// done, or (refused) this server takes its master role back.
pub fn failover_psync_done(st: &State, accepted: bool) {
    if st.repl.failover_state.swap(FAILOVER_NONE, Ordering::AcqRel) != FAILOVER_IN_PROGRESS {
        return;
    }
    if accepted {
        tracing::info!("Failover to the new master completed.");
    } else {
        tracing::warn!("FAILOVER aborted: the target refused the PSYNC FAILOVER; staying a master.");
        promote(st);
    }
}
