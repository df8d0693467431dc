//! Stream routes: `/stream/...` REST paths mapped onto the `stream.*` entries of the op table, long-poll
//! reads, and the live tail over Server-Sent Events and WebSocket.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Value, json};
use synap_core::command::{Block, WaitOn};
use synap_core::stream::StreamCmd;
use synap_core::{Command, CommandError, Reply};

use super::body::{ApiError, percent_decode, respond, response_format};
use super::ops::{self, reply_json};
use crate::service::Service;

type AppState = Arc<Service>;

/// Events sent to a live-tail client per read.
const TAIL_BATCH: usize = 256;

/// `/stream/<segments>` -> (op name, payload fields from the path).
fn route(method: &Method, segs: &[Bytes]) -> Option<(&'static str, Vec<(&'static str, Bytes)>)> {
    let room = || segs[0].clone();
    let s = |i: usize| segs.get(i).map(|b| &b[..]);
    Some(match (method.as_str(), segs.len(), s(1), s(3)) {
        ("GET", 1, _, _) if &segs[0][..] == b"list" => ("stream.list", vec![]),
        ("POST", 1, _, _) => ("stream.create", vec![("room", room())]),
        ("DELETE", 1, _, _) => ("stream.delete", vec![("room", room())]),
        ("POST", 2, Some(b"publish"), _) => ("stream.publish", vec![("room", room())]),
        ("GET", 2, Some(b"stats"), _) => ("stream.stats", vec![("room", room())]),
        ("POST", 2, Some(b"trim"), _) => ("stream.trim", vec![("room", room())]),
        ("GET", 3, Some(b"consume"), _) => {
            ("stream.consume", vec![("room", room()), ("subscriber_id", segs[2].clone())])
        }
        ("POST", 3, Some(b"group"), _) => ("stream.group.create", vec![("room", room()), ("group", segs[2].clone())]),
        ("DELETE", 3, Some(b"group"), _) => ("stream.group.delete", vec![("room", room()), ("group", segs[2].clone())]),
        ("GET", 5, Some(b"group"), Some(b"read")) => {
            ("stream.group.read", vec![("room", room()), ("group", segs[2].clone()), ("consumer", segs[4].clone())])
        }
        ("POST", 4, Some(b"group"), Some(b"ack")) => {
            ("stream.group.ack", vec![("room", room()), ("group", segs[2].clone())])
        }
        ("POST", 4, Some(b"group"), Some(b"claim")) => {
            ("stream.group.claim", vec![("room", room()), ("group", segs[2].clone())])
        }
        _ => return None,
    })
}

#[allow(clippy::too_many_arguments)]
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
    let segs: Vec<&str> = uri.path().trim_start_matches("/stream/").split('/').collect();
    if method == Method::GET && segs.len() == 2 && (segs[1] == "sse" || segs[1] == "ws") {
        let Ok(room) = percent_decode(segs[0]) else {
            return ApiError::bad_request("invalid percent-encoding in path").into_response();
        };
        // A live tail reads the stream: as `stream.consume` on its name.
        if let Err(e) = principal.user.may_run("stream.consume").map_err(super::auth::refusal) {
            return e.into_response();
        }
        if !principal.user.may_access_key("stream.consume", &room, false) {
            return super::auth::refusal(synap_core::acl::Denial::Key(room)).into_response();
        }
        let start = match tail_start(&svc, &room, &query, &headers) {
            Ok(s) => s,
            Err(e) => return e.into_response(),
        };
        if segs[1] == "sse" {
            return sse(svc, room, start, principal);
        }
        return match upgrade {
            Ok(u) => u.on_upgrade(move |socket| async move {
                let _place = permit; // held for the session's life (http.max_connections)
                // The session ends when its caller loses access (a deleted user, a revoked key).
                let gone = super::auth::revoked(svc.clone(), principal);
                tokio::select! {
                    _ = ws_session(svc, socket, room, start) => {}
                    _ = gone => {}
                }
            }),
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
    let segs = super::path_segments(&method, &uri, "/stream/")?;
    let Some((name, fields)) = route(&method, &segs) else {
        return Err(ApiError::not_found(format!("no route for {method} {}", uri.path())));
    };
    let payload = super::request_payload(&headers, body, query, fields)?;
    let op = ops::find(name).expect("route names a known op");
    let cmd = (op.parse)(&payload)?;
    super::auth::permit(&svc, &principal, &cmd, &payload)?;
    let reply = super::long_poll_reply(&svc, cmd, &payload).await?;
    let out = (op.render)(&payload, reply)?;
    let created = name.ends_with(".create") && out["created"] == json!(true);
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok(respond(response_format(&headers), status, &out))
}

/// Where a live tail starts: after `Last-Event-ID` (a reconnecting browser), else `from_offset`, else the
/// end of the partition (only new events). Fails when the stream or partition is missing.
fn tail_start(
    svc: &Service,
    room: &Bytes,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Result<(u32, u64), ApiError> {
    let num = |name: &str, v: &str| {
        v.parse::<u64>().map_err(|_| ApiError::bad_request(format!("{name}: expected a non-negative integer")))
    };
    let partition = match query.get("partition") {
        Some(p) => u32::try_from(num("partition", p)?).map_err(|_| ApiError::bad_request("partition: too large"))?,
        None => 0,
    };
    let last_event = headers.get("last-event-id").and_then(|v| v.to_str().ok()).filter(|s| !s.is_empty());
    let from = match (last_event, query.get("from_offset")) {
        (Some(id), _) => Some(
            num("Last-Event-ID", id)?
                .checked_add(1)
                .ok_or_else(|| ApiError::bad_request("Last-Event-ID: no event follows this offset"))?,
        ),
        (None, Some(o)) => Some(num("from_offset", o)?),
        (None, None) => None,
    };
    let (_, next) = svc.engine.streams().partition_bounds(room, partition).ok_or_else(|| {
        ApiError::from(CommandError::NotFound(format!(
            "stream '{}' or its partition {partition} not found",
            String::from_utf8_lossy(room)
        )))
    })?;
    let from = from.unwrap_or(next);
    // Check the offset now, so that the client gets a proper error status.
    let probe = Command::Stream(StreamCmd::Read { room: room.clone(), partition, from: Some(from), limit: 1 });
    svc.engine.execute(&mut synap_core::ExecCtx::default(), probe)?;
    Ok((partition, from))
}

/// Reads the next batch of a tail from `from`, waiting until there is one. `Ok(None)` when the server
/// stops.
async fn next_batch(
    svc: &Service,
    room: &Bytes,
    partition: u32,
    from: &mut u64,
) -> Result<Option<Vec<Value>>, CommandError> {
    let cmd = Command::Stream(StreamCmd::Read { room: room.clone(), partition, from: Some(*from), limit: TAIL_BATCH });
    let block = Block { on: WaitOn::Streams(vec![room.clone()]), timeout_ms: None };
    let reply = tokio::select! {
        r = svc.wait(cmd, block) => r?,
        _ = svc.stopped() => return Ok(None),
    };
    // A deleted stream wakes its waiters: the read above then fails with NOT_FOUND.
    let Reply::Read { next_offset, events, .. } = reply else {
        return Err(CommandError::Internal(format!("a stream read answered {reply:?}")));
    };
    *from = next_offset;
    Ok(Some(events.into_iter().map(reply_json).collect()))
}

/// `GET /stream/{room}/sse?from_offset=&partition=`: `event: <event name or "message">`, `id: <offset>`,
/// `data: <the event as JSON>`. A stream that is deleted, or whose retention passes the reader, ends with
/// `event: error`.
fn sse(svc: AppState, room: Bytes, (partition, from): (u32, u64), principal: super::auth::Principal) -> Response {
    let gone = Box::pin(super::auth::revoked(svc.clone(), principal));
    let state = (svc, room, from, Vec::<SseEvent>::new(), false);
    let stream = futures_util::stream::unfold(state, move |(svc, room, mut from, mut pending, done)| async move {
        loop {
            if let Some(ev) = pending.pop() {
                return Some((Ok::<SseEvent, Infallible>(ev), (svc, room, from, pending, done)));
            }
            if done {
                return None;
            }
            match next_batch(&svc, &room, partition, &mut from).await {
                Ok(Some(events)) => {
                    for e in events.iter().rev() {
                        // Event names come from clients (XADD fields): one that cannot be an SSE `event:`
                        // line (a line break) is sent as "message"; the data carries it anyway.
                        let name = e["event"]
                            .as_str()
                            .filter(|s| !s.is_empty() && !s.contains(['\n', '\r']))
                            .unwrap_or("message");
                        let id = e["offset"].as_u64().unwrap_or(0).to_string();
                        pending.push(SseEvent::default().event(name).id(id).data(e.to_string()));
                    }
                }
                Ok(None) => return None,
                Err(e) => {
                    let body = json!({"code": e.json_code(), "message": e.message()});
                    let ev = SseEvent::default().event("error").data(body.to_string());
                    return Some((Ok(ev), (svc, room, from, pending, true)));
                }
            }
        }
    });
    // The stream ends when its caller loses access.
    let stream = futures_util::StreamExt::take_until(stream, gone);
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))).into_response()
}

/// `GET /stream/{room}/ws?from_offset=&partition=`: one text frame per event (the event as JSON with
/// `"type": "event"`); `{"type":"error",...}` and a close when the stream goes away or retention passes
/// the reader. Frames from the client are ignored except Close.
async fn ws_session(svc: AppState, mut socket: WebSocket, room: Bytes, (partition, mut from): (u32, u64)) {
    loop {
        let batch = tokio::select! {
            b = next_batch(&svc, &room, partition, &mut from) => b,
            frame = socket.recv() => match frame {
                Some(Ok(WsMessage::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => continue,
            },
        };
        match batch {
            Ok(Some(events)) => {
                for mut e in events {
                    e["type"] = json!("event");
                    if socket.send(WsMessage::Text(e.to_string().into())).await.is_err() {
                        return;
                    }
                }
            }
            Ok(None) => {
                let _ = socket.send(WsMessage::Close(None)).await;
                return;
            }
            Err(e) => {
                let body = json!({"type": "error", "code": e.json_code(), "message": e.message()});
                let _ = socket.send(WsMessage::Text(body.to_string().into())).await;
                let _ = socket.send(WsMessage::Close(None)).await;
                return;
            }
        }
    }
}
