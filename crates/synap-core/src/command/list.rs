//! List commands ([`ListCmd`]) and their parsers.

use bytes::Bytes;

use super::Command;
use super::args::{Args, timeout_secs};
use crate::error::{CommandError, Result};

#[derive(Debug, Clone, PartialEq)]
pub enum ListCmd {
    /// LPUSH/RPUSH (`left`), LPUSHX/RPUSHX (`existing`: only onto an existing list).
    Push {
        key: Bytes,
        values: Vec<Bytes>,
        left: bool,
        existing: bool,
    },
    /// LPOP/RPOP: one element, or up to `count` as an array.
    Pop {
        key: Bytes,
        left: bool,
        count: Option<usize>,
    },
    Len {
        key: Bytes,
    },
    Range {
        key: Bytes,
        start: i64,
        stop: i64,
    },
    Index {
        key: Bytes,
        index: i64,
    },
    Set {
        key: Bytes,
        index: i64,
        value: Bytes,
    },
    Insert {
        key: Bytes,
        before: bool,
        pivot: Bytes,
        value: Bytes,
    },
    Rem {
        key: Bytes,
        count: i64,
        value: Bytes,
    },
    Trim {
        key: Bytes,
        start: i64,
        stop: i64,
    },
    /// LPOS: `rank` (never 0), `count` (0 = all), `maxlen` (0 = the whole list).
    Pos {
        key: Bytes,
        value: Bytes,
        rank: i64,
        count: Option<usize>,
        maxlen: usize,
    },
    /// LMOVE, RPOPLPUSH (right to left).
    Move {
        src: Bytes,
        dst: Bytes,
        from_left: bool,
        to_left: bool,
    },
    /// BLPOP/BRPOP: pops from the first of `keys` that has an element; `timeout_ms` `None` waits forever.
    BPop {
        keys: Vec<Bytes>,
        left: bool,
        timeout_ms: Option<u64>,
    },
    /// LMPOP (`block` None) and BLMPOP (`block` Some(timeout), None waiting forever): up to `count`
    /// elements from the first non-empty key.
    MPop {
        keys: Vec<Bytes>,
        left: bool,
        count: usize,
        block: Option<Option<u64>>,
    },
    /// BLMOVE, BRPOPLPUSH.
    BMove {
        src: Bytes,
        dst: Bytes,
        from_left: bool,
        to_left: bool,
        timeout_ms: Option<u64>,
    },
}

impl ListCmd {
    pub fn name(&self) -> &'static str {
        match self {
            ListCmd::Push { left: true, existing: false, .. } => "lpush",
            ListCmd::Push { left: false, existing: false, .. } => "rpush",
            ListCmd::Push { left: true, existing: true, .. } => "lpushx",
            ListCmd::Push { left: false, existing: true, .. } => "rpushx",
            ListCmd::Pop { left: true, .. } => "lpop",
            ListCmd::Pop { left: false, .. } => "rpop",
            ListCmd::Len { .. } => "llen",
            ListCmd::Range { .. } => "lrange",
            ListCmd::Index { .. } => "lindex",
            ListCmd::Set { .. } => "lset",
            ListCmd::Insert { .. } => "linsert",
            ListCmd::Rem { .. } => "lrem",
            ListCmd::Trim { .. } => "ltrim",
            ListCmd::Pos { .. } => "lpos",
            ListCmd::Move { .. } => "lmove",
            ListCmd::BPop { left: true, .. } => "blpop",
            ListCmd::BPop { left: false, .. } => "brpop",
            ListCmd::BMove { .. } => "blmove",
            ListCmd::MPop { block: None, .. } => "lmpop",
            ListCmd::MPop { block: Some(_), .. } => "blmpop",
        }
    }
}

fn list(c: ListCmd) -> Result<Command> {
    Ok(Command::List(c))
}

fn side(a: &mut Args<'_>) -> Result<bool> {
    if a.eat("left") {
        Ok(true)
    } else if a.eat("right") {
        Ok(false)
    } else {
        Err(CommandError::Syntax)
    }
}

fn push(a: &mut Args<'_>, left: bool, existing: bool) -> Result<Command> {
    list(ListCmd::Push { key: a.next_bytes()?, values: a.rest(), left, existing })
}

pub(super) fn lpush(a: &mut Args<'_>) -> Result<Command> {
    push(a, true, false)
}

pub(super) fn rpush(a: &mut Args<'_>) -> Result<Command> {
    push(a, false, false)
}

pub(super) fn lpushx(a: &mut Args<'_>) -> Result<Command> {
    push(a, true, true)
}

pub(super) fn rpushx(a: &mut Args<'_>) -> Result<Command> {
    push(a, false, true)
}

fn pop(a: &mut Args<'_>, left: bool) -> Result<Command> {
    let key = a.next_bytes()?;
    let count = if a.is_empty() {
        None
    } else {
        let n = a.next_int_or(|| CommandError::Invalid("value is out of range, must be positive".into()))?;
        let n =
            usize::try_from(n).map_err(|_| CommandError::Invalid("value is out of range, must be positive".into()))?;
        Some(n)
    };
    a.finish()?;
    list(ListCmd::Pop { key, left, count })
}

pub(super) fn lpop(a: &mut Args<'_>) -> Result<Command> {
    pop(a, true)
}

pub(super) fn rpop(a: &mut Args<'_>) -> Result<Command> {
    pop(a, false)
}

pub(super) fn llen(a: &mut Args<'_>) -> Result<Command> {
    list(ListCmd::Len { key: a.next_bytes()? })
}

pub(super) fn lrange(a: &mut Args<'_>) -> Result<Command> {
    list(ListCmd::Range { key: a.next_bytes()?, start: a.next_int()?, stop: a.next_int()? })
}

pub(super) fn lindex(a: &mut Args<'_>) -> Result<Command> {
    list(ListCmd::Index { key: a.next_bytes()?, index: a.next_int()? })
}

pub(super) fn lset(a: &mut Args<'_>) -> Result<Command> {
    list(ListCmd::Set { key: a.next_bytes()?, index: a.next_int()?, value: a.next_bytes()? })
}

pub(super) fn linsert(a: &mut Args<'_>) -> Result<Command> {
    let key = a.next_bytes()?;
    let before = if a.eat("before") {
        true
    } else if a.eat("after") {
        false
    } else {
        return Err(CommandError::Syntax);
    };
    list(ListCmd::Insert { key, before, pivot: a.next_bytes()?, value: a.next_bytes()? })
}

pub(super) fn lrem(a: &mut Args<'_>) -> Result<Command> {
    let key = a.next_bytes()?;
    let count = a.next_int()?;
    list(ListCmd::Rem { key, count, value: a.next_bytes()? })
}

pub(super) fn ltrim(a: &mut Args<'_>) -> Result<Command> {
    list(ListCmd::Trim { key: a.next_bytes()?, start: a.next_int()?, stop: a.next_int()? })
}

pub(super) fn lpos(a: &mut Args<'_>) -> Result<Command> {
    let (key, value) = (a.next_bytes()?, a.next_bytes()?);
    let (mut rank, mut count, mut maxlen) = (1i64, None, 0usize);
    while !a.is_empty() {
        if a.remaining() < 2 {
            return Err(CommandError::Syntax);
        }
        if a.eat("rank") {
            rank = a.next_int()?;
            if rank == 0 {
                return Err(CommandError::Invalid(
                    "RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list".into(),
                ));
            }
        } else if a.eat("count") {
            let n = a.next_int()?;
            count = Some(usize::try_from(n).map_err(|_| CommandError::Invalid("COUNT can't be negative".into()))?);
        } else if a.eat("maxlen") {
            let n = a.next_int()?;
            maxlen = usize::try_from(n).map_err(|_| CommandError::Invalid("MAXLEN can't be negative".into()))?;
        } else {
            return Err(CommandError::Syntax);
        }
    }
    list(ListCmd::Pos { key, value, rank, count, maxlen })
}

pub(super) fn lmove(a: &mut Args<'_>) -> Result<Command> {
    let (src, dst) = (a.next_bytes()?, a.next_bytes()?);
    let (from_left, to_left) = (side(a)?, side(a)?);
    list(ListCmd::Move { src, dst, from_left, to_left })
}

pub(super) fn rpoplpush(a: &mut Args<'_>) -> Result<Command> {
    list(ListCmd::Move { src: a.next_bytes()?, dst: a.next_bytes()?, from_left: false, to_left: true })
}

/// The keys of a blocking pop and its timeout (the last argument).
pub(super) fn keys_then_timeout(a: &mut Args<'_>) -> Result<(Vec<Bytes>, Option<u64>)> {
    let mut keys = a.rest();
    let t = keys.pop().ok_or(CommandError::Syntax)?;
    Ok((keys, timeout_secs(&t)?))
}

pub(super) fn blpop(a: &mut Args<'_>) -> Result<Command> {
    let (keys, timeout_ms) = keys_then_timeout(a)?;
    list(ListCmd::BPop { keys, left: true, timeout_ms })
}

pub(super) fn brpop(a: &mut Args<'_>) -> Result<Command> {
    let (keys, timeout_ms) = keys_then_timeout(a)?;
    list(ListCmd::BPop { keys, left: false, timeout_ms })
}

pub(super) fn blmove(a: &mut Args<'_>) -> Result<Command> {
    let (src, dst) = (a.next_bytes()?, a.next_bytes()?);
    let (from_left, to_left) = (side(a)?, side(a)?);
    let timeout_ms = timeout_secs(&a.next_bytes()?)?;
    list(ListCmd::BMove { src, dst, from_left, to_left, timeout_ms })
}

pub(super) fn brpoplpush(a: &mut Args<'_>) -> Result<Command> {
    let (src, dst) = (a.next_bytes()?, a.next_bytes()?);
    let timeout_ms = timeout_secs(&a.next_bytes()?)?;
    list(ListCmd::BMove { src, dst, from_left: false, to_left: true, timeout_ms })
}

pub(super) fn lmpop(a: &mut Args<'_>) -> Result<Command> {
    let (keys, right, count) = super::zset::mpop_args(a, ["left", "right"])?;
    list(ListCmd::MPop { keys, left: !right, count, block: None })
}

pub(super) fn blmpop(a: &mut Args<'_>) -> Result<Command> {
    let timeout = timeout_secs(&a.next_bytes()?)?;
    let (keys, right, count) = super::zset::mpop_args(a, ["left", "right"])?;
    list(ListCmd::MPop { keys, left: !right, count, block: Some(timeout) })
}
