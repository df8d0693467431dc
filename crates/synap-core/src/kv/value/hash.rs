//! Hash values: packed pairs while small, a dense vector of blobs with a hash index past that.

use std::hash::BuildHasher;

use hashbrown::HashTable;

use super::{fits_hash, hasher, pack, pack_items, scan_positions, size_class, unpack};

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
            if fits_hash(pairs.len(), longest) {
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

    pub(crate) fn mem(&self) -> usize {
        match self {
            HashV::Small(b) => size_class(b.capacity()),
            HashV::Big { items, index, bytes } => bytes + items.capacity() * 16 + index.capacity() * 5,
        }
    }
}
