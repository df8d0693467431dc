//! Client-side caching (CLIENT TRACKING): which clients read which keys, and the invalidations a change
//! to one of them owes them. A change reaches here where WATCH learns of it (the point of commit, see
//! [`crate::multi::WatchRegistry`]), so every write, expiry and eviction invalidates.
//!
//! Default mode remembers the keys a client read (at most [`MAX_TRACKED_KEYS`] keys in all; past that the
//! oldest-remembered keys are invalidated and forgotten, as Redis does with `tracking-table-max-keys`);
//! BCAST mode sends every change to a key under one of the client's prefixes. Each client's pending
//! invalidations are bounded: a client that lets more than [`MAX_PENDING`] (or [`MAX_PENDING_BYTES`] of
//! keys) pile up gets a flush-all invalidation in their place (it must drop its whole cache, which is
//! always correct).
//!
//! Reads inside a script are remembered as the script makes them (it runs alone, so no write comes
//! between a read and its remembering): the connection turns [`track_reads`] on for a tracked client's
//! script, the script notes each read-only call's keys ([`note_reads`]), and the engine remembers them
//! before the call runs.

use std::cell::Cell;
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use parking_lot::Mutex;

/// The most keys remembered for all clients together.
pub const MAX_TRACKED_KEYS: usize = 1_000_000;
/// The most invalidations waiting for one client.
const MAX_PENDING: usize = 100_000;
/// The most key bytes waiting for one client.
const MAX_PENDING_BYTES: usize = 16 << 20;
/// A key's list of readers is cleared of clients that no longer track whenever it reaches a power of
/// two from this size on (so it stays within the tracking clients, as clients come and go).
const READERS_CHECK: usize = 64;

thread_local! {
    /// The client whose command runs on this thread (for NOLOOP and script reads).
    static CURRENT: Cell<u64> = const { Cell::new(0) };
    /// Whether the reads of the command this thread runs are remembered for `CURRENT` (a tracked script).
    static TRACK_READS: Cell<bool> = const { Cell::new(false) };
    /// The keys a script's read-only call is about to read, until the engine remembers them.
    static READS: std::cell::RefCell<Vec<Bytes>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Marks the client whose command this thread runs now (0: none).
pub fn set_current_client(id: u64) {
    CURRENT.with(|c| c.set(id));
}

/// The client whose command this thread runs now (0: none).
pub fn current_client() -> u64 {
    CURRENT.with(|c| c.get())
}

/// Whether the reads of the command about to run (a script) are remembered for the current client.
pub fn track_reads(on: bool) {
    TRACK_READS.with(|t| t.set(on));
}

/// A script's read-only call (its arguments): its keys are noted when the current client's reads are
/// tracked.
pub(crate) fn note_reads(args: &[Bytes]) {
    if TRACK_READS.with(|t| t.get())
        && let Ok(keys) = crate::command::table::command_keys(args)
    {
        READS.with(|r| r.borrow_mut().extend(keys.into_iter().map(|(k, _)| k)));
    }
}

/// The keys noted since the last call.
pub(crate) fn take_reads() -> Vec<Bytes> {
    READS.with(|r| std::mem::take(&mut *r.borrow_mut()))
}

/// One tracking client.
pub struct Tracker {
    pub id: u64,
    /// BCAST: the prefixes (empty: every key); `None` in default mode.
    pub bcast: Option<Vec<Bytes>>,
    /// NOLOOP: no invalidations for this client's own changes.
    pub noloop: bool,
    /// Keys to invalidate (`None`: everything), in order, and their bytes.
    pending: Mutex<(VecDeque<Option<Bytes>>, usize)>,
    /// Woken when invalidations wait: the tracking connection's, or the one it redirects to.
    pub notify: Arc<tokio::sync::Notify>,
}

impl Tracker {
    pub fn new(id: u64, bcast: Option<Vec<Bytes>>, noloop: bool) -> Arc<Tracker> {
        Tracker::with_notify(id, bcast, noloop, Arc::default())
    }

    /// A tracker whose invalidations wake `notify` (CLIENT TRACKING ... REDIRECT: the other client's).
    pub fn with_notify(
        id: u64,
        bcast: Option<Vec<Bytes>>,
        noloop: bool,
        notify: Arc<tokio::sync::Notify>,
    ) -> Arc<Tracker> {
        Arc::new(Tracker { id, bcast, noloop, pending: Mutex::default(), notify })
    }

    fn push(&self, key: Option<Bytes>) {
        if self.noloop && CURRENT.with(|c| c.get()) == self.id {
            return;
        }
        let mut p = self.pending.lock();
        let bytes = key.as_ref().map_or(0, |k| k.len());
        if p.0.len() >= MAX_PENDING || p.1 + bytes > MAX_PENDING_BYTES {
            p.0.clear();
            p.0.push_back(None);
            p.1 = 0;
        } else if p.0.back() != Some(&None) || key.is_some() {
            p.0.push_back(key);
            p.1 += bytes;
        }
        drop(p);
        self.notify.notify_one();
    }

    /// The invalidations waiting (`None`: flush everything).
    pub fn drain(&self) -> Vec<Option<Bytes>> {
        let mut p = self.pending.lock();
        p.1 = 0;
        p.0.drain(..).collect()
    }
}

/// Every tracking client and the keys they read.
#[derive(Default)]
pub struct Tracking {
    clients: AtomicUsize,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    trackers: hashbrown::HashMap<u64, Arc<Tracker>>,
    /// The BCAST trackers (every change is matched against their prefixes).
    bcast: Vec<Arc<Tracker>>,
    /// Default mode: key -> when it was first remembered (a sequence number) and the clients that read it.
    keys: hashbrown::HashMap<Bytes, (u64, Vec<u64>)>,
    /// Remembered keys, oldest first, with their sequence numbers (an entry whose number no longer
    /// matches the key's is stale; stale entries are dropped as the queue is walked or compacted).
    order: VecDeque<(Bytes, u64)>,
    seq: u64,
}

impl State {
    fn compact(&mut self) {
        if self.order.len() > 2 * self.keys.len() + 1024 {
            let keys = &self.keys;
            self.order.retain(|(k, n)| keys.get(k).is_some_and(|(m, _)| m == n));
        }
    }
}

impl Tracking {
    /// How many clients track keys (INFO's `tracking_clients`).
    pub fn clients(&self) -> usize {
        self.clients.load(Ordering::Acquire)
    }

    pub fn active(&self) -> bool {
        self.clients.load(Ordering::Acquire) > 0
    }

    pub fn register(&self, t: Arc<Tracker>) {
        let mut s = self.state.lock();
        s.bcast.retain(|b| b.id != t.id);
        if t.bcast.is_some() {
            s.bcast.push(t.clone());
        }
        s.trackers.insert(t.id, t);
        self.clients.store(s.trackers.len(), Ordering::Release);
    }

    pub fn unregister(&self, id: u64) {
        let mut s = self.state.lock();
        s.trackers.remove(&id);
        s.bcast.retain(|b| b.id != id);
        self.clients.store(s.trackers.len(), Ordering::Release);
    }

    /// Default mode: `client` read `keys`.
    pub fn remember(&self, client: u64, keys: impl IntoIterator<Item = Bytes>) {
        let mut s = self.state.lock();
        for key in keys {
            let seq = s.seq;
            let fresh = !s.keys.contains_key(&key);
            let State { keys, trackers, .. } = &mut *s;
            let list = &mut keys.entry(key.clone()).or_insert_with(|| (seq, Vec::new())).1;
            if !list.contains(&client) {
                if list.len() >= READERS_CHECK && list.len().is_power_of_two() {
                    list.retain(|id| trackers.contains_key(id));
                }
                list.push(client);
            }
            if fresh {
                s.order.push_back((key, seq));
                s.seq += 1;
            }
        }
        while s.keys.len() > MAX_TRACKED_KEYS {
            let Some((old, n)) = s.order.pop_front() else { break };
            if s.keys.get(&old).is_some_and(|(m, _)| *m == n)
                && let Some((_, ids)) = s.keys.remove(&old)
            {
                for id in ids {
                    if let Some(t) = s.trackers.get(&id) {
                        t.push(Some(old.clone()));
                    }
                }
            }
        }
        s.compact();
    }

    /// `key` changed.
    pub(crate) fn changed(&self, key: &[u8]) {
        let mut s = self.state.lock();
        if let Some((_, ids)) = s.keys.remove(key) {
            let key = Bytes::copy_from_slice(key);
            for id in ids {
                if let Some(t) = s.trackers.get(&id) {
                    t.push(Some(key.clone()));
                }
            }
            s.compact();
        }
        for t in s.bcast.iter() {
            if let Some(prefixes) = &t.bcast
                && (prefixes.is_empty() || prefixes.iter().any(|p| key.starts_with(p)))
            {
                t.push(Some(Bytes::copy_from_slice(key)));
            }
        }
    }

    /// Every key changed (FLUSHALL).
    pub(crate) fn flushed(&self) {
        let mut s = self.state.lock();
        s.keys.clear();
        s.order.clear();
        for t in s.trackers.values() {
            t.push(None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_invalidations_collapse_to_a_flush_past_their_byte_bound() {
        let t = Tracker::new(1, Some(Vec::new()), false);
        let key = Bytes::from(vec![b'k'; 1 << 20]);
        for _ in 0..15 {
            t.push(Some(key.clone()));
        }
        assert_eq!(t.drain().len(), 15, "15 MB of keys wait as they are");
        for _ in 0..17 {
            t.push(Some(key.clone()));
        }
        assert_eq!(t.drain(), vec![None], "past 16 MB: one flush in their place");
        t.push(Some(Bytes::from_static(b"small")));
        assert_eq!(t.drain(), vec![Some(Bytes::from_static(b"small"))], "the count starts again after a drain");
    }

    #[test]
    fn a_key_forgets_readers_that_stopped_tracking() {
        let tracking = Tracking::default();
        tracking.register(Tracker::new(1, None, false));
        for id in 1..=1000 {
            // Clients 2.. read the key and went away without invalidating it.
            tracking.remember(id, [Bytes::from_static(b"k")]);
        }
        let readers = tracking.state.lock().keys.get(&b"k"[..]).map(|(_, ids)| ids.len()).unwrap();
        assert!(readers <= 2 * READERS_CHECK, "{readers} readers remembered for one key");
        assert!(tracking.state.lock().keys[&b"k"[..]].1.contains(&1), "the tracking client stays");
    }
}
