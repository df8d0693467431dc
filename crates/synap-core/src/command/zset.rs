//! Sorted-set commands ([`ZSetCmd`]), their range bounds, and their parsers.

use bytes::Bytes;

use super::Command;
use super::args::{Args, is, parse_score};
use super::hash::CollScan;
use crate::error::{CommandError, Result};

/// ZADD's options.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ZAddFlags {
    pub nx: bool,
    pub xx: bool,
    pub gt: bool,
    pub lt: bool,
    /// Count changed members as well as added ones.
    pub ch: bool,
    /// Increment the score (ZINCRBY's form); answers the new score.
    pub incr: bool,
}

impl ZAddFlags {
    /// Redis's checks of the options against each other and the number of pairs, in Redis's order.
    pub fn check(&self, pairs: usize) -> Result<()> {
        if self.nx && self.xx {
            return Err(CommandError::Invalid("XX and NX options at the same time are not compatible".into()));
        }
        if (self.gt && self.lt) || (self.nx && (self.gt || self.lt)) {
            return Err(CommandError::Invalid("GT, LT, and/or NX options at the same time are not compatible".into()));
        }
        if self.incr && pairs != 1 {
            return Err(CommandError::Invalid("INCR option supports a single increment-element pair".into()));
        }
        Ok(())
    }
}

/// A score range bound: `(1.5`, `1.5`, `-inf`, `+inf`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScoreBound {
    pub value: f64,
    pub exclusive: bool,
}

impl ScoreBound {
    pub fn parse(b: &[u8]) -> Result<ScoreBound> {
        let err = || CommandError::Invalid("min or max is not a float".into());
        match b.first() {
            Some(b'(') => Ok(ScoreBound { value: parse_score(&b[1..]).ok_or_else(err)?, exclusive: true }),
            _ => Ok(ScoreBound { value: parse_score(b).ok_or_else(err)?, exclusive: false }),
        }
    }

    pub fn inclusive(value: f64) -> ScoreBound {
        ScoreBound { value, exclusive: false }
    }
}

/// A lex range bound: `-`, `+`, `[x`, `(x`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LexBound {
    Min,
    Max,
    Incl(Bytes),
    Excl(Bytes),
}

impl LexBound {
    pub fn parse(b: &Bytes) -> Result<LexBound> {
        match b.first() {
            Some(b'-') if b.len() == 1 => Ok(LexBound::Min),
            Some(b'+') if b.len() == 1 => Ok(LexBound::Max),
            Some(b'[') => Ok(LexBound::Incl(b.slice(1..))),
            Some(b'(') => Ok(LexBound::Excl(b.slice(1..))),
            _ => Err(CommandError::Invalid("min or max not valid string range item".into())),
        }
    }
}

/// What a ZRANGE selects by: ranks (negative from the end), scores, or member names.
#[derive(Debug, Clone, PartialEq)]
pub enum ZRangeBy {
    Rank(i64, i64),
    Score(ScoreBound, ScoreBound),
    Lex(LexBound, LexBound),
}

/// Every form of ZRANGE (ZREVRANGE, ZRANGEBYSCORE, ... ZRANGESTORE), bounds as (min, max) whatever order
/// the form took them in.
#[derive(Debug, Clone, PartialEq)]
pub struct ZRange {
    pub key: Bytes,
    pub by: ZRangeBy,
    pub rev: bool,
    /// LIMIT offset count (count < 0: all).
    pub limit: Option<(i64, i64)>,
    pub with_scores: bool,
    /// ZRANGESTORE's destination.
    pub store: Option<Bytes>,
    /// The command's name (the table row it came from).
    pub form: &'static str,
}

/// ZRANGE's options, as given.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RangeOpts {
    pub by_score: bool,
    pub by_lex: bool,
    pub rev: bool,
    pub limit: Option<(i64, i64)>,
    pub with_scores: bool,
}

impl ZRange {
    /// A range from its two bounds in the form's argument order (ZRANGE ... REV BYSCORE takes max first),
    /// read as ranks, scores or names as the options say, with Redis's checks of the options.
    pub fn build(
        key: Bytes,
        lo: &Bytes,
        hi: &Bytes,
        o: RangeOpts,
        store: Option<Bytes>,
        form: &'static str,
    ) -> Result<ZRange> {
        if o.by_score && o.by_lex {
            return Err(CommandError::Syntax);
        }
        // As Redis 7.0 checks it: a LIMIT whose count is -1 (all) passes with ranks, and is ignored.
        if o.limit.is_some_and(|(_, count)| count != -1) && !o.by_score && !o.by_lex {
            return Err(CommandError::Invalid(
                "syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX".into(),
            ));
        }
        if o.with_scores && o.by_lex {
            return Err(CommandError::Invalid(
                "syntax error, WITHSCORES not supported in combination with BYLEX".into(),
            ));
        }
        let general = matches!(form, "zrange" | "zrangestore");
        let (lo, hi) = if general && o.rev && (o.by_score || o.by_lex) { (hi, lo) } else { (lo, hi) };
        let by = if o.by_score {
            ZRangeBy::Score(ScoreBound::parse(lo)?, ScoreBound::parse(hi)?)
        } else if o.by_lex {
            ZRangeBy::Lex(LexBound::parse(lo)?, LexBound::parse(hi)?)
        } else {
            let start = super::args::parse_i64(lo).ok_or(CommandError::NotInteger)?;
            ZRangeBy::Rank(start, super::args::parse_i64(hi).ok_or(CommandError::NotInteger)?)
        };
        let limit = if o.by_score || o.by_lex { o.limit } else { None };
        Ok(ZRange { key, by, rev: o.rev, limit, with_scores: o.with_scores, store, form })
    }

    /// A plain `ZRANGE key start stop`.
    pub fn by_rank(key: impl Into<Bytes>, start: i64, stop: i64) -> ZRange {
        ZRange {
            key: key.into(),
            by: ZRangeBy::Rank(start, stop),
            rev: false,
            limit: None,
            with_scores: false,
            store: None,
            form: "zrange",
        }
    }
}

/// ZUNION, ZINTER, ZDIFF and their STORE forms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZStoreOp {
    Union,
    Inter,
    Diff,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Aggregate {
    #[default]
    Sum,
    Min,
    Max,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ZSetCmd {
    /// The geo commands (sorted sets of geohash scores).
    Geo(super::geo::GeoCmd),
    Add {
        key: Bytes,
        flags: ZAddFlags,
        pairs: Vec<(f64, Bytes)>,
    },
    IncrBy {
        key: Bytes,
        by: f64,
        member: Bytes,
    },
    Rem {
        key: Bytes,
        members: Vec<Bytes>,
    },
    Score {
        key: Bytes,
        member: Bytes,
    },
    MScore {
        key: Bytes,
        members: Vec<Bytes>,
    },
    Card {
        key: Bytes,
    },
    Count {
        key: Bytes,
        min: ScoreBound,
        max: ScoreBound,
    },
    Range(ZRange),
    /// ZRANK/ZREVRANK (`rev`), with the score when `with_score`.
    Rank {
        key: Bytes,
        member: Bytes,
        rev: bool,
        with_score: bool,
    },
    /// ZPOPMIN/ZPOPMAX (`max`).
    Pop {
        key: Bytes,
        max: bool,
        count: Option<usize>,
    },
    /// BZPOPMIN/BZPOPMAX; `timeout_ms` `None` waits forever.
    BPop {
        keys: Vec<Bytes>,
        max: bool,
        timeout_ms: Option<u64>,
    },
    RemRangeByScore {
        key: Bytes,
        min: ScoreBound,
        max: ScoreBound,
    },
    RemRangeByRank {
        key: Bytes,
        start: i64,
        stop: i64,
    },
    /// ZUNION/ZINTER/ZDIFF (`dst` None: the result is the reply) and their STORE forms.
    Store {
        op: ZStoreOp,
        dst: Option<Bytes>,
        keys: Vec<Bytes>,
        weights: Vec<f64>,
        aggregate: Aggregate,
        with_scores: bool,
    },
    /// ZINTERCARD: the size of the intersection, counting up to `limit` (0: no limit).
    InterCard {
        keys: Vec<Bytes>,
        limit: usize,
    },
    LexCount {
        key: Bytes,
        min: LexBound,
        max: LexBound,
    },
    RemRangeByLex {
        key: Bytes,
        min: LexBound,
        max: LexBound,
    },
    /// ZRANDMEMBER: one member without a count; with one, distinct members (positive) or picks that may
    /// repeat (negative).
    RandMember {
        key: Bytes,
        count: Option<i64>,
        with_scores: bool,
    },
    /// ZMPOP (`block` None) and BZMPOP (`block` Some(timeout), None waiting forever): up to `count`
    /// members from the first non-empty key.
    MPop {
        keys: Vec<Bytes>,
        max: bool,
        count: usize,
        block: Option<Option<u64>>,
    },
    Scan {
        key: Bytes,
        scan: CollScan,
    },
}

impl ZSetCmd {
    pub fn name(&self) -> &'static str {
        match self {
            ZSetCmd::Geo(g) => g.name(),
            ZSetCmd::Add { .. } => "zadd",
            ZSetCmd::IncrBy { .. } => "zincrby",
            ZSetCmd::Rem { .. } => "zrem",
            ZSetCmd::Score { .. } => "zscore",
            ZSetCmd::MScore { .. } => "zmscore",
            ZSetCmd::Card { .. } => "zcard",
            ZSetCmd::Count { .. } => "zcount",
            ZSetCmd::Range(r) => r.form,
            ZSetCmd::Rank { rev: false, .. } => "zrank",
            ZSetCmd::Rank { rev: true, .. } => "zrevrank",
            ZSetCmd::Pop { max: false, .. } => "zpopmin",
            ZSetCmd::Pop { max: true, .. } => "zpopmax",
            ZSetCmd::BPop { max: false, .. } => "bzpopmin",
            ZSetCmd::BPop { max: true, .. } => "bzpopmax",
            ZSetCmd::RemRangeByScore { .. } => "zremrangebyscore",
            ZSetCmd::RemRangeByRank { .. } => "zremrangebyrank",
            ZSetCmd::Store { op: ZStoreOp::Union, dst: Some(_), .. } => "zunionstore",
            ZSetCmd::Store { op: ZStoreOp::Inter, dst: Some(_), .. } => "zinterstore",
            ZSetCmd::Store { op: ZStoreOp::Diff, dst: Some(_), .. } => "zdiffstore",
            ZSetCmd::Store { op: ZStoreOp::Union, dst: None, .. } => "zunion",
            ZSetCmd::Store { op: ZStoreOp::Inter, dst: None, .. } => "zinter",
            ZSetCmd::Store { op: ZStoreOp::Diff, dst: None, .. } => "zdiff",
            ZSetCmd::InterCard { .. } => "zintercard",
            ZSetCmd::LexCount { .. } => "zlexcount",
            ZSetCmd::RemRangeByLex { .. } => "zremrangebylex",
            ZSetCmd::RandMember { .. } => "zrandmember",
            ZSetCmd::MPop { block: None, .. } => "zmpop",
            ZSetCmd::MPop { block: Some(_), .. } => "bzmpop",
            ZSetCmd::Scan { .. } => "zscan",
        }
    }
}

fn zset(c: ZSetCmd) -> Result<Command> {
    Ok(Command::ZSet(c))
}

pub(super) fn zadd(a: &mut Args<'_>) -> Result<Command> {
    let key = a.next_bytes()?;
    let mut f = ZAddFlags::default();
    loop {
        if a.eat("nx") {
            f.nx = true;
        } else if a.eat("xx") {
            f.xx = true;
        } else if a.eat("gt") {
            f.gt = true;
        } else if a.eat("lt") {
            f.lt = true;
        } else if a.eat("ch") {
            f.ch = true;
        } else if a.eat("incr") {
            f.incr = true;
        } else {
            break;
        }
    }
    let rest = a.rest();
    if rest.is_empty() || !rest.len().is_multiple_of(2) {
        return Err(CommandError::Syntax);
    }
    f.check(rest.len() / 2)?;
    let pairs = rest
        .chunks(2)
        .map(|p| Ok((parse_score(&p[0]).ok_or(CommandError::NotFloat)?, p[1].clone())))
        .collect::<Result<_>>()?;
    zset(ZSetCmd::Add { key, flags: f, pairs })
}

pub(super) fn zincrby(a: &mut Args<'_>) -> Result<Command> {
    let key = a.next_bytes()?;
    let by = parse_score(&a.next_bytes()?).ok_or(CommandError::NotFloat)?;
    zset(ZSetCmd::IncrBy { key, by, member: a.next_bytes()? })
}

pub(super) fn zrem(a: &mut Args<'_>) -> Result<Command> {
    zset(ZSetCmd::Rem { key: a.next_bytes()?, members: a.rest() })
}

pub(super) fn zscore(a: &mut Args<'_>) -> Result<Command> {
    zset(ZSetCmd::Score { key: a.next_bytes()?, member: a.next_bytes()? })
}

pub(super) fn zmscore(a: &mut Args<'_>) -> Result<Command> {
    zset(ZSetCmd::MScore { key: a.next_bytes()?, members: a.rest() })
}

pub(super) fn zcard(a: &mut Args<'_>) -> Result<Command> {
    zset(ZSetCmd::Card { key: a.next_bytes()? })
}

pub(super) fn zcount(a: &mut Args<'_>) -> Result<Command> {
    let key = a.next_bytes()?;
    let min = ScoreBound::parse(&a.next_bytes()?)?;
    zset(ZSetCmd::Count { key, min, max: ScoreBound::parse(&a.next_bytes()?)? })
}

/// Every ZRANGE form: the form's name decides which options it takes and how its bounds are ordered.
fn zrange_form(a: &mut Args<'_>, form: &'static str) -> Result<Command> {
    let store = if form == "zrangestore" { Some(a.next_bytes()?) } else { None };
    let key = a.next_bytes()?;
    let (mut lo, mut hi) = (a.next_bytes()?, a.next_bytes()?);
    let general = matches!(form, "zrange" | "zrangestore");
    let (mut by_score, mut by_lex, mut rev, mut with_scores) = (false, false, false, false);
    match form {
        "zrevrange" => rev = true,
        "zrangebyscore" => by_score = true,
        "zrevrangebyscore" => {
            by_score = true;
            rev = true;
            std::mem::swap(&mut lo, &mut hi);
        }
        "zrangebylex" => by_lex = true,
        "zrevrangebylex" => {
            by_lex = true;
            rev = true;
            std::mem::swap(&mut lo, &mut hi);
        }
        _ => {}
    }
    let mut limit = None;
    while let Some(w) = a.peek() {
        if general && is(w, "byscore") {
            by_score = true;
        } else if general && is(w, "bylex") {
            by_lex = true;
        } else if general && is(w, "rev") {
            rev = true;
        } else if is(w, "withscores") && !matches!(form, "zrangestore" | "zrangebylex" | "zrevrangebylex") {
            with_scores = true;
        } else if is(w, "limit") && a.remaining() > 2 {
            a.next_bytes()?;
            limit = Some((a.next_int()?, a.next_int()?));
            continue;
        } else {
            return Err(CommandError::Syntax);
        }
        a.next_bytes()?;
    }
    let opts = RangeOpts { by_score, by_lex, rev, limit, with_scores };
    zset(ZSetCmd::Range(ZRange::build(key, &lo, &hi, opts, store, form)?))
}

pub(super) fn zrange(a: &mut Args<'_>) -> Result<Command> {
    zrange_form(a, "zrange")
}

pub(super) fn zrevrange(a: &mut Args<'_>) -> Result<Command> {
    zrange_form(a, "zrevrange")
}

pub(super) fn zrangebyscore(a: &mut Args<'_>) -> Result<Command> {
    zrange_form(a, "zrangebyscore")
}

pub(super) fn zrevrangebyscore(a: &mut Args<'_>) -> Result<Command> {
    zrange_form(a, "zrevrangebyscore")
}

pub(super) fn zrangebylex(a: &mut Args<'_>) -> Result<Command> {
    zrange_form(a, "zrangebylex")
}

pub(super) fn zrevrangebylex(a: &mut Args<'_>) -> Result<Command> {
    zrange_form(a, "zrevrangebylex")
}

pub(super) fn zrangestore(a: &mut Args<'_>) -> Result<Command> {
    zrange_form(a, "zrangestore")
}

fn rank(a: &mut Args<'_>, rev: bool) -> Result<Command> {
    let (key, member) = (a.next_bytes()?, a.next_bytes()?);
    let with_score = a.eat("withscore");
    a.finish()?;
    zset(ZSetCmd::Rank { key, member, rev, with_score })
}

pub(super) fn zrank(a: &mut Args<'_>) -> Result<Command> {
    rank(a, false)
}

pub(super) fn zrevrank(a: &mut Args<'_>) -> Result<Command> {
    rank(a, true)
}

fn pop(a: &mut Args<'_>, max: bool) -> Result<Command> {
    let key = a.next_bytes()?;
    let count = if a.is_empty() {
        None
    } else {
        let n = a.next_int()?;
        Some(usize::try_from(n).map_err(|_| CommandError::Invalid("value is out of range, must be positive".into()))?)
    };
    a.finish()?;
    zset(ZSetCmd::Pop { key, max, count })
}

pub(super) fn zpopmin(a: &mut Args<'_>) -> Result<Command> {
    pop(a, false)
}

pub(super) fn zpopmax(a: &mut Args<'_>) -> Result<Command> {
    pop(a, true)
}

pub(super) fn bzpopmin(a: &mut Args<'_>) -> Result<Command> {
    let (keys, timeout_ms) = super::list::keys_then_timeout(a)?;
    zset(ZSetCmd::BPop { keys, max: false, timeout_ms })
}

pub(super) fn bzpopmax(a: &mut Args<'_>) -> Result<Command> {
    let (keys, timeout_ms) = super::list::keys_then_timeout(a)?;
    zset(ZSetCmd::BPop { keys, max: true, timeout_ms })
}

pub(super) fn zremrangebyscore(a: &mut Args<'_>) -> Result<Command> {
    let key = a.next_bytes()?;
    let min = ScoreBound::parse(&a.next_bytes()?)?;
    zset(ZSetCmd::RemRangeByScore { key, min, max: ScoreBound::parse(&a.next_bytes()?)? })
}

pub(super) fn zremrangebyrank(a: &mut Args<'_>) -> Result<Command> {
    zset(ZSetCmd::RemRangeByRank { key: a.next_bytes()?, start: a.next_int()?, stop: a.next_int()? })
}

/// ZUNION, ZINTER, ZDIFF and their STORE forms (`store`: a destination comes first).
fn store(a: &mut Args<'_>, op: ZStoreOp, store: bool) -> Result<Command> {
    let dst = if store { Some(a.next_bytes()?) } else { None };
    let name = a.name();
    let keys = super::set::numkeys(a, || {
        CommandError::Invalid(format!("at least 1 input key is needed for '{name}' command"))
    })?;
    let n = keys.len();
    let mut weights = vec![1.0; n];
    let mut aggregate = Aggregate::Sum;
    let mut with_scores = false;
    let diff = op == ZStoreOp::Diff;
    while !a.is_empty() {
        if !store && a.eat("withscores") {
            with_scores = true;
        } else if !diff && a.remaining() > n && a.eat("weights") {
            for w in weights.iter_mut() {
                *w = parse_score(&a.next_bytes()?)
                    .ok_or_else(|| CommandError::Invalid("weight value is not a float".into()))?;
            }
        } else if !diff && a.remaining() >= 2 && a.eat("aggregate") {
            aggregate = if a.eat("sum") {
                Aggregate::Sum
            } else if a.eat("min") {
                Aggregate::Min
            } else if a.eat("max") {
                Aggregate::Max
            } else {
                return Err(CommandError::Syntax);
            };
        } else {
            return Err(CommandError::Syntax);
        }
    }
    zset(ZSetCmd::Store { op, dst, keys, weights, aggregate, with_scores })
}

pub(super) fn zunionstore(a: &mut Args<'_>) -> Result<Command> {
    store(a, ZStoreOp::Union, true)
}

pub(super) fn zinterstore(a: &mut Args<'_>) -> Result<Command> {
    store(a, ZStoreOp::Inter, true)
}

pub(super) fn zdiffstore(a: &mut Args<'_>) -> Result<Command> {
    store(a, ZStoreOp::Diff, true)
}

pub(super) fn zunion(a: &mut Args<'_>) -> Result<Command> {
    store(a, ZStoreOp::Union, false)
}

pub(super) fn zinter(a: &mut Args<'_>) -> Result<Command> {
    store(a, ZStoreOp::Inter, false)
}

pub(super) fn zdiff(a: &mut Args<'_>) -> Result<Command> {
    store(a, ZStoreOp::Diff, false)
}

pub(super) fn zintercard(a: &mut Args<'_>) -> Result<Command> {
    let keys = super::set::numkeys(a, || {
        CommandError::Invalid("at least 1 input key is needed for 'zintercard' command".into())
    })?;
    let mut limit = 0;
    while !a.is_empty() {
        if a.remaining() >= 2 && a.eat("limit") {
            let negative = || CommandError::Invalid("LIMIT can't be negative".into());
            limit = usize::try_from(a.next_int_or(negative)?).map_err(|_| negative())?;
        } else {
            return Err(CommandError::Syntax);
        }
    }
    zset(ZSetCmd::InterCard { keys, limit })
}

fn lex_pair(a: &mut Args<'_>) -> Result<(Bytes, LexBound, LexBound)> {
    let key = a.next_bytes()?;
    let min = LexBound::parse(&a.next_bytes()?)?;
    Ok((key, min, LexBound::parse(&a.next_bytes()?)?))
}

pub(super) fn zlexcount(a: &mut Args<'_>) -> Result<Command> {
    let (key, min, max) = lex_pair(a)?;
    zset(ZSetCmd::LexCount { key, min, max })
}

pub(super) fn zremrangebylex(a: &mut Args<'_>) -> Result<Command> {
    let (key, min, max) = lex_pair(a)?;
    zset(ZSetCmd::RemRangeByLex { key, min, max })
}

pub(super) fn zrandmember(a: &mut Args<'_>) -> Result<Command> {
    let key = a.next_bytes()?;
    let count = if a.is_empty() { None } else { Some(a.next_int()?) };
    let with_scores = a.eat("withscores");
    a.finish()?;
    if with_scores && count.is_some_and(|c| !(-(i64::MAX / 2)..=i64::MAX / 2).contains(&c)) {
        return Err(CommandError::Invalid("value is out of range".into()));
    }
    zset(ZSetCmd::RandMember { key, count, with_scores })
}

/// `numkeys key... MIN|MAX [COUNT n]` of ZMPOP and BZMPOP, with Redis's checks in Redis's order.
pub(super) fn mpop_args(a: &mut Args<'_>, ends: [&str; 2]) -> Result<(Vec<Bytes>, bool, usize)> {
    let n = a.next_int_or(|| CommandError::Invalid("numkeys should be greater than 0".into()))?;
    if n <= 0 {
        return Err(CommandError::Invalid("numkeys should be greater than 0".into()));
    }
    if a.remaining() <= n as usize {
        return Err(CommandError::Syntax);
    }
    let keys = a.take(n as usize)?;
    let second = if a.eat(ends[0]) {
        false
    } else if a.eat(ends[1]) {
        true
    } else {
        return Err(CommandError::Syntax);
    };
    let mut count = None;
    while !a.is_empty() {
        if count.is_none() && a.remaining() >= 2 && a.eat("count") {
            let bad = || CommandError::Invalid("count should be greater than 0".into());
            let c = a.next_int_or(bad)?;
            count = Some(usize::try_from(c).ok().filter(|&c| c > 0).ok_or_else(bad)?);
        } else {
            return Err(CommandError::Syntax);
        }
    }
    Ok((keys, second, count.unwrap_or(1)))
}

pub(super) fn zmpop(a: &mut Args<'_>) -> Result<Command> {
    let (keys, max, count) = mpop_args(a, ["min", "max"])?;
    zset(ZSetCmd::MPop { keys, max, count, block: None })
}

pub(super) fn bzmpop(a: &mut Args<'_>) -> Result<Command> {
    let timeout = super::args::timeout_secs(&a.next_bytes()?)?;
    let (keys, max, count) = mpop_args(a, ["min", "max"])?;
    zset(ZSetCmd::MPop { keys, max, count, block: Some(timeout) })
}

pub(super) fn zscan(a: &mut Args<'_>) -> Result<Command> {
    zset(ZSetCmd::Scan { key: a.next_bytes()?, scan: CollScan::parse(a)? })
}
