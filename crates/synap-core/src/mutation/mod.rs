//! Mutation records: the one way state changes.
//!
//! The engine turns every write command into one batch of physical mutations (the resulting value, never
//! "increment by one"), applies the batch to memory through [`crate::Engine::apply_batch`]'s applier, and
//! hands the same batch to the [`MutationLog`] (the WAL, later replication). Recovery and replicas call the
//! same applier on the decoded records, so there is no second way to change state.
//!
//! Because records are physical and expiry times absolute, replay is deterministic: a key that expired in
//! the original run is either overwritten by a later record or still carries its past expiry time and is
//! treated as absent. Every record names one key (or all of them, `FlushAll`) and sets its state without
//! reading another key, so replaying a suffix of the log over a snapshot taken shard by shard while writes
//! went on (a "fuzzy" snapshot) still ends in the right state: each key ends as its last record says.
//!
//! # Encoding (little endian; see `docs/format.md`)
//! ```text
//! batch    := count:u32 mutation*count
//! mutation := tag:u8 body
//!   1 Set        key:bytes value:bytes expire_at:u64   (0 = no expiry)
//!   2 Del        key:bytes
//!   3 SetExpire  key:bytes expire_at:u64               (0 = persist)
//!   (4 is reserved: an early logical Rename, replaced by Del + Set)
//!   5 FlushAll
//!   6 QueueCreate  name:bytes config:bytes                 (config: see `queue::QueueConfig::encode`)
//!   7 QueueDelete  name:bytes
//!   8 QueuePut     queue:bytes id:u64 priority:u8 attempts:u32 published_at:u64 available_at:u64
//!                  expires_at:u64 deadline:u64 consumer:bytes headers:bytes payload:bytes
//!   9 QueueState   queue:bytes id:u64 attempts:u32 available_at:u64 deadline:u64 consumer:bytes
//!  10 QueueRemove  queue:bytes id:u64
//!  11 QueuePurge   queue:bytes
//!  12 QueueNextId  next:u64
//!  13..=25 stream mutations: tag room:bytes body (see [`StreamOp`] and `docs/format.md`)
//!  26..=35 collection mutations (see `docs/format.md`)
//!  36 stream Delete of one instance: room:bytes instance:u64
//!  37 SetRange   key:bytes offset:u64 data:bytes            (APPEND)
//!  38 stream Rename: room:bytes to:bytes instance:u64
//!  39 FunctionLoad   code:bytes          (a function library, its `#!lua name=...` line included)
//!  40 FunctionDelete name:bytes
//!  41 FunctionFlush
//!  42 SelectDb       db:u32              (the key-value records after it, to the end of the batch or the
//!                                         next SelectDb, belong to database `db`; a batch starts in 0)
//!  43 SwapDb         a:u32 b:u32         (SWAPDB: databases `a` and `b` trade their contents)
//!  (44 is a stream record, Base)
//!  45 AclSetUser     name:bytes rules:bytes  (a user set whole; rules hold password hashes only)
//!  46 AclDelUser     name:bytes
//!  47 ApiKeyPut      id:bytes data:bytes     (JSON: user, digest, created_ms, expires_ms, label)
//!  48 ApiKeyDel      id:bytes
//! bytes    := len:u32 data[len]
//! ```

use crate::command::stream::StreamId;
use crate::error::CommandError;

mod codec;
use codec::encode;
pub use codec::{DecodeError, decode_batch, encode_batch, encode_one, encoded_len};

/// One state change. Borrowed so that encoding into the WAL buffer and decoding from it copy nothing.
#[derive(Debug, Clone, PartialEq)]
pub enum Mutation<'a> {
    Set {
        key: &'a [u8],
        value: &'a [u8],
        expire_at: u64,
    },
    Del {
        key: &'a [u8],
    },
    SetExpire {
        key: &'a [u8],
        expire_at: u64,
    },
    FlushAll,
    /// Creates a queue, or replaces its configuration.
    QueueCreate {
        name: &'a [u8],
        config: &'a [u8],
    },
    QueueDelete {
        name: &'a [u8],
    },
    /// Sets a message whole (publish, move to a dead-letter queue, snapshot).
    QueuePut {
        queue: &'a [u8],
        msg: QueueMessage<'a>,
    },
    /// Sets the delivery state of an existing message (deliver, requeue); no-op when it is gone.
    QueueState {
        queue: &'a [u8],
        id: u64,
        attempts: u32,
        available_at: u64,
        deadline: u64,
        consumer: &'a [u8],
    },
    QueueRemove {
        queue: &'a [u8],
        id: u64,
    },
    QueuePurge {
        queue: &'a [u8],
    },
    /// The next queue message id (snapshots carry it, so ids are never reused).
    QueueNextId {
        next: u64,
    },
    /// Sets a collection key whole: `kind` (1 hash, 2 list, 3 set, 4 zset) and its items (`Coll::encode`).
    Restore {
        key: &'a [u8],
        kind: u8,
        data: &'a [u8],
        expire_at: u64,
    },
    /// Hash field set (the key is created as a hash when missing).
    HSet {
        key: &'a [u8],
        field: &'a [u8],
        value: &'a [u8],
    },
    /// Hash field removed (an emptied hash is removed).
    HDel {
        key: &'a [u8],
        field: &'a [u8],
    },
    /// List element `idx` set to `value`, inserted in idx order when new (pushes and LSET).
    LPut {
        key: &'a [u8],
        idx: i64,
        value: &'a [u8],
    },
    /// List element `idx` removed (pops, LREM).
    LDel {
        key: &'a [u8],
        idx: i64,
    },
    /// List keeps only elements with `lo <= idx <= hi` (LTRIM).
    LKeep {
        key: &'a [u8],
        lo: i64,
        hi: i64,
    },
    SAdd {
        key: &'a [u8],
        member: &'a [u8],
    },
    SRem {
        key: &'a [u8],
        member: &'a [u8],
    },
    /// Sorted-set member's score set.
    ZSet {
        key: &'a [u8],
        member: &'a [u8],
        score: f64,
    },
    ZRem {
        key: &'a [u8],
        member: &'a [u8],
    },
    /// Overwrites a string's bytes from `offset` (extending it, zero-filled, when shorter), keeping its
    /// expiry: APPEND logs only what it appends. On a missing key it creates the string.
    SetRange {
        key: &'a [u8],
        offset: u64,
        data: &'a [u8],
    },
    /// A change to one stream (room).
    Stream {
        room: &'a [u8],
        op: StreamOp<'a>,
    },
    /// A function library loaded (FUNCTION LOAD and RESTORE, snapshots), replacing one of its name.
    FunctionLoad {
        code: &'a [u8],
    },
    /// A function library deleted.
    FunctionDelete {
        name: &'a [u8],
    },
    /// Every function library deleted (FUNCTION FLUSH).
    FunctionFlush,
    /// The key-value records that follow in the batch belong to database `db` (a batch starts in
    /// database 0). `FlushAll` empties the database in force (in database 0, the streams too).
    SelectDb {
        db: u32,
    },
    /// SWAPDB: databases `a` and `b` trade their contents.
    SwapDb {
        a: u32,
        b: u32,
    },
    /// A user set whole: `rules` is its description (`ACL LIST`'s line after the name; password hashes
    /// only, never a clear password).
    AclSetUser {
        name: &'a [u8],
        rules: &'a [u8],
    },
    /// A user removed (`default` goes back to its initial rules).
    AclDelUser {
        name: &'a [u8],
    },
    /// An API key set whole: `data` is its JSON record (the token's SHA-256 digest, never the token).
    ApiKeyPut {
        id: &'a [u8],
        data: &'a [u8],
    },
    ApiKeyDel {
        id: &'a [u8],
    },
}

/// A change to one stream. Event data lives in the partition's segment files; these records carry
/// appends (so that recovery and replicas can redo them) and the metadata around them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamOp<'a> {
    /// Creates the stream (or replaces its configuration): see `stream::RoomConfig::encode`.
    Create {
        config: &'a [u8],
    },
    /// Deletes the stream; with `instance`, only that instance of it (see `stream::StreamStorage`), so
    /// that replay over a snapshot that already holds a newer stream of the same name leaves it alone.
    Delete {
        instance: Option<u64>,
    },
    /// Renames the stream (RENAME): instance `instance` goes on under `to` (replacing what `to` held), its
    /// files where they are. Replay over a snapshot that already holds the instance under `to` does
    /// nothing.
    Rename {
        to: &'a [u8],
        instance: u64,
    },
    /// One event at `offset` of `partition`; `body` is the event record (`stream::encode_event`).
    Append {
        partition: u32,
        offset: u64,
        body: &'a [u8],
    },
    /// An empty partition continues at `offset`: a full copy sent to a replica starts a trimmed
    /// partition's events there.
    Base {
        partition: u32,
        offset: u64,
    },
    /// Moves the partition's first retained offset up to `start`, dropping whole segments below it.
    Trim {
        partition: u32,
        start: u64,
    },
    /// Marks one event deleted (XDEL).
    Tombstone {
        partition: u32,
        offset: u64,
    },
    /// The partition's counters as a snapshot saw them.
    Meta {
        partition: u32,
        start: u64,
        next: u64,
        last: StreamId,
    },
    /// Creates a consumer group or replaces it whole (positions, no pending entries).
    GroupCreate {
        group: &'a [u8],
        config: &'a [u8],
    },
    GroupDestroy {
        group: &'a [u8],
    },
    /// The group's next offset to deliver in `partition`, and the id of the last event it delivered.
    GroupPos {
        group: &'a [u8],
        partition: u32,
        pos: u64,
        last: StreamId,
    },
    /// Sets a pending (delivered, not acknowledged) entry.
    Pending {
        group: &'a [u8],
        partition: u32,
        offset: u64,
        id: StreamId,
        consumer: &'a [u8],
        delivered_at: u64,
        count: u32,
    },
    Ack {
        group: &'a [u8],
        partition: u32,
        offset: u64,
    },
    /// Creates a consumer or records when it was last seen.
    Consumer {
        group: &'a [u8],
        consumer: &'a [u8],
        seen_at: u64,
    },
    /// Removes a consumer and its pending entries.
    ConsumerDel {
        group: &'a [u8],
        consumer: &'a [u8],
    },
}

impl Mutation<'_> {
    /// Whether the mutation belongs to the queue service.
    pub fn is_queue(&self) -> bool {
        matches!(
            self,
            Mutation::QueueCreate { .. }
                | Mutation::QueueDelete { .. }
                | Mutation::QueuePut { .. }
                | Mutation::QueueState { .. }
                | Mutation::QueueRemove { .. }
                | Mutation::QueuePurge { .. }
                | Mutation::QueueNextId { .. }
        )
    }

    pub fn is_stream(&self) -> bool {
        matches!(self, Mutation::Stream { .. })
    }

    /// Whether the mutation selects or swaps databases (applied by the engine).
    pub fn is_db(&self) -> bool {
        matches!(self, Mutation::SelectDb { .. } | Mutation::SwapDb { .. })
    }

    /// Whether the mutation changes users (ACL).
    pub fn is_acl(&self) -> bool {
        matches!(
            self,
            Mutation::AclSetUser { .. }
                | Mutation::AclDelUser { .. }
                | Mutation::ApiKeyPut { .. }
                | Mutation::ApiKeyDel { .. }
        )
    }

    /// Whether the mutation belongs to the function libraries (scripting).
    pub fn is_function(&self) -> bool {
        matches!(self, Mutation::FunctionLoad { .. } | Mutation::FunctionDelete { .. } | Mutation::FunctionFlush)
    }
}

/// A queue message as recorded. `deadline` 0 means ready (deliverable from `available_at`); otherwise the
/// message is in flight to `consumer` until `deadline` (Unix ms).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueMessage<'a> {
    pub id: u64,
    pub priority: u8,
    pub attempts: u32,
    pub published_at: u64,
    pub available_at: u64,
    pub expires_at: u64,
    pub deadline: u64,
    pub consumer: &'a [u8],
    /// Encoded header list: `count:u32 (key:bytes value:bytes)*`.
    pub headers: &'a [u8],
    pub payload: &'a [u8],
}

/// The largest batch the engine ever produces: commands, dead-lettering and snapshots split or refuse work
/// so that no record exceeds it (the WAL rejects records above 2 GiB as corrupt).
pub const MAX_BATCH_BYTES: usize = 1 << 30;

/// The LSN a change gets while a transaction captures it, until the transaction's record is written
/// (`Engine::exec_transaction` then settles it).
pub const PENDING_LSN: u64 = u64::MAX;

/// The largest value a key or queue message may hold (configured limits are capped here).
pub const MAX_VALUE_BYTES: usize = 512 << 20;

/// The largest collection a command may write whole (a `Restore`: RENAME, S*STORE, Z*STORE): it must fit
/// one log record with room to spare. Snapshots split larger collections into element records.
pub const MAX_RESTORE_BYTES: usize = 512 << 20;

/// The engine's slot for its log: empty until recovery is done, then set once. Shared by every service.
/// During a transaction it captures the batches instead, to log them as one record at the end.
#[derive(Default)]
pub struct LogSlot {
    log: std::sync::OnceLock<std::sync::Arc<dyn MutationLog>>,
    capturing: std::sync::atomic::AtomicBool,
    /// Mutation count and their encodings while capturing.
    captured: parking_lot::Mutex<(u32, Vec<u8>)>,
}

impl LogSlot {
    pub fn attach(&self, log: std::sync::Arc<dyn MutationLog>) -> Result<(), std::sync::Arc<dyn MutationLog>> {
        self.log.set(log)
    }

    /// Appends a batch; 0 when there is no log (memory only) or nothing to log.
    pub fn append(&self, batch: &[Mutation<'_>]) -> u64 {
        if batch.is_empty() {
            return 0;
        }
        if self.capturing.load(std::sync::atomic::Ordering::Acquire) {
            let mut c = self.captured.lock();
            c.0 += batch.len() as u32;
            for m in batch {
                encode(m, &mut c.1);
            }
            return 0;
        }
        match self.log.get() {
            Some(log) => log.append(batch),
            None => 0,
        }
    }

    /// Starts collecting batches (the caller excludes every other writer) until the returned guard ends
    /// the capture: by [`Capture::finish`], or by being dropped, panics included. Either way what was
    /// collected is logged (it was applied to memory) and later writes go to the log again.
    pub fn capture(&self) -> Capture<'_> {
        *self.captured.lock() = (0, Vec::new());
        self.capturing.store(true, std::sync::atomic::Ordering::Release);
        Capture { slot: self, done: false }
    }

    /// Logs what was collected as one record (records of at most `MAX_BATCH_BYTES` each, should a
    /// transaction be larger); returns its LSN.
    fn end_capture(&self) -> u64 {
        self.capturing.store(false, std::sync::atomic::Ordering::Release);
        let (count, bytes) = std::mem::take(&mut *self.captured.lock());
        if count == 0 {
            return 0;
        }
        let mut buf = Vec::with_capacity(4 + bytes.len());
        buf.extend_from_slice(&count.to_le_bytes());
        buf.extend_from_slice(&bytes);
        let batch = decode_batch(&buf).expect("captured mutations decode");
        let mut lsn = 0;
        let mut start = 0;
        let mut size = 4;
        for (i, m) in batch.iter().enumerate() {
            let n = encoded_len(std::slice::from_ref(m)) - 4;
            if size + n > MAX_BATCH_BYTES && i > start {
                lsn = self.append(&batch[start..i]);
                start = i;
                size = 4;
            }
            size += n;
        }
        lsn.max(self.append(&batch[start..]))
    }

    /// Whether a transaction is collecting batches now (their LSN is known only when it ends).
    pub fn is_capturing(&self) -> bool {
        self.capturing.load(std::sync::atomic::Ordering::Acquire)
    }

    pub fn check_writable(&self) -> Result<(), CommandError> {
        match self.log.get() {
            Some(log) => log.check_writable(),
            None => Ok(()),
        }
    }

    /// See [`MutationLog::takes_local_changes`].
    pub fn takes_local_changes(&self) -> bool {
        self.log.get().is_none_or(|log| log.takes_local_changes())
    }
}

/// A capture in progress (see [`LogSlot::capture`]).
pub struct Capture<'a> {
    slot: &'a LogSlot,
    done: bool,
}

impl Capture<'_> {
    /// Ends the capture and logs what was collected as one record; returns its LSN (0: nothing).
    pub fn finish(mut self) -> u64 {
        self.done = true;
        self.slot.end_capture()
    }
}

impl Drop for Capture<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.slot.end_capture();
        }
    }
}

/// Where the engine sends mutation batches after applying them.
pub trait MutationLog: Send + Sync {
    /// Refuses with an error when the log cannot take writes (for example after an fsync failure); checked
    /// before a write command touches memory.
    fn check_writable(&self) -> Result<(), CommandError>;
    /// Whether background passes (expiry, queue deadlines, stream retention) may change state here: the
    /// log takes this server's own records (not on a replica, not after a log failure). Unlike
    /// `check_writable`, it does not depend on how many replicas are connected.
    fn takes_local_changes(&self) -> bool {
        self.check_writable().is_ok()
    }
    /// Appends one atomic batch and returns its log sequence number. Called with the locks of every key the
    /// batch touches held, so that the log order of writes to one key is their apply order.
    fn append(&self, batch: &[Mutation<'_>]) -> u64;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_every_variant() {
        let batch = vec![
            Mutation::Set { key: b"k", value: b"\x00\xffv", expire_at: 42 },
            Mutation::Del { key: b"" },
            Mutation::SetExpire { key: b"k", expire_at: 0 },
            Mutation::FlushAll,
            Mutation::QueueCreate { name: b"q", config: b"cfg" },
            Mutation::QueueDelete { name: b"q" },
            Mutation::QueuePut {
                queue: b"q",
                msg: QueueMessage {
                    id: 7,
                    priority: 9,
                    attempts: 2,
                    published_at: 1,
                    available_at: 2,
                    expires_at: 3,
                    deadline: 4,
                    consumer: b"c",
                    headers: b"h",
                    payload: b"\x00p",
                },
            },
            Mutation::QueueState { queue: b"q", id: 7, attempts: 3, available_at: 5, deadline: 6, consumer: b"c" },
            Mutation::QueueRemove { queue: b"q", id: 7 },
            Mutation::QueuePurge { queue: b"q" },
            Mutation::QueueNextId { next: 99 },
            Mutation::Stream { room: b"r", op: StreamOp::Create { config: b"c" } },
            Mutation::Stream { room: b"r", op: StreamOp::Delete { instance: None } },
            Mutation::Stream { room: b"r", op: StreamOp::Delete { instance: Some(7) } },
            Mutation::Stream { room: b"r", op: StreamOp::Rename { to: b"s", instance: 7 } },
            Mutation::Stream { room: b"r", op: StreamOp::Append { partition: 1, offset: 2, body: b"b" } },
            Mutation::Stream { room: b"r", op: StreamOp::Trim { partition: 1, start: 5 } },
            Mutation::Stream { room: b"r", op: StreamOp::Tombstone { partition: 1, offset: 3 } },
            Mutation::Stream {
                room: b"r",
                op: StreamOp::Meta { partition: 0, start: 1, next: 9, last: StreamId { ms: 4, seq: 5 } },
            },
            Mutation::Stream { room: b"r", op: StreamOp::GroupCreate { group: b"g", config: b"x" } },
            Mutation::Stream { room: b"r", op: StreamOp::GroupDestroy { group: b"g" } },
            Mutation::Stream {
                room: b"r",
                op: StreamOp::GroupPos { group: b"g", partition: 2, pos: 7, last: StreamId { ms: 1, seq: 2 } },
            },
            Mutation::Stream {
                room: b"r",
                op: StreamOp::Pending {
                    group: b"g",
                    partition: 0,
                    offset: 3,
                    id: StreamId { ms: 5, seq: 6 },
                    consumer: b"c",
                    delivered_at: 11,
                    count: 2,
                },
            },
            Mutation::Stream { room: b"r", op: StreamOp::Ack { group: b"g", partition: 0, offset: 3 } },
            Mutation::Stream { room: b"r", op: StreamOp::Consumer { group: b"g", consumer: b"c", seen_at: 8 } },
            Mutation::Stream { room: b"r", op: StreamOp::ConsumerDel { group: b"g", consumer: b"c" } },
            Mutation::Restore { key: b"h", kind: 1, data: b"\x01", expire_at: 5 },
            Mutation::HSet { key: b"h", field: b"f", value: b"v" },
            Mutation::HDel { key: b"h", field: b"f" },
            Mutation::LPut { key: b"l", idx: -3, value: b"v" },
            Mutation::LDel { key: b"l", idx: 7 },
            Mutation::LKeep { key: b"l", lo: -1, hi: 9 },
            Mutation::SAdd { key: b"s", member: b"m" },
            Mutation::SRem { key: b"s", member: b"m" },
            Mutation::ZSet { key: b"z", member: b"m", score: -1.5 },
            Mutation::ZRem { key: b"z", member: b"m" },
            Mutation::SetRange { key: b"s", offset: 3, data: b"xyz" },
            Mutation::FunctionLoad { code: b"#!lua name=l" },
            Mutation::FunctionDelete { name: b"l" },
            Mutation::FunctionFlush,
            Mutation::SelectDb { db: 15 },
            Mutation::SwapDb { a: 3, b: 0x0102_0304 },
            Mutation::AclSetUser { name: b"u", rules: b"on ~* -@all" },
            Mutation::AclDelUser { name: b"u" },
            Mutation::ApiKeyPut { id: b"k1", data: b"{}" },
            Mutation::ApiKeyDel { id: b"k1" },
        ];
        let mut buf = Vec::new();
        encode_batch(&batch, &mut buf);
        assert_eq!(buf.len(), encoded_len(&batch));
        assert_eq!(decode_batch(&buf).unwrap(), batch);
    }

    #[derive(Default)]
    struct Counting(parking_lot::Mutex<Vec<Vec<u8>>>);

    impl MutationLog for Counting {
        fn check_writable(&self) -> Result<(), CommandError> {
            Ok(())
        }
        fn append(&self, batch: &[Mutation<'_>]) -> u64 {
            let mut buf = Vec::new();
            encode_batch(batch, &mut buf);
            let mut v = self.0.lock();
            v.push(buf);
            v.len() as u64
        }
    }

    /// A panic inside a transaction still ends the capture: what it applied is logged, and later writes
    /// reach the log instead of a capture nobody will end.
    #[test]
    fn a_capture_ends_even_when_the_transaction_panics() {
        let log = std::sync::Arc::new(Counting::default());
        let slot = LogSlot::default();
        assert!(slot.attach(log.clone()).is_ok());
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _capture = slot.capture();
            slot.append(&[Mutation::Del { key: b"in-tx" }]);
            panic!("inside EXEC");
        }));
        assert!(panicked.is_err());
        assert_eq!(slot.append(&[Mutation::Del { key: b"after" }]), 2);
        let logged: Vec<Vec<u8>> = log.0.lock().clone();
        assert_eq!(decode_batch(&logged[0]).unwrap(), vec![Mutation::Del { key: b"in-tx" }]);
        assert_eq!(decode_batch(&logged[1]).unwrap(), vec![Mutation::Del { key: b"after" }]);
        // And a finished capture logs its batches as one record.
        let capture = slot.capture();
        slot.append(&[Mutation::Del { key: b"a" }]);
        slot.append(&[Mutation::Del { key: b"b" }]);
        assert_eq!(capture.finish(), 3);
        assert_eq!(decode_batch(&log.0.lock()[2]).unwrap().len(), 2);
    }

    #[test]
    fn rejects_truncation_trailing_and_bad_tags() {
        let mut buf = Vec::new();
        encode_batch(&[Mutation::Set { key: b"key", value: b"value", expire_at: 1 }], &mut buf);
        for cut in 0..buf.len() {
            assert!(decode_batch(&buf[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = buf.clone();
        longer.push(0);
        assert_eq!(decode_batch(&longer), Err(DecodeError::Trailing(1)));
        let mut bad = buf.clone();
        bad[4] = 99;
        assert!(matches!(decode_batch(&bad), Err(DecodeError::UnknownTag { tag: 99, .. })));
        assert_eq!(decode_batch(&[255, 255, 255, 255]), Err(DecodeError::BadCount(u32::MAX)));
    }
}
