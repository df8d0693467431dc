//! Persistence as the server uses it: recovery at start, the WAL attached to the engine, snapshots, and
//! removal of what the snapshots make unnecessary.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use synap_core::{Engine, MutationLog};

use crate::backend::Storage;
use crate::error::{IoContext, StorageError};
use crate::recovery::{RecoverMode, RecoveryReport, recover};
use crate::snapshot::{SnapshotInfo, SnapshotWriter, list_snapshots, write_snapshot};
use crate::wal::{FsyncPolicy, Wal, WalConfig, list_segments};

#[derive(Debug, Clone)]
pub struct PersistenceConfig {
    /// The data directory; the WAL goes to `wal/`, snapshots to `snapshots/`.
    pub data_dir: PathBuf,
    pub fsync: FsyncPolicy,
    pub fsync_interval: Duration,
    pub segment_bytes: u64,
    /// Snapshots kept (at least 1).
    pub snapshot_keep: usize,
    pub recover: RecoverMode,
}

pub struct Persistence {
    storage: Arc<dyn Storage>,
    cfg: PersistenceConfig,
    wal: Arc<Wal>,
    engine: Arc<Engine>,
    /// Set while a snapshot is written (one at a time; a second one is refused, never queued).
    snapshotting: Arc<AtomicBool>,
    /// LSN of the last snapshot (or of the recovery point). Read without a lock by INFO and the
    /// scheduler, which must never wait for a snapshot to finish.
    last_snapshot: AtomicU64,
    last_save_unix: AtomicU64,
    /// The snapshots written, and how the last one went.
    pub snapshot_stats: SnapshotStats,
}

/// Counters of the snapshots a server wrote, for INFO and metrics.
#[derive(Debug, Default)]
pub struct SnapshotStats {
    pub written: AtomicU64,
    pub failed: AtomicU64,
    pub last_bytes: AtomicU64,
    pub last_millis: AtomicU64,
    /// Whether the last attempt failed.
    pub last_failed: AtomicBool,
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl Persistence {
    /// Recovers `engine` from the data directory, then starts the WAL and attaches it to the engine.
    pub fn open(
        cfg: PersistenceConfig,
        storage: Arc<dyn Storage>,
        engine: Arc<Engine>,
    ) -> Result<(Persistence, RecoveryReport), StorageError> {
        Persistence::open_with(cfg, storage, engine, |wal| wal)
    }

    /// Like [`Persistence::open`]; `attach` gives the engine what it logs to, around the WAL (the server
    /// puts its replication gate there).
    pub fn open_with(
        cfg: PersistenceConfig,
        storage: Arc<dyn Storage>,
        engine: Arc<Engine>,
        attach: impl FnOnce(Arc<Wal>) -> Arc<dyn MutationLog>,
    ) -> Result<(Persistence, RecoveryReport), StorageError> {
        let (snap_dir, wal_dir) = (cfg.data_dir.join("snapshots"), cfg.data_dir.join("wal"));
        storage.create_dir_all(&snap_dir).ctx("create directory", &snap_dir)?;
        storage.create_dir_all(&wal_dir).ctx("create directory", &wal_dir)?;
        let report = recover(&*storage, &snap_dir, &wal_dir, &engine, cfg.recover)?;
        // Stream files the recovered state does not name: streams whose deletion was durable before their
        // files went, or whose creation never was.
        engine.streams().retain_files();
        let wal_cfg = WalConfig {
            dir: wal_dir,
            fsync: cfg.fsync,
            fsync_interval: cfg.fsync_interval,
            segment_bytes: cfg.segment_bytes,
        };
        let wal = Arc::new(Wal::start(storage.clone(), wal_cfg, report.last_lsn + 1)?);
        if engine.attach_log(attach(wal.clone())).is_err() {
            return Err(StorageError::Failed("the engine already has a mutation log".into()));
        }
        let p = Persistence {
            storage,
            cfg,
            wal,
            engine,
            snapshotting: Arc::new(AtomicBool::new(false)),
            last_snapshot: AtomicU64::new(report.snapshot_lsn),
            last_save_unix: AtomicU64::new(unix_now()),
            snapshot_stats: SnapshotStats::default(),
        };
        Ok((p, report))
    }

    pub fn wal(&self) -> &Arc<Wal> {
        &self.wal
    }

    /// Writes committed since the last snapshot (or recovery point).
    pub fn writes_since_snapshot(&self) -> u64 {
        self.wal.last_lsn().saturating_sub(self.last_snapshot.load(Ordering::Acquire))
    }

    /// When the last snapshot was written, in Unix seconds (the start, before the first one): LASTSAVE.
    pub fn last_save_unix(&self) -> u64 {
        self.last_save_unix.load(Ordering::Acquire)
    }

    /// Whether a snapshot is being written now.
    pub fn snapshot_in_progress(&self) -> bool {
        self.snapshotting.load(Ordering::Acquire)
    }

    /// Takes a snapshot now (blocking: call from a blocking thread), then removes old snapshots and the
    /// WAL segments the kept snapshots cover. Refused with [`StorageError::SnapshotInProgress`] while
    /// another one is being written.
    pub fn snapshot(&self) -> Result<SnapshotInfo, StorageError> {
        if self.snapshotting.swap(true, Ordering::AcqRel) {
            return Err(StorageError::SnapshotInProgress);
        }
        struct Done<'a>(&'a AtomicBool);
        impl Drop for Done<'_> {
            fn drop(&mut self) {
                self.0.store(false, Ordering::Release);
            }
        }
        let _done = Done(&self.snapshotting);
        let result = self.write_snapshot();
        let st = &self.snapshot_stats;
        match &result {
            Ok(info) => {
                st.written.fetch_add(1, Ordering::Relaxed);
                st.last_bytes.store(info.bytes, Ordering::Relaxed);
                st.last_millis.store(info.millis, Ordering::Relaxed);
                st.last_failed.store(false, Ordering::Relaxed);
            }
            Err(_) => {
                st.failed.fetch_add(1, Ordering::Relaxed);
                st.last_failed.store(true, Ordering::Relaxed);
            }
        }
        result
    }

    fn write_snapshot(&self) -> Result<SnapshotInfo, StorageError> {
        if let Some(msg) = self.wal.failure() {
            return Err(StorageError::Failed(msg));
        }
        let (lsn, cursor) = self.engine.snapshot_start(|| self.wal.last_lsn());
        // Stream events live in segment files, not in the snapshot: they must be durable before the
        // snapshot lets recovery skip the WAL records that carried them.
        self.engine.sync_streams().map_err(StorageError::Failed)?;
        let snap_dir = self.cfg.data_dir.join("snapshots");
        let info = write_snapshot(&*self.storage, &snap_dir, &self.engine, lsn, cursor)?;
        self.last_snapshot.store(lsn, Ordering::Release);
        self.last_save_unix.store(unix_now(), Ordering::Release);
        self.cleanup()?;
        tracing::info!(lsn, entries = info.entries, bytes = info.bytes, millis = info.millis, "snapshot written");
        Ok(info)
    }

    /// Starts receiving a full copy from a primary at `lsn`: no snapshot runs meanwhile (one that is
    /// running is waited for, up to a minute). The copy's chunks go to the returned writer.
    pub fn begin_copy(&self, lsn: u64) -> Result<CopyGuard, StorageError> {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while self.snapshotting.swap(true, Ordering::AcqRel) {
            if std::time::Instant::now() >= deadline {
                return Err(StorageError::SnapshotInProgress);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let mut guard = CopyGuard { flag: self.snapshotting.clone(), writer: None };
        let dir = self.cfg.data_dir.join("snapshots");
        guard.writer = Some(SnapshotWriter::create(&*self.storage, &dir, lsn, self.engine.now_ms())?);
        Ok(guard)
    }

    /// Installs a full copy received from a primary: the copy becomes the only snapshot and the log
    /// starts over after it. Stream events the copy brought are made durable first. Every step leaves
    /// recoverable data behind (the old snapshot and a prefix of the old log, or the new snapshot).
    pub fn install_copy(&self, mut copy: CopyGuard, lsn: u64) -> Result<(), StorageError> {
        let mut writer = copy.writer.take().ok_or_else(|| StorageError::Failed("no copy in progress".into()))?;
        self.engine.sync_streams().map_err(StorageError::Failed)?;
        writer.seal()?;
        let snap_dir = self.cfg.data_dir.join("snapshots");
        self.wal.restart_at(lsn + 1, || {
            // Every complete snapshot goes (not through `list_snapshots`, which would also remove the copy
            // itself, still under its temporary name).
            for name in self.storage.list(&snap_dir).ctx("list", &snap_dir)? {
                if crate::snapshot::parse_snapshot_name(&name).is_some() {
                    let path = snap_dir.join(name);
                    self.storage.remove(&path).ctx("remove", &path)?;
                }
            }
            writer.install(&*self.storage).map(|_| ())
        })?;
        self.last_snapshot.store(lsn, Ordering::Release);
        self.last_save_unix.store(unix_now(), Ordering::Release);
        drop(copy);
        Ok(())
    }

    fn cleanup(&self) -> Result<(), StorageError> {
        let snap_dir = self.cfg.data_dir.join("snapshots");
        let snaps = list_snapshots(&*self.storage, &snap_dir)?;
        let keep = self.cfg.snapshot_keep.max(1);
        for (_, path) in snaps.iter().skip(keep) {
            self.storage.remove(path).ctx("remove", path)?;
        }
        let Some(oldest_kept) = snaps.iter().take(keep).map(|(lsn, _)| *lsn).min() else { return Ok(()) };
        let wal_dir = self.cfg.data_dir.join("wal");
        let segments = list_segments(&*self.storage, &wal_dir)?;
        // Segment i holds LSNs [first_i, first_{i+1}); it can go once first_{i+1} - 1 <= oldest_kept.
        for pair in segments.windows(2) {
            if pair[1].0 <= oldest_kept + 1 {
                self.storage.remove(&pair[0].1).ctx("remove", &pair[0].1)?;
            }
        }
        Ok(())
    }

    /// Flushes and fsyncs the WAL and stops its writer.
    pub fn shutdown(&self) {
        if let Err(e) = self.engine.sync_streams() {
            tracing::error!(error = %e, "flushing stream segments at shutdown failed");
        }
        self.wal.shutdown();
        self.purge_stream_files();
    }

    /// Removes the files of deleted streams whose deletion the log has made durable.
    pub fn purge_stream_files(&self) -> usize {
        self.engine.streams().purge_files(self.wal.durable_lsn())
    }
}

/// A full copy being received (see [`Persistence::begin_copy`]); snapshots wait until it is dropped.
pub struct CopyGuard {
    flag: Arc<AtomicBool>,
    writer: Option<SnapshotWriter>,
}

impl CopyGuard {
    /// Adds a chunk of the copy (an encoded batch of `n` records).
    pub fn write_chunk(&mut self, chunk: &[u8], n: u64) -> Result<(), StorageError> {
        match &mut self.writer {
            Some(w) => w.write_chunk(chunk, n),
            None => Err(StorageError::Failed("no copy in progress".into())),
        }
    }
}

impl Drop for CopyGuard {
    fn drop(&mut self) {
        self.flag.store(false, Ordering::Release);
    }
}
