//! Who an HTTP request comes from, and what it may do: the same users and rules as RESP.
//!
//! - `Authorization: Basic <user:password>` checks a user's password (argon2id, on a blocking thread,
//!   failed attempts limited per client address); `Authorization: Bearer <key>` an API key (its SHA-256
//!   digest is what is stored). WebSocket and SSE routes also take the key as `?access_token=`, since a
//!   browser cannot set headers there: `POST /auth/token` gives a caller a key of its own that lives 60
//!   seconds.
//! - Without credentials a request acts as the `default` user, if it needs no password; otherwise 401.
//! - Each route has a rule in [`ROUTES`]: open, any authenticated user, a command of the table the user
//!   must be allowed (admin routes), or checked per request against the command it runs, its keys and
//!   channels. A route with no rule is refused: a new route must be given one.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{MatchedPath, Path, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use bytes::Bytes;
use serde_json::{Value, json};
use synap_core::acl::{self, AclRecord, ApiKey, User};
use synap_core::{Command, ExecCtx};

use super::body::{ApiError, json_to_bytes};
use crate::service::Service;

/// The client's address, set by the server loop on every request.
#[derive(Clone, Copy, Debug)]
pub struct PeerAddr(pub SocketAddr);

/// The user a request acts as.
#[derive(Clone)]
pub struct Principal {
    pub user: Arc<User>,
    /// `none` (the default user, no credentials), `basic` or `key`.
    pub via: &'static str,
    pub key_id: Option<String>,
}

/// What a route requires.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// Anyone (liveness).
    Open,
    /// Any authenticated caller.
    Authenticated,
    /// The caller may run this command of the table.
    Command(&'static str),
    /// The handler checks the command the request runs, with its keys and channels.
    PerRequest,
}

/// Every route and its rule (`*`: any method). The router's routes and these must agree; a test sends
/// a request to each.
pub const ROUTES: &[(&str, &str, Rule)] = &[
    ("GET", "/health", Rule::Open),
    ("GET", "/metrics", Rule::Command("info")),
    ("GET", "/info", Rule::Command("info")),
    ("POST", "/snapshot", Rule::Command("bgsave")),
    ("GET", "/replication/status", Rule::Command("info")),
    ("GET", "/replication/digest", Rule::Command("debug")),
    ("GET", "/cluster/status", Rule::Command("cluster")),
    ("POST", "/cluster/nodes", Rule::Command("cluster")),
    ("DELETE", "/cluster/nodes/{id}", Rule::Command("cluster")),
    ("GET", "/kv/stats", Rule::Command("info")),
    ("POST", "/api/v1/command", Rule::PerRequest),
    ("*", "/kv/{op}", Rule::PerRequest),
    ("*", "/kv/{op}/{key}", Rule::PerRequest),
    ("*", "/queue/{*rest}", Rule::PerRequest),
    ("*", "/stream/{*rest}", Rule::PerRequest),
    ("*", "/hash/{*rest}", Rule::PerRequest),
    ("*", "/list/{*rest}", Rule::PerRequest),
    ("*", "/set/{*rest}", Rule::PerRequest),
    ("*", "/zset/{*rest}", Rule::PerRequest),
    ("GET", "/pubsub/stats", Rule::Command("pubsub|channels")),
    ("GET", "/pubsub/ws", Rule::PerRequest),
    ("GET", "/pubsub/sse", Rule::PerRequest),
    ("POST", "/pubsub/{topic}/publish", Rule::PerRequest),
    ("GET", "/auth/whoami", Rule::Authenticated),
    ("POST", "/auth/token", Rule::Authenticated),
    ("POST", "/auth/keys", Rule::Command("acl|setuser")),
    ("GET", "/auth/keys", Rule::Command("acl|list")),
    ("DELETE", "/auth/keys/{id}", Rule::Command("acl|setuser")),
];

/// A short-lived key's life (`POST /auth/token`), and how many a user holds at once.
const TOKEN_TTL_MS: u64 = 60_000;
const TOKENS_PER_USER: usize = 16;

fn rule(method: &Method, path: &str) -> Option<Rule> {
    ROUTES.iter().find(|(m, p, _)| *p == path && (*m == "*" || *m == method.as_str())).map(|(_, _, r)| *r)
}

fn unauthorized(message: impl Into<String>) -> Response {
    let e = ApiError { status: StatusCode::UNAUTHORIZED, code: "UNAUTHORIZED", message: message.into() };
    let mut r = e.into_response();
    r.headers_mut()
        .insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Basic realm=\"synap\", charset=\"UTF-8\""));
    r
}

fn forbidden(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError { status: StatusCode::FORBIDDEN, code, message: message.into() }
}

/// The middleware (on matched routes): protected mode, credentials, the route's rule.
pub async fn authenticate(
    State(svc): State<Arc<Service>>,
    matched: Option<MatchedPath>,
    mut req: Request,
    next: Next,
) -> Response {
    let peer = req.extensions().get::<PeerAddr>().map(|p| p.0.ip());
    if let Some(ip) = peer
        && crate::server::protected(&svc, ip)
    {
        return forbidden("PROTECTED_MODE", crate::server::PROTECTED_MESSAGE).into_response();
    }
    let path = matched.as_ref().map(|m| m.as_str()).unwrap_or("");
    let Some(rule) = rule(req.method(), path) else {
        return forbidden("NOPERM", format!("no access rule for {} {path}", req.method())).into_response();
    };
    if rule == Rule::Open {
        return next.run(req).await;
    }
    let query_token = if matches!(path, "/pubsub/ws" | "/pubsub/sse" | "/queue/{*rest}" | "/stream/{*rest}")
        && req.method() == Method::GET
    {
        req.uri()
            .query()
            .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("access_token=")).map(|t| t.to_string()))
    } else {
        None
    };
    let principal = match credentials(&svc, req.headers(), query_token, peer).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    if let Rule::Command(name) = rule
        && let Err(d) = principal.user.may_run(name)
    {
        log_denial(&svc, &principal, &d, peer);
        return forbidden("NOPERM", d.error_line().trim_start_matches("NOPERM ").to_string()).into_response();
    }
    req.extensions_mut().insert(principal);
    next.run(req).await
}

fn log_denial(svc: &Service, p: &Principal, d: &acl::Denial, peer: Option<IpAddr>) {
    let (reason, object) = d.reason_object();
    let info = format!("http addr={} via={}", peer.map(|i| i.to_string()).unwrap_or_default(), p.via);
    svc.engine.acl().log(reason, "toplevel", object, String::from_utf8_lossy(&p.user.name).into_owned(), info);
}

async fn credentials(
    svc: &Arc<Service>,
    headers: &HeaderMap,
    query_token: Option<String>,
    peer: Option<IpAddr>,
) -> Result<Principal, Response> {
    let acl = svc.engine.acl();
    let ip = peer.unwrap_or(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));
    let auth = headers.get(header::AUTHORIZATION).map(|v| v.to_str().unwrap_or(""));
    let bearer = match auth {
        Some(a) if a.len() > 7 && a[..7].eq_ignore_ascii_case("bearer ") => Some(a[7..].trim().to_string()),
        _ => query_token,
    };
    if let Some(token) = bearer {
        if !acl.login_attempt(ip) {
            return Err(too_many());
        }
        return match acl.user_for_token(token.as_bytes(), svc.engine.now_ms()) {
            Some((user, id)) => {
                acl.login_succeeded(ip);
                Ok(Principal { user, via: "key", key_id: Some(id) })
            }
            None => {
                svc.stats.auth_failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                acl.log("auth", "toplevel", "AUTH".into(), String::new(), format!("http addr={ip} via=key"));
                Err(unauthorized("invalid, expired or revoked API key"))
            }
        };
    }
    match auth {
        None => match acl.user(b"default") {
            Some(d) if !acl.auth_required() => Ok(Principal { user: d, via: "none", key_id: None }),
            _ => Err(unauthorized("authentication required: Basic credentials or a Bearer API key")),
        },
        Some(a) if a.len() > 6 && a[..6].eq_ignore_ascii_case("basic ") => {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(a[6..].trim())
                .map_err(|_| unauthorized("malformed Basic credentials"))?;
            let colon =
                decoded.iter().position(|c| *c == b':').ok_or_else(|| unauthorized("malformed Basic credentials"))?;
            let (name, password) =
                (Bytes::copy_from_slice(&decoded[..colon]), Bytes::copy_from_slice(&decoded[colon + 1..]));
            // A client that logged in with the same password recently costs no hash.
            if let Some(user) = acl.verified_recently(&name, &password) {
                return Ok(Principal { user, via: "basic", key_id: None });
            }
            if !acl.login_attempt(ip) {
                return Err(too_many());
            }
            let _permit = crate::resp::hashing_permit().await;
            let engine = svc.engine.clone();
            let n = name.clone();
            let found =
                tokio::task::spawn_blocking(move || engine.acl().authenticate(&n, &password)).await.ok().flatten();
            match found {
                Some(user) => {
                    acl.login_succeeded(ip);
                    Ok(Principal { user, via: "basic", key_id: None })
                }
                None => {
                    svc.stats.auth_failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let who = String::from_utf8_lossy(&name).into_owned();
                    acl.log("auth", "toplevel", "AUTH".into(), who, format!("http addr={ip} via=basic"));
                    Err(unauthorized("invalid username-password pair or user is disabled"))
                }
            }
        }
        Some(_) => Err(unauthorized("unsupported authorization scheme: use Basic or Bearer")),
    }
}

fn too_many() -> Response {
    ApiError {
        status: StatusCode::TOO_MANY_REQUESTS,
        code: "TOO_MANY_ATTEMPTS",
        message: "too many failed authentication attempts from this address; try again later".into(),
    }
    .into_response()
}

/// Payload fields that name keys (queues and streams are keys too), and channels.
const KEY_FIELDS: &[&str] =
    &["key", "keys", "destination", "source", "queue", "name", "room", "to", "dead_letter_queue", "stream"];
const CHANNEL_FIELDS: &[&str] = &["topic", "channel"];

/// The 403 for a denial.
pub fn refusal(d: acl::Denial) -> ApiError {
    forbidden("NOPERM", d.error_line().trim_start_matches("NOPERM ").to_string())
}

/// Whether the caller may run `cmd` on the keys and channels its payload names (403 otherwise).
pub fn permit(svc: &Service, p: &Principal, cmd: &Command, payload: &Value) -> Result<(), ApiError> {
    let user = &p.user;
    if user.unrestricted() {
        return Ok(());
    }
    let denied = |d: acl::Denial| {
        log_denial(svc, p, &d, None);
        forbidden("NOPERM", d.error_line().trim_start_matches("NOPERM ").to_string())
    };
    user.may_run(cmd.name()).map_err(denied)?;
    let write = cmd.is_write();
    let strings = |v: &Value, field: &str| -> Vec<Bytes> {
        match v {
            Value::Array(items) => items.iter().filter_map(|i| json_to_bytes(i, field).ok()).collect(),
            Value::Object(m) if !m.contains_key("base64") => {
                m.keys().map(|k| Bytes::copy_from_slice(k.as_bytes())).collect()
            }
            v => json_to_bytes(v, field).ok().into_iter().collect(),
        }
    };
    // RENAME's source may come as `from` (elsewhere `from` is an offset).
    let rename_from = matches!(cmd.name(), "rename" | "renamenx").then_some("from");
    for field in KEY_FIELDS.iter().copied().chain(rename_from) {
        if let Some(v) = payload.get(field) {
            for key in strings(v, field) {
                if !user.may_access_key(cmd.name(), &key, write) {
                    return Err(denied(acl::Denial::Key(key)));
                }
            }
        }
    }
    // MSET-style pairs: `{"pairs": {"k": "v"}}` or `[{"key": ..}]`.
    for field in ["pairs", "entries"] {
        match payload.get(field) {
            Some(Value::Object(m)) => {
                for k in m.keys() {
                    if !user.may_access_key(cmd.name(), k.as_bytes(), write) {
                        return Err(denied(acl::Denial::Key(Bytes::copy_from_slice(k.as_bytes()))));
                    }
                }
            }
            Some(Value::Array(items)) => {
                for item in items {
                    if let Some(k) = item.get("key").and_then(|k| json_to_bytes(k, "key").ok())
                        && !user.may_access_key(cmd.name(), &k, write)
                    {
                        return Err(denied(acl::Denial::Key(k)));
                    }
                }
            }
            _ => {}
        }
    }
    for field in CHANNEL_FIELDS {
        if let Some(v) = payload.get(*field) {
            for c in strings(v, field) {
                permit_topic(user, &c).map_err(denied)?;
            }
        }
    }
    Ok(())
}

/// A topic a caller publishes or subscribes to: a plain name must match one of its channel patterns; a
/// subscription with wildcards must be one of them as written (as PSUBSCRIBE's rule).
pub fn permit_topic(user: &User, topic: &[u8]) -> Result<(), acl::Denial> {
    let wild = topic.iter().any(|c| matches!(c, b'*' | b'#' | b'?' | b'['));
    let ok = if wild { user.channel_listed(topic) } else { user.channel_allowed(topic) };
    if ok { Ok(()) } else { Err(acl::Denial::Channel(Bytes::copy_from_slice(topic))) }
}

/// Subscriptions: the commands and every topic.
pub fn permit_subscribe(svc: &Service, p: &Principal, topics: &[String]) -> Result<(), ApiError> {
    let user = &p.user;
    if user.unrestricted() {
        return Ok(());
    }
    let denied = |d: acl::Denial| {
        log_denial(svc, p, &d, None);
        forbidden("NOPERM", d.error_line().trim_start_matches("NOPERM ").to_string())
    };
    user.may_run("subscribe").map_err(denied)?;
    for t in topics {
        permit_topic(user, t.as_bytes()).map_err(denied)?;
    }
    Ok(())
}

/// Resolves once the caller of a long-lived session (WebSocket, SSE) loses its access: its user deleted
/// or switched off, its API key revoked or expired. Checked every second.
pub async fn revoked(svc: Arc<Service>, p: Principal) {
    loop {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        let acl = svc.engine.acl();
        // A session opened without credentials ends once they are required.
        if p.via == "none" && acl.auth_required() {
            return;
        }
        let Some(user) = acl.user(&p.user.name) else { return };
        if !user.enabled && p.via != "none" {
            return;
        }
        if let Some(id) = &p.key_id {
            match acl.api_key(id) {
                Some(k) if k.expires_ms == 0 || k.expires_ms > svc.engine.now_ms() => {}
                _ => return,
            }
        }
    }
}

fn new_token() -> (String, String) {
    let bytes: [u8; 32] = rand::random();
    let token: String = "synap_".to_string() + &bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let id: [u8; 8] = rand::random();
    (id.iter().map(|b| format!("{b:02x}")).collect(), token)
}

fn key_json(k: &ApiKey) -> Value {
    json!({
        "id": k.id,
        "user": k.user,
        "created_at_ms": k.created_ms,
        "expires_at_ms": if k.expires_ms == 0 { Value::Null } else { json!(k.expires_ms) },
        "label": k.label,
    })
}

/// Creates a key through the log (after dropping expired ones); the token is returned once.
async fn create_key(
    svc: &Arc<Service>,
    user: String,
    ttl_ms: u64,
    label: String,
) -> Result<(ApiKey, String), ApiError> {
    let (id, token) = new_token();
    let now = svc.engine.now_ms();
    let key = ApiKey {
        id,
        user: user.clone(),
        digest: acl::sha256_hex(token.as_bytes()),
        created_ms: now,
        expires_ms: if ttl_ms == 0 { 0 } else { now + ttl_ms },
        label,
    };
    let engine = svc.engine.clone();
    let k = key.clone();
    let lsn = tokio::task::spawn_blocking(move || {
        let mut ctx = ExecCtx::default();
        engine
            .acl_change(&mut ctx, |acl| {
                if acl.user(user.as_bytes()).is_none() {
                    return Err(synap_core::CommandError::NotFound(format!("no such user '{user}'")));
                }
                let mut records: Vec<AclRecord> = acl
                    .api_keys()
                    .into_iter()
                    .filter(|k| k.expires_ms != 0 && k.expires_ms <= now)
                    .map(|k| AclRecord::DelKey(k.id))
                    .collect();
                if acl.api_keys().len() - records.len() >= acl::MAX_API_KEYS {
                    return Err(synap_core::CommandError::Invalid(format!(
                        "too many API keys (at most {}); revoke some first",
                        acl::MAX_API_KEYS
                    )));
                }
                // At most TOKENS_PER_USER live tokens a user: the oldest go.
                if k.label == "token" {
                    let mut live: Vec<ApiKey> = acl
                        .api_keys()
                        .into_iter()
                        .filter(|t| t.user == k.user && t.label == "token" && t.expires_ms > now)
                        .collect();
                    live.sort_by_key(|t| t.created_ms);
                    let extra = (live.len() + 1).saturating_sub(TOKENS_PER_USER);
                    records.extend(live.into_iter().take(extra).map(|t| AclRecord::DelKey(t.id)));
                }
                records.push(AclRecord::PutKey(k));
                Ok((records, ()))
            })
            .map(|()| ctx.lsn)
    })
    .await
    .map_err(|e| ApiError {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        code: "INTERNAL",
        message: e.to_string(),
    })??;
    svc.wait_durable(lsn).await?;
    Ok((key, token))
}

/// `GET /auth/whoami`.
pub async fn whoami(axum::Extension(p): axum::Extension<Principal>) -> Response {
    axum::Json(json!({
        "user": String::from_utf8_lossy(&p.user.name),
        "authenticated_by": p.via,
        "key_id": p.key_id,
    }))
    .into_response()
}

/// `POST /auth/token`: a 60-second key of the caller's own user (for a browser's WebSocket or SSE).
pub async fn token(State(svc): State<Arc<Service>>, axum::Extension(p): axum::Extension<Principal>) -> Response {
    // Not from a key: revoking a key must end what it could do.
    if p.via == "key" {
        return forbidden("NOPERM", "a token is made with a password, not with an API key").into_response();
    }
    let user = String::from_utf8_lossy(&p.user.name).into_owned();
    match create_key(&svc, user, TOKEN_TTL_MS, "token".into()).await {
        Ok((k, token)) => {
            (StatusCode::CREATED, axum::Json(json!({"token": token, "expires_at_ms": k.expires_ms}))).into_response()
        }
        Err(e) => e.into_response(),
    }
}

/// `POST /auth/keys {user, expires_in_secs?, label?}` (admin): the key, shown once.
pub async fn create(
    State(svc): State<Arc<Service>>,
    body: Result<axum::Json<Value>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let result = async {
        let axum::Json(body) = body.map_err(|e| ApiError::bad_request(e.body_text()))?;
        let user = body.get("user").and_then(Value::as_str).ok_or_else(|| ApiError::bad_request("give user"))?;
        let ttl = match body.get("expires_in_secs") {
            None | Some(Value::Null) => 0,
            Some(v) => v
                .as_u64()
                .filter(|s| (1..=10 * 365 * 86_400).contains(s))
                .ok_or_else(|| ApiError::bad_request("expires_in_secs: a positive number of seconds"))?
                .saturating_mul(1000),
        };
        let label = body.get("label").and_then(Value::as_str).unwrap_or("");
        if label.len() > 256 {
            return Err(ApiError::bad_request("label: at most 256 bytes"));
        }
        let (k, token) = create_key(&svc, user.to_string(), ttl, label.to_string()).await?;
        let mut out = key_json(&k);
        out["key"] = json!(token);
        Ok::<_, ApiError>((StatusCode::CREATED, axum::Json(out)).into_response())
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// `GET /auth/keys` (admin): every key, without its secret.
pub async fn list(State(svc): State<Arc<Service>>) -> Response {
    let keys: Vec<Value> = svc.engine.acl().api_keys().iter().map(key_json).collect();
    axum::Json(json!({"keys": keys})).into_response()
}

/// `DELETE /auth/keys/{id}` (admin).
pub async fn revoke(State(svc): State<Arc<Service>>, Path(id): Path<String>) -> Response {
    let engine = svc.engine.clone();
    let result = tokio::task::spawn_blocking(move || {
        let mut ctx = ExecCtx::default();
        engine
            .acl_change(&mut ctx, |acl| {
                if acl.api_key(&id).is_none() {
                    return Err(synap_core::CommandError::NotFound(format!("no API key '{id}'")));
                }
                Ok((vec![AclRecord::DelKey(id.clone())], ()))
            })
            .map(|()| ctx.lsn)
    })
    .await;
    let lsn = match result {
        Ok(Ok(lsn)) => lsn,
        Ok(Err(e)) => return ApiError::from(e).into_response(),
        Err(e) => {
            return ApiError { status: StatusCode::INTERNAL_SERVER_ERROR, code: "INTERNAL", message: e.to_string() }
                .into_response();
        }
    };
    if let Err(e) = svc.wait_durable(lsn).await {
        return ApiError::from(e).into_response();
    }
    axum::Json(json!({"revoked": true})).into_response()
}
