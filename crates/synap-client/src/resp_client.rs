//! The RESP client: a pool of connections with typed methods.

use std::sync::Arc;

use bytes::Bytes;
use synap_resp::Value;
use tokio::sync::{Mutex, Semaphore};

use crate::connection::Connection;
use crate::error::{ClientError, Result};

/// A pooled RESP client. Cheap to clone; clones share the pool.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    addr: String,
    idle: Mutex<Vec<Connection>>,
    permits: Semaphore,
}

/// Options of `SET`.
#[derive(Debug, Clone, Default)]
pub struct SetOptions {
    /// Expire after this many milliseconds.
    pub ttl_ms: Option<u64>,
    /// Only set when the key is absent (NX) / present (XX).
    pub only_if_absent: bool,
    pub only_if_present: bool,
    pub keep_ttl: bool,
}

/// One page of a SCAN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanPage {
    pub cursor: u64,
    pub keys: Vec<Bytes>,
}

impl Client {
    /// A client for `addr` (`host:port`) keeping at most `max_connections` open.
    pub fn new(addr: impl Into<String>, max_connections: usize) -> Client {
        Client {
            inner: Arc::new(Inner {
                addr: addr.into(),
                idle: Mutex::new(Vec::new()),
                permits: Semaphore::new(max_connections.max(1)),
            }),
        }
    }

    /// Connects once to check that the server answers PING.
    pub async fn connect(addr: impl Into<String>, max_connections: usize) -> Result<Client> {
        let c = Client::new(addr, max_connections);
        c.ping().await?;
        Ok(c)
    }

    pub fn addr(&self) -> &str {
        &self.inner.addr
    }

    /// Runs `f` on a pooled connection; a connection that failed is dropped rather than returned.
    async fn with_conn<T, F>(&self, f: F) -> Result<T>
    where
        F: for<'c> FnOnce(
            &'c mut Connection,
        ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<T>> + Send + 'c>>,
    {
        let _permit = self.inner.permits.acquire().await.map_err(|_| ClientError::Closed)?;
        let pooled = self.inner.idle.lock().await.pop();
        let mut conn = match pooled {
            Some(c) => c,
            None => Connection::connect(&self.inner.addr).await?,
        };
        let result = f(&mut conn).await;
        if !matches!(result, Err(ClientError::Io(_) | ClientError::Closed | ClientError::Protocol(_))) {
            self.inner.idle.lock().await.push(conn);
        }
        result
    }

    /// Sends any command; an error reply becomes [`ClientError::Server`].
    pub async fn command<A: AsRef<[u8]> + Sync>(&self, args: &[A]) -> Result<Value> {
        let args: Vec<Vec<u8>> = args.iter().map(|a| a.as_ref().to_vec()).collect();
        let v = self.with_conn(move |c| Box::pin(async move { c.call(&args).await })).await?;
        match v {
            Value::Error(e) => Err(ClientError::from_reply(&e)),
            v => Ok(v),
        }
    }

    /// Sends several commands in one round trip; each reply (or error reply) comes back in order.
    pub async fn pipeline(&self, cmds: Vec<Vec<Vec<u8>>>) -> Result<Vec<Value>> {
        self.with_conn(move |c| Box::pin(async move { c.pipeline(&cmds).await })).await
    }

    pub async fn ping(&self) -> Result<()> {
        match self.command(&["PING"]).await? {
            Value::Simple(s) if s == "PONG" => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    pub async fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Bytes>> {
        opt_bytes(self.command(&[b"GET".as_slice(), key.as_ref()]).await?)
    }

    pub async fn set(&self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Result<()> {
        self.set_with(key, value, &SetOptions::default()).await.map(|_| ())
    }

    /// SET with options; returns whether the value was set (false when NX/XX prevented it).
    pub async fn set_with(&self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>, opts: &SetOptions) -> Result<bool> {
        let mut args: Vec<Vec<u8>> = vec![b"SET".to_vec(), key.as_ref().to_vec(), value.as_ref().to_vec()];
        if let Some(ms) = opts.ttl_ms {
            args.push(b"PX".to_vec());
            args.push(ms.to_string().into_bytes());
        }
        if opts.only_if_absent {
            args.push(b"NX".to_vec());
        }
        if opts.only_if_present {
            args.push(b"XX".to_vec());
        }
        if opts.keep_ttl {
            args.push(b"KEEPTTL".to_vec());
        }
        match self.command(&args).await? {
            Value::Simple(s) if s == "OK" => Ok(true),
            Value::Nil => Ok(false),
            other => Err(unexpected(other)),
        }
    }

    pub async fn del(&self, keys: &[&[u8]]) -> Result<i64> {
        let mut args = vec![b"DEL".as_slice()];
        args.extend_from_slice(keys);
        int(self.command(&args).await?)
    }

    pub async fn exists(&self, keys: &[&[u8]]) -> Result<i64> {
        let mut args = vec![b"EXISTS".as_slice()];
        args.extend_from_slice(keys);
        int(self.command(&args).await?)
    }

    pub async fn incr_by(&self, key: impl AsRef<[u8]>, by: i64) -> Result<i64> {
        int(self.command(&[b"INCRBY".as_slice(), key.as_ref(), by.to_string().as_bytes()]).await?)
    }

    pub async fn mget(&self, keys: &[&[u8]]) -> Result<Vec<Option<Bytes>>> {
        let mut args = vec![b"MGET".as_slice()];
        args.extend_from_slice(keys);
        match self.command(&args).await? {
            Value::Array(items) => items.into_iter().map(opt_bytes).collect(),
            other => Err(unexpected(other)),
        }
    }

    pub async fn mset(&self, pairs: &[(&[u8], &[u8])]) -> Result<()> {
        let mut args = vec![b"MSET".as_slice()];
        for (k, v) in pairs {
            args.push(k);
            args.push(v);
        }
        self.command(&args).await.map(|_| ())
    }

    /// PEXPIRE: true when the key exists and got the expiry.
    pub async fn expire_ms(&self, key: impl AsRef<[u8]>, ms: u64) -> Result<bool> {
        Ok(int(self.command(&[b"PEXPIRE".as_slice(), key.as_ref(), ms.to_string().as_bytes()]).await?)? == 1)
    }

    /// PTTL: `None` when the key is missing, `Some(None)` without expiry, `Some(Some(ms))` otherwise.
    pub async fn ttl_ms(&self, key: impl AsRef<[u8]>) -> Result<Option<Option<u64>>> {
        Ok(match int(self.command(&[b"PTTL".as_slice(), key.as_ref()]).await?)? {
            -2 => None,
            -1 => Some(None),
            ms => Some(Some(ms as u64)),
        })
    }

    pub async fn scan(&self, cursor: u64, pattern: Option<&str>, count: usize) -> Result<ScanPage> {
        let mut args = vec!["SCAN".to_string(), cursor.to_string(), "COUNT".to_string(), count.to_string()];
        if let Some(p) = pattern {
            args.push("MATCH".into());
            args.push(p.to_string());
        }
        match self.command(&args).await? {
            Value::Array(mut parts) if parts.len() == 2 => {
                let keys = match parts.pop() {
                    Some(Value::Array(keys)) => keys
                        .into_iter()
                        .map(|k| opt_bytes(k)?.ok_or_else(|| unexpected(Value::Nil)))
                        .collect::<Result<_>>()?,
                    other => return Err(unexpected(other.unwrap_or(Value::Nil))),
                };
                let cursor = parts
                    .pop()
                    .and_then(|c| c.as_text())
                    .and_then(|c| c.parse().ok())
                    .ok_or_else(|| ClientError::Unexpected("SCAN cursor".into()))?;
                Ok(ScanPage { cursor, keys })
            }
            other => Err(unexpected(other)),
        }
    }

    /// QCREATE with options given as `(name, value)` pairs (`MAXDEPTH`, `ACKDEADLINE`, ...); true if created.
    pub async fn queue_create(&self, queue: &str, options: &[(&str, &str)]) -> Result<bool> {
        let mut args = vec!["QCREATE".to_string(), queue.to_string()];
        for (k, v) in options {
            args.push(k.to_string());
            args.push(v.to_string());
        }
        Ok(int(self.command(&args).await?)? == 1)
    }

    /// QPUBLISH: returns the message id.
    pub async fn queue_publish(&self, queue: &str, payload: impl AsRef<[u8]>, priority: u8) -> Result<String> {
        let p = priority.to_string();
        let v = self
            .command(&[b"QPUBLISH".as_slice(), queue.as_bytes(), payload.as_ref(), b"PRIORITY", p.as_bytes()])
            .await?;
        v.as_text().ok_or_else(|| unexpected(v))
    }

    /// QCONSUME: up to `count` messages, waiting up to `block_ms` (0: no wait) when none is ready.
    pub async fn queue_consume(
        &self,
        queue: &str,
        consumer: &str,
        count: usize,
        block_ms: u64,
    ) -> Result<Vec<QueueMessage>> {
        let mut args = vec!["QCONSUME".to_string(), queue.into(), consumer.into(), "COUNT".into(), count.to_string()];
        if block_ms > 0 {
            args.push("BLOCK".into());
            args.push(block_ms.to_string());
        }
        match self.command(&args).await? {
            Value::Nil => Ok(Vec::new()),
            Value::Array(items) => items.into_iter().map(QueueMessage::from_value).collect(),
            other => Err(unexpected(other)),
        }
    }

    /// HSET with field/value pairs: how many fields were new.
    pub async fn hset(&self, key: &str, pairs: &[(&str, &[u8])]) -> Result<i64> {
        let mut args: Vec<&[u8]> = vec![b"HSET", key.as_bytes()];
        for (f, v) in pairs {
            args.push(f.as_bytes());
            args.push(v);
        }
        int(self.command(&args).await?)
    }

    pub async fn hget(&self, key: &str, field: &str) -> Result<Option<Bytes>> {
        opt_bytes(self.command(&["HGET", key, field]).await?)
    }

    /// HGETALL as (field, value) pairs.
    pub async fn hgetall(&self, key: &str) -> Result<Vec<(Bytes, Bytes)>> {
        match self.command(&["HGETALL", key]).await? {
            Value::Array(items) => items
                .chunks(2)
                .map(|c| match c {
                    [Value::Bulk(f), Value::Bulk(v)] => Ok((f.clone(), v.clone())),
                    _ => Err(ClientError::Unexpected("HGETALL pair".into())),
                })
                .collect(),
            Value::Map(pairs) => pairs
                .into_iter()
                .map(|p| match p {
                    (Value::Bulk(f), Value::Bulk(v)) => Ok((f, v)),
                    _ => Err(ClientError::Unexpected("HGETALL pair".into())),
                })
                .collect(),
            other => Err(unexpected(other)),
        }
    }

    /// LPUSH (`left`) or RPUSH: the list's new length.
    pub async fn push(&self, key: &str, left: bool, values: &[&[u8]]) -> Result<i64> {
        let mut args: Vec<&[u8]> = vec![if left { b"LPUSH" } else { b"RPUSH" }, key.as_bytes()];
        args.extend_from_slice(values);
        int(self.command(&args).await?)
    }

    /// LPOP (`left`) or RPOP of one element.
    pub async fn pop(&self, key: &str, left: bool) -> Result<Option<Bytes>> {
        opt_bytes(self.command(&[if left { "LPOP" } else { "RPOP" }, key]).await?)
    }

    /// BLPOP over `keys`, waiting up to `timeout_secs` (0: forever): the key and the element.
    pub async fn blpop(&self, keys: &[&str], timeout_secs: f64) -> Result<Option<(Bytes, Bytes)>> {
        let t = timeout_secs.to_string();
        let mut args = vec!["BLPOP"];
        args.extend_from_slice(keys);
        args.push(&t);
        match self.command(&args).await? {
            Value::Nil => Ok(None),
            Value::Array(mut kv) if kv.len() == 2 => match (kv.remove(0), kv.remove(0)) {
                (Value::Bulk(k), Value::Bulk(v)) => Ok(Some((k, v))),
                other => Err(ClientError::Unexpected(format!("BLPOP answered {other:?}"))),
            },
            other => Err(unexpected(other)),
        }
    }

    pub async fn lrange(&self, key: &str, start: i64, stop: i64) -> Result<Vec<Bytes>> {
        bytes_list(self.command(&["LRANGE", key, &start.to_string(), &stop.to_string()]).await?)
    }

    /// SADD: how many members were new.
    pub async fn sadd(&self, key: &str, members: &[&[u8]]) -> Result<i64> {
        let mut args: Vec<&[u8]> = vec![b"SADD", key.as_bytes()];
        args.extend_from_slice(members);
        int(self.command(&args).await?)
    }

    pub async fn smembers(&self, key: &str) -> Result<Vec<Bytes>> {
        bytes_list(self.command(&["SMEMBERS", key]).await?)
    }

    /// ZADD of (score, member) pairs: how many members were new.
    pub async fn zadd(&self, key: &str, pairs: &[(f64, &str)]) -> Result<i64> {
        let mut args = vec!["ZADD".to_string(), key.to_string()];
        for (s, m) in pairs {
            args.push(s.to_string());
            args.push(m.to_string());
        }
        int(self.command(&args).await?)
    }

    /// ZRANGE by rank with scores.
    pub async fn zrange_withscores(&self, key: &str, start: i64, stop: i64) -> Result<Vec<(Bytes, f64)>> {
        let v = self.command(&["ZRANGE", key, &start.to_string(), &stop.to_string(), "WITHSCORES"]).await?;
        let Value::Array(items) = v else { return Err(unexpected(v)) };
        items
            .chunks(2)
            .map(|c| {
                let m = match &c[0] {
                    Value::Bulk(m) => m.clone(),
                    other => return Err(unexpected(other.clone())),
                };
                let s = match &c.get(1) {
                    Some(Value::Double(d)) => *d,
                    Some(v) => v.as_text().and_then(|t| t.parse().ok()).ok_or_else(|| unexpected((*v).clone()))?,
                    None => return Err(ClientError::Unexpected("ZRANGE WITHSCORES pair".into())),
                };
                Ok((m, s))
            })
            .collect()
    }

    /// MULTI, the commands, EXEC on one connection: one reply per command, or `None` when a WATCHed key
    /// changed (EXEC answered nil).
    pub async fn transaction(&self, cmds: Vec<Vec<Vec<u8>>>) -> Result<Option<Vec<Value>>> {
        let mut all = vec![vec![b"MULTI".to_vec()]];
        all.extend(cmds);
        all.push(vec![b"EXEC".to_vec()]);
        let mut replies = self.pipeline(all).await?;
        match replies.pop() {
            Some(Value::Array(items)) => Ok(Some(items)),
            Some(Value::Nil) => Ok(None),
            Some(Value::Error(e)) => Err(ClientError::from_reply(&e)),
            other => Err(ClientError::Unexpected(format!("EXEC answered {other:?}"))),
        }
    }

    /// XADD with an auto id: returns the event's id.
    pub async fn stream_add(&self, key: &str, fields: &[(&str, &[u8])]) -> Result<String> {
        let mut args: Vec<&[u8]> = vec![b"XADD", key.as_bytes(), b"*"];
        for (f, v) in fields {
            args.push(f.as_bytes());
            args.push(v);
        }
        let v = self.command(&args).await?;
        v.as_text().ok_or_else(|| unexpected(v))
    }

    /// XLEN.
    pub async fn stream_len(&self, key: &str) -> Result<i64> {
        int(self.command(&["XLEN", key]).await?)
    }

    /// XRANGE `start` `end` (`-`, `+`, ids), at most `count` events.
    pub async fn stream_range(&self, key: &str, start: &str, end: &str, count: usize) -> Result<Vec<StreamEntry>> {
        let c = count.to_string();
        StreamEntry::list(self.command(&["XRANGE", key, start, end, "COUNT", &c]).await?)
    }

    /// XREAD of one stream after `after` (`$` for only new events), waiting up to `block_ms` (0: no wait).
    pub async fn stream_read(&self, key: &str, after: &str, count: usize, block_ms: u64) -> Result<Vec<StreamEntry>> {
        let (c, b) = (count.to_string(), block_ms.to_string());
        let mut args = vec!["XREAD", "COUNT", &c];
        if block_ms > 0 {
            args.extend(["BLOCK", &b]);
        }
        args.extend(["STREAMS", key, after]);
        StreamEntry::from_read(self.command(&args).await?)
    }

    /// XGROUP CREATE ... MKSTREAM from `start` (`$`: new events only, `0`: all).
    pub async fn stream_group_create(&self, key: &str, group: &str, start: &str) -> Result<()> {
        match self.command(&["XGROUP", "CREATE", key, group, start, "MKSTREAM"]).await? {
            Value::Simple(_) => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    /// XREADGROUP of new events (`>`) for `consumer`, waiting up to `block_ms` (0: no wait).
    pub async fn stream_read_group(
        &self,
        key: &str,
        group: &str,
        consumer: &str,
        count: usize,
        block_ms: u64,
    ) -> Result<Vec<StreamEntry>> {
        let (c, b) = (count.to_string(), block_ms.to_string());
        let mut args = vec!["XREADGROUP", "GROUP", group, consumer, "COUNT", &c];
        if block_ms > 0 {
            args.extend(["BLOCK", &b]);
        }
        args.extend(["STREAMS", key, ">"]);
        StreamEntry::from_read(self.command(&args).await?)
    }

    /// XACK: how many were acknowledged.
    pub async fn stream_ack(&self, key: &str, group: &str, ids: &[&str]) -> Result<i64> {
        let mut args = vec!["XACK", key, group];
        args.extend_from_slice(ids);
        int(self.command(&args).await?)
    }

    /// QACK: how many were acknowledged.
    pub async fn queue_ack(&self, queue: &str, ids: &[&str]) -> Result<i64> {
        let mut args = vec!["QACK", queue];
        args.extend_from_slice(ids);
        int(self.command(&args).await?)
    }

    /// QNACK, with or without requeue.
    pub async fn queue_nack(&self, queue: &str, id: &str, requeue: bool) -> Result<bool> {
        let mut args = vec!["QNACK", queue, id];
        if requeue {
            args.push("REQUEUE");
        }
        Ok(int(self.command(&args).await?)? == 1)
    }

    /// PUBLISH: the number of subscribers that received the message.
    pub async fn publish(&self, channel: &str, payload: impl AsRef<[u8]>) -> Result<i64> {
        int(self.command(&[b"PUBLISH".as_slice(), channel.as_bytes(), payload.as_ref()]).await?)
    }

    /// Opens a dedicated connection subscribed to `channels` (exact) and `patterns` (Redis globs).
    pub async fn subscribe(&self, channels: &[&str], patterns: &[&str]) -> Result<Subscriber> {
        let mut conn = Connection::connect(&self.inner.addr).await?;
        let mut expected = 0;
        if !channels.is_empty() {
            let mut args = vec!["SUBSCRIBE"];
            args.extend_from_slice(channels);
            conn.send_raw(&encode(&args)).await?;
            expected += channels.len();
        }
        if !patterns.is_empty() {
            let mut args = vec!["PSUBSCRIBE"];
            args.extend_from_slice(patterns);
            conn.send_raw(&encode(&args)).await?;
            expected += patterns.len();
        }
        for _ in 0..expected {
            if let Value::Error(e) = conn.read_value().await? {
                return Err(ClientError::from_reply(&e));
            }
        }
        Ok(Subscriber { conn })
    }

    pub async fn dbsize(&self) -> Result<i64> {
        int(self.command(&["DBSIZE"]).await?)
    }

    pub async fn flushall(&self) -> Result<()> {
        self.command(&["FLUSHALL"]).await.map(|_| ())
    }
}

fn encode(args: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    synap_resp::encode_command(args, &mut out);
    out
}

/// A pub/sub message: the channel, the pattern that matched (if any) and the payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub channel: Bytes,
    pub pattern: Option<Bytes>,
    pub payload: Bytes,
}

/// A subscribed connection (see [`Client::subscribe`]).
pub struct Subscriber {
    conn: Connection,
}

impl Subscriber {
    /// The next message pushed by the server.
    pub async fn next_message(&mut self) -> Result<Message> {
        loop {
            let items = match self.conn.read_value().await? {
                Value::Array(items) | Value::Push(items) => items,
                other => return Err(unexpected(other)),
            };
            let text: Vec<Option<Bytes>> = items.into_iter().map(|v| opt_bytes(v).ok().flatten()).collect();
            match text.as_slice() {
                [Some(kind), Some(channel), Some(payload)] if &kind[..] == b"message" => {
                    return Ok(Message { channel: channel.clone(), pattern: None, payload: payload.clone() });
                }
                [Some(kind), Some(pattern), Some(channel), Some(payload)] if &kind[..] == b"pmessage" => {
                    return Ok(Message {
                        channel: channel.clone(),
                        pattern: Some(pattern.clone()),
                        payload: payload.clone(),
                    });
                }
                _ => continue, // subscription confirmations and the like
            }
        }
    }
}

fn bytes_list(v: Value) -> Result<Vec<Bytes>> {
    match v {
        Value::Array(items) | Value::Set(items) => items
            .into_iter()
            .map(|i| match i {
                Value::Bulk(b) => Ok(b),
                other => Err(unexpected(other)),
            })
            .collect(),
        other => Err(unexpected(other)),
    }
}

/// An event of a stream, as Redis's stream commands return it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamEntry {
    pub id: String,
    pub fields: Vec<(Bytes, Bytes)>,
}

impl StreamEntry {
    fn from_value(v: Value) -> Result<StreamEntry> {
        let Value::Array(mut pair) = v else { return Err(unexpected(v)) };
        if pair.len() != 2 {
            return Err(unexpected(Value::Array(pair)));
        }
        let fields = match pair.pop().expect("two items") {
            Value::Array(items) => items
                .chunks(2)
                .map(|c| match c {
                    [Value::Bulk(f), Value::Bulk(v)] => Ok((f.clone(), v.clone())),
                    _ => Err(ClientError::Unexpected("stream entry fields".into())),
                })
                .collect::<Result<_>>()?,
            Value::Nil => Vec::new(), // a deleted event in a history read
            other => return Err(unexpected(other)),
        };
        let id =
            pair.pop().and_then(|v| v.as_text()).ok_or_else(|| ClientError::Unexpected("stream entry id".into()))?;
        Ok(StreamEntry { id, fields })
    }

    fn list(v: Value) -> Result<Vec<StreamEntry>> {
        match v {
            Value::Array(items) => items.into_iter().map(StreamEntry::from_value).collect(),
            other => Err(unexpected(other)),
        }
    }

    /// The entries of an XREAD/XREADGROUP reply for one stream (nil: none).
    fn from_read(v: Value) -> Result<Vec<StreamEntry>> {
        match v {
            Value::Nil => Ok(Vec::new()),
            Value::Array(mut streams) if streams.len() == 1 => match streams.pop().expect("one") {
                Value::Array(mut kv) if kv.len() == 2 => StreamEntry::list(kv.pop().expect("two")),
                other => Err(unexpected(other)),
            },
            other => Err(unexpected(other)),
        }
    }

    /// The value of the first field named `name`.
    pub fn field(&self, name: &str) -> Option<&Bytes> {
        self.fields.iter().find(|(f, _)| f.as_ref() == name.as_bytes()).map(|(_, v)| v)
    }
}

/// A delivered queue message.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueMessage {
    pub id: String,
    pub payload: Bytes,
    pub priority: i64,
    pub attempt: i64,
    pub headers: Vec<(Bytes, Bytes)>,
}

impl QueueMessage {
    fn from_value(v: Value) -> Result<QueueMessage> {
        let pairs: Vec<(Value, Value)> = match v {
            Value::Map(p) => p,
            Value::Array(items) => {
                let mut it = items.into_iter();
                let mut out = Vec::new();
                while let (Some(k), Some(v)) = (it.next(), it.next()) {
                    out.push((k, v));
                }
                out
            }
            other => return Err(unexpected(other)),
        };
        let mut m = QueueMessage { id: String::new(), payload: Bytes::new(), priority: 0, attempt: 0, headers: vec![] };
        for (k, v) in pairs {
            match (k.as_text().as_deref(), v) {
                (Some("message_id"), v) => m.id = v.as_text().unwrap_or_default(),
                (Some("payload"), Value::Bulk(b)) => m.payload = b,
                (Some("priority"), Value::Int(n)) => m.priority = n,
                (Some("attempt"), Value::Int(n)) => m.attempt = n,
                (Some("headers"), Value::Map(h)) => {
                    m.headers =
                        h.into_iter().filter_map(|(k, v)| Some((opt_bytes(k).ok()??, opt_bytes(v).ok()??))).collect()
                }
                (Some("headers"), Value::Array(h)) => {
                    let mut it = h.into_iter();
                    while let (Some(k), Some(v)) = (it.next(), it.next()) {
                        if let (Ok(Some(k)), Ok(Some(v))) = (opt_bytes(k), opt_bytes(v)) {
                            m.headers.push((k, v));
                        }
                    }
                }
                _ => {}
            }
        }
        if m.id.is_empty() {
            return Err(ClientError::Unexpected("queue message without an id".into()));
        }
        Ok(m)
    }
}

fn unexpected(v: Value) -> ClientError {
    ClientError::Unexpected(format!("{v:?}"))
}

fn int(v: Value) -> Result<i64> {
    match v {
        Value::Int(n) => Ok(n),
        other => Err(unexpected(other)),
    }
}

fn opt_bytes(v: Value) -> Result<Option<Bytes>> {
    match v {
        Value::Bulk(b) => Ok(Some(b)),
        Value::Nil => Ok(None),
        Value::Error(e) => Err(ClientError::from_reply(&e)),
        other => Err(unexpected(other)),
    }
}
