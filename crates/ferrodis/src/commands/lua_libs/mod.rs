//! The libraries Redis's Lua ships that scripts rely on: `bit` (LuaBitOp: 32-bit integer
//! operations) and `cjson` (JSON in lua-cjson's format: `%.14g` numbers, `\/` escaped, empty
//! tables as `{}`, sparse arrays refused as lua-cjson refuses them), and in their own files
//! `cmsgpack` (MessagePack) and `struct` (binary packing).

use mlua::{Lua, MultiValue, Table, Value};

mod cmsgpack;
mod structlib;

/// Where the calling Lua code is, as luaL_where prints it ("user_script:3: "), for errors raised
/// from these libraries.
fn caller(lua: &Lua) -> String {
    lua.inspect_stack(1)
        .filter(|d| d.curr_line() > 0)
        .map(|d| format!("{}:{}: ", d.source().short_src.as_deref().unwrap_or("?"), d.curr_line()))
        .unwrap_or_default()
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

pub fn install(lua: &Lua) -> mlua::Result<()> {
    let bit = lua.create_table()?;
    bit.set("tobit", lua.create_function(|_, x: f64| Ok(tobit(x)))?)?;
    bit.set("bnot", lua.create_function(|_, x: f64| Ok(!tobit(x)))?)?;
    bit.set("band", lua.create_function(|_, a: MultiValue| fold(a, |x, y| x & y))?)?;
    bit.set("bor", lua.create_function(|_, a: MultiValue| fold(a, |x, y| x | y))?)?;
    bit.set("bxor", lua.create_function(|_, a: MultiValue| fold(a, |x, y| x ^ y))?)?;
    bit.set("lshift", lua.create_function(|_, (x, n): (f64, f64)| Ok(((tobit(x) as u32) << (tobit(n) & 31)) as i32))?)?;
    bit.set("rshift", lua.create_function(|_, (x, n): (f64, f64)| Ok(((tobit(x) as u32) >> (tobit(n) & 31)) as i32))?)?;
    bit.set("arshift", lua.create_function(|_, (x, n): (f64, f64)| Ok(tobit(x) >> (tobit(n) & 31)))?)?;
    bit.set("rol", lua.create_function(|_, (x, n): (f64, f64)| Ok((tobit(x) as u32).rotate_left((tobit(n) & 31) as u32) as i32))?)?;
    bit.set("ror", lua.create_function(|_, (x, n): (f64, f64)| Ok((tobit(x) as u32).rotate_right((tobit(n) & 31) as u32) as i32))?)?;
    bit.set("bswap", lua.create_function(|_, x: f64| Ok(tobit(x).swap_bytes()))?)?;
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

    let cjson = lua.create_table()?;
    cjson.set(
        "encode",
        lua.create_function(|_, v: Value| {
            let mut out = Vec::new();
            encode(&v, &mut out, 0).map_err(mlua::Error::RuntimeError)?;
            Ok(mlua::BString::from(out))
        })?,
    )?;
    cjson.set(
        "decode",
        lua.create_function(|lua, s: mlua::String| {
            let j: serde_json::Value = serde_json::from_slice(&s.as_bytes())
                .map_err(|e| mlua::Error::RuntimeError(format!("Expected value but found invalid token: {e}")))?;
            to_lua(lua, &j)
        })?,
    )?;
    cjson.set("null", Value::LightUserData(mlua::LightUserData(std::ptr::null_mut())))?;
    lua.globals().raw_set("cjson", cjson)?;
    cmsgpack::install(lua)?;
    structlib::install(lua)?;
    Ok(())
}

fn fold(args: MultiValue, f: fn(i32, i32) -> i32) -> mlua::Result<i32> {
    let mut it = args.into_iter();
    let mut acc = num(it.next())?;
    for v in it {
        acc = f(acc, num(Some(v))?);
    }
    Ok(acc)
}

fn num(v: Option<Value>) -> mlua::Result<i32> {
    match v {
        Some(Value::Integer(i)) => Ok(tobit(i as f64)),
        Some(Value::Number(n)) => Ok(tobit(n)),
        Some(Value::String(s)) => {
            s.to_str()?.trim().parse::<f64>().map(tobit).map_err(|_| mlua::Error::RuntimeError("bad argument (number expected)".into()))
        }
        _ => Err(mlua::Error::RuntimeError("bad argument (number expected, got no value)".into())),
    }
}

fn fmt_num(n: f64) -> String {
    let mut buf = [0u8; 64];
    // SAFETY: the buffer holds any %.14g output and snprintf NUL-terminates.
    let len = unsafe { libc::snprintf(buf.as_mut_ptr() as *mut libc::c_char, buf.len(), c"%.14g".as_ptr(), n) };
    String::from_utf8_lossy(&buf[..len.clamp(0, 63) as usize]).into_owned()
}

fn encode_str(b: &[u8], out: &mut Vec<u8>) {
    out.push(b'"');
    for &c in b {
        match c {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'/' => out.extend_from_slice(b"\\/"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            c if c < 0x20 || c == 0x7f => out.extend_from_slice(format!("\\u{:04x}", c).as_bytes()),
            c => out.push(c),
        }
    }
    out.push(b'"');
}

fn encode(v: &Value, out: &mut Vec<u8>, depth: usize) -> Result<(), String> {
    if depth > 1000 {
        return Err("Cannot serialise, excessive nesting (1001)".into());
    }
    match v {
        Value::Nil => out.extend_from_slice(b"null"),
        Value::LightUserData(u) if u.0.is_null() => out.extend_from_slice(b"null"),
        Value::Boolean(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Integer(i) => out.extend_from_slice(fmt_num(*i as f64).as_bytes()),
        Value::Number(n) => {
            if !n.is_finite() {
                return Err("Cannot serialise number: must not be NaN or Inf".into());
            }
            out.extend_from_slice(fmt_num(*n).as_bytes())
        }
        Value::String(s) => encode_str(&s.as_bytes(), out),
        Value::Table(t) => encode_table(t, out, depth)?,
        other => return Err(format!("Cannot serialise {}: type not supported", other.type_name())),
    }
    Ok(())
}

fn encode_table(t: &Table, out: &mut Vec<u8>, depth: usize) -> Result<(), String> {
    let pairs: Vec<(Value, Value)> = t.pairs::<Value, Value>().collect::<mlua::Result<_>>().map_err(|e| e.to_string())?;
    // An array when every key is a positive integer, as lua-cjson decides.
    let mut max = 0usize;
    let mut is_array = !pairs.is_empty();
    for (k, _) in &pairs {
        let idx = match k {
            Value::Integer(i) if *i >= 1 => Some(*i as usize),
            Value::Number(n) if *n >= 1.0 && n.fract() == 0.0 => Some(*n as usize),
            _ => None,
        };
        match idx {
            Some(i) => max = max.max(i),
            None => is_array = false,
        }
    }
    if is_array {
        if max > pairs.len() * 2 && max > 10 {
            return Err("Cannot serialise table: excessively sparse array".into());
        }
        out.push(b'[');
        for i in 1..=max {
            if i > 1 {
                out.push(b',');
            }
            let v: Value = t.raw_get(i).map_err(|e| e.to_string())?;
            encode(&v, out, depth + 1)?;
        }
        out.push(b']');
        return Ok(());
    }
    out.push(b'{');
    for (n, (k, v)) in pairs.iter().enumerate() {
        if n > 0 {
            out.push(b',');
        }
        match k {
            Value::String(s) => encode_str(&s.as_bytes(), out),
            Value::Integer(i) => encode_str(fmt_num(*i as f64).as_bytes(), out),
            Value::Number(x) => encode_str(fmt_num(*x).as_bytes(), out),
            _ => return Err("Cannot serialise table: table key must be a number or string".into()),
        }
        out.push(b':');
        encode(v, out, depth + 1)?;
    }
    out.push(b'}');
    Ok(())
}

fn to_lua(lua: &Lua, j: &serde_json::Value) -> mlua::Result<Value> {
    Ok(match j {
        serde_json::Value::Null => Value::LightUserData(mlua::LightUserData(std::ptr::null_mut())),
        serde_json::Value::Bool(b) => Value::Boolean(*b),
        serde_json::Value::Number(n) => Value::Number(n.as_f64().unwrap_or(0.0)),
        serde_json::Value::String(s) => Value::String(lua.create_string(s)?),
        serde_json::Value::Array(a) => {
            let t = lua.create_table()?;
            for (i, v) in a.iter().enumerate() {
                t.raw_set(i + 1, to_lua(lua, v)?)?;
            }
            Value::Table(t)
        }
        serde_json::Value::Object(o) => {
            let t = lua.create_table()?;
            for (k, v) in o {
                t.raw_set(k.as_str(), to_lua(lua, v)?)?;
            }
            Value::Table(t)
        }
    })
}
