//! The string type with Redis's three encodings: `int`, `embstr` (set whole, ≤ 44 bytes) and
//! `raw` (longer, or changed in place by APPEND/SETRANGE/SETBIT).

use super::SmallBytes;
use crate::util::parse_i64;

#[derive(Clone, Debug)]
pub enum StrValue {
    /// An integer in canonical form ("int").
    Int(i64),
    /// Bytes set whole ("embstr" up to 44 bytes, else "raw").
    Bytes(SmallBytes),
    /// Bytes grown or edited in place ("raw"); amortised appends.
    Raw(Box<Vec<u8>>),
}

/// Redis's OBJ_ENCODING_EMBSTR_SIZE_LIMIT.
const EMBSTR_LIMIT: usize = 44;

impl StrValue {
    /// Encodes a value as SET does: integers that print back identically become `int`.
    #[inline]
    pub fn from_bytes(b: &[u8]) -> Self {
        if b.len() <= 20 {
            if let Some(n) = parse_i64(b) {
                return StrValue::Int(n);
            }
        }
        StrValue::Bytes(SmallBytes::new(b))
    }
    pub fn from_vec_raw(v: Vec<u8>) -> Self {
        StrValue::Raw(Box::new(v))
    }
    /// The bytes, using `scratch` for the decimal form of an integer.
    #[inline]
    pub fn bytes<'a>(&'a self, scratch: &'a mut itoa::Buffer) -> &'a [u8] {
        match self {
            StrValue::Int(n) => scratch.format(*n).as_bytes(),
            StrValue::Bytes(b) => b.as_slice(),
            StrValue::Raw(v) => v.as_slice(),
        }
    }
    pub fn to_vec(&self) -> Vec<u8> {
        let mut s = itoa::Buffer::new();
        self.bytes(&mut s).to_vec()
    }
    pub fn len(&self) -> usize {
        match self {
            StrValue::Int(n) => itoa::Buffer::new().format(*n).len(),
            StrValue::Bytes(b) => b.len(),
            StrValue::Raw(v) => v.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The value as an integer, as INCR reads it.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            StrValue::Int(n) => Some(*n),
            StrValue::Bytes(b) => parse_i64(b),
            StrValue::Raw(v) => parse_i64(v),
        }
    }
    /// Turns the value into a mutable `raw` buffer (APPEND, SETRANGE, SETBIT).
    pub fn make_raw(&mut self) -> &mut Vec<u8> {
        if !matches!(self, StrValue::Raw(_)) {
            *self = StrValue::Raw(Box::new(self.to_vec()));
        }
        match self {
            StrValue::Raw(v) => v,
            _ => unreachable!("made raw above"),
        }
    }
    pub fn encoding(&self) -> &'static str {
        match self {
            StrValue::Int(_) => "int",
            StrValue::Bytes(b) if b.len() <= EMBSTR_LIMIT => "embstr",
            _ => "raw",
        }
    }
    pub fn heap_size(&self) -> usize {
        match self {
            StrValue::Int(_) => 0,
            StrValue::Bytes(b) => b.heap_size(),
            StrValue::Raw(v) => v.capacity() + 24,
        }
    }
}

impl PartialEq for StrValue {
    fn eq(&self, o: &Self) -> bool {
        self.to_vec() == o.to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn encodings() {
        assert_eq!(StrValue::from_bytes(b"123").encoding(), "int");
        assert_eq!(StrValue::from_bytes(b"0123").encoding(), "embstr");
        assert_eq!(StrValue::from_bytes(&[b'a'; 44]).encoding(), "embstr");
        assert_eq!(StrValue::from_bytes(&[b'a'; 45]).encoding(), "raw");
        let mut v = StrValue::from_bytes(b"ab");
        v.make_raw().push(b'c');
        assert_eq!(v.encoding(), "raw");
        assert_eq!(v.to_vec(), b"abc");
        assert_eq!(std::mem::size_of::<StrValue>(), 24);
        assert_eq!(std::mem::size_of::<crate::types::Value>(), 24);
    }
}
