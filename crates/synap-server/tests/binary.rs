//! The real binary: starts on port 0, reports its address, rejects bad config naming the key, stops on SIGTERM.

mod common;

use std::process::Command;

use common::process::ServerProcess;

#[tokio::test]
async fn starts_on_port_zero_serves_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::start(dir.path(), &[]);
    assert!(!server.http_addr.ends_with(":0"));
    let body: serde_json::Value =
        reqwest::get(format!("http://{}/health", server.http_addr)).await.unwrap().json().await.unwrap();
    assert_eq!(body["status"], "ok");
    let status = server.terminate();
    assert!(status.success(), "clean exit on SIGTERM: {status}");
}

#[test]
fn bad_config_fails_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("kv:\n  max_memroy: 1mb\n", "max_memroy"),
        ("kv:\n  max_memory: plenty\n", "kv.max_memory"),
        ("log:\n  format: xml\n", "log.format"),
        ("http_addr: 5\n", "http_addr"),
    ];
    for (yaml, key) in cases {
        let path = dir.path().join("synap.yml");
        std::fs::write(&path, yaml).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_synap-server"))
            .arg("--config")
            .arg(&path)
            .args(["--http-addr", "127.0.0.1:0", "--resp-addr", "127.0.0.1:0"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{yaml}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(key), "error names '{key}': {err}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_synap-server")).args(["--max-memory", "12zb"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("max-memory"));
}
