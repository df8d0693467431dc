//! Pub/Sub over HTTP: publish, WebSocket and Server-Sent Events subscribers, stats. The same router as
//! RESP: a message published here reaches RESP subscribers, and the reverse.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Value, json};
use synap_core::Command;
use synap_core::command::PubSubCmd;
use synap_core::pubsub::{Kind, Overflow, PubMessage, PubSub, Sink};

use super::body::{ApiError, bytes_to_json, parse_body, percent_decode, respond, response_format};
use crate::service::Service;

type AppState = Arc<Service>;

/// `POST /pubsub/{topic}/publish` `{payload}` -> `{subscribers_matched}`.
pub async fn publish(
    State(svc): State<AppState>,
    axum::Extension(principal): axum::Extension<super::auth::Principal>,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let result = async {
        let topic = uri.path().strip_prefix("/pubsub/").and_then(|p| p.strip_suffix("/publish")).unwrap_or_default();
        let topic = percent_decode(topic)?;
        if topic.is_empty() {
            return Err(ApiError::bad_request("empty topic"));
        }
        let body = super::read_body(body)?;
        let payload = parse_body(&headers, &body)?;
        let payload = match payload.get("payload") {
            Some(v) => super::body::json_to_bytes(v, "payload")?,
            None => match payload.get("value") {
                Some(v) => super::body::json_to_bytes(v, "payload")?,
                None => return Err(ApiError::bad_request("missing field 'payload'")),
            },
        };
        let cmd = Command::PubSub(PubSubCmd::Publish { channel: topic.clone(), payload });
        let topic_json = super::body::bytes_to_json(&topic);
        super::auth::permit(&svc, &principal, &cmd, &json!({ "topic": topic_json }))?;
        let reply = svc.execute(cmd).await?;
        let n = match reply {
            synap_core::Reply::Int(n) => n,
            _ => 0,
        };
        Ok(json!({"subscribers_matched": n}))
    }
    .await;
    match result {
        Ok(v) => respond(response_format(&headers), StatusCode::OK, &v),
        Err(e) => e.into_response(),
    }
}

pub async fn stats(State(svc): State<AppState>) -> Response {
    (StatusCode::OK, axum::Json(stats_json(svc.engine.pubsub()))).into_response()
}

pub fn stats_json(ps: &PubSub) -> Value {
    let s = ps.stats();
    json!({
        "subscribers": s.subscribers,
        "channels": s.channels,
        "topic_patterns": s.topic_patterns,
        "glob_patterns": s.glob_patterns,
        "published": s.published,
        "delivered": s.delivered,
        "dropped": s.dropped,
        "disconnected": s.disconnected,
    })
}

/// Parses `topics=a.b,c.*,d.#`.
fn topics(svc: &Service, query: &HashMap<String, String>) -> Result<Vec<String>, ApiError> {
    let raw = query.get("topics").map(String::as_str).unwrap_or("");
    let list: Vec<String> = raw.split(',').filter(|t| !t.is_empty()).map(str::to_string).collect();
    if list.is_empty() {
        return Err(ApiError::bad_request("give topics=a.b,c.*,d.#"));
    }
    if list.len() > svc.config.pubsub.max_topics_per_subscriber {
        return Err(ApiError::bad_request(format!(
            "at most {} topics per subscriber",
            svc.config.pubsub.max_topics_per_subscriber
        )));
    }
    for t in &list {
        if !synap_core::pubsub::trie::valid_pattern(t) {
            return Err(ApiError::bad_request(format!(
                "invalid topic '{t}': levels are non-empty, '*' is one whole level, '#' only the last"
            )));
        }
    }
    Ok(list)
}

/// Unregisters the subscriber when its connection goes away.
struct Registration {
    sink: Arc<Sink>,
    svc: AppState,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.svc.engine.pubsub().unregister(self.sink.id);
    }
}

fn register(svc: &AppState, list: &[String]) -> Registration {
    let ps = svc.engine.pubsub();
    let cfg = &svc.config.pubsub;
    let sink = ps.register(cfg.web_max_pending_messages, cfg.web_max_pending_bytes.0 as usize, Overflow::DropOldest);
    for t in list {
        ps.subscribe(sink.id, Kind::Topic, t.as_bytes());
    }
    Registration { sink, svc: svc.clone() }
}

fn message_json(m: &PubMessage) -> Value {
    json!({"type": "message", "topic": bytes_to_json(&m.channel), "payload": bytes_to_json(&m.payload)})
}

/// `GET /pubsub/sse?topics=...`: `event: message` with `{topic, payload}`; `event: missed` with
/// `{count}` when messages were dropped because the client fell behind.
pub async fn sse(
    State(svc): State<AppState>,
    axum::Extension(principal): axum::Extension<super::auth::Principal>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let list = match topics(&svc, &query) {
        Ok(l) => l,
        Err(e) => return e.into_response(),
    };
    if let Err(e) = super::auth::permit_subscribe(&svc, &principal, &list) {
        return e.into_response();
    }
    let svc_gone = svc.clone();
    let reg = register(&svc, &list);
    let stream = futures_util::stream::unfold((reg, Vec::<Event>::new()), |(reg, mut pending)| async move {
        loop {
            if let Some(ev) = pending.pop() {
                return Some((Ok::<Event, Infallible>(ev), (reg, pending)));
            }
            tokio::select! {
                _ = reg.sink.ready() => {}
                _ = reg.svc.stopped() => return None,
            }
            let missed = reg.sink.take_missed();
            let msgs = reg.sink.drain(256);
            // `pending` is a stack: push in reverse so events leave in order.
            for m in msgs.iter().rev() {
                pending.push(Event::default().event("message").data(message_json(m).to_string()));
            }
            if missed > 0 {
                pending.push(Event::default().event("missed").data(json!({"count": missed}).to_string()));
            }
        }
    });
    // The stream ends when its caller loses access (a deleted user, a revoked key).
    let stream = futures_util::StreamExt::take_until(stream, Box::pin(super::auth::revoked(svc_gone, principal)));
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))).into_response()
}

/// `GET /pubsub/ws?topics=...`: `{"type":"message",topic,payload}` frames, `{"type":"missed","count"}`
/// when the client fell behind; the client may send `{"type":"subscribe"|"unsubscribe","topics":[..]}`.
pub async fn ws(
    State(svc): State<AppState>,
    axum::Extension(principal): axum::Extension<super::auth::Principal>,
    Query(query): Query<HashMap<String, String>>,
    permit: Option<axum::Extension<super::serve::ConnPermit>>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let list = match topics(&svc, &query) {
        Ok(l) => l,
        Err(e) => return e.into_response(),
    };
    if let Err(e) = super::auth::permit_subscribe(&svc, &principal, &list) {
        return e.into_response();
    }
    let max = svc.config.http.max_body_bytes.0 as usize;
    upgrade.max_message_size(max).on_upgrade(move |socket| async move {
        let _place = permit; // held for the session's life (http.max_connections)
        // The session ends when its caller loses access (a deleted user, a revoked key).
        let gone = super::auth::revoked(svc.clone(), principal.clone());
        tokio::select! {
            _ = ws_session(svc, socket, list, principal) => {}
            _ = gone => {}
        }
    })
}

async fn ws_session(svc: AppState, mut socket: WebSocket, list: Vec<String>, principal: super::auth::Principal) {
    let reg = register(&svc, &list);
    let ps = svc.engine.pubsub();
    loop {
        tokio::select! {
            _ = svc.stopped() => {
                let _ = socket.send(WsMessage::Close(None)).await;
                return;
            }
            _ = reg.sink.ready() => {
                let missed = reg.sink.take_missed();
                if missed > 0
                    && socket.send(WsMessage::Text(json!({"type": "missed", "count": missed}).to_string().into())).await.is_err()
                {
                    return;
                }
                for m in reg.sink.drain(256) {
                    if socket.send(WsMessage::Text(message_json(&m).to_string().into())).await.is_err() {
                        return;
                    }
                }
            }
            frame = socket.recv() => {
                let text = match frame {
                    Some(Ok(WsMessage::Text(t))) => t.to_string(),
                    Some(Ok(WsMessage::Close(_))) | None | Some(Err(_)) => return,
                    Some(Ok(_)) => continue,
                };
                let reply = match serde_json::from_str::<Value>(&text) {
                    Ok(v) => {
                        let names: Vec<String> = v["topics"].as_array().map(|a| a.iter().filter_map(|t| t.as_str().map(str::to_string)).collect()).unwrap_or_default();
                        let valid = !names.is_empty() && names.iter().all(|t| synap_core::pubsub::trie::valid_pattern(t));
                        let max = svc.config.pubsub.max_topics_per_subscriber;
                        match (v["type"].as_str(), valid) {
                            (Some("subscribe"), true) if ps.subscription_count(reg.sink.id) + names.len() > max => {
                                json!({"type": "error", "error": format!("at most {max} topics per subscriber")})
                            }
                            (Some("subscribe"), true) if super::auth::permit_subscribe(&svc, &principal, &names).is_err() => {
                                json!({"type": "error", "error": "NOPERM this user has no permissions to access one of the topics"})
                            }
                            (Some("subscribe"), true) => {
                                let n = names.iter().map(|t| ps.subscribe(reg.sink.id, Kind::Topic, t.as_bytes())).last().unwrap_or(0);
                                json!({"type": "subscribed", "topics": names, "count": n})
                            }
                            (Some("unsubscribe"), true) => {
                                let n = names.iter().map(|t| ps.unsubscribe(reg.sink.id, Kind::Topic, t.as_bytes())).last().unwrap_or(0);
                                json!({"type": "unsubscribed", "topics": names, "count": n})
                            }
                            _ => json!({"type": "error", "error": "expected {\"type\":\"subscribe\"|\"unsubscribe\",\"topics\":[valid topics]}"}),
                        }
                    }
                    Err(e) => json!({"type": "error", "error": format!("malformed JSON frame: {e}")}),
                };
                if socket.send(WsMessage::Text(reply.to_string().into())).await.is_err() {
                    return;
                }
            }
        }
    }
}
