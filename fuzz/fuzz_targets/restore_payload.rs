//! Any bytes as a RESTORE or FUNCTION RESTORE payload (checksum bypassed, so the decoder itself
//! is exercised): errors, never panics. Run: `cargo +nightly fuzz run restore_payload`.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = rdb::dump::value(data);
    let _ = rdb::dump::functions(data);
    let _ = rdb::dump::open(data);
});
