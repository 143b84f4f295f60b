//! The client side of RESP2: parsing a server's replies (what the replica link, Sentinel's links
//! to its instances and other sentinels read). RESP3 types are not parsed: these links never
//! send HELLO 3.

/// One reply as a client sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    Status(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Reply>>),
}

impl Reply {
    /// The reply as text (status, bulk string or integer).
    pub fn text(&self) -> Option<String> {
        match self {
            Reply::Status(s) => Some(s.clone()),
            Reply::Bulk(Some(b)) => Some(String::from_utf8_lossy(b).into_owned()),
            Reply::Int(n) => Some(n.to_string()),
            _ => None,
        }
    }
    pub fn int(&self) -> Option<i64> {
        match self {
            Reply::Int(n) => Some(*n),
            _ => self.text()?.parse().ok(),
        }
    }
    pub fn items(&self) -> &[Reply] {
        match self {
            Reply::Array(Some(v)) => v,
            _ => &[],
        }
    }
}

/// The most nested arrays a reply may have (deeper input is a protocol error).
const MAX_DEPTH: usize = 32;

/// Parses one reply from the start of `buf`: `Ok(Some((reply, bytes used)))`, `Ok(None)` when
/// more bytes are needed, `Err` on a protocol error.
pub fn parse_reply(buf: &[u8]) -> Result<Option<(Reply, usize)>, String> {
    let mut pos = 0;
    match parse_at(buf, &mut pos, 0)? {
        Some(r) => Ok(Some((r, pos))),
        None => Ok(None),
    }
}

fn line<'a>(buf: &'a [u8], pos: &mut usize) -> Option<&'a [u8]> {
    let rest = &buf[*pos..];
    let i = memchr_crlf(rest)?;
    *pos += i + 2;
    Some(&rest[..i])
}

fn memchr_crlf(b: &[u8]) -> Option<usize> {
    b.windows(2).position(|w| w == b"\r\n")
}

fn num(l: &[u8]) -> Result<i64, String> {
    std::str::from_utf8(l).ok().and_then(|s| s.parse().ok()).ok_or_else(|| "Protocol error: invalid length or integer".to_string())
}

fn parse_at(buf: &[u8], pos: &mut usize, depth: usize) -> Result<Option<Reply>, String> {
    if depth > MAX_DEPTH {
        return Err("Protocol error: nested too deeply".into());
    }
    if *pos >= buf.len() {
        return Ok(None);
    }
    let t = buf[*pos];
    let start = *pos;
    *pos += 1;
    let Some(l) = line(buf, pos) else {
        *pos = start;
        return Ok(None);
    };
    let text = || String::from_utf8_lossy(l).into_owned();
    Ok(Some(match t {
        b'+' => Reply::Status(text()),
        b'-' => Reply::Error(text()),
        b':' => Reply::Int(num(l)?),
        b'$' => {
            let n = num(l)?;
            if n < 0 {
                Reply::Bulk(None)
            } else {
                let n = n as usize;
                if buf.len() < *pos + n + 2 {
                    *pos = start;
                    return Ok(None);
                }
                let v = buf[*pos..*pos + n].to_vec();
                *pos += n + 2;
                Reply::Bulk(Some(v))
            }
        }
        b'*' => {
            let n = num(l)?;
            if n < 0 {
                Reply::Array(None)
            } else {
                let mut v = Vec::with_capacity((n as usize).min(1024));
                for _ in 0..n {
                    match parse_at(buf, pos, depth + 1)? {
                        Some(r) => v.push(r),
                        None => {
                            *pos = start;
                            return Ok(None);
                        }
                    }
                }
                Reply::Array(Some(v))
            }
        }
        _ => return Err(format!("Protocol error: unexpected reply type byte '{}'", t as char)),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_resp2_type_and_waits_for_more() {
        let full = b"*4\r\n+OK\r\n:-5\r\n$3\r\nabc\r\n*2\r\n$-1\r\n-ERR x\r\n";
        let (r, n) = parse_reply(full).unwrap().unwrap();
        assert_eq!(n, full.len());
        assert_eq!(
            r,
            Reply::Array(Some(vec![
                Reply::Status("OK".into()),
                Reply::Int(-5),
                Reply::Bulk(Some(b"abc".to_vec())),
                Reply::Array(Some(vec![Reply::Bulk(None), Reply::Error("ERR x".into())])),
            ]))
        );
        for cut in 0..full.len() {
            assert_eq!(parse_reply(&full[..cut]).unwrap(), None, "cut at {}", cut);
        }
        assert!(parse_reply(b"?x\r\n").is_err());
        assert!(parse_reply(b"$abc\r\n").is_err());
    }
}
