//! Wall-clock time for TTLs, behind a trait so tests can move time by hand.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A source of "now" in Unix milliseconds. Expiry times are absolute Unix milliseconds everywhere
/// (in memory, in mutations, on disk), so replaying a log later never stretches a TTL.
pub trait Clock: Send + Sync + 'static {
    fn now_ms(&self) -> u64;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
    }
}

/// A clock that never goes back: the largest time its source has reported. A wall clock stepped back
/// (NTP, an operator) must not bring keys back to life that were already expired and hidden.
#[derive(Debug)]
pub struct Monotonic<C: ?Sized> {
    last: AtomicU64,
    source: std::sync::Arc<C>,
}

impl<C: Clock + ?Sized> Monotonic<C> {
    pub fn new(source: std::sync::Arc<C>) -> Self {
        Monotonic { last: AtomicU64::new(0), source }
    }
}

impl<C: Clock + ?Sized> Clock for Monotonic<C> {
    fn now_ms(&self) -> u64 {
        let now = self.source.now_ms();
        let last = self.last.load(Ordering::Relaxed);
        if now > last {
            self.last.fetch_max(now, Ordering::Relaxed);
            now
        } else {
            last
        }
    }
}

/// A clock that only moves when told to (tests).
#[derive(Debug)]
pub struct ManualClock(AtomicU64);

impl ManualClock {
    pub fn new(start_ms: u64) -> Self {
        ManualClock(AtomicU64::new(start_ms))
    }
    pub fn advance(&self, ms: u64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
    pub fn set(&self, ms: u64) {
        self.0.store(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monotonic_never_goes_back() {
        let source = std::sync::Arc::new(ManualClock::new(1000));
        let clock = Monotonic::new(source.clone());
        assert_eq!(clock.now_ms(), 1000);
        source.set(400);
        assert_eq!(clock.now_ms(), 1000);
        source.set(1500);
        assert_eq!(clock.now_ms(), 1500);
    }
}
