//! Replication: a primary and its replicas, over the RESP port, on the mutation log.
//!
//! A replica connects to its primary's RESP port like a client and says `REPLCONF listening-port <p>`,
//! then `PSYNC <replication id> <offset>` (its id and the LSN of the last record it holds; `? -1` when it
//! holds nothing). The primary answers on that connection, which from then on carries the replication
//! stream:
//! - `+FULLRESYNC <id> <lsn>`: a full copy follows (a snapshot walk that also carries stream events, in
//!   chunks, constant memory on both sides), then the records after `lsn` from the backlog;
//! - `+CONTINUE <id>`: the records after the replica's offset, from the backlog (partial resync).
//!
//! Frames after the reply line: `kind:u8 len:u32 body[len]`:
//! - `C` a chunk of the copy (an encoded mutation batch); `E` the copy's end (`lsn:u64`);
//! - `R` log records, whole, as in a WAL segment (`len crc lsn payload` each);
//! - `H` a heartbeat (`last_lsn:u64 unix_ms:u64`) every second;
//! - `P` a pub/sub message published on the primary (`channel:bytes payload:bytes`).
//!
//! The replica appends each record to its own log under the primary's LSN (its log is the primary's, so
//! its offset is its last LSN and survives a restart with its data), applies it through the engine's
//! one applier, and once the record is as durable as its log promises sends `REPLCONF ACK <lsn>`.
//!
//! Replication ids (PSYNC2): a primary takes a new id on every start and on promotion and keeps the
//! previous one (`replid2`) valid up to the LSN it had then, so a replica continues only a history the
//! primary holds. A replica persists the id of the history its data belongs to in
//! `<data_dir>/replication.state`, cleared while a full copy is being loaded.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use crate::tls::Stream;
use bytes::{Buf, Bytes, BytesMut};
use parking_lot::Mutex;
use synap_core::pubsub::{Kind, Overflow};
use synap_core::{CommandError, Engine, Mutation, MutationLog, decode_batch};
use synap_storage::backlog::unix_ms;
use synap_storage::wal::decode_record;
use synap_storage::{MemoryLog, Persistence, ReplicatedLog};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::resp::dispatch::block_here;

/// Records sent per frame, about.
const FRAME_BYTES: usize = 256 * 1024;
/// Largest frame a replica accepts (a record holds at most one batch of at most 1 GiB).
const MAX_FRAME: usize = (1 << 30) + (1 << 20);
const HEARTBEAT: Duration = Duration::from_secs(1);
/// A link that hears nothing for this long is dropped (the primary sends a heartbeat every second).
const LINK_TIMEOUT: Duration = Duration::from_secs(30);
/// A replica reconnects after this long (a cluster member after a heartbeat).
const RETRY: Duration = Duration::from_secs(1);
/// Records of the copy per chunk.
const COPY_CHUNK: usize = 256;

/// Milliseconds on this process's monotonic clock (leases are measured on it).
pub fn mono_ms() -> u64 {
    static ORIGIN: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    // Starts at 1 so that 0 always means "no lease".
    ORIGIN.get_or_init(std::time::Instant::now).elapsed().as_millis() as u64 + 1
}

/// What the write path asks of replication, cheaply (atomics): the engine's log gate holds it.
#[derive(Default)]
pub struct Roles {
    replica: AtomicBool,
    /// The primary's `host:port`, while a replica.
    primary: Mutex<String>,
    min_acks: AtomicUsize,
    /// Replica links streaming records (past their copy).
    online: AtomicUsize,
    /// A member of a cluster: the quorum decides the role, a primary writes only under its lease and
    /// waits for its in-sync replicas.
    cluster: AtomicBool,
    /// This node's id in its cluster (sent to the primary before PSYNC).
    pub node_id: AtomicU64,
    /// The epoch this node acts in.
    epoch: AtomicU64,
    /// Until when (on [`mono_ms`]) this primary may take writes.
    lease_until: AtomicU64,
    /// The replicas (node ids) a write waits for: the committed ISR and the additions under way.
    waitset: Mutex<Vec<u64>>,
    /// Replicas in the committed ISR (only these count toward `min_replicas_to_ack`).
    isr_replicas: AtomicUsize,
}

impl Roles {
    /// Roles at start: a replica of `primary` (if given), with `min_acks` required acknowledgements.
    pub fn new(primary: Option<String>, min_acks: usize) -> Roles {
        Roles {
            replica: AtomicBool::new(primary.is_some()),
            primary: Mutex::new(primary.unwrap_or_default()),
            min_acks: AtomicUsize::new(min_acks),
            ..Roles::default()
        }
    }

    pub fn set_min_acks(&self, n: usize) {
        self.min_acks.store(n, Ordering::Release);
    }

    pub fn is_replica(&self) -> bool {
        self.replica.load(Ordering::Acquire)
    }

    pub fn min_acks(&self) -> usize {
        self.min_acks.load(Ordering::Acquire)
    }

    /// Roles of a cluster member at start: a replica of nobody until the quorum says otherwise.
    pub fn cluster_member(node_id: u64, min_acks: usize) -> Roles {
        let roles = Roles::new(Some(String::new()), min_acks);
        roles.cluster.store(true, Ordering::Release);
        roles.node_id.store(node_id, Ordering::Release);
        roles
    }

    pub fn is_cluster(&self) -> bool {
        self.cluster.load(Ordering::Acquire)
    }

    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    pub fn set_epoch(&self, epoch: u64) {
        self.epoch.store(epoch, Ordering::Release);
    }

    /// Sets the lease's end on [`mono_ms`] (0: none).
    pub fn set_lease(&self, until: u64) {
        self.lease_until.store(until, Ordering::Release);
    }

    /// Milliseconds left on this primary's lease (0: lapsed or none).
    pub fn lease_left_ms(&self) -> u64 {
        self.lease_until.load(Ordering::Acquire).saturating_sub(mono_ms())
    }

    /// The primary's address as last known (for READONLY).
    pub fn set_primary_name(&self, addr: String) {
        *self.primary.lock() = addr;
    }

    /// A cluster member acting as primary whose lease lapsed: another node may be primary already, so
    /// it answers no read as the primary (writes are refused by the log).
    pub fn fenced(&self) -> bool {
        self.is_cluster() && !self.is_replica() && self.lease_left_ms() == 0
    }

    /// The error a fenced primary answers.
    pub fn fenced_error(&self) -> CommandError {
        CommandError::ClusterDown(
            "this node lost its primary lease (cut off from the cluster's quorum); ask the cluster for its primary"
                .into(),
        )
    }

    pub fn waitset(&self) -> Vec<u64> {
        self.waitset.lock().clone()
    }
}

/// The engine's log: refuses writes on a replica (READONLY) and, under `min_replicas_to_ack`, while too
/// few replicas are connected (NOREPLICAS); appends to the log otherwise.
pub struct Gate {
    pub log: Arc<dyn ReplicatedLog>,
    pub roles: Arc<Roles>,
}

impl MutationLog for Gate {
    fn check_writable(&self) -> Result<(), CommandError> {
        self.log.check_writable()?;
        if self.roles.is_replica() {
            return Err(CommandError::ReadOnly { primary: self.roles.primary.lock().clone() });
        }
        let need = self.roles.min_acks();
        if self.roles.is_cluster() {
            // A primary whose lease lapsed may have been replaced already: it takes no write.
            if self.roles.lease_left_ms() == 0 {
                return Err(CommandError::ReadOnly { primary: self.roles.primary.lock().clone() });
            }
            if need > 0 && self.roles.isr_replicas.load(Ordering::Acquire) < need {
                return Err(CommandError::NoReplicas);
            }
            return Ok(());
        }
        if need > 0 && self.roles.online.load(Ordering::Acquire) < need {
            return Err(CommandError::NoReplicas);
        }
        Ok(())
    }

    fn takes_local_changes(&self) -> bool {
        self.log.check_writable().is_ok()
            && !self.roles.is_replica()
            && (!self.roles.is_cluster() || self.roles.lease_left_ms() > 0)
    }

    fn append(&self, batch: &[Mutation<'_>]) -> u64 {
        self.log.append(batch)
    }
}

/// Where a replica's copy goes: the data directory (snapshot + log), or memory only.
#[derive(Clone)]
pub enum Store {
    Disk(Arc<Persistence>),
    Memory(Arc<MemoryLog>),
}

/// A replica's link as its primary sees it.
pub struct Link {
    pub id: u64,
    pub addr: SocketAddr,
    pub port: u16,
    /// 0 copying (`wait_bgsave`/`send_bulk`), 1 online.
    state: AtomicU8,
    /// The last LSN the replica acknowledged (never past `sent`).
    pub acked: AtomicU64,
    /// The last LSN sent to the replica.
    sent: AtomicU64,
    last_ack_ms: AtomicU64,
    /// The replica's cluster node id (0: not a cluster member).
    node: u64,
}

impl Link {
    pub fn is_online(&self) -> bool {
        self.state.load(Ordering::Acquire) == 1
    }

    pub fn node(&self) -> u64 {
        self.node
    }

    /// Milliseconds since the replica's last acknowledgement.
    pub fn ack_age_ms(&self) -> u64 {
        unix_ms().saturating_sub(self.last_ack_ms.load(Ordering::Acquire))
    }

    /// Seconds since the replica's last acknowledgement (Redis's `lag`).
    pub fn ack_age_secs(&self) -> u64 {
        unix_ms().saturating_sub(self.last_ack_ms.load(Ordering::Acquire)) / 1000
    }
}

/// What a replica said before PSYNC: where it is, who it is in a cluster, what it asks for.
pub struct ReplicaHello {
    pub addr: SocketAddr,
    /// REPLCONF listening-port.
    pub port: u16,
    /// REPLCONF node-id and epoch (0 outside a cluster).
    pub node: u64,
    pub epoch: u64,
    pub replid: Bytes,
    pub offset: i64,
}

/// The replica side's link to its primary.
#[derive(Default)]
struct Upstream {
    host: String,
    port: u16,
    /// 0 connect, 1 connecting, 2 sync, 3 connected.
    state: AtomicU8,
    last_io_ms: AtomicU64,
    /// The primary's last LSN, from its heartbeats.
    primary_lsn: AtomicU64,
    stop: Option<watch::Sender<bool>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

struct Ids {
    replid: String,
    replid2: String,
    offset2: u64,
}

/// Replication state of this server.
pub struct Replication {
    pub roles: Arc<Roles>,
    pub log: Arc<dyn ReplicatedLog>,
    engine: Arc<Engine>,
    store: Store,
    ids: Mutex<Ids>,
    state_path: Option<PathBuf>,
    links: Mutex<BTreeMap<u64, Arc<Link>>>,
    next_link: AtomicU64,
    /// Bumped on every acknowledgement (WAIT and `min_replicas_to_ack` wait on it).
    acks: watch::Sender<u64>,
    upstream: Mutex<Upstream>,
    /// REPLICAOF and REPLICAOF NO ONE run one at a time.
    role_change: tokio::sync::Mutex<()>,
    /// The RESP port this server announces to its primary.
    pub announce_port: AtomicU64,
    pub ack_timeout: Duration,
    pub full_syncs: AtomicU64,
    pub partial_syncs: AtomicU64,
    pub partial_refused: AtomicU64,
    /// Full copies this server loaded as a replica.
    pub copies_loaded: AtomicU64,
    /// Records this replica applied from its primary.
    pub records_applied: AtomicU64,
    sync_in_progress: AtomicBool,
    server_stop: watch::Receiver<bool>,
    /// How long a replica waits before it reconnects (ms).
    retry_ms: AtomicU64,
    /// How often a primary sends a heartbeat on an idle link (ms); the replica acknowledges each.
    heartbeat_ms: AtomicU64,
    /// The address outbound links bind (`cluster.source_addr`).
    pub source_ip: Mutex<Option<std::net::IpAddr>>,
    /// The user and password sent with AUTH before the handshake (`replication.primary_password`).
    pub primary_auth: Mutex<Option<(String, String)>>,
    /// TLS for the link to the primary (`tls.replication`).
    pub tls: Mutex<Option<Arc<crate::tls::Tls>>>,
}

fn new_replid() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..40).map(|_| char::from_digit(rng.random_range(0..16), 16).expect("hex digit")).collect()
}

/// Reads `replid <id>` from the state file ("" when absent, unreadable, or a copy was being loaded).
fn read_state(path: &PathBuf) -> String {
    match std::fs::read_to_string(path) {
        Ok(text) => text
            .lines()
            .find_map(|l| l.strip_prefix("replid "))
            .map(|id| id.trim().to_string())
            .filter(|id| id.len() == 40 && id.bytes().all(|b| b.is_ascii_hexdigit()))
            .unwrap_or_default(),
        Err(_) => String::new(),
    }
}

impl Replication {
    /// CONFIG RESETSTAT: `sync_full`, `sync_partial_ok` and `sync_partial_err` from zero.
    pub fn reset_counters(&self) {
        for a in [&self.full_syncs, &self.partial_syncs, &self.partial_refused] {
            a.store(0, Ordering::Relaxed);
        }
    }

    pub fn new(
        engine: Arc<Engine>,
        roles: Arc<Roles>,
        log: Arc<dyn ReplicatedLog>,
        store: Store,
        state_path: Option<PathBuf>,
        ack_timeout: Duration,
        server_stop: watch::Receiver<bool>,
    ) -> Arc<Replication> {
        // The history the data on disk belongs to: continued as `replid2` up to the recovered LSN
        // (a primary), or asked for by PSYNC (a replica, which takes it as its id).
        let history = state_path.as_ref().map(read_state).unwrap_or_default();
        let last = log.last_lsn();
        let ids = if roles.is_replica() {
            Ids { replid: history, replid2: String::new(), offset2: 0 }
        } else {
            Ids { replid: new_replid(), replid2: history, offset2: last }
        };
        Arc::new(Replication {
            roles,
            log,
            engine,
            store,
            ids: Mutex::new(ids),
            state_path,
            links: Mutex::new(BTreeMap::new()),
            next_link: AtomicU64::new(1),
            acks: watch::channel(0).0,
            upstream: Mutex::new(Upstream::default()),
            role_change: tokio::sync::Mutex::new(()),
            announce_port: AtomicU64::new(0),
            ack_timeout,
            full_syncs: AtomicU64::new(0),
            partial_syncs: AtomicU64::new(0),
            partial_refused: AtomicU64::new(0),
            copies_loaded: AtomicU64::new(0),
            records_applied: AtomicU64::new(0),
            sync_in_progress: AtomicBool::new(false),
            server_stop,
            retry_ms: AtomicU64::new(RETRY.as_millis() as u64),
            heartbeat_ms: AtomicU64::new(HEARTBEAT.as_millis() as u64),
            source_ip: Mutex::new(None),
            primary_auth: Mutex::new(None),
            tls: Mutex::new(None),
        })
    }

    pub fn is_replica(&self) -> bool {
        self.roles.is_replica()
    }

    pub fn replid(&self) -> (String, String, u64) {
        let ids = self.ids.lock();
        (ids.replid.clone(), ids.replid2.clone(), ids.offset2)
    }

    /// Replica links, oldest first.
    pub fn links(&self) -> Vec<Arc<Link>> {
        self.links.lock().values().cloned().collect()
    }

    /// Lag of a replica link: records, bytes, milliseconds behind the primary's log.
    pub fn lag(&self, link: &Link) -> (u64, u64, u64) {
        let acked = link.acked.load(Ordering::Acquire);
        let last = self.log.last_lsn();
        let backlog = self.log.backlog();
        (last.saturating_sub(acked), backlog.bytes_after(acked), backlog.lag_ms(acked, unix_ms()))
    }

    /// A cluster member reconnects and heartbeats at the cluster's pace (a stalled replica is noticed
    /// within a heartbeat or two).
    pub fn set_timing(&self, retry: Duration, heartbeat: Duration) {
        self.retry_ms.store(retry.as_millis() as u64, Ordering::Relaxed);
        self.heartbeat_ms.store(heartbeat.as_millis().max(1) as u64, Ordering::Relaxed);
    }

    /// Whether this server follows `host:port` now.
    pub fn follows(&self, host: &str, port: u16) -> bool {
        let u = self.upstream.lock();
        self.is_replica() && u.host == host && u.port == port
    }

    /// The in-sync replicas a write waits for (a cluster primary); waiting writes look again.
    /// `nodes` are waited for; `committed` of them are in the committed ISR (they count toward the
    /// minimum).
    pub fn set_waitset(&self, nodes: Vec<u64>, committed: usize) {
        let before = self.roles.isr_replicas.swap(committed, Ordering::AcqRel);
        let mut w = self.roles.waitset.lock();
        if *w != nodes || before != committed {
            *w = nodes;
            drop(w);
            self.acks.send_modify(|n| *n += 1);
        }
    }

    /// Whether the replica `node` acknowledged `lsn` or later on a streaming link.
    pub fn node_acked(&self, node: u64, lsn: u64) -> bool {
        self.links
            .lock()
            .values()
            .any(|l| l.node == node && l.state.load(Ordering::Acquire) == 1 && l.acked.load(Ordering::Acquire) >= lsn)
    }

    /// A cluster primary's write: waits until every in-sync replica holds `lsn`; fails when the ISR has
    /// fewer replicas than required, or after the timeout.
    async fn wait_isr(&self, lsn: u64, need: usize) -> Result<(), CommandError> {
        let mut rx = self.acks.subscribe();
        let deadline = tokio::time::Instant::now() + self.ack_timeout;
        let mut stop = self.server_stop.clone();
        loop {
            rx.borrow_and_update();
            let wait = self.roles.waitset();
            let acked = wait.iter().filter(|n| self.node_acked(**n, lsn)).count();
            if self.roles.isr_replicas.load(Ordering::Acquire) < need {
                return Err(CommandError::NotReplicated { acked, needed: need });
            }
            if acked == wait.len() {
                return Ok(());
            }
            tokio::select! {
                r = rx.changed() => if r.is_err() { return Err(CommandError::NotReplicated { acked, needed: wait.len() }) },
                _ = tokio::time::sleep_until(deadline) => return Err(CommandError::NotReplicated { acked, needed: wait.len() }),
                _ = stop.changed() => return Err(CommandError::NotReplicated { acked, needed: wait.len() }),
            }
        }
    }

    /// Replicas that acknowledged `lsn` or later.
    pub fn acked_count(&self, lsn: u64) -> usize {
        self.links
            .lock()
            .values()
            .filter(|l| l.state.load(Ordering::Acquire) == 1 && l.acked.load(Ordering::Acquire) >= lsn)
            .count()
    }

    /// Waits until `n` replicas acknowledged `lsn` or `timeout` passes (`None`: no limit); returns how
    /// many did (WAIT).
    pub async fn wait_acks(&self, lsn: u64, n: usize, timeout: Option<Duration>) -> usize {
        let mut rx = self.acks.subscribe();
        let deadline = timeout.and_then(|t| tokio::time::Instant::now().checked_add(t));
        let mut stop = self.server_stop.clone();
        loop {
            rx.borrow_and_update();
            let count = self.acked_count(lsn);
            if count >= n {
                return count;
            }
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                r = rx.changed() => if r.is_err() { return count },
                _ = sleep => return self.acked_count(lsn),
                _ = stop.changed() => return self.acked_count(lsn),
            }
        }
    }

    /// Under `min_replicas_to_ack`: waits until that many replicas hold `lsn` (a write's reply waits
    /// for it), or fails after `replication.ack_timeout_ms`.
    pub async fn wait_replicated(&self, lsn: u64) -> Result<(), CommandError> {
        let need = self.roles.min_acks();
        if need == 0 || lsn == 0 || self.is_replica() {
            return Ok(());
        }
        if self.roles.is_cluster() {
            return self.wait_isr(lsn, need).await;
        }
        let acked = self.wait_acks(lsn, need, Some(self.ack_timeout)).await;
        if acked >= need { Ok(()) } else { Err(CommandError::NotReplicated { acked, needed: need }) }
    }

    /// Upstream status for INFO/ROLE: (host, port, state word, link up, seconds since last I/O, sync
    /// in progress).
    pub fn upstream(&self) -> (String, u16, &'static str, bool, u64, bool) {
        let u = self.upstream.lock();
        let state = u.state.load(Ordering::Acquire);
        let word = ["connect", "connecting", "sync", "connected"][state.min(3) as usize];
        let last = u.last_io_ms.load(Ordering::Acquire);
        let ago = if last == 0 { 0 } else { unix_ms().saturating_sub(last) / 1000 };
        (u.host.clone(), u.port, word, state == 3, ago, self.sync_in_progress.load(Ordering::Acquire))
    }

    /// The primary's last LSN as its last heartbeat said.
    pub fn primary_lsn(&self) -> u64 {
        self.upstream.lock().primary_lsn.load(Ordering::Acquire)
    }

    /// REPLICAOF host port: follows that primary from now on (writes are refused at once). `Ok(false)`:
    /// already following it. Role changes run one at a time; a full copy being loaded finishes first.
    pub async fn replicate_from(self: &Arc<Self>, host: String, port: u16) -> Result<bool, String> {
        let _change = self.role_change.lock().await;
        {
            let u = self.upstream.lock();
            if self.is_replica() && u.host == host && u.port == port {
                return Ok(false);
            }
        }
        let old = {
            let mut u = self.upstream.lock();
            let old = (u.stop.take(), u.task.take());
            *u = Upstream { host: host.clone(), port, ..Upstream::default() };
            old
        };
        // The old link's task ends at a safe point (never in the middle of a copy or a record).
        stop_following(old).await;
        *self.roles.primary.lock() = format!("{host}:{port}");
        // Under the engine's gate: no command or background item is halfway through logging, and none logs
        // after this (the log refuses them from here on).
        let (engine, roles) = (self.engine.clone(), self.roles.clone());
        let flip = move || engine.exclusive(|| roles.replica.store(true, Ordering::Release));
        tokio::task::spawn_blocking(flip).await.map_err(|e| e.to_string())?;
        // This server's replicas follow a new history now: they reconnect and ask again.
        for link in self.links.lock().values() {
            if link.state.compare_exchange(1, 2, Ordering::AcqRel, Ordering::Acquire).is_ok() {
                self.roles.online.fetch_sub(1, Ordering::AcqRel);
            } else {
                link.state.store(2, Ordering::Release);
            }
        }
        let (tx, rx) = watch::channel(false);
        info!(primary = %format!("{host}:{port}"), "replicating from a primary");
        let me = self.clone();
        let task = tokio::spawn(async move { me.follow(host, port, rx).await });
        let mut u = self.upstream.lock();
        u.stop = Some(tx);
        u.task = Some(task);
        Ok(true)
    }

    /// REPLICAOF NO ONE: stops following and takes writes, under a new replication id (the old one stays
    /// valid up to the last LSN held, for the other replicas of the old primary). The new id is on disk
    /// before the first write is taken; a full copy being loaded finishes first.
    pub async fn promote(self: &Arc<Self>) -> Result<(), String> {
        let _change = self.role_change.lock().await;
        if !self.is_replica() {
            return Ok(());
        }
        let old = {
            let mut u = self.upstream.lock();
            let old = (u.stop.take(), u.task.take());
            *u = Upstream::default();
            old
        };
        // No record is applied after this: the link's task is over.
        stop_following(old).await;
        {
            let mut ids = self.ids.lock();
            ids.replid2 = std::mem::take(&mut ids.replid);
            ids.offset2 = self.log.last_lsn();
            ids.replid = new_replid();
        }
        self.persist_ids().await?;
        self.roles.primary.lock().clear();
        let (engine, roles) = (self.engine.clone(), self.roles.clone());
        let flip = move || engine.exclusive(|| roles.replica.store(false, Ordering::Release));
        tokio::task::spawn_blocking(flip).await.map_err(|e| e.to_string())?;
        info!("promoted to primary");
        Ok(())
    }

    // ----- the primary's side -----

    /// Serves a replica that sent PSYNC on a RESP connection: answers, copies if needed, then streams.
    pub async fn serve(self: Arc<Self>, mut socket: Stream, buf: BytesMut, hello: ReplicaHello) {
        let ReplicaHello { addr, port, node, epoch, replid, offset } = hello;
        if self.roles.is_cluster() && !self.is_replica() && epoch != self.roles.epoch() {
            // A replica of another epoch: one of us is stale; it asks the quorum again.
            let msg = format!(
                "-ERR epoch mismatch: this primary acts in epoch {}, the replica in {epoch}\r\n",
                self.roles.epoch()
            );
            let _ = socket.send(msg.as_bytes()).await;
            return;
        }
        if self.is_replica() {
            // No chains of replicas: ask the primary.
            let _ = socket.send(b"-NOMASTERLINK Can't SYNC while not connected with my master\r\n").await;
            return;
        }
        self.log.enable_backlog();
        let link = Arc::new(Link {
            id: self.next_link.fetch_add(1, Ordering::Relaxed),
            addr,
            port,
            state: AtomicU8::new(0),
            acked: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            last_ack_ms: AtomicU64::new(unix_ms()),
            node,
        });
        self.links.lock().insert(link.id, link.clone());
        let result = self.serve_link(&mut socket, buf, &link, replid, offset).await;
        if link.state.compare_exchange(1, 2, Ordering::AcqRel, Ordering::Acquire).is_ok() {
            self.roles.online.fetch_sub(1, Ordering::AcqRel);
        }
        self.links.lock().remove(&link.id);
        self.acks.send_modify(|n| *n += 1);
        match result {
            Ok(()) => info!(replica = %addr, "replica link closed"),
            Err(e) => warn!(replica = %addr, error = %e, "replica link ended"),
        }
        let _ = socket.shutdown().await;
    }

    fn can_continue(&self, replid: &[u8], offset: i64) -> bool {
        if offset < 0 {
            return false;
        }
        let offset = offset as u64;
        let ids = self.ids.lock();
        let known = (replid == ids.replid.as_bytes() && offset <= self.log.last_lsn())
            || (!ids.replid2.is_empty() && replid == ids.replid2.as_bytes() && offset <= ids.offset2);
        known && self.log.backlog().covers(offset + 1)
    }

    async fn serve_link(
        &self,
        socket: &mut Stream,
        buf: BytesMut,
        link: &Arc<Link>,
        replid: Bytes,
        offset: i64,
    ) -> Result<(), String> {
        let id = self.ids.lock().replid.clone();
        let mut next = if self.can_continue(&replid, offset) {
            self.partial_syncs.fetch_add(1, Ordering::Relaxed);
            socket.send(format!("+CONTINUE {id}\r\n").as_bytes()).await.map_err(|e| e.to_string())?;
            info!(replica = %link.addr, from = offset + 1, "partial resync");
            offset as u64 + 1
        } else {
            if replid.as_ref() != b"?" {
                self.partial_refused.fetch_add(1, Ordering::Relaxed);
            }
            self.full_syncs.fetch_add(1, Ordering::Relaxed);
            self.send_copy(socket, &id, link).await? + 1
        };
        link.acked.store(next - 1, Ordering::Release);
        link.sent.store(next - 1, Ordering::Release);
        if self.is_replica() || link.state.compare_exchange(0, 1, Ordering::AcqRel, Ordering::Acquire).is_err() {
            return Ok(()); // this server became a replica meanwhile
        }
        self.roles.online.fetch_add(1, Ordering::AcqRel);
        self.acks.send_modify(|n| *n += 1);
        let (rd, mut wr) = tokio::io::split(&mut *socket);
        // Acknowledgements are read all the time, however busy the stream is.
        let acks = self.read_acks(rd, buf, link);
        tokio::pin!(acks);
        let pubsub = self.engine.pubsub();
        let sink = pubsub.register(65_536, 32 << 20, Overflow::DropOldest);
        pubsub.subscribe(sink.id, Kind::Glob, b"*");
        let _unregister = Unregister(&self.engine, sink.id);
        let mut records = self.log.backlog().subscribe();
        let mut heartbeat = tokio::time::interval(Duration::from_millis(self.heartbeat_ms.load(Ordering::Relaxed)));
        let mut stop = self.server_stop.clone();
        let mut batch = Vec::new();
        let mut frame = Vec::new();
        loop {
            if link.state.load(Ordering::Acquire) != 1 {
                return Ok(()); // this server became a replica
            }
            records.borrow_and_update();
            batch.clear();
            if let Err(o) = self.log.backlog().read(next, FRAME_BYTES, &mut batch) {
                return Err(format!(
                    "the replica fell behind the backlog (it needs record {next}, the oldest kept is {}); it will copy again",
                    o.first
                ));
            }
            frame.clear();
            if !batch.is_empty() {
                next += batch.len() as u64;
                let len: usize = batch.iter().map(|b| b.len()).sum();
                frame.push(b'R');
                frame.extend_from_slice(&(len as u32).to_le_bytes());
                for b in &batch {
                    frame.extend_from_slice(b);
                }
            }
            for m in sink.drain(256) {
                frame.push(b'P');
                frame.extend_from_slice(&((m.channel.len() + m.payload.len() + 8) as u32).to_le_bytes());
                frame.extend_from_slice(&(m.channel.len() as u32).to_le_bytes());
                frame.extend_from_slice(&m.channel);
                frame.extend_from_slice(&(m.payload.len() as u32).to_le_bytes());
                frame.extend_from_slice(&m.payload);
            }
            if !frame.is_empty() {
                tokio::select! {
                    r = tokio::time::timeout(LINK_TIMEOUT, async { wr.write_all(&frame).await?; wr.flush().await }) => {
                        r.map_err(|_| "the replica stopped reading for 30 s".to_string())?.map_err(|e| e.to_string())?
                    }
                    r = &mut acks => return r,
                }
                link.sent.store(next - 1, Ordering::Release);
                continue;
            }
            tokio::select! {
                r = records.changed() => if r.is_err() { return Ok(()) },
                _ = sink.ready() => {}
                r = &mut acks => return r,
                _ = heartbeat.tick() => {
                    let mut h = vec![b'H'];
                    h.extend_from_slice(&16u32.to_le_bytes());
                    h.extend_from_slice(&self.log.last_lsn().to_le_bytes());
                    h.extend_from_slice(&unix_ms().to_le_bytes());
                    tokio::time::timeout(LINK_TIMEOUT, async { wr.write_all(&h).await?; wr.flush().await })
                        .await
                        .map_err(|_| "the replica stopped reading for 30 s".to_string())?
                        .map_err(|e| e.to_string())?;
                    if unix_ms().saturating_sub(link.last_ack_ms.load(Ordering::Acquire)) > LINK_TIMEOUT.as_millis() as u64 {
                        return Err("no acknowledgement from the replica for 30 s".into());
                    }
                }
                _ = stop.changed() => return Ok(()),
            }
        }
    }

    /// Reads `REPLCONF ACK <lsn>` from a replica until the link closes.
    async fn read_acks(
        &self,
        mut rd: tokio::io::ReadHalf<&mut Stream>,
        mut buf: BytesMut,
        link: &Link,
    ) -> Result<(), String> {
        let mut parser = synap_resp::Parser::new(synap_resp::Limits { max_args: 8, max_bulk: 64, max_inline: 256 });
        loop {
            while let Some(args) = parser.parse(&mut buf).map_err(|e| format!("replica sent bad input: {e}"))? {
                let ack = args.len() == 3
                    && args[0].eq_ignore_ascii_case(b"replconf")
                    && args[1].eq_ignore_ascii_case(b"ack");
                if ack && let Some(lsn) = std::str::from_utf8(&args[2]).ok().and_then(|s| s.parse::<u64>().ok()) {
                    // A replica cannot hold what was never sent to it.
                    let lsn = lsn.min(link.sent.load(Ordering::Acquire));
                    link.acked.fetch_max(lsn, Ordering::AcqRel);
                    link.last_ack_ms.store(unix_ms(), Ordering::Release);
                    self.acks.send_modify(|n| *n += 1);
                }
            }
            if buf.len() > 4096 {
                return Err("replica sent an oversized command".into());
            }
            match rd.read_buf(&mut buf).await {
                Ok(0) => return Ok(()),
                Ok(_) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
    }

    /// Sends `+FULLRESYNC` and a full copy; returns the LSN the copy covers.
    async fn send_copy(&self, socket: &mut Stream, id: &str, link: &Link) -> Result<u64, String> {
        let engine = self.engine.clone();
        let log = self.log.clone();
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(4);
        let (start_tx, start_rx) = tokio::sync::oneshot::channel();
        // The walk (its start waits on the engine's gate, each chunk takes shard locks briefly) runs on a
        // blocking thread, with a bounded channel to the socket: a slow replica slows the walk, memory
        // stays constant.
        let walker = tokio::task::spawn_blocking(move || {
            let (lsn, mut cursor) = engine.copy_start(|| log.last_lsn());
            if start_tx.send(lsn).is_err() {
                return;
            }
            loop {
                let mut frame = vec![b'C', 0, 0, 0, 0];
                match engine.snapshot_chunk(&mut cursor, COPY_CHUNK, &mut frame) {
                    None => break,
                    Some(0) => continue,
                    Some(_) => {}
                }
                let len = (frame.len() - 5) as u32;
                frame[1..5].copy_from_slice(&len.to_le_bytes());
                if tx.blocking_send(frame).is_err() {
                    return;
                }
            }
            let mut end = vec![b'E'];
            end.extend_from_slice(&8u32.to_le_bytes());
            end.extend_from_slice(&lsn.to_le_bytes());
            let _ = tx.blocking_send(end);
        });
        let lsn = start_rx.await.map_err(|_| "the copy did not start".to_string())?;
        info!(replica = %link.addr, lsn, "full resync: sending a copy");
        socket.send(format!("+FULLRESYNC {id} {lsn}\r\n").as_bytes()).await.map_err(|e| e.to_string())?;
        let mut stop = self.server_stop.clone();
        loop {
            let frame = tokio::select! {
                f = rx.recv() => f,
                _ = stop.changed() => return Err("server stopping".into()),
            };
            let Some(frame) = frame else { break };
            if self.is_replica() {
                // REPLICAOF meanwhile: this server's data is about to be replaced; the copy would mix both.
                return Err("this server became a replica during the copy".into());
            }
            let last = frame[0] == b'E';
            socket.send(&frame).await.map_err(|e| e.to_string())?;
            if last {
                let _ = walker.await;
                return Ok(lsn);
            }
        }
        Err("the copy ended early".into())
    }

    // ----- the replica's side -----

    /// Follows a primary until told to stop: connects, syncs, applies, reconnects after a failure.
    async fn follow(self: Arc<Self>, host: String, port: u16, stop: watch::Receiver<bool>) {
        let mut stops = Stops { link: stop, server: self.server_stop.clone() };
        loop {
            if stops.now() {
                return;
            }
            self.set_upstream_state(1);
            let result = self.follow_once(&host, port, &mut stops).await;
            self.sync_in_progress.store(false, Ordering::Release);
            self.set_upstream_state(0);
            if let Err(e) = result {
                warn!(primary = %format!("{host}:{port}"), error = %e, "link to the primary lost; retrying");
            }
            let retry = Duration::from_millis(self.retry_ms.load(Ordering::Relaxed));
            tokio::select! {
                _ = tokio::time::sleep(retry) => {}
                _ = stops.wait() => return,
            }
        }
    }

    fn set_upstream_state(&self, s: u8) {
        self.upstream.lock().state.store(s, Ordering::Release);
    }

    fn touch_io(&self) {
        self.upstream.lock().last_io_ms.store(unix_ms(), Ordering::Release);
    }

    /// One link: handshake (given up at once when told to stop), copy if needed (never stopped halfway),
    /// then the stream of records (stopped between frames).
    async fn follow_once(&self, host: &str, port: u16, stops: &mut Stops) -> Result<(), String> {
        let (mut socket, mut buf, line, replid, offset) = tokio::select! {
            r = self.handshake(host, port) => r?,
            _ = stops.wait() => return Ok(()),
        };
        self.touch_io();
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["+FULLRESYNC", id, lsn]
                if id.len() <= 64 && id.bytes().all(|b| b.is_ascii_hexdigit()) && !id.is_empty() =>
            {
                let lsn: u64 = lsn
                    .parse()
                    .ok()
                    .filter(|l: &u64| *l < u64::MAX / 2)
                    .ok_or_else(|| format!("bad FULLRESYNC line: {line}"))?;
                self.set_upstream_state(2);
                self.load_copy(&mut socket, &mut buf, id, lsn).await?;
            }
            ["+CONTINUE", rest @ ..] => {
                if let Some(id) = rest.first().filter(|id| **id != replid) {
                    // The primary took a new id (it restarted or was promoted): this history goes on
                    // under it.
                    {
                        let mut ids = self.ids.lock();
                        ids.replid2 = std::mem::replace(&mut ids.replid, id.to_string());
                        ids.offset2 = self.log.last_lsn();
                    }
                    self.persist_ids().await?;
                }
                info!(from = offset + 1, "partial resync from the primary");
            }
            _ => return Err(format!("unexpected answer to PSYNC: {line}")),
        }
        self.set_upstream_state(3);
        self.stream(&mut socket, &mut buf, stops).await
    }

    /// Connects, announces the listening port and asks PSYNC; returns the answer line and what was asked.
    async fn handshake(&self, host: &str, port: u16) -> Result<(Stream, BytesMut, String, String, i64), String> {
        let addr = if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") };
        let source = *self.source_ip.lock();
        let connect = crate::cluster::net::connect(&addr, source);
        let socket = tokio::time::timeout(Duration::from_secs(5), connect)
            .await
            .map_err(|_| "connect timed out".to_string())?
            .map_err(|e| format!("connect: {e}"))?;
        let _ = socket.set_nodelay(true);
        let tls = self.tls.lock().clone();
        let mut socket = match tls {
            Some(t) => t.connect(host, socket).await.map_err(|e| format!("TLS: {e}"))?,
            None => Stream::Plain(socket),
        };
        let mut buf = BytesMut::with_capacity(64 * 1024);
        let auth = self.primary_auth.lock().clone();
        if let Some((user, password)) = auth {
            socket
                .send(&resp_command(&[b"AUTH", user.as_bytes(), password.as_bytes()]))
                .await
                .map_err(|e| e.to_string())?;
            let line = read_line(&mut socket, &mut buf).await?;
            if !line.starts_with('+') {
                return Err(format!("the primary refused AUTH: {line}"));
            }
        }
        let me = self.announce_port.load(Ordering::Relaxed).to_string();
        let cmd = if self.roles.is_cluster() {
            let node = self.roles.node_id.load(Ordering::Acquire).to_string();
            let epoch = self.roles.epoch().to_string();
            resp_command(&[
                b"REPLCONF",
                b"listening-port",
                me.as_bytes(),
                b"node-id",
                node.as_bytes(),
                b"epoch",
                epoch.as_bytes(),
            ])
        } else {
            resp_command(&[b"REPLCONF", b"listening-port", me.as_bytes()])
        };
        socket.send(&cmd).await.map_err(|e| e.to_string())?;
        let line = read_line(&mut socket, &mut buf).await?;
        if !line.starts_with('+') {
            return Err(format!("the primary refused REPLCONF: {line}"));
        }
        let (replid, offset) = {
            let ids = self.ids.lock();
            if ids.replid.is_empty() {
                ("?".to_string(), -1i64)
            } else {
                (ids.replid.clone(), self.log.last_lsn() as i64)
            }
        };
        let cmd = resp_command(&[b"PSYNC", replid.as_bytes(), offset.to_string().as_bytes()]);
        socket.send(&cmd).await.map_err(|e| e.to_string())?;
        let line = read_line(&mut socket, &mut buf).await?;
        Ok((socket, buf, line, replid, offset))
    }

    /// Writes the replication id the data belongs to (on a blocking thread: a small file, written,
    /// fsynced and renamed).
    pub async fn persist_ids(&self) -> Result<(), String> {
        let Some(path) = self.state_path.clone() else { return Ok(()) };
        let id = self.ids.lock().replid.clone();
        tokio::task::spawn_blocking(move || write_state(&path, &id)).await.map_err(|e| e.to_string())?
    }

    /// Loads a full copy: empties this server, applies the chunks (and writes them as the new snapshot),
    /// then starts the log over after the copy's LSN.
    async fn load_copy(&self, socket: &mut Stream, buf: &mut BytesMut, id: &str, lsn: u64) -> Result<(), String> {
        info!(lsn, "full resync: loading a copy from the primary");
        self.sync_in_progress.store(true, Ordering::Release);
        // A restart before the copy is complete must copy again: the data is neither old nor new.
        self.ids.lock().replid.clear();
        self.persist_ids().await?;
        // No snapshot runs from here on (one running is waited for), then the old data goes.
        let mut copy = match &self.store {
            Store::Disk(p) => {
                let p = p.clone();
                let guard = tokio::task::spawn_blocking(move || p.begin_copy(lsn));
                Some(guard.await.map_err(|e| e.to_string())?.map_err(|e| e.to_string())?)
            }
            Store::Memory(_) => None,
        };
        let engine = self.engine.clone();
        tokio::task::spawn_blocking(move || engine.clear_all()).await.map_err(|e| e.to_string())?;
        loop {
            let (kind, body) = tokio::time::timeout(LINK_TIMEOUT, read_frame(socket, buf))
                .await
                .map_err(|_| "the primary went silent for 30 s during the copy".to_string())??;
            self.touch_io();
            match kind {
                b'C' => block_here(|| {
                    let batch = decode_batch(&body).map_err(|e| format!("undecodable copy chunk: {e}"))?;
                    self.engine.check_databases(&batch)?;
                    self.engine.apply_batch(&batch);
                    match &mut copy {
                        Some(c) => c.write_chunk(&body, batch.len() as u64).map_err(|e| e.to_string()),
                        None => Ok(()),
                    }
                })?,
                b'E' => break,
                b'H' | b'P' => {}
                k => return Err(format!("unexpected frame {k} in a copy")),
            }
        }
        match (&self.store, copy) {
            (Store::Disk(p), Some(copy)) => {
                let p = p.clone();
                tokio::task::spawn_blocking(move || p.install_copy(copy, lsn))
                    .await
                    .map_err(|e| e.to_string())?
                    .map_err(|e| e.to_string())?;
            }
            (Store::Memory(m), _) => m.restart_at(lsn + 1),
            (Store::Disk(_), None) => unreachable!("a disk store makes a copy"),
        }
        {
            let mut ids = self.ids.lock();
            ids.replid = id.to_string();
            ids.replid2.clear();
            ids.offset2 = 0;
        }
        self.persist_ids().await?;
        self.sync_in_progress.store(false, Ordering::Release);
        self.copies_loaded.fetch_add(1, Ordering::Relaxed);
        info!(lsn, "full resync: copy loaded");
        Ok(())
    }

    /// Applies a frame of the primary's records and logs each under its LSN; returns the last LSN.
    /// Each record is applied, then logged, with nothing in between (as on the primary's write path: a
    /// snapshot that takes the log's LSN finds the record applied).
    fn apply_records(&self, body: &[u8]) -> Result<u64, String> {
        let mut rest = body;
        let mut last = 0;
        while !rest.is_empty() {
            if rest.len() < 16 {
                return Err("record cut short".into());
            }
            let len = u32::from_le_bytes(rest[0..4].try_into().expect("4 bytes")) as usize;
            let end = 16usize.checked_add(len).filter(|e| *e <= rest.len()).ok_or("record runs past its frame")?;
            let (lsn, payload) = decode_record(&rest[..end])?;
            let batch = decode_batch(payload).map_err(|e| format!("undecodable record {lsn}: {e}"))?;
            self.engine.check_databases(&batch)?;
            let apply = || {
                let want = self.log.last_lsn() + 1;
                if lsn != want {
                    return Err(format!("record {lsn} where {want} was expected"));
                }
                self.engine.apply_batch(&batch);
                self.log.append_record(lsn, payload)
            };
            // On the worker, as a command runs; a script holding the engine makes it wait on a thread
            // that may block.
            match self.engine.try_exclusive_for(Duration::from_millis(2), apply) {
                Ok(r) => r?,
                Err(apply) => block_here(|| self.engine.exclusive(apply))?,
            }
            self.records_applied.fetch_add(1, Ordering::Relaxed);
            last = lsn;
            rest = &rest[end..];
        }
        Ok(last)
    }

    /// Applies the primary's records and acknowledges them, until the link fails or the server stops.
    async fn stream(&self, socket: &mut Stream, buf: &mut BytesMut, stops: &mut Stops) -> Result<(), String> {
        let ack = |lsn: u64| resp_command(&[b"REPLCONF", b"ACK", lsn.to_string().as_bytes()]);
        socket.send(&ack(self.log.last_lsn())).await.map_err(|e| e.to_string())?;
        loop {
            // Stopped only here, between frames (reading is cancel-safe: what arrived stays in `buf`).
            let frame = tokio::select! {
                f = tokio::time::timeout(LINK_TIMEOUT, read_frame(socket, buf)) => {
                    f.map_err(|_| "the primary went silent for 30 s".to_string())??
                }
                _ = stops.wait() => return Ok(()),
            };
            self.touch_io();
            let (kind, body) = frame;
            match kind {
                b'R' => {
                    let last = match self.apply_records(&body) {
                        Ok(last) => last,
                        Err(e) => {
                            // This replica's log and its primary's no longer line up: it must not continue
                            // from its LSN, only copy again.
                            self.ids.lock().replid.clear();
                            self.persist_ids().await?;
                            return Err(format!("{e}; a full copy follows"));
                        }
                    };
                    // Acknowledged once as durable as this replica's log promises.
                    self.log.wait(last).await.map_err(|e| e.to_string())?;
                    if buf.is_empty() {
                        socket.send(&ack(last)).await.map_err(|e| e.to_string())?;
                    }
                }
                b'H' if body.len() == 16 => {
                    let lsn = u64::from_le_bytes(body[0..8].try_into().expect("8 bytes"));
                    self.upstream.lock().primary_lsn.store(lsn, Ordering::Release);
                    socket.send(&ack(self.log.last_lsn())).await.map_err(|e| e.to_string())?;
                }
                b'P' => {
                    let mut b = &body[..];
                    let mut field = || -> Option<Bytes> {
                        if b.len() < 4 {
                            return None;
                        }
                        let n = u32::from_le_bytes(b[0..4].try_into().ok()?) as usize;
                        let v = Bytes::copy_from_slice(b.get(4..4 + n)?);
                        b = &b[4 + n..];
                        Some(v)
                    };
                    if let (Some(channel), Some(payload)) = (field(), field()) {
                        self.engine.pubsub().publish(&channel, &payload);
                    }
                }
                k => return Err(format!("unexpected frame {k}")),
            }
        }
    }
}

/// What ends a replica's link: REPLICAOF (the link's own signal) or the server stopping.
struct Stops {
    link: watch::Receiver<bool>,
    server: watch::Receiver<bool>,
}

impl Stops {
    fn now(&self) -> bool {
        *self.link.borrow() || *self.server.borrow()
    }

    /// Resolves once told to stop (or once nobody can tell it any more).
    async fn wait(&mut self) {
        tokio::select! {
            _ = self.link.wait_for(|s| *s) => {}
            _ = self.server.wait_for(|s| *s) => {}
        }
    }
}

/// Stops a link's task and waits until it is over.
async fn stop_following(old: (Option<watch::Sender<bool>>, Option<tokio::task::JoinHandle<()>>)) {
    if let Some(stop) = old.0 {
        let _ = stop.send(true);
    }
    if let Some(task) = old.1 {
        let _ = task.await;
    }
}

/// Unregisters a pub/sub sink when dropped.
struct Unregister<'a>(&'a Engine, u64);

impl Drop for Unregister<'_> {
    fn drop(&mut self) {
        self.0.pubsub().unregister(self.1);
    }
}

fn write_state(path: &PathBuf, id: &str) -> Result<(), String> {
    let tmp = path.with_extension("tmp");
    let write = || -> std::io::Result<()> {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp)?;
        writeln!(f, "replid {id}")?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    };
    write().map_err(|e| {
        warn!(error = %e, path = %path.display(), "cannot write the replication state");
        format!("ERR cannot write the replication state {}: {e}", path.display())
    })
}

fn resp_command(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Reads one `\r\n`-terminated line (at most 512 bytes).
async fn read_line(socket: &mut Stream, buf: &mut BytesMut) -> Result<String, String> {
    loop {
        if let Some(i) = buf.windows(2).position(|w| w == b"\r\n") {
            let line = String::from_utf8_lossy(&buf[..i]).into_owned();
            buf.advance(i + 2);
            return Ok(line);
        }
        if buf.len() > 512 {
            return Err("the primary sent an overlong line".into());
        }
        let read = tokio::time::timeout(LINK_TIMEOUT, socket.read_buf(buf)).await;
        match read {
            Ok(Ok(0)) => return Err("the primary closed the connection".into()),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(e.to_string()),
            Err(_) => return Err("the primary did not answer in 30 s".into()),
        }
    }
}

/// Reads one frame: its kind and body.
async fn read_frame(socket: &mut Stream, buf: &mut BytesMut) -> Result<(u8, Bytes), String> {
    loop {
        if buf.len() >= 5 {
            let len = u32::from_le_bytes(buf[1..5].try_into().expect("4 bytes")) as usize;
            if len > MAX_FRAME {
                return Err(format!("frame of {len} bytes is larger than allowed"));
            }
            if buf.len() >= 5 + len {
                let kind = buf[0];
                buf.advance(5);
                return Ok((kind, buf.split_to(len).freeze()));
            }
            // Room for the rest as it arrives (read_buf grows the buffer in steps; never the whole
            // announced length up front).
        }
        if buf.capacity() - buf.len() < 16 * 1024 {
            buf.reserve(64 * 1024);
        }
        match socket.read_buf(buf).await {
            Ok(0) => return Err("the primary closed the connection".into()),
            Ok(_) => {}
            Err(e) => return Err(e.to_string()),
        }
    }
}
