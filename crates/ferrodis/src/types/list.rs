//! The list type. Redis 7.0 reports every list as `quicklist`; ferrodis keeps the elements in a
//! ring buffer of `SmallBytes` (elements up to 22 bytes inline), which gives O(1) pushes and pops at
//! both ends and O(1) indexing.

use super::SmallBytes;
use std::collections::VecDeque;

#[derive(Clone, Debug, Default, PartialEq)]
pub struct List {
    items: VecDeque<SmallBytes>,
}

impl List {
    pub fn new() -> Self {
        List::default()
    }
    pub fn len(&self) -> usize {
        self.items.len()
    }
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
    pub fn push(&mut self, left: bool, v: &[u8]) {
        if left {
            self.items.push_front(SmallBytes::new(v));
        } else {
            self.items.push_back(SmallBytes::new(v));
        }
    }
    pub fn pop(&mut self, left: bool) -> Option<SmallBytes> {
        if left {
            self.items.pop_front()
        } else {
            self.items.pop_back()
        }
    }
    pub fn get(&self, i: usize) -> Option<&[u8]> {
        self.items.get(i).map(|b| b.as_slice())
    }
    pub fn set(&mut self, i: usize, v: &[u8]) {
        self.items[i] = SmallBytes::new(v);
    }
    pub fn insert(&mut self, i: usize, v: &[u8]) {
        self.items.insert(i, SmallBytes::new(v));
    }
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &[u8]> + ExactSizeIterator {
        self.items.iter().map(|b| b.as_slice())
    }
    /// Keeps only the elements at indexes `start..=end` (already clamped).
    pub fn trim(&mut self, start: usize, end: usize) {
        self.items.truncate(end + 1);
        self.items.drain(..start);
    }
    pub fn clear(&mut self) {
        self.items.clear();
    }
    /// Removes up to `count` elements equal to `v` (0: all), from the tail when `from_tail`.
    pub fn remove_matching(&mut self, v: &[u8], count: usize, from_tail: bool) -> usize {
        let mut removed = 0;
        let mut keep = VecDeque::with_capacity(self.items.len());
        let limit = if count == 0 { usize::MAX } else { count };
        if from_tail {
            while let Some(e) = self.items.pop_back() {
                if removed < limit && e.as_slice() == v {
                    removed += 1;
                } else {
                    keep.push_front(e);
                }
            }
        } else {
            while let Some(e) = self.items.pop_front() {
                if removed < limit && e.as_slice() == v {
                    removed += 1;
                } else {
                    keep.push_back(e);
                }
            }
        }
        self.items = keep;
        removed
    }
    pub fn heap_size(&self) -> usize {
        self.items.capacity() * std::mem::size_of::<SmallBytes>() + self.items.iter().map(|b| b.heap_size()).sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn list_ops() {
        let mut l = List::new();
        for v in [b"a", b"b", b"a", b"c", b"a"] {
            l.push(false, v);
        }
        assert_eq!(l.remove_matching(b"a", 2, true), 2);
        assert_eq!(l.iter().collect::<Vec<_>>(), vec![&b"a"[..], b"b", b"c"]);
        l.trim(1, 1);
        assert_eq!(l.iter().collect::<Vec<_>>(), vec![&b"b"[..]]);
    }
}
