//! Small helpers shared by every layer: Redis's number parsing and formatting, glob matching,
//! hash slots, the clock.

use std::time::{SystemTime, UNIX_EPOCH};

/// Stack of the threads that run commands: a script's reply or a MessagePack value may nest
/// thousands of levels deep (up to Lua's stack limit, as in Redis) and is converted recursively.
/// Only the pages used are committed.
pub const COMMAND_THREAD_STACK: usize = 32 * 1024 * 1024;

/// Milliseconds since the Unix epoch.
#[inline]
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// Microseconds since the Unix epoch.
pub fn now_us() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as i64).unwrap_or(0)
}

/// Redis's `string2ll`: the whole slice must be a canonical 64-bit integer
/// (no spaces, no '+', no leading zeros).
pub fn parse_i64(b: &[u8]) -> Option<i64> {
    if b.is_empty() || b.len() > 20 {
        return None;
    }
    if b.len() == 1 && b[0] == b'0' {
        return Some(0);
    }
    let (neg, d) = if b[0] == b'-' { (true, &b[1..]) } else { (false, b) };
    if d.is_empty() || d[0] == b'0' {
        return None;
    }
    let mut v: i64 = 0;
    for &c in d {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?;
        v = if neg { v.checked_sub((c - b'0') as i64)? } else { v.checked_add((c - b'0') as i64)? };
    }
    Some(v)
}

/// Redis's `string2ld`/`strtold` acceptance for floats given by clients: no spaces, not empty,
/// not NaN. Returns the value; inf is accepted as Redis does.
pub fn parse_f64(b: &[u8]) -> Option<f64> {
    if b.is_empty() || b.len() > 5000 || b[0].is_ascii_whitespace() || b[b.len() - 1].is_ascii_whitespace() {
        return None;
    }
    let s = std::str::from_utf8(b).ok()?;
    let v: f64 = match s.to_ascii_lowercase().as_str() {
        "inf" | "+inf" | "infinity" | "+infinity" => f64::INFINITY,
        "-inf" | "-infinity" => f64::NEG_INFINITY,
        _ => {
            // Rust rejects some strtod forms (hex floats); accept what C would for the common ones.
            if s.contains(['x', 'X']) {
                return None;
            }
            let v: f64 = s.parse().ok()?;
            if v.is_infinite() {
                // strtod's ERANGE: Redis rejects overflowing literals.
                return None;
            }
            v
        }
    };
    if v.is_nan() {
        None
    } else {
        Some(v)
    }
}

/// `%.17g` as C prints it: what Redis uses for doubles in replies.
pub fn fmt_g17(v: f64) -> String {
    if v.is_infinite() {
        return if v > 0.0 { "inf".into() } else { "-inf".into() };
    }
    let mut buf = [0u8; 64];
    // SAFETY: the buffer is large enough for %.17g of any double and snprintf NUL-terminates.
    let n = unsafe { libc::snprintf(buf.as_mut_ptr() as *mut libc::c_char, buf.len(), c"%.17g".as_ptr(), v) };
    String::from_utf8_lossy(&buf[..n.clamp(0, 63) as usize]).into_owned()
}

/// How INCRBYFLOAT formats its result (Redis's `ld2string` in LD_STR_HUMAN mode):
/// `%.17Lf` with trailing zeros (and a trailing dot) removed; "-0" becomes "0".
pub fn fmt_human(v: f64) -> String {
    if v.is_infinite() {
        return if v > 0.0 { "inf".into() } else { "-inf".into() };
    }
    let mut buf = vec![0u8; 400];
    // SAFETY: 400 bytes hold %.17f of any f64 (at most 309 integer digits + 18) and the NUL.
    let n = unsafe { libc::snprintf(buf.as_mut_ptr() as *mut libc::c_char, buf.len(), c"%.17f".as_ptr(), v) };
    let mut s = String::from_utf8_lossy(&buf[..n.clamp(0, 399) as usize]).into_owned();
    if s.contains('.') {
        while s.ends_with('0') {
            s.pop();
        }
        if s.ends_with('.') {
            s.pop();
        }
    }
    if s == "-0" {
        s = "0".into();
    }
    s
}

/// Redis's `stringmatchlen`: glob-style matching with `*`, `?`, `[...]`, `[^...]`, ranges, `\` escapes.
pub fn glob_match(pattern: &[u8], string: &[u8], nocase: bool) -> bool {
    glob_inner(pattern, string, nocase, 0, &mut false)
}

/// `give_up` is set when the pattern after a `*` matched no suffix of the string: then no
/// earlier `*` can help by matching more (the rest would start later still), so every caller
/// stops. Without it nested stars take exponential time (`a*a*a*...b` against a long run of
/// `a`s); with it a match is polynomial, as Redis bounds it.
fn glob_inner(mut p: &[u8], mut s: &[u8], nocase: bool, depth: u32, give_up: &mut bool) -> bool {
    if depth > 1000 {
        return false;
    }
    let eq = |a: u8, b: u8| {
        if nocase {
            a.eq_ignore_ascii_case(&b)
        } else {
            a == b
        }
    };
    while !p.is_empty() && !s.is_empty() {
        match p[0] {
            b'*' => {
                while p.len() > 1 && p[1] == b'*' {
                    p = &p[1..];
                }
                if p.len() == 1 {
                    return true;
                }
                for i in 0..s.len() {
                    if glob_inner(&p[1..], &s[i..], nocase, depth + 1, give_up) {
                        return true;
                    }
                    if *give_up {
                        return false;
                    }
                }
                *give_up = true;
                return false;
            }
            b'?' => {
                s = &s[1..];
            }
            b'[' => {
                p = &p[1..];
                let not = !p.is_empty() && p[0] == b'^';
                if not {
                    p = &p[1..];
                }
                let mut matched = false;
                loop {
                    if p.is_empty() {
                        break;
                    }
                    if p[0] == b'\\' && p.len() >= 2 {
                        p = &p[1..];
                        if eq(p[0], s[0]) {
                            matched = true;
                        }
                    } else if p[0] == b']' {
                        break;
                    } else if p.len() >= 3 && p[1] == b'-' {
                        let (mut start, mut end) = (p[0], p[2]);
                        let mut c = s[0];
                        if start > end {
                            std::mem::swap(&mut start, &mut end);
                        }
                        if nocase {
                            start = start.to_ascii_lowercase();
                            end = end.to_ascii_lowercase();
                            c = c.to_ascii_lowercase();
                        }
                        p = &p[2..];
                        if c >= start && c <= end {
                            matched = true;
                        }
                    } else if eq(p[0], s[0]) {
                        matched = true;
                    }
                    p = &p[1..];
                }
                if p.is_empty() {
                    // Unterminated class: Redis treats the end of pattern as the end of the class.
                    p = b"]";
                }
                let matched = if not { !matched } else { matched };
                if !matched {
                    return false;
                }
                s = &s[1..];
            }
            b'\\' if p.len() >= 2 => {
                p = &p[1..];
                if !eq(p[0], s[0]) {
                    return false;
                }
                s = &s[1..];
            }
            c => {
                if !eq(c, s[0]) {
                    return false;
                }
                s = &s[1..];
            }
        }
        p = &p[1..];
        if s.is_empty() {
            while !p.is_empty() && p[0] == b'*' {
                p = &p[1..];
            }
            break;
        }
    }
    p.is_empty() && s.is_empty()
}

const CRC16: crc::Crc<u16> = crc::Crc::<u16>::new(&crc::CRC_16_XMODEM);

/// The hash slot of a key: CRC16-XMODEM of the key or of its `{hash tag}`, mod 16384.
#[inline]
pub fn key_slot(key: &[u8]) -> usize {
    let k = match memchr::memchr(b'{', key) {
        Some(s) => match memchr::memchr(b'}', &key[s + 1..]) {
            Some(0) | None => key,
            Some(e) => &key[s + 1..s + 1 + e],
        },
        None => key,
    };
    (CRC16.checksum(k) & 0x3fff) as usize
}

/// 40 random hex characters, like Redis's run ids.
pub fn random_hex40() -> String {
    use rand::Rng;
    let mut r = rand::thread_rng();
    (0..40).map(|_| char::from_digit(r.gen_range(0..16), 16).unwrap_or('0')).collect()
}

/// The role letter of log lines (Redis's `M` master, `S` replica, `X` sentinel, `C` child).
pub static LOG_ROLE: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(b'M');

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn slots_match_redis() {
        assert_eq!(CRC16.checksum(b"123456789"), 0x31c3);
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        assert_eq!(key_slot(b"foo{}{bar}"), key_slot(b"foo{}{bar}"));
        assert_eq!(key_slot(b"foo{{bar}}zap"), key_slot(b"{bar"));
    }
    #[test]
    fn ints() {
        assert_eq!(parse_i64(b"-12"), Some(-12));
        assert_eq!(parse_i64(b"012"), None);
        assert_eq!(parse_i64(b"+1"), None);
        assert_eq!(parse_i64(b" 1"), None);
        assert_eq!(parse_i64(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_i64(b"9223372036854775808"), None);
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
    }
    #[test]
    fn floats() {
        assert_eq!(fmt_g17(1.5), "1.5");
        assert_eq!(fmt_g17(0.1), "0.10000000000000001");
        assert_eq!(fmt_human(10.5), "10.5");
        assert_eq!(fmt_human(3.0e3), "3000");
        assert_eq!(fmt_human(-0.0), "0");
    }
    #[test]
    fn globs() {
        assert!(glob_match(b"h?llo", b"hello", false));
        assert!(glob_match(b"h*llo", b"heeeello", false));
        assert!(glob_match(b"h[ae]llo", b"hallo", false));
        assert!(!glob_match(b"h[^e]llo", b"hello", false));
        assert!(glob_match(b"h[a-b]llo", b"hbllo", false));
        // As Redis: "*" does not match the empty string (KEYS/SCAN special-case a lone "*").
        assert!(!glob_match(b"*", b"", false));
        assert!(!glob_match(b"a", b"", false));
        assert!(glob_match(b"h\\*llo", b"h*llo", false));
        assert!(glob_match(b"HELLO", b"hello", true));
        assert!(glob_match(b"*a*b*c", b"xxaxxbxxc", false));
        assert!(!glob_match(b"*a*b*c", b"xxaxxcxxb", false));
        assert!(glob_match(b"a*?b", b"axxb", false) && !glob_match(b"a*?b", b"ab", false));
    }

    /// Nested stars against a long string that almost matches: answered at once (it took
    /// exponential time before), with Redis's answer.
    #[test]
    fn nested_stars_do_not_take_exponential_time() {
        let key = vec![b'a'; 70];
        let pattern = format!("{}b", "a*".repeat(31));
        assert!(!glob_match(pattern.as_bytes(), &key, false));
        let mut matching = key.clone();
        matching.push(b'b');
        assert!(glob_match(pattern.as_bytes(), &matching, false));
    }
}
