//! The `pubsub` scenario: subscribers on many connections (exact channels and glob patterns), publishers
//! sending to a set of topics; measures the publish (routing) latency and the delivery latency and rate.
//! The same RESP commands run against Synap or Redis. Deliveries are counted against the receiver counts
//! PUBLISH answered, so a lost message shows as an error.
//!
//! Topics are `bench.<group>.<n>` (ten per group). Exact subscriptions pick a topic among
//! `--exact-spread` times the published ones; pattern subscriptions (`bench.<group>.*`) pick a group among
//! `--pattern-spread` times the published groups; the defaults give about 3 receivers per message.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use rand::{Rng, SeedableRng};
use synap_client::{Connection, Value};
use synap_resp::encode_command;

use crate::report::{Report, histogram};

#[derive(Debug, Clone, Args)]
pub struct PubSubArgs {
    /// Topics messages are published to.
    #[arg(long, default_value_t = 1000)]
    pub topics: u64,
    #[arg(long, default_value_t = 100_000)]
    pub messages: u64,
    /// Subscriptions in all.
    #[arg(long, default_value_t = 5000)]
    pub subscribers: u64,
    /// Share of subscriptions that are patterns.
    #[arg(long, default_value_t = 0.2)]
    pub wildcard_ratio: f64,
    /// Connections the subscriptions are spread over.
    #[arg(long, default_value_t = 50)]
    pub subscriber_connections: usize,
    #[arg(long, default_value_t = 4)]
    pub publishers: usize,
    /// PUBLISH commands in flight per publisher.
    #[arg(long, default_value_t = 16)]
    pub pipeline: usize,
    #[arg(long, default_value_t = 64)]
    pub payload_size: usize,
    #[arg(long, default_value_t = 2)]
    pub exact_spread: u64,
    #[arg(long, default_value_t = 10)]
    pub pattern_spread: u64,
}

fn topic(i: u64) -> String {
    format!("bench.{}.{}", i / 10, i % 10)
}

pub struct PubSubReports {
    pub publish: Report,
    pub delivery: Report,
}

pub async fn run(
    addr: &str,
    target: &str,
    a: &PubSubArgs,
    progress: &indicatif::ProgressBar,
) -> anyhow::Result<PubSubReports> {
    if a.topics < 10 || a.messages == 0 || a.subscriber_connections == 0 || a.publishers == 0 || a.pipeline == 0 {
        bail!(
            "--topics must be at least 10; --messages, --subscriber-connections, --publishers, --pipeline at least 1"
        );
    }
    if !(0.0..=1.0).contains(&a.wildcard_ratio) {
        bail!("--wildcard-ratio must be between 0 and 1");
    }
    let started = Instant::now();
    let delivered = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(tokio::sync::Notify::new());
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    // Subscriber connections, each with its share of subscriptions.
    let mut subs = Vec::new();
    let per_conn = a.subscribers.div_ceil(a.subscriber_connections as u64);
    let mut remaining = a.subscribers;
    let mut ready = Vec::new();
    for _ in 0..a.subscriber_connections {
        let n = per_conn.min(remaining);
        remaining -= n;
        if n == 0 {
            break;
        }
        let mut exact = Vec::new();
        let mut patterns = Vec::new();
        for _ in 0..n {
            if rng.random::<f64>() < a.wildcard_ratio {
                let groups = (a.topics / 10) * a.pattern_spread;
                patterns.push(format!("bench.{}.*", rng.random_range(0..groups)));
            } else {
                exact.push(topic(rng.random_range(0..a.topics * a.exact_spread)));
            }
        }
        let mut conn = Connection::connect(addr).await.with_context(|| format!("cannot connect to {addr}"))?;
        let mut expect = 0;
        let mut cmds: Vec<Vec<Vec<u8>>> = Vec::new();
        if !exact.is_empty() {
            let mut c = vec![b"SUBSCRIBE".to_vec()];
            c.extend(exact.iter().map(|t| t.clone().into_bytes()));
            expect += exact.len();
            cmds.push(c);
        }
        if !patterns.is_empty() {
            let mut c = vec![b"PSUBSCRIBE".to_vec()];
            c.extend(patterns.iter().map(|t| t.clone().into_bytes()));
            expect += patterns.len();
            cmds.push(c);
        }
        let mut buf = Vec::new();
        for c in &cmds {
            encode_command(c, &mut buf);
        }
        conn.send_raw(&buf).await?;
        // One confirmation per channel or pattern.
        for _ in 0..expect {
            conn.read_value().await?;
        }
        ready.push(conn);
    }
    for mut conn in ready {
        let (delivered, stop) = (delivered.clone(), stop.clone());
        subs.push(tokio::spawn(async move {
            let mut h = histogram();
            loop {
                let v = tokio::select! {
                    v = conn.read_value() => v?,
                    _ = stop.notified() => return Ok::<_, anyhow::Error>(h),
                };
                let payload = match v {
                    Value::Array(items) | Value::Push(items) if items.len() >= 3 => items.last().cloned(),
                    _ => None,
                };
                if let Some(Value::Bulk(p)) = payload
                    && p.len() >= 8
                {
                    let sent = u64::from_le_bytes(p[..8].try_into().expect("8 bytes"));
                    let now = started.elapsed().as_micros() as u64;
                    h.record(now.saturating_sub(sent).max(1))?;
                    delivered.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    progress.set_length(a.messages);
    let expected = Arc::new(AtomicU64::new(0));
    let publish_started = Instant::now();
    let mut pubs = Vec::new();
    for p in 0..a.publishers {
        let n = a.messages / a.publishers as u64 + u64::from((p as u64) < a.messages % a.publishers as u64);
        let (addr, a, expected, progress) = (addr.to_string(), a.clone(), expected.clone(), progress.clone());
        pubs.push(tokio::spawn(async move {
            let mut conn = Connection::connect(&addr).await?;
            let mut h = histogram();
            let mut rng = rand::rngs::StdRng::seed_from_u64(100 + p as u64);
            let mut sent = 0;
            let mut buf = Vec::new();
            let mut errors = 0u64;
            while sent < n {
                let batch = (n - sent).min(a.pipeline as u64);
                buf.clear();
                let t0 = started.elapsed().as_micros() as u64;
                let mut payload = vec![b'p'; a.payload_size.max(8)];
                payload[..8].copy_from_slice(&t0.to_le_bytes());
                for _ in 0..batch {
                    let t = topic(rng.random_range(0..a.topics));
                    encode_command(&[b"PUBLISH".as_slice(), t.as_bytes(), &payload], &mut buf);
                }
                conn.send_raw(&buf).await?;
                for _ in 0..batch {
                    match conn.read_value().await? {
                        Value::Int(r) => {
                            expected.fetch_add(r as u64, Ordering::Relaxed);
                        }
                        _ => errors += 1,
                    }
                }
                let rtt = (started.elapsed().as_micros() as u64).saturating_sub(t0).max(1);
                for _ in 0..batch {
                    h.record(rtt)?;
                }
                sent += batch;
                progress.inc(batch);
            }
            Ok::<_, anyhow::Error>((h, errors))
        }));
    }
    let mut publish = histogram();
    let mut errors = 0;
    for p in pubs {
        let (h, e) = p.await.context("publisher panicked")??;
        publish.add(&h)?;
        errors += e;
    }
    let publish_secs = publish_started.elapsed().as_secs_f64();
    // Wait for the deliveries to arrive (bounded: what is missing then counts as lost).
    let want = expected.load(Ordering::Relaxed);
    let deadline = Instant::now() + Duration::from_secs(30);
    while delivered.load(Ordering::Relaxed) < want && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let delivery_secs = publish_started.elapsed().as_secs_f64();
    stop.notify_waiters();
    let mut delivery = histogram();
    for s in subs {
        delivery.add(&s.await.context("subscriber panicked")??)?;
    }
    let got = delivered.load(Ordering::Relaxed);
    let lost = want.saturating_sub(got);
    progress.finish_and_clear();
    let receivers = want as f64 / a.messages as f64;
    eprintln!("pubsub {target}: {want} deliveries expected ({receivers:.2} per message), {got} received");
    Ok(PubSubReports {
        publish: Report::new("pubsub publish", target, addr, &publish, errors, publish_secs, None),
        delivery: Report::new("pubsub delivery", target, addr, &delivery, lost, delivery_secs, None),
    })
}
