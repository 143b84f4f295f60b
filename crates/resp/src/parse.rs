//! Request framing, as redis/src/networking.c's processMultibulkBuffer / processInlineBuffer do it.
// PERF-CRITICAL

use memchr::memchr;

/// Limits applied while parsing (from `proto-max-bulk-len` and friends).
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Largest bulk argument accepted (`proto-max-bulk-len`).
    pub max_bulk_len: i64,
    /// Largest number of arguments in one multibulk request.
    pub max_multibulk_len: i64,
    /// Largest inline request / header line (Redis's PROTO_INLINE_MAX_SIZE).
    pub max_inline: usize,
    /// Unauthenticated clients get much smaller limits, as in Redis 7.
    pub authenticated: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_bulk_len: 512 * 1024 * 1024, max_multibulk_len: i32::MAX as i64, max_inline: 64 * 1024, authenticated: true }
    }
}

/// A framing error; the message is what Redis puts after `-ERR `, and the connection is then closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(pub String);

/// One complete request: argument spans into the parsed buffer, and how many bytes it used.
#[derive(Debug, Default)]
pub struct Request {
    /// (start, end) of each argument inside the buffer given to [`parse_request`].
    pub spans: Vec<(usize, usize)>,
    /// Bytes consumed from the buffer (the request's length).
    pub consumed: usize,
    /// Inline arguments may need unquoting, so they are owned.
    pub inline_args: Vec<Vec<u8>>,
    /// True when the request was an inline command.
    pub inline: bool,
}

impl Request {
    pub fn clear(&mut self) {
        self.spans.clear();
        self.inline_args.clear();
        self.consumed = 0;
        self.inline = false;
    }
    pub fn argc(&self) -> usize {
        if self.inline {
            self.inline_args.len()
        } else {
            self.spans.len()
        }
    }
    pub fn arg<'a>(&'a self, buf: &'a [u8], i: usize) -> &'a [u8] {
        if self.inline {
            &self.inline_args[i]
        } else {
            let (s, e) = self.spans[i];
            &buf[s..e]
        }
    }
}

fn parse_int(b: &[u8]) -> Option<i64> {
    // Like Redis's string2ll: optional '-', digits, no '+', no leading zeros beyond "0".
    if b.is_empty() || b.len() > 20 {
        return None;
    }
    let (neg, digits) = if b[0] == b'-' { (true, &b[1..]) } else { (false, b) };
    if digits.is_empty() {
        return None;
    }
    let mut v: i64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?;
        v = if neg { v.checked_sub((c - b'0') as i64)? } else { v.checked_add((c - b'0') as i64)? };
    }
    Some(v)
}

/// Parses one request from the front of `buf` into `req`.
/// `Ok(true)`: a request is ready (`req.consumed` bytes); `Ok(false)`: more bytes are needed
/// (an empty inline line is consumed silently: check `req.consumed`); `Err`: protocol error.
pub fn parse_request(buf: &[u8], limits: &Limits, req: &mut Request) -> Result<bool, ParseError> {
    req.clear();
    if buf.is_empty() {
        return Ok(false);
    }
    if buf[0] == b'*' {
        parse_multibulk(buf, limits, req)
    } else {
        parse_inline(buf, limits, req)
    }
}

fn parse_multibulk(buf: &[u8], limits: &Limits, req: &mut Request) -> Result<bool, ParseError> {
    let nl = match memchr(b'\r', buf) {
        Some(p) => p,
        None => {
            if buf.len() > limits.max_inline {
                return Err(ParseError("Protocol error: too big mbulk count string".into()));
            }
            return Ok(false);
        }
    };
    if nl > limits.max_inline {
        return Err(ParseError("Protocol error: too big mbulk count string".into()));
    }
    if nl + 1 >= buf.len() {
        return Ok(false);
    }
    let n = match parse_int(&buf[1..nl]) {
        Some(n) if n <= limits.max_multibulk_len && (limits.authenticated || n <= 10) => n,
        Some(n) if n <= limits.max_multibulk_len => {
            return Err(ParseError("Protocol error: unauthenticated multibulk length".into()));
        }
        _ => return Err(ParseError("Protocol error: invalid multibulk length".into())),
    };
    let mut pos = nl + 2;
    if n <= 0 {
        req.consumed = pos;
        return Ok(true);
    }
    // Do not trust the count for preallocation beyond a sane bound.
    req.spans.reserve((n as usize).min(1024));
    for _ in 0..n {
        if pos >= buf.len() {
            return Ok(false);
        }
        let rest = &buf[pos..];
        let cr = match memchr(b'\r', rest) {
            Some(p) => p,
            None => {
                if rest.len() > limits.max_inline {
                    return Err(ParseError("Protocol error: too big bulk count string".into()));
                }
                return Ok(false);
            }
        };
        if cr > limits.max_inline {
            return Err(ParseError("Protocol error: too big bulk count string".into()));
        }
        if rest[0] != b'$' {
            return Err(ParseError(format!("Protocol error: expected '$', got '{}'", rest[0] as char)));
        }
        if cr + 1 >= rest.len() {
            return Ok(false);
        }
        let len = match parse_int(&rest[1..cr]) {
            Some(l) if l >= 0 && l <= limits.max_bulk_len && (limits.authenticated || l <= 16384) => l as usize,
            Some(l) if l >= 0 && l <= limits.max_bulk_len => {
                return Err(ParseError("Protocol error: unauthenticated bulk length".into()));
            }
            _ => return Err(ParseError("Protocol error: invalid bulk length".into())),
        };
        let start = pos + cr + 2;
        let end = start + len;
        if end + 2 > buf.len() {
            return Ok(false);
        }
        req.spans.push((start, end));
        pos = end + 2;
    }
    req.consumed = pos;
    Ok(true)
}

fn parse_inline(buf: &[u8], limits: &Limits, req: &mut Request) -> Result<bool, ParseError> {
    let nl = match memchr(b'\n', buf) {
        Some(p) => p,
        None => {
            if buf.len() > limits.max_inline {
                return Err(ParseError("Protocol error: too big inline request".into()));
            }
            return Ok(false);
        }
    };
    let mut line = &buf[..nl];
    if line.last() == Some(&b'\r') {
        line = &line[..line.len() - 1];
    }
    req.consumed = nl + 1;
    req.inline = true;
    match split_args(line) {
        Some(args) => {
            req.inline_args = args;
            Ok(!req.inline_args.is_empty())
        }
        None => Err(ParseError("Protocol error: unbalanced quotes in request".into())),
    }
}

fn hex_val(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        b'A'..=b'F' => c - b'A' + 10,
        _ => 0,
    }
}

/// Splits a line into arguments with Redis's `sdssplitargs` rules (double quotes with escapes,
/// single quotes, spaces). `None` on unbalanced quotes. Used for inline commands and redis.conf.
pub fn split_args(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    let mut i = 0;
    let n = line.len();
    loop {
        while i < n && line[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= n {
            return Some(out);
        }
        let mut cur = Vec::new();
        let (mut inq, mut insq, mut done) = (false, false, false);
        while !done {
            if inq {
                if i >= n {
                    return None;
                }
                let c = line[i];
                if c == b'\\' && i + 3 < n && line[i + 1] == b'x' && line[i + 2].is_ascii_hexdigit() && line[i + 3].is_ascii_hexdigit() {
                    cur.push(hex_val(line[i + 2]) * 16 + hex_val(line[i + 3]));
                    i += 3;
                } else if c == b'\\' && i + 1 < n {
                    i += 1;
                    cur.push(match line[i] {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 8,
                        b'a' => 7,
                        o => o,
                    });
                } else if c == b'"' {
                    if i + 1 < n && !line[i + 1].is_ascii_whitespace() {
                        return None;
                    }
                    done = true;
                } else {
                    cur.push(c);
                }
            } else if insq {
                if i >= n {
                    return None;
                }
                let c = line[i];
                if c == b'\\' && i + 1 < n && line[i + 1] == b'\'' {
                    i += 1;
                    cur.push(b'\'');
                } else if c == b'\'' {
                    if i + 1 < n && !line[i + 1].is_ascii_whitespace() {
                        return None;
                    }
                    done = true;
                } else {
                    cur.push(c);
                }
            } else if i >= n {
                done = true;
            } else {
                match line[i] {
                    b' ' | b'\n' | b'\r' | b'\t' | 0 => done = true,
                    b'"' => inq = true,
                    b'\'' => insq = true,
                    c => cur.push(c),
                }
            }
            if i < n {
                i += 1;
            }
        }
        out.push(cur);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(buf: &[u8]) -> Result<Vec<Vec<Vec<u8>>>, ParseError> {
        let mut out = Vec::new();
        let mut req = Request::default();
        let mut pos = 0;
        let l = Limits::default();
        while pos < buf.len() {
            let ready = parse_request(&buf[pos..], &l, &mut req)?;
            if req.consumed == 0 {
                break;
            }
            if ready {
                out.push((0..req.argc()).map(|i| req.arg(&buf[pos..], i).to_vec()).collect());
            }
            pos += req.consumed;
        }
        Ok(out)
    }

    #[test]
    fn multibulk_and_pipeline() {
        let r = parse_all(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*1\r\n$4\r\nPING\r\n").unwrap();
        assert_eq!(r, vec![vec![b"GET".to_vec(), b"k".to_vec()], vec![b"PING".to_vec()]]);
    }

    #[test]
    fn incomplete_needs_more() {
        let mut req = Request::default();
        for cut in 1..20 {
            let full = b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n";
            let ready = parse_request(&full[..cut], &Limits::default(), &mut req).unwrap();
            assert!(!ready, "cut {cut}");
        }
    }

    #[test]
    fn inline_with_quotes() {
        let r = parse_all(b"SET k \"a b\\x41\" 'c d'\r\n").unwrap();
        assert_eq!(r[0], vec![b"SET".to_vec(), b"k".to_vec(), b"a bA".to_vec(), b"c d".to_vec()]);
        assert_eq!(parse_all(b"\r\n\r\nPING\n").unwrap(), vec![vec![b"PING".to_vec()]]);
    }

    #[test]
    fn unauthenticated_limits_have_their_own_errors() {
        let l = Limits { authenticated: false, ..Limits::default() };
        let mut req = Request::default();
        assert_eq!(parse_request(b"*11\r\n", &l, &mut req).unwrap_err().0, "Protocol error: unauthenticated multibulk length");
        assert_eq!(parse_request(b"*x\r\n", &l, &mut req).unwrap_err().0, "Protocol error: invalid multibulk length");
        assert_eq!(parse_request(b"*1\r\n$16385\r\n", &l, &mut req).unwrap_err().0, "Protocol error: unauthenticated bulk length");
        assert!(parse_request(b"*10\r\n$16384\r\n", &l, &mut req).is_ok());
    }

    #[test]
    fn errors_match_redis() {
        assert_eq!(parse_all(b"*x\r\n").unwrap_err().0, "Protocol error: invalid multibulk length");
        assert_eq!(parse_all(b"*1\r\n+PING\r\n").unwrap_err().0, "Protocol error: expected '$', got '+'");
        assert_eq!(parse_all(b"*1\r\n$-5\r\n").unwrap_err().0, "Protocol error: invalid bulk length");
        assert_eq!(parse_all(b"SET \"k\r\n").unwrap_err().0, "Protocol error: unbalanced quotes in request");
        let big = vec![b'a'; 70 * 1024];
        assert_eq!(parse_all(&big).unwrap_err().0, "Protocol error: too big inline request");
    }

    proptest::proptest! {
        #[test]
        fn roundtrip(args in proptest::collection::vec(proptest::collection::vec(proptest::num::u8::ANY, 0..40), 1..8)) {
            let mut buf = format!("*{}\r\n", args.len()).into_bytes();
            for a in &args {
                buf.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
                buf.extend_from_slice(a);
                buf.extend_from_slice(b"\r\n");
            }
            let parsed = parse_all(&buf).unwrap();
            proptest::prop_assert_eq!(parsed, vec![args]);
        }

        #[test]
        fn never_panics(data in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let _ = parse_all(&data);
        }
    }
}
