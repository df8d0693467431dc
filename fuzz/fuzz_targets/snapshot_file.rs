//! Snapshot loading on arbitrary chunk bytes. The checksum would reject nearly every random file before
//! its chunks are read, so the file is built around the fuzzed bytes with a valid header and a trailer
//! whose checksum matches: what is fuzzed is the chunk walk and the records, which must never panic
//! (a wrong entry count or an undecodable chunk is a reported corruption).
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use synap_core::{Engine, EngineConfig};
use synap_storage::FsStorage;
use synap_storage::snapshot::{HEADER_LEN, SNAPSHOT_MAGIC, SNAPSHOT_VERSION, TRAILER_MAGIC, load_snapshot};

fn dir() -> &'static std::path::Path {
    static D: OnceLock<tempfile::TempDir> = OnceLock::new();
    D.get_or_init(|| tempfile::tempdir().unwrap()).path()
}

fuzz_target!(|data: &[u8]| {
    let Some((&entries, chunks)) = data.split_first() else { return };
    let mut file = Vec::with_capacity(HEADER_LEN as usize + chunks.len() + 24);
    file.extend_from_slice(SNAPSHOT_MAGIC);
    file.extend_from_slice(&SNAPSHOT_VERSION.to_le_bytes());
    file.extend_from_slice(&0u32.to_le_bytes());
    file.extend_from_slice(&1u64.to_le_bytes());
    file.extend_from_slice(&0u64.to_le_bytes());
    file.extend_from_slice(chunks);
    let crc = crc32c::crc32c(&file);
    file.extend_from_slice(TRAILER_MAGIC);
    file.extend_from_slice(&(entries as u64).to_le_bytes());
    file.extend_from_slice(&crc.to_le_bytes());
    file.extend_from_slice(&0u32.to_le_bytes());
    let path = dir().join("00000000000000000001.snap");
    std::fs::write(&path, &file).unwrap();
    let mut cfg = EngineConfig::default();
    cfg.kv.shards = 4;
    let engine = Engine::in_memory(cfg);
    let _ = load_snapshot(&FsStorage, &path, &engine);
    let _ = engine.digest();
});
