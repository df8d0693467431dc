//! The RESP front end with a real Redis client (the `redis` crate), raw protocol bytes, and `redis-cli`.

mod common;

use std::time::Duration;

use common::start_with;
use redis::{AsyncCommands, Value as RV, cmd};
use synap_server::config::ByteSize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn resp_server(edit: impl FnOnce(&mut synap_server::Config)) -> (common::TestServer, String) {
    let s = start_with(edit).await;
    let addr = s.server.as_ref().unwrap().resp_addr.expect("RESP enabled").to_string();
    (s, addr)
}

async fn conn(addr: &str) -> redis::aio::MultiplexedConnection {
    let client = redis::Client::open(format!("redis://{addr}/")).unwrap();
    client.get_multiplexed_async_connection().await.unwrap()
}

async fn err_of<T: redis::FromRedisValue + std::fmt::Debug>(
    c: &mut redis::aio::MultiplexedConnection,
    command: &mut redis::Cmd,
) -> String {
    let r: redis::RedisResult<T> = command.query_async(c).await;
    let e = r.expect_err("an error reply");
    format!("{} {}", e.code().unwrap_or(""), e.detail().unwrap_or("")).trim().to_string()
}

/// Sends raw bytes and returns what the server answers until it closes or goes quiet.
async fn raw(addr: &str, input: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(input).await.unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(Duration::from_millis(300), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
    out
}

#[tokio::test]
async fn strings_keys_and_ttls() {
    let (s, addr) = resp_server(|_| {}).await;
    let mut c = conn(&addr).await;
    let _: () = c.set("k", "v").await.unwrap();
    assert_eq!(c.get::<_, String>("k").await.unwrap(), "v");
    assert_eq!(c.get::<_, Option<String>>("missing").await.unwrap(), None);
    let r: Option<String> = cmd("SET").arg("k").arg("w").arg("NX").query_async(&mut c).await.unwrap();
    assert_eq!(r, None);
    let r: Option<String> = cmd("SET").arg("k").arg("w").arg("XX").arg("GET").query_async(&mut c).await.unwrap();
    assert_eq!(r.as_deref(), Some("v"));
    let _: () = cmd("SET").arg("t").arg("1").arg("EX").arg(100).query_async(&mut c).await.unwrap();
    let ttl: i64 = c.ttl("t").await.unwrap();
    assert!((99..=100).contains(&ttl));
    let _: () = cmd("SET").arg("t").arg("2").arg("KEEPTTL").query_async(&mut c).await.unwrap();
    assert!(c.pttl::<_, i64>("t").await.unwrap() > 90_000);
    assert_eq!(c.ttl::<_, i64>("k").await.unwrap(), -1);
    assert_eq!(c.ttl::<_, i64>("nope").await.unwrap(), -2);
    assert_eq!(cmd("SETNX").arg("n").arg("1").query_async::<i64>(&mut c).await.unwrap(), 1);
    assert_eq!(cmd("SETNX").arg("n").arg("1").query_async::<i64>(&mut c).await.unwrap(), 0);
    let _: () = cmd("SETEX").arg("se").arg(10).arg("x").query_async(&mut c).await.unwrap();
    assert!(c.ttl::<_, i64>("se").await.unwrap() > 0);
    let _: () = cmd("PSETEX").arg("pse").arg(60).arg("x").query_async(&mut c).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(c.get::<_, Option<String>>("pse").await.unwrap(), None, "expired keys are never returned");
    assert_eq!(cmd("GETSET").arg("k").arg("z").query_async::<String>(&mut c).await.unwrap(), "w");
    assert_eq!(cmd("GETDEL").arg("k").query_async::<String>(&mut c).await.unwrap(), "z");
    assert_eq!(c.exists::<_, i64>("k").await.unwrap(), 0);
    let _: () = c.mset(&[("a", "1"), ("b", "2")]).await.unwrap();
    assert_eq!(
        c.mget::<_, Vec<Option<String>>>(&["a", "x", "b"]).await.unwrap(),
        vec![Some("1".into()), None, Some("2".into())]
    );
    assert_eq!(cmd("MSETNX").arg("a").arg("9").arg("c").arg("3").query_async::<i64>(&mut c).await.unwrap(), 0);
    assert_eq!(cmd("EXISTS").arg("a").arg("b").arg("a").arg("zz").query_async::<i64>(&mut c).await.unwrap(), 3);
    assert_eq!(c.append::<_, _, i64>("a", "23").await.unwrap(), 3);
    assert_eq!(c.strlen::<_, i64>("a").await.unwrap(), 3);
    assert_eq!(cmd("TYPE").arg("a").query_async::<String>(&mut c).await.unwrap(), "string");
    assert_eq!(cmd("TYPE").arg("zz").query_async::<String>(&mut c).await.unwrap(), "none");
    assert_eq!(c.expire::<_, i64>("a", 100).await.unwrap(), 1);
    assert_eq!(cmd("EXPIRE").arg("a").arg(10).arg("GT").query_async::<i64>(&mut c).await.unwrap(), 0);
    assert_eq!(c.persist::<_, i64>("a").await.unwrap(), 1);
    assert_eq!(cmd("PEXPIREAT").arg("b").arg(1).query_async::<i64>(&mut c).await.unwrap(), 1);
    assert_eq!(c.exists::<_, i64>("b").await.unwrap(), 0, "an expiry in the past deletes");
    let at: i64 = cmd("EXPIREAT").arg("a").arg(4_000_000_000i64).query_async(&mut c).await.unwrap();
    assert_eq!(at, 1);
    assert_eq!(cmd("EXPIRETIME").arg("a").query_async::<i64>(&mut c).await.unwrap(), 4_000_000_000);
    let _: () = c.rename("a", "a2").await.unwrap();
    assert_eq!(err_of::<()>(&mut c, cmd("RENAME").arg("a").arg("b")).await, "ERR no such key");
    assert_eq!(cmd("RENAMENX").arg("a2").arg("n").query_async::<i64>(&mut c).await.unwrap(), 0);
    let mut keys: Vec<String> = c.keys("*").await.unwrap();
    keys.sort();
    assert_eq!(keys, vec!["a2", "n", "se", "t"]);
    assert_eq!(cmd("DBSIZE").query_async::<i64>(&mut c).await.unwrap(), 4);
    assert!(cmd("RANDOMKEY").query_async::<Option<String>>(&mut c).await.unwrap().is_some());
    assert_eq!(c.del::<_, i64>(&["a2", "n", "nothing"]).await.unwrap(), 2);
    let _: () = cmd("FLUSHDB").query_async(&mut c).await.unwrap();
    assert_eq!(cmd("DBSIZE").query_async::<i64>(&mut c).await.unwrap(), 0);
    s.stop().await;
}

#[tokio::test]
async fn counters_and_exact_redis_errors() {
    let (s, addr) = resp_server(|_| {}).await;
    let mut c = conn(&addr).await;
    assert_eq!(c.incr::<_, _, i64>("n", 1).await.unwrap(), 1);
    assert_eq!(cmd("INCRBY").arg("n").arg(10).query_async::<i64>(&mut c).await.unwrap(), 11);
    assert_eq!(cmd("DECR").arg("n").query_async::<i64>(&mut c).await.unwrap(), 10);
    assert_eq!(cmd("DECRBY").arg("n").arg(4).query_async::<i64>(&mut c).await.unwrap(), 6);
    assert_eq!(cmd("INCRBYFLOAT").arg("f").arg("10.5").query_async::<String>(&mut c).await.unwrap(), "10.5");
    let _: () = c.set("s", "abc").await.unwrap();
    assert_eq!(err_of::<i64>(&mut c, cmd("INCR").arg("s")).await, "ERR value is not an integer or out of range");
    assert_eq!(
        err_of::<i64>(&mut c, cmd("INCRBY").arg("n").arg("x")).await,
        "ERR value is not an integer or out of range"
    );
    let _: () = c.set("max", i64::MAX).await.unwrap();
    assert_eq!(err_of::<i64>(&mut c, cmd("INCR").arg("max")).await, "ERR increment or decrement would overflow");
    assert_eq!(err_of::<String>(&mut c, cmd("INCRBYFLOAT").arg("s").arg(1)).await, "ERR value is not a valid float");
    assert_eq!(err_of::<()>(&mut c, &mut cmd("GET")).await, "ERR wrong number of arguments for 'get' command");
    assert_eq!(
        err_of::<()>(&mut c, cmd("SET").arg("k").arg("v").arg("EX").arg(0)).await,
        "ERR invalid expire time in 'set' command"
    );
    assert_eq!(err_of::<()>(&mut c, cmd("SET").arg("k").arg("v").arg("NX").arg("XX")).await, "ERR syntax error");
    assert_eq!(
        err_of::<()>(&mut c, cmd("SET").arg("k").arg("v").arg("EX").arg("soon")).await,
        "ERR value is not an integer or out of range"
    );
    assert_eq!(err_of::<()>(&mut c, cmd("MSET").arg("a")).await, "ERR wrong number of arguments for 'mset' command");
    assert_eq!(err_of::<()>(&mut c, cmd("SELECT").arg(16)).await, "ERR DB index is out of range");
    let unknown = err_of::<()>(&mut c, cmd("FOO").arg("bar")).await;
    assert_eq!(unknown, "ERR unknown command 'FOO', with args beginning with: 'bar'");
    s.stop().await;
}

#[tokio::test]
async fn pipelines_and_binary_values() {
    let (s, addr) = resp_server(|_| {}).await;
    let mut c = conn(&addr).await;
    let value: Vec<u8> = (0..=255u8).cycle().take(100_000).collect();
    let key = b"bin\x00\xffkey".to_vec();
    let mut pipe = redis::pipe();
    for i in 0..500 {
        pipe.cmd("SET").arg(format!("p{i}")).arg(i).ignore();
    }
    pipe.cmd("SET").arg(&key).arg(&value).ignore();
    pipe.cmd("INCR").arg("p7").cmd("GET").arg("p499").cmd("GET").arg(&key).cmd("DBSIZE");
    let (incr, last, bin, size): (i64, String, Vec<u8>, i64) = pipe.query_async(&mut c).await.unwrap();
    assert_eq!((incr, last.as_str(), size), (8, "499", 501));
    assert_eq!(bin, value);
    // Raw pipelining: every complete command in one packet is answered, in order.
    let reply =
        raw(&addr, b"*1\r\n$4\r\nPING\r\nPING\r\n*2\r\n$4\r\nECHO\r\n$2\r\nhi\r\n*2\r\n$3\r\nGET\r\n$2\r\np1\r\n")
            .await;
    assert_eq!(reply, b"+PONG\r\n+PONG\r\n$2\r\nhi\r\n$1\r\n1\r\n");
    s.stop().await;
}

#[tokio::test]
async fn malformed_and_oversized_frames_close_the_connection() {
    let (s, addr) = resp_server(|c| {
        c.resp.max_bulk_bytes = ByteSize(1024);
        c.resp.max_args = 8;
        c.resp.max_inline_bytes = ByteSize(128);
        c.resp.max_pending_bytes = ByteSize(1 << 20);
    })
    .await;
    let cases: &[(&[u8], &str)] = &[
        (b"*1\r\n$2000\r\n", "-ERR Protocol error: invalid bulk length\r\n"),
        (b"*9\r\n", "-ERR Protocol error: invalid multibulk length\r\n"),
        (b"*x\r\n", "-ERR Protocol error: invalid multibulk length\r\n"),
        (b"*1\r\n+PING\r\n", "-ERR Protocol error: expected '$', got '+'\r\n"),
        (b"SET \"unterminated\r\n", "-ERR Protocol error: unbalanced quotes in request\r\n"),
        (&[b'A'; 300], "-ERR Protocol error: too big inline request\r\n"),
    ];
    for (input, expected) in cases {
        let reply = raw(&addr, input).await;
        assert_eq!(String::from_utf8_lossy(&reply), *expected, "input {:?}", String::from_utf8_lossy(input));
    }
    // Commands before the bad frame are answered first.
    let reply = raw(&addr, b"PING\r\n*1\r\n$-5\r\n").await;
    assert_eq!(reply, b"+PONG\r\n-ERR Protocol error: invalid bulk length\r\n");
    // The server is still fine for everyone else.
    let mut c = conn(&addr).await;
    assert_eq!(cmd("PING").query_async::<String>(&mut c).await.unwrap(), "PONG");
    s.stop().await;
}

#[tokio::test]
async fn client_disconnecting_mid_frame_leaves_no_trace() {
    let (s, addr) = resp_server(|_| {}).await;
    {
        let mut raw_conn = TcpStream::connect(&addr).await.unwrap();
        raw_conn.write_all(b"*3\r\n$3\r\nSET\r\n$4\r\nhalf\r\n$100\r\nonly-part").await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    } // dropped mid-frame
    let mut c = conn(&addr).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(c.get::<_, Option<String>>("half").await.unwrap(), None);
    let list: String = cmd("CLIENT").arg("LIST").query_async(&mut c).await.unwrap();
    assert_eq!(list.lines().count(), 1, "the dropped client is gone: {list}");
    s.stop().await;
}

#[tokio::test]
async fn server_commands() {
    let (s, addr) = resp_server(|_| {}).await;
    let mut c = conn(&addr).await;
    assert_eq!(cmd("PING").query_async::<String>(&mut c).await.unwrap(), "PONG");
    assert_eq!(cmd("PING").arg("hey").query_async::<String>(&mut c).await.unwrap(), "hey");
    assert_eq!(cmd("ECHO").arg("x y").query_async::<String>(&mut c).await.unwrap(), "x y");
    assert_eq!(cmd("SELECT").arg(0).query_async::<String>(&mut c).await.unwrap(), "OK");
    let auth = err_of::<()>(&mut c, cmd("AUTH").arg("secret")).await;
    assert!(auth.starts_with("ERR AUTH <password> called without any password configured"), "{auth}");
    let _: () = cmd("CLIENT").arg("SETNAME").arg("worker-1").query_async(&mut c).await.unwrap();
    assert_eq!(cmd("CLIENT").arg("GETNAME").query_async::<String>(&mut c).await.unwrap(), "worker-1");
    let id: i64 = cmd("CLIENT").arg("ID").query_async(&mut c).await.unwrap();
    let list: String = cmd("CLIENT").arg("LIST").query_async(&mut c).await.unwrap();
    assert!(list.contains(&format!("id={id} ")) && list.contains("name=worker-1"), "{list}");
    let _: () = c.set("k", "v").await.unwrap();
    let info: String = cmd("INFO").query_async(&mut c).await.unwrap();
    for section in ["# Server", "# Clients", "# Memory", "# Persistence", "# Stats", "# Keyspace"] {
        assert!(info.contains(section), "INFO has {section}");
    }
    assert!(info.contains("db0:keys=1,expires=0"), "{info}");
    let mem: String = cmd("INFO").arg("memory").query_async(&mut c).await.unwrap();
    assert!(mem.contains("used_memory:") && !mem.contains("# Server"));
    let cfg: Vec<String> = cmd("CONFIG").arg("GET").arg("maxmemory*").query_async(&mut c).await.unwrap();
    assert_eq!(cfg[0], "maxmemory");
    assert!(cfg.contains(&"maxmemory-policy".to_string()));
    let cfg: Vec<String> = cmd("CONFIG").arg("GET").arg("appendonly").query_async(&mut c).await.unwrap();
    assert_eq!(cfg, vec!["appendonly", "yes"]);
    let count: i64 = cmd("COMMAND").arg("COUNT").query_async(&mut c).await.unwrap();
    assert!(count > 40);
    let docs: RV = cmd("COMMAND").arg("DOCS").arg("get").query_async(&mut c).await.unwrap();
    assert!(format!("{docs:?}").contains("Returns the string value of a key."), "{docs:?}");
    let info: RV = cmd("COMMAND").arg("INFO").arg("get").arg("nosuch").query_async(&mut c).await.unwrap();
    match info {
        RV::Array(items) => assert_eq!(items.len(), 2),
        other => panic!("{other:?}"),
    }
    let time: Vec<String> = cmd("TIME").query_async(&mut c).await.unwrap();
    assert!(time[0].parse::<u64>().unwrap() > 1_600_000_000);
    let reply = raw(&addr, b"QUIT\r\nPING\r\n").await;
    assert_eq!(reply, b"+OK\r\n", "QUIT answers OK and closes before later commands");
    s.stop().await;
}

#[tokio::test]
async fn resp3_after_hello_3() {
    let (s, addr) = resp_server(|_| {}).await;
    let reply = raw(&addr, b"HELLO 3\r\nGET missing\r\nCONFIG GET maxmemory\r\nHELLO 4\r\n").await;
    let text = String::from_utf8_lossy(&reply);
    assert!(text.starts_with("%7\r\n$6\r\nserver\r\n$5\r\nredis\r\n"), "{text}");
    assert!(text.contains("$5\r\nproto\r\n:3\r\n"), "{text}");
    assert!(text.contains("_\r\n%1\r\n$9\r\nmaxmemory\r\n$1\r\n0\r\n"), "nil and map in RESP3: {text}");
    assert!(text.ends_with("-NOPROTO unsupported protocol version\r\n"), "{text}");
    // A RESP3 client library works end to end.
    let client = redis::Client::open(format!("redis://{addr}/?protocol=resp3")).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = c.set("k", "v").await.unwrap();
    assert_eq!(c.get::<_, String>("k").await.unwrap(), "v");
    s.stop().await;
}

#[tokio::test]
async fn connection_limit_and_idle_timeout() {
    let (s, addr) = resp_server(|c| {
        c.resp.max_connections = 2;
        c.resp.idle_timeout_secs = 1;
    })
    .await;
    let mut a = TcpStream::connect(&addr).await.unwrap();
    let mut b = TcpStream::connect(&addr).await.unwrap();
    a.write_all(b"PING\r\n").await.unwrap();
    b.write_all(b"PING\r\n").await.unwrap();
    let mut buf = [0u8; 64];
    assert_eq!(a.read(&mut buf).await.unwrap(), 7);
    assert_eq!(b.read(&mut buf).await.unwrap(), 7);
    let third = raw(&addr, b"PING\r\n").await;
    assert_eq!(third, b"-ERR max number of clients reached\r\n");
    // Idle clients are closed after the timeout, which frees their slots.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(a.read(&mut buf).await.unwrap(), 0, "idle connection closed");
    assert_eq!(raw(&addr, b"PING\r\n").await, b"+PONG\r\n");
    s.stop().await;
}

#[tokio::test]
async fn output_buffer_limit_disconnects_the_client() {
    let (s, addr) = resp_server(|c| c.resp.max_output_bytes = ByteSize(64 * 1024)).await;
    let mut c = conn(&addr).await;
    let big = "x".repeat(10_000);
    for i in 0..20 {
        let _: () = c.set(format!("k{i}"), &big).await.unwrap();
    }
    let reply = raw(&addr, b"MGET k0 k1 k2 k3 k4 k5 k6 k7 k8 k9 k10 k11 k12 k13 k14 k15 k16 k17 k18 k19\r\n").await;
    assert!(reply.is_empty(), "the client is dropped instead of buffering {} bytes", reply.len());
    s.stop().await;
}

#[tokio::test]
async fn writes_reach_the_same_engine_as_http() {
    let (s, addr) = resp_server(|_| {}).await;
    let mut c = conn(&addr).await;
    let _: () = c.set("shared", "from-resp").await.unwrap();
    let (status, body) = s.get("/kv/get/shared").await;
    assert_eq!((status, body["value"].as_str()), (200, Some("from-resp")));
    s.post("/kv/set", serde_json::json!({"key": "shared", "value": "from-http"})).await;
    assert_eq!(c.get::<_, String>("shared").await.unwrap(), "from-http");
    s.stop().await;
}

#[tokio::test]
async fn redis_cli_can_set_and_get() {
    if std::process::Command::new("redis-cli").arg("--version").output().is_err() {
        assert!(std::env::var("CI").is_err(), "redis-cli must be installed in CI (.ci/run installs redis-tools)");
        eprintln!("redis-cli not installed; skipping (install Debian redis-tools)");
        return;
    }
    let (s, addr) = resp_server(|_| {}).await;
    let cli = |args: &'static [&'static str]| {
        let (host, port) = addr.rsplit_once(':').map(|(h, p)| (h.to_string(), p.to_string())).unwrap();
        tokio::task::spawn_blocking(move || {
            let out =
                std::process::Command::new("redis-cli").args(["-h", &host, "-p", &port]).args(args).output().unwrap();
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        })
    };
    assert_eq!(cli(&["SET", "cli-key", "hello world"]).await.unwrap(), "OK");
    assert_eq!(cli(&["GET", "cli-key"]).await.unwrap(), "hello world");
    assert_eq!(cli(&["INCR", "cli-counter"]).await.unwrap(), "1");
    s.stop().await;
}
