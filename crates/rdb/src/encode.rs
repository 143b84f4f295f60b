//! Writing RDB's building blocks into a byte buffer: lengths, strings (integer and LZF forms),
//! doubles, and whole values in the encodings Redis 7.0 writes.

use crate::{intset, listpack, opcodes, types, QUICKLIST_NODE_PACKED};

/// RDB's length encoding: 6 bits, 14 bits (big endian), or a marker and 32/64 bits big endian.
pub fn put_len(out: &mut Vec<u8>, n: u64) {
    if n < 1 << 6 {
        out.push(n as u8);
    } else if n < 1 << 14 {
        out.push(0x40 | (n >> 8) as u8);
        out.push(n as u8);
    } else if n <= u32::MAX as u64 {
        out.push(0x80);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    } else {
        out.push(0x81);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

/// A string as rdbSaveRawString writes it: short integers in the integer forms, strings over 20
/// bytes LZF-compressed when `compress` is on and it saves at least 4 bytes, else raw.
pub fn put_string(out: &mut Vec<u8>, s: &[u8], compress: bool) {
    if s.len() <= 11 {
        if let Some(v) = crate::strict_i64(s) {
            if let Ok(v) = i8::try_from(v) {
                out.push(0xc0);
                out.push(v as u8);
                return;
            }
            if let Ok(v) = i16::try_from(v) {
                out.push(0xc1);
                out.extend_from_slice(&v.to_le_bytes());
                return;
            }
            if let Ok(v) = i32::try_from(v) {
                out.push(0xc2);
                out.extend_from_slice(&v.to_le_bytes());
                return;
            }
        }
    }
    if compress && s.len() > 20 {
        if let Some(c) = crate::lzf::compress(s, s.len() - 4) {
            out.push(0xc3);
            put_len(out, c.len() as u64);
            put_len(out, s.len() as u64);
            out.extend_from_slice(&c);
            return;
        }
    }
    put_len(out, s.len() as u64);
    out.extend_from_slice(s);
}

/// A double in binary form (ZSET_2 scores): 8 bytes little endian.
pub fn put_binary_double(out: &mut Vec<u8>, d: f64) {
    out.extend_from_slice(&d.to_le_bytes());
}

/// The expiry opcode and time (Unix ms).
pub fn put_expire_ms(out: &mut Vec<u8>, at: i64) {
    out.push(opcodes::EXPIRETIME_MS);
    out.extend_from_slice(&at.to_le_bytes());
}

/// The start of a value: its type byte, then its key when it is a keyspace entry (DUMP payloads
/// have none).
fn head(out: &mut Vec<u8>, t: u8, key: Option<&[u8]>) {
    out.push(t);
    if let Some(k) = key {
        put_string(out, k, false);
    }
}

/// A string value.
pub fn put_string_value(out: &mut Vec<u8>, key: Option<&[u8]>, s: &[u8], compress: bool) {
    head(out, types::STRING, key);
    put_string(out, s, compress);
}

/// A list as Redis 7.0 saves it: a quicklist of listpack nodes, each at most `node_bytes` bytes
/// (Redis's list-max-listpack-size -2 is 8 KiB); an element too large for a node goes alone in
/// a PLAIN node, as Redis stores it.
pub fn put_list_value<'a>(
    out: &mut Vec<u8>,
    key: Option<&[u8]>,
    items: impl IntoIterator<Item = &'a [u8]>,
    node_bytes: usize,
    compress: bool,
) {
    head(out, types::LIST_QUICKLIST_2, key);
    let mut nodes: Vec<(u64, Vec<u8>)> = Vec::new();
    let mut lp = listpack::Builder::new();
    for it in items {
        if it.len() >= node_bytes {
            if lp.count() > 0 {
                nodes.push((QUICKLIST_NODE_PACKED, std::mem::take(&mut lp).finish()));
            }
            nodes.push((crate::QUICKLIST_NODE_PLAIN, it.to_vec()));
            continue;
        }
        if lp.count() > 0 && lp.len() + it.len() + 11 > node_bytes {
            nodes.push((QUICKLIST_NODE_PACKED, std::mem::take(&mut lp).finish()));
        }
        lp.push(it);
    }
    if lp.count() > 0 {
        nodes.push((QUICKLIST_NODE_PACKED, lp.finish()));
    }
    put_len(out, nodes.len() as u64);
    for (container, bytes) in nodes {
        put_len(out, container);
        put_string(out, &bytes, compress);
    }
}

/// A set: an intset when every member is an integer and `intset` allows it, else a plain set.
pub fn put_set_value(out: &mut Vec<u8>, key: Option<&[u8]>, members: &[&[u8]], use_intset: bool, compress: bool) {
    if use_intset {
        let ints: Option<Vec<i64>> = members.iter().map(|m| crate::strict_i64(m)).collect();
        if let Some(ints) = ints {
            head(out, types::SET_INTSET, key);
            put_string(out, &intset::encode(ints), compress);
            return;
        }
    }
    head(out, types::SET, key);
    put_len(out, members.len() as u64);
    for m in members {
        put_string(out, m, compress);
    }
}

/// A hash: a listpack of field, value, ... when `packed`, else field/value pairs.
pub fn put_hash_value(out: &mut Vec<u8>, key: Option<&[u8]>, pairs: &[(&[u8], &[u8])], packed: bool, compress: bool) {
    if packed {
        head(out, types::HASH_LISTPACK, key);
        let mut lp = listpack::Builder::new();
        for (f, v) in pairs {
            lp.push(f);
            lp.push(v);
        }
        put_string(out, &lp.finish(), compress);
        return;
    }
    head(out, types::HASH, key);
    put_len(out, pairs.len() as u64);
    for (f, v) in pairs {
        put_string(out, f, compress);
        put_string(out, v, compress);
    }
}

/// A sorted set, entries in score order: a listpack of member, score, ... when `packed`, else
/// ZSET_2 (member, binary score), written from the highest score down as Redis does.
pub fn put_zset_value(out: &mut Vec<u8>, key: Option<&[u8]>, entries: &[(&[u8], f64)], packed: bool, compress: bool) {
    if packed {
        head(out, types::ZSET_LISTPACK, key);
        let mut lp = listpack::Builder::new();
        for (m, s) in entries {
            lp.push(m);
            lp.push(format_score(*s).as_bytes());
        }
        put_string(out, &lp.finish(), compress);
        return;
    }
    head(out, types::ZSET_2, key);
    put_len(out, entries.len() as u64);
    for (m, s) in entries.iter().rev() {
        put_string(out, m, compress);
        put_binary_double(out, *s);
    }
}

/// A score as a listpack holds it: Redis's d2string (integral values as integers, else %.17g).
pub fn format_score(s: f64) -> String {
    if s.is_nan() {
        return "nan".into();
    }
    if s.is_infinite() {
        return if s > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if s == 0.0 {
        return if s.is_sign_negative() { "-0".into() } else { "0".into() };
    }
    if s > -4503599627370495.0 && s < 4503599627370496.0 && s.fract() == 0.0 {
        return format!("{}", s as i64);
    }
    let mut buf = [0u8; 64];
    // SAFETY: 64 bytes hold any %.17g output and snprintf NUL-terminates.
    let n = unsafe { libc::snprintf(buf.as_mut_ptr() as *mut libc::c_char, buf.len(), c"%.17g".as_ptr(), s) };
    String::from_utf8_lossy(&buf[..n.clamp(0, 63) as usize]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths() {
        let mut v = Vec::new();
        put_len(&mut v, 10);
        put_len(&mut v, 300);
        put_len(&mut v, 70000);
        assert_eq!(v, [10, 0x41, 0x2c, 0x80, 0, 1, 0x11, 0x70]);
    }

    #[test]
    fn strings_take_integer_forms() {
        let mut v = Vec::new();
        put_string(&mut v, b"12", false);
        put_string(&mut v, b"-300", false);
        put_string(&mut v, b"100000", false);
        put_string(&mut v, b"012", false);
        assert_eq!(v, [0xc0, 12, 0xc1, 0xd4, 0xfe, 0xc2, 0xa0, 0x86, 1, 0, 3, b'0', b'1', b'2']);
    }

    #[test]
    fn scores_print_as_redis() {
        assert_eq!(format_score(1.0), "1");
        assert_eq!(format_score(-2.5), "-2.5");
        assert_eq!(format_score(0.1), "0.10000000000000001");
        assert_eq!(format_score(f64::INFINITY), "inf");
        assert_eq!(format_score(1e20), "1e+20");
        assert_eq!(format_score(-0.0), "-0");
        assert_eq!(format_score(1.5e-7), "1.4999999999999999e-07");
    }
}
