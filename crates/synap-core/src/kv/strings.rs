//! String and key commands. Each reads under its shard lock(s), decides, and commits physical mutations
//! (the resulting value, absolute expiry) through [`Keyspace::commit`], so replay repeats exactly the
//! state change and not the computation.

use std::sync::atomic::Ordering;

use bytes::Bytes;
use rand::Rng;

use super::{Keyspace, NO_EXPIRE, Shard};
use crate::command::{ExpireCond, Reply, SetArgs, SetCond, TimeUnit, Ttl};
use crate::error::{CommandError, Result};
use crate::mutation::Mutation;

/// Parses a value the way Redis's `string2ll` does: optional `-`, digits, no spaces, no `+`, at most 20
/// characters, no leading zeros (except `0` itself).
pub fn parse_i64(b: &[u8]) -> Option<i64> {
    if b.is_empty() || b.len() > 20 {
        return None;
    }
    let (neg, digits) = if b[0] == b'-' { (true, &b[1..]) } else { (false, b) };
    if digits.is_empty() || (digits[0] == b'0' && (digits.len() > 1 || neg)) {
        return None;
    }
    let mut v: i64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        let d = (c - b'0') as i64;
        v = v.checked_mul(10)?;
        v = if neg { v.checked_sub(d)? } else { v.checked_add(d)? };
    }
    Some(v)
}

/// Parses a float as Redis does for INCRBYFLOAT: no spaces, no NaN.
pub fn parse_f64(b: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(b).ok()?;
    if s.is_empty() || s.trim() != s {
        return None;
    }
    let v: f64 = s.parse().ok()?;
    (!v.is_nan()).then_some(v)
}

/// Formats a float as INCRBYFLOAT replies: shortest round-trip form, no exponent, no trailing `.0`.
pub fn format_f64(v: f64) -> String {
    let s = format!("{v}");
    s.strip_suffix(".0").map(str::to_string).unwrap_or(s)
}

impl Keyspace {
    fn check_key(&self, key: &[u8]) -> Result<()> {
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
    fn resolve_ttl(ttl: Ttl, now: u64, name: &'static str) -> Result<Option<u64>> {
        let at = match ttl {
            Ttl::In(ms) => (now as i64).checked_add(ms).ok_or(CommandError::InvalidExpire(name))?,
            Ttl::At(ms) => ms,
        };
        Ok(if at <= now as i64 { None } else { Some(at as u64) })
    }

    /// Position of a live string `key`; WRONGTYPE when the key holds a collection.
    pub(crate) fn find_str(&self, shard: &mut Shard, h: u64, key: &[u8], now: u64) -> Result<Option<usize>> {
        match self.find_live(shard, h, key, now) {
            Some(pos) if shard.entry(pos).coll.is_some() => Err(CommandError::WrongType),
            other => Ok(other),
        }
    }

    pub(crate) fn get(&self, key: &[u8], now: u64) -> Result<Reply> {
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

    pub(crate) fn set(&self, args: &SetArgs, lsn: &mut u64, now: u64) -> Result<Reply> {
        self.check_key(&args.key)?;
        self.check_value(args.value.len())?;
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
        let h = self.hash(&args.key);
        let mut shard = self.lock(h);
        let pos = self.find_live(&mut shard, h, &args.key, now);
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
                    *lsn = self.commit_one(&mut shard, h, Mutation::Del { key: &args.key }, now);
                }
                return Ok(if args.get { previous } else { Reply::Ok });
            }
            (Some(at), _) => at,
            (None, Some(p)) if args.keep_ttl => shard.entry(p).expire_at,
            (None, _) => NO_EXPIRE,
        };
        *lsn = self.commit_one(&mut shard, h, Mutation::Set { key: &args.key, value: &args.value, expire_at }, now);
        Ok(if args.get { previous } else { Reply::Ok })
    }

    pub(crate) fn getdel(&self, key: &[u8], lsn: &mut u64, now: u64) -> Result<Reply> {
        let h = self.hash(key);
        let mut shard = self.lock(h);
        match self.find_str(&mut shard, h, key, now)? {
            Some(pos) => {
                let value = Bytes::copy_from_slice(shard.entry(pos).value());
                *lsn = self.commit_one(&mut shard, h, Mutation::Del { key }, now);
                Ok(Reply::Bulk(value))
            }
            None => Ok(Reply::Nil),
        }
    }

    /// DEL; the keys actually deleted are added to `deleted`.
    pub(crate) fn del(&self, keys: &[Bytes], lsn: &mut u64, now: u64, deleted: &mut Vec<Bytes>) -> Reply {
        let hashes: Vec<u64> = keys.iter().map(|k| self.hash(k)).collect();
        let mut locked = self.lock_many(hashes.iter().copied());
        let mut batch = Vec::new();
        let mut seen = hashbrown::HashSet::with_capacity(keys.len());
        for (k, &h) in keys.iter().zip(&hashes) {
            let shard = locked.get(self.shard_of(h));
            if seen.insert(&k[..]) && self.find_live(shard, h, k, now).is_some() {
                batch.push(Mutation::Del { key: k });
                deleted.push(k.clone());
            }
        }
        if !batch.is_empty() {
            *lsn = self.commit(&mut locked, &batch, now);
        }
        Reply::Int(batch.len() as i64)
    }

    pub(crate) fn exists(&self, keys: &[Bytes], now: u64) -> Reply {
        let mut n = 0;
        for k in keys {
            let h = self.hash(k);
            let mut shard = self.lock(h);
            if self.find_live(&mut shard, h, k, now).is_some() {
                n += 1;
            }
        }
        Reply::Int(n)
    }

    pub(crate) fn mget(&self, keys: &[Bytes], now: u64) -> Reply {
        Reply::Array(keys.iter().map(|k| self.get(k, now).unwrap_or(Reply::Nil)).collect())
    }

    pub(crate) fn mset(&self, pairs: &[(Bytes, Bytes)], nx: bool, lsn: &mut u64, now: u64) -> Result<Reply> {
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
        *lsn = self.commit(&mut locked, &batch, now);
        Ok(if nx { Reply::Int(1) } else { Reply::Ok })
    }

    pub(crate) fn incr_by(&self, key: &[u8], by: i64, lsn: &mut u64, now: u64) -> Result<Reply> {
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
        *lsn = self.commit_one(&mut shard, h, Mutation::Set { key, value, expire_at }, now);
        Ok(Reply::Int(next))
    }

    pub(crate) fn incr_by_float(&self, key: &[u8], by: f64, lsn: &mut u64, now: u64) -> Result<Reply> {
        self.check_key(key)?;
        if !by.is_finite() {
            return Err(CommandError::NanOrInfinity);
        }
        let h = self.hash(key);
        let mut shard = self.lock(h);
        let (current, expire_at) = match self.find_str(&mut shard, h, key, now)? {
            Some(pos) => {
                let e = shard.entry(pos);
                (parse_f64(e.value()).ok_or(CommandError::NotFloat)?, e.expire_at)
            }
            None => (0.0, NO_EXPIRE),
        };
        let next = current + by;
        if !next.is_finite() {
            return Err(CommandError::NanOrInfinity);
        }
        let text = format_f64(next);
        *lsn = self.commit_one(&mut shard, h, Mutation::Set { key, value: text.as_bytes(), expire_at }, now);
        Ok(Reply::Bulk(Bytes::from(text)))
    }

    pub(crate) fn append(&self, key: &[u8], tail: &[u8], lsn: &mut u64, now: u64) -> Result<Reply> {
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
        *lsn = self.commit_one(&mut shard, h, m, now);
        Ok(Reply::Int(len as i64))
    }

    pub(crate) fn strlen(&self, key: &[u8], now: u64) -> Result<Reply> {
        let h = self.hash(key);
        let mut shard = self.lock(h);
        match self.find_str(&mut shard, h, key, now)? {
            Some(pos) => Ok(Reply::Int(shard.entry(pos).value().len() as i64)),
            None => Ok(Reply::Int(0)),
        }
    }

    pub(crate) fn expire(
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
        let m = match at {
            Some(expire_at) => Mutation::SetExpire { key, expire_at },
            None => Mutation::Del { key },
        };
        *lsn = self.commit_one(&mut shard, h, m, now);
        Ok(Reply::Int(1))
    }

    pub(crate) fn ttl(&self, key: &[u8], unit: TimeUnit, now: u64) -> Reply {
        let h = self.hash(key);
        let mut shard = self.lock(h);
        let Some(pos) = self.find_live(&mut shard, h, key, now) else {
            return Reply::Int(-2);
        };
        let at = shard.entry(pos).expire_at;
        if at == NO_EXPIRE {
            return Reply::Int(-1);
        }
        let ms = at - now;
        Reply::Int(match unit {
            TimeUnit::Millis => ms as i64,
            TimeUnit::Seconds => ms.div_ceil(1000) as i64,
        })
    }

    pub(crate) fn expire_time(&self, key: &[u8], unit: TimeUnit, now: u64) -> Reply {
        let h = self.hash(key);
        let mut shard = self.lock(h);
        let Some(pos) = self.find_live(&mut shard, h, key, now) else {
            return Reply::Int(-2);
        };
        let at = shard.entry(pos).expire_at;
        Reply::Int(match (at, unit) {
            (NO_EXPIRE, _) => -1,
            (at, TimeUnit::Millis) => at as i64,
            (at, TimeUnit::Seconds) => (at / 1000) as i64,
        })
    }

    pub(crate) fn persist(&self, key: &[u8], lsn: &mut u64, now: u64) -> Reply {
        let h = self.hash(key);
        let mut shard = self.lock(h);
        match self.find_live(&mut shard, h, key, now) {
            Some(pos) if shard.entry(pos).expire_at != NO_EXPIRE => {
                *lsn = self.commit_one(&mut shard, h, Mutation::SetExpire { key, expire_at: NO_EXPIRE }, now);
                Reply::Int(1)
            }
            _ => Reply::Int(0),
        }
    }

    pub(crate) fn key_type(&self, key: &[u8], now: u64) -> Reply {
        let h = self.hash(key);
        let mut shard = self.lock(h);
        match self.find_live(&mut shard, h, key, now) {
            Some(pos) => Reply::Status(shard.entry(pos).kind().name()),
            None => Reply::Status("none"),
        }
    }

    pub(crate) fn rename(&self, from: &[u8], to: &[u8], nx: bool, lsn: &mut u64, now: u64) -> Result<Reply> {
        self.check_key(to)?;
        let (hf, ht) = (self.hash(from), self.hash(to));
        let mut locked = self.lock_many([hf, ht]);
        if self.find_live(locked.get(self.shard_of(hf)), hf, from, now).is_none() {
            return Err(CommandError::NoSuchKey);
        }
        if nx && self.find_live(locked.get(self.shard_of(ht)), ht, to, now).is_some() {
            return Ok(Reply::Int(0));
        }
        if from != to {
            // Physical form: the source goes, the target gets its value and expiry (see `mutation`).
            let src = locked.get(self.shard_of(hf));
            let pos = src.find(hf, from).expect("found above under the same lock");
            let e = src.entry(pos);
            let (kind, value, expire_at) = match &e.coll {
                None => (None, e.value().to_vec(), e.expire_at),
                Some(c) => (Some(c.kind() as u8), c.encode(), e.expire_at),
            };
            if value.len() > crate::mutation::MAX_RESTORE_BYTES {
                return Err(CommandError::Invalid(format!(
                    "RENAME of a value of {} bytes encoded; a value moved whole is limited to {} bytes",
                    value.len(),
                    crate::mutation::MAX_RESTORE_BYTES
                )));
            }
            let set = match kind {
                None => Mutation::Set { key: to, value: &value, expire_at },
                Some(kind) => Mutation::Restore { key: to, kind, data: &value, expire_at },
            };
            *lsn = self.commit(&mut locked, &[Mutation::Del { key: from }, set], now);
        }
        Ok(if nx { Reply::Int(1) } else { Reply::Ok })
    }

    pub(crate) fn random_key(&self, now: u64) -> Reply {
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
        Reply::Nil
    }

    pub(crate) fn flush_all(&self, lsn: &mut u64, now: u64) -> Reply {
        let mut locked = self.lock_all();
        *lsn = self.commit(&mut locked, &[Mutation::FlushAll], now);
        Reply::Ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_parse_as_redis_does() {
        assert_eq!(parse_i64(b"0"), Some(0));
        assert_eq!(parse_i64(b"-12"), Some(-12));
        assert_eq!(parse_i64(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
        for bad in [&b""[..], b"+1", b" 1", b"1 ", b"01", b"-0", b"9223372036854775808", b"1.0", b"abc"] {
            assert_eq!(parse_i64(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn floats_format_without_exponent() {
        assert_eq!(format_f64(10.5), "10.5");
        assert_eq!(format_f64(3000.0), "3000");
        assert_eq!(format_f64(1e30), "1000000000000000000000000000000");
        assert_eq!(parse_f64(b"nan"), None);
        assert_eq!(parse_f64(b" 1"), None);
        assert_eq!(parse_f64(b"5.0e3"), Some(5000.0));
    }
}
