//! Expiry is a mutation: every removal of an expired key (lazy, active) reaches the log as a `Del`, so
//! replay and replicas end in the primary's state whatever their own clock says, and a key re-created
//! after it expired never inherits the old value.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::RecordingLog;
use proptest::prelude::*;
use synap_core::command::{KeysCmd, KvCmd};
use synap_core::{
    Command, CommandError, Engine, EngineConfig, ExecCtx, ExpireCond, ManualClock, Mutation, MutationLog, Reply,
    SetArgs, Ttl, decode_batch,
};

const T0: u64 = 1_700_000_000_000;

struct Primary {
    engine: Engine,
    log: Arc<RecordingLog>,
    clock: Arc<ManualClock>,
}

fn primary() -> Primary {
    let clock = Arc::new(ManualClock::new(T0));
    let log = Arc::new(RecordingLog::default());
    let engine = Engine::new(EngineConfig::default(), clock.clone(), Some(log.clone()));
    Primary { engine, log, clock }
}

impl Primary {
    fn exec(&self, cmd: Command) -> Result<Reply, CommandError> {
        self.engine.execute(&mut ExecCtx::default(), cmd)
    }

    fn coll(&self, name: &str, args: &[&str]) -> Result<Reply, CommandError> {
        self.exec(common::parse(name, args)?)
    }

    fn pexpire(&self, key: &str, ms: i64) {
        let cmd = Command::Keys(KeysCmd::Expire {
            key: Bytes::from(key.to_string()),
            ttl: Ttl::In(ms),
            cond: ExpireCond::Always,
            name: "pexpire",
        });
        assert_eq!(self.exec(cmd), Ok(Reply::Int(1)), "pexpire {key}");
    }

    /// A fresh engine that applied every logged batch, on a clock of its own at `at`.
    fn replay_at(&self, at: u64) -> Engine {
        let replica = Engine::new(EngineConfig::default(), Arc::new(ManualClock::new(at)), None);
        for buf in self.log.batches.lock().iter() {
            replica.apply_batch(&decode_batch(buf).unwrap());
        }
        replica
    }

    fn logged_dels(&self, key: &[u8]) -> usize {
        let batches = self.log.batches.lock();
        batches
            .iter()
            .flat_map(|b| {
                decode_batch(b)
                    .unwrap()
                    .into_iter()
                    .map(|m| matches!(m, Mutation::Del { key: k } if k == key))
                    .collect::<Vec<_>>()
            })
            .filter(|d| *d)
            .count()
    }
}

fn read(engine: &Engine, name: &str, args: &[&str]) -> Reply {
    engine.execute(&mut ExecCtx::default(), common::parse(name, args).unwrap()).unwrap()
}

fn bulks(items: &[&str]) -> Reply {
    Reply::Array(items.iter().map(|s| Reply::Bulk(Bytes::from(s.to_string()))).collect())
}

/// The reproduction from the report: a collection re-created on an expired key must replay as the new
/// collection alone, for every type, also on a replica whose clock is behind the primary's.
#[test]
fn a_collection_recreated_after_expiry_replays_without_the_old_elements() {
    let p = primary();
    p.coll("hset", &["h", "a", "1"]).unwrap();
    p.coll("rpush", &["l", "old"]).unwrap();
    p.coll("sadd", &["s", "old"]).unwrap();
    p.coll("zadd", &["z", "1", "old"]).unwrap();
    for k in ["h", "l", "s", "z"] {
        p.pexpire(k, 100);
    }
    p.clock.advance(500);
    p.coll("hset", &["h", "b", "2"]).unwrap();
    p.coll("rpush", &["l", "new"]).unwrap();
    p.coll("sadd", &["s", "new"]).unwrap();
    p.coll("zadd", &["z", "2", "new"]).unwrap();
    for k in ["h", "l", "s", "z"] {
        assert_eq!(p.logged_dels(k.as_bytes()), 1, "the expiry of {k} is logged");
    }
    // Replayed now, and on a clock that stepped back to before the expiry.
    for at in [T0 + 500, T0] {
        let r = p.replay_at(at);
        assert_eq!(read(&r, "hgetall", &["h"]), Reply::Map(vec![(Reply::Bulk("b".into()), Reply::Bulk("2".into()))]));
        assert_eq!(read(&r, "lrange", &["l", "0", "-1"]), bulks(&["new"]));
        assert_eq!(read(&r, "smembers", &["s"]), Reply::Set(vec![Reply::Bulk("new".into())]));
        assert_eq!(read(&r, "zrange", &["z", "0", "-1"]), bulks(&["new"]));
        assert_eq!(r.digest(), p.engine.digest(), "replica at {at}");
    }
}

/// Active expiry removes keys nobody reads, and logs each removal: a replica behind in time has them
/// gone too.
#[test]
fn active_expiry_logs_its_removals() {
    let p = primary();
    for i in 0..200 {
        let mut args = SetArgs::new(format!("k{i}"), "v");
        args.ttl = Some(Ttl::In(50));
        p.exec(Command::Kv(KvCmd::Set(args))).unwrap();
    }
    p.exec(Command::Kv(KvCmd::Set(SetArgs::new("stays", "v")))).unwrap();
    p.clock.advance(100);
    let mut expired = 0;
    for _ in 0..100 {
        expired += p.engine.maintenance(Duration::from_secs(1)).expired;
        if p.engine.kv().len() == 1 {
            break;
        }
    }
    assert_eq!(expired, 200);
    assert_eq!(p.engine.kv().len(), 1);
    let r = p.replay_at(T0);
    assert_eq!(r.kv().len(), 1, "the replica applied the logged removals, not its own clock");
    assert_eq!(r.digest(), p.engine.digest());
}

/// A keyspace that follows another's log (a replica) hides expired keys but never removes them itself.
#[test]
fn a_passive_keyspace_hides_expired_keys_and_waits_for_the_record() {
    let p = primary();
    p.engine.kv().set_passive_expiry(true);
    let mut args = SetArgs::new("k", "v");
    args.ttl = Some(Ttl::In(10));
    p.exec(Command::Kv(KvCmd::Set(args))).unwrap();
    p.clock.advance(20);
    assert_eq!(p.exec(Command::Kv(KvCmd::Get { key: Bytes::from("k") })), Ok(Reply::Nil));
    assert_eq!(p.engine.maintenance(Duration::from_secs(1)).expired, 0);
    assert_eq!(p.engine.kv().len(), 1, "still stored");
    assert_eq!(p.logged_dels(b"k"), 0, "and nothing logged");
    p.engine.apply_batch(&[Mutation::Del { key: b"k" }]);
    assert_eq!(p.engine.kv().len(), 0);
}

/// A wall clock that steps back does not bring an expired key back to life in a running server.
#[test]
fn a_clock_stepped_back_does_not_resurrect_keys() {
    let p = primary();
    p.engine.kv().set_passive_expiry(true); // keep the entry stored, so only the clock decides
    let mut args = SetArgs::new("k", "v");
    args.ttl = Some(Ttl::In(100));
    p.exec(Command::Kv(KvCmd::Set(args))).unwrap();
    p.clock.advance(200);
    assert_eq!(p.exec(Command::Kv(KvCmd::Get { key: Bytes::from("k") })), Ok(Reply::Nil));
    p.clock.set(T0);
    assert_eq!(p.exec(Command::Kv(KvCmd::Get { key: Bytes::from("k") })), Ok(Reply::Nil));
}

/// A log that refuses writes (after an fsync failure).
struct FailedLog(RecordingLog);

impl MutationLog for FailedLog {
    fn check_writable(&self) -> Result<(), CommandError> {
        Err(CommandError::Persistence("injected".into()))
    }
    fn append(&self, batch: &[Mutation<'_>]) -> u64 {
        self.0.append(batch)
    }
}

/// Reads of expired keys while the log refuses writes hide them without appending anything.
#[test]
fn expired_keys_are_only_hidden_while_the_log_is_failed() {
    let clock = Arc::new(ManualClock::new(T0));
    let engine = Engine::new(EngineConfig::default(), clock.clone(), None);
    let mut args = SetArgs::new("k", "v");
    args.ttl = Some(Ttl::In(10));
    engine.execute(&mut ExecCtx::default(), Command::Kv(KvCmd::Set(args))).unwrap();
    let log = Arc::new(FailedLog(RecordingLog::default()));
    assert!(engine.attach_log(log.clone()).is_ok());
    clock.advance(20);
    assert_eq!(
        engine.execute(&mut ExecCtx::default(), Command::Kv(KvCmd::Get { key: Bytes::from("k") })),
        Ok(Reply::Nil)
    );
    assert_eq!(engine.maintenance(Duration::from_secs(1)).expired, 0);
    assert!(log.0.batches.lock().is_empty());
    assert_eq!(engine.kv().len(), 1);
}

#[derive(Debug, Clone)]
enum Op {
    /// Writes one element to key `k` as the type the key number gives.
    Write(u8, u8),
    Expire(u8, u16),
    Read(u8),
    Advance(u16),
    Active,
}

fn write_cmd(k: u8, v: u8) -> Command {
    let key = format!("k{k}");
    let (name, args): (&str, Vec<String>) = match k % 5 {
        0 => return Command::Kv(KvCmd::Set(SetArgs::new(key, format!("v{v}")))),
        1 => ("hset", vec![key, format!("f{}", v % 4), format!("{v}")]),
        2 => ("rpush", vec![key, format!("{v}")]),
        3 => ("sadd", vec![key, format!("m{}", v % 6)]),
        _ => ("zadd", vec![key, format!("{v}"), format!("m{}", v % 6)]),
    };
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    common::parse(name, &args).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Writes, expiries and reads of every type in any order: once every expired key was reclaimed, a
    /// replay on a clock at the start ends in the primary's state.
    #[test]
    fn replay_matches_the_primary_whatever_the_replica_clock(ops in prop::collection::vec(prop_oneof![
        (0u8..10, any::<u8>()).prop_map(|(k, v)| Op::Write(k, v)),
        (0u8..10, 1u16..300).prop_map(|(k, ms)| Op::Expire(k, ms)),
        (0u8..10).prop_map(Op::Read),
        (0u16..400).prop_map(Op::Advance),
        Just(Op::Active),
    ], 1..150)) {
        let p = primary();
        for op in ops {
            match op {
                Op::Write(k, v) => { p.exec(write_cmd(k, v)).unwrap(); }
                Op::Expire(k, ms) => {
                    let cmd = Command::Keys(KeysCmd::Expire { key: Bytes::from(format!("k{k}")), ttl: Ttl::In(ms as i64), cond: ExpireCond::Always, name: "pexpire" });
                    p.exec(cmd).unwrap();
                }
                Op::Read(k) => { p.exec(Command::Keys(KeysCmd::Type { key: Bytes::from(format!("k{k}")) })).unwrap(); }
                Op::Advance(ms) => p.clock.advance(ms as u64),
                Op::Active => { p.engine.maintenance(Duration::from_millis(50)); }
            }
        }
        // Reclaim every expired key (lazily), then replay on clocks at the start and now.
        let keys: Vec<Bytes> = (0..10).map(|k| Bytes::from(format!("k{k}"))).collect();
        p.exec(Command::Keys(KeysCmd::Exists { keys })).unwrap();
        let now = synap_core::Clock::now_ms(&*p.clock);
        for at in [T0, now] {
            prop_assert_eq!(p.replay_at(at).digest(), p.engine.digest(), "replica clock {}", at);
        }
    }
}
