//! Any bytes as an RDB file: the reader returns items or an error, never panics, never
//! allocates what the input cannot back. Run: `cargo +nightly fuzz run rdb_load` in `fuzz/`.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut input = b"REDIS0010".to_vec();
    input.extend_from_slice(data);
    for bytes in [data, &input[..]] {
        if let Ok(mut r) = rdb::file::Reader::new(bytes) {
            for _ in 0..100_000 {
                match r.next_item() {
                    Ok(rdb::file::Item::End) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        }
    }
});
