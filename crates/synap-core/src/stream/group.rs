//! Consumer groups: positions per partition, pending entries indexed by event, id, delivery time and
//! consumer, consumers, and the records ([`Rec`]) every group change is made of.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;

use super::StreamId;
use crate::mutation::StreamOp;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pending {
    pub id: StreamId,
    pub consumer: Bytes,
    pub delivered_at: u64,
    pub count: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ConsumerState {
    /// Last time the consumer read or claimed (Unix ms).
    pub seen_at: u64,
}

/// One change to a consumer group, as the log records it (`StreamOp::GroupPos`, `Pending`, `Ack`,
/// `Consumer`, `ConsumerDel`). Commands never change a group directly: they decide the changes first,
/// then [`StreamStore::commit_group`] applies them through [`Group::apply`] and logs them in one step, so
/// a command that fails half way (a storage error) has changed nothing, and replay runs the same code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Rec {
    Pos { partition: u32, pos: u64, last: StreamId },
    Pending { partition: u32, offset: u64, id: StreamId, consumer: Bytes, delivered_at: u64, count: u32 },
    Ack { partition: u32, offset: u64 },
    Consumer { consumer: Bytes, seen_at: u64 },
    ConsumerDel { consumer: Bytes },
}

impl Rec {
    /// The record as a logged operation of `group`.
    pub fn op<'a>(&'a self, group: &'a [u8]) -> StreamOp<'a> {
        match self {
            Rec::Pos { partition, pos, last } => {
                StreamOp::GroupPos { group, partition: *partition, pos: *pos, last: *last }
            }
            Rec::Pending { partition, offset, id, consumer, delivered_at, count } => StreamOp::Pending {
                group,
                partition: *partition,
                offset: *offset,
                id: *id,
                consumer,
                delivered_at: *delivered_at,
                count: *count,
            },
            Rec::Ack { partition, offset } => StreamOp::Ack { group, partition: *partition, offset: *offset },
            Rec::Consumer { consumer, seen_at } => StreamOp::Consumer { group, consumer, seen_at: *seen_at },
            Rec::ConsumerDel { consumer } => StreamOp::ConsumerDel { group, consumer },
        }
    }

    /// The group change a logged operation carries (`None` for operations that are not group changes).
    pub fn from_op(op: &StreamOp<'_>) -> Option<(Bytes, Rec)> {
        let b = Bytes::copy_from_slice;
        Some(match *op {
            StreamOp::GroupPos { group, partition, pos, last } => (b(group), Rec::Pos { partition, pos, last }),
            StreamOp::Pending { group, partition, offset, id, consumer, delivered_at, count } => {
                (b(group), Rec::Pending { partition, offset, id, consumer: b(consumer), delivered_at, count })
            }
            StreamOp::Ack { group, partition, offset } => (b(group), Rec::Ack { partition, offset }),
            StreamOp::Consumer { group, consumer, seen_at } => {
                (b(group), Rec::Consumer { consumer: b(consumer), seen_at })
            }
            StreamOp::ConsumerDel { group, consumer } => (b(group), Rec::ConsumerDel { consumer: b(consumer) }),
            _ => return None,
        })
    }
}

/// A consumer group. The pending entries are indexed three ways, kept in step by [`Group::apply`]: by
/// event (the map), by id (commands that name events by id), by delivery time (redelivery of idle
/// entries without a scan) and by consumer (a consumer's own entries without a scan).
#[derive(Debug, Default)]
pub(crate) struct Group {
    /// Bytes charged for the pending entries and consumers, and the store-wide total it is part of (set
    /// once the group is in a stream: [`Group::attach`]).
    weight: usize,
    used: Option<Arc<AtomicUsize>>,
    /// Redelivery of idle pending events on read (0: only by claim, as Redis).
    pub redeliver_ms: u64,
    /// Next offset to deliver, per partition.
    pub pos: Vec<u64>,
    /// Id of the last delivered event, per partition (Redis's last-delivered-id).
    pub last: Vec<StreamId>,
    pending: BTreeMap<(u32, u64), Pending>,
    /// The pending entries' offsets by (partition, id).
    by_id: std::collections::HashMap<(u32, StreamId), u64>,
    /// The pending entries by (delivered_at, partition, offset).
    by_time: BTreeSet<(u64, u32, u64)>,
    /// Each consumer's pending entries.
    by_consumer: std::collections::HashMap<Bytes, BTreeSet<(u32, u64)>>,
    pub consumers: BTreeMap<Bytes, ConsumerState>,
    /// Events dropped by retention before the group read them (or while pending).
    pub lost: u64,
}

impl Group {
    pub fn new(partitions: usize, redeliver_ms: u64) -> Group {
        let mut g = Group::default();
        g.redeliver_ms = redeliver_ms;
        g.pos = vec![0; partitions];
        g.last = vec![StreamId::MIN; partitions];
        g
    }

    /// `redeliver_ms lost count (pos last_ms last_seq)*`
    pub fn encode_config(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(20 + self.pos.len() * 24);
        out.extend_from_slice(&self.redeliver_ms.to_le_bytes());
        out.extend_from_slice(&self.lost.to_le_bytes());
        out.extend_from_slice(&(self.pos.len() as u32).to_le_bytes());
        for (p, l) in self.pos.iter().zip(&self.last) {
            for v in [*p, l.ms, l.seq] {
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
        out
    }

    pub fn decode_config(b: &[u8], partitions: usize) -> Option<Group> {
        let u = |i: usize| b.get(i..i + 8).map(|s| u64::from_le_bytes(s.try_into().expect("8 bytes")));
        let n = u32::from_le_bytes(b.get(16..20)?.try_into().ok()?) as usize;
        if b.len() != 20usize.checked_add(n.checked_mul(24)?)? {
            return None;
        }
        let mut g = Group::new(partitions, u(0)?);
        g.lost = u(8)?;
        for i in 0..n.min(partitions) {
            let at = 20 + i * 24;
            g.pos[i] = u(at)?;
            g.last[i] = StreamId { ms: u(at + 8)?, seq: u(at + 16)? };
        }
        Some(g)
    }

    /// Starts charging this group's memory to `used`.
    pub fn attach(&mut self, used: &Arc<AtomicUsize>) {
        used.fetch_add(self.weight, Ordering::Relaxed);
        self.used = Some(used.clone());
    }

    /// Re-charges the group for its pending entries and consumers.
    fn recharge(&mut self) {
        let weight = self.pending.len() * PENDING_BYTES + self.consumers.len() * CONSUMER_BYTES;
        if let Some(used) = &self.used {
            if weight >= self.weight {
                used.fetch_add(weight - self.weight, Ordering::Relaxed);
            } else {
                used.fetch_sub(self.weight - weight, Ordering::Relaxed);
            }
        }
        self.weight = weight;
    }

    /// The one applier of group changes (commands and replay).
    pub fn apply(&mut self, rec: &Rec) {
        self.apply_one(rec);
        self.recharge();
    }

    fn apply_one(&mut self, rec: &Rec) {
        match rec {
            Rec::Pos { partition, pos, last } => {
                if let (Some(p), Some(l)) =
                    (self.pos.get_mut(*partition as usize), self.last.get_mut(*partition as usize))
                {
                    *p = *pos;
                    *l = *last;
                }
            }
            Rec::Pending { partition, offset, id, consumer, delivered_at, count } => {
                if *partition as usize >= self.pos.len() {
                    return; // a record for a partition the stream does not have (corrupt)
                }
                self.consumers.entry(consumer.clone()).or_default();
                let p = Pending { id: *id, consumer: consumer.clone(), delivered_at: *delivered_at, count: *count };
                self.add_pending((*partition, *offset), p);
            }
            Rec::Ack { partition, offset } => {
                self.remove_pending(&(*partition, *offset));
            }
            Rec::Consumer { consumer, seen_at } => {
                self.consumers.entry(consumer.clone()).or_default().seen_at = *seen_at;
            }
            Rec::ConsumerDel { consumer } => {
                self.consumers.remove(consumer);
                for k in self.by_consumer.remove(consumer).unwrap_or_default() {
                    self.remove_pending(&k);
                }
            }
        }
    }

    fn add_pending(&mut self, k: (u32, u64), p: Pending) {
        self.remove_pending(&k);
        self.by_id.insert((k.0, p.id), k.1);
        self.by_time.insert((p.delivered_at, k.0, k.1));
        self.by_consumer.entry(p.consumer.clone()).or_default().insert(k);
        self.pending.insert(k, p);
    }

    fn remove_pending(&mut self, k: &(u32, u64)) -> Option<Pending> {
        let p = self.pending.remove(k)?;
        self.by_id.remove(&(k.0, p.id));
        self.by_time.remove(&(p.delivered_at, k.0, k.1));
        if let Some(set) = self.by_consumer.get_mut(&p.consumer) {
            set.remove(k);
            if set.is_empty() {
                self.by_consumer.remove(&p.consumer);
            }
        }
        Some(p)
    }

    pub fn pending(&self) -> &BTreeMap<(u32, u64), Pending> {
        &self.pending
    }

    pub fn pending_entry(&self, k: &(u32, u64)) -> Option<&Pending> {
        self.pending.get(k)
    }

    /// The pending entry of event `id` in `partition`.
    pub fn pending_by_id(&self, partition: u32, id: StreamId) -> Option<(u32, u64)> {
        self.by_id.get(&(partition, id)).map(|&offset| (partition, offset))
    }

    /// Up to `max` pending entries delivered at or before `at`, oldest delivery first.
    pub fn delivered_before(&self, at: u64, max: usize) -> Vec<((u32, u64), &Pending)> {
        self.by_time
            .range(..=(at, u32::MAX, u64::MAX))
            .take(max)
            .filter_map(|&(_, p, o)| self.pending.get(&(p, o)).map(|pe| ((p, o), pe)))
            .collect()
    }

    /// `consumer`'s pending entries, in event order.
    pub fn pending_of(&self, consumer: &[u8]) -> impl Iterator<Item = ((u32, u64), &Pending)> {
        self.by_consumer.get(consumer).into_iter().flatten().filter_map(|k| self.pending.get(k).map(|pe| (*k, pe)))
    }

    pub fn pending_count_of(&self, consumer: &[u8]) -> usize {
        self.by_consumer.get(consumer).map(|s| s.len()).unwrap_or(0)
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        if let Some(used) = &self.used {
            used.fetch_sub(self.weight, Ordering::Relaxed);
        }
    }
}

/// Bytes charged per pending entry (the entry and its three index entries) and per consumer.
const PENDING_BYTES: usize = 160;
const CONSUMER_BYTES: usize = 96;
