//! DUMP and RESTORE. The payload is Synap's own: the value's kind (0 string, or the collection kinds of
//! the `Restore` record), its encoding (the string's bytes or `Coll::encode`), a format version (u16 LE)
//! and an FNV-1a 64 checksum of all that (u64 LE), the last two in the places Redis puts its RDB version
//! and CRC64. A payload is checked whole (version, checksum, a collection that decodes) before anything
//! changes; Redis's RDB payloads are not read.

use bytes::Bytes;

use super::value::{Coll, Kind};
use super::{Keyspace, NO_EXPIRE};
use crate::command::Reply;
use crate::error::{CommandError, Result};
use crate::mutation::Mutation;
use crate::notify::Class;

const VERSION: u16 = 1;

fn checksum(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3))
}

fn bad_payload() -> CommandError {
    CommandError::Invalid("DUMP payload version or checksum are wrong".into())
}

/// RESTORE's options.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RestoreOpts {
    pub replace: bool,
    /// The TTL is an absolute Unix time in ms.
    pub absttl: bool,
}

impl Keyspace {
    pub(super) fn dump(&self, key: &[u8], now: u64) -> Result<Reply> {
        let h = self.hash(key);
        let mut shard = self.lock(h);
        let Some(pos) = self.find_live(&mut shard, h, key, now) else { return Ok(Reply::Nil) };
        let e = shard.entry(pos);
        if e.kind() == Kind::Stream {
            return Err(CommandError::Invalid(
                "DUMP of a stream is not supported (a stream's events live in its own files)".into(),
            ));
        }
        let (kind, value) = Self::whole_value(e, "DUMP")?;
        drop(shard);
        let mut out = Vec::with_capacity(value.len() + 11);
        out.push(kind.unwrap_or(0));
        out.extend_from_slice(&value);
        out.extend_from_slice(&VERSION.to_le_bytes());
        let sum = checksum(&out);
        out.extend_from_slice(&sum.to_le_bytes());
        Ok(Reply::Bulk(Bytes::from(out)))
    }

    /// RESTORE key ttl payload: Redis's order of checks (the key, then the TTL, then the payload).
    pub(super) fn restore(
        &self,
        key: &[u8],
        ttl: &[u8],
        payload: &[u8],
        opts: RestoreOpts,
        lsn: &mut u64,
        now: u64,
    ) -> Result<Reply> {
        self.check_key(key)?;
        let h = self.hash(key);
        let mut shard = self.lock(h);
        let exists = self.find_live(&mut shard, h, key, now).is_some();
        if exists && !opts.replace {
            return Err(CommandError::Raw("BUSYKEY Target key name already exists.".into()));
        }
        let ttl = crate::command::args::parse_i64(ttl).ok_or(CommandError::NotInteger)?;
        if ttl < 0 {
            return Err(CommandError::Invalid("Invalid TTL value, must be >= 0".into()));
        }
        if payload.len() < 11 {
            return Err(bad_payload());
        }
        let (body, sum) = payload.split_at(payload.len() - 8);
        if checksum(body) != u64::from_le_bytes(sum.try_into().expect("8 bytes"))
            || body[body.len() - 2..] != VERSION.to_le_bytes()
        {
            return Err(bad_payload());
        }
        let (kind, data) = (body[0], &body[1..body.len() - 2]);
        let coll_kind = match kind {
            0 => None,
            k => match Kind::from_u8(k) {
                Some(kind @ (Kind::Hash | Kind::List | Kind::Set | Kind::ZSet)) => {
                    if Coll::decode(kind, data).is_none() {
                        return Err(CommandError::Invalid("Bad data format".into()));
                    }
                    Some(k)
                }
                _ => return Err(CommandError::Invalid("Bad data format".into())),
            },
        };
        if coll_kind.is_none() && data.len() > self.config.max_value_bytes {
            return Err(CommandError::ValueTooLarge { limit: self.config.max_value_bytes });
        }
        let expire_at = match ttl {
            0 => NO_EXPIRE,
            t if opts.absttl => t as u64,
            t => now.saturating_add(t as u64),
        };
        if expire_at != NO_EXPIRE && expire_at <= now {
            // Already expired: nothing is created (a replaced key goes).
            if exists {
                let m = Mutation::Del { key };
                *lsn = self.commit_one(&mut shard, h, m, now, Some((Class::Generic, "del", key)));
            }
            return Ok(Reply::Ok);
        }
        let m = super::keys::whole_record(key, coll_kind, data, expire_at);
        *lsn = self.commit_one(&mut shard, h, m, now, Some((Class::Generic, "restore", key)));
        Ok(Reply::Ok)
    }
}
