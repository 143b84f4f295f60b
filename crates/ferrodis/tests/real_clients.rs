//! Real clients: the `redis` crate (RESP2 and RESP3) and redis-cli.

use crate::harness::{redis_cli, Server};

#[test]
fn redis_crate_resp2_and_resp3() {
    let s = Server::ferrodis(&[]);
    for url in [s.url(), format!("{}?protocol=resp3", s.url())] {
        let client = redis::Client::open(url.as_str()).unwrap();
        let mut con = client.get_connection().unwrap();
        let _: () = redis::cmd("SET").arg("foo").arg("bar").query(&mut con).unwrap();
        let v: String = redis::cmd("GET").arg("foo").query(&mut con).unwrap();
        assert_eq!(v, "bar");
        let n: i64 = redis::cmd("INCRBY").arg("n").arg(5).query(&mut con).unwrap();
        assert!(n % 5 == 0);
        let missing: Option<String> = redis::cmd("GET").arg("nope").query(&mut con).unwrap();
        assert_eq!(missing, None);
        let vals: Vec<Option<String>> = redis::cmd("MGET").arg("foo").arg("nope").query(&mut con).unwrap();
        assert_eq!(vals, vec![Some("bar".to_string()), None]);
        let err = redis::cmd("INCR").arg("foo").query::<i64>(&mut con).unwrap_err();
        assert!(err.to_string().contains("not an integer"), "{}", err);
        let cfg: std::collections::HashMap<String, String> = redis::cmd("CONFIG").arg("GET").arg("maxmemory").query(&mut con).unwrap();
        assert_eq!(cfg.get("maxmemory").map(String::as_str), Some("0"));
    }
}

#[test]
fn redis_cli_works_unchanged() {
    let s = Server::ferrodis(&[]);
    assert_eq!(redis_cli(s.port, &["SET", "k", "hello"]).trim(), "OK");
    assert_eq!(redis_cli(s.port, &["GET", "k"]).trim(), "hello");
    assert_eq!(redis_cli(s.port, &["-3", "GET", "k"]).trim(), "hello");
    assert!(redis_cli(s.port, &["INFO", "server"]).contains("redis_version:7.0.15"));
    assert!(redis_cli(s.port, &["--scan"]).contains('k'));
    let out = redis_cli(s.port, &["--pipe"]);
    assert!(out.contains("errors: 0"), "{}", out);
}

/// redis-py (installed by scripts/test.sh with pip) through the APIs users touch: pipelines
/// with transactions, WATCH retries, registered scripts, the Lock helper, Pub/Sub, blocking
/// pops, sorted sets, functions and RESP3 (`tests/python/redis_py.py`).
#[test]
fn redis_py_works_unchanged() {
    let s = Server::ferrodis(&[]);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/redis_py.py");
    let out = std::process::Command::new("python3")
        .arg(script)
        .arg(s.port.to_string())
        .output()
        .expect("python3 (and `pip install redis`, which scripts/test.sh does)");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && text.contains("redis-py ok"), "{text}");
}
