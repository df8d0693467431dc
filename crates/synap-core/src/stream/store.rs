//! The stream store: rooms, partitions, consumer groups, the applier, snapshots and retention.
//!
//! Locks: the room map, then a room's groups, then one of its partitions (never the other way round). An
//! append holds only its partition's lock while it takes the offset, writes the event and logs the
//! mutation, so the log order of one partition's events is their offset order.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use tokio::sync::Notify;

use super::{Event, PartitionLog, RoomConfig, StreamId, StreamStorage, event_header};
use crate::clock::Clock;
use crate::error::{CommandError, Result};
use crate::mutation::{LogSlot, Mutation, PENDING_LSN, StreamOp, encode_one};

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

pub(crate) struct Partition {
    pub log: Box<dyn PartitionLog>,
    /// First readable offset (at least the log's first stored one).
    pub start: u64,
    /// Id of the newest event ever appended (survives trimming, as Redis's last-generated-id).
    pub last: StreamId,
    /// Deleted events (XDEL) at or above `start`.
    pub tombstones: BTreeSet<u64>,
    /// Largest id deleted by XDEL.
    pub max_deleted: StreamId,
    cache: VecDeque<(u64, Bytes)>,
    cache_bytes: usize,
    cache_limit: usize,
    /// The first storage failure, reported to readers and writers.
    pub failed: Option<String>,
    /// Bytes held in memory (tail cache, an in-memory log, tombstones), charged to `used`.
    charged: usize,
    used: Option<Arc<AtomicUsize>>,
}

impl Drop for Partition {
    fn drop(&mut self) {
        if let Some(used) = &self.used {
            used.fetch_sub(self.charged, Ordering::Relaxed);
        }
    }
}

impl Partition {
    fn open(log: Box<dyn PartitionLog>, cache_limit: usize) -> Partition {
        let mut p = Partition {
            start: log.start(),
            log,
            last: StreamId::MIN,
            tombstones: BTreeSet::new(),
            max_deleted: StreamId::MIN,
            cache: VecDeque::new(),
            cache_bytes: 0,
            cache_limit,
            failed: None,
            charged: 0,
            used: None,
        };
        match p.log.last_id() {
            Ok(Some(id)) => p.last = id,
            Ok(None) => {}
            Err(e) => p.failed = Some(e),
        }
        p
    }

    pub fn next(&self) -> u64 {
        self.log.next()
    }

    /// Starts charging this partition's memory to `used`.
    fn attach(&mut self, used: &Arc<AtomicUsize>) {
        self.used = Some(used.clone());
        self.recharge();
    }

    /// Re-charges the partition for what it holds in memory.
    pub fn recharge(&mut self) {
        let bytes = self.cache_bytes + self.log.memory_bytes() as usize + self.tombstones.len() * 24;
        if let Some(used) = &self.used {
            if bytes >= self.charged {
                used.fetch_add(bytes - self.charged, Ordering::Relaxed);
            } else {
                used.fetch_sub(self.charged - bytes, Ordering::Relaxed);
            }
        }
        self.charged = bytes;
    }

    /// Live events (appended, retained, not deleted).
    pub fn len(&self) -> u64 {
        self.next().saturating_sub(self.start).saturating_sub(self.tombstones.len() as u64)
    }

    pub fn check(&self) -> Result<()> {
        match &self.failed {
            Some(e) => Err(CommandError::Internal(format!("stream storage failed: {e}"))),
            None => Ok(()),
        }
    }

    /// Appends at `offset` (the next one) in storage and the tail cache.
    pub fn push(&mut self, offset: u64, body: &[u8]) {
        if let Err(e) = self.log.append(offset, body) {
            tracing::error!(error = %e, "stream append failed");
            self.failed.get_or_insert(e);
            return;
        }
        if let Some((_, id)) = event_header(body) {
            self.last = self.last.max(id);
        }
        if self.cache_limit > 0 {
            self.cache.push_back((offset, Bytes::copy_from_slice(body)));
            self.cache_bytes += body.len();
            while self.cache_bytes > self.cache_limit {
                let Some((_, b)) = self.cache.pop_front() else { break };
                self.cache_bytes -= b.len();
            }
        }
        self.recharge();
    }

    /// Moves the start up (never down), dropping the segments and tombstones below it.
    pub fn trim_to(&mut self, start: u64) {
        let start = start.min(self.next());
        if start <= self.start {
            return;
        }
        self.start = start;
        self.tombstones = self.tombstones.split_off(&start);
        while self.cache.front().is_some_and(|(o, _)| *o < start) {
            let (_, b) = self.cache.pop_front().expect("front");
            self.cache_bytes -= b.len();
        }
        if let Err(e) = self.log.drop_before(start) {
            tracing::error!(error = %e, "dropping stream segments failed");
        }
        self.recharge();
    }

    /// Reads up to `max` live events from `from` (raised to `start`). Returns the events and the offset
    /// after the last one examined.
    pub fn read(&mut self, from: u64, max: usize) -> Result<(Vec<Event>, u64)> {
        self.check()?;
        let mut at = from.max(self.start);
        let next = self.next();
        let mut events = Vec::new();
        let mut bytes = 0usize;
        let mut raw = Vec::new();
        while events.len() < max && at < next && bytes < MAX_READ_BYTES {
            raw.clear();
            let want = (max - events.len()).min(1024);
            match self.cache.front() {
                Some(&(first, _)) if at >= first => {
                    let i = (at - first) as usize;
                    raw.extend(self.cache.range(i..).take(want).cloned());
                }
                _ => {
                    let limit = self.cache.front().map(|(o, _)| *o).unwrap_or(next);
                    self.log
                        .read(at, want.min((limit - at) as usize), MAX_READ_BYTES - bytes, &mut raw)
                        .map_err(|e| CommandError::Internal(format!("stream read failed: {e}")))?;
                }
            }
            if raw.is_empty() {
                break;
            }
            for (offset, body) in raw.drain(..) {
                at = offset + 1;
                if self.tombstones.contains(&offset) {
                    continue;
                }
                bytes += body.len();
                match Event::decode(offset, &body) {
                    Some(e) => events.push(e),
                    None => return Err(CommandError::Internal(format!("stream event at offset {offset} is corrupt"))),
                }
                if events.len() >= max {
                    break;
                }
            }
        }
        Ok((events, at))
    }

    /// One event, if live.
    pub fn get(&mut self, offset: u64) -> Result<Option<Event>> {
        if offset < self.start || offset >= self.next() || self.tombstones.contains(&offset) {
            return Ok(None);
        }
        let (events, _) = self.read(offset, 1)?;
        Ok(events.into_iter().next().filter(|e| e.offset == offset))
    }

    /// The first offset (at least `start`) whose id is at least `id`.
    pub fn seek_id(&mut self, id: StreamId) -> Result<u64> {
        if id <= StreamId::MIN {
            return Ok(self.start);
        }
        if id > self.last {
            return Ok(self.next());
        }
        let cached_first = self.cache.front().and_then(|(o, b)| event_header(b).map(|(_, i)| (*o, i)));
        let offset = match cached_first {
            Some((first, first_id)) if first_id <= id => {
                let i = self.cache.partition_point(|(_, b)| event_header(b).is_some_and(|(_, e)| e < id));
                first + i as u64
            }
            _ => self.log.seek_id(id).map_err(|e| CommandError::Internal(format!("stream seek failed: {e}")))?,
        };
        Ok(offset.max(self.start))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pending {
    pub id: StreamId,
    pub consumer: Bytes,
    pub delivered_at: u64,
    pub count: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ConsumerState {
    /// Last time the consumer read or claimed (Unix ms).
    pub seen_at: u64,
}

/// One change to a consumer group, as the log records it (`StreamOp::GroupPos`, `Pending`, `Ack`,
/// `Consumer`, `ConsumerDel`). Commands never change a group directly: they decide the changes first,
/// then [`StreamStore::commit_group`] applies them through [`Group::apply`] and logs them in one step, so
/// a command that fails half way (a storage error) has changed nothing, and replay runs the same code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Rec {
    Pos { partition: u32, pos: u64, last: StreamId },
    Pending { partition: u32, offset: u64, id: StreamId, consumer: Bytes, delivered_at: u64, count: u32 },
    Ack { partition: u32, offset: u64 },
    Consumer { consumer: Bytes, seen_at: u64 },
    ConsumerDel { consumer: Bytes },
}

impl Rec {
    /// The record as a logged operation of `group`.
    pub fn op<'a>(&'a self, group: &'a [u8]) -> StreamOp<'a> {
        match self {
            Rec::Pos { partition, pos, last } => {
                StreamOp::GroupPos { group, partition: *partition, pos: *pos, last: *last }
            }
            Rec::Pending { partition, offset, id, consumer, delivered_at, count } => StreamOp::Pending {
                group,
                partition: *partition,
                offset: *offset,
                id: *id,
                consumer,
                delivered_at: *delivered_at,
                count: *count,
            },
            Rec::Ack { partition, offset } => StreamOp::Ack { group, partition: *partition, offset: *offset },
            Rec::Consumer { consumer, seen_at } => StreamOp::Consumer { group, consumer, seen_at: *seen_at },
            Rec::ConsumerDel { consumer } => StreamOp::ConsumerDel { group, consumer },
        }
    }

    /// The group change a logged operation carries (`None` for operations that are not group changes).
    pub fn from_op(op: &StreamOp<'_>) -> Option<(Bytes, Rec)> {
        let b = Bytes::copy_from_slice;
        Some(match *op {
            StreamOp::GroupPos { group, partition, pos, last } => (b(group), Rec::Pos { partition, pos, last }),
            StreamOp::Pending { group, partition, offset, id, consumer, delivered_at, count } => {
                (b(group), Rec::Pending { partition, offset, id, consumer: b(consumer), delivered_at, count })
            }
            StreamOp::Ack { group, partition, offset } => (b(group), Rec::Ack { partition, offset }),
            StreamOp::Consumer { group, consumer, seen_at } => {
                (b(group), Rec::Consumer { consumer: b(consumer), seen_at })
            }
            StreamOp::ConsumerDel { group, consumer } => (b(group), Rec::ConsumerDel { consumer: b(consumer) }),
            _ => return None,
        })
    }
}

/// A consumer group. The pending entries are indexed three ways, kept in step by [`Group::apply`]: by
/// event (the map), by id (commands that name events by id), by delivery time (redelivery of idle
/// entries without a scan) and by consumer (a consumer's own entries without a scan).
#[derive(Debug, Default)]
pub(crate) struct Group {
    /// Bytes charged for the pending entries and consumers, and the store-wide total it is part of (set
    /// once the group is in a stream: [`Group::attach`]).
    weight: usize,
    used: Option<Arc<AtomicUsize>>,
    /// Redelivery of idle pending events on read (0: only by claim, as Redis).
    pub redeliver_ms: u64,
    /// Next offset to deliver, per partition.
    pub pos: Vec<u64>,
    /// Id of the last delivered event, per partition (Redis's last-delivered-id).
    pub last: Vec<StreamId>,
    pending: BTreeMap<(u32, u64), Pending>,
    /// The pending entries' offsets by (partition, id).
    by_id: std::collections::HashMap<(u32, StreamId), u64>,
    /// The pending entries by (delivered_at, partition, offset).
    by_time: BTreeSet<(u64, u32, u64)>,
    /// Each consumer's pending entries.
    by_consumer: std::collections::HashMap<Bytes, BTreeSet<(u32, u64)>>,
    pub consumers: BTreeMap<Bytes, ConsumerState>,
    /// Events dropped by retention before the group read them (or while pending).
    pub lost: u64,
}

impl Group {
    pub fn new(partitions: usize, redeliver_ms: u64) -> Group {
        let mut g = Group::default();
        g.redeliver_ms = redeliver_ms;
        g.pos = vec![0; partitions];
        g.last = vec![StreamId::MIN; partitions];
        g
    }

    /// `redeliver_ms lost count (pos last_ms last_seq)*`
    pub fn encode_config(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(20 + self.pos.len() * 24);
        out.extend_from_slice(&self.redeliver_ms.to_le_bytes());
        out.extend_from_slice(&self.lost.to_le_bytes());
        out.extend_from_slice(&(self.pos.len() as u32).to_le_bytes());
        for (p, l) in self.pos.iter().zip(&self.last) {
            for v in [*p, l.ms, l.seq] {
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
        out
    }

    pub fn decode_config(b: &[u8], partitions: usize) -> Option<Group> {
        let u = |i: usize| b.get(i..i + 8).map(|s| u64::from_le_bytes(s.try_into().expect("8 bytes")));
        let n = u32::from_le_bytes(b.get(16..20)?.try_into().ok()?) as usize;
        if b.len() != 20usize.checked_add(n.checked_mul(24)?)? {
            return None;
        }
        let mut g = Group::new(partitions, u(0)?);
        g.lost = u(8)?;
        for i in 0..n.min(partitions) {
            let at = 20 + i * 24;
            g.pos[i] = u(at)?;
            g.last[i] = StreamId { ms: u(at + 8)?, seq: u(at + 16)? };
        }
        Some(g)
    }

    /// Starts charging this group's memory to `used`.
    pub fn attach(&mut self, used: &Arc<AtomicUsize>) {
        used.fetch_add(self.weight, Ordering::Relaxed);
        self.used = Some(used.clone());
    }

    /// Re-charges the group for its pending entries and consumers.
    fn recharge(&mut self) {
        let weight = self.pending.len() * PENDING_BYTES + self.consumers.len() * CONSUMER_BYTES;
        if let Some(used) = &self.used {
            if weight >= self.weight {
                used.fetch_add(weight - self.weight, Ordering::Relaxed);
            } else {
                used.fetch_sub(self.weight - weight, Ordering::Relaxed);
            }
        }
        self.weight = weight;
    }

    /// The one applier of group changes (commands and replay).
    pub fn apply(&mut self, rec: &Rec) {
        self.apply_one(rec);
        self.recharge();
    }

    fn apply_one(&mut self, rec: &Rec) {
        match rec {
            Rec::Pos { partition, pos, last } => {
                if let (Some(p), Some(l)) =
                    (self.pos.get_mut(*partition as usize), self.last.get_mut(*partition as usize))
                {
                    *p = *pos;
                    *l = *last;
                }
            }
            Rec::Pending { partition, offset, id, consumer, delivered_at, count } => {
                if *partition as usize >= self.pos.len() {
                    return; // a record for a partition the stream does not have (corrupt)
                }
                self.consumers.entry(consumer.clone()).or_default();
                let p = Pending { id: *id, consumer: consumer.clone(), delivered_at: *delivered_at, count: *count };
                self.add_pending((*partition, *offset), p);
            }
            Rec::Ack { partition, offset } => {
                self.remove_pending(&(*partition, *offset));
            }
            Rec::Consumer { consumer, seen_at } => {
                self.consumers.entry(consumer.clone()).or_default().seen_at = *seen_at;
            }
            Rec::ConsumerDel { consumer } => {
                self.consumers.remove(consumer);
                for k in self.by_consumer.remove(consumer).unwrap_or_default() {
                    self.remove_pending(&k);
                }
            }
        }
    }

    fn add_pending(&mut self, k: (u32, u64), p: Pending) {
        self.remove_pending(&k);
        self.by_id.insert((k.0, p.id), k.1);
        self.by_time.insert((p.delivered_at, k.0, k.1));
        self.by_consumer.entry(p.consumer.clone()).or_default().insert(k);
        self.pending.insert(k, p);
    }

    fn remove_pending(&mut self, k: &(u32, u64)) -> Option<Pending> {
        let p = self.pending.remove(k)?;
        self.by_id.remove(&(k.0, p.id));
        self.by_time.remove(&(p.delivered_at, k.0, k.1));
        if let Some(set) = self.by_consumer.get_mut(&p.consumer) {
            set.remove(k);
            if set.is_empty() {
                self.by_consumer.remove(&p.consumer);
            }
        }
        Some(p)
    }

    pub fn pending(&self) -> &BTreeMap<(u32, u64), Pending> {
        &self.pending
    }

    pub fn pending_entry(&self, k: &(u32, u64)) -> Option<&Pending> {
        self.pending.get(k)
    }

    /// The pending entry of event `id` in `partition`.
    pub fn pending_by_id(&self, partition: u32, id: StreamId) -> Option<(u32, u64)> {
        self.by_id.get(&(partition, id)).map(|&offset| (partition, offset))
    }

    /// Up to `max` pending entries delivered at or before `at`, oldest delivery first.
    pub fn delivered_before(&self, at: u64, max: usize) -> Vec<((u32, u64), &Pending)> {
        self.by_time
            .range(..=(at, u32::MAX, u64::MAX))
            .take(max)
            .filter_map(|&(_, p, o)| self.pending.get(&(p, o)).map(|pe| ((p, o), pe)))
            .collect()
    }

    /// `consumer`'s pending entries, in event order.
    pub fn pending_of(&self, consumer: &[u8]) -> impl Iterator<Item = ((u32, u64), &Pending)> {
        self.by_consumer.get(consumer).into_iter().flatten().filter_map(|k| self.pending.get(k).map(|pe| (*k, pe)))
    }

    pub fn pending_count_of(&self, consumer: &[u8]) -> usize {
        self.by_consumer.get(consumer).map(|s| s.len()).unwrap_or(0)
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        if let Some(used) = &self.used {
            used.fetch_sub(self.weight, Ordering::Relaxed);
        }
    }
}

/// Bytes charged per pending entry (the entry and its three index entries) and per consumer.
const PENDING_BYTES: usize = 160;
const CONSUMER_BYTES: usize = 96;

pub(crate) struct Room {
    pub name: Bytes,
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
    names: Option<Vec<Bytes>>,
    next_room: usize,
    queued: VecDeque<Vec<u8>>,
    /// The snapshot's LSN: streams created after it are left to the log.
    lsn: u64,
}

impl Default for StreamCursor {
    fn default() -> Self {
        StreamCursor::at_lsn(u64::MAX - 1)
    }
}

impl StreamCursor {
    /// A walk for a snapshot at `lsn`.
    pub fn at_lsn(lsn: u64) -> StreamCursor {
        StreamCursor { names: None, next_room: 0, queued: VecDeque::new(), lsn }
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
}

impl StreamStore {
    pub fn new(
        settings: StreamSettings,
        storage: Arc<dyn StreamStorage>,
        clock: Arc<dyn Clock>,
        log: Arc<LogSlot>,
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
        }
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

    /// Deletes a stream (DEL); the LSN of the logged deletion, `None` when there was none.
    pub fn delete(&self, room: &[u8]) -> Option<u64> {
        if !self.exists(room) {
            return None;
        }
        self.remove_room(room, true)
    }

    pub fn room_count(&self) -> usize {
        self.rooms.read().len()
    }

    /// Creates a room in memory (commands and the applier); returns it and whether it is new. A command
    /// gives `lsn` (the creation is logged, under the map lock, before any append to the room can be) and
    /// no instance (a new one is drawn); the applier gives the instance its record names. The partitions
    /// are opened before the map lock is taken: opening touches the disk, and the map lock is on every
    /// command's path.
    pub(crate) fn create_in_memory(
        &self,
        name: &[u8],
        config: RoomConfig,
        instance: Option<u64>,
        lsn: Option<&mut u64>,
    ) -> (Arc<Room>, bool) {
        if let Some(r) = self.get(name) {
            return (r, false);
        }
        let instance = instance.unwrap_or_else(|| rand::random::<u64>().max(1));
        let cache = if self.storage.in_memory() { 0 } else { self.settings.tail_cache_bytes };
        let parts = (0..config.partitions)
            .map(|p| {
                let part = match self.storage.open(name, instance, p) {
                    Ok(log) => Partition::open(log, cache),
                    Err(e) => {
                        tracing::error!(error = %e, "opening a stream partition failed");
                        let mut part = Partition::open(Box::new(super::MemoryLog::new(1 << 20)), 0);
                        part.failed = Some(e);
                        part
                    }
                };
                let mut part = part;
                part.attach(&self.used);
                Mutex::new(part)
            })
            .collect();
        let room = Arc::new(Room {
            name: Bytes::copy_from_slice(name),
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
        });
        let mut map = self.rooms.write();
        if let Some(r) = map.get(name) {
            // Created by someone else meanwhile: theirs stands, the partitions opened here go.
            let existing = r.clone();
            drop(map);
            if let Err(e) = self.storage.remove(name, instance, 0) {
                tracing::error!(error = %e, "removing an unused stream instance failed");
            }
            return (existing, false);
        }
        map.insert(room.name.clone(), room.clone());
        if let Some(lsn) = lsn {
            let config = config.encode_with_instance(instance);
            let l = self.log.append(&[Mutation::Stream { room: name, op: StreamOp::Create { config: &config } }]);
            room.created_lsn.store(if self.log.is_capturing() { PENDING_LSN } else { l }, Ordering::Release);
            *lsn = (*lsn).max(l);
        }
        drop(map);
        self.created.notify_waiters();
        (room, true)
    }

    /// Removes a room: marks it deleted under all its locks, so no command writes to it afterwards. Its
    /// files go once the deletion is durable (`log`), or at once when replaying a record that is.
    pub(crate) fn remove_room(&self, name: &[u8], log: bool) -> Option<u64> {
        let room = self.rooms.write().remove(name)?;
        let groups = room.groups.lock();
        let parts: Vec<_> = room.parts.iter().map(|p| p.lock()).collect();
        room.deleted.store(true, Ordering::Release);
        let op = StreamOp::Delete { instance: Some(room.instance) };
        let lsn = if log { self.log.append(&[Mutation::Stream { room: name, op }]) } else { 0 };
        drop(parts);
        drop(groups);
        // Inside a transaction the deletion's LSN comes when the transaction is logged: the files wait.
        let durable_at = if log && self.log.is_capturing() { PENDING_LSN } else { lsn };
        if let Err(e) = self.storage.remove(name, room.instance, durable_at) {
            tracing::error!(error = %e, "removing stream files failed");
        }
        room.notify.notify_waiters();
        Some(lsn)
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
        let live: Vec<(Bytes, u64)> = self.all().iter().map(|r| (r.name.clone(), r.instance)).collect();
        self.storage.retain(&live).unwrap_or_else(|e| {
            tracing::error!(error = %e, "removing leftover stream files failed");
            0
        })
    }

    /// The replay applier for stream mutations.
    pub fn apply(&self, m: &Mutation<'_>) {
        let Mutation::Stream { room: name, op } = m else { return };
        if let StreamOp::Create { config } = op {
            let Some((config, instance)) = RoomConfig::decode_with_instance(config) else {
                // Guessing the instance would let `retain_files` remove the real one's files.
                tracing::error!(room = %String::from_utf8_lossy(name), "undecodable stream Create record skipped");
                self.replay_errors.store(true, Ordering::Release);
                return;
            };
            let (room, created) = self.create_in_memory(name, config, Some(instance), None);
            if !created {
                let mut c = room.config.lock();
                *c = RoomConfig { partitions: c.partitions, ..config };
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
            StreamOp::Create { .. } | StreamOp::Delete { .. } => {}
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
    pub fn snapshot_chunk(&self, cursor: &mut StreamCursor, max: usize, out: &mut Vec<u8>) -> Option<usize> {
        let names = cursor.names.get_or_insert_with(|| self.rooms.read().keys().cloned().collect());
        while cursor.queued.is_empty() {
            let name = names.get(cursor.next_room)?.clone();
            cursor.next_room += 1;
            if let Some(room) = self.get(&name)
                && room.created_lsn.load(Ordering::Acquire) <= cursor.lsn
            {
                Self::room_records(&room, &mut cursor.queued);
            }
        }
        let n = cursor.queued.len().min(max.max(1));
        out.extend_from_slice(&(n as u32).to_le_bytes());
        for rec in cursor.queued.drain(..n) {
            out.extend_from_slice(&rec);
        }
        Some(n)
    }

    fn room_records(room: &Room, out: &mut VecDeque<Vec<u8>>) {
        let name = &room.name[..];
        let mut push = |op: StreamOp<'_>| {
            let mut rec = Vec::new();
            encode_one(&Mutation::Stream { room: name, op }, &mut rec);
            out.push_back(rec);
        };
        let config = room.config.lock().encode_with_instance(room.instance);
        push(StreamOp::Create { config: &config });
        let groups = room.groups.lock();
        for (i, p) in room.parts.iter().enumerate() {
            let p = p.lock();
            let partition = i as u32;
            push(StreamOp::Meta { partition, start: p.start, next: p.next(), last: p.last });
            for &offset in &p.tombstones {
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
