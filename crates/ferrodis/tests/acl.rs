//! ACL users compared side by side with redis-server 7.0.15: the same ACL SETUSER rules on both,
//! then the same commands as those users (permitted, NOPERM for a command, a key or a channel,
//! WRONGPASS), ACL LIST/WHOAMI/CAT/DRYRUN/DELUSER, `requirepass` as the default user's password.

use crate::harness::{Client, Server};

fn both() -> (Server, Server) {
    (Server::ferrodis(&[]), Server::redis(&[]))
}

/// Runs the same commands on both servers, comparing each reply byte for byte.
fn same(a: &mut Client, b: &mut Client, cases: &[&[&str]]) {
    for case in cases {
        assert_eq!(a.text(case), b.text(case), "{:?}", case);
    }
}

#[test]
fn acl_users_answer_as_redis() {
    let (ours, theirs) = both();
    let (mut a, mut b) = (Client::connect(ours.port), Client::connect(theirs.port));
    same(
        &mut a,
        &mut b,
        &[
            &["ACL", "SETUSER", "alice", "on", ">pw", "+@read", "+set", "~app:*", "&news"],
            &["ACL", "SETUSER", "bob", "on", "nopass", "+@all", "-flushall", "%R~ro:*", "%W~wo:*"],
            &["ACL", "SETUSER", "carol", "off", ">x", "+get"],
            &["ACL", "SETUSER", "bad", "+nosuchcommand"],
            &["ACL", "SETUSER", "bad", "+@nosuchcategory"],
            &["ACL", "SETUSER", "bad", "bogus"],
            &["ACL", "SETUSER", "bad", "<nopassword"],
            &["ACL", "SETUSER", "bad", "#abc"],
            &["ACL", "USERS"],
            &["ACL", "WHOAMI"],
            &["ACL", "CAT"],
            &["ACL", "CAT", "nosuch"],
            &["ACL", "DELUSER", "default"],
            &["ACL", "GETUSER", "nobody"],
            &["ACL", "DRYRUN", "alice", "get", "app:1"],
            &["ACL", "DRYRUN", "alice", "del", "app:1"],
            &["ACL", "DRYRUN", "nobody", "get", "x"],
            &["ACL", "GENPASS", "0"],
            &["ACL", "SAVE"],
            &["AUTH", "alice", "wrong"],
            &["AUTH", "carol", "x"],
            &["AUTH", "alice", "pw"],
            &["ACL", "WHOAMI"],
            &["SET", "app:1", "v"],
            &["GET", "app:1"],
            &["SET", "other", "v"],
            &["GET", "other"],
            &["DEL", "app:1"],
            &["PUBLISH", "news", "m"],
            &["PUBLISH", "sports", "m"],
            &["CONFIG", "GET", "maxmemory"],
            &["AUTH", "bob", "anything"],
            &["GET", "ro:1"],
            &["SET", "ro:1", "v"],
            &["SET", "wo:1", "v"],
            &["GET", "wo:1"],
            &["FLUSHALL"],
        ],
    );
    // ACL LIST: alice's line (the password hash is SHA-256 on both).
    let list = |c: &mut Client| -> String {
        let t = c.text(&["ACL", "LIST"]);
        t.lines().filter(|l| l.starts_with("user alice") || l.starts_with("user default")).collect::<Vec<_>>().join("\n")
    };
    let (mut a, mut b) = (Client::connect(ours.port), Client::connect(theirs.port));
    assert_eq!(list(&mut a), list(&mut b));
    same(&mut a, &mut b, &[&["ACL", "DELUSER", "alice", "nobody"], &["ACL", "USERS"]]);
}

#[test]
fn requirepass_is_the_default_users_password() {
    let ours = Server::ferrodis(&["--requirepass", "s3cret"]);
    let theirs = Server::redis(&["--requirepass", "s3cret"]);
    let (mut a, mut b) = (Client::connect(ours.port), Client::connect(theirs.port));
    same(
        &mut a,
        &mut b,
        &[
            &["GET", "x"],
            &["AUTH", "wrong"],
            &["AUTH", "default", "s3cret"],
            &["ACL", "WHOAMI"],
            &["CONFIG", "SET", "requirepass", ""],
            &["ACL", "SETUSER", "default", "resetpass", ">new"],
        ],
    );
    let (mut a, mut b) = (Client::connect(ours.port), Client::connect(theirs.port));
    same(&mut a, &mut b, &[&["GET", "x"], &["AUTH", "new"], &["GET", "x"]]);
}

/// ferrodis started as `ferrodis <conf> --port P --dir D ...` (the file must come first).
fn with_conf_unready(conf: &std::path::Path, args: &[&str]) -> Server {
    let port = crate::harness::free_port();
    let dir = crate::harness::tempdir("acl-conf");
    let child = std::process::Command::new(crate::harness::FERRODIS)
        .arg(conf)
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--dir"])
        .arg(&dir)
        .args(args)
        .stdout(std::fs::File::create(dir.join("log")).unwrap())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    Server { child, port, dir }
}

fn with_conf(conf: &std::path::Path, args: &[&str]) -> Server {
    let s = with_conf_unready(conf, args);
    s.wait_ready();
    s
}

/// Users from `user` lines in redis.conf and from an ACL file; ACL SAVE writes the file and ACL
/// LOAD reads it back (refusing a wrong file as a whole); both kinds of declaration at once stop
/// the start, as Redis.
#[test]
fn users_come_from_redis_conf_and_the_acl_file() {
    let dir = crate::harness::tempdir("acl");
    let conf = dir.join("redis.conf");
    std::fs::write(&conf, "user default on nopass ~* &* +@all\nuser app on >apppw ~app:* +@all -flushall\n").unwrap();
    let s = with_conf(&conf, &[]);
    let mut c = Client::connect(s.port);
    assert_eq!(c.text(&["AUTH", "app", "apppw"]), "+OK\r\n");
    assert_eq!(c.text(&["FLUSHALL"]), "-NOPERM this user has no permissions to run the 'flushall' command\r\n");
    assert_eq!(
        c.text(&["ACL", "SAVE"]).chars().take(60).collect::<String>(),
        "-ERR This Redis instance is not configured to use an ACL fil"
    );
    drop(s);

    let file = dir.join("users.acl");
    std::fs::write(&file, "# users\nuser default on nopass ~* &* +@all\n\nuser ops on >opspw ~* &* +@admin +ping\n").unwrap();
    let s = Server::ferrodis(&["--aclfile", file.to_str().unwrap()]);
    let mut c = Client::connect(s.port);
    assert_eq!(c.text(&["AUTH", "ops", "opspw"]), "+OK\r\n");
    assert_eq!(c.text(&["GET", "x"]), "-NOPERM this user has no permissions to run the 'get' command\r\n");
    let mut admin = Client::connect(s.port);
    assert_eq!(admin.text(&["ACL", "SETUSER", "new", "on", ">n", "+get"]), "+OK\r\n");
    assert_eq!(admin.text(&["ACL", "SAVE"]), "+OK\r\n");
    let saved = std::fs::read_to_string(&file).unwrap();
    assert!(saved.contains("user new on #") && saved.contains("user ops on #"), "{saved}");
    // A wrong file is refused whole; a good one replaces the users (and drops `new`).
    std::fs::write(&file, "user default on nopass ~* &* +@all\nuser ops on +nosuchcommand\n").unwrap();
    assert!(admin.text(&["ACL", "LOAD"]).starts_with("-ERR "));
    assert!(admin.text(&["ACL", "USERS"]).contains("new"));
    std::fs::write(&file, "user default on nopass ~* &* +@all\nuser ops on >opspw ~* &* +@all\n").unwrap();
    assert_eq!(admin.text(&["ACL", "LOAD"]), "+OK\r\n");
    assert!(!admin.text(&["ACL", "USERS"]).contains("new"));
    drop(s);

    // Both at once: the start stops, as Redis's.
    let mut s = with_conf_unready(&conf, &["--aclfile", file.to_str().unwrap()]);
    let status = s.wait_exit(std::time::Duration::from_secs(20)).expect("the server exits");
    assert!(!status.success());
    assert!(s.log().contains("users defined in redis.conf and at the same setting an ACL file"), "{}", s.log());
}

/// A replica authenticates to its master as an ACL user (`masteruser`, `masterauth`).
#[test]
fn a_replica_syncs_as_an_acl_user() {
    let master = Server::ferrodis(&[]);
    let mut c = Client::connect(master.port);
    assert_eq!(c.text(&["ACL", "SETUSER", "repl", "on", ">rpw", "+psync", "+replconf", "+ping"]), "+OK\r\n");
    assert_eq!(c.text(&["ACL", "SETUSER", "default", "off"]), "+OK\r\n");
    let mut c = Client::connect(master.port);
    assert_eq!(c.text(&["PING"]), "-NOAUTH Authentication required.\r\n");
    assert_eq!(c.text(&["AUTH", "repl", "rpw"]), "+OK\r\n");
    assert_eq!(
        c.text(&["ACL", "SETUSER", "w", "on", ">w", "+set", "~*"]),
        "-NOPERM this user has no permissions to run the 'acl|setuser' command\r\n"
    );
    let mp = master.port.to_string();
    let replica = Server::ferrodis(&[
        "--replicaof",
        "127.0.0.1",
        &mp,
        "--masteruser",
        "repl",
        "--masterauth",
        "rpw",
        "--repl-diskless-sync-delay",
        "0",
    ]);
    assert!(crate::harness::wait_until(std::time::Duration::from_secs(30), || crate::harness::field(
        replica.port,
        "replication",
        "master_link_status"
    ) == "up"));
}

/// Commands a script runs are checked against its caller's permissions, with Redis's errors.
#[test]
fn scripts_run_with_their_callers_permissions() {
    let (ours, theirs) = both();
    let (mut a, mut b) = (Client::connect(ours.port), Client::connect(theirs.port));
    same(
        &mut a,
        &mut b,
        &[
            &["ACL", "SETUSER", "u", "on", ">p", "+eval", "+get", "~a*"],
            &["AUTH", "u", "p"],
            &["EVAL", "return redis.call('del','a')", "0"],
            &["EVAL", "return redis.call('get','b')", "0"],
            &["EVAL", "return redis.pcall('get','b')", "0"],
            &["EVAL", "return redis.call('get','a')", "0"],
        ],
    );
}

/// Selectors and the payload flags, compared with redis-server byte for byte: SETUSER with
/// selectors (and the words of a selector split over arguments), GETUSER and LIST showing them,
/// DRYRUN and real commands allowed by a selector or denied with the most relevant reason,
/// clearselectors.
#[test]
fn selectors_answer_as_redis() {
    let (ours, theirs) = both();
    let (mut a, mut b) = (Client::connect(ours.port), Client::connect(theirs.port));
    same(
        &mut a,
        &mut b,
        &[
            // One command or category per selector: Redis 7.0 rebuilds a rule list from the
            // permission bits, its single commands in hash-table order, which varies by process.
            &["ACL", "SETUSER", "sel", "on", ">pw", "+get", "~app:*", "(~cache:* +@string)", "(%R~ro:* +@read &news)"],
            &["ACL", "GETUSER", "sel"],
            &["ACL", "SETUSER", "split", "on", "nopass", "(~a:*", "+get)", "(~b:*", "+set"],
            &["ACL", "SETUSER", "split", "on", "nopass", "(~a:*", "+get)", "(~b:*", "+set)"],
            &["ACL", "GETUSER", "split"],
            &["ACL", "SETUSER", "bad", "(on)"],
            &["ACL", "SETUSER", "bad", "(>pw)"],
            &["ACL", "SETUSER", "bad", "(+nosuch)"],
            &["ACL", "SETUSER", "flags1", "reset"],
            &["ACL", "SETUSER", "flags2", "skip-sanitize-payload", "nopass"],
            &["ACL", "GETUSER", "flags1"],
            &["ACL", "GETUSER", "flags2"],
            &["ACL", "LIST"],
            &["ACL", "DRYRUN", "sel", "get", "app:1"],
            &["ACL", "DRYRUN", "sel", "set", "app:1", "v"],
            &["ACL", "DRYRUN", "sel", "set", "cache:1", "v"],
            &["ACL", "DRYRUN", "sel", "get", "ro:1"],
            &["ACL", "DRYRUN", "sel", "set", "ro:1", "v"],
            &["ACL", "DRYRUN", "sel", "mget", "cache:1", "app:1"],
            &["ACL", "DRYRUN", "sel", "lpush", "cache:1", "v"],
            &["AUTH", "sel", "pw"],
            &["SET", "cache:1", "v"],
            &["GET", "cache:1"],
            &["SET", "app:1", "v"],
            &["GET", "app:1"],
            &["HGETALL", "ro:1"],
            &["DEL", "ro:1"],
            &["MGET", "cache:1", "app:1"],
            &["AUTH", "default", "x"],
            &["ACL", "SETUSER", "sel", "clearselectors"],
            &["ACL", "DRYRUN", "sel", "set", "cache:1", "v"],
            &["ACL", "GETUSER", "sel"],
            // acl-pubsub-default: what new users, `reset` and new selectors get for channels.
            &["CONFIG", "SET", "acl-pubsub-default", "allchannels"],
            &["ACL", "SETUSER", "newbie", "on", "nopass", "+publish", "(+subscribe)"],
            &["ACL", "GETUSER", "newbie"],
            &["ACL", "DRYRUN", "newbie", "publish", "anything", "m"],
            &["ACL", "SETUSER", "sel", "reset"],
            &["CONFIG", "SET", "acl-pubsub-default", "resetchannels"],
            &["ACL", "SETUSER", "later", "on", "nopass", "+publish"],
            &["ACL", "DRYRUN", "later", "publish", "anything", "m"],
            &["ACL", "LIST"],
        ],
    );
}
