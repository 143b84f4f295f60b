//! `cjson` as Redis ships it (lua-cjson 2.1): `encode`, `decode`, and the settings
//! `encode_sparse_array`, `encode_max_depth`, `decode_max_depth`, `encode_number_precision`,
//! `encode_keep_buffer`, `encode_invalid_numbers`, `decode_invalid_numbers` (per Lua state, as in
//! Redis: a setting lasts until SCRIPT FLUSH). Encoding and decoding walk Lua's own stack with the
//! raw C API, as lua-cjson does, so nesting is bounded by `*_max_depth` and Lua's stack, and no
//! mlua reference is held per element; lua-cjson's error texts ("Expected value but found
//! T_OBJ_END at character 6", "Cannot serialise, excessive nesting (1001)", ...).

use super::{lua_bytes as bytes, lua_error};
use mlua::{ffi, Lua, Value};
use std::cell::RefCell;
use std::rc::Rc;

struct Config {
    sparse_convert: bool,
    sparse_ratio: i64,
    sparse_safe: i64,
    encode_max_depth: i64,
    decode_max_depth: i64,
    /// 0 off (an error), 1 on (NaN, Infinity), 2 null.
    encode_invalid_numbers: u8,
    decode_invalid_numbers: bool,
    keep_buffer: bool,
    precision: i64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            sparse_convert: false,
            sparse_ratio: 2,
            sparse_safe: 10,
            encode_max_depth: 1000,
            decode_max_depth: 1000,
            encode_invalid_numbers: 0,
            decode_invalid_numbers: true,
            keep_buffer: true,
            precision: 14,
        }
    }
}

type Shared = Rc<RefCell<Config>>;

/// An integer setting: with an argument, checked against [min, max] and stored; returns it.
fn int_option(lua: &Lua, v: Option<Value>, setting: &mut i64, min: i64, max: i64, name: &str) -> mlua::Result<i64> {
    match v {
        None | Some(Value::Nil) => {}
        Some(v) => {
            let n = match &v {
                Value::Integer(n) => Some(*n as f64),
                Value::Number(n) => Some(*n),
                Value::String(s) => s.to_str().ok().and_then(|s| s.trim().parse::<f64>().ok()),
                _ => None,
            };
            let Some(n) = n else {
                return Err(super::arg_error(lua, 1, name, &format!("number expected, got {}", super::type_name(Some(&v)))));
            };
            let n = n as i64;
            if n < min || n > max {
                return Err(super::arg_error(lua, 1, name, &format!("expected integer between {min} and {max}")));
            }
            *setting = n;
        }
    }
    Ok(*setting)
}

/// A boolean (or "on"/"off") setting; returns it.
fn bool_option(lua: &Lua, v: Option<Value>, setting: &mut bool, name: &str) -> mlua::Result<bool> {
    match v {
        None | Some(Value::Nil) => {}
        Some(Value::Boolean(b)) => *setting = b,
        Some(Value::String(s)) if &*s.as_bytes() == b"on" => *setting = true,
        Some(Value::String(s)) if &*s.as_bytes() == b"off" => *setting = false,
        Some(Value::String(s)) => {
            return Err(super::arg_error(lua, 1, name, &format!("invalid option '{}'", s.to_string_lossy())));
        }
        Some(v) => return Err(super::arg_error(lua, 1, name, &format!("string expected, got {}", super::type_name(Some(&v))))),
    }
    Ok(*setting)
}

fn too_many(lua: &Lua, args: &mlua::MultiValue, n: usize, name: &str) -> mlua::Result<()> {
    if args.len() > n {
        return Err(super::arg_error(lua, n + 1, name, "found too many arguments"));
    }
    Ok(())
}

pub fn install(lua: &Lua) -> mlua::Result<()> {
    let cfg: Shared = Rc::new(RefCell::new(Config::default()));
    let t = lua.create_table()?;
    let c = cfg.clone();
    t.set(
        "encode",
        lua.create_function(move |lua, args: mlua::MultiValue| {
            if args.len() != 1 {
                return Err(super::arg_error(lua, 1, "encode", "expected 1 argument"));
            }
            let v = args.into_iter().next().unwrap_or(Value::Nil);
            let cfg = c.borrow();
            let mut out = Vec::new();
            let mut err = None;
            // SAFETY: the walk uses raw accessors only (no metamethods, no Lua errors) and
            // leaves the stack empty.
            unsafe {
                lua.exec_raw::<()>(v, |l| {
                    err = encode(l, &cfg, 0, &mut out).err();
                    ffi::lua_settop(l, 0);
                })?;
            }
            match err {
                Some(e) => Err(lua_error(lua, &e)),
                None => Ok(mlua::BString::from(out)),
            }
        })?,
    )?;
    let c = cfg.clone();
    t.set(
        "decode",
        lua.create_function(move |lua, s: mlua::String| {
            let mut text = s.as_bytes().to_vec();
            // lua-cjson reads a NUL-terminated buffer: a NUL (here, or embedded) is the end.
            text.push(0);
            if text.len() > 2 && (text[0] == 0 || text[1] == 0) {
                return Err(lua_error(lua, "JSON parser does not support UTF-16 or UTF-32"));
            }
            let cfg = c.borrow();
            let mut err = None;
            // SAFETY: the parser pushes values with raw calls and leaves exactly one value (or
            // none, on error) on the stack.
            let v = unsafe {
                lua.exec_raw::<Value>((), |l| {
                    let mut p = Parser { s: &text, pos: 0, depth: 0, cfg: &cfg };
                    if let Err(e) = p.document(l) {
                        err = Some(e);
                        ffi::lua_settop(l, 0);
                    }
                })?
            };
            match err {
                Some(e) => Err(lua_error(lua, &e)),
                None => Ok(v),
            }
        })?,
    )?;
    let c = cfg.clone();
    t.set(
        "encode_sparse_array",
        lua.create_function(move |lua, args: mlua::MultiValue| {
            too_many(lua, &args, 3, "encode_sparse_array")?;
            let mut a = args.into_iter();
            let mut cfg = c.borrow_mut();
            let convert = bool_option(lua, a.next(), &mut cfg.sparse_convert, "encode_sparse_array")?;
            let ratio = int_option(lua, a.next(), &mut cfg.sparse_ratio, 0, i32::MAX as i64, "encode_sparse_array")?;
            let safe = int_option(lua, a.next(), &mut cfg.sparse_safe, 0, i32::MAX as i64, "encode_sparse_array")?;
            Ok((convert, ratio, safe))
        })?,
    )?;
    for (name, field) in [("encode_max_depth", 0u8), ("decode_max_depth", 1), ("encode_number_precision", 2)] {
        let c = cfg.clone();
        t.set(
            name,
            lua.create_function(move |lua, args: mlua::MultiValue| {
                too_many(lua, &args, 1, name)?;
                let mut cfg = c.borrow_mut();
                let (setting, max) = match field {
                    0 => (&mut cfg.encode_max_depth, i32::MAX as i64),
                    1 => (&mut cfg.decode_max_depth, i32::MAX as i64),
                    _ => (&mut cfg.precision, 14),
                };
                int_option(lua, args.into_iter().next(), setting, 1, max, name)
            })?,
        )?;
    }
    let c = cfg.clone();
    t.set(
        "encode_keep_buffer",
        lua.create_function(move |lua, args: mlua::MultiValue| {
            too_many(lua, &args, 1, "encode_keep_buffer")?;
            bool_option(lua, args.into_iter().next(), &mut c.borrow_mut().keep_buffer, "encode_keep_buffer")
        })?,
    )?;
    let c = cfg.clone();
    t.set(
        "decode_invalid_numbers",
        lua.create_function(move |lua, args: mlua::MultiValue| {
            too_many(lua, &args, 1, "decode_invalid_numbers")?;
            bool_option(lua, args.into_iter().next(), &mut c.borrow_mut().decode_invalid_numbers, "decode_invalid_numbers")
        })?,
    )?;
    let c = cfg;
    t.set(
        "encode_invalid_numbers",
        lua.create_function(move |lua, args: mlua::MultiValue| {
            too_many(lua, &args, 1, "encode_invalid_numbers")?;
            let mut cfg = c.borrow_mut();
            match args.into_iter().next() {
                None | Some(Value::Nil) => {}
                Some(Value::Boolean(b)) => cfg.encode_invalid_numbers = b as u8,
                Some(Value::String(s)) => match &*s.as_bytes() {
                    b"off" => cfg.encode_invalid_numbers = 0,
                    b"on" => cfg.encode_invalid_numbers = 1,
                    b"null" => cfg.encode_invalid_numbers = 2,
                    _ => {
                        return Err(super::arg_error(
                            lua,
                            1,
                            "encode_invalid_numbers",
                            &format!("invalid option '{}'", s.to_string_lossy()),
                        ))
                    }
                },
                Some(v) => {
                    return Err(super::arg_error(
                        lua,
                        1,
                        "encode_invalid_numbers",
                        &format!("string expected, got {}", super::type_name(Some(&v))),
                    ))
                }
            }
            Ok(match cfg.encode_invalid_numbers {
                0 => Value::Boolean(false),
                1 => Value::Boolean(true),
                _ => Value::String(lua.create_string("null")?),
            })
        })?,
    )?;
    t.set("null", Value::LightUserData(mlua::LightUserData(std::ptr::null_mut())))?;
    lua.globals().raw_set("cjson", t)?;
    Ok(())
}

// ---------------------------------------------------------------- encode

fn type_name(l: *mut ffi::lua_State, idx: i32) -> String {
    // SAFETY: lua_typename returns a static C string for any type.
    unsafe { std::ffi::CStr::from_ptr(ffi::lua_typename(l, ffi::lua_type(l, idx))).to_string_lossy().into_owned() }
}

pub(super) fn escape_into(b: &[u8], out: &mut Vec<u8>) {
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

/// A number as lua-cjson writes it: `%.<precision>g`, NaN and infinities by the setting.
unsafe fn number(l: *mut ffi::lua_State, cfg: &Config, idx: i32, out: &mut Vec<u8>) -> Result<(), String> {
    let n = ffi::lua_tonumber(l, idx);
    if !n.is_finite() {
        match cfg.encode_invalid_numbers {
            0 => return Err(format!("Cannot serialise {}: must not be NaN or Inf", type_name(l, idx))),
            1 => {
                out.extend_from_slice(match n {
                    n if n.is_nan() => b"NaN".as_slice(),
                    n if n < 0.0 => b"-Infinity",
                    _ => b"Infinity",
                });
                return Ok(());
            }
            _ => {
                out.extend_from_slice(b"null");
                return Ok(());
            }
        }
    }
    let mut buf = [0u8; 64];
    let fmt = std::ffi::CString::new(format!("%.{}g", cfg.precision)).unwrap_or_default();
    let len = libc::snprintf(buf.as_mut_ptr() as *mut libc::c_char, buf.len(), fmt.as_ptr(), n);
    out.extend_from_slice(&buf[..len.clamp(0, 63) as usize]);
    Ok(())
}

/// Encodes the value on top of the stack (it stays there).
unsafe fn encode(l: *mut ffi::lua_State, cfg: &Config, depth: i64, out: &mut Vec<u8>) -> Result<(), String> {
    match ffi::lua_type(l, -1) {
        ffi::LUA_TSTRING => escape_into(bytes(l, -1), out),
        ffi::LUA_TNUMBER => number(l, cfg, -1, out)?,
        ffi::LUA_TBOOLEAN => out.extend_from_slice(if ffi::lua_toboolean(l, -1) != 0 { b"true" } else { b"false" }),
        ffi::LUA_TNIL => out.extend_from_slice(b"null"),
        ffi::LUA_TLIGHTUSERDATA if ffi::lua_touserdata(l, -1).is_null() => out.extend_from_slice(b"null"),
        ffi::LUA_TTABLE => {
            let depth = depth + 1;
            if depth > cfg.encode_max_depth || ffi::lua_checkstack(l, 3) == 0 {
                return Err(format!("Cannot serialise, excessive nesting ({depth})"));
            }
            match array_length(l, cfg)? {
                Some(len) if len > 0 => {
                    out.push(b'[');
                    for i in 1..=len {
                        if i > 1 {
                            out.push(b',');
                        }
                        ffi::lua_rawgeti(l, -1, i);
                        let r = encode(l, cfg, depth, out);
                        ffi::lua_pop(l, 1);
                        r?;
                    }
                    out.push(b']');
                }
                _ => object(l, cfg, depth, out)?,
            }
        }
        _ => return Err(format!("Cannot serialise {}: type not supported", type_name(l, -1))),
    }
    Ok(())
}

/// lua-cjson's lua_array_length: Some(max index) when every key is an integer >= 1 (and the
/// array is not too sparse), None for an object.
unsafe fn array_length(l: *mut ffi::lua_State, cfg: &Config) -> Result<Option<i64>, String> {
    let (mut max, mut items) = (0i64, 0i64);
    ffi::lua_pushnil(l);
    while ffi::lua_next(l, -2) != 0 {
        let k = ffi::lua_tonumber(l, -2);
        if ffi::lua_type(l, -2) == ffi::LUA_TNUMBER && k != 0.0 && k.floor() == k && k >= 1.0 {
            max = max.max(k as i64);
            items += 1;
            ffi::lua_pop(l, 1);
            continue;
        }
        ffi::lua_pop(l, 2);
        return Ok(None);
    }
    if cfg.sparse_ratio > 0 && max > items.saturating_mul(cfg.sparse_ratio) && max > cfg.sparse_safe {
        if !cfg.sparse_convert {
            return Err("Cannot serialise table: excessively sparse array".into());
        }
        return Ok(None);
    }
    Ok(Some(max))
}

unsafe fn object(l: *mut ffi::lua_State, cfg: &Config, depth: i64, out: &mut Vec<u8>) -> Result<(), String> {
    out.push(b'{');
    let mut comma = false;
    ffi::lua_pushnil(l);
    while ffi::lua_next(l, -2) != 0 {
        if comma {
            out.push(b',');
        }
        comma = true;
        let r = (|| {
            match ffi::lua_type(l, -2) {
                ffi::LUA_TNUMBER => {
                    out.push(b'"');
                    number(l, cfg, -2, out)?;
                    out.extend_from_slice(b"\":");
                }
                ffi::LUA_TSTRING => {
                    escape_into(bytes(l, -2), out);
                    out.push(b':');
                }
                _ => return Err(format!("Cannot serialise {}: table key must be a number or string", type_name(l, -2))),
            }
            encode(l, cfg, depth, out)
        })();
        if r.is_err() {
            ffi::lua_pop(l, 2);
            return r;
        }
        ffi::lua_pop(l, 1);
    }
    out.push(b'}');
    Ok(())
}

// ---------------------------------------------------------------- decode

#[derive(Clone, Copy, PartialEq)]
enum Tok {
    ObjBegin,
    ObjEnd,
    ArrBegin,
    ArrEnd,
    Str,
    Num(f64),
    Bool(bool),
    Null,
    Colon,
    Comma,
    End,
    /// A token that could not be read: lua-cjson's reason.
    Error(&'static str),
}

impl Tok {
    fn name(self) -> &'static str {
        match self {
            Tok::ObjBegin => "T_OBJ_BEGIN",
            Tok::ObjEnd => "T_OBJ_END",
            Tok::ArrBegin => "T_ARR_BEGIN",
            Tok::ArrEnd => "T_ARR_END",
            Tok::Str => "T_STRING",
            Tok::Num(_) => "T_NUMBER",
            Tok::Bool(_) => "T_BOOLEAN",
            Tok::Null => "T_NULL",
            Tok::Colon => "T_COLON",
            Tok::Comma => "T_COMMA",
            Tok::End => "T_END",
            Tok::Error(why) => why,
        }
    }
}

struct Parser<'a> {
    /// The text, NUL-terminated.
    s: &'a [u8],
    pos: usize,
    depth: i64,
    cfg: &'a Config,
}

impl Parser<'_> {
    fn at(&self, i: usize) -> u8 {
        self.s.get(i).copied().unwrap_or(0)
    }

    /// The next token, its index (0-based) and, for a string, its bytes.
    fn next(&mut self) -> (Tok, usize, Vec<u8>) {
        while matches!(self.at(self.pos), b' ' | b'\t' | b'\n' | b'\r') {
            self.pos += 1;
        }
        let start = self.pos;
        let c = self.at(self.pos);
        let single = match c {
            b'{' => Some(Tok::ObjBegin),
            b'}' => Some(Tok::ObjEnd),
            b'[' => Some(Tok::ArrBegin),
            b']' => Some(Tok::ArrEnd),
            b':' => Some(Tok::Colon),
            b',' => Some(Tok::Comma),
            0 => return (Tok::End, start, Vec::new()),
            _ => None,
        };
        if let Some(t) = single {
            self.pos += 1;
            return (t, start, Vec::new());
        }
        let rest = &self.s[self.pos..];
        match c {
            b'"' => self.string(start),
            b'-' | b'0'..=b'9' if !self.cfg.decode_invalid_numbers && self.invalid_number() => {
                (Tok::Error("invalid number"), start, Vec::new())
            }
            b'-' | b'0'..=b'9' | b'+' | b'i' | b'I' | b'n' | b'N' | b't' | b'f' => {
                if c == b'-' || c.is_ascii_digit() {
                    return self.number(start);
                }
                if rest.starts_with(b"true") {
                    self.pos += 4;
                    return (Tok::Bool(true), start, Vec::new());
                }
                if rest.starts_with(b"false") {
                    self.pos += 5;
                    return (Tok::Bool(false), start, Vec::new());
                }
                if rest.starts_with(b"null") {
                    self.pos += 4;
                    return (Tok::Null, start, Vec::new());
                }
                if self.cfg.decode_invalid_numbers && self.invalid_number() {
                    return self.number(start);
                }
                (Tok::Error("invalid token"), start, Vec::new())
            }
            _ => (Tok::Error("invalid token"), start, Vec::new()),
        }
    }

    /// lua-cjson's json_is_invalid_number: +, hex, leading zeros, inf, nan.
    fn invalid_number(&self) -> bool {
        let mut p = self.pos;
        if self.at(p) == b'+' {
            return true;
        }
        if self.at(p) == b'-' {
            p += 1;
        }
        if self.at(p) == b'0' {
            let c2 = self.at(p + 1);
            return (c2 | 0x20) == b'x' || c2.is_ascii_digit();
        } else if self.at(p) <= b'9' {
            return false;
        }
        let word = &self.s[p..self.s.len().min(p + 3)];
        word.eq_ignore_ascii_case(b"inf") || word.eq_ignore_ascii_case(b"nan")
    }

    fn number(&mut self, start: usize) -> (Tok, usize, Vec<u8>) {
        let mut end: *mut libc::c_char = std::ptr::null_mut();
        // SAFETY: the text is NUL-terminated; strtod stops at the NUL at the latest.
        let base = self.s.as_ptr() as *const libc::c_char;
        let n = unsafe { libc::strtod(base.add(self.pos), &mut end) };
        let used = end as usize - (base as usize + self.pos);
        if used == 0 {
            return (Tok::Error("invalid number"), start, Vec::new());
        }
        self.pos += used;
        (Tok::Num(n), start, Vec::new())
    }

    fn hex4(&self, i: usize) -> Option<u32> {
        let h = self.s.get(i..i + 4)?;
        let s = std::str::from_utf8(h).ok()?;
        if !s.bytes().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
        u32::from_str_radix(s, 16).ok()
    }

    fn string(&mut self, start: usize) -> (Tok, usize, Vec<u8>) {
        self.pos += 1;
        let mut v = Vec::new();
        loop {
            let c = self.at(self.pos);
            match c {
                b'"' => break,
                0 => return (Tok::Error("unexpected end of string"), self.pos, Vec::new()),
                b'\\' => {
                    let e = match self.at(self.pos + 1) {
                        b'"' => b'"',
                        b'\\' => b'\\',
                        b'/' => b'/',
                        b'b' => 0x08,
                        b't' => b'\t',
                        b'n' => b'\n',
                        b'f' => 0x0c,
                        b'r' => b'\r',
                        b'u' => {
                            match self.unicode_escape(&mut v) {
                                Some(()) => continue,
                                None => return (Tok::Error("invalid unicode escape code"), self.pos, Vec::new()),
                            };
                        }
                        _ => return (Tok::Error("invalid escape code"), self.pos, Vec::new()),
                    };
                    v.push(e);
                    self.pos += 2;
                }
                c => {
                    v.push(c);
                    self.pos += 1;
                }
            }
        }
        self.pos += 1;
        (Tok::Str, start, v)
    }

    fn unicode_escape(&mut self, v: &mut Vec<u8>) -> Option<()> {
        let mut cp = self.hex4(self.pos + 2)?;
        let mut len = 6;
        if cp & 0xF800 == 0xD800 {
            if cp & 0x400 != 0 || self.at(self.pos + 6) != b'\\' || self.at(self.pos + 7) != b'u' {
                return None;
            }
            let low = self.hex4(self.pos + 8)?;
            if low & 0xFC00 != 0xDC00 {
                return None;
            }
            cp = (((cp & 0x3FF) << 10) | (low & 0x3FF)) + 0x10000;
            len = 12;
        }
        let mut buf = [0u8; 4];
        let s = char::from_u32(cp)?.encode_utf8(&mut buf);
        v.extend_from_slice(s.as_bytes());
        self.pos += len;
        Some(())
    }

    fn error(&self, expected: &str, tok: Tok, index: usize) -> String {
        format!("Expected {expected} but found {} at character {}", tok.name(), index + 1)
    }

    /// json_decode: one value, then the end.
    unsafe fn document(&mut self, l: *mut ffi::lua_State) -> Result<(), String> {
        let (tok, index, s) = self.next();
        self.value(l, tok, index, s)?;
        let (tok, index, _) = self.next();
        if tok != Tok::End {
            ffi::lua_pop(l, 1);
            return Err(self.error("the end", tok, index));
        }
        Ok(())
    }

    /// Pushes the value that starts with `tok`.
    unsafe fn value(&mut self, l: *mut ffi::lua_State, tok: Tok, index: usize, s: Vec<u8>) -> Result<(), String> {
        match tok {
            Tok::Str => {
                ffi::lua_pushlstring(l, s.as_ptr() as *const libc::c_char, s.len());
            }
            Tok::Num(n) => ffi::lua_pushnumber(l, n),
            Tok::Bool(b) => ffi::lua_pushboolean(l, b as i32),
            Tok::Null => ffi::lua_pushlightuserdata(l, std::ptr::null_mut()),
            Tok::ObjBegin => return self.object(l),
            Tok::ArrBegin => return self.array(l),
            t => return Err(self.error("value", t, index)),
        }
        Ok(())
    }

    unsafe fn descend(&mut self, l: *mut ffi::lua_State, slots: i32) -> Result<(), String> {
        self.depth += 1;
        if self.depth <= self.cfg.decode_max_depth && ffi::lua_checkstack(l, slots) != 0 {
            return Ok(());
        }
        Err(format!("Found too many nested data structures ({}) at character {}", self.depth, self.pos))
    }

    unsafe fn object(&mut self, l: *mut ffi::lua_State) -> Result<(), String> {
        self.descend(l, 3)?;
        ffi::lua_createtable(l, 0, 0);
        let r = self.object_entries(l);
        if r.is_err() {
            ffi::lua_pop(l, 1);
        }
        self.depth -= 1;
        r
    }

    unsafe fn object_entries(&mut self, l: *mut ffi::lua_State) -> Result<(), String> {
        let (mut tok, mut index, mut s) = self.next();
        if tok == Tok::ObjEnd {
            return Ok(());
        }
        loop {
            if tok != Tok::Str {
                return Err(self.error("object key string", tok, index));
            }
            ffi::lua_pushlstring(l, s.as_ptr() as *const libc::c_char, s.len());
            let (t, i, _) = self.next();
            if t != Tok::Colon {
                ffi::lua_pop(l, 1);
                return Err(self.error("colon", t, i));
            }
            let (t, i, vs) = self.next();
            if let Err(e) = self.value(l, t, i, vs) {
                ffi::lua_pop(l, 1);
                return Err(e);
            }
            ffi::lua_rawset(l, -3);
            let (t, i, _) = self.next();
            if t == Tok::ObjEnd {
                return Ok(());
            }
            if t != Tok::Comma {
                return Err(self.error("comma or object end", t, i));
            }
            (tok, index, s) = self.next();
        }
    }

    unsafe fn array(&mut self, l: *mut ffi::lua_State) -> Result<(), String> {
        self.descend(l, 2)?;
        ffi::lua_createtable(l, 0, 0);
        let r = self.array_entries(l);
        if r.is_err() {
            ffi::lua_pop(l, 1);
        }
        self.depth -= 1;
        r
    }

    unsafe fn array_entries(&mut self, l: *mut ffi::lua_State) -> Result<(), String> {
        let (mut tok, mut index, mut s) = self.next();
        if tok == Tok::ArrEnd {
            return Ok(());
        }
        let mut i = 1;
        loop {
            self.value(l, tok, index, s)?;
            ffi::lua_rawseti_(l, -2, i);
            i += 1;
            let (t, ti, _) = self.next();
            if t == Tok::ArrEnd {
                return Ok(());
            }
            if t != Tok::Comma {
                return Err(self.error("comma or array end", t, ti));
            }
            (tok, index, s) = self.next();
        }
    }
}
