//! Reading RDB's building blocks from a byte slice: lengths, strings (integer and LZF forms),
//! doubles, and whole values in every encoding Redis 7.0 loads.

use crate::{intset, listpack, types, ziplist, Error, Value};

/// A cursor over RDB bytes; every error carries the offset where it happened.
pub struct Cursor<'a> {
    pub b: &'a [u8],
    pub pos: usize,
}

/// A string as RDB stores it after its length byte.
enum Len {
    Plain(u64),
    Int8,
    Int16,
    Int32,
    Lzf,
}

impl<'a> Cursor<'a> {
    pub fn new(b: &'a [u8]) -> Self {
        Cursor { b, pos: 0 }
    }

    pub fn err(&self, msg: impl Into<String>) -> Error {
        Error { offset: self.pos, msg: msg.into() }
    }

    pub fn at_end(&self) -> bool {
        self.pos >= self.b.len()
    }

    pub fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        if self.b.len() - self.pos < n {
            return Err(self.err(format!("unexpected end of data (wanted {n} bytes, {} left)", self.b.len() - self.pos)));
        }
        let s = &self.b[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    pub fn byte(&mut self) -> Result<u8, Error> {
        Ok(self.take(1)?[0])
    }

    pub fn u64_le(&mut self) -> Result<u64, Error> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }

    fn len_or_encoding(&mut self) -> Result<Len, Error> {
        let b = self.byte()?;
        Ok(match b >> 6 {
            0 => Len::Plain((b & 0x3f) as u64),
            1 => Len::Plain((((b & 0x3f) as u64) << 8) | self.byte()? as u64),
            2 => match b {
                0x80 => Len::Plain(u32::from_be_bytes(self.take(4)?.try_into().expect("4 bytes")) as u64),
                0x81 => Len::Plain(u64::from_be_bytes(self.take(8)?.try_into().expect("8 bytes"))),
                _ => return Err(Error { offset: self.pos - 1, msg: format!("unknown length encoding 0x{b:02x}") }),
            },
            _ => match b & 0x3f {
                0 => Len::Int8,
                1 => Len::Int16,
                2 => Len::Int32,
                3 => Len::Lzf,
                e => return Err(Error { offset: self.pos - 1, msg: format!("unknown string encoding {e}") }),
            },
        })
    }

    /// A length (never a special string encoding).
    pub fn length(&mut self) -> Result<u64, Error> {
        let at = self.pos;
        match self.len_or_encoding()? {
            Len::Plain(n) => Ok(n),
            _ => Err(Error { offset: at, msg: "a string encoding where a length was expected".into() }),
        }
    }

    /// A length used to size something in memory: refused when it cannot fit in what is left.
    pub fn count(&mut self, min_bytes_each: usize) -> Result<usize, Error> {
        let at = self.pos;
        let n = self.length()?;
        let left = (self.b.len() - self.pos) as u64;
        if n.saturating_mul(min_bytes_each as u64) > left {
            return Err(Error { offset: at, msg: format!("length {n} is larger than the data left ({left} bytes)") });
        }
        Ok(n as usize)
    }

    pub fn string(&mut self) -> Result<Vec<u8>, Error> {
        let mut buf = [0u8; 20];
        Ok(match self.len_or_encoding()? {
            Len::Plain(n) => {
                let n = usize::try_from(n).map_err(|_| self.err("string length too large"))?;
                self.take(n)?.to_vec()
            }
            Len::Int8 => crate::format_i64(self.byte()? as i8 as i64, &mut buf).to_vec(),
            Len::Int16 => crate::format_i64(i16::from_le_bytes(self.take(2)?.try_into().expect("2 bytes")) as i64, &mut buf).to_vec(),
            Len::Int32 => crate::format_i64(i32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")) as i64, &mut buf).to_vec(),
            Len::Lzf => {
                let at = self.pos;
                let clen = self.length()? as usize;
                let len = self.length()? as usize;
                let data = self.take(clen)?;
                // An LZF string expands at most ~ 8x per byte of input plus literals: anything
                // claiming more is corrupt (and must not make us allocate it).
                if len > clen.saturating_mul(256).saturating_add(64) {
                    return Err(Error { offset: at, msg: format!("LZF string claims {len} bytes from {clen}") });
                }
                let out = lzf::decompress(data, len).map_err(|e| Error { offset: at, msg: format!("LZF decompression failed: {e:?}") })?;
                if out.len() != len {
                    return Err(Error { offset: at, msg: "LZF string has the wrong length".into() });
                }
                out
            }
        })
    }

    /// A score stored as text (RDB_TYPE_ZSET): a length byte, with 253/254/255 for nan/inf/-inf.
    pub fn text_double(&mut self) -> Result<f64, Error> {
        let n = self.byte()?;
        match n {
            253 => Ok(f64::NAN),
            254 => Ok(f64::INFINITY),
            255 => Ok(f64::NEG_INFINITY),
            _ => {
                let s = self.take(n as usize)?;
                std::str::from_utf8(s).ok().and_then(|s| s.parse().ok()).ok_or_else(|| self.err("bad double value"))
            }
        }
    }

    pub fn binary_double(&mut self) -> Result<f64, Error> {
        Ok(f64::from_bits(self.u64_le()?))
    }

    /// A value of type `t` (the byte before its key).
    pub fn value(&mut self, t: u8) -> Result<Value, Error> {
        let at = self.pos;
        let wrap = |e: Error| Error { offset: at + e.offset, msg: e.msg };
        Ok(match t {
            types::STRING => Value::Str(self.string()?),
            types::LIST => {
                let n = self.count(1)?;
                Value::List((0..n).map(|_| self.string()).collect::<Result<_, _>>()?)
            }
            types::SET => {
                let n = self.count(1)?;
                let v: Vec<Vec<u8>> = (0..n).map(|_| self.string()).collect::<Result<_, _>>()?;
                unique(v.iter().map(|m| m.as_slice()), "Duplicate set members detected", at)?;
                Value::Set(v)
            }
            types::ZSET | types::ZSET_2 => {
                let n = self.count(2)?;
                let mut v = Vec::with_capacity(n);
                for _ in 0..n {
                    let m = self.string()?;
                    let s = if t == types::ZSET { self.text_double()? } else { self.binary_double()? };
                    if s.is_nan() {
                        return Err(self.err("sorted set score is NaN"));
                    }
                    v.push((m, s));
                }
                unique(v.iter().map(|(m, _)| m.as_slice()), "Duplicate zset fields detected", at)?;
                Value::ZSet(v)
            }
            types::HASH => {
                let n = self.count(2)?;
                let mut v = Vec::with_capacity(n);
                for _ in 0..n {
                    v.push((self.string()?, self.string()?));
                }
                unique(v.iter().map(|(f, _)| f.as_slice()), "Duplicate hash fields detected", at)?;
                Value::Hash(v)
            }
            types::HASH_ZIPMAP => {
                let v = ziplist::decode_zipmap(&self.string()?).map_err(wrap)?;
                unique(v.iter().map(|(f, _)| f.as_slice()), "Duplicate hash fields detected", at)?;
                Value::Hash(v)
            }
            types::LIST_ZIPLIST => Value::List(ziplist::decode(&self.string()?).map_err(wrap)?),
            types::SET_INTSET | types::SET_LISTPACK => {
                let s = self.string()?;
                let v = if t == types::SET_INTSET { intset::decode(&s) } else { listpack::decode(&s) }.map_err(wrap)?;
                unique(v.iter().map(|m| m.as_slice()), "Duplicate set members detected", at)?;
                Value::Set(v)
            }
            // (Redis finds duplicates in packed encodings only under sanitize-dump-payload; a
            // packed sorted set or hash with one would be a corrupt object there. Refused here
            // always: loading it would silently drop an entry.)
            types::ZSET_ZIPLIST | types::ZSET_LISTPACK => {
                let s = self.string()?;
                let items = if t == types::ZSET_ZIPLIST { ziplist::decode(&s) } else { listpack::decode(&s) }.map_err(wrap)?;
                let v = scored(items).map_err(|m| Error { offset: at, msg: m })?;
                unique(v.iter().map(|(m, _)| m.as_slice()), "Duplicate zset fields detected", at)?;
                Value::ZSet(v)
            }
            types::HASH_ZIPLIST | types::HASH_LISTPACK => {
                let s = self.string()?;
                let items = if t == types::HASH_ZIPLIST { ziplist::decode(&s) } else { listpack::decode(&s) }.map_err(wrap)?;
                let v = paired(items).map_err(|m| Error { offset: at, msg: m })?;
                unique(v.iter().map(|(f, _)| f.as_slice()), "Duplicate hash fields detected", at)?;
                Value::Hash(v)
            }
            types::LIST_QUICKLIST | types::LIST_QUICKLIST_2 => {
                let nodes = self.count(1)?;
                let mut items = Vec::new();
                for _ in 0..nodes {
                    let container = if t == types::LIST_QUICKLIST_2 { self.length()? } else { crate::QUICKLIST_NODE_PACKED };
                    let node = self.string()?;
                    match container {
                        crate::QUICKLIST_NODE_PLAIN => items.push(node),
                        crate::QUICKLIST_NODE_PACKED if t == types::LIST_QUICKLIST => items.extend(ziplist::decode(&node).map_err(wrap)?),
                        crate::QUICKLIST_NODE_PACKED => items.extend(listpack::decode(&node).map_err(wrap)?),
                        c => return Err(self.err(format!("unknown quicklist node container {c}"))),
                    }
                }
                Value::List(items)
            }
            types::MODULE | types::MODULE_2 => return Err(Error { offset: at, msg: "module values are not supported".into() }),
            types::STREAM_LISTPACKS | types::STREAM_LISTPACKS_2 | types::STREAM_LISTPACKS_3 => {
                Value::Stream(Box::new(crate::stream::read(self, t)?))
            }
            _ => return Err(Error { offset: at.saturating_sub(1), msg: format!("unknown object type {t}") }),
        })
    }
}

/// Refuses a set, sorted set or hash that names a member twice (Redis's "Duplicate ... detected"):
/// loading it would drop one silently.
fn unique<'a>(items: impl ExactSizeIterator<Item = &'a [u8]>, msg: &str, at: usize) -> Result<(), Error> {
    let mut seen = std::collections::HashSet::with_capacity(items.len());
    for m in items {
        if !seen.insert(m) {
            return Err(Error { offset: at, msg: msg.into() });
        }
    }
    Ok(())
}

/// Alternating member, score entries as (member, score) pairs.
fn scored(items: Vec<Vec<u8>>) -> Result<Vec<(Vec<u8>, f64)>, String> {
    if !items.len().is_multiple_of(2) {
        return Err("sorted set listpack has an odd number of entries".into());
    }
    let mut out = Vec::with_capacity(items.len() / 2);
    let mut it = items.into_iter();
    while let (Some(m), Some(s)) = (it.next(), it.next()) {
        let s = std::str::from_utf8(&s).ok().and_then(parse_score).ok_or("sorted set score is not a number")?;
        out.push((m, s));
    }
    Ok(out)
}

fn parse_score(s: &str) -> Option<f64> {
    match s {
        "inf" | "+inf" => Some(f64::INFINITY),
        "-inf" => Some(f64::NEG_INFINITY),
        _ => s.parse::<f64>().ok().filter(|v| !v.is_nan()),
    }
}

fn paired(items: Vec<Vec<u8>>) -> Result<crate::Pairs, String> {
    if !items.len().is_multiple_of(2) {
        return Err("hash listpack has an odd number of entries".into());
    }
    let mut out = Vec::with_capacity(items.len() / 2);
    let mut it = items.into_iter();
    while let (Some(f), Some(v)) = (it.next(), it.next()) {
        out.push((f, v));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode;

    fn round_trip(write: impl FnOnce(&mut Vec<u8>)) -> Value {
        let mut b = Vec::new();
        write(&mut b);
        let mut c = Cursor::new(&b);
        let t = c.byte().unwrap();
        let v = c.value(t).unwrap();
        assert!(c.at_end());
        v
    }

    #[test]
    fn values_round_trip_in_every_written_encoding() {
        let long = vec![b'z'; 100];
        for compress in [false, true] {
            assert_eq!(round_trip(|b| encode::put_string_value(b, None, &long, compress)), Value::Str(long.clone()));
            assert_eq!(round_trip(|b| encode::put_string_value(b, None, b"-12345", compress)), Value::Str(b"-12345".to_vec()));
            let items: Vec<Vec<u8>> = (0..3000).map(|i| format!("item{i}").into_bytes()).chain([vec![b'p'; 9000]]).collect();
            let got = round_trip(|b| encode::put_list_value(b, None, items.iter().map(|v| v.as_slice()), 8192, compress));
            assert_eq!(got, Value::List(items.clone()));
            let members: Vec<&[u8]> = vec![b"3", b"1", b"200000"];
            assert_eq!(
                round_trip(|b| encode::put_set_value(b, None, &members, true, compress)),
                Value::Set(vec![b"1".to_vec(), b"3".to_vec(), b"200000".to_vec()])
            );
            let members: Vec<&[u8]> = vec![b"a", b"1"];
            assert_eq!(
                round_trip(|b| encode::put_set_value(b, None, &members, true, compress)),
                Value::Set(vec![b"a".to_vec(), b"1".to_vec()])
            );
            let pairs: Vec<(&[u8], &[u8])> = vec![(b"f", b"v"), (b"n", b"12")];
            for packed in [false, true] {
                let want = Value::Hash(pairs.iter().map(|(f, v)| (f.to_vec(), v.to_vec())).collect());
                assert_eq!(round_trip(|b| encode::put_hash_value(b, None, &pairs, packed, compress)), want);
            }
            let entries: Vec<(&[u8], f64)> = vec![(b"a", -1.5), (b"b", 2.0), (b"c", f64::INFINITY)];
            let packed = round_trip(|b| encode::put_zset_value(b, None, &entries, true, compress));
            assert_eq!(packed, Value::ZSet(entries.iter().map(|(m, s)| (m.to_vec(), *s)).collect()));
            let full = round_trip(|b| encode::put_zset_value(b, None, &entries, false, compress));
            assert_eq!(full, Value::ZSet(entries.iter().rev().map(|(m, s)| (m.to_vec(), *s)).collect()));
        }
    }

    #[test]
    fn truncated_and_bogus_input_is_an_error() {
        let mut b = Vec::new();
        encode::put_string_value(&mut b, None, &[b'q'; 50], true);
        for cut in 0..b.len() {
            let mut c = Cursor::new(&b[..cut]);
            if let Ok(t) = c.byte() {
                assert!(c.value(t).is_err(), "cut at {cut}");
            }
        }
        // A list claiming 2^40 elements in a few bytes.
        let mut c = Cursor::new(&[types::LIST, 0x81, 0, 0, 1, 0, 0, 0, 0, 0]);
        let t = c.byte().unwrap();
        assert!(c.value(t).unwrap_err().msg.contains("larger than the data left"));
        // A stream claiming 7 nodes with no bytes after.
        assert!(Cursor::new(&[7u8]).value(types::STREAM_LISTPACKS).is_err());
    }
}
