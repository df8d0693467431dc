//! Clients blocked on keys (BLPOP, BZPOPMIN, BLMOVE, ...): a line per key, first come first served, and
//! the handle that wakes the line when an element arrives (`Keyspace::log_batch` calls [`Blockers::wake`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use parking_lot::Mutex;

use crate::multi::{DbKey, DbKeyRef};

/// The clients blocked on one key, in arrival order, and the handle that wakes them.
type KeyLine = (std::collections::VecDeque<u64>, Arc<tokio::sync::Notify>);

/// Clients blocked on keys, first come first served per key.
#[derive(Default)]
pub struct Blockers {
    count: AtomicUsize,
    keys: Mutex<hashbrown::HashMap<DbKey, KeyLine>>,
}

impl Blockers {
    pub(crate) fn active(&self) -> bool {
        self.count.load(Ordering::Acquire) > 0
    }

    /// Queues client `id` on `keys` of database `db`; returns the handles woken when one of them may have
    /// data.
    pub fn register(&self, id: u64, db: u32, keys: &[Bytes]) -> Vec<Arc<tokio::sync::Notify>> {
        let mut map = self.keys.lock();
        self.count.fetch_add(1, Ordering::AcqRel);
        keys.iter()
            .map(|k| {
                let (queue, notify) = map.entry((db, k.clone())).or_default();
                // Ids are fresh per wait: only a key named twice in one command meets its own id, last.
                if queue.back() != Some(&id) {
                    queue.push_back(id);
                }
                notify.clone()
            })
            .collect()
    }

    /// The keys on which `id` is first in line (only they may serve it, in Redis's FIFO order).
    pub fn heads(&self, id: u64, db: u32, keys: &[Bytes]) -> Vec<Bytes> {
        let map = self.keys.lock();
        keys.iter()
            .filter(|k| map.get(&DbKeyRef(db, k)).is_some_and(|(q, _)| q.front() == Some(&id)))
            .cloned()
            .collect()
    }

    /// Removes `id` from its keys' queues and wakes the next in line where it was first.
    pub fn unregister(&self, id: u64, db: u32, keys: &[Bytes]) {
        let mut map = self.keys.lock();
        for k in keys {
            if let Some((queue, notify)) = map.get_mut(&DbKeyRef(db, k)) {
                if queue.front() == Some(&id) {
                    queue.pop_front();
                    notify.notify_waiters();
                } else {
                    queue.retain(|x| *x != id);
                }
                if queue.is_empty() {
                    map.remove(&DbKeyRef(db, k));
                }
            }
        }
        self.count.fetch_sub(1, Ordering::AcqRel);
    }

    pub(crate) fn wake(&self, db: u32, key: &[u8]) {
        if let Some((_, notify)) = self.keys.lock().get(&DbKeyRef(db, key)) {
            notify.notify_waiters();
        }
    }

    /// Wakes every client blocked on a key of database `db` (SWAPDB: the database under them changed).
    pub(crate) fn wake_db(&self, db: u32) {
        for ((d, _), (_, notify)) in self.keys.lock().iter() {
            if *d == db {
                notify.notify_waiters();
            }
        }
    }
}
