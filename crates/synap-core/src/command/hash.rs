//! Hash commands ([`HashCmd`]) and their parsers; [`CollScan`], the options of HSCAN, SSCAN and ZSCAN.

use bytes::Bytes;

use super::Command;
use super::args::{Args, parse_cursor};
use crate::error::{CommandError, Result};

/// HSCAN/SSCAN/ZSCAN: cursor, MATCH, COUNT, NOVALUES.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollScan {
    pub cursor: u64,
    pub pattern: Option<Bytes>,
    pub count: usize,
    /// Fields only (HSCAN).
    pub novalues: bool,
}

impl CollScan {
    pub fn new(cursor: u64) -> CollScan {
        CollScan { cursor, pattern: None, count: 10, novalues: false }
    }

    pub(super) fn parse(a: &mut Args<'_>) -> Result<CollScan> {
        let mut o = CollScan::new(parse_cursor(&a.next_bytes()?)?);
        while !a.is_empty() {
            if a.remaining() >= 2 && a.eat("match") {
                o.pattern = Some(a.next_bytes()?);
            } else if a.remaining() >= 2 && a.eat("count") {
                let n = a.next_int()?;
                if n < 1 {
                    return Err(CommandError::Syntax);
                }
                o.count = n as usize;
            } else if a.eat("novalues") {
                o.novalues = true;
            } else {
                return Err(CommandError::Syntax);
            }
        }
        Ok(o)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum HashCmd {
    /// HSET (answers the fields added), or HMSET when `legacy` (answers OK).
    Set {
        key: Bytes,
        pairs: Vec<(Bytes, Bytes)>,
        legacy: bool,
    },
    SetNx {
        key: Bytes,
        field: Bytes,
        value: Bytes,
    },
    Get {
        key: Bytes,
        field: Bytes,
    },
    MGet {
        key: Bytes,
        fields: Vec<Bytes>,
    },
    GetAll {
        key: Bytes,
    },
    Del {
        key: Bytes,
        fields: Vec<Bytes>,
    },
    Exists {
        key: Bytes,
        field: Bytes,
    },
    Len {
        key: Bytes,
    },
    Keys {
        key: Bytes,
    },
    Vals {
        key: Bytes,
    },
    IncrBy {
        key: Bytes,
        field: Bytes,
        by: i64,
    },
    /// `by` is a long double, as Redis computes HINCRBYFLOAT (see [`crate::decimal`]).
    IncrByFloat {
        key: Bytes,
        field: Bytes,
        by: crate::decimal::LongDouble,
    },
    StrLen {
        key: Bytes,
        field: Bytes,
    },
    /// HRANDFIELD: one field without a count; with one, distinct fields (positive) or picks that may
    /// repeat (negative).
    RandField {
        key: Bytes,
        count: Option<i64>,
        with_values: bool,
    },
    Scan {
        key: Bytes,
        scan: CollScan,
    },
}

impl HashCmd {
    pub fn name(&self) -> &'static str {
        match self {
            HashCmd::Set { legacy: false, .. } => "hset",
            HashCmd::Set { legacy: true, .. } => "hmset",
            HashCmd::SetNx { .. } => "hsetnx",
            HashCmd::Get { .. } => "hget",
            HashCmd::MGet { .. } => "hmget",
            HashCmd::GetAll { .. } => "hgetall",
            HashCmd::Del { .. } => "hdel",
            HashCmd::Exists { .. } => "hexists",
            HashCmd::Len { .. } => "hlen",
            HashCmd::Keys { .. } => "hkeys",
            HashCmd::Vals { .. } => "hvals",
            HashCmd::IncrBy { .. } => "hincrby",
            HashCmd::IncrByFloat { .. } => "hincrbyfloat",
            HashCmd::StrLen { .. } => "hstrlen",
            HashCmd::RandField { .. } => "hrandfield",
            HashCmd::Scan { .. } => "hscan",
        }
    }

    /// The key the command names.
    pub fn key(&self) -> &Bytes {
        match self {
            HashCmd::Set { key, .. }
            | HashCmd::SetNx { key, .. }
            | HashCmd::Get { key, .. }
            | HashCmd::MGet { key, .. }
            | HashCmd::GetAll { key }
            | HashCmd::Del { key, .. }
            | HashCmd::Exists { key, .. }
            | HashCmd::Len { key }
            | HashCmd::Keys { key }
            | HashCmd::Vals { key }
            | HashCmd::IncrBy { key, .. }
            | HashCmd::IncrByFloat { key, .. }
            | HashCmd::StrLen { key, .. }
            | HashCmd::RandField { key, .. }
            | HashCmd::Scan { key, .. } => key,
        }
    }
}

fn hash(c: HashCmd) -> Result<Command> {
    Ok(Command::Hash(c))
}

fn key_field(a: &mut Args<'_>) -> Result<(Bytes, Bytes)> {
    Ok((a.next_bytes()?, a.next_bytes()?))
}

pub(super) fn hset(a: &mut Args<'_>) -> Result<Command> {
    hash(HashCmd::Set { key: a.next_bytes()?, pairs: a.pairs()?, legacy: false })
}

pub(super) fn hmset(a: &mut Args<'_>) -> Result<Command> {
    hash(HashCmd::Set { key: a.next_bytes()?, pairs: a.pairs()?, legacy: true })
}

pub(super) fn hsetnx(a: &mut Args<'_>) -> Result<Command> {
    let (key, field) = key_field(a)?;
    hash(HashCmd::SetNx { key, field, value: a.next_bytes()? })
}

pub(super) fn hget(a: &mut Args<'_>) -> Result<Command> {
    let (key, field) = key_field(a)?;
    hash(HashCmd::Get { key, field })
}

pub(super) fn hmget(a: &mut Args<'_>) -> Result<Command> {
    hash(HashCmd::MGet { key: a.next_bytes()?, fields: a.rest() })
}

pub(super) fn hgetall(a: &mut Args<'_>) -> Result<Command> {
    hash(HashCmd::GetAll { key: a.next_bytes()? })
}

pub(super) fn hdel(a: &mut Args<'_>) -> Result<Command> {
    hash(HashCmd::Del { key: a.next_bytes()?, fields: a.rest() })
}

pub(super) fn hexists(a: &mut Args<'_>) -> Result<Command> {
    let (key, field) = key_field(a)?;
    hash(HashCmd::Exists { key, field })
}

pub(super) fn hlen(a: &mut Args<'_>) -> Result<Command> {
    hash(HashCmd::Len { key: a.next_bytes()? })
}

pub(super) fn hkeys(a: &mut Args<'_>) -> Result<Command> {
    hash(HashCmd::Keys { key: a.next_bytes()? })
}

pub(super) fn hvals(a: &mut Args<'_>) -> Result<Command> {
    hash(HashCmd::Vals { key: a.next_bytes()? })
}

pub(super) fn hincrby(a: &mut Args<'_>) -> Result<Command> {
    let (key, field) = key_field(a)?;
    hash(HashCmd::IncrBy { key, field, by: a.next_int()? })
}

pub(super) fn hincrbyfloat(a: &mut Args<'_>) -> Result<Command> {
    let (key, field) = key_field(a)?;
    let by = crate::decimal::LongDouble::parse(&a.next_bytes()?).ok_or(CommandError::NotFloat)?;
    if !by.is_finite() {
        return Err(CommandError::Invalid("value is NaN or Infinity".into()));
    }
    hash(HashCmd::IncrByFloat { key, field, by })
}

pub(super) fn hstrlen(a: &mut Args<'_>) -> Result<Command> {
    let (key, field) = key_field(a)?;
    hash(HashCmd::StrLen { key, field })
}

pub(super) fn hrandfield(a: &mut Args<'_>) -> Result<Command> {
    let key = a.next_bytes()?;
    let with_values = a.remaining() == 2 && a.peek_at(1).is_some_and(|w| super::args::is(w, "withvalues"));
    if a.remaining() > 2 || (a.remaining() == 2 && !with_values) {
        return Err(CommandError::Syntax);
    }
    let count = if a.is_empty() { None } else { Some(a.next_int()?) };
    hash(HashCmd::RandField { key, count, with_values })
}

pub(super) fn hscan(a: &mut Args<'_>) -> Result<Command> {
    hash(HashCmd::Scan { key: a.next_bytes()?, scan: CollScan::parse(a)? })
}
