//! One shard of the keyspace: a dense vector of entries plus a hash index of their positions.
//!
//! ```text
//! index:    HashTable<u32>   hash(key) -> position in `entries`
//! entries:  Vec<Entry>       dense; removal swaps the last entry into the hole
//! volatile: Vec<u32>         positions of entries with an expiry (each entry knows its slot: `vol_idx`)
//! ```
//! The dense layout gives O(1) uniform random sampling (eviction, active expiry) and a SCAN cursor that
//! walks positions from the top down: removal only ever moves the *last* entry, which such a cursor has
//! already visited, so an entry present for the whole scan is never skipped (it may be seen twice).
//!
//! Each entry keeps key and string value in one allocation (`[key_len:u32][key][value]`) to save the
//! per-allocation overhead that dominates small values.

use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use foldhash::fast::FixedState;
use hashbrown::HashTable;

use super::value::{Coll, Kind, size_class};

/// No expiry.
pub const NO_EXPIRE: u64 = 0;
const NOT_VOLATILE: u32 = u32::MAX;

pub(crate) struct Entry {
    blob: Box<[u8]>,
    /// A collection value (hash, list, set, sorted set); `None` for a string, whose value is in `blob`.
    pub(crate) coll: Option<Box<Coll>>,
    /// Absolute Unix ms; [`NO_EXPIRE`] when persistent.
    pub(crate) expire_at: u64,
    /// LRU clock (seconds) or LFU state, depending on the eviction policy.
    pub(crate) access: u32,
    vol_idx: u32,
}

impl Entry {
    fn new(key: &[u8], value: &[u8], expire_at: u64, access: u32) -> Entry {
        let mut blob = Vec::with_capacity(4 + key.len() + value.len());
        blob.extend_from_slice(&(key.len() as u32).to_le_bytes());
        blob.extend_from_slice(key);
        blob.extend_from_slice(value);
        Entry { blob: blob.into_boxed_slice(), coll: None, expire_at, access, vol_idx: NOT_VOLATILE }
    }

    pub(crate) fn kind(&self) -> Kind {
        self.coll.as_ref().map(|c| c.kind()).unwrap_or(Kind::String)
    }

    fn key_len(&self) -> usize {
        u32::from_le_bytes(self.blob[..4].try_into().expect("4 bytes")) as usize
    }

    pub(crate) fn key(&self) -> &[u8] {
        &self.blob[4..4 + self.key_len()]
    }

    pub(crate) fn value(&self) -> &[u8] {
        &self.blob[4 + self.key_len()..]
    }

    pub(crate) fn is_expired(&self, now: u64) -> bool {
        self.expire_at != NO_EXPIRE && self.expire_at <= now
    }

    /// Memory charged for this entry: the blob's allocator size class plus the fixed per-entry cost.
    pub(crate) fn charge(&self) -> usize {
        entry_charge(self.blob.len()) + self.coll.as_ref().map(|c| c.mem()).unwrap_or(0)
    }
}

/// Fixed cost of one entry: its slot in `entries` and its slot (4 bytes + control byte) in the index,
/// at the tables' typical load.
pub(crate) const ENTRY_OVERHEAD: usize = std::mem::size_of::<Entry>() + 8;

pub(crate) fn entry_charge(blob_len: usize) -> usize {
    size_class(blob_len) + ENTRY_OVERHEAD
}

pub(crate) struct Shard {
    hasher: FixedState,
    /// The keyspace-wide total of `used`, kept in step with it.
    total: Arc<AtomicUsize>,
    entries: Vec<Entry>,
    index: HashTable<u32>,
    volatile: Vec<u32>,
    /// Bytes charged to this shard's entries.
    pub(crate) used: usize,
    /// Entries that are streams: while there are none, a write need not look for a stream to replace.
    streams: u32,
}

impl Shard {
    pub(crate) fn new(hasher: FixedState, total: Arc<AtomicUsize>) -> Shard {
        Shard { hasher, total, entries: Vec::new(), index: HashTable::new(), volatile: Vec::new(), used: 0, streams: 0 }
    }

    fn account(&mut self, add: usize, sub: usize) {
        self.used = self.used + add - sub;
        if add >= sub {
            self.total.fetch_add(add - sub, Ordering::Relaxed);
        } else {
            self.total.fetch_sub(sub - add, Ordering::Relaxed);
        }
    }

    fn hash_key(hasher: &FixedState, key: &[u8]) -> u64 {
        hasher.hash_one(key)
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn volatile_len(&self) -> usize {
        self.volatile.len()
    }

    pub(crate) fn entry(&self, pos: usize) -> &Entry {
        &self.entries[pos]
    }

    pub(crate) fn entry_mut(&mut self, pos: usize) -> &mut Entry {
        &mut self.entries[pos]
    }

    pub(crate) fn volatile_pos(&self, slot: usize) -> usize {
        self.volatile[slot] as usize
    }

    /// Position of `key`, expired or not.
    pub(crate) fn find(&self, hash: u64, key: &[u8]) -> Option<usize> {
        let entries = &self.entries;
        self.index.find(hash, |&p| entries[p as usize].key() == key).map(|&p| p as usize)
    }

    /// Whether any entry is a stream.
    pub(crate) fn has_streams(&self) -> bool {
        self.streams > 0
    }

    /// Inserts or replaces `key`; returns the position.
    pub(crate) fn upsert(&mut self, hash: u64, key: &[u8], value: &[u8], expire_at: u64, access: u32) -> usize {
        match self.find(hash, key) {
            Some(pos) => {
                let e = &mut self.entries[pos];
                if e.kind() == Kind::Stream {
                    self.streams -= 1;
                }
                if e.coll.is_none() && e.blob.len() == 4 + key.len() + value.len() {
                    // Same size: overwrite the value in place (no allocation; the charge is unchanged).
                    let at = 4 + key.len();
                    e.blob[at..].copy_from_slice(value);
                } else {
                    let new = Entry::new(key, value, expire_at, access);
                    let (charge, old_charge) = (new.charge(), e.charge());
                    e.blob = new.blob;
                    e.coll = None;
                    self.account(charge, old_charge);
                }
                self.entries[pos].access = access;
                let vol = self.entries[pos].vol_idx;
                debug_assert!(vol == NOT_VOLATILE || self.volatile[vol as usize] as usize == pos);
                self.set_expire(pos, expire_at);
                pos
            }
            None => {
                let new = Entry::new(key, value, expire_at, access);
                let charge = new.charge();
                let pos = self.entries.len();
                let (entries, hasher) = (&self.entries, &self.hasher);
                self.index.insert_unique(hash, pos as u32, |&p| Self::hash_key(hasher, entries[p as usize].key()));
                self.entries.push(new);
                self.account(charge, 0);
                if expire_at != NO_EXPIRE {
                    self.entries[pos].vol_idx = self.volatile.len() as u32;
                    self.volatile.push(pos as u32);
                }
                pos
            }
        }
    }

    /// Overwrites the string value at `pos` from `offset` with `data`, zero-filling any gap; expiry and
    /// access stamp stay.
    pub(crate) fn set_range(&mut self, pos: usize, offset: usize, data: &[u8]) {
        let e = &mut self.entries[pos];
        let start = 4 + e.key_len() + offset;
        let end = start + data.len();
        if end <= e.blob.len() {
            e.blob[start..end].copy_from_slice(data);
            return;
        }
        let mut blob = Vec::with_capacity(end);
        blob.extend_from_slice(&e.blob);
        blob.resize(end, 0);
        blob[start..end].copy_from_slice(data);
        let old = e.charge();
        e.blob = blob.into_boxed_slice();
        let new = e.charge();
        self.account(new, old);
    }

    /// Inserts or replaces `key` with a collection value; returns the position.
    pub(crate) fn upsert_coll(&mut self, hash: u64, key: &[u8], coll: Coll, expire_at: u64, access: u32) -> usize {
        let pos = self.upsert(hash, key, &[], expire_at, access);
        if coll.kind() == Kind::Stream {
            self.streams += 1;
        }
        let old = self.entries[pos].charge();
        self.entries[pos].coll = Some(Box::new(coll));
        let new = self.entries[pos].charge();
        self.account(new, old);
        pos
    }

    /// Runs `f` on the collection at `pos` and re-charges the entry for its new size.
    pub(crate) fn with_coll<R>(&mut self, pos: usize, f: impl FnOnce(&mut Coll) -> R) -> Option<R> {
        let old = self.entries[pos].charge();
        let r = f(self.entries[pos].coll.as_deref_mut()?);
        let new = self.entries[pos].charge();
        self.account(new, old);
        Some(r)
    }

    /// Sets or clears the expiry of the entry at `pos`, keeping the volatile list in step.
    pub(crate) fn set_expire(&mut self, pos: usize, expire_at: u64) {
        let vol = self.entries[pos].vol_idx;
        self.entries[pos].expire_at = expire_at;
        match (vol == NOT_VOLATILE, expire_at == NO_EXPIRE) {
            (true, false) => {
                self.entries[pos].vol_idx = self.volatile.len() as u32;
                self.volatile.push(pos as u32);
            }
            (false, true) => {
                self.remove_volatile(vol);
                self.entries[pos].vol_idx = NOT_VOLATILE;
            }
            _ => {}
        }
    }

    fn remove_volatile(&mut self, slot: u32) {
        let slot = slot as usize;
        self.volatile.swap_remove(slot);
        if let Some(&moved) = self.volatile.get(slot) {
            self.entries[moved as usize].vol_idx = slot as u32;
        }
    }

    /// Removes the entry at `pos` and returns it. The last entry moves into `pos`.
    pub(crate) fn remove_at(&mut self, pos: usize, hash: u64) -> Entry {
        let removed = self.index.find_entry(hash, |&p| p as usize == pos).expect("indexed entry").remove().0 as usize;
        debug_assert_eq!(removed, pos);
        let vol = self.entries[pos].vol_idx;
        if vol != NOT_VOLATILE {
            self.remove_volatile(vol);
        }
        let last = self.entries.len() - 1;
        let entry = self.entries.swap_remove(pos);
        if entry.kind() == Kind::Stream {
            self.streams -= 1;
        }
        if pos != last {
            // The former last entry now lives at `pos`: repoint its index slot and volatile slot.
            let moved_hash = self.hash_of(pos);
            let slot = self.index.find_mut(moved_hash, |&p| p as usize == last).expect("indexed moved entry");
            *slot = pos as u32;
            let mvol = self.entries[pos].vol_idx;
            if mvol != NOT_VOLATILE {
                self.volatile[mvol as usize] = pos as u32;
            }
        }
        self.account(0, entry.charge());
        entry
    }

    fn hash_of(&self, pos: usize) -> u64 {
        Self::hash_key(&self.hasher, self.entries[pos].key())
    }

    /// Empties the shard and hands back its entries, for the caller to free where it costs nobody a wait.
    pub(crate) fn clear(&mut self) -> Vec<Entry> {
        self.index = HashTable::new();
        self.volatile = Vec::new();
        self.streams = 0;
        self.account(0, self.used);
        std::mem::take(&mut self.entries)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter()
    }
}
