//! Configuration from the command line and files, as redis-server takes it.

use crate::harness::{free_port, require_redis, Server, FERRODIS};
use std::process::Command;
use std::time::Duration;

fn stderr_of(bin: &str, args: &[&str]) -> (i32, String) {
    let o = Command::new(bin).args(args).output().expect("run");
    (o.status.code().unwrap_or(-1), String::from_utf8_lossy(&o.stderr).into_owned() + &String::from_utf8_lossy(&o.stdout))
}

#[test]
fn bad_config_fails_like_redis() {
    require_redis();
    let dir = std::env::temp_dir().join(format!("ferrodis-badconf-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("bad.conf");
    std::fs::write(&conf, "port 7000\nport abc\n").unwrap();
    let c = conf.to_str().unwrap();
    let cases: Vec<Vec<&str>> = vec![
        vec!["--port", "0", "--foo", "bar"],
        vec![c],
        vec!["--port", "0", "--maxmemory-policy", "foo"],
        vec!["--port", "0", "--appendonly", "maybe"],
        vec!["--port", "0", "--hz"],
        vec!["--port", "0", "--save", "100"],
    ];
    for args in cases {
        let (rc_r, out_r) = stderr_of("redis-server", &args);
        let (rc_f, out_f) = stderr_of(FERRODIS, &args);
        assert_eq!(rc_f, 1, "exit code for {:?}", args);
        assert_eq!(rc_r, rc_f, "exit code for {:?}", args);
        let tail = |s: &str| s.lines().filter(|l| !l.is_empty()).skip(1).collect::<Vec<_>>().join("\n");
        assert!(out_f.contains("*** FATAL CONFIG FILE ERROR"), "{}", out_f);
        assert_eq!(tail(&out_r), tail(&out_f), "error text for {:?}", args);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn config_file_then_command_line_overrides() {
    let dir = std::env::temp_dir().join(format!("ferrodis-conf-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("ok.conf");
    let port = free_port();
    std::fs::write(
        &conf,
        format!(
            "# comment\nport {}\nbind 127.0.0.1\nmaxmemory 10mb\nhz 15\nslave-read-only no\nlist-max-ziplist-size -2\nsave \"\"\n",
            free_port()
        ),
    )
    .unwrap();
    let mut child = Command::new(FERRODIS)
        .arg(&conf)
        .args(["--port", &port.to_string(), "--hz", "20", "--enable-debug-command", "yes"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut srv = Server { child: Command::new("true").spawn().unwrap(), port, dir: dir.clone() };
    std::mem::swap(&mut srv.child, &mut child);
    let _ = child.wait();
    assert!(crate::harness::wait_until(Duration::from_secs(10), || crate::harness::Client::try_connect(port).is_ok()));
    let mut c = srv.client();
    assert_eq!(c.text(&["CONFIG", "GET", "hz"]), "*2\r\n$2\r\nhz\r\n$2\r\n20\r\n");
    assert_eq!(c.text(&["CONFIG", "GET", "maxmemory"]), "*2\r\n$9\r\nmaxmemory\r\n$8\r\n10485760\r\n");
    assert_eq!(c.text(&["CONFIG", "GET", "replica-read-only"]), "*2\r\n$17\r\nreplica-read-only\r\n$2\r\nno\r\n");
    // CONFIG SET several pairs at once, then REWRITE keeps the file loadable.
    assert_eq!(c.text(&["CONFIG", "SET", "hz", "25", "maxmemory", "20mb"]), "+OK\r\n");
    assert_eq!(c.text(&["CONFIG", "REWRITE"]), "+OK\r\n");
    let text = std::fs::read_to_string(&conf).unwrap();
    assert!(text.contains("hz 25"), "{}", text);
    assert!(text.contains("maxmemory 20971520"), "{}", text);
    assert!(text.contains("# comment"), "{}", text);
}

#[test]
fn shutdown_and_signals_exit_cleanly() {
    let mut s = Server::ferrodis(&[]);
    let mut c = s.client();
    assert_eq!(c.text(&["SHUTDOWN", "ABORT"]), "-ERR No shutdown in progress.\r\n");
    c.send(&crate::harness::encode(&[b"SHUTDOWN", b"NOSAVE"]));
    assert!(c.closed(), "SHUTDOWN closes the connection without a reply");
    let st = s.wait_exit(Duration::from_secs(10)).expect("exits after SHUTDOWN");
    assert!(st.success());
    assert!(s.log().contains("ready to exit, bye bye"), "{}", s.log());

    let mut s = Server::ferrodis(&[]);
    unsafe { libc_kill(s.child.id() as i32, 15) };
    let st = s.wait_exit(Duration::from_secs(10)).expect("exits after SIGTERM");
    assert!(st.success());
    assert!(s.log().contains("Received SIGTERM scheduling shutdown"), "{}", s.log());
}

extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

#[test]
fn port_in_use_fails() {
    let s = Server::ferrodis(&[]);
    let o = Command::new(FERRODIS).args(["--port", &s.port.to_string(), "--bind", "127.0.0.1"]).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stdout).contains("Could not create server TCP listening socket"));
}

#[test]
fn always_show_logo_prints_the_banner_with_the_pid_as_redis() {
    // Redis's test suite and tools find the server's PID in the logo's " PID: <pid>" line.
    let f = Server::ferrodis(&["--always-show-logo", "yes"]);
    let pid = f.child.id();
    let log = f.log();
    assert!(log.contains(&format!(" PID: {pid}\n")), "{log}");
    assert!(log.contains("Running in standalone mode"), "{log}");
    assert!(!log.contains("Running mode="), "{log}");
    // Without it (and not on a terminal): Redis's one-line notice instead.
    let g = Server::ferrodis(&[]);
    let log = g.log();
    assert!(log.contains(&format!("Running mode=standalone, port={}.", g.port)), "{log}");
    assert!(!log.contains(" PID: "), "{log}");
}
