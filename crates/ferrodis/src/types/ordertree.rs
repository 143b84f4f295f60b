//! `OrderTree`: a sequence of `Slot`s in a B+tree whose inner nodes count their subtrees, so
//! getting, inserting and removing at a rank, and finding the boundary of a sorted prefix
//! (`partition_point`), are O(log n). The sorted set keeps its (score, member) order in it; the
//! tree itself only knows ranks, the caller keeps the order (it inserts at the rank the order
//! gives). Each child also remembers its last slot, so a partition point needs no descent into
//! children that lie wholly before it.

const LEAF_CAP: usize = 64;
const INNER_CAP: usize = 32;

/// A score and the index of its member in the sorted set's item table.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Slot {
    pub score: f64,
    pub idx: u32,
}

#[derive(Clone, Debug)]
enum Node {
    Leaf(Vec<Slot>),
    Inner(Vec<Child>),
}

#[derive(Clone, Debug)]
struct Child {
    count: usize,
    last: Slot,
    node: Box<Node>,
}

impl Node {
    fn count(&self) -> usize {
        match self {
            Node::Leaf(v) => v.len(),
            Node::Inner(c) => c.iter().map(|c| c.count).sum(),
        }
    }
    fn width(&self) -> usize {
        match self {
            Node::Leaf(v) => v.len(),
            Node::Inner(c) => c.len(),
        }
    }
    fn cap(&self) -> usize {
        match self {
            Node::Leaf(_) => LEAF_CAP,
            Node::Inner(_) => INNER_CAP,
        }
    }
    /// The last slot of a non-empty node.
    fn last(&self) -> Slot {
        match self {
            Node::Leaf(v) => *v.last().expect("non-empty leaf"),
            Node::Inner(c) => c.last().expect("non-empty inner node").last,
        }
    }
    fn child(node: Node) -> Child {
        Child { count: node.count(), last: node.last(), node: Box::new(node) }
    }
}

/// Finds the child holding rank `r` of an inner node; `end_ok` lets a rank equal to a child's
/// count land at that child's end (insertion). Returns (child index, rank within it).
fn locate(ch: &[Child], mut r: usize, end_ok: bool) -> (usize, usize) {
    let mut i = 0;
    while i + 1 < ch.len() && (r > ch[i].count || (!end_ok && r == ch[i].count)) {
        r -= ch[i].count;
        i += 1;
    }
    (i, r)
}

fn insert_rec(node: &mut Node, rank: usize, slot: Slot) -> Option<Node> {
    match node {
        Node::Leaf(v) => {
            v.insert(rank, slot);
            (v.len() > LEAF_CAP).then(|| Node::Leaf(v.split_off(v.len() / 2)))
        }
        Node::Inner(ch) => {
            let (i, r) = locate(ch, rank, true);
            let split = insert_rec(&mut ch[i].node, r, slot);
            ch[i].count += 1;
            if let Some(right) = split {
                let right = Node::child(right);
                ch[i].count -= right.count;
                ch.insert(i + 1, right);
            }
            ch[i].last = ch[i].node.last();
            (ch.len() > INNER_CAP).then(|| Node::Inner(ch.split_off(ch.len() / 2)))
        }
    }
}

fn remove_rec(node: &mut Node, rank: usize) -> Slot {
    match node {
        Node::Leaf(v) => v.remove(rank),
        Node::Inner(ch) => {
            let (i, r) = locate(ch, rank, false);
            let s = remove_rec(&mut ch[i].node, r);
            ch[i].count -= 1;
            if ch[i].count > 0 {
                ch[i].last = ch[i].node.last();
            }
            rebalance(ch, i);
            s
        }
    }
}

/// After a removal under child `i`: a child below a quarter of its capacity is merged with a
/// neighbour when both fit in one node, or shares the neighbour's items evenly otherwise.
fn rebalance(ch: &mut Vec<Child>, i: usize) {
    let node = &ch[i].node;
    if ch.len() < 2 || node.width() >= node.cap() / 4 {
        return;
    }
    let (a, b) = if i + 1 < ch.len() { (i, i + 1) } else { (i - 1, i) };
    let right = ch.remove(b);
    let tail = match (&mut *ch[a].node, *right.node) {
        (Node::Leaf(l), Node::Leaf(mut r)) => {
            l.append(&mut r);
            (l.len() > LEAF_CAP).then(|| Node::Leaf(l.split_off(l.len() / 2)))
        }
        (Node::Inner(l), Node::Inner(mut r)) => {
            l.append(&mut r);
            (l.len() > INNER_CAP).then(|| Node::Inner(l.split_off(l.len() / 2)))
        }
        _ => unreachable!("siblings are at the same depth"),
    };
    ch[a].count = ch[a].node.count();
    ch[a].last = ch[a].node.last();
    if let Some(t) = tail {
        ch.insert(b, Node::child(t));
    }
}

fn set_rec(node: &mut Node, rank: usize, slot: Slot) {
    match node {
        Node::Leaf(v) => v[rank] = slot,
        Node::Inner(ch) => {
            let (i, r) = locate(ch, rank, false);
            set_rec(&mut ch[i].node, r, slot);
            ch[i].last = ch[i].node.last();
        }
    }
}

fn walk(node: &Node, start: usize, end: usize, rev: bool, f: &mut dyn FnMut(Slot) -> bool) -> bool {
    match node {
        Node::Leaf(v) => {
            let s = &v[start..end];
            if rev {
                s.iter().rev().all(|x| f(*x))
            } else {
                s.iter().all(|x| f(*x))
            }
        }
        Node::Inner(ch) => {
            let mut spans = Vec::with_capacity(ch.len());
            let mut off = 0;
            for c in ch {
                let (lo, hi) = (start.max(off), end.min(off + c.count));
                if lo < hi {
                    spans.push((&c.node, lo - off, hi - off));
                }
                off += c.count;
            }
            if rev {
                spans.into_iter().rev().all(|(n, lo, hi)| walk(n, lo, hi, rev, f))
            } else {
                spans.into_iter().all(|(n, lo, hi)| walk(n, lo, hi, rev, f))
            }
        }
    }
}

#[derive(Clone, Debug)]
pub struct OrderTree {
    root: Node,
    len: usize,
}

impl Default for OrderTree {
    fn default() -> Self {
        OrderTree { root: Node::Leaf(Vec::new()), len: 0 }
    }
}

impl OrderTree {
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn insert_at(&mut self, rank: usize, slot: Slot) {
        assert!(rank <= self.len);
        if let Some(right) = insert_rec(&mut self.root, rank, slot) {
            let left = std::mem::replace(&mut self.root, Node::Leaf(Vec::new()));
            self.root = Node::Inner(vec![Node::child(left), Node::child(right)]);
        }
        self.len += 1;
    }
    pub fn remove_at(&mut self, rank: usize) -> Slot {
        assert!(rank < self.len);
        let s = remove_rec(&mut self.root, rank);
        self.len -= 1;
        loop {
            match &mut self.root {
                Node::Inner(ch) if ch.len() == 1 => self.root = *ch.pop().expect("one child").node,
                Node::Inner(ch) if ch.is_empty() => self.root = Node::Leaf(Vec::new()),
                _ => break,
            }
        }
        s
    }
    pub fn get(&self, mut rank: usize) -> Slot {
        assert!(rank < self.len);
        let mut node = &self.root;
        loop {
            match node {
                Node::Leaf(v) => return v[rank],
                Node::Inner(ch) => {
                    let (i, r) = locate(ch, rank, false);
                    node = &ch[i].node;
                    rank = r;
                }
            }
        }
    }
    pub fn set(&mut self, rank: usize, slot: Slot) {
        assert!(rank < self.len);
        set_rec(&mut self.root, rank, slot);
    }
    /// The number of leading slots for which `pred` holds (`pred` must be true on a prefix of
    /// the sequence and false after it, as with `slice::partition_point`).
    pub fn partition_point(&self, pred: impl Fn(&Slot) -> bool) -> usize {
        let (mut node, mut acc) = (&self.root, 0);
        loop {
            match node {
                Node::Leaf(v) => return acc + v.partition_point(&pred),
                Node::Inner(ch) => {
                    let mut i = 0;
                    while i + 1 < ch.len() && pred(&ch[i].last) {
                        acc += ch[i].count;
                        i += 1;
                    }
                    node = &ch[i].node;
                }
            }
        }
    }
    /// Visits the slots at ranks `start..end` (backwards when `rev`) until `f` returns false.
    pub fn walk(&self, start: usize, end: usize, rev: bool, mut f: impl FnMut(Slot) -> bool) {
        let end = end.min(self.len);
        if start < end {
            walk(&self.root, start, end, rev, &mut f);
        }
    }
    /// Bytes held by the nodes.
    pub fn heap_size(&self) -> usize {
        fn size(n: &Node) -> usize {
            match n {
                Node::Leaf(v) => v.capacity() * std::mem::size_of::<Slot>(),
                Node::Inner(c) => {
                    c.capacity() * std::mem::size_of::<Child>()
                        + c.iter().map(|c| std::mem::size_of::<Node>() + size(&c.node)).sum::<usize>()
                }
            }
        }
        size(&self.root)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn slot(i: u32) -> Slot {
        Slot { score: i as f64, idx: i }
    }

    fn check(t: &OrderTree, model: &[Slot]) {
        assert_eq!(t.len(), model.len());
        let mut seen = Vec::new();
        t.walk(0, t.len(), false, |s| {
            seen.push(s);
            true
        });
        assert_eq!(seen, model);
        let mut back = Vec::new();
        t.walk(0, t.len(), true, |s| {
            back.push(s);
            true
        });
        back.reverse();
        assert_eq!(back, model);
        for (i, s) in model.iter().enumerate() {
            assert_eq!(t.get(i), *s);
        }
    }

    proptest! {
        #[test]
        fn behaves_like_a_vec(ops in prop::collection::vec((0u8..4, any::<u16>()), 0..2000)) {
            let mut t = OrderTree::default();
            let mut model: Vec<Slot> = Vec::new();
            for (n, (op, x)) in ops.into_iter().enumerate() {
                match op {
                    0 | 1 => {
                        let r = x as usize % (model.len() + 1);
                        t.insert_at(r, slot(n as u32));
                        model.insert(r, slot(n as u32));
                    }
                    2 if !model.is_empty() => {
                        let r = x as usize % model.len();
                        prop_assert_eq!(t.remove_at(r), model.remove(r));
                    }
                    3 if !model.is_empty() => {
                        let r = x as usize % model.len();
                        t.set(r, slot(100_000 + n as u32));
                        model[r] = slot(100_000 + n as u32);
                    }
                    _ => {}
                }
            }
            check(&t, &model);
        }

        #[test]
        fn sorted_partition_points(keys in prop::collection::vec(0u32..500, 0..1500), probe in 0u32..520) {
            let mut t = OrderTree::default();
            let mut model: Vec<Slot> = Vec::new();
            for k in keys {
                let r = t.partition_point(|s| s.idx < k);
                prop_assert_eq!(r, model.partition_point(|s| s.idx < k));
                t.insert_at(r, slot(k));
                model.insert(r, slot(k));
            }
            prop_assert_eq!(t.partition_point(|s| s.idx <= probe), model.partition_point(|s| s.idx <= probe));
            // Remove every other element, then check again.
            let mut i = 0;
            while i < model.len() {
                t.remove_at(i);
                model.remove(i);
                i += 1;
            }
            check(&t, &model);
            prop_assert_eq!(t.partition_point(|s| s.idx < probe), model.partition_point(|s| s.idx < probe));
        }
    }

    #[test]
    fn large_sequence_and_drain() {
        let mut t = OrderTree::default();
        for i in 0..100_000u32 {
            t.insert_at(i as usize, slot(i));
        }
        assert_eq!(t.partition_point(|s| s.idx < 77_777), 77_777);
        for i in (0..100_000usize).rev().step_by(3) {
            t.remove_at(i.min(t.len() - 1));
        }
        while !t.is_empty() {
            t.remove_at(0);
        }
        assert!(matches!(t.root, Node::Leaf(ref v) if v.is_empty()));
    }
}
