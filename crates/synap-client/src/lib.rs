//! A Rust client for Synap.
//!
//! - [`Client`]: the RESP transport, pooled and pipelined, with typed methods per service.
//! - [`HttpClient`]: the HTTP transport (REST routes and the command envelope).
//! - [`Connection`]: one raw RESP connection (the CLI and the bench tool use it directly).
//!
//! # Key-value over RESP
//! ```no_run
//! # async fn demo() -> Result<(), synap_client::ClientError> {
//! use synap_client::{Client, SetOptions};
//! let client = Client::connect("127.0.0.1:6379", 8).await?;
//! client.set("user:1", "alice").await?;
//! assert_eq!(client.get("user:1").await?.as_deref(), Some(&b"alice"[..]));
//! client.set_with("session", "token", &SetOptions { ttl_ms: Some(60_000), ..Default::default() }).await?;
//! let views = client.incr_by("views", 1).await?;
//! # let _ = views;
//! # Ok(()) }
//! ```
//!
//! # Queues over RESP
//! ```no_run
//! # async fn demo() -> Result<(), synap_client::ClientError> {
//! use synap_client::Client;
//! let client = Client::connect("127.0.0.1:6379", 8).await?;
//! client.queue_create("jobs", &[("MAXRETRIES", "3")]).await?;
//! client.queue_publish("jobs", "resize img-42", 7).await?;
//! for m in client.queue_consume("jobs", "worker-1", 10, 5_000).await? {
//!     // ... do the work, then:
//!     client.queue_ack("jobs", &[m.id.as_str()]).await?;
//! }
//! # Ok(()) }
//! ```
//!
//! # Pub/Sub over RESP
//! ```no_run
//! # async fn demo() -> Result<(), synap_client::ClientError> {
//! use synap_client::Client;
//! let client = Client::connect("127.0.0.1:6379", 8).await?;
//! let mut sub = client.subscribe(&["news"], &["orders.*"]).await?;
//! client.publish("orders.eu", "o-1").await?;
//! let m = sub.next_message().await?;
//! assert_eq!(m.pattern.as_deref(), Some(&b"orders.*"[..]));
//! # Ok(()) }
//! ```
//!
//! # Streams: Redis's commands over RESP, offsets over HTTP
//! ```no_run
//! # async fn demo() -> Result<(), synap_client::ClientError> {
//! use synap_client::{Client, HttpClient};
//! let client = Client::connect("127.0.0.1:6379", 8).await?;
//! client.stream_group_create("events", "mailer", "$").await?;
//! client.stream_add("events", &[("kind", b"signup")]).await?;
//! for e in client.stream_read_group("events", "mailer", "m-1", 10, 5_000).await? {
//!     client.stream_ack("events", "mailer", &[e.id.as_str()]).await?;
//! }
//! let http = HttpClient::new("http://127.0.0.1:15500");
//! let (partition, offset) = http.stream_publish("chat", "message", "hi", Some("room-1")).await?;
//! let page = http.stream_consume("chat", partition, Some(offset), 100, 0).await?;
//! # let _ = page;
//! # Ok(()) }
//! ```
//!
//! # Key-value over HTTP
//! ```no_run
//! # async fn demo() -> Result<(), synap_client::ClientError> {
//! use synap_client::HttpClient;
//! let http = HttpClient::new("http://127.0.0.1:15500");
//! http.set(b"user:1", b"alice", Some(3600)).await?;
//! let page = http.scan(Some("user:"), 0, 100).await?;
//! # let _ = page;
//! # Ok(()) }
//! ```

mod connection;
mod error;
mod http_client;
mod resp_client;

pub use connection::Connection;
pub use error::{ClientError, Result};
pub use http_client::HttpClient;
pub use resp_client::{Client, Message, QueueMessage, ScanPage, SetOptions, StreamEntry, Subscriber};
pub use synap_resp::Value;
