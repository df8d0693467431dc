//! Event streams ("rooms"): partitioned append-only logs read by offset, consumer groups, retention.
//!
//! - [`StreamId`], [`RoomConfig`], the event record ([`encode_event`] / [`Event::decode`])
//! - [`PartitionLog`] / [`StreamStorage`]: where a partition's events live. The engine has no files: the
//!   storage crate implements segment files with an offset index; [`MemoryStorage`] keeps segments in
//!   memory (servers without persistence, tests).
//! - `store`: rooms, partitions (logical start, tombstones, tail cache), groups, the applier, snapshots
//! - `ops`: the commands, Synap's (`stream.*`) and Redis's (`X*`)
//!
//! Every event has a dense per-partition `offset` and a Redis stream id (`ms-seq`, increasing within the
//! partition), so both Kafka-style and Redis-style readers address the same events.

mod group;
mod info;
mod ops;
mod partition;
mod store;

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;

pub use crate::command::stream::{
    ClaimArgs, GroupStart, IdBound, PendingRange, ReadFrom, RoomOptions, StreamCmd, StreamId, TrimSpec, TrimStrategy,
    XAddId, XInfo,
};
pub use store::{MAX_ROOM_NAME, StreamCursor, StreamSettings, StreamStore};

/// The most partitions a stream may have (`stream.max_partitions` is at most this).
pub const MAX_PARTITIONS: u32 = 4096;

/// A stream's configuration: partitions and retention (0 = no limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoomConfig {
    pub partitions: u32,
    /// Most events kept per partition (exact: older events stop being readable at once).
    pub max_events: u64,
    /// Most bytes kept per partition (whole old segments are dropped).
    pub max_bytes: u64,
    /// Events older than this are dropped (whole segments; a partition whose newest event is older is
    /// emptied).
    pub max_age_ms: u64,
}

impl Default for RoomConfig {
    fn default() -> Self {
        RoomConfig { partitions: 1, max_events: 0, max_bytes: 1 << 30, max_age_ms: 7 * 24 * 3600 * 1000 }
    }
}

impl RoomConfig {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(29);
        out.push(1);
        out.extend_from_slice(&self.partitions.to_le_bytes());
        for v in [self.max_events, self.max_bytes, self.max_age_ms] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out
    }

    /// The `Create` record's config: this configuration and the stream instance (see [`StreamStorage`]).
    pub fn encode_with_instance(&self, instance: u64) -> Vec<u8> {
        let mut out = self.encode();
        out[0] = 2;
        out.extend_from_slice(&instance.to_le_bytes());
        out
    }

    /// The `Create` record's config of stream `name` whose files are under `storage` (its first name:
    /// a renamed stream keeps its files): version 2, or 3 when the names differ.
    pub fn encode_create(&self, instance: u64, name: &[u8], storage: &[u8]) -> Vec<u8> {
        let mut out = self.encode_with_instance(instance);
        if name != storage {
            out[0] = 3;
            out.extend_from_slice(&(storage.len() as u32).to_le_bytes());
            out.extend_from_slice(storage);
        }
        out
    }

    /// Decodes a `Create` record's config: the configuration, the instance, and the name its files are
    /// under when it is not the stream's (version 3).
    pub fn decode_create(b: &[u8]) -> Option<(RoomConfig, u64, Option<&[u8]>)> {
        match b.first() {
            Some(3) if b.len() >= 41 => {
                let mut v2 = b[..37].to_vec();
                v2[0] = 2;
                let (config, instance) = RoomConfig::decode_with_instance(&v2)?;
                let n = u32::from_le_bytes(b[37..41].try_into().ok()?) as usize;
                let storage = b.get(41..41 + n).filter(|s| 41 + n == b.len() && !s.is_empty())?;
                Some((config, instance, Some(storage)))
            }
            _ => RoomConfig::decode_with_instance(b).map(|(c, i)| (c, i, None)),
        }
    }

    /// Decodes a `Create` record's config: version 1 (no instance: 0) or 2 (with the instance).
    pub fn decode_with_instance(b: &[u8]) -> Option<(RoomConfig, u64)> {
        match b.first() {
            Some(1) => Some((RoomConfig::decode(b)?, 0)),
            Some(2) if b.len() == 37 => {
                let mut v1 = b[..29].to_vec();
                v1[0] = 1;
                let instance = u64::from_le_bytes(b[29..37].try_into().ok()?);
                Some((RoomConfig::decode(&v1)?, instance))
            }
            _ => None,
        }
    }

    pub fn decode(b: &[u8]) -> Option<RoomConfig> {
        if b.len() != 29 || b[0] != 1 {
            return None;
        }
        let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        let partitions = u32::from_le_bytes(b[1..5].try_into().expect("4 bytes"));
        if partitions > MAX_PARTITIONS {
            return None; // more than any configuration allows: corrupt
        }
        Some(RoomConfig {
            partitions: partitions.max(1),
            max_events: u64_at(5),
            max_bytes: u64_at(13),
            max_age_ms: u64_at(21),
        })
    }
}

impl RoomOptions {
    pub fn resolve(&self, d: &RoomConfig) -> RoomConfig {
        RoomConfig {
            partitions: self.partitions.unwrap_or(d.partitions),
            max_events: self.max_events.unwrap_or(d.max_events),
            max_bytes: self.max_bytes.unwrap_or(d.max_bytes),
            max_age_ms: self.max_age_ms.unwrap_or(d.max_age_ms),
        }
    }
}

/// One event as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub offset: u64,
    pub id: StreamId,
    /// When it was appended (Unix ms).
    pub timestamp: u64,
    /// The partitioning key (empty: none).
    pub key: Bytes,
    /// Field/value pairs. Synap's own publish stores `event` and `data` fields first, then headers.
    pub fields: Vec<(Bytes, Bytes)>,
}

/// The fixed part of an event record: timestamp, id.
pub const EVENT_HEADER_LEN: usize = 24;

/// Encodes an event record: `timestamp:u64 id_ms:u64 id_seq:u64 key:bytes count:u32 (field:bytes value:bytes)*`
/// (little endian; `bytes` is `len:u32 data`).
pub fn encode_event(timestamp: u64, id: StreamId, key: &[u8], fields: &[(Bytes, Bytes)], out: &mut Vec<u8>) {
    out.extend_from_slice(&timestamp.to_le_bytes());
    out.extend_from_slice(&id.ms.to_le_bytes());
    out.extend_from_slice(&id.seq.to_le_bytes());
    out.extend_from_slice(&(key.len() as u32).to_le_bytes());
    out.extend_from_slice(key);
    out.extend_from_slice(&(fields.len() as u32).to_le_bytes());
    for (f, v) in fields {
        out.extend_from_slice(&(f.len() as u32).to_le_bytes());
        out.extend_from_slice(f);
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
        out.extend_from_slice(v);
    }
}

/// The timestamp and id of an event record, read from its fixed header.
pub fn event_header(body: &[u8]) -> Option<(u64, StreamId)> {
    if body.len() < EVENT_HEADER_LEN {
        return None;
    }
    let u = |i: usize| u64::from_le_bytes(body[i..i + 8].try_into().expect("8 bytes"));
    Some((u(0), StreamId { ms: u(8), seq: u(16) }))
}

impl Event {
    /// Decodes a record; slices share `body`'s buffer.
    pub fn decode(offset: u64, body: &Bytes) -> Option<Event> {
        let (timestamp, id) = event_header(body)?;
        let mut pos = EVENT_HEADER_LEN;
        let bytes = |pos: &mut usize| -> Option<Bytes> {
            let n = u32::from_le_bytes(body.get(*pos..*pos + 4)?.try_into().ok()?) as usize;
            let start = *pos + 4;
            let end = start.checked_add(n).filter(|&e| e <= body.len())?;
            *pos = end;
            Some(body.slice(start..end))
        };
        let key = bytes(&mut pos)?;
        let count = u32::from_le_bytes(body.get(pos..pos + 4)?.try_into().ok()?) as usize;
        pos += 4;
        if count > body.len() / 8 {
            return None;
        }
        let mut fields = Vec::with_capacity(count);
        for _ in 0..count {
            let f = bytes(&mut pos)?;
            let v = bytes(&mut pos)?;
            fields.push((f, v));
        }
        (pos == body.len()).then_some(Event { offset, id, timestamp, key, fields })
    }

    /// The value of the first field named `name`.
    pub fn field(&self, name: &[u8]) -> Option<&Bytes> {
        self.fields.iter().find(|(f, _)| f == name).map(|(_, v)| v)
    }
}

/// One segment of a partition log as retention sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentInfo {
    /// First offset the segment holds.
    pub base: u64,
    /// One past the last offset it holds.
    pub end: u64,
    pub bytes: u64,
    /// Timestamp of its newest event (0 when empty).
    pub max_timestamp: u64,
}

/// A failure of the stream storage (I/O); the message names the file.
pub type StorageResult<T> = std::result::Result<T, String>;

/// One partition's events, in order of offset. Offsets are dense from the first retained one.
pub trait PartitionLog: Send {
    /// The first offset still stored (`next()` when empty).
    fn start(&self) -> u64;
    /// The offset the next append gets.
    fn next(&self) -> u64;
    /// Appends the record for `offset`, which must be `next()`.
    fn append(&mut self, offset: u64, body: &[u8]) -> StorageResult<()>;
    /// Reads events from `from` (at least `start()`): at most `max` of them and about `max_bytes`.
    fn read(&mut self, from: u64, max: usize, max_bytes: usize, out: &mut Vec<(u64, Bytes)>) -> StorageResult<()>;
    /// The first stored offset whose id is at least `id` (`next()` when none).
    fn seek_id(&mut self, id: StreamId) -> StorageResult<u64>;
    /// The segments, oldest first; the last is the active one.
    fn segments(&self) -> Vec<SegmentInfo>;
    /// Drops whole segments that end at or below `offset` (never the active one).
    fn drop_before(&mut self, offset: u64) -> StorageResult<()>;
    /// Hands every appended event to the OS and returns the job that makes them durable (the fsyncs),
    /// which the caller runs after releasing the partition's lock, so appends never wait on a disk sync.
    fn sync(&mut self) -> StorageResult<SyncJob>;
    /// Bytes of events this log holds in memory (an in-memory log; files hold theirs on disk).
    fn memory_bytes(&self) -> u64 {
        0
    }
    /// An empty log continues at `offset` (a replica's copy of a partition whose start was trimmed).
    fn rebase(&mut self, offset: u64) -> StorageResult<()>;
    /// The id of the newest stored event.
    fn last_id(&mut self) -> StorageResult<Option<StreamId>> {
        let next = self.next();
        if next == self.start() {
            return Ok(None);
        }
        let mut out = Vec::with_capacity(1);
        self.read(next - 1, 1, usize::MAX, &mut out)?;
        Ok(out.first().and_then(|(_, b)| event_header(b)).map(|(_, id)| id))
    }
}

/// The fsyncs that make a partition's appended events durable (see [`PartitionLog::sync`]).
pub type SyncJob = Box<dyn FnOnce() -> StorageResult<()> + Send>;

/// A job with nothing to do.
pub fn no_sync() -> SyncJob {
    Box::new(|| Ok(()))
}

/// Where partitions live. Each stream *instance* (a name and a random id given at creation and recorded in
/// its `Create` record) has its own partitions, so a stream deleted and created again under the same name
/// never shares files with the old one, whose files may still be waiting for removal.
pub trait StreamStorage: Send + Sync {
    /// Opens a partition of the stream instance `(room, instance)`, creating it empty when missing.
    fn open(&self, room: &[u8], instance: u64, partition: u32) -> StorageResult<Box<dyn PartitionLog>>;
    /// Removes every partition of the instance once the log record of its deletion, `lsn`, is durable
    /// (see [`StreamStorage::purge`]); `lsn` 0 removes them now (the record is durable, or there is none).
    fn remove(&self, room: &[u8], instance: u64, lsn: u64) -> StorageResult<()>;
    /// Gives removals queued with `PENDING_LSN` (inside a transaction) the transaction's LSN.
    fn settle(&self, _lsn: u64) {}
    /// Carries out the removals whose record is durable (LSN at most `durable_lsn`); returns how many.
    fn purge(&self, _durable_lsn: u64) -> StorageResult<usize> {
        Ok(0)
    }
    /// Removes every stored instance that is not in `live` (leftovers of streams whose deletion was
    /// durable, or whose creation never was); run once recovery has replayed the whole log.
    fn retain(&self, _live: &[(Bytes, u64)]) -> StorageResult<usize> {
        Ok(0)
    }
    /// Whether events are held in memory anyway (no tail cache needed).
    fn in_memory(&self) -> bool;
}

type SharedLog = Arc<Mutex<MemoryLog>>;

/// Stream storage kept in memory: segments of about `segment_bytes`, dropped whole like files.
pub struct MemoryStorage {
    segment_bytes: u64,
    rooms: Mutex<hashbrown::HashMap<(Bytes, u64, u32), SharedLog>>,
}

impl MemoryStorage {
    pub fn new(segment_bytes: u64) -> MemoryStorage {
        MemoryStorage { segment_bytes: segment_bytes.max(1024), rooms: Mutex::new(hashbrown::HashMap::new()) }
    }
}

impl Default for MemoryStorage {
    fn default() -> Self {
        MemoryStorage::new(1 << 20)
    }
}

impl fmt::Debug for MemoryStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStorage").field("segment_bytes", &self.segment_bytes).finish()
    }
}

impl StreamStorage for MemoryStorage {
    fn open(&self, room: &[u8], instance: u64, partition: u32) -> StorageResult<Box<dyn PartitionLog>> {
        let log = self
            .rooms
            .lock()
            .entry((Bytes::copy_from_slice(room), instance, partition))
            .or_insert_with(|| Arc::new(Mutex::new(MemoryLog::new(self.segment_bytes))))
            .clone();
        Ok(Box::new(SharedMemoryLog(log)))
    }

    /// Memory is gone with the process anyway: removed at once.
    fn remove(&self, room: &[u8], instance: u64, _lsn: u64) -> StorageResult<()> {
        self.rooms.lock().retain(|(r, i, _), _| !(r == room && *i == instance));
        Ok(())
    }

    fn in_memory(&self) -> bool {
        true
    }
}

struct MemSegment {
    base: u64,
    events: Vec<(StreamId, Bytes)>,
    bytes: u64,
    max_timestamp: u64,
}

/// A partition in memory.
pub struct MemoryLog {
    segment_bytes: u64,
    segments: VecDeque<MemSegment>,
    /// Bytes of every segment.
    bytes: u64,
}

impl MemoryLog {
    pub fn new(segment_bytes: u64) -> MemoryLog {
        let mut segments = VecDeque::new();
        segments.push_back(MemSegment { base: 0, events: Vec::new(), bytes: 0, max_timestamp: 0 });
        MemoryLog { segment_bytes, segments, bytes: 0 }
    }

    fn locate(&self, offset: u64) -> Option<(usize, usize)> {
        let i = self.segments.partition_point(|s| s.base + s.events.len() as u64 <= offset);
        let s = self.segments.get(i)?;
        (offset >= s.base).then(|| (i, (offset - s.base) as usize))
    }
}

impl PartitionLog for MemoryLog {
    fn rebase(&mut self, offset: u64) -> StorageResult<()> {
        if self.next() != self.start() || self.segments.iter().any(|s| !s.events.is_empty()) {
            return Err(format!("cannot move a partition holding events to offset {offset}"));
        }
        self.segments.clear();
        self.segments.push_back(MemSegment { base: offset, events: Vec::new(), bytes: 0, max_timestamp: 0 });
        self.bytes = 0;
        Ok(())
    }

    fn start(&self) -> u64 {
        self.segments.front().map(|s| s.base).unwrap_or(0)
    }

    fn next(&self) -> u64 {
        self.segments.back().map(|s| s.base + s.events.len() as u64).unwrap_or(0)
    }

    fn append(&mut self, offset: u64, body: &[u8]) -> StorageResult<()> {
        if offset != self.next() {
            return Err(format!("append at offset {offset}, expected {}", self.next()));
        }
        let (ts, id) = event_header(body).ok_or("event record too short")?;
        let full = self.segments.back().is_some_and(|s| s.bytes >= self.segment_bytes);
        if full {
            self.segments.push_back(MemSegment { base: offset, events: Vec::new(), bytes: 0, max_timestamp: 0 });
        }
        let seg = self.segments.back_mut().expect("a segment");
        seg.events.push((id, Bytes::copy_from_slice(body)));
        seg.bytes += body.len() as u64 + 16;
        self.bytes += body.len() as u64 + 16;
        seg.max_timestamp = seg.max_timestamp.max(ts);
        Ok(())
    }

    fn read(&mut self, from: u64, max: usize, max_bytes: usize, out: &mut Vec<(u64, Bytes)>) -> StorageResult<()> {
        let Some((mut si, mut ei)) = self.locate(from) else { return Ok(()) };
        let (mut n, mut bytes) = (0, 0);
        while n < max && bytes < max_bytes {
            let Some(seg) = self.segments.get(si) else { break };
            let Some((_, body)) = seg.events.get(ei) else {
                si += 1;
                ei = 0;
                continue;
            };
            out.push((seg.base + ei as u64, body.clone()));
            n += 1;
            bytes += body.len();
            ei += 1;
        }
        Ok(())
    }

    fn seek_id(&mut self, id: StreamId) -> StorageResult<u64> {
        let si = self.segments.partition_point(|s| s.events.last().is_some_and(|(last, _)| *last < id));
        match self.segments.get(si) {
            Some(s) => Ok(s.base + s.events.partition_point(|(e, _)| *e < id) as u64),
            None => Ok(self.next()),
        }
    }

    fn segments(&self) -> Vec<SegmentInfo> {
        self.segments
            .iter()
            .map(|s| SegmentInfo {
                base: s.base,
                end: s.base + s.events.len() as u64,
                bytes: s.bytes,
                max_timestamp: s.max_timestamp,
            })
            .collect()
    }

    fn drop_before(&mut self, offset: u64) -> StorageResult<()> {
        while self.segments.len() > 1 && self.segments[0].base + self.segments[0].events.len() as u64 <= offset {
            if let Some(s) = self.segments.pop_front() {
                self.bytes -= s.bytes;
            }
        }
        // An emptied partition keeps its position in a fresh active segment.
        if self.segments.len() == 1 && self.next() <= offset && !self.segments[0].events.is_empty() {
            let next = self.next();
            self.bytes -= self.segments[0].bytes;
            self.segments[0] = MemSegment { base: next, events: Vec::new(), bytes: 0, max_timestamp: 0 };
        }
        Ok(())
    }

    fn memory_bytes(&self) -> u64 {
        self.bytes
    }

    fn sync(&mut self) -> StorageResult<SyncJob> {
        Ok(no_sync())
    }
}

/// A memory partition shared with its storage, so that reopening a room after a restart of the store
/// (tests) finds the same events.
struct SharedMemoryLog(Arc<Mutex<MemoryLog>>);

impl PartitionLog for SharedMemoryLog {
    fn rebase(&mut self, offset: u64) -> StorageResult<()> {
        self.0.lock().rebase(offset)
    }
    fn start(&self) -> u64 {
        self.0.lock().start()
    }
    fn next(&self) -> u64 {
        self.0.lock().next()
    }
    fn append(&mut self, offset: u64, body: &[u8]) -> StorageResult<()> {
        self.0.lock().append(offset, body)
    }
    fn read(&mut self, from: u64, max: usize, max_bytes: usize, out: &mut Vec<(u64, Bytes)>) -> StorageResult<()> {
        self.0.lock().read(from, max, max_bytes, out)
    }
    fn seek_id(&mut self, id: StreamId) -> StorageResult<u64> {
        self.0.lock().seek_id(id)
    }
    fn segments(&self) -> Vec<SegmentInfo> {
        self.0.lock().segments()
    }
    fn drop_before(&mut self, offset: u64) -> StorageResult<()> {
        self.0.lock().drop_before(offset)
    }
    fn sync(&mut self) -> StorageResult<SyncJob> {
        Ok(no_sync())
    }
    fn memory_bytes(&self) -> u64 {
        self.0.lock().memory_bytes()
    }
}

/// The stream storage an engine uses (memory unless the server gives it files).
#[derive(Clone)]
pub struct StreamBackend(pub Arc<dyn StreamStorage>);

impl Default for StreamBackend {
    fn default() -> Self {
        StreamBackend(Arc::new(MemoryStorage::default()))
    }
}

impl fmt::Debug for StreamBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.in_memory() { "StreamBackend(memory)" } else { "StreamBackend(files)" })
    }
}

/// The partition an event with `key` goes to (stable across restarts).
pub fn partition_for_key(key: &[u8], partitions: u32) -> u32 {
    crc32c::crc32c(key) % partitions.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_and_order() {
        assert_eq!(StreamId::parse(b"5-3", 0), Some(StreamId::new(5, 3)));
        assert_eq!(StreamId::parse(b"5", 7), Some(StreamId::new(5, 7)));
        for bad in [&b""[..], b"-", b"5-", b"-3", b"a-1", b"1-b", b"1-2-3", b"+1"] {
            assert_eq!(StreamId::parse(bad, 0), None, "{:?}", std::str::from_utf8(bad));
        }
        assert!(StreamId::new(1, 9) < StreamId::new(2, 0));
        assert_eq!(StreamId::new(1, u64::MAX).next(), StreamId::new(2, 0));
        assert_eq!(StreamId::new(2, 0).prev(), StreamId::new(1, u64::MAX));
    }

    #[test]
    fn event_round_trip_and_corruption() {
        let fields =
            vec![(Bytes::from_static(b"event"), Bytes::from_static(b"e")), (Bytes::new(), Bytes::from_static(b"\0"))];
        let mut body = Vec::new();
        encode_event(9, StreamId::new(3, 4), b"k", &fields, &mut body);
        let body = Bytes::from(body);
        let e = Event::decode(7, &body).unwrap();
        assert_eq!(
            (e.offset, e.id, e.timestamp, &e.key[..], e.fields.clone()),
            (7, StreamId::new(3, 4), 9, &b"k"[..], fields)
        );
        for cut in 0..body.len() {
            assert!(Event::decode(0, &body.slice(..cut)).is_none(), "cut at {cut}");
        }
    }

    #[test]
    fn memory_log_segments_and_seek() {
        let mut log = MemoryLog::new(100);
        for i in 0..20u64 {
            let mut body = Vec::new();
            encode_event(
                i,
                StreamId::new(i * 10, 0),
                b"",
                &[(Bytes::from_static(b"f"), Bytes::from(vec![0; 40]))],
                &mut body,
            );
            log.append(i, &body).unwrap();
        }
        assert!(log.segments().len() > 3);
        assert_eq!(log.seek_id(StreamId::new(55, 0)).unwrap(), 6);
        assert_eq!(log.seek_id(StreamId::new(1000, 0)).unwrap(), 20);
        log.drop_before(7).unwrap();
        assert!(log.start() > 0 && log.start() <= 7);
        let mut out = Vec::new();
        log.read(7, 5, usize::MAX, &mut out).unwrap();
        assert_eq!(out.iter().map(|(o, _)| *o).collect::<Vec<_>>(), vec![7, 8, 9, 10, 11]);
        log.drop_before(20).unwrap();
        assert_eq!((log.start(), log.next()), (20, 20));
    }
}
