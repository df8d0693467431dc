//! The `kv` scenario: a read/write mix of GET and SET over a key space, from several connections.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use hdrhistogram::Histogram;
use rand::{Rng, SeedableRng};
use synap_client::{Connection, Value};
use synap_resp::encode_command;

use crate::report::{Report, histogram};

#[derive(Debug, Clone, Args)]
pub struct KvArgs {
    /// Total operations (ignored with --duration).
    #[arg(long, default_value_t = 100_000)]
    pub operations: u64,
    /// Run for this many seconds instead of a fixed number of operations.
    #[arg(long)]
    pub duration: Option<f64>,
    /// Share of reads (GET); the rest are writes (SET).
    #[arg(long, default_value_t = 0.8)]
    pub read_ratio: f64,
    /// Key length in bytes.
    #[arg(long, default_value_t = 20)]
    pub key_size: usize,
    /// Value length in bytes.
    #[arg(long, default_value_t = 100)]
    pub value_size: usize,
    /// Number of distinct keys (all written before the timed run, so reads hit).
    #[arg(long, default_value_t = 10_000)]
    pub keyspace: u64,
    /// Concurrent connections.
    #[arg(long, default_value_t = 10)]
    pub connections: usize,
    /// Commands in flight per connection (pipeline depth).
    #[arg(long, default_value_t = 1)]
    pub pipeline: usize,
    /// Fixed total request rate (ops/s), latency measured from each request's scheduled time (as wrk2).
    #[arg(long)]
    pub rate: Option<u64>,
}

fn key(i: u64, size: usize) -> Vec<u8> {
    let mut k = format!("bench:{i}").into_bytes();
    if k.len() < size {
        k.resize(size, b'_');
    }
    k
}

/// Writes every key of the key space once (pipelined), so that reads hit.
pub(crate) async fn prefill(addr: &str, a: &KvArgs) -> anyhow::Result<()> {
    let mut conn = Connection::connect(addr).await?;
    let value = vec![b'v'; a.value_size];
    let mut i = 0;
    while i < a.keyspace {
        let end = (i + 512).min(a.keyspace);
        let cmds: Vec<Vec<Vec<u8>>> =
            (i..end).map(|k| vec![b"SET".to_vec(), key(k, a.key_size), value.clone()]).collect();
        for r in conn.pipeline(&cmds).await? {
            if let Value::Error(e) = r {
                bail!("prefill failed: {e}");
            }
        }
        i = end;
    }
    Ok(())
}

struct Shared {
    done: AtomicU64,
    errors: AtomicU64,
}

pub async fn run(addr: &str, target: &str, a: &KvArgs, progress: &indicatif::ProgressBar) -> anyhow::Result<Report> {
    if !(0.0..=1.0).contains(&a.read_ratio) {
        bail!("--read-ratio must be between 0 and 1");
    }
    if a.connections == 0 || a.pipeline == 0 || a.keyspace == 0 {
        bail!("--connections, --pipeline and --keyspace must be at least 1");
    }
    prefill(addr, a).await.with_context(|| format!("cannot prefill {addr}"))?;
    run_prefilled("kv", addr, target, a, progress).await
}

/// The timed part of a run over a key space already written (the replication scenario runs writers on a
/// primary and readers on its replicas this way).
pub(crate) async fn run_loaded(scenario: &str, addr: &str, target: &str, a: &KvArgs) -> anyhow::Result<Report> {
    run_prefilled(scenario, addr, target, a, &indicatif::ProgressBar::hidden()).await
}

async fn run_prefilled(
    scenario: &str,
    addr: &str,
    target: &str,
    a: &KvArgs,
    progress: &indicatif::ProgressBar,
) -> anyhow::Result<Report> {
    let shared = Arc::new(Shared { done: AtomicU64::new(0), errors: AtomicU64::new(0) });
    let per_conn = a.operations / a.connections as u64;
    let extra = a.operations % a.connections as u64;
    let deadline = a.duration.map(Duration::from_secs_f64);
    progress.set_length(deadline.map(|d| d.as_millis() as u64).unwrap_or(a.operations));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..a.connections {
        let ops = per_conn + u64::from((c as u64) < extra);
        let (addr, a, shared) = (addr.to_string(), a.clone(), shared.clone());
        let interval = a.rate.map(|r| Duration::from_secs_f64(a.connections as f64 / r.max(1) as f64));
        tasks.push(tokio::spawn(async move {
            worker(&addr, &a, ops, deadline, interval, started, &shared, c as u64).await
        }));
    }
    let mut total = histogram();
    let ticker = {
        let (shared, progress) = (shared.clone(), progress.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                match deadline {
                    Some(_) => progress.set_position(started.elapsed().as_millis() as u64),
                    None => progress.set_position(shared.done.load(Ordering::Relaxed)),
                }
            }
        })
    };
    for t in tasks {
        let h = t.await.context("worker panicked")??;
        total.add(&h).context("merging histograms")?;
    }
    ticker.abort();
    let seconds = started.elapsed().as_secs_f64();
    progress.finish_and_clear();
    Ok(Report::new(scenario, target, addr, &total, shared.errors.load(Ordering::Relaxed), seconds, a.rate))
}

#[allow(clippy::too_many_arguments)]
async fn worker(
    addr: &str,
    a: &KvArgs,
    ops: u64,
    deadline: Option<Duration>,
    interval: Option<Duration>,
    started: Instant,
    shared: &Shared,
    seed: u64,
) -> anyhow::Result<Histogram<u64>> {
    let mut conn = Connection::connect(addr).await?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 42);
    let value = vec![b'x'; a.value_size];
    let mut h = histogram();
    let mut buf = Vec::with_capacity(a.pipeline * (a.key_size + a.value_size + 64));
    let mut sent: u64 = 0;
    loop {
        let remaining = match deadline {
            Some(d) if started.elapsed() >= d => break,
            Some(_) => a.pipeline as u64,
            None if sent >= ops => break,
            None => (ops - sent).min(a.pipeline as u64),
        };
        // With a fixed rate, each batch has a scheduled time; latency counts from it, so a stall of the
        // server is charged to every request that should have been sent meanwhile.
        let scheduled = match interval {
            Some(iv) => {
                let at = started + iv.mul_f64(sent as f64);
                tokio::time::sleep_until(at.into()).await;
                at
            }
            None => Instant::now(),
        };
        buf.clear();
        for _ in 0..remaining {
            let k = key(rng.random_range(0..a.keyspace), a.key_size);
            if rng.random::<f64>() < a.read_ratio {
                encode_command(&[b"GET".as_slice(), &k], &mut buf);
            } else {
                encode_command(&[b"SET".as_slice(), &k, &value], &mut buf);
            }
        }
        conn.send_raw(&buf).await?;
        for _ in 0..remaining {
            if let Value::Error(_) = conn.read_value().await? {
                shared.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
        let us = scheduled.elapsed().as_micros().max(1) as u64;
        for _ in 0..remaining {
            h.record(us.min(60_000_000)).context("recording latency")?;
        }
        sent += remaining;
        shared.done.fetch_add(remaining, Ordering::Relaxed);
    }
    Ok(h)
}
