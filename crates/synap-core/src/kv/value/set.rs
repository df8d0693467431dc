//! Set values: packed members while small, a hash table past that.

use std::hash::BuildHasher;

use hashbrown::HashTable;

use super::{fits_set, hasher, pack, pack_items, scan_positions, size_class, unpack};

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
            if fits_set(&members) {
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

    pub(crate) fn mem(&self) -> usize {
        match self {
            SetV::Small(b) => size_class(b.capacity()),
            SetV::Big { items, index, bytes } => bytes + items.capacity() * 16 + index.capacity() * 5,
        }
    }
}
