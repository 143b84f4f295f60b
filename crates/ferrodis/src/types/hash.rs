//! The hash type with Redis's two encodings: `listpack` (field/value pairs packed one after another
//! in one buffer, in insertion order; linear search, as Redis does) while the hash has at most
//! `hash-max-listpack-entries` fields and no field or value is longer than
//! `hash-max-listpack-value`; `hashtable` past those limits (never converted back, as in Redis).

use super::indexed::{Indexed, Keyed};
use super::{get_varint, put_varint, splice};

/// Thresholds for the compact encoding (from the config).
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_entries: usize,
    pub max_value: usize,
}

#[derive(Clone, Debug)]
pub enum Hash {
    Pack(Pack),
    Table(Box<Indexed<Pair>>),
}

/// Packed pairs in one exactly-sized allocation: each item is a varint length then its bytes;
/// items alternate field, value (Redis's listpack plays the same role).
#[derive(Clone, Debug, Default)]
pub struct Pack {
    buf: Box<[u8]>,
}

/// A field and its value packed in one allocation: varint field length, field, value.
#[derive(Clone, Debug)]
pub struct Pair(Box<[u8]>);

impl Pair {
    fn new(field: &[u8], value: &[u8]) -> Pair {
        let mut v = Vec::with_capacity(field.len() + value.len() + 2);
        put_varint(&mut v, field.len());
        v.extend_from_slice(field);
        v.extend_from_slice(value);
        Pair(v.into_boxed_slice())
    }
    fn split(&self) -> (&[u8], &[u8]) {
        let mut pos = 0;
        let fl = get_varint(&self.0, &mut pos);
        (&self.0[pos..pos + fl], &self.0[pos + fl..])
    }
    fn field(&self) -> &[u8] {
        self.split().0
    }
}

impl Keyed for Pair {
    fn key(&self) -> &[u8] {
        self.field()
    }
}

impl Pack {
    /// Iterates (field, value, start offset of the pair, end offset).
    fn pairs(&self) -> impl Iterator<Item = (&[u8], &[u8], usize, usize)> {
        let mut pos = 0;
        let buf = &self.buf;
        std::iter::from_fn(move || {
            if pos >= buf.len() {
                return None;
            }
            let start = pos;
            let fl = get_varint(buf, &mut pos);
            let f = &buf[pos..pos + fl];
            pos += fl;
            let vl = get_varint(buf, &mut pos);
            let v = &buf[pos..pos + vl];
            pos += vl;
            Some((f, v, start, pos))
        })
    }
    fn len(&self) -> usize {
        self.pairs().count()
    }
    fn find(&self, field: &[u8]) -> Option<(&[u8], usize, usize)> {
        self.pairs().find(|(f, _, _, _)| *f == field).map(|(_, v, s, e)| (v, s, e))
    }
    /// Replaces bytes `s..e` of the buffer with `with` (one exact reallocation).
    fn splice(&mut self, s: usize, e: usize, with: &[u8]) {
        splice(&mut self.buf, s, e, with)
    }
    fn encode_pair(field: &[u8], value: &[u8]) -> Vec<u8> {
        let mut p = Vec::with_capacity(field.len() + value.len() + 4);
        put_varint(&mut p, field.len());
        p.extend_from_slice(field);
        put_varint(&mut p, value.len());
        p.extend_from_slice(value);
        p
    }
}

impl Default for Hash {
    fn default() -> Self {
        Hash::Pack(Pack::default())
    }
}

impl Hash {
    pub fn len(&self) -> usize {
        match self {
            Hash::Pack(p) => p.len(),
            Hash::Table(t) => t.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        match self {
            Hash::Pack(p) => p.buf.is_empty(),
            Hash::Table(t) => t.is_empty(),
        }
    }
    pub fn encoding(&self) -> &'static str {
        match self {
            Hash::Pack(_) => "listpack",
            Hash::Table(_) => "hashtable",
        }
    }
    pub fn get(&self, field: &[u8]) -> Option<&[u8]> {
        match self {
            Hash::Pack(p) => p.find(field).map(|(v, _, _)| v),
            Hash::Table(t) => t.find(field).map(|i| t.items()[i].split().1),
        }
    }
    fn convert_to_table(&mut self) {
        if let Hash::Pack(p) = self {
            let mut t = Indexed::default();
            for (f, v, _, _) in p.pairs() {
                t.upsert(f, true, || Pair::new(f, v));
            }
            *self = Hash::Table(Box::new(t));
        }
    }
    /// Sets a field; true when the field is new.
    pub fn set(&mut self, field: &[u8], value: &[u8], limits: Limits) -> bool {
        if let Hash::Pack(p) = self {
            if field.len() > limits.max_value || value.len() > limits.max_value {
                self.convert_to_table();
            } else {
                let found = p.find(field).map(|(_, s, e)| (s, e));
                let pair = Pack::encode_pair(field, value);
                match found {
                    Some((s, e)) => {
                        p.splice(s, e, &pair);
                        return false;
                    }
                    None => {
                        let end = p.buf.len();
                        p.splice(end, end, &pair);
                        if p.len() > limits.max_entries {
                            self.convert_to_table();
                        }
                        return true;
                    }
                }
            }
        }
        let Hash::Table(t) = self else { unreachable!("converted above") };
        t.upsert(field, true, || Pair::new(field, value))
    }
    /// Sets several fields at once (HSET with many pairs): a packed hash is rebuilt once, at its
    /// exact size, instead of once per field. Returns how many fields were new.
    pub fn set_many(&mut self, pairs: &[&[u8]], limits: Limits) -> usize {
        if let Hash::Pack(p) = self {
            let fits = pairs.iter().all(|x| x.len() <= limits.max_value);
            if fits {
                let mut items: Vec<(&[u8], &[u8])> = p.pairs().map(|(f, v, _, _)| (f, v)).collect();
                let mut added = 0;
                for kv in pairs.chunks(2) {
                    match items.iter_mut().find(|(f, _)| *f == kv[0]) {
                        Some(item) => item.1 = kv[1],
                        None => {
                            items.push((kv[0], kv[1]));
                            added += 1;
                        }
                    }
                }
                if items.len() <= limits.max_entries {
                    let mut buf = Vec::with_capacity(items.iter().map(|(f, v)| f.len() + v.len() + 4).sum());
                    for (f, v) in &items {
                        buf.extend_from_slice(&Pack::encode_pair(f, v));
                    }
                    p.buf = buf.into_boxed_slice();
                    return added;
                }
            }
        }
        pairs.chunks(2).filter(|kv| self.set(kv[0], kv[1], limits)).count()
    }

    /// Removes a field; true if it was there.
    pub fn remove(&mut self, field: &[u8]) -> bool {
        match self {
            Hash::Pack(p) => match p.find(field).map(|(_, s, e)| (s, e)) {
                Some((s, e)) => {
                    p.splice(s, e, &[]);
                    true
                }
                None => false,
            },
            Hash::Table(t) => match t.find(field) {
                Some(i) => {
                    t.remove_at(i);
                    true
                }
                None => false,
            },
        }
    }
    /// The pair at position `i` (0 <= i < len) in iteration order (O(1) for hashtables).
    pub fn pair_at(&self, i: usize) -> (&[u8], &[u8]) {
        match self {
            Hash::Pack(p) => p.pairs().nth(i).map(|(f, v, _, _)| (f, v)).unwrap_or_default(),
            Hash::Table(t) => t.items()[i].split(),
        }
    }

    /// All (field, value) pairs: insertion order for listpack, table order for hashtable.
    pub fn pairs(&self) -> Vec<(&[u8], &[u8])> {
        match self {
            Hash::Pack(p) => p.pairs().map(|(f, v, _, _)| (f, v)).collect(),
            Hash::Table(t) => t.items().iter().map(|p| p.split()).collect(),
        }
    }
    pub fn heap_size(&self) -> usize {
        match self {
            Hash::Pack(p) => p.buf.len(),
            Hash::Table(t) => t.overhead_bytes() + t.items().iter().map(|p| p.0.len()).sum::<usize>(),
        }
    }
}

impl PartialEq for Hash {
    fn eq(&self, o: &Self) -> bool {
        let mut a = self.pairs();
        let mut b = o.pairs();
        a.sort();
        b.sort();
        a == b
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    proptest! {
        #[test]
        fn behaves_like_a_map(ops in prop::collection::vec((any::<bool>(), 0u8..20, prop::collection::vec(any::<u8>(), 0..30)), 0..200)) {
            let limits = Limits { max_entries: 8, max_value: 16 };
            let mut h = Hash::default();
            let mut m = BTreeMap::new();
            for (set, f, v) in ops {
                let f = vec![f];
                if set {
                    prop_assert_eq!(h.set(&f, &v, limits), m.insert(f.clone(), v.clone()).is_none());
                } else {
                    prop_assert_eq!(h.remove(&f), m.remove(&f).is_some());
                }
                prop_assert_eq!(h.len(), m.len());
            }
            for (f, v) in &m {
                prop_assert_eq!(h.get(f), Some(v.as_slice()));
            }
        }
    }
}
