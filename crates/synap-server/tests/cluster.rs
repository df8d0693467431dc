//! Automatic failover: three nodes as separate processes on loopback ports, a primary killed with
//! SIGKILL or cut off by TCP proxies the test owns; every acknowledged write checked on the new primary.
//!
//! Rounds scale with `CLUSTER_ROUNDS` (CI runs a few; long runs set more) and seeds with `CLUSTER_SEED`.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::process::ServerProcess;
use parking_lot::Mutex;
use rand::{Rng, SeedableRng};
use tokio::net::{TcpListener, TcpStream};

type Conn = redis::aio::MultiplexedConnection;

const LEASE_MS: u64 = 600;

/// The tests run one at a time: each starts three servers, and their timing (leases, elections) should
/// not depend on another test's load on two cores.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn rounds(default: usize) -> usize {
    std::env::var("CLUSTER_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(default).max(1)
}

fn seed() -> u64 {
    std::env::var("CLUSTER_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(7)
}

async fn connect(addr: &str) -> redis::RedisResult<Conn> {
    let client = redis::Client::open(format!("redis://{addr}/"))?;
    let cfg = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(1)))
        .set_response_timeout(Some(Duration::from_secs(5)));
    client.get_multiplexed_async_connection_with_config(&cfg).await
}

async fn cmd<T: redis::FromRedisValue>(c: &mut Conn, args: &[&str]) -> redis::RedisResult<T> {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query_async(c).await
}

/// A field of CLUSTER INFO, or of INFO.
async fn field(c: &mut Conn, command: &[&str], name: &str) -> redis::RedisResult<String> {
    let text: String = cmd(c, command).await?;
    Ok(text.lines().find_map(|l| l.strip_prefix(&format!("{name}:"))).unwrap_or_default().trim().to_string())
}

/// Forwards to a node's port; drops connections of isolated nodes (by the source address each node's
/// outbound links bind, and by the node behind this proxy).
struct Proxy {
    addr: String,
    accept: tokio::task::JoinHandle<()>,
}

/// The network between the nodes: which nodes are cut off.
#[derive(Default)]
struct Net {
    isolated: Mutex<HashSet<u64>>,
    /// Added to every chunk forwarded (replicas lag behind by about this much).
    delay_ms: AtomicU64,
    /// Live forwarded connections: (node behind the proxy, peer ip, task).
    conns: Mutex<Vec<(u64, std::net::IpAddr, tokio::task::JoinHandle<()>)>>,
}

fn source_ip(node: u64) -> std::net::IpAddr {
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 10 + node as u8))
}

impl Net {
    fn blocked(&self, behind: u64, peer: std::net::IpAddr) -> bool {
        let iso = self.isolated.lock();
        iso.contains(&behind) || iso.iter().any(|n| source_ip(*n) == peer)
    }

    /// Cuts `node` off: its links in both directions drop, new ones are refused.
    fn isolate(&self, node: u64) {
        self.isolated.lock().insert(node);
        let mut conns = self.conns.lock();
        conns.retain(|(behind, peer, task)| {
            let cut = *behind == node || *peer == source_ip(node);
            if cut {
                task.abort();
            }
            !cut && !task.is_finished()
        });
    }

    fn heal(&self) {
        self.isolated.lock().clear();
    }

    async fn proxy(self: &Arc<Self>, behind: u64, target: Arc<Mutex<String>>) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let net = self.clone();
        let accept = tokio::spawn(async move {
            while let Ok((inbound, peer)) = listener.accept().await {
                if net.blocked(behind, peer.ip()) {
                    continue; // dropped: the peer sees the connection close
                }
                let to = target.lock().clone();
                let delay = Duration::from_millis(net.delay_ms.load(Ordering::Relaxed));
                let task = tokio::spawn(async move {
                    let Ok(outbound) = TcpStream::connect(to).await else { return };
                    let (ri, wi) = inbound.into_split();
                    let (ro, wo) = outbound.into_split();
                    tokio::select! {
                        _ = pump(ri, wo, delay) => {}
                        _ = pump(ro, wi, delay) => {}
                    }
                });
                net.conns.lock().push((behind, peer.ip(), task));
            }
        });
        Proxy { addr, accept }
    }
}

/// Copies one direction, each chunk `delay` late (in order).
async fn pump(mut from: tokio::net::tcp::OwnedReadHalf, mut to: tokio::net::tcp::OwnedWriteHalf, delay: Duration) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(Instant, Vec<u8>)>(1024);
    let reader = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match from.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if tx.send((Instant::now() + delay, buf[..n].to_vec())).await.is_err() {
                        return;
                    }
                }
            }
        }
    };
    let writer = async move {
        while let Some((at, chunk)) = rx.recv().await {
            tokio::time::sleep_until(at.into()).await;
            if to.write_all(&chunk).await.is_err() {
                return;
            }
        }
    };
    tokio::join!(reader, writer);
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

struct Node {
    id: u64,
    dir: tempfile::TempDir,
    proc: Option<ServerProcess>,
    http: String,
    resp: String,
    cluster: String,
    /// What the others use for this node (the proxies, when the network is simulated).
    cluster_seen: String,
    proxies: Vec<Proxy>,
    resp_target: Arc<Mutex<String>>,
    cluster_target: Arc<Mutex<String>>,
}

impl Node {
    fn config(&self, cluster_addr: &str, proxied: bool, min_acks: usize, extra: &str) -> PathBuf {
        let mut yaml = format!(
            "replication:\n  min_replicas_to_ack: {min_acks}\n  ack_timeout_ms: 2000\ncluster:\n  enabled: true\n  node_id: {}\n  addr: \"{cluster_addr}\"\n  bootstrap: {}\n  lease_ms: {LEASE_MS}\n",
            self.id,
            self.id == 1
        );
        if proxied {
            yaml.push_str(&format!(
                "  source_addr: \"{}\"\n  announce_addr: \"{}\"\n  announce_resp: \"{}\"\n",
                source_ip(self.id),
                self.proxies[0].addr,
                self.proxies[1].addr
            ));
        }
        yaml.push_str(extra);
        let path = self.dir.path().join("node.yaml");
        std::fs::write(&path, yaml).unwrap();
        path
    }
}

struct Cluster {
    nodes: Vec<Node>,
    net: Arc<Net>,
    proxied: bool,
    min_acks: usize,
    extra: String,
}

impl Cluster {
    /// Starts `n` nodes, bootstraps node 1 and adds the others through it; waits until all are in sync.
    async fn start(n: u64, proxied: bool, extra: &str) -> Cluster {
        Cluster::start_with(n, proxied, 0, 1, extra).await
    }

    /// Like [`Cluster::start`], the links delayed by `delay_ms` each way (through proxies), writes
    /// waiting for `min_acks` replicas.
    async fn start_with(n: u64, proxied: bool, delay_ms: u64, min_acks: usize, extra: &str) -> Cluster {
        let net = Arc::new(Net::default());
        net.delay_ms.store(delay_ms, Ordering::Relaxed);
        let mut nodes = Vec::new();
        for id in 1..=n {
            let (resp_target, cluster_target) =
                (Arc::new(Mutex::new(String::new())), Arc::new(Mutex::new(String::new())));
            let proxies = if proxied {
                vec![net.proxy(id, cluster_target.clone()).await, net.proxy(id, resp_target.clone()).await]
            } else {
                Vec::new()
            };
            let mut node = Node {
                id,
                dir: tempfile::tempdir().unwrap(),
                proc: None,
                http: String::new(),
                resp: String::new(),
                cluster: String::new(),
                cluster_seen: String::new(),
                proxies,
                resp_target,
                cluster_target,
            };
            let config = node.config("127.0.0.1:0", proxied, min_acks, extra);
            let p = ServerProcess::start(node.dir.path(), &["--config", config.to_str().unwrap()]);
            node.http = p.http_addr.clone();
            node.resp = p.resp_addr.clone().unwrap();
            node.cluster = p.cluster_addr.clone().expect("cluster port");
            *node.resp_target.lock() = node.resp.clone();
            *node.cluster_target.lock() = node.cluster.clone();
            node.cluster_seen = if proxied { node.proxies[0].addr.clone() } else { node.cluster.clone() };
            node.proc = Some(p);
            nodes.push(node);
        }
        let c = Cluster { nodes, net, proxied, min_acks, extra: extra.to_string() };
        let mut first = connect(&c.nodes[0].resp).await.unwrap();
        c.wait(|st| st.primary == Some(1), "node 1 primary").await;
        for node in &c.nodes[1..] {
            let id = node.id.to_string();
            let r: String = cmd(&mut first, &["CLUSTER", "ADDNODE", &id, &node.cluster_seen]).await.unwrap();
            assert_eq!(r, "OK");
        }
        let all: BTreeSet<u64> = (1..=n).collect();
        c.wait(|st| st.isr == all && st.writable, "every node in sync").await;
        c
    }

    fn node(&self, id: u64) -> &Node {
        &self.nodes[id as usize - 1]
    }

    /// The cluster's state as the live nodes report it: the view of the highest epoch.
    async fn status(&self) -> Option<View> {
        let mut best: Option<View> = None;
        for node in self.nodes.iter().filter(|n| n.proc.is_some() && !self.net.isolated.lock().contains(&n.id)) {
            let Some((view, _)) = view_of(&node.resp, Duration::from_secs(1)).await else { continue };
            if best.as_ref().is_none_or(|b| view.epoch > b.epoch || (view.epoch == b.epoch && view.writable)) {
                best = Some(view);
            }
        }
        best
    }

    async fn wait(&self, ok: impl Fn(&View) -> bool, what: &str) -> View {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(v) = self.status().await
                && ok(&v)
            {
                return v;
            }
            assert!(Instant::now() < deadline, "cluster: {what} not reached in 30 s (last: {:?})", self.status().await);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn kill(&mut self, id: u64) {
        let node = &mut self.nodes[id as usize - 1];
        if let Some(mut p) = node.proc.take() {
            p.kill9();
        }
    }

    /// Restarts a node on the ports it had (the others know it by them).
    fn restart(&mut self, id: u64) {
        let (proxied, min_acks) = (self.proxied, self.min_acks);
        let extra = self.extra.clone();
        let node = &mut self.nodes[id as usize - 1];
        let cluster = node.cluster.clone();
        let config = node.config(&cluster, proxied, min_acks, &extra);
        let deadline = Instant::now() + Duration::from_secs(10);
        // The old process's ports are free again at once (SO_REUSEADDR); retry a moment if not.
        let p = loop {
            let start = std::panic::catch_unwind(|| {
                ServerProcess::start_at(
                    node.dir.path(),
                    &node.http,
                    &node.resp,
                    &["--config", config.to_str().unwrap()],
                )
            });
            match start {
                Ok(p) => break p,
                Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(200)),
                Err(e) => std::panic::resume_unwind(e),
            }
        };
        node.proc = Some(p);
    }

    /// Each node's RESP address and the address it announces.
    fn resps(&self) -> Vec<(String, String)> {
        self.nodes
            .iter()
            .map(|n| (n.resp.clone(), if self.proxied { n.proxies[1].addr.clone() } else { n.resp.clone() }))
            .collect()
    }

    fn resp_of(&self, id: u64) -> String {
        self.node(id).resp.clone()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            if let Some(mut p) = n.proc.take() {
                p.kill9();
            }
        }
    }
}

/// The epoch a node acts in.
async fn my_epoch(c: &mut Conn) -> Option<u64> {
    field(c, &["CLUSTER", "INFO"], "cluster_my_epoch").await.ok()?.parse().ok()
}

/// A node's CLUSTER INFO (and the connection it came on), each step within `limit`.
async fn view_of(addr: &str, limit: Duration) -> Option<(View, Conn)> {
    let mut c = tokio::time::timeout(limit, connect(addr)).await.ok()?.ok()?;
    let text = tokio::time::timeout(limit, cmd::<String>(&mut c, &["CLUSTER", "INFO"])).await.ok()?.ok()?;
    Some((View::parse(&text), c))
}

#[derive(Debug, Clone, Default)]
struct View {
    node: u64,
    epoch: u64,
    primary: Option<u64>,
    isr: BTreeSet<u64>,
    writable: bool,
}

impl View {
    fn parse(text: &str) -> View {
        let get = |name: &str| {
            text.lines().find_map(|l| l.strip_prefix(&format!("{name}:"))).unwrap_or_default().trim().to_string()
        };
        View {
            node: get("cluster_node_id").parse().unwrap_or(0),
            epoch: get("cluster_current_epoch").parse().unwrap_or(0),
            primary: get("cluster_primary").parse().ok(),
            isr: get("cluster_isr").split(',').filter_map(|s| s.parse().ok()).collect(),
            writable: get("cluster_writable") == "1",
        }
    }
}

/// An acknowledged write: key, the node that acknowledged it, and the epoch it acted in before and after.
#[derive(Debug, Clone)]
struct Ack {
    key: String,
    node: u64,
    epoch: Option<u64>,
    /// When the write was sent and when its acknowledgement came.
    sent: Instant,
    got: Instant,
}

/// Writers that find the primary through SENTINEL (asking each node in turn), write unique keys, and
/// record what was acknowledged; a failed write is not recorded (its outcome is unknown) and the writer
/// looks for the primary again.
struct Load {
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<Ack>>>,
    /// When each acknowledgement came, and from which node (for failover times).
    times: Arc<Mutex<Vec<(Instant, u64)>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    failed: Arc<AtomicU64>,
}

/// Finds the primary through SENTINEL; the test's clients reach it directly, not through the proxies
/// the nodes announce (`resps` lists each node's RESP address and what it announces).
async fn find_primary(resps: &[(String, String)]) -> Option<(u64, Conn)> {
    for (addr, _) in resps {
        let Ok(Ok(mut c)) = tokio::time::timeout(Duration::from_millis(500), connect(addr)).await else { continue };
        let Ok(Ok(v)) = tokio::time::timeout(
            Duration::from_millis(500),
            cmd::<Option<(String, String)>>(&mut c, &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", "synap"]),
        )
        .await
        else {
            continue;
        };
        let Some((host, port)) = v else { continue };
        let named = format!("{host}:{port}");
        let direct = resps.iter().find(|(_, seen)| *seen == named).map_or(named, |(d, _)| d.clone());
        // A primary cut off from the quorum still names itself: only one that takes writes will do.
        let Some((view, p)) = view_of(&direct, Duration::from_millis(500)).await else { continue };
        if view.writable {
            return Some((view.node, p));
        }
    }
    None
}

impl Load {
    fn start(resps: Vec<(String, String)>, writers: usize, with_epochs: bool) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let acked: Arc<Mutex<Vec<Ack>>> = Arc::default();
        let times: Arc<Mutex<Vec<(Instant, u64)>>> = Arc::default();
        let failed = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for w in 0..writers {
            let (stop, acked, times, failed, resps) =
                (stop.clone(), acked.clone(), times.clone(), failed.clone(), resps.clone());
            tasks.push(tokio::spawn(async move {
                let mut i = 0u64;
                let mut primary: Option<(u64, Conn)> = None;
                while !stop.load(Ordering::Relaxed) {
                    let Some((node, c)) = primary.as_mut() else {
                        primary = find_primary(&resps).await;
                        if primary.is_none() {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                        continue;
                    };
                    i += 1;
                    let key = format!("w{w}:{i}");
                    let before = if with_epochs { my_epoch(c).await } else { None };
                    let sent = Instant::now();
                    match cmd::<String>(c, &["SET", &key, &i.to_string()]).await {
                        Ok(_) => {
                            let got = Instant::now();
                            let after = if with_epochs { my_epoch(c).await } else { None };
                            let epoch = before.filter(|b| Some(*b) == after);
                            times.lock().push((Instant::now(), *node));
                            acked.lock().push(Ack { key, node: *node, epoch, sent, got });
                        }
                        Err(_) => {
                            failed.fetch_add(1, Ordering::Relaxed);
                            primary = None;
                        }
                    }
                }
            }));
        }
        Load { stop, acked, times, tasks, failed }
    }

    fn count(&self) -> usize {
        self.acked.lock().len()
    }

    /// The first acknowledgement after `t` by another node than `old`.
    async fn first_ack_after(&self, t: Instant, old: u64) -> Duration {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some((at, _)) = self.times.lock().iter().filter(|(a, n)| *a > t && *n != old).min() {
                return at.duration_since(t);
            }
            assert!(Instant::now() < deadline, "no write was acknowledged within 30 s of the failure");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Writes that failed (their outcome unknown).
    fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }

    async fn finish(self) -> Vec<Ack> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            let _ = t.await;
        }
        self.acked.lock().clone()
    }
}

/// Every acknowledged key is on `addr`.
async fn check_ledger(addr: &str, acked: &[Ack]) {
    let mut c = connect(addr).await.unwrap();
    let mut missing = Vec::new();
    for chunk in acked.chunks(500) {
        let keys: Vec<&str> = chunk.iter().map(|a| a.key.as_str()).collect();
        let mut q = redis::cmd("MGET");
        q.arg(&keys);
        let vals: Vec<Option<String>> = q.query_async(&mut c).await.unwrap();
        for (a, v) in chunk.iter().zip(vals) {
            if v.is_none() {
                missing.push(a.clone());
            }
        }
    }
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged writes are missing, e.g. {:?}",
        missing.len(),
        acked.len(),
        &missing[..missing.len().min(5)]
    );
}

/// Waits until every live node's data equals the primary's (engine digests and last LSNs).
async fn converge(c: &Cluster, primary: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut p = connect(&c.resp_of(primary)).await.unwrap();
    loop {
        let want: String = cmd(&mut p, &["DEBUG", "DIGEST"]).await.unwrap();
        let want_lsn = field(&mut p, &["INFO", "replication"], "master_repl_offset").await.unwrap();
        let mut all = true;
        for n in c.nodes.iter().filter(|n| n.proc.is_some() && n.id != primary) {
            let mut r = connect(&n.resp).await.unwrap();
            let d: String = cmd(&mut r, &["DEBUG", "DIGEST"]).await.unwrap();
            let lsn = field(&mut r, &["INFO", "replication"], "slave_repl_offset").await.unwrap();
            all &= d == want && lsn == want_lsn;
        }
        if all {
            return;
        }
        assert!(Instant::now() < deadline, "the replicas did not converge with the primary in 30 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_primary_loses_no_acknowledged_write() {
    let _serial = ONE_AT_A_TIME.lock().await;
    // The links lag (5 ms each way): a write acknowledged before its replicas hold it would be lost.
    let mut c = Cluster::start_with(3, true, 5, 1, "").await;
    let resps = c.resps();
    let load = Load::start(resps, 4, false);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed());
    let mut times = Vec::new();
    let mut primary = 1;
    for round in 0..rounds(3) {
        // Some writes first, then SIGKILL the primary at a random moment.
        let base = load.count();
        let deadline = Instant::now() + Duration::from_secs(30);
        while load.count() < base + 200 {
            assert!(Instant::now() < deadline, "round {round}: no progress before the kill");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..300))).await;
        let killed = primary;
        c.kill(killed);
        // What its links still carried dies with it (as with a machine that fails).
        c.net.isolate(killed);
        let t = Instant::now();
        let took = load.first_ack_after(t, killed).await;
        let v = c.wait(|v| v.primary.is_some_and(|p| p != killed) && v.writable, "a new primary").await;
        primary = v.primary.unwrap();
        times.push(took);
        eprintln!("round {round}: node {killed} killed, node {primary} primary in epoch {} after {took:?}", v.epoch);
        // The killed node comes back and rejoins as a replica (copying again if it wrote a tail).
        c.net.heal();
        c.restart(killed);
        let all: BTreeSet<u64> = (1..=3).collect();
        c.wait(|v| v.isr == all, "the restarted node back in the ISR").await;
    }
    let failed = load.failed();
    let acked = load.finish().await;
    check_ledger(&c.resp_of(primary), &acked).await;
    converge(&c, primary).await;
    times.sort();
    eprintln!(
        "failover (kill -> first acknowledged write) over {} rounds: p50 {:?} p99 {:?} max {:?}; {} writes acknowledged, {failed} failed",
        times.len(),
        percentile(&times, 0.5),
        percentile(&times, 0.99),
        times.last().unwrap(),
        acked.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_primary_stops_and_rejoins_as_a_replica() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let c = Cluster::start(3, true, "").await;
    let resps = c.resps();
    let load = Load::start(resps, 3, true);
    let deadline = Instant::now() + Duration::from_secs(30);
    while load.count() < 300 {
        assert!(Instant::now() < deadline, "no progress before the partition");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Cut node 1 (primary and quorum leader) off from the other two, in both directions.
    c.net.isolate(1);
    let cut = Instant::now();
    let mut old = connect(&c.resp_of(1)).await.unwrap();
    // Once its lease lapses the old primary takes no write: it says so, and a write is refused at once.
    let mut refused_after = None;
    while cut.elapsed() < Duration::from_secs(10) {
        if field(&mut old, &["CLUSTER", "INFO"], "cluster_writable").await.unwrap() == "0" {
            refused_after = Some(cut.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let refused_after = refused_after.expect("the cut-off primary kept its lease for 10 s");
    assert!(refused_after < Duration::from_millis(LEASE_MS + 300), "fenced only after {refused_after:?}");
    let asked = Instant::now();
    let e = cmd::<String>(&mut old, &["SET", "probe", "1"]).await.unwrap_err();
    assert_eq!(e.code(), Some("READONLY"), "{e}");
    assert!(asked.elapsed() < Duration::from_millis(200), "refused only after {:?}", asked.elapsed());
    // Nor does it answer reads as the primary (another node may be primary already).
    let e = cmd::<Option<String>>(&mut old, &["GET", "w0:1"]).await.unwrap_err();
    assert_eq!(e.code(), Some("CLUSTERDOWN"), "{e}");
    let http = reqwest::Client::new();
    let r = http.get(format!("http://{}/kv/get/w0:1", c.node(1).http)).send().await.unwrap();
    assert_eq!(r.status(), 503);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "CLUSTER_DOWN", "{body}");
    // The majority elects a new primary and takes writes.
    let v = c.wait(|v| v.primary.is_some_and(|p| p != 1) && v.writable, "a new primary on the majority side").await;
    let new = v.primary.unwrap();
    let writable = cut.elapsed();
    // Writers held on the old primary give up after the acknowledgement timeout (2 s), then find the
    // new one.
    let took = load.first_ack_after(cut, 1).await;
    eprintln!(
        "partition: old primary fenced after {refused_after:?}; node {new} primary in epoch {} and writable by {writable:?}; first write there after {took:?}",
        v.epoch
    );
    let base = load.count();
    let deadline = Instant::now() + Duration::from_secs(30);
    while load.count() < base + 200 {
        assert!(Instant::now() < deadline, "no progress after the failover");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Heal: the old primary learns the new epoch and follows the new primary.
    c.net.heal();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let role: Vec<redis::Value> = cmd(&mut old, &["ROLE"]).await.unwrap();
        if matches!(&role[0], redis::Value::BulkString(b) if b == b"slave") {
            break;
        }
        assert!(Instant::now() < deadline, "the old primary did not rejoin as a replica");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let acked = load.finish().await;
    check_ledger(&c.resp_of(new), &acked).await;
    converge(&c, new).await;
    // No two nodes acknowledged writes in the same epoch.
    let mut by_epoch: BTreeMap<u64, BTreeSet<u64>> = BTreeMap::new();
    for a in &acked {
        if let Some(e) = a.epoch {
            by_epoch.entry(e).or_default().insert(a.node);
        }
    }
    assert!(by_epoch.len() >= 2, "acknowledgements seen in epochs {by_epoch:?}");
    for (epoch, nodes) in &by_epoch {
        assert_eq!(nodes.len(), 1, "epoch {epoch}: writes acknowledged by nodes {nodes:?}");
    }
    // Nor did two primaries acknowledge at the same time: every write acknowledged by the old primary was
    // sent before the new primary's first acknowledgement came back.
    let first_new = acked.iter().filter(|a| a.node == new).map(|a| a.got).min().expect("writes on the new primary");
    let late: Vec<&Ack> = acked.iter().filter(|a| a.node == 1 && a.sent > first_new).collect();
    assert!(
        late.is_empty(),
        "the old primary acknowledged {} writes sent after the new one took writes, e.g. {:?}",
        late.len(),
        late.first()
    );
}

/// Registers under failovers: one writer per key writes increasing values, readers read on the primary;
/// no read returns a value older than one acknowledged before the read began.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_reads_never_go_back_across_failovers() {
    let _serial = ONE_AT_A_TIME.lock().await;
    // The links lag 30 ms each way, longer than a write takes here: an acknowledgement that did not
    // wait for the in-sync replicas would be lost with the primary, and reads would go back.
    // Raft's messages must come back within a heartbeat: heartbeats are slower here.
    let mut c = Cluster::start_with(3, true, 30, 1, "  heartbeat_ms: 200\n  election_timeout_ms: 600\n").await;
    let resps = c.resps();
    let stop = Arc::new(AtomicBool::new(false));
    // Per key: (acknowledged value, when acknowledged) in order.
    type Writes = Arc<Mutex<Vec<Vec<(u64, Instant)>>>>;
    let keys = 4;
    let writes: Writes = Arc::new(Mutex::new(vec![Vec::new(); keys]));
    // (key, read began, value read)
    let reads: Arc<Mutex<Vec<(usize, Instant, u64)>>> = Arc::default();
    let mut tasks = Vec::new();
    for k in 0..keys {
        let (stop, writes, resps) = (stop.clone(), writes.clone(), resps.clone());
        tasks.push(tokio::spawn(async move {
            let mut primary: Option<(u64, Conn)> = None;
            let mut v = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let Some((_, c)) = primary.as_mut() else {
                    primary = find_primary(&resps).await;
                    // Writers come back later than readers: reads after a failover see what the new
                    // primary holds of the old epoch's writes.
                    tokio::time::sleep(Duration::from_millis(if primary.is_some() && v > 0 { 300 } else { 5 })).await;
                    continue;
                };
                v += 1;
                match cmd::<String>(c, &["SET", &format!("reg{k}"), &v.to_string()]).await {
                    Ok(_) => writes.lock()[k].push((v, Instant::now())),
                    Err(_) => primary = None,
                }
            }
        }));
    }
    for r in 0..2 {
        let (stop, reads, resps) = (stop.clone(), reads.clone(), resps.clone());
        tasks.push(tokio::spawn(async move {
            let mut primary: Option<(u64, Conn)> = None;
            let mut i = r;
            while !stop.load(Ordering::Relaxed) {
                let Some((_, c)) = primary.as_mut() else {
                    primary = find_primary(&resps).await;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                };
                i += 1;
                let k = i % keys;
                let began = Instant::now();
                match cmd::<Option<String>>(c, &["GET", &format!("reg{k}")]).await {
                    Ok(v) => reads.lock().push((k, began, v.and_then(|v| v.parse().ok()).unwrap_or(0))),
                    Err(_) => primary = None,
                }
            }
        }));
    }
    let mut primary = 1;
    for _ in 0..rounds(2) {
        tokio::time::sleep(Duration::from_millis(700)).await;
        let killed = primary;
        c.kill(killed);
        c.net.isolate(killed);
        let v = c.wait(|v| v.primary.is_some_and(|p| p != killed) && v.writable, "a new primary").await;
        primary = v.primary.unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        c.net.heal();
        c.restart(killed);
        let all: BTreeSet<u64> = (1..=3).collect();
        c.wait(|v| v.isr == all, "the restarted node back in the ISR").await;
    }
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    let writes = writes.lock().clone();
    let reads = reads.lock().clone();
    assert!(reads.len() > 100 && writes.iter().all(|w| w.len() > 10), "too little history to check");
    let mut stale = Vec::new();
    for (k, began, got) in &reads {
        // The newest value acknowledged before the read began.
        let floor = writes[*k].iter().take_while(|(_, at)| at < began).last().map_or(0, |(v, _)| *v);
        if *got < floor {
            stale.push((k, got, floor));
        }
    }
    assert!(
        stale.is_empty(),
        "{} of {} reads went back in time, e.g. {:?}",
        stale.len(),
        reads.len(),
        &stale[..stale.len().min(5)]
    );
}

/// redis-py's `Sentinel` client finds the primary, and finds the new one after the old is killed, with
/// no change on its side. Needs `python3` with redis-py 8 (CI installs it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_py_sentinel_follows_a_failover() {
    let _serial = ONE_AT_A_TIME.lock().await;
    use tokio::io::AsyncBufReadExt;
    let has_redis_py = std::process::Command::new("python3")
        .args([
            "-c",
            "import redis.sentinel, sys; import redis; sys.exit(0 if int(redis.__version__.split('.')[0]) >= 8 else 1)",
        ])
        .status()
        .is_ok_and(|s| s.success());
    if !has_redis_py {
        assert!(std::env::var_os("CI").is_none(), "python3 with redis-py 8 is needed in CI");
        eprintln!("python3 with redis-py 8 not found: the Sentinel test does not run");
        return;
    }
    let mut c = Cluster::start(3, false, "").await;
    let dir = tempfile::tempdir().unwrap();
    let stop = dir.path().join("stop");
    let addrs: Vec<String> = c.nodes.iter().map(|n| n.resp.clone()).collect();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/redis_py_sentinel.py");
    let mut child = tokio::process::Command::new("python3")
        .arg(script)
        .arg(addrs.join(","))
        .arg(&stop)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let output: Arc<Mutex<Vec<String>>> = Arc::default();
    let (a, o) = (acked.clone(), output.clone());
    let reader = tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(key) = line.strip_prefix("ack ") {
                a.lock().push(key.to_string());
            } else {
                o.lock().push(line);
            }
        }
    });
    let wait_for = |n: usize| {
        let acked = acked.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(60);
            while acked.lock().len() < n {
                assert!(Instant::now() < deadline, "redis-py acknowledged fewer than {n} writes in 60 s");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    wait_for(200).await;
    let before = acked.lock().len();
    c.kill(1);
    wait_for(before + 200).await;
    std::fs::write(&stop, b"").unwrap();
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait()).await.expect("redis-py stops").unwrap();
    let _ = reader.await;
    let output = output.lock().clone();
    assert!(status.success(), "redis-py failed: {output:?}");
    assert!(output.iter().any(|l| l == "redis-py sentinel: ok"), "{output:?}");
    let v = c.wait(|v| v.primary.is_some_and(|p| p != 1) && v.writable, "a new primary").await;
    let new = v.primary.unwrap();
    // It named node 1 first, then the new primary.
    let masters: Vec<&String> = output.iter().filter(|l| l.starts_with("master ")).collect();
    assert_eq!(
        masters.first().map(|s| s.as_str()),
        Some(format!("master {}", c.resp_of(1).replace(':', " ")).as_str())
    );
    assert_eq!(
        masters.last().map(|s| s.as_str()),
        Some(format!("master {}", c.resp_of(new).replace(':', " ")).as_str())
    );
    assert!(output.iter().any(|l| l == "replicas 2"), "{output:?}");
    let now = Instant::now();
    let acked: Vec<Ack> =
        acked.lock().iter().map(|k| Ack { key: k.clone(), node: 0, epoch: None, sent: now, got: now }).collect();
    check_ledger(&c.resp_of(new), &acked).await;
}

fn signal(pid: u32, sig: &str) {
    assert!(std::process::Command::new("kill").args([sig, &pid.to_string()]).status().unwrap().success());
}

/// A replica that stops acknowledging leaves the ISR (writes go on without it) and rejoins once it
/// catches up; with fewer in-sync replicas than `min_replicas_to_ack`, writes are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_replica_leaves_the_isr_and_rejoins() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let c = Cluster::start_with(3, false, 0, 2, "").await;
    let mut p = connect(&c.resp_of(1)).await.unwrap();
    let _: String = cmd(&mut p, &["SET", "a", "1"]).await.unwrap();
    // A write on a replica is refused, naming the primary (over HTTP with its HTTP address too).
    let mut r = connect(&c.resp_of(2)).await.unwrap();
    let e = cmd::<String>(&mut r, &["SET", "a", "2"]).await.unwrap_err();
    assert_eq!(e.code(), Some("READONLY"), "{e}");
    let http = reqwest::Client::new();
    let resp = http
        .post(format!("http://{}/kv/set", c.node(2).http))
        .json(&serde_json::json!({"key": "a", "value": "2"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 409);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "READONLY", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains(&c.node(1).http) && message.contains(&c.resp_of(1)), "{message}");
    let pid3 = c.node(3).proc.as_ref().unwrap().child.id();
    signal(pid3, "-STOP");
    // Node 3 leaves the ISR after replication.max_lag_ms (1 s): then two replicas are no longer in
    // sync, fewer than the two required, and writes are refused at once.
    let v = c.wait(|v| v.isr == BTreeSet::from([1, 2]), "node 3 out of the ISR").await;
    assert_eq!(v.primary, Some(1));
    let asked = Instant::now();
    let e = cmd::<String>(&mut p, &["SET", "b", "1"]).await.unwrap_err();
    assert_eq!(e.code(), Some("NOREPLICAS"), "{e}");
    assert!(asked.elapsed() < Duration::from_millis(500), "refused only after {:?}", asked.elapsed());
    signal(pid3, "-CONT");
    c.wait(|v| v.isr == BTreeSet::from([1, 2, 3]), "node 3 back in the ISR").await;
    let _: String = cmd(&mut p, &["SET", "b", "2"]).await.unwrap();
    // With one replica required, a stalled replica holds writes back only until it leaves the ISR.
    let mut c = c;
    c.min_acks = 1;
    drop(p);
    drop(c);
    let c = Cluster::start(3, false, "").await;
    let mut p = connect(&c.resp_of(1)).await.unwrap();
    let pid2 = c.node(2).proc.as_ref().unwrap().child.id();
    signal(pid2, "-STOP");
    let asked = Instant::now();
    let _: String = cmd(&mut p, &["SET", "c", "1"]).await.unwrap();
    let took = asked.elapsed();
    let v = c.wait(|_| true, "a view").await;
    signal(pid2, "-CONT");
    assert_eq!(v.isr, BTreeSet::from([1, 3]), "the write was acknowledged once node 2 left the ISR");
    assert!(took < Duration::from_millis(1900), "the write waited {took:?} (ack timeout 2 s)");
    c.wait(|v| v.isr == BTreeSet::from([1, 2, 3]), "node 2 back in the ISR").await;
}

/// A primary killed and restarted at once (before its lease could lapse) does not carry on in its
/// epoch as if nothing happened: its log may lack a tail its replicas hold. Another in-sync replica takes
/// over in a new epoch, and the restarted node follows it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_restarted_at_once_hands_over() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let mut c = Cluster::start(3, false, "").await;
    let load = Load::start(c.resps(), 3, false);
    let deadline = Instant::now() + Duration::from_secs(30);
    while load.count() < 200 {
        assert!(Instant::now() < deadline, "no progress before the restart");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    c.kill(1);
    c.restart(1);
    let v = c.wait(|v| v.epoch >= 2 && v.primary.is_some_and(|p| p != 1) && v.writable, "another primary").await;
    let new = v.primary.unwrap();
    let base = load.count();
    let deadline = Instant::now() + Duration::from_secs(30);
    while load.count() < base + 100 {
        assert!(Instant::now() < deadline, "no progress after the hand-over");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let acked = load.finish().await;
    check_ledger(&c.resp_of(new), &acked).await;
    converge(&c, new).await;
}

/// The keys of a Sentinel state entry (a RESP3 map, or a RESP2 flat array of pairs), in order.
fn state_keys(v: &redis::Value) -> Vec<String> {
    use redis::Value as V;
    let text = |v: &V| match v {
        V::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        V::SimpleString(s) => s.clone(),
        other => format!("{other:?}"),
    };
    match v {
        V::Map(pairs) => pairs.iter().map(|(k, _)| text(k)).collect(),
        V::Array(items) => items.chunks(2).map(|p| text(&p[0])).collect(),
        other => panic!("not a Sentinel state: {other:?}"),
    }
}

/// What kind of value a reply is (its variant, and for a list the kind of its first item).
fn kind(v: &redis::Value) -> String {
    use redis::Value as V;
    match v {
        V::Array(items) => format!("array[{}]", items.first().map(kind).unwrap_or_default()),
        V::Map(pairs) => format!("map{}", pairs.len()),
        V::BulkString(_) => "bulk".into(),
        V::Nil => "nil".into(),
        other => format!("{other:?}"),
    }
}

async fn raw(port: &str, resp3: bool, args: &[&str]) -> Result<redis::Value, String> {
    let proto = if resp3 { "?protocol=resp3" } else { "" };
    let client = redis::Client::open(format!("redis://{port}/{proto}")).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let mut q = redis::cmd(args[0]);
    for a in &args[1..] {
        q.arg(*a);
    }
    q.query_async::<redis::Value>(&mut c).await.map_err(|e| e.to_string())
}

/// The SENTINEL replies a client library reads have the shapes, keys and errors of a real Sentinel
/// (Redis 7) watching a primary with a replica, next to another Sentinel: in RESP2 and RESP3.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_replies_match_redis_sentinel() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let Some(primary) = common::redis_server::Redis::start(&[]) else {
        assert!(std::env::var_os("CI").is_none(), "redis-server is needed in CI");
        eprintln!("redis-server not found: the comparison does not run");
        return;
    };
    let port = primary.port.to_string();
    let _replica = common::redis_server::Redis::start(&["--replicaof", "127.0.0.1", &port]).unwrap();
    let sentinel = common::redis_server::Redis::start_sentinel(primary.port, "synap").unwrap();
    let _other = common::redis_server::Redis::start_sentinel(primary.port, "synap").unwrap();
    let real = format!("127.0.0.1:{}", sentinel.port);
    // The Sentinel finds the replica (INFO from the primary) and the other Sentinel (hello messages).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let reps = raw(&real, false, &["SENTINEL", "REPLICAS", "synap"]).await.unwrap();
        let sens = raw(&real, false, &["SENTINEL", "SENTINELS", "synap"]).await.unwrap();
        if kind(&reps).starts_with("array[array") && kind(&sens).starts_with("array[array") {
            break;
        }
        assert!(Instant::now() < deadline, "the real Sentinel did not see its replica and peer in 30 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let c = Cluster::start(3, false, "").await;
    let ours = c.resp_of(1);
    for resp3 in [false, true] {
        for args in [
            &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", "synap"][..],
            &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", "nope"],
            &["SENTINEL", "MASTERS"],
            &["SENTINEL", "MASTER", "synap"],
            &["SENTINEL", "REPLICAS", "synap"],
            &["SENTINEL", "SLAVES", "synap"],
            &["SENTINEL", "SENTINELS", "synap"],
            &["SENTINEL", "MYID"],
            &["SENTINEL", "MASTER", "nope"],
            &["SENTINEL", "REPLICAS", "nope"],
            &["SENTINEL", "MASTERS", "x"],
            &["SENTINEL", "GET-MASTER-ADDR-BY-NAME"],
            &["SENTINEL", "NOPE"],
            &["SENTINEL"],
        ] {
            let (want, got) = (raw(&real, resp3, args).await, raw(&ours, resp3, args).await);
            match (&want, &got) {
                (Err(w), Err(g)) => assert_eq!(g, w, "{args:?} resp3={resp3}"),
                (Ok(w), Ok(g)) => {
                    // The same kind of reply (lists differ in length: Synap has 2 replicas and 2 peers).
                    assert_eq!(kind(g), kind(w), "{args:?} resp3={resp3}: {g:?} vs {w:?}");
                    let entries = |v: &redis::Value| match v {
                        redis::Value::Array(items)
                            if items.iter().all(|i| !matches!(i, redis::Value::BulkString(_))) =>
                        {
                            items.clone()
                        }
                        redis::Value::Map(_) => vec![v.clone()],
                        redis::Value::Array(items) if args[1] == "MASTER" => vec![redis::Value::Array(items.clone())],
                        _ => Vec::new(),
                    };
                    if let (Some(w), Some(g)) = (entries(w).first(), entries(g).first()) {
                        assert_eq!(state_keys(g), state_keys(w), "{args:?} resp3={resp3}");
                    }
                }
                _ => panic!("{args:?} resp3={resp3}: Sentinel answered {want:?}, Synap {got:?}"),
            }
        }
    }
}

/// Membership over HTTP: a node added with `POST /cluster/nodes` joins and comes in sync, `GET
/// /cluster/status` shows it, `DELETE /cluster/nodes/{id}` removes it (never the primary), and bad
/// requests get a JSON error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn membership_changes_over_http() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let c = Cluster::start(2, false, "").await;
    // A third node, started alone and added over HTTP.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("node.yaml");
    std::fs::write(
        &config,
        format!("replication:\n  min_replicas_to_ack: 1\ncluster:\n  enabled: true\n  node_id: 3\n  addr: \"127.0.0.1:0\"\n  lease_ms: {LEASE_MS}\n"),
    )
    .unwrap();
    let third = ServerProcess::start(dir.path(), &["--config", config.to_str().unwrap()]);
    let http = reqwest::Client::new();
    let base = format!("http://{}", c.node(1).http);
    let add = |body: serde_json::Value| http.post(format!("{base}/cluster/nodes")).json(&body).send();
    let r = add(serde_json::json!({"id": 3, "addr": third.cluster_addr.clone().unwrap()})).await.unwrap();
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        let s: serde_json::Value =
            http.get(format!("{base}/cluster/status")).send().await.unwrap().json().await.unwrap();
        if s["isr"] == serde_json::json!([1, 2, 3]) {
            break s;
        }
        assert!(Instant::now() < deadline, "node 3 did not come in sync: {s}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status["primary"], 1, "{status}");
    assert_eq!(status["members"]["3"]["resp"], third.resp_addr.clone().unwrap(), "{status}");
    assert_eq!(status["writable"], true, "{status}");
    // Bad requests: a JSON error, nothing changed.
    for (body, code) in [
        (serde_json::json!({"id": 0, "addr": "127.0.0.1:1"}), 400),
        (serde_json::json!({"id": 4, "addr": "nowhere"}), 400),
        (serde_json::json!({"id": 4}), 400),
        (serde_json::json!({"id": 4, "addr": "127.0.0.1:1"}), 400),
    ] {
        let r = add(body.clone()).await.unwrap();
        assert_eq!(r.status(), code, "{body}");
        let e: serde_json::Value = r.json().await.unwrap();
        assert!(e["error"]["message"].is_string(), "{e}");
    }
    // The node at an address must be the one named.
    let r = add(serde_json::json!({"id": 5, "addr": third.cluster_addr.clone().unwrap()})).await.unwrap();
    assert_eq!(r.status(), 400);
    // Not the primary; then node 3.
    let r = http.delete(format!("{base}/cluster/nodes/1")).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let r = http.delete(format!("{base}/cluster/nodes/3")).send().await.unwrap();
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
    let s: serde_json::Value = http.get(format!("{base}/cluster/status")).send().await.unwrap().json().await.unwrap();
    assert_eq!(s["isr"], serde_json::json!([1, 2]), "{s}");
    assert!(s["members"].get("3").is_none(), "{s}");
    // A membership change asked of a node that does not lead names the leader.
    let r = http.delete(format!("http://{}/cluster/nodes/3", c.node(2).http)).send().await.unwrap();
    assert_eq!(r.status(), 503);
    let e: serde_json::Value = r.json().await.unwrap();
    assert_eq!(e["error"]["code"], "NOT_LEADER", "{e}");
    // Writes go on with the two that are left.
    let mut p = connect(&c.resp_of(1)).await.unwrap();
    let _: String = cmd(&mut p, &["SET", "after", "1"]).await.unwrap();
    drop(third);
}
