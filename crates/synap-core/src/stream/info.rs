//! Read-only reports on a stream: Synap's stats and Redis's XINFO and XPENDING shapes.

use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::group::Group;
use super::ops::{bulk, id_reply, redis_entry, setid_no_group};
use super::store::{Room, StreamStore};
use super::*;

use crate::command::Reply;
use crate::error::{CommandError, Result};

impl StreamStore {
    pub(super) fn stats(&self, r: &Room) -> Result<Reply> {
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

    pub(super) fn xinfo(&self, info: XInfo, now: u64) -> Result<Reply> {
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
                    let (entries, _) =
                        p.read(start, if count == 0 { usize::MAX } else { count }.min(self.settings.max_read))?;
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

pub(super) fn pending_summary(g: &Group) -> Reply {
    if g.pending().is_empty() {
        return Reply::Array(vec![Reply::Int(0), Reply::Nil, Reply::Nil, Reply::NullArray]);
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

pub(super) fn pending_range(g: &Group, range: &PendingRange, now: u64) -> Reply {
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
