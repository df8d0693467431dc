//! Users on HTTP: every route refuses a request without credentials once a password is set (401), a
//! user's rules hold on every envelope command and REST route (403), API keys work, expire and are
//! revoked, and a route without an access rule is refused.

#![recursion_limit = "256"]

mod common;

use std::time::Duration;

use serde_json::{Value, json};
use synap_server::http::auth::{ROUTES, Rule};

const ADMIN: (&str, &str) = ("default", "adm1n-pass");

async fn server() -> common::TestServer {
    common::start_with(|c| c.auth.requirepass = ADMIN.1.to_string()).await
}

/// A sample path for a route pattern.
fn sample(path: &str) -> String {
    path.replace("{op}", "get")
        .replace("{key}", "k")
        .replace("{*rest}", "x/y")
        .replace("{id}", "nosuch")
        .replace("{topic}", "t")
}

async fn send(
    s: &common::TestServer,
    method: &str,
    path: &str,
    auth: Option<(&str, &str)>,
    bearer: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let m = reqwest::Method::from_bytes(if method == "*" { b"GET" } else { method.as_bytes() }).unwrap();
    let mut r = s.http.request(m, s.url(path));
    if let Some((u, p)) = auth {
        r = r.basic_auth(u, Some(p));
    }
    if let Some(t) = bearer {
        r = r.bearer_auth(t);
    }
    if let Some(b) = body {
        r = r.json(&b);
    }
    let resp = r.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// Generated from the route table: without credentials every route but /health answers 401 with a JSON
/// error; with a wrong password too; with the right one, never 401 or 403.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_needs_credentials() {
    let s = server().await;
    assert!(ROUTES.len() >= 20);
    for (method, path, rule) in ROUTES {
        let p = sample(path);
        let (code, body) = send(&s, method, &p, None, None, None).await;
        if *rule == Rule::Open {
            assert_eq!(code, 200, "{method} {p}");
            continue;
        }
        assert_eq!(code, 401, "{method} {p}: {body}");
        assert_eq!(body["error"]["code"], "UNAUTHORIZED", "{method} {p}");
        let (code, _) = send(&s, method, &p, Some((ADMIN.0, "wrong")), None, None).await;
        assert_eq!(code, 401, "{method} {p} with a wrong password");
        let (code, body) = send(&s, method, &p, Some(ADMIN), None, None).await;
        assert!(code != 401 && code != 403, "{method} {p} as admin: {code} {body}");
    }
    // A route the table does not know is not served (404 from the fallback, before any rule).
    let (code, _) = send(&s, "GET", "/no/such/route", Some(ADMIN), None, None).await;
    assert_eq!(code, 404);
    s.stop().await;
}

/// The payload fields that may name a key.
const KEY_FIELDS: &[&str] = &["key", "keys", "destination", "source", "queue", "name", "room", "to", "stream"];

/// Ops that name no key (they act on the whole keyspace or list names).
const KEYLESS: &[&str] = &[
    "kv.keys",
    "kv.scan",
    "kv.randomkey",
    "kv.dbsize",
    "kv.flushall",
    "queue.list",
    "stream.list",
    "pubsub.stats",
    "kv.stats",
];

/// A payload that names the key `key` in every field an op may read a key from, with plausible values
/// for the others.
fn payload(name: &str, key: &str, variant: usize) -> Value {
    let members =
        if name.starts_with("zset.") && variant == 0 { json!([{"member": "m", "score": 1}]) } else { json!(["m"]) };
    let fields = if variant == 0 { json!({"f": "v"}) } else { json!(["f"]) };
    json!({
        "members": members, "values": ["a"], "fields": fields, "cursor": "0", "max_events": 10,
        "where": "before", "wherefrom": "left", "whereto": "left", "min": "-inf", "max": "+inf",
        "key": key, "keys": [key], "destination": key, "source": key, "queue": key, "name": key,
        "room": key, "to": key, "stream": key, "topic": key, "channel": key,
        "pairs": [{"key": key, "value": "v"}], "value": "1", "field": "f", "member": "m",
        "payload": "p", "group": "g", "consumer": "c", "consumer_id": "c", "score": 1, "start": 0, "stop": -1,
        "index": 0, "count": 1, "by": 1, "ttl": 1000, "seconds": 10, "message_id": "1", "message_ids": ["1"],
        "data": {"a": 1}, "event": "e", "partition": 0, "offset": 0, "pivot": "m", "position": "before",
    })
}

/// Generated from the envelope's command list: a user allowed every command but only keys `ok*` gets
/// 403 NOPERM on every command that names another key, and the same command on an allowed key is not
/// refused. An op whose key field the check missed would succeed here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_hold_on_every_envelope_command() {
    let s = server().await;
    let mut c = redis::Client::open(format!("redis://:{}@{}/", ADMIN.1, s.server.as_ref().unwrap().resp_addr.unwrap()))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let _: () = redis::cmd("ACL")
        .arg(&["SETUSER", "carol", "on", ">carol-pw", "~ok*", "&ok*", "+@all", "-@dangerous"])
        .query_async(&mut c)
        .await
        .unwrap();
    let carol = Some(("carol", "carol-pw"));
    let (mut checked, mut skipped, mut fields_checked) = (0, Vec::new(), 0);
    for name in synap_server::http::ops::names() {
        // Does the payload parse for this op (as the admin, on a key nobody else uses)? Two shapes of
        // the fields some ops read differently.
        let mut variant = None;
        for v in 0..2 {
            let body = json!({"command": name, "payload": payload(name, "adm", v)});
            let (_, admin) = send(&s, "POST", "/api/v1/command", Some(ADMIN), None, Some(body)).await;
            if admin["success"] == true
                || !matches!(admin["error"]["code"].as_str(), Some("BAD_REQUEST" | "ERR" | "SYNTAX"))
            {
                variant = Some(v);
                break;
            }
        }
        let Some(v) = variant else {
            skipped.push(name);
            continue;
        };
        let cmd = |key: &str| json!({"command": name, "payload": payload(name, key, v)});
        let (code, denied) = send(&s, "POST", "/api/v1/command", carol, None, Some(cmd("denied"))).await;
        assert_eq!(code, 200, "{name}: {denied}");
        if KEYLESS.contains(&name) {
            continue;
        }
        assert_eq!(denied["success"], false, "{name} ran on a key outside ~ok*: {denied}");
        assert_eq!(denied["error"]["code"], "NOPERM", "{name}: {denied}");
        let (_, allowed) = send(&s, "POST", "/api/v1/command", carol, None, Some(cmd("ok1"))).await;
        assert_ne!(allowed["error"]["code"], "NOPERM", "{name} refused on an allowed key: {allowed}");
        // Field by field: every key field the op reads (its parse rejects a malformed value there) names
        // a key the check sees.
        for f in KEY_FIELDS {
            let mut probe = payload(name, "adm", v);
            probe[*f] = json!([[1]]);
            let (_, admin) = send(
                &s,
                "POST",
                "/api/v1/command",
                Some(ADMIN),
                None,
                Some(json!({"command": name, "payload": probe})),
            )
            .await;
            let reads = admin["error"]["message"].as_str().is_some_and(|m| m.contains(&format!("'{f}'")));
            if !reads {
                continue;
            }
            let mut one = payload(name, "ok1", v);
            one[*f] = if one[*f].is_array() { json!(["denied"]) } else { json!("denied") };
            let (_, r) =
                send(&s, "POST", "/api/v1/command", carol, None, Some(json!({"command": name, "payload": one}))).await;
            assert_eq!(r["error"]["code"], "NOPERM", "{name} with only '{f}' outside ~ok*: {r}");
            fields_checked += 1;
        }
        checked += 1;
    }
    eprintln!("checked {checked} ({fields_checked} key fields), skipped {skipped:?}");
    assert!(fields_checked >= checked, "{fields_checked} key fields for {checked} commands");
    assert!(checked >= 60, "only {checked} commands checked; payload did not parse for {skipped:?}");
    // REST routes and pub/sub go through the same check.
    let (code, body) = send(&s, "GET", "/kv/get/denied", carol, None, None).await;
    assert_eq!((code, body["error"]["code"].clone()), (403, json!("NOPERM")), "{body}");
    let (code, _) = send(&s, "POST", "/kv/set", carol, None, Some(json!({"key": "ok2", "value": "v"}))).await;
    assert_eq!(code, 200);
    let (code, _) = send(&s, "POST", "/pubsub/nope/publish", carol, None, Some(json!({"payload": "x"}))).await;
    assert_eq!(code, 403);
    let (code, _) = send(&s, "POST", "/pubsub/ok.t/publish", carol, None, Some(json!({"payload": "x"}))).await;
    assert_eq!(code, 200);
    let (code, _) = send(&s, "GET", "/pubsub/sse?topics=nope", carol, None, None).await;
    assert_eq!(code, 403);
    let (code, _) = send(&s, "POST", "/kv/flushall", carol, None, None).await;
    assert_eq!(code, 403, "flushall is @dangerous");
    // Admin routes need the admin's commands.
    let (code, _) = send(&s, "GET", "/auth/keys", carol, None, None).await;
    assert_eq!(code, 403);
    let (code, _) = send(&s, "POST", "/snapshot", carol, None, None).await;
    assert_eq!(code, 403);
    s.stop().await;
}

/// API keys: created by an admin for a user (shown once), usable as Bearer, listed without the secret,
/// expiring, revocable; a short-lived token for browsers works as `access_token` on SSE.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_and_tokens() {
    let s = server().await;
    let mut c = redis::Client::open(format!("redis://:{}@{}/", ADMIN.1, s.server.as_ref().unwrap().resp_addr.unwrap()))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let _: () = redis::cmd("ACL")
        .arg(&["SETUSER", "dave", "on", ">dave-pw", "~d*", "&*", "+@read", "+@write", "+@pubsub"])
        .query_async(&mut c)
        .await
        .unwrap();
    let (code, k) =
        send(&s, "POST", "/auth/keys", Some(ADMIN), None, Some(json!({"user": "dave", "label": "ci"}))).await;
    assert_eq!(code, 201, "{k}");
    let key = k["key"].as_str().unwrap().to_string();
    assert!(key.starts_with("synap_") && key.len() == 70, "{key}");
    let (code, me) = send(&s, "GET", "/auth/whoami", None, Some(&key), None).await;
    assert_eq!((code, me["user"].clone(), me["authenticated_by"].clone()), (200, json!("dave"), json!("key")));
    let (code, _) = send(&s, "POST", "/kv/set", None, Some(&key), Some(json!({"key": "d1", "value": "v"}))).await;
    assert_eq!(code, 200);
    let (code, _) = send(&s, "POST", "/kv/set", None, Some(&key), Some(json!({"key": "x1", "value": "v"}))).await;
    assert_eq!(code, 403);
    let (_, list) = send(&s, "GET", "/auth/keys", Some(ADMIN), None, None).await;
    let listed = list["keys"].as_array().unwrap();
    assert_eq!(listed.len(), 1, "{list}");
    assert!(!list.to_string().contains(&key[6..]), "a listing shows the secret");
    // Bad requests.
    for bad in [json!({}), json!({"user": "nosuch"}), json!({"user": "dave", "expires_in_secs": 0})] {
        let (code, body) = send(&s, "POST", "/auth/keys", Some(ADMIN), None, Some(bad.clone())).await;
        assert!(code == 400 || code == 404, "{bad}: {code} {body}");
        assert!(body["error"]["message"].is_string(), "{body}");
    }
    // A non-admin cannot make keys.
    let (code, _) =
        send(&s, "POST", "/auth/keys", Some(("dave", "dave-pw")), None, Some(json!({"user": "dave"}))).await;
    assert_eq!(code, 403);
    // Expiry.
    let (_, short) =
        send(&s, "POST", "/auth/keys", Some(ADMIN), None, Some(json!({"user": "dave", "expires_in_secs": 1}))).await;
    let short = short["key"].as_str().unwrap().to_string();
    assert_eq!(send(&s, "GET", "/auth/whoami", None, Some(&short), None).await.0, 200);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(send(&s, "GET", "/auth/whoami", None, Some(&short), None).await.0, 401);
    // A browser token on SSE.
    let (code, t) = send(&s, "POST", "/auth/token", Some(("dave", "dave-pw")), None, None).await;
    assert_eq!(code, 201, "{t}");
    let token = t["token"].as_str().unwrap();
    let resp = s.http.get(s.url(&format!("/pubsub/sse?topics=a&access_token={token}"))).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    drop(resp);
    let resp = s.http.get(s.url("/pubsub/sse?topics=a&access_token=synap_bogus")).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    // A session open with a key ends when the key is revoked.
    let mut sse = s.http.get(s.url("/pubsub/sse?topics=a")).bearer_auth(&key).send().await.unwrap();
    assert_eq!(sse.status().as_u16(), 200);
    // Revoked.
    let id = k["id"].as_str().unwrap();
    assert_eq!(send(&s, "DELETE", &format!("/auth/keys/{id}"), Some(ADMIN), None, None).await.0, 200);
    assert_eq!(send(&s, "DELETE", &format!("/auth/keys/{id}"), Some(ADMIN), None, None).await.0, 404);
    assert_eq!(send(&s, "GET", "/auth/whoami", None, Some(&key), None).await.0, 401);
    let ended =
        tokio::time::timeout(Duration::from_secs(10), async { while let Ok(Some(_)) = sse.chunk().await {} }).await;
    assert!(ended.is_ok(), "the SSE stream of a revoked key went on");
    s.stop().await;
}
