//! Acknowledged work queues, RabbitMQ/SQS style: priorities, delays, TTLs, in-flight deadlines, retries
//! and dead-lettering, all through the mutation path.
//!
//! Layout:
//! - `config` queue options and the record encodings of options and headers
//! - `mod`    (this file) the store of queues, one queue's indexes, and the applier
//! - `ops`    the commands: publish, consume, ack, nack, stats, purge, dead-letter handling, the sweep
//!
//! One queue:
//! ```text
//! messages: BTreeMap<id, Message>      ids grow with time, so the first entry is the oldest message
//! ready:    BTreeSet<(9 - priority, id)>  highest priority first, FIFO within a priority
//! delayed:  BTreeSet<(available_at, id)>  not deliverable yet
//! inflight: BTreeSet<(deadline, id)>      delivered, awaiting ack
//! ttl:      BTreeSet<(expires_at, id)>    ready messages with a TTL
//! ```
//! Every operation is O(log n). Mutations are physical per message (`QueuePut` sets a message whole,
//! `QueueState` its delivery state, `QueueRemove` deletes it), so replay over a fuzzy snapshot is exact.
//!
//! Lock rule: the map of queues is behind an `RwLock` taken briefly to find a queue; each queue behind its
//! own `Mutex`. Never two queue locks at once: moving messages to a dead-letter queue removes them under
//! the source's lock, releases it, then adds them under the target's lock and logs both in one batch.

mod config;
mod ops;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use tokio::sync::Notify;

pub use config::{QueueConfig, decode_headers, default_dlq, encode_headers};
pub use ops::SweepReport;

pub use crate::command::queue::{ConsumeArgs, PublishArgs, QueueCmd, QueueOptions, parse_id};

use crate::clock::Clock;
use crate::mutation::{LogSlot, Mutation, QueueMessage};

/// Store-wide settings.
#[derive(Debug, Clone)]
pub struct QueueSettings {
    /// Publishing to a missing queue creates it (with default options) instead of failing.
    pub auto_create: bool,
    /// Options of queues created without explicit ones.
    pub defaults: QueueConfig,
    /// Most queues.
    pub max_queues: usize,
}

impl Default for QueueSettings {
    fn default() -> Self {
        QueueSettings { auto_create: false, defaults: QueueConfig::default(), max_queues: 10_000 }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Message {
    pub payload: Bytes,
    pub headers: Bytes,
    pub priority: u8,
    pub attempts: u32,
    pub published_at: u64,
    pub available_at: u64,
    pub expires_at: u64,
    /// 0: ready; otherwise in flight until this time.
    pub deadline: u64,
    pub consumer: Bytes,
}

impl Message {
    pub(crate) fn record<'a>(&'a self, id: u64) -> QueueMessage<'a> {
        QueueMessage {
            id,
            priority: self.priority,
            attempts: self.attempts,
            published_at: self.published_at,
            available_at: self.available_at,
            expires_at: self.expires_at,
            deadline: self.deadline,
            consumer: &self.consumer,
            headers: &self.headers,
            payload: &self.payload,
        }
    }
}

/// Counters per queue.
#[derive(Debug, Default, Clone)]
pub(crate) struct Counters {
    pub published: u64,
    pub delivered: u64,
    pub acked: u64,
    pub nacked: u64,
    pub redelivered: u64,
    pub dead_lettered: u64,
    pub expired: u64,
}

pub(crate) struct Queue {
    /// Bytes charged for the messages (payload, headers, consumer, indexes), also added to `used`.
    pub bytes: usize,
    /// The store-wide total of every queue's `bytes`.
    used: Arc<AtomicUsize>,
    pub name: Bytes,
    pub config: QueueConfig,
    pub messages: BTreeMap<u64, Message>,
    pub ready: BTreeSet<(u8, u64)>,
    pub delayed: BTreeSet<(u64, u64)>,
    pub inflight: BTreeSet<(u64, u64)>,
    pub ttl: BTreeSet<(u64, u64)>,
    pub ready_by_priority: [u64; 10],
    /// In-flight count per consumer.
    pub consumers: HashMap<Bytes, u32>,
    /// When each consumer last asked for messages (Unix ms), for stats: consumers seen in the last
    /// [`SEEN_WINDOW_MS`], at most [`MAX_SEEN`] of them.
    pub seen: HashMap<Bytes, u64>,
    seen_pruned: u64,
    pub counters: Counters,
    pub notify: Arc<Notify>,
    /// Set under the lock when the queue is deleted: a command that found the queue just before must not
    /// write to it any more.
    pub deleted: bool,
}

/// A consumer counts as active this long after it last asked for messages.
pub(crate) const SEEN_WINDOW_MS: u64 = 60_000;
/// Most consumers a queue remembers for its stats (consumer names are whatever clients send).
pub(crate) const MAX_SEEN: usize = 10_000;

impl Queue {
    /// Records that `consumer` asked for messages: consumers not seen for [`SEEN_WINDOW_MS`] are forgotten
    /// when room is needed, and past [`MAX_SEEN`] active ones a new name is not recorded.
    pub(crate) fn saw(&mut self, consumer: &Bytes, now: u64) {
        if let Some(t) = self.seen.get_mut(consumer) {
            *t = now;
            return;
        }
        // At most one pruning walk a second, however many new names arrive.
        if self.seen.len() >= MAX_SEEN && now.saturating_sub(self.seen_pruned) >= 1000 {
            self.seen.retain(|_, t| now.saturating_sub(*t) < SEEN_WINDOW_MS);
            self.seen_pruned = now;
        }
        if self.seen.len() < MAX_SEEN {
            self.seen.insert(consumer.clone(), now);
        }
    }

    fn new(name: Bytes, config: QueueConfig, used: Arc<AtomicUsize>) -> Queue {
        Queue {
            bytes: 0,
            used,
            name,
            config,
            messages: BTreeMap::new(),
            ready: BTreeSet::new(),
            delayed: BTreeSet::new(),
            inflight: BTreeSet::new(),
            ttl: BTreeSet::new(),
            ready_by_priority: [0; 10],
            consumers: HashMap::new(),
            seen: HashMap::new(),
            seen_pruned: 0,
            counters: Counters::default(),
            notify: Arc::new(Notify::new()),
            deleted: false,
        }
    }

    /// Memory charged for a message: its bytes plus the map and index entries it takes.
    fn charge(m: &Message) -> usize {
        m.payload.len() + m.headers.len() + m.consumer.len() + MESSAGE_OVERHEAD
    }

    fn account(&mut self, add: usize, sub: usize) {
        self.bytes = self.bytes + add - sub;
        if add >= sub {
            self.used.fetch_add(add - sub, Ordering::Relaxed);
        } else {
            self.used.fetch_sub(sub - add, Ordering::Relaxed);
        }
    }

    fn index(&mut self, id: u64, m: &Message, now: u64) {
        if m.deadline != 0 {
            self.inflight.insert((m.deadline, id));
            *self.consumers.entry(m.consumer.clone()).or_default() += 1;
            return;
        }
        if m.available_at > now {
            self.delayed.insert((m.available_at, id));
        } else {
            self.ready.insert((9 - m.priority, id));
            self.ready_by_priority[m.priority as usize] += 1;
        }
        if m.expires_at != 0 {
            self.ttl.insert((m.expires_at, id));
        }
    }

    fn unindex(&mut self, id: u64, m: &Message) {
        if m.deadline != 0 {
            self.inflight.remove(&(m.deadline, id));
            if let Some(n) = self.consumers.get_mut(&m.consumer) {
                *n -= 1;
                if *n == 0 {
                    self.consumers.remove(&m.consumer);
                }
            }
            return;
        }
        if self.delayed.remove(&(m.available_at, id)) {
        } else if self.ready.remove(&(9 - m.priority, id)) {
            self.ready_by_priority[m.priority as usize] -= 1;
        }
        if m.expires_at != 0 {
            self.ttl.remove(&(m.expires_at, id));
        }
    }

    /// Applier: sets a message whole.
    pub(crate) fn put(&mut self, id: u64, m: Message, now: u64) {
        if let Some(old) = self.messages.remove(&id) {
            self.unindex(id, &old);
            self.account(0, Self::charge(&old));
        }
        self.index(id, &m, now);
        self.account(Self::charge(&m), 0);
        self.messages.insert(id, m);
    }

    /// Applier: sets the delivery state of a message, if it still exists.
    pub(crate) fn set_state(
        &mut self,
        id: u64,
        attempts: u32,
        available_at: u64,
        deadline: u64,
        consumer: &[u8],
        now: u64,
    ) {
        let Some(mut m) = self.messages.remove(&id) else { return };
        self.unindex(id, &m);
        let before = Self::charge(&m);
        m.attempts = attempts;
        m.available_at = available_at;
        m.deadline = deadline;
        m.consumer = if deadline == 0 { Bytes::new() } else { Bytes::copy_from_slice(consumer) };
        self.index(id, &m, now);
        self.account(Self::charge(&m), before);
        self.messages.insert(id, m);
    }

    /// Applier: removes a message; returns it.
    pub(crate) fn remove(&mut self, id: u64) -> Option<Message> {
        let m = self.messages.remove(&id)?;
        self.unindex(id, &m);
        self.account(0, Self::charge(&m));
        Some(m)
    }

    pub(crate) fn purge(&mut self) -> usize {
        let n = self.messages.len();
        let bytes = self.bytes;
        self.account(0, bytes);
        self.messages.clear();
        self.ready.clear();
        self.delayed.clear();
        self.inflight.clear();
        self.ttl.clear();
        self.ready_by_priority = [0; 10];
        self.consumers.clear();
        n
    }

    /// Moves delayed messages whose time has come to the ready set (index only: their record says when).
    pub(crate) fn promote(&mut self, now: u64) -> usize {
        let mut n = 0;
        while let Some(&(at, id)) = self.delayed.first() {
            if at > now {
                break;
            }
            self.delayed.pop_first();
            if let Some(m) = self.messages.get(&id) {
                let p = m.priority;
                self.ready.insert((9 - p, id));
                self.ready_by_priority[p as usize] += 1;
                n += 1;
            }
        }
        n
    }
}

impl Drop for Queue {
    /// A deleted queue's messages stop counting once the last handle on it goes.
    fn drop(&mut self) {
        self.used.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

/// Bytes a message costs besides its payload, headers and consumer: the message itself, its map entry and
/// its index entries.
const MESSAGE_OVERHEAD: usize = 256;

/// All queues.
pub struct QueueStore {
    /// Bytes every queue's messages take (see [`Queue::charge`]).
    used: Arc<AtomicUsize>,
    queues: RwLock<BTreeMap<Bytes, Arc<Mutex<Queue>>>>,
    next_id: AtomicU64,
    log: Arc<LogSlot>,
    clock: Arc<dyn Clock>,
    pub(crate) settings: QueueSettings,
}

/// Where a snapshot walk of the queues stands.
#[derive(Debug, Clone, Default)]
pub struct QueueCursor {
    /// The queue being written and the last message id written, or `None` before the first queue.
    at: Option<(Bytes, Option<u64>)>,
    done: bool,
}

impl QueueStore {
    pub fn new(settings: QueueSettings, clock: Arc<dyn Clock>, log: Arc<LogSlot>) -> QueueStore {
        QueueStore {
            used: Arc::new(AtomicUsize::new(0)),
            queues: RwLock::new(BTreeMap::new()),
            next_id: AtomicU64::new(1),
            log,
            clock,
            settings,
        }
    }

    /// Bytes the queues' messages take.
    pub fn used_memory(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    pub(crate) fn now(&self) -> u64 {
        self.clock.now_ms()
    }

    pub(crate) fn get(&self, name: &[u8]) -> Option<Arc<Mutex<Queue>>> {
        self.queues.read().get(name).cloned()
    }

    pub(crate) fn all(&self) -> Vec<Arc<Mutex<Queue>>> {
        self.queues.read().values().cloned().collect()
    }

    pub fn names(&self) -> Vec<Bytes> {
        self.queues.read().keys().cloned().collect()
    }

    pub(crate) fn log(&self, batch: &[Mutation<'_>]) -> u64 {
        self.log.append(batch)
    }

    pub(crate) fn alloc_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// A handle woken whenever messages may have become available in `name` (long polls wait on it).
    pub fn waiter(&self, name: &[u8]) -> Option<Arc<Notify>> {
        self.get(name).map(|q| q.lock().notify.clone())
    }

    /// Creates a queue in memory (applier and commands); returns it and whether it was new.
    pub(crate) fn create_in_memory(&self, name: &[u8], config: QueueConfig) -> (Arc<Mutex<Queue>>, bool) {
        let mut map = self.queues.write();
        if let Some(q) = map.get(name) {
            return (q.clone(), false);
        }
        let name = Bytes::copy_from_slice(name);
        let q = Arc::new(Mutex::new(Queue::new(name.clone(), config, self.used.clone())));
        map.insert(name, q.clone());
        (q, true)
    }

    pub(crate) fn queue_count(&self) -> usize {
        self.queues.read().len()
    }

    pub(crate) fn remove_queue(&self, name: &[u8]) -> Option<Arc<Mutex<Queue>>> {
        let q = self.queues.write().remove(name)?;
        {
            let mut g = q.lock();
            g.deleted = true;
            g.notify.notify_waiters();
        }
        Some(q)
    }

    /// The replay applier for queue mutations.
    pub fn apply(&self, m: &Mutation<'_>) {
        let now = self.now();
        match *m {
            Mutation::QueueCreate { name, config } => {
                let config = QueueConfig::decode(config).unwrap_or_else(|| self.settings.defaults.clone());
                let (q, created) = self.create_in_memory(name, config.clone());
                if !created {
                    q.lock().config = config;
                }
            }
            Mutation::QueueDelete { name } => {
                self.remove_queue(name);
            }
            Mutation::QueuePut { queue, ref msg } => {
                let q =
                    self.get(queue).unwrap_or_else(|| self.create_in_memory(queue, self.settings.defaults.clone()).0);
                self.next_id.fetch_max(msg.id.saturating_add(1), Ordering::Relaxed);
                let m = Message {
                    payload: Bytes::copy_from_slice(msg.payload),
                    headers: Bytes::copy_from_slice(msg.headers),
                    priority: msg.priority.min(9),
                    attempts: msg.attempts,
                    published_at: msg.published_at,
                    available_at: msg.available_at,
                    expires_at: msg.expires_at,
                    deadline: msg.deadline,
                    consumer: Bytes::copy_from_slice(msg.consumer),
                };
                q.lock().put(msg.id, m, now);
            }
            Mutation::QueueState { queue, id, attempts, available_at, deadline, consumer } => {
                if let Some(q) = self.get(queue) {
                    q.lock().set_state(id, attempts, available_at, deadline, consumer, now);
                }
            }
            Mutation::QueueRemove { queue, id } => {
                if let Some(q) = self.get(queue) {
                    q.lock().remove(id);
                }
            }
            Mutation::QueuePurge { queue } => {
                if let Some(q) = self.get(queue) {
                    q.lock().purge();
                }
            }
            Mutation::QueueNextId { next } => {
                self.next_id.fetch_max(next, Ordering::Relaxed);
            }
            _ => unreachable!("not a queue mutation"),
        }
    }

    /// Encodes up to `max` queue records (a `QueueCreate` per queue, a `QueuePut` per message) as one batch
    /// into `out`; `None` once every queue is written. One queue lock is held per call.
    pub fn snapshot_chunk(&self, cursor: &mut QueueCursor, max: usize, out: &mut Vec<u8>) -> Option<usize> {
        if cursor.done {
            return None;
        }
        let next = {
            let map = self.queues.read();
            let found = match &cursor.at {
                None => map.iter().next(),
                Some((name, Some(_))) => map.range(name.clone()..).next(),
                Some((name, None)) => map.range(name.clone()..).next(),
            };
            found.map(|(n, q)| (n.clone(), q.clone()))
        };
        let Some((name, q)) = next else {
            cursor.done = true;
            return None;
        };
        let (start_after, fresh) = match &cursor.at {
            Some((n, Some(last))) if *n == name => (Some(*last), false),
            _ => (None, true),
        };
        let q = q.lock();
        let config = q.config.encode();
        let mut batch = Vec::with_capacity(max.min(q.messages.len() + 1));
        if fresh {
            batch.push(Mutation::QueueCreate { name: &name, config: &config });
            // Message ids must never be reused after a restart, even when every message was acked.
            batch.push(Mutation::QueueNextId { next: self.next_id.load(Ordering::Relaxed) });
        }
        let range = match start_after {
            Some(last) => q.messages.range(last + 1..),
            None => q.messages.range(0..),
        };
        let mut last = start_after.unwrap_or(0);
        let mut more = false;
        let mut bytes = 0usize;
        for (&id, m) in range {
            if batch.len() >= max || bytes >= crate::kv::SNAPSHOT_CHUNK_BYTES {
                more = true;
                break;
            }
            bytes += m.payload.len() + m.headers.len();
            batch.push(Mutation::QueuePut { queue: &name, msg: m.record(id) });
            last = id;
        }
        crate::mutation::encode_batch(&batch, out);
        let n = batch.len();
        drop(batch);
        drop(q);
        if more {
            cursor.at = Some((name, Some(last)));
        } else {
            // Move past this queue: the next call looks for the first name after it.
            let mut after = name.to_vec();
            after.push(0);
            cursor.at = Some((Bytes::from(after), None));
        }
        Some(n)
    }

    /// Digest of every queue's options and messages.
    pub fn digest(&self) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut feed = |b: &[u8]| {
            for &x in b {
                h ^= x as u64;
                h = h.wrapping_mul(0x0000_0100_0000_01b3);
            }
        };
        for q in self.all() {
            let q = q.lock();
            feed(&q.name);
            feed(&q.config.encode());
            for (id, m) in &q.messages {
                let mut buf = Vec::new();
                crate::mutation::encode_batch(&[Mutation::QueuePut { queue: &q.name, msg: m.record(*id) }], &mut buf);
                feed(&buf);
            }
        }
        h
    }
}
