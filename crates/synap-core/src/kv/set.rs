//! Set commands: each reads the set(s) under their shard locks and commits `SAdd`/`SRem` element records,
//! or a whole value (`Restore`) for the STORE forms.

use bytes::Bytes;

use super::Keyspace;
use super::access::{Change, Changes, Op, restore};
use super::hash::{bulk, random_pick, scan_matches};
use super::value::{Coll, Kind, SetV};
use crate::command::{Reply, SetCmd, SetOp};
use crate::error::Result;
use crate::notify::Class;

fn set_of(c: Option<&Coll>) -> Option<&SetV> {
    match c {
        Some(Coll::Set(s)) => Some(s),
        _ => None,
    }
}

const READ: (Class, &str) = (Class::Set, "");

impl Keyspace {
    pub(crate) fn set_cmd(&self, cmd: SetCmd, lsn: &mut u64, now: u64) -> Result<Reply> {
        match cmd {
            SetCmd::Add { key, members } => {
                self.check_sizes(&key, members.iter().map(|m| m.len()).sum())?;
                self.one(&key, Kind::Set, (Class::Set, "sadd"), now, lsn, |c| {
                    let s = set_of(c);
                    let mut seen = hashbrown::HashSet::new();
                    let ops: Vec<Op> = members
                        .iter()
                        .filter(|m| !s.is_some_and(|s| s.contains(m)) && seen.insert(&m[..]))
                        .map(|m| Op::SAdd(m.clone()))
                        .collect();
                    Ok(Change::write(Reply::Int(ops.len() as i64), ops))
                })
            }
            SetCmd::Rem { key, members } => self.one(&key, Kind::Set, (Class::Set, "srem"), now, lsn, |c| {
                let s = set_of(c);
                let mut seen = hashbrown::HashSet::new();
                let ops: Vec<Op> = members
                    .iter()
                    .filter(|m| s.is_some_and(|s| s.contains(m)) && seen.insert(&m[..]))
                    .map(|m| Op::SRem(m.clone()))
                    .collect();
                Ok(Change::write(Reply::Int(ops.len() as i64), ops))
            }),
            SetCmd::IsMember { key, member } => self.one(&key, Kind::Set, READ, now, lsn, |c| {
                Ok(Change::read(Reply::Int(set_of(c).is_some_and(|s| s.contains(&member)) as i64)))
            }),
            SetCmd::MIsMember { key, members } => self.one(&key, Kind::Set, READ, now, lsn, |c| {
                let s = set_of(c);
                let out = members.iter().map(|m| Reply::Int(s.is_some_and(|s| s.contains(m)) as i64)).collect();
                Ok(Change::read(Reply::Array(out)))
            }),
            SetCmd::Members { key } => self.one(&key, Kind::Set, READ, now, lsn, |c| {
                let members = set_of(c).map(|s| s.members()).unwrap_or_default();
                self.reply_fits(members.iter().map(|m| m.len() + 16).sum())?;
                Ok(Change::read(Reply::Set(members.into_iter().map(bulk).collect())))
            }),
            SetCmd::Card { key } => self.one(&key, Kind::Set, READ, now, lsn, |c| {
                Ok(Change::read(Reply::Int(c.map(|c| c.len()).unwrap_or(0) as i64)))
            }),
            SetCmd::Pop { key, count } => self.pick(&key, count.map(|n| n as i64), true, lsn, now),
            SetCmd::RandMember { key, count } => self.pick(&key, count, false, lsn, now),
            SetCmd::Move { src, dst, member } => {
                // Redis looks at the source first: a missing one answers 0 whatever the destination holds.
                if self.source_missing(&src, Kind::Set, now)? {
                    return Ok(Reply::Int(0));
                }
                self.many(&[src.clone(), dst.clone()], &[Kind::Set], now, lsn, |colls| {
                    if !set_of(colls[0]).is_some_and(|s| s.contains(&member)) {
                        return Ok(Changes::read(Reply::Int(0)));
                    }
                    let mut ch = Changes::read(Reply::Int(1));
                    if src != dst {
                        ch.op(&src, Op::SRem(member.clone()));
                        ch.op(&dst, Op::SAdd(member));
                        ch.event(Class::Set, "srem", &src);
                        ch.event(Class::Set, "sadd", &dst);
                    }
                    Ok(ch)
                })
            }
            SetCmd::Combine { op, keys, store } => self.combine(op, &keys, store, None, lsn, now),
            SetCmd::InterCard { keys, limit } => self.combine(SetOp::Inter, &keys, None, Some(limit), lsn, now),
            SetCmd::Scan { key, scan } => self.one(&key, Kind::Set, READ, now, lsn, |c| {
                let (cursor, page) = set_of(c)
                    .map(|s| s.scan(scan.cursor, scan.count, self.config.max_reply_bytes))
                    .unwrap_or((0, vec![]));
                let items = page.into_iter().filter(|m| scan_matches(&scan, m)).map(bulk).collect();
                Ok(Change::read(Reply::Scan { cursor, items }))
            }),
        }
    }

    /// SPOP (`pop`) and SRANDMEMBER: one member, or a count of them.
    fn pick(&self, key: &[u8], count: Option<i64>, pop: bool, lsn: &mut u64, now: u64) -> Result<Reply> {
        self.one(key, Kind::Set, (Class::Set, "spop"), now, lsn, |c| {
            let Some(s) = set_of(c) else {
                return Ok(Change::read(match count {
                    None => Reply::Nil,
                    Some(_) if pop => Reply::Set(vec![]),
                    Some(_) => Reply::Array(vec![]),
                }));
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
            let ops = if pop { picked.iter().map(|m| Op::SRem(Bytes::copy_from_slice(m))).collect() } else { vec![] };
            let reply = match count {
                None => picked.first().map(|m| bulk(m)).unwrap_or(Reply::Nil),
                // SPOP's members are a set; SRANDMEMBER's may repeat, an array.
                Some(_) if pop => Reply::Set(picked.iter().map(|m| bulk(m)).collect()),
                Some(_) => Reply::Array(picked.iter().map(|m| bulk(m)).collect()),
            };
            Ok(Change::write(reply, ops))
        })
    }

    /// SINTER, SUNION, SDIFF, their STORE forms (`store`), and SINTERCARD (`card`: its LIMIT, 0 for none).
    fn combine(
        &self,
        op: SetOp,
        keys: &[Bytes],
        store: Option<Bytes>,
        card: Option<usize>,
        lsn: &mut u64,
        now: u64,
    ) -> Result<Reply> {
        let event = match op {
            SetOp::Inter => "sinterstore",
            SetOp::Union => "sunionstore",
            SetOp::Diff => "sdiffstore",
        };
        self.many_then_store(keys, &[Kind::Set], store.as_ref(), now, lsn, |colls| {
            let sets: Vec<Option<&SetV>> = colls.iter().map(|c| set_of(*c)).collect();
            let result: Vec<&[u8]> = match op {
                SetOp::Inter => {
                    if sets.iter().any(|s| s.is_none()) {
                        vec![]
                    } else {
                        let mut order: Vec<&SetV> = sets.iter().map(|s| s.expect("present")).collect();
                        order.sort_by_key(|s| s.len());
                        order[0].members().into_iter().filter(|m| order[1..].iter().all(|s| s.contains(m))).collect()
                    }
                }
                SetOp::Union => {
                    let mut seen = hashbrown::HashSet::new();
                    sets.iter().flatten().flat_map(|s| s.members()).filter(|m| seen.insert(*m)).collect()
                }
                SetOp::Diff => match sets[0] {
                    None => vec![],
                    Some(first) => first
                        .members()
                        .into_iter()
                        .filter(|m| !sets[1..].iter().flatten().any(|s| s.contains(m)))
                        .collect(),
                },
            };
            if let Some(limit) = card {
                let n = if limit > 0 { result.len().min(limit) } else { result.len() };
                return Ok(Changes::read(Reply::Int(n as i64)));
            }
            match &store {
                Some(d) => {
                    let mut c = Coll::empty(Kind::Set);
                    if let Coll::Set(s) = &mut c {
                        for m in &result {
                            s.add(m);
                        }
                    }
                    let value = if result.is_empty() { Op::Del } else { restore(Kind::Set, &c)? };
                    let mut ch = Changes::read(Reply::Int(result.len() as i64));
                    ch.op(d, Op::Del);
                    ch.op(d, value);
                    if !result.is_empty() {
                        ch.event(Class::Set, event, d);
                    }
                    Ok(ch)
                }
                None => {
                    self.reply_fits(result.iter().map(|m| m.len() + 16).sum())?;
                    Ok(Changes::read(Reply::Set(result.into_iter().map(bulk).collect())))
                }
            }
        })
    }
}
