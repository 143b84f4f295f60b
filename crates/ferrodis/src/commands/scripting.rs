//! Lua scripting (Redis's eval.c / script_lua.c) on Lua 5.1 through `mlua`: EVAL, EVALSHA,
//! EVAL_RO, EVALSHA_RO, SCRIPT LOAD|EXISTS|FLUSH|KILL, and the `redis` library (call, pcall,
//! error_reply, status_reply, sha1hex, log).
//!
//! Each worker thread has its own Lua state (mlua's `Lua` is not `Send`); the script bodies are
//! shared in `State::scripts` and compiled into a thread's state on first use. A script holds all
//! 256 stripe locks (taken in order) while it runs, so it is atomic against every other client
//! whatever keys it touches, and its effects go to the journal as one MULTI ... EXEC block.

use super::dispatch::run_handler;
use super::table::{cmd, container, flag::*, CommandSpec, Keys, NO_KEYS};
use super::{eq, Ctx, NOT_INT};
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
    cmd("help", 2, LOADING | STALE, "@slow @scripting", NO_KEYS, script_help),
];

pub static COMMANDS: &[CommandSpec] = &[
    cmd("eval", -3, SCRIPT_FLAGS, "@slow @scripting", EVAL_KEYS, eval),
    cmd("evalsha", -3, SCRIPT_FLAGS, "@slow @scripting", EVAL_KEYS, evalsha),
    cmd("eval_ro", -3, SCRIPT_FLAGS | READONLY, "@slow @scripting", EVAL_KEYS, eval_ro),
    cmd("evalsha_ro", -3, SCRIPT_FLAGS | READONLY, "@slow @scripting", EVAL_KEYS, evalsha_ro),
    container("script", -2, "@slow", SCRIPT_SUBS),
];

fn sha1hex(b: &[u8]) -> String {
    sha1_smol::Sha1::from(b).digest().to_string()
}

struct ThreadLua {
    generation: u64,
    lua: Lua,
    funcs: HashMap<String, Function>,
}

thread_local! {
    static LUA: RefCell<Option<ThreadLua>> = const { RefCell::new(None) };
}

/// The Lua prelude: the sandbox (a read-only global table that refuses unknown names) is set
/// after the libraries and the `redis` table exist.
const PRELUDE: &str = r#"
local readonly = function(t, k, v) error("Attempt to modify a readonly table", 2) end
local missing = function(t, k) error("Script attempted to access nonexistent global variable '" .. tostring(k) .. "'", 2) end
setmetatable(_G, { __newindex = readonly, __index = missing })
"#;

fn new_lua() -> mlua::Result<Lua> {
    let lua = Lua::new();
    let g = lua.globals();
    for name in ["os", "io", "loadfile", "dofile", "require", "module", "package", "debug", "print"] {
        g.raw_set(name, LuaValue::Nil)?;
    }
    let redis = lua.create_table()?;
    redis.set("sha1hex", lua.create_function(|_, s: mlua::String| Ok(sha1hex(&s.as_bytes())))?)?;
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
    for (name, v) in [("LOG_DEBUG", 0), ("LOG_VERBOSE", 1), ("LOG_NOTICE", 2), ("LOG_WARNING", 3)] {
        redis.set(name, v)?;
    }
    g.raw_set("redis", redis)?;
    lua.load(PRELUDE).set_name("@prelude").exec()?;
    Ok(lua)
}

/// A RESP2 reply (one, at the start of `b`) as Redis converts it for Lua; returns the value and
/// the bytes used. Errors become {err=...}, status replies {ok=...}, nulls false.
fn reply_to_lua(lua: &Lua, b: &[u8]) -> mlua::Result<(LuaValue, usize)> {
    let end = b.windows(2).position(|w| w == b"\r\n").unwrap_or(b.len());
    let line = &b[1..end];
    let next = end + 2;
    let num = || std::str::from_utf8(line).ok().and_then(|s| s.parse::<i64>().ok()).unwrap_or(0);
    match b.first() {
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
        Some(b'*') => {
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

/// A Lua value as Redis replies it to the client.
fn lua_to_reply(out: &mut ReplyBuf, v: &LuaValue) {
    match v {
        LuaValue::Nil => out.null(),
        LuaValue::Boolean(true) => out.int(1),
        LuaValue::Boolean(false) => out.null(),
        LuaValue::Integer(n) => out.int(*n),
        LuaValue::Number(f) => out.int(f.trunc() as i64),
        LuaValue::String(s) => out.bulk(&s.as_bytes()),
        LuaValue::Table(t) => {
            if let Ok(LuaValue::String(e)) = t.raw_get::<LuaValue>("err") {
                let e = String::from_utf8_lossy(&e.as_bytes()).into_owned();
                return out.error(&e);
            }
            if let Ok(LuaValue::String(s)) = t.raw_get::<LuaValue>("ok") {
                return out.simple(&s.as_bytes());
            }
            let mut items = Vec::new();
            let mut i = 1;
            while let Ok(v) = t.raw_get::<LuaValue>(i) {
                if v.is_nil() {
                    break;
                }
                items.push(v);
                i += 1;
            }
            out.array(items.len());
            for v in &items {
                lua_to_reply(out, v);
            }
        }
        _ => out.null(),
    }
}

/// Marks an error raised by redis.call so the top level can format it as Redis does.
const MARK: char = '\u{1}';

/// redis.call / redis.pcall: runs one command inside the script's context.
fn call_command(ctx: &mut Ctx, lua: &Lua, args: mlua::MultiValue, raise: bool, readonly: bool) -> mlua::Result<LuaValue> {
    let line = lua.inspect_stack(1).map(|d| d.curr_line()).unwrap_or(0);
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
    for a in args.iter() {
        match a {
            LuaValue::String(s) => argv.push(s.as_bytes().to_vec()),
            LuaValue::Integer(n) => argv.push(n.to_string().into_bytes()),
            LuaValue::Number(f) => argv.push(crate::util::fmt_g17(*f).into_bytes()),
            _ => return fail("ERR Lua redis lib command arguments must be strings or integers"),
        }
    }
    if argv.is_empty() {
        return fail("ERR Please specify at least one argument for this redis lib call");
    }
    let refs: Vec<&[u8]> = argv.iter().map(|a| a.as_slice()).collect();
    let table = ctx.table;
    let Some(mut id) = table.lookup(refs[0]) else { return fail("ERR Unknown Redis command called from script") };
    let mut spec = table.spec(id);
    if !spec.subcommands.is_empty() && refs.len() > 1 {
        if let Some(sid) = table.lookup_sub(id, refs[1]) {
            id = sid;
            spec = table.spec(id);
        }
    }
    if !spec.arity_ok(refs.len()) {
        return fail("ERR Wrong number of args calling Redis command from script");
    }
    if spec.flags & NOSCRIPT != 0 {
        return fail("ERR This Redis command is not allowed from script");
    }
    if readonly && spec.is_write() {
        return fail("ERR Write commands are not allowed from read-only scripts.");
    }
    let saved = std::mem::replace(ctx.out, ReplyBuf::new(Proto::Resp2));
    let saved_id = ctx.cmd_id;
    ctx.cmd_id = id;
    if spec.flags & WHOLE_KEYSPACE != 0 {
        // These lock every stripe themselves (FLUSHALL, KEYS, SCAN, ...): the script lets go of
        // its locks around the call, after sending its effects so far.
        super::multi::flush_capture(ctx);
        ctx.unlock_all();
        run_handler(ctx, spec, &refs);
        ctx.lock_all_stripes();
    } else {
        run_handler(ctx, spec, &refs);
    }
    ThreadStats::add(&ctx.ts.cmd[id].calls, 1);
    ctx.cmd_id = saved_id;
    let reply = std::mem::replace(ctx.out, saved);
    if raise && reply.buf.first() == Some(&b'-') {
        let end = reply.buf.len().saturating_sub(2);
        return fail(&String::from_utf8_lossy(&reply.buf[1..end]));
    }
    Ok(reply_to_lua(lua, &reply.buf)?.0)
}

use crate::state::ThreadStats;

/// Formats a script failure as Redis 7.0 does: "<error> script: <sha>, on @user_script:<line>."
fn script_error(e: &mlua::Error, sha: &str) -> String {
    let text = e.to_string();
    if let Some(start) = text.find(MARK) {
        let rest = &text[start + 1..];
        let mut parts = rest.splitn(3, MARK);
        let line = parts.next().unwrap_or("0");
        let msg = parts.next().unwrap_or("").lines().next().unwrap_or("");
        return format!("{msg} script: {sha}, on @user_script:{line}.");
    }
    // A Lua runtime error: "user_script:<line>: message" (first line, before any traceback).
    let first = text.lines().find(|l| l.contains("user_script:")).unwrap_or(text.lines().next().unwrap_or(""));
    let msg = first.trim().trim_start_matches("runtime error: ");
    let at = msg.find("user_script:").map_or(msg, |i| &msg[i..]);
    let line = at.split(':').nth(1).unwrap_or("0");
    format!("ERR {at} script: {sha}, on @user_script:{line}.")
}

fn run_script(ctx: &mut Ctx, argv: &[&[u8]], sha: String, body: Option<&[u8]>, readonly: bool) {
    let Some(numkeys) = crate::util::parse_i64(argv[2]) else { return ctx.out.error(NOT_INT) };
    if numkeys < 0 {
        return ctx.out.error("ERR Number of keys can't be negative");
    }
    if numkeys as usize > argv.len() - 3 {
        return ctx.out.error("ERR Number of keys can't be greater than number of args");
    }
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
    let keys: Vec<&[u8]> = argv[3..3 + numkeys as usize].to_vec();
    let args: Vec<&[u8]> = argv[3 + numkeys as usize..].to_vec();
    // Atomic against everyone: every stripe, in order (an EXEC holding a script has them all).
    ctx.lock_all_stripes();
    let generation = ctx.st.scripts.generation.load(Ordering::Acquire);
    LUA.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.as_ref().is_none_or(|t| t.generation != generation) {
            match new_lua() {
                Ok(lua) => *slot = Some(ThreadLua { generation, lua, funcs: HashMap::new() }),
                Err(e) => return ctx.out.error(&format!("ERR Lua initialization failed: {e}")),
            }
        }
        let tl = slot.as_mut().expect("set above");
        let f = match tl.funcs.get(&sha) {
            Some(f) => f.clone(),
            None => match tl.lua.load(&body[..]).set_name("@user_script").into_function() {
                Ok(f) => {
                    tl.funcs.insert(sha.clone(), f.clone());
                    f
                }
                Err(e) => {
                    let msg = match &e {
                        mlua::Error::SyntaxError { message, .. } => message.clone(),
                        other => other.to_string(),
                    };
                    return ctx.out.error(&format!("ERR Error compiling script (new function): {msg}"));
                }
            },
        };
        let lua = &tl.lua;
        let mk = |items: &[&[u8]]| -> mlua::Result<Table> {
            let t = lua.create_table()?;
            for (i, k) in items.iter().enumerate() {
                t.raw_set(i + 1, lua.create_string(k)?)?;
            }
            Ok(t)
        };
        let (Ok(kt), Ok(at)) = (mk(&keys), mk(&args)) else { return ctx.out.error("ERR out of memory") };
        let g = lua.globals();
        let _ = g.raw_set("KEYS", kt);
        let _ = g.raw_set("ARGV", at);
        let was_denying = std::mem::replace(&mut ctx.conn.deny_blocking, true);
        // Inside EXEC the transaction's capture collects the script's effects too.
        let nested = ctx.capture.is_some();
        if !nested {
            ctx.capture = Some(Vec::new());
        }
        let cell = RefCell::new(&mut *ctx);
        let result: mlua::Result<LuaValue> = lua.scope(|scope| {
            let redis: Table = g.raw_get("redis")?;
            let call =
                scope.create_function_mut(|lua, a: mlua::MultiValue| call_command(&mut cell.borrow_mut(), lua, a, true, readonly))?;
            let pcall =
                scope.create_function_mut(|lua, a: mlua::MultiValue| call_command(&mut cell.borrow_mut(), lua, a, false, readonly))?;
            redis.raw_set("call", call)?;
            redis.raw_set("pcall", pcall)?;
            let r = f.call::<LuaValue>(());
            redis.raw_set("call", LuaValue::Nil)?;
            redis.raw_set("pcall", LuaValue::Nil)?;
            r
        });
        let ctx = cell.into_inner();
        if !nested {
            super::multi::flush_capture(ctx);
            ctx.capture = None;
        }
        ctx.conn.deny_blocking = was_denying;
        match result {
            Ok(v) => lua_to_reply(ctx.out, &v),
            Err(e) => {
                let msg = script_error(&e, &sha);
                ctx.out.error(&msg)
            }
        }
    });
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
        let msg = match &e {
            mlua::Error::SyntaxError { message, .. } => message.clone(),
            other => other.to_string(),
        };
        return ctx.out.error(&format!("ERR Error compiling script (new function): {msg}"));
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

fn script_kill(ctx: &mut Ctx, _argv: &[&[u8]]) {
    // Scripts hold every stripe while they run, so no other client can be here while one runs.
    ctx.out.error("NOTBUSY No scripts in execution right now.");
}

fn script_help(ctx: &mut Ctx, _argv: &[&[u8]]) {
    super::reply_help(
        ctx,
        &[
            "SCRIPT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
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
