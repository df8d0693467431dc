//! Stream partitions on disk: segment files with a sparse offset index, as Kafka lays them out.
//!
//! `streams/<room as hex>.<instance:016x>/<partition>/<base offset:020>.log` holds records
//! `len:u32 crc32c:u32 offset:u64 body[len]` (the CRC covers offset and body); the `.idx` file beside it
//! holds entries `rel_offset:u32 position:u32 timestamp:u64 id_ms:u64 id_seq:u64`: the first record, one
//! record every `INDEX_INTERVAL` bytes, and, once the segment is sealed, its last record. Opening a
//! partition reads the index files and scans only the tail of the active segment (from its last index
//! entry), so start-up does not grow with the amount of stream data. A torn or corrupt tail of the active
//! segment is cut off: the WAL still holds every event a snapshot has not covered, and recovery appends
//! them again. Before a snapshot claims an LSN every partition is fsynced ([`PartitionLog::sync`]).
//! See `docs/format.md`.
//!
//! Each stream instance has its own directory (streams written before instances existed keep
//! `<room as hex>`), and a deleted instance's directory is removed only once the log record of the
//! deletion is durable ([`FileStreamStorage::purge`]), so a crash never finds a stream whose files are gone.
//!
//! File descriptors are bounded: segment files are opened when read or written, through one cache of at
//! most `max_open_files` open files shared by every partition ([`FileCache`]), and closed when it needs
//! room. Nothing here fsyncs while a partition's lock is held: rolling to a new segment only creates the
//! file, and [`PartitionLog::sync`] hands back the fsyncs (of the segments written since the last sync,
//! their indexes and the directories that gained files) for the caller to run after unlocking.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use synap_core::stream::{PartitionLog, SegmentInfo, StorageResult, StreamId, StreamStorage, SyncJob, event_header};

/// An index entry every this many bytes of log.
pub const INDEX_INTERVAL: u64 = 4096;
const RECORD_HEADER: usize = 16;
const INDEX_ENTRY: usize = 32;
/// Records larger than this are corruption (events are limited far below).
const MAX_RECORD: usize = 64 << 20;
/// Appends are buffered up to this many bytes before they are written to the file.
const WRITE_BUFFER: usize = 64 * 1024;

/// The open segment files, at most `cap` of them; the least recently used is closed to make room (an
/// O(log n) order, so a cache of many files costs no scan). A file is opened outside the cache's lock,
/// and closed once the cache and every reader have let go of it.
pub struct FileCache {
    cap: usize,
    inner: Mutex<CacheInner>,
}

#[derive(Default)]
struct CacheInner {
    files: HashMap<PathBuf, (Arc<File>, u64)>,
    /// Last use -> path, oldest first.
    order: std::collections::BTreeMap<u64, PathBuf>,
    tick: u64,
}

impl CacheInner {
    fn touch(&mut self, path: &Path) -> Option<Arc<File>> {
        self.tick += 1;
        let tick = self.tick;
        let (f, t) = self.files.get_mut(path)?;
        self.order.remove(t);
        *t = tick;
        let f = f.clone();
        self.order.insert(tick, path.to_path_buf());
        Some(f)
    }

    fn insert(&mut self, cap: usize, path: &Path, f: Arc<File>) -> Arc<File> {
        if let Some(existing) = self.touch(path) {
            return existing; // opened by someone else meanwhile
        }
        while self.files.len() >= cap {
            let Some((_, oldest)) = self.order.pop_first() else { break };
            self.files.remove(&oldest);
        }
        self.tick += 1;
        self.files.insert(path.to_path_buf(), (f.clone(), self.tick));
        self.order.insert(self.tick, path.to_path_buf());
        f
    }

    fn remove(&mut self, path: &Path) {
        if let Some((_, t)) = self.files.remove(path) {
            self.order.remove(&t);
        }
    }
}

impl FileCache {
    pub fn new(cap: usize) -> FileCache {
        FileCache { cap: cap.max(2), inner: Mutex::new(CacheInner::default()) }
    }

    /// The open file at `path` (read and write), opening it on a miss.
    fn get(&self, path: &Path) -> std::io::Result<Arc<File>> {
        if let Some(f) = self.inner.lock().touch(path) {
            return Ok(f);
        }
        let f = Arc::new(OpenOptions::new().read(true).write(true).open(path)?);
        Ok(self.inner.lock().insert(self.cap, path, f))
    }

    /// Creates (or truncates) the file at `path` and keeps it open.
    fn create(&self, path: &Path) -> std::io::Result<Arc<File>> {
        let f = Arc::new(OpenOptions::new().read(true).write(true).create(true).truncate(true).open(path)?);
        let mut inner = self.inner.lock();
        inner.remove(path);
        Ok(inner.insert(self.cap, path, f))
    }

    /// Closes the file at `path` (it is being removed).
    fn forget(&self, path: &Path) {
        self.inner.lock().remove(path);
    }

    /// Closes every file under `dir`.
    fn forget_under(&self, dir: &Path) {
        let mut inner = self.inner.lock();
        let gone: Vec<PathBuf> = inner.files.keys().filter(|p| p.starts_with(dir)).cloned().collect();
        for p in gone {
            inner.remove(&p);
        }
    }

    /// Files open now.
    pub fn open_files(&self) -> usize {
        self.inner.lock().files.len()
    }
}

/// Stream storage in a directory.
pub struct FileStreamStorage {
    dir: PathBuf,
    segment_bytes: u64,
    files: Arc<FileCache>,
    /// Directories of deleted instances, with the LSN of the record that deleted them.
    removals: Mutex<Vec<(u64, PathBuf)>>,
}

impl std::fmt::Debug for FileStreamStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileStreamStorage").field("dir", &self.dir).field("segment_bytes", &self.segment_bytes).finish()
    }
}

fn hex(room: &[u8]) -> String {
    room.iter().map(|b| format!("{b:02x}")).collect()
}

impl FileStreamStorage {
    pub fn new(dir: impl Into<PathBuf>, segment_bytes: u64, max_open_files: usize) -> FileStreamStorage {
        FileStreamStorage {
            dir: dir.into(),
            segment_bytes: segment_bytes.max(4096),
            files: Arc::new(FileCache::new(max_open_files)),
            removals: Mutex::new(Vec::new()),
        }
    }

    /// The shared cache of open segment files.
    pub fn files(&self) -> &Arc<FileCache> {
        &self.files
    }

    fn instance_dir(&self, room: &[u8], instance: u64) -> PathBuf {
        if instance == 0 { self.dir.join(hex(room)) } else { self.dir.join(format!("{}.{instance:016x}", hex(room))) }
    }

    fn remove_dir(&self, dir: &Path) -> StorageResult<()> {
        self.files.forget_under(dir);
        match fs::remove_dir_all(dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(format!("remove {}: {e}", dir.display())),
        }
    }

    /// Directories removed waiting for their deletion to be durable.
    pub fn pending_removals(&self) -> usize {
        self.removals.lock().len()
    }
}

impl StreamStorage for FileStreamStorage {
    fn open(&self, room: &[u8], instance: u64, partition: u32) -> StorageResult<Box<dyn PartitionLog>> {
        let dir = self.instance_dir(room, instance).join(partition.to_string());
        Ok(Box::new(FileLog::open(dir, self.segment_bytes, self.files.clone())?))
    }

    fn remove(&self, room: &[u8], instance: u64, lsn: u64) -> StorageResult<()> {
        let dir = self.instance_dir(room, instance);
        if lsn == 0 {
            return self.remove_dir(&dir);
        }
        self.removals.lock().push((lsn, dir));
        Ok(())
    }

    fn settle(&self, lsn: u64) {
        for (l, _) in self.removals.lock().iter_mut() {
            if *l == synap_core::mutation::PENDING_LSN {
                *l = lsn;
            }
        }
    }

    fn purge(&self, durable_lsn: u64) -> StorageResult<usize> {
        let due: Vec<PathBuf> = {
            let mut r = self.removals.lock();
            let (due, keep): (Vec<_>, Vec<_>) = r.drain(..).partition(|(lsn, _)| *lsn <= durable_lsn);
            *r = keep;
            due.into_iter().map(|(_, d)| d).collect()
        };
        for dir in &due {
            self.remove_dir(dir)?;
        }
        Ok(due.len())
    }

    fn retain(&self, live: &[(Bytes, u64)]) -> StorageResult<usize> {
        let keep: std::collections::HashSet<PathBuf> =
            live.iter().map(|(room, instance)| self.instance_dir(room, *instance)).collect();
        let entries = match fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(io_err("list", &self.dir, e)),
        };
        let mut removed = 0;
        for entry in entries.filter_map(|e| e.ok()) {
            let path = entry.path();
            if entry.file_type().is_ok_and(|t| t.is_dir()) && !keep.contains(&path) {
                tracing::info!(dir = %path.display(), "removing files of a stream that no longer exists");
                self.remove_dir(&path)?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    fn in_memory(&self) -> bool {
        false
    }
}

#[derive(Debug, Clone, Copy)]
struct IndexEntry {
    offset: u64,
    pos: u64,
    ts: u64,
    id: StreamId,
}

struct Segment {
    base: u64,
    /// One past the last offset.
    end: u64,
    /// Bytes in the file plus bytes still buffered (active segment).
    bytes: u64,
    max_ts: u64,
    index: Vec<IndexEntry>,
    path: PathBuf,
    idx_path: PathBuf,
}

/// One partition's segment files.
pub struct FileLog {
    dir: PathBuf,
    segment_bytes: u64,
    files: Arc<FileCache>,
    segments: Vec<Segment>,
    /// Appends not yet written to the active segment's file.
    pending: Vec<u8>,
    /// Index entries of the active segment not yet written.
    idx_pending: Vec<u8>,
    /// Position of the active segment's last index entry.
    last_indexed: Option<u64>,
    /// The read buffer, reused.
    read_buf: Vec<u8>,
    /// Files written since the last sync that are not the active segment's (sealed segments, indexes).
    unsynced: Vec<PathBuf>,
    /// Directories that gained or lost entries since the last sync (the partition's, and on creation its
    /// parents).
    dirs_unsynced: Vec<PathBuf>,
}

fn io_err(what: &str, path: &Path, e: std::io::Error) -> String {
    format!("{what} {}: {e}", path.display())
}

fn seg_paths(dir: &Path, base: u64) -> (PathBuf, PathBuf) {
    (dir.join(format!("{base:020}.log")), dir.join(format!("{base:020}.idx")))
}

fn encode_index(e: &IndexEntry, base: u64, out: &mut Vec<u8>) {
    out.extend_from_slice(&((e.offset - base) as u32).to_le_bytes());
    out.extend_from_slice(&(e.pos as u32).to_le_bytes());
    for v in [e.ts, e.id.ms, e.id.seq] {
        out.extend_from_slice(&v.to_le_bytes());
    }
}

fn decode_index(b: &[u8], base: u64) -> Vec<IndexEntry> {
    b.chunks_exact(INDEX_ENTRY)
        .map(|c| {
            let u32_at = |i: usize| u32::from_le_bytes(c[i..i + 4].try_into().expect("4 bytes")) as u64;
            let u64_at = |i: usize| u64::from_le_bytes(c[i..i + 8].try_into().expect("8 bytes"));
            IndexEntry {
                offset: base.saturating_add(u32_at(0)),
                pos: u32_at(4),
                ts: u64_at(8),
                id: StreamId::new(u64_at(16), u64_at(24)),
            }
        })
        .collect()
}

/// Largest read of a scan.
const MAX_CHUNK: usize = 256 * 1024;

/// Reads records from `pos` of `file` up to `len` bytes, in reads that start at `chunk` bytes and grow;
/// calls `f(offset, pos, body)` for each valid one until it returns false. Returns the position after the
/// last valid record examined.
fn scan(file: &File, pos: u64, len: u64, chunk: usize, f: impl FnMut(u64, u64, Bytes) -> bool) -> std::io::Result<u64> {
    scan_with(&mut Vec::new(), file, pos, len, chunk, f)
}

/// [`scan`] reading into `buf` (kept by the caller between scans, so that reads allocate nothing).
fn scan_with(
    buf: &mut Vec<u8>,
    file: &File,
    mut pos: u64,
    len: u64,
    chunk: usize,
    mut f: impl FnMut(u64, u64, Bytes) -> bool,
) -> std::io::Result<u64> {
    // `size`: how much this pass reads; it grows when records run past it.
    let mut size = chunk.clamp(4096, MAX_CHUNK);
    while pos + RECORD_HEADER as u64 <= len {
        if buf.len() < size {
            buf.resize(size, 0);
        }
        let want = ((len - pos) as usize).min(size);
        file.read_exact_at(&mut buf[..want], pos)?;
        let mut at = 0usize;
        let mut progressed = false;
        while at + RECORD_HEADER <= want {
            let n = u32::from_le_bytes(buf[at..at + 4].try_into().expect("4 bytes")) as usize;
            if n > MAX_RECORD {
                return Ok(pos + at as u64);
            }
            if at + RECORD_HEADER + n > want {
                if !progressed && RECORD_HEADER + n > size {
                    size = RECORD_HEADER + n;
                }
                break;
            }
            let crc = u32::from_le_bytes(buf[at + 4..at + 8].try_into().expect("4 bytes"));
            let rec = &buf[at + 8..at + RECORD_HEADER + n];
            if crc32c::crc32c(rec) != crc {
                return Ok(pos + at as u64);
            }
            let offset = u64::from_le_bytes(rec[..8].try_into().expect("8 bytes"));
            let body = Bytes::copy_from_slice(&rec[8..]);
            let here = pos + at as u64;
            at += RECORD_HEADER + n;
            progressed = true;
            if !f(offset, here, body) {
                return Ok(pos + at as u64);
            }
        }
        if !progressed {
            if pos + (RECORD_HEADER as u64) + u32::from_le_bytes(buf[..4].try_into().expect("4 bytes")) as u64 > len {
                return Ok(pos); // a record cut short at the end
            }
            continue; // the buffer grew for a large record
        }
        pos += at as u64;
        size = (size * 2).min(MAX_CHUNK).max(size);
    }
    Ok(pos)
}

impl FileLog {
    pub fn open(dir: PathBuf, segment_bytes: u64, files: Arc<FileCache>) -> StorageResult<FileLog> {
        let existed = dir.exists();
        fs::create_dir_all(&dir).map_err(|e| io_err("create directory", &dir, e))?;
        let mut bases: Vec<u64> = fs::read_dir(&dir)
            .map_err(|e| io_err("list", &dir, e))?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                name.strip_suffix(".log").filter(|n| n.len() == 20).and_then(|n| n.parse().ok())
            })
            .collect();
        bases.sort_unstable();
        let mut log = FileLog {
            dir: dir.clone(),
            segment_bytes,
            files,
            segments: Vec::new(),
            pending: Vec::new(),
            idx_pending: Vec::new(),
            last_indexed: None,
            read_buf: Vec::new(),
            unsynced: Vec::new(),
            dirs_unsynced: Vec::new(),
        };
        if !existed {
            // A new partition: its directory and the instance directory above it are new entries too.
            log.dirs_unsynced.extend(dir.ancestors().skip(1).take(2).map(Path::to_path_buf));
        }
        if bases.is_empty() {
            log.new_segment(0)?;
            return Ok(log);
        }
        for (i, &base) in bases.iter().enumerate() {
            let (path, idx_path) = seg_paths(&dir, base);
            let len = fs::metadata(&path).map_err(|e| io_err("stat", &path, e))?.len();
            let index = match fs::read(&idx_path) {
                Ok(b) => decode_index(&b[..b.len() - b.len() % INDEX_ENTRY], base),
                Err(_) => Vec::new(),
            };
            let index = log.usable_index(&path, index, base, len)?;
            let sealed = i + 1 < bases.len();
            let mut seg = Segment { base, end: base, bytes: len, max_ts: 0, index, path, idx_path };
            if sealed && !seg.index.is_empty() {
                let last = *seg.index.last().expect("non-empty");
                seg.end = bases[i + 1];
                seg.max_ts = last.ts;
                if last.offset.saturating_add(1) != seg.end {
                    // The index lacks the last record (for example it was never sealed): scan the tail.
                    log.scan_tail(&mut seg, false)?;
                    seg.end = bases[i + 1];
                }
            } else {
                log.scan_tail(&mut seg, !sealed)?;
            }
            log.segments.push(seg);
        }
        log.last_indexed = log.segments.last().and_then(|s| s.index.last()).map(|e| e.pos);
        Ok(log)
    }

    /// The part of an index file that can be trusted: entries that start at the segment's first record
    /// and grow in offset and position, up to the last one that points at a record with its offset (an
    /// index damaged or written ahead of its data must not place reads or the segment's end).
    fn usable_index(&self, path: &Path, index: Vec<IndexEntry>, base: u64, len: u64) -> StorageResult<Vec<IndexEntry>> {
        let mut clean: Vec<IndexEntry> = Vec::with_capacity(index.len());
        for e in index {
            let ok = match clean.last() {
                None => e.offset == base && e.pos == 0,
                Some(prev) => e.offset > prev.offset && e.pos > prev.pos,
            };
            if !ok || e.pos >= len {
                break;
            }
            clean.push(e);
        }
        if clean.is_empty() {
            return Ok(clean);
        }
        let file = self.file(path)?;
        while let Some(last) = clean.last() {
            let mut found = None;
            scan(&file, last.pos, len, 4096, |offset, _, _| {
                found = Some(offset);
                false
            })
            .map_err(|e| io_err("read", path, e))?;
            if found == Some(last.offset) {
                break;
            }
            clean.pop();
        }
        Ok(clean)
    }

    fn file(&self, path: &Path) -> StorageResult<Arc<File>> {
        self.files.get(path).map_err(|e| io_err("open", path, e))
    }

    /// Scans a segment from its last index entry to the end: finds its end offset and newest timestamp,
    /// indexes what it passes, and (for the active segment) cuts off a torn or corrupt tail.
    fn scan_tail(&self, seg: &mut Segment, active: bool) -> StorageResult<()> {
        let file = self.file(&seg.path)?;
        let len = file.metadata().map_err(|e| io_err("stat", &seg.path, e))?.len();
        let (from, mut next) = match seg.index.last() {
            Some(e) => (e.pos, e.offset),
            None => (0, seg.base),
        };
        let mut last_pos = seg.index.last().map(|e| e.pos);
        let mut max_ts = seg.index.last().map(|e| e.ts).unwrap_or(0);
        let mut new_entries = Vec::new();
        // Records are accepted while their offsets run on without a gap; `end` follows the last one.
        let mut end = from;
        scan(&file, from, len, MAX_CHUNK, |offset, pos, body| {
            if offset != next {
                return false;
            }
            let Some((ts, id)) = event_header(&body) else { return false };
            if last_pos.is_none_or(|lp| pos >= lp + INDEX_INTERVAL) {
                new_entries.push(IndexEntry { offset, pos, ts, id });
                last_pos = Some(pos);
            }
            max_ts = max_ts.max(ts);
            next = offset + 1;
            end = pos + (RECORD_HEADER + body.len()) as u64;
            true
        })
        .map_err(|e| io_err("read", &seg.path, e))?;
        seg.index.extend(new_entries.iter().filter(|e| e.pos < end));
        seg.end = next;
        seg.max_ts = max_ts;
        if end < len {
            if active {
                tracing::warn!(file = %seg.path.display(), at = end, len, "cutting a torn stream segment tail");
                file.set_len(end).map_err(|e| io_err("truncate", &seg.path, e))?;
            } else {
                tracing::error!(file = %seg.path.display(), at = end, "stream segment is corrupt past this position");
            }
        }
        seg.bytes = end;
        if active {
            // Rewrite the index so that it matches the data exactly.
            let mut idx = Vec::with_capacity(seg.index.len() * INDEX_ENTRY);
            for e in &seg.index {
                encode_index(e, seg.base, &mut idx);
            }
            fs::write(&seg.idx_path, &idx).map_err(|e| io_err("write", &seg.idx_path, e))?;
        }
        Ok(())
    }

    /// Starts a segment at `base`: creates its files (no fsync here: the next sync covers them and the
    /// directory entry).
    fn new_segment(&mut self, base: u64) -> StorageResult<()> {
        let (path, idx_path) = seg_paths(&self.dir, base);
        self.files.create(&path).map_err(|e| io_err("create", &path, e))?;
        File::create(&idx_path).map_err(|e| io_err("create", &idx_path, e))?;
        if !self.dirs_unsynced.contains(&self.dir) {
            self.dirs_unsynced.push(self.dir.clone());
        }
        self.segments.push(Segment { base, end: base, bytes: 0, max_ts: 0, index: Vec::new(), path, idx_path });
        self.last_indexed = None;
        Ok(())
    }

    /// Writes buffered records and index entries of the active segment to its files.
    fn flush(&mut self) -> StorageResult<()> {
        let seg = self.segments.last().expect("an active segment");
        if !self.pending.is_empty() {
            let at = seg.bytes - self.pending.len() as u64;
            let file = self.file(&seg.path)?;
            file.write_all_at(&self.pending, at).map_err(|e| io_err("write", &seg.path, e))?;
            self.pending.clear();
        }
        if !self.idx_pending.is_empty() {
            let mut f =
                OpenOptions::new().append(true).open(&seg.idx_path).map_err(|e| io_err("open", &seg.idx_path, e))?;
            f.write_all(&self.idx_pending).map_err(|e| io_err("write", &seg.idx_path, e))?;
            self.idx_pending.clear();
        }
        Ok(())
    }

    /// Seals the active segment: writes its last record's index entry and everything buffered. Its
    /// fsyncs are left to the next sync.
    fn seal(&mut self) -> StorageResult<()> {
        let seg = self.segments.last().expect("an active segment");
        if seg.end > seg.base && seg.index.last().is_none_or(|e| e.offset.saturating_add(1) != seg.end) {
            let mut last = None;
            let from = seg.index.last().map(|e| e.pos).unwrap_or(0);
            self.flush()?;
            let seg = self.segments.last().expect("an active segment");
            let file = self.file(&seg.path)?;
            scan(&file, from, seg.bytes, MAX_CHUNK, |offset, pos, body| {
                if let Some((ts, id)) = event_header(&body) {
                    last = Some(IndexEntry { offset, pos, ts, id });
                }
                true
            })
            .map_err(|e| io_err("read", &seg.path, e))?;
            if let Some(e) = last {
                let base = seg.base;
                encode_index(&e, base, &mut self.idx_pending);
                self.segments.last_mut().expect("active").index.push(e);
            }
        }
        self.flush()?;
        let seg = self.segments.last().expect("an active segment");
        let (path, idx_path) = (seg.path.clone(), seg.idx_path.clone());
        self.unsynced.push(path);
        self.unsynced.push(idx_path);
        Ok(())
    }

    fn locate(&self, offset: u64) -> Option<usize> {
        let i = self.segments.partition_point(|s| s.end <= offset);
        (i < self.segments.len() && offset >= self.segments[i].base).then_some(i)
    }

    /// Removes a dropped segment's files.
    fn remove_segment(&mut self, seg: Segment) -> StorageResult<()> {
        self.files.forget(&seg.path);
        fs::remove_file(&seg.path).map_err(|e| io_err("remove", &seg.path, e))?;
        let _ = fs::remove_file(&seg.idx_path);
        self.unsynced.retain(|p| *p != seg.path && *p != seg.idx_path);
        if !self.dirs_unsynced.contains(&self.dir) {
            self.dirs_unsynced.push(self.dir.clone());
        }
        Ok(())
    }
}

/// fsyncs a file by path; one removed meanwhile (retention) has nothing left to make durable.
fn sync_path(files: &FileCache, path: &Path, is_dir: bool) -> StorageResult<()> {
    let result =
        if is_dir { File::open(path).and_then(|d| d.sync_all()) } else { files.get(path).and_then(|f| f.sync_data()) };
    match result {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err("fsync", path, e)),
    }
}

impl PartitionLog for FileLog {
    fn rebase(&mut self, offset: u64) -> StorageResult<()> {
        let only_empty = self.segments.len() == 1 && self.segments[0].base == self.segments[0].end;
        if !only_empty {
            return Err(format!("cannot move a partition holding events to offset {offset}"));
        }
        if self.segments[0].base == offset {
            return Ok(());
        }
        self.pending.clear();
        self.idx_pending.clear();
        self.new_segment(offset)?;
        let old = self.segments.remove(0);
        self.remove_segment(old)
    }

    fn start(&self) -> u64 {
        self.segments.first().map(|s| s.base).unwrap_or(0)
    }

    fn next(&self) -> u64 {
        self.segments.last().map(|s| s.end).unwrap_or(0)
    }

    fn append(&mut self, offset: u64, body: &[u8]) -> StorageResult<()> {
        if offset != self.next() {
            return Err(format!("append at offset {offset}, expected {}", self.next()));
        }
        let (ts, id) = event_header(body).ok_or("event record too short")?;
        if self.segments.last().is_some_and(|s| s.bytes >= self.segment_bytes && s.end > s.base) {
            self.seal()?;
            self.new_segment(offset)?;
        }
        let seg = self.segments.last_mut().expect("an active segment");
        let pos = seg.bytes;
        if self.last_indexed.is_none_or(|lp| pos >= lp + INDEX_INTERVAL) {
            let e = IndexEntry { offset, pos, ts, id };
            encode_index(&e, seg.base, &mut self.idx_pending);
            seg.index.push(e);
            self.last_indexed = Some(pos);
        }
        let len = body.len() as u32;
        let mut crc = crc32c::crc32c(&offset.to_le_bytes());
        crc = crc32c::crc32c_append(crc, body);
        self.pending.extend_from_slice(&len.to_le_bytes());
        self.pending.extend_from_slice(&crc.to_le_bytes());
        self.pending.extend_from_slice(&offset.to_le_bytes());
        self.pending.extend_from_slice(body);
        seg.bytes += (RECORD_HEADER + body.len()) as u64;
        seg.end = offset + 1;
        seg.max_ts = seg.max_ts.max(ts);
        if self.pending.len() >= WRITE_BUFFER {
            self.flush()?;
        }
        Ok(())
    }

    fn read(&mut self, from: u64, max: usize, max_bytes: usize, out: &mut Vec<(u64, Bytes)>) -> StorageResult<()> {
        let Some(mut si) = self.locate(from) else { return Ok(()) };
        let (mut n, mut bytes) = (0usize, 0usize);
        let mut want = from;
        while n < max && bytes < max_bytes && si < self.segments.len() {
            if si + 1 == self.segments.len() && !self.pending.is_empty() {
                self.flush()?;
            }
            let seg = &self.segments[si];
            let file = self.file(&seg.path)?;
            let ix = seg.index.partition_point(|e| e.offset <= want);
            let (pos, first) = if ix == 0 { (0, seg.base) } else { (seg.index[ix - 1].pos, seg.index[ix - 1].offset) };
            // Read about what is wanted: the records from the index entry to the last one asked for.
            let avg = (seg.bytes / (seg.end - seg.base).max(1)).max(32) as usize;
            let chunk = ((want - first) as usize + (max - n).min(4096)).saturating_mul(avg) + RECORD_HEADER;
            let mut bad = None;
            let mut buf = std::mem::take(&mut self.read_buf);
            let scanned = scan_with(&mut buf, &file, pos, seg.bytes, chunk, |offset, _, body| {
                if offset < want {
                    return true;
                }
                if offset != want {
                    bad = Some(offset);
                    return false;
                }
                bytes += body.len();
                out.push((offset, body));
                n += 1;
                want += 1;
                n < max && bytes < max_bytes
            });
            if buf.len() > MAX_CHUNK / 4 {
                buf = Vec::new(); // keep only a small buffer between reads
            }
            self.read_buf = buf;
            let seg = &self.segments[si];
            scanned.map_err(|e| io_err("read", &seg.path, e))?;
            if let Some(found) = bad {
                return Err(format!("{}: expected offset {want}, found {found}", seg.path.display()));
            }
            if want < seg.end && n < max && bytes < max_bytes {
                return Err(format!("{}: offsets {want}..{} are unreadable", seg.path.display(), seg.end));
            }
            si += 1;
        }
        Ok(())
    }

    fn seek_id(&mut self, id: StreamId) -> StorageResult<u64> {
        // Segments whose first id is below `id`: the answer lies in the last of them (or at its end).
        let si = self.segments.partition_point(|s| s.index.first().is_some_and(|e| e.id < id));
        if si == 0 {
            return Ok(self.start());
        }
        let si = si - 1;
        if si + 1 == self.segments.len() && !self.pending.is_empty() {
            self.flush()?;
        }
        let seg = &self.segments[si];
        let file = self.file(&seg.path)?;
        let ix = seg.index.partition_point(|e| e.id < id);
        let pos = seg.index[ix.saturating_sub(1)].pos;
        let mut found = None;
        scan(&file, pos, seg.bytes, 8192, |offset, _, body| match event_header(&body) {
            Some((_, eid)) if eid >= id => {
                found = Some(offset);
                false
            }
            _ => true,
        })
        .map_err(|e| io_err("read", &seg.path, e))?;
        Ok(found.unwrap_or(seg.end))
    }

    fn segments(&self) -> Vec<SegmentInfo> {
        self.segments
            .iter()
            .map(|s| SegmentInfo { base: s.base, end: s.end, bytes: s.bytes, max_timestamp: s.max_ts })
            .collect()
    }

    fn drop_before(&mut self, offset: u64) -> StorageResult<()> {
        while self.segments.len() > 1 && self.segments[0].end <= offset {
            let seg = self.segments.remove(0);
            self.remove_segment(seg)?;
        }
        // Everything is below `offset`: start a fresh active segment at the end.
        let last = self.segments.last().expect("an active segment");
        if self.segments.len() == 1 && last.end <= offset && last.end > last.base {
            let next = last.end;
            self.flush()?;
            self.new_segment(next)?;
            let old = self.segments.remove(0);
            self.remove_segment(old)?;
        }
        Ok(())
    }

    fn sync(&mut self) -> StorageResult<SyncJob> {
        self.flush()?;
        let seg = self.segments.last().expect("an active segment");
        let mut files = std::mem::take(&mut self.unsynced);
        files.push(seg.path.clone());
        files.push(seg.idx_path.clone());
        let dirs = std::mem::take(&mut self.dirs_unsynced);
        let cache = self.files.clone();
        Ok(Box::new(move || {
            for f in &files {
                sync_path(&cache, f, false)?;
            }
            for d in &dirs {
                sync_path(&cache, d, true)?;
            }
            Ok(())
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use synap_core::stream::encode_event;

    fn body(i: u64, size: usize) -> Vec<u8> {
        let mut b = Vec::new();
        let fields = [(Bytes::from_static(b"data"), Bytes::from(vec![(i % 251) as u8; size]))];
        encode_event(1000 + i, StreamId::new(1000 + i / 3, i % 3), b"", &fields, &mut b);
        b
    }

    /// A cache smaller than a partition's segments, so that files are closed and reopened.
    fn cache() -> Arc<FileCache> {
        Arc::new(FileCache::new(3))
    }

    fn read_all(log: &mut FileLog) -> Vec<(u64, Bytes)> {
        let mut out = Vec::new();
        let start = log.start();
        log.read(start, usize::MAX, usize::MAX, &mut out).unwrap();
        out
    }

    #[test]
    fn append_roll_reopen_read_seek_and_drop() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p");
        let mut log = FileLog::open(path.clone(), 8192, cache()).unwrap();
        for i in 0..500 {
            log.append(i, &body(i, 100 + (i as usize % 50))).unwrap();
        }
        assert!(log.segments().len() > 5);
        let all = read_all(&mut log);
        assert_eq!(all.len(), 500);
        for (i, (o, b)) in all.iter().enumerate() {
            assert_eq!((*o, &b[..]), (i as u64, &body(i as u64, 100 + i % 50)[..]));
        }
        log.sync().unwrap()().unwrap();
        drop(log);
        let mut log = FileLog::open(path.clone(), 8192, cache()).unwrap();
        assert_eq!((log.start(), log.next()), (0, 500));
        assert_eq!(read_all(&mut log), all);
        let mut out = Vec::new();
        log.read(321, 3, usize::MAX, &mut out).unwrap();
        assert_eq!(out.iter().map(|(o, _)| *o).collect::<Vec<_>>(), vec![321, 322, 323]);
        for i in [0u64, 1, 2, 3, 250, 499] {
            let id = StreamId::new(1000 + i / 3, i % 3);
            assert_eq!(log.seek_id(id).unwrap(), i, "seek {id}");
        }
        assert_eq!(log.seek_id(StreamId::new(9999, 0)).unwrap(), 500);
        log.drop_before(300).unwrap();
        assert!(log.start() > 0 && log.start() <= 300);
        let files_before = fs::read_dir(&path).unwrap().count();
        log.drop_before(500).unwrap();
        assert_eq!((log.start(), log.next()), (500, 500));
        assert!(fs::read_dir(&path).unwrap().count() < files_before);
        log.append(500, &body(500, 10)).unwrap();
        drop(log);
        let log = FileLog::open(path, 8192, cache()).unwrap();
        assert_eq!((log.start(), log.next()), (500, 500), "an unsynced buffered append is gone after a crash");
    }

    #[test]
    fn torn_and_corrupt_tails_are_cut() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p");
        let mut log = FileLog::open(path.clone(), 1 << 20, cache()).unwrap();
        for i in 0..100 {
            log.append(i, &body(i, 64)).unwrap();
        }
        log.sync().unwrap()().unwrap();
        drop(log);
        let seg = path.join(format!("{:020}.log", 0));
        let len = fs::metadata(&seg).unwrap().len();
        // Cut the last record short.
        OpenOptions::new().write(true).open(&seg).unwrap().set_len(len - 7).unwrap();
        let mut log = FileLog::open(path.clone(), 1 << 20, cache()).unwrap();
        assert_eq!(log.next(), 99);
        log.append(99, &body(99, 64)).unwrap();
        log.sync().unwrap()().unwrap();
        drop(log);
        // A flipped byte in the tail (past the last index entry) is cut off at open.
        let mut data = fs::read(&seg).unwrap();
        let rec = 16 + body(0, 64).len();
        data[98 * rec + 20] ^= 0xff;
        fs::write(&seg, &data).unwrap();
        let mut log = FileLog::open(path.clone(), 1 << 20, cache()).unwrap();
        assert_eq!(log.next(), 98);
        assert_eq!(read_all(&mut log).len(), 98);
        drop(log);
        // One in the middle is not scanned at open; reading over it reports the damage.
        let mut data = fs::read(&seg).unwrap();
        data[10 * rec + 20] ^= 0xff;
        fs::write(&seg, &data).unwrap();
        let mut log = FileLog::open(path, 1 << 20, cache()).unwrap();
        let mut out = Vec::new();
        let err = log.read(0, usize::MAX, usize::MAX, &mut out).unwrap_err();
        assert!(err.contains("unreadable"), "{err}");
    }

    /// A damaged index (entries pointing at the wrong place, or at offsets the data does not hold) does not
    /// place the segment's end or reads: it is trusted only up to the last entry that points at its record.
    #[test]
    fn a_damaged_index_is_not_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p");
        let mut log = FileLog::open(path.clone(), 1 << 20, cache()).unwrap();
        for i in 0..200 {
            log.append(i, &body(i, 100)).unwrap();
        }
        log.sync().unwrap()().unwrap();
        drop(log);
        let idx = path.join(format!("{:020}.idx", 0));
        let mut data = fs::read(&idx).unwrap();
        assert!(data.len() >= 3 * INDEX_ENTRY);
        // The last entry claims a far offset; one before it a wrong position.
        let last = data.len() - INDEX_ENTRY;
        data[last..last + 4].copy_from_slice(&5000u32.to_le_bytes());
        let prev = last - INDEX_ENTRY;
        data[prev + 4..prev + 8].copy_from_slice(&7u32.to_le_bytes());
        fs::write(&idx, &data).unwrap();
        let mut log = FileLog::open(path.clone(), 1 << 20, cache()).unwrap();
        assert_eq!((log.start(), log.next()), (0, 200));
        log.append(200, &body(200, 10)).unwrap();
        let mut out = Vec::new();
        log.read(195, 10, usize::MAX, &mut out).unwrap();
        assert_eq!(out.iter().map(|(o, _)| *o).collect::<Vec<_>>(), vec![195, 196, 197, 198, 199, 200]);
        // Garbage for an index: the segment is scanned from its start.
        drop(log);
        fs::write(&idx, vec![0xab; 5 * INDEX_ENTRY]).unwrap();
        let log = FileLog::open(path, 1 << 20, cache()).unwrap();
        assert_eq!(log.next(), 201);
    }

    /// However many partitions and segments, no more files are open than the cache allows, and every
    /// partition reads back what it was given.
    #[test]
    fn open_files_stay_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let files = Arc::new(FileCache::new(8));
        let mut logs: Vec<FileLog> =
            (0..40).map(|p| FileLog::open(dir.path().join(p.to_string()), 4096, files.clone()).unwrap()).collect();
        for i in 0..60u64 {
            for log in logs.iter_mut() {
                log.append(i, &body(i, 200)).unwrap();
            }
        }
        assert!(logs[0].segments().len() > 3);
        assert!(files.open_files() <= 8, "{} open", files.open_files());
        for log in logs.iter_mut() {
            let all = read_all(log);
            assert_eq!(all.len(), 60);
            assert_eq!(&all[59].1[..], &body(59, 200)[..]);
            log.sync().unwrap()().unwrap();
        }
        assert!(files.open_files() <= 8);
    }

    /// A deleted instance's files stay until its deletion is durable; a new instance of the same name
    /// has its own; leftovers not in the recovered state are removed.
    #[test]
    fn instances_have_their_own_files_removed_once_durable() {
        let dir = tempfile::tempdir().unwrap();
        let storage = FileStreamStorage::new(dir.path(), 4096, 16);
        let mut old = storage.open(b"room", 1, 0).unwrap();
        old.append(0, &body(0, 10)).unwrap();
        old.sync().unwrap()().unwrap();
        let old_dir = storage.instance_dir(b"room", 1);
        storage.remove(b"room", 1, 42).unwrap();
        let mut new = storage.open(b"room", 2, 0).unwrap();
        assert_eq!(new.next(), 0, "the new instance starts empty");
        new.append(0, &body(7, 10)).unwrap();
        assert_eq!(storage.purge(41).unwrap(), 0);
        assert!(old_dir.exists(), "not removed before the deletion is durable");
        assert_eq!(storage.purge(42).unwrap(), 1);
        assert!(!old_dir.exists());
        let mut out = Vec::new();
        new.read(0, 10, usize::MAX, &mut out).unwrap();
        assert_eq!(&out[0].1[..], &body(7, 10)[..]);
        // Leftovers: an instance whose creation was never logged.
        storage.open(b"ghost", 9, 0).unwrap().sync().unwrap()().unwrap();
        assert_eq!(storage.retain(&[(Bytes::from_static(b"room"), 2)]).unwrap(), 1);
        assert!(!storage.instance_dir(b"ghost", 9).exists());
        assert!(storage.instance_dir(b"room", 2).exists());
    }
}
