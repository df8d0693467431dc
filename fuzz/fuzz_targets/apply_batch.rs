//! The one applier on arbitrary records: whatever a WAL record or snapshot chunk holds once it decodes,
//! applying it never panics, and the state it leaves can still be read, snapshotted and digested.
#![no_main]

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use synap_core::kv::types::CollCmd;
use synap_core::{Command, Engine, EngineConfig, EngineCursor, ExecCtx, decode_batch};

fn engine() -> &'static Engine {
    static E: OnceLock<Engine> = OnceLock::new();
    E.get_or_init(|| {
        let mut cfg = EngineConfig::default();
        cfg.kv.shards = 16;
        Engine::in_memory(cfg)
    })
}

fuzz_target!(|data: &[u8]| {
    static RUNS: AtomicU64 = AtomicU64::new(0);
    let e = engine();
    let Ok(batch) = decode_batch(data) else { return };
    e.apply_batch(&batch);
    // Read what the records touched, through the commands.
    for m in &batch {
        let key = match m {
            synap_core::Mutation::Restore { key, .. }
            | synap_core::Mutation::LPut { key, .. }
            | synap_core::Mutation::HSet { key, .. }
            | synap_core::Mutation::ZSet { key, .. }
            | synap_core::Mutation::SetRange { key, .. } => Bytes::copy_from_slice(key),
            synap_core::Mutation::Stream { room, .. } => Bytes::copy_from_slice(room),
            _ => continue,
        };
        for (cmd, extra) in [
            (CollCmd::LRange, vec!["0", "-1"]),
            (CollCmd::LInsert, vec!["BEFORE", "x", "y"]),
            (CollCmd::HGetAll, vec![]),
            (CollCmd::ZRange, vec!["0", "-1", "WITHSCORES"]),
            (CollCmd::SMembers, vec![]),
        ] {
            let mut args = vec![key.clone()];
            args.extend(extra.into_iter().map(|a: &str| Bytes::copy_from_slice(a.as_bytes())));
            let _ = e.execute(&mut ExecCtx::default(), Command::Coll { cmd, args });
        }
        let _ = e.execute(&mut ExecCtx::default(), Command::Get { key: key.clone() });
        let _ = e.execute(
            &mut ExecCtx::default(),
            Command::Stream(synap_core::stream::StreamCmd::XRange {
                key,
                start: synap_core::stream::IdBound::Incl(synap_core::stream::StreamId::MIN),
                end: synap_core::stream::IdBound::Incl(synap_core::stream::StreamId::MAX),
                count: Some(10),
                rev: false,
            }),
        );
    }
    if RUNS.fetch_add(1, Ordering::Relaxed) % 256 == 0 {
        let mut cursor = EngineCursor::with_chunk_bytes(4096);
        let mut out = Vec::new();
        while e.snapshot_chunk(&mut cursor, 64, &mut out).is_some() {
            decode_batch(&out).expect("a snapshot chunk decodes");
            out.clear();
        }
        let _ = e.digest();
        e.apply_batch(&[synap_core::Mutation::FlushAll]);
    }
});
