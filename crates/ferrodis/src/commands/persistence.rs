//! Persistence commands (Redis's rdb.c, aof.c and the DUMP/RESTORE of cluster.c): SAVE, BGSAVE
//! [SCHEDULE], BGREWRITEAOF, DUMP, RESTORE; and what the server calls for startup (`load_data`),
//! save points, shutdown, the AOF writer thread and `appendfsync always` (`aof_reply_target`).
//!
//! A save is a fork-less snapshot (`persistence::rdb::save`): clients keep running while it is
//! written; the file holds the keyspace as it was when the save began.

use super::table::{cmd, flag::*, CommandSpec, ONE_KEY};
use super::{eq, CommandTable, Ctx, NOT_INT, SYNTAX};
use crate::persistence::rdb as prdb;
use crate::state::State;
use std::sync::atomic::Ordering;
use std::sync::Arc;

pub static COMMANDS: &[CommandSpec] = &[
    cmd("save", 1, ADMIN | NOSCRIPT | NO_ASYNC_LOADING | NO_MULTI, "@admin @slow @dangerous", super::table::NO_KEYS, save),
    cmd("bgsave", -1, ADMIN | NOSCRIPT | NO_ASYNC_LOADING, "@admin @slow @dangerous", super::table::NO_KEYS, bgsave),
    cmd("dump", 2, READONLY, "@keyspace @read @slow", ONE_KEY, dump),
    cmd("restore", -4, WRITE | DENYOOM, "@keyspace @write @slow @dangerous", ONE_KEY, restore),
    cmd("restore-asking", -4, WRITE | DENYOOM | ASKING, "@keyspace @write @slow @dangerous", ONE_KEY, restore),
    cmd("migrate", -6, WRITE, "@keyspace @write @slow @dangerous", MIGRATE_KEYS, migrate),
    cmd("bgrewriteaof", 1, ADMIN | NOSCRIPT | NO_ASYNC_LOADING, "@admin @slow @dangerous", super::table::NO_KEYS, bgrewriteaof),
];

/// MIGRATE's keys: the key argument, or (when it is "") the arguments after KEYS.
const MIGRATE_KEYS: super::table::Keys = super::table::Keys::Custom {
    first: 3,
    last: 3,
    step: 1,
    find: |argv, out| match argv.iter().skip(6).position(|a| eq(a, "keys")) {
        Some(i) if argv[3].is_empty() => out.extend(i + 7..argv.len()),
        _ => out.push(3),
    },
};

/// The encodings values are built in when loaded or restored (the current config).
pub fn limits(st: &State) -> prdb::Limits {
    let h = &st.config.hot;
    prdb::Limits {
        hash: crate::types::hash::Limits {
            max_entries: h.hash_max_entries.load(Ordering::Relaxed),
            max_value: h.hash_max_value.load(Ordering::Relaxed),
        },
        zset: crate::types::hash::Limits {
            max_entries: h.zset_max_entries.load(Ordering::Relaxed),
            max_value: h.zset_max_value.load(Ordering::Relaxed),
        },
        set_max_ints: h.set_max_intset.load(Ordering::Relaxed),
        stream: stream_limits(st),
        key_delay_us: st.config.get_int("key-load-delay").max(0) as u64,
    }
}

/// Stream node limits from the config (`stream-node-max-bytes`, `stream-node-max-entries`).
pub fn stream_limits(st: &State) -> crate::types::stream::NodeLimits {
    let h = &st.config.hot;
    crate::types::stream::NodeLimits {
        max_bytes: h.stream_node_max_bytes.load(Ordering::Relaxed),
        max_entries: h.stream_node_max_entries.load(Ordering::Relaxed),
    }
}

/// How values are written (rdbcompression; quicklist node size from list-max-listpack-size).
pub fn format(st: &State) -> prdb::Format {
    let fill = st.config.get_int("list-max-listpack-size");
    let list_node_bytes = match fill {
        -5 => 65536,
        -4 => 32768,
        -3 => 16384,
        -1 => 4096,
        _ => 8192,
    };
    prdb::Format {
        compress: st.config.get("rdbcompression").is_none_or(|v| v == "yes"),
        list_node_bytes,
        commands: false,
        key_delay_us: st.config.get_int("rdb-key-save-delay").max(0) as u64,
    }
}

fn rdb_path(st: &State) -> std::path::PathBuf {
    std::path::PathBuf::from(st.config.get("dbfilename").unwrap_or_else(|| "dump.rdb".into()))
}

/// Saves the dataset to the RDB file now (the caller's thread writes it; clients keep running).
/// Err when another save runs or the write failed (logged).
pub fn save_rdb(st: &State) -> Result<prdb::Saved, String> {
    if st.rdb.in_progress.swap(true, Ordering::AcqRel) {
        return Err("Background save already in progress".into());
    }
    let r = save_claimed(st);
    st.rdb.in_progress.store(false, Ordering::Release);
    r
}

/// The save itself, once `in_progress` is ours.
fn save_claimed(st: &State) -> Result<prdb::Saved, String> {
    let start = crate::util::now_ms();
    st.rdb.started_ms.store(start, Ordering::Relaxed);
    let dirty_before = std::cell::Cell::new(0);
    let r = snapshot_to(st, &rdb_path(st), false, &mut || {
        // At the snapshot's instant: what it holds is the changes counted so far.
        dirty_before.set(st.dirty.load(Ordering::Relaxed));
    });
    let end = crate::util::now_ms();
    st.rdb.started_ms.store(0, Ordering::Relaxed);
    st.rdb.last_try_ms.store(end, Ordering::Relaxed);
    st.rdb.last_time_sec.store((end - start) / 1000, Ordering::Relaxed);
    match r {
        Ok(saved) => {
            let _ = st.dirty.fetch_update(Ordering::AcqRel, Ordering::Relaxed, |d| Some(d.saturating_sub(dirty_before.get())));
            st.lastsave.store(end / 1000, Ordering::Relaxed);
            st.rdb.last_ok.store(true, Ordering::Relaxed);
            st.rdb.saves.fetch_add(1, Ordering::Relaxed);
            Ok(saved)
        }
        Err(e) => {
            st.rdb.last_ok.store(false, Ordering::Relaxed);
            tracing::warn!("Write error saving DB on disk: {}", e);
            Err(e.to_string())
        }
    }
}

/// Writes a snapshot of the keyspace (and the function libraries) as an RDB file at `path`;
/// `at_start` runs at the snapshot's instant, under every stripe lock. One snapshot runs at a
/// time: a save that finds another (a BGSAVE, an AOF rewrite) waits for it.
fn snapshot_to(st: &State, path: &std::path::Path, aof_base: bool, at_start: &mut dyn FnMut()) -> Result<prdb::Saved, prdb::SaveError> {
    let functions = super::scripting::library_codes(st);
    let checksum = st.config.get("rdbchecksum").is_none_or(|v| v == "yes");
    let f = prdb::Format { commands: aof_base && !rdb_preamble(st), ..format(st) };
    loop {
        let r = prdb::save(&st.keyspace, path, f, checksum, &functions, || {
            at_start();
            aux_fields(st, aof_base)
        });
        if let Err(prdb::SaveError::Busy) = r {
            std::thread::sleep(std::time::Duration::from_millis(20));
            continue;
        }
        return r;
    }
}

/// The aux fields of an RDB, read at the snapshot's instant (under every stripe lock, so the
/// replication offset is exactly the one the data is at): Redis 7.0's, with `repl-id` and
/// `repl-offset` so that a restarted server can continue replication with a partial resync.
fn aux_fields(st: &State, aof_base: bool) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = vec![
        ("redis-ver".into(), crate::REDIS_VERSION.into()),
        ("redis-bits".into(), "64".into()),
        ("ctime".into(), (crate::util::now_ms() / 1000).to_string()),
        ("used-mem".into(), super::server::used_memory().0.to_string()),
    ];
    if st.journal.active() {
        v.push(("repl-stream-db".into(), "0".into()));
        v.push(("repl-id".into(), st.repl.ids.lock().replid.clone()));
        v.push(("repl-offset".into(), st.journal.offset().to_string()));
    }
    v.push(("aof-base".into(), if aof_base { "1" } else { "0" }.into()));
    v
}

/// Streams a snapshot as an RDB to `w` (a replica's full resynchronization). `at_start` runs at
/// the snapshot's instant, under every stripe lock, before the aux fields are read.
pub fn stream_snapshot(st: &State, w: &mut dyn std::io::Write, at_start: &mut dyn FnMut()) -> Result<prdb::Saved, prdb::SaveError> {
    let functions = super::scripting::library_codes(st);
    let checksum = st.config.get("rdbchecksum").is_none_or(|v| v == "yes");
    loop {
        match prdb::Snapshot::begin(&st.keyspace, format(st), || {
            at_start();
            aux_fields(st, false)
        }) {
            Err(prdb::SaveError::Busy) => std::thread::sleep(std::time::Duration::from_millis(20)),
            Err(e) => return Err(e),
            Ok(snap) => return snap.write_to(w, checksum, &functions).map_err(prdb::SaveError::Io),
        }
    }
}

/// Starts a background save on its own thread; Err when one runs already.
pub fn start_bgsave(st: &Arc<State>) -> Result<(), String> {
    if st.rdb.in_progress.swap(true, Ordering::AcqRel) {
        return Err("Background save already in progress".into());
    }
    let st2 = st.clone();
    let spawned = std::thread::Builder::new().name("bgsave".into()).spawn(move || {
        // The saving thread yields the CPU to the workers serving clients (Redis's fork child is
        // a separate process competing the same way; a lower priority keeps client latency down
        // when cores are few).
        // SAFETY: setpriority on this thread's own id; no memory is touched.
        unsafe {
            libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, 10);
        }
        tracing::info!("Background saving started");
        match save_claimed(&st2) {
            Ok(s) => tracing::info!("DB saved on disk ({} keys, {} bytes)", s.keys, s.bytes),
            Err(_) => tracing::warn!("Background saving error"),
        }
        st2.rdb.in_progress.store(false, Ordering::Release);
        tracing::info!("Background saving terminated with {}", if st2.rdb.last_ok.load(Ordering::Relaxed) { "success" } else { "error" });
        // A BGSAVE SCHEDULE that came in meanwhile runs now.
        if st2.rdb.scheduled.swap(false, Ordering::AcqRel) {
            let _ = start_bgsave(&st2);
        }
    });
    if let Err(e) = spawned {
        st.rdb.in_progress.store(false, Ordering::Release);
        return Err(e.to_string());
    }
    Ok(())
}

/// The access field of a key loaded now (LRU seconds, or a new LFU counter).
fn loaded_lru(st: &State, now: i64) -> u32 {
    if st.config.hot.lfu_policy.load(Ordering::Relaxed) {
        crate::keyspace::lfu::new(now)
    } else {
        (now / 1000) as u32
    }
}

/// Empties every database before a reload (DEBUG RELOAD, DEBUG LOADAOF).
pub fn empty_keyspace(st: &State) {
    let mut guards = st.keyspace.lock_all();
    let dbs = st.keyspace.databases;
    let garbage: Vec<_> = guards.iter_mut().flat_map(|g| (0..dbs).filter_map(|db| g.take_db(db)).collect::<Vec<_>>()).collect();
    drop(guards);
    drop(garbage);
}

/// A value's DUMP payload (DUMP, MIGRATE).
fn dump_payload(v: &crate::types::Value, f: prdb::Format) -> Vec<u8> {
    let mut body = Vec::new();
    prdb::encode_value(&mut body, None, v, f);
    rdb::dump::seal(body)
}

/// Loads RDB bytes into the (emptied) keyspace, restoring their functions by `policy`.
/// Err names the offset (" at offset N: why") or the functions' error.
pub fn load_bytes(st: &State, bytes: &[u8], policy: super::scripting::RestorePolicy) -> Result<prdb::Loaded, String> {
    let now = crate::util::now_ms();
    let lru = loaded_lru(st, now);
    let loaded = prdb::load(&st.keyspace, bytes, &limits(st), now, lru).map_err(|e| format!(" at offset {}: {}", e.offset, e.msg))?;
    if !loaded.functions.is_empty() {
        super::scripting::restore_libraries(st, &loaded.functions, policy).map_err(|e| format!(": failed loading its functions: {e}"))?;
    }
    Ok(loaded)
}

/// Loads the RDB file at startup, if there is one. Err (to abort the start) when it is corrupt.
pub fn load_rdb(st: &State) -> Result<(), String> {
    load_rdb_with(st, super::scripting::RestorePolicy::Append)
}

/// Loads the RDB file into the keyspace; its functions join the loaded ones by `policy`.
pub fn load_rdb_with(st: &State, policy: super::scripting::RestorePolicy) -> Result<(), String> {
    let path = rdb_path(st);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(format!("Fatal error loading the DB: {e}. Exiting.")),
    };
    let start = std::time::Instant::now();
    let loaded = load_bytes(st, &bytes, policy).map_err(|e| format!("Fatal error loading the DB from {}{e}. Exiting.", path.display()))?;
    // A restarted server continues the replication history the file was saved at.
    let aux = |k: &str| loaded.aux.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    if let (Some(id), Some(off)) = (aux("repl-id"), aux("repl-offset").and_then(|o| o.parse::<u64>().ok())) {
        if id.len() == 40 {
            st.repl.restore_history(&st.journal, id, off);
        }
    }
    st.rdb.last_load_loaded.store(loaded.keys, Ordering::Relaxed);
    st.rdb.last_load_expired.store(loaded.expired, Ordering::Relaxed);
    tracing::info!("Done loading RDB, keys loaded: {}, keys expired: {}.", loaded.keys, loaded.expired);
    tracing::info!("DB loaded from disk: {:.3} seconds", start.elapsed().as_secs_f64());
    Ok(())
}

fn save(ctx: &mut Ctx, _argv: &[&[u8]]) {
    if ctx.st.rdb.in_progress.load(Ordering::Acquire) {
        return ctx.out.error("ERR Background save already in progress");
    }
    match save_rdb(ctx.st) {
        Ok(_) => {
            tracing::info!("DB saved on disk");
            ctx.out.ok()
        }
        Err(_) => ctx.out.error("ERR"),
    }
}

fn bgsave(ctx: &mut Ctx, argv: &[&[u8]]) {
    let schedule = match argv.get(1) {
        None => false,
        Some(a) if eq(a, "schedule") && argv.len() == 2 => true,
        Some(_) => return ctx.out.error(SYNTAX),
    };
    if ctx.st.rdb.in_progress.load(Ordering::Acquire) {
        if schedule {
            ctx.st.rdb.scheduled.store(true, Ordering::Release);
            return ctx.out.simple(b"Background saving scheduled");
        }
        return ctx.out.error("ERR Background save already in progress");
    }
    let Some(st) = ctx.st.arc() else { return ctx.out.error("ERR") };
    match start_bgsave(&st) {
        Ok(()) => ctx.out.simple(b"Background saving started"),
        Err(e) => ctx.out.error(&format!("ERR {e}")),
    }
}

fn dump(ctx: &mut Ctx, argv: &[&[u8]]) {
    let f = format(ctx.st);
    let (e, out) = ctx.entry(argv[1], true);
    let Some(e) = e else { return out.null() };
    out.bulk(&dump_payload(&e.value, f));
}

fn restore(ctx: &mut Ctx, argv: &[&[u8]]) {
    let (key, payload) = (argv[1], argv[3]);
    let (mut replace, mut absttl) = (false, false);
    let (mut idle, mut freq): (Option<i64>, Option<i64>) = (None, None);
    let mut i = 4;
    while i < argv.len() {
        let more = i + 1 < argv.len();
        if eq(argv[i], "replace") {
            replace = true;
        } else if eq(argv[i], "absttl") {
            absttl = true;
        } else if eq(argv[i], "idletime") && more && freq.is_none() {
            let Some(v) = crate::util::parse_i64(argv[i + 1]) else { return ctx.out.error(NOT_INT) };
            if v < 0 {
                return ctx.out.error("ERR Invalid IDLETIME value, must be >= 0");
            }
            idle = Some(v);
            i += 1;
        } else if eq(argv[i], "freq") && more && idle.is_none() {
            let Some(v) = crate::util::parse_i64(argv[i + 1]) else { return ctx.out.error(NOT_INT) };
            if !(0..=255).contains(&v) {
                return ctx.out.error("ERR Invalid FREQ value, must be >= 0 and <= 255");
            }
            freq = Some(v);
            i += 1;
        } else {
            return ctx.out.error(SYNTAX);
        }
        i += 1;
    }
    let Some(mut ttl) = crate::util::parse_i64(argv[2]) else { return ctx.out.error(NOT_INT) };
    if ttl < 0 {
        return ctx.out.error("ERR Invalid TTL value, must be >= 0");
    }
    if !replace && ctx.exists(key) {
        return ctx.out.error("BUSYKEY Target key name already exists.");
    }
    let Some(body) = rdb::dump::open(payload) else { return ctx.out.error("ERR DUMP payload version or checksum are wrong") };
    let value = match rdb::dump::value(body) {
        Ok(v) => v,
        Err(_) => return ctx.out.error("ERR Bad data format"),
    };
    let Some(value) = prdb::value_from_rdb(value, &limits(ctx.st)) else { return ctx.out.error("ERR Bad data format") };
    if ttl > 0 && !absttl {
        ttl += ctx.now;
    }
    let deleted = replace && ctx.delete_quiet(key);
    if ttl > 0 && ttl <= ctx.now {
        // Already expired: the key is only deleted (as a DEL, if there was one).
        if deleted {
            let db = ctx.db();
            ctx.deferred.push((crate::config::notify::GENERIC, "del", db, key.to_vec()));
            ctx.propagate(&[b"DEL", key]);
        } else {
            ctx.mark_propagated();
        }
        return ctx.out.ok();
    }
    ctx.store(key, value, ttl);
    if idle.is_some() || freq.is_some() {
        let lfu = ctx.st.config.hot.lfu_policy.load(Ordering::Relaxed);
        if let Some(e) = ctx.entry(key, false).0 {
            match (lfu, idle, freq) {
                (false, Some(secs), _) => e.lru = crate::keyspace::lru_clock().saturating_sub(secs.min(u32::MAX as i64) as u32),
                (true, _, Some(f)) => e.lru = (e.lru & !0xFF) | f as u32,
                _ => {}
            }
        }
    }
    // Replicas and the AOF get the command as given, with an absolute expiry (whatever their
    // clock says): the TTL rewritten and ABSTTL added, as Redis rewrites it.
    if ttl > 0 && !absttl {
        let at = ttl.to_string();
        let mut args: Vec<&[u8]> = argv.to_vec();
        args[2] = at.as_bytes();
        args.push(b"ABSTTL");
        ctx.propagate(&args);
    }
    ctx.out.ok();
}

// ---------------------------------------------------------------- AOF

fn rdb_preamble(st: &State) -> bool {
    st.config.get("aof-use-rdb-preamble").is_none_or(|v| v == "yes")
}

fn aof_configured(st: &State) -> bool {
    st.config.get("appendonly").is_some_and(|v| v == "yes")
}

/// Loads the dataset at startup: the AOF when `appendonly yes` (created when there is none,
/// as Redis 7 does), else the RDB file.
pub fn load_data(st: &State, table: &CommandTable) -> Result<(), String> {
    if !aof_configured(st) {
        return load_rdb(st);
    }
    let mut manifest = st.aof.read_manifest()?;
    if manifest.is_none() {
        manifest =
            st.aof.upgrade_single_file(std::path::Path::new(&st.aof.basename)).map_err(|e| format!("Can't upgrade the old AOF: {e}"))?;
    }
    match manifest {
        Some(m) => {
            load_aof(st, table, &m)?;
            st.aof.open_for_append(&st.journal).map_err(|e| format!("Can't open the append-only file: {e}"))
        }
        None => {
            tracing::info!("Creating AOF base file {} on server start", st.aof.next_base(rdb_preamble(st)).0);
            rewrite_aof_now(st).map_err(|e| format!("Can't create the append-only file: {e}"))
        }
    }
}

/// Replays the AOF the manifest names into the (empty) keyspace.
fn load_aof(st: &State, table: &CommandTable, m: &crate::persistence::aof::Manifest) -> Result<(), String> {
    let start = std::time::Instant::now();
    let now = crate::util::now_ms();
    let lru = loaded_lru(st, now);
    let lim = limits(st);
    let mut functions = Vec::new();
    let mut keys = 0;
    let mut load_rdb = |bytes: &[u8]| -> Result<usize, String> {
        let l = prdb::load(&st.keyspace, bytes, &lim, now, lru).map_err(|e| format!("offset {}: {}", e.offset, e.msg))?;
        functions.extend(l.functions);
        keys += l.keys;
        Ok(l.end)
    };
    let info = Arc::new(crate::state::ClientInfo { addr: "AOF".into(), ..Default::default() });
    let mut conn = super::ConnState::new(info, true);
    conn.loading = true;
    let ts = crate::state::ThreadStats::new(table.len());
    let mut out = resp::ReplyBuf::new(resp::Proto::Resp2);
    let mut exec = |argv: &[&[u8]]| -> Result<(), String> {
        if table.lookup(argv[0]).is_none() {
            return Err(format!("Unknown command '{}' reading the append only file", String::from_utf8_lossy(argv[0])));
        }
        out.buf.clear();
        super::dispatch::execute(st, table, &mut conn, &mut out, &ts, argv);
        Ok(())
    };
    let truncated_ok = st.config.get("aof-load-truncated").is_none_or(|v| v == "yes");
    let loaded = st.aof.load(m, truncated_ok, &mut load_rdb, &mut exec).map_err(|e| e.0)?;
    if !functions.is_empty() {
        super::scripting::restore_libraries(st, &functions, super::scripting::RestorePolicy::Replace)?;
    }
    tracing::info!(
        "DB loaded from append only file: {:.3} seconds ({} keys from the base, {} commands)",
        start.elapsed().as_secs_f64(),
        keys,
        loaded.commands
    );
    Ok(())
}

/// Rewrites the AOF on the calling thread: a new incr file starts at the instant of a snapshot
/// (under every stripe lock) and the snapshot becomes the new base (an RDB, as
/// aof-use-rdb-preamble's default); then the manifest drops the older files. Starts appending
/// when the AOF is configured on and was not yet running.
pub fn rewrite_aof_now(st: &State) -> Result<(), String> {
    std::fs::create_dir_all(&st.aof.dir).map_err(|e| e.to_string())?;
    let (base_name, base_seq) = st.aof.next_base(rdb_preamble(st));
    let start_appending = aof_configured(st);
    let mut incr: Result<u64, String> = Err("snapshot did not start".into());
    let started = crate::util::now_ms();
    let r = snapshot_to(st, &st.aof.path_of(&base_name), true, &mut || {
        incr = st.aof.switch_incr(&st.journal).map_err(|e| e.to_string());
        if incr.is_ok() && start_appending {
            st.aof.start_tap(&st.journal);
        }
    });
    let end = crate::util::now_ms();
    st.aof_rewrite.last_time_sec.store((end - started) / 1000, Ordering::Relaxed);
    let result = match (r, incr) {
        (Ok(_), Ok(seq)) => st.aof.install_base(&base_name, base_seq, seq).map_err(|e| e.to_string()),
        (Err(e), _) => Err(e.to_string()),
        (_, Err(e)) => Err(e),
    };
    st.aof_rewrite.last_ok.store(result.is_ok(), Ordering::Relaxed);
    if result.is_ok() {
        st.aof_rewrite.saves.fetch_add(1, Ordering::Relaxed);
        tracing::info!("Background AOF rewrite finished successfully");
    } else if let Err(e) = &result {
        tracing::warn!("Background AOF rewrite failed: {}", e);
    }
    result
}

/// BGREWRITEAOF and the automatic rewrite: on its own thread; Err when one is running.
pub fn start_aof_rewrite(st: &Arc<State>) -> Result<(), String> {
    if st.aof_rewrite.in_progress.swap(true, Ordering::AcqRel) {
        return Err("Background append only file rewriting already in progress".into());
    }
    st.aof_rewrite.started_ms.store(crate::util::now_ms(), Ordering::Relaxed);
    let st2 = st.clone();
    let spawned = std::thread::Builder::new().name("aofrewrite".into()).spawn(move || {
        // SAFETY: setpriority on this thread's own id; no memory is touched.
        unsafe {
            libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, 10);
        }
        tracing::info!("Background append only file rewriting started");
        let _ = rewrite_aof_now(&st2);
        st2.aof_rewrite.started_ms.store(0, Ordering::Relaxed);
        st2.aof_rewrite.in_progress.store(false, Ordering::Release);
    });
    if let Err(e) = spawned {
        st.aof_rewrite.in_progress.store(false, Ordering::Release);
        return Err(e.to_string());
    }
    Ok(())
}

/// CONFIG SET appendonly: yes starts the AOF with a rewrite, no stops appending.
pub fn appendonly_changed(st: &State) {
    let on = aof_configured(st);
    let running = st.aof.enabled.load(Ordering::Acquire);
    if on && !running {
        if let Some(st) = st.arc() {
            let _ = start_aof_rewrite(&st);
        }
    } else if !on && running {
        st.aof.stop(&st.journal);
    }
}

/// What a connection's replies wait for with the AOF on: the journal offset they must not pass
/// (everything appended so far) and whether it must be fsynced (appendfsync always) or only
/// written to the file (everysec, no). None when nothing is pending.
pub fn aof_reply_target(st: &State) -> Option<(u64, bool)> {
    if !st.aof.enabled.load(Ordering::Relaxed) {
        return None;
    }
    let always = st.config.hot.appendfsync.load(Ordering::Relaxed) == crate::persistence::aof::FSYNC_ALWAYS;
    let done = if always { &st.aof.synced } else { &st.aof.written };
    let target = st.journal.offset();
    (target > done.load(Ordering::Acquire)).then_some((target, always))
}

/// The AOF writer's loop (its own thread): it moves what the journal kept to the file every
/// 10 ms, and at once when a connection waits for an fsync (appendfsync always); with
/// `everysec` it fsyncs once a second. Automatic rewrites are started from here too.
pub fn aof_writer(st: Arc<State>) {
    let mut last_fsync = std::time::Instant::now();
    let mut last_check = std::time::Instant::now();
    loop {
        st.aof.wait_for_work(std::time::Duration::from_millis(10));
        if !st.aof.enabled.load(Ordering::Acquire) {
            continue;
        }
        let policy = st.config.hot.appendfsync.load(Ordering::Relaxed);
        let sync = match policy {
            crate::persistence::aof::FSYNC_ALWAYS => true,
            crate::persistence::aof::FSYNC_EVERYSEC => last_fsync.elapsed() >= std::time::Duration::from_secs(1),
            _ => false,
        };
        match st.aof.write_pending(&st.journal, sync) {
            Ok(_) if sync => last_fsync = std::time::Instant::now(),
            Ok(_) => {}
            Err(_) if policy == crate::persistence::aof::FSYNC_ALWAYS => {
                // Nothing may be acknowledged that is not on disk: as Redis, give up.
                tracing::warn!("Can't recover from AOF write error when the AOF fsync policy is 'always'. Exiting...");
                std::process::exit(1);
            }
            Err(_) => {}
        }
        if last_check.elapsed() >= std::time::Duration::from_millis(100) {
            last_check = std::time::Instant::now();
            auto_rewrite(&st);
        }
    }
}

/// auto-aof-rewrite-percentage / auto-aof-rewrite-min-size, as Redis's serverCron checks them.
fn auto_rewrite(st: &Arc<State>) {
    if st.aof_rewrite.in_progress.load(Ordering::Relaxed) || st.rdb.in_progress.load(Ordering::Relaxed) {
        return;
    }
    let pct = st.config.get_int("auto-aof-rewrite-percentage");
    let min = st.config.get_int("auto-aof-rewrite-min-size").max(0) as u64;
    let (base, current) = st.aof.sizes();
    if pct <= 0 || current <= min {
        return;
    }
    let growth = (current * 100 / base.max(1)) as i64 - 100;
    if growth >= pct {
        tracing::info!("Starting automatic rewriting of AOF on {}% growth", growth);
        let _ = start_aof_rewrite(st);
    }
}

fn bgrewriteaof(ctx: &mut Ctx, _argv: &[&[u8]]) {
    if ctx.st.aof_rewrite.in_progress.load(Ordering::Acquire) {
        return ctx.out.error("ERR Background append only file rewriting already in progress");
    }
    let Some(st) = ctx.st.arc() else { return ctx.out.error("ERR") };
    // Inside EXEC or a script Redis cannot fork and schedules the rewrite for after it: it says
    // so. (Here the rewrite starts now and waits for the transaction's locks.)
    let scheduled = ctx.capture.is_some();
    match start_aof_rewrite(&st) {
        Ok(()) if scheduled => ctx.out.simple(b"Background append only file rewriting scheduled"),
        Ok(()) => ctx.out.simple(b"Background append only file rewriting started"),
        Err(e) => ctx.out.error(&format!("ERR {e}")),
    }
}

/// DEBUG LOADAOF: writes what is pending, empties the keyspace and loads the AOF back.
pub fn debug_loadaof(st: &State, table: &CommandTable) -> Result<(), String> {
    if st.aof.enabled.load(Ordering::Acquire) {
        st.aof.write_pending(&st.journal, true).map_err(|e| e.to_string())?;
    }
    let Some(m) = st.aof.read_manifest()? else { return Err("no AOF manifest".into()) };
    empty_keyspace(st);
    // Replayed commands must not be appended again.
    let tap = st.aof.enabled.load(Ordering::Acquire);
    if tap {
        st.journal.set_aof_tap(false);
    }
    let r = load_aof(st, table, &m);
    if tap {
        st.aof.start_tap(&st.journal);
    }
    r
}

// ---------------------------------------------------------------- MIGRATE

/// MIGRATE host port key|"" destination-db timeout [COPY] [REPLACE] [AUTH password]
/// [AUTH2 username password] [KEYS key ...]: DUMPs the keys, RESTOREs them on the target (a
/// Redis or ferrodis server) over one connection, and deletes them here unless COPY. The
/// command waits for the target, as Redis's does, with `timeout` ms for each step.
fn migrate(ctx: &mut Ctx, argv: &[&[u8]]) {
    let (mut copy, mut replace) = (false, false);
    let mut auth: Vec<&[u8]> = Vec::new();
    let mut keys: Vec<&[u8]> = Vec::new();
    let mut i = 6;
    while i < argv.len() {
        let more = argv.len() - i - 1;
        if eq(argv[i], "copy") {
            copy = true;
        } else if eq(argv[i], "replace") {
            replace = true;
        } else if eq(argv[i], "auth") && more >= 1 {
            auth = vec![b"AUTH", argv[i + 1]];
            i += 1;
        } else if eq(argv[i], "auth2") && more >= 2 {
            auth = vec![b"AUTH", argv[i + 1], argv[i + 2]];
            i += 2;
        } else if eq(argv[i], "keys") {
            if !argv[3].is_empty() {
                return ctx.out.error("ERR When using MIGRATE KEYS option, the key argument must be set to the empty string");
            }
            keys.extend_from_slice(&argv[i + 1..]);
            break;
        } else {
            return ctx.out.error(SYNTAX);
        }
        i += 1;
    }
    if keys.is_empty() {
        keys.push(argv[3]);
    }
    let (Some(db), Some(mut timeout)) = (crate::util::parse_i64(argv[4]), crate::util::parse_i64(argv[5])) else {
        return ctx.out.error(NOT_INT);
    };
    if timeout <= 0 {
        timeout = 1000;
    }
    // The keys that exist, with their payloads and remaining TTLs.
    let f = format(ctx.st);
    let now = ctx.now;
    let mut found: Vec<(&[u8], Vec<u8>, i64)> = Vec::new();
    for k in &keys {
        if let Some(e) = ctx.entry(k, false).0 {
            let ttl = if e.expire == 0 { 0 } else { (e.expire - now).max(1) };
            found.push((k, dump_payload(&e.value, f), ttl));
        }
    }
    if found.is_empty() {
        return ctx.out.simple(b"NOKEY");
    }
    let host = String::from_utf8_lossy(argv[1]).into_owned();
    let port = String::from_utf8_lossy(argv[2]).into_owned();
    let t = std::time::Duration::from_millis(timeout as u64);
    let addr = match std::net::ToSocketAddrs::to_socket_addrs(&format!("{host}:{port}")).ok().and_then(|mut a| a.next()) {
        Some(a) => a,
        None => return ctx.out.error("IOERR error or timeout connecting to the client"),
    };
    let Ok(mut sock) = std::net::TcpStream::connect_timeout(&addr, t) else {
        return ctx.out.error("IOERR error or timeout connecting to the client");
    };
    let _ = sock.set_read_timeout(Some(t));
    let _ = sock.set_write_timeout(Some(t));
    let mut req = Vec::new();
    let mut push = |args: &[&[u8]]| resp::encode_command(&mut req, args);
    if !auth.is_empty() {
        push(&auth);
    }
    let db_s = db.to_string();
    push(&[b"SELECT", db_s.as_bytes()]);
    for (k, payload, ttl) in &found {
        let ttl_s = ttl.to_string();
        // In cluster mode the target may be importing the slot: RESTORE-ASKING, as Redis sends.
        let restore: &[u8] = if ctx.st.cluster.enabled.load(std::sync::atomic::Ordering::Relaxed) { b"RESTORE-ASKING" } else { b"RESTORE" };
        let mut a: Vec<&[u8]> = vec![restore, k, ttl_s.as_bytes(), payload];
        if replace {
            a.push(b"REPLACE");
        }
        push(&a);
    }
    if std::io::Write::write_all(&mut sock, &req).is_err() {
        return ctx.out.error("IOERR error or timeout writing to target instance");
    }
    let mut reader = std::io::BufReader::new(sock);
    let mut read_line = || -> Option<String> {
        let mut line = String::new();
        match std::io::BufRead::read_line(&mut reader, &mut line) {
            Ok(n) if n > 0 => Some(line.trim_end().to_string()),
            _ => None,
        }
    };
    let mut first_error: Option<String> = None;
    for _ in 0..(!auth.is_empty() as usize + 1) {
        match read_line() {
            None => return ctx.out.error("IOERR error or timeout reading to target instance"),
            Some(l) if l.starts_with('-') => return ctx.out.error(&format!("ERR Target instance replied with error: {}", &l[1..])),
            Some(_) => {}
        }
    }
    let mut moved: Vec<&[u8]> = Vec::new();
    for (k, _, _) in &found {
        match read_line() {
            None => {
                first_error.get_or_insert_with(|| "IOERR error or timeout reading to target instance".into());
                break;
            }
            Some(l) if l.starts_with('-') => {
                first_error.get_or_insert(format!("ERR Target instance replied with error: {}", &l[1..]));
            }
            Some(_) => moved.push(k),
        }
    }
    if !copy && !moved.is_empty() {
        let mut del: Vec<&[u8]> = vec![b"DEL"];
        for k in &moved {
            ctx.delete(k);
            del.push(k);
        }
        // Replicas and the AOF see the keys go (MIGRATE is propagated as DEL, as Redis does).
        ctx.propagate(&del);
    } else {
        ctx.mark_propagated();
    }
    match first_error {
        Some(e) => ctx.out.error(&e),
        None => ctx.out.ok(),
    }
}
