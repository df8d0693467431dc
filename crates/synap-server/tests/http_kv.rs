//! The key-value service over real HTTP: every route, errors, limits, pipelines, expiry, eviction, SCAN.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{start, start_with};
use serde_json::{Value, json};
use synap_core::EvictionPolicy;
use synap_server::config::{ByteSize, Policy};

#[tokio::test]
async fn set_get_delete_and_missing_keys() {
    let s = start().await;
    assert_eq!(s.post("/kv/set", json!({"key": "user:1", "value": "alice"})).await, (200, json!({"set": true})));
    assert_eq!(s.get("/kv/get/user:1").await, (200, json!({"key": "user:1", "value": "alice"})));
    let (status, body) = s.get("/kv/get/nope").await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "NOT_FOUND");
    assert_eq!(s.delete("/kv/del/user:1").await, (200, json!({"deleted": 1})));
    assert_eq!(s.delete("/kv/del/user:1").await, (200, json!({"deleted": 0})));
    assert_eq!(s.get("/kv/get/user:1").await.0, 404);
    s.stop().await;
}

#[tokio::test]
async fn values_and_keys_are_binary_safe() {
    let s = start().await;
    let bytes = json!({"base64": "AP8Q/w=="}); // 00 ff 10 ff: not UTF-8
    assert_eq!(s.post("/kv/set", json!({"key": {"base64": "/wA="}, "value": bytes})).await.0, 200);
    // Path keys are percent-decoded to raw bytes.
    assert_eq!(s.get("/kv/get/%FF%00").await, (200, json!({"key": {"base64": "/wA="}, "value": bytes})));
    // Raw body in, raw body out.
    let r = s
        .http
        .post(s.url("/kv/set?key=raw"))
        .header("content-type", "application/octet-stream")
        .body(vec![0u8, 1, 2, 255])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = s.http.get(s.url("/kv/get/raw")).header("accept", "application/octet-stream").send().await.unwrap();
    assert_eq!(r.bytes().await.unwrap().to_vec(), vec![0u8, 1, 2, 255]);
    s.stop().await;
}

#[tokio::test]
async fn messagepack_in_and_out() {
    let s = start().await;
    let mut body = Vec::new();
    let v = rmpv_value();
    write_msgpack(&mut body, &v);
    let r = s
        .http
        .post(s.url("/kv/set"))
        .header("content-type", "application/msgpack")
        .header("accept", "application/msgpack")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/msgpack");
    let (_, got) = s.get("/kv/get/mp").await;
    assert_eq!(got["value"], json!({"base64": "AP8="}));
    let r = s
        .http
        .post(s.url("/kv/set"))
        .header("content-type", "application/msgpack")
        .body(vec![0xc1])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    s.stop().await;
}

// A msgpack map {"key": "mp", "value": bin[00 ff]} written by hand, so the test does not trust the codec.
fn rmpv_value() -> Vec<u8> {
    let mut out = vec![0x82];
    out.extend_from_slice(&[0xa3, b'k', b'e', b'y', 0xa2, b'm', b'p']);
    out.extend_from_slice(&[0xa5, b'v', b'a', b'l', b'u', b'e', 0xc4, 0x02, 0x00, 0xff]);
    out
}

fn write_msgpack(out: &mut Vec<u8>, v: &[u8]) {
    out.extend_from_slice(v);
}

#[tokio::test]
async fn set_conditions_get_and_keepttl() {
    let s = start().await;
    assert_eq!(s.post("/kv/set", json!({"key": "k", "value": "1", "xx": true})).await.1, json!({"set": false}));
    assert_eq!(s.post("/kv/set", json!({"key": "k", "value": "1", "nx": true})).await.1, json!({"set": true}));
    assert_eq!(s.post("/kv/set", json!({"key": "k", "value": "2", "nx": true})).await.1, json!({"set": false}));
    assert_eq!(s.post("/kv/set", json!({"key": "k", "value": "3", "xx": true})).await.1, json!({"set": true}));
    assert_eq!(s.post("/kv/set", json!({"key": "k", "value": "4", "get": true})).await.1, json!({"previous": "3"}));
    assert_eq!(s.post("/kv/getset", json!({"key": "k", "value": "5"})).await.1, json!({"previous": "4"}));
    assert_eq!(s.post("/kv/set", json!({"key": "k", "value": "6", "ttl": 100})).await.0, 200);
    assert_eq!(s.post("/kv/set", json!({"key": "k", "value": "7", "keepttl": true})).await.0, 200);
    let (_, ttl) = s.get("/kv/ttl/k").await;
    assert!(ttl["ttl"].as_u64().unwrap() > 90, "{ttl}");
    assert_eq!(s.post("/kv/set", json!({"key": "k", "value": "8"})).await.0, 200);
    assert_eq!(s.get("/kv/ttl/k").await.1, json!({"ttl": null, "ttl_ms": null}));
    // Bad combinations are 400s.
    assert_eq!(s.post("/kv/set", json!({"key": "k", "value": "1", "nx": true, "xx": true})).await.0, 400);
    assert_eq!(s.post("/kv/set", json!({"key": "k", "value": "1", "ttl": 0})).await.0, 400);
    assert_eq!(s.post("/kv/set", json!({"key": "k", "value": "1", "ttl": 1, "ttl_ms": 5})).await.0, 400);
    assert_eq!(s.post("/kv/set", json!({"key": "k"})).await.1["error"]["message"], "missing field 'value'");
    s.stop().await;
}

#[tokio::test]
async fn ttl_expiry_is_lazy_and_active() {
    let s = start_with(|c| c.kv.active_expiry_hz = 50).await;
    assert_eq!(s.post("/kv/set", json!({"key": "short", "value": "v", "ttl_ms": 40})).await.0, 200);
    assert_eq!(s.get("/kv/get/short").await.0, 200);
    tokio::time::sleep(Duration::from_millis(80)).await;
    assert_eq!(s.get("/kv/get/short").await.0, 404, "expired key is never returned");
    assert_eq!(s.get("/kv/ttl/short").await.0, 404);

    // Keys nobody reads are reclaimed by the background pass.
    let pairs: Vec<Value> = (0..500).map(|i| json!({"key": format!("t{i}"), "value": "x"})).collect();
    assert_eq!(s.post("/kv/mset", json!({"pairs": pairs})).await.0, 200);
    for i in 0..500 {
        assert_eq!(s.post(&format!("/kv/expire/t{i}"), json!({"ttl_ms": 30})).await.1, json!({"updated": true}));
    }
    let mut keys = u64::MAX;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        keys = s.get("/kv/stats").await.1["keys"].as_u64().unwrap();
        if keys == 0 {
            break;
        }
    }
    assert_eq!(keys, 0, "active expiry reclaimed every expired key");
    assert!(s.get("/kv/stats").await.1["expired_keys"].as_u64().unwrap() >= 500);
    s.stop().await;
}

#[tokio::test]
async fn expire_persist_and_conditions() {
    let s = start().await;
    s.post("/kv/set", json!({"key": "e", "value": "v"})).await;
    assert_eq!(s.post("/kv/expire/e", json!({"ttl": 100, "xx": true})).await.1, json!({"updated": false}));
    assert_eq!(s.post("/kv/expire/e", json!({"ttl": 100, "nx": true})).await.1, json!({"updated": true}));
    assert_eq!(s.post("/kv/expire/e", json!({"ttl": 50, "gt": true})).await.1, json!({"updated": false}));
    assert_eq!(s.post("/kv/expire/e", json!({"ttl": 50, "lt": true})).await.1, json!({"updated": true}));
    assert_eq!(s.post("/kv/persist/e", json!({})).await.1, json!({"updated": true}));
    assert_eq!(s.post("/kv/persist/e", json!({})).await.1, json!({"updated": false}));
    assert_eq!(s.post("/kv/expire/missing", json!({"ttl": 5})).await.1, json!({"updated": false}));
    // A TTL in the past deletes.
    assert_eq!(s.post("/kv/expire/e", json!({"ttl": -1})).await.1, json!({"updated": true}));
    assert_eq!(s.get("/kv/get/e").await.0, 404);
    assert_eq!(s.post("/kv/expire/e", json!({})).await.0, 400);
    s.stop().await;
}

#[tokio::test]
async fn counters_overflow_and_type_errors() {
    let s = start().await;
    assert_eq!(s.post("/kv/incr/c", json!({})).await.1, json!({"value": 1}));
    assert_eq!(s.post("/kv/incr/c", json!({"by": 41})).await.1, json!({"value": 42}));
    assert_eq!(s.post("/kv/decr/c", json!({"by": 2})).await.1, json!({"value": 40}));
    s.post("/kv/set", json!({"key": "big", "value": i64::MAX.to_string()})).await;
    let (status, body) = s.post("/kv/incr/big", json!({})).await;
    assert_eq!((status, body["error"]["code"].clone()), (400, json!("OVERFLOW")));
    assert_eq!(s.get("/kv/get/big").await.1["value"], i64::MAX.to_string(), "failed INCR changes nothing");
    s.post("/kv/set", json!({"key": "text", "value": "abc"})).await;
    let (status, body) = s.post("/kv/incr/text", json!({})).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], json!({"code": "NOT_INTEGER", "message": "value is not an integer or out of range"}));
    assert_eq!(s.post("/kv/incr/c", json!({"by": "x"})).await.0, 400);
    assert_eq!(s.post("/kv/incrbyfloat/f", json!({"by": 10.5})).await.1, json!({"value": 10.5, "text": "10.5"}));
    assert_eq!(s.post("/kv/incrbyfloat/f", json!({"by": -0.5})).await.1, json!({"value": 10.0, "text": "10"}));
    assert_eq!(s.post("/kv/incrbyfloat/text", json!({"by": 1})).await.1["error"]["code"], "NOT_FLOAT");
    s.stop().await;
}

#[tokio::test]
async fn strings_and_keys_routes() {
    let s = start().await;
    assert_eq!(s.post("/kv/append/a", json!({"value": "hello"})).await.1, json!({"length": 5}));
    assert_eq!(s.post("/kv/append/a", json!({"value": " world"})).await.1, json!({"length": 11}));
    assert_eq!(s.get("/kv/strlen/a").await.1, json!({"length": 11}));
    assert_eq!(s.get("/kv/type/a").await.1, json!({"type": "string"}));
    assert_eq!(s.get("/kv/type/zz").await.1, json!({"type": "none"}));
    assert_eq!(s.post("/kv/mset", json!({"entries": {"m1": "1", "m2": "2"}})).await.1, json!({"set": true}));
    assert_eq!(
        s.post("/kv/mset", json!({"pairs": [{"key": "m2", "value": "x"}], "nx": true})).await.1,
        json!({"set": false})
    );
    assert_eq!(s.post("/kv/mget", json!({"keys": ["m1", "zz", "m2"]})).await.1, json!({"values": ["1", null, "2"]}));
    assert_eq!(s.post("/kv/exists", json!({"keys": ["m1", "m2", "zz", "m1"]})).await.1, json!({"exists": 3}));
    assert_eq!(s.post("/kv/rename", json!({"from": "m1", "to": "m3"})).await.1, json!({"renamed": true}));
    assert_eq!(s.post("/kv/rename", json!({"from": "m1", "to": "m4"})).await.0, 404);
    assert_eq!(s.post("/kv/rename", json!({"from": "m3", "to": "m2", "nx": true})).await.1, json!({"renamed": false}));
    assert_eq!(s.post("/kv/getdel/m3", json!({})).await.1, json!({"key": "m3", "value": "1"}));
    assert_eq!(s.post("/kv/getdel/m3", json!({})).await.0, 404);
    let mut keys: Vec<String> = serde_json::from_value(s.get("/kv/keys?pattern=m*").await.1["keys"].clone()).unwrap();
    keys.sort();
    assert_eq!(keys, vec!["m2"]);
    assert_eq!(s.post("/kv/del", json!({"keys": ["a", "m2", "zz"]})).await.1, json!({"deleted": 2}));
    assert_eq!(s.get("/kv/dbsize").await.1, json!({"size": 0}));
    s.post("/kv/set", json!({"key": "r", "value": "1"})).await;
    assert_eq!(s.get("/kv/randomkey").await.1, json!({"key": "r"}));
    assert_eq!(s.post("/kv/flushall", json!({})).await.1, json!({"ok": true}));
    assert_eq!(s.get("/kv/dbsize").await.1, json!({"size": 0}));
    s.stop().await;
}

#[tokio::test]
async fn scan_returns_every_key_exactly_once_while_keys_are_added() {
    let s = start().await;
    let pairs: Vec<Value> = (0..2000).map(|i| json!({"key": format!("old:{i}"), "value": "v"})).collect();
    s.post("/kv/mset", json!({"pairs": pairs})).await;
    let mut seen = Vec::new();
    let mut cursor = "0".to_string();
    let mut added = 0;
    for round in 0..10_000 {
        let (status, page) = s.get(&format!("/kv/scan?cursor={cursor}&count=37&prefix=old:")).await;
        assert_eq!(status, 200);
        for k in page["keys"].as_array().unwrap() {
            seen.push(k.as_str().unwrap().to_string());
        }
        // Keys added during the scan, some of them matching the prefix.
        let batch: Vec<Value> = (0..10)
            .map(|i| json!({"key": format!("{}:{round}:{i}", if i % 2 == 0 { "old" } else { "new" }), "value": "v"}))
            .collect();
        added += batch.len();
        s.post("/kv/mset", json!({"pairs": batch})).await;
        cursor = page["cursor"].as_str().unwrap().to_string();
        if cursor == "0" {
            break;
        }
    }
    assert_eq!(cursor, "0", "scan finished");
    assert!(added > 0);
    let originals: Vec<&String> = seen.iter().filter(|k| k.split(':').count() == 2).collect();
    let unique: HashSet<&&String> = originals.iter().collect();
    assert_eq!(originals.len(), 2000, "each original key exactly once");
    assert_eq!(unique.len(), 2000);
    assert!(seen.iter().all(|k| k.starts_with("old:")), "prefix filter holds");
    // MATCH with a glob.
    let (_, page) = s.get("/kv/scan?match=old:1?&count=100000").await;
    assert_eq!(page["keys"].as_array().unwrap().len(), 10);
    assert_eq!(s.get("/kv/scan?count=0").await.0, 400);
    assert_eq!(s.get("/kv/scan?cursor=abc").await.0, 400);
    s.stop().await;
}

#[tokio::test]
async fn noeviction_refuses_writes_but_serves_reads() {
    let s = start_with(|c| c.kv.max_memory = ByteSize(64 * 1024)).await;
    let value = "x".repeat(1000);
    let mut refused = None;
    for i in 0..1000 {
        let (status, body) = s.post("/kv/set", json!({"key": format!("k{i}"), "value": value})).await;
        if status != 200 {
            refused = Some((i, status, body));
            break;
        }
    }
    let (i, status, body) = refused.expect("the limit is reached");
    assert!(i > 10);
    assert_eq!(status, 503);
    assert_eq!(body["error"]["code"], "OUT_OF_MEMORY");
    assert_eq!(s.get("/kv/get/k0").await.0, 200, "reads keep working");
    assert_eq!(s.delete("/kv/del/k0").await.1, json!({"deleted": 1}), "deletes keep working");
    let stats = s.get("/kv/stats").await.1;
    assert!(stats["used_memory"].as_u64().unwrap() <= 64 * 1024 + 2000);
    s.stop().await;
}

#[tokio::test]
async fn eviction_policies_keep_memory_under_the_limit() {
    for policy in [
        EvictionPolicy::AllKeysLru,
        EvictionPolicy::AllKeysLfu,
        EvictionPolicy::AllKeysRandom,
        EvictionPolicy::VolatileLru,
        EvictionPolicy::VolatileTtl,
    ] {
        let s = start_with(|c| {
            c.kv.max_memory = ByteSize(64 * 1024);
            c.kv.eviction_policy = Policy(policy);
        })
        .await;
        let value = "x".repeat(500);
        // A hot key read often (LRU/LFU should keep it) and a persistent key (volatile-* must keep it).
        s.post("/kv/set", json!({"key": "hot", "value": "h", "ttl": 10_000})).await;
        s.post("/kv/set", json!({"key": "persistent", "value": "p"})).await;
        for i in 0..2000 {
            let (status, body) =
                s.post("/kv/set", json!({"key": format!("k{i}"), "value": value, "ttl": 1000 + i})).await;
            assert_eq!(status, 200, "{policy:?}: {body}");
            if i % 10 == 0 {
                s.get("/kv/get/hot").await;
            }
        }
        let stats = s.get("/kv/stats").await.1;
        assert!(stats["used_memory"].as_u64().unwrap() <= 64 * 1024 + 1024, "{policy:?}: {stats}");
        assert!(stats["evicted_keys"].as_u64().unwrap() > 1000, "{policy:?}: {stats}");
        assert!(stats["keys"].as_u64().unwrap() > 20, "{policy:?}: {stats}");
        if matches!(policy, EvictionPolicy::VolatileLru | EvictionPolicy::VolatileTtl) {
            assert_eq!(s.get("/kv/get/persistent").await.0, 200, "{policy:?} never evicts persistent keys");
        }
        s.stop().await;
    }
}

#[tokio::test]
async fn volatile_policy_without_candidates_is_oom() {
    let s = start_with(|c| {
        c.kv.max_memory = ByteSize(16 * 1024);
        c.kv.eviction_policy = Policy(EvictionPolicy::VolatileLru);
    })
    .await;
    let value = "x".repeat(1000);
    let mut last = 200;
    for i in 0..100 {
        last = s.post("/kv/set", json!({"key": format!("p{i}"), "value": value})).await.0;
        if last != 200 {
            break;
        }
    }
    assert_eq!(last, 503);
    s.stop().await;
}

#[tokio::test]
async fn limits_and_malformed_requests() {
    let s = start_with(|c| {
        c.http.max_body_bytes = ByteSize(4096);
        c.kv.max_key_bytes = ByteSize(16);
        c.kv.max_value_bytes = ByteSize(1000);
    })
    .await;
    let (status, body) = s.post("/kv/set", json!({"key": "k", "value": "x".repeat(5000)})).await;
    assert_eq!(status, 413);
    assert_eq!(body["error"]["code"], "TOO_LARGE");
    let (status, body) = s.post("/kv/set", json!({"key": "k", "value": "x".repeat(1001)})).await;
    assert_eq!((status, body["error"]["code"].clone()), (413, json!("TOO_LARGE")));
    let (status, _) = s.post("/kv/set", json!({"key": "k".repeat(17), "value": "v"})).await;
    assert_eq!(status, 413);
    assert_eq!(s.post("/kv/append/k", json!({"value": "x".repeat(600)})).await.0, 200);
    assert_eq!(s.post("/kv/append/k", json!({"value": "x".repeat(600)})).await.0, 413);

    let r = s
        .http
        .post(s.url("/kv/set"))
        .header("content-type", "application/json")
        .body("{\"key\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert!(body["error"]["message"].as_str().unwrap().contains("malformed JSON"), "{body}");
    assert_eq!(s.post("/kv/set", json!(["not", "an", "object"])).await.0, 400);
    assert_eq!(s.post("/kv/set", json!({"key": 5, "value": {"base64": "!!"}})).await.0, 400);
    assert_eq!(s.post("/kv/set", json!({"key": ["a"], "value": "v"})).await.0, 400);
    assert_eq!(s.get("/kv/nothing").await.0, 404);
    assert_eq!(s.get("/nowhere").await.1["error"]["code"], "NOT_FOUND");
    assert_eq!(s.get("/kv/set").await.0, 405);
    assert_eq!(s.get("/kv/get/%zz").await.0, 400);
    s.stop().await;
}

#[tokio::test]
async fn envelope_commands_and_pipelines() {
    let s = start().await;
    let (status, one) = s
        .post(
            "/api/v1/command",
            json!({"command": "kv.set", "request_id": "r1", "payload": {"key": "a", "value": "1"}}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(one, json!({"success": true, "request_id": "r1", "payload": {"set": true}}));
    let pipeline = json!([
        {"command": "kv.incr", "request_id": 1, "payload": {"key": "a", "by": 9}},
        {"command": "kv.get", "request_id": 2, "payload": {"key": "a"}},
        {"command": "kv.get", "request_id": 3, "payload": {"key": "missing"}},
        {"command": "kv.bogus", "request_id": 4},
        {"command": "kv.set", "request_id": 5, "payload": {"key": "b"}},
        {"command": "kv.mget", "request_id": 6, "payload": {"keys": ["a", "b"]}},
        {"command": "kv.scan", "request_id": 7, "payload": {"count": 100}},
        {"command": "kv.stats", "request_id": 8},
    ]);
    let (status, replies) = s.post("/api/v1/command", pipeline).await;
    assert_eq!(status, 200);
    let r = replies.as_array().unwrap();
    assert_eq!(r.len(), 8);
    assert_eq!(r[0]["payload"], json!({"value": 10}));
    assert_eq!(r[1]["payload"], json!({"key": "a", "value": "10"}));
    assert_eq!(r[2]["success"], false);
    assert_eq!(r[2]["error"]["code"], "NOT_FOUND");
    assert_eq!(r[3]["error"]["message"], "unknown command 'kv.bogus'");
    assert_eq!(r[4]["error"]["message"], "missing field 'value'");
    assert_eq!(r[5]["payload"], json!({"values": ["10", null]}));
    assert_eq!(r[6]["payload"]["keys"], json!(["a"]));
    assert_eq!(r[7]["payload"]["keys"], 1);
    for (i, reply) in r.iter().enumerate() {
        assert_eq!(reply["request_id"], json!(i + 1));
    }
    assert_eq!(s.post("/api/v1/command", json!("kv.get")).await.0, 400);
    assert_eq!(
        s.post("/api/v1/command", json!({"payload": {}})).await.1["error"]["message"],
        "missing field 'command'"
    );
    s.stop().await;
}

#[tokio::test]
async fn health_reports_status() {
    let s = start().await;
    let (status, body) = s.get("/health").await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "ok");
    assert_eq!(body["role"], "master");
    s.stop().await;
}
