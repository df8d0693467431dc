//! The `cjson` library scripts get, as Redis ships it (lua-cjson's defaults): `cjson.encode` writes
//! numbers with `%.14g`, escapes `/`, turns a table whose keys are 1..n into an array (holes as `null`,
//! refused when "excessively sparse") and any other table into an object; `cjson.decode` reads JSON into
//! tables, with `cjson.null` for null.

use mlua::{LightUserData, Lua, Table, Value};

use crate::command::args::format_g;

/// Errors are raised with this marker so that the script's error handler gives them Redis's form
/// (`user_script:<line>: <message>`).
pub(crate) const MARKER: &str = "\u{2}cjson\u{2}";

/// The deepest nesting encode and decode accept (lua-cjson's default).
const MAX_DEPTH: usize = 1000;

fn fail(msg: impl Into<String>) -> mlua::Error {
    mlua::Error::RuntimeError(format!("{MARKER}{}", msg.into()))
}

fn null() -> Value {
    Value::LightUserData(LightUserData(std::ptr::null_mut()))
}

fn is_null(v: &Value) -> bool {
    matches!(v, Value::LightUserData(LightUserData(p)) if p.is_null())
}

/// The most bytes `encode` writes (its buffer is outside Lua's memory limit) and `decode` reads.
const MAX_BYTES: usize = 64 << 20;

/// Where an encode stands: the output, and the flag SCRIPT KILL sets (checked as it goes: the walk runs
/// no Lua instructions for the kill hook to see).
struct Encoder<'a> {
    out: Vec<u8>,
    kill: &'a std::sync::atomic::AtomicBool,
}

/// The `cjson` table.
pub(crate) fn library(lua: &Lua, kill: std::sync::Arc<std::sync::atomic::AtomicBool>) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.raw_set("null", null())?;
    t.raw_set(
        "encode",
        lua.create_function(move |lua, v: Value| {
            let mut e = Encoder { out: Vec::new(), kill: &kill };
            encode(&v, 0, &mut e)?;
            lua.create_string(&e.out)
        })?,
    )?;
    t.raw_set(
        "decode",
        lua.create_function(|lua, s: mlua::LuaString| {
            if s.as_bytes().len() > MAX_BYTES {
                return Err(fail(format!("Cannot decode: the input is larger than {MAX_BYTES} bytes")));
            }
            let json: serde_json::Value = serde_json::from_slice(&s.as_bytes())
                .map_err(|e| fail(format!("Expected value but found invalid token at character {}", e.column())))?;
            decode(lua, &json, 0)
        })?,
    )?;
    Ok(t)
}

fn number(n: f64, out: &mut Vec<u8>) -> mlua::Result<()> {
    if !n.is_finite() {
        return Err(fail("Cannot serialise number: must not be NaN or Inf"));
    }
    out.extend_from_slice(format_g(n, 14).as_bytes());
    Ok(())
}

fn string(s: &[u8], out: &mut Vec<u8>) {
    out.push(b'"');
    for &b in s {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'/' => out.extend_from_slice(b"\\/"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            0..=0x1f | 0x7f => out.extend_from_slice(format!("\\u{b:04x}").as_bytes()),
            _ => out.push(b),
        }
    }
    out.push(b'"');
}

/// Each nesting level may need a fresh piece of stack: 1000 levels do not fit a worker thread's.
fn encode(v: &Value, depth: usize, e: &mut Encoder<'_>) -> mlua::Result<()> {
    if e.out.len() > MAX_BYTES {
        return Err(fail(format!("Cannot serialise: the output is larger than {MAX_BYTES} bytes")));
    }
    if e.kill.load(std::sync::atomic::Ordering::Acquire) {
        return Err(mlua::Error::RuntimeError("Script killed by user with SCRIPT KILL...".into()));
    }
    stacker::maybe_grow(64 * 1024, 1024 * 1024, || encode_level(v, depth, e))
}

fn encode_level(v: &Value, depth: usize, e: &mut Encoder<'_>) -> mlua::Result<()> {
    match v {
        Value::Nil => e.out.extend_from_slice(b"null"),
        v if is_null(v) => e.out.extend_from_slice(b"null"),
        Value::Boolean(b) => e.out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Integer(n) => number(*n as f64, &mut e.out)?,
        Value::Number(n) => number(*n, &mut e.out)?,
        Value::String(s) => string(&s.as_bytes(), &mut e.out),
        Value::Table(t) => {
            if depth >= MAX_DEPTH {
                return Err(fail(format!("Cannot serialise, excessive nesting ({})", depth + 1)));
            }
            let pairs: Vec<(Value, Value)> = t.pairs::<Value, Value>().collect::<mlua::Result<_>>()?;
            // An array: every key a positive integer, and not too sparse (lua-cjson: at most twice as
            // many slots as items, past 10 slots).
            let index = |k: &Value| match k {
                Value::Integer(i) if *i >= 1 => Some(*i as u64),
                Value::Number(n) if *n >= 1.0 && n.fract() == 0.0 => Some(*n as u64),
                _ => None,
            };
            let array_max = pairs.iter().map(|(k, _)| index(k)).try_fold(0u64, |m, i| i.map(|i| m.max(i)));
            match array_max {
                Some(max) if !pairs.is_empty() => {
                    if max > pairs.len() as u64 * 2 && max > 10 {
                        return Err(fail("Cannot serialise table: excessively sparse array"));
                    }
                    e.out.push(b'[');
                    for i in 1..=max {
                        if i > 1 {
                            e.out.push(b',');
                        }
                        encode(&t.raw_get::<Value>(i)?, depth + 1, e)?;
                    }
                    e.out.push(b']');
                }
                _ => {
                    e.out.push(b'{');
                    for (n, (k, v)) in pairs.iter().enumerate() {
                        if n > 0 {
                            e.out.push(b',');
                        }
                        match k {
                            Value::String(s) => string(&s.as_bytes(), &mut e.out),
                            Value::Integer(i) => string(format_g(*i as f64, 14).as_bytes(), &mut e.out),
                            Value::Number(x) if x.is_finite() => string(format_g(*x, 14).as_bytes(), &mut e.out),
                            other => {
                                return Err(fail(format!(
                                    "Cannot serialise {}: table key must be a number or string",
                                    other.type_name()
                                )));
                            }
                        }
                        e.out.push(b':');
                        encode(v, depth + 1, e)?;
                    }
                    e.out.push(b'}');
                }
            }
        }
        other => return Err(fail(format!("Cannot serialise {}: type not supported", other.type_name()))),
    }
    Ok(())
}

fn decode(lua: &Lua, v: &serde_json::Value, depth: usize) -> mlua::Result<Value> {
    if depth >= MAX_DEPTH {
        return Err(fail(format!("Found too many nested data structures ({})", depth + 1)));
    }
    Ok(match v {
        serde_json::Value::Null => null(),
        serde_json::Value::Bool(b) => Value::Boolean(*b),
        serde_json::Value::Number(n) => Value::Number(n.as_f64().unwrap_or(0.0)),
        serde_json::Value::String(s) => Value::String(lua.create_string(s)?),
        serde_json::Value::Array(items) => {
            let t = lua.create_table_with_capacity(items.len(), 0)?;
            for (i, item) in items.iter().enumerate() {
                t.raw_seti(i + 1, decode(lua, item, depth + 1)?)?;
            }
            Value::Table(t)
        }
        serde_json::Value::Object(map) => {
            let t = lua.create_table_with_capacity(0, map.len())?;
            for (k, item) in map {
                t.raw_set(k.as_str(), decode(lua, item, depth + 1)?)?;
            }
            Value::Table(t)
        }
    })
}
