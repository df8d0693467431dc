//! List commands. Every element carries an `idx` (see `value`); pushes take the next free idx at an end,
//! LINSERT respaces a neighbourhood, and each change commits `LPut`/`LDel`/`LKeep` element records.

use bytes::Bytes;

use super::Keyspace;
use super::access::{Change, Changes, Op};
use super::hash::bulk;
use super::value::{Coll, Kind, ListV};
use crate::command::{ListCmd, Reply};
use crate::error::{CommandError, Result};
use crate::notify::Class;

/// Spacing of list element indexes: pushes leave this much room between neighbours, so an insert in the
/// middle (LINSERT) rarely has to move any. 2^63 / 1024 pushes to one end of one list are possible.
const LIST_STEP: i64 = 1024;

fn index_exhausted() -> CommandError {
    CommandError::Invalid("the list's index space is exhausted; copy it to a new key".into())
}

/// The first `n` elements (`left`) or the last `n`, from the end: what the pops take (`n` >= 1).
fn ends(l: &ListV, n: usize, left: bool) -> Vec<(i64, &[u8])> {
    if n == 0 {
        vec![]
    } else if left {
        l.range(0, n - 1)
    } else {
        let len = l.len();
        let mut v = l.range(len - n, len - 1);
        v.reverse();
        v
    }
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

/// Resolves Redis's `start`/`stop` indexes (negative from the end) against `len`: `None` when empty.
pub(super) fn index_range(start: i64, stop: i64, len: usize) -> Option<(usize, usize)> {
    let len = len as i64;
    let s = if start < 0 { (len + start).max(0) } else { start };
    let e = if stop < 0 { len + stop } else { stop.min(len - 1) };
    (s <= e && s < len && e >= 0).then_some((s as usize, e as usize))
}

fn list_of(c: Option<&Coll>) -> Option<&ListV> {
    match c {
        Some(Coll::List(l)) if l.len() > 0 => Some(l),
        _ => None,
    }
}

const READ: (Class, &str) = (Class::List, "");

fn pop_event(left: bool) -> &'static str {
    if left { "lpop" } else { "rpop" }
}

fn push_event(left: bool) -> &'static str {
    if left { "lpush" } else { "rpush" }
}

impl Keyspace {
    pub(crate) fn list_cmd(&self, cmd: ListCmd, lsn: &mut u64, now: u64) -> Result<Reply> {
        match cmd {
            ListCmd::Push { key, values, left, existing } => {
                self.check_sizes(&key, values.iter().map(|v| v.len()).sum())?;
                self.one(&key, Kind::List, (Class::List, push_event(left)), now, lsn, |c| {
                    let l = list_of(c);
                    if l.is_none() && existing {
                        return Ok(Change::read(Reply::Int(0)));
                    }
                    let (mut first, mut last) = (l.and_then(|l| l.first_idx()), l.and_then(|l| l.last_idx()));
                    let ops = values
                        .into_iter()
                        .map(|v| {
                            let idx = end_slot(first, last, left)?;
                            first = Some(first.map_or(idx, |f| f.min(idx)));
                            last = Some(last.map_or(idx, |l| l.max(idx)));
                            Ok(Op::LPut(idx, v))
                        })
                        .collect::<Result<Vec<Op>>>()?;
                    let len = l.map(|l| l.len()).unwrap_or(0) + ops.len();
                    Ok(Change::write(Reply::Int(len as i64), ops))
                })
            }
            ListCmd::Pop { key, left, count } => {
                self.one(&key, Kind::List, (Class::List, pop_event(left)), now, lsn, |c| {
                    let Some(l) = list_of(c) else {
                        return Ok(Change::read(if count.is_some() { Reply::NullArray } else { Reply::Nil }));
                    };
                    let len = l.len();
                    let n = count.unwrap_or(1).min(len);
                    if n == 0 {
                        return Ok(Change::read(Reply::Array(vec![])));
                    }
                    let picked = ends(l, n, left);
                    let ops = picked.iter().map(|(i, _)| Op::LDel(*i)).collect();
                    let reply = match count {
                        None => bulk(picked[0].1),
                        Some(_) => Reply::Array(picked.iter().map(|(_, v)| bulk(v)).collect()),
                    };
                    Ok(Change::write(reply, ops))
                })
            }
            ListCmd::Len { key } => self.one(&key, Kind::List, READ, now, lsn, |c| {
                Ok(Change::read(Reply::Int(c.map(|c| c.len()).unwrap_or(0) as i64)))
            }),
            ListCmd::Range { key, start, stop } => self.one(&key, Kind::List, READ, now, lsn, |c| {
                let Some(l) = list_of(c) else { return Ok(Change::read(Reply::Array(vec![]))) };
                let items = match index_range(start, stop, l.len()) {
                    Some((s, e)) => l.range(s, e),
                    None => vec![],
                };
                self.reply_fits(items.iter().map(|(_, v)| v.len() + 16).sum())?;
                Ok(Change::read(Reply::Array(items.into_iter().map(|(_, v)| bulk(v)).collect())))
            }),
            ListCmd::Index { key, index } => self.one(&key, Kind::List, READ, now, lsn, |c| {
                let Some(l) = list_of(c) else { return Ok(Change::read(Reply::Nil)) };
                let pos = if index < 0 { l.len() as i64 + index } else { index };
                let v = (pos >= 0).then(|| l.at(pos as usize)).flatten();
                Ok(Change::read(v.map(|(_, v)| bulk(v)).unwrap_or(Reply::Nil)))
            }),
            ListCmd::Set { key, index, value } => {
                self.check_sizes(&key, value.len())?;
                self.one(&key, Kind::List, (Class::List, "lset"), now, lsn, |c| {
                    let Some(l) = list_of(c) else { return Err(CommandError::NoSuchKey) };
                    let pos = if index < 0 { l.len() as i64 + index } else { index };
                    let (idx, _) = (pos >= 0)
                        .then(|| l.at(pos as usize))
                        .flatten()
                        .ok_or_else(|| CommandError::Invalid("index out of range".into()))?;
                    Ok(Change::write(Reply::Ok, vec![Op::LPut(idx, value)]))
                })
            }
            ListCmd::Insert { key, before, pivot, value } => {
                self.check_sizes(&key, value.len())?;
                self.one(&key, Kind::List, (Class::List, "linsert"), now, lsn, |c| {
                    let Some(l) = list_of(c) else { return Ok(Change::read(Reply::Int(0))) };
                    let items = l.items();
                    let Some(p) = items.iter().position(|(_, v)| *v == &pivot[..]) else {
                        return Ok(Change::read(Reply::Int(-1)));
                    };
                    let at = if before { p } else { p + 1 };
                    let (idx, moves) = insert_slot(&items, at)?;
                    // Moved neighbours: every removal first, then the puts (a new idx may be an old one).
                    let mut ops: Vec<Op> = moves.iter().map(|&(pos, _)| Op::LDel(items[pos].0)).collect();
                    ops.extend(moves.iter().map(|&(pos, new)| Op::LPut(new, Bytes::copy_from_slice(items[pos].1))));
                    ops.push(Op::LPut(idx, value));
                    Ok(Change::write(Reply::Int(items.len() as i64 + 1), ops))
                })
            }
            ListCmd::Rem { key, count, value } => self.one(&key, Kind::List, (Class::List, "lrem"), now, lsn, |c| {
                let Some(l) = list_of(c) else { return Ok(Change::read(Reply::Int(0))) };
                let items = l.items();
                let matches = items.iter().filter(|(_, v)| *v == &value[..]).map(|(i, _)| *i);
                let limit = if count == 0 { usize::MAX } else { count.unsigned_abs() as usize };
                let ops: Vec<Op> = if count >= 0 {
                    matches.take(limit).map(Op::LDel).collect()
                } else {
                    matches.rev().take(limit).map(Op::LDel).collect()
                };
                Ok(Change::write(Reply::Int(ops.len() as i64), ops))
            }),
            ListCmd::Trim { key, start, stop } => self.one(&key, Kind::List, (Class::List, "ltrim"), now, lsn, |c| {
                let Some(l) = list_of(c) else { return Ok(Change::read(Reply::Ok)) };
                let ops = match index_range(start, stop, l.len()) {
                    Some((s, e)) if s == 0 && e + 1 == l.len() => vec![],
                    Some((s, e)) => vec![Op::LKeep(l.at(s).expect("in range").0, l.at(e).expect("in range").0)],
                    None => vec![Op::Del],
                };
                Ok(Change::write(Reply::Ok, ops))
            }),
            ListCmd::Pos { key, value, rank, count, maxlen } => self.one(&key, Kind::List, READ, now, lsn, |c| {
                let Some(l) = list_of(c) else {
                    return Ok(Change::read(if count.is_some() { Reply::Array(vec![]) } else { Reply::Nil }));
                };
                let items = l.items();
                let n = items.len();
                let order: Box<dyn Iterator<Item = usize>> =
                    if rank > 0 { Box::new(0..n) } else { Box::new((0..n).rev()) };
                let limit = if maxlen == 0 { n } else { maxlen };
                let mut skip = rank.unsigned_abs() as usize - 1;
                let want = match count {
                    None => 1,
                    Some(0) => usize::MAX,
                    Some(c) => c,
                };
                let mut found = Vec::new();
                for p in order.take(limit) {
                    if items[p].1 == &value[..] {
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
                Ok(Change::read(reply))
            }),
            ListCmd::Move { src, dst, from_left, to_left } | ListCmd::BMove { src, dst, from_left, to_left, .. } => {
                self.lmove(&src, &dst, from_left, to_left, lsn, now)
            }
            ListCmd::BPop { keys, left, .. } => {
                for k in keys {
                    let r = self.one(&k, Kind::List, (Class::List, pop_event(left)), now, lsn, |c| {
                        let Some(l) = list_of(c) else { return Ok(Change::read(None)) };
                        let (idx, v) = if left { l.at(0) } else { l.at(l.len() - 1) }.expect("non-empty");
                        Ok(Change::write(Some(bulk(v)), vec![Op::LDel(idx)]))
                    })?;
                    if let Some(v) = r {
                        return Ok(Reply::Array(vec![Reply::Bulk(k), v]));
                    }
                }
                Ok(Reply::NullArray)
            }
            ListCmd::MPop { keys, left, count, .. } => {
                for k in keys {
                    let r = self.one(&k, Kind::List, (Class::List, pop_event(left)), now, lsn, |c| {
                        let Some(l) = list_of(c) else { return Ok(Change::read(None)) };
                        let picked = ends(l, count.min(l.len()), left);
                        let ops = picked.iter().map(|(idx, _)| Op::LDel(*idx)).collect();
                        let items = picked.iter().map(|(_, v)| bulk(v)).collect();
                        Ok(Change::write(Some(Reply::Array(items)), ops))
                    })?;
                    if let Some(items) = r {
                        return Ok(Reply::Array(vec![Reply::Bulk(k), items]));
                    }
                }
                Ok(Reply::NullArray)
            }
        }
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
        // Redis looks at the source first: a missing one answers nil whatever the destination holds.
        if self.source_missing(src, Kind::List, now)? {
            return Ok(Reply::Nil);
        }
        self.many(&[src.clone(), dst.clone()], &[Kind::List], now, lsn, |colls| {
            let Some(s) = list_of(colls[0]) else { return Ok(Changes::read(Reply::Nil)) };
            let (idx, v) = if from_left { s.at(0) } else { s.at(s.len() - 1) }.expect("non-empty");
            let v = Bytes::copy_from_slice(v);
            let mut ch = Changes::read(Reply::Bulk(v.clone()));
            if src == dst && s.len() == 1 {
                // Moving the only element within its list: put it at the new end before taking it from
                // the old one, so the list (and its expiry) never goes away, as in Redis.
                ch.op(dst, Op::LPut(end_slot(Some(idx), Some(idx), to_left)?, v));
                ch.op(src, Op::LDel(idx));
                ch.event(Class::List, push_event(to_left), dst);
                ch.event(Class::List, pop_event(from_left), src);
                return Ok(ch);
            }
            ch.op(src, Op::LDel(idx));
            // The destination's new end, seen after the pop when it is the same list.
            let (first, last) = match list_of(colls[1]) {
                // The same list: its ends once the popped element is gone.
                Some(d) if src == dst => match d.len() {
                    1 => (None, None),
                    _ if from_left => (d.at(1).map(|(i, _)| i), d.last_idx()),
                    n => (d.first_idx(), d.at(n - 2).map(|(i, _)| i)),
                },
                Some(d) => (d.first_idx(), d.last_idx()),
                None => (None, None),
            };
            ch.op(dst, Op::LPut(end_slot(first, last, to_left)?, v));
            // Redis raises the push first, then the pop.
            ch.event(Class::List, push_event(to_left), dst);
            ch.event(Class::List, pop_event(from_left), src);
            Ok(ch)
        })
    }
}
