//! Errors of the storage layer.

use std::io;
use std::path::PathBuf;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum StorageError {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("corrupt write-ahead log {path} at byte {offset}: {reason}")]
    CorruptWal { path: PathBuf, offset: u64, reason: String },
    #[error("corrupt snapshot {path}: {reason}")]
    CorruptSnapshot { path: PathBuf, reason: String },
    #[error(
        "write-ahead log gap: the newest usable snapshot covers up to LSN {snapshot_lsn}, but the log starts at LSN {wal_first}"
    )]
    Gap { snapshot_lsn: u64, wal_first: u64 },
    #[error("persistence has failed earlier and refuses writes: {0}")]
    Failed(String),
    #[error("a snapshot is being written already")]
    SnapshotInProgress,
}

pub(crate) trait IoContext<T> {
    fn ctx(self, op: &'static str, path: &std::path::Path) -> Result<T, StorageError>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, op: &'static str, path: &std::path::Path) -> Result<T, StorageError> {
        self.map_err(|source| StorageError::Io { op, path: path.to_path_buf(), source })
    }
}
