//! Configuration: redis.conf and command-line parsing with redis-server's rules, and the option
//! table behind `CONFIG GET/SET/RESETSTAT/REWRITE`.
//!
//! Every Redis 7.0 option is known (the names and defaults in `defaults.tsv` were read from
//! redis-server 7.0.15's `CONFIG GET *`); the ones ferrodis implements are listed in
//! `IMPLEMENTED`, the others are accepted, stored and reported, with one warning each at start-up.

use parking_lot::RwLock;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};

const DEFAULTS: &str = include_str!("defaults.tsv");

/// Options whose value changes ferrodis's behaviour today.
pub const IMPLEMENTED: &[&str] = &[
    "port",
    "tls-port",
    "tls-cert-file",
    "tls-key-file",
    "tls-client-cert-file",
    "tls-client-key-file",
    "tls-ca-cert-file",
    "tls-ca-cert-dir",
    "tls-auth-clients",
    "tls-replication",
    "tls-cluster",
    "tls-protocols",
    "tls-ciphers",
    "tls-ciphersuites",
    "tls-prefer-server-ciphers",
    "tls-session-caching",
    "tls-session-cache-size",
    "bind",
    "databases",
    "requirepass",
    "maxclients",
    "timeout",
    "tcp-keepalive",
    "proto-max-bulk-len",
    "client-query-buffer-limit",
    "client-output-buffer-limit",
    "io-threads",
    "loglevel",
    "logfile",
    "dir",
    "hz",
    "slowlog-log-slower-than",
    "slowlog-max-len",
    "repl-backlog-size",
    "tcp-backlog",
    "pidfile",
    "enable-debug-command",
    "latency-monitor-threshold",
    "protected-mode",
    "dbfilename",
    "daemonize",
    "save",
    "rdbcompression",
    "rdbchecksum",
    "stop-writes-on-bgsave-error",
    "appendonly",
    "appendfilename",
    "appenddirname",
    "appendfsync",
    "aof-load-truncated",
    "aof-use-rdb-preamble",
    "auto-aof-rewrite-percentage",
    "auto-aof-rewrite-min-size",
    "maxmemory-policy",
    "active-expire-effort",
    "lfu-log-factor",
    "lfu-decay-time",
    "latency-tracking",
    "io-threads-do-reads",
    "always-show-logo",
    "set-proc-title",
    "proc-title-template",
    "supervised",
    "shutdown-timeout",
    "replicaof",
    "masterauth",
    "masteruser",
    "replica-read-only",
    "replica-serve-stale-data",
    "replica-priority",
    "replica-announce-ip",
    "replica-announce-port",
    "replica-announced",
    "repl-backlog-ttl",
    "repl-timeout",
    "repl-ping-replica-period",
    "repl-diskless-sync",
    "repl-diskless-sync-delay",
    "min-replicas-to-write",
    "min-replicas-max-lag",
    "sync-replicas",
    "sync-replicas-timeout",
    "cluster-enabled",
    "cluster-config-file",
    "cluster-node-timeout",
    "cluster-port",
    "cluster-announce-ip",
    "cluster-announce-port",
    "cluster-announce-bus-port",
    "cluster-announce-hostname",
    "cluster-require-full-coverage",
    "cluster-allow-reads-when-down",
    "cluster-allow-replica-migration",
    "cluster-replica-validity-factor",
    "cluster-replica-no-failover",
    "cluster-migration-barrier",
    "cluster-allow-pubsubshard-when-down",
    "maxmemory",
    "maxmemory-samples",
    "maxmemory-eviction-tenacity",
    "replica-ignore-maxmemory",
    "aclfile",
];

const IMMUTABLE: &[&str] = &[
    "databases",
    "daemonize",
    "io-threads",
    "io-threads-do-reads",
    "cluster-enabled",
    "unixsocket",
    "unixsocketperm",
    "logfile",
    "syslog-enabled",
    "syslog-ident",
    "syslog-facility",
    "supervised",
    "pidfile",
    "cluster-config-file",
    "aclfile",
    "tcp-backlog",
    "disable-thp",
    "always-show-logo",
    "set-proc-title",
    "enable-debug-command",
    "enable-module-command",
    "enable-protected-configs",
    "appenddirname",
    "cluster-port",
    "tls-port",
];

const MEMORY: &[&str] = &[
    "maxmemory",
    "proto-max-bulk-len",
    "client-query-buffer-limit",
    "repl-backlog-size",
    "active-defrag-ignore-bytes",
    "auto-aof-rewrite-min-size",
    "hll-sparse-max-bytes",
    "stream-node-max-bytes",
    "hash-max-listpack-value",
    "hash-max-ziplist-value",
    "zset-max-listpack-value",
    "zset-max-ziplist-value",
    "cluster-link-sendbuf-limit",
    "maxmemory-clients",
    "set-max-intset-entries",
];

const ALIASES: &[(&str, &str)] = &[
    ("slaveof", "replicaof"),
    ("slave-serve-stale-data", "replica-serve-stale-data"),
    ("slave-read-only", "replica-read-only"),
    ("slave-announce-ip", "replica-announce-ip"),
    ("slave-announce-port", "replica-announce-port"),
    ("slave-priority", "replica-priority"),
    ("slave-ignore-maxmemory", "replica-ignore-maxmemory"),
    ("slave-lazy-flush", "replica-lazy-flush"),
    ("repl-ping-slave-period", "repl-ping-replica-period"),
    ("min-slaves-to-write", "min-replicas-to-write"),
    ("min-slaves-max-lag", "min-replicas-max-lag"),
    ("cluster-slave-validity-factor", "cluster-replica-validity-factor"),
    ("cluster-slave-no-failover", "cluster-replica-no-failover"),
    ("hash-max-ziplist-entries", "hash-max-listpack-entries"),
    ("hash-max-ziplist-value", "hash-max-listpack-value"),
    ("zset-max-ziplist-entries", "zset-max-listpack-entries"),
    ("zset-max-ziplist-value", "zset-max-listpack-value"),
    ("list-max-ziplist-size", "list-max-listpack-size"),
    ("lua-time-limit", "busy-reply-threshold"),
];

/// Directives accepted in a file that are not runtime options (or are deprecated no-ops).
const FILE_ONLY: &[&str] =
    &["include", "rename-command", "user", "loadmodule", "list-max-ziplist-entries", "list-max-ziplist-value", "lua-replicate-commands"];

fn enum_values(name: &str) -> Option<&'static [&'static str]> {
    Some(match name {
        "maxmemory-policy" => &[
            "volatile-lru",
            "volatile-lfu",
            "volatile-random",
            "volatile-ttl",
            "allkeys-lru",
            "allkeys-lfu",
            "allkeys-random",
            "noeviction",
        ],
        "loglevel" => &["debug", "verbose", "notice", "warning"],
        "appendfsync" => &["always", "everysec", "no"],
        "repl-diskless-load" => &["disabled", "on-empty-db", "swapdb"],
        "supervised" => &["upstart", "systemd", "auto", "no"],
        "syslog-facility" => &["user", "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7"],
        "propagation-error-behavior" => &["ignore", "panic", "panic-on-replicas"],
        "cluster-preferred-endpoint-type" => &["ip", "hostname", "unknown-endpoint"],
        "acl-pubsub-default" => &["allchannels", "resetchannels"],
        "oom-score-adj" => &["no", "yes", "relative", "absolute"],
        "sanitize-dump-payload" => &["no", "yes", "clients"],
        "enable-debug-command" | "enable-module-command" | "enable-protected-configs" => &["no", "yes", "local"],
        _ => return None,
    })
}

/// Parses `1gb`, `100mb`, `10k`, `5` as Redis's memtoull does.
pub fn parse_memory(s: &str) -> Option<i64> {
    let l = s.to_ascii_lowercase();
    let (num, mul): (&str, i64) = if let Some(n) = l.strip_suffix("gb") {
        (n, 1 << 30)
    } else if let Some(n) = l.strip_suffix("mb") {
        (n, 1 << 20)
    } else if let Some(n) = l.strip_suffix("kb") {
        (n, 1 << 10)
    } else if let Some(n) = l.strip_suffix('g') {
        (n, 1_000_000_000)
    } else if let Some(n) = l.strip_suffix('m') {
        (n, 1_000_000)
    } else if let Some(n) = l.strip_suffix('k') {
        (n, 1000)
    } else if let Some(n) = l.strip_suffix('b') {
        (n, 1)
    } else {
        (l.as_str(), 1)
    };
    let v: i64 = num.parse().ok()?;
    v.checked_mul(mul)
}

/// Values read on the hot path, kept as atomics and refreshed when the option changes.
#[derive(Default)]
pub struct Hot {
    pub maxclients: AtomicUsize,
    pub timeout_s: AtomicI64,
    pub proto_max_bulk_len: AtomicI64,
    pub query_buffer_limit: AtomicUsize,
    pub obuf_hard: AtomicUsize,
    pub obuf_soft: AtomicUsize,
    pub obuf_soft_secs: AtomicI64,
    pub pubsub_hard: AtomicUsize,
    pub pubsub_soft: AtomicUsize,
    pub pubsub_soft_secs: AtomicI64,
    pub requirepass_set: AtomicBool,
    pub slowlog_slower_than: AtomicI64,
    pub slowlog_max_len: AtomicUsize,
    pub hz: AtomicI64,
    pub active_expire_effort: AtomicI64,
    pub latency_threshold: AtomicI64,
    pub lfu_policy: AtomicBool,
    pub lfu_log_factor: AtomicI64,
    pub lfu_decay_time: AtomicI64,
    pub hash_max_entries: AtomicUsize,
    pub stream_node_max_bytes: AtomicUsize,
    pub stream_node_max_entries: AtomicUsize,
    pub tracking_table_max_keys: AtomicUsize,
    /// `latency-tracking`: per-command latency histograms (INFO latencystats).
    pub latency_tracking: AtomicBool,
    pub hash_max_value: AtomicUsize,
    pub set_max_intset: AtomicUsize,
    pub zset_max_entries: AtomicUsize,
    /// `notify-keyspace-events` as `notify::*` flags.
    pub notify_flags: std::sync::atomic::AtomicU32,
    pub zset_max_value: AtomicUsize,
    /// `appendfsync`: 0 no, 1 everysec, 2 always (`persistence::aof::FSYNC_*`).
    pub appendfsync: std::sync::atomic::AtomicU8,
    /// `replica-read-only`, `replica-serve-stale-data`.
    pub replica_read_only: AtomicBool,
    pub replica_serve_stale: AtomicBool,
    pub min_replicas_to_write: AtomicI64,
    pub min_replicas_max_lag: AtomicI64,
    /// ferrodis's synchronous acknowledgement: `sync-replicas`, `sync-replicas-timeout` (ms).
    pub sync_replicas: AtomicI64,
    pub sync_replicas_timeout: AtomicI64,
    /// `maxmemory` (bytes, 0 = none), the policy (`evict::POLICY_*`), samples and tenacity.
    pub maxmemory: AtomicI64,
    pub maxmemory_policy: std::sync::atomic::AtomicU8,
    pub maxmemory_samples: AtomicI64,
    pub maxmemory_tenacity: AtomicI64,
    pub replica_ignore_maxmemory: AtomicBool,
    /// `client-output-buffer-limit replica`'s hard limit (bytes, 0: none).
    pub replica_obuf_hard: AtomicUsize,
}

pub struct Config {
    values: RwLock<BTreeMap<String, String>>,
    defaults: BTreeMap<String, String>,
    pub hot: Hot,
    /// The config file given on the command line (for CONFIG REWRITE and INFO).
    pub file: Option<String>,
    /// Directives given that ferrodis accepts but does not implement yet.
    pub warnings: Vec<String>,
    /// `rename-command` pairs from the file.
    pub renames: Vec<(String, String)>,
    /// Options named in the file or on the command line.
    set_names: std::collections::HashSet<String>,
    /// Started as a sentinel (`--sentinel`, or the program's name ends in `-sentinel`).
    pub sentinel_mode: bool,
    /// `sentinel ...` lines, for the sentinel to read: (line number, the line, its arguments).
    pub sentinel_lines: Vec<(usize, String, Vec<String>)>,
    /// `user <name> <rules...>` lines (ACL users declared in redis.conf): (the line, its arguments).
    pub user_lines: Vec<(String, Vec<String>)>,
}

pub fn canonical(name: &str) -> String {
    let l = name.to_ascii_lowercase();
    ALIASES.iter().find(|(a, _)| *a == l).map(|(_, c)| c.to_string()).unwrap_or(l)
}

fn quote(a: &str) -> String {
    let mut s = String::from("\"");
    for c in a.chars() {
        match c {
            '"' | '\\' => {
                s.push('\\');
                s.push(c)
            }
            '\n' => s.push_str("\\n"),
            '\r' => s.push_str("\\r"),
            c if (c as u32) < 32 || c as u32 == 127 => s.push_str(&format!("\\x{:02x}", c as u32)),
            c => s.push(c),
        }
    }
    s.push('"');
    s
}

/// Turns redis-server's argv (after the optional config file) into config text, as Redis's
/// main() does: `--name` starts a line, and the argument after it is always its value, even one
/// that starts with `--` (`--port --bla` gives "port --bla"); further words are more values until
/// the next `--name`. `--save` followed by an option or at the end means `save ""`. An argument
/// holding both (`"--maxmemory 700mb"`) is a whole line.
pub fn argv_to_config(args: &[String]) -> String {
    let mut out = String::new();
    // Whether the last option has its value (so a `--` word starts the next one).
    let mut handled = true;
    for (j, a) in args.iter().enumerate() {
        if j == 0 && a == "-" {
            continue;
        }
        if handled && a.starts_with("--") {
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(&a[2..]);
            out.push(' ');
            let words = resp::split_args(a.as_bytes()).map_or(0, |w| w.len());
            handled = words != 1;
            if words == 1 && a.eq_ignore_ascii_case("--save") {
                let next_is_option = args.get(j + 1).is_some_and(|n| n.starts_with("--"));
                if next_is_option || j + 1 == args.len() {
                    out.push_str("\"\"");
                    handled = true;
                }
            }
        } else {
            out.push_str(&quote(a));
            out.push(' ');
            handled = true;
        }
    }
    out
}

impl Config {
    pub fn new() -> Self {
        let mut defaults = BTreeMap::new();
        for line in DEFAULTS.lines() {
            let (k, v) = line.split_once('\t').unwrap_or((line, ""));
            defaults.insert(canonical(k), v.to_string());
        }
        let c = Config {
            values: RwLock::new(defaults.clone()),
            defaults,
            hot: Hot::default(),
            file: None,
            warnings: Vec::new(),
            renames: Vec::new(),
            set_names: Default::default(),
            sentinel_mode: false,
            sentinel_lines: Vec::new(),
            user_lines: Vec::new(),
        };
        let names: Vec<String> = c.values.read().keys().cloned().collect();
        for n in names {
            c.refresh_hot(&n);
        }
        c
    }

    /// Loads config text (file contents, then "\n", then the command-line options).
    /// Errors come back formatted as redis-server prints them.
    pub fn load_text(&mut self, text: &str) -> Result<(), String> {
        let mut saves_seen = false;
        let mut binds_seen = false;
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fatal = |msg: &str| {
                format!(
                    "\n*** FATAL CONFIG FILE ERROR (Redis 7.0.15) ***\nReading the configuration file, at line {}\n>>> '{}'\n{}\n",
                    i + 1,
                    line,
                    msg
                )
            };
            let Some(words) = resp::split_args(line.as_bytes()) else {
                return Err(fatal("Unbalanced quotes in configuration line"));
            };
            let words: Vec<String> = words.into_iter().map(|w| String::from_utf8_lossy(&w).into_owned()).collect();
            if words.is_empty() {
                continue;
            }
            let name = canonical(&words[0]);
            let args = &words[1..];
            if name == "sentinel" {
                // Redis reads these after the rest of the file (its sentinel config queue). A
                // bare `sentinel` line is accepted and ignored in either mode, as Redis's.
                if args.is_empty() {
                    continue;
                }
                if !self.sentinel_mode {
                    return Err(fatal("sentinel directive while not in sentinel mode"));
                }
                self.sentinel_lines.push((i + 1, line.to_string(), args.to_vec()));
                continue;
            }
            if FILE_ONLY.contains(&name.as_str()) {
                match name.as_str() {
                    "rename-command" if args.len() == 2 => self.renames.push((args[0].to_ascii_lowercase(), args[1].clone())),
                    "rename-command" => return Err(fatal("wrong number of arguments")),
                    "user" if !args.is_empty() => self.user_lines.push((line.to_string(), args.to_vec())),
                    "user" => return Err(fatal("wrong number of arguments")),
                    "include" if args.len() == 1 => {
                        let t = std::fs::read_to_string(&args[0])
                            .map_err(|e| fatal(&format!("Fatal error, can't open config file '{}': {}", args[0], e)))?;
                        self.load_text(&t)?;
                    }
                    _ => self.warnings.push(format!("'{}' is accepted but not implemented by ferrodis yet", name)),
                }
                continue;
            }
            if !self.defaults.contains_key(&name) {
                return Err(fatal("Bad directive or wrong number of arguments"));
            }
            // Repeated `save` and `bind` lines accumulate, as in Redis. A bare `save` line means
            // no save points when it comes first, and adds nothing after others (Redis's).
            let value = if name == "save" && args.is_empty() {
                if saves_seen {
                    continue;
                }
                String::new()
            } else if name == "save" && saves_seen && !args.is_empty() && !args[0].is_empty() {
                let cur = self.get(&name).unwrap_or_default();
                let v = self.validate(&name, args).map_err(|e| fatal(&e))?;
                if cur.is_empty() {
                    v
                } else {
                    format!("{} {}", cur, v)
                }
            } else if name == "bind" && binds_seen {
                let cur = self.get(&name).unwrap_or_default();
                format!("{} {}", cur, self.validate(&name, args).map_err(|e| fatal(&e))?)
            } else {
                self.validate(&name, args).map_err(|e| fatal(&e))?
            };
            self.set_names.insert(name.clone());
            saves_seen |= name == "save";
            binds_seen |= name == "bind";
            if !IMPLEMENTED.contains(&name.as_str()) && self.defaults.get(&name) != Some(&value) {
                self.warnings.push(format!("'{}' is accepted but not implemented by ferrodis yet", name));
            }
            self.values.write().insert(name.clone(), value);
            self.refresh_hot(&name);
        }
        Ok(())
    }

    /// Validates one option's arguments and returns the normalised stored value, or the error
    /// text Redis gives (used by both the file loader and CONFIG SET).
    pub fn validate(&self, name: &str, args: &[String]) -> Result<String, String> {
        let multi = matches!(
            name,
            "save"
                | "bind"
                | "client-output-buffer-limit"
                | "oom-score-adj-values"
                | "latency-tracking-info-percentiles"
                | "replicaof"
                | "shutdown-on-sigint"
                | "shutdown-on-sigterm"
        );
        // A flags directive given no flags gets its own error (Redis checks it as the enum).
        if args.is_empty() && matches!(name, "shutdown-on-sigint" | "shutdown-on-sigterm") {
            return Err("argument(s) must be one of the following: default, save, nosave, now, force".into());
        }
        if args.is_empty() || (!multi && args.len() != 1) {
            return Err("wrong number of arguments".into());
        }
        let one = &args[0];
        let def = self.defaults.get(name).cloned().unwrap_or_default();
        if let Some(vals) = enum_values(name) {
            let l = one.to_ascii_lowercase();
            if vals.contains(&l.as_str()) {
                return Ok(l);
            }
            return Err(format!("argument(s) must be one of the following: {}", vals.join(", ")));
        }
        // A file name may not be a path (it would let the file be written anywhere).
        let path_like = one.contains('/') || one.contains('\\');
        match name {
            "dbfilename" | "appendfilename" if path_like => return Err(format!("{name} can't be a path, just a filename")),
            "appenddirname" if path_like => return Err("appenddirname can't be a path, just a dirname".into()),
            "notify-keyspace-events" => return normalize_keyspace_events(one),
            "save" => {
                let joined = args.join(" ");
                let parts: Vec<&str> = joined.split_whitespace().collect();
                if !parts.len().is_multiple_of(2) || parts.iter().any(|p| p.parse::<i64>().is_err()) {
                    return Err("Invalid save parameters".into());
                }
                return Ok(parts.join(" "));
            }
            "client-output-buffer-limit" => {
                let joined = args.join(" ");
                let parts: Vec<&str> = joined.split_whitespace().collect();
                if !parts.len().is_multiple_of(4) {
                    return Err("Wrong number of arguments in buffer limit configuration.".into());
                }
                let mut cur: Vec<String> = self.get(name).unwrap_or(def).split_whitespace().map(String::from).collect();
                for ch in parts.chunks(4) {
                    let class = match ch[0].to_ascii_lowercase().as_str() {
                        "normal" => "normal",
                        "replica" | "slave" => "slave",
                        "pubsub" => "pubsub",
                        _ => return Err("Invalid client class specified in buffer limit configuration.".into()),
                    };
                    let (h, s, t) = (parse_memory(ch[1]), parse_memory(ch[2]), ch[3].parse::<i64>().ok());
                    let (Some(h), Some(s), Some(t)) = (h, s, t) else {
                        return Err("Error in hard, soft or soft_seconds setting in buffer limit configuration.".into());
                    };
                    if h < 0 || s < 0 || t < 0 {
                        return Err("Error in hard, soft or soft_seconds setting in buffer limit configuration.".into());
                    }
                    if let Some(p) = cur.iter().position(|c| c == class) {
                        cur[p + 1] = h.to_string();
                        cur[p + 2] = s.to_string();
                        cur[p + 3] = t.to_string();
                    }
                }
                return Ok(cur.join(" "));
            }
            "replicaof" => {
                if args.len() != 2 {
                    return Err("wrong number of arguments".into());
                }
                if args[0].eq_ignore_ascii_case("no") && args[1].eq_ignore_ascii_case("one") {
                    return Ok(String::new());
                }
                if args[1].parse::<u16>().is_err() {
                    return Err("Invalid master port".into());
                }
                return Ok(format!("{} {}", args[0], args[1]));
            }
            "shutdown-on-sigint" | "shutdown-on-sigterm" => {
                // A set of flags, printed in Redis's declared order.
                const FLAGS: [&str; 5] = ["default", "save", "nosave", "now", "force"];
                let words: Vec<String> = args.iter().flat_map(|a| a.split_whitespace()).map(|w| w.to_ascii_lowercase()).collect();
                if words.is_empty() || words.iter().any(|w| !FLAGS.contains(&w.as_str())) {
                    return Err(format!("argument(s) must be one of the following: {}", FLAGS.join(", ")));
                }
                let set: Vec<&str> = FLAGS.iter().copied().filter(|f| words.iter().any(|w| w == f)).collect();
                // "default" is the absence of the others.
                let rest: Vec<&str> = set.iter().copied().filter(|f| *f != "default").collect();
                return Ok(if rest.is_empty() { "default".to_string() } else { rest.join(" ") });
            }
            "latency-tracking-info-percentiles" => {
                // Each a number from 0 to 100, kept as Redis prints it ("%f" without trailing
                // zeros): "99.90" is 99.9.
                let mut out = Vec::new();
                for w in args.iter().flat_map(|a| a.split_whitespace()) {
                    match w.parse::<f64>() {
                        Ok(v) if (0.0..=100.0).contains(&v) => {
                            let t = format!("{v:.6}");
                            out.push(t.trim_end_matches('0').trim_end_matches('.').to_string());
                        }
                        _ => return Err("latency-tracking-info-percentiles: percentiles must be between 0.0 and 100.0".into()),
                    }
                }
                return Ok(out.join(" "));
            }
            _ if multi => return Ok(args.join(" ")),
            // A size, or a percentage of maxmemory.
            "maxmemory-clients" if one.ends_with('%') => {
                return match one[..one.len() - 1].parse::<u32>() {
                    Ok(p) if p > 100 => Err("percentage argument must be less or equal to 100".into()),
                    Ok(p) => Ok(format!("{}%", p)),
                    Err(_) => Err("argument must be a memory or percent value".into()),
                };
            }
            // An enum with a boolean-looking default.
            "tls-auth-clients" => {
                return match one.to_ascii_lowercase().as_str() {
                    v @ ("yes" | "no" | "optional") => Ok(v.to_string()),
                    _ => Err("argument(s) must be one of the following: no, yes, optional".into()),
                };
            }
            _ => {}
        }
        if def == "yes" || def == "no" {
            return match one.to_ascii_lowercase().as_str() {
                "yes" => Ok("yes".into()),
                "no" => Ok("no".into()),
                _ => Err("argument must be 'yes' or 'no'".into()),
            };
        }
        let numeric = !def.is_empty() && def.parse::<f64>().is_ok() && name != "unixsocketperm";
        if numeric {
            let v = if MEMORY.contains(&name) {
                match parse_memory(one) {
                    Some(v) => v,
                    None => return Err("argument must be a memory value".into()),
                }
            } else {
                match one.parse::<i64>() {
                    Ok(v) => v,
                    Err(_) => return Err("argument couldn't be parsed into an integer".into()),
                }
            };
            let (lo, hi) = match name {
                "port" | "tls-port" | "cluster-port" | "cluster-announce-port" | "replica-announce-port" => (0, 65535),
                "databases" | "maxclients" | "hz" => (1, i64::from(i32::MAX)),
                "active-expire-effort" => (1, 10),
                "list-max-listpack-size" | "list-compress-depth" => (i64::from(i32::MIN), i64::from(i32::MAX)),
                "slowlog-log-slower-than" | "tcp-backlog" | "repl-backlog-ttl" => (-1, i64::MAX),
                "proto-max-bulk-len" => (1024 * 1024, i64::MAX),
                "client-query-buffer-limit" => (1024 * 1024, i64::MAX),
                "repl-backlog-size" => (1, i64::MAX),
                _ => (0, i64::MAX),
            };
            if v < lo || v > hi {
                return Err(format!("argument must be between {} and {} inclusive", lo, hi));
            }
            return Ok(v.to_string());
        }
        Ok(one.clone())
    }

    /// True when the file or the command line set this option.
    pub fn was_set(&self, name: &str) -> bool {
        self.set_names.contains(&canonical(name))
    }

    pub fn get(&self, name: &str) -> Option<String> {
        self.values.read().get(&canonical(name)).cloned()
    }
    pub fn get_int(&self, name: &str) -> i64 {
        self.get(name).and_then(|v| v.parse().ok()).unwrap_or(0)
    }
    pub fn is_yes(&self, name: &str) -> bool {
        self.get(name).as_deref() == Some("yes")
    }
    /// All `(name, value)` pairs whose name matches the glob, aliases included (CONFIG GET).
    pub fn matching(&self, pattern: &[u8]) -> Vec<(String, String)> {
        let values = self.values.read();
        let mut out: Vec<(String, String)> = Vec::new();
        // Hidden directives (test support, as Redis's HIDDEN_CONFIG) answer only by exact name.
        let exact = |n: &str| pattern.eq_ignore_ascii_case(n.as_bytes());
        let mut push = |n: &str, v: &String| {
            if (if HIDDEN.contains(&n) { exact(n) } else { crate::util::glob_match(pattern, n.as_bytes(), true) })
                && !out.iter().any(|(k, _)| k == n)
            {
                out.push((n.to_string(), v.clone()));
            }
        };
        for (n, v) in values.iter() {
            push(n, v);
        }
        for (alias, c) in ALIASES {
            if let Some(v) = values.get(*c) {
                push(alias, v);
            }
        }
        out
    }
    pub fn exists(&self, name: &str) -> bool {
        self.defaults.contains_key(&canonical(name))
    }
    pub fn immutable(&self, name: &str) -> bool {
        IMMUTABLE.contains(&canonical(name).as_str())
    }
    /// Redis's PROTECTED_CONFIG: where the server writes its files. CONFIG SET may change them
    /// only where `enable-protected-configs` allows it (the Redis-to-authorized_keys attack).
    pub fn protected(&self, name: &str) -> bool {
        matches!(canonical(name).as_str(), "dir" | "dbfilename")
    }
    /// Stores an already validated value (CONFIG SET), refreshing hot copies.
    pub fn set_validated(&self, name: &str, value: String) {
        let n = canonical(name);
        self.values.write().insert(n.clone(), value);
        self.refresh_hot(&n);
    }

    fn refresh_hot(&self, name: &str) {
        let h = &self.hot;
        let int = |n: &str| self.get_int(n);
        match name {
            "maxclients" => h.maxclients.store(int(name) as usize, Ordering::Relaxed),
            "timeout" => h.timeout_s.store(int(name), Ordering::Relaxed),
            "proto-max-bulk-len" => h.proto_max_bulk_len.store(int(name), Ordering::Relaxed),
            "client-query-buffer-limit" => h.query_buffer_limit.store(int(name) as usize, Ordering::Relaxed),
            "requirepass" => h.requirepass_set.store(!self.get(name).unwrap_or_default().is_empty(), Ordering::Relaxed),
            "slowlog-log-slower-than" => h.slowlog_slower_than.store(int(name), Ordering::Relaxed),
            "slowlog-max-len" => h.slowlog_max_len.store(int(name) as usize, Ordering::Relaxed),
            "hz" => h.hz.store(int(name).clamp(1, 500), Ordering::Relaxed),
            "active-expire-effort" => h.active_expire_effort.store(int(name), Ordering::Relaxed),
            "latency-monitor-threshold" => h.latency_threshold.store(int(name), Ordering::Relaxed),
            "hash-max-listpack-entries" => h.hash_max_entries.store(int(name).max(0) as usize, Ordering::Relaxed),
            "hash-max-listpack-value" => h.hash_max_value.store(int(name).max(0) as usize, Ordering::Relaxed),
            "stream-node-max-bytes" => h.stream_node_max_bytes.store(int(name).max(0) as usize, Ordering::Relaxed),
            "stream-node-max-entries" => h.stream_node_max_entries.store(int(name).max(0) as usize, Ordering::Relaxed),
            "tracking-table-max-keys" => h.tracking_table_max_keys.store(int(name).max(0) as usize, Ordering::Relaxed),
            "latency-tracking" => h.latency_tracking.store(self.get(name).is_some_and(|v| v == "yes"), Ordering::Relaxed),
            "notify-keyspace-events" => {
                h.notify_flags.store(keyspace_event_flags(&self.get(name).unwrap_or_default()).unwrap_or(0), Ordering::Relaxed)
            }
            "appendfsync" => h.appendfsync.store(
                match self.get(name).unwrap_or_default().as_str() {
                    "always" => 2,
                    "no" => 0,
                    _ => 1,
                },
                Ordering::Relaxed,
            ),
            "zset-max-listpack-entries" => h.zset_max_entries.store(int(name).max(0) as usize, Ordering::Relaxed),
            "zset-max-listpack-value" => h.zset_max_value.store(int(name).max(0) as usize, Ordering::Relaxed),
            "set-max-intset-entries" => h.set_max_intset.store(int(name).max(0) as usize, Ordering::Relaxed),
            "lfu-log-factor" => h.lfu_log_factor.store(int(name), Ordering::Relaxed),
            "replica-read-only" => h.replica_read_only.store(self.get(name).as_deref() != Some("no"), Ordering::Relaxed),
            "replica-serve-stale-data" => h.replica_serve_stale.store(self.get(name).as_deref() != Some("no"), Ordering::Relaxed),
            "min-replicas-to-write" => h.min_replicas_to_write.store(int(name), Ordering::Relaxed),
            "min-replicas-max-lag" => h.min_replicas_max_lag.store(int(name), Ordering::Relaxed),
            "sync-replicas" => h.sync_replicas.store(int(name), Ordering::Relaxed),
            "sync-replicas-timeout" => h.sync_replicas_timeout.store(int(name), Ordering::Relaxed),
            "lfu-decay-time" => h.lfu_decay_time.store(int(name), Ordering::Relaxed),
            "maxmemory-policy" => {
                let p = self.get(name).unwrap_or_default();
                h.lfu_policy.store(p.contains("lfu"), Ordering::Relaxed);
                let n = [
                    "noeviction",
                    "allkeys-lru",
                    "volatile-lru",
                    "allkeys-lfu",
                    "volatile-lfu",
                    "allkeys-random",
                    "volatile-random",
                    "volatile-ttl",
                ]
                .iter()
                .position(|x| *x == p)
                .unwrap_or(0);
                h.maxmemory_policy.store(n as u8, Ordering::Relaxed);
            }
            "maxmemory" => h.maxmemory.store(int(name), Ordering::Relaxed),
            "maxmemory-samples" => h.maxmemory_samples.store(int(name), Ordering::Relaxed),
            "maxmemory-eviction-tenacity" => h.maxmemory_tenacity.store(int(name), Ordering::Relaxed),
            "replica-ignore-maxmemory" => h.replica_ignore_maxmemory.store(self.get(name).as_deref() != Some("no"), Ordering::Relaxed),
            "client-output-buffer-limit" => {
                let v = self.get(name).unwrap_or_default();
                let p: Vec<&str> = v.split_whitespace().collect();
                if let Some(i) = p.iter().position(|c| *c == "normal") {
                    h.obuf_hard.store(p.get(i + 1).and_then(|x| x.parse().ok()).unwrap_or(0), Ordering::Relaxed);
                    h.obuf_soft.store(p.get(i + 2).and_then(|x| x.parse().ok()).unwrap_or(0), Ordering::Relaxed);
                    h.obuf_soft_secs.store(p.get(i + 3).and_then(|x| x.parse().ok()).unwrap_or(0), Ordering::Relaxed);
                }
                if let Some(i) = p.iter().position(|c| *c == "slave") {
                    h.replica_obuf_hard.store(p.get(i + 1).and_then(|x| x.parse().ok()).unwrap_or(0), Ordering::Relaxed);
                }
                if let Some(i) = p.iter().position(|c| *c == "pubsub") {
                    h.pubsub_hard.store(p.get(i + 1).and_then(|x| x.parse().ok()).unwrap_or(0), Ordering::Relaxed);
                    h.pubsub_soft.store(p.get(i + 2).and_then(|x| x.parse().ok()).unwrap_or(0), Ordering::Relaxed);
                    h.pubsub_soft_secs.store(p.get(i + 3).and_then(|x| x.parse().ok()).unwrap_or(0), Ordering::Relaxed);
                }
            }
            _ => {}
        }
    }

    /// CONFIG REWRITE: rewrites the config file in place, keeping unknown lines and comments,
    /// replacing the lines of changed options and appending the rest.
    pub fn rewrite(&self) -> Result<(), String> {
        self.rewrite_with(false)
    }
    /// CONFIG REWRITE; `force_all` (DEBUG CONFIG-REWRITE-FORCE-ALL) writes every directive,
    /// those at their defaults too.
    pub fn rewrite_with(&self, force_all: bool) -> Result<(), String> {
        let Some(path) = &self.file else {
            return Err("ERR The server is running without a config file".into());
        };
        let old = std::fs::read_to_string(path).unwrap_or_default();
        let values = self.values.read();
        let mut written = std::collections::HashSet::new();
        let mut out = Vec::new();
        for line in old.lines() {
            let t = line.trim();
            let name = t.split_whitespace().next().map(canonical).unwrap_or_default();
            if t.is_empty() || t.starts_with('#') || !values.contains_key(&name) || t.starts_with("# Generated by CONFIG REWRITE") {
                if !t.starts_with("# Generated by CONFIG REWRITE") {
                    out.push(line.to_string());
                }
                continue;
            }
            if written.insert(name.clone()) {
                out.push(format!("{} {}", name, rewrite_value(&name, &values[&name])));
            }
        }
        let mut header = false;
        for (n, v) in values.iter() {
            if written.contains(n) || (!force_all && self.defaults.get(n) == Some(v)) {
                continue;
            }
            if !header {
                out.push("# Generated by CONFIG REWRITE".into());
                header = true;
            }
            // Not a replica: no replicaof line (Redis drops it the same way).
            if n == "replicaof" && v.trim().is_empty() {
                continue;
            }
            out.push(format!("{} {}", n, rewrite_value(n, v)));
        }
        std::fs::write(path, out.join("\n") + "\n").map_err(|e| format!("ERR Rewriting config file: {}", e))
    }
}

/// Directives CONFIG GET shows only when asked by name, and CONFIG REWRITE writes only when set
/// (Redis's HIDDEN_CONFIG: test support). `rdb-key-save-delay` and `key-load-delay` slow saves
/// and loads down per key (microseconds) so that tests can act while one runs.
pub const HIDDEN: &[&str] = &["rdb-key-save-delay", "key-load-delay", "loading-process-events-interval-bytes"];

/// Directives whose value is several arguments, written as they are (the others are one
/// argument each, quoted where need be).
pub const MULTI_ARG: &[&str] =
    &["save", "bind", "client-output-buffer-limit", "oom-score-adj-values", "latency-tracking-info-percentiles", "replicaof"];

/// A value as CONFIG REWRITE writes it: a multi-argument value as it is, a single argument
/// quoted (Redis's sdscatrepr) when it is empty or holds spaces, quotes or control characters.
fn rewrite_value(name: &str, v: &str) -> String {
    let plain = !v.is_empty() && v.bytes().all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\'' && b != b'\\');
    if plain || ((MULTI_ARG.contains(&name) || name.starts_with("shutdown-on-")) && !v.trim().is_empty()) {
        return v.to_string();
    }
    quote(v)
}

impl Default for Config {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// Random configuration text (directive-like lines, quotes, escapes) is loaded or
        /// refused with a message, never panicked on.
        #[test]
        fn random_config_text_never_panics(lines in proptest::collection::vec(
            proptest::prop_oneof![
                "[a-z-]{1,24} [ -~]{0,30}",
                "(maxmemory|save|bind|user|rename-command|client-output-buffer-limit|notify-keyspace-events|sentinel|include) [ -~]{0,30}",
                "[ -~]{0,40}",
            ], 0..8)) {
            let mut c = Config::new();
            let text = lines.join("\n");
            if !text.contains("include") {
                let _ = c.load_text(&text);
            }
        }
    }

    #[test]
    fn argv_becomes_lines() {
        let a: Vec<String> = ["--port", "7000", "--save", "", "--bind", "127.0.0.1", "::1"].iter().map(|s| s.to_string()).collect();
        assert_eq!(argv_to_config(&a), "port \"7000\" \nsave \"\" \nbind \"127.0.0.1\" \"::1\" ");
        // Redis's rules: the word after `--name` is its value whatever it looks like; a bare
        // `--save` before an option (or last) is `save ""`; "--name value" in one argument.
        let v = |w: &[&str]| argv_to_config(&w.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(v(&["--port", "--bla", "--loglevel", "verbose"]), "port \"--bla\" \nloglevel \"verbose\" ");
        assert_eq!(v(&["--port", "6379", "6380"]), "port \"6379\" \"6380\" ");
        assert_eq!(v(&["--save", "--loglevel", "verbose"]), "save \"\"\nloglevel \"verbose\" ");
        assert_eq!(v(&["--loglevel", "verbose", "--save"]), "loglevel \"verbose\" \nsave \"\"");
        assert_eq!(v(&["--maxmemory 700mb", "--maxmemory-policy volatile-lru"]), "maxmemory 700mb \nmaxmemory-policy volatile-lru ");
        assert_eq!(
            v(&["--proc-title-template", "--save", "--save", "", "--loglevel", "verbose"]),
            "proc-title-template \"--save\" \nsave \"\" \nloglevel \"verbose\" "
        );
        let mut c = Config::new();
        c.load_text(&argv_to_config(&a)).unwrap();
        assert_eq!(c.get("port").unwrap(), "7000");
        assert_eq!(c.get("save").unwrap(), "");
        assert_eq!(c.get("bind").unwrap(), "127.0.0.1 ::1");
    }

    #[test]
    fn a_bare_save_line_means_no_save_points_first_and_nothing_after() {
        let mut c = Config::new();
        c.load_text("save\n").unwrap();
        assert_eq!(c.get("save").unwrap(), "");
        let mut c = Config::new();
        c.load_text("save 100 1\nsave\n").unwrap();
        assert_eq!(c.get("save").unwrap(), "100 1");
        let mut c = Config::new();
        c.load_text(&argv_to_config(&["--save".to_string()])).unwrap();
        assert_eq!(c.get("save").unwrap(), "");
    }

    #[test]
    fn errors_as_redis_prints_them() {
        let mut c = Config::new();
        let e = c.load_text("port 7000\nport abc\n").unwrap_err();
        assert!(e.contains("at line 2\n>>> 'port abc'\nargument couldn't be parsed into an integer"), "{e}");
        let e = Config::new().load_text("\nfoo \"bar\"").unwrap_err();
        assert!(e.contains("at line 2\n>>> 'foo \"bar\"'\nBad directive or wrong number of arguments"), "{e}");
        let e = Config::new().load_text("appendonly maybe").unwrap_err();
        assert!(e.contains("argument must be 'yes' or 'no'"));
        let e = Config::new().load_text("hz").unwrap_err();
        assert!(e.contains("wrong number of arguments"));
    }

    #[test]
    fn memory_and_aliases() {
        let mut c = Config::new();
        c.load_text("maxmemory 1gb\nslave-read-only no\nclient-output-buffer-limit normal 1mb 512kb 10").unwrap();
        assert_eq!(c.get("maxmemory").unwrap(), "1073741824");
        assert_eq!(c.get("replica-read-only").unwrap(), "no");
        assert_eq!(c.hot.obuf_hard.load(Ordering::Relaxed), 1 << 20);
        assert!(c.matching(b"slave-read-only").len() == 1);
    }
}

/// Keyspace notification classes (Redis's NOTIFY_* bits).
pub mod notify {
    pub const KEYSPACE: u32 = 1 << 0;
    pub const KEYEVENT: u32 = 1 << 1;
    pub const GENERIC: u32 = 1 << 2;
    pub const STRING: u32 = 1 << 3;
    pub const LIST: u32 = 1 << 4;
    pub const SET: u32 = 1 << 5;
    pub const HASH: u32 = 1 << 6;
    pub const ZSET: u32 = 1 << 7;
    pub const EXPIRED: u32 = 1 << 8;
    pub const EVICTED: u32 = 1 << 9;
    pub const STREAM: u32 = 1 << 10;
    pub const KEY_MISS: u32 = 1 << 11;
    pub const MODULE: u32 = 1 << 12;
    pub const NEW: u32 = 1 << 13;
    /// What 'A' stands for (g$lshzxetd).
    pub const ALL: u32 = GENERIC | STRING | LIST | SET | HASH | ZSET | EXPIRED | EVICTED | STREAM | MODULE;
}

/// Parses `notify-keyspace-events` as Redis's keyspaceEventsStringToFlags.
pub fn keyspace_event_flags(s: &str) -> Option<u32> {
    use notify::*;
    let mut f = 0;
    for c in s.chars() {
        f |= match c {
            'A' => ALL,
            'g' => GENERIC,
            '$' => STRING,
            'l' => LIST,
            's' => SET,
            'h' => HASH,
            'z' => ZSET,
            'x' => EXPIRED,
            'e' => EVICTED,
            'K' => KEYSPACE,
            'E' => KEYEVENT,
            't' => STREAM,
            'm' => KEY_MISS,
            'd' => MODULE,
            'n' => NEW,
            _ => return None,
        };
    }
    Some(f)
}

/// The option as CONFIG GET shows it (Redis's keyspaceEventsFlagsToString).
fn normalize_keyspace_events(s: &str) -> Result<String, String> {
    use notify::*;
    let f = keyspace_event_flags(s).ok_or_else(|| "Invalid event class character. Use 'Ag$lshzxeKEtmdn'.".to_string())?;
    let mut out = String::new();
    if f & ALL == ALL {
        out.push('A');
    } else {
        for (bit, c) in [
            (GENERIC, 'g'),
            (STRING, '$'),
            (LIST, 'l'),
            (SET, 's'),
            (HASH, 'h'),
            (ZSET, 'z'),
            (EXPIRED, 'x'),
            (EVICTED, 'e'),
            (STREAM, 't'),
            (MODULE, 'd'),
            (NEW, 'n'),
        ] {
            if f & bit != 0 {
                out.push(c);
            }
        }
    }
    for (bit, c) in [(KEYSPACE, 'K'), (KEYEVENT, 'E'), (KEY_MISS, 'm')] {
        if f & bit != 0 {
            out.push(c);
        }
    }
    Ok(out)
}
