//! BITFIELD and BITFIELD_RO: signed and unsigned integers of 1 to 64 bits at any bit offset of a string
//! (most significant bit first), read, set and incremented with Redis's overflow rules (WRAP, SAT,
//! FAIL). The bytes the writes span are changed in a copy of just that window, and logged as one
//! SetRange; the value grows to the farthest byte written, as in Redis.

use super::{Keyspace, NO_EXPIRE};
use crate::command::args::parse_i64;
use crate::command::{BitFieldOp, Overflow, Reply};
use crate::error::{CommandError, Result};
use crate::mutation::Mutation;
use crate::notify::Class;

/// Reads `bits` bits at bit `offset` through `byte` (most significant first).
fn get_bits(byte: &impl Fn(usize) -> u8, offset: u64, bits: u32) -> u64 {
    let mut v = 0u64;
    for i in 0..bits as u64 {
        let o = offset + i;
        let bit = (byte((o >> 3) as usize) >> (7 - (o & 7))) & 1;
        v = (v << 1) | bit as u64;
    }
    v
}

fn set_bits(window: &mut [u8], offset: u64, bits: u32, value: u64) {
    for i in 0..bits as u64 {
        let o = offset + i;
        let bit = (value >> (bits as u64 - 1 - i)) & 1;
        let b = &mut window[(o >> 3) as usize];
        let mask = 0x80u8 >> (o & 7);
        *b = if bit == 1 { *b | mask } else { *b & !mask };
    }
}

fn signed(raw: u64, bits: u32) -> i64 {
    if bits < 64 && raw & (1 << (bits - 1)) != 0 { (raw | (u64::MAX << bits)) as i64 } else { raw as i64 }
}

/// Redis's unsigned overflow check of `value + incr` in `bits` bits: (overflowed, the value to store
/// under WRAP or SAT).
fn unsigned_overflow(value: u64, incr: i64, bits: u32, ow: Overflow) -> (bool, u64) {
    let max = if bits == 64 { u64::MAX } else { (1u64 << bits) - 1 };
    let maxincr = max.wrapping_sub(value) as i64;
    let minincr = value.wrapping_neg() as i64;
    let wrap = || value.wrapping_add(incr as u64) & !(u64::MAX.checked_shl(bits).unwrap_or(0));
    if value > max || (incr > 0 && incr > maxincr) {
        return (true, if ow == Overflow::Wrap { wrap() } else { max });
    }
    if incr < 0 && incr < minincr {
        return (true, if ow == Overflow::Wrap { wrap() } else { 0 });
    }
    (false, value.wrapping_add(incr as u64))
}

/// Redis's signed overflow check of `value + incr` in `bits` bits.
fn signed_overflow(value: i64, incr: i64, bits: u32, ow: Overflow) -> (bool, i64) {
    let max = if bits == 64 { i64::MAX } else { (1i64 << (bits - 1)) - 1 };
    let min = -max - 1;
    let maxincr = (max as u64).wrapping_sub(value as u64) as i64;
    let minincr = min.wrapping_sub(value);
    let wrap = || {
        let mut c = (value as u64).wrapping_add(incr as u64);
        if bits < 64 {
            let mask = u64::MAX << bits;
            c = if c & (1 << (bits - 1)) != 0 { c | mask } else { c & !mask };
        }
        c as i64
    };
    if value > max || (bits != 64 && incr > maxincr) || (value >= 0 && incr > 0 && incr > maxincr) {
        return (true, if ow == Overflow::Wrap { wrap() } else { max });
    }
    if value < min || (bits != 64 && incr < minincr) || (value < 0 && incr < 0 && incr < minincr) {
        return (true, if ow == Overflow::Wrap { wrap() } else { min });
    }
    (false, value.wrapping_add(incr))
}

impl Keyspace {
    pub(super) fn bitfield(
        &self,
        key: &[u8],
        ops: &[BitFieldOp],
        readonly_cmd: bool,
        lsn: &mut u64,
        now: u64,
    ) -> Result<Reply> {
        // The farthest and nearest bits written.
        let writes = ops.iter().filter(|op| !matches!(op, BitFieldOp::Get { .. }));
        let span = writes.fold(None, |acc: Option<(u64, u64)>, op| {
            let (offset, bits) = op.place();
            let (lo, hi) = (offset, offset + bits as u64 - 1);
            Some(acc.map_or((lo, hi), |(a, b)| (a.min(lo), b.max(hi))))
        });
        if span.is_some() && readonly_cmd {
            return Err(CommandError::Invalid("BITFIELD_RO only supports the GET subcommand".into()));
        }
        let h = self.hash(key);
        let mut shard = self.lock(h);
        let pos = self.find_str(&mut shard, h, key, now)?;
        let old: &[u8] = pos.map(|p| shard.entry(p).value()).unwrap_or_default();
        // The window of bytes the writes span, copied (zero-padded past the value).
        let (lo, hi) = span.map_or((0, 0), |(a, b)| ((a >> 3) as usize, (b >> 3) as usize));
        if span.is_some() && hi >= self.config.max_value_bytes {
            return Err(CommandError::ValueTooLarge { limit: self.config.max_value_bytes });
        }
        let mut window: Vec<u8> = match span {
            Some(_) => (lo..=hi).map(|i| old.get(i).copied().unwrap_or(0)).collect(),
            None => Vec::new(),
        };
        let mut replies = Vec::with_capacity(ops.len());
        let mut changes = 0;
        for op in ops {
            let read = |w: &[u8], i: usize| {
                if span.is_some() && (lo..=hi).contains(&i) { w[i - lo] } else { old.get(i).copied().unwrap_or(0) }
            };
            match *op {
                BitFieldOp::Get { signed: s, bits, offset } => {
                    let raw = get_bits(&|i| read(&window, i), offset, bits);
                    replies.push(Reply::Int(if s { signed(raw, bits) } else { raw as i64 }));
                }
                BitFieldOp::Set { signed: s, bits, offset, value, overflow }
                | BitFieldOp::IncrBy { signed: s, bits, offset, value, overflow } => {
                    let incr = matches!(op, BitFieldOp::IncrBy { .. });
                    let raw = get_bits(&|i| read(&window, i), offset, bits);
                    let (failed, new_raw, reply) = if s {
                        let oldv = signed(raw, bits);
                        let (over, v) = if incr {
                            signed_overflow(oldv, value, bits, overflow)
                        } else {
                            let (over, w) = signed_overflow(value, 0, bits, overflow);
                            (over, if over { w } else { value })
                        };
                        (over && overflow == Overflow::Fail, v as u64, if incr { v } else { oldv })
                    } else {
                        let (over, v) = if incr {
                            unsigned_overflow(raw, value, bits, overflow)
                        } else {
                            let (over, w) = unsigned_overflow(value as u64, 0, bits, overflow);
                            (over, if over { w } else { value as u64 })
                        };
                        (over && overflow == Overflow::Fail, v, if incr { v as i64 } else { raw as i64 })
                    };
                    if failed {
                        replies.push(Reply::Nil);
                        continue;
                    }
                    replies.push(Reply::Int(reply));
                    let mask = if bits == 64 { u64::MAX } else { (1u64 << bits) - 1 };
                    set_bits(&mut window, offset - lo as u64 * 8, bits, new_raw & mask);
                    if pos.is_none() || hi >= old.len() || raw != new_raw & mask {
                        changes += 1;
                    }
                }
            }
        }
        if span.is_none() {
            return Ok(Reply::Array(replies));
        }
        // The record: a missing key is created whole; otherwise the bytes that differ, through the new end
        // when the value grew.
        let event = (changes > 0).then_some((Class::String, "setbit", key));
        let differs = |i: usize| lo + i >= old.len() || window[i] != old[lo + i];
        let range = (0..window.len()).find(|&i| differs(i)).zip((0..window.len()).rev().find(|&i| differs(i)));
        if pos.is_none() {
            let mut value = vec![0u8; hi + 1];
            value[lo..].copy_from_slice(&window);
            let m = Mutation::Set { key, value: &value, expire_at: NO_EXPIRE };
            *lsn = self.commit_one(&mut shard, h, m, now, event);
        } else if let Some((f, l)) = range {
            let data = window[f..=l].to_vec();
            let m = Mutation::SetRange { key, offset: (lo + f) as u64, data: &data };
            *lsn = self.commit_one(&mut shard, h, m, now, event);
        }
        Ok(Reply::Array(replies))
    }
}

/// `#N` offsets count in units of the field's width.
pub(crate) fn parse_offset(arg: &[u8], bits: u32) -> Option<u64> {
    let n = match arg.strip_prefix(b"#") {
        Some(rest) => parse_i64(rest)?.wrapping_mul(bits as i64),
        None => parse_i64(arg)?,
    };
    (n >= 0 && (n >> 3) < 512 << 20).then_some(n as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overflow_rules_match_redis() {
        // BITFIELD k OVERFLOW ... INCRBY u2 100 1 from 3, and i8 from 120 by 10 (Redis's documented
        // examples).
        assert_eq!(unsigned_overflow(3, 1, 2, Overflow::Wrap), (true, 0));
        assert_eq!(unsigned_overflow(3, 1, 2, Overflow::Sat), (true, 3));
        assert_eq!(signed_overflow(120, 10, 8, Overflow::Wrap), (true, -126));
        assert_eq!(signed_overflow(120, 10, 8, Overflow::Sat), (true, 127));
        assert_eq!(signed_overflow(-128, -1, 8, Overflow::Sat), (true, -128));
        assert_eq!(signed_overflow(i64::MAX, 1, 64, Overflow::Wrap), (true, i64::MIN));
        assert_eq!(unsigned_overflow(-1i64 as u64, 0, 8, Overflow::Wrap), (true, 255));
        assert_eq!(signed_overflow(5, 2, 8, Overflow::Wrap), (false, 7));
    }

    #[test]
    fn bits_read_and_write_most_significant_first() {
        let mut w = vec![0u8; 2];
        set_bits(&mut w, 4, 8, 0xab);
        assert_eq!(w, [0x0a, 0xb0]);
        assert_eq!(get_bits(&|i| w[i], 4, 8), 0xab);
        assert_eq!(signed(0xab, 8), -85);
        assert_eq!(parse_offset(b"#3", 8), Some(24));
        assert_eq!(parse_offset(b"-1", 8), None);
    }
}
