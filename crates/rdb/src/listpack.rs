//! Listpacks (Redis 7's compact list of strings and integers): building one from entries and
//! reading one back. Layout: total bytes (u32 LE), entry count (u16 LE, 65535 when larger),
//! entries each followed by its own length ("backlen", readable backwards), and 0xFF.

use crate::Error;

pub struct Builder {
    buf: Vec<u8>,
    count: usize,
}

impl Default for Builder {
    fn default() -> Self {
        Self::new()
    }
}

impl Builder {
    pub fn new() -> Self {
        Builder { buf: vec![0; 6], count: 0 }
    }
    pub fn count(&self) -> usize {
        self.count
    }
    /// Bytes so far (header included).
    pub fn len(&self) -> usize {
        self.buf.len()
    }
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Appends a string, stored as an integer when it is one (as lpAppend does).
    pub fn push(&mut self, s: &[u8]) {
        match crate::strict_i64(s) {
            Some(v) => self.push_int(v),
            None => self.push_str(s),
        }
    }

    fn push_int(&mut self, v: i64) {
        let start = self.buf.len();
        let b = &mut self.buf;
        if (0..=127).contains(&v) {
            b.push(v as u8);
        } else if (-4096..=4095).contains(&v) {
            let u = (v as u16) & 0x1fff;
            b.push(0xc0 | (u >> 8) as u8);
            b.push(u as u8);
        } else if (-32768..=32767).contains(&v) {
            b.push(0xf1);
            b.extend_from_slice(&(v as i16).to_le_bytes());
        } else if (-8388608..=8388607).contains(&v) {
            b.push(0xf2);
            b.extend_from_slice(&(v as i32).to_le_bytes()[..3]);
        } else if (i32::MIN as i64..=i32::MAX as i64).contains(&v) {
            b.push(0xf3);
            b.extend_from_slice(&(v as i32).to_le_bytes());
        } else {
            b.push(0xf4);
            b.extend_from_slice(&v.to_le_bytes());
        }
        self.end_entry(start);
    }

    fn push_str(&mut self, s: &[u8]) {
        let start = self.buf.len();
        let b = &mut self.buf;
        let n = s.len();
        if n < 64 {
            b.push(0x80 | n as u8);
        } else if n < 4096 {
            b.push(0xe0 | (n >> 8) as u8);
            b.push(n as u8);
        } else {
            b.push(0xf0);
            b.extend_from_slice(&(n as u32).to_le_bytes());
        }
        b.extend_from_slice(s);
        self.end_entry(start);
    }

    fn end_entry(&mut self, start: usize) {
        let l = (self.buf.len() - start) as u64;
        let b = &mut self.buf;
        if l <= 127 {
            b.push(l as u8);
        } else if l < 16383 {
            b.extend_from_slice(&[(l >> 7) as u8, (l & 127) as u8 | 128]);
        } else if l < 2097151 {
            b.extend_from_slice(&[(l >> 14) as u8, ((l >> 7) & 127) as u8 | 128, (l & 127) as u8 | 128]);
        } else if l < 268435455 {
            b.extend_from_slice(&[(l >> 21) as u8, ((l >> 14) & 127) as u8 | 128, ((l >> 7) & 127) as u8 | 128, (l & 127) as u8 | 128]);
        } else {
            b.extend_from_slice(&[
                (l >> 28) as u8,
                ((l >> 21) & 127) as u8 | 128,
                ((l >> 14) & 127) as u8 | 128,
                ((l >> 7) & 127) as u8 | 128,
                (l & 127) as u8 | 128,
            ]);
        }
        self.count += 1;
    }

    /// Appends every entry of another builder.
    pub fn append(&mut self, other: Builder) {
        self.buf.extend_from_slice(&other.buf[6..]);
        self.count += other.count;
    }

    pub fn finish(mut self) -> Vec<u8> {
        self.buf.push(0xff);
        let total = self.buf.len() as u32;
        self.buf[..4].copy_from_slice(&total.to_le_bytes());
        let n = self.count.min(65535) as u16;
        self.buf[4..6].copy_from_slice(&n.to_le_bytes());
        self.buf
    }
}

/// Size of the backlen that follows an entry of `l` bytes.
fn backlen_size(l: usize) -> usize {
    match l {
        0..=127 => 1,
        128..=16382 => 2,
        16383..=2097150 => 3,
        2097151..=268435454 => 4,
        _ => 5,
    }
}

/// Every entry of a listpack, integers written out in decimal.
pub fn decode(lp: &[u8]) -> Result<Vec<Vec<u8>>, Error> {
    let bad = |offset: usize, msg: &str| Error { offset, msg: format!("listpack: {msg}") };
    if lp.len() < 7 {
        return Err(bad(0, "shorter than its header"));
    }
    let total = u32::from_le_bytes(lp[..4].try_into().expect("4 bytes")) as usize;
    if total != lp.len() {
        return Err(bad(0, "total length does not match"));
    }
    let declared = u16::from_le_bytes([lp[4], lp[5]]) as usize;
    let mut out = Vec::with_capacity(declared.min(1 << 16));
    let mut p = 6;
    let need = |p: usize, n: usize| -> Result<(), Error> {
        if p + n > lp.len() {
            Err(bad(p, "entry runs past the end"))
        } else {
            Ok(())
        }
    };
    let mut ibuf = [0u8; 20];
    loop {
        need(p, 1)?;
        let e = lp[p];
        if e == 0xff {
            break;
        }
        let (header, len, int): (usize, usize, Option<i64>) = if e & 0x80 == 0 {
            (1, 0, Some((e & 0x7f) as i64))
        } else if e & 0xc0 == 0x80 {
            (1, (e & 0x3f) as usize, None)
        } else if e & 0xe0 == 0xc0 {
            need(p, 2)?;
            let u = (((e & 0x1f) as u16) << 8) | lp[p + 1] as u16;
            // 13-bit two's complement.
            let v = if u >= 1 << 12 { u as i64 - (1 << 13) } else { u as i64 };
            (2, 0, Some(v))
        } else if e & 0xf0 == 0xe0 {
            need(p, 2)?;
            (2, (((e & 0x0f) as usize) << 8) | lp[p + 1] as usize, None)
        } else {
            match e {
                0xf0 => {
                    need(p, 5)?;
                    (5, u32::from_le_bytes(lp[p + 1..p + 5].try_into().expect("4 bytes")) as usize, None)
                }
                0xf1 => {
                    need(p, 3)?;
                    (3, 0, Some(i16::from_le_bytes([lp[p + 1], lp[p + 2]]) as i64))
                }
                0xf2 => {
                    need(p, 4)?;
                    let v = i32::from_le_bytes([0, lp[p + 1], lp[p + 2], lp[p + 3]]) >> 8;
                    (4, 0, Some(v as i64))
                }
                0xf3 => {
                    need(p, 5)?;
                    (5, 0, Some(i32::from_le_bytes(lp[p + 1..p + 5].try_into().expect("4 bytes")) as i64))
                }
                0xf4 => {
                    need(p, 9)?;
                    (9, 0, Some(i64::from_le_bytes(lp[p + 1..p + 9].try_into().expect("8 bytes"))))
                }
                _ => return Err(bad(p, "unknown entry encoding")),
            }
        };
        need(p, header + len)?;
        match int {
            Some(v) => out.push(crate::format_i64(v, &mut ibuf).to_vec()),
            None => out.push(lp[p + header..p + header + len].to_vec()),
        }
        let entry = header + len;
        p += entry + backlen_size(entry);
    }
    if p + 1 != lp.len() {
        return Err(bad(p, "data after the end marker"));
    }
    if declared != 65535 && declared != out.len() {
        return Err(bad(4, "entry count does not match"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_bytes() {
        // The listpack in redis-server 7.0.15's DUMP of RPUSH l a 1 -5 1000.
        let mut b = Builder::new();
        for e in ["a", "1", "-5", "1000"] {
            b.push(e.as_bytes());
        }
        let lp = b.finish();
        assert_eq!(lp, [18, 0, 0, 0, 4, 0, 0x81, b'a', 2, 1, 1, 0xdf, 0xfb, 2, 0xc3, 0xe8, 2, 0xff]);
        assert_eq!(decode(&lp).unwrap(), vec![b"a".to_vec(), b"1".to_vec(), b"-5".to_vec(), b"1000".to_vec()]);
    }

    proptest! {
        #[test]
        fn round_trip(items in proptest::collection::vec(prop_oneof![
            any::<i64>().prop_map(|v| v.to_string().into_bytes()),
            (-5000i64..5000).prop_map(|v| v.to_string().into_bytes()),
            proptest::collection::vec(any::<u8>(), 0..300),
            proptest::collection::vec(any::<u8>(), 4000..5000),
        ], 0..40)) {
            let mut b = Builder::new();
            for i in &items {
                b.push(i);
            }
            prop_assert_eq!(decode(&b.finish()).unwrap(), items);
        }
    }
}
