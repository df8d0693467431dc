//! Helpers shared by the integration tests: an in-process server on ephemeral ports.

#![allow(dead_code)]

use std::time::Duration;

use serde_json::Value;
use synap_server::{Config, RunningServer};

pub struct TestServer {
    pub server: Option<RunningServer>,
    pub base: String,
    pub http: reqwest::Client,
    pub _dir: tempfile::TempDir,
}

/// A config bound to loopback port 0 with its data in a fresh temporary directory.
pub fn test_config(dir: &tempfile::TempDir) -> Config {
    Config {
        http_addr: "127.0.0.1:0".parse().unwrap(),
        resp_addr: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().to_path_buf(),
        ..Config::default()
    }
}

pub async fn start_with(edit: impl FnOnce(&mut Config)) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = test_config(&dir);
    edit(&mut cfg);
    let server = RunningServer::start(cfg).await.expect("server starts");
    let base = format!("http://{}", server.http_addr);
    let http = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap();
    TestServer { server: Some(server), base, http, _dir: dir }
}

pub async fn start() -> TestServer {
    start_with(|_| {}).await
}

/// A `redis` crate connection to the server's RESP port, in RESP3 or RESP2.
pub async fn conn(s: &TestServer, resp3: bool) -> redis::aio::MultiplexedConnection {
    let addr = s.server.as_ref().unwrap().resp_addr.expect("RESP enabled");
    let proto = if resp3 { "?protocol=resp3" } else { "" };
    let client = redis::Client::open(format!("redis://{addr}/{proto}")).unwrap();
    let cfg = redis::AsyncConnectionConfig::new().set_response_timeout(Some(Duration::from_secs(10)));
    client.get_multiplexed_async_connection_with_config(&cfg).await.unwrap()
}

/// Runs a command line (arguments split on spaces) and converts its reply; panics on an error reply.
pub async fn q<T: redis::FromRedisValue>(c: &mut redis::aio::MultiplexedConnection, line: &str) -> T {
    let mut command = redis::Cmd::new();
    for a in line.split(' ') {
        command.arg(a);
    }
    command.query_async(c).await.unwrap_or_else(|e| panic!("{line}: {e}"))
}

/// Runs a command line that must fail: its error as `CODE detail`.
pub async fn err(c: &mut redis::aio::MultiplexedConnection, line: &str) -> String {
    let mut command = redis::Cmd::new();
    for a in line.split(' ') {
        command.arg(a);
    }
    let r: redis::RedisResult<redis::Value> = command.query_async(c).await;
    let e = r.expect_err("an error reply");
    format!("{} {}", e.code().unwrap_or("?"), e.detail().unwrap_or(""))
}

impl TestServer {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self.http.post(self.url(path)).json(&body).send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let r = self.http.get(self.url(path)).send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn delete(&self, path: &str) -> (u16, Value) {
        let r = self.http.delete(self.url(path)).send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn stop(mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown().await;
        }
    }
}
pub mod process;
pub mod redis_server;
