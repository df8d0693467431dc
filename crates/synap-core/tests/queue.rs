//! Queue semantics on the engine with a hand-driven clock, and replay of the queue mutations.

mod common;

use std::sync::Arc;

use bytes::Bytes;
use common::RecordingLog;
use proptest::prelude::*;
use synap_core::command::QueueCmd;
use synap_core::queue::{ConsumeArgs, PublishArgs, QueueOptions};
use synap_core::{
    Command, CommandError, Engine, EngineConfig, EngineCursor, ExecCtx, ManualClock, Reply, decode_batch,
};

struct Fixture {
    clock: Arc<ManualClock>,
    log: Arc<RecordingLog>,
    engine: Engine,
}

fn fixture() -> Fixture {
    let clock = Arc::new(ManualClock::new(1_000_000));
    let log = Arc::new(RecordingLog::default());
    let engine = Engine::new(EngineConfig::default(), clock.clone(), Some(log.clone()));
    Fixture { clock, log, engine }
}

impl Fixture {
    fn run(&self, cmd: Command) -> Result<Reply, CommandError> {
        self.engine.execute(&mut ExecCtx::default(), cmd)
    }
    fn create(&self, name: &str, options: QueueOptions) {
        self.run(Command::Queue(QueueCmd::Create { name: Bytes::from(name.to_string()), options })).unwrap();
    }
    fn publish(&self, q: &str, payload: &str, priority: u8, delay_ms: u64, ttl_ms: u64) -> Result<u64, CommandError> {
        let args = PublishArgs {
            queue: Bytes::from(q.to_string()),
            payload: Bytes::from(payload.to_string()),
            priority,
            headers: vec![(Bytes::from("h"), Bytes::from("v"))],
            delay_ms,
            ttl_ms,
        };
        match self.run(Command::Queue(QueueCmd::Publish(args)))? {
            Reply::Bulk(id) => Ok(std::str::from_utf8(&id).unwrap().parse().unwrap()),
            other => panic!("{other:?}"),
        }
    }
    /// (id, payload, attempt) of each delivered message.
    fn consume(&self, q: &str, consumer: &str, max: usize) -> Vec<(u64, String, i64)> {
        let args = ConsumeArgs { queue: Bytes::from(q.to_string()), consumer: Bytes::from(consumer.to_string()), max };
        match self.run(Command::Queue(QueueCmd::Consume { args, wait_ms: None })).unwrap() {
            Reply::Array(msgs) => msgs.into_iter().map(field_triple).collect(),
            other => panic!("{other:?}"),
        }
    }
    fn ack(&self, q: &str, ids: &[u64]) -> i64 {
        match self.run(Command::Queue(QueueCmd::Ack { queue: Bytes::from(q.to_string()), ids: ids.to_vec() })).unwrap()
        {
            Reply::Int(n) => n,
            other => panic!("{other:?}"),
        }
    }
    fn nack(&self, q: &str, id: u64, requeue: bool) {
        self.run(Command::Queue(QueueCmd::Nack { queue: Bytes::from(q.to_string()), id, requeue })).unwrap();
    }
    fn stat(&self, q: &str, field: &str) -> i64 {
        match self.run(Command::Queue(QueueCmd::Stats { queue: Bytes::from(q.to_string()) })).unwrap() {
            Reply::Map(pairs) => pairs
                .into_iter()
                .find_map(|(k, v)| match (k, v) {
                    (Reply::Bulk(k), Reply::Int(n)) if &k[..] == field.as_bytes() => Some(n),
                    _ => None,
                })
                .unwrap_or_else(|| panic!("no field {field}")),
            other => panic!("{other:?}"),
        }
    }
}

fn field_triple(m: Reply) -> (u64, String, i64) {
    let Reply::Map(pairs) = m else { panic!("{m:?}") };
    let get = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| matches!(k, Reply::Bulk(b) if &b[..] == name.as_bytes()))
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    let id = match get("message_id") {
        Reply::Bulk(b) => std::str::from_utf8(&b).unwrap().parse().unwrap(),
        other => panic!("{other:?}"),
    };
    let payload = match get("payload") {
        Reply::Bulk(b) => String::from_utf8(b.to_vec()).unwrap(),
        other => panic!("{other:?}"),
    };
    let attempt = match get("attempt") {
        Reply::Int(n) => n,
        other => panic!("{other:?}"),
    };
    (id, payload, attempt)
}

#[test]
fn priority_order_fifo_within_priority_and_delay() {
    let f = fixture();
    f.create("jobs", QueueOptions::default());
    f.publish("jobs", "low-1", 1, 0, 0).unwrap();
    f.publish("jobs", "high-1", 9, 0, 0).unwrap();
    f.publish("jobs", "low-2", 1, 0, 0).unwrap();
    f.publish("jobs", "later", 9, 500, 0).unwrap();
    f.publish("jobs", "high-2", 9, 0, 0).unwrap();
    let got: Vec<String> = f.consume("jobs", "w", 10).into_iter().map(|m| m.1).collect();
    assert_eq!(got, vec!["high-1", "high-2", "low-1", "low-2"], "delayed message not deliverable yet");
    assert_eq!(f.stat("jobs", "delayed"), 1);
    f.clock.advance(500);
    let got: Vec<String> = f.consume("jobs", "w", 10).into_iter().map(|m| m.1).collect();
    assert_eq!(got, vec!["later"]);
}

#[test]
fn ack_nack_requeue_position_retries_and_dead_letters() {
    let f = fixture();
    f.create("q", QueueOptions { max_retries: Some(1), ..Default::default() });
    let a = f.publish("q", "a", 5, 0, 0).unwrap();
    let b = f.publish("q", "b", 5, 0, 0).unwrap();
    let first = f.consume("q", "w", 1);
    assert_eq!(first, vec![(a, "a".into(), 1)]);
    // NACK with requeue puts it back at its priority position: ahead of the later 'b'.
    f.nack("q", a, true);
    assert_eq!(f.consume("q", "w", 1), vec![(a, "a".into(), 2)]);
    // Second failure: retries (1) are spent, so it goes to the dead-letter queue, not back.
    f.nack("q", a, true);
    assert_eq!(f.stat("q", "dead_lettered"), 1);
    assert_eq!(f.stat("q.dlq", "depth"), 1);
    assert_eq!(f.consume("q", "w", 5), vec![(b, "b".into(), 1)]);
    assert_eq!(f.ack("q", &[b, b, 999]), 1);
    assert_eq!(f.ack("q", &[b]), 0, "an ACKed message is gone for good");
    assert_eq!(f.stat("q", "depth"), 0);
    // NACK without requeue dead-letters at once.
    let c = f.publish("q", "c", 0, 0, 0).unwrap();
    f.consume("q", "w", 1);
    f.nack("q", c, false);
    assert_eq!(f.stat("q.dlq", "depth"), 2);
    // The dead letters can be listed, redriven, consumed.
    match f.run(Command::Queue(QueueCmd::DlqList { queue: Bytes::from("q"), max: 10 })).unwrap() {
        Reply::Array(items) => assert_eq!(items.len(), 2),
        other => panic!("{other:?}"),
    }
    assert_eq!(f.run(Command::Queue(QueueCmd::Redrive { queue: Bytes::from("q"), max: 10 })).unwrap(), Reply::Int(2));
    let back: Vec<(u64, String, i64)> = f.consume("q", "w", 10);
    assert_eq!(back.iter().map(|m| m.1.as_str()).collect::<Vec<_>>(), vec!["a", "c"]);
    assert!(back.iter().all(|m| m.2 == 1), "redriven messages start their attempts again");
}

#[test]
fn deadlines_redeliver_and_ttl_dead_letters() {
    let f = fixture();
    f.create("q", QueueOptions { ack_deadline_ms: Some(1000), max_retries: Some(2), ..Default::default() });
    let id = f.publish("q", "job", 3, 0, 0).unwrap();
    for attempt in 1..=3 {
        assert_eq!(f.consume("q", "w", 1), vec![(id, "job".into(), attempt)]);
        assert_eq!(f.consume("q", "w", 1), vec![], "in flight until its deadline");
        f.clock.advance(1001);
        f.engine.queue_sweep();
    }
    assert_eq!(f.stat("q", "depth"), 0, "retries exhausted by deadlines");
    assert_eq!(f.stat("q.dlq", "depth"), 1);
    assert_eq!(f.stat("q", "redelivered"), 2);
    f.publish("q", "short-lived", 0, 0, 500).unwrap();
    f.clock.advance(600);
    f.engine.queue_sweep();
    assert_eq!(f.stat("q", "expired"), 1);
    assert_eq!(f.stat("q.dlq", "depth"), 2, "expired messages are dead-lettered, never dropped");
}

#[test]
fn limits_prefetch_and_missing_queues() {
    let f = fixture();
    f.create(
        "small",
        QueueOptions { max_depth: Some(2), prefetch: Some(2), max_message_bytes: Some(20), ..Default::default() },
    );
    f.publish("small", "1", 0, 0, 0).unwrap();
    // Headers count toward the size: a 1-byte payload with a 20-byte header is too large.
    let big_headers = PublishArgs {
        queue: Bytes::from("small"),
        payload: Bytes::from("x"),
        headers: vec![(Bytes::from("k"), Bytes::from("v".repeat(20)))],
        ..Default::default()
    };
    assert!(matches!(f.run(Command::Queue(QueueCmd::Publish(big_headers))), Err(CommandError::ValueTooLarge { .. })));
    f.publish("small", "2", 0, 0, 0).unwrap();
    assert!(matches!(f.publish("small", "3", 0, 0, 0), Err(CommandError::QueueFull(_))));
    assert!(matches!(f.publish("small", "this is too long", 0, 0, 0), Err(CommandError::ValueTooLarge { .. })));
    assert_eq!(f.consume("small", "w", 10).len(), 2);
    f.create("big", QueueOptions { prefetch: Some(3), ..Default::default() });
    for i in 0..10 {
        f.publish("big", &i.to_string(), 0, 0, 0).unwrap();
    }
    assert_eq!(f.consume("big", "w1", 10).len(), 3, "prefetch caps in-flight per consumer");
    assert_eq!(f.consume("big", "w1", 10).len(), 0);
    assert_eq!(f.consume("big", "w2", 10).len(), 3);
    assert!(matches!(f.publish("nope", "x", 0, 0, 0), Err(CommandError::NotFound(_))));
    assert!(matches!(f.publish("big", "x", 10, 0, 0), Err(CommandError::Invalid(_))));
    // Consumer names are whatever clients send: the ones a queue remembers for its stats are bounded.
    for i in 0..25_000 {
        f.consume("big", &format!("c{i}"), 0);
    }
    assert!(f.stat("big", "consumers") <= 10_000, "{}", f.stat("big", "consumers"));
    f.clock.advance(61_000);
    f.consume("big", "late", 0);
    assert_eq!(f.stat("big", "consumers"), 3, "the idle names were forgotten: w1 and w2 (in flight) and late");
}

#[test]
fn snapshot_chunks_rebuild_the_same_state() {
    let f = fixture();
    f.create("a", QueueOptions::default());
    f.create("b", QueueOptions { max_retries: Some(7), ..Default::default() });
    for i in 0..700 {
        f.publish(if i % 3 == 0 { "a" } else { "b" }, &format!("m{i}"), (i % 10) as u8, (i % 5) * 100, 0).unwrap();
    }
    f.consume("b", "w", 50);
    let mut cursor = EngineCursor::default();
    let copy = Engine::new(EngineConfig::default(), f.clock.clone(), None);
    loop {
        let mut buf = Vec::new();
        if f.engine.snapshot_chunk(&mut cursor, 64, &mut buf).is_none() {
            break;
        }
        copy.apply_batch(&decode_batch(&buf).unwrap());
    }
    assert_eq!(copy.digest(), f.engine.digest());
}

#[derive(Debug, Clone)]
enum Op {
    Publish(u8, u8, u64),
    Consume(u8, usize),
    Ack(usize),
    Nack(usize, bool),
    Advance(u64),
    Sweep,
    Redrive,
    Purge,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever the operations, replaying the logged queue mutations rebuilds the same state.
    #[test]
    fn replay_rebuilds_the_same_queues(ops in prop::collection::vec(prop_oneof![
        (0u8..2, 0u8..10, prop_oneof![Just(0u64), 1u64..3000]).prop_map(|(q, p, d)| Op::Publish(q, p, d)),
        (0u8..3, 1usize..5).prop_map(|(c, n)| Op::Consume(c, n)),
        (0usize..50).prop_map(Op::Ack),
        (0usize..50, any::<bool>()).prop_map(|(i, r)| Op::Nack(i, r)),
        (0u64..5000).prop_map(Op::Advance),
        Just(Op::Sweep),
        Just(Op::Redrive),
        Just(Op::Purge),
    ], 1..150)) {
        let f = fixture();
        f.create("q0", QueueOptions { ack_deadline_ms: Some(2000), max_retries: Some(1), ..Default::default() });
        f.create("q1", QueueOptions::default());
        let mut delivered: Vec<(String, u64)> = Vec::new();
        for op in &ops {
            match op {
                Op::Publish(q, p, d) => { f.publish(&format!("q{q}"), "x", *p, *d, 0).unwrap(); }
                Op::Consume(c, n) => {
                    for q in ["q0", "q1"] {
                        for (id, ..) in f.consume(q, &format!("c{c}"), *n) {
                            delivered.push((q.to_string(), id));
                        }
                    }
                }
                Op::Ack(i) => if let Some((q, id)) = delivered.get(*i) { f.ack(q, &[*id]); },
                Op::Nack(i, r) => if let Some((q, id)) = delivered.get(*i) { f.nack(q, *id, *r); },
                Op::Advance(ms) => f.clock.advance(*ms),
                Op::Sweep => { f.engine.queue_sweep(); }
                Op::Redrive => { f.run(Command::Queue(QueueCmd::Redrive { queue: Bytes::from("q0"), max: 5 })).unwrap(); }
                Op::Purge => { f.run(Command::Queue(QueueCmd::Purge { queue: Bytes::from("q1") })).unwrap(); }
            }
        }
        let replica = Engine::new(EngineConfig::default(), f.clock.clone(), None);
        for buf in f.log.batches.lock().iter() {
            replica.apply_batch(&decode_batch(buf).unwrap());
        }
        prop_assert_eq!(replica.digest(), f.engine.digest());
    }
}

/// Queues count toward the memory limit: publishing past it fails with OOM under `noeviction`, and the
/// memory comes back as messages are acked, purged, or their queue deleted.
#[test]
fn queues_count_toward_the_memory_limit() {
    let clock = Arc::new(ManualClock::new(1_000_000));
    let mut cfg = EngineConfig::default();
    cfg.kv.max_memory = 200_000;
    let f = Fixture { engine: Engine::new(cfg, clock.clone(), None), clock, log: Default::default() };
    f.create("q", QueueOptions::default());
    let payload = "x".repeat(1000);
    let mut published = 0;
    let oom = loop {
        match f.publish("q", &payload, 0, 0, 0) {
            Ok(_) => published += 1,
            Err(e) => break e,
        }
        assert!(published < 1000, "the limit was never reached");
    };
    assert_eq!(oom, CommandError::OutOfMemory);
    assert!(f.engine.queues().used_memory() >= 150_000, "{}", f.engine.queues().used_memory());
    let ids: Vec<u64> = f.consume("q", "w", 10).into_iter().map(|(id, _, _)| id).collect();
    f.ack("q", &ids);
    f.publish("q", &payload, 0, 0, 0).expect("room again after acks");
    f.run(Command::Queue(QueueCmd::Purge { queue: Bytes::from("q") })).unwrap();
    assert_eq!(f.engine.queues().used_memory(), 0);
    f.publish("q", &payload, 0, 0, 0).unwrap();
    f.run(Command::Queue(QueueCmd::Delete { name: Bytes::from("q") })).unwrap();
    assert_eq!(f.engine.queues().used_memory(), 0);
}
