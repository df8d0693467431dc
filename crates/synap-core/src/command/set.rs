//! Set commands ([`SetCmd`]) and their parsers.

use bytes::Bytes;

use super::Command;
use super::args::Args;
use super::hash::CollScan;
use crate::error::{CommandError, Result};

/// How SINTER, SUNION and SDIFF combine their sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetOp {
    Inter,
    Union,
    Diff,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SetCmd {
    Add {
        key: Bytes,
        members: Vec<Bytes>,
    },
    Rem {
        key: Bytes,
        members: Vec<Bytes>,
    },
    IsMember {
        key: Bytes,
        member: Bytes,
    },
    MIsMember {
        key: Bytes,
        members: Vec<Bytes>,
    },
    Members {
        key: Bytes,
    },
    Card {
        key: Bytes,
    },
    /// SPOP: one member, or up to `count` as an array.
    Pop {
        key: Bytes,
        count: Option<usize>,
    },
    /// SRANDMEMBER: one member; with a count, distinct members (positive) or picks that may repeat.
    RandMember {
        key: Bytes,
        count: Option<i64>,
    },
    Move {
        src: Bytes,
        dst: Bytes,
        member: Bytes,
    },
    /// SINTER, SUNION, SDIFF, or their STORE forms into `store`.
    Combine {
        op: SetOp,
        keys: Vec<Bytes>,
        store: Option<Bytes>,
    },
    /// SINTERCARD: the intersection's size, counting up to `limit` (0: no limit).
    InterCard {
        keys: Vec<Bytes>,
        limit: usize,
    },
    Scan {
        key: Bytes,
        scan: CollScan,
    },
}

impl SetCmd {
    pub fn name(&self) -> &'static str {
        match self {
            SetCmd::Add { .. } => "sadd",
            SetCmd::Rem { .. } => "srem",
            SetCmd::IsMember { .. } => "sismember",
            SetCmd::MIsMember { .. } => "smismember",
            SetCmd::Members { .. } => "smembers",
            SetCmd::Card { .. } => "scard",
            SetCmd::Pop { .. } => "spop",
            SetCmd::RandMember { .. } => "srandmember",
            SetCmd::Move { .. } => "smove",
            SetCmd::Combine { op: SetOp::Inter, store: None, .. } => "sinter",
            SetCmd::Combine { op: SetOp::Union, store: None, .. } => "sunion",
            SetCmd::Combine { op: SetOp::Diff, store: None, .. } => "sdiff",
            SetCmd::Combine { op: SetOp::Inter, store: Some(_), .. } => "sinterstore",
            SetCmd::Combine { op: SetOp::Union, store: Some(_), .. } => "sunionstore",
            SetCmd::Combine { op: SetOp::Diff, store: Some(_), .. } => "sdiffstore",
            SetCmd::InterCard { .. } => "sintercard",
            SetCmd::Scan { .. } => "sscan",
        }
    }
}

fn set(c: SetCmd) -> Result<Command> {
    Ok(Command::Set(c))
}

pub(super) fn sadd(a: &mut Args<'_>) -> Result<Command> {
    set(SetCmd::Add { key: a.next_bytes()?, members: a.rest() })
}

pub(super) fn srem(a: &mut Args<'_>) -> Result<Command> {
    set(SetCmd::Rem { key: a.next_bytes()?, members: a.rest() })
}

pub(super) fn sismember(a: &mut Args<'_>) -> Result<Command> {
    set(SetCmd::IsMember { key: a.next_bytes()?, member: a.next_bytes()? })
}

pub(super) fn smismember(a: &mut Args<'_>) -> Result<Command> {
    set(SetCmd::MIsMember { key: a.next_bytes()?, members: a.rest() })
}

pub(super) fn smembers(a: &mut Args<'_>) -> Result<Command> {
    set(SetCmd::Members { key: a.next_bytes()? })
}

pub(super) fn scard(a: &mut Args<'_>) -> Result<Command> {
    set(SetCmd::Card { key: a.next_bytes()? })
}

/// The optional count of SPOP and SRANDMEMBER.
fn count_arg(a: &mut Args<'_>) -> Result<Option<i64>> {
    let count = if a.is_empty() { None } else { Some(a.next_int()?) };
    a.finish()?;
    Ok(count)
}

pub(super) fn spop(a: &mut Args<'_>) -> Result<Command> {
    let key = a.next_bytes()?;
    let count = count_arg(a)?
        .map(|n| {
            usize::try_from(n).map_err(|_| CommandError::Invalid("value is out of range, must be positive".into()))
        })
        .transpose()?;
    set(SetCmd::Pop { key, count })
}

pub(super) fn srandmember(a: &mut Args<'_>) -> Result<Command> {
    let key = a.next_bytes()?;
    set(SetCmd::RandMember { key, count: count_arg(a)? })
}

pub(super) fn smove(a: &mut Args<'_>) -> Result<Command> {
    set(SetCmd::Move { src: a.next_bytes()?, dst: a.next_bytes()?, member: a.next_bytes()? })
}

fn combine(a: &mut Args<'_>, op: SetOp) -> Result<Command> {
    set(SetCmd::Combine { op, keys: a.rest(), store: None })
}

fn combine_store(a: &mut Args<'_>, op: SetOp) -> Result<Command> {
    let dst = a.next_bytes()?;
    set(SetCmd::Combine { op, keys: a.rest(), store: Some(dst) })
}

pub(super) fn sinter(a: &mut Args<'_>) -> Result<Command> {
    combine(a, SetOp::Inter)
}

pub(super) fn sunion(a: &mut Args<'_>) -> Result<Command> {
    combine(a, SetOp::Union)
}

pub(super) fn sdiff(a: &mut Args<'_>) -> Result<Command> {
    combine(a, SetOp::Diff)
}

pub(super) fn sinterstore(a: &mut Args<'_>) -> Result<Command> {
    combine_store(a, SetOp::Inter)
}

pub(super) fn sunionstore(a: &mut Args<'_>) -> Result<Command> {
    combine_store(a, SetOp::Union)
}

pub(super) fn sdiffstore(a: &mut Args<'_>) -> Result<Command> {
    combine_store(a, SetOp::Diff)
}

/// `numkeys key [key ...]`, as SINTERCARD, ZUNIONSTORE and their kin take their keys.
pub(super) fn numkeys(a: &mut Args<'_>, zero: impl FnOnce() -> CommandError) -> Result<Vec<Bytes>> {
    let n = a.next_int()?;
    if n <= 0 {
        return Err(zero());
    }
    a.take(n as usize)
}

pub(super) fn sintercard(a: &mut Args<'_>) -> Result<Command> {
    let n = a.next_int()?;
    if n <= 0 {
        return Err(CommandError::Invalid("numkeys should be greater than 0".into()));
    }
    if a.remaining() < n as usize {
        return Err(CommandError::Invalid("Number of keys can't be greater than number of args".into()));
    }
    let keys = a.take(n as usize)?;
    let limit = if a.remaining() == 2 && a.eat("limit") {
        let l = a.next_int()?;
        usize::try_from(l).map_err(|_| CommandError::Invalid("LIMIT can't be negative".into()))?
    } else {
        a.finish()?;
        0
    };
    set(SetCmd::InterCard { keys, limit })
}

pub(super) fn sscan(a: &mut Args<'_>) -> Result<Command> {
    set(SetCmd::Scan { key: a.next_bytes()?, scan: CollScan::parse(a)? })
}
