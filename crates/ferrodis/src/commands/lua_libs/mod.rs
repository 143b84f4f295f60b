//! The libraries Redis's Lua ships that scripts rely on: `bit` (LuaBitOp: 32-bit integer
//! operations) and `cjson` (JSON in lua-cjson's format: `%.14g` numbers, `\/` escaped, empty
//! tables as `{}`, sparse arrays refused as lua-cjson refuses them), and in their own files
//! `cmsgpack` (MessagePack) and `struct` (binary packing).

use mlua::{ffi, Function, Lua, MultiValue, Table, Value};
use std::cell::RefCell;
use std::ffi::c_int;

mod cjson;
mod cmsgpack;
mod structlib;

thread_local! {
    /// Where the Lua code that called the running wrapped function is (see `Where`).
    static WHERE: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// The calling code's place as luaL_where prints it ("user_script:3: ", or "" for a C caller
/// such as pcall), which a trampoline (below) passes as the first argument of the Rust function
/// it calls: that function is two frames away from the script, and a script's `return f(...)`
/// may have replaced its own frame (a tail call), so only the trampoline can still see it. While
/// a `Where` lives, errors raised from the libraries use it.
pub struct Where {
    prev: Option<String>,
}

impl mlua::FromLua for Where {
    fn from_lua(v: Value, _: &Lua) -> mlua::Result<Self> {
        let at = match v {
            Value::String(s) => s.to_string_lossy(),
            _ => String::new(),
        };
        Ok(Where { prev: WHERE.with(|w| w.replace(Some(at))) })
    }
}

impl Drop for Where {
    fn drop(&mut self) {
        WHERE.with(|w| *w.borrow_mut() = self.prev.take());
    }
}

/// The line of the script code calling the running library function or redis.call (0 when a C
/// function such as pcall made the call).
pub fn calling_line(lua: &Lua) -> i64 {
    let at = caller(lua);
    at.trim_end_matches(": ").rsplit(':').next().and_then(|n| n.parse().ok()).unwrap_or(0)
}

/// Where the calling Lua code is, as luaL_where prints it ("user_script:3: "), for errors raised
/// from these libraries.
fn caller(lua: &Lua) -> String {
    if let Some(at) = WHERE.with(|w| w.borrow().clone()) {
        return at;
    }
    lua.inspect_stack(1)
        .filter(|d| d.curr_line() > 0)
        .map(|d| format!("{}:{}: ", d.source().short_src.as_deref().unwrap_or("?"), d.curr_line()))
        .unwrap_or_default()
}

/// Arguments a trampoline (`args_as_table`) packed as `where, select('#', ...), {...}`: read one
/// at a time, so that a call with thousands of arguments (an `unpack` of a big table, as Redis
/// allows up to Lua's stack limit) never holds thousands of mlua references at once (mlua
/// panics past ~8000).
pub struct Args {
    _at: Where,
    n: usize,
    t: Table,
}

impl mlua::FromLuaMulti for Args {
    fn from_lua_multi(values: MultiValue, lua: &Lua) -> mlua::Result<Self> {
        let (at, n, t) = <(Where, usize, Table)>::from_lua_multi(values, lua)?;
        Ok(Args { _at: at, n, t })
    }
}

impl Args {
    pub fn len(&self) -> usize {
        self.n
    }
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }
    /// Argument `i` (1-based); None past the end.
    pub fn get(&self, i: usize) -> Option<Value> {
        (i >= 1 && i <= self.n).then(|| self.t.raw_get::<Value>(i).unwrap_or(Value::Nil))
    }
}

/// Results a trampoline (`results_from_table`) returns as `t[1..n]`: values go into a table one
/// at a time.
pub struct Results {
    n: usize,
    t: Table,
}

impl Results {
    pub fn new(lua: &Lua) -> mlua::Result<Results> {
        Ok(Results { n: 0, t: lua.create_table()? })
    }
    pub fn len(&self) -> usize {
        self.n
    }
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }
    pub fn push(&mut self, v: Value) -> mlua::Result<()> {
        self.n += 1;
        self.t.raw_set(self.n, v)
    }
    pub fn set_first(&mut self, v: Value) -> mlua::Result<()> {
        self.t.raw_set(1, v)
    }
    pub fn pop(&mut self) -> mlua::Result<Option<Value>> {
        if self.n == 0 {
            return Ok(None);
        }
        let v = self.t.raw_get::<Value>(self.n)?;
        self.t.raw_set(self.n, Value::Nil)?;
        self.n -= 1;
        Ok(Some(v))
    }
}

impl mlua::IntoLuaMulti for Results {
    fn into_lua_multi(self, lua: &Lua) -> mlua::Result<MultiValue> {
        (self.n, self.t).into_lua_multi(lua)
    }
}

/// A C function (closure over a table and a key) that calls `table[key]` with
/// `(where, n, {args...})`. C, not Lua: a C function keeps the caller's frame even when called
/// in tail position, so `where` is the script's line as in Redis.
unsafe extern "C-unwind" fn args_as_table(l: *mut ffi::lua_State) -> c_int {
    let n = ffi::lua_gettop(l);
    ffi::lua_pushvalue(l, ffi::lua_upvalueindex(1));
    ffi::lua_pushvalue(l, ffi::lua_upvalueindex(2));
    ffi::lua_rawget(l, -2);
    ffi::lua_remove(l, -2);
    ffi::luaL_where(l, 1);
    ffi::lua_pushinteger(l, n as ffi::lua_Integer);
    ffi::lua_createtable(l, n, 0);
    for i in 1..=n {
        ffi::lua_pushvalue(l, i);
        ffi::lua_rawseti_(l, -2, i);
    }
    ffi::lua_call(l, 3, ffi::LUA_MULTRET);
    ffi::lua_gettop(l) - n
}

/// A C function (closure over a table and a key) that calls `table[key]` with `(where, args...)`
/// and returns `t[1..n]` of the `(n, t)` it gets back.
unsafe extern "C-unwind" fn results_from_table(l: *mut ffi::lua_State) -> c_int {
    let n = ffi::lua_gettop(l);
    ffi::lua_pushvalue(l, ffi::lua_upvalueindex(1));
    ffi::lua_pushvalue(l, ffi::lua_upvalueindex(2));
    ffi::lua_rawget(l, -2);
    ffi::lua_remove(l, -2);
    ffi::lua_insert(l, 1);
    ffi::luaL_where(l, 1);
    ffi::lua_insert(l, 2);
    ffi::lua_call(l, n + 1, 2);
    let count = ffi::lua_tointegerx(l, -2, std::ptr::null_mut()).max(0) as c_int;
    let t = ffi::lua_gettop(l);
    if count > 0 && ffi::lua_checkstack(l, count) == 0 {
        return ffi::luaL_error(l, c"too many results to unpack".as_ptr());
    }
    for i in 1..=count {
        ffi::lua_rawgeti(l, t, i as ffi::lua_Integer);
    }
    count
}

/// The bytes of the string (or number) at stack index `idx`, borrowed from Lua.
///
/// # Safety
/// `l` is a live Lua state and the value stays on the stack while the slice is used.
pub unsafe fn lua_bytes<'a>(l: *mut ffi::lua_State, idx: i32) -> &'a [u8] {
    let mut len = 0usize;
    let p = ffi::lua_tolstring(l, idx, &mut len);
    if p.is_null() {
        return &[];
    }
    std::slice::from_raw_parts(p as *const u8, len)
}

/// `table[name]` becomes a trampoline to `imp[key]`.
fn set_trampoline(lua: &Lua, table: &Table, name: &str, imp: &Table, key: &str, f: ffi::lua_CFunction) -> mlua::Result<()> {
    // SAFETY: exec_raw pushes (imp, key); lua_pushcclosure takes both as upvalues and leaves the
    // closure, which is the one result.
    let func = unsafe { lua.exec_raw::<Function>((imp.clone(), key), |l| ffi::lua_pushcclosure(l, f, 2))? };
    table.raw_set(name, func)
}

/// luaL_error from a library function.
fn lua_error(lua: &Lua, msg: &str) -> mlua::Error {
    mlua::Error::RuntimeError(format!("{}{msg}", caller(lua)))
}

/// luaL_argerror: "bad argument #n to 'name' (msg)".
fn arg_error(lua: &Lua, n: usize, name: &str, msg: &str) -> mlua::Error {
    lua_error(lua, &format!("bad argument #{n} to '{name}' ({msg})"))
}

/// A value's Lua type name; a missing argument reads as nil (Redis's Lua says "got nil" there).
fn type_name(v: Option<&Value>) -> &'static str {
    match v {
        None | Some(Value::Nil) => "nil",
        Some(Value::Boolean(_)) => "boolean",
        Some(Value::Integer(_) | Value::Number(_)) => "number",
        Some(Value::String(_)) => "string",
        Some(Value::Table(_)) => "table",
        Some(Value::Function(_)) => "function",
        Some(Value::Thread(_)) => "thread",
        Some(_) => "userdata",
    }
}

fn tobit(v: f64) -> i32 {
    // LuaBitOp normalises through a 2^52+2^51 addition: integers wrap modulo 2^32.
    (v as i64) as i32
}

/// Installs the libraries (and the `redis.call`/`redis.pcall` wrappers: the `redis` table must
/// exist) and returns the private table the wrappers call into; `call` and `pcall` are set in
/// it while a script runs.
pub fn install(lua: &Lua) -> mlua::Result<Table> {
    let bit = lua.create_table()?;
    // LuaBitOp's argument checks: luaL_checknumber, with its "bad argument" errors.
    let unary = |name: &'static str, f: fn(i32) -> i32| lua.create_function(move |lua, a: MultiValue| Ok(f(bit_arg(lua, &a, 1, name)?)));
    let shift = |name: &'static str, f: fn(i32, u32) -> i32| {
        lua.create_function(move |lua, a: MultiValue| Ok(f(bit_arg(lua, &a, 1, name)?, (bit_arg(lua, &a, 2, name)? & 31) as u32)))
    };
    let fold = |name: &'static str, f: fn(i32, i32) -> i32| {
        lua.create_function(move |lua, a: MultiValue| {
            let mut acc = bit_arg(lua, &a, 1, name)?;
            for i in 2..=a.len() {
                acc = f(acc, bit_arg(lua, &a, i, name)?);
            }
            Ok(acc)
        })
    };
    bit.set("tobit", unary("tobit", |x| x)?)?;
    bit.set("bnot", unary("bnot", |x| !x)?)?;
    bit.set("bswap", unary("bswap", i32::swap_bytes)?)?;
    bit.set("band", fold("band", |x, y| x & y)?)?;
    bit.set("bor", fold("bor", |x, y| x | y)?)?;
    bit.set("bxor", fold("bxor", |x, y| x ^ y)?)?;
    bit.set("lshift", shift("lshift", |x, n| ((x as u32) << n) as i32)?)?;
    bit.set("rshift", shift("rshift", |x, n| ((x as u32) >> n) as i32)?)?;
    bit.set("arshift", shift("arshift", |x, n| x >> n)?)?;
    bit.set("rol", shift("rol", |x, n| (x as u32).rotate_left(n) as i32)?)?;
    bit.set("ror", shift("ror", |x, n| (x as u32).rotate_right(n) as i32)?)?;
    bit.set(
        "tohex",
        lua.create_function(|_, (x, n): (f64, Option<f64>)| {
            let n = n.map_or(8, tobit);
            let (upper, width) = (n < 0, n.unsigned_abs().min(8) as usize);
            let v = tobit(x) as u32 as u64;
            let s = if upper { format!("{:08X}", v) } else { format!("{:08x}", v) };
            Ok(s[8 - width..].to_string())
        })?,
    )?;
    lua.globals().raw_set("bit", bit)?;

    cjson::install(lua)?;
    let imp = lua.create_table()?;
    cmsgpack::install(lua, &imp)?;
    structlib::install(lua, &imp)?;
    // The functions that take or return many values, and redis.call/pcall, are trampolines
    // (above) to their Rust halves in `imp` (call and pcall are put there while a script runs).
    let g = lua.globals();
    let (mp, st, redis): (Table, Table, Table) = (g.raw_get("cmsgpack")?, g.raw_get("struct")?, g.raw_get("redis")?);
    set_trampoline(lua, &mp, "pack", &imp, "mp_pack", args_as_table)?;
    set_trampoline(lua, &mp, "unpack", &imp, "mp_unpack", results_from_table)?;
    set_trampoline(lua, &mp, "unpack_one", &imp, "mp_unpack_one", results_from_table)?;
    set_trampoline(lua, &mp, "unpack_limit", &imp, "mp_unpack_limit", results_from_table)?;
    set_trampoline(lua, &st, "pack", &imp, "struct_pack", args_as_table)?;
    set_trampoline(lua, &st, "unpack", &imp, "struct_unpack", results_from_table)?;
    set_trampoline(lua, &redis, "call", &imp, "call", args_as_table)?;
    set_trampoline(lua, &redis, "pcall", &imp, "pcall", args_as_table)?;
    Ok(imp)
}

/// Argument `i` (1-based) of a bit function as LuaBitOp's barg reads it: a number, or a string
/// that reads as one, normalised to 32 bits.
fn bit_arg(lua: &Lua, args: &MultiValue, i: usize, name: &str) -> mlua::Result<i32> {
    let v = args.get(i - 1);
    let n = match v {
        Some(Value::Integer(n)) => Some(*n as f64),
        Some(Value::Number(n)) => Some(*n),
        Some(Value::String(s)) => s.to_str().ok().and_then(|s| s.trim().parse::<f64>().ok()),
        _ => None,
    };
    match n {
        Some(n) => Ok(tobit(n)),
        None => {
            let got = if v.is_none() { "no value" } else { type_name(v) };
            Err(arg_error(lua, i, name, &format!("number expected, got {got}")))
        }
    }
}

pub fn fmt_num(n: f64) -> String {
    let mut buf = [0u8; 64];
    // SAFETY: the buffer holds any %.14g output and snprintf NUL-terminates.
    let len = unsafe { libc::snprintf(buf.as_mut_ptr() as *mut libc::c_char, buf.len(), c"%.14g".as_ptr(), n) };
    String::from_utf8_lossy(&buf[..len.clamp(0, 63) as usize]).into_owned()
}
