//! Queue routes: `/queue/...` REST paths mapped onto the `queue.*` entries of the op table, the long-poll
//! consume (204 when nothing arrived), and the WebSocket push consumer.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Value, json};
use synap_core::command::QueueCmd;
use synap_core::queue::{ConsumeArgs, parse_id};
use synap_core::{Command, Reply};

use super::body::{ApiError, percent_decode, respond, response_format};
use super::ops::{self, reply_json};
use crate::service::Service;

type AppState = Arc<Service>;

/// `/queue/<segments>` -> (op name, payload fields from the path).
fn route(method: &Method, segs: &[Bytes]) -> Option<(&'static str, Vec<(&'static str, Bytes)>)> {
    let name = || segs[0].clone();
    let s = |i: usize| segs.get(i).map(|b| &b[..]);
    Some(match (method.as_str(), segs.len(), s(1), s(2)) {
        ("GET", 1, _, _) if &segs[0][..] == b"list" => ("queue.list", vec![]),
        ("POST", 1, _, _) => ("queue.create", vec![("name", name())]),
        ("DELETE", 1, _, _) => ("queue.delete", vec![("name", name())]),
        ("POST", 2, Some(b"publish"), _) => ("queue.publish", vec![("queue", name())]),
        ("GET", 3, Some(b"consume"), _) => ("queue.consume", vec![("queue", name()), ("consumer_id", segs[2].clone())]),
        ("POST", 2, Some(b"ack"), _) => ("queue.ack", vec![("queue", name())]),
        ("POST", 2, Some(b"nack"), _) => ("queue.nack", vec![("queue", name())]),
        ("GET", 2, Some(b"stats"), _) => ("queue.stats", vec![("queue", name())]),
        ("POST", 2, Some(b"purge"), _) => ("queue.purge", vec![("queue", name())]),
        ("GET", 2, Some(b"dlq"), _) => ("queue.dlq", vec![("queue", name())]),
        ("POST", 3, Some(b"dlq"), Some(b"redrive")) => ("queue.redrive", vec![("queue", name())]),
        ("POST", 3, Some(b"dlq"), Some(b"purge")) => ("queue.dlq_purge", vec![("queue", name())]),
        _ => return None,
    })
}

#[allow(clippy::too_many_arguments)] // axum extractors, one per part of the request
pub async fn rest(
    State(svc): State<AppState>,
    axum::Extension(principal): axum::Extension<super::auth::Principal>,
    method: Method,
    uri: Uri,
    Query(query): Query<HashMap<String, String>>,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
    permit: Option<axum::Extension<super::serve::ConnPermit>>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    // `GET /queue/{name}/ws/{consumer}` with an upgrade request is the push consumer.
    let segs: Vec<&str> = uri.path().trim_start_matches("/queue/").split('/').collect();
    if method == Method::GET && segs.len() == 3 && segs[1] == "ws" {
        let (Ok(queue), Ok(consumer)) = (percent_decode(segs[0]), percent_decode(segs[2])) else {
            return ApiError::bad_request("invalid percent-encoding in path").into_response();
        };
        // A push consumer takes and acknowledges messages: QCONSUME and QACK on the queue.
        for cmd in ["qconsume", "qack", "qnack"] {
            if let Err(e) = principal.user.may_run(cmd).map_err(super::auth::refusal) {
                return e.into_response();
            }
        }
        if !principal.user.may_access_key("qconsume", &queue, true) {
            return super::auth::refusal(synap_core::acl::Denial::Key(queue)).into_response();
        }
        return match upgrade {
            Ok(u) => ws(svc, queue, consumer, query, u, permit),
            Err(e) => ApiError::bad_request(format!("this route takes a WebSocket upgrade: {e}")).into_response(),
        };
    }
    handle(svc, principal, method, uri, query, headers, body).await.unwrap_or_else(IntoResponse::into_response)
}

async fn handle(
    svc: AppState,
    principal: super::auth::Principal,
    method: Method,
    uri: Uri,
    query: HashMap<String, String>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    let segs = super::path_segments(&method, &uri, "/queue/")?;
    let Some((name, fields)) = route(&method, &segs) else {
        return Err(ApiError::not_found(format!("no route for {method} {}", uri.path())));
    };
    let payload = super::request_payload(&headers, body, query, fields)?;
    let format = response_format(&headers);
    let op = ops::find(name).expect("route names a known op");
    let cmd = (op.parse)(&payload)?;
    super::auth::permit(&svc, &principal, &cmd, &payload)?;
    let consume = matches!(cmd, Command::Queue(QueueCmd::Consume { .. }));
    let reply = super::long_poll_reply(&svc, cmd, &payload).await?;
    if consume && reply.is_nothing() {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let out = (op.render)(&payload, reply)?;
    let status =
        if name == "queue.create" && out["created"] == json!(true) { StatusCode::CREATED } else { StatusCode::OK };
    Ok(respond(format, status, &out))
}

/// `GET /queue/{name}/ws/{consumer}?prefetch=N`: pushes up to `prefetch` unacknowledged messages and takes
/// `{"type":"ack","message_id":..}` / `{"type":"nack","message_id":..,"requeue":bool}` frames. Messages still
/// unacknowledged when the socket closes go back to the queue at once.
fn ws(
    svc: AppState,
    queue: Bytes,
    consumer: Bytes,
    query: HashMap<String, String>,
    upgrade: WebSocketUpgrade,
    permit: Option<axum::Extension<super::serve::ConnPermit>>,
) -> Response {
    let prefetch: usize = query.get("prefetch").and_then(|p| p.parse().ok()).unwrap_or(10).clamp(1, 10_000);
    if svc.engine.queues().waiter(&queue).is_none() {
        return ApiError::not_found(format!("queue '{}' not found", String::from_utf8_lossy(&queue))).into_response();
    }
    let max_frame = svc.config.http.max_body_bytes.0 as usize;
    upgrade.max_message_size(max_frame).on_upgrade(move |socket| async move {
        let _place = permit; // the connection's place under http.max_connections, for the session's life
        push_consumer(svc, socket, queue, consumer, prefetch).await
    })
}

async fn push_consumer(svc: AppState, mut socket: WebSocket, queue: Bytes, consumer: Bytes, prefetch: usize) {
    let mut unacked: HashSet<u64> = HashSet::new();
    loop {
        // Fill the window.
        if unacked.len() < prefetch {
            let args = ConsumeArgs { queue: queue.clone(), consumer: consumer.clone(), max: prefetch - unacked.len() };
            match svc.execute(Command::Queue(QueueCmd::Consume { args, wait_ms: None })).await {
                Ok(Reply::Array(msgs)) => {
                    for m in msgs {
                        let mut frame = reply_json(m);
                        if let Some(id) = frame["message_id"].as_str().and_then(|s| s.parse().ok()) {
                            unacked.insert(id);
                        }
                        frame["type"] = json!("message");
                        if socket.send(WsMessage::Text(frame.to_string().into())).await.is_err() {
                            return requeue_all(&svc, &queue, unacked).await;
                        }
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    let _ = socket
                        .send(WsMessage::Text(json!({"type": "error", "error": e.message()}).to_string().into()))
                        .await;
                    return requeue_all(&svc, &queue, unacked).await;
                }
            }
        }
        let Some(waiter) = svc.engine.queues().waiter(&queue) else {
            let _ = socket
                .send(WsMessage::Text(json!({"type": "error", "error": "queue deleted"}).to_string().into()))
                .await;
            return;
        };
        let notified = waiter.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let window_open = unacked.len() < prefetch;
        tokio::select! {
            _ = svc.stopped() => {
                let _ = socket.send(WsMessage::Close(None)).await;
                return requeue_all(&svc, &queue, unacked).await;
            }
            frame = socket.recv() => {
                let Some(Ok(frame)) = frame else { return requeue_all(&svc, &queue, unacked).await };
                let text = match frame {
                    WsMessage::Text(t) => t.to_string(),
                    WsMessage::Close(_) => return requeue_all(&svc, &queue, unacked).await,
                    _ => continue,
                };
                if let Err(msg) = control(&svc, &queue, &text, &mut unacked).await {
                    let _ = socket.send(WsMessage::Text(json!({"type": "error", "error": msg}).to_string().into())).await;
                }
            }
            _ = notified, if window_open => {}
            _ = tokio::time::sleep(Duration::from_millis(250)), if window_open => {}
        }
    }
}

/// One client frame: ack or nack.
async fn control(svc: &Service, queue: &Bytes, text: &str, unacked: &mut HashSet<u64>) -> Result<(), String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("malformed JSON frame: {e}"))?;
    let id = v["message_id"]
        .as_str()
        .and_then(|s| parse_id(s.as_bytes()))
        .or(v["message_id"].as_u64())
        .ok_or("frame needs a 'message_id'")?;
    let cmd = match v["type"].as_str() {
        Some("ack") => Command::Queue(QueueCmd::Ack { queue: queue.clone(), ids: vec![id] }),
        Some("nack") => {
            Command::Queue(QueueCmd::Nack { queue: queue.clone(), id, requeue: v["requeue"].as_bool().unwrap_or(true) })
        }
        other => return Err(format!("unknown frame type {other:?}; expected 'ack' or 'nack'")),
    };
    unacked.remove(&id);
    svc.execute(cmd).await.map(|_| ()).map_err(|e| e.message())
}

/// A closed push consumer hands its unacknowledged messages back (RabbitMQ requeues on channel close).
async fn requeue_all(svc: &Service, queue: &Bytes, unacked: HashSet<u64>) {
    for id in unacked {
        let _ = svc.execute(Command::Queue(QueueCmd::Nack { queue: queue.clone(), id, requeue: true })).await;
    }
}
