//! The top layer: wires configuration, the shared state, the command table and the families
//! together, and runs the listeners, the worker threads and the cron.
//!
//! Threads: one acceptor/cron thread (a current-thread tokio runtime) and N worker threads,
//! each a current-thread runtime with a LocalSet. A connection is handed to a worker once, at
//! accept, and lives there for life; its commands run inline on that worker.

pub mod connection;
pub mod cron;
pub mod io;
pub mod log;

use crate::commands::{build_table, CommandTable};
use crate::config::Config;
use crate::state::{State, ThreadStats};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Resolves `bind` addresses (a leading '-' marks one that may be unavailable).
fn bind_addrs(cfg: &Config, port: u16) -> Vec<(SocketAddr, bool)> {
    let bind = cfg.get("bind").unwrap_or_default();
    let mut out = Vec::new();
    for a in bind.split_whitespace() {
        let (optional, a) = match a.strip_prefix('-') {
            Some(r) => (true, r),
            None => (false, a),
        };
        let ip: std::net::IpAddr = match a {
            "*" => "0.0.0.0".parse().expect("literal"),
            "::*" => "::".parse().expect("literal"),
            _ => match a.parse() {
                Ok(ip) => ip,
                Err(_) => continue,
            },
        };
        out.push((SocketAddr::new(ip, port), optional));
    }
    out
}

fn listen(addr: SocketAddr, backlog: i32) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    s.set_reuse_address(true)?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.bind(&addr.into())?;
    s.listen(backlog)?;
    s.set_nonblocking(true)?;
    Ok(s.into())
}

/// Starts the server and blocks until it shuts down; returns the process exit code.
/// Users from `user` lines in redis.conf or from `aclfile` (not both, as Redis requires).
fn load_acl(st: &State) -> Result<(), String> {
    let acl = st.acl.get().expect("set just before");
    let aclfile = st.config.get("aclfile").unwrap_or_default();
    let lines = &st.config.user_lines;
    if !lines.is_empty() && !aclfile.is_empty() {
        return Err("Configuring Redis with users defined in redis.conf and at the same setting an ACL file path is invalid. This setup is very likely to lead to configuration errors and security holes, please define either an ACL file or declare users directly in your redis.conf, but not both.".into());
    }
    if !lines.is_empty() {
        acl.load_users(lines, |i| format!("Error in user declaration '{}'", lines[i].0))?;
    } else if !aclfile.is_empty() {
        crate::state::acl::load_file(acl, &aclfile).map_err(|e| format!("Aborting Redis startup because of ACL errors: {}", e))?;
    }
    st.sync_default_user();
    Ok(())
}

pub fn run(config: Config) -> i32 {
    let port = config.get_int("port") as u16;
    let threads = match config.was_set("io-threads") {
        true => config.get_int("io-threads").max(1) as usize,
        false => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
    };
    let sentinel_mode = config.sentinel_mode;
    let sentinel = match sentinel_mode {
        true => match crate::sentinel::prepare(&config) {
            Ok(s) => Some(s),
            Err(e) => {
                // The FATAL CONFIG FILE ERROR block ends with its own newline.
                eprint!("{}", e);
                return 1;
            }
        },
        false => None,
    };
    let mut table = if sentinel_mode { sentinel_table() } else { build_table() };
    if !sentinel_mode {
        table.register(crate::replication::COMMANDS);
        table.register(crate::cluster::commands::COMMANDS);
    }
    let cluster_mode = !sentinel_mode && config.get("cluster-enabled").is_some_and(|v| v == "yes");
    let cluster = match cluster_mode {
        true => match crate::cluster::prepare(&config) {
            Ok(c) => Some(c),
            Err(e) => {
                eprintln!("{}", e);
                return 1;
            }
        },
        false => None,
    };
    for (old, new) in &config.renames {
        if !table.rename(old, new) {
            eprintln!("*** FATAL CONFIG FILE ERROR ***\nNo such command in rename-command: {}", old);
            return 1;
        }
    }
    let table: Arc<CommandTable> = Arc::new(table);
    crate::replication::init(table.clone());
    let st = State::new(config, port);
    let _ =
        st.acl.set(crate::state::acl::Acl::new((0..table.len()).map(|id| (table.full_name(id).to_string(), table.spec(id).acl)).collect()));
    st.sync_requirepass();
    st.sync_acl_pubsub_default();
    if let Err(e) = load_acl(&st) {
        tracing::warn!("{}", e);
        return 1;
    }
    if crate::net::tls::wanted(&st.config) {
        match crate::net::tls::configure(&st.config) {
            Ok(t) => *st.tls.write() = Some(t),
            Err(e) => {
                tracing::warn!("{}", e);
                tracing::warn!("Failed to configure TLS. Check logs for more info.");
                return 1;
            }
        }
    }
    tracing::info!("oO0OoO0OoO0Oo Redis is starting oO0OoO0OoO0Oo");
    tracing::info!(
        "Redis version=7.0.15, bits=64, commit=00000000, modified=0, pid={}, just started (ferrodis {})",
        std::process::id(),
        env!("CARGO_PKG_VERSION")
    );
    tracing::info!("Configuration loaded");
    for w in &st.config.warnings {
        tracing::warn!("{}", w);
    }
    let pidfile = st.config.get("pidfile").unwrap_or_default();
    if !pidfile.is_empty() {
        let _ = std::fs::write(&pidfile, format!("{}\n", std::process::id()));
    }

    // Listeners first, so that a port in use fails the start as Redis does.
    let backlog = st.config.get_int("tcp-backlog").clamp(1, 65535) as i32;
    // (listener, is it the tls-port's)
    let mut listeners = Vec::new();
    let tls_port = st.config.get_int("tls-port") as u16;
    for (port, tls, kind) in [(port, false, "TCP"), (tls_port, true, "TLS")] {
        if port == 0 {
            continue;
        }
        let before = listeners.len();
        for (addr, optional) in bind_addrs(&st.config, port) {
            match listen(addr, backlog) {
                Ok(l) => listeners.push((l, tls)),
                Err(e)
                    if optional && (e.kind() == std::io::ErrorKind::AddrNotAvailable || e.raw_os_error() == Some(libc::EAFNOSUPPORT)) => {}
                Err(e) => {
                    tracing::warn!("Warning: Could not create server {} listening socket {}: bind: {}", kind, addr, e);
                    tracing::warn!("Failed listening on port {} ({}), aborting.", port, kind.to_lowercase());
                    return 1;
                }
            }
        }
        if listeners.len() == before {
            tracing::warn!("Failed listening on port {} ({}), aborting.", port, kind.to_lowercase());
            return 1;
        }
    }

    // The cluster bus's port (client port + 10000 unless cluster-port says otherwise).
    let bus_listener = match cluster.is_some() {
        true => {
            let cport = crate::cluster::bus_port(&st.config, crate::cluster::client_ports(&st.config, port).0);
            match crate::cluster::listen(&st.config, cport) {
                Ok(l) => Some(l),
                Err(e) => {
                    tracing::warn!("Could not bind the cluster bus port {}: {}", cport, e);
                    tracing::warn!("Failed listening on port {} (TCP), aborting.", cport);
                    return 1;
                }
            }
        }
        false => None,
    };

    // The dataset, before any client is served (a sentinel has none).
    if sentinel_mode {
    } else if let Err(e) = crate::commands::persistence::load_data(&st, &table) {
        tracing::warn!("{}", e);
        return 1;
    }
    // `replicaof` in the configuration: follow the master from the start.
    if let (Some(c), Some(l)) = (cluster, bus_listener) {
        crate::cluster::start(st.clone(), c, l);
    } else if let Some(s) = sentinel {
        crate::sentinel::start(st.clone(), s);
    } else if let Some((host, port)) = st.config.get("replicaof").and_then(|v| {
        let mut p = v.split_whitespace();
        Some((p.next()?.to_string(), p.next()?.parse::<u16>().ok()?))
    }) {
        crate::replication::set_master(&st, &host, port);
    }
    {
        let st = st.clone();
        std::thread::Builder::new()
            .name("aof".into())
            .spawn(move || crate::commands::persistence::aof_writer(st))
            .expect("spawn the AOF writer");
    }

    // Worker threads.
    let mut senders = Vec::new();
    for i in 0..threads {
        let (tx, rx) = mpsc::unbounded_channel::<Accepted>();
        senders.push(tx);
        let st = st.clone();
        let table = table.clone();
        let ts = Arc::new(ThreadStats::new(table.len()));
        st.stats.register_thread(ts.clone());
        std::thread::Builder::new()
            .name(format!("ferrodis-io-{}", i))
            .stack_size(crate::util::COMMAND_THREAD_STACK)
            .spawn(move || {
                crate::state::scripts::WORKER.with(|w| w.set(i));
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("worker runtime");
                let local = tokio::task::LocalSet::new();
                local.block_on(&rt, worker(rx, st, table, ts));
            })
            .expect("spawn worker thread");
    }

    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("main runtime");
    rt.block_on(async move {
        let mode = if sentinel_mode {
            "sentinel"
        } else if cluster_mode {
            "cluster"
        } else {
            "standalone"
        };
        log::banner(&st.config, mode, port);
        tracing::info!("Server initialized");
        for (next, (l, tls)) in listeners.into_iter().enumerate() {
            let l = tokio::net::TcpListener::from_std(l).expect("listener");
            let senders = senders.clone();
            let st = st.clone();
            tokio::spawn(async move {
                let mut next = next;
                loop {
                    match l.accept().await {
                        Ok((s, peer)) => {
                            st.stats.connections_received.fetch_add(1, Ordering::Relaxed);
                            if let Ok(s) = s.into_std() {
                                next = (next + 1) % senders.len();
                                // Not to the worker a long script holds (it serves nobody until
                                // the script ends).
                                let busy = crate::state::scripts::RUNNING_WORKER.load(Ordering::Acquire);
                                if next == busy && senders.len() > 1 {
                                    next = (next + 1) % senders.len();
                                }
                                let _ = senders[next].send((s, peer, tls));
                            }
                        }
                        Err(e) => {
                            tracing::warn!("Accepting client connection: {}", e);
                            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                        }
                    }
                }
            });
        }
        tracing::info!("Ready to accept connections tcp");
        if tls_port != 0 {
            tracing::info!("Ready to accept connections tls");
        }
        cron::start(st.clone());
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
        let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()).expect("SIGINT handler");
        loop {
            let notified = st.shutdown_notify.notified();
            tokio::select! {
                _ = term.recv() => tracing::warn!("Received SIGTERM scheduling shutdown..."),
                _ = int.recv() => tracing::warn!("Received SIGINT scheduling shutdown..."),
                _ = notified => tracing::warn!("User requested shutdown..."),
            }
            // The final snapshot: with save points configured or SHUTDOWN SAVE, unless NOSAVE.
            let req = st.shutdown.lock().take().unwrap_or_default();
            let save_points = !st.config.get("save").unwrap_or_default().trim().is_empty();
            if (save_points || req.save) && !req.nosave {
                tracing::info!("Saving the final RDB snapshot before exiting.");
                let st2 = st.clone();
                match tokio::task::spawn_blocking(move || crate::commands::persistence::save_rdb(&st2)).await {
                    Ok(Ok(_)) => tracing::info!("DB saved on disk"),
                    _ if req.force => tracing::warn!("Error trying to save the DB, exiting anyway (FORCE)."),
                    _ => {
                        tracing::warn!("Error trying to save the DB, can't exit.");
                        continue;
                    }
                }
            }
            break;
        }
        if st.aof.enabled.load(Ordering::Acquire) {
            let _ = st.aof.write_pending(&st.journal, true);
        }
        if !pidfile.is_empty() {
            tracing::info!("Removing the pid file.");
            let _ = std::fs::remove_file(&pidfile);
        }
        tracing::warn!("Redis is now ready to exit, bye bye...");
    });
    0
}

/// Sentinel mode's commands: the connection and Pub/Sub commands Redis Sentinel keeps, and
/// the sentinel family (SENTINEL, and its own INFO, ROLE and PUBLISH).
fn sentinel_table() -> CommandTable {
    let full = build_table();
    let mut t = CommandTable::new();
    for name in [
        "ping",
        "auth",
        "hello",
        "client",
        "command",
        "subscribe",
        "unsubscribe",
        "psubscribe",
        "punsubscribe",
        "shutdown",
        "quit",
        "reset",
        "echo",
    ] {
        if let Some(id) = full.lookup(name.as_bytes()) {
            t.register_one(full.spec(id));
        }
    }
    t.register(crate::sentinel::commands::COMMANDS);
    t
}

/// An accepted connection: the socket, the peer, and whether it came in on the tls-port.
type Accepted = (std::net::TcpStream, SocketAddr, bool);

async fn worker(mut rx: mpsc::UnboundedReceiver<Accepted>, st: Arc<State>, table: Arc<CommandTable>, ts: Arc<ThreadStats>) {
    while let Some((s, peer, tls)) = rx.recv().await {
        let (st, table, ts) = (st.clone(), table.clone(), ts.clone());
        tokio::task::spawn_local(async move {
            let sock = match tls {
                false => io::Socket::new(s),
                true => tls_accept(&st, s, peer).await,
            };
            if let Ok(s) = sock {
                connection::serve(s, peer, st, table, ts).await;
            }
        });
    }
}

/// The TLS handshake of a client of the tls-port, with the context as it is now.
async fn tls_accept(st: &State, s: std::net::TcpStream, peer: SocketAddr) -> std::io::Result<io::Socket> {
    let tls = st.tls.read().clone().ok_or_else(|| std::io::Error::other("TLS is not configured"))?;
    s.set_nonblocking(true)?;
    let s = tokio::net::TcpStream::from_std(s)?;
    // A client that never finishes its handshake does not hold the slot forever.
    match crate::net::accept(&tls, s, std::time::Duration::from_secs(10)).await {
        Ok(s) => Ok(io::Socket::tls(s)),
        Err(e) => {
            tracing::debug!("Error accepting a client connection: {} (addr={})", e, peer);
            Err(e)
        }
    }
}
