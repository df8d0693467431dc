//! HyperLogLog: PFADD, PFCOUNT, PFMERGE and PFDEBUG over string values in Redis's representation, byte
//! for byte, so that GET, DUMP-like copies and replicas see the same bytes Redis would hold.
//!
//! The value is a 16-byte header (`HYLL`, the encoding, 3 unused bytes, the cached cardinality as 8
//! little-endian bytes whose top bit marks it stale) and 16384 registers of 6 bits, either dense
//! (12288 bytes, register `i` at bit `6 * i`, least significant bits first) or sparse: a run-length
//! code of ZERO (`00xxxxxx`, 1-64 empty registers), XZERO (`01xxxxxx yyyyyyyy`, 1-16384 empty
//! registers) and VAL (`1vvvvvxx`, 1-4 registers of value 1-32) opcodes. A sparse value is made
//! dense when a register exceeds 32 or the value would pass 3000 bytes (`hll-sparse-max-bytes`).
//! Elements hash with MurmurHash64A (seed `0xadc83b19`); the count is Ertl's estimator (arXiv
//! 1702.01284), as Redis 5 and later compute it.
//!
//! Every function here takes arbitrary bytes: a value that is not a well-formed HLL is an error,
//! never a panic.

use bytes::Bytes;

use super::{Keyspace, NO_EXPIRE, Shard};
use crate::command::{PfDebug, Reply};
use crate::error::{CommandError, Result};
use crate::mutation::Mutation;
use crate::notify::Class;

/// Registers (2^14).
pub(crate) const REGISTERS: usize = 1 << P;
const P: u32 = 14;
/// Hash bits left for the run of zeros.
const Q: usize = 64 - P as usize;
const HDR: usize = 16;
const DENSE_LEN: usize = HDR + (REGISTERS * 6).div_ceil(8);
const DENSE: u8 = 0;
const SPARSE: u8 = 1;
const VAL_MAX_VALUE: u8 = 32;
const VAL_MAX_LEN: usize = 4;
const ZERO_MAX_LEN: usize = 64;
const XZERO_MAX_LEN: usize = 16384;
/// Redis's `hll-sparse-max-bytes` default: past it a sparse value is made dense.
pub(crate) const SPARSE_MAX_BYTES: usize = 3000;
const ALPHA_INF: f64 = 0.721_347_520_444_481_7;

/// Why a value cannot be used as a HyperLogLog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HllError {
    /// Not an HLL at all (wrong magic, encoding or length): Redis answers WRONGTYPE.
    NotHll,
    /// An HLL header over a register code that does not add up: Redis answers INVALIDOBJ.
    Corrupt,
}

/// Checks the header as Redis does before any HLL command uses a value.
pub(crate) fn check(v: &[u8]) -> Result<(), HllError> {
    if v.len() < HDR || &v[..4] != b"HYLL" || v[4] > SPARSE || (v[4] == DENSE && v.len() != DENSE_LEN) {
        return Err(HllError::NotHll);
    }
    Ok(())
}

pub(crate) fn is_dense(v: &[u8]) -> bool {
    v[4] == DENSE
}

/// An empty HLL: sparse, one XZERO opcode covering every register, cached cardinality 0.
pub(crate) fn new_sparse() -> Vec<u8> {
    let mut v = vec![0u8; HDR];
    v[..4].copy_from_slice(b"HYLL");
    v[4] = SPARSE;
    push_zeros(&mut v, REGISTERS);
    v
}

/// MurmurHash64A, reading 8-byte words little-endian (as Redis does on every platform).
fn murmur64a(data: &[u8], seed: u64) -> u64 {
    const M: u64 = 0xc6a4_a793_5bd1_e995;
    const R: u32 = 47;
    let mut h = seed ^ (data.len() as u64).wrapping_mul(M);
    let mut words = data.chunks_exact(8);
    for w in &mut words {
        let mut k = u64::from_le_bytes(w.try_into().expect("8 bytes"));
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h ^= k;
        h = h.wrapping_mul(M);
    }
    let tail = words.remainder();
    if !tail.is_empty() {
        for (i, &b) in tail.iter().enumerate() {
            h ^= (b as u64) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> R;
    h = h.wrapping_mul(M);
    h ^= h >> R;
    h
}

/// The register an element falls in and the length of its run of zeros plus one (1..=Q+1).
fn position(elem: &[u8]) -> (usize, u8) {
    let hash = murmur64a(elem, 0xadc8_3b19);
    let index = (hash & (REGISTERS as u64 - 1)) as usize;
    let rest = (hash >> P) | (1u64 << Q);
    (index, rest.trailing_zeros() as u8 + 1)
}

fn dense_get(regs: &[u8], i: usize) -> u8 {
    let bit = i * 6;
    let (b, fb) = (bit / 8, bit % 8);
    let lo = regs[b] as u16 >> fb;
    let hi = (regs.get(b + 1).copied().unwrap_or(0) as u16) << (8 - fb);
    ((lo | hi) & 63) as u8
}

fn dense_set(regs: &mut [u8], i: usize, v: u8) {
    let bit = i * 6;
    let (b, fb) = (bit / 8, bit % 8);
    let word = (v as u16 & 63) << fb;
    regs[b] = (regs[b] & !((63u16 << fb) as u8)) | word as u8;
    if let Some(next) = regs.get_mut(b + 1) {
        *next = (*next & !((63u16 << fb >> 8) as u8)) | (word >> 8) as u8;
    }
}

// Sparse opcodes.
fn is_zero(op: u8) -> bool {
    op & 0xc0 == 0
}
fn is_xzero(op: u8) -> bool {
    op & 0xc0 == 0x40
}
fn is_val(op: u8) -> bool {
    op & 0x80 != 0
}
fn val_value(op: u8) -> u8 {
    ((op >> 2) & 0x1f) + 1
}
fn val_len(op: u8) -> usize {
    (op & 3) as usize + 1
}
fn val_op(value: u8, len: usize) -> u8 {
    0x80 | ((value - 1) << 2) | (len - 1) as u8
}

/// One opcode at `p`: (registers covered, opcode bytes); `None` for an XZERO cut off by the end.
fn opcode(v: &[u8], p: usize) -> Option<(usize, usize)> {
    let op = v[p];
    if is_zero(op) {
        Some(((op & 0x3f) as usize + 1, 1))
    } else if is_val(op) {
        Some((val_len(op), 1))
    } else {
        let low = *v.get(p + 1)?;
        Some(((((op & 0x3f) as usize) << 8 | low as usize) + 1, 2))
    }
}

/// Appends the shortest code for `n` empty registers (XZERO past 64).
fn push_zeros(out: &mut Vec<u8>, mut n: usize) {
    while n > 0 {
        let run = n.min(XZERO_MAX_LEN);
        if run > ZERO_MAX_LEN {
            out.extend([0x40 | ((run - 1) >> 8) as u8, ((run - 1) & 0xff) as u8]);
        } else {
            out.push((run - 1) as u8);
        }
        n -= run;
    }
}

/// Adds one element; `Ok(true)` when a register grew.
pub(crate) fn add(v: &mut Vec<u8>, elem: &[u8], sparse_max: usize) -> Result<bool, HllError> {
    let (index, count) = position(elem);
    set(v, index, count, sparse_max)
}

/// Raises register `index` to `count` (never lowers it).
fn set(v: &mut Vec<u8>, index: usize, count: u8, sparse_max: usize) -> Result<bool, HllError> {
    if is_dense(v) {
        let regs = &mut v[HDR..];
        if dense_get(regs, index) < count {
            dense_set(regs, index, count);
            return Ok(true);
        }
        return Ok(false);
    }
    sparse_set(v, index, count, sparse_max)
}

fn sparse_set(v: &mut Vec<u8>, index: usize, count: u8, sparse_max: usize) -> Result<bool, HllError> {
    if count > VAL_MAX_VALUE {
        return promote(v, index, count);
    }
    // Find the opcode covering the register, and the one before it (where merging starts).
    let (mut p, mut first, mut prev, mut span, mut oplen) = (HDR, 0usize, None, 0usize, 0usize);
    while p < v.len() {
        (span, oplen) = opcode(v, p).ok_or(HllError::Corrupt)?;
        if index < first + span {
            break;
        }
        prev = Some(p);
        p += oplen;
        first += span;
    }
    if span == 0 || p >= v.len() {
        return Err(HllError::Corrupt);
    }
    let op = v[p];
    if is_val(op) {
        if val_value(op) >= count {
            return Ok(false);
        }
        if span == 1 {
            v[p] = val_op(count, 1);
            merge_vals(v, prev);
            invalidate(v);
            return Ok(true);
        }
    } else if is_zero(op) && span == 1 {
        v[p] = val_op(count, 1);
        merge_vals(v, prev);
        invalidate(v);
        return Ok(true);
    }
    // Split the opcode around the register: at most XZERO VAL XZERO (5 bytes).
    let last = first + span - 1;
    let mut seq = Vec::with_capacity(5);
    if is_val(op) {
        let cur = val_value(op);
        if index != first {
            seq.push(val_op(cur, index - first));
        }
        seq.push(val_op(count, 1));
        if index != last {
            seq.push(val_op(cur, last - index));
        }
    } else {
        push_zeros(&mut seq, index - first);
        seq.push(val_op(count, 1));
        push_zeros(&mut seq, last - index);
    }
    if seq.len() > oplen && v.len() + seq.len() - oplen > sparse_max {
        return promote(v, index, count);
    }
    v.splice(p..p + oplen, seq);
    merge_vals(v, prev);
    // Like Redis, a sparse change marks the cached cardinality stale at once.
    invalidate(v);
    Ok(true)
}

/// Merges adjacent VAL opcodes of one value (up to 4 registers), scanning up to 5 opcodes from `from`,
/// as Redis does after each change (so the code stays the same as Redis's, byte for byte).
fn merge_vals(v: &mut Vec<u8>, from: Option<usize>) {
    let mut p = from.unwrap_or(HDR);
    let mut scan = 5;
    while p < v.len() && scan > 0 {
        scan -= 1;
        let op = v[p];
        if is_xzero(op) {
            p += 2;
            continue;
        }
        if is_zero(op) {
            p += 1;
            continue;
        }
        if let Some(&next) = v.get(p + 1)
            && is_val(next)
            && val_value(op) == val_value(next)
        {
            let len = val_len(op) + val_len(next);
            if len <= VAL_MAX_LEN {
                v[p + 1] = val_op(val_value(op), len);
                v.remove(p);
                continue;
            }
        }
        p += 1;
    }
}

fn promote(v: &mut Vec<u8>, index: usize, count: u8) -> Result<bool, HllError> {
    to_dense(v)?;
    dense_set(&mut v[HDR..], index, count);
    Ok(true)
}

/// Makes a sparse value dense (the header, cached cardinality included, is kept); `Ok(false)` when it
/// already was.
pub(crate) fn to_dense(v: &mut Vec<u8>) -> Result<bool, HllError> {
    if is_dense(v) {
        return Ok(false);
    }
    let mut dense = vec![0u8; DENSE_LEN];
    dense[..HDR].copy_from_slice(&v[..HDR]);
    dense[4] = DENSE;
    let mut idx = 0;
    walk_sparse(v, |first, len, value| {
        for i in first..first + len {
            dense_set(&mut dense[HDR..], i, value);
        }
        idx = first + len;
    })?;
    *v = dense;
    Ok(true)
}

/// Calls `f(first, len, value)` for every VAL run of a sparse value; `Corrupt` unless the code covers
/// exactly the 16384 registers.
fn walk_sparse(v: &[u8], mut f: impl FnMut(usize, usize, u8)) -> Result<(), HllError> {
    let (mut p, mut idx) = (HDR, 0usize);
    while p < v.len() {
        let (len, oplen) = opcode(v, p).ok_or(HllError::Corrupt)?;
        if is_val(v[p]) {
            if idx + len > REGISTERS {
                return Err(HllError::Corrupt);
            }
            f(idx, len, val_value(v[p]));
        }
        idx += len;
        p += oplen;
    }
    if idx != REGISTERS {
        return Err(HllError::Corrupt);
    }
    Ok(())
}

/// Raises `max[i]` to the value's register `i`, for every register.
pub(crate) fn merge_into(max: &mut [u8], v: &[u8]) -> Result<(), HllError> {
    if is_dense(v) {
        for (i, m) in max.iter_mut().enumerate().take(REGISTERS) {
            *m = (*m).max(dense_get(&v[HDR..], i));
        }
        return Ok(());
    }
    walk_sparse(v, |first, len, value| {
        for m in &mut max[first..first + len] {
            *m = (*m).max(value);
        }
    })
}

/// The cardinality of one value, from its registers (not the cache).
pub(crate) fn count(v: &[u8]) -> Result<u64, HllError> {
    let mut histo = [0u64; 64];
    if is_dense(v) {
        for i in 0..REGISTERS {
            histo[dense_get(&v[HDR..], i) as usize] += 1;
        }
    } else {
        // Redis counts whatever the code covers and then checks the total.
        let (mut p, mut idx) = (HDR, 0usize);
        while p < v.len() {
            let (len, oplen) = opcode(v, p).ok_or(HllError::Corrupt)?;
            let value = if is_val(v[p]) { val_value(v[p]) } else { 0 };
            histo[value as usize] += len as u64;
            idx += len;
            p += oplen;
        }
        if idx != REGISTERS {
            return Err(HllError::Corrupt);
        }
    }
    Ok(estimate(&histo))
}

/// PFSELFTEST: Redis's two self-tests. Registers set to random values in the dense form read back as
/// set, without touching their neighbours (`cycles` rounds); and a sparse and a dense HLL fed the same
/// `up_to` unique elements stay sparse while small, agree on the count, and stay within six standard
/// errors of the truth at every power of ten.
pub(crate) fn self_test(cycles: usize, up_to: u64) -> std::result::Result<(), String> {
    use rand::Rng;
    let mut rng = rand::rng();
    let mut regs = vec![0u8; DENSE_LEN - HDR];
    let mut bytes = vec![0u8; REGISTERS];
    for _ in 0..cycles {
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = rng.random_range(0..64);
            dense_set(&mut regs, i, *b);
        }
        for (i, &want) in bytes.iter().enumerate() {
            let got = dense_get(&regs, i);
            if got != want {
                return Err(format!("TESTFAILED Register error, counter {i} wanted {want} got {got}"));
            }
        }
    }
    let mut dense = new_sparse();
    to_dense(&mut dense).map_err(|_| "TESTFAILED cannot make a dense value".to_string())?;
    let mut sparse = new_sparse();
    let relerr = 1.04 / (REGISTERS as f64).sqrt();
    let seed: u64 = rng.random();
    let mut checkpoint = 1u64;
    for j in 1..=up_to {
        let ele = (j ^ seed).to_le_bytes();
        let failed = |_| "TESTFAILED an add failed".to_string();
        add(&mut dense, &ele, SPARSE_MAX_BYTES).map_err(failed)?;
        add(&mut sparse, &ele, SPARSE_MAX_BYTES).map_err(failed)?;
        if j != checkpoint {
            continue;
        }
        if j < (SPARSE_MAX_BYTES / 2) as u64 && is_dense(&sparse) {
            return Err("TESTFAILED sparse encoding not used".into());
        }
        let card = count(&dense).map_err(|_| "TESTFAILED dense count failed".to_string())?;
        if count(&sparse).ok() != Some(card) {
            return Err("TESTFAILED dense/sparse disagree".into());
        }
        // Cardinality 10 sometimes collides (Redis allows 1 there too).
        let maxerr = if j == 10 { 1 } else { (relerr * 6.0 * checkpoint as f64).ceil() as u64 };
        let abserr = checkpoint.abs_diff(card);
        if abserr > maxerr {
            return Err(format!("TESTFAILED Too big error. card:{checkpoint} abserr:{abserr}"));
        }
        checkpoint *= 10;
    }
    Ok(())
}

/// The cardinality of plain 8-bit registers (PFCOUNT over several keys).
pub(crate) fn count_registers(regs: &[u8]) -> u64 {
    let mut histo = [0u64; 64];
    for &r in regs {
        histo[(r & 63) as usize] += 1;
    }
    estimate(&histo)
}

/// Ertl's improved raw estimator from the register histogram.
fn estimate(histo: &[u64; 64]) -> u64 {
    let m = REGISTERS as f64;
    let mut z = m * tau((m - histo[Q + 1] as f64) / m);
    for j in (1..=Q).rev() {
        z += histo[j] as f64;
        z *= 0.5;
    }
    z += m * sigma(histo[0] as f64 / m);
    (ALPHA_INF * m * m / z).round() as u64
}

fn sigma(mut x: f64) -> f64 {
    if x == 1.0 {
        return f64::INFINITY;
    }
    let (mut y, mut z) = (1.0, x);
    loop {
        x *= x;
        let before = z;
        z += x * y;
        y += y;
        if z == before {
            return z;
        }
    }
}

fn tau(mut x: f64) -> f64 {
    if x == 0.0 || x == 1.0 {
        return 0.0;
    }
    let (mut y, mut z) = (1.0, 1.0 - x);
    loop {
        x = x.sqrt();
        let before = z;
        y *= 0.5;
        z -= (1.0 - x) * (1.0 - x) * y;
        if z == before {
            return z / 3.0;
        }
    }
}

/// The cached cardinality, when it is current.
pub(crate) fn cached(v: &[u8]) -> Option<u64> {
    (v[15] & 0x80 == 0).then(|| u64::from_le_bytes(v[8..16].try_into().expect("8 bytes")))
}

pub(crate) fn invalidate(v: &mut [u8]) {
    v[15] |= 0x80;
}

/// PFDEBUG GETREG: every register (the value is made dense first, as Redis does).
pub(crate) fn registers(v: &[u8]) -> Vec<u8> {
    (0..REGISTERS).map(|i| dense_get(&v[HDR..], i)).collect()
}

/// PFDEBUG DECODE: the sparse code as text (`z:N`, `Z:N`, `v:value,len`).
pub(crate) fn decode(v: &[u8]) -> Result<String, HllError> {
    use std::fmt::Write as _;
    // Built in one string, as Redis prints it (a damaged code past the registers included).
    let mut out = String::new();
    let mut p = HDR;
    while p < v.len() {
        let (len, oplen) = opcode(v, p).ok_or(HllError::Corrupt)?;
        let op = v[p];
        if !out.is_empty() {
            out.push(' ');
        }
        let _ = if is_zero(op) {
            write!(out, "z:{len}")
        } else if is_xzero(op) {
            write!(out, "Z:{len}")
        } else {
            write!(out, "v:{},{len}", val_value(op))
        };
        p += oplen;
    }
    Ok(out)
}

/// The most bytes DECODE's text takes per byte of code (`v:32,4 ` for a one-byte opcode).
pub(crate) const DECODE_BYTES_PER_BYTE: usize = 7;

/// The record of `new` replacing `old` (its bytes and expiry): only the bytes that changed when the value
/// did not shrink (the common case: a register or two), else the whole value with its expiry.
fn change<'a>(key: &'a [u8], old: Option<&'a (Vec<u8>, u64)>, new: &'a [u8]) -> Option<Mutation<'a>> {
    Some(match old {
        Some((old, _)) if new.len() >= old.len() => {
            let first = new.iter().zip(old).position(|(a, b)| a != b).unwrap_or(old.len());
            let last = if new.len() > old.len() {
                new.len()
            } else {
                new.iter().zip(old).rposition(|(a, b)| a != b).map_or(first, |i| i + 1)
            };
            if first >= last {
                return None;
            }
            Mutation::SetRange { key, offset: first as u64, data: &new[first..last] }
        }
        Some((_, expire_at)) => Mutation::Set { key, value: new, expire_at: *expire_at },
        None => Mutation::Set { key, value: new, expire_at: NO_EXPIRE },
    })
}

fn hll_error(e: HllError) -> CommandError {
    match e {
        HllError::NotHll => CommandError::Raw("WRONGTYPE Key is not a valid HyperLogLog string value.".into()),
        HllError::Corrupt => CommandError::Raw("INVALIDOBJ Corrupted HLL object detected".into()),
    }
}

impl Keyspace {
    /// The value at `key` checked as an HLL, copied, with its expiry (`None`: no such key).
    fn hll_at(&self, shard: &mut Shard, h: u64, key: &[u8], now: u64) -> Result<Option<(Vec<u8>, u64)>> {
        let Some(pos) = self.find_str(shard, h, key, now)? else { return Ok(None) };
        let e = shard.entry(pos);
        check(e.value()).map_err(hll_error)?;
        Ok(Some((e.value().to_vec(), e.expire_at)))
    }

    /// Logs `new` in place of `old` at `key` (in `shard`, hash `h`), raising `event` (none when nothing
    /// changed).
    fn store_hll(
        &self,
        (shard, h): (&mut Shard, u64),
        key: &[u8],
        old: Option<&(Vec<u8>, u64)>,
        new: &[u8],
        now: u64,
        event: Option<&'static str>,
    ) -> u64 {
        match change(key, old, new) {
            Some(m) => self.commit_one(shard, h, m, now, event.map(|name| (Class::String, name, key))),
            None => 0,
        }
    }

    pub(super) fn pfadd(&self, key: &[u8], elems: &[Bytes], lsn: &mut u64, now: u64) -> Result<Reply> {
        self.check_key(key)?;
        let h = self.hash(key);
        let mut shard = self.lock(h);
        let old = self.hll_at(&mut shard, h, key, now)?;
        let mut updated = old.is_none();
        let mut v = old.as_ref().map(|(v, _)| v.clone()).unwrap_or_else(new_sparse);
        for e in elems {
            match add(&mut v, e, SPARSE_MAX_BYTES) {
                Ok(grew) => updated |= grew,
                Err(err) => {
                    // Redis keeps the registers set before the damaged part of the code was reached
                    // (without a notification or a new cache flag); so does Synap, logged.
                    *lsn = self.store_hll((&mut shard, h), key, old.as_ref(), &v, now, None);
                    return Err(hll_error(err));
                }
            }
        }
        if updated {
            invalidate(&mut v);
            *lsn = self.store_hll((&mut shard, h), key, old.as_ref(), &v, now, Some("pfadd"));
        }
        Ok(Reply::Int(updated as i64))
    }

    /// PFCOUNT: one key answers from its cache, refreshing it (a logged change, as in Redis, where
    /// PFCOUNT propagates the refreshed value); several keys are counted together, nothing changed.
    pub(super) fn pfcount(&self, keys: &[Bytes], lsn: &mut u64, now: u64) -> Result<Reply> {
        if let [key] = keys {
            let h = self.hash(key);
            let mut shard = self.lock(h);
            let Some(old) = self.hll_at(&mut shard, h, key, now)? else { return Ok(Reply::Int(0)) };
            if let Some(n) = cached(&old.0) {
                return Ok(Reply::Int(n as i64));
            }
            let n = count(&old.0).map_err(hll_error)?;
            if !self.reclaims_expired() {
                // The log takes no writes (or this keyspace follows another's): the count is not cached.
                return Ok(Reply::Int(n as i64));
            }
            let mut v = old.0.clone();
            v[8..16].copy_from_slice(&n.to_le_bytes());
            *lsn = self.store_hll((&mut shard, h), key, Some(&old), &v, now, None);
            return Ok(Reply::Int(n as i64));
        }
        let mut max = vec![0u8; REGISTERS];
        self.merge_keys(keys, &mut max, now)?;
        Ok(Reply::Int(count_registers(&max) as i64))
    }

    /// Registers maxed over `keys` (missing ones are empty); whether any was dense.
    fn merge_keys(&self, keys: &[Bytes], max: &mut [u8], now: u64) -> Result<bool> {
        let hashes: Vec<u64> = keys.iter().map(|k| self.hash(k)).collect();
        let mut locked = self.lock_many(hashes.iter().copied());
        let mut dense = false;
        for (k, &h) in keys.iter().zip(&hashes) {
            let shard = locked.get(self.shard_of(h));
            let Some(pos) = self.find_str(shard, h, k, now)? else { continue };
            let v = shard.entry(pos).value();
            check(v).map_err(hll_error)?;
            dense |= is_dense(v);
            merge_into(max, v).map_err(hll_error)?;
        }
        Ok(dense)
    }

    /// PFMERGE: the destination (itself one of the sources) takes every source's registers; it is made
    /// dense when a source was.
    pub(super) fn pfmerge(&self, dest: &[u8], sources: &[Bytes], lsn: &mut u64, now: u64) -> Result<Reply> {
        self.check_key(dest)?;
        let mut all = Vec::with_capacity(sources.len() + 1);
        all.push(Bytes::copy_from_slice(dest));
        all.extend_from_slice(sources);
        let mut max = vec![0u8; REGISTERS];
        // The sources are read, and the destination written, under one lock of all their shards.
        let hashes: Vec<u64> = all.iter().map(|k| self.hash(k)).collect();
        let mut locked = self.lock_many(hashes.iter().copied());
        for (k, &h) in all.iter().zip(&hashes) {
            self.find_live(locked.get(self.shard_of(h)), h, k, now);
        }
        let mut dense = false;
        for (k, &h) in all.iter().zip(&hashes) {
            let shard = locked.get(self.shard_of(h));
            let Some(pos) = self.find_str(shard, h, k, now)? else { continue };
            let v = shard.entry(pos).value();
            check(v).map_err(hll_error)?;
            dense |= is_dense(v);
            merge_into(&mut max, v).map_err(hll_error)?;
        }
        let hd = hashes[0];
        let shard = locked.get(self.shard_of(hd));
        let old = self.hll_at(shard, hd, dest, now)?;
        let mut v = old.as_ref().map(|(v, _)| v.clone()).unwrap_or_else(new_sparse);
        if dense {
            to_dense(&mut v).map_err(hll_error)?;
        }
        for (i, &m) in max.iter().enumerate() {
            if m > 0 {
                // As in Redis, a register the code cannot hold is skipped rather than failing the merge.
                let _ = set(&mut v, i, m, SPARSE_MAX_BYTES);
            }
        }
        invalidate(&mut v);
        let new_lsn = self.store_hll((shard, hd), dest, old.as_ref(), &v, now, Some("pfadd"));
        *lsn = (*lsn).max(new_lsn);
        Ok(Reply::Ok)
    }

    pub(super) fn pfdebug(
        &self,
        sub: Option<PfDebug>,
        word: &[u8],
        key: &[u8],
        lsn: &mut u64,
        now: u64,
    ) -> Result<Reply> {
        let h = self.hash(key);
        let mut shard = self.lock(h);
        let Some(old) = self.hll_at(&mut shard, h, key, now)? else {
            return Err(CommandError::Invalid("The specified key does not exist".into()));
        };
        let Some(sub) = sub else {
            let word = String::from_utf8_lossy(word);
            return Err(CommandError::Invalid(format!("Unknown PFDEBUG subcommand '{word}'")));
        };
        let mut v = old.0.clone();
        match sub {
            PfDebug::GetReg | PfDebug::ToDense => {
                let converted = to_dense(&mut v).map_err(hll_error)?;
                if converted {
                    *lsn = self.store_hll((&mut shard, h), key, Some(&old), &v, now, None);
                }
                Ok(match sub {
                    PfDebug::GetReg => Reply::Array(registers(&v).into_iter().map(|r| Reply::Int(r as i64)).collect()),
                    _ => Reply::Int(converted as i64),
                })
            }
            PfDebug::Decode => {
                if is_dense(&v) {
                    return Err(CommandError::Invalid("HLL encoding is not sparse".into()));
                }
                // The text is bounded by the value's length: refused before it is built past the budget.
                self.reply_fits((v.len() - HDR).saturating_mul(DECODE_BYTES_PER_BYTE))?;
                Ok(Reply::bulk(decode(&v).map_err(hll_error)?))
            }
            PfDebug::Encoding => Ok(Reply::Status(if is_dense(&v) { "dense" } else { "sparse" })),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sparse_of(elems: impl IntoIterator<Item = Vec<u8>>) -> Vec<u8> {
        let mut v = new_sparse();
        for e in elems {
            add(&mut v, &e, SPARSE_MAX_BYTES).unwrap();
        }
        v
    }

    #[test]
    fn murmur_matches_known_values() {
        // Redis's PFADD of "a" sets register 12711 to 2 (`PFDEBUG GETREG` on redis-server 7.0).
        assert_eq!(position(b"a"), (12711, 2));
        assert_eq!(murmur64a(b"", 0), 0);
    }

    #[test]
    fn a_new_value_is_redis_s_empty_hll() {
        let v = new_sparse();
        assert_eq!(v, b"HYLL\x01\0\0\0\0\0\0\0\0\0\0\0\x7f\xff");
        assert_eq!(count(&v), Ok(0));
        assert_eq!(check(&v), Ok(()));
    }

    #[test]
    fn sparse_and_dense_agree_register_for_register() {
        let elems: Vec<Vec<u8>> = (0..2000).map(|i| format!("element-{i}").into_bytes()).collect();
        let mut sparse = new_sparse();
        let mut dense = new_sparse();
        to_dense(&mut dense).unwrap();
        for e in &elems {
            let a = add(&mut sparse, e, usize::MAX).unwrap();
            let b = add(&mut dense, e, usize::MAX).unwrap();
            assert_eq!(a, b);
        }
        assert!(!is_dense(&sparse));
        assert_eq!(count(&sparse), count(&dense));
        let mut made = sparse.clone();
        to_dense(&mut made).unwrap();
        assert_eq!(made[HDR..], dense[HDR..]);
        let n = count(&dense).unwrap();
        assert!((1900..=2100).contains(&n), "{n}");
    }

    #[test]
    fn a_growing_sparse_value_turns_dense_at_the_limit() {
        let v = sparse_of((0..3000).map(|i| format!("{i}").into_bytes()));
        assert!(is_dense(&v));
        assert_eq!(v.len(), DENSE_LEN);
    }

    #[test]
    fn the_self_test_passes() {
        assert_eq!(self_test(3, 100_000), Ok(()));
    }

    #[test]
    fn corrupt_codes_are_errors_not_panics() {
        let v = new_sparse();
        for cut in HDR..v.len() {
            let mut w = v[..cut].to_vec();
            assert!(add(&mut w, b"x", SPARSE_MAX_BYTES).is_err() || count(&w).is_err());
        }
        let mut long = v.clone();
        long.extend([0x80, 0x80]);
        assert_eq!(count(&long), Err(HllError::Corrupt));
        assert_eq!(merge_into(&mut [0u8; REGISTERS], &long), Err(HllError::Corrupt));
        assert_eq!(check(b"HYLL\0"), Err(HllError::NotHll));
        assert_eq!(check(b"HYLL\0\0\0\0\0\0\0\0\0\0\0\0\0"), Err(HllError::NotHll));
    }
}
