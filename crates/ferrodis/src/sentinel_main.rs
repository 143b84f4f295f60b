//! `ferrodis-sentinel sentinel.conf`: the same program, which starts in sentinel mode because
//! its name ends in "-sentinel" (as redis-sentinel is redis-server under another name).
include!("main.rs");
