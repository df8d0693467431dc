//! The hash, list, set and sorted-set entries of the HTTP op table: each reads its JSON payload into the
//! typed command RESP's parser builds from Redis arguments, and answers `{"result": <reply>}`.

use bytes::Bytes;
use serde_json::{Value, json};
use synap_core::Command;
use synap_core::command::args::{parse_cursor, parse_score};
use synap_core::command::list::ListCmd;
use synap_core::command::set::{SetCmd, SetOp};
use synap_core::command::zset::{Aggregate, RangeOpts, ScoreBound, ZAddFlags, ZRange, ZSetCmd, ZStoreOp};
use synap_core::command::{CollScan, HashCmd};

use super::body::{ApiError, json_to_bytes};
use super::ops::{Op, field, flag, key, opt_f64, opt_i64, reply_json, req_bytes};

fn result(_: &Value, r: synap_core::Reply) -> Result<Value, ApiError> {
    Ok(json!({"result": reply_json(r)}))
}

macro_rules! ops {
    ($($name:literal => $parse:expr),* $(,)?) => {
        /// Every hash, list, set and sorted-set entry.
        pub static TYPE_OPS: &[Op] = &[$(Op { name: $name, parse: $parse, render: result }),*];
    };
}

ops! {
    "hash.set" => |p| hash(HashCmd::Set { key: key(p)?, pairs: object(p, "fields")?, legacy: false }),
    "hash.setnx" => |p| hash(HashCmd::SetNx { key: key(p)?, field: req_bytes(p, "field")?, value: req_bytes(p, "value")? }),
    "hash.get" => |p| hash(HashCmd::Get { key: key(p)?, field: req_bytes(p, "field")? }),
    "hash.mget" => |p| hash(HashCmd::MGet { key: key(p)?, fields: list(p, "fields")? }),
    "hash.getall" => |p| hash(HashCmd::GetAll { key: key(p)? }),
    "hash.del" => |p| hash(HashCmd::Del { key: key(p)?, fields: list(p, "fields")? }),
    "hash.exists" => |p| hash(HashCmd::Exists { key: key(p)?, field: req_bytes(p, "field")? }),
    "hash.len" => |p| hash(HashCmd::Len { key: key(p)? }),
    "hash.keys" => |p| hash(HashCmd::Keys { key: key(p)? }),
    "hash.vals" => |p| hash(HashCmd::Vals { key: key(p)? }),
    "hash.incrby" => |p| hash(HashCmd::IncrBy { key: key(p)?, field: req_bytes(p, "field")?, by: int(p, "by")? }),
    "hash.incrbyfloat" => |p| {
        let by = opt_f64(p, "by")?.ok_or_else(|| ApiError::bad_request("missing field 'by'"))?;
        let by = synap_core::decimal::LongDouble::parse(by.to_string().as_bytes())
            .filter(|v| v.is_finite())
            .ok_or_else(|| ApiError::bad_request("field 'by': not a finite number"))?;
        hash(HashCmd::IncrByFloat { key: key(p)?, field: req_bytes(p, "field")?, by })
    },
    "hash.strlen" => |p| hash(HashCmd::StrLen { key: key(p)?, field: req_bytes(p, "field")? }),
    "hash.randfield" => |p| {
        hash(HashCmd::RandField { key: key(p)?, count: opt_i64(p, "count")?, with_values: flag(p, "withvalues")? })
    },
    "hash.scan" => |p| hash(HashCmd::Scan { key: key(p)?, scan: scan(p)? }),
    "list.lpush" => |p| push(p, true, false),
    "list.rpush" => |p| push(p, false, false),
    "list.lpushx" => |p| push(p, true, true),
    "list.rpushx" => |p| push(p, false, true),
    "list.lpop" => |p| pop(p, true),
    "list.rpop" => |p| pop(p, false),
    "list.len" => |p| list_cmd(ListCmd::Len { key: key(p)? }),
    "list.range" => |p| list_cmd(ListCmd::Range { key: key(p)?, start: int(p, "start")?, stop: int(p, "stop")? }),
    "list.index" => |p| list_cmd(ListCmd::Index { key: key(p)?, index: int(p, "index")? }),
    "list.set" => |p| list_cmd(ListCmd::Set { key: key(p)?, index: int(p, "index")?, value: req_bytes(p, "value")? }),
    "list.insert" => |p| {
        let before = side(p, "where", "before", "after")?;
        list_cmd(ListCmd::Insert { key: key(p)?, before, pivot: req_bytes(p, "pivot")?, value: req_bytes(p, "value")? })
    },
    "list.rem" => |p| list_cmd(ListCmd::Rem { key: key(p)?, count: int(p, "count")?, value: req_bytes(p, "value")? }),
    "list.trim" => |p| list_cmd(ListCmd::Trim { key: key(p)?, start: int(p, "start")?, stop: int(p, "stop")? }),
    "list.pos" => |p| {
        let rank = opt_i64(p, "rank")?.unwrap_or(1);
        if rank == 0 {
            return Err(ApiError::bad_request("field 'rank': must not be 0"));
        }
        let count = opt_i64(p, "count")?.map(|n| non_negative(n, "count")).transpose()?;
        let maxlen = opt_i64(p, "maxlen")?.map(|n| non_negative(n, "maxlen")).transpose()?.unwrap_or(0);
        list_cmd(ListCmd::Pos { key: key(p)?, value: req_bytes(p, "value")?, rank, count, maxlen })
    },
    "list.move" => |p| {
        let (from_left, to_left) = (side(p, "wherefrom", "left", "right")?, side(p, "whereto", "left", "right")?);
        list_cmd(ListCmd::Move { src: req_bytes(p, "source")?, dst: req_bytes(p, "destination")?, from_left, to_left })
    },
    "set.add" => |p| set(SetCmd::Add { key: key(p)?, members: list(p, "members")? }),
    "set.rem" => |p| set(SetCmd::Rem { key: key(p)?, members: list(p, "members")? }),
    "set.ismember" => |p| set(SetCmd::IsMember { key: key(p)?, member: req_bytes(p, "member")? }),
    "set.mismember" => |p| set(SetCmd::MIsMember { key: key(p)?, members: list(p, "members")? }),
    "set.members" => |p| set(SetCmd::Members { key: key(p)? }),
    "set.card" => |p| set(SetCmd::Card { key: key(p)? }),
    "set.pop" => |p| {
        let count = opt_i64(p, "count")?.map(|n| non_negative(n, "count")).transpose()?;
        set(SetCmd::Pop { key: key(p)?, count })
    },
    "set.randmember" => |p| set(SetCmd::RandMember { key: key(p)?, count: opt_i64(p, "count")? }),
    "set.move" => |p| {
        set(SetCmd::Move { src: req_bytes(p, "source")?, dst: req_bytes(p, "destination")?, member: req_bytes(p, "member")? })
    },
    "set.inter" => |p| combine(p, SetOp::Inter, false),
    "set.union" => |p| combine(p, SetOp::Union, false),
    "set.diff" => |p| combine(p, SetOp::Diff, false),
    "set.interstore" => |p| combine(p, SetOp::Inter, true),
    "set.unionstore" => |p| combine(p, SetOp::Union, true),
    "set.diffstore" => |p| combine(p, SetOp::Diff, true),
    "set.intercard" => |p| {
        let limit = opt_i64(p, "limit")?.map(|n| non_negative(n, "limit")).transpose()?.unwrap_or(0);
        set(SetCmd::InterCard { keys: list(p, "keys")?, limit })
    },
    "set.scan" => |p| set(SetCmd::Scan { key: key(p)?, scan: scan(p)? }),
    "zset.add" => |p| {
        let flags = ZAddFlags {
            nx: flag(p, "nx")?,
            xx: flag(p, "xx")?,
            gt: flag(p, "gt")?,
            lt: flag(p, "lt")?,
            ch: flag(p, "ch")?,
            incr: flag(p, "incr")?,
        };
        zset(ZSetCmd::Add { key: key(p)?, flags, pairs: scored_members(p)? })
    },
    "zset.rem" => |p| zset(ZSetCmd::Rem { key: key(p)?, members: list(p, "members")? }),
    "zset.score" => |p| zset(ZSetCmd::Score { key: key(p)?, member: req_bytes(p, "member")? }),
    "zset.mscore" => |p| zset(ZSetCmd::MScore { key: key(p)?, members: list(p, "members")? }),
    "zset.incrby" => |p| zset(ZSetCmd::IncrBy { key: key(p)?, by: score(p, "by")?, member: req_bytes(p, "member")? }),
    "zset.card" => |p| zset(ZSetCmd::Card { key: key(p)? }),
    "zset.count" => |p| zset(ZSetCmd::Count { key: key(p)?, min: bound(p, "min")?, max: bound(p, "max")? }),
    "zset.range" => |p| range(p, false),
    "zset.rangestore" => |p| range(p, true),
    "zset.rank" => |p| {
        zset(ZSetCmd::Rank { key: key(p)?, member: req_bytes(p, "member")?, rev: false, with_score: flag(p, "withscore")? })
    },
    "zset.revrank" => |p| {
        zset(ZSetCmd::Rank { key: key(p)?, member: req_bytes(p, "member")?, rev: true, with_score: flag(p, "withscore")? })
    },
    "zset.popmin" => |p| zpop(p, false),
    "zset.popmax" => |p| zpop(p, true),
    "zset.remrangebyscore" => |p| {
        zset(ZSetCmd::RemRangeByScore { key: key(p)?, min: bound(p, "min")?, max: bound(p, "max")? })
    },
    "zset.remrangebyrank" => |p| {
        zset(ZSetCmd::RemRangeByRank { key: key(p)?, start: int(p, "start")?, stop: int(p, "stop")? })
    },
    "zset.unionstore" => |p| zstore(p, ZStoreOp::Union),
    "zset.interstore" => |p| zstore(p, ZStoreOp::Inter),
    "zset.scan" => |p| zset(ZSetCmd::Scan { key: key(p)?, scan: scan(p)? }),
}

fn hash(c: HashCmd) -> Result<Command, ApiError> {
    Ok(Command::Hash(c))
}

fn list_cmd(c: ListCmd) -> Result<Command, ApiError> {
    Ok(Command::List(c))
}

fn set(c: SetCmd) -> Result<Command, ApiError> {
    Ok(Command::Set(c))
}

fn zset(c: ZSetCmd) -> Result<Command, ApiError> {
    Ok(Command::ZSet(c))
}

fn bad(name: &str, what: &str) -> ApiError {
    ApiError::bad_request(format!("field '{name}': {what}"))
}

/// A required integer field.
fn int(p: &Value, name: &str) -> Result<i64, ApiError> {
    opt_i64(p, name)?.ok_or_else(|| ApiError::bad_request(format!("missing field '{name}'")))
}

fn non_negative(n: i64, name: &str) -> Result<usize, ApiError> {
    usize::try_from(n).map_err(|_| bad(name, "must not be negative"))
}

/// A required score: a number, or a string Redis reads as one (`inf`, `-inf`, `1.5`).
fn score(p: &Value, name: &str) -> Result<f64, ApiError> {
    let v = field(p, name).ok_or_else(|| ApiError::bad_request(format!("missing field '{name}'")))?;
    score_of(v, name)
}

fn score_of(v: &Value, name: &str) -> Result<f64, ApiError> {
    match v {
        Value::Number(n) => n.as_f64().ok_or_else(|| bad(name, "expected a number")),
        _ => parse_score(&json_to_bytes(v, name)?).ok_or_else(|| bad(name, "expected a number")),
    }
}

/// A score range bound: a number, or Redis's text (`(1.5`, `-inf`).
fn bound(p: &Value, name: &str) -> Result<ScoreBound, ApiError> {
    let b = req_bytes(p, name)?;
    ScoreBound::parse(&b).map_err(|e| bad(name, &e.message()))
}

/// A non-empty array field, as bytes.
fn list(p: &Value, name: &str) -> Result<Vec<Bytes>, ApiError> {
    match field(p, name) {
        Some(Value::Array(a)) if !a.is_empty() => a.iter().map(|v| json_to_bytes(v, name)).collect(),
        _ => Err(bad(name, "expected a non-empty array")),
    }
}

/// A non-empty object field, as (key, value) pairs.
fn object(p: &Value, name: &str) -> Result<Vec<(Bytes, Bytes)>, ApiError> {
    match field(p, name) {
        Some(Value::Object(m)) if !m.is_empty() => {
            m.iter().map(|(k, v)| Ok((Bytes::copy_from_slice(k.as_bytes()), json_to_bytes(v, name)?))).collect()
        }
        _ => Err(bad(name, "expected a non-empty object")),
    }
}

/// A word field that is one of two (`before`/`after`, `left`/`right`): whether it is the first.
fn side(p: &Value, name: &str, first: &str, second: &str) -> Result<bool, ApiError> {
    let w = req_bytes(p, name)?;
    if w.eq_ignore_ascii_case(first.as_bytes()) {
        Ok(true)
    } else if w.eq_ignore_ascii_case(second.as_bytes()) {
        Ok(false)
    } else {
        Err(bad(name, &format!("expected '{first}' or '{second}'")))
    }
}

/// `cursor`, `match`, `count` of the collection scans.
fn scan(p: &Value) -> Result<CollScan, ApiError> {
    let cursor = parse_cursor(&req_bytes(p, "cursor")?).map_err(|e| bad("cursor", &e.message()))?;
    let mut o = CollScan::new(cursor);
    o.pattern = field(p, "match").map(|v| json_to_bytes(v, "match")).transpose()?;
    if let Some(n) = opt_i64(p, "count")? {
        o.count = usize::try_from(n).ok().filter(|&n| n > 0).ok_or_else(|| bad("count", "must be at least 1"))?;
    }
    Ok(o)
}

fn push(p: &Value, left: bool, existing: bool) -> Result<Command, ApiError> {
    list_cmd(ListCmd::Push { key: key(p)?, values: list(p, "values")?, left, existing })
}

fn pop(p: &Value, left: bool) -> Result<Command, ApiError> {
    let count = opt_i64(p, "count")?.map(|n| non_negative(n, "count")).transpose()?;
    list_cmd(ListCmd::Pop { key: key(p)?, left, count })
}

fn combine(p: &Value, op: SetOp, store: bool) -> Result<Command, ApiError> {
    let store = if store { Some(req_bytes(p, "destination")?) } else { None };
    set(SetCmd::Combine { op, keys: list(p, "keys")?, store })
}

/// ZADD's `members`: `[{member, score}, ...]`.
fn scored_members(p: &Value) -> Result<Vec<(f64, Bytes)>, ApiError> {
    let Some(Value::Array(items)) = field(p, "members") else { return Err(bad("members", "expected an array")) };
    if items.is_empty() {
        return Err(bad("members", "must not be empty"));
    }
    items
        .iter()
        .map(|item| {
            let member = item.get("member").ok_or_else(|| ApiError::bad_request("each member needs 'member'"))?;
            if item.get("score").is_none() {
                return Err(ApiError::bad_request("each member needs 'score'"));
            }
            Ok((score(item, "score")?, json_to_bytes(member, "member")?))
        })
        .collect()
}

/// ZRANGE's forms: `start`/`stop` in Redis's argument order, read as ranks, scores or names.
fn range(p: &Value, store: bool) -> Result<Command, ApiError> {
    let limit = match opt_i64(p, "offset")? {
        Some(offset) => Some((offset, opt_i64(p, "count")?.unwrap_or(-1))),
        None => None,
    };
    let opts = RangeOpts {
        by_score: flag(p, "byscore")?,
        by_lex: flag(p, "bylex")?,
        rev: flag(p, "rev")?,
        limit,
        with_scores: !store && flag(p, "withscores")?,
    };
    let dst = if store { Some(req_bytes(p, "destination")?) } else { None };
    let form = if store { "zrangestore" } else { "zrange" };
    let (lo, hi) = (req_bytes(p, "start")?, req_bytes(p, "stop")?);
    let r = ZRange::build(key(p)?, &lo, &hi, opts, dst, form)?;
    zset(ZSetCmd::Range(r))
}

fn zpop(p: &Value, max: bool) -> Result<Command, ApiError> {
    let count = opt_i64(p, "count")?.map(|n| non_negative(n, "count")).transpose()?;
    zset(ZSetCmd::Pop { key: key(p)?, max, count })
}

fn zstore(p: &Value, op: ZStoreOp) -> Result<Command, ApiError> {
    let keys = list(p, "keys")?;
    let weights = match field(p, "weights") {
        None => vec![1.0; keys.len()],
        Some(Value::Array(w)) if w.len() == keys.len() => {
            w.iter().map(|v| score_of(v, "weights")).collect::<Result<_, _>>()?
        }
        Some(_) => return Err(bad("weights", "expected one number per key")),
    };
    let aggregate = match field(p, "aggregate").map(|v| json_to_bytes(v, "aggregate")).transpose()? {
        None => Aggregate::Sum,
        Some(a) if a.eq_ignore_ascii_case(b"sum") => Aggregate::Sum,
        Some(a) if a.eq_ignore_ascii_case(b"min") => Aggregate::Min,
        Some(a) if a.eq_ignore_ascii_case(b"max") => Aggregate::Max,
        Some(_) => return Err(bad("aggregate", "expected 'sum', 'min' or 'max'")),
    };
    zset(ZSetCmd::Store { op, dst: Some(req_bytes(p, "destination")?), keys, weights, aggregate, with_scores: false })
}
