//! Panics: contained or fatal, never half.
//!
//! A panic inside a *containment zone* (`contained`, which dispatch puts around every command a
//! client sends) unwinds to the zone, which reports it; everything else that panics, on any
//! thread, aborts the process at once with a Redis-style bug report, so that a supervisor,
//! Sentinel or the cluster sees a dead node instead of a half-alive one. The hook records, at the
//! panic itself, whether a write was under way (`WriteGuard`, held by dispatch around write
//! handlers, blocked-client serving and eviction): the zone's caller turns such a panic into the
//! fatal path too, since the keyspace, the journal and the replicas may no longer agree.
//!
//! `FERRODIS_FAILPOINTS` (test-only, read once at start) makes named commands panic after their
//! handler ran, e.g. `FERRODIS_FAILPOINTS=panic-after:strlen,panic-after:incr`.

use std::backtrace::Backtrace;
use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

thread_local! {
    /// How many containment zones this thread is inside.
    static ZONE: Cell<u32> = const { Cell::new(0) };
    /// How many write handlers this thread is inside.
    static WRITING: Cell<u32> = const { Cell::new(0) };
    /// The last panic of this thread inside a zone, as the hook saw it.
    static LAST: RefCell<Option<Panic>> = const { RefCell::new(None) };
}

/// What a contained panic was: its message and place, the backtrace taken where it happened,
/// and whether a write handler was running then.
#[derive(Debug)]
pub struct Panic {
    pub message: String,
    pub backtrace: String,
    pub during_write: bool,
}

/// Installs the process's panic hook (once, at start).
pub fn install_hook() {
    std::panic::set_hook(Box::new(|info| {
        let message = match (info.payload().downcast_ref::<&str>(), info.payload().downcast_ref::<String>()) {
            (Some(s), _) => (*s).to_string(),
            (_, Some(s)) => s.clone(),
            _ => "(a panic without a message)".to_string(),
        };
        let message = match info.location() {
            Some(l) => format!("{message} #{}:{}", l.file(), l.line()),
            None => message,
        };
        let backtrace = Backtrace::force_capture().to_string();
        let during_write = WRITING.with(|w| w.get()) > 0;
        if ZONE.with(|z| z.get()) > 0 {
            LAST.with(|l| *l.borrow_mut() = Some(Panic { message, backtrace, during_write }));
            return;
        }
        let thread = std::thread::current().name().unwrap_or("unnamed").to_string();
        fatal(&Panic { message, backtrace, during_write }, &[format!("thread: {thread} (no client command was running)")]);
    }));
}

/// Runs `f` in a containment zone: a panic inside comes back as `Err` with what the hook saw.
pub fn contained<R>(f: impl FnOnce() -> R) -> Result<R, Panic> {
    struct Zone;
    impl Drop for Zone {
        fn drop(&mut self) {
            ZONE.with(|z| z.set(z.get() - 1));
        }
    }
    ZONE.with(|z| z.set(z.get() + 1));
    let zone = Zone;
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    drop(zone);
    r.map_err(|payload| {
        LAST.with(|l| l.borrow_mut().take()).unwrap_or_else(|| Panic {
            // No hook installed (unit tests): the payload is all there is.
            message: payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_default(),
            backtrace: String::new(),
            during_write: false,
        })
    })
}

/// Held while a handler that may change the keyspace runs: a panic then is fatal.
pub struct WriteGuard(());

impl WriteGuard {
    #[inline]
    pub fn enter() -> WriteGuard {
        WRITING.with(|w| w.set(w.get() + 1));
        WriteGuard(())
    }
}

impl Drop for WriteGuard {
    #[inline]
    fn drop(&mut self) {
        WRITING.with(|w| w.set(w.get() - 1));
    }
}

/// The bug report, as Redis prints it on an assertion or a crash, in log lines.
pub fn report(p: &Panic, fatal: bool, client: &[String]) -> Vec<String> {
    let mut lines = vec![
        "=== REDIS BUG REPORT START: Cut & paste starting from here ===".to_string(),
        "------------------------------------------------".to_string(),
        "!!! Software Failure. Press left mouse button to continue".to_string(),
        format!("Guru Meditation: {}", p.message),
        if fatal {
            "The server stops now (the keyspace may be half-changed: a replica or the AOF must take over).".to_string()
        } else {
            "The command was stopped before it changed anything; its client is disconnected and the server goes on.".to_string()
        },
        String::new(),
        "------ STACK TRACE ------".to_string(),
    ];
    if p.backtrace.trim().is_empty() {
        lines.push("(no backtrace could be taken: the panic unwound through Lua's C frames)".to_string());
    }
    lines.extend(p.backtrace.lines().map(str::to_string));
    lines.push(String::new());
    lines.push("------ CURRENT CLIENT INFO ------".to_string());
    lines.extend(client.iter().cloned());
    lines.push(String::new());
    lines.push("=== REDIS BUG REPORT END. Make sure to include from START to END. ===".to_string());
    lines.push(String::new());
    lines.push("       Please report the crash by opening an issue on github:".to_string());
    lines.push(String::new());
    lines
}

/// Logs the bug report and aborts the process.
pub fn fatal(p: &Panic, client: &[String]) -> ! {
    for line in report(p, true, client) {
        tracing::warn!("{line}");
    }
    // The report went through the logger's writer; make sure it reached the terminal or file.
    use std::io::Write;
    let _ = std::io::stdout().flush();
    std::process::abort();
}

/// Test-only failpoints: `panic-after:<command>` entries of `FERRODIS_FAILPOINTS`.
static FAILPOINTS: OnceLock<Vec<String>> = OnceLock::new();
static FAILPOINTS_ON: AtomicBool = AtomicBool::new(false);

/// Reads `FERRODIS_FAILPOINTS` (once, at start).
pub fn load_failpoints() {
    let list: Vec<String> = std::env::var("FERRODIS_FAILPOINTS")
        .unwrap_or_default()
        .split(',')
        .filter_map(|e| e.trim().strip_prefix("panic-after:").map(|c| c.to_ascii_lowercase()))
        .collect();
    if !list.is_empty() {
        tracing::warn!("FERRODIS_FAILPOINTS is set: these commands panic after running (a test build of behaviour): {}", list.join(", "));
        FAILPOINTS_ON.store(true, Ordering::Release);
    }
    let _ = FAILPOINTS.set(list);
}

/// Panics when a failpoint names this command (one atomic load when none is set).
#[inline]
pub fn failpoint(command: &str) {
    if FAILPOINTS_ON.load(Ordering::Relaxed) && FAILPOINTS.get().is_some_and(|l| l.iter().any(|c| c == command)) {
        panic!("failpoint panic-after:{command} reached");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_contained_panic_comes_back_with_whether_a_write_was_running() {
        let r = contained(|| {
            let _w = WriteGuard::enter();
            panic!("inside a write");
        });
        let p = r.expect_err("the panic is caught");
        assert!(p.message.contains("inside a write"), "{p:?}");
        assert_eq!(ZONE.with(|z| z.get()), 0);
        assert_eq!(WRITING.with(|w| w.get()), 0, "the guard unwound");
        assert_eq!(contained(|| 5).expect("no panic"), 5);
    }

    #[test]
    fn the_report_names_the_client_and_the_cause() {
        let p = Panic { message: "boom #x.rs:1".into(), backtrace: "frame 0\nframe 1".into(), during_write: false };
        let lines = report(&p, false, &["id=3 addr=127.0.0.1:5 cmd=get".into(), "argv[0]: 'get'".into()]);
        let text = lines.join("\n");
        assert!(text.starts_with("=== REDIS BUG REPORT START"));
        assert!(text.contains("Guru Meditation: boom #x.rs:1") && text.contains("frame 1") && text.contains("argv[0]: 'get'"));
        assert!(text.contains("=== REDIS BUG REPORT END."));
    }
}
