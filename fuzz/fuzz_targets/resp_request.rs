//! Any bytes as a client's input: requests are framed or refused with a protocol error, and
//! every framed argument lies inside the input; the client-side reply parser (Sentinel's and
//! the cluster tools' links) gets the same bytes. Run: `cargo +nightly fuzz run resp_request`.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for authenticated in [true, false] {
        let limits = resp::Limits { max_bulk_len: 1 << 20, authenticated, ..resp::Limits::default() };
        let mut req = resp::Request::default();
        let mut pos = 0;
        while pos < data.len() {
            match resp::parse_request(&data[pos..], &limits, &mut req) {
                Ok(true) => {
                    assert!(req.consumed > 0 && pos + req.consumed <= data.len());
                    for i in 0..req.argc() {
                        let _ = req.arg(&data[pos..], i);
                    }
                    pos += req.consumed;
                }
                Ok(false) if req.consumed > 0 => pos += req.consumed,
                Ok(false) | Err(_) => break,
            }
        }
    }
    let mut pos = 0;
    while let Ok(Some((_, n))) = resp::parse_reply(&data[pos..]) {
        assert!(n > 0 && pos + n <= data.len());
        pos += n;
    }
    let _ = resp::split_args(data);
});
