//! Issue 26: the holes Redis does not have, each run against redis-server 7.0.15 and ferrodis
//! with the same steps, expecting Redis's outcome.

use crate::harness::*;

/// Replies with Lua's addresses ("table: 0x...") masked, so two servers' replies compare.
fn masked(r: &[u8]) -> String {
    let s = String::from_utf8_lossy(r);
    let mut out = String::new();
    let mut rest = &*s;
    while let Some(i) = rest.find("0x") {
        out.push_str(&rest[..i]);
        out.push_str("ADDR");
        rest = rest[i + 2..].trim_start_matches(|c: char| c.is_ascii_hexdigit());
    }
    out.push_str(rest);
    out
}

/// Scripts that try to leave something behind for later scripts (globals, library functions,
/// metatables), to reach the real tables behind the read-only ones, or to load bytecode; and
/// scripts that must keep working in the sandbox.
const SANDBOX: &[&str] = &[
    "rawset(string,'upper',function(s) return s end) return 'ok'",
    "rawset(_G,'x',1) return 'ok'",
    "setmetatable(_G, nil) return 'ok'",
    "redis.call = nil return 'ok'",
    "return tostring(getfenv)",
    "setfenv(1, {}) return 1",
    "return tostring(newproxy)",
    "string.upper = nil return 1",
    "x = 1 return 1",
    "KEYS = {} return 1",
    "KEYS[1]='x' return KEYS[1]",
    "table.insert = nil",
    "table.insert(string, 2) return 1",
    "table.remove(string) return 1",
    "table.sort(string) return 1",
    "bit.band = nil return 1",
    "cjson.x = 1 return 1",
    "math.random = nil",
    "getmetatable('').__index = {} return 1",
    "rawset(getmetatable('').__index, 'x', 1) return 1",
    "local mt = getmetatable(_G) mt.__index = nil return 1",
    "local mt = getmetatable('') mt.x = 1 return 1",
    "return {pcall(setmetatable, cjson, {})}",
    "return {pcall(rawset, string, 'x', 1)}",
    "return {pcall(function() string.x = 1 end)}",
    "local co = coroutine.create(function() x = 1 end) local ok, e = coroutine.resume(co) return {tostring(ok), e}",
    "local f = loadstring('x=1') f() return 1",
    "local f, e = loadstring(string.dump(function() return 1 end)) return {tostring(f), e}",
    "return tostring(getmetatable(cjson))",
    "return tostring(getmetatable(getmetatable('')))",
    "return tostring(getmetatable(_G)==getmetatable(_G))",
    "return type(getmetatable(_G).__index)",
    "return loadstring('return _G')() == _G",
    "return tostring(_G._G == _G)",
    "return type(rawget(string,'upper'))",
    "return type(rawget(_G, 'KEYS'))",
    "return rawget(_G,'nosuch')",
    "return _G.nosuch",
    "return tostring(string.nosuch)",
    "local n=0 for k in pairs(string) do n=n+1 end return n",
    "local n = 0 for k in next, math do n = n + 1 end return n",
    "local r = {} for k,v in pairs(redis) do r[#r+1] = k end table.sort(r) return r",
    "local r = {} for k,v in pairs(_G) do r[#r+1] = k .. ':' .. type(v) end table.sort(r) return r",
    "return #_G",
    "return ('x'):upper()",
    "local t = setmetatable({}, {__index=function(t,k) return k end}) return t.x",
    "local t = {} rawset(t,'a',1) table.insert(t, 2) return {t.a, t[1]}",
    "return cjson.encode({1,2,{a=1}})",
    "return cmsgpack.unpack(cmsgpack.pack({1,2,3}))",
    "return struct.pack('>I2', 5)",
    "return coroutine.wrap(function() coroutine.yield(7) end)()",
    "return load(function() return nil end) ~= nil",
];

#[test]
fn scripts_cannot_change_the_sandbox_and_see_what_redis_scripts_see() {
    require_redis();
    let redis = Server::redis(&[]);
    let ours = Server::ferrodis(&["--io-threads", "1"]);
    for src in SANDBOX {
        let (ra, rb) = (redis.client().cmd(&["EVAL", src, "0"]), ours.client().cmd(&["EVAL", src, "0"]));
        assert_eq!(masked(&ra), masked(&rb), "script: {src}");
    }
}

/// The issue's attack: a user limited to `app:*` plants a function in `string` that an
/// administrator's later script would run with the administrator's rights. Refused as in Redis;
/// the administrator's script runs the real function and nothing leaks.
#[test]
fn one_users_script_cannot_plant_code_that_another_users_script_runs() {
    require_redis();
    let redis = Server::redis(&[]);
    // One worker: every connection shares one Lua state, the worst case.
    let ours = Server::ferrodis(&["--io-threads", "1"]);
    let plant = "rawset(string,'upper',function(s) pcall(function() redis.call('SET','app:leak',redis.call('GET','secret')) end) return s end) return 'ok'";
    let plant_global = "getmetatable('').__index = setmetatable({}, {__index = function(t, k) pcall(function() redis.call('SET','app:leak2',redis.call('GET','secret')) end) return string[k] end}) return 'ok'";
    let mut outcomes = Vec::new();
    for s in [&redis, &ours] {
        let mut admin = s.client();
        assert_eq!(admin.text(&["ACL", "SETUSER", "mallory", "on", ">m", "~app:*", "+eval", "+get"]), "+OK\r\n");
        assert_eq!(admin.text(&["SET", "secret", "s3cret"]), "+OK\r\n");
        let mut mallory = s.client();
        assert_eq!(mallory.text(&["AUTH", "mallory", "m"]), "+OK\r\n");
        let planted = masked(&mallory.cmd(&["EVAL", plant, "0"]));
        let planted_global = masked(&mallory.cmd(&["EVAL", plant_global, "0"]));
        let upper = admin.text(&["EVAL", "return string.upper('abc') .. ('def'):upper()", "0"]);
        let leak = admin.text(&["MGET", "app:leak", "app:leak2"]);
        let read = mallory.text(&["GET", "app:leak"]);
        assert_eq!(upper, "$6\r\nABCDEF\r\n");
        assert_eq!(leak, "*2\r\n$-1\r\n$-1\r\n", "nothing leaked");
        outcomes.push((planted, planted_global, read));
    }
    assert_eq!(outcomes[0], outcomes[1]);
    assert!(outcomes[1].0.contains("Attempt to modify a readonly table"), "{:?}", outcomes[1]);
}
