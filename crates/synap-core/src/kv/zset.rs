//! Sorted-set commands: each reads under its shard lock(s) and commits `ZSet`/`ZRem` element records, or a
//! whole value (`Restore`) for the STORE forms.

use bytes::Bytes;

use super::Keyspace;
use super::access::{Change, Changes, Op, restore};
use super::hash::{bulk, scan_matches};
use super::list::index_range;
use super::value::{Coll, Kind, ZSetV};
use crate::command::args::format_f64;
use crate::command::zset::{Aggregate, LexBound, ScoreBound, ZAddFlags, ZStoreOp};
use crate::command::{Reply, ZRange, ZRangeBy, ZSetCmd};
use crate::error::{CommandError, Result};
use crate::notify::Class;

fn zset_of(c: Option<&Coll>) -> Option<&ZSetV> {
    match c {
        Some(Coll::ZSet(z)) => Some(z),
        _ => None,
    }
}

fn score_reply(s: f64) -> Reply {
    Reply::Double(s)
}

fn score_text(s: f64) -> Bytes {
    Bytes::from(if s.is_infinite() { if s > 0.0 { "inf".into() } else { "-inf".into() } } else { format_f64(s) })
}

/// Rank bounds `[lo, hi)` of the elements with scores in [min, max].
fn score_ranks(z: &ZSetV, min: ScoreBound, max: ScoreBound) -> (usize, usize) {
    let lo = z.count_score(min.value, min.exclusive);
    let hi = z.count_score(max.value, !max.exclusive);
    (lo, hi.max(lo))
}

/// Rank bounds of members in a lex range (meaningful when all scores are equal, as Redis requires).
fn lex_ranks(z: &ZSetV, min: &LexBound, max: &LexBound) -> (usize, usize) {
    let score = z.at(0).map(|(s, _)| s).unwrap_or(0.0);
    let rank = |b: &LexBound, is_max: bool| match b {
        LexBound::Min => 0,
        LexBound::Max => z.len(),
        LexBound::Incl(m) => z.count_before((score, m), is_max),
        LexBound::Excl(m) => z.count_before((score, m), !is_max),
    };
    let (lo, hi) = (rank(min, false), rank(max, true));
    (lo, hi.max(lo))
}

const READ: (Class, &str) = (Class::ZSet, "");

impl Keyspace {
    pub(crate) fn zset_cmd(&self, cmd: ZSetCmd, lsn: &mut u64, now: u64) -> Result<Reply> {
        match cmd {
            ZSetCmd::Add { key, flags, pairs } => self.zadd(key, flags, pairs, lsn, now),
            ZSetCmd::IncrBy { key, by, member } => {
                self.zadd(key, ZAddFlags { incr: true, ..ZAddFlags::default() }, vec![(by, member)], lsn, now)
            }
            ZSetCmd::Rem { key, members } => self.one(&key, Kind::ZSet, (Class::ZSet, "zrem"), now, lsn, |c| {
                let z = zset_of(c);
                let mut seen = hashbrown::HashSet::new();
                let ops: Vec<Op> = members
                    .iter()
                    .filter(|m| z.is_some_and(|z| z.score(m).is_some()) && seen.insert(&m[..]))
                    .map(|m| Op::ZRem(m.clone()))
                    .collect();
                Ok(Change::write(Reply::Int(ops.len() as i64), ops))
            }),
            ZSetCmd::Score { key, member } => self.one(&key, Kind::ZSet, READ, now, lsn, |c| {
                Ok(Change::read(zset_of(c).and_then(|z| z.score(&member)).map(score_reply).unwrap_or(Reply::Nil)))
            }),
            ZSetCmd::MScore { key, members } => self.one(&key, Kind::ZSet, READ, now, lsn, |c| {
                let z = zset_of(c);
                let out =
                    members.iter().map(|m| z.and_then(|z| z.score(m)).map(score_reply).unwrap_or(Reply::Nil)).collect();
                Ok(Change::read(Reply::Array(out)))
            }),
            ZSetCmd::Card { key } => self.one(&key, Kind::ZSet, READ, now, lsn, |c| {
                Ok(Change::read(Reply::Int(c.map(|c| c.len()).unwrap_or(0) as i64)))
            }),
            ZSetCmd::Count { key, min, max } => self.one(&key, Kind::ZSet, READ, now, lsn, |c| {
                let n = zset_of(c).map(|z| {
                    let (lo, hi) = score_ranks(z, min, max);
                    hi - lo
                });
                Ok(Change::read(Reply::Int(n.unwrap_or(0) as i64)))
            }),
            ZSetCmd::Range(r) => self.zrange(r, lsn, now),
            ZSetCmd::Rank { key, member, rev, with_score } => self.one(&key, Kind::ZSet, READ, now, lsn, |c| {
                let Some(z) = zset_of(c) else { return Ok(Change::read(Reply::Nil)) };
                let Some(rank) = z.rank(&member) else { return Ok(Change::read(Reply::Nil)) };
                let rank = if rev { z.len() - 1 - rank } else { rank };
                Ok(Change::read(if with_score {
                    Reply::Array(vec![Reply::Int(rank as i64), score_reply(z.score(&member).expect("member"))])
                } else {
                    Reply::Int(rank as i64)
                }))
            }),
            ZSetCmd::Pop { key, max, count } => {
                let event = if max { "zpopmax" } else { "zpopmin" };
                self.one(&key, Kind::ZSet, (Class::ZSet, event), now, lsn, |c| {
                    let Some(z) = zset_of(c) else { return Ok(Change::read(Reply::Array(vec![]))) };
                    let n = count.unwrap_or(1).min(z.len());
                    let picked = if max {
                        let mut v = z.range(z.len() - n, z.len());
                        v.reverse();
                        v
                    } else {
                        z.range(0, n)
                    };
                    let ops = picked.iter().map(|(_, m)| Op::ZRem(Bytes::copy_from_slice(m))).collect();
                    // With a count, pairs (RESP3 nests them); without, the one member and its score.
                    let reply = match count {
                        Some(_) => Reply::Pairs(picked.iter().map(|(s, m)| (bulk(m), score_reply(*s))).collect()),
                        None => Reply::Array(picked.iter().flat_map(|(s, m)| [bulk(m), score_reply(*s)]).collect()),
                    };
                    Ok(Change::write(reply, ops))
                })
            }
            ZSetCmd::BPop { keys, max, .. } => {
                let event = if max { "zpopmax" } else { "zpopmin" };
                for k in keys {
                    let r = self.one(&k, Kind::ZSet, (Class::ZSet, event), now, lsn, |c| {
                        let Some(z) = zset_of(c) else { return Ok(Change::read(None)) };
                        let (s, m) = if max { z.at(z.len() - 1) } else { z.at(0) }.expect("non-empty");
                        Ok(Change::write(Some((bulk(m), score_reply(s))), vec![Op::ZRem(Bytes::copy_from_slice(m))]))
                    })?;
                    if let Some((m, s)) = r {
                        return Ok(Reply::Array(vec![Reply::Bulk(k), m, s]));
                    }
                }
                Ok(Reply::Nil)
            }
            ZSetCmd::RemRangeByScore { key, min, max } => {
                self.one(&key, Kind::ZSet, (Class::ZSet, "zremrangebyscore"), now, lsn, |c| {
                    let Some(z) = zset_of(c) else { return Ok(Change::read(Reply::Int(0))) };
                    let (lo, hi) = score_ranks(z, min, max);
                    let ops: Vec<Op> =
                        z.range(lo, hi).into_iter().map(|(_, m)| Op::ZRem(Bytes::copy_from_slice(m))).collect();
                    Ok(Change::write(Reply::Int(ops.len() as i64), ops))
                })
            }
            ZSetCmd::RemRangeByRank { key, start, stop } => {
                self.one(&key, Kind::ZSet, (Class::ZSet, "zremrangebyrank"), now, lsn, |c| {
                    let Some(z) = zset_of(c) else { return Ok(Change::read(Reply::Int(0))) };
                    let (lo, hi) = index_range(start, stop, z.len()).map(|(s, e)| (s, e + 1)).unwrap_or((0, 0));
                    let ops: Vec<Op> =
                        z.range(lo, hi).into_iter().map(|(_, m)| Op::ZRem(Bytes::copy_from_slice(m))).collect();
                    Ok(Change::write(Reply::Int(ops.len() as i64), ops))
                })
            }
            ZSetCmd::Store { op, dst, keys, weights, aggregate } => {
                self.zstore(op, &dst, &keys, &weights, aggregate, lsn, now)
            }
            ZSetCmd::Scan { key, scan } => self.one(&key, Kind::ZSet, READ, now, lsn, |c| {
                let (cursor, page) = zset_of(c)
                    .map(|z| z.scan(scan.cursor, scan.count, self.config.max_reply_bytes))
                    .unwrap_or((0, vec![]));
                let items = page
                    .into_iter()
                    .filter(|(_, m)| scan_matches(&scan, m))
                    .flat_map(|(s, m)| [bulk(m), Reply::Bulk(score_text(s))])
                    .collect();
                Ok(Change::read(Reply::Scan { cursor, items }))
            }),
        }
    }

    fn zadd(&self, key: Bytes, f: ZAddFlags, pairs: Vec<(f64, Bytes)>, lsn: &mut u64, now: u64) -> Result<Reply> {
        f.check(pairs.len())?;
        if pairs.is_empty() {
            return Err(CommandError::Syntax);
        }
        self.check_sizes(&key, pairs.iter().map(|(_, m)| m.len() + 8).sum())?;
        let event = if f.incr { "zincr" } else { "zadd" };
        self.one(&key, Kind::ZSet, (Class::ZSet, event), now, lsn, |c| {
            let z = zset_of(c);
            let mut ops = Vec::new();
            let (mut added, mut changed) = (0, 0);
            let mut scores: hashbrown::HashMap<&[u8], f64> = hashbrown::HashMap::new();
            let mut last = None;
            for (s, m) in &pairs {
                let cur = scores.get(&m[..]).copied().or_else(|| z.and_then(|z| z.score(m)));
                if (f.nx && cur.is_some()) || (f.xx && cur.is_none()) {
                    continue;
                }
                let new = if f.incr { cur.unwrap_or(0.0) + s } else { *s };
                if new.is_nan() {
                    return Err(CommandError::Invalid("resulting score is not a number (NaN)".into()));
                }
                if let Some(c) = cur
                    && ((f.gt && new <= c) || (f.lt && new >= c))
                {
                    continue;
                }
                last = Some(new);
                match cur {
                    None => added += 1,
                    Some(c) if c != new => changed += 1,
                    Some(_) => continue,
                }
                scores.insert(m, new);
                ops.push(Op::ZSet(m.clone(), new));
            }
            let reply = if f.incr {
                match (last, &pairs[0]) {
                    (Some(s), _) => score_reply(s),
                    // An INCR that changed nothing answers the current score (or nil when skipped).
                    (None, (_, m)) if !f.nx && !f.xx && !f.gt && !f.lt => {
                        z.and_then(|z| z.score(m)).map(score_reply).unwrap_or(Reply::Nil)
                    }
                    _ => Reply::Nil,
                }
            } else {
                Reply::Int(if f.ch { added + changed } else { added })
            };
            Ok(Change::write(reply, ops))
        })
    }

    fn zrange(&self, r: ZRange, lsn: &mut u64, now: u64) -> Result<Reply> {
        let ZRange { key, by, rev, limit, with_scores, store, .. } = r;
        self.many_then_store(std::slice::from_ref(&key), &[Kind::ZSet], store.as_ref(), now, lsn, |colls| {
            let items: Vec<(f64, &[u8])> = match zset_of(colls[0]) {
                None => vec![],
                Some(z) => {
                    let (lo, hi) = match &by {
                        ZRangeBy::Score(min, max) => score_ranks(z, *min, *max),
                        ZRangeBy::Lex(min, max) => lex_ranks(z, min, max),
                        // For REV the ranks count from the end.
                        ZRangeBy::Rank(s, e) => match index_range(*s, *e, z.len()) {
                            Some((s, e)) if rev => (z.len() - 1 - e, z.len() - s),
                            Some((s, e)) => (s, e + 1),
                            None => (0, 0),
                        },
                    };
                    let (off, cnt) = limit.unwrap_or((0, -1));
                    if off < 0 {
                        vec![]
                    } else {
                        let span = hi - lo;
                        let off = (off as usize).min(span);
                        let cnt = if cnt < 0 { span - off } else { (cnt as usize).min(span - off) };
                        if rev {
                            let mut v = z.range(hi - off - cnt, hi - off);
                            v.reverse();
                            v
                        } else {
                            z.range(lo + off, lo + off + cnt)
                        }
                    }
                }
            };
            if let Some(d) = &store {
                let mut c = Coll::empty(Kind::ZSet);
                if let Coll::ZSet(z) = &mut c {
                    for (s, m) in &items {
                        z.set(m, *s);
                    }
                }
                let value = if items.is_empty() { Op::Del } else { restore(Kind::ZSet, &c)? };
                let mut ch = Changes::read(Reply::Int(items.len() as i64));
                ch.op(d, Op::Del);
                ch.op(d, value);
                if !items.is_empty() {
                    ch.event(Class::ZSet, "zrangestore", d);
                }
                return Ok(ch);
            }
            self.reply_fits(items.iter().map(|(_, m)| m.len() + 40).sum())?;
            Ok(Changes::read(if with_scores {
                Reply::Pairs(items.into_iter().map(|(s, m)| (bulk(m), score_reply(s))).collect())
            } else {
                Reply::Array(items.into_iter().map(|(_, m)| bulk(m)).collect())
            }))
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn zstore(
        &self,
        op: ZStoreOp,
        dst: &Bytes,
        srcs: &[Bytes],
        weights: &[f64],
        agg: Aggregate,
        lsn: &mut u64,
        now: u64,
    ) -> Result<Reply> {
        let n = srcs.len();
        self.many_then_store(srcs, &[Kind::ZSet, Kind::Set], Some(dst), now, lsn, |colls| {
            let inputs: Vec<Vec<(f64, &[u8])>> = colls
                .iter()
                .map(|c| match c {
                    Some(Coll::ZSet(z)) => z.range(0, z.len()),
                    Some(Coll::Set(s)) => s.members().into_iter().map(|m| (1.0, m)).collect(),
                    _ => vec![],
                })
                .collect();
            let mut acc: hashbrown::HashMap<&[u8], (f64, usize)> = hashbrown::HashMap::new();
            for (j, input) in inputs.iter().enumerate() {
                for (s, m) in input {
                    let v = s * weights.get(j).copied().unwrap_or(1.0);
                    let v = if v.is_nan() { 0.0 } else { v };
                    acc.entry(m)
                        .and_modify(|(cur, cnt)| {
                            *cur = match agg {
                                Aggregate::Sum => {
                                    let t = *cur + v;
                                    if t.is_nan() { 0.0 } else { t }
                                }
                                Aggregate::Min => cur.min(v),
                                Aggregate::Max => cur.max(v),
                            };
                            *cnt += 1;
                        })
                        .or_insert((v, 1));
                }
            }
            let result: Vec<(&[u8], f64)> = acc
                .into_iter()
                .filter(|(_, (_, cnt))| op == ZStoreOp::Union || *cnt == n)
                .map(|(m, (s, _))| (m, s))
                .collect();
            let mut c = Coll::empty(Kind::ZSet);
            if let Coll::ZSet(z) = &mut c {
                for (m, s) in &result {
                    z.set(m, *s);
                }
            }
            let value = if result.is_empty() { Op::Del } else { restore(Kind::ZSet, &c)? };
            let mut ch = Changes::read(Reply::Int(result.len() as i64));
            ch.op(dst, Op::Del);
            ch.op(dst, value);
            if !result.is_empty() {
                ch.event(Class::ZSet, if op == ZStoreOp::Union { "zunionstore" } else { "zinterstore" }, dst);
            }
            Ok(ch)
        })
    }
}
