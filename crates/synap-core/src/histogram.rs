//! Latency buckets shared by every duration Synap reports (commands, fsyncs, snapshots): bucket
//! `i < BUCKETS - 1` holds durations up to `1 µs × 2^(i/4)` (four per doubling, about 19% wide), from
//! 1 µs to 2^24 µs (16.8 s); the last holds everything longer. Every fourth bound is a power of two
//! microseconds: the coarser buckets `/metrics` exports are exact sums of these.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub const BUCKETS: usize = 24 * 4 + 2;

/// Upper bounds in nanoseconds of every bucket but the last.
static BOUNDS: LazyLock<Vec<u64>> =
    LazyLock::new(|| (0..BUCKETS - 1).map(|i| (1000.0 * 2f64.powf(i as f64 / 4.0)).round() as u64).collect());

/// The bucket of a duration in nanoseconds.
#[inline]
pub fn bucket(nanos: u64) -> usize {
    BOUNDS.partition_point(|&b| b < nanos)
}

/// The upper bound in nanoseconds of bucket `i` (`u64::MAX` for the last).
pub fn bucket_bound(i: usize) -> u64 {
    BOUNDS.get(i).copied().unwrap_or(u64::MAX)
}

/// A histogram any thread may record into (for events far rarer than commands: fsyncs, snapshots).
pub struct Histogram {
    pub buckets: Box<[AtomicU64]>,
    pub count: AtomicU64,
    pub sum_nanos: AtomicU64,
    /// The longest since [`Histogram::take_max`] last ran.
    max_nanos: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_nanos: AtomicU64::new(0),
            max_nanos: AtomicU64::new(0),
        }
    }
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Histogram").field("count", &self.count.load(Ordering::Relaxed)).finish()
    }
}

impl Histogram {
    pub fn record(&self, took: Duration) {
        let nanos = took.as_nanos().min(u64::MAX as u128) as u64;
        self.buckets[bucket(nanos)].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
        self.max_nanos.fetch_max(nanos, Ordering::Relaxed);
    }

    /// The per-bucket counts.
    pub fn counts(&self) -> Vec<u64> {
        self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).collect()
    }

    /// The longest duration recorded since the last call, and starts over.
    pub fn take_max(&self) -> Duration {
        Duration::from_nanos(self.max_nanos.swap(0, Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_microseconds_to_seconds() {
        assert_eq!(bucket(0), 0);
        assert_eq!(bucket(1000), 0);
        assert_eq!(bucket(1001), 1);
        assert_eq!(bucket_bound(4), 2000);
        assert_eq!(bucket_bound(8), 4000);
        assert_eq!(bucket(2000), 4);
        assert_eq!(bucket(2001), 5);
        assert_eq!(bucket_bound(BUCKETS - 2), 1000 << 24);
        assert_eq!(bucket(u64::MAX), BUCKETS - 1);
        assert_eq!(bucket_bound(BUCKETS - 1), u64::MAX);
    }

    #[test]
    fn records_count_sum_and_the_longest_since_asked() {
        let h = Histogram::default();
        h.record(Duration::from_micros(3));
        h.record(Duration::from_millis(2));
        assert_eq!(h.count.load(Ordering::Relaxed), 2);
        assert_eq!(h.sum_nanos.load(Ordering::Relaxed), 2_003_000);
        assert_eq!(h.counts().iter().sum::<u64>(), 2);
        assert_eq!(h.counts()[bucket(3000)], 1);
        assert_eq!(h.take_max(), Duration::from_millis(2));
        assert_eq!(h.take_max(), Duration::ZERO);
    }
}
