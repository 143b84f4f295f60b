//! `Indexed<T>`: the full form of hashes and sets. Items live in a vector (a random item is O(1)
//! for SPOP/SRANDMEMBER/HRANDFIELD, removal is a swap-remove), and a hash table holds their
//! indexes for lookups by key, so an empty bucket costs 4 bytes.

use hashbrown::HashTable;
use std::hash::BuildHasher;

/// An item with a lookup key (a set member, a hash field).
pub trait Keyed {
    fn key(&self) -> &[u8];
}

#[derive(Clone, Debug)]
pub struct Indexed<T> {
    items: Vec<T>,
    index: HashTable<u32>,
    hasher: foldhash::fast::RandomState,
}

impl<T: Keyed> Default for Indexed<T> {
    fn default() -> Self {
        Indexed { items: Vec::new(), index: HashTable::new(), hasher: foldhash::fast::RandomState::default() }
    }
}

impl<T: Keyed> Indexed<T> {
    pub fn len(&self) -> usize {
        self.items.len()
    }
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
    pub fn items(&self) -> &[T] {
        &self.items
    }
    /// The item at `i`, mutably; the caller must not change its key.
    pub fn item_mut(&mut self, i: usize) -> &mut T {
        &mut self.items[i]
    }
    pub fn find(&self, key: &[u8]) -> Option<usize> {
        let items = &self.items;
        self.index.find(self.hasher.hash_one(key), |&i| items[i as usize].key() == key).map(|&i| i as usize)
    }
    /// Inserts `make()` under `key` when absent; when present, replaces the item only if
    /// `replace`. True when the key is new.
    pub fn upsert(&mut self, key: &[u8], replace: bool, make: impl FnOnce() -> T) -> bool {
        let hasher = self.hasher;
        let items = &mut self.items;
        match self.index.entry(hasher.hash_one(key), |&i| items[i as usize].key() == key, |&i| hasher.hash_one(items[i as usize].key())) {
            hashbrown::hash_table::Entry::Occupied(o) => {
                if replace {
                    items[*o.get() as usize] = make();
                }
                false
            }
            hashbrown::hash_table::Entry::Vacant(v) => {
                v.insert(items.len() as u32);
                items.push(make());
                true
            }
        }
    }
    /// Removes the item at `idx`; the last item moves into its place.
    pub fn remove_at(&mut self, idx: usize) -> T {
        let h = self.hasher.hash_one(self.items[idx].key());
        if let Ok(o) = self.index.find_entry(h, |&i| i as usize == idx) {
            o.remove();
        }
        let last = self.items.len() - 1;
        if idx != last {
            let hl = self.hasher.hash_one(self.items[last].key());
            if let Some(e) = self.index.find_mut(hl, |&i| i as usize == last) {
                *e = idx as u32;
            }
        }
        self.items.swap_remove(idx)
    }
    /// Bytes held by the vector and the index (not the items' own allocations).
    pub fn overhead_bytes(&self) -> usize {
        self.items.capacity() * std::mem::size_of::<T>() + self.index.capacity() * 5
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    impl Keyed for Vec<u8> {
        fn key(&self) -> &[u8] {
            self
        }
    }

    proptest! {
        #[test]
        fn behaves_like_a_set(ops in prop::collection::vec((any::<bool>(), 0u8..40), 0..300)) {
            let mut ix: Indexed<Vec<u8>> = Indexed::default();
            let mut model = BTreeSet::new();
            for (add, k) in ops {
                let k = vec![k];
                if add {
                    prop_assert_eq!(ix.upsert(&k, false, || k.clone()), model.insert(k.clone()));
                } else {
                    let removed = ix.find(&k).map(|i| ix.remove_at(i));
                    prop_assert_eq!(removed.is_some(), model.remove(&k));
                }
                prop_assert_eq!(ix.len(), model.len());
                for (i, item) in ix.items().iter().enumerate() {
                    prop_assert_eq!(ix.find(item), Some(i));
                }
            }
        }
    }
}
