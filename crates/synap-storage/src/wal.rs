//! The write-ahead log: one writer thread, group commit, the fsync policy, segment rotation.
//!
//! ```text
//! engine (shard lock held) --append--> Pending buffer --swap--> writer thread --write/fsync--> segment file
//!                                          |                         |
//! front end --wait(lsn)--> watch<Progress> <------- publish ---------+
//! ```
//! `append` encodes the record straight into the pending buffer under a short mutex and wakes the writer
//! only when the buffer goes from empty to non-empty. The writer swaps the whole buffer out, writes it with
//! one `write`, and with `fsync: always` makes it durable with one fsync: every write that arrived while the
//! previous batch was being written shares the next fsync (group commit). A front end acknowledges a
//! write only once `wait(lsn)` returns, i.e. once the record is in the OS (`periodic`, `never`) or on disk
//! (`always`). With `periodic` the writer also fsyncs on a timer, even when no new write comes.
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
use crate::error::{IoContext, StorageError};

pub const SEGMENT_MAGIC: &[u8; 8] = b"SYNAPWAL";
pub const SEGMENT_VERSION: u32 = 1;
pub const SEGMENT_HEADER_LEN: usize = 24;
pub const RECORD_HEADER_LEN: usize = 16;
/// Largest payload a record may claim; anything larger is corruption.
pub const MAX_RECORD_LEN: u32 = 1 << 30;

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
}

struct Pending {
    data: Vec<u8>,
    next_lsn: u64,
    shutdown: bool,
}

struct Shared {
    pending: Mutex<Pending>,
    wake: Condvar,
    progress: watch::Sender<Progress>,
    /// The LSN up to which writes may be acknowledged under the policy.
    acked: AtomicU64,
    failed: AtomicBool,
    failure: Mutex<Option<String>>,
    policy: FsyncPolicy,
    stats: WalStats,
}

/// The write-ahead log. Implements [`MutationLog`] for the engine.
pub struct Wal {
    shared: Arc<Shared>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

struct Writer {
    shared: Arc<Shared>,
    storage: Arc<dyn Storage>,
    cfg: WalConfig,
    file: Box<dyn WriteFile>,
    segment_first: u64,
    segment_len: u64,
    written: u64,
    synced: u64,
}

impl Wal {
    /// Starts a log whose next record gets `next_lsn`, in a fresh segment named after it.
    pub fn start(storage: Arc<dyn Storage>, cfg: WalConfig, next_lsn: u64) -> Result<Wal, StorageError> {
        storage.create_dir_all(&cfg.dir).ctx("create directory", &cfg.dir)?;
        let path = cfg.dir.join(segment_name(next_lsn));
        let mut file = storage.create(&path).ctx("create", &path)?;
        file.write_all(&segment_header(next_lsn)).ctx("write", &path)?;
        file.sync().ctx("fsync", &path)?;
        storage.sync_dir(&cfg.dir).ctx("fsync directory", &cfg.dir)?;
        let last = next_lsn - 1;
        let (progress, _) = watch::channel(Progress { written: last, synced: last, failed: None });
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending { data: Vec::with_capacity(64 * 1024), next_lsn, shutdown: false }),
            wake: Condvar::new(),
            progress,
            acked: AtomicU64::new(last),
            failed: AtomicBool::new(false),
            failure: Mutex::new(None),
            policy: cfg.fsync,
            stats: WalStats::default(),
        });
        shared.stats.segments_created.fetch_add(1, Ordering::Relaxed);
        let writer = Writer {
            shared: shared.clone(),
            storage,
            cfg,
            file,
            segment_first: next_lsn,
            segment_len: SEGMENT_HEADER_LEN as u64,
            written: last,
            synced: last,
        };
        let handle = std::thread::Builder::new()
            .name("synap-wal".into())
            .spawn(move || writer.run())
            .map_err(|e| StorageError::Io { op: "spawn", path: PathBuf::from("synap-wal thread"), source: e })?;
        Ok(Wal { shared, writer: Mutex::new(Some(handle)) })
    }

    /// LSN of the last record appended (written or not).
    pub fn last_lsn(&self) -> u64 {
        self.shared.pending.lock().next_lsn - 1
    }

    pub fn progress(&self) -> Progress {
        self.shared.progress.borrow().clone()
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

    /// Waits until `lsn` may be acknowledged under the fsync policy; fails if the log failed before that.
    pub async fn wait(&self, lsn: u64) -> Result<(), CommandError> {
        if lsn == 0 || self.shared.acked.load(Ordering::Acquire) >= lsn {
            return Ok(());
        }
        let policy = self.shared.policy;
        let mut rx = self.shared.progress.subscribe();
        let reached = |p: &Progress| match policy {
            FsyncPolicy::Always => p.synced >= lsn,
            _ => p.written >= lsn,
        };
        let result = rx.wait_for(|p| reached(p) || p.failed.is_some()).await;
        match result {
            Ok(p) if reached(&p) => Ok(()),
            Ok(p) => Err(CommandError::Persistence(p.failed.clone().unwrap_or_default())),
            Err(_) => Err(CommandError::Persistence("write-ahead log stopped".into())),
        }
    }

    /// Writes and fsyncs everything pending, then stops the writer thread.
    pub fn shutdown(&self) {
        {
            let mut p = self.shared.pending.lock();
            p.shutdown = true;
        }
        self.shared.wake.notify_one();
        if let Some(h) = self.writer.lock().take() {
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
            let msg = self.shared.failure.lock().clone().unwrap_or_default();
            return Err(CommandError::Persistence(msg));
        }
        Ok(())
    }

    fn append(&self, batch: &[Mutation<'_>]) -> u64 {
        let mut p = self.shared.pending.lock();
        let lsn = p.next_lsn;
        p.next_lsn += 1;
        let was_empty = p.data.is_empty();
        encode_record(lsn, batch, &mut p.data);
        drop(p);
        self.shared.stats.records.fetch_add(1, Ordering::Relaxed);
        if was_empty {
            self.shared.wake.notify_one();
        }
        lsn
    }
}

impl Writer {
    fn run(mut self) {
        let mut spare = Vec::with_capacity(64 * 1024);
        let interval = self.cfg.fsync_interval.max(Duration::from_millis(1));
        let mut next_sync = Instant::now() + interval;
        loop {
            let (last_lsn, shutdown) = {
                let mut p = self.shared.pending.lock();
                while p.data.is_empty() && !p.shutdown {
                    let unsynced = self.synced < self.written;
                    if self.shared.policy == FsyncPolicy::Periodic && unsynced {
                        if self.shared.wake.wait_until(&mut p, next_sync).timed_out() {
                            break;
                        }
                    } else {
                        self.shared.wake.wait(&mut p);
                    }
                }
                std::mem::swap(&mut p.data, &mut spare);
                (p.next_lsn - 1, p.shutdown)
            };
            let failed = self.shared.failed.load(Ordering::Acquire);
            if !spare.is_empty() && !failed {
                match self.write_batch(&spare, last_lsn) {
                    Ok(()) => {}
                    Err(e) => self.fail(e),
                }
            }
            spare.clear();
            if spare.capacity() > 8 << 20 {
                spare = Vec::with_capacity(64 * 1024); // do not keep a huge buffer after a burst
            }
            let sync_due = match self.shared.policy {
                FsyncPolicy::Always => false, // done per batch in write_batch
                FsyncPolicy::Periodic => Instant::now() >= next_sync,
                FsyncPolicy::Never => false,
            };
            if (sync_due || shutdown)
                && self.synced < self.written
                && !self.shared.failed.load(Ordering::Acquire)
                && let Err(e) = self.sync()
            {
                self.fail(e);
            }
            if sync_due {
                next_sync = Instant::now() + interval;
            }
            self.publish();
            if shutdown {
                let p = self.shared.pending.lock();
                if p.data.is_empty() {
                    return;
                }
            }
        }
    }

    fn current_path(&self) -> PathBuf {
        self.cfg.dir.join(segment_name(self.segment_first))
    }

    fn write_batch(&mut self, data: &[u8], last_lsn: u64) -> Result<(), StorageError> {
        let path = self.current_path();
        self.file.write_all(data).ctx("write", &path)?;
        self.segment_len += data.len() as u64;
        self.written = last_lsn;
        let stats = &self.shared.stats;
        stats.bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
        stats.batches.fetch_add(1, Ordering::Relaxed);
        if self.shared.policy == FsyncPolicy::Always {
            self.sync()?;
        }
        if self.segment_len >= self.cfg.segment_bytes {
            self.rotate(last_lsn + 1)?;
        }
        Ok(())
    }

    fn sync(&mut self) -> Result<(), StorageError> {
        let path = self.current_path();
        self.file.sync().ctx("fsync", &path)?;
        self.shared.stats.fsyncs.fetch_add(1, Ordering::Relaxed);
        self.synced = self.written;
        Ok(())
    }

    /// Closes the current segment (durably) and starts the next at `first_lsn`.
    fn rotate(&mut self, first_lsn: u64) -> Result<(), StorageError> {
        if self.synced < self.written {
            self.sync()?;
        }
        let path = self.cfg.dir.join(segment_name(first_lsn));
        let mut file = self.storage.create(&path).ctx("create", &path)?;
        file.write_all(&segment_header(first_lsn)).ctx("write", &path)?;
        file.sync().ctx("fsync", &path)?;
        self.storage.sync_dir(&self.cfg.dir).ctx("fsync directory", &self.cfg.dir)?;
        self.file = file;
        self.segment_first = first_lsn;
        self.segment_len = SEGMENT_HEADER_LEN as u64;
        self.shared.stats.segments_created.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn fail(&mut self, e: StorageError) {
        tracing::error!(error = %e, "write-ahead log failed; refusing writes from now on");
        *self.shared.failure.lock() = Some(e.to_string());
        self.shared.failed.store(true, Ordering::Release);
    }

    fn publish(&self) {
        let acked = match self.shared.policy {
            FsyncPolicy::Always => self.synced,
            _ => self.written,
        };
        self.shared.acked.store(acked, Ordering::Release);
        let failed = self.shared.failure.lock().clone();
        self.shared.progress.send_if_modified(|p| {
            let next = Progress { written: self.written, synced: self.synced, failed: failed.clone() };
            if *p == next {
                false
            } else {
                *p = next;
                true
            }
        });
    }
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
