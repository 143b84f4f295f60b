//! Differential tests: the same command sequences go to Debian's redis-server 7.0.15 and to
//! ferrodis, and every reply must be byte-for-byte identical, in RESP2 and in RESP3, and the
//! datasets must end equal (`DEBUG DIGEST`, which ferrodis computes with Redis's algorithm).
//!
//! Corpus lines are redis-cli style. Markers: `@sort` compares an array's elements as a
//! multiset, `@scan` compares SCAN's cursor and its keys as a set,
//! `@scanpairs` compares the (field, value) pairs of one HSCAN/ZSCAN call as a set, `@pending`
//! compares XPENDING's rows without their idle times, `@skip` runs without comparing.

use crate::harness::{elements, Client, Server};
use proptest::prelude::*;

fn words(line: &str) -> Vec<Vec<u8>> {
    resp::split_args(line.as_bytes()).expect("corpus line quotes")
}

fn normalize(marker: &str, reply: Vec<u8>) -> Vec<u8> {
    match marker {
        "@sort" if matches!(reply.first(), Some(b'*' | b'~' | b'%')) => {
            let mut e = elements(&reply);
            e.sort();
            e.concat()
        }
        "@scan" => {
            let top = elements(&reply);
            let mut keys = elements(&top[1]);
            keys.sort();
            [top[0].clone(), keys.concat()].concat()
        }
        "@scanpairs" => {
            let top = elements(&reply);
            let mut pairs: Vec<Vec<u8>> = elements(&top[1]).chunks(2).map(|c| c.concat()).collect();
            pairs.sort();
            // The cursor is each server's own (a hash table scan may stop short of the end).
            pairs.concat()
        }
        "@pending" if reply.first() == Some(&b'*') => {
            // XPENDING's extended form: the idle time (third of each row) depends on the clock.
            let rows = elements(&reply);
            let mut out = format!("*{}\r\n", rows.len()).into_bytes();
            for r in rows {
                let mut e = elements(&r);
                if e.len() == 4 {
                    e[2] = b":0\r\n".to_vec();
                }
                out.extend(format!("*{}\r\n", e.len()).into_bytes());
                out.extend(e.concat());
            }
            out
        }
        _ => reply,
    }
}

struct Pair {
    _r: Server,
    _f: Server,
    rc: Client,
    fc: Client,
}

impl Pair {
    fn new() -> Pair {
        let r = Server::redis(&[]);
        let f = Server::ferrodis(&[]);
        let (rc, fc) = (r.client(), f.client());
        Pair { _r: r, _f: f, rc, fc }
    }
    fn both(&mut self, args: &[&[u8]]) -> (Vec<u8>, Vec<u8>) {
        (self.rc.cmd_bytes(args), self.fc.cmd_bytes(args))
    }
    fn check_digest(&mut self, ctx: &str) {
        let (a, b) = self.both(&[b"DEBUG", b"DIGEST"]);
        assert_eq!(String::from_utf8_lossy(&a), String::from_utf8_lossy(&b), "DEBUG DIGEST differs after {}", ctx);
    }
    /// Runs a corpus; returns the mismatches as readable lines.
    fn run_corpus(&mut self, name: &str, text: &str) -> Vec<String> {
        let mut bad = Vec::new();
        for (n, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (marker, cmd) = match line.split_once(' ') {
                Some((m, rest)) if m.starts_with('@') => (m, rest),
                _ => ("", line),
            };
            let w = words(cmd);
            let args: Vec<&[u8]> = w.iter().map(|v| v.as_slice()).collect();
            let (a, b) = self.both(&args);
            if marker == "@skip" {
                continue;
            }
            let (a, b) = (normalize(marker, a), normalize(marker, b));
            if a != b {
                bad.push(format!(
                    "{}:{}: {}\n   redis:    {:?}\n   ferrodis: {:?}",
                    name,
                    n + 1,
                    cmd,
                    String::from_utf8_lossy(&a),
                    String::from_utf8_lossy(&b)
                ));
            }
        }
        bad
    }
}

const CORPORA: &[(&str, &str)] = &[
    ("strings", include_str!("corpus/strings.txt")),
    ("keys", include_str!("corpus/keys.txt")),
    ("expire", include_str!("corpus/expire.txt")),
    ("bits", include_str!("corpus/bits.txt")),
    ("lists", include_str!("corpus/lists.txt")),
    ("hashes", include_str!("corpus/hashes.txt")),
    ("sets", include_str!("corpus/sets.txt")),
    ("hll", include_str!("corpus/hll.txt")),
    ("geo", include_str!("corpus/geo.txt")),
    ("sort", include_str!("corpus/sort.txt")),
    ("multi", include_str!("corpus/multi.txt")),
    ("scripts", include_str!("corpus/scripts.txt")),
    ("functions", include_str!("corpus/functions.txt")),
    ("zsets", include_str!("corpus/zsets.txt")),
    // The same sequence with every sorted set in its full (skiplist) form from the start.
    ("zsets-skiplist", concat!("CONFIG SET zset-max-listpack-entries 0\n", include_str!("corpus/zsets.txt"))),
    ("server", include_str!("corpus/server.txt")),
    ("streams", include_str!("corpus/streams.txt")),
];

#[test]
fn corpus_matches_redis_in_resp2_and_resp3() {
    let mut p = Pair::new();
    let mut bad = Vec::new();
    for proto in ["2", "3"] {
        let (a, b) = p.both(&[b"HELLO", proto.as_bytes()]);
        assert_eq!(a.first(), b.first(), "HELLO {} reply kind", proto);
        for (name, text) in CORPORA {
            p.both(&[b"FLUSHALL"]);
            p.both(&[b"SELECT", b"0"]);
            bad.extend(p.run_corpus(&format!("{} (RESP{})", name, proto), text));
            p.check_digest(&format!("corpus {} in RESP{}", name, proto));
        }
    }
    assert!(bad.is_empty(), "{} replies differ from redis-server:\n{}", bad.len(), bad.join("\n"));
}

#[test]
fn protocol_errors_match_redis() {
    let r = Server::redis(&[]);
    let f = Server::ferrodis(&[]);
    let cases: &[&[u8]] = &[
        b"*x\r\n",
        b"*1\r\n+PING\r\n",
        b"*1\r\n$-5\r\n",
        b"*1\r\n$abc\r\n",
        b"*1\r\n$600000000\r\n",
        b"SET \"k\r\n",
        b"PING \"a\"b\r\n",
        b"\r\n\r\nPING\r\n",
        b"ECHO 'single quoted'\r\n",
        b"SET k \"\\x41\\n\"\r\nGET k\r\n",
    ];
    for case in cases {
        let read_all = |port: u16| {
            let mut c = Client::connect(port);
            c.send(case);
            let mut out = Vec::new();
            while let Some(r) = c.read_reply() {
                out.extend(r);
                if out.starts_with(b"-") {
                    break;
                }
                if !case.windows(3).any(|w| w == b"GET") || out.ends_with(b"A\n\r\n") {
                    break;
                }
            }
            out
        };
        let (a, b) = (read_all(r.port), read_all(f.port));
        assert_eq!(String::from_utf8_lossy(&a), String::from_utf8_lossy(&b), "reply to {:?}", String::from_utf8_lossy(case));
    }
}

/// A random command over a small key set, as arguments.
fn arb_command() -> impl Strategy<Value = Vec<String>> {
    let key = prop::sample::select(vec!["a", "b", "c", "{a}x"]);
    let val = prop::sample::select(vec!["", "0", "1", "-1", "42", "3.5", "abc", "hello world", "9223372036854775807", "\u{ff}"]);
    let num = prop::sample::select(vec!["0", "1", "-1", "2", "-3", "7", "100", "abc"]);
    let off = prop::sample::select(vec!["0", "1", "7", "8", "15", "33"]);
    prop_oneof![
        (key.clone(), val.clone()).prop_map(|(k, v)| vec!["SET".into(), k.into(), v.into()]),
        (key.clone(), val.clone(), prop::sample::select(vec!["NX", "XX", "GET", "KEEPTTL", "EX 1000", "PX 100000", "NX GET", "XX GET"]))
            .prop_map(|(k, v, o)| {
                let mut c = vec!["SET".to_string(), k.into(), v.into()];
                c.extend(o.split(' ').map(String::from));
                c
            }),
        key.clone().prop_map(|k| vec!["GET".into(), k.into()]),
        (key.clone(), val.clone()).prop_map(|(k, v)| vec!["APPEND".into(), k.into(), v.into()]),
        key.clone().prop_map(|k| vec!["INCR".into(), k.into()]),
        (key.clone(), num.clone()).prop_map(|(k, n)| vec!["INCRBY".into(), k.into(), n.into()]),
        (key.clone(), num.clone()).prop_map(|(k, n)| vec!["DECRBY".into(), k.into(), n.into()]),
        (key.clone(), val.clone()).prop_map(|(k, n)| vec!["INCRBYFLOAT".into(), k.into(), n.into()]),
        (key.clone(), key.clone()).prop_map(|(a, b)| vec!["DEL".into(), a.into(), b.into()]),
        (key.clone(), key.clone()).prop_map(|(a, b)| vec!["EXISTS".into(), a.into(), b.into()]),
        (key.clone(), off.clone(), val.clone()).prop_map(|(k, o, v)| vec!["SETRANGE".into(), k.into(), o.into(), v.into()]),
        (key.clone(), num.clone(), num.clone()).prop_map(|(k, a, b)| vec!["GETRANGE".into(), k.into(), a.into(), b.into()]),
        key.clone().prop_map(|k| vec!["STRLEN".into(), k.into()]),
        (key.clone(), val.clone(), key.clone(), val.clone()).prop_map(|(a, x, b, y)| vec![
            "MSET".into(),
            a.into(),
            x.into(),
            b.into(),
            y.into()
        ]),
        (key.clone(), key.clone(), key.clone()).prop_map(|(a, b, c)| vec!["MGET".into(), a.into(), b.into(), c.into()]),
        (key.clone(), val.clone()).prop_map(|(k, v)| vec!["GETSET".into(), k.into(), v.into()]),
        key.clone().prop_map(|k| vec!["GETDEL".into(), k.into()]),
        (key.clone(), val.clone()).prop_map(|(k, v)| vec!["SETNX".into(), k.into(), v.into()]),
        (key.clone(), off.clone(), prop::sample::select(vec!["0", "1"])).prop_map(|(k, o, b)| vec![
            "SETBIT".into(),
            k.into(),
            o.into(),
            b.into()
        ]),
        (key.clone(), off.clone()).prop_map(|(k, o)| vec!["GETBIT".into(), k.into(), o.into()]),
        key.clone().prop_map(|k| vec!["BITCOUNT".into(), k.into()]),
        (key.clone(), num.clone(), num.clone()).prop_map(|(k, a, b)| vec!["BITCOUNT".into(), k.into(), a.into(), b.into(), "BIT".into()]),
        (key.clone(), prop::sample::select(vec!["0", "1"]), num.clone()).prop_map(|(k, b, s)| vec![
            "BITPOS".into(),
            k.into(),
            b.into(),
            s.into()
        ]),
        (prop::sample::select(vec!["AND", "OR", "XOR"]), key.clone(), key.clone(), key.clone()).prop_map(|(op, d, a, b)| vec![
            "BITOP".into(),
            op.into(),
            d.into(),
            a.into(),
            b.into()
        ]),
        (key.clone(), key.clone()).prop_map(|(a, b)| vec!["RENAME".into(), a.into(), b.into()]),
        (key.clone(), key.clone()).prop_map(|(a, b)| vec!["RENAMENX".into(), a.into(), b.into()]),
        (key.clone(), key.clone()).prop_map(|(a, b)| vec!["COPY".into(), a.into(), b.into(), "REPLACE".into()]),
        // Absolute times, so that NX/XX/GT/LT cannot depend on when each server ran the command.
        (
            key.clone(),
            prop::sample::select(vec!["4102444800", "4102444900", "4102444700"]),
            prop::sample::select(vec!["", "NX", "XX", "GT", "LT"])
        )
            .prop_map(|(k, t, o)| {
                let mut c = vec!["EXPIREAT".to_string(), k.into(), t.into()];
                if !o.is_empty() {
                    c.push(o.into());
                }
                c
            }),
        key.clone().prop_map(|k| vec!["PERSIST".into(), k.into()]),
        key.clone().prop_map(|k| vec!["TTL".into(), k.into()]),
        key.clone().prop_map(|k| vec!["TYPE".into(), k.into()]),
        key.clone().prop_map(|k| vec!["OBJECT".into(), "ENCODING".into(), k.into()]),
        (key.clone(), key.clone()).prop_map(|(a, b)| vec!["LCS".into(), a.into(), b.into()]),
        (key.clone(), prop::sample::select(vec!["u8", "i8", "i5", "u3", "i64"]), off.clone(), num.clone()).prop_map(|(k, t, o, n)| vec![
            "BITFIELD".into(),
            k.into(),
            "INCRBY".into(),
            t.into(),
            o.into(),
            n.into(),
            "GET".into(),
            t.into(),
            o.into()
        ]),
        (key.clone(), prop::sample::select(vec!["1", "0"])).prop_map(|(k, d)| vec!["MOVE".into(), k.into(), d.into()]),
        Just(vec!["DBSIZE".to_string()]),
    ]
    .boxed()
    .prop_union(arb_list_command().boxed())
    .or(arb_hash_command().boxed())
    .or(arb_set_command().boxed())
    .or(arb_zset_command().boxed())
    .or(arb_stream_command().boxed())
}

/// Random stream commands with explicit IDs (a generated "*" ID depends on the clock): adds with
/// exact and approximate trims over small nodes, deletions, ranges, and consumer groups read,
/// acknowledged and claimed (JUSTID: replies without idle times).
fn arb_stream_command() -> impl Strategy<Value = Vec<String>> {
    let key = prop::sample::select(vec!["a", "b", "{a}x"]);
    let id = prop::sample::select(vec!["1-1", "1-2", "2", "2-*", "3-0", "3-*", "5-5", "0-1", "9-9", "x"]);
    let bound = prop::sample::select(vec!["-", "+", "1-1", "(1-1", "2-0", "(3-0", "5", "0"]);
    let num = prop::sample::select(vec!["0", "1", "2", "3", "5", "-1"]);
    let group = prop::sample::select(vec!["g", "h"]);
    let consumer = prop::sample::select(vec!["c", "d"]);
    let trim = prop::sample::select(vec!["", "MAXLEN 2", "MAXLEN ~ 2", "MAXLEN = 0", "MINID 2", "MINID ~ 3-0", "MAXLEN ~ 1 LIMIT 1"]);
    let s = |v: Vec<&str>| v.into_iter().flat_map(|a| a.split(' ')).filter(|a| !a.is_empty()).map(String::from).collect::<Vec<String>>();
    prop_oneof![
        4 => (key.clone(), trim.clone(), id.clone(), prop::sample::select(vec!["f", "g"]))
            .prop_map(move |(k, t, i, f)| s(vec!["XADD", k, t, i, f, "v"])),
        1 => (key.clone(), id.clone()).prop_map(move |(k, i)| s(vec!["XDEL", k, i])),
        1 => (key.clone(), prop::sample::select(vec!["MAXLEN 1", "MAXLEN ~ 1", "MINID 3", "MINID ~ 2", "MAXLEN 0"]))
            .prop_map(move |(k, t)| s(vec!["XTRIM", k, t])),
        1 => (prop::sample::select(vec!["XRANGE", "XREVRANGE"]), key.clone(), bound.clone(), bound.clone(), num.clone())
            .prop_map(move |(c, k, a, b, n)| s(vec![c, k, a, b, "COUNT", n])),
        1 => key.clone().prop_map(move |k| s(vec!["XLEN", k])),
        1 => (key.clone(), group.clone(), prop::sample::select(vec!["0", "$", "2-0"]), prop::sample::select(vec!["", "MKSTREAM"]))
            .prop_map(move |(k, g, i, m)| s(vec!["XGROUP", "CREATE", k, g, i, m])),
        1 => (key.clone(), group.clone(), prop::sample::select(vec!["0", "$", "1-1"])).prop_map(move |(k, g, i)| s(vec!["XGROUP", "SETID", k, g, i])),
        1 => (key.clone(), group.clone()).prop_map(move |(k, g)| s(vec!["XGROUP", "DESTROY", k, g])),
        1 => (key.clone(), group.clone(), consumer.clone()).prop_map(move |(k, g, c)| s(vec!["XGROUP", "DELCONSUMER", k, g, c])),
        3 => (key.clone(), group.clone(), consumer.clone(), num.clone(), prop::sample::select(vec!["", "NOACK"]), prop::sample::select(vec![">", "0"]))
            .prop_map(move |(k, g, c, n, a, i)| s(vec!["XREADGROUP", "GROUP", g, c, "COUNT", n, a, "STREAMS", k, i])),
        1 => (key.clone(), bound.clone()).prop_map(move |(k, i)| s(vec!["XREAD", "STREAMS", k, i])),
        1 => (key.clone(), group.clone(), id.clone()).prop_map(move |(k, g, i)| s(vec!["XACK", k, g, i])),
        1 => (key.clone(), group.clone()).prop_map(move |(k, g)| s(vec!["XPENDING", k, g])),
        1 => (key.clone(), group.clone(), consumer.clone(), id.clone(), prop::sample::select(vec!["", "FORCE", "RETRYCOUNT 3"]))
            .prop_map(move |(k, g, c, i, o)| s(vec!["XCLAIM", k, g, c, "0", i, o, "JUSTID"])),
        1 => (key.clone(), group.clone(), consumer.clone()).prop_map(move |(k, g, c)| s(vec!["XAUTOCLAIM", k, g, c, "0", "0", "COUNT", "2", "JUSTID"])),
        1 => key.clone().prop_map(move |k| s(vec!["XINFO", "GROUPS", k])),
        1 => (key.clone(), id.clone()).prop_map(move |(k, i)| s(vec!["XSETID", k, i])),
    ]
}

/// Random sorted set commands over the same keys: scores collide often, so member order breaks
/// ties; the runs lower zset-max-listpack-entries so both encodings are exercised.
fn arb_zset_command() -> impl Strategy<Value = Vec<String>> {
    let key = prop::sample::select(vec!["a", "b", "c", "{a}x"]);
    let m = prop::sample::select(vec!["m", "n", "o", "p", "q", ""]);
    let sc = prop::sample::select(vec!["0", "1", "-1", "2.5", "-inf", "+inf", "1e3", "x"]);
    let bound = prop::sample::select(vec!["-inf", "+inf", "0", "(0", "1", "(2.5", "3"]);
    let lex = prop::sample::select(vec!["-", "+", "[m", "(n", "[p", "(q"]);
    let num = prop::sample::select(vec!["0", "1", "-1", "2", "-3", "10"]);
    let flags = prop::sample::select(vec!["", "NX", "XX", "GT", "LT", "CH", "INCR", "GT CH", "XX INCR"]);
    let s = |v: Vec<&str>| v.into_iter().map(String::from).collect::<Vec<String>>();
    prop_oneof![
        (key.clone(), flags, sc.clone(), m.clone()).prop_map(move |(k, f, a, x)| {
            let mut v = vec!["ZADD".to_string(), k.into()];
            v.extend(f.split_whitespace().map(String::from));
            v.extend([a.to_string(), x.to_string()]);
            v
        }),
        (key.clone(), sc.clone(), m.clone(), sc.clone(), m.clone()).prop_map(move |(k, a, x, b, y)| s(vec!["ZADD", k, a, x, b, y])),
        (key.clone(), sc.clone(), m.clone()).prop_map(move |(k, a, x)| s(vec!["ZINCRBY", k, a, x])),
        (key.clone(), m.clone(), m.clone()).prop_map(move |(k, a, b)| s(vec!["ZREM", k, a, b])),
        (key.clone(), m.clone()).prop_map(move |(k, a)| s(vec!["ZSCORE", k, a])),
        (key.clone(), m.clone()).prop_map(move |(k, a)| s(vec!["ZRANK", k, a])),
        (key.clone(), m.clone()).prop_map(move |(k, a)| s(vec!["ZREVRANK", k, a])),
        key.clone().prop_map(move |k| s(vec!["ZCARD", k])),
        (key.clone(), num.clone(), num.clone()).prop_map(move |(k, a, b)| s(vec!["ZRANGE", k, a, b, "WITHSCORES"])),
        (key.clone(), num.clone(), num.clone()).prop_map(move |(k, a, b)| s(vec!["ZRANGE", k, a, b, "REV"])),
        (key.clone(), bound.clone(), bound.clone(), num.clone())
            .prop_map(move |(k, a, b, n)| s(vec!["ZRANGE", k, a, b, "BYSCORE", "LIMIT", "1", n])),
        (key.clone(), bound.clone(), bound.clone()).prop_map(move |(k, a, b)| s(vec!["ZREVRANGEBYSCORE", k, a, b, "WITHSCORES"])),
        (key.clone(), bound.clone(), bound.clone()).prop_map(move |(k, a, b)| s(vec!["ZCOUNT", k, a, b])),
        // Lex ranges are only defined when all scores are equal: they get a key of their own.
        m.clone().prop_map(move |a| s(vec!["ZADD", "lex", "0", a])),
        (lex.clone(), lex.clone()).prop_map(move |(a, b)| s(vec!["ZRANGEBYLEX", "lex", a, b])),
        (lex.clone(), lex.clone()).prop_map(move |(a, b)| s(vec!["ZREVRANGEBYLEX", "lex", a, b, "LIMIT", "1", "2"])),
        (lex.clone(), lex.clone()).prop_map(move |(a, b)| s(vec!["ZLEXCOUNT", "lex", a, b])),
        (lex.clone(), lex.clone()).prop_map(move |(a, b)| s(vec!["ZREMRANGEBYLEX", "lex", a, b])),
        (key.clone(), num.clone(), num.clone()).prop_map(move |(k, a, b)| s(vec!["ZREMRANGEBYRANK", k, a, b])),
        (key.clone(), bound.clone(), bound.clone()).prop_map(move |(k, a, b)| s(vec!["ZREMRANGEBYSCORE", k, a, b])),
        (prop::sample::select(vec!["ZPOPMIN", "ZPOPMAX"]), key.clone(), prop::sample::select(vec!["0", "1", "3"]))
            .prop_map(move |(c, k, n)| s(vec![c, k, n])),
        (key.clone(), key.clone(), prop::sample::select(vec!["MIN", "MAX"]))
            .prop_map(move |(a, b, w)| s(vec!["ZMPOP", "2", a, b, w, "COUNT", "2"])),
        (prop::sample::select(vec!["ZUNION", "ZINTER", "ZDIFF"]), key.clone(), key.clone()).prop_map(move |(c, a, b)| s(vec![
            c,
            "2",
            a,
            b,
            "WITHSCORES"
        ])),
        (prop::sample::select(vec!["ZUNIONSTORE", "ZINTERSTORE", "ZDIFFSTORE"]), key.clone(), key.clone(), key.clone())
            .prop_map(move |(c, d, a, b)| s(vec![c, d, "2", a, b])),
        (key.clone(), key.clone(), bound.clone()).prop_map(move |(d, a, b)| s(vec!["ZRANGESTORE", d, a, b, "+inf", "BYSCORE"])),
    ]
}

/// Random set commands over the same keys. Members are integers, so sets stay intsets and every
/// reply's order is deterministic (ascending) on both servers.
fn arb_set_command() -> impl Strategy<Value = Vec<String>> {
    let key = prop::sample::select(vec!["a", "b", "c", "{a}x"]);
    let m = prop::sample::select(vec!["0", "1", "2", "-3", "10"]);
    let s = |v: Vec<&str>| v.into_iter().map(String::from).collect::<Vec<String>>();
    prop_oneof![
        (key.clone(), m.clone(), m.clone()).prop_map(move |(k, a, b)| s(vec!["SADD", k, a, b])),
        (key.clone(), m.clone()).prop_map(move |(k, a)| s(vec!["SREM", k, a])),
        key.clone().prop_map(move |k| s(vec!["SMEMBERS", k])),
        key.clone().prop_map(move |k| s(vec!["SCARD", k])),
        (key.clone(), m.clone()).prop_map(move |(k, a)| s(vec!["SISMEMBER", k, a])),
        (key.clone(), m.clone(), m.clone()).prop_map(move |(k, a, b)| s(vec!["SMISMEMBER", k, a, b])),
        (key.clone(), key.clone(), m.clone()).prop_map(move |(a, b, x)| s(vec!["SMOVE", a, b, x])),
        (prop::sample::select(vec!["SINTER", "SUNION", "SDIFF"]), key.clone(), key.clone()).prop_map(move |(c, a, b)| s(vec![c, a, b])),
        (prop::sample::select(vec!["SINTERSTORE", "SUNIONSTORE", "SDIFFSTORE"]), key.clone(), key.clone(), key.clone())
            .prop_map(move |(c, d, a, b)| s(vec![c, d, a, b])),
        (key.clone(), key.clone()).prop_map(move |(a, b)| s(vec!["SINTERCARD", "2", a, b])),
    ]
}

/// Random hash commands over the same keys. Fields stay few, so hashes stay listpacks and
/// HGETALL's order is deterministic (insertion order) on both servers.
fn arb_hash_command() -> impl Strategy<Value = Vec<String>> {
    let key = prop::sample::select(vec!["a", "b", "c", "{a}x"]);
    let field = prop::sample::select(vec!["f", "g", "h", ""]);
    let val = prop::sample::select(vec!["", "0", "1", "-5", "x", "1.5"]);
    let s = |v: Vec<&str>| v.into_iter().map(String::from).collect::<Vec<String>>();
    prop_oneof![
        (key.clone(), field.clone(), val.clone(), field.clone(), val.clone())
            .prop_map(move |(k, f, v, g, w)| s(vec!["HSET", k, f, v, g, w])),
        (key.clone(), field.clone(), val.clone()).prop_map(move |(k, f, v)| s(vec!["HSETNX", k, f, v])),
        (key.clone(), field.clone()).prop_map(move |(k, f)| s(vec!["HGET", k, f])),
        (key.clone(), field.clone(), field.clone()).prop_map(move |(k, f, g)| s(vec!["HMGET", k, f, g])),
        key.clone().prop_map(move |k| s(vec!["HGETALL", k])),
        key.clone().prop_map(move |k| s(vec!["HKEYS", k])),
        key.clone().prop_map(move |k| s(vec!["HVALS", k])),
        key.clone().prop_map(move |k| s(vec!["HLEN", k])),
        (key.clone(), field.clone(), field.clone()).prop_map(move |(k, f, g)| s(vec!["HDEL", k, f, g])),
        (key.clone(), field.clone()).prop_map(move |(k, f)| s(vec!["HEXISTS", k, f])),
        (key.clone(), field.clone()).prop_map(move |(k, f)| s(vec!["HSTRLEN", k, f])),
        (key.clone(), field.clone(), prop::sample::select(vec!["1", "-2", "x"])).prop_map(move |(k, f, n)| s(vec!["HINCRBY", k, f, n])),
        (key.clone(), field.clone(), prop::sample::select(vec!["1.5", "-2", "x"])).prop_map(move |(k, f, n)| s(vec![
            "HINCRBYFLOAT",
            k,
            f,
            n
        ])),
        key.clone().prop_map(move |k| s(vec!["HRANDFIELD", k, "0"])),
    ]
}

/// Random list commands over the same keys (so type errors across families are exercised).
fn arb_list_command() -> impl Strategy<Value = Vec<String>> {
    let key = prop::sample::select(vec!["a", "b", "c", "{a}x"]);
    let val = prop::sample::select(vec!["", "0", "1", "x", "hello", "x"]);
    let num = prop::sample::select(vec!["0", "1", "-1", "2", "-2", "5", "-100", "100"]);
    let lr = prop::sample::select(vec!["LEFT", "RIGHT"]);
    let s = |v: Vec<&str>| v.into_iter().map(String::from).collect::<Vec<String>>();
    prop_oneof![
        (prop::sample::select(vec!["LPUSH", "RPUSH", "LPUSHX", "RPUSHX"]), key.clone(), val.clone(), val.clone())
            .prop_map(move |(c, k, a, b)| s(vec![c, k, a, b])),
        (prop::sample::select(vec!["LPOP", "RPOP"]), key.clone()).prop_map(move |(c, k)| s(vec![c, k])),
        (prop::sample::select(vec!["LPOP", "RPOP"]), key.clone(), num.clone()).prop_map(move |(c, k, n)| s(vec![c, k, n])),
        (key.clone(), num.clone(), num.clone()).prop_map(move |(k, a, b)| s(vec!["LRANGE", k, a, b])),
        (key.clone(), num.clone(), num.clone()).prop_map(move |(k, a, b)| s(vec!["LTRIM", k, a, b])),
        (key.clone(), num.clone()).prop_map(move |(k, i)| s(vec!["LINDEX", k, i])),
        (key.clone(), num.clone(), val.clone()).prop_map(move |(k, i, v)| s(vec!["LSET", k, i, v])),
        (key.clone(), prop::sample::select(vec!["BEFORE", "AFTER"]), val.clone(), val.clone())
            .prop_map(move |(k, w, p, v)| s(vec!["LINSERT", k, w, p, v])),
        (key.clone(), num.clone(), val.clone()).prop_map(move |(k, n, v)| s(vec!["LREM", k, n, v])),
        (key.clone(), val.clone(), num.clone(), num.clone()).prop_map(move |(k, v, r, c)| s(vec![
            "LPOS",
            k,
            v,
            "RANK",
            if r == "0" { "1" } else { r },
            "COUNT",
            if c.starts_with('-') { "0" } else { c }
        ])),
        (key.clone(), key.clone(), lr.clone(), lr.clone()).prop_map(move |(a, b, x, y)| s(vec!["LMOVE", a, b, x, y])),
        (key.clone(), key.clone()).prop_map(move |(a, b)| s(vec!["RPOPLPUSH", a, b])),
        (key.clone(), key.clone(), lr.clone(), num.clone()).prop_map(move |(a, b, x, n)| s(vec!["LMPOP", "2", a, b, x, "COUNT", n])),
        key.clone().prop_map(move |k| s(vec!["LLEN", k])),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, max_shrink_iters: 200, failure_persistence: None, ..ProptestConfig::default() })]
    #[test]
    fn random_sequences_match_redis(cmds in prop::collection::vec(arb_command(), 1..40), resp3 in any::<bool>()) {
        thread_local! {
            static PAIR: std::cell::RefCell<Option<Pair>> = const { std::cell::RefCell::new(None) };
        }
        PAIR.with(|cell| {
            let mut g = cell.borrow_mut();
            let p = g.get_or_insert_with(Pair::new);
            p.both(&[b"FLUSHALL"]);
            p.both(&[b"SELECT", b"0"]);
            // Small enough that sorted sets convert to their full form mid-sequence.
            p.both(&[b"CONFIG", b"SET", b"zset-max-listpack-entries", b"3"]);
            // Stream nodes of 3 entries: approximate trims remove whole nodes, as in Redis.
            p.both(&[b"CONFIG", b"SET", b"stream-node-max-entries", b"3"]);
            let proto: &[u8] = if resp3 { b"3" } else { b"2" };
            p.both(&[b"HELLO", proto]);
            let mut transcript = String::new();
            for c in &cmds {
                let args: Vec<&[u8]> = c.iter().map(|s| s.as_bytes()).collect();
                let (a, b) = p.both(&args);
                transcript.push_str(&format!("{:?} => {:?}\n", c, String::from_utf8_lossy(&a)));
                // The case so far (Redis's replies): a reply can match while the data diverged.
                prop_assert_eq!(String::from_utf8_lossy(&a), String::from_utf8_lossy(&b), "command {:?}\n{}", c, transcript);
            }
            let (a, b) = p.both(&[b"DEBUG", b"DIGEST"]);
            prop_assert_eq!(a, b, "dataset digest");
            Ok(())
        })?;
    }
}

/// `COMMAND INFO` for every command ferrodis has: name, arity, flags, legacy key positions and
/// ACL categories as redis-server 7.0.15 reports them (flags and categories as sets).
#[test]
fn command_table_matches_redis() {
    let r = Server::redis(&[]);
    let f = Server::ferrodis(&[]);
    let (mut rc, mut fc) = (r.client(), f.client());
    let list = fc.cmd(&["COMMAND", "LIST"]);
    let names: Vec<String> = elements(&list)
        .iter()
        .map(|e| {
            let s = String::from_utf8_lossy(e).into_owned();
            s.split("\r\n").nth(1).unwrap_or_default().to_string()
        })
        // Top-level commands (COMMAND LIST also names the subcommands, "acl|cat" ...).
        .filter(|n| !n.contains('|'))
        .collect();
    assert!(names.len() > 60, "{:?}", names);
    let mut bad = Vec::new();
    fn fields(info: &[u8]) -> Vec<Vec<u8>> {
        let top = elements(info);
        let cmd = elements(&top[0]);
        let mut out: Vec<Vec<u8>> = cmd[..7].to_vec();
        for i in [2, 6] {
            let mut set = elements(&cmd[i]);
            set.sort();
            out[i] = set.concat();
        }
        out
    }
    for n in &names {
        let a = rc.cmd(&["COMMAND", "INFO", n]);
        let b = fc.cmd(&["COMMAND", "INFO", n]);
        if a == b"*1\r\n*-1\r\n" {
            // Newer than Redis 7.0 (CLIENT SETINFO is 7.2): nothing to compare with.
            continue;
        }
        if fields(&a) != fields(&b) {
            bad.push(format!(
                "{}:\n  redis:    {:?}\n  ferrodis: {:?}",
                n,
                String::from_utf8_lossy(&a[..a.len().min(300)]),
                String::from_utf8_lossy(&b[..b.len().min(300)])
            ));
        }
    }
    assert!(bad.is_empty(), "COMMAND INFO differs:\n{}", bad.join("\n"));
}

/// MONITOR lines as Redis formats them (timestamps and client ports aside).
#[test]
fn monitor_matches_redis() {
    let norm = |port: u16| -> Vec<String> {
        let mut m = Client::connect(port);
        assert_eq!(m.cmd(&["MONITOR"]), b"+OK\r\n");
        let mut c = Client::connect(port);
        c.cmd(&["SELECT", "2"]);
        c.cmd_bytes(&[b"SET", b"k", b"a b\n\"q\"\x01\\"]);
        c.cmd(&["GET", "k"]);
        c.cmd(&["CONFIG", "GET", "hz"]); // admin: not shown
        c.cmd(&["PING"]);
        (0..4)
            .map(|_| {
                let line = String::from_utf8_lossy(&m.read_reply().expect("monitor line")).into_owned();
                // "+1700000000.123456 [2 127.0.0.1:5555] ..." -> "[2] ..."
                let (_, rest) = line.split_once(' ').expect("timestamp");
                let (client, cmd) = rest.split_once("] ").expect("client");
                format!("{}] {}", client.split(' ').next().unwrap_or_default(), cmd)
            })
            .collect()
    };
    let r = Server::redis(&[]);
    let f = Server::ferrodis(&[]);
    let (a, b) = (norm(r.port), norm(f.port));
    assert_eq!(a, b);
    assert!(b[1].contains(r#""SET" "k" "a b\n\"q\"\x01\\""#), "{:?}", b);
}
