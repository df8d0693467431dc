//! Per-command statistics: calls, time, refusals, failures and a latency histogram per command, for INFO
//! `commandstats` and `latencystats`, LATENCY HISTOGRAM and `/metrics`; and the error counts of INFO
//! `errorstats`.
//!
//! Recorded on every command without shared writes: each thread owns a block of counters that it alone
//! writes (a load and a store, no locked read-modify-write, no cache line shared with the other workers);
//! readers add the blocks up. A block outlives its thread (its counts stay) and is handed to the next new
//! thread, so there are never more blocks than threads that ran commands at once. A reset (CONFIG
//! RESETSTAT) records a baseline that later reads subtract: the writers are never disturbed.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use parking_lot::Mutex;

pub use synap_core::histogram::{BUCKETS, bucket, bucket_bound};

/// Adds to a counter only this thread writes: no locked instruction.
#[inline]
fn bump(a: &AtomicU64, n: u64) {
    a.store(a.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
}

#[derive(Default)]
struct Slot {
    calls: AtomicU64,
    rejected: AtomicU64,
    failed: AtomicU64,
    nanos: AtomicU64,
    hist: OnceLock<Box<[AtomicU64]>>,
}

struct Block {
    slots: Box<[Slot]>,
}

/// What a finished command was: run and answered, refused before it ran, or run and failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Rejected,
    Failed,
}

/// One command's totals.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Totals {
    pub calls: u64,
    pub rejected: u64,
    pub failed: u64,
    pub nanos: u64,
    /// Per bucket (empty when nothing was timed).
    pub hist: Vec<u64>,
}

impl Totals {
    fn add(&mut self, s: &Slot) {
        self.calls += s.calls.load(Ordering::Relaxed);
        self.rejected += s.rejected.load(Ordering::Relaxed);
        self.failed += s.failed.load(Ordering::Relaxed);
        self.nanos += s.nanos.load(Ordering::Relaxed);
        if let Some(h) = s.hist.get() {
            if self.hist.is_empty() {
                self.hist = vec![0; BUCKETS];
            }
            for (t, b) in self.hist.iter_mut().zip(h.iter()) {
                *t += b.load(Ordering::Relaxed);
            }
        }
    }

    fn minus(&mut self, base: &Totals) {
        self.calls = self.calls.saturating_sub(base.calls);
        self.rejected = self.rejected.saturating_sub(base.rejected);
        self.failed = self.failed.saturating_sub(base.failed);
        self.nanos = self.nanos.saturating_sub(base.nanos);
        for (t, b) in self.hist.iter_mut().zip(&base.hist) {
            *t = t.saturating_sub(*b);
        }
    }

    /// Calls that ran (Redis's `calls`: a refused call is not one).
    pub fn timed(&self) -> u64 {
        self.hist.iter().sum()
    }

    /// The duration below which a fraction `q` of the timed calls fall, in microseconds, interpolated
    /// inside its bucket; `None` when nothing was timed.
    pub fn percentile_usec(&self, q: f64) -> Option<f64> {
        let total = self.timed();
        if total == 0 {
            return None;
        }
        let rank = (q * total as f64).ceil().max(1.0);
        let mut seen = 0f64;
        for (i, &n) in self.hist.iter().enumerate() {
            if n == 0 {
                continue;
            }
            if seen + n as f64 >= rank {
                let lo = if i == 0 { 0 } else { bucket_bound(i - 1) } as f64;
                let hi = if i == BUCKETS - 1 { lo * 2.0 } else { bucket_bound(i) as f64 };
                let at = lo + (hi - lo) * ((rank - seen) / n as f64);
                return Some(at / 1000.0);
            }
            seen += n as f64;
        }
        None
    }
}

struct Inner {
    id: u64,
    len: usize,
    blocks: Mutex<Vec<Arc<Block>>>,
    /// Blocks whose thread ended, for the next new thread.
    free: Mutex<Vec<Arc<Block>>>,
    base: Mutex<Vec<Totals>>,
}

/// Statistics for `len` commands (indexed by the caller: command-table rows, HTTP operations).
#[derive(Clone)]
pub struct CommandStats {
    inner: Arc<Inner>,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// This thread's blocks, one per [`CommandStats`] it recorded into.
struct Mine(Vec<(u64, Weak<Inner>, Arc<Block>)>);

impl Drop for Mine {
    fn drop(&mut self) {
        for (_, owner, block) in self.0.drain(..) {
            if let Some(owner) = owner.upgrade() {
                owner.free.lock().push(block);
            }
        }
    }
}

thread_local! {
    static MINE: RefCell<Mine> = const { RefCell::new(Mine(Vec::new())) };
}

impl CommandStats {
    pub fn new(len: usize) -> CommandStats {
        CommandStats {
            inner: Arc::new(Inner {
                id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
                len,
                blocks: Mutex::new(Vec::new()),
                free: Mutex::new(Vec::new()),
                base: Mutex::new(Vec::new()),
            }),
        }
    }

    /// How many commands these statistics are for.
    pub fn len(&self) -> usize {
        self.inner.len
    }

    pub fn is_empty(&self) -> bool {
        self.inner.len == 0
    }

    fn with_block<R>(&self, f: impl FnOnce(&Block) -> R) -> R {
        let id = self.inner.id;
        let make = || {
            let block = self.inner.free.lock().pop().unwrap_or_else(|| {
                let b = Arc::new(Block { slots: (0..self.inner.len).map(|_| Slot::default()).collect() });
                self.inner.blocks.lock().push(b.clone());
                b
            });
            (id, Arc::downgrade(&self.inner), block)
        };
        match MINE.try_with(|m| {
            let mut m = m.borrow_mut();
            let at = match m.0.iter().position(|(i, _, _)| *i == id) {
                Some(at) => at,
                None => {
                    // Blocks of statistics that no longer exist are dropped here.
                    m.0.retain(|(_, owner, _)| owner.strong_count() > 0);
                    m.0.push(make());
                    m.0.len() - 1
                }
            };
            m.0[at].2.clone()
        }) {
            Ok(block) => f(&block),
            // The thread is ending: a block for this one call, handed back at once.
            Err(_) => {
                let (_, _, block) = make();
                let r = f(&block);
                self.inner.free.lock().push(block);
                r
            }
        }
    }

    /// Records one call of command `index`: refused before it ran, or ran (and failed or not), with its
    /// time when commands are timed (`took`; ignored for a refused call).
    pub fn record(&self, index: usize, outcome: Outcome, took: Option<Duration>) {
        if index >= self.inner.len {
            return;
        }
        self.with_block(|b| {
            let s = &b.slots[index];
            match outcome {
                Outcome::Rejected => return bump(&s.rejected, 1),
                Outcome::Failed => bump(&s.failed, 1),
                Outcome::Ok => {}
            }
            bump(&s.calls, 1);
            if let Some(took) = took {
                let nanos = took.as_nanos().min(u64::MAX as u128) as u64;
                bump(&s.nanos, nanos);
                let hist = s.hist.get_or_init(|| (0..BUCKETS).map(|_| AtomicU64::new(0)).collect());
                bump(&hist[bucket(nanos)], 1);
            }
        });
    }

    /// Every command's totals since the last reset.
    pub fn totals(&self) -> Vec<Totals> {
        let mut out = vec![Totals::default(); self.inner.len];
        for b in self.inner.blocks.lock().iter() {
            for (t, s) in out.iter_mut().zip(b.slots.iter()) {
                t.add(s);
            }
        }
        let base = self.inner.base.lock();
        for (t, b) in out.iter_mut().zip(base.iter()) {
            t.minus(b);
        }
        out
    }

    /// CONFIG RESETSTAT: counts start again from zero.
    pub fn reset(&self) {
        let mut raw = vec![Totals::default(); self.inner.len];
        for b in self.inner.blocks.lock().iter() {
            for (t, s) in raw.iter_mut().zip(b.slots.iter()) {
                t.add(s);
            }
        }
        *self.inner.base.lock() = raw;
    }
}

/// How many different error codes INFO `errorstats` tracks. As in Redis, a code beyond them turns the
/// per-code counts off until CONFIG RESETSTAT: every error then counts under `ERRORSTATS_DISABLED`.
pub const MAX_ERROR_CODES: usize = 128;
const DISABLED: &str = "ERRORSTATS_DISABLED";

/// Error replies by their code (the first word: `ERR`, `WRONGTYPE`, ...), for INFO `errorstats`.
#[derive(Default)]
pub struct ErrorStats {
    counts: Mutex<HashMap<String, u64>>,
    total: AtomicU64,
}

impl ErrorStats {
    /// Counts an error reply line (`-CODE message`, or without the dash).
    pub fn record(&self, line: &[u8]) {
        self.total.fetch_add(1, Ordering::Relaxed);
        let line = line.strip_prefix(b"-").unwrap_or(line);
        let end = line.iter().position(|c| matches!(c, b' ' | b'\r' | b'\n')).unwrap_or(line.len()).min(64);
        let code = String::from_utf8_lossy(&line[..end]);
        let mut counts = self.counts.lock();
        if let Some(n) = counts.get_mut(DISABLED) {
            *n += 1;
        } else if let Some(n) = counts.get_mut(code.as_ref()) {
            *n += 1;
        } else if counts.len() < MAX_ERROR_CODES {
            counts.insert(code.into_owned(), 1);
        } else {
            tracing::warn!(
                "errorstats disabled: {MAX_ERROR_CODES} different error codes seen (CONFIG RESETSTAT turns them on)"
            );
            counts.clear();
            counts.insert(DISABLED.into(), 1);
        }
    }

    /// Every error reply counted (Redis's `total_error_replies`).
    pub fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    /// The codes and their counts, by code.
    pub fn counts(&self) -> Vec<(String, u64)> {
        let mut v: Vec<(String, u64)> = self.counts.lock().iter().map(|(k, v)| (k.clone(), *v)).collect();
        v.sort();
        v
    }

    pub fn reset(&self) {
        self.counts.lock().clear();
        self.total.store(0, Ordering::Relaxed);
    }
}

/// Error codes Redis gives before a command runs (its `rejected_calls`); any other error of a command
/// that ran is a failure (`failed_calls`).
pub fn is_rejection(code: &[u8]) -> bool {
    matches!(
        code,
        b"NOAUTH"
            | b"NOPERM"
            | b"OOM"
            | b"READONLY"
            | b"MASTERDOWN"
            | b"CLUSTERDOWN"
            | b"NOREPLICAS"
            | b"MISCONF"
            | b"BUSY"
            | b"LOADING"
    )
}

/// The code of an error reply line (`-CODE message`).
pub fn error_code(line: &[u8]) -> &[u8] {
    let line = line.strip_prefix(b"-").unwrap_or(line);
    let end = line.iter().position(|c| matches!(c, b' ' | b'\r' | b'\n')).unwrap_or(line.len());
    &line[..end]
}

/// One SLOWLOG entry, as Redis keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlowEntry {
    pub id: u64,
    /// Unix seconds when the command ran.
    pub time: u64,
    pub micros: u64,
    /// At most 32 arguments, each at most 128 bytes (Redis's shortening).
    pub args: Vec<bytes::Bytes>,
    pub client: String,
    pub name: bytes::Bytes,
}

const SLOWLOG_MAX_ARGS: usize = 32;
const SLOWLOG_MAX_ARG_BYTES: usize = 128;

/// SLOWLOG: the commands that took at least `slowlog-log-slower-than` microseconds (negative: none),
/// the newest `slowlog-max-len` of them.
pub struct SlowLog {
    entries: Mutex<std::collections::VecDeque<SlowEntry>>,
    next_id: AtomicU64,
    pub slower_than_us: std::sync::atomic::AtomicI64,
    pub max_len: AtomicU64,
    /// The second of the last log lines, and how many were written in it (a low threshold must not
    /// turn the log into a copy of every command).
    log_second: AtomicU64,
    logged: AtomicU64,
}

/// Slow-command log lines per second, at most.
const SLOW_LINES_PER_SEC: u64 = 10;

/// The most entries `slowlog-max-len` may keep.
pub const SLOWLOG_MAX_LEN: u64 = 1_000_000;

impl SlowLog {
    pub fn new(slower_than_us: i64, max_len: u64) -> SlowLog {
        SlowLog {
            entries: Mutex::new(std::collections::VecDeque::new()),
            next_id: AtomicU64::new(0),
            slower_than_us: slower_than_us.into(),
            max_len: max_len.into(),
            log_second: AtomicU64::new(0),
            logged: AtomicU64::new(0),
        }
    }

    /// Whether a slow command may write its log line now (at most 10 a second).
    pub fn may_log(&self) -> bool {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        if self.log_second.swap(now, Ordering::Relaxed) != now {
            self.logged.store(0, Ordering::Relaxed);
        }
        self.logged.fetch_add(1, Ordering::Relaxed) < SLOW_LINES_PER_SEC
    }

    /// Whether a command that took `micros` goes into the log.
    #[inline]
    pub fn wants(&self, micros: u64) -> bool {
        let t = self.slower_than_us.load(Ordering::Relaxed);
        t >= 0 && micros >= t as u64
    }

    /// Logs a command (its arguments shortened as Redis shortens them).
    pub fn push(&self, args: &[bytes::Bytes], micros: u64, client: String, name: bytes::Bytes) {
        let max = self.max_len.load(Ordering::Relaxed) as usize;
        let mut kept: Vec<bytes::Bytes> = Vec::with_capacity(args.len().min(SLOWLOG_MAX_ARGS));
        for (i, a) in args.iter().enumerate() {
            if i == SLOWLOG_MAX_ARGS - 1 && args.len() > SLOWLOG_MAX_ARGS {
                kept.push(format!("... ({} more arguments)", args.len() - i).into());
                break;
            }
            // Copied: an argument shares the connection's whole read buffer, which it would keep alive.
            if a.len() > SLOWLOG_MAX_ARG_BYTES {
                let mut v = a[..SLOWLOG_MAX_ARG_BYTES].to_vec();
                v.extend_from_slice(format!("... ({} more bytes)", a.len() - SLOWLOG_MAX_ARG_BYTES).as_bytes());
                kept.push(v.into());
            } else {
                kept.push(bytes::Bytes::copy_from_slice(a));
            }
        }
        let time = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let name = bytes::Bytes::copy_from_slice(&name);
        let entry =
            SlowEntry { id: self.next_id.fetch_add(1, Ordering::Relaxed), time, micros, args: kept, client, name };
        let mut entries = self.entries.lock();
        entries.push_front(entry);
        entries.truncate(max);
    }

    /// The newest `count` entries (all with `None`), newest first.
    pub fn get(&self, count: Option<usize>) -> Vec<SlowEntry> {
        let entries = self.entries.lock();
        entries.iter().take(count.unwrap_or(usize::MAX)).cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.entries.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn reset(&self) {
        self.entries.lock().clear();
    }

    /// CONFIG SET slowlog-max-len: longer logs are cut at once.
    pub fn set_max_len(&self, max: u64) {
        self.max_len.store(max, Ordering::Relaxed);
        self.entries.lock().truncate(max as usize);
    }
}

/// Samples kept per latency event (Redis keeps 160).
pub const LATENCY_SAMPLES: usize = 160;

/// One latency event's samples: at most one per second (the highest), the newest last.
#[derive(Debug, Clone, Default)]
pub struct LatencyEvent {
    pub samples: std::collections::VecDeque<(u64, u64)>,
    pub max_ms: u64,
}

/// LATENCY: events (`command`, `fast-command`, `wal-fsync`, ...) that took at least
/// `latency-monitor-threshold` milliseconds (0: the monitor is off).
#[derive(Default)]
pub struct LatencyMonitor {
    pub threshold_ms: AtomicU64,
    events: Mutex<std::collections::BTreeMap<&'static str, LatencyEvent>>,
}

impl LatencyMonitor {
    /// Records `ms` for `event` when the monitor is on and `ms` reaches its threshold.
    #[inline]
    pub fn sample(&self, event: &'static str, ms: u64) {
        let t = self.threshold_ms.load(Ordering::Relaxed);
        if t == 0 || ms < t {
            return;
        }
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let mut events = self.events.lock();
        let e = events.entry(event).or_default();
        e.max_ms = e.max_ms.max(ms);
        match e.samples.back_mut() {
            Some(last) if last.0 == now => last.1 = last.1.max(ms),
            _ => {
                if e.samples.len() == LATENCY_SAMPLES {
                    e.samples.pop_front();
                }
                e.samples.push_back((now, ms));
            }
        }
    }

    /// Every event with samples, by name.
    pub fn events(&self) -> Vec<(&'static str, LatencyEvent)> {
        self.events.lock().iter().map(|(k, v)| (*k, v.clone())).collect()
    }

    pub fn event(&self, name: &[u8]) -> Option<LatencyEvent> {
        self.events.lock().iter().find(|(k, _)| k.as_bytes() == name).map(|(_, v)| v.clone())
    }

    /// Forgets the named events (all with an empty list); how many there were.
    pub fn reset(&self, names: &[bytes::Bytes]) -> usize {
        let mut events = self.events.lock();
        if names.is_empty() {
            let n = events.len();
            events.clear();
            return n;
        }
        let before = events.len();
        events.retain(|k, _| !names.iter().any(|n| n.as_ref() == k.as_bytes()));
        before - events.len()
    }
}

/// Which front end a statistic is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Front {
    Resp = 0,
    Http = 1,
}

/// A rate Redis's way: sampled every 100 ms, the mean of the last 16 samples per second.
#[derive(Default)]
pub struct Rate {
    samples: Mutex<RateSamples>,
}

/// The last 16 rates, and the counter's last value and when it was read.
#[derive(Default)]
struct RateSamples {
    rates: std::collections::VecDeque<f64>,
    last: Option<(std::time::Instant, u64)>,
}

impl Rate {
    /// Takes a sample of a counter that only grows.
    pub fn sample(&self, total: u64) {
        let now = std::time::Instant::now();
        let mut s = self.samples.lock();
        if let Some((at, was)) = s.last {
            let secs = now.duration_since(at).as_secs_f64();
            if secs > 0.0 {
                if s.rates.len() == 16 {
                    s.rates.pop_front();
                }
                s.rates.push_back(total.saturating_sub(was) as f64 / secs);
            }
        }
        s.last = Some((now, total));
    }

    /// Per second.
    pub fn value(&self) -> f64 {
        let s = self.samples.lock();
        if s.rates.is_empty() { 0.0 } else { s.rates.iter().sum::<f64>() / s.rates.len() as f64 }
    }
}

/// What the server counts about its work, shared by the front ends, INFO and `/metrics`.
pub struct ServerStats {
    /// Per RESP command (indexed by command-table row).
    pub resp: CommandStats,
    /// Per HTTP operation (indexed by the operation table).
    pub http: CommandStats,
    /// Error replies to RESP clients (INFO errorstats).
    pub errors: ErrorStats,
    /// Errors HTTP requests answered.
    pub http_errors: ErrorStats,
    pub slowlog: SlowLog,
    pub latency: LatencyMonitor,
    /// Bytes read and written, by front end.
    pub net_in: [AtomicU64; 2],
    pub net_out: [AtomicU64; 2],
    /// Failed logins (AUTH, HELLO AUTH, HTTP credentials).
    pub auth_failures: AtomicU64,
    /// `metrics.command_timing`: commands are timed (off: counted only, for the cost comparison).
    pub timing: bool,
    pub ops_rate: Rate,
    pub in_rate: Rate,
    pub out_rate: Rate,
    /// The most memory the data used (INFO's `used_memory_peak`), sampled.
    pub memory_peak: AtomicU64,
    /// How long recovery took at start (ms).
    pub recovery_ms: AtomicU64,
}

impl ServerStats {
    pub fn new(http_ops: usize, cfg: &crate::config::Config) -> ServerStats {
        ServerStats {
            resp: CommandStats::new(synap_core::command::table::COMMANDS.len()),
            http: CommandStats::new(http_ops),
            errors: ErrorStats::default(),
            http_errors: ErrorStats::default(),
            slowlog: SlowLog::new(cfg.metrics.slowlog_log_slower_than, cfg.metrics.slowlog_max_len),
            latency: LatencyMonitor {
                threshold_ms: cfg.metrics.latency_monitor_threshold.into(),
                ..Default::default()
            },
            net_in: Default::default(),
            net_out: Default::default(),
            auth_failures: AtomicU64::new(0),
            timing: cfg.metrics.command_timing,
            ops_rate: Rate::default(),
            in_rate: Rate::default(),
            out_rate: Rate::default(),
            memory_peak: AtomicU64::new(0),
            recovery_ms: AtomicU64::new(0),
        }
    }

    pub fn add_in(&self, front: Front, n: usize) {
        self.net_in[front as usize].fetch_add(n as u64, Ordering::Relaxed);
    }

    pub fn add_out(&self, front: Front, n: usize) {
        self.net_out[front as usize].fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Commands run over RESP (Redis's `total_commands_processed`: refused ones are not).
    pub fn commands_processed(&self) -> u64 {
        self.resp.totals().iter().map(|t| t.calls).sum()
    }

    /// CONFIG RESETSTAT's share: command, error and byte counts (not SLOWLOG or LATENCY, as in Redis).
    pub fn reset(&self) {
        self.resp.reset();
        self.http.reset();
        self.errors.reset();
        self.http_errors.reset();
        self.memory_peak.store(0, Ordering::Relaxed);
        for a in self.net_in.iter().chain(&self.net_out) {
            a.store(0, Ordering::Relaxed);
        }
        self.auth_failures.store(0, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_add_up_and_a_reset_starts_from_zero() {
        let stats = CommandStats::new(3);
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let s = stats.clone();
                std::thread::spawn(move || {
                    for i in 0..1000u64 {
                        s.record(1, Outcome::Ok, Some(Duration::from_micros(i % 10 + 1)));
                    }
                    s.record(1, Outcome::Rejected, None);
                    s.record(2, Outcome::Failed, Some(Duration::from_millis(3)));
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let t = stats.totals();
        assert_eq!(t[0], Totals::default());
        assert_eq!((t[1].calls, t[1].rejected, t[1].failed, t[1].timed()), (4000, 4, 0, 4000));
        assert_eq!(t[1].nanos, 4 * (1..=10).map(|i| i * 100 * 1000).sum::<u64>());
        assert_eq!((t[2].calls, t[2].failed), (4, 4));
        // Half the calls took at most 5 µs; every one at most 10 µs.
        let p50 = t[1].percentile_usec(0.5).unwrap();
        assert!((4.0..=6.0).contains(&p50), "{p50}");
        let p100 = t[1].percentile_usec(1.0).unwrap();
        assert!((9.0..=11.5).contains(&p100), "{p100}");
        let p = t[2].percentile_usec(0.99).unwrap();
        // 3 ms falls in the bucket (2896 µs, 3444 µs]; the top rank interpolates to its upper bound.
        assert!((2896.0..=3445.0).contains(&p), "{p}");
        // Ended threads handed their blocks on: no more blocks than threads at once.
        assert!(stats.inner.blocks.lock().len() <= 4);
        stats.reset();
        assert_eq!(stats.totals()[1], Totals { hist: vec![0; BUCKETS], ..Totals::default() });
        stats.record(1, Outcome::Ok, Some(Duration::from_micros(1)));
        assert_eq!(stats.totals()[1].calls, 1);
        // Untimed: counted, no time, nothing in the histogram.
        stats.record(0, Outcome::Ok, None);
        let t = stats.totals();
        assert_eq!((t[0].calls, t[0].nanos, t[0].timed()), (1, 0, 0));
        // An index out of range is ignored.
        stats.record(9, Outcome::Ok, Some(Duration::from_micros(1)));
    }

    #[test]
    fn the_slow_log_shortens_and_keeps_the_newest() {
        let log = SlowLog::new(100, 2);
        assert!(!log.wants(99) && log.wants(100));
        let long: Vec<bytes::Bytes> = (0..40).map(|i| bytes::Bytes::from(format!("a{i}"))).collect();
        log.push(&long, 150, "127.0.0.1:1".into(), bytes::Bytes::new());
        let e = &log.get(None)[0];
        assert_eq!(e.args.len(), 32);
        assert_eq!(e.args[31], bytes::Bytes::from("... (9 more arguments)"));
        assert_eq!(e.args[30], bytes::Bytes::from("a30"));
        log.push(&[bytes::Bytes::from(vec![b'x'; 130])], 200, String::new(), bytes::Bytes::new());
        let e = &log.get(Some(1))[0];
        assert_eq!(e.args[0].len(), 128 + "... (2 more bytes)".len());
        assert!(e.args[0].ends_with(b"x... (2 more bytes)"));
        log.push(&[bytes::Bytes::from("third")], 300, String::new(), bytes::Bytes::new());
        let ids: Vec<u64> = log.get(None).iter().map(|e| e.id).collect();
        assert_eq!(ids, vec![2, 1]);
        log.set_max_len(1);
        assert_eq!(log.len(), 1);
        log.slower_than_us.store(-1, Ordering::Relaxed);
        assert!(!log.wants(u64::MAX));
    }

    #[test]
    fn latency_events_keep_the_highest_per_second_and_a_bounded_history() {
        let m = LatencyMonitor::default();
        m.sample("command", 500);
        assert!(m.events().is_empty(), "the monitor is off at threshold 0");
        m.threshold_ms.store(10, Ordering::Relaxed);
        m.sample("command", 9);
        assert!(m.events().is_empty());
        m.sample("command", 20);
        m.sample("command", 15);
        let e = m.event(b"command").unwrap();
        assert_eq!(e.samples.len(), 1);
        assert_eq!((e.samples[0].1, e.max_ms), (20, 20));
        {
            let mut events = m.events.lock();
            let e = events.get_mut("command").unwrap();
            e.samples.clear();
            for i in 0..LATENCY_SAMPLES as u64 {
                e.samples.push_back((i, 1));
            }
        }
        // A new second when the history is full: the oldest goes.
        m.sample("command", 30);
        assert_eq!(m.event(b"command").unwrap().samples.front(), Some(&(1, 1)));
        assert_eq!(m.event(b"command").unwrap().samples.len(), LATENCY_SAMPLES);
        m.sample("fast-command", 11);
        assert_eq!(m.reset(&[bytes::Bytes::from("command"), bytes::Bytes::from("nope")]), 1);
        assert_eq!(m.reset(&[]), 1);
    }

    #[test]
    fn errors_count_by_code_up_to_a_limit() {
        let e = ErrorStats::default();
        e.record(b"-ERR syntax error\r\n");
        e.record(b"-ERR other");
        e.record(b"WRONGTYPE Operation");
        assert_eq!(e.counts(), vec![("ERR".to_string(), 2), ("WRONGTYPE".to_string(), 1)]);
        for i in 0..200 {
            e.record(format!("-E{i} x").as_bytes());
        }
        // The 129th code turned the counts off: every later error counts as one code.
        assert_eq!(e.counts(), vec![(DISABLED.to_string(), 200 - (MAX_ERROR_CODES as u64 - 2))]);
        assert_eq!(e.total(), 203);
        e.reset();
        e.record(b"-ERR x");
        assert_eq!(e.counts(), vec![("ERR".to_string(), 1)]);
        assert_eq!(error_code(b"-NOPERM User"), b"NOPERM");
        assert!(is_rejection(error_code(b"-READONLY You")));
        assert!(!is_rejection(error_code(b"-WRONGTYPE x")));
    }
}
