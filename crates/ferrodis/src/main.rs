// `ferrodis [/path/to/redis.conf] [--directive value ...]`, as redis-server takes it.

use ferrodis::config::{argv_to_config, Config};

#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn usage() -> ! {
    eprintln!("Usage: ./ferrodis [/path/to/redis.conf] [options] [-]");
    eprintln!("       ./ferrodis - (read config from stdin)");
    eprintln!("       ./ferrodis -v or --version");
    eprintln!("       ./ferrodis -h or --help");
    eprintln!();
    eprintln!("Examples:");
    eprintln!("       ./ferrodis (run the server with default conf)");
    eprintln!("       ./ferrodis /etc/redis/6379.conf");
    eprintln!("       ./ferrodis --port 7777");
    eprintln!("       ./ferrodis /etc/myredis.conf --loglevel verbose");
    std::process::exit(1);
}

fn main() {
    // Sentinel mode: `--sentinel` anywhere, or a program name ending in "-sentinel"
    // (ferrodis-sentinel, or a redis-sentinel link), as redis-server decides it.
    let program = std::env::args().next().unwrap_or_default();
    let named_sentinel = std::path::Path::new(&program).file_name().is_some_and(|n| n.to_string_lossy().ends_with("sentinel"));
    let all: Vec<String> = std::env::args().skip(1).collect();
    let sentinel = named_sentinel || all.iter().any(|a| a == "--sentinel");
    let args: Vec<String> = all.into_iter().filter(|a| a != "--sentinel").collect();
    if let Some(a) = args.first() {
        match a.as_str() {
            "-v" | "--version" => {
                println!(
                    "Redis server v=7.0.15 sha=00000000:0 malloc=jemalloc-5.3.0 bits=64 build=0 (ferrodis {})",
                    env!("CARGO_PKG_VERSION")
                );
                return;
            }
            "-h" | "--help" => usage(),
            _ => {}
        }
    }
    let mut config = Config::new();
    if sentinel {
        config.sentinel_mode = true;
        config.set_validated("port", "26379".into());
    }
    let mut text = String::new();
    let mut rest = &args[..];
    if let Some(first) = args.first() {
        if !first.starts_with("--") && first != "-" {
            match std::fs::read_to_string(first) {
                Ok(t) => {
                    text = t;
                    config.file = std::fs::canonicalize(first).ok().map(|p| p.display().to_string());
                }
                Err(e) => {
                    eprintln!("Fatal error, can't open config file '{}': {}", first, e);
                    std::process::exit(1);
                }
            }
            rest = &args[1..];
        }
    }
    if rest.first().map(String::as_str) == Some("-") {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut std::io::stdin(), &mut s);
        text.push('\n');
        text.push_str(&s);
        rest = &rest[1..];
    }
    text.push('\n');
    text.push_str(&argv_to_config(rest));
    if let Err(e) = config.load_text(&text) {
        eprint!("{}", e);
        std::process::exit(1);
    }
    if sentinel {
        // A sentinel keeps no dataset: no snapshots, no AOF.
        config.set_validated("save", String::new());
        config.set_validated("appendonly", "no".into());
    }
    let dir = config.get("dir").unwrap_or_default();
    if !dir.is_empty() {
        if let Err(e) = std::env::set_current_dir(&dir) {
            eprintln!("Can't chdir to '{}': {}", dir, e);
            std::process::exit(1);
        }
    }
    // As Redis's CONFIG GET dir: the working directory, absolute.
    if let Ok(cwd) = std::env::current_dir() {
        config.set_validated("dir", cwd.display().to_string());
    }
    // daemonize yes: detach (before any thread starts), stdio to /dev/null, as redis-server does.
    if config.get("daemonize").as_deref() == Some("yes") {
        // SAFETY: no other thread exists yet; daemon(3) forks and the parent exits.
        if unsafe { libc::daemon(1, 0) } != 0 {
            eprintln!("Can't daemonize: {}", std::io::Error::last_os_error());
            std::process::exit(1);
        }
    }
    let level = config.get("loglevel").unwrap_or_else(|| "notice".into());
    let logfile = config.get("logfile").unwrap_or_default();
    if let Err(e) = ferrodis::server::log::init(&level, &logfile, if sentinel { 'X' } else { 'M' }) {
        eprintln!("{}", e);
        std::process::exit(1);
    }
    // A panic is contained to the client command that caused it, or it stops the process with
    // a bug report: never a half-alive server (see ferrodis::crash).
    ferrodis::crash::install_hook();
    ferrodis::crash::load_failpoints();
    std::process::exit(ferrodis::server::run(config));
}
