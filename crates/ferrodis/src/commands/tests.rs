//! In-process command tests (no socket): the journal replays into an equal keyspace.

use super::dispatch::execute;
use super::{build_table, CommandTable, ConnState};
use crate::config::Config;
use crate::keyspace::{SLOTS, STRIPES};
use crate::state::{ClientInfo, State, ThreadStats};
use proptest::prelude::*;
use resp::{Proto, ReplyBuf};
use std::collections::BTreeMap;
use std::sync::Arc;

struct Node {
    st: Arc<State>,
    table: CommandTable,
    ts: ThreadStats,
    conn: ConnState,
    out: ReplyBuf,
}

impl Node {
    fn new(journal: bool) -> Node {
        let mut cfg = Config::new();
        cfg.load_text("enable-debug-command yes").unwrap();
        let st = State::new(cfg, 0);
        if journal {
            st.journal.enable();
        }
        let table = build_table();
        let ts = ThreadStats::new(table.len());
        let conn = ConnState::new(Arc::new(ClientInfo { addr: "127.0.0.1:1".into(), ..Default::default() }), true);
        Node { st, table, ts, conn, out: ReplyBuf::new(Proto::Resp2) }
    }
    fn run(&mut self, args: &[&[u8]]) -> Vec<u8> {
        self.out.buf.clear();
        execute(&self.st, &self.table, &mut self.conn, &mut self.out, &self.ts, args);
        self.out.buf.clone()
    }
    /// Every live key with its value and exact expiry, per database.
    fn dump(&self) -> BTreeMap<(usize, Vec<u8>), (Vec<u8>, i64)> {
        let mut m = BTreeMap::new();
        let now = crate::util::now_ms();
        for db in 0..self.st.keyspace.databases {
            for slot in 0..SLOTS {
                let g = self.st.keyspace.lock(slot % STRIPES);
                if let Some(t) = g.slot(db, slot) {
                    for e in t.iter().filter(|e| !e.expired(now)) {
                        let v = canonical(&e.value);
                        m.insert((db, e.key.to_vec()), (v, e.expire));
                    }
                }
            }
        }
        m
    }
}

/// A value as comparable bytes: its encoding, then its contents in a canonical order.
fn canonical(v: &crate::types::Value) -> Vec<u8> {
    use crate::types::Value;
    let mut parts: Vec<Vec<u8>> = match v {
        Value::Str(s) => vec![s.to_vec()],
        Value::List(l) => l.iter().map(|x| x.to_vec()).collect(),
        Value::Hash(h) => {
            let mut p: Vec<Vec<u8>> = h.pairs().into_iter().map(|(f, v)| [f, b"=", v].concat()).collect();
            p.sort();
            p
        }
        Value::Set(s) => {
            let mut m = s.members();
            m.sort();
            m
        }
        Value::ZSet(z) => z.entries().into_iter().map(|(m, s)| [m, b"=".to_vec(), s.to_bits().to_be_bytes().to_vec()].concat()).collect(),
        Value::Stream(s) => vec![format!("{:?}", crate::persistence::rdb::stream_to_rdb(s)).into_bytes()],
    };
    // A string's embstr/raw choice is not replicated (Redis's SETBIT that changes nothing makes
    // the master's string raw and propagates nothing): both count as one encoding here.
    let enc = match v.encoding() {
        "embstr" | "raw" => "string",
        e => e,
    };
    parts.insert(0, enc.as_bytes().to_vec());
    parts.join(&b'|')
}

/// Replays a journal into a fresh node, command by command, through dispatch.
fn replay(stream: &[u8]) -> Node {
    let mut n = Node::new(false);
    let mut req = resp::Request::default();
    let mut pos = 0;
    while pos < stream.len() {
        let ready = resp::parse_request(&stream[pos..], &resp::Limits::default(), &mut req).expect("journal is valid RESP");
        assert!(ready, "journal ends mid-command");
        let base = &stream[pos..];
        let args: Vec<&[u8]> = (0..req.argc()).map(|i| req.arg(base, i)).collect();
        let r = n.run(&args);
        assert!(
            !r.starts_with(b"-"),
            "replaying {:?} failed: {}",
            args.iter().map(|a| String::from_utf8_lossy(a)).collect::<Vec<_>>(),
            String::from_utf8_lossy(&r)
        );
        pos += req.consumed;
    }
    n
}

fn check_replay(cmds: &[Vec<String>]) {
    let mut m = Node::new(true);
    for c in cmds {
        let args: Vec<&[u8]> = c.iter().map(|s| s.as_bytes()).collect();
        m.run(&args);
    }
    let stream = m.st.journal.read_from(0).expect("backlog holds the whole stream");
    assert_eq!(m.st.journal.offset(), stream.len() as u64);
    let r = replay(&stream);
    assert_eq!(
        m.dump(),
        r.dump(),
        "replayed keyspace differs; commands {:?}; stream:\n{}",
        cmds,
        String::from_utf8_lossy(&stream).replace("\r\n", " ").replace('\0', "\\0")
    );
}

#[test]
fn journal_rewrites_effects() {
    let mut m = Node::new(true);
    m.run(&[b"SET", b"k", b"v", b"EX", b"100"]);
    m.run(&[b"INCRBYFLOAT", b"f", b"1.5"]);
    m.run(&[b"GET", b"k"]);
    m.run(&[b"SET", b"nx", b"1", b"NX"]);
    m.run(&[b"SET", b"nx", b"2", b"NX"]);
    let s = String::from_utf8(m.st.journal.read_from(0).unwrap()).unwrap();
    assert!(s.starts_with("*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n*5\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n$4\r\nPXAT\r\n"), "{}", s);
    assert!(!s.contains("$11\r\nINCRBYFLOAT") && s.contains("$1\r\nf\r\n$3\r\n1.5\r\n$7\r\nKEEPTTL"), "{}", s);
    assert_eq!(s.matches("$2\r\nnx").count(), 1, "a SET NX that did nothing is not journaled: {}", s);
    assert!(!s.contains("GET\r\n"), "reads are not journaled");
}

#[test]
fn exec_is_one_multi_exec_block() {
    let mut m = Node::new(true);
    for c in [&[&b"MULTI"[..]][..], &[b"SET", b"a", b"1"], &[b"GET", b"a"], &[b"INCR", b"a"], &[b"EXEC"]] {
        m.run(c);
    }
    let s = String::from_utf8(m.st.journal.read_from(0).unwrap()).unwrap();
    assert!(
        s.ends_with("*1\r\n$5\r\nMULTI\r\n*3\r\n$3\r\nSET\r\n$1\r\na\r\n$1\r\n1\r\n*2\r\n$4\r\nINCR\r\n$1\r\na\r\n*1\r\n$4\r\nEXEC\r\n"),
        "{}",
        s
    );
}

#[test]
fn lazily_expired_keys_become_del() {
    let mut m = Node::new(true);
    m.run(&[b"SET", b"k", b"v", b"PX", b"1"]);
    std::thread::sleep(std::time::Duration::from_millis(5));
    assert_eq!(m.run(&[b"GET", b"k"]), b"$-1\r\n");
    let s = String::from_utf8(m.st.journal.read_from(0).unwrap()).unwrap();
    assert!(s.ends_with("*2\r\n$3\r\nDEL\r\n$1\r\nk\r\n"), "{}", s);
}

fn arb_write() -> impl Strategy<Value = Vec<String>> {
    let key = prop::sample::select(vec!["a", "b", "c", "{a}d"]);
    let val = prop::sample::select(vec!["1", "x", "2.5", "hello", ""]);
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<String>>();
    prop_oneof![
        (key.clone(), val.clone()).prop_map(move |(k, v)| s(&["SET", k, v])),
        (key.clone(), val.clone()).prop_map(move |(k, v)| s(&["SET", k, v, "EX", "1000"])),
        (key.clone(), val.clone()).prop_map(move |(k, v)| s(&["SET", k, v, "KEEPTTL"])),
        // No TTL short enough to run out between the run and its replay: a replayer that
        // expired keys itself would diverge, which is why replicas wait for the master's DEL.
        (key.clone(), val.clone()).prop_map(move |(k, v)| s(&["SET", k, v, "PX", "600000"])),
        key.clone().prop_map(move |k| s(&["INCR", k])),
        key.clone().prop_map(move |k| s(&["INCRBYFLOAT", k, "0.1"])),
        (key.clone(), val.clone()).prop_map(move |(k, v)| s(&["APPEND", k, v])),
        (key.clone(), val.clone()).prop_map(move |(k, v)| s(&["SETRANGE", k, "3", v])),
        key.clone().prop_map(move |k| s(&["SETBIT", k, "9", "1"])),
        key.clone().prop_map(move |k| s(&["BITFIELD", k, "INCRBY", "u4", "2", "5"])),
        (key.clone(), key.clone()).prop_map(move |(a, b)| s(&["BITOP", "OR", a, a, b])),
        key.clone().prop_map(move |k| s(&["GETEX", k, "PX", "500000"])),
        key.clone().prop_map(move |k| s(&["GETEX", k, "PERSIST"])),
        key.clone().prop_map(move |k| s(&["GETDEL", k])),
        key.clone().prop_map(move |k| s(&["EXPIRE", k, "300"])),
        key.clone().prop_map(move |k| s(&["PEXPIRE", k, "0"])),
        key.clone().prop_map(move |k| s(&["PERSIST", k])),
        key.clone().prop_map(move |k| s(&["GET", k])),
        (key.clone(), key.clone()).prop_map(move |(a, b)| s(&["RENAME", a, b])),
        (key.clone(), key.clone()).prop_map(move |(a, b)| s(&["COPY", a, b, "DB", "2", "REPLACE"])),
        key.clone().prop_map(move |k| s(&["MOVE", k, "1"])),
        prop::sample::select(vec!["0", "1", "2"]).prop_map(move |d| s(&["SELECT", d])),
        Just(s(&["SWAPDB", "0", "1"])),
        Just(s(&["FLUSHDB"])),
        (key.clone(), val.clone(), key.clone()).prop_map(move |(a, v, b)| s(&["MSET", a, v, b, v])),
        (key.clone(), key.clone()).prop_map(move |(a, b)| s(&["DEL", a, b])),
        (key.clone(), val.clone()).prop_map(move |(k, v)| s(&["RPUSH", k, v, v])),
        key.clone().prop_map(move |k| s(&["LPOP", k, "2"])),
        (key.clone(), key.clone()).prop_map(move |(a, b)| s(&["LMOVE", a, b, "LEFT", "RIGHT"])),
        (key.clone(), key.clone()).prop_map(move |(a, b)| s(&["LMPOP", "2", a, b, "RIGHT", "COUNT", "2"])),
        key.clone().prop_map(move |k| s(&["LTRIM", k, "1", "-1"])),
        (key.clone(), val.clone()).prop_map(move |(k, v)| s(&["LINSERT", k, "BEFORE", "1", v])),
        (key.clone(), val.clone()).prop_map(move |(k, v)| s(&["HSET", k, "f", v, "g", v])),
        key.clone().prop_map(move |k| s(&["HDEL", k, "f"])),
        key.clone().prop_map(move |k| s(&["HINCRBYFLOAT", k, "n", "0.1"])),
        key.clone().prop_map(move |k| s(&["HINCRBY", k, "i", "3"])),
        (key.clone(), val.clone()).prop_map(move |(k, v)| s(&["SADD", k, v, "7"])),
        key.clone().prop_map(move |k| s(&["SPOP", k])),
        key.clone().prop_map(move |k| s(&["SPOP", k, "2"])),
        (key.clone(), key.clone()).prop_map(move |(a, b)| s(&["SUNIONSTORE", a, a, b])),
        (key.clone(), key.clone()).prop_map(move |(a, b)| s(&["SMOVE", a, b, "7"])),
        (key.clone(), val.clone()).prop_map(move |(k, v)| s(&["ZADD", k, "1", v, "2.5", "m"])),
        (key.clone(), val.clone()).prop_map(move |(k, v)| s(&["ZINCRBY", k, "0.1", v])),
        key.clone().prop_map(move |k| s(&["ZPOPMIN", k])),
        (key.clone(), key.clone()).prop_map(move |(a, b)| s(&["ZMPOP", "2", a, b, "MAX", "COUNT", "2"])),
        key.clone().prop_map(move |k| s(&["ZREMRANGEBYSCORE", k, "2", "+inf"])),
        (key.clone(), key.clone()).prop_map(move |(a, b)| s(&["ZUNIONSTORE", a, "2", a, b, "WEIGHTS", "2", "1"])),
        (key.clone(), key.clone()).prop_map(move |(a, b)| s(&["ZRANGESTORE", a, b, "0", "1"])),
        (key.clone(), val.clone()).prop_map(move |(k, v)| s(&["GEOADD", k, "13.36", "38.11", v])),
        (key.clone(), val.clone()).prop_map(move |(k, v)| s(&["PFADD", k, v, "z"])),
        key.clone().prop_map(move |k| s(&["PFCOUNT", k])),
        (key.clone(), key.clone()).prop_map(move |(a, b)| s(&["PFMERGE", a, b])),
        (key.clone(), key.clone()).prop_map(move |(a, b)| s(&["SORT", a, "ALPHA", "STORE", b])),
        // Scripts: their effects go to the journal as one MULTI ... EXEC block.
        (key.clone(), key.clone(), val.clone()).prop_map(move |(a, b, v)| s(&[
            "EVAL",
            "redis.call('SET', KEYS[1], ARGV[1]) redis.pcall('INCR', KEYS[2]) return redis.call('EXISTS', KEYS[2])",
            "2",
            a,
            b,
            v
        ])),
        // Transactions: effects go to the journal as one MULTI ... EXEC block.
        Just(s(&["MULTI"])),
        Just(s(&["EXEC"])),
        Just(s(&["DISCARD"])),
        // Blocking commands: served at once, or later by a push (journaled as the pop).
        key.clone().prop_map(move |k| s(&["BLPOP", k, "0"])),
        key.clone().prop_map(move |k| s(&["BZPOPMAX", k, "0"])),
        (key.clone(), key.clone()).prop_map(move |(a, b)| s(&["BLMOVE", a, b, "LEFT", "RIGHT", "0"])),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]
    #[test]
    fn journal_replays_into_equal_keyspace(cmds in prop::collection::vec(arb_write(), 1..60)) {
        check_replay(&cmds);
    }
}

#[test]
fn script_set_repl_none_keeps_writes_out_of_the_journal() {
    let mut m = Node::new(true);
    let script = b"redis.call('set', 'kept', '1'); redis.set_repl(redis.REPL_NONE); redis.call('set', 'local', '2'); \
        redis.set_repl(redis.REPL_ALL); redis.call('set', 'kept2', '3')";
    assert_eq!(m.run(&[b"EVAL", script, b"0"]), b"$-1\r\n");
    assert_eq!(m.run(&[b"GET", b"local"]), b"$1\r\n2\r\n");
    let s = String::from_utf8(m.st.journal.read_from(0).unwrap()).unwrap();
    assert!(s.contains("$4\r\nkept\r\n") && s.contains("$5\r\nkept2\r\n"), "{s}");
    assert!(!s.contains("local"), "a REPL_NONE write reached the journal: {s}");
}
