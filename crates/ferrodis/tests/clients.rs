//! What client libraries meet (issue 27): pipelines that do not interleave with other
//! connections' commands, CLIENT KILL that is done when it answers, MONITOR that shows scripts and
//! transactions, and the test and tooling commands clients use. Each test runs the same steps on
//! redis-server 7.0.15 and on ferrodis and expects Redis's outcome.

use crate::harness::*;

/// Both servers, the reference first.
fn both(args: &[&str]) -> [(&'static str, Server); 2] {
    [("redis-server", Server::redis(args)), ("ferrodis", Server::ferrodis(args))]
}

/// Eight connections each send `SET A <id>`, `GET A`, `DEL A` in one write, `rounds` times; the
/// number of batches whose GET did not see its own SET.
fn interleaved_batches(port: u16, rounds: usize) -> usize {
    let workers: Vec<_> = (0..8)
        .map(|id| {
            std::thread::spawn(move || {
                let mut c = Client::connect(port);
                let me = format!("client-{id}");
                let mut batch = encode(&[b"SET", b"A", me.as_bytes()]);
                batch.extend(encode(&[b"GET", b"A"]));
                batch.extend(encode(&[b"DEL", b"A"]));
                let want = format!("${}\r\n{}\r\n", me.len(), me).into_bytes();
                let mut missed = 0;
                for _ in 0..rounds {
                    c.send(&batch);
                    assert_eq!(c.read_reply().expect("SET"), b"+OK\r\n");
                    if c.read_reply().expect("GET") != want {
                        missed += 1;
                    }
                    let del = c.read_reply().expect("DEL");
                    assert!(del == b":1\r\n" || del == b":0\r\n", "{}", String::from_utf8_lossy(&del));
                }
                missed
            })
        })
        .collect();
    workers.into_iter().map(|w| w.join().expect("worker")).sum()
}

#[test]
fn a_pipeline_runs_without_other_connections_commands_between_its_commands() {
    for (name, s) in both(&[]) {
        assert_eq!(interleaved_batches(s.port, 2000), 0, "{name}: a GET missed the SET of its own pipeline");
    }
}

/// The same with a pipeline that mixes keyless, multi-key and script commands, and a
/// transaction: every command of one write sees only its own pipeline's effects.
#[test]
fn pipelines_with_scripts_transactions_and_multi_key_commands_stay_whole() {
    for (name, s) in both(&[]) {
        let port = s.port;
        let workers: Vec<_> = (0..6)
            .map(|id| {
                std::thread::spawn(move || {
                    let mut c = Client::connect(port);
                    let me = format!("c{id}");
                    let m = me.as_bytes();
                    let mut batch = encode(&[b"MSET", b"X", m, b"Y", m]);
                    batch.extend(encode(&[b"PING"]));
                    batch.extend(encode(&[b"EVAL", b"return redis.call('GET', KEYS[1])", b"1", b"X"]));
                    batch.extend(encode(&[b"MULTI"]));
                    batch.extend(encode(&[b"GET", b"Y"]));
                    batch.extend(encode(&[b"EXEC"]));
                    batch.extend(encode(&[b"MGET", b"X", b"Y"]));
                    let bulk = format!("${}\r\n{}\r\n", me.len(), me);
                    let mut wrong = 0;
                    for _ in 0..400 {
                        c.send(&batch);
                        let r: Vec<Vec<u8>> = (0..7).map(|_| c.read_reply().expect("reply")).collect();
                        if r[2] != bulk.as_bytes()
                            || r[5] != format!("*1\r\n{bulk}").as_bytes()
                            || r[6] != format!("*2\r\n{bulk}{bulk}").as_bytes()
                        {
                            wrong += 1;
                        }
                    }
                    wrong
                })
            })
            .collect();
        let wrong: usize = workers.into_iter().map(|w| w.join().expect("worker")).sum();
        assert_eq!(wrong, 0, "{name}: a pipeline saw another connection's writes");
    }
}

/// A line of `CLIENT LIST` / `CLIENT INFO`: the value of one field.
fn client_field(line: &str, name: &str) -> String {
    line.split_whitespace().find_map(|kv| kv.strip_prefix(&format!("{name}="))).unwrap_or_default().to_string()
}

/// A bulk reply's payload as text.
fn bulk_text(r: &[u8]) -> String {
    let s = String::from_utf8_lossy(r).into_owned();
    s.split_once("\r\n").map(|(_, rest)| rest.trim_end_matches("\r\n").to_string()).unwrap_or(s)
}

#[test]
fn client_kill_answers_after_the_client_is_gone_from_every_listing() {
    for (name, s) in both(&[]) {
        let mut admin = s.client();
        let mut lingering = Vec::new();
        for round in 0..200 {
            let mut victim = s.client();
            assert_eq!(victim.cmd(&["CLIENT", "SETNAME", "victim"]), b"+OK\r\n");
            let info = bulk_text(&victim.cmd(&["CLIENT", "INFO"]));
            let (id, addr) = (client_field(&info, "id"), client_field(&info, "addr"));
            // Every other victim is blocked in BLPOP when it is killed.
            let blocked = round % 2 == 1;
            if blocked {
                victim.send(&encode(&[b"BLPOP", b"nosuchlist", b"0"]));
                assert!(
                    wait_until(std::time::Duration::from_secs(10), || bulk_text(&admin.cmd(&["INFO", "clients"]))
                        .contains("blocked_clients:1")),
                    "{name}: the victim never blocked"
                );
            }
            let reply = match round % 4 {
                0 => admin.cmd(&["CLIENT", "KILL", &addr]),
                1 => admin.cmd(&["CLIENT", "KILL", "ADDR", &addr]),
                2 => admin.cmd(&["CLIENT", "KILL", "ID", &id]),
                _ => admin.cmd(&["CLIENT", "KILL", "USER", "default", "SKIPME", "yes"]),
            };
            assert!(reply == b"+OK\r\n" || reply == b":1\r\n", "{name}: {}", String::from_utf8_lossy(&reply));
            let list = bulk_text(&admin.cmd(&["CLIENT", "LIST"]));
            let clients = bulk_text(&admin.cmd(&["INFO", "clients"]));
            if list.contains("name=victim") || !clients.contains("connected_clients:1\r\n") || !clients.contains("blocked_clients:0\r\n") {
                lingering.push(round);
            }
            assert!(victim.closed(), "{name}: the killed client's connection stays open");
        }
        assert!(lingering.is_empty(), "{name}: killed clients still listed after CLIENT KILL answered, rounds {lingering:?}");
    }
}

/// MONITOR lines with the time and the client's port taken out.
fn monitor_lines(port: u16, steps: impl FnOnce(&mut Client)) -> Vec<String> {
    let mut m = Client::connect(port);
    assert_eq!(m.cmd(&["MONITOR"]), b"+OK\r\n");
    let mut c = Client::connect(port);
    steps(&mut c);
    c.cmd(&["ECHO", "the-end"]);
    let mut lines = Vec::new();
    loop {
        let r = m.read_reply().expect("a monitor line");
        let line = String::from_utf8_lossy(&r).trim_end().to_string();
        // "+1700000000.123456 [0 127.0.0.1:5555] ..." -> "[0 client] ...".
        let rest = line.split_once(' ').map(|(_, r)| r.to_string()).unwrap_or_default();
        let rest = match rest.split_once(' ') {
            Some((db, r)) => match r.split_once("] ") {
                Some((who, args)) => format!("{db} {}] {args}", if who == "lua" { "lua" } else { "client" }),
                None => rest.clone(),
            },
            None => rest,
        };
        let end = rest.contains("\"the-end\"");
        lines.push(rest);
        if end {
            return lines;
        }
    }
}

#[test]
fn monitor_shows_scripts_the_commands_they_call_and_transactions() {
    let mut seen = Vec::new();
    for (name, s) in both(&[]) {
        let lines = monitor_lines(s.port, |c| {
            let lib = "#!lua name=lib1\nredis.register_function('f1', function(keys, args) return redis.call('INCR', keys[1]) end)";
            assert_eq!(c.cmd(&["FUNCTION", "LOAD", lib]), b"$4\r\nlib1\r\n");
            c.cmd(&["EVAL", "redis.call('SET','k','v') return redis.call('GET','k')", "0"]);
            c.cmd(&["GET", "k"]);
            c.cmd(&["FCALL", "f1", "1", "counter"]);
            let sha = bulk_text(&c.cmd(&["SCRIPT", "LOAD", "return redis.call('PING')"]));
            c.cmd(&["EVALSHA", &sha, "0"]);
            c.cmd(&["MULTI"]);
            c.cmd(&["SET", "a", "1"]);
            c.cmd(&["INCR", "a"]);
            c.cmd(&["EVAL", "return redis.call('GET', 'a')", "0"]);
            c.cmd(&["SELECT", "3"]);
            c.cmd(&["EXEC"]);
            c.cmd(&["SET", "b", "2"]);
            // Credentials are redacted.
            c.cmd(&["AUTH", "not-real"]);
            c.cmd(&["AUTH", "not-real", "not-a-password"]);
            c.cmd(&["HELLO", "2", "AUTH", "not-real", "not-a-password"]);
        });
        assert!(lines.iter().any(|l| l.contains("[0 lua] \"SET\" \"k\" \"v\"")), "{name}: {lines:#?}");
        seen.push((name, lines));
    }
    assert_eq!(seen[1].1, seen[0].1, "MONITOR lines differ: ferrodis (left) vs redis-server (right)");
}

#[test]
fn test_and_tooling_commands_answer_as_redis() {
    let mut replies = Vec::new();
    for (name, s) in both(&["--enable-debug-command", "yes"]) {
        let mut c = s.client();
        let mut r: Vec<Vec<u8>> = Vec::new();
        for cmd in [
            &["DEBUG", "ERROR", "ERR simulated failure"][..],
            &["DEBUG", "ERROR", "MYCODE custom"],
            &["COMMAND", "GETKEYS", "EVAL", "return 1", "0"],
            &["COMMAND", "GETKEYS", "EVAL", "return 1", "2", "a", "b", "c"],
            &["COMMAND", "GETKEYS", "PING", "x"],
            &["COMMAND", "GETKEYS", "NOSUCH", "x"],
            &["COMMAND", "GETKEYSANDFLAGS", "SET", "a", "b"],
            &["COMMAND", "GETKEYSANDFLAGS", "GET", "a"],
            &["COMMAND", "GETKEYSANDFLAGS", "EVAL", "return 1", "1", "k"],
            &["COMMAND", "GETKEYSANDFLAGS", "ZUNIONSTORE", "d", "2", "a", "b"],
            &["COMMAND", "GETKEYSANDFLAGS", "SORT", "a", "STORE", "d"],
            &["MEMORY", "PURGE"],
            &["MEMORY", "PURGE", "x"],
            &["SCRIPT", "DEBUG", "NO"],
            &["SCRIPT", "DEBUG", "MAYBE"],
            &["LOLWUT"],
            &["LOLWUT", "VERSION", "x"],
            &["CLIENT", "KILL", "USER", "nosuchuser"],
        ] {
            r.push(c.cmd(cmd));
        }
        let stats = c.cmd(&["MEMORY", "MALLOC-STATS"]);
        assert!(
            bulk_text(&stats).starts_with("___ Begin jemalloc statistics ___"),
            "{name}: {}",
            String::from_utf8_lossy(&stats[..stats.len().min(200)])
        );
        replies.push(r);
    }
    for (i, (a, b)) in replies[0].iter().zip(&replies[1]).enumerate() {
        assert_eq!(String::from_utf8_lossy(b), String::from_utf8_lossy(a), "reply {i}: ferrodis (left) vs redis-server (right)");
    }
}

/// ferrodis has no Lua debugger: SCRIPT DEBUG YES/SYNC say so instead of answering OK.
#[test]
fn script_debug_yes_is_refused_clearly() {
    let s = Server::ferrodis(&[]);
    let mut c = s.client();
    for mode in ["YES", "SYNC"] {
        let r = String::from_utf8_lossy(&c.cmd(&["SCRIPT", "DEBUG", mode])).into_owned();
        assert!(r.starts_with("-ERR SCRIPT DEBUG is not supported"), "{r}");
    }
    assert_eq!(c.cmd(&["EVAL", "return 1", "0"]), b":1\r\n");
}

/// RESET hands the connection back as new: the default user, not the one that authenticated.
#[test]
fn reset_returns_the_connection_to_the_default_user() {
    for (name, s) in both(&[]) {
        let mut c = s.client();
        assert_eq!(c.cmd(&["ACL", "SETUSER", "user1", "on", ">secret", "~*", "+@all"]), b"+OK\r\n");
        assert_eq!(c.cmd(&["ACL", "SETUSER", "default", "on", ">defpass"]), b"+OK\r\n");
        let mut pooled = s.client();
        assert_eq!(pooled.cmd(&["AUTH", "user1", "secret"]), b"+OK\r\n", "{name}");
        assert_eq!(pooled.cmd(&["ACL", "WHOAMI"]), b"$5\r\nuser1\r\n", "{name}");
        assert_eq!(pooled.cmd(&["RESET"]), b"+RESET\r\n", "{name}");
        // The default user now needs a password: the reset connection is not authenticated.
        let r = String::from_utf8_lossy(&pooled.cmd(&["GET", "k"])).into_owned();
        assert!(r.starts_with("-NOAUTH"), "{name}: {r}");
        assert_eq!(pooled.cmd(&["AUTH", "defpass"]), b"+OK\r\n", "{name}");
        assert_eq!(pooled.cmd(&["ACL", "WHOAMI"]), b"$7\r\ndefault\r\n", "{name}");
        let list = bulk_text(&pooled.cmd(&["CLIENT", "INFO"]));
        assert_eq!(client_field(&list, "user"), "default", "{name}");
    }
}

/// A pattern with many stars against a long key that almost matches answers at once (Redis
/// bounds the matching; a naive matcher takes exponential time and freezes its thread).
#[test]
fn keys_with_nested_stars_answers() {
    for (name, s) in both(&[]) {
        let mut c = s.client();
        let key = "a".repeat(70);
        assert_eq!(c.cmd(&["SET", &key, "1"]), b"+OK\r\n");
        let pattern = format!("{}b", "a*".repeat(31));
        assert_eq!(c.cmd(&["KEYS", &pattern]), b"*0\r\n", "{name}");
        assert_eq!(c.cmd(&["SCAN", "0", "MATCH", &pattern]), b"*2\r\n$1\r\n0\r\n*0\r\n", "{name}");
    }
}

/// CLIENT REPLY ON right after SKIP is answered (it ends the skipping), as Redis does.
#[test]
fn client_reply_on_after_skip_answers() {
    for (name, s) in both(&[]) {
        let mut c = s.client();
        c.send(&encode(&[b"CLIENT", b"REPLY", b"SKIP"]));
        assert_eq!(c.cmd(&["CLIENT", "REPLY", "ON"]), b"+OK\r\n", "{name}");
        assert_eq!(c.cmd(&["PING"]), b"+PONG\r\n", "{name}");
    }
}
