//! Lua scripting (EVAL, EVALSHA, SCRIPT): Lua 5.1 as Redis runs it, in one sandboxed state.
//!
//! A script runs atomically: the engine holds its gate for the whole run and captures the mutations of
//! the commands the script calls into one log record, so replay and replicas apply the script's effects
//! and never run it again. The sandbox has Lua's base, table, string and math libraries and Redis's
//! `redis` and `bit` tables; it has no `os`, `io`, `require`, `load` of precompiled chunks, `print`,
//! `debug`, `getfenv`/`setfenv`, and globals are read-only (a script gets `KEYS` and `ARGV`). A run is
//! stopped by SCRIPT KILL while it has written nothing; Lua memory is capped.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use bytes::Bytes;
use mlua::{Function, HookTriggers, Lua, LuaOptions, MultiValue, StdLib, Table, Value, VmState};
use parking_lot::Mutex;
use sha1::{Digest, Sha1};

use crate::command::args::format_g17;
use crate::command::{Command, Flags, Reply, ScriptCmd, ScriptRef, ServerCmd, table};
use crate::error::{CommandError, Result};

/// The most scripts the cache holds; past it, EVAL forgets its oldest scripts (SCRIPT LOAD's stay, and
/// SCRIPT LOAD is refused when they alone fill the cache).
pub const MAX_SCRIPTS: usize = 10_000;
/// The most script source the cache holds, in bytes.
pub const MAX_SCRIPT_BYTES: usize = 64 << 20;
/// Memory the Lua state may use.
pub const LUA_MEMORY_LIMIT: usize = 256 << 20;
/// After this long a running script makes other commands answer BUSY (Redis's `busy-reply-threshold`,
/// its default; CONFIG SET changes it).
pub const BUSY_MS: u64 = 5_000;
/// The deepest nesting a reply may have on its way into or out of Lua.
const MAX_DEPTH: usize = 1_000;
/// The most values, and bytes of strings, a script's value may hold on its way out of Lua (a table may
/// hold one string many times: each time counts).
const MAX_REPLY_NODES: usize = 16 << 20;
const MAX_REPLY_BYTES: usize = 512 << 20;
/// The most bytes of arguments one `redis.call` may pass.
const MAX_CALL_BYTES: usize = 512 << 20;

/// Clears the running mark when a run ends.
struct Running<'a>(&'a AtomicU64);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.store(0, Ordering::Release);
    }
}

/// What is left of a conversion's allowance.
struct Budget {
    nodes: usize,
    bytes: usize,
}

/// The SHA1 of `data`, as 40 lowercase hex digits (EVALSHA's names, `redis.sha1hex`).
pub fn sha1_hex(data: &[u8]) -> String {
    let digest = Sha1::digest(data);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The Lua side set up once per state: the sandbox, the `redis` table, the error handler.
const PRELUDE: &str = r#"
local G = _G
local rawget, raw_rawset, setmetatable, getmetatable, error, type, tostring = rawget, rawset, setmetatable, getmetatable, error, type, tostring
local raw_xpcall, raw_pcall = xpcall, pcall
local raw_loadstring, concat, match, tonumber, sbyte = loadstring, table.concat, string.match, tonumber, string.byte
dofile, loadfile, print, getfenv, setfenv, newproxy, module, require = nil, nil, nil, nil, nil, nil, nil, nil, nil
local impl_killed, impl_setenv = impl_killed, impl_setenv
raw_rawset(G, 'impl_killed', nil)
raw_rawset(G, 'impl_setenv', nil)
string.dump = nil
-- The string metatable (whose __index is the string table itself) is out of reach.
getmetatable('').__metatable = false

-- Tables a script may not change: the globals, the script environment, the library views.
local protected = setmetatable({}, {__mode = 'k'})
protected[G] = true
rawset = function(t, k, v)
  if protected[t] then error('Attempt to modify a readonly table', 2) end
  return raw_rawset(t, k, v)
end

-- A killed script stays killed: pcall, xpcall and coroutines do not catch the kill.
local function unless_killed(...)
  if impl_killed() then error('Script killed by user with SCRIPT KILL...', 0) end
  return ...
end
pcall = function(...) return unless_killed(raw_pcall(...)) end
xpcall = function(...) return unless_killed(raw_xpcall(...)) end
local raw_resume, raw_wrap = coroutine.resume, coroutine.wrap
coroutine.resume = function(...) return unless_killed(raw_resume(...)) end
coroutine.wrap = function(f)
  local w = raw_wrap(f)
  return function(...) return unless_killed(w(...)) end
end

-- The table library writes raw (past __newindex and rawset): refused on protected tables.
for _, name in ipairs({'insert', 'remove', 'sort'}) do
  local f = table[name]
  table[name] = function(t, ...)
    if protected[t] then error('Attempt to modify a readonly table', 2) end
    return f(t, ...)
  end
end
-- The collector's settings would outlive the script: it may collect, step and count, no more.
local raw_collectgarbage = collectgarbage
collectgarbage = function(opt, ...)
  if opt == nil or opt == 'collect' or opt == 'count' or opt == 'step' then return raw_collectgarbage(opt, ...) end
  error("collectgarbage option '" .. tostring(opt) .. "' is not allowed in scripts", 2)
end

-- Precompiled chunks are refused: only source loads, and a loaded chunk sees the script's globals.
loadstring = function(s, name)
  if type(s) == 'string' and sbyte(s, 1) == 27 then return nil, 'binary chunks are not allowed' end
  local f, e = raw_loadstring(s, name)
  if f then impl_setenv(f) end
  return f, e
end
load = function(f, name)
  local parts = {}
  while true do
    local p = f()
    if p == nil or p == '' then break end
    parts[#parts + 1] = p
  end
  return loadstring(concat(parts), name)
end

local function readonly(t)
  local view = setmetatable({}, {__index = t, __newindex = function() error('Attempt to modify a readonly table', 2) end, __metatable = false})
  protected[view] = true
  return view
end

local impl = {}
local redis = {}

-- The script's line where an error was raised: the position `error` gives `level` levels up.
local function caller_line(level)
  local _, where = raw_pcall(error, '', level)
  return tonumber(match(where or '', '^user_%a+:(%d+):')) or 0
end
-- redis.call is a C function (impl.call), so that `return redis.call(...)` keeps the script's frame;
-- it raises a Redis error as a message that starts with the marker below.
-- (set per run from Rust, with redis.pcall, as `redis_raw.call`).
redis.error_reply = function(m) return {err = m} end
redis.status_reply = function(m) return {ok = m} end
redis.sha1hex = function(s) return impl.sha1hex(s) end
redis.log = function(level, ...) return impl.log(level, ...) end
redis.setresp = function(v) return impl.setresp(v) end
redis.replicate_commands = function() return true end
redis.set_repl = function() end
redis.breakpoint = function() return false end
redis.debug = function() end
redis.LOG_DEBUG, redis.LOG_VERBOSE, redis.LOG_NOTICE, redis.LOG_WARNING = 0, 1, 2, 3
redis.REPL_NONE, redis.REPL_AOF, redis.REPL_SLAVE, redis.REPL_REPLICA, redis.REPL_ALL = 0, 1, 2, 2, 3
raw_rawset(G, 'redis', readonly(redis))
raw_rawset(G, 'bit', readonly(impl_bit))
raw_rawset(G, 'impl_bit', nil)
raw_rawset(G, 'cjson', readonly(impl_cjson))
raw_rawset(G, 'impl_cjson', nil)
raw_rawset(G, 'cmsgpack', readonly(impl_cmsgpack))
raw_rawset(G, 'impl_cmsgpack', nil)
raw_rawset(G, 'struct', readonly(impl_struct))
raw_rawset(G, 'impl_struct', nil)
for _, name in ipairs({'string', 'table', 'math', 'coroutine'}) do
  if rawget(G, name) ~= nil then raw_rawset(G, name, readonly(rawget(G, name))) end
end

-- What a library's code sees of `redis` while it loads (functions): only registering and logging
-- (`slots.register` is set per load from Rust; `slots.loading` marks the load).
local slots = {}
local load_redis = setmetatable({}, {
  __index = function(_, k)
    if k == 'register_function' then return slots.register end
    if k == 'log' or k == 'setresp' or (type(k) == 'string' and match(k, '^LOG_')) then return redis[k] end
    error("Script attempted to access nonexistent global variable '" .. tostring(k) .. "'", 2)
  end,
  __newindex = function() error('Attempt to modify a readonly table', 2) end,
  __metatable = false,
})
protected[load_redis] = true

-- What a script sees as its globals: the state's, read-only, and an error for a name that is not there.
local env
env = setmetatable({}, {
  __index = function(_, k)
    if k == '_G' then return env end
    if k == 'redis' and slots.loading then return load_redis end
    local v = rawget(G, k)
    if v == nil then error("Script attempted to access nonexistent global variable '" .. tostring(k) .. "'", 2) end
    return v
  end,
  __newindex = function() error('Attempt to modify a readonly table', 2) end,
  __metatable = false,
})

-- Errors become {err = message, line = the script's line}; Lua's own get Redis's ERR prefix.
local function handler(e)
  if type(e) == 'table' and type(rawget(e, 'err')) == 'string' then
    -- Levels from caller_line: pcall, caller_line, handler, error, the script.
    return {err = rawget(e, 'err'), line = tonumber(rawget(e, 'line')) or caller_line(5)}
  end
  local text = tostring(e)
  local redis_err = match(text, '\1redis\1(.-)\nstack traceback') or match(text, '\1redis\1(.*)$')
  if redis_err ~= nil then return {err = redis_err, line = caller_line(5)} end
  -- A library error (cjson) takes the script's position, as luaL_error gives it.
  local lib_err = match(text, '\2cjson\2(.-)\nstack traceback') or match(text, '\2cjson\2(.*)$')
  if lib_err ~= nil then
    local line = caller_line(5)
    return {err = 'ERR user_script:' .. line .. ': ' .. lib_err, line = line}
  end
  return {err = 'ERR ' .. text, line = tonumber(match(text, '^user_%a+:(%d+):')) or caller_line(4)}
end
protected[env] = true
local function run(f) return raw_xpcall(f, handler) end
-- A function (FCALL) gets its keys and arguments as parameters.
local function run_fn(f, k, a) return raw_xpcall(function() return f(k, a) end, handler) end
return impl, env, run, redis, run_fn, slots
"#;

struct Cached {
    func: Function,
    /// Loaded by SCRIPT LOAD (kept); `false`: cached by EVAL (may be forgotten, oldest first).
    loaded: bool,
    bytes: usize,
}

/// One Lua state and the scripts compiled in it.
struct Vm {
    lua: Lua,
    /// The globals a script sees (read-only, see PRELUDE).
    env: Table,
    /// The `redis` table behind its read-only view: `call` and `pcall` are set for each run.
    redis: Table,
    run: Function,
    /// Runs a function with its keys and arguments (FCALL).
    run_fn: Function,
    /// `register`: the registering function while a library loads; `loading` while it does.
    slots: Table,
    cache: HashMap<String, Cached>,
    /// EVAL-cached scripts, oldest first.
    evicted_order: VecDeque<String>,
    bytes: usize,
}

/// A function library: its code (shebang included) and the functions it registered.
struct Library {
    code: Bytes,
    functions: Vec<String>,
}

/// A registered function.
struct FunctionDef {
    library: String,
    func: Function,
    description: Option<String>,
    /// Redis's flag names (`no-writes`, `allow-oom`, ...).
    flags: Vec<&'static str>,
}

/// The functions side: a Lua state of its own (SCRIPT FLUSH leaves it alone), its libraries by name and
/// their functions by name.
struct Functions {
    vm: Vm,
    libraries: std::collections::BTreeMap<String, Library>,
    functions: HashMap<String, FunctionDef>,
}

/// How long a library's code may run while it loads (Redis's limit).
const LOAD_TIMEOUT_MS: u64 = 500;
/// The most function libraries, and bytes of their code, a server holds.
pub const MAX_LIBRARIES: usize = 10_000;
pub const MAX_LIBRARY_BYTES: usize = 64 << 20;

const FLAG_NAMES: [&str; 5] = ["no-writes", "allow-oom", "allow-stale", "no-cluster", "allow-cross-slot-keys"];

/// The scripting state of an engine.
/// How a script's `redis.call` runs a command: the parsed command and its arguments as the script gave them.
pub(crate) type CallFn<'a> = dyn FnMut(Command, &[Bytes]) -> Result<Reply> + 'a;

pub struct Scripts {
    vm: Mutex<Vm>,
    functions: Mutex<Functions>,
    load_deadline: Arc<AtomicU64>,
    /// The function FCALL runs now (FUNCTION STATS, FUNCTION KILL).
    running_function: Mutex<Option<String>>,
    /// Libraries and functions loaded (FUNCTION STATS reads them while a function runs).
    function_counts: Mutex<(usize, usize)>,
    kill: Arc<AtomicBool>,
    /// When the running script started (ms since `epoch`, plus one); 0 when none runs.
    running: AtomicU64,
    wrote: AtomicBool,
    epoch: Instant,
    /// Redis's `busy-reply-threshold` (`lua-time-limit`), in ms.
    busy_ms: AtomicU64,
}

/// FUNCTION DUMP's payload: `SYNAPFN1`, the library count (u32 LE), each library's code (u32 LE length,
/// bytes). Synap's own format: Redis's payloads are RDB encodings and do not restore here.
pub fn dump_libraries(codes: &[Bytes]) -> Bytes {
    let mut out = b"SYNAPFN1".to_vec();
    out.extend_from_slice(&(codes.len() as u32).to_le_bytes());
    for c in codes {
        out.extend_from_slice(&(c.len() as u32).to_le_bytes());
        out.extend_from_slice(c);
    }
    Bytes::from(out)
}

/// The libraries of a FUNCTION DUMP payload.
pub fn parse_dump(payload: &[u8]) -> Result<Vec<Bytes>> {
    let bad = || CommandError::Invalid("payload version or checksum are wrong".into());
    let rest = payload.strip_prefix(b"SYNAPFN1").ok_or_else(bad)?;
    let take = |r: &mut &[u8], n: usize| -> Result<Vec<u8>> {
        if r.len() < n {
            return Err(bad());
        }
        let (a, b) = r.split_at(n);
        *r = b;
        Ok(a.to_vec())
    };
    let mut r = rest;
    let count = u32::from_le_bytes(take(&mut r, 4)?.try_into().map_err(|_| bad())?) as usize;
    let mut codes = Vec::new();
    for _ in 0..count {
        let len = u32::from_le_bytes(take(&mut r, 4)?.try_into().map_err(|_| bad())?) as usize;
        codes.push(Bytes::from(take(&mut r, len)?));
    }
    if !r.is_empty() {
        return Err(bad());
    }
    Ok(codes)
}

/// A Redis error raised inside Lua (the handler reports its text as is).
fn redis_error(msg: &str) -> mlua::Error {
    mlua::Error::RuntimeError(format!("\u{1}redis\u{1}{msg}"))
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// A library's name from its first line (`#!lua name=<name>`), and where its code starts (the first
/// line's newline, so that line numbers count from the first line).
fn library_metadata(code: &[u8]) -> Result<(String, usize)> {
    let bad = |m: String| CommandError::Invalid(m);
    if !code.starts_with(b"#!") {
        return Err(bad("Missing library metadata".into()));
    }
    let end = code.iter().position(|&b| b == b'\n').unwrap_or(code.len());
    let line = String::from_utf8_lossy(&code[2..end]);
    let mut parts = line.split_ascii_whitespace();
    let engine = parts.next().unwrap_or("");
    if !engine.eq_ignore_ascii_case("lua") {
        return Err(bad(format!("Engine '{engine}' not found")));
    }
    let mut name = None;
    for p in parts {
        match p.strip_prefix("name=") {
            Some(_) if name.is_some() => {
                return Err(bad("Invalid metadata value, name argument was given multiple times".into()));
            }
            Some(n) => name = Some(n.to_string()),
            None => return Err(bad(format!("Invalid metadata value given: {p}"))),
        }
    }
    let Some(name) = name else { return Err(bad("Library name was not given".into())) };
    if !valid_name(&name) {
        return Err(bad(
            "Library names can only contain letters, numbers, or underscores(_) and must be at least one character long"
                .into(),
        ));
    }
    Ok((name, end))
}

/// The arguments of one `redis.register_function` call: `(name, callback)` or a table of named
/// arguments (`function_name`, `callback`, `flags`, `description`).
fn registration(argv: MultiValue, library: &str) -> mlua::Result<(String, FunctionDef)> {
    let argv: Vec<Value> = argv.into_iter().collect();
    let (name, callback, flags, description) = match argv.as_slice() {
        [Value::Table(t)] => {
            let (mut name, mut callback, mut flags, mut description) = (None, None, Vec::new(), None);
            for pair in t.clone().pairs::<Value, Value>() {
                let (k, v) = pair?;
                let key = match &k {
                    Value::String(s) => s.to_string_lossy(),
                    _ => {
                        return Err(redis_error(
                            "ERR named argument key given to redis.register_function is not a string",
                        ));
                    }
                };
                match (key.as_str(), v) {
                    ("function_name", Value::String(s)) => name = Some(s.to_string_lossy()),
                    ("function_name", _) => {
                        return Err(redis_error(
                            "ERR function_name argument given to redis.register_function must be a string",
                        ));
                    }
                    ("callback", Value::Function(f)) => callback = Some(f),
                    ("callback", _) => {
                        return Err(redis_error(
                            "ERR callback argument given to redis.register_function must be a function",
                        ));
                    }
                    ("description", Value::String(s)) => description = Some(s.to_string_lossy()),
                    ("description", _) => {
                        return Err(redis_error(
                            "ERR description argument given to redis.register_function must be a string",
                        ));
                    }
                    ("flags", Value::Table(fl)) => {
                        for v in fl.sequence_values::<Value>() {
                            let flag = match v? {
                                Value::String(s) => s.to_string_lossy(),
                                _ => return Err(redis_error("ERR unknown flag given")),
                            };
                            match FLAG_NAMES.iter().find(|n| **n == flag) {
                                Some(n) => flags.push(*n),
                                None => return Err(redis_error("ERR unknown flag given")),
                            }
                        }
                    }
                    ("flags", _) => {
                        return Err(redis_error(
                            "ERR flags argument to redis.register_function must be a table representing function flags",
                        ));
                    }
                    _ => return Err(redis_error("ERR unknown argument given to redis.register_function")),
                }
            }
            let name =
                name.ok_or_else(|| redis_error("ERR redis.register_function must get a function name argument"))?;
            let callback =
                callback.ok_or_else(|| redis_error("ERR redis.register_function must get a callback argument"))?;
            (name, callback, flags, description)
        }
        [_] => {
            return Err(redis_error(
                "ERR calling redis.register_function with a single argument is only applicable to Lua table (representing named arguments).",
            ));
        }
        [name, callback] => {
            let Value::String(name) = name else {
                return Err(redis_error("ERR first argument to redis.register_function must be a string"));
            };
            let Value::Function(callback) = callback else {
                return Err(redis_error("ERR second argument to redis.register_function must be a function"));
            };
            (name.to_string_lossy(), callback.clone(), Vec::new(), None)
        }
        _ => return Err(redis_error("ERR wrong number of arguments to redis.register_function")),
    };
    if !valid_name(&name) {
        return Err(redis_error(
            "ERR Library names can only contain letters, numbers, or underscores(_) and must be at least one character long",
        ));
    }
    Ok((name, FunctionDef { library: library.to_string(), func: callback, description, flags }))
}

/// A Lua array of strings.
fn strings(lua: &Lua, items: &[Bytes]) -> mlua::Result<Table> {
    let t = lua.create_table_with_capacity(items.len(), 0)?;
    for (i, b) in items.iter().enumerate() {
        t.raw_seti(i + 1, lua.create_string(b)?)?;
    }
    Ok(t)
}

fn memory(e: mlua::Error) -> CommandError {
    match e {
        mlua::Error::MemoryError(_) => CommandError::Raw(format!(
            "ERR the script's keys and arguments need more than the scripting memory limit ({LUA_MEMORY_LIMIT} bytes)"
        )),
        e => lua_err(e),
    }
}

fn lua_err(e: mlua::Error) -> CommandError {
    CommandError::Internal(format!("scripting: {e}"))
}

impl Vm {
    /// `deadline` (ms since `epoch`, 0: none) stops a library's load that runs too long.
    fn new(kill: Arc<AtomicBool>, deadline: Arc<AtomicU64>, epoch: Instant) -> mlua::Result<Vm> {
        let lua = Lua::new_with(StdLib::TABLE | StdLib::STRING | StdLib::MATH, LuaOptions::default())?;
        lua.set_memory_limit(LUA_MEMORY_LIMIT)?;
        let killed = kill.clone();
        // Every thread of the state (coroutines too) checks for SCRIPT KILL.
        lua.set_global_hook(HookTriggers::new().every_nth_instruction(10_000), move |_, _| {
            if kill.load(Ordering::Acquire) {
                return Err(mlua::Error::RuntimeError("Script killed by user with SCRIPT KILL...".into()));
            }
            let d = deadline.load(Ordering::Acquire);
            if d != 0 && epoch.elapsed().as_millis() as u64 >= d {
                return Err(mlua::Error::RuntimeError("\u{1}redis\u{1}ERR FUNCTION LOAD timeout".into()));
            }
            Ok(VmState::Continue)
        })?;
        lua.globals().raw_set("impl_bit", bit_library(&lua)?)?;
        lua.globals().raw_set("impl_cjson", crate::cjson::library(&lua, killed.clone())?)?;
        lua.globals().raw_set("impl_cmsgpack", crate::cmsgpack::library(&lua, killed.clone())?)?;
        lua.globals().raw_set("impl_struct", crate::lstruct::library(&lua)?)?;
        lua.globals().raw_set("impl_killed", lua.create_function(move |_, ()| Ok(killed.load(Ordering::Acquire)))?)?;
        // Filled once the prelude has made the script environment.
        let env_slot: Arc<parking_lot::Mutex<Option<Table>>> = Arc::default();
        let slot = env_slot.clone();
        lua.globals().raw_set(
            "impl_setenv",
            lua.create_function(move |_, f: Function| {
                if let Some(env) = slot.lock().as_ref() {
                    f.set_environment(env.clone())?;
                }
                Ok(())
            })?,
        )?;
        let (impl_tbl, env, run, redis, run_fn, slots): (Table, Table, Function, Table, Function, Table) =
            lua.load(PRELUDE).set_name("=prelude").call(())?;
        *env_slot.lock() = Some(env.clone());
        impl_tbl.raw_set("sha1hex", lua.create_function(|_, s: mlua::LuaString| Ok(sha1_hex(&s.as_bytes())))?)?;
        impl_tbl.raw_set(
            "log",
            lua.create_function(|lua, (level, msg): (i64, MultiValue)| {
                // Strings and numbers only, without metamethods (a __tostring could run forever).
                let text: Vec<String> = msg
                    .into_iter()
                    .filter_map(|v| match v {
                        Value::String(_) | Value::Integer(_) | Value::Number(_) => lua.coerce_string(v).ok().flatten(),
                        _ => None,
                    })
                    .map(|s| s.to_string_lossy())
                    .collect();
                match level {
                    0 => tracing::debug!(target: "script", "{}", text.join(" ")),
                    1 | 2 => tracing::info!(target: "script", "{}", text.join(" ")),
                    _ => tracing::warn!(target: "script", "{}", text.join(" ")),
                }
                Ok(())
            })?,
        )?;
        impl_tbl.raw_set(
            "setresp",
            lua.create_function(|_, v: i64| match v {
                2 => Ok(()),
                3 => Err(mlua::Error::RuntimeError("RESP3 replies inside scripts are not supported".into())),
                _ => Err(mlua::Error::RuntimeError("RESP version must be 2 or 3.".into())),
            })?,
        )?;
        Ok(Vm { lua, env, run, redis, run_fn, slots, cache: HashMap::new(), evicted_order: VecDeque::new(), bytes: 0 })
    }

    /// Compiles `body` and caches it under its SHA1 (`loaded`: by SCRIPT LOAD).
    fn compile(&mut self, body: &[u8], loaded: bool) -> Result<(String, Function)> {
        let sha = sha1_hex(body);
        if let Some(c) = self.cache.get_mut(&sha) {
            c.loaded |= loaded;
            return Ok((sha, c.func.clone()));
        }
        if body.len() > MAX_SCRIPT_BYTES {
            return Err(CommandError::Invalid(format!("a script is limited to {MAX_SCRIPT_BYTES} bytes")));
        }
        // Source only: a precompiled chunk is refused by the loader itself.
        let chunk = self.lua.load(body).set_name("@user_script").set_mode(mlua::chunk::ChunkMode::Text);
        let func = match chunk.into_function() {
            Ok(f) => f,
            Err(mlua::Error::SyntaxError { message, .. }) => {
                return Err(CommandError::Raw(format!("ERR Error compiling script (new function): {message}")));
            }
            Err(e) => return Err(CommandError::Raw(format!("ERR Error compiling script (new function): {e}"))),
        };
        func.set_environment(self.env.clone()).map_err(lua_err)?;
        // Room in the cache: EVAL's oldest scripts go first; SCRIPT LOAD's never go.
        while self.cache.len() >= MAX_SCRIPTS || self.bytes + body.len() > MAX_SCRIPT_BYTES {
            let Some(old) = self.evicted_order.pop_front() else {
                return Err(CommandError::Invalid(format!(
                    "the script cache is full ({MAX_SCRIPTS} scripts or {MAX_SCRIPT_BYTES} bytes); SCRIPT FLUSH first"
                )));
            };
            if let Some(c) = self.cache.get(&old)
                && !c.loaded
            {
                self.bytes -= c.bytes;
                self.cache.remove(&old);
            }
        }
        if !loaded {
            self.evicted_order.push_back(sha.clone());
        }
        self.bytes += body.len();
        self.cache.insert(sha.clone(), Cached { func: func.clone(), loaded, bytes: body.len() });
        Ok((sha, func))
    }
}

impl Default for Scripts {
    fn default() -> Self {
        Scripts::new()
    }
}

impl Scripts {
    pub fn new() -> Scripts {
        let kill = Arc::new(AtomicBool::new(false));
        let load_deadline = Arc::new(AtomicU64::new(0));
        let epoch = Instant::now();
        let vm = Vm::new(kill.clone(), load_deadline.clone(), epoch).expect("the Lua state starts");
        let fvm = Vm::new(kill.clone(), load_deadline.clone(), epoch).expect("the Lua state starts");
        Scripts {
            vm: Mutex::new(vm),
            functions: Mutex::new(Functions { vm: fvm, libraries: Default::default(), functions: HashMap::new() }),
            load_deadline,
            running_function: Mutex::new(None),
            function_counts: Mutex::new((0, 0)),
            kill,
            running: AtomicU64::new(0),
            wrote: AtomicBool::new(false),
            epoch,
            busy_ms: AtomicU64::new(BUSY_MS),
        }
    }

    fn new_vm(&self) -> Result<Vm> {
        Vm::new(self.kill.clone(), self.load_deadline.clone(), self.epoch).map_err(lua_err)
    }

    fn now(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Whether a script has run for longer than [`BUSY_MS`]: other commands then answer BUSY.
    pub fn busy(&self) -> bool {
        let started = self.running.load(Ordering::Acquire);
        started != 0 && self.now() + 1 >= started + self.busy_ms()
    }

    /// Whether a script is running now.
    pub fn running(&self) -> bool {
        self.running.load(Ordering::Acquire) != 0
    }

    /// The busy threshold in ms (CONFIG GET busy-reply-threshold).
    pub fn busy_ms(&self) -> u64 {
        self.busy_ms.load(Ordering::Relaxed)
    }

    /// CONFIG SET busy-reply-threshold.
    pub fn set_busy_ms(&self, ms: u64) {
        self.busy_ms.store(ms, Ordering::Relaxed);
    }

    /// SCRIPT KILL: stops the running script, unless it has written.
    pub fn kill(&self) -> Result<Reply> {
        if self.running.load(Ordering::Acquire) == 0 {
            return Err(CommandError::Raw("NOTBUSY No scripts in execution right now.".into()));
        }
        if self.wrote.load(Ordering::Acquire) {
            return Err(CommandError::Raw(
                "UNKILLABLE Sorry the script already executed write commands against the dataset. You can either \
                 wait the script termination or kill the server in a hard way using the SHUTDOWN NOSAVE command."
                    .into(),
            ));
        }
        self.kill.store(true, Ordering::Release);
        Ok(Reply::Ok)
    }

    /// SCRIPT LOAD, EXISTS, FLUSH.
    pub fn admin(&self, cmd: ScriptCmd) -> Result<Reply> {
        match cmd {
            ScriptCmd::Load(body) => Ok(Reply::Bulk(Bytes::from(self.vm.lock().compile(&body, true)?.0))),
            ScriptCmd::Exists(shas) => {
                let vm = self.vm.lock();
                let known = |s: &Bytes| vm.cache.contains_key(&String::from_utf8_lossy(s).to_ascii_lowercase());
                Ok(Reply::Array(shas.iter().map(|s| Reply::Int(known(s) as i64)).collect()))
            }
            ScriptCmd::Flush => {
                *self.vm.lock() = self.new_vm()?;
                Ok(Reply::Ok)
            }
            ScriptCmd::Kill => self.function_kill(false),
            other => Err(CommandError::Internal(format!("{} runs through the engine", other.name()))),
        }
    }

    /// Runs a script. `exec` runs one command the script calls; the caller holds the engine's gate
    /// and captures the log, so the run is atomic and its effects are one record.
    pub fn eval(
        &self,
        script: &ScriptRef,
        keys: &[Bytes],
        args: &[Bytes],
        read_only: bool,
        exec: &mut CallFn<'_>,
    ) -> Result<Reply> {
        let mut vm = self.vm.lock();
        let (sha, func) = match script {
            ScriptRef::Body(body) => vm.compile(body, false)?,
            ScriptRef::Sha(sha) => {
                let sha = String::from_utf8_lossy(sha).to_ascii_lowercase();
                match vm.cache.get(&sha) {
                    Some(c) => (sha, c.func.clone()),
                    None => return Err(CommandError::Raw("NOSCRIPT No matching script. Please use EVAL.".into())),
                }
            }
        };
        let lua = vm.lua.clone();
        let globals = lua.globals();
        globals.raw_set("KEYS", strings(&lua, keys).map_err(memory)?).map_err(lua_err)?;
        globals.raw_set("ARGV", strings(&lua, args).map_err(memory)?).map_err(lua_err)?;
        let run = vm.run.clone();
        self.run_in(&vm, &sha, "user_script", read_only, exec, || run.call(func.clone()))
    }

    /// Runs `invoke` (a script or a function, by `label`, at chunk `at`) with `redis.call` and
    /// `redis.pcall` in place, and converts what it returns.
    fn run_in(
        &self,
        vm: &Vm,
        label: &str,
        at: &str,
        read_only: bool,
        exec: &mut CallFn<'_>,
        invoke: impl FnOnce() -> mlua::Result<(bool, Value)>,
    ) -> Result<Reply> {
        let lua = vm.lua.clone();
        self.kill.store(false, Ordering::Release);
        self.wrote.store(false, Ordering::Release);
        self.running.store(self.now() + 1, Ordering::Release);
        // Cleared however the run ends (a panic included), once its value is converted.
        let _running = Running(&self.running);
        let exec = RefCell::new(exec);
        let outcome = lua.scope(|scope| {
            let pcall = scope.create_function(|lua, argv: MultiValue| self.call(lua, &exec, argv, read_only))?;
            let call =
                scope.create_function(|lua, argv: MultiValue| match self.call(lua, &exec, argv, read_only)? {
                    Value::Table(t) if matches!(t.raw_get::<Value>("err"), Ok(Value::String(_))) => {
                        let msg: String = t.raw_get("err")?;
                        Err(mlua::Error::RuntimeError(format!("\u{1}redis\u{1}{msg}")))
                    }
                    v => Ok(v),
                })?;
            vm.redis.raw_set("pcall", pcall)?;
            vm.redis.raw_set("call", call)?;
            let r = invoke()?;
            vm.redis.raw_set("pcall", Value::Nil)?;
            vm.redis.raw_set("call", Value::Nil)?;
            Ok(r)
        });
        let killed = self.kill.swap(false, Ordering::AcqRel);
        let _ = vm.redis.raw_set("pcall", Value::Nil);
        let _ = vm.redis.raw_set("call", Value::Nil);
        // A script may have stopped the collector; the next one starts with it running.
        lua.gc_restart();
        let mut budget = Budget { nodes: MAX_REPLY_NODES, bytes: MAX_REPLY_BYTES };
        match outcome {
            Ok((true, v)) => match from_lua(v, 0, &mut budget)? {
                Reply::Error(e) => Err(CommandError::Raw(e)),
                r => Ok(r),
            },
            Ok((false, _)) if killed => Err(CommandError::Raw(format!(
                "ERR Script killed by user with SCRIPT KILL... script: {label}, on @{at}:0."
            ))),
            Ok((false, Value::Table(t))) => {
                let line: i64 = t.raw_get("line").unwrap_or(0);
                let msg = t.raw_get::<String>("err").unwrap_or_else(|_| "ERR unknown script error".into());
                Err(CommandError::Raw(format!("{msg} script: {label}, on @{at}:{line}.")))
            }
            Ok((false, other)) => Err(CommandError::Raw(format!("ERR {other:?} script: {label}"))),
            Err(mlua::Error::MemoryError(_)) => Err(CommandError::Raw(format!(
                "ERR the script used more than the scripting memory limit ({LUA_MEMORY_LIMIT} bytes) script: {label}"
            ))),
            Err(e) if killed => Err(CommandError::Raw(format!("ERR Script killed by user with SCRIPT KILL... {e}"))),
            Err(e) => Err(CommandError::Raw(format!("ERR Error running script {label}: {e}"))),
        }
    }

    /// FUNCTION LOAD: the library's name. An error leaves the libraries as they were.
    pub fn function_load(&self, code: &[u8], replace: bool) -> Result<String> {
        let mut f = self.functions.lock();
        self.load_into(&mut f, code, replace, true)
    }

    /// A library's record replayed (recovery, replicas): loaded without the time limit, which only
    /// guards the live load (a slow start must not drop a library that loaded when it was logged).
    pub fn function_replay(&self, code: &[u8]) -> Result<String> {
        let mut f = self.functions.lock();
        self.load_into(&mut f, code, true, false)
    }

    /// FUNCTION RESTORE's checks before anything changes: every library of the payload loads (in a
    /// scratch state, so that one that fails changes nothing), no two share a name or a function, and
    /// under APPEND none exists; a function of a library that stays must not be redefined.
    pub fn check_restore(&self, codes: &[Bytes], policy: crate::command::RestorePolicy) -> Result<()> {
        use crate::command::RestorePolicy;
        let mut scratch = Functions { vm: self.new_vm()?, libraries: Default::default(), functions: HashMap::new() };
        for code in codes {
            self.load_into(&mut scratch, code, false, true)?;
        }
        let f = self.functions.lock();
        for (name, lib) in &scratch.libraries {
            if policy == RestorePolicy::Append && f.libraries.contains_key(name) {
                return Err(CommandError::Invalid(format!("Library {name} already exists")));
            }
            for fname in &lib.functions {
                let stays =
                    |d: &FunctionDef| policy != RestorePolicy::Flush && !scratch.libraries.contains_key(&d.library);
                if f.functions.get(fname).is_some_and(stays) {
                    return Err(CommandError::Invalid(format!("Function {fname} already exists")));
                }
            }
        }
        let total: usize = scratch.libraries.values().map(|l| l.code.len()).sum();
        if scratch.libraries.len() > MAX_LIBRARIES || total > MAX_LIBRARY_BYTES {
            return Err(CommandError::Invalid(format!(
                "the function libraries are limited to {MAX_LIBRARIES} libraries and {MAX_LIBRARY_BYTES} bytes of code"
            )));
        }
        Ok(())
    }

    /// The function libraries in name order after `after` (at most `max`): a snapshot's walk, which
    /// goes on by name so that a library deleted meanwhile moves no other out of it.
    pub fn libraries_after(&self, after: Option<&str>, max: usize) -> Vec<(String, Bytes)> {
        use std::ops::Bound;
        let f = self.functions.lock();
        let from = after.map_or(Bound::Unbounded, |a| Bound::Excluded(a.to_string()));
        f.libraries.range((from, Bound::Unbounded)).take(max).map(|(n, l)| (n.clone(), l.code.clone())).collect()
    }

    fn load_into(&self, f: &mut Functions, code: &[u8], replace: bool, timeout: bool) -> Result<String> {
        let (name, body_at) = library_metadata(code)?;
        if f.libraries.contains_key(&name) && !replace {
            return Err(CommandError::Invalid(format!("Library '{name}' already exists")));
        }
        let old = f.libraries.get(&name).map_or(0, |l| l.code.len());
        let total: usize = f.libraries.values().map(|l| l.code.len()).sum::<usize>() - old + code.len();
        if (f.libraries.len() >= MAX_LIBRARIES && old == 0) || total > MAX_LIBRARY_BYTES {
            return Err(CommandError::Invalid(format!(
                "the function libraries are limited to {MAX_LIBRARIES} libraries and {MAX_LIBRARY_BYTES} bytes of code"
            )));
        }
        let chunk = f.vm.lua.load(&code[body_at..]).set_name("@user_function").set_mode(mlua::chunk::ChunkMode::Text);
        let chunk = match chunk.into_function() {
            Ok(c) => c,
            Err(mlua::Error::SyntaxError { message, .. }) => {
                return Err(CommandError::Raw(format!("ERR Error compiling function: {message}")));
            }
            Err(e) => return Err(CommandError::Raw(format!("ERR Error compiling function: {e}"))),
        };
        chunk.set_environment(f.vm.env.clone()).map_err(lua_err)?;
        // Run the library's code with `redis.register_function` collecting what it registers.
        let registered: RefCell<Vec<(String, FunctionDef)>> = RefCell::default();
        let vm = &f.vm;
        // A SCRIPT KILL meant for a run that has ended does not stop this load.
        self.kill.store(false, Ordering::Release);
        if timeout {
            self.load_deadline.store(self.now() + LOAD_TIMEOUT_MS, Ordering::Release);
        }
        let outcome = vm.lua.scope(|scope| {
            let register = scope.create_function(|_, argv: MultiValue| {
                let def = registration(argv, &name)?;
                let mut r = registered.borrow_mut();
                if r.iter().any(|(n, _)| *n == def.0) {
                    return Err(redis_error("ERR Function already exists in the library"));
                }
                r.push(def);
                Ok(())
            })?;
            vm.slots.raw_set("register", register)?;
            vm.slots.raw_set("loading", true)?;
            let r: (bool, Value) = vm.run.call(chunk)?;
            vm.slots.raw_set("register", Value::Nil)?;
            vm.slots.raw_set("loading", Value::Nil)?;
            Ok(r)
        });
        self.load_deadline.store(0, Ordering::Release);
        let _ = vm.slots.raw_set("register", Value::Nil);
        let _ = vm.slots.raw_set("loading", Value::Nil);
        vm.lua.gc_restart();
        match outcome {
            Ok((true, _)) => {}
            Ok((false, Value::Table(t))) => {
                let msg = t.raw_get::<String>("err").unwrap_or_else(|_| "ERR unknown error".into());
                return Err(CommandError::Raw(format!("ERR Error registering functions: {msg}")));
            }
            Ok((false, other)) => return Err(CommandError::Raw(format!("ERR Error registering functions: {other:?}"))),
            Err(e) => return Err(CommandError::Raw(format!("ERR Error registering functions: {e}"))),
        }
        let registered = registered.into_inner();
        if registered.is_empty() {
            return Err(CommandError::Invalid("No functions registered".into()));
        }
        for (fname, _) in &registered {
            if f.functions.get(fname).is_some_and(|d| d.library != name) {
                return Err(CommandError::Invalid(format!("Function {fname} already exists")));
            }
        }
        if let Some(old) = f.libraries.remove(&name) {
            for fname in old.functions {
                f.functions.remove(&fname);
            }
        }
        let names = registered.iter().map(|(n, _)| n.clone()).collect();
        for (fname, def) in registered {
            f.functions.insert(fname, def);
        }
        f.libraries.insert(name.clone(), Library { code: Bytes::copy_from_slice(code), functions: names });
        *self.function_counts.lock() = (f.libraries.len(), f.functions.len());
        Ok(name)
    }

    /// FUNCTION DELETE.
    pub fn function_delete(&self, name: &[u8]) -> Result<()> {
        let mut f = self.functions.lock();
        let Some(lib) = f.libraries.remove(&*String::from_utf8_lossy(name)) else {
            return Err(CommandError::Invalid("Library not found".into()));
        };
        for fname in lib.functions {
            f.functions.remove(&fname);
        }
        *self.function_counts.lock() = (f.libraries.len(), f.functions.len());
        Ok(())
    }

    /// FUNCTION FLUSH: every library goes, with a fresh Lua state.
    pub fn function_flush(&self) -> Result<()> {
        let vm = self.new_vm()?;
        *self.functions.lock() = Functions { vm, libraries: Default::default(), functions: HashMap::new() };
        *self.function_counts.lock() = (0, 0);
        Ok(())
    }

    /// The code of every library, by name (snapshots, FUNCTION DUMP).
    pub fn library_codes(&self) -> Vec<Bytes> {
        self.functions.lock().libraries.values().map(|l| l.code.clone()).collect()
    }

    /// FUNCTION LIST [LIBRARYNAME pattern] [WITHCODE], libraries in name order.
    pub fn function_list(&self, pattern: Option<&[u8]>, with_code: bool) -> Reply {
        let f = self.functions.lock();
        let bulk = |s: &str| Reply::Bulk(Bytes::copy_from_slice(s.as_bytes()));
        let libs = f
            .libraries
            .iter()
            .filter(|(name, _)| pattern.is_none_or(|p| crate::glob::glob_match(p, name.as_bytes())))
            .map(|(name, lib)| {
                let functions = lib
                    .functions
                    .iter()
                    .filter_map(|n| f.functions.get(n).map(|d| (n, d)))
                    .map(|(n, d)| {
                        Reply::Map(vec![
                            (bulk("name"), bulk(n)),
                            (bulk("description"), d.description.as_deref().map_or(Reply::Nil, bulk)),
                            (bulk("flags"), Reply::Set(d.flags.iter().map(|fl| bulk(fl)).collect())),
                        ])
                    })
                    .collect();
                let mut m = vec![
                    (bulk("library_name"), bulk(name)),
                    (bulk("engine"), bulk("LUA")),
                    (bulk("functions"), Reply::Array(functions)),
                ];
                if with_code {
                    m.push((bulk("library_code"), Reply::Bulk(lib.code.clone())));
                }
                Reply::Map(m)
            })
            .collect();
        Reply::Array(libs)
    }

    /// FUNCTION STATS: the running function, and the counts of libraries and functions.
    pub fn function_stats(&self) -> Reply {
        let bulk = |s: &str| Reply::Bulk(Bytes::copy_from_slice(s.as_bytes()));
        let running = match (&*self.running_function.lock(), self.running.load(Ordering::Acquire)) {
            (Some(name), started) if started != 0 => Reply::Map(vec![
                (bulk("name"), bulk(name)),
                (bulk("command"), Reply::Array(vec![bulk("fcall"), bulk(name)])),
                (bulk("duration_ms"), Reply::Int((self.now() + 1).saturating_sub(started) as i64)),
            ]),
            _ => Reply::Nil,
        };
        // Counted without the functions' lock, which a running function holds.
        let (libs, fns) = self.function_counts.lock().to_owned();
        Reply::Map(vec![
            (bulk("running_script"), running),
            (
                bulk("engines"),
                Reply::Map(vec![(
                    bulk("LUA"),
                    Reply::Map(vec![
                        (bulk("libraries_count"), Reply::Int(libs as i64)),
                        (bulk("functions_count"), Reply::Int(fns as i64)),
                    ]),
                )]),
            ),
        ])
    }

    /// FUNCTION KILL (SCRIPT KILL for functions); SCRIPT KILL does not stop a function, nor this a script.
    pub fn function_kill(&self, function: bool) -> Result<Reply> {
        if self.running_function.lock().is_some() != function {
            return Err(CommandError::Raw("NOTBUSY No scripts in execution right now.".into()));
        }
        self.kill()
    }

    /// FCALL and FCALL_RO.
    pub fn fcall(
        &self,
        name: &[u8],
        keys: &[Bytes],
        args: &[Bytes],
        read_only: bool,
        exec: &mut CallFn<'_>,
    ) -> Result<Reply> {
        let f = self.functions.lock();
        let name = String::from_utf8_lossy(name).into_owned();
        let Some(def) = f.functions.get(&name) else {
            return Err(CommandError::Invalid("Function not found".into()));
        };
        let no_writes = def.flags.contains(&"no-writes");
        if read_only && !no_writes {
            return Err(CommandError::Invalid("Can not execute a script with write flag using *_ro command.".into()));
        }
        let lua = f.vm.lua.clone();
        let (k, a) = (strings(&lua, keys).map_err(memory)?, strings(&lua, args).map_err(memory)?);
        let (run_fn, func) = (f.vm.run_fn.clone(), def.func.clone());
        *self.running_function.lock() = Some(name.clone());
        let reply =
            self.run_in(&f.vm, &name, "user_function", read_only || no_writes, exec, || run_fn.call((func, k, a)));
        *self.running_function.lock() = None;
        reply
    }

    /// `redis.pcall` (and, through the prelude, `redis.call`): one command, its reply as Lua sees it,
    /// or `{err = ...}`.
    fn call(
        &self,
        lua: &Lua,
        exec: &RefCell<&mut CallFn<'_>>,
        argv: MultiValue,
        read_only: bool,
    ) -> mlua::Result<Value> {
        let fail = |msg: &str| -> mlua::Result<Value> {
            let t = lua.create_table()?;
            t.raw_set("err", msg)?;
            Ok(Value::Table(t))
        };
        if argv.is_empty() {
            return fail("ERR Please specify at least one argument for this redis lib call");
        }
        let mut args = Vec::with_capacity(argv.len());
        let mut total = 0usize;
        for v in argv {
            if let Value::String(s) = &v {
                total = total.saturating_add(s.as_bytes().len());
                if total > MAX_CALL_BYTES {
                    return fail("ERR the command's arguments are larger than a script may pass");
                }
            }
            match v {
                Value::String(_) | Value::Integer(_) | Value::Number(_) => match lua.coerce_string(v)? {
                    Some(s) => args.push(Bytes::copy_from_slice(&s.as_bytes())),
                    None => return fail("ERR Lua redis lib command arguments must be strings or integers"),
                },
                _ => return fail("ERR Lua redis lib command arguments must be strings or integers"),
            }
        }
        let Some(row) = table::row(&args[0]) else { return fail("ERR Unknown Redis command called from script") };
        let spec = row.spec;
        let not_allowed = "ERR This Redis command is not allowed from script";
        if spec.flags.contains(Flags::NOSCRIPT) || spec.flags.contains(Flags::PUBSUB) && spec.name != "publish" {
            return fail(not_allowed);
        }
        if !spec.arity_ok(args.len()) {
            return fail("ERR Wrong number of args calling Redis command from script");
        }
        if read_only && spec.is_write() {
            return fail("ERR Write commands are not allowed from read-only scripts.");
        }
        let cmd = match row.parse(&args) {
            Ok(c) => c,
            Err(e) => return fail(&e.to_string()),
        };
        match &cmd {
            Command::Stream(crate::command::StreamCmd::XRead { block: Some(_), .. }) => {
                return fail("ERR xread command is not allowed with BLOCK option from scripts");
            }
            Command::Stream(crate::command::StreamCmd::XReadGroup { block: Some(_), .. }) => {
                return fail("ERR xreadgroup command is not allowed with BLOCK option from scripts");
            }
            _ => {}
        }
        let reply = match cmd {
            Command::Server(ServerCmd::Ping(None)) => Ok(Reply::Status("PONG")),
            Command::Server(ServerCmd::Time) => {
                let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
                let secs = Reply::Bulk(Bytes::from(now.as_secs().to_string()));
                Ok(Reply::Array(vec![secs, Reply::Bulk(Bytes::from(now.subsec_micros().to_string()))]))
            }
            Command::Server(ServerCmd::Ping(Some(m)) | ServerCmd::Echo(m)) => Ok(Reply::Bulk(m)),
            Command::Server(_) | Command::Script(_) => return fail(not_allowed),
            cmd => {
                if spec.is_write() {
                    self.wrote.store(true, Ordering::Release);
                    // A SCRIPT KILL that came just before this first write stops the script here.
                    if self.kill.load(Ordering::Acquire) {
                        return Err(mlua::Error::RuntimeError("Script killed by user with SCRIPT KILL...".into()));
                    }
                } else if spec.flags.contains(crate::command::Flags::READONLY) {
                    crate::tracking::note_reads(&args);
                }
                (exec.borrow_mut())(cmd, &args)
            }
        };
        match reply {
            Ok(r) => to_lua(lua, r, 0),
            Err(e) => fail(&e.to_string()),
        }
    }
}

/// A reply as a script sees it (Redis's RESP2 conversion): integers are numbers, strings strings, nil
/// is `false`, a status `{ok = ...}`, an error `{err = ...}`, arrays tables.
fn to_lua(lua: &Lua, r: Reply, depth: usize) -> mlua::Result<Value> {
    stacker::maybe_grow(64 * 1024, 1024 * 1024, || to_lua_level(lua, r, depth))
}

fn to_lua_level(lua: &Lua, r: Reply, depth: usize) -> mlua::Result<Value> {
    if depth > MAX_DEPTH {
        return Err(mlua::Error::RuntimeError("reply nested too deep".into()));
    }
    let status = |s: &str| -> mlua::Result<Value> {
        let t = lua.create_table()?;
        t.raw_set("ok", s)?;
        Ok(Value::Table(t))
    };
    let seq = |items: Vec<Reply>| -> mlua::Result<Value> {
        let t = lua.create_table_with_capacity(items.len(), 0)?;
        for (i, item) in items.into_iter().enumerate() {
            t.raw_seti(i + 1, to_lua(lua, item, depth + 1)?)?;
        }
        Ok(Value::Table(t))
    };
    let text = |s: &[u8]| -> mlua::Result<Value> { Ok(Value::String(lua.create_string(s)?)) };
    match r {
        Reply::Ok => status("OK"),
        Reply::Status(s) => status(s),
        Reply::Simple(s) => status(&s),
        Reply::Error(e) => {
            let t = lua.create_table()?;
            t.raw_set("err", e)?;
            Ok(Value::Table(t))
        }
        Reply::Nil | Reply::NullArray => Ok(Value::Boolean(false)),
        Reply::Int(n) => Ok(Value::Integer(n)),
        Reply::Bulk(b) => text(&b),
        Reply::Decimal(t) | Reply::DoubleText(t) => text(&t),
        Reply::Double(d) => text(format_g17(d).as_bytes()),
        Reply::Expiry(e) => Ok(Value::Integer(e.redis_value())),
        Reply::Array(items) | Reply::Set(items) => seq(items),
        Reply::Map(pairs) | Reply::Pairs(pairs) => seq(pairs.into_iter().flat_map(|(k, v)| [k, v]).collect()),
        Reply::Keyed(pairs) => seq(pairs.into_iter().map(|(k, v)| Reply::Array(vec![k, v])).collect()),
        Reply::Scan { cursor, items } => seq(vec![Reply::Bulk(Bytes::from(cursor.to_string())), Reply::Array(items)]),
        Reply::Read { events, .. } => seq(events),
    }
}

/// A script's value as a reply (Redis's conversion): numbers are integers (truncated), `true` is 1,
/// `false` and nil are nil, `{ok = ...}` a status, `{err = ...}` an error, a table an array up to its
/// first nil.
fn from_lua(v: Value, depth: usize, budget: &mut Budget) -> Result<Reply> {
    // Each nesting level may need a fresh piece of stack: 1000 levels do not fit a worker thread's.
    stacker::maybe_grow(64 * 1024, 1024 * 1024, || from_lua_level(v, depth, budget))
}

fn from_lua_level(v: Value, depth: usize, budget: &mut Budget) -> Result<Reply> {
    if depth > MAX_DEPTH {
        return Err(CommandError::Raw("ERR reply nested too deep".into()));
    }
    let too_large = || CommandError::Raw("ERR the script's reply is too large".into());
    budget.nodes = budget.nodes.checked_sub(1).ok_or_else(too_large)?;
    budget.bytes = budget.bytes.checked_sub(std::mem::size_of::<Reply>()).ok_or_else(too_large)?;
    if let Value::String(s) = &v {
        budget.bytes = budget.bytes.checked_sub(s.as_bytes().len()).ok_or_else(too_large)?;
    }
    Ok(match v {
        Value::Nil | Value::Boolean(false) => Reply::Nil,
        Value::Boolean(true) => Reply::Int(1),
        Value::Integer(n) => Reply::Int(n),
        // C's conversion on x86-64, as Redis does it: truncation, and for NaN or a number out of range
        // the "integer indefinite" (i64::MIN).
        Value::Number(n) if n.is_nan() || !(-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&n) => {
            Reply::Int(i64::MIN)
        }
        Value::Number(n) => Reply::Int(n as i64),
        Value::String(s) => Reply::Bulk(Bytes::copy_from_slice(&s.as_bytes())),
        Value::Table(t) => {
            if let Ok(Value::String(e)) = t.raw_get::<Value>("err") {
                return Ok(Reply::Error(e.to_string_lossy()));
            }
            if let Ok(Value::String(s)) = t.raw_get::<Value>("ok") {
                return Ok(Reply::Simple(s.to_string_lossy()));
            }
            let mut items = Vec::new();
            for i in 1.. {
                match t.raw_get::<Value>(i).map_err(lua_err)? {
                    Value::Nil => break,
                    v => items.push(from_lua(v, depth + 1, budget)?),
                }
            }
            Reply::Array(items)
        }
        _ => Reply::Nil,
    })
}

/// Redis's `bit` library (LuaBitOp): 32-bit operations on numbers.
fn bit_library(lua: &Lua) -> mlua::Result<Table> {
    /// LuaBitOp's normalization: rounded half to even, then taken modulo 2^32 as a signed int.
    fn tobit(n: f64) -> i32 {
        if !n.is_finite() {
            return 0;
        }
        (n.round_ties_even().rem_euclid(4_294_967_296.0) as u64 as u32) as i32
    }
    let t = lua.create_table()?;
    t.raw_set("tobit", lua.create_function(|_, n: f64| Ok(tobit(n)))?)?;
    t.raw_set("bnot", lua.create_function(|_, n: f64| Ok(!tobit(n)))?)?;
    let fold = |lua: &Lua, op: fn(i32, i32) -> i32| {
        lua.create_function(move |_, args: mlua::Variadic<f64>| {
            Ok(args
                .iter()
                .fold(None, |acc: Option<i32>, &n| {
                    Some(match acc {
                        None => tobit(n),
                        Some(a) => op(a, tobit(n)),
                    })
                })
                .unwrap_or(0))
        })
    };
    t.raw_set("band", fold(lua, |a, b| a & b)?)?;
    t.raw_set("bor", fold(lua, |a, b| a | b)?)?;
    t.raw_set("bxor", fold(lua, |a, b| a ^ b)?)?;
    let shift = |lua: &Lua, op: fn(i32, u32) -> i32| {
        lua.create_function(move |_, (n, s): (f64, f64)| Ok(op(tobit(n), (tobit(s) as u32) & 31)))
    };
    t.raw_set("lshift", shift(lua, |a, s| ((a as u32) << s) as i32)?)?;
    t.raw_set("rshift", shift(lua, |a, s| ((a as u32) >> s) as i32)?)?;
    t.raw_set("arshift", shift(lua, |a, s| a >> s)?)?;
    t.raw_set("rol", shift(lua, |a, s| (a as u32).rotate_left(s) as i32)?)?;
    t.raw_set("ror", shift(lua, |a, s| (a as u32).rotate_right(s) as i32)?)?;
    t.raw_set(
        "tohex",
        lua.create_function(|_, (n, digits): (f64, Option<f64>)| {
            let d = digits.map(tobit).unwrap_or(8);
            let (upper, width) = (d < 0, d.unsigned_abs().min(8) as usize);
            let v = tobit(n) as u32;
            let s = if upper { format!("{v:08X}") } else { format!("{v:08x}") };
            Ok(s[8 - width..].to_string())
        })?,
    )?;
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(s: &Scripts, body: &str) -> Result<Reply> {
        let mut exec = |c: Command, _: &[Bytes]| -> Result<Reply> { Ok(Reply::Bulk(Bytes::from(c.name()))) };
        s.eval(&ScriptRef::Body(Bytes::copy_from_slice(body.as_bytes())), &[], &[], false, &mut exec)
    }

    /// The escapes a review found, each closed: no bytecode (as a script or through loadstring), no
    /// string metatable, no write that outlives a script (globals, `_G`, loaded chunks, rawset on the
    /// library views).
    #[test]
    fn the_sandbox_holds() {
        let s = Scripts::new();
        let ok = |body: &str| eval(&s, body).unwrap_or_else(|e| panic!("{body}: {e}"));
        let refused = |body: &str| assert!(eval(&s, body).is_err(), "{body} ran");
        refused("\x1bLua\x51\x00");
        assert_eq!(ok("return getmetatable('')"), Reply::Nil);
        refused("getmetatable('').__index.byte = function() return 0 end");
        assert_eq!(ok("return type(string.dump)"), Reply::bulk(&b"nil"[..]));
        assert_eq!(ok("local f = loadstring(string.char(27) .. 'Lua') return f"), Reply::Nil);
        refused("_G.x = 42");
        refused("rawset(_G, 'x', 42)");
        refused("loadstring('y = 7')()");
        refused("rawset(redis, 'call', function() return 1 end)");
        refused("rawset(string, 'upper', function() return 1 end)");
        refused("table.insert(_G, 'x')");
        refused("table.insert(redis, 'x')");
        refused("collectgarbage('setpause', 1000000)");
        // Nothing above left a trace for the next script.
        refused("return x");
        refused("return y");
        refused("return _G[1]");
        assert_eq!(ok("return string.upper('a')"), Reply::bulk(&b"A"[..]));
        assert_eq!(ok("return redis.status_reply('OK')"), Reply::Simple("OK".into()));
        assert_eq!(ok("local f = loadstring('return 1 + 1') return f()"), Reply::Int(2));
    }

    /// A script that catches errors (pcall around its loop) is still stopped by SCRIPT KILL.
    #[test]
    fn a_kill_is_not_caught_by_pcall() {
        let s = Scripts::new();
        std::thread::scope(|scope| {
            scope.spawn(|| {
                for _ in 0..200 {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    if s.kill().is_ok() {
                        return;
                    }
                }
            });
            let r = eval(&s, "while true do pcall(function() while true do end end) end");
            assert!(matches!(&r, Err(CommandError::Raw(m)) if m.contains("Script killed")), "{r:?}");
        });
    }

    #[test]
    fn a_script_runs_and_converts_its_value() {
        let s = Scripts::new();
        assert_eq!(eval(&s, "return 1"), Ok(Reply::Int(1)));
        assert_eq!(eval(&s, "return redis.call('incr', 'k')"), Ok(Reply::bulk(&b"incrby"[..])));
        // Redis 7.0.15's replies to the same scripts.
        let sha = |b: &str| sha1_hex(b.as_bytes());
        let body = "return redis.call('incr', KEYS[1])";
        let want = format!(
            "ERR Lua redis lib command arguments must be strings or integers script: {}, on @user_script:1.",
            sha(body)
        );
        assert_eq!(eval(&s, body), Err(CommandError::Raw(want)));
        // LuaBitOp rounds half to even (redis-server: 253 2 2 -2 4).
        let body = "return {bit.bxor(1.5, 255), bit.tobit(1.5), bit.tobit(2.5), bit.tobit(-1.5), bit.band(3.7, 7)}";
        let want = Reply::Array([253, 2, 2, -2, 4].into_iter().map(Reply::Int).collect());
        assert_eq!(eval(&s, body), Ok(want));
        // cjson as Redis ships it (redis-server's answers).
        assert_eq!(eval(&s, "return cjson.encode({1, nil, 3})"), Ok(Reply::bulk(&b"[1,null,3]"[..])));
        assert_eq!(
            eval(&s, "return cjson.encode({x = {'a/b', 1/3}})"),
            Ok(Reply::bulk(&b"{\"x\":[\"a\\/b\",0.33333333333333]}"[..]))
        );
        let body = "return cjson.encode({[1]=1,[20]=5})";
        let want = format!(
            "ERR user_script:1: Cannot serialise table: excessively sparse array script: {}, on @user_script:1.",
            sha(body)
        );
        assert_eq!(eval(&s, body), Err(CommandError::Raw(want)));
        // A table that holds itself stops at the nesting limit, as lua-cjson's does.
        let r = eval(&s, "local t = {} t[1] = t return cjson.encode(t)");
        assert!(matches!(&r, Err(CommandError::Raw(m)) if m.contains("excessive nesting")), "{r:?}");
        let r = eval(&s, "return cjson.decode(string.rep('[', 100000))");
        assert!(r.is_err(), "{r:?}");
        // A reply nested 1000 deep converts (on a grown stack); deeper is refused.
        let deep = |n: usize| format!("local t = {{}} local c = t for i = 1, {n} do c[1] = {{}} c = c[1] end return t");
        assert!(eval(&s, &deep(990)).is_ok());
        assert!(eval(&s, &deep(5000)).is_err());
        // Numbers out of the integer range convert as C does on x86-64 (redis-server: i64::MIN each).
        let body = "return {1e300, -1e300, 0/0, 2^63, -2^63, 2^62}";
        let want = [i64::MIN, i64::MIN, i64::MIN, i64::MIN, i64::MIN, 1 << 62];
        assert_eq!(eval(&s, body), Ok(Reply::Array(want.into_iter().map(Reply::Int).collect())));
        let body = "error({err='MYERR custom'})";
        assert_eq!(
            eval(&s, body),
            Err(CommandError::Raw(format!("MYERR custom script: {}, on @user_script:1.", sha(body))))
        );
        let body = "\n\nlocal x = 1\nreturn y";
        let want = format!(
            "ERR user_script:4: Script attempted to access nonexistent global variable 'y' script: {}, on @user_script:4.",
            sha(body)
        );
        assert_eq!(eval(&s, body), Err(CommandError::Raw(want)));
    }
}

#[cfg(test)]
mod cmsgpack_tests {
    use super::*;

    fn eval(s: &Scripts, body: &str) -> Result<Reply> {
        let mut exec = |_: Command, _: &[Bytes]| -> Result<Reply> { Ok(Reply::Nil) };
        s.eval(&ScriptRef::Body(Bytes::copy_from_slice(body.as_bytes())), &[], &[], false, &mut exec)
    }

    #[test]
    fn cmsgpack_writes_what_redis_writes() {
        let s = Scripts::new();
        // The bytes redis-server 7.0 answers for the same script.
        let got = eval(
            &s,
            "return cmsgpack.pack(1, -1, 200, -200, 70000, 1.5, 0.1, 'abc', true, {1,2}, {a=1}, {}, 2^40, 1/0)",
        )
        .unwrap();
        let want: &[u8] = b"\x01\xff\xcc\xc8\xd1\xff8\xce\x00\x01\x11p\xca?\xc0\x00\x00\xcb?\xb9\x99\x99\x99\x99\x99\x9a\xa3abc\xc3\x92\x01\x02\x81\xa1a\x01\x90\xcf\x00\x00\x01\x00\x00\x00\x00\x00\xca\x7f\x80\x00\x00";
        assert_eq!(got, Reply::Bulk(Bytes::from_static(want)));
        let back = eval(
            &s,
            "local a, b, c = cmsgpack.unpack(cmsgpack.pack({1, {k = 'v'}}, 3.25, 'x')) return {a[2].k, b * 4, c}",
        )
        .unwrap();
        assert_eq!(back, Reply::Array(vec![Reply::Bulk("v".into()), Reply::Int(13), Reply::Bulk("x".into())]));
        let err = eval(&s, "return cmsgpack.unpack('\\146\\1')").unwrap_err().to_string();
        assert!(err.starts_with("ERR user_script:1: Missing bytes in input."), "{err}");
    }

    #[test]
    fn struct_packs_and_unpacks_as_redis_does() {
        let s = Scripts::new();
        let bulk = |b: &[u8]| Ok(Reply::Bulk(Bytes::copy_from_slice(b)));
        // What redis-server 7.0 answers for the same scripts.
        assert_eq!(eval(&s, "return struct.pack('>i2 <h b', 1, -2, -1)"), bulk(b"\x00\x01\xfe\xff\xff"));
        assert_eq!(eval(&s, "return struct.pack('!4 b i', 1, 2)"), bulk(b"\x01\x00\x00\x00\x02\x00\x00\x00"));
        assert_eq!(eval(&s, "return struct.pack('s c0 c2', 'hi', 'abc', 'xyz')"), bulk(b"hi\x00abcxy"));
        assert_eq!(eval(&s, "return struct.pack('>d', -0.1)"), bulk(&(-0.1f64).to_be_bytes()));
        let back = eval(&s, "return {struct.unpack('<I2 b c0 s', '\\255\\255\\2xyz\\0', 1)}");
        assert_eq!(
            back,
            Ok(Reply::Array(vec![Reply::Int(65535), Reply::Bulk("xy".into()), Reply::Bulk("z".into()), Reply::Int(8)]))
        );
        assert_eq!(eval(&s, "return struct.size('!i b d')"), Ok(Reply::Int(16)));
        let err = |body| eval(&s, body).unwrap_err().to_string();
        assert!(
            err("return struct.pack('z', 1)")
                .starts_with("ERR user_script:1: bad argument #1 to 'pack' (invalid format option 'z')"),
            "{}",
            err("return struct.pack('z', 1)")
        );
        assert!(
            err("return {struct.unpack('i', 'ab')}").contains("bad argument #2 to 'unpack' (data string too short)")
        );
        assert!(err("return struct.pack('i33', 1)").contains("integral size 33 is larger than limit of 32"));
        assert!(err("return struct.size('s')").contains("option 's' has no fixed size"));
    }
}
