//! The HTTP codec's table: one entry per envelope command name (`kv.set`, `hash.get`, ...). Each entry
//! turns a JSON payload into the engine's typed [`Command`] (the same commands RESP parses into, so every
//! check past reading JSON lives in the engine once) and renders the typed [`Reply`] back to JSON. REST
//! routes build the same payload from path, query and body and go through the same entries.

use bytes::Bytes;
use serde_json::{Value, json};
use synap_core::command::queue::batch_size;
use synap_core::command::{Expiry, KeysCmd, KvCmd, PubSubCmd, QueueCmd};
use synap_core::queue::{ConsumeArgs, PublishArgs, QueueOptions};
use synap_core::stream::{GroupStart, RoomOptions, StreamCmd};
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
        parse: |p| Ok(Command::Kv(KvCmd::Strlen { key: key(p)? })),
        render: |_, r| Ok(json!({"length": int(r)?})),
    },
    Op { name: "kv.expire", parse: kv_expire, render: |_, r| Ok(json!({"updated": int(r)? == 1})) },
    Op {
        name: "kv.persist",
        parse: |p| Ok(Command::Keys(KeysCmd::Persist { key: key(p)? })),
        render: |_, r| Ok(json!({"updated": int(r)? == 1})),
    },
    Op {
        name: "kv.ttl",
        parse: |p| Ok(Command::Keys(KeysCmd::Ttl { key: key(p)?, unit: TimeUnit::Millis })),
        render: render_ttl,
    },
    Op { name: "kv.type", parse: |p| Ok(Command::Keys(KeysCmd::Type { key: key(p)? })), render: render_type },
    Op { name: "kv.rename", parse: kv_rename, render: render_rename },
    Op { name: "kv.keys", parse: kv_keys, render: |_, r| Ok(json!({"keys": list(r)?})) },
    Op { name: "kv.scan", parse: kv_scan, render: render_scan },
    Op {
        name: "kv.randomkey",
        parse: |_| Ok(Command::Keys(KeysCmd::RandomKey)),
        render: |_, r| Ok(json!({"key": opt_value(r)?})),
    },
    Op {
        name: "kv.dbsize",
        parse: |_| Ok(Command::Keys(KeysCmd::DbSize)),
        render: |_, r| Ok(json!({"size": int(r)?})),
    },
    Op { name: "kv.flushall", parse: |_| Ok(Command::Keys(KeysCmd::FlushAll)), render: |_, _| Ok(json!({"ok": true})) },
    Op { name: "queue.create", parse: queue_create, render: |_, r| Ok(json!({"created": int(r)? == 1})) },
    Op {
        name: "queue.delete",
        parse: |p| Ok(Command::Queue(QueueCmd::Delete { name: queue_name(p)? })),
        render: |_, r| Ok(json!({"deleted": int(r)? == 1})),
    },
    Op {
        name: "queue.list",
        parse: |_| Ok(Command::Queue(QueueCmd::List)),
        render: |_, r| Ok(json!({"queues": list(r)?})),
    },
    Op { name: "queue.publish", parse: queue_publish, render: |_, r| Ok(json!({"message_id": opt_value(r)?})) },
    Op { name: "queue.consume", parse: queue_consume, render: |_, r| Ok(json!({"messages": reply_json(r)})) },
    Op { name: "queue.ack", parse: queue_ack, render: |_, r| Ok(json!({"acked": int(r)?})) },
    Op { name: "queue.nack", parse: queue_nack, render: |_, r| Ok(json!({"nacked": int(r)? == 1})) },
    Op {
        name: "queue.stats",
        parse: |p| Ok(Command::Queue(QueueCmd::Stats { queue: queue_name(p)? })),
        render: |_, r| Ok(reply_json(r)),
    },
    Op {
        name: "queue.purge",
        parse: |p| Ok(Command::Queue(QueueCmd::Purge { queue: queue_name(p)? })),
        render: |_, r| Ok(json!({"purged": int(r)?})),
    },
    Op {
        name: "queue.dlq",
        parse: |p| Ok(Command::Queue(QueueCmd::DlqList { queue: queue_name(p)?, max: max_of(p, 100)? })),
        render: |_, r| Ok(json!({"messages": reply_json(r)})),
    },
    Op {
        name: "queue.redrive",
        parse: |p| Ok(Command::Queue(QueueCmd::Redrive { queue: queue_name(p)?, max: max_of(p, 1000)? })),
        render: |_, r| Ok(json!({"redriven": int(r)?})),
    },
    Op {
        name: "queue.dlq_purge",
        parse: |p| Ok(Command::Queue(QueueCmd::DlqPurge { queue: queue_name(p)? })),
        render: |_, r| Ok(json!({"purged": int(r)?})),
    },
    Op { name: "stream.create", parse: stream_create, render: |_, r| Ok(json!({"created": int(r)? == 1})) },
    Op {
        name: "stream.delete",
        parse: |p| Ok(Command::Stream(StreamCmd::Delete { room: room(p)? })),
        render: |_, r| Ok(json!({"deleted": int(r)? == 1})),
    },
    Op {
        name: "stream.list",
        parse: |_| Ok(Command::Stream(StreamCmd::List)),
        render: |_, r| Ok(json!({"streams": list(r)?})),
    },
    Op {
        name: "stream.stats",
        parse: |p| Ok(Command::Stream(StreamCmd::Stats { room: room(p)? })),
        render: |_, r| Ok(reply_json(r)),
    },
    Op { name: "stream.publish", parse: stream_publish, render: |_, r| Ok(reply_json(r)) },
    Op { name: "stream.consume", parse: stream_consume, render: |_, r| Ok(reply_json(r)) },
    Op { name: "stream.trim", parse: stream_trim, render: |_, r| Ok(json!({"removed": int(r)?})) },
    Op { name: "stream.group.create", parse: group_create, render: |_, r| Ok(json!({"created": int(r)? == 1})) },
    Op {
        name: "stream.group.delete",
        parse: |p| Ok(Command::Stream(StreamCmd::GroupDelete { room: room(p)?, group: req_bytes(p, "group")? })),
        render: |_, r| Ok(json!({"deleted": int(r)? == 1})),
    },
    Op { name: "stream.group.read", parse: group_read, render: |_, r| Ok(json!({"events": reply_json(r)})) },
    Op { name: "stream.group.ack", parse: group_ack, render: |_, r| Ok(json!({"acked": int(r)?})) },
    Op { name: "stream.group.claim", parse: group_claim, render: |_, r| Ok(json!({"events": reply_json(r)})) },
    Op { name: "pubsub.publish", parse: pubsub_publish, render: |_, r| Ok(json!({"subscribers_matched": int(r)?})) },
];

/// The entry of an envelope command name, among the key-value, queue, stream and pub/sub entries and the
/// hash, list, set and sorted-set ones (`types`).
pub fn find(name: &str) -> Option<&'static Op> {
    OPS.iter().chain(super::types::TYPE_OPS).find(|op| op.name == name)
}

// ---- payload readers ----

pub(super) fn field<'a>(p: &'a Value, name: &str) -> Option<&'a Value> {
    p.get(name).filter(|v| !v.is_null())
}

pub(super) fn req_bytes(p: &Value, name: &str) -> Result<Bytes, ApiError> {
    let v = field(p, name).ok_or_else(|| ApiError::bad_request(format!("missing field '{name}'")))?;
    json_to_bytes(v, name)
}

pub(super) fn key(p: &Value) -> Result<Bytes, ApiError> {
    req_bytes(p, "key")
}

pub(super) fn opt_i64(p: &Value, name: &str) -> Result<Option<i64>, ApiError> {
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

pub(super) fn opt_f64(p: &Value, name: &str) -> Result<Option<f64>, ApiError> {
    match field(p, name) {
        None => Ok(None),
        Some(Value::Number(n)) => Ok(n.as_f64()),
        Some(Value::String(s)) => {
            s.parse().map(Some).map_err(|_| ApiError::bad_request(format!("field '{name}': expected a number")))
        }
        Some(_) => Err(ApiError::bad_request(format!("field '{name}': expected a number"))),
    }
}

pub(super) fn flag(p: &Value, name: &str) -> Result<bool, ApiError> {
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
    Ok(Command::Kv(KvCmd::Set(SetArgs {
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
    })))
}

fn kv_get(p: &Value) -> Result<Command, ApiError> {
    Ok(Command::Kv(KvCmd::Get { key: key(p)? }))
}

fn kv_getdel(p: &Value) -> Result<Command, ApiError> {
    Ok(Command::Kv(KvCmd::GetDel { key: key(p)? }))
}

fn kv_getset(p: &Value) -> Result<Command, ApiError> {
    Ok(Command::Kv(KvCmd::Set(SetArgs { get: true, ..SetArgs::new(key(p)?, req_bytes(p, "value")?) })))
}

fn kv_del(p: &Value) -> Result<Command, ApiError> {
    Ok(Command::Keys(KeysCmd::Del { keys: key_list(p)? }))
}

fn kv_exists(p: &Value) -> Result<Command, ApiError> {
    Ok(Command::Keys(KeysCmd::Exists { keys: key_list(p)? }))
}

fn kv_mget(p: &Value) -> Result<Command, ApiError> {
    Ok(Command::Kv(KvCmd::MGet { keys: key_list(p)? }))
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
    Ok(Command::Kv(KvCmd::MSet { pairs, nx: flag(p, "nx")? }))
}

fn kv_incr(p: &Value, sign: i64) -> Result<Command, ApiError> {
    let by = opt_i64(p, "by")?.unwrap_or(1);
    let by = by.checked_mul(sign).ok_or_else(|| ApiError::bad_request("field 'by': out of range"))?;
    Ok(Command::Kv(KvCmd::IncrBy { key: key(p)?, by }))
}

fn kv_incr_float(p: &Value) -> Result<Command, ApiError> {
    let by = opt_f64(p, "by")?.ok_or_else(|| ApiError::bad_request("missing field 'by'"))?;
    Ok(Command::Kv(KvCmd::IncrByFloat { key: key(p)?, by: by.to_string().into() }))
}

fn kv_append(p: &Value) -> Result<Command, ApiError> {
    Ok(Command::Kv(KvCmd::Append { key: key(p)?, value: req_bytes(p, "value")? }))
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
    Ok(Command::Keys(KeysCmd::Expire { key: key(p)?, ttl, cond, name: "expire" }))
}

fn kv_rename(p: &Value) -> Result<Command, ApiError> {
    let from = if field(p, "from").is_some() { req_bytes(p, "from")? } else { key(p)? };
    Ok(Command::Keys(KeysCmd::Rename { from, to: req_bytes(p, "to")?, nx: flag(p, "nx")? }))
}

fn kv_keys(p: &Value) -> Result<Command, ApiError> {
    let pattern = match field(p, "pattern") {
        Some(v) => json_to_bytes(v, "pattern")?,
        None => Bytes::from_static(b"*"),
    };
    Ok(Command::Keys(KeysCmd::Keys { pattern }))
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
    Ok(Command::Keys(KeysCmd::Scan(ScanArgs {
        cursor,
        pattern: field(p, "match").map(|v| json_to_bytes(v, "match")).transpose()?,
        prefix: field(p, "prefix").map(|v| json_to_bytes(v, "prefix")).transpose()?,
        count: count as usize,
        type_filter: field(p, "type").and_then(Value::as_str).map(str::to_string),
    })))
}

pub(super) fn opt_u64(p: &Value, name: &str) -> Result<Option<u64>, ApiError> {
    match opt_i64(p, name)? {
        Some(n) if n < 0 => Err(ApiError::bad_request(format!("field '{name}': must not be negative"))),
        other => Ok(other.map(|n| n as u64)),
    }
}

fn opt_u32(p: &Value, name: &str) -> Result<Option<u32>, ApiError> {
    opt_u64(p, name)?
        .map(|n| u32::try_from(n).map_err(|_| ApiError::bad_request(format!("field '{name}': too large"))))
        .transpose()
}

/// The queue name: `queue` or `name`.
pub fn queue_name(p: &Value) -> Result<Bytes, ApiError> {
    if field(p, "queue").is_some() { req_bytes(p, "queue") } else { req_bytes(p, "name") }
}

fn max_of(p: &Value, default: u64) -> Result<usize, ApiError> {
    let n = opt_u64(p, "max")?.unwrap_or(default);
    batch_size(n).map_err(|e| ApiError::bad_request(format!("field 'max': {}", e.message())))
}

fn pubsub_publish(p: &Value) -> Result<Command, ApiError> {
    let channel = if field(p, "topic").is_some() { req_bytes(p, "topic")? } else { req_bytes(p, "channel")? };
    Ok(Command::PubSub(PubSubCmd::Publish { channel, payload: req_bytes(p, "payload")? }))
}

fn queue_create(p: &Value) -> Result<Command, ApiError> {
    let options = QueueOptions {
        max_depth: opt_u64(p, "max_depth")?,
        ack_deadline_ms: opt_u64(p, "ack_deadline_ms")?,
        max_retries: opt_u32(p, "max_retries")?,
        dead_letter_queue: field(p, "dead_letter_queue").map(|v| json_to_bytes(v, "dead_letter_queue")).transpose()?,
        max_message_bytes: opt_u64(p, "max_message_bytes")?,
        prefetch: opt_u32(p, "prefetch")?,
    };
    Ok(Command::Queue(QueueCmd::Create { name: queue_name(p)?, options }))
}

fn queue_publish(p: &Value) -> Result<Command, ApiError> {
    let priority = opt_u64(p, "priority")?.unwrap_or(0);
    if priority > 9 {
        return Err(ApiError::bad_request("field 'priority': must be between 0 and 9"));
    }
    let headers = match field(p, "headers") {
        None => Vec::new(),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| Ok((Bytes::copy_from_slice(k.as_bytes()), json_to_bytes(v, "headers")?)))
            .collect::<Result<_, ApiError>>()?,
        Some(_) => return Err(ApiError::bad_request("field 'headers': expected an object")),
    };
    Ok(Command::Queue(QueueCmd::Publish(PublishArgs {
        queue: queue_name(p)?,
        payload: req_bytes(p, "payload")?,
        priority: priority as u8,
        headers,
        delay_ms: opt_u64(p, "delay_ms")?.unwrap_or(0),
        ttl_ms: opt_u64(p, "ttl_ms")?.unwrap_or(0),
    })))
}

fn queue_consume(p: &Value) -> Result<Command, ApiError> {
    let consumer =
        if field(p, "consumer_id").is_some() { req_bytes(p, "consumer_id")? } else { req_bytes(p, "consumer")? };
    Ok(Command::Queue(QueueCmd::Consume {
        args: ConsumeArgs { queue: queue_name(p)?, consumer, max: max_of(p, 1)? },
        wait_ms: None,
    }))
}

fn message_id(v: &Value, name: &str) -> Result<u64, ApiError> {
    let b = json_to_bytes(v, name)?;
    synap_core::queue::parse_id(&b).ok_or_else(|| ApiError::bad_request(format!("field '{name}': not a message id")))
}

fn queue_ack(p: &Value) -> Result<Command, ApiError> {
    let ids = match (field(p, "message_ids"), field(p, "message_id")) {
        (Some(Value::Array(items)), _) if !items.is_empty() => {
            items.iter().map(|v| message_id(v, "message_ids")).collect::<Result<_, _>>()?
        }
        (None, Some(v)) => vec![message_id(v, "message_id")?],
        _ => return Err(ApiError::bad_request("give 'message_id' or a non-empty 'message_ids'")),
    };
    Ok(Command::Queue(QueueCmd::Ack { queue: queue_name(p)?, ids }))
}

fn queue_nack(p: &Value) -> Result<Command, ApiError> {
    let id = message_id(
        field(p, "message_id").ok_or_else(|| ApiError::bad_request("missing field 'message_id'"))?,
        "message_id",
    )?;
    let requeue = match field(p, "requeue") {
        None => true,
        Some(_) => flag(p, "requeue")?,
    };
    Ok(Command::Queue(QueueCmd::Nack { queue: queue_name(p)?, id, requeue }))
}

/// The stream name: `room` or `name`.
pub fn room(p: &Value) -> Result<Bytes, ApiError> {
    if field(p, "room").is_some() { req_bytes(p, "room") } else { req_bytes(p, "name") }
}

fn stream_create(p: &Value) -> Result<Command, ApiError> {
    // Retention may be given as an object or as top-level fields.
    let r = field(p, "retention").unwrap_or(p);
    if !r.is_object() {
        return Err(ApiError::bad_request("field 'retention': expected an object"));
    }
    let options = RoomOptions {
        partitions: opt_u32(p, "partitions")?,
        max_events: opt_u64(r, "max_events")?,
        max_bytes: opt_u64(r, "max_bytes")?,
        max_age_ms: opt_u64(r, "max_age_ms")?,
    };
    Ok(Command::Stream(StreamCmd::Create { room: room(p)?, options }))
}

fn stream_publish(p: &Value) -> Result<Command, ApiError> {
    let mut fields = Vec::new();
    if let Some(v) = field(p, "event") {
        fields.push((Bytes::from_static(b"event"), json_to_bytes(v, "event")?));
    }
    let data = field(p, "data").ok_or_else(|| ApiError::bad_request("missing field 'data'"))?;
    let data = match data {
        Value::String(_) => json_to_bytes(data, "data")?,
        Value::Object(m) if m.len() == 1 && m.contains_key("base64") => json_to_bytes(data, "data")?,
        // Any other JSON value is stored as its JSON text.
        other => Bytes::from(other.to_string()),
    };
    fields.push((Bytes::from_static(b"data"), data));
    match field(p, "headers") {
        None => {}
        Some(Value::Object(m)) => {
            for (k, v) in m {
                if k == "event" || k == "data" {
                    return Err(ApiError::bad_request(format!("header '{k}' clashes with the event's own field")));
                }
                fields.push((Bytes::copy_from_slice(k.as_bytes()), json_to_bytes(v, "headers")?));
            }
        }
        Some(_) => return Err(ApiError::bad_request("field 'headers': expected an object")),
    }
    let key = field(p, "key").map(|v| json_to_bytes(v, "key")).transpose()?.unwrap_or_default();
    Ok(Command::Stream(StreamCmd::Publish { room: room(p)?, key, partition: opt_u32(p, "partition")?, fields }))
}

fn stream_consume(p: &Value) -> Result<Command, ApiError> {
    let limit = opt_u64(p, "limit")?.unwrap_or(100);
    if limit == 0 {
        return Err(ApiError::bad_request("field 'limit': must be at least 1"));
    }
    Ok(Command::Stream(StreamCmd::Read {
        room: room(p)?,
        partition: opt_u32(p, "partition")?.unwrap_or(0),
        from: opt_u64(p, "from_offset")?,
        limit: limit.min(1_000_000) as usize,
    }))
}

fn stream_trim(p: &Value) -> Result<Command, ApiError> {
    let max_events = opt_u64(p, "max_events")?.ok_or_else(|| ApiError::bad_request("missing field 'max_events'"))?;
    Ok(Command::Stream(StreamCmd::Trim { room: room(p)?, max_events }))
}

fn group_create(p: &Value) -> Result<Command, ApiError> {
    let start = match field(p, "start") {
        None => GroupStart::Earliest,
        Some(Value::String(s)) if s == "earliest" => GroupStart::Earliest,
        Some(Value::String(s)) if s == "latest" => GroupStart::Latest,
        Some(_) => GroupStart::Offset(
            opt_u64(p, "start")?
                .ok_or_else(|| ApiError::bad_request("field 'start': 'earliest', 'latest' or an offset"))?,
        ),
    };
    Ok(Command::Stream(StreamCmd::GroupCreate {
        room: room(p)?,
        group: req_bytes(p, "group")?,
        start,
        // u64::MAX: the server's default.
        redeliver_ms: opt_u64(p, "redeliver_after_ms")?.unwrap_or(u64::MAX),
    }))
}

fn group_read(p: &Value) -> Result<Command, ApiError> {
    let count = opt_u64(p, "count")?.unwrap_or(10);
    if count == 0 {
        return Err(ApiError::bad_request("field 'count': must be at least 1"));
    }
    Ok(Command::Stream(StreamCmd::GroupRead {
        room: room(p)?,
        group: req_bytes(p, "group")?,
        consumer: req_bytes(p, "consumer")?,
        count: count.min(1_000_000) as usize,
    }))
}

fn offsets(p: &Value) -> Result<Vec<u64>, ApiError> {
    match (field(p, "offsets"), field(p, "offset")) {
        (Some(Value::Array(items)), _) if !items.is_empty() => items
            .iter()
            .map(|v| v.as_u64().ok_or_else(|| ApiError::bad_request("field 'offsets': expected non-negative integers")))
            .collect(),
        (None, Some(_)) => Ok(vec![opt_u64(p, "offset")?.expect("present")]),
        _ => Err(ApiError::bad_request("give 'offset' or a non-empty 'offsets'")),
    }
}

fn group_ack(p: &Value) -> Result<Command, ApiError> {
    Ok(Command::Stream(StreamCmd::GroupAck {
        room: room(p)?,
        group: req_bytes(p, "group")?,
        partition: opt_u32(p, "partition")?.unwrap_or(0),
        offsets: offsets(p)?,
    }))
}

fn group_claim(p: &Value) -> Result<Command, ApiError> {
    Ok(Command::Stream(StreamCmd::GroupClaim {
        room: room(p)?,
        group: req_bytes(p, "group")?,
        consumer: req_bytes(p, "consumer")?,
        min_idle_ms: opt_u64(p, "min_idle_ms")?.unwrap_or(0),
        partition: opt_u32(p, "partition")?.unwrap_or(0),
        offsets: offsets(p)?,
    }))
}

/// Any reply as JSON: maps become objects, bytes strings (or base64), nil null.
pub fn reply_json(r: Reply) -> Value {
    match r {
        Reply::Ok => json!("OK"),
        Reply::Status(s) => json!(s),
        Reply::Nil | Reply::NullArray => Value::Null,
        Reply::Simple(s) => json!(s),
        Reply::Error(e) => json!({ "error": e }),
        Reply::Int(n) => json!(n),
        Reply::Bulk(b) => bytes_to_json(&b),
        Reply::Double(d) => json!(d),
        Reply::Decimal(text) | Reply::DoubleText(text) => {
            json!(std::str::from_utf8(&text).ok().and_then(|t| t.parse::<f64>().ok()))
        }
        Reply::Expiry(e) => json!(e.redis_value()),
        Reply::Scan { cursor, items } => {
            json!([cursor.to_string(), Value::Array(items.into_iter().map(reply_json).collect())])
        }
        Reply::Read { partition, next_offset, events } => json!({
            "events": Value::Array(events.into_iter().map(reply_json).collect()),
            "next_offset": next_offset,
            "partition": partition,
        }),
        Reply::Array(items) | Reply::Set(items) => Value::Array(items.into_iter().map(reply_json).collect()),
        // Flat, as HTTP has answered ZRANGE ... WITHSCORES from the start: [member, score, ...].
        Reply::Pairs(pairs) => {
            Value::Array(pairs.into_iter().flat_map(|(a, b)| [reply_json(a), reply_json(b)]).collect())
        }
        Reply::Map(pairs) | Reply::Keyed(pairs) => {
            let mut m = serde_json::Map::new();
            for (k, v) in pairs {
                let key = match k {
                    Reply::Bulk(b) => String::from_utf8_lossy(&b).to_string(),
                    Reply::Status(s) => s.to_string(),
                    other => reply_json(other).to_string(),
                };
                m.insert(key, reply_json(v));
            }
            Value::Object(m)
        }
    }
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
        Reply::Decimal(text) => {
            let value = std::str::from_utf8(&text).ok().and_then(|t| t.parse::<f64>().ok());
            Ok(json!({"value": value, "text": String::from_utf8_lossy(&text)}))
        }
        other => Err(unexpected(other)),
    }
}

fn render_ttl(_: &Value, r: Reply) -> Result<Value, ApiError> {
    match r {
        Reply::Expiry(Expiry::Missing) => Err(ApiError::not_found("key not found")),
        Reply::Expiry(Expiry::Persistent) => Ok(json!({"ttl": null, "ttl_ms": null})),
        Reply::Expiry(Expiry::Remaining { ms, .. }) => Ok(json!({"ttl": ms.div_ceil(1000), "ttl_ms": ms})),
        other => Err(unexpected(other)),
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
        Reply::Scan { cursor, items } => {
            let keys = list(Reply::Array(items))?;
            Ok(json!({"cursor": cursor.to_string(), "keys": keys}))
        }
        other => Err(unexpected(other)),
    }
}

/// Every envelope command name (key-value, queue, stream, pub/sub and the collection types).
pub fn names() -> impl Iterator<Item = &'static str> {
    OPS.iter().chain(super::types::TYPE_OPS).map(|op| op.name)
}
