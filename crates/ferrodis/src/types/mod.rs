//! Values as stored in the keyspace. Pure data structures: no commands, no network.
//!
//! Architecture invariant: `types` imports nothing of ours but `util`.

pub mod bytes;
pub mod geohash;
pub mod hash;
pub mod hll;
pub mod indexed;
pub mod list;
pub mod ordertree;
pub mod set;
pub mod stream;
pub mod string;
pub mod zset;

pub use self::bytes::SmallBytes;
pub use hash::Hash;
pub use list::List;
pub use set::Set;
pub use stream::Stream;
pub use string::StrValue;
pub use zset::ZSet;

/// Appends a LEB128 varint (the packed encodings' length prefix).
pub(crate) fn put_varint(buf: &mut Vec<u8>, mut n: usize) {
    while n >= 0x80 {
        buf.push((n as u8) | 0x80);
        n >>= 7;
    }
    buf.push(n as u8);
}

/// Reads a varint at `*pos`, advancing it.
pub(crate) fn get_varint(buf: &[u8], pos: &mut usize) -> usize {
    let (mut n, mut shift) = (0usize, 0);
    loop {
        let b = buf[*pos];
        *pos += 1;
        n |= ((b & 0x7f) as usize) << shift;
        if b < 0x80 {
            return n;
        }
        shift += 7;
    }
}

/// Replaces bytes `s..e` of an exactly-sized buffer with `with` (one exact reallocation).
pub(crate) fn splice(buf: &mut Box<[u8]>, s: usize, e: usize, with: &[u8]) {
    let mut v = Vec::with_capacity(buf.len() - (e - s) + with.len());
    v.extend_from_slice(&buf[..s]);
    v.extend_from_slice(with);
    v.extend_from_slice(&buf[e..]);
    *buf = v.into_boxed_slice();
}

/// A stored value; the other Redis types join as variants.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Str(StrValue),
    List(Box<List>),
    Hash(Hash),
    Set(Box<Set>),
    ZSet(Box<ZSet>),
    Stream(Box<Stream>),
}

impl Value {
    /// The name `TYPE` reports.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) => "string",
            Value::List(_) => "list",
            Value::Hash(_) => "hash",
            Value::Set(_) => "set",
            Value::ZSet(_) => "zset",
            Value::Stream(_) => "stream",
        }
    }
    /// The name `OBJECT ENCODING` reports.
    pub fn encoding(&self) -> &'static str {
        match self {
            Value::Str(s) => s.encoding(),
            Value::List(_) => "quicklist",
            Value::Hash(h) => h.encoding(),
            Value::Set(s) => s.encoding(),
            Value::ZSet(z) => z.encoding(),
            Value::Stream(_) => "stream",
        }
    }
    /// True for a collection with no elements left (Redis deletes such keys).
    pub fn is_empty_collection(&self) -> bool {
        match self {
            Value::Str(_) => false,
            Value::List(l) => l.is_empty(),
            Value::Hash(h) => h.is_empty(),
            Value::Set(s) => s.is_empty(),
            Value::ZSet(z) => z.is_empty(),
            // A stream stays when its last entry goes (XDEL, XTRIM), as in Redis.
            Value::Stream(_) => false,
        }
    }
    /// Approximate heap bytes used by the value (for `MEMORY USAGE`).
    pub fn heap_size(&self) -> usize {
        match self {
            Value::Str(s) => s.heap_size(),
            Value::List(l) => std::mem::size_of::<List>() + l.heap_size(),
            Value::Hash(h) => std::mem::size_of::<Hash>() + h.heap_size(),
            Value::Set(s) => s.heap_size(),
            Value::ZSet(z) => std::mem::size_of::<ZSet>() + z.heap_size(),
            Value::Stream(s) => s.heap_size(),
        }
    }
}
