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
