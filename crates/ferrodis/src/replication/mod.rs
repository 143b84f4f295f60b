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
use crate::util::parse_i64;
use crate::state::State;
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
        tracing::info!("REPLICAOF would result into synchronization with the master we are already connected with. No operation performed.");
        ctx.out.simple(b"OK Already connected to specified master");
        return;
    }
    let Some(arc) = st.arc() else { return };
    set_master(&arc, &host, port);
    tracing::info!("REPLICAOF {}:{} enabled (user request from '{}')", host, port, ctx.conn.info.addr);
    ctx.out.ok();
}

fn replconf(ctx: &mut Ctx, argv: &[&[u8]]) {
    if argv.len() % 2 == 0 {
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
    if ctx.st.repl.is_replica() && !ctx.st.repl.link_up() {
        ctx.out.error("NOMASTERLINK Can't SYNC while not connected with my master");
        return;
    }
    let psync = if argv.len() >= 3 { Some((argv[1].to_vec(), parse_i64(argv[2]).unwrap_or(-1))) } else { None };
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
