//! Replication: primaries and replicas as separate processes on loopback ports, killed with SIGKILL,
//! their link cut by a TCP proxy the test owns; convergence proved by equal engine digests.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::process::ServerProcess;
use parking_lot::Mutex;
use rand::{Rng, SeedableRng};
use tokio::net::{TcpListener, TcpStream};

type Conn = redis::aio::MultiplexedConnection;

async fn connect(addr: &str) -> Conn {
    let client = redis::Client::open(format!("redis://{addr}/")).unwrap();
    client.get_multiplexed_async_connection().await.unwrap()
}

fn resp(p: &ServerProcess) -> String {
    p.resp_addr.clone().expect("RESP enabled")
}

async fn cmd<T: redis::FromRedisValue>(c: &mut Conn, args: &[&str]) -> redis::RedisResult<T> {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query_async(c).await
}

async fn digest(c: &mut Conn) -> String {
    cmd::<String>(c, &["DEBUG", "DIGEST"]).await.unwrap()
}

/// A field of INFO (replication and stats sections).
async fn info_field(c: &mut Conn, field: &str) -> String {
    let info: String = cmd(c, &["INFO"]).await.unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in {info}"))
        .trim()
        .to_string()
}

/// Waits (bounded) until every replica holds the primary's data (equal digests) and log (the same last
/// LSN: a replica that logged a record of its own is off by it, whatever its data).
async fn converge(primary: &mut Conn, replicas: &mut [&mut Conn], what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let want = digest(primary).await;
        let want_lsn = info_field(primary, "master_repl_offset").await;
        let mut all = true;
        for r in replicas.iter_mut() {
            all &= digest(r).await == want && info_field(r, "slave_repl_offset").await == want_lsn;
        }
        if all {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: replicas did not converge in 30 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn replicaof(c: &mut Conn, primary: &str) {
    let (host, port) = primary.rsplit_once(':').unwrap();
    let _: String = cmd(c, &["REPLICAOF", host, port]).await.unwrap();
}

/// Waits until the replica reports its link up.
async fn linked(c: &mut Conn) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while info_field(c, "master_link_status").await != "up" {
        assert!(Instant::now() < deadline, "the replica did not link up in 30 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A config file naming the primary (restarted replicas start following at once).
fn replica_config(dir: &std::path::Path, primary: &str, extra: &str) -> String {
    let path = dir.join("replica.yaml");
    std::fs::write(&path, format!("replication:\n  replica_of: \"{primary}\"\n{extra}")).unwrap();
    path.to_string_lossy().into_owned()
}

/// Load sizes are multiplied by `REPLICATION_SCALE` (1 in CI; long runs set more) and seeds offset by
/// `REPLICATION_SEED`.
fn scale(ops: usize) -> usize {
    ops * std::env::var("REPLICATION_SCALE").ok().and_then(|v| v.parse::<usize>().ok()).unwrap_or(1).max(1)
}

fn seed(s: u64) -> u64 {
    s + std::env::var("REPLICATION_SEED").ok().and_then(|v| v.parse::<u64>().ok()).unwrap_or(0) * 1000
}

/// Mixed writes over every service: strings with expiry, each collection type, MULTI/EXEC, scripts,
/// queues (publish, consume, ack), streams with a consumer group, trims and deletes.
async fn load(c: &mut Conn, base_seed: u64, ops: usize) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed(base_seed));
    let ops = scale(ops);
    let _: redis::RedisResult<i64> = cmd(c, &["QCREATE", "jobs"]).await;
    let _: redis::RedisResult<String> = cmd(c, &["XGROUP", "CREATE", "events", "g", "$", "MKSTREAM"]).await;
    for i in 0..ops {
        let k = format!("k{}", rng.random_range(0..50));
        let n = rng.random_range(0..1000).to_string();
        let r: redis::RedisResult<redis::Value> = match rng.random_range(0..16) {
            0 => cmd(c, &["SET", &k, &n]).await,
            1 => cmd(c, &["SET", &format!("ttl{i}"), &n, "PX", "300"]).await,
            2 => cmd(c, &["HSET", &format!("h{}", &k[1..]), &n, &n]).await,
            3 => cmd(c, &["RPUSH", &format!("l{}", &k[1..]), &n]).await,
            4 => cmd(c, &["LPOP", &format!("l{}", &k[1..])]).await,
            5 => cmd(c, &["SADD", &format!("s{}", &k[1..]), &n]).await,
            6 => cmd(c, &["ZADD", &format!("z{}", &k[1..]), &n, &n]).await,
            7 => cmd(c, &["INCRBY", &format!("n{}", &k[1..]), &n]).await,
            8 => cmd(c, &["DEL", &k]).await,
            9 => {
                let mut p = redis::pipe();
                p.atomic().cmd("SET").arg(&k).arg(&n).cmd("INCR").arg(format!("tx{}", &k[1..]));
                p.query_async(c).await
            }
            10 => {
                cmd(
                    c,
                    &[
                        "EVAL",
                        "redis.call('SET', KEYS[1], ARGV[1]); return redis.call('APPEND', KEYS[1], 'x')",
                        "1",
                        &k,
                        &n,
                    ],
                )
                .await
            }
            11 => cmd(c, &["QPUBLISH", "jobs", &n]).await,
            12 => {
                let got: redis::RedisResult<redis::Value> = cmd(c, &["QCONSUME", "jobs", "w1", "COUNT", "2"]).await;
                if let Ok(redis::Value::Array(items)) = &got {
                    for item in items {
                        if let redis::Value::Array(fields) = item
                            && let Some(redis::Value::Int(id)) = fields.first()
                        {
                            let _: redis::RedisResult<i64> = cmd(c, &["QACK", "jobs", &id.to_string()]).await;
                        }
                    }
                }
                got
            }
            13 => cmd(c, &["XADD", "events", "*", "n", &n]).await,
            14 => cmd(c, &["XREADGROUP", "GROUP", "g", "c1", "COUNT", "3", "STREAMS", "events", ">"]).await,
            _ => cmd(c, &["XTRIM", "events", "MAXLEN", "200"]).await,
        };
        // Errors (a WRONGTYPE from a reused key, say) are fine: what matters is that both sides agree. A
        // lost connection (the primary was killed) ends the load.
        if let Err(e) = &r
            && (e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal())
        {
            break;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_converge_on_every_service_and_refuse_writes() {
    let (dp, d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let primary = ServerProcess::start(dp.path(), &[]);
    let r1 = ServerProcess::start(d1.path(), &[]);
    let r2 = ServerProcess::start(d2.path(), &[]);
    let (mut p, mut c1, mut c2) =
        (connect(&resp(&primary)).await, connect(&resp(&r1)).await, connect(&resp(&r2)).await);
    // Data before the first replica: it arrives by the full copy, streams' events included (a trimmed
    // stream too: its partition starts past 0).
    load(&mut p, 1, 400).await;
    let _: String = cmd(&mut p, &["XADD", "trimmed", "*", "a", "1"]).await.unwrap();
    let _: String = cmd(&mut p, &["XADD", "trimmed", "*", "a", "2"]).await.unwrap();
    let _: i64 = cmd(&mut p, &["XTRIM", "trimmed", "MAXLEN", "1"]).await.unwrap();
    replicaof(&mut c1, &resp(&primary)).await;
    linked(&mut c1).await;
    // Load while the second replica copies.
    let mut p2 = connect(&resp(&primary)).await;
    let loading = tokio::spawn(async move { load(&mut p2, 2, 1500).await });
    replicaof(&mut c2, &resp(&primary)).await;
    loading.await.unwrap();
    linked(&mut c2).await;
    converge(&mut p, &mut [&mut c1, &mut c2], "after mixed load").await;
    let xlen: i64 = cmd(&mut c2, &["XLEN", "trimmed"]).await.unwrap();
    assert_eq!(xlen, 1);
    // Deadlines and expiry pass on the primary only: a replica whose own sweep redelivered the message
    // or expired the key would log a record of its own and break its link (a reconnect shows in the
    // primary's counters).
    let _: i64 = cmd(&mut p, &["QCREATE", "lease", "ACKDEADLINE", "100"]).await.unwrap();
    let _: redis::Value = cmd(&mut p, &["QPUBLISH", "lease", "m"]).await.unwrap();
    let _: redis::Value = cmd(&mut p, &["QCONSUME", "lease", "w", "COUNT", "1"]).await.unwrap();
    let _: String = cmd(&mut p, &["SET", "short", "1", "PX", "100"]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let _: String = cmd(&mut p, &["SET", "after", "1"]).await.unwrap();
    converge(&mut p, &mut [&mut c1, &mut c2], "after deadlines and expiry").await;
    assert_eq!(info_field(&mut p, "sync_full").await, "2");
    assert_eq!(info_field(&mut p, "sync_partial_ok").await, "0", "a replica lost its link");
    // Pub/sub published on the primary reaches a replica's subscriber.
    let client = redis::Client::open(format!("redis://{}/", resp(&r1))).unwrap();
    let mut sub = client.get_async_pubsub().await.unwrap();
    sub.subscribe("news").await.unwrap();
    let _: i64 = cmd(&mut p, &["PUBLISH", "news", "hello"]).await.unwrap();
    let msg = tokio::time::timeout(Duration::from_secs(10), futures_util::StreamExt::next(&mut sub.on_message()))
        .await
        .expect("the message reached the replica")
        .unwrap();
    assert_eq!(msg.get_payload::<String>().unwrap(), "hello");
    // Replicas refuse writes, over RESP and HTTP (naming the primary).
    let e = cmd::<String>(&mut c1, &["SET", "x", "1"]).await.unwrap_err();
    assert_eq!(e.code(), Some("READONLY"), "{e}");
    let e = cmd::<redis::Value>(&mut c1, &["QCONSUME", "jobs", "w", "COUNT", "1"]).await.unwrap_err();
    assert_eq!(e.code(), Some("READONLY"), "{e}");
    let http = reqwest::Client::new();
    let r = http
        .post(format!("http://{}/kv/set", r1.http_addr))
        .json(&serde_json::json!({"key": "x", "value": "1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 409);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "READONLY");
    assert!(body["error"]["message"].as_str().unwrap().contains(&resp(&primary)), "{body}");
    // Reads work on replicas, and the roles say who is who.
    let role: Vec<redis::Value> = cmd(&mut c1, &["ROLE"]).await.unwrap();
    assert_eq!(role[0], redis::Value::BulkString(b"slave".to_vec()));
    assert_eq!(info_field(&mut p, "connected_slaves").await, "2");
    // WAIT: both replicas acknowledge the client's last write.
    let _: String = cmd(&mut p, &["SET", "waited", "1"]).await.unwrap();
    let n: i64 = cmd(&mut p, &["WAIT", "2", "5000"]).await.unwrap();
    assert_eq!(n, 2);
    let status: serde_json::Value = http
        .get(format!("http://{}/replication/status", primary.http_addr))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["replicas"].as_array().unwrap().len(), 2, "{status}");
    // A promoted replica takes writes.
    let _: String = cmd(&mut c2, &["REPLICAOF", "NO", "ONE"]).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while cmd::<String>(&mut c2, &["SET", "mine", "1"]).await.is_err() {
        assert!(Instant::now() < deadline, "the promoted replica never took writes");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_replica_continues_and_an_overrun_backlog_copies_again() {
    let (dp, dr) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // A backlog that holds what is written while the replica restarts, not what follows (both scale).
    let backlog = format!("{}kb", 64 * scale(1));
    let primary = ServerProcess::start(dp.path(), &["--config", &backlog_config(dp.path(), &backlog)]);
    let mut p = connect(&resp(&primary)).await;
    let config = replica_config(dr.path(), &resp(&primary), "");
    let mut replica = ServerProcess::start(dr.path(), &["--config", &config]);
    let mut r = connect(&resp(&replica)).await;
    linked(&mut r).await;
    load(&mut p, 3, 300).await;
    converge(&mut p, &mut [&mut r], "first sync").await;
    assert_eq!(info_field(&mut p, "sync_full").await, "1");
    // SIGKILL the replica in the middle of a load; it restarts from its own data and continues.
    let mut p2 = connect(&resp(&primary)).await;
    let loading = tokio::spawn(async move { load(&mut p2, 4, 300).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    replica.kill9();
    loading.await.unwrap();
    let replica = ServerProcess::start(dr.path(), &["--config", &config]);
    let mut r = connect(&resp(&replica)).await;
    linked(&mut r).await;
    converge(&mut p, &mut [&mut r], "after the replica's restart").await;
    assert_eq!(info_field(&mut p, "sync_full").await, "1", "a restarted replica must not copy everything again");
    assert_eq!(info_field(&mut p, "sync_partial_ok").await, "1");
    // Now past the backlog: more than it holds written while the replica is down forces a full copy.
    drop(r);
    let mut replica = replica;
    replica.kill9();
    let big = "v".repeat(2000);
    for i in 0..scale(100) {
        let _: String = cmd(&mut p, &["SET", &format!("big{i}"), &big]).await.unwrap();
    }
    let replica = ServerProcess::start(dr.path(), &["--config", &config]);
    let mut r = connect(&resp(&replica)).await;
    linked(&mut r).await;
    converge(&mut p, &mut [&mut r], "after a backlog overrun").await;
    assert_eq!(info_field(&mut p, "sync_full").await, "2");
    assert_eq!(info_field(&mut p, "sync_partial_err").await, "1");
    drop(replica);
}

fn backlog_config(dir: &std::path::Path, bytes: &str) -> String {
    let path = dir.join("primary.yaml");
    std::fs::write(&path, format!("replication:\n  backlog_bytes: {bytes}\n")).unwrap();
    path.to_string_lossy().into_owned()
}

/// A TCP proxy on a loopback port the test owns: forwards to `target`; `cut` drops every connection.
struct Proxy {
    addr: String,
    target: Arc<Mutex<String>>,
    conns: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(target: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let target = Arc::new(Mutex::new(target));
        let conns: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let (t, c) = (target.clone(), conns.clone());
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let to = t.lock().clone();
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(to).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                c.lock().push(task);
            }
        });
        Proxy { addr, target, conns, accept }
    }

    fn cut(&self) {
        for t in self.conns.lock().drain(..) {
            t.abort();
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_cut_and_a_killed_primary_converge() {
    let (dp, dr) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut primary = ServerProcess::start(dp.path(), &[]);
    let proxy = Proxy::start(resp(&primary)).await;
    let replica = ServerProcess::start(dr.path(), &["--config", &replica_config(dr.path(), &proxy.addr, "")]);
    let mut p = connect(&resp(&primary)).await;
    let mut r = connect(&resp(&replica)).await;
    linked(&mut r).await;
    // Cut the link three times in the middle of a load.
    let stop = Arc::new(AtomicBool::new(false));
    let mut p2 = connect(&resp(&primary)).await;
    let s = stop.clone();
    let loading = tokio::spawn(async move {
        let mut seed = 10;
        while !s.load(Ordering::Relaxed) {
            load(&mut p2, seed, 100).await;
            seed += 1;
        }
    });
    for _ in 0..scale(3) {
        tokio::time::sleep(Duration::from_millis(300)).await;
        proxy.cut();
    }
    stop.store(true, Ordering::Relaxed);
    loading.await.unwrap();
    converge(&mut p, &mut [&mut r], "after link cuts").await;
    assert_eq!(info_field(&mut p, "sync_full").await, "1", "a cut link resumes from the backlog");
    // SIGKILL the primary mid-load and restart it (on another port: the proxy follows it).
    let mut p2 = connect(&resp(&primary)).await;
    let loading = tokio::spawn(async move { load(&mut p2, 99, 100_000).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    primary.kill9();
    let _ = loading.await;
    proxy.cut();
    let primary = ServerProcess::start(dp.path(), &[]);
    *proxy.target.lock() = resp(&primary);
    let mut p = connect(&resp(&primary)).await;
    linked(&mut r).await;
    load(&mut p, 100, 200).await;
    converge(&mut p, &mut [&mut r], "after the primary's restart").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_min_replicas_every_acknowledged_write_is_on_the_replica() {
    let (dp, dr) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let path = dp.path().join("primary.yaml");
    std::fs::write(&path, "replication:\n  min_replicas_to_ack: 1\n  ack_timeout_ms: 300\n").unwrap();
    let mut primary = ServerProcess::start(dp.path(), &["--config", path.to_str().unwrap()]);
    let mut p = connect(&resp(&primary)).await;
    // No replica: writes are refused, not silently accepted.
    let e = cmd::<String>(&mut p, &["SET", "a", "1"]).await.unwrap_err();
    assert_eq!(e.code(), Some("NOREPLICAS"), "{e}");
    let replica = ServerProcess::start(dr.path(), &["--config", &replica_config(dr.path(), &resp(&primary), "")]);
    let mut r = connect(&resp(&replica)).await;
    linked(&mut r).await;
    let _: String = cmd(&mut p, &["SET", "a", "1"]).await.unwrap();
    // A replica that stops acknowledging (SIGSTOP: its link stays up) holds writes back: the reply says
    // the write is not known to be replicated.
    let signal = |sig: &str| {
        let pid = replica.child.id().to_string();
        assert!(std::process::Command::new("kill").args([sig, &pid]).status().unwrap().success());
    };
    signal("-STOP");
    let started = Instant::now();
    let e = cmd::<String>(&mut p, &["SET", "b", "1"]).await.unwrap_err();
    signal("-CONT");
    assert_eq!(e.code(), Some("NOREPLICAS"), "{e}");
    assert!(started.elapsed() >= Duration::from_millis(250), "answered before the ack timeout");
    // Writers record what was acknowledged; the primary dies mid-load.
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut writers = Vec::new();
    for w in 0..4 {
        let mut c = connect(&resp(&primary)).await;
        let acked = acked.clone();
        writers.push(tokio::spawn(async move {
            for i in 0.. {
                let key = format!("w{w}:{i}");
                match cmd::<String>(&mut c, &["SET", &key, "1"]).await {
                    Ok(_) => acked.lock().push(key),
                    Err(_) => break,
                }
            }
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while acked.lock().len() < 300 {
        assert!(Instant::now() < deadline, "writes did not get acknowledged");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    primary.kill9();
    for w in writers {
        let _ = w.await;
    }
    let acked = acked.lock().clone();
    for key in &acked {
        let v: Option<String> = cmd(&mut r, &["GET", key]).await.unwrap();
        assert_eq!(v.as_deref(), Some("1"), "acknowledged write {key} is not on the replica");
    }
    drop(replica);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_expires_keys_by_the_primarys_deletes_not_its_own_clock() {
    use synap_server::RunningServer;
    // The replica's clock runs an hour behind the primary's: by its own clock nothing ever expires.
    struct Behind;
    impl synap_core::Clock for Behind {
        fn now_ms(&self) -> u64 {
            synap_core::SystemClock.now_ms() - 3_600_000
        }
    }
    // And a second replica an hour ahead: by its clock everything has expired at once.
    struct Ahead;
    impl synap_core::Clock for Ahead {
        fn now_ms(&self) -> u64 {
            synap_core::SystemClock.now_ms() + 3_600_000
        }
    }
    let (dp, d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let primary = RunningServer::start(common::test_config(&dp)).await.unwrap();
    let storage: Arc<dyn synap_storage::Storage> = Arc::new(synap_storage::FsStorage);
    let behind =
        RunningServer::start_with_clock(common::test_config(&d1), storage.clone(), Arc::new(Behind)).await.unwrap();
    let ahead = RunningServer::start_with_clock(common::test_config(&d2), storage, Arc::new(Ahead)).await.unwrap();
    let paddr = primary.resp_addr.unwrap().to_string();
    let mut p = connect(&paddr).await;
    let mut rb = connect(&behind.resp_addr.unwrap().to_string()).await;
    let mut ra = connect(&ahead.resp_addr.unwrap().to_string()).await;
    for r in [&mut rb, &mut ra] {
        replicaof(r, &paddr).await;
        linked(r).await;
    }
    let _: String = cmd(&mut p, &["SET", "k", "v", "PX", "1500"]).await.unwrap();
    let _: String = cmd(&mut p, &["SET", "wait", "1"]).await.unwrap();
    let n: i64 = cmd(&mut p, &["WAIT", "2", "5000"]).await.unwrap();
    assert_eq!(n, 2);
    // Ahead: hidden from reads (logically expired by its clock), but not removed: it still counts.
    let v: Option<String> = cmd(&mut ra, &["GET", "k"]).await.unwrap();
    assert_eq!(v, None);
    let size: i64 = cmd(&mut ra, &["DBSIZE"]).await.unwrap();
    assert_eq!(size, 2, "the replica removed a key by its own clock");
    // Behind: the key is there until the primary's delete arrives, then gone.
    let v: Option<String> = cmd(&mut rb, &["GET", "k"]).await.unwrap();
    assert_eq!(v.as_deref(), Some("v"));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let b: i64 = cmd(&mut rb, &["EXISTS", "k"]).await.unwrap();
        let a: i64 = cmd(&mut ra, &["DBSIZE"]).await.unwrap();
        if b == 0 && a == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "the primary's expiry never reached the replicas");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Queue deadlines too: by the ahead replica's clock the message's deadline passed at once, but only
    // the primary redelivers (a replica that did would log a record of its own, lose its link and copy
    // everything again).
    let _: i64 = cmd(&mut p, &["QCREATE", "lease", "ACKDEADLINE", "60000"]).await.unwrap();
    let _: redis::Value = cmd(&mut p, &["QPUBLISH", "lease", "m"]).await.unwrap();
    let _: redis::Value = cmd(&mut p, &["QCONSUME", "lease", "w", "COUNT", "1"]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let _: String = cmd(&mut p, &["SET", "after", "1"]).await.unwrap();
    converge(&mut p, &mut [&mut ra, &mut rb], "after a deadline passed on a replica's clock").await;
    assert_eq!(info_field(&mut p, "sync_full").await, "2", "a replica redelivered by its own clock");
    for s in [primary, behind, ahead] {
        s.shutdown().await;
    }
}

/// A reply with its numbers (offsets, ports) replaced: the shapes are compared, not the values.
fn shape(v: redis::Value) -> redis::Value {
    use redis::Value as V;
    match v {
        V::Int(_) => V::Int(0),
        V::BulkString(b) if std::str::from_utf8(&b).is_ok_and(|s| s.parse::<u64>().is_ok()) => {
            V::BulkString(b"N".to_vec())
        }
        V::Array(items) => V::Array(items.into_iter().map(shape).collect()),
        other => other,
    }
}

async fn connect_proto(port: u16, resp3: bool) -> Conn {
    let proto = if resp3 { "?protocol=resp3" } else { "" };
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/{proto}")).unwrap();
    client.get_multiplexed_async_connection().await.unwrap()
}

/// What a client sees of replication, in RESP2 and RESP3, against a real redis-server primary and replica.
async fn replication_view(
    primary: u16,
    replica: u16,
    resp3: bool,
) -> Vec<(&'static str, Result<redis::Value, String>)> {
    let (mut p, mut r) = (connect_proto(primary, resp3).await, connect_proto(replica, resp3).await);
    let mut out = Vec::new();
    let _: String = cmd(&mut p, &["SET", "k", "v"]).await.unwrap();
    // The replica acknowledges the write (a number, kept as it is: 1).
    out.push(("WAIT 1 5000", cmd::<redis::Value>(&mut p, &["WAIT", "1", "5000"]).await.map_err(|e| e.to_string())));
    for (on_replica, line) in [
        (false, "ROLE"),
        (true, "ROLE"),
        (true, "SET k v"),
        (true, "WAIT 0 0"),
        (false, "REPLICAOF 127.0.0.1 notaport"),
        (false, "REPLICAOF onlyhost"),
        (false, "REPLCONF nosuchoption x"),
        (false, "REPLCONF listening-port x"),
        (false, "REPLCONF listening-port 1234"),
    ] {
        let c = if on_replica { &mut r } else { &mut p };
        let args: Vec<&str> = line.split(' ').collect();
        let reply = cmd::<redis::Value>(c, &args).await.map(shape).map_err(|e| e.to_string());
        out.push((line, reply));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn role_wait_and_errors_match_redis() {
    let Some(redis_primary) = common::redis_server::Redis::start(&[]) else {
        assert!(std::env::var_os("CI").is_none(), "redis-server is needed in CI");
        eprintln!("redis-server not found: the comparison does not run");
        return;
    };
    let port = redis_primary.port.to_string();
    let redis_replica = common::redis_server::Redis::start(&["--replicaof", "127.0.0.1", &port]).unwrap();
    let (dp, dr) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let primary = ServerProcess::start(dp.path(), &[]);
    let replica = ServerProcess::start(dr.path(), &["--config", &replica_config(dr.path(), &resp(&primary), "")]);
    let port_of = |p: &ServerProcess| resp(p).rsplit_once(':').unwrap().1.parse::<u16>().unwrap();
    for (port, label) in [(redis_replica.port, "redis"), (port_of(&replica), "synap")] {
        let mut c = connect_proto(port, false).await;
        let deadline = Instant::now() + Duration::from_secs(30);
        while info_field(&mut c, "master_link_status").await != "up" {
            assert!(Instant::now() < deadline, "{label} replica did not link up");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    for resp3 in [false, true] {
        let want = replication_view(redis_primary.port, redis_replica.port, resp3).await;
        let got = replication_view(port_of(&primary), port_of(&replica), resp3).await;
        assert_eq!(got, want, "RESP{}", if resp3 { 3 } else { 2 });
    }
}
