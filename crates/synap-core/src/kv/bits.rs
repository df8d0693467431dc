//! Bitmap commands on string values: SETBIT, GETBIT, BITCOUNT, BITPOS, BITOP. Bits are numbered from the
//! most significant bit of the first byte, as in Redis. SETBIT logs the one byte it changes; BITOP logs
//! its result as a whole value.

use bytes::Bytes;

use super::{Keyspace, NO_EXPIRE};
use crate::command::args::parse_i64;
use crate::command::{BitOp, Reply};
use crate::error::{CommandError, Result};
use crate::mutation::Mutation;
use crate::notify::Class;

/// The most source bytes one BITOP may combine (sources times the longest of them).
const MAX_BITOP_WORK: usize = 1 << 30;

fn bit_at(value: &[u8], offset: u64) -> bool {
    let byte = (offset / 8) as usize;
    byte < value.len() && value[byte] & (0x80 >> (offset % 8)) != 0
}

/// A BITCOUNT / BITPOS range: inclusive bit positions `[first, last]` over a value of `len` bytes, or
/// `None` when it is empty. `start`/`end` are in bytes, or bits when `bits`; negative count from the end.
fn bit_range(len: usize, start: i64, end: i64, bits: bool) -> Option<(u64, u64)> {
    let total = if bits { len as i64 * 8 } else { len as i64 };
    let norm = |x: i64| if x < 0 { (total + x).max(0) } else { x };
    let (start, end) = (norm(start), norm(end).min(total - 1));
    if start > end || total == 0 {
        return None;
    }
    Some(if bits { (start as u64, end as u64) } else { (start as u64 * 8, end as u64 * 8 + 7) })
}

/// BYTE or BIT (`true`), or `syntax error`.
fn unit(word: &[u8]) -> Result<bool> {
    if word.eq_ignore_ascii_case(b"bit") {
        Ok(true)
    } else if word.eq_ignore_ascii_case(b"byte") {
        Ok(false)
    } else {
        Err(CommandError::Syntax)
    }
}

fn int(arg: &[u8]) -> Result<i64> {
    parse_i64(arg).ok_or(CommandError::NotInteger)
}

impl Keyspace {
    pub(super) fn setbit(&self, key: &[u8], offset: u64, bit: bool, lsn: &mut u64, now: u64) -> Result<Reply> {
        self.check_key(key)?;
        let byte = offset / 8;
        if byte as usize >= self.config.max_value_bytes {
            return Err(CommandError::ValueTooLarge { limit: self.config.max_value_bytes });
        }
        let h = self.hash(key);
        let mut shard = self.lock(h);
        let pos = self.find_str(&mut shard, h, key, now)?;
        let value = pos.map(|p| shard.entry(p).value()).unwrap_or_default();
        let old = value.get(byte as usize).copied().unwrap_or(0);
        let mask = 0x80u8 >> (offset % 8);
        let new = if bit { old | mask } else { old & !mask };
        let m = Mutation::SetRange { key, offset: byte, data: &[new] };
        *lsn = self.commit_one(&mut shard, h, m, now, Some((Class::String, "setbit", key)));
        Ok(Reply::Int((old & mask != 0) as i64))
    }

    pub(super) fn getbit(&self, key: &[u8], offset: u64, now: u64) -> Result<Reply> {
        Ok(Reply::Int(self.with_str(key, now, |v| bit_at(v, offset))?.unwrap_or(false) as i64))
    }

    /// BITCOUNT: the key is looked up before its range is read (a missing key answers 0 whatever follows).
    pub(super) fn bitcount(&self, key: &[u8], range: &[Bytes], now: u64) -> Result<Reply> {
        let Some(len) = self.with_str(key, now, <[u8]>::len)? else { return Ok(Reply::Int(0)) };
        let (start, end, bits) = match range {
            [] => (0, -1, false),
            [s, e] => (int(s)?, int(e)?, false),
            [s, e, u] => (int(s)?, int(e)?, unit(u)?),
            _ => return Err(CommandError::Syntax),
        };
        if start < 0 && end < 0 && start > end {
            return Ok(Reply::Int(0));
        }
        let Some((first, last)) = bit_range(len, start, end, bits) else { return Ok(Reply::Int(0)) };
        // Counted in place; a value that changed length meanwhile is counted as far as it goes.
        let n = self.with_str(key, now, |v| count_bits(v, first, last))?.unwrap_or(0);
        Ok(Reply::Int(n as i64))
    }

    /// BITPOS: the first bit equal to `bit` in the range. A missing key is all zeros; without an explicit
    /// end, clear bits past the value count (the value is zero-padded to the right).
    pub(super) fn bitpos(&self, key: &[u8], bit: bool, range: &[Bytes], now: u64) -> Result<Reply> {
        let Some(len) = self.with_str(key, now, <[u8]>::len)? else {
            return Ok(Reply::Int(if bit { -1 } else { 0 }));
        };
        let (start, end, bits) = match range {
            [] => (0, None, false),
            [s] => (int(s)?, None, false),
            [s, e] => (int(s)?, Some(int(e)?), false),
            [s, e, u] => {
                let start = int(s)?;
                let bits = unit(u)?;
                (start, Some(int(e)?), bits)
            }
            _ => return Err(CommandError::Syntax),
        };
        let Some((first, last)) = bit_range(len, start, end.unwrap_or(-1), bits) else {
            return Ok(Reply::Int(-1));
        };
        if let Some(p) = self.with_str(key, now, |v| find_bit(v, first, last, bit))?.flatten() {
            return Ok(Reply::Int(p as i64));
        }
        Ok(Reply::Int(if bit || end.is_some() { -1 } else { len as i64 * 8 }))
    }

    /// BITOP: the result of `op` over the sources (missing ones are empty; shorter ones zero-padded) is
    /// stored at `dest`, without expiry; an empty result deletes `dest`.
    pub(super) fn bitop(&self, op: BitOp, dest: &[u8], keys: &[Bytes], lsn: &mut u64, now: u64) -> Result<Reply> {
        self.check_key(dest)?;
        let hd = self.hash(dest);
        let hashes: Vec<u64> = keys.iter().map(|k| self.hash(k)).collect();
        let mut locked = self.lock_many(hashes.iter().copied().chain([hd]));
        // Lazy expiry of every key first: a removal moves the shard's entries (and earlier positions).
        for (k, &h) in keys.iter().zip(&hashes).chain([(&Bytes::copy_from_slice(dest), &hd)]) {
            self.find_live(locked.get(self.shard_of(h)), h, k, now);
        }
        let mut positions = Vec::with_capacity(keys.len());
        for (k, &h) in keys.iter().zip(&hashes) {
            positions.push(self.find_str(locked.get(self.shard_of(h)), h, k, now)?);
        }
        // The sources are read in place; the work (sources times the longest) is bounded.
        let sources: Vec<&[u8]> = positions
            .iter()
            .zip(&hashes)
            .map(|(p, &h)| p.map(|p| locked.peek(self.shard_of(h)).entry(p).value()).unwrap_or_default())
            .collect();
        let len = sources.iter().map(|s| s.len()).max().unwrap_or(0);
        if len.saturating_mul(sources.len()) > MAX_BITOP_WORK {
            return Err(CommandError::Invalid(format!(
                "BITOP over {} sources of up to {len} bytes is more than {MAX_BITOP_WORK} bytes of work",
                sources.len()
            )));
        }
        let byte = |s: &[u8], i: usize| s.get(i).copied().unwrap_or(0);
        let result: Vec<u8> = (0..len)
            .map(|i| match op {
                BitOp::Not => !byte(sources[0], i),
                BitOp::And => sources.iter().fold(0xff, |acc, s| acc & byte(s, i)),
                BitOp::Or => sources.iter().fold(0, |acc, s| acc | byte(s, i)),
                BitOp::Xor => sources.iter().fold(0, |acc, s| acc ^ byte(s, i)),
            })
            .collect();
        drop(sources);
        if result.is_empty() {
            let exists = self.find_live(locked.get(self.shard_of(hd)), hd, dest, now).is_some();
            if exists {
                *lsn = self.commit(&mut locked, &[Mutation::Del { key: dest }], now, &[(Class::Generic, "del", dest)]);
            }
            return Ok(Reply::Int(0));
        }
        let set = Mutation::Set { key: dest, value: &result, expire_at: NO_EXPIRE };
        *lsn = self.commit(&mut locked, &[set], now, &[(Class::String, "set", dest)]);
        Ok(Reply::Int(len as i64))
    }
}

/// The first bit equal to `bit` among positions `first..=last` (bits past the value are 0), skipping
/// whole bytes that cannot hold it.
fn find_bit(value: &[u8], first: u64, last: u64, bit: bool) -> Option<u64> {
    let skip = if bit { 0x00 } else { 0xff };
    let mut i = first;
    while i <= last {
        let byte = (i / 8) as usize;
        if i.is_multiple_of(8) && i + 7 <= last && value.get(byte).copied().unwrap_or(0) == skip {
            i += 8;
            continue;
        }
        if bit_at(value, i) == bit {
            return Some(i);
        }
        i += 1;
    }
    None
}

/// Set bits among bit positions `first..=last` (as far as the value goes).
fn count_bits(value: &[u8], first: u64, last: u64) -> u64 {
    let last = last.min((value.len() as u64 * 8).saturating_sub(1));
    if value.is_empty() || first > last {
        return 0;
    }
    let (fb, lb) = ((first / 8) as usize, (last / 8) as usize);
    let mut n: u64 = value[fb..=lb].iter().map(|b| b.count_ones() as u64).sum();
    // Take off the bits of the edge bytes outside the range.
    let head = value[fb] & !(0xffu8 >> (first % 8));
    let tail = value[lb] & 0xffu8.checked_shr(last as u32 % 8 + 1).unwrap_or(0);
    n -= head.count_ones() as u64 + tail.count_ones() as u64;
    n
}
