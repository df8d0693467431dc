//! The key-value store: a sharded keyspace with TTLs, active expiry, eviction and SCAN, holding every key
//! of every type (a stream's entry names it; its events live in the stream store).
//!
//! Layout:
//! - `mod`      (this file) the keyspace: shard selection, locking, lazy expiry, the commit point
//! - `shard`    one shard's data structure (dense entries + hash index + volatile list)
//! - `value`    collection values (hash, list, set, sorted set) and their encodings
//! - `apply`    the one applier of mutations (commands and replay)
//! - `access`   how collection commands read and commit under their shard locks
//! - `strings`, `keys`, `hash`, `list`, `set`, `zset`: the commands, by type
//! - `evict`, `expire`, `scan`, `snapshot`: memory limit, active expiry, KEYS/SCAN, snapshots and digest
//!
//! Lock rule: each shard sits behind its own `parking_lot::Mutex`, held only for the few operations of one
//! command and never across an `.await` (the engine has none). Commands that touch several shards lock them
//! in ascending shard order. The mutation log's own lock is taken while shard locks are held (shard -> log),
//! never the other way round; so are the stream store's locks when a command removes a stream (see
//! `docs/locks.md`).

mod access;
mod apply;
mod bitfield;
mod bits;
mod dump;
mod evict;
mod expire;
mod geo;
mod hash;
mod hll;
mod keys;
mod lcs;
mod list;
mod scan;
mod set;
pub(crate) mod shard;
mod snapshot;
mod sort;
mod strings;
pub(crate) mod value;
mod zset;

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use foldhash::fast::FixedState;
use parking_lot::{Mutex, MutexGuard};

pub(crate) use apply::Mode;
pub(crate) use bitfield::parse_offset as bitfield_offset;
pub use dump::RestoreOpts;
pub use evict::EvictionPolicy;
pub(crate) use evict::{EvictStep, MAX_EVICTIONS_PER_CALL};
pub use expire::ExpireReport;
pub(crate) use geo::geohash_score;
pub use scan::decode_cursor;
pub(crate) use shard::{NO_EXPIRE, Shard};
pub(crate) use snapshot::SNAPSHOT_CHUNK_BYTES;
pub use snapshot::SnapshotCursor;
pub(crate) use value::{Coll, Kind};
pub use value::{ENCODINGS, Encodings, LIST_PACK_MAX_ITEMS};

use crate::blocking::Blockers;
use crate::clock::Clock;
use crate::multi::WatchRegistry;
use crate::mutation::{LogSlot, Mutation};
use crate::notify::{Class, Notifier};

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
    /// Number of databases (SELECT 0 to `databases - 1`), at most [`MAX_DATABASES`].
    pub databases: usize,
}

/// The most databases an engine has (each used one is a keyspace of its own).
pub const MAX_DATABASES: usize = 1024;

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
            databases: 16,
        }
    }
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

/// What the keyspace asks of the stream store, whose streams it holds entries for. Called with the key's
/// shard locked (lock order: keyspace shard -> stream store), so that a key is a stream in both or in
/// neither. `log`: a command's change, recorded by the stream store; otherwise a replay's.
pub trait StreamKeys: Send + Sync {
    /// The stream `key` goes; returns the LSN of its logged deletion (0: none).
    fn remove(&self, key: &[u8], log: bool) -> u64;
    /// Every stream goes (FLUSHALL).
    fn flush(&self, log: bool) -> u64;
    /// The stream `from` is renamed `to` (which holds nothing now); returns the LSN of the record.
    fn rename(&self, from: &[u8], to: &[u8]) -> crate::error::Result<u64>;
}

/// A keyspace event a change raises: its class (notify-keyspace-events flag), name and key.
pub(crate) type Event<'a> = (Class, &'static str, &'a [u8]);

/// One database: a keyspace. The databases of an engine share the memory count and limits, the counters,
/// the expiry switches, the log and the registries (see [`Keyspace::sibling`]).
pub struct Keyspace {
    shards: Box<[Mutex<Shard>]>,
    hasher: FixedState,
    pub(crate) config: KvConfig,
    used: Arc<AtomicUsize>,
    pub(crate) counters: Arc<KvCounters>,
    /// This database's index (SWAPDB changes it): its records are logged under it, its notifications
    /// and watched and blocked keys carry it.
    db: std::sync::atomic::AtomicU32,
    clock: Arc<dyn Clock>,
    log: Arc<LogSlot>,
    /// Where the next active-expiry pass starts.
    expire_cursor: AtomicUsize,
    notifier: Arc<Notifier>,
    watch: Arc<WatchRegistry>,
    blockers: Arc<Blockers>,
    /// The stream store (installed once by the engine).
    streams: OnceLock<Arc<dyn StreamKeys>>,
    /// The expiry switches, shared by every database.
    expiry: Arc<ExpirySwitches>,
    /// The memory limit and eviction settings (changeable at run time).
    pub(crate) limits: Arc<evict::Limits>,
}

#[derive(Debug)]
struct ExpirySwitches {
    /// Expired keys are hidden but not removed (see [`Keyspace::reclaims_expired`]).
    passive: AtomicBool,
    /// DEBUG SET-ACTIVE-EXPIRE 0 turns the active expiry cycle off (lazy expiry goes on).
    active: AtomicBool,
}

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
    pub fn new(
        config: KvConfig,
        clock: Arc<dyn Clock>,
        log: Arc<LogSlot>,
        notifier: Arc<Notifier>,
        watch: Arc<WatchRegistry>,
        blockers: Arc<Blockers>,
    ) -> Keyspace {
        let n = config.shards.max(1).next_power_of_two();
        let hasher = FixedState::with_seed(rand::random());
        let used = Arc::new(AtomicUsize::new(0));
        let shards = (0..n).map(|_| Mutex::new(Shard::new(hasher.clone(), used.clone()))).collect();
        Keyspace {
            shards,
            hasher,
            limits: Arc::new(evict::Limits::new(config.max_memory, config.eviction, config.eviction_samples)),
            config: KvConfig { shards: n, ..config },
            used,
            counters: Arc::default(),
            db: 0.into(),
            clock,
            log,
            expire_cursor: AtomicUsize::new(0),
            notifier,
            watch,
            blockers,
            streams: OnceLock::new(),
            expiry: Arc::new(ExpirySwitches { passive: AtomicBool::new(false), active: AtomicBool::new(true) }),
        }
    }

    /// Database `db` of the same engine: an empty keyspace sharing this one's memory count and limits,
    /// counters, expiry switches, log, registries and stream store.
    pub(crate) fn sibling(&self, db: u32) -> Keyspace {
        let hasher = FixedState::with_seed(rand::random());
        let shards =
            (0..self.shards.len()).map(|_| Mutex::new(Shard::new(hasher.clone(), self.used.clone()))).collect();
        let streams = OnceLock::new();
        if let Some(s) = self.streams.get() {
            let _ = streams.set(s.clone());
        }
        Keyspace {
            shards,
            hasher,
            config: self.config.clone(),
            used: self.used.clone(),
            counters: self.counters.clone(),
            db: db.into(),
            clock: self.clock.clone(),
            log: self.log.clone(),
            expire_cursor: AtomicUsize::new(0),
            notifier: self.notifier.clone(),
            watch: self.watch.clone(),
            blockers: self.blockers.clone(),
            streams,
            expiry: self.expiry.clone(),
            limits: self.limits.clone(),
        }
    }

    /// This database's index.
    pub fn db(&self) -> u32 {
        self.db.load(Ordering::Acquire)
    }

    /// SWAPDB: this keyspace is database `db` from now on.
    pub(crate) fn set_db(&self, db: u32) {
        self.db.store(db, Ordering::Release);
    }

    /// A keyspace on its own (no log, no notifications), for tests and tools.
    pub fn standalone(config: KvConfig, clock: Arc<dyn Clock>) -> Keyspace {
        Keyspace::new(
            config,
            clock,
            Arc::new(LogSlot::default()),
            Arc::new(Notifier::default()),
            Arc::default(),
            Arc::default(),
        )
    }

    /// Installs the stream store (once).
    pub fn set_streams(&self, streams: Arc<dyn StreamKeys>) {
        let _ = self.streams.set(streams);
    }

    /// Raises a keyspace notification (when notifications are on).
    pub(crate) fn notify(&self, class: Class, event: &'static str, key: &[u8]) {
        self.notifier.emit(self.db(), class, event, key);
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
        self.limits.policy().initial_access(now)
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

    /// Like [`Self::find_live`], and records the access for LRU/LFU.
    pub(crate) fn touch_live(&self, shard: &mut Shard, hash: u64, key: &[u8], now: u64) -> Option<usize> {
        let pos = self.find_live(shard, hash, key, now)?;
        let e = shard.entry_mut(pos);
        e.access = self.limits.policy().touch(e.access, now);
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
        !self.expiry.passive.load(Ordering::Acquire) && self.log.takes_local_changes()
    }

    /// Stops (or resumes) reclaiming expired keys by this keyspace's own clock (replicas).
    /// CONFIG SET maxmemory: the memory limit in bytes (0: none).
    pub fn set_max_memory(&self, bytes: usize) {
        self.limits.set_max_memory(bytes);
    }

    /// CONFIG SET maxmemory-policy.
    pub fn set_eviction_policy(&self, policy: EvictionPolicy) {
        self.limits.set_policy(policy);
    }

    /// CONFIG SET maxmemory-samples.
    pub fn set_eviction_samples(&self, n: usize) {
        self.limits.set_samples(n);
    }

    /// The eviction sample count in force.
    pub fn eviction_samples(&self) -> usize {
        self.limits.samples()
    }

    /// DEBUG SET-ACTIVE-EXPIRE.
    pub fn set_active_expiry(&self, on: bool) {
        self.expiry.active.store(on, Ordering::Release);
    }

    pub fn active_expiry(&self) -> bool {
        self.expiry.active.load(Ordering::Acquire)
    }

    pub fn set_passive_expiry(&self, passive: bool) {
        self.expiry.passive.store(passive, Ordering::Release);
    }

    /// Removes the entry at `pos` through the write path as a logged `Del` (a stream's entry takes its
    /// stream with it): expiry and eviction, so that replay and replicas never find the old value under a
    /// key re-created later. Returns the LSN.
    pub(crate) fn remove_logged(&self, shard: &mut Shard, pos: usize, hash: u64, event: Event<'_>) -> u64 {
        let key = shard.entry(pos).key().to_vec();
        self.commit_one(shard, hash, Mutation::Del { key: &key }, self.now(), Some(event))
    }

    /// Removes the expired entry at `pos` (see [`Self::remove_logged`]).
    pub(crate) fn expire_entry(&self, shard: &mut Shard, pos: usize, hash: u64) {
        let key = shard.entry(pos).key().to_vec();
        self.remove_logged(shard, pos, hash, (Class::Expired, "expired", &key));
        self.counters.expired.fetch_add(1, Ordering::Relaxed);
    }

    /// Applies a batch and appends it to the log: the write path of every command. The caller holds the
    /// locks of every shard the batch touches (`locked`), so log order matches apply order per key.
    /// `events` are raised once the batch is logged.
    pub(crate) fn commit(
        &self,
        locked: &mut Locked<'_>,
        batch: &[Mutation<'_>],
        now: u64,
        events: &[Event<'_>],
    ) -> u64 {
        for m in batch {
            match *m {
                Mutation::FlushAll => {
                    self.apply_flush(locked, Mode::Command);
                }
                ref single => {
                    let key = apply::single_key(single);
                    let h = self.hash(key);
                    let shard = locked.get(self.shard_of(h));
                    self.apply_local(shard, h, single, now, Mode::Command);
                }
            }
        }
        self.log_batch(batch, events)
    }

    /// Single-shard, single-mutation form of [`Self::commit`].
    pub(crate) fn commit_one(
        &self,
        shard: &mut Shard,
        hash: u64,
        m: Mutation<'_>,
        now: u64,
        event: Option<Event<'_>>,
    ) -> u64 {
        self.apply_local(shard, hash, &m, now, Mode::Command);
        self.log_batch(std::slice::from_ref(&m), event.as_slice())
    }

    /// [`Self::commit`] for a batch whose mutations all name keys of one locked shard (`hash`'s).
    pub(crate) fn commit_shard(
        &self,
        shard: &mut Shard,
        hash: u64,
        batch: &[Mutation<'_>],
        now: u64,
        events: &[Event<'_>],
    ) -> u64 {
        for m in batch {
            self.apply_local(shard, hash, m, now, Mode::Command);
        }
        self.log_batch(batch, events)
    }

    /// The point of change: the batch is logged, watchers of its keys are told, blocked clients woken,
    /// keyspace notifications raised.
    fn log_batch(&self, batch: &[Mutation<'_>], events: &[Event<'_>]) -> u64 {
        let db = self.db();
        if self.watch.active() {
            for m in batch {
                match m {
                    // The flush's caller tells the watchers of the keys that existed (`flush_db`).
                    Mutation::FlushAll => {}
                    m => self.watch.touch(db, apply::single_key(m)),
                }
            }
        }
        if self.blockers.active() {
            for m in batch {
                if let Mutation::LPut { key, .. } | Mutation::ZSet { key, .. } | Mutation::Restore { key, .. } = m {
                    self.blockers.wake(db, key);
                }
            }
        }
        let lsn = if db == 0 {
            self.log.append(batch)
        } else {
            // The records of another database than 0 say which one, and end back in 0 (a transaction's
            // record holds changes to several).
            let mut framed = Vec::with_capacity(batch.len() + 2);
            framed.push(Mutation::SelectDb { db });
            framed.extend_from_slice(batch);
            framed.push(Mutation::SelectDb { db: 0 });
            self.log.append(&framed)
        };
        for &(class, event, key) in events {
            self.notify(class, event, key);
        }
        lsn
    }

    /// Clients watching keys (WATCH).
    pub fn watches(&self) -> &WatchRegistry {
        &self.watch
    }

    /// Clients blocked on keys (BLPOP, BZPOPMIN, ...).
    pub fn blockers(&self) -> &Blockers {
        &self.blockers
    }

    /// Number of live and not-yet-reclaimed keys.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// CONFIG RESETSTAT: hits, misses, expired and evicted from zero (shared by every database).
    pub fn reset_counters(&self) {
        let c = &self.counters;
        for a in [&c.hits, &c.misses, &c.expired, &c.evicted] {
            a.store(0, Ordering::Relaxed);
        }
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
            max_memory: self.limits.max_memory(),
            eviction: self.limits.policy(),
            hits: self.counters.hits.load(Ordering::Relaxed),
            misses: self.counters.misses.load(Ordering::Relaxed),
            expired: self.counters.expired.load(Ordering::Relaxed),
            evicted: self.counters.evicted.load(Ordering::Relaxed),
            shards: self.shards.len(),
        }
    }
}
