//! HyperLogLog in Redis's own byte format (hyperloglog.c), so a `GET` of an HLL key, a DUMP or an
//! RDB of it, is the same bytes Redis would hold and estimates are the same numbers.
//!
//! Layout: a 16-byte header ("HYLL", encoding 0 dense / 1 sparse, 3 unused bytes, the cached
//! cardinality as 8 little-endian bytes whose top bit marks it stale), then the registers:
//! dense: 16384 six-bit registers packed LSB first (12288 bytes); sparse: run-length opcodes
//! ZERO `00xxxxxx` (1..64 zero registers), XZERO `01xxxxxx yyyyyyyy` (1..16384 zero registers),
//! VAL `1vvvvvxx` (1..4 registers of value 1..32).

pub const P: u32 = 14;
pub const REGISTERS: usize = 1 << P;
const Q: u32 = 64 - P;
pub const HDR: usize = 16;
pub const DENSE_SIZE: usize = HDR + (REGISTERS * 6).div_ceil(8);
const DENSE: u8 = 0;
const SPARSE: u8 = 1;
const VAL_MAX_VALUE: u8 = 32;
const VAL_MAX_LEN: usize = 4;
const ZERO_MAX_LEN: usize = 64;
const XZERO_MAX_LEN: usize = 16384;
const ALPHA_INF: f64 = 0.721_347_520_444_481_7;

/// Redis's MurmurHash64A with seed 0xadc83b19 (little-endian reads).
pub fn murmur64a(key: &[u8]) -> u64 {
    const M: u64 = 0xc6a4a7935bd1e995;
    const R: u32 = 47;
    let seed: u64 = 0xadc83b19;
    let mut h: u64 = seed ^ (key.len() as u64).wrapping_mul(M);
    let mut chunks = key.chunks_exact(8);
    for c in &mut chunks {
        let mut k = u64::from_le_bytes(c.try_into().expect("8 bytes"));
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h ^= k;
        h = h.wrapping_mul(M);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        for (i, b) in rest.iter().enumerate().rev() {
            h ^= (*b as u64) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> R;
    h = h.wrapping_mul(M);
    h ^= h >> R;
    h
}

/// The register an element falls in and the length of its run of zeros plus one.
pub fn pattern(ele: &[u8]) -> (usize, u8) {
    let h = murmur64a(ele);
    let index = (h & (REGISTERS as u64 - 1)) as usize;
    let rest = (h >> P) | (1u64 << Q);
    (index, rest.trailing_zeros() as u8 + 1)
}

/// A new, empty sparse HLL (Redis's createHLLObject): one XZERO covering every register.
pub fn new_sparse() -> Vec<u8> {
    let mut v = b"HYLL".to_vec();
    v.extend_from_slice(&[SPARSE, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    let l = XZERO_MAX_LEN - 1;
    v.push(0x40 | (l >> 8) as u8);
    v.push((l & 0xff) as u8);
    v
}

/// True when the bytes are an HLL Redis would accept (isHLLObjectOrReply).
pub fn is_valid(b: &[u8]) -> bool {
    b.len() >= HDR && &b[..4] == b"HYLL" && b[4] <= SPARSE && (b[4] != DENSE || b.len() == DENSE_SIZE)
}

pub fn invalidate_cache(b: &mut [u8]) {
    b[15] |= 0x80;
}

/// The cached cardinality, when valid.
pub fn cached(b: &[u8]) -> Option<u64> {
    (b[15] & 0x80 == 0).then(|| u64::from_le_bytes(b[8..16].try_into().expect("8 bytes")))
}

pub fn set_cache(b: &mut [u8], card: u64) {
    b[8..16].copy_from_slice(&card.to_le_bytes());
}

fn dense_get(regs: &[u8], i: usize) -> u8 {
    let byte = i * 6 / 8;
    let fb = (i * 6) & 7;
    let b0 = regs[byte] as u16;
    let b1 = regs.get(byte + 1).copied().unwrap_or(0) as u16;
    (((b0 >> fb) | (b1 << (8 - fb))) & 63) as u8
}

fn dense_set(regs: &mut [u8], i: usize, val: u8) {
    let byte = i * 6 / 8;
    let fb = (i * 6) & 7;
    let v = val as u16;
    regs[byte] &= !((63u16 << fb) as u8);
    regs[byte] |= (v << fb) as u8;
    if byte + 1 < regs.len() {
        let fb8 = 8 - fb;
        regs[byte + 1] &= !((63u16 >> fb8) as u8);
        regs[byte + 1] |= (v >> fb8) as u8;
    }
}

enum Op {
    Zero(usize),
    XZero(usize),
    Val(u8, usize),
}

fn op_at(s: &[u8], p: usize) -> (Op, usize) {
    let b = s[p];
    if b & 0xc0 == 0 {
        (Op::Zero((b & 0x3f) as usize + 1), 1)
    } else if b & 0xc0 == 0x40 {
        (Op::XZero(((((b & 0x3f) as usize) << 8) | s.get(p + 1).copied().unwrap_or(0) as usize) + 1), 2)
    } else {
        (Op::Val(((b >> 2) & 0x1f) + 1, (b & 3) as usize + 1), 1)
    }
}

fn val_byte(val: u8, len: usize) -> u8 {
    0x80 | ((val - 1) << 2) | (len as u8 - 1)
}

fn put_zeros(out: &mut Vec<u8>, len: usize) {
    if len > ZERO_MAX_LEN {
        let l = len - 1;
        out.push(0x40 | (l >> 8) as u8);
        out.push((l & 0xff) as u8);
    } else {
        out.push((len - 1) as u8);
    }
}

/// Every register's value (None when a sparse HLL does not cover exactly 16384 registers).
pub fn registers(b: &[u8]) -> Option<Vec<u8>> {
    let mut regs = vec![0u8; REGISTERS];
    if b[4] == DENSE {
        for (i, r) in regs.iter_mut().enumerate() {
            *r = dense_get(&b[HDR..], i);
        }
        return Some(regs);
    }
    let s = &b[HDR..];
    let (mut p, mut idx) = (0, 0usize);
    while p < s.len() {
        let (op, oplen) = op_at(s, p);
        match op {
            Op::Zero(n) | Op::XZero(n) => idx += n,
            Op::Val(v, n) => {
                if idx + n > REGISTERS {
                    return None;
                }
                regs[idx..idx + n].fill(v);
                idx += n;
            }
        }
        p += oplen;
    }
    (idx == REGISTERS).then_some(regs)
}

/// Converts a sparse HLL to dense in place (header kept, encoding changed). False if corrupt.
pub fn to_dense(b: &mut Vec<u8>) -> bool {
    if b[4] == DENSE {
        return true;
    }
    let Some(regs) = registers(b) else { return false };
    let mut d = vec![0u8; DENSE_SIZE];
    d[..HDR].copy_from_slice(&b[..HDR]);
    d[4] = DENSE;
    for (i, r) in regs.iter().enumerate() {
        if *r != 0 {
            dense_set(&mut d[HDR..], i, *r);
        }
    }
    *b = d;
    true
}

/// Raises register `index` to `count`; Some(true) when it changed, None when corrupt.
/// `sparse_max` is `hll-sparse-max-bytes`: a sparse HLL growing past it becomes dense.
pub fn set(b: &mut Vec<u8>, index: usize, count: u8, sparse_max: usize) -> Option<bool> {
    if b[4] == DENSE {
        let regs = &mut b[HDR..];
        if count > dense_get(regs, index) {
            dense_set(regs, index, count);
            return Some(true);
        }
        return Some(false);
    }
    if count > VAL_MAX_VALUE {
        return promote(b, index, count);
    }
    // Step 1: find the opcode covering the register.
    let (mut p, mut first, mut prev): (usize, usize, Option<usize>) = (HDR, 0, None);
    let (mut span, mut oplen);
    loop {
        if p >= b.len() {
            return None;
        }
        let (op, l) = op_at(b, p);
        oplen = l;
        span = match op {
            Op::Zero(n) | Op::XZero(n) | Op::Val(_, n) => n,
        };
        if index < first + span {
            break;
        }
        prev = Some(p);
        p += oplen;
        first += span;
    }
    let (op, _) = op_at(b, p);
    // Step 2: the trivial cases are updated in place.
    let mut done = false;
    match op {
        Op::Val(old, _) if old >= count => return Some(false),
        Op::Val(_, 1) | Op::Zero(1) => {
            b[p] = val_byte(count, 1);
            done = true;
        }
        _ => {}
    }
    if !done {
        // Split the opcode into up to three: before, the register, after.
        let last = first + span - 1;
        let mut seq: Vec<u8> = Vec::with_capacity(5);
        match op {
            Op::Zero(_) | Op::XZero(_) => {
                if index != first {
                    put_zeros(&mut seq, index - first);
                }
                seq.push(val_byte(count, 1));
                if index != last {
                    put_zeros(&mut seq, last - index);
                }
            }
            Op::Val(cur, _) => {
                if index != first {
                    seq.push(val_byte(cur, index - first));
                }
                seq.push(val_byte(count, 1));
                if index != last {
                    seq.push(val_byte(cur, last - index));
                }
            }
        }
        if seq.len() > oplen && b.len() + seq.len() - oplen > sparse_max {
            return promote(b, index, count);
        }
        b.splice(p..p + oplen, seq);
    }
    // Step 4: merge adjacent VAL opcodes of equal value, scanning up to 5 opcodes from prev.
    let mut p = prev.unwrap_or(HDR);
    let mut scan = 5;
    while p < b.len() && scan > 0 {
        scan -= 1;
        let (op, l) = op_at(b, p);
        match op {
            Op::Zero(_) | Op::XZero(_) => {
                p += l;
                continue;
            }
            Op::Val(v1, l1) => {
                if p + 1 < b.len() {
                    if let (Op::Val(v2, l2), _) = op_at(b, p + 1) {
                        if v1 == v2 && l1 + l2 <= VAL_MAX_LEN {
                            b[p + 1] = val_byte(v1, l1 + l2);
                            b.remove(p);
                            continue;
                        }
                    }
                }
            }
        }
        p += 1;
    }
    invalidate_cache(b);
    Some(true)
}

fn promote(b: &mut Vec<u8>, index: usize, count: u8) -> Option<bool> {
    if !to_dense(b) {
        return None;
    }
    let regs = &mut b[HDR..];
    if count > dense_get(regs, index) {
        dense_set(regs, index, count);
    }
    Some(true)
}

/// Adds an element; Some(true) when a register changed.
pub fn add(b: &mut Vec<u8>, ele: &[u8], sparse_max: usize) -> Option<bool> {
    let (index, count) = pattern(ele);
    set(b, index, count, sparse_max)
}

fn sigma(mut x: f64) -> f64 {
    if x == 1.0 {
        return f64::INFINITY;
    }
    let (mut y, mut z) = (1.0, x);
    loop {
        x *= x;
        let zp = z;
        z += x * y;
        y += y;
        if zp == z {
            return z;
        }
    }
}

fn tau(mut x: f64) -> f64 {
    if x == 0.0 || x == 1.0 {
        return 0.0;
    }
    let (mut y, mut z) = (1.0, 1.0 - x);
    loop {
        x = x.sqrt();
        let zp = z;
        y *= 0.5;
        z -= (1.0 - x).powi(2) * y;
        if zp == z {
            return z / 3.0;
        }
    }
}

/// PFSELFTEST (as Redis's): the dense register packing reads back every value written, and a
/// sparse and a dense HLL fed the same elements agree and stay within the estimator's error at
/// every power of ten up to a million. Err is the failure, as Redis's TESTFAILED text.
pub fn selftest() -> Result<(), String> {
    // 1. Dense registers: random values in every register, read back.
    let mut regs = vec![0u8; DENSE_SIZE - HDR];
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed & 63) as u8
    };
    for _ in 0..100 {
        let want: Vec<u8> = (0..REGISTERS).map(|_| next()).collect();
        for (i, &v) in want.iter().enumerate() {
            dense_set(&mut regs, i, v);
        }
        if let Some(i) = (0..REGISTERS).find(|&i| dense_get(&regs, i) != want[i]) {
            return Err(format!("TESTFAILED Register error at register {i}"));
        }
    }
    // 2. Sparse against dense, and against the true cardinality.
    let mut sparse = new_sparse();
    let mut dense = new_sparse();
    to_dense(&mut dense);
    let relerr = 1.04 / (REGISTERS as f64).sqrt();
    let mut checkpoint = 1u64;
    for j in 1..=1_000_000u64 {
        let ele = j.to_le_bytes();
        // The sparse one turns dense past Redis's default hll-sparse-max-bytes, as it would.
        let (a, b) = (add(&mut sparse, &ele, 3000), add(&mut dense, &ele, 3000));
        if a.is_none() || b.is_none() {
            return Err("TESTFAILED corrupted HLL while adding".into());
        }
        if j != checkpoint {
            continue;
        }
        let (Some(rs), Some(rd)) = (registers(&sparse), registers(&dense)) else {
            return Err("TESTFAILED corrupted HLL registers".into());
        };
        let (cs, cd) = (count_registers(&rs), count_registers(&rd));
        if cs != cd {
            return Err(format!("TESTFAILED dense/sparse disagree: {cd} != {cs}"));
        }
        // At 10 a collision is statistically likely from time to time (Redis allows 1).
        let maxerr = if j == 10 { 1.0 } else { (relerr * 6.0 * j as f64).ceil() };
        let abserr = (j as f64 - cd as f64).abs();
        if abserr > maxerr {
            return Err(format!("TESTFAILED Too big error. card:{j} abserr:{abserr}"));
        }
        checkpoint *= 10;
    }
    Ok(())
}

/// The estimate from register values (Ertl's improved estimator, as Redis computes it).
pub fn count_registers(regs: &[u8]) -> u64 {
    let mut histo = [0i64; 64];
    for r in regs {
        histo[*r as usize & 63] += 1;
    }
    let m = REGISTERS as f64;
    let mut z = m * tau((m - histo[Q as usize + 1] as f64) / m);
    for j in (1..=Q as usize).rev() {
        z += histo[j] as f64;
        z *= 0.5;
    }
    z += m * sigma(histo[0] as f64 / m);
    (ALPHA_INF * m * m / z).round() as u64
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_self_test_passes() {
        assert_eq!(super::selftest(), Ok(()));
    }

    use super::*;

    #[test]
    fn sparse_and_dense_agree() {
        let mut s = new_sparse();
        let mut d = new_sparse();
        assert!(to_dense(&mut d));
        for i in 0..2000 {
            let e = format!("element:{i}");
            add(&mut s, e.as_bytes(), 1 << 20);
            add(&mut d, e.as_bytes(), 1 << 20);
        }
        assert_eq!(registers(&s), registers(&d));
        let c = count_registers(&registers(&s).unwrap());
        assert!((1900..2100).contains(&c), "{c}");
        // Past the sparse limit the HLL turns dense.
        let mut t = new_sparse();
        for i in 0..5000 {
            add(&mut t, format!("{i}").as_bytes(), 3000);
        }
        assert_eq!(t.len(), DENSE_SIZE);
        assert!(is_valid(&t) && is_valid(&new_sparse()));
    }

    #[test]
    fn murmur_is_redis() {
        // An empty HLL counts 0; one element counts 1.
        assert_eq!(count_registers(&registers(&new_sparse()).unwrap()), 0);
        let mut s = new_sparse();
        add(&mut s, b"a", 3000);
        assert_eq!(count_registers(&registers(&s).unwrap()), 1);
    }
}
