//! Sorted-set commands: each reads under its shard lock(s) and commits `ZSet`/`ZRem` element records, or a
//! whole value (`Restore`) for the STORE forms.

use bytes::Bytes;

use super::Keyspace;
use super::access::{Change, Changes, Op, restore};
use super::hash::{bulk, scan_matches};
use super::list::index_range;
use super::value::{Coll, Kind, ZSetV};
use crate::command::args::format_g17;
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
    Bytes::from(format_g17(s))
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

/// The `n` lowest-scored members (or highest, from the top, with `max`): what the pops take.
fn ends(z: &ZSetV, n: usize, max: bool) -> Vec<(f64, &[u8])> {
    if max {
        let mut v = z.range(z.len() - n, z.len());
        v.reverse();
        v
    } else {
        z.range(0, n)
    }
}

/// ZUNION/ZINTER/ZDIFF over `inputs` (each in its key's order), computed as Redis 7.0 does so that
/// weights of 0 and infinite scores give the same results: union and intersection take the inputs
/// from the smallest to the largest; a weighted score that is NaN counts as 0, except (as in Redis)
/// for the later inputs of an intersection under MIN and MAX, where it is compared as NaN.
fn combine<'a>(op: ZStoreOp, inputs: &[Vec<(f64, &'a [u8])>], weights: &[f64], agg: Aggregate) -> Vec<(&'a [u8], f64)> {
    if inputs.is_empty() {
        return vec![];
    }
    let weight = |j: usize| weights.get(j).copied().unwrap_or(1.0);
    let zero_nan = |v: f64| if v.is_nan() { 0.0 } else { v };
    let aggregate = |target: &mut f64, v: f64| match agg {
        Aggregate::Sum => *target = zero_nan(*target + v),
        Aggregate::Min => {
            if v < *target {
                *target = v
            }
        }
        Aggregate::Max => {
            if v > *target {
                *target = v
            }
        }
    };
    let mut order: Vec<usize> = (0..inputs.len()).collect();
    if op != ZStoreOp::Diff {
        order.sort_by_key(|&j| inputs[j].len()); // stable, as glibc's qsort is for these sizes
    }
    let maps: Vec<hashbrown::HashMap<&[u8], f64>> =
        inputs.iter().map(|i| i.iter().map(|(s, m)| (*m, *s)).collect()).collect();
    match op {
        ZStoreOp::Diff => inputs[0]
            .iter()
            .filter(|(_, m)| !maps[1..].iter().any(|x| x.contains_key(m)))
            .map(|(s, m)| (*m, *s))
            .collect(),
        ZStoreOp::Union => {
            let mut acc: hashbrown::HashMap<&[u8], f64> = hashbrown::HashMap::new();
            for &j in &order {
                for (s, m) in &inputs[j] {
                    let v = zero_nan(s * weight(j));
                    match acc.entry(m) {
                        hashbrown::hash_map::Entry::Occupied(mut e) => aggregate(e.get_mut(), v),
                        hashbrown::hash_map::Entry::Vacant(e) => {
                            e.insert(v);
                        }
                    }
                }
            }
            acc.into_iter().collect()
        }
        ZStoreOp::Inter => {
            let first = order[0];
            let mut out = Vec::new();
            'members: for (s, m) in &inputs[first] {
                let mut score = zero_nan(s * weight(first));
                for &j in &order[1..] {
                    match maps[j].get(m) {
                        Some(sj) => aggregate(&mut score, sj * weight(j)),
                        None => continue 'members,
                    }
                }
                out.push((*m, score));
            }
            out
        }
    }
}

impl Keyspace {
    pub(crate) fn zset_cmd(&self, cmd: ZSetCmd, lsn: &mut u64, now: u64) -> Result<Reply> {
        match cmd {
            ZSetCmd::Geo(g) => self.geo_cmd(g, lsn, now),
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
                    let picked = ends(z, n, max);
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
                Ok(Reply::NullArray)
            }
            ZSetCmd::MPop { keys, max, count, .. } => {
                let event = if max { "zpopmax" } else { "zpopmin" };
                for k in keys {
                    let r = self.one(&k, Kind::ZSet, (Class::ZSet, event), now, lsn, |c| {
                        let Some(z) = zset_of(c) else { return Ok(Change::read(None)) };
                        let n = count.min(z.len());
                        let picked = ends(z, n, max);
                        let ops = picked.iter().map(|(_, m)| Op::ZRem(Bytes::copy_from_slice(m))).collect();
                        // [member, score] pairs in both protocols.
                        let items = picked.iter().map(|(s, m)| Reply::Array(vec![bulk(m), score_reply(*s)])).collect();
                        Ok(Change::write(Some(Reply::Array(items)), ops))
                    })?;
                    if let Some(items) = r {
                        return Ok(Reply::Array(vec![Reply::Bulk(k), items]));
                    }
                }
                Ok(Reply::NullArray)
            }
            ZSetCmd::InterCard { keys, limit } => {
                self.many_then_store(&keys, &[Kind::ZSet, Kind::Set], None, now, lsn, |colls| {
                    fn members(c: Option<&Coll>) -> Vec<&[u8]> {
                        match c {
                            Some(Coll::ZSet(z)) => z.range(0, z.len()).into_iter().map(|(_, m)| m).collect(),
                            Some(Coll::Set(s)) => s.members(),
                            _ => vec![],
                        }
                    }
                    let has = |c: &Option<&Coll>, m: &[u8]| match c {
                        Some(Coll::ZSet(z)) => z.score(m).is_some(),
                        Some(Coll::Set(s)) => s.contains(m),
                        _ => false,
                    };
                    let mut n = 0;
                    // Walk the smallest input; look the others up.
                    let smallest = (0..colls.len()).min_by_key(|&i| colls[i].map_or(0, |c| c.len()));
                    if let Some(first) = smallest
                        && colls.iter().all(Option::is_some)
                    {
                        for m in members(colls[first]) {
                            if colls.iter().enumerate().all(|(i, c)| i == first || has(c, m)) {
                                n += 1;
                                if limit > 0 && n >= limit {
                                    break;
                                }
                            }
                        }
                    }
                    Ok(Changes::read(Reply::Int(n as i64)))
                })
            }
            ZSetCmd::LexCount { key, min, max } => self.one(&key, Kind::ZSet, READ, now, lsn, |c| {
                let n = zset_of(c).map(|z| {
                    let (lo, hi) = lex_ranks(z, &min, &max);
                    hi - lo
                });
                Ok(Change::read(Reply::Int(n.unwrap_or(0) as i64)))
            }),
            ZSetCmd::RemRangeByLex { key, min, max } => {
                self.one(&key, Kind::ZSet, (Class::ZSet, "zremrangebylex"), now, lsn, |c| {
                    let Some(z) = zset_of(c) else { return Ok(Change::read(Reply::Int(0))) };
                    let (lo, hi) = lex_ranks(z, &min, &max);
                    let ops: Vec<Op> =
                        z.range(lo, hi).into_iter().map(|(_, m)| Op::ZRem(Bytes::copy_from_slice(m))).collect();
                    Ok(Change::write(Reply::Int(ops.len() as i64), ops))
                })
            }
            ZSetCmd::RandMember { key, count, with_scores } => self.one(&key, Kind::ZSet, READ, now, lsn, |c| {
                let items = zset_of(c).map(|z| z.range(0, z.len())).unwrap_or_default();
                let Some(count) = count else {
                    let one = if items.is_empty() {
                        Reply::Nil
                    } else {
                        bulk(items[rand::Rng::random_range(&mut rand::rng(), 0..items.len())].1)
                    };
                    return Ok(Change::read(one));
                };
                let picked = super::hash::random_pick(&items, count);
                self.reply_fits(picked.iter().map(|(_, m)| m.len() + 40).sum())?;
                Ok(Change::read(if with_scores {
                    Reply::Pairs(picked.into_iter().map(|(s, m)| (bulk(m), score_reply(s))).collect())
                } else {
                    Reply::Array(picked.into_iter().map(|(_, m)| bulk(m)).collect())
                }))
            }),
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
            ZSetCmd::Store { op, dst, keys, weights, aggregate, with_scores } => {
                self.zstore(op, dst.as_ref(), &keys, &weights, aggregate, with_scores, lsn, now)
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
        dst: Option<&Bytes>,
        srcs: &[Bytes],
        weights: &[f64],
        agg: Aggregate,
        with_scores: bool,
        lsn: &mut u64,
        now: u64,
    ) -> Result<Reply> {
        self.many_then_store(srcs, &[Kind::ZSet, Kind::Set], dst, now, lsn, |colls| {
            let inputs: Vec<Vec<(f64, &[u8])>> = colls
                .iter()
                .map(|c| match c {
                    Some(Coll::ZSet(z)) => z.range(0, z.len()),
                    Some(Coll::Set(s)) => s.members().into_iter().map(|m| (1.0, m)).collect(),
                    _ => vec![],
                })
                .collect();
            let result = combine(op, &inputs, weights, agg);
            let Some(dst) = dst else {
                // ZUNION, ZINTER, ZDIFF: the result in sorted-set order, scores as computed (a -0 stays).
                let mut items: Vec<(f64, &[u8])> = result.iter().map(|(m, s)| (*s, *m)).collect();
                items.sort_by(|a, b| {
                    a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal).then_with(|| a.1.cmp(b.1))
                });
                self.reply_fits(items.iter().map(|(_, m)| m.len() + 40).sum())?;
                return Ok(Changes::read(if with_scores {
                    Reply::Pairs(items.into_iter().map(|(s, m)| (bulk(m), score_reply(s))).collect())
                } else {
                    Reply::Array(items.into_iter().map(|(_, m)| bulk(m)).collect())
                }));
            };
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
                let event = match op {
                    ZStoreOp::Union => "zunionstore",
                    ZStoreOp::Inter => "zinterstore",
                    ZStoreOp::Diff => "zdiffstore",
                };
                ch.event(Class::ZSet, event, dst);
            }
            Ok(ch)
        })
    }
}
