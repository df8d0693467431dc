//! Hashes, lists, sets and sorted sets against simple Rust models (proptest), across the compact and
//! general encodings, plus replay of the logged mutations and snapshot rebuilds (the digest must match).

mod common;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;

use bytes::Bytes;
use common::RecordingLog;
use proptest::prelude::*;
use synap_core::command::{KeysCmd, KvCmd};
use synap_core::{
    Command, CommandError, Engine, EngineConfig, EngineCursor, ExecCtx, ManualClock, Reply, decode_batch,
};

struct Fixture {
    log: Arc<RecordingLog>,
    engine: Engine,
    clock: Arc<ManualClock>,
}

fn fixture() -> Fixture {
    let clock = Arc::new(ManualClock::new(1_000_000));
    let log = Arc::new(RecordingLog::default());
    let engine = Engine::new(EngineConfig::default(), clock.clone(), Some(log.clone()));
    Fixture { log, engine, clock }
}

impl Fixture {
    fn run(&self, name: &str, args: &[&str]) -> Result<Reply, CommandError> {
        let cmd = common::parse(name, args)?;
        self.engine.execute(&mut ExecCtx::default(), cmd)
    }

    fn ok(&self, name: &str, args: &[&str]) -> Reply {
        self.run(name, args).unwrap_or_else(|e| panic!("{name} {args:?}: {e}"))
    }

    fn check_replay_and_snapshot(&self) {
        let replica = Engine::new(EngineConfig::default(), self.clock.clone(), None);
        for batch in self.log.batches.lock().iter() {
            replica.apply_batch(&decode_batch(batch).unwrap());
        }
        assert_eq!(replica.digest(), self.engine.digest(), "replay");
        let copy = Engine::new(EngineConfig::default(), self.clock.clone(), None);
        let mut cursor = EngineCursor::default();
        loop {
            let mut buf = Vec::new();
            if self.engine.snapshot_chunk(&mut cursor, 7, &mut buf).is_none() {
                break;
            }
            copy.apply_batch(&decode_batch(&buf).unwrap());
        }
        assert_eq!(copy.digest(), self.engine.digest(), "snapshot");
        // With chunks far smaller than the collections: each is written as its element records.
        let copy = Engine::new(EngineConfig::default(), self.clock.clone(), None);
        let mut cursor = EngineCursor::with_chunk_bytes(512);
        loop {
            let mut buf = Vec::new();
            if self.engine.snapshot_chunk(&mut cursor, 7, &mut buf).is_none() {
                break;
            }
            copy.apply_batch(&decode_batch(&buf).unwrap());
        }
        assert_eq!(copy.digest(), self.engine.digest(), "snapshot in small chunks");
    }
}

fn b(s: &str) -> Reply {
    Reply::Bulk(Bytes::from(s.to_string()))
}

fn strings(r: Reply) -> Vec<String> {
    match r {
        Reply::Array(items) | Reply::Set(items) => items
            .into_iter()
            .map(|i| match i {
                Reply::Bulk(b) => String::from_utf8(b.to_vec()).unwrap(),
                Reply::Double(d) => format!("{d}"),
                o => panic!("{o:?}"),
            })
            .collect(),
        Reply::Nil | Reply::NullArray => vec![],
        o => panic!("{o:?}"),
    }
}

#[test]
fn wrongtype_and_type_and_rename_across_kinds() {
    let f = fixture();
    f.engine.execute(&mut ExecCtx::default(), Command::Kv(KvCmd::Set(synap_core::SetArgs::new("str", "v")))).unwrap();
    assert_eq!(f.run("hset", &["str", "f", "v"]), Err(CommandError::WrongType));
    f.ok("lpush", &["l", "a"]);
    assert_eq!(f.run("sadd", &["l", "x"]), Err(CommandError::WrongType));
    let get = f.engine.execute(&mut ExecCtx::default(), Command::Kv(KvCmd::Get { key: Bytes::from("l") }));
    assert_eq!(get, Err(CommandError::WrongType));
    let ty = |k: &str| {
        f.engine
            .execute(&mut ExecCtx::default(), Command::Keys(KeysCmd::Type { key: Bytes::from(k.to_string()) }))
            .unwrap()
    };
    assert_eq!(ty("l"), Reply::Status("list"));
    f.ok("zadd", &["z", "1", "a"]);
    assert_eq!(ty("z"), Reply::Status("zset"));
    let rename = Command::Keys(KeysCmd::Rename { from: Bytes::from("z"), to: Bytes::from("z2"), nx: false });
    f.engine.execute(&mut ExecCtx::default(), rename).unwrap();
    assert_eq!(f.ok("zscore", &["z2", "a"]), Reply::Double(1.0));
    // Popping the last element removes the key.
    f.ok("lpop", &["l"]);
    assert_eq!(ty("l"), Reply::Status("none"));
    f.check_replay_and_snapshot();
}

#[derive(Debug, Clone)]
enum HOp {
    Set(u8, u8),
    Del(u8),
    Incr(u8, i8),
}

#[derive(Debug, Clone)]
enum LOp {
    Push(bool, u8),
    Pop(bool, u8),
    Set(i8, u8),
    Insert(bool, u8, u8),
    Rem(i8, u8),
    Trim(i8, i8),
    Move(bool, bool),
}

#[derive(Debug, Clone)]
enum SOp {
    Add(u16),
    Rem(u16),
    Pop,
}

#[derive(Debug, Clone)]
enum ZOp {
    Add(u16, i8),
    Incr(u16, i8),
    Rem(u16),
    PopMin,
    RemRank(i8, i8),
}

fn member(n: impl std::fmt::Display, wide: bool) -> String {
    // Long members push a collection to its general encoding.
    if wide { format!("member-{n}-{}", "x".repeat(70)) } else { format!("m{n}") }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn hashes_match_a_hashmap(ops in prop::collection::vec(prop_oneof![
        (0u8..200, 0u8..5).prop_map(|(f, v)| HOp::Set(f, v)),
        (0u8..200).prop_map(HOp::Del),
        (0u8..200, any::<i8>()).prop_map(|(f, d)| HOp::Incr(f, d)),
    ], 1..300)) {
        let f = fixture();
        let mut model: HashMap<String, String> = HashMap::new();
        for op in ops {
            match op {
                HOp::Set(k, v) => {
                    let (k, v) = (format!("f{k}"), format!("{v}"));
                    let new = !model.contains_key(&k);
                    prop_assert_eq!(f.ok("hset", &["h", &k, &v]), Reply::Int(new as i64));
                    model.insert(k, v);
                }
                HOp::Del(k) => {
                    let k = format!("f{k}");
                    prop_assert_eq!(f.ok("hdel", &["h", &k]), Reply::Int(model.remove(&k).is_some() as i64));
                }
                HOp::Incr(k, d) => {
                    let k = format!("f{k}");
                    let cur: i64 = model.get(&k).map(|v| v.parse().unwrap()).unwrap_or(0);
                    prop_assert_eq!(f.ok("hincrby", &["h", &k, &d.to_string()]), Reply::Int(cur + d as i64));
                    model.insert(k, (cur + d as i64).to_string());
                }
            }
            prop_assert_eq!(f.ok("hlen", &["h"]), Reply::Int(model.len() as i64));
        }
        let Reply::Map(all) = f.ok("hgetall", &["h"]) else { panic!() };
        let got: HashMap<String, String> = all.into_iter().map(|(k, v)| match (k, v) {
            (Reply::Bulk(k), Reply::Bulk(v)) => (String::from_utf8(k.to_vec()).unwrap(), String::from_utf8(v.to_vec()).unwrap()),
            o => panic!("{o:?}"),
        }).collect();
        prop_assert_eq!(got, model.clone());
        for (k, v) in model.iter().take(5) {
            prop_assert_eq!(f.ok("hget", &["h", k]), b(v));
        }
        f.check_replay_and_snapshot();
    }

    #[test]
    fn lists_match_a_deque(wide in any::<bool>(), ops in prop::collection::vec(prop_oneof![
        (any::<bool>(), 0u8..50).prop_map(|(l, v)| LOp::Push(l, v)),
        (any::<bool>(), 0u8..3).prop_map(|(l, n)| LOp::Pop(l, n)),
        (any::<i8>(), 0u8..50).prop_map(|(i, v)| LOp::Set(i, v)),
        (any::<bool>(), 0u8..50, 0u8..50).prop_map(|(bf, p, v)| LOp::Insert(bf, p, v)),
        (-2i8..3, 0u8..50).prop_map(|(c, v)| LOp::Rem(c, v)),
        (any::<i8>(), any::<i8>()).prop_map(|(a, z)| LOp::Trim(a, z)),
        (any::<bool>(), any::<bool>()).prop_map(|(a, z)| LOp::Move(a, z)),
    ], 1..200)) {
        let f = fixture();
        let mut model: VecDeque<String> = VecDeque::new();
        let mut other: VecDeque<String> = VecDeque::new();
        for op in ops {
            match op {
                LOp::Push(left, v) => {
                    let v = member(v, wide);
                    if left { model.push_front(v.clone()) } else { model.push_back(v.clone()) }
                    prop_assert_eq!(f.ok(if left { "lpush" } else { "rpush" }, &["l", &v]), Reply::Int(model.len() as i64));
                }
                LOp::Pop(left, n) => {
                    let n = n as usize;
                    let want: Vec<String> = (0..n.min(model.len())).map(|_| if left { model.pop_front() } else { model.pop_back() }.unwrap()).collect();
                    let got = f.ok(if left { "lpop" } else { "rpop" }, &["l", &n.to_string()]);
                    prop_assert_eq!(strings(got), want);
                }
                LOp::Set(i, v) => {
                    let v = member(v, wide);
                    let len = model.len() as i64;
                    let pos = if (i as i64) < 0 { len + i as i64 } else { i as i64 };
                    let r = f.run("lset", &["l", &i.to_string(), &v]);
                    if model.is_empty() {
                        prop_assert_eq!(r, Err(CommandError::NoSuchKey));
                    } else if pos < 0 || pos >= len {
                        prop_assert!(r.is_err());
                    } else {
                        prop_assert_eq!(r, Ok(Reply::Ok));
                        model[pos as usize] = v;
                    }
                }
                LOp::Insert(before, p, v) => {
                    let (p, v) = (member(p, wide), member(v, wide));
                    let r = f.ok("linsert", &["l", if before { "BEFORE" } else { "AFTER" }, &p, &v]);
                    let expect = if model.is_empty() { 0 } else {
                        match model.iter().position(|x| *x == p) {
                            None => -1,
                            Some(i) => {
                                model.insert(if before { i } else { i + 1 }, v);
                                model.len() as i64
                            }
                        }
                    };
                    prop_assert_eq!(r, Reply::Int(expect));
                }
                LOp::Rem(c, v) => {
                    let v = member(v, wide);
                    let mut removed = 0;
                    let limit = if c == 0 { usize::MAX } else { c.unsigned_abs() as usize };
                    if c >= 0 {
                        let mut i = 0;
                        while i < model.len() { if model[i] == v && removed < limit { model.remove(i); removed += 1; } else { i += 1; } }
                    } else {
                        let mut i = model.len();
                        while i > 0 { i -= 1; if model[i] == v && removed < limit { model.remove(i); removed += 1; } }
                    }
                    prop_assert_eq!(f.ok("lrem", &["l", &c.to_string(), &v]), Reply::Int(removed as i64));
                }
                LOp::Trim(a, z) => {
                    f.ok("ltrim", &["l", &a.to_string(), &z.to_string()]);
                    let len = model.len() as i64;
                    let s = if (a as i64) < 0 { (len + a as i64).max(0) } else { a as i64 };
                    let e = if (z as i64) < 0 { len + z as i64 } else { (z as i64).min(len - 1) };
                    model = if s > e || s >= len { VecDeque::new() } else { model.range(s as usize..=e as usize).cloned().collect() };
                }
                LOp::Move(from_left, to_left) => {
                    let r = f.ok("lmove", &["l", "other", if from_left { "LEFT" } else { "RIGHT" }, if to_left { "LEFT" } else { "RIGHT" }]);
                    match if from_left { model.pop_front() } else { model.pop_back() } {
                        None => prop_assert_eq!(r, Reply::Nil),
                        Some(v) => {
                            prop_assert_eq!(r, b(&v));
                            if to_left { other.push_front(v) } else { other.push_back(v) }
                        }
                    }
                }
            }
            prop_assert_eq!(strings(f.ok("lrange", &["l", "0", "-1"])), model.iter().cloned().collect::<Vec<_>>());
        }
        prop_assert_eq!(strings(f.ok("lrange", &["other", "0", "-1"])), other.iter().cloned().collect::<Vec<_>>());
        if !model.is_empty() {
            prop_assert_eq!(f.ok("lindex", &["l", "-1"]), b(model.back().unwrap()));
        }
        f.check_replay_and_snapshot();
    }

    #[test]
    fn sets_match_a_hashset(ops in prop::collection::vec(prop_oneof![
        (0u16..300).prop_map(SOp::Add),
        (0u16..300).prop_map(SOp::Rem),
        Just(SOp::Pop),
    ], 1..400)) {
        let f = fixture();
        let mut model: HashSet<String> = HashSet::new();
        for op in ops {
            match op {
                SOp::Add(m) => {
                    let m = member(m, false);
                    prop_assert_eq!(f.ok("sadd", &["s", &m]), Reply::Int(model.insert(m) as i64));
                }
                SOp::Rem(m) => {
                    let m = member(m, false);
                    prop_assert_eq!(f.ok("srem", &["s", &m]), Reply::Int(model.remove(&m) as i64));
                }
                SOp::Pop => match f.ok("spop", &["s"]) {
                    Reply::Nil => prop_assert!(model.is_empty()),
                    Reply::Bulk(m) => prop_assert!(model.remove(&String::from_utf8(m.to_vec()).unwrap())),
                    o => panic!("{o:?}"),
                },
            }
            prop_assert_eq!(f.ok("scard", &["s"]), Reply::Int(model.len() as i64));
        }
        let got: HashSet<String> = strings(f.ok("smembers", &["s"])).into_iter().collect();
        prop_assert_eq!(&got, &model);
        f.ok("sadd", &["t", "m1", "m2", "m3", "zzz"]);
        let inter: HashSet<String> = strings(f.ok("sinter", &["s", "t"])).into_iter().collect();
        prop_assert_eq!(inter, model.iter().filter(|m| ["m1", "m2", "m3"].contains(&m.as_str())).cloned().collect::<HashSet<_>>());
        let n = f.ok("sunionstore", &["u", "s", "t"]);
        prop_assert_eq!(n, Reply::Int(model.union(&["m1", "m2", "m3", "zzz"].iter().map(|s| s.to_string()).collect()).count() as i64));
        f.check_replay_and_snapshot();
    }

    #[test]
    fn sorted_sets_match_a_btree(ops in prop::collection::vec(prop_oneof![
        (0u16..300, any::<i8>()).prop_map(|(m, s)| ZOp::Add(m, s)),
        (0u16..300, any::<i8>()).prop_map(|(m, s)| ZOp::Incr(m, s)),
        (0u16..300).prop_map(ZOp::Rem),
        Just(ZOp::PopMin),
        (-5i8..5, -5i8..5).prop_map(|(a, z)| ZOp::RemRank(a, z)),
    ], 1..400)) {
        let f = fixture();
        let mut scores: HashMap<String, f64> = HashMap::new();
        let ordered = |scores: &HashMap<String, f64>| {
            let mut v: Vec<(f64, String)> = scores.iter().map(|(m, s)| (*s, m.clone())).collect();
            v.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            v
        };
        for op in ops {
            match op {
                ZOp::Add(m, s) => {
                    let m = member(m, false);
                    let new = scores.insert(m.clone(), s as f64).is_none();
                    prop_assert_eq!(f.ok("zadd", &["z", &s.to_string(), &m]), Reply::Int(new as i64));
                }
                ZOp::Incr(m, s) => {
                    let m = member(m, false);
                    let v = scores.get(&m).copied().unwrap_or(0.0) + s as f64;
                    scores.insert(m.clone(), v);
                    prop_assert_eq!(f.ok("zincrby", &["z", &s.to_string(), &m]), Reply::Double(v));
                }
                ZOp::Rem(m) => {
                    let m = member(m, false);
                    prop_assert_eq!(f.ok("zrem", &["z", &m]), Reply::Int(scores.remove(&m).is_some() as i64));
                }
                ZOp::PopMin => {
                    let first = ordered(&scores).into_iter().next();
                    let got = f.ok("zpopmin", &["z"]);
                    match first {
                        None => prop_assert_eq!(got, Reply::Array(vec![])),
                        Some((s, m)) => {
                            scores.remove(&m);
                            prop_assert_eq!(got, Reply::Array(vec![b(&m), Reply::Double(s)]));
                        }
                    }
                }
                ZOp::RemRank(a, z) => {
                    let v = ordered(&scores);
                    let len = v.len() as i64;
                    let s = if (a as i64) < 0 { (len + a as i64).max(0) } else { a as i64 };
                    let e = if (z as i64) < 0 { len + z as i64 } else { (z as i64).min(len - 1) };
                    let mut removed = 0;
                    if s <= e && s < len {
                        for (_, m) in &v[s as usize..=e as usize] {
                            scores.remove(m);
                            removed += 1;
                        }
                    }
                    prop_assert_eq!(f.ok("zremrangebyrank", &["z", &a.to_string(), &z.to_string()]), Reply::Int(removed));
                }
            }
            prop_assert_eq!(f.ok("zcard", &["z"]), Reply::Int(scores.len() as i64));
        }
        let v = ordered(&scores);
        prop_assert_eq!(strings(f.ok("zrange", &["z", "0", "-1"])), v.iter().map(|(_, m)| m.clone()).collect::<Vec<_>>());
        let rev: Vec<String> = v.iter().rev().map(|(_, m)| m.clone()).collect();
        prop_assert_eq!(strings(f.ok("zrange", &["z", "0", "-1", "REV"])), rev);
        let between: Vec<String> = v.iter().filter(|(s, _)| *s > -10.0 && *s <= 20.0).map(|(_, m)| m.clone()).collect();
        prop_assert_eq!(strings(f.ok("zrangebyscore", &["z", "(-10", "20"])), between.clone());
        prop_assert_eq!(f.ok("zcount", &["z", "(-10", "20"]), Reply::Int(between.len() as i64));
        let limited: Vec<String> = between.iter().skip(1).take(2).cloned().collect();
        prop_assert_eq!(strings(f.ok("zrange", &["z", "(-10", "20", "BYSCORE", "LIMIT", "1", "2"])), limited);
        for (i, (_, m)) in v.iter().enumerate().take(10) {
            prop_assert_eq!(f.ok("zrank", &["z", m]), Reply::Int(i as i64));
            prop_assert_eq!(f.ok("zrevrank", &["z", m]), Reply::Int((v.len() - 1 - i) as i64));
        }
        let bt: BTreeMap<String, f64> = scores.clone().into_iter().collect();
        for (m, s) in bt.iter().take(5) {
            prop_assert_eq!(f.ok("zscore", &["z", m]), Reply::Double(*s));
        }
        f.check_replay_and_snapshot();
    }
}

fn scan_page(f: &Fixture, name: &str, key: &str, cursor: u64, count: usize) -> (u64, Vec<String>) {
    let r = f.ok(name, &[key, &cursor.to_string(), "COUNT", &count.to_string()]);
    let Reply::Scan { cursor: next, items } = r else { panic!("{r:?}") };
    let items = strings(Reply::Array(items));
    // Hashes and sorted sets answer (name, value) pairs: keep the names.
    let names = if name == "sscan" { items } else { items.into_iter().step_by(2).collect() };
    (next, names)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// HSCAN, SSCAN and ZSCAN over the general encodings page by position: every member present for the
    /// whole scan is returned, whatever is added and removed meanwhile, and a page costs its COUNT, not
    /// the collection's size.
    #[test]
    fn collection_scans_return_every_member_that_stays(
        n in 150usize..400,
        count in 1usize..40,
        churn in prop::collection::vec((any::<bool>(), 0usize..600), 0..200),
    ) {
        for (name, add) in [("hscan", "hset"), ("sscan", "sadd"), ("zscan", "zadd")] {
            let f = fixture();
            let key = "c";
            let arg = |i: usize| format!("m{i}");
            for i in 0..n {
                let m = arg(i);
                match add {
                    "hset" => f.ok("hset", &[key, &m, "v"]),
                    "sadd" => f.ok("sadd", &[key, &m]),
                    _ => f.ok("zadd", &[key, &i.to_string(), &m]),
                };
            }
            // Members removed at some point (re-added or not) did not stay for the whole scan.
            let mut removed = HashSet::new();
            let mut seen = HashSet::new();
            let mut cursor = 0;
            let mut churn = churn.iter();
            let mut pages = 0;
            loop {
                let (next, names) = scan_page(&f, name, key, cursor, count);
                prop_assert!(names.len() <= count, "{name}: a page of {} for COUNT {count}", names.len());
                seen.extend(names);
                pages += 1;
                if let Some((remove, i)) = churn.next() {
                    let m = arg(*i);
                    if *remove {
                        let del = match add { "hset" => "hdel", "sadd" => "srem", _ => "zrem" };
                        f.ok(del, &[key, &m]);
                        removed.insert(m);
                    } else {
                        match add {
                            "hset" => f.ok("hset", &[key, &m, "v"]),
                            "sadd" => f.ok("sadd", &[key, &m]),
                            _ => f.ok("zadd", &[key, "1", &m]),
                        };
                    }
                }
                if next == 0 {
                    break;
                }
                cursor = next;
                prop_assert!(pages < 10_000);
            }
            for i in 0..n {
                let m = arg(i);
                if !removed.contains(&m) {
                    prop_assert!(seen.contains(&m), "{name}: {m} stayed but was never returned");
                }
            }
        }
    }
}

/// Inserting again and again at one spot of a long list rewrites a neighbourhood, never the whole list:
/// the log grows with the inserts, not with inserts times the list's length.
#[test]
fn repeated_inserts_in_the_middle_log_a_neighbourhood() {
    let f = fixture();
    for i in 0..2000 {
        f.ok("rpush", &["l", &format!("e{i}")]);
    }
    let before = f.log.batches.lock().len();
    let logged = |f: &Fixture| -> usize { f.log.batches.lock()[before..].iter().map(|b| b.len()).sum() };
    for i in 0..3000 {
        assert_eq!(f.ok("linsert", &["l", "BEFORE", "e1000", &format!("n{i}")]), Reply::Int(2001 + i));
    }
    let per_insert = logged(&f) as f64 / 3000.0;
    eprintln!("{per_insert:.0} logged bytes per insert");
    assert!(per_insert < 1000.0, "{per_insert} logged bytes per insert");
    let all = strings(f.ok("lrange", &["l", "0", "-1"]));
    assert_eq!(all.len(), 5000);
    assert_eq!(all[1000], "n0");
    assert_eq!(all[3999], "n2999");
    assert_eq!(all[4000], "e1000");
    f.check_replay_and_snapshot();
}

/// A collection too large for one snapshot record is written as its elements over several chunks, its
/// expiry included, and rebuilds the same value.
#[test]
fn large_collections_are_snapshotted_in_pieces() {
    let f = fixture();
    for i in 0..3000 {
        f.ok("hset", &["h", &format!("field-{i}"), &format!("value-{i}")]);
        f.ok("rpush", &["l", &format!("e{i}")]);
        f.ok("zadd", &["z", &i.to_string(), &format!("m{i}")]);
        f.ok("sadd", &["s", &format!("m{i}")]);
    }
    for k in ["h", "l", "z", "s"] {
        let cmd = Command::Keys(KeysCmd::Expire {
            key: Bytes::from(k),
            ttl: synap_core::Ttl::In(60_000),
            cond: synap_core::ExpireCond::Always,
            name: "pexpire",
        });
        f.engine.execute(&mut ExecCtx::default(), cmd).unwrap();
    }
    let copy = Engine::new(EngineConfig::default(), f.clock.clone(), None);
    let mut cursor = EngineCursor::with_chunk_bytes(4096);
    let mut chunks = 0;
    loop {
        let mut buf = Vec::new();
        if f.engine.snapshot_chunk(&mut cursor, 100, &mut buf).is_none() {
            break;
        }
        assert!(buf.len() < 16 * 1024, "a chunk of {} bytes", buf.len());
        chunks += 1;
        copy.apply_batch(&decode_batch(&buf).unwrap());
    }
    assert!(chunks > 20, "{chunks} chunks");
    assert_eq!(copy.digest(), f.engine.digest());
}

/// A script's effects are one log record (like EXEC's), and replay applies them (it never runs the
/// script): a replica that replays the log holds what the script left, including what it computed.
#[test]
fn a_script_is_one_log_record_of_its_effects() {
    let f = fixture();
    let script = "local n = redis.call('incr', KEYS[1]) redis.call('incrby', KEYS[2], n) \
                  redis.call('rpush', KEYS[3], n) redis.call('hset', KEYS[4], 'f', redis.sha1hex(ARGV[1])) return n";
    let before = f.log.batches.lock().len();
    assert_eq!(f.ok("eval", &[script, "4", "n", "sum", "l", "h", "x"]), Reply::Int(1));
    assert_eq!(f.log.batches.lock().len(), before + 1, "four writes, one record");
    assert_eq!(f.ok("eval", &[script, "4", "n", "sum", "l", "h", "x"]), Reply::Int(2));
    assert_eq!(f.log.batches.lock().len(), before + 2);
    let batch = f.log.batches.lock().last().cloned().unwrap();
    assert_eq!(decode_batch(&batch).unwrap().len(), 4, "the record holds the four effects");
    // A script that only reads logs nothing; one that fails before writing logs nothing.
    f.ok("eval", &["return redis.call('get', KEYS[1])", "1", "n"]);
    assert!(f.run("eval", &["return redis.call('incr', KEYS[1])", "1", "l"]).is_err());
    assert_eq!(f.log.batches.lock().len(), before + 2);
    f.check_replay_and_snapshot();
}

/// RENAME and COPY onto an expired key of the same shard: the target's lazy expiry removes it and
/// moves the shard's entries, so the source is looked up after it (found by the model test: the source's
/// position went stale and the server panicked).
#[test]
fn rename_and_copy_onto_an_expired_key_of_the_same_shard() {
    let clock = Arc::new(ManualClock::new(1_000_000));
    let mut config = EngineConfig::default();
    config.kv.shards = 1;
    let engine = Engine::new(config, clock.clone(), None);
    let run = |name: &str, args: &[&str]| engine.execute(&mut ExecCtx::default(), common::parse(name, args).unwrap());
    for (cmd, want) in [("rename", Reply::Ok), ("copy", Reply::Int(1))] {
        run("flushall", &[]).unwrap();
        run("set", &["a", "old", "px", "100"]).unwrap();
        run("set", &["b", "new"]).unwrap();
        clock.advance(200);
        assert_eq!(run(cmd, &["b", "a"]), Ok(want), "{cmd}");
        assert_eq!(run("get", &["a"]), Ok(Reply::Bulk(bytes::Bytes::from("new"))), "{cmd}");
    }
    // The multi-key commands: a live key (the shard's last entry) named before an expired one, whose
    // removal moves the last entry into its place.
    run("flushall", &[]).unwrap();
    run("set", &["x", "old", "px", "100"]).unwrap();
    run("set", &["y", "ab"]).unwrap();
    run("sadd", &["s", "m"]).unwrap();
    clock.advance(200);
    assert_eq!(run("sunion", &["s", "x"]), Ok(Reply::Set(vec![Reply::Bulk(bytes::Bytes::from("m"))])));
    run("flushall", &[]).unwrap();
    run("set", &["x", "old", "px", "100"]).unwrap();
    run("set", &["z", "filler"]).unwrap();
    run("set", &["y", "ab"]).unwrap();
    clock.advance(200);
    assert_eq!(run("bitop", &["or", "d", "y", "x"]), Ok(Reply::Int(2)));
}
