//! Redis Cluster (cluster.c): 16384 hash slots over several masters, each with replicas; the
//! cluster bus in Redis's own format; failure detection, replica elections, resharding.
//!
//! - `bus`: the `clusterMsg` wire format.
//! - `node`: the cluster as this node knows it, `nodes.conf`, CLUSTER NODES lines.
//! - `gossip`: the algorithm (what each message does, the timer, elections), without I/O.
//! - `commands`: CLUSTER, ASKING, READONLY, READWRITE.
//! - here: the `cluster` thread (listener, links, the 10 Hz timer), applying what the algorithm
//!   decided (replication, the routing table dispatch reads, `nodes.conf`).
//!
//! A family (layer 5), beside `replication`, whose public functions it calls to follow or stop
//! following a master. Dispatch routes commands through `state::cluster::Routing`, which this
//! module keeps current; nothing below imports it.

pub mod bus;
pub mod commands;
pub mod gossip;
pub mod node;

use crate::state::State;
use gossip::{Action, Bus, Effects, Env, Out};
use node::{ClusterState, LinkHandle};
use parking_lot::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

static CLUSTER: OnceLock<Arc<Shared>> = OnceLock::new();

pub struct Shared {
    pub st: Arc<State>,
    pub c: Mutex<ClusterState>,
    pub file: std::path::PathBuf,
    next_link: AtomicU64,
    /// Wakes the cluster thread to open links at once (after MEET, REPLICATE ...).
    wake: tokio::sync::Notify,
}

pub fn shared() -> Option<&'static Arc<Shared>> {
    CLUSTER.get()
}

/// Reads `cluster-config-file` (or starts a new node), before the server starts. Err: the
/// message to print before exiting 1.
pub fn prepare(cfg: &crate::config::Config) -> Result<ClusterState, String> {
    let file = config_path(cfg);
    let now = crate::util::now_ms();
    match std::fs::read_to_string(&file) {
        Ok(text) if !text.trim().is_empty() => {
            let s = ClusterState::load(&text, now)?;
            tracing::info!("Node configuration loaded, I'm {}", node::name_str(&s.myself));
            Ok(s)
        }
        Ok(_) => Ok(ClusterState::new(now)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let s = ClusterState::new(now);
            tracing::info!("No cluster configuration found, I'm {}", node::name_str(&s.myself));
            Ok(s)
        }
        Err(e) => Err(format!("Can't open {} in order to load the cluster configuration: {}", file.display(), e)),
    }
}

fn config_path(cfg: &crate::config::Config) -> std::path::PathBuf {
    let name = cfg.get("cluster-config-file").unwrap_or_else(|| "nodes.conf".into());
    let dir = cfg.get("dir").unwrap_or_else(|| ".".into());
    let p = std::path::Path::new(&name);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::path::Path::new(&dir).join(p)
    }
}

/// The bus port: `cluster-port`, or the client port + 10000.
/// The ports the cluster knows this node by, as Redis: (client port, plaintext port `pport`).
/// With tls-cluster, the tls-port and the plain port; else the plain port and 0.
pub fn client_ports(cfg: &crate::config::Config, tcp_port: u16) -> (u16, u16) {
    match cfg.get("tls-cluster").as_deref() == Some("yes") {
        true => (cfg.get_int("tls-port") as u16, tcp_port),
        false => (tcp_port, 0),
    }
}

/// The bus port for client port `port` (the first of `client_ports`).
pub fn bus_port(cfg: &crate::config::Config, port: u16) -> u16 {
    match cfg.get_int("cluster-port") {
        0 => port.wrapping_add(10000),
        p => p as u16,
    }
}

/// Binds the bus port (so a port in use fails the start, as Redis does).
pub fn listen(cfg: &crate::config::Config, cport: u16) -> std::io::Result<std::net::TcpListener> {
    let bind = cfg.get("bind").unwrap_or_default();
    let addr = bind.split_whitespace().next().map(|a| a.trim_start_matches('-')).filter(|a| *a != "*" && *a != "::*").unwrap_or("0.0.0.0");
    let addr = if addr.contains(':') { format!("[{}]:{}", addr, cport) } else { format!("{}:{}", addr, cport) };
    let l = std::net::TcpListener::bind(addr)?;
    l.set_nonblocking(true)?;
    Ok(l)
}

/// Starts the cluster: its state becomes the routing table, its thread runs the bus.
pub fn start(st: Arc<State>, mut cs: ClusterState, listener: std::net::TcpListener) {
    let (port, pport) = client_ports(&st.config, st.tcp_port);
    let cport = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    {
        let me = cs.me_mut();
        me.port = announce_port(&st, port);
        me.pport = pport;
        me.cport = announce_bus_port(&st, cport);
        let ip = st.config.get("cluster-announce-ip").unwrap_or_default();
        if !ip.is_empty() {
            me.ip = ip;
        }
        me.hostname = st.config.get("cluster-announce-hostname").unwrap_or_default();
        if st.config.get("cluster-replica-no-failover").is_some_and(|v| v == "yes") && me.is_replica() {
            me.flags |= bus::F_NOFAILOVER;
        }
    }
    let file = config_path(&st.config);
    let sh = Arc::new(Shared { st: st.clone(), c: Mutex::new(cs), file, next_link: AtomicU64::new(1), wake: tokio::sync::Notify::new() });
    let _ = CLUSTER.set(sh.clone());
    let _ = st.cluster.bus_publish.set(bus_publish);
    st.cluster.enabled.store(true, Ordering::Release);
    // A replica in nodes.conf follows its master from the start.
    let master = {
        let c = sh.c.lock();
        c.me().slaveof.and_then(|m| c.nodes.get(&m)).filter(|m| m.port != 0).map(|m| (m.ip.clone(), m.port))
    };
    if let Some((ip, port)) = master {
        crate::replication::set_master(&st, &ip, port);
    }
    {
        let mut c = sh.c.lock();
        save_config(&sh, &mut c);
        publish_slots(&st, &c);
    }
    sh.with_bus(|_| {});
    std::thread::Builder::new()
        .name("cluster".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("cluster runtime");
            let local = tokio::task::LocalSet::new();
            local.block_on(&rt, run(sh, listener));
        })
        .expect("spawn the cluster thread");
}

/// PUBLISH / SPUBLISH on this node: the other nodes deliver it too (SPUBLISH: this shard's).
fn bus_publish(shard: bool, channel: &[u8], message: &[u8]) {
    if let Some(sh) = shared() {
        sh.with_bus(|b| b.publish(shard, channel, message));
    }
}

fn announce_port(st: &State, port: u16) -> u16 {
    match st.config.get_int("cluster-announce-port") {
        0 => port,
        p => p as u16,
    }
}

fn announce_bus_port(st: &State, cport: u16) -> u16 {
    match st.config.get_int("cluster-announce-bus-port") {
        0 => cport,
        p => p as u16,
    }
}

impl Shared {
    fn env(&self) -> Env {
        let st = &self.st;
        let now = crate::util::now_ms();
        let up = st.repl.link_up();
        let data_age = match st.repl.master.lock().as_ref() {
            Some(m) if up => now - m.last_io_ms,
            Some(m) => now - m.down_since_ms,
            None => 0,
        };
        let yes = |k: &str| st.config.get(k).is_some_and(|v| v == "yes");
        let keys_st = st.clone();
        let (port, pport) = client_ports(&st.config, st.tcp_port);
        Env {
            now,
            node_timeout: st.config.get_int("cluster-node-timeout").max(1),
            my_offset: st.journal.offset(),
            data_age,
            validity_factor: st.config.get_int("cluster-replica-validity-factor"),
            repl_ping_period: st.config.get_int("repl-ping-replica-period"),
            replica_no_failover: yes("cluster-replica-no-failover"),
            require_full_coverage: yes("cluster-require-full-coverage"),
            allow_replica_migration: yes("cluster-allow-replica-migration"),
            migration_barrier: st.config.get_int("cluster-migration-barrier"),
            announce_ip: st.config.get("cluster-announce-ip").unwrap_or_default(),
            port: announce_port(st, port),
            pport,
            cport: self.c.lock().me().cport,
            hostname: st.config.get("cluster-announce-hostname").unwrap_or_default(),
            keys_in_slot: Box::new(move |slot| keys_in_slot(&keys_st, slot)),
        }
    }

    /// Runs the algorithm on the locked state, then carries out what it decided: messages to
    /// links, nodes.conf, the routing table, replication. Returns the replies for the link the
    /// message came on.
    pub fn with_bus<R>(&self, f: impl FnOnce(&mut Bus) -> R) -> (R, Vec<Vec<u8>>) {
        let env = self.env();
        let mut fx = Effects::default();
        let mut replies = Vec::new();
        let mut connect = false;
        let r;
        let actions;
        {
            let mut c = self.c.lock();
            let mut bus = Bus { s: &mut c, env: &env, fx: &mut fx };
            r = f(&mut bus);
            if bus.s.todo_update_state {
                bus.update_state();
            }
            for o in fx.out.drain(..) {
                match o {
                    Out::Reply(b) => replies.push(b),
                    Out::To(name, b) => {
                        if let Some(l) = c.nodes.get(&name).and_then(|n| n.link.as_ref()) {
                            let _ = l.tx.send(b);
                        }
                    }
                }
            }
            // Slot ownership and addresses change only with the configuration (which sets
            // todo_save); the state, roles and healthy replicas are refreshed every time.
            if c.todo_save {
                save_config(self, &mut c);
                publish_slots(&self.st, &c);
            }
            publish_state(&self.st, &c);
            actions = std::mem::take(&mut fx.actions);
        }
        for a in actions {
            match a {
                Action::SetMaster(ip, port) => {
                    if !ip.is_empty() && port != 0 {
                        crate::replication::set_master(&self.st, &ip, port);
                    }
                }
                Action::Promote => crate::replication::promote(&self.st),
                Action::DeleteSlots(slots) => delete_slots(&self.st, &slots),
                Action::PauseWrites(until) => {
                    self.st.pause_writes_only.store(true, Ordering::Relaxed);
                    self.st.pause_until.store(until, Ordering::Relaxed);
                }
                Action::Connect(_) => connect = true,
                Action::Deliver(shard, channel, message) => {
                    crate::commands::pubsub::publish_message(&self.st, shard, &channel, &message, crate::util::now_ms());
                }
            }
        }
        if connect {
            self.wake.notify_one();
        }
        (r, replies)
    }
}

fn keys_in_slot(st: &State, slot: usize) -> usize {
    let g = st.keyspace.lock(slot % crate::keyspace::STRIPES);
    g.slot(0, slot).map_or(0, |t| t.len())
}

/// Deletes the keys of slots another master took (Redis's delKeysInSlot), journaling DELs.
fn delete_slots(st: &State, slots: &[usize]) {
    for &slot in slots {
        let mut g = st.keyspace.lock(slot % crate::keyspace::STRIPES);
        let removed = match g.slot_mut(0, slot) {
            Some(t) => t.extract_if(|_| true),
            None => Vec::new(),
        };
        g.fix_counts(0);
        for e in removed {
            st.journal.append(0, &[b"DEL", &e.key[..]]);
        }
    }
}

/// Copies the slot map and the nodes' addresses into the routing table dispatch reads.
pub fn publish_slots(st: &State, c: &ClusterState) {
    let r = &st.cluster;
    for n in c.nodes.values() {
        r.set_addr(n.idx, &n.ip, n.port, n.pport);
    }
    let idx = |n: Option<bus::Name>| n.and_then(|n| c.nodes.get(&n)).map_or(0, |n| n.idx);
    for j in 0..bus::SLOTS {
        let route =
            crate::state::cluster::SlotRoute { owner: idx(c.slots[j]), migrating: idx(c.migrating[j]), importing: idx(c.importing[j]) };
        if r.slot(j) != route {
            r.set_slot(j, route);
        }
    }
}

/// Copies this node's place, the cluster state and the healthy replicas into the routing table.
pub fn publish_state(st: &State, c: &ClusterState) {
    let r = &st.cluster;
    let me = c.me();
    r.me.store(me.idx, Ordering::Relaxed);
    let master = if me.is_replica() { me.slaveof.and_then(|m| c.nodes.get(&m)).map_or(0, |m| m.idx) } else { 0 };
    r.my_master.store(master, Ordering::Relaxed);
    let healthy = c
        .nodes
        .values()
        .filter(|n| n.slaveof == Some(c.myself) && n.is_replica() && n.flags & (bus::F_FAIL | bus::F_PFAIL | bus::F_HANDSHAKE) == 0)
        .count();
    r.healthy_replicas.store(healthy as u32, Ordering::Relaxed);
    r.ok.store(c.state_ok, Ordering::Release);
    r.allow_reads_when_down.store(st.config.get("cluster-allow-reads-when-down").is_some_and(|v| v == "yes"), Ordering::Relaxed);
    r.allow_pubsubshard_when_down
        .store(st.config.get("cluster-allow-pubsubshard-when-down").is_some_and(|v| v == "yes"), Ordering::Relaxed);
}

/// Writes nodes.conf: a temporary file, fsync, rename (Redis's clusterSaveConfig).
pub fn save_config(sh: &Shared, c: &mut ClusterState) -> bool {
    c.todo_save = false;
    let text = c.config_text();
    let tmp = sh.file.with_extension(format!("tmp-{}", std::process::id()));
    let res = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        std::io::Write::write_all(&mut f, text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &sh.file)?;
        Ok(())
    })();
    if let Err(e) = res {
        tracing::warn!("Could not save the cluster configuration to {}: {}", sh.file.display(), e);
        let _ = std::fs::remove_file(&tmp);
        return false;
    }
    true
}

async fn run(sh: Arc<Shared>, listener: std::net::TcpListener) {
    let listener = tokio::net::TcpListener::from_std(listener).expect("cluster bus listener");
    {
        let sh = sh.clone();
        tokio::task::spawn_local(async move {
            loop {
                if let Ok((s, peer)) = listener.accept().await {
                    let _ = s.set_nodelay(true);
                    let sh = sh.clone();
                    tokio::task::spawn_local(async move {
                        // tls-cluster: the bus speaks TLS both ways.
                        let s = match sh.st.tls_if("tls-cluster") {
                            None => crate::net::Stream::Plain(s),
                            Some(tls) => match crate::net::accept(&tls, s, link_timeout(&sh)).await {
                                Ok(s) => crate::net::Stream::Server(Box::new(s)),
                                Err(e) => {
                                    tracing::debug!("Error accepting cluster node connection: {}", e);
                                    return;
                                }
                            },
                        };
                        inbound(sh, s, peer).await
                    });
                }
            }
        });
    }
    let mut iteration = 0u64;
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(100));
    loop {
        tokio::select! {
            _ = tick.tick() => {
                sh.with_bus(|b| b.cron(iteration));
                iteration += 1;
            }
            _ = sh.wake.notified() => {}
        }
        open_links(&sh);
    }
}

/// Opens an outbound link to every node that has an address and no link.
fn open_links(sh: &Arc<Shared>) {
    let mut c = sh.c.lock();
    let me = c.myself;
    let now = crate::util::now_ms();
    for n in c.nodes.values_mut() {
        if n.name == me || n.link.is_some() || !n.has_addr() || n.cport == 0 || n.ip.is_empty() {
            continue;
        }
        let id = sh.next_link.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        n.link = Some(LinkHandle { id, ctime: now, tx, connected: false });
        if n.ping_sent == 0 {
            // Counts as a ping: a node we cannot reach at all goes PFAIL too.
            n.ping_sent = now;
        }
        tokio::task::spawn_local(outbound(sh.clone(), id, n.ip.clone(), n.cport, rx));
    }
}

fn node_of_link(c: &ClusterState, id: u64) -> Option<bus::Name> {
    c.nodes.values().find(|n| n.link.as_ref().is_some_and(|l| l.id == id)).map(|n| n.name)
}

/// Reads what arrived and handles every whole message in it. Ok(None): the peer closed or sent
/// something that is not a bus message; Ok(Some(replies)): what to write back.
async fn read_frames<R: tokio::io::AsyncRead + Unpin>(
    sh: &Arc<Shared>,
    s: &mut R,
    buf: &mut Vec<u8>,
    link: Option<u64>,
    peer_ip: &str,
    local_ip: &str,
) -> std::io::Result<Option<Vec<Vec<u8>>>> {
    let mut chunk = [0u8; 16384];
    let n = s.read(&mut chunk).await?;
    if n == 0 {
        return Ok(None);
    }
    buf.extend_from_slice(&chunk[..n]);
    let mut out = Vec::new();
    loop {
        let len = match bus::frame_len(buf) {
            None => return Ok(Some(out)),
            Some(Err(_)) => return Ok(None),
            Some(Ok(l)) => l,
        };
        if buf.len() < len {
            return Ok(Some(out));
        }
        let frame: Vec<u8> = buf.drain(..len).collect();
        let Ok(m) = bus::Msg::decode(&frame) else { return Ok(None) };
        let ((), replies) = sh.with_bus(|b| {
            let link_node = link.and_then(|id| node_of_link(b.s, id));
            if link.is_some() && link_node.is_none() {
                return; // the link was replaced meanwhile
            }
            if link.is_none() {
                if let Some(n) = b.s.nodes.get_mut(&m.sender) {
                    if n.inbound.is_none() {
                        n.inbound = Some((0, b.env.now));
                    }
                }
            }
            b.process(&m, link_node, peer_ip, local_ip)
        });
        out.extend(replies);
    }
}

async fn inbound(sh: Arc<Shared>, mut s: crate::net::Stream, peer: std::net::SocketAddr) {
    let peer_ip = peer.ip().to_string();
    let local_ip = s.tcp().local_addr().map(|a| a.ip().to_string()).unwrap_or_default();
    let mut buf = Vec::new();
    while let Ok(Some(replies)) = read_frames(&sh, &mut s, &mut buf, None, &peer_ip, &local_ip).await {
        for r in replies {
            if s.write_all(&r).await.is_err() {
                return;
            }
        }
        if s.flush().await.is_err() {
            return;
        }
    }
}

fn link_timeout(sh: &Shared) -> std::time::Duration {
    std::time::Duration::from_millis(sh.st.config.get_int("cluster-node-timeout").clamp(100, 5000) as u64)
}

async fn outbound(sh: Arc<Shared>, id: u64, ip: String, cport: u16, mut rx: tokio::sync::mpsc::UnboundedReceiver<Vec<u8>>) {
    let tls = sh.st.tls_if("tls-cluster");
    let s = match crate::net::connect(&ip, cport, tls.as_deref(), link_timeout(&sh)).await {
        Ok(s) => s,
        Err(_) => {
            drop_link(&sh, id);
            return;
        }
    };
    let peer_ip = s.tcp().peer_addr().map(|a| a.ip().to_string()).unwrap_or_default();
    let local_ip = s.tcp().local_addr().map(|a| a.ip().to_string()).unwrap_or_default();
    let (mut r, mut w) = tokio::io::split(s);
    // First message: MEET to a node met by CLUSTER MEET, else PING.
    sh.with_bus(|b| {
        let Some(name) = node_of_link(b.s, id) else { return };
        let n = b.s.nodes.get_mut(&name).expect("found");
        if let Some(l) = n.link.as_mut() {
            l.connected = true;
        }
        let kind = if n.flags & bus::F_MEET != 0 { bus::MEET } else { bus::PING };
        n.flags &= !bus::F_MEET;
        b.send_ping(name, kind);
    });
    let mut buf = Vec::new();
    loop {
        tokio::select! {
            m = rx.recv() => match m {
                Some(b) => if w.write_all(&b).await.is_err() || w.flush().await.is_err() { break },
                None => break,
            },
            res = read_frames(&sh, &mut r, &mut buf, Some(id), &peer_ip, &local_ip) => match res {
                Ok(Some(_)) => {}
                _ => break,
            },
        }
    }
    drop_link(&sh, id);
}

fn drop_link(sh: &Shared, id: u64) {
    let mut c = sh.c.lock();
    if let Some(name) = node_of_link(&c, id) {
        c.nodes.get_mut(&name).expect("found").link = None;
    }
}
