//! Streams over every protocol: REST and the envelope (offsets, long polls, groups, errors), the live tail
//! over SSE (with Last-Event-ID) and WebSocket, Redis's stream commands through the `redis` crate, and
//! restarts, retention and reads larger than the tail cache against segment files on disk.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{start_with, test_config};
use futures_util::StreamExt;
use redis::AsyncCommands;
use redis::streams::{
    StreamAutoClaimOptions, StreamAutoClaimReply, StreamInfoGroupsReply, StreamInfoStreamReply, StreamPendingReply,
    StreamRangeReply, StreamReadOptions, StreamReadReply,
};
use serde_json::{Value, json};
use synap_server::RunningServer;
use tokio_tungstenite::tungstenite::Message as Ws;

async fn resp(s: &common::TestServer) -> redis::aio::MultiplexedConnection {
    let addr = s.server.as_ref().unwrap().resp_addr.expect("RESP enabled");
    let client = redis::Client::open(format!("redis://{addr}/")).unwrap();
    let cfg = redis::AsyncConnectionConfig::new().set_response_timeout(Some(Duration::from_secs(10)));
    client.get_multiplexed_async_connection_with_config(&cfg).await.unwrap()
}

async fn err<T: redis::FromRedisValue + std::fmt::Debug>(
    c: &mut redis::aio::MultiplexedConnection,
    command: &mut redis::Cmd,
) -> String {
    let r: redis::RedisResult<T> = command.query_async(c).await;
    let e = r.expect_err("an error reply");
    format!("{} {}", e.code().unwrap_or("?"), e.detail().unwrap_or(""))
}

#[tokio::test]
async fn rest_offsets_long_polls_groups_and_errors() {
    let s = start_with(|_| {}).await;
    let (st, body) = s.post("/stream/orders", json!({"partitions": 2, "retention": {"max_events": 50}})).await;
    assert_eq!((st, body), (201, json!({"created": true})));
    let (st, body) = s.post("/stream/orders", json!({})).await;
    assert_eq!((st, body["error"]["code"].clone()), (409, json!("CONFLICT")));

    // Same key, same partition; offsets dense per partition.
    let mut seen = Vec::new();
    for i in 0..5 {
        let (st, r) =
            s.post("/stream/orders/publish", json!({"event": "created", "data": format!("o{i}"), "key": "c-1"})).await;
        assert_eq!(st, 200, "{r}");
        seen.push((r["partition"].as_u64().unwrap(), r["offset"].as_u64().unwrap()));
    }
    let p = seen[0].0;
    assert!(seen.iter().all(|(q, _)| *q == p));
    assert_eq!(seen.iter().map(|(_, o)| *o).collect::<Vec<_>>(), vec![0, 1, 2, 3, 4]);
    let (_, r) = s
        .post(
            "/stream/orders/publish",
            json!({"event": "meta", "data": {"n": 1}, "partition": p, "headers": {"h": "v"}}),
        )
        .await;
    assert_eq!(r["offset"], 5);

    let (st, r) = s.get(&format!("/stream/orders/consume/sub-1?from_offset=3&limit=2&partition={p}")).await;
    assert_eq!(st, 200);
    assert_eq!(r["next_offset"], 5);
    let events = r["events"].as_array().unwrap();
    assert_eq!(events.iter().map(|e| e["data"].clone()).collect::<Vec<_>>(), vec![json!("o3"), json!("o4")]);
    assert_eq!((events[0]["event"].clone(), events[0]["key"].clone()), (json!("created"), json!("c-1")));
    let (_, r) = s.get(&format!("/stream/orders/consume/sub-1?from_offset=5&partition={p}")).await;
    assert_eq!(r["events"][0]["data"], "{\"n\":1}");
    assert_eq!(r["events"][0]["headers"], json!({"h": "v"}));

    // A read at the end waits for the next event.
    let url = s.url(&format!("/stream/orders/consume/sub-1?from_offset=6&partition={p}&wait_ms=5000"));
    let waiter = tokio::spawn({
        let http = s.http.clone();
        async move { http.get(url).send().await.unwrap().json::<Value>().await.unwrap() }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!waiter.is_finished());
    s.post("/stream/orders/publish", json!({"data": "late", "partition": p})).await;
    let r = tokio::time::timeout(Duration::from_secs(5), waiter).await.unwrap().unwrap();
    assert_eq!((r["events"][0]["data"].clone(), r["events"][0]["offset"].clone()), (json!("late"), json!(6)));

    // Retention by count: the oldest offsets stop being readable, with the oldest retained one named.
    for i in 0..60 {
        s.post("/stream/orders/publish", json!({"data": format!("x{i}"), "partition": p})).await;
    }
    let (st, r) = s.get(&format!("/stream/orders/consume/sub-1?from_offset=0&partition={p}")).await;
    assert_eq!((st, r["error"]["code"].clone()), (400, json!("OFFSET_OUT_OF_RANGE")));
    assert!(r["error"]["message"].as_str().unwrap().contains("oldest retained offset is 17"), "{r}");

    // A group shares the events among its consumers; acked events leave the lag.
    let (st, _) =
        s.post("/stream/orders/group/billing", json!({"start": "earliest", "redeliver_after_ms": 60000})).await;
    assert_eq!(st, 201);
    let (_, a) = s.get("/stream/orders/group/billing/read/a?count=30").await;
    let (_, b) = s.get("/stream/orders/group/billing/read/b?count=100").await;
    let (na, nb) = (a["events"].as_array().unwrap().len(), b["events"].as_array().unwrap().len());
    assert_eq!((na, nb), (30, 20));
    let mut ids = HashSet::new();
    for e in a["events"].as_array().unwrap().iter().chain(b["events"].as_array().unwrap()) {
        assert!(ids.insert((e["partition"].as_u64().unwrap(), e["offset"].as_u64().unwrap())), "delivered twice");
    }
    let offsets: Vec<u64> = a["events"].as_array().unwrap().iter().map(|e| e["offset"].as_u64().unwrap()).collect();
    let (st, r) = s.post("/stream/orders/group/billing/ack", json!({"partition": p, "offsets": offsets})).await;
    assert_eq!((st, r), (200, json!({"acked": 30})));
    let (_, stats) = s.get("/stream/orders/stats").await;
    assert_eq!(stats["groups"][0]["pending"], 20, "{stats}");
    assert_eq!(stats["groups"][0]["lag"], 20);
    assert_eq!(stats["events"], 50);
    assert_eq!(stats["partitions"], 2);
    // A group read waits when nothing is new, through the envelope too.
    let (_, r) = s
        .post(
            "/api/v1/command",
            json!({"command": "stream.group.read", "payload": {"room": "orders", "group": "billing", "consumer": "a", "wait_ms": 100}}),
        )
        .await;
    assert_eq!(r["payload"], json!({"events": []}), "{r}");

    // Errors: missing stream, group, partition; bad input.
    assert_eq!(s.get("/stream/nope/consume/x").await.0, 404);
    assert_eq!(s.get("/stream/orders/group/nope/read/a").await.0, 404);
    assert_eq!(s.get("/stream/orders/consume/x?partition=7").await.0, 400);
    assert_eq!(s.get("/stream/orders/consume/x?limit=0").await.0, 400);
    assert_eq!(s.post("/stream/orders/publish", json!({"event": "no-data"})).await.0, 400);
    assert_eq!(s.post("/stream/big", json!({"partitions": 100000})).await.0, 400);
    let big = "x".repeat(2 << 20);
    assert_eq!(s.post("/stream/orders/publish", json!({"data": big})).await.0, 413);
    let (_, list) = s.get("/stream/list").await;
    assert_eq!(list, json!({"streams": ["orders"]}));
    assert_eq!(s.delete("/stream/orders").await, (200, json!({"deleted": true})));
    assert_eq!(s.get("/stream/orders/stats").await.0, 404);
    s.stop().await;
}

async fn sse_read(resp: &mut reqwest::Response, acc: &mut String, events: usize) -> Vec<(u64, Value)> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let blocks: Vec<&str> = acc.split("\n\n").collect();
        let complete: Vec<(u64, Value)> = blocks[..blocks.len() - 1]
            .iter()
            .filter_map(|b| {
                let id = b.lines().find_map(|l| l.strip_prefix("id: "))?.parse().ok()?;
                let data = b.lines().find_map(|l| l.strip_prefix("data: "))?;
                Some((id, serde_json::from_str(data).unwrap()))
            })
            .collect();
        if complete.len() >= events {
            return complete;
        }
        let chunk =
            tokio::time::timeout_at(deadline, resp.chunk()).await.expect("SSE timed out").unwrap().expect("SSE ended");
        acc.push_str(&String::from_utf8_lossy(&chunk));
    }
}

#[tokio::test]
async fn live_tail_over_sse_with_last_event_id_and_websocket() {
    let s = start_with(|_| {}).await;
    for i in 0..3 {
        s.post("/stream/room/publish", json!({"event": "chat", "data": format!("m{i}")})).await;
    }
    let mut sse = s.http.get(s.url("/stream/room/sse?from_offset=0")).send().await.unwrap();
    assert_eq!(sse.status(), 200);
    let mut acc = String::new();
    let got = sse_read(&mut sse, &mut acc, 3).await;
    assert_eq!(got.iter().map(|(id, _)| *id).collect::<Vec<_>>(), vec![0, 1, 2]);
    assert!(acc.contains("event: chat"), "{acc}");
    s.post("/stream/room/publish", json!({"event": "chat", "data": "m3"})).await;
    let got = sse_read(&mut sse, &mut acc, 4).await;
    assert_eq!(got[3].1["data"], "m3");
    drop(sse);
    // Events published while the browser is away arrive after it reconnects, once each.
    for i in 4..7 {
        s.post("/stream/room/publish", json!({"event": "chat", "data": format!("m{i}")})).await;
    }
    let mut sse = s.http.get(s.url("/stream/room/sse")).header("Last-Event-ID", "3").send().await.unwrap();
    let mut acc = String::new();
    let got = sse_read(&mut sse, &mut acc, 3).await;
    assert_eq!(got.iter().map(|(id, _)| *id).collect::<Vec<_>>(), vec![4, 5, 6]);
    assert_eq!(got[0].1["data"], "m4");
    // Without an offset the tail starts at the end.
    let mut tail = s.http.get(s.url("/stream/room/sse")).send().await.unwrap();
    s.post("/stream/room/publish", json!({"data": "m7"})).await;
    let mut tacc = String::new();
    let got = sse_read(&mut tail, &mut tacc, 1).await;
    assert_eq!((got[0].0, got[0].1["data"].clone()), (7, json!("m7")));
    assert!(tacc.contains("event: message"));

    let ws_url = format!("ws://{}/stream/room/ws?from_offset=5", s.server.as_ref().unwrap().http_addr);
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url).await.unwrap();
    let mut next = async || loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
            Ok(Some(Ok(Ws::Text(t)))) => return serde_json::from_str::<Value>(&t).unwrap(),
            Ok(Some(Ok(_))) => continue,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!((next().await["offset"].clone(), next().await["offset"].clone()), (json!(5), json!(6)));
    assert_eq!(next().await["data"], "m7");

    // Errors before the stream starts: missing stream, offset past the end.
    assert_eq!(s.http.get(s.url("/stream/nope/sse")).send().await.unwrap().status(), 404);
    assert_eq!(s.http.get(s.url("/stream/room/sse?from_offset=99")).send().await.unwrap().status(), 400);
    assert_eq!(s.http.get(s.url("/stream/room/sse?from_offset=x")).send().await.unwrap().status(), 400);
    s.stop().await;
}

#[tokio::test]
async fn redis_stream_commands_through_the_redis_crate() {
    let s = start_with(|_| {}).await;
    let mut c = resp(&s).await;
    let id1: String = c.xadd("s", "1-1", &[("f", "a")]).await.unwrap();
    assert_eq!(id1, "1-1");
    let id2: String = c.xadd("s", "*", &[("f", "b"), ("g", "c")]).await.unwrap();
    assert!(id2.ends_with("-0") && id2 > id1);
    assert_eq!(
        err::<String>(&mut c, redis::cmd("XADD").arg("s").arg("1-1").arg("f").arg("x")).await,
        "ERR The ID specified in XADD is equal or smaller than the target stream top item"
    );
    assert_eq!(
        err::<String>(&mut c, redis::cmd("XADD").arg("s").arg("x-y").arg("f").arg("x")).await,
        "ERR Invalid stream ID specified as stream command argument"
    );
    assert_eq!(
        err::<String>(&mut c, redis::cmd("XADD").arg("s").arg("*").arg("f")).await,
        "ERR wrong number of arguments for 'xadd' command"
    );
    let len: usize = c.xlen("s").await.unwrap();
    assert_eq!(len, 2);
    let range: StreamRangeReply = c.xrange_all("s").await.unwrap();
    assert_eq!(range.ids.iter().map(|i| i.id.clone()).collect::<Vec<_>>(), vec![id1.clone(), id2.clone()]);
    assert_eq!(range.ids[1].get::<String>("g").as_deref(), Some("c"));
    let rev: StreamRangeReply = c.xrevrange_count("s", "+", "-", 1).await.unwrap();
    assert_eq!(rev.ids[0].id, id2);

    // XREAD BLOCK wakes when another client appends.
    let mut c2 = resp(&s).await;
    let reader = tokio::spawn(async move {
        let opts = StreamReadOptions::default().block(5000).count(10);
        let r: StreamReadReply = c2.xread_options(&["s"], &["$"], &opts).await.unwrap();
        r
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let id3: String = c.xadd("s", "*", &[("f", "new")]).await.unwrap();
    let r = tokio::time::timeout(Duration::from_secs(5), reader).await.unwrap().unwrap();
    assert_eq!(r.keys[0].ids.iter().map(|i| i.id.clone()).collect::<Vec<_>>(), vec![id3.clone()]);
    let opts = StreamReadOptions::default().block(100);
    let none: Option<StreamReadReply> = c.xread_options(&["s"], &["$"], &opts).await.unwrap();
    assert!(none.is_none(), "a timed-out XREAD answers nil");

    // Groups.
    let _: () = c.xgroup_create("s", "g", "0").await.unwrap();
    assert_eq!(
        err::<()>(&mut c, redis::cmd("XGROUP").arg("CREATE").arg("s").arg("g").arg("$")).await,
        "BUSYGROUP Consumer Group name already exists"
    );
    assert!(
        err::<()>(&mut c, redis::cmd("XGROUP").arg("CREATE").arg("missing").arg("g").arg("$"))
            .await
            .contains("requires the key to exist")
    );
    let _: () = c.xgroup_create_mkstream("other", "g", "$").await.unwrap();
    let opts = StreamReadOptions::default().group("g", "alice").count(2);
    let r: StreamReadReply = c.xread_options(&["s"], &[">"], &opts).await.unwrap();
    assert_eq!(r.keys[0].ids.len(), 2);
    let opts_b = StreamReadOptions::default().group("g", "bob").count(10);
    let r: StreamReadReply = c.xread_options(&["s"], &[">"], &opts_b).await.unwrap();
    assert_eq!(r.keys[0].ids.iter().map(|i| i.id.clone()).collect::<Vec<_>>(), vec![id3.clone()]);
    let pending: StreamPendingReply = c.xpending("s", "g").await.unwrap();
    assert_eq!(pending.count(), 3);
    let acked: usize = c.xack("s", "g", &[&id1]).await.unwrap();
    assert_eq!(acked, 1);
    // Bob's history read returns his pending events.
    let hist = StreamReadOptions::default().group("g", "bob");
    let r: StreamReadReply = c.xread_options(&["s"], &["0"], &hist).await.unwrap();
    assert_eq!(r.keys[0].ids.len(), 1);
    // Claims: nothing is idle for an hour; with 0 ms everything of Bob's moves to Carol.
    let claim: StreamAutoClaimReply =
        c.xautoclaim_options("s", "g", "carol", 3_600_000, "0-0", StreamAutoClaimOptions::default()).await.unwrap();
    assert!(claim.claimed.is_empty());
    let claim: StreamAutoClaimReply =
        c.xautoclaim_options("s", "g", "carol", 0, "0-0", StreamAutoClaimOptions::default().count(1)).await.unwrap();
    assert_eq!(claim.claimed.len(), 1);
    let claimed: redis::streams::StreamClaimReply = c.xclaim("s", "g", "dave", 0, &[&id3]).await.unwrap();
    assert_eq!(claimed.ids.len(), 1);
    let info: StreamInfoStreamReply = c.xinfo_stream("s").await.unwrap();
    assert_eq!((info.length, info.groups, info.last_generated_id.clone()), (3, 1, id3.clone()));
    let groups: StreamInfoGroupsReply = c.xinfo_groups("s").await.unwrap();
    assert_eq!((groups.groups[0].name.as_str(), groups.groups[0].pending), ("g", 2));
    assert!(
        err::<StreamReadReply>(
            &mut c,
            redis::cmd("XREADGROUP").arg("GROUP").arg("nope").arg("x").arg("STREAMS").arg("s").arg(">")
        )
        .await
        .starts_with("NOGROUP")
    );

    // XREADGROUP BLOCK wakes on a new event; XDEL and XTRIM.
    let mut c3 = resp(&s).await;
    let blocked = tokio::spawn(async move {
        let opts = StreamReadOptions::default().group("g", "erin").block(5000);
        let r: StreamReadReply = c3.xread_options(&["s"], &[">"], &opts).await.unwrap();
        r
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let id4: String = c.xadd("s", "*", &[("f", "for-erin")]).await.unwrap();
    let r = tokio::time::timeout(Duration::from_secs(5), blocked).await.unwrap().unwrap();
    assert_eq!(r.keys[0].ids[0].id, id4);
    let deleted: usize = c.xdel("s", &[&id2]).await.unwrap();
    assert_eq!(deleted, 1);
    let trimmed: usize = c.xtrim("s", redis::streams::StreamMaxlen::Equals(1)).await.unwrap();
    assert_eq!(trimmed, 2);
    let range: StreamRangeReply = c.xrange_all("s").await.unwrap();
    assert_eq!(range.ids.iter().map(|i| i.id.clone()).collect::<Vec<_>>(), vec![id4]);
    // A client that disconnects while blocked takes nothing with it.
    let mut raw = tokio::net::TcpStream::connect(s.server.as_ref().unwrap().resp_addr.unwrap()).await.unwrap();
    use tokio::io::AsyncWriteExt;
    raw.write_all(b"XREADGROUP GROUP g gone BLOCK 0 STREAMS s >\r\n").await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(raw);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let _: String = c.xadd("s", "*", &[("f", "after")]).await.unwrap();
    let pending: StreamPendingReply = c.xpending("s", "g").await.unwrap();
    let before = pending.count();
    let opts = StreamReadOptions::default().group("g", "frank");
    let r: StreamReadReply = c.xread_options(&["s"], &[">"], &opts).await.unwrap();
    assert_eq!(r.keys[0].ids.len(), 1, "the event went to a live reader, not the one that left");
    let pending: StreamPendingReply = c.xpending("s", "g").await.unwrap();
    assert_eq!(pending.count(), before + 1);
    s.stop().await;
}

async fn restart(dir: &tempfile::TempDir, edit: impl Fn(&mut synap_server::Config)) -> common::TestServer {
    let mut cfg = test_config(dir);
    edit(&mut cfg);
    let server = RunningServer::start(cfg).await.expect("server starts");
    let base = format!("http://{}", server.http_addr);
    let http = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap();
    common::TestServer { server: Some(server), base, http, _dir: tempfile::tempdir().unwrap() }
}

fn segment_files(dir: &std::path::Path) -> usize {
    let mut n = 0;
    for e in walk(dir) {
        if e.extension().is_some_and(|x| x == "log") {
            n += 1;
        }
    }
    n
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[tokio::test]
async fn restarts_keep_events_and_groups_and_reads_beyond_the_cache_come_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    let small = |c: &mut synap_server::Config| {
        c.stream.segment_bytes = synap_server::config::ByteSize(16 * 1024);
        c.stream.tail_cache_bytes = synap_server::config::ByteSize(8 * 1024);
    };
    let s = restart(&dir, small).await;
    s.post("/stream/log", json!({"retention": {"max_events": 0, "max_bytes": 0, "max_age_ms": 0}})).await;
    let payload = "p".repeat(200);
    for i in 0..2000 {
        let (st, _) = s.post("/stream/log/publish", json!({"event": "e", "data": format!("{i}:{payload}")})).await;
        assert_eq!(st, 200);
    }
    s.post("/stream/log/group/g", json!({"start": "earliest"})).await;
    let (_, r) = s.get("/stream/log/group/g/read/c?count=100").await;
    let offsets: Vec<u64> = r["events"].as_array().unwrap().iter().map(|e| e["offset"].as_u64().unwrap()).collect();
    s.post("/stream/log/group/g/ack", json!({"offsets": offsets[..60].to_vec()})).await;
    let streams_dir = dir.path().join("streams");
    assert!(segment_files(&streams_dir) > 20, "about 460 KB of events in 16 KB segments");

    // Everything reads back, in order, though the cache holds a few dozen events.
    let check_all = async |s: &common::TestServer| {
        let mut from = 0;
        let mut n = 0;
        while from < 2000 {
            let (st, r) = s.get(&format!("/stream/log/consume/x?from_offset={from}&limit=333")).await;
            assert_eq!(st, 200, "{r}");
            for e in r["events"].as_array().unwrap() {
                assert_eq!(e["offset"].as_u64().unwrap(), n);
                assert_eq!(e["data"].as_str().unwrap(), format!("{n}:{payload}"));
                n += 1;
            }
            from = r["next_offset"].as_u64().unwrap();
        }
        assert_eq!(n, 2000);
    };
    check_all(&s).await;
    s.stop().await;

    // After a restart from the shutdown snapshot, and after one without a snapshot at shutdown.
    let no_snapshot = |c: &mut synap_server::Config| {
        small(c);
        c.persistence.snapshot.on_shutdown = false;
    };
    let s = restart(&dir, no_snapshot).await;
    check_all(&s).await;
    let (_, stats) = s.get("/stream/log/stats").await;
    assert_eq!((stats["groups"][0]["pending"].clone(), stats["groups"][0]["lag"].clone()), (json!(40), json!(1940)));
    let (_, r) = s.post("/stream/log/publish", json!({"data": "after-restart"})).await;
    assert_eq!(r["offset"], 2000);
    s.stop().await;
    let s = restart(&dir, small).await;
    let (_, r) = s.get("/stream/log/consume/x?from_offset=1999").await;
    assert_eq!(r["events"].as_array().unwrap().len(), 2);
    assert_eq!(r["events"][1]["data"], "after-restart");

    // Retention by bytes drops whole old segments on disk.
    let before = segment_files(&streams_dir);
    s.post("/stream/log2", json!({"retention": {"max_bytes": 40000}})).await;
    for i in 0..1000 {
        s.post("/stream/log2/publish", json!({"data": format!("{i}:{payload}")})).await;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, stats) = s.get("/stream/log2/stats").await;
        if stats["bytes"].as_u64().unwrap() <= 40000 + 16 * 1024 {
            assert!(stats["partition_stats"][0]["start_offset"].as_u64().unwrap() > 0);
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "retention did not run: {stats}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(segment_files(&streams_dir) < before + 1000 * 230 / (16 * 1024) + 1);
    // Retention by age empties a stream whose events are all older than the limit.
    s.post("/stream/log3", json!({"retention": {"max_age_ms": 300}})).await;
    for _ in 0..10 {
        s.post("/stream/log3/publish", json!({"data": "old"})).await;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, stats) = s.get("/stream/log3/stats").await;
        if stats["events"] == 0 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "age retention did not run: {stats}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (st, r) = s.get("/stream/log3/consume/x?from_offset=0").await;
    assert_eq!((st, r["error"]["code"].clone()), (400, json!("OFFSET_OUT_OF_RANGE")));
    s.stop().await;
}

/// A stream deleted and created again at once gets its own directory; the old one goes only once the
/// deletion is durable, and the new stream's events survive restarts (with and without a snapshot).
#[tokio::test]
async fn a_stream_deleted_and_created_again_keeps_its_own_files() {
    let dir = tempfile::tempdir().unwrap();
    // No purge pass while the server runs (the longest interval): the old directory goes at shutdown,
    // once the log is fsynced, so what the test sees does not depend on timing.
    let cfg = |c: &mut synap_server::Config| {
        c.stream.retention_interval_ms = 3_600_000;
        c.persistence.snapshot.on_shutdown = false;
    };
    let s = restart(&dir, cfg).await;
    let streams_dir = dir.path().join("streams");
    let dirs = || std::fs::read_dir(&streams_dir).map(|d| d.count()).unwrap_or(0);
    for i in 0..50 {
        s.post("/stream/s/publish", json!({"data": format!("old-{i}")})).await;
    }
    assert_eq!(dirs(), 1);
    assert_eq!(s.delete("/stream/s").await.0, 200);
    for i in 0..5 {
        let (st, r) = s.post("/stream/s/publish", json!({"data": format!("new-{i}")})).await;
        assert_eq!((st, r["offset"].clone()), (200, json!(i)));
    }
    assert_eq!(dirs(), 2, "the new stream has a directory of its own; the old one waits");
    s.stop().await;
    assert_eq!(dirs(), 1, "the old directory went once the deletion was durable");
    for _ in 0..2 {
        let s = restart(&dir, cfg).await;
        let (st, r) = s.get("/stream/s/consume/x?from_offset=0&limit=100").await;
        assert_eq!(st, 200, "{r}");
        let data: Vec<&str> = r["events"].as_array().unwrap().iter().map(|e| e["data"].as_str().unwrap()).collect();
        assert_eq!(data, vec!["new-0", "new-1", "new-2", "new-3", "new-4"]);
        assert_eq!(dirs(), 1);
        s.stop().await;
    }
}

/// Stored data never crashes a reader: an event name with line breaks (XADD accepts any bytes) is sent as
/// `event: message` with the name in the data, to every reader and every reconnecting one; a
/// Last-Event-ID with no offset after it is a 400, not an overflow.
#[tokio::test]
async fn hostile_event_names_and_last_event_ids_do_not_break_the_tail() {
    let s = start_with(|_| {}).await;
    let addr = s.server.as_ref().unwrap().resp_addr.unwrap();
    let mut c =
        redis::Client::open(format!("redis://{addr}/")).unwrap().get_multiplexed_async_connection().await.unwrap();
    let _: String = c.xadd("s", "*", &[("event", "a\nb"), ("data", "x")]).await.unwrap();
    let _: String = c.xadd("s", "*", &[("event", "c\r"), ("data", "y")]).await.unwrap();
    let _: String = c.xadd("s", "*", &[("event", "fine"), ("data", "z")]).await.unwrap();
    for _ in 0..2 {
        let mut sse = s.http.get(s.url("/stream/s/sse?from_offset=0")).send().await.unwrap();
        assert_eq!(sse.status(), 200);
        let mut acc = String::new();
        let got = sse_read(&mut sse, &mut acc, 3).await;
        assert_eq!(got[0].1["event"], "a\nb");
        assert_eq!(got[1].1["event"], "c\r");
        assert!(acc.contains("event: message\n") && acc.contains("event: fine\n"), "{acc}");
    }
    let r = s.http.get(s.url("/stream/s/sse")).header("Last-Event-ID", u64::MAX.to_string()).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let r = s.http.get(s.url("/stream/s/sse")).header("Last-Event-ID", "1").send().await.unwrap();
    assert_eq!(r.status(), 200);
    s.stop().await;
}
