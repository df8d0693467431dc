//! Commands on keys of any type: DEL, EXISTS, EXPIRE and its kin, TYPE, RENAME, OBJECT, KEYS, SCAN,
//! RANDOMKEY, DBSIZE, FLUSHALL. A stream is a key like any other here: its entry in the keyspace carries its
//! name, type and expiry, and removing or renaming the entry removes or renames the stream (see `apply`).

use bytes::Bytes;
use rand::Rng;

use super::value::Kind;
use super::{Keyspace, NO_EXPIRE};
use crate::command::{ExpireCond, Expiry, KeysCmd, ObjectInfo, Reply, Ttl};
use crate::error::{CommandError, Result};
use crate::mutation::Mutation;
use crate::notify::Class;

/// The record that sets `key` to a value moved whole (see [`Keyspace::whole_value`]): a string's bytes,
/// or a collection of `kind`.
pub(super) fn whole_record<'a>(key: &'a [u8], kind: Option<u8>, value: &'a [u8], expire_at: u64) -> Mutation<'a> {
    match kind {
        None => Mutation::Set { key, value, expire_at },
        Some(kind) => Mutation::Restore { key, kind, data: value, expire_at },
    }
}

fn cmd_name(cmd: &KeysCmd) -> &'static str {
    match cmd {
        KeysCmd::Select { .. } => "SELECT",
        KeysCmd::Move { .. } => "MOVE",
        KeysCmd::SwapDb { .. } => "SWAPDB",
        _ => "COPY ... DB",
    }
}

impl Keyspace {
    /// Runs a command on keys. KEYS and SCAN of a whole keyspace go through [`Keyspace::keys`] and
    /// [`Keyspace::scan`] when the caller walks shard by shard (the engine's gate).
    pub(crate) fn keys_cmd(&self, cmd: KeysCmd, lsn: &mut u64, now: u64) -> Result<Reply> {
        match cmd {
            KeysCmd::Del { keys } => Ok(self.del(&keys, lsn, now)),
            KeysCmd::Exists { keys } => {
                let mut n = 0;
                for k in &keys {
                    let h = self.hash(k);
                    let mut shard = self.lock(h);
                    n += self.find_live(&mut shard, h, k, now).is_some() as i64;
                }
                Ok(Reply::Int(n))
            }
            KeysCmd::Expire { key, ttl, cond, name } => self.expire(&key, ttl, cond, name, lsn, now),
            KeysCmd::Ttl { key, unit } => Ok(Reply::Expiry(match self.expire_at(&key, now) {
                None => Expiry::Missing,
                Some(NO_EXPIRE) => Expiry::Persistent,
                Some(at) => Expiry::Remaining { ms: at - now, unit },
            })),
            KeysCmd::ExpireTime { key, unit } => Ok(Reply::Expiry(match self.expire_at(&key, now) {
                None => Expiry::Missing,
                Some(NO_EXPIRE) => Expiry::Persistent,
                Some(at) => Expiry::At { ms: at, unit },
            })),
            KeysCmd::Persist { key } => {
                let h = self.hash(&key);
                let mut shard = self.lock(h);
                match self.find_live(&mut shard, h, &key, now) {
                    Some(pos) if shard.entry(pos).expire_at != NO_EXPIRE => {
                        let m = Mutation::SetExpire { key: &key, expire_at: NO_EXPIRE };
                        *lsn = self.commit_one(&mut shard, h, m, now, Some((Class::Generic, "persist", &key)));
                        Ok(Reply::Int(1))
                    }
                    _ => Ok(Reply::Int(0)),
                }
            }
            KeysCmd::Type { key } => {
                let h = self.hash(&key);
                let mut shard = self.lock(h);
                Ok(Reply::Status(match self.find_live(&mut shard, h, &key, now) {
                    Some(pos) => shard.entry(pos).kind().name(),
                    None => "none",
                }))
            }
            KeysCmd::Rename { from, to, nx } => self.rename(&from, &to, nx, lsn, now),
            KeysCmd::Object { info, key } => self.object(info, &key, now),
            KeysCmd::Keys { pattern } => {
                Ok(Reply::Array(self.keys(&pattern, now, None)?.into_iter().map(Reply::Bulk).collect()))
            }
            KeysCmd::Scan(args) => {
                let (cursor, keys) = self.scan(&args, now, None)?;
                Ok(Reply::Scan { cursor, items: keys.into_iter().map(Reply::Bulk).collect() })
            }
            KeysCmd::RandomKey => Ok(self.random_key(now)),
            KeysCmd::DbSize => Ok(Reply::Int(self.len() as i64)),
            KeysCmd::FlushAll | KeysCmd::FlushDb => {
                self.flush_db(lsn, now, true);
                Ok(Reply::Ok)
            }
            KeysCmd::Copy { from, to, replace, db: None } => self.copy(&from, &to, replace, lsn, now),
            KeysCmd::Select { .. }
            | KeysCmd::Move { .. }
            | KeysCmd::SwapDb { .. }
            | KeysCmd::Copy { db: Some(_), .. } => {
                Err(CommandError::Internal(format!("{} is the engine's, over its databases", cmd_name(&cmd))))
            }
            KeysCmd::Sort(args) => self.sort(&args, lsn, now),
            KeysCmd::Dump { key } => self.dump(&key, now),
            KeysCmd::Restore { key, ttl, payload, opts } => self.restore(&key, &ttl, &payload, opts, lsn, now),
            KeysCmd::Touch { keys } => {
                let mut n = 0;
                for k in &keys {
                    let h = self.hash(k);
                    let mut shard = self.lock(h);
                    n += self.touch_live(&mut shard, h, k, now).is_some() as i64;
                }
                Ok(Reply::Int(n))
            }
        }
    }

    /// A key's value in the form a record moves it whole: a string's bytes (`None` kind) or a
    /// collection's encoding; refused past what one record may carry.
    pub(super) fn whole_value(e: &super::shard::Entry, what: &str) -> Result<(Option<u8>, Vec<u8>)> {
        let (kind, value) = match &e.coll {
            None => (None, e.value().to_vec()),
            Some(c) => (Some(c.kind() as u8), c.encode()),
        };
        if value.len() > crate::mutation::MAX_RESTORE_BYTES {
            return Err(CommandError::Invalid(format!(
                "{what} of a value of {} bytes encoded; a value moved whole is limited to {} bytes",
                value.len(),
                crate::mutation::MAX_RESTORE_BYTES
            )));
        }
        Ok((kind, value))
    }

    /// COPY: `to` gets `from`'s value and expiry (replacing what it held only with REPLACE).
    fn copy(&self, from: &[u8], to: &[u8], replace: bool, lsn: &mut u64, now: u64) -> Result<Reply> {
        self.check_key(to)?;
        if from == to {
            return Err(CommandError::Invalid("source and destination objects are the same".into()));
        }
        let (hf, ht) = (self.hash(from), self.hash(to));
        let mut locked = self.lock_many([hf, ht]);
        // The target first: its lazy expiry may move entries of the shard, the source's position with them.
        let dst_exists = self.find_live(locked.get(self.shard_of(ht)), ht, to, now).is_some();
        let Some(src_pos) = self.find_live(locked.get(self.shard_of(hf)), hf, from, now) else {
            return Ok(Reply::Int(0));
        };
        if !replace && dst_exists {
            return Ok(Reply::Int(0));
        }
        let e = locked.peek(self.shard_of(hf)).entry(src_pos);
        if e.kind() == Kind::Stream {
            return Err(CommandError::Invalid(
                "COPY of a stream is not supported (a stream's events live in its own files)".into(),
            ));
        }
        let expire_at = e.expire_at;
        let (kind, value) = Self::whole_value(e, "COPY")?;
        let set = whole_record(to, kind, &value, expire_at);
        *lsn = self.commit(&mut locked, &[set], now, &[(Class::Generic, "copy_to", to)]);
        Ok(Reply::Int(1))
    }

    /// MOVE: `key` goes to database `dst` (the caller runs alone) with its expiry, unless `dst` holds a
    /// key of its name. `Ok(false)` when nothing moved.
    pub(crate) fn move_to(&self, key: &[u8], dst: &Keyspace, lsn: &mut u64, now: u64) -> Result<bool> {
        let h = self.hash(key);
        let mut shard = self.lock(h);
        let Some(pos) = self.find_live(&mut shard, h, key, now) else { return Ok(false) };
        let e = shard.entry(pos);
        if e.kind() == Kind::Stream {
            return Err(CommandError::Invalid("a stream cannot move to another database in Synap".into()));
        }
        let expire_at = e.expire_at;
        let (kind, value) = Self::whole_value(e, "MOVE")?;
        let hd = dst.hash(key);
        let mut dshard = dst.lock(hd);
        if dst.find_live(&mut dshard, hd, key, now).is_some() {
            return Ok(false);
        }
        let del = self.commit_one(&mut shard, h, Mutation::Del { key }, now, Some((Class::Generic, "move_from", key)));
        let set = whole_record(key, kind, &value, expire_at);
        let put = dst.commit_one(&mut dshard, hd, set, now, Some((Class::Generic, "move_to", key)));
        *lsn = (*lsn).max(del).max(put);
        Ok(true)
    }

    /// COPY ... DB: `to` of database `dst` gets `from`'s value and expiry (replacing what it held only
    /// with REPLACE); the caller runs alone. `Ok(false)` when nothing was copied.
    pub(crate) fn copy_to(
        &self,
        from: &[u8],
        dst: &Keyspace,
        to: &[u8],
        replace: bool,
        lsn: &mut u64,
        now: u64,
    ) -> Result<bool> {
        dst.check_key(to)?;
        let h = self.hash(from);
        let mut shard = self.lock(h);
        let Some(pos) = self.find_live(&mut shard, h, from, now) else { return Ok(false) };
        let e = shard.entry(pos);
        if e.kind() == Kind::Stream {
            return Err(CommandError::Invalid(
                "COPY of a stream is not supported (a stream's events live in its own files)".into(),
            ));
        }
        let expire_at = e.expire_at;
        let (kind, value) = Self::whole_value(e, "COPY")?;
        drop(shard);
        let hd = dst.hash(to);
        let mut dshard = dst.lock(hd);
        if !replace && dst.find_live(&mut dshard, hd, to, now).is_some() {
            return Ok(false);
        }
        let set = whole_record(to, kind, &value, expire_at);
        *lsn = (*lsn).max(dst.commit_one(&mut dshard, hd, set, now, Some((Class::Generic, "copy_to", to))));
        Ok(true)
    }

    /// FLUSHDB (and FLUSHALL's part here): every key goes; tracking clients are told when `tell` (once
    /// per command).
    /// As Redis, the keys watched here that exist are the ones that changed (WATCH of a missing key
    /// survives a flush).
    pub(crate) fn flush_db(&self, lsn: &mut u64, now: u64, tell: bool) {
        let db = self.db();
        let watched = self.watch.watched_in(db);
        let mut locked = self.lock_all();
        let live: Vec<Bytes> = watched
            .into_iter()
            .filter(|k| {
                let h = self.hash(k);
                let shard = locked.peek(self.shard_of(h));
                shard.find(h, k).is_some_and(|pos| !shard.entry(pos).is_expired(now))
            })
            .collect();
        *lsn = (*lsn).max(self.commit(&mut locked, &[Mutation::FlushAll], now, &[]));
        for k in live {
            self.watch.touch_watchers(db, &k);
        }
        if tell && self.watch.tracking.active() {
            self.watch.tracking.flushed();
        }
    }

    /// Whether `key` is live here (an expired one is reclaimed on the way).
    pub(crate) fn exists_live(&self, key: &[u8], now: u64) -> bool {
        let h = self.hash(key);
        let mut shard = self.lock(h);
        self.find_live(&mut shard, h, key, now).is_some()
    }

    /// A live key's absolute expiry (`NO_EXPIRE`: none); `None` when it is missing.
    fn expire_at(&self, key: &[u8], now: u64) -> Option<u64> {
        let h = self.hash(key);
        let mut shard = self.lock(h);
        self.find_live(&mut shard, h, key, now).map(|pos| shard.entry(pos).expire_at)
    }

    /// DEL: each live key given goes (a stream with its events), in one batch.
    fn del(&self, keys: &[Bytes], lsn: &mut u64, now: u64) -> Reply {
        let hashes: Vec<u64> = keys.iter().map(|k| self.hash(k)).collect();
        let mut locked = self.lock_many(hashes.iter().copied());
        let mut batch = Vec::new();
        let mut seen = hashbrown::HashSet::with_capacity(keys.len());
        for (k, &h) in keys.iter().zip(&hashes) {
            let shard = locked.get(self.shard_of(h));
            if seen.insert(&k[..]) && self.find_live(shard, h, k, now).is_some() {
                batch.push(Mutation::Del { key: k });
            }
        }
        if !batch.is_empty() {
            let events: Vec<_> = batch.iter().map(|m| (Class::Generic, "del", super::apply::single_key(m))).collect();
            *lsn = self.commit(&mut locked, &batch, now, &events);
        }
        Reply::Int(batch.len() as i64)
    }

    fn expire(
        &self,
        key: &[u8],
        ttl: Ttl,
        cond: ExpireCond,
        name: &'static str,
        lsn: &mut u64,
        now: u64,
    ) -> Result<Reply> {
        let at = Self::resolve_ttl(ttl, now, name)?;
        let h = self.hash(key);
        let mut shard = self.lock(h);
        let Some(pos) = self.find_live(&mut shard, h, key, now) else {
            return Ok(Reply::Int(0));
        };
        let current = shard.entry(pos).expire_at;
        let new = at.unwrap_or(now); // in the past: compare as "now"
        let allowed = match cond {
            ExpireCond::Always => true,
            ExpireCond::Nx => current == NO_EXPIRE,
            ExpireCond::Xx => current != NO_EXPIRE,
            ExpireCond::Gt => current != NO_EXPIRE && new > current,
            ExpireCond::Lt => current == NO_EXPIRE || new < current,
        };
        if !allowed {
            return Ok(Reply::Int(0));
        }
        let (m, event) = match at {
            Some(expire_at) => (Mutation::SetExpire { key, expire_at }, "expire"),
            None => (Mutation::Del { key }, "del"),
        };
        *lsn = self.commit_one(&mut shard, h, m, now, Some((Class::Generic, event, key)));
        Ok(Reply::Int(1))
    }

    fn rename(&self, from: &[u8], to: &[u8], nx: bool, lsn: &mut u64, now: u64) -> Result<Reply> {
        self.check_key(to)?;
        let (hf, ht) = (self.hash(from), self.hash(to));
        let mut locked = self.lock_many([hf, ht]);
        // The target first: its lazy expiry may move entries of the shard, the source's position with them.
        let dst_exists = self.find_live(locked.get(self.shard_of(ht)), ht, to, now).is_some();
        let Some(src_pos) = self.find_live(locked.get(self.shard_of(hf)), hf, from, now) else {
            return Err(CommandError::NoSuchKey);
        };
        if nx && dst_exists {
            return Ok(Reply::Int(0));
        }
        let done = if nx { Reply::Int(1) } else { Reply::Ok };
        if from == to {
            return Ok(done);
        }
        let events = [(Class::Generic, "rename_from", from), (Class::Generic, "rename_to", to)];
        let src = locked.peek(self.shard_of(hf));
        let e = src.entry(src_pos);
        if e.kind() == Kind::Stream {
            // The stream store renames the stream (its record moves the entry on replay); the entry moves
            // here, with its expiry.
            // One record: its replay replaces what `to` holds, as this does (a stream under `to` is
            // replaced by the stream store, any other value by the entry moved below).
            let expire_at = e.expire_at;
            let streams = self.streams.get().ok_or_else(|| CommandError::Internal("no stream store".into()))?;
            *lsn = (*lsn).max(streams.rename(from, to)?);
            let src = locked.get(self.shard_of(hf));
            let pos = src.find(hf, from).expect("found above under the same lock");
            src.remove_at(pos, hf);
            let dst = locked.get(self.shard_of(ht));
            dst.upsert_coll(ht, to, super::Coll::Stream, expire_at, self.initial_access(now));
            self.watch.touch(self.db(), from);
            self.watch.touch(self.db(), to);
            for (class, event, key) in events {
                self.notify(class, event, key);
            }
            return Ok(done);
        }
        // Physical form: the source goes, the target gets its value and expiry (see `mutation`).
        let expire_at = e.expire_at;
        let (kind, value) = Self::whole_value(e, "RENAME")?;
        let set = whole_record(to, kind, &value, expire_at);
        *lsn = self.commit(&mut locked, &[Mutation::Del { key: from }, set], now, &events);
        Ok(done)
    }

    /// OBJECT ENCODING, IDLETIME, FREQ, REFCOUNT; nil for a missing key.
    fn object(&self, info: ObjectInfo, key: &[u8], now: u64) -> Result<Reply> {
        let h = self.hash(key);
        let mut shard = self.lock(h);
        let Some(pos) = self.find_live(&mut shard, h, key, now) else { return Ok(Reply::Nil) };
        let e = shard.entry(pos);
        let policy = self.limits.policy();
        Ok(match info {
            ObjectInfo::Encoding => Reply::bulk(match &e.coll {
                Some(c) => c.encoding(),
                None if e.value().len() <= 20 && crate::command::args::parse_i64(e.value()).is_some() => "int",
                None if e.value().len() <= 44 => "embstr",
                None => "raw",
            }),
            ObjectInfo::RefCount => Reply::Int(1),
            ObjectInfo::IdleTime => Reply::Int(policy.idle_secs(e.access, now).ok_or_else(|| {
                CommandError::Invalid(
                    "An LFU maxmemory policy is selected, idle time not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.".into(),
                )
            })? as i64),
            ObjectInfo::Freq => Reply::Int(policy.freq(e.access, now).ok_or_else(|| {
                CommandError::Invalid(
                    "An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.".into(),
                )
            })? as i64),
        })
    }

    fn random_key(&self, now: u64) -> Reply {
        let mut rng = rand::rng();
        let shards = self.shard_count();
        // A bounded number of tries: an almost empty keyspace of expired keys answers nil.
        for _ in 0..shards * 4 {
            let shard = self.lock_index(rng.random_range(0..shards));
            if shard.len() == 0 {
                continue;
            }
            let e = shard.entry(rng.random_range(0..shard.len()));
            if !e.is_expired(now) {
                return Reply::Bulk(Bytes::copy_from_slice(e.key()));
            }
        }
        // A sparse keyspace (a few keys among many shards) can miss every try: walk the shards from a
        // random one, so that nil means there is no live key, as in Redis. One shard locked at a time.
        let first = rng.random_range(0..shards);
        for i in 0..shards {
            let shard = self.lock_index((first + i) % shards);
            let n = shard.len();
            if n == 0 {
                continue;
            }
            let start = rng.random_range(0..n);
            if let Some(e) = (0..n).map(|j| shard.entry((start + j) % n)).find(|e| !e.is_expired(now)) {
                return Reply::Bulk(Bytes::copy_from_slice(e.key()));
            }
        }
        Reply::Nil
    }

    /// Whether `key` holds a stream (`false`: nothing); WRONGTYPE when it holds another type.
    pub fn check_stream_key(&self, key: &[u8], now: u64) -> Result<bool> {
        let h = self.hash(key);
        let mut shard = self.lock(h);
        match self.find_live(&mut shard, h, key, now) {
            None => Ok(false),
            Some(pos) if shard.entry(pos).kind() == Kind::Stream => Ok(true),
            Some(_) => Err(CommandError::WrongType),
        }
    }

    /// Creates a stream's entry at `key` when it holds nothing: `install` (which puts the stream in the
    /// stream store and logs its creation) runs with the key's shard locked. `Ok(false)` when a stream is
    /// there already; WRONGTYPE when another type is.
    pub(crate) fn create_stream_key(&self, key: &[u8], now: u64, install: impl FnOnce()) -> Result<bool> {
        let h = self.hash(key);
        let mut shard = self.lock(h);
        match self.find_live(&mut shard, h, key, now) {
            Some(pos) if shard.entry(pos).kind() == Kind::Stream => Ok(false),
            Some(_) => Err(CommandError::WrongType),
            None => {
                install();
                shard.upsert_coll(h, key, super::Coll::Stream, NO_EXPIRE, self.initial_access(now));
                Ok(true)
            }
        }
    }

    /// Deletes the stream at `key` (Synap's stream delete): `false` when the key holds no stream.
    pub(crate) fn delete_stream(&self, key: &[u8], lsn: &mut u64, now: u64) -> bool {
        let h = self.hash(key);
        let mut shard = self.lock(h);
        match self.find_live(&mut shard, h, key, now) {
            Some(pos) if shard.entry(pos).kind() == Kind::Stream => {
                let event = (Class::Generic, "del", key);
                *lsn = (*lsn).max(self.commit_one(&mut shard, h, Mutation::Del { key }, now, Some(event)));
                true
            }
            _ => false,
        }
    }

    /// A key's absolute expiry as stored (0: none, or no such key), expired or not.
    pub fn expiry_of(&self, key: &[u8]) -> u64 {
        let h = self.hash(key);
        let shard = self.lock(h);
        shard.find(h, key).map(|pos| shard.entry(pos).expire_at).unwrap_or(NO_EXPIRE)
    }
}
