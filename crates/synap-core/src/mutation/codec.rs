//! The byte encoding of mutation batches (the layout is in `docs/format.md`).

use crate::command::stream::StreamId;
use thiserror::Error;

use super::*;

const TAG_SET: u8 = 1;
const TAG_DEL: u8 = 2;
const TAG_SET_EXPIRE: u8 = 3;
const TAG_FLUSH_ALL: u8 = 5;
const TAG_QUEUE_CREATE: u8 = 6;
const TAG_QUEUE_DELETE: u8 = 7;
const TAG_QUEUE_PUT: u8 = 8;
const TAG_QUEUE_STATE: u8 = 9;
const TAG_QUEUE_REMOVE: u8 = 10;
const TAG_QUEUE_PURGE: u8 = 11;
const TAG_QUEUE_NEXT_ID: u8 = 12;
const TAG_STREAM_FIRST: u8 = 13;
const TAG_STREAM_LAST: u8 = 25;
const TAG_RESTORE: u8 = 26;
const TAG_HSET: u8 = 27;
const TAG_HDEL: u8 = 28;
const TAG_LPUT: u8 = 29;
const TAG_LDEL: u8 = 30;
const TAG_LKEEP: u8 = 31;
const TAG_SADD: u8 = 32;
const TAG_SREM: u8 = 33;
const TAG_ZSET: u8 = 34;
const TAG_ZREM: u8 = 35;
/// A stream mutation outside the 13..=25 range: `Delete` of one instance.
const TAG_STREAM_DELETE_INSTANCE: u8 = 36;
const TAG_SET_RANGE: u8 = 37;
/// A stream mutation outside the 13..=25 range: `Rename`.
const TAG_STREAM_RENAME: u8 = 38;
const TAG_FUNCTION_LOAD: u8 = 39;
const TAG_FUNCTION_DELETE: u8 = 40;
const TAG_FUNCTION_FLUSH: u8 = 41;
const TAG_SELECT_DB: u8 = 42;
const TAG_SWAP_DB: u8 = 43;
const TAG_ACL_SET_USER: u8 = 45;
const TAG_ACL_DEL_USER: u8 = 46;
const TAG_API_KEY_PUT: u8 = 47;
const TAG_API_KEY_DEL: u8 = 48;
const TAG_STREAM_BASE: u8 = 44;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("record truncated at byte {0}")]
    Truncated(usize),
    #[error("unknown mutation tag {tag} at byte {at}")]
    UnknownTag { tag: u8, at: usize },
    #[error("{0} trailing bytes after the last mutation")]
    Trailing(usize),
    #[error("mutation count {0} exceeds the record size")]
    BadCount(u32),
}

/// Appends the encoding of `batch` to `out`.
pub fn encode_batch(batch: &[Mutation<'_>], out: &mut Vec<u8>) {
    out.extend_from_slice(&(batch.len() as u32).to_le_bytes());
    for m in batch {
        encode(m, out);
    }
}

/// The encoded size of `batch`, without encoding it.
pub fn encoded_len(batch: &[Mutation<'_>]) -> usize {
    4 + batch
        .iter()
        .map(|m| {
            1 + match m {
                Mutation::Set { key, value, .. } => 4 + key.len() + 4 + value.len() + 8,
                Mutation::Del { key } => 4 + key.len(),
                Mutation::SetExpire { key, .. } => 4 + key.len() + 8,
                Mutation::FlushAll => 0,
                Mutation::QueueCreate { name, config } => 8 + name.len() + config.len(),
                Mutation::QueueDelete { name } | Mutation::QueuePurge { queue: name } => 4 + name.len(),
                Mutation::QueuePut { queue, msg } => {
                    4 + queue.len()
                        + 8
                        + 1
                        + 4
                        + 8 * 4
                        + 12
                        + msg.consumer.len()
                        + msg.headers.len()
                        + msg.payload.len()
                }
                Mutation::QueueState { queue, consumer, .. } => 4 + queue.len() + 8 + 4 + 16 + 4 + consumer.len(),
                Mutation::QueueRemove { queue, .. } => 4 + queue.len() + 8,
                Mutation::QueueNextId { .. } => 8,
                Mutation::SetRange { key, data, .. } => 4 + key.len() + 8 + 4 + data.len(),
                Mutation::FunctionLoad { code: b } | Mutation::FunctionDelete { name: b } => 4 + b.len(),
                Mutation::FunctionFlush => 0,
                Mutation::SelectDb { .. } => 4,
                Mutation::SwapDb { .. } => 8,
                Mutation::AclSetUser { name, rules } => 8 + name.len() + rules.len(),
                Mutation::AclDelUser { name } => 4 + name.len(),
                Mutation::ApiKeyPut { id, data } => 8 + id.len() + data.len(),
                Mutation::ApiKeyDel { id } => 4 + id.len(),
                Mutation::Stream { .. }
                | Mutation::Restore { .. }
                | Mutation::HSet { .. }
                | Mutation::HDel { .. }
                | Mutation::LPut { .. }
                | Mutation::LDel { .. }
                | Mutation::LKeep { .. }
                | Mutation::SAdd { .. }
                | Mutation::SRem { .. }
                | Mutation::ZSet { .. }
                | Mutation::ZRem { .. } => {
                    let mut scratch = Vec::new();
                    encode(m, &mut scratch);
                    scratch.len() - 1
                }
            }
        })
        .sum::<usize>()
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    out.extend_from_slice(b);
}

pub(super) fn encode(m: &Mutation<'_>, out: &mut Vec<u8>) {
    match m {
        Mutation::Set { key, value, expire_at } => {
            out.push(TAG_SET);
            put_bytes(out, key);
            put_bytes(out, value);
            out.extend_from_slice(&expire_at.to_le_bytes());
        }
        Mutation::Del { key } => {
            out.push(TAG_DEL);
            put_bytes(out, key);
        }
        Mutation::SetExpire { key, expire_at } => {
            out.push(TAG_SET_EXPIRE);
            put_bytes(out, key);
            out.extend_from_slice(&expire_at.to_le_bytes());
        }
        Mutation::FlushAll => out.push(TAG_FLUSH_ALL),
        Mutation::QueueCreate { name, config } => {
            out.push(TAG_QUEUE_CREATE);
            put_bytes(out, name);
            put_bytes(out, config);
        }
        Mutation::QueueDelete { name } => {
            out.push(TAG_QUEUE_DELETE);
            put_bytes(out, name);
        }
        Mutation::QueuePut { queue, msg } => {
            out.push(TAG_QUEUE_PUT);
            put_bytes(out, queue);
            out.extend_from_slice(&msg.id.to_le_bytes());
            out.push(msg.priority);
            out.extend_from_slice(&msg.attempts.to_le_bytes());
            for v in [msg.published_at, msg.available_at, msg.expires_at, msg.deadline] {
                out.extend_from_slice(&v.to_le_bytes());
            }
            put_bytes(out, msg.consumer);
            put_bytes(out, msg.headers);
            put_bytes(out, msg.payload);
        }
        Mutation::QueueState { queue, id, attempts, available_at, deadline, consumer } => {
            out.push(TAG_QUEUE_STATE);
            put_bytes(out, queue);
            out.extend_from_slice(&id.to_le_bytes());
            out.extend_from_slice(&attempts.to_le_bytes());
            out.extend_from_slice(&available_at.to_le_bytes());
            out.extend_from_slice(&deadline.to_le_bytes());
            put_bytes(out, consumer);
        }
        Mutation::QueueRemove { queue, id } => {
            out.push(TAG_QUEUE_REMOVE);
            put_bytes(out, queue);
            out.extend_from_slice(&id.to_le_bytes());
        }
        Mutation::QueuePurge { queue } => {
            out.push(TAG_QUEUE_PURGE);
            put_bytes(out, queue);
        }
        Mutation::QueueNextId { next } => {
            out.push(TAG_QUEUE_NEXT_ID);
            out.extend_from_slice(&next.to_le_bytes());
        }
        Mutation::Stream { room, op } => encode_stream(room, op, out),
        Mutation::Restore { key, kind, data, expire_at } => {
            out.push(TAG_RESTORE);
            put_bytes(out, key);
            out.push(*kind);
            put_bytes(out, data);
            out.extend_from_slice(&expire_at.to_le_bytes());
        }
        Mutation::HSet { key, field, value } => {
            out.push(TAG_HSET);
            put_bytes(out, key);
            put_bytes(out, field);
            put_bytes(out, value);
        }
        Mutation::HDel { key, field } => {
            out.push(TAG_HDEL);
            put_bytes(out, key);
            put_bytes(out, field);
        }
        Mutation::LPut { key, idx, value } => {
            out.push(TAG_LPUT);
            put_bytes(out, key);
            out.extend_from_slice(&idx.to_le_bytes());
            put_bytes(out, value);
        }
        Mutation::LDel { key, idx } => {
            out.push(TAG_LDEL);
            put_bytes(out, key);
            out.extend_from_slice(&idx.to_le_bytes());
        }
        Mutation::LKeep { key, lo, hi } => {
            out.push(TAG_LKEEP);
            put_bytes(out, key);
            out.extend_from_slice(&lo.to_le_bytes());
            out.extend_from_slice(&hi.to_le_bytes());
        }
        Mutation::SAdd { key, member } | Mutation::SRem { key, member } | Mutation::ZRem { key, member } => {
            out.push(match m {
                Mutation::SAdd { .. } => TAG_SADD,
                Mutation::SRem { .. } => TAG_SREM,
                _ => TAG_ZREM,
            });
            put_bytes(out, key);
            put_bytes(out, member);
        }
        Mutation::FunctionLoad { code } => {
            out.push(TAG_FUNCTION_LOAD);
            put_bytes(out, code);
        }
        Mutation::FunctionDelete { name } => {
            out.push(TAG_FUNCTION_DELETE);
            put_bytes(out, name);
        }
        Mutation::FunctionFlush => out.push(TAG_FUNCTION_FLUSH),
        Mutation::SelectDb { db } => {
            out.push(TAG_SELECT_DB);
            out.extend_from_slice(&db.to_le_bytes());
        }
        Mutation::SwapDb { a, b } => {
            out.push(TAG_SWAP_DB);
            out.extend_from_slice(&a.to_le_bytes());
            out.extend_from_slice(&b.to_le_bytes());
        }
        Mutation::AclSetUser { name, rules } => {
            out.push(TAG_ACL_SET_USER);
            put_bytes(out, name);
            put_bytes(out, rules);
        }
        Mutation::AclDelUser { name } => {
            out.push(TAG_ACL_DEL_USER);
            put_bytes(out, name);
        }
        Mutation::ApiKeyPut { id, data } => {
            out.push(TAG_API_KEY_PUT);
            put_bytes(out, id);
            put_bytes(out, data);
        }
        Mutation::ApiKeyDel { id } => {
            out.push(TAG_API_KEY_DEL);
            put_bytes(out, id);
        }
        Mutation::SetRange { key, offset, data } => {
            out.push(TAG_SET_RANGE);
            put_bytes(out, key);
            out.extend_from_slice(&offset.to_le_bytes());
            put_bytes(out, data);
        }
        Mutation::ZSet { key, member, score } => {
            out.push(TAG_ZSET);
            put_bytes(out, key);
            put_bytes(out, member);
            out.extend_from_slice(&score.to_bits().to_le_bytes());
        }
    }
}

/// Appends one encoded mutation (no batch count) to `out`: snapshot writers assemble batches themselves.
pub fn encode_one(m: &Mutation<'_>, out: &mut Vec<u8>) {
    encode(m, out);
}

fn encode_stream(room: &[u8], op: &StreamOp<'_>, out: &mut Vec<u8>) {
    let u32_ = |out: &mut Vec<u8>, v: u32| out.extend_from_slice(&v.to_le_bytes());
    let u64_ = |out: &mut Vec<u8>, v: u64| out.extend_from_slice(&v.to_le_bytes());
    let tag = TAG_STREAM_FIRST
        + match op {
            StreamOp::Create { .. } => 0,
            StreamOp::Delete { instance: None } => 1,
            StreamOp::Delete { instance: Some(_) } => TAG_STREAM_DELETE_INSTANCE - TAG_STREAM_FIRST,
            StreamOp::Rename { .. } => TAG_STREAM_RENAME - TAG_STREAM_FIRST,
            StreamOp::Base { .. } => TAG_STREAM_BASE - TAG_STREAM_FIRST,
            StreamOp::Append { .. } => 2,
            StreamOp::Trim { .. } => 3,
            StreamOp::Tombstone { .. } => 4,
            StreamOp::Meta { .. } => 5,
            StreamOp::GroupCreate { .. } => 6,
            StreamOp::GroupDestroy { .. } => 7,
            StreamOp::GroupPos { .. } => 8,
            StreamOp::Pending { .. } => 9,
            StreamOp::Ack { .. } => 10,
            StreamOp::Consumer { .. } => 11,
            StreamOp::ConsumerDel { .. } => 12,
        };
    out.push(tag);
    put_bytes(out, room);
    match *op {
        StreamOp::Create { config } => put_bytes(out, config),
        StreamOp::Delete { instance } => {
            if let Some(i) = instance {
                u64_(out, i);
            }
        }
        StreamOp::Rename { to, instance } => {
            put_bytes(out, to);
            out.extend_from_slice(&instance.to_le_bytes());
        }
        StreamOp::Append { partition, offset, body } => {
            u32_(out, partition);
            u64_(out, offset);
            put_bytes(out, body);
        }
        StreamOp::Trim { partition, start: offset }
        | StreamOp::Tombstone { partition, offset }
        | StreamOp::Base { partition, offset } => {
            u32_(out, partition);
            u64_(out, offset);
        }
        StreamOp::Meta { partition, start, next, last } => {
            u32_(out, partition);
            for v in [start, next, last.ms, last.seq] {
                u64_(out, v);
            }
        }
        StreamOp::GroupCreate { group, config } => {
            put_bytes(out, group);
            put_bytes(out, config);
        }
        StreamOp::GroupDestroy { group } => put_bytes(out, group),
        StreamOp::GroupPos { group, partition, pos, last } => {
            put_bytes(out, group);
            u32_(out, partition);
            for v in [pos, last.ms, last.seq] {
                u64_(out, v);
            }
        }
        StreamOp::Pending { group, partition, offset, id, consumer, delivered_at, count } => {
            put_bytes(out, group);
            u32_(out, partition);
            u64_(out, offset);
            u64_(out, id.ms);
            u64_(out, id.seq);
            put_bytes(out, consumer);
            u64_(out, delivered_at);
            u32_(out, count);
        }
        StreamOp::Ack { group, partition, offset } => {
            put_bytes(out, group);
            u32_(out, partition);
            u64_(out, offset);
        }
        StreamOp::Consumer { group, consumer, seen_at } => {
            put_bytes(out, group);
            put_bytes(out, consumer);
            u64_(out, seen_at);
        }
        StreamOp::ConsumerDel { group, consumer } => {
            put_bytes(out, group);
            put_bytes(out, consumer);
        }
    }
}

fn decode_stream<'a>(tag: u8, r: &mut Reader<'a>) -> Result<Mutation<'a>, DecodeError> {
    let room = r.bytes()?;
    let id = |r: &mut Reader<'a>| -> Result<StreamId, DecodeError> { Ok(StreamId { ms: r.u64()?, seq: r.u64()? }) };
    let op = match tag - TAG_STREAM_FIRST {
        0 => StreamOp::Create { config: r.bytes()? },
        1 => StreamOp::Delete { instance: None },
        t if t == TAG_STREAM_DELETE_INSTANCE - TAG_STREAM_FIRST => StreamOp::Delete { instance: Some(r.u64()?) },
        t if t == TAG_STREAM_RENAME - TAG_STREAM_FIRST => StreamOp::Rename { to: r.bytes()?, instance: r.u64()? },
        t if t == TAG_STREAM_BASE - TAG_STREAM_FIRST => StreamOp::Base { partition: r.u32()?, offset: r.u64()? },
        2 => StreamOp::Append { partition: r.u32()?, offset: r.u64()?, body: r.bytes()? },
        3 => StreamOp::Trim { partition: r.u32()?, start: r.u64()? },
        4 => StreamOp::Tombstone { partition: r.u32()?, offset: r.u64()? },
        5 => StreamOp::Meta { partition: r.u32()?, start: r.u64()?, next: r.u64()?, last: id(r)? },
        6 => StreamOp::GroupCreate { group: r.bytes()?, config: r.bytes()? },
        7 => StreamOp::GroupDestroy { group: r.bytes()? },
        8 => StreamOp::GroupPos { group: r.bytes()?, partition: r.u32()?, pos: r.u64()?, last: id(r)? },
        9 => StreamOp::Pending {
            group: r.bytes()?,
            partition: r.u32()?,
            offset: r.u64()?,
            id: id(r)?,
            consumer: r.bytes()?,
            delivered_at: r.u64()?,
            count: r.u32()?,
        },
        10 => StreamOp::Ack { group: r.bytes()?, partition: r.u32()?, offset: r.u64()? },
        11 => StreamOp::Consumer { group: r.bytes()?, consumer: r.bytes()?, seen_at: r.u64()? },
        _ => StreamOp::ConsumerDel { group: r.bytes()?, consumer: r.bytes()? },
    };
    Ok(Mutation::Stream { room, op })
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len()).ok_or(DecodeError::Truncated(self.pos))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }
    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }
    fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = self.u32()? as usize;
        self.take(n)
    }
}

/// Decodes one batch that must fill `buf` exactly.
pub fn decode_batch(buf: &[u8]) -> Result<Vec<Mutation<'_>>, DecodeError> {
    let mut r = Reader { buf, pos: 0 };
    let count = r.u32()?;
    // Every mutation takes at least one byte: a count beyond the remaining bytes is corrupt, and checking
    // it first keeps the allocation bounded by the record size.
    if count as usize > buf.len() - 4 {
        return Err(DecodeError::BadCount(count));
    }
    let mut out = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let at = r.pos;
        let m = match r.u8()? {
            TAG_SET => Mutation::Set { key: r.bytes()?, value: r.bytes()?, expire_at: r.u64()? },
            TAG_DEL => Mutation::Del { key: r.bytes()? },
            TAG_SET_EXPIRE => Mutation::SetExpire { key: r.bytes()?, expire_at: r.u64()? },
            TAG_FLUSH_ALL => Mutation::FlushAll,
            TAG_QUEUE_CREATE => Mutation::QueueCreate { name: r.bytes()?, config: r.bytes()? },
            TAG_QUEUE_DELETE => Mutation::QueueDelete { name: r.bytes()? },
            TAG_QUEUE_PUT => {
                let queue = r.bytes()?;
                let id = r.u64()?;
                let priority = r.u8()?;
                let attempts = r.u32()?;
                let (published_at, available_at, expires_at, deadline) = (r.u64()?, r.u64()?, r.u64()?, r.u64()?);
                let (consumer, headers, payload) = (r.bytes()?, r.bytes()?, r.bytes()?);
                let msg = QueueMessage {
                    id,
                    priority,
                    attempts,
                    published_at,
                    available_at,
                    expires_at,
                    deadline,
                    consumer,
                    headers,
                    payload,
                };
                Mutation::QueuePut { queue, msg }
            }
            TAG_QUEUE_STATE => Mutation::QueueState {
                queue: r.bytes()?,
                id: r.u64()?,
                attempts: r.u32()?,
                available_at: r.u64()?,
                deadline: r.u64()?,
                consumer: r.bytes()?,
            },
            TAG_QUEUE_REMOVE => Mutation::QueueRemove { queue: r.bytes()?, id: r.u64()? },
            TAG_QUEUE_PURGE => Mutation::QueuePurge { queue: r.bytes()? },
            TAG_QUEUE_NEXT_ID => Mutation::QueueNextId { next: r.u64()? },
            tag @ (TAG_STREAM_FIRST..=TAG_STREAM_LAST
            | TAG_STREAM_DELETE_INSTANCE
            | TAG_STREAM_RENAME
            | TAG_STREAM_BASE) => decode_stream(tag, &mut r)?,
            TAG_RESTORE => Mutation::Restore { key: r.bytes()?, kind: r.u8()?, data: r.bytes()?, expire_at: r.u64()? },
            TAG_HSET => Mutation::HSet { key: r.bytes()?, field: r.bytes()?, value: r.bytes()? },
            TAG_HDEL => Mutation::HDel { key: r.bytes()?, field: r.bytes()? },
            TAG_LPUT => Mutation::LPut { key: r.bytes()?, idx: r.u64()? as i64, value: r.bytes()? },
            TAG_LDEL => Mutation::LDel { key: r.bytes()?, idx: r.u64()? as i64 },
            TAG_LKEEP => Mutation::LKeep { key: r.bytes()?, lo: r.u64()? as i64, hi: r.u64()? as i64 },
            TAG_SADD => Mutation::SAdd { key: r.bytes()?, member: r.bytes()? },
            TAG_SREM => Mutation::SRem { key: r.bytes()?, member: r.bytes()? },
            TAG_ZSET => Mutation::ZSet { key: r.bytes()?, member: r.bytes()?, score: f64::from_bits(r.u64()?) },
            TAG_ZREM => Mutation::ZRem { key: r.bytes()?, member: r.bytes()? },
            TAG_SET_RANGE => Mutation::SetRange { key: r.bytes()?, offset: r.u64()?, data: r.bytes()? },
            TAG_FUNCTION_LOAD => Mutation::FunctionLoad { code: r.bytes()? },
            TAG_FUNCTION_DELETE => Mutation::FunctionDelete { name: r.bytes()? },
            TAG_FUNCTION_FLUSH => Mutation::FunctionFlush,
            TAG_SELECT_DB => Mutation::SelectDb { db: r.u32()? },
            TAG_SWAP_DB => Mutation::SwapDb { a: r.u32()?, b: r.u32()? },
            TAG_ACL_SET_USER => Mutation::AclSetUser { name: r.bytes()?, rules: r.bytes()? },
            TAG_ACL_DEL_USER => Mutation::AclDelUser { name: r.bytes()? },
            TAG_API_KEY_PUT => Mutation::ApiKeyPut { id: r.bytes()?, data: r.bytes()? },
            TAG_API_KEY_DEL => Mutation::ApiKeyDel { id: r.bytes()? },
            tag => return Err(DecodeError::UnknownTag { tag, at }),
        };
        out.push(m);
    }
    if r.pos != buf.len() {
        return Err(DecodeError::Trailing(buf.len() - r.pos));
    }
    Ok(out)
}
