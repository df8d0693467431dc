//! Memory per key: fills an engine with N keys (default 1M) of 100-byte values and reports bytes per key,
//! both as the engine accounts it (`used_memory`, what eviction compares against the limit) and as the
//! allocator (jemalloc, the server's allocator) reports it.
//!
//! Run: `cargo run --release -p synap-server --example kv_memory -- [keys] [value_size]`

use bytes::Bytes;
use synap_core::command::KvCmd;
use synap_core::{Command, Engine, EngineConfig, ExecCtx, SetArgs};
use tikv_jemalloc_ctl::{epoch, stats};

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn allocated() -> usize {
    epoch::advance().expect("jemalloc epoch");
    stats::allocated::read().expect("jemalloc stats")
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().map(|a| a.parse().expect("key count")).unwrap_or(1_000_000);
    let value_size: usize = args.next().map(|a| a.parse().expect("value size")).unwrap_or(100);
    let before = allocated();
    let engine = Engine::in_memory(EngineConfig::default());
    let value = Bytes::from(vec![b'v'; value_size]);
    let mut ctx = ExecCtx::default();
    for i in 0..n {
        // Keys like redis-benchmark's `key:000000000042` (16 bytes).
        let key = Bytes::from(format!("key:{i:012}"));
        engine.execute(&mut ctx, Command::Kv(KvCmd::Set(SetArgs::new(key, value.clone())))).expect("set");
    }
    let after = allocated();
    let used = engine.kv().used_memory();
    println!("keys={n} value_size={value_size}");
    println!("engine used_memory: {} bytes ({:.1} bytes/key)", used, used as f64 / n as f64);
    println!("allocator allocated: {} bytes ({:.1} bytes/key)", after - before, (after - before) as f64 / n as f64);
}
