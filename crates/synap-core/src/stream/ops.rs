//! Stream commands: Synap's API and Redis's X* commands, on the store of `store.rs`.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::cmd::*;
use super::store::{Group, MAX_READ_BYTES, MAX_ROOM_NAME, Partition, Rec, Room, StreamStore};
use super::{Event, RoomConfig, StreamId, encode_event, partition_for_key};
use crate::command::Reply;
use crate::error::{CommandError, Result};
use crate::mutation::{Mutation, StreamOp};

fn bulk(s: &'static str) -> Reply {
    Reply::Bulk(Bytes::from_static(s.as_bytes()))
}

fn id_reply(id: StreamId) -> Reply {
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
fn redis_entry(e: &Event) -> Reply {
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

impl Partition {
    /// The start offset that leaves at most `n` live events.
    fn start_for_len(&self, n: u64) -> u64 {
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

    fn first_live(&mut self) -> Result<Option<Event>> {
        let start = self.start;
        Ok(self.read(start, 1)?.0.into_iter().next())
    }

    fn last_live(&mut self) -> Result<Option<Event>> {
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
    fn range(&mut self, lo: StreamId, hi: StreamId, count: usize, rev: bool) -> Result<Vec<Event>> {
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
    fn offset_of(&mut self, id: StreamId) -> Result<Option<u64>> {
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

impl StreamStore {
    fn room(&self, name: &[u8]) -> Result<Arc<Room>> {
        self.get(name).ok_or_else(|| not_found(name))
    }

    /// A stream as Redis commands see it: absent, or a single-partition stream.
    fn redis_room(&self, key: &[u8]) -> Result<Option<Arc<Room>>> {
        match self.get(key) {
            Some(r) if r.parts.len() > 1 => Err(CommandError::Invalid(format!(
                "stream '{}' has {} partitions; Redis stream commands work on single-partition streams",
                String::from_utf8_lossy(key),
                r.parts.len()
            ))),
            other => Ok(other),
        }
    }

    fn create_room(&self, name: &[u8], config: RoomConfig, lsn: &mut u64) -> Result<(Arc<Room>, bool)> {
        if let Some(r) = self.get(name) {
            return Ok((r, false));
        }
        if name.is_empty() || name.len() > MAX_ROOM_NAME {
            return Err(CommandError::Invalid(format!("stream names must be 1 to {MAX_ROOM_NAME} bytes long")));
        }
        if config.partitions == 0 || config.partitions > self.settings.max_partitions {
            return Err(CommandError::Invalid(format!(
                "partitions must be between 1 and {}",
                self.settings.max_partitions
            )));
        }
        if self.room_count() >= self.settings.max_rooms {
            return Err(CommandError::Invalid(format!("too many streams (limit {})", self.settings.max_rooms)));
        }
        Ok(self.create_in_memory(name, config, None, Some(lsn)))
    }

    /// Applies decided group changes and logs them, in one step (see [`Rec`]).
    fn commit_group(&self, room: &[u8], group: &[u8], g: &mut Group, recs: &[Rec]) -> u64 {
        for rec in recs {
            g.apply(rec);
        }
        let batch: Vec<Mutation<'_>> = recs.iter().map(|r| Mutation::Stream { room, op: r.op(group) }).collect();
        self.log.append(&batch)
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
            self.log.append(&[append, trim])
        } else {
            self.log.append(&[append])
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
        *lsn = (*lsn).max(self.log.append(&[Mutation::Stream { room: &room.name, op }]));
        before - p.len()
    }

    /// Executes a stream command.
    pub fn execute(&self, cmd: StreamCmd, now: u64, lsn: &mut u64) -> Result<Reply> {
        match cmd {
            StreamCmd::Create { room, options } => {
                let config = options.resolve(&self.settings.defaults);
                let (_, created) = self.create_room(&room, config, lsn)?;
                if !created {
                    return Err(CommandError::AlreadyExists(format!(
                        "stream '{}' already exists",
                        String::from_utf8_lossy(&room)
                    )));
                }
                Ok(Reply::Int(1))
            }
            StreamCmd::Delete { room } => match self.remove_room(&room, true) {
                Some(l) => {
                    *lsn = (*lsn).max(l);
                    Ok(Reply::Int(1))
                }
                None => Ok(Reply::Int(0)),
            },
            StreamCmd::List => Ok(Reply::Array(self.rooms.read().keys().map(|k| Reply::Bulk(k.clone())).collect())),
            StreamCmd::Stats { room } => self.stats(&*self.room(&room)?),
            StreamCmd::Publish { room, key, partition, fields } => {
                let r = match self.get(&room) {
                    Some(r) => r,
                    None if self.settings.auto_create => self.create_room(&room, self.settings.defaults, lsn)?.0,
                    None => return Err(not_found(&room)),
                };
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
                Ok(Reply::Map(vec![
                    (bulk("events"), Reply::Array(events.iter().map(|e| event_map(partition, e)).collect())),
                    (bulk("next_offset"), Reply::Int(next as i64)),
                    (bulk("partition"), Reply::Int(partition as i64)),
                ]))
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
                *lsn = (*lsn).max(self.commit_group(&room, &group, g, &recs));
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
                let r = match self.redis_room(&key)? {
                    Some(r) => r,
                    None if nomkstream => return Ok(Reply::Nil),
                    None => {
                        let config = RoomConfig { partitions: 1, ..self.settings.defaults };
                        self.create_room(&key, config, lsn)?.0
                    }
                };
                let (_, id) = self.append(&r, 0, b"", &fields, id, trim, now, lsn)?;
                Ok(id_reply(id))
            }
            StreamCmd::XLen { key } => {
                Ok(Reply::Int(self.redis_room(&key)?.map(|r| r.parts[0].lock().len() as i64).unwrap_or(0)))
            }
            StreamCmd::XRange { key, start, end, count, rev } => {
                let Some(r) = self.redis_room(&key)? else { return Ok(Reply::Array(vec![])) };
                let lo = match start {
                    IdBound::Incl(id) => id,
                    IdBound::Excl(id) if id == StreamId::MAX => return Ok(Reply::Array(vec![])),
                    IdBound::Excl(id) => id.next(),
                };
                let hi = match end {
                    IdBound::Incl(id) => id,
                    IdBound::Excl(id) if id == StreamId::MIN => return Ok(Reply::Array(vec![])),
                    IdBound::Excl(id) => id.prev(),
                };
                let count = count.unwrap_or(usize::MAX).min(self.settings.max_read);
                let events = r.parts[0].lock().range(lo, hi, count, rev)?;
                Ok(Reply::Array(events.iter().map(redis_entry).collect()))
            }
            StreamCmd::XRead { streams, count } => {
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
                        out.push(Reply::Array(vec![
                            Reply::Bulk(key),
                            Reply::Array(events.iter().map(redis_entry).collect()),
                        ]));
                    }
                }
                Ok(if out.is_empty() { Reply::Nil } else { Reply::Array(out) })
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
                *lsn = (*lsn).max(self.log.append(&batch));
                Ok(Reply::Int(deleted.len() as i64))
            }
            StreamCmd::XGroupCreate { key, group, start, mkstream } => {
                let r = match self.redis_room(&key)? {
                    Some(r) => r,
                    None if mkstream => {
                        let config = RoomConfig { partitions: 1, ..self.settings.defaults };
                        self.create_room(&key, config, lsn)?.0
                    }
                    None => return Err(requires_key()),
                };
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
                *lsn = (*lsn).max(self.commit_group(&key, &group, g, &[Rec::Pos { partition: 0, pos, last }]));
                Ok(Reply::Ok)
            }
            StreamCmd::XGroupCreateConsumer { key, group, consumer } => {
                let r = self.redis_room(&key)?.ok_or_else(requires_key)?;
                let mut groups = r.groups.lock();
                let g = groups.get_mut(&group[..]).ok_or_else(|| setid_no_group(&key, &group))?;
                let Some(rec) = new_consumer(g, &consumer, now, self.settings.max_consumers)? else {
                    return Ok(Reply::Int(0));
                };
                *lsn = (*lsn).max(self.commit_group(&key, &group, g, &[rec]));
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
                *lsn = (*lsn).max(self.commit_group(&key, &group, g, &[Rec::ConsumerDel { consumer }]));
                Ok(Reply::Int(pending as i64))
            }
            StreamCmd::XReadGroup { group, consumer, count, noack, streams } => {
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
                        out.push(Reply::Array(vec![Reply::Bulk(key), Reply::Array(entries)]));
                    }
                }
                Ok(if out.is_empty() && !any_history { Reply::Nil } else { Reply::Array(out) })
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
                *lsn = (*lsn).max(self.commit_group(&key, &group, g, &recs));
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
                        if keys.len() >= count || scanned >= count.saturating_mul(10) {
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
                    *lsn = (*lsn).max(self.commit_group(&key, &group, g, &acks));
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
        *lsn = (*lsn).max(self.log.append(&[Mutation::Stream { room: &r.name, op }]));
        groups.insert(Bytes::copy_from_slice(group), g);
        Ok(())
    }

    fn group_destroy(&self, r: &Room, group: &[u8], lsn: &mut u64) -> bool {
        let mut groups = r.groups.lock();
        if groups.remove(group).is_none() {
            return false;
        }
        let op = StreamOp::GroupDestroy { group };
        *lsn = (*lsn).max(self.log.append(&[Mutation::Stream { room: &r.name, op }]));
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
        let mut recs: Vec<Rec> = new_consumer(g, &consumer_b, now, self.settings.max_consumers)?.into_iter().collect();
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
        *lsn = (*lsn).max(self.commit_group(&r.name, group, g, &recs));
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
                None => Reply::Array(vec![id_reply(id), Reply::Nil]),
            });
        }
        drop(p);
        *lsn = (*lsn).max(self.commit_group(&r.name, group, g, &recs));
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
        let mut recs: Vec<Rec> = new_consumer(g, &consumer_b, now, self.settings.max_consumers)?.into_iter().collect();
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
        *lsn = (*lsn).max(self.commit_group(&r.name, group, g, &recs));
        seen(g, &consumer_b, now);
        Ok(out)
    }

    fn stats(&self, r: &Room) -> Result<Reply> {
        let config = *r.config.lock();
        let groups = r.groups.lock();
        let mut parts = Vec::new();
        let (mut events, mut bytes, mut segments) = (0u64, 0u64, 0usize);
        let mut bounds = Vec::new();
        for (i, p) in r.parts.iter().enumerate() {
            let p = p.lock();
            let segs = p.log.segments();
            let b: u64 = segs.iter().map(|s| s.bytes).sum();
            events += p.len();
            bytes += b;
            segments += segs.len();
            bounds.push((p.start, p.next()));
            parts.push(Reply::Map(vec![
                (bulk("partition"), Reply::Int(i as i64)),
                (bulk("start_offset"), Reply::Int(p.start as i64)),
                (bulk("next_offset"), Reply::Int(p.next() as i64)),
                (bulk("events"), Reply::Int(p.len() as i64)),
                (bulk("bytes"), Reply::Int(b as i64)),
                (bulk("segments"), Reply::Int(segs.len() as i64)),
                (bulk("last_id"), id_reply(p.last)),
            ]));
        }
        let group_stats = groups
            .iter()
            .map(|(name, g)| {
                let (mut undelivered, mut lost) = (0u64, g.lost);
                for (i, &(start, next)) in bounds.iter().enumerate() {
                    let pos = g.pos[i];
                    if pos < start {
                        lost += start - pos;
                    }
                    undelivered += next.saturating_sub(pos.max(start));
                }
                Reply::Map(vec![
                    (bulk("name"), Reply::Bulk(name.clone())),
                    (bulk("consumers"), Reply::Int(g.consumers.len() as i64)),
                    (bulk("pending"), Reply::Int(g.pending().len() as i64)),
                    (bulk("undelivered"), Reply::Int(undelivered as i64)),
                    (bulk("lag"), Reply::Int((undelivered + g.pending().len() as u64) as i64)),
                    (bulk("lost"), Reply::Int(lost as i64)),
                    (bulk("positions"), Reply::Array(g.pos.iter().map(|&p| Reply::Int(p as i64)).collect())),
                ])
            })
            .collect();
        Ok(Reply::Map(vec![
            (bulk("name"), Reply::Bulk(r.name.clone())),
            (bulk("partitions"), Reply::Int(r.parts.len() as i64)),
            (bulk("created_at"), Reply::Int(r.created_at as i64)),
            (
                bulk("retention"),
                Reply::Map(vec![
                    (bulk("max_events"), Reply::Int(config.max_events as i64)),
                    (bulk("max_bytes"), Reply::Int(config.max_bytes as i64)),
                    (bulk("max_age_ms"), Reply::Int(config.max_age_ms as i64)),
                ]),
            ),
            (bulk("events"), Reply::Int(events as i64)),
            (bulk("published"), Reply::Int(r.published.load(Ordering::Relaxed) as i64)),
            (bulk("bytes"), Reply::Int(bytes as i64)),
            (bulk("segments"), Reply::Int(segments as i64)),
            (bulk("partition_stats"), Reply::Array(parts)),
            (bulk("groups"), Reply::Array(group_stats)),
        ]))
    }

    fn xinfo(&self, info: XInfo, now: u64) -> Result<Reply> {
        match info {
            XInfo::Stream { key, full, count } => {
                let r = self.redis_room(&key)?.ok_or(CommandError::NoSuchKey)?;
                let groups = r.groups.lock();
                let mut p = r.parts[0].lock();
                let first = p.first_live()?;
                let last = p.last_live()?;
                let first_id = first.as_ref().map(|e| e.id).unwrap_or(StreamId::MIN);
                let mut fields = vec![
                    (bulk("length"), Reply::Int(p.len() as i64)),
                    (bulk("radix-tree-keys"), Reply::Int(1)),
                    (bulk("radix-tree-nodes"), Reply::Int(1)),
                    (bulk("last-generated-id"), id_reply(p.last)),
                    (bulk("max-deleted-entry-id"), id_reply(p.max_deleted)),
                    (bulk("entries-added"), Reply::Int(p.next() as i64)),
                    (bulk("recorded-first-entry-id"), id_reply(first_id)),
                ];
                if full {
                    let start = p.start;
                    let (entries, _) = p.read(start, if count == 0 { usize::MAX } else { count }.min(1_000_000))?;
                    fields.push((bulk("entries"), Reply::Array(entries.iter().map(redis_entry).collect())));
                    let gs = groups
                        .iter()
                        .map(|(name, g)| {
                            Reply::Map(vec![
                                (bulk("name"), Reply::Bulk(name.clone())),
                                (bulk("last-delivered-id"), id_reply(g.last[0])),
                                (bulk("entries-read"), Reply::Int(g.pos[0] as i64)),
                                (bulk("lag"), Reply::Int(p.next().saturating_sub(g.pos[0].max(p.start)) as i64)),
                                (bulk("pel-count"), Reply::Int(g.pending().len() as i64)),
                            ])
                        })
                        .collect();
                    fields.push((bulk("groups"), Reply::Array(gs)));
                } else {
                    fields.push((bulk("groups"), Reply::Int(groups.len() as i64)));
                    fields.push((bulk("first-entry"), first.as_ref().map(redis_entry).unwrap_or(Reply::Nil)));
                    fields.push((bulk("last-entry"), last.as_ref().map(redis_entry).unwrap_or(Reply::Nil)));
                }
                Ok(Reply::Map(fields))
            }
            XInfo::Groups { key } => {
                let r = self.redis_room(&key)?.ok_or(CommandError::NoSuchKey)?;
                let groups = r.groups.lock();
                let p = r.parts[0].lock();
                Ok(Reply::Array(
                    groups
                        .iter()
                        .map(|(name, g)| {
                            Reply::Map(vec![
                                (bulk("name"), Reply::Bulk(name.clone())),
                                (bulk("consumers"), Reply::Int(g.consumers.len() as i64)),
                                (bulk("pending"), Reply::Int(g.pending().len() as i64)),
                                (bulk("last-delivered-id"), id_reply(g.last[0])),
                                (bulk("entries-read"), Reply::Int(g.pos[0] as i64)),
                                (bulk("lag"), Reply::Int(p.next().saturating_sub(g.pos[0].max(p.start)) as i64)),
                            ])
                        })
                        .collect(),
                ))
            }
            XInfo::Consumers { key, group } => {
                let r = self.redis_room(&key)?.ok_or(CommandError::NoSuchKey)?;
                let groups = r.groups.lock();
                let g = groups.get(&group[..]).ok_or_else(|| setid_no_group(&key, &group))?;
                Ok(Reply::Array(
                    g.consumers
                        .iter()
                        .map(|(name, c)| {
                            let idle = now.saturating_sub(c.seen_at) as i64;
                            Reply::Map(vec![
                                (bulk("name"), Reply::Bulk(name.clone())),
                                (bulk("pending"), Reply::Int(g.pending_count_of(name) as i64)),
                                (bulk("idle"), Reply::Int(idle)),
                                (bulk("inactive"), Reply::Int(idle)),
                            ])
                        })
                        .collect(),
                ))
            }
        }
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

fn pending_summary(g: &Group) -> Reply {
    if g.pending().is_empty() {
        return Reply::Array(vec![Reply::Int(0), Reply::Nil, Reply::Nil, Reply::Nil]);
    }
    let min = g.pending().values().map(|p| p.id).min().expect("non-empty");
    let max = g.pending().values().map(|p| p.id).max().expect("non-empty");
    let mut per: std::collections::BTreeMap<&Bytes, u64> = std::collections::BTreeMap::new();
    for p in g.pending().values() {
        *per.entry(&p.consumer).or_default() += 1;
    }
    Reply::Array(vec![
        Reply::Int(g.pending().len() as i64),
        id_reply(min),
        id_reply(max),
        Reply::Array(
            per.into_iter()
                .map(|(c, n)| Reply::Array(vec![Reply::Bulk(c.clone()), Reply::Bulk(Bytes::from(n.to_string()))]))
                .collect(),
        ),
    ])
}

fn pending_range(g: &Group, range: &PendingRange, now: u64) -> Reply {
    let lo = match range.start {
        IdBound::Incl(id) => id,
        IdBound::Excl(id) => id.next(),
    };
    let hi = match range.end {
        IdBound::Incl(id) => id,
        IdBound::Excl(id) => id.prev(),
    };
    let mut entries: Vec<_> = g
        .pending()
        .values()
        .filter(|p| p.id >= lo && p.id <= hi)
        .filter(|p| range.consumer.as_ref().is_none_or(|c| *c == p.consumer))
        .filter(|p| now.saturating_sub(p.delivered_at) >= range.min_idle_ms)
        .collect();
    entries.sort_by_key(|p| p.id);
    Reply::Array(
        entries
            .into_iter()
            .take(range.count)
            .map(|p| {
                Reply::Array(vec![
                    id_reply(p.id),
                    Reply::Bulk(p.consumer.clone()),
                    Reply::Int(now.saturating_sub(p.delivered_at) as i64),
                    Reply::Int(p.count as i64),
                ])
            })
            .collect(),
    )
}

fn requires_key() -> CommandError {
    CommandError::Invalid(
        "The XGROUP subcommand requires the key to exist. Note that for CREATE you may want to use the MKSTREAM \
         option to create an empty stream automatically."
            .into(),
    )
}

fn setid_no_group(key: &[u8], group: &[u8]) -> CommandError {
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
