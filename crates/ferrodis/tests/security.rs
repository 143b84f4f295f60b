//! Issue 26: the holes Redis does not have, each run against redis-server 7.0.15 and ferrodis
//! with the same steps, expecting Redis's outcome.

use crate::harness::*;
use proptest::prelude::*;

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

/// The servers' files go where `dir` and `dbfilename` say; CONFIG SET may change them only where
/// `enable-protected-configs` allows it, a file name is never a path, and a new `dir` takes
/// effect at once.
#[test]
fn protected_configs_are_protected_and_dir_takes_effect() {
    require_redis();
    let steps: &[&[&str]] = &[
        &["CONFIG", "SET", "dir", "/tmp"],
        &["CONFIG", "SET", "dbfilename", "x.rdb"],
        &["CONFIG", "SET", "dbfilename", "../../../x/file"],
        &["CONFIG", "SET", "maxmemory", "0", "dir", "/tmp"],
        &["CONFIG", "GET", "enable-protected-configs"],
        &["CONFIG", "SET", "enable-protected-configs", "yes"],
        &["MODULE", "LIST"],
        &["MODULE", "LOAD", "/tmp/x.so"],
        &["MODULE", "UNLOAD", "x"],
        &["MODULE", "HELP"],
    ];
    let (redis, ours) = (Server::redis(&[]), Server::ferrodis(&[]));
    for step in steps {
        let (a, b) = (redis.client().text(step), ours.client().text(step));
        assert_eq!(a, b, "{step:?}");
    }
    // Where the operator allowed it: still no path as a file name, and `dir` is real.
    let allowed = ["--enable-protected-configs", "yes", "--enable-module-command", "yes"];
    let (redis, ours) = (Server::redis(&allowed), Server::ferrodis(&allowed));
    for s in [&redis, &ours] {
        let mut c = s.client();
        let other = tempdir("other-dir");
        let other_s = other.to_str().expect("utf-8 path");
        let steps: Vec<Vec<&str>> = vec![
            vec!["CONFIG", "SET", "dbfilename", "../../../x/file"],
            vec!["CONFIG", "SET", "dbfilename", "/abs/path.rdb"],
            vec!["CONFIG", "SET", "dbfilename", "a\\b"],
            vec!["CONFIG", "SET", "dir", "/nonexistent/dir"],
            vec!["CONFIG", "SET", "dir", "/etc/passwd"],
            vec!["MODULE", "LOAD", "/tmp/x.so"],
            vec!["MODULE", "UNLOAD", "x"],
        ];
        let replies: Vec<String> = steps.iter().map(|st| c.text(st)).collect();
        assert!(replies[0].contains("dbfilename can't be a path, just a filename"), "{replies:?}");
        assert!(replies[3].contains("No such file or directory") && replies[4].contains("Not a directory"), "{replies:?}");
        assert!(replies[5].starts_with("-ERR Error loading the extension"), "{replies:?}");
        assert_eq!(c.text(&["CONFIG", "SET", "dir", other_s, "dbfilename", "moved.rdb"]), "+OK\r\n");
        assert_eq!(c.text(&["SET", "k", "v"]), "+OK\r\n");
        assert_eq!(c.text(&["SAVE"]), "+OK\r\n");
        assert!(other.join("moved.rdb").exists(), "SAVE wrote into the new dir");
        assert!(!s.dir.join("moved.rdb").exists());
        let got = c.text(&["CONFIG", "GET", "dir"]);
        assert!(got.contains(other_s), "{got}");
        let _ = std::fs::remove_dir_all(&other);
    }
    // At start, a path as a file name stops the server with Redis's error.
    for bin in ["redis-server", FERRODIS] {
        for (name, value, msg) in [
            ("--dbfilename", "../x.rdb", "dbfilename can't be a path, just a filename"),
            ("--appendfilename", "/tmp/x.aof", "appendfilename can't be a path, just a filename"),
            ("--appenddirname", "../d", "appenddirname can't be a path, just a dirname"),
        ] {
            let port = free_port().to_string();
            let out = std::process::Command::new("timeout").args(["10", bin, "--port", &port, name, value]).output().expect("run");
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{bin} {name} {value}: {err}");
            assert!(err.contains("FATAL CONFIG FILE ERROR") && err.contains(msg), "{bin}: {err}");
        }
    }
}

/// An RDB file whose sorted set (or set, or hash) names a member twice is refused at load, as
/// Redis refuses it, instead of loading with one member silently dropped. (A small hash with a
/// duplicate field is the exception in Redis 7.0.15: it loads it as a listpack with both
/// entries, HLEN 2 and HGETALL showing the field twice, a corrupt object. ferrodis refuses it
/// like the others.)
#[test]
fn an_rdb_with_a_duplicate_member_is_refused() {
    require_redis();
    fn s(b: &[u8]) -> Vec<u8> {
        let mut v = vec![b.len() as u8];
        v.extend_from_slice(b);
        v
    }
    let kinds: [(u8, Vec<u8>, &str); 3] = [
        (5, [s(b"a"), 1f64.to_le_bytes().to_vec(), s(b"a"), 2f64.to_le_bytes().to_vec()].concat(), "Duplicate zset fields detected"),
        (2, [s(b"a"), s(b"a")].concat(), "Duplicate set members detected"),
        (4, [s(b"f"), s(b"1"), s(b"f"), s(b"2")].concat(), "Duplicate hash fields detected"),
    ];
    for (t, body, msg) in kinds {
        // REDIS0010, SELECTDB 0, the key "z" with 2 entries, EOF and a zero (unchecked) checksum.
        let rdb = [b"REDIS0010".to_vec(), vec![0xFE, 0, t], s(b"z"), vec![2], body, vec![0xFF], vec![0; 8]].concat();
        let bins: &[&str] = if t == 4 { &[FERRODIS] } else { &["redis-server", FERRODIS] };
        for &bin in bins {
            let dir = tempdir("dup");
            std::fs::write(dir.join("dump.rdb"), &rdb).expect("write rdb");
            let mut srv = launch(bin, &[], dir);
            let status = srv.wait_exit(std::time::Duration::from_secs(20));
            assert!(status.is_some_and(|s| !s.success()), "{bin} must not start on a duplicate ({msg})");
            assert!(srv.log().contains(msg), "{bin}: {}", srv.log());
        }
    }
}

/// SORT's BY and GET patterns read keys that no argument names: Redis allows them only to a user
/// who may read every key. `redis.acl_check_cmd` answers what dispatch would decide.
#[test]
fn sort_patterns_and_acl_check_cmd_follow_key_permissions() {
    require_redis();
    let setup: &[&[&str]] = &[
        &["ACL", "SETUSER", "mallory", "on", ">m", "~app:*", "+@all", "-acl"],
        &["ACL", "SETUSER", "full", "on", ">f", "~*", "+@all"],
        &["ACL", "SETUSER", "sel", "on", ">s", "~app:*", "+@all", "(~* +sort)"],
        &["ACL", "SETUSER", "reader", "on", ">r", "%R~*", "~app:*", "+@all"],
        &["RPUSH", "app:ids", "1", "2", "3"],
        &["RPUSH", "app:list", "1"],
        &["HSET", "user_1", "password", "p1"],
        &["SET", "salary_1", "10"],
        &["SET", "secret_1", "s"],
    ];
    let steps: &[&[&str]] = &[
        &["SORT", "app:ids", "BY", "nosort", "GET", "user_*->password"],
        &["SORT", "app:ids", "BY", "salary_*", "DESC"],
        &["SORT_RO", "app:list", "GET", "secret_*"],
        &["SORT", "app:ids", "GET", "#"],
        &["SORT", "app:ids", "BY", "nosort"],
        &["SORT", "app:ids", "BY", "salary_*", "GET", "#", "STORE", "app:out"],
        &["SORT", "app:ids", "GET"],
        &["EVAL", "return redis.acl_check_cmd('GET','secret')", "0"],
        &["EVAL", "return redis.acl_check_cmd('GET','app:x')", "0"],
        &["EVAL", "return redis.acl_check_cmd('set','app:x')", "0"],
        &["EVAL", "return redis.acl_check_cmd('nosuch')", "0"],
        &["EVAL", "return redis.acl_check_cmd('config','get','x')", "0"],
        &["EVAL", "return redis.acl_check_cmd('config','nosuch')", "0"],
        &["EVAL", "return redis.acl_check_cmd('acl','whoami')", "0"],
        &["EVAL", "return redis.acl_check_cmd('get', {})", "0"],
        &["EVAL", "return redis.acl_check_cmd('publish','ch','x')", "0"],
        &["EVAL", "return redis.acl_check_cmd('sort','app:ids','get','x_*')", "0"],
    ];
    let (redis, ours) = (Server::redis(&[]), Server::ferrodis(&[]));
    let mut transcripts = Vec::new();
    for s in [&redis, &ours] {
        let mut admin = s.client();
        for st in setup {
            admin.cmd(st);
        }
        let mut t = Vec::new();
        for (user, pass) in [("mallory", "m"), ("full", "f"), ("sel", "s"), ("reader", "r")] {
            let mut c = s.client();
            assert_eq!(c.text(&["AUTH", user, pass]), "+OK\r\n");
            for st in steps {
                t.push(format!("{user} {st:?} => {}", c.text(st)));
            }
        }
        // The refusals are errors, not ACL denials: the log holds the same entries.
        let log = admin.cmd(&["ACL", "LOG"]);
        t.push(format!("ACL LOG entries: {}", elements(&log).len()));
        transcripts.push(t);
    }
    for (a, b) in transcripts[0].iter().zip(&transcripts[1]) {
        assert_eq!(a, b);
    }
    assert!(transcripts[1][0].contains("GET option of SORT denied due to insufficient ACL permissions"), "{}", transcripts[1][0]);
}

/// Keys of each type: `app:*` hold PUB- markers, `sec:*` and `other` hold SECRET- markers.
const ACL_DATA: &[&[&str]] = &[
    &["SET", "app:1", "PUB-app:1"],
    &["HSET", "app:2", "f", "PUB-app:2"],
    &["RPUSH", "app:list", "1", "2"],
    &["SET", "w_1", "5"],
    &["SET", "w_2", "3"],
    &["SET", "sec:1", "SECRET-sec:1"],
    &["RPUSH", "sec:2", "SECRET-sec:2"],
    &["HSET", "sec:h", "f", "SECRET-sec:h"],
    &["SADD", "other", "SECRET-other"],
    &["ZADD", "sec:z", "1", "SECRET-sec:z"],
    &["SET", "sec:ptr_1", "SECRET-ptr1"],
    &["SET", "sec:ptr_2", "SECRET-ptr2"],
];
const ACL_KEYS: &[&str] = &["app:1", "app:2", "app:list", "sec:1", "sec:2", "sec:h", "other", "sec:z", "w_1", "app:new"];
const ACL_KEY_RULES: &[&str] =
    &["~app:*", "%R~app:*", "%W~app:*", "~sec:1", "%R~sec:*", "%W~sec:*", "~*", "~oth*", "%R~*:2", "~w_*", "%R~sec:ptr_*"];

/// A command a limited user may try, with key slots filled from ACL_KEYS.
fn acl_command() -> impl Strategy<Value = Vec<String>> {
    let key = || proptest::sample::select(ACL_KEYS);
    let templates: Vec<&str> = vec![
        "GET $1",
        "MGET $1 $2",
        "STRLEN $1",
        "GETRANGE $1 0 -1",
        "HGETALL $1",
        "HGET $1 f",
        "HVALS $1",
        "LRANGE $1 0 -1",
        "LINDEX $1 0",
        "SMEMBERS $1",
        "SUNION $1 $2",
        "ZRANGE $1 0 -1",
        "DUMP $1",
        "OBJECT ENCODING $1",
        "TYPE $1",
        "EXISTS $1 $2",
        "COPY $1 $2",
        "RENAME $1 $2",
        "GETDEL $1",
        "LPOP $1",
        "SRANDMEMBER $1",
        "HRANDFIELD $1 1 WITHVALUES",
        "LCS $1 $2",
        "SORT app:list BY w_* GET sec:ptr_*",
        "SORT app:list GET #",
        "SORT_RO app:list GET $1",
        "SORT $1 BY nosort",
        "SORT app:list BY nosort STORE $1",
        "EVAL|return redis.call('GET', KEYS[1])|1|$1",
        "EVAL|return redis.call('GET', ARGV[1])|0|$1",
        "EVAL|return redis.pcall('HGETALL', KEYS[1])|1|$1",
        "EVAL|return redis.acl_check_cmd('GET', ARGV[1])|0|$1",
        "MIGRATE 127.0.0.1 1 $1 0 100",
        "PUBLISH $1 x",
        "SUNIONSTORE $2 $1",
        "ZUNIONSTORE $2 1 $1",
        "LMOVE $1 $2 LEFT RIGHT",
        "SINTERCARD 1 $1",
        "BITCOUNT $1",
        "TOUCH $1",
        "MEMORY USAGE $1",
        "OBJECT FREQ $1",
    ];
    (proptest::sample::select(templates), key(), key()).prop_map(|(t, k1, k2)| {
        let filled = t.replace("$1", k1).replace("$2", k2);
        if filled.contains('|') {
            filled.split('|').map(String::from).collect()
        } else {
            filled.split(' ').map(String::from).collect()
        }
    })
}

/// A user: up to three key rules, all commands or all but scripting, some channels.
fn acl_user() -> impl Strategy<Value = Vec<String>> {
    (
        proptest::sample::subsequence(ACL_KEY_RULES.to_vec(), 0..=3),
        proptest::bool::ANY,
        proptest::sample::select(vec!["allchannels", "resetchannels", "&app*"]),
    )
        .prop_map(|(keys, no_scripting, channels)| {
            let mut rules: Vec<String> = vec!["reset".into(), "on".into(), ">pw".into(), "+@all".into(), channels.into()];
            if no_scripting {
                rules.push("-@scripting".into());
            }
            rules.extend(keys.into_iter().map(String::from));
            rules
        })
}

fn denied(r: &str) -> bool {
    r.contains("NOPERM") || r.contains("insufficient ACL") || r.contains("no permissions") || r.contains("can't access")
}

/// Random ACL users and random commands over keys they may or may not read: every decision
/// (denied or not) is redis-server's, and no reply ever carries a secret that redis-server's
/// reply to the same command, from the same state, does not.
#[test]
fn a_limited_user_never_reads_what_redis_would_not_let_it_read() {
    require_redis();
    let (redis, ours) = (Server::redis(&[]), Server::ferrodis(&[]));
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig { cases: 200, ..ProptestConfig::default() });
    let strategy = (acl_user(), proptest::collection::vec(acl_command(), 1..8));
    runner
        .run(&strategy, |(user, commands)| {
            // Per server: ACL SETUSER's reply, then each command's.
            let mut made: Vec<String> = Vec::new();
            let mut transcripts: Vec<Vec<String>> = Vec::new();
            for s in [&redis, &ours] {
                let mut admin = s.client();
                admin.cmd(&["FLUSHALL"]);
                for d in ACL_DATA {
                    admin.cmd(d);
                }
                admin.cmd(&["ACL", "DELUSER", "u"]);
                let mut setuser: Vec<&str> = vec!["ACL", "SETUSER", "u"];
                setuser.extend(user.iter().map(String::as_str));
                made.push(admin.text(&setuser));
                let mut t = Vec::new();
                if made.last().is_some_and(|r| r == "+OK\r\n") {
                    let mut c = s.client();
                    assert_eq!(c.text(&["AUTH", "u", "pw"]), "+OK\r\n");
                    for cmd in &commands {
                        let args: Vec<&str> = cmd.iter().map(String::as_str).collect();
                        t.push(String::from_utf8_lossy(&c.cmd(&args)).into_owned());
                    }
                }
                transcripts.push(t);
            }
            // (A key pattern after `~*` is refused: both servers must say so.)
            prop_assert_eq!(&made[0], &made[1], "ACL SETUSER u {:?}", user);
            for (i, cmd) in transcripts[0].iter().enumerate().map(|(i, _)| (i, &commands[i])) {
                let (r, f) = (&transcripts[0][i], &transcripts[1][i]);
                prop_assert_eq!(denied(r), denied(f), "user {:?} command {:?}\n redis: {}\n ours:  {}", user, cmd, r, f);
                for secret in
                    f.match_indices("SECRET-").map(|(at, _)| f[at..].split(|c: char| c.is_whitespace() || c == '"').next().unwrap_or(""))
                {
                    prop_assert!(r.contains(secret), "user {:?} command {:?} read {}\n redis: {}\n ours:  {}", user, cmd, secret, r, f);
                }
            }
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
}
