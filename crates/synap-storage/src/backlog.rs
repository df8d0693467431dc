//! The replication backlog: the newest log records, in their WAL encoding, kept in memory up to a byte
//! limit, so that a replica that lost its link continues from where it was (partial resync) instead of
//! copying everything again.
//!
//! Records enter under the log's own lock, in LSN order, as they are appended (before the WAL writes
//! them, as Redis feeds its backlog before the AOF is fsynced): a replica can hold a record the primary
//! loses in a crash. The replication id changes on every start of a primary for that reason (see the
//! server's replication module): a replica never continues a history the primary no longer has.
//!
//! The backlog is off until the first replica connects (as Redis creates its backlog then), so a server
//! with no replicas pays nothing.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::watch;

/// Bookkeeping per record besides its bytes (for the byte count).
const RECORD_OVERHEAD: usize = 48;

struct Entry {
    lsn: u64,
    /// When the record was appended (Unix ms): lag in milliseconds is measured from it.
    at_ms: u64,
    /// The whole record: `len crc lsn payload`, as in a WAL segment.
    data: Bytes,
    /// Bytes of every record pushed up to and including this one (lag in bytes by subtraction).
    end: u64,
}

struct Inner {
    entries: VecDeque<Entry>,
    bytes: usize,
    /// The LSN the next record must have; a record with another one (a log restarted at a new LSN)
    /// empties the backlog first.
    next_lsn: u64,
    /// Bytes of every record ever pushed.
    pushed: u64,
}

/// See the module documentation.
pub struct Backlog {
    enabled: AtomicBool,
    limit: usize,
    inner: Mutex<Inner>,
    /// The LSN of the newest record pushed: replica links wait on it.
    last: watch::Sender<u64>,
}

/// Why a read from the backlog failed: the records asked for are gone (or never were here).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overrun {
    /// The oldest LSN the backlog holds (its next LSN when empty).
    pub first: u64,
}

pub fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl Backlog {
    /// A backlog of at most `limit` bytes whose first record will be `next_lsn`.
    pub fn new(limit: usize, next_lsn: u64) -> Backlog {
        Backlog {
            enabled: AtomicBool::new(false),
            limit: limit.max(1),
            inner: Mutex::new(Inner { entries: VecDeque::new(), bytes: 0, next_lsn, pushed: 0 }),
            last: watch::channel(next_lsn.saturating_sub(1)).0,
        }
    }

    pub fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Acquire)
    }

    /// Starts keeping records from `next_lsn` on (called under the log's lock, so no record is missed).
    pub fn enable(&self, next_lsn: u64) {
        if self.enabled.swap(true, Ordering::AcqRel) {
            return;
        }
        let mut g = self.inner.lock();
        g.entries.clear();
        g.bytes = 0;
        g.next_lsn = next_lsn;
    }

    /// Keeps one record (called under the log's lock, in LSN order).
    pub fn push(&self, lsn: u64, record: &[u8]) {
        let mut g = self.inner.lock();
        if lsn != g.next_lsn {
            g.entries.clear();
            g.bytes = 0;
        }
        g.next_lsn = lsn + 1;
        g.bytes += record.len() + RECORD_OVERHEAD;
        g.pushed += record.len() as u64;
        let end = g.pushed;
        g.entries.push_back(Entry { lsn, at_ms: unix_ms(), data: Bytes::copy_from_slice(record), end });
        while g.bytes > self.limit && g.entries.len() > 1 {
            let e = g.entries.pop_front().expect("not empty");
            g.bytes -= e.data.len() + RECORD_OVERHEAD;
        }
        drop(g);
        self.last.send_replace(lsn);
    }

    /// Forgets everything: the log continues at `next_lsn` (a replica that loaded a full copy).
    pub fn reset(&self, next_lsn: u64) {
        let mut g = self.inner.lock();
        g.entries.clear();
        g.bytes = 0;
        g.next_lsn = next_lsn;
        drop(g);
        self.last.send_replace(next_lsn.saturating_sub(1));
    }

    /// Whether the backlog holds every record from `from` on (`from` may be one past the newest).
    pub fn covers(&self, from: u64) -> bool {
        let g = self.inner.lock();
        let first = g.entries.front().map_or(g.next_lsn, |e| e.lsn);
        from >= first && from <= g.next_lsn
    }

    /// Appends records from `from` on to `out`, about `max_bytes` of them (at least one when there is
    /// one). Fails when `from` is older than the oldest record kept.
    pub fn read(&self, from: u64, max_bytes: usize, out: &mut Vec<Bytes>) -> Result<(), Overrun> {
        let g = self.inner.lock();
        let first = g.entries.front().map_or(g.next_lsn, |e| e.lsn);
        if from < first || from > g.next_lsn {
            return Err(Overrun { first });
        }
        let mut bytes = 0;
        for e in g.entries.range((from - first) as usize..) {
            if bytes >= max_bytes {
                break;
            }
            bytes += e.data.len();
            out.push(e.data.clone());
        }
        Ok(())
    }

    /// How long ago the record after `acked` was appended (0 when `acked` is the newest or unknown).
    pub fn lag_ms(&self, acked: u64, now_ms: u64) -> u64 {
        let g = self.inner.lock();
        let Some(first) = g.entries.front().map(|e| e.lsn) else { return 0 };
        let want = acked.saturating_add(1);
        if want < first {
            return g.entries.front().map_or(0, |e| now_ms.saturating_sub(e.at_ms));
        }
        g.entries.get((want - first) as usize).map_or(0, |e| now_ms.saturating_sub(e.at_ms))
    }

    /// Bytes of the records after `acked` that the backlog holds.
    pub fn bytes_after(&self, acked: u64) -> u64 {
        let g = self.inner.lock();
        let Some(first) = g.entries.front() else { return 0 };
        if acked < first.lsn {
            return g.pushed - (first.end - first.data.len() as u64);
        }
        match g.entries.get((acked - first.lsn) as usize) {
            Some(e) => g.pushed - e.end,
            None => 0,
        }
    }

    /// Oldest LSN held, newest pushed, bytes held (INFO's `repl_backlog_*`).
    pub fn extent(&self) -> (u64, u64, usize) {
        let g = self.inner.lock();
        let first = g.entries.front().map_or(g.next_lsn, |e| e.lsn);
        (first, g.next_lsn.saturating_sub(1), g.bytes)
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Wakes when a record is pushed.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.last.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_records_within_its_limit() {
        let b = Backlog::new(3 * (10 + RECORD_OVERHEAD), 1);
        b.enable(1);
        for lsn in 1..=5u64 {
            b.push(lsn, &[lsn as u8; 10]);
        }
        let (first, last, _) = b.extent();
        assert_eq!((first, last), (3, 5));
        let mut out = Vec::new();
        assert_eq!(b.read(2, usize::MAX, &mut out), Err(Overrun { first: 3 }));
        b.read(4, usize::MAX, &mut out).unwrap();
        assert_eq!(out.iter().map(|r| r[0]).collect::<Vec<_>>(), vec![4, 5]);
        out.clear();
        b.read(6, usize::MAX, &mut out).unwrap();
        assert!(out.is_empty());
        assert!(b.covers(3) && b.covers(6) && !b.covers(2) && !b.covers(7));
        assert_eq!(b.bytes_after(3), 20);
        // A record out of sequence starts over.
        b.push(9, &[9; 10]);
        assert_eq!(b.extent().0, 9);
        assert!(!b.covers(5));
    }
}
