//! The replica side: the link to the master, on a thread of its own (a current-thread runtime).
//!
//! Redis's handshake (`PING`, `AUTH` with masterauth/masteruser, `REPLCONF listening-port`,
//! `REPLCONF capa eof capa psync2`, `PSYNC <replid> <offset+1>` or `PSYNC ? -1`), then either
//! `+FULLRESYNC` (the RDB payload, EOF-marked or with its length, loaded into an emptied keyspace)
//! or `+CONTINUE [new id]` (PSYNC2: the old id becomes our second one). Then the stream: every
//! command runs through dispatch as the master client (no reply, no expiry of its own: see
//! `keyspace::Expiry`), and its bytes go to our journal as they came (`Journal::append_raw`), so
//! our offset is the master's and our replicas get the master's stream. `REPLCONF ACK <offset>`
//! goes back every second and on `REPLCONF GETACK`. A broken link reconnects after a second and
//! continues with a partial resync when the master's backlog still covers us.

use crate::commands::dispatch::{execute, Flow};
use crate::commands::{CommandTable, ConnState};
use crate::net::Stream;
use crate::state::repl::LinkState;
use crate::state::{ClientInfo, State, ThreadStats};
use bytes::{Buf, BytesMut};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

type Res<T> = Result<T, String>;

/// Starts the link task for generation `gen` (it ends when the generation moves on).
pub fn start(st: Arc<State>, table: Arc<CommandTable>, gen: u64) {
    let spawned = std::thread::Builder::new().name("replica-link".into()).stack_size(crate::util::COMMAND_THREAD_STACK).spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
        rt.block_on(run(st, table, gen));
    });
    if let Err(e) = spawned {
        tracing::warn!("Can't start the replication link: {e}");
    }
}

fn current(st: &State, gen: u64) -> bool {
    st.repl.link_gen.load(Ordering::Acquire) == gen
}

fn set_state(st: &State, gen: u64, f: impl FnOnce(&mut crate::state::repl::MasterLink)) {
    if current(st, gen) {
        if let Some(m) = st.repl.master.lock().as_mut() {
            f(m);
        }
    }
}

/// Stats of the link's commands, one set for the process (links come and go).
fn thread_stats(st: &State, table: &CommandTable) -> Arc<ThreadStats> {
    static TS: std::sync::OnceLock<Arc<ThreadStats>> = std::sync::OnceLock::new();
    TS.get_or_init(|| {
        let ts = Arc::new(ThreadStats::new(table.len()));
        st.stats.register_thread(ts.clone());
        ts
    })
    .clone()
}

/// The master client's state, kept across reconnections (its database and an open MULTI belong
/// to the stream, which a partial resync continues).
struct Applier {
    conn: Option<ConnState>,
}

async fn run(st: Arc<State>, table: Arc<CommandTable>, gen: u64) {
    let ts = thread_stats(&st, &table);
    let mut applier = Applier { conn: None };
    while current(&st, gen) {
        let Some((host, port)) = st.repl.master.lock().as_ref().map(|m| (m.host.clone(), m.port)) else { return };
        tracing::info!("Connecting to MASTER {}:{}", host, port);
        let r = session(&st, &table, &ts, gen, &host, port, &mut applier).await;
        if !current(&st, gen) {
            return;
        }
        if let Err(e) = r {
            tracing::warn!("{}", e);
        }
        set_state(&st, gen, |m| {
            if m.state == LinkState::Connected || m.down_since_ms == 0 {
                m.down_since_ms = crate::util::now_ms();
            }
            m.state = LinkState::Connect;
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Reads one line (without its CRLF) from the master, buffering what follows.
async fn read_line(s: &mut Stream, buf: &mut BytesMut, timeout: Duration) -> Res<String> {
    loop {
        if let Some(p) = buf.iter().position(|&c| c == b'\n') {
            let line = String::from_utf8_lossy(&buf[..p]).trim_end_matches('\r').to_string();
            buf.advance(p + 1);
            return Ok(line);
        }
        if buf.len() > 64 * 1024 {
            return Err("MASTER sent a line too long".into());
        }
        read_more(s, buf, timeout).await?;
    }
}

async fn read_more(s: &mut Stream, buf: &mut BytesMut, timeout: Duration) -> Res<usize> {
    buf.reserve(64 * 1024);
    match tokio::time::timeout(timeout, s.read_buf(buf)).await {
        Err(_) => Err("Timeout connecting to the MASTER...".into()),
        Ok(Err(e)) => Err(format!("Error reading from MASTER: {e}")),
        Ok(Ok(0)) => Err("MASTER closed the connection".into()),
        Ok(Ok(n)) => Ok(n),
    }
}

async fn send(s: &mut Stream, args: &[&[u8]]) -> Res<()> {
    let mut b = Vec::new();
    resp::encode_command(&mut b, args);
    s.write_all(&b).await.map_err(|e| format!("Error writing to MASTER: {e}"))?;
    s.flush().await.map_err(|e| format!("Error writing to MASTER: {e}"))
}

async fn command(s: &mut Stream, buf: &mut BytesMut, timeout: Duration, args: &[&[u8]]) -> Res<String> {
    send(s, args).await?;
    read_line(s, buf, timeout).await
}

#[allow(clippy::too_many_arguments)]
async fn session(
    st: &Arc<State>,
    table: &CommandTable,
    ts: &ThreadStats,
    gen: u64,
    host: &str,
    port: u16,
    applier: &mut Applier,
) -> Res<()> {
    let timeout = Duration::from_secs(st.config.get_int("repl-timeout").max(1) as u64);
    set_state(st, gen, |m| m.state = LinkState::Connecting);
    // tls-replication: the link to the master is TLS, checked against tls-ca-cert-file.
    let tls = st.tls_if("tls-replication");
    let mut s = match crate::net::connect(host, port, tls.as_deref(), timeout).await {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::TimedOut => return Err("Timeout connecting to the MASTER...".into()),
        Err(e) => return Err(format!("Error condition on socket for SYNC: {e}")),
    };
    tracing::info!("MASTER <-> REPLICA sync started");
    set_state(st, gen, |m| m.state = LinkState::Handshake);
    let mut buf = BytesMut::with_capacity(64 * 1024);

    // PING: any reply but an error other than an authentication one will do.
    let pong = command(&mut s, &mut buf, timeout, &[b"PING"]).await?;
    if pong.starts_with('-')
        && !(pong.starts_with("-NOAUTH") || pong.starts_with("-NOPERM") || pong.starts_with("-ERR operation not permitted"))
    {
        return Err(format!("Error reply to PING from master: '{pong}'"));
    }
    tracing::info!("Master replied to PING, replication can continue...");
    let auth = st.config.get("masterauth").unwrap_or_default();
    if !auth.is_empty() {
        let user = st.config.get("masteruser").unwrap_or_default();
        let r = if user.is_empty() {
            command(&mut s, &mut buf, timeout, &[b"AUTH", auth.as_bytes()]).await?
        } else {
            command(&mut s, &mut buf, timeout, &[b"AUTH", user.as_bytes(), auth.as_bytes()]).await?
        };
        if r.starts_with('-') {
            return Err(format!("Unable to AUTH to MASTER: {r}"));
        }
    }
    let announce_port = match st.config.get_int("replica-announce-port") {
        0 if tls.is_some() => st.config.get_int("tls-port"),
        0 => st.tcp_port as i64,
        p => p,
    };
    let r = command(&mut s, &mut buf, timeout, &[b"REPLCONF", b"listening-port", announce_port.to_string().as_bytes()]).await?;
    if r.starts_with('-') {
        tracing::info!("(Non critical) Master does not understand REPLCONF listening-port: {r}");
    }
    let ip = st.config.get("replica-announce-ip").unwrap_or_default();
    if !ip.is_empty() {
        let r = command(&mut s, &mut buf, timeout, &[b"REPLCONF", b"ip-address", ip.as_bytes()]).await?;
        if r.starts_with('-') {
            tracing::info!("(Non critical) Master does not understand REPLCONF ip-address: {r}");
        }
    }
    let r = command(&mut s, &mut buf, timeout, &[b"REPLCONF", b"capa", b"eof", b"capa", b"psync2"]).await?;
    if r.starts_with('-') {
        tracing::info!("(Non critical) Master does not understand REPLCONF capa: {r}");
    }

    // PSYNC with our history, or ask for a full resync.
    let (replid, offset) = (st.repl.ids.lock().replid.clone(), st.journal.offset());
    let history = st.repl.history.load(Ordering::Acquire);
    let failover = st.repl.failover_state.load(Ordering::Acquire) == crate::state::repl::FAILOVER_IN_PROGRESS;
    let reply = if failover {
        // FAILOVER: the target promotes itself on this PSYNC, then continues us from our offset.
        let r =
            command(&mut s, &mut buf, timeout, &[b"PSYNC", replid.as_bytes(), (offset + 1).to_string().as_bytes(), b"FAILOVER"]).await?;
        super::failover_psync_done(st, !r.starts_with('-'));
        if r.starts_with('-') {
            return Err(format!("The target refused the failover: {r}"));
        }
        r
    } else if history {
        tracing::info!("Trying a partial resynchronization (request {}:{}).", replid, offset + 1);
        command(&mut s, &mut buf, timeout, &[b"PSYNC", replid.as_bytes(), (offset + 1).to_string().as_bytes()]).await?
    } else {
        tracing::info!("Partial resynchronization not possible (no cached master)");
        command(&mut s, &mut buf, timeout, &[b"PSYNC", b"?", b"-1"]).await?
    };
    let mut reply = reply;
    while reply.is_empty() {
        reply = read_line(&mut s, &mut buf, timeout).await?;
    }
    if let Some(rest) = reply.strip_prefix("+FULLRESYNC ") {
        let mut parts = rest.split_whitespace();
        let (Some(id), Some(off)) = (parts.next(), parts.next().and_then(|o| o.parse::<u64>().ok())) else {
            return Err(format!("Master replied with wrong +FULLRESYNC syntax: {reply}"));
        };
        tracing::info!("Full resync from master: {}:{}", id, off);
        let payload = receive_payload(st, gen, &mut s, &mut buf, timeout).await?;
        load(st, &payload, id, off)?;
        applier.conn = None;
    } else if let Some(rest) = reply.strip_prefix("+CONTINUE") {
        let new_id = rest.trim();
        tracing::info!("Successful partial resynchronization with master.");
        if !new_id.is_empty() && new_id != replid {
            // PSYNC2: our master's history continues under a new id.
            let mut ids = st.repl.ids.lock();
            ids.replid2 = std::mem::replace(&mut ids.replid, new_id.to_string());
            ids.second_offset = offset as i64 + 1;
            drop(ids);
            tracing::info!("Master replication ID changed to {}", new_id);
            st.journal.drop_readers();
        }
        tracing::info!("MASTER <-> REPLICA sync: Master accepted a Partial Resynchronization.");
    } else if reply.starts_with("-NOMASTERLINK") || reply.starts_with("-LOADING") {
        return Err(format!("Master is currently unable to PSYNC but should be in the future: {reply}"));
    } else {
        return Err(format!("Unexpected reply to PSYNC from master: {reply}"));
    }
    st.repl.history.store(true, Ordering::Release);
    set_state(st, gen, |m| {
        m.state = LinkState::Connected;
        m.synced = true;
        m.last_io_ms = crate::util::now_ms();
    });
    stream(st, table, ts, gen, s, buf, applier).await
}

/// Reads the RDB payload after +FULLRESYNC: `$EOF:<mark>` ... `<mark>`, or `$<len>` and the bytes.
/// Newlines before it are the master's keepalives.
async fn receive_payload(st: &State, gen: u64, s: &mut Stream, buf: &mut BytesMut, timeout: Duration) -> Res<Vec<u8>> {
    set_state(st, gen, |m| {
        m.state = LinkState::Transfer;
        m.sync_read = 0;
        m.sync_total = -1;
        m.last_io_ms = crate::util::now_ms();
    });
    let mut head = String::new();
    while head.is_empty() {
        head = read_line(s, buf, timeout).await?;
    }
    if head.starts_with('-') {
        return Err(format!("MASTER aborted replication with an error: {head}"));
    }
    let Some(spec) = head.strip_prefix('$') else {
        return Err(format!(
            "Bad protocol from MASTER, the first byte is not '$' (we received '{head}'), are you sure the host and port are right?"
        ));
    };
    let mut payload = Vec::new();
    if let Some(mark) = spec.strip_prefix("EOF:") {
        let mark = mark.as_bytes().to_vec();
        if mark.len() != 40 {
            return Err("Bad EOF mark from MASTER".into());
        }
        tracing::info!("MASTER <-> REPLICA sync: receiving streamed RDB from master with EOF to disk");
        loop {
            let from = payload.len().saturating_sub(39);
            payload.extend_from_slice(buf);
            buf.clear();
            // The mark ends the payload; whatever follows it is already the stream.
            if let Some(p) = payload[from..].windows(40).position(|w| w == mark.as_slice()) {
                let end = from + p;
                buf.extend_from_slice(&payload[end + 40..]);
                payload.truncate(end);
                break;
            }
            read_more(s, buf, timeout).await?;
            let n = payload.len() as i64 + buf.len() as i64;
            set_state(st, gen, |m| {
                m.sync_read = n;
                m.last_io_ms = crate::util::now_ms();
            });
            if !current(st, gen) {
                return Err("replication was reconfigured during the transfer".into());
            }
        }
    } else {
        let len: usize = spec.parse().map_err(|_| format!("Bad payload length from MASTER: {head}"))?;
        tracing::info!("MASTER <-> REPLICA sync: receiving {} bytes from master to disk", len);
        set_state(st, gen, |m| m.sync_total = len as i64);
        while buf.len() < len {
            read_more(s, buf, timeout).await?;
            let n = buf.len().min(len) as i64;
            set_state(st, gen, |m| {
                m.sync_read = n;
                m.last_io_ms = crate::util::now_ms();
            });
            if !current(st, gen) {
                return Err("replication was reconfigured during the transfer".into());
            }
        }
        payload = buf.split_to(len).to_vec();
    }
    Ok(payload)
}

/// Replaces the dataset with the master's snapshot and continues its stream at `offset`.
fn load(st: &State, payload: &[u8], replid: &str, offset: u64) -> Res<()> {
    // repl-diskless-load disabled (the default): the payload becomes our dbfilename first, as
    // Redis's disk-based load leaves it; otherwise it is loaded straight from memory.
    if st.config.get("repl-diskless-load").is_none_or(|v| v == "disabled") {
        let path = std::path::PathBuf::from(st.config.get("dbfilename").unwrap_or_else(|| "dump.rdb".into()));
        let tmp = path.with_file_name(format!("temp-{}.{}.rdb", crate::util::now_ms(), std::process::id()));
        rdb::file::write_atomically(&path, &tmp, |f| std::io::Write::write_all(f, payload))
            .map_err(|e| format!("Failed trying to rename the temp DB into {}: {e}", path.display()))?;
    }
    // Clients get -LOADING until the new dataset is whole (commands already running finish
    // first: they hold their stripes, and emptying takes every stripe).
    st.repl.loading.store(true, Ordering::Release);
    tracing::info!("MASTER <-> REPLICA sync: Flushing old data");
    crate::commands::persistence::empty_keyspace(st);
    tracing::info!("MASTER <-> REPLICA sync: Loading DB in memory");
    let loaded = crate::commands::persistence::load_bytes(st, payload, crate::commands::scripting::RestorePolicy::Flush);
    st.repl.loading.store(false, Ordering::Release);
    let loaded = loaded.map_err(|e| format!("Failed trying to load the MASTER synchronization DB from socket{e}"))?;
    {
        let mut ids = st.repl.ids.lock();
        ids.replid = replid.to_string();
        ids.replid2 = "0".repeat(40);
        ids.second_offset = -1;
    }
    st.journal.reset(offset);
    tracing::info!("Done loading RDB, keys loaded: {}, keys expired: {}.", loaded.keys, loaded.expired);
    tracing::info!("MASTER <-> REPLICA sync: Finished with success");
    // The AOF starts over from the new dataset.
    if st.aof.enabled.load(Ordering::Acquire) {
        if let Some(arc) = st.arc() {
            let _ = crate::commands::persistence::start_aof_rewrite(&arc);
        }
    }
    Ok(())
}

/// Applies the master's stream until the link breaks or replication is reconfigured.
#[allow(clippy::too_many_arguments)]
async fn stream(
    st: &Arc<State>,
    table: &CommandTable,
    ts: &ThreadStats,
    gen: u64,
    mut s: Stream,
    mut buf: BytesMut,
    applier: &mut Applier,
) -> Res<()> {
    let peer = s.tcp().peer_addr().map(|a| a.to_string()).unwrap_or_default();
    let now = crate::util::now_ms();
    let info = Arc::new(ClientInfo {
        id: st.clients.next_id(),
        addr: peer,
        laddr: s.tcp().local_addr().map(|a| a.to_string()).unwrap_or_default(),
        fd: std::os::fd::AsRawFd::as_raw_fd(s.tcp()),
        created_ms: now,
        last_interaction_ms: now.into(),
        resp: 2.into(),
        user: parking_lot::Mutex::new("default".into()),
        repl_kind: crate::state::clients::KIND_MASTER.into(),
        ..Default::default()
    });
    st.clients.register(info.clone());
    let conn = applier.conn.get_or_insert_with(|| {
        let mut c = ConnState::new(info.clone(), true);
        c.is_master = true;
        c
    });
    conn.info = info.clone();
    let r = apply_loop(st, table, ts, gen, &mut s, &mut buf, conn, &info).await;
    st.clients.unregister(info.id);
    r
}

#[allow(clippy::too_many_arguments)]
async fn apply_loop(
    st: &State,
    table: &CommandTable,
    ts: &ThreadStats,
    gen: u64,
    s: &mut Stream,
    buf: &mut BytesMut,
    conn: &mut ConnState,
    info: &ClientInfo,
) -> Res<()> {
    let timeout_ms = st.config.get_int("repl-timeout").max(1) * 1000;
    let mut out = resp::ReplyBuf::new(resp::Proto::Resp2);
    let mut req = resp::Request::default();
    let limits = resp::Limits { authenticated: true, max_bulk_len: i64::MAX, ..Default::default() };
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut last_io = crate::util::now_ms();
    send_ack(s, st).await?;
    loop {
        // Apply every complete command in the buffer.
        let mut pos = 0;
        let mut ack_now = false;
        while pos < buf.len() {
            // REPLICAOF NO ONE (or another master) ends the link before the next command: bytes
            // the old master sent after it must not be applied (Redis frees the link at once).
            if !current(st, gen) {
                return Ok(());
            }
            match resp::parse_request(&buf[pos..], &limits, &mut req) {
                Ok(true) => {
                    let base = &buf[pos..];
                    let argv: smallvec::SmallVec<[&[u8]; 8]> = (0..req.argc()).map(|i| req.arg(base, i)).collect();
                    let bytes = &base[..req.consumed];
                    if argv.is_empty() {
                    } else if argv.len() >= 2 && crate::commands::eq(argv[0], "replconf") && crate::commands::eq(argv[1], "getack") {
                        ack_now = true;
                    } else {
                        loop {
                            out.buf.clear();
                            match execute(st, table, conn, &mut out, ts, &argv) {
                                Flow::Paused => std::thread::sleep(Duration::from_millis(10)),
                                _ => break,
                            }
                        }
                    }
                    st.journal.append_raw(bytes);
                    pos += req.consumed;
                }
                Ok(false) => {
                    if req.consumed == 0 {
                        break;
                    }
                    st.journal.append_raw(&buf[pos..pos + req.consumed]);
                    pos += req.consumed;
                }
                Err(e) => return Err(format!("Protocol error from MASTER: {}", e.0)),
            }
        }
        buf.advance(pos);
        if ack_now {
            send_ack(s, st).await?;
        }
        if !current(st, gen) {
            return Ok(());
        }
        tokio::select! {
            r = s.read_buf(buf) => match r {
                Ok(0) => return Err("Connection with master lost.".into()),
                Ok(_) => {
                    last_io = crate::util::now_ms();
                    info.last_interaction_ms.store(last_io, Ordering::Relaxed);
                    set_state(st, gen, |m| m.last_io_ms = last_io);
                }
                Err(e) => return Err(format!("Connection with master lost: {e}")),
            },
            _ = tick.tick() => {
                if !current(st, gen) {
                    return Ok(());
                }
                if info.is_killed() {
                    return Err("Connection with master lost (killed).".into());
                }
                if crate::util::now_ms() - last_io > timeout_ms {
                    return Err("MASTER timeout: no data nor PING received...".into());
                }
                send_ack(s, st).await?;
            }
        }
        if buf.capacity() - buf.len() < 16 * 1024 {
            buf.reserve(64 * 1024);
        }
    }
}

async fn send_ack(s: &mut Stream, st: &State) -> Res<()> {
    send(s, &[b"REPLCONF", b"ACK", st.journal.offset().to_string().as_bytes()]).await
}
