//! Synap persistence: the write-ahead log with group commit, snapshots, and recovery.
//!
//! Layout:
//! - [`backend`]     the file system behind a trait: real, and fault-injecting for tests
//! - [`wal`]         the log: record format, writer thread, group commit, fsync policy, rotation
//! - [`snapshot`]    streaming, checksummed snapshots
//! - [`recovery`]    newest valid snapshot + WAL replay, torn tails, corruption handling
//! - [`backlog`]     the replication backlog: the newest records in memory, for partial resyncs
//! - [`replog`]      the log as replication sees it (the WAL, or a numbering-only log without persistence)
//! - [`persistence`] what the server holds: recovery at start, scheduled snapshots, cleanup
//!
//! Formats are specified in `docs/format.md`. This crate depends on `synap-core`'s `Mutation` and applier
//! only; it knows nothing of commands or front ends.

pub mod backend;
pub mod backlog;
pub mod error;
pub mod persistence;
pub mod recovery;
pub mod replog;
pub mod segments;
pub mod snapshot;
pub mod wal;

pub use backend::{FaultPlan, FaultyStorage, FsStorage, Storage};
pub use backlog::Backlog;
pub use error::StorageError;
pub use persistence::{CopyGuard, Persistence, PersistenceConfig};
pub use recovery::{RecoverMode, RecoveryReport};
pub use replog::{MemoryLog, ReplicatedLog};
pub use segments::FileStreamStorage;
pub use snapshot::SnapshotInfo;
pub use wal::{FsyncPolicy, Progress, Wal, WalConfig};
