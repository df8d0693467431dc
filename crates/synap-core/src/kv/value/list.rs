//! List values: packed `(idx, element)` items while small, a deque past that.

use std::collections::VecDeque;

use super::{fits_list, pack, size_class, unpack};

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

    pub(crate) fn from_items(items: Vec<(i64, &[u8])>) -> ListV {
        // About a listpack's size: each element with its header and back-length bytes.
        let bytes = items.iter().map(|(_, v)| v.len() + 2).sum();
        if fits_list(items.len(), bytes) {
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

    pub(crate) fn mem(&self) -> usize {
        match self {
            ListV::Small(b) => size_class(b.capacity()),
            ListV::Big { items, bytes } => bytes + items.capacity() * 24,
        }
    }
}
