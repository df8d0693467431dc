//! The `struct` library scripts get, as Redis ships it (Roberto Ierusalimschy's lstruct 0.2):
//! `struct.pack(fmt, ...)`, `struct.unpack(fmt, s [, pos])` (the values, then the position after them)
//! and `struct.size(fmt)`. Formats as on the 64-bit little-endian machines Redis runs on: `>` big and `<`
//! little endian, `![n]` alignment (8 by default), `x` a pad byte, `b/B` char, `h/H` short, `l/L` long
//! (8 bytes), `T` size_t, `i/I[n]` an n-byte integer (4 by default, at most 32), `c[n]` n chars (`c0`:
//! the whole string when packing, the previous number's length when unpacking), `s` a zero-terminated
//! string, `f` float, `d` double, and spaces. Numbers are Lua 5.1's doubles.

use mlua::{Lua, MultiValue, Table, Value};

use crate::cjson::MARKER;

/// The largest integer size (`i32` is refused past it).
const MAX_INT_SIZE: usize = 32;
/// The default (and largest useful) alignment: a double's on x86-64.
const MAX_ALIGN: usize = 8;
/// The most bytes one pack writes (its buffer is outside Lua's memory limit).
const MAX_BYTES: usize = 64 << 20;

fn fail(msg: impl Into<String>) -> mlua::Error {
    mlua::Error::RuntimeError(format!("{MARKER}{}", msg.into()))
}

fn arg_error(n: usize, fname: &str, msg: &str) -> mlua::Error {
    fail(format!("bad argument #{n} to '{fname}' ({msg})"))
}

#[derive(Clone, Copy)]
struct Header {
    big: bool,
    align: usize,
}

/// A format being read, with the options in force.
struct Format<'a> {
    fmt: &'a [u8],
    pos: usize,
    h: Header,
    fname: &'static str,
}

impl Format<'_> {
    /// The digits at the cursor as a number, or `default` when there are none.
    fn num(&mut self, default: usize) -> mlua::Result<usize> {
        if !self.fmt.get(self.pos).is_some_and(u8::is_ascii_digit) {
            return Ok(default);
        }
        let mut a: usize = 0;
        while let Some(&d) = self.fmt.get(self.pos).filter(|d| d.is_ascii_digit()) {
            let d = (d - b'0') as usize;
            if a > (i32::MAX as usize) / 10 || a * 10 > i32::MAX as usize - d {
                return Err(fail("integral size overflow"));
            }
            a = a * 10 + d;
            self.pos += 1;
        }
        Ok(a)
    }

    /// An option's size (0 for those without one), reading its count.
    fn size(&mut self, opt: u8) -> mlua::Result<usize> {
        Ok(match opt {
            b'B' | b'b' => 1,
            b'H' | b'h' => 2,
            b'L' | b'l' | b'T' | b'd' => 8,
            b'f' | b'x' => {
                if opt == b'f' {
                    4
                } else {
                    1
                }
            }
            b'c' => self.num(1)?,
            b'i' | b'I' => {
                let n = self.num(4)?;
                if n > MAX_INT_SIZE {
                    return Err(fail(format!("integral size {n} is larger than limit of {MAX_INT_SIZE}")));
                }
                n
            }
            _ => 0,
        })
    }

    /// Padding before an option of `size` at offset `len`.
    fn to_align(&self, len: usize, opt: u8, size: usize) -> usize {
        if size == 0 || opt == b'c' {
            return 0;
        }
        let size = size.min(self.h.align);
        (size - (len & (size - 1))) & (size - 1)
    }

    /// The options that set the header (and spaces); anything else is an invalid option.
    fn control(&mut self, opt: u8) -> mlua::Result<()> {
        match opt {
            b' ' => {}
            b'>' => self.h.big = true,
            b'<' => self.h.big = false,
            b'!' => {
                let a = self.num(MAX_ALIGN)?;
                if !a.is_power_of_two() {
                    return Err(fail(format!("alignment {a} is not a power of 2")));
                }
                self.h.align = a;
            }
            _ => {
                let msg = format!("invalid format option '{}'", opt as char);
                return Err(arg_error(1, self.fname, &msg));
            }
        }
        Ok(())
    }
}

fn format<'a>(fmt: &'a [u8], fname: &'static str) -> Format<'a> {
    Format { fmt, pos: 0, h: Header { big: false, align: 1 }, fname }
}

/// Lua's type name for an argument (or "no value" past the last).
fn type_name(v: Option<&Value>) -> &'static str {
    match v {
        None => "no value",
        Some(Value::Nil) => "nil",
        Some(Value::Boolean(_)) => "boolean",
        Some(Value::Integer(_) | Value::Number(_)) => "number",
        Some(Value::String(_)) => "string",
        Some(Value::Table(_)) => "table",
        Some(Value::Function(_)) => "function",
        Some(Value::Thread(_)) => "thread",
        Some(Value::UserData(_) | Value::LightUserData(_)) => "userdata",
        Some(_) => "userdata",
    }
}

/// `luaL_checknumber`: a number, or a string that reads as one.
fn check_number(lua: &Lua, args: &[Value], i: usize, fname: &str) -> mlua::Result<f64> {
    let v = args.get(i);
    match v.cloned().map(|v| lua.coerce_number(v)).transpose()?.flatten() {
        Some(n) => Ok(n),
        // pack pushes a nil after its arguments: the first missing one reads it.
        None if v.is_none() && fname == "pack" && i == args.len() => {
            Err(arg_error(i + 1, fname, "number expected, got nil"))
        }
        None => Err(arg_error(i + 1, fname, &format!("number expected, got {}", type_name(v)))),
    }
}

/// `luaL_checklstring`: a string, or a number as its text.
fn check_string(lua: &Lua, args: &[Value], i: usize, fname: &str) -> mlua::Result<Vec<u8>> {
    check_lua_string(lua, args, i, fname).map(|s| s.as_bytes().to_vec())
}

/// [`check_string`] without copying the bytes.
fn check_lua_string(lua: &Lua, args: &[Value], i: usize, fname: &str) -> mlua::Result<mlua::LuaString> {
    let v = args.get(i);
    match v.cloned().map(|v| lua.coerce_string(v)).transpose()?.flatten() {
        Some(s) => Ok(s),
        None if v.is_none() && fname == "pack" && i == args.len() && i > 0 => {
            Err(arg_error(i + 1, fname, "string expected, got nil"))
        }
        None => Err(arg_error(i + 1, fname, &format!("string expected, got {}", type_name(v)))),
    }
}

fn put_int(out: &mut Vec<u8>, n: f64, big: bool, size: usize) {
    let mut value: u64 = if n < 0.0 { n as i64 as u64 } else { n as u64 };
    let mut buf = [0u8; MAX_INT_SIZE];
    for b in buf.iter_mut().take(size) {
        *b = value as u8;
        value = value.checked_shr(8).unwrap_or(0);
    }
    if big {
        buf[..size].reverse();
    }
    out.extend_from_slice(&buf[..size]);
}

fn get_int(data: &[u8], big: bool, signed: bool, size: usize) -> f64 {
    let mut l: u64 = 0;
    let bytes: Box<dyn Iterator<Item = &u8>> =
        if big { Box::new(data[..size].iter()) } else { Box::new(data[..size].iter().rev()) };
    for &b in bytes {
        l = l.checked_shl(8).unwrap_or(0) | b as u64;
    }
    if !signed || size == 0 {
        return l as f64;
    }
    // lstruct shifts by `size * 8 - 1`, which x86 takes modulo 64 past 8 bytes (Redis's machines).
    let mask = u64::MAX << ((size * 8 - 1) % 64);
    if l & mask != 0 {
        l |= mask;
    }
    l as i64 as f64
}

fn pack(lua: &Lua, args: MultiValue) -> mlua::Result<mlua::LuaString> {
    let args: Vec<Value> = args.into_iter().collect();
    let fmt = check_string(lua, &args, 0, "pack")?;
    let mut f = format(&fmt, "pack");
    let mut out = Vec::new();
    let mut arg = 1;
    while f.pos < fmt.len() {
        let opt = fmt[f.pos];
        f.pos += 1;
        let mut size = f.size(opt)?;
        let pad = f.to_align(out.len(), opt, size);
        out.resize(out.len() + pad, 0);
        match opt {
            b'b' | b'B' | b'h' | b'H' | b'l' | b'L' | b'T' | b'i' | b'I' => {
                let n = check_number(lua, &args, arg, "pack")?;
                arg += 1;
                put_int(&mut out, n, f.h.big, size);
            }
            b'x' => out.push(0),
            b'f' => {
                let v = check_number(lua, &args, arg, "pack")? as f32;
                arg += 1;
                out.extend_from_slice(&if f.h.big { v.to_be_bytes() } else { v.to_le_bytes() });
            }
            b'd' => {
                let v = check_number(lua, &args, arg, "pack")?;
                arg += 1;
                out.extend_from_slice(&if f.h.big { v.to_be_bytes() } else { v.to_le_bytes() });
            }
            b'c' | b's' => {
                let s = check_string(lua, &args, arg, "pack")?;
                arg += 1;
                if size == 0 {
                    size = s.len();
                }
                if s.len() < size {
                    // lstruct names the argument after the string (its counter moved on).
                    return Err(arg_error(arg + 1, "pack", "string too short"));
                }
                out.extend_from_slice(&s[..size]);
                if opt == b's' {
                    out.push(0);
                }
            }
            _ => f.control(opt)?,
        }
        if out.len() > MAX_BYTES {
            return Err(fail(format!("struct.pack: the result passes {MAX_BYTES} bytes")));
        }
    }
    lua.create_string(&out)
}

fn unpack(lua: &Lua, args: MultiValue) -> mlua::Result<MultiValue> {
    let args: Vec<Value> = args.into_iter().collect();
    let fmt = check_string(lua, &args, 0, "unpack")?;
    let data = check_lua_string(lua, &args, 1, "unpack")?;
    let data = data.as_bytes();
    let data: &[u8] = &data;
    let ld = data.len();
    let init = match args.get(2) {
        None | Some(Value::Nil) => 1.0,
        Some(_) => check_number(lua, &args, 2, "unpack")?,
    };
    // luaL_optinteger truncates; positions start at 1. lstruct keeps the position unsigned: 0 is refused,
    // a negative one wraps around (and the first option finds the data too short), as in Redis.
    let init = init as i64;
    if init == 0 {
        return Err(arg_error(3, "unpack", "offset must be 1 or greater"));
    }
    let mut pos = (init as u64).wrapping_sub(1) as usize;
    let mut f = format(&fmt, "unpack");
    let mut out: Vec<Value> = Vec::new();
    let too_short = || arg_error(2, "unpack", "data string too short");
    while f.pos < fmt.len() {
        let opt = fmt[f.pos];
        f.pos += 1;
        let mut size = f.size(opt)?;
        pos = pos.wrapping_add(f.to_align(pos, opt, size));
        if size > ld || pos > ld - size {
            return Err(too_short());
        }
        match opt {
            b'b' | b'B' | b'h' | b'H' | b'l' | b'L' | b'T' | b'i' | b'I' => {
                let signed = opt.is_ascii_lowercase();
                out.push(Value::Number(get_int(&data[pos..], f.h.big, signed, size)));
            }
            b'x' => {}
            b'f' => {
                let b: [u8; 4] = data[pos..pos + 4].try_into().expect("4 bytes");
                let v = if f.h.big { f32::from_be_bytes(b) } else { f32::from_le_bytes(b) };
                out.push(Value::Number(v as f64));
            }
            b'd' => {
                let b: [u8; 8] = data[pos..pos + 8].try_into().expect("8 bytes");
                out.push(Value::Number(if f.h.big { f64::from_be_bytes(b) } else { f64::from_le_bytes(b) }));
            }
            b'c' => {
                if size == 0 {
                    let prev = match out.last() {
                        Some(v @ (Value::Number(_) | Value::Integer(_) | Value::String(_))) => {
                            lua.coerce_number(v.clone())?
                        }
                        _ => None,
                    };
                    let Some(n) = prev else { return Err(fail("format 'c0' needs a previous size")) };
                    out.pop();
                    if n < 0.0 {
                        return Err(too_short());
                    }
                    size = n as usize;
                    if size > ld || pos > ld - size {
                        return Err(too_short());
                    }
                }
                out.push(Value::String(lua.create_string(&data[pos..pos + size])?));
            }
            b's' => {
                let Some(end) = data[pos..].iter().position(|&b| b == 0) else {
                    return Err(fail("unfinished string in data"));
                };
                out.push(Value::String(lua.create_string(&data[pos..pos + end])?));
                size = end + 1;
            }
            _ => f.control(opt)?,
        }
        pos += size;
    }
    out.push(Value::Number(pos.wrapping_add(1) as i64 as f64));
    Ok(MultiValue::from_iter(out))
}

fn size(lua: &Lua, args: MultiValue) -> mlua::Result<f64> {
    let args: Vec<Value> = args.into_iter().collect();
    let fmt = check_string(lua, &args, 0, "size")?;
    let mut f = format(&fmt, "size");
    let mut pos = 0usize;
    while f.pos < fmt.len() {
        let opt = fmt[f.pos];
        f.pos += 1;
        let size = f.size(opt)?;
        pos += f.to_align(pos, opt, size);
        if opt == b's' {
            return Err(arg_error(1, "size", "option 's' has no fixed size"));
        } else if opt == b'c' && size == 0 {
            return Err(arg_error(1, "size", "option 'c0' has no fixed size"));
        }
        if !opt.is_ascii_alphanumeric() {
            f.control(opt)?;
        }
        pos += size;
    }
    Ok(pos as f64)
}

/// The `struct` table.
pub(crate) fn library(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.raw_set("pack", lua.create_function(pack)?)?;
    t.raw_set("unpack", lua.create_function(unpack)?)?;
    t.raw_set("size", lua.create_function(size)?)?;
    Ok(t)
}
