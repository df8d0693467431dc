//! The one applier of key-value mutations: commands commit through it (`Keyspace::commit`), recovery and
//! replicas replay through it (`Keyspace::apply_batch`). It also keeps the keyspace's entries for streams
//! in step with the stream store: a mutation that removes or replaces a stream's entry removes the stream
//! (`StreamKeys::remove`), and the stream store's create, delete and rename records place, remove and move
//! the entry (`Keyspace::stream_created` and its kin).

use super::value::{Coll, Kind};
use super::{Keyspace, Locked, NO_EXPIRE, Shard};
use crate::mutation::{MAX_VALUE_BYTES, Mutation};

/// Whether an apply is a command's (its stream removals are logged) or a replay's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Command,
    Replay,
}

impl Keyspace {
    /// The stream `key` names goes with its entry: removed by DEL, expiry, eviction, or replaced by a
    /// value of another type. A command's removal is logged by the stream store before the mutation that
    /// caused it; a replay's is not (the log holds that record already, or this mutation implies it).
    fn drop_stream_entry(&self, shard: &Shard, hash: u64, key: &[u8], mode: Mode) -> u64 {
        if !shard.has_streams() {
            return 0;
        }
        match shard.find(hash, key) {
            Some(pos) if shard.entry(pos).kind() == Kind::Stream => {
                self.streams.get().map(|s| s.remove(key, mode == Mode::Command)).unwrap_or(0)
            }
            _ => 0,
        }
    }

    /// Applies one single-key mutation to the shard that owns its key (the shard is locked by the caller).
    /// Returns the LSN of a stream removal it logged (0: none).
    pub(crate) fn apply_local(&self, shard: &mut Shard, hash: u64, m: &Mutation<'_>, now: u64, mode: Mode) -> u64 {
        let mut lsn = 0;
        match *m {
            Mutation::Set { key, value, expire_at } => {
                lsn = self.drop_stream_entry(shard, hash, key, mode);
                shard.upsert(hash, key, value, expire_at, self.initial_access(now));
            }
            Mutation::Del { key } => {
                lsn = self.drop_stream_entry(shard, hash, key, mode);
                if let Some(pos) = shard.find(hash, key) {
                    shard.remove_at(pos, hash);
                }
            }
            Mutation::SetExpire { key, expire_at } => {
                if let Some(pos) = shard.find(hash, key) {
                    shard.set_expire(pos, expire_at);
                }
            }
            Mutation::Restore { key, kind, data, expire_at } => {
                let coll = Kind::from_u8(kind).and_then(|k| Coll::decode(k, data));
                match coll {
                    Some(c) => {
                        lsn = self.drop_stream_entry(shard, hash, key, mode);
                        if c.is_empty() {
                            if let Some(pos) = shard.find(hash, key) {
                                shard.remove_at(pos, hash);
                            }
                        } else {
                            shard.upsert_coll(hash, key, c, expire_at, self.initial_access(now));
                        }
                    }
                    None => tracing::error!(key = %String::from_utf8_lossy(key), "malformed Restore record skipped"),
                }
            }
            Mutation::SetRange { key, offset, data } => {
                let Some(end) = (offset as usize).checked_add(data.len()).filter(|&e| e <= MAX_VALUE_BYTES) else {
                    tracing::error!(key = %String::from_utf8_lossy(key), offset, "SetRange past the largest value skipped");
                    return 0;
                };
                match shard.find(hash, key) {
                    Some(pos) if shard.entry(pos).coll.is_none() => shard.set_range(pos, offset as usize, data),
                    _ => {
                        lsn = self.drop_stream_entry(shard, hash, key, mode);
                        let mut value = vec![0u8; end];
                        value[offset as usize..].copy_from_slice(data);
                        shard.upsert(hash, key, &value, NO_EXPIRE, self.initial_access(now));
                    }
                }
            }
            Mutation::FlushAll => unreachable!("FlushAll is applied to every shard by the caller"),
            ref elem => lsn = self.apply_element(shard, hash, elem, now, mode),
        }
        lsn
    }

    /// Applies a collection element mutation: creates the collection when the key is missing (or holds
    /// another type: the log only records changes the commands allowed), and removes it when it empties.
    fn apply_element(&self, shard: &mut Shard, hash: u64, m: &Mutation<'_>, now: u64, mode: Mode) -> u64 {
        let (key, kind) = match *m {
            Mutation::HSet { key, .. } | Mutation::HDel { key, .. } => (key, Kind::Hash),
            Mutation::LPut { key, .. } | Mutation::LDel { key, .. } | Mutation::LKeep { key, .. } => (key, Kind::List),
            Mutation::SAdd { key, .. } | Mutation::SRem { key, .. } => (key, Kind::Set),
            Mutation::ZSet { key, .. } | Mutation::ZRem { key, .. } => (key, Kind::ZSet),
            _ => unreachable!("queue and stream mutations are applied by their stores"),
        };
        let creates =
            matches!(m, Mutation::HSet { .. } | Mutation::LPut { .. } | Mutation::SAdd { .. } | Mutation::ZSet { .. });
        let mut lsn = 0;
        let pos = match shard.find(hash, key) {
            Some(p) if shard.entry(p).kind() == kind => p,
            Some(_) | None if !creates => return 0,
            _ => {
                lsn = self.drop_stream_entry(shard, hash, key, mode);
                shard.upsert_coll(hash, key, Coll::empty(kind), NO_EXPIRE, self.initial_access(now))
            }
        };
        shard.with_coll(pos, |c| match (c, m) {
            (Coll::Hash(h), Mutation::HSet { field, value, .. }) => h.set(field, value),
            (Coll::Hash(h), Mutation::HDel { field, .. }) => {
                h.del(field);
            }
            (Coll::List(l), Mutation::LPut { idx, value, .. }) => l.put(*idx, value),
            (Coll::List(l), Mutation::LDel { idx, .. }) => l.del(*idx),
            (Coll::List(l), Mutation::LKeep { lo, hi, .. }) => l.keep(*lo, *hi),
            (Coll::Set(s), Mutation::SAdd { member, .. }) => {
                s.add(member);
            }
            (Coll::Set(s), Mutation::SRem { member, .. }) => {
                s.remove(member);
            }
            (Coll::ZSet(z), Mutation::ZSet { member, score, .. }) => z.set(member, *score),
            (Coll::ZSet(z), Mutation::ZRem { member, .. }) => {
                z.remove(member);
            }
            _ => {}
        });
        if shard.entry(pos).coll.as_ref().is_some_and(|c| c.is_empty()) {
            shard.remove_at(pos, hash);
        }
        lsn
    }

    /// Empties every shard, streams included (they live in database 0). The entries are freed on a thread
    /// of their own (as Redis's lazy free), so a large keyspace is not freed under the shard locks or on
    /// the caller's thread.
    pub(crate) fn apply_flush(&self, locked: &mut Locked<'_>, mode: Mode) -> u64 {
        let lsn = match self.streams.get() {
            Some(s) if self.db() == 0 => s.flush(mode == Mode::Command),
            _ => 0,
        };
        let garbage: Vec<Vec<super::shard::Entry>> = locked.guards.iter_mut().map(|(_, shard)| shard.clear()).collect();
        let entries: usize = garbage.iter().map(Vec::len).sum();
        if entries < 10_000 {
            drop(garbage);
        } else if let Err(e) = std::thread::Builder::new().name("synap-free".into()).spawn(move || drop(garbage)) {
            // Freed here after all, once the thread could not start.
            tracing::warn!(error = %e, "cannot start a thread to free the flushed keyspace");
        }
        lsn
    }

    /// The replay applier: applies a decoded batch without logging it (recovery, replicas).
    pub fn apply_batch(&self, batch: &[Mutation<'_>]) {
        let now = self.now();
        let mut hashes = Vec::with_capacity(batch.len() * 2);
        let mut all = false;
        for m in batch {
            match *m {
                Mutation::FlushAll => all = true,
                ref single => hashes.push(self.hash(single_key(single))),
            }
        }
        let mut locked = if all { self.lock_all() } else { self.lock_many(hashes) };
        for m in batch {
            match *m {
                Mutation::FlushAll => {
                    self.apply_flush(&mut locked, Mode::Replay);
                }
                ref single => {
                    let h = self.hash(single_key(single));
                    let shard = locked.get(self.shard_of(h));
                    self.apply_local(shard, h, single, now, Mode::Replay);
                }
            }
        }
    }

    /// Replay of a stream's creation: its entry takes the key (replacing what a fuzzy snapshot left there).
    pub fn stream_created(&self, key: &[u8]) {
        let h = self.hash(key);
        let mut shard = self.lock(h);
        let now = self.now();
        match shard.find(h, key) {
            Some(pos) if shard.entry(pos).kind() == Kind::Stream => {}
            _ => {
                shard.upsert_coll(h, key, Coll::Stream, NO_EXPIRE, self.initial_access(now));
            }
        }
    }

    /// Replay of a stream's deletion: its entry goes (an entry of another type stays).
    pub fn stream_deleted(&self, key: &[u8]) {
        let h = self.hash(key);
        let mut shard = self.lock(h);
        if let Some(pos) = shard.find(h, key)
            && shard.entry(pos).kind() == Kind::Stream
        {
            shard.remove_at(pos, h);
        }
    }

    /// Replay of a stream's rename: its entry (and expiry) moves to `to`, replacing what was there.
    pub fn stream_renamed(&self, from: &[u8], to: &[u8]) {
        let (hf, ht) = (self.hash(from), self.hash(to));
        let mut locked = self.lock_many([hf, ht]);
        let now = self.now();
        let src = locked.get(self.shard_of(hf));
        let expire_at = match src.find(hf, from) {
            Some(pos) if src.entry(pos).kind() == Kind::Stream => src.remove_at(pos, hf).expire_at,
            _ => {
                // Nothing to move: a snapshot already holds the stream (and its expiry) under `to`.
                let dst = locked.get(self.shard_of(ht));
                if dst.find(ht, to).is_some_and(|pos| dst.entry(pos).kind() == Kind::Stream) {
                    return;
                }
                NO_EXPIRE
            }
        };
        let dst = locked.get(self.shard_of(ht));
        dst.upsert_coll(ht, to, Coll::Stream, expire_at, self.initial_access(now));
    }
}

/// The key of a key-value mutation.
pub(crate) fn single_key<'a>(m: &Mutation<'a>) -> &'a [u8] {
    match *m {
        Mutation::Set { key, .. }
        | Mutation::Del { key }
        | Mutation::SetExpire { key, .. }
        | Mutation::SetRange { key, .. } => key,
        Mutation::Restore { key, .. }
        | Mutation::HSet { key, .. }
        | Mutation::HDel { key, .. }
        | Mutation::LPut { key, .. }
        | Mutation::LDel { key, .. }
        | Mutation::LKeep { key, .. }
        | Mutation::SAdd { key, .. }
        | Mutation::SRem { key, .. }
        | Mutation::ZSet { key, .. }
        | Mutation::ZRem { key, .. } => key,
        Mutation::FlushAll => unreachable!("not a single-key mutation"),
        _ => unreachable!("queue mutations are applied by the queue store"),
    }
}
