//! The quorum's storage: its Raft log and vote in one small file, and the state machine (the cluster's
//! truth: epoch, primary, in-sync replicas) with its snapshot in another.
//!
//! Both files are rewritten whole (written, fsynced, renamed, directory fsynced) on a blocking thread:
//! the log holds cluster metadata only (a few entries per failover or ISR change) and is compacted into
//! the snapshot every [`super::SNAPSHOT_EVERY`] entries, so it stays a few kilobytes.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::io::{Cursor, Write};
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use openraft::storage::{LogFlushed, RaftLogStorage, RaftStateMachine};
use openraft::{
    Entry, EntryPayload, LogId, LogState, OptionalSend, RaftLogReader, RaftSnapshotBuilder, Snapshot, SnapshotMeta,
    StorageError, StorageIOError, StoredMembership, Vote,
};
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, watch};

use super::{ClusterCmd, ClusterReply, NodeId, TypeConfig};

/// The cluster's truth, as committed by the quorum.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterState {
    /// Bumped on every change of primary.
    pub epoch: u64,
    /// The node that takes writes in this epoch.
    pub primary: Option<NodeId>,
    /// The in-sync replicas (the primary included): only these may become primary, and a write under
    /// `min_replicas_to_ack` waits for all of them.
    pub isr: BTreeSet<NodeId>,
    /// Bumped on every change of the ISR or the primary: decisions taken on a view name the version they
    /// saw and apply only if nothing changed since.
    pub version: u64,
    /// The incarnation (a random id per process start) of the primary the election chose (the one whose
    /// LSN it compared): a primary that restarted must not carry on as if nothing happened (its log may
    /// have lost a tail its replicas hold).
    pub boot: u64,
}

impl ClusterState {
    /// Applies a command; `ok: false` when its precondition no longer holds. `voters` are the quorum's
    /// voting members: only they are elected or kept in the ISR.
    pub fn apply(&mut self, cmd: &ClusterCmd, voters: &BTreeSet<NodeId>) -> ClusterReply {
        let ok = match cmd {
            ClusterCmd::Elect { expect_epoch, expect_version, primary, isr, boot } => {
                // From the current ISR only (every member holds every acknowledged write), voters all.
                let valid = *expect_epoch == self.epoch
                    && *expect_version == self.version
                    && isr.contains(primary)
                    && isr.is_subset(voters)
                    && (self.primary.is_none() || isr.is_subset(&self.isr));
                if valid {
                    self.epoch += 1;
                    self.version += 1;
                    self.primary = Some(*primary);
                    self.isr = isr.clone();
                    self.boot = *boot;
                }
                valid
            }
            ClusterCmd::SetIsr { epoch, expect_version, primary, isr } => {
                let valid = *epoch == self.epoch
                    && *expect_version == self.version
                    && self.primary == Some(*primary)
                    && isr.contains(primary)
                    && isr.is_subset(voters);
                if valid {
                    self.isr = isr.clone();
                    self.version += 1;
                }
                valid
            }
            ClusterCmd::Forget { node } => {
                // A removed member can no longer be elected or waited for.
                if self.primary == Some(*node) {
                    false
                } else {
                    if self.isr.remove(node) {
                        self.version += 1;
                    }
                    true
                }
            }
        };
        ClusterReply { ok, epoch: self.epoch }
    }
}

type Err = StorageError<NodeId>;

fn io_err(e: impl std::error::Error + 'static) -> Err {
    StorageIOError::write(&e).into()
}

/// Writes `bytes` to `path` atomically and durably (temporary file, fsync, rename, directory fsync).
fn write_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".tmp");
    let tmp = path.with_file_name(name);
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

async fn write_blocking(path: PathBuf, bytes: Vec<u8>) -> Result<(), Err> {
    tokio::task::spawn_blocking(move || write_file(&path, &bytes)).await.map_err(io_err)?.map_err(io_err)
}

#[derive(Default, Serialize, Deserialize)]
struct LogFile {
    vote: Option<Vote<NodeId>>,
    committed: Option<LogId<NodeId>>,
    last_purged: Option<LogId<NodeId>>,
    entries: BTreeMap<u64, Entry<TypeConfig>>,
}

/// The Raft log and vote.
#[derive(Clone)]
pub struct LogStore {
    path: Arc<PathBuf>,
    inner: Arc<Mutex<LogFile>>,
}

impl LogStore {
    /// Opens (or starts) the log in `dir/raft.log`.
    pub fn open(dir: &Path) -> anyhow::Result<LogStore> {
        let path = dir.join("raft.log");
        let file = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| anyhow::anyhow!("cluster log {} is unreadable: {e}", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => LogFile::default(),
            Err(e) => return Err(anyhow::anyhow!("cannot read {}: {e}", path.display())),
        };
        Ok(LogStore { path: Arc::new(path), inner: Arc::new(Mutex::new(file)) })
    }

    async fn persist(&self, file: &LogFile) -> Result<(), Err> {
        let bytes = serde_json::to_vec(file).map_err(io_err)?;
        write_blocking(self.path.as_ref().clone(), bytes).await
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, Err> {
        let inner = self.inner.lock().await;
        Ok(inner.entries.range(range).map(|(_, e)| e.clone()).collect())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, Err> {
        let inner = self.inner.lock().await;
        let last = inner.entries.values().next_back().map(|e| e.log_id).or(inner.last_purged);
        Ok(LogState { last_purged_log_id: inner.last_purged, last_log_id: last })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), Err> {
        let mut inner = self.inner.lock().await;
        inner.vote = Some(*vote);
        self.persist(&inner).await
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, Err> {
        Ok(self.inner.lock().await.vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId<NodeId>>) -> Result<(), Err> {
        // Not needed for safety (a restarted node learns it again); kept so a restart re-applies at once.
        self.inner.lock().await.committed = committed;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, Err> {
        Ok(self.inner.lock().await.committed)
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), Err>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut inner = self.inner.lock().await;
        for e in entries {
            inner.entries.insert(e.log_id.index, e);
        }
        let result = self.persist(&inner).await;
        callback.log_io_completed(result.as_ref().map(|_| ()).map_err(|e| std::io::Error::other(e.to_string())));
        result
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), Err> {
        let mut inner = self.inner.lock().await;
        inner.entries.retain(|i, _| *i < log_id.index);
        self.persist(&inner).await
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), Err> {
        let mut inner = self.inner.lock().await;
        inner.entries.retain(|i, _| *i > log_id.index);
        inner.last_purged = Some(log_id);
        self.persist(&inner).await
    }
}

#[derive(Clone, Default, Serialize, Deserialize)]
struct SmFile {
    last_applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, super::NodeInfo>,
    state: ClusterState,
    snapshot_id: String,
}

/// The snapshot last built or installed, and its bytes.
type CurrentSnapshot = (SnapshotMeta<NodeId, super::NodeInfo>, Vec<u8>);

/// The state machine: applies committed commands and publishes the state on a watch channel.
#[derive(Clone)]
pub struct StateMachine {
    path: Arc<PathBuf>,
    inner: Arc<Mutex<SmFile>>,
    /// The snapshot last built or installed (what `get_current_snapshot` returns).
    snapshot: Arc<Mutex<Option<CurrentSnapshot>>>,
    pub state: watch::Sender<ClusterState>,
}

impl StateMachine {
    /// Opens the state machine from its last snapshot in `dir/raft.snapshot` (the log holds what follows).
    pub fn open(dir: &Path) -> anyhow::Result<StateMachine> {
        let path = dir.join("raft.snapshot");
        let (file, snapshot) = match std::fs::read(&path) {
            Ok(bytes) => {
                let file: SmFile = serde_json::from_slice(&bytes)
                    .map_err(|e| anyhow::anyhow!("cluster snapshot {} is unreadable: {e}", path.display()))?;
                let meta = SnapshotMeta {
                    last_log_id: file.last_applied,
                    last_membership: file.membership.clone(),
                    snapshot_id: file.snapshot_id.clone(),
                };
                let snapshot = Some((meta, bytes));
                (file, snapshot)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (SmFile::default(), None),
            Err(e) => return Err(anyhow::anyhow!("cannot read {}: {e}", path.display())),
        };
        let state = watch::channel(file.state.clone()).0;
        Ok(StateMachine {
            path: Arc::new(path),
            inner: Arc::new(Mutex::new(file)),
            snapshot: Arc::new(Mutex::new(snapshot)),
            state,
        })
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, Err> {
        let mut file = self.inner.lock().await.clone();
        file.snapshot_id = format!(
            "{}-{}",
            file.last_applied.map(|l| l.index).unwrap_or(0),
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
        );
        // One snapshot file write at a time, and never an older state over a newer one (an installed
        // snapshot may have overtaken this build).
        let mut current = self.snapshot.lock().await;
        if let Some((meta, bytes)) = current.as_ref()
            && meta.last_log_id >= file.last_applied
        {
            return Ok(Snapshot { meta: meta.clone(), snapshot: Box::new(Cursor::new(bytes.clone())) });
        }
        let bytes = serde_json::to_vec(&file).map_err(io_err)?;
        write_blocking(self.path.as_ref().clone(), bytes.clone()).await?;
        let meta = SnapshotMeta {
            last_log_id: file.last_applied,
            last_membership: file.membership.clone(),
            snapshot_id: file.snapshot_id.clone(),
        };
        *current = Some((meta.clone(), bytes.clone()));
        Ok(Snapshot { meta, snapshot: Box::new(Cursor::new(bytes)) })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, super::NodeInfo>), Err> {
        let inner = self.inner.lock().await;
        Ok((inner.last_applied, inner.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<ClusterReply>, Err>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut inner = self.inner.lock().await;
        let mut replies = Vec::new();
        for entry in entries {
            inner.last_applied = Some(entry.log_id);
            let reply = match &entry.payload {
                EntryPayload::Blank => ClusterReply { ok: true, epoch: inner.state.epoch },
                EntryPayload::Normal(cmd) => {
                    let voters: BTreeSet<NodeId> = inner.membership.membership().voter_ids().collect();
                    inner.state.apply(cmd, &voters)
                }
                EntryPayload::Membership(m) => {
                    inner.membership = StoredMembership::new(Some(entry.log_id), m.clone());
                    // A node that left the voters is no longer a candidate or waited for.
                    let voters: BTreeSet<NodeId> = m.voter_ids().collect();
                    let primary = inner.state.primary;
                    let before = inner.state.isr.len();
                    inner.state.isr.retain(|n| voters.contains(n) || Some(*n) == primary);
                    if inner.state.isr.len() != before {
                        inner.state.version += 1;
                    }
                    ClusterReply { ok: true, epoch: inner.state.epoch }
                }
            };
            replies.push(reply);
        }
        let state = inner.state.clone();
        self.state.send_if_modified(|s| {
            let changed = *s != state;
            *s = state;
            changed
        });
        Ok(replies)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, Err> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, super::NodeInfo>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), Err> {
        let bytes = snapshot.into_inner();
        let file: SmFile = serde_json::from_slice(&bytes).map_err(|e| StorageIOError::read_snapshot(None, &e))?;
        let mut current = self.snapshot.lock().await;
        write_blocking(self.path.as_ref().clone(), bytes.clone()).await?;
        let state = file.state.clone();
        *self.inner.lock().await =
            SmFile { last_applied: meta.last_log_id, membership: meta.last_membership.clone(), ..file };
        *current = Some((meta.clone(), bytes));
        self.state.send_replace(state);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, Err> {
        Ok(self
            .snapshot
            .lock()
            .await
            .as_ref()
            .map(|(meta, bytes)| Snapshot { meta: meta.clone(), snapshot: Box::new(Cursor::new(bytes.clone())) }))
    }
}
