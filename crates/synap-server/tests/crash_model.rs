//! A randomized crash test against a model: concurrent writers over RESP change strings, hashes, lists,
//! sets, sorted sets and streams (consumer groups included), let keys expire and create them again, while
//! the server is SIGKILLed at random points. After each restart every key must equal the model: the
//! state after its last acknowledged write, or, for the one write each writer had unanswered at the kill,
//! that write applied or not.
//!
//! Each writer owns its keys, so its model is sequential. Expiry times are known to within the round trip
//! of the command that set them; a key is only touched when it is certainly alive or certainly expired.
//!
//! `SYNAP_CRASH_ROUNDS` (default 3 with `periodic`, 2 with `always`) and `SYNAP_CRASH_SEED` set the run.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::process::ServerProcess;
use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use redis::Value as RV;

const WRITERS: usize = 4;

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

#[derive(Debug, Clone, PartialEq)]
enum Val {
    Str(Vec<u8>),
    Hash(BTreeMap<String, String>),
    List(Vec<String>),
    Set(BTreeSet<String>),
    ZSet(BTreeMap<String, i64>),
    Stream(StreamM),
}

#[derive(Debug, Clone, PartialEq, Default)]
struct StreamM {
    /// (id seq, value): ids are `1-<seq>`, given explicitly.
    entries: Vec<(u64, String)>,
    last: u64,
    /// The group: (next seq to deliver past, pending seqs).
    group: Option<(u64, BTreeSet<u64>)>,
}

/// What the writer knows about when a key expires: after `lo`, and by `hi` at the latest (ms).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expiry {
    None,
    Short {
        lo: u64,
        hi: u64,
    },
    /// A long TTL set at about this time: it must survive restarts.
    Long,
}

#[derive(Debug, Clone, PartialEq)]
struct Slot {
    val: Option<Val>,
    expiry: Expiry,
}

impl Slot {
    fn empty() -> Slot {
        Slot { val: None, expiry: Expiry::None }
    }

    /// The state at a moment known to lie in `[t0, t1]`; `None` when expiry makes it ambiguous.
    fn at(&self, t0: u64, t1: u64) -> Option<Slot> {
        match self.expiry {
            Expiry::Short { hi, .. } if t0 > hi + 5 => Some(Slot::empty()),
            Expiry::Short { lo, .. } if t1 + 5 < lo => Some(self.clone()),
            Expiry::Short { .. } => None,
            _ => Some(self.clone()),
        }
    }
}

/// The operations, each on one key whose type its name gives.
#[derive(Debug, Clone)]
enum Op {
    Set(String),
    Append(String),
    HSet(String, String),
    HDel(String),
    Push(bool, String),
    Pop(bool),
    Insert(String, String),
    LRem(String),
    LTrim(i64, i64),
    SAdd(String),
    SRem(String),
    ZAdd(i64, String),
    ZIncr(i64, String),
    ZRem(String),
    XAdd(String),
    XDel(u64),
    XTrim(usize),
    XGroup,
    XRead(usize),
    XAck(u64),
    Del,
    ExpireShort(u64),
    ExpireLong,
    Persist,
}

fn key_kind(key: &str) -> char {
    key.split(':').nth(1).and_then(|k| k.chars().next()).unwrap()
}

fn pick_op(rng: &mut StdRng, key: &str, slot: &Slot) -> Op {
    let v = |rng: &mut StdRng| format!("v{}", rng.random_range(0..8));
    let common = rng.random_range(0..100);
    if key_kind(key) != 'x' {
        match common {
            0..=3 => return Op::Del,
            4..=9 => return Op::ExpireShort(rng.random_range(15..120)),
            10..=11 => return Op::ExpireLong,
            12 => return Op::Persist,
            _ => {}
        }
    } else if common < 3 {
        return Op::Del;
    }
    match key_kind(key) {
        's' => {
            if rng.random_bool(0.5) {
                Op::Set(v(rng))
            } else {
                Op::Append(v(rng))
            }
        }
        'h' => {
            if rng.random_bool(0.7) {
                Op::HSet(format!("f{}", rng.random_range(0..6)), v(rng))
            } else {
                Op::HDel(format!("f{}", rng.random_range(0..6)))
            }
        }
        'l' => match rng.random_range(0..10) {
            0..=3 => Op::Push(rng.random_bool(0.5), v(rng)),
            4..=5 => Op::Pop(rng.random_bool(0.5)),
            6..=7 => Op::Insert(v(rng), v(rng)),
            8 => Op::LRem(v(rng)),
            _ => Op::LTrim(rng.random_range(-3..3), rng.random_range(-3..8)),
        },
        't' => {
            if rng.random_bool(0.6) {
                Op::SAdd(v(rng))
            } else {
                Op::SRem(v(rng))
            }
        }
        'z' => match rng.random_range(0..3) {
            0 => Op::ZAdd(rng.random_range(-5..5), v(rng)),
            1 => Op::ZIncr(rng.random_range(-3..4), v(rng)),
            _ => Op::ZRem(v(rng)),
        },
        _ => {
            let s = match &slot.val {
                Some(Val::Stream(s)) => s.clone(),
                _ => StreamM::default(),
            };
            match rng.random_range(0..10) {
                0..=3 => Op::XAdd(v(rng)),
                4 if !s.entries.is_empty() => Op::XDel(s.entries[rng.random_range(0..s.entries.len())].0),
                5 => Op::XTrim(rng.random_range(2..12)),
                6 if s.group.is_none() => Op::XGroup,
                6..=7 => Op::XRead(rng.random_range(1..4)),
                _ => match s.group.as_ref().and_then(|(_, p)| p.iter().next().copied()) {
                    Some(seq) => Op::XAck(seq),
                    None => Op::XAdd(v(rng)),
                },
            }
        }
    }
}

fn cmd_of(key: &str, op: &Op) -> redis::Cmd {
    let mut c;
    match op {
        Op::Set(v) => {
            c = redis::cmd("SET");
            c.arg(key).arg(v);
        }
        Op::Append(v) => {
            c = redis::cmd("APPEND");
            c.arg(key).arg(v);
        }
        Op::HSet(f, v) => {
            c = redis::cmd("HSET");
            c.arg(key).arg(f).arg(v);
        }
        Op::HDel(f) => {
            c = redis::cmd("HDEL");
            c.arg(key).arg(f);
        }
        Op::Push(left, v) => {
            c = redis::cmd(if *left { "LPUSH" } else { "RPUSH" });
            c.arg(key).arg(v);
        }
        Op::Pop(left) => {
            c = redis::cmd(if *left { "LPOP" } else { "RPOP" });
            c.arg(key);
        }
        Op::Insert(pivot, v) => {
            c = redis::cmd("LINSERT");
            c.arg(key).arg("BEFORE").arg(pivot).arg(v);
        }
        Op::LRem(v) => {
            c = redis::cmd("LREM");
            c.arg(key).arg(1).arg(v);
        }
        Op::LTrim(a, b) => {
            c = redis::cmd("LTRIM");
            c.arg(key).arg(*a).arg(*b);
        }
        Op::SAdd(m) => {
            c = redis::cmd("SADD");
            c.arg(key).arg(m);
        }
        Op::SRem(m) => {
            c = redis::cmd("SREM");
            c.arg(key).arg(m);
        }
        Op::ZAdd(s, m) => {
            c = redis::cmd("ZADD");
            c.arg(key).arg(*s).arg(m);
        }
        Op::ZIncr(s, m) => {
            c = redis::cmd("ZINCRBY");
            c.arg(key).arg(*s).arg(m);
        }
        Op::ZRem(m) => {
            c = redis::cmd("ZREM");
            c.arg(key).arg(m);
        }
        Op::XAdd(v) => {
            c = redis::cmd("XADD");
            c.arg(key).arg("*").arg("v").arg(v); // the id is replaced below
        }
        Op::XDel(seq) => {
            c = redis::cmd("XDEL");
            c.arg(key).arg(format!("1-{seq}"));
        }
        Op::XTrim(n) => {
            c = redis::cmd("XTRIM");
            c.arg(key).arg("MAXLEN").arg(*n);
        }
        Op::XGroup => {
            c = redis::cmd("XGROUP");
            c.arg("CREATE").arg(key).arg("g").arg("0").arg("MKSTREAM");
        }
        Op::XRead(n) => {
            c = redis::cmd("XREADGROUP");
            c.arg("GROUP").arg("g").arg("c").arg("COUNT").arg(*n).arg("STREAMS").arg(key).arg(">");
        }
        Op::XAck(seq) => {
            c = redis::cmd("XACK");
            c.arg(key).arg("g").arg(format!("1-{seq}"));
        }
        Op::Del => {
            c = redis::cmd("DEL");
            c.arg(key);
        }
        Op::ExpireShort(ms) => {
            c = redis::cmd("PEXPIRE");
            c.arg(key).arg(*ms);
        }
        Op::ExpireLong => {
            c = redis::cmd("PEXPIRE");
            c.arg(key).arg(3_600_000);
        }
        Op::Persist => {
            c = redis::cmd("PERSIST");
            c.arg(key);
        }
    }
    c
}

/// The model's next state and reply (`None`: the reply is not checked) for `op` on `slot`.
fn apply(slot: &Slot, op: &Op, t0: u64, t1: u64) -> (Slot, Option<RV>) {
    let mut s = slot.clone();
    let bulk = |v: &str| RV::BulkString(v.as_bytes().to_vec());
    let int = RV::Int;
    let reply = match (op, &mut s.val) {
        (Op::Set(v), val) => {
            *val = Some(Val::Str(v.as_bytes().to_vec()));
            s.expiry = Expiry::None;
            Some(RV::Okay)
        }
        (Op::Append(v), val) => {
            let mut cur = match val {
                Some(Val::Str(b)) => b.clone(),
                _ => Vec::new(),
            };
            cur.extend_from_slice(v.as_bytes());
            let n = cur.len();
            *val = Some(Val::Str(cur));
            Some(int(n as i64))
        }
        (Op::HSet(f, v), val) => {
            let mut h = match val {
                Some(Val::Hash(h)) => h.clone(),
                _ => BTreeMap::new(),
            };
            let new = h.insert(f.clone(), v.clone()).is_none();
            *val = Some(Val::Hash(h));
            Some(int(new as i64))
        }
        (Op::HDel(f), val) => {
            let removed = match val {
                Some(Val::Hash(h)) => h.remove(f).is_some(),
                _ => false,
            };
            if matches!(val, Some(Val::Hash(h)) if h.is_empty()) {
                *val = None;
            }
            Some(int(removed as i64))
        }
        (Op::Push(left, v), val) => {
            let mut l = match val {
                Some(Val::List(l)) => l.clone(),
                _ => Vec::new(),
            };
            if *left {
                l.insert(0, v.clone());
            } else {
                l.push(v.clone());
            }
            let n = l.len();
            *val = Some(Val::List(l));
            Some(int(n as i64))
        }
        (Op::Pop(left), val) => {
            let popped = match val {
                Some(Val::List(l)) if *left => Some(l.remove(0)),
                Some(Val::List(l)) => l.pop(),
                _ => None,
            };
            if matches!(val, Some(Val::List(l)) if l.is_empty()) {
                *val = None;
            }
            Some(popped.map(|p| bulk(&p)).unwrap_or(RV::Nil))
        }
        (Op::Insert(pivot, v), val) => match val {
            Some(Val::List(l)) => match l.iter().position(|x| x == pivot) {
                Some(p) => {
                    l.insert(p, v.clone());
                    Some(int(l.len() as i64))
                }
                None => Some(int(-1)),
            },
            _ => Some(int(0)),
        },
        (Op::LRem(v), val) => {
            let removed = match val {
                Some(Val::List(l)) => match l.iter().position(|x| x == v) {
                    Some(p) => {
                        l.remove(p);
                        1
                    }
                    None => 0,
                },
                _ => 0,
            };
            if matches!(val, Some(Val::List(l)) if l.is_empty()) {
                *val = None;
            }
            Some(int(removed))
        }
        (Op::LTrim(a, b), val) => {
            if let Some(Val::List(l)) = val {
                let len = l.len() as i64;
                let st = if *a < 0 { (len + a).max(0) } else { *a };
                let en = if *b < 0 { len + b } else { (*b).min(len - 1) };
                *l = if st > en || st >= len { vec![] } else { l[st as usize..=en as usize].to_vec() };
            }
            if matches!(val, Some(Val::List(l)) if l.is_empty()) {
                *val = None;
            }
            Some(RV::Okay)
        }
        (Op::SAdd(m), val) => {
            let mut set = match val {
                Some(Val::Set(x)) => x.clone(),
                _ => BTreeSet::new(),
            };
            let new = set.insert(m.clone());
            *val = Some(Val::Set(set));
            Some(int(new as i64))
        }
        (Op::SRem(m), val) => {
            let removed = match val {
                Some(Val::Set(x)) => x.remove(m),
                _ => false,
            };
            if matches!(val, Some(Val::Set(x)) if x.is_empty()) {
                *val = None;
            }
            Some(int(removed as i64))
        }
        (Op::ZAdd(sc, m), val) => {
            let mut z = match val {
                Some(Val::ZSet(z)) => z.clone(),
                _ => BTreeMap::new(),
            };
            let new = z.insert(m.clone(), *sc).is_none();
            *val = Some(Val::ZSet(z));
            Some(int(new as i64))
        }
        (Op::ZIncr(by, m), val) => {
            let mut z = match val {
                Some(Val::ZSet(z)) => z.clone(),
                _ => BTreeMap::new(),
            };
            let score = z.get(m).copied().unwrap_or(0) + by;
            z.insert(m.clone(), score);
            *val = Some(Val::ZSet(z));
            Some(bulk(&score.to_string()))
        }
        (Op::ZRem(m), val) => {
            let removed = match val {
                Some(Val::ZSet(z)) => z.remove(m).is_some(),
                _ => false,
            };
            if matches!(val, Some(Val::ZSet(z)) if z.is_empty()) {
                *val = None;
            }
            Some(int(removed as i64))
        }
        (Op::XAdd(v), val) => {
            let mut st = match val {
                Some(Val::Stream(x)) => x.clone(),
                _ => StreamM::default(),
            };
            st.last += 1;
            st.entries.push((st.last, v.clone()));
            let id = format!("1-{}", st.last);
            *val = Some(Val::Stream(st));
            Some(bulk(&id))
        }
        (Op::XDel(seq), val) => {
            let n = match val {
                Some(Val::Stream(x)) => {
                    let before = x.entries.len();
                    x.entries.retain(|(s, _)| s != seq);
                    before - x.entries.len()
                }
                _ => 0,
            };
            Some(int(n as i64))
        }
        (Op::XTrim(n), val) => {
            let removed = match val {
                Some(Val::Stream(x)) if x.entries.len() > *n => {
                    let cut = x.entries.len() - n;
                    x.entries.drain(..cut);
                    cut
                }
                _ => 0,
            };
            Some(int(removed as i64))
        }
        (Op::XGroup, val) => {
            let mut st = match val {
                Some(Val::Stream(x)) => x.clone(),
                _ => StreamM::default(),
            };
            st.group = Some((0, BTreeSet::new()));
            *val = Some(Val::Stream(st));
            Some(RV::Okay)
        }
        (Op::XRead(n), val) => match val {
            Some(Val::Stream(x)) if x.group.is_some() => {
                let (next, pending) = x.group.as_mut().unwrap();
                let new: Vec<u64> = x.entries.iter().map(|(s, _)| *s).filter(|s| *s > *next).take(*n).collect();
                if let Some(last) = new.last() {
                    *next = *last;
                }
                pending.extend(new.iter().copied());
                None // the reply's shape is checked by the entries read back
            }
            _ => return (s, None), // no group: NOGROUP, handled by the caller
        },
        (Op::XAck(seq), val) => {
            let n = match val {
                Some(Val::Stream(x)) => x.group.as_mut().is_some_and(|(_, p)| p.remove(seq)) as i64,
                _ => 0,
            };
            Some(int(n))
        }
        (Op::Del, val) => {
            let existed = val.is_some();
            *val = None;
            s.expiry = Expiry::None;
            Some(int(existed as i64))
        }
        (Op::ExpireShort(ms), val) => {
            if val.is_some() {
                s.expiry = Expiry::Short { lo: t0 + ms, hi: t1 + ms };
            }
            Some(int(val.is_some() as i64))
        }
        (Op::ExpireLong, val) => {
            if val.is_some() {
                s.expiry = Expiry::Long;
            }
            Some(int(val.is_some() as i64))
        }
        (Op::Persist, val) => {
            let had = val.is_some() && s.expiry != Expiry::None;
            if val.is_some() {
                s.expiry = Expiry::None;
            }
            Some(int(had as i64))
        }
    };
    if s.val.is_none() {
        s.expiry = Expiry::None;
    }
    (s, reply)
}

/// One writer's model and the write it had unanswered when the server died.
#[derive(Default)]
struct Writer {
    slots: BTreeMap<String, Slot>,
    /// The key of the unanswered write and the states it may have left (applied or not).
    in_flight: Option<(String, Vec<Slot>)>,
    acked: usize,
}

fn keys_of(w: usize) -> Vec<String> {
    let mut keys = Vec::new();
    for (kind, n) in [('s', 3), ('h', 3), ('l', 3), ('t', 2), ('z', 2), ('x', 2)] {
        for i in 0..n {
            keys.push(format!("w{w}:{kind}{i}"));
        }
    }
    keys
}

fn is_disconnect(e: &redis::RedisError) -> bool {
    e.is_io_error() || e.is_connection_dropped() || e.is_unrecoverable_error() || e.is_timeout()
}

async fn run_writer(client: redis::Client, model: Arc<Mutex<Writer>>, seed: u64) {
    let Ok(mut c) = client.get_multiplexed_async_connection().await else { return };
    let mut rng = StdRng::seed_from_u64(seed);
    let keys = {
        let m = model.lock();
        m.slots.keys().cloned().collect::<Vec<_>>()
    };
    loop {
        let key = keys[rng.random_range(0..keys.len())].clone();
        let slot = model.lock().slots[&key].clone();
        let t0 = now_ms();
        // Touch a key with a short expiry only when it is certainly alive or certainly gone.
        let Some(current) = slot.at(t0, t0 + 20) else {
            tokio::time::sleep(Duration::from_millis(1)).await;
            continue;
        };
        let op = pick_op(&mut rng, &key, &current);
        let mut cmd = cmd_of(&key, &op);
        if let Op::XAdd(v) = &op {
            let next = match &current.val {
                Some(Val::Stream(s)) => s.last + 1,
                _ => 1,
            };
            cmd = redis::cmd("XADD");
            cmd.arg(&key).arg(format!("1-{next}")).arg("v").arg(v);
        }
        // The states the key may be in when the server runs the command: `current`, unless the round trip
        // turns out longer than guessed and an expiry falls inside it.
        let possible = |t1: u64| -> Vec<Slot> {
            match slot.at(t0, t1) {
                Some(s) => vec![s],
                None => vec![slot.clone(), Slot::empty()],
            }
        };
        let guess: Vec<Slot> =
            possible(t0 + 20).iter().flat_map(|s| [s.clone(), apply(s, &op, t0, t0 + 20).0]).collect();
        model.lock().in_flight = Some((key.clone(), guess));
        let result: redis::RedisResult<RV> = cmd.query_async(&mut c).await;
        let t1 = now_ms();
        let states = possible(t1);
        let outcomes: Vec<(Slot, Option<RV>)> = states.iter().map(|s| apply(s, &op, t0, t1)).collect();
        match result {
            Ok(reply) => {
                let got = match (&op, reply) {
                    (Op::ZIncr(..), RV::Double(d)) => RV::BulkString(format!("{d}").into_bytes()),
                    (_, r) => r,
                };
                let fits: Vec<&(Slot, Option<RV>)> =
                    outcomes.iter().filter(|(_, want)| want.as_ref().is_none_or(|w| *w == got)).collect();
                assert!(!fits.is_empty(), "{key} {op:?} from {states:?}: got {got:?}, expected {outcomes:?}");
                let after = if fits.len() == 1 {
                    fits[0].0.clone()
                } else {
                    // An expiry fell inside the round trip and the reply does not tell which happened:
                    // the key says.
                    let (val, pttl) = read_slot(&mut c, &key).await;
                    let t2 = now_ms();
                    match fits.iter().find(|(s, _)| matches_slot(s, &val, pttl, t1, t2) == Some(true)) {
                        Some((s, _)) => s.clone(),
                        None => panic!("{key} {op:?}: found {val:?} (pttl {pttl}), none of {fits:?}"),
                    }
                };
                let mut m = model.lock();
                m.slots.insert(key, after);
                m.in_flight = None;
                m.acked += 1;
            }
            Err(e) if is_disconnect(&e) => {
                let mut candidates = states.clone();
                candidates.extend(outcomes.into_iter().map(|(s, _)| s));
                model.lock().in_flight = Some((key, candidates));
                return;
            }
            Err(e) if matches!(op, Op::XRead(_)) && e.to_string().contains("NOGROUP") => {
                // XREADGROUP without the group (never created, or deleted with the stream): nothing changed.
                assert!(
                    states.iter().any(|s| !matches!(&s.val, Some(Val::Stream(x)) if x.group.is_some())),
                    "{key} {op:?}: {e}"
                );
                model.lock().in_flight = None;
            }
            Err(e) => panic!("{key} {op:?} from {states:?}: {e}"),
        }
    }
}

/// Reads a key back and turns it into the model's terms.
async fn read_slot(c: &mut redis::aio::MultiplexedConnection, key: &str) -> (Option<Val>, i64) {
    let pttl: i64 = redis::cmd("PTTL").arg(key).query_async(c).await.unwrap();
    let text = |v: &RV| match v {
        RV::BulkString(b) => String::from_utf8(b.clone()).unwrap(),
        RV::SimpleString(s) => s.clone(),
        o => panic!("{o:?}"),
    };
    let val = match key_kind(key) {
        's' => {
            let v: Option<Vec<u8>> = redis::cmd("GET").arg(key).query_async(c).await.unwrap();
            v.map(Val::Str)
        }
        'h' => {
            let h: BTreeMap<String, String> = redis::cmd("HGETALL").arg(key).query_async(c).await.unwrap();
            (!h.is_empty()).then_some(Val::Hash(h))
        }
        'l' => {
            let l: Vec<String> = redis::cmd("LRANGE").arg(key).arg(0).arg(-1).query_async(c).await.unwrap();
            (!l.is_empty()).then_some(Val::List(l))
        }
        't' => {
            let s: BTreeSet<String> = redis::cmd("SMEMBERS").arg(key).query_async(c).await.unwrap();
            (!s.is_empty()).then_some(Val::Set(s))
        }
        'z' => {
            let z: Vec<(String, f64)> =
                redis::cmd("ZRANGE").arg(key).arg(0).arg(-1).arg("WITHSCORES").query_async(c).await.unwrap();
            (!z.is_empty()).then(|| Val::ZSet(z.into_iter().map(|(m, s)| (m, s as i64)).collect()))
        }
        _ => {
            let exists: i64 = redis::cmd("EXISTS").arg(key).query_async(c).await.unwrap();
            if exists == 0 {
                None
            } else {
                let range: RV = redis::cmd("XRANGE").arg(key).arg("-").arg("+").query_async(c).await.unwrap();
                let RV::Array(items) = range else { panic!("{range:?}") };
                let seq = |id: &str| match id.split_once('-') {
                    Some(("0", "0")) => 0,
                    Some(("1", n)) => n.parse::<u64>().unwrap(),
                    _ => panic!("unexpected id {id}"),
                };
                let entries = items
                    .iter()
                    .map(|e| {
                        let RV::Array(parts) = e else { panic!("{e:?}") };
                        let RV::Array(fields) = &parts[1] else { panic!("{e:?}") };
                        (seq(&text(&parts[0])), text(&fields[1]))
                    })
                    .collect();
                let info: RV = redis::cmd("XINFO").arg("STREAM").arg(key).query_async(c).await.unwrap();
                let last = match field(&info, "last-generated-id") {
                    Some(v) => seq(&text(&v)),
                    None => panic!("{info:?}"),
                };
                let groups: RV = redis::cmd("XINFO").arg("GROUPS").arg(key).query_async(c).await.unwrap();
                let group = match groups {
                    RV::Array(g) if !g.is_empty() => {
                        let next = seq(&text(&field(&g[0], "last-delivered-id").unwrap()));
                        let pending: RV = redis::cmd("XPENDING")
                            .arg(key)
                            .arg("g")
                            .arg("-")
                            .arg("+")
                            .arg(10_000)
                            .query_async(c)
                            .await
                            .unwrap();
                        let RV::Array(p) = pending else { panic!() };
                        let ids = p
                            .iter()
                            .map(|e| {
                                let RV::Array(parts) = e else { panic!() };
                                seq(&text(&parts[0]))
                            })
                            .collect();
                        Some((next, ids))
                    }
                    _ => None,
                };
                Some(Val::Stream(StreamM { entries, last, group }))
            }
        }
    };
    (val, pttl)
}

/// A field of a RESP2 map reply (a flat array) or a RESP3 map.
fn field(v: &RV, name: &str) -> Option<RV> {
    match v {
        RV::Array(items) => {
            items.chunks(2).find(|p| matches!(&p[0], RV::BulkString(b) if b == name.as_bytes())).map(|p| p[1].clone())
        }
        RV::Map(pairs) => {
            pairs.iter().find(|(k, _)| matches!(k, RV::BulkString(b) if b == name.as_bytes())).map(|(_, v)| v.clone())
        }
        _ => None,
    }
}

/// Whether the read-back state `(val, pttl)` at a moment in `[t0, t1]` is what `slot` says.
fn matches_slot(slot: &Slot, val: &Option<Val>, pttl: i64, t0: u64, t1: u64) -> Option<bool> {
    let state = slot.at(t0, t1)?;
    if &state.val != val {
        return Some(false);
    }
    // Streams have no TTL (PTTL answers -2 for them: they are not keys to EXPIRE yet).
    let stream = matches!(state.val, Some(Val::Stream(_)));
    Some(match (state.val.is_some(), state.expiry) {
        (false, _) => true,
        (true, _) if stream => true,
        (true, Expiry::None) => pttl == -1,
        (true, Expiry::Long) => pttl > 0 && pttl <= 3_600_000,
        (true, Expiry::Short { .. }) => pttl > 0,
    })
}

async fn round(dir: &Path, fsync: &str, writers: &[Arc<Mutex<Writer>>], seed: u64, round: u64) {
    let mut server =
        ServerProcess::start(dir, &["--fsync", fsync, "--config", &dir.join("synap.yaml").to_string_lossy()]);
    let client = redis::Client::open(format!("redis://{}/", server.resp_addr.clone().unwrap())).unwrap();
    let tasks: Vec<_> = writers
        .iter()
        .enumerate()
        .map(|(i, w)| tokio::spawn(run_writer(client.clone(), w.clone(), seed ^ (round << 8) ^ i as u64)))
        .collect();
    let mut rng = StdRng::seed_from_u64(seed ^ round);
    tokio::time::sleep(Duration::from_millis(rng.random_range(300..900))).await;
    server.kill9();
    for t in tasks {
        t.await.unwrap();
    }
    let acked: usize = writers.iter().map(|w| w.lock().acked).sum();
    assert!(acked > 0, "round {round}: writes were acknowledged before the kill");

    let server = ServerProcess::start(dir, &["--config", &dir.join("synap.yaml").to_string_lossy()]);
    let client = redis::Client::open(format!("redis://{}/", server.resp_addr.clone().unwrap())).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    for (wi, w) in writers.iter().enumerate() {
        let mut w = w.lock().clone_state();
        for (key, slot) in w.slots.iter_mut() {
            let mut candidates = vec![slot.clone()];
            if let Some((k, states)) = &w.in_flight
                && k == key
            {
                candidates = states.clone();
            }
            // A candidate whose expiry falls on the read is ambiguous: read again once it has passed.
            let mut attempt = 0;
            loop {
                let t0 = now_ms();
                let (val, pttl) = read_slot(&mut c, key).await;
                let t1 = now_ms();
                let results: Vec<Option<bool>> =
                    candidates.iter().map(|s| matches_slot(s, &val, pttl, t0, t1)).collect();
                if let Some(i) = results.iter().position(|r| *r == Some(true)) {
                    // Continue from what is there.
                    let found = candidates[i].clone();
                    *slot = found.at(t0, t1).unwrap_or(found);
                    break;
                }
                if results.contains(&None) && attempt < 5 {
                    let until = candidates
                        .iter()
                        .filter_map(|s| match s.expiry {
                            Expiry::Short { hi, .. } => Some(hi),
                            _ => None,
                        })
                        .max()
                        .unwrap_or(t1);
                    tokio::time::sleep(Duration::from_millis(until.saturating_sub(now_ms()) + 20)).await;
                    attempt += 1;
                    continue;
                }
                panic!(
                    "{fsync} round {round} (seed {seed}), writer {wi}, key {key}: found {val:?} (pttl {pttl}), \
                     expected one of {candidates:?}"
                );
            }
        }
        w.in_flight = None;
        *writers[wi].lock() = w;
    }
    drop(c);
    drop(server);
}

impl Writer {
    fn clone_state(&self) -> Writer {
        Writer { slots: self.slots.clone(), in_flight: self.in_flight.clone(), acked: self.acked }
    }
}

async fn crash_rounds(fsync: &str, default_rounds: u64) {
    let rounds = std::env::var("SYNAP_CRASH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(default_rounds);
    let seed = std::env::var("SYNAP_CRASH_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or_else(rand::random::<u64>);
    eprintln!("crash model test: {fsync}, {rounds} rounds, seed {seed}");
    let dir = tempfile::tempdir().unwrap();
    // Small segments and frequent snapshots: rotations, snapshots and stream segment rolls under load.
    std::fs::write(
        dir.path().join("synap.yaml"),
        "persistence:\n  segment_bytes: 64kb\n  snapshot:\n    after_writes: 2000\nstream:\n  segment_bytes: 8kb\n",
    )
    .unwrap();
    let writers: Vec<Arc<Mutex<Writer>>> = (0..WRITERS)
        .map(|w| {
            let slots = keys_of(w).into_iter().map(|k| (k, Slot::empty())).collect();
            Arc::new(Mutex::new(Writer { slots, ..Default::default() }))
        })
        .collect();
    for r in 0..rounds {
        round(dir.path(), fsync, &writers, seed, r).await;
    }
    let acked: usize = writers.iter().map(|w| w.lock().acked).sum();
    eprintln!("crash model test: {fsync}, {rounds} rounds, {acked} acknowledged writes, all found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_key_matches_the_model_after_kill_9_with_fsync_periodic() {
    crash_rounds("periodic", 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_key_matches_the_model_after_kill_9_with_fsync_always() {
    crash_rounds("always", 2).await;
}
