//! Collection values: hashes, lists, sets and sorted sets, each with a compact encoding for small
//! collections and a general one past a size threshold (as Redis's listpack and hashtable/quicklist/
//! skiplist encodings).
//!
//! - Compact ("packed"): one `Vec<u8>` of length-prefixed items (varint length + bytes), read and rewritten
//!   whole; used while a collection has at most [`PACK_MAX_ITEMS`] entries of at most [`PACK_MAX_BYTES`].
//! - General: hash -> a hash table of `[field_len][field][value]` blobs; set -> a hash set; list -> a deque;
//!   sorted set -> an order-statistic treap (rank and score lookups in O(log n)) plus a member index.
//!
//! Every list element carries an `idx` (i64), increasing from head to tail: list mutations name elements by
//! it (push at idx, delete idx, set idx), so replaying them is idempotent, as the fuzzy-snapshot rule of
//! `mutation` requires.

use std::collections::VecDeque;
use std::hash::BuildHasher;

use foldhash::fast::FixedState;
use hashbrown::HashTable;

use super::shard::size_class;

pub const PACK_MAX_ITEMS: usize = 128;
pub const PACK_MAX_BYTES: usize = 64;
const NIL: u32 = u32::MAX;

fn hasher() -> FixedState {
    FixedState::with_seed(0x5eed_c011)
}

// ---------------------------------------------------------------------------------------------------------
// Packed item sequences.

fn put_varint(out: &mut Vec<u8>, mut n: usize) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn get_varint(b: &[u8], pos: &mut usize) -> usize {
    let (mut n, mut shift) = (0usize, 0);
    loop {
        let byte = b[*pos];
        *pos += 1;
        n |= ((byte & 0x7f) as usize) << shift;
        if byte < 0x80 {
            return n;
        }
        shift += 7;
    }
}

/// The items of a packed buffer with their byte ranges, without allocating.
fn pack_items(b: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    let mut pos = 0;
    std::iter::from_fn(move || {
        if pos >= b.len() {
            return None;
        }
        let n = get_varint(b, &mut pos);
        let start = pos;
        pos += n;
        Some((start, &b[start..pos]))
    })
}

/// The items of a packed buffer.
pub(crate) fn unpack(b: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < b.len() {
        let n = get_varint(b, &mut pos);
        out.push(&b[pos..pos + n]);
        pos += n;
    }
    out
}

pub(crate) fn pack<'a>(items: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    for it in items {
        put_varint(&mut out, it.len());
        out.extend_from_slice(it);
    }
    out
}

fn fits_pack(items: usize, longest: usize) -> bool {
    items <= PACK_MAX_ITEMS && longest <= PACK_MAX_BYTES
}

// ---------------------------------------------------------------------------------------------------------
// Hash.

pub(crate) enum HashV {
    /// field, value, field, value, ...
    Small(Vec<u8>),
    /// `[field_len:u32][field][value]` blobs in a dense vector with a hash index of positions: a removal
    /// moves only the last blob, so a cursor walking positions downwards (HSCAN) never skips a field that
    /// stays.
    Big { items: Vec<Box<[u8]>>, index: HashTable<u32>, bytes: usize },
}

/// A hash field and its value.
pub(crate) type FieldValue<'a> = (&'a [u8], &'a [u8]);

/// One page of a positional scan (HSCAN, SSCAN, ZSCAN over the general encodings): from `cursor` (0: the
/// start; otherwise the positions below the cursor not visited yet), walking `count` positions
/// downwards, and stopping early once the page holds `max_bytes` (as `size` counts them). Returns the
/// next cursor (0: done) and the page.
fn scan_positions<T>(
    len: usize,
    cursor: u64,
    count: usize,
    max_bytes: usize,
    item: impl Fn(usize) -> Option<T>,
    size: impl Fn(&T) -> usize,
) -> (u64, Vec<T>) {
    let top = if cursor == 0 { len } else { (cursor as usize).min(len) };
    let bottom = top.saturating_sub(count.max(1));
    let mut page = Vec::new();
    let mut bytes = 0;
    let mut pos = top;
    while pos > bottom {
        pos -= 1;
        if let Some(t) = item(pos) {
            bytes += size(&t);
            page.push(t);
        }
        if max_bytes > 0 && bytes >= max_bytes {
            break;
        }
    }
    (pos as u64, page)
}

fn field_of(blob: &[u8]) -> &[u8] {
    let n = u32::from_le_bytes(blob[..4].try_into().expect("4 bytes")) as usize;
    &blob[4..4 + n]
}

fn value_of(blob: &[u8]) -> &[u8] {
    let n = u32::from_le_bytes(blob[..4].try_into().expect("4 bytes")) as usize;
    &blob[4 + n..]
}

fn hash_blob(field: &[u8], value: &[u8]) -> Box<[u8]> {
    let mut b = Vec::with_capacity(4 + field.len() + value.len());
    b.extend_from_slice(&(field.len() as u32).to_le_bytes());
    b.extend_from_slice(field);
    b.extend_from_slice(value);
    b.into_boxed_slice()
}

impl HashV {
    pub fn len(&self) -> usize {
        match self {
            HashV::Small(b) => pack_items(b).count() / 2,
            HashV::Big { items, .. } => items.len(),
        }
    }

    fn find(items: &[Box<[u8]>], index: &HashTable<u32>, field: &[u8]) -> Option<usize> {
        index.find(hasher().hash_one(field), |&i| field_of(&items[i as usize]) == field).map(|&i| i as usize)
    }

    pub fn get(&self, field: &[u8]) -> Option<&[u8]> {
        match self {
            HashV::Small(b) => {
                let mut it = pack_items(b);
                while let (Some((_, f)), Some((_, v))) = (it.next(), it.next()) {
                    if f == field {
                        return Some(v);
                    }
                }
                None
            }
            HashV::Big { items, index, .. } => Self::find(items, index, field).map(|i| value_of(&items[i])),
        }
    }

    pub fn pairs(&self) -> Vec<(&[u8], &[u8])> {
        match self {
            HashV::Small(b) => unpack(b).chunks(2).map(|p| (p[0], p[1])).collect(),
            HashV::Big { items, .. } => items.iter().map(|e| (field_of(e), value_of(e))).collect(),
        }
    }

    /// One HSCAN page: the compact encoding answers whole (as Redis does for its listpacks); the general one
    /// a page of positions (see [`scan_positions`]).
    pub fn scan(&self, cursor: u64, count: usize, max_bytes: usize) -> (u64, Vec<FieldValue<'_>>) {
        match self {
            HashV::Small(_) => (0, self.pairs()),
            HashV::Big { items, .. } => scan_positions(
                items.len(),
                cursor,
                count,
                max_bytes,
                |i| Some((field_of(&items[i]), value_of(&items[i]))),
                |(f, v)| f.len() + v.len() + 32,
            ),
        }
    }

    fn push_big(items: &mut Vec<Box<[u8]>>, index: &mut HashTable<u32>, bytes: &mut usize, f: &[u8], v: &[u8]) {
        let blob = hash_blob(f, v);
        *bytes += size_class(blob.len()) + 20;
        let pos = items.len() as u32;
        items.push(blob);
        index.insert_unique(hasher().hash_one(f), pos, |&i| hasher().hash_one(field_of(&items[i as usize])));
    }

    pub fn set(&mut self, field: &[u8], value: &[u8]) {
        if let HashV::Small(b) = self {
            // Same-length value over an existing field: overwrite in place.
            let found = {
                let mut it = pack_items(b);
                let mut found = None;
                while let (Some((_, f)), Some((vs, v))) = (it.next(), it.next()) {
                    if f == field {
                        found = Some((vs, v.len()));
                        break;
                    }
                }
                found
            };
            if let Some((vs, len)) = found
                && len == value.len()
            {
                b[vs..vs + len].copy_from_slice(value);
                return;
            }
            let items = unpack(b);
            let mut pairs: Vec<(&[u8], &[u8])> = items.chunks(2).map(|p| (p[0], p[1])).collect();
            match pairs.iter_mut().find(|p| p.0 == field) {
                Some(p) => p.1 = value,
                None => pairs.push((field, value)),
            }
            let longest = pairs.iter().map(|(f, v)| f.len().max(v.len())).max().unwrap_or(0);
            if fits_pack(pairs.len(), longest) {
                *b = pack(pairs.iter().flat_map(|(f, v)| [*f, *v]));
                return;
            }
            let (mut items, mut index, mut bytes) = (Vec::with_capacity(pairs.len()), HashTable::new(), 0);
            for (f, v) in pairs {
                Self::push_big(&mut items, &mut index, &mut bytes, f, v);
            }
            *self = HashV::Big { items, index, bytes };
            return;
        }
        let HashV::Big { items, index, bytes } = self else { unreachable!() };
        match Self::find(items, index, field) {
            Some(i) => {
                let blob = hash_blob(field, value);
                *bytes = *bytes + size_class(blob.len()) - size_class(items[i].len());
                items[i] = blob;
            }
            None => Self::push_big(items, index, bytes, field, value),
        }
    }

    pub fn del(&mut self, field: &[u8]) -> bool {
        match self {
            HashV::Small(b) => {
                let items = unpack(b);
                let before = items.len();
                let kept: Vec<&[u8]> = items.chunks(2).filter(|p| p[0] != field).flatten().copied().collect();
                let removed = kept.len() != before;
                *b = pack(kept);
                removed
            }
            HashV::Big { items, index, bytes } => {
                let Some(pos) = Self::find(items, index, field) else { return false };
                let _ = index.find_entry(hasher().hash_one(field), |&i| i as usize == pos).map(|e| e.remove());
                let last = items.len() - 1;
                let blob = items.swap_remove(pos);
                if pos != last {
                    let moved = hasher().hash_one(field_of(&items[pos]));
                    if let Some(slot) = index.find_mut(moved, |&i| i as usize == last) {
                        *slot = pos as u32;
                    }
                }
                *bytes -= size_class(blob.len()) + 20;
                true
            }
        }
    }

    fn mem(&self) -> usize {
        match self {
            HashV::Small(b) => size_class(b.capacity()),
            HashV::Big { items, index, bytes } => bytes + items.capacity() * 16 + index.capacity() * 5,
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// Set.

pub(crate) enum SetV {
    Small(Vec<u8>),
    /// Members in a dense vector (O(1) random picks, as SPOP needs) with a hash index of positions.
    Big {
        items: Vec<Box<[u8]>>,
        index: HashTable<u32>,
        bytes: usize,
    },
}

impl SetV {
    pub fn len(&self) -> usize {
        match self {
            SetV::Small(b) => pack_items(b).count(),
            SetV::Big { items, .. } => items.len(),
        }
    }

    fn find(items: &[Box<[u8]>], index: &HashTable<u32>, m: &[u8]) -> Option<usize> {
        index.find(hasher().hash_one(m), |&i| &items[i as usize][..] == m).map(|&i| i as usize)
    }

    pub fn contains(&self, m: &[u8]) -> bool {
        match self {
            SetV::Small(b) => pack_items(b).any(|(_, x)| x == m),
            SetV::Big { items, index, .. } => Self::find(items, index, m).is_some(),
        }
    }

    pub fn members(&self) -> Vec<&[u8]> {
        match self {
            SetV::Small(b) => unpack(b),
            SetV::Big { items, .. } => items.iter().map(|m| &m[..]).collect(),
        }
    }

    /// One SSCAN page (see [`HashV::scan`]).
    pub fn scan(&self, cursor: u64, count: usize, max_bytes: usize) -> (u64, Vec<&[u8]>) {
        match self {
            SetV::Small(_) => (0, self.members()),
            SetV::Big { items, .. } => {
                scan_positions(items.len(), cursor, count, max_bytes, |i| Some(&items[i][..]), |m| m.len() + 16)
            }
        }
    }

    /// A member at a uniformly random position (SPOP, SRANDMEMBER).
    pub fn random(&self, rng: &mut impl rand::Rng) -> Option<&[u8]> {
        match self {
            SetV::Small(b) => {
                let items = unpack(b);
                (!items.is_empty()).then(|| items[rng.random_range(0..items.len())])
            }
            SetV::Big { items, .. } => (!items.is_empty()).then(|| &items[rng.random_range(0..items.len())][..]),
        }
    }

    fn push_big(items: &mut Vec<Box<[u8]>>, index: &mut HashTable<u32>, bytes: &mut usize, m: &[u8]) {
        *bytes += size_class(m.len()) + 20;
        let pos = items.len() as u32;
        items.push(Box::from(m));
        index.insert_unique(hasher().hash_one(m), pos, |&i| hasher().hash_one(&items[i as usize]));
    }

    pub fn add(&mut self, m: &[u8]) -> bool {
        if let SetV::Small(b) = self {
            if pack_items(b).any(|(_, x)| x == m) {
                return false;
            }
            let mut members = unpack(b);
            members.push(m);
            let longest = members.iter().map(|i| i.len()).max().unwrap_or(0);
            if fits_pack(members.len(), longest) {
                *b = pack(members);
                return true;
            }
            let (mut items, mut index, mut bytes) = (Vec::with_capacity(members.len()), HashTable::new(), 0);
            for i in members {
                Self::push_big(&mut items, &mut index, &mut bytes, i);
            }
            *self = SetV::Big { items, index, bytes };
            return true;
        }
        let SetV::Big { items, index, bytes } = self else { unreachable!() };
        if Self::find(items, index, m).is_some() {
            return false;
        }
        Self::push_big(items, index, bytes, m);
        true
    }

    pub fn remove(&mut self, m: &[u8]) -> bool {
        match self {
            SetV::Small(b) => {
                let members = unpack(b);
                let n = members.len();
                let kept: Vec<&[u8]> = members.into_iter().filter(|i| *i != m).collect();
                let removed = kept.len() != n;
                *b = pack(kept);
                removed
            }
            SetV::Big { items, index, bytes } => {
                let Some(pos) = Self::find(items, index, m) else { return false };
                let _ = index.find_entry(hasher().hash_one(m), |&i| i as usize == pos).map(|e| e.remove());
                let last = items.len() - 1;
                items.swap_remove(pos);
                if pos != last {
                    let moved = hasher().hash_one(&items[pos]);
                    if let Some(slot) = index.find_mut(moved, |&i| i as usize == last) {
                        *slot = pos as u32;
                    }
                }
                *bytes -= size_class(m.len()) + 20;
                true
            }
        }
    }

    fn mem(&self) -> usize {
        match self {
            SetV::Small(b) => size_class(b.capacity()),
            SetV::Big { items, index, bytes } => bytes + items.capacity() * 16 + index.capacity() * 5,
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// List.

pub(crate) enum ListV {
    /// idx (8 bytes, LE), value, idx, value, ...
    Small(Vec<u8>),
    Big {
        items: VecDeque<(i64, Box<[u8]>)>,
        bytes: usize,
    },
}

impl ListV {
    pub fn len(&self) -> usize {
        match self {
            ListV::Small(b) => unpack(b).len() / 2,
            ListV::Big { items, .. } => items.len(),
        }
    }

    /// (idx, value) pairs, head to tail.
    pub fn items(&self) -> Vec<(i64, &[u8])> {
        match self {
            ListV::Small(b) => {
                unpack(b).chunks(2).map(|p| (i64::from_le_bytes(p[0].try_into().expect("8 bytes")), p[1])).collect()
            }
            ListV::Big { items, .. } => items.iter().map(|(i, v)| (*i, &v[..])).collect(),
        }
    }

    /// The element at position `pos` (0 = head).
    pub fn at(&self, pos: usize) -> Option<(i64, &[u8])> {
        match self {
            ListV::Small(_) => self.items().get(pos).copied(),
            ListV::Big { items, .. } => items.get(pos).map(|(i, v)| (*i, &v[..])),
        }
    }

    /// Elements from `start` to `end` inclusive (positions, already clamped by the caller).
    pub fn range(&self, start: usize, end: usize) -> Vec<(i64, &[u8])> {
        match self {
            ListV::Small(_) => self.items().into_iter().skip(start).take(end + 1 - start).collect(),
            ListV::Big { items, .. } => items.range(start..=end).map(|(i, v)| (*i, &v[..])).collect(),
        }
    }

    pub fn first_idx(&self) -> Option<i64> {
        self.at(0).map(|(i, _)| i)
    }

    pub fn last_idx(&self) -> Option<i64> {
        let n = self.len();
        if n == 0 { None } else { self.at(n - 1).map(|(i, _)| i) }
    }

    fn from_items(items: Vec<(i64, &[u8])>) -> ListV {
        let longest = items.iter().map(|(_, v)| v.len()).max().unwrap_or(0);
        if fits_pack(items.len(), longest) {
            let idx: Vec<[u8; 8]> = items.iter().map(|(i, _)| i.to_le_bytes()).collect();
            ListV::Small(pack(items.iter().zip(&idx).flat_map(|((_, v), i)| [&i[..], *v])))
        } else {
            let bytes = items.iter().map(|(_, v)| size_class(v.len()) + 24).sum();
            ListV::Big { items: items.into_iter().map(|(i, v)| (i, Box::from(v))).collect(), bytes }
        }
    }

    /// Sets the element `idx` to `value`, inserting it in idx order when it is new.
    pub fn put(&mut self, idx: i64, value: &[u8]) {
        if let ListV::Big { items, bytes } = self {
            // Pushes at either end are the common case: O(1), no search.
            if items.front().is_none_or(|(i, _)| idx < *i) {
                *bytes += size_class(value.len()) + 24;
                items.push_front((idx, Box::from(value)));
                return;
            }
            if items.back().is_some_and(|(i, _)| idx > *i) {
                *bytes += size_class(value.len()) + 24;
                items.push_back((idx, Box::from(value)));
                return;
            }
            match items.binary_search_by_key(&idx, |(i, _)| *i) {
                Ok(p) => {
                    *bytes = *bytes + size_class(value.len()) - size_class(items[p].1.len());
                    items[p].1 = Box::from(value);
                }
                Err(p) => {
                    *bytes += size_class(value.len()) + 24;
                    if p == 0 {
                        items.push_front((idx, Box::from(value)));
                    } else if p == items.len() {
                        items.push_back((idx, Box::from(value)));
                    } else {
                        items.insert(p, (idx, Box::from(value)));
                    }
                }
            }
            return;
        }
        let mut items = self.items();
        match items.binary_search_by_key(&idx, |(i, _)| *i) {
            Ok(p) => items[p].1 = value,
            Err(p) => items.insert(p, (idx, value)),
        }
        let owned: Vec<(i64, Vec<u8>)> = items.into_iter().map(|(i, v)| (i, v.to_vec())).collect();
        *self = ListV::from_items(owned.iter().map(|(i, v)| (*i, &v[..])).collect());
    }

    pub fn del(&mut self, idx: i64) {
        match self {
            ListV::Big { items, bytes } => {
                let at_end = if items.front().is_some_and(|(i, _)| *i == idx) {
                    items.pop_front()
                } else if items.back().is_some_and(|(i, _)| *i == idx) {
                    items.pop_back()
                } else {
                    None
                };
                if let Some((_, v)) = at_end {
                    *bytes -= size_class(v.len()) + 24;
                    return;
                }
                if let Ok(p) = items.binary_search_by_key(&idx, |(i, _)| *i) {
                    let (_, v) = if p == 0 { items.pop_front() } else { items.remove(p) }.expect("found");
                    *bytes -= size_class(v.len()) + 24;
                }
            }
            ListV::Small(_) => {
                let kept: Vec<(i64, Vec<u8>)> =
                    self.items().into_iter().filter(|(i, _)| *i != idx).map(|(i, v)| (i, v.to_vec())).collect();
                *self = ListV::from_items(kept.iter().map(|(i, v)| (*i, &v[..])).collect());
            }
        }
    }

    /// Keeps only the elements with `lo <= idx <= hi`.
    pub fn keep(&mut self, lo: i64, hi: i64) {
        match self {
            ListV::Big { items, bytes } => {
                while items.front().is_some_and(|(i, _)| *i < lo) {
                    let (_, v) = items.pop_front().expect("front");
                    *bytes -= size_class(v.len()) + 24;
                }
                while items.back().is_some_and(|(i, _)| *i > hi) {
                    let (_, v) = items.pop_back().expect("back");
                    *bytes -= size_class(v.len()) + 24;
                }
            }
            ListV::Small(_) => {
                let kept: Vec<(i64, Vec<u8>)> = self
                    .items()
                    .into_iter()
                    .filter(|(i, _)| *i >= lo && *i <= hi)
                    .map(|(i, v)| (i, v.to_vec()))
                    .collect();
                *self = ListV::from_items(kept.iter().map(|(i, v)| (*i, &v[..])).collect());
            }
        }
    }

    fn mem(&self) -> usize {
        match self {
            ListV::Small(b) => size_class(b.capacity()),
            ListV::Big { items, bytes } => bytes + items.capacity() * 24,
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// Sorted set.

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
        if let ZSetV::Small(b) = self {
            let mut items = Self::small_items(b);
            items.retain(|(_, x)| *x != m);
            let p = items.partition_point(|e| zcmp(*e, (score, m)).is_lt());
            items.insert(p, (score, m));
            let longest = items.iter().map(|(_, x)| x.len()).max().unwrap_or(0);
            if fits_pack(items.len(), longest) {
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

    fn mem(&self) -> usize {
        match self {
            ZSetV::Small(b) => size_class(b.capacity()),
            ZSetV::Big(z) => z.bytes + z.index.capacity() * 5,
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// The value of a collection key.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    String = 0,
    Hash = 1,
    List = 2,
    Set = 3,
    ZSet = 4,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::String => "string",
            Kind::Hash => "hash",
            Kind::List => "list",
            Kind::Set => "set",
            Kind::ZSet => "zset",
        }
    }

    pub fn from_u8(b: u8) -> Option<Kind> {
        Some(match b {
            0 => Kind::String,
            1 => Kind::Hash,
            2 => Kind::List,
            3 => Kind::Set,
            4 => Kind::ZSet,
            _ => return None,
        })
    }
}

pub(crate) enum Coll {
    Hash(HashV),
    List(ListV),
    Set(SetV),
    ZSet(ZSetV),
}

impl Coll {
    pub fn empty(kind: Kind) -> Coll {
        match kind {
            Kind::Hash => Coll::Hash(HashV::Small(Vec::new())),
            Kind::List => Coll::List(ListV::Small(Vec::new())),
            Kind::Set => Coll::Set(SetV::Small(Vec::new())),
            Kind::ZSet | Kind::String => Coll::ZSet(ZSetV::Small(Vec::new())),
        }
    }

    pub fn kind(&self) -> Kind {
        match self {
            Coll::Hash(_) => Kind::Hash,
            Coll::List(_) => Kind::List,
            Coll::Set(_) => Kind::Set,
            Coll::ZSet(_) => Kind::ZSet,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Coll::Hash(h) => h.len(),
            Coll::List(l) => l.len(),
            Coll::Set(s) => s.len(),
            Coll::ZSet(z) => z.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes charged for the value (allocator size classes of its parts).
    pub fn mem(&self) -> usize {
        32 + match self {
            Coll::Hash(h) => h.mem(),
            Coll::List(l) => l.mem(),
            Coll::Set(s) => s.mem(),
            Coll::ZSet(z) => z.mem(),
        }
    }

    /// The whole value as a `Restore` record body: `count:u32` then items (see `docs/format.md`).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut put = |b: &[u8]| {
            out.extend_from_slice(&(b.len() as u32).to_le_bytes());
            out.extend_from_slice(b);
        };
        match self {
            Coll::Hash(h) => {
                for (f, v) in h.pairs() {
                    put(f);
                    put(v);
                }
            }
            Coll::List(l) => {
                for (i, v) in l.items() {
                    put(&i.to_le_bytes());
                    put(v);
                }
            }
            Coll::Set(s) => {
                for m in s.members() {
                    put(m);
                }
            }
            Coll::ZSet(z) => {
                for (s, m) in z.range(0, z.len()) {
                    put(&s.to_bits().to_le_bytes());
                    put(m);
                }
            }
        }
        out
    }

    /// Rebuilds a value from [`Coll::encode`]'s output; `None` when malformed (odd pairs, a string kind,
    /// list indexes out of order).
    pub fn decode(kind: Kind, b: &[u8]) -> Option<Coll> {
        if kind == Kind::String {
            return None;
        }
        let mut items = Vec::new();
        let mut pos = 0;
        while pos < b.len() {
            let n = u32::from_le_bytes(b.get(pos..pos + 4)?.try_into().ok()?) as usize;
            pos += 4;
            items.push(b.get(pos..pos + n)?);
            pos += n;
        }
        let mut c = Coll::empty(kind);
        match &mut c {
            Coll::Hash(h) => {
                if items.len() % 2 != 0 {
                    return None;
                }
                for p in items.chunks(2) {
                    h.set(p[0], p[1]);
                }
            }
            Coll::List(l) => {
                if items.len() % 2 != 0 {
                    return None;
                }
                let mut list: Vec<(i64, &[u8])> = Vec::with_capacity(items.len() / 2);
                for p in items.chunks(2) {
                    let idx = i64::from_le_bytes(p[0].try_into().ok()?);
                    if list.last().is_some_and(|(last, _)| *last >= idx) {
                        return None;
                    }
                    list.push((idx, p[1]));
                }
                *l = ListV::from_items(list);
            }
            Coll::Set(s) => {
                for m in items {
                    s.add(m);
                }
            }
            Coll::ZSet(z) => {
                if items.len() % 2 != 0 {
                    return None;
                }
                for p in items.chunks(2) {
                    z.set(p[1], f64::from_bits(u64::from_le_bytes(p[0].try_into().ok()?)));
                }
            }
        }
        Some(c)
    }

    /// An order-independent digest of the contents (for replay checks).
    pub fn digest(&self) -> Vec<u8> {
        let mut parts: Vec<Vec<u8>> = match self {
            Coll::Hash(h) => h.pairs().into_iter().map(|(f, v)| [f, b"\xff", v].concat()).collect(),
            Coll::Set(s) => s.members().into_iter().map(|m| m.to_vec()).collect(),
            Coll::List(l) => {
                return l.items().into_iter().flat_map(|(i, v)| [&i.to_le_bytes()[..], v, b"\xfe"].concat()).collect();
            }
            Coll::ZSet(z) => {
                return z
                    .range(0, z.len())
                    .into_iter()
                    .flat_map(|(s, m)| [&s.to_bits().to_le_bytes()[..], m].concat())
                    .collect();
            }
        };
        parts.sort();
        parts.concat()
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

    #[test]
    fn encodings_convert_and_round_trip() {
        let mut h = Coll::empty(Kind::Hash);
        let Coll::Hash(hv) = &mut h else { panic!() };
        for i in 0..200 {
            hv.set(format!("f{i}").as_bytes(), b"v");
        }
        assert!(matches!(hv, HashV::Big { .. }));
        assert_eq!(hv.get(b"f7"), Some(&b"v"[..]));
        let back = Coll::decode(Kind::Hash, &h.encode()).unwrap();
        assert_eq!(back.digest(), h.digest());
        let mut l = ListV::Small(Vec::new());
        for i in 0..10 {
            l.put(i, b"x");
        }
        l.put(-1, b"head");
        l.del(3);
        l.keep(-1, 5);
        assert_eq!(l.items().iter().map(|(i, _)| *i).collect::<Vec<_>>(), vec![-1, 0, 1, 2, 4, 5]);
        let long = vec![b'y'; 100];
        l.put(6, &long);
        assert!(matches!(l, ListV::Big { .. }));
        assert_eq!(l.at(0), Some((-1, &b"head"[..])));
    }
}
