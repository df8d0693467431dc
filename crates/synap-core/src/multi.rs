//! WATCH: the keys each watching client watches, and the flag any change to one of them sets (EXEC then
//! runs nothing). Changes touch it at the point they are committed (`Keyspace::log_batch`, the stream
//! store's commits).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use bytes::Bytes;
use parking_lot::Mutex;

/// WATCHed keys: each watching client has a flag that any change to one of its keys sets.
#[derive(Default)]
pub struct WatchRegistry {
    count: AtomicUsize,
    keys: Mutex<hashbrown::HashMap<Bytes, Vec<Arc<AtomicBool>>>>,
    /// Clients caching keys (CLIENT TRACKING): told of the same changes.
    pub tracking: crate::tracking::Tracking,
}

impl WatchRegistry {
    pub(crate) fn active(&self) -> bool {
        self.count.load(Ordering::Acquire) > 0 || self.tracking.active()
    }

    /// Registers `flag` for `key`; the flag is set when the key changes (or the keyspace is flushed).
    pub fn watch(&self, flag: &Arc<AtomicBool>, key: &Bytes) {
        self.watch_many(flag, std::slice::from_ref(key));
    }

    /// [`WatchRegistry::watch`] for many keys under one lock hold.
    pub fn watch_many(&self, flag: &Arc<AtomicBool>, keys: &[Bytes]) {
        let mut map = self.keys.lock();
        for key in keys {
            let list = map.entry(key.clone()).or_default();
            if !list.iter().any(|f| Arc::ptr_eq(f, flag)) {
                list.push(flag.clone());
                self.count.fetch_add(1, Ordering::AcqRel);
            }
        }
    }

    pub fn unwatch(&self, flag: &Arc<AtomicBool>, key: &[u8]) {
        self.unwatch_many(flag, std::iter::once(Bytes::copy_from_slice(key)));
    }

    /// Removes `flag` from every key of `keys`, under one lock hold.
    pub fn unwatch_many(&self, flag: &Arc<AtomicBool>, keys: impl IntoIterator<Item = Bytes>) {
        let mut map = self.keys.lock();
        for key in keys {
            if let Some(list) = map.get_mut(&key[..]) {
                let before = list.len();
                list.retain(|f| !Arc::ptr_eq(f, flag));
                self.count.fetch_sub(before - list.len(), Ordering::AcqRel);
                if list.is_empty() {
                    map.remove(&key[..]);
                }
            }
        }
    }

    pub(crate) fn touch(&self, key: &[u8]) {
        if self.count.load(Ordering::Acquire) > 0
            && let Some(list) = self.keys.lock().get(key)
        {
            list.iter().for_each(|f| f.store(true, Ordering::Release));
        }
        if self.tracking.active() {
            self.tracking.changed(key);
        }
    }

    pub(crate) fn touch_all(&self) {
        for list in self.keys.lock().values() {
            list.iter().for_each(|f| f.store(true, Ordering::Release));
        }
        if self.tracking.active() {
            self.tracking.flushed();
        }
    }
}
