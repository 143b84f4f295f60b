//! The master side: a connection that sent PSYNC or SYNC becomes a replica's stream.
//!
//! Partial resync: when the replica's replication id is ours (or our previous one, up to where it
//! ended) and the journal's backlog still holds its offset, `+CONTINUE` and the stream from there.
//! Full resync: a fork-less snapshot (`commands::persistence::stream_snapshot`) whose instant
//! also places the replica's journal reader, so the stream continues exactly where the snapshot
//! is; sent EOF-marked as it is produced (`repl-diskless-sync yes` and a replica with `capa eof`)
//! or, otherwise, written to a file first and sent with its length.
//!
//! Then the live stream: the task reads the journal after its reader's position and writes it,
//! and reads the replica's `REPLCONF ACK <offset>` lines. A replica that falls
//! `client-output-buffer-limit replica` bytes behind, or stays silent past `repl-timeout`, is
//! dropped; it reconnects and resynchronizes.

use crate::commands::ReplConf;
use crate::journal::Reader;
use crate::net::Stream;
use crate::state::repl::ReplicaLink;
use crate::state::{ClientInfo, State};
use bytes::BytesMut;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Serves a replica on `stream` until it goes away. `psync` is PSYNC's (replid, offset), None
/// for the old SYNC.
pub async fn serve(stream: Stream, info: Arc<ClientInfo>, conf: ReplConf, psync: Option<(Vec<u8>, i64)>, st: Arc<State>) {
    info.repl_kind.store(crate::state::clients::KIND_REPLICA, Ordering::Relaxed);
    let ip = conf.ip.clone().unwrap_or_else(|| info.addr.rsplit_once(':').map_or(info.addr.clone(), |(h, _)| h.to_string()));
    let link = Arc::new(ReplicaLink {
        client_id: info.id,
        ip,
        port: conf.port,
        state: parking_lot::Mutex::new("wait_bgsave"),
        ack: 0.into(),
        last_ack_ms: crate::util::now_ms().into(),
        reader: Default::default(),
    });
    st.repl.replicas.lock().push(link.clone());
    let name = format!("{}:{}", link.ip, link.port);
    let r = run(stream, &info, &conf, psync, &st, &link, &name).await;
    if let Err(e) = r {
        tracing::info!("Connection with replica {} lost ({}).", name, e);
    }
    st.repl.remove_replica(info.id);
}

async fn run(
    mut stream: Stream,
    info: &ClientInfo,
    conf: &ReplConf,
    psync: Option<(Vec<u8>, i64)>,
    st: &Arc<State>,
    link: &Arc<ReplicaLink>,
    name: &str,
) -> std::io::Result<()> {
    let reader = match psync.as_ref().and_then(|(id, off)| try_partial(st, id, *off)) {
        Some(r) => {
            let replid = st.repl.ids.lock().replid.clone();
            let line = if conf.capa_psync2 { format!("+CONTINUE {replid}\r\n") } else { "+CONTINUE\r\n".to_string() };
            send(&mut stream, line.as_bytes()).await?;
            st.repl.sync_partial_ok.fetch_add(1, Ordering::Relaxed);
            tracing::info!(
                "Partial resynchronization request from {} accepted. Sending {} bytes of backlog starting from offset {}.",
                name,
                st.journal.offset() - r.pos(),
                r.pos() + 1
            );
            *link.state.lock() = "online";
            r
        }
        None => {
            if let Some((id, _)) = psync.as_ref().filter(|(id, _)| id.as_slice() != b"?") {
                st.repl.sync_partial_err.fetch_add(1, Ordering::Relaxed);
                tracing::info!(
                    "Partial resynchronization not accepted ({}), full resync requested by {}",
                    String::from_utf8_lossy(id),
                    name
                );
            } else {
                tracing::info!("Replica {} asks for synchronization", name);
            }
            st.repl.sync_full.fetch_add(1, Ordering::Relaxed);
            full_resync(&mut stream, conf, psync.is_some(), st, link, name).await?
        }
    };
    st.repl.history.store(true, Ordering::Release);
    *link.reader.lock() = Some(reader.clone());
    feed(stream, info, reader, st, link).await
}

/// The reader for a partial resync, when `replid` and `offset` (PSYNC's: the next byte wanted,
/// counted from 1) are in our history and the backlog.
fn try_partial(st: &State, replid: &[u8], offset: i64) -> Option<Arc<Reader>> {
    if offset < 1 {
        return None;
    }
    let ids = st.repl.ids.lock().clone();
    let ours = replid == ids.replid.as_bytes() || (replid == ids.replid2.as_bytes() && offset <= ids.second_offset);
    if !ours || !st.journal.active() {
        return None;
    }
    st.journal.reader(offset as u64 - 1)
}

/// Sends a snapshot and returns the reader placed at its instant.
async fn full_resync(
    stream: &mut Stream,
    conf: &ReplConf,
    psync: bool,
    st: &Arc<State>,
    link: &Arc<ReplicaLink>,
    name: &str,
) -> std::io::Result<Arc<Reader>> {
    let diskless = conf.capa_eof && st.config.get("repl-diskless-sync").as_deref() != Some("no");
    if diskless {
        let delay = st.config.get_int("repl-diskless-sync-delay").max(0) as u64;
        if delay > 0 {
            tracing::info!("Delay next BGSAVE for diskless SYNC");
            tokio::time::sleep(Duration::from_secs(delay)).await;
        }
    }
    // The snapshot runs on its own thread and hands its chunks over a bounded channel, so a slow
    // replica slows the snapshot rather than filling memory.
    let (start_tx, start_rx) = tokio::sync::oneshot::channel::<(Arc<Reader>, u64, String)>();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(16);
    let st2 = st.clone();
    let tmp = (!diskless).then(|| std::path::PathBuf::from(format!("temp-repl-{}-{}.rdb", std::process::id(), link.client_id)));
    let tmp2 = tmp.clone();
    let worker = std::thread::Builder::new().name("repl-snapshot".into()).spawn(move || -> Result<u64, String> {
        let mut start_tx = Some(start_tx);
        let mut at_start = || {
            let reader = st2.journal.reader_at_end();
            let offset = st2.journal.offset();
            let replid = st2.repl.ids.lock().replid.clone();
            if let Some(tx) = start_tx.take() {
                let _ = tx.send((reader, offset, replid));
            }
        };
        let saved = match &tmp2 {
            Some(path) => {
                let f = std::fs::File::create(path).map_err(|e| e.to_string())?;
                let mut w = std::io::BufWriter::with_capacity(1 << 16, f);
                let s = crate::commands::persistence::stream_snapshot(&st2, &mut w, &mut at_start).map_err(|e| e.to_string())?;
                std::io::Write::flush(&mut w).map_err(|e| e.to_string())?;
                s
            }
            None => {
                let mut w = ChannelWriter { tx, buf: Vec::with_capacity(CHUNK) };
                let s = crate::commands::persistence::stream_snapshot(&st2, &mut w, &mut at_start).map_err(|e| e.to_string())?;
                w.flush_chunk().map_err(|e| e.to_string())?;
                s
            }
        };
        Ok(saved.bytes)
    })?;
    let started = start_rx.await.map_err(|_| std::io::Error::other("the snapshot failed to start"))?;
    let (reader, offset, replid) = started;
    tracing::info!("Starting BGSAVE for SYNC with target: {}", if diskless { "replicas sockets" } else { "disk" });
    if psync {
        send(stream, format!("+FULLRESYNC {replid} {offset}\r\n").as_bytes()).await?;
    }
    *link.state.lock() = "send_bulk";
    if diskless {
        let mark = crate::util::random_hex40();
        send(stream, format!("$EOF:{mark}\r\n").as_bytes()).await?;
        while let Some(chunk) = rx.recv().await {
            send(stream, &chunk).await?;
        }
        let r = worker.join().unwrap_or_else(|_| Err("the snapshot thread panicked".into()));
        r.map_err(std::io::Error::other)?;
        send(stream, mark.as_bytes()).await?;
    } else {
        // The file is written first: keep the replica's link alive with newlines meanwhile.
        let worker = tokio::task::spawn_blocking(move || worker.join().unwrap_or_else(|_| Err("the snapshot thread panicked".into())));
        tokio::pin!(worker);
        let r = loop {
            tokio::select! {
                r = &mut worker => break r.unwrap_or_else(|e| Err(e.to_string())),
                _ = tokio::time::sleep(Duration::from_secs(1)) => send(stream, b"\n").await?,
            }
        };
        let path = tmp.expect("disk mode has a file");
        let sent = async {
            let len = r.map_err(std::io::Error::other)?;
            send(stream, format!("${len}\r\n").as_bytes()).await?;
            // A local file: reading it a chunk at a time is quick next to the socket.
            let mut f = std::fs::File::open(&path)?;
            let mut chunk = vec![0u8; CHUNK];
            loop {
                let n = std::io::Read::read(&mut f, &mut chunk)?;
                if n == 0 {
                    break;
                }
                send(stream, &chunk[..n]).await?;
            }
            Ok::<_, std::io::Error>(())
        }
        .await;
        let _ = std::fs::remove_file(&path);
        sent?;
        // The replica knows where the payload ends: the stream can follow at once.
        *link.state.lock() = "online";
    }
    tracing::info!("Synchronization with replica {} succeeded", name);
    Ok(reader)
}

const CHUNK: usize = 64 * 1024;

/// The snapshot thread's end of the channel to the replica's task.
struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<Vec<u8>>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    fn flush_chunk(&mut self) -> std::io::Result<()> {
        if !self.buf.is_empty() {
            let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
            self.tx.blocking_send(chunk).map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "replica gone"))?;
        }
        Ok(())
    }
}

impl std::io::Write for ChannelWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(b);
        if self.buf.len() >= CHUNK {
            self.flush_chunk()?;
        }
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The live stream: journal bytes out, acknowledgements in.
async fn feed(stream: Stream, info: &ClientInfo, reader: Arc<Reader>, st: &State, link: &ReplicaLink) -> std::io::Result<()> {
    match stream {
        // Plain TCP splits without a lock; TLS shares one session between the halves.
        Stream::Plain(s) => {
            let (rd, wr) = s.into_split();
            feed_io(rd, wr, info, reader, st, link).await
        }
        s => {
            let (rd, wr) = tokio::io::split(s);
            feed_io(rd, wr, info, reader, st, link).await
        }
    }
}

/// Writes and flushes (a TLS stream keeps its records until flushed).
async fn send<W: AsyncWrite + Unpin>(w: &mut W, data: &[u8]) -> std::io::Result<()> {
    w.write_all(data).await?;
    w.flush().await
}

async fn feed_io<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(
    mut rd: R,
    mut wr: W,
    info: &ClientInfo,
    reader: Arc<Reader>,
    st: &State,
    link: &ReplicaLink,
) -> std::io::Result<()> {
    let mut out = Vec::with_capacity(CHUNK);
    let mut inbuf = BytesMut::with_capacity(4096);
    let timeout_ms = || st.config.get_int("repl-timeout").max(1) * 1000;
    let mut last_read_ms = crate::util::now_ms();
    loop {
        if info.is_killed() {
            return Err(std::io::Error::other("killed"));
        }
        // After an EOF-marked payload the stream waits for the replica's first ACK (it has
        // loaded the payload), as Redis's repl_put_online_on_ack.
        let waiting = *link.state.lock() != "online";
        out.clear();
        let n = if waiting { 0 } else { st.journal.read(&reader, &mut out, 1 << 20).map_err(|_| overrun(st, info))? };
        if waiting && reader.dropped() {
            return Err(overrun(st, info));
        }
        if n > 0 {
            // A replica that stops reading is dropped once it falls past the output limit (the
            // journal drops its reader), or when repl-timeout passes with the write stuck.
            let dropped = async {
                while !reader.dropped() {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            };
            tokio::select! {
                r = tokio::time::timeout(Duration::from_millis(timeout_ms() as u64), send(&mut wr, &out)) => match r {
                    Ok(r) => r?,
                    Err(_) => return Err(std::io::Error::other("timeout writing to the replica")),
                },
                _ = dropped => {}
            }
            if reader.dropped() {
                return Err(overrun(st, info));
            }
            // Under a steady stream, acknowledgements are read between writes: at once while a
            // GETACK waits for its answer (WAIT, sync-replicas), else every 100 ms.
            let now = crate::util::now_ms();
            if st.repl.getack_pending.load(Ordering::Relaxed) || now - last_read_ms >= 100 {
                last_read_ms = now;
                inbuf.reserve(4096);
                // A zero timeout polls the read once: what has arrived, without waiting.
                match tokio::time::timeout(Duration::ZERO, rd.read_buf(&mut inbuf)).await {
                    Ok(Ok(0)) => return Err(std::io::Error::other("closed by the replica")),
                    Ok(Ok(_)) => read_acks(&mut inbuf, st, info, link),
                    Err(_) => {}
                    Ok(Err(e)) => return Err(e),
                }
            }
            continue;
        }
        let pos = reader.pos();
        tokio::select! {
            _ = st.journal.wait_past(pos), if !waiting => {}
            r = rd.read_buf(&mut inbuf) => {
                match r {
                    Ok(0) => return Err(std::io::Error::other("closed by the replica")),
                    Ok(_) => read_acks(&mut inbuf, st, info, link),
                    Err(e) => return Err(e),
                }
            }
            _ = tokio::time::sleep(Duration::from_secs(1)) => {
                if crate::util::now_ms() - link.last_ack_ms.load(Ordering::Relaxed) > timeout_ms() {
                    return Err(std::io::Error::other("timeout: no REPLCONF ACK"));
                }
            }
        }
    }
}

/// The replica fell behind past `client-output-buffer-limit replica` (or the stream was reset).
fn overrun(st: &State, info: &ClientInfo) -> std::io::Error {
    st.stats.client_output_buffer_limit_disconnections.fetch_add(1, Ordering::Relaxed);
    tracing::warn!("Client id={} addr={} scheduled to be closed ASAP for overcoming of output buffer limits.", info.id, info.addr);
    std::io::Error::other("it fell behind past client-output-buffer-limit replica, or the stream was reset")
}

/// Handles what the replica sent: `REPLCONF ACK <offset>` (others are ignored).
fn read_acks(inbuf: &mut BytesMut, st: &State, info: &ClientInfo, link: &ReplicaLink) {
    let mut req = resp::Request::default();
    let limits = resp::Limits { authenticated: true, ..Default::default() };
    let mut pos = 0;
    let mut acked = false;
    while let Ok(true) = resp::parse_request(&inbuf[pos..], &limits, &mut req) {
        let base = &inbuf[pos..];
        if req.argc() >= 3 && crate::commands::eq(req.arg(base, 0), "replconf") && crate::commands::eq(req.arg(base, 1), "ack") {
            if let Some(off) = crate::util::parse_i64(req.arg(base, 2)) {
                link.ack.fetch_max(off.max(0) as u64, Ordering::AcqRel);
                link.last_ack_ms.store(crate::util::now_ms(), Ordering::Relaxed);
                acked = true;
            }
        }
        pos += req.consumed;
    }
    bytes::Buf::advance(inbuf, pos);
    if inbuf.len() > 64 * 1024 {
        inbuf.clear();
    }
    if acked {
        st.repl.getack_pending.store(false, Ordering::Release);
        *link.state.lock() = "online";
        info.last_interaction_ms.store(crate::util::now_ms(), Ordering::Relaxed);
        st.repl.acked.notify_waiters();
    }
}
