//! The Lua script cache: bodies by SHA1 (hex), shared by every thread, and a generation that
//! SCRIPT FLUSH bumps so each thread rebuilds its Lua state (`commands::scripting`).

use std::collections::HashMap;
use std::sync::Arc;

#[derive(Default)]
pub struct Scripts {
    pub bodies: parking_lot::Mutex<HashMap<String, Arc<Vec<u8>>>>,
    pub generation: std::sync::atomic::AtomicU64,
    /// FUNCTION libraries by name.
    pub libraries: parking_lot::Mutex<std::collections::BTreeMap<String, Library>>,
}

/// A FUNCTION library: its code and its functions (name, `no-writes` flag), in order.
#[derive(Clone, Debug)]
pub struct Library {
    pub code: Vec<u8>,
    pub functions: Vec<(String, bool)>,
}

/// The running script (at most one runs at a time: it holds every stripe): when it started
/// (Unix ms, 0 when none), whether SCRIPT KILL asked it to stop, and whether it has written
/// (then it cannot be killed). Process-wide, as Redis's.
pub static RUNNING_SINCE: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);
pub static KILL: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
pub static WROTE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
/// The worker thread the running script runs on (`usize::MAX` when none). Its thread serves no
/// other connection meanwhile, so new connections go to the others: an operator's fresh
/// redis-cli can always send SCRIPT KILL.
pub static RUNNING_WORKER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(usize::MAX);

thread_local! {
    /// This thread's worker index (`usize::MAX` on threads that are not workers).
    pub static WORKER: std::cell::Cell<usize> = const { std::cell::Cell::new(usize::MAX) };
}
/// The reply to commands refused while a script runs too long.
pub const BUSY_ERR: &str = "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.";
/// The same while a FUNCTION runs (Redis names the command that stops it).
pub const BUSY_FUNCTION_ERR: &str = "BUSY Redis is busy running a script. You can only call FUNCTION KILL or SHUTDOWN NOSAVE.";

/// The BUSY reply for the script running now: EVAL's or FCALL's.
pub fn busy_err() -> &'static str {
    match RUNNING_CALL.lock().as_ref() {
        Some((Some(_), _)) => BUSY_FUNCTION_ERR,
        _ => BUSY_ERR,
    }
}

/// The running call, for FUNCTION STATS: the function's name (None for an EVAL script) and the
/// command that called it.
pub static RUNNING_CALL: parking_lot::Mutex<Option<RunningCall>> = parking_lot::const_mutex(None);
pub type RunningCall = (Option<String>, Vec<Vec<u8>>);
