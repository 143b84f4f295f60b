//! Intsets (sets of integers): element width (2, 4 or 8 bytes, u32 LE), count (u32 LE), then the
//! sorted elements, little endian.

use crate::Error;

/// The intset Redis would hold for these integers (sorted, deduplicated, narrowest width).
pub fn encode(mut ints: Vec<i64>) -> Vec<u8> {
    ints.sort_unstable();
    ints.dedup();
    let width: usize = if ints.iter().all(|&v| i16::try_from(v).is_ok()) {
        2
    } else if ints.iter().all(|&v| i32::try_from(v).is_ok()) {
        4
    } else {
        8
    };
    let mut out = Vec::with_capacity(8 + width * ints.len());
    out.extend_from_slice(&(width as u32).to_le_bytes());
    out.extend_from_slice(&(ints.len() as u32).to_le_bytes());
    for v in ints {
        out.extend_from_slice(&v.to_le_bytes()[..width]);
    }
    out
}

/// The members of an intset, in decimal.
pub fn decode(b: &[u8]) -> Result<Vec<Vec<u8>>, Error> {
    let bad = |msg: &str| Error { offset: 0, msg: format!("intset: {msg}") };
    if b.len() < 8 {
        return Err(bad("shorter than its header"));
    }
    let width = u32::from_le_bytes(b[..4].try_into().expect("4 bytes")) as usize;
    let n = u32::from_le_bytes(b[4..8].try_into().expect("4 bytes")) as usize;
    if !matches!(width, 2 | 4 | 8) {
        return Err(bad("bad element width"));
    }
    if n.checked_mul(width).and_then(|x| x.checked_add(8)) != Some(b.len()) {
        return Err(bad("length does not match its count"));
    }
    let mut buf = [0u8; 20];
    Ok(b[8..]
        .chunks_exact(width)
        .map(|c| {
            let v = match width {
                2 => i16::from_le_bytes([c[0], c[1]]) as i64,
                4 => i32::from_le_bytes(c.try_into().expect("4 bytes")) as i64,
                _ => i64::from_le_bytes(c.try_into().expect("8 bytes")),
            };
            crate::format_i64(v, &mut buf).to_vec()
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widths_and_round_trip() {
        assert_eq!(encode(vec![3, 1, 2]), [2, 0, 0, 0, 3, 0, 0, 0, 1, 0, 2, 0, 3, 0]);
        let big = encode(vec![1, 1 << 40]);
        assert_eq!(big[0], 8);
        assert_eq!(decode(&big).unwrap(), vec![b"1".to_vec(), b"1099511627776".to_vec()]);
        assert!(decode(&big[..big.len() - 1]).is_err());
    }
}
