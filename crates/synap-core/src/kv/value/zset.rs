//! Sorted-set values: packed `(score, member)` items while small, an order-statistic treap past that.

use std::hash::BuildHasher;

use hashbrown::HashTable;

use super::{fits_zset, hasher, pack, scan_positions, size_class, unpack};

const NIL: u32 = u32::MAX;

/// Orders (score, member) as Redis does: by score, then member bytes.
fn zcmp(a: (f64, &[u8]), b: (f64, &[u8])) -> std::cmp::Ordering {
    a.0.total_cmp(&b.0).then_with(|| a.1.cmp(b.1))
}

struct TNode {
    score: f64,
    member: Box<[u8]>,
    left: u32,
    right: u32,
    size: u32,
    prio: u32,
}

/// An order-statistic treap over (score, member) in an arena, with a member index.
pub(crate) struct ZBig {
    nodes: Vec<TNode>,
    free: Vec<u32>,
    root: u32,
    index: HashTable<u32>,
    seed: u64,
    bytes: usize,
}

impl ZBig {
    fn new() -> ZBig {
        ZBig {
            nodes: Vec::new(),
            free: Vec::new(),
            root: NIL,
            index: HashTable::new(),
            seed: 0x9e37_79b9_7f4a_7c15,
            bytes: 0,
        }
    }

    fn size(&self, t: u32) -> u32 {
        if t == NIL { 0 } else { self.nodes[t as usize].size }
    }

    fn update(&mut self, t: u32) {
        let (l, r) = (self.nodes[t as usize].left, self.nodes[t as usize].right);
        self.nodes[t as usize].size = 1 + self.size(l) + self.size(r);
    }

    fn key(&self, t: u32) -> (f64, &[u8]) {
        let n = &self.nodes[t as usize];
        (n.score, &n.member)
    }

    fn rotate_right(&mut self, t: u32) -> u32 {
        let l = self.nodes[t as usize].left;
        self.nodes[t as usize].left = self.nodes[l as usize].right;
        self.nodes[l as usize].right = t;
        self.update(t);
        self.update(l);
        l
    }

    fn rotate_left(&mut self, t: u32) -> u32 {
        let r = self.nodes[t as usize].right;
        self.nodes[t as usize].right = self.nodes[r as usize].left;
        self.nodes[r as usize].left = t;
        self.update(t);
        self.update(r);
        r
    }

    fn insert_at(&mut self, t: u32, n: u32) -> u32 {
        if t == NIL {
            return n;
        }
        let less = zcmp(self.key(n), self.key(t)).is_lt();
        if less {
            let l = self.insert_at(self.nodes[t as usize].left, n);
            self.nodes[t as usize].left = l;
            self.update(t);
            if self.nodes[l as usize].prio > self.nodes[t as usize].prio {
                return self.rotate_right(t);
            }
        } else {
            let r = self.insert_at(self.nodes[t as usize].right, n);
            self.nodes[t as usize].right = r;
            self.update(t);
            if self.nodes[r as usize].prio > self.nodes[t as usize].prio {
                return self.rotate_left(t);
            }
        }
        t
    }

    fn remove_at(&mut self, t: u32, target: u32) -> u32 {
        if t == NIL {
            return NIL;
        }
        if t == target {
            let (l, r) = (self.nodes[t as usize].left, self.nodes[t as usize].right);
            if l == NIL {
                return r;
            }
            if r == NIL {
                return l;
            }
            let t2 = if self.nodes[l as usize].prio > self.nodes[r as usize].prio {
                let t2 = self.rotate_right(t);
                let right = self.remove_at(self.nodes[t2 as usize].right, target);
                self.nodes[t2 as usize].right = right;
                t2
            } else {
                let t2 = self.rotate_left(t);
                let left = self.remove_at(self.nodes[t2 as usize].left, target);
                self.nodes[t2 as usize].left = left;
                t2
            };
            self.update(t2);
            return t2;
        }
        if zcmp(self.key(target), self.key(t)).is_lt() {
            let l = self.remove_at(self.nodes[t as usize].left, target);
            self.nodes[t as usize].left = l;
        } else {
            let r = self.remove_at(self.nodes[t as usize].right, target);
            self.nodes[t as usize].right = r;
        }
        self.update(t);
        t
    }

    fn find(&self, member: &[u8]) -> Option<u32> {
        let nodes = &self.nodes;
        self.index.find(hasher().hash_one(member), |&i| &nodes[i as usize].member[..] == member).copied()
    }

    fn score(&self, member: &[u8]) -> Option<f64> {
        self.find(member).map(|i| self.nodes[i as usize].score)
    }

    fn next_prio(&mut self) -> u32 {
        // xorshift64*
        self.seed ^= self.seed >> 12;
        self.seed ^= self.seed << 25;
        self.seed ^= self.seed >> 27;
        (self.seed.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32) as u32
    }

    fn set(&mut self, member: &[u8], score: f64) {
        if let Some(i) = self.find(member) {
            if self.nodes[i as usize].score == score {
                return;
            }
            self.root = self.remove_at(self.root, i);
            self.nodes[i as usize].score = score;
            self.nodes[i as usize].left = NIL;
            self.nodes[i as usize].right = NIL;
            self.nodes[i as usize].size = 1;
            self.root = self.insert_at(self.root, i);
            return;
        }
        let prio = self.next_prio();
        let node = TNode { score, member: Box::from(member), left: NIL, right: NIL, size: 1, prio };
        let i = match self.free.pop() {
            Some(i) => {
                self.nodes[i as usize] = node;
                i
            }
            None => {
                self.nodes.push(node);
                (self.nodes.len() - 1) as u32
            }
        };
        self.bytes += size_class(member.len()) + std::mem::size_of::<TNode>() + 5;
        let nodes = &self.nodes;
        self.index.insert_unique(hasher().hash_one(member), i, |&j| hasher().hash_one(&nodes[j as usize].member));
        self.root = self.insert_at(self.root, i);
    }

    fn remove(&mut self, member: &[u8]) -> bool {
        let Some(i) = self.find(member) else { return false };
        self.root = self.remove_at(self.root, i);
        let nodes = &self.nodes;
        if let Ok(e) = self.index.find_entry(hasher().hash_one(member), |&j| j == i) {
            e.remove();
        }
        let _ = nodes;
        self.bytes -= size_class(member.len()) + std::mem::size_of::<TNode>() + 5;
        self.nodes[i as usize].member = Box::default();
        self.nodes[i as usize].size = 0; // free: a live node's subtree holds at least itself
        self.free.push(i);
        true
    }

    /// One ZSCAN page over the arena's slots: a member keeps its slot while it stays, so a scan never
    /// skips one (see [`scan_positions`]).
    fn scan(&self, cursor: u64, count: usize, max_bytes: usize) -> (u64, Vec<(f64, &[u8])>) {
        let nodes = &self.nodes;
        scan_positions(
            nodes.len(),
            cursor,
            count,
            max_bytes,
            |i| (nodes[i].size > 0).then(|| (nodes[i].score, &nodes[i].member[..])),
            |(_, m)| m.len() + 40,
        )
    }

    /// Number of elements ordered before `key` (or before-or-equal when `inclusive`).
    fn count_before(&self, key: (f64, &[u8]), inclusive: bool) -> usize {
        let (mut t, mut n) = (self.root, 0usize);
        while t != NIL {
            let c = zcmp(self.key(t), key);
            if c.is_lt() || (inclusive && c.is_eq()) {
                n += self.size(self.nodes[t as usize].left) as usize + 1;
                t = self.nodes[t as usize].right;
            } else {
                t = self.nodes[t as usize].left;
            }
        }
        n
    }

    /// Number of elements with a score below `s` (or at most `s` when `inclusive`).
    fn count_score(&self, s: f64, inclusive: bool) -> usize {
        let (mut t, mut n) = (self.root, 0usize);
        while t != NIL {
            let ts = self.nodes[t as usize].score;
            if ts < s || (inclusive && ts == s) {
                n += self.size(self.nodes[t as usize].left) as usize + 1;
                t = self.nodes[t as usize].right;
            } else {
                t = self.nodes[t as usize].left;
            }
        }
        n
    }

    fn select(&self, mut k: usize) -> Option<(f64, &[u8])> {
        let mut t = self.root;
        while t != NIL {
            let l = self.size(self.nodes[t as usize].left) as usize;
            if k < l {
                t = self.nodes[t as usize].left;
            } else if k == l {
                return Some(self.key(t));
            } else {
                k -= l + 1;
                t = self.nodes[t as usize].right;
            }
        }
        None
    }

    /// Elements at ranks `start..end`, in order (an in-order walk from the start rank).
    fn range(&self, start: usize, end: usize) -> Vec<(f64, &[u8])> {
        let mut out = Vec::with_capacity(end.saturating_sub(start).min(1 << 16));
        // Descend to the start rank, keeping the path of nodes still to visit.
        let mut stack = Vec::new();
        let (mut t, mut k) = (self.root, start);
        while t != NIL {
            let l = self.size(self.nodes[t as usize].left) as usize;
            if k < l {
                stack.push(t);
                t = self.nodes[t as usize].left;
            } else if k == l {
                stack.push(t);
                break;
            } else {
                k -= l + 1;
                t = self.nodes[t as usize].right;
            }
        }
        while out.len() < end.saturating_sub(start) {
            let Some(t) = stack.pop() else { break };
            out.push(self.key(t));
            let mut c = self.nodes[t as usize].right;
            while c != NIL {
                stack.push(c);
                c = self.nodes[c as usize].left;
            }
        }
        out
    }

    fn len(&self) -> usize {
        self.size(self.root) as usize
    }
}

pub(crate) enum ZSetV {
    /// score (f64 bits, 8 bytes LE), member, ... sorted by (score, member)
    Small(Vec<u8>),
    Big(ZBig),
}

impl ZSetV {
    /// One ZSCAN page (see [`HashV::scan`]).
    pub fn scan(&self, cursor: u64, count: usize, max_bytes: usize) -> (u64, Vec<(f64, &[u8])>) {
        match self {
            ZSetV::Small(b) => (0, Self::small_items(b)),
            ZSetV::Big(z) => z.scan(cursor, count, max_bytes),
        }
    }

    fn small_items(b: &[u8]) -> Vec<(f64, &[u8])> {
        unpack(b)
            .chunks(2)
            .map(|p| (f64::from_bits(u64::from_le_bytes(p[0].try_into().expect("8 bytes"))), p[1]))
            .collect()
    }

    fn pack_items(items: &[(f64, &[u8])]) -> Vec<u8> {
        let scores: Vec<[u8; 8]> = items.iter().map(|(s, _)| s.to_bits().to_le_bytes()).collect();
        pack(items.iter().zip(&scores).flat_map(|((_, m), s)| [&s[..], *m]))
    }

    pub fn len(&self) -> usize {
        match self {
            ZSetV::Small(b) => unpack(b).len() / 2,
            ZSetV::Big(z) => z.len(),
        }
    }

    pub fn score(&self, m: &[u8]) -> Option<f64> {
        match self {
            ZSetV::Small(b) => Self::small_items(b).into_iter().find(|(_, x)| *x == m).map(|(s, _)| s),
            ZSetV::Big(z) => z.score(m),
        }
    }

    pub fn set(&mut self, m: &[u8], score: f64) {
        // A stored score of -0 reads back as 0, as in Redis (its stored form is the number's text).
        let score = score + 0.0;
        if let ZSetV::Small(b) = self {
            let mut items = Self::small_items(b);
            items.retain(|(_, x)| *x != m);
            let p = items.partition_point(|e| zcmp(*e, (score, m)).is_lt());
            items.insert(p, (score, m));
            let longest = items.iter().map(|(_, x)| x.len()).max().unwrap_or(0);
            if fits_zset(items.len(), longest) {
                *b = Self::pack_items(&items);
                return;
            }
            let mut z = ZBig::new();
            for (s, x) in items {
                z.set(x, s);
            }
            *self = ZSetV::Big(z);
            return;
        }
        let ZSetV::Big(z) = self else { unreachable!() };
        z.set(m, score);
    }

    pub fn remove(&mut self, m: &[u8]) -> bool {
        match self {
            ZSetV::Small(b) => {
                let mut items = Self::small_items(b);
                let n = items.len();
                items.retain(|(_, x)| *x != m);
                let removed = items.len() != n;
                *b = Self::pack_items(&items);
                removed
            }
            ZSetV::Big(z) => z.remove(m),
        }
    }

    /// Rank of `(score, member)` (elements before it).
    pub fn rank(&self, m: &[u8]) -> Option<usize> {
        let s = self.score(m)?;
        Some(match self {
            ZSetV::Small(b) => Self::small_items(b).iter().position(|(_, x)| *x == m).expect("present"),
            ZSetV::Big(z) => z.count_before((s, m), false),
        })
    }

    /// Elements with a score below `s` (or at most `s`).
    pub fn count_score(&self, s: f64, inclusive: bool) -> usize {
        match self {
            ZSetV::Small(b) => Self::small_items(b).iter().filter(|(x, _)| *x < s || (inclusive && *x == s)).count(),
            ZSetV::Big(z) => z.count_score(s, inclusive),
        }
    }

    /// Elements ordered before `(score, member)` (or before-or-equal).
    pub fn count_before(&self, key: (f64, &[u8]), inclusive: bool) -> usize {
        match self {
            ZSetV::Small(b) => Self::small_items(b)
                .iter()
                .filter(|e| {
                    let c = zcmp(**e, key);
                    c.is_lt() || (inclusive && c.is_eq())
                })
                .count(),
            ZSetV::Big(z) => z.count_before(key, inclusive),
        }
    }

    /// Elements at ranks `start..end`.
    pub fn range(&self, start: usize, end: usize) -> Vec<(f64, &[u8])> {
        match self {
            ZSetV::Small(b) => Self::small_items(b).into_iter().skip(start).take(end.saturating_sub(start)).collect(),
            ZSetV::Big(z) => z.range(start, end),
        }
    }

    pub fn at(&self, rank: usize) -> Option<(f64, &[u8])> {
        match self {
            ZSetV::Small(b) => Self::small_items(b).get(rank).copied(),
            ZSetV::Big(z) => z.select(rank),
        }
    }

    pub(crate) fn mem(&self) -> usize {
        match self {
            ZSetV::Small(b) => size_class(b.capacity()),
            ZSetV::Big(z) => z.bytes + z.index.capacity() * 5,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn treap_ranks_and_ranges_match_a_sorted_vec() {
        let mut z = ZBig::new();
        let mut model: Vec<(f64, Vec<u8>)> = Vec::new();
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        use rand::{Rng, SeedableRng};
        for step in 0..4000 {
            let m = format!("m{}", rng.random_range(0..500)).into_bytes();
            if rng.random_range(0..3) == 0 {
                z.remove(&m);
                model.retain(|(_, x)| *x != m);
            } else {
                let s = rng.random_range(0..50) as f64;
                z.set(&m, s);
                model.retain(|(_, x)| *x != m);
                model.push((s, m));
            }
            if step % 97 == 0 {
                model.sort_by(|a, b| zcmp((a.0, &a.1), (b.0, &b.1)));
                assert_eq!(z.len(), model.len());
                let all: Vec<(f64, Vec<u8>)> = z.range(0, z.len()).into_iter().map(|(s, m)| (s, m.to_vec())).collect();
                assert_eq!(all, model);
                for (i, (s, m)) in model.iter().enumerate() {
                    assert_eq!(z.count_before((*s, m), false), i);
                    assert_eq!(z.select(i).map(|(a, b)| (a, b.to_vec())), Some((*s, m.clone())));
                }
                let below = model.iter().filter(|(s, _)| *s < 20.0).count();
                assert_eq!(z.count_score(20.0, false), below);
                assert_eq!(z.range(3, 10).len(), 7.min(model.len().saturating_sub(3)));
            }
        }
    }
}
