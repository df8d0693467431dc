//! The `stream` scenario, two workloads over Redis's stream commands, so that the same run works against
//! Synap and Redis:
//!
//! - `fanout` (the performance spec's event broadcast): `--rooms` streams, `--events-per-room` events each,
//!   `--subscribers-per-room` readers per room, each on its own connection in an `XREAD BLOCK` loop.
//!   Measures the publish (XADD) latency and the delivery latency (publish to arrival, per reader); every
//!   reader must receive every event of its room, in order, or the shortfall counts as errors.
//! - `groups`: producers XADD `--events` to one stream; `--consumers` in one group read with
//!   `XREADGROUP ... COUNT --batch` and acknowledge with XACK. Measures the publish latency and the
//!   end-to-end latency (publish to acknowledgement), and checks that every event was consumed once.
//!
//! Each event carries its send time (µs since the run started) in field `t`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use synap_client::{Connection, Value};
use synap_resp::encode_command;

use crate::report::{Report, histogram};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Workload {
    Fanout,
    Groups,
}

#[derive(Debug, Clone, Args)]
pub struct StreamArgs {
    #[arg(long, value_enum, default_value = "fanout")]
    pub workload: Workload,
    /// fanout: streams.
    #[arg(long, default_value_t = 100)]
    pub rooms: usize,
    /// fanout: events published to each stream.
    #[arg(long, default_value_t = 1000)]
    pub events_per_room: u64,
    /// fanout: readers per stream.
    #[arg(long, default_value_t = 50)]
    pub subscribers_per_room: usize,
    /// Publishing connections.
    #[arg(long, default_value_t = 4)]
    pub publishers: usize,
    /// XADD commands in flight per publisher.
    #[arg(long, default_value_t = 1)]
    pub pipeline: usize,
    /// Bytes of each event's `data` field.
    #[arg(long, default_value_t = 64)]
    pub payload_size: usize,
    /// Fixed total publish rate (events/s): each XADD is timed from its scheduled send time, so a stall
    /// shows in the latencies (as wrk2 does). Without it, publishers send as fast as answers come.
    #[arg(long)]
    pub rate: Option<u64>,
    /// groups: events in all.
    #[arg(long, default_value_t = 100_000)]
    pub events: u64,
    /// groups: consumers in the group.
    #[arg(long, default_value_t = 4)]
    pub consumers: usize,
    /// groups: events per XREADGROUP.
    #[arg(long, default_value_t = 10)]
    pub batch: usize,
}

pub struct StreamReports {
    pub publish: Report,
    pub delivery: Report,
}

fn now_us(started: Instant) -> u64 {
    started.elapsed().as_micros() as u64
}

fn text(v: &Value) -> Option<&[u8]> {
    match v {
        Value::Bulk(b) => Some(b),
        Value::Simple(s) => Some(s.as_bytes()),
        _ => None,
    }
}

/// The entries of an XREAD/XREADGROUP reply: (id, send time).
fn entries(v: Value) -> anyhow::Result<Vec<(Vec<u8>, u64)>> {
    let mut out = Vec::new();
    let streams = match v {
        Value::Nil => return Ok(out),
        Value::Array(s) => s,
        Value::Map(pairs) => pairs.into_iter().map(|(k, v)| Value::Array(vec![k, v])).collect(),
        Value::Error(e) => bail!("server error: {e}"),
        other => bail!("unexpected reply {other:?}"),
    };
    for s in streams {
        let Value::Array(mut kv) = s else { bail!("unexpected stream entry") };
        let Some(Value::Array(items)) = kv.pop() else { bail!("unexpected stream entry") };
        for item in items {
            let Value::Array(pair) = item else { bail!("unexpected entry") };
            let id = pair.first().and_then(text).context("entry without id")?.to_vec();
            let mut t = 0;
            if let Some(Value::Array(fields)) = pair.get(1) {
                for f in fields.chunks(2) {
                    if f.len() == 2 && text(&f[0]) == Some(b"t") {
                        t = text(&f[1])
                            .and_then(|b| std::str::from_utf8(b).ok())
                            .and_then(|s| s.parse().ok())
                            .unwrap_or(0);
                    }
                }
            }
            out.push((id, t));
        }
    }
    Ok(out)
}

fn xadd(buf: &mut Vec<u8>, key: &[u8], t: u64, payload: &[u8]) {
    let t = t.to_string();
    encode_command(&[b"XADD".as_slice(), key, b"*", b"t", t.as_bytes(), b"data", payload], buf);
}

pub async fn run(
    addr: &str,
    target: &str,
    a: &StreamArgs,
    progress: &indicatif::ProgressBar,
) -> anyhow::Result<StreamReports> {
    if a.publishers == 0 || a.pipeline == 0 {
        bail!("--publishers and --pipeline must be at least 1");
    }
    match a.workload {
        Workload::Fanout => fanout(addr, target, a, progress).await,
        Workload::Groups => groups(addr, target, a, progress).await,
    }
}

/// Deletes the streams a run uses, so that runs start alike.
async fn clean(addr: &str, keys: &[String]) -> anyhow::Result<()> {
    let mut conn = Connection::connect(addr).await.with_context(|| format!("cannot connect to {addr}"))?;
    for k in keys {
        let v = conn.call(&[b"DEL".as_slice(), k.as_bytes()]).await?;
        if let Value::Error(e) = v {
            bail!("DEL {k}: {e}");
        }
    }
    Ok(())
}

async fn fanout(
    addr: &str,
    target: &str,
    a: &StreamArgs,
    progress: &indicatif::ProgressBar,
) -> anyhow::Result<StreamReports> {
    if a.rooms == 0 || a.events_per_room == 0 || a.subscribers_per_room == 0 {
        bail!("--rooms, --events-per-room and --subscribers-per-room must be at least 1");
    }
    let started = Instant::now();
    let room = |r: usize| format!("bench:room:{r}");
    let keys: Vec<String> = (0..a.rooms).map(room).collect();
    clean(addr, &keys).await?;
    // Seed each stream with one event so that readers can start after a known id.
    let mut conn = Connection::connect(addr).await?;
    let mut start_ids = Vec::new();
    for k in &keys {
        match conn.call(&[b"XADD".as_slice(), k.as_bytes(), b"*", b"t", b"0"]).await? {
            Value::Bulk(id) => start_ids.push(id.to_vec()),
            other => bail!("XADD answered {other:?}"),
        }
    }
    let delivered = Arc::new(AtomicU64::new(0));
    let mut readers = Vec::new();
    let mut connected = Vec::new();
    for (r, k) in keys.iter().enumerate() {
        for _ in 0..a.subscribers_per_room {
            let c = Connection::connect(addr).await.with_context(|| format!("cannot connect to {addr}"))?;
            connected.push((r, k.clone(), c));
        }
    }
    let want = a.events_per_room;
    for (r, key, mut c) in connected {
        let mut last = start_ids[r].clone();
        let delivered = delivered.clone();
        readers.push(tokio::spawn(async move {
            let mut h = histogram();
            let mut got = 0u64;
            while got < want {
                let cmd: [&[u8]; 8] =
                    [b"XREAD", b"COUNT", b"1000", b"BLOCK", b"10000", b"STREAMS", key.as_bytes(), &last];
                let v = c.call(&cmd).await?;
                if matches!(v, Value::Nil) {
                    break; // nothing for 10 s: the rest is lost
                }
                let now = now_us(started);
                for (id, t) in entries(v)? {
                    h.record(now.saturating_sub(t).max(1))?;
                    got += 1;
                    last = id;
                }
            }
            delivered.fetch_add(got, Ordering::Relaxed);
            Ok::<_, anyhow::Error>((h, want.saturating_sub(got)))
        }));
    }
    let total = a.events_per_room * a.rooms as u64;
    progress.set_length(total);
    let publish_started = Instant::now();
    let plans: Vec<Vec<String>> = (0..a.publishers)
        .map(|p| {
            // Publisher p takes rooms p, p + P, ...; rounds over its rooms keep every room moving at once.
            let mine: Vec<&String> = keys.iter().skip(p).step_by(a.publishers).collect();
            (0..a.events_per_room).flat_map(|_| mine.iter().map(|k| k.to_string())).collect()
        })
        .collect();
    let (addr_s, a_s, progress_s) = (addr.to_string(), a.clone(), progress.clone());
    let (publish, errors) =
        on_own_thread(move || async move { publish_all(&addr_s, plans, &a_s, started, &progress_s).await }).await?;
    let publish_secs = publish_started.elapsed().as_secs_f64();
    let mut delivery = histogram();
    let mut lost = 0;
    for r in readers {
        let (h, l) = r.await.context("reader panicked")??;
        delivery.add(&h)?;
        lost += l;
    }
    let delivery_secs = publish_started.elapsed().as_secs_f64();
    progress.finish_and_clear();
    let got = delivered.load(Ordering::Relaxed);
    eprintln!(
        "stream fanout {target}: {total} events to {} readers, {got} deliveries of {} expected",
        a.rooms * a.subscribers_per_room,
        total * a.subscribers_per_room as u64
    );
    clean(addr, &keys).await?;
    Ok(StreamReports {
        publish: Report::new("stream publish", target, addr, &publish, errors, publish_secs, a.rate),
        delivery: Report::new("stream delivery", target, addr, &delivery, lost, delivery_secs, a.rate),
    })
}

/// One publisher per plan (the stream of each XADD, in order), each on its own connection with `--pipeline`
/// commands in flight and, with `--rate`, its share of the rate as scheduled send times. Answers the
/// publish latencies and the number of error replies.
async fn publish_all(
    addr: &str,
    plans: Vec<Vec<String>>,
    a: &StreamArgs,
    started: Instant,
    progress: &indicatif::ProgressBar,
) -> anyhow::Result<(hdrhistogram::Histogram<u64>, u64)> {
    let mut pubs = Vec::new();
    let publishers = plans.len();
    for plan in plans {
        let (addr, a, progress) = (addr.to_string(), a.clone(), progress.clone());
        pubs.push(tokio::spawn(async move {
            let mut conn = Connection::connect(&addr).await?;
            let (mut h, mut errors, mut buf) = (histogram(), 0u64, Vec::new());
            let payload = vec![b'p'; a.payload_size];
            let interval =
                a.rate.map(|r| Duration::from_secs_f64(a.pipeline as f64 * publishers as f64 / r.max(1) as f64));
            let first = Instant::now();
            for (i, chunk) in plan.chunks(a.pipeline).enumerate() {
                buf.clear();
                let t0 = match interval {
                    Some(iv) => {
                        let at = first + iv * i as u32;
                        tokio::time::sleep_until(at.into()).await;
                        at.duration_since(started).as_micros() as u64
                    }
                    None => now_us(started),
                };
                for k in chunk {
                    xadd(&mut buf, k.as_bytes(), t0, &payload);
                }
                conn.send_raw(&buf).await?;
                for _ in chunk {
                    if !matches!(conn.read_value().await?, Value::Bulk(_)) {
                        errors += 1;
                    }
                }
                let rtt = now_us(started).saturating_sub(t0).max(1);
                for _ in chunk {
                    h.record(rtt)?;
                }
                progress.inc(chunk.len() as u64);
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
    Ok((publish, errors))
}

/// Runs the publishers on a thread and runtime of their own, so that their latencies measure the server,
/// not the wait behind thousands of reader tasks in this process.
async fn on_own_thread<F, Fut, T>(f: F) -> anyhow::Result<T>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
    T: Send + 'static,
{
    let handle = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        rt.block_on(f())
    });
    tokio::task::spawn_blocking(move || handle.join().map_err(|_| anyhow::anyhow!("publisher thread panicked"))?)
        .await
        .context("publisher thread")?
}

async fn groups(
    addr: &str,
    target: &str,
    a: &StreamArgs,
    progress: &indicatif::ProgressBar,
) -> anyhow::Result<StreamReports> {
    if a.events == 0 || a.consumers == 0 || a.batch == 0 {
        bail!("--events, --consumers and --batch must be at least 1");
    }
    let started = Instant::now();
    let key = "bench:groups".to_string();
    clean(addr, std::slice::from_ref(&key)).await?;
    let mut conn = Connection::connect(addr).await?;
    if let Value::Error(e) =
        conn.call(&[b"XGROUP".as_slice(), b"CREATE", key.as_bytes(), b"g", b"$", b"MKSTREAM"]).await?
    {
        bail!("XGROUP CREATE: {e}");
    }
    let consumed = Arc::new(AtomicU64::new(0));
    let done = Arc::new(tokio::sync::Notify::new());
    let total = a.events;
    let mut consumers = Vec::new();
    for c in 0..a.consumers {
        let mut conn = Connection::connect(addr).await?;
        let (key, consumed, done, batch) = (key.clone(), consumed.clone(), done.clone(), a.batch.to_string());
        let name = format!("c{c}");
        consumers.push(tokio::spawn(async move {
            let mut h = histogram();
            let mut errors = 0u64;
            loop {
                if consumed.load(Ordering::Relaxed) >= total {
                    break;
                }
                let cmd: [&[u8]; 10] = [
                    b"XREADGROUP",
                    b"GROUP",
                    b"g",
                    name.as_bytes(),
                    b"COUNT",
                    batch.as_bytes(),
                    b"BLOCK",
                    b"100",
                    b"STREAMS",
                    key.as_bytes(),
                ];
                let mut full: Vec<&[u8]> = cmd.to_vec();
                full.push(b">");
                let v = tokio::select! {
                    v = conn.call(&full) => v?,
                    _ = done.notified() => break,
                };
                let got = entries(v)?;
                if got.is_empty() {
                    continue;
                }
                let mut ack: Vec<&[u8]> = vec![b"XACK", key.as_bytes(), b"g"];
                ack.extend(got.iter().map(|(id, _)| id.as_slice()));
                match conn.call(&ack).await? {
                    Value::Int(n) if n as usize == got.len() => {}
                    _ => errors += got.len() as u64,
                }
                let now = now_us(started);
                for (_, t) in &got {
                    h.record(now.saturating_sub(*t).max(1))?;
                }
                if consumed.fetch_add(got.len() as u64, Ordering::Relaxed) + got.len() as u64 >= total {
                    done.notify_waiters();
                    break;
                }
            }
            Ok::<_, anyhow::Error>((h, errors))
        }));
    }
    progress.set_length(total);
    let publish_started = Instant::now();
    let plans: Vec<Vec<String>> = (0..a.publishers)
        .map(|p| {
            let n = total / a.publishers as u64 + u64::from((p as u64) < total % a.publishers as u64);
            vec![key.clone(); n as usize]
        })
        .collect();
    let (publish, errors) = publish_all(addr, plans, a, started, progress).await?;
    let publish_secs = publish_started.elapsed().as_secs_f64();
    let wait = tokio::time::timeout(Duration::from_secs(60), async {
        while consumed.load(Ordering::Relaxed) < total {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    let _ = wait.await;
    done.notify_waiters();
    let mut e2e = histogram();
    let mut ack_errors = 0;
    for c in consumers {
        let (h, e) = c.await.context("consumer panicked")??;
        e2e.add(&h)?;
        ack_errors += e;
    }
    let secs = publish_started.elapsed().as_secs_f64();
    progress.finish_and_clear();
    let got = consumed.load(Ordering::Relaxed);
    let lost = total.saturating_sub(got) + ack_errors;
    eprintln!("stream groups {target}: {total} events, {got} consumed and acknowledged");
    clean(addr, std::slice::from_ref(&key)).await?;
    Ok(StreamReports {
        publish: Report::new("stream publish", target, addr, &publish, errors, publish_secs, None),
        delivery: Report::new("stream group read+ack", target, addr, &e2e, lost, secs, None),
    })
}
