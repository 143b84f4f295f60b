//! The cluster bus's wire format, Redis's own (`clusterMsg` in cluster.h): a 2256-byte header
//! (signature `RCmb`, total length, version 1, ports, type, count, epochs, replication offset,
//! sender name, the sender's slot bitmap, its master, its IP, flags, state, message flags),
//! followed by the type's data. Integers are big-endian. Pure encoding and decoding: no I/O.

pub const NAMELEN: usize = 40;
pub const SLOTS: usize = 16384;
pub const IPLEN: usize = 46;
pub const HEADER_LEN: usize = 2256;
pub const GOSSIP_LEN: usize = 104;

pub const PING: u16 = 0;
pub const PONG: u16 = 1;
pub const MEET: u16 = 2;
pub const FAIL: u16 = 3;
pub const PUBLISH: u16 = 4;
pub const AUTH_REQUEST: u16 = 5;
pub const AUTH_ACK: u16 = 6;
pub const UPDATE: u16 = 7;
pub const MFSTART: u16 = 8;
pub const MODULE: u16 = 9;
pub const PUBLISHSHARD: u16 = 10;
pub const TYPE_COUNT: usize = 11;

/// Names of the message types as CLUSTER INFO's statistics spell them.
pub const TYPE_NAMES: [&str; TYPE_COUNT] =
    ["ping", "pong", "meet", "fail", "publish", "auth-req", "auth-ack", "update", "mfstart", "module", "publishshard"];

// Node flags (clusterNode.flags, also on the wire).
pub const F_MASTER: u16 = 1;
pub const F_SLAVE: u16 = 2;
pub const F_PFAIL: u16 = 4;
pub const F_FAIL: u16 = 8;
pub const F_MYSELF: u16 = 16;
pub const F_HANDSHAKE: u16 = 32;
pub const F_NOADDR: u16 = 64;
pub const F_MEET: u16 = 128;
pub const F_MIGRATE_TO: u16 = 256;
pub const F_NOFAILOVER: u16 = 512;

// mflags[0].
pub const MF_PAUSED: u8 = 1;
pub const MF_FORCEACK: u8 = 2;
pub const MF_EXT_DATA: u8 = 4;

pub const EXT_HOSTNAME: u16 = 0;

pub type Name = [u8; NAMELEN];
pub const NULL_NAME: Name = [0; NAMELEN];

/// A slot bitmap (`myslots`, UPDATE's slots).
#[derive(Clone, PartialEq, Eq)]
pub struct Bitmap(pub Box<[u8; SLOTS / 8]>);

impl Default for Bitmap {
    fn default() -> Self {
        Bitmap(Box::new([0; SLOTS / 8]))
    }
}

impl Bitmap {
    pub fn get(&self, slot: usize) -> bool {
        self.0[slot / 8] & (1 << (slot & 7)) != 0
    }
    pub fn set(&mut self, slot: usize, on: bool) {
        if on {
            self.0[slot / 8] |= 1 << (slot & 7);
        } else {
            self.0[slot / 8] &= !(1 << (slot & 7));
        }
    }
    pub fn count(&self) -> usize {
        self.0.iter().map(|b| b.count_ones() as usize).sum()
    }
    /// The set slots as (first, last) ranges, ascending.
    pub fn ranges(&self) -> Vec<(usize, usize)> {
        let mut v = Vec::new();
        let mut j = 0;
        while j < SLOTS {
            if self.get(j) {
                let start = j;
                while j + 1 < SLOTS && self.get(j + 1) {
                    j += 1;
                }
                v.push((start, j));
            }
            j += 1;
        }
        v
    }
}

impl std::fmt::Debug for Bitmap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Bitmap({} slots)", self.count())
    }
}

/// One gossip entry of a PING, PONG or MEET.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gossip {
    pub name: Name,
    pub ping_sent: u32,
    pub pong_received: u32,
    pub ip: String,
    pub port: u16,
    pub cport: u16,
    pub flags: u16,
    pub pport: u16,
}

/// The data after the header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    /// PING, PONG, MEET: gossip about other nodes, and the announced hostname (an extension).
    Ping {
        gossip: Vec<Gossip>,
        hostname: Option<String>,
    },
    Fail {
        name: Name,
    },
    /// PUBLISH and PUBLISHSHARD.
    Publish {
        channel: Vec<u8>,
        message: Vec<u8>,
    },
    Update {
        config_epoch: u64,
        name: Name,
        slots: Bitmap,
    },
    /// FAILOVER_AUTH_REQUEST, FAILOVER_AUTH_ACK, MFSTART and anything else: no data we use.
    Empty,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Msg {
    pub kind: u16,
    pub port: u16,
    pub current_epoch: u64,
    pub config_epoch: u64,
    pub offset: u64,
    pub sender: Name,
    pub myslots: Bitmap,
    pub slaveof: Name,
    pub myip: String,
    pub pport: u16,
    pub cport: u16,
    pub flags: u16,
    /// 0 ok, 1 fail (the sender's view of the cluster).
    pub state: u8,
    pub mflags: [u8; 3],
    pub body: Body,
}

fn put_str(out: &mut Vec<u8>, s: &[u8], len: usize) {
    let n = s.len().min(len - 1);
    out.extend_from_slice(&s[..n]);
    out.resize(out.len() + (len - n), 0);
}

fn get_str(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}
fn name_at(b: &[u8], at: usize) -> Name {
    b[at..at + NAMELEN].try_into().expect("40 bytes")
}

impl Msg {
    /// The message's bytes, with its total length filled in.
    pub fn encode(&self) -> Vec<u8> {
        let mut o = Vec::with_capacity(HEADER_LEN + 512);
        o.extend_from_slice(b"RCmb");
        o.extend_from_slice(&[0; 4]); // totlen, below
        o.extend_from_slice(&1u16.to_be_bytes());
        o.extend_from_slice(&self.port.to_be_bytes());
        o.extend_from_slice(&self.kind.to_be_bytes());
        let count = match &self.body {
            Body::Ping { gossip, .. } => gossip.len() as u16,
            _ => 0,
        };
        o.extend_from_slice(&count.to_be_bytes());
        o.extend_from_slice(&self.current_epoch.to_be_bytes());
        o.extend_from_slice(&self.config_epoch.to_be_bytes());
        o.extend_from_slice(&self.offset.to_be_bytes());
        o.extend_from_slice(&self.sender);
        o.extend_from_slice(&self.myslots.0[..]);
        o.extend_from_slice(&self.slaveof);
        put_str(&mut o, self.myip.as_bytes(), IPLEN);
        let exts: u16 = matches!(&self.body, Body::Ping { hostname: Some(_), .. }) as u16;
        o.extend_from_slice(&exts.to_be_bytes());
        o.extend_from_slice(&[0; 30]);
        o.extend_from_slice(&self.pport.to_be_bytes());
        o.extend_from_slice(&self.cport.to_be_bytes());
        o.extend_from_slice(&self.flags.to_be_bytes());
        o.push(self.state);
        o.extend_from_slice(&self.mflags);
        debug_assert_eq!(o.len(), HEADER_LEN);
        match &self.body {
            Body::Ping { gossip, hostname } => {
                for g in gossip {
                    o.extend_from_slice(&g.name);
                    o.extend_from_slice(&g.ping_sent.to_be_bytes());
                    o.extend_from_slice(&g.pong_received.to_be_bytes());
                    put_str(&mut o, g.ip.as_bytes(), IPLEN);
                    o.extend_from_slice(&g.port.to_be_bytes());
                    o.extend_from_slice(&g.cport.to_be_bytes());
                    o.extend_from_slice(&g.flags.to_be_bytes());
                    o.extend_from_slice(&g.pport.to_be_bytes());
                    o.extend_from_slice(&[0; 2]);
                }
                if let Some(h) = hostname {
                    // Extension header (length, type, unused), then the NUL-terminated name,
                    // padded to a multiple of 8 bytes.
                    let data = (h.len() + 1).div_ceil(8) * 8;
                    let len = 8 + data;
                    o.extend_from_slice(&(len as u32).to_be_bytes());
                    o.extend_from_slice(&EXT_HOSTNAME.to_be_bytes());
                    o.extend_from_slice(&[0; 2]);
                    o.extend_from_slice(h.as_bytes());
                    o.resize(o.len() + data - h.len(), 0);
                }
            }
            Body::Fail { name } => o.extend_from_slice(name),
            Body::Publish { channel, message } => {
                o.extend_from_slice(&(channel.len() as u32).to_be_bytes());
                o.extend_from_slice(&(message.len() as u32).to_be_bytes());
                o.extend_from_slice(channel);
                o.extend_from_slice(message);
                // The C struct reserves 8 bytes of bulk data even when less is used.
                let min = HEADER_LEN + 16;
                if o.len() < min {
                    o.resize(min, 0);
                }
            }
            Body::Update { config_epoch, name, slots } => {
                o.extend_from_slice(&config_epoch.to_be_bytes());
                o.extend_from_slice(name);
                o.extend_from_slice(&slots.0[..]);
            }
            Body::Empty => {}
        }
        let total = o.len() as u32;
        o[4..8].copy_from_slice(&total.to_be_bytes());
        o
    }

    /// Decodes one whole message (`b` holds exactly `totlen` bytes). Err: why it was refused.
    pub fn decode(b: &[u8]) -> Result<Msg, &'static str> {
        if b.len() < HEADER_LEN - 8 || &b[..4] != b"RCmb" {
            return Err("bad signature or short message");
        }
        if u32_at(b, 4) as usize != b.len() {
            return Err("length mismatch");
        }
        if u16_at(b, 8) != 1 {
            return Err("unknown protocol version");
        }
        let kind = u16_at(b, 12);
        let count = u16_at(b, 14) as usize;
        if b.len() < HEADER_LEN && !matches!(kind, AUTH_REQUEST | AUTH_ACK | MFSTART) {
            return Err("short message");
        }
        let mut header = [0u8; HEADER_LEN];
        let n = b.len().min(HEADER_LEN);
        header[..n].copy_from_slice(&b[..n]);
        let h = &header[..];
        let mut myslots = Bitmap::default();
        myslots.0.copy_from_slice(&h[80..80 + SLOTS / 8]);
        let data = &b[n..];
        let body = match kind {
            PING | PONG | MEET => {
                if data.len() < count * GOSSIP_LEN {
                    return Err("gossip section too short");
                }
                let mut gossip = Vec::with_capacity(count);
                for i in 0..count {
                    let g = &data[i * GOSSIP_LEN..(i + 1) * GOSSIP_LEN];
                    gossip.push(Gossip {
                        name: name_at(g, 0),
                        ping_sent: u32_at(g, 40),
                        pong_received: u32_at(g, 44),
                        ip: get_str(&g[48..48 + IPLEN]),
                        port: u16_at(g, 94),
                        cport: u16_at(g, 96),
                        flags: u16_at(g, 98),
                        pport: u16_at(g, 100),
                    });
                }
                let mut hostname = None;
                let mut rest = &data[count * GOSSIP_LEN..];
                let exts = u16_at(h, 2214);
                for _ in 0..exts {
                    if rest.len() < 8 {
                        return Err("extension header too short");
                    }
                    let len = u32_at(rest, 0) as usize;
                    if len < 8 || len > rest.len() {
                        return Err("bad extension length");
                    }
                    if u16_at(rest, 4) == EXT_HOSTNAME {
                        hostname = Some(get_str(&rest[8..len]));
                    }
                    rest = &rest[len..];
                }
                Body::Ping { gossip, hostname }
            }
            FAIL => {
                if data.len() < NAMELEN {
                    return Err("FAIL too short");
                }
                Body::Fail { name: name_at(data, 0) }
            }
            PUBLISH | PUBLISHSHARD => {
                if data.len() < 8 {
                    return Err("PUBLISH too short");
                }
                let cl = u32_at(data, 0) as usize;
                let ml = u32_at(data, 4) as usize;
                if data.len() < 8 + cl + ml {
                    return Err("PUBLISH too short");
                }
                Body::Publish { channel: data[8..8 + cl].to_vec(), message: data[8 + cl..8 + cl + ml].to_vec() }
            }
            UPDATE => {
                if data.len() < 8 + NAMELEN + SLOTS / 8 {
                    return Err("UPDATE too short");
                }
                let mut slots = Bitmap::default();
                slots.0.copy_from_slice(&data[48..48 + SLOTS / 8]);
                Body::Update { config_epoch: u64_at(data, 0), name: name_at(data, 8), slots }
            }
            _ => Body::Empty,
        };
        Ok(Msg {
            kind,
            port: u16_at(h, 10),
            current_epoch: u64_at(h, 16),
            config_epoch: u64_at(h, 24),
            offset: u64_at(h, 32),
            sender: name_at(h, 40),
            myslots,
            slaveof: name_at(h, 2128),
            myip: get_str(&h[2168..2168 + IPLEN]),
            pport: u16_at(h, 2246),
            cport: u16_at(h, 2248),
            flags: u16_at(h, 2250),
            state: h[2252],
            mflags: [h[2253], h[2254], h[2255]],
            body,
        })
    }
}

/// The length a message announces in its first 8 bytes, once they have arrived.
pub fn frame_len(b: &[u8]) -> Option<Result<usize, &'static str>> {
    if b.len() < 8 {
        return None;
    }
    if &b[..4] != b"RCmb" {
        return Some(Err("bad signature"));
    }
    let n = u32_at(b, 4) as usize;
    if !(8..=64 * 1024 * 1024).contains(&n) {
        return Some(Err("bad length"));
    }
    Some(Ok(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(c: u8) -> Name {
        [c; NAMELEN]
    }

    fn header(kind: u16, body: Body) -> Msg {
        let mut slots = Bitmap::default();
        slots.set(0, true);
        slots.set(16383, true);
        Msg {
            kind,
            port: 7000,
            current_epoch: 5,
            config_epoch: 3,
            offset: 12345,
            sender: name(b'a'),
            myslots: slots,
            slaveof: NULL_NAME,
            myip: "127.0.0.1".into(),
            pport: 0,
            cport: 17000,
            flags: F_MASTER | F_MYSELF,
            state: 0,
            mflags: [MF_EXT_DATA, 0, 0],
            body,
        }
    }

    #[test]
    fn header_fields_sit_at_redis_offsets() {
        let m = header(PING, Body::Ping { gossip: vec![], hostname: None });
        let b = m.encode();
        assert_eq!(b.len(), HEADER_LEN);
        assert_eq!(&b[0..4], b"RCmb");
        assert_eq!(u32_at(&b, 4) as usize, HEADER_LEN);
        assert_eq!(u16_at(&b, 10), 7000);
        assert_eq!(u64_at(&b, 16), 5);
        assert_eq!(u64_at(&b, 32), 12345);
        assert_eq!(b[40], b'a');
        assert_eq!(b[80], 1); // slot 0
        assert_eq!(b[80 + 2047], 0x80); // slot 16383
        assert_eq!(&b[2168..2177], b"127.0.0.1");
        assert_eq!(u16_at(&b, 2248), 17000);
        assert_eq!(u16_at(&b, 2250), F_MASTER | F_MYSELF);
        assert_eq!(b[2253], MF_EXT_DATA);
    }

    #[test]
    fn every_body_round_trips() {
        let g = Gossip {
            name: name(b'b'),
            ping_sent: 1,
            pong_received: 2,
            ip: "127.0.0.2".into(),
            port: 7001,
            cport: 17001,
            flags: F_SLAVE | F_PFAIL,
            pport: 0,
        };
        let mut slots = Bitmap::default();
        for s in 100..200 {
            slots.set(s, true);
        }
        for body in [
            Body::Ping { gossip: vec![g.clone(), g.clone()], hostname: None },
            Body::Ping { gossip: vec![g], hostname: Some("node-1.example".into()) },
            Body::Fail { name: name(b'c') },
            Body::Publish { channel: b"ch".to_vec(), message: b"hello".to_vec() },
            Body::Publish { channel: b"a-longer-channel".to_vec(), message: b"m".repeat(100) },
            Body::Update { config_epoch: 9, name: name(b'd'), slots },
        ] {
            let kind = match body {
                Body::Ping { .. } => PONG,
                Body::Fail { .. } => FAIL,
                Body::Publish { .. } => PUBLISH,
                _ => UPDATE,
            };
            let m = header(kind, body);
            let b = m.encode();
            assert_eq!(frame_len(&b), Some(Ok(b.len())));
            assert_eq!(Msg::decode(&b).unwrap(), m);
        }
        let m = header(AUTH_REQUEST, Body::Empty);
        assert_eq!(Msg::decode(&m.encode()).unwrap(), m);
    }

    proptest::proptest! {
        /// Random bytes, and valid messages with random bytes written over them, are decoded or
        /// refused, never panicked on.
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..3000),
                                    at in 0usize..2400, patch in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64)) {
            let _ = Msg::decode(&bytes);
            let _ = frame_len(&bytes);
            let mut b = header(PING, Body::Ping { gossip: vec![], hostname: Some("h".into()) }).encode();
            for (i, x) in patch.iter().enumerate() {
                if let Some(c) = b.get_mut(at + i) {
                    *c = *x;
                }
            }
            let _ = Msg::decode(&b);
        }
    }

    #[test]
    fn malformed_input_is_refused_not_panicked_on() {
        let m = header(PING, Body::Ping { gossip: vec![], hostname: None });
        let mut b = m.encode();
        b[14] = 3; // claims 3 gossip entries it does not carry
        assert!(Msg::decode(&b).is_err());
        assert!(Msg::decode(b"RCmb").is_err());
        assert_eq!(frame_len(b"XXXXabcd"), Some(Err("bad signature")));
        for cut in [0, 7, 100, HEADER_LEN - 1] {
            let _ = Msg::decode(&b[..cut]);
        }
    }
}
