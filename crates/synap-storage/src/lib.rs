//! Synap persistence: the write-ahead log with group commit, snapshots, and recovery.
//!
//! Layout:
//! - [`backend`]     the file system behind a trait: real, and fault-injecting for tests
//! - [`wal`]         the log: record format, writer thread, group commit, fsync policy, rotation
//! - [`snapshot`]    streaming, checksummed snapshots
//! - [`recovery`]    newest valid snapshot + WAL replay, torn tails, corruption handling
//! - [`persistence`] what the server holds: recovery at start, scheduled snapshots, cleanup
//!
//! Formats are specified in `docs/format.md`. This crate depends on `synap-core`'s `Mutation` and applier
//! only; it knows nothing of commands or front ends.

pub mod backend;
pub mod error;
pub mod persistence;
pub mod recovery;
pub mod segments;
pub mod snapshot;
pub mod wal;

pub use backend::{FaultPlan, FaultyStorage, FsStorage, Storage};
pub use error::StorageError;
pub use persistence::{Persistence, PersistenceConfig};
pub use recovery::{RecoverMode, RecoveryReport};
pub use segments::FileStreamStorage;
pub use snapshot::SnapshotInfo;
pub use wal::{FsyncPolicy, Progress, Wal, WalConfig};
