//! Snapshots: a streaming, checksummed copy of the keyspace, written to a temporary file, fsynced, renamed.
//!
//! Layout (see `docs/format.md`): a 32-byte header (`SYNAPSNP`, version, LSN, creation time), chunks of
//! `len:u32` + a batch of `Set` mutations, and a 24-byte trailer (`SNAPEND1`, entry count, CRC32C of all
//! bytes before the trailer). Writing holds one shard lock per chunk of at most `CHUNK_ENTRIES` keys, so
//! memory stays constant and writes go on while the snapshot runs.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

use synap_core::{Engine, EngineCursor, decode_batch};

use crate::backend::Storage;
use crate::error::{IoContext, StorageError};

pub const SNAPSHOT_MAGIC: &[u8; 8] = b"SYNAPSNP";
pub const SNAPSHOT_VERSION: u32 = 1;
pub const TRAILER_MAGIC: &[u8; 8] = b"SNAPEND1";
pub const HEADER_LEN: u64 = 32;
pub const TRAILER_LEN: u64 = 24;
const CHUNK_ENTRIES: usize = 256;
/// A chunk larger than this is corruption (a chunk holds at most 256 records of bounded size).
const MAX_CHUNK_LEN: u32 = 1 << 31;

pub fn snapshot_name(lsn: u64) -> String {
    format!("{lsn:020}.snap")
}

pub fn parse_snapshot_name(name: &str) -> Option<u64> {
    name.strip_suffix(".snap").filter(|n| n.len() == 20).and_then(|n| n.parse().ok())
}

/// What a snapshot holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotInfo {
    pub path: PathBuf,
    pub lsn: u64,
    pub entries: u64,
    pub bytes: u64,
    pub millis: u64,
}

/// A snapshot being written: header first, then chunks, then [`SnapshotWriter::finish`] writes the
/// trailer, fsyncs and renames it into place. Until then it is a `.tmp` file recovery ignores (and removes).
pub struct SnapshotWriter {
    file: Box<dyn crate::backend::WriteFile>,
    dir: PathBuf,
    tmp_path: PathBuf,
    final_path: PathBuf,
    lsn: u64,
    crc: u32,
    bytes: u64,
    entries: u64,
    out: Vec<u8>,
    started: Instant,
}

impl SnapshotWriter {
    /// Creates the temporary file of the snapshot at `lsn` in `dir` (blocking).
    pub fn create(
        storage: &dyn Storage,
        dir: &Path,
        lsn: u64,
        created_ms: u64,
    ) -> Result<SnapshotWriter, StorageError> {
        storage.create_dir_all(dir).ctx("create directory", dir)?;
        let final_path = dir.join(snapshot_name(lsn));
        let tmp_path = dir.join(format!("{}.tmp", snapshot_name(lsn)));
        let file = storage.create(&tmp_path).ctx("create", &tmp_path)?;
        let mut out = Vec::with_capacity(HEADER_LEN as usize);
        out.extend_from_slice(SNAPSHOT_MAGIC);
        out.extend_from_slice(&SNAPSHOT_VERSION.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&lsn.to_le_bytes());
        out.extend_from_slice(&created_ms.to_le_bytes());
        Ok(SnapshotWriter {
            file,
            dir: dir.to_path_buf(),
            tmp_path,
            final_path,
            lsn,
            crc: 0,
            bytes: 0,
            entries: 0,
            out,
            started: Instant::now(),
        })
    }

    /// Adds one chunk: an encoded mutation batch of `n` records.
    pub fn write_chunk(&mut self, chunk: &[u8], n: u64) -> Result<(), StorageError> {
        self.entries += n;
        self.out.extend_from_slice(&(chunk.len() as u32).to_le_bytes());
        self.out.extend_from_slice(chunk);
        if self.out.len() >= 256 * 1024 {
            self.crc = crc32c::crc32c_append(self.crc, &self.out);
            self.file.write_all(&self.out).ctx("write", &self.tmp_path)?;
            self.bytes += self.out.len() as u64;
            self.out.clear();
        }
        Ok(())
    }

    /// Writes the trailer and fsyncs; the snapshot is complete but still under its temporary name.
    pub fn seal(&mut self) -> Result<(), StorageError> {
        self.crc = crc32c::crc32c_append(self.crc, &self.out);
        self.out.extend_from_slice(TRAILER_MAGIC);
        self.out.extend_from_slice(&self.entries.to_le_bytes());
        self.out.extend_from_slice(&self.crc.to_le_bytes());
        self.out.extend_from_slice(&0u32.to_le_bytes());
        self.file.write_all(&self.out).ctx("write", &self.tmp_path)?;
        self.bytes += self.out.len() as u64;
        self.out.clear();
        self.file.sync().ctx("fsync", &self.tmp_path)
    }

    /// Gives the sealed snapshot its final name (durably).
    pub fn install(&self, storage: &dyn Storage) -> Result<SnapshotInfo, StorageError> {
        storage.rename(&self.tmp_path, &self.final_path).ctx("rename", &self.tmp_path)?;
        storage.sync_dir(&self.dir).ctx("fsync directory", &self.dir)?;
        Ok(SnapshotInfo {
            path: self.final_path.clone(),
            lsn: self.lsn,
            entries: self.entries,
            bytes: self.bytes,
            millis: self.started.elapsed().as_millis() as u64,
        })
    }

    /// Seals and installs the snapshot.
    pub fn finish(mut self, storage: &dyn Storage) -> Result<SnapshotInfo, StorageError> {
        self.seal()?;
        drop(std::mem::replace(&mut self.file, Box::new(NoFile)));
        self.install(storage)
    }
}

struct NoFile;

impl crate::backend::WriteFile for NoFile {
    fn write_all(&self, _: &[u8]) -> std::io::Result<()> {
        Ok(())
    }
    fn sync(&self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Writes a snapshot of `engine` covering every mutation up to `lsn`, atomically (temp file, fsync, rename);
/// `cursor` comes from [`Engine::snapshot_start`] with `lsn`.
pub fn write_snapshot(
    storage: &dyn Storage,
    dir: &Path,
    engine: &Engine,
    lsn: u64,
    mut cursor: EngineCursor,
) -> Result<SnapshotInfo, StorageError> {
    let mut w = SnapshotWriter::create(storage, dir, lsn, engine.now_ms())?;
    let mut chunk = Vec::with_capacity(64 * 1024);
    loop {
        chunk.clear();
        let Some(n) = engine.snapshot_chunk(&mut cursor, CHUNK_ENTRIES, &mut chunk) else { break };
        if n == 0 {
            continue;
        }
        w.write_chunk(&chunk, n as u64)?;
    }
    w.finish(storage)
}

/// Snapshots in `dir`, newest first. Leftover temporary files are removed.
pub fn list_snapshots(storage: &dyn Storage, dir: &Path) -> Result<Vec<(u64, PathBuf)>, StorageError> {
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for name in storage.list(dir).ctx("list", dir)? {
        if name.ends_with(".tmp") {
            let path = dir.join(&name);
            tracing::warn!(path = %path.display(), "removing unfinished snapshot");
            storage.remove(&path).ctx("remove", &path)?;
        } else if let Some(lsn) = parse_snapshot_name(&name) {
            out.push((lsn, dir.join(name)));
        }
    }
    out.sort_by_key(|(lsn, _)| std::cmp::Reverse(*lsn));
    Ok(out)
}

fn corrupt(path: &Path, reason: impl Into<String>) -> StorageError {
    StorageError::CorruptSnapshot { path: path.to_path_buf(), reason: reason.into() }
}

/// Checks a snapshot's header, trailer and whole-file checksum without loading it; returns its LSN and
/// entry count.
pub fn verify_snapshot(storage: &dyn Storage, path: &Path) -> Result<(u64, u64), StorageError> {
    let len = storage.len(path).ctx("stat", path)?;
    if len < HEADER_LEN + TRAILER_LEN {
        return Err(corrupt(path, format!("file is {len} bytes, shorter than header and trailer")));
    }
    let mut rd = storage.open_read(path).ctx("open", path)?;
    let mut header = [0u8; HEADER_LEN as usize];
    rd.read_exact(&mut header).ctx("read", path)?;
    if &header[..8] != SNAPSHOT_MAGIC {
        return Err(corrupt(path, "bad magic"));
    }
    let version = u32::from_le_bytes(header[8..12].try_into().expect("4 bytes"));
    if version != SNAPSHOT_VERSION {
        return Err(corrupt(path, format!("unsupported version {version}")));
    }
    let lsn = u64::from_le_bytes(header[16..24].try_into().expect("8 bytes"));
    let mut crc = crc32c::crc32c(&header);
    let mut remaining = len - HEADER_LEN - TRAILER_LEN;
    let mut buf = vec![0u8; 256 * 1024];
    while remaining > 0 {
        let n = remaining.min(buf.len() as u64) as usize;
        rd.read_exact(&mut buf[..n]).ctx("read", path)?;
        crc = crc32c::crc32c_append(crc, &buf[..n]);
        remaining -= n as u64;
    }
    let mut trailer = [0u8; TRAILER_LEN as usize];
    rd.read_exact(&mut trailer).ctx("read", path)?;
    if &trailer[..8] != TRAILER_MAGIC {
        return Err(corrupt(path, "bad trailer magic (file cut short?)"));
    }
    let entries = u64::from_le_bytes(trailer[8..16].try_into().expect("8 bytes"));
    let stored = u32::from_le_bytes(trailer[16..20].try_into().expect("4 bytes"));
    if stored != crc {
        return Err(corrupt(path, format!("checksum mismatch: stored {stored:#010x}, computed {crc:#010x}")));
    }
    Ok((lsn, entries))
}

/// Loads a verified snapshot into `engine` through the engine's applier. Returns the entries loaded.
pub fn load_snapshot(storage: &dyn Storage, path: &Path, engine: &Engine) -> Result<u64, StorageError> {
    let (_, expected) = verify_snapshot(storage, path)?;
    let len = storage.len(path).ctx("stat", path)?;
    let mut rd = storage.open_read(path).ctx("open", path)?;
    let mut header = [0u8; HEADER_LEN as usize];
    rd.read_exact(&mut header).ctx("read", path)?;
    let mut remaining = len - HEADER_LEN - TRAILER_LEN;
    let mut entries = 0u64;
    let mut chunk = Vec::new();
    while remaining > 0 {
        let mut lenb = [0u8; 4];
        rd.read_exact(&mut lenb).ctx("read", path)?;
        let clen = u32::from_le_bytes(lenb);
        if clen > MAX_CHUNK_LEN || clen as u64 + 4 > remaining {
            return Err(corrupt(path, format!("chunk length {clen} runs past the end")));
        }
        chunk.resize(clen as usize, 0);
        rd.read_exact(&mut chunk).ctx("read", path)?;
        let batch = decode_batch(&chunk).map_err(|e| corrupt(path, format!("undecodable chunk: {e}")))?;
        entries += batch.len() as u64;
        engine.check_databases(&batch).map_err(StorageError::Failed)?;
        engine.apply_batch(&batch);
        remaining -= 4 + clen as u64;
    }
    if entries != expected {
        return Err(corrupt(path, format!("trailer says {expected} entries, chunks hold {entries}")));
    }
    Ok(entries)
}
