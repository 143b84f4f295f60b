//! `cmsgpack` as Redis ships it (lua-cmsgpack): `pack(...)` concatenates the MessagePack
//! encodings of its arguments, `unpack(s)` returns every object in `s`, `unpack_one(s, [offset])`
//! and `unpack_limit(s, limit, [offset])` return the next offset (-1 at the end) then the objects.
//!
//! Encoding choices follow lua-cmsgpack: numbers with an integer value take the smallest integer
//! form, other numbers float32 when exact, else float64; a table whose keys are exactly 1..n is
//! an array, any other a map; tables nested deeper than 16 levels encode as nil, as do functions
//! and other values MessagePack has no form for.

use super::{arg_error, lua_error, Args, Results, Where};
use mlua::{Lua, Table, Value};

const MAX_NESTING: usize = 16;
/// lua-cmsgpack's limits, which come from Lua's stack (8000 slots) as Redis's Lua has it: at most
/// this many arguments to `pack`, ...
const MAX_PACK_ARGS: usize = 4000;
/// ... objects returned by `unpack` (and by `unpack_one`/`unpack_limit`, the offset aside), ...
const MAX_RESULTS: usize = 7999;
const MAX_RESULTS_LIMITED: usize = 7998;
/// ... and levels of nested arrays and maps decoded.
const MAX_DECODE_DEPTH: usize = 3999;

/// `pack` and the `unpack` functions are trampolines (`super::install`): their Rust halves
/// are in `imp`.
pub fn install(lua: &Lua, imp: &Table) -> mlua::Result<()> {
    let t = lua.create_table()?;
    imp.raw_set(
        "mp_pack",
        lua.create_function(|lua, args: Args| {
            if args.is_empty() {
                return Err(arg_error(lua, 0, "pack", "MessagePack pack needs input."));
            }
            if args.len() > MAX_PACK_ARGS {
                return Err(arg_error(lua, 0, "pack", "Too many arguments for MessagePack pack."));
            }
            let mut out = Vec::new();
            for i in 1..=args.len() {
                encode(&args.get(i).unwrap_or(Value::Nil), &mut out, 0)?;
            }
            Ok(mlua::BString::from(out))
        })?,
    )?;
    imp.raw_set("mp_unpack", lua.create_function(|lua, (_at, s): (Where, mlua::String)| unpack(lua, &s.as_bytes(), 0, 0, false))?)?;
    imp.raw_set(
        "mp_unpack_one",
        lua.create_function(|lua, (_at, s, offset): (Where, mlua::String, Option<i64>)| {
            unpack(lua, &s.as_bytes(), 1, offset.unwrap_or(0), true)
        })?,
    )?;
    imp.raw_set(
        "mp_unpack_limit",
        lua.create_function(|lua, (_at, s, limit, offset): (Where, mlua::String, i64, Option<i64>)| {
            unpack(lua, &s.as_bytes(), limit, offset.unwrap_or(0), true)
        })?,
    )?;
    lua.globals().raw_set("cmsgpack", t)?;
    Ok(())
}

fn as_number(v: &Value) -> Option<f64> {
    match v {
        Value::Integer(i) => Some(*i as f64),
        Value::Number(n) => Some(*n),
        _ => None,
    }
}

fn encode(v: &Value, out: &mut Vec<u8>, level: usize) -> mlua::Result<()> {
    match v {
        Value::Boolean(b) => out.push(if *b { 0xc3 } else { 0xc2 }),
        Value::Integer(_) | Value::Number(_) => {
            let n = as_number(v).unwrap_or(0.0);
            if n.is_finite() && (n as i64) as f64 == n {
                encode_int(n as i64, out);
            } else {
                encode_double(n, out);
            }
        }
        Value::String(s) => encode_bytes(&s.as_bytes(), out),
        Value::Table(t) if level < MAX_NESTING => encode_table(t, out, level)?,
        _ => out.push(0xc0),
    }
    Ok(())
}

fn encode_int(n: i64, out: &mut Vec<u8>) {
    if n >= 0 {
        match n {
            0..=127 => out.push(n as u8),
            128..=0xff => out.extend_from_slice(&[0xcc, n as u8]),
            0x100..=0xffff => {
                out.push(0xcd);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            0x10000..=0xffff_ffff => {
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
    } else if n >= i32::MIN as i64 {
        out.push(0xd2);
        out.extend_from_slice(&(n as i32).to_be_bytes());
    } else {
        out.push(0xd3);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

fn encode_double(d: f64, out: &mut Vec<u8>) {
    let f = d as f32;
    if f as f64 == d {
        out.push(0xca);
        out.extend_from_slice(&f.to_bits().to_be_bytes());
    } else {
        out.push(0xcb);
        out.extend_from_slice(&d.to_bits().to_be_bytes());
    }
}

fn encode_bytes(s: &[u8], out: &mut Vec<u8>) {
    let n = s.len();
    if n < 32 {
        out.push(0xa0 | n as u8);
    } else if n <= 0xff {
        out.extend_from_slice(&[0xd9, n as u8]);
    } else if n <= 0xffff {
        out.push(0xda);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(0xdb);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    }
    out.extend_from_slice(s);
}

/// The header of an array (`base` 0x90, `wide` 0xdc) or a map (0x80, 0xde) of `n` entries.
fn encode_len(n: usize, base: u8, wide: u8, out: &mut Vec<u8>) {
    if n < 16 {
        out.push(base | n as u8);
    } else if n <= 0xffff {
        out.push(wide);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(wide + 1);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    }
}

fn encode_table(t: &Table, out: &mut Vec<u8>, level: usize) -> mlua::Result<()> {
    // First pass: the size, and whether the keys are exactly 1..n (an array). No key or value is
    // kept: a table may hold more entries than mlua can hold references.
    let (mut count, mut max, mut all_positive_ints) = (0usize, 0f64, true);
    t.for_each::<Value, Value>(|k, _| {
        count += 1;
        match as_number(&k) {
            Some(n) if n > 0.0 && n.fract() == 0.0 => max = f64::max(max, n),
            _ => all_positive_ints = false,
        }
        Ok(())
    })?;
    if all_positive_ints && max == count as f64 {
        encode_len(count, 0x90, 0xdc, out);
        for i in 1..=count {
            encode(&t.raw_get::<Value>(i)?, out, level + 1)?;
        }
    } else {
        encode_len(count, 0x80, 0xde, out);
        t.for_each::<Value, Value>(|k, v| {
            encode(&k, out, level + 1)?;
            encode(&v, out, level + 1)
        })?;
    }
    Ok(())
}

/// Why decoding stopped.
enum Bad {
    Missing,
    Format,
    /// Nested deeper than Redis's Lua stack allows: the function lua-cmsgpack names.
    TooDeep(&'static str),
    Lua(mlua::Error),
}

impl From<mlua::Error> for Bad {
    fn from(e: mlua::Error) -> Bad {
        Bad::Lua(e)
    }
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
    depth: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Bad> {
        if self.b.len() - self.pos < n {
            return Err(Bad::Missing);
        }
        let s = &self.b[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    fn uint(&mut self, n: usize) -> Result<u64, Bad> {
        Ok(self.take(n)?.iter().fold(0u64, |a, &c| (a << 8) | c as u64))
    }
}

fn decode(lua: &Lua, r: &mut Reader) -> Result<Value, Bad> {
    let t = r.take(1)?[0];
    let n = match t {
        0x00..=0x7f => t as f64,
        0xe0..=0xff => t as i8 as f64,
        0xc0 => return Ok(Value::Nil),
        0xc2 => return Ok(Value::Boolean(false)),
        0xc3 => return Ok(Value::Boolean(true)),
        0xcc => r.uint(1)? as f64,
        0xcd => r.uint(2)? as f64,
        0xce => r.uint(4)? as f64,
        0xcf => r.uint(8)? as f64,
        0xd0 => r.uint(1)? as u8 as i8 as f64,
        0xd1 => r.uint(2)? as u16 as i16 as f64,
        0xd2 => r.uint(4)? as u32 as i32 as f64,
        0xd3 => r.uint(8)? as i64 as f64,
        0xca => f32::from_bits(r.uint(4)? as u32) as f64,
        0xcb => f64::from_bits(r.uint(8)?),
        // Strings; the bin types (0xc4..0xc6) decode as strings too.
        0xa0..=0xbf => return string(lua, r, (t & 0x1f) as usize),
        0xd9 | 0xc4 => {
            let n = r.uint(1)? as usize;
            return string(lua, r, n);
        }
        0xda | 0xc5 => {
            let n = r.uint(2)? as usize;
            return string(lua, r, n);
        }
        0xdb | 0xc6 => {
            let n = r.uint(4)? as usize;
            return string(lua, r, n);
        }
        0x90..=0x9f => return table(lua, r, (t & 0x0f) as usize, false),
        0xdc => {
            let n = r.uint(2)? as usize;
            return table(lua, r, n, false);
        }
        0xdd => {
            let n = r.uint(4)? as usize;
            return table(lua, r, n, false);
        }
        0x80..=0x8f => return table(lua, r, (t & 0x0f) as usize, true),
        0xde => {
            let n = r.uint(2)? as usize;
            return table(lua, r, n, true);
        }
        0xdf => {
            let n = r.uint(4)? as usize;
            return table(lua, r, n, true);
        }
        _ => return Err(Bad::Format),
    };
    Ok(Value::Number(n))
}

fn string(lua: &Lua, r: &mut Reader, n: usize) -> Result<Value, Bad> {
    let s = r.take(n)?;
    Ok(Value::String(lua.create_string(s)?))
}

/// An array (indices 1..n) or a map of `n` entries.
fn table(lua: &Lua, r: &mut Reader, n: usize, map: bool) -> Result<Value, Bad> {
    if r.depth >= MAX_DECODE_DEPTH {
        return Err(Bad::TooDeep(if map { "mp_decode_to_lua_hash" } else { "mp_decode_to_lua_array" }));
    }
    r.depth += 1;
    let t = table_entries(lua, r, n, map);
    r.depth -= 1;
    t
}

fn table_entries(lua: &Lua, r: &mut Reader, n: usize, map: bool) -> Result<Value, Bad> {
    let t = lua.create_table()?;
    for i in 1..=n {
        let k = if map { decode(lua, r)? } else { Value::Number(i as f64) };
        let v = decode(lua, r)?;
        // A nil key cannot index a Lua table: the pair is dropped.
        if !k.is_nil() {
            t.raw_set(k, v)?;
        }
    }
    Ok(Value::Table(t))
}

/// Decodes up to `limit` objects (0: all) from `offset`; with `with_offset`, the next offset (or
/// -1 when the input is used up) comes first.
fn unpack(lua: &Lua, b: &[u8], limit: i64, offset: i64, with_offset: bool) -> mlua::Result<Results> {
    if offset < 0 || limit < 0 {
        // (lua-cmsgpack prints the input's length as the "limit".)
        return Err(lua_error(lua, &format!("Invalid request to unpack with offset of {offset} and limit of {}.", b.len())));
    }
    if offset as usize > b.len() {
        return Err(lua_error(lua, &format!("Start offset {offset} greater than input length {}.", b.len())));
    }
    let mut r = Reader { b, pos: offset as usize, depth: 0 };
    let mut out = Results::new(lua)?;
    // With an offset to return, it goes first: its slot is filled in at the end.
    if with_offset {
        out.push(Value::Nil)?;
    }
    let mut count = 0i64;
    while (limit == 0 || count < limit) && r.pos < b.len() {
        if !with_offset && count as usize >= MAX_RESULTS {
            return Err(lua_error(lua, "stack overflow (too many return values at once; use unpack_one or unpack_limit instead.)"));
        }
        if with_offset && count as usize >= MAX_RESULTS_LIMITED {
            return Err(lua_error(lua, "stack overflow (in function mp_unpack_full)"));
        }
        match decode(lua, &mut r) {
            Ok(v) => out.push(v)?,
            Err(Bad::Missing) => return Err(lua_error(lua, "Missing bytes in input.")),
            Err(Bad::Format) => return Err(lua_error(lua, "Bad data format in input.")),
            Err(Bad::TooDeep(f)) => return Err(lua_error(lua, &format!("stack overflow (in function {f})"))),
            Err(Bad::Lua(e)) => return Err(e),
        }
        count += 1;
    }
    if with_offset {
        let next = if r.pos < b.len() { r.pos as f64 } else { -1.0 };
        out.set_first(Value::Number(next))?;
    }
    Ok(out)
}
