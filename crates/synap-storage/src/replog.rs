//! The log as replication sees it: the WAL when the server persists, or a log that only numbers records
//! and feeds the backlog when it does not. Both assign LSNs under one lock and feed the backlog in LSN
//! order; a replica appends the records its primary sends under the primary's LSNs, so that its log is
//! the primary's and its offset survives a restart with its data.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use parking_lot::Mutex;
use synap_core::{CommandError, Mutation, MutationLog};

use crate::backlog::Backlog;
use crate::wal::{Wal, encode_raw_record, encode_record};

pub type WaitFuture<'a> = Pin<Box<dyn Future<Output = Result<(), CommandError>> + Send + 'a>>;

/// See the module documentation.
pub trait ReplicatedLog: MutationLog {
    /// LSN of the last record appended.
    fn last_lsn(&self) -> u64;
    fn backlog(&self) -> &Arc<Backlog>;
    /// Starts feeding the backlog (the first replica asked for records).
    fn enable_backlog(&self);
    /// Appends a record received from the primary (its LSN must be the next one).
    fn append_record(&self, lsn: u64, payload: &[u8]) -> Result<(), String>;
    /// Waits until `lsn` is as durable as the log promises (a replica acknowledges then).
    fn wait(&self, lsn: u64) -> WaitFuture<'_>;
}

impl ReplicatedLog for Wal {
    fn last_lsn(&self) -> u64 {
        Wal::last_lsn(self)
    }
    fn backlog(&self) -> &Arc<Backlog> {
        self.backlog_ref().expect("the WAL of a replicated server has a backlog")
    }
    fn enable_backlog(&self) {
        Wal::enable_backlog(self)
    }
    fn append_record(&self, lsn: u64, payload: &[u8]) -> Result<(), String> {
        Wal::append_record(self, lsn, payload)
    }
    fn wait(&self, lsn: u64) -> WaitFuture<'_> {
        Box::pin(Wal::wait(self, lsn))
    }
}

/// The log of a server that does not persist: numbers records and feeds the backlog, nothing more.
pub struct MemoryLog {
    next_lsn: Mutex<u64>,
    backlog: Arc<Backlog>,
}

impl MemoryLog {
    pub fn new(backlog: Arc<Backlog>) -> MemoryLog {
        MemoryLog { next_lsn: Mutex::new(1), backlog }
    }

    /// Starts over at `next_lsn` (a replica that loaded a full copy).
    pub fn restart_at(&self, next_lsn: u64) {
        let mut n = self.next_lsn.lock();
        *n = next_lsn;
        self.backlog.reset(next_lsn);
    }
}

impl MutationLog for MemoryLog {
    fn check_writable(&self) -> Result<(), CommandError> {
        Ok(())
    }
    fn append(&self, batch: &[Mutation<'_>]) -> u64 {
        let mut n = self.next_lsn.lock();
        let lsn = *n;
        *n += 1;
        if self.backlog.enabled() {
            let mut rec = Vec::new();
            encode_record(lsn, batch, &mut rec);
            self.backlog.push(lsn, &rec);
        }
        lsn
    }
}

impl ReplicatedLog for MemoryLog {
    fn last_lsn(&self) -> u64 {
        *self.next_lsn.lock() - 1
    }
    fn backlog(&self) -> &Arc<Backlog> {
        &self.backlog
    }
    fn enable_backlog(&self) {
        let n = self.next_lsn.lock();
        self.backlog.enable(*n);
    }
    fn append_record(&self, lsn: u64, payload: &[u8]) -> Result<(), String> {
        let mut n = self.next_lsn.lock();
        if lsn != *n {
            return Err(format!("record {lsn} where {} was expected", *n));
        }
        *n += 1;
        if self.backlog.enabled() {
            let mut rec = Vec::with_capacity(payload.len() + 16);
            encode_raw_record(lsn, payload, &mut rec);
            self.backlog.push(lsn, &rec);
        }
        Ok(())
    }
    fn wait(&self, _lsn: u64) -> WaitFuture<'_> {
        Box::pin(async { Ok(()) })
    }
}
