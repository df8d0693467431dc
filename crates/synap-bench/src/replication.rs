//! The `replication` scenario: one primary taking writes (at a fixed rate or flat out), readers on each
//! replica, and a lag probe. Measured the same way on Synap and on Redis:
//! - write throughput and latency on the primary, read throughput and latency on the replicas;
//! - replication lag in ms: a probe writes a sequence number to the primary and, once acknowledged,
//!   polls every replica until it reads that number (time from the acknowledgement to visibility);
//! - lag in offsets: `master_repl_offset` minus each replica's acknowledged `offset` from the primary's
//!   `INFO replication`, sampled ten times a second (records on Synap, bytes on Redis).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use synap_client::{Connection, Value};

use crate::kv::{self, KvArgs};
use crate::report::{Report, histogram};

#[derive(Debug, Clone, Args)]
pub struct ReplicationArgs {
    /// The replicas of the primary at --host/--port (`host:port`, comma-separated); none: the primary
    /// alone, the baseline for write throughput.
    #[arg(long, value_delimiter = ',')]
    pub replicas: Vec<String>,
    /// The replicas of the --compare primary.
    #[arg(long, value_delimiter = ',')]
    pub compare_replicas: Vec<String>,
    /// Seconds of load.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Total write rate on the primary (SET ops/s); none: as fast as the writers go.
    #[arg(long)]
    pub rate: Option<u64>,
    /// Writer connections on the primary.
    #[arg(long, default_value_t = 10)]
    pub writers: usize,
    /// Reader connections on each replica (0: none).
    #[arg(long, default_value_t = 4)]
    pub readers_per_replica: usize,
    #[arg(long, default_value_t = 100)]
    pub value_size: usize,
    #[arg(long, default_value_t = 10_000)]
    pub keyspace: u64,
    /// Lag probes per second.
    #[arg(long, default_value_t = 50)]
    pub probes: u64,
}

pub struct ReplicationReport {
    pub writes: Report,
    /// One per replica.
    pub reads: Vec<Report>,
    pub lag: Option<Report>,
    /// p50, p95, p99 and max of the sampled offset lag.
    pub offset_lag: Option<[u64; 4]>,
}

fn kv_args(a: &ReplicationArgs, read_ratio: f64, connections: usize, rate: Option<u64>) -> KvArgs {
    KvArgs {
        operations: u64::MAX,
        duration: Some(a.duration),
        read_ratio,
        key_size: 20,
        value_size: a.value_size,
        keyspace: a.keyspace,
        connections,
        pipeline: 1,
        rate,
    }
}

pub async fn run(
    addr: &str,
    target: &str,
    replicas: &[String],
    a: &ReplicationArgs,
    progress: &indicatif::ProgressBar,
) -> anyhow::Result<ReplicationReport> {
    if a.writers == 0 || a.keyspace == 0 || a.probes == 0 {
        bail!("--writers, --keyspace and --probes must be at least 1");
    }
    for r in replicas {
        let mut c = Connection::connect(r).await.with_context(|| format!("cannot connect to replica {r}"))?;
        let info = info(&mut c).await?;
        if !info.contains("role:slave") {
            bail!("{r} is not a replica (INFO replication says no role:slave)");
        }
    }
    let writes_args = kv_args(a, 0.0, a.writers, a.rate);
    kv::prefill(addr, &writes_args).await.with_context(|| format!("cannot prefill {addr}"))?;
    let stop = Arc::new(AtomicBool::new(false));
    let probe = (!replicas.is_empty()).then(|| {
        let (addr, replicas, stop, every) =
            (addr.to_string(), replicas.to_vec(), stop.clone(), Duration::from_secs_f64(1.0 / a.probes as f64));
        tokio::spawn(async move { probe_lag(&addr, &replicas, every, &stop).await })
    });
    let offsets = (!replicas.is_empty()).then(|| {
        let (addr, stop) = (addr.to_string(), stop.clone());
        tokio::spawn(async move { sample_offsets(&addr, &stop).await })
    });
    progress.set_length((a.duration * 1000.0) as u64);
    let writes = {
        let (addr, target, args) = (addr.to_string(), target.to_string(), writes_args.clone());
        tokio::spawn(async move { kv::run_loaded("replication-write", &addr, &target, &args).await })
    };
    let mut reads = Vec::new();
    for r in replicas.iter().filter(|_| a.readers_per_replica > 0) {
        let (r, target, args) = (r.clone(), target.to_string(), kv_args(a, 1.0, a.readers_per_replica, None));
        reads.push(tokio::spawn(async move { kv::run_loaded("replication-read", &r, &target, &args).await }));
    }
    let started = Instant::now();
    let ticker = {
        let progress = progress.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                progress.set_position(started.elapsed().as_millis() as u64);
            }
        })
    };
    let writes = writes.await.context("writers panicked")??;
    let mut read_reports = Vec::new();
    for r in reads {
        read_reports.push(r.await.context("readers panicked")??);
    }
    stop.store(true, Ordering::Relaxed);
    ticker.abort();
    progress.finish_and_clear();
    let lag = match probe {
        Some(p) => {
            let (h, errors) = p.await.context("lag probe panicked")??;
            Some(Report::new("replication-lag", target, addr, &h, errors, a.duration, Some(a.probes)))
        }
        None => None,
    };
    let offset_lag = match offsets {
        Some(o) => o.await.context("offset sampler panicked")??,
        None => None,
    };
    Ok(ReplicationReport { writes, reads: read_reports, lag, offset_lag })
}

async fn info(c: &mut Connection) -> anyhow::Result<String> {
    match c.call(&["INFO", "replication"]).await? {
        Value::Bulk(b) => Ok(String::from_utf8_lossy(&b).into_owned()),
        other => bail!("unexpected INFO reply: {other:?}"),
    }
}

/// Writes `probe` = n to the primary; once acknowledged, polls each replica until it reads n. Records the
/// time from the acknowledgement to the last replica seeing it (µs). A probe not seen within 10 s counts
/// as an error.
async fn probe_lag(
    primary: &str,
    replicas: &[String],
    every: Duration,
    stop: &AtomicBool,
) -> anyhow::Result<(hdrhistogram::Histogram<u64>, u64)> {
    let mut p = Connection::connect(primary).await?;
    let mut rs = Vec::new();
    for r in replicas {
        rs.push(Connection::connect(r).await?);
    }
    let mut h = histogram();
    let mut errors = 0;
    let key = b"synap-bench:lag-probe".as_slice();
    let mut n: u64 = u64::from(std::process::id()) << 32;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let want = n.to_string();
        if let Value::Error(e) = p.call(&[b"SET".as_slice(), key, want.as_bytes()]).await? {
            bail!("probe write failed: {e}");
        }
        let acked = Instant::now();
        let deadline = acked + Duration::from_secs(10);
        let mut seen = vec![false; rs.len()];
        while seen.iter().any(|s| !s) && Instant::now() < deadline {
            for (i, r) in rs.iter_mut().enumerate() {
                if !seen[i]
                    && let Value::Bulk(v) = r.call(&[b"GET".as_slice(), key]).await?
                    && &v[..] == want.as_bytes()
                {
                    seen[i] = true;
                }
            }
        }
        if seen.iter().all(|s| *s) {
            h.record((acked.elapsed().as_micros() as u64).clamp(1, 60_000_000))?;
        } else {
            errors += 1;
        }
        tokio::time::sleep_until((acked + every).into()).await;
    }
    Ok((h, errors))
}

/// Samples `master_repl_offset` minus each replica's acknowledged offset, ten times a second.
async fn sample_offsets(primary: &str, stop: &AtomicBool) -> anyhow::Result<Option<[u64; 4]>> {
    let mut c = Connection::connect(primary).await?;
    let mut h = hdrhistogram::Histogram::<u64>::new(3)?;
    let samples = AtomicU64::new(0);
    while !stop.load(Ordering::Relaxed) {
        let text = info(&mut c).await?;
        let field = |name: &str| text.lines().find_map(|l| l.strip_prefix(name)).map(str::trim);
        let master: u64 = field("master_repl_offset:").and_then(|v| v.parse().ok()).unwrap_or(0);
        for line in text.lines().filter(|l| l.starts_with("slave") && l.contains("offset=")) {
            let offset = line
                .split([':', ','])
                .find_map(|kv| kv.strip_prefix("offset="))
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
            h.record(master.saturating_sub(offset))?;
            samples.fetch_add(1, Ordering::Relaxed);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if samples.load(Ordering::Relaxed) == 0 {
        return Ok(None);
    }
    Ok(Some([h.value_at_quantile(0.5), h.value_at_quantile(0.95), h.value_at_quantile(0.99), h.max()]))
}
