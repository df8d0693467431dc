//! Queue commands. Each decides under the queue's lock, applies physical mutations through the applier
//! functions of `Queue`, and logs them before the lock is released.

use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;

use super::{Message, Queue, QueueConfig, QueueStore, decode_headers, default_dlq};
use crate::command::Reply;
use crate::command::queue::{ConsumeArgs, MAX_BATCH, PublishArgs, QueueCmd};
use crate::error::{CommandError, Result};
use crate::mutation::Mutation;

/// What a sweep did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SweepReport {
    pub requeued: usize,
    pub dead_lettered: usize,
    pub promoted: usize,
}

/// Messages taken out of a queue (already removed in memory) on their way to its dead-letter queue.
struct DeadLetters {
    source: Bytes,
    target: Option<Bytes>,
    msgs: Vec<(u64, Message, &'static str)>,
}

fn not_found(name: &[u8]) -> CommandError {
    CommandError::NotFound(format!("queue '{}' not found", String::from_utf8_lossy(name)))
}

fn bulk(s: impl Into<Bytes>) -> Reply {
    Reply::Bulk(s.into())
}

/// A delivered or listed message as a reply map.
fn message_reply(queue: &[u8], id: u64, m: &Message) -> Reply {
    let headers = decode_headers(&m.headers).into_iter().map(|(k, v)| (Reply::Bulk(k), Reply::Bulk(v))).collect();
    Reply::Map(vec![
        (bulk("message_id"), bulk(id.to_string())),
        (bulk("queue"), Reply::Bulk(Bytes::copy_from_slice(queue))),
        (bulk("payload"), Reply::Bulk(m.payload.clone())),
        (bulk("priority"), Reply::Int(m.priority as i64)),
        (bulk("attempt"), Reply::Int(m.attempts as i64)),
        (bulk("published_at"), Reply::Int(m.published_at as i64)),
        (bulk("headers"), Reply::Map(headers)),
    ])
}

impl QueueStore {
    /// Runs a queue command.
    pub fn execute(&self, cmd: QueueCmd, now: u64, lsn: &mut u64) -> Result<Reply> {
        match cmd {
            QueueCmd::Create { name, options } => {
                let (config, explicit_dlq) = options.resolve(&self.settings.defaults);
                self.create(&name, config, explicit_dlq, lsn)
            }
            QueueCmd::Delete { name } => Ok(self.delete(&name, lsn)),
            QueueCmd::List => Ok(self.list()),
            QueueCmd::Publish(args) => {
                if args.priority > 9 {
                    return Err(CommandError::Invalid("PRIORITY must be between 0 and 9".into()));
                }
                self.publish(&args, now, lsn)
            }
            // Front ends check batch sizes with `command::queue::batch_size`; the store caps them.
            QueueCmd::Consume { mut args, .. } => {
                args.max = args.max.min(MAX_BATCH);
                self.consume(&args, now, lsn)
            }
            QueueCmd::Ack { queue, ids } => self.ack(&queue, &ids, lsn),
            QueueCmd::Nack { queue, id, requeue } => self.nack(&queue, id, requeue, now, lsn),
            QueueCmd::Stats { queue } => self.stats(&queue, now),
            QueueCmd::Purge { queue } => self.purge(&queue, lsn),
            QueueCmd::DlqList { queue, max } => self.dlq_list(&queue, max.min(MAX_BATCH)),
            QueueCmd::Redrive { queue, max } => self.redrive(&queue, max.min(MAX_BATCH), now, lsn),
            QueueCmd::DlqPurge { queue } => self.dlq_purge(&queue, lsn),
        }
    }

    fn require(&self, name: &[u8]) -> Result<Arc<Mutex<Queue>>> {
        self.get(name).ok_or_else(|| not_found(name))
    }

    pub(crate) fn create(
        &self,
        name: &[u8],
        mut config: QueueConfig,
        explicit_dlq: bool,
        lsn: &mut u64,
    ) -> Result<Reply> {
        if name.is_empty() || name.len() > 256 {
            return Err(CommandError::Invalid("queue names are 1 to 256 bytes".into()));
        }
        config.validate()?;
        if !explicit_dlq && !name.ends_with(b".dlq") {
            config.dead_letter_queue = Some(default_dlq(name));
        }
        if config.dead_letter_queue.as_deref() == Some(name) {
            return Err(CommandError::Invalid("a queue cannot be its own dead-letter queue".into()));
        }
        if self.get(name).is_some() {
            return Ok(Reply::Int(0));
        }
        if self.queue_count() >= self.settings.max_queues {
            return Err(CommandError::Invalid(format!("too many queues (max {})", self.settings.max_queues)));
        }
        let (q, created) = self.create_in_memory(name, config.clone());
        if created {
            let _g = q.lock();
            *lsn = self.log(&[Mutation::QueueCreate { name, config: &config.encode() }]);
        }
        Ok(Reply::Int(created as i64))
    }

    pub(crate) fn delete(&self, name: &[u8], lsn: &mut u64) -> Reply {
        match self.remove_queue(name) {
            Some(q) => {
                let _g = q.lock();
                *lsn = self.log(&[Mutation::QueueDelete { name }]);
                Reply::Int(1)
            }
            None => Reply::Int(0),
        }
    }

    pub(crate) fn list(&self) -> Reply {
        Reply::Array(self.names().into_iter().map(Reply::Bulk).collect())
    }

    fn get_or_create(&self, name: &[u8], lsn: &mut u64) -> Result<Arc<Mutex<Queue>>> {
        match self.get(name) {
            Some(q) => Ok(q),
            None if self.settings.auto_create => {
                let mut l = 0;
                self.create(name, self.settings.defaults.clone(), false, &mut l)?;
                *lsn = (*lsn).max(l);
                self.require(name)
            }
            None => Err(not_found(name)),
        }
    }

    pub(crate) fn publish(&self, a: &PublishArgs, now: u64, lsn: &mut u64) -> Result<Reply> {
        if a.priority > 9 {
            return Err(CommandError::Invalid("priority must be between 0 and 9".into()));
        }
        let q = self.get_or_create(&a.queue, lsn)?;
        let mut q = q.lock();
        if q.deleted {
            return Err(not_found(&a.queue));
        }
        let headers = super::encode_headers(&a.headers);
        // Headers count: a message is its payload and its headers.
        if (a.payload.len() + headers.len()) as u64 > q.config.max_message_bytes {
            return Err(CommandError::ValueTooLarge { limit: q.config.max_message_bytes as usize });
        }
        if q.messages.len() as u64 >= q.config.max_depth {
            return Err(CommandError::QueueFull(String::from_utf8_lossy(&a.queue).to_string()));
        }
        let id = self.alloc_id();
        let m = Message {
            payload: a.payload.clone(),
            headers: Bytes::from(headers),
            priority: a.priority,
            attempts: 0,
            published_at: now,
            available_at: now
                .checked_add(a.delay_ms)
                .ok_or_else(|| CommandError::Invalid("delay out of range".into()))?,
            expires_at: if a.ttl_ms > 0 {
                now.checked_add(a.delay_ms)
                    .and_then(|t| t.checked_add(a.ttl_ms))
                    .ok_or_else(|| CommandError::Invalid("ttl out of range".into()))?
            } else {
                0
            },
            deadline: 0,
            consumer: Bytes::new(),
        };
        let l = self.log(&[Mutation::QueuePut { queue: &a.queue, msg: m.record(id) }]);
        *lsn = (*lsn).max(l);
        q.put(id, m, now);
        q.counters.published += 1;
        if a.delay_ms == 0 {
            q.notify.notify_waiters();
        }
        Ok(bulk(id.to_string()))
    }

    /// Delivers up to `max` messages to `consumer` (bounded by its prefetch), marking them in flight.
    pub(crate) fn consume(&self, a: &ConsumeArgs, now: u64, lsn: &mut u64) -> Result<Reply> {
        let qa = self.require(&a.queue)?;
        let mut dead = Vec::new();
        let reply = {
            let mut q = qa.lock();
            q.saw(&a.consumer, now);
            q.promote(now);
            dead.extend(self.expire_ttl(&mut q, now));
            let inflight = q.consumers.get(&a.consumer).copied().unwrap_or(0);
            let allowed = (q.config.prefetch.saturating_sub(inflight) as usize).min(a.max);
            let mut out = Vec::new();
            let mut batch_ids = Vec::new();
            while batch_ids.len() < allowed {
                let Some(&(_, id)) = q.ready.first() else { break };
                let Some(m) = q.messages.get(&id) else { break };
                let attempts = m.attempts.saturating_add(1);
                let deadline = now.saturating_add(q.config.ack_deadline_ms);
                let (avail, was_redelivery) = (m.available_at, m.attempts > 0);
                q.set_state(id, attempts, avail, deadline, &a.consumer, now);
                q.counters.delivered += 1;
                if was_redelivery {
                    q.counters.redelivered += 1;
                }
                batch_ids.push((id, attempts, avail, deadline));
            }
            if !batch_ids.is_empty() {
                let batch: Vec<Mutation<'_>> = batch_ids
                    .iter()
                    .map(|&(id, attempts, available_at, deadline)| Mutation::QueueState {
                        queue: &a.queue,
                        id,
                        attempts,
                        available_at,
                        deadline,
                        consumer: &a.consumer,
                    })
                    .collect();
                *lsn = (*lsn).max(self.log(&batch));
                for (id, ..) in &batch_ids {
                    if let Some(m) = q.messages.get(id) {
                        out.push(message_reply(&a.queue, *id, m));
                    }
                }
            }
            Reply::Array(out)
        };
        self.dead_letter(dead, now, lsn);
        Ok(reply)
    }

    /// Acknowledges in-flight messages; returns how many were acknowledged.
    pub(crate) fn ack(&self, queue: &[u8], ids: &[u64], lsn: &mut u64) -> Result<Reply> {
        let q = self.require(queue)?;
        let mut q = q.lock();
        let mut done = Vec::new();
        for &id in ids {
            if q.messages.get(&id).is_some_and(|m| m.deadline != 0) && !done.contains(&id) {
                done.push(id);
            }
        }
        if !done.is_empty() {
            let batch: Vec<Mutation<'_>> = done.iter().map(|&id| Mutation::QueueRemove { queue, id }).collect();
            *lsn = (*lsn).max(self.log(&batch));
            for &id in &done {
                q.remove(id);
            }
            q.counters.acked += done.len() as u64;
        }
        Ok(Reply::Int(done.len() as i64))
    }

    /// Negative acknowledgement: back to its priority position (unless its retries are exhausted), or
    /// straight to the dead-letter queue without `requeue`. Returns 1 if the message was in flight.
    pub(crate) fn nack(&self, queue: &[u8], id: u64, requeue: bool, now: u64, lsn: &mut u64) -> Result<Reply> {
        let qa = self.require(queue)?;
        let mut dead = Vec::new();
        {
            let mut q = qa.lock();
            let Some((attempts, deadline)) = q.messages.get(&id).map(|m| (m.attempts, m.deadline)) else {
                return Ok(Reply::Int(0));
            };
            if deadline == 0 {
                return Ok(Reply::Int(0));
            }
            q.counters.nacked += 1;
            let reason = if requeue { "max_retries" } else { "rejected" };
            if requeue && (attempts <= q.config.max_retries || q.config.dead_letter_queue.is_none()) {
                *lsn = (*lsn).max(self.log(&[Mutation::QueueState {
                    queue,
                    id,
                    attempts,
                    available_at: now,
                    deadline: 0,
                    consumer: b"",
                }]));
                q.set_state(id, attempts, now, 0, b"", now);
                q.notify.notify_waiters();
            } else {
                dead.push(self.take_dead(&mut q, vec![(id, reason)]));
            }
        }
        self.dead_letter(dead, now, lsn);
        Ok(Reply::Int(1))
    }

    /// Removes messages from `q` in memory for dead-lettering; they are logged when added to the target.
    fn take_dead(&self, q: &mut Queue, ids: Vec<(u64, &'static str)>) -> DeadLetters {
        let mut msgs = Vec::new();
        for (id, reason) in ids {
            if let Some(m) = q.remove(id) {
                q.counters.dead_lettered += 1;
                msgs.push((id, m, reason));
            }
        }
        DeadLetters { source: q.name.clone(), target: q.config.dead_letter_queue.clone(), msgs }
    }

    /// TTL-expired ready messages of `q`, taken out for dead-lettering.
    fn expire_ttl(&self, q: &mut Queue, now: u64) -> Option<DeadLetters> {
        let mut ids = Vec::new();
        while let Some(&(at, id)) = q.ttl.first() {
            if at > now {
                break;
            }
            q.ttl.pop_first();
            ids.push((id, "expired"));
        }
        if ids.is_empty() {
            return None;
        }
        q.counters.expired += ids.len() as u64;
        Some(self.take_dead(q, ids))
    }

    /// Adds taken-out messages to their dead-letter queues and logs removal and addition as one batch.
    /// A queue without a dead-letter queue (a DLQ itself) takes its messages back, ready: never dropped.
    fn dead_letter(&self, letters: Vec<DeadLetters>, now: u64, lsn: &mut u64) {
        for dl in letters {
            if dl.msgs.is_empty() {
                continue;
            }
            let target = dl.target.clone().unwrap_or_else(|| dl.source.clone());
            let tq = match self.get(&target).filter(|q| !q.lock().deleted) {
                Some(q) => q,
                None => {
                    // Dead-letter queues come into being on first use, and never dead-letter further.
                    let cfg = QueueConfig { dead_letter_queue: None, ..self.settings.defaults.clone() };
                    let (q, created) = self.create_in_memory(&target, cfg.clone());
                    if created {
                        let _g = q.lock();
                        *lsn = (*lsn).max(self.log(&[Mutation::QueueCreate { name: &target, config: &cfg.encode() }]));
                    }
                    q
                }
            };
            let mut tq = tq.lock();
            let moved: Vec<(u64, Message)> = dl
                .msgs
                .into_iter()
                .map(|(id, mut m, reason)| {
                    let mut headers = decode_headers(&m.headers);
                    if target != dl.source {
                        headers.retain(|(k, _)| &k[..] != b"x-dead-letter-from" && &k[..] != b"x-dead-letter-reason");
                        headers.push((Bytes::from_static(b"x-dead-letter-from"), dl.source.clone()));
                        headers
                            .push((Bytes::from_static(b"x-dead-letter-reason"), Bytes::from_static(reason.as_bytes())));
                        m.attempts = 0;
                    }
                    m.headers = Bytes::from(super::encode_headers(&headers));
                    m.deadline = 0;
                    m.consumer = Bytes::new();
                    m.available_at = now;
                    m.expires_at = 0;
                    (id, m)
                })
                .collect();
            log_moves(self, &dl.source, &target, &moved, lsn);
            for (id, m) in moved {
                tq.put(id, m, now);
            }
            tq.notify.notify_waiters();
        }
    }

    pub(crate) fn stats(&self, name: &[u8], now: u64) -> Result<Reply> {
        let q = self.require(name)?;
        let q = q.lock();
        let oldest = q.messages.values().next().map(|m| now.saturating_sub(m.published_at)).unwrap_or(0);
        let active_consumers = q.seen.values().filter(|&&t| now.saturating_sub(t) < super::SEEN_WINDOW_MS).count()
            + q.consumers.keys().filter(|c| !q.seen.contains_key(*c)).count();
        let c = &q.counters;
        let by_priority =
            (0..10).rev().map(|p| (bulk(p.to_string()), Reply::Int(q.ready_by_priority[p] as i64))).collect();
        Ok(Reply::Map(vec![
            (bulk("name"), Reply::Bulk(q.name.clone())),
            (bulk("depth"), Reply::Int(q.messages.len() as i64)),
            (bulk("ready"), Reply::Int(q.ready.len() as i64)),
            (bulk("delayed"), Reply::Int(q.delayed.len() as i64)),
            (bulk("in_flight"), Reply::Int(q.inflight.len() as i64)),
            (bulk("ready_by_priority"), Reply::Map(by_priority)),
            (bulk("consumers"), Reply::Int(active_consumers as i64)),
            (bulk("published"), Reply::Int(c.published as i64)),
            (bulk("delivered"), Reply::Int(c.delivered as i64)),
            (bulk("acked"), Reply::Int(c.acked as i64)),
            (bulk("nacked"), Reply::Int(c.nacked as i64)),
            (bulk("redelivered"), Reply::Int(c.redelivered as i64)),
            (bulk("dead_lettered"), Reply::Int(c.dead_lettered as i64)),
            (bulk("expired"), Reply::Int(c.expired as i64)),
            (bulk("oldest_message_age_ms"), Reply::Int(oldest as i64)),
            (bulk("max_depth"), Reply::Int(q.config.max_depth as i64)),
            (bulk("ack_deadline_ms"), Reply::Int(q.config.ack_deadline_ms as i64)),
            (bulk("max_retries"), Reply::Int(q.config.max_retries as i64)),
            (bulk("dead_letter_queue"), q.config.dead_letter_queue.clone().map(Reply::Bulk).unwrap_or(Reply::Nil)),
        ]))
    }

    pub(crate) fn purge(&self, name: &[u8], lsn: &mut u64) -> Result<Reply> {
        let q = self.require(name)?;
        let mut q = q.lock();
        let n = q.messages.len();
        if n > 0 {
            *lsn = (*lsn).max(self.log(&[Mutation::QueuePurge { queue: name }]));
            q.purge();
        }
        Ok(Reply::Int(n as i64))
    }

    fn dlq_of(&self, name: &[u8]) -> Result<Bytes> {
        let q = self.require(name)?;
        let dlq = q.lock().config.dead_letter_queue.clone();
        dlq.ok_or_else(|| {
            CommandError::Invalid(format!("queue '{}' has no dead-letter queue", String::from_utf8_lossy(name)))
        })
    }

    /// Lists (without delivering) up to `max` messages of `name`'s dead-letter queue, oldest first.
    pub(crate) fn dlq_list(&self, name: &[u8], max: usize) -> Result<Reply> {
        let dlq = self.dlq_of(name)?;
        let Some(q) = self.get(&dlq) else { return Ok(Reply::Array(vec![])) };
        let q = q.lock();
        Ok(Reply::Array(q.messages.iter().take(max).map(|(id, m)| message_reply(&dlq, *id, m)).collect()))
    }

    /// Moves up to `max` ready messages from `name`'s dead-letter queue back to `name` (attempts reset).
    pub(crate) fn redrive(&self, name: &[u8], max: usize, now: u64, lsn: &mut u64) -> Result<Reply> {
        let dlq = self.dlq_of(name)?;
        let target = self.require(name)?;
        let Some(src) = self.get(&dlq) else { return Ok(Reply::Int(0)) };
        let taken: Vec<(u64, Message)> = {
            let mut s = src.lock();
            let ids: Vec<u64> =
                s.messages.iter().filter(|(_, m)| m.deadline == 0).map(|(id, _)| *id).take(max).collect();
            ids.into_iter().filter_map(|id| s.remove(id).map(|m| (id, m))).collect()
        };
        let mut t = target.lock();
        let moved: Vec<(u64, Message)> = taken
            .into_iter()
            .map(|(id, mut m)| {
                let mut headers = decode_headers(&m.headers);
                headers.retain(|(k, _)| &k[..] != b"x-dead-letter-from" && &k[..] != b"x-dead-letter-reason");
                m.headers = Bytes::from(super::encode_headers(&headers));
                m.attempts = 0;
                m.available_at = now;
                (id, m)
            })
            .collect();
        log_moves(self, &dlq, name, &moved, lsn);
        let n = moved.len();
        for (id, m) in moved {
            t.put(id, m, now);
        }
        t.notify.notify_waiters();
        Ok(Reply::Int(n as i64))
    }

    pub(crate) fn dlq_purge(&self, name: &[u8], lsn: &mut u64) -> Result<Reply> {
        let dlq = self.dlq_of(name)?;
        match self.get(&dlq) {
            Some(_) => self.purge(&dlq, lsn),
            None => Ok(Reply::Int(0)),
        }
    }

    /// The background pass: delayed messages whose time came become ready, in-flight messages past their
    /// deadline are delivered again (or dead-lettered once their retries are spent), expired messages are
    /// dead-lettered. One queue lock at a time; never a lock over every queue. `gate` is the engine's
    /// transaction gate, taken per queue.
    pub fn sweep(&self, now: u64, gate: &parking_lot::RwLock<()>) -> (SweepReport, u64) {
        let mut report = SweepReport::default();
        let mut lsn = 0;
        for qa in self.all() {
            // The engine's gate per queue, not for the whole pass (see `Engine::execute`).
            let _gate = gate.read();
            // Only where the log takes writes (not on a replica: its primary's records move its queues).
            if !self.log.takes_local_changes() {
                break;
            }
            let mut dead = Vec::new();
            {
                let mut q = qa.lock();
                let promoted = q.promote(now);
                report.promoted += promoted;
                let mut requeue = Vec::new();
                while let Some(&(deadline, id)) = q.inflight.first() {
                    if deadline > now {
                        break;
                    }
                    let Some(attempts) = q.messages.get(&id).map(|m| m.attempts) else {
                        q.inflight.pop_first(); // no message behind the entry: drop the stale index entry
                        continue;
                    };
                    if attempts > q.config.max_retries && q.config.dead_letter_queue.is_some() {
                        // Removal unindexes it, so the loop moves on.
                        let d = self.take_dead(&mut q, vec![(id, "max_retries")]);
                        dead.push(d);
                    } else {
                        q.set_state(id, attempts, now, 0, b"", now);
                        requeue.push((id, attempts));
                    }
                }
                if !requeue.is_empty() {
                    let name = q.name.clone();
                    let batch: Vec<Mutation<'_>> = requeue
                        .iter()
                        .map(|&(id, attempts)| Mutation::QueueState {
                            queue: &name,
                            id,
                            attempts,
                            available_at: now,
                            deadline: 0,
                            consumer: b"",
                        })
                        .collect();
                    lsn = lsn.max(self.log(&batch));
                    report.requeued += requeue.len();
                }
                dead.extend(self.expire_ttl(&mut q, now));
                if promoted > 0 || !requeue.is_empty() {
                    q.notify.notify_waiters();
                }
            }
            report.dead_lettered += dead.iter().map(|d| d.msgs.len()).sum::<usize>();
            self.dead_letter(dead, now, &mut lsn);
        }
        (report, lsn)
    }
}

/// Logs messages moving from `source` to `target` as Remove + Put pairs, in batches small enough for a log
/// record; each pair stays within one batch, so a message is never logged as removed without its arrival.
fn log_moves(store: &QueueStore, source: &[u8], target: &[u8], moved: &[(u64, Message)], lsn: &mut u64) {
    let mut batch: Vec<Mutation<'_>> = Vec::new();
    let mut bytes = 0usize;
    for (id, m) in moved {
        let size = m.payload.len() + m.headers.len() + 128;
        if !batch.is_empty() && bytes + size > crate::mutation::MAX_BATCH_BYTES / 4 {
            *lsn = (*lsn).max(store.log(&batch));
            batch.clear();
            bytes = 0;
        }
        bytes += size;
        batch.push(Mutation::QueueRemove { queue: source, id: *id });
        batch.push(Mutation::QueuePut { queue: target, msg: m.record(*id) });
    }
    if !batch.is_empty() {
        *lsn = (*lsn).max(store.log(&batch));
    }
}
