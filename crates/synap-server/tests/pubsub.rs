//! Pub/Sub across protocols: HTTP publish reaches RESP, WebSocket and SSE subscribers and the reverse;
//! RESP subscribed-mode rules; slow subscribers; subscribers coming and going while messages flow.

mod common;

use std::time::Duration;

use common::start_with;
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message as Ws;

/// Reads from a raw RESP connection until `want` appears in the accumulated text (or panics on timeout).
async fn read_until(s: &mut TcpStream, acc: &mut String, want: &str) {
    let mut buf = [0u8; 65536];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !acc.contains(want) {
        let Ok(n) = tokio::time::timeout_at(deadline, s.read(&mut buf)).await else {
            panic!("timed out waiting for {want:?}; got {acc:?}");
        };
        let n = n.unwrap();
        assert!(n > 0, "connection closed while waiting for {want:?}; got {acc:?}");
        acc.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
}

async fn sse_next(resp: &mut reqwest::Response, acc: &mut String, want: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !acc.contains(want) {
        let chunk =
            tokio::time::timeout_at(deadline, resp.chunk()).await.expect("SSE timed out").unwrap().expect("SSE ended");
        acc.push_str(&String::from_utf8_lossy(&chunk));
    }
}

async fn ws_next<S>(ws: &mut S) -> Value
where
    S: futures_util::Stream<Item = Result<Ws, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
            Ok(Some(Ok(Ws::Text(t)))) => return serde_json::from_str(&t).unwrap(),
            Ok(Some(Ok(_))) => continue,
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test]
async fn one_message_reaches_every_protocol() {
    let s = start_with(|_| {}).await;
    let srv = s.server.as_ref().unwrap();
    let (resp_addr, http_addr) = (srv.resp_addr.unwrap(), srv.http_addr);
    // RESP: an exact channel and a Redis glob pattern.
    let mut sub = TcpStream::connect(resp_addr).await.unwrap();
    sub.write_all(b"SUBSCRIBE orders.eu.created\r\nPSUBSCRIBE orders.*\r\n").await.unwrap();
    let mut acc = String::new();
    read_until(&mut sub, &mut acc, "psubscribe").await;
    assert!(acc.starts_with("*3\r\n$9\r\nsubscribe\r\n$17\r\norders.eu.created\r\n:1\r\n"), "{acc:?}");
    // WebSocket and SSE with topic wildcards.
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("ws://{http_addr}/pubsub/ws?topics=orders.*.created,audit.%23"))
            .await
            .unwrap();
    let mut sse = s.http.get(s.url("/pubsub/sse?topics=orders.%23")).send().await.unwrap();
    assert_eq!(sse.status(), 200);
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Published over HTTP: one RESP message, one RESP pmessage, WS, SSE.
    let (status, body) = s.post("/pubsub/orders.eu.created/publish", json!({"payload": "o-1"})).await;
    assert_eq!((status, body), (200, json!({"subscribers_matched": 4})));
    acc.clear();
    read_until(&mut sub, &mut acc, "pmessage").await;
    read_until(&mut sub, &mut acc, "orders.eu.created\r\n$3\r\no-1\r\n*4").await;
    read_until(&mut sub, &mut acc, "$8\r\norders.*\r\n$17\r\norders.eu.created\r\n$3\r\no-1\r\n").await;
    assert!(acc.contains("*3\r\n$7\r\nmessage\r\n$17\r\norders.eu.created\r\n$3\r\no-1\r\n"), "{acc:?}");
    assert!(
        acc.contains("*4\r\n$8\r\npmessage\r\n$8\r\norders.*\r\n$17\r\norders.eu.created\r\n$3\r\no-1\r\n"),
        "{acc:?}"
    );
    assert_eq!(ws_next(&mut ws).await, json!({"type": "message", "topic": "orders.eu.created", "payload": "o-1"}));
    let mut sse_acc = String::new();
    sse_next(&mut sse, &mut sse_acc, "o-1").await;
    assert!(
        sse_acc.contains(
            "event: message\ndata: {\"payload\":\"o-1\",\"topic\":\"orders.eu.created\",\"type\":\"message\"}"
        ),
        "{sse_acc}"
    );
    // Published over RESP: reaches the WebSocket subscriber (audit.# matches zero or more levels).
    let mut publisher = TcpStream::connect(resp_addr).await.unwrap();
    publisher.write_all(b"PUBLISH audit.login.ok hello\r\n").await.unwrap();
    let mut p_acc = String::new();
    read_until(&mut publisher, &mut p_acc, "\r\n").await;
    assert_eq!(p_acc, ":1\r\n");
    assert_eq!(ws_next(&mut ws).await["topic"], "audit.login.ok");
    // Envelope publish and stats.
    let (_, r) = s
        .post(
            "/api/v1/command",
            json!({"command": "pubsub.publish", "payload": {"topic": "nobody.listens", "payload": "x"}}),
        )
        .await;
    assert_eq!(r["payload"], json!({"subscribers_matched": 0}));
    let stats = s.get("/pubsub/stats").await.1;
    assert_eq!((stats["subscribers"].clone(), stats["glob_patterns"].clone()), (json!(3), json!(1)));
    assert!(stats["delivered"].as_u64().unwrap() >= 5);
    assert_eq!(s.http.get(s.url("/pubsub/sse?topics=a.%23.b")).send().await.unwrap().status(), 400);
    assert_eq!(s.http.get(s.url("/pubsub/sse")).send().await.unwrap().status(), 400);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resp_subscribed_mode_rules_and_introspection() {
    let s = start_with(|_| {}).await;
    let addr = s.server.as_ref().unwrap().resp_addr.unwrap();
    let mut c = TcpStream::connect(addr).await.unwrap();
    let mut acc = String::new();
    c.write_all(b"SUBSCRIBE a b\r\nGET k\r\nPING\r\n").await.unwrap();
    read_until(&mut c, &mut acc, "pong").await;
    read_until(&mut c, &mut acc, "pong\r\n$0\r\n\r\n").await;
    assert!(acc.contains(":2\r\n"), "{acc:?}");
    assert!(acc.contains("-ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context\r\n"), "{acc:?}");
    let mut other = TcpStream::connect(addr).await.unwrap();
    let mut o = String::new();
    other.write_all(b"PUBSUB NUMSUB a b zz\r\nPUBSUB CHANNELS\r\nPUBSUB NUMPAT\r\n").await.unwrap();
    read_until(&mut other, &mut o, "$1\r\nb\r\n:0\r\n").await;
    assert!(
        o.starts_with("*6\r\n$1\r\na\r\n:1\r\n$1\r\nb\r\n:1\r\n$2\r\nzz\r\n:0\r\n*2\r\n$1\r\na\r\n$1\r\nb\r\n:0\r\n"),
        "{o:?}"
    );
    acc.clear();
    c.write_all(b"UNSUBSCRIBE\r\n").await.unwrap();
    read_until(&mut c, &mut acc, ":0\r\n").await;
    assert!(acc.contains("unsubscribe") && acc.contains(":1\r\n"), "{acc:?}");
    acc.clear();
    c.write_all(b"GET k\r\n").await.unwrap();
    read_until(&mut c, &mut acc, "\r\n").await;
    assert_eq!(acc, "$-1\r\n", "out of subscribed mode, normal commands work again");
    // RESP3: pushes use '>' and any command is allowed while subscribed.
    let mut r3 = TcpStream::connect(addr).await.unwrap();
    let mut a3 = String::new();
    r3.write_all(b"HELLO 3\r\nSUBSCRIBE news\r\nGET k\r\n").await.unwrap();
    read_until(&mut r3, &mut a3, "_\r\n").await;
    assert!(a3.contains(">3\r\n$9\r\nsubscribe\r\n$4\r\nnews\r\n:1\r\n"), "{a3:?}");
    other.write_all(b"PUBLISH news hi\r\n").await.unwrap();
    read_until(&mut r3, &mut a3, "hi\r\n").await;
    assert!(a3.ends_with(">3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$2\r\nhi\r\n"), "{a3:?}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_subscribers_never_block_the_publisher() {
    let s = start_with(|c| {
        c.pubsub.resp_max_pending_messages = 64;
        c.pubsub.web_max_pending_messages = 4;
    })
    .await;
    let srv = s.server.as_ref().unwrap();
    let (resp_addr, http_addr) = (srv.resp_addr.unwrap(), srv.http_addr);
    // A RESP subscriber that never reads, a WebSocket subscriber that never reads, and a fast one.
    let mut slow = TcpStream::connect(resp_addr).await.unwrap();
    slow.write_all(b"SUBSCRIBE big\r\n").await.unwrap();
    let (_slow_ws, _) =
        tokio_tungstenite::connect_async(format!("ws://{http_addr}/pubsub/ws?topics=big")).await.unwrap();
    let mut fast = TcpStream::connect(resp_addr).await.unwrap();
    fast.write_all(b"SUBSCRIBE big\r\n").await.unwrap();
    let mut acc = String::new();
    read_until(&mut fast, &mut acc, ":1\r\n").await;
    let reader = tokio::spawn(async move {
        let mut total = 0usize;
        let mut buf = vec![0u8; 1 << 20];
        while let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(2), fast.read(&mut buf)).await {
            if n == 0 {
                break;
            }
            total += n;
        }
        total
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let payload = "x".repeat(64 * 1024);
    let mut publisher = TcpStream::connect(resp_addr).await.unwrap();
    let started = std::time::Instant::now();
    let mut buf = [0u8; 64];
    for _ in 0..400 {
        let cmd = format!("*3\r\n$7\r\nPUBLISH\r\n$3\r\nbig\r\n${}\r\n{payload}\r\n", payload.len());
        publisher.write_all(cmd.as_bytes()).await.unwrap();
        let n = tokio::time::timeout(Duration::from_secs(10), publisher.read(&mut buf))
            .await
            .expect("publisher was never blocked")
            .unwrap();
        assert!(n > 0 && buf[0] == b':');
    }
    assert!(started.elapsed() < Duration::from_secs(10));
    let received = reader.await.unwrap();
    assert!(received >= 400 * 64 * 1024, "the fast subscriber got everything: {received}");
    let stats = s.get("/pubsub/stats").await.1;
    assert!(stats["disconnected"].as_u64().unwrap() >= 1, "slow RESP subscriber disconnected: {stats}");
    assert!(stats["dropped"].as_u64().unwrap() >= 1, "slow WebSocket subscriber lost its oldest messages: {stats}");
    // Whatever the kernel had buffered before the cut comes first; then the connection is closed.
    let mut sink = vec![0u8; 1 << 20];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut closed = false;
    while tokio::time::Instant::now() < deadline {
        match tokio::time::timeout_at(deadline, slow.read(&mut sink)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                closed = true;
                break;
            }
            Ok(Ok(_)) => continue,
            Err(_) => break,
        }
    }
    assert!(closed, "the slow RESP subscriber's connection was closed");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_come_and_go_while_messages_flow() {
    let s = start_with(|_| {}).await;
    let srv = s.server.as_ref().unwrap();
    let addr = srv.resp_addr.unwrap();
    let publisher = tokio::spawn(async move {
        let mut c = TcpStream::connect(addr).await.unwrap();
        let mut buf = [0u8; 4096];
        for i in 0..2000 {
            c.write_all(format!("PUBLISH churn.{} m{i}\r\n", i % 7).as_bytes()).await.unwrap();
            let _ = c.read(&mut buf).await.unwrap();
        }
    });
    let mut subs = Vec::new();
    for k in 0..30 {
        subs.push(tokio::spawn(async move {
            for _ in 0..5 {
                let mut c = TcpStream::connect(addr).await.unwrap();
                let line = if k % 2 == 0 {
                    "PSUBSCRIBE churn.*\r\n".to_string()
                } else {
                    format!("SUBSCRIBE churn.{}\r\n", k % 7)
                };
                c.write_all(line.as_bytes()).await.unwrap();
                let mut buf = [0u8; 4096];
                let _ = tokio::time::timeout(Duration::from_millis(30), c.read(&mut buf)).await;
            }
        }));
    }
    for t in subs {
        t.await.unwrap();
    }
    publisher.await.unwrap();
    let mut subscribers = u64::MAX;
    for _ in 0..100 {
        subscribers = s.get("/pubsub/stats").await.1["subscribers"].as_u64().unwrap();
        if subscribers == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(subscribers, 0, "every subscriber that left was unregistered");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyspace_notifications_follow_notify_keyspace_events() {
    let s = start_with(|c| {
        c.pubsub.notify_keyspace_events = "KEA".into();
        c.kv.active_expiry_hz = 50;
    })
    .await;
    let addr = s.server.as_ref().unwrap().resp_addr.unwrap();
    let mut sub = TcpStream::connect(addr).await.unwrap();
    sub.write_all(b"PSUBSCRIBE __keyspace@0__:* __keyevent@0__:*\r\n").await.unwrap();
    let mut acc = String::new();
    read_until(&mut sub, &mut acc, ":2\r\n").await;
    acc.clear();
    let mut c = TcpStream::connect(addr).await.unwrap();
    c.write_all(b"SET k v\r\nINCR n\r\nDEL k missing\r\nSET t x PX 30\r\n").await.unwrap();
    read_until(&mut sub, &mut acc, "__keyevent@0__:del\r\n$1\r\nk\r\n").await;
    assert!(acc.contains("$16\r\n__keyspace@0__:k\r\n$3\r\nset\r\n"), "{acc:?}");
    assert!(acc.contains("$21\r\n__keyevent@0__:incrby\r\n$1\r\nn\r\n"), "{acc:?}");
    assert!(!acc.contains("missing"), "no event for a key that was not there");
    // The key with a 30 ms TTL expires by itself: an `expired` event.
    read_until(&mut sub, &mut acc, "__keyevent@0__:expired\r\n$1\r\nt\r\n").await;
    s.stop().await;
}
