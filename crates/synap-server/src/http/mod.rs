//! The HTTP front end: REST routes and the command envelope (`POST /api/v1/command`), a thin codec over
//! the engine. Every route names an entry of [`ops::OPS`] and builds its payload from path, query and body.

pub mod auth;
pub mod body;
mod guard;
pub mod ops;
mod pubsub;
mod queue;
pub mod serve;
mod stream;
mod types;

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use bytes::Bytes;
use serde_json::{Map, Value, json};

use synap_core::command::{Block, QueueCmd, StreamCmd, WaitOn};
use synap_core::{Command, Reply};

use self::body::{ApiError, Format, bytes_to_json, parse_body, percent_decode, respond, response_format};
use crate::service::Service;

type AppState = Arc<Service>;

pub fn router(service: Arc<Service>) -> Router {
    let limit = service.config.http.max_body_bytes.0 as usize;
    let body_timeout = std::time::Duration::from_secs(service.config.http.body_timeout_secs);
    let guard = Arc::new(guard::Guard::new(&service.config));
    let cors = guard.cors();
    let routes = Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/info", get(info))
        .route("/snapshot", post(snapshot))
        .route("/replication/status", get(replication_status))
        .route("/replication/digest", get(replication_digest))
        .route("/cluster/status", get(cluster_status))
        .route("/cluster/nodes", post(cluster_add_node))
        .route("/cluster/nodes/{id}", axum::routing::delete(cluster_remove_node))
        .route("/kv/stats", get(kv_stats))
        .route("/api/v1/command", post(envelope))
        .route("/kv/{op}", any(rest_route))
        .route("/kv/{op}/{key}", any(rest_route))
        .route("/queue/{*rest}", any(queue::rest))
        .route("/stream/{*rest}", any(stream::rest))
        .route("/hash/{*rest}", any(type_route))
        .route("/list/{*rest}", any(type_route))
        .route("/set/{*rest}", any(type_route))
        .route("/zset/{*rest}", any(type_route))
        .route("/pubsub/stats", get(pubsub::stats))
        .route("/pubsub/ws", get(pubsub::ws))
        .route("/pubsub/sse", get(pubsub::sse))
        .route("/pubsub/{topic}/publish", post(pubsub::publish))
        .route("/auth/whoami", get(auth::whoami))
        .route("/auth/token", post(auth::token))
        .route("/auth/keys", post(auth::create).get(auth::list))
        .route("/auth/keys/{id}", axum::routing::delete(auth::revoke))
        // Credentials and each route's rule (auth::ROUTES), on every route above.
        .route_layer(axum::middleware::from_fn_with_state(service.clone(), auth::authenticate))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(limit))
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(body_timeout))
        .layer(axum::middleware::from_fn_with_state(service.stats.clone(), count_bytes))
        .with_state(service);
    // The guard runs first (outermost), then CORS headers for the origins it let through.
    let routes = match cors {
        Some(cors) => routes.layer(cors),
        None => routes,
    };
    routes.layer(axum::middleware::from_fn_with_state(guard, guard::guard))
}

/// Counts the bytes of request and response bodies whose size is known up front (not WebSocket or SSE
/// streams), for INFO and `synap_net_*_bytes_total{protocol="http"}`.
async fn count_bytes(
    State(stats): State<Arc<crate::stats::ServerStats>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    use hyper::body::Body as _;
    if let Some(n) = req.body().size_hint().exact() {
        stats.add_in(crate::stats::Front::Http, n as usize);
    }
    let resp = next.run(req).await;
    if let Some(n) = resp.body().size_hint().exact() {
        stats.add_out(crate::stats::Front::Http, n as usize);
    }
    resp
}

/// The router of `metrics.addr`: `/metrics` (and `/health`) alone, with the same credentials and checks.
pub fn metrics_router(service: Arc<Service>) -> Router {
    let guard = Arc::new(guard::Guard::new(&service.config));
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route_layer(axum::middleware::from_fn_with_state(service.clone(), auth::authenticate))
        .fallback(not_found)
        .with_state(service)
        .layer(axum::middleware::from_fn_with_state(guard, guard::guard))
}

async fn not_found(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!("no route for {method} {}", uri.path()))
}

/// The payload a REST route hands its op: the body's JSON object, query parameters for fields the body
/// does not give, and `fields` from the path (which win).
pub(crate) fn request_payload(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    query: HashMap<String, String>,
    fields: impl IntoIterator<Item = (&'static str, Bytes)>,
) -> Result<Value, ApiError> {
    let body = read_body(body)?;
    let mut payload = match parse_body(headers, &body)? {
        Value::Object(m) => m,
        _ => return Err(ApiError::bad_request("request body must be a JSON object")),
    };
    for (k, v) in query {
        payload.entry(k).or_insert(Value::String(v));
    }
    for (k, v) in fields {
        payload.insert(k.into(), bytes_to_json(&v));
    }
    Ok(Value::Object(payload))
}

/// The percent-decoded segments of a path under `prefix` (`/queue/`, `/stream/`); an empty segment is
/// no route.
pub(crate) fn path_segments(method: &Method, uri: &Uri, prefix: &str) -> Result<Vec<Bytes>, ApiError> {
    let path = uri.path().strip_prefix(prefix).unwrap_or_default();
    let segs: Vec<Bytes> = path.split('/').map(percent_decode).collect::<Result<_, _>>()?;
    if segs.iter().any(|s| s.is_empty()) {
        return Err(ApiError::not_found(format!("no route for {method} {}", uri.path())));
    }
    Ok(segs)
}

/// A request body, or the matching API error (413 past the limit).
pub(crate) fn read_body(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|rej| {
        if rej.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::too_large(format!("request body exceeds the limit: {}", rej.body_text()))
        } else {
            ApiError { status: rej.status(), code: "BAD_REQUEST", message: rej.body_text() }
        }
    })
}

/// Liveness and readiness: 200 `ok`, or 503 `degraded` when persistence failed and writes are refused.
/// Replication: role, ids, offsets, the link to the primary (a replica) and each replica's lag (a
/// primary), measured from the offsets the replicas acknowledge.
async fn replication_status(State(svc): State<AppState>) -> Response {
    let repl = &svc.replication;
    let (replid, replid2, offset2) = repl.replid();
    let replicas: Vec<_> = repl
        .links()
        .iter()
        .map(|l| {
            let (records, bytes, ms) = repl.lag(l);
            json!({
                "id": l.id,
                "ip": l.addr.ip().to_string(),
                "port": l.port,
                "state": if l.is_online() { "online" } else { "copying" },
                "acked_lsn": l.acked.load(std::sync::atomic::Ordering::Acquire),
                "lag_records": records,
                "lag_bytes": bytes,
                "lag_ms": ms,
                "last_ack_secs": l.ack_age_secs(),
            })
        })
        .collect();
    let primary = if repl.is_replica() {
        let (host, port, state, up, ago, syncing) = repl.upstream();
        let last = repl.log.last_lsn();
        json!({
            "host": host,
            "port": port,
            "state": state,
            "link": if up { "up" } else { "down" },
            "last_io_secs": ago,
            "sync_in_progress": syncing,
            "primary_lsn": repl.primary_lsn(),
            "lag_records": repl.primary_lsn().saturating_sub(last),
        })
    } else {
        serde_json::Value::Null
    };
    let body = json!({
        "role": if repl.is_replica() { "replica" } else { "master" },
        "replid": replid,
        "replid2": replid2,
        "replid2_lsn": offset2,
        "lsn": repl.log.last_lsn(),
        "min_replicas_to_ack": repl.roles.min_acks(),
        "primary": primary,
        "replicas": replicas,
        "full_syncs": repl.full_syncs.load(std::sync::atomic::Ordering::Relaxed),
        "partial_syncs": repl.partial_syncs.load(std::sync::atomic::Ordering::Relaxed),
        "copies_loaded": repl.copies_loaded.load(std::sync::atomic::Ordering::Relaxed),
    });
    axum::Json(body).into_response()
}

fn cluster_of(svc: &Service) -> Result<&Arc<crate::cluster::Cluster>, ApiError> {
    svc.cluster.get().ok_or_else(|| ApiError::not_found("this node is not in a cluster (cluster.enabled is off)"))
}

/// A membership change's failure: 503 when this node is not the quorum's leader (the message names it),
/// 400 otherwise.
fn cluster_error(msg: String) -> ApiError {
    let message = msg.strip_prefix("ERR ").unwrap_or(&msg).to_string();
    if message.contains("leader") {
        ApiError { status: StatusCode::SERVICE_UNAVAILABLE, code: "NOT_LEADER", message }
    } else {
        ApiError::bad_request(message)
    }
}

/// The cluster as this node sees it: epoch, primary, ISR, the quorum's leader and term, the members and
/// their addresses, whether this node takes writes.
async fn cluster_status(State(svc): State<AppState>) -> Response {
    match cluster_of(&svc) {
        Ok(c) => axum::Json(c.status()).into_response(),
        Err(e) => e.into_response(),
    }
}

/// POST /cluster/nodes `{"id": 2, "addr": "host:port"}` (the node's cluster port): CLUSTER ADDNODE.
async fn cluster_add_node(State(svc): State<AppState>, body: Result<Bytes, BytesRejection>) -> Response {
    let cluster = match cluster_of(&svc) {
        Ok(c) => c.clone(),
        Err(e) => return e.into_response(),
    };
    let Ok(body) = body else { return ApiError::bad_request("unreadable body").into_response() };
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct AddNode {
        id: u64,
        addr: String,
    }
    let req: AddNode = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return ApiError::bad_request(format!("expected {{\"id\": <node id>, \"addr\": \"host:port\"}}: {e}"))
                .into_response();
        }
    };
    if req.id == 0 || crate::cluster::split_addr(&req.addr).is_none() {
        return ApiError::bad_request("id must be positive and addr host:port").into_response();
    }
    match cluster.add_node(req.id, &req.addr).await {
        Ok(()) => axum::Json(json!({"ok": true, "id": req.id})).into_response(),
        Err(e) => cluster_error(e).into_response(),
    }
}

/// DELETE /cluster/nodes/{id}: CLUSTER REMOVENODE.
async fn cluster_remove_node(
    State(svc): State<AppState>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Response {
    let cluster = match cluster_of(&svc) {
        Ok(c) => c.clone(),
        Err(e) => return e.into_response(),
    };
    let Some(id) = id.parse::<u64>().ok().filter(|n| *n > 0) else {
        return ApiError::bad_request("node id must be a positive integer").into_response();
    };
    match cluster.remove_node(id).await {
        Ok(()) => axum::Json(json!({"ok": true, "id": id})).into_response(),
        Err(e) => cluster_error(e).into_response(),
    }
}

/// The engine digest (DEBUG DIGEST): equal on a primary and a replica that hold the same data. Walks
/// everything, on a blocking thread.
async fn replication_digest(State(svc): State<AppState>) -> Response {
    let engine = svc.engine.clone();
    let lsn = svc.replication.log.last_lsn();
    match tokio::task::spawn_blocking(move || engine.digest()).await {
        Ok(d) => axum::Json(json!({"digest": format!("{d:016x}"), "lsn": lsn})).into_response(),
        Err(e) => ApiError::from(synap_core::CommandError::Internal(e.to_string())).into_response(),
    }
}

/// `GET /metrics`: Prometheus text (rendered on a blocking thread: it walks every queue and stream).
pub(crate) async fn metrics(State(svc): State<AppState>) -> Response {
    match tokio::task::spawn_blocking(move || crate::metrics::render(&svc)).await {
        Ok(text) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response(),
        Err(e) => {
            ApiError { status: StatusCode::INTERNAL_SERVER_ERROR, code: "INTERNAL", message: format!("metrics: {e}") }
                .into_response()
        }
    }
}

/// `GET /info[?section=a,b]`: INFO as JSON, `{section: {field: value}}`.
async fn info(State(svc): State<AppState>, Query(query): Query<HashMap<String, String>>) -> Response {
    let sections: Vec<String> = query
        .get("section")
        .map(|s| s.split(',').map(|x| x.trim().to_string()).filter(|x| !x.is_empty()).collect())
        .unwrap_or_default();
    match tokio::task::spawn_blocking(move || crate::info::info_json(&crate::info::info(&svc, &sections))).await {
        Ok(v) => axum::Json(v).into_response(),
        Err(e) => {
            ApiError { status: StatusCode::INTERNAL_SERVER_ERROR, code: "INTERNAL", message: format!("info: {e}") }
                .into_response()
        }
    }
}

async fn health(State(svc): State<AppState>) -> Response {
    let failure = svc.persistence_failure();
    let persistence = match &svc.persistence {
        None => json!({"enabled": false}),
        Some(p) => {
            let progress = p.wal().progress();
            json!({
                "enabled": true,
                "fsync": format!("{:?}", p.wal().policy()).to_lowercase(),
                "last_lsn": p.wal().last_lsn(),
                "written_lsn": progress.written,
                "synced_lsn": progress.synced,
                "failed": failure,
            })
        }
    };
    let (status, word) =
        if failure.is_some() { (StatusCode::SERVICE_UNAVAILABLE, "degraded") } else { (StatusCode::OK, "ok") };
    let body = json!({
        "status": word,
        "role": if svc.replication.is_replica() { "replica" } else { "master" },
        "uptime_secs": svc.uptime_secs(),
        "version": env!("CARGO_PKG_VERSION"),
        "persistence": persistence,
    });
    (status, axum::Json(body)).into_response()
}

/// `POST /snapshot`: takes a snapshot now.
async fn snapshot(State(svc): State<AppState>) -> Response {
    let Some(p) = svc.persistence.clone() else {
        return ApiError {
            status: StatusCode::CONFLICT,
            code: "PERSISTENCE_DISABLED",
            message: "persistence is disabled; nothing to snapshot".into(),
        }
        .into_response();
    };
    match tokio::task::spawn_blocking(move || p.snapshot()).await {
        Ok(Ok(info)) => (
            StatusCode::OK,
            axum::Json(json!({
                "path": info.path.file_name().map(|n| n.to_string_lossy().to_string()),
                "lsn": info.lsn,
                "entries": info.entries,
                "bytes": info.bytes,
                "millis": info.millis,
            })),
        )
            .into_response(),
        Ok(Err(e @ synap_storage::StorageError::SnapshotInProgress)) => {
            ApiError { status: StatusCode::CONFLICT, code: "SNAPSHOT_IN_PROGRESS", message: e.to_string() }
                .into_response()
        }
        Ok(Err(e)) => {
            ApiError { status: StatusCode::SERVICE_UNAVAILABLE, code: "PERSISTENCE_FAILED", message: e.to_string() }
                .into_response()
        }
        Err(e) => ApiError { status: StatusCode::INTERNAL_SERVER_ERROR, code: "INTERNAL", message: e.to_string() }
            .into_response(),
    }
}

async fn kv_stats(State(svc): State<AppState>, headers: HeaderMap) -> Response {
    respond(response_format(&headers), StatusCode::OK, &stats_json(&svc))
}

pub fn stats_json(svc: &Service) -> Value {
    let s = svc.engine.kv_stats();
    json!({
        "keys": s.keys,
        "volatile_keys": s.volatile_keys,
        "used_memory": s.used_memory,
        "max_memory": s.max_memory,
        "eviction_policy": s.eviction.name(),
        "hits": s.hits,
        "misses": s.misses,
        "expired_keys": s.expired,
        "evicted_keys": s.evicted,
        "shards": s.shards,
    })
}

/// REST route table: (method, path operation, whether a key is in the path) -> envelope command name.
fn rest_op(method: &Method, op: &str, keyed: bool) -> Option<&'static str> {
    let name = match (method.as_str(), op, keyed) {
        ("POST", "set", false) => "kv.set",
        ("GET", "get", true) => "kv.get",
        ("DELETE", "del", true) | ("POST", "del", false) => "kv.del",
        ("POST", "exists", false) => "kv.exists",
        ("POST", "mget", false) => "kv.mget",
        ("POST", "mset", false) => "kv.mset",
        ("POST", "incr", true) => "kv.incr",
        ("POST", "decr", true) => "kv.decr",
        ("POST", "incrbyfloat", true) => "kv.incrbyfloat",
        ("POST", "append", true) => "kv.append",
        ("GET", "strlen", true) => "kv.strlen",
        ("POST", "getset", false) => "kv.getset",
        ("POST", "getdel", true) => "kv.getdel",
        ("POST", "expire", true) => "kv.expire",
        ("POST", "persist", true) => "kv.persist",
        ("GET", "ttl", true) => "kv.ttl",
        ("GET", "type", true) => "kv.type",
        ("POST", "rename", false) => "kv.rename",
        ("GET", "keys", false) => "kv.keys",
        ("GET", "scan", false) => "kv.scan",
        ("GET", "randomkey", false) => "kv.randomkey",
        ("GET", "dbsize", false) => "kv.dbsize",
        ("POST", "flushall", false) => "kv.flushall",
        _ => return None,
    };
    Some(name)
}

/// Every `/kv/...` route: the path is split by hand (see `rest`), so one handler serves both shapes.
/// `GET|POST /{hash|list|set|zset}/{op}[/{key}]`: the `{type}.{op}` envelope command with the query and
/// body (and the key from the path) as its payload; answers `{"result": ...}`.
async fn type_route(
    State(svc): State<AppState>,
    axum::Extension(principal): axum::Extension<auth::Principal>,
    method: Method,
    uri: Uri,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let format = response_format(&headers);
    let result = async {
        if method != Method::GET && method != Method::POST {
            return Err(ApiError {
                status: StatusCode::METHOD_NOT_ALLOWED,
                code: "METHOD_NOT_ALLOWED",
                message: format!("{method} is not allowed on this route"),
            });
        }
        let path = uri.path().trim_start_matches('/');
        let (kind, rest) = path.split_once('/').unwrap_or((path, ""));
        let (op_seg, key) = match rest.split_once('/') {
            Some((op, key)) => (op, Some(percent_decode(key)?)),
            None => (rest, None),
        };
        let name = format!("{kind}.{op_seg}");
        let op = ops::find(&name)
            .filter(|op| op.name.starts_with(kind))
            .ok_or_else(|| ApiError::not_found(format!("no route for {method} {}", uri.path())))?;
        let payload = request_payload(&headers, body, query, key.map(|k| ("key", k)))?;
        let db = payload_db(svc.engine.databases(), &payload)?;
        let cmd = (op.parse)(&payload)?;
        auth::permit(&svc, &principal, &cmd, &payload)?;
        let reply = svc.execute_in(db, cmd).await?;
        (op.render)(&payload, reply)
    }
    .await;
    match result {
        Ok(v) => respond(format, StatusCode::OK, &v),
        Err(e) => respond(format, e.status, &e.body()),
    }
}

async fn rest_route(
    State(svc): State<AppState>,
    axum::Extension(principal): axum::Extension<auth::Principal>,
    method: Method,
    uri: Uri,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    rest(svc, principal, method, uri, query, headers, body).await.unwrap_or_else(IntoResponse::into_response)
}

async fn rest(
    svc: AppState,
    principal: auth::Principal,
    method: Method,
    uri: Uri,
    query: HashMap<String, String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    // The path is split by hand: axum's extractors insist on UTF-8, but keys are binary-safe.
    let path = uri.path().strip_prefix("/kv/").unwrap_or_default();
    let (op_seg, key) = match path.split_once('/') {
        Some((op, key)) => (op.to_string(), Some(percent_decode(key)?)),
        None => (path.to_string(), None),
    };
    let Some(name) = rest_op(&method, &op_seg, key.is_some()) else {
        return Err(
            if rest_op(&Method::GET, &op_seg, key.is_some()).is_some()
                || rest_op(&Method::POST, &op_seg, key.is_some()).is_some()
                || rest_op(&Method::DELETE, &op_seg, key.is_some()).is_some()
            {
                ApiError {
                    status: StatusCode::METHOD_NOT_ALLOWED,
                    code: "METHOD_NOT_ALLOWED",
                    message: format!("{method} is not allowed on this route"),
                }
            } else {
                ApiError::not_found(format!("no route for {method} /kv/{op_seg}"))
            },
        );
    };
    // Query parameters fill fields the body does not give (GET routes, raw-body SET).
    let payload = request_payload(&headers, body, query, key.map(|k| ("key", k)))?;
    let format = response_format(&headers);
    let op = ops::find(name).expect("route names a known op");
    let cmd = (op.parse)(&payload)?;
    auth::permit(&svc, &principal, &cmd, &payload)?;
    let db = payload_db(svc.engine.databases(), &payload)?;
    let reply = svc.execute_in(db, cmd).await?;
    // Raw responses: the bare value of a GET.
    if format == Format::Raw
        && let synap_core::Reply::Bulk(b) = &reply
    {
        return Ok((StatusCode::OK, [(header::CONTENT_TYPE, body::OCTET)], b.clone()).into_response());
    }
    let out = (op.render)(&payload, reply)?;
    Ok(respond(format, StatusCode::OK, &out))
}

/// `POST /api/v1/command`: one envelope, or an array of envelopes executed in order as a pipeline.
async fn envelope(
    State(svc): State<AppState>,
    axum::Extension(principal): axum::Extension<auth::Principal>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let format = response_format(&headers);
    let result = async {
        let body = read_body(body)?;
        let parsed = parse_body(&headers, &body)?;
        match parsed {
            Value::Array(items) => {
                if items.len() > svc.config.http.max_pipeline {
                    return Err(ApiError::too_large(format!(
                        "pipeline of {} commands exceeds the limit of {}",
                        items.len(),
                        svc.config.http.max_pipeline
                    )));
                }
                Ok(Value::Array(run_pipeline(&svc, &principal, items).await))
            }
            Value::Object(_) if is_long_poll(&parsed) => Ok(long_poll(&svc, &principal, parsed).await),
            Value::Object(_) => Ok(run_pipeline(&svc, &principal, vec![parsed]).await.pop().expect("one reply")),
            _ => Err(ApiError::bad_request("expected a command object or an array of them")),
        }
    }
    .await;
    match result {
        Ok(v) => respond(format, StatusCode::OK, &v),
        Err(e) => respond(format, e.status, &e.body()),
    }
}

/// What one envelope entry runs: an engine command (by its index in the batch) or a server-side read.
enum Step {
    Engine(&'static ops::Op, usize),
    Stats,
    PubSubStats,
}

/// A single `queue.consume` envelope with `wait_ms` waits like the REST route (not inside a pipeline,
/// where one waiting command would hold up the others).
fn is_long_poll(item: &Value) -> bool {
    matches!(
        item.get("command").and_then(Value::as_str),
        Some("queue.consume" | "stream.consume" | "stream.group.read")
    ) && item.get("payload").and_then(|p| p.get("wait_ms")).is_some_and(|w| !w.is_null())
}

async fn long_poll(svc: &Service, principal: &auth::Principal, item: Value) -> Value {
    let request_id = item.get("request_id").cloned().unwrap_or(Value::Null);
    let payload = item.get("payload").cloned().unwrap_or_else(|| Value::Object(Map::new()));
    let outcome = async {
        let (op, cmd) = plan(svc, principal, &item, &payload)?;
        let reply = long_poll_reply(svc, cmd, &payload).await?;
        (op.render)(&payload, reply)
    }
    .await;
    match outcome {
        Ok(payload) => json!({"success": true, "request_id": request_id, "payload": payload}),
        Err(e) => json!({"success": false, "request_id": request_id, "error": e.body()["error"]}),
    }
}

/// A read that waits when the payload asks for it (`wait_ms`) and nothing is there yet: a queue consume
/// (capped by `queue.max_wait_ms`) or a stream read (by `stream.max_wait_ms`), through the service's one
/// wait.
pub(crate) async fn long_poll_reply(svc: &Service, cmd: Command, payload: &Value) -> Result<Reply, ApiError> {
    let db = payload_db(svc.engine.databases(), payload)?;
    if db != 0 && matches!(cmd, Command::Stream(_)) {
        // Streams live in database 0: the engine's error.
        return Ok(svc.execute_in(db, cmd).await?);
    }
    let Some(w) = payload.get("wait_ms").filter(|v| !v.is_null()) else { return Ok(svc.execute(cmd).await?) };
    let ms = w
        .as_u64()
        .or_else(|| w.as_str().and_then(|s| s.parse().ok()))
        .ok_or_else(|| ApiError::bad_request("field 'wait_ms': expected a non-negative integer"))?;
    let on = match &cmd {
        Command::Queue(QueueCmd::Consume { args, .. }) => WaitOn::Queue(args.queue.clone()),
        Command::Stream(StreamCmd::Read { room, .. } | StreamCmd::GroupRead { room, .. }) => {
            if ms == 0 {
                return Ok(svc.execute(cmd).await?);
            }
            WaitOn::Streams(vec![room.clone()])
        }
        _ => return Ok(svc.execute(cmd).await?),
    };
    let timeout_ms = match on {
        WaitOn::Streams(_) => ms.min(svc.config.stream.max_wait_ms),
        _ => ms,
    };
    Ok(svc.wait(cmd, Block { on, timeout_ms: Some(timeout_ms) }).await?)
}

struct Planned {
    request_id: Value,
    payload: Value,
    step: Result<Step, ApiError>,
}

async fn run_pipeline(svc: &Service, principal: &auth::Principal, items: Vec<Value>) -> Vec<Value> {
    let mut planned = Vec::with_capacity(items.len());
    let mut cmds = Vec::new();
    for item in items {
        let request_id = item.get("request_id").cloned().unwrap_or(Value::Null);
        let payload = item.get("payload").cloned().unwrap_or_else(|| Value::Object(Map::new()));
        let step = match item.get("command").and_then(Value::as_str) {
            Some("kv.stats") => principal.user.may_run("info").map(|()| Step::Stats).map_err(auth::refusal),
            Some("pubsub.stats") => {
                principal.user.may_run("pubsub|channels").map(|()| Step::PubSubStats).map_err(auth::refusal)
            }
            _ => plan(svc, principal, &item, &payload).and_then(|(op, cmd)| {
                cmds.push((payload_db(svc.engine.databases(), &payload)?, cmd));
                Ok(Step::Engine(op, cmds.len() - 1))
            }),
        };
        planned.push(Planned { request_id, payload, step });
    }
    let mut results: Vec<Option<_>> = svc.execute_batch(cmds).await.into_iter().map(Some).collect();
    planned
        .into_iter()
        .map(|p| {
            let outcome = p.step.and_then(|step| match step {
                Step::Engine(op, i) => {
                    let reply = results[i].take().expect("one result per command")?;
                    (op.render)(&p.payload, reply)
                }
                Step::Stats => Ok(stats_json(svc)),
                Step::PubSubStats => Ok(pubsub::stats_json(svc.engine.pubsub())),
            });
            match outcome {
                Ok(payload) => json!({"success": true, "request_id": p.request_id, "payload": payload}),
                Err(e) => json!({"success": false, "request_id": p.request_id, "error": e.body()["error"]}),
            }
        })
        .collect()
}

/// The optional `db` field of a request (query or body): the database its key-value command runs in
/// (Redis's SELECT; 0 when absent).
fn payload_db(databases: u32, payload: &Value) -> Result<u32, ApiError> {
    let Some(v) = payload.get("db").filter(|v| !v.is_null()) else { return Ok(0) };
    let n = v
        .as_u64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        .ok_or_else(|| ApiError::bad_request("field 'db': expected a non-negative integer"))?;
    if n >= databases as u64 {
        return Err(ApiError::bad_request(format!(
            "field 'db': database {n} does not exist (databases: 0 to {})",
            databases - 1
        )));
    }
    Ok(n as u32)
}

fn plan(
    svc: &Service,
    principal: &auth::Principal,
    item: &Value,
    payload: &Value,
) -> Result<(&'static ops::Op, Command), ApiError> {
    let name =
        item.get("command").and_then(Value::as_str).ok_or_else(|| ApiError::bad_request("missing field 'command'"))?;
    if !payload.is_object() {
        return Err(ApiError::bad_request("field 'payload': expected an object"));
    }
    let op = ops::find(name).ok_or_else(|| ApiError::bad_request(format!("unknown command '{name}'")))?;
    let cmd = (op.parse)(payload)?;
    auth::permit(svc, principal, &cmd, payload)?;
    Ok((op, cmd))
}
