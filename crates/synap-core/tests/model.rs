//! Model tests: the engine against a plain `HashMap`, and replay of emitted mutations into a fresh engine.

mod common;

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use common::RecordingLog;
use proptest::prelude::*;
use synap_core::command::{Expiry, KeysCmd, KvCmd};
use synap_core::{
    Command, CommandError, Engine, EngineConfig, ExecCtx, ExpireCond, ManualClock, Reply, SetArgs, SetCond, TimeUnit,
    Ttl, decode_batch,
};

#[derive(Debug, Clone)]
enum Op {
    Set { k: u8, v: Vec<u8>, ttl_ms: Option<i64>, cond: u8, keep_ttl: bool },
    Get(u8),
    Del(Vec<u8>),
    Incr(u8, i64),
    Append(u8, Vec<u8>),
    Expire(u8, i64),
    Persist(u8),
    Ttl(u8),
    Rename(u8, u8),
    MSet(Vec<(u8, Vec<u8>)>),
    Exists(u8),
    Strlen(u8),
    Advance(u64),
}

fn key(k: u8) -> Bytes {
    Bytes::from(format!("key:{k}"))
}

fn op() -> impl Strategy<Value = Op> {
    let k = 0u8..12;
    let v = prop::collection::vec(any::<u8>(), 0..8);
    prop_oneof![
        (k.clone(), v.clone(), prop::option::of(1i64..5000), 0u8..3, any::<bool>())
            .prop_map(|(k, v, ttl_ms, cond, keep_ttl)| Op::Set { k, v, ttl_ms, cond, keep_ttl }),
        k.clone().prop_map(Op::Get),
        prop::collection::vec(k.clone(), 1..4).prop_map(Op::Del),
        (k.clone(), -5i64..5).prop_map(|(k, by)| Op::Incr(k, by)),
        (k.clone(), v.clone()).prop_map(|(k, v)| Op::Append(k, v)),
        (k.clone(), -100i64..5000).prop_map(|(k, ms)| Op::Expire(k, ms)),
        k.clone().prop_map(Op::Persist),
        k.clone().prop_map(Op::Ttl),
        (k.clone(), k.clone()).prop_map(|(a, b)| Op::Rename(a, b)),
        prop::collection::vec((k.clone(), v), 1..4).prop_map(Op::MSet),
        k.clone().prop_map(Op::Exists),
        k.clone().prop_map(Op::Strlen),
        (0u64..3000).prop_map(Op::Advance),
    ]
}

/// The reference: key -> (value, absolute expiry in ms or 0).
#[derive(Default)]
struct Model {
    map: HashMap<Bytes, (Vec<u8>, u64)>,
}

impl Model {
    fn live(&mut self, k: &Bytes, now: u64) -> Option<&mut (Vec<u8>, u64)> {
        if let Some((_, at)) = self.map.get(k)
            && *at != 0
            && *at <= now
        {
            self.map.remove(k);
        }
        self.map.get_mut(k)
    }

    fn run(&mut self, op: &Op, now: u64) -> Result<Reply, CommandError> {
        Ok(match op {
            Op::Set { k, v, ttl_ms, cond, keep_ttl } => {
                let k = key(*k);
                let exists = self.live(&k, now).is_some();
                let go = match cond {
                    1 => !exists,
                    2 => exists,
                    _ => true,
                };
                if !go {
                    return Ok(Reply::Nil);
                }
                let old_at = self.live(&k, now).map(|e| e.1).unwrap_or(0);
                let at = match ttl_ms {
                    Some(ms) => now + *ms as u64,
                    None if *keep_ttl => old_at,
                    None => 0,
                };
                self.map.insert(k, (v.clone(), at));
                Reply::Ok
            }
            Op::Get(k) => match self.live(&key(*k), now) {
                Some((v, _)) => Reply::Bulk(Bytes::from(v.clone())),
                None => Reply::Nil,
            },
            Op::Del(ks) => {
                let mut n = 0;
                let mut seen = Vec::new();
                for k in ks {
                    if seen.contains(k) {
                        continue;
                    }
                    seen.push(*k);
                    if self.live(&key(*k), now).is_some() {
                        self.map.remove(&key(*k));
                        n += 1;
                    }
                }
                Reply::Int(n)
            }
            Op::Incr(k, by) => {
                let k = key(*k);
                let (cur, at) = match self.live(&k, now) {
                    Some((v, at)) => {
                        let s = std::str::from_utf8(v).map_err(|_| CommandError::NotInteger)?;
                        let n: i64 = s.parse().map_err(|_| CommandError::NotInteger)?;
                        if n.to_string() != s {
                            return Err(CommandError::NotInteger);
                        }
                        (n, *at)
                    }
                    None => (0, 0),
                };
                let n = cur.checked_add(*by).ok_or(CommandError::Overflow)?;
                self.map.insert(k, (n.to_string().into_bytes(), at));
                Reply::Int(n)
            }
            Op::Append(k, v) => {
                let k = key(*k);
                let (mut cur, at) = self.live(&k, now).map(|e| e.clone()).unwrap_or_default();
                cur.extend_from_slice(v);
                let len = cur.len();
                self.map.insert(k, (cur, at));
                Reply::Int(len as i64)
            }
            Op::Expire(k, ms) => {
                let k = key(*k);
                if self.live(&k, now).is_none() {
                    return Ok(Reply::Int(0));
                }
                if *ms <= 0 {
                    self.map.remove(&k);
                } else {
                    self.map.get_mut(&k).unwrap().1 = now + *ms as u64;
                }
                Reply::Int(1)
            }
            Op::Persist(k) => match self.live(&key(*k), now) {
                Some(e) if e.1 != 0 => {
                    e.1 = 0;
                    Reply::Int(1)
                }
                _ => Reply::Int(0),
            },
            Op::Ttl(k) => Reply::Expiry(match self.live(&key(*k), now) {
                None => Expiry::Missing,
                Some((_, 0)) => Expiry::Persistent,
                Some((_, at)) => Expiry::Remaining { ms: *at - now, unit: TimeUnit::Millis },
            }),
            Op::Rename(a, b) => {
                let (a, b) = (key(*a), key(*b));
                let Some(e) = self.live(&a, now).cloned() else {
                    return Err(CommandError::NoSuchKey);
                };
                self.map.remove(&a);
                self.map.insert(b, e);
                Reply::Ok
            }
            Op::MSet(pairs) => {
                for (k, v) in pairs {
                    self.map.insert(key(*k), (v.clone(), 0));
                }
                Reply::Ok
            }
            Op::Exists(k) => Reply::Int(self.live(&key(*k), now).is_some() as i64),
            Op::Strlen(k) => Reply::Int(self.live(&key(*k), now).map(|e| e.0.len()).unwrap_or(0) as i64),
            Op::Advance(_) => Reply::Ok,
        })
    }
}

fn command(op: &Op) -> Option<Command> {
    Some(match op {
        Op::Set { k, v, ttl_ms, cond, keep_ttl } => Command::Kv(KvCmd::Set(SetArgs {
            ttl: ttl_ms.map(Ttl::In),
            keep_ttl: *keep_ttl && ttl_ms.is_none(),
            cond: [SetCond::Always, SetCond::IfAbsent, SetCond::IfPresent][*cond as usize],
            ..SetArgs::new(key(*k), v.clone())
        })),
        Op::Get(k) => Command::Kv(KvCmd::Get { key: key(*k) }),
        Op::Del(ks) => Command::Keys(KeysCmd::Del { keys: ks.iter().map(|k| key(*k)).collect() }),
        Op::Incr(k, by) => Command::Kv(KvCmd::IncrBy { key: key(*k), by: *by }),
        Op::Append(k, v) => Command::Kv(KvCmd::Append { key: key(*k), value: Bytes::from(v.clone()) }),
        Op::Expire(k, ms) => Command::Keys(KeysCmd::Expire {
            key: key(*k),
            ttl: Ttl::In(*ms),
            cond: ExpireCond::Always,
            name: "pexpire",
        }),
        Op::Persist(k) => Command::Keys(KeysCmd::Persist { key: key(*k) }),
        Op::Ttl(k) => Command::Keys(KeysCmd::Ttl { key: key(*k), unit: TimeUnit::Millis }),
        Op::Rename(a, b) => Command::Keys(KeysCmd::Rename { from: key(*a), to: key(*b), nx: false }),
        Op::MSet(pairs) => Command::Kv(KvCmd::MSet {
            pairs: pairs.iter().map(|(k, v)| (key(*k), Bytes::from(v.clone()))).collect(),
            nx: false,
        }),
        Op::Exists(k) => Command::Keys(KeysCmd::Exists { keys: vec![key(*k)] }),
        Op::Strlen(k) => Command::Kv(KvCmd::Strlen { key: key(*k) }),
        Op::Advance(_) => return None,
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Random operations give the same replies on the engine and on the model, and the mutations the
    /// engine emitted, replayed into a fresh engine, rebuild the same state (equal digests).
    #[test]
    fn engine_matches_model_and_replay_matches_engine(ops in prop::collection::vec(op(), 1..120)) {
        let clock = Arc::new(ManualClock::new(1_700_000_000_000));
        let log = Arc::new(RecordingLog::default());
        let engine = Engine::new(EngineConfig::default(), clock.clone(), Some(log.clone()));
        let mut model = Model::default();
        let mut ctx = ExecCtx::default();
        for op in &ops {
            if let Op::Advance(ms) = op {
                clock.advance(*ms);
                continue;
            }
            let now = clock.now_ms_for_test();
            let expected = model.run(op, now);
            let got = engine.execute(&mut ctx, command(op).unwrap());
            prop_assert_eq!(&got, &expected, "op {:?}", op);
        }
        // Live keys agree with the model.
        let now = clock.now_ms_for_test();
        let mut model_keys: Vec<Bytes> =
            model.map.iter().filter(|(_, (_, at))| *at == 0 || *at > now).map(|(k, _)| k.clone()).collect();
        model_keys.sort();
        let mut keys: Vec<Bytes> = match engine.execute(&mut ctx, Command::Keys(KeysCmd::Keys { pattern: Bytes::from("*") })).unwrap() {
            Reply::Array(items) => items.into_iter().map(|r| match r { Reply::Bulk(b) => b, other => panic!("{other:?}") }).collect(),
            other => panic!("{other:?}"),
        };
        keys.sort();
        prop_assert_eq!(keys, model_keys);

        let replica = Engine::new(EngineConfig::default(), clock.clone(), None);
        for buf in log.batches.lock().iter() {
            replica.apply_batch(&decode_batch(buf).unwrap());
        }
        prop_assert_eq!(replica.digest(), engine.digest());
    }
}

trait NowForTest {
    fn now_ms_for_test(&self) -> u64;
}

impl NowForTest for ManualClock {
    fn now_ms_for_test(&self) -> u64 {
        synap_core::Clock::now_ms(self)
    }
}

#[test]
fn digest_differs_when_state_differs() {
    let clock = Arc::new(ManualClock::new(1_000));
    let a = Engine::new(EngineConfig::default(), clock.clone(), None);
    let b = Engine::new(EngineConfig::default(), clock.clone(), None);
    let mut ctx = ExecCtx::default();
    a.execute(&mut ctx, Command::Kv(KvCmd::Set(SetArgs::new("k", "v")))).unwrap();
    b.execute(&mut ctx, Command::Kv(KvCmd::Set(SetArgs::new("k", "w")))).unwrap();
    assert_ne!(a.digest(), b.digest());
    b.execute(&mut ctx, Command::Kv(KvCmd::Set(SetArgs::new("k", "v")))).unwrap();
    assert_eq!(a.digest(), b.digest());
}

/// APPEND logs what it appends, not the whole value again (a 1-byte append to a 1 MB value is a small
/// record), and replay rebuilds the value, expiry included.
#[test]
fn append_logs_only_the_appended_bytes() {
    let clock = Arc::new(ManualClock::new(1_000));
    let log = Arc::new(RecordingLog::default());
    let engine = Engine::new(EngineConfig::default(), clock.clone(), Some(log.clone()));
    let mut ctx = ExecCtx::default();
    let mut args = SetArgs::new("k", vec![b'a'; 1 << 20]);
    args.ttl = Some(Ttl::In(60_000));
    engine.execute(&mut ctx, Command::Kv(KvCmd::Set(args))).unwrap();
    let before: usize = log.batches.lock().iter().map(|b| b.len()).sum();
    for _ in 0..100 {
        engine
            .execute(&mut ctx, Command::Kv(KvCmd::Append { key: Bytes::from("k"), value: Bytes::from("b") }))
            .unwrap();
    }
    let appended: usize = log.batches.lock().iter().map(|b| b.len()).sum::<usize>() - before;
    assert!(appended < 100 * 64, "{appended} bytes logged for 100 one-byte appends");
    assert_eq!(
        engine.execute(&mut ctx, Command::Kv(KvCmd::Strlen { key: Bytes::from("k") })),
        Ok(Reply::Int((1 << 20) + 100))
    );
    let replica = Engine::new(EngineConfig::default(), clock.clone(), None);
    for buf in log.batches.lock().iter() {
        replica.apply_batch(&decode_batch(buf).unwrap());
    }
    assert_eq!(replica.digest(), engine.digest());
}
