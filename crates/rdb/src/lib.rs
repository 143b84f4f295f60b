//! Redis's RDB format, version 10 (Redis 7.0), independent of the server: the value model
//! ([`Value`]), the byte-level encodings ([`encode`]: lengths, strings with integer and LZF forms,
//! listpack, intset; [`decode`]: those plus the older ziplist, zipmap and quicklist forms that
//! Redis still loads), the file layout ([`file`]) and the DUMP payload ([`dump`]).
//!
//! Nothing here knows about the server's keyspace: the server turns its values into these calls
//! when saving, and [`Value`]s into its own types when loading.

pub mod decode;
pub mod dump;
pub mod encode;
pub mod file;
pub mod intset;
pub mod listpack;
pub mod lzf;
pub mod stream;
pub mod ziplist;

/// The RDB version written (Redis 7.0); files up to this version load.
pub const RDB_VERSION: u16 = 10;

/// Object types (the byte before a key).
pub mod types {
    pub const STRING: u8 = 0;
    pub const LIST: u8 = 1;
    pub const SET: u8 = 2;
    pub const ZSET: u8 = 3;
    pub const HASH: u8 = 4;
    pub const ZSET_2: u8 = 5;
    pub const MODULE: u8 = 6;
    pub const MODULE_2: u8 = 7;
    pub const HASH_ZIPMAP: u8 = 9;
    pub const LIST_ZIPLIST: u8 = 10;
    pub const SET_INTSET: u8 = 11;
    pub const ZSET_ZIPLIST: u8 = 12;
    pub const HASH_ZIPLIST: u8 = 13;
    pub const LIST_QUICKLIST: u8 = 14;
    pub const STREAM_LISTPACKS: u8 = 15;
    pub const HASH_LISTPACK: u8 = 16;
    pub const ZSET_LISTPACK: u8 = 17;
    pub const LIST_QUICKLIST_2: u8 = 18;
    pub const STREAM_LISTPACKS_2: u8 = 19;
    pub const SET_LISTPACK: u8 = 20;
    pub const STREAM_LISTPACKS_3: u8 = 21;
}

/// Opcodes (bytes that are not object types).
pub mod opcodes {
    pub const FUNCTION2: u8 = 245;
    pub const FUNCTION_PRE_GA: u8 = 246;
    pub const MODULE_AUX: u8 = 247;
    pub const IDLE: u8 = 248;
    pub const FREQ: u8 = 249;
    pub const AUX: u8 = 250;
    pub const RESIZEDB: u8 = 251;
    pub const EXPIRETIME_MS: u8 = 252;
    pub const EXPIRETIME: u8 = 253;
    pub const SELECTDB: u8 = 254;
    pub const EOF: u8 = 255;
}

/// Quicklist node containers (RDB_TYPE_LIST_QUICKLIST_2).
pub const QUICKLIST_NODE_PLAIN: u64 = 1;
pub const QUICKLIST_NODE_PACKED: u64 = 2;

/// A value as RDB holds it, whatever its encoding on disk. Collections keep the order they were
/// stored in (a sorted set's entries in any order; the loader sorts them).
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Str(Vec<u8>),
    List(Vec<Vec<u8>>),
    Set(Vec<Vec<u8>>),
    Hash(Vec<(Vec<u8>, Vec<u8>)>),
    ZSet(Vec<(Vec<u8>, f64)>),
    Stream(Box<stream::Stream>),
}

/// Field/value pairs of a hash.
pub type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

/// Redis's CRC64 (Jones polynomial, reflected, as `crc64.c`), used for the file trailer and
/// DUMP payloads.
pub const CRC64: crc::Crc<u64> = crc::Crc::<u64>::new(&crc::CRC_64_REDIS);

/// A decoding failure: what went wrong and at which byte of the input.
#[derive(Clone, Debug, PartialEq)]
pub struct Error {
    pub offset: usize,
    pub msg: String,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (at offset {})", self.msg, self.offset)
    }
}

impl std::error::Error for Error {}

/// Parses a string as Redis's string2ll does for compact encodings: an exact decimal i64 with no
/// sign on zero, no leading zeros and no spaces.
pub fn strict_i64(s: &[u8]) -> Option<i64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    let v: i64 = std::str::from_utf8(s).ok()?.parse().ok()?;
    let mut buf = [0u8; 20];
    (format_i64(v, &mut buf) == s).then_some(v)
}

/// Writes an i64 in decimal into `buf`, returning the digits.
pub fn format_i64(v: i64, buf: &mut [u8; 20]) -> &[u8] {
    let mut n = v.unsigned_abs();
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if v < 0 {
        i -= 1;
        buf[i] = b'-';
    }
    &buf[i..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc64_matches_redis_test_vector() {
        assert_eq!(CRC64.checksum(b"123456789"), 0xe9c6d914c4b8d9ca);
    }

    proptest::proptest! {
        /// The decoders on arbitrary input (what `fuzz/` does at length): an error, never a
        /// panic or an allocation the input cannot back.
        #[test]
        fn random_bytes_never_panic(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400), t in 0u8..=255) {
            let mut file = b"REDIS0010".to_vec();
            file.extend_from_slice(&data);
            if let Ok(mut r) = file::Reader::new(&file) {
                for _ in 0..1000 {
                    match r.next_item() {
                        Ok(file::Item::End) | Err(_) => break,
                        Ok(_) => {}
                    }
                }
            }
            let mut c = decode::Cursor::new(&data);
            let _ = c.value(t);
            let _ = dump::value(&data);
            let _ = dump::functions(&data);
            let _ = listpack::decode(&data);
            let _ = ziplist::decode(&data);
            let _ = ziplist::decode_zipmap(&data);
            let _ = intset::decode(&data);
        }
    }

    #[test]
    fn strict_integers() {
        for ok in ["0", "-1", "123", "-9223372036854775808", "9223372036854775807"] {
            assert!(strict_i64(ok.as_bytes()).is_some(), "{ok}");
        }
        for bad in ["", "-0", "01", "+1", " 1", "1 ", "9223372036854775808", "1.0", "abc"] {
            assert!(strict_i64(bad.as_bytes()).is_none(), "{bad}");
        }
    }
}
