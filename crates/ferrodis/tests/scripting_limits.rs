//! Scripts that Redis runs, ferrodis runs, with Redis's replies (issue 25); and a panic is
//! contained to its command or fatal, never a half-alive server.

use crate::harness::*;
use proptest::prelude::*;
use std::time::{Duration, Instant};

/// Each case is run with EVAL on a fresh connection after SCRIPT FLUSH (cjson's settings last
/// until then, in Redis as here), on redis-server 7.0.15 and on ferrodis: the replies must be
/// equal byte for byte. Big tables (100,000 elements through cmsgpack and cjson), tables nested
/// past Lua's stack, self-containing tables, deep MessagePack input, 7,990-argument calls,
/// malformed JSON and MessagePack, and each library's settings and errors.
const CASES: &[(&str, &str)] = &[
    (
        "issue",
        r#"local big = {} for i = 1, 100000 do big[i] = i end local m = {} for i = 1, 100000 do m[tostring(i)] = i end local t = cmsgpack.unpack(cmsgpack.pack({big, m})) return #t"#,
    ),
    ("bigarr_str", r#"local t={} for i=1,100000 do t[i]=tostring(i) end return t"#),
    ("bigarr_ret_len", r#"local t={} for i=1,100000 do t[i]=tostring(i) end return #t"#),
    ("circular_ret", r#"local t={} t[1]=t return t"#),
    ("deep_ret", r#"local t={} local c=t for i=1,10000 do c[1]={} c=c[1] end return t"#),
    ("deep_ret_100", r#"local t={} local c=t for i=1,100 do c[1]={} c=c[1] end return t"#),
    ("msgpack_deep_unpack", r#"return cmsgpack.unpack(string.rep(string.char(0x91),200000)..string.char(1))"#),
    ("msgpack_deep_unpack_small", r#"return cmsgpack.unpack(string.rep(string.char(0x91),100)..string.char(1))"#),
    ("msgpack_circular_pack", r#"local t={} t[1]=t return cmsgpack.pack(t)"#),
    ("msgpack_circular_pack2", r#"local a={} local b={a} a[1]=b a[2]='x' return cmsgpack.pack(a)"#),
    ("msgpack_unpack_one", r#"local s=cmsgpack.pack(1,2,3) return {cmsgpack.unpack_one(s)}"#),
    ("msgpack_unpack_one_off", r#"local s=cmsgpack.pack(1,2,3) return {cmsgpack.unpack_one(s, 2)}"#),
    ("msgpack_unpack_limit", r#"local s=cmsgpack.pack(1,2,3,'a') return {cmsgpack.unpack_limit(s, 2)}"#),
    ("msgpack_unpack_limit_off", r#"local s=cmsgpack.pack(1,2,3,'a') return {cmsgpack.unpack_limit(s, 2, 2)}"#),
    ("msgpack_unpack_limit_end", r#"local s=cmsgpack.pack(1,2,3,'a') return {cmsgpack.unpack_limit(s, 10, 1)}"#),
    ("msgpack_unpack_bad_off", r#"local s=cmsgpack.pack(1,2,3) return {cmsgpack.unpack_one(s, 10)}"#),
    ("msgpack_unpack_neg_off", r#"local s=cmsgpack.pack(1,2,3) return {cmsgpack.unpack_one(s, -1)}"#),
    (
        "msgpack_many_toplevel",
        r#"local t={} for i=1,10000 do t[i]=cmsgpack.pack('s'..i) end local s=table.concat(t) return select('#', cmsgpack.unpack(s))"#,
    ),
    (
        "msgpack_many_toplevel_7000",
        r#"local t={} for i=1,7000 do t[i]=cmsgpack.pack('s'..i) end local s=table.concat(t) return select('#', cmsgpack.unpack(s))"#,
    ),
    ("msgpack_pack_manyargs", r#"local t={} for i=1,7900 do t[i]='s'..i end return #cmsgpack.pack(unpack(t))"#),
    ("msgpack_truncated", r#"return cmsgpack.unpack(string.char(0x92,1))"#),
    ("msgpack_bad", r#"return cmsgpack.unpack(string.char(0xc1))"#),
    ("msgpack_empty", r#"return cmsgpack.unpack('')"#),
    ("msgpack_nopack", r#"return cmsgpack.pack()"#),
    ("msgpack_floats", r#"return cmsgpack.unpack(cmsgpack.pack(1.5, -0.25, 3.14159, 1e300, -2^63, 2^64))"#),
    ("msgpack_map_roundtrip", r#"local t=cmsgpack.unpack(cmsgpack.pack({a=1,b={1,2,3}})) return {t.a, t.b[3]}"#),
    ("msgpack_bigstr", r#"return #cmsgpack.pack(string.rep('x',70000))"#),
    (
        "msgpack_bigmap_unpack",
        r#"local m={} for i=1,20000 do m['k'..i]='v'..i end local t=cmsgpack.unpack(cmsgpack.pack(m)) return t['k19999']"#,
    ),
    ("cjson_keep_buffer", r#"return cjson.encode_keep_buffer(false)"#),
    ("cjson_keep_buffer2", r#"cjson.encode_keep_buffer(true) return cjson.encode({1,2})"#),
    ("cjson_max_depth", r#"cjson.encode_max_depth(5) local t={{{{{{1}}}}}} return cjson.encode(t)"#),
    ("cjson_max_depth_ok", r#"cjson.encode_max_depth(6) local t={{{{{{1}}}}}} return cjson.encode(t)"#),
    ("cjson_max_depth_ret", r#"return cjson.encode_max_depth(5)"#),
    ("cjson_encode_deep_default", r#"local t={} local c=t for i=1,1100 do c[1]={} c=c[1] end return cjson.encode(t)"#),
    ("cjson_encode_circular", r#"local t={} t[1]=t return cjson.encode(t)"#),
    ("cjson_decode_max_depth", r#"cjson.decode_max_depth(3) return cjson.decode('[[[[1]]]]')"#),
    ("cjson_decode_deep_default", r#"return #cjson.decode(string.rep('[',1500)..string.rep(']',1500))"#),
    ("cjson_decode_deep_500", r#"return #cjson.decode(string.rep('[',500)..string.rep(']',500))"#),
    ("cjson_sparse", r#"return cjson.encode({[1]=1,[2]=2,[20]=3})"#),
    ("cjson_sparse_ok", r#"return cjson.encode({[1]=1,[2]=2,[4]=3})"#),
    ("cjson_sparse_cfg", r#"return {cjson.encode_sparse_array()}"#),
    ("cjson_invalid_utf8_dec", r#"return cjson.decode('"\xff\xfe"')"#),
    ("cjson_invalid_utf8_enc", r#"return cjson.encode('\xff\xfe')"#),
    ("cjson_bad_json", r#"return cjson.decode('{"a":}')"#),
    ("cjson_bad_json2", r#"return cjson.decode('[1,2')"#),
    ("cjson_bad_json3", r#"return cjson.decode('nul')"#),
    ("cjson_bad_json4", r#"return cjson.decode('')"#),
    ("cjson_trailing", r#"return cjson.decode('[1] x')"#),
    ("cjson_nan", r#"return cjson.encode(0/0)"#),
    ("cjson_inf", r#"return cjson.encode(1/0)"#),
    ("cjson_func", r#"return cjson.encode(function() end)"#),
    ("cjson_key_bool", r#"return cjson.encode({[true]=1})"#),
    ("cjson_unicode", r#"return cjson.decode('"\\u00e9\\ud83d\\ude00"')"#),
    ("cjson_numbers", r#"return cjson.encode({1.5, 100000000000000, 1e20, -0.0, 0.1})"#),
    (
        "cjson_decode_num",
        r#"local t=cjson.decode('[1e2, -0, 1.5e-3, 12345678901234567890]') return {tostring(t[1]), tostring(t[2]), tostring(t[3]), tostring(t[4])}"#,
    ),
    ("cjson_null", r#"return cjson.encode({a=cjson.null})"#),
    ("cjson_empty", r#"return cjson.encode({})"#),
    ("cjson_big_obj", r#"local m={} for i=1,20000 do m['k'..i]=i end return #cjson.encode(m)"#),
    ("cjson_big_arr", r#"local m={} for i=1,20000 do m[i]='v'..i end return #cjson.encode(m)"#),
    ("cjson_decode_big", r#"local m={} for i=1,20000 do m[i]='v'..i end return #cjson.decode(cjson.encode(m))"#),
    ("cjson_escape", r#"return cjson.encode('a/b"c\\d\n\1\127')"#),
    ("cjson_refuse_invalid_numbers", r#"return {cjson.encode_invalid_numbers()}"#),
    ("cjson_decode_invalid_numbers", r#"return cjson.decode('[0x10]')"#),
    ("cjson_number_precision", r#"return cjson.encode_number_precision(3)"#),
    ("struct_pack", r#"return struct.pack('>I2i4', 258, -1)"#),
    ("struct_unpack", r#"return {struct.unpack('>I2i4', struct.pack('>I2i4', 258, -1))}"#),
    ("struct_bad_fmt", r#"return struct.pack('y', 1)"#),
    ("struct_size", r#"return struct.size('>I2i4d')"#),
    ("struct_unpack_short", r#"return {struct.unpack('>I4', 'ab')}"#),
    ("struct_many", r#"local f=string.rep('b',7990) local t={} for i=1,7990 do t[i]=1 end return #struct.pack(f, unpack(t))"#),
    ("struct_unpack_many", r#"local f=string.rep('b',7990) return select('#', struct.unpack(f, string.rep('a',7990)))"#),
    ("struct_big_size", r#"return struct.pack('i17', 1)"#),
    ("struct_str", r#"return {struct.unpack('s', 'abc\0def')}"#),
    (
        "bit_ops",
        r#"return {bit.band(0xff, 0x0f), bit.bor(1,2,4), bit.bxor(5,3), bit.lshift(1,31), bit.rshift(-1,28), bit.arshift(-256,4), bit.tohex(255), bit.tohex(-1,-4), bit.bnot(0), bit.bswap(0x12345678), bit.rol(1,33), bit.tobit(2^32+5)}"#,
    ),
    ("bit_bad", r#"return bit.band('x')"#),
    ("bit_noarg", r#"return bit.band()"#),
    ("sha1hex", r#"return {redis.sha1hex(''), redis.sha1hex('abc')}"#),
    ("sha1hex_noarg", r#"return redis.sha1hex()"#),
    ("breakpoint", r#"return {redis.breakpoint()}"#),
    ("debug", r#"return {redis.debug('x', 1)}"#),
    ("unpack_large_call", r#"local t={} for i=1,7990 do t[i]=tostring(i) end return redis.call('SADD','unpackset',unpack(t))"#),
    (
        "unpack_large_del",
        r#"redis.call('DEL','unpackset') local t={} for i=1,7900 do t[i]='k'..i end return redis.call('MSET', unpack((function() local r={} for i=1,3900 do r[#r+1]='mk'..i r[#r+1]='v' end return r end)()))"#,
    ),
    ("unpack_too_many", r#"local t={} for i=1,9000 do t[i]=tostring(i) end return redis.call('SADD','unpackset2',unpack(t))"#),
    ("unpack_ret", r#"local t={} for i=1,7000 do t[i]=tostring(i) end return {unpack(t)}"#),
    (
        "keys_unpack",
        r#"for i=1,7500 do redis.call('SET','ku'..i,'x') end local k=redis.call('KEYS','ku*') return redis.call('DEL', unpack(k))"#,
    ),
    (
        "big_reply_to_lua",
        r#"for i=1,20000 do redis.call('RPUSH','bl',i) end local r=redis.call('LRANGE','bl',0,-1) redis.call('DEL','bl') return #r"#,
    ),
    ("pcall_error", r#"return {pcall(function() error('x') end)}"#),
    ("error_table", r#"return redis.error_reply('MY err')"#),
    ("status_table", r#"return redis.status_reply('FINE')"#),
    ("string_rep_big", r#"return #string.rep('x', 10000000)"#),
    ("return_float", r#"return 3.99"#),
    ("return_mixed", r#"return {1,'a',{2,3},nil,5}"#),
    ("return_bool", r#"return {true,false}"#),
];

/// PING answers PONG on connections made earlier (on every worker thread: four connections over
/// two threads) and on a new one, and no BUSY is left behind.
fn assert_serving(port: u16, old: &mut [Client], after: &str) {
    for c in old.iter_mut() {
        assert_eq!(c.text(&["PING"]), "+PONG\r\n", "an old connection after {after}");
    }
    assert_eq!(Client::connect(port).text(&["PING"]), "+PONG\r\n", "a new connection after {after}");
}

fn shown(r: &[u8]) -> String {
    let s = String::from_utf8_lossy(r);
    if s.len() > 300 {
        format!("{}...({} bytes)...{}", &s[..150], s.len(), &s[s.len() - 100..])
    } else {
        s.into_owned()
    }
}

#[test]
fn lua_libraries_and_big_or_deep_values_answer_as_redis_and_the_server_stays_up() {
    let redis = Server::redis(&[]);
    let ours = Server::ferrodis(&["--io-threads", "2"]);
    let mut old: Vec<Client> = (0..4).map(|_| ours.client()).collect();
    for (name, src) in CASES {
        let (mut a, mut b) = (redis.client(), ours.client());
        a.cmd(&["SCRIPT", "FLUSH"]);
        b.cmd(&["SCRIPT", "FLUSH"]);
        let (ra, rb) = (a.cmd(&["EVAL", src, "0"]), b.cmd(&["EVAL", src, "0"]));
        assert!(ra == rb, "case {name}:\n redis-server: {}\n ferrodis:     {}", shown(&ra), shown(&rb));
        assert_serving(ours.port, &mut old, name);
    }
}

fn ferrodis_with_failpoints(points: &str) -> Server {
    let s = launch_with_env(FERRODIS, free_port(), &["--io-threads", "2"], tempdir("failpoint"), &[("FERRODIS_FAILPOINTS", points)]);
    s.wait_ready();
    s
}

#[test]
fn a_panic_in_a_command_that_changed_nothing_is_contained_and_one_in_a_write_is_fatal() {
    let mut s = ferrodis_with_failpoints("panic-after:strlen,panic-after:incr");
    let mut old: Vec<Client> = (0..4).map(|_| s.client()).collect();
    assert_eq!(old[0].text(&["SET", "k", "hello"]), "+OK\r\n");
    // A read that panics: an error reply, its connection closed, everyone else served.
    let mut c = s.client();
    let r = c.text(&["STRLEN", "k"]);
    assert!(r.starts_with("-ERR internal error while running 'strlen'"), "{r}");
    assert!(c.closed(), "the connection of the failed command is closed");
    assert_serving(s.port, &mut old, "a contained panic");
    assert_eq!(s.client().text(&["GET", "k"]), "$5\r\nhello\r\n");
    // The same inside a script that wrote nothing: no BUSY is left, and scripts run again.
    let mut c = s.client();
    let r = c.text(&["EVAL", "return redis.call('strlen', KEYS[1])", "1", "k"]);
    assert!(r.starts_with("-ERR internal error while running 'eval'"), "{r}");
    assert_serving(s.port, &mut old, "a panic inside a script");
    for _ in 0..4 {
        assert_eq!(s.client().text(&["EVAL", "return redis.call('get', KEYS[1])", "1", "k"]), "$5\r\nhello\r\n");
    }
    let log = s.log();
    assert!(
        log.contains("=== REDIS BUG REPORT START") && log.contains("argv[0]: 'STRLEN'") && log.contains("------ STACK TRACE ------"),
        "{log}"
    );
    // A write that panics after changing the keyspace: the process stops with the report.
    let mut c = s.client();
    c.send(&encode(&[b"INCR", b"counter"]));
    let status = s.wait_exit(Duration::from_secs(20)).expect("the process stops after a panic during a write");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(libc_sigabrt()), "aborted: {status:?}");
    let log = s.log();
    assert!(log.contains("argv[0]: 'INCR'") && log.contains("The server stops now"), "{log}");
}

fn libc_sigabrt() -> i32 {
    6
}

#[test]
fn busy_lasts_only_while_a_script_runs_and_script_kill_and_shutdown_nosave_reach_it() {
    let mut s = Server::ferrodis(&["--io-threads", "2", "--busy-reply-threshold", "100"]);
    let mut runner = s.client();
    runner.send(&encode(&[b"EVAL", b"local i = 0 while true do i = i + 1 end", b"0"]));
    let mut other = s.client();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = other.text(&["PING"]);
        if r.starts_with("-BUSY") {
            break;
        }
        assert!(Instant::now() < deadline, "no BUSY while a script loops: {r}");
    }
    assert_eq!(other.text(&["SCRIPT", "KILL"]), "+OK\r\n");
    let r = String::from_utf8_lossy(&runner.read_reply().expect("the script's reply")).into_owned();
    assert!(r.starts_with("-ERR Script killed by user with SCRIPT KILL..."), "{r}");
    assert_eq!(other.text(&["PING"]), "+PONG\r\n");
    assert_eq!(other.text(&["SCRIPT", "KILL"]), "-NOTBUSY No scripts in execution right now.\r\n");
    // A script that wrote cannot be killed; SHUTDOWN NOSAVE still stops the server. (BUSY comes
    // past the threshold, long after the script's first statement, its write.)
    runner.send(&encode(&[b"EVAL", b"redis.call('set', 'x', '1') while true do end", b"0"]));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = other.text(&["PING"]);
        if r.starts_with("-BUSY") {
            break;
        }
        assert!(Instant::now() < deadline, "no BUSY while the writing script loops: {r}");
    }
    assert!(other.text(&["SCRIPT", "KILL"]).starts_with("-UNKILLABLE"));
    // A SHUTDOWN that would save is refused while the script runs; NOSAVE is not.
    assert_eq!(other.text(&["SHUTDOWN"]), "-BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.\r\n");
    other.send(&encode(&[b"SHUTDOWN", b"NOSAVE"]));
    assert!(s.wait_exit(Duration::from_secs(20)).is_some(), "SHUTDOWN NOSAVE stops a server running a script");
}

#[test]
fn a_script_that_allocates_without_bound_is_stopped_by_maxmemory() {
    let s = Server::ferrodis(&["--maxmemory", "64mb"]);
    let mut c = s.client();
    let r = c.text(&["EVAL", "local t = {} for i = 1, 1e9 do t[i] = string.rep('x', 100) .. i end return #t", "0"]);
    assert!(r.starts_with("-ERR") && r.contains("not enough memory"), "{r}");
    assert_eq!(c.text(&["PING"]), "+PONG\r\n");
    assert_eq!(c.text(&["EVAL", "return #string.rep('x', 1000)", "0"]), ":1000\r\n");
}

/// A fragment of a random Lua program that uses the libraries on big, nested, circular or
/// malformed input; every fragment runs under pcall, so the script always returns.
fn fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        (1usize..9000).prop_map(|n| format!("local t = {{}} for i = 1, {n} do t[i] = tostring(i) end r[#r+1] = select('#', unpack(t))")),
        (1usize..9000).prop_map(|n| format!("local t = {{}} for i = 1, {n} do t[i] = i end r[#r+1] = #cmsgpack.pack(unpack(t))")),
        (1usize..9000).prop_map(|d| format!("local t = {{}} local c = t for i = 1, {d} do c[1] = {{}} c = c[1] end r[#r+1] = t")),
        (1usize..9000).prop_map(|d| format!("r[#r+1] = cjson.decode(string.rep('[', {d}) .. string.rep(']', {d}))")),
        (1usize..9000).prop_map(|d| format!("local t = {{}} local c = t for i = 1, {d} do c.k = {{}} c = c.k end r[#r+1] = cjson.encode(t)")),
        (1usize..9000).prop_map(|d| format!("r[#r+1] = cmsgpack.unpack(string.rep(string.char(0x91), {d}) .. string.char(1))")),
        (1usize..9000).prop_map(|d| format!("r[#r+1] = cmsgpack.unpack(string.rep(string.char(0x81, 0xa1, 0x61), {d}) .. string.char(1))")),
        Just("local t = {} t[1] = t t.x = t r[#r+1] = cmsgpack.pack(t) r[#r+1] = t".to_string()),
        Just("local t = {} t[1] = t r[#r+1] = cjson.encode(t)".to_string()),
        prop::collection::vec(any::<u8>(), 0..64).prop_map(|b| {
            let bytes: Vec<String> = b.iter().map(|c| c.to_string()).collect();
            format!("local s = string.char({}) r[#r+1] = {{cmsgpack.unpack(s)}} r[#r+1] = {{cmsgpack.unpack_limit(s, 3, 1)}}", bytes.join(","))
        }),
        "[ -~]{0,40}".prop_map(|s| format!("r[#r+1] = cjson.decode({s:?})")),
        "[bBhHlLiIfdxsc0-9<>=! ]{0,12}".prop_map(|f| format!("r[#r+1] = struct.pack({f:?}, 1, 2, 'ab', 3) r[#r+1] = {{struct.unpack({f:?}, string.rep('a', 64))}}")),
        (any::<i64>(), any::<i64>()).prop_map(|(a, b)| format!("r[#r+1] = {{bit.band({a}, {b}), bit.tohex({a}), bit.rol({a}, {b})}}")),
        (1usize..8100).prop_map(|n| format!("local t = {{}} for i = 1, {n} do t[i] = 'a' end r[#r+1] = redis.call('ECHO', table.concat(t)) r[#r+1] = redis.pcall('SADD', 'prop-set', unpack(t))")),
    ]
}

/// One server for every case (killed when the test ends: no static that outlives it).
#[test]
fn random_library_programs_never_take_the_server_down() {
    let s = Server::ferrodis(&["--io-threads", "2"]);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig { cases: 24, ..ProptestConfig::default() });
    let result = runner.run(&prop::collection::vec(fragment(), 1..5), |parts| {
        let mut old: Vec<Client> = (0..4).map(|_| s.client()).collect();
        let body: Vec<String> = parts.iter().map(|p| format!("pcall(function() {p} end)")).collect();
        let script = format!("local r = {{}} {} return r", body.join(" "));
        let reply = s.client().cmd(&["EVAL", &script, "0"]);
        prop_assert!(!reply.starts_with(b"-ERR internal error"), "a panic: {}", shown(&reply));
        prop_assert!(!reply.starts_with(b"-BUSY"), "{}", shown(&reply));
        assert_serving(s.port, &mut old, &script);
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

#[test]
fn a_fresh_connection_always_reaches_a_busy_script_and_pcall_cannot_swallow_the_kill() {
    // The worker running the script serves nobody until it ends: new connections go to the
    // others, so every fresh redis-cli gets BUSY (not silence) and can send SCRIPT KILL. The
    // script catches errors with pcall; the kill must still end it.
    let s = Server::ferrodis(&["--io-threads", "3", "--busy-reply-threshold", "50"]);
    let mut runner = s.client();
    runner.send(&encode(&[b"EVAL", b"local f = function() while 1 do redis.call('ping') end end while 1 do pcall(f) end", b"0"]));
    // Until the script runs, a new connection may still land on its thread (and then wait for
    // it): those probes give up after a while; once it runs, none lands there.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut probe = s.client();
        probe.s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        probe.send(&encode(&[b"PING"]));
        let r = probe.read_reply().map(|r| String::from_utf8_lossy(&r).into_owned()).unwrap_or_default();
        if r.starts_with("-BUSY") {
            break;
        }
        assert!(Instant::now() < deadline, "no BUSY while a script loops: {r}");
    }
    for _ in 0..6 {
        assert!(s.client().text(&["PING"]).starts_with("-BUSY"));
    }
    assert_eq!(s.client().text(&["SCRIPT", "KILL"]), "+OK\r\n");
    let r = String::from_utf8_lossy(&runner.read_reply().expect("the script's reply")).into_owned();
    assert!(r.starts_with("-ERR Script killed by user with SCRIPT KILL..."), "{r}");
    assert_eq!(runner.text(&["PING"]), "+PONG\r\n");
}
