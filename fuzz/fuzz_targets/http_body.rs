//! HTTP request bodies (JSON, MessagePack, raw bytes, and refused types) on arbitrary bytes, then the
//! command envelope and every REST op over what decoded, executed against an engine: nothing panics, and
//! every refusal is an error value.
#![no_main]

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::{HeaderMap, HeaderValue, header};
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use synap_core::{Command, Engine, EngineConfig, ExecCtx};
use synap_server::http::body::parse_body;
use synap_server::http::ops::{OPS, TYPE_OPS, find, find_type_op, type_command};

fn engine() -> &'static Engine {
    static E: OnceLock<Engine> = OnceLock::new();
    E.get_or_init(|| {
        let mut cfg = EngineConfig::default();
        cfg.kv.shards = 16;
        cfg.kv.max_memory = 64 << 20;
        cfg.kv.eviction = synap_core::EvictionPolicy::AllKeysRandom;
        cfg.kv.max_reply_bytes = 1 << 20;
        Engine::in_memory(cfg)
    })
}

fn run(cmd: Command) {
    static RUNS: AtomicU64 = AtomicU64::new(0);
    if RUNS.fetch_add(1, Ordering::Relaxed) % 5000 == 0 {
        let _ = engine().execute(&mut ExecCtx::default(), Command::FlushAll);
    }
    let _ = engine().execute(&mut ExecCtx::default(), cmd);
}

fn envelope(name: &str, payload: &Value) {
    if let Some(t) = find_type_op(name) {
        if let Ok(cmd) = type_command(t, payload) {
            run(cmd);
        }
    } else if let Some(op) = find(name)
        && let Ok(cmd) = (op.parse)(payload)
    {
        run(cmd);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else { return };
    let ctype = ["application/json", "application/msgpack", "application/octet-stream", "text/plain", ""][sel as usize % 5];
    let mut headers = HeaderMap::new();
    if !ctype.is_empty() {
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    }
    let Ok(value) = parse_body(&headers, &Bytes::copy_from_slice(rest)) else { return };
    let items = match &value {
        Value::Array(a) => a.iter().take(16).cloned().collect(),
        v => vec![v.clone()],
    };
    for item in &items {
        let payload = item.get("payload").cloned().unwrap_or_else(|| Value::Object(Default::default()));
        if let Some(name) = item.get("command").and_then(Value::as_str) {
            envelope(name, &payload);
        }
    }
    // The whole body as the payload of one op, chosen by the selector byte.
    let i = (sel as usize / 5) % (OPS.len() + TYPE_OPS.len());
    match OPS.get(i) {
        Some(op) => {
            if let Ok(cmd) = (op.parse)(&value) {
                run(cmd);
            }
        }
        None => {
            if let Ok(cmd) = type_command(&TYPE_OPS[i - OPS.len()], &value) {
                run(cmd);
            }
        }
    }
});
