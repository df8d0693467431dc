//! The client against an in-process server on ephemeral ports, over RESP and HTTP.

use synap_client::{Client, ClientError, HttpClient, SetOptions, Value};
use synap_server::{Config, RunningServer};

async fn server() -> (RunningServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config {
        http_addr: "127.0.0.1:0".parse().unwrap(),
        resp_addr: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().to_path_buf(),
        ..Config::default()
    };
    (RunningServer::start(cfg).await.unwrap(), dir)
}

#[tokio::test]
async fn resp_client_typed_methods_pool_and_errors() {
    let (s, _dir) = server().await;
    let c = Client::connect(s.resp_addr.unwrap().to_string(), 4).await.unwrap();
    c.set("a", "1").await.unwrap();
    assert_eq!(c.get("a").await.unwrap().as_deref(), Some(&b"1"[..]));
    assert_eq!(c.get("missing").await.unwrap(), None);
    assert!(!c.set_with("a", "2", &SetOptions { only_if_absent: true, ..Default::default() }).await.unwrap());
    assert!(c.set_with("t", "x", &SetOptions { ttl_ms: Some(60_000), ..Default::default() }).await.unwrap());
    assert!(matches!(c.ttl_ms("t").await.unwrap(), Some(Some(ms)) if ms > 50_000));
    assert_eq!(c.ttl_ms("a").await.unwrap(), Some(None));
    assert_eq!(c.ttl_ms("nope").await.unwrap(), None);
    assert_eq!(c.incr_by("n", 5).await.unwrap(), 5);
    c.mset(&[(b"m1", b"x"), (b"m2", b"y")]).await.unwrap();
    assert_eq!(c.mget(&[b"m1", b"zz"]).await.unwrap(), vec![Some(bytes::Bytes::from("x")), None]);
    assert_eq!(c.exists(&[b"m1", b"m2"]).await.unwrap(), 2);
    assert!(c.expire_ms("m1", 100_000).await.unwrap());
    assert_eq!(c.del(&[b"m1", b"m2"]).await.unwrap(), 2);
    let err = c.incr_by("t", 1).await.unwrap_err();
    assert!(matches!(&err, ClientError::Server { code, .. } if code == "ERR"), "{err}");
    // Concurrent callers share a bounded pool.
    let mut tasks = Vec::new();
    for i in 0..32 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move { c.incr_by("shared", 1).await.map(|_| i) }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(c.get("shared").await.unwrap().as_deref(), Some(&b"32"[..]));
    // A full scan sees every key.
    let mut cursor = 0;
    let mut seen = 0;
    loop {
        let page = c.scan(cursor, None, 3).await.unwrap();
        seen += page.keys.len();
        cursor = page.cursor;
        if cursor == 0 {
            break;
        }
    }
    assert_eq!(seen as i64, c.dbsize().await.unwrap());
    let replies = c
        .pipeline(vec![vec![b"PING".to_vec()], vec![b"GET".to_vec(), b"a".to_vec()], vec![b"NOPE".to_vec()]])
        .await
        .unwrap();
    assert_eq!(replies[0], Value::Simple("PONG".into()));
    assert_eq!(replies[1], Value::Bulk(bytes::Bytes::from("1")));
    assert!(matches!(&replies[2], Value::Error(e) if e.starts_with("ERR unknown command")));
    c.flushall().await.unwrap();
    assert_eq!(c.dbsize().await.unwrap(), 0);
    s.shutdown().await;
}

#[tokio::test]
async fn unreachable_server_is_a_connect_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let err = Client::connect(addr.to_string(), 1).await.err().expect("no server");
    assert!(matches!(err, ClientError::Connect { .. }), "{err}");
}

#[tokio::test]
async fn http_client_routes_and_envelope() {
    let (s, _dir) = server().await;
    let h = HttpClient::new(format!("http://{}", s.http_addr));
    assert_eq!(h.health().await.unwrap()["status"], "ok");
    assert!(h.set(b"k", b"v", Some(100)).await.unwrap());
    assert!(h.set(b"\xff\x00", b"\x00\x01\xfe", None).await.unwrap());
    assert_eq!(h.get(b"k").await.unwrap().as_deref(), Some(&b"v"[..]));
    assert_eq!(h.get(b"\xff\x00").await.unwrap().as_deref(), Some(&b"\x00\x01\xfe"[..]));
    assert_eq!(h.get(b"nope").await.unwrap(), None);
    assert_eq!(h.incr(b"n", 3).await.unwrap(), 3);
    let err = h.incr(b"k", 1).await.unwrap_err();
    assert!(matches!(&err, ClientError::Http { status: 400, code, .. } if code == "NOT_INTEGER"), "{err}");
    assert_eq!(h.scan(Some("k"), 0, 100).await.unwrap().keys, vec![bytes::Bytes::from("k")]);
    assert_eq!(h.del(b"k").await.unwrap(), 1);
    assert_eq!(h.stats().await.unwrap()["keys"], 2);
    let v = h.command("kv.mget", serde_json::json!({"keys": ["n", "zz"]})).await.unwrap();
    assert_eq!(v["values"], serde_json::json!(["3", null]));
    let err = h.command("kv.nope", serde_json::json!({})).await.unwrap_err();
    assert!(err.to_string().contains("unknown command"), "{err}");
    s.shutdown().await;
}

#[tokio::test]
async fn queue_methods() {
    let (s, _dir) = server().await;
    let c = Client::connect(s.resp_addr.unwrap().to_string(), 2).await.unwrap();
    assert!(c.queue_create("jobs", &[("MAXRETRIES", "2")]).await.unwrap());
    assert!(!c.queue_create("jobs", &[]).await.unwrap());
    let low = c.queue_publish("jobs", "low", 1).await.unwrap();
    let high = c.queue_publish("jobs", b"\x00high", 9).await.unwrap();
    let got = c.queue_consume("jobs", "w", 10, 0).await.unwrap();
    assert_eq!(got.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(), vec![high.as_str(), low.as_str()]);
    assert_eq!(got[0].payload.as_ref(), b"\x00high");
    assert_eq!((got[0].priority, got[0].attempt), (9, 1));
    assert!(c.queue_nack("jobs", &low, true).await.unwrap());
    assert_eq!(c.queue_ack("jobs", &[high.as_str()]).await.unwrap(), 1);
    let again = c.queue_consume("jobs", "w", 10, 1000).await.unwrap();
    assert_eq!((again[0].id.as_str(), again[0].attempt), (low.as_str(), 2));
    assert_eq!(c.queue_consume("jobs", "w", 10, 50).await.unwrap(), vec![], "nothing more within the wait");
    let err = c.queue_publish("missing", "x", 0).await.unwrap_err();
    assert!(err.to_string().contains("not found"), "{err}");
    s.shutdown().await;
}

#[tokio::test]
async fn pubsub_methods() {
    let (s, _dir) = server().await;
    let c = Client::connect(s.resp_addr.unwrap().to_string(), 2).await.unwrap();
    let mut sub = c.subscribe(&["news"], &["orders.*"]).await.unwrap();
    assert_eq!(c.publish("news", "hello").await.unwrap(), 1);
    assert_eq!(c.publish("orders.eu", "o-1").await.unwrap(), 1);
    assert_eq!(c.publish("nobody", "x").await.unwrap(), 0);
    let m = sub.next_message().await.unwrap();
    assert_eq!((m.channel.as_ref(), m.pattern, m.payload.as_ref()), (&b"news"[..], None, &b"hello"[..]));
    let m = sub.next_message().await.unwrap();
    assert_eq!(m.pattern.as_deref(), Some(&b"orders.*"[..]));
    assert_eq!(m.payload.as_ref(), b"o-1");
    s.shutdown().await;
}

#[tokio::test]
async fn stream_methods_over_resp_and_http() {
    let (s, _dir) = server().await;
    let c = Client::connect(s.resp_addr.unwrap().to_string(), 2).await.unwrap();
    let a = c.stream_add("events", &[("kind", b"signup"), ("user", b"\x00u1")]).await.unwrap();
    c.stream_group_create("events", "mailer", "0").await.unwrap();
    let b = c.stream_add("events", &[("kind", b"login")]).await.unwrap();
    assert_eq!(c.stream_len("events").await.unwrap(), 2);
    let all = c.stream_range("events", "-", "+", 10).await.unwrap();
    assert_eq!(all.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(), vec![a.as_str(), b.as_str()]);
    assert_eq!(all[0].field("user").map(|v| v.as_ref()), Some(&b"\x00u1"[..]));
    assert_eq!(c.stream_read("events", &a, 10, 0).await.unwrap()[0].id, b);
    assert!(c.stream_read("events", "$", 10, 50).await.unwrap().is_empty(), "nothing new within the wait");
    let got = c.stream_read_group("events", "mailer", "m1", 10, 0).await.unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(c.stream_ack("events", "mailer", &[a.as_str(), b.as_str()]).await.unwrap(), 2);
    let err = c.stream_read_group("events", "nope", "m1", 1, 0).await.unwrap_err();
    assert!(err.to_string().contains("NOGROUP"), "{err}");

    let h = HttpClient::new(format!("http://{}", s.http_addr));
    assert!(h.stream_create("chat", 2, serde_json::json!({"max_events": 100})).await.unwrap());
    assert!(!h.stream_create("chat", 2, serde_json::json!({})).await.unwrap());
    let (p, o) = h.stream_publish("chat", "msg", "hello", Some("room-1")).await.unwrap();
    assert_eq!(o, 0);
    let page = h.stream_consume("chat", p, Some(0), 10, 0).await.unwrap();
    assert_eq!(
        (page["events"][0]["data"].clone(), page["next_offset"].clone()),
        (serde_json::json!("hello"), serde_json::json!(1))
    );
    h.stream_group_create("chat", "g", serde_json::json!("earliest")).await.unwrap();
    let events = h.stream_group_read("chat", "g", "c", 10, 0).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(h.stream_group_ack("chat", "g", p, &[0]).await.unwrap(), 1);
    s.shutdown().await;
}

#[tokio::test]
async fn data_type_methods_and_transactions() {
    let (s, _dir) = server().await;
    let c = Client::connect(s.resp_addr.unwrap().to_string(), 2).await.unwrap();
    assert_eq!(c.hset("h", &[("a", b"1"), ("b", b"\x00")]).await.unwrap(), 2);
    assert_eq!(c.hget("h", "b").await.unwrap().as_deref(), Some(&b"\x00"[..]));
    assert_eq!(c.hgetall("h").await.unwrap().len(), 2);
    assert_eq!(c.push("l", false, &[b"x", b"y"]).await.unwrap(), 2);
    assert_eq!(c.pop("l", true).await.unwrap().as_deref(), Some(&b"x"[..]));
    assert_eq!(c.lrange("l", 0, -1).await.unwrap(), vec![bytes::Bytes::from_static(b"y")]);
    assert_eq!(c.blpop(&["l"], 1.0).await.unwrap().map(|(k, _)| k), Some(bytes::Bytes::from_static(b"l")));
    assert_eq!(c.blpop(&["l"], 0.05).await.unwrap(), None);
    assert_eq!(c.sadd("s", &[b"m", b"m", b"n"]).await.unwrap(), 2);
    assert_eq!(c.smembers("s").await.unwrap().len(), 2);
    assert_eq!(c.zadd("z", &[(2.0, "b"), (1.0, "a")]).await.unwrap(), 2);
    let z = c.zrange_withscores("z", 0, -1).await.unwrap();
    assert_eq!(z, vec![(bytes::Bytes::from_static(b"a"), 1.0), (bytes::Bytes::from_static(b"b"), 2.0)]);
    let tx = c
        .transaction(vec![vec![b"INCR".to_vec(), b"n".to_vec()], vec![b"INCR".to_vec(), b"n".to_vec()]])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(tx, vec![synap_client::Value::Int(1), synap_client::Value::Int(2)]);
    let err = c.hset("l2", &[]).await;
    assert!(err.is_err());
    s.shutdown().await;
}
