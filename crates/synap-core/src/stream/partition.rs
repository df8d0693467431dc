//! One partition of a stream: its segment log, the first readable offset, tombstones (XDEL), the tail
//! cache, and reads by offset, by id and by id range.

use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;

use super::store::MAX_READ_BYTES;
use super::{Event, PartitionLog, StreamId, event_header};
use crate::error::{CommandError, Result};

pub(crate) struct Partition {
    pub log: Box<dyn PartitionLog>,
    /// First readable offset (at least the log's first stored one).
    pub start: u64,
    /// Id of the newest event ever appended (survives trimming, as Redis's last-generated-id).
    pub last: StreamId,
    /// Deleted events (XDEL) at or above `start`.
    pub tombstones: BTreeSet<u64>,
    /// Largest id deleted by XDEL.
    pub max_deleted: StreamId,
    cache: VecDeque<(u64, Bytes)>,
    cache_bytes: usize,
    cache_limit: usize,
    /// The first storage failure, reported to readers and writers.
    pub failed: Option<String>,
    /// Bytes held in memory (tail cache, an in-memory log, tombstones), charged to `used`.
    charged: usize,
    used: Option<Arc<AtomicUsize>>,
}

impl Drop for Partition {
    fn drop(&mut self) {
        if let Some(used) = &self.used {
            used.fetch_sub(self.charged, Ordering::Relaxed);
        }
    }
}

impl Partition {
    pub(crate) fn open(log: Box<dyn PartitionLog>, cache_limit: usize) -> Partition {
        let mut p = Partition {
            start: log.start(),
            log,
            last: StreamId::MIN,
            tombstones: BTreeSet::new(),
            max_deleted: StreamId::MIN,
            cache: VecDeque::new(),
            cache_bytes: 0,
            cache_limit,
            failed: None,
            charged: 0,
            used: None,
        };
        match p.log.last_id() {
            Ok(Some(id)) => p.last = id,
            Ok(None) => {}
            Err(e) => p.failed = Some(e),
        }
        p
    }

    pub fn next(&self) -> u64 {
        self.log.next()
    }

    /// Starts charging this partition's memory to `used`.
    pub(crate) fn attach(&mut self, used: &Arc<AtomicUsize>) {
        self.used = Some(used.clone());
        self.recharge();
    }

    /// Re-charges the partition for what it holds in memory.
    pub fn recharge(&mut self) {
        let bytes = self.cache_bytes + self.log.memory_bytes() as usize + self.tombstones.len() * 24;
        if let Some(used) = &self.used {
            if bytes >= self.charged {
                used.fetch_add(bytes - self.charged, Ordering::Relaxed);
            } else {
                used.fetch_sub(self.charged - bytes, Ordering::Relaxed);
            }
        }
        self.charged = bytes;
    }

    /// Live events (appended, retained, not deleted).
    pub fn len(&self) -> u64 {
        self.next().saturating_sub(self.start).saturating_sub(self.tombstones.len() as u64)
    }

    pub fn check(&self) -> Result<()> {
        match &self.failed {
            Some(e) => Err(CommandError::Internal(format!("stream storage failed: {e}"))),
            None => Ok(()),
        }
    }

    /// Appends at `offset` (the next one) in storage and the tail cache.
    pub fn push(&mut self, offset: u64, body: &[u8]) {
        if let Err(e) = self.log.append(offset, body) {
            tracing::error!(error = %e, "stream append failed");
            self.failed.get_or_insert(e);
            return;
        }
        if let Some((_, id)) = event_header(body) {
            self.last = self.last.max(id);
        }
        if self.cache_limit > 0 {
            self.cache.push_back((offset, Bytes::copy_from_slice(body)));
            self.cache_bytes += body.len();
            while self.cache_bytes > self.cache_limit {
                let Some((_, b)) = self.cache.pop_front() else { break };
                self.cache_bytes -= b.len();
            }
        }
        self.recharge();
    }

    /// Moves the start up (never down), dropping the segments and tombstones below it.
    pub fn trim_to(&mut self, start: u64) {
        let start = start.min(self.next());
        if start <= self.start {
            return;
        }
        self.start = start;
        self.tombstones = self.tombstones.split_off(&start);
        while self.cache.front().is_some_and(|(o, _)| *o < start) {
            let (_, b) = self.cache.pop_front().expect("front");
            self.cache_bytes -= b.len();
        }
        if let Err(e) = self.log.drop_before(start) {
            tracing::error!(error = %e, "dropping stream segments failed");
        }
        self.recharge();
    }

    /// Reads up to `max` live events from `from` (raised to `start`). Returns the events and the offset
    /// after the last one examined.
    pub fn read(&mut self, from: u64, max: usize) -> Result<(Vec<Event>, u64)> {
        self.check()?;
        let mut at = from.max(self.start);
        let next = self.next();
        let mut events = Vec::new();
        let mut bytes = 0usize;
        let mut raw = Vec::new();
        while events.len() < max && at < next && bytes < MAX_READ_BYTES {
            raw.clear();
            let want = (max - events.len()).min(1024);
            match self.cache.front() {
                Some(&(first, _)) if at >= first => {
                    let i = (at - first) as usize;
                    raw.extend(self.cache.range(i..).take(want).cloned());
                }
                _ => {
                    let limit = self.cache.front().map(|(o, _)| *o).unwrap_or(next);
                    self.log
                        .read(at, want.min((limit - at) as usize), MAX_READ_BYTES - bytes, &mut raw)
                        .map_err(|e| CommandError::Internal(format!("stream read failed: {e}")))?;
                }
            }
            if raw.is_empty() {
                break;
            }
            for (offset, body) in raw.drain(..) {
                at = offset + 1;
                if self.tombstones.contains(&offset) {
                    continue;
                }
                bytes += body.len();
                match Event::decode(offset, &body) {
                    Some(e) => events.push(e),
                    None => return Err(CommandError::Internal(format!("stream event at offset {offset} is corrupt"))),
                }
                if events.len() >= max {
                    break;
                }
            }
        }
        Ok((events, at))
    }

    /// One event, if live.
    pub fn get(&mut self, offset: u64) -> Result<Option<Event>> {
        if offset < self.start || offset >= self.next() || self.tombstones.contains(&offset) {
            return Ok(None);
        }
        let (events, _) = self.read(offset, 1)?;
        Ok(events.into_iter().next().filter(|e| e.offset == offset))
    }

    /// The first offset (at least `start`) whose id is at least `id`.
    pub fn seek_id(&mut self, id: StreamId) -> Result<u64> {
        if id <= StreamId::MIN {
            return Ok(self.start);
        }
        if id > self.last {
            return Ok(self.next());
        }
        let cached_first = self.cache.front().and_then(|(o, b)| event_header(b).map(|(_, i)| (*o, i)));
        let offset = match cached_first {
            Some((first, first_id)) if first_id <= id => {
                let i = self.cache.partition_point(|(_, b)| event_header(b).is_some_and(|(_, e)| e < id));
                first + i as u64
            }
            _ => self.log.seek_id(id).map_err(|e| CommandError::Internal(format!("stream seek failed: {e}")))?,
        };
        Ok(offset.max(self.start))
    }
}

impl Partition {
    /// What stands in for a partition moved to a renamed stream (nothing can be read or written here).
    pub(crate) fn moved() -> Partition {
        let mut p = Partition::open(Box::new(super::MemoryLog::new(1)), 0);
        p.failed = Some("the stream was renamed".into());
        p
    }
}

impl Partition {
    /// The start offset that leaves at most `n` live events.
    pub(crate) fn start_for_len(&self, n: u64) -> u64 {
        if self.len() <= n {
            return self.start;
        }
        let next = self.next();
        let mut s = next.saturating_sub(n);
        loop {
            let t = self.tombstones.range(s..).count() as u64;
            let cand = next.saturating_sub(n + t).max(self.start);
            if cand >= s {
                return s.max(self.start);
            }
            s = cand;
        }
    }

    pub(crate) fn first_live(&mut self) -> Result<Option<Event>> {
        let start = self.start;
        Ok(self.read(start, 1)?.0.into_iter().next())
    }

    pub(crate) fn last_live(&mut self) -> Result<Option<Event>> {
        let (start, mut end) = (self.start, self.next());
        while end > start {
            if !self.tombstones.contains(&(end - 1)) {
                return self.get(end - 1);
            }
            end -= 1;
        }
        Ok(None)
    }

    /// Live events with `lo <= id <= hi`, oldest first (or newest first when `rev`), at most `count` and
    /// about [`MAX_READ_BYTES`] of them.
    pub(crate) fn range(&mut self, lo: StreamId, hi: StreamId, count: usize, rev: bool) -> Result<Vec<Event>> {
        let mut out = Vec::new();
        if lo > hi || count == 0 {
            return Ok(out);
        }
        let mut bytes = 0usize;
        let size = |e: &Event| e.key.len() + e.fields.iter().map(|(f, v)| f.len() + v.len() + 8).sum::<usize>();
        if !rev {
            let mut at = self.seek_id(lo)?;
            while out.len() < count && at < self.next() && bytes < MAX_READ_BYTES {
                let (events, after) = self.read(at, (count - out.len()).min(1024))?;
                if after <= at {
                    break;
                }
                at = after;
                for e in events {
                    if e.id > hi {
                        return Ok(out);
                    }
                    bytes += size(&e);
                    out.push(e);
                }
            }
        } else {
            let floor = self.seek_id(lo)?;
            let mut end = self.seek_id(hi.next())?;
            if hi == StreamId::MAX {
                end = self.next();
            }
            while out.len() < count && end > floor && bytes < MAX_READ_BYTES {
                let from = end.saturating_sub(256).max(floor);
                let (events, _) = self.read(from, (end - from) as usize)?;
                for e in events.into_iter().rev() {
                    if e.offset < end && e.id <= hi && e.id >= lo {
                        bytes += size(&e);
                        out.push(e);
                        if out.len() >= count {
                            break;
                        }
                    }
                }
                end = from;
            }
        }
        Ok(out)
    }

    /// The offset of the event with `id`, deleted or not (as long as it is retained).
    pub(crate) fn offset_of(&mut self, id: StreamId) -> Result<Option<u64>> {
        let at = self.seek_id(id)?;
        if at >= self.next() {
            return Ok(None);
        }
        let was = self.tombstones.remove(&at);
        let e = self.get(at);
        if was {
            self.tombstones.insert(at);
        }
        Ok(e?.filter(|e| e.id == id).map(|e| e.offset))
    }
}
