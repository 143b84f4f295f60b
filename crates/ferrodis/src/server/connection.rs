//! One client connection: read, parse every complete request in the buffer (pipelining),
//! execute each inline through dispatch, append replies to one buffer, write once per batch.
// PERF-CRITICAL

use super::io::Socket;
use crate::commands::dispatch::{execute_client, Clock, Flow, Group};
use crate::commands::{CommandTable, ConnState, Handoff};
use crate::state::blocking::Waiter;
use crate::state::{ClientInfo, State, ThreadStats};
use bytes::{Buf, BytesMut};
use resp::{parse_request, Limits, Proto, ReplyBuf, Request};
use smallvec::SmallVec;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// How often a pipeline group's latches are tried, letting other connections run in between,
/// before its connection waits for them.
const GROUP_TRIES: u32 = 4;

/// Replies are flushed mid-batch past this size, so a long pipeline cannot pile up output.
const FLUSH_AT: usize = 64 * 1024;

pub async fn serve(sock: Socket, peer: SocketAddr, st: Arc<State>, table: Arc<CommandTable>, ts: Arc<ThreadStats>) {
    let keepalive = st.config.get_int("tcp-keepalive");
    let laddr = sock.with_sock(|s| {
        let _ = s.set_nodelay(true);
        if keepalive > 0 {
            let _ = s.set_keepalive(true);
            let _ = s.set_tcp_keepalive(&socket2::TcpKeepalive::new().with_time(std::time::Duration::from_secs(keepalive as u64)));
        }
        s.local_addr().ok().and_then(|a| a.as_socket()).map(|a| a.to_string()).unwrap_or_default()
    });
    let now = crate::util::now_ms();
    let info = Arc::new(ClientInfo {
        id: st.clients.next_id(),
        addr: peer.to_string(),
        laddr,
        fd: sock.fd(),
        created_ms: now,
        last_interaction_ms: now.into(),
        resp: 2.into(),
        user: parking_lot::Mutex::new("default".into()),
        ..Default::default()
    });
    // maxclients, counted as Redis does (this connection included).
    if st.clients.count() >= st.config.hot.maxclients.load(Ordering::Relaxed) {
        st.stats.rejected_connections.fetch_add(1, Ordering::Relaxed);
        let _ = sock.write_all(b"-ERR max number of clients reached\r\n").await;
        return;
    }
    // Protected mode: with no password for the default user, only loopback clients.
    if protected_mode_refuses(&st, &peer) {
        let _ = sock.write_all(PROTECTED_MODE.as_bytes()).await;
        return;
    }
    st.clients.register(info.clone());
    let authenticated = !st.config.hot.requirepass_set.load(Ordering::Relaxed);
    let mut conn = ConnState::new(info.clone(), authenticated);
    conn.tls = sock.is_tls();
    conn.user = st.acl.get().map(|a| a.default_user());
    let mut out = ReplyBuf::new(Proto::Resp2);
    let mut rbuf = BytesMut::with_capacity(16 * 1024);
    let mut req = Request::default();
    // The requests `Group::plan` parsed ahead, run in order without parsing them again.
    let mut planned: Vec<Request> = Vec::new();
    let (mut planned_next, mut planned_len) = (0, 0);
    let mut paused = false;
    let mut paused_counted = false;
    // Input already buffered (left behind by a blocking command) is run before reading more.
    let mut pending = false;
    let mut clock = Clock::new();
    // PSYNC/SYNC hand the socket to replication once the loop ends.
    let mut to_replication = None;
    'conn: loop {
        if paused {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            paused = false;
        } else if pending {
            pending = false;
        } else {
            if rbuf.capacity() - rbuf.len() < 4096 {
                rbuf.reserve(16 * 1024);
            }
            // Another client created this one's mailbox (it redirects invalidations here): read
            // it from now on.
            if info.inbox_parked.load(Ordering::Relaxed) && conn.pubsub.is_none() {
                conn.inbox(&st.inboxes);
            }
            let r = if conn.monitor.is_none() && conn.pubsub.is_none() {
                sock.read_buf(&mut rbuf).await
            } else {
                tokio::select! {
                    r = sock.read_buf(&mut rbuf) => r,
                    line = recv_monitor(conn.monitor.as_mut()) => {
                        let Some(line) = line else { break 'conn };
                        out.raw(&line);
                        if let Some(rx) = conn.monitor.as_mut() {
                            while let Ok(more) = rx.try_recv() {
                                out.raw(&more);
                                if out.buf.len() >= FLUSH_AT {
                                    break;
                                }
                            }
                        }
                        if flush(&sock, &mut out, &ts, &info, &st).await.is_err() {
                            break 'conn;
                        }
                        continue 'conn;
                    }
                    msg = recv_pubsub(conn.pubsub.as_mut()) => {
                        let Some(msg) = msg else { break 'conn };
                        let mut n = msg.len();
                        out.raw(&msg);
                        if let Some(ps) = conn.pubsub.as_mut() {
                            while out.buf.len() < FLUSH_AT {
                                let Ok(m) = ps.rx.try_recv() else { break };
                                n += m.len();
                                out.raw(&m);
                            }
                            ps.mailbox.drained(n);
                        }
                        if info.is_killed() || flush(&sock, &mut out, &ts, &info, &st).await.is_err() {
                            break 'conn;
                        }
                        continue 'conn;
                    }
                }
            };
            let n = match r {
                Ok(0) | Err(_) => break 'conn,
                Ok(n) => n,
            };
            ThreadStats::add(&ts.net_in, n as u64);
        }
        // Messages published before these commands arrived go out before their replies.
        if let Some(ps) = conn.pubsub.as_mut() {
            let msgs = ps.drain();
            out.raw(&msgs);
        }
        if info.is_killed() {
            break;
        }
        let mut limits = Limits {
            max_bulk_len: st.config.hot.proto_max_bulk_len.load(Ordering::Relaxed),
            authenticated: conn.authenticated || !st.config.hot.requirepass_set.load(Ordering::Relaxed),
            ..Limits::default()
        };
        let mut pos = 0;
        let mut close = false;
        // With sync-replicas: where the batch's write replies are, and the offset after the last.
        let mut sync_writes: SmallVec<[(usize, usize); 8]> = SmallVec::new();
        let mut sync_target = 0;
        let sync_replicas = st.cluster.sync_replicas(st.config.hot.sync_replicas.load(Ordering::Relaxed));
        clock.anchor();
        // Pipeline atomicity (see `Group`): its latches are never held across an await.
        let mut group = Group::new(&st.keyspace, info.id);
        while pos < rbuf.len() {
            let parsed = if planned_next < planned_len {
                std::mem::swap(&mut req, &mut planned[planned_next]);
                planned_next += 1;
                Ok(true)
            } else {
                parse_request(&rbuf[pos..], &limits, &mut req)
            };
            match parsed {
                Ok(true) => {
                    let base = &rbuf[pos..];
                    let argv: SmallVec<[&[u8]; 8]> = (0..req.argc()).map(|i| req.arg(base, i)).collect();
                    if argv.is_empty() {
                        pos += req.consumed;
                        continue;
                    }
                    // A client killed meanwhile runs nothing more.
                    if info.is_killed() {
                        break 'conn;
                    }
                    // CLIENT LIST's qbuf counts the command being run, as Redis's query buffer.
                    info.qbuf.store(rbuf.len() - pos, Ordering::Relaxed);
                    let (woff, reply_at) = (conn.woff, out.buf.len());
                    if !group.active() && pos + req.consumed < rbuf.len() {
                        planned_len = group.plan(&table, &conn, &argv, &rbuf[pos + req.consumed..], &limits, &mut planned);
                        planned_next = 0;
                        // While another connection holds some of the group's slots, serve this
                        // worker's other connections (a few times; then wait for them).
                        let mut tries = 0;
                        while !group.try_acquire() && tries < GROUP_TRIES {
                            tries += 1;
                            tokio::task::yield_now().await;
                        }
                    }
                    let flow = execute_client(&st, &table, &mut conn, &mut out, &ts, &argv, &mut clock, &mut group);
                    // A client held back by CLIENT PAUSE counts as blocked until its command runs.
                    if paused_counted != matches!(flow, Flow::Paused) {
                        paused_counted = !paused_counted;
                        info.blocked.store(paused_counted, Ordering::Relaxed);
                        if paused_counted {
                            st.paused_clients.fetch_add(1, Ordering::Relaxed);
                        } else {
                            st.paused_clients.fetch_sub(1, Ordering::Relaxed);
                        }
                    }
                    match flow {
                        Flow::Continue => {}
                        Flow::Close => close = true,
                        Flow::Paused => {
                            paused = true;
                            break;
                        }
                    }
                    group.step();
                    // An AUTH earlier in the pipeline lifts the unauthenticated limits for the
                    // commands after it, as Redis parses each command after running the last.
                    limits.authenticated = conn.authenticated || !st.config.hot.requirepass_set.load(Ordering::Relaxed);
                    pos += req.consumed;
                    if sync_replicas > 0 && conn.woff != woff {
                        sync_writes.push((reply_at, out.buf.len()));
                        sync_target = conn.woff;
                    }
                    if close || conn.blocked.is_some() || conn.handoff.is_some() {
                        break;
                    }
                    let hard = st.config.hot.obuf_hard.load(Ordering::Relaxed);
                    if hard > 0 && out.buf.len() > hard {
                        tracing::warn!("Client {} scheduled to be closed ASAP for overcoming of output buffer limits.", info.addr);
                        st.stats.client_output_buffer_limit_disconnections.fetch_add(1, Ordering::Relaxed);
                        break 'conn;
                    }
                    if out.buf.len() >= FLUSH_AT && !sync_writes.is_empty() {
                        // The acknowledgements are awaited before these replies leave.
                        break;
                    }
                    if out.buf.len() >= FLUSH_AT {
                        group.release();
                        if flush_durable(&sock, &mut out, &ts, &info, &st).await.is_err() {
                            break 'conn;
                        }
                    }
                }
                Ok(false) => {
                    if req.consumed == 0 {
                        break;
                    }
                    pos += req.consumed;
                }
                Err(e) => {
                    // Redis replies the protocol error and closes the connection.
                    out.error(&format!("ERR {}", e.0));
                    tracing::debug!("Protocol error ({}) from client: {}", e.0, info.addr);
                    group.end();
                    let _ = flush_durable(&sock, &mut out, &ts, &info, &st).await;
                    break 'conn;
                }
            }
        }
        drop(group);
        planned_len = 0;
        rbuf.advance(pos);
        if rbuf.len() > st.config.hot.query_buffer_limit.load(Ordering::Relaxed) {
            tracing::warn!("Closing client that reached max query buffer length: {} (qbuf={})", info.addr, rbuf.len());
            st.stats.client_query_buffer_limit_disconnections.fetch_add(1, Ordering::Relaxed);
            break;
        }
        info.qbuf.store(rbuf.len(), Ordering::Relaxed);
        // maxmemory-clients: what this client's buffers hold now, and eviction when all are past it.
        let mem = rbuf.capacity() + out.buf.capacity();
        if mem != info.mem.load(Ordering::Relaxed) && st.clients.set_mem(&info, mem) {
            st.clients.evict();
            if info.is_killed() {
                break;
            }
        }
        // Synchronous acknowledgement: the write's reply leaves once enough replicas have it.
        if !sync_writes.is_empty() {
            let timeout = st.config.hot.sync_replicas_timeout.load(Ordering::Relaxed).max(0) as u64;
            let deadline = std::time::Instant::now() + std::time::Duration::from_millis(timeout);
            if (wait_acks(&st, sync_target, sync_replicas as usize, Some(deadline)).await as i64) < sync_replicas {
                // Not acknowledged in time: each write's reply becomes the error.
                let err = format!("-{SYNC_TIMEOUT}\r\n");
                for &(a, b) in sync_writes.iter().rev() {
                    out.buf.splice(a..b, err.bytes());
                }
            }
            pending = !rbuf.is_empty();
        }
        if !out.buf.is_empty() && flush_durable(&sock, &mut out, &ts, &info, &st).await.is_err() {
            break;
        }
        if close {
            break;
        }
        match conn.handoff.take() {
            Some(Handoff::Replica { psync }) => {
                to_replication = Some(psync);
                break;
            }
            Some(Handoff::WaitAcks { target, needed, deadline }) => {
                info.blocked.store(true, Ordering::Relaxed);
                let n = wait_acks(&st, target, needed, deadline).await;
                info.blocked.store(false, Ordering::Relaxed);
                out.int(n as i64);
                if flush_durable(&sock, &mut out, &ts, &info, &st).await.is_err() {
                    break;
                }
                pending = !rbuf.is_empty();
                continue;
            }
            None => {}
        }
        if let Some((w, deadline)) = conn.blocked.take() {
            let how = Wait { deadline, readonly_read: conn.cluster_readonly && !table.spec(w.cmd_id).is_write(), plain: !conn.tls };
            let Some(reply) = wait_blocked(&sock, &mut rbuf, &w, how, &st, &ts, &info).await else { break };
            // The slow log gets the command now, with the time it waited.
            if let Some((args, t0)) = conn.blocked_call.take() {
                let usec = t0.elapsed().as_micros() as i64;
                let slower = st.config.hot.slowlog_slower_than.load(Ordering::Relaxed);
                if slower >= 0 && usec >= slower {
                    let refs: Vec<&[u8]> = args.iter().map(|a| a.as_slice()).collect();
                    crate::commands::dispatch::slowlog(&st, &table, &conn, w.cmd_id, &refs, usec, crate::util::now_ms());
                }
            }
            // CLIENT UNBLOCK ... ERROR: a failed call, and an error in errorstats (errors of a
            // served command were counted where it was served).
            if reply.starts_with(b"-UNBLOCKED") {
                crate::commands::dispatch::count_error_reply(&st, &reply);
                ThreadStats::add(&ts.cmd[w.cmd_id].failed, 1);
            }
            out.raw(&reply);
            if flush_durable(&sock, &mut out, &ts, &info, &st).await.is_err() {
                break;
            }
            pending = !rbuf.is_empty();
            continue;
        }
        // Give back memory after a large request.
        if rbuf.is_empty() && rbuf.capacity() > 1024 * 1024 {
            rbuf = BytesMut::with_capacity(16 * 1024);
        }
    }
    if paused_counted {
        st.paused_clients.fetch_sub(1, Ordering::Relaxed);
    }
    if conn.monitor.is_some() {
        st.remove_monitor(info.id);
    }
    // A command that registered a waiter and then failed (a contained panic) leaves no trace.
    if let Some((w, _)) = conn.blocked.take() {
        if w.claim() {
            st.blocking.remove(&w);
        }
        info.blocked.store(false, Ordering::Relaxed);
    }
    crate::commands::multi::unwatch_all(&st, &mut conn);
    crate::commands::pubsub::unsubscribe_all(&st, &mut conn);
    st.tracking.disable(&info, &mut conn.tracking_prefixes);
    st.inboxes.detach(info.id);
    if let Some(psync) = to_replication {
        let conf = std::mem::take(&mut conn.replconf);
        if let Ok(stream) = sock.into_stream() {
            crate::replication::master::serve(stream, info.clone(), conf, psync, st.clone()).await;
        }
    }
    st.clients.unregister(info.id);
}

const SYNC_TIMEOUT: &str = "NOREPLICAS Not enough replicas acknowledged the write within sync-replicas-timeout (it was applied on this master, and a failover may lose it)";

/// Waits until `needed` replicas have acknowledged `target` (or the deadline passes) and returns
/// how many have.
async fn wait_acks(st: &State, target: u64, needed: usize, deadline: Option<std::time::Instant>) -> usize {
    loop {
        let notified = st.repl.acked.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let n = st.repl.acked(target);
        if n >= needed {
            return n;
        }
        crate::replication::ask_for_acks(st);
        match deadline {
            Some(d) => {
                if tokio::time::timeout_at(d.into(), notified).await.is_err() {
                    return st.repl.acked(target);
                }
            }
            None => notified.await,
        }
    }
}

/// The next MONITOR line, or never when the connection is not monitoring.
async fn recv_monitor(rx: Option<&mut tokio::sync::mpsc::Receiver<Vec<u8>>>) -> Option<Vec<u8>> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// The next Pub/Sub message, or never when the connection has no subscriptions.
async fn recv_pubsub(ps: Option<&mut crate::commands::PubSubConn>) -> Option<Vec<u8>> {
    match ps {
        Some(ps) => ps.rx.recv().await,
        None => std::future::pending().await,
    }
}

/// How a blocked client waits: its deadline (None: forever), and what its cluster check needs
/// to know of its connection.
#[derive(Clone, Copy)]
struct Wait {
    deadline: Option<std::time::Instant>,
    readonly_read: bool,
    plain: bool,
}

/// Waits until a blocked command is served, times out or is unblocked, and returns its reply;
/// meanwhile input is read into `rbuf` (run after the reply, in order). None when the
/// connection closed or was killed (the waiter is withdrawn, so it leaves no trace).
async fn wait_blocked(
    sock: &Socket,
    rbuf: &mut BytesMut,
    w: &Arc<Waiter>,
    how: Wait,
    st: &State,
    ts: &ThreadStats,
    info: &ClientInfo,
) -> Option<Vec<u8>> {
    let mut deadline = how.deadline;
    info.blocked.store(true, Ordering::Relaxed);
    // In cluster mode a blocked client is checked every 100 ms (Redis's client cron): its slot
    // may have moved or the cluster gone down.
    let cluster = st.cluster.enabled.load(Ordering::Relaxed);
    let mut check = tokio::time::interval(std::time::Duration::from_millis(100));
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let r = loop {
        if rbuf.capacity() - rbuf.len() < 4096 {
            rbuf.reserve(16 * 1024);
        }
        tokio::select! {
            r = w.wait() => break Some(r),
            _ = check.tick(), if cluster => {
                let err = w.keys.first().and_then(|k| st.cluster.blocked_redirect(k, how.readonly_read, how.plain));
                if let Some(err) = err {
                    if w.claim() {
                        st.blocking.remove(w);
                        break Some(format!("-{}\r\n", err).into_bytes());
                    }
                }
            }
            _ = tokio::time::sleep_until(deadline.unwrap_or_else(std::time::Instant::now).into()), if deadline.is_some() => {
                if w.claim() {
                    st.blocking.remove(w);
                    break Some(w.timeout_reply.to_vec());
                }
                // Served at the same moment: its reply is on its way.
                deadline = None;
            }
            r = sock.read_buf(rbuf) => match r {
                Ok(n) if n > 0 && !info.is_killed() && rbuf.len() <= st.config.hot.query_buffer_limit.load(Ordering::Relaxed) => {
                    ThreadStats::add(&ts.net_in, n as u64);
                }
                _ => {
                    if w.claim() {
                        st.blocking.remove(w);
                    }
                    break None;
                }
            }
        }
    };
    info.blocked.store(false, Ordering::Relaxed);
    r
}

/// `flush`, once the writes the replies acknowledge are in the AOF: on disk with appendfsync
/// always (the connection waits while other connections of this thread run, so one fsync covers
/// many of them), written to the file with everysec and no (a process crash loses nothing
/// acknowledged; the fsync follows the policy).
async fn flush_durable(sock: &Socket, out: &mut ReplyBuf, ts: &ThreadStats, info: &ClientInfo, st: &State) -> std::io::Result<()> {
    match crate::commands::persistence::aof_reply_target(st) {
        Some((target, true)) => st.aof.wait_synced(target).await,
        Some((target, false)) => st.aof.write_through(&st.journal, target),
        None => {}
    }
    flush(sock, out, ts, info, st).await
}

async fn flush(sock: &Socket, out: &mut ReplyBuf, ts: &ThreadStats, info: &ClientInfo, st: &State) -> std::io::Result<()> {
    info.obuf.store(out.buf.len(), Ordering::Relaxed);
    // The soft output limit: pending output above it for longer than its seconds closes the client.
    let soft = st.config.hot.obuf_soft.load(Ordering::Relaxed);
    let secs = st.config.hot.obuf_soft_secs.load(Ordering::Relaxed);
    let r = if soft > 0 && secs > 0 && out.buf.len() > soft {
        match tokio::time::timeout(std::time::Duration::from_secs(secs as u64), sock.write_all(&out.buf)).await {
            Ok(r) => r,
            Err(_) => {
                st.stats.client_output_buffer_limit_disconnections.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("Client {} scheduled to be closed ASAP for overcoming of output buffer limits.", info.addr);
                Err(std::io::Error::other("soft output buffer limit"))
            }
        }
    } else {
        sock.write_all(&out.buf).await
    };
    ThreadStats::add(&ts.net_out, out.buf.len() as u64);
    out.buf.clear();
    if out.buf.capacity() > 1024 * 1024 {
        out.buf.shrink_to(64 * 1024);
    }
    info.obuf.store(0, Ordering::Relaxed);
    r
}

const PROTECTED_MODE: &str = "-DENIED Redis is running in protected mode because protected mode is enabled and no password is set for the default user. In this mode connections are only accepted from the loopback interface. If you want to connect from external computers to Redis you may adopt one of the following solutions: 1) Just disable protected mode sending the command 'CONFIG SET protected-mode no' from the loopback interface by connecting to Redis from the same host the server is running, however MAKE SURE Redis is not publicly accessible from internet if you do so. Use CONFIG REWRITE to make this change permanent. 2) Alternatively you can just disable the protected mode by editing the Redis configuration file, and setting the protected mode option to 'no', and then restarting the server. 3) If you started the server manually just for testing, restart it with the '--protected-mode no' option. 4) Set up an authentication password for the default user. NOTE: You only need to do one of the above things in order for the server to start accepting connections from the outside.\r\n";

/// Redis's protected mode: `protected-mode yes` and a default user without a password refuse
/// clients that are not on the loopback interface.
fn protected_mode_refuses(st: &State, peer: &std::net::SocketAddr) -> bool {
    if peer.ip().is_loopback() || st.config.get("protected-mode").as_deref() != Some("yes") {
        return false;
    }
    let Some(acl) = st.acl.get() else { return false };
    let u = acl.default_user();
    let nopass = u.user.read().nopass;
    nopass
}

#[cfg(test)]
mod tests {
    #[test]
    fn protected_mode_refuses_only_remote_clients_of_a_passwordless_default_user() {
        let st = crate::state::State::new(crate::config::Config::new(), 0);
        let _ = st.acl.set(crate::state::acl::Acl::new(vec![("get".into(), "@read")]));
        let remote: std::net::SocketAddr = "10.1.2.3:5000".parse().unwrap();
        let local: std::net::SocketAddr = "127.0.0.5:5000".parse().unwrap();
        let local6: std::net::SocketAddr = "[::1]:5000".parse().unwrap();
        assert!(super::protected_mode_refuses(&st, &remote));
        assert!(!super::protected_mode_refuses(&st, &local) && !super::protected_mode_refuses(&st, &local6));
        st.config.set_validated("requirepass", "pw".into());
        st.sync_requirepass();
        assert!(!super::protected_mode_refuses(&st, &remote));
        st.config.set_validated("requirepass", "".into());
        st.sync_requirepass();
        st.config.set_validated("protected-mode", "no".into());
        assert!(!super::protected_mode_refuses(&st, &remote));
    }
}
