//! `struct` as Redis ships it (Roberto Ierusalimschy's lua_struct): `pack(fmt, ...)`,
//! `unpack(fmt, data, [init])` (the values, then the position after them) and `size(fmt)`.
//!
//! Format: `>` big endian, `<` and `=` little endian (the native order here), `!n` aligns fields
//! to min(size, n) (n a power of 2, 8 when omitted; no alignment until a `!`), `x` a pad byte,
//! `b`/`B` char, `h`/`H` short, `l`/`L` long and `T` size_t (8 bytes), `in`/`In` an n-byte
//! integer (4 when omitted, up to 32), `cn` n chars (`c0`: the whole string when packing, the
//! previous number as length when unpacking), `s` a zero-terminated string, `f` float, `d`
//! double; spaces are ignored. Lower case is signed, upper case unsigned.

use super::{arg_error, lua_error, type_name, Args, Results, Where};
use mlua::{Lua, Table, Value};

const MAX_INT_SIZE: usize = 32;
const NATIVE_ALIGN: usize = 8;
/// The most values `unpack` returns before Redis's Lua stack runs out.
const MAX_RESULTS: usize = 7997;

/// `pack` and `unpack` are trampolines (`super::install`): their Rust halves are in `imp`.
pub fn install(lua: &Lua, imp: &Table) -> mlua::Result<()> {
    let t = lua.create_table()?;
    imp.raw_set("struct_pack", lua.create_function(pack)?)?;
    imp.raw_set("struct_unpack", lua.create_function(unpack)?)?;
    t.set("size", lua.create_function(size)?)?;
    lua.globals().raw_set("struct", t)?;
    Ok(())
}

struct Format<'a> {
    f: &'a [u8],
    pos: usize,
    little: bool,
    align: usize,
}

impl<'a> Format<'a> {
    fn new(f: &'a [u8]) -> Self {
        Format { f, pos: 0, little: true, align: 1 }
    }

    fn num(&mut self, default: usize, lua: &Lua) -> mlua::Result<usize> {
        if !self.f.get(self.pos).is_some_and(|c| c.is_ascii_digit()) {
            return Ok(default);
        }
        let mut a: usize = 0;
        while let Some(c) = self.f.get(self.pos).filter(|c| c.is_ascii_digit()) {
            a = a
                .checked_mul(10)
                .and_then(|a| a.checked_add((c - b'0') as usize))
                .filter(|&a| a <= i32::MAX as usize)
                .ok_or_else(|| lua_error(lua, "integral size overflow"))?;
            self.pos += 1;
        }
        Ok(a)
    }

    /// The next option and its size, or None at the end. Control options (`<`, `>`, `=`, `!`,
    /// space) are applied here and come back with size 0.
    fn next(&mut self, lua: &Lua, fname: &str) -> mlua::Result<Option<(u8, usize)>> {
        let Some(&opt) = self.f.get(self.pos) else { return Ok(None) };
        self.pos += 1;
        let size = match opt {
            b'b' | b'B' | b'x' => 1,
            b'h' | b'H' => 2,
            b'l' | b'L' | b'T' | b'd' => 8,
            b'f' => 4,
            b'c' => self.num(1, lua)?,
            b'i' | b'I' => {
                let n = self.num(4, lua)?;
                if n > MAX_INT_SIZE {
                    return Err(lua_error(lua, &format!("integral size {n} is larger than limit of {MAX_INT_SIZE}")));
                }
                n
            }
            b's' => 0,
            b' ' => 0,
            b'>' => {
                self.little = false;
                0
            }
            b'<' | b'=' => {
                self.little = true;
                0
            }
            b'!' => {
                let a = self.num(NATIVE_ALIGN, lua)?;
                if !a.is_power_of_two() {
                    return Err(lua_error(lua, &format!("alignment {a} is not a power of 2")));
                }
                self.align = a;
                0
            }
            // size() skips unknown letters as lua_struct does; pack and unpack refuse them.
            c if c.is_ascii_alphanumeric() && fname == "size" => 0,
            c => return Err(arg_error(lua, 1, fname, &format!("invalid format option '{}'", c as char))),
        };
        Ok(Some((opt, size)))
    }

    /// Padding needed before a field of `size` at offset `len`.
    fn padding(&self, len: usize, opt: u8, size: usize) -> usize {
        if size <= 1 || opt == b'c' {
            return 0;
        }
        let size = size.min(self.align);
        (size - (len & (size - 1))) & (size - 1)
    }
}

fn is_int(opt: u8) -> bool {
    matches!(opt, b'b' | b'B' | b'h' | b'H' | b'l' | b'L' | b'T' | b'i' | b'I')
}

/// luaL_checknumber: a number, or a string that reads as one.
fn check_number(lua: &Lua, args: &Args, i: usize) -> mlua::Result<f64> {
    let v = args.get(i);
    let v = v.as_ref();
    let n = match v {
        Some(Value::Integer(n)) => Some(*n as f64),
        Some(Value::Number(n)) => Some(*n),
        Some(Value::String(s)) => std::str::from_utf8(&s.as_bytes()).ok().and_then(|s| s.trim().parse::<f64>().ok()),
        _ => None,
    };
    n.ok_or_else(|| arg_error(lua, i, "pack", &format!("number expected, got {}", type_name(v))))
}

/// luaL_checklstring: a string, or a number as Lua prints it.
fn check_string(lua: &Lua, args: &Args, i: usize) -> mlua::Result<Vec<u8>> {
    match args.get(i) {
        Some(Value::String(s)) => Ok(s.as_bytes().to_vec()),
        Some(Value::Integer(n)) => Ok(n.to_string().into_bytes()),
        Some(Value::Number(n)) => Ok(super::fmt_num(n).into_bytes()),
        v => Err(arg_error(lua, i, "pack", &format!("string expected, got {}", type_name(v.as_ref())))),
    }
}

fn put_bytes(out: &mut Vec<u8>, mut le: Vec<u8>, little: bool) {
    if !little {
        le.reverse();
    }
    out.extend_from_slice(&le);
}

fn pack(lua: &Lua, args: Args) -> mlua::Result<mlua::BString> {
    let fmt = match args.get(1) {
        Some(Value::String(s)) => s.as_bytes().to_vec(),
        v => return Err(arg_error(lua, 1, "pack", &format!("string expected, got {}", type_name(v.as_ref())))),
    };
    let mut f = Format::new(&fmt);
    let mut out = Vec::new();
    let mut arg = 2;
    while let Some((opt, mut size)) = f.next(lua, "pack")? {
        let pad = f.padding(out.len(), opt, size);
        out.resize(out.len() + pad, 0);
        match opt {
            _ if is_int(opt) => {
                let n = check_number(lua, &args, arg)?;
                arg += 1;
                // Two's complement of the value, low bytes first; bytes past the 8th are zero.
                let mut v = if n < 0.0 { n as i64 as u64 } else { n as u64 };
                let le: Vec<u8> = (0..size)
                    .map(|_| {
                        let b = v as u8;
                        v = v.checked_shr(8).unwrap_or(0);
                        b
                    })
                    .collect();
                put_bytes(&mut out, le, f.little);
            }
            b'x' => out.push(0),
            b'f' => {
                let n = check_number(lua, &args, arg)?;
                arg += 1;
                put_bytes(&mut out, (n as f32).to_le_bytes().to_vec(), f.little);
            }
            b'd' => {
                let n = check_number(lua, &args, arg)?;
                arg += 1;
                put_bytes(&mut out, n.to_le_bytes().to_vec(), f.little);
            }
            b'c' | b's' => {
                let s = check_string(lua, &args, arg)?;
                arg += 1;
                if size == 0 || opt == b's' {
                    size = s.len();
                }
                // (lua_struct reports the argument after the string.)
                if s.len() < size {
                    return Err(arg_error(lua, arg, "pack", "string too short"));
                }
                out.extend_from_slice(&s[..size]);
                if opt == b's' {
                    out.push(0);
                }
            }
            _ => {}
        }
    }
    Ok(mlua::BString::from(out))
}

fn unpack(lua: &Lua, (_at, fmt, data, init): (Where, mlua::String, mlua::String, Option<i64>)) -> mlua::Result<Results> {
    let (fmt, data) = (fmt.as_bytes().to_vec(), data.as_bytes().to_vec());
    let init = init.unwrap_or(1);
    if init < 1 {
        return Err(arg_error(lua, 3, "unpack", "offset must be 1 or greater"));
    }
    let mut pos = (init - 1) as usize;
    let mut f = Format::new(&fmt);
    let mut out = Results::new(lua)?;
    let short = || arg_error(lua, 2, "unpack", "data string too short");
    while let Some((opt, mut size)) = f.next(lua, "unpack")? {
        // lua_struct's luaL_checkstack per value, at the depth Redis's Lua stack allows.
        if out.len() >= MAX_RESULTS {
            return Err(lua_error(lua, "stack overflow (too many results)"));
        }
        pos += f.padding(pos, opt, size);
        if pos.checked_add(size).is_none_or(|end| end > data.len()) {
            return Err(short());
        }
        match opt {
            _ if is_int(opt) => {
                let bytes = &data[pos..pos + size];
                let fold = |a: u64, &b: &u8| a.checked_shl(8).unwrap_or(0) | b as u64;
                let mut v = if f.little { bytes.iter().rev().fold(0, fold) } else { bytes.iter().fold(0, fold) };
                let n = if opt.is_ascii_lowercase() {
                    if size < 8 {
                        let mask = 1u64 << (size * 8 - 1);
                        v = (v ^ mask).wrapping_sub(mask);
                    }
                    v as i64 as f64
                } else {
                    v as f64
                };
                out.push(Value::Number(n))?;
            }
            b'f' | b'd' => {
                let mut b = data[pos..pos + size].to_vec();
                if !f.little {
                    b.reverse();
                }
                let n = if opt == b'f' {
                    f32::from_le_bytes(b.try_into().expect("4 bytes")) as f64
                } else {
                    f64::from_le_bytes(b.try_into().expect("8 bytes"))
                };
                out.push(Value::Number(n))?;
            }
            b'c' => {
                if size == 0 {
                    let n = match out.pop()? {
                        Some(Value::Number(n)) => n,
                        Some(Value::Integer(n)) => n as f64,
                        _ => return Err(lua_error(lua, "format 'c0' needs a previous size")),
                    };
                    size = n.max(0.0) as usize;
                    if pos + size > data.len() {
                        return Err(short());
                    }
                }
                out.push(Value::String(lua.create_string(&data[pos..pos + size])?))?;
            }
            b's' => {
                let Some(len) = data[pos..].iter().position(|&c| c == 0) else {
                    return Err(lua_error(lua, "unfinished string in data"));
                };
                out.push(Value::String(lua.create_string(&data[pos..pos + len])?))?;
                size = len + 1;
            }
            _ => {}
        }
        pos += size;
    }
    out.push(Value::Number((pos + 1) as f64))?;
    Ok(out)
}

fn size(lua: &Lua, fmt: mlua::String) -> mlua::Result<f64> {
    let fmt = fmt.as_bytes().to_vec();
    let mut f = Format::new(&fmt);
    let mut pos = 0;
    while let Some((opt, size)) = f.next(lua, "size")? {
        pos += f.padding(pos, opt, size);
        if opt == b's' {
            return Err(arg_error(lua, 1, "size", "option 's' has no fixed size"));
        }
        if opt == b'c' && size == 0 {
            return Err(arg_error(lua, 1, "size", "option 'c0' has no fixed size"));
        }
        pos += size;
    }
    Ok(pos as f64)
}
