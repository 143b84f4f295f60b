//! Logs in Redis's line format through `tracing`:
//! `pid:role DD Mon YYYY HH:MM:SS.mmm <level> message`, level chars `.` debug, `-` verbose,
//! `*` notice, `#` warning. Redis's own tests and tools grep these lines.

use std::fmt;
use std::io::Write;
use std::sync::Mutex;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Lines in Redis's format; the role letter is `util::LOG_ROLE` (it changes with REPLICAOF).
struct RedisFormat;

const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/// Civil date from days since the epoch (Howard Hinnant's algorithm).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

pub fn timestamp() -> String {
    let ms = crate::util::now_ms();
    let secs = ms.div_euclid(1000);
    let (y, m, d) = civil(secs.div_euclid(86400));
    let sod = secs.rem_euclid(86400);
    format!(
        "{:02} {} {} {:02}:{:02}:{:02}.{:03}",
        d,
        MONTHS[(m - 1) as usize],
        y,
        sod / 3600,
        (sod / 60) % 60,
        sod % 60,
        ms.rem_euclid(1000)
    )
}

/// The target of lines written as they are, without the time and level prefix (Redis's LL_RAW).
pub const RAW: &str = "ferrodis::raw";

/// The startup banner (Redis's logo, with ferrodis's own art): with `always-show-logo yes`, or
/// when logging to a terminal, the version, mode, port and PID lines that Redis's logo carries
/// (tools and Redis's test suite find the PID there); otherwise Redis's one-line notice.
pub fn banner(config: &crate::config::Config, mode: &str, port: u16) {
    let logfile = config.get("logfile").unwrap_or_default();
    let syslog = config.get("syslog-enabled").is_some_and(|v| v == "yes");
    // SAFETY: isatty(2) only inspects the descriptor.
    let tty = !syslog && logfile.is_empty() && unsafe { libc::isatty(1) } == 1;
    if !(tty || config.get("always-show-logo").is_some_and(|v| v == "yes")) {
        tracing::info!("Running mode={}, port={}.", mode, port);
        return;
    }
    let lines = [
        String::new(),
        "     _______   ".to_string(),
        format!("    /  ___  \\      ferrodis {} (Redis 7.0.15 compatible) 64 bit", env!("CARGO_PKG_VERSION")),
        "   |  |___|  |   ".to_string(),
        format!("   |   ___   |     Running in {mode} mode"),
        format!("   |  |   |  |     Port: {port}"),
        format!("   |__|   |__|     PID: {}", std::process::id()),
        String::new(),
    ];
    tracing::info!(target: RAW, "{}", lines.join("\n"));
}

impl<S, N> FormatEvent<S, N> for RedisFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut w: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let lvl = match *event.metadata().level() {
            Level::TRACE | Level::DEBUG => '.',
            Level::INFO => '*',
            Level::WARN | Level::ERROR => '#',
        };
        if event.metadata().target() == RAW {
            ctx.field_format().format_fields(w.by_ref(), event)?;
            return writeln!(w);
        }
        let role = crate::util::LOG_ROLE.load(std::sync::atomic::Ordering::Relaxed) as char;
        write!(w, "{}:{} {} {} ", std::process::id(), role, timestamp(), lvl)?;
        ctx.field_format().format_fields(w.by_ref(), event)?;
        writeln!(w)
    }
}

struct FileWriter(Mutex<std::fs::File>);

impl Write for &FileWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().map_err(|_| std::io::Error::other("poisoned"))?.write(b)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs the global logger. `loglevel` is Redis's (debug, verbose, notice, warning);
/// `logfile` empty means standard output.
pub fn init(loglevel: &str, logfile: &str, role: char) -> Result<(), String> {
    let max = match loglevel {
        "debug" => Level::TRACE,
        "verbose" => Level::DEBUG,
        "notice" => Level::INFO,
        _ => Level::WARN,
    };
    crate::util::LOG_ROLE.store(role as u8, std::sync::atomic::Ordering::Relaxed);
    let builder = tracing_subscriber::fmt().with_max_level(max).event_format(RedisFormat);
    let res = if logfile.is_empty() {
        builder.with_writer(std::io::stdout).try_init()
    } else {
        let f =
            std::fs::OpenOptions::new().create(true).append(true).open(logfile).map_err(|e| format!("Can't open the log file: {}", e))?;
        let w: &'static FileWriter = Box::leak(Box::new(FileWriter(Mutex::new(f))));
        builder.with_writer(move || w).try_init()
    };
    res.map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn civil_dates() {
        assert_eq!(super::civil(0), (1970, 1, 1));
        assert_eq!(super::civil(20417), (2025, 11, 25));
    }
}
