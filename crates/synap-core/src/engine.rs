//! The engine: owns the data services and executes [`Command`]s.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::{Clock, Monotonic, SystemClock};
use crate::command::{Command, Reply};
use crate::error::Result;
use crate::kv::{Keyspace, KvConfig, SnapshotCursor};
use crate::mutation::{LogSlot, Mutation, MutationLog};
use crate::notify::{NotifyFlags, Plan};
use crate::pubsub::PubSub;
use crate::queue::{QueueCursor, QueueSettings, QueueStore};
use crate::stream::{StreamBackend, StreamCursor, StreamSettings, StreamStore};

/// Engine settings.
#[derive(Debug, Clone, Default)]
pub struct EngineConfig {
    pub kv: KvConfig,
    pub queues: QueueSettings,
    pub streams: StreamSettings,
    /// Where stream partitions live.
    pub stream_storage: StreamBackend,
    /// Keyspace notifications (off by default).
    pub notify: NotifyFlags,
}

impl EngineCursor {
    /// A cursor whose key-value chunks stop growing past `chunk_bytes` (tests use small ones to exercise
    /// collections split over several chunks).
    pub fn with_chunk_bytes(chunk_bytes: usize) -> EngineCursor {
        EngineCursor { kv: SnapshotCursor::with_chunk_bytes(chunk_bytes), ..Default::default() }
    }

    /// The walk of a snapshot that covers the log up to `lsn` (streams created after it are left out).
    pub fn at_lsn(lsn: u64) -> EngineCursor {
        EngineCursor { streams: StreamCursor::at_lsn(lsn), ..Default::default() }
    }
}

/// Where a snapshot walk of the whole engine stands.
#[derive(Debug, Clone, Default)]
pub struct EngineCursor {
    kv: SnapshotCursor,
    kv_done: bool,
    queues: QueueCursor,
    queues_done: bool,
    streams: StreamCursor,
}

/// Per-call context a front end keeps for its client.
#[derive(Debug, Default, Clone)]
pub struct ExecCtx {
    /// Log sequence number of the last mutation batch this client caused. A front end waits until the log
    /// has made it durable (per the fsync policy) before it acknowledges the reply.
    pub lsn: u64,
    /// "Now" in Unix ms for the commands of one batch (0: read the clock per command). A front end that
    /// executes a pipeline sets it once per batch, as Redis caches the time per event-loop pass.
    pub now_ms: u64,
}

/// The engine. Cheap to share behind an `Arc`; every method takes `&self`.
pub struct Engine {
    kv: Keyspace,
    queues: QueueStore,
    streams: StreamStore,
    pubsub: Arc<PubSub>,
    notify: NotifyFlags,
    log: Arc<LogSlot>,
    clock: Arc<dyn Clock>,
    /// Commands run under the read side; a transaction (EXEC) takes the write side, so that no other
    /// command interleaves with it. Background passes and snapshot chunks take the read side too.
    gate: parking_lot::RwLock<()>,
}

impl Engine {
    /// An engine that logs every mutation batch to `log` (or to nothing).
    pub fn new(config: EngineConfig, clock: Arc<dyn Clock>, log: Option<Arc<dyn MutationLog>>) -> Engine {
        let clock: Arc<dyn Clock> = Arc::new(Monotonic::new(clock));
        let slot = Arc::new(LogSlot::default());
        if let Some(log) = log {
            let _ = slot.attach(log);
        }
        let pubsub = Arc::new(PubSub::default());
        let kv = Keyspace::new(config.kv, clock.clone(), slot.clone());
        let notify = config.notify;
        if notify.active() && (notify.expired || notify.evicted) {
            let ps = pubsub.clone();
            kv.set_event_hook(Arc::new(move |event, key| {
                if notify.wants(event) {
                    send_notification(&ps, notify, event, key);
                }
            }));
        }
        Engine {
            kv,
            queues: QueueStore::new(config.queues, clock.clone(), slot.clone()),
            streams: StreamStore::new(config.streams, config.stream_storage.0, clock.clone(), slot.clone()),
            pubsub,
            notify,
            log: slot,
            clock,
            gate: parking_lot::RwLock::new(()),
        }
    }

    /// An in-memory engine on the system clock (tests, benchmarks).
    pub fn in_memory(config: EngineConfig) -> Engine {
        Engine::new(config, Arc::new(SystemClock), None)
    }

    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    pub fn kv(&self) -> &Keyspace {
        &self.kv
    }

    pub fn queues(&self) -> &QueueStore {
        &self.queues
    }

    pub fn streams(&self) -> &StreamStore {
        &self.streams
    }

    pub fn pubsub(&self) -> &PubSub {
        &self.pubsub
    }

    /// Memory the data holds, as counted against the memory limit: keys, queues and streams.
    pub fn used_memory(&self) -> usize {
        self.kv.used_memory() + self.queues.used_memory() + self.streams.used_memory()
    }

    /// Executes one command. Write commands are refused while the log is failed, and commands that may grow
    /// memory first make room under the memory limit (or fail with OOM).
    pub fn execute(&self, ctx: &mut ExecCtx, cmd: Command) -> Result<Reply> {
        // Walks of the whole keyspace take the gate shard by shard: a transaction never waits for a walk
        // to finish, and commands never wait behind a transaction waiting for one.
        let now = if ctx.now_ms > 0 { ctx.now_ms } else { self.clock.now_ms() };
        match &cmd {
            Command::Keys { pattern } => return Ok(keys_reply(self.kv.keys(pattern, now, Some(&self.gate))?)),
            Command::Scan(args) => return Ok(scan_reply(self.kv.scan(args, now, Some(&self.gate)))),
            _ => {}
        }
        let _gate = self.gate.read();
        self.execute_inner(ctx, cmd)
    }

    /// Runs a transaction (MULTI ... EXEC): every command in order with no other command in between, its
    /// mutations logged as one record (after a crash it is there whole or not at all). `None` (nothing
    /// run) when a watched key changed (`watch` set).
    pub fn exec_transaction(
        &self,
        ctx: &mut ExecCtx,
        cmds: Vec<Command>,
        watch: Option<&std::sync::atomic::AtomicBool>,
    ) -> Option<Vec<Result<Reply>>> {
        let _gate = self.gate.write();
        if watch.is_some_and(|w| w.load(std::sync::atomic::Ordering::Acquire)) {
            return None;
        }
        let capture = self.log.capture();
        let replies = cmds.into_iter().map(|c| self.execute_inner(ctx, c)).collect();
        let lsn = capture.finish();
        // Streams created or deleted inside learn the LSN that makes them durable (the gate is still held:
        // no snapshot chunk sees them unsettled).
        self.streams.settle(lsn);
        ctx.lsn = ctx.lsn.max(lsn);
        Some(replies)
    }

    fn execute_inner(&self, ctx: &mut ExecCtx, cmd: Command) -> Result<Reply> {
        if cmd.is_write() {
            self.log.check_writable()?;
        }
        if cmd.may_grow() {
            let lsn = self.kv.ensure_memory(self.queues.used_memory() + self.streams.used_memory())?;
            ctx.lsn = ctx.lsn.max(lsn);
        }
        let mut lsn = 0;
        let kv = &self.kv;
        let mut plan = if self.notify.active() { crate::notify::plan(&cmd) } else { None };
        let now = if ctx.now_ms > 0 { ctx.now_ms } else { self.clock.now_ms() };
        let reply = match cmd {
            Command::Get { key } => kv.get(&key, now),
            Command::Set(args) => kv.set(&args, &mut lsn, now),
            Command::GetDel { key } => kv.getdel(&key, &mut lsn, now),
            Command::Del { keys } => {
                let mut deleted = Vec::new();
                let mut r = kv.del(&keys, &mut lsn, now, &mut deleted);
                // A stream is a key to Redis users: DEL removes it too.
                if let Reply::Int(n) = &mut r {
                    for k in &keys {
                        if let Some(l) = self.streams.delete(k) {
                            lsn = lsn.max(l);
                            *n += 1;
                        }
                    }
                }
                if let Some(Plan::Del(d)) = plan.as_mut() {
                    *d = deleted;
                }
                Ok(r)
            }
            Command::Exists { keys } => Ok(match kv.exists(&keys, now) {
                Reply::Int(n) => Reply::Int(n + keys.iter().filter(|k| self.streams.exists(k)).count() as i64),
                other => other,
            }),
            Command::MGet { keys } => Ok(kv.mget(&keys, now)),
            Command::MSet { pairs, nx } => kv.mset(&pairs, nx, &mut lsn, now),
            Command::IncrBy { key, by } => kv.incr_by(&key, by, &mut lsn, now),
            Command::IncrByFloat { key, by } => kv.incr_by_float(&key, by, &mut lsn, now),
            Command::Append { key, value } => kv.append(&key, &value, &mut lsn, now),
            Command::Strlen { key } => kv.strlen(&key, now),
            Command::Expire { key, ttl, cond, name } => kv.expire(&key, ttl, cond, name, &mut lsn, now),
            Command::Ttl { key, unit } => Ok(kv.ttl(&key, unit, now)),
            Command::ExpireTime { key, unit } => Ok(kv.expire_time(&key, unit, now)),
            Command::Persist { key } => Ok(kv.persist(&key, &mut lsn, now)),
            Command::Type { key } => Ok(match kv.key_type(&key, now) {
                Reply::Status("none") if self.streams.exists(&key) => Reply::Status("stream"),
                other => other,
            }),
            Command::Rename { from, to, nx } => kv.rename(&from, &to, nx, &mut lsn, now),
            Command::Keys { pattern } => kv.keys(&pattern, now, None).map(keys_reply),
            Command::Scan(args) => Ok(scan_reply(kv.scan(&args, now, None))),
            Command::RandomKey => Ok(kv.random_key(now)),
            Command::DbSize => Ok(Reply::Int(kv.len() as i64)),
            Command::FlushAll => Ok(kv.flush_all(&mut lsn, now)),
            Command::QueueCreate { name, options } => {
                let (config, explicit_dlq) = options.resolve(&self.queues.settings.defaults);
                self.queues.create(&name, config, explicit_dlq, &mut lsn)
            }
            Command::QueueDelete { name } => Ok(self.queues.delete(&name, &mut lsn)),
            Command::QueueList => Ok(self.queues.list()),
            Command::QueuePublish(args) => self.queues.publish(&args, now, &mut lsn),
            Command::QueueConsume(args) => self.queues.consume(&args, now, &mut lsn),
            Command::QueueAck { queue, ids } => self.queues.ack(&queue, &ids, &mut lsn),
            Command::QueueNack { queue, id, requeue } => self.queues.nack(&queue, id, requeue, now, &mut lsn),
            Command::QueueStats { queue } => self.queues.stats(&queue, now),
            Command::QueuePurge { queue } => self.queues.purge(&queue, &mut lsn),
            Command::QueueDlqList { queue, max } => self.queues.dlq_list(&queue, max),
            Command::QueueRedrive { queue, max } => self.queues.redrive(&queue, max, now, &mut lsn),
            Command::QueueDlqPurge { queue } => self.queues.dlq_purge(&queue, &mut lsn),
            Command::Publish { channel, payload } => Ok(Reply::Int(self.pubsub.publish(&channel, &payload) as i64)),
            Command::PubSubChannels { pattern } => {
                Ok(Reply::Array(self.pubsub.channels(pattern.as_deref()).into_iter().map(Reply::Bulk).collect()))
            }
            Command::PubSubNumSub { channels } => Ok(Reply::Array(
                channels
                    .into_iter()
                    .flat_map(|c| {
                        let n = self.pubsub.numsub(&c) as i64;
                        [Reply::Bulk(c), Reply::Int(n)]
                    })
                    .collect(),
            )),
            Command::PubSubNumPat => Ok(Reply::Int(self.pubsub.numpat() as i64)),
            Command::Stream(crate::stream::StreamCmd::XAdd { key, .. })
                if !self.streams.exists(&key) && kv.key_type(&key, now) != Reply::Status("none") =>
            {
                Err(crate::CommandError::WrongType)
            }
            Command::Stream(cmd) => self.streams.execute(cmd, now, &mut lsn),
            Command::Coll { cmd, args } => kv.coll(cmd, &args, &mut lsn, now),
        };
        ctx.lsn = ctx.lsn.max(lsn);
        if let (Some(plan), Ok(r)) = (plan, &reply) {
            self.notify_plan(plan, r);
        }
        reply
    }

    fn notify_plan(&self, plan: Plan, reply: &Reply) {
        let send = |event: &'static str, key: &[u8]| {
            if self.notify.wants(event) {
                send_notification(&self.pubsub, self.notify, event, key);
            }
        };
        match plan {
            Plan::Keys("set?", keys) => {
                // SET ... NX|XX GET: a nil reply may mean "set, no previous value" or "not set"; notify
                // only when a previous value proves the condition held (XX).
                if matches!(reply, Reply::Bulk(_)) {
                    keys.iter().for_each(|k| send("set", k));
                }
            }
            Plan::Keys(event, keys) => {
                if event == "set!" {
                    keys.iter().for_each(|k| send("set", k));
                } else if crate::notify::acted(reply) {
                    keys.iter().for_each(|k| send(event, k));
                }
            }
            Plan::Del(keys) => keys.iter().for_each(|k| send("del", k)),
            Plan::Rename(from, to) => {
                if crate::notify::acted(reply) {
                    send("rename_from", &from);
                    send("rename_to", &to);
                }
            }
        }
    }

    /// Attaches the mutation log (after recovery replayed the old one). Fails if one is attached already.
    pub fn attach_log(&self, log: Arc<dyn MutationLog>) -> std::result::Result<(), Arc<dyn MutationLog>> {
        self.log.attach(log)
    }

    /// The one applier for recorded mutations (recovery, replicas): applies without logging. Runs of
    /// key-value mutations are applied together, so a batch's keys change at once.
    pub fn apply_batch(&self, batch: &[Mutation<'_>]) {
        let mut start = 0;
        for (i, m) in batch.iter().enumerate() {
            if m.is_queue() || m.is_stream() {
                if start < i {
                    self.kv.apply_batch(&batch[start..i]);
                }
                if m.is_queue() {
                    self.queues.apply(m);
                } else {
                    self.streams.apply(m);
                }
                start = i + 1;
            }
        }
        if start < batch.len() {
            self.kv.apply_batch(&batch[start..]);
        }
    }

    /// A digest of the whole state as of now (live data only).
    pub fn digest(&self) -> u64 {
        self.kv.digest(self.now_ms()) ^ self.queues.digest().rotate_left(17) ^ self.streams.digest().rotate_left(31)
    }

    /// Encodes the next chunk of a snapshot (at most `max` records) into `out`; `None` when done.
    pub fn snapshot_chunk(&self, cursor: &mut EngineCursor, max: usize, out: &mut Vec<u8>) -> Option<usize> {
        // Not in the middle of a transaction: a snapshot must not hold half of one.
        let _gate = self.gate.read();
        if !cursor.kv_done {
            match self.kv.snapshot_chunk(&mut cursor.kv, max, out) {
                Some(n) => return Some(n),
                None => cursor.kv_done = true,
            }
        }
        if !cursor.queues_done {
            match self.queues.snapshot_chunk(&mut cursor.queues, max, out) {
                Some(n) => return Some(n),
                None => cursor.queues_done = true,
            }
        }
        self.streams.snapshot_chunk(&mut cursor.streams, max, out)
    }

    /// Makes every stream event durable in its segment files; a snapshot calls it before it claims an
    /// LSN, since snapshots carry stream metadata but not the events.
    pub fn sync_streams(&self) -> std::result::Result<(), String> {
        self.streams.sync()
    }

    /// Stream retention by age and size. Returns the LSN it logged up to.
    pub fn stream_sweep(&self) -> u64 {
        self.streams.sweep(self.now_ms(), &self.gate)
    }

    /// One background maintenance pass (active expiry) within `budget`.
    pub fn maintenance(&self, budget: Duration) -> crate::kv::ExpireReport {
        self.kv.active_expire_pass(budget, &self.gate)
    }

    /// The queue sweep: delayed messages, expired deadlines and TTLs. Returns the LSN it logged up to.
    pub fn queue_sweep(&self) -> u64 {
        self.queues.sweep(self.now_ms(), &self.gate).1
    }
}

fn keys_reply(keys: Vec<bytes::Bytes>) -> Reply {
    Reply::Array(keys.into_iter().map(Reply::Bulk).collect())
}

fn scan_reply((cursor, keys): (u64, Vec<bytes::Bytes>)) -> Reply {
    Reply::Array(vec![Reply::bulk(cursor.to_string()), keys_reply(keys)])
}

/// Publishes one keyspace notification on the channels the flags ask for.
fn send_notification(ps: &PubSub, flags: NotifyFlags, event: &str, key: &[u8]) {
    if flags.keyspace {
        let mut ch = b"__keyspace@0__:".to_vec();
        ch.extend_from_slice(key);
        ps.publish(&ch, event.as_bytes());
    }
    if flags.keyevent {
        let ch = format!("__keyevent@0__:{event}");
        ps.publish(ch.as_bytes(), key);
    }
}
