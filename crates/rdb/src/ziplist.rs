//! The encodings Redis 6 and older wrote, read only: ziplists (lists, small hashes and sorted
//! sets up to RDB 9) and zipmaps (small hashes before Redis 2.6).

use crate::Error;

/// Every entry of a ziplist, integers written out in decimal.
pub fn decode(z: &[u8]) -> Result<Vec<Vec<u8>>, Error> {
    let bad = |offset: usize, msg: &str| Error { offset, msg: format!("ziplist: {msg}") };
    if z.len() < 11 {
        return Err(bad(0, "shorter than its header"));
    }
    if u32::from_le_bytes(z[..4].try_into().expect("4 bytes")) as usize != z.len() {
        return Err(bad(0, "total length does not match"));
    }
    let mut p = 10;
    let mut out = Vec::new();
    let mut buf = [0u8; 20];
    let need = |p: usize, n: usize| if p + n > z.len() { Err(bad(p, "entry runs past the end")) } else { Ok(()) };
    loop {
        need(p, 1)?;
        if z[p] == 0xff {
            break;
        }
        // The previous entry's length: 1 byte, or 0xFE and 4 bytes.
        p += if z[p] == 0xfe { 5 } else { 1 };
        need(p, 1)?;
        let e = z[p];
        let int = |p: usize, n: usize| -> Result<i64, Error> {
            need(p + 1, n)?;
            let mut le = [0u8; 8];
            le[..n].copy_from_slice(&z[p + 1..p + 1 + n]);
            // Sign-extend from n bytes.
            let shift = 64 - 8 * n as u32;
            Ok((i64::from_le_bytes(le) << shift) >> shift)
        };
        let (header, len, v): (usize, usize, Option<i64>) = match e >> 6 {
            0 => (1, (e & 0x3f) as usize, None),
            1 => {
                need(p, 2)?;
                (2, (((e & 0x3f) as usize) << 8) | z[p + 1] as usize, None)
            }
            2 => {
                need(p, 5)?;
                (5, u32::from_be_bytes(z[p + 1..p + 5].try_into().expect("4 bytes")) as usize, None)
            }
            _ => match e {
                0xc0 => (3, 0, Some(int(p, 2)?)),
                0xd0 => (5, 0, Some(int(p, 4)?)),
                0xe0 => (9, 0, Some(int(p, 8)?)),
                0xf0 => (4, 0, Some(int(p, 3)?)),
                0xfe => (2, 0, Some(int(p, 1)?)),
                0xf1..=0xfd => (1, 0, Some((e & 0x0f) as i64 - 1)),
                _ => return Err(bad(p, "unknown entry encoding")),
            },
        };
        need(p, header + len)?;
        out.push(match v {
            Some(v) => crate::format_i64(v, &mut buf).to_vec(),
            None => z[p + header..p + header + len].to_vec(),
        });
        p += header + len;
    }
    Ok(out)
}

/// The field/value pairs of a zipmap.
pub fn decode_zipmap(z: &[u8]) -> Result<crate::Pairs, Error> {
    let bad = |offset: usize, msg: &str| Error { offset, msg: format!("zipmap: {msg}") };
    let mut p = 1;
    let mut out = Vec::new();
    let len_at = |p: &mut usize| -> Result<Option<usize>, Error> {
        let b = *z.get(*p).ok_or_else(|| bad(*p, "runs past the end"))?;
        *p += 1;
        match b {
            0xff => Ok(None),
            254 => {
                let s = z.get(*p..*p + 4).ok_or_else(|| bad(*p, "runs past the end"))?;
                *p += 4;
                Ok(Some(u32::from_le_bytes(s.try_into().expect("4 bytes")) as usize))
            }
            n => Ok(Some(n as usize)),
        }
    };
    while let Some(klen) = len_at(&mut p)? {
        let key = z.get(p..p + klen).ok_or_else(|| bad(p, "key runs past the end"))?.to_vec();
        p += klen;
        let Some(vlen) = len_at(&mut p)? else { return Err(bad(p, "key without a value")) };
        let free = *z.get(p).ok_or_else(|| bad(p, "runs past the end"))? as usize;
        p += 1;
        let val = z.get(p..p + vlen).ok_or_else(|| bad(p, "value runs past the end"))?.to_vec();
        p += vlen + free;
        out.push((key, val));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ziplist built by hand in the layout Redis 6 wrote: "a", 5, 300, -70000, a 70-byte string.
    #[test]
    fn decodes_every_entry_form() {
        let mut z = vec![0u8; 10];
        let mut prev = 0u8;
        let mut entry = |z: &mut Vec<u8>, bytes: &[u8]| {
            z.push(prev);
            z.extend_from_slice(bytes);
            prev = (bytes.len() + 1) as u8;
        };
        entry(&mut z, &[0x01, b'a']);
        entry(&mut z, &[0xf6]);
        entry(&mut z, &[0xc0, 0x2c, 0x01]);
        entry(&mut z, &[0xf0, 0x90, 0xee, 0xfe]);
        let mut long = vec![0x40, 70];
        long.extend_from_slice(&[b'x'; 70]);
        entry(&mut z, &long);
        z.push(0xff);
        let n = z.len() as u32;
        z[..4].copy_from_slice(&n.to_le_bytes());
        z[8..10].copy_from_slice(&5u16.to_le_bytes());
        let got = decode(&z).unwrap();
        assert_eq!(got[..4], [b"a".to_vec(), b"5".to_vec(), b"300".to_vec(), b"-70000".to_vec()]);
        assert_eq!(got[4], vec![b'x'; 70]);
    }
}
