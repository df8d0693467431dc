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
        if o.limit.is_some() && !o.by_score && !o.by_lex {
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
        Ok(ZRange { key, by, rev: o.rev, limit: o.limit, with_scores: o.with_scores, store, form })
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

/// ZUNIONSTORE/ZINTERSTORE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZStoreOp {
    Union,
    Inter,
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
    Store {
        op: ZStoreOp,
        dst: Bytes,
        keys: Vec<Bytes>,
        weights: Vec<f64>,
        aggregate: Aggregate,
    },
    Scan {
        key: Bytes,
        scan: CollScan,
    },
}

impl ZSetCmd {
    pub fn name(&self) -> &'static str {
        match self {
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
            ZSetCmd::Store { op: ZStoreOp::Union, .. } => "zunionstore",
            ZSetCmd::Store { op: ZStoreOp::Inter, .. } => "zinterstore",
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
        } else if is(w, "withscores") && form != "zrangestore" && form != "zrangebylex" {
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

fn store(a: &mut Args<'_>, op: ZStoreOp) -> Result<Command> {
    let dst = a.next_bytes()?;
    let name = a.name();
    let keys = super::set::numkeys(a, || {
        CommandError::Invalid(format!("at least 1 input key is needed for '{name}' command"))
    })?;
    let n = keys.len();
    let mut weights = vec![1.0; n];
    let mut aggregate = Aggregate::Sum;
    while !a.is_empty() {
        if a.remaining() > n && a.eat("weights") {
            for w in weights.iter_mut() {
                *w = parse_score(&a.next_bytes()?)
                    .ok_or_else(|| CommandError::Invalid("weight value is not a float".into()))?;
            }
        } else if a.remaining() >= 2 && a.eat("aggregate") {
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
    zset(ZSetCmd::Store { op, dst, keys, weights, aggregate })
}

pub(super) fn zunionstore(a: &mut Args<'_>) -> Result<Command> {
    store(a, ZStoreOp::Union)
}

pub(super) fn zinterstore(a: &mut Args<'_>) -> Result<Command> {
    store(a, ZStoreOp::Inter)
}

pub(super) fn zscan(a: &mut Args<'_>) -> Result<Command> {
    zset(ZSetCmd::Scan { key: a.next_bytes()?, scan: CollScan::parse(a)? })
}
