//! Stream semantics on the engine (Redis ID rules, ranges, groups, retention) and replay of the stream
//! mutations.

mod common;

use std::sync::Arc;

use bytes::Bytes;
use common::RecordingLog;
use proptest::prelude::*;
use synap_core::command::KeysCmd;
use synap_core::stream::{
    GroupStart, IdBound, MemoryStorage, ReadFrom, RoomOptions, StreamBackend, StreamCmd, StreamId, TrimSpec,
    TrimStrategy, XAddId,
};
use synap_core::{
    Command, CommandError, Engine, EngineConfig, EngineCursor, ExecCtx, ManualClock, Reply, decode_batch,
};

struct Fixture {
    clock: Arc<ManualClock>,
    log: Arc<RecordingLog>,
    storage: StreamBackend,
    engine: Engine,
}

fn config(storage: &StreamBackend) -> EngineConfig {
    EngineConfig { stream_storage: storage.clone(), ..Default::default() }
}

fn fixture() -> Fixture {
    let clock = Arc::new(ManualClock::new(1_000_000));
    let log = Arc::new(RecordingLog::default());
    let storage = StreamBackend(Arc::new(MemoryStorage::new(2048)));
    let engine = Engine::new(config(&storage), clock.clone(), Some(log.clone()));
    Fixture { clock, log, storage, engine }
}

fn b(s: &str) -> Bytes {
    Bytes::from(s.to_string())
}

fn id(ms: u64, seq: u64) -> StreamId {
    StreamId::new(ms, seq)
}

impl Fixture {
    fn run(&self, cmd: StreamCmd) -> Result<Reply, CommandError> {
        self.engine.execute(&mut ExecCtx::default(), Command::Stream(cmd))
    }
    fn xadd(&self, key: &str, xid: XAddId, v: &str) -> Result<String, CommandError> {
        let fields = vec![(b("f"), b(v))];
        match self.run(StreamCmd::XAdd { key: b(key), id: xid, fields, nomkstream: false, trim: None })? {
            Reply::Bulk(s) => Ok(String::from_utf8(s.to_vec()).unwrap()),
            other => panic!("{other:?}"),
        }
    }
    fn range_ids(&self, key: &str, start: IdBound, end: IdBound, rev: bool) -> Vec<String> {
        let Reply::Array(items) = self.run(StreamCmd::XRange { key: b(key), start, end, count: None, rev }).unwrap()
        else {
            panic!()
        };
        items
            .into_iter()
            .map(|e| match e {
                Reply::Array(mut v) => match v.remove(0) {
                    Reply::Bulk(s) => String::from_utf8(s.to_vec()).unwrap(),
                    o => panic!("{o:?}"),
                },
                o => panic!("{o:?}"),
            })
            .collect()
    }
    fn int(&self, cmd: StreamCmd) -> i64 {
        match self.run(cmd).unwrap() {
            Reply::Int(n) => n,
            o => panic!("{o:?}"),
        }
    }
}

fn map_get<'a>(r: &'a Reply, key: &str) -> &'a Reply {
    let Reply::Map(pairs) = r else { panic!("{r:?}") };
    &pairs.iter().find(|(k, _)| *k == Reply::Bulk(b(key))).unwrap_or_else(|| panic!("no {key} in {r:?}")).1
}

const ALL: (IdBound, IdBound) = (IdBound::Incl(StreamId::MIN), IdBound::Incl(StreamId::MAX));

#[test]
fn xadd_id_rules_ranges_deletes_and_trims() {
    let f = fixture();
    assert_eq!(f.xadd("s", XAddId::Auto, "a").unwrap(), "1000000-0");
    assert_eq!(f.xadd("s", XAddId::Auto, "b").unwrap(), "1000000-1");
    assert_eq!(f.xadd("s", XAddId::AutoSeq(1000000), "c").unwrap(), "1000000-2");
    assert_eq!(f.xadd("s", XAddId::Explicit(id(2000000, 5)), "d").unwrap(), "2000000-5");
    f.clock.advance(10);
    assert_eq!(f.xadd("s", XAddId::Auto, "e").unwrap(), "2000000-6", "ids never go back with the clock");
    let smaller = f.xadd("s", XAddId::Explicit(id(2000000, 6)), "x").unwrap_err().to_string();
    assert_eq!(smaller, "ERR The ID specified in XADD is equal or smaller than the target stream top item");
    assert_eq!(
        f.xadd("t", XAddId::Explicit(StreamId::MIN), "x").unwrap_err().to_string(),
        "ERR The ID specified in XADD must be greater than 0-0"
    );
    assert_eq!(f.xadd("t", XAddId::AutoSeq(0), "x").unwrap(), "0-1");

    assert_eq!(f.int(StreamCmd::XLen { key: b("s") }), 5);
    assert_eq!(f.range_ids("s", ALL.0, ALL.1, false).len(), 5);
    assert_eq!(
        f.range_ids("s", IdBound::Excl(id(1000000, 0)), IdBound::Incl(id(2000000, 5)), false),
        vec!["1000000-1", "1000000-2", "2000000-5"]
    );
    assert_eq!(f.range_ids("s", ALL.0, ALL.1, true)[0], "2000000-6");
    assert_eq!(f.int(StreamCmd::XDel { key: b("s"), ids: vec![id(1000000, 1), id(9, 9)] }), 1);
    assert_eq!(f.int(StreamCmd::XLen { key: b("s") }), 4);
    assert!(!f.range_ids("s", ALL.0, ALL.1, false).contains(&"1000000-1".to_string()));
    let trim = TrimSpec { strategy: TrimStrategy::MaxLen(2), approx: false };
    assert_eq!(f.int(StreamCmd::XTrim { key: b("s"), trim }), 2);
    assert_eq!(f.range_ids("s", ALL.0, ALL.1, false), vec!["2000000-5", "2000000-6"]);
    // XREAD after an id, `+`, and nothing new.
    let read = |from| f.run(StreamCmd::XRead { streams: vec![(b("s"), from)], count: None, block: None }).unwrap();
    assert_eq!(read(ReadFrom::After(id(2000000, 6))), Reply::NullArray);
    assert!(matches!(read(ReadFrom::LastEntry), Reply::Keyed(v) if v.len() == 1));
    assert!(matches!(read(ReadFrom::After(StreamId::MIN)), Reply::Keyed(v) if v.len() == 1));
}

#[test]
fn consumer_groups_pending_ack_claim() {
    let f = fixture();
    for i in 0..5 {
        f.xadd("s", XAddId::Explicit(id(i + 1, 0)), &format!("v{i}")).unwrap();
    }
    let create = |g: &str, start| f.run(StreamCmd::XGroupCreate { key: b("s"), group: b(g), start, mkstream: false });
    create("g", GroupStart::AfterId(StreamId::MIN)).unwrap();
    assert_eq!(create("g", GroupStart::Latest).unwrap_err(), CommandError::BusyGroup);
    let read = |c: &str, n, from: Option<StreamId>| {
        f.run(StreamCmd::XReadGroup {
            group: b("g"),
            consumer: b(c),
            count: Some(n),
            noack: false,
            streams: vec![(b("s"), from)],
            block: None,
        })
        .unwrap()
    };
    let entries = |r: Reply| -> usize {
        match r {
            Reply::NullArray => 0,
            Reply::Keyed(streams) => match &streams[0].1 {
                Reply::Array(e) => e.len(),
                o => panic!("{o:?}"),
            },
            o => panic!("{o:?}"),
        }
    };
    assert_eq!(entries(read("a", 2, None)), 2);
    assert_eq!(entries(read("b", 10, None)), 3);
    assert_eq!(entries(read("b", 10, None)), 0, "each event goes to one consumer");
    assert_eq!(entries(read("a", 10, Some(StreamId::MIN))), 2, "history: a's pending events");
    let ack = f.int(StreamCmd::XAck { key: b("s"), group: b("g"), ids: vec![id(1, 0), id(1, 0), id(9, 0)] });
    assert_eq!(ack, 1);
    let Reply::Array(summary) = f.run(StreamCmd::XPending { key: b("s"), group: b("g"), range: None }).unwrap() else {
        panic!()
    };
    assert_eq!(summary[0], Reply::Int(4));
    // Claim b's events for a once they are idle long enough.
    let claim = |min_idle| {
        f.run(StreamCmd::XAutoClaim {
            key: b("s"),
            group: b("g"),
            consumer: b("a"),
            min_idle_ms: min_idle,
            start: StreamId::MIN,
            count: 10,
            just_id: true,
        })
        .unwrap()
    };
    let claimed = |r: Reply| match r {
        Reply::Array(v) => match &v[1] {
            Reply::Array(c) => c.len(),
            o => panic!("{o:?}"),
        },
        o => panic!("{o:?}"),
    };
    assert_eq!(claimed(claim(1000)), 0);
    f.clock.advance(1500);
    assert_eq!(claimed(claim(1000)), 4);
    assert_eq!(entries(read("a", 10, Some(StreamId::MIN))), 4);
    let err = f
        .run(StreamCmd::XReadGroup {
            group: b("nope"),
            consumer: b("a"),
            count: None,
            noack: false,
            streams: vec![(b("s"), None)],
            block: None,
        })
        .unwrap_err();
    assert_eq!(err.code(), "NOGROUP");
}

#[test]
fn partitions_offsets_retention_and_redelivery() {
    let f = fixture();
    let options = RoomOptions { partitions: Some(3), max_events: Some(10), ..Default::default() };
    f.run(StreamCmd::Create { room: b("r"), options: options.clone() }).unwrap();
    assert!(matches!(f.run(StreamCmd::Create { room: b("r"), options }), Err(CommandError::AlreadyExists(_))));
    let publish = |key: &str, data: &str| {
        let fields = vec![(b("event"), b("e")), (b("data"), b(data))];
        let r = f.run(StreamCmd::Publish { room: b("r"), key: b(key), partition: None, fields }).unwrap();
        match (map_get(&r, "partition"), map_get(&r, "offset")) {
            (Reply::Int(p), Reply::Int(o)) => (*p, *o),
            o => panic!("{o:?}"),
        }
    };
    let (p0, _) = publish("user-1", "a");
    for i in 0..20 {
        assert_eq!(publish("user-1", &format!("{i}")).0, p0, "one key, one partition");
    }
    let read = |from| f.run(StreamCmd::Read { room: b("r"), partition: p0 as u32, from, limit: 100 });
    let err = read(Some(0)).unwrap_err();
    assert_eq!(err, CommandError::OffsetOutOfRange { requested: 0, oldest: 11 });
    let r = read(None).unwrap();
    let Reply::Read { events, next_offset, .. } = &r else { panic!("{r:?}") };
    assert_eq!(events.len(), 10);
    assert_eq!(*next_offset, 21);
    assert_eq!(map_get(&events[9], "data"), &Reply::Bulk(b("19")));

    // A Synap group redelivers an idle pending event to whoever reads next.
    let create = StreamCmd::GroupCreate { room: b("r"), group: b("g"), start: GroupStart::Earliest, redeliver_ms: 500 };
    f.run(create).unwrap();
    let gread = |c: &str, n| match f
        .run(StreamCmd::GroupRead { room: b("r"), group: b("g"), consumer: b(c), count: n })
        .unwrap()
    {
        Reply::Array(v) => v,
        o => panic!("{o:?}"),
    };
    assert_eq!(gread("a", 4).len(), 4);
    assert_eq!(gread("b", 100).len(), 6);
    assert!(gread("b", 100).is_empty());
    f.clock.advance(600);
    let again = gread("c", 100);
    assert_eq!(again.len(), 10, "idle pending events come back");
    let offsets: Vec<u64> = again
        .iter()
        .map(|e| match map_get(e, "offset") {
            Reply::Int(o) => *o as u64,
            _ => panic!(),
        })
        .collect();
    let ack = StreamCmd::GroupAck { room: b("r"), group: b("g"), partition: p0 as u32, offsets };
    assert_eq!(f.int(ack), 10);
    let stats = f.run(StreamCmd::Stats { room: b("r") }).unwrap();
    let Reply::Array(groups) = map_get(&stats, "groups") else { panic!() };
    assert_eq!(map_get(&groups[0], "lag"), &Reply::Int(0));
    assert_eq!(map_get(&stats, "events"), &Reply::Int(10));
}

#[test]
fn snapshot_metadata_over_the_same_segments_rebuilds_the_state() {
    let f = fixture();
    for i in 0..300u64 {
        f.xadd("s", XAddId::Auto, &format!("{i:0100}")).unwrap();
    }
    f.run(StreamCmd::XGroupCreate { key: b("s"), group: b("g"), start: GroupStart::Earliest, mkstream: false })
        .unwrap();
    f.run(StreamCmd::XReadGroup {
        group: b("g"),
        consumer: b("c"),
        count: Some(50),
        noack: false,
        streams: vec![(b("s"), None)],
        block: None,
    })
    .unwrap();
    f.int(StreamCmd::XDel { key: b("s"), ids: vec![id(1_000_000, 7)] });
    let copy = Engine::new(config(&f.storage), f.clock.clone(), None);
    let mut cursor = EngineCursor::default();
    loop {
        let mut buf = Vec::new();
        if f.engine.snapshot_chunk(&mut cursor, 16, &mut buf).is_none() {
            break;
        }
        copy.apply_batch(&decode_batch(&buf).unwrap());
    }
    assert_eq!(copy.digest(), f.engine.digest());
}

#[derive(Debug, Clone)]
enum Op {
    Add(u8),
    Publish(u8, u8),
    Read(u8, usize),
    Ack(usize),
    Claim(u64),
    Trim(u64),
    Del(u64),
    Advance(u64),
    Sweep,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever the operations, replaying the logged mutations into an engine with empty storage rebuilds
    /// the same streams.
    #[test]
    fn replay_rebuilds_the_same_streams(ops in prop::collection::vec(prop_oneof![
        (0u8..2).prop_map(Op::Add),
        (0u8..4, 0u8..3).prop_map(|(k, n)| Op::Publish(k, n)),
        (0u8..3, 1usize..5).prop_map(|(c, n)| Op::Read(c, n)),
        (0usize..8).prop_map(Op::Ack),
        (0u64..3000).prop_map(Op::Claim),
        (0u64..20).prop_map(Op::Trim),
        (0u64..30).prop_map(Op::Del),
        (1u64..2000).prop_map(Op::Advance),
        Just(Op::Sweep),
    ], 1..80)) {
        let f = fixture();
        let retention = RoomOptions { partitions: Some(2), max_events: Some(25), max_age_ms: Some(5000), ..Default::default() };
        f.run(StreamCmd::Create { room: b("r"), options: retention }).unwrap();
        f.run(StreamCmd::GroupCreate { room: b("r"), group: b("g"), start: GroupStart::Earliest, redeliver_ms: 1000 }).unwrap();
        f.run(StreamCmd::XGroupCreate { key: b("s"), group: b("h"), start: GroupStart::Latest, mkstream: true }).unwrap();
        let mut delivered: Vec<(u32, u64)> = Vec::new();
        for op in ops {
            match op {
                Op::Add(n) => {
                    for _ in 0..=n {
                        f.xadd("s", XAddId::Auto, "v").unwrap();
                    }
                }
                Op::Publish(k, n) => {
                    for _ in 0..=n {
                        let fields = vec![(b("data"), b("x"))];
                        f.run(StreamCmd::Publish { room: b("r"), key: b(&k.to_string()), partition: None, fields }).unwrap();
                    }
                }
                Op::Read(c, n) => {
                    let r = f.run(StreamCmd::GroupRead { room: b("r"), group: b("g"), consumer: b(&c.to_string()), count: n }).unwrap();
                    if let Reply::Array(v) = r {
                        for e in v {
                            if let (Reply::Int(p), Reply::Int(o)) = (map_get(&e, "partition"), map_get(&e, "offset")) {
                                delivered.push((*p as u32, *o as u64));
                            }
                        }
                    }
                    f.run(StreamCmd::XReadGroup { group: b("h"), consumer: b(&c.to_string()), count: Some(n), noack: false, streams: vec![(b("s"), None)], block: None }).unwrap();
                }
                Op::Ack(i) => {
                    if let Some(&(p, o)) = delivered.get(i) {
                        f.run(StreamCmd::GroupAck { room: b("r"), group: b("g"), partition: p, offsets: vec![o] }).unwrap();
                    }
                }
                Op::Claim(idle) => {
                    f.run(StreamCmd::XAutoClaim { key: b("s"), group: b("h"), consumer: b("z"), min_idle_ms: idle, start: StreamId::MIN, count: 5, just_id: false }).unwrap();
                }
                Op::Trim(n) => {
                    f.run(StreamCmd::XTrim { key: b("s"), trim: TrimSpec { strategy: TrimStrategy::MaxLen(n), approx: true } }).unwrap();
                }
                Op::Del(seq) => {
                    f.run(StreamCmd::XDel { key: b("s"), ids: vec![id(f.engine.now_ms(), seq)] }).unwrap();
                }
                Op::Advance(ms) => f.clock.advance(ms),
                Op::Sweep => {
                    f.engine.stream_sweep();
                }
            }
        }
        let replica = Engine::new(config(&StreamBackend(Arc::new(MemoryStorage::new(2048)))), f.clock.clone(), None);
        for batch in f.log.batches.lock().iter() {
            replica.apply_batch(&decode_batch(batch).unwrap());
        }
        prop_assert_eq!(replica.digest(), f.engine.digest());
    }
}

/// Stream storage whose reads fail while `fail` is set (a disk error under a group read).
struct FlakyStorage {
    inner: MemoryStorage,
    fail: Arc<std::sync::atomic::AtomicBool>,
}

struct FlakyLog {
    inner: Box<dyn synap_core::stream::PartitionLog>,
    fail: Arc<std::sync::atomic::AtomicBool>,
}

impl synap_core::stream::PartitionLog for FlakyLog {
    fn start(&self) -> u64 {
        self.inner.start()
    }
    fn next(&self) -> u64 {
        self.inner.next()
    }
    fn append(&mut self, offset: u64, body: &[u8]) -> synap_core::stream::StorageResult<()> {
        self.inner.append(offset, body)
    }
    fn read(
        &mut self,
        from: u64,
        max: usize,
        max_bytes: usize,
        out: &mut Vec<(u64, Bytes)>,
    ) -> synap_core::stream::StorageResult<()> {
        if self.fail.load(std::sync::atomic::Ordering::SeqCst) {
            return Err("injected read failure".into());
        }
        self.inner.read(from, max, max_bytes, out)
    }
    fn seek_id(&mut self, id: StreamId) -> synap_core::stream::StorageResult<u64> {
        self.inner.seek_id(id)
    }
    fn segments(&self) -> Vec<synap_core::stream::SegmentInfo> {
        self.inner.segments()
    }
    fn drop_before(&mut self, offset: u64) -> synap_core::stream::StorageResult<()> {
        self.inner.drop_before(offset)
    }
    fn rebase(&mut self, offset: u64) -> synap_core::stream::StorageResult<()> {
        self.inner.rebase(offset)
    }
    fn sync(&mut self) -> synap_core::stream::StorageResult<synap_core::stream::SyncJob> {
        self.inner.sync()
    }
}

impl synap_core::stream::StreamStorage for FlakyStorage {
    fn open(
        &self,
        room: &[u8],
        instance: u64,
        partition: u32,
    ) -> synap_core::stream::StorageResult<Box<dyn synap_core::stream::PartitionLog>> {
        Ok(Box::new(FlakyLog { inner: self.inner.open(room, instance, partition)?, fail: self.fail.clone() }))
    }
    fn remove(&self, room: &[u8], instance: u64, lsn: u64) -> synap_core::stream::StorageResult<()> {
        self.inner.remove(room, instance, lsn)
    }
    fn in_memory(&self) -> bool {
        true
    }
}

/// A group read, claim or history read that hits a storage error changes nothing: no position, no
/// pending entry, no consumer that the log does not have.
#[test]
fn a_group_command_that_fails_on_storage_changes_nothing() {
    let fail = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let storage = StreamBackend(Arc::new(FlakyStorage { inner: MemoryStorage::new(2048), fail: fail.clone() }));
    let clock = Arc::new(ManualClock::new(1_000_000));
    let log = Arc::new(RecordingLog::default());
    let f = Fixture { engine: Engine::new(config(&storage), clock.clone(), Some(log.clone())), clock, log, storage };
    for i in 0..6 {
        f.xadd("s", XAddId::Auto, &i.to_string()).unwrap();
    }
    let create = StreamCmd::GroupCreate { room: b("s"), group: b("g"), start: GroupStart::Earliest, redeliver_ms: 100 };
    f.run(create).unwrap();
    let read = |c: &str, n| f.run(StreamCmd::GroupRead { room: b("s"), group: b("g"), consumer: b(c), count: n });
    assert!(matches!(read("a", 3), Ok(Reply::Array(v)) if v.len() == 3));
    f.clock.advance(500);
    let before = f.engine.digest();
    fail.store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(read("newcomer", 10).is_err(), "the redelivery read fails");
    let history = StreamCmd::XReadGroup {
        group: b("g"),
        consumer: b("other"),
        count: None,
        noack: false,
        streams: vec![(b("s"), Some(StreamId::MIN))],
        block: None,
    };
    assert_eq!(f.run(history), Ok(Reply::Keyed(vec![(Reply::Bulk(b("s")), Reply::Array(vec![]))])));
    let claim = StreamCmd::XAutoClaim {
        key: b("s"),
        group: b("g"),
        consumer: b("claimer"),
        min_idle_ms: 0,
        start: StreamId::MIN,
        count: 10,
        just_id: false,
    };
    assert!(f.run(claim).is_err(), "the claim fails");
    fail.store(false, std::sync::atomic::Ordering::SeqCst);
    let replica = Engine::new(config(&f.storage), f.clock.clone(), None);
    for batch in f.log.batches.lock().iter() {
        replica.apply_batch(&decode_batch(batch).unwrap());
    }
    assert_eq!(replica.digest(), f.engine.digest(), "memory holds nothing the log lacks");
    assert_ne!(before, f.engine.digest(), "the history read created its consumer (logged)");
    // The failed reads left everything in place: the three pending events and the three new ones.
    assert!(matches!(read("b", 10), Ok(Reply::Array(v)) if v.len() == 6));
}

/// `stream.max_read` caps every read, Redis's commands without COUNT included.
#[test]
fn max_read_caps_every_read() {
    let clock = Arc::new(ManualClock::new(1_000_000));
    let storage = StreamBackend(Arc::new(MemoryStorage::new(2048)));
    let mut cfg = config(&storage);
    cfg.streams.max_read = 5;
    let f = Fixture { engine: Engine::new(cfg, clock.clone(), None), clock, log: Default::default(), storage };
    for i in 0..10 {
        f.xadd("s", XAddId::Auto, &i.to_string()).unwrap();
    }
    assert_eq!(f.range_ids("s", IdBound::Incl(StreamId::MIN), IdBound::Incl(StreamId::MAX), false).len(), 5);
    let read = f
        .run(StreamCmd::XRead { streams: vec![(b("s"), ReadFrom::After(StreamId::MIN))], count: None, block: None })
        .unwrap();
    let Reply::Keyed(streams) = read else { panic!() };
    assert!(matches!(&streams[0].1, Reply::Array(events) if events.len() == 5));
}

/// Streams held in memory count toward the memory limit too, and give it back when deleted.
#[test]
fn in_memory_streams_count_toward_the_memory_limit() {
    let clock = Arc::new(ManualClock::new(1_000_000));
    let storage = StreamBackend(Arc::new(MemoryStorage::new(2048)));
    let mut cfg = config(&storage);
    cfg.kv.max_memory = 200_000;
    let f = Fixture { engine: Engine::new(cfg, clock.clone(), None), clock, log: Default::default(), storage };
    let value = "v".repeat(1000);
    let mut n = 0;
    let err = loop {
        match f.xadd("s", XAddId::Auto, &value) {
            Ok(_) => n += 1,
            Err(e) => break e,
        }
        assert!(n < 1000, "the limit was never reached");
    };
    assert_eq!(err, CommandError::OutOfMemory);
    assert!(f.engine.streams().used_memory() >= 150_000);
    f.engine.execute(&mut ExecCtx::default(), Command::Keys(KeysCmd::Del { keys: vec![b("s")] })).unwrap();
    assert_eq!(f.engine.streams().used_memory(), 0);
    f.xadd("s", XAddId::Auto, &value).expect("room again");
}

/// Consumer names and group names are client input: both sets are bounded per stream.
#[test]
fn groups_and_consumers_are_bounded() {
    let clock = Arc::new(ManualClock::new(1_000_000));
    let storage = StreamBackend(Arc::new(MemoryStorage::new(2048)));
    let mut cfg = config(&storage);
    cfg.streams.max_groups = 1;
    cfg.streams.max_consumers = 2;
    let f = Fixture { engine: Engine::new(cfg, clock.clone(), None), clock, log: Default::default(), storage };
    f.xadd("s", XAddId::Auto, "v").unwrap();
    let create = |g: &str| {
        f.run(StreamCmd::XGroupCreate { key: b("s"), group: b(g), start: GroupStart::Earliest, mkstream: false })
    };
    create("g").unwrap();
    assert!(matches!(create("h"), Err(CommandError::Invalid(m)) if m.contains("max_groups_per_stream")));
    // A read creates its consumer when it delivers something (as in Redis): one event for each.
    f.xadd("s", XAddId::Auto, "v").unwrap();
    f.xadd("s", XAddId::Auto, "v").unwrap();
    let read = |c: &str| {
        f.run(StreamCmd::XReadGroup {
            group: b("g"),
            consumer: b(c),
            count: Some(1),
            noack: false,
            streams: vec![(b("s"), None)],
            block: None,
        })
    };
    read("a").unwrap();
    read("b").unwrap();
    assert!(matches!(read("c"), Err(CommandError::Invalid(m)) if m.contains("max_consumers_per_group")));
    read("a").unwrap();
    let create_consumer = StreamCmd::XGroupCreateConsumer { key: b("s"), group: b("g"), consumer: b("z") };
    assert!(f.run(create_consumer).is_err());
}

/// A RENAME of a stream (over another stream) that lands while a fuzzy snapshot is being taken, at every
/// point of the walk: the snapshot plus the log after its LSN rebuild the same state (the rename record
/// names the instance it moves, so a snapshot that already holds it under the new name is left alone, and
/// a walk that began before the rename finds the stream under its new name).
#[test]
fn a_rename_during_a_snapshot_replays_over_it() {
    // The walk takes streams in name order: "s" comes after the "other" streams, "a" before and "z"
    // after it, so that the rename lands before, between and after the walk meets each of the two.
    for (from, to) in [("s", "z"), ("s", "a")] {
        rename_during_a_snapshot(from, to);
    }
}

fn rename_during_a_snapshot(from: &str, to: &str) {
    let rename = |f: &Fixture| {
        let cmd = Command::Keys(KeysCmd::Rename { from: b(from), to: b(to), nx: false });
        f.engine.execute(&mut ExecCtx::default(), cmd).unwrap();
    };
    let mut rounds = 0;
    for step in 0.. {
        let f = fixture();
        for i in 0..20 {
            f.xadd(from, XAddId::Auto, &format!("f{i}")).unwrap();
            f.xadd(to, XAddId::Auto, &format!("t{i}")).unwrap();
            f.xadd(&format!("other{i}"), XAddId::Auto, "o").unwrap();
        }
        f.run(StreamCmd::XGroupCreate { key: b(from), group: b("g"), start: GroupStart::Earliest, mkstream: false })
            .unwrap();
        let lsn = f.log.batches.lock().len();
        let mut cursor = EngineCursor::at_lsn(lsn as u64);
        let mut chunks = Vec::new();
        let mut renamed = false;
        loop {
            if chunks.len() == step {
                rename(&f);
                renamed = true;
            }
            let mut buf = Vec::new();
            if f.engine.snapshot_chunk(&mut cursor, 4, &mut buf).is_none() {
                break;
            }
            chunks.push(buf);
        }
        if !renamed {
            break;
        }
        let copy = Engine::new(config(&f.storage), f.clock.clone(), None);
        for c in &chunks {
            copy.apply_batch(&decode_batch(c).unwrap());
        }
        for batch in &f.log.batches.lock()[lsn..] {
            copy.apply_batch(&decode_batch(batch).unwrap());
        }
        assert_eq!(copy.digest(), f.engine.digest(), "{from} -> {to} after {step} chunks");
        let len = |e: &Engine, key: &str| match e
            .execute(&mut ExecCtx::default(), Command::Stream(StreamCmd::XLen { key: b(key) }))
            .unwrap()
        {
            Reply::Int(n) => n,
            o => panic!("{o:?}"),
        };
        assert_eq!((len(&copy, to), len(&copy, from)), (20, 0), "{from} -> {to} after {step} chunks");
        rounds += 1;
    }
    assert!(rounds > 10, "{rounds}");
}
