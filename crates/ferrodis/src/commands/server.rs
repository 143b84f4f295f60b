//! Server commands: INFO, CONFIG, COMMAND, TIME, LASTSAVE, SLOWLOG, LATENCY, MEMORY, DEBUG,
//! SHUTDOWN.
#![allow(unreachable_patterns, irrefutable_let_patterns)]

use super::table::{cmd, container, container_with, flag, flag::*, CommandSpec, Keys, NO_KEYS};
use super::{eq, reply_help as help, Ctx, SYNTAX};
use crate::keyspace::{SLOTS, STRIPES};
use crate::state::{ShutdownRequest, ThreadStats};
use crate::types::Value;
use crate::util::parse_i64;
use std::fmt::Write;
use std::sync::atomic::Ordering;

const ADMIN_ACL: &str = "@admin @slow @dangerous";

pub static COMMANDS: &[CommandSpec] = &[
    cmd("info", -1, LOADING | STALE, "@slow @dangerous", NO_KEYS, info),
    container("config", -2, "@slow", CONFIG),
    container_with("command", -1, LOADING | STALE, "@slow @connection", command_all, COMMAND),
    cmd("time", 1, LOADING | STALE | FAST, "@fast", NO_KEYS, time),
    cmd("lastsave", 1, LOADING | STALE | FAST, "@admin @fast @dangerous", NO_KEYS, lastsave),
    container("slowlog", -2, "@slow", SLOWLOG),
    container("latency", -2, "@slow", LATENCY),
    container("memory", -2, "@slow", MEMORY),
    container("module", -2, "@slow", MODULE),
    cmd("debug", -2, ADMIN | NOSCRIPT | LOADING | STALE, ADMIN_ACL, NO_KEYS, debug),
    cmd("lolwut", -1, READONLY | FAST, "@read @fast", NO_KEYS, lolwut),
    cmd("monitor", 1, ADMIN | NOSCRIPT | LOADING | STALE, ADMIN_ACL, NO_KEYS, monitor),
    cmd("shutdown", -1, ADMIN | NOSCRIPT | LOADING | STALE | NO_MULTI | ALLOW_BUSY, ADMIN_ACL, NO_KEYS, shutdown),
];

static CONFIG: &[CommandSpec] = &[
    cmd("get", -3, ADMIN | NOSCRIPT | LOADING | STALE, ADMIN_ACL, NO_KEYS, config_get),
    cmd("set", -4, ADMIN | NOSCRIPT | LOADING | STALE, ADMIN_ACL, NO_KEYS, config_set),
    cmd("resetstat", 2, ADMIN | NOSCRIPT | LOADING | STALE, ADMIN_ACL, NO_KEYS, config_resetstat),
    cmd("rewrite", 2, ADMIN | NOSCRIPT | LOADING | STALE, ADMIN_ACL, NO_KEYS, config_rewrite),
    cmd("help", 2, LOADING | STALE, "@slow", NO_KEYS, config_help),
];

static COMMAND: &[CommandSpec] = &[
    cmd("count", 2, LOADING | STALE, "@slow @connection", NO_KEYS, command_count),
    cmd("info", -2, LOADING | STALE, "@slow @connection", NO_KEYS, command_info),
    cmd("docs", -2, LOADING | STALE, "@slow @connection", NO_KEYS, command_docs),
    cmd("list", -2, LOADING | STALE, "@slow @connection", NO_KEYS, command_list),
    cmd("getkeys", -4, LOADING | STALE, "@slow @connection", NO_KEYS, command_getkeys),
    cmd("getkeysandflags", -4, LOADING | STALE, "@slow @connection", NO_KEYS, command_getkeysandflags),
    cmd("help", 2, LOADING | STALE, "@slow @connection", NO_KEYS, command_help),
];

static SLOWLOG: &[CommandSpec] = &[
    cmd("get", -2, ADMIN | LOADING | STALE, ADMIN_ACL, NO_KEYS, slowlog_get),
    cmd("len", 2, ADMIN | LOADING | STALE, ADMIN_ACL, NO_KEYS, slowlog_len),
    cmd("reset", 2, ADMIN | LOADING | STALE, ADMIN_ACL, NO_KEYS, slowlog_reset),
    cmd("help", 2, LOADING | STALE, "@slow", NO_KEYS, slowlog_help),
];

static LATENCY: &[CommandSpec] = &[
    cmd("latest", 2, ADMIN | NOSCRIPT | LOADING | STALE, ADMIN_ACL, NO_KEYS, latency_latest),
    cmd("history", 3, ADMIN | NOSCRIPT | LOADING | STALE, ADMIN_ACL, NO_KEYS, latency_history),
    cmd("reset", -2, ADMIN | NOSCRIPT | LOADING | STALE, ADMIN_ACL, NO_KEYS, latency_reset),
    cmd("histogram", -2, ADMIN | NOSCRIPT | LOADING | STALE, ADMIN_ACL, NO_KEYS, latency_histogram),
    cmd("doctor", 2, ADMIN | NOSCRIPT | LOADING | STALE, ADMIN_ACL, NO_KEYS, latency_doctor),
    cmd("help", 2, LOADING | STALE, "@slow", NO_KEYS, latency_help),
];

/// MODULE: ferrodis loads no modules. LIST answers none; LOAD, LOADEX and UNLOAD are
/// refused unless `enable-module-command` allows them, and then fail as Redis fails to load.
static MODULE: &[CommandSpec] = &[
    cmd("list", 2, ADMIN | NOSCRIPT, ADMIN_ACL, NO_KEYS, module_list),
    cmd("load", -3, ADMIN | NOSCRIPT, ADMIN_ACL, NO_KEYS, module_load),
    cmd("loadex", -3, ADMIN | NOSCRIPT, ADMIN_ACL, NO_KEYS, module_load),
    cmd("unload", 3, ADMIN | NOSCRIPT, ADMIN_ACL, NO_KEYS, module_unload),
    cmd("help", 2, LOADING | STALE, "@slow", NO_KEYS, module_help),
];

static MEMORY: &[CommandSpec] = &[
    cmd("usage", -3, READONLY, "@read @slow", Keys::Range { first: 2, last: 2, step: 1 }, memory_usage),
    cmd("stats", 2, 0, "@slow", NO_KEYS, memory_stats),
    cmd("doctor", 2, 0, "@slow", NO_KEYS, memory_doctor),
    cmd("malloc-stats", 2, 0, "@slow", NO_KEYS, memory_malloc_stats),
    cmd("purge", 2, 0, "@slow", NO_KEYS, memory_purge),
    cmd("help", 2, LOADING | STALE, "@slow", NO_KEYS, memory_help),
];

// ---------------------------------------------------------------- INFO

pub(crate) fn used_memory() -> (u64, u64, u64) {
    use tikv_jemalloc_ctl::{epoch, stats};
    let _ = epoch::advance();
    (stats::allocated::read().unwrap_or(0) as u64, stats::active::read().unwrap_or(0) as u64, stats::resident::read().unwrap_or(0) as u64)
}

fn rss() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|v| v.parse::<u64>().ok()))
        .map_or(0, |p| p * 4096)
}

fn human(b: u64) -> String {
    let b = b as f64;
    if b < 1024.0 {
        format!("{}B", b as u64)
    } else if b < 1024.0 * 1024.0 {
        format!("{:.2}K", b / 1024.0)
    } else if b < 1024.0 * 1024.0 * 1024.0 {
        format!("{:.2}M", b / 1024.0 / 1024.0)
    } else {
        format!("{:.2}G", b / 1024.0 / 1024.0 / 1024.0)
    }
}

fn cpu_times() -> (f64, f64) {
    // SAFETY: getrusage fills the struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    (t(ru.ru_utime), t(ru.ru_stime))
}

/// Builds INFO's text for the named sections (Redis 7.0's fields and order).
pub fn info_text(ctx: &Ctx, sections: &[String]) -> String {
    let st = ctx.st;
    let all = sections.iter().any(|s| s == "all" || s == "everything");
    let default = sections.is_empty() || sections.iter().any(|s| s == "default");
    let want = |name: &str| all || sections.iter().any(|s| s == name) || (default && !matches!(name, "commandstats" | "latencystats"));
    let mut s = String::new();
    let cfg = &st.config;
    if want("server") {
        let uptime = st.uptime_s();
        let _ = write!(
            s,
            "# Server\r\nredis_version:{}\r\nferrodis_version:{}\r\nredis_git_sha1:00000000\r\nredis_git_dirty:0\r\nredis_build_id:0\r\nredis_mode:{}\r\nos:{} {}\r\narch_bits:64\r\nmonotonic_clock:POSIX clock_gettime\r\nmultiplexing_api:epoll\r\natomicvar_api:c11-builtin\r\ngcc_version:0.0.0\r\nprocess_id:{}\r\nprocess_supervised:no\r\nrun_id:{}\r\ntcp_port:{}\r\nserver_time_usec:{}\r\nuptime_in_seconds:{}\r\nuptime_in_days:{}\r\nhz:{}\r\nconfigured_hz:{}\r\nlru_clock:{}\r\nexecutable:{}\r\nconfig_file:{}\r\nio_threads_active:{}\r\n",
            crate::REDIS_VERSION,
            env!("CARGO_PKG_VERSION"),
            if st.cluster.enabled.load(std::sync::atomic::Ordering::Relaxed) { "cluster" } else { "standalone" },
            std::env::consts::OS,
            std::env::consts::ARCH,
            std::process::id(),
            st.run_id,
            st.tcp_port,
            crate::util::now_us(),
            uptime,
            uptime / 86400,
            cfg.hot.hz.load(Ordering::Relaxed),
            cfg.hot.hz.load(Ordering::Relaxed),
            crate::keyspace::lru_clock() & 0xFF_FFFF,
            st.executable,
            cfg.file.clone().unwrap_or_default(),
            (st.stats.threads.lock().len() > 1) as i32,
        );
    }
    if want("clients") {
        let _ = write!(
            s,
            "{}# Clients\r\nconnected_clients:{}\r\ncluster_connections:0\r\nmaxclients:{}\r\nclient_recent_max_input_buffer:0\r\nclient_recent_max_output_buffer:0\r\nblocked_clients:{}\r\ntracking_clients:{}\r\nclients_in_timeout_table:{}\r\n",
            if s.is_empty() { "" } else { "\r\n" },
            st.clients.count(),
            cfg.hot.maxclients.load(Ordering::Relaxed),
            st.blocking.len() + st.paused_clients.load(Ordering::Relaxed),
            st.tracking.clients(),
            st.blocking.len()
        );
    }
    if want("memory") {
        let (alloc, active, resident) = used_memory();
        let rss = rss();
        let maxmem = cfg.get_int("maxmemory") as u64;
        let _ = write!(
            s,
            "{}# Memory\r\nused_memory:{alloc}\r\nused_memory_human:{}\r\nused_memory_rss:{rss}\r\nused_memory_rss_human:{}\r\nused_memory_peak:{alloc}\r\nused_memory_peak_human:{}\r\nused_memory_peak_perc:100.00%\r\nused_memory_overhead:0\r\nused_memory_startup:0\r\nused_memory_dataset:{alloc}\r\nused_memory_dataset_perc:100.00%\r\nallocator_allocated:{alloc}\r\nallocator_active:{active}\r\nallocator_resident:{resident}\r\ntotal_system_memory:{}\r\ntotal_system_memory_human:{}\r\nused_memory_lua:31744\r\nused_memory_vm_eval:31744\r\nused_memory_lua_human:31.00K\r\nused_memory_scripts_eval:0\r\nnumber_of_cached_scripts:0\r\nnumber_of_functions:0\r\nnumber_of_libraries:0\r\nused_memory_vm_functions:32768\r\nused_memory_vm_total:64512\r\nused_memory_vm_total_human:63.00K\r\nused_memory_functions:184\r\nused_memory_scripts:184\r\nused_memory_scripts_human:184B\r\nmaxmemory:{maxmem}\r\nmaxmemory_human:{}\r\nmaxmemory_policy:{}\r\nallocator_frag_ratio:{:.2}\r\nallocator_frag_bytes:{}\r\nallocator_rss_ratio:{:.2}\r\nallocator_rss_bytes:{}\r\nrss_overhead_ratio:{:.2}\r\nrss_overhead_bytes:{}\r\nmem_fragmentation_ratio:{:.2}\r\nmem_fragmentation_bytes:{}\r\nmem_not_counted_for_evict:0\r\nmem_replication_backlog:{}\r\nmem_total_replication_buffers:0\r\nmem_clients_slaves:0\r\nmem_clients_normal:{}\r\nmem_cluster_links:0\r\nmem_aof_buffer:0\r\nmem_allocator:jemalloc-5.3.0\r\nactive_defrag_running:0\r\nlazyfree_pending_objects:0\r\nlazyfreed_objects:0\r\n",
            if s.is_empty() { "" } else { "\r\n" },
            human(alloc),
            human(rss),
            human(alloc),
            total_memory(),
            human(total_memory()),
            human(maxmem),
            cfg.get("maxmemory-policy").unwrap_or_default(),
            active as f64 / alloc.max(1) as f64,
            active.saturating_sub(alloc),
            resident as f64 / active.max(1) as f64,
            resident.saturating_sub(active),
            rss as f64 / resident.max(1) as f64,
            rss.saturating_sub(resident),
            rss as f64 / alloc.max(1) as f64,
            rss as i64 - alloc as i64,
            st.journal.backlog().1,
            st.clients.mem_total.load(Ordering::Relaxed),
        );
    }
    if want("persistence") {
        let _ = write!(
            s,
            "{}# Persistence\r\nloading:0\r\nasync_loading:0\r\ncurrent_cow_peak:0\r\ncurrent_cow_size:0\r\ncurrent_cow_size_age:0\r\ncurrent_fork_perc:0.00\r\ncurrent_save_keys_processed:0\r\ncurrent_save_keys_total:0\r\nrdb_changes_since_last_save:{}\r\nrdb_bgsave_in_progress:{}\r\nrdb_last_save_time:{}\r\nrdb_last_bgsave_status:{}\r\nrdb_last_bgsave_time_sec:{}\r\nrdb_current_bgsave_time_sec:{}\r\nrdb_saves:{}\r\nrdb_last_cow_size:0\r\nrdb_last_load_keys_expired:{}\r\nrdb_last_load_keys_loaded:{}\r\naof_enabled:{}\r\naof_rewrite_in_progress:{}\r\naof_rewrite_scheduled:0\r\naof_last_rewrite_time_sec:{}\r\naof_current_rewrite_time_sec:{}\r\naof_last_bgrewrite_status:{}\r\naof_rewrites:{}\r\naof_rewrites_consecutive_failures:0\r\naof_last_write_status:{}\r\naof_last_cow_size:0\r\nmodule_fork_in_progress:0\r\nmodule_fork_last_cow_size:0\r\n{}",
            if s.is_empty() { "" } else { "\r\n" },
            st.dirty.load(Ordering::Relaxed),
            st.rdb.in_progress.load(Ordering::Relaxed) as u8,
            st.lastsave.load(Ordering::Relaxed),
            if st.rdb.last_ok.load(Ordering::Relaxed) { "ok" } else { "err" },
            st.rdb.last_time_sec.load(Ordering::Relaxed),
            match st.rdb.started_ms.load(Ordering::Relaxed) {
                0 => -1,
                t => (crate::util::now_ms() - t) / 1000,
            },
            st.rdb.saves.load(Ordering::Relaxed),
            st.rdb.last_load_expired.load(Ordering::Relaxed),
            st.rdb.last_load_loaded.load(Ordering::Relaxed),
            st.aof.enabled.load(Ordering::Relaxed) as u8,
            st.aof_rewrite.in_progress.load(Ordering::Relaxed) as u8,
            st.aof_rewrite.last_time_sec.load(Ordering::Relaxed),
            match st.aof_rewrite.started_ms.load(Ordering::Relaxed) {
                0 => -1,
                t => (crate::util::now_ms() - t) / 1000,
            },
            if st.aof_rewrite.last_ok.load(Ordering::Relaxed) { "ok" } else { "err" },
            st.aof_rewrite.saves.load(Ordering::Relaxed),
            if st.aof.write_error.load(Ordering::Relaxed) { "err" } else { "ok" },
            if st.aof.enabled.load(Ordering::Relaxed) {
                let (base, current) = st.aof.sizes();
                format!(
                    "aof_current_size:{current}\r\naof_base_size:{base}\r\naof_pending_rewrite:0\r\naof_buffer_length:{}\r\naof_pending_bio_fsync:0\r\naof_delayed_fsync:0\r\n",
                    st.journal.aof_pending()
                )
            } else {
                String::new()
            },
        );
    }
    if want("stats") {
        let sum = |f: fn(&ThreadStats) -> &std::sync::atomic::AtomicU64| st.stats.sum(f);
        let total = sum(|t| &t.commands);
        let inst = st.stats.instantaneous.lock().rates();
        let _ = write!(
            s,
            "{}# Stats\r\ntotal_connections_received:{}\r\ntotal_commands_processed:{}\r\ninstantaneous_ops_per_sec:{}\r\ntotal_net_input_bytes:{}\r\ntotal_net_output_bytes:{}\r\ntotal_net_repl_input_bytes:0\r\ntotal_net_repl_output_bytes:0\r\ninstantaneous_input_kbps:{:.2}\r\ninstantaneous_output_kbps:{:.2}\r\ninstantaneous_input_repl_kbps:0.00\r\ninstantaneous_output_repl_kbps:0.00\r\nrejected_connections:{}\r\nsync_full:{}\r\nsync_partial_ok:{}\r\nsync_partial_err:{}\r\nexpired_keys:{}\r\nexpired_stale_perc:0.00\r\nexpired_time_cap_reached_count:0\r\nexpire_cycle_cpu_milliseconds:{}\r\nevicted_keys:{}\r\nevicted_clients:{}\r\ntotal_eviction_exceeded_time:0\r\ncurrent_eviction_exceeded_time:0\r\nkeyspace_hits:{}\r\nkeyspace_misses:{}\r\npubsub_channels:{}\r\npubsub_patterns:{}\r\npubsubshard_channels:{}\r\nlatest_fork_usec:0\r\ntotal_forks:0\r\nmigrate_cached_sockets:0\r\nslave_expires_tracked_keys:0\r\nactive_defrag_hits:0\r\nactive_defrag_misses:0\r\nactive_defrag_key_hits:0\r\nactive_defrag_key_misses:0\r\ntotal_active_defrag_time:0\r\ncurrent_active_defrag_time:0\r\ntracking_total_keys:{}\r\ntracking_total_items:{}\r\ntracking_total_prefixes:{}\r\nunexpected_error_replies:0\r\ntotal_error_replies:{}\r\ndump_payload_sanitizations:0\r\ntotal_reads_processed:{}\r\ntotal_writes_processed:{}\r\nio_threaded_reads_processed:0\r\nio_threaded_writes_processed:0\r\nreply_buffer_shrinks:0\r\nreply_buffer_expands:0\r\nclient_query_buffer_limit_disconnections:{}\r\nclient_output_buffer_limit_disconnections:{}\r\n",
            if s.is_empty() { "" } else { "\r\n" },
            st.stats.connections_received.load(Ordering::Relaxed),
            total,
            inst.0,
            sum(|t| &t.net_in),
            sum(|t| &t.net_out),
            inst.1,
            inst.2,
            st.stats.rejected_connections.load(Ordering::Relaxed),
            st.repl.sync_full.load(Ordering::Relaxed),
            st.repl.sync_partial_ok.load(Ordering::Relaxed),
            st.repl.sync_partial_err.load(Ordering::Relaxed),
            st.stats.expired_keys.load(Ordering::Relaxed) + sum(|t| &t.expired),
            st.stats.expire_cycle_cpu_ms.load(Ordering::Relaxed),
            st.evict.evicted.load(Ordering::Relaxed),
            st.clients.evicted.load(Ordering::Relaxed),
            sum(|t| &t.hits),
            sum(|t| &t.misses),
            st.pubsub.count(crate::state::pubsub::Kind::Channel),
            st.pubsub.count(crate::state::pubsub::Kind::Pattern),
            st.pubsub.count(crate::state::pubsub::Kind::Shard),
            st.tracking.total_keys(),
            st.tracking.total_items(),
            st.tracking.total_prefixes(),
            st.stats.total_error_replies.load(Ordering::Relaxed),
            total,
            total,
            st.stats.client_query_buffer_limit_disconnections.load(Ordering::Relaxed),
            st.stats.client_output_buffer_limit_disconnections.load(Ordering::Relaxed),
        );
    }
    if want("replication") {
        let _ = write!(s, "{}# Replication\r\n{}", if s.is_empty() { "" } else { "\r\n" }, st.repl.info(&st.journal, &st.config));
    }
    if want("cpu") {
        let (u, sy) = cpu_times();
        let _ = write!(
            s,
            "{}# CPU\r\nused_cpu_sys:{:.6}\r\nused_cpu_user:{:.6}\r\nused_cpu_sys_children:0.000000\r\nused_cpu_user_children:0.000000\r\nused_cpu_sys_main_thread:{:.6}\r\nused_cpu_user_main_thread:{:.6}\r\n",
            if s.is_empty() { "" } else { "\r\n" },
            sy,
            u,
            sy,
            u
        );
    }
    if want("modules") {
        let _ = write!(s, "{}# Modules\r\n", if s.is_empty() { "" } else { "\r\n" });
    }
    if want("commandstats") {
        let _ = write!(s, "{}# Commandstats\r\n", if s.is_empty() { "" } else { "\r\n" });
        for id in 0..ctx.table.len() {
            let (calls, usec, rejected, failed) = st.stats.cmd(id);
            if calls + rejected + failed == 0 {
                continue;
            }
            let _ = write!(
                s,
                "cmdstat_{}:calls={},usec={},usec_per_call={:.2},rejected_calls={},failed_calls={}\r\n",
                ctx.table.full_name(id),
                calls,
                usec,
                if calls > 0 { usec as f64 / calls as f64 } else { 0.0 },
                rejected,
                failed
            );
        }
    }
    if want("errorstats") {
        let _ = write!(s, "{}# Errorstats\r\n", if s.is_empty() { "" } else { "\r\n" });
        for (k, v) in st.stats.errors.lock().iter() {
            let _ = write!(s, "errorstat_{}:count={}\r\n", k, v);
        }
    }
    if want("latencystats") {
        let _ = write!(s, "{}# Latencystats\r\n", if s.is_empty() { "" } else { "\r\n" });
        let percentiles: Vec<(String, f64)> = cfg
            .get("latency-tracking-info-percentiles")
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|p| p.parse::<f64>().ok().map(|v| (p.to_string(), v)))
            .collect();
        for id in 0..ctx.table.len() {
            let counts = st.stats.latency(id);
            if counts.iter().all(|&c| c == 0) {
                continue;
            }
            let values: Vec<String> = percentiles
                .iter()
                .map(|(name, p)| format!("p{}={:.3}", name, crate::state::stats::Histogram::value_at(&counts, *p) as f64 / 1000.0))
                .collect();
            let _ = write!(s, "latency_percentiles_usec_{}:{}\r\n", ctx.table.full_name(id), values.join(","));
        }
    }
    if want("cluster") {
        let on = st.cluster.enabled.load(std::sync::atomic::Ordering::Relaxed) as u8;
        let _ = write!(s, "{}# Cluster\r\ncluster_enabled:{}\r\n", if s.is_empty() { "" } else { "\r\n" }, on);
    }
    if want("keyspace") {
        let _ = write!(s, "{}# Keyspace\r\n", if s.is_empty() { "" } else { "\r\n" });
        for db in 0..st.keyspace.databases {
            let (keys, expires) = st.keyspace.db_counts(db);
            if keys > 0 {
                let _ = write!(s, "db{}:keys={},expires={},avg_ttl=0\r\n", db, keys, expires);
            }
        }
    }
    s
}

fn total_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines().find(|l| l.starts_with("MemTotal:")).and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse::<u64>().ok()))
        })
        .map_or(0, |kb| kb * 1024)
}

fn info(ctx: &mut Ctx, argv: &[&[u8]]) {
    let sections: Vec<String> = argv[1..].iter().map(|a| String::from_utf8_lossy(a).to_ascii_lowercase()).collect();
    let s = info_text(ctx, &sections);
    ctx.out.verbatim(s.as_bytes());
}

// ---------------------------------------------------------------- CONFIG

fn config_get(ctx: &mut Ctx, argv: &[&[u8]]) {
    let mut pairs: Vec<(String, String)> = Vec::new();
    for p in &argv[2..] {
        for (k, v) in ctx.st.config.matching(p) {
            if !pairs.iter().any(|(n, _)| *n == k) {
                pairs.push((k, v));
            }
        }
    }
    ctx.out.map(pairs.len());
    for (k, v) in pairs {
        ctx.out.bulk(k.as_bytes());
        ctx.out.bulk(v.as_bytes());
    }
}

fn config_set(ctx: &mut Ctx, argv: &[&[u8]]) {
    if !argv.len().is_multiple_of(2) {
        ctx.out.error(&format!(
            "ERR Unknown option or number of arguments for CONFIG SET - '{}'",
            String::from_utf8_lossy(argv[argv.len() - 1])
        ));
        return;
    }
    let cfg = &ctx.st.config;
    let mut seen: Vec<String> = Vec::new();
    let mut updates: Vec<(String, String)> = Vec::new();
    for p in argv[2..].chunks(2) {
        let name = String::from_utf8_lossy(p[0]).to_string();
        let canon = crate::config::canonical(&name);
        if !cfg.exists(&name) {
            ctx.out.error(&format!("ERR Unknown option or number of arguments for CONFIG SET - '{}'", name));
            return;
        }
        if seen.contains(&canon) {
            ctx.out.error(&format!("ERR CONFIG SET failed (possibly related to argument '{}') - duplicate parameter", name));
            return;
        }
        seen.push(canon.clone());
        // Redis 7 rebinds its listeners on CONFIG SET port/bind; ferrodis cannot yet, so it refuses
        // instead of storing a value it would not apply.
        // (Setting them to the value they have changes nothing, and is accepted.)
        let unchanged = || {
            let cur = cfg.get(&canon).unwrap_or_default();
            cur.split_whitespace().eq(String::from_utf8_lossy(p[1]).split_whitespace())
        };
        if cfg.immutable(&name) || (matches!(canon.as_str(), "port" | "bind" | "tls-port") && !unchanged()) {
            ctx.out.error(&format!("ERR CONFIG SET failed (possibly related to argument '{}') - can't set immutable config", name));
            return;
        }
        if cfg.protected(&name) && !super::allowed_by(ctx, "enable-protected-configs") {
            ctx.out.error(&format!("ERR CONFIG SET failed (possibly related to argument '{}') - can't set protected config", name));
            return;
        }
        let v = String::from_utf8_lossy(p[1]).to_string();
        let words: Vec<String> = if crate::config::MULTI_ARG.contains(&canon.as_str()) {
            let w: Vec<String> = v.split_whitespace().map(String::from).collect();
            if w.is_empty() {
                vec![String::new()]
            } else {
                w
            }
        } else {
            vec![v]
        };
        match cfg.validate(&canon, &words) {
            Ok(val) => updates.push((canon, val)),
            Err(e) => {
                ctx.out.error(&format!("ERR CONFIG SET failed (possibly related to argument '{}') - {}", name, e));
                return;
            }
        }
    }
    // `dir` takes effect at once, as in Redis: the server works in that directory from now on
    // (and CONFIG GET dir answers it, absolute). Last, so that nothing else can fail after it.
    if let Some(at) = updates.iter().position(|(k, _)| k == "dir") {
        match std::env::set_current_dir(&updates[at].1).and_then(|_| std::env::current_dir()) {
            Ok(cwd) => updates[at].1 = cwd.display().to_string(),
            Err(e) => {
                let text = e.to_string();
                let text = text.split(" (os error").next().unwrap_or_default();
                ctx.out.error(&format!("ERR CONFIG SET failed (possibly related to argument 'dir') - {}", text));
                return;
            }
        }
    }
    let aof_changed = updates.iter().any(|(k, _)| k == "appendonly");
    let tls_changed = updates.iter().find(|(k, _)| k.starts_with("tls-")).map(|(k, _)| k.clone());
    // The values before, to put back if the new TLS configuration does not build.
    let old: Vec<(String, String)> = match tls_changed {
        Some(_) => updates.iter().map(|(k, _)| (k.clone(), cfg.get(k).unwrap_or_default())).collect(),
        None => Vec::new(),
    };
    for (k, v) in updates {
        cfg.set_validated(&k, v);
    }
    // TLS is rebuilt from the new values; if that fails, nothing of this CONFIG SET stays.
    if let Some(name) = tls_changed {
        if crate::net::tls::wanted(cfg) {
            match crate::net::tls::configure(cfg) {
                Ok(t) => *ctx.st.tls.write() = Some(t),
                Err(e) => {
                    tracing::warn!("{}", e);
                    for (k, v) in old {
                        if k == "dir" {
                            let _ = std::env::set_current_dir(&v);
                        }
                        cfg.set_validated(&k, v);
                    }
                    ctx.out.error(&format!(
                        "ERR CONFIG SET failed (possibly related to argument '{}') - Unable to update TLS configuration. Check server logs.",
                        name
                    ));
                    return;
                }
            }
        }
    }
    if aof_changed {
        super::persistence::appendonly_changed(ctx.st);
    }
    ctx.st.apply_replication_limits();
    if seen.iter().any(|k| k == "requirepass") {
        ctx.st.sync_requirepass();
    }
    if seen.iter().any(|k| k == "acl-pubsub-default") {
        ctx.st.sync_acl_pubsub_default();
    }
    // A lower maxmemory evicts at once, as Redis applies it (not at the next command).
    if seen.iter().any(|k| k == "maxmemory") {
        super::evict::perform(ctx.st, ctx.now);
    }
    ctx.out.ok();
}

fn config_resetstat(ctx: &mut Ctx, _argv: &[&[u8]]) {
    ctx.st.stats.reset();
    ctx.st.slowlog.lock().entries.clear();
    ctx.out.ok();
}

fn config_rewrite(ctx: &mut Ctx, _argv: &[&[u8]]) {
    match ctx.st.config.rewrite() {
        Ok(()) => ctx.out.ok(),
        Err(e) => ctx.out.error(&e),
    }
}

fn config_help(ctx: &mut Ctx, _argv: &[&[u8]]) {
    help(
        ctx,
        &[
            "CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "GET <pattern>",
            "    Return parameters matching the glob-like <pattern> and their values.",
            "SET <directive> <value>",
            "    Set the configuration <directive> to <value>.",
            "RESETSTAT",
            "    Reset statistics reported by the INFO command.",
            "REWRITE",
            "    Rewrite the configuration file.",
            "HELP",
            "    Print this help.",
        ],
    );
}

// ---------------------------------------------------------------- COMMAND

fn reply_command_info(ctx: &mut Ctx, id: usize) {
    let spec = ctx.table.spec(id);
    let full = ctx.table.full_name(id).to_string();
    let mut flags: Vec<&str> = flag::NAMES.iter().filter(|(f, _)| spec.flags & f != 0).map(|(_, n)| *n).collect();
    // Redis derives "movablekeys" for commands whose key positions depend on their arguments.
    if matches!(spec.keys, Keys::NumKeys { .. } | Keys::Custom { .. }) {
        flags.push("movablekeys");
    }
    let acl: Vec<&str> = spec.acl.split_whitespace().collect();
    let (first, last, step) = spec.legacy_range();
    ctx.out.array(10);
    ctx.out.bulk(full.as_bytes());
    ctx.out.int(spec.arity as i64);
    ctx.out.set(flags.len());
    for f in flags {
        ctx.out.simple(f.as_bytes());
    }
    ctx.out.int(first);
    ctx.out.int(last);
    ctx.out.int(step);
    ctx.out.set(acl.len());
    for a in acl {
        ctx.out.simple(a.as_bytes());
    }
    ctx.out.array(0); // tips
                      // Key specs: one range spec when the command has keys.
    match spec.keys {
        Keys::None => ctx.out.array(0),
        Keys::Range { first, last, step } | Keys::Custom { first, last, step, .. } => {
            ctx.out.array(1);
            key_spec(
                ctx,
                spec.is_write(),
                "index",
                first as i64,
                "range",
                &[("lastkey", last as i64), ("step", step as i64), ("limit", 0)],
            );
        }
        Keys::NumKeys { numkeys, first, step } => {
            ctx.out.array(1);
            key_spec(
                ctx,
                spec.is_write(),
                "index",
                numkeys as i64,
                "keynum",
                &[("keynumidx", 0), ("firstkey", (first - numkeys) as i64), ("step", step as i64)],
            );
        }
    }
    let subs: Vec<usize> =
        spec.subcommands.iter().filter_map(|s| ctx.table.lookup(format!("{}|{}", spec.name, s.name).as_bytes())).collect();
    ctx.out.array(subs.len());
    for sid in subs {
        reply_command_info(ctx, sid);
    }
}

fn key_spec(ctx: &mut Ctx, write: bool, bs_type: &str, pos: i64, fk_type: &str, fk: &[(&str, i64)]) {
    let out = &mut *ctx.out;
    out.map(3);
    out.bulk(b"flags");
    let flags: &[&str] = if write { &["RW", "UPDATE"] } else { &["RO", "ACCESS"] };
    out.set(flags.len());
    for f in flags {
        out.simple(f.as_bytes());
    }
    out.bulk(b"begin_search");
    out.map(2);
    out.bulk(b"type");
    out.bulk(bs_type.as_bytes());
    out.bulk(b"spec");
    out.map(1);
    out.bulk(b"index");
    out.int(pos);
    out.bulk(b"find_keys");
    out.map(2);
    out.bulk(b"type");
    out.bulk(fk_type.as_bytes());
    out.bulk(b"spec");
    out.map(fk.len());
    for (k, v) in fk {
        out.bulk(k.as_bytes());
        out.int(*v);
    }
}

fn command_all(ctx: &mut Ctx, _argv: &[&[u8]]) {
    let ids: Vec<usize> = ctx.table.top_level().collect();
    ctx.out.array(ids.len());
    for id in ids {
        reply_command_info(ctx, id);
    }
}

fn command_count(ctx: &mut Ctx, _argv: &[&[u8]]) {
    let n = ctx.table.top_level().count();
    ctx.out.int(n as i64);
}

fn command_info(ctx: &mut Ctx, argv: &[&[u8]]) {
    if argv.len() == 2 {
        return command_all(ctx, argv);
    }
    ctx.out.array(argv.len() - 2);
    for name in &argv[2..] {
        match ctx.table.lookup(name) {
            Some(id) => reply_command_info(ctx, id),
            None => ctx.out.null_array(),
        }
    }
}

fn command_docs(ctx: &mut Ctx, argv: &[&[u8]]) {
    // Summaries, arguments and history are not carried yet: each command reports its group only.
    let ids: Vec<usize> =
        if argv.len() == 2 { ctx.table.top_level().collect() } else { argv[2..].iter().filter_map(|n| ctx.table.lookup(n)).collect() };
    ctx.out.map(ids.len());
    for id in ids {
        let name = ctx.table.full_name(id).to_string();
        let group = ctx
            .table
            .spec(id)
            .acl
            .split_whitespace()
            .find(|a| matches!(*a, "@string" | "@keyspace" | "@connection" | "@bitmap"))
            .unwrap_or("@server");
        ctx.out.bulk(name.as_bytes());
        ctx.out.map(1);
        ctx.out.bulk(b"group");
        ctx.out.bulk(match group {
            "@string" => b"string".as_slice(),
            "@keyspace" => b"generic",
            "@connection" => b"connection",
            "@bitmap" => b"bitmap",
            _ => b"server",
        });
    }
}

fn command_list(ctx: &mut Ctx, argv: &[&[u8]]) {
    let mut filter: Option<(String, String)> = None;
    if argv.len() == 5 && eq(argv[2], "filterby") && ["module", "aclcat", "pattern"].iter().any(|f| eq(argv[3], f)) {
        filter = Some((String::from_utf8_lossy(argv[3]).to_ascii_lowercase(), String::from_utf8_lossy(argv[4]).to_string()));
    } else if argv.len() != 2 {
        ctx.out.error(SYNTAX);
        return;
    }
    // Every command and, after it, its subcommands ("acl|cat" ...), as Redis lists them.
    let names: Vec<String> = (0..ctx.table.len())
        .filter(|&id| match &filter {
            None => true,
            Some((k, v)) if k == "pattern" => crate::util::glob_match(v.as_bytes(), ctx.table.full_name(id).as_bytes(), true),
            Some((k, v)) if k == "aclcat" => {
                ctx.table.spec(id).acl.split_whitespace().any(|a| a.trim_start_matches('@').eq_ignore_ascii_case(v))
            }
            Some(_) => false,
        })
        .map(|id| ctx.table.full_name(id).to_string())
        .collect();
    ctx.out.array(names.len());
    for n in names {
        ctx.out.bulk(n.as_bytes());
    }
}

fn command_getkeys(ctx: &mut Ctx, argv: &[&[u8]]) {
    getkeys(ctx, argv, false);
}

/// COMMAND GETKEYSANDFLAGS: each key with the access it gets, from the same model as ACL's key
/// permissions (`acl::key_access`): RO/access for what is read, OW/update for what is only
/// written, RW/access/update for both, RO for metadata. Redis's finer logical flags (insert,
/// delete) are not modelled: see ARCHITECTURE.md, known departures.
fn command_getkeysandflags(ctx: &mut Ctx, argv: &[&[u8]]) {
    getkeys(ctx, argv, true);
}

fn getkeys(ctx: &mut Ctx, argv: &[&[u8]], with_flags: bool) {
    let args = &argv[2..];
    let Some(mut id) = ctx.table.lookup(args[0]) else {
        ctx.out.error("ERR Invalid command specified");
        return;
    };
    if !ctx.table.spec(id).subcommands.is_empty() && args.len() > 1 {
        if let Some(s) = ctx.table.lookup_sub(id, args[1]) {
            id = s;
        }
    }
    let spec = ctx.table.spec(id);
    if !spec.arity_ok(args.len()) {
        ctx.out.error("ERR Invalid number of arguments specified for command");
        return;
    }
    let mut idx = smallvec::SmallVec::<[usize; 8]>::new();
    spec.key_indices(args, &mut idx);
    // A command that may name keys (EVAL with 0 keys) answers an empty list.
    if idx.is_empty() && matches!(spec.keys, super::table::Keys::None) {
        ctx.out.error("ERR The command has no key arguments");
        return;
    }
    ctx.out.array(idx.len());
    let name = ctx.table.full_name(id).to_string();
    for i in idx {
        if !with_flags {
            ctx.out.bulk(args[i]);
            continue;
        }
        let flags: &[&[u8]] = match super::acl::key_access(&name, spec.is_write(), args, i) {
            (true, true) => &[b"RW", b"access", b"update"],
            (false, true) => &[b"OW", b"update"],
            (true, false) => &[b"RO", b"access"],
            (false, false) => &[b"RO"],
        };
        ctx.out.array(2);
        ctx.out.bulk(args[i]);
        ctx.out.array(flags.len());
        for f in flags {
            ctx.out.simple(f);
        }
    }
}

fn command_help(ctx: &mut Ctx, _argv: &[&[u8]]) {
    help(
        ctx,
        &[
            "COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "(no subcommand)",
            "    Return details about all Redis commands.",
            "COUNT",
            "    Return the total number of commands in this Redis server.",
            "LIST",
            "    Return a list of all commands in this Redis server.",
            "INFO [<command-name> ...]",
            "    Return details about multiple Redis commands.",
            "    If no command names are given, documentation details for all",
            "    commands are returned.",
            "DOCS [<command-name> ...]",
            "    Return documentation details about multiple Redis commands.",
            "    If no command names are given, documentation details for all",
            "    commands are returned.",
            "GETKEYS <full-command>",
            "    Return the keys from a full Redis command.",
            "GETKEYSANDFLAGS <full-command>",
            "    Return the keys and the access flags from a full Redis command.",
            "HELP",
            "    Print this help.",
        ],
    );
}

// ---------------------------------------------------------------- TIME, SLOWLOG, LATENCY, MEMORY

fn time(ctx: &mut Ctx, _argv: &[&[u8]]) {
    let us = crate::util::now_us();
    ctx.out.array(2);
    ctx.out.bulk_int(us / 1_000_000);
    ctx.out.bulk_int(us % 1_000_000);
}

fn lastsave(ctx: &mut Ctx, _argv: &[&[u8]]) {
    ctx.out.int(ctx.st.lastsave.load(Ordering::Relaxed));
}

fn slowlog_get(ctx: &mut Ctx, argv: &[&[u8]]) {
    let n = match argv.get(2) {
        None => 10,
        Some(a) => match parse_i64(a) {
            Some(n) if n >= -1 => n,
            _ => {
                ctx.out.error("ERR count should be greater than or equal to -1");
                return;
            }
        },
    };
    let log = ctx.st.slowlog.lock();
    let take = if n == -1 { log.entries.len() } else { (n as usize).min(log.entries.len()) };
    ctx.out.array(take);
    for e in log.entries.iter().take(take) {
        ctx.out.array(6);
        ctx.out.int(e.id as i64);
        ctx.out.int(e.time);
        ctx.out.int(e.usec);
        ctx.out.array(e.args.len());
        for a in &e.args {
            ctx.out.bulk(a);
        }
        ctx.out.bulk(e.peer.as_bytes());
        ctx.out.bulk(e.name.as_bytes());
    }
}

fn slowlog_len(ctx: &mut Ctx, _argv: &[&[u8]]) {
    let n = ctx.st.slowlog.lock().entries.len();
    ctx.out.int(n as i64);
}

fn slowlog_reset(ctx: &mut Ctx, _argv: &[&[u8]]) {
    ctx.st.slowlog.lock().entries.clear();
    ctx.out.ok();
}

fn slowlog_help(ctx: &mut Ctx, _argv: &[&[u8]]) {
    help(
        ctx,
        &[
            "SLOWLOG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "GET [<count>]",
            "    Return top <count> entries from the slowlog (default: 10, -1 mean all).",
            "    Entries are made of:",
            "    id, timestamp, time in microseconds, arguments array, client IP and port,",
            "    client name",
            "LEN",
            "    Return the length of the slowlog.",
            "RESET",
            "    Reset the slowlog.",
            "HELP",
            "    Print this help.",
        ],
    );
}

// Latency monitoring: the "command" and "fast-command" events, recorded by dispatch when a
// command takes at least `latency-monitor-threshold` milliseconds.
fn latency_latest(ctx: &mut Ctx, _argv: &[&[u8]]) {
    let l = ctx.st.latency.lock();
    ctx.out.array(l.len());
    for (name, ev) in l.iter() {
        let (t, ms) = ev.samples.back().copied().unwrap_or((0, 0));
        ctx.out.array(4);
        ctx.out.bulk(name.as_bytes());
        ctx.out.int(t);
        ctx.out.int(ms as i64);
        ctx.out.int(ev.max as i64);
    }
}

fn latency_history(ctx: &mut Ctx, argv: &[&[u8]]) {
    let l = ctx.st.latency.lock();
    let name = String::from_utf8_lossy(argv[2]);
    match l.get(name.as_ref()) {
        None => ctx.out.array(0),
        Some(ev) => {
            ctx.out.array(ev.samples.len());
            for (t, ms) in &ev.samples {
                ctx.out.array(2);
                ctx.out.int(*t);
                ctx.out.int(*ms as i64);
            }
        }
    }
}

fn latency_reset(ctx: &mut Ctx, argv: &[&[u8]]) {
    let mut l = ctx.st.latency.lock();
    let n = if argv.len() == 2 {
        let n = l.len();
        l.clear();
        n
    } else {
        argv[2..].iter().filter(|a| l.remove(String::from_utf8_lossy(a).as_ref()).is_some()).count()
    };
    ctx.out.int(n as i64);
}

/// LATENCY HISTOGRAM [command ...]: per command (a container's subcommands for its name; every
/// command called when none is named; unknown names skipped), its calls and the cumulative
/// distribution of its latency by power of two microseconds, from the latencystats histograms.
fn latency_histogram(ctx: &mut Ctx, argv: &[&[u8]]) {
    let table = ctx.table;
    let wanted = |id: usize| -> bool {
        let name = table.full_name(id);
        argv.len() == 2
            || argv[2..].iter().any(|a| {
                let a = String::from_utf8_lossy(a).to_ascii_lowercase();
                name == a || (name.starts_with(&a) && name.as_bytes().get(a.len()) == Some(&b'|'))
            })
    };
    let mut rows = Vec::new();
    for id in (0..table.len()).filter(|&id| wanted(id)) {
        let counts = ctx.st.stats.latency(id);
        let calls: u64 = counts.iter().sum();
        if calls > 0 {
            rows.push((table.full_name(id).to_string(), calls, crate::state::stats::Histogram::log_cdf(&counts)));
        }
    }
    ctx.out.map(rows.len());
    for (name, calls, cdf) in rows {
        ctx.out.bulk(name.as_bytes());
        ctx.out.map(2);
        ctx.out.bulk(b"calls");
        ctx.out.int(calls as i64);
        ctx.out.bulk(b"histogram_usec");
        ctx.out.map(cdf.len());
        for (us, n) in cdf {
            ctx.out.int(us as i64);
            ctx.out.int(n as i64);
        }
    }
}

/// LATENCY DOCTOR: a short human report of the latency monitor's events (Redis's wording when
/// there is nothing to report; per event, its spikes, average and worst otherwise).
fn latency_doctor(ctx: &mut Ctx, _argv: &[&[u8]]) {
    use std::fmt::Write as _;
    let l = ctx.st.latency.lock();
    let mut s = String::new();
    if l.is_empty() {
        s.push_str("Dave, no latency spike was observed during the lifetime of this Redis instance, not in the slightest bit. I honestly think you ought to sleep tonight.\n");
    } else {
        s.push_str("Dave, I have observed latency spikes in this Redis instance. You don't mind talking about it, do you Dave?\n\n");
        for (i, (name, ev)) in l.iter().enumerate() {
            let n = ev.samples.len().max(1) as u64;
            let avg = ev.samples.iter().map(|s| s.1).sum::<u64>() / n;
            let period = match (ev.samples.front(), ev.samples.back()) {
                (Some(a), Some(b)) if ev.samples.len() > 1 => (b.0 - a.0) / (ev.samples.len() as i64 - 1),
                _ => 0,
            };
            let _ = writeln!(
                s,
                "{}. {}: {} latency spikes (average {}ms, period {} sec). Worst all time event {}ms.",
                i + 1,
                name,
                ev.samples.len(),
                avg,
                period,
                ev.max
            );
        }
        s.push_str("\nI have no advice for you, Dave: ferrodis does not fork, and its latency comes from the events above.\n");
    }
    drop(l);
    ctx.out.verbatim(s.as_bytes());
}

fn latency_help(ctx: &mut Ctx, _argv: &[&[u8]]) {
    help(
        ctx,
        &[
            "LATENCY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "LATEST",
            "    Return the latest latency samples for all events.",
            "HISTORY <event>",
            "    Return time-latency samples for the specified event.",
            "RESET [<event> ...]",
            "    Reset latency data of one or more <event> classes.",
            "    (default: reset all data for all event classes)",
            "DOCTOR",
            "    Return a human readable latency analysis report.",
            "HISTOGRAM [COMMAND ...]",
            "    Return a cumulative distribution of latencies in the format of a histogram for the specified command names.",
            "    If no commands are specified then all histograms are replied.",
            "HELP",
            "    Print this help.",
        ],
    );
}

fn memory_usage(ctx: &mut Ctx, argv: &[&[u8]]) {
    if argv.len() > 3 && !(argv.len() == 5 && eq(argv[3], "samples") && parse_i64(argv[4]).is_some()) {
        ctx.out.error(SYNTAX);
        return;
    }
    let (e, out) = ctx.peek(argv[2]);
    match e {
        None => out.null(),
        Some(e) => {
            let size = std::mem::size_of::<crate::keyspace::Entry>() + e.key.heap_size() + e.value.heap_size();
            out.int(size as i64)
        }
    }
}

fn memory_stats(ctx: &mut Ctx, _argv: &[&[u8]]) {
    let (alloc, _, _) = used_memory();
    let keys: usize = (0..ctx.st.keyspace.databases).map(|d| ctx.st.keyspace.dbsize(d)).sum();
    ctx.out.map(4);
    ctx.out.bulk(b"peak.allocated");
    ctx.out.int(alloc as i64);
    ctx.out.bulk(b"total.allocated");
    ctx.out.int(alloc as i64);
    ctx.out.bulk(b"keys.count");
    ctx.out.int(keys as i64);
    ctx.out.bulk(b"keys.bytes-per-key");
    ctx.out.int((alloc as usize).checked_div(keys).unwrap_or(0) as i64);
}

/// MEMORY MALLOC-STATS: jemalloc's own statistics report, as Redis built with jemalloc gives.
fn memory_malloc_stats(ctx: &mut Ctx, _argv: &[&[u8]]) {
    extern "C" fn write(opaque: *mut std::ffi::c_void, s: *const std::ffi::c_char) {
        // SAFETY: `opaque` is the Vec given below, alive for the call; `s` is a C string jemalloc
        // hands to its writer.
        let out = unsafe { &mut *(opaque as *mut Vec<u8>) };
        out.extend_from_slice(unsafe { std::ffi::CStr::from_ptr(s) }.to_bytes());
    }
    let mut report: Vec<u8> = Vec::new();
    // SAFETY: jemalloc calls `write` synchronously with our Vec; null options mean the defaults.
    unsafe { tikv_jemalloc_sys::malloc_stats_print(Some(write), &mut report as *mut Vec<u8> as *mut std::ffi::c_void, std::ptr::null()) };
    ctx.out.bulk(&report);
}

/// MEMORY PURGE: asks jemalloc to give dirty pages of every arena back to the system.
fn memory_purge(ctx: &mut Ctx, _argv: &[&[u8]]) {
    // "arena.<MALLCTL_ARENAS_ALL>.purge"; MALLCTL_ARENAS_ALL is 4096.
    let name = b"arena.4096.purge\0";
    // SAFETY: a NUL-terminated mallctl name; purge takes and returns nothing.
    unsafe { tikv_jemalloc_sys::mallctl(name.as_ptr() as *const _, std::ptr::null_mut(), std::ptr::null_mut(), std::ptr::null_mut(), 0) };
    ctx.out.ok();
}

fn memory_doctor(ctx: &mut Ctx, _argv: &[&[u8]]) {
    ctx.out.verbatim(b"Hi Sam, I can't find any memory issue in your instance. I can only account for what occurs on this base.");
}

fn memory_help(ctx: &mut Ctx, _argv: &[&[u8]]) {
    help(
        ctx,
        &[
            "MEMORY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "DOCTOR",
            "    Return memory problems reports.",
            "MALLOC-STATS",
            "    Return internal statistics report from the memory allocator.",
            "PURGE",
            "    Attempt to purge dirty pages for reclamation by the allocator.",
            "STATS",
            "    Return information about the memory usage of the server.",
            "USAGE <key> [SAMPLES <count>]",
            "    Return memory in bytes used by <key> and its value. Nested values are",
            "    sampled up to <count> times (default: 5, 0 means sample all).",
            "HELP",
            "    Prints this help.",
        ],
    );
}

/// LOLWUT [VERSION v]: Redis answers its version line for every version but 5 and 6, whose
/// generative art ferrodis does not draw (see ARCHITECTURE.md, known departures).
fn lolwut(ctx: &mut Ctx, argv: &[&[u8]]) {
    if argv.len() >= 3 && argv[1].eq_ignore_ascii_case(b"version") && crate::util::parse_i64(argv[2]).is_none() {
        return ctx.out.error(super::NOT_INT);
    }
    ctx.out.bulk(b"Redis ver. 7.0.15\n");
}

// ---------------------------------------------------------------- DEBUG

/// Redis's dataset digest (debug.c): SHA1-based, order-independent within a database.
fn xor_digest(d: &mut [u8; 20], data: &[u8]) {
    let h = sha1_smol::Sha1::from(data).digest().bytes();
    for (a, b) in d.iter_mut().zip(h.iter()) {
        *a ^= b;
    }
}

fn mix_digest(d: &mut [u8; 20], data: &[u8]) {
    xor_digest(d, data);
    *d = sha1_smol::Sha1::from(&d[..]).digest().bytes();
}

/// Type code as RDB and the digest number it (OBJ_STRING = 0, ...).
fn type_code(v: &Value) -> u32 {
    match v {
        Value::Str(_) => 0,
        Value::List(_) => 1,
        Value::Hash(_) => 4,
        Value::Set(_) => 2,
        Value::ZSet(_) => 3,
        Value::Stream(_) => 6,
    }
}

/// Redis's xorObjectDigest: the type, the value, and a marker when the key has an expiry.
fn value_digest(e: &crate::keyspace::Entry, d: &mut [u8; 20]) {
    mix_digest(d, &type_code(&e.value).to_be_bytes());
    match &e.value {
        Value::Str(s) => mix_digest(d, &s.to_vec()),
        Value::List(l) => {
            for item in l.iter() {
                mix_digest(d, item);
            }
        }
        Value::Set(s) => {
            for m in s.members() {
                xor_digest(d, &m);
            }
        }
        Value::ZSet(z) => {
            z.walk(0, z.len(), false, |m, s| {
                let mut e = [0u8; 20];
                mix_digest(&mut e, m);
                mix_digest(&mut e, crate::util::fmt_g17(s).as_bytes());
                xor_digest(d, &e);
                true
            });
        }
        Value::Hash(h) => {
            for (f, v) in h.pairs() {
                let mut e = [0u8; 20];
                mix_digest(&mut e, f);
                mix_digest(&mut e, v);
                xor_digest(d, &e);
            }
        }
        // The entries only (not the groups), each ID as "ms.seq", as Redis's debug.c.
        Value::Stream(s) => {
            for (id, fields) in s.iter() {
                mix_digest(d, format!("{}.{}", id.ms, id.seq).as_bytes());
                for (f, v) in &fields {
                    mix_digest(d, f);
                    mix_digest(d, v);
                }
            }
        }
    }
    if e.expire != 0 {
        xor_digest(d, b"!!expire!!");
    }
}

pub fn dataset_digest(st: &crate::state::State) -> [u8; 20] {
    let mut fin = [0u8; 20];
    let now = crate::util::now_ms();
    for db in 0..st.keyspace.databases {
        if st.keyspace.dbsize(db) == 0 {
            continue;
        }
        mix_digest(&mut fin, &(db as u32).to_be_bytes());
        for slot in 0..SLOTS {
            let g = st.keyspace.lock(slot % STRIPES);
            if g.keys(db) == 0 {
                continue;
            }
            if let Some(t) = g.slot(db, slot) {
                for e in t.iter().filter(|e| !e.expired(now)) {
                    let mut d = [0u8; 20];
                    mix_digest(&mut d, &e.key);
                    value_digest(e, &mut d);
                    xor_digest(&mut fin, &d);
                }
            }
        }
    }
    fin
}

fn hex(d: &[u8]) -> String {
    d.iter().map(|b| format!("{:02x}", b)).collect()
}

/// DEBUG PROTOCOL <type>: one reply of each RESP3 type (RESP2 gets Redis's fallbacks), for
/// client libraries' tests as Redis's.
fn debug_protocol(ctx: &mut Ctx, name: &[u8]) {
    let out = &mut *ctx.out;
    match String::from_utf8_lossy(name).to_ascii_lowercase().as_str() {
        "string" => out.bulk(b"Hello World"),
        "integer" => out.int(12345),
        "double" => out.double_str(b"3.141"),
        "bignum" => {
            const BIG: &[u8] = b"1234567999999999999999999999999999999";
            if out.resp3() {
                out.raw(b"(");
                out.raw(BIG);
                out.raw(b"\r\n");
            } else {
                out.bulk(BIG);
            }
        }
        "null" => out.null(),
        "array" | "set" => {
            if name.eq_ignore_ascii_case(b"set") {
                out.set(3);
            } else {
                out.array(3);
            }
            for j in 0..3 {
                out.int(j);
            }
        }
        "map" => {
            out.map(3);
            for j in 0..3 {
                out.int(j);
                out.boolean(j == 1);
            }
        }
        "attrib" => {
            // An attribute is not a reply: a real one follows it (RESP2 gets only that).
            if out.resp3() {
                out.raw(b"|1\r\n$14\r\nkey-popularity\r\n*2\r\n$7\r\nkey:123\r\n:90\r\n");
            }
            out.bulk(b"Some real reply following the attribute");
        }
        "push" => {
            if !out.resp3() {
                return out.error("ERR RESP2 is not supported by this command");
            }
            out.push(2);
            out.bulk(b"server-cpu-usage");
            out.int(42);
            out.bulk(b"Some real reply following the push reply");
        }
        "true" => out.boolean(true),
        "false" => out.boolean(false),
        "verbatim" => out.verbatim(b"This is a verbatim\nstring"),
        _ => out.error("ERR Wrong protocol type name. Please use one of the following: string|integer|double|bignum|null|array|set|map|attrib|push|verbatim|true|false"),
    }
}

fn debug(ctx: &mut Ctx, argv: &[&[u8]]) {
    if !super::allowed_by(ctx, "enable-debug-command") {
        ctx.out.error("ERR DEBUG command not allowed. If the enable-debug-command option is set to \"local\", you can run it from a local connection, otherwise you need to set this option in the configuration file, and then restart the server.");
        return;
    }
    let sub = String::from_utf8_lossy(argv[1]).to_ascii_lowercase();
    match (sub.as_str(), argv.len()) {
        // Replies with the given error (clients' test suites fake server errors with it).
        ("error", 3) => ctx.out.error(&String::from_utf8_lossy(argv[2])),
        ("sleep", 3) => {
            let secs: f64 = std::str::from_utf8(argv[2]).ok().and_then(|s| s.parse().ok()).unwrap_or(0.0);
            std::thread::sleep(std::time::Duration::from_secs_f64(secs.clamp(0.0, 3600.0)));
            ctx.out.ok();
        }
        ("populate", 3..=5) => {
            let Some(count) = crate::util::parse_i64(argv[2]).filter(|n| *n >= 0) else {
                ctx.out.error("ERR count is negative");
                return;
            };
            let prefix = argv.get(3).copied().unwrap_or(b"key");
            let size = match argv.get(4).map(|a| crate::util::parse_i64(a)) {
                None => None,
                Some(Some(n)) if n >= 0 => Some(n as usize),
                Some(_) => {
                    ctx.out.error("ERR value size must be positive");
                    return;
                }
            };
            let ks = &ctx.st.keyspace;
            let db = ctx.conn.db;
            let lru = (ctx.now / 1000) as u32;
            for i in 0..count {
                let mut key = prefix.to_vec();
                key.extend_from_slice(format!(":{i}").as_bytes());
                let mut val = format!("value:{i}").into_bytes();
                if let Some(n) = size {
                    val.resize(n, 0);
                }
                let loc = ks.locate(&key);
                let mut g = ks.lock(loc.stripe);
                if g.get(db, &loc, &key).is_none() {
                    let v = crate::types::Value::Str(crate::types::StrValue::from_bytes(&val));
                    g.insert(
                        db,
                        &loc,
                        crate::keyspace::Entry { key: crate::types::SmallBytes::new(&key), value: v, expire: 0, lru },
                        &ks.hasher,
                    );
                }
            }
            ctx.out.ok();
        }
        ("protocol", 3) => debug_protocol(ctx, argv[2]),
        ("config-rewrite-force-all", 2) => match ctx.st.config.rewrite_with(true) {
            Ok(()) => ctx.out.ok(),
            Err(e) => ctx.out.error(&e),
        },
        ("pause-cron", 3) => {
            ctx.st.cron_paused.store(argv[2] != b"0", Ordering::Relaxed);
            ctx.out.ok();
        }
        ("set-active-expire", 3) => {
            ctx.st.active_expire.store(argv[2] != b"0", Ordering::Relaxed);
            ctx.out.ok();
        }
        ("digest", 2) => {
            let d = dataset_digest(ctx.st);
            ctx.out.simple(hex(&d).as_bytes());
        }
        ("digest-value", _) => {
            ctx.out.array(argv.len() - 2);
            for k in &argv[2..] {
                let loc = ctx.st.keyspace.locate(k);
                let db = ctx.conn.db;
                let g = ctx.st.keyspace.lock(loc.stripe);
                let mut d = [0u8; 20];
                if let Some(e) = g.get(db, &loc, k).filter(|e| !e.expired(ctx.now)) {
                    value_digest(e, &mut d);
                }
                drop(g);
                ctx.out.simple(hex(&d).as_bytes());
            }
        }
        ("object", 3) => {
            let loc = ctx.st.keyspace.locate(argv[2]);
            let db = ctx.conn.db;
            let g = ctx.st.keyspace.lock(loc.stripe);
            let line = g.get(db, &loc, argv[2]).filter(|e| !e.expired(ctx.now)).map(|e| {
                format!(
                    "Value at:0x0 refcount:1 encoding:{} serializedlength:{} lru:{} lru_seconds_idle:{}",
                    e.value.encoding(),
                    match &e.value {
                        Value::Str(s) => s.len(),
                        _ => 0,
                    },
                    e.lru & 0xFF_FFFF,
                    crate::keyspace::lru_clock().saturating_sub(e.lru)
                )
            });
            drop(g);
            match line {
                Some(l) => ctx.out.simple(l.as_bytes()),
                None => ctx.out.error("ERR no such key"),
            }
        }
        ("reload", _) => {
            // Save, empty, load back (NOSAVE: load the file as it is; NOFLUSH: load on top).
            let nosave = argv[2..].iter().any(|a| eq(a, "nosave"));
            let noflush = argv[2..].iter().any(|a| eq(a, "noflush"));
            if !nosave && super::persistence::save_rdb(ctx.st).is_err() {
                return ctx.out.error("ERR Error trying to save the DB");
            }
            if !noflush {
                super::persistence::empty_keyspace(ctx.st);
            }
            match super::persistence::load_rdb_with(ctx.st, super::scripting::RestorePolicy::Replace) {
                Ok(()) => {
                    tracing::info!("DB reloaded by DEBUG RELOAD");
                    ctx.out.ok()
                }
                Err(e) => ctx.out.error(&format!("ERR Error trying to load the RDB dump: {e}")),
            }
        }
        ("loadaof", 2) => match super::persistence::debug_loadaof(ctx.st, ctx.table) {
            Ok(()) => {
                tracing::info!("Append Only File loaded by DEBUG LOADAOF");
                ctx.out.ok()
            }
            Err(e) => ctx.out.error(&format!("ERR Error loading the AOF: {e}")),
        },
        ("change-repl-id", 2) => {
            ctx.out.ok();
        }
        ("jmap", 2)
        | ("quicklist-packed-threshold", 3)
        | ("stringmatch-len", _)
        | ("set-skip-checksum-validation", 3)
        | ("replybuffer", _) => ctx.out.ok(),
        ("log", 3) => {
            tracing::warn!("DEBUG LOG: {}", String::from_utf8_lossy(argv[2]));
            ctx.out.ok();
        }
        ("help", _) => help(
            ctx,
            &[
                "DEBUG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "DIGEST",
                "    Output a hex signature representing the current DB content.",
                "DIGEST-VALUE <key> [<key> ...]",
                "    Output a hex signature of the values of all the specified keys.",
                "ERROR <string>",
                "    Return a Redis protocol error with <string> as message. Useful for clients",
                "    unit tests to simulate Redis errors.",
                "LOG <message>",
                "    Write <message> to the server log.",
                "OBJECT <key>",
                "    Show low level info about the key and associated value.",
                "RELOAD",
                "    Save the RDB on disk and reload it back to memory.",
                "PROTOCOL <type>",
                "    Reply with a test value of the specified type. <type> can be: string,",
                "    integer, double, bignum, null, array, set, map, attrib, push, verbatim,",
                "    true, false.",
                "SET-ACTIVE-EXPIRE <0|1>",
                "    Setting it to 0 disables expiring keys in background when they are not",
                "    accessed (otherwise the Redis behavior). Setting it to 1 reenables back the",
                "    default.",
                "SLEEP <seconds>",
                "    Stop the server for <seconds>. Decimals allowed.",
                "HELP",
                "    Print this help.",
            ],
        ),
        _ => ctx.out.error(&format!(
            "ERR unknown subcommand or wrong number of arguments for '{}'. Try DEBUG HELP.",
            String::from_utf8_lossy(argv[1])
        )),
    }
}

// ---------------------------------------------------------------- MODULE

fn module_list(ctx: &mut Ctx, _argv: &[&[u8]]) {
    ctx.out.array(0);
}

/// Redis's reply to a protected command that `enable-module-command` does not allow.
fn module_allowed(ctx: &mut Ctx) -> bool {
    if super::allowed_by(ctx, "enable-module-command") {
        return true;
    }
    ctx.out.error("ERR MODULE command not allowed. If the enable-module-command option is set to \"local\", you can run it from a local connection, otherwise you need to set this option in the configuration file, and then restart the server.");
    false
}

fn module_load(ctx: &mut Ctx, argv: &[&[u8]]) {
    if module_allowed(ctx) {
        tracing::warn!("Module {} failed to load: ferrodis does not load modules", String::from_utf8_lossy(argv[2]));
        ctx.out.error("ERR Error loading the extension. Please check the server logs.");
    }
}

fn module_unload(ctx: &mut Ctx, _argv: &[&[u8]]) {
    if module_allowed(ctx) {
        ctx.out.error("ERR Error unloading module: no such module with that name");
    }
}

fn module_help(ctx: &mut Ctx, _argv: &[&[u8]]) {
    help(
        ctx,
        &[
            "MODULE <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "LIST",
            "    Return a list of loaded modules.",
            "LOAD <path> [<arg> ...]",
            "    Load a module library from <path>, passing to it any optional arguments.",
            "LOADEX <path> [[CONFIG NAME VALUE] [CONFIG NAME VALUE]] [ARGS ...]",
            "    Load a module library from <path>, while passing it module configurations and optional arguments.",
            "UNLOAD <name>",
            "    Unload a module.",
            "HELP",
            "    Prints this help.",
        ],
    );
}

// ---------------------------------------------------------------- SHUTDOWN

fn shutdown(ctx: &mut Ctx, argv: &[&[u8]]) {
    let mut req = ShutdownRequest::default();
    let mut abort = false;
    for a in &argv[1..] {
        if eq(a, "nosave") {
            req.nosave = true;
        } else if eq(a, "save") {
            req.save = true;
        } else if eq(a, "now") {
            req.now = true;
        } else if eq(a, "force") {
            req.force = true;
        } else if eq(a, "abort") {
            abort = true;
        } else {
            ctx.out.error(SYNTAX);
            return;
        }
    }
    if (abort && argv.len() != 2) || (req.nosave && req.save) {
        ctx.out.error(SYNTAX);
        return;
    }
    if abort {
        ctx.out.error("ERR No shutdown in progress.");
        return;
    }
    // While a script runs only SHUTDOWN NOSAVE stops the server (a save would wait for the
    // script's locks), as Redis answers.
    if !req.nosave && crate::state::scripts::RUNNING_SINCE.load(Ordering::Acquire) != 0 {
        ctx.out.error(crate::state::scripts::busy_err());
        return;
    }
    ctx.st.request_shutdown(req);
    // As in Redis, a successful SHUTDOWN closes the connection without a reply.
    ctx.conn.close_after_reply = true;
}

// ---------------------------------------------------------------- MONITOR

/// Queue length per monitor before a slow monitor is disconnected.
const MONITOR_QUEUE: usize = 64 * 1024;

fn monitor(ctx: &mut Ctx, _argv: &[&[u8]]) {
    if ctx.conn.monitor.is_none() {
        let (tx, rx) = tokio::sync::mpsc::channel(MONITOR_QUEUE);
        ctx.conn.monitor = Some(rx);
        let mut m = ctx.st.monitors.lock();
        m.push((ctx.conn.info.id, tx));
        ctx.st.monitor_count.store(m.len(), Ordering::Relaxed);
    }
    ctx.out.ok();
}
