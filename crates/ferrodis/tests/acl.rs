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
