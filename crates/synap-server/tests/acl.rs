//! Users and permissions on RESP: the same ACL rules and command attempts on a real `redis-server` and
//! on Synap give the same answers; with a password set every command but AUTH/HELLO is refused until the
//! client authenticates; users survive `kill -9`, reach replicas, and no password is kept in clear.

mod common;

use std::time::{Duration, Instant};

use redis::Value;
use redis::aio::MultiplexedConnection as Conn;

use common::process::ServerProcess;
use common::redis_server::Redis;

async fn connect(addr: &str, resp3: bool) -> Conn {
    let proto = if resp3 { "?protocol=resp3" } else { "" };
    let client = redis::Client::open(format!("redis://{addr}/{proto}")).unwrap();
    let cfg = redis::AsyncConnectionConfig::new().set_response_timeout(Some(Duration::from_secs(20)));
    client.get_multiplexed_async_connection_with_config(&cfg).await.unwrap()
}

async fn run(c: &mut Conn, args: &[&str]) -> Result<Value, String> {
    let mut cmd = redis::Cmd::new();
    for a in args {
        cmd.arg(*a);
    }
    cmd.query_async::<Value>(c).await.map_err(|e| match e.code() {
        Some(code) => format!("{code} {}", e.detail().unwrap_or("")).trim().to_string(),
        None => e.to_string(),
    })
}

fn words(line: &str) -> Vec<&str> {
    line.split(' ').collect()
}

/// ACL GETUSER's fields; the command rules as their base and the set of rules after it (Redis 7.0 lists
/// single commands in its hash table's order), or left out where 7.0 describes the rules otherwise.
fn getuser(v: Result<Value, String>, describe: bool) -> Vec<(String, String)> {
    let pairs: Vec<(Value, Value)> = match v.expect("GETUSER answers") {
        Value::Map(m) => m,
        Value::Array(a) => a.chunks(2).map(|c| (c[0].clone(), c[1].clone())).collect(),
        other => panic!("{other:?}"),
    };
    pairs
        .into_iter()
        .filter_map(|(k, v)| {
            let k: String = redis::from_redis_value(k).unwrap();
            let v = match v {
                Value::BulkString(b) => String::from_utf8(b).unwrap(),
                other => format!("{other:?}"),
            };
            match k.as_str() {
                "commands" if !describe => None,
                "commands" => Some((k, commands_sorted(&v))),
                _ => Some((k, v)),
            }
        })
        .collect()
}

/// A rule line with the rules after `+@all`/`-@all` sorted.
fn commands_sorted(line: &str) -> String {
    let mut w: Vec<&str> = line.split(' ').collect();
    let at = w.iter().position(|t| *t == "+@all" || *t == "-@all").unwrap_or(w.len());
    if at + 1 < w.len() {
        w[at + 1..].sort_unstable();
    }
    w.join(" ")
}

/// The SHA-256 hex digest of "pw" (Redis's `#` form, so both servers hold the same password entry).
const PW_HASH: &str = "30c952fab122c3f9759f02a6d95c3758b246b4fee239957b2d4fee46e26170c4";

/// Rule sets, and whether Redis 7.0 describes them as Synap does (7.0 rewrites some rule lists, for
/// example a category removed after one added; Synap keeps the rules as given, as Redis 7.2 does).
fn cases() -> Vec<(String, bool)> {
    vec![
        (format!("on #{PW_HASH} ~foo* %R~bar* &ch* +@read +set +config|get"), true),
        ("on nopass allkeys allchannels +@all -debug".into(), true),
        (format!("on #{PW_HASH} ~k* resetchannels -@all +@hash +@set"), true),
        ("off ~* +@all -@dangerous".into(), true),
        ("on nopass %W~w* &news.* +set +publish +subscribe +get +incr".into(), true),
        ("on nopass ~* +@read -get".into(), true),
        ("reset".into(), true),
        ("on nopass ~* &* +@read -@dangerous".into(), false),
        ("on nopass ~* &* +@all -@write +lpush".into(), true),
        ("on nopass %R~r* %W~w* %RW~rw* +@all".into(), true),
    ]
}

const ATTEMPTS: &[&str] = &[
    "get foo1",
    "get bar1",
    "set foo1 v",
    "set bar1 v",
    "incr w1",
    "set w1 1",
    "get w1",
    "get rw1",
    "set rw1 1",
    "get r1",
    "set r1 1",
    "hset k1 f v",
    "hget k1 f",
    "sadd k1 m",
    "lpush k1 a",
    "lpush zz a",
    "config get maxmemory",
    "config set maxmemory 0",
    "publish ch1 m",
    "publish news.x m",
    "publish other m",
    "subscribe ch1",
    "subscribe news.a",
    "psubscribe news.*",
    "flushall",
    "keys *",
    "del foo1",
    "client id",
    "client kill id 999999",
    "mget foo1 bar1",
    "mget foo1 zzz",
    "eval return 1 0",
    "sort foo1",
    "object encoding foo1",
    "getdel rw1",
    "debug sleep 0",
    "copy bar1 foo2",
    "copy w1 rw2",
    "sunionstore foo3 bar1",
    "sunionstore w3 r1",
    "sort foo1 by nosort",
    "sort rw1 by nosort",
    "rename bar1 foo4",
];

/// ACL SETUSER, GETUSER, LIST, DRYRUN and real attempts, compared with redis-server in RESP2 and RESP3.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acl_answers_match_redis() {
    let Some(redis) = Redis::start(&["--enable-debug-command", "yes"]) else {
        eprintln!("redis-server is not installed: skipped");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let synap = ServerProcess::start(dir.path(), &["--persistence", "false"]);
    let ours = synap.resp_addr.clone().unwrap();
    let theirs = format!("127.0.0.1:{}", redis.port);
    for resp3 in [false, true] {
        let mut a = connect(&theirs, resp3).await;
        let mut b = connect(&ours, resp3).await;
        for (i, (rules, describe)) in cases().iter().enumerate() {
            let name = format!("u{i}");
            let mut setuser = vec!["ACL", "SETUSER", &name, "reset"];
            setuser.extend(words(rules));
            assert_eq!(run(&mut a, &setuser).await, run(&mut b, &setuser).await, "{rules}");
            let get = ["ACL", "GETUSER", &name];
            let (ga, gb) = (getuser(run(&mut a, &get).await, *describe), getuser(run(&mut b, &get).await, *describe));
            assert_eq!(ga, gb, "GETUSER after {rules} (resp3 {resp3})");
            for line in ATTEMPTS {
                let mut dry = vec!["ACL", "DRYRUN", &name];
                dry.extend(words(line));
                let (x, y) = (run(&mut a, &dry).await, run(&mut b, &dry).await);
                assert_eq!(x, y, "DRYRUN {line} under {rules}");
            }
        }
        // ACL LIST lines of the users whose descriptions agree.
        let list = |v: Value| -> Vec<String> {
            let Value::Array(items) = v else { panic!("{v:?}") };
            items
                .into_iter()
                .filter_map(|i| match i {
                    Value::BulkString(b) => Some(String::from_utf8(b).unwrap()),
                    _ => None,
                })
                .collect()
        };
        let (la, lb) =
            (list(run(&mut a, &["ACL", "LIST"]).await.unwrap()), list(run(&mut b, &["ACL", "LIST"]).await.unwrap()));
        for (i, (_, describe)) in cases().iter().enumerate() {
            let prefix = format!("user u{i} ");
            let find = |l: &[String]| l.iter().find(|x| x.starts_with(&prefix)).map(|x| commands_sorted(x));
            if *describe {
                assert_eq!(find(&la), find(&lb), "ACL LIST line of u{i}");
            }
        }
        // Bad rules: the same errors.
        for bad in ["bogus", "+nosuch", "+@nosuch", "#abc", "allkeys ~foo"] {
            let mut setuser = vec!["ACL", "SETUSER", "bad"];
            setuser.extend(words(bad));
            assert_eq!(run(&mut a, &setuser).await, run(&mut b, &setuser).await, "{bad}");
        }
        for line in [
            "ACL DELUSER default",
            "ACL GETUSER nosuch",
            "ACL WHOAMI",
            "ACL DRYRUN nosuch get k",
            "ACL GENPASS 0",
            "ACL CAT nosuch",
        ] {
            assert_eq!(run(&mut a, &words(line)).await, run(&mut b, &words(line)).await, "{line}");
        }
        // Real attempts, authenticated as each user: the same answers (errors compared whole).
        for (i, _) in cases().iter().enumerate().filter(|(_, (r, _))| r.starts_with("on")) {
            let name = format!("u{i}");
            let mut ua = connect(&theirs, resp3).await;
            let mut ub = connect(&ours, resp3).await;
            let auth = ["AUTH", &name, "pw"];
            assert_eq!(run(&mut ua, &auth).await, run(&mut ub, &auth).await, "AUTH {name}");
            for line in ATTEMPTS.iter().filter(|l| !l.starts_with("subscribe") && !l.starts_with("psubscribe")) {
                let (x, y) = (run(&mut ua, &words(line)).await, run(&mut ub, &words(line)).await);
                let refused = |r: &Result<Value, String>| r.as_ref().err().filter(|e| e.starts_with("NOPERM")).cloned();
                assert_eq!(refused(&x), refused(&y), "{line} as {name}: redis {x:?}, synap {y:?}");
            }
        }
        let wrong = ["AUTH", "u0", "nope"];
        assert_eq!(run(&mut a, &wrong).await, run(&mut b, &wrong).await);
        // The log: the last refusal of the last user, same reason, context and object.
        let log = ["ACL", "LOG", "1"];
        let fields = |v: Value| -> Vec<(String, String)> {
            let Value::Array(mut e) = v else { panic!("{v:?}") };
            let entry = e.remove(0);
            let pairs: Vec<(Value, Value)> = match entry {
                Value::Map(m) => m,
                Value::Array(a) => a.chunks(2).map(|c| (c[0].clone(), c[1].clone())).collect(),
                other => panic!("{other:?}"),
            };
            pairs
                .into_iter()
                .filter_map(|(k, v)| {
                    let k: String = redis::from_redis_value(k).ok()?;
                    let v: String = redis::from_redis_value(v).ok()?;
                    ["count", "reason", "context", "object", "username"].contains(&k.as_str()).then_some((k, v))
                })
                .collect()
        };
        assert_eq!(fields(run(&mut a, &log).await.unwrap()), fields(run(&mut b, &log).await.unwrap()));
        for c in [&mut a, &mut b] {
            run(c, &["ACL", "LOG", "RESET"]).await.unwrap();
            for i in 0..cases().len() {
                run(c, &["ACL", "DELUSER", &format!("u{i}")]).await.unwrap();
            }
        }
    }
}

/// Every command's ACL categories, as COMMAND reports them, equal redis-server's for the commands both
/// have (containers have none of their own).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn command_categories_match_redis() {
    let Some(redis) = Redis::start(&[]) else {
        eprintln!("redis-server is not installed: skipped");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let synap = ServerProcess::start(dir.path(), &["--persistence", "false"]);
    let categories = |v: Value| -> std::collections::BTreeMap<String, Vec<String>> {
        let mut out = std::collections::BTreeMap::new();
        let Value::Array(rows) = v else { panic!() };
        let add = |row: &[Value], out: &mut std::collections::BTreeMap<String, Vec<String>>| {
            let name: String = redis::from_redis_value(row[0].clone()).unwrap();
            let mut cats: Vec<String> = redis::from_redis_value(row[6].clone()).unwrap();
            cats.sort();
            out.insert(name, cats);
        };
        for r in rows {
            let Value::Array(row) = r else { panic!() };
            add(&row, &mut out);
            if let Value::Array(subs) = &row[9] {
                for s in subs {
                    let Value::Array(sub) = s else { panic!() };
                    add(sub, &mut out);
                }
            }
        }
        out
    };
    let mut a = connect(&format!("127.0.0.1:{}", redis.port), false).await;
    let mut b = connect(synap.resp_addr.as_ref().unwrap(), false).await;
    let (ca, cb) =
        (categories(run(&mut a, &["COMMAND"]).await.unwrap()), categories(run(&mut b, &["COMMAND"]).await.unwrap()));
    let mut compared = 0;
    for (name, cats) in &cb {
        // CLUSTER: Synap's is a command of its own (Redis's a container of cluster-mode subcommands).
        if name == "cluster" {
            continue;
        }
        if let Some(theirs) = ca.get(name) {
            assert_eq!(cats, theirs, "categories of {name}");
            compared += 1;
        }
    }
    assert!(compared > 250, "only {compared} commands compared");
}

fn raw_roundtrip(addr: &str, lines: &[Vec<String>]) -> Vec<String> {
    use std::io::{BufRead, BufReader, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut out = Vec::new();
    let mut r = BufReader::new(s.try_clone().unwrap());
    for args in lines {
        let mut buf = format!("*{}\r\n", args.len());
        for a in args {
            buf.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        s.write_all(buf.as_bytes()).unwrap();
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        // Only the first line of each reply is kept: every reply here is an error or a one-line status.
        out.push(line.trim_end().to_string());
    }
    out
}

/// With a password set, every command of the table (with enough arguments to pass its arity) is refused
/// with NOAUTH before AUTH, except AUTH and HELLO; after AUTH the same connection may run them.
#[test]
fn every_command_needs_auth() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("synap.yaml");
    std::fs::write(&conf, "auth:\n  requirepass: \"s3cret pass\"\n").unwrap();
    let synap = ServerProcess::start(dir.path(), &["--config", conf.to_str().unwrap(), "--persistence", "false"]);
    let addr = synap.resp_addr.clone().unwrap();
    let mut lines = Vec::new();
    let mut names = Vec::new();
    for spec in synap_core::command::table::resp_commands() {
        let n = spec.arity.unsigned_abs() as usize;
        let mut args = vec![spec.name.to_string()];
        args.extend((1..n.max(1)).map(|i| format!("a{i}")));
        if matches!(spec.name, "auth" | "hello") {
            continue;
        }
        names.push(spec.name);
        lines.push(args);
    }
    let replies = raw_roundtrip(&addr, &lines);
    for (name, reply) in names.iter().zip(&replies) {
        assert_eq!(reply, "-NOAUTH Authentication required.", "{name}");
    }
    assert!(names.len() > 200, "{}", names.len());
    let replies = raw_roundtrip(
        &addr,
        &[
            vec!["HELLO".into(), "3".into()],
            vec!["AUTH".into(), "wrong".into()],
            vec!["AUTH".into(), "s3cret pass".into()],
            vec!["SET".into(), "k".into(), "v".into()],
        ],
    );
    assert!(replies[0].starts_with("-NOAUTH HELLO must be called"), "{replies:?}");
    // Before AUTH a client may not send much: 11 arguments, or one of 20 KB, end the connection.
    for line in [vec!["x".to_string(); 11], vec!["ECHO".to_string(), "y".repeat(20_000)]] {
        let r = raw_roundtrip(&addr, &[line]);
        assert!(r[0].starts_with("-ERR Protocol error"), "{r:?}");
    }
    // After it, the full limits.
    let r = raw_roundtrip(&addr, &[vec!["AUTH".into(), "s3cret pass".into()], vec!["ECHO".into(), "y".repeat(20_000)]]);
    assert_eq!(r[0], "+OK");
    assert_eq!(r[1], "$20000");
    assert_eq!(replies[1], "-WRONGPASS invalid username-password pair or user is disabled.");
    assert_eq!(replies[2], "+OK");
    assert_eq!(replies[3], "+OK");
}

/// Users and rules survive kill -9 and reach a replica; no password is kept in clear anywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_are_durable_replicated_and_never_in_clear() {
    const SECRET: &str = "correct-horse-battery-staple";
    const REQUIREPASS: &str = "tr0ub4dor-and-3";
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("synap.yaml");
    std::fs::write(
        &conf,
        format!("auth:\n  requirepass: {REQUIREPASS}\nreplication:\n  primary_password: {REQUIREPASS}\n"),
    )
    .unwrap();
    let conf = conf.to_str().unwrap().to_string();
    let data = dir.path().join("primary");
    let mut primary = ServerProcess::start_logged(&data, &["--config", &conf, "--fsync", "always"], "debug");
    let paddr = primary.resp_addr.clone().unwrap();
    let admin_url = |addr: &str| format!("redis://:{REQUIREPASS}@{addr}/");
    let open = |url: String| async move {
        redis::Client::open(url).unwrap().get_multiplexed_async_connection().await.unwrap()
    };
    let mut p = open(admin_url(&paddr)).await;
    run(&mut p, &["ACL", "SETUSER", "alice", "on", &format!(">{SECRET}"), "~app:*", "+@read", "+@write"])
        .await
        .unwrap();
    run(&mut p, &["ACL", "SETUSER", "bob", "on", ">other-secret", "~*", "+@all", "-flushall"]).await.unwrap();
    run(&mut p, &["ACL", "DELUSER", "bob"]).await.unwrap();
    run(&mut p, &["SET", "app:1", "v"]).await.unwrap();
    // An API key for alice, over HTTP.
    let http = reqwest::Client::new();
    let created: serde_json::Value = http
        .post(format!("http://{}/auth/keys", primary.http_addr))
        .basic_auth("default", Some(REQUIREPASS))
        .json(&serde_json::json!({"user": "alice"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = created["key"].as_str().expect("a key").to_string();
    // Each node hashes its own requirepass (its own salt): the default user's line is its own.
    let users = |v: Value| -> Vec<String> {
        let v: Vec<String> = redis::from_redis_value(v).unwrap();
        v.into_iter().filter(|l| !l.starts_with("user default ")).collect()
    };
    let before = users(run(&mut p, &["ACL", "LIST"]).await.unwrap());
    assert_eq!(before.len(), 1, "{before:?}");
    // A replica takes the users with the data.
    let rdir = dir.path().join("replica");
    let replica = ServerProcess::start_logged(&rdir, &["--config", &conf], "debug");
    let raddr = replica.resp_addr.clone().unwrap();
    let mut r = open(admin_url(&raddr)).await;
    let (host, port) = paddr.split_once(':').unwrap();
    run(&mut r, &["REPLICAOF", host, port]).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if users(run(&mut r, &["ACL", "LIST"]).await.unwrap()) == before {
            break;
        }
        assert!(Instant::now() < deadline, "the replica did not take the users");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut ra = open(format!("redis://alice:{SECRET}@{raddr}/")).await;
    assert_eq!(run(&mut ra, &["GET", "app:1"]).await, Ok(Value::BulkString(b"v".to_vec())));
    // A replica refuses user changes as it refuses writes.
    let e = run(&mut r, &["ACL", "SETUSER", "carol", "on"]).await.unwrap_err();
    assert!(e.starts_with("READONLY"), "{e}");
    let mut logs: Vec<String> = replica.log.lock().unwrap().iter().cloned().collect();
    drop(replica);
    logs.extend(primary.log.lock().unwrap().iter().cloned());
    // kill -9 and restart: the same users, alice's password still works, bob is gone.
    primary.kill9();
    let mut primary = ServerProcess::start_logged(&data, &["--config", &conf, "--fsync", "always"], "debug");
    let paddr = primary.resp_addr.clone().unwrap();
    let mut p = open(admin_url(&paddr)).await;
    assert_eq!(users(run(&mut p, &["ACL", "LIST"]).await.unwrap()), before);
    let mut a = open(format!("redis://alice:{SECRET}@{paddr}/")).await;
    let e = run(&mut a, &["GET", "other"]).await.unwrap_err();
    assert!(e.starts_with("NOPERM"), "{e}");
    assert!(run(&mut a, &["SET", "app:2", "x"]).await.is_ok());
    let me: serde_json::Value = http
        .get(format!("http://{}/auth/whoami", primary.http_addr))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["user"], "alice", "{me}");
    // Nothing secret in INFO, CONFIG GET, ACL LIST, CLIENT LIST...
    for line in [&["INFO", "everything"][..], &["CONFIG", "GET", "*"], &["ACL", "LIST"], &["CLIENT", "LIST"]] {
        let v = format!("{:?}", run(&mut p, line).await.unwrap());
        for s in [SECRET, REQUIREPASS, "other-secret", &token] {
            assert!(!v.contains(s), "{line:?} shows a password");
        }
    }
    primary.terminate();
    // ... nor in the logs (at debug level) ...
    logs.extend(primary.log.lock().unwrap().iter().cloned());
    assert!(logs.len() > 5, "{} log lines", logs.len());
    for line in &logs {
        for s in [SECRET, REQUIREPASS, "other-secret", &token] {
            assert!(!line.contains(s), "a log line shows a password: {line}");
        }
    }
    // ... nor in the data directory (WAL, snapshots, state files).
    let mut files = 0;
    for root in [&data, &rdir] {
        for f in walk(root) {
            let bytes = std::fs::read(&f).unwrap();
            files += 1;
            for s in [SECRET, REQUIREPASS, "other-secret", &token] {
                assert!(!bytes.windows(s.len()).any(|w| w == s.as_bytes()), "{} holds a password", f.display());
            }
        }
    }
    assert!(files >= 2, "{files}");
    let _ = std::fs::remove_dir_all(dir.path());
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else { return out };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Commands are checked when MULTI queues them; if the user's rules change before EXEC, nothing runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_after_the_rules_changed_runs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let synap = ServerProcess::start(dir.path(), &["--persistence", "false"]);
    let addr = synap.resp_addr.clone().unwrap();
    let mut admin = connect(&addr, false).await;
    run(&mut admin, &["ACL", "SETUSER", "eve", "on", "nopass", "~*", "+@all"]).await.unwrap();
    let replies = {
        use std::io::{BufRead, BufReader, Write};
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut r = BufReader::new(s.try_clone().unwrap());
        let mut line = |cmd: &str, s: &mut std::net::TcpStream| {
            let parts: Vec<&str> = cmd.split(' ').collect();
            let mut buf = format!("*{}\r\n", parts.len());
            for p in parts {
                buf.push_str(&format!("${}\r\n{p}\r\n", p.len()));
            }
            s.write_all(buf.as_bytes()).unwrap();
            let mut l = String::new();
            r.read_line(&mut l).unwrap();
            l.trim_end().to_string()
        };
        let mut out = vec![line("AUTH eve x", &mut s), line("MULTI", &mut s), line("SET k v", &mut s)];
        // The rules change while the transaction is open.
        let mut admin2 = std::net::TcpStream::connect(&addr).unwrap();
        admin2.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        admin2.write_all(b"*4\r\n$3\r\nACL\r\n$7\r\nSETUSER\r\n$3\r\neve\r\n$4\r\n-set\r\n").unwrap();
        let mut ok = [0u8; 5];
        std::io::Read::read_exact(&mut admin2, &mut ok).unwrap();
        assert_eq!(&ok, b"+OK\r\n");
        out.push(line("EXEC", &mut s));
        out
    };
    assert_eq!(replies[..3], ["+OK", "+OK", "+QUEUED"]);
    assert!(replies[3].starts_with("-EXECABORT"), "{replies:?}");
    let got = run(&mut admin, &["EXISTS", "k"]).await.unwrap();
    assert_eq!(got, Value::Int(0));
}

/// The commands a script calls are checked against the caller's rules, at top level and inside EXEC, as
/// redis-server refuses them too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_call_only_what_the_user_may() {
    let dir = tempfile::tempdir().unwrap();
    let synap = ServerProcess::start(dir.path(), &["--persistence", "false"]);
    let redis = Redis::start(&[]);
    let mut addrs = vec![synap.resp_addr.clone().unwrap()];
    if let Some(r) = &redis {
        addrs.push(format!("127.0.0.1:{}", r.port));
    }
    let mut errors = Vec::new();
    for addr in addrs {
        let mut admin = connect(&addr, false).await;
        run(&mut admin, &["SET", "secret", "s"]).await.unwrap();
        run(&mut admin, &["ACL", "SETUSER", "lua", "on", "nopass", "~ok*", "+eval", "+get", "+multi", "+exec"])
            .await
            .unwrap();
        let mut c = connect(&addr, false).await;
        run(&mut c, &["AUTH", "lua", "x"]).await.unwrap();
        let script = "return redis.call('get', KEYS[1])";
        assert_eq!(run(&mut c, &["EVAL", script, "1", "ok1"]).await, Ok(Value::Nil), "{addr}");
        // The key is declared as allowed, the script reads another.
        let sneaky = "return redis.call('get', 'secret')";
        let e = run(&mut c, &["EVAL", sneaky, "1", "ok1"]).await.unwrap_err();
        assert!(e.contains("can't access at least one of the keys"), "{addr}: {e}");
        errors.push(e);
        let mut pipe = redis::pipe();
        pipe.atomic().cmd("EVAL").arg(sneaky).arg(1).arg("ok1");
        let r: redis::RedisResult<Vec<Value>> = pipe.query_async(&mut c).await;
        let refused = match &r {
            Err(e) => e.to_string().contains("can't access"),
            Ok(v) => format!("{v:?}").contains("can't access"),
        };
        assert!(refused, "{addr}: inside EXEC the script read the secret: {r:?}");
    }
    // The same error line as redis-server's (the script's SHA and position included).
    if errors.len() == 2 {
        assert_eq!(errors[0], errors[1]);
    }
}
