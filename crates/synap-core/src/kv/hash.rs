//! Hash commands: each reads the hash under its shard lock and commits `HSet`/`HDel` element records.

use bytes::Bytes;
use rand::Rng;

use super::Keyspace;
use super::access::{Change, Op};
use super::value::{Coll, HashV, Kind};
use crate::command::args::parse_i64;
use crate::command::{CollScan, HashCmd, Reply};
use crate::decimal::LongDouble;
use crate::error::{CommandError, Result};
use crate::glob::glob_match;
use crate::notify::Class;

pub(super) fn bulk(b: &[u8]) -> Reply {
    Reply::Bulk(Bytes::copy_from_slice(b))
}

fn hash_of(c: Option<&Coll>) -> Option<&HashV> {
    match c {
        Some(Coll::Hash(h)) => Some(h),
        _ => None,
    }
}

/// HRANDFIELD/SRANDMEMBER with a count: positive = distinct items (at most all), negative = `|n|` picks
/// that may repeat.
pub(super) fn random_pick<T: Copy>(items: &[T], n: i64) -> Vec<T> {
    let mut rng = rand::rng();
    if items.is_empty() || n == 0 {
        return vec![];
    }
    if n < 0 {
        let n = n.unsigned_abs().min(1 << 20) as usize;
        return (0..n).map(|_| items[rng.random_range(0..items.len())]).collect();
    }
    let n = (n as usize).min(items.len());
    let mut idx: Vec<usize> = (0..items.len()).collect();
    for i in 0..n {
        let j = rng.random_range(i..idx.len());
        idx.swap(i, j);
    }
    idx[..n].iter().map(|&i| items[i]).collect()
}

/// Whether a scanned item passes MATCH.
pub(super) fn scan_matches(o: &CollScan, name: &[u8]) -> bool {
    o.pattern.as_ref().is_none_or(|p| glob_match(p, name))
}

const HSET: (Class, &str) = (Class::Hash, "hset");

impl Keyspace {
    /// Refuses a key or the total size of a write's arguments past their limits.
    pub(super) fn check_sizes(&self, key: &[u8], total: usize) -> Result<()> {
        if key.len() > self.config.max_key_bytes {
            return Err(CommandError::KeyTooLarge { limit: self.config.max_key_bytes });
        }
        if total > self.config.max_value_bytes {
            return Err(CommandError::ValueTooLarge { limit: self.config.max_value_bytes });
        }
        Ok(())
    }

    pub(crate) fn hash_cmd(&self, cmd: HashCmd, lsn: &mut u64, now: u64) -> Result<Reply> {
        match cmd {
            HashCmd::Set { key, pairs, legacy } => {
                self.check_sizes(&key, pairs.iter().map(|(f, v)| f.len() + v.len()).sum())?;
                let added = self.one(&key, Kind::Hash, HSET, now, lsn, |c| {
                    let h = hash_of(c);
                    let mut added = 0;
                    let mut seen = hashbrown::HashSet::new();
                    let ops = pairs
                        .iter()
                        .map(|(f, v)| {
                            if h.is_none_or(|h| h.get(f).is_none()) && seen.insert(f) {
                                added += 1;
                            }
                            Op::HSet(f.clone(), v.clone())
                        })
                        .collect();
                    Ok(Change::write(added, ops))
                })?;
                Ok(if legacy { Reply::Ok } else { Reply::Int(added) })
            }
            HashCmd::SetNx { key, field, value } => {
                self.check_sizes(&key, field.len() + value.len())?;
                self.one(&key, Kind::Hash, HSET, now, lsn, |c| {
                    if hash_of(c).is_some_and(|h| h.get(&field).is_some()) {
                        return Ok(Change::read(Reply::Int(0)));
                    }
                    Ok(Change::write(Reply::Int(1), vec![Op::HSet(field, value)]))
                })
            }
            HashCmd::Get { key, field } => self.one(&key, Kind::Hash, HSET, now, lsn, |c| {
                Ok(Change::read(hash_of(c).and_then(|h| h.get(&field)).map(bulk).unwrap_or(Reply::Nil)))
            }),
            HashCmd::MGet { key, fields } => self.one(&key, Kind::Hash, HSET, now, lsn, |c| {
                let h = hash_of(c);
                let out = fields.iter().map(|f| h.and_then(|h| h.get(f)).map(bulk).unwrap_or(Reply::Nil)).collect();
                Ok(Change::read(Reply::Array(out)))
            }),
            HashCmd::GetAll { key } => self.one(&key, Kind::Hash, HSET, now, lsn, |c| {
                let pairs = hash_of(c).map(|h| h.pairs()).unwrap_or_default();
                self.reply_fits(pairs.iter().map(|(f, v)| f.len() + v.len() + 32).sum())?;
                Ok(Change::read(Reply::Map(pairs.into_iter().map(|(f, v)| (bulk(f), bulk(v))).collect())))
            }),
            HashCmd::Del { key, fields } => self.one(&key, Kind::Hash, (Class::Hash, "hdel"), now, lsn, |c| {
                let h = hash_of(c);
                let mut seen = hashbrown::HashSet::new();
                let ops: Vec<Op> = fields
                    .iter()
                    .filter(|f| h.is_some_and(|h| h.get(f).is_some()) && seen.insert(&f[..]))
                    .map(|f| Op::HDel(f.clone()))
                    .collect();
                Ok(Change::write(Reply::Int(ops.len() as i64), ops))
            }),
            HashCmd::Exists { key, field } => self.one(&key, Kind::Hash, HSET, now, lsn, |c| {
                Ok(Change::read(Reply::Int(hash_of(c).is_some_and(|h| h.get(&field).is_some()) as i64)))
            }),
            HashCmd::Len { key } => self.one(&key, Kind::Hash, HSET, now, lsn, |c| {
                Ok(Change::read(Reply::Int(c.map(|c| c.len()).unwrap_or(0) as i64)))
            }),
            HashCmd::Keys { key } => self.hash_side(&key, true, lsn, now),
            HashCmd::Vals { key } => self.hash_side(&key, false, lsn, now),
            HashCmd::StrLen { key, field } => self.one(&key, Kind::Hash, HSET, now, lsn, |c| {
                let n = hash_of(c).and_then(|h| h.get(&field)).map(|v| v.len()).unwrap_or(0);
                Ok(Change::read(Reply::Int(n as i64)))
            }),
            HashCmd::IncrBy { key, field, by } => {
                self.check_sizes(&key, field.len() + 20)?;
                self.one(&key, Kind::Hash, (Class::Hash, "hincrby"), now, lsn, |c| {
                    let cur = match hash_of(c).and_then(|h| h.get(&field)) {
                        Some(v) => {
                            parse_i64(v).ok_or_else(|| CommandError::Invalid("hash value is not an integer".into()))?
                        }
                        None => 0,
                    };
                    let next = cur.checked_add(by).ok_or(CommandError::Overflow)?;
                    Ok(Change::write(Reply::Int(next), vec![Op::HSet(field, Bytes::from(next.to_string()))]))
                })
            }
            HashCmd::IncrByFloat { key, field, by } => {
                self.check_sizes(&key, field.len() + 40)?;
                self.one(&key, Kind::Hash, (Class::Hash, "hincrbyfloat"), now, lsn, |c| {
                    let cur = match hash_of(c).and_then(|h| h.get(&field)) {
                        Some(v) => LongDouble::parse(v)
                            .ok_or_else(|| CommandError::Invalid("hash value is not a float".into()))?,
                        None => LongDouble::ZERO,
                    };
                    let next = cur.checked_add(by).ok_or(CommandError::NanOrInfinity)?;
                    let text = Bytes::from(next.to_text());
                    Ok(Change::write(Reply::Decimal(text.clone()), vec![Op::HSet(field, text)]))
                })
            }
            HashCmd::RandField { key, count, with_values } => self.one(&key, Kind::Hash, HSET, now, lsn, |c| {
                let pairs = hash_of(c).map(|h| h.pairs()).unwrap_or_default();
                let Some(count) = count else {
                    let mut rng = rand::rng();
                    let one =
                        if pairs.is_empty() { Reply::Nil } else { bulk(pairs[rng.random_range(0..pairs.len())].0) };
                    return Ok(Change::read(one));
                };
                let picked = random_pick(&pairs, count);
                self.reply_fits(picked.iter().map(|(f, v)| f.len() + v.len() + 32).sum())?;
                Ok(Change::read(if with_values {
                    Reply::Pairs(picked.into_iter().map(|(f, v)| (bulk(f), bulk(v))).collect())
                } else {
                    Reply::Array(picked.into_iter().map(|(f, _)| bulk(f)).collect())
                }))
            }),
            HashCmd::Scan { key, scan } => self.one(&key, Kind::Hash, HSET, now, lsn, |c| {
                let (cursor, page) = hash_of(c)
                    .map(|h| h.scan(scan.cursor, scan.count, self.config.max_reply_bytes))
                    .unwrap_or((0, vec![]));
                let items = page
                    .into_iter()
                    .filter(|(f, _)| scan_matches(&scan, f))
                    .flat_map(|(f, v)| if scan.novalues { vec![bulk(f)] } else { vec![bulk(f), bulk(v)] })
                    .collect();
                Ok(Change::read(Reply::Scan { cursor, items }))
            }),
        }
    }

    /// HKEYS (`fields`) or HVALS.
    fn hash_side(&self, key: &[u8], fields: bool, lsn: &mut u64, now: u64) -> Result<Reply> {
        self.one(key, Kind::Hash, HSET, now, lsn, |c| {
            let pairs = hash_of(c).map(|h| h.pairs()).unwrap_or_default();
            self.reply_fits(pairs.iter().map(|(f, v)| if fields { f.len() } else { v.len() } + 16).sum())?;
            let out = pairs.into_iter().map(|(f, v)| bulk(if fields { f } else { v })).collect();
            Ok(Change::read(Reply::Array(out)))
        })
    }
}
