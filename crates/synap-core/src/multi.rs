//! WATCH: the keys each watching client watches, and the flag any change to one of them sets (EXEC then
//! runs nothing). Changes touch it at the point they are committed (`Keyspace::log_batch`, the stream
//! store's commits).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use bytes::Bytes;
use parking_lot::Mutex;

/// A key of one database, as the registries of watched and blocked keys hold it.
pub type DbKey = (u32, Bytes);

/// The borrowed form of a [`DbKey`], for lookups that copy nothing (hashes as the tuple does).
#[derive(Hash)]
pub(crate) struct DbKeyRef<'a>(pub u32, pub &'a [u8]);

impl hashbrown::Equivalent<DbKey> for DbKeyRef<'_> {
    fn equivalent(&self, key: &DbKey) -> bool {
        self.0 == key.0 && self.1 == &key.1[..]
    }
}

/// WATCHed keys: each watching client has a flag that any change to one of its keys sets.
#[derive(Default)]
pub struct WatchRegistry {
    count: AtomicUsize,
    keys: Mutex<hashbrown::HashMap<DbKey, Vec<Arc<AtomicBool>>>>,
    /// Clients caching keys (CLIENT TRACKING): told of the same changes.
    pub tracking: crate::tracking::Tracking,
}

impl WatchRegistry {
    pub(crate) fn active(&self) -> bool {
        self.count.load(Ordering::Acquire) > 0 || self.tracking.active()
    }

    /// Registers `flag` for `key` of database `db`; the flag is set when the key changes (or its database
    /// is flushed or swapped).
    pub fn watch(&self, flag: &Arc<AtomicBool>, db: u32, key: &Bytes) {
        self.watch_many(flag, db, std::slice::from_ref(key));
    }

    /// [`WatchRegistry::watch`] for many keys under one lock hold.
    pub fn watch_many(&self, flag: &Arc<AtomicBool>, db: u32, keys: &[Bytes]) {
        let mut map = self.keys.lock();
        for key in keys {
            let list = map.entry((db, key.clone())).or_default();
            if !list.iter().any(|f| Arc::ptr_eq(f, flag)) {
                list.push(flag.clone());
                self.count.fetch_add(1, Ordering::AcqRel);
            }
        }
    }

    pub fn unwatch(&self, flag: &Arc<AtomicBool>, db: u32, key: &[u8]) {
        self.unwatch_many(flag, std::iter::once((db, Bytes::copy_from_slice(key))));
    }

    /// Removes `flag` from every key of `keys` (database, key), under one lock hold.
    pub fn unwatch_many(&self, flag: &Arc<AtomicBool>, keys: impl IntoIterator<Item = DbKey>) {
        let mut map = self.keys.lock();
        for key in keys {
            if let Some(list) = map.get_mut(&key) {
                let before = list.len();
                list.retain(|f| !Arc::ptr_eq(f, flag));
                self.count.fetch_sub(before - list.len(), Ordering::AcqRel);
                if list.is_empty() {
                    map.remove(&key);
                }
            }
        }
    }

    /// A change to `key` of database `db`. Client tracking does not tell databases apart (as in Redis).
    pub(crate) fn touch(&self, db: u32, key: &[u8]) {
        if self.count.load(Ordering::Acquire) > 0
            && let Some(list) = self.keys.lock().get(&DbKeyRef(db, key))
        {
            list.iter().for_each(|f| f.store(true, Ordering::Release));
        }
        if self.tracking.active() {
            self.tracking.changed(key);
        }
    }

    /// The keys watched in database `db` (SWAPDB and FLUSHDB check which of them exist).
    pub(crate) fn watched_in(&self, db: u32) -> Vec<Bytes> {
        if self.count.load(Ordering::Acquire) == 0 {
            return Vec::new();
        }
        self.keys.lock().keys().filter(|(d, _)| *d == db).map(|(_, k)| k.clone()).collect()
    }

    /// Marks the watchers of `key` of database `db` (SWAPDB, FLUSHDB), without telling tracking clients.
    pub(crate) fn touch_watchers(&self, db: u32, key: &[u8]) {
        if let Some(list) = self.keys.lock().get(&DbKeyRef(db, key)) {
            list.iter().for_each(|f| f.store(true, Ordering::Release));
        }
    }
}
