//! How collection commands read and change their keys: under the shard lock(s), a command's closure sees
//! the collections (`None`: missing; another type: WRONGTYPE before the closure runs) and answers its reply
//! and the element changes, which are committed under the same locks with the events they raise. A key a
//! change empties goes, and raises `del`, as in Redis.

use bytes::Bytes;

use super::value::{Coll, Kind};
use super::{Keyspace, NO_EXPIRE};
use crate::error::{CommandError, Result};
use crate::mutation::Mutation;
use crate::notify::Class;

/// An element change, owned until the batch is committed.
pub(super) enum Op {
    HSet(Bytes, Bytes),
    HDel(Bytes),
    LPut(i64, Bytes),
    LDel(i64),
    LKeep(i64, i64),
    SAdd(Bytes),
    SRem(Bytes),
    ZSet(Bytes, f64),
    ZRem(Bytes),
    Del,
    Restore(Kind, Vec<u8>),
}

pub(super) fn mutation<'a>(key: &'a [u8], op: &'a Op) -> Mutation<'a> {
    match op {
        Op::HSet(f, v) => Mutation::HSet { key, field: f, value: v },
        Op::HDel(f) => Mutation::HDel { key, field: f },
        Op::LPut(i, v) => Mutation::LPut { key, idx: *i, value: v },
        Op::LDel(i) => Mutation::LDel { key, idx: *i },
        Op::LKeep(lo, hi) => Mutation::LKeep { key, lo: *lo, hi: *hi },
        Op::SAdd(m) => Mutation::SAdd { key, member: m },
        Op::SRem(m) => Mutation::SRem { key, member: m },
        Op::ZSet(m, s) => Mutation::ZSet { key, member: m, score: *s },
        Op::ZRem(m) => Mutation::ZRem { key, member: m },
        Op::Del => Mutation::Del { key },
        Op::Restore(kind, data) => Mutation::Restore { key, kind: *kind as u8, data, expire_at: NO_EXPIRE },
    }
}

/// A whole-value record of `c`, refused when it would not fit a log record.
pub(super) fn restore(kind: Kind, c: &Coll) -> Result<Op> {
    let data = c.encode();
    if data.len() > crate::mutation::MAX_RESTORE_BYTES {
        return Err(CommandError::Invalid(format!(
            "the result is {} bytes encoded; a value stored whole is limited to {} bytes",
            data.len(),
            crate::mutation::MAX_RESTORE_BYTES
        )));
    }
    Ok(Op::Restore(kind, data))
}

/// What a command changes on one key: the element changes, and the event they raise (when any change is
/// made).
pub(super) struct Change<R> {
    pub reply: R,
    pub ops: Vec<Op>,
}

impl<R> Change<R> {
    pub fn read(reply: R) -> Change<R> {
        Change { reply, ops: Vec::new() }
    }

    pub fn write(reply: R, ops: Vec<Op>) -> Change<R> {
        Change { reply, ops }
    }
}

/// What a command changes on several keys: (key, change) pairs in order, and (class, event, key) events.
pub(super) struct Changes<R> {
    pub reply: R,
    pub ops: Vec<(Bytes, Op)>,
    pub events: Vec<(Class, &'static str, Bytes)>,
}

impl<R> Changes<R> {
    pub fn read(reply: R) -> Changes<R> {
        Changes { reply, ops: Vec::new(), events: Vec::new() }
    }

    pub fn op(&mut self, key: &Bytes, op: Op) {
        self.ops.push((key.clone(), op));
    }

    pub fn event(&mut self, class: Class, name: &'static str, key: &Bytes) {
        self.events.push((class, name, key.clone()));
    }
}

impl Keyspace {
    /// Runs `f` on the collection under `key`'s lock and commits its changes there; a change raises
    /// `event` on the key.
    pub(super) fn one<R>(
        &self,
        key: &[u8],
        kind: Kind,
        event: (Class, &'static str),
        now: u64,
        lsn: &mut u64,
        f: impl FnOnce(Option<&Coll>) -> Result<Change<R>>,
    ) -> Result<R> {
        let h = self.hash(key);
        let mut shard = self.lock(h);
        let pos = self.touch_live(&mut shard, h, key, now);
        let coll = match pos {
            Some(p) => match &shard.entry(p).coll {
                Some(c) if c.kind() == kind => Some(&**c),
                _ => return Err(CommandError::WrongType),
            },
            None => None,
        };
        let existed = coll.is_some();
        let Change { reply, ops } = f(coll)?;
        if !ops.is_empty() {
            let batch: Vec<Mutation<'_>> = ops.iter().map(|op| mutation(key, op)).collect();
            let l = self.commit_shard(&mut shard, h, &batch, now, &[(event.0, event.1, key)]);
            *lsn = (*lsn).max(l);
            if existed && shard.find(h, key).is_none() {
                self.notify(Class::Generic, "del", key);
            }
        }
        Ok(reply)
    }

    /// Reads several keys (each of one of `kinds`, or missing) under their locks, then commits `f`'s
    /// changes under the same locks.
    pub(super) fn many<R>(
        &self,
        keys: &[Bytes],
        kinds: &[Kind],
        now: u64,
        lsn: &mut u64,
        f: impl FnOnce(Vec<Option<&Coll>>) -> Result<Changes<R>>,
    ) -> Result<R> {
        self.many_then_store(keys, kinds, None, now, lsn, f)
    }

    /// Whether the source of a move (LMOVE, SMOVE) is missing; WRONGTYPE when it holds another type.
    /// Redis answers a missing source before it looks at the destination.
    pub(super) fn source_missing(&self, key: &[u8], kind: Kind, now: u64) -> Result<bool> {
        let h = self.hash(key);
        let mut shard = self.lock(h);
        match self.find_live(&mut shard, h, key, now) {
            None => Ok(true),
            Some(p) if shard.entry(p).kind() != kind => Err(CommandError::WrongType),
            Some(_) => Ok(false),
        }
    }

    /// [`Self::many`] with a destination key (`store`) that is overwritten whatever it holds, as the
    /// STORE commands do; `f` sees the sources only.
    pub(super) fn many_then_store<R>(
        &self,
        keys: &[Bytes],
        kinds: &[Kind],
        store: Option<&Bytes>,
        now: u64,
        lsn: &mut u64,
        f: impl FnOnce(Vec<Option<&Coll>>) -> Result<Changes<R>>,
    ) -> Result<R> {
        let hashes: Vec<u64> = keys.iter().chain(store).map(|k| self.hash(k)).collect();
        let mut locked = self.lock_many(hashes.iter().copied());
        // Lazy expiry of every key first (it needs the shard mutably, and a removal moves the shard's
        // entries), then the positions to read, which no removal moves any more.
        for (k, &h) in keys.iter().chain(store).zip(&hashes) {
            self.find_live(locked.get(self.shard_of(h)), h, k, now);
        }
        let mut positions = Vec::with_capacity(hashes.len());
        for (k, &h) in keys.iter().chain(store).zip(&hashes) {
            let shard = locked.get(self.shard_of(h));
            positions.push(self.find_live(shard, h, k, now));
        }
        let existed: Vec<bool> = positions.iter().map(Option::is_some).collect();
        let changes = {
            let mut colls = Vec::with_capacity(keys.len());
            for (i, &h) in hashes.iter().take(keys.len()).enumerate() {
                let shard = locked.peek(self.shard_of(h));
                match positions[i] {
                    Some(p) => match &shard.entry(p).coll {
                        Some(c) if kinds.contains(&c.kind()) => colls.push(Some(&**c)),
                        _ => return Err(CommandError::WrongType),
                    },
                    None => colls.push(None),
                }
            }
            f(colls)?
        };
        let Changes { reply, ops, events } = changes;
        if !ops.is_empty() {
            let batch: Vec<Mutation<'_>> = ops.iter().map(|(k, op)| mutation(k, op)).collect();
            *lsn = (*lsn).max(self.commit(&mut locked, &batch, now, &[]));
            // A key the change emptied raises `del` right after its own event, in Redis's order (SMOVE:
            // srem, del, sadd).
            let mut emptied: Vec<&Bytes> = keys
                .iter()
                .chain(store)
                .zip(&hashes)
                .zip(existed)
                .filter(|((k, h), existed)| *existed && locked.peek(self.shard_of(**h)).find(**h, k).is_none())
                .map(|((k, _), _)| k)
                .collect();
            for (class, event, key) in &events {
                self.notify(*class, event, key);
                if let Some(i) = emptied.iter().position(|k| *k == key) {
                    self.notify(Class::Generic, "del", emptied.remove(i));
                }
            }
            for k in emptied {
                self.notify(Class::Generic, "del", k);
            }
        }
        Ok(reply)
    }

    /// Whether `key` holds a non-empty list or sorted set (blocking pops wait until one does).
    pub fn has_elements(&self, key: &[u8], now: u64) -> bool {
        let h = self.hash(key);
        let mut shard = self.lock(h);
        self.find_live(&mut shard, h, key, now)
            .is_some_and(|p| shard.entry(p).coll.as_ref().is_some_and(|c| !c.is_empty()))
    }
}
