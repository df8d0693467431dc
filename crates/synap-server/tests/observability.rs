//! Observability: `/metrics` counts exactly what a workload did (parsed here and by `promtool`), the
//! dashboard and alert rules query metrics that exist, INFO agrees with a real `redis-server` for the
//! same workload (RESP2 and RESP3), SLOWLOG and LATENCY record a slow command as Redis does, and CLIENT
//! LIST shows a client's state as Redis shows it.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use common::redis_server::Redis;
use common::{TestServer, start_with};
use redis::Value;
use serde_json::json;

type Conn = redis::aio::MultiplexedConnection;

/// One sample of a scrape.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A scrape, parsed strictly: every line is a comment (`# HELP`, `# TYPE`), blank, or a sample.
#[derive(Debug)]
struct Scrape {
    samples: Vec<Sample>,
    types: BTreeMap<String, String>,
    text: String,
}

fn parse_labels(s: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let eq = s[i..].find('=').map(|p| p + i).expect("label name then =");
        let name = s[i..eq].trim_start_matches(',').to_string();
        assert_eq!(b[eq + 1], b'"', "label value quoted in {s}");
        let mut j = eq + 2;
        let mut v = String::new();
        loop {
            match b[j] {
                b'\\' => {
                    v.push(match b[j + 1] {
                        b'n' => '\n',
                        c => c as char,
                    });
                    j += 2;
                }
                b'"' => break,
                _ => {
                    let ch = s[j..].chars().next().unwrap();
                    v.push(ch);
                    j += ch.len_utf8();
                }
            }
        }
        out.insert(name, v);
        i = j + 1;
        if i < b.len() && b[i] == b',' {
            i += 1;
        }
    }
    out
}

fn parse(text: &str) -> Scrape {
    let mut samples = Vec::new();
    let mut types = BTreeMap::new();
    for line in text.lines() {
        if line.is_empty() || line.starts_with("# HELP ") {
            continue;
        }
        if let Some(t) = line.strip_prefix("# TYPE ") {
            let (name, kind) = t.split_once(' ').expect("TYPE name kind");
            types.insert(name.to_string(), kind.to_string());
            continue;
        }
        assert!(!line.starts_with('#'), "unexpected comment: {line}");
        let (head, value) = line.rsplit_once(' ').expect("a sample has a value");
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("bad value in {line}")),
        };
        let (name, labels) = match head.split_once('{') {
            Some((n, rest)) => (n.to_string(), parse_labels(rest.strip_suffix('}').expect("closing brace"))),
            None => (head.to_string(), BTreeMap::new()),
        };
        samples.push(Sample { name, labels, value });
    }
    Scrape { samples, types, text: text.to_string() }
}

impl Scrape {
    /// The sum of the samples named `name` whose labels include `labels` (0 when none).
    fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.matching(name, labels).map(|s| s.value).sum()
    }

    fn matching<'a>(&'a self, name: &'a str, labels: &'a [(&str, &str)]) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| {
            s.name == name && labels.iter().all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
    }

    /// Metric family names: samples' names with histogram suffixes taken off.
    fn families(&self) -> BTreeSet<String> {
        self.samples
            .iter()
            .map(|s| {
                for suffix in ["_bucket", "_sum", "_count"] {
                    if let Some(base) = s.name.strip_suffix(suffix)
                        && self.types.get(base).map(String::as_str) == Some("histogram")
                    {
                        return base.to_string();
                    }
                }
                s.name.clone()
            })
            .collect()
    }
}

async fn scrape(s: &TestServer) -> Scrape {
    let r = s.http.get(s.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let ct = r.headers().get("content-type").unwrap().to_str().unwrap().to_string();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    parse(&r.text().await.unwrap())
}

fn repo_file(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").join(rel)
}

/// `promtool` with `args` (and `stdin`), when installed: its exit success and output. CI installs it (a
/// missing one fails there).
fn promtool(args: &[&str], stdin: Option<&str>) -> Option<(bool, String)> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let child =
        Command::new("promtool").args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(_) => {
            assert!(std::env::var("CI").is_err(), "promtool is missing on CI (.ci/run installs prometheus)");
            eprintln!("promtool is not installed: its check skipped");
            return None;
        }
    };
    if let Some(text) = stdin {
        child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    Some((out.status.success(), text))
}

async fn cmd<T: redis::FromRedisValue>(c: &mut Conn, args: &[&str]) -> T {
    let mut command = redis::Cmd::new();
    for a in args {
        command.arg(*a);
    }
    command.query_async(c).await.unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

async fn raw(c: &mut Conn, args: &[&str]) -> redis::RedisResult<Value> {
    let mut command = redis::Cmd::new();
    for a in args {
        command.arg(*a);
    }
    command.query_async(c).await
}

async fn conn_to(addr: &str, resp3: bool) -> Conn {
    let proto = if resp3 { "/?protocol=resp3" } else { "" };
    let client = redis::Client::open(format!("redis://{addr}{proto}")).unwrap();
    let cfg = redis::AsyncConnectionConfig::new().set_response_timeout(Some(Duration::from_secs(20)));
    client.get_multiplexed_async_connection_with_config(&cfg).await.unwrap()
}

fn resp_addr(s: &TestServer) -> String {
    s.server.as_ref().unwrap().resp_addr.unwrap().to_string()
}

/// A map reply's fields (RESP3 map or RESP2 flat array) by name.
fn fields(v: &Value) -> BTreeMap<String, Value> {
    let pairs: Vec<(Value, Value)> = match v {
        Value::Map(p) => p.clone(),
        Value::Array(items) => items.chunks(2).map(|c| (c[0].clone(), c[1].clone())).collect(),
        other => panic!("not a map: {other:?}"),
    };
    pairs
        .into_iter()
        .map(|(k, v)| {
            let k = match k {
                Value::BulkString(b) => String::from_utf8(b).unwrap(),
                Value::SimpleString(s) => s,
                other => panic!("map key {other:?}"),
            };
            (k, v)
        })
        .collect()
}

fn int(v: &Value) -> i64 {
    match v {
        Value::Int(i) => *i,
        Value::BulkString(b) => String::from_utf8_lossy(b).parse().unwrap(),
        other => panic!("not an integer: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_move_by_exactly_what_the_workload_did() {
    let s = start_with(|_| {}).await;
    let mut c = conn_to(&resp_addr(&s), false).await;
    let before = scrape(&s).await;
    const SETS: usize = 37;
    for i in 0..SETS {
        let _: () = cmd(&mut c, &["SET", &format!("k{i}"), "v"]).await;
    }
    for i in 0..5 {
        let _: Option<String> = cmd(&mut c, &["GET", &format!("k{i}")]).await;
    }
    let _: Option<String> = cmd(&mut c, &["GET", "missing"]).await;
    for _ in 0..3 {
        assert!(raw(&mut c, &["LPUSH", "k0", "x"]).await.is_err());
    }
    assert!(raw(&mut c, &["GET"]).await.is_err(), "wrong arity");
    for i in 0..11 {
        let (st, _) = s.post("/kv/set", json!({"key": format!("h{i}"), "value": "v"})).await;
        assert_eq!(st, 200);
    }
    // A queue with messages published, some delivered, one acknowledged.
    let _: i64 = cmd(&mut c, &["QCREATE", "jobs"]).await;
    for i in 0..7 {
        let _: String = cmd(&mut c, &["QPUBLISH", "jobs", &format!("m{i}")]).await;
    }
    let got: Value = cmd(&mut c, &["QCONSUME", "jobs", "w1", "COUNT", "2"]).await;
    let first_id = bulk(&fields(&array(&got)[0])["message_id"]);
    let _: i64 = cmd(&mut c, &["QACK", "jobs", &first_id]).await;
    // A stream and a group that read 3 of 9 events and acknowledged 1.
    for i in 0..9 {
        let _: String = cmd(&mut c, &["XADD", "events", "*", "n", &i.to_string()]).await;
    }
    let _: () = cmd(&mut c, &["XGROUP", "CREATE", "events", "g", "0"]).await;
    let read: Value = cmd(&mut c, &["XREADGROUP", "GROUP", "g", "c1", "COUNT", "3", "STREAMS", "events", ">"]).await;
    let ids: Vec<String> = {
        let Value::Array(streams) = &read else { panic!("{read:?}") };
        let Value::Array(entry) = &streams[0] else { panic!() };
        let Value::Array(events) = &entry[1] else { panic!() };
        events
            .iter()
            .map(|e| match e {
                Value::Array(p) => match &p[0] {
                    Value::BulkString(b) => String::from_utf8(b.clone()).unwrap(),
                    o => panic!("{o:?}"),
                },
                o => panic!("{o:?}"),
            })
            .collect()
    };
    assert_eq!(ids.len(), 3);
    let _: i64 = cmd(&mut c, &["XACK", "events", "g", &ids[0]]).await;

    let after = scrape(&s).await;
    let d = |name: &str, labels: &[(&str, &str)]| after.sum(name, labels) - before.sum(name, labels);
    let resp_set = [("protocol", "resp"), ("operation", "set")];
    assert_eq!(
        d("synap_operations_total", &[("protocol", "resp"), ("operation", "set"), ("result", "ok")]),
        SETS as f64
    );
    assert_eq!(d("synap_operation_duration_seconds_count", &resp_set), SETS as f64, "the histogram counts every call");
    assert_eq!(d("synap_operations_total", &[("protocol", "http"), ("operation", "set"), ("result", "ok")]), 11.0);
    assert_eq!(d("synap_operation_duration_seconds_count", &[("protocol", "http"), ("operation", "set")]), 11.0);
    assert_eq!(d("synap_operations_total", &[("protocol", "resp"), ("operation", "get"), ("result", "ok")]), 6.0);
    assert_eq!(d("synap_operations_total", &[("operation", "get"), ("result", "rejected")]), 1.0);
    assert_eq!(d("synap_operations_total", &[("operation", "lpush"), ("result", "error")]), 3.0);
    assert_eq!(d("synap_errors_total", &[("code", "WRONGTYPE")]), 3.0);
    assert_eq!(d("synap_errors_total", &[("code", "ERR")]), 1.0);
    assert_eq!(d("synap_keyspace_hits_total", &[]), 5.0);
    // HTTP bodies: at least the 11 SET requests' JSON went in.
    assert!(d("synap_net_input_bytes_total", &[("protocol", "http")]) >= 11.0 * 20.0);
    assert!(d("synap_net_output_bytes_total", &[("protocol", "http")]) > 0.0);
    assert_eq!(d("synap_keyspace_misses_total", &[]), 1.0);
    assert_eq!(after.sum("synap_keys", &[("db", "0")]), (SETS + 11) as f64 + 1.0, "k*, h* and the stream key");
    // Buckets are cumulative and end at the count.
    for series in after.matching("synap_operation_duration_seconds_count", &resp_set) {
        let mut buckets: Vec<(f64, f64)> = after
            .samples
            .iter()
            .filter(|b| {
                b.name == "synap_operation_duration_seconds_bucket"
                    && b.labels.iter().filter(|(k, _)| *k != "le").all(|(k, v)| series.labels.get(k) == Some(v))
            })
            .map(|b| (b.labels["le"].parse::<f64>().unwrap_or(f64::INFINITY), b.value))
            .collect();
        buckets.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap());
        assert!(buckets.windows(2).all(|w| w[0].1 <= w[1].1), "{buckets:?}");
        assert_eq!(buckets.last().unwrap(), &(f64::INFINITY, series.value));
        assert_eq!(buckets.first().unwrap().0, 1e-6);
    }
    // Queue numbers are the engine's own (QSTATS).
    let stats: Value = cmd(&mut c, &["QSTATS", "jobs"]).await;
    let f = fields(&stats);
    for (metric, field) in [
        ("synap_queue_depth", "depth"),
        ("synap_queue_in_flight", "in_flight"),
        ("synap_queue_ready", "ready"),
        ("synap_queue_published_total", "published"),
        ("synap_queue_acked_total", "acked"),
    ] {
        assert_eq!(after.sum(metric, &[("queue", "jobs")]), int(&f[field]) as f64, "{metric}");
    }
    assert_eq!(after.sum("synap_queue_depth", &[("queue", "jobs")]), 6.0);
    assert_eq!(after.sum("synap_queue_in_flight", &[("queue", "jobs")]), 1.0);
    // Stream lag is the engine's own (the stats route): 6 undelivered and 2 pending.
    let (st, stats) = s.get("/stream/events/stats").await;
    assert_eq!(st, 200, "{stats}");
    let group = &stats["groups"][0];
    assert_eq!(
        after.sum("synap_stream_group_lag", &[("stream", "events"), ("group", "g")]),
        group["lag"].as_f64().unwrap()
    );
    assert_eq!(after.sum("synap_stream_group_lag", &[("stream", "events"), ("group", "g")]), 8.0);
    assert_eq!(after.sum("synap_stream_group_pending", &[("stream", "events"), ("group", "g")]), 2.0);
    assert_eq!(after.sum("synap_stream_events", &[("stream", "events")]), 9.0);
    // promtool reads it as valid exposition.
    if let Some((ok, out)) = promtool(&["check", "metrics"], Some(&after.text)) {
        assert!(ok, "promtool check metrics: {out}");
    }
    s.stop().await;
}

/// Every `synap_*` name an expression mentions.
fn metric_names(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = expr;
    while let Some(at) = rest.find("synap_") {
        let tail = &rest[at..];
        let end = tail.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(tail.len());
        out.push(tail[..end].to_string());
        rest = &tail[end..];
    }
    out
}

fn exprs_in(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                if (k == "expr" || k == "query")
                    && let Some(s) = v.as_str()
                {
                    out.push(s.to_string());
                }
                exprs_in(v, out);
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|i| exprs_in(i, out)),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_and_rules_use_metrics_the_server_exports() {
    let primary = start_with(|_| {}).await;
    let paddr = resp_addr(&primary);
    let replica = start_with(|cfg| cfg.replication.replica_of = paddr.clone()).await;
    let mut c = conn_to(&paddr, false).await;
    let _: () = cmd(&mut c, &["SET", "k", "v"]).await;
    let _: i64 = cmd(&mut c, &["QCREATE", "jobs"]).await;
    let _: String = cmd(&mut c, &["QPUBLISH", "jobs", "m"]).await;
    let _: String = cmd(&mut c, &["XADD", "events", "*", "a", "b"]).await;
    let _: () = cmd(&mut c, &["XGROUP", "CREATE", "events", "g", "0"]).await;
    let _: i64 = cmd(&mut c, &["PUBLISH", "ch", "x"]).await;
    assert!(raw(&mut c, &["LPUSH", "k", "x"]).await.is_err());
    // The replica is connected and streaming.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let info: String = cmd(&mut c, &["INFO", "replication"]).await;
        if info.contains("state=online") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the replica did not come online: {info}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut families = scrape(&primary).await.families();
    families.extend(scrape(&replica).await.families());

    let mut exprs = Vec::new();
    let dash: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(repo_file("deploy/grafana/synap.json")).unwrap()).unwrap();
    exprs_in(&dash, &mut exprs);
    let panels = dash["panels"].as_array().unwrap().len();
    assert!(panels >= 6, "the dashboard has {panels} panels");
    let rules: serde_json::Value =
        serde_norway::from_str(&std::fs::read_to_string(repo_file("deploy/prometheus/rules.yml")).unwrap()).unwrap();
    exprs_in(&rules, &mut exprs);
    let mut names = BTreeSet::new();
    for e in &exprs {
        names.extend(metric_names(e));
    }
    assert!(names.len() >= 15, "{names:?}");
    let missing: Vec<&String> = names.iter().filter(|n| !families.contains(n.trim_end_matches("_bucket"))).collect();
    assert!(missing.is_empty(), "queried but not exported: {missing:?}");
    if let Some((ok, out)) =
        promtool(&["check", "rules", repo_file("deploy/prometheus/rules.yml").to_str().unwrap()], None)
    {
        assert!(ok, "promtool check rules: {out}");
    }
    replica.stop().await;
    primary.stop().await;
}

/// A workload, then INFO's numbers: what Redis and Synap must agree on.
async fn info_after_workload(addr: &str, resp3: bool) -> BTreeMap<String, String> {
    let mut c = conn_to(addr, resp3).await;
    let _: () = cmd(&mut c, &["FLUSHALL"]).await;
    let _: () = cmd(&mut c, &["CONFIG", "RESETSTAT"]).await;
    for i in 0..20 {
        let _: () = cmd(&mut c, &["SET", &format!("k{i}"), "v"]).await;
    }
    for i in 0..10 {
        let _: Option<String> = cmd(&mut c, &["GET", &format!("k{i}")]).await;
    }
    for i in 0..4 {
        let _: Option<String> = cmd(&mut c, &["GET", &format!("nope{i}")]).await;
    }
    for i in 0..5 {
        let _: () = cmd(&mut c, &["SET", &format!("e{i}"), "v", "PX", "1"]).await;
    }
    let _: () = cmd(&mut c, &["SET", "ttl", "v", "EX", "1000"]).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    for i in 0..5 {
        let _: Option<String> = cmd(&mut c, &["GET", &format!("e{i}")]).await;
    }
    assert!(raw(&mut c, &["LPUSH", "k1", "x"]).await.is_err());
    assert!(raw(&mut c, &["GET"]).await.is_err());
    assert!(raw(&mut c, &["NOSUCHCOMMAND", "a"]).await.is_err());
    assert!(raw(&mut c, &["INCR", "k2"]).await.is_err());
    let mut tx = redis::pipe();
    tx.atomic().cmd("SET").arg("t").arg("1").cmd("INCR").arg("t").cmd("HSET").arg("t").arg("f").arg("v");
    let _: redis::RedisResult<Value> = tx.query_async(&mut c).await;
    let _: i64 = cmd(&mut c, &["DEL", "k19"]).await;
    // Commands answered after their batch count with their reply: AUTH (an error here, no password is
    // set), a blocking pop that times out, WAIT.
    assert!(raw(&mut c, &["AUTH", "nopass"]).await.is_err());
    let _: Value = cmd(&mut c, &["BLPOP", "empty", "0.01"]).await;
    let _: i64 = cmd(&mut c, &["WAIT", "0", "0"]).await;
    let text: String = cmd(&mut c, &["INFO", "everything"]).await;
    let mut out = BTreeMap::new();
    for line in text.lines() {
        if let Some((k, v)) = line.trim_end().split_once(':') {
            out.insert(k.to_string(), v.to_string());
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn info_matches_redis_for_the_same_workload() {
    let Some(redis) = Redis::start(&[]) else {
        eprintln!("redis-server is not installed: skipped");
        return;
    };
    let s = start_with(|_| {}).await;
    for resp3 in [false, true] {
        let theirs = info_after_workload(&format!("127.0.0.1:{}", redis.port), resp3).await;
        let ours = info_after_workload(&resp_addr(&s), resp3).await;
        let mut keys: Vec<String> = [
            "total_commands_processed",
            "keyspace_hits",
            "keyspace_misses",
            "expired_keys",
            "evicted_keys",
            "connected_clients",
            "total_error_replies",
            "errorstat_ERR",
            "errorstat_WRONGTYPE",
            "blocked_clients",
            "pubsub_channels",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for c in [
            "set",
            "get",
            "lpush",
            "incr",
            "hset",
            "multi",
            "exec",
            "del",
            "flushall",
            "config|resetstat",
            "auth",
            "blpop",
            "wait",
        ] {
            keys.push(format!("cmdstat_{c}"));
        }
        for k in &keys {
            let strip = |v: Option<&String>| {
                // usec fields differ by nature: compared are the counts.
                v.map(|v| v.split(',').filter(|p| !p.starts_with("usec")).collect::<Vec<_>>().join(","))
            };
            assert_eq!(strip(ours.get(k)), strip(theirs.get(k)), "{k} (resp3: {resp3})");
        }
        // The keyspace line but avg_ttl (an estimate in both).
        let ks = |m: &BTreeMap<String, String>| m["db0"].split(",avg_ttl").next().unwrap().to_string();
        assert_eq!(ks(&ours), ks(&theirs), "resp3: {resp3}");
        let ttl: u64 = ours["db0"].split("avg_ttl=").nth(1).unwrap().parse().unwrap();
        assert!((990_000..=1_000_000).contains(&ttl), "avg_ttl {ttl}");
        // Every section Redis has that makes sense here, under Redis's names.
        for section in
            ["redis_version", "used_memory", "maxmemory_policy", "rdb_changes_since_last_save", "used_cpu_sys"]
        {
            assert!(ours.contains_key(section), "{section} missing");
        }
        assert!(ours.contains_key("latency_percentiles_usec_get"), "latencystats");
    }
    // Evictions: both evict under the same pressure, and every key written is either held or evicted.
    for addr in [format!("127.0.0.1:{}", redis.port), resp_addr(&s)] {
        let mut c = conn_to(&addr, false).await;
        let _: () = cmd(&mut c, &["FLUSHALL"]).await;
        let _: () = cmd(&mut c, &["CONFIG", "RESETSTAT"]).await;
        let used: String = cmd(&mut c, &["INFO", "memory"]).await;
        let used: u64 = used.lines().find_map(|l| l.strip_prefix("used_memory:")).unwrap().trim().parse().unwrap();
        let _: () = cmd(&mut c, &["CONFIG", "SET", "maxmemory", &(used + 300_000).to_string()]).await;
        let _: () = cmd(&mut c, &["CONFIG", "SET", "maxmemory-policy", "allkeys-random"]).await;
        let value = "x".repeat(200);
        for i in 0..5000 {
            let _: () = cmd(&mut c, &["SET", &format!("m{i}"), &value]).await;
        }
        let info: String = cmd(&mut c, &["INFO", "stats"]).await;
        let evicted: u64 = info.lines().find_map(|l| l.strip_prefix("evicted_keys:")).unwrap().trim().parse().unwrap();
        let keys: u64 = cmd(&mut c, &["DBSIZE"]).await;
        assert!(evicted > 0, "{addr}: nothing evicted");
        assert_eq!(keys + evicted, 5000, "{addr}");
        let _: () = cmd(&mut c, &["CONFIG", "SET", "maxmemory", "0"]).await;
        let _: () = cmd(&mut c, &["FLUSHALL"]).await;
    }
    s.stop().await;
}

/// The same slow command on Redis and on Synap: SLOWLOG and LATENCY answer alike.
async fn slow_command_views(addr: &str, resp3: bool) -> (Value, Value, Value, Value, i64) {
    let mut c = conn_to(addr, resp3).await;
    let _: () = cmd(&mut c, &["CONFIG", "SET", "slowlog-log-slower-than", "20000"]).await;
    let _: () = cmd(&mut c, &["CONFIG", "SET", "latency-monitor-threshold", "20"]).await;
    let _: () = cmd(&mut c, &["CONFIG", "RESETSTAT"]).await;
    let _: () = cmd(&mut c, &["SLOWLOG", "RESET"]).await;
    let _: i64 = cmd(&mut c, &["LATENCY", "RESET"]).await;
    let _: () = cmd(&mut c, &["DEBUG", "SLEEP", "0.1"]).await;
    let _: String = cmd(&mut c, &["PING"]).await;
    let log: Value = cmd(&mut c, &["SLOWLOG", "GET"]).await;
    let latest: Value = cmd(&mut c, &["LATENCY", "LATEST"]).await;
    let hist: Value = cmd(&mut c, &["LATENCY", "HISTOGRAM", "debug"]).await;
    // Every command logged: the arguments as Redis shortens them.
    let _: () = cmd(&mut c, &["CONFIG", "SET", "slowlog-log-slower-than", "0"]).await;
    let long = "y".repeat(200);
    let _: String = cmd(&mut c, &["ECHO", &long]).await;
    let mut del = vec!["DEL".to_string()];
    del.extend((0..40).map(|i| format!("key{i}")));
    let del: Vec<&str> = del.iter().map(String::as_str).collect();
    let _: i64 = cmd(&mut c, &del).await;
    let shortened: Value = cmd(&mut c, &["SLOWLOG", "GET", "2"]).await;
    let reset: i64 = cmd(&mut c, &["LATENCY", "RESET", "command"]).await;
    let _: () = cmd(&mut c, &["CONFIG", "SET", "slowlog-log-slower-than", "10000"]).await;
    let _: () = cmd(&mut c, &["CONFIG", "SET", "latency-monitor-threshold", "0"]).await;
    (log, latest, hist, shortened, reset)
}

fn array(v: &Value) -> &Vec<Value> {
    match v {
        Value::Array(a) => a,
        other => panic!("not an array: {other:?}"),
    }
}

fn bulk(v: &Value) -> String {
    match v {
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        Value::SimpleString(s) => s.clone(),
        other => panic!("not a string: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowlog_and_latency_record_a_slow_command_as_redis_does() {
    let Some(redis) = Redis::start(&["--enable-debug-command", "yes"]) else {
        eprintln!("redis-server is not installed: skipped");
        return;
    };
    let s = start_with(|_| {}).await;
    for resp3 in [false, true] {
        let theirs = slow_command_views(&format!("127.0.0.1:{}", redis.port), resp3).await;
        let ours = slow_command_views(&resp_addr(&s), resp3).await;
        for (who, (log, latest, _, _, reset)) in [("redis", &theirs), ("synap", &ours)] {
            // SLOWLOG GET: one entry, DEBUG SLEEP with its arguments and a duration of about 100 ms.
            let entries = array(log);
            assert_eq!(entries.len(), 1, "{who}: {log:?}");
            let e = array(&entries[0]);
            assert_eq!(e.len(), 6, "{who}: {e:?}");
            let micros = int(&e[2]);
            assert!((100_000..200_000).contains(&micros), "{who}: {micros} µs");
            let args: Vec<String> = array(&e[3]).iter().map(bulk).collect();
            assert_eq!(args, ["DEBUG", "SLEEP", "0.1"], "{who}");
            assert!(bulk(&e[4]).starts_with("127.0.0.1:"), "{who}: {:?}", e[4]);
            assert_eq!(bulk(&e[5]), "", "{who}");
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
            assert!((now - int(&e[1])).abs() < 30, "{who}: timestamp");
            // LATENCY LATEST: the `command` event, at least 100 ms.
            let events = array(latest);
            assert_eq!(events.len(), 1, "{who}: {latest:?}");
            let ev = array(&events[0]);
            assert_eq!(bulk(&ev[0]), "command", "{who}");
            assert!(int(&ev[2]) >= 100 && int(&ev[3]) >= 100, "{who}: {ev:?}");
            assert_eq!(*reset, 1, "{who}");
        }
        // LATENCY HISTOGRAM: the same command, calls and buckets in both protocols' shapes.
        assert_eq!(ours.2, theirs.2, "LATENCY HISTOGRAM (resp3: {resp3})");
        // The shortened arguments are Redis's, to the byte.
        let args = |v: &Value| -> Vec<Vec<String>> {
            array(v).iter().map(|e| array(&array(e)[3]).iter().map(bulk).collect()).collect()
        };
        assert_eq!(args(&ours.3), args(&theirs.3), "resp3: {resp3}");
    }
    s.stop().await;
}

/// CLIENT LIST's fields of a client in a given state, on Redis and on Synap.
async fn client_states(addr: &str) -> Vec<BTreeMap<String, String>> {
    let mut sub = conn_to(addr, true).await;
    let _: () = cmd(&mut sub, &["CLIENT", "SETNAME", "subscriber"]).await;
    let _: Value = cmd(&mut sub, &["SUBSCRIBE", "a", "b"]).await;
    let _: Value = cmd(&mut sub, &["PSUBSCRIBE", "p*"]).await;
    let mut tx = conn_to(addr, false).await;
    let _: () = cmd(&mut tx, &["CLIENT", "SETNAME", "transaction"]).await;
    let _: () = cmd(&mut tx, &["SELECT", "3"]).await;
    let _: () = cmd(&mut tx, &["MULTI"]).await;
    let _: String = cmd(&mut tx, &["SET", "a", "1"]).await;
    let _: String = cmd(&mut tx, &["INCR", "a"]).await;
    let mut me = conn_to(addr, false).await;
    let _: () = cmd(&mut me, &["CLIENT", "SETNAME", "observer"]).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let list: String = cmd(&mut me, &["CLIENT", "LIST"]).await;
    let mut out = Vec::new();
    for line in list.lines() {
        let f: BTreeMap<String, String> =
            line.split(' ').filter_map(|kv| kv.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect();
        if ["subscriber", "transaction", "observer"].contains(&f["name"].as_str()) {
            let keep = ["name", "flags", "db", "sub", "psub", "multi", "cmd", "user", "resp"];
            out.push(f.into_iter().filter(|(k, _)| keep.contains(&k.as_str())).collect());
        }
    }
    out.sort_by(|a: &BTreeMap<String, String>, b| a["name"].cmp(&b["name"]));
    let _: () = cmd(&mut tx, &["DISCARD"]).await;
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_list_shows_state_as_redis_does() {
    let Some(redis) = Redis::start(&[]) else {
        eprintln!("redis-server is not installed: skipped");
        return;
    };
    let s = start_with(|_| {}).await;
    let theirs = client_states(&format!("127.0.0.1:{}", redis.port)).await;
    let ours = client_states(&resp_addr(&s)).await;
    assert_eq!(theirs.len(), 3, "{theirs:?}");
    assert_eq!(ours, theirs);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn info_json_resetstat_cardinality_and_the_metrics_address() {
    let s = start_with(|cfg| {
        cfg.metrics.addr = Some("127.0.0.1:0".parse().unwrap());
        cfg.metrics.max_label_values = 2;
    })
    .await;
    let mut c = conn_to(&resp_addr(&s), false).await;
    for q in ["qa", "qb", "qc", "qd"] {
        let _: i64 = cmd(&mut c, &["QCREATE", q]).await;
    }
    for (q, n) in [("qa", 1), ("qb", 2), ("qc", 3), ("qd", 4)] {
        for _ in 0..n {
            let _: String = cmd(&mut c, &["QPUBLISH", q, "m"]).await;
        }
    }
    let _: () = cmd(&mut c, &["SET", "k", "v"]).await;
    let _: Option<String> = cmd(&mut c, &["GET", "k"]).await;
    // At most two queues by name, the rest under `_other`.
    let m = scrape(&s).await;
    assert_eq!(m.sum("synap_queue_depth", &[("queue", "qa")]), 1.0);
    assert_eq!(m.sum("synap_queue_depth", &[("queue", "qb")]), 2.0);
    assert_eq!(m.sum("synap_queue_depth", &[("queue", "_other")]), 7.0);
    assert_eq!(m.matching("synap_queue_depth", &[]).count(), 3);
    assert_eq!(m.sum("synap_queues", &[]), 4.0);
    // A name cannot forge INFO fields or sections.
    let _: i64 = cmd(&mut c, &["QCREATE", "a\r\n# Replication\r\nrole:slave"]).await;
    let text: String = cmd(&mut c, &["INFO", "queues", "replication"]).await;
    assert!(text.contains("queue_a%0D%0A%23%20Replication%0D%0Arole%3Aslave:depth=0,"), "{text}");
    assert_eq!(text.matches("role:").count(), 1, "{text}");
    let (_, info) = s.get("/info?section=queues,replication").await;
    assert_eq!(info["replication"]["role"], "master");
    let _: i64 = cmd(&mut c, &["QDELETE", "a\r\n# Replication\r\nrole:slave"]).await;
    // GET /info: INFO as JSON.
    let (st, info) = s.get("/info?section=everything").await;
    assert_eq!(st, 200);
    assert_eq!(info["server"]["redis_version"], "7.2.0");
    assert_eq!(info["keyspace"]["db0"]["keys"], 1);
    assert_eq!(info["stats"]["keyspace_hits"], 1);
    assert_eq!(info["queues"]["queues"], 4);
    let (_, only) = s.get("/info?section=keyspace,clients").await;
    let sections: Vec<&String> = only.as_object().unwrap().keys().collect();
    assert_eq!(sections, ["clients", "keyspace"]);
    // CONFIG RESETSTAT: command and keyspace counts from zero.
    let _: () = cmd(&mut c, &["CONFIG", "RESETSTAT"]).await;
    let text: String = cmd(&mut c, &["INFO", "commandstats"]).await;
    assert!(!text.contains("cmdstat_get"), "{text}");
    assert!(text.contains("cmdstat_config|resetstat:calls=1,"), "{text}");
    let (_, info) = s.get("/info?section=stats").await;
    assert_eq!(info["stats"]["keyspace_hits"], 0);
    // metrics.addr serves /metrics alone.
    let addr = s.server.as_ref().unwrap().metrics_addr.expect("metrics address");
    let r = s.http.get(format!("http://{addr}/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("synap_queue_depth{queue=\"qa\"} 1"));
    let r = s.http.get(format!("http://{addr}/kv/get/k")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_timing_commands_are_counted_not_timed() {
    let s = start_with(|cfg| cfg.metrics.command_timing = false).await;
    let mut c = conn_to(&resp_addr(&s), false).await;
    for i in 0..3 {
        let _: () = cmd(&mut c, &["SET", &format!("k{i}"), "v"]).await;
    }
    let text: String = cmd(&mut c, &["INFO", "commandstats", "latencystats"]).await;
    assert!(text.contains("cmdstat_set:calls=3,usec=0,"), "{text}");
    assert!(!text.contains("latency_percentiles_usec_set"), "{text}");
    let m = scrape(&s).await;
    assert_eq!(m.sum("synap_operations_total", &[("operation", "set"), ("result", "ok")]), 3.0);
    assert_eq!(m.matching("synap_operation_duration_seconds_count", &[("operation", "set")]).count(), 0);
    s.stop().await;
}

#[test]
fn the_parser_reads_escapes_and_refuses_junk() {
    let s = parse("# TYPE a counter\na{q=\"x\\\"y\\\\z\\n\",b=\"1\"} 3\nb 4.5\n");
    assert_eq!(s.samples[0].labels["q"], "x\"y\\z\n");
    assert_eq!(s.samples[0].labels["b"], "1");
    assert_eq!(s.sum("a", &[("b", "1")]), 3.0);
    assert_eq!(s.sum("b", &[]), 4.5);
    assert!(std::panic::catch_unwind(|| parse("a{b=\"1\"} notanumber\n")).is_err());
}
