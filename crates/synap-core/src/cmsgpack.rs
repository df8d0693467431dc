//! The `cmsgpack` library scripts get, as Redis ships it (lua-cmsgpack): `cmsgpack.pack(v, ...)` writes
//! each value as MessagePack and concatenates them (integral numbers as the smallest integer form,
//! others as float 32 when exact, else float 64; a table whose keys are exactly 1..n as an array, any
//! other as a map, in Lua's iteration order; tables nested 16 deep as nil); `cmsgpack.unpack(s)` reads
//! every value back, `unpack_one(s, offset)` and `unpack_limit(s, limit, offset)` some of them with the
//! offset to go on from (-1 at the end).

use mlua::{Lua, MultiValue, Table, Value};

use crate::cjson::MARKER;

/// lua-cmsgpack's nesting limit for encoding (deeper tables are written as nil).
const MAX_NESTING: usize = 16;
/// The deepest nesting decoding accepts (lua-cmsgpack is bounded by the Lua stack).
const MAX_DECODE_DEPTH: usize = 1000;
/// The most bytes one pack writes (its buffer is outside Lua's memory limit).
const MAX_BYTES: usize = 64 << 20;

fn fail(msg: impl Into<String>) -> mlua::Error {
    mlua::Error::RuntimeError(format!("{MARKER}{}", msg.into()))
}

struct Encoder<'a> {
    out: Vec<u8>,
    kill: &'a std::sync::atomic::AtomicBool,
}

/// The `cmsgpack` table.
pub(crate) fn library(lua: &Lua, kill: std::sync::Arc<std::sync::atomic::AtomicBool>) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.raw_set(
        "pack",
        lua.create_function(move |lua, args: MultiValue| {
            if args.is_empty() {
                return Err(fail("bad argument #0 to 'pack' (MessagePack pack needs input.)"));
            }
            let mut e = Encoder { out: Vec::new(), kill: &kill };
            for v in args.iter() {
                encode(v, 0, &mut e)?;
            }
            lua.create_string(&e.out)
        })?,
    )?;
    t.raw_set("unpack", lua.create_function(|lua, s: mlua::LuaString| unpack(lua, &s.as_bytes(), 0, 0))?)?;
    t.raw_set(
        "unpack_one",
        lua.create_function(|lua, (s, offset): (mlua::LuaString, Option<i64>)| {
            unpack(lua, &s.as_bytes(), 1, offset.unwrap_or(0))
        })?,
    )?;
    t.raw_set(
        "unpack_limit",
        lua.create_function(|lua, (s, limit, offset): (mlua::LuaString, i64, Option<i64>)| {
            unpack(lua, &s.as_bytes(), limit, offset.unwrap_or(0))
        })?,
    )?;
    Ok(t)
}

fn int(n: i64, out: &mut Vec<u8>) {
    if n >= 0 {
        match n {
            0..=127 => out.push(n as u8),
            128..=0xff => out.extend_from_slice(&[0xcc, n as u8]),
            0x100..=0xffff => {
                out.push(0xcd);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            0x1_0000..=0xffff_ffff => {
                out.push(0xce);
                out.extend_from_slice(&(n as u32).to_be_bytes());
            }
            _ => {
                out.push(0xcf);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
    } else if n >= -32 {
        out.push(n as i8 as u8);
    } else if n >= -128 {
        out.extend_from_slice(&[0xd0, n as i8 as u8]);
    } else if n >= -32768 {
        out.push(0xd1);
        out.extend_from_slice(&(n as i16).to_be_bytes());
    } else if n >= -2_147_483_648 {
        out.push(0xd2);
        out.extend_from_slice(&(n as i32).to_be_bytes());
    } else {
        out.push(0xd3);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

fn number(n: f64, out: &mut Vec<u8>) {
    // An integer when the double is one exactly (and fits 64 bits), as lua-cmsgpack decides.
    if !n.is_infinite() && (n as i64) as f64 == n && (-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&n)
    {
        return int(n as i64, out);
    }
    let f = n as f32;
    if f as f64 == n {
        out.push(0xca);
        out.extend_from_slice(&f.to_be_bytes());
    } else {
        out.push(0xcb);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

fn bytes(s: &[u8], out: &mut Vec<u8>) {
    let len = s.len();
    if len < 32 {
        out.push(0xa0 | len as u8);
    } else if len <= 0xff {
        out.extend_from_slice(&[0xd9, len as u8]);
    } else if len <= 0xffff {
        out.push(0xda);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0xdb);
        out.extend_from_slice(&(len as u32).to_be_bytes());
    }
    out.extend_from_slice(s);
}

fn header(n: usize, small: u8, b16: u8, b32: u8, out: &mut Vec<u8>) {
    if n <= 15 {
        out.push(small | n as u8);
    } else if n <= 0xffff {
        out.push(b16);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(b32);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    }
}

fn encode(v: &Value, level: usize, e: &mut Encoder<'_>) -> mlua::Result<()> {
    if e.out.len() > MAX_BYTES {
        return Err(fail(format!("Cannot pack: the output is larger than {MAX_BYTES} bytes")));
    }
    if e.kill.load(std::sync::atomic::Ordering::Acquire) {
        return Err(mlua::Error::RuntimeError("Script killed by user with SCRIPT KILL...".into()));
    }
    match v {
        Value::String(s) => bytes(&s.as_bytes(), &mut e.out),
        Value::Boolean(b) => e.out.push(if *b { 0xc3 } else { 0xc2 }),
        Value::Integer(n) => number(*n as f64, &mut e.out),
        Value::Number(n) => number(*n, &mut e.out),
        Value::Table(t) if level < MAX_NESTING => {
            // An array when every key is a positive whole number (that fits a C int) and the largest is
            // the count of keys.
            let pairs: Vec<(Value, Value)> = t.pairs::<Value, Value>().collect::<mlua::Result<_>>()?;
            let index = |k: &Value| match k {
                Value::Integer(i) => (*i > 0 && *i <= i32::MAX as i64).then_some(*i as f64),
                Value::Number(n) => (*n > 0.0 && *n <= i32::MAX as f64 && n.fract() == 0.0).then_some(*n),
                _ => None,
            };
            let array = pairs.iter().map(|(k, _)| index(k)).try_fold(0f64, |m, i| i.map(|i| m.max(i)));
            match array {
                Some(max) if max as usize == pairs.len() => {
                    let len = t.raw_len();
                    header(len, 0x90, 0xdc, 0xdd, &mut e.out);
                    for i in 1..=len {
                        encode(&t.raw_get::<Value>(i)?, level + 1, e)?;
                    }
                }
                _ => {
                    header(pairs.len(), 0x80, 0xde, 0xdf, &mut e.out);
                    for (k, v) in &pairs {
                        encode(k, level + 1, e)?;
                        encode(v, level + 1, e)?;
                    }
                }
            }
        }
        _ => e.out.push(0xc0),
    }
    Ok(())
}

/// Where a decode stands.
struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

enum Bad {
    Eof,
    Format,
}

impl Cursor<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], Bad> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.data.len()).ok_or(Bad::Eof)?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn be(&mut self, n: usize) -> Result<u64, Bad> {
        Ok(self.take(n)?.iter().fold(0u64, |acc, &b| (acc << 8) | b as u64))
    }
}

fn decode(lua: &Lua, c: &mut Cursor<'_>, depth: usize) -> mlua::Result<Result<Value, Bad>> {
    if depth >= MAX_DECODE_DEPTH {
        return Err(fail(format!("Too many nested data structures ({depth})")));
    }
    stacker::maybe_grow(64 * 1024, 1024 * 1024, || decode_level(lua, c, depth))
}

fn decode_level(lua: &Lua, c: &mut Cursor<'_>, depth: usize) -> mlua::Result<Result<Value, Bad>> {
    macro_rules! tri {
        ($e:expr) => {
            match $e {
                Ok(v) => v,
                Err(b) => return Ok(Err(b)),
            }
        };
    }
    let tag = tri!(c.take(1))[0];
    let num = |n: f64| Value::Number(n);
    let v = match tag {
        0x00..=0x7f => num(tag as f64),
        0xe0..=0xff => num(tag as i8 as f64),
        0xc0 => Value::Nil,
        0xc2 => Value::Boolean(false),
        0xc3 => Value::Boolean(true),
        0xcc => num(tri!(c.be(1)) as f64),
        0xcd => num(tri!(c.be(2)) as f64),
        0xce => num(tri!(c.be(4)) as f64),
        0xcf => num(tri!(c.be(8)) as f64),
        0xd0 => num(tri!(c.be(1)) as u8 as i8 as f64),
        0xd1 => num(tri!(c.be(2)) as u16 as i16 as f64),
        0xd2 => num(tri!(c.be(4)) as u32 as i32 as f64),
        0xd3 => num(tri!(c.be(8)) as i64 as f64),
        0xca => num(f32::from_bits(tri!(c.be(4)) as u32) as f64),
        0xcb => num(f64::from_bits(tri!(c.be(8)))),
        0xa0..=0xbf | 0xd9 | 0xda | 0xdb | 0xc4 | 0xc5 | 0xc6 => {
            let len = match tag {
                0xa0..=0xbf => (tag & 0x1f) as usize,
                0xd9 | 0xc4 => tri!(c.be(1)) as usize,
                0xda | 0xc5 => tri!(c.be(2)) as usize,
                _ => tri!(c.be(4)) as usize,
            };
            Value::String(lua.create_string(tri!(c.take(len)))?)
        }
        0x90..=0x9f | 0xdc | 0xdd => {
            let n = match tag {
                0x90..=0x9f => (tag & 0x0f) as usize,
                0xdc => tri!(c.be(2)) as usize,
                _ => tri!(c.be(4)) as usize,
            };
            // Each element takes at least one byte: a count past the input is short of bytes.
            if n > c.data.len() - c.pos {
                return Ok(Err(Bad::Eof));
            }
            let t = lua.create_table_with_capacity(n, 0)?;
            for i in 1..=n {
                let v = tri!(decode(lua, c, depth + 1)?);
                t.raw_set(i, v)?;
            }
            Value::Table(t)
        }
        0x80..=0x8f | 0xde | 0xdf => {
            let n = match tag {
                0x80..=0x8f => (tag & 0x0f) as usize,
                0xde => tri!(c.be(2)) as usize,
                _ => tri!(c.be(4)) as usize,
            };
            if n > (c.data.len() - c.pos) / 2 {
                return Ok(Err(Bad::Eof));
            }
            let t = lua.create_table_with_capacity(0, n)?;
            for _ in 0..n {
                let k = tri!(decode(lua, c, depth + 1)?);
                let v = tri!(decode(lua, c, depth + 1)?);
                if !matches!(k, Value::Nil) {
                    t.raw_set(k, v)?;
                }
            }
            Value::Table(t)
        }
        _ => return Ok(Err(Bad::Format)),
    };
    Ok(Ok(v))
}

/// `limit` values (0: all) from `offset`; with a limit or an offset, the next offset (-1 at the end)
/// comes first.
fn unpack(lua: &Lua, data: &[u8], limit: i64, offset: i64) -> mlua::Result<MultiValue> {
    if offset < 0 || limit < 0 {
        return Err(fail(format!("Invalid request to unpack with offset of {offset} and limit of {}.", data.len())));
    }
    if offset as u64 > data.len() as u64 {
        return Err(fail(format!("Start offset {offset} greater than input length {}.", data.len())));
    }
    let all = limit == 0 && offset == 0;
    let limit = if all { usize::MAX } else { limit as usize };
    let mut c = Cursor { data, pos: offset as usize };
    let mut out = Vec::new();
    while c.pos < data.len() && out.len() < limit {
        match decode(lua, &mut c, 0)? {
            Ok(v) => out.push(v),
            Err(Bad::Eof) => return Err(fail("Missing bytes in input.")),
            Err(Bad::Format) => return Err(fail("Bad data format in input.")),
        }
    }
    if !all {
        let next = if c.pos == data.len() { -1 } else { c.pos as i64 };
        out.insert(0, Value::Number(next as f64));
    }
    Ok(MultiValue::from_vec(out))
}
