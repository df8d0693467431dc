//! The RESP front end: Redis clients, `redis-cli` and `redis-benchmark` talk to the engine over RESP2/RESP3.
//!
//! Layout:
//! - `mod`        (this file) listener, connection limit, the client registry and counters
//! - `connection` one client's I/O: read, parse (resumable, bounded), execute a batch, wait once for
//!   durability, answer with one write; pub/sub pushes; blocking waits
//! - `dispatch`   one command: looked up and parsed through the core's command table, then run
//! - `multi`      MULTI, EXEC, WATCH
//! - `admin`      server and connection commands: HELLO, INFO, CLIENT, CONFIG, COMMAND
//!
//! Commands are described and parsed once, in `synap_core::command` (its table).

mod acl;
mod admin;
pub use acl::hashing_permit;
mod cluster;
pub(crate) use cluster::info_section as cluster_info_section;
mod connection;
pub(crate) mod dispatch;
pub(crate) mod monitor;
mod multi;
mod observe;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::Instant;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tracing::{debug, warn};

use crate::service::Service;

/// Counters for INFO.
#[derive(Debug, Default)]
pub struct RespStats {
    pub connections_received: AtomicU64,
    pub rejected_connections: AtomicU64,
    pub protocol_errors: AtomicU64,
    pub output_limit_disconnects: AtomicU64,
    /// Clients waiting in a blocking command now.
    pub blocked_clients: AtomicU64,
}

/// One connected client, as CLIENT LIST shows it.
pub struct ClientEntry {
    pub id: u64,
    pub addr: SocketAddr,
    pub laddr: SocketAddr,
    pub name: Mutex<Option<Bytes>>,
    /// The user the client authenticated as.
    pub user: Mutex<Bytes>,
    pub created: Instant,
    /// Milliseconds since `created` of the last command.
    pub last_active_ms: AtomicU64,
    /// Index into the command table of the last command, or `u64::MAX`.
    pub last_cmd: AtomicU64,
    pub resp: AtomicU8,
    /// The selected database (SELECT).
    pub db: std::sync::atomic::AtomicU32,
    /// CLIENT TRACKING ... REDIRECT to this client: the trackers whose invalidations it delivers, and
    /// what wakes it when they have some.
    pub redirected: Mutex<Vec<std::sync::Weak<synap_core::tracking::Tracker>>>,
    pub redirect_ready: Arc<tokio::sync::Notify>,
    /// Set by CLIENT KILL; the connection closes at its next step (`kill` wakes it).
    pub killed: std::sync::atomic::AtomicBool,
    pub kill: tokio::sync::Notify,
    /// What CLIENT LIST shows of the connection's state, published by the connection after each batch.
    pub state: ClientState,
}

/// A connection's state as CLIENT LIST shows it.
#[derive(Default)]
pub struct ClientState {
    pub sub: std::sync::atomic::AtomicU32,
    pub psub: std::sync::atomic::AtomicU32,
    /// Commands queued in MULTI, or -1 outside MULTI.
    pub multi: std::sync::atomic::AtomicI64,
    /// Bytes read and not yet parsed (the query buffer).
    pub qbuf: AtomicU64,
    /// Bytes of replies and pushes waiting to be written.
    pub omem: AtomicU64,
    /// `FLAG_*` bits.
    pub flags: AtomicU8,
}

pub const FLAG_MONITOR: u8 = 1;
pub const FLAG_PUBSUB: u8 = 2;
pub const FLAG_MULTI: u8 = 4;
pub const FLAG_BLOCKED: u8 = 8;
pub const FLAG_TRACKING: u8 = 16;

impl ClientState {
    /// CLIENT LIST's `flags=`: Redis's letters, `N` for none.
    pub fn flag_letters(&self) -> String {
        let f = self.flags.load(Ordering::Relaxed);
        let mut s = String::new();
        for (bit, c) in
            [(FLAG_MONITOR, 'O'), (FLAG_PUBSUB, 'P'), (FLAG_MULTI, 'x'), (FLAG_BLOCKED, 'b'), (FLAG_TRACKING, 't')]
        {
            if f & bit != 0 {
                s.push(c);
            }
        }
        if s.is_empty() {
            s.push('N');
        }
        s
    }
}

/// State shared by all RESP connections.
pub struct RespShared {
    pub service: Arc<Service>,
    pub clients: Mutex<BTreeMap<u64, Arc<ClientEntry>>>,
    pub next_id: AtomicU64,
    pub stats: RespStats,
    pub started: Instant,
    pub bound: SocketAddr,
    /// Redis's `timeout`: seconds a client may stay idle (0: forever); CONFIG SET changes it for every
    /// client.
    pub idle_timeout_secs: AtomicU64,
    /// MONITOR clients.
    pub monitors: Arc<monitor::Monitors>,
    /// CLIENT PAUSE: until when (ms since `started`; 0: not paused) and whether only writes wait.
    pub paused_until_ms: AtomicU64,
    pub pause_writes_only: std::sync::atomic::AtomicBool,
    pub unpaused: tokio::sync::Notify,
    /// Places under `resp.max_connections`, shared by the plain and the TLS listener.
    pub conn_limit: Arc<Semaphore>,
}

impl RespShared {
    /// How long a command must wait under CLIENT PAUSE (`None`: it may run).
    pub fn pause_left(&self, is_write: bool) -> Option<std::time::Duration> {
        let until = self.paused_until_ms.load(Ordering::Acquire);
        let now = self.started.elapsed().as_millis() as u64;
        if until <= now {
            // Over: commands stop checking (unless a new pause came in between).
            if until > 0 {
                let _ = self.paused_until_ms.compare_exchange(until, 0, Ordering::AcqRel, Ordering::Acquire);
            }
            return None;
        }
        if self.pause_writes_only.load(Ordering::Acquire) && !is_write {
            return None;
        }
        Some(std::time::Duration::from_millis(until - now))
    }

    pub fn connected(&self) -> usize {
        self.clients.lock().len()
    }

    /// CONFIG RESETSTAT: what Redis resets (command, error, keyspace, connection and byte counts; not
    /// SLOWLOG or LATENCY events).
    pub fn reset_stats(&self) {
        self.service.stats.reset();
        self.service.engine.kv().reset_counters();
        self.service.replication.reset_counters();
        for c in [
            &self.stats.connections_received,
            &self.stats.rejected_connections,
            &self.stats.protocol_errors,
            &self.stats.output_limit_disconnects,
        ] {
            c.store(0, Ordering::Relaxed);
        }
    }
}

/// Accepts connections until `stop` turns true.
pub async fn serve(
    listener: TcpListener,
    shared: Arc<RespShared>,
    mut stop: watch::Receiver<bool>,
    tls: Option<Arc<crate::tls::Tls>>,
) {
    let limit = shared.conn_limit.clone();
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = stop.changed() => break,
        };
        let (socket, addr) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: log, back off briefly, go on.
                warn!(error = %e, "RESP accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        shared.stats.connections_received.fetch_add(1, Ordering::Relaxed);
        let _ = socket.set_nodelay(true);
        if crate::server::protected(&shared.service, addr.ip()) {
            shared.stats.rejected_connections.fetch_add(1, Ordering::Relaxed);
            if tls.is_some() {
                continue; // a TLS client would read the plain refusal as garbage: closed
            }
            tokio::spawn(async move {
                use tokio::io::AsyncWriteExt;
                let mut socket = socket;
                let msg = format!("-DENIED {}\r\n", crate::server::PROTECTED_MESSAGE);
                let _ = socket.write_all(msg.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
            continue;
        }
        match limit.clone().try_acquire_owned() {
            Ok(permit) => {
                let shared = shared.clone();
                let stop = stop.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    let laddr = socket.local_addr().unwrap_or(shared.bound);
                    let stream = match tls {
                        None => crate::tls::Stream::Plain(socket),
                        // A client that does not speak TLS (or has no valid certificate) is closed.
                        Some(t) => match t.accept(socket).await {
                            Ok(s) => s,
                            Err(e) => {
                                debug!(%addr, error = %e, "TLS handshake failed");
                                return;
                            }
                        },
                    };
                    connection::run(stream, addr, laddr, shared, stop).await;
                    drop(permit);
                });
            }
            Err(_) => {
                shared.stats.rejected_connections.fetch_add(1, Ordering::Relaxed);
                debug!(%addr, "RESP connection refused: max_connections reached");
                if tls.is_some() {
                    continue;
                }
                tokio::spawn(async move {
                    use tokio::io::AsyncWriteExt;
                    let mut socket = socket;
                    let _ = socket.write_all(b"-ERR max number of clients reached\r\n").await;
                    let _ = socket.shutdown().await;
                });
            }
        }
    }
}
