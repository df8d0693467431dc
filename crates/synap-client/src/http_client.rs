//! The HTTP transport: the REST routes and the command envelope.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use serde_json::{Value, json};

use crate::error::{ClientError, Result};
use crate::resp_client::ScanPage;

/// A client for Synap's HTTP API (`http://host:port`).
#[derive(Clone)]
pub struct HttpClient {
    base: String,
    http: reqwest::Client,
}

fn to_json(b: &[u8]) -> Value {
    match std::str::from_utf8(b) {
        Ok(s) => Value::String(s.to_string()),
        Err(_) => json!({"base64": B64.encode(b)}),
    }
}

fn from_json(v: &Value) -> Result<Bytes> {
    match v {
        Value::String(s) => Ok(Bytes::copy_from_slice(s.as_bytes())),
        Value::Object(m) => match m.get("base64").and_then(Value::as_str) {
            Some(s) => B64.decode(s).map(Bytes::from).map_err(|e| ClientError::Unexpected(e.to_string())),
            None => Err(ClientError::Unexpected(format!("value {v}"))),
        },
        other => Err(ClientError::Unexpected(format!("value {other}"))),
    }
}

/// Percent-encodes a key for a path segment.
fn path_key(key: &[u8]) -> String {
    let mut s = String::with_capacity(key.len());
    for &b in key {
        if b.is_ascii_alphanumeric() || b"-_.~:".contains(&b) {
            s.push(b as char);
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s
}

impl HttpClient {
    /// `base` like `http://127.0.0.1:15500`.
    pub fn new(base: impl Into<String>) -> HttpClient {
        HttpClient { base: base.into().trim_end_matches('/').to_string(), http: reqwest::Client::new() }
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<(u16, Value)> {
        let r = req.send().await?;
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        Ok((status, body))
    }

    fn error(status: u16, body: &Value) -> ClientError {
        ClientError::Http {
            status,
            code: body["error"]["code"].as_str().unwrap_or("UNKNOWN").to_string(),
            message: body["error"]["message"].as_str().unwrap_or("").to_string(),
        }
    }

    async fn post(&self, path: &str, body: Value) -> Result<Value> {
        let (status, v) = self.send(self.http.post(format!("{}{path}", self.base)).json(&body)).await?;
        if status >= 400 { Err(Self::error(status, &v)) } else { Ok(v) }
    }

    async fn get_json(&self, path: &str) -> Result<(u16, Value)> {
        self.send(self.http.get(format!("{}{path}", self.base))).await
    }

    pub async fn health(&self) -> Result<Value> {
        let (status, v) = self.get_json("/health").await?;
        if status >= 400 { Err(Self::error(status, &v)) } else { Ok(v) }
    }

    /// SET with an optional TTL in seconds; returns whether it was set.
    pub async fn set(&self, key: &[u8], value: &[u8], ttl_secs: Option<u64>) -> Result<bool> {
        let mut body = json!({"key": to_json(key), "value": to_json(value)});
        if let Some(t) = ttl_secs {
            body["ttl"] = json!(t);
        }
        Ok(self.post("/kv/set", body).await?["set"].as_bool().unwrap_or(false))
    }

    pub async fn get(&self, key: &[u8]) -> Result<Option<Bytes>> {
        let (status, v) = self.get_json(&format!("/kv/get/{}", path_key(key))).await?;
        match status {
            404 => Ok(None),
            s if s >= 400 => Err(Self::error(s, &v)),
            _ => from_json(&v["value"]).map(Some),
        }
    }

    pub async fn del(&self, key: &[u8]) -> Result<i64> {
        let (status, v) = self.send(self.http.delete(format!("{}/kv/del/{}", self.base, path_key(key)))).await?;
        if status >= 400 {
            return Err(Self::error(status, &v));
        }
        v["deleted"].as_i64().ok_or_else(|| ClientError::Unexpected(v.to_string()))
    }

    pub async fn incr(&self, key: &[u8], by: i64) -> Result<i64> {
        let v = self.post(&format!("/kv/incr/{}", path_key(key)), json!({"by": by})).await?;
        v["value"].as_i64().ok_or_else(|| ClientError::Unexpected(v.to_string()))
    }

    pub async fn scan(&self, prefix: Option<&str>, cursor: u64, count: usize) -> Result<ScanPage> {
        let mut body = json!({"cursor": cursor.to_string(), "count": count});
        if let Some(p) = prefix {
            body["prefix"] = json!(p);
        }
        let v = self.command("kv.scan", body).await?;
        let cursor =
            v["cursor"].as_str().and_then(|c| c.parse().ok()).ok_or_else(|| ClientError::Unexpected(v.to_string()))?;
        let keys = v["keys"].as_array().map(|ks| ks.iter().map(from_json).collect()).transpose()?.unwrap_or_default();
        Ok(ScanPage { cursor, keys })
    }

    pub async fn stats(&self) -> Result<Value> {
        let (status, v) = self.get_json("/kv/stats").await?;
        if status >= 400 { Err(Self::error(status, &v)) } else { Ok(v) }
    }

    /// Creates a stream (`POST /stream/{room}`) with `partitions` and retention (`max_events`,
    /// `max_bytes`, `max_age_ms`; `None` fields take the server's defaults). False when it exists.
    pub async fn stream_create(&self, room: &str, partitions: u32, retention: Value) -> Result<bool> {
        let payload = json!({"room": room, "partitions": partitions, "retention": retention});
        match self.command("stream.create", payload).await {
            Ok(_) => Ok(true),
            Err(ClientError::Http { code, .. }) if code == "CONFLICT" => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Publishes an event; returns `(partition, offset)`.
    pub async fn stream_publish(&self, room: &str, event: &str, data: &str, key: Option<&str>) -> Result<(u32, u64)> {
        let v = self.command("stream.publish", json!({"room": room, "event": event, "data": data, "key": key})).await?;
        match (v["partition"].as_u64(), v["offset"].as_u64()) {
            (Some(p), Some(o)) => Ok((p as u32, o)),
            _ => Err(ClientError::Unexpected(format!("stream.publish answered {v}"))),
        }
    }

    /// Reads a partition from `from_offset` (`None`: the oldest retained), waiting up to `wait_ms` at the
    /// end; returns `{events, next_offset, partition}`.
    pub async fn stream_consume(
        &self,
        room: &str,
        partition: u32,
        from_offset: Option<u64>,
        limit: usize,
        wait_ms: u64,
    ) -> Result<Value> {
        let payload = json!({"room": room, "partition": partition, "from_offset": from_offset, "limit": limit, "wait_ms": wait_ms});
        self.command("stream.consume", payload).await
    }

    /// Creates a consumer group starting at `start` (`"earliest"`, `"latest"` or an offset).
    pub async fn stream_group_create(&self, room: &str, group: &str, start: Value) -> Result<()> {
        self.command("stream.group.create", json!({"room": room, "group": group, "start": start})).await.map(|_| ())
    }

    /// Delivers up to `count` events of the group to `consumer`, waiting up to `wait_ms` for some.
    pub async fn stream_group_read(
        &self,
        room: &str,
        group: &str,
        consumer: &str,
        count: usize,
        wait_ms: u64,
    ) -> Result<Vec<Value>> {
        let payload = json!({"room": room, "group": group, "consumer": consumer, "count": count, "wait_ms": wait_ms});
        let v = self.command("stream.group.read", payload).await?;
        Ok(v["events"].as_array().cloned().unwrap_or_default())
    }

    /// Acknowledges events of one partition; returns how many were pending.
    pub async fn stream_group_ack(&self, room: &str, group: &str, partition: u32, offsets: &[u64]) -> Result<u64> {
        let v = self
            .command(
                "stream.group.ack",
                json!({"room": room, "group": group, "partition": partition, "offsets": offsets}),
            )
            .await?;
        v["acked"].as_u64().ok_or_else(|| ClientError::Unexpected(format!("stream.group.ack answered {v}")))
    }

    /// One envelope command (`kv.set`, ...); returns its payload or its error.
    pub async fn command(&self, name: &str, payload: Value) -> Result<Value> {
        let v = self.post("/api/v1/command", json!({"command": name, "payload": payload})).await?;
        if v["success"].as_bool() == Some(true) {
            Ok(v["payload"].clone())
        } else {
            Err(ClientError::Http {
                status: 200,
                code: v["error"]["code"].as_str().unwrap_or("UNKNOWN").to_string(),
                message: v["error"]["message"].as_str().unwrap_or("").to_string(),
            })
        }
    }
}
