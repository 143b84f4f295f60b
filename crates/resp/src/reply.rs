//! Reply encoding into a reusable buffer, RESP2 or RESP3 as the connection negotiated.
// PERF-CRITICAL

/// The protocol version a connection speaks (`HELLO 2|3`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Proto {
    #[default]
    Resp2,
    Resp3,
}

/// An output buffer: replies are appended and the connection writes it once per batch.
#[derive(Debug, Default)]
pub struct ReplyBuf {
    pub buf: Vec<u8>,
    pub proto: Proto,
}

impl ReplyBuf {
    pub fn new(proto: Proto) -> Self {
        ReplyBuf { buf: Vec::with_capacity(16 * 1024), proto }
    }
    #[inline]
    pub fn resp3(&self) -> bool {
        self.proto == Proto::Resp3
    }
    #[inline]
    fn header(&mut self, tag: u8, n: i64) {
        self.buf.push(tag);
        let mut b = itoa::Buffer::new();
        self.buf.extend_from_slice(b.format(n).as_bytes());
        self.buf.extend_from_slice(b"\r\n");
    }
    #[inline]
    pub fn ok(&mut self) {
        self.buf.extend_from_slice(b"+OK\r\n");
    }
    /// `+text`: text must not contain CR or LF.
    #[inline]
    pub fn simple(&mut self, s: &[u8]) {
        self.buf.push(b'+');
        self.buf.extend_from_slice(s);
        self.buf.extend_from_slice(b"\r\n");
    }
    /// `-ERR ...`: pass the whole message including its code (`ERR ...`, `WRONGTYPE ...`).
    /// CR and LF are replaced by spaces, as Redis does, so a message can never break framing.
    pub fn error(&mut self, s: &str) {
        self.buf.push(b'-');
        self.buf.extend(s.bytes().map(|c| if c == b'\r' || c == b'\n' { b' ' } else { c }));
        self.buf.extend_from_slice(b"\r\n");
    }
    #[inline]
    pub fn int(&mut self, n: i64) {
        self.header(b':', n);
    }
    #[inline]
    pub fn bulk(&mut self, s: &[u8]) {
        self.header(b'$', s.len() as i64);
        self.buf.extend_from_slice(s);
        self.buf.extend_from_slice(b"\r\n");
    }
    /// A bulk string of an integer's decimal form.
    pub fn bulk_int(&mut self, n: i64) {
        let mut b = itoa::Buffer::new();
        let s = b.format(n);
        self.bulk(s.as_bytes());
    }
    /// The null bulk string (`$-1` / `_`).
    #[inline]
    pub fn null(&mut self) {
        if self.resp3() {
            self.buf.extend_from_slice(b"_\r\n");
        } else {
            self.buf.extend_from_slice(b"$-1\r\n");
        }
    }
    /// The null array (`*-1` / `_`).
    pub fn null_array(&mut self) {
        if self.resp3() {
            self.buf.extend_from_slice(b"_\r\n");
        } else {
            self.buf.extend_from_slice(b"*-1\r\n");
        }
    }
    #[inline]
    pub fn array(&mut self, n: usize) {
        self.header(b'*', n as i64);
    }
    /// A map of `n` pairs (RESP2: a flat array of 2n).
    pub fn map(&mut self, n: usize) {
        if self.resp3() {
            self.header(b'%', n as i64)
        } else {
            self.header(b'*', 2 * n as i64)
        }
    }
    /// A set (RESP2: an array).
    pub fn set(&mut self, n: usize) {
        if self.resp3() {
            self.header(b'~', n as i64)
        } else {
            self.header(b'*', n as i64)
        }
    }
    /// A push message (RESP2: an array).
    pub fn push(&mut self, n: usize) {
        if self.resp3() {
            self.header(b'>', n as i64)
        } else {
            self.header(b'*', n as i64)
        }
    }
    /// A double already formatted as Redis formats it (RESP3 `,`; RESP2 a bulk string).
    pub fn double_str(&mut self, s: &[u8]) {
        if self.resp3() {
            self.buf.push(b',');
            self.buf.extend_from_slice(s);
            self.buf.extend_from_slice(b"\r\n");
        } else {
            self.bulk(s);
        }
    }
    /// A boolean (RESP3 `#t`/`#f`; RESP2 `:1`/`:0`).
    pub fn boolean(&mut self, b: bool) {
        if self.resp3() {
            self.buf.extend_from_slice(if b { b"#t\r\n" } else { b"#f\r\n" });
        } else {
            self.int(b as i64);
        }
    }
    /// Verbatim text (RESP3 `=N\r\ntxt:...`; RESP2 a bulk string).
    pub fn verbatim(&mut self, s: &[u8]) {
        if self.resp3() {
            self.header(b'=', s.len() as i64 + 4);
            self.buf.extend_from_slice(b"txt:");
            self.buf.extend_from_slice(s);
            self.buf.extend_from_slice(b"\r\n");
        } else {
            self.bulk(s);
        }
    }
    /// Appends raw, already encoded bytes.
    pub fn raw(&mut self, s: &[u8]) {
        self.buf.extend_from_slice(s);
    }
    pub fn len(&self) -> usize {
        self.buf.len()
    }
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn encodes_both_protocols() {
        let mut r = ReplyBuf::new(Proto::Resp2);
        r.null();
        r.map(1);
        r.boolean(true);
        r.error("ERR bad\r\nthing");
        assert_eq!(r.buf, b"$-1\r\n*2\r\n:1\r\n-ERR bad  thing\r\n");
        let mut r = ReplyBuf::new(Proto::Resp3);
        r.null();
        r.map(1);
        r.boolean(true);
        r.double_str(b"1.5");
        assert_eq!(r.buf, b"_\r\n%1\r\n#t\r\n,1.5\r\n");
    }
}
