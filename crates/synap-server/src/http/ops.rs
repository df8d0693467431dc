//! The HTTP codec's table: one entry per envelope command name (`kv.set`, ...). Each entry turns a JSON
//! payload into an engine [`Command`] and renders the engine's [`Reply`] back to JSON. REST routes build
//! the same payload from path, query and body and go through the same entries, so both speak one mapping.

use bytes::Bytes;
use serde_json::{Value, json};
use synap_core::{Command, ExpireCond, Reply, ScanArgs, SetArgs, SetCond, TimeUnit, Ttl};

use super::body::{ApiError, bytes_to_json, json_to_bytes};

pub type Parse = fn(&Value) -> Result<Command, ApiError>;
pub type Render = fn(&Value, Reply) -> Result<Value, ApiError>;

pub struct Op {
    pub name: &'static str,
    pub parse: Parse,
    pub render: Render,
}

pub static OPS: &[Op] = &[
    Op { name: "kv.set", parse: kv_set, render: render_set },
    Op { name: "kv.get", parse: kv_get, render: render_value },
    Op { name: "kv.getdel", parse: kv_getdel, render: render_value },
    Op { name: "kv.getset", parse: kv_getset, render: render_previous },
    Op { name: "kv.del", parse: kv_del, render: |_, r| Ok(json!({"deleted": int(r)?})) },
    Op { name: "kv.exists", parse: kv_exists, render: |_, r| Ok(json!({"exists": int(r)?})) },
    Op { name: "kv.mget", parse: kv_mget, render: render_mget },
    Op { name: "kv.mset", parse: kv_mset, render: render_mset },
    Op { name: "kv.incr", parse: |p| kv_incr(p, 1), render: |_, r| Ok(json!({"value": int(r)?})) },
    Op { name: "kv.decr", parse: |p| kv_incr(p, -1), render: |_, r| Ok(json!({"value": int(r)?})) },
    Op { name: "kv.incrbyfloat", parse: kv_incr_float, render: render_float },
    Op { name: "kv.append", parse: kv_append, render: |_, r| Ok(json!({"length": int(r)?})) },
    Op {
        name: "kv.strlen",
        parse: |p| Ok(Command::Strlen { key: key(p)? }),
        render: |_, r| Ok(json!({"length": int(r)?})),
    },
    Op { name: "kv.expire", parse: kv_expire, render: |_, r| Ok(json!({"updated": int(r)? == 1})) },
    Op {
        name: "kv.persist",
        parse: |p| Ok(Command::Persist { key: key(p)? }),
        render: |_, r| Ok(json!({"updated": int(r)? == 1})),
    },
    Op { name: "kv.ttl", parse: |p| Ok(Command::Ttl { key: key(p)?, unit: TimeUnit::Millis }), render: render_ttl },
    Op { name: "kv.type", parse: |p| Ok(Command::Type { key: key(p)? }), render: render_type },
    Op { name: "kv.rename", parse: kv_rename, render: render_rename },
    Op { name: "kv.keys", parse: kv_keys, render: |_, r| Ok(json!({"keys": list(r)?})) },
    Op { name: "kv.scan", parse: kv_scan, render: render_scan },
    Op { name: "kv.randomkey", parse: |_| Ok(Command::RandomKey), render: |_, r| Ok(json!({"key": opt_value(r)?})) },
    Op { name: "kv.dbsize", parse: |_| Ok(Command::DbSize), render: |_, r| Ok(json!({"size": int(r)?})) },
    Op { name: "kv.flushall", parse: |_| Ok(Command::FlushAll), render: |_, _| Ok(json!({"ok": true})) },
];

pub fn find(name: &str) -> Option<&'static Op> {
    OPS.iter().find(|op| op.name == name)
}

// ---- payload readers ----

fn field<'a>(p: &'a Value, name: &str) -> Option<&'a Value> {
    p.get(name).filter(|v| !v.is_null())
}

fn req_bytes(p: &Value, name: &str) -> Result<Bytes, ApiError> {
    let v = field(p, name).ok_or_else(|| ApiError::bad_request(format!("missing field '{name}'")))?;
    json_to_bytes(v, name)
}

fn key(p: &Value) -> Result<Bytes, ApiError> {
    req_bytes(p, "key")
}

fn opt_i64(p: &Value, name: &str) -> Result<Option<i64>, ApiError> {
    match field(p, name) {
        None => Ok(None),
        Some(Value::Number(n)) => {
            n.as_i64().map(Some).ok_or_else(|| ApiError::bad_request(format!("field '{name}': expected an integer")))
        }
        Some(Value::String(s)) => {
            s.parse().map(Some).map_err(|_| ApiError::bad_request(format!("field '{name}': expected an integer")))
        }
        Some(_) => Err(ApiError::bad_request(format!("field '{name}': expected an integer"))),
    }
}

fn opt_f64(p: &Value, name: &str) -> Result<Option<f64>, ApiError> {
    match field(p, name) {
        None => Ok(None),
        Some(Value::Number(n)) => Ok(n.as_f64()),
        Some(Value::String(s)) => {
            s.parse().map(Some).map_err(|_| ApiError::bad_request(format!("field '{name}': expected a number")))
        }
        Some(_) => Err(ApiError::bad_request(format!("field '{name}': expected a number"))),
    }
}

fn flag(p: &Value, name: &str) -> Result<bool, ApiError> {
    match field(p, name) {
        None => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::String(s)) if s == "true" || s == "1" => Ok(true),
        Some(Value::String(s)) if s == "false" || s == "0" => Ok(false),
        Some(_) => Err(ApiError::bad_request(format!("field '{name}': expected a boolean"))),
    }
}

fn key_list(p: &Value) -> Result<Vec<Bytes>, ApiError> {
    match (field(p, "keys"), field(p, "key")) {
        (Some(Value::Array(items)), _) => {
            if items.is_empty() {
                return Err(ApiError::bad_request("field 'keys': must not be empty"));
            }
            items.iter().map(|v| json_to_bytes(v, "keys")).collect()
        }
        (Some(_), _) => Err(ApiError::bad_request("field 'keys': expected an array")),
        (None, Some(k)) => Ok(vec![json_to_bytes(k, "key")?]),
        (None, None) => Err(ApiError::bad_request("missing field 'keys'")),
    }
}

/// A relative TTL from `ttl` (seconds) or `ttl_ms`, with overflow checked.
fn ttl_of(p: &Value) -> Result<Option<Ttl>, ApiError> {
    match (opt_i64(p, "ttl")?, opt_i64(p, "ttl_ms")?) {
        (Some(_), Some(_)) => Err(ApiError::bad_request("give either 'ttl' or 'ttl_ms', not both")),
        (Some(s), None) => s
            .checked_mul(1000)
            .map(|ms| Some(Ttl::In(ms)))
            .ok_or_else(|| ApiError::bad_request("field 'ttl': out of range")),
        (None, Some(ms)) => Ok(Some(Ttl::In(ms))),
        (None, None) => Ok(None),
    }
}

// ---- parsers ----

fn kv_set(p: &Value) -> Result<Command, ApiError> {
    let ttl = ttl_of(p)?;
    if let Some(Ttl::In(ms)) = ttl
        && ms <= 0
    {
        return Err(ApiError::bad_request("field 'ttl': must be positive"));
    }
    let (nx, xx) = (flag(p, "nx")?, flag(p, "xx")?);
    if nx && xx {
        return Err(ApiError::bad_request("'nx' and 'xx' exclude each other"));
    }
    let keep_ttl = flag(p, "keepttl")? || flag(p, "keep_ttl")?;
    if keep_ttl && ttl.is_some() {
        return Err(ApiError::bad_request("'keepttl' excludes 'ttl'"));
    }
    Ok(Command::Set(SetArgs {
        ttl,
        keep_ttl,
        cond: if nx {
            SetCond::IfAbsent
        } else if xx {
            SetCond::IfPresent
        } else {
            SetCond::Always
        },
        get: flag(p, "get")?,
        ..SetArgs::new(key(p)?, req_bytes(p, "value")?)
    }))
}

fn kv_get(p: &Value) -> Result<Command, ApiError> {
    Ok(Command::Get { key: key(p)? })
}

fn kv_getdel(p: &Value) -> Result<Command, ApiError> {
    Ok(Command::GetDel { key: key(p)? })
}

fn kv_getset(p: &Value) -> Result<Command, ApiError> {
    Ok(Command::Set(SetArgs { get: true, ..SetArgs::new(key(p)?, req_bytes(p, "value")?) }))
}

fn kv_del(p: &Value) -> Result<Command, ApiError> {
    Ok(Command::Del { keys: key_list(p)? })
}

fn kv_exists(p: &Value) -> Result<Command, ApiError> {
    Ok(Command::Exists { keys: key_list(p)? })
}

fn kv_mget(p: &Value) -> Result<Command, ApiError> {
    Ok(Command::MGet { keys: key_list(p)? })
}

fn kv_mset(p: &Value) -> Result<Command, ApiError> {
    let pairs = match (field(p, "pairs"), field(p, "entries")) {
        (Some(Value::Array(items)), _) => items
            .iter()
            .map(|item| Ok((req_bytes(item, "key")?, req_bytes(item, "value")?)))
            .collect::<Result<Vec<_>, ApiError>>()?,
        (None, Some(Value::Object(m))) => m
            .iter()
            .map(|(k, v)| Ok((Bytes::copy_from_slice(k.as_bytes()), json_to_bytes(v, k)?)))
            .collect::<Result<Vec<_>, ApiError>>()?,
        _ => {
            return Err(ApiError::bad_request("expected 'pairs': [{key, value}] or 'entries': {key: value}"));
        }
    };
    if pairs.is_empty() {
        return Err(ApiError::bad_request("field 'pairs': must not be empty"));
    }
    Ok(Command::MSet { pairs, nx: flag(p, "nx")? })
}

fn kv_incr(p: &Value, sign: i64) -> Result<Command, ApiError> {
    let by = opt_i64(p, "by")?.unwrap_or(1);
    let by = by.checked_mul(sign).ok_or_else(|| ApiError::bad_request("field 'by': out of range"))?;
    Ok(Command::IncrBy { key: key(p)?, by })
}

fn kv_incr_float(p: &Value) -> Result<Command, ApiError> {
    let by = opt_f64(p, "by")?.ok_or_else(|| ApiError::bad_request("missing field 'by'"))?;
    Ok(Command::IncrByFloat { key: key(p)?, by })
}

fn kv_append(p: &Value) -> Result<Command, ApiError> {
    Ok(Command::Append { key: key(p)?, value: req_bytes(p, "value")? })
}

fn kv_expire(p: &Value) -> Result<Command, ApiError> {
    let ttl = match (ttl_of(p)?, opt_i64(p, "at_ms")?) {
        (Some(t), None) => t,
        (None, Some(at)) => Ttl::At(at),
        _ => {
            return Err(ApiError::bad_request("give one of 'ttl', 'ttl_ms' or 'at_ms'"));
        }
    };
    let conds = [("nx", ExpireCond::Nx), ("xx", ExpireCond::Xx), ("gt", ExpireCond::Gt), ("lt", ExpireCond::Lt)];
    let mut cond = ExpireCond::Always;
    for (name, c) in conds {
        if flag(p, name)? {
            if cond != ExpireCond::Always {
                return Err(ApiError::bad_request("only one of 'nx', 'xx', 'gt', 'lt' may be set"));
            }
            cond = c;
        }
    }
    Ok(Command::Expire { key: key(p)?, ttl, cond, name: "expire" })
}

fn kv_rename(p: &Value) -> Result<Command, ApiError> {
    let from = if field(p, "from").is_some() { req_bytes(p, "from")? } else { key(p)? };
    Ok(Command::Rename { from, to: req_bytes(p, "to")?, nx: flag(p, "nx")? })
}

fn kv_keys(p: &Value) -> Result<Command, ApiError> {
    let pattern = match field(p, "pattern") {
        Some(v) => json_to_bytes(v, "pattern")?,
        None => Bytes::from_static(b"*"),
    };
    Ok(Command::Keys { pattern })
}

fn kv_scan(p: &Value) -> Result<Command, ApiError> {
    let cursor = match opt_i64(p, "cursor")? {
        None => 0,
        Some(c) if c >= 0 => c as u64,
        Some(_) => match field(p, "cursor") {
            Some(Value::String(s)) => s.parse().map_err(|_| ApiError::bad_request("field 'cursor': invalid cursor"))?,
            _ => return Err(ApiError::bad_request("field 'cursor': invalid cursor")),
        },
    };
    let count = opt_i64(p, "count")?.unwrap_or(10);
    if !(1..=100_000).contains(&count) {
        return Err(ApiError::bad_request("field 'count': must be between 1 and 100000"));
    }
    Ok(Command::Scan(ScanArgs {
        cursor,
        pattern: field(p, "match").map(|v| json_to_bytes(v, "match")).transpose()?,
        prefix: field(p, "prefix").map(|v| json_to_bytes(v, "prefix")).transpose()?,
        count: count as usize,
        type_filter: field(p, "type").and_then(Value::as_str).map(str::to_string),
    }))
}

// ---- renderers ----

fn int(r: Reply) -> Result<i64, ApiError> {
    match r {
        Reply::Int(n) => Ok(n),
        other => Err(unexpected(other)),
    }
}

fn unexpected(r: Reply) -> ApiError {
    ApiError {
        status: axum::http::StatusCode::INTERNAL_SERVER_ERROR,
        code: "INTERNAL",
        message: format!("unexpected reply {r:?}"),
    }
}

fn opt_value(r: Reply) -> Result<Value, ApiError> {
    match r {
        Reply::Bulk(b) => Ok(bytes_to_json(&b)),
        Reply::Nil => Ok(Value::Null),
        other => Err(unexpected(other)),
    }
}

fn list(r: Reply) -> Result<Vec<Value>, ApiError> {
    match r {
        Reply::Array(items) => items.into_iter().map(opt_value).collect(),
        other => Err(unexpected(other)),
    }
}

fn render_value(p: &Value, r: Reply) -> Result<Value, ApiError> {
    match r {
        Reply::Nil => Err(ApiError::not_found("key not found")),
        r => Ok(json!({"key": p.get("key").cloned().unwrap_or(Value::Null), "value": opt_value(r)?})),
    }
}

fn render_set(p: &Value, r: Reply) -> Result<Value, ApiError> {
    if flag(p, "get")? {
        return Ok(json!({"previous": opt_value(r)?}));
    }
    match r {
        Reply::Ok => Ok(json!({"set": true})),
        Reply::Nil => Ok(json!({"set": false})),
        other => Err(unexpected(other)),
    }
}

fn render_previous(_: &Value, r: Reply) -> Result<Value, ApiError> {
    Ok(json!({"previous": opt_value(r)?}))
}

fn render_mget(_: &Value, r: Reply) -> Result<Value, ApiError> {
    Ok(json!({"values": list(r)?}))
}

fn render_mset(p: &Value, r: Reply) -> Result<Value, ApiError> {
    match r {
        Reply::Ok => Ok(json!({"set": true})),
        Reply::Int(n) if flag(p, "nx")? => Ok(json!({"set": n == 1})),
        other => Err(unexpected(other)),
    }
}

fn render_float(_: &Value, r: Reply) -> Result<Value, ApiError> {
    match r {
        Reply::Bulk(b) => {
            let text = String::from_utf8_lossy(&b).to_string();
            let n: f64 = text.parse().map_err(|_| unexpected(Reply::Bulk(b.clone())))?;
            Ok(json!({"value": n, "text": text}))
        }
        other => Err(unexpected(other)),
    }
}

fn render_ttl(_: &Value, r: Reply) -> Result<Value, ApiError> {
    match int(r)? {
        -2 => Err(ApiError::not_found("key not found")),
        -1 => Ok(json!({"ttl": null, "ttl_ms": null})),
        ms => Ok(json!({"ttl": (ms as u64).div_ceil(1000), "ttl_ms": ms})),
    }
}

fn render_type(_: &Value, r: Reply) -> Result<Value, ApiError> {
    match r {
        Reply::Status(t) => Ok(json!({"type": t})),
        other => Err(unexpected(other)),
    }
}

fn render_rename(_: &Value, r: Reply) -> Result<Value, ApiError> {
    match r {
        Reply::Ok => Ok(json!({"renamed": true})),
        Reply::Int(n) => Ok(json!({"renamed": n == 1})),
        other => Err(unexpected(other)),
    }
}

fn render_scan(_: &Value, r: Reply) -> Result<Value, ApiError> {
    match r {
        Reply::Array(mut parts) if parts.len() == 2 => {
            let keys = list(parts.pop().expect("two parts"))?;
            let cursor = match parts.pop() {
                Some(Reply::Bulk(c)) => String::from_utf8_lossy(&c).to_string(),
                other => return Err(unexpected(other.unwrap_or(Reply::Nil))),
            };
            Ok(json!({"cursor": cursor, "keys": keys}))
        }
        other => Err(unexpected(other)),
    }
}
