//! The cluster port: Raft's messages and the nodes' reports to the quorum's leader, as length-prefixed
//! JSON frames (`len:u32 big-endian`, then the body) over TCP, one request at a time per connection.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpSocket, TcpStream};

use crate::tls::Stream;
use tokio::sync::watch;
use tracing::{debug, warn};

use super::{Cluster, NodeId, NodeInfo, TypeConfig};

/// The largest frame either side accepts (a snapshot chunk of the metadata state is far smaller).
const MAX_FRAME: usize = 4 << 20;
/// Connections the cluster port serves at once.
const MAX_CONNECTIONS: usize = 256;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// A connection idle this long is closed by the serving side.
const IDLE: Duration = Duration::from_secs(60);

/// A node's report to the quorum's leader (every heartbeat).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub node: NodeId,
    /// The last LSN this node holds.
    pub lsn: u64,
    /// The epoch this node acts in, and whether it acts as that epoch's primary.
    pub epoch: u64,
    pub primary: bool,
    /// The reporting process's incarnation (a restarted primary must not carry on unnoticed).
    pub boot: u64,
}

#[derive(Debug, Serialize, Deserialize)]
pub enum Request {
    Append(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<NodeId>),
    Snapshot(InstallSnapshotRequest<TypeConfig>),
    /// A node's liveness and offset; the answer grants a primary its lease.
    Report(Report),
    /// The primary asks to change the ISR of its epoch.
    AlterIsr {
        node: NodeId,
        epoch: u64,
        version: u64,
        isr: Vec<NodeId>,
    },
    /// Who are you (CLUSTER ADDNODE asks before adding a node).
    Hello,
}

#[derive(Debug, Serialize, Deserialize)]
pub enum Response {
    Append(Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>),
    Vote(Result<VoteResponse<NodeId>, RaftError<NodeId>>),
    Snapshot(Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>),
    /// `lease`: the reporting node is the primary of `epoch` and this node, the quorum's leader, confirmed
    /// its leadership after the report was sent.
    Report {
        lease: bool,
        epoch: u64,
    },
    AlterIsr(Result<(), String>),
    Hello {
        id: NodeId,
        info: NodeInfo,
    },
    Error(String),
}

async fn write_frame<T: Serialize>(socket: &mut Stream, msg: &T) -> std::io::Result<()> {
    let body = serde_json::to_vec(msg).map_err(std::io::Error::other)?;
    if body.len() > MAX_FRAME {
        return Err(std::io::Error::other("frame too large"));
    }
    let mut frame = Vec::with_capacity(body.len() + 4);
    frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
    frame.extend_from_slice(&body);
    socket.send(&frame).await
}

async fn read_frame<T: DeserializeOwned>(socket: &mut Stream) -> std::io::Result<T> {
    let mut len = [0u8; 4];
    socket.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(std::io::Error::other(format!("frame of {len} bytes is over the limit")));
    }
    // Read as it arrives (a peer that announces a large frame and sends nothing pins no memory).
    let mut body = Vec::with_capacity(len.min(64 * 1024));
    (&mut *socket).take(len as u64).read_to_end(&mut body).await?;
    if body.len() != len {
        return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "frame cut short"));
    }
    serde_json::from_slice(&body).map_err(std::io::Error::other)
}

/// Connects to `addr`, from `source` when set (the cluster's `source_addr`).
pub async fn connect(addr: &str, source: Option<IpAddr>) -> std::io::Result<TcpStream> {
    let target: SocketAddr = match tokio::net::lookup_host(addr).await?.next() {
        Some(a) => a,
        None => return Err(std::io::Error::other(format!("{addr} resolves to nothing"))),
    };
    let socket = if target.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    if let Some(ip) = source {
        socket.bind(SocketAddr::new(ip, 0))?;
    }
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, socket.connect(target))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"))??;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// How a node opens connections to the others: from the cluster's `source_addr`, over TLS when
/// `tls.cluster` is on (with `tls.auth_clients: yes` the cluster port then takes only nodes with a
/// certificate of the CA: the port is authenticated as well as encrypted).
#[derive(Clone)]
pub struct Dialer {
    pub source: Option<IpAddr>,
    pub tls: Option<Arc<crate::tls::Tls>>,
}

impl Dialer {
    pub async fn dial(&self, addr: &str) -> std::io::Result<Stream> {
        let tcp = connect(addr, self.source).await?;
        match &self.tls {
            None => Ok(Stream::Plain(tcp)),
            Some(t) => {
                let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
                t.connect(host, tcp).await
            }
        }
    }
}

/// Idle connections kept per address (Raft asks for a client per message round; reusing connections
/// spares a connect and a TIME_WAIT socket each time).
const POOLED_PER_ADDR: usize = 4;
/// A pooled connection idle longer than this is not reused (the serving side closes idle ones after
/// [`IDLE`]).
const POOLED_MAX_IDLE: Duration = Duration::from_secs(10);

/// Connections to the other members that are idle, by address, with when they were last used.
#[derive(Default)]
pub struct Pool {
    idle: parking_lot::Mutex<std::collections::HashMap<String, Vec<(Stream, std::time::Instant)>>>,
}

/// One request and its answer on a fresh or kept connection.
pub struct Peer {
    addr: String,
    dial: Dialer,
    conn: Option<Stream>,
    /// The connection came from the pool or an earlier call (it may have been closed meanwhile).
    reused: bool,
    /// A request was sent on `conn` and its whole answer not read yet (the call was cancelled or failed):
    /// the connection is out of step and never used again.
    in_flight: bool,
    pool: Option<Arc<Pool>>,
}

impl Peer {
    pub fn new(addr: String, dial: Dialer) -> Peer {
        Peer { addr, dial, conn: None, reused: false, in_flight: false, pool: None }
    }

    /// A peer that takes an idle connection from `pool` and gives it back when dropped.
    pub fn pooled(addr: String, dial: Dialer, pool: Arc<Pool>) -> Peer {
        let conn = {
            let mut idle = pool.idle.lock();
            let list = idle.entry(addr.clone()).or_default();
            list.retain(|(_, at)| at.elapsed() < POOLED_MAX_IDLE);
            list.pop().map(|(c, _)| c)
        };
        Peer { addr, dial, reused: conn.is_some(), conn, in_flight: false, pool: Some(pool) }
    }

    /// Sends `req` and reads the answer within `ttl`; a failed connection is dropped (the next call
    /// reconnects). A reused connection that fails at once (the other side closed it) is replaced by a
    /// fresh one within the same `ttl`.
    pub async fn call(&mut self, req: &Request, ttl: Duration) -> std::io::Result<Response> {
        let deadline = tokio::time::Instant::now() + ttl;
        loop {
            if self.in_flight {
                self.conn = None;
                self.in_flight = false;
            }
            let reused = self.conn.is_some() && self.reused;
            let work = async {
                if self.conn.is_none() {
                    self.conn = Some(self.dial.dial(&self.addr).await?);
                    self.reused = false;
                }
                let conn = self.conn.as_mut().expect("connected");
                self.in_flight = true;
                write_frame(conn, req).await?;
                let answer = read_frame::<Response>(conn).await?;
                self.in_flight = false;
                self.reused = true;
                Ok(answer)
            };
            let result = match tokio::time::timeout_at(deadline, work).await {
                Ok(r) => r,
                Err(_) => Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer in time")),
            };
            match result {
                Ok(answer) => return Ok(answer),
                Err(e) => {
                    self.conn = None;
                    self.in_flight = false;
                    if !reused || e.kind() == std::io::ErrorKind::TimedOut {
                        return Err(e);
                    }
                }
            }
        }
    }

    /// Drops the connection (an answer that makes no sense here: the stream cannot be trusted).
    fn discard(&mut self) {
        self.conn = None;
        self.in_flight = false;
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if self.in_flight {
            return; // a request without its answer read: the connection is out of step
        }
        if let (Some(pool), Some(conn)) = (&self.pool, self.conn.take()) {
            let mut idle = pool.idle.lock();
            let list = idle.entry(self.addr.clone()).or_default();
            if list.len() < POOLED_PER_ADDR {
                list.push((conn, std::time::Instant::now()));
            }
        }
    }
}

/// Raft's connections to the other members.
pub struct Network {
    pub dial: Dialer,
    pub pool: Arc<Pool>,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Peer;

    async fn new_client(&mut self, _target: NodeId, node: &NodeInfo) -> Peer {
        Peer::pooled(node.cluster.clone(), self.dial.clone(), self.pool.clone())
    }
}

fn unreachable<E: std::error::Error>(e: std::io::Error) -> RPCError<NodeId, NodeInfo, E> {
    RPCError::Unreachable(Unreachable::new(&e))
}

fn unexpected<E: std::error::Error>(what: &str) -> RPCError<NodeId, NodeInfo, E> {
    RPCError::Network(NetworkError::new(&std::io::Error::other(format!("unexpected answer to {what}"))))
}

impl RaftNetwork<TypeConfig> for Peer {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, NodeInfo, RaftError<NodeId>>> {
        match self.call(&Request::Append(rpc), option.hard_ttl()).await.map_err(unreachable)? {
            Response::Append(Ok(r)) => Ok(r),
            Response::Append(Err(e)) => Err(RPCError::RemoteError(RemoteError::new(0, e))),
            _ => {
                self.discard();
                Err(unexpected("append"))
            }
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RPCError<NodeId, NodeInfo, RaftError<NodeId, InstallSnapshotError>>>
    {
        match self.call(&Request::Snapshot(rpc), option.hard_ttl()).await.map_err(unreachable)? {
            Response::Snapshot(Ok(r)) => Ok(r),
            Response::Snapshot(Err(e)) => Err(RPCError::RemoteError(RemoteError::new(0, e))),
            _ => {
                self.discard();
                Err(unexpected("install snapshot"))
            }
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, NodeInfo, RaftError<NodeId>>> {
        match self.call(&Request::Vote(rpc), option.hard_ttl()).await.map_err(unreachable)? {
            Response::Vote(Ok(r)) => Ok(r),
            Response::Vote(Err(e)) => Err(RPCError::RemoteError(RemoteError::new(0, e))),
            _ => {
                self.discard();
                Err(unexpected("vote"))
            }
        }
    }
}

/// Serves the cluster port until the server stops.
pub async fn serve(
    listener: TcpListener,
    cluster: Arc<Cluster>,
    mut stop: watch::Receiver<bool>,
    tls: Option<Arc<crate::tls::Tls>>,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.changed() => return,
        };
        let (socket, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                warn!(error = %e, "cluster port: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            debug!(%peer, "cluster port: too many connections; closing one");
            continue;
        };
        let _ = socket.set_nodelay(true);
        let (cluster, stop, tls) = (cluster.clone(), stop.clone(), tls.clone());
        tokio::spawn(async move {
            let _slot = slot;
            let stream = match tls {
                None => Stream::Plain(socket),
                // Not TLS, or no certificate of the CA where one is required: closed.
                Some(t) => match t.accept(socket).await {
                    Ok(s) => s,
                    Err(e) => {
                        debug!(%peer, error = %e, "cluster port: TLS handshake failed");
                        return;
                    }
                },
            };
            serve_conn(stream, cluster, stop).await;
        });
    }
}

async fn serve_conn(mut socket: Stream, cluster: Arc<Cluster>, mut stop: watch::Receiver<bool>) {
    loop {
        let req = tokio::select! {
            r = tokio::time::timeout(IDLE, read_frame::<Request>(&mut socket)) => match r {
                Ok(Ok(req)) => req,
                _ => return,
            },
            _ = stop.changed() => return,
        };
        let resp = cluster.handle(req).await;
        // A peer that does not read its answers does not hold a slot for long.
        match tokio::time::timeout(IDLE, write_frame(&mut socket, &resp)).await {
            Ok(Ok(())) => {}
            _ => return,
        }
    }
}
