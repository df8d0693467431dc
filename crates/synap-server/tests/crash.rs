//! Durability proved by SIGKILL: concurrent clients record every acknowledged write, the server is killed
//! mid-load, restarted on the same directory, and every acknowledged write must be there.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use common::process::ServerProcess;
use parking_lot::Mutex;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

/// What one client knows: the acknowledged value of each of its keys (None = deleted) and the single
/// write it had in flight when the server died, which may or may not have been applied.
#[derive(Default, Debug)]
struct Ledger {
    acked: HashMap<String, Option<i64>>,
    in_flight: Option<(String, Option<i64>)>,
    acked_count: usize,
}

async fn client(base: String, id: usize, ledger: Arc<Mutex<Ledger>>) {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let mut rng = rand::rngs::StdRng::from_os_rng();
    loop {
        let key = format!("c{id}:k{}", rng.random_range(0..20));
        let current = ledger.lock().acked.get(&key).cloned().flatten();
        let op = rng.random_range(0..10);
        let (req, expected) = if op < 5 {
            let v: i64 = rng.random_range(0..1_000_000);
            (http.post(format!("{base}/kv/set")).json(&json!({"key": key, "value": v.to_string()})), Some(v))
        } else if op < 9 {
            (http.post(format!("{base}/kv/incr/{key}")).json(&json!({"by": 1})), Some(current.unwrap_or(0) + 1))
        } else {
            (http.delete(format!("{base}/kv/del/{key}")), None)
        };
        ledger.lock().in_flight = Some((key.clone(), expected));
        match req.send().await {
            Ok(r) if r.status().is_success() => {
                let mut l = ledger.lock();
                l.acked.insert(key, expected);
                l.in_flight = None;
                l.acked_count += 1;
            }
            Ok(r) => panic!("unexpected status {} for {key}", r.status()),
            Err(_) => return, // the server is gone; the write stays "in flight"
        }
    }
}

async fn crash_round(fsync: &str, dir: &std::path::Path, round: usize) -> usize {
    let mut server = ServerProcess::start(dir, &["--fsync", fsync]);
    let base = format!("http://{}", server.http_addr);
    let ledgers: Vec<Arc<Mutex<Ledger>>> = (0..8).map(|_| Arc::new(Mutex::new(Ledger::default()))).collect();
    // Carry over what earlier rounds acknowledged: the clients' keys persist across rounds.
    if round > 0 {
        let http = reqwest::Client::new();
        for (id, ledger) in ledgers.iter().enumerate() {
            for k in 0..20 {
                let key = format!("c{id}:k{k}");
                let r = http.get(format!("{base}/kv/get/{key}")).send().await.unwrap();
                let v = if r.status() == 404 {
                    None
                } else {
                    let body: Value = r.json().await.unwrap();
                    Some(body["value"].as_str().unwrap().parse::<i64>().unwrap())
                };
                ledger.lock().acked.insert(key, v);
            }
        }
    }
    let tasks: Vec<_> =
        ledgers.iter().enumerate().map(|(id, l)| tokio::spawn(client(base.clone(), id, l.clone()))).collect();
    let wait = rand::rng().random_range(300..900);
    tokio::time::sleep(Duration::from_millis(wait)).await;
    server.kill9();
    for t in tasks {
        t.await.unwrap();
    }
    let acked: usize = ledgers.iter().map(|l| l.lock().acked_count).sum();
    assert!(acked > 0, "the clients got acknowledgements before the kill");

    let mut server = ServerProcess::start(dir, &["--fsync", fsync]);
    let http = reqwest::Client::new();
    let base = format!("http://{}", server.http_addr);
    for ledger in &ledgers {
        let (acked, in_flight) = {
            let l = ledger.lock();
            (l.acked.clone(), l.in_flight.clone())
        };
        for (key, expected) in &acked {
            let r = http.get(format!("{base}/kv/get/{key}")).send().await.unwrap();
            let got = if r.status() == 404 {
                None
            } else {
                let body: Value = r.json().await.unwrap();
                Some(body["value"].as_str().unwrap().parse::<i64>().unwrap())
            };
            let allowed_in_flight = in_flight.as_ref().filter(|(k, _)| k == key).map(|(_, v)| *v);
            assert!(
                got == *expected || Some(got) == allowed_in_flight,
                "{fsync} round {round}: key {key}: acknowledged {expected:?}, in flight {allowed_in_flight:?}, found {got:?}"
            );
        }
    }
    server.kill9();
    acked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill_9_with_fsync_always() {
    let dir = tempfile::tempdir().unwrap();
    let mut total = 0;
    for round in 0..3 {
        total += crash_round("always", dir.path(), round).await;
    }
    assert!(total > 100, "enough writes were acknowledged to mean something: {total}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_a_process_kill_with_fsync_periodic() {
    let dir = tempfile::tempdir().unwrap();
    for round in 0..2 {
        crash_round("periodic", dir.path(), round).await;
    }
}

/// Queues under SIGKILL: every message acknowledged to its publisher survives, an ACKed message never
/// comes back, and messages in flight at the crash are delivered again with their attempt count kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_messages_survive_kill_9_and_acks_stick() {
    use redis::{Value as RV, cmd};
    use std::collections::{HashMap, HashSet};

    fn text(v: &RV) -> String {
        match v {
            RV::BulkString(b) => String::from_utf8(b.clone()).unwrap(),
            other => panic!("{other:?}"),
        }
    }
    /// (id, attempt) of each message in a QCONSUME reply.
    fn messages(v: RV) -> Vec<(String, i64)> {
        match v {
            RV::Array(items) => items
                .into_iter()
                .map(|m| match m {
                    RV::Array(f) => (
                        text(&f[1]),
                        match f[9] {
                            RV::Int(n) => n,
                            ref other => panic!("{other:?}"),
                        },
                    ),
                    other => panic!("{other:?}"),
                })
                .collect(),
            RV::Nil => vec![],
            other => panic!("{other:?}"),
        }
    }

    let dir = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::start(dir.path(), &["--fsync", "always"]);
    let url = format!("redis://{}/", server.resp_addr.clone().unwrap());
    let client = redis::Client::open(url).unwrap();
    let mut admin = client.get_multiplexed_async_connection().await.unwrap();
    let _: i64 = cmd("QCREATE")
        .arg("crashq")
        .arg("ACKDEADLINE")
        .arg(400)
        .arg("MAXRETRIES")
        .arg(100)
        .query_async(&mut admin)
        .await
        .unwrap();

    let published = Arc::new(Mutex::new(HashSet::<String>::new()));
    let acked = Arc::new(Mutex::new(HashSet::<String>::new()));
    let in_flight = Arc::new(Mutex::new(HashMap::<String, i64>::new()));
    // QACKs sent whose answer never came: the ack may or may not have happened.
    let ack_sent = Arc::new(Mutex::new(HashSet::<String>::new()));
    let mut tasks = Vec::new();
    for p in 0..3 {
        let (client, published) = (client.clone(), published.clone());
        tasks.push(tokio::spawn(async move {
            let Ok(mut c) = client.get_multiplexed_async_connection().await else { return };
            for i in 0.. {
                match cmd("QPUBLISH").arg("crashq").arg(format!("p{p}-{i}")).query_async::<String>(&mut c).await {
                    Ok(id) => {
                        published.lock().insert(id);
                    }
                    Err(_) => return,
                }
            }
        }));
    }
    {
        let (client, acked, in_flight, ack_sent) = (client.clone(), acked.clone(), in_flight.clone(), ack_sent.clone());
        tasks.push(tokio::spawn(async move {
            let Ok(mut c) = client.get_multiplexed_async_connection().await else { return };
            loop {
                let Ok(got) =
                    cmd("QCONSUME").arg("crashq").arg("worker").arg("COUNT").arg(10).query_async::<RV>(&mut c).await
                else {
                    return;
                };
                let msgs = messages(got);
                // Acknowledge every other message; leave the rest in flight.
                for (i, (id, attempt)) in msgs.into_iter().enumerate() {
                    if i % 2 == 0 {
                        ack_sent.lock().insert(id.clone());
                        match cmd("QACK").arg("crashq").arg(&id).query_async::<i64>(&mut c).await {
                            Ok(1) => {
                                acked.lock().insert(id);
                            }
                            Ok(_) => {}
                            Err(_) => return,
                        }
                    } else {
                        in_flight.lock().insert(id, attempt);
                    }
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(rand::rng().random_range(400..900))).await;
    server.kill9();
    for t in tasks {
        t.await.unwrap();
    }
    let (published, acked, in_flight) = (published.lock().clone(), acked.lock().clone(), in_flight.lock().clone());
    let ack_sent = ack_sent.lock().clone();
    assert!(
        published.len() > 20 && !acked.is_empty(),
        "load ran: {} published, {} acked",
        published.len(),
        acked.len()
    );

    let mut server = ServerProcess::start(dir.path(), &["--fsync", "always"]);
    let client = redis::Client::open(format!("redis://{}/", server.resp_addr.clone().unwrap())).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    c.set_response_timeout(Duration::from_secs(10));
    let mut drained: HashMap<String, i64> = HashMap::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let got: RV = cmd("QCONSUME")
            .arg("crashq")
            .arg("after")
            .arg("COUNT")
            .arg(500)
            .arg("BLOCK")
            .arg(1200)
            .query_async(&mut c)
            .await
            .unwrap();
        let msgs = messages(got);
        if msgs.is_empty() || std::time::Instant::now() > deadline {
            break;
        }
        let mut ack = cmd("QACK");
        ack.arg("crashq");
        for (id, attempt) in msgs {
            ack.arg(&id);
            assert!(drained.insert(id.clone(), attempt).is_none(), "delivered twice after restart: {id}");
        }
        let _: i64 = ack.query_async(&mut c).await.unwrap();
    }
    for id in &acked {
        assert!(!drained.contains_key(id), "ACKed message {id} came back");
    }
    for id in &published {
        assert!(ack_sent.contains(id) || drained.contains_key(id), "published message {id} was lost");
    }
    for (id, attempt) in &in_flight {
        if let Some(after) = drained.get(id) {
            assert!(after > attempt, "{id}: attempt {after} after restart, {attempt} before: the count is kept");
        } else {
            // It may have been redelivered to the worker before the crash and acknowledged then.
            assert!(ack_sent.contains(id), "in-flight message {id} was lost");
        }
    }
    server.kill9();
}

/// What the stream clients of one crash round know.
#[derive(Default)]
struct StreamLedger {
    /// Acknowledged publishes: (partition, offset) -> data.
    published: std::collections::HashMap<(u64, u64), String>,
    /// Events the group consumer acknowledged (the server answered the ack).
    acked: std::collections::HashSet<(u64, u64)>,
    /// Acks whose answer never came (one per kill): these may or may not be acknowledged.
    ack_in_flight: Vec<(u64, u64)>,
}

async fn stream_publisher(base: String, id: usize, ledger: Arc<Mutex<StreamLedger>>) {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    for n in 0.. {
        let data = format!("c{id}-{n}-{}", "x".repeat(n % 300));
        let body = json!({"event": "e", "data": data, "key": format!("k{}", n % 7)});
        match http.post(format!("{base}/stream/events/publish")).json(&body).send().await {
            Ok(r) if r.status().is_success() => {
                let v: Value = r.json().await.unwrap();
                let at = (v["partition"].as_u64().unwrap(), v["offset"].as_u64().unwrap());
                assert!(ledger.lock().published.insert(at, data).is_none(), "offset {at:?} handed out twice");
            }
            Ok(r) => panic!("unexpected status {}", r.status()),
            Err(_) => return,
        }
    }
}

async fn stream_consumer(base: String, ledger: Arc<Mutex<StreamLedger>>) {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    loop {
        let Ok(r) = http.get(format!("{base}/stream/events/group/g/read/c1?count=50")).send().await else { return };
        let Ok(v) = r.json::<Value>().await else { return };
        let events: Vec<(u64, u64)> = v["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e["partition"].as_u64().unwrap(), e["offset"].as_u64().unwrap()))
            .collect();
        for p in [0u64, 1] {
            let offsets: Vec<u64> = events.iter().filter(|e| e.0 == p).map(|e| e.1).collect();
            if offsets.is_empty() {
                continue;
            }
            let pending: Vec<(u64, u64)> = offsets.iter().map(|&o| (p, o)).collect();
            ledger.lock().ack_in_flight.extend(pending.iter().copied());
            let body = json!({"partition": p, "offsets": offsets});
            match http.post(format!("{base}/stream/events/group/g/ack")).json(&body).send().await {
                Ok(r) if r.status().is_success() => {
                    let mut l = ledger.lock();
                    l.ack_in_flight.retain(|at| !pending.contains(at));
                    l.acked.extend(pending);
                }
                _ => return, // the server died: `ack_in_flight` keeps the batch
            }
        }
    }
}

/// Streams under SIGKILL, with snapshots and segment rolls during the load: every event acknowledged to
/// its publisher is at its offset after the restart (offsets stay dense), and the consumer group's acks
/// stick: an acknowledged event is never delivered again, every other one is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_events_and_group_acks_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let conf_dir = tempfile::tempdir().unwrap();
    let conf = conf_dir.path().join("synap.yaml");
    std::fs::write(
        &conf,
        "persistence:\n  snapshot:\n    after_writes: 2000\nstream:\n  segment_bytes: 64kb\n  tail_cache_bytes: 16kb\n",
    )
    .unwrap();
    let args = ["--fsync", "always", "--config", conf.to_str().unwrap()];
    let http = reqwest::Client::new();
    let ledger = Arc::new(Mutex::new(StreamLedger::default()));
    for round in 0..2 {
        let mut server = ServerProcess::start(dir.path(), &args);
        let base = format!("http://{}", server.http_addr);
        if round == 0 {
            let r = http.post(format!("{base}/stream/events")).json(&json!({"partitions": 2})).send().await.unwrap();
            assert_eq!(r.status(), 201);
            let body = json!({"start": "earliest", "redeliver_after_ms": 600_000});
            let r = http.post(format!("{base}/stream/events/group/g")).json(&body).send().await.unwrap();
            assert_eq!(r.status(), 201);
        }
        let mut tasks: Vec<_> =
            (0..4).map(|id| tokio::spawn(stream_publisher(base.clone(), id + round * 10, ledger.clone()))).collect();
        tasks.push(tokio::spawn(stream_consumer(base.clone(), ledger.clone())));
        tokio::time::sleep(Duration::from_millis(rand::rng().random_range(600..1200))).await;
        server.kill9();
        for t in tasks {
            t.await.unwrap();
        }
    }
    let mut server = ServerProcess::start(dir.path(), &args);
    let base = format!("http://{}", server.http_addr);
    let (published, acked, maybe) = {
        let l = ledger.lock();
        (l.published.clone(), l.acked.clone(), l.ack_in_flight.clone())
    };
    assert!(published.len() > 200 && !acked.is_empty(), "{} published, {} acked", published.len(), acked.len());
    // Every partition reads back densely; every acknowledged publish is at its offset.
    let mut present = std::collections::HashSet::new();
    for p in 0..2u64 {
        let mut from = 0;
        loop {
            let r: Value = http
                .get(format!("{base}/stream/events/consume/check?partition={p}&from_offset={from}&limit=1000"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let events = r["events"].as_array().unwrap();
            if events.is_empty() {
                break;
            }
            for e in events {
                let at = (p, e["offset"].as_u64().unwrap());
                assert_eq!(at.1, from, "offsets are dense");
                from += 1;
                if let Some(data) = published.get(&at) {
                    assert_eq!(e["data"].as_str().unwrap(), data, "event at {at:?}");
                }
                present.insert(at);
            }
        }
    }
    for at in published.keys() {
        assert!(present.contains(at), "acknowledged event {at:?} was lost");
    }
    // The group: nothing acknowledged comes back; everything else is delivered (pending events of the
    // killed consumer after a claim).
    let mut delivered = std::collections::HashSet::new();
    loop {
        let r: Value = http
            .get(format!("{base}/stream/events/group/g/read/after?count=1000"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let events = r["events"].as_array().unwrap();
        if events.is_empty() {
            break;
        }
        for e in events {
            delivered.insert((e["partition"].as_u64().unwrap(), e["offset"].as_u64().unwrap()));
        }
    }
    let stats: Value = http.get(format!("{base}/stream/events/stats")).send().await.unwrap().json().await.unwrap();
    let pending_before = stats["groups"][0]["pending"].as_u64().unwrap() as usize - delivered.len();
    for at in &acked {
        assert!(!delivered.contains(at), "acknowledged event {at:?} was delivered again");
    }
    let unacked = present.iter().filter(|at| !acked.contains(at) && !maybe.contains(at)).count();
    assert!(
        delivered.len() + pending_before >= unacked,
        "every unacknowledged event is pending or delivered: {} + {pending_before} < {unacked}",
        delivered.len()
    );
    server.kill9();
}

/// Two rounds of `clients` clients running `op` in a loop against a server that is killed with SIGKILL
/// mid-load. `op` answers a number for each acknowledged call; the sum and the largest of them are
/// returned (what must survive, depending on what `op` counts).
async fn kill_under_load<F, Fut>(dir: &std::path::Path, args: &[&str], clients: usize, op: F) -> (i64, i64)
where
    F: Fn(redis::aio::MultiplexedConnection) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = redis::RedisResult<(redis::aio::MultiplexedConnection, i64)>> + Send,
{
    let total = Arc::new(std::sync::atomic::AtomicI64::new(0));
    let largest = Arc::new(std::sync::atomic::AtomicI64::new(0));
    for _round in 0..2 {
        let mut server = ServerProcess::start(dir, args);
        let url = format!("redis://{}/", server.resp_addr.clone().unwrap());
        let mut tasks = Vec::new();
        for _ in 0..clients {
            let (url, total, largest, op) = (url.clone(), total.clone(), largest.clone(), op.clone());
            tasks.push(tokio::spawn(async move {
                let client = redis::Client::open(url).unwrap();
                let Ok(mut c) = client.get_multiplexed_async_connection().await else { return };
                while let Ok((conn, n)) = op(c).await {
                    total.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
                    largest.fetch_max(n, std::sync::atomic::Ordering::Relaxed);
                    c = conn;
                }
            }));
        }
        tokio::time::sleep(Duration::from_millis(rand::rng().random_range(400..900))).await;
        server.kill9();
        for t in tasks {
            t.await.unwrap();
        }
    }
    (total.load(std::sync::atomic::Ordering::Relaxed), largest.load(std::sync::atomic::Ordering::Relaxed))
}

/// Transactions under SIGKILL (with snapshots during the load): each MULTI/EXEC increments two counters
/// and pushes to a list; after the restart all three agree (a transaction is there whole or not at all)
/// and none is below what was acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_are_all_or_nothing_after_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let conf_dir = tempfile::tempdir().unwrap();
    let conf = conf_dir.path().join("synap.yaml");
    std::fs::write(&conf, "persistence:\n  snapshot:\n    after_writes: 500\n").unwrap();
    let args = ["--fsync", "periodic", "--config", conf.to_str().unwrap()];
    let (acked, _) = kill_under_load(dir.path(), &args, 4, |mut c| async move {
        let r: redis::RedisResult<(i64, i64, i64)> =
            redis::pipe().atomic().incr("a", 1).incr("b", 1).lpush("l", "x").query_async(&mut c).await;
        r.map(|_| (c, 1))
    })
    .await;
    let mut server = ServerProcess::start(dir.path(), &args);
    let client = redis::Client::open(format!("redis://{}/", server.resp_addr.clone().unwrap())).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let (a, b, l): (i64, i64, i64) = redis::pipe().get("a").get("b").llen("l").query_async(&mut c).await.unwrap();
    assert!(acked > 100, "enough transactions were acknowledged: {acked}");
    assert_eq!((a, b), (l, l), "counters and list agree: no transaction is torn");
    assert!(a >= acked, "nothing acknowledged is lost: {a} < {acked}");
    // At most the transactions in flight at the two kills (4 clients) were applied unacknowledged.
    assert!(a <= acked + 8, "{a} applied, {acked} acknowledged");
    server.kill9();
}

/// The report's reproduction: a collection re-created on an expired key, then `kill -9`. After the
/// restart each key holds the new collection alone (before the fix it was empty: the new elements were
/// replayed onto the old, expired value).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collection_recreated_after_expiry_survives_kill_9() {
    use redis::cmd;
    let dir = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::start(dir.path(), &["--fsync", "always"]);
    let client = redis::Client::open(format!("redis://{}/", server.resp_addr.clone().unwrap())).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let _: i64 = cmd("HSET").arg("h").arg("a").arg("1").query_async(&mut c).await.unwrap();
    let _: i64 = cmd("RPUSH").arg("l").arg("old").query_async(&mut c).await.unwrap();
    let _: i64 = cmd("SADD").arg("s").arg("old").query_async(&mut c).await.unwrap();
    let _: i64 = cmd("ZADD").arg("z").arg(1).arg("old").query_async(&mut c).await.unwrap();
    for k in ["h", "l", "s", "z"] {
        let _: i64 = cmd("PEXPIRE").arg(k).arg(100).query_async(&mut c).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _: i64 = cmd("HSET").arg("h").arg("b").arg("2").query_async(&mut c).await.unwrap();
    let _: i64 = cmd("RPUSH").arg("l").arg("new").query_async(&mut c).await.unwrap();
    let _: i64 = cmd("SADD").arg("s").arg("new").query_async(&mut c).await.unwrap();
    let _: i64 = cmd("ZADD").arg("z").arg(2).arg("new").query_async(&mut c).await.unwrap();
    server.kill9();
    let server = ServerProcess::start(dir.path(), &[]);
    let client = redis::Client::open(format!("redis://{}/", server.resp_addr.clone().unwrap())).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let h: HashMap<String, String> = cmd("HGETALL").arg("h").query_async(&mut c).await.unwrap();
    assert_eq!(h, HashMap::from([("b".to_string(), "2".to_string())]));
    let l: Vec<String> = cmd("LRANGE").arg("l").arg(0).arg(-1).query_async(&mut c).await.unwrap();
    assert_eq!(l, vec!["new"]);
    let s: Vec<String> = cmd("SMEMBERS").arg("s").query_async(&mut c).await.unwrap();
    assert_eq!(s, vec!["new"]);
    let z: Vec<String> = cmd("ZRANGE").arg("z").arg(0).arg(-1).query_async(&mut c).await.unwrap();
    assert_eq!(z, vec!["new"]);
}

/// Streams are keys, durably: a RENAME of a stream (onto a string it replaces, with its group), an
/// expired stream, a stream re-created after DEL and a FLUSHALL'd one come back as they were left after
/// `kill -9`, twice (the second restart replays over the first one's recovery).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_as_keys_survive_kill_9() {
    use redis::cmd;
    let dir = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::start(dir.path(), &["--fsync", "always"]);
    let client = redis::Client::open(format!("redis://{}/", server.resp_addr.clone().unwrap())).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let q = |args: &[&str]| {
        let mut command = cmd(args[0]);
        for a in &args[1..] {
            command.arg(*a);
        }
        command
    };
    let _: String = q(&["XADD", "a", "1-1", "f", "1"]).query_async(&mut c).await.unwrap();
    let _: String = q(&["XADD", "a", "2-1", "f", "2"]).query_async(&mut c).await.unwrap();
    let _: String = q(&["XGROUP", "CREATE", "a", "g", "0"]).query_async(&mut c).await.unwrap();
    let _: () = q(&["SET", "b", "string"]).query_async(&mut c).await.unwrap();
    let _: () = q(&["RENAME", "a", "b"]).query_async(&mut c).await.unwrap();
    let _: String = q(&["XADD", "b", "3-1", "f", "3"]).query_async(&mut c).await.unwrap();
    let _: String = q(&["XADD", "gone", "1-1", "f", "1"]).query_async(&mut c).await.unwrap();
    let _: i64 = q(&["PEXPIRE", "gone", "100"]).query_async(&mut c).await.unwrap();
    let _: String = q(&["XADD", "again", "1-1", "f", "old"]).query_async(&mut c).await.unwrap();
    let _: i64 = q(&["DEL", "again"]).query_async(&mut c).await.unwrap();
    let _: String = q(&["XADD", "again", "5-1", "f", "new"]).query_async(&mut c).await.unwrap();
    let _: String = q(&["XADD", "kept", "1-1", "f", "1"]).query_async(&mut c).await.unwrap();
    let _: i64 = q(&["EXPIRE", "kept", "1000"]).query_async(&mut c).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The expired stream is removed (by a read here, or by active expiry) before the kill.
    let gone: i64 = q(&["EXISTS", "gone"]).query_async(&mut c).await.unwrap();
    assert_eq!(gone, 0);
    server.kill9();
    for _ in 0..2 {
        let mut server = ServerProcess::start(dir.path(), &[]);
        let client = redis::Client::open(format!("redis://{}/", server.resp_addr.clone().unwrap())).unwrap();
        let mut c = client.get_multiplexed_async_connection().await.unwrap();
        let t: String = q(&["TYPE", "b"]).query_async(&mut c).await.unwrap();
        assert_eq!(t, "stream");
        let ids: Vec<(String, Vec<(String, String)>)> =
            q(&["XRANGE", "b", "-", "+"]).query_async(&mut c).await.unwrap();
        assert_eq!(ids.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>(), ["1-1", "2-1", "3-1"]);
        let groups: Vec<redis::Value> = q(&["XINFO", "GROUPS", "b"]).query_async(&mut c).await.unwrap();
        assert_eq!(groups.len(), 1, "the group moved with the stream");
        let exists: i64 = q(&["EXISTS", "a", "gone"]).query_async(&mut c).await.unwrap();
        assert_eq!(exists, 0);
        let again: Vec<(String, Vec<(String, String)>)> =
            q(&["XRANGE", "again", "-", "+"]).query_async(&mut c).await.unwrap();
        assert_eq!(again, vec![("5-1".to_string(), vec![("f".to_string(), "new".to_string())])]);
        let ttl: i64 = q(&["TTL", "kept"]).query_async(&mut c).await.unwrap();
        assert!((990..=1000).contains(&ttl), "{ttl}");
        let mut keys: Vec<String> = q(&["KEYS", "*"]).query_async(&mut c).await.unwrap();
        keys.sort();
        assert_eq!(keys, ["again", "b", "kept"]);
        server.kill9();
    }
    // FLUSHALL removes streams for good.
    let mut server = ServerProcess::start(dir.path(), &["--fsync", "always"]);
    let client = redis::Client::open(format!("redis://{}/", server.resp_addr.clone().unwrap())).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = q(&["FLUSHALL"]).query_async(&mut c).await.unwrap();
    server.kill9();
    let mut server = ServerProcess::start(dir.path(), &[]);
    let client = redis::Client::open(format!("redis://{}/", server.resp_addr.clone().unwrap())).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let n: i64 = q(&["DBSIZE"]).query_async(&mut c).await.unwrap();
    assert_eq!(n, 0);
    let e: i64 = q(&["XLEN", "b"]).query_async(&mut c).await.unwrap();
    assert_eq!(e, 0);
    server.kill9();
}

/// Scripts under SIGKILL: each EVAL increments a counter, adds its new value to a sum and pushes it to
/// a list; its effects are one log record, so after the restart the three agree (the list is 1..n, the
/// sum n(n+1)/2) and nothing acknowledged is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn script_effects_are_all_or_nothing_after_kill_9() {
    const SCRIPT: &str = "local n = redis.call('incr', KEYS[1]) redis.call('incrby', KEYS[2], n) \
                          redis.call('rpush', KEYS[3], n) return n";
    let dir = tempfile::tempdir().unwrap();
    let args = ["--fsync", "periodic"];
    // Each acknowledged reply is the counter's value then: the largest one must survive.
    let (_, acked) = kill_under_load(dir.path(), &args, 3, |mut c| async move {
        let r: redis::RedisResult<i64> =
            redis::cmd("EVAL").arg(SCRIPT).arg(3).arg("n").arg("sum").arg("l").query_async(&mut c).await;
        r.map(|n| (c, n))
    })
    .await;
    let mut server = ServerProcess::start(dir.path(), &args);
    let client = redis::Client::open(format!("redis://{}/", server.resp_addr.clone().unwrap())).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let (n, sum, l): (i64, i64, Vec<i64>) =
        redis::pipe().get("n").get("sum").lrange("l", 0, -1).query_async(&mut c).await.unwrap();
    assert!(acked > 100, "enough scripts were acknowledged: {acked}");
    assert_eq!(l, (1..=n).collect::<Vec<_>>(), "the list is 1..n: no script is torn or doubled");
    assert_eq!(sum, n * (n + 1) / 2);
    assert!(n >= acked, "nothing acknowledged is lost: {n} < {acked}");
    server.kill9();
}
