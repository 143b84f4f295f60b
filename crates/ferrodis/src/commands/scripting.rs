//! Lua scripting (Redis's eval.c / script_lua.c) on Lua 5.1 through `mlua`: EVAL, EVALSHA,
//! EVAL_RO, EVALSHA_RO, SCRIPT LOAD|EXISTS|FLUSH|KILL, and the `redis` library (call, pcall,
//! error_reply, status_reply, sha1hex, log, setresp, set_repl, replicate_commands, breakpoint,
//! debug, acl_check_cmd, the REPL_* and LOG_* constants, REDIS_VERSION).
//!
//! Each worker thread has its own Lua state (mlua's `Lua` is not `Send`); the script bodies are
//! shared in `State::scripts` and compiled into a thread's state on first use. A script holds all
//! 256 stripe locks (taken in order) while it runs, so it is atomic against every other client
//! whatever keys it touches, and its effects go to the journal as one MULTI ... EXEC block.

use super::dispatch::run_handler;
use super::lua_libs::Args;
use super::table::{cmd, container, flag::*, CommandSpec, Keys, NO_KEYS};
use super::{eq, Ctx, NOT_INT};
use crate::state::scripts::{self, Library};
use mlua::{Function, Lua, Table, Value as LuaValue};
use resp::{Proto, ReplyBuf};
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::Ordering;

const EVAL_KEYS: Keys = Keys::NumKeys { numkeys: 2, first: 3, step: 1 };
const SCRIPT_FLAGS: u32 = NOSCRIPT | STALE | SKIP_MONITOR | NO_MANDATORY_KEYS;

static SCRIPT_SUBS: &[CommandSpec] = &[
    cmd("load", 3, NOSCRIPT | STALE, "@slow @scripting", NO_KEYS, script_load),
    cmd("exists", -3, NOSCRIPT, "@slow @scripting", NO_KEYS, script_exists),
    cmd("flush", -2, NOSCRIPT, "@slow @scripting", NO_KEYS, script_flush),
    cmd("kill", 2, NOSCRIPT | ALLOW_BUSY, "@slow @scripting", NO_KEYS, script_kill),
    cmd("debug", 3, NOSCRIPT, "@slow @scripting", NO_KEYS, script_debug),
    cmd("help", 2, LOADING | STALE, "@slow @scripting", NO_KEYS, script_help),
];

pub static COMMANDS: &[CommandSpec] = &[
    cmd("eval", -3, SCRIPT_FLAGS | MAY_REPLICATE, "@slow @scripting", EVAL_KEYS, eval),
    cmd("evalsha", -3, SCRIPT_FLAGS | MAY_REPLICATE, "@slow @scripting", EVAL_KEYS, evalsha),
    cmd("eval_ro", -3, SCRIPT_FLAGS | READONLY, "@slow @scripting", EVAL_KEYS, eval_ro),
    cmd("evalsha_ro", -3, SCRIPT_FLAGS | READONLY, "@slow @scripting", EVAL_KEYS, evalsha_ro),
    container("script", -2, "@slow", SCRIPT_SUBS),
    cmd("fcall", -3, SCRIPT_FLAGS | MAY_REPLICATE, "@slow @scripting", EVAL_KEYS, fcall),
    cmd("fcall_ro", -3, SCRIPT_FLAGS | READONLY, "@slow @scripting", EVAL_KEYS, fcall_ro),
    container("function", -2, "@slow", FUNCTION_SUBS),
];

static FUNCTION_SUBS: &[CommandSpec] = &[
    cmd("load", -3, WRITE | DENYOOM | NOSCRIPT, "@write @slow @scripting", NO_KEYS, function_load),
    cmd("delete", 3, WRITE | NOSCRIPT, "@write @slow @scripting", NO_KEYS, function_delete),
    cmd("flush", -2, WRITE | NOSCRIPT, "@write @slow @scripting", NO_KEYS, function_flush),
    cmd("list", -2, NOSCRIPT, "@slow @scripting", NO_KEYS, function_list),
    cmd("kill", 2, NOSCRIPT | ALLOW_BUSY, "@slow @scripting", NO_KEYS, script_kill),
    cmd("stats", 2, NOSCRIPT | ALLOW_BUSY, "@slow @scripting", NO_KEYS, function_stats),
    cmd("help", 2, LOADING | STALE, "@slow @scripting", NO_KEYS, function_help),
    cmd("dump", 2, NOSCRIPT, "@slow @scripting", NO_KEYS, function_dump),
    cmd("restore", -3, WRITE | DENYOOM | NOSCRIPT, "@write @slow @scripting", NO_KEYS, function_restore),
];

fn function_help(ctx: &mut Ctx, _argv: &[&[u8]]) {
    super::reply_help(
        ctx,
        &[
            "FUNCTION <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "LOAD [REPLACE] <FUNCTION CODE>",
            "    Create a new library with the given library name and code.",
            "DELETE <LIBRARY NAME>",
            "    Delete the given library.",
            "LIST [LIBRARYNAME PATTERN] [WITHCODE]",
            "    Return general information on all the libraries:",
            "    * Library name",
            "    * The engine used to run the Library",
            "    * Library description",
            "    * Functions list",
            "    * Library code (if WITHCODE is given)",
            "    It also possible to get only function that matches a pattern using LIBRARYNAME argument.",
            "STATS",
            "    Return information about the current function running:",
            "    * Function name",
            "    * Command used to run the function",
            "    * Duration in MS that the function is running",
            "    If no function is running, return nil",
            "    In addition, returns a list of available engines.",
            "KILL",
            "    Kill the current running function.",
            "FLUSH [ASYNC|SYNC]",
            "    Delete all the libraries.",
            "    When called without the optional mode argument, the behavior is determined by the",
            "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
            "    * ASYNC: Asynchronously flush the libraries.",
            "    * SYNC: Synchronously flush the libraries.",
            "DUMP",
            "    Return a serialized payload representing the current libraries, can be restored using FUNCTION RESTORE command",
            "RESTORE <PAYLOAD> [FLUSH|APPEND|REPLACE]",
            "    Restore the libraries represented by the given payload, it is possible to give a restore policy to",
            "    control how to handle existing libraries (default APPEND):",
            "    * FLUSH: delete all existing libraries.",
            "    * APPEND: appends the restored libraries to the existing libraries. On collision, abort.",
            "    * REPLACE: appends the restored libraries to the existing libraries, On collision, replace the old",
            "      libraries with the new libraries (notice that even on this option there is a chance of failure",
            "      in case of functions name collision with another library).",
            "HELP",
            "    Prints this help.",
        ],
    );
}

/// FUNCTION STATS: the running function (name, calling command, run time) and the engine's
/// library and function counts. While an EVAL script runs it answers BUSY, as Redis does.
fn function_stats(ctx: &mut Ctx, _argv: &[&[u8]]) {
    let since = scripts::RUNNING_SINCE.load(Ordering::Acquire);
    let running = if since != 0 { scripts::RUNNING_CALL.lock().clone() } else { None };
    if let Some((None, _)) = running {
        return ctx.out.error(scripts::BUSY_ERR);
    }
    let (libraries, functions) = {
        let libs = ctx.st.scripts.libraries.lock();
        (libs.len(), libs.values().map(|l| l.functions.len()).sum::<usize>())
    };
    let out = &mut *ctx.out;
    out.map(2);
    out.bulk(b"running_script");
    match running {
        Some((Some(name), argv)) => {
            out.map(3);
            out.bulk(b"name");
            out.bulk(name.as_bytes());
            out.bulk(b"command");
            out.array(argv.len());
            for a in &argv {
                out.bulk(a);
            }
            out.bulk(b"duration_ms");
            out.int(crate::util::now_ms() - since);
        }
        _ => out.null(),
    }
    out.bulk(b"engines");
    out.map(1);
    out.bulk(b"LUA");
    out.map(2);
    out.bulk(b"libraries_count");
    out.int(libraries as i64);
    out.bulk(b"functions_count");
    out.int(functions as i64);
}

fn sha1hex(b: &[u8]) -> String {
    sha1_smol::Sha1::from(b).digest().to_string()
}

struct ThreadLua {
    generation: u64,
    lua: Lua,
    funcs: HashMap<String, Function>,
    /// FUNCTION libraries loaded into this state: function name → body.
    functions: Option<HashMap<String, Function>>,
}

thread_local! {
    static LUA: RefCell<Option<ThreadLua>> = const { RefCell::new(None) };
    /// The running script's protocol for redis.call replies (redis.setresp), 2 or 3.
    static SCRIPT_RESP: std::cell::Cell<u8> = const { std::cell::Cell::new(2) };
    /// The running script's replication flags (redis.set_repl): REPL_NONE (0) keeps its writes
    /// out of the journal; any other value sends them (the journal feeds both the AOF and the
    /// replicas, so REPL_AOF and REPL_REPLICA both mean "journal").
    static SCRIPT_REPL: std::cell::Cell<u8> = const { std::cell::Cell::new(3) };
}

/// "7.0.15" as Redis numbers it (0x0007000f): one byte each for major, minor and patch.
fn version_num(v: &str) -> i64 {
    v.split('.').take(3).fold(0, |n, p| (n << 8) | p.parse::<i64>().unwrap_or(0))
}

/// An error raised inside a script as Redis formats it ("<msg> script: ..., on @user_script:N.").
fn lua_raise(lua: &Lua, msg: &str) -> mlua::Error {
    let line = script_line(lua);
    mlua::Error::RuntimeError(format!("{MARK}{line}{MARK}{msg}"))
}

/// The line of the script code that is calling (0 when a C function such as pcall called).
fn script_line(lua: &Lua) -> i64 {
    super::lua_libs::calling_line(lua)
}

/// The private table of Rust functions the Lua wrappers call (`lua_libs::install`).
const IMPL_KEY: &str = "ferrodis.impl";

/// The one integer argument of redis.setresp / redis.set_repl, or Redis's error.
fn one_int_arg(lua: &Lua, args: &mlua::MultiValue, name: &str) -> mlua::Result<i64> {
    if args.len() != 1 {
        // (Redis's own wording: set_repl says "two arguments" though it takes one.)
        let count = if name == "set_repl" { "two arguments" } else { "one argument" };
        return Err(lua_raise(lua, &format!("ERR redis.{name}() requires {count}.")));
    }
    match &args[0] {
        LuaValue::Integer(n) => Ok(*n),
        LuaValue::Number(f) => Ok(*f as i64),
        LuaValue::String(s) => Ok(std::str::from_utf8(&s.as_bytes()).ok().and_then(|s| s.trim().parse::<f64>().ok()).unwrap_or(0.0) as i64),
        _ => Ok(0),
    }
}

/// The registry keys of the tables behind the sandbox: the real global table (KEYS and ARGV are
/// set there per call) and the real `redis` table (per-call functions are set there).
const GLOBALS_KEY: &str = "ferrodis.globals";
const REDIS_KEY: &str = "ferrodis.redis";

/// The sandbox, as Redis's patched Lua has it: `_G`, every library table and the string
/// metatable are read-only for scripts, so nothing a script does outlives it or reaches another
/// user's script. Stock Lua 5.1 has no read-only tables, so each protected table is shown to
/// scripts as an empty proxy whose metatable reads through to the real table and refuses
/// writes; the functions that bypass metatables (rawset, setmetatable, table.insert) refuse
/// proxies, and those that read raw (rawget, next, pairs, getmetatable) see through them.
/// The real tables stay reachable only from Rust and from this chunk's upvalues. Binary chunks
/// are refused (`loadstring`/`load`), as Redis refuses them: Lua 5.1 does not verify bytecode.
/// Runs once per Lua state, with the real global table as its environment; returns the proxy
/// that becomes the state's global table.
const PRELUDE: &str = r#"
local imp, user_line = ...
local G = _G
local rawset, rawget, next, pairs, setmetatable, getmetatable = rawset, rawget, next, pairs, setmetatable, getmetatable
local error, type, tostring, loadstring, insert, concat = error, type, tostring, loadstring, table.insert, table.concat
local RO = "Attempt to modify a readonly table"
local hidden, fake = {}, {}
local function readonly() error(RO, 2) end
local function refuse()
  imp.readonly_line = user_line()
  error(RO, 0)
end
local function protect(t)
  local p = {}
  setmetatable(p, { __index = t, __newindex = readonly, __metatable = false })
  hidden[p], fake[p] = t, false
  return p
end
local function missing(t, k)
  error("Script attempted to access nonexistent global variable '" .. tostring(k) .. "'", 2)
end

rawset(G.table, "insert", function(t, ...)
  if hidden[t] then refuse() end
  return insert(t, ...)
end)
G.rawset = function(t, k, v)
  if hidden[t] then refuse() end
  return rawset(t, k, v)
end
G.setmetatable = function(t, m)
  if hidden[t] then refuse() end
  return setmetatable(t, m)
end
G.rawget = function(t, k)
  local h = hidden[t]
  if h then return rawget(h, k) end
  return rawget(t, k)
end
G.next = function(t, k)
  local h = hidden[t]
  if h then return next(h, k) end
  return next(t, k)
end
G.pairs = function(t)
  local h = hidden[t]
  if h then return function(_, k) return next(h, k) end, t, nil end
  return pairs(t)
end
local function binary(s, name)
  local shown = name or s:match("^[^%z\n\r]*")
  return nil, '[string "' .. shown .. '"]:1: unexpected symbol near \'char(27)\''
end
G.loadstring = function(s, name)
  if type(s) == "string" and s:byte(1) == 27 then return binary(s, name) end
  return loadstring(s, name)
end
G.load = function(reader, name)
  local parts = {}
  while true do
    local piece = reader()
    if piece == nil or piece == "" then break end
    if type(piece) ~= "string" then return nil, "reader function must return a string" end
    parts[#parts + 1] = piece
  end
  return G.loadstring(concat(parts), name or "=(load)")
end

for _, name in ipairs({ "string", "table", "math", "bit", "cjson", "cmsgpack", "struct", "redis", "coroutine" }) do
  rawset(G, name, protect(G[name]))
end
local smt = getmetatable("")
smt.__index = G.string
local smt_proxy = protect(smt)
local P = protect(G)
fake[P] = protect({ __index = missing })
G.getmetatable = function(o)
  if type(o) == "string" then return smt_proxy end
  local f = fake[o]
  if f ~= nil then return f or nil end
  return getmetatable(o)
end
rawset(G, "_G", P)
-- Redis's error handler is a global too; what it returns is all a script can see of it.
rawset(G, "__redis__err__handler", function(err)
  if type(err) == "table" then return err end
  return { err = "ERR " .. tostring(err) }
end)
setmetatable(G, { __index = missing })
return P
"#;

fn new_lua() -> mlua::Result<Lua> {
    let lua = Lua::new();
    let g = lua.globals();
    for name in ["os", "io", "loadfile", "dofile", "require", "module", "package", "debug", "print", "getfenv", "setfenv", "newproxy"] {
        g.raw_set(name, LuaValue::Nil)?;
    }
    let redis = lua.create_table()?;
    redis.set(
        "sha1hex",
        lua.create_function(|lua, a: mlua::MultiValue| match (a.len(), a.front()) {
            (1, Some(LuaValue::String(s))) => Ok(sha1hex(&s.as_bytes())),
            (1, Some(LuaValue::Integer(n))) => Ok(sha1hex(n.to_string().as_bytes())),
            (1, Some(LuaValue::Number(n))) => Ok(sha1hex(super::lua_libs::fmt_num(*n).as_bytes())),
            (1, _) => Ok(sha1hex(b"")),
            _ => Err(lua_raise(lua, "ERR wrong number of arguments")),
        })?,
    )?;
    redis.set(
        "error_reply",
        lua.create_function(|lua, s: mlua::String| {
            let t = lua.create_table()?;
            t.set("err", s)?;
            Ok(t)
        })?,
    )?;
    redis.set(
        "status_reply",
        lua.create_function(|lua, s: mlua::String| {
            let t = lua.create_table()?;
            t.set("ok", s)?;
            Ok(t)
        })?,
    )?;
    redis.set(
        "log",
        lua.create_function(|_, (_level, msg): (i64, mlua::String)| {
            tracing::info!("{}", String::from_utf8_lossy(&msg.as_bytes()));
            Ok(())
        })?,
    )?;
    for (name, v) in [
        ("LOG_DEBUG", 0),
        ("LOG_VERBOSE", 1),
        ("LOG_NOTICE", 2),
        ("LOG_WARNING", 3),
        ("REPL_NONE", 0),
        ("REPL_AOF", 1),
        ("REPL_SLAVE", 2),
        ("REPL_REPLICA", 2),
        ("REPL_ALL", 3),
    ] {
        redis.set(name, v)?;
    }
    redis.set("REDIS_VERSION", crate::REDIS_VERSION)?;
    redis.set("REDIS_VERSION_NUM", version_num(crate::REDIS_VERSION))?;
    redis.set(
        "setresp",
        lua.create_function(|lua, args: mlua::MultiValue| {
            match one_int_arg(lua, &args, "setresp")? {
                v @ (2 | 3) => SCRIPT_RESP.with(|c| c.set(v as u8)),
                _ => return Err(lua_raise(lua, "ERR RESP version must be 2 or 3.")),
            }
            Ok(())
        })?,
    )?;
    redis.set(
        "set_repl",
        lua.create_function(|lua, args: mlua::MultiValue| {
            match one_int_arg(lua, &args, "set_repl")? {
                v @ 0..=3 => SCRIPT_REPL.with(|c| c.set(v as u8)),
                _ => return Err(lua_raise(lua, "ERR Invalid replication flags. Use REPL_AOF, REPL_REPLICA, REPL_ALL or REPL_NONE.")),
            }
            Ok(())
        })?,
    )?;
    // Effects replication is the only mode since Redis 7.0: this is a no-op kept for old scripts.
    redis.set("replicate_commands", lua.create_function(|_, ()| Ok(true))?)?;
    // The Lua debugger is not available outside a debugging session: Redis returns false / nil.
    redis.set("breakpoint", lua.create_function(|_, ()| Ok(false))?)?;
    redis.set("debug", lua.create_function(|_, _: mlua::MultiValue| Ok(()))?)?;
    g.raw_set("redis", redis.clone())?;
    let imp = super::lua_libs::install(&lua)?;
    lua.set_named_registry_value(IMPL_KEY, imp.clone())?;
    lua.set_named_registry_value(GLOBALS_KEY, g)?;
    lua.set_named_registry_value(REDIS_KEY, redis)?;
    // The line of the script that called a refusing wrapper (0: this function, 1: `refuse`,
    // 2: the wrapper, 3: its caller, or 4 when that is a C function such as pcall), as Redis's
    // error handler finds it.
    let user_line = lua.create_function(|lua, ()| {
        for level in [3, 4] {
            if let Some(d) = lua.inspect_stack(level) {
                if d.source().what != "C" {
                    return Ok(d.curr_line().max(0) as i64);
                }
            }
        }
        Ok(0)
    })?;
    let proxy: Table = lua.load(PRELUDE).set_name("@prelude").call((imp, user_line))?;
    // The proxy becomes the state's global table: every chunk loaded from now on (scripts,
    // libraries, loadstring) and every coroutine sees only the proxy.
    // SAFETY: one value is pushed (the proxy) and lua_replace pops it into LUA_GLOBALSINDEX.
    unsafe {
        lua.exec_raw::<()>(proxy, |l| {
            mlua::ffi::lua_replace(l, mlua::ffi::LUA_GLOBALSINDEX);
        })?;
    }
    Ok(lua)
}

/// A table with one field, as Redis hands RESP3 types to Lua ({double=...}, {map=...}, ...).
fn field_table(lua: &Lua, name: &str, v: impl mlua::IntoLua) -> mlua::Result<LuaValue> {
    let t = lua.create_table()?;
    t.raw_set(name, v)?;
    Ok(LuaValue::Table(t))
}

/// A reply (one, at the start of `b`) as Redis converts it for Lua; returns the value and the
/// bytes used. Errors become {err=...}, status replies {ok=...}, RESP2 nulls false. RESP3 replies
/// (after redis.setresp(3)): null is nil, booleans are booleans, a double is {double=n}, a big
/// number {big_number=s}, verbatim text {verbatim_string={format=f, string=s}}, a map
/// {map={k=v}} and a set {set={m=true}}; attributes are skipped.
fn reply_to_lua(lua: &Lua, b: &[u8]) -> mlua::Result<(LuaValue, usize)> {
    let end = b.windows(2).position(|w| w == b"\r\n").unwrap_or(b.len());
    let line = &b[1.min(end)..end];
    let next = end + 2;
    let num = || std::str::from_utf8(line).ok().and_then(|s| s.parse::<i64>().ok()).unwrap_or(0);
    match b.first() {
        Some(b'_') => Ok((LuaValue::Nil, next)),
        Some(b'#') => Ok((LuaValue::Boolean(line == b"t"), next)),
        Some(b',') => {
            let d = crate::util::parse_f64(line).unwrap_or(0.0);
            Ok((field_table(lua, "double", d)?, next))
        }
        Some(b'(') => Ok((field_table(lua, "big_number", lua.create_string(line)?)?, next)),
        Some(b'=') => {
            let n = num().max(0) as usize;
            let body = &b[next..next + n];
            let (format, text) = if n >= 4 { (&body[..3], &body[4..]) } else { (&b""[..], body) };
            let t = lua.create_table()?;
            t.raw_set("format", lua.create_string(format)?)?;
            t.raw_set("string", lua.create_string(text)?)?;
            Ok((field_table(lua, "verbatim_string", t)?, next + n + 2))
        }
        Some(b'%') | Some(b'~') | Some(b'|') => {
            let kind = b[0];
            let t = lua.create_table()?;
            let mut pos = next;
            for _ in 0..num() {
                let (k, used) = reply_to_lua(lua, &b[pos..])?;
                pos += used;
                if kind == b'~' {
                    t.raw_set(k, true)?;
                    continue;
                }
                let (v, used) = reply_to_lua(lua, &b[pos..])?;
                pos += used;
                t.raw_set(k, v)?;
            }
            match kind {
                b'%' => Ok((field_table(lua, "map", t)?, pos)),
                b'~' => Ok((field_table(lua, "set", t)?, pos)),
                // An attribute annotates the reply that follows it: Lua sees only that reply.
                _ => {
                    let (v, used) = reply_to_lua(lua, &b[pos..])?;
                    Ok((v, pos + used))
                }
            }
        }
        Some(b':') => Ok((LuaValue::Integer(num()), next)),
        Some(b'+') => {
            let t = lua.create_table()?;
            t.set("ok", lua.create_string(line)?)?;
            Ok((LuaValue::Table(t), next))
        }
        Some(b'-') => {
            let t = lua.create_table()?;
            t.set("err", lua.create_string(line)?)?;
            Ok((LuaValue::Table(t), next))
        }
        Some(b'$') => {
            let n = num();
            if n < 0 {
                return Ok((LuaValue::Boolean(false), next));
            }
            let n = n as usize;
            Ok((LuaValue::String(lua.create_string(&b[next..next + n])?), next + n + 2))
        }
        Some(b'*') | Some(b'>') => {
            let n = num();
            if n < 0 {
                return Ok((LuaValue::Boolean(false), next));
            }
            let t = lua.create_table()?;
            let mut pos = next;
            for i in 1..=n {
                let (v, used) = reply_to_lua(lua, &b[pos..])?;
                t.raw_set(i, v)?;
                pos += used;
            }
            Ok((LuaValue::Table(t), pos))
        }
        _ => Ok((LuaValue::Nil, b.len())),
    }
}

/// A status or error line as Redis sends it: CR and LF become spaces.
fn one_line(s: &[u8]) -> Vec<u8> {
    s.iter().map(|&c| if c == b'\r' || c == b'\n' { b' ' } else { c }).collect()
}

/// How deep a script's reply may nest. Redis converts it on Lua's stack and answers
/// "reached lua stack limit" in place of a value where `lua_checkstack` fails: at this depth for
/// a script's result (so a table that contains itself is an error 7995 arrays down, not a crash).
const REPLY_MAX_DEPTH: usize = 7995;

/// A Lua value as Redis replies it to the client (luaReplyToRedisReply). Booleans follow the
/// script's protocol (redis.setresp): RESP2 scripts return 1 or null, RESP3 scripts a boolean.
/// Tables with an `err` or `ok` field are errors and status replies; with a `double`,
/// `big_number`, `map`, `set` or `verbatim_string` field, those RESP3 types (RESP2 clients get
/// their RESP2 forms); any other table is an array up to its first nil.
///
/// The value is walked on Lua's own stack with the raw C API, as Redis does, rather than through
/// mlua values: mlua holds a reference per live value (at most ~8000 in all), which a deep or
/// wide reply would exhaust.
fn lua_to_reply(lua: &Lua, out: &mut ReplyBuf, v: LuaValue) {
    let resp3 = SCRIPT_RESP.with(|c| c.get()) == 3;
    let at = out.buf.len();
    // SAFETY: the closure reads the value exec_raw pushed with raw accessors only (no
    // metamethods, so no Lua error can unwind through it: the only allocations are the field
    // names, with no memory limit set), and leaves the stack empty.
    let r = unsafe {
        lua.exec_raw::<()>(v, |l| {
            raw_reply::value(l, out, 0, resp3);
            mlua::ffi::lua_settop(l, 0);
        })
    };
    if r.is_err() {
        out.buf.truncate(at);
        out.error("ERR reached lua stack limit");
    }
}

mod raw_reply {
    use super::super::lua_libs::lua_bytes as bytes;
    use super::{one_line, REPLY_MAX_DEPTH};
    use mlua::ffi;
    use resp::ReplyBuf;
    use std::ffi::CStr;

    /// Pushes `t[name]` (raw) for the table on top; returns its type.
    unsafe fn field(l: *mut ffi::lua_State, name: &CStr) -> i32 {
        ffi::lua_pushstring(l, name.as_ptr());
        ffi::lua_rawget(l, -2);
        ffi::lua_type(l, -1)
    }

    /// Converts the value on top of the stack and pops it.
    pub unsafe fn value(l: *mut ffi::lua_State, out: &mut ReplyBuf, depth: usize, resp3: bool) {
        if depth >= REPLY_MAX_DEPTH || ffi::lua_checkstack(l, 4) == 0 {
            out.error("ERR reached lua stack limit");
        } else {
            match ffi::lua_type(l, -1) {
                ffi::LUA_TSTRING => out.bulk(bytes(l, -1)),
                ffi::LUA_TBOOLEAN => {
                    let b = ffi::lua_toboolean(l, -1) != 0;
                    match (resp3, b) {
                        (true, b) => out.boolean(b),
                        (false, true) => out.int(1),
                        (false, false) => out.null(),
                    }
                }
                ffi::LUA_TNUMBER => out.int(ffi::lua_tonumber(l, -1).trunc() as i64),
                ffi::LUA_TTABLE => table(l, out, depth, resp3),
                _ => out.null(),
            }
        }
        ffi::lua_pop(l, 1);
    }

    /// Counts the pairs of the table on top (lua_next, no references kept).
    unsafe fn count_pairs(l: *mut ffi::lua_State) -> usize {
        let mut n = 0;
        ffi::lua_pushnil(l);
        while ffi::lua_next(l, -2) != 0 {
            ffi::lua_pop(l, 1);
            n += 1;
        }
        n
    }

    unsafe fn table(l: *mut ffi::lua_State, out: &mut ReplyBuf, depth: usize, resp3: bool) {
        if field(l, c"err") == ffi::LUA_TSTRING {
            let e = String::from_utf8_lossy(&one_line(bytes(l, -1))).into_owned();
            ffi::lua_pop(l, 1);
            return out.error(&e);
        }
        ffi::lua_pop(l, 1);
        if field(l, c"ok") == ffi::LUA_TSTRING {
            out.simple(&one_line(bytes(l, -1)));
            return ffi::lua_pop(l, 1);
        }
        ffi::lua_pop(l, 1);
        if field(l, c"double") == ffi::LUA_TNUMBER {
            out.double_str(crate::util::fmt_g17(ffi::lua_tonumber(l, -1)).as_bytes());
            return ffi::lua_pop(l, 1);
        }
        ffi::lua_pop(l, 1);
        if field(l, c"big_number") == ffi::LUA_TSTRING {
            let s = one_line(bytes(l, -1));
            ffi::lua_pop(l, 1);
            if out.resp3() {
                out.raw(b"(");
                out.raw(&s);
                return out.raw(b"\r\n");
            }
            return out.bulk(&s);
        }
        ffi::lua_pop(l, 1);
        if field(l, c"map") == ffi::LUA_TTABLE {
            out.map(count_pairs(l));
            ffi::lua_pushnil(l);
            while ffi::lua_next(l, -2) != 0 {
                // table, key, value: the key is converted from a copy, so lua_next can go on.
                ffi::lua_pushvalue(l, -2);
                value(l, out, depth + 1, resp3);
                value(l, out, depth + 1, resp3);
            }
            return ffi::lua_pop(l, 1);
        }
        ffi::lua_pop(l, 1);
        if field(l, c"set") == ffi::LUA_TTABLE {
            out.set(count_pairs(l));
            ffi::lua_pushnil(l);
            while ffi::lua_next(l, -2) != 0 {
                ffi::lua_pop(l, 1);
                ffi::lua_pushvalue(l, -1);
                value(l, out, depth + 1, resp3);
            }
            return ffi::lua_pop(l, 1);
        }
        ffi::lua_pop(l, 1);
        if field(l, c"verbatim_string") == ffi::LUA_TTABLE {
            let f = field(l, c"format");
            let fmt = (f == ffi::LUA_TSTRING).then(|| bytes(l, -1).to_vec());
            ffi::lua_pop(l, 1);
            let t = field(l, c"string");
            let text = (t == ffi::LUA_TSTRING).then(|| bytes(l, -1).to_vec());
            ffi::lua_pop(l, 2);
            if let (Some(f), Some(s)) = (fmt, text) {
                if out.resp3() && f.len() == 3 {
                    out.raw(format!("={}\r\n", s.len() + 4).as_bytes());
                    out.raw(&f);
                    out.raw(b":");
                    out.raw(&s);
                    return out.raw(b"\r\n");
                }
                return out.bulk(&s);
            }
        } else {
            ffi::lua_pop(l, 1);
        }
        // An array: up to the first nil.
        let mut n = 0;
        loop {
            ffi::lua_rawgeti(l, -1, n as i64 + 1);
            let nil = ffi::lua_type(l, -1) == ffi::LUA_TNIL;
            ffi::lua_pop(l, 1);
            if nil {
                break;
            }
            n += 1;
        }
        out.array(n);
        for i in 1..=n {
            ffi::lua_rawgeti(l, -1, i as i64);
            value(l, out, depth + 1, resp3);
        }
    }
}

/// redis.acl_check_cmd(command, args...): whether the script's user may run that command with
/// those arguments (command, keys and channels, as dispatch checks them).
fn acl_check_cmd(ctx: &Ctx, lua: &Lua, a: mlua::MultiValue) -> mlua::Result<bool> {
    if a.is_empty() {
        return Err(lua_raise(lua, "ERR Please specify at least one argument for this redis lib call"));
    }
    let mut argv: Vec<Vec<u8>> = Vec::with_capacity(a.len());
    for v in a.iter() {
        match v {
            LuaValue::String(s) => argv.push(s.as_bytes().to_vec()),
            LuaValue::Integer(n) => argv.push(n.to_string().into_bytes()),
            LuaValue::Number(f) => argv.push(crate::util::fmt_g17(*f).into_bytes()),
            _ => return Err(lua_raise(lua, "ERR Lua redis lib command arguments must be strings or integers")),
        }
    }
    let refs: Vec<&[u8]> = argv.iter().map(|v| v.as_slice()).collect();
    let invalid = || lua_raise(lua, "ERR Invalid command passed to redis.acl_check_cmd()");
    let table = ctx.table;
    let mut id = table.lookup(refs[0]).ok_or_else(invalid)?;
    if !table.spec(id).subcommands.is_empty() && refs.len() > 1 {
        id = table.lookup_sub(id, refs[1]).ok_or_else(invalid)?;
    }
    Ok(super::acl::permitted(table, ctx.conn.user.as_ref(), id, &refs))
}

/// Marks an error raised by redis.call so the top level can format it as Redis does.
const MARK: char = '\u{1}';

/// redis.call / redis.pcall: runs one command inside the script's context.
fn call_command(ctx: &mut Ctx, lua: &Lua, args: Args, raise: bool, readonly: bool) -> mlua::Result<LuaValue> {
    let line = script_line(lua);
    let fail = |msg: &str| -> mlua::Result<LuaValue> {
        if raise {
            Err(mlua::Error::RuntimeError(format!("{MARK}{line}{MARK}{msg}")))
        } else {
            let t = lua.create_table()?;
            t.set("err", msg)?;
            Ok(LuaValue::Table(t))
        }
    };
    let mut argv: Vec<Vec<u8>> = Vec::with_capacity(args.len());
    for i in 1..=args.len() {
        match args.get(i).unwrap_or(LuaValue::Nil) {
            LuaValue::String(s) => argv.push(s.as_bytes().to_vec()),
            LuaValue::Integer(n) => argv.push(n.to_string().into_bytes()),
            LuaValue::Number(f) => argv.push(crate::util::fmt_g17(f).into_bytes()),
            _ => return fail("ERR Lua redis lib command arguments must be strings or integers"),
        }
    }
    if argv.is_empty() {
        return fail("ERR Please specify at least one argument for this redis lib call");
    }
    let refs: Vec<&[u8]> = argv.iter().map(|a| a.as_slice()).collect();
    let table = ctx.table;
    // A call refused here counts in errorstats, and as a rejected call of its command (Redis's
    // scriptCall).
    let refuse = |ctx: &mut Ctx, id: Option<usize>, msg: &str| {
        super::dispatch::count_nested(ctx, id, Some(format!("-{msg}\r\n").as_bytes()), true);
        fail(msg)
    };
    let Some(mut id) = table.lookup_command(refs[0]) else { return refuse(ctx, None, "ERR Unknown Redis command called from script") };
    let mut spec = table.spec(id);
    if !spec.subcommands.is_empty() && refs.len() > 1 {
        if let Some(sid) = table.lookup_sub(id, refs[1]) {
            id = sid;
            spec = table.spec(id);
        }
    }
    if !spec.arity_ok(refs.len()) {
        return refuse(ctx, Some(id), "ERR Wrong number of args calling Redis command from script");
    }
    if spec.flags & NOSCRIPT != 0 {
        return refuse(ctx, Some(id), "ERR This Redis command is not allowed from script");
    }
    if readonly && spec.is_write() {
        return refuse(ctx, Some(id), "ERR Write commands are not allowed from read-only scripts.");
    }
    // ACL: the script runs with its caller's permissions (Redis's scriptVerifyACL).
    if let Some(u) = ctx.conn.user.clone().filter(|u| !u.unrestricted.load(Ordering::Acquire)) {
        if let Some(reason) = super::acl::denied_in_script(ctx.st, table, ctx.conn, &u, id, &refs) {
            return refuse(ctx, Some(id), &format!("ERR The user executing the script {reason}"));
        }
    }
    if spec.is_write() && denied_on_replica(ctx) {
        return refuse(ctx, Some(id), READONLY_REPLICA);
    }
    // Past maxmemory, a command that may grow memory is refused inside the script (Redis's
    // scriptCall, for scripts that did not declare allow-oom).
    if spec.flags & DENYOOM != 0 && !ctx.conn.is_master && !super::evict::perform(ctx.st, ctx.now) {
        return refuse(ctx, Some(id), super::evict::OOM);
    }
    if spec.is_write() {
        scripts::WROTE.store(true, Ordering::Release);
    }
    let proto = if SCRIPT_RESP.with(|c| c.get()) == 3 { Proto::Resp3 } else { Proto::Resp2 };
    let saved = std::mem::replace(ctx.out, ReplyBuf::new(proto));
    let saved_id = ctx.cmd_id;
    ctx.cmd_id = id;
    ctx.propagate_off = SCRIPT_REPL.with(|c| c.get()) == 0;
    if spec.flags & WHOLE_KEYSPACE != 0 {
        super::multi::run_unlocked(ctx, spec, &refs);
        ctx.lock_all_stripes();
    } else {
        run_handler(ctx, spec, &refs);
    }
    super::dispatch::monitor_inner(ctx.st, ctx.conn.db, "lua", spec, &refs, false);
    ctx.propagate_off = false;
    ctx.cmd_id = saved_id;
    let reply = std::mem::replace(ctx.out, saved);
    let error = (reply.buf.first() == Some(&b'-')).then_some(reply.buf.as_slice());
    super::dispatch::count_nested(ctx, Some(id), error, false);
    if raise && reply.buf.first() == Some(&b'-') {
        let end = reply.buf.len().saturating_sub(2);
        return fail(&String::from_utf8_lossy(&reply.buf[1..end]));
    }
    Ok(reply_to_lua(lua, &reply.buf)?.0)
}

/// Formats a script failure as Redis 7.0 does: "<error> script: <sha>, on @user_script:<line>."
/// `line` is where a sandbox refusal happened (its message has no position), else 0.
fn script_error(e: &mlua::Error, sha: &str, chunk: &str, line: i64) -> String {
    // A Rust callback's error comes wrapped with a traceback: what Redis shows is its cause.
    let mut e = e;
    while let mlua::Error::CallbackError { cause, .. } = e {
        e = cause;
    }
    if let mlua::Error::MemoryError(_) = e {
        return format!(
            "ERR Error running script: not enough memory (a script's Lua heap may not pass maxmemory) script: {sha}, on @{chunk}:0."
        );
    }
    let text = e.to_string();
    if let Some(start) = text.find(MARK) {
        let rest = &text[start + 1..];
        let mut parts = rest.splitn(3, MARK);
        let line = parts.next().unwrap_or("0");
        let msg = parts.next().unwrap_or("").lines().next().unwrap_or("");
        return format!("{msg} script: {sha}, on @{chunk}:{line}.");
    }
    // A Lua runtime error: "user_script:<line>: message" (first line, before any traceback).
    // (Only the message: the traceback mlua appends names the script's lines too.)
    let tag = format!("{chunk}:");
    let text = text.split("\nstack traceback:").next().unwrap_or_default();
    let first = text.lines().find(|l| l.contains(&tag)).unwrap_or(text.lines().next().unwrap_or(""));
    let msg = first.trim().trim_start_matches("runtime error: ");
    let Some(i) = msg.find(&tag) else {
        // An error in a chunk the script loaded: Redis names that chunk's source and line.
        if let Some((source, rest)) = msg.strip_prefix("[string \"").and_then(|m| m.split_once("\"]:")) {
            let n = rest.split(':').next().unwrap_or("0");
            return format!("ERR {msg} script: {sha}, on {source}:{n}.");
        }
        return format!("ERR {msg} script: {sha}, on @{chunk}:{line}.");
    };
    let at = &msg[i..];
    let line = at.split(':').nth(1).unwrap_or("0");
    format!("ERR {at} script: {sha}, on @{chunk}:{line}.")
}

/// What a script or function is, for its error messages: "script: <sha>, on @user_script:N."
/// or "script: <name>, on @user_function:N.".
struct Origin<'a> {
    name: &'a str,
    chunk: &'a str,
    /// A FUNCTION gets KEYS and ARGV as arguments; a script gets them as globals.
    function: bool,
    /// The calling command (FUNCTION STATS shows it).
    argv: &'a [&'a [u8]],
}

/// Parses numkeys and splits KEYS from ARGV (Redis's errors when bad).
/// KEYS and ARGV of a call.
type KeysArgs<'a> = (Vec<&'a [u8]>, Vec<&'a [u8]>);

fn split_keys<'a>(ctx: &mut Ctx, argv: &[&'a [u8]]) -> Option<KeysArgs<'a>> {
    let Some(numkeys) = crate::util::parse_i64(argv[2]) else {
        ctx.out.error(NOT_INT);
        return None;
    };
    if numkeys < 0 {
        ctx.out.error("ERR Number of keys can't be negative");
        return None;
    }
    if numkeys as usize > argv.len() - 3 {
        ctx.out.error("ERR Number of keys can't be greater than number of args");
        return None;
    }
    Some((argv[3..3 + numkeys as usize].to_vec(), argv[3 + numkeys as usize..].to_vec()))
}

/// This thread's Lua state, rebuilt when SCRIPT FLUSH or a FUNCTION change made it stale.
fn with_lua<R>(ctx: &mut Ctx, f: impl FnOnce(&mut Ctx, &mut ThreadLua) -> R) -> Option<R> {
    let generation = ctx.st.scripts.generation.load(Ordering::Acquire);
    LUA.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.as_ref().is_none_or(|t| t.generation != generation) {
            match new_lua() {
                Ok(lua) => *slot = Some(ThreadLua { generation, lua, funcs: HashMap::new(), functions: None }),
                Err(e) => {
                    ctx.out.error(&format!("ERR Lua initialization failed: {e}"));
                    return None;
                }
            }
        }
        // A panic inside a script (contained by dispatch) drops this thread's Lua state: the next
        // script gets a fresh one rather than whatever the unwinding left behind.
        struct ResetOnPanic<'a>(&'a mut Option<ThreadLua>);
        impl Drop for ResetOnPanic<'_> {
            fn drop(&mut self) {
                if std::thread::panicking() {
                    *self.0 = None;
                }
            }
        }
        let guard = ResetOnPanic(&mut slot);
        Some(f(ctx, guard.0.as_mut().expect("set above")))
    })
}

/// Marks a script as running for as long as it lives (BUSY for other clients, SCRIPT KILL,
/// FUNCTION STATS), and clears the mark on every way out, a panic included: a script that
/// failed must never leave the server answering BUSY.
struct Running<'l> {
    lua: &'l Lua,
}

impl<'l> Running<'l> {
    /// None when a script is already running on this thread (a script inside EXEC's script).
    fn start(lua: &'l Lua, function: Option<&str>, argv: &[&[u8]]) -> Option<Running<'l>> {
        if scripts::RUNNING_SINCE.load(Ordering::Acquire) != 0 {
            return None;
        }
        scripts::KILL.store(false, Ordering::Release);
        scripts::WROTE.store(false, Ordering::Release);
        *scripts::RUNNING_CALL.lock() = Some((function.map(str::to_string), argv.iter().map(|a| a.to_vec()).collect()));
        scripts::RUNNING_WORKER.store(scripts::WORKER.with(|w| w.get()), Ordering::Release);
        scripts::RUNNING_SINCE.store(crate::util::now_ms().max(1), Ordering::Release);
        // SCRIPT KILL: a hook checks the request every 10k instructions.
        lua.set_hook(mlua::HookTriggers { every_nth_instruction: Some(10_000), ..Default::default() }, kill_hook);
        Some(Running { lua })
    }
}

/// Raises the kill error once SCRIPT KILL asked for it, and from then on at every instruction
/// (as Redis's hook does at every line), so a script's own pcall cannot swallow it and go on.
fn kill_hook(lua: &Lua, dbg: mlua::Debug) -> mlua::Result<mlua::VmState> {
    if !scripts::KILL.load(Ordering::Acquire) {
        return Ok(mlua::VmState::Continue);
    }
    lua.set_hook(mlua::HookTriggers { every_nth_instruction: Some(1), ..Default::default() }, kill_hook);
    let line = dbg.curr_line();
    Err(mlua::Error::RuntimeError(format!("{MARK}{line}{MARK}ERR Script killed by user with SCRIPT KILL...")))
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.lua.remove_hook();
        *scripts::RUNNING_CALL.lock() = None;
        scripts::RUNNING_SINCE.store(0, Ordering::Release);
        scripts::RUNNING_WORKER.store(usize::MAX, Ordering::Release);
    }
}

/// The Lua heap a script may use: `maxmemory` when set (a script that allocates without bound
/// fails with "not enough memory" instead of taking the process past the limit), else unbounded.
fn lua_memory_limit(ctx: &Ctx, lua: &Lua) {
    let max = ctx.st.config.hot.maxmemory.load(Ordering::Relaxed).max(0) as usize;
    let _ = lua.set_memory_limit(max);
}

/// Runs a compiled script or function body with KEYS/ARGV (as globals for scripts, as arguments
/// for functions) under every stripe lock, and replies its result.
fn execute(ctx: &mut Ctx, lua: &Lua, f: &Function, keys: &[&[u8]], args: &[&[u8]], readonly: bool, origin: Origin) {
    let as_function = origin.function;
    // Atomic against everyone: every stripe, in order (an EXEC holding a script has them all).
    ctx.lock_all_stripes();
    let mk = |items: &[&[u8]]| -> mlua::Result<Table> {
        let t = lua.create_table()?;
        for (i, k) in items.iter().enumerate() {
            t.raw_set(i + 1, lua.create_string(k)?)?;
        }
        Ok(t)
    };
    let (Ok(kt), Ok(at)) = (mk(keys), mk(args)) else { return ctx.out.error("ERR out of memory") };
    let Ok(g) = lua.named_registry_value::<Table>(GLOBALS_KEY) else { return ctx.out.error("ERR Lua state without its globals") };
    if !as_function {
        let _ = g.raw_set("KEYS", kt.clone());
        let _ = g.raw_set("ARGV", at.clone());
    }
    let was_denying = std::mem::replace(&mut ctx.conn.deny_blocking, true);
    let was_in_script = std::mem::replace(&mut ctx.conn.in_script, true);
    // A SELECT inside the script selects for the script only (Redis restores the caller's db).
    let was_db = ctx.conn.db;
    // Inside EXEC the transaction's capture collects the script's effects too.
    let nested = ctx.capture.is_some();
    if !nested {
        ctx.capture = Some(Vec::new());
    }
    // SCRIPT KILL support: other clients see BUSY past busy-reply-threshold (dispatch) and may
    // ask this script to stop.
    let running = Running::start(lua, as_function.then_some(origin.name), origin.argv);
    lua_memory_limit(ctx, lua);
    SCRIPT_RESP.with(|c| c.set(2));
    SCRIPT_REPL.with(|c| c.set(3));
    let imp: Option<Table> = lua.named_registry_value(IMPL_KEY).ok();
    if let Some(t) = &imp {
        let _ = t.raw_set("readonly_line", LuaValue::Nil);
    }
    let cell = RefCell::new(&mut *ctx);
    let result: mlua::Result<LuaValue> = lua.scope(|scope| {
        let Some(imp) = imp.clone() else { return Err(mlua::Error::RuntimeError("ERR Lua state without its libraries".into())) };
        let redis: Table = lua.named_registry_value(REDIS_KEY)?;
        let call = scope.create_function_mut(|lua, a: Args| call_command(&mut cell.borrow_mut(), lua, a, true, readonly))?;
        let pcall = scope.create_function_mut(|lua, a: Args| call_command(&mut cell.borrow_mut(), lua, a, false, readonly))?;
        let acl_check = scope.create_function(|lua, a: mlua::MultiValue| acl_check_cmd(&cell.borrow(), lua, a))?;
        imp.raw_set("call", call)?;
        imp.raw_set("pcall", pcall)?;
        redis.raw_set("acl_check_cmd", acl_check)?;
        let r = if as_function { f.call::<LuaValue>((kt, at)) } else { f.call::<LuaValue>(()) };
        imp.raw_set("call", LuaValue::Nil)?;
        imp.raw_set("pcall", LuaValue::Nil)?;
        redis.raw_set("acl_check_cmd", LuaValue::Nil)?;
        r
    });
    let ctx = cell.into_inner();
    drop(running);
    let _ = lua.set_memory_limit(0);
    if matches!(result, Err(mlua::Error::MemoryError(_))) {
        // What the script built is garbage now: give it back before the next script.
        let _ = lua.gc_collect();
    }
    if !nested {
        super::multi::flush_capture(ctx);
        ctx.capture = None;
    }
    ctx.conn.deny_blocking = was_denying;
    ctx.conn.in_script = was_in_script;
    ctx.conn.db = was_db;
    ctx.conn.info.db.store(was_db, Ordering::Relaxed);
    match result {
        Ok(v) => lua_to_reply(lua, ctx.out, v),
        Err(e) => {
            let line = imp.as_ref().and_then(|t| t.raw_get::<Option<i64>>("readonly_line").ok().flatten()).unwrap_or(0);
            let msg = script_error(&e, origin.name, origin.chunk, line);
            ctx.out.error(&msg)
        }
    }
}

fn compile_error(e: &mlua::Error) -> String {
    let msg = match e {
        mlua::Error::SyntaxError { message, .. } => message.clone(),
        other => other.to_string(),
    };
    format!("ERR Error compiling script (new function): {msg}")
}

fn run_script(ctx: &mut Ctx, argv: &[&[u8]], sha: String, body: Option<&[u8]>, readonly: bool) {
    let Some((keys, args)) = split_keys(ctx, argv) else { return };
    let body: std::sync::Arc<Vec<u8>> = match body {
        Some(b) => {
            let arc = std::sync::Arc::new(b.to_vec());
            ctx.st.scripts.bodies.lock().entry(sha.clone()).or_insert(arc).clone()
        }
        None => match ctx.st.scripts.bodies.lock().get(&sha) {
            Some(b) => b.clone(),
            None => return ctx.out.error("NOSCRIPT No matching script. Please use EVAL."),
        },
    };
    with_lua(ctx, |ctx, tl| {
        let f = match tl.funcs.get(&sha) {
            Some(f) => f.clone(),
            None => match tl.lua.load(&body[..]).set_name("@user_script").into_function() {
                Ok(f) => {
                    tl.funcs.insert(sha.clone(), f.clone());
                    f
                }
                Err(e) => return ctx.out.error(&compile_error(&e)),
            },
        };
        execute(ctx, &tl.lua, &f, &keys, &args, readonly, Origin { name: &sha, chunk: "user_script", function: false, argv })
    });
}

// ---------------------------------------------------------------- FUNCTION / FCALL

/// Runs a library's code with `redis.register_function` collecting its functions
/// (name, body, no-writes). The `#!lua name=...` line is blanked so line numbers stay true.
fn load_library(lua: &Lua, code: &[u8]) -> Result<Vec<(String, Function, bool)>, String> {
    let body_start = code.iter().position(|&c| c == b'\n').unwrap_or(code.len());
    let mut src = b"\n".to_vec();
    src.extend_from_slice(code.get(body_start + 1..).unwrap_or_default());
    let found: RefCell<Vec<(String, Function, bool)>> = RefCell::new(Vec::new());
    let redis: Table = lua.named_registry_value(REDIS_KEY).map_err(|e| e.to_string())?;
    let r = lua.scope(|scope| {
        let reg = scope.create_function(|_, a: mlua::MultiValue| {
            let (name, cb, no_writes) = match (a.front(), a.get(1)) {
                (Some(LuaValue::String(n)), Some(LuaValue::Function(f))) => (n.to_string_lossy(), f.clone(), false),
                (Some(LuaValue::Table(t)), None) => {
                    let n: String = t.get("function_name")?;
                    let f: Function = t.get("callback")?;
                    let flags: Option<Table> = t.get("flags")?;
                    let nw = flags.is_some_and(|fl| fl.sequence_values::<String>().any(|v| v.is_ok_and(|v| v == "no-writes")));
                    (n, f, nw)
                }
                _ => return Err(mlua::Error::RuntimeError("wrong arguments to redis.register_function".into())),
            };
            found.borrow_mut().push((name, cb, no_writes));
            Ok(())
        })?;
        redis.raw_set("register_function", reg)?;
        let r = lua.load(&src[..]).set_name("@user_function").exec();
        redis.raw_set("register_function", LuaValue::Nil)?;
        r
    });
    match r {
        Ok(()) => Ok(found.into_inner()),
        Err(mlua::Error::SyntaxError { message, .. }) => Err(format!("ERR Error compiling function: {message}")),
        Err(e) => {
            let t = e.to_string();
            let line = t.lines().find(|l| l.contains("user_function:")).unwrap_or(t.lines().next().unwrap_or(""));
            let at = line.find("user_function:").map_or(line, |i| &line[i..]);
            Err(format!("ERR Error registering functions: ERR {at}"))
        }
    }
}

/// A library's name and its compiled function list, from its code ("#!lua name=..." first).
fn parse_library(code: &[u8]) -> Result<(String, Library), String> {
    let first = code.split(|&c| c == b'\n').next().unwrap_or_default();
    let first = String::from_utf8_lossy(first);
    let Some(meta) = first.strip_prefix("#!") else { return Err("ERR Missing library metadata".into()) };
    let mut parts = meta.split_whitespace();
    let engine = parts.next().unwrap_or_default();
    if !engine.eq_ignore_ascii_case("lua") {
        return Err(format!("ERR Engine '{engine}' not found"));
    }
    let Some(name) = parts.find_map(|p| p.strip_prefix("name=")).map(String::from) else {
        return Err("ERR Library name was not given".into());
    };
    let found = new_lua().map_err(|e| e.to_string()).and_then(|lua| load_library(&lua, code))?;
    if found.is_empty() {
        return Err("ERR No functions registered".into());
    }
    Ok((name, Library { code: code.to_vec(), functions: found.iter().map(|(n, _, w)| (n.clone(), *w)).collect() }))
}

/// Adds a library to `libs`: refused when its name exists (unless `replace`) or when one of its
/// functions belongs to another library. (FUNCTION LOAD quotes the name in its error, FUNCTION
/// RESTORE does not.)
fn install_library(
    libs: &mut std::collections::BTreeMap<String, Library>,
    name: String,
    lib: Library,
    replace: bool,
    restoring: bool,
) -> Result<(), String> {
    if libs.contains_key(&name) && !replace {
        return Err(if restoring { format!("ERR Library {name} already exists") } else { format!("ERR Library '{name}' already exists") });
    }
    for (f, _) in &lib.functions {
        if libs.iter().any(|(ln, l)| *ln != name && l.functions.iter().any(|(n, _)| n == f)) {
            return Err(format!("ERR Function {f} already exists"));
        }
    }
    libs.insert(name, lib);
    Ok(())
}

fn function_load(ctx: &mut Ctx, argv: &[&[u8]]) {
    let (replace, code) = match argv.len() {
        3 => (false, argv[2]),
        4 if eq(argv[2], "replace") => (true, argv[3]),
        _ => return ctx.out.error("ERR Unknown option given: REPLACE"),
    };
    let (name, lib) = match parse_library(code) {
        Ok(x) => x,
        Err(e) => return ctx.out.error(&e),
    };
    if let Err(e) = install_library(&mut ctx.st.scripts.libraries.lock(), name.clone(), lib, replace, false) {
        return ctx.out.error(&e);
    }
    ctx.st.scripts.generation.fetch_add(1, Ordering::AcqRel);
    ctx.touched();
    ctx.out.bulk(name.as_bytes());
}

/// How FUNCTION RESTORE treats the libraries already there.
#[derive(Clone, Copy, PartialEq)]
pub enum RestorePolicy {
    Flush,
    Append,
    Replace,
}

/// Installs libraries from their codes (FUNCTION RESTORE, and an RDB's functions at startup):
/// all of them or, on any error, none.
pub fn restore_libraries(st: &crate::state::State, codes: &[Vec<u8>], policy: RestorePolicy) -> Result<(), String> {
    let mut libs = st.scripts.libraries.lock();
    let mut next = if policy == RestorePolicy::Flush { Default::default() } else { libs.clone() };
    for code in codes {
        let (name, lib) = parse_library(code)?;
        install_library(&mut next, name, lib, policy == RestorePolicy::Replace, true)?;
    }
    *libs = next;
    drop(libs);
    st.scripts.generation.fetch_add(1, Ordering::AcqRel);
    Ok(())
}

/// The FUNCTION libraries' codes, for DUMP payloads and RDB files.
pub fn library_codes(st: &crate::state::State) -> Vec<Vec<u8>> {
    st.scripts.libraries.lock().values().map(|l| l.code.clone()).collect()
}

fn function_dump(ctx: &mut Ctx, _argv: &[&[u8]]) {
    let compress = ctx.st.config.get("rdbcompression").is_none_or(|v| v == "yes");
    let mut body = Vec::new();
    for code in library_codes(ctx.st) {
        rdb::file::put_function(&mut body, &code, compress);
    }
    ctx.out.bulk(&rdb::dump::seal(body));
}

fn function_restore(ctx: &mut Ctx, argv: &[&[u8]]) {
    let policy = match argv.get(3) {
        None => RestorePolicy::Append,
        Some(p) if eq(p, "flush") => RestorePolicy::Flush,
        Some(p) if eq(p, "append") => RestorePolicy::Append,
        Some(p) if eq(p, "replace") => RestorePolicy::Replace,
        Some(_) => return ctx.out.error("ERR Wrong restore policy given, value should be either FLUSH, APPEND or REPLACE."),
    };
    if argv.len() > 4 {
        return ctx.out.error("ERR Wrong restore policy given, value should be either FLUSH, APPEND or REPLACE.");
    }
    let Some(body) = rdb::dump::open(argv[2]) else { return ctx.out.error("ERR DUMP payload version or checksum are wrong") };
    let codes = match rdb::dump::functions(body) {
        Ok(c) => c,
        Err(e) => return ctx.out.error(&format!("ERR {}", e.msg)),
    };
    if let Err(e) = restore_libraries(ctx.st, &codes, policy) {
        return ctx.out.error(&e);
    }
    ctx.touched();
    ctx.out.ok();
}

fn function_delete(ctx: &mut Ctx, argv: &[&[u8]]) {
    let name = String::from_utf8_lossy(argv[2]).into_owned();
    if ctx.st.scripts.libraries.lock().remove(&name).is_none() {
        return ctx.out.error("ERR Library not found");
    }
    ctx.st.scripts.generation.fetch_add(1, Ordering::AcqRel);
    ctx.touched();
    ctx.out.ok();
}

fn function_flush(ctx: &mut Ctx, argv: &[&[u8]]) {
    if argv.len() > 3 || argv.get(2).is_some_and(|a| !eq(a, "sync") && !eq(a, "async")) {
        return ctx.out.error("ERR FUNCTION FLUSH only supports SYNC|ASYNC option");
    }
    ctx.st.scripts.libraries.lock().clear();
    ctx.st.scripts.generation.fetch_add(1, Ordering::AcqRel);
    ctx.touched();
    ctx.out.ok();
}

fn function_list(ctx: &mut Ctx, argv: &[&[u8]]) {
    let (mut pattern, mut withcode) = (None, false);
    let mut i = 2;
    while i < argv.len() {
        if eq(argv[i], "withcode") {
            withcode = true;
        } else if eq(argv[i], "libraryname") && i + 1 < argv.len() {
            pattern = Some(argv[i + 1]);
            i += 1;
        } else {
            return ctx.out.error(&format!("ERR Unknown argument {}", String::from_utf8_lossy(argv[i])));
        }
        i += 1;
    }
    let libs: Vec<(String, Library)> = ctx
        .st
        .scripts
        .libraries
        .lock()
        .iter()
        .filter(|(n, _)| pattern.is_none_or(|p| crate::util::glob_match(p, n.as_bytes(), false)))
        .map(|(n, l)| (n.clone(), l.clone()))
        .collect();
    let out = &mut *ctx.out;
    out.array(libs.len());
    for (name, lib) in libs {
        out.map(if withcode { 4 } else { 3 });
        out.bulk(b"library_name");
        out.bulk(name.as_bytes());
        out.bulk(b"engine");
        out.bulk(b"LUA");
        out.bulk(b"functions");
        out.array(lib.functions.len());
        for (f, no_writes) in &lib.functions {
            out.map(3);
            out.bulk(b"name");
            out.bulk(f.as_bytes());
            out.bulk(b"description");
            out.null();
            out.bulk(b"flags");
            out.set(*no_writes as usize);
            if *no_writes {
                out.simple(b"no-writes");
            }
        }
        if withcode {
            out.bulk(b"library_code");
            out.bulk(&lib.code);
        }
    }
}

const READONLY_REPLICA: &str = "READONLY You can't write against a read only replica.";

/// A read-only replica's clients may not write, from a script either (its master's stream may).
fn denied_on_replica(ctx: &Ctx) -> bool {
    ctx.st.repl.is_replica() && !ctx.conn.is_master && ctx.st.config.hot.replica_read_only.load(Ordering::Relaxed)
}

fn fcall_generic(ctx: &mut Ctx, argv: &[&[u8]], readonly: bool) {
    let fname = String::from_utf8_lossy(argv[1]).into_owned();
    let no_writes = {
        let libs = ctx.st.scripts.libraries.lock();
        libs.values().flat_map(|l| l.functions.iter()).find(|(n, _)| *n == fname).map(|(_, w)| *w)
    };
    let Some(no_writes) = no_writes else { return ctx.out.error("ERR Function not found") };
    if readonly && !no_writes {
        return ctx.out.error("ERR Can not execute a script with write flag using *_ro command.");
    }
    if !no_writes && denied_on_replica(ctx) {
        return ctx.out.error(READONLY_REPLICA);
    }
    let Some((keys, args)) = split_keys(ctx, argv) else { return };
    let libs: Vec<Library> = ctx.st.scripts.libraries.lock().values().cloned().collect();
    with_lua(ctx, |ctx, tl| {
        if tl.functions.is_none() {
            let mut all = HashMap::new();
            for lib in &libs {
                if let Ok(found) = load_library(&tl.lua, &lib.code) {
                    all.extend(found.into_iter().map(|(n, f, _)| (n, f)));
                }
            }
            tl.functions = Some(all);
        }
        let Some(f) = tl.functions.as_ref().and_then(|m| m.get(&fname)).cloned() else {
            return ctx.out.error("ERR Function not found");
        };
        execute(
            ctx,
            &tl.lua,
            &f,
            &keys,
            &args,
            readonly || no_writes,
            Origin { name: &fname, chunk: "user_function", function: true, argv },
        )
    });
}

fn fcall(ctx: &mut Ctx, argv: &[&[u8]]) {
    fcall_generic(ctx, argv, false)
}
fn fcall_ro(ctx: &mut Ctx, argv: &[&[u8]]) {
    fcall_generic(ctx, argv, true)
}

fn eval(ctx: &mut Ctx, argv: &[&[u8]]) {
    run_script(ctx, argv, sha1hex(argv[1]), Some(argv[1]), false)
}
fn eval_ro(ctx: &mut Ctx, argv: &[&[u8]]) {
    run_script(ctx, argv, sha1hex(argv[1]), Some(argv[1]), true)
}
fn evalsha(ctx: &mut Ctx, argv: &[&[u8]]) {
    run_script(ctx, argv, String::from_utf8_lossy(argv[1]).to_ascii_lowercase(), None, false)
}
fn evalsha_ro(ctx: &mut Ctx, argv: &[&[u8]]) {
    run_script(ctx, argv, String::from_utf8_lossy(argv[1]).to_ascii_lowercase(), None, true)
}

fn script_load(ctx: &mut Ctx, argv: &[&[u8]]) {
    let sha = sha1hex(argv[2]);
    // Compile it now so a syntax error is reported at load time, as Redis does.
    if let Err(e) = Lua::new().load(argv[2]).set_name("@user_script").into_function() {
        return ctx.out.error(&compile_error(&e));
    }
    ctx.st.scripts.bodies.lock().insert(sha.clone(), std::sync::Arc::new(argv[2].to_vec()));
    ctx.out.bulk(sha.as_bytes());
}

fn script_exists(ctx: &mut Ctx, argv: &[&[u8]]) {
    let have: Vec<bool> = {
        let b = ctx.st.scripts.bodies.lock();
        argv[2..].iter().map(|s| b.contains_key(&String::from_utf8_lossy(s).to_ascii_lowercase())).collect()
    };
    ctx.out.array(have.len());
    for h in have {
        ctx.out.int(h as i64);
    }
}

fn script_flush(ctx: &mut Ctx, argv: &[&[u8]]) {
    if argv.len() > 3 || argv.get(2).is_some_and(|a| !eq(a, "sync") && !eq(a, "async")) {
        return ctx.out.error("ERR SCRIPT FLUSH only support SYNC|ASYNC option");
    }
    ctx.st.scripts.bodies.lock().clear();
    ctx.st.scripts.generation.fetch_add(1, Ordering::AcqRel);
    ctx.out.ok();
}

/// SCRIPT KILL / FUNCTION KILL: runs without stripe locks (no keys), so it reaches a script
/// that holds them all.
fn script_kill(ctx: &mut Ctx, _argv: &[&[u8]]) {
    if scripts::RUNNING_SINCE.load(Ordering::Acquire) == 0 {
        return ctx.out.error("NOTBUSY No scripts in execution right now.");
    }
    if scripts::WROTE.load(Ordering::Acquire) {
        return ctx.out.error(
            "UNKILLABLE Sorry the script already executed write commands against the dataset. You can either wait the script termination or kill the server in a hard way using the SHUTDOWN NOSAVE command.",
        );
    }
    scripts::KILL.store(true, Ordering::Release);
    ctx.out.ok();
}

/// SCRIPT DEBUG: ferrodis has no Lua debugger (LDB). NO is accepted (it is the state every
/// connection is in); YES and SYNC are refused with an error saying so, rather than answering
/// OK and then running the next script without the debugging session the client asked for.
fn script_debug(ctx: &mut Ctx, argv: &[&[u8]]) {
    let mode = argv[2].to_ascii_lowercase();
    match mode.as_slice() {
        b"no" => ctx.out.ok(),
        b"yes" | b"sync" => ctx.out.error("ERR SCRIPT DEBUG is not supported: this server has no Lua debugger"),
        _ => ctx.out.error("ERR Use SCRIPT DEBUG YES/SYNC/NO"),
    }
}

fn script_help(ctx: &mut Ctx, _argv: &[&[u8]]) {
    super::reply_help(
        ctx,
        &[
            "SCRIPT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "DEBUG (YES|SYNC|NO)",
            "    Set the debug mode for subsequent scripts executed.",
            "EXISTS <sha1> [<sha1> ...]",
            "    Return information about the existence of the scripts in the script cache.",
            "FLUSH [ASYNC|SYNC]",
            "    Flush the Lua scripts cache. Very dangerous on replicas.",
            "    When called without the optional mode argument, the behavior is determined by the",
            "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
            "    * ASYNC: Asynchronously flush the scripts cache.",
            "    * SYNC: Synchronously flush the scripts cache.",
            "KILL",
            "    Kill the currently executing Lua script.",
            "LOAD <script>",
            "    Load a script into the scripts cache without executing it.",
            "HELP",
            "    Print this help.",
        ],
    );
}
