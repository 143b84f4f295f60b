//! RDB persistence commands (Redis's rdb.c and the DUMP/RESTORE of cluster.c): SAVE, BGSAVE
//! [SCHEDULE], DUMP, RESTORE; and what the server calls for save points, shutdown and startup:
//! `save_rdb`, `start_bgsave`, `load_rdb`.
//!
//! A save is a fork-less snapshot (`persistence::rdb::save`): clients keep running while it is
//! written; the file holds the keyspace as it was when the save began.

use super::table::{cmd, flag::*, CommandSpec, ONE_KEY};
use super::{eq, Ctx, NOT_INT, SYNTAX};
use crate::persistence::rdb as prdb;
use crate::state::State;
use std::sync::atomic::Ordering;
use std::sync::Arc;

pub static COMMANDS: &[CommandSpec] = &[
    cmd("save", 1, ADMIN | NOSCRIPT | NO_ASYNC_LOADING | NO_MULTI, "@admin @slow @dangerous", super::table::NO_KEYS, save),
    cmd("bgsave", -1, ADMIN | NOSCRIPT | NO_ASYNC_LOADING, "@admin @slow @dangerous", super::table::NO_KEYS, bgsave),
    cmd("dump", 2, READONLY, "@keyspace @read @slow", ONE_KEY, dump),
    cmd("restore", -4, WRITE | DENYOOM, "@keyspace @write @slow @dangerous", ONE_KEY, restore),
];

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
    prdb::Format { compress: st.config.get("rdbcompression").is_none_or(|v| v == "yes"), list_node_bytes }
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
    let functions = super::scripting::library_codes(st);
    let path = rdb_path(st);
    let checksum = st.config.get("rdbchecksum").is_none_or(|v| v == "yes");
    let r = prdb::save(&st.keyspace, &path, format(st), checksum, &functions, || {
        // At the snapshot's instant: what it holds is the changes counted so far.
        dirty_before.set(st.dirty.load(Ordering::Relaxed));
        vec![
            ("redis-ver".into(), crate::REDIS_VERSION.into()),
            ("redis-bits".into(), "64".into()),
            ("ctime".into(), (start / 1000).to_string()),
            ("used-mem".into(), super::server::used_memory().0.to_string()),
            ("aof-base".into(), "0".into()),
        ]
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
    let lfu = st.config.hot.lfu_policy.load(Ordering::Relaxed);
    let now = crate::util::now_ms();
    let lru = if lfu { crate::keyspace::lfu::new(now) } else { (now / 1000) as u32 };
    let loaded = prdb::load(&st.keyspace, &bytes, &limits(st), now, lru)
        .map_err(|e| format!("Fatal error loading the DB from {} at offset {}: {}. Exiting.", path.display(), e.offset, e.msg))?;
    if !loaded.functions.is_empty() {
        super::scripting::restore_libraries(st, &loaded.functions, policy)
            .map_err(|e| format!("Failed loading the functions of {}: {e}. Exiting.", path.display()))?;
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
    let mut body = Vec::new();
    prdb::encode_value(&mut body, None, &e.value, f);
    out.bulk(&rdb::dump::seal(body));
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
    // Replicas and the AOF get an absolute expiry, whatever their clock says.
    let at = ttl.to_string();
    if ttl > 0 {
        ctx.propagate(&[b"RESTORE", key, at.as_bytes(), payload, b"REPLACE", b"ABSTTL"]);
    } else {
        ctx.propagate(&[b"RESTORE", key, b"0", payload, b"REPLACE"]);
    }
    ctx.out.ok();
}
