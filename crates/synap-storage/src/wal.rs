//! The write-ahead log: one writer thread, group commit, the fsync policy, segment rotation.
//!
//! ```text
//! engine (shard lock held) --append--> Pending buffer --swap--> writer thread --write/fsync--> segment file
//!                                          |                         |
//! front end --wait(lsn)--> watch<Progress> <------- publish ---------+
//! ```
//! `append` encodes the record straight into the pending buffer under a short mutex. Whoever flushes swaps
//! the whole buffer out and writes it with one `write`:
//! - `always`: the background thread, woken when the buffer goes from empty to non-empty, writes and
//!   fsyncs; every write that arrived while the previous fsync ran shares the next one (group commit).
//! - `periodic` / `never`: the first waiting front end writes everything pending itself, for all waiters
//!   (flush combining, no thread hop); the background thread fsyncs every interval, even when idle
//!   (`periodic`), and writes records nobody waits for (evictions).
//!
//! Front ends only ever `write`: every fsync, file creation and directory sync runs on the background
//! thread. The periodic fsync goes through the writer's own file handle (shared, no second descriptor)
//! without holding the writer. A segment that reached `segment_bytes` asks the background thread to
//! rotate: it fsyncs the segment, creates the next one (header, fsync, directory fsync) and swaps it in
//! under the writer lock; writers meanwhile wait without blocking a worker. A next segment that cannot be
//! created (out of file descriptors, say) is not a durability failure: the current segment grows and the
//! rotation is retried later.
//!
//! A front end acknowledges a write only once `wait(lsn)` returns: once the record is in the OS
//! (`periodic`, `never`: nothing is lost when the process dies) or on disk (`always`).
//!
//! The buffer needs no explicit cap: every write is held by a client waiting for its acknowledgement, so
//! what is pending is bounded by the connections and their pipelines, which have their own limits.
//!
//! After a failed write or fsync the log is *failed* for good: waiters past the last durable LSN get an
//! error, `check_writable` refuses new writes, and nothing is acknowledged that might not be on disk.
//!
//! Record layout (see `docs/format.md`): `len:u32 crc:u32 lsn:u64 payload[len]`, CRC32C over lsn+payload.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use synap_core::{CommandError, Mutation, MutationLog, encode_batch};
use tokio::sync::watch;

use crate::backend::{Storage, WriteFile};
use crate::backlog::Backlog;
use crate::error::{IoContext, StorageError};

pub const SEGMENT_MAGIC: &[u8; 8] = b"SYNAPWAL";
pub const SEGMENT_VERSION: u32 = 1;
pub const SEGMENT_HEADER_LEN: usize = 24;
pub const RECORD_HEADER_LEN: usize = 16;
/// Largest payload a record may claim; anything larger is corruption. The engine keeps every batch below
/// `synap_core::mutation::MAX_BATCH_BYTES` (1 GiB), well inside this.
pub const MAX_RECORD_LEN: u32 = 1 << 31;

/// When the log is made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FsyncPolicy {
    /// fsync every batch before acknowledging it.
    Always,
    /// Acknowledge once written to the OS; fsync every interval.
    #[default]
    Periodic,
    /// Acknowledge once written to the OS; the OS decides when to flush.
    Never,
}

#[derive(Debug, Clone)]
pub struct WalConfig {
    pub dir: PathBuf,
    pub fsync: FsyncPolicy,
    pub fsync_interval: Duration,
    pub segment_bytes: u64,
}

pub fn segment_name(first_lsn: u64) -> String {
    format!("{first_lsn:020}.wal")
}

pub fn parse_segment_name(name: &str) -> Option<u64> {
    name.strip_suffix(".wal").filter(|n| n.len() == 20).and_then(|n| n.parse().ok())
}

pub fn segment_header(first_lsn: u64) -> [u8; SEGMENT_HEADER_LEN] {
    let mut h = [0u8; SEGMENT_HEADER_LEN];
    h[..8].copy_from_slice(SEGMENT_MAGIC);
    h[8..12].copy_from_slice(&SEGMENT_VERSION.to_le_bytes());
    h[16..24].copy_from_slice(&first_lsn.to_le_bytes());
    h
}

/// Appends one encoded record to `out`.
pub fn encode_record(lsn: u64, batch: &[Mutation<'_>], out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0u8; RECORD_HEADER_LEN]);
    out[start + 8..start + 16].copy_from_slice(&lsn.to_le_bytes());
    encode_batch(batch, out);
    let len = (out.len() - start - RECORD_HEADER_LEN) as u32;
    let crc = crc32c::crc32c(&out[start + 8..]);
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// Appends one record whose payload is already encoded.
pub fn encode_raw_record(lsn: u64, payload: &[u8], out: &mut Vec<u8>) {
    let mut crc = crc32c::crc32c(&lsn.to_le_bytes());
    crc = crc32c::crc32c_append(crc, payload);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&lsn.to_le_bytes());
    out.extend_from_slice(payload);
}

/// Splits one whole record (`len crc lsn payload`) into its LSN and payload, checking length and CRC.
pub fn decode_record(rec: &[u8]) -> Result<(u64, &[u8]), String> {
    if rec.len() < RECORD_HEADER_LEN {
        return Err(format!("record of {} bytes, shorter than its header", rec.len()));
    }
    let len = u32::from_le_bytes(rec[0..4].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(rec[4..8].try_into().expect("4 bytes"));
    let lsn = u64::from_le_bytes(rec[8..16].try_into().expect("8 bytes"));
    if len != rec.len() - RECORD_HEADER_LEN {
        return Err(format!("record says {len} bytes, holds {}", rec.len() - RECORD_HEADER_LEN));
    }
    if crc32c::crc32c(&rec[8..]) != crc {
        return Err(format!("record {lsn}: checksum mismatch"));
    }
    Ok((lsn, &rec[RECORD_HEADER_LEN..]))
}

/// What the writer has done so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    /// Highest LSN handed to the OS.
    pub written: u64,
    /// Highest LSN fsynced.
    pub synced: u64,
    /// Set once the log has failed.
    pub failed: Option<String>,
}

/// Counters for INFO / metrics.
#[derive(Debug, Default)]
pub struct WalStats {
    pub records: AtomicU64,
    pub bytes: AtomicU64,
    pub batches: AtomicU64,
    pub fsyncs: AtomicU64,
    pub segments_created: AtomicU64,
    /// How long each fsync of the log took.
    pub fsync_time: synap_core::histogram::Histogram,
    /// When the last fsync finished (Unix milliseconds; 0: none yet).
    pub last_fsync_unix_ms: AtomicU64,
}

impl WalStats {
    fn synced(&self, took: std::time::Duration) {
        self.fsyncs.fetch_add(1, Ordering::Relaxed);
        self.fsync_time.record(took);
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
        self.last_fsync_unix_ms.store(now as u64, Ordering::Relaxed);
    }
}

struct Pending {
    data: Vec<u8>,
    next_lsn: u64,
    shutdown: bool,
}

struct Shared {
    pending: Mutex<Pending>,
    wake: Condvar,
    /// The current segment is full: the background thread rotates.
    rotate: AtomicBool,
    /// The open segment. Lock order: `file` -> `pending`; the engine only ever takes `pending`.
    file: Mutex<Writer>,
    progress: watch::Sender<Progress>,
    /// The LSN up to which writes may be acknowledged under the policy.
    acked: AtomicU64,
    failed: AtomicBool,
    failure: Mutex<Option<String>>,
    policy: FsyncPolicy,
    fsync_interval: Duration,
    stats: WalStats,
    /// The replication backlog, fed under `pending`'s lock in LSN order (once a replica asked for it).
    backlog: std::sync::OnceLock<Arc<Backlog>>,
}

/// The write-ahead log. Implements [`MutationLog`] for the engine.
pub struct Wal {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

struct Writer {
    storage: Arc<dyn Storage>,
    cfg: WalConfig,
    file: Arc<dyn WriteFile>,
    /// A failed rotation is not retried before this.
    retry_rotation: Instant,
    segment_first: u64,
    segment_len: u64,
    written: u64,
    synced: u64,
    /// Reused buffer the pending records are swapped into.
    spare: Vec<u8>,
}

impl Wal {
    /// Starts a log whose next record gets `next_lsn`, in a fresh segment named after it.
    pub fn start(storage: Arc<dyn Storage>, cfg: WalConfig, next_lsn: u64) -> Result<Wal, StorageError> {
        storage.create_dir_all(&cfg.dir).ctx("create directory", &cfg.dir)?;
        let file = create_segment(&*storage, &cfg.dir, next_lsn)?;
        let last = next_lsn - 1;
        let (progress, _) = watch::channel(Progress { written: last, synced: last, failed: None });
        let policy = cfg.fsync;
        let fsync_interval = cfg.fsync_interval.max(Duration::from_millis(1));
        let writer = Writer {
            storage,
            cfg,
            file,
            retry_rotation: Instant::now(),
            segment_first: next_lsn,
            segment_len: SEGMENT_HEADER_LEN as u64,
            written: last,
            synced: last,
            spare: Vec::with_capacity(64 * 1024),
        };
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending { data: Vec::with_capacity(64 * 1024), next_lsn, shutdown: false }),
            wake: Condvar::new(),
            rotate: AtomicBool::new(false),
            file: Mutex::new(writer),
            progress,
            acked: AtomicU64::new(last),
            failed: AtomicBool::new(false),
            failure: Mutex::new(None),
            policy,
            fsync_interval,
            stats: WalStats::default(),
            backlog: std::sync::OnceLock::new(),
        });
        shared.stats.segments_created.fetch_add(1, Ordering::Relaxed);
        let bg = shared.clone();
        let handle = std::thread::Builder::new()
            .name("synap-wal".into())
            .spawn(move || background(bg))
            .map_err(|e| StorageError::Io { op: "spawn", path: PathBuf::from("synap-wal thread"), source: e })?;
        Ok(Wal { shared, thread: Mutex::new(Some(handle)) })
    }

    /// LSN of the last record appended (written or not).
    pub fn last_lsn(&self) -> u64 {
        self.shared.pending.lock().next_lsn - 1
    }

    pub fn progress(&self) -> Progress {
        self.shared.progress.borrow().clone()
    }

    /// The LSN up to which records survive a power failure (`never`: up to which the OS has them).
    pub fn durable_lsn(&self) -> u64 {
        let p = self.shared.progress.borrow();
        if self.shared.policy == FsyncPolicy::Never { p.written } else { p.synced }
    }

    pub fn policy(&self) -> FsyncPolicy {
        self.shared.policy
    }

    pub fn stats(&self) -> &WalStats {
        &self.shared.stats
    }

    pub fn failure(&self) -> Option<String> {
        self.shared.failure.lock().clone()
    }

    fn failed_error(&self) -> CommandError {
        CommandError::Persistence(self.failure().unwrap_or_else(|| "write-ahead log stopped".into()))
    }

    /// Waits until `lsn` may be acknowledged under the fsync policy; fails if the log failed before that.
    ///
    /// With `periodic` and `never` the first waiter writes every pending record itself (for all waiters:
    /// flush combining), which saves a thread hop per write; the background thread only fsyncs. With
    /// `always`, the background thread writes and fsyncs each batch, and waiters sleep until it is done.
    pub async fn wait(&self, lsn: u64) -> Result<(), CommandError> {
        if lsn == 0 || self.shared.acked.load(Ordering::Acquire) >= lsn {
            return Ok(());
        }
        let mut rx = self.shared.progress.subscribe();
        if self.shared.policy != FsyncPolicy::Always {
            // Never block a worker behind another flusher: take the writer if it is free, otherwise wait
            // for the current flush to publish and look again (our record may have been after its cut).
            loop {
                if self.shared.acked.load(Ordering::Acquire) >= lsn {
                    return Ok(());
                }
                if self.shared.failed.load(Ordering::Acquire) {
                    return Err(self.failed_error());
                }
                rx.borrow_and_update();
                if let Some(mut w) = self.shared.file.try_lock() {
                    if w.written < lsn {
                        w.flush(&self.shared, false);
                    }
                    continue;
                }
                // The writer is busy. Every flush publishes (even one that wrote nothing new), so this wakes
                // as soon as the writer is free, and the record is written then if still pending.
                if rx.changed().await.is_err() {
                    return Err(self.failed_error());
                }
            }
        }
        let result = rx.wait_for(|p| p.synced >= lsn || p.failed.is_some()).await;
        match result {
            Ok(p) if p.synced >= lsn => Ok(()),
            _ => Err(self.failed_error()),
        }
    }

    /// Gives the log its replication backlog (once).
    pub fn attach_backlog(&self, backlog: Arc<Backlog>) {
        let _ = self.shared.backlog.set(backlog);
    }

    pub fn backlog_ref(&self) -> Option<&Arc<Backlog>> {
        self.shared.backlog.get()
    }

    /// Starts feeding the backlog from the next record on (no record is missed: taken under the log's
    /// lock).
    pub fn enable_backlog(&self) {
        if let Some(b) = self.shared.backlog.get() {
            let p = self.shared.pending.lock();
            b.enable(p.next_lsn);
        }
    }

    /// Appends a record received from a primary: its LSN must be the next one. The payload is an encoded
    /// mutation batch (checked by the caller).
    pub fn append_record(&self, lsn: u64, payload: &[u8]) -> Result<(), String> {
        self.check_writable().map_err(|e| e.to_string())?;
        let mut p = self.shared.pending.lock();
        if lsn != p.next_lsn {
            return Err(format!("record {lsn} where {} was expected", p.next_lsn));
        }
        p.next_lsn += 1;
        self.push_pending(p, lsn, |out| encode_raw_record(lsn, payload, out));
        Ok(())
    }

    /// Adds record `lsn` (written by `encode`) to the pending buffer, and to the backlog when it is on,
    /// under the pending lock (so both hold records in LSN order); wakes the writer when needed.
    fn push_pending(&self, mut p: parking_lot::MutexGuard<'_, Pending>, lsn: u64, encode: impl FnOnce(&mut Vec<u8>)) {
        let was_empty = p.data.is_empty();
        let start = p.data.len();
        encode(&mut p.data);
        if let Some(b) = self.shared.backlog.get()
            && b.enabled()
        {
            b.push(lsn, &p.data[start..]);
        }
        drop(p);
        self.shared.stats.records.fetch_add(1, Ordering::Relaxed);
        // Only `always` needs the thread woken per batch; otherwise waiters write inline and the thread
        // catches stragglers (writes nobody waits for) on its timer.
        if was_empty && self.shared.policy == FsyncPolicy::Always {
            self.shared.wake.notify_one();
        }
    }

    /// Starts the log over at `next_lsn` (a replica that loaded a full copy of its primary): everything
    /// pending is written, every segment removed (newest first, so that what is left is always a prefix
    /// of the log), then `between` runs (it installs the snapshot the new log continues), then the new
    /// segment is created. Blocking: call from a blocking thread. Nobody may append meanwhile.
    pub fn restart_at(
        &self,
        next_lsn: u64,
        between: impl FnOnce() -> Result<(), StorageError>,
    ) -> Result<(), StorageError> {
        let mut w = self.shared.file.lock();
        w.flush(&self.shared, true);
        if let Some(e) = self.failure() {
            return Err(StorageError::Failed(e));
        }
        let dir = w.cfg.dir.clone();
        let mut segments = list_segments(&*w.storage, &dir)?;
        segments.reverse();
        // From the first removal on, a failure leaves no segment to write to: the log fails for good.
        let swap = || -> Result<Arc<dyn WriteFile>, StorageError> {
            for (_, path) in &segments {
                w.storage.remove(path).ctx("remove", path)?;
            }
            w.storage.sync_dir(&dir).ctx("fsync directory", &dir)?;
            between()?;
            create_segment(&*w.storage, &dir, next_lsn)
        };
        let file = match swap() {
            Ok(f) => f,
            Err(e) => {
                w.fail(&self.shared, StorageError::Failed(format!("cannot start the log over: {e}")));
                w.publish(&self.shared);
                return Err(e);
            }
        };
        w.file = file;
        w.segment_first = next_lsn;
        w.segment_len = SEGMENT_HEADER_LEN as u64;
        w.written = next_lsn - 1;
        w.synced = next_lsn - 1;
        self.shared.rotate.store(false, Ordering::Release);
        {
            let mut p = self.shared.pending.lock();
            p.data.clear();
            p.next_lsn = next_lsn;
            if let Some(b) = self.shared.backlog.get() {
                b.reset(next_lsn);
            }
        }
        self.shared.stats.segments_created.fetch_add(1, Ordering::Relaxed);
        w.publish(&self.shared);
        Ok(())
    }

    /// Writes and fsyncs everything pending, then stops the background thread.
    pub fn shutdown(&self) {
        self.shared.pending.lock().shutdown = true;
        self.shared.wake.notify_one();
        if let Some(h) = self.thread.lock().take() {
            let _ = h.join();
        }
    }
}

impl Drop for Wal {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl MutationLog for Wal {
    fn check_writable(&self) -> Result<(), CommandError> {
        if self.shared.failed.load(Ordering::Acquire) {
            return Err(self.failed_error());
        }
        Ok(())
    }

    fn append(&self, batch: &[Mutation<'_>]) -> u64 {
        let mut p = self.shared.pending.lock();
        let lsn = p.next_lsn;
        p.next_lsn += 1;
        self.push_pending(p, lsn, |out| encode_record(lsn, batch, out));
        lsn
    }
}

/// The background thread: with `always`, writes and fsyncs every batch as it arrives (group commit);
/// with `periodic`, writes what nobody flushed and fsyncs every interval, even when idle; with `never`,
/// only writes stragglers. On shutdown it flushes and fsyncs everything.
fn background(shared: Arc<Shared>) {
    let interval = shared.fsync_interval;
    let mut next_tick = Instant::now() + interval;
    loop {
        let shutdown = {
            let mut p = shared.pending.lock();
            if shared.policy == FsyncPolicy::Always {
                while p.data.is_empty() && !p.shutdown {
                    shared.wake.wait(&mut p);
                }
            } else if !p.shutdown {
                let _ = shared.wake.wait_until(&mut p, next_tick);
            }
            p.shutdown
        };
        let tick = Instant::now() >= next_tick;
        if tick {
            next_tick = Instant::now() + interval;
        }
        if !shared.failed.load(Ordering::Acquire) {
            if shared.policy == FsyncPolicy::Periodic && tick && !shutdown {
                periodic_sync(&shared);
            } else {
                let sync = shared.policy == FsyncPolicy::Always || shutdown;
                shared.file.lock().flush(&shared, sync);
            }
            if shared.rotate.load(Ordering::Acquire) && !shutdown {
                let mut w = shared.file.lock();
                if Instant::now() >= w.retry_rotation {
                    w.rotate(&shared);
                }
            }
        }
        if shutdown {
            let p = shared.pending.lock();
            if p.data.is_empty() || shared.failed.load(Ordering::Acquire) {
                return;
            }
        }
    }
}

/// The periodic fsync: writes what is pending, then fsyncs through a second handle *without* holding the
/// writer, so that front ends flushing inline never wait behind an fsync.
fn periodic_sync(shared: &Shared) {
    let (file, upto, path) = {
        let mut w = shared.file.lock();
        w.flush(shared, false);
        if w.synced >= w.written || shared.failed.load(Ordering::Acquire) {
            return;
        }
        (w.file.clone(), w.written, w.path())
    };
    let began = Instant::now();
    let result = file.sync().ctx("fsync", &path);
    let took = began.elapsed();
    let mut w = shared.file.lock();
    match result {
        // A rotation in between fsynced the old segment itself, so `upto` is durable either way.
        Ok(()) => {
            shared.stats.synced(took);
            w.synced = w.synced.max(upto);
        }
        Err(e) => w.fail(shared, e),
    }
    w.publish(shared);
}

impl Writer {
    fn path(&self) -> PathBuf {
        self.cfg.dir.join(segment_name(self.segment_first))
    }

    /// Writes every pending record, fsyncs if `sync` (or if the policy is `always`), publishes progress.
    /// A failure fails the log for good.
    fn flush(&mut self, shared: &Shared, sync: bool) {
        // Checked under the writer lock: after a failure nothing more is written (a record written after
        // torn bytes would be acknowledged yet unreachable at recovery).
        if shared.failed.load(Ordering::Acquire) {
            self.publish(shared);
            return;
        }
        let last_lsn = {
            let mut p = shared.pending.lock();
            std::mem::swap(&mut p.data, &mut self.spare);
            p.next_lsn - 1
        };
        let mut result = Ok(());
        if !self.spare.is_empty() {
            let data = std::mem::take(&mut self.spare);
            result = self.write_batch(shared, &data, last_lsn);
            self.spare = data;
            self.spare.clear();
            if self.spare.capacity() > 8 << 20 {
                self.spare = Vec::with_capacity(64 * 1024); // do not keep a huge buffer after a burst
            }
        }
        let sync = sync || shared.policy == FsyncPolicy::Always;
        if result.is_ok() && sync && self.synced < self.written {
            result = self.sync(shared);
        }
        if let Err(e) = result {
            self.fail(shared, e);
        }
        self.publish(shared);
    }

    fn fail(&mut self, shared: &Shared, e: StorageError) {
        tracing::error!(error = %e, "write-ahead log failed; refusing writes from now on");
        *shared.failure.lock() = Some(e.to_string());
        shared.failed.store(true, Ordering::Release);
    }

    fn write_batch(&mut self, shared: &Shared, data: &[u8], last_lsn: u64) -> Result<(), StorageError> {
        let path = self.path();
        self.file.write_all(data).ctx("write", &path)?;
        self.segment_len += data.len() as u64;
        self.written = last_lsn;
        shared.stats.bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
        shared.stats.batches.fetch_add(1, Ordering::Relaxed);
        if shared.policy == FsyncPolicy::Always {
            self.sync(shared)?;
        }
        if self.segment_len >= self.cfg.segment_bytes && !shared.rotate.swap(true, Ordering::AcqRel) {
            shared.wake.notify_one();
        }
        Ok(())
    }

    fn sync(&mut self, shared: &Shared) -> Result<(), StorageError> {
        let path = self.path();
        let began = Instant::now();
        self.file.sync().ctx("fsync", &path)?;
        shared.stats.synced(began.elapsed());
        self.synced = self.written;
        Ok(())
    }

    /// Closes the current segment (durably) and starts the next one (background thread only). An fsync
    /// failure of the current segment fails the log; failing to create the next one only postpones the
    /// rotation.
    fn rotate(&mut self, shared: &Shared) {
        self.flush(shared, false);
        if shared.failed.load(Ordering::Acquire) {
            return;
        }
        if self.synced < self.written
            && let Err(e) = self.sync(shared)
        {
            self.fail(shared, e);
            self.publish(shared);
            return;
        }
        let first_lsn = self.written + 1;
        match create_segment(&*self.storage, &self.cfg.dir, first_lsn) {
            Ok(file) => {
                self.file = file;
                self.segment_first = first_lsn;
                self.segment_len = SEGMENT_HEADER_LEN as u64;
                shared.rotate.store(false, Ordering::Release);
                shared.stats.segments_created.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot start the next log segment; the current one grows, retrying in 1 s");
                self.retry_rotation = Instant::now() + Duration::from_secs(1);
                // A half-made segment must not stay: recovery would take it for the log's continuation.
                let path = self.cfg.dir.join(segment_name(first_lsn));
                if self.storage.len(&path).is_ok()
                    && let Err(e) = self.storage.remove(&path)
                {
                    self.fail(shared, StorageError::Io { op: "remove", path, source: e });
                }
            }
        }
        self.publish(shared);
    }

    fn publish(&self, shared: &Shared) {
        let acked = match shared.policy {
            FsyncPolicy::Always => self.synced,
            _ => self.written,
        };
        shared.acked.store(acked, Ordering::Release);
        let failed = shared.failure.lock().clone();
        // Always notify: a waiter that found the writer busy must look again even when this flush brought
        // nothing new for it.
        shared.progress.send_modify(|p| {
            *p = Progress { written: self.written, synced: self.synced, failed: failed.clone() };
        });
    }
}

/// Creates the segment that starts at `first_lsn`: header written and fsynced, directory fsynced.
fn create_segment(storage: &dyn Storage, dir: &Path, first_lsn: u64) -> Result<Arc<dyn WriteFile>, StorageError> {
    let path = dir.join(segment_name(first_lsn));
    let file: Arc<dyn WriteFile> = Arc::from(storage.create(&path).ctx("create", &path)?);
    file.write_all(&segment_header(first_lsn)).ctx("write", &path)?;
    file.sync().ctx("fsync", &path)?;
    storage.sync_dir(dir).ctx("fsync directory", dir)?;
    Ok(file)
}

/// Paths of the segments in `dir`, by first LSN.
pub fn list_segments(storage: &dyn Storage, dir: &Path) -> Result<Vec<(u64, PathBuf)>, StorageError> {
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let mut out: Vec<(u64, PathBuf)> = storage
        .list(dir)
        .ctx("list", dir)?
        .into_iter()
        .filter_map(|name| parse_segment_name(&name).map(|lsn| (lsn, dir.join(name))))
        .collect();
    out.sort_by_key(|(lsn, _)| *lsn);
    Ok(out)
}
