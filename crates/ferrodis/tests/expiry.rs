//! Expiry: lazy on access, and the active cycle that reclaims keys nobody touches.

use crate::harness::{wait_until, Server};
use std::time::Duration;

fn info_field(c: &mut crate::harness::Client, section: &str, field: &str) -> Option<i64> {
    let s = c.text(&["INFO", section]);
    s.lines().find_map(|l| l.strip_prefix(&format!("{}:", field)).and_then(|v| v.trim().parse().ok()))
}

#[test]
fn active_expiry_reclaims_untouched_keys() {
    let s = Server::ferrodis(&["--hz", "50"]);
    let mut c = s.client();
    // Loading must not race the cycle: pause it until every key is in.
    assert_eq!(c.text(&["DEBUG", "SET-ACTIVE-EXPIRE", "0"]), "+OK\r\n");
    for i in 0..2000 {
        let k = format!("vol:{}", i);
        assert_eq!(c.text(&["SET", &k, "x", "PX", "200"]), "+OK\r\n");
    }
    for i in 0..100 {
        c.text(&["SET", &format!("keep:{}", i), "y"]);
    }
    assert_eq!(c.text(&["DBSIZE"]), ":2100\r\n");
    assert_eq!(c.text(&["DEBUG", "SET-ACTIVE-EXPIRE", "1"]), "+OK\r\n");
    // DBSIZE reads counters only: it never triggers lazy expiry, so reaching 100 proves the
    // active cycle reclaimed the keys.
    assert!(wait_until(Duration::from_secs(20), || c.text(&["DBSIZE"]) == ":100\r\n"), "dbsize: {}", c.text(&["DBSIZE"]));
    assert!(info_field(&mut c, "stats", "expired_keys").unwrap() >= 2000);
    assert!(c.text(&["INFO", "keyspace"]).contains("db0:keys=100,expires=0"));
}

#[test]
fn lazy_expiry_when_active_expiry_is_off() {
    let s = Server::ferrodis(&[]);
    let mut c = s.client();
    assert_eq!(c.text(&["DEBUG", "SET-ACTIVE-EXPIRE", "0"]), "+OK\r\n");
    c.text(&["SET", "k", "v", "PX", "50"]);
    assert!(wait_until(Duration::from_secs(5), || c.text(&["PTTL", "k"]) == ":-2\r\n"));
    assert_eq!(c.text(&["GET", "k"]), "$-1\r\n");
    assert_eq!(c.text(&["DBSIZE"]), ":0\r\n");
}
