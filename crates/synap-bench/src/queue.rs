//! The `queue` scenario: producers publish, workers consume and acknowledge, against Synap (RESP queue
//! commands) or RabbitMQ (AMQP through lapin: durable queue, persistent messages, publisher confirms,
//! manual acks, prefetch). Reports the publish rate and latency, and the end-to-end rate and latency
//! (publish to consumption) of every message; any message not consumed exactly once is an error.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use futures_util::StreamExt;
use hdrhistogram::Histogram;
use rand::{Rng, SeedableRng};
use synap_client::{Connection, Value};
use synap_resp::encode_command;
use tokio::sync::watch;

use crate::report::{Report, histogram};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Priorities {
    /// Every message priority 0.
    None,
    /// Priorities 0-9, uniformly.
    Uniform,
}

#[derive(Debug, Clone, Args)]
pub struct QueueArgs {
    /// Messages to send through the queue.
    #[arg(long, default_value_t = 50_000)]
    pub messages: u64,
    #[arg(long, default_value_t = 100)]
    pub payload_size: usize,
    /// Consuming workers (one connection each).
    #[arg(long, default_value_t = 5)]
    pub workers: usize,
    /// Publishing connections.
    #[arg(long, default_value_t = 2)]
    pub producers: usize,
    /// Publishes in flight per producer before waiting for their confirmations.
    #[arg(long, default_value_t = 100)]
    pub confirm_window: usize,
    /// Messages a worker may hold unacknowledged.
    #[arg(long, default_value_t = 100)]
    pub prefetch: usize,
    #[arg(long, value_enum, default_value = "uniform")]
    pub priority_distribution: Priorities,
    /// Ack deadline in seconds.
    #[arg(long, default_value_t = 30)]
    pub ack_deadline: u64,
}

struct Shared {
    started: Instant,
    consumed: AtomicU64,
    errors: AtomicU64,
    done: watch::Sender<bool>,
}

impl Shared {
    fn elapsed_us(&self) -> u64 {
        self.started.elapsed().as_micros() as u64
    }
    /// Records one consumed message; signals the end when all have arrived.
    fn consumed_one(&self, total: u64) {
        if self.consumed.fetch_add(1, Ordering::Relaxed) + 1 >= total {
            let _ = self.done.send(true);
        }
    }
}

/// The payload: 8 bytes of send time (µs since the run started), then filler.
fn payload(size: usize, sent_us: u64) -> Vec<u8> {
    let mut p = vec![b'x'; size.max(8)];
    p[..8].copy_from_slice(&sent_us.to_le_bytes());
    p
}

fn sent_at(data: &[u8]) -> Option<u64> {
    data.get(..8).map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
}

pub struct QueueReports {
    pub publish: Report,
    pub end_to_end: Report,
}

fn split(total: u64, parts: usize, i: usize) -> u64 {
    total / parts as u64 + u64::from((i as u64) < total % parts as u64)
}

/// Runs the scenario against Synap at `addr`.
pub async fn run_synap(addr: &str, a: &QueueArgs, progress: &indicatif::ProgressBar) -> anyhow::Result<QueueReports> {
    validate(a)?;
    let name = format!("bench-{}-{}", std::process::id(), rand::random::<u32>());
    let mut admin = Connection::connect(addr).await?;
    let created = admin
        .call(&[
            "QCREATE",
            &name,
            "ACKDEADLINE",
            &(a.ack_deadline * 1000).to_string(),
            "PREFETCH",
            &a.prefetch.to_string(),
            "MAXDEPTH",
            &(a.messages * 2).to_string(),
        ])
        .await?;
    if let Value::Error(e) = created {
        bail!("QCREATE failed: {e}");
    }
    let (shared, mut done) = new_shared(a, progress);
    let mut workers = Vec::new();
    for w in 0..a.workers {
        let (addr, name, a, shared) = (addr.to_string(), name.clone(), a.clone(), shared.clone());
        let mut done = done.clone();
        workers.push(tokio::spawn(async move {
            let mut conn = Connection::connect(&addr).await?;
            let mut h = histogram();
            let consumer = format!("w{w}");
            let count = a.prefetch.to_string();
            loop {
                if *done.borrow_and_update() {
                    return Ok::<_, anyhow::Error>(h);
                }
                let reply = conn.call(&["QCONSUME", &name, &consumer, "COUNT", &count, "BLOCK", "200"]).await?;
                let msgs = match reply {
                    Value::Array(m) => m,
                    Value::Nil => continue,
                    Value::Error(_) => {
                        shared.errors.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    other => bail!("unexpected QCONSUME reply {other:?}"),
                };
                let mut ack: Vec<Vec<u8>> = vec![b"QACK".to_vec(), name.clone().into_bytes()];
                let now = shared.elapsed_us();
                for m in &msgs {
                    let (id, data) = match m {
                        Value::Array(f) if f.len() >= 6 => (f[1].as_text(), f[5].clone()),
                        Value::Map(f) if f.len() >= 3 => (f[0].1.as_text(), f[2].1.clone()),
                        other => bail!("unexpected message {other:?}"),
                    };
                    let (Some(id), Value::Bulk(data)) = (id, data) else { bail!("message without id or payload") };
                    if let Some(t) = sent_at(&data) {
                        h.record(now.saturating_sub(t).max(1))?;
                    }
                    ack.push(id.into_bytes());
                }
                match conn.call(&ack).await? {
                    Value::Int(n) if n as usize == msgs.len() => {}
                    _ => {
                        shared.errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                for _ in &msgs {
                    shared.consumed_one(a.messages);
                }
                if done.has_changed().unwrap_or(true) && *done.borrow() {
                    return Ok(h);
                }
            }
        }));
    }
    let mut producers = Vec::new();
    for p in 0..a.producers {
        let (addr, name, a, shared) = (addr.to_string(), name.clone(), a.clone(), shared.clone());
        let n = split(a.messages, a.producers, p);
        producers.push(tokio::spawn(async move {
            let mut conn = Connection::connect(&addr).await?;
            let mut rng = rand::rngs::StdRng::seed_from_u64(p as u64);
            let mut h = histogram();
            let mut buf = Vec::new();
            let mut sent = 0;
            while sent < n {
                let batch = (n - sent).min(a.confirm_window as u64);
                buf.clear();
                let t0 = shared.elapsed_us();
                for _ in 0..batch {
                    let priority = match a.priority_distribution {
                        Priorities::None => 0,
                        Priorities::Uniform => rng.random_range(0..10u8),
                    };
                    let body = payload(a.payload_size, t0);
                    encode_command(
                        &[b"QPUBLISH".as_slice(), name.as_bytes(), &body, b"PRIORITY", priority.to_string().as_bytes()],
                        &mut buf,
                    );
                }
                conn.send_raw(&buf).await?;
                for _ in 0..batch {
                    if let Value::Error(_) = conn.read_value().await? {
                        shared.errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                let rtt = shared.elapsed_us().saturating_sub(t0).max(1);
                for _ in 0..batch {
                    h.record(rtt)?;
                }
                sent += batch;
            }
            Ok::<_, anyhow::Error>((h, shared.started.elapsed()))
        }));
    }
    let result = finish(a, &shared, &mut done, producers, workers, "synap", addr).await;
    let _ = admin.call(&["QDELETE", &name]).await;
    result
}

fn validate(a: &QueueArgs) -> anyhow::Result<()> {
    if a.messages == 0 || a.workers == 0 || a.producers == 0 || a.confirm_window == 0 || a.prefetch == 0 {
        bail!("--messages, --workers, --producers, --confirm-window and --prefetch must be at least 1");
    }
    if a.prefetch > u16::MAX as usize {
        bail!("--prefetch must be at most 65535");
    }
    Ok(())
}

fn new_shared(a: &QueueArgs, progress: &indicatif::ProgressBar) -> (Arc<Shared>, watch::Receiver<bool>) {
    let (done, rx) = watch::channel(false);
    progress.set_length(a.messages);
    (Arc::new(Shared { started: Instant::now(), consumed: AtomicU64::new(0), errors: AtomicU64::new(0), done }), rx)
}

type Producer = tokio::task::JoinHandle<anyhow::Result<(Histogram<u64>, Duration)>>;
type Worker = tokio::task::JoinHandle<anyhow::Result<Histogram<u64>>>;

async fn finish(
    a: &QueueArgs,
    shared: &Arc<Shared>,
    done: &mut watch::Receiver<bool>,
    producers: Vec<Producer>,
    workers: Vec<Worker>,
    target: &str,
    addr: &str,
) -> anyhow::Result<QueueReports> {
    let mut publish = histogram();
    let mut publish_time = Duration::ZERO;
    for p in producers {
        let (h, t) = p.await.context("producer panicked")??;
        publish.add(&h)?;
        publish_time = publish_time.max(t);
    }
    // All published: wait for the workers to consume everything (bounded: a loss shows as a timeout).
    let limit = Duration::from_secs(60 + a.messages / 1000);
    let waited = tokio::time::timeout(limit, done.wait_for(|d| *d)).await;
    let total_time = shared.started.elapsed();
    if waited.is_err() {
        let _ = shared.done.send(true);
    }
    let mut e2e = histogram();
    for w in workers {
        e2e.add(&w.await.context("worker panicked")??)?;
    }
    let consumed = shared.consumed.load(Ordering::Relaxed);
    let mut errors = shared.errors.load(Ordering::Relaxed);
    if consumed != a.messages {
        eprintln!("synap-bench: consumed {consumed} of {} messages", a.messages);
        errors += consumed.abs_diff(a.messages);
    }
    Ok(QueueReports {
        publish: Report::new("queue publish", target, addr, &publish, errors, publish_time.as_secs_f64(), None),
        end_to_end: Report::new("queue end-to-end", target, addr, &e2e, errors, total_time.as_secs_f64(), None),
    })
}

/// Runs the scenario against RabbitMQ at `url` (`amqp://host:port/%2f`).
pub async fn run_rabbitmq(url: &str, a: &QueueArgs, progress: &indicatif::ProgressBar) -> anyhow::Result<QueueReports> {
    use lapin::options::{
        BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions,
        QueueDeclareOptions, QueueDeleteOptions,
    };
    use lapin::types::{AMQPValue, FieldTable};
    use lapin::{BasicProperties, Connection as Amqp, ConnectionProperties};

    validate(a)?;
    let name = format!("bench-{}-{}", std::process::id(), rand::random::<u32>());
    let admin = Amqp::connect(url, ConnectionProperties::default())
        .await
        .with_context(|| format!("cannot connect to {url}"))?;
    let ch = admin.create_channel().await?;
    let mut args = FieldTable::default();
    if a.priority_distribution == Priorities::Uniform {
        args.insert("x-max-priority".into(), AMQPValue::ShortShortUInt(9));
    }
    ch.queue_declare(name.as_str().into(), QueueDeclareOptions::durable(), args).await?;
    let (shared, mut done) = new_shared(a, progress);
    let mut workers = Vec::new();
    for w in 0..a.workers {
        let (url, name, a, shared) = (url.to_string(), name.clone(), a.clone(), shared.clone());
        let mut done = done.clone();
        workers.push(tokio::spawn(async move {
            let conn = Amqp::connect(&url, ConnectionProperties::default()).await?;
            let ch = conn.create_channel().await?;
            ch.basic_qos(a.prefetch as u16, BasicQosOptions::default()).await?;
            let mut consumer = ch
                .basic_consume(
                    name.as_str().into(),
                    format!("w{w}").as_str().into(),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await?;
            let mut h = histogram();
            loop {
                let delivery = tokio::select! {
                    d = consumer.next() => d,
                    _ = done.wait_for(|d| *d) => break,
                };
                let Some(delivery) = delivery else { break };
                let delivery = delivery?;
                if let Some(t) = sent_at(&delivery.data) {
                    h.record(shared.elapsed_us().saturating_sub(t).max(1))?;
                }
                delivery.ack(BasicAckOptions::default()).await?;
                shared.consumed_one(a.messages);
            }
            let _ = conn.close(200, "done".into()).await;
            Ok::<_, anyhow::Error>(h)
        }));
    }
    let mut producers = Vec::new();
    for p in 0..a.producers {
        let (url, name, a, shared) = (url.to_string(), name.clone(), a.clone(), shared.clone());
        let n = split(a.messages, a.producers, p);
        producers.push(tokio::spawn(async move {
            let conn = Amqp::connect(&url, ConnectionProperties::default()).await?;
            let ch = conn.create_channel().await?;
            ch.confirm_select(ConfirmSelectOptions::default()).await?;
            let mut rng = rand::rngs::StdRng::seed_from_u64(p as u64);
            let mut h = histogram();
            let mut sent = 0;
            while sent < n {
                let batch = (n - sent).min(a.confirm_window as u64);
                let t0 = shared.elapsed_us();
                for _ in 0..batch {
                    let priority = match a.priority_distribution {
                        Priorities::None => 0,
                        Priorities::Uniform => rng.random_range(0..10u8),
                    };
                    let props = BasicProperties::default().with_delivery_mode(2).with_priority(priority);
                    let body = payload(a.payload_size, t0);
                    ch.basic_publish("".into(), name.as_str().into(), BasicPublishOptions::default(), &body, props)
                        .await?;
                }
                // Publisher confirms: the whole window is confirmed before the next one goes out.
                let returned = ch.wait_for_confirms().await?;
                if !returned.is_empty() {
                    shared.errors.fetch_add(returned.len() as u64, Ordering::Relaxed);
                }
                let rtt = shared.elapsed_us().saturating_sub(t0).max(1);
                for _ in 0..batch {
                    h.record(rtt)?;
                }
                sent += batch;
            }
            let _ = conn.close(200, "done".into()).await;
            Ok::<_, anyhow::Error>((h, shared.started.elapsed()))
        }));
    }
    let result = finish(a, &shared, &mut done, producers, workers, "rabbitmq", url).await;
    let _ = ch.queue_delete(name.as_str().into(), QueueDeleteOptions::default()).await;
    let _ = admin.close(200, "done".into()).await;
    result
}
