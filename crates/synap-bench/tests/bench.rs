//! Drives the `synap-bench` binary against in-process servers on ephemeral ports.

use std::process::Command;

use synap_server::{Config, RunningServer};

async fn server() -> (RunningServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = Config {
        http_addr: "127.0.0.1:0".parse().unwrap(),
        resp_addr: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().to_path_buf(),
        ..Config::default()
    };
    cfg.persistence.enabled = false;
    (RunningServer::start(cfg).await.unwrap(), dir)
}

fn bench(args: Vec<String>) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_synap-bench")).args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_scenario_reports_json_and_markdown() {
    let (s, dir) = server().await;
    let port = s.resp_addr.unwrap().port().to_string();
    let json = dir.path().join("report.json");
    let args: Vec<String> = [
        "--port",
        &port,
        "--json",
        json.to_str().unwrap(),
        "--markdown",
        "kv",
        "--operations",
        "5000",
        "--read-ratio",
        "0.8",
        "--key-size",
        "20",
        "--value-size",
        "100",
        "--connections",
        "4",
        "--keyspace",
        "500",
        "--pipeline",
        "4",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let (ok, out, err) = tokio::task::spawn_blocking(move || bench(args)).await.unwrap();
    assert!(ok, "{err}");
    assert!(out.contains("| scenario | target |"), "{out}");
    let reports: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let r = &reports[0];
    assert_eq!(r["operations"], 5000);
    assert_eq!(r["errors"], 0);
    assert!(r["ops_per_sec"].as_f64().unwrap() > 0.0);
    assert!(r["p99_ms"].as_f64().unwrap() >= r["p50_ms"].as_f64().unwrap());
    // The prefill wrote the whole key space; the run's writes stayed inside it.
    let dbsize = synap_client::Client::new(s.resp_addr.unwrap().to_string(), 1).dbsize().await.unwrap();
    assert_eq!(dbsize, 500);
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compare_mode_and_fixed_rate() {
    let (a, _d1) = server().await;
    let (b, _d2) = server().await;
    let args: Vec<String> = vec![
        "--port".into(),
        a.resp_addr.unwrap().port().to_string(),
        "--compare".into(),
        b.resp_addr.unwrap().to_string(),
        "--compare-target".into(),
        "synap".into(),
        "kv".into(),
        "--operations".into(),
        "1000".into(),
        "--connections".into(),
        "2".into(),
        "--rate".into(),
        "4000".into(),
    ];
    let (ok, out, err) = tokio::task::spawn_blocking(move || bench(args)).await.unwrap();
    assert!(ok, "{err}");
    assert!(out.contains("throughput") && out.contains("x, p95 latency"), "{out}");
    assert!(out.contains("fixed rate 4000 ops/s"), "{out}");
    a.shutdown().await;
    b.shutdown().await;
}

#[test]
fn unreachable_server_fails_clearly() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (ok, _, err) = bench(vec!["--port".into(), port.to_string(), "kv".into(), "--operations".into(), "10".into()]);
    assert!(!ok);
    assert!(err.contains("cannot prefill") && err.contains("cannot connect"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_scenario_delivers_every_message_once() {
    let (s, dir) = server().await;
    let json = dir.path().join("queue.json");
    let args: Vec<String> = [
        "--port",
        &s.resp_addr.unwrap().port().to_string(),
        "--json",
        json.to_str().unwrap(),
        "queue",
        "--messages",
        "3000",
        "--workers",
        "3",
        "--producers",
        "2",
        "--confirm-window",
        "50",
        "--prefetch",
        "40",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let (ok, out, err) = tokio::task::spawn_blocking(move || bench(args)).await.unwrap();
    assert!(ok, "{err}");
    assert!(out.contains("queue end-to-end synap"), "{out}");
    let reports: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(reports[0]["scenario"], "queue publish");
    assert_eq!(reports[0]["operations"], 3000);
    assert_eq!(reports[1]["scenario"], "queue end-to-end");
    assert_eq!(reports[1]["operations"], 3000, "every message consumed once");
    assert_eq!(reports[1]["errors"], 0);
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pubsub_scenario_counts_every_delivery() {
    let (s, dir) = server().await;
    let json = dir.path().join("pubsub.json");
    let args: Vec<String> = [
        "--port",
        &s.resp_addr.unwrap().port().to_string(),
        "--json",
        json.to_str().unwrap(),
        "pubsub",
        "--topics",
        "100",
        "--messages",
        "2000",
        "--subscribers",
        "300",
        "--subscriber-connections",
        "6",
        "--publishers",
        "2",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let (ok, out, err) = tokio::task::spawn_blocking(move || bench(args)).await.unwrap();
    assert!(ok, "{err}");
    assert!(err.contains("deliveries expected"), "{err}");
    let reports: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(reports[0]["scenario"], "pubsub publish");
    assert_eq!(reports[0]["operations"], 2000);
    assert_eq!(reports[1]["scenario"], "pubsub delivery");
    assert_eq!(reports[1]["errors"], 0, "nothing lost: {out}");
    assert!(reports[1]["operations"].as_u64().unwrap() > 0);
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_scenarios_deliver_everything() {
    let (s, dir) = server().await;
    let port = s.resp_addr.unwrap().port().to_string();
    for workload in ["fanout", "groups"] {
        let json = dir.path().join(format!("{workload}.json"));
        let args: Vec<String> = [
            "--port",
            &port,
            "--json",
            json.to_str().unwrap(),
            "stream",
            "--workload",
            workload,
            "--rooms",
            "5",
            "--events-per-room",
            "40",
            "--subscribers-per-room",
            "4",
            "--events",
            "2000",
            "--consumers",
            "3",
            "--pipeline",
            "8",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let (ok, _, err) = tokio::task::spawn_blocking(move || bench(args)).await.unwrap();
        assert!(ok, "{workload}: {err}");
        let reports: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        let (publish, delivery) = (&reports[0], &reports[1]);
        let expected = if workload == "fanout" { (200, 800) } else { (2000, 2000) };
        assert_eq!(
            (publish["operations"].as_u64(), delivery["operations"].as_u64()),
            (Some(expected.0), Some(expected.1)),
            "{workload}: {reports}"
        );
        assert_eq!((publish["errors"].as_u64(), delivery["errors"].as_u64()), (Some(0), Some(0)), "{workload}");
    }
    s.shutdown().await;
}
