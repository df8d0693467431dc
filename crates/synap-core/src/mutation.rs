//! Mutation records: the one way state changes.
//!
//! The engine turns every write command into one batch of physical mutations (the resulting value, never
//! "increment by one"), applies the batch to memory through [`crate::Engine::apply_batch`]'s applier, and
//! hands the same batch to the [`MutationLog`] (the WAL, later replication). Recovery and replicas call the
//! same applier on the decoded records, so there is no second way to change state.
//!
//! Because records are physical and expiry times absolute, replay is deterministic: a key that expired in
//! the original run is either overwritten by a later record or still carries its past expiry time and is
//! treated as absent. Every record names one key (or all of them, `FlushAll`) and sets its state without
//! reading another key, so replaying a suffix of the log over a snapshot taken shard by shard while writes
//! went on (a "fuzzy" snapshot) still ends in the right state: each key ends as its last record says.
//!
//! # Encoding (little endian; see `docs/format.md`)
//! ```text
//! batch    := count:u32 mutation*count
//! mutation := tag:u8 body
//!   1 Set        key:bytes value:bytes expire_at:u64   (0 = no expiry)
//!   2 Del        key:bytes
//!   3 SetExpire  key:bytes expire_at:u64               (0 = persist)
//!   (4 is reserved: an early logical Rename, replaced by Del + Set)
//!   5 FlushAll
//! bytes    := len:u32 data[len]
//! ```

use thiserror::Error;

use crate::error::CommandError;

/// One state change. Borrowed so that encoding into the WAL buffer and decoding from it copy nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mutation<'a> {
    Set { key: &'a [u8], value: &'a [u8], expire_at: u64 },
    Del { key: &'a [u8] },
    SetExpire { key: &'a [u8], expire_at: u64 },
    FlushAll,
}

const TAG_SET: u8 = 1;
const TAG_DEL: u8 = 2;
const TAG_SET_EXPIRE: u8 = 3;
const TAG_FLUSH_ALL: u8 = 5;

/// Where the engine sends mutation batches after applying them.
pub trait MutationLog: Send + Sync {
    /// Refuses with an error when the log cannot take writes (for example after an fsync failure); checked
    /// before a write command touches memory.
    fn check_writable(&self) -> Result<(), CommandError>;
    /// Appends one atomic batch and returns its log sequence number. Called with the locks of every key the
    /// batch touches held, so that the log order of writes to one key is their apply order.
    fn append(&self, batch: &[Mutation<'_>]) -> u64;
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("record truncated at byte {0}")]
    Truncated(usize),
    #[error("unknown mutation tag {tag} at byte {at}")]
    UnknownTag { tag: u8, at: usize },
    #[error("{0} trailing bytes after the last mutation")]
    Trailing(usize),
    #[error("mutation count {0} exceeds the record size")]
    BadCount(u32),
}

/// Appends the encoding of `batch` to `out`.
pub fn encode_batch(batch: &[Mutation<'_>], out: &mut Vec<u8>) {
    out.extend_from_slice(&(batch.len() as u32).to_le_bytes());
    for m in batch {
        encode(m, out);
    }
}

/// The encoded size of `batch`, without encoding it.
pub fn encoded_len(batch: &[Mutation<'_>]) -> usize {
    4 + batch
        .iter()
        .map(|m| {
            1 + match m {
                Mutation::Set { key, value, .. } => 4 + key.len() + 4 + value.len() + 8,
                Mutation::Del { key } => 4 + key.len(),
                Mutation::SetExpire { key, .. } => 4 + key.len() + 8,
                Mutation::FlushAll => 0,
            }
        })
        .sum::<usize>()
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    out.extend_from_slice(b);
}

fn encode(m: &Mutation<'_>, out: &mut Vec<u8>) {
    match m {
        Mutation::Set { key, value, expire_at } => {
            out.push(TAG_SET);
            put_bytes(out, key);
            put_bytes(out, value);
            out.extend_from_slice(&expire_at.to_le_bytes());
        }
        Mutation::Del { key } => {
            out.push(TAG_DEL);
            put_bytes(out, key);
        }
        Mutation::SetExpire { key, expire_at } => {
            out.push(TAG_SET_EXPIRE);
            put_bytes(out, key);
            out.extend_from_slice(&expire_at.to_le_bytes());
        }
        Mutation::FlushAll => out.push(TAG_FLUSH_ALL),
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len()).ok_or(DecodeError::Truncated(self.pos))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }
    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }
    fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = self.u32()? as usize;
        self.take(n)
    }
}

/// Decodes one batch that must fill `buf` exactly.
pub fn decode_batch(buf: &[u8]) -> Result<Vec<Mutation<'_>>, DecodeError> {
    let mut r = Reader { buf, pos: 0 };
    let count = r.u32()?;
    // Every mutation takes at least one byte: a count beyond the remaining bytes is corrupt, and checking
    // it first keeps the allocation bounded by the record size.
    if count as usize > buf.len() - 4 {
        return Err(DecodeError::BadCount(count));
    }
    let mut out = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let at = r.pos;
        let m = match r.u8()? {
            TAG_SET => Mutation::Set { key: r.bytes()?, value: r.bytes()?, expire_at: r.u64()? },
            TAG_DEL => Mutation::Del { key: r.bytes()? },
            TAG_SET_EXPIRE => Mutation::SetExpire { key: r.bytes()?, expire_at: r.u64()? },
            TAG_FLUSH_ALL => Mutation::FlushAll,
            tag => return Err(DecodeError::UnknownTag { tag, at }),
        };
        out.push(m);
    }
    if r.pos != buf.len() {
        return Err(DecodeError::Trailing(buf.len() - r.pos));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_every_variant() {
        let batch = vec![
            Mutation::Set { key: b"k", value: b"\x00\xffv", expire_at: 42 },
            Mutation::Del { key: b"" },
            Mutation::SetExpire { key: b"k", expire_at: 0 },
            Mutation::FlushAll,
        ];
        let mut buf = Vec::new();
        encode_batch(&batch, &mut buf);
        assert_eq!(buf.len(), encoded_len(&batch));
        assert_eq!(decode_batch(&buf).unwrap(), batch);
    }

    #[test]
    fn rejects_truncation_trailing_and_bad_tags() {
        let mut buf = Vec::new();
        encode_batch(&[Mutation::Set { key: b"key", value: b"value", expire_at: 1 }], &mut buf);
        for cut in 0..buf.len() {
            assert!(decode_batch(&buf[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = buf.clone();
        longer.push(0);
        assert_eq!(decode_batch(&longer), Err(DecodeError::Trailing(1)));
        let mut bad = buf.clone();
        bad[4] = 99;
        assert!(matches!(decode_batch(&bad), Err(DecodeError::UnknownTag { tag: 99, .. })));
        assert_eq!(decode_batch(&[255, 255, 255, 255]), Err(DecodeError::BadCount(u32::MAX)));
    }
}
