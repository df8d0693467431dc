//! Automatic failover: a metadata quorum (Raft, by `openraft`) among the cluster's nodes decides which node
//! is the primary, in which epoch, and which replicas are in sync (the ISR); the data stays on the
//! replication stream.
//!
//! - Every node reports to the quorum's leader every heartbeat (its LSN, the epoch it acts in). The
//!   primary's report is answered with a lease only after the leader confirmed its own leadership with a
//!   quorum; the primary takes writes while its lease (`cluster.lease_ms` from when it sent the report)
//!   lasts, and refuses them (READONLY) once it lapses.
//! - The leader promotes the ISR member with the highest LSN when the primary has not reported for a
//!   lease (counted from the leader's own election too, so a new leader never cuts a lease short), and
//!   commits the new epoch. Nodes act on what is committed: the new primary promotes itself (a new
//!   replication id, the old one valid up to its LSN), the others follow it, an old primary that comes
//!   back follows it too and copies again if it holds records the new primary lacks.
//! - The primary keeps the ISR: a replica more than `replication.max_lag_ms` behind leaves it, one that
//!   catches up joins it; each change is committed by the quorum before the primary stops waiting for a
//!   member (a removal) and after it starts waiting (an addition), so every member of the committed ISR
//!   holds every acknowledged write. Under `min_replicas_to_ack` a write waits for every ISR member and
//!   is refused while the ISR has fewer replicas than that.

pub mod net;
pub mod store;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Cursor;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use openraft::{ChangeMembers, Raft, ServerState};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

pub use self::net::Report;
use self::net::{Peer, Request, Response};
pub use self::store::ClusterState;
use crate::config::Config;
use crate::replication::{Replication, mono_ms};

pub type NodeId = u64;

/// Log entries between two snapshots of the quorum's state machine.
pub const SNAPSHOT_EVERY: u64 = 64;

/// A member's addresses: its cluster port, and the RESP and HTTP addresses clients and replicas use.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    pub cluster: String,
    pub resp: String,
    pub http: String,
}

/// What the quorum commits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClusterCmd {
    /// A new epoch with `primary` (a member of `isr`, a subset of the current ISR) in its incarnation
    /// `boot` (the one whose LSN the decision compared), if the epoch and the version are still those the
    /// decision saw.
    Elect { expect_epoch: u64, expect_version: u64, primary: NodeId, isr: BTreeSet<NodeId>, boot: u64 },
    /// The primary of `epoch` changes its ISR (from the version it saw).
    SetIsr { epoch: u64, expect_version: u64, primary: NodeId, isr: BTreeSet<NodeId> },
    /// A member is being removed: it leaves the ISR.
    Forget { node: NodeId },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterReply {
    pub ok: bool,
    pub epoch: u64,
}

openraft::declare_raft_types!(
    pub TypeConfig:
        D = ClusterCmd,
        R = ClusterReply,
        NodeId = NodeId,
        Node = NodeInfo,
);

/// When the leader last heard from a node, and what it said.
#[derive(Clone, Copy)]
struct Seen {
    at: Instant,
    lsn: u64,
    boot: u64,
}

/// Raft terms beyond this are refused (elections add one at a time; this is never reached honestly).
const MAX_TERM: u64 = u64::MAX / 4;

/// A commit that timed out (it may still apply).
const NOT_IN_TIME: &str = "the quorum did not commit in time";

/// How long a metadata change may wait for the quorum before the caller gives up (it may still commit).
const COMMIT_TIMEOUT: Duration = Duration::from_secs(5);

/// A node's view of the cluster for INFO, ROLE, SENTINEL and `/cluster/status`.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub node_id: NodeId,
    pub epoch: u64,
    pub primary: Option<NodeId>,
    pub isr: Vec<NodeId>,
    pub leader: Option<NodeId>,
    pub term: u64,
    pub raft_state: String,
    pub members: BTreeMap<NodeId, NodeInfo>,
    pub learners: Vec<NodeId>,
    /// This node takes writes now (it is the primary and holds a lease).
    pub writable: bool,
    pub lease_ms_left: u64,
    pub failovers: u64,
}

pub struct Cluster {
    pub id: NodeId,
    /// The cluster port's bound address.
    pub bound: std::net::SocketAddr,
    pub info: NodeInfo,
    /// The name Sentinel clients ask for (`SENTINEL get-master-addr-by-name <name>`).
    pub name: String,
    raft: Raft<TypeConfig>,
    pub state: watch::Receiver<ClusterState>,
    replication: Arc<Replication>,
    /// How this node opens connections to the others (source address, TLS).
    dial: net::Dialer,
    lease: Duration,
    heartbeat: Duration,
    max_lag: Duration,
    /// The leader's view: when each member last reported.
    seen: Mutex<HashMap<NodeId, Seen>>,
    /// The leader's last lease grant: to which primary, in which epoch, when.
    granted: Mutex<Option<(NodeId, u64, Instant)>>,
    /// This process's incarnation (random, not 0).
    boot: u64,
    /// The term this node leads in, and since when.
    leading: Mutex<Option<(u64, Instant)>>,
    /// The epoch this leader last saw, and since when (a new primary gets a full lease to report).
    observed: Mutex<Option<(u64, Instant)>>,
    /// The primary's view: when each replica was last within `max_lag` of this node's log.
    caught_up: Mutex<HashMap<NodeId, Instant>>,
    /// ISR additions not yet committed, already waited for, with the LSN they must hold before they are
    /// proposed (everything acknowledged before writes started waiting for them).
    pending: Mutex<BTreeMap<NodeId, u64>>,
    /// The last ISR change proposed: its members stay waited for while it may still apply (until the
    /// ISR version moves past the one it names).
    proposed: Mutex<Option<(u64, BTreeSet<NodeId>)>>,
    /// The connection to the leader's cluster port (reports and ISR changes).
    to_leader: tokio::sync::Mutex<Option<(NodeId, Peer)>>,
    /// Promotions this node's controller committed.
    pub failovers: AtomicU64,
    stop: watch::Receiver<bool>,
}

impl Cluster {
    /// Opens the quorum's storage under `dir`, binds the cluster port and starts the node's tasks.
    #[allow(clippy::too_many_arguments)]
    pub async fn start(
        config: &Config,
        dir: &Path,
        replication: Arc<Replication>,
        resp: String,
        http: String,
        stop: watch::Receiver<bool>,
        tls: Option<Arc<crate::tls::Tls>>,
    ) -> anyhow::Result<(Arc<Cluster>, Vec<JoinHandle<()>>)> {
        let cfg = &config.cluster;
        let d = dir.to_path_buf();
        let (log, sm) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            std::fs::create_dir_all(&d)?;
            Ok((store::LogStore::open(&d)?, store::StateMachine::open(&d)?))
        })
        .await??;
        let listener = TcpListener::bind(cfg.addr)
            .await
            .map_err(|e| anyhow::anyhow!("cannot bind the cluster port on {}: {e}", cfg.addr))?;
        let bound = listener.local_addr()?;
        let pick = |announce: &str, default: String| if announce.is_empty() { default } else { announce.to_string() };
        let info = NodeInfo {
            cluster: pick(&cfg.announce_addr, bound.to_string()),
            resp: pick(&cfg.announce_resp, resp),
            http: pick(&cfg.announce_http, http),
        };
        let dial = net::Dialer { source: cfg.source_ip()?, tls: tls.clone() };
        let raft_config = openraft::Config {
            cluster_name: cfg.name.clone(),
            heartbeat_interval: cfg.heartbeat_ms,
            election_timeout_min: cfg.election_timeout_ms,
            election_timeout_max: cfg.election_timeout_ms * 2,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(SNAPSHOT_EVERY),
            max_in_snapshot_log_to_keep: SNAPSHOT_EVERY,
            snapshot_max_chunk_size: 256 * 1024,
            ..Default::default()
        };
        let raft_config = Arc::new(raft_config.validate().map_err(|e| anyhow::anyhow!("cluster: {e}"))?);
        let state = sm.state.subscribe();
        let raft =
            Raft::new(cfg.node_id, raft_config, net::Network { dial: dial.clone(), pool: Default::default() }, log, sm)
                .await
                .map_err(|e| anyhow::anyhow!("cluster: cannot start the quorum: {e}"))?;
        if cfg.bootstrap && !raft.is_initialized().await.map_err(|e| anyhow::anyhow!("{e}"))? {
            let members = BTreeMap::from([(cfg.node_id, info.clone())]);
            raft.initialize(members).await.map_err(|e| anyhow::anyhow!("cluster: cannot bootstrap: {e}"))?;
            info!(node = cfg.node_id, "cluster bootstrapped with this node");
        }
        replication.set_timing(Duration::from_millis(cfg.heartbeat_ms), Duration::from_millis(cfg.heartbeat_ms));
        let cluster = Arc::new(Cluster {
            id: cfg.node_id,
            bound,
            info,
            name: cfg.name.clone(),
            raft,
            state,
            replication,
            dial,
            lease: Duration::from_millis(cfg.lease_ms),
            heartbeat: Duration::from_millis(cfg.heartbeat_ms),
            max_lag: Duration::from_millis(config.replication.max_lag_ms),
            seen: Mutex::new(HashMap::new()),
            granted: Mutex::new(None),
            boot: loop {
                let b = rand::random::<u64>();
                if b != 0 {
                    break b;
                }
            },
            leading: Mutex::new(None),
            observed: Mutex::new(None),
            caught_up: Mutex::new(HashMap::new()),
            pending: Mutex::new(BTreeMap::new()),
            proposed: Mutex::new(None),
            to_leader: tokio::sync::Mutex::new(None),
            failovers: AtomicU64::new(0),
            stop: stop.clone(),
        });
        let mut tasks = vec![tokio::spawn(net::serve(listener, cluster.clone(), stop.clone(), tls))];
        let c = cluster.clone();
        tasks.push(tokio::spawn(async move { c.run().await }));
        info!(node = cluster.id, cluster = %cluster.info.cluster, "cluster port listening");
        Ok((cluster, tasks))
    }

    /// The cluster port's bound address.
    pub fn addr(&self) -> String {
        self.bound.to_string()
    }

    /// Every heartbeat: act on what is committed, report to the leader, keep the ISR (as primary) and
    /// watch the primary (as leader); at once when the committed state changes.
    async fn run(self: Arc<Self>) {
        let mut tick = tokio::time::interval(self.heartbeat);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut state = self.state.clone();
        let mut stop = self.stop.clone();
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                r = state.changed() => if r.is_err() { return },
                _ = stop.changed() => {
                    let _ = self.raft.shutdown().await;
                    return;
                }
            }
            self.reconcile().await;
            self.report().await;
            self.keep_isr().await;
            self.control().await;
        }
    }

    fn member(&self, id: NodeId) -> Option<NodeInfo> {
        let m = self.raft.metrics().borrow().membership_config.clone();
        m.membership().get_node(&id).cloned()
    }

    fn voters(&self) -> BTreeSet<NodeId> {
        let m = self.raft.metrics().borrow().membership_config.clone();
        m.membership().voter_ids().collect()
    }

    /// Makes this node what the committed state says: the primary, or a replica of it.
    async fn reconcile(&self) {
        let st = self.state.borrow().clone();
        let roles = &self.replication.roles;
        let Some(primary) = st.primary else { return };
        if primary == self.id {
            // Promoted once the leader confirms it (see `report`): a node restarted with a stale view
            // of the quorum's state must not act on it.
            if !self.replication.is_replica() && roles.epoch() == st.epoch {
                self.set_waitset(&st);
            }
            return;
        }
        roles.set_lease(0);
        let Some(info) = self.member(primary) else { return };
        let Some((host, port)) = split_addr(&info.resp) else { return };
        roles.set_epoch(st.epoch);
        if !self.replication.follows(&host, port) {
            info!(epoch = st.epoch, primary, addr = %info.resp, "cluster: following the primary");
            if let Err(e) = self.replication.replicate_from(host, port).await {
                warn!(error = %e, "cluster: cannot follow the primary");
            }
            // Writes refused here name the primary for RESP and HTTP clients both.
            roles.set_primary_name(format!("{} (HTTP {})", info.resp, info.http));
        }
    }

    /// The replicas a write waits for: the committed ISR and the additions being proposed.
    fn set_waitset(&self, st: &ClusterState) {
        let mut pending = self.pending.lock();
        pending.retain(|n, _| !st.isr.contains(n));
        let mut proposed = self.proposed.lock();
        if proposed.as_ref().is_some_and(|(version, _)| st.version > *version) {
            *proposed = None; // applied or refused: it can no longer apply
        }
        let in_flight = proposed.iter().flat_map(|(_, isr)| isr.iter());
        let wait: BTreeSet<NodeId> =
            st.isr.iter().chain(pending.keys()).chain(in_flight).copied().filter(|n| *n != self.id).collect();
        let committed = st.isr.iter().filter(|n| **n != self.id).count();
        self.replication.set_waitset(wait.into_iter().collect(), committed);
    }

    /// Reports to the leader; as the primary, renews the lease when the leader grants it.
    async fn report(&self) {
        let st = self.state.borrow().clone();
        let roles = &self.replication.roles;
        let claim = st.primary == Some(self.id);
        let report = Report {
            node: self.id,
            lsn: self.replication.log.last_lsn(),
            epoch: st.epoch,
            primary: claim,
            boot: self.boot,
        };
        let sent = mono_ms();
        let answer = self.to_leader(Request::Report(report)).await;
        let Some(Response::Report { lease: true, epoch }) = answer else { return };
        if !claim || epoch != st.epoch {
            return;
        }
        if self.replication.is_replica() || roles.epoch() != st.epoch {
            // The leader confirmed this node as the epoch's primary: it stops following and takes a new
            // replication id. The ISR members were in sync when elected.
            {
                let now = Instant::now();
                let mut caught = self.caught_up.lock();
                caught.clear();
                for n in &st.isr {
                    caught.insert(*n, now);
                }
            }
            self.pending.lock().clear();
            if let Err(e) = self.replication.promote().await {
                warn!(error = %e, "cluster: cannot promote this node");
                return;
            }
            roles.set_primary_name(String::new());
            roles.set_epoch(st.epoch);
            self.set_waitset(&st);
            info!(epoch = st.epoch, "cluster: this node is the primary");
        }
        roles.set_lease(sent + self.lease.as_millis() as u64);
    }

    /// Sends a request to the quorum's leader (handled here when this node leads).
    async fn to_leader(&self, req: Request) -> Option<Response> {
        let leader = self.raft.metrics().borrow().current_leader?;
        if leader == self.id {
            return Some(self.handle(req).await);
        }
        let info = self.member(leader)?;
        let mut conn = self.to_leader.lock().await;
        if conn.as_ref().is_none_or(|(id, _)| *id != leader) {
            *conn = Some((leader, Peer::new(info.cluster.clone(), self.dial.clone())));
        }
        let (_, peer) = conn.as_mut().expect("set above");
        // Long enough for the leader to confirm its leadership (a report) or commit (an ISR change).
        peer.call(&req, (self.heartbeat * 3).max(self.lease / 2 + self.heartbeat)).await.ok()
    }

    /// As the primary (holding a lease): moves replicas in and out of the ISR by how far behind they are.
    async fn keep_isr(&self) {
        let st = self.state.borrow().clone();
        let roles = &self.replication.roles;
        if st.primary != Some(self.id)
            || self.replication.is_replica()
            || roles.epoch() != st.epoch
            || roles.lease_left_ms() == 0
        {
            return;
        }
        let now = Instant::now();
        let voters = self.voters();
        {
            let mut caught = self.caught_up.lock();
            caught.retain(|n, _| voters.contains(n));
            for link in self.replication.links() {
                let node = link.node();
                if !voters.contains(&node) || !link.is_online() {
                    continue;
                }
                // When the replica was last known to hold everything: at its last acknowledgement if it
                // holds all there is, else just before the oldest record it has not acknowledged.
                let (records, _, lag_ms) = self.replication.lag(&link);
                let behind = if records == 0 { link.ack_age_ms() } else { lag_ms };
                let at = now.checked_sub(Duration::from_millis(behind)).unwrap_or(now);
                let entry = caught.entry(node).or_insert(at);
                *entry = (*entry).max(at);
            }
        }
        let caught = self.caught_up.lock().clone();
        let mut want: BTreeSet<NodeId> = voters
            .iter()
            .copied()
            .filter(|n| *n != self.id && caught.get(n).is_some_and(|t| now.duration_since(*t) <= self.max_lag))
            .collect();
        want.insert(self.id);
        // An addition is waited for from now on, and proposed once it holds everything written until then
        // (the LSN is read after writes started waiting for it): every write acknowledged before it joined
        // is on it too.
        const UNSET: u64 = u64::MAX;
        {
            let mut pending = self.pending.lock();
            for n in want.difference(&st.isr) {
                pending.entry(*n).or_insert(UNSET);
            }
            pending.retain(|n, _| want.contains(n) && !st.isr.contains(n));
        }
        self.set_waitset(&st);
        let ready: BTreeSet<NodeId> = {
            let mut pending = self.pending.lock();
            let last = self.replication.log.last_lsn();
            for lsn in pending.values_mut().filter(|l| **l == UNSET) {
                *lsn = last;
            }
            pending.iter().filter(|(n, lsn)| self.replication.node_acked(**n, **lsn)).map(|(n, _)| *n).collect()
        };
        let target: BTreeSet<NodeId> = st.isr.intersection(&want).copied().chain(ready).collect();
        if target == st.isr {
            return;
        }
        // Its members stay waited for until the version moves on (a proposal that timed out may still
        // commit).
        *self.proposed.lock() = Some((st.version, target.clone()));
        self.set_waitset(&st);
        let req = Request::AlterIsr {
            node: self.id,
            epoch: st.epoch,
            version: st.version,
            isr: target.iter().copied().collect(),
        };
        match self.to_leader(req).await {
            Some(Response::AlterIsr(Ok(()))) => info!(isr = ?target, "cluster: ISR changed"),
            Some(Response::AlterIsr(Err(e))) => {
                if e != NOT_IN_TIME {
                    // Refused without reaching the log: it cannot apply later.
                    *self.proposed.lock() = None;
                    self.set_waitset(&st);
                }
                warn!(error = %e, "cluster: ISR change refused");
            }
            _ => {}
        }
    }

    /// Commits a metadata change, giving up after `timeout` (it may still commit later).
    async fn commit(&self, cmd: ClusterCmd, timeout: Duration) -> Result<ClusterReply, String> {
        match tokio::time::timeout(timeout, self.raft.client_write(cmd)).await {
            Ok(Ok(r)) => Ok(r.data),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(NOT_IN_TIME.into()),
        }
    }

    /// As the leader: promotes an in-sync replica when the primary's lease has surely lapsed, or at once
    /// when the primary restarted (its log may lack what its replicas hold).
    async fn control(&self) {
        let metrics = self.raft.metrics().borrow().clone();
        if metrics.state != ServerState::Leader {
            *self.leading.lock() = None;
            return;
        }
        let now = Instant::now();
        let since = {
            let mut leading = self.leading.lock();
            match *leading {
                Some((term, t)) if term == metrics.current_term => t,
                _ => {
                    *leading = Some((metrics.current_term, now));
                    now
                }
            }
        };
        let st = self.state.borrow().clone();
        let since = {
            let mut observed = self.observed.lock();
            match *observed {
                Some((epoch, t)) if epoch == st.epoch => since.max(t),
                _ => {
                    *observed = Some((st.epoch, now));
                    now
                }
            }
        };
        let seen = self.seen.lock().clone();
        // Nodes heard from in this term, within a lease.
        let alive = |n: &NodeId| {
            *n == self.id || seen.get(n).is_some_and(|s| s.at >= since && now.duration_since(s.at) <= self.lease)
        };
        let lsn =
            |n: &NodeId| if *n == self.id { self.replication.log.last_lsn() } else { seen.get(n).map_or(0, |s| s.lsn) };
        let voters: BTreeSet<NodeId> = metrics.membership_config.membership().voter_ids().collect();
        let (candidates, primary) = match st.primary {
            None => (voters.clone(), None),
            Some(p) => {
                let restarted = st.boot != 0
                    && if p == self.id {
                        self.boot != st.boot
                    } else {
                        seen.get(&p).is_some_and(|s| s.at >= since && s.boot != st.boot)
                    };
                if !restarted {
                    // The primary's lease ran from when it sent its last granted report, before this
                    // leader granted it; a margin for clocks that run at slightly different rates.
                    let granted = *self.granted.lock();
                    let last = match granted {
                        Some((node, epoch, at)) if node == p && epoch == st.epoch && at >= since => at,
                        _ => since,
                    };
                    if now.duration_since(last) <= self.lease + self.heartbeat + self.lease / 50 {
                        return;
                    }
                }
                (st.isr.iter().copied().filter(|n| *n != p).collect::<BTreeSet<_>>(), Some(p))
            }
        };
        let best = candidates.iter().filter(|n| alive(n) && voters.contains(n)).max_by_key(|n| (lsn(n), **n)).copied();
        // A restarted primary that is the only member of its ISR holds every acknowledged write there is
        // (no write is acknowledged with fewer in-sync replicas than required): it leads a new epoch.
        let best = best.or(primary.filter(|p| candidates.is_empty() && alive(p) && voters.contains(p)));
        let Some(best) = best else {
            return; // no in-sync replica to promote: wait (no unclean election)
        };
        let mut isr: BTreeSet<NodeId> =
            st.isr.iter().copied().filter(|n| Some(*n) != primary && alive(n) && voters.contains(n)).collect();
        isr.insert(best);
        let boot = if best == self.id { self.boot } else { seen.get(&best).map_or(0, |s| s.boot) };
        if boot == 0 {
            return; // not heard from in this term (cannot happen for a live candidate)
        }
        let cmd = ClusterCmd::Elect {
            expect_epoch: st.epoch,
            expect_version: st.version,
            primary: best,
            isr: isr.clone(),
            boot,
        };
        match self.commit(cmd, self.lease).await {
            Ok(r) if r.ok => {
                if primary.is_some() {
                    self.failovers.fetch_add(1, Ordering::Relaxed);
                }
                info!(epoch = r.epoch, primary = best, old = ?primary, isr = ?isr, "cluster: new primary elected");
            }
            Ok(_) => {}
            Err(e) => warn!(error = %e, "cluster: election not committed"),
        }
    }

    /// Answers a request on the cluster port.
    pub async fn handle(&self, req: Request) -> Response {
        match req {
            // A term no election reaches (a peer could make the next one overflow).
            Request::Append(rpc) if rpc.vote.leader_id.get_term() > MAX_TERM => {
                Response::Error("term out of range".into())
            }
            Request::Vote(rpc) if rpc.vote.leader_id.get_term() > MAX_TERM => {
                Response::Error("term out of range".into())
            }
            Request::Snapshot(rpc) if rpc.vote.leader_id.get_term() > MAX_TERM => {
                Response::Error("term out of range".into())
            }
            Request::Append(rpc) => Response::Append(self.raft.append_entries(rpc).await),
            Request::Vote(rpc) => Response::Vote(self.raft.vote(rpc).await),
            Request::Snapshot(rpc) => Response::Snapshot(self.raft.install_snapshot(rpc).await),
            Request::Hello => Response::Hello { id: self.id, info: self.info.clone() },
            Request::Report(report) => self.on_report(report).await,
            Request::AlterIsr { node, epoch, version, isr } => {
                // Only from the primary that holds this leader's lease: a fenced or stale primary's view
                // of the ISR no longer counts.
                let leased = matches!(*self.granted.lock(), Some((n, e, at)) if n == node && e == epoch && at.elapsed() < self.lease);
                if !leased {
                    return Response::AlterIsr(Err("the requester holds no lease from this leader".into()));
                }
                let isr: BTreeSet<NodeId> = isr.into_iter().collect();
                let cmd = ClusterCmd::SetIsr { epoch, expect_version: version, primary: node, isr };
                match self.commit(cmd, self.lease / 2).await {
                    Ok(r) if r.ok => Response::AlterIsr(Ok(())),
                    Ok(r) => Response::AlterIsr(Err(format!("stale: the epoch is {} and the ISR changed", r.epoch))),
                    Err(e) => Response::AlterIsr(Err(e)),
                }
            }
        }
    }

    /// A member's report (the leader's side): remembered; answered with a lease when it comes from this
    /// epoch's primary, in the incarnation the epoch confirmed, and this node still leads a quorum.
    async fn on_report(&self, report: Report) -> Response {
        let members: BTreeSet<NodeId> = {
            let m = self.raft.metrics().borrow().membership_config.clone();
            m.membership().nodes().map(|(id, _)| *id).collect()
        };
        let st = self.state.borrow().clone();
        if !members.contains(&report.node) {
            return Response::Report { lease: false, epoch: st.epoch };
        }
        {
            let mut seen = self.seen.lock();
            seen.retain(|n, _| members.contains(n));
            seen.insert(report.node, Seen { at: Instant::now(), lsn: report.lsn, boot: report.boot });
        }
        if !(report.primary && st.primary == Some(report.node) && st.epoch == report.epoch) {
            return Response::Report { lease: false, epoch: st.epoch };
        }
        // Granted only by a leader that a quorum still follows, with its state up to date.
        let confirm = tokio::time::timeout(self.lease / 2, self.raft.ensure_linearizable()).await;
        if !matches!(confirm, Ok(Ok(_))) {
            return Response::Report { lease: false, epoch: st.epoch };
        }
        let st = self.state.borrow().clone();
        let lease = st.primary == Some(report.node) && st.epoch == report.epoch && st.boot == report.boot;
        if lease {
            *self.granted.lock() = Some((report.node, st.epoch, Instant::now()));
        }
        Response::Report { lease, epoch: st.epoch }
    }

    /// CLUSTER ADDNODE: asks the node at `addr` who it is, adds it as a learner, then as a voter (joint
    /// consensus). Runs on the leader.
    pub async fn add_node(&self, id: NodeId, addr: &str) -> Result<(), String> {
        self.must_lead()?;
        let mut peer = Peer::new(addr.to_string(), self.dial.clone());
        let (their_id, info) = match peer.call(&Request::Hello, Duration::from_secs(2)).await {
            Ok(Response::Hello { id, info }) => (id, info),
            Ok(_) => return Err(format!("ERR {addr} answered something else than a cluster node")),
            Err(e) => return Err(format!("ERR cannot reach {addr}: {e}")),
        };
        if their_id != id {
            return Err(format!("ERR the node at {addr} is node {their_id}, not {id}"));
        }
        // It is reached at the address given (which may differ from what it announces, e.g. a proxy).
        let info = NodeInfo { cluster: addr.to_string(), ..info };
        let add = async {
            self.raft.add_learner(id, info, true).await.map_err(|e| format!("ERR {e}"))?;
            self.raft
                .change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), false)
                .await
                .map_err(|e| format!("ERR {e}"))
        };
        tokio::time::timeout(COMMIT_TIMEOUT * 2, add)
            .await
            .map_err(|_| "ERR the quorum did not take the node in time (it may still)".to_string())??;
        info!(node = id, %addr, "cluster: node added");
        Ok(())
    }

    /// CLUSTER REMOVENODE: removes a member (not the primary: fail over first).
    pub async fn remove_node(&self, id: NodeId) -> Result<(), String> {
        self.must_lead()?;
        if self.state.borrow().primary == Some(id) {
            return Err("ERR the node is the primary; it cannot be removed".into());
        }
        let forgot =
            self.commit(ClusterCmd::Forget { node: id }, COMMIT_TIMEOUT).await.map_err(|e| format!("ERR {e}"))?;
        if !forgot.ok {
            return Err("ERR the node is the primary; it cannot be removed".into());
        }
        let change = self.raft.change_membership(ChangeMembers::RemoveVoters(BTreeSet::from([id])), false);
        tokio::time::timeout(COMMIT_TIMEOUT, change)
            .await
            .map_err(|_| "ERR the quorum did not remove the node in time (it may still)".to_string())?
            .map_err(|e| format!("ERR {e}"))?;
        info!(node = id, "cluster: node removed");
        Ok(())
    }

    fn must_lead(&self) -> Result<(), String> {
        let m = self.raft.metrics().borrow().clone();
        if m.state == ServerState::Leader {
            return Ok(());
        }
        match m.current_leader.and_then(|l| self.member(l)) {
            Some(info) => Err(format!("ERR not the cluster's leader; ask {} (RESP {})", info.cluster, info.resp)),
            None => Err("ERR the cluster has no leader now".into()),
        }
    }

    pub fn status(&self) -> Status {
        let m = self.raft.metrics().borrow().clone();
        let st = self.state.borrow().clone();
        let membership = m.membership_config.membership();
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        let members: BTreeMap<NodeId, NodeInfo> = membership.nodes().map(|(id, n)| (*id, n.clone())).collect();
        let learners = members.keys().copied().filter(|id| !voters.contains(id)).collect();
        let roles = &self.replication.roles;
        let left = roles.lease_left_ms();
        Status {
            node_id: self.id,
            epoch: st.epoch,
            primary: st.primary,
            isr: st.isr.iter().copied().collect(),
            leader: m.current_leader,
            term: m.current_term,
            raft_state: format!("{:?}", m.state).to_lowercase(),
            members,
            learners,
            writable: !self.replication.is_replica() && left > 0,
            lease_ms_left: left,
            failovers: self.failovers.load(Ordering::Relaxed),
        }
    }

    /// The epoch this node acts in (it follows or is the primary of).
    pub fn acting_epoch(&self) -> u64 {
        self.replication.roles.epoch()
    }

    /// The primary's RESP address, as the committed state names it.
    pub fn primary_addr(&self) -> Option<(String, u16)> {
        let p = self.state.borrow().primary?;
        split_addr(&self.member(p)?.resp)
    }
}

/// `host:port` (IPv6 hosts in brackets) into its parts.
pub fn split_addr(addr: &str) -> Option<(String, u16)> {
    let (host, port) = addr.rsplit_once(':')?;
    let port = port.parse().ok().filter(|p| *p > 0)?;
    Some((host.trim_start_matches('[').trim_end_matches(']').to_string(), port))
}
