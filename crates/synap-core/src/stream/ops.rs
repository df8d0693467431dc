//! Stream commands: Synap's API and Redis's X* commands, on the store of `store.rs`.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::group::{Group, Rec};
use super::info::{pending_range, pending_summary};
use super::partition::Partition;
use super::store::{Room, StreamStore};
use super::*;

use crate::command::Reply;
use crate::error::{CommandError, Result};
use crate::mutation::{Mutation, StreamOp};
use crate::notify::Class;

pub(super) fn bulk(s: &'static str) -> Reply {
    Reply::Bulk(Bytes::from_static(s.as_bytes()))
}

pub(super) fn id_reply(id: StreamId) -> Reply {
    Reply::Bulk(id.to_bytes())
}

fn not_found(room: &[u8]) -> CommandError {
    CommandError::NotFound(format!("stream '{}' not found", String::from_utf8_lossy(room)))
}

fn no_group(room: &[u8], group: &[u8]) -> CommandError {
    CommandError::NotFound(format!(
        "consumer group '{}' of stream '{}' not found",
        String::from_utf8_lossy(group),
        String::from_utf8_lossy(room)
    ))
}

/// Redis's entry shape: `[id, [field, value, ...]]`.
pub(super) fn redis_entry(e: &Event) -> Reply {
    let fields = e.fields.iter().flat_map(|(f, v)| [Reply::Bulk(f.clone()), Reply::Bulk(v.clone())]).collect();
    Reply::Array(vec![id_reply(e.id), Reply::Array(fields)])
}

/// Synap's event shape.
pub(crate) fn event_map(partition: u32, e: &Event) -> Reply {
    let opt = |v: Option<&Bytes>| v.map(|b| Reply::Bulk(b.clone())).unwrap_or(Reply::Nil);
    let headers = e
        .fields
        .iter()
        .filter(|(f, _)| &f[..] != b"event" && &f[..] != b"data")
        .map(|(f, v)| (Reply::Bulk(f.clone()), Reply::Bulk(v.clone())))
        .collect();
    Reply::Map(vec![
        (bulk("offset"), Reply::Int(e.offset as i64)),
        (bulk("partition"), Reply::Int(partition as i64)),
        (bulk("id"), id_reply(e.id)),
        (bulk("timestamp"), Reply::Int(e.timestamp as i64)),
        (bulk("event"), opt(e.field(b"event"))),
        (bulk("data"), opt(e.field(b"data"))),
        (bulk("key"), if e.key.is_empty() { Reply::Nil } else { Reply::Bulk(e.key.clone()) }),
        (bulk("headers"), Reply::Map(headers)),
    ])
}

impl StreamStore {
    fn room(&self, name: &[u8]) -> Result<Arc<Room>> {
        self.get(name).ok_or_else(|| not_found(name))
    }

    /// A stream as Redis commands see it: absent, or a single-partition stream.
    pub(super) fn redis_room(&self, key: &[u8]) -> Result<Option<Arc<Room>>> {
        match self.get(key) {
            Some(r) if r.parts.len() > 1 => Err(CommandError::Invalid(format!(
                "stream '{}' has {} partitions; Redis stream commands work on single-partition streams",
                String::from_utf8_lossy(key),
                r.parts.len()
            ))),
            other => Ok(other),
        }
    }

    /// Applies decided group changes and logs them, in one step (see [`Rec`]).
    /// Refused when the stream was deleted or renamed meanwhile (the caller holds its groups' lock, under
    /// which that is decided), so that no group record follows the stream's `Delete` in the log.
    fn commit_group(&self, r: &Room, group: &[u8], g: &mut Group, recs: &[Rec]) -> Result<u64> {
        r.check()?;
        let room = &r.name[..];
        for rec in recs {
            g.apply(rec);
        }
        let batch: Vec<Mutation<'_>> = recs.iter().map(|r| Mutation::Stream { room, op: r.op(group) }).collect();
        // A consumer the command creates (XGROUP CREATECONSUMER, or a first read or claim) is an event.
        let created = recs.iter().any(|r| matches!(r, Rec::Consumer { .. }));
        Ok(self.logged(room, &batch, created.then_some("xgroup-createconsumer")))
    }

    /// Appends one event under its partition's lock and logs it (with the trim retention asks for).
    #[allow(clippy::too_many_arguments)]
    fn append(
        &self,
        room: &Room,
        partition: u32,
        key: &[u8],
        fields: &[(Bytes, Bytes)],
        id: XAddId,
        trim: Option<TrimSpec>,
        now: u64,
        lsn: &mut u64,
    ) -> Result<(u64, StreamId)> {
        let size = 32 + key.len() + fields.iter().map(|(f, v)| 8 + f.len() + v.len()).sum::<usize>();
        if size > self.settings.max_event_bytes {
            return Err(CommandError::EventTooLarge { limit: self.settings.max_event_bytes });
        }
        let max_events = room.config.lock().max_events;
        let mut p = room.parts[partition as usize].lock();
        room.check()?;
        p.check()?;
        let last = p.last;
        let exhausted =
            || CommandError::Invalid("The stream has exhausted the last possible ID, unable to add more items".into());
        let smaller = || {
            CommandError::Invalid("The ID specified in XADD is equal or smaller than the target stream top item".into())
        };
        let id = match id {
            XAddId::Auto => {
                if now > last.ms {
                    StreamId::new(now, 0)
                } else if last.seq < u64::MAX {
                    StreamId::new(last.ms, last.seq + 1)
                } else if last.ms < u64::MAX {
                    StreamId::new(last.ms + 1, 0)
                } else {
                    return Err(exhausted());
                }
            }
            XAddId::AutoSeq(ms) => {
                if ms > last.ms {
                    StreamId::new(ms, 0)
                } else if ms == last.ms && last.seq < u64::MAX {
                    StreamId::new(ms, last.seq + 1)
                } else if ms == last.ms {
                    return Err(exhausted());
                } else {
                    return Err(smaller());
                }
            }
            XAddId::Explicit(id) => {
                if id == StreamId::MIN {
                    return Err(CommandError::Invalid("The ID specified in XADD must be greater than 0-0".into()));
                }
                if id <= last {
                    return Err(smaller());
                }
                id
            }
        };
        let mut body = Vec::with_capacity(size);
        encode_event(now, id, key, fields, &mut body);
        let offset = p.next();
        p.push(offset, &body);
        p.check()?;
        let mut new_start = p.start;
        if max_events > 0 && p.next() - p.start > max_events {
            new_start = p.next() - max_events;
        }
        match trim.map(|t| t.strategy) {
            Some(TrimStrategy::MaxLen(n)) => new_start = new_start.max(p.start_for_len(n)),
            Some(TrimStrategy::MinId(min)) => new_start = new_start.max(p.seek_id(min)?),
            None => {}
        }
        let append = Mutation::Stream { room: &room.name, op: StreamOp::Append { partition, offset, body: &body } };
        let l = if new_start > p.start {
            p.trim_to(new_start);
            let trim = Mutation::Stream { room: &room.name, op: StreamOp::Trim { partition, start: new_start } };
            let l = self.logged(&room.name, &[append, trim], Some("xadd"));
            self.notifier.emit(0, Class::Stream, "xtrim", &room.name);
            l
        } else {
            self.logged(&room.name, &[append], Some("xadd"))
        };
        *lsn = (*lsn).max(l);
        drop(p);
        room.published.fetch_add(1, Ordering::Relaxed);
        room.notify.notify_waiters();
        Ok((offset, id))
    }

    /// Trims a partition to `start` (logged); returns the live events removed.
    fn trim_partition(&self, room: &Room, partition: u32, p: &mut Partition, start: u64, lsn: &mut u64) -> u64 {
        if start <= p.start {
            return 0;
        }
        let before = p.len();
        p.trim_to(start);
        let op = StreamOp::Trim { partition, start };
        *lsn = (*lsn).max(self.logged(&room.name, &[Mutation::Stream { room: &room.name, op }], Some("xtrim")));
        before - p.len()
    }

    /// Executes a stream command.
    pub fn execute(&self, cmd: StreamCmd, now: u64, lsn: &mut u64) -> Result<Reply> {
        match cmd {
            // Created and deleted through the keyspace (see `Engine::stream`).
            StreamCmd::Create { .. } | StreamCmd::Delete { .. } => {
                Err(CommandError::Internal("stream creation and deletion go through the keyspace".into()))
            }
            StreamCmd::List => Ok(Reply::Array(self.rooms.read().keys().map(|k| Reply::Bulk(k.clone())).collect())),
            StreamCmd::Stats { room } => self.stats(&*self.room(&room)?),
            StreamCmd::Publish { room, key, partition, fields } => {
                let r = self.room(&room)?;
                let n = r.parts.len() as u32;
                let partition = match partition {
                    Some(p) if p >= n => {
                        return Err(CommandError::Invalid(format!(
                            "partition {p} does not exist (the stream has {n})"
                        )));
                    }
                    Some(p) => p,
                    None if !key.is_empty() => partition_for_key(&key, n),
                    None => r.rr.fetch_add(1, Ordering::Relaxed) % n,
                };
                let (offset, id) = self.append(&r, partition, &key, &fields, XAddId::Auto, None, now, lsn)?;
                Ok(Reply::Map(vec![
                    (bulk("partition"), Reply::Int(partition as i64)),
                    (bulk("offset"), Reply::Int(offset as i64)),
                    (bulk("id"), id_reply(id)),
                ]))
            }
            StreamCmd::Read { room, partition, from, limit } => {
                let r = self.room(&room)?;
                let mut p = r
                    .parts
                    .get(partition as usize)
                    .ok_or_else(|| CommandError::Invalid(format!("partition {partition} does not exist")))?
                    .lock();
                let from = from.unwrap_or(p.start);
                if from < p.start {
                    return Err(CommandError::OffsetOutOfRange { requested: from, oldest: p.start });
                }
                if from > p.next() {
                    return Err(CommandError::Invalid(format!(
                        "offset {from} is beyond the end of partition {partition} (next offset {})",
                        p.next()
                    )));
                }
                let (events, next) = p.read(from, limit.clamp(1, self.settings.max_read))?;
                Ok(Reply::Read {
                    partition,
                    next_offset: next,
                    events: events.iter().map(|e| event_map(partition, e)).collect(),
                })
            }
            StreamCmd::GroupCreate { room, group, start, redeliver_ms } => {
                let r = self.room(&room)?;
                let redeliver_ms =
                    if redeliver_ms == u64::MAX { self.settings.group_redeliver_ms } else { redeliver_ms };
                self.group_create(&r, &group, start, redeliver_ms, lsn)?;
                Ok(Reply::Int(1))
            }
            StreamCmd::GroupDelete { room, group } => {
                let r = self.room(&room)?;
                Ok(Reply::Int(self.group_destroy(&r, &group, lsn) as i64))
            }
            StreamCmd::GroupRead { room, group, consumer, count } => {
                let r = self.room(&room)?;
                let out = self.group_read(&r, &group, &consumer, count, false, now, lsn)?;
                Ok(Reply::Array(out.iter().map(|(p, e)| event_map(*p, e)).collect()))
            }
            StreamCmd::GroupAck { room, group, partition, offsets } => {
                let r = self.room(&room)?;
                let mut groups = r.groups.lock();
                let g = groups.get_mut(&group[..]).ok_or_else(|| no_group(&room, &group))?;
                let mut offsets = offsets;
                offsets.sort_unstable();
                offsets.dedup();
                let recs: Vec<Rec> = offsets
                    .into_iter()
                    .filter(|o| g.pending_entry(&(partition, *o)).is_some())
                    .map(|offset| Rec::Ack { partition, offset })
                    .collect();
                *lsn = (*lsn).max(self.commit_group(&r, &group, g, &recs)?);
                Ok(Reply::Int(recs.len() as i64))
            }
            StreamCmd::GroupClaim { room, group, consumer, min_idle_ms, partition, offsets } => {
                let r = self.room(&room)?;
                let keys: Vec<_> = offsets.iter().map(|&o| (partition, o)).collect();
                let out = self.claim(&r, &group, &consumer, min_idle_ms, &keys, None, None, false, now, lsn)?;
                Ok(Reply::Array(out.iter().map(|(p, e)| event_map(*p, e)).collect()))
            }
            StreamCmd::Trim { room, max_events } => {
                let r = self.room(&room)?;
                let mut removed = 0;
                for (i, p) in r.parts.iter().enumerate() {
                    let mut p = p.lock();
                    r.check()?;
                    let start = p.start_for_len(max_events);
                    removed += self.trim_partition(&r, i as u32, &mut p, start, lsn);
                }
                Ok(Reply::Int(removed as i64))
            }
            StreamCmd::XAdd { key, id, fields, nomkstream, trim } => {
                // Without NOMKSTREAM the stream was created already (see `Engine::stream`).
                let r = match self.redis_room(&key)? {
                    Some(r) => r,
                    None if nomkstream => return Ok(Reply::Nil),
                    None => return Err(not_found(&key)),
                };
                let (_, id) = self.append(&r, 0, b"", &fields, id, trim, now, lsn)?;
                Ok(id_reply(id))
            }
            StreamCmd::XLen { key } => {
                Ok(Reply::Int(self.redis_room(&key)?.map(|r| r.parts[0].lock().len() as i64).unwrap_or(0)))
            }
            StreamCmd::XRange { key, start, end, count, rev } => {
                // Redis's order: the bounds, then the key; COUNT 0 answers a null array.
                let lo = match start {
                    IdBound::Incl(id) => id,
                    IdBound::Excl(id) if id == StreamId::MAX => {
                        return Err(CommandError::Invalid("invalid start ID for the interval".into()));
                    }
                    IdBound::Excl(id) => id.next(),
                };
                let hi = match end {
                    IdBound::Incl(id) => id,
                    IdBound::Excl(id) if id == StreamId::MIN => {
                        return Err(CommandError::Invalid("invalid end ID for the interval".into()));
                    }
                    IdBound::Excl(id) => id.prev(),
                };
                let Some(r) = self.redis_room(&key)? else { return Ok(Reply::Array(vec![])) };
                if count == Some(0) {
                    return Ok(Reply::NullArray);
                }
                let count = count.unwrap_or(usize::MAX).min(self.settings.max_read);
                let events = r.parts[0].lock().range(lo, hi, count, rev)?;
                Ok(Reply::Array(events.iter().map(redis_entry).collect()))
            }
            StreamCmd::XRead { streams, count, .. } => {
                let count = count.unwrap_or(usize::MAX).clamp(1, self.settings.max_read);
                let mut out = Vec::new();
                for (key, from) in streams {
                    let Some(r) = self.redis_room(&key)? else { continue };
                    let mut p = r.parts[0].lock();
                    let events = match from {
                        ReadFrom::Last => Vec::new(),
                        ReadFrom::LastEntry => p.last_live()?.into_iter().collect(),
                        ReadFrom::After(id) => {
                            if id == StreamId::MAX {
                                Vec::new()
                            } else {
                                let at = p.seek_id(id.next())?;
                                p.read(at, count)?.0
                            }
                        }
                    };
                    if !events.is_empty() {
                        out.push((Reply::Bulk(key), Reply::Array(events.iter().map(redis_entry).collect())));
                    }
                }
                Ok(if out.is_empty() { Reply::NullArray } else { Reply::Keyed(out) })
            }
            StreamCmd::XTrim { key, trim } => {
                let Some(r) = self.redis_room(&key)? else { return Ok(Reply::Int(0)) };
                let mut p = r.parts[0].lock();
                r.check()?;
                let start = match trim.strategy {
                    TrimStrategy::MaxLen(n) => p.start_for_len(n),
                    TrimStrategy::MinId(id) => p.seek_id(id)?,
                };
                Ok(Reply::Int(self.trim_partition(&r, 0, &mut p, start, lsn) as i64))
            }
            StreamCmd::XDel { key, ids } => {
                let Some(r) = self.redis_room(&key)? else { return Ok(Reply::Int(0)) };
                let mut p = r.parts[0].lock();
                r.check()?;
                let mut deleted = Vec::new();
                for id in ids {
                    if let Some(e) = p.seek_id(id).and_then(|at| p.get(at))?
                        && e.id == id
                    {
                        p.tombstones.insert(e.offset);
                        p.max_deleted = p.max_deleted.max(id);
                        deleted.push(e.offset);
                    }
                }
                p.recharge();
                let batch: Vec<_> = deleted
                    .iter()
                    .map(|&offset| Mutation::Stream { room: &key, op: StreamOp::Tombstone { partition: 0, offset } })
                    .collect();
                if !batch.is_empty() {
                    *lsn = (*lsn).max(self.logged(&key, &batch, Some("xdel")));
                }
                Ok(Reply::Int(deleted.len() as i64))
            }
            StreamCmd::XGroupCreate { key, group, start, .. } => {
                // MKSTREAM created the stream already (see `Engine::stream`).
                let r = self.redis_room(&key)?.ok_or_else(requires_key)?;
                self.group_create(&r, &group, start, 0, lsn)?;
                Ok(Reply::Ok)
            }
            StreamCmd::XGroupDestroy { key, group } => {
                let r = self.redis_room(&key)?.ok_or_else(requires_key)?;
                Ok(Reply::Int(self.group_destroy(&r, &group, lsn) as i64))
            }
            StreamCmd::XGroupSetId { key, group, start } => {
                let r = self.redis_room(&key)?.ok_or_else(requires_key)?;
                let mut groups = r.groups.lock();
                let g = groups.get_mut(&group[..]).ok_or_else(|| setid_no_group(&key, &group))?;
                let (pos, last) = start_position(&mut r.parts[0].lock(), start)?;
                *lsn = (*lsn).max(self.commit_group(&r, &group, g, &[Rec::Pos { partition: 0, pos, last }])?);
                self.notifier.emit(0, Class::Stream, "xgroup-setid", &key);
                Ok(Reply::Ok)
            }
            StreamCmd::XGroupCreateConsumer { key, group, consumer } => {
                let r = self.redis_room(&key)?.ok_or_else(requires_key)?;
                let mut groups = r.groups.lock();
                let g = groups.get_mut(&group[..]).ok_or_else(|| setid_no_group(&key, &group))?;
                let Some(rec) = new_consumer(g, &consumer, now, self.settings.max_consumers)? else {
                    return Ok(Reply::Int(0));
                };
                *lsn = (*lsn).max(self.commit_group(&r, &group, g, &[rec])?);
                Ok(Reply::Int(1))
            }
            StreamCmd::XGroupDelConsumer { key, group, consumer } => {
                let r = self.redis_room(&key)?.ok_or_else(requires_key)?;
                let mut groups = r.groups.lock();
                let g = groups.get_mut(&group[..]).ok_or_else(|| setid_no_group(&key, &group))?;
                if !g.consumers.contains_key(&consumer[..]) {
                    return Ok(Reply::Int(0));
                }
                let pending = g.pending_count_of(&consumer);
                *lsn = (*lsn).max(self.commit_group(&r, &group, g, &[Rec::ConsumerDel { consumer }])?);
                self.notifier.emit(0, Class::Stream, "xgroup-delconsumer", &key);
                Ok(Reply::Int(pending as i64))
            }
            StreamCmd::XReadGroup { group, consumer, count, noack, streams, .. } => {
                let count = count.unwrap_or(usize::MAX).clamp(1, self.settings.max_read);
                let mut out = Vec::new();
                let mut any_history = false;
                for (key, from) in streams {
                    let r = self.redis_room(&key)?.ok_or_else(|| readgroup_no_group(&key, &group))?;
                    let entries = match from {
                        None => {
                            let events = self.group_read(&r, &group, &consumer, count, noack, now, lsn)?;
                            events.iter().map(|(_, e)| redis_entry(e)).collect::<Vec<_>>()
                        }
                        Some(after) => {
                            any_history = true;
                            self.history(&r, &group, &consumer, after, count, now, lsn)?
                        }
                    };
                    if !entries.is_empty() || from.is_some() {
                        out.push((Reply::Bulk(key), Reply::Array(entries)));
                    }
                }
                Ok(if out.is_empty() && !any_history { Reply::NullArray } else { Reply::Keyed(out) })
            }
            StreamCmd::XAck { key, group, ids } => {
                let Some(r) = self.redis_room(&key)? else { return Ok(Reply::Int(0)) };
                let mut groups = r.groups.lock();
                let Some(g) = groups.get_mut(&group[..]) else { return Ok(Reply::Int(0)) };
                let mut keys: Vec<(u32, u64)> = ids.into_iter().filter_map(|id| g.pending_by_id(0, id)).collect();
                keys.sort_unstable();
                keys.dedup();
                let recs: Vec<Rec> =
                    keys.into_iter().map(|(partition, offset)| Rec::Ack { partition, offset }).collect();
                *lsn = (*lsn).max(self.commit_group(&r, &group, g, &recs)?);
                Ok(Reply::Int(recs.len() as i64))
            }
            StreamCmd::XPending { key, group, range } => {
                let r = self.redis_room(&key)?.ok_or_else(|| pending_no_group(&key, &group))?;
                let groups = r.groups.lock();
                let g = groups.get(&group[..]).ok_or_else(|| pending_no_group(&key, &group))?;
                Ok(match range {
                    None => pending_summary(g),
                    Some(range) => pending_range(g, &range, now),
                })
            }
            StreamCmd::XClaim(args) => {
                let r = self.redis_room(&args.key)?.ok_or_else(|| pending_no_group(&args.key, &args.group))?;
                let keys = {
                    let mut groups = r.groups.lock();
                    let g = groups.get_mut(&args.group[..]).ok_or_else(|| pending_no_group(&args.key, &args.group))?;
                    let mut keys = Vec::new();
                    for &id in &args.ids {
                        match g.pending_by_id(0, id) {
                            Some(k) => keys.push(k),
                            None if args.force => {
                                if let Some(offset) = r.parts[0].lock().offset_of(id)? {
                                    keys.push((0, offset));
                                }
                            }
                            None => {}
                        }
                    }
                    keys
                };
                let out = self.claim(
                    &r,
                    &args.group,
                    &args.consumer,
                    args.min_idle_ms,
                    &keys,
                    args.delivered_at.or(args.idle_ms.map(|i| now.saturating_sub(i))),
                    args.retry_count,
                    args.force,
                    now,
                    lsn,
                )?;
                let out = out.iter().map(|(_, e)| if args.just_id { id_reply(e.id) } else { redis_entry(e) });
                Ok(Reply::Array(out.collect()))
            }
            StreamCmd::XAutoClaim { key, group, consumer, min_idle_ms, start, count, just_id } => {
                let r = self.redis_room(&key)?.ok_or_else(|| pending_no_group(&key, &group))?;
                let (keys, deleted, cursor) = {
                    let mut groups = r.groups.lock();
                    let g = groups.get_mut(&group[..]).ok_or_else(|| pending_no_group(&key, &group))?;
                    let mut keys = Vec::new();
                    let mut deleted = Vec::new();
                    let mut acks = Vec::new();
                    let mut cursor = StreamId::MIN;
                    let mut p = r.parts[0].lock();
                    // Pending entries are ordered by offset, and ids grow with offsets: start at `start`'s.
                    let from = match p.seek_id(start)? {
                        at if at <= p.start => 0,
                        at => at,
                    };
                    let candidates = g.pending().range((0, from)..).filter(|(_, pe)| pe.id >= start);
                    for (scanned, (&k, pe)) in candidates.enumerate() {
                        // As in Redis 7.0, entries found deleted count toward COUNT too (it bounds the reply).
                        if keys.len() + deleted.len() >= count || scanned >= count.saturating_mul(10) {
                            cursor = pe.id;
                            break;
                        }
                        if now.saturating_sub(pe.delivered_at) < min_idle_ms {
                            continue;
                        }
                        if p.get(k.1)?.is_none() {
                            deleted.push(pe.id);
                            acks.push(Rec::Ack { partition: k.0, offset: k.1 });
                            continue;
                        }
                        keys.push(k);
                    }
                    drop(p);
                    *lsn = (*lsn).max(self.commit_group(&r, &group, g, &acks)?);
                    (keys, deleted, cursor)
                };
                let out = self.claim(&r, &group, &consumer, min_idle_ms, &keys, None, None, false, now, lsn)?;
                let claimed = out.iter().map(|(_, e)| if just_id { id_reply(e.id) } else { redis_entry(e) }).collect();
                Ok(Reply::Array(vec![
                    id_reply(cursor),
                    Reply::Array(claimed),
                    Reply::Array(deleted.into_iter().map(id_reply).collect()),
                ]))
            }
            StreamCmd::XInfo(info) => self.xinfo(info, now),
        }
    }

    fn group_create(&self, r: &Room, group: &[u8], start: GroupStart, redeliver_ms: u64, lsn: &mut u64) -> Result<()> {
        let mut groups = r.groups.lock();
        r.check()?;
        if groups.contains_key(group) {
            return Err(CommandError::BusyGroup);
        }
        if groups.len() >= self.settings.max_groups {
            return Err(CommandError::Invalid(format!(
                "the stream has {} consumer groups (stream.max_groups_per_stream)",
                self.settings.max_groups
            )));
        }
        let mut g = Group::new(r.parts.len(), redeliver_ms);
        g.attach(&self.used);
        for (i, p) in r.parts.iter().enumerate() {
            let (pos, last) = start_position(&mut p.lock(), start)?;
            g.pos[i] = pos;
            g.last[i] = last;
        }
        let config = g.encode_config();
        let op = StreamOp::GroupCreate { group, config: &config };
        *lsn = (*lsn).max(self.logged(&r.name, &[Mutation::Stream { room: &r.name, op }], Some("xgroup-create")));
        groups.insert(Bytes::copy_from_slice(group), g);
        Ok(())
    }

    fn group_destroy(&self, r: &Room, group: &[u8], lsn: &mut u64) -> bool {
        let mut groups = r.groups.lock();
        if r.check().is_err() || groups.remove(group).is_none() {
            return false;
        }
        let op = StreamOp::GroupDestroy { group };
        *lsn = (*lsn).max(self.logged(&r.name, &[Mutation::Stream { room: &r.name, op }], Some("xgroup-destroy")));
        true
    }

    /// Delivers up to `count` events to `consumer`: idle pending events first (when the group redelivers),
    /// then new events, taking partitions in turn. Reads first, then commits what it delivered: a read
    /// that fails (storage) changes nothing.
    #[allow(clippy::too_many_arguments)]
    fn group_read(
        &self,
        r: &Room,
        group: &[u8],
        consumer: &[u8],
        count: usize,
        noack: bool,
        now: u64,
        lsn: &mut u64,
    ) -> Result<Vec<(u32, Event)>> {
        let count = count.clamp(1, self.settings.max_read);
        let mut groups = r.groups.lock();
        r.check()?;
        let g = groups.get_mut(group).ok_or_else(|| {
            if r.parts.len() == 1 { readgroup_no_group(&r.name, group) } else { no_group(&r.name, group) }
        })?;
        let consumer_b = Bytes::copy_from_slice(consumer);
        // As in Redis, a read creates its consumer only when it delivers something.
        let create = new_consumer(g, &consumer_b, now, self.settings.max_consumers)?;
        let mut recs: Vec<Rec> = Vec::new();
        let mut out = Vec::new();
        let mut lost = 0;
        if g.redeliver_ms > 0 {
            let due = g.delivered_before(now.saturating_sub(g.redeliver_ms), count);
            for (k, pe) in due {
                let Some(part) = r.parts.get(k.0 as usize) else { continue };
                match part.lock().get(k.1)? {
                    Some(e) => {
                        recs.push(Rec::Pending {
                            partition: k.0,
                            offset: k.1,
                            id: e.id,
                            consumer: consumer_b.clone(),
                            delivered_at: now,
                            count: pe.count.saturating_add(1),
                        });
                        out.push((k.0, e));
                    }
                    None => {
                        lost += 1;
                        recs.push(Rec::Ack { partition: k.0, offset: k.1 });
                    }
                }
            }
        }
        let n = r.parts.len();
        let first = r.rr.fetch_add(1, Ordering::Relaxed) as usize;
        for i in 0..n {
            if out.len() >= count {
                break;
            }
            let pi = (first + i) % n;
            let mut p = r.parts[pi].lock();
            let mut pos = g.pos[pi];
            if pos < p.start {
                lost += p.start - pos;
                pos = p.start;
            }
            let (events, after) = p.read(pos, count - out.len())?;
            drop(p);
            if after == g.pos[pi] {
                continue;
            }
            let mut last = g.last[pi];
            for e in events {
                last = e.id;
                if !noack {
                    recs.push(Rec::Pending {
                        partition: pi as u32,
                        offset: e.offset,
                        id: e.id,
                        consumer: consumer_b.clone(),
                        delivered_at: now,
                        count: 1,
                    });
                }
                out.push((pi as u32, e));
            }
            recs.push(Rec::Pos { partition: pi as u32, pos: after, last });
        }
        if let Some(c) = create
            && !out.is_empty()
        {
            recs.insert(0, c);
        }
        *lsn = (*lsn).max(self.commit_group(r, group, g, &recs)?);
        g.lost += lost;
        seen(g, &consumer_b, now);
        Ok(out)
    }

    /// XREADGROUP with an id: the consumer's pending events after `after`.
    #[allow(clippy::too_many_arguments)]
    fn history(
        &self,
        r: &Room,
        group: &[u8],
        consumer: &[u8],
        after: StreamId,
        count: usize,
        now: u64,
        lsn: &mut u64,
    ) -> Result<Vec<Reply>> {
        let mut groups = r.groups.lock();
        let g = groups.get_mut(group).ok_or_else(|| readgroup_no_group(&r.name, group))?;
        let consumer_b = Bytes::copy_from_slice(consumer);
        let recs: Vec<Rec> = new_consumer(g, &consumer_b, now, self.settings.max_consumers)?.into_iter().collect();
        let mine: Vec<_> =
            g.pending_of(consumer).filter(|(_, p)| p.id > after).take(count).map(|(k, p)| (k, p.id)).collect();
        let mut p = r.parts[0].lock();
        let mut out = Vec::with_capacity(mine.len());
        for ((_, offset), id) in mine {
            out.push(match p.get(offset)? {
                Some(e) => redis_entry(&e),
                None => Reply::Array(vec![id_reply(id), Reply::NullArray]),
            });
        }
        drop(p);
        *lsn = (*lsn).max(self.commit_group(r, group, g, &recs)?);
        seen(g, &consumer_b, now);
        Ok(out)
    }

    /// Moves pending entries idle for at least `min_idle_ms` to `consumer`; answers the claimed events.
    /// With `force`, entries that are not pending are created (when their event exists).
    #[allow(clippy::too_many_arguments)]
    fn claim(
        &self,
        r: &Room,
        group: &[u8],
        consumer: &[u8],
        min_idle_ms: u64,
        keys: &[(u32, u64)],
        delivered_at: Option<u64>,
        retry_count: Option<u32>,
        force: bool,
        now: u64,
        lsn: &mut u64,
    ) -> Result<Vec<(u32, Event)>> {
        let mut groups = r.groups.lock();
        r.check()?;
        let g = groups.get_mut(group).ok_or_else(|| pending_no_group(&r.name, group))?;
        let consumer_b = Bytes::copy_from_slice(consumer);
        // As in Redis, the consumer is created when it first claims an entry.
        let mut create = new_consumer(g, &consumer_b, now, self.settings.max_consumers)?;
        let mut recs: Vec<Rec> = Vec::new();
        let mut out = Vec::new();
        let mut seen_keys = std::collections::HashSet::new();
        for &(partition, offset) in keys {
            let Some(part) = r.parts.get(partition as usize) else { continue };
            if !seen_keys.insert((partition, offset)) {
                continue;
            }
            let existing = g.pending_entry(&(partition, offset));
            if existing.is_none() && !force {
                continue;
            }
            if let Some(pe) = existing
                && now.saturating_sub(pe.delivered_at) < min_idle_ms
            {
                continue;
            }
            let previous = existing.map(|p| p.count);
            let event = part.lock().get(offset)?;
            let Some(e) = event else {
                if previous.is_some() {
                    recs.push(Rec::Ack { partition, offset });
                }
                continue;
            };
            let count = retry_count.unwrap_or_else(|| previous.map(|c| c.saturating_add(1)).unwrap_or(1));
            recs.extend(create.take());
            recs.push(Rec::Pending {
                partition,
                offset,
                id: e.id,
                consumer: consumer_b.clone(),
                delivered_at: delivered_at.unwrap_or(now),
                count,
            });
            out.push((partition, e));
        }
        *lsn = (*lsn).max(self.commit_group(r, group, g, &recs)?);
        seen(g, &consumer_b, now);
        Ok(out)
    }
}

/// The record that creates `consumer`, when the group does not know it yet; refused past `max` consumers.
fn new_consumer(g: &Group, consumer: &Bytes, now: u64, max: usize) -> Result<Option<Rec>> {
    if g.consumers.contains_key(consumer) {
        return Ok(None);
    }
    if g.consumers.len() >= max {
        return Err(CommandError::Invalid(format!(
            "the group has {max} consumers (stream.max_consumers_per_group); delete idle ones with XGROUP DELCONSUMER"
        )));
    }
    Ok(Some(Rec::Consumer { consumer: consumer.clone(), seen_at: now }))
}

/// Records when a known consumer was last seen: in memory only (a statistic, like Redis's seen-time),
/// so that a reader polling an idle stream writes nothing.
fn seen(g: &mut Group, consumer: &Bytes, now: u64) {
    if let Some(c) = g.consumers.get_mut(consumer) {
        c.seen_at = now;
    }
}

/// The position and last-delivered id a group starts from in one partition.
fn start_position(p: &mut Partition, start: GroupStart) -> Result<(u64, StreamId)> {
    Ok(match start {
        GroupStart::Earliest => (p.start, StreamId::MIN),
        GroupStart::Latest => (p.next(), p.last),
        GroupStart::AfterId(id) => {
            let pos = if id == StreamId::MAX { p.next() } else { p.seek_id(id.next())? };
            (pos, id)
        }
        GroupStart::Offset(o) => {
            let pos = o.clamp(p.start, p.next());
            let last =
                if pos > p.start { p.get(pos - 1)?.map(|e| e.id).unwrap_or(StreamId::MIN) } else { StreamId::MIN };
            (pos, last)
        }
    })
}

fn requires_key() -> CommandError {
    CommandError::Invalid(
        "The XGROUP subcommand requires the key to exist. Note that for CREATE you may want to use the MKSTREAM \
         option to create an empty stream automatically."
            .into(),
    )
}

pub(super) fn setid_no_group(key: &[u8], group: &[u8]) -> CommandError {
    CommandError::NoGroup(format!(
        "No such consumer group '{}' for key name '{}'",
        String::from_utf8_lossy(group),
        String::from_utf8_lossy(key)
    ))
}

fn readgroup_no_group(key: &[u8], group: &[u8]) -> CommandError {
    CommandError::NoGroup(format!(
        "No such key '{}' or consumer group '{}' in XREADGROUP with GROUP option",
        String::from_utf8_lossy(key),
        String::from_utf8_lossy(group)
    ))
}

fn pending_no_group(key: &[u8], group: &[u8]) -> CommandError {
    CommandError::NoGroup(format!(
        "No such key '{}' or consumer group '{}'",
        String::from_utf8_lossy(key),
        String::from_utf8_lossy(group)
    ))
}
