//! The sorted set with Redis 7.0's two encodings: `listpack` (score/member entries packed in one
//! buffer in (score, member) order, linear operations) while it has at most
//! `zset-max-listpack-entries` members none longer than `zset-max-listpack-value`; `skiplist`
//! past that. ferrodis's full form is not a skiplist but plays its part with the same
//! complexities: an index map (member -> score, O(1)) plus an `OrderTree` of (score, item index)
//! in (score, member) order, so rank, range and updates are O(log n).

use super::hash::Limits;
use super::indexed::{Indexed, Keyed};
use super::ordertree::{OrderTree, Slot};
use super::SmallBytes;
use super::{get_varint, put_varint, splice};
use std::cmp::Ordering;

#[derive(Clone, Debug)]
pub enum ZSet {
    Pack(ZPack),
    Full(Box<ZFull>),
}

/// Entries packed in one exactly-sized allocation: the score's 8 bytes (little-endian f64), a
/// varint member length, the member.
#[derive(Clone, Debug, Default)]
pub struct ZPack {
    buf: Box<[u8]>,
    len: u32,
}

#[derive(Clone, Debug)]
pub struct ZItem {
    pub member: SmallBytes,
    pub score: f64,
}

impl Keyed for ZItem {
    fn key(&self) -> &[u8] {
        self.member.as_slice()
    }
}

#[derive(Clone, Debug, Default)]
pub struct ZFull {
    items: Indexed<ZItem>,
    tree: OrderTree,
}

/// Redis's order: by score, then by member bytes.
#[inline]
pub fn cmp_entry(s1: f64, m1: &[u8], s2: f64, m2: &[u8]) -> Ordering {
    s1.partial_cmp(&s2).unwrap_or(Ordering::Equal).then_with(|| m1.cmp(m2))
}

impl ZPack {
    /// Iterates (score, member, start offset, end offset) in order.
    fn entries(&self) -> impl Iterator<Item = (f64, &[u8], usize, usize)> + '_ {
        let mut pos = 0;
        let buf = &self.buf;
        std::iter::from_fn(move || {
            if pos >= buf.len() {
                return None;
            }
            let start = pos;
            let score = f64::from_le_bytes(buf[pos..pos + 8].try_into().expect("8 bytes"));
            pos += 8;
            let ml = get_varint(buf, &mut pos);
            let m = &buf[pos..pos + ml];
            pos += ml;
            Some((score, m, start, pos))
        })
    }
    fn find(&self, m: &[u8]) -> Option<(usize, f64, usize, usize)> {
        self.entries().enumerate().find(|(_, e)| e.1 == m).map(|(i, (s, _, a, b))| (i, s, a, b))
    }
    fn splice(&mut self, s: usize, e: usize, with: &[u8]) {
        splice(&mut self.buf, s, e, with)
    }
    fn insert(&mut self, m: &[u8], score: f64) {
        let at = self.entries().find(|e| cmp_entry(e.0, e.1, score, m) == Ordering::Greater).map_or(self.buf.len(), |e| e.2);
        let mut enc = Vec::with_capacity(m.len() + 10);
        enc.extend_from_slice(&score.to_le_bytes());
        put_varint(&mut enc, m.len());
        enc.extend_from_slice(m);
        self.splice(at, at, &enc);
        self.len += 1;
    }
}

impl ZFull {
    fn less(&self, s: &Slot, score: f64, m: &[u8]) -> bool {
        cmp_entry(s.score, self.items.items()[s.idx as usize].member.as_slice(), score, m) == Ordering::Less
    }
    fn rank_of(&self, score: f64, m: &[u8]) -> usize {
        self.tree.partition_point(|s| self.less(s, score, m))
    }
    fn insert_new(&mut self, m: &[u8], score: f64) {
        self.items.upsert(m, false, || ZItem { member: SmallBytes::new(m), score });
        let idx = (self.items.len() - 1) as u32;
        let r = self.rank_of(score, m);
        self.tree.insert_at(r, Slot { score, idx });
    }
    fn remove_idx(&mut self, i: usize) {
        let it = &self.items.items()[i];
        let r = self.rank_of(it.score, it.member.as_slice());
        self.tree.remove_at(r);
        let last = self.items.len() - 1;
        if i != last {
            // The last item will move into slot i: repoint its tree entry first.
            let lt = &self.items.items()[last];
            let lr = self.rank_of(lt.score, lt.member.as_slice());
            self.tree.set(lr, Slot { score: lt.score, idx: i as u32 });
        }
        self.items.remove_at(i);
    }
    fn entry(&self, s: Slot) -> (&[u8], f64) {
        (self.items.items()[s.idx as usize].member.as_slice(), s.score)
    }
}

impl Default for ZSet {
    fn default() -> Self {
        ZSet::Pack(ZPack::default())
    }
}

impl ZSet {
    /// An empty sorted set in the encoding Redis's `zsetTypeCreate` picks for the expected size
    /// and longest member.
    pub fn with_hint(size: usize, max_member: usize, lim: Limits) -> ZSet {
        if size <= lim.max_entries && max_member <= lim.max_value {
            ZSet::Pack(ZPack::default())
        } else {
            ZSet::Full(Box::default())
        }
    }
    /// Builds a set from entries already in order, choosing the encoding by its final size (Redis's
    /// `zsetConvertToListpackIfNeeded` for the STORE commands).
    pub fn from_sorted(entries: Vec<(Vec<u8>, f64)>, lim: Limits) -> ZSet {
        let max_member = entries.iter().map(|e| e.0.len()).max().unwrap_or(0);
        let mut z = ZSet::with_hint(entries.len(), max_member, lim);
        match &mut z {
            ZSet::Pack(p) => {
                let mut v = Vec::new();
                for (m, s) in &entries {
                    v.extend_from_slice(&s.to_le_bytes());
                    put_varint(&mut v, m.len());
                    v.extend_from_slice(m);
                }
                p.buf = v.into_boxed_slice();
                p.len = entries.len() as u32;
            }
            ZSet::Full(f) => {
                for (m, s) in entries {
                    f.items.upsert(&m, false, || ZItem { member: SmallBytes::new(&m), score: s });
                    let idx = (f.items.len() - 1) as u32;
                    let at = f.tree.len();
                    f.tree.insert_at(at, Slot { score: s, idx });
                }
            }
        }
        z
    }
    pub fn len(&self) -> usize {
        match self {
            ZSet::Pack(p) => p.len as usize,
            ZSet::Full(f) => f.items.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn encoding(&self) -> &'static str {
        match self {
            ZSet::Pack(_) => "listpack",
            ZSet::Full(_) => "skiplist",
        }
    }
    pub fn score(&self, m: &[u8]) -> Option<f64> {
        match self {
            ZSet::Pack(p) => p.find(m).map(|e| e.1),
            ZSet::Full(f) => f.items.find(m).map(|i| f.items.items()[i].score),
        }
    }
    /// The 0-based ascending rank of a member.
    pub fn rank(&self, m: &[u8]) -> Option<usize> {
        match self {
            ZSet::Pack(p) => p.find(m).map(|e| e.0),
            ZSet::Full(f) => f.items.find(m).map(|i| f.rank_of(f.items.items()[i].score, m)),
        }
    }
    /// Converts to the full form (Redis's SORT does this to a listpack sorted set).
    pub fn force_full(&mut self) {
        self.convert()
    }
    fn convert(&mut self) {
        if let ZSet::Pack(p) = self {
            let mut f = ZFull::default();
            for (s, m, _, _) in p.entries() {
                f.items.upsert(m, false, || ZItem { member: SmallBytes::new(m), score: s });
                let idx = (f.items.len() - 1) as u32;
                let at = f.tree.len();
                f.tree.insert_at(at, Slot { score: s, idx });
            }
            *self = ZSet::Full(Box::new(f));
        }
    }
    /// Sets a member's score (adding it when new); returns the old score.
    pub fn set(&mut self, m: &[u8], score: f64, lim: Limits) -> Option<f64> {
        match self {
            ZSet::Pack(p) => {
                let old = p.find(m);
                if let Some((_, s, a, b)) = old {
                    if s == score {
                        return Some(s);
                    }
                    p.splice(a, b, &[]);
                    p.len -= 1;
                } else if p.len as usize + 1 > lim.max_entries || m.len() > lim.max_value {
                    self.convert();
                    return self.set(m, score, lim);
                }
                p.insert(m, score);
                old.map(|o| o.1)
            }
            ZSet::Full(f) => match f.items.find(m) {
                Some(i) => {
                    let old = f.items.items()[i].score;
                    if old != score {
                        let r = f.rank_of(old, m);
                        f.tree.remove_at(r);
                        f.items.item_mut(i).score = score;
                        let r = f.rank_of(score, m);
                        f.tree.insert_at(r, Slot { score, idx: i as u32 });
                    }
                    Some(old)
                }
                None => {
                    f.insert_new(m, score);
                    None
                }
            },
        }
    }
    pub fn remove(&mut self, m: &[u8]) -> bool {
        match self {
            ZSet::Pack(p) => match p.find(m) {
                Some((_, _, a, b)) => {
                    p.splice(a, b, &[]);
                    p.len -= 1;
                    true
                }
                None => false,
            },
            ZSet::Full(f) => match f.items.find(m) {
                Some(i) => {
                    f.remove_idx(i);
                    true
                }
                None => false,
            },
        }
    }
    /// How many leading entries (in order) satisfy `pred(score, member)`; `pred` must hold on a
    /// prefix only (a range bound).
    pub fn count_while(&self, pred: impl Fn(f64, &[u8]) -> bool) -> usize {
        match self {
            ZSet::Pack(p) => p.entries().take_while(|e| pred(e.0, e.1)).count(),
            ZSet::Full(f) => f.tree.partition_point(|s| {
                let (m, sc) = f.entry(*s);
                pred(sc, m)
            }),
        }
    }
    /// Visits the entries at ranks `start..end` (backwards when `rev`) until `f` returns false.
    pub fn walk(&self, start: usize, end: usize, rev: bool, mut f: impl FnMut(&[u8], f64) -> bool) {
        let end = end.min(self.len());
        if start >= end {
            return;
        }
        match self {
            ZSet::Pack(p) => {
                let it = p.entries().skip(start).take(end - start);
                if rev {
                    for e in it.collect::<Vec<_>>().into_iter().rev() {
                        if !f(e.1, e.0) {
                            return;
                        }
                    }
                } else {
                    for e in it {
                        if !f(e.1, e.0) {
                            return;
                        }
                    }
                }
            }
            ZSet::Full(z) => z.tree.walk(start, end, rev, |s| {
                let (m, sc) = z.entry(s);
                f(m, sc)
            }),
        }
    }
    /// The entries at ranks `start..end`, in order.
    pub fn range(&self, start: usize, end: usize) -> Vec<(Vec<u8>, f64)> {
        let mut v = Vec::with_capacity(end.saturating_sub(start).min(self.len()));
        self.walk(start, end, false, |m, s| {
            v.push((m.to_vec(), s));
            true
        });
        v
    }
    /// The entry at a rank.
    pub fn get(&self, rank: usize) -> (Vec<u8>, f64) {
        match self {
            ZSet::Pack(p) => p.entries().nth(rank).map(|e| (e.1.to_vec(), e.0)).expect("rank in range"),
            ZSet::Full(f) => {
                let (m, s) = f.entry(f.tree.get(rank));
                (m.to_vec(), s)
            }
        }
    }
    /// Removes the entries at ranks `start..end`; returns them.
    pub fn remove_range(&mut self, start: usize, end: usize) -> Vec<(Vec<u8>, f64)> {
        let gone = self.range(start, end);
        match self {
            ZSet::Pack(p) if !gone.is_empty() => {
                let ents: Vec<(usize, usize)> = p.entries().skip(start).take(gone.len()).map(|e| (e.2, e.3)).collect();
                let (a, b) = (ents[0].0, ents[ents.len() - 1].1);
                p.splice(a, b, &[]);
                p.len -= gone.len() as u32;
            }
            ZSet::Pack(_) => {}
            ZSet::Full(_) => {
                for (m, _) in &gone {
                    self.remove(m);
                }
            }
        }
        gone
    }
    /// All entries in order.
    pub fn entries(&self) -> Vec<(Vec<u8>, f64)> {
        self.range(0, self.len())
    }
    pub fn heap_size(&self) -> usize {
        match self {
            ZSet::Pack(p) => p.buf.len(),
            ZSet::Full(f) => {
                f.items.overhead_bytes() + f.items.items().iter().map(|i| i.member.heap_size()).sum::<usize>() + f.tree.heap_size()
            }
        }
    }
}

impl PartialEq for ZSet {
    fn eq(&self, o: &Self) -> bool {
        self.entries() == o.entries()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn model_sorted(m: &BTreeMap<Vec<u8>, f64>) -> Vec<(Vec<u8>, f64)> {
        let mut v: Vec<_> = m.iter().map(|(k, s)| (k.clone(), *s)).collect();
        v.sort_by(|a, b| cmp_entry(a.1, &a.0, b.1, &b.0));
        v
    }

    proptest! {
        #[test]
        fn behaves_like_a_model(ops in prop::collection::vec((0u8..3, 0u8..60, -5i8..5), 0..600), max in 0usize..20) {
            let lim = Limits { max_entries: max, max_value: 64 };
            let mut z = ZSet::with_hint(0, 0, lim);
            let mut model: BTreeMap<Vec<u8>, f64> = BTreeMap::new();
            for (op, k, s) in ops {
                let m = format!("m{k}").into_bytes();
                match op {
                    0 | 1 => prop_assert_eq!(z.set(&m, s as f64, lim), model.insert(m, s as f64)),
                    _ => prop_assert_eq!(z.remove(&m), model.remove(&m).is_some()),
                }
            }
            let want = model_sorted(&model);
            prop_assert_eq!(z.entries(), want.clone());
            prop_assert_eq!(z.len(), want.len());
            for (i, (m, s)) in want.iter().enumerate() {
                prop_assert_eq!(z.rank(m), Some(i));
                prop_assert_eq!(z.score(m), Some(*s));
                prop_assert_eq!(z.get(i), (m.clone(), *s));
            }
            prop_assert_eq!(z.count_while(|s, _| s < 0.0), want.iter().filter(|e| e.1 < 0.0).count());
            let mut back = Vec::new();
            z.walk(0, z.len(), true, |m, s| { back.push((m.to_vec(), s)); true });
            back.reverse();
            prop_assert_eq!(back, want.clone());
            if want.len() > 2 {
                let gone = z.remove_range(1, want.len() - 1);
                prop_assert_eq!(gone, want[1..want.len() - 1].to_vec());
                prop_assert_eq!(z.entries(), vec![want[0].clone(), want[want.len() - 1].clone()]);
            }
        }
    }

    #[test]
    fn converts_past_limits() {
        let lim = Limits { max_entries: 3, max_value: 5 };
        let mut z = ZSet::default();
        z.set(b"a", 1.0, lim);
        z.set(b"b", 2.0, lim);
        assert_eq!(z.encoding(), "listpack");
        z.set(b"long-member", 0.5, lim);
        assert_eq!(z.encoding(), "skiplist");
        assert_eq!(z.rank(b"long-member"), Some(0));
        let z2 = ZSet::from_sorted(vec![(b"x".to_vec(), 1.0)], lim);
        assert_eq!(z2.encoding(), "listpack");
    }
}
