//! Queues over HTTP, RESP and WebSocket against an in-process server: semantics, errors, redelivery,
//! dead letters, and a zero-loss zero-duplicate drain with concurrent producers and consumers.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::start_with;
use futures_util::{SinkExt, StreamExt};
use redis::{Value as RV, cmd};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message as Ws;

async fn resp(s: &common::TestServer) -> redis::aio::MultiplexedConnection {
    let addr = s.server.as_ref().unwrap().resp_addr.unwrap();
    redis::Client::open(format!("redis://{addr}/")).unwrap().get_multiplexed_async_connection().await.unwrap()
}

/// A connection for blocking commands (a response may take longer than the client's default timeout).
async fn resp_single(s: &common::TestServer) -> redis::aio::MultiplexedConnection {
    let mut c = resp(s).await;
    c.set_response_timeout(Duration::from_secs(30));
    c
}

#[tokio::test]
async fn http_publish_consume_ack_nack_and_stats() {
    let s = start_with(|_| {}).await;
    let (status, body) = s.post("/queue/jobs", json!({"ack_deadline_ms": 60000, "max_retries": 2})).await;
    assert_eq!((status, body), (201, json!({"created": true})));
    assert_eq!(s.post("/queue/jobs", json!({})).await, (200, json!({"created": false})));
    assert_eq!(s.get("/queue/list").await.1, json!({"queues": ["jobs"]}));
    let low = s.post("/queue/jobs/publish", json!({"payload": "low", "priority": 1})).await.1["message_id"].clone();
    let high = s
        .post("/queue/jobs/publish", json!({"payload": {"base64": "AP8="}, "priority": 9, "headers": {"trace": "t-1"}}))
        .await
        .1["message_id"]
        .clone();
    assert!(low.is_string() && high.is_string());
    let (status, got) = s.get("/queue/jobs/consume/w1?max=1").await;
    assert_eq!(status, 200);
    let m = &got["messages"][0];
    assert_eq!(m["message_id"], high, "priority 9 first");
    assert_eq!(m["payload"], json!({"base64": "AP8="}));
    assert_eq!(m["headers"], json!({"trace": "t-1"}));
    assert_eq!(m["attempt"], 1);
    assert_eq!(s.post("/queue/jobs/ack", json!({"message_id": high})).await.1, json!({"acked": 1}));
    let (_, got) = s.get("/queue/jobs/consume/w1?max=5").await;
    assert_eq!(got["messages"][0]["message_id"], low);
    assert_eq!(
        s.post("/queue/jobs/nack", json!({"message_id": low, "requeue": true})).await.1,
        json!({"nacked": true})
    );
    let (_, got) = s.get("/queue/jobs/consume/w2").await;
    assert_eq!(
        (got["messages"][0]["message_id"].clone(), got["messages"][0]["attempt"].clone()),
        (low.clone(), json!(2))
    );
    let stats = s.get("/queue/jobs/stats").await.1;
    assert_eq!(
        (stats["depth"].clone(), stats["in_flight"].clone(), stats["published"].clone()),
        (json!(1), json!(1), json!(2))
    );
    assert_eq!((stats["acked"].clone(), stats["nacked"].clone()), (json!(1), json!(1)));
    assert!(stats["oldest_message_age_ms"].as_i64().unwrap() >= 0);
    // Nothing ready: a long poll answers 204 after the wait.
    let started = Instant::now();
    let r = s.http.get(s.url("/queue/jobs/consume/w3?wait_ms=150")).send().await.unwrap();
    assert_eq!(r.status(), 204);
    assert!(started.elapsed() >= Duration::from_millis(140));
    // NACK without requeue dead-letters it; the DLQ lists, redrives and purges.
    assert_eq!(
        s.post("/queue/jobs/nack", json!({"message_id": low, "requeue": false})).await.1,
        json!({"nacked": true})
    );
    let dlq = s.get("/queue/jobs/dlq").await.1;
    assert_eq!(dlq["messages"][0]["headers"]["x-dead-letter-reason"], "rejected");
    assert_eq!(s.post("/queue/jobs/dlq/redrive", json!({})).await.1, json!({"redriven": 1}));
    assert_eq!(s.get("/queue/jobs/consume/w1").await.1["messages"][0]["payload"], "low");
    assert_eq!(s.post("/queue/jobs/purge", json!({})).await.1, json!({"purged": 1}));
    assert_eq!(s.post("/queue/jobs/dlq/purge", json!({})).await.1, json!({"purged": 0}));
    assert_eq!(s.delete("/queue/jobs").await.1, json!({"deleted": true}));
    s.stop().await;
}

#[tokio::test]
async fn http_queue_errors() {
    let s = start_with(|_| {}).await;
    let (status, body) = s.post("/queue/missing/publish", json!({"payload": "x"})).await;
    assert_eq!((status, body["error"]["code"].clone()), (404, json!("NOT_FOUND")));
    s.post("/queue/tiny", json!({"max_depth": 1, "max_message_bytes": 8})).await;
    assert_eq!(s.post("/queue/tiny/publish", json!({"payload": "1"})).await.0, 200);
    let (status, body) = s.post("/queue/tiny/publish", json!({"payload": "2"})).await;
    assert_eq!((status, body["error"]["code"].clone()), (429, json!("QUEUE_FULL")));
    assert_eq!(s.post("/queue/tiny/publish", json!({"payload": "far too long"})).await.0, 413);
    assert_eq!(s.post("/queue/tiny/publish", json!({"payload": "x", "priority": 10})).await.0, 400);
    assert_eq!(s.post("/queue/tiny/publish", json!({})).await.1["error"]["message"], "missing field 'payload'");
    assert_eq!(s.post("/queue/tiny/ack", json!({"message_id": "abc"})).await.0, 400);
    assert_eq!(s.post("/queue/tiny", json!({"ack_deadline_ms": 0})).await.0, 400, "bad options are refused");
    assert_eq!(s.post("/queue/bad", json!({"ack_deadline_ms": 0})).await.0, 400);
    assert_eq!(s.get("/queue/tiny/nothing").await.0, 404);
    assert_eq!(s.get("/queue/missing/stats").await.0, 404);
    s.stop().await;
}

#[tokio::test]
async fn resp_queue_commands_and_blocking_consume() {
    let s = start_with(|_| {}).await;
    let mut c = resp(&s).await;
    assert_eq!(cmd("QCREATE").arg("q").arg("MAXDEPTH").arg(100).query_async::<i64>(&mut c).await.unwrap(), 1);
    let id: String = cmd("QPUBLISH")
        .arg("q")
        .arg("hello")
        .arg("PRIORITY")
        .arg(5)
        .arg("HEADERS")
        .arg("k")
        .arg("v")
        .query_async(&mut c)
        .await
        .unwrap();
    let got: RV = cmd("QCONSUME").arg("q").arg("c1").arg("COUNT").arg(10).query_async(&mut c).await.unwrap();
    let text = format!("{got:?}");
    assert!(text.contains("hello") && text.contains(&id), "{text}");
    assert_eq!(cmd("QACK").arg("q").arg(&id).query_async::<i64>(&mut c).await.unwrap(), 1);
    assert_eq!(cmd("QACK").arg("q").arg(&id).query_async::<i64>(&mut c).await.unwrap(), 0);
    // Empty without BLOCK: an empty array; with BLOCK and nothing coming: nil after the timeout.
    let got: RV = cmd("QCONSUME").arg("q").arg("c1").query_async(&mut c).await.unwrap();
    assert_eq!(got, RV::Array(vec![]));
    let got: RV = cmd("QCONSUME").arg("q").arg("c1").arg("BLOCK").arg(100).query_async(&mut c).await.unwrap();
    assert_eq!(got, RV::Nil);
    // A blocked consumer wakes as soon as a message is published on another connection.
    let mut blocked = resp_single(&s).await;
    let waiter = tokio::spawn(async move {
        let started = Instant::now();
        let r: RV = cmd("QCONSUME").arg("q").arg("c2").arg("BLOCK").arg(5000).query_async(&mut blocked).await.unwrap();
        (r, started.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let id2: String = cmd("QPUBLISH").arg("q").arg("wake").query_async(&mut c).await.unwrap();
    let (r, waited) = waiter.await.unwrap();
    assert!(format!("{r:?}").contains("wake"), "{r:?}");
    assert!(waited < Duration::from_millis(2000), "woken by the publish, not the timeout: {waited:?}");
    assert_eq!(cmd("QNACK").arg("q").arg(&id2).arg("REQUEUE").query_async::<i64>(&mut c).await.unwrap(), 1);
    let stats: RV = cmd("QSTATS").arg("q").query_async(&mut c).await.unwrap();
    assert!(format!("{stats:?}").contains("nacked"), "{stats:?}");
    assert_eq!(cmd("QPURGE").arg("q").query_async::<i64>(&mut c).await.unwrap(), 1);
    let lst: Vec<String> = cmd("QLIST").query_async(&mut c).await.unwrap();
    assert_eq!(lst, vec!["q"]);
    assert_eq!(cmd("QDELETE").arg("q").query_async::<i64>(&mut c).await.unwrap(), 1);
    let e = cmd("QPUBLISH").arg("q").arg("x").query_async::<String>(&mut c).await.unwrap_err();
    assert_eq!(e.detail(), Some("queue 'q' not found"));
    cmd("QCREATE").arg("full").arg("MAXDEPTH").arg(1).query_async::<i64>(&mut c).await.unwrap();
    cmd("QPUBLISH").arg("full").arg("1").query_async::<String>(&mut c).await.unwrap();
    let e = cmd("QPUBLISH").arg("full").arg("2").query_async::<String>(&mut c).await.unwrap_err();
    assert_eq!(e.code(), Some("QUEUEFULL"));
    let e = cmd("QPUBLISH").arg("full").arg("2").arg("PRIORITY").query_async::<String>(&mut c).await.unwrap_err();
    assert_eq!(e.detail(), Some("syntax error"));
    s.stop().await;
}

#[tokio::test]
async fn dropped_consumer_gets_redelivered_then_dead_lettered_and_delay_is_honoured() {
    let s = start_with(|c| c.queue.sweep_interval_ms = 10).await;
    s.post("/queue/work", json!({"ack_deadline_ms": 200, "max_retries": 1})).await;
    let id = s.post("/queue/work/publish", json!({"payload": "job"})).await.1["message_id"].clone();
    {
        // A consumer takes it and goes away without acknowledging.
        let mut c = resp(&s).await;
        let _: RV = cmd("QCONSUME").arg("work").arg("dies").query_async(&mut c).await.unwrap();
    }
    assert_eq!(s.http.get(s.url("/queue/work/consume/other")).send().await.unwrap().status(), 204);
    tokio::time::sleep(Duration::from_millis(350)).await;
    let (_, got) = s.get("/queue/work/consume/other?wait_ms=1000").await;
    assert_eq!(
        (got["messages"][0]["message_id"].clone(), got["messages"][0]["attempt"].clone()),
        (id.clone(), json!(2))
    );
    // The second deadline passes too: retries are spent, so it lands in the dead-letter queue.
    tokio::time::sleep(Duration::from_millis(350)).await;
    let dlq = s.get("/queue/work/dlq").await.1;
    assert_eq!(dlq["messages"][0]["message_id"], id);
    assert_eq!(dlq["messages"][0]["headers"]["x-dead-letter-reason"], "max_retries");
    assert_eq!(s.get("/queue/work/stats").await.1["dead_lettered"], 1);
    // Delay: not deliverable before its time.
    s.post("/queue/work/publish", json!({"payload": "later", "delay_ms": 300})).await;
    let started = Instant::now();
    let (status, got) = s.get("/queue/work/consume/w?wait_ms=2000").await;
    assert_eq!(status, 200);
    assert_eq!(got["messages"][0]["payload"], "later");
    assert!(started.elapsed() >= Duration::from_millis(250), "delivered after its delay: {:?}", started.elapsed());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_consumers_drain_100k_messages_from_four_producers_exactly_once() {
    let s = start_with(|c| c.queue.max_depth = 200_000).await;
    s.post("/queue/drain", json!({"max_depth": 200000, "prefetch": 500})).await;
    const PER_PRODUCER: usize = 25_000;
    let mut producers = Vec::new();
    for p in 0..4 {
        let mut c = resp(&s).await;
        producers.push(tokio::spawn(async move {
            let mut ids = Vec::with_capacity(PER_PRODUCER);
            for chunk in 0..PER_PRODUCER / 500 {
                let mut pipe = redis::pipe();
                for i in 0..500 {
                    pipe.cmd("QPUBLISH").arg("drain").arg(format!("p{p}-{}", chunk * 500 + i));
                }
                let got: Vec<String> = pipe.query_async(&mut c).await.unwrap();
                ids.extend(got);
            }
            ids
        }));
    }
    let mut consumers = Vec::new();
    for w in 0..10 {
        let mut c = resp(&s).await;
        consumers.push(tokio::spawn(async move {
            let mut seen: Vec<(String, String)> = Vec::new();
            let mut idle = 0;
            while idle < 3 {
                let got: RV = cmd("QCONSUME")
                    .arg("drain")
                    .arg(format!("w{w}"))
                    .arg("COUNT")
                    .arg(200)
                    .arg("BLOCK")
                    .arg(300)
                    .query_async(&mut c)
                    .await
                    .unwrap();
                let RV::Array(msgs) = got else {
                    idle += 1;
                    continue;
                };
                idle = 0;
                let mut ack = cmd("QACK");
                ack.arg("drain");
                for m in msgs {
                    let RV::Array(fields) = m else { panic!("{m:?}") };
                    let text = |v: &RV| match v {
                        RV::BulkString(b) => String::from_utf8(b.clone()).unwrap(),
                        other => panic!("{other:?}"),
                    };
                    let id = text(&fields[1]);
                    let payload = text(&fields[5]);
                    ack.arg(&id);
                    seen.push((id, payload));
                }
                let _: i64 = ack.query_async(&mut c).await.unwrap();
            }
            seen
        }));
    }
    let mut published = HashSet::new();
    for p in producers {
        published.extend(p.await.unwrap());
    }
    let mut delivered = Vec::new();
    for c in consumers {
        delivered.extend(c.await.unwrap());
    }
    assert_eq!(published.len(), 100_000, "every publish got a unique id");
    let ids: HashSet<&String> = delivered.iter().map(|(id, _)| id).collect();
    assert_eq!(delivered.len(), 100_000, "no duplicates, no losses");
    assert_eq!(ids.len(), 100_000);
    assert!(delivered.iter().all(|(id, _)| published.contains(id)));
    let stats = s.get("/queue/drain/stats").await.1;
    assert_eq!(
        (stats["depth"].clone(), stats["acked"].clone(), stats["redelivered"].clone()),
        (json!(0), json!(100000), json!(0))
    );
    s.stop().await;
}

#[tokio::test]
async fn websocket_push_consumer_respects_prefetch_and_requeues_on_close() {
    let s = start_with(|_| {}).await;
    s.post("/queue/push", json!({})).await;
    for i in 0..5 {
        s.post("/queue/push/publish", json!({"payload": format!("m{i}")})).await;
    }
    let url = format!("ws://{}/queue/push/ws/ws1?prefetch=2", s.server.as_ref().unwrap().http_addr);
    let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    let a = next_frame(&mut ws).await;
    let b = next_frame(&mut ws).await;
    assert_eq!(
        (a["type"].clone(), a["payload"].clone(), b["payload"].clone()),
        (json!("message"), json!("m0"), json!("m1"))
    );
    // The window is full: nothing more comes until an ack.
    assert!(
        tokio::time::timeout(Duration::from_millis(300), ws.next()).await.is_err(),
        "prefetch 2 holds back the third"
    );
    ws.send(Ws::Text(json!({"type": "ack", "message_id": a["message_id"]}).to_string().into())).await.unwrap();
    let c = next_frame(&mut ws).await;
    assert_eq!(c["payload"], "m2");
    ws.send(Ws::Text("not json".into())).await.unwrap();
    assert_eq!(next_frame(&mut ws).await["type"], "error");
    ws.close(None).await.unwrap();
    drop(ws);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let stats = s.get("/queue/push/stats").await.1;
    assert_eq!(
        (stats["in_flight"].clone(), stats["ready"].clone(), stats["acked"].clone()),
        (json!(0), json!(4), json!(1))
    );
    let r = s.http.get(s.url("/queue/nope/ws/x")).send().await.unwrap();
    assert!(r.status() == 404 || r.status() == 400, "{}", r.status());
    s.stop().await;
}

async fn next_frame<S>(ws: &mut S) -> Value
where
    S: futures_util::Stream<Item = Result<Ws, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
        Ok(Some(Ok(Ws::Text(t)))) => serde_json::from_str::<Value>(&t).unwrap(),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_consumer_that_disconnects_is_not_handed_messages() {
    let s = start_with(|_| {}).await;
    s.post("/queue/b", json!({})).await;
    let addr = s.server.as_ref().unwrap().resp_addr.unwrap();
    {
        let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
        use tokio::io::AsyncWriteExt;
        c.write_all(b"QCONSUME b gone BLOCK 5000\r\n").await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    } // the client leaves while blocked
    tokio::time::sleep(Duration::from_millis(100)).await;
    s.post("/queue/b/publish", json!({"payload": "for someone alive"})).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let stats = s.get("/queue/b/stats").await.1;
    assert_eq!((stats["ready"].clone(), stats["in_flight"].clone()), (json!(1), json!(0)), "{stats}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envelope_consume_long_polls() {
    let s = start_with(|_| {}).await;
    s.post("/queue/env", json!({})).await;
    let body = json!({"command": "queue.consume", "request_id": 7, "payload": {"queue": "env", "consumer_id": "w", "wait_ms": 3000}});
    let (http, url) = (s.http.clone(), s.url("/api/v1/command"));
    let waiter = tokio::spawn(async move {
        let started = Instant::now();
        let r: Value = http.post(url).json(&body).send().await.unwrap().json().await.unwrap();
        (r, started.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(150)).await;
    s.post("/queue/env/publish", json!({"payload": "late"})).await;
    let (r, waited) = waiter.await.unwrap();
    assert_eq!(r["success"], true, "{r}");
    assert_eq!(r["request_id"], 7);
    assert_eq!(r["payload"]["messages"][0]["payload"], "late");
    assert!(waited >= Duration::from_millis(100) && waited < Duration::from_millis(2500), "{waited:?}");
    let (_, empty) = s
        .post(
            "/api/v1/command",
            json!({"command": "queue.consume", "payload": {"queue": "env", "consumer_id": "w", "wait_ms": 50}}),
        )
        .await;
    assert_eq!(empty["payload"]["messages"], json!([]));
    s.stop().await;
}
