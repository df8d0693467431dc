//! The key-value store: a sharded keyspace with TTLs, active expiry, eviction and SCAN.
//!
//! Layout:
//! - `shard`   one shard's data structure (dense entries + hash index + volatile list)
//! - `mod`     (this file) the keyspace: shard selection, locking, the mutation applier, stats, digest
//! - `strings` the string and key commands, each turned into mutations
//! - `evict`   memory limit and sampled eviction policies
//! - `expire`  Redis-style sampled active expiry on a time budget
//! - `scan`    KEYS and cursor SCAN
//!
//! Lock rule: each shard sits behind its own `parking_lot::Mutex`, held only for the few operations of one
//! command and never across an `.await` (the engine has none). Commands that touch several shards lock them
//! in ascending shard order. The mutation log's own lock is taken while shard locks are held (shard -> log),
//! never the other way round.

mod evict;
mod expire;
pub use expire::ExpireReport;
pub(crate) mod coll;
mod scan;
pub(crate) mod shard;
mod strings;
pub mod types;
pub use strings::{format_f64, parse_f64, parse_i64};

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use bytes::Bytes;
use std::sync::{Arc, OnceLock};

use foldhash::fast::FixedState;
use parking_lot::{Mutex, MutexGuard};

pub(crate) use coll::{Coll, Kind};
pub use evict::EvictionPolicy;
pub use scan::decode_cursor;
pub(crate) use shard::{NO_EXPIRE, Shard};

use crate::clock::Clock;
use crate::mutation::{LogSlot, MAX_VALUE_BYTES, Mutation};

/// Keyspace settings.
#[derive(Debug, Clone)]
pub struct KvConfig {
    /// Number of shards (rounded up to a power of two).
    pub shards: usize,
    /// Memory limit in bytes; 0 means none.
    pub max_memory: usize,
    pub eviction: EvictionPolicy,
    /// Keys sampled per eviction decision (Redis `maxmemory-samples`).
    pub eviction_samples: usize,
    pub max_key_bytes: usize,
    pub max_value_bytes: usize,
    /// Largest reply a command may build (whole collections, KEYS, large SCAN counts): refused before it
    /// is built. 0 = no limit.
    pub max_reply_bytes: usize,
}

impl Default for KvConfig {
    fn default() -> Self {
        KvConfig {
            shards: 1024,
            max_memory: 0,
            eviction: EvictionPolicy::NoEviction,
            eviction_samples: 5,
            max_key_bytes: 64 * 1024,
            max_value_bytes: 64 * 1024 * 1024,
            max_reply_bytes: 1 << 30,
        }
    }
}

/// A snapshot chunk stops growing past this many payload bytes (chunks must stay far below a record's cap).
pub(crate) const SNAPSHOT_CHUNK_BYTES: usize = 64 << 20;

/// Where a snapshot walk stands: a shard and the number of positions below the cursor not yet written,
/// and the batches of a large collection still to hand out.
#[derive(Debug, Clone)]
pub struct SnapshotCursor {
    shard: usize,
    remaining: usize,
    /// Encoded batches (count, mutations) of collections too large for one record.
    queued: std::collections::VecDeque<(u32, Vec<u8>)>,
    /// A chunk's size limit; a collection larger than this is written as its elements.
    chunk_bytes: usize,
}

impl Default for SnapshotCursor {
    fn default() -> Self {
        SnapshotCursor::with_chunk_bytes(SNAPSHOT_CHUNK_BYTES)
    }
}

impl SnapshotCursor {
    /// A cursor whose chunks stop growing past `chunk_bytes` (tests use small ones).
    pub fn with_chunk_bytes(chunk_bytes: usize) -> SnapshotCursor {
        SnapshotCursor { shard: 0, remaining: usize::MAX, queued: Default::default(), chunk_bytes: chunk_bytes.max(1) }
    }
}

/// A collection too large for one record, as batches of element records: `Del` first (the value starts
/// from nothing), its elements, then its expiry. Replayed in order they rebuild it; over a fuzzy snapshot
/// each element record is idempotent, as every other record is.
fn collection_batches(key: &[u8], c: &Coll, expire_at: u64, max_bytes: usize) -> Vec<(u32, Vec<u8>)> {
    struct Batches {
        out: Vec<(u32, Vec<u8>)>,
        buf: Vec<u8>,
        n: u32,
        max: usize,
    }
    impl Batches {
        fn add(&mut self, m: Mutation<'_>) {
            crate::mutation::encode_one(&m, &mut self.buf);
            self.n += 1;
            if self.buf.len() >= self.max {
                self.out.push((self.n, std::mem::take(&mut self.buf)));
                self.n = 0;
            }
        }
    }
    let mut b = Batches { out: Vec::new(), buf: Vec::new(), n: 0, max: max_bytes };
    b.add(Mutation::Del { key });
    match c {
        Coll::Hash(h) => h.pairs().into_iter().for_each(|(field, value)| b.add(Mutation::HSet { key, field, value })),
        Coll::List(l) => l.items().into_iter().for_each(|(idx, value)| b.add(Mutation::LPut { key, idx, value })),
        Coll::Set(s) => s.members().into_iter().for_each(|member| b.add(Mutation::SAdd { key, member })),
        Coll::ZSet(z) => {
            z.range(0, z.len()).into_iter().for_each(|(score, member)| b.add(Mutation::ZSet { key, member, score }))
        }
    }
    if expire_at != NO_EXPIRE {
        b.add(Mutation::SetExpire { key, expire_at });
    }
    if b.n > 0 {
        b.out.push((b.n, b.buf));
    }
    b.out
}

/// Counters reported by `/kv/stats` and `INFO`.
#[derive(Debug, Default)]
pub struct KvCounters {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub expired: AtomicU64,
    pub evicted: AtomicU64,
}

/// A point-in-time view of the keyspace's size and counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvStats {
    pub keys: usize,
    pub volatile_keys: usize,
    pub used_memory: usize,
    pub max_memory: usize,
    pub eviction: EvictionPolicy,
    pub hits: u64,
    pub misses: u64,
    pub expired: u64,
    pub evicted: u64,
    pub shards: usize,
}

pub struct Keyspace {
    shards: Box<[Mutex<Shard>]>,
    hasher: FixedState,
    pub(crate) config: KvConfig,
    used: Arc<AtomicUsize>,
    pub(crate) counters: KvCounters,
    clock: Arc<dyn Clock>,
    log: Arc<LogSlot>,
    /// Where the next active-expiry pass starts.
    expire_cursor: AtomicUsize,
    /// Called with ("expired" | "evicted", key) when keys go by themselves (keyspace notifications).
    events: OnceLock<EventHook>,
    watch: WatchRegistry,
    blockers: Blockers,
    /// Expired keys are hidden but not removed (see [`Keyspace::reclaims_expired`]).
    passive_expiry: AtomicBool,
}

/// WATCHed keys: each watching client has a flag that any change to one of its keys sets.
#[derive(Default)]
pub struct WatchRegistry {
    count: AtomicUsize,
    keys: Mutex<hashbrown::HashMap<Bytes, Vec<Arc<AtomicBool>>>>,
}

impl WatchRegistry {
    fn active(&self) -> bool {
        self.count.load(Ordering::Acquire) > 0
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

    fn touch(&self, key: &[u8]) {
        if let Some(list) = self.keys.lock().get(key) {
            list.iter().for_each(|f| f.store(true, Ordering::Release));
        }
    }

    fn touch_all(&self) {
        for list in self.keys.lock().values() {
            list.iter().for_each(|f| f.store(true, Ordering::Release));
        }
    }
}

/// The clients blocked on one key, in arrival order, and the handle that wakes them.
type KeyLine = (std::collections::VecDeque<u64>, Arc<tokio::sync::Notify>);

/// Clients blocked on keys, first come first served per key.
#[derive(Default)]
pub struct Blockers {
    count: AtomicUsize,
    keys: Mutex<hashbrown::HashMap<Bytes, KeyLine>>,
}

impl Blockers {
    fn active(&self) -> bool {
        self.count.load(Ordering::Acquire) > 0
    }

    /// Queues client `id` on `keys`; returns the handles woken when one of them may have data.
    pub fn register(&self, id: u64, keys: &[Bytes]) -> Vec<Arc<tokio::sync::Notify>> {
        let mut map = self.keys.lock();
        self.count.fetch_add(1, Ordering::AcqRel);
        keys.iter()
            .map(|k| {
                let (queue, notify) = map.entry(k.clone()).or_default();
                if !queue.contains(&id) {
                    queue.push_back(id);
                }
                notify.clone()
            })
            .collect()
    }

    /// The keys on which `id` is first in line (only they may serve it, in Redis's FIFO order).
    pub fn heads(&self, id: u64, keys: &[Bytes]) -> Vec<Bytes> {
        let map = self.keys.lock();
        keys.iter().filter(|k| map.get(&k[..]).is_some_and(|(q, _)| q.front() == Some(&id))).cloned().collect()
    }

    /// Removes `id` from its keys' queues and wakes the next in line.
    pub fn unregister(&self, id: u64, keys: &[Bytes]) {
        let mut map = self.keys.lock();
        for k in keys {
            if let Some((queue, notify)) = map.get_mut(&k[..]) {
                queue.retain(|x| *x != id);
                notify.notify_waiters();
                if queue.is_empty() {
                    map.remove(&k[..]);
                }
            }
        }
        self.count.fetch_sub(1, Ordering::AcqRel);
    }

    fn wake(&self, key: &[u8]) {
        if let Some((_, notify)) = self.keys.lock().get(key) {
            notify.notify_waiters();
        }
    }
}

/// Receives keyspace events the keyspace raises by itself (expiry, eviction).
pub type EventHook = Arc<dyn Fn(&'static str, &[u8]) + Send + Sync>;

/// Shard locks held by a multi-key command, sorted by shard index.
pub(crate) struct Locked<'a> {
    guards: Vec<(usize, MutexGuard<'a, Shard>)>,
}

impl<'a> Locked<'a> {
    pub(crate) fn get(&mut self, shard: usize) -> &mut Shard {
        let i = self.guards.binary_search_by_key(&shard, |(s, _)| *s).expect("shard locked");
        &mut self.guards[i].1
    }

    pub(crate) fn peek(&self, shard: usize) -> &Shard {
        let i = self.guards.binary_search_by_key(&shard, |(s, _)| *s).expect("shard locked");
        &self.guards[i].1
    }
}

impl Keyspace {
    pub fn new(config: KvConfig, clock: Arc<dyn Clock>, log: Arc<LogSlot>) -> Keyspace {
        let n = config.shards.max(1).next_power_of_two();
        let hasher = FixedState::with_seed(rand::random());
        let used = Arc::new(AtomicUsize::new(0));
        let shards = (0..n).map(|_| Mutex::new(Shard::new(hasher.clone(), used.clone()))).collect();
        Keyspace {
            shards,
            hasher,
            config: KvConfig { shards: n, ..config },
            used,
            counters: KvCounters::default(),
            clock,
            log,
            expire_cursor: AtomicUsize::new(0),
            events: OnceLock::new(),
            watch: WatchRegistry::default(),
            blockers: Blockers::default(),
            passive_expiry: AtomicBool::new(false),
        }
    }

    /// Installs the hook for "expired" and "evicted" events (once).
    pub fn set_event_hook(&self, hook: EventHook) {
        let _ = self.events.set(hook);
    }

    pub(crate) fn emit(&self, event: &'static str, key: &[u8]) {
        if let Some(h) = self.events.get() {
            h(event, key);
        }
    }

    pub(crate) fn now(&self) -> u64 {
        self.clock.now_ms()
    }

    pub(crate) fn hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }

    /// Shard index: bits 32.. of the hash, disjoint from the low bits (bucket) and top 7 bits (tag) that
    /// the hash table inside a shard uses.
    pub(crate) fn shard_of(&self, hash: u64) -> usize {
        (hash >> 32) as usize & (self.shards.len() - 1)
    }

    pub(crate) fn lock(&self, hash: u64) -> MutexGuard<'_, Shard> {
        self.shards[self.shard_of(hash)].lock()
    }

    pub(crate) fn lock_index(&self, shard: usize) -> MutexGuard<'_, Shard> {
        self.shards[shard].lock()
    }

    pub(crate) fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// Locks the shards of all `hashes` in ascending order.
    pub(crate) fn lock_many(&self, hashes: impl IntoIterator<Item = u64>) -> Locked<'_> {
        let mut idx: Vec<usize> = hashes.into_iter().map(|h| self.shard_of(h)).collect();
        idx.sort_unstable();
        idx.dedup();
        Locked { guards: idx.into_iter().map(|i| (i, self.shards[i].lock())).collect() }
    }

    fn lock_all(&self) -> Locked<'_> {
        Locked { guards: self.shards.iter().enumerate().map(|(i, s)| (i, s.lock())).collect() }
    }

    pub fn used_memory(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// The access stamp a new entry starts with under the current policy.
    pub(crate) fn initial_access(&self, now: u64) -> u32 {
        self.config.eviction.initial_access(now)
    }

    /// Position of a live `key`; an expired entry is reported absent and, when this keyspace reclaims
    /// expired keys, removed on the way (lazy expiry) with a logged `Del`.
    pub(crate) fn find_live(&self, shard: &mut Shard, hash: u64, key: &[u8], now: u64) -> Option<usize> {
        let pos = shard.find(hash, key)?;
        if shard.entry(pos).is_expired(now) {
            if self.reclaims_expired() {
                self.expire_entry(shard, pos, hash);
            }
            return None;
        }
        Some(pos)
    }

    /// Refuses a reply of about `bytes` past [`KvConfig::max_reply_bytes`], before it is built.
    pub(crate) fn reply_fits(&self, bytes: usize) -> crate::error::Result<()> {
        let limit = self.config.max_reply_bytes;
        if limit > 0 && bytes > limit {
            return Err(crate::error::CommandError::ReplyTooLarge { bytes, limit });
        }
        Ok(())
    }

    /// Whether expired keys are removed here. A removal is a mutation like any other (a `Del` in the log,
    /// as Redis propagates a DEL to its AOF and replicas), so it happens only where the log takes writes,
    /// and never on a keyspace that follows another's log (a replica): there an expired key is hidden
    /// from reads until the record of its removal arrives.
    pub(crate) fn reclaims_expired(&self) -> bool {
        !self.passive_expiry.load(Ordering::Acquire) && self.log.check_writable().is_ok()
    }

    /// Stops (or resumes) reclaiming expired keys by this keyspace's own clock (replicas).
    pub fn set_passive_expiry(&self, passive: bool) {
        self.passive_expiry.store(passive, Ordering::Release);
    }

    /// Removes the expired entry at `pos` through the write path: the removal is applied and logged as a
    /// `Del`, so that replay and replicas never find the old value under a key re-created later.
    pub(crate) fn expire_entry(&self, shard: &mut Shard, pos: usize, hash: u64) {
        let entry = shard.remove_at(pos, hash);
        self.log_batch(&[Mutation::Del { key: entry.key() }]);
        self.counters.expired.fetch_add(1, Ordering::Relaxed);
        self.emit("expired", entry.key());
    }

    /// Like [`Self::find_live`], and records the access for LRU/LFU.
    pub(crate) fn touch_live(&self, shard: &mut Shard, hash: u64, key: &[u8], now: u64) -> Option<usize> {
        let pos = self.find_live(shard, hash, key, now)?;
        let e = shard.entry_mut(pos);
        e.access = self.config.eviction.touch(e.access, now);
        Some(pos)
    }

    /// Applies one single-key mutation to the shard that owns its key (the shard is locked by the caller).
    pub(crate) fn apply_local(&self, shard: &mut Shard, hash: u64, m: &Mutation<'_>, now: u64) {
        match *m {
            Mutation::Set { key, value, expire_at } => {
                shard.upsert(hash, key, value, expire_at, self.initial_access(now));
            }
            Mutation::Del { key } => {
                if let Some(pos) = shard.find(hash, key) {
                    shard.remove_at(pos, hash);
                }
            }
            Mutation::SetExpire { key, expire_at } => {
                if let Some(pos) = shard.find(hash, key) {
                    shard.set_expire(pos, expire_at);
                }
            }
            Mutation::Restore { key, kind, data, expire_at } => {
                let coll = Kind::from_u8(kind).and_then(|k| Coll::decode(k, data));
                match coll {
                    Some(c) if !c.is_empty() => {
                        shard.upsert_coll(hash, key, c, expire_at, self.initial_access(now));
                    }
                    Some(_) => {
                        if let Some(pos) = shard.find(hash, key) {
                            shard.remove_at(pos, hash);
                        }
                    }
                    None => tracing::error!(key = %String::from_utf8_lossy(key), "malformed Restore record skipped"),
                }
            }
            Mutation::SetRange { key, offset, data } => {
                let Some(end) = (offset as usize).checked_add(data.len()).filter(|&e| e <= MAX_VALUE_BYTES) else {
                    tracing::error!(key = %String::from_utf8_lossy(key), offset, "SetRange past the largest value skipped");
                    return;
                };
                match shard.find(hash, key) {
                    Some(pos) if shard.entry(pos).coll.is_none() => shard.set_range(pos, offset as usize, data),
                    _ => {
                        let mut value = vec![0u8; end];
                        value[offset as usize..].copy_from_slice(data);
                        shard.upsert(hash, key, &value, NO_EXPIRE, self.initial_access(now));
                    }
                }
            }
            Mutation::FlushAll => unreachable!("FlushAll is applied to every shard by the caller"),
            ref elem => self.apply_element(shard, hash, elem, now),
        }
    }

    /// Applies a collection element mutation: creates the collection when the key is missing (or holds
    /// another type: the log only records changes the commands allowed), and removes it when it empties.
    fn apply_element(&self, shard: &mut Shard, hash: u64, m: &Mutation<'_>, now: u64) {
        let (key, kind) = match *m {
            Mutation::HSet { key, .. } | Mutation::HDel { key, .. } => (key, Kind::Hash),
            Mutation::LPut { key, .. } | Mutation::LDel { key, .. } | Mutation::LKeep { key, .. } => (key, Kind::List),
            Mutation::SAdd { key, .. } | Mutation::SRem { key, .. } => (key, Kind::Set),
            Mutation::ZSet { key, .. } | Mutation::ZRem { key, .. } => (key, Kind::ZSet),
            _ => unreachable!("queue and stream mutations are applied by their stores"),
        };
        let creates =
            matches!(m, Mutation::HSet { .. } | Mutation::LPut { .. } | Mutation::SAdd { .. } | Mutation::ZSet { .. });
        let pos = match shard.find(hash, key) {
            Some(p) if shard.entry(p).kind() == kind => p,
            Some(_) | None if !creates => return,
            _ => shard.upsert_coll(hash, key, Coll::empty(kind), NO_EXPIRE, self.initial_access(now)),
        };
        shard.with_coll(pos, |c| match (c, m) {
            (Coll::Hash(h), Mutation::HSet { field, value, .. }) => h.set(field, value),
            (Coll::Hash(h), Mutation::HDel { field, .. }) => {
                h.del(field);
            }
            (Coll::List(l), Mutation::LPut { idx, value, .. }) => l.put(*idx, value),
            (Coll::List(l), Mutation::LDel { idx, .. }) => l.del(*idx),
            (Coll::List(l), Mutation::LKeep { lo, hi, .. }) => l.keep(*lo, *hi),
            (Coll::Set(s), Mutation::SAdd { member, .. }) => {
                s.add(member);
            }
            (Coll::Set(s), Mutation::SRem { member, .. }) => {
                s.remove(member);
            }
            (Coll::ZSet(z), Mutation::ZSet { member, score, .. }) => z.set(member, *score),
            (Coll::ZSet(z), Mutation::ZRem { member, .. }) => {
                z.remove(member);
            }
            _ => {}
        });
        if shard.entry(pos).coll.as_ref().is_some_and(|c| c.is_empty()) {
            shard.remove_at(pos, hash);
        }
    }

    /// Empties every shard. The entries are freed on a thread of their own (as Redis's lazy free), so a
    /// large keyspace is not freed under the shard locks or on the caller's thread.
    fn apply_flush(&self, locked: &mut Locked<'_>) {
        let garbage: Vec<Vec<shard::Entry>> = locked.guards.iter_mut().map(|(_, shard)| shard.clear()).collect();
        let entries: usize = garbage.iter().map(Vec::len).sum();
        if entries < 10_000 {
            drop(garbage);
        } else if let Err(e) = std::thread::Builder::new().name("synap-free".into()).spawn(move || drop(garbage)) {
            // Freed here after all, once the thread could not start.
            tracing::warn!(error = %e, "cannot start a thread to free the flushed keyspace");
        }
    }

    /// Applies a batch and appends it to the log: the write path of every command. The caller holds the
    /// locks of every shard the batch touches (`locked`), so log order matches apply order per key.
    pub(crate) fn commit(&self, locked: &mut Locked<'_>, batch: &[Mutation<'_>], now: u64) -> u64 {
        for m in batch {
            match *m {
                Mutation::FlushAll => self.apply_flush(locked),
                ref single => {
                    let key = single_key(single);
                    let h = self.hash(key);
                    let shard = locked.get(self.shard_of(h));
                    self.apply_local(shard, h, single, now);
                }
            }
        }
        self.log_batch(batch)
    }

    /// Single-shard form of [`Self::commit`].
    pub(crate) fn commit_one(&self, shard: &mut Shard, hash: u64, m: Mutation<'_>, now: u64) -> u64 {
        self.apply_local(shard, hash, &m, now);
        self.log_batch(std::slice::from_ref(&m))
    }

    /// [`Self::commit`] for a batch whose mutations all name keys of one locked shard (`hash`'s).
    pub(crate) fn commit_shard(&self, shard: &mut Shard, hash: u64, batch: &[Mutation<'_>], now: u64) -> u64 {
        for m in batch {
            self.apply_local(shard, hash, m, now);
        }
        self.log_batch(batch)
    }

    fn log_batch(&self, batch: &[Mutation<'_>]) -> u64 {
        if self.watch.active() {
            for m in batch {
                match m {
                    Mutation::FlushAll => self.watch.touch_all(),
                    m => self.watch.touch(single_key(m)),
                }
            }
        }
        if self.blockers.active() {
            for m in batch {
                if let Mutation::LPut { key, .. } | Mutation::ZSet { key, .. } | Mutation::Restore { key, .. } = m {
                    self.blockers.wake(key);
                }
            }
        }
        self.log.append(batch)
    }

    /// Clients watching keys (WATCH).
    pub fn watches(&self) -> &WatchRegistry {
        &self.watch
    }

    /// Clients blocked on keys (BLPOP, BZPOPMIN, ...).
    pub fn blockers(&self) -> &Blockers {
        &self.blockers
    }

    /// The replay applier: applies a decoded batch without logging it (recovery, replicas).
    pub fn apply_batch(&self, batch: &[Mutation<'_>]) {
        let now = self.now();
        let mut hashes = Vec::with_capacity(batch.len() * 2);
        let mut all = false;
        for m in batch {
            match *m {
                Mutation::FlushAll => all = true,
                ref single => hashes.push(self.hash(single_key(single))),
            }
        }
        let mut locked = if all { self.lock_all() } else { self.lock_many(hashes) };
        for m in batch {
            match *m {
                Mutation::FlushAll => self.apply_flush(&mut locked),
                ref single => {
                    let h = self.hash(single_key(single));
                    let shard = locked.get(self.shard_of(h));
                    self.apply_local(shard, h, single, now);
                }
            }
        }
    }

    /// Encodes up to `max` live entries as one batch of `Set` mutations into `out`, continuing from `cursor`;
    /// returns how many were encoded, or `None` once every shard is done. Each call holds one shard lock
    /// briefly, so a snapshot never stalls writes for its whole duration. Positions are walked downwards as
    /// SCAN does, so a key present throughout is always written (see `scan`).
    pub fn snapshot_chunk(&self, cursor: &mut SnapshotCursor, max: usize, out: &mut Vec<u8>) -> Option<usize> {
        if let Some((n, batch)) = cursor.queued.pop_front() {
            out.extend_from_slice(&n.to_le_bytes());
            out.extend_from_slice(&batch);
            return Some(n as usize);
        }
        let now = self.now();
        while cursor.shard < self.shards.len() {
            let shard = self.shards[cursor.shard].lock();
            let mut pos = cursor.remaining.min(shard.len());
            if pos == 0 {
                drop(shard);
                cursor.shard += 1;
                cursor.remaining = usize::MAX;
                continue;
            }
            let mut batch = Vec::with_capacity(max.min(pos));
            let mut encoded: Vec<(usize, Vec<u8>)> = Vec::new();
            let mut bytes = 0usize;
            while pos > 0 && batch.len() < max && bytes < cursor.chunk_bytes {
                pos -= 1;
                let e = shard.entry(pos);
                if !e.is_expired(now) {
                    match &e.coll {
                        None => {
                            bytes += e.key().len() + e.value().len();
                            batch.push(Mutation::Set { key: e.key(), value: e.value(), expire_at: e.expire_at });
                        }
                        Some(c) if c.mem() > cursor.chunk_bytes => {
                            // Too large for one record: its elements follow in chunks of their own, and
                            // this call stops here, so one call encodes at most one such collection.
                            cursor.queued.extend(collection_batches(e.key(), c, e.expire_at, cursor.chunk_bytes));
                            break;
                        }
                        Some(c) => {
                            // Placeholder now, the collection's encoding after the loop (it must outlive `batch`).
                            let data = c.encode();
                            bytes += e.key().len() + data.len();
                            encoded.push((batch.len(), data));
                            batch.push(Mutation::Del { key: e.key() });
                        }
                    }
                }
            }
            for (i, data) in &encoded {
                let e_key = single_key(&batch[*i]);
                let pos = shard.find(self.hash(e_key), e_key).expect("entry present under the lock");
                let e = shard.entry(pos);
                let kind = e.kind() as u8;
                batch[*i] = Mutation::Restore { key: e.key(), kind, data, expire_at: e.expire_at };
            }
            crate::mutation::encode_batch(&batch, out);
            cursor.remaining = pos;
            return Some(batch.len());
        }
        None
    }

    /// Number of live and not-yet-reclaimed keys.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn stats(&self) -> KvStats {
        let (mut keys, mut volatile_keys) = (0, 0);
        for s in self.shards.iter() {
            let g = s.lock();
            keys += g.len();
            volatile_keys += g.volatile_len();
        }
        KvStats {
            keys,
            volatile_keys,
            used_memory: self.used_memory(),
            max_memory: self.config.max_memory,
            eviction: self.config.eviction,
            hits: self.counters.hits.load(Ordering::Relaxed),
            misses: self.counters.misses.load(Ordering::Relaxed),
            expired: self.counters.expired.load(Ordering::Relaxed),
            evicted: self.counters.evicted.load(Ordering::Relaxed),
            shards: self.shards.len(),
        }
    }

    /// An order-independent digest of every live key, value and expiry at time `now`. Two keyspaces with
    /// the same contents have the same digest, whatever their history, shard count or hash seed.
    pub fn digest(&self, now: u64) -> u64 {
        let mut sum = 0u64;
        let mut count = 0u64;
        for s in self.shards.iter() {
            let g = s.lock();
            for e in g.iter().filter(|e| !e.is_expired(now)) {
                let mut h = fnv1a(FNV_OFFSET, e.key());
                h = fnv1a(h, &[0xff, e.kind() as u8]);
                match &e.coll {
                    None => h = fnv1a(h, e.value()),
                    Some(c) => h = fnv1a(h, &c.digest()),
                }
                h = fnv1a(h, &e.expire_at.to_le_bytes());
                sum = sum.wrapping_add(mix(h));
                count += 1;
            }
        }
        mix(sum ^ count.rotate_left(32))
    }
}

fn single_key<'a>(m: &Mutation<'a>) -> &'a [u8] {
    match *m {
        Mutation::Set { key, .. }
        | Mutation::Del { key }
        | Mutation::SetExpire { key, .. }
        | Mutation::SetRange { key, .. } => key,
        Mutation::Restore { key, .. }
        | Mutation::HSet { key, .. }
        | Mutation::HDel { key, .. }
        | Mutation::LPut { key, .. }
        | Mutation::LDel { key, .. }
        | Mutation::LKeep { key, .. }
        | Mutation::SAdd { key, .. }
        | Mutation::SRem { key, .. }
        | Mutation::ZSet { key, .. }
        | Mutation::ZRem { key, .. } => key,
        Mutation::FlushAll => unreachable!("not a single-key mutation"),
        _ => unreachable!("queue mutations are applied by the queue store"),
    }
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

fn fnv1a(mut h: u64, data: &[u8]) -> u64 {
    for &b in data {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// A 64-bit finalizer (splitmix64), so that sums of digests do not cancel easily.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
