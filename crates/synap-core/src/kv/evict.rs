//! The memory limit: sampled eviction as Redis does it (`maxmemory-policy`, `maxmemory-samples`).
//!
//! Before a command that may grow memory runs, [`Keyspace::ensure_memory`] evicts while usage is above the
//! limit. Each round samples a few random entries from a few random shards (all entries, or only those
//! with an expiry for the `volatile-*` policies), evicts the best candidate, and logs its deletion as a
//! mutation, so that recovery and replicas do not bring evicted keys back. With `noeviction`, or when no
//! candidate exists, the write is refused with an OOM error; reads keep working.
//!
//! Access stamps (`Entry::access`):
//! - LRU: the time of last access in seconds (wrapping u32).
//! - LFU: Redis's scheme, `minutes:24 | counter:8`, with a logarithmic counter that starts at 5 and
//!   halves its distance to 0 per idle minute.

use std::str::FromStr;
use std::sync::atomic::Ordering;

use rand::Rng;

use super::{Keyspace, NO_EXPIRE};
use crate::error::{CommandError, Result};
use crate::mutation::Mutation;
use crate::notify::Class;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EvictionPolicy {
    #[default]
    NoEviction,
    AllKeysLru,
    VolatileLru,
    AllKeysLfu,
    VolatileLfu,
    AllKeysRandom,
    VolatileRandom,
    VolatileTtl,
}

const LFU_INIT: u32 = 5;
const LFU_LOG_FACTOR: f64 = 10.0;

impl EvictionPolicy {
    pub fn name(self) -> &'static str {
        match self {
            EvictionPolicy::NoEviction => "noeviction",
            EvictionPolicy::AllKeysLru => "allkeys-lru",
            EvictionPolicy::VolatileLru => "volatile-lru",
            EvictionPolicy::AllKeysLfu => "allkeys-lfu",
            EvictionPolicy::VolatileLfu => "volatile-lfu",
            EvictionPolicy::AllKeysRandom => "allkeys-random",
            EvictionPolicy::VolatileRandom => "volatile-random",
            EvictionPolicy::VolatileTtl => "volatile-ttl",
        }
    }

    fn volatile_only(self) -> bool {
        matches!(
            self,
            EvictionPolicy::VolatileLru
                | EvictionPolicy::VolatileLfu
                | EvictionPolicy::VolatileRandom
                | EvictionPolicy::VolatileTtl
        )
    }

    fn is_lfu(self) -> bool {
        matches!(self, EvictionPolicy::AllKeysLfu | EvictionPolicy::VolatileLfu)
    }

    pub(crate) fn initial_access(self, now_ms: u64) -> u32 {
        if self.is_lfu() { (lfu_minutes(now_ms) << 8) | LFU_INIT } else { lru_clock(now_ms) }
    }

    /// The access stamp after one more access.
    pub(crate) fn touch(self, access: u32, now_ms: u64) -> u32 {
        if self.is_lfu() {
            let counter = lfu_decayed(access, now_ms);
            let counter = lfu_log_incr(counter);
            (lfu_minutes(now_ms) << 8) | counter
        } else {
            lru_clock(now_ms)
        }
    }

    /// Seconds since the last access (OBJECT IDLETIME); `None` under an LFU policy, which does not track it.
    pub(crate) fn idle_secs(self, access: u32, now_ms: u64) -> Option<u64> {
        (!self.is_lfu()).then(|| lru_clock(now_ms).wrapping_sub(access) as u64)
    }

    /// The logarithmic access counter (OBJECT FREQ); `None` unless an LFU policy tracks it.
    pub(crate) fn freq(self, access: u32, now_ms: u64) -> Option<u32> {
        self.is_lfu().then(|| lfu_decayed(access, now_ms))
    }

    /// Eviction preference of an entry: higher is evicted first.
    fn score(self, access: u32, expire_at: u64, now_ms: u64) -> u64 {
        match self {
            EvictionPolicy::AllKeysLru | EvictionPolicy::VolatileLru => lru_clock(now_ms).wrapping_sub(access) as u64,
            EvictionPolicy::AllKeysLfu | EvictionPolicy::VolatileLfu => 255 - lfu_decayed(access, now_ms) as u64,
            EvictionPolicy::VolatileTtl => u64::MAX - expire_at,
            EvictionPolicy::AllKeysRandom | EvictionPolicy::VolatileRandom | EvictionPolicy::NoEviction => 0,
        }
    }
}

/// Every policy, by its index (the `u8` the keyspace keeps it as).
const POLICIES: [EvictionPolicy; 8] = [
    EvictionPolicy::NoEviction,
    EvictionPolicy::AllKeysLru,
    EvictionPolicy::VolatileLru,
    EvictionPolicy::AllKeysLfu,
    EvictionPolicy::VolatileLfu,
    EvictionPolicy::AllKeysRandom,
    EvictionPolicy::VolatileRandom,
    EvictionPolicy::VolatileTtl,
];

/// The memory limit, policy and sample count, changeable at run time (CONFIG SET).
#[derive(Debug, Default)]
pub(crate) struct Limits {
    max_memory: std::sync::atomic::AtomicUsize,
    policy: std::sync::atomic::AtomicU8,
    samples: std::sync::atomic::AtomicUsize,
}

impl Limits {
    pub(crate) fn new(max_memory: usize, policy: EvictionPolicy, samples: usize) -> Limits {
        let l = Limits::default();
        l.set_max_memory(max_memory);
        l.set_policy(policy);
        l.set_samples(samples);
        l
    }

    pub(crate) fn max_memory(&self) -> usize {
        self.max_memory.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub(crate) fn policy(&self) -> EvictionPolicy {
        POLICIES[self.policy.load(std::sync::atomic::Ordering::Relaxed) as usize % POLICIES.len()]
    }

    pub(crate) fn samples(&self) -> usize {
        self.samples.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub(crate) fn set_max_memory(&self, bytes: usize) {
        self.max_memory.store(bytes, std::sync::atomic::Ordering::Relaxed);
    }

    pub(crate) fn set_policy(&self, p: EvictionPolicy) {
        let i = POLICIES.iter().position(|x| *x == p).unwrap_or(0);
        self.policy.store(i as u8, std::sync::atomic::Ordering::Relaxed);
    }

    pub(crate) fn set_samples(&self, n: usize) {
        self.samples.store(n, std::sync::atomic::Ordering::Relaxed);
    }
}

impl FromStr for EvictionPolicy {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let all = POLICIES;
        let wanted = s.to_ascii_lowercase().replace('_', "-");
        all.into_iter().find(|p| p.name() == wanted).ok_or_else(|| {
            let names: Vec<_> = all.iter().map(|p| p.name()).collect();
            format!("unknown eviction policy '{s}', expected one of {}", names.join(", "))
        })
    }
}

fn lru_clock(now_ms: u64) -> u32 {
    (now_ms / 1000) as u32
}

fn lfu_minutes(now_ms: u64) -> u32 {
    ((now_ms / 60_000) & 0x00ff_ffff) as u32
}

/// The LFU counter after decaying by one per idle minute.
fn lfu_decayed(access: u32, now_ms: u64) -> u32 {
    let counter = access & 0xff;
    let last = access >> 8;
    let now = lfu_minutes(now_ms);
    let idle = if now >= last { now - last } else { (0x00ff_ffff - last) + now };
    counter.saturating_sub(idle)
}

fn lfu_log_incr(counter: u32) -> u32 {
    if counter >= 255 {
        return 255;
    }
    let base = counter.saturating_sub(LFU_INIT) as f64;
    let p = 1.0 / (base * LFU_LOG_FACTOR + 1.0);
    if rand::rng().random::<f64>() < p { counter + 1 } else { counter }
}

struct Candidate {
    score: u64,
    key: Vec<u8>,
}

/// Shards visited per eviction round.
const SHARDS_PER_ROUND: usize = 3;
/// Evictions one command may perform before giving up (bounds the pause a single write can cause).
pub(crate) const MAX_EVICTIONS_PER_CALL: usize = 4096;

/// One step of making room over several databases (see `Engine::ensure_memory`).
pub(crate) enum EvictStep {
    /// Under the limit (or no limit).
    Room,
    /// One key went; the LSN of its removal.
    Evicted(u64),
    /// No candidate here.
    Nothing,
    /// Over the limit under `noeviction`.
    Refused,
}

impl Keyspace {
    /// Makes room before a write that may grow memory: evicts under the policy while usage is above the
    /// limit, or refuses with OOM. Returns the log sequence number of the last eviction logged (or 0).
    /// `other` is the memory the other services hold (queues, streams): it counts toward the limit, but
    /// only keys can be evicted.
    pub(crate) fn ensure_memory(&self, other: usize) -> Result<u64> {
        let limit = self.limits.max_memory();
        let over = || self.used_memory() + other > limit;
        if limit == 0 || !over() {
            return Ok(0);
        }
        if self.limits.policy() == EvictionPolicy::NoEviction {
            return Err(CommandError::OutOfMemory);
        }
        let mut lsn = 0;
        for _ in 0..MAX_EVICTIONS_PER_CALL {
            if !over() {
                return Ok(lsn);
            }
            match self.evict_one() {
                Some(l) => lsn = lsn.max(l),
                None => break,
            }
        }
        if over() { Err(CommandError::OutOfMemory) } else { Ok(lsn) }
    }

    /// One step of making room: nothing to do, one key evicted, or why not.
    pub(crate) fn ensure_memory_step(&self, other: usize) -> EvictStep {
        let limit = self.limits.max_memory();
        if limit == 0 || self.used_memory() + other <= limit {
            return EvictStep::Room;
        }
        if self.limits.policy() == EvictionPolicy::NoEviction {
            return EvictStep::Refused;
        }
        match self.evict_one() {
            Some(lsn) => EvictStep::Evicted(lsn),
            None => EvictStep::Nothing,
        }
    }

    /// One eviction round; `None` when no candidate was found.
    fn evict_one(&self) -> Option<u64> {
        let policy = self.limits.policy();
        let now = self.now();
        let mut rng = rand::rng();
        let mut best: Option<Candidate> = None;
        let shards = self.shard_count();
        let start = rng.random_range(0..shards);
        let mut visited_nonempty = 0;
        // Visit shards from a random start until a few non-empty ones were sampled.
        for i in 0..shards {
            if visited_nonempty == SHARDS_PER_ROUND {
                break;
            }
            let shard = self.lock_index((start + i) % shards);
            let pool = if policy.volatile_only() { shard.volatile_len() } else { shard.len() };
            if pool == 0 {
                continue;
            }
            visited_nonempty += 1;
            // Never more draws than the shard has candidates (a huge maxmemory-samples stays cheap).
            for _ in 0..self.limits.samples().max(1).min(pool) {
                let slot = rng.random_range(0..pool);
                let pos = if policy.volatile_only() { shard.volatile_pos(slot) } else { slot };
                let e = shard.entry(pos);
                let score = if e.is_expired(now) { u64::MAX } else { policy.score(e.access, e.expire_at, now) };
                let better = match &best {
                    None => true,
                    Some(b) => score > b.score,
                };
                if better {
                    best = Some(Candidate { score, key: e.key().to_vec() });
                }
            }
        }
        let cand = best?;
        let hash = self.hash(&cand.key);
        let mut shard = self.lock(hash);
        // The candidate may have changed since sampling; only evict it if it is still there.
        shard.find(hash, &cand.key)?;
        if policy.volatile_only() {
            let pos = shard.find(hash, &cand.key)?;
            if shard.entry(pos).expire_at == NO_EXPIRE {
                return Some(0);
            }
        }
        let event = (Class::Evicted, "evicted", &cand.key[..]);
        let lsn = self.commit_one(&mut shard, hash, Mutation::Del { key: &cand.key }, now, Some(event));
        self.counters.evicted.fetch_add(1, Ordering::Relaxed);
        Some(lsn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_policy_name() {
        for name in ["noeviction", "allkeys-lru", "volatile-lru", "allkeys-lfu", "allkeys-random", "volatile-ttl"] {
            assert_eq!(name.parse::<EvictionPolicy>().unwrap().name(), name);
        }
        assert!("lru".parse::<EvictionPolicy>().unwrap_err().contains("allkeys-lru"));
    }

    #[test]
    fn lfu_counter_grows_slowly_and_decays() {
        let p = EvictionPolicy::AllKeysLfu;
        let mut a = p.initial_access(0);
        for _ in 0..10_000 {
            a = p.touch(a, 0);
        }
        let c = a & 0xff;
        assert!(c > LFU_INIT && c < 255, "counter {c}");
        // Ten idle minutes later the counter has dropped by ten.
        assert_eq!(lfu_decayed(a, 10 * 60_000), c - 10);
    }

    #[test]
    fn size_classes_round_up() {
        use super::super::value::size_class;
        assert_eq!(size_class(1), 8);
        assert_eq!(size_class(124), 128);
        assert_eq!(size_class(129), 160);
        assert_eq!(size_class(1000), 1024);
    }
}
