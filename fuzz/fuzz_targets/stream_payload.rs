//! Any bytes as a stream value of each RDB stream type (15, 19, 21): errors, never panics.
//! Run: `cargo +nightly fuzz run stream_payload`.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for t in [rdb::types::STREAM_LISTPACKS, rdb::types::STREAM_LISTPACKS_2, rdb::types::STREAM_LISTPACKS_3] {
        let _ = rdb::stream::read(&mut rdb::decode::Cursor::new(data), t);
    }
});
