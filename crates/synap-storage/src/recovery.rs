//! Recovery on start: the newest valid snapshot, then the WAL records after it, through the engine's applier.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

use synap_core::{Engine, decode_batch};

use crate::backend::Storage;
use crate::error::{IoContext, StorageError};
use crate::snapshot::{list_snapshots, load_snapshot};
use crate::wal::{MAX_RECORD_LEN, RECORD_HEADER_LEN, SEGMENT_HEADER_LEN, SEGMENT_MAGIC, list_segments};

/// What to do with a corrupt record in the middle of the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RecoverMode {
    /// Stop start-up with an error naming file and offset.
    #[default]
    Strict,
    /// Cut the log at the corrupt record (and drop later segments) and go on, with a warning.
    Truncate,
}

/// What recovery found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    pub snapshot: Option<PathBuf>,
    pub snapshot_lsn: u64,
    pub snapshot_entries: u64,
    pub snapshots_skipped: Vec<String>,
    pub segments: usize,
    pub records_replayed: u64,
    /// Bytes cut from the end of the log (torn tail, or corruption under `truncate`).
    pub truncated_bytes: u64,
    pub last_lsn: u64,
    pub millis: u64,
}

enum Outcome {
    /// The record is good.
    Record { lsn: u64, len: usize },
    /// The segment ends cleanly here.
    End,
    /// The tail from here is a torn write.
    Torn(String),
    /// Corruption at this offset.
    Corrupt(String),
}

/// Reads one record header+payload at the reader's position. `left` is the bytes left in the file.
fn read_record(rd: &mut dyn Read, left: u64, buf: &mut Vec<u8>, is_last_segment: bool) -> std::io::Result<Outcome> {
    if left == 0 {
        return Ok(Outcome::End);
    }
    if left < RECORD_HEADER_LEN as u64 {
        return Ok(if is_last_segment {
            Outcome::Torn(format!("{left} bytes of a record header"))
        } else {
            Outcome::Corrupt(format!("{left} trailing bytes"))
        });
    }
    let mut h = [0u8; RECORD_HEADER_LEN];
    rd.read_exact(&mut h)?;
    let len = u32::from_le_bytes(h[0..4].try_into().expect("4 bytes"));
    let crc = u32::from_le_bytes(h[4..8].try_into().expect("4 bytes"));
    let lsn = u64::from_le_bytes(h[8..16].try_into().expect("8 bytes"));
    if h.iter().all(|&b| b == 0) && is_last_segment {
        return Ok(Outcome::Torn("zero-filled tail".into()));
    }
    if !(4..=MAX_RECORD_LEN).contains(&len) {
        return Ok(Outcome::Corrupt(format!("impossible record length {len}")));
    }
    let body_left = left - RECORD_HEADER_LEN as u64;
    if len as u64 > body_left {
        return Ok(if is_last_segment {
            Outcome::Torn(format!("record of {len} bytes cut short at {body_left}"))
        } else {
            Outcome::Corrupt(format!("record of {len} bytes runs past the end of the segment"))
        });
    }
    buf.resize(len as usize, 0);
    rd.read_exact(buf)?;
    let computed = crc32c::crc32c_append(crc32c::crc32c(&h[8..16]), buf);
    if computed != crc {
        let at_end = len as u64 == body_left;
        return Ok(if at_end && is_last_segment {
            Outcome::Torn("checksum mismatch in the last record".into())
        } else {
            Outcome::Corrupt(format!("checksum mismatch: stored {crc:#010x}, computed {computed:#010x}"))
        });
    }
    Ok(Outcome::Record { lsn, len: len as usize })
}

/// Loads the newest valid snapshot, then replays the WAL after it. Returns the report; `last_lsn` is the
/// LSN of the last record applied (the log continues at `last_lsn + 1`).
pub fn recover(
    storage: &dyn Storage,
    snapshot_dir: &Path,
    wal_dir: &Path,
    engine: &Engine,
    mode: RecoverMode,
) -> Result<RecoveryReport, StorageError> {
    let started = Instant::now();
    let mut report = RecoveryReport::default();
    for (lsn, path) in list_snapshots(storage, snapshot_dir)? {
        match load_snapshot(storage, &path, engine) {
            Ok(entries) => {
                report.snapshot = Some(path);
                report.snapshot_lsn = lsn;
                report.snapshot_entries = entries;
                break;
            }
            Err(e @ StorageError::CorruptSnapshot { .. }) => {
                tracing::warn!(error = %e, "skipping unusable snapshot; trying an older one");
                report.snapshots_skipped.push(e.to_string());
            }
            Err(e) => return Err(e),
        }
    }
    let segments = list_segments(storage, wal_dir)?;
    report.segments = segments.len();
    let mut expected = report.snapshot_lsn.saturating_add(1);
    // Segments wholly below the snapshot may be skipped; the first segment needed must start at or
    // before the first LSN the snapshot lacks.
    let needed_from = segments.iter().rposition(|(first, _)| *first <= expected).unwrap_or(0);
    if let Some((first, _)) = segments.get(needed_from)
        && *first > expected
    {
        return Err(StorageError::Gap { snapshot_lsn: report.snapshot_lsn, wal_first: *first });
    }
    let mut buf = Vec::new();
    let count = segments.len();
    'segments: for (i, (_, path)) in segments.iter().enumerate().skip(needed_from) {
        let is_last = i + 1 == count;
        let len = storage.len(path).ctx("stat", path)?;
        let mut rd = storage.open_read(path).ctx("open", path)?;
        if len < SEGMENT_HEADER_LEN as u64 {
            if is_last {
                tracing::warn!(path = %path.display(), "segment header cut short; removing the segment");
                storage.remove(path).ctx("remove", path)?;
                report.truncated_bytes += len;
                break;
            }
            return Err(StorageError::CorruptWal {
                path: path.clone(),
                offset: 0,
                reason: "segment header cut short".into(),
            });
        }
        let mut header = [0u8; SEGMENT_HEADER_LEN];
        rd.read_exact(&mut header).ctx("read", path)?;
        if &header[..8] != SEGMENT_MAGIC {
            return Err(StorageError::CorruptWal { path: path.clone(), offset: 0, reason: "bad segment magic".into() });
        }
        let mut offset = SEGMENT_HEADER_LEN as u64;
        loop {
            let outcome = read_record(&mut *rd, len - offset, &mut buf, is_last).ctx("read", path)?;
            match outcome {
                Outcome::End => break,
                Outcome::Record { lsn, len: rlen } => {
                    if lsn >= expected {
                        if lsn != expected {
                            let reason = format!("LSN {lsn} where {expected} was expected");
                            if mode == RecoverMode::Strict {
                                return Err(StorageError::CorruptWal { path: path.clone(), offset, reason });
                            }
                            cut(storage, path, offset, &segments[i + 1..], &mut report, len, &reason)?;
                            break 'segments;
                        }
                        match decode_batch(&buf) {
                            Ok(batch) => {
                                engine.check_databases(&batch).map_err(StorageError::Failed)?;
                                engine.apply_batch(&batch)
                            }
                            Err(e) => {
                                let reason = format!("undecodable record: {e}");
                                if mode == RecoverMode::Strict {
                                    return Err(StorageError::CorruptWal { path: path.clone(), offset, reason });
                                }
                                cut(storage, path, offset, &segments[i + 1..], &mut report, len, &reason)?;
                                break 'segments;
                            }
                        }
                        report.records_replayed += 1;
                        expected += 1;
                    }
                    offset += (RECORD_HEADER_LEN + rlen) as u64;
                }
                Outcome::Torn(reason) if valid_record_follows(storage, path, offset, expected)? => {
                    // Not a torn tail: a good record comes later, so this is corruption in the middle.
                    let reason = format!("{reason}, but valid records follow");
                    if mode == RecoverMode::Strict {
                        return Err(StorageError::CorruptWal { path: path.clone(), offset, reason });
                    }
                    cut(storage, path, offset, &segments[i + 1..], &mut report, len, &reason)?;
                    break 'segments;
                }
                Outcome::Torn(reason) => {
                    tracing::warn!(path = %path.display(), offset, %reason, "torn write at the end of the log; truncating");
                    storage.truncate(path, offset).ctx("truncate", path)?;
                    report.truncated_bytes += len - offset;
                    break 'segments;
                }
                Outcome::Corrupt(reason) => {
                    if mode == RecoverMode::Strict {
                        return Err(StorageError::CorruptWal { path: path.clone(), offset, reason });
                    }
                    cut(storage, path, offset, &segments[i + 1..], &mut report, len, &reason)?;
                    break 'segments;
                }
            }
        }
    }
    report.last_lsn = expected - 1;
    report.millis = started.elapsed().as_millis() as u64;
    Ok(report)
}

/// Whether a checksummed record with an LSN at or after `expected` starts anywhere after `offset` in the
/// file: then the bad bytes at `offset` are not a torn tail (whose length field might itself be damaged)
/// but corruption with acknowledged records behind it.
fn valid_record_follows(storage: &dyn Storage, path: &Path, offset: u64, expected: u64) -> Result<bool, StorageError> {
    let mut data = Vec::new();
    storage.open_read(path).ctx("open", path)?.read_to_end(&mut data).ctx("read", path)?;
    let start = (offset as usize + 1).min(data.len());
    for at in start..data.len().saturating_sub(RECORD_HEADER_LEN) {
        let h = &data[at..at + RECORD_HEADER_LEN];
        let lsn = u64::from_le_bytes(h[8..16].try_into().expect("8 bytes"));
        if lsn < expected || lsn > expected.saturating_add(1 << 32) {
            continue;
        }
        let len = u32::from_le_bytes(h[0..4].try_into().expect("4 bytes")) as usize;
        let end = at + RECORD_HEADER_LEN + len;
        if len < 4 || end > data.len() {
            continue;
        }
        let crc = u32::from_le_bytes(h[4..8].try_into().expect("4 bytes"));
        if crc32c::crc32c(&data[at + 8..end]) == crc {
            return Ok(true);
        }
    }
    Ok(false)
}

/// `recover: truncate`: cuts the log at `offset` of `path` and removes the later segments.
fn cut(
    storage: &dyn Storage,
    path: &Path,
    offset: u64,
    later: &[(u64, PathBuf)],
    report: &mut RecoveryReport,
    len: u64,
    reason: &str,
) -> Result<(), StorageError> {
    tracing::warn!(path = %path.display(), offset, %reason, "corrupt log record; truncating the log here as configured");
    storage.truncate(path, offset).ctx("truncate", path)?;
    report.truncated_bytes += len - offset;
    for (_, p) in later {
        report.truncated_bytes += storage.len(p).unwrap_or(0);
        storage.remove(p).ctx("remove", p)?;
    }
    Ok(())
}
