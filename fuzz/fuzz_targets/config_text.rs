//! Any text as redis.conf: directives are taken or refused with Redis's error, never a panic.
//! Run: `cargo +nightly fuzz run config_text`.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let mut cfg = ferrodis::config::Config::new();
        let _ = cfg.load_text(text);
    }
});
