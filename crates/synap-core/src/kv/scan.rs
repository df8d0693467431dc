//! KEYS and cursor SCAN.
//!
//! A SCAN cursor names a shard and a position in it: `cursor = shard << 32 | remaining`, where `remaining`
//! is the number of positions below the cursor not yet visited (`u32::MAX`: the shard's top). Positions
//! are visited from the top down. Removal moves only the last entry (already visited) into the hole, and
//! new entries are appended above the cursor, so every key present for the whole scan is returned at least
//! once and keys that are only added during the scan may or may not be. Cursor 0 starts and ends a scan.

use bytes::Bytes;

use super::Keyspace;
use crate::command::ScanArgs;
use crate::glob::{glob_match, literal_prefix};

const TOP: u64 = u32::MAX as u64;

/// Splits a cursor into (shard, remaining positions).
pub fn decode_cursor(cursor: u64) -> (usize, u64) {
    if cursor == 0 { (0, TOP) } else { ((cursor >> 32) as usize, cursor & TOP) }
}

fn encode_cursor(shard: usize, remaining: u64) -> u64 {
    ((shard as u64) << 32) | remaining
}

/// Whether an entry of `kind` passes SCAN's TYPE filter.
fn type_matches(filter: &Option<String>, kind: super::Kind) -> bool {
    match filter {
        None => true,
        Some(t) => t.eq_ignore_ascii_case(kind.name()),
    }
}

struct Filter<'a> {
    prefix: &'a [u8],
    pattern: Option<&'a [u8]>,
}

impl Filter<'_> {
    fn accepts(&self, key: &[u8]) -> bool {
        key.starts_with(self.prefix) && self.pattern.is_none_or(|p| glob_match(p, key))
    }
}

/// How a walk of the whole keyspace takes the engine's gate for each shard: a read guard, or an error
/// (BUSY while a script runs past its threshold).
pub type Gate<'g> = dyn Fn() -> crate::error::Result<parking_lot::RwLockReadGuard<'g, ()>> + 'g;

impl Keyspace {
    /// KEYS: every live key matching `pattern`. With `gate`, its read side is taken per shard (not for the
    /// whole walk), so that a transaction waiting for the write side waits for one shard, not the keyspace.
    pub fn keys(&self, pattern: &[u8], now: u64, gate: Option<&Gate<'_>>) -> crate::error::Result<Vec<Bytes>> {
        let all = pattern == b"*";
        let prefix = literal_prefix(pattern);
        let mut out = Vec::new();
        let mut bytes = 0usize;
        for i in 0..self.shard_count() {
            let _gate = gate.map(|g| g()).transpose()?;
            let shard = self.lock_index(i);
            for e in shard.iter() {
                let k = e.key();
                if !e.is_expired(now) && (all || (k.starts_with(prefix) && glob_match(pattern, k))) {
                    bytes += k.len() + 16;
                    self.reply_fits(bytes)?;
                    out.push(Bytes::copy_from_slice(k));
                }
            }
        }
        Ok(out)
    }

    /// SCAN: examines about `count` positions from `cursor` and returns the next cursor and the matches.
    /// `gate` as for [`Keyspace::keys`].
    pub fn scan(&self, args: &ScanArgs, now: u64, gate: Option<&Gate<'_>>) -> crate::error::Result<(u64, Vec<Bytes>)> {
        let filter = Filter { prefix: args.prefix.as_deref().unwrap_or(b""), pattern: args.pattern.as_deref() };
        let mut budget = args.count.max(1);
        let (mut shard_idx, mut remaining) = decode_cursor(args.cursor);
        let mut out = Vec::new();
        let mut bytes = 0usize;
        while shard_idx < self.shard_count() {
            let _gate = gate.map(|g| g()).transpose()?;
            let shard = self.lock_index(shard_idx);
            let mut pos = remaining.min(shard.len() as u64);
            while pos > 0 && budget > 0 {
                pos -= 1;
                budget -= 1;
                let e = shard.entry(pos as usize);
                if type_matches(&args.type_filter, e.kind()) && !e.is_expired(now) && filter.accepts(e.key()) {
                    out.push(Bytes::copy_from_slice(e.key()));
                    bytes += e.key().len() + 16;
                    if self.config.max_reply_bytes > 0 && bytes >= self.config.max_reply_bytes {
                        // A COUNT that would overflow the reply: answer what was found, with the cursor
                        // where the walk stopped.
                        budget = 0;
                    }
                }
            }
            drop(shard);
            if pos > 0 {
                return Ok((encode_cursor(shard_idx, pos), out));
            }
            shard_idx += 1;
            remaining = TOP;
            if budget == 0 {
                let next = if shard_idx < self.shard_count() { encode_cursor(shard_idx, TOP) } else { 0 };
                return Ok((next, out));
            }
        }
        Ok((0, out))
    }
}
