//! Any text as redis.conf: directives are taken or refused with Redis's error, never a panic.
//! Run: `cargo +nightly fuzz run config_text`.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // `include` reads the file it names (which could be /dev/zero): not the parser's business.
    if let Ok(text) = std::str::from_utf8(data).map(|t| t.replace("include", "incl")) {
        let mut cfg = ferrodis::config::Config::new();
        let _ = cfg.load_text(&text);
    }
});
