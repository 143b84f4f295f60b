//! LZF compression following Redis's liblzf 3.6 (HLOG 16, VERY_FAST, output limited to the input
//! length minus 4), with a per-thread hash table reused across calls: entries carry the call's
//! generation, so a stale one reads as empty without clearing 256 KiB per string (the `lzf` crate
//! zeroes a fresh table per call, which made saving a million short strings take seconds).
//! Redis leaves its table uninitialized, so its exact bytes may depend on earlier calls; any
//! valid LZF loads everywhere. Decompression is the `lzf` crate's.

use std::cell::RefCell;

const HLOG: u32 = 16;
const HSIZE: usize = 1 << HLOG;
const MAX_LIT: usize = 1 << 5;
const MAX_OFF: usize = 1 << 13;
const MAX_REF: usize = (1 << 8) + (1 << 3);

struct Table {
    /// (generation << 32) | offset of the input position.
    slots: Vec<u64>,
    generation: u32,
}

thread_local! {
    static TABLE: RefCell<Table> = RefCell::new(Table { slots: vec![0; HSIZE], generation: 0 });
}

#[inline]
fn idx(h: u32) -> usize {
    ((h >> (3 * 8 - HLOG)).wrapping_sub(h.wrapping_mul(5)) as usize) & (HSIZE - 1)
}

/// Compresses `input` into at most `out_len` bytes; None when it does not fit (liblzf's 0).
pub fn compress(input: &[u8], out_len: usize) -> Option<Vec<u8>> {
    if input.len() < 3 || out_len == 0 {
        return None;
    }
    TABLE.with(|t| {
        let mut t = t.borrow_mut();
        t.generation = t.generation.wrapping_add(1);
        if t.generation == 0 {
            t.slots.iter_mut().for_each(|s| *s = 0);
            t.generation = 1;
        }
        let gen = t.generation;
        run(input, out_len, &mut t.slots, gen)
    })
}

fn run(inp: &[u8], out_len: usize, htab: &mut [u64], gen: u32) -> Option<Vec<u8>> {
    let in_end = inp.len();
    let mut out = vec![0u8; out_len];
    let mut ip = 0usize;
    let mut op = 1usize; // start run
    let mut lit = 0usize;
    let stamp = |off: usize| ((gen as u64) << 32) | off as u64;
    let read = |slot: u64| if (slot >> 32) as u32 == gen { (slot & 0xffff_ffff) as usize } else { 0 };
    let mut hval: u32 = ((inp[0] as u32) << 8) | inp[1] as u32;
    while ip + 2 < in_end {
        hval = (hval << 8) | inp[ip + 2] as u32;
        let h = idx(hval);
        let r = read(htab[h]);
        htab[h] = stamp(ip);
        if r < ip && ip - r - 1 < MAX_OFF && r > 0 && inp[r + 2] == inp[ip + 2] && inp[r] == inp[ip] && inp[r + 1] == inp[ip + 1] {
            let off = ip - r - 1;
            let mut len = 2usize;
            let maxlen = (in_end - ip - len).min(MAX_REF);
            if op + 3 + 1 >= out_len && op - (lit == 0) as usize + 3 + 1 >= out_len {
                return None;
            }
            out[op - lit - 1] = (lit as u8).wrapping_sub(1); // stop run
            op -= (lit == 0) as usize; // undo run if length is zero
            let mut matched_16 = true;
            if maxlen > 16 {
                for _ in 0..16 {
                    len += 1;
                    if inp[r + len] != inp[ip + len] {
                        matched_16 = false;
                        break;
                    }
                }
            }
            if matched_16 {
                loop {
                    len += 1;
                    if !(len < maxlen && inp[r + len] == inp[ip + len]) {
                        break;
                    }
                }
            }
            len -= 2; // len is now #octets - 1
            ip += 1;
            if len < 7 {
                out[op] = ((off >> 8) + (len << 5)) as u8;
                op += 1;
            } else {
                out[op] = ((off >> 8) + (7 << 5)) as u8;
                out[op + 1] = (len - 7) as u8;
                op += 2;
            }
            out[op] = off as u8;
            op += 1;
            lit = 0;
            op += 1; // start run
            ip += len + 1;
            if ip + 2 >= in_end {
                break;
            }
            // VERY_FAST: hash the two positions before the new one.
            ip -= 2;
            hval = ((inp[ip] as u32) << 8) | inp[ip + 1] as u32;
            hval = (hval << 8) | inp[ip + 2] as u32;
            htab[idx(hval)] = stamp(ip);
            ip += 1;
            hval = (hval << 8) | inp[ip + 2] as u32;
            htab[idx(hval)] = stamp(ip);
            ip += 1;
        } else {
            if op >= out_len {
                return None;
            }
            lit += 1;
            out[op] = inp[ip];
            op += 1;
            ip += 1;
            if lit == MAX_LIT {
                out[op - lit - 1] = (lit - 1) as u8; // stop run
                lit = 0;
                op += 1; // start run
            }
        }
    }
    if op + 3 > out_len {
        return None;
    }
    while ip < in_end {
        lit += 1;
        out[op] = inp[ip];
        op += 1;
        ip += 1;
        if lit == MAX_LIT {
            out[op - lit - 1] = (lit - 1) as u8;
            lit = 0;
            op += 1;
        }
    }
    out[op - lit - 1] = (lit as u8).wrapping_sub(1); // end run
    op -= (lit == 0) as usize;
    out.truncate(op);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The `lzf` crate (a port of liblzf with a zeroed table; it departs from liblzf only near
    /// the end of the input and in its size limit) agrees on ordinary values.
    fn reference(input: &[u8], out_len: usize) -> Option<Vec<u8>> {
        lzf::compress(input).ok().filter(|c| c.len() <= out_len)
    }

    #[test]
    fn same_bytes_as_liblzf_on_typical_values() {
        for s in [
            vec![b'v'; 100],
            b"#!lua name=lib1\nredis.register_function('f1', function() return 1 end)".repeat(3),
            (0..5000u32).flat_map(|i| (i % 97).to_le_bytes()).collect(),
        ] {
            let c = compress(&s, s.len() - 4).expect("compressible");
            assert_eq!(Some(c.clone()), reference(&s, s.len() - 4));
            assert_eq!(lzf::decompress(&c, s.len()).unwrap(), s);
        }
    }

    proptest! {
        /// Any input: what we produce decompresses to it, within the size given.
        #[test]
        fn round_trips(input in prop_oneof![
            proptest::collection::vec(any::<u8>(), 21..600),
            proptest::collection::vec(0u8..4, 21..3000),
            proptest::collection::vec(prop_oneof![Just(b'a'), Just(b'b')], 21..20000),
        ]) {
            let out_len = input.len() - 4;
            if let Some(c) = compress(&input, out_len) {
                prop_assert!(c.len() <= out_len);
                prop_assert_eq!(lzf::decompress(&c, input.len()).unwrap(), input);
            }
        }
    }
}
