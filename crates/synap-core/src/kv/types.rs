//! Hash, list, set and sorted-set commands with Redis's arguments, reply shapes and errors.
//!
//! A command arrives as its name ([`CollCmd`]) and its arguments (after the name), as Redis clients send
//! them; front ends that speak JSON build the same argument list. Each command reads the collection under
//! its shard lock(s), decides, and commits element mutations (`HSet`, `LPut`, `ZSet`, ...) or whole values
//! (`Restore`) through [`Keyspace::commit`], so that replay repeats the state change, not the computation.

use bytes::Bytes;
use rand::Rng;

use super::coll::{Coll, HashV, Kind, ListV, SetV, ZSetV};
use super::strings::{format_f64, parse_f64, parse_i64};
use super::{Keyspace, NO_EXPIRE};
use crate::command::Reply;
use crate::error::{CommandError, Result};
use crate::glob::glob_match;
use crate::mutation::Mutation;

macro_rules! coll_cmds {
    ($($id:ident => $name:literal),* $(,)?) => {
        /// The collection commands, by Redis name.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum CollCmd { $($id),* }

        impl CollCmd {
            pub const ALL: &'static [CollCmd] = &[$(CollCmd::$id),*];

            pub fn name(self) -> &'static str {
                match self { $(CollCmd::$id => $name),* }
            }

            pub fn from_name(name: &str) -> Option<CollCmd> {
                match name { $($name => Some(CollCmd::$id),)* _ => None }
            }
        }
    };
}

coll_cmds! {
    HSet => "hset", HMSet => "hmset", HSetNx => "hsetnx", HGet => "hget", HMGet => "hmget", HGetAll => "hgetall",
    HDel => "hdel", HExists => "hexists", HLen => "hlen", HKeys => "hkeys", HVals => "hvals",
    HIncrBy => "hincrby", HIncrByFloat => "hincrbyfloat", HStrLen => "hstrlen", HRandField => "hrandfield",
    HScan => "hscan",
    LPush => "lpush", RPush => "rpush", LPushX => "lpushx", RPushX => "rpushx", LPop => "lpop", RPop => "rpop",
    LLen => "llen", LRange => "lrange", LIndex => "lindex", LSet => "lset", LInsert => "linsert", LRem => "lrem",
    LTrim => "ltrim", LPos => "lpos", LMove => "lmove", RPopLPush => "rpoplpush",
    BLPop => "blpop", BRPop => "brpop", BLMove => "blmove", BRPopLPush => "brpoplpush",
    SAdd => "sadd", SRem => "srem", SIsMember => "sismember", SMIsMember => "smismember", SMembers => "smembers",
    SCard => "scard", SPop => "spop", SRandMember => "srandmember", SMove => "smove", SInter => "sinter",
    SUnion => "sunion", SDiff => "sdiff", SInterStore => "sinterstore", SUnionStore => "sunionstore",
    SDiffStore => "sdiffstore", SInterCard => "sintercard", SScan => "sscan",
    ZAdd => "zadd", ZRem => "zrem", ZScore => "zscore", ZMScore => "zmscore", ZIncrBy => "zincrby",
    ZCard => "zcard", ZCount => "zcount", ZRange => "zrange", ZRevRange => "zrevrange",
    ZRangeByScore => "zrangebyscore", ZRevRangeByScore => "zrevrangebyscore", ZRangeByLex => "zrangebylex",
    ZRangeStore => "zrangestore", ZRank => "zrank", ZRevRank => "zrevrank", ZPopMin => "zpopmin",
    ZPopMax => "zpopmax", BZPopMin => "bzpopmin", BZPopMax => "bzpopmax",
    ZRemRangeByScore => "zremrangebyscore", ZRemRangeByRank => "zremrangebyrank",
    ZUnionStore => "zunionstore", ZInterStore => "zinterstore", ZScan => "zscan",
}

impl CollCmd {
    /// Whether the command may change state.
    pub fn is_write(self) -> bool {
        use CollCmd::*;
        !matches!(
            self,
            HGet | HMGet
                | HGetAll
                | HExists
                | HLen
                | HKeys
                | HVals
                | HStrLen
                | HRandField
                | HScan
                | LLen
                | LRange
                | LIndex
                | LPos
                | SIsMember
                | SMIsMember
                | SMembers
                | SCard
                | SRandMember
                | SInter
                | SUnion
                | SDiff
                | SInterCard
                | SScan
                | ZScore
                | ZMScore
                | ZCard
                | ZCount
                | ZRange
                | ZRevRange
                | ZRangeByScore
                | ZRevRangeByScore
                | ZRangeByLex
                | ZRank
                | ZRevRank
                | ZScan
        )
    }

    /// The blocking commands (their front end waits; the engine runs one non-blocking attempt, with the
    /// timeout argument removed).
    pub fn is_blocking(self) -> bool {
        matches!(
            self,
            CollCmd::BLPop
                | CollCmd::BRPop
                | CollCmd::BLMove
                | CollCmd::BRPopLPush
                | CollCmd::BZPopMin
                | CollCmd::BZPopMax
        )
    }

    /// The keys a command names (for WATCH, blocking and key-based routing), from its arguments.
    pub fn keys(self, args: &[Bytes]) -> Vec<Bytes> {
        use CollCmd::*;
        match self {
            SMove | LMove | RPopLPush | BLMove | BRPopLPush | ZRangeStore => args.iter().take(2).cloned().collect(),
            SInter | SUnion | SDiff | BLPop | BRPop | BZPopMin | BZPopMax => args.to_vec(),
            SInterStore | SUnionStore | SDiffStore => args.to_vec(),
            SInterCard | ZUnionStore | ZInterStore => {
                let (dst, rest) =
                    if self == SInterCard { (None, args) } else { (args.first(), args.get(1..).unwrap_or(&[])) };
                let n = rest.first().and_then(|n| parse_i64(n)).unwrap_or(0).max(0) as usize;
                dst.into_iter().chain(rest.iter().skip(1).take(n)).cloned().collect()
            }
            _ => args.first().cloned().into_iter().collect(),
        }
    }
}

/// An element change, owned until the batch is committed.
enum Op {
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

fn mutation<'a>(key: &'a [u8], op: &'a Op) -> Mutation<'a> {
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

/// Spacing of list element indexes: pushes leave this much room between neighbours, so an insert in the
/// middle (LINSERT) rarely has to move any. 2^63 / 1024 pushes to one end of one list are possible.
const LIST_STEP: i64 = 1024;

fn index_exhausted() -> CommandError {
    CommandError::Invalid("the list's index space is exhausted; copy it to a new key".into())
}

/// The idx of an element pushed at the head (`left`) or tail of a list whose ends are `first`/`last`.
fn end_slot(first: Option<i64>, last: Option<i64>, left: bool) -> Result<i64> {
    match (first, last) {
        (Some(f), _) if left => f.checked_sub(LIST_STEP).ok_or_else(index_exhausted),
        (_, Some(l)) if !left => l.checked_add(LIST_STEP).ok_or_else(index_exhausted),
        _ => Ok(0),
    }
}

/// Where an element inserted at position `at` of `items` (in idx order) goes: its idx, and the elements
/// that move to make room, as (position, new idx). Between neighbours with a free idx nothing moves;
/// otherwise a window around `at` is respaced between two elements that stay, its width doubling until
/// it has room, so an insert rewrites its neighbourhood, not the list. When no window has room, the
/// elements from `at` on move past the last one.
fn insert_slot(items: &[(i64, &[u8])], at: usize) -> Result<(i64, Vec<(usize, i64)>)> {
    let n = items.len();
    if at == 0 || at == n {
        let (first, last) = (items.first().map(|i| i.0), items.last().map(|i| i.0));
        return Ok((end_slot(first, last, at == 0)?, vec![]));
    }
    let (a, b) = (items[at - 1].0 as i128, items[at].0 as i128);
    if b - a > 1 {
        return Ok(((a + (b - a) / 2) as i64, vec![]));
    }
    // Respace items[lo..hi] and the new element strictly between items[lo - 1] and items[hi].
    let place = |lo: usize, hi: usize, idx_of: &dyn Fn(usize) -> i64| {
        let mut moves = Vec::with_capacity(hi - lo);
        let mut new_idx = 0;
        for (slot, pos) in (lo..at).chain([usize::MAX]).chain(at..hi).enumerate() {
            let idx = idx_of(slot);
            if pos == usize::MAX {
                new_idx = idx;
            } else {
                moves.push((pos, idx));
            }
        }
        (new_idx, moves)
    };
    let mut width = 1;
    loop {
        let (lo, hi) = (at.saturating_sub(width).max(1), (at + width).min(n - 1));
        let (low, high) = (items[lo - 1].0 as i128, items[hi].0 as i128);
        let k = (hi - lo + 1) as i128;
        if high - low >= 2 * (k + 1) {
            return Ok(place(lo, hi, &|slot| (low + (high - low) * (slot as i128 + 1) / (k + 1)) as i64));
        }
        if lo == 1 && hi == n - 1 {
            break;
        }
        width *= 2;
    }
    let base = items[at - 1].0;
    let top = base.checked_add(LIST_STEP.checked_mul((n - at + 1) as i64).ok_or_else(index_exhausted)?);
    top.ok_or_else(index_exhausted)?;
    Ok(place(at, n, &|slot| base + LIST_STEP * (slot as i64 + 1)))
}

/// A whole-value record of `c`, refused when it would not fit a log record.
fn restore(kind: Kind, c: &Coll) -> Result<Op> {
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

fn syntax() -> CommandError {
    CommandError::Syntax
}

fn int_arg(b: &[u8]) -> Result<i64> {
    parse_i64(b).ok_or(CommandError::NotInteger)
}

fn float_arg(b: &[u8]) -> Result<f64> {
    parse_score(b).ok_or(CommandError::NotFloat)
}

/// A score as Redis reads one: a float, `inf`, `+inf` or `-inf`; never NaN.
fn parse_score(b: &[u8]) -> Option<f64> {
    match &b.to_ascii_lowercase()[..] {
        b"inf" | b"+inf" => Some(f64::INFINITY),
        b"-inf" => Some(f64::NEG_INFINITY),
        _ => parse_f64(b),
    }
}

fn score_reply(s: f64) -> Reply {
    Reply::Double(s)
}

fn score_text(s: f64) -> Bytes {
    Bytes::from(if s.is_infinite() { if s > 0.0 { "inf".into() } else { "-inf".into() } } else { format_f64(s) })
}

fn bulk(b: &[u8]) -> Reply {
    Reply::Bulk(Bytes::copy_from_slice(b))
}

fn is(arg: &[u8], word: &str) -> bool {
    arg.eq_ignore_ascii_case(word.as_bytes())
}

/// Resolves Redis's `start`/`stop` indexes (negative from the end) against `len`: `None` when empty.
fn index_range(start: i64, stop: i64, len: usize) -> Option<(usize, usize)> {
    let len = len as i64;
    let s = if start < 0 { (len + start).max(0) } else { start };
    let e = if stop < 0 { len + stop } else { stop.min(len - 1) };
    (s <= e && s < len && e >= 0).then_some((s as usize, e as usize))
}

/// A score range bound: `(1.5`, `1.5`, `-inf`, `+inf`.
#[derive(Clone, Copy)]
struct ScoreBound {
    v: f64,
    excl: bool,
}

fn score_bound(b: &[u8]) -> Result<ScoreBound> {
    let err = || CommandError::Invalid("min or max is not a float".into());
    match b.first() {
        Some(b'(') => Ok(ScoreBound { v: parse_score(&b[1..]).ok_or_else(err)?, excl: true }),
        _ => Ok(ScoreBound { v: parse_score(b).ok_or_else(err)?, excl: false }),
    }
}

/// A lex range bound: `-`, `+`, `[x`, `(x`.
#[derive(Clone)]
enum LexBound {
    Min,
    Max,
    Incl(Bytes),
    Excl(Bytes),
}

fn lex_bound(b: &Bytes) -> Result<LexBound> {
    match b.first() {
        Some(b'-') if b.len() == 1 => Ok(LexBound::Min),
        Some(b'+') if b.len() == 1 => Ok(LexBound::Max),
        Some(b'[') => Ok(LexBound::Incl(b.slice(1..))),
        Some(b'(') => Ok(LexBound::Excl(b.slice(1..))),
        _ => Err(CommandError::Invalid("min or max not valid string range item".into())),
    }
}

/// Rank bounds `[lo, hi)` of the elements with scores in [min, max].
fn score_ranks(z: &ZSetV, min: ScoreBound, max: ScoreBound) -> (usize, usize) {
    let lo = z.count_score(min.v, min.excl);
    let hi = z.count_score(max.v, !max.excl);
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

/// HSCAN/SSCAN/ZSCAN options: cursor, MATCH, COUNT, NOVALUES.
struct ScanOpts {
    cursor: u64,
    pattern: Option<Bytes>,
    count: usize,
    novalues: bool,
}

impl ScanOpts {
    fn parse(args: &[Bytes]) -> Result<ScanOpts> {
        let cursor: u64 = std::str::from_utf8(&args[0])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| CommandError::Invalid("invalid cursor".into()))?;
        let mut o = ScanOpts { cursor, pattern: None, count: 10, novalues: false };
        let mut i = 1;
        while i < args.len() {
            if is(&args[i], "match") && i + 1 < args.len() {
                o.pattern = Some(args[i + 1].clone());
                i += 2;
            } else if is(&args[i], "count") && i + 1 < args.len() {
                let n = int_arg(&args[i + 1])?;
                if n < 1 {
                    return Err(syntax());
                }
                o.count = n as usize;
                i += 2;
            } else if is(&args[i], "novalues") {
                o.novalues = true;
                i += 1;
            } else {
                return Err(syntax());
            }
        }
        Ok(o)
    }

    fn matches(&self, name: &[u8]) -> bool {
        self.pattern.as_ref().is_none_or(|p| glob_match(p, name))
    }
}

fn scan_reply(cursor: u64, items: Vec<Reply>) -> Reply {
    Reply::Array(vec![Reply::Bulk(Bytes::from(cursor.to_string())), Reply::Array(items)])
}

impl Keyspace {
    /// Runs `f` on the collection under `key`'s lock: `None` when the key is missing, WRONGTYPE when it holds
    /// another type. `f` answers the reply and the element changes, which are committed under the same lock.
    fn one<R>(
        &self,
        key: &[u8],
        kind: Kind,
        now: u64,
        lsn: &mut u64,
        f: impl FnOnce(Option<&Coll>) -> Result<(R, Vec<Op>)>,
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
        let (reply, ops) = f(coll)?;
        if !ops.is_empty() {
            let batch: Vec<Mutation<'_>> = ops.iter().map(|op| mutation(key, op)).collect();
            *lsn = (*lsn).max(self.commit_shard(&mut shard, h, &batch, now));
        }
        Ok(reply)
    }

    /// Reads several keys (each of `kind`, or missing) under their locks, then commits `f`'s changes
    /// (key, op) under the same locks.
    fn many<R>(
        &self,
        keys: &[Bytes],
        kinds: &[Kind],
        now: u64,
        lsn: &mut u64,
        f: impl FnOnce(Vec<Option<&Coll>>) -> Result<(R, Vec<(Bytes, Op)>)>,
    ) -> Result<R> {
        let hashes: Vec<u64> = keys.iter().map(|k| self.hash(k)).collect();
        let mut locked = self.lock_many(hashes.iter().copied());
        // Lazy expiry first (it needs the shard mutably), then positions to read.
        let mut positions = Vec::with_capacity(keys.len());
        for (k, &h) in keys.iter().zip(&hashes) {
            let shard = locked.get(self.shard_of(h));
            positions.push(self.find_live(shard, h, k, now));
        }
        let result = {
            let mut colls = Vec::with_capacity(keys.len());
            for (i, (_, &h)) in keys.iter().zip(&hashes).enumerate() {
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
        let (reply, ops) = result;
        if !ops.is_empty() {
            let batch: Vec<Mutation<'_>> = ops.iter().map(|(k, op)| mutation(k, op)).collect();
            *lsn = (*lsn).max(self.commit(&mut locked, &batch, now));
        }
        Ok(reply)
    }

    /// Executes a collection command (`args` without the command name).
    pub fn coll(&self, cmd: CollCmd, args: &[Bytes], lsn: &mut u64, now: u64) -> Result<Reply> {
        use CollCmd::*;
        let key = args.first().cloned().unwrap_or_default();
        if key.len() > self.config.max_key_bytes {
            return Err(CommandError::KeyTooLarge { limit: self.config.max_key_bytes });
        }
        let total: usize = args.iter().map(|a| a.len()).sum();
        if cmd.is_write() && total > self.config.max_value_bytes {
            return Err(CommandError::ValueTooLarge { limit: self.config.max_value_bytes });
        }
        match cmd {
            HSet | HMSet => {
                if args.len() < 3 || args.len().is_multiple_of(2) {
                    return Err(CommandError::Invalid(format!(
                        "wrong number of arguments for '{}' command",
                        cmd.name()
                    )));
                }
                let added = self.one(&key, Kind::Hash, now, lsn, |c| {
                    let h = hash_of(c);
                    let mut added = 0;
                    let mut seen = hashbrown::HashSet::new();
                    let ops = args[1..]
                        .chunks(2)
                        .map(|p| {
                            if h.is_none_or(|h| h.get(&p[0]).is_none()) && seen.insert(&p[0]) {
                                added += 1;
                            }
                            Op::HSet(p[0].clone(), p[1].clone())
                        })
                        .collect();
                    Ok((added, ops))
                })?;
                Ok(if cmd == HMSet { Reply::Ok } else { Reply::Int(added) })
            }
            HSetNx => self.one(&key, Kind::Hash, now, lsn, |c| {
                if hash_of(c).is_some_and(|h| h.get(&args[1]).is_some()) {
                    return Ok((Reply::Int(0), vec![]));
                }
                Ok((Reply::Int(1), vec![Op::HSet(args[1].clone(), args[2].clone())]))
            }),
            HGet => self.one(&key, Kind::Hash, now, lsn, |c| {
                Ok((hash_of(c).and_then(|h| h.get(&args[1])).map(bulk).unwrap_or(Reply::Nil), vec![]))
            }),
            HMGet => self.one(&key, Kind::Hash, now, lsn, |c| {
                let h = hash_of(c);
                let out = args[1..].iter().map(|f| h.and_then(|h| h.get(f)).map(bulk).unwrap_or(Reply::Nil)).collect();
                Ok((Reply::Array(out), vec![]))
            }),
            HGetAll => self.one(&key, Kind::Hash, now, lsn, |c| {
                let pairs = hash_of(c).map(|h| h.pairs()).unwrap_or_default();
                self.reply_fits(pairs.iter().map(|(f, v)| f.len() + v.len() + 32).sum())?;
                Ok((Reply::Map(pairs.into_iter().map(|(f, v)| (bulk(f), bulk(v))).collect()), vec![]))
            }),
            HDel => self.one(&key, Kind::Hash, now, lsn, |c| {
                let h = hash_of(c);
                let mut seen = hashbrown::HashSet::new();
                let ops: Vec<Op> = args[1..]
                    .iter()
                    .filter(|f| h.is_some_and(|h| h.get(f).is_some()) && seen.insert(&f[..]))
                    .map(|f| Op::HDel(f.clone()))
                    .collect();
                Ok((Reply::Int(ops.len() as i64), ops))
            }),
            HExists => self.one(&key, Kind::Hash, now, lsn, |c| {
                Ok((Reply::Int(hash_of(c).is_some_and(|h| h.get(&args[1]).is_some()) as i64), vec![]))
            }),
            HLen => self
                .one(&key, Kind::Hash, now, lsn, |c| Ok((Reply::Int(c.map(|c| c.len()).unwrap_or(0) as i64), vec![]))),
            HKeys | HVals => self.one(&key, Kind::Hash, now, lsn, |c| {
                let pairs = hash_of(c).map(|h| h.pairs()).unwrap_or_default();
                self.reply_fits(pairs.iter().map(|(f, v)| if cmd == HKeys { f.len() } else { v.len() } + 16).sum())?;
                let out = pairs.into_iter().map(|(f, v)| bulk(if cmd == HKeys { f } else { v })).collect();
                Ok((Reply::Array(out), vec![]))
            }),
            HStrLen => self.one(&key, Kind::Hash, now, lsn, |c| {
                Ok((Reply::Int(hash_of(c).and_then(|h| h.get(&args[1])).map(|v| v.len()).unwrap_or(0) as i64), vec![]))
            }),
            HIncrBy => {
                let by = int_arg(&args[2])?;
                self.one(&key, Kind::Hash, now, lsn, |c| {
                    let cur = match hash_of(c).and_then(|h| h.get(&args[1])) {
                        Some(v) => {
                            parse_i64(v).ok_or_else(|| CommandError::Invalid("hash value is not an integer".into()))?
                        }
                        None => 0,
                    };
                    let next = cur.checked_add(by).ok_or(CommandError::Overflow)?;
                    Ok((Reply::Int(next), vec![Op::HSet(args[1].clone(), Bytes::from(next.to_string()))]))
                })
            }
            HIncrByFloat => {
                let by = parse_f64(&args[2]).ok_or(CommandError::NotFloat)?;
                self.one(&key, Kind::Hash, now, lsn, |c| {
                    let cur = match hash_of(c).and_then(|h| h.get(&args[1])) {
                        Some(v) => {
                            parse_f64(v).ok_or_else(|| CommandError::Invalid("hash value is not a float".into()))?
                        }
                        None => 0.0,
                    };
                    let next = cur + by;
                    if !next.is_finite() {
                        return Err(CommandError::NanOrInfinity);
                    }
                    let text = Bytes::from(format_f64(next));
                    Ok((Reply::Bulk(text.clone()), vec![Op::HSet(args[1].clone(), text)]))
                })
            }
            HRandField => self.one(&key, Kind::Hash, now, lsn, |c| {
                let pairs = hash_of(c).map(|h| h.pairs()).unwrap_or_default();
                let withvalues = match args.len() {
                    1 | 2 => false,
                    3 if is(&args[2], "withvalues") => true,
                    _ => return Err(syntax()),
                };
                let Some(count) = args.get(1) else {
                    let mut rng = rand::rng();
                    return Ok((
                        if pairs.is_empty() { Reply::Nil } else { bulk(pairs[rng.random_range(0..pairs.len())].0) },
                        vec![],
                    ));
                };
                let picked = random_pick(&pairs, int_arg(count)?);
                self.reply_fits(picked.iter().map(|(f, v)| f.len() + v.len() + 32).sum())?;
                let out = picked
                    .into_iter()
                    .flat_map(|(f, v)| if withvalues { vec![bulk(f), bulk(v)] } else { vec![bulk(f)] })
                    .collect();
                Ok((Reply::Array(out), vec![]))
            }),
            HScan => self.one(&key, Kind::Hash, now, lsn, |c| {
                let o = ScanOpts::parse(&args[1..])?;
                let (next, page) =
                    hash_of(c).map(|h| h.scan(o.cursor, o.count, self.config.max_reply_bytes)).unwrap_or((0, vec![]));
                let out = page
                    .into_iter()
                    .filter(|(f, _)| o.matches(f))
                    .flat_map(|(f, v)| if o.novalues { vec![bulk(f)] } else { vec![bulk(f), bulk(v)] })
                    .collect();
                Ok((scan_reply(next, out), vec![]))
            }),
            LPush | RPush | LPushX | RPushX => self.one(&key, Kind::List, now, lsn, |c| {
                let l = list_of(c);
                if l.is_none() && matches!(cmd, LPushX | RPushX) {
                    return Ok((Reply::Int(0), vec![]));
                }
                let left = matches!(cmd, LPush | LPushX);
                let (mut first, mut last) = (l.and_then(|l| l.first_idx()), l.and_then(|l| l.last_idx()));
                let ops = args[1..]
                    .iter()
                    .map(|v| {
                        let idx = end_slot(first, last, left)?;
                        first = Some(first.map_or(idx, |f| f.min(idx)));
                        last = Some(last.map_or(idx, |l| l.max(idx)));
                        Ok(Op::LPut(idx, v.clone()))
                    })
                    .collect::<Result<Vec<Op>>>()?;
                let len = l.map(|l| l.len()).unwrap_or(0) + ops.len();
                Ok((Reply::Int(len as i64), ops))
            }),
            LPop | RPop => {
                let count = match args.get(1) {
                    None => None,
                    Some(n) => {
                        let n = int_arg(n)
                            .ok()
                            .filter(|n| *n >= 0)
                            .ok_or_else(|| CommandError::Invalid("value is out of range, must be positive".into()))?;
                        Some(n as usize)
                    }
                };
                if args.len() > 2 {
                    return Err(syntax());
                }
                self.one(&key, Kind::List, now, lsn, |c| {
                    let Some(l) = list_of(c) else { return Ok((Reply::Nil, vec![])) };
                    let len = l.len();
                    let n = count.unwrap_or(1).min(len);
                    if n == 0 {
                        return Ok((Reply::Array(vec![]), vec![]));
                    }
                    let picked: Vec<(i64, &[u8])> = if cmd == LPop {
                        l.range(0, n - 1)
                    } else {
                        let mut v = l.range(len - n, len - 1);
                        v.reverse();
                        v
                    };
                    let ops = picked.iter().map(|(i, _)| Op::LDel(*i)).collect();
                    let reply = match count {
                        None => bulk(picked[0].1),
                        Some(_) => Reply::Array(picked.iter().map(|(_, v)| bulk(v)).collect()),
                    };
                    Ok((reply, ops))
                })
            }
            LLen => self
                .one(&key, Kind::List, now, lsn, |c| Ok((Reply::Int(c.map(|c| c.len()).unwrap_or(0) as i64), vec![]))),
            LRange => {
                let (start, stop) = (int_arg(&args[1])?, int_arg(&args[2])?);
                self.one(&key, Kind::List, now, lsn, |c| {
                    let Some(l) = list_of(c) else { return Ok((Reply::Array(vec![]), vec![])) };
                    let items = match index_range(start, stop, l.len()) {
                        Some((s, e)) => l.range(s, e),
                        None => vec![],
                    };
                    self.reply_fits(items.iter().map(|(_, v)| v.len() + 16).sum())?;
                    let out = items.into_iter().map(|(_, v)| bulk(v)).collect();
                    Ok((Reply::Array(out), vec![]))
                })
            }
            LIndex => {
                let i = int_arg(&args[1])?;
                self.one(&key, Kind::List, now, lsn, |c| {
                    let Some(l) = list_of(c) else { return Ok((Reply::Nil, vec![])) };
                    let pos = if i < 0 { l.len() as i64 + i } else { i };
                    let v = (pos >= 0).then(|| l.at(pos as usize)).flatten();
                    Ok((v.map(|(_, v)| bulk(v)).unwrap_or(Reply::Nil), vec![]))
                })
            }
            LSet => {
                let i = int_arg(&args[1])?;
                self.one(&key, Kind::List, now, lsn, |c| {
                    let Some(l) = list_of(c) else { return Err(CommandError::NoSuchKey) };
                    let pos = if i < 0 { l.len() as i64 + i } else { i };
                    let (idx, _) = (pos >= 0)
                        .then(|| l.at(pos as usize))
                        .flatten()
                        .ok_or_else(|| CommandError::Invalid("index out of range".into()))?;
                    Ok((Reply::Ok, vec![Op::LPut(idx, args[2].clone())]))
                })
            }
            LInsert => {
                let before = if is(&args[1], "before") {
                    true
                } else if is(&args[1], "after") {
                    false
                } else {
                    return Err(syntax());
                };
                self.one(&key, Kind::List, now, lsn, |c| {
                    let Some(l) = list_of(c) else { return Ok((Reply::Int(0), vec![])) };
                    let items = l.items();
                    let Some(p) = items.iter().position(|(_, v)| *v == &args[2][..]) else {
                        return Ok((Reply::Int(-1), vec![]));
                    };
                    let at = if before { p } else { p + 1 };
                    let (idx, moves) = insert_slot(&items, at)?;
                    // Moved neighbours: every removal first, then the puts (a new idx may be an old one).
                    let mut ops: Vec<Op> = moves.iter().map(|&(pos, _)| Op::LDel(items[pos].0)).collect();
                    ops.extend(moves.iter().map(|&(pos, new)| Op::LPut(new, Bytes::copy_from_slice(items[pos].1))));
                    ops.push(Op::LPut(idx, args[3].clone()));
                    Ok((Reply::Int(items.len() as i64 + 1), ops))
                })
            }
            LRem => {
                let count = int_arg(&args[1])?;
                self.one(&key, Kind::List, now, lsn, |c| {
                    let Some(l) = list_of(c) else { return Ok((Reply::Int(0), vec![])) };
                    let items = l.items();
                    let matches = items.iter().filter(|(_, v)| *v == &args[2][..]).map(|(i, _)| *i);
                    let limit = if count == 0 { usize::MAX } else { count.unsigned_abs() as usize };
                    let ops: Vec<Op> = if count >= 0 {
                        matches.take(limit).map(Op::LDel).collect()
                    } else {
                        matches.rev().take(limit).map(Op::LDel).collect()
                    };
                    Ok((Reply::Int(ops.len() as i64), ops))
                })
            }
            LTrim => {
                let (start, stop) = (int_arg(&args[1])?, int_arg(&args[2])?);
                self.one(&key, Kind::List, now, lsn, |c| {
                    let Some(l) = list_of(c) else { return Ok((Reply::Ok, vec![])) };
                    let ops = match index_range(start, stop, l.len()) {
                        Some((s, e)) if s == 0 && e + 1 == l.len() => vec![],
                        Some((s, e)) => {
                            vec![Op::LKeep(l.at(s).expect("in range").0, l.at(e).expect("in range").0)]
                        }
                        None => vec![Op::Del],
                    };
                    Ok((Reply::Ok, ops))
                })
            }
            LPos => self.lpos(&key, args, lsn, now),
            LMove | BLMove | RPopLPush | BRPopLPush => {
                let (from_left, to_left) = match cmd {
                    LMove | BLMove => (side(&args[2])?, side(&args[3])?),
                    _ => (false, true),
                };
                self.lmove(&args[0], &args[1], from_left, to_left, lsn, now)
            }
            BLPop | BRPop => {
                for k in args {
                    let r = self.one(k, Kind::List, now, lsn, |c| {
                        let Some(l) = list_of(c) else { return Ok((None, vec![])) };
                        let (idx, v) = if cmd == BLPop { l.at(0) } else { l.at(l.len() - 1) }.expect("non-empty");
                        Ok((Some(bulk(v)), vec![Op::LDel(idx)]))
                    })?;
                    if let Some(v) = r {
                        return Ok(Reply::Array(vec![Reply::Bulk(k.clone()), v]));
                    }
                }
                Ok(Reply::Nil)
            }
            SAdd => self.one(&key, Kind::Set, now, lsn, |c| {
                let s = set_of(c);
                let mut seen = hashbrown::HashSet::new();
                let ops: Vec<Op> = args[1..]
                    .iter()
                    .filter(|m| !s.is_some_and(|s| s.contains(m)) && seen.insert(&m[..]))
                    .map(|m| Op::SAdd(m.clone()))
                    .collect();
                Ok((Reply::Int(ops.len() as i64), ops))
            }),
            SRem => self.one(&key, Kind::Set, now, lsn, |c| {
                let s = set_of(c);
                let mut seen = hashbrown::HashSet::new();
                let ops: Vec<Op> = args[1..]
                    .iter()
                    .filter(|m| s.is_some_and(|s| s.contains(m)) && seen.insert(&m[..]))
                    .map(|m| Op::SRem(m.clone()))
                    .collect();
                Ok((Reply::Int(ops.len() as i64), ops))
            }),
            SIsMember => self.one(&key, Kind::Set, now, lsn, |c| {
                Ok((Reply::Int(set_of(c).is_some_and(|s| s.contains(&args[1])) as i64), vec![]))
            }),
            SMIsMember => self.one(&key, Kind::Set, now, lsn, |c| {
                let s = set_of(c);
                Ok((
                    Reply::Array(
                        args[1..].iter().map(|m| Reply::Int(s.is_some_and(|s| s.contains(m)) as i64)).collect(),
                    ),
                    vec![],
                ))
            }),
            SMembers => self.one(&key, Kind::Set, now, lsn, |c| {
                let members = set_of(c).map(|s| s.members()).unwrap_or_default();
                self.reply_fits(members.iter().map(|m| m.len() + 16).sum())?;
                Ok((Reply::Array(members.into_iter().map(bulk).collect()), vec![]))
            }),
            SCard => self
                .one(&key, Kind::Set, now, lsn, |c| Ok((Reply::Int(c.map(|c| c.len()).unwrap_or(0) as i64), vec![]))),
            SPop | SRandMember => {
                let count = match args.get(1) {
                    None => None,
                    Some(n) => Some(int_arg(n)?),
                };
                if args.len() > 2 {
                    return Err(syntax());
                }
                if cmd == SPop && count.is_some_and(|n| n < 0) {
                    return Err(CommandError::Invalid("value is out of range, must be positive".into()));
                }
                self.one(&key, Kind::Set, now, lsn, |c| {
                    let Some(s) = set_of(c) else {
                        return Ok((if count.is_some() { Reply::Array(vec![]) } else { Reply::Nil }, vec![]));
                    };
                    let mut rng = rand::rng();
                    let picked: Vec<&[u8]> = match count {
                        None => s.random(&mut rng).into_iter().collect(),
                        Some(n) => {
                            let members = s.members();
                            random_pick(&members.iter().map(|m| (*m, &b""[..])).collect::<Vec<_>>(), n)
                                .into_iter()
                                .map(|(m, _)| m)
                                .collect()
                        }
                    };
                    self.reply_fits(picked.iter().map(|m| m.len() + 16).sum())?;
                    let ops = if cmd == SPop {
                        picked.iter().map(|m| Op::SRem(Bytes::copy_from_slice(m))).collect()
                    } else {
                        vec![]
                    };
                    let reply = match count {
                        None => picked.first().map(|m| bulk(m)).unwrap_or(Reply::Nil),
                        Some(_) => Reply::Array(picked.iter().map(|m| bulk(m)).collect()),
                    };
                    Ok((reply, ops))
                })
            }
            SMove => {
                let (src, dst, m) = (args[0].clone(), args[1].clone(), args[2].clone());
                self.many(&[src.clone(), dst.clone()], &[Kind::Set], now, lsn, |colls| {
                    if !set_of(colls[0]).is_some_and(|s| s.contains(&m)) {
                        return Ok((Reply::Int(0), vec![]));
                    }
                    if src == dst {
                        return Ok((Reply::Int(1), vec![]));
                    }
                    Ok((Reply::Int(1), vec![(src.clone(), Op::SRem(m.clone())), (dst.clone(), Op::SAdd(m.clone()))]))
                })
            }
            SInter | SUnion | SDiff | SInterStore | SUnionStore | SDiffStore | SInterCard => {
                self.set_algebra(cmd, args, lsn, now)
            }
            SScan => self.one(&key, Kind::Set, now, lsn, |c| {
                let o = ScanOpts::parse(&args[1..])?;
                let (next, page) =
                    set_of(c).map(|s| s.scan(o.cursor, o.count, self.config.max_reply_bytes)).unwrap_or((0, vec![]));
                Ok((scan_reply(next, page.into_iter().filter(|m| o.matches(m)).map(bulk).collect()), vec![]))
            }),
            ZAdd | ZIncrBy => self.zadd(cmd, args, lsn, now),
            ZRem => self.one(&key, Kind::ZSet, now, lsn, |c| {
                let z = zset_of(c);
                let mut seen = hashbrown::HashSet::new();
                let ops: Vec<Op> = args[1..]
                    .iter()
                    .filter(|m| z.is_some_and(|z| z.score(m).is_some()) && seen.insert(&m[..]))
                    .map(|m| Op::ZRem(m.clone()))
                    .collect();
                Ok((Reply::Int(ops.len() as i64), ops))
            }),
            ZScore => self.one(&key, Kind::ZSet, now, lsn, |c| {
                Ok((zset_of(c).and_then(|z| z.score(&args[1])).map(score_reply).unwrap_or(Reply::Nil), vec![]))
            }),
            ZMScore => self.one(&key, Kind::ZSet, now, lsn, |c| {
                let z = zset_of(c);
                let out = args[1..]
                    .iter()
                    .map(|m| z.and_then(|z| z.score(m)).map(score_reply).unwrap_or(Reply::Nil))
                    .collect();
                Ok((Reply::Array(out), vec![]))
            }),
            ZCard => self
                .one(&key, Kind::ZSet, now, lsn, |c| Ok((Reply::Int(c.map(|c| c.len()).unwrap_or(0) as i64), vec![]))),
            ZCount => {
                let (min, max) = (score_bound(&args[1])?, score_bound(&args[2])?);
                self.one(&key, Kind::ZSet, now, lsn, |c| {
                    let n = zset_of(c).map(|z| {
                        let (lo, hi) = score_ranks(z, min, max);
                        hi - lo
                    });
                    Ok((Reply::Int(n.unwrap_or(0) as i64), vec![]))
                })
            }
            ZRange | ZRevRange | ZRangeByScore | ZRevRangeByScore | ZRangeByLex | ZRangeStore => {
                self.zrange(cmd, args, lsn, now)
            }
            ZRank | ZRevRank => {
                let withscore = match args.len() {
                    2 => false,
                    3 if is(&args[2], "withscore") => true,
                    _ => return Err(syntax()),
                };
                self.one(&key, Kind::ZSet, now, lsn, |c| {
                    let Some(z) = zset_of(c) else { return Ok((Reply::Nil, vec![])) };
                    let Some(rank) = z.rank(&args[1]) else { return Ok((Reply::Nil, vec![])) };
                    let rank = if cmd == ZRank { rank } else { z.len() - 1 - rank };
                    let r = if withscore {
                        Reply::Array(vec![Reply::Int(rank as i64), score_reply(z.score(&args[1]).expect("member"))])
                    } else {
                        Reply::Int(rank as i64)
                    };
                    Ok((r, vec![]))
                })
            }
            ZPopMin | ZPopMax => {
                let count = match args.get(1) {
                    None => None,
                    Some(n) => {
                        let n = int_arg(n)?;
                        if n < 0 {
                            return Err(CommandError::Invalid("value is out of range, must be positive".into()));
                        }
                        Some(n as usize)
                    }
                };
                if args.len() > 2 {
                    return Err(syntax());
                }
                self.one(&key, Kind::ZSet, now, lsn, |c| {
                    let Some(z) = zset_of(c) else { return Ok((Reply::Array(vec![]), vec![])) };
                    let n = count.unwrap_or(1).min(z.len());
                    let picked = if cmd == ZPopMin {
                        z.range(0, n)
                    } else {
                        let mut v = z.range(z.len() - n, z.len());
                        v.reverse();
                        v
                    };
                    let ops = picked.iter().map(|(_, m)| Op::ZRem(Bytes::copy_from_slice(m))).collect();
                    let out = picked.iter().flat_map(|(s, m)| [bulk(m), score_reply(*s)]).collect();
                    Ok((Reply::Array(out), ops))
                })
            }
            BZPopMin | BZPopMax => {
                for k in args {
                    let r = self.one(k, Kind::ZSet, now, lsn, |c| {
                        let Some(z) = zset_of(c) else { return Ok((None, vec![])) };
                        let (s, m) = if cmd == BZPopMin { z.at(0) } else { z.at(z.len() - 1) }.expect("non-empty");
                        Ok((Some((bulk(m), score_reply(s))), vec![Op::ZRem(Bytes::copy_from_slice(m))]))
                    })?;
                    if let Some((m, s)) = r {
                        return Ok(Reply::Array(vec![Reply::Bulk(k.clone()), m, s]));
                    }
                }
                Ok(Reply::Nil)
            }
            ZRemRangeByScore | ZRemRangeByRank => {
                let (a, b) = (args[1].clone(), args[2].clone());
                let by_score = cmd == ZRemRangeByScore;
                let bounds = if by_score { Some((score_bound(&a)?, score_bound(&b)?)) } else { None };
                let ranks = if by_score { None } else { Some((int_arg(&a)?, int_arg(&b)?)) };
                self.one(&key, Kind::ZSet, now, lsn, |c| {
                    let Some(z) = zset_of(c) else { return Ok((Reply::Int(0), vec![])) };
                    let (lo, hi) = match (bounds, ranks) {
                        (Some((min, max)), _) => score_ranks(z, min, max),
                        (_, Some((s, e))) => index_range(s, e, z.len()).map(|(s, e)| (s, e + 1)).unwrap_or((0, 0)),
                        _ => (0, 0),
                    };
                    let ops: Vec<Op> =
                        z.range(lo, hi).into_iter().map(|(_, m)| Op::ZRem(Bytes::copy_from_slice(m))).collect();
                    Ok((Reply::Int(ops.len() as i64), ops))
                })
            }
            ZUnionStore | ZInterStore => self.zstore(cmd, args, lsn, now),
            ZScan => self.one(&key, Kind::ZSet, now, lsn, |c| {
                let o = ScanOpts::parse(&args[1..])?;
                let (next, page) =
                    zset_of(c).map(|z| z.scan(o.cursor, o.count, self.config.max_reply_bytes)).unwrap_or((0, vec![]));
                let out = page
                    .into_iter()
                    .filter(|(_, m)| o.matches(m))
                    .flat_map(|(s, m)| [bulk(m), Reply::Bulk(score_text(s))])
                    .collect();
                Ok((scan_reply(next, out), vec![]))
            }),
        }
    }

    fn lpos(&self, key: &Bytes, args: &[Bytes], lsn: &mut u64, now: u64) -> Result<Reply> {
        let (mut rank, mut count, mut maxlen) = (1i64, None, 0usize);
        let mut i = 2;
        while i < args.len() {
            let v = args.get(i + 1).ok_or_else(syntax)?;
            if is(&args[i], "rank") {
                rank = int_arg(v)?;
                if rank == 0 {
                    return Err(CommandError::Invalid(
                        "RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list".into(),
                    ));
                }
            } else if is(&args[i], "count") {
                let n = int_arg(v)?;
                if n < 0 {
                    return Err(CommandError::Invalid("COUNT can't be negative".into()));
                }
                count = Some(n as usize);
            } else if is(&args[i], "maxlen") {
                let n = int_arg(v)?;
                if n < 0 {
                    return Err(CommandError::Invalid("MAXLEN can't be negative".into()));
                }
                maxlen = n as usize;
            } else {
                return Err(syntax());
            }
            i += 2;
        }
        self.one(key, Kind::List, now, lsn, |c| {
            let Some(l) = list_of(c) else {
                return Ok((if count.is_some() { Reply::Array(vec![]) } else { Reply::Nil }, vec![]));
            };
            let items = l.items();
            let n = items.len();
            let order: Box<dyn Iterator<Item = usize>> = if rank > 0 { Box::new(0..n) } else { Box::new((0..n).rev()) };
            let limit = if maxlen == 0 { n } else { maxlen };
            let mut skip = rank.unsigned_abs() as usize - 1;
            let want = match count {
                None => 1,
                Some(0) => usize::MAX,
                Some(c) => c,
            };
            let mut found = Vec::new();
            for p in order.take(limit) {
                if items[p].1 == &args[1][..] {
                    if skip > 0 {
                        skip -= 1;
                        continue;
                    }
                    found.push(Reply::Int(p as i64));
                    if found.len() >= want {
                        break;
                    }
                }
            }
            let reply = match count {
                None => found.into_iter().next().unwrap_or(Reply::Nil),
                Some(_) => Reply::Array(found),
            };
            Ok((reply, vec![]))
        })
    }

    fn lmove(
        &self,
        src: &Bytes,
        dst: &Bytes,
        from_left: bool,
        to_left: bool,
        lsn: &mut u64,
        now: u64,
    ) -> Result<Reply> {
        self.many(&[src.clone(), dst.clone()], &[Kind::List], now, lsn, |colls| {
            let Some(s) = list_of(colls[0]) else { return Ok((Reply::Nil, vec![])) };
            let (idx, v) = if from_left { s.at(0) } else { s.at(s.len() - 1) }.expect("non-empty");
            let v = Bytes::copy_from_slice(v);
            let mut ops = vec![(src.clone(), Op::LDel(idx))];
            // The destination's new end, seen after the pop when it is the same list.
            let d = list_of(colls[1]);
            let (first, last) = match d {
                Some(d) if src == dst => {
                    let items: Vec<i64> = d.items().into_iter().map(|(i, _)| i).filter(|i| *i != idx).collect();
                    (items.first().copied(), items.last().copied())
                }
                Some(d) => (d.first_idx(), d.last_idx()),
                None => (None, None),
            };
            let new_idx = end_slot(first, last, to_left)?;
            ops.push((dst.clone(), Op::LPut(new_idx, v.clone())));
            Ok((Reply::Bulk(v), ops))
        })
    }

    fn set_algebra(&self, cmd: CollCmd, args: &[Bytes], lsn: &mut u64, now: u64) -> Result<Reply> {
        use CollCmd::*;
        let (dst, keys, limit): (Option<Bytes>, Vec<Bytes>, usize) = match cmd {
            SInterStore | SUnionStore | SDiffStore => (Some(args[0].clone()), args[1..].to_vec(), 0),
            SInterCard => {
                let n = int_arg(&args[0])?;
                if n <= 0 {
                    return Err(CommandError::Invalid("numkeys should be greater than 0".into()));
                }
                let n = n as usize;
                if args.len() < 1 + n {
                    return Err(CommandError::Invalid("Number of keys can't be greater than number of args".into()));
                }
                let rest = &args[1 + n..];
                let limit = match rest {
                    [] => 0,
                    [w, v] if is(w, "limit") => {
                        let l = int_arg(v)?;
                        if l < 0 {
                            return Err(CommandError::Invalid("LIMIT can't be negative".into()));
                        }
                        l as usize
                    }
                    _ => return Err(syntax()),
                };
                (None, args[1..1 + n].to_vec(), limit)
            }
            _ => (None, args.to_vec(), 0),
        };
        let mut all = keys.clone();
        if let Some(d) = &dst {
            all.push(d.clone());
        }
        let n_src = keys.len();
        self.many(&all, &[Kind::Set], now, lsn, |colls| {
            let sets: Vec<Option<&SetV>> = colls[..n_src].iter().map(|c| set_of(*c)).collect();
            let result: Vec<&[u8]> = match cmd {
                SInter | SInterStore | SInterCard => {
                    if sets.iter().any(|s| s.is_none()) {
                        vec![]
                    } else {
                        let mut order: Vec<&SetV> = sets.iter().map(|s| s.expect("present")).collect();
                        order.sort_by_key(|s| s.len());
                        order[0].members().into_iter().filter(|m| order[1..].iter().all(|s| s.contains(m))).collect()
                    }
                }
                SUnion | SUnionStore => {
                    let mut seen = hashbrown::HashSet::new();
                    sets.iter().flatten().flat_map(|s| s.members()).filter(|m| seen.insert(*m)).collect()
                }
                _ => match sets[0] {
                    None => vec![],
                    Some(first) => first
                        .members()
                        .into_iter()
                        .filter(|m| !sets[1..].iter().flatten().any(|s| s.contains(m)))
                        .collect(),
                },
            };
            match (cmd, &dst) {
                (SInterCard, _) => {
                    let n = if limit > 0 { result.len().min(limit) } else { result.len() };
                    Ok((Reply::Int(n as i64), vec![]))
                }
                (_, Some(d)) => {
                    let mut c = Coll::empty(Kind::Set);
                    if let Coll::Set(s) = &mut c {
                        for m in &result {
                            s.add(m);
                        }
                    }
                    let op = if result.is_empty() { Op::Del } else { restore(Kind::Set, &c)? };
                    let del_first = (d.clone(), Op::Del);
                    Ok((Reply::Int(result.len() as i64), vec![del_first, (d.clone(), op)]))
                }
                _ => {
                    self.reply_fits(result.iter().map(|m| m.len() + 16).sum())?;
                    Ok((Reply::Array(result.into_iter().map(bulk).collect()), vec![]))
                }
            }
        })
    }

    fn zadd(&self, cmd: CollCmd, args: &[Bytes], lsn: &mut u64, now: u64) -> Result<Reply> {
        let key = args[0].clone();
        let (mut nx, mut xx, mut gt, mut lt, mut ch, mut incr) =
            (false, false, false, false, false, cmd == CollCmd::ZIncrBy);
        let mut i = 1;
        if cmd == CollCmd::ZAdd {
            while i < args.len() {
                let a = &args[i];
                if is(a, "nx") {
                    nx = true;
                } else if is(a, "xx") {
                    xx = true;
                } else if is(a, "gt") {
                    gt = true;
                } else if is(a, "lt") {
                    lt = true;
                } else if is(a, "ch") {
                    ch = true;
                } else if is(a, "incr") {
                    incr = true;
                } else {
                    break;
                }
                i += 1;
            }
        }
        let rest = &args[i..];
        if rest.is_empty() || !rest.len().is_multiple_of(2) {
            return Err(syntax());
        }
        if nx && xx {
            return Err(CommandError::Invalid("XX and NX options at the same time are not compatible".into()));
        }
        if (gt && lt) || (nx && (gt || lt)) {
            return Err(CommandError::Invalid("GT, LT, and/or NX options at the same time are not compatible".into()));
        }
        if incr && rest.len() != 2 {
            return Err(CommandError::Invalid("INCR option supports a single increment-element pair".into()));
        }
        let pairs: Vec<(f64, Bytes)> =
            rest.chunks(2).map(|p| Ok((float_arg(&p[0])?, p[1].clone()))).collect::<Result<_>>()?;
        self.one(&key, Kind::ZSet, now, lsn, |c| {
            let z = zset_of(c);
            let mut ops = Vec::new();
            let (mut added, mut changed) = (0, 0);
            let mut scores: hashbrown::HashMap<&[u8], f64> = hashbrown::HashMap::new();
            let mut last = None;
            for (s, m) in &pairs {
                let cur = scores.get(&m[..]).copied().or_else(|| z.and_then(|z| z.score(m)));
                if (nx && cur.is_some()) || (xx && cur.is_none()) {
                    continue;
                }
                let new = if incr { cur.unwrap_or(0.0) + s } else { *s };
                if new.is_nan() {
                    return Err(CommandError::Invalid("resulting score is not a number (NaN)".into()));
                }
                if let Some(c) = cur
                    && ((gt && new <= c) || (lt && new >= c))
                {
                    continue;
                }
                last = Some(new);
                match cur {
                    None => added += 1,
                    Some(c) if c != new => changed += 1,
                    Some(_) => {
                        continue;
                    }
                }
                scores.insert(m, new);
                ops.push(Op::ZSet(m.clone(), new));
            }
            let reply = if incr {
                match (last, &pairs[0]) {
                    (Some(s), _) => score_reply(s),
                    // An INCR that changed nothing answers the current score (or nil when skipped).
                    (None, (_, m)) if !nx && !xx && !gt && !lt => {
                        z.and_then(|z| z.score(m)).map(score_reply).unwrap_or(Reply::Nil)
                    }
                    _ => Reply::Nil,
                }
            } else {
                Reply::Int(if ch { added + changed } else { added })
            };
            Ok((reply, ops))
        })
    }

    fn zrange(&self, cmd: CollCmd, args: &[Bytes], lsn: &mut u64, now: u64) -> Result<Reply> {
        use CollCmd::*;
        // Normalize every form to ZRANGE's: (key, min, max, by, rev, limit, withscores, dst).
        let (dst, src_args) = if cmd == ZRangeStore { (Some(args[0].clone()), &args[1..]) } else { (None, args) };
        let key = src_args[0].clone();
        let (mut by_score, mut by_lex, mut rev, mut withscores) = (false, false, false, false);
        let mut limit: Option<(i64, i64)> = None;
        let (mut a, mut b) = (src_args[1].clone(), src_args[2].clone());
        match cmd {
            ZRevRange => rev = true,
            ZRangeByScore => by_score = true,
            ZRevRangeByScore => {
                by_score = true;
                rev = true;
                std::mem::swap(&mut a, &mut b);
            }
            ZRangeByLex => by_lex = true,
            _ => {}
        }
        let mut i = 3;
        while i < src_args.len() {
            let w = &src_args[i];
            if is(w, "byscore") && matches!(cmd, ZRange | ZRangeStore) {
                by_score = true;
            } else if is(w, "bylex") && matches!(cmd, ZRange | ZRangeStore) {
                by_lex = true;
            } else if is(w, "rev") && matches!(cmd, ZRange | ZRangeStore) {
                rev = true;
            } else if is(w, "withscores") && cmd != ZRangeStore && cmd != ZRangeByLex {
                withscores = true;
            } else if is(w, "limit") && i + 2 < src_args.len() {
                limit = Some((int_arg(&src_args[i + 1])?, int_arg(&src_args[i + 2])?));
                i += 2;
            } else {
                return Err(syntax());
            }
            i += 1;
        }
        if by_score && by_lex {
            return Err(syntax());
        }
        if limit.is_some() && !by_score && !by_lex {
            return Err(CommandError::Invalid(
                "syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX".into(),
            ));
        }
        if withscores && by_lex {
            return Err(CommandError::Invalid(
                "syntax error, WITHSCORES not supported in combination with BYLEX".into(),
            ));
        }
        if matches!(cmd, ZRange | ZRangeStore) && rev && (by_score || by_lex) {
            std::mem::swap(&mut a, &mut b);
        }
        let score_bounds = if by_score { Some((score_bound(&a)?, score_bound(&b)?)) } else { None };
        let lex_bounds = if by_lex { Some((lex_bound(&a)?, lex_bound(&b)?)) } else { None };
        let ranks = if !by_score && !by_lex { Some((int_arg(&a)?, int_arg(&b)?)) } else { None };
        let mut keys = vec![key];
        if let Some(d) = &dst {
            keys.push(d.clone());
        }
        self.many(&keys, &[Kind::ZSet], now, lsn, |colls| {
            let items: Vec<(f64, &[u8])> = match zset_of(colls[0]) {
                None => vec![],
                Some(z) => {
                    let (lo, hi) = match (&score_bounds, &lex_bounds, ranks) {
                        (Some((min, max)), _, _) => score_ranks(z, *min, *max),
                        (_, Some((min, max)), _) => lex_ranks(z, min, max),
                        (_, _, Some((s, e))) => {
                            // For REV the ranks count from the end.
                            match index_range(s, e, z.len()) {
                                Some((s, e)) if rev => (z.len() - 1 - e, z.len() - s),
                                Some((s, e)) => (s, e + 1),
                                None => (0, 0),
                            }
                        }
                        _ => (0, 0),
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
            if let Some(d) = &dst {
                let mut c = Coll::empty(Kind::ZSet);
                if let Coll::ZSet(z) = &mut c {
                    for (s, m) in &items {
                        z.set(m, *s);
                    }
                }
                let op = if items.is_empty() { Op::Del } else { restore(Kind::ZSet, &c)? };
                return Ok((Reply::Int(items.len() as i64), vec![(d.clone(), Op::Del), (d.clone(), op)]));
            }
            self.reply_fits(items.iter().map(|(_, m)| m.len() + 40).sum())?;
            let out = items
                .into_iter()
                .flat_map(|(s, m)| if withscores { vec![bulk(m), score_reply(s)] } else { vec![bulk(m)] })
                .collect();
            Ok((Reply::Array(out), vec![]))
        })
    }

    fn zstore(&self, cmd: CollCmd, args: &[Bytes], lsn: &mut u64, now: u64) -> Result<Reply> {
        let dst = args[0].clone();
        let n = int_arg(&args[1])?;
        if n <= 0 {
            return Err(CommandError::Invalid(format!("at least 1 input key is needed for '{}' command", cmd.name())));
        }
        let n = n as usize;
        if args.len() < 2 + n {
            return Err(syntax());
        }
        let srcs: Vec<Bytes> = args[2..2 + n].to_vec();
        let mut weights = vec![1.0; n];
        let mut agg = 0u8; // 0 sum, 1 min, 2 max
        let mut i = 2 + n;
        while i < args.len() {
            if is(&args[i], "weights") && i + n < args.len() {
                for (j, w) in weights.iter_mut().enumerate() {
                    *w = parse_score(&args[i + 1 + j])
                        .ok_or_else(|| CommandError::Invalid("weight value is not a float".into()))?;
                }
                i += 1 + n;
            } else if is(&args[i], "aggregate") && i + 1 < args.len() {
                agg = match &args[i + 1].to_ascii_lowercase()[..] {
                    b"sum" => 0,
                    b"min" => 1,
                    b"max" => 2,
                    _ => return Err(syntax()),
                };
                i += 2;
            } else {
                return Err(syntax());
            }
        }
        let mut keys = srcs.clone();
        keys.push(dst.clone());
        self.many(&keys, &[Kind::ZSet, Kind::Set], now, lsn, |colls| {
            let inputs: Vec<Vec<(f64, &[u8])>> = colls[..n]
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
                    let v = s * weights[j];
                    let v = if v.is_nan() { 0.0 } else { v };
                    acc.entry(m)
                        .and_modify(|(cur, cnt)| {
                            *cur = match agg {
                                0 => {
                                    let t = *cur + v;
                                    if t.is_nan() { 0.0 } else { t }
                                }
                                1 => cur.min(v),
                                _ => cur.max(v),
                            };
                            *cnt += 1;
                        })
                        .or_insert((v, 1));
                }
            }
            let result: Vec<(&[u8], f64)> = acc
                .into_iter()
                .filter(|(_, (_, cnt))| cmd == CollCmd::ZUnionStore || *cnt == n)
                .map(|(m, (s, _))| (m, s))
                .collect();
            let mut c = Coll::empty(Kind::ZSet);
            if let Coll::ZSet(z) = &mut c {
                for (m, s) in &result {
                    z.set(m, *s);
                }
            }
            let op = if result.is_empty() { Op::Del } else { restore(Kind::ZSet, &c)? };
            Ok((Reply::Int(result.len() as i64), vec![(dst.clone(), Op::Del), (dst.clone(), op)]))
        })
    }

    /// Whether `key` holds a non-empty list or sorted set (blocking pops wait until one does).
    pub fn has_elements(&self, key: &[u8], now: u64) -> bool {
        let h = self.hash(key);
        let mut shard = self.lock(h);
        self.find_live(&mut shard, h, key, now)
            .is_some_and(|p| shard.entry(p).coll.as_ref().is_some_and(|c| !c.is_empty()))
    }
}

fn side(b: &[u8]) -> Result<bool> {
    if is(b, "left") {
        Ok(true)
    } else if is(b, "right") {
        Ok(false)
    } else {
        Err(syntax())
    }
}

fn hash_of(c: Option<&Coll>) -> Option<&HashV> {
    match c {
        Some(Coll::Hash(h)) => Some(h),
        _ => None,
    }
}

fn list_of(c: Option<&Coll>) -> Option<&ListV> {
    match c {
        Some(Coll::List(l)) if l.len() > 0 => Some(l),
        _ => None,
    }
}

fn set_of(c: Option<&Coll>) -> Option<&SetV> {
    match c {
        Some(Coll::Set(s)) => Some(s),
        _ => None,
    }
}

fn zset_of(c: Option<&Coll>) -> Option<&ZSetV> {
    match c {
        Some(Coll::ZSet(z)) => Some(z),
        _ => None,
    }
}

/// HRANDFIELD/SRANDMEMBER with a count: positive = distinct items (at most all), negative = `|n|` picks
/// that may repeat.
fn random_pick<'a>(items: &[(&'a [u8], &'a [u8])], n: i64) -> Vec<(&'a [u8], &'a [u8])> {
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
