//! Stream segment files on arbitrary bytes: a partition directory with a fuzzed segment and index opens
//! (cutting what is torn or corrupt), reads, seeks and takes new appends without panicking.
#![no_main]

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use synap_core::stream::{PartitionLog, StreamId, encode_event};
use synap_storage::segments::{FileCache, FileLog};

fn dir() -> &'static std::path::Path {
    static D: OnceLock<tempfile::TempDir> = OnceLock::new();
    D.get_or_init(|| tempfile::tempdir().unwrap()).path()
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    // The first two bytes split the rest into the index and the log; the third picks a base offset.
    let idx_len = (u16::from_le_bytes([data[0], data[1]]) as usize).min(data.len() - 3);
    let base = data[2] as u64;
    let (idx, log) = data[3..].split_at(idx_len);
    let part = dir().join("p");
    let _ = std::fs::remove_dir_all(&part);
    std::fs::create_dir_all(&part).unwrap();
    std::fs::write(part.join(format!("{base:020}.log")), log).unwrap();
    std::fs::write(part.join(format!("{base:020}.idx")), idx).unwrap();
    let Ok(mut p) = FileLog::open(part.clone(), 4096, Arc::new(FileCache::new(4))) else { return };
    let mut out = Vec::new();
    let _ = p.read(p.start(), 1000, 1 << 20, &mut out);
    let _ = p.seek_id(StreamId::new(5, 0));
    let _ = p.last_id();
    let mut body = Vec::new();
    encode_event(1, StreamId::new(u64::MAX / 2, 0), b"", &[(Bytes::from_static(b"f"), Bytes::from_static(b"v"))], &mut body);
    let next = p.next();
    if p.append(next, &body).is_ok() {
        out.clear();
        let _ = p.read(next, 1, 1 << 20, &mut out);
        assert_eq!(out.len(), 1, "an append reads back");
    }
    if let Ok(job) = p.sync() {
        let _ = job();
    }
});
