//! The RDB file: "REDIS0010", aux fields, then per database SELECTDB, RESIZEDB and its keys
//! (each with optional expiry, idle time or frequency), functions, and EOF with a CRC64 of
//! everything before it (zero when checksums are off).

use crate::decode::Cursor;
use crate::encode::{put_len, put_string};
use crate::{opcodes, Error, Value, CRC64, RDB_VERSION};
use std::io::Write;

/// The file header for the version written.
pub fn header() -> Vec<u8> {
    format!("REDIS{:04}", RDB_VERSION).into_bytes()
}

pub fn put_aux(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    out.push(opcodes::AUX);
    put_string(out, key, false);
    put_string(out, value, false);
}

pub fn put_select_db(out: &mut Vec<u8>, db: usize) {
    out.push(opcodes::SELECTDB);
    put_len(out, db as u64);
}

pub fn put_resize_db(out: &mut Vec<u8>, keys: u64, expires: u64) {
    out.push(opcodes::RESIZEDB);
    put_len(out, keys);
    put_len(out, expires);
}

/// A FUNCTION library (Redis 7.0's RDB_OPCODE_FUNCTION2): its code.
pub fn put_function(out: &mut Vec<u8>, code: &[u8], compress: bool) {
    out.push(opcodes::FUNCTION2);
    put_string(out, code, compress);
}

/// Writes an RDB file in pieces, keeping its CRC64 as it goes.
pub struct Writer<W: Write> {
    w: W,
    digest: crc::Digest<'static, u64>,
    written: u64,
}

impl<W: Write> Writer<W> {
    pub fn new(w: W) -> Self {
        Writer { w, digest: CRC64.digest(), written: 0 }
    }
    pub fn write(&mut self, b: &[u8]) -> std::io::Result<()> {
        self.digest.update(b);
        self.written += b.len() as u64;
        self.w.write_all(b)
    }
    pub fn written(&self) -> u64 {
        self.written
    }
    /// The writer underneath, for files that end without an RDB trailer.
    pub fn into_inner(self) -> W {
        self.w
    }
    /// EOF and the checksum (0 when `checksum` is off, as rdbchecksum no writes).
    pub fn finish(mut self, checksum: bool) -> std::io::Result<W> {
        self.write(&[opcodes::EOF])?;
        let crc = if checksum { self.digest.finalize() } else { 0 };
        self.w.write_all(&crc.to_le_bytes())?;
        self.w.flush()?;
        Ok(self.w)
    }
}

/// One thing read from an RDB file.
#[derive(Debug, PartialEq)]
pub enum Item {
    Aux(Vec<u8>, Vec<u8>),
    SelectDb(usize),
    ResizeDb(u64, u64),
    Function(Vec<u8>),
    Key {
        key: Vec<u8>,
        value: Value,
        expire_ms: Option<i64>,
        idle: Option<u64>,
        freq: Option<u8>,
    },
    /// EOF, with the checksum verified (or absent: zero, or an RDB older than version 5).
    End,
}

/// Reads an RDB file held in memory, item by item.
pub struct Reader<'a> {
    c: Cursor<'a>,
    pub version: u16,
    done: bool,
}

impl<'a> Reader<'a> {
    pub fn new(b: &'a [u8]) -> Result<Self, Error> {
        let mut c = Cursor::new(b);
        let head = c.take(9).map_err(|_| Error { offset: 0, msg: "file too short to be an RDB".into() })?;
        if &head[..5] != b"REDIS" {
            return Err(Error { offset: 0, msg: "Wrong signature trying to load DB from file".into() });
        }
        let version: u16 = std::str::from_utf8(&head[5..]).ok().and_then(|s| s.parse().ok()).unwrap_or(0);
        if !(1..=RDB_VERSION).contains(&version) {
            return Err(Error { offset: 5, msg: format!("Can't handle RDB format version {version}") });
        }
        Ok(Reader { c, version, done: false })
    }

    /// Bytes read so far.
    pub fn offset(&self) -> usize {
        self.c.pos
    }

    pub fn next_item(&mut self) -> Result<Item, Error> {
        if self.done {
            return Ok(Item::End);
        }
        let mut expire_ms = None;
        let mut idle = None;
        let mut freq = None;
        loop {
            let op = self.c.byte()?;
            match op {
                opcodes::EOF => {
                    self.done = true;
                    if self.version >= 5 {
                        let body = self.c.pos;
                        let stored = self.c.u64_le()?;
                        if stored != 0 && stored != CRC64.checksum(&self.c.b[..body]) {
                            return Err(Error { offset: body, msg: "Wrong RDB checksum".into() });
                        }
                    }
                    return Ok(Item::End);
                }
                opcodes::SELECTDB => {
                    let db = self.c.length()?;
                    return Ok(Item::SelectDb(usize::try_from(db).unwrap_or(usize::MAX)));
                }
                opcodes::RESIZEDB => {
                    let (a, b) = (self.c.length()?, self.c.length()?);
                    return Ok(Item::ResizeDb(a, b));
                }
                opcodes::AUX => {
                    let (k, v) = (self.c.string()?, self.c.string()?);
                    return Ok(Item::Aux(k, v));
                }
                opcodes::EXPIRETIME_MS => expire_ms = Some(self.c.u64_le()? as i64),
                opcodes::EXPIRETIME => {
                    // Seconds as a signed 32-bit number, as Redis reads them.
                    let s = i32::from_le_bytes(self.c.take(4)?.try_into().expect("4 bytes"));
                    expire_ms = Some(s as i64 * 1000);
                }
                opcodes::IDLE => idle = Some(self.c.length()?),
                opcodes::FREQ => freq = Some(self.c.byte()?),
                opcodes::FUNCTION2 => return Ok(Item::Function(self.c.string()?)),
                opcodes::FUNCTION_PRE_GA => return Err(self.c.err("Pre-release function format not supported")),
                opcodes::MODULE_AUX => return Err(self.c.err("module auxiliary data is not supported")),
                t => {
                    let key = self.c.string()?;
                    let value = self.c.value(t)?;
                    return Ok(Item::Key { key, value, expire_ms, idle, freq });
                }
            }
        }
    }
}

/// Writes `bytes` to a file durably: a temporary file beside it, fsync, rename over the target,
/// fsync of the directory. A crash at any point leaves the old file or the new one, whole.
pub fn write_atomically(
    path: &std::path::Path,
    tmp: &std::path::Path,
    write: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let mut f = std::fs::File::create(tmp)?;
    let r = write(&mut f).and_then(|_| f.sync_all());
    drop(f);
    if let Err(e) = r {
        let _ = std::fs::remove_file(tmp);
        return Err(e);
    }
    std::fs::rename(tmp, path)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode;

    fn sample(checksum: bool) -> Vec<u8> {
        let mut w = Writer::new(Vec::new());
        let mut b = header();
        put_aux(&mut b, b"redis-ver", b"7.0.15");
        put_function(&mut b, b"#!lua name=x\nredis.register_function('f', function() return 1 end)", true);
        put_select_db(&mut b, 0);
        put_resize_db(&mut b, 2, 1);
        encode::put_expire_ms(&mut b, 1_900_000_000_000);
        encode::put_string_value(&mut b, Some(b"k"), b"v", false);
        encode::put_set_value(&mut b, Some(b"s"), &[b"m"], false, false);
        w.write(&b).unwrap();
        w.finish(checksum).unwrap()
    }

    #[test]
    fn file_round_trip_and_checksum() {
        for checksum in [true, false] {
            let f = sample(checksum);
            let mut r = Reader::new(&f).unwrap();
            let mut items = Vec::new();
            loop {
                let it = r.next_item().unwrap();
                if it == Item::End {
                    break;
                }
                items.push(it);
            }
            assert_eq!(items.len(), 6, "{items:?}");
            assert_eq!(
                items[4],
                Item::Key {
                    key: b"k".to_vec(),
                    value: Value::Str(b"v".to_vec()),
                    expire_ms: Some(1_900_000_000_000),
                    idle: None,
                    freq: None
                }
            );
        }
        let mut f = sample(true);
        let n = f.len();
        f[n - 12] ^= 1;
        let mut r = Reader::new(&f).unwrap();
        let err = loop {
            match r.next_item() {
                Err(e) => break e,
                Ok(Item::End) => panic!("a flipped bit went unnoticed"),
                Ok(_) => {}
            }
        };
        assert!(!err.msg.is_empty());
    }
}
