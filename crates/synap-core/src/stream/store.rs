//! The stream store: streams ("rooms") by name, their creation, deletion and renaming, the applier,
//! snapshots and retention. Partitions are in `partition`, consumer groups in `group`, commands in `ops`.
//!
//! Every stream is also a key: the keyspace holds an entry for it (its name, type and expiry). A stream
//! is created, deleted and renamed with that key's shard locked (by the engine, or by the keyspace through
//! [`StreamKeys`]), so that a name is a stream in both or in neither.
//!
//! Locks: keyspace shard, then the room map, then a room's groups, then one of its partitions (never the
//! other way round). An append holds only its partition's lock while it takes the offset, writes the event
//! and logs the mutation, so the log order of one partition's events is their offset order.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use tokio::sync::Notify;

use super::group::{Group, Rec};
use super::partition::Partition;
use super::{RoomConfig, StreamId, StreamStorage, event_header};
use crate::clock::Clock;
use crate::error::{CommandError, Result};
use crate::kv::StreamKeys;
use crate::multi::WatchRegistry;
use crate::mutation::{LogSlot, Mutation, PENDING_LSN, StreamOp, encode_one};
use crate::notify::{Class, Notifier};

/// Store-wide stream settings.
#[derive(Debug, Clone)]
pub struct StreamSettings {
    /// Configuration of streams created without explicit options.
    pub defaults: RoomConfig,
    pub max_partitions: u32,
    pub max_rooms: usize,
    /// Largest event (record bytes: fields, key and a small header).
    pub max_event_bytes: usize,
    /// Newest events kept in memory per partition for readers near the tail (disk-backed storage only).
    pub tail_cache_bytes: usize,
    /// Most events one read returns.
    pub max_read: usize,
    /// Publishing to a missing stream creates it (with the defaults).
    pub auto_create: bool,
    /// Redelivery delay of pending events for groups created through Synap's API without one.
    pub group_redeliver_ms: u64,
    /// Most consumer groups one stream has.
    pub max_groups: usize,
    /// Most consumers one group remembers (consumer names are whatever clients send).
    pub max_consumers: usize,
}

impl Default for StreamSettings {
    fn default() -> Self {
        StreamSettings {
            defaults: RoomConfig::default(),
            max_partitions: 256,
            max_rooms: 10_000,
            max_event_bytes: 1 << 20,
            tail_cache_bytes: 1 << 20,
            max_read: 10_000,
            auto_create: true,
            group_redeliver_ms: 30_000,
            max_groups: 1000,
            max_consumers: 10_000,
        }
    }
}

/// Most bytes one read gathers (besides the event count limit).
pub(crate) const MAX_READ_BYTES: usize = 16 << 20;
/// Longest stream name (names become directory names on disk, hex encoded).
pub const MAX_ROOM_NAME: usize = 120;

pub(crate) struct Room {
    pub name: Bytes,
    /// The name its files are stored under (its first name: a renamed stream keeps its files).
    pub storage: Bytes,
    /// Tells this stream apart from earlier ones of the same name (its files are its own).
    pub instance: u64,
    pub config: Mutex<RoomConfig>,
    pub parts: Vec<Mutex<Partition>>,
    pub groups: Mutex<BTreeMap<Bytes, Group>>,
    pub rr: AtomicU32,
    pub notify: Arc<Notify>,
    pub deleted: AtomicBool,
    pub published: AtomicU64,
    pub created_at: u64,
    /// LSN of the record that created this stream (0: created by replay, older than any snapshot to
    /// come; `PENDING_LSN` inside a transaction until it is logged). A snapshot leaves out streams
    /// created after its LSN: their whole history is in the log it keeps, and a stream of the same name
    /// deleted meanwhile must not have its records replayed onto the new one.
    pub created_lsn: AtomicU64,
}

impl Room {
    pub fn check(&self) -> Result<()> {
        if self.deleted.load(Ordering::Acquire) {
            return Err(CommandError::NotFound(format!("stream '{}' not found", String::from_utf8_lossy(&self.name))));
        }
        Ok(())
    }
}

/// Where a snapshot walk of the streams stands.
#[derive(Debug, Clone)]
pub struct StreamCursor {
    /// The streams as the walk began: names and instances.
    names: Option<Vec<(Bytes, u64)>>,
    /// Instances written so far (a stream renamed during the walk is written once, under its new name).
    written: HashSet<u64>,
    next_room: usize,
    queued: VecDeque<Vec<u8>>,
    /// The snapshot's LSN: streams created after it are left to the log.
    lsn: u64,
    /// A copy for a replica carries the events too (a snapshot file leaves them in the segments).
    events: bool,
    /// The stream whose events are being walked.
    walking: Option<EventWalk>,
}

/// Where the walk of one stream's events stands (copies for replicas).
#[derive(Clone)]
struct EventWalk {
    room: Arc<Room>,
    part: usize,
    /// The next offset to send, `u64::MAX` before the partition's first chunk.
    at: u64,
    /// The partition's next offset when its walk began: the walk stops there (later events are in the
    /// log after the copy's LSN, or were appended under it and replay skips them).
    end: u64,
    /// Each walked partition's `end`.
    ends: Vec<u64>,
}

impl std::fmt::Debug for EventWalk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventWalk").field("part", &self.part).field("at", &self.at).finish()
    }
}

impl Default for StreamCursor {
    fn default() -> Self {
        StreamCursor::at_lsn(u64::MAX - 1)
    }
}

impl StreamCursor {
    /// A walk for a snapshot at `lsn`.
    pub fn at_lsn(lsn: u64) -> StreamCursor {
        StreamCursor {
            names: None,
            written: HashSet::new(),
            next_room: 0,
            queued: VecDeque::new(),
            lsn,
            events: false,
            walking: None,
        }
    }

    /// A walk for a full copy sent to a replica: with every retained event.
    pub fn with_events(mut self) -> StreamCursor {
        self.events = true;
        self
    }
}

pub struct StreamStore {
    /// Bytes the streams hold in memory: tail caches, in-memory logs, tombstones, pending entries.
    pub(crate) used: Arc<AtomicUsize>,
    /// Replay met a stream record it could not read.
    replay_errors: AtomicBool,
    pub(crate) rooms: RwLock<BTreeMap<Bytes, Arc<Room>>>,
    pub(crate) storage: Arc<dyn StreamStorage>,
    pub(crate) log: Arc<LogSlot>,
    pub(crate) clock: Arc<dyn Clock>,
    pub settings: StreamSettings,
    /// Woken when a stream is created (readers blocked on a missing stream).
    pub(crate) created: Arc<Notify>,
    pub(crate) notifier: Arc<Notifier>,
    pub(crate) watch: Arc<WatchRegistry>,
}

/// A stream whose partitions are open, not yet in the store ([`StreamStore::prepare`]).
pub(crate) struct Prepared {
    room: Room,
}

impl StreamStore {
    pub fn new(
        settings: StreamSettings,
        storage: Arc<dyn StreamStorage>,
        clock: Arc<dyn Clock>,
        log: Arc<LogSlot>,
        notifier: Arc<Notifier>,
        watch: Arc<WatchRegistry>,
    ) -> StreamStore {
        StreamStore {
            used: Arc::new(AtomicUsize::new(0)),
            replay_errors: AtomicBool::new(false),
            rooms: RwLock::new(BTreeMap::new()),
            storage,
            log,
            clock,
            settings,
            created: Arc::new(Notify::new()),
            notifier,
            watch,
        }
    }

    /// Logs a command's change to stream `room`: watchers of the key are told, and `event` (when given)
    /// is raised. Returns the LSN.
    pub(crate) fn logged(&self, room: &[u8], batch: &[Mutation<'_>], event: Option<&'static str>) -> u64 {
        if self.watch.active() {
            self.watch.touch(0, room);
        }
        let lsn = self.log.append(batch);
        if let Some(e) = event {
            self.notifier.emit(0, Class::Stream, e, room);
        }
        lsn
    }

    pub(crate) fn get(&self, name: &[u8]) -> Option<Arc<Room>> {
        self.rooms.read().get(name).cloned()
    }

    /// Bytes the streams hold in memory.
    pub fn used_memory(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    pub(crate) fn all(&self) -> Vec<Arc<Room>> {
        self.rooms.read().values().cloned().collect()
    }

    /// A handle woken after every append to `room` (and when it is deleted).
    pub fn waiter(&self, room: &[u8]) -> Option<Arc<Notify>> {
        self.get(room).map(|r| r.notify.clone())
    }

    /// A handle woken whenever a stream is created.
    pub fn creation_waiter(&self) -> Arc<Notify> {
        self.created.clone()
    }

    /// The id of the newest event of a single-partition stream (XREAD `$`), `None` when it is missing.
    pub fn last_id(&self, room: &[u8]) -> Option<StreamId> {
        self.get(room).map(|r| r.parts[0].lock().last)
    }

    /// A partition's first readable and next offsets, `None` when the stream or partition is missing.
    pub fn partition_bounds(&self, room: &[u8], partition: u32) -> Option<(u64, u64)> {
        let r = self.get(room)?;
        let p = r.parts.get(partition as usize)?.lock();
        Some((p.start, p.next()))
    }

    pub fn exists(&self, room: &[u8]) -> bool {
        self.rooms.read().contains_key(room)
    }

    pub fn room_count(&self) -> usize {
        self.rooms.read().len()
    }

    /// Checks a new stream's name and configuration and opens its partitions, outside every lock of the
    /// store (opening touches the disk). [`StreamStore::install`] puts it in the store.
    pub(crate) fn prepare(&self, name: &[u8], config: RoomConfig) -> Result<Prepared> {
        if name.is_empty() || name.len() > MAX_ROOM_NAME {
            return Err(CommandError::Invalid(format!("stream names must be 1 to {MAX_ROOM_NAME} bytes long")));
        }
        if config.partitions == 0 || config.partitions > self.settings.max_partitions {
            return Err(CommandError::Invalid(format!(
                "partitions must be between 1 and {}",
                self.settings.max_partitions
            )));
        }
        if self.room_count() >= self.settings.max_rooms {
            return Err(CommandError::Invalid(format!("too many streams (limit {})", self.settings.max_rooms)));
        }
        let instance = rand::random::<u64>().max(1);
        Ok(Prepared { room: self.open_room(name, name, config, instance) })
    }

    /// A room with its partitions opened (a partition that cannot be opened is failed: its commands
    /// report the error).
    fn open_room(&self, name: &[u8], storage: &[u8], config: RoomConfig, instance: u64) -> Room {
        let cache = if self.storage.in_memory() { 0 } else { self.settings.tail_cache_bytes };
        let parts = (0..config.partitions)
            .map(|p| {
                let mut part = match self.storage.open(storage, instance, p) {
                    Ok(log) => Partition::open(log, cache),
                    Err(e) => {
                        tracing::error!(error = %e, "opening a stream partition failed");
                        let mut part = Partition::open(Box::new(super::MemoryLog::new(1 << 20)), 0);
                        part.failed = Some(e);
                        part
                    }
                };
                part.attach(&self.used);
                Mutex::new(part)
            })
            .collect();
        Room {
            name: Bytes::copy_from_slice(name),
            storage: Bytes::copy_from_slice(storage),
            instance,
            config: Mutex::new(config),
            parts,
            groups: Mutex::new(BTreeMap::new()),
            rr: AtomicU32::new(0),
            notify: Arc::new(Notify::new()),
            deleted: AtomicBool::new(false),
            published: AtomicU64::new(0),
            created_at: self.clock.now_ms(),
            created_lsn: AtomicU64::new(0),
        }
    }

    /// Puts a prepared stream in the store and logs its creation (the caller holds its key's shard lock
    /// and saw no stream there). Returns the stream, or the one already there and the LSN 0.
    pub(crate) fn install(&self, prepared: Prepared) -> (Arc<Room>, u64) {
        let room = Arc::new(prepared.room);
        let mut map = self.rooms.write();
        if let Some(r) = map.get(&room.name[..]) {
            let existing = r.clone();
            drop(map);
            self.discard_instance(room.storage.clone(), room.instance);
            return (existing, 0);
        }
        map.insert(room.name.clone(), room.clone());
        let config = room.config.lock().encode_create(room.instance, &room.name, &room.storage);
        let lsn = self.logged(
            &room.name,
            &[Mutation::Stream { room: &room.name, op: StreamOp::Create { config: &config } }],
            None,
        );
        room.created_lsn.store(if self.log.is_capturing() { PENDING_LSN } else { lsn }, Ordering::Release);
        drop(map);
        self.created.notify_waiters();
        (room, lsn)
    }

    /// Removes the files of a prepared stream that was not installed.
    pub(crate) fn discard(&self, prepared: Prepared) {
        self.discard_instance(prepared.room.storage.clone(), prepared.room.instance);
    }

    fn discard_instance(&self, name: Bytes, instance: u64) {
        if let Err(e) = self.storage.remove(&name, instance, 0) {
            tracing::error!(error = %e, "removing an unused stream instance failed");
        }
    }

    /// The replay of a `Create` record: the stream as the record describes it (or its configuration
    /// updated, when it is there).
    fn create_replayed(&self, name: &[u8], storage: &[u8], config: RoomConfig, instance: u64) {
        if let Some(r) = self.get(name)
            && r.instance == instance
        {
            let mut c = r.config.lock();
            *c = RoomConfig { partitions: c.partitions, ..config };
            return;
        }
        // Another instance under the name (a snapshot that met a stream renamed over it) is replaced; its
        // files are left to `retain_files`.
        let room = Arc::new(self.open_room(name, storage, config, instance));
        if let Some(old) = self.rooms.write().insert(room.name.clone(), room) {
            old.deleted.store(true, Ordering::Release);
            old.notify.notify_waiters();
        }
        self.created.notify_waiters();
    }

    /// Removes a room: marks it deleted under all its locks, so no command writes to it afterwards. Its
    /// files go once the deletion is durable (`log`), or at once when replaying a record that is.
    pub(crate) fn remove_room(&self, name: &[u8], log: bool) -> Option<u64> {
        let room = self.rooms.write().remove(name)?;
        let groups = room.groups.lock();
        let parts: Vec<_> = room.parts.iter().map(|p| p.lock()).collect();
        room.deleted.store(true, Ordering::Release);
        let op = StreamOp::Delete { instance: Some(room.instance) };
        let lsn = if log { self.logged(name, &[Mutation::Stream { room: name, op }], None) } else { 0 };
        drop(parts);
        drop(groups);
        // Inside a transaction the deletion's LSN comes when the transaction is logged: the files wait.
        let durable_at = if log && self.log.is_capturing() { PENDING_LSN } else { lsn };
        if let Err(e) = self.storage.remove(&room.storage, room.instance, durable_at) {
            tracing::error!(error = %e, "removing stream files failed");
        }
        room.notify.notify_waiters();
        Some(lsn)
    }

    /// Renames a room: a new room takes its partitions, groups and counters under all the old one's
    /// locks, and the old one is marked deleted (a command that holds it finds it gone). Its files stay
    /// where they are. A stream under `to` is replaced: deleted, its files removed once the rename is
    /// durable. `log`: a command's rename (one logged record, under the locks), else a replay's.
    pub(crate) fn rename_room(&self, from: &[u8], to: &[u8], log: bool) -> Result<u64> {
        let mut map = self.rooms.write();
        let old = map
            .get(from)
            .cloned()
            .ok_or_else(|| CommandError::NotFound(format!("stream '{}' not found", String::from_utf8_lossy(from))))?;
        let replaced = map.get(to).cloned();
        let replaced_locks =
            replaced.as_ref().map(|r| (r.groups.lock(), r.parts.iter().map(|p| p.lock()).collect::<Vec<_>>()));
        if let Some(r) = &replaced {
            r.deleted.store(true, Ordering::Release);
        }
        let mut groups = old.groups.lock();
        let mut parts: Vec<_> = old.parts.iter().map(|p| p.lock()).collect();
        old.deleted.store(true, Ordering::Release);
        let moved = parts.iter_mut().map(|p| Mutex::new(std::mem::replace(&mut **p, Partition::moved()))).collect();
        let room = Arc::new(Room {
            name: Bytes::copy_from_slice(to),
            storage: old.storage.clone(),
            instance: old.instance,
            config: Mutex::new(*old.config.lock()),
            parts: moved,
            groups: Mutex::new(std::mem::take(&mut *groups)),
            rr: AtomicU32::new(old.rr.load(Ordering::Relaxed)),
            notify: Arc::new(Notify::new()),
            deleted: AtomicBool::new(false),
            published: AtomicU64::new(old.published.load(Ordering::Relaxed)),
            created_at: old.created_at,
            created_lsn: AtomicU64::new(old.created_lsn.load(Ordering::Acquire)),
        });
        let lsn = if log {
            let m = Mutation::Stream { room: from, op: StreamOp::Rename { to, instance: old.instance } };
            if self.watch.active() {
                self.watch.touch(0, to);
            }
            self.logged(from, &[m], None)
        } else {
            0
        };
        map.remove(from);
        map.insert(room.name.clone(), room);
        drop(parts);
        drop(groups);
        drop(replaced_locks);
        drop(map);
        if let Some(r) = replaced {
            // Inside a transaction the rename's LSN comes when the transaction is logged: the files wait.
            let durable_at = if log && self.log.is_capturing() { PENDING_LSN } else { lsn };
            if let Err(e) = self.storage.remove(&r.storage, r.instance, durable_at) {
                tracing::error!(error = %e, "removing stream files failed");
            }
            r.notify.notify_waiters();
        }
        old.notify.notify_waiters();
        self.created.notify_waiters();
        Ok(lsn)
    }

    /// Every stream goes (FLUSHALL); the LSN of the last logged deletion.
    pub(crate) fn flush_all(&self, log: bool) -> u64 {
        let names: Vec<Bytes> = self.rooms.read().keys().cloned().collect();
        names.iter().filter_map(|n| self.remove_room(n, log)).max().unwrap_or(0)
    }

    /// A transaction was logged at `lsn`: streams it created and deleted get that LSN.
    pub(crate) fn settle(&self, lsn: u64) {
        for room in self.all() {
            let _ = room.created_lsn.compare_exchange(PENDING_LSN, lsn, Ordering::AcqRel, Ordering::Relaxed);
        }
        self.storage.settle(lsn);
    }

    /// Removes the files of deleted streams whose deletion is durable up to `durable_lsn` (the server
    /// calls it as the log makes progress). Returns how many streams' files went.
    pub fn purge_files(&self, durable_lsn: u64) -> usize {
        self.storage.purge(durable_lsn).unwrap_or_else(|e| {
            tracing::error!(error = %e, "removing files of deleted streams failed");
            0
        })
    }

    /// After recovery: removes stored stream instances the recovered state does not hold (not after a
    /// replay that skipped records it could not read: their streams' files are kept for inspection).
    pub fn retain_files(&self) -> usize {
        if self.replay_errors.load(Ordering::Acquire) {
            tracing::warn!("stream records were skipped during recovery; leftover stream files are kept");
            return 0;
        }
        let live: Vec<(Bytes, u64)> = self.all().iter().map(|r| (r.storage.clone(), r.instance)).collect();
        self.storage.retain(&live).unwrap_or_else(|e| {
            tracing::error!(error = %e, "removing leftover stream files failed");
            0
        })
    }

    /// The replay applier for stream mutations.
    pub fn apply(&self, m: &Mutation<'_>) {
        let Mutation::Stream { room: name, op } = m else { return };
        if let StreamOp::Create { config } = op {
            let Some((config, instance, storage)) = RoomConfig::decode_create(config) else {
                // Guessing the instance would let `retain_files` remove the real one's files.
                tracing::error!(room = %String::from_utf8_lossy(name), "undecodable stream Create record skipped");
                self.replay_errors.store(true, Ordering::Release);
                return;
            };
            self.create_replayed(name, storage.unwrap_or(name), config, instance);
            return;
        }
        if let StreamOp::Rename { to, instance } = *op {
            match self.get(name) {
                Some(r) if r.instance == instance => {
                    let _ = self.rename_room(name, to, false);
                }
                // A snapshot taken after the rename already holds the stream under `to`.
                _ if self.get(to).is_some_and(|r| r.instance == instance) => {}
                _ => tracing::debug!(room = %String::from_utf8_lossy(name), "stream rename of a stream no longer held"),
            }
            return;
        }
        if let StreamOp::Delete { instance } = *op {
            match (self.get(name), instance) {
                (Some(r), Some(i)) if r.instance != i => {
                    // A newer stream of the same name (a fuzzy snapshot caught it): only the old files go.
                    if let Err(e) = self.storage.remove(name, i, 0) {
                        tracing::error!(error = %e, "removing stream files failed");
                    }
                }
                _ => {
                    self.remove_room(name, false);
                }
            }
            return;
        }
        let Some(room) = self.get(name) else {
            tracing::warn!(room = %String::from_utf8_lossy(name), "stream record for a missing stream skipped");
            return;
        };
        let part = |p: u32| room.parts.get(p as usize);
        match *op {
            StreamOp::Create { .. } | StreamOp::Delete { .. } | StreamOp::Rename { .. } => {}
            StreamOp::Append { partition, offset, body } => {
                let Some(p) = part(partition) else { return };
                let mut p = p.lock();
                let next = p.next();
                if offset < next {
                    // Already in the segment files (written before the crash or the snapshot).
                    if let Some((_, id)) = event_header(body) {
                        p.last = p.last.max(id);
                    }
                } else if offset == next {
                    p.push(offset, body);
                } else {
                    tracing::error!(
                        room = %String::from_utf8_lossy(name),
                        partition,
                        missing_from = next,
                        missing_to = offset,
                        "stream segments lack events the log does not hold; the gap is skipped"
                    );
                    p.failed.get_or_insert(format!("events {next}..{offset} of partition {partition} are missing"));
                }
            }
            StreamOp::Trim { partition, start } => {
                if let Some(p) = part(partition) {
                    p.lock().trim_to(start);
                }
            }
            StreamOp::Base { partition, offset } => {
                if let Some(p) = part(partition) {
                    let mut p = p.lock();
                    if p.next() < offset && p.next() == p.log.start() {
                        match p.log.rebase(offset) {
                            Ok(()) => p.start = offset,
                            Err(e) => {
                                tracing::error!(error = %e, "moving an empty stream partition failed");
                                p.failed.get_or_insert(e);
                            }
                        }
                    }
                }
            }
            StreamOp::Tombstone { partition, offset } => {
                if let Some(p) = part(partition) {
                    let mut p = p.lock();
                    if offset >= p.start && offset < p.next() {
                        p.tombstones.insert(offset);
                        p.recharge();
                    }
                }
            }
            StreamOp::Meta { partition, start, next, last } => {
                if let Some(p) = part(partition) {
                    let mut p = p.lock();
                    if next > p.next() {
                        tracing::error!(
                            room = %String::from_utf8_lossy(name),
                            partition,
                            snapshot_next = next,
                            stored_next = p.next(),
                            "stream segments hold fewer events than the snapshot recorded"
                        );
                    }
                    p.trim_to(start);
                    p.last = p.last.max(last);
                }
            }
            StreamOp::GroupCreate { group, config } => {
                let n = room.parts.len();
                let mut g = Group::decode_config(config, n).unwrap_or_else(|| Group::new(n, 0));
                g.attach(&self.used);
                room.groups.lock().insert(Bytes::copy_from_slice(group), g);
            }
            StreamOp::GroupDestroy { group } => {
                room.groups.lock().remove(group);
            }
            ref op => {
                if let Some((group, rec)) = Rec::from_op(op)
                    && let Some(g) = room.groups.lock().get_mut(&group[..])
                {
                    g.apply(&rec);
                }
            }
        }
    }

    /// Encodes the next chunk of a snapshot: stream configurations, partition counters, tombstones and
    /// group state. Events stay in the segment files (see [`StreamStore::sync`]).
    /// `expiry` gives a stream key's expiry (0: none), written after its creation.
    pub fn snapshot_chunk(
        &self,
        cursor: &mut StreamCursor,
        max: usize,
        out: &mut Vec<u8>,
        expiry: &dyn Fn(&[u8]) -> u64,
    ) -> Option<usize> {
        let mut renamed: Option<HashMap<u64, Arc<Room>>> = None;
        loop {
            if !cursor.queued.is_empty() {
                let n = cursor.queued.len().min(max.max(1));
                out.extend_from_slice(&(n as u32).to_le_bytes());
                for rec in cursor.queued.drain(..n) {
                    out.extend_from_slice(&rec);
                }
                return Some(n);
            }
            if let Some(walk) = &mut cursor.walking {
                if let Some(n) = Self::event_chunk(walk, max.max(1), out) {
                    return Some(n);
                }
                let walk = cursor.walking.take().expect("walking");
                Self::room_tail(&walk.room, Some(&walk.ends), &mut cursor.queued);
                continue;
            }
            let names = cursor
                .names
                .get_or_insert_with(|| self.rooms.read().iter().map(|(n, r)| (n.clone(), r.instance)).collect());
            let (name, instance) = names.get(cursor.next_room)?.clone();
            cursor.next_room += 1;
            let room = match self.get(&name) {
                Some(r) if r.instance == instance => Some(r),
                // Gone since the walk began: deleted, or renamed (then it is found by its instance and
                // written under its new name, as the log's rename record expects).
                _ => renamed
                    .get_or_insert_with(|| self.all().into_iter().map(|r| (r.instance, r)).collect())
                    .get(&instance)
                    .cloned(),
            };
            if let Some(room) = room
                && room.created_lsn.load(Ordering::Acquire) <= cursor.lsn
                && cursor.written.insert(instance)
            {
                Self::room_head(&room, expiry(&room.name), &mut cursor.queued);
                if cursor.events {
                    cursor.walking = Some(EventWalk { room, part: 0, at: u64::MAX, end: 0, ends: Vec::new() });
                } else {
                    Self::room_tail(&room, None, &mut cursor.queued);
                }
            }
        }
    }

    /// The next chunk of a stream's events (a copy for a replica): each partition's start (`Base`, when
    /// trimmed) and its events as `Append` records, deleted ones included (offsets are dense; the
    /// tombstones follow). `None` once every partition is walked.
    fn event_chunk(walk: &mut EventWalk, max: usize, out: &mut Vec<u8>) -> Option<usize> {
        let name = walk.room.name.clone();
        let mut records = Vec::new();
        let mut n = 0;
        let mut raw = Vec::new();
        while walk.part < walk.room.parts.len() {
            let partition = walk.part as u32;
            let mut p = walk.room.parts[walk.part].lock();
            if walk.at == u64::MAX {
                walk.at = p.start;
                walk.end = p.next();
                if p.start > 0 {
                    encode_one(
                        &Mutation::Stream { room: &name, op: StreamOp::Base { partition, offset: p.start } },
                        &mut records,
                    );
                    n += 1;
                }
            }
            let want = (max - n.min(max)).min((walk.end - walk.at.min(walk.end)) as usize);
            raw.clear();
            if want > 0
                && let Err(e) = p.log.read(walk.at, want, MAX_READ_BYTES, &mut raw)
            {
                tracing::error!(error = %e, "reading stream events for a replica failed");
            }
            drop(p);
            for (offset, body) in raw.drain(..) {
                walk.at = offset + 1;
                let op = StreamOp::Append { partition, offset, body: &body };
                encode_one(&Mutation::Stream { room: &name, op }, &mut records);
                n += 1;
            }
            // Done with this partition: everything up to its end sent, or nothing more to read.
            if walk.at >= walk.end || want == 0 || n == 0 {
                walk.ends.push(walk.end);
                walk.part += 1;
                walk.at = u64::MAX;
            }
            if n >= max || (n > 0 && walk.at != u64::MAX) {
                break;
            }
        }
        if n == 0 {
            return None;
        }
        out.extend_from_slice(&(n as u32).to_le_bytes());
        out.extend_from_slice(&records);
        Some(n)
    }

    /// A stream's creation (and its key's expiry).
    fn room_head(room: &Room, expire_at: u64, out: &mut VecDeque<Vec<u8>>) {
        let name = &room.name[..];
        let config = room.config.lock().encode_create(room.instance, &room.name, &room.storage);
        queue_record(out, Mutation::Stream { room: name, op: StreamOp::Create { config: &config } });
        if expire_at != 0 {
            // The key's expiry: a keyspace record (the engine's applier routes it there).
            queue_record(out, Mutation::SetExpire { key: name, expire_at });
        }
    }

    /// A stream's partition counters, tombstones and groups. `ends`: the offsets a copy's event walk
    /// went up to, which the counters it records do not pass.
    fn room_tail(room: &Room, ends: Option<&[u64]>, out: &mut VecDeque<Vec<u8>>) {
        let name = &room.name[..];
        let mut push = |op: StreamOp<'_>| queue_record(out, Mutation::Stream { room: name, op });
        let groups = room.groups.lock();
        for (i, p) in room.parts.iter().enumerate() {
            let p = p.lock();
            let partition = i as u32;
            let next = match ends.and_then(|e| e.get(i)) {
                Some(&end) => p.next().min(end),
                None => p.next(),
            };
            push(StreamOp::Meta { partition, start: p.start.min(next), next, last: p.last });
            for &offset in p.tombstones.range(..next) {
                push(StreamOp::Tombstone { partition, offset });
            }
        }
        for (gname, g) in groups.iter() {
            let config = g.encode_config();
            push(StreamOp::GroupCreate { group: gname, config: &config });
            for (c, state) in &g.consumers {
                push(StreamOp::Consumer { group: gname, consumer: c, seen_at: state.seen_at });
            }
            for (&(partition, offset), pe) in g.pending() {
                push(StreamOp::Pending {
                    group: gname,
                    partition,
                    offset,
                    id: pe.id,
                    consumer: &pe.consumer,
                    delivered_at: pe.delivered_at,
                    count: pe.count,
                });
            }
        }
    }
}

fn queue_record(out: &mut VecDeque<Vec<u8>>, m: Mutation<'_>) {
    let mut rec = Vec::new();
    encode_one(&m, &mut rec);
    out.push_back(rec);
}

impl StreamStore {
    /// Flushes and fsyncs every partition: called before a snapshot claims the events it covers. Each
    /// partition's lock is held only to hand its buffered events to the OS; the fsyncs run without it.
    pub fn sync(&self) -> std::result::Result<(), String> {
        for room in self.all() {
            for p in &room.parts {
                let job = p.lock().log.sync()?;
                job()?;
            }
        }
        Ok(())
    }

    /// Retention by age and size: moves partition starts up and drops whole segments. Returns the LSN of
    /// the last trim it logged.
    pub fn sweep(&self, now: u64, gate: &RwLock<()>) -> u64 {
        let mut lsn = 0;
        for room in self.all() {
            // The engine's transaction gate per stream, not for the whole pass.
            let _gate = gate.read();
            // Only where the log takes writes (a replica trims by its primary's records).
            if !self.log.takes_local_changes() {
                break;
            }
            let config = *room.config.lock();
            if config.max_bytes == 0 && config.max_age_ms == 0 {
                continue;
            }
            for (i, p) in room.parts.iter().enumerate() {
                let mut p = p.lock();
                if room.deleted.load(Ordering::Acquire) {
                    break;
                }
                let segments = p.log.segments();
                let mut start = p.start;
                if config.max_bytes > 0 {
                    let mut total: u64 = segments.iter().map(|s| s.bytes).sum();
                    for s in &segments[..segments.len().saturating_sub(1)] {
                        if total <= config.max_bytes {
                            break;
                        }
                        total -= s.bytes;
                        start = start.max(s.end);
                    }
                }
                if config.max_age_ms > 0 {
                    let cutoff = now.saturating_sub(config.max_age_ms);
                    for s in &segments {
                        if s.max_timestamp < cutoff && s.end > s.base {
                            start = start.max(s.end);
                        } else if s.end > s.base {
                            break;
                        }
                    }
                }
                if start > p.start {
                    p.trim_to(start);
                    let op = StreamOp::Trim { partition: i as u32, start };
                    lsn = self.log.append(&[Mutation::Stream { room: &room.name, op }]);
                }
            }
        }
        lsn
    }

    /// A digest of the stream state (names, partition counters, tombstones, groups).
    pub fn digest(&self) -> u64 {
        let mut h = std::hash::DefaultHasher::new();
        for room in self.all() {
            room.name.hash(&mut h);
            let groups = room.groups.lock();
            for p in &room.parts {
                let p = p.lock();
                (p.start, p.next(), p.last, &p.tombstones).hash(&mut h);
            }
            for (name, g) in groups.iter() {
                (name, &g.pos, &g.last).hash(&mut h);
                for (k, v) in g.pending() {
                    (k, v.id, &v.consumer, v.delivered_at, v.count).hash(&mut h);
                }
                for c in g.consumers.keys() {
                    c.hash(&mut h);
                }
            }
        }
        h.finish()
    }
}

impl StreamKeys for StreamStore {
    fn remove(&self, key: &[u8], log: bool) -> u64 {
        self.remove_room(key, log).unwrap_or(0)
    }

    fn flush(&self, log: bool) -> u64 {
        self.flush_all(log)
    }

    fn rename(&self, from: &[u8], to: &[u8]) -> Result<u64> {
        self.rename_room(from, to, true)
    }
}
