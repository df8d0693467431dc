//! Request and response bodies: JSON (default), MessagePack, raw bytes; binary-safe values; the error body.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use serde_json::{Map, Value, json};
use synap_core::{CommandError, ErrorKind};

pub const MSGPACK: &str = "application/msgpack";
pub const OCTET: &str = "application/octet-stream";

/// An error answered as `{"error": {"code", "message"}}` with a proper status.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError { status: StatusCode::BAD_REQUEST, code: "BAD_REQUEST", message: message.into() }
    }
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError { status: StatusCode::NOT_FOUND, code: "NOT_FOUND", message: message.into() }
    }
    pub fn too_large(message: impl Into<String>) -> ApiError {
        ApiError { status: StatusCode::PAYLOAD_TOO_LARGE, code: "TOO_LARGE", message: message.into() }
    }
    pub fn body(&self) -> Value {
        json!({"error": {"code": self.code, "message": self.message}})
    }
}

impl From<CommandError> for ApiError {
    fn from(e: CommandError) -> ApiError {
        let status = match e.kind() {
            ErrorKind::BadRequest => StatusCode::BAD_REQUEST,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::Conflict => StatusCode::CONFLICT,
            ErrorKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::Limit => StatusCode::TOO_MANY_REQUESTS,
            ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let status = if e == CommandError::OutOfMemory { StatusCode::SERVICE_UNAVAILABLE } else { status };
        let message = match &e {
            CommandError::ReadOnly { primary } => format!("{} Write to the primary at {primary}.", e.message()),
            _ => e.message(),
        };
        ApiError { status, code: e.json_code(), message }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body())).into_response()
    }
}

/// Which encoding a response uses, from the request's `Accept` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    MsgPack,
    Raw,
}

pub fn response_format(headers: &HeaderMap) -> Format {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
    if accept.contains(MSGPACK) {
        Format::MsgPack
    } else if accept.contains(OCTET) {
        Format::Raw
    } else {
        Format::Json
    }
}

/// Renders `value` with `status` in the requested format (raw falls back to JSON for non-value bodies).
pub fn respond(format: Format, status: StatusCode, value: &Value) -> Response {
    match format {
        Format::MsgPack => {
            let mut buf = Vec::new();
            match rmpv::encode::write_value(&mut buf, &json_to_msgpack(value)) {
                Ok(()) => (status, [(header::CONTENT_TYPE, HeaderValue::from_static(MSGPACK))], buf).into_response(),
                Err(e) => ApiError {
                    status: StatusCode::INTERNAL_SERVER_ERROR,
                    code: "INTERNAL",
                    message: format!("msgpack encoding failed: {e}"),
                }
                .into_response(),
            }
        }
        _ => (status, axum::Json(value)).into_response(),
    }
}

/// A request body's encoding, from its `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyType {
    Json,
    MsgPack,
    Raw,
}

/// The body type a `Content-Type` names. Only these three: the types a browser page may send to another
/// origin without asking first (`text/plain`, forms) are refused, so a web page cannot drive the API.
fn body_type(headers: &HeaderMap) -> Result<BodyType, ApiError> {
    let ctype = headers.get(header::CONTENT_TYPE).map(|v| v.to_str().unwrap_or("?")).unwrap_or("");
    let mime = ctype.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    match mime.as_str() {
        "application/json" => Ok(BodyType::Json),
        m if m.starts_with("application/") && m.ends_with("+json") => Ok(BodyType::Json),
        "application/msgpack" | "application/x-msgpack" | "application/vnd.msgpack" => Ok(BodyType::MsgPack),
        OCTET => Ok(BodyType::Raw),
        _ => Err(ApiError {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            code: "UNSUPPORTED_MEDIA_TYPE",
            message: format!(
                "a request body needs Content-Type application/json, application/msgpack or application/octet-stream{}",
                if ctype.is_empty() { String::new() } else { format!(" (got '{ctype}')") }
            ),
        }),
    }
}

/// Parses a request body by its `Content-Type`: JSON, MessagePack, or raw bytes (returned as the `value`
/// field of an object); any other type is refused (415). An empty body is an empty object.
pub fn parse_body(headers: &HeaderMap, body: &Bytes) -> Result<Value, ApiError> {
    let kind = if body.is_empty() { body_type(headers).unwrap_or(BodyType::Json) } else { body_type(headers)? };
    if kind == BodyType::Raw {
        return Ok(json!({"value": bytes_to_json(body)}));
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(Map::new()));
    }
    if kind == BodyType::MsgPack {
        let mut rd = &body[..];
        let v = rmpv::decode::read_value(&mut rd)
            .map_err(|e| ApiError::bad_request(format!("malformed MessagePack body: {e}")))?;
        if !rd.is_empty() {
            return Err(ApiError::bad_request("malformed MessagePack body: trailing bytes"));
        }
        return msgpack_to_json(v);
    }
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("malformed JSON body: {e}")))
}

/// A value as JSON: text when it is UTF-8, `{"base64": ...}` otherwise.
pub fn bytes_to_json(b: &[u8]) -> Value {
    match std::str::from_utf8(b) {
        Ok(s) => Value::String(s.to_string()),
        Err(_) => json!({"base64": B64.encode(b)}),
    }
}

/// Reads a binary-safe value: a string, or `{"base64": "..."}`.
pub fn json_to_bytes(v: &Value, field: &str) -> Result<Bytes, ApiError> {
    match v {
        Value::String(s) => Ok(Bytes::copy_from_slice(s.as_bytes())),
        Value::Object(m) if m.len() == 1 && m.contains_key("base64") => match &m["base64"] {
            Value::String(s) => B64
                .decode(s)
                .map(Bytes::from)
                .map_err(|e| ApiError::bad_request(format!("field '{field}': invalid base64: {e}"))),
            _ => Err(ApiError::bad_request(format!("field '{field}': base64 must be a string"))),
        },
        Value::Number(n) => Ok(Bytes::from(n.to_string())),
        _ => Err(ApiError::bad_request(format!("field '{field}': expected a string or {{\"base64\": \"...\"}}"))),
    }
}

fn msgpack_to_json(v: rmpv::Value) -> Result<Value, ApiError> {
    use rmpv::Value as M;
    Ok(match v {
        M::Nil => Value::Null,
        M::Boolean(b) => Value::Bool(b),
        M::Integer(i) => match (i.as_i64(), i.as_u64()) {
            (Some(n), _) => json!(n),
            (_, Some(n)) => json!(n),
            _ => return Err(ApiError::bad_request("MessagePack integer out of range")),
        },
        M::F32(f) => json!(f),
        M::F64(f) => json!(f),
        M::String(s) => match s.into_str() {
            Some(s) => Value::String(s),
            None => {
                return Err(ApiError::bad_request("MessagePack string is not UTF-8; send bytes as bin"));
            }
        },
        M::Binary(b) => json!({"base64": B64.encode(b)}),
        M::Array(items) => Value::Array(items.into_iter().map(msgpack_to_json).collect::<Result<_, _>>()?),
        M::Map(pairs) => {
            let mut m = Map::new();
            for (k, v) in pairs {
                let k = match k {
                    M::String(s) => {
                        s.into_str().ok_or_else(|| ApiError::bad_request("MessagePack map key is not UTF-8"))?
                    }
                    other => {
                        return Err(ApiError::bad_request(format!(
                            "MessagePack map key must be a string, got {other}"
                        )));
                    }
                };
                m.insert(k, msgpack_to_json(v)?);
            }
            Value::Object(m)
        }
        M::Ext(..) => {
            return Err(ApiError::bad_request("MessagePack extension types are not supported"));
        }
    })
}

fn json_to_msgpack(v: &Value) -> rmpv::Value {
    use rmpv::Value as M;
    match v {
        Value::Null => M::Nil,
        Value::Bool(b) => M::Boolean(*b),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => M::from(i),
            (_, Some(u), _) => M::from(u),
            (_, _, Some(f)) => M::F64(f),
            _ => M::Nil,
        },
        Value::String(s) => M::from(s.as_str()),
        Value::Array(items) => M::Array(items.iter().map(json_to_msgpack).collect()),
        Value::Object(m) => {
            if m.len() == 1
                && let Some(Value::String(b)) = m.get("base64")
                && let Ok(bytes) = B64.decode(b)
            {
                return M::Binary(bytes);
            }
            M::Map(m.iter().map(|(k, v)| (M::from(k.as_str()), json_to_msgpack(v))).collect())
        }
    }
}

/// Decodes a percent-encoded path segment to raw bytes (keys in paths are binary-safe).
pub fn percent_decode(s: &str) -> Result<Bytes, ApiError> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
            let byte = hex
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| ApiError::bad_request(format!("invalid percent-encoding in path segment '{s}'")))?;
            out.push(byte);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Ok(Bytes::from(out))
}
