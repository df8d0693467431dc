//! Hostile input and exhaustion: browser pages, slow clients, connection floods, descriptor limits.

mod common;

use std::time::{Duration, Instant};

use common::process::ServerProcess;
use common::start_with;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads what the peer sends until it closes (`true`) or goes quiet for `quiet` (`false`).
async fn read_until_closed(s: &mut TcpStream, quiet: Duration) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(quiet, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (out, true),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => return (out, false),
        }
    }
}

/// A web page cannot drive the API: cross-origin requests (the `fetch(..., {mode: 'no-cors'})` of the
/// report, an `<img>` GET), form and text bodies, a rebound DNS name and WebSocket upgrades from other
/// origins are all refused before anything runs; an allowed origin gets CORS headers.
#[tokio::test]
async fn browser_requests_from_other_origins_are_refused() {
    let s = start_with(|c| c.http.cors_origins = vec!["https://app.example.com".into()]).await;
    s.post("/kv/set", json!({"key": "k", "value": "v"})).await;
    // What the browser sends for fetch('http://127.0.0.1:PORT/kv/flushall', {method:'POST', mode:'no-cors'}).
    let r = s
        .http
        .post(s.url("/kv/flushall"))
        .header("origin", "https://evil.example")
        .header("sec-fetch-site", "cross-site")
        .header("sec-fetch-mode", "no-cors")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "FORBIDDEN_ORIGIN");
    assert_eq!(s.get("/kv/get/k").await, (200, json!({"key": "k", "value": "v"})), "nothing was flushed");
    // An <img src> GET sends no Origin, only Sec-Fetch-Site.
    let r = s.http.get(s.url("/kv/get/k")).header("sec-fetch-site", "cross-site").send().await.unwrap();
    assert_eq!(r.status(), 403);
    // A text/plain or form body (what a page may send without a preflight) is refused with 415.
    for ctype in ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"] {
        let r = s
            .http
            .post(s.url("/kv/set"))
            .header("content-type", ctype)
            .body(r#"{"key":"k","value":"x"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 415, "{ctype}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "UNSUPPORTED_MEDIA_TYPE");
    }
    let r = s.http.post(s.url("/kv/set")).body(r#"{"key":"k","value":"x"}"#).send().await.unwrap();
    assert_eq!(r.status(), 415, "no Content-Type at all");
    // DNS rebinding: the page's own name in Host.
    let r = s.http.get(s.url("/kv/get/k")).header("host", "rebind.evil.example").send().await.unwrap();
    assert_eq!(r.status(), 403);
    // A WebSocket upgrade from another origin.
    let addr = s.server.as_ref().unwrap().http_addr;
    let mut ws = TcpStream::connect(addr).await.unwrap();
    let upgrade = format!(
        "GET /pubsub/ws?topics=a HTTP/1.1\r\nHost: {addr}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin: https://evil.example\r\n\r\n"
    );
    ws.write_all(upgrade.as_bytes()).await.unwrap();
    let (answer, _) = read_until_closed(&mut ws, Duration::from_millis(500)).await;
    assert!(answer.starts_with(b"HTTP/1.1 403"), "{}", String::from_utf8_lossy(&answer));
    // The allowed origin: a preflight and a real request with CORS headers.
    let r = s
        .http
        .request(reqwest::Method::OPTIONS, s.url("/kv/set"))
        .header("origin", "https://app.example.com")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    assert_eq!(r.headers()["access-control-allow-origin"], "https://app.example.com");
    let r = s
        .http
        .post(s.url("/kv/set"))
        .header("origin", "https://app.example.com")
        .json(&json!({"key": "k2", "value": "v"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["access-control-allow-origin"], "https://app.example.com");
    s.stop().await;
}

/// The RESP port closes a connection that starts like HTTP, as Redis does.
#[tokio::test]
async fn http_sent_to_the_resp_port_closes_the_connection() {
    let s = start_with(|_| {}).await;
    let addr = s.server.as_ref().unwrap().resp_addr.unwrap();
    let mut c = TcpStream::connect(addr).await.unwrap();
    c.write_all(b"POST /kv/flushall HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\nSET k v\r\n")
        .await
        .unwrap();
    let (answer, closed) = read_until_closed(&mut c, Duration::from_secs(2)).await;
    assert!(closed, "the connection was closed");
    assert!(answer.is_empty(), "nothing answered: {}", String::from_utf8_lossy(&answer));
    let mut c = TcpStream::connect(addr).await.unwrap();
    c.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").await.unwrap();
    let (_, closed) = read_until_closed(&mut c, Duration::from_secs(2)).await;
    assert!(closed, "the Host: line closed it");
    s.stop().await;
}

/// A client that sends its request head a byte at a time (slowloris) or sits idle is cut after
/// `http.header_timeout_secs`; one over `http.max_connections` is answered 503 at once.
#[tokio::test]
async fn slow_and_surplus_http_clients_are_cut() {
    let s = start_with(|c| {
        c.http.header_timeout_secs = 2;
        c.http.max_connections = 4;
    })
    .await;
    let addr = s.server.as_ref().unwrap().http_addr;
    let mut slow = TcpStream::connect(addr).await.unwrap();
    let started = Instant::now();
    let head = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ";
    let mut closed = false;
    for i in 0..200 {
        if slow.write_all(&head[i % head.len()..i % head.len() + 1]).await.is_err() {
            closed = true;
            break;
        }
        let mut buf = [0u8; 256];
        if let Ok(Ok(0) | Err(_)) = tokio::time::timeout(Duration::from_millis(100), slow.read(&mut buf)).await {
            closed = true;
            break;
        }
    }
    assert!(closed, "the slow client was cut");
    assert!(started.elapsed() < Duration::from_secs(8), "within the header timeout: {:?}", started.elapsed());
    // Idle keep-alive connections are cut too, and free their place.
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(TcpStream::connect(addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut surplus = TcpStream::connect(addr).await.unwrap();
    let (answer, closed) = read_until_closed(&mut surplus, Duration::from_secs(2)).await;
    assert!(closed && answer.starts_with(b"HTTP/1.1 503"), "{}", String::from_utf8_lossy(&answer));
    assert!(String::from_utf8_lossy(&answer).contains("TOO_MANY_CONNECTIONS"));
    for c in idle.iter_mut() {
        let (_, closed) = read_until_closed(c, Duration::from_secs(6)).await;
        assert!(closed, "an idle connection is closed after the header timeout");
    }
    assert_eq!(s.get("/health").await.0, 200, "places are free again");
    s.stop().await;
}

/// 2,000 idle connections against a server limited to 1,024 descriptors: those past the caps are refused
/// clearly, and the clients already connected keep writing (WAL rotations and a snapshot included, which
/// need descriptors of their own).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_flood_under_a_low_descriptor_limit_leaves_writes_working() {
    let _ = rlimit::increase_nofile_limit(8192);
    let dir = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::start_with_nofile(
        dir.path(),
        &[
            "--config",
            &write_config(dir.path(), "persistence:\n  segment_bytes: 64kb\nhttp:\n  header_timeout_secs: 300\n"),
        ],
        1024,
    );
    let resp = server.resp_addr.clone().unwrap();
    let http_addr = server.http_addr.clone();
    let client = redis::Client::open(format!("redis://{resp}/")).unwrap();
    let mut writer = client.get_multiplexed_async_connection().await.unwrap();
    let http = reqwest::Client::builder().pool_max_idle_per_host(1).build().unwrap();
    assert_eq!(http.get(format!("http://{http_addr}/health")).send().await.unwrap().status(), 200);
    let mut flood = Vec::new();
    let (mut refused_resp, mut refused_http) = (0, 0);
    let mut unconnectable = 0;
    for i in 0..2000 {
        let target = if i % 2 == 0 { &resp } else { &http_addr };
        match tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(target)).await {
            Ok(Ok(s)) => flood.push((i % 2 == 0, s)),
            _ => {
                unconnectable += 1;
                if unconnectable > 5 {
                    break;
                }
            }
        }
    }
    // A server out of descriptors stops accepting: connections then hang in the backlog.
    assert_eq!(unconnectable, 0, "the server kept accepting (and refusing) connections");
    for (is_resp, s) in flood.iter_mut() {
        let mut buf = [0u8; 512];
        if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(2), s.read(&mut buf)).await
            && n > 0
        {
            let text = String::from_utf8_lossy(&buf[..n]);
            if *is_resp {
                assert!(text.starts_with("-ERR max number of clients reached"), "{text}");
                refused_resp += 1;
            } else {
                assert!(text.starts_with("HTTP/1.1 503"), "{text}");
                refused_http += 1;
            }
        }
    }
    assert!(refused_resp > 0 && refused_http > 0, "refused: resp {refused_resp}, http {refused_http}");
    let value = "v".repeat(1000);
    let within = Duration::from_secs(30);
    let writes = async {
        for i in 0..300 {
            let _: () = redis::cmd("SET").arg(format!("k{i}")).arg(&value).query_async(&mut writer).await.unwrap();
        }
    };
    tokio::time::timeout(within, writes).await.expect("writes go on under the flood");
    let snap = tokio::time::timeout(within, http.post(format!("http://{http_addr}/snapshot")).send())
        .await
        .expect("the snapshot request is served")
        .unwrap();
    assert_eq!(snap.status(), 200, "{}", snap.text().await.unwrap_or_default());
    let writes = async {
        for i in 300..400 {
            let _: () = redis::cmd("SET").arg(format!("k{i}")).arg(&value).query_async(&mut writer).await.unwrap();
        }
    };
    tokio::time::timeout(within, writes).await.expect("writes go on after the snapshot");
    let health = tokio::time::timeout(within, http.get(format!("http://{http_addr}/health")).send())
        .await
        .expect("health is served")
        .unwrap();
    let health: Value = health.json().await.unwrap();
    assert_eq!(health["status"], "ok", "{health}");
    drop(flood);
    server.kill9();
    let server = ServerProcess::start(dir.path(), &[]);
    let client = redis::Client::open(format!("redis://{}/", server.resp_addr.clone().unwrap())).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let n: i64 = redis::cmd("DBSIZE").query_async(&mut c).await.unwrap();
    assert_eq!(n, 400);
}

fn write_config(dir: &std::path::Path, yaml: &str) -> String {
    let path = dir.join("synap.yaml");
    std::fs::write(&path, yaml).unwrap();
    path.to_string_lossy().into_owned()
}

/// MULTI queues and WATCH sets are bounded per client: past the limit the command is refused (and the
/// transaction aborts at EXEC), and the queued bytes count toward the query buffer limit.
#[tokio::test]
async fn multi_queues_and_watched_keys_are_bounded() {
    let s = start_with(|c| {
        c.resp.max_multi_commands = 3;
        c.resp.max_watched_keys = 4;
        c.resp.max_pending_bytes = synap_server::config::ByteSize(64 * 1024);
    })
    .await;
    let addr = s.server.as_ref().unwrap().resp_addr.unwrap();
    let mut c = TcpStream::connect(addr).await.unwrap();
    c.write_all(
        b"WATCH a b c\r\nWATCH c d e\r\nWATCH d\r\nMULTI\r\nSET a 1\r\nSET b 2\r\nSET c 3\r\nSET d 4\r\nEXEC\r\n",
    )
    .await
    .unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while answer.iter().filter(|&&b| b == b'\n').count() < 9 {
        let n = tokio::time::timeout(Duration::from_secs(10), c.read(&mut buf)).await.unwrap().unwrap();
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&answer));
        answer.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&answer);
    let lines: Vec<&str> = text.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.len(), 9, "{text}");
    assert_eq!(lines[0], "+OK");
    assert!(lines[1].starts_with("-ERR too many watched keys"), "{text}");
    assert_eq!(&lines[2..7], ["+OK", "+OK", "+QUEUED", "+QUEUED", "+QUEUED"], "{text}");
    assert!(lines[7].starts_with("-ERR too many commands in MULTI"), "{text}");
    assert!(lines[8].starts_with("-EXECABORT"), "{text}");
    // A transaction whose queued commands outgrow the query buffer limit closes the connection.
    let mut c = TcpStream::connect(addr).await.unwrap();
    let value = "v".repeat(30_000);
    let input = format!("MULTI\r\nSET a {value}\r\nSET b {value}\r\nSET c {value}\r\n");
    c.write_all(input.as_bytes()).await.unwrap();
    let (answer, closed) = read_until_closed(&mut c, Duration::from_secs(2)).await;
    assert!(closed, "{}", String::from_utf8_lossy(&answer));
    s.stop().await;
}

/// A reply past the output limit is refused before it is built (whole collections, KEYS), and a SCAN
/// whose COUNT would overflow it stops early with a cursor to go on from.
#[tokio::test]
async fn replies_past_the_output_limit_are_refused_before_they_are_built() {
    let s = start_with(|c| c.resp.max_output_bytes = synap_server::config::ByteSize(100 * 1024)).await;
    let addr = s.server.as_ref().unwrap().resp_addr.unwrap();
    let mut c =
        redis::Client::open(format!("redis://{addr}/")).unwrap().get_multiplexed_async_connection().await.unwrap();
    let mut pipe = redis::pipe();
    for i in 0..5000 {
        pipe.cmd("SADD").arg("big").arg(format!("member-{i:020}")).ignore();
        pipe.cmd("SET").arg(format!("key-{i:020}")).arg("v").ignore();
    }
    let _: () = pipe.query_async(&mut c).await.unwrap();
    let err = redis::cmd("SMEMBERS").arg("big").query_async::<Vec<String>>(&mut c).await.unwrap_err();
    assert!(err.to_string().contains("output limit"), "{err}");
    let err = redis::cmd("KEYS").arg("*").query_async::<Vec<String>>(&mut c).await.unwrap_err();
    assert!(err.to_string().contains("output limit"), "{err}");
    let (cursor, keys): (u64, Vec<String>) =
        redis::cmd("SCAN").arg(0).arg("COUNT").arg(1_000_000).query_async(&mut c).await.unwrap();
    assert!(cursor != 0 && !keys.is_empty() && keys.len() < 5001, "cursor {cursor}, {} keys", keys.len());
    // The connection is still usable, and small replies pass.
    let n: i64 = redis::cmd("SCARD").arg("big").query_async(&mut c).await.unwrap();
    assert_eq!(n, 5000);
    let some: Vec<String> = redis::cmd("SRANDMEMBER").arg("big").arg(10).query_async(&mut c).await.unwrap();
    assert_eq!(some.len(), 10);
    s.stop().await;
}

/// WebSocket sessions keep their connection's place under `http.max_connections` after the upgrade.
#[tokio::test]
async fn websocket_sessions_count_toward_the_connection_limit() {
    let s = start_with(|c| c.http.max_connections = 2).await;
    let addr = s.server.as_ref().unwrap().http_addr;
    let mut sessions = Vec::new();
    for _ in 0..2 {
        let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/pubsub/ws?topics=a")).await.unwrap();
        sessions.push(ws);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut surplus = TcpStream::connect(addr).await.unwrap();
    let (answer, closed) = read_until_closed(&mut surplus, Duration::from_secs(2)).await;
    assert!(closed && answer.starts_with(b"HTTP/1.1 503"), "{}", String::from_utf8_lossy(&answer));
    drop(sessions);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(s.get("/health").await.0, 200, "the places are free once the sessions close");
    s.stop().await;
}
