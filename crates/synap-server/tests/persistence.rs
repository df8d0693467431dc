//! Persistence through the HTTP front end: restart keeps data, POST /snapshot, sticky failure on I/O errors.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::test_config;
use serde_json::{Value, json};
use synap_server::RunningServer;
use synap_server::config::FsyncMode;
use synap_storage::{FaultPlan, FaultyStorage};

async fn post(http: &reqwest::Client, url: String, body: Value) -> (u16, Value) {
    let r = http.post(url).json(&body).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn graceful_restart_keeps_everything_and_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let http = reqwest::Client::new();
    let mut cfg = test_config(&dir);
    cfg.persistence.fsync = FsyncMode::Periodic;
    let server = RunningServer::start(cfg.clone()).await.unwrap();
    let base = format!("http://{}", server.http_addr);
    for i in 0..200 {
        post(&http, format!("{base}/kv/set"), json!({"key": format!("k{i}"), "value": format!("v{i}")})).await;
    }
    let (status, snap) = post(&http, format!("{base}/snapshot"), json!({})).await;
    assert_eq!(status, 200, "{snap}");
    // Every record: the 200 keys and the default user.
    assert_eq!(snap["entries"], 201);
    post(&http, format!("{base}/kv/set"), json!({"key": "after", "value": "snap", "ttl": 1000})).await;
    post(&http, format!("{base}/kv/incr/n"), json!({"by": 7})).await;
    let health: Value = http.get(format!("{base}/health")).send().await.unwrap().json().await.unwrap();
    assert_eq!(health["persistence"]["enabled"], true);
    server.shutdown().await;

    let server = RunningServer::start(cfg).await.unwrap();
    let base = format!("http://{}", server.http_addr);
    let get = |k: &str| http.get(format!("{base}/kv/get/{k}")).send();
    let v: Value = get("k199").await.unwrap().json().await.unwrap();
    assert_eq!(v["value"], "v199");
    let v: Value = get("after").await.unwrap().json().await.unwrap();
    assert_eq!(v["value"], "snap");
    let ttl: Value = http.get(format!("{base}/kv/ttl/after")).send().await.unwrap().json().await.unwrap();
    assert!(ttl["ttl"].as_u64().unwrap() > 990, "TTL survives restart as an absolute time: {ttl}");
    let v: Value = get("n").await.unwrap().json().await.unwrap();
    assert_eq!(v["value"], "7");
    server.shutdown().await;
}

#[tokio::test]
async fn snapshot_without_persistence_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = test_config(&dir);
    cfg.persistence.enabled = false;
    let server = RunningServer::start(cfg).await.unwrap();
    let (status, body) =
        post(&reqwest::Client::new(), format!("http://{}/snapshot", server.http_addr), json!({})).await;
    assert_eq!(status, 409);
    assert_eq!(body["error"]["code"], "PERSISTENCE_DISABLED");
    server.shutdown().await;
}

#[tokio::test]
async fn fsync_failure_makes_the_server_refuse_writes_and_say_so() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = test_config(&dir);
    cfg.persistence.fsync = FsyncMode::Always;
    let plan = FaultPlan::new();
    let server = RunningServer::start_with_storage(cfg, Arc::new(FaultyStorage { plan: plan.clone() })).await.unwrap();
    let base = format!("http://{}", server.http_addr);
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    assert_eq!(post(&http, format!("{base}/kv/set"), json!({"key": "ok", "value": "1"})).await.0, 200);
    plan.fail_sync_after(1);
    let (status, body) = post(&http, format!("{base}/kv/set"), json!({"key": "failed", "value": "2"})).await;
    assert_eq!(status, 503, "the write whose fsync failed is not acknowledged: {body}");
    assert_eq!(body["error"]["code"], "PERSISTENCE_FAILED");
    let (status, body) = post(&http, format!("{base}/kv/set"), json!({"key": "later", "value": "3"})).await;
    assert_eq!(status, 503, "{body}");
    let r = http.get(format!("{base}/kv/get/ok")).send().await.unwrap();
    assert_eq!(r.status(), 200, "reads keep working");
    let r = http.get(format!("{base}/health")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    let health: Value = r.json().await.unwrap();
    assert_eq!(health["status"], "degraded");
    assert!(health["persistence"]["failed"].as_str().unwrap().contains("injected fsync failure"));
    server.shutdown().await;
}

/// A snapshot asked for while one is written answers 409 at once; INFO and writes do not wait for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_concurrent_snapshot_request_is_a_conflict_and_nothing_waits() {
    let dir = tempfile::tempdir().unwrap();
    let plan = FaultPlan::new();
    let cfg = test_config(&dir);
    let server = RunningServer::start_with_storage(cfg, Arc::new(FaultyStorage { plan: plan.clone() })).await.unwrap();
    let base = format!("http://{}", server.http_addr);
    let http = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap();
    for i in 0..50 {
        post(&http, format!("{base}/kv/set"), json!({"key": format!("k{i}"), "value": "v"})).await;
    }
    plan.sync_delay_ms.store(3000, std::sync::atomic::Ordering::SeqCst);
    let first = tokio::spawn({
        let (http, base) = (http.clone(), base.clone());
        async move { post(&http, format!("{base}/snapshot"), json!({})).await }
    });
    let p = server.service.persistence.clone().unwrap();
    while !p.snapshot_in_progress() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let started = std::time::Instant::now();
    let (status, body) = post(&http, format!("{base}/snapshot"), json!({})).await;
    assert_eq!((status, body["error"]["code"].clone()), (409, json!("SNAPSHOT_IN_PROGRESS")));
    let resp = server.resp_addr.unwrap();
    let mut c =
        redis::Client::open(format!("redis://{resp}/")).unwrap().get_multiplexed_async_connection().await.unwrap();
    let info: String = redis::cmd("INFO").arg("persistence").query_async(&mut c).await.unwrap();
    assert!(info.contains("rdb_bgsave_in_progress:1"), "{info}");
    assert_eq!(post(&http, format!("{base}/kv/set"), json!({"key": "during", "value": "v"})).await.0, 200);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "none of it waited for the 3 s snapshot: {:?}",
        started.elapsed()
    );
    assert_eq!(first.await.unwrap().0, 200);
    plan.sync_delay_ms.store(0, std::sync::atomic::Ordering::SeqCst);
    server.shutdown().await;
}
