//! The set type with Redis 7.0's two encodings: `intset` (a sorted array of integers, while every
//! member is an integer in canonical form and there are at most `set-max-intset-entries`) and
//! `hashtable` (past that; never converted back).

use super::indexed::{Indexed, Keyed};
use super::SmallBytes;
use crate::util::parse_i64;

#[derive(Clone, Debug)]
pub enum Set {
    Ints(Vec<i64>),
    Table(Box<Indexed<SmallBytes>>),
}

impl Keyed for SmallBytes {
    fn key(&self) -> &[u8] {
        self.as_slice()
    }
}

impl Default for Set {
    fn default() -> Self {
        Set::Ints(Vec::new())
    }
}

impl Set {
    pub fn len(&self) -> usize {
        match self {
            Set::Ints(v) => v.len(),
            Set::Table(t) => t.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn encoding(&self) -> &'static str {
        match self {
            Set::Ints(_) => "intset",
            Set::Table(_) => "hashtable",
        }
    }
    pub fn contains(&self, m: &[u8]) -> bool {
        match self {
            Set::Ints(v) => parse_i64(m).is_some_and(|n| v.binary_search(&n).is_ok()),
            Set::Table(t) => t.find(m).is_some(),
        }
    }
    fn convert_to_table(&mut self) {
        if let Set::Ints(v) = self {
            let mut t = Indexed::default();
            for n in v.iter() {
                let m = itoa::Buffer::new().format(*n).as_bytes().to_vec();
                t.upsert(&m, false, || SmallBytes::new(&m));
            }
            *self = Set::Table(Box::new(t));
        }
    }
    /// Adds a member; true when it is new. `max_ints` is `set-max-intset-entries`.
    pub fn add(&mut self, m: &[u8], max_ints: usize) -> bool {
        if let Set::Ints(v) = self {
            match parse_i64(m) {
                Some(n) => match v.binary_search(&n) {
                    Ok(_) => return false,
                    Err(pos) => {
                        v.insert(pos, n);
                        if v.len() > max_ints {
                            self.convert_to_table();
                        }
                        return true;
                    }
                },
                None => self.convert_to_table(),
            }
        }
        let Set::Table(t) = self else { unreachable!("converted above") };
        t.upsert(m, false, || SmallBytes::new(m))
    }
    pub fn remove(&mut self, m: &[u8]) -> bool {
        match self {
            Set::Ints(v) => match parse_i64(m).map(|n| v.binary_search(&n)) {
                Some(Ok(pos)) => {
                    v.remove(pos);
                    true
                }
                _ => false,
            },
            Set::Table(t) => match t.find(m) {
                Some(i) => {
                    t.remove_at(i);
                    true
                }
                None => false,
            },
        }
    }
    /// The member at position `i` (0 <= i < len) in iteration order.
    pub fn member_at(&self, i: usize) -> Vec<u8> {
        match self {
            Set::Ints(v) => itoa::Buffer::new().format(v[i]).as_bytes().to_vec(),
            Set::Table(t) => t.items()[i].to_vec(),
        }
    }
    /// Removes and returns the member at position `i`.
    pub fn remove_at(&mut self, i: usize) -> Vec<u8> {
        match self {
            Set::Ints(v) => itoa::Buffer::new().format(v.remove(i)).as_bytes().to_vec(),
            Set::Table(t) => t.remove_at(i).to_vec(),
        }
    }

    /// Members in Redis's iteration order (ascending for intsets).
    pub fn members(&self) -> Vec<Vec<u8>> {
        match self {
            Set::Ints(v) => v.iter().map(|n| itoa::Buffer::new().format(*n).as_bytes().to_vec()).collect(),
            Set::Table(t) => t.items().iter().map(|e| e.to_vec()).collect(),
        }
    }
    pub fn heap_size(&self) -> usize {
        match self {
            Set::Ints(v) => v.capacity() * 8,
            Set::Table(t) => t.overhead_bytes() + t.items().iter().map(|e| e.heap_size()).sum::<usize>(),
        }
    }
}

impl PartialEq for Set {
    fn eq(&self, o: &Self) -> bool {
        let (mut a, mut b) = (self.members(), o.members());
        a.sort();
        b.sort();
        a == b
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn intset_converts() {
        let mut s = Set::default();
        assert!(s.add(b"3", 2));
        assert!(s.add(b"1", 2));
        assert!(!s.add(b"1", 2));
        assert_eq!(s.encoding(), "intset");
        assert_eq!(s.members(), vec![b"1".to_vec(), b"3".to_vec()]);
        assert!(s.add(b"007", 2));
        assert_eq!(s.encoding(), "hashtable");
        assert!(s.contains(b"3") && s.contains(b"007") && !s.contains(b"7"));
        assert!(s.remove(b"3"));
        assert_eq!(s.len(), 2);
        for i in 0..100 {
            s.add(format!("m{i}").as_bytes(), 2);
        }
        while s.len() > 1 {
            let m = s.remove_at(s.len() / 2);
            assert!(!s.contains(&m));
            for i in 0..s.len() {
                assert!(s.contains(&s.member_at(i)));
            }
        }
    }
}
