//! DUMP/RESTORE and FUNCTION DUMP/RESTORE payloads: the RDB encoding of a value (or of function
//! libraries), then the RDB version (2 bytes LE) and a CRC64 (8 bytes LE) of everything before.

use crate::decode::Cursor;
use crate::{opcodes, Error, Value, CRC64, RDB_VERSION};

/// Seals an encoded value (type byte and value) into a payload.
pub fn seal(mut body: Vec<u8>) -> Vec<u8> {
    body.extend_from_slice(&RDB_VERSION.to_le_bytes());
    let crc = CRC64.checksum(&body);
    body.extend_from_slice(&crc.to_le_bytes());
    body
}

/// The encoded part of a payload, when its version is one we read and its checksum is right.
pub fn open(payload: &[u8]) -> Option<&[u8]> {
    if payload.len() < 10 {
        return None;
    }
    let (body, footer) = payload.split_at(payload.len() - 10);
    let version = u16::from_le_bytes([footer[0], footer[1]]);
    if version > RDB_VERSION {
        return None;
    }
    let crc = u64::from_le_bytes(footer[2..].try_into().expect("8 bytes"));
    (CRC64.checksum(&payload[..payload.len() - 8]) == crc).then_some(body)
}

/// The value in a payload's body.
pub fn value(body: &[u8]) -> Result<Value, Error> {
    let mut c = Cursor::new(body);
    let t = c.byte()?;
    let v = c.value(t)?;
    if !c.at_end() {
        return Err(c.err("data after the value"));
    }
    Ok(v)
}

/// The library codes in a FUNCTION DUMP payload's body.
pub fn functions(body: &[u8]) -> Result<Vec<Vec<u8>>, Error> {
    let mut c = Cursor::new(body);
    let mut out = Vec::new();
    while !c.at_end() {
        match c.byte()? {
            opcodes::FUNCTION2 => out.push(c.string()?),
            _ => return Err(Error { offset: c.pos - 1, msg: "given type is not a function".into() }),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_seal_and_open() {
        // redis-server 7.0.15's DUMP of RPUSH l a 1 -5 1000.
        let redis = [
            0x12, 0x01, 0x02, 0x12, 0x12, 0, 0, 0, 0x04, 0, 0x81, b'a', 0x02, 0x01, 0x01, 0xdf, 0xfb, 0x02, 0xc3, 0xe8, 0x02, 0xff, 0x0a,
            0, 0x94, 0x27, 0xc3, 0x1d, 0x2f, 0x23, 0xd4, 0xc8,
        ];
        let body = open(&redis).expect("checksum and version accepted");
        assert_eq!(value(body).unwrap(), Value::List(vec![b"a".to_vec(), b"1".to_vec(), b"-5".to_vec(), b"1000".to_vec()]));
        assert_eq!(seal(body.to_vec()), redis);
        let mut bad = redis;
        bad[5] ^= 1;
        assert!(open(&bad).is_none());
    }
}
