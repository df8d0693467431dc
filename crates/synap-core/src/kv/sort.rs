//! SORT and SORT_RO, as Redis 7.0 does them: elements of a list, set or sorted set ordered as numbers
//! (ties by their bytes) or as strings (ALPHA), by themselves or by other keys (BY `pattern`, with `*`
//! standing for the element and `->field` reading a hash field), LIMIT, GET `pattern` (`#`: the element),
//! STORE into a list.
//!
//! With BY or GET patterns the keys read depend on the data, so the whole keyspace is locked for the
//! command (it is atomic, as in Redis); otherwise only the source and destination are. The work is
//! bounded by the source's size and the reply budget.

use std::cmp::Ordering;

use bytes::Bytes;

use super::access::{mutation, restore};
use super::value::{Coll, Kind, ListV};
use super::{Keyspace, Locked};
use crate::command::{Reply, SortArgs};
use crate::error::{CommandError, Result};
use crate::mutation::Mutation;
use crate::notify::Class;

/// How a pattern names the value to read for an element.
enum Pattern<'p> {
    /// `#`: the element itself.
    Element,
    /// No `*`: nothing (GET answers nil).
    Nothing,
    /// The key made of prefix, element, postfix; with a hash field when `->field` follows the `*`.
    Key { prefix: &'p [u8], postfix: &'p [u8], field: Option<&'p [u8]> },
}

/// A C string's bytes: up to the first NUL (Redis reads patterns with `strchr` and `strstr`).
fn c_str(p: &[u8]) -> &[u8] {
    &p[..p.iter().position(|&b| b == 0).unwrap_or(p.len())]
}

fn pattern(p: &[u8]) -> Pattern<'_> {
    if p == b"#" {
        return Pattern::Element;
    }
    let p = c_str(p);
    let Some(star) = p.iter().position(|&b| b == b'*') else { return Pattern::Nothing };
    let after = &p[star + 1..];
    let arrow = after.windows(2).position(|w| w == b"->").filter(|&i| i + 2 < after.len());
    match arrow {
        Some(i) => Pattern::Key { prefix: &p[..star], postfix: &after[..i], field: Some(&after[i + 2..]) },
        None => Pattern::Key { prefix: &p[..star], postfix: after, field: None },
    }
}

/// The score SORT gives a value: C's `strtod` over the whole of it as a C string (up to a NUL byte;
/// leading white space allowed; the empty string is 0); `None` when it is not a number, is NaN, or
/// overflows.
fn sort_score(v: &[u8]) -> Option<f64> {
    let v = c_str(v);
    if v.is_empty() {
        return Some(0.0);
    }
    let s = std::str::from_utf8(v).ok()?;
    let t = s.trim_start_matches([' ', '\t', '\n', '\u{b}', '\u{c}', '\r']);
    if t.is_empty() || t.starts_with(['+', '-']) && t[1..].starts_with(['+', '-']) {
        return None;
    }
    let x: f64 = t.parse().ok()?;
    let word = t.trim_start_matches(['+', '-']).to_ascii_lowercase();
    let named = word == "inf" || word == "infinity";
    if x.is_nan() || (x.is_infinite() && !named) {
        return None;
    }
    Some(x)
}

/// C's `strcoll` in the C locale: bytes compared up to the first NUL.
fn c_compare(a: &[u8], b: &[u8]) -> Ordering {
    let cut = |s: &[u8]| s.iter().position(|&c| c == 0).map_or(s.len(), |i| i);
    a[..cut(a)].cmp(&b[..cut(b)])
}

struct Item {
    elem: Bytes,
    score: f64,
    /// ALPHA with BY: the value sorted by (`None`: missing, first).
    by: Option<Bytes>,
}

impl Keyspace {
    /// The value a pattern names for `elem`: a string key, or a hash field (`None`: missing or another
    /// type).
    fn by_pattern(&self, locked: &mut Locked<'_>, pat: &Pattern<'_>, elem: &Bytes, now: u64) -> Option<Bytes> {
        let (prefix, postfix, field) = match pat {
            Pattern::Element => return Some(elem.clone()),
            Pattern::Nothing => return None,
            Pattern::Key { prefix, postfix, field } => (prefix, postfix, field),
        };
        let mut key = Vec::with_capacity(prefix.len() + elem.len() + postfix.len());
        key.extend_from_slice(prefix);
        key.extend_from_slice(elem);
        key.extend_from_slice(postfix);
        let h = self.hash(&key);
        let shard = locked.get(self.shard_of(h));
        let pos = self.find_live(shard, h, &key, now)?;
        let e = shard.entry(pos);
        match (&e.coll, field) {
            (None, None) => Some(Bytes::copy_from_slice(e.value())),
            (Some(c), Some(f)) => match &**c {
                Coll::Hash(hv) => hv.get(f).map(Bytes::copy_from_slice),
                _ => None,
            },
            _ => None,
        }
    }

    pub(super) fn sort(&self, a: &SortArgs, lsn: &mut u64, now: u64) -> Result<Reply> {
        if let Some(store) = &a.store {
            self.check_key(store)?;
        }
        // BY without `*` (BY "#" included) leaves the elements in their order.
        let by = a.by.as_deref().map(pattern);
        let nosort = a.by.as_deref().is_some_and(|b| !c_str(b).contains(&b'*'));
        let gets: Vec<Pattern<'_>> = a.get.iter().map(|g| pattern(g)).collect();
        let reads_keys =
            matches!(by, Some(Pattern::Key { .. })) && !nosort || gets.iter().any(|g| matches!(g, Pattern::Key { .. }));
        let h = self.hash(&a.key);
        let hs = a.store.as_ref().map(|k| self.hash(k));
        let mut locked = if reads_keys { self.lock_all() } else { self.lock_many([h].into_iter().chain(hs)) };

        // The elements, in the order SORT takes them.
        let (kind, mut items, start, end, dontsort) = {
            let shard = locked.get(self.shard_of(h));
            let pos = self.find_live(shard, h, &a.key, now);
            let coll = match pos.map(|p| &shard.entry(p).coll) {
                None => None,
                Some(Some(c)) if matches!(c.kind(), Kind::List | Kind::Set | Kind::ZSet) => Some(&**c),
                Some(_) => return Err(CommandError::WrongType),
            };
            let kind = coll.map_or(Kind::List, Coll::kind);
            let len = coll.map_or(0, Coll::len) as i64;
            // A set has no order of its own: when it is not sorted, it is sorted as strings, so that the
            // result is the same everywhere (Redis does this under STORE and in scripts, and otherwise
            // answers in its hash table's order).
            let dontsort = nosort && kind != Kind::Set;
            let (lstart, lcount) = a.limit;
            let mut start = lstart.max(0);
            let mut end = if lcount < 0 { len - 1 } else { start.saturating_add(lcount) - 1 };
            if start >= len {
                start = len - 1;
                end = len - 2;
            }
            end = end.min(len - 1);
            let own = |b: &[u8]| Item { elem: Bytes::copy_from_slice(b), score: 0.0, by: None };
            let items: Vec<Item> = match coll {
                None => Vec::new(),
                Some(Coll::List(l)) if dontsort => {
                    let all = l.items();
                    let picked: Vec<Item> = if end >= start {
                        let n = (end - start + 1) as usize;
                        if a.desc {
                            all.iter().rev().skip(start as usize).take(n).map(|(_, v)| own(v)).collect()
                        } else {
                            all.iter().skip(start as usize).take(n).map(|(_, v)| own(v)).collect()
                        }
                    } else {
                        Vec::new()
                    };
                    end -= start;
                    start = 0;
                    picked
                }
                Some(Coll::ZSet(z)) if dontsort => {
                    let picked: Vec<Item> = if end >= start {
                        let n = z.len();
                        let (s, e) = (start as usize, end as usize);
                        let mut r: Vec<Item> = if a.desc {
                            z.range(n - 1 - e, n - s).iter().map(|(_, m)| own(m)).collect()
                        } else {
                            z.range(s, e + 1).iter().map(|(_, m)| own(m)).collect()
                        };
                        if a.desc {
                            r.reverse();
                        }
                        r
                    } else {
                        Vec::new()
                    };
                    end -= start;
                    start = 0;
                    picked
                }
                Some(Coll::List(l)) => l.items().iter().map(|(_, v)| own(v)).collect(),
                Some(Coll::Set(s)) => s.members().iter().map(|m| own(m)).collect(),
                Some(Coll::ZSet(z)) => z.range(0, z.len()).iter().map(|(_, m)| own(m)).collect(),
                Some(_) => return Err(CommandError::WrongType),
            };
            (kind, items, start, end, dontsort)
        };
        let by_set_order = kind == Kind::Set && nosort;

        if !dontsort {
            let by = if by_set_order { None } else { by.as_ref() };
            let alpha = a.alpha || by_set_order;
            let mut bad = false;
            for it in &mut items {
                let value = match by {
                    Some(p) => self.by_pattern(&mut locked, p, &it.elem, now),
                    None => Some(it.elem.clone()),
                };
                let Some(value) = value else { continue };
                if alpha {
                    if by.is_some() {
                        it.by = Some(value);
                    }
                } else {
                    match sort_score(&value) {
                        Some(s) => it.score = s,
                        None => bad = true,
                    }
                }
            }
            let binary = a.store.is_some() || by_set_order;
            let cmp = |x: &Item, y: &Item| -> Ordering {
                let c = if !alpha {
                    x.score.partial_cmp(&y.score).unwrap_or(Ordering::Equal).then_with(|| x.elem.cmp(&y.elem))
                } else if by.is_some() {
                    match (&x.by, &y.by) {
                        (Some(p), Some(q)) if binary => p.cmp(q),
                        (Some(p), Some(q)) => c_compare(p, q),
                        (None, None) => Ordering::Equal,
                        (None, Some(_)) => Ordering::Less,
                        (Some(_), None) => Ordering::Greater,
                    }
                } else if binary {
                    x.elem.cmp(&y.elem)
                } else {
                    c_compare(&x.elem, &y.elem)
                };
                if a.desc { c.reverse() } else { c }
            };
            // As Redis: a partial quicksort when a range is taken by a pattern, else a stable sort.
            if by.is_some() && (start != 0 || end != items.len() as i64 - 1) {
                if end >= start {
                    crate::pqsort::pqsort(&mut items, start as usize, end as usize, &cmp);
                }
            } else {
                items.sort_by(&cmp);
            }
            if bad {
                return Err(CommandError::Invalid("One or more scores can't be converted into double".into()));
            }
        }

        // The output: each element, or each GET of it.
        let picked = if end >= start { &items[start as usize..=end as usize] } else { &[][..] };
        let mut out = Vec::with_capacity(picked.len() * gets.len().max(1));
        let mut bytes = 0usize;
        for it in picked {
            if gets.is_empty() {
                bytes += it.elem.len() + 16;
                out.push(Some(it.elem.clone()));
            }
            for g in &gets {
                let v = self.by_pattern(&mut locked, g, &it.elem, now);
                bytes += v.as_ref().map_or(0, Bytes::len) + 16;
                out.push(v);
            }
            self.reply_fits(bytes)?;
        }
        let Some(store) = &a.store else {
            return Ok(Reply::Array(out.into_iter().map(|v| v.map_or(Reply::Nil, Reply::Bulk)).collect()));
        };
        let n = out.len() as i64;
        let hs = hs.expect("a destination");
        if out.is_empty() {
            let shard = locked.get(self.shard_of(hs));
            if self.find_live(shard, hs, store, now).is_some() {
                let l =
                    self.commit(&mut locked, &[Mutation::Del { key: store }], now, &[(Class::Generic, "del", store)]);
                *lsn = (*lsn).max(l);
            }
            return Ok(Reply::Int(0));
        }
        let values: Vec<Bytes> = out.into_iter().map(Option::unwrap_or_default).collect();
        let list = ListV::from_items(values.iter().enumerate().map(|(i, v)| (i as i64, &v[..])).collect());
        let op = restore(Kind::List, &Coll::List(list))?;
        let l = self.commit(&mut locked, &[mutation(store, &op)], now, &[(Class::List, "sortstore", store)]);
        *lsn = (*lsn).max(l);
        Ok(Reply::Int(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_read_as_strtod_reads_them() {
        assert_eq!(sort_score(b""), Some(0.0));
        assert_eq!(sort_score(b"  1.5"), Some(1.5));
        assert_eq!(sort_score(b"-inf"), Some(f64::NEG_INFINITY));
        assert_eq!(sort_score(b"1e400"), None);
        assert_eq!(sort_score(b"nan"), None);
        assert_eq!(sort_score(b"1.5 "), None);
        assert_eq!(sort_score(b" "), None);
        assert_eq!(sort_score(b"\0\0-3"), Some(0.0));
        assert_eq!(sort_score(b"7\0x"), Some(7.0));
        assert_eq!(sort_score(b"abc"), None);
    }

    #[test]
    fn patterns_split_at_the_star_and_the_arrow() {
        assert!(matches!(pattern(b"#"), Pattern::Element));
        assert!(matches!(pattern(b"nosort"), Pattern::Nothing));
        assert!(matches!(pattern(b"w_*->f"), Pattern::Key { prefix: b"w_", postfix: b"", field: Some(b"f") }));
        assert!(matches!(pattern(b"w_*x->"), Pattern::Key { prefix: b"w_", postfix: b"x->", field: None }));
    }
}
