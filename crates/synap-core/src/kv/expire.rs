//! Active expiry, as Redis's `activeExpireCycle`: reclaim expired keys nobody reads, in bounded passes.
//!
//! A pass walks the shards round-robin from where the last pass stopped. In each shard it samples
//! `SAMPLE` random keys that carry an expiry and removes the expired ones; while more than a quarter of a
//! sample was expired it samples that shard again. The pass stops when its time budget is spent, so the
//! cost per pass is bounded whatever the keyspace size, and there is never a full scan.
//!
//! Every removal is logged as a `Del` (see [`Keyspace::expire_entry`]): replay and replicas apply it and
//! never decide by their own clock that a key is gone. A keyspace that does not reclaim expired keys
//! (a replica, or a failed log) skips the pass.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rand::Rng;

use super::Keyspace;

const SAMPLE: usize = 20;
/// Re-sample a shard while more than this share of the last sample had expired (Redis: 25%).
const REPEAT_PERCENT: usize = 25;

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ExpireReport {
    pub sampled: usize,
    pub expired: usize,
    pub shards_visited: usize,
    /// The pass stopped because its time budget ran out.
    pub out_of_time: bool,
}

impl Keyspace {
    /// INFO keyspace's `avg_ttl`: the mean time to live, in milliseconds, of up to 16 random keys with
    /// an expiry per shard (0 when none has one), as Redis estimates it by sampling.
    pub fn avg_ttl_ms(&self) -> u64 {
        let mut rng = rand::rng();
        let now = self.now();
        let (mut sum, mut n) = (0u128, 0u64);
        for idx in 0..self.shard_count() {
            let shard = self.lock_index(idx);
            let len = shard.volatile_len();
            for _ in 0..len.min(16) {
                let e = shard.entry(shard.volatile_pos(rng.random_range(0..len)));
                if e.expire_at > now {
                    sum += (e.expire_at - now) as u128;
                    n += 1;
                }
            }
        }
        if n == 0 { 0 } else { (sum / n as u128) as u64 }
    }

    /// Runs one active-expiry pass within `budget`, taking `gate`'s read side per shard round.
    pub fn active_expire_pass(&self, budget: Duration, gate: &parking_lot::RwLock<()>) -> ExpireReport {
        let started = Instant::now();
        let shards = self.shard_count();
        let start = self.expire_cursor.load(Ordering::Relaxed) % shards;
        let mut report = ExpireReport::default();
        let mut rng = rand::rng();
        let now = self.now();
        if !self.reclaims_expired() || !self.active_expiry() {
            return report;
        }
        for i in 0..shards {
            if started.elapsed() >= budget {
                report.out_of_time = true;
                self.expire_cursor.store((start + i) % shards, Ordering::Relaxed);
                return report;
            }
            let idx = (start + i) % shards;
            report.shards_visited += 1;
            // Bounded re-sampling of one shard: at most 16 rounds under one lock hold each.
            for _ in 0..16 {
                let _gate = gate.read();
                // Checked under the gate: a server that just became a replica logs nothing more.
                if !self.reclaims_expired() {
                    return report;
                }
                let mut shard = self.lock_index(idx);
                let n = shard.volatile_len();
                if n == 0 {
                    break;
                }
                let mut expired = 0;
                let samples = SAMPLE.min(n);
                for _ in 0..samples {
                    let n = shard.volatile_len();
                    if n == 0 {
                        break;
                    }
                    let pos = shard.volatile_pos(rng.random_range(0..n));
                    if shard.entry(pos).is_expired(now) {
                        let hash = self.hash(shard.entry(pos).key());
                        self.expire_entry(&mut shard, pos, hash);
                        expired += 1;
                    }
                }
                drop(shard);
                report.sampled += samples;
                report.expired += expired;
                if expired * 100 <= samples * REPEAT_PERCENT || started.elapsed() >= budget {
                    break;
                }
            }
        }
        self.expire_cursor.store(start, Ordering::Relaxed);
        report
    }
}
