//! Serving HTTP/1.1 connections with limits: at most `http.max_connections` at once (more are answered
//! 503 and closed), a request head must arrive within `http.header_timeout_secs` of the connection
//! opening or of the previous response (slowloris, idle keep-alive connections), and a body may not pause
//! longer than `http.body_timeout_secs` between reads. A WebSocket session keeps its connection's place
//! until it closes ([`ConnPermit`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tracing::{debug, warn};

/// A connection's place under `http.max_connections`, in every request's extensions: hyper lets go of a
/// connection once it is upgraded, so a WebSocket session holds a clone to keep the place taken.
#[derive(Clone)]
pub struct ConnPermit(#[allow(dead_code)] Arc<OwnedSemaphorePermit>);

/// Counters for INFO and metrics.
#[derive(Debug, Default)]
pub struct HttpStats {
    pub connections_received: AtomicU64,
    pub rejected_connections: AtomicU64,
    /// The listener's connection places and their number (open connections: taken places).
    places: std::sync::OnceLock<(Arc<Semaphore>, usize)>,
}

impl HttpStats {
    /// HTTP connections open now (WebSocket sessions included).
    pub fn open(&self) -> usize {
        self.places.get().map_or(0, |(s, max)| max.saturating_sub(s.available_permits()))
    }
}

/// The limits a listener applies.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    pub header_timeout: Duration,
}

/// Accepts connections until `stop` turns true, then lets the open ones finish their requests (at most
/// 30 seconds).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    stats: Arc<HttpStats>,
    mut stop: watch::Receiver<bool>,
    tls: Option<Arc<crate::tls::Tls>>,
) {
    let max = limits.max_connections.clamp(1, u32::MAX as usize);
    let permits = Arc::new(Semaphore::new(max));
    let _ = stats.places.set((permits.clone(), max));
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = stopped(&mut stop) => break,
        };
        let (socket, addr) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: log, back off briefly, go on.
                warn!(error = %e, "HTTP accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        stats.connections_received.fetch_add(1, Ordering::Relaxed);
        let _ = socket.set_nodelay(true);
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            stats.rejected_connections.fetch_add(1, Ordering::Relaxed);
            debug!(%addr, "HTTP connection refused: http.max_connections reached");
            // A TLS client would read a plain answer as garbage: it is closed.
            if tls.is_none() {
                tokio::spawn(refuse(socket));
            }
            continue;
        };
        let permit = ConnPermit(Arc::new(permit));
        let app = app.clone();
        let service = hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(permit.clone());
            req.extensions_mut().insert(super::auth::PeerAddr(addr));
            let mut app = app.clone();
            async move { tower_service::Service::call(&mut app, req.map(axum::body::Body::new)).await }
        });
        let mut stop = stop.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let stream = match tls {
                None => crate::tls::Stream::Plain(socket),
                Some(t) => match t.accept_http(socket).await {
                    Ok(s) => s,
                    Err(e) => {
                        debug!(%addr, error = %e, "TLS handshake failed");
                        return;
                    }
                },
            };
            let mut builder = http1::Builder::new();
            builder.timer(TokioTimer::new()).header_read_timeout(limits.header_timeout);
            let conn = builder.serve_connection(TokioIo::new(stream), service).with_upgrades();
            tokio::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        debug!(%addr, error = %e, "HTTP connection ended with an error");
                    }
                }
                _ = stopped(&mut stop) => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
    }
    drop(listener);
    // Wait for open connections to finish (long-lived ones end when the server stops).
    let _ = tokio::time::timeout(Duration::from_secs(30), permits.acquire_many(max as u32)).await;
}

async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Answers a connection over the limit with 503 and closes it.
async fn refuse(mut socket: tokio::net::TcpStream) {
    let body =
        r#"{"error":{"code":"TOO_MANY_CONNECTIONS","message":"too many HTTP connections (http.max_connections)"}}"#;
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        let _ = socket.write_all(response.as_bytes()).await;
        let _ = socket.shutdown().await;
    })
    .await;
}
