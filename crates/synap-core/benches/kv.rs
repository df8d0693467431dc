//! In-process key-value throughput: GET and SET ns/op against a keyspace holding 1M keys.
//!
//! Run: `cargo bench -p synap-core --bench kv`

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use divan::Bencher;
use synap_core::command::KvCmd;
use synap_core::{Command, Engine, EngineConfig, ExecCtx, SetArgs};

const KEYS: usize = 1_000_000;

fn key(i: usize) -> Bytes {
    Bytes::from(format!("key:{i:016}"))
}

/// One engine with 1M keys of 100-byte values, shared by the benchmarks.
fn engine() -> &'static Arc<Engine> {
    static ENGINE: OnceLock<Arc<Engine>> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let engine = Arc::new(Engine::in_memory(EngineConfig::default()));
        let value = Bytes::from(vec![b'v'; 100]);
        let mut ctx = ExecCtx::default();
        for i in 0..KEYS {
            engine.execute(&mut ctx, Command::Kv(KvCmd::Set(SetArgs::new(key(i), value.clone())))).unwrap();
        }
        engine
    })
}

fn main() {
    divan::main();
}

#[divan::bench]
fn get_hit(b: Bencher) {
    let engine = engine();
    let mut i = 0usize;
    b.with_inputs(|| {
        i = (i + 7919) % KEYS;
        key(i)
    })
    .bench_local_values(|k| {
        let mut ctx = ExecCtx::default();
        engine.execute(&mut ctx, Command::Kv(KvCmd::Get { key: k })).unwrap()
    });
}

#[divan::bench]
fn get_miss(b: Bencher) {
    let engine = engine();
    b.with_inputs(|| Bytes::from_static(b"missing:key:000000"))
        .bench_local_values(|k| engine.execute(&mut ExecCtx::default(), Command::Kv(KvCmd::Get { key: k })).unwrap());
}

#[divan::bench]
fn set_overwrite(b: Bencher) {
    let engine = engine();
    let value = Bytes::from(vec![b'w'; 100]);
    let mut i = 0usize;
    b.with_inputs(|| {
        i = (i + 7919) % KEYS;
        Command::Kv(KvCmd::Set(SetArgs::new(key(i), value.clone())))
    })
    .bench_local_values(|cmd| engine.execute(&mut ExecCtx::default(), cmd).unwrap());
}

#[divan::bench(threads = [1, 2])]
fn incr_contended_shards(b: Bencher) {
    let engine = engine();
    b.with_inputs(|| Bytes::from_static(b"counter")).bench_values(|k| {
        engine.execute(&mut ExecCtx::default(), Command::Kv(KvCmd::IncrBy { key: k, by: 1 })).unwrap()
    });
}
