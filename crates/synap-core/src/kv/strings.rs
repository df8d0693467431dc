//! String commands. Each reads under its shard lock(s), decides, and commits physical mutations (the
//! resulting value, absolute expiry) through [`Keyspace::commit`], so replay repeats exactly the state
//! change and not the computation.

use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::{Keyspace, NO_EXPIRE, Shard};
use crate::command::args::parse_i64;
use crate::command::{GetExpiry, KvCmd, Reply, SetArgs, SetCond, Ttl};
use crate::decimal::LongDouble;
use crate::error::{CommandError, Result};
use crate::mutation::Mutation;
use crate::notify::Class;

/// PFSELFTEST's rounds of register checks and the cardinality its estimate is checked up to (Redis: 1000
/// rounds, 10,000,000 elements; fewer here, so that the test takes well under a second).
const SELF_TEST_CYCLES: usize = 100;
const SELF_TEST_ELEMENTS: u64 = 1_000_000;

impl Keyspace {
    pub(super) fn check_key(&self, key: &[u8]) -> Result<()> {
        if key.len() > self.config.max_key_bytes {
            return Err(CommandError::KeyTooLarge { limit: self.config.max_key_bytes });
        }
        Ok(())
    }

    fn check_value(&self, len: usize) -> Result<()> {
        if len > self.config.max_value_bytes {
            return Err(CommandError::ValueTooLarge { limit: self.config.max_value_bytes });
        }
        Ok(())
    }

    /// Absolute expiry for a TTL; `Ok(None)` when it is already in the past.
    pub(super) fn resolve_ttl(ttl: Ttl, now: u64, name: &'static str) -> Result<Option<u64>> {
        let at = match ttl {
            Ttl::In(ms) => (now as i64).checked_add(ms).ok_or(CommandError::InvalidExpire(name))?,
            Ttl::At(ms) => ms,
        };
        Ok(if at <= now as i64 { None } else { Some(at as u64) })
    }

    /// Position of a live string `key`; WRONGTYPE when the key holds another type.
    pub(crate) fn find_str(&self, shard: &mut Shard, h: u64, key: &[u8], now: u64) -> Result<Option<usize>> {
        match self.find_live(shard, h, key, now) {
            Some(pos) if shard.entry(pos).coll.is_some() => Err(CommandError::WrongType),
            other => Ok(other),
        }
    }

    /// Runs a string command.
    pub(crate) fn string_cmd(&self, cmd: KvCmd, lsn: &mut u64, now: u64) -> Result<Reply> {
        match cmd {
            KvCmd::Get { key } => self.get(&key, now),
            KvCmd::Set(args) => self.set(&args, lsn, now),
            KvCmd::SetNx { key, value } => {
                let args = SetArgs { cond: SetCond::IfAbsent, ..SetArgs::new(key, value) };
                Ok(Reply::Int((self.set(&args, lsn, now)? == Reply::Ok) as i64))
            }
            KvCmd::GetDel { key } => self.getdel(&key, lsn, now),
            KvCmd::GetEx { key, expiry } => self.getex(&key, expiry, lsn, now),
            KvCmd::MGet { keys } => {
                Ok(Reply::Array(keys.iter().map(|k| self.get(k, now).unwrap_or(Reply::Nil)).collect()))
            }
            KvCmd::MSet { pairs, nx } => self.mset(&pairs, nx, lsn, now),
            KvCmd::IncrBy { key, by } => self.incr_by(&key, by, lsn, now),
            KvCmd::IncrByFloat { key, by } => self.incr_by_float(&key, &by, lsn, now),
            KvCmd::Append { key, value } => self.append(&key, &value, lsn, now),
            KvCmd::Strlen { key } => {
                let h = self.hash(&key);
                let mut shard = self.lock(h);
                let len = self.find_str(&mut shard, h, &key, now)?.map(|pos| shard.entry(pos).value().len());
                Ok(Reply::Int(len.unwrap_or(0) as i64))
            }
            KvCmd::SetRange { key, offset, value } => self.setrange(&key, offset, &value, lsn, now),
            KvCmd::GetRange { key, start, end } => self.getrange(&key, start, end, now),
            KvCmd::Lcs { a, b, options } => self.lcs(&a, &b, &options, now),
            KvCmd::SetBit { key, offset, bit } => self.setbit(&key, offset, bit, lsn, now),
            KvCmd::GetBit { key, offset } => self.getbit(&key, offset, now),
            KvCmd::BitCount { key, range } => self.bitcount(&key, &range, now),
            KvCmd::BitPos { key, bit, range } => self.bitpos(&key, bit, &range, now),
            KvCmd::BitOp { op, dest, keys } => self.bitop(op, &dest, &keys, lsn, now),
            KvCmd::BitField { key, ops, readonly } => self.bitfield(&key, &ops, readonly, lsn, now),
            KvCmd::PfAdd { key, elements } => self.pfadd(&key, &elements, lsn, now),
            KvCmd::PfCount { keys } => self.pfcount(&keys, lsn, now),
            KvCmd::PfMerge { dest, sources } => self.pfmerge(&dest, &sources, lsn, now),
            KvCmd::PfDebug { sub, word, key } => self.pfdebug(sub, &word, &key, lsn, now),
            KvCmd::PfSelfTest => super::hll::self_test(SELF_TEST_CYCLES, SELF_TEST_ELEMENTS)
                .map(|()| Reply::Ok)
                .map_err(CommandError::Raw),
        }
    }

    /// `f` of the string at `key`, read in place under its shard lock (`None`: no such key; WRONGTYPE
    /// for another type).
    pub(super) fn with_str<R>(&self, key: &[u8], now: u64, f: impl FnOnce(&[u8]) -> R) -> Result<Option<R>> {
        let h = self.hash(key);
        let mut shard = self.lock(h);
        let pos = self.find_str(&mut shard, h, key, now)?;
        Ok(pos.map(|p| f(shard.entry(p).value())))
    }

    /// SETRANGE: only the written bytes are logged (zero padding is implied by the record).
    fn setrange(&self, key: &[u8], offset: u64, data: &[u8], lsn: &mut u64, now: u64) -> Result<Reply> {
        self.check_key(key)?;
        let h = self.hash(key);
        let mut shard = self.lock(h);
        let len = self.find_str(&mut shard, h, key, now)?.map(|p| shard.entry(p).value().len());
        if data.is_empty() {
            // Nothing to write: nothing changes (a missing key is not created).
            return Ok(Reply::Int(len.unwrap_or(0) as i64));
        }
        let end = offset.saturating_add(data.len() as u64);
        if end > crate::mutation::MAX_VALUE_BYTES as u64 || end > self.config.max_value_bytes as u64 {
            return Err(CommandError::Invalid("string exceeds maximum allowed size (proto-max-bulk-len)".into()));
        }
        let m = Mutation::SetRange { key, offset, data };
        *lsn = self.commit_one(&mut shard, h, m, now, Some((Class::String, "setrange", key)));
        Ok(Reply::Int(len.unwrap_or(0).max(end as usize) as i64))
    }

    /// GETRANGE / SUBSTR, with Redis's index rules.
    fn getrange(&self, key: &[u8], start: i64, end: i64, now: u64) -> Result<Reply> {
        let part = self.with_str(key, now, |value| {
            let len = value.len() as i64;
            if start < 0 && end < 0 && start > end {
                return Bytes::new();
            }
            let start = if start < 0 { (len + start).max(0) } else { start };
            let end = if end < 0 { (len + end).max(0) } else { end.min(len - 1) };
            if start > end || len == 0 {
                return Bytes::new();
            }
            Bytes::copy_from_slice(&value[start as usize..=end as usize])
        })?;
        Ok(Reply::Bulk(part.unwrap_or_default()))
    }

    /// LCS: the subsequence, its length (LEN) or the matching ranges (IDX), as Redis 7 computes them.
    fn lcs(&self, ka: &[u8], kb: &[u8], options: &[Bytes], now: u64) -> Result<Reply> {
        let not_strings = || CommandError::Invalid("The specified keys must contain string values".into());
        // The lengths first: a table too large is refused before anything is copied.
        let la = self.with_str(ka, now, <[u8]>::len).map_err(|_| not_strings())?.unwrap_or(0);
        let lb = self.with_str(kb, now, <[u8]>::len).map_err(|_| not_strings())?.unwrap_or(0);
        super::lcs::check_size(la, lb)?;
        let copy = |k: &[u8]| self.with_str(k, now, Bytes::copy_from_slice).map_err(|_| not_strings());
        let a = copy(ka)?.unwrap_or_default();
        let b = copy(kb)?.unwrap_or_default();
        let (mut idx, mut len_only, mut with_len, mut min_len) = (false, false, false, 0u64);
        let mut i = 0;
        while i < options.len() {
            let o = &options[i];
            if o.eq_ignore_ascii_case(b"idx") {
                idx = true;
            } else if o.eq_ignore_ascii_case(b"len") {
                len_only = true;
            } else if o.eq_ignore_ascii_case(b"withmatchlen") {
                with_len = true;
            } else if o.eq_ignore_ascii_case(b"minmatchlen") && i + 1 < options.len() {
                min_len = parse_i64(&options[i + 1]).ok_or(CommandError::NotInteger)?.max(0) as u64;
                i += 1;
            } else {
                return Err(CommandError::Syntax);
            }
            i += 1;
        }
        if idx && len_only {
            return Err(CommandError::Invalid("If you want both the length and indexes, please just use IDX.".into()));
        }
        super::lcs::lcs(&a, &b, idx, len_only, with_len, min_len)
    }

    fn get(&self, key: &[u8], now: u64) -> Result<Reply> {
        let h = self.hash(key);
        let mut shard = self.lock(h);
        match self.touch_live(&mut shard, h, key, now) {
            Some(pos) if shard.entry(pos).coll.is_some() => Err(CommandError::WrongType),
            Some(pos) => {
                self.counters.hits.fetch_add(1, Ordering::Relaxed);
                Ok(Reply::Bulk(Bytes::copy_from_slice(shard.entry(pos).value())))
            }
            None => {
                self.counters.misses.fetch_add(1, Ordering::Relaxed);
                Ok(Reply::Nil)
            }
        }
    }

    fn set(&self, args: &SetArgs, lsn: &mut u64, now: u64) -> Result<Reply> {
        self.check_key(&args.key)?;
        self.check_value(args.value.len())?;
        if args.keep_ttl && args.ttl.is_some() {
            return Err(CommandError::Syntax);
        }
        if let Some(Ttl::At(ms)) = args.ttl
            && ms <= 0
        {
            return Err(CommandError::InvalidExpire("set"));
        }
        let ttl = match args.ttl {
            Some(t) => match Self::resolve_ttl(t, now, "set")? {
                Some(at) => Some(at),
                None if matches!(t, Ttl::In(_)) => return Err(CommandError::InvalidExpire("set")),
                None => Some(0), // EXAT/PXAT in the past: the key is set and gone at once
            },
            None => None,
        };
        let key = &args.key[..];
        let h = self.hash(key);
        let mut shard = self.lock(h);
        let pos = self.find_live(&mut shard, h, key, now);
        if args.get && pos.is_some_and(|p| shard.entry(p).coll.is_some()) {
            return Err(CommandError::WrongType);
        }
        let previous = match pos {
            Some(p) if args.get => Reply::Bulk(Bytes::copy_from_slice(shard.entry(p).value())),
            _ => Reply::Nil,
        };
        let proceed = match args.cond {
            SetCond::Always => true,
            SetCond::IfAbsent => pos.is_none(),
            SetCond::IfPresent => pos.is_some(),
        };
        if !proceed {
            return Ok(if args.get { previous } else { Reply::Nil });
        }
        let expire_at = match (ttl, pos) {
            (Some(0), _) => {
                // Already expired: the net effect is a deletion.
                if pos.is_some() {
                    let event = (Class::Generic, "del", key);
                    *lsn = self.commit_one(&mut shard, h, Mutation::Del { key }, now, Some(event));
                }
                return Ok(if args.get { previous } else { Reply::Ok });
            }
            (Some(at), _) => at,
            (None, Some(p)) if args.keep_ttl => shard.entry(p).expire_at,
            (None, _) => NO_EXPIRE,
        };
        let set = Mutation::Set { key, value: &args.value, expire_at };
        *lsn = self.commit_one(&mut shard, h, set, now, Some((Class::String, "set", key)));
        if ttl.is_some() {
            self.notify(Class::Generic, "expire", key);
        }
        Ok(if args.get { previous } else { Reply::Ok })
    }

    fn getdel(&self, key: &[u8], lsn: &mut u64, now: u64) -> Result<Reply> {
        let h = self.hash(key);
        let mut shard = self.lock(h);
        match self.find_str(&mut shard, h, key, now)? {
            Some(pos) => {
                let value = Bytes::copy_from_slice(shard.entry(pos).value());
                *lsn = self.commit_one(&mut shard, h, Mutation::Del { key }, now, Some((Class::Generic, "del", key)));
                Ok(Reply::Bulk(value))
            }
            None => Ok(Reply::Nil),
        }
    }

    /// GETEX: the value, with its expiry changed as asked (a time in the past deletes the key).
    fn getex(&self, key: &[u8], expiry: GetExpiry, lsn: &mut u64, now: u64) -> Result<Reply> {
        let at = match expiry {
            GetExpiry::Set(ttl) => Some(Self::resolve_ttl(ttl, now, "getex")?),
            _ => None,
        };
        let h = self.hash(key);
        let mut shard = self.lock(h);
        let Some(pos) = self.find_str(&mut shard, h, key, now)? else { return Ok(Reply::Nil) };
        let value = Bytes::copy_from_slice(shard.entry(pos).value());
        let current = shard.entry(pos).expire_at;
        let (m, event) = match (expiry, at) {
            (GetExpiry::Keep, _) => return Ok(Reply::Bulk(value)),
            (GetExpiry::Persist, _) if current == NO_EXPIRE => return Ok(Reply::Bulk(value)),
            (GetExpiry::Persist, _) => (Mutation::SetExpire { key, expire_at: NO_EXPIRE }, "persist"),
            (GetExpiry::Set(_), Some(Some(expire_at))) => (Mutation::SetExpire { key, expire_at }, "expire"),
            (GetExpiry::Set(_), _) => (Mutation::Del { key }, "del"),
        };
        *lsn = self.commit_one(&mut shard, h, m, now, Some((Class::Generic, event, key)));
        Ok(Reply::Bulk(value))
    }

    fn mset(&self, pairs: &[(Bytes, Bytes)], nx: bool, lsn: &mut u64, now: u64) -> Result<Reply> {
        let mut total = 0usize;
        for (k, v) in pairs {
            self.check_key(k)?;
            self.check_value(v.len())?;
            total += k.len() + v.len() + 32;
        }
        // One MSET is one log record; keep it within what a record may hold.
        if total > crate::mutation::MAX_BATCH_BYTES / 2 {
            return Err(CommandError::Invalid("MSET payload exceeds 512 MB; split it".into()));
        }
        let hashes: Vec<u64> = pairs.iter().map(|(k, _)| self.hash(k)).collect();
        let mut locked = self.lock_many(hashes.iter().copied());
        if nx {
            for ((k, _), &h) in pairs.iter().zip(&hashes) {
                if self.find_live(locked.get(self.shard_of(h)), h, k, now).is_some() {
                    return Ok(Reply::Int(0));
                }
            }
        }
        let batch: Vec<Mutation<'_>> =
            pairs.iter().map(|(k, v)| Mutation::Set { key: k, value: v, expire_at: NO_EXPIRE }).collect();
        let events: Vec<_> = pairs.iter().map(|(k, _)| (Class::String, "set", &k[..])).collect();
        *lsn = self.commit(&mut locked, &batch, now, &events);
        Ok(if nx { Reply::Int(1) } else { Reply::Ok })
    }

    fn incr_by(&self, key: &[u8], by: i64, lsn: &mut u64, now: u64) -> Result<Reply> {
        self.check_key(key)?;
        let h = self.hash(key);
        let mut shard = self.lock(h);
        let (current, expire_at) = match self.find_str(&mut shard, h, key, now)? {
            Some(pos) => {
                let e = shard.entry(pos);
                (parse_i64(e.value()).ok_or(CommandError::NotInteger)?, e.expire_at)
            }
            None => (0, NO_EXPIRE),
        };
        let next = current.checked_add(by).ok_or(CommandError::Overflow)?;
        let mut buf = itoa::Buffer::new();
        let value = buf.format(next).as_bytes();
        let m = Mutation::Set { key, value, expire_at };
        *lsn = self.commit_one(&mut shard, h, m, now, Some((Class::String, "incrby", key)));
        Ok(Reply::Int(next))
    }

    fn incr_by_float(&self, key: &[u8], by: &[u8], lsn: &mut u64, now: u64) -> Result<Reply> {
        self.check_key(key)?;
        let h = self.hash(key);
        let mut shard = self.lock(h);
        // Redis's order: the type, the current value, then the increment.
        let (current, expire_at) = match self.find_str(&mut shard, h, key, now)? {
            Some(pos) => {
                let e = shard.entry(pos);
                (LongDouble::parse(e.value()).ok_or(CommandError::NotFloat)?, e.expire_at)
            }
            None => (LongDouble::ZERO, NO_EXPIRE),
        };
        let by = LongDouble::parse(by).ok_or(CommandError::NotFloat)?;
        let next = current.checked_add(by).ok_or(CommandError::NanOrInfinity)?;
        let text = Bytes::from(next.to_text());
        let m = Mutation::Set { key, value: &text, expire_at };
        *lsn = self.commit_one(&mut shard, h, m, now, Some((Class::String, "incrbyfloat", key)));
        Ok(Reply::Decimal(text))
    }

    fn append(&self, key: &[u8], tail: &[u8], lsn: &mut u64, now: u64) -> Result<Reply> {
        self.check_key(key)?;
        let h = self.hash(key);
        let mut shard = self.lock(h);
        // Only the appended bytes are logged (a SetRange at the old end), not the whole value again.
        let m = match self.find_str(&mut shard, h, key, now)? {
            Some(pos) => {
                let len = shard.entry(pos).value().len();
                self.check_value(len + tail.len())?;
                Mutation::SetRange { key, offset: len as u64, data: tail }
            }
            None => {
                self.check_value(tail.len())?;
                Mutation::Set { key, value: tail, expire_at: NO_EXPIRE }
            }
        };
        let len = match m {
            Mutation::SetRange { offset, .. } => offset as usize + tail.len(),
            _ => tail.len(),
        };
        *lsn = self.commit_one(&mut shard, h, m, now, Some((Class::String, "append", key)));
        Ok(Reply::Int(len as i64))
    }
}
