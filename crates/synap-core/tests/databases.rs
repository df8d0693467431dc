//! Databases (SELECT) in the log and in snapshots: records of another database than 0 say which one,
//! replay puts them there, and a snapshot walked while a SWAPDB runs still replays to the right state
//! with the log after it.

mod common;

use std::sync::Arc;

use common::{RecordingLog, parse};
use synap_core::clock::SystemClock;
use synap_core::{Engine, EngineConfig, ExecCtx, Reply, decode_batch};

fn run(e: &Engine, ctx: &mut ExecCtx, line: &str) -> Reply {
    let mut words = line.split(' ');
    let name = words.next().unwrap();
    let args: Vec<&str> = words.collect();
    e.execute(ctx, parse(name, &args).unwrap()).unwrap_or_else(|err| panic!("{line}: {err}"))
}

fn get(e: &Engine, db: u32, key: &str) -> Reply {
    run(e, &mut ExecCtx { db, ..Default::default() }, &format!("GET {key}"))
}

fn bulk(s: &str) -> Reply {
    Reply::Bulk(bytes::Bytes::from(s.to_string()))
}

fn logged_engine() -> (Engine, Arc<RecordingLog>) {
    let log = Arc::new(RecordingLog::default());
    let e = Engine::new(EngineConfig::default(), Arc::new(SystemClock), Some(log.clone()));
    (e, log)
}

fn replay(e: &Engine, batches: &[Vec<u8>]) {
    for b in batches {
        e.apply_batch(&decode_batch(b).unwrap());
    }
}

#[test]
fn replay_puts_every_record_in_its_database() {
    let (e, log) = logged_engine();
    let mut ctx = ExecCtx::default();
    run(&e, &mut ctx, "SET k zero");
    run(&e, &mut ctx, "SELECT 3");
    run(&e, &mut ctx, "SET k three");
    run(&e, &mut ctx, "HSET h f v");
    // A transaction over three databases is one record.
    let before = log.batches.lock().len();
    let cmds = ["SET t in3", "SELECT 4", "SET t in4", "MOVE t 5", "SELECT 3"]
        .iter()
        .map(|l| {
            let mut w = l.split(' ');
            let name = w.next().unwrap();
            parse(name, &w.collect::<Vec<_>>()).unwrap()
        })
        .collect();
    e.exec_transaction(&mut ctx, cmds, None).unwrap().unwrap();
    assert_eq!(log.batches.lock().len(), before + 1);
    run(&e, &mut ctx, "SWAPDB 3 7");
    run(&e, &mut ctx, "SET after-swap x");

    let copy = Engine::in_memory(EngineConfig::default());
    replay(&copy, &log.batches.lock());
    assert_eq!(copy.digest(), e.digest());
    assert_eq!(get(&copy, 0, "k"), bulk("zero"));
    assert_eq!(get(&copy, 7, "k"), bulk("three"));
    assert_eq!(get(&copy, 7, "t"), bulk("in3"));
    assert_eq!(get(&copy, 5, "t"), bulk("in4"));
    assert_eq!(get(&copy, 4, "t"), Reply::Nil);
    assert_eq!(get(&copy, 3, "after-swap"), bulk("x"));
    assert_eq!(get(&copy, 3, "k"), Reply::Nil);
}

#[test]
fn a_swap_during_a_snapshot_replays_to_the_same_state() {
    let (e, log) = logged_engine();
    let mut ctx = ExecCtx::default();
    run(&e, &mut ctx, "SELECT 1");
    for i in 0..50 {
        run(&e, &mut ctx, &format!("SET one{i} 1"));
    }
    run(&e, &mut ctx, "SELECT 2");
    for i in 0..50 {
        run(&e, &mut ctx, &format!("SET two{i} 2"));
    }
    let (lsn, mut cursor) = e.snapshot_start(|| log.batches.lock().len() as u64);
    // A swap before the walk starts (after the snapshot's LSN, so the log after it repeats it).
    run(&e, &mut ctx, "SWAPDB 2 3");
    let mut chunks = Vec::new();
    let mut swapped = false;
    loop {
        let mut out = Vec::new();
        let Some(_) = e.snapshot_chunk(&mut cursor, 10, &mut out) else { break };
        chunks.push(out);
        if !swapped && chunks.len() == 2 {
            // Part of database 1 is written; now 1 and 3 trade places and both change.
            run(&e, &mut ctx, "SWAPDB 1 3");
            run(&e, &mut ctx, "SELECT 1");
            run(&e, &mut ctx, "SET two0 new");
            run(&e, &mut ctx, "SELECT 3");
            run(&e, &mut ctx, "SET one0 new");
            swapped = true;
        }
    }
    assert!(swapped);
    let copy = Engine::in_memory(EngineConfig::default());
    replay(&copy, &chunks);
    replay(&copy, &log.batches.lock()[lsn as usize..]);
    assert_eq!(copy.digest(), e.digest());
    assert_eq!(get(&copy, 1, "two0"), bulk("new"));
    assert_eq!(get(&copy, 1, "two49"), bulk("2"));
    assert_eq!(get(&copy, 3, "one0"), bulk("new"));
    assert_eq!(get(&copy, 3, "one1"), bulk("1"));
    assert_eq!(get(&copy, 2, "two1"), Reply::Nil);
    assert_eq!(get(&copy, 1, "one1"), Reply::Nil);
}

#[test]
fn data_of_more_databases_than_configured_is_refused() {
    let (e, log) = logged_engine();
    let mut ctx = ExecCtx::default();
    run(&e, &mut ctx, "SELECT 9");
    run(&e, &mut ctx, "SET k v");
    let small = Engine::in_memory(EngineConfig {
        kv: synap_core::KvConfig { databases: 4, ..Default::default() },
        ..Default::default()
    });
    let batches = log.batches.lock();
    let err = small.check_databases(&decode_batch(&batches[0]).unwrap()).unwrap_err();
    assert!(err.contains("database 9") && err.contains("at least 10"), "{err}");
    assert_eq!(e.check_databases(&decode_batch(&batches[0]).unwrap()), Ok(()));
}

#[test]
fn a_reload_during_a_snapshot_moves_no_key_out_of_it() {
    let log = Arc::new(RecordingLog::default());
    let config = EngineConfig { kv: synap_core::KvConfig { shards: 1, ..Default::default() }, ..Default::default() };
    let e = Engine::new(config.clone(), Arc::new(SystemClock), Some(log.clone()));
    let mut ctx = ExecCtx::default();
    run(&e, &mut ctx, "SET first 1");
    for i in 0..100 {
        run(&e, &mut ctx, &format!("SET k{i} {i}"));
    }
    // A stream's entry, last: were it put back first, every other key would move up one place.
    run(&e, &mut ctx, "XADD s 1-1 f v");
    let (lsn, mut cursor) = e.snapshot_start(|| log.batches.lock().len() as u64);
    let mut chunks = Vec::new();
    loop {
        let mut out = Vec::new();
        let Some(_) = e.snapshot_chunk(&mut cursor, 10, &mut out) else { break };
        chunks.push(out);
        if chunks.len() == 3 {
            // Every key is written out and read back between two chunks.
            e.reload().unwrap();
        }
    }
    let copy = Engine::new(config, Arc::new(SystemClock), None);
    replay(&copy, &chunks);
    replay(&copy, &log.batches.lock()[lsn as usize..]);
    assert_eq!(get(&copy, 0, "first"), bulk("1"));
    for i in 0..100 {
        assert_eq!(get(&copy, 0, &format!("k{i}")), bulk(&i.to_string()), "k{i}");
    }
}
