//! TLS: redis-cli `--tls` against the tls-port (client certificates checked as `tls-auth-clients`
//! says, compared with redis-server 7.0 on the same certificates), CONFIG SET of TLS directives,
//! a replication chain over TLS through redis-server, a TLS cluster created by redis-cli that
//! routes and fails over, and start-up refusals. Certificates are made at test time (rcgen), in
//! the test's directory: no key is committed.

use crate::harness::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const LONG: Duration = Duration::from_secs(60);

/// A CA, a certificate signed by it (used by servers and clients, as Redis's generic test
/// certificate: no host name in it), and a certificate from another CA.
struct Certs {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    stranger_cert: PathBuf,
    stranger_key: PathBuf,
}

fn make_certs(dir: &Path) -> Certs {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
    let ca = |cn: &str| {
        let key = KeyPair::generate().expect("CA key");
        let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(DnType::OrganizationName, "Redis Test");
        p.distinguished_name.push(DnType::CommonName, cn);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let cert = p.self_signed(&key).expect("self-signed CA");
        (cert, Issuer::new(p, key))
    };
    let leaf = |issuer: &Issuer<'_, KeyPair>, cn: &str| {
        let key = KeyPair::generate().expect("key");
        let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
        p.distinguished_name.push(DnType::OrganizationName, "Redis Test");
        p.distinguished_name.push(DnType::CommonName, cn);
        let cert = p.signed_by(&key, issuer).expect("signed certificate");
        (cert.pem(), key.serialize_pem())
    };
    let (ca_cert, ca_issuer) = ca("Certificate Authority");
    let (_, other_issuer) = ca("Another Authority");
    let (cert, key) = leaf(&ca_issuer, "Generic-cert");
    let (scert, skey) = leaf(&other_issuer, "Stranger-cert");
    let w = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).expect("write a certificate file");
        p
    };
    Certs {
        ca: w("ca.crt", &ca_cert.pem()),
        cert: w("redis.crt", &cert),
        key: w("redis.key", &key),
        stranger_cert: w("stranger.crt", &scert),
        stranger_key: w("stranger.key", &skey),
    }
}

impl Certs {
    /// The server's TLS directives.
    fn server_args(&self, tls_port: u16) -> Vec<String> {
        let mut a = vec!["--tls-port".to_string(), tls_port.to_string()];
        for (k, v) in [("--tls-cert-file", &self.cert), ("--tls-key-file", &self.key), ("--tls-ca-cert-file", &self.ca)] {
            a.push(k.into());
            a.push(v.display().to_string());
        }
        a
    }
    /// redis-cli's TLS flags: with our certificate, another CA's, or none.
    fn cli_args(&self, client_cert: Option<bool>) -> Vec<String> {
        let mut a = vec!["--tls".to_string(), "--cacert".into(), self.ca.display().to_string()];
        let pair = match client_cert {
            Some(true) => Some((&self.cert, &self.key)),
            Some(false) => Some((&self.stranger_cert, &self.stranger_key)),
            None => None,
        };
        if let Some((c, k)) = pair {
            a.extend(["--cert".to_string(), c.display().to_string(), "--key".into(), k.display().to_string()]);
        }
        a
    }
}

/// redis-cli with arguments; stdout, or the first line of stderr when stdout is empty.
fn cli(args: &[String]) -> String {
    let o = Command::new("timeout").arg("20").arg("redis-cli").args(args).output().expect("redis-cli (apt-get install redis-tools)");
    let out = String::from_utf8_lossy(&o.stdout).trim().to_string();
    match out.is_empty() {
        true => format!("(stderr) {}", String::from_utf8_lossy(&o.stderr).lines().next().unwrap_or_default()),
        false => out,
    }
}

fn tls_cli(port: u16, certs: &Certs, client_cert: Option<bool>, cmd: &[&str]) -> String {
    let mut a = vec!["-p".to_string(), port.to_string()];
    a.extend(certs.cli_args(client_cert));
    a.extend(cmd.iter().map(|s| s.to_string()));
    cli(&a)
}

/// Starts `bin` with a TLS port beside its plain one (retrying on other ports if one was taken
/// meanwhile); returns the server and its TLS port.
fn start_tls(bin: &str, certs: &Certs, extra: &[&str]) -> (Server, u16) {
    start_tls_on(bin, certs, extra, free_port)
}

/// `start_tls` with TLS ports from `pick`.
fn start_tls_on(bin: &str, certs: &Certs, extra: &[&str], pick: fn() -> u16) -> (Server, u16) {
    for _ in 0..5 {
        let tls_port = pick();
        let mut args = certs.server_args(tls_port);
        args.extend(extra.iter().map(|s| s.to_string()));
        let a: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
        let mut s = launch(bin, &a, tempdir("tls"));
        let up = wait_until(Duration::from_secs(20), || {
            matches!(s.child.try_wait(), Ok(None))
                && q::<Vec<String>>(s.port, &["CONFIG", "GET", "dir"])
                    .is_ok_and(|v| v.get(1).is_some_and(|d| Path::new(d) == s.dir.as_path()))
        });
        if up && tls_cli(tls_port, certs, Some(true), &["PING"]) == "PONG" {
            return (s, tls_port);
        }
    }
    panic!("could not start {} with TLS", bin);
}

/// What redis-cli sees on the tls-port in each case; the same list from both servers.
fn tls_outcomes(bin: &str, certs: &Certs) -> Vec<String> {
    let (s, tp) = start_tls(bin, certs, &[]);
    let ok = |r: &str| if r == "PONG" || r == "OK" { r.to_string() } else { "refused".to_string() };
    let mut out = vec![
        tls_cli(tp, certs, Some(true), &["SET", "k", "v"]),
        tls_cli(tp, certs, Some(true), &["GET", "k"]),
        // The plain port serves the same data.
        redis_cli(s.port, &["GET", "k"]).trim().to_string(),
        // tls-auth-clients yes: no certificate, or one from another CA, is refused.
        ok(&tls_cli(tp, certs, None, &["PING"])),
        ok(&tls_cli(tp, certs, Some(false), &["PING"])),
        // A plaintext client on the TLS port gets no reply.
        ok(redis_cli(tp, &["PING"]).trim()),
    ];
    // optional: a client without a certificate is let in; one with a bad certificate is not.
    out.push(redis_cli(s.port, &["CONFIG", "SET", "tls-auth-clients", "optional"]).trim().to_string());
    out.push(ok(&tls_cli(tp, certs, None, &["PING"])));
    out.push(ok(&tls_cli(tp, certs, Some(false), &["PING"])));
    out.push(redis_cli(s.port, &["CONFIG", "SET", "tls-auth-clients", "no"]).trim().to_string());
    out.push(ok(&tls_cli(tp, certs, None, &["PING"])));
    // A certificate file that does not exist: refused, the old context and value stay.
    let missing = s.dir.join("missing.crt").display().to_string();
    out.push(redis_cli(s.port, &["CONFIG", "SET", "tls-cert-file", &missing]).trim().to_string());
    out.push(
        redis_cli(s.port, &["CONFIG", "GET", "tls-cert-file"])
            .lines()
            .nth(1)
            .unwrap_or_default()
            .replace(&certs.cert.display().to_string(), "CERT"),
    );
    out.push(ok(&tls_cli(tp, certs, Some(true), &["PING"])));
    // Protocols: TLS 1.2 only still serves redis-cli.
    out.push(redis_cli(s.port, &["CONFIG", "SET", "tls-protocols", "TLSv1.2"]).trim().to_string());
    out.push(ok(&tls_cli(tp, certs, Some(true), &["PING"])));
    out
}

/// redis-cli --tls reaches the tls-port; client certificates are checked as tls-auth-clients
/// says; CONFIG SET rebuilds the TLS context or refuses and keeps the old one: the same outcomes
/// as redis-server 7.0 on the same certificates.
#[test]
fn redis_cli_connects_over_tls_and_client_certificates_are_checked_as_redis_does() {
    require_redis();
    let dir = tempdir("tls-certs");
    let certs = make_certs(&dir);
    let ours = tls_outcomes(FERRODIS, &certs);
    assert_eq!(ours[0], "OK");
    assert_eq!(ours[1], "v");
    assert_eq!(ours[3], "refused", "{:?}", ours);
    let theirs = tls_outcomes("redis-server", &certs);
    assert_eq!(ours, theirs);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A chain over TLS: a ferrodis master, a redis-server replica of it, a ferrodis replica of
/// that one; writes on the master reach the end of the chain.
#[test]
fn replication_runs_over_tls_both_ways_with_redis_server() {
    require_redis();
    let dir = tempdir("tls-certs");
    let certs = make_certs(&dir);
    let common = ["--tls-replication", "yes", "--repl-diskless-sync-delay", "0"];
    let (master, mtp) = start_tls(FERRODIS, &certs, &common);
    let mut a = common.to_vec();
    let mref = mtp.to_string();
    a.extend(["--replicaof", "127.0.0.1", &mref]);
    let (middle, ttp) = start_tls("redis-server", &certs, &a);
    let mut b = common.to_vec();
    let tref = ttp.to_string();
    b.extend(["--replicaof", "127.0.0.1", &tref]);
    let (end, _) = start_tls(FERRODIS, &certs, &b);
    let mut c = conn(master.port).expect("master");
    for i in 0..500 {
        let _: () = redis::cmd("SET").arg(format!("key:{i}")).arg(i).query(&mut c).expect("SET");
    }
    let _: () = redis::cmd("RPUSH").arg("list").arg(&["a", "b", "c"]).query(&mut c).expect("RPUSH");
    let synced = wait_until(LONG, || {
        [middle.port, end.port]
            .iter()
            .all(|&p| field(p, "replication", "master_link_status") == "up" && q::<i64>(p, &["DBSIZE"]).unwrap_or(0) == 501)
    });
    assert!(synced, "chain not in sync\n{}\n{}\n{}", master.log(), middle.log(), end.log());
    let digest = |p: u16| q::<String>(p, &["DEBUG", "DIGEST"]).expect("DEBUG DIGEST");
    assert!(wait_until(LONG, || digest(end.port) == digest(master.port) && digest(middle.port) == digest(master.port)));
    // The master knows its replica by the TLS port it announced.
    let slave0 = field(master.port, "replication", "slave0");
    assert!(slave0.contains(&format!("port={}", ttp)), "{}", slave0);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A free TLS port whose bus port (+10000) is free too.
fn cluster_tls_port() -> u16 {
    loop {
        let p = free_port();
        if p < 45000 && std::net::TcpListener::bind(("127.0.0.1", p + 10000)).is_ok() {
            return p;
        }
    }
}

/// Six ferrodis nodes with tls-cluster, created by redis-cli over TLS: the bus and replication
/// run over TLS, TLS clients are redirected to TLS ports and plaintext clients to plaintext
/// ports, and a killed master is replaced by its replica.
#[test]
fn a_tls_cluster_forms_routes_and_fails_over() {
    let dir = tempdir("tls-certs");
    let certs = make_certs(&dir);
    let args = ["--cluster-enabled", "yes", "--cluster-node-timeout", "1000", "--tls-cluster", "yes", "--tls-replication", "yes"];
    let mut args = args.to_vec();
    args.extend(["--repl-diskless-sync-delay", "0"]);
    let mut nodes: Vec<(Server, u16)> = (0..6).map(|_| start_tls_on(FERRODIS, &certs, &args, cluster_tls_port)).collect();
    let logs = |nodes: &[(Server, u16)]| nodes.iter().map(|(s, _)| format!("--- {} ---\n{}", s.port, s.log())).collect::<String>();
    let mut args: Vec<String> = vec!["--cluster".into(), "create".into()];
    args.extend(nodes.iter().map(|(_, tp)| format!("127.0.0.1:{tp}")));
    args.extend(["--cluster-replicas".to_string(), "1".into(), "--cluster-yes".into()]);
    args.extend(certs.cli_args(Some(true)));
    let out = cli(&args);
    assert!(out.contains("[OK] All 16384 slots covered."), "create failed:\n{out}\n{}", logs(&nodes));
    let healthy = |nodes: &[(Server, u16)]| {
        wait_until(LONG, || {
            nodes.iter().all(|(s, _)| {
                let info: String = q(s.port, &["CLUSTER", "INFO"]).unwrap_or_default();
                let role = field(s.port, "replication", "role");
                info.contains("cluster_state:ok") && (role == "master" || field(s.port, "replication", "master_link_status") == "up")
            })
        })
    };
    assert!(healthy(&nodes), "cluster not healthy\n{}", logs(&nodes));

    // Writes through redis-cli -c over TLS, reads back through the plaintext ports.
    for i in 0..20 {
        let k = format!("key:{i}");
        let r = tls_cli(nodes[0].1, &certs, Some(true), &["-c", "SET", &k, &i.to_string()]);
        assert_eq!(r, "OK", "{}", logs(&nodes));
    }
    for i in 0..20 {
        assert_eq!(redis_cli(nodes[0].0.port, &["-c", "GET", &format!("key:{i}")]).trim(), i.to_string());
    }
    // Redirects and CLUSTER NODES name TLS ports to a TLS client, plaintext ones to the others.
    let tls_ports: Vec<u16> = nodes.iter().map(|(_, tp)| *tp).collect();
    let plain_ports: Vec<u16> = nodes.iter().map(|(s, _)| s.port).collect();
    let slot_of = |k: &str| q::<i64>(nodes[0].0.port, &["CLUSTER", "KEYSLOT", k]).expect("KEYSLOT");
    let foreign = (0..100).map(|i| format!("probe:{i}")).find(|k| {
        let moved = redis_cli(nodes[0].0.port, &["GET", k]);
        moved.contains("MOVED")
    });
    let k = foreign.expect("a key of another node's slot");
    let plain_moved = redis_cli(nodes[0].0.port, &["GET", &k]);
    let tls_moved = tls_cli(nodes[0].1, &certs, Some(true), &["GET", &k]);
    let port_in = |t: &str| t.rsplit(':').next().and_then(|p| p.trim().parse::<u16>().ok()).unwrap_or(0);
    assert!(plain_moved.contains(&format!("MOVED {}", slot_of(&k))) && plain_ports.contains(&port_in(&plain_moved)), "{plain_moved}");
    assert!(tls_ports.contains(&port_in(&tls_moved)), "{tls_moved}");
    let tls_nodes = tls_cli(nodes[0].1, &certs, Some(true), &["CLUSTER", "NODES"]);
    assert!(tls_ports.iter().all(|p| tls_nodes.contains(&format!(":{p}@{}", p + 10000))), "{tls_nodes}");
    let plain_nodes = redis_cli(nodes[0].0.port, &["CLUSTER", "NODES"]);
    assert!(plain_ports.iter().zip(&tls_ports).all(|(p, t)| plain_nodes.contains(&format!(":{p}@{}", t + 10000))), "{plain_nodes}");

    // kill -9 of the master of key:0: its replica takes over over the TLS bus.
    let slot = slot_of("key:0");
    let owner_tls = port_in(
        &tls_cli(nodes[0].1, &certs, Some(true), &["CLUSTER", "NODES"])
            .lines()
            .find(|l| {
                l.split_whitespace().skip(8).any(|r| {
                    r.split_once('-').map_or(r.parse::<i64>().ok() == Some(slot), |(a, b)| {
                        a.parse::<i64>().unwrap_or(-1) <= slot && slot <= b.parse::<i64>().unwrap_or(-1)
                    })
                })
            })
            .map(|l| l.split_whitespace().nth(1).unwrap_or_default().split('@').next().unwrap_or_default().to_string())
            .unwrap_or_default(),
    );
    let victim = nodes.iter().position(|(_, tp)| *tp == owner_tls).expect("the owner is a node of ours");
    let (mut dead, _) = nodes.remove(victim);
    let _ = dead.child.kill();
    let _ = dead.child.wait();
    let served = wait_until(LONG, || {
        tls_cli(nodes[0].1, &certs, Some(true), &["-c", "GET", "key:0"]) == "0"
            && q::<String>(nodes[0].0.port, &["CLUSTER", "INFO"]).is_ok_and(|i| i.contains("cluster_state:ok"))
    });
    assert!(served, "no failover\n{}", logs(&nodes));
    drop(dead);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A tls-port without certificates, or a bad tls-protocols, stops the start with Redis's error
/// and a non-zero exit, as redis-server does.
#[test]
fn bad_tls_configuration_stops_the_start() {
    require_redis();
    for bin in [FERRODIS, "redis-server"] {
        for extra in [Vec::<&str>::new(), vec!["--tls-protocols", "SSLv2"]] {
            let dir = tempdir("tls-bad");
            let certs = make_certs(&dir);
            let mut args = vec!["--tls-port".to_string(), free_port().to_string()];
            if !extra.is_empty() {
                args = certs.server_args(free_port());
            }
            args.extend(extra.iter().map(|s| s.to_string()));
            let a: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
            let mut s = launch(bin, &a, dir);
            let status = s.wait_exit(Duration::from_secs(20));
            assert!(status.is_some_and(|st| !st.success()), "{bin} {:?} should not start:\n{}", extra, s.log());
            assert!(s.log().contains("Failed to configure TLS. Check logs for more info."), "{bin}:\n{}", s.log());
        }
    }
}

/// A sentinel (ferrodis, then Redis Sentinel 7.0) with tls-replication watches a TLS master and
/// replica, both ferrodis, and fails the master over after a kill -9.
#[test]
fn sentinel_fails_over_tls_servers() {
    require_redis();
    let dir = tempdir("tls-certs");
    let certs = make_certs(&dir);
    for bin in [FERRODIS, "redis-sentinel"] {
        let common = ["--tls-replication", "yes", "--repl-diskless-sync-delay", "0"];
        let (mut master, mtp) = start_tls(FERRODIS, &certs, &common);
        let mut a = common.to_vec();
        let mref = mtp.to_string();
        a.extend(["--replicaof", "127.0.0.1", &mref]);
        let (replica, rtp) = start_tls(FERRODIS, &certs, &a);
        assert!(wait_until(LONG, || field(replica.port, "replication", "master_link_status") == "up"), "{}", replica.log());
        let (sport, stp) = (free_port(), free_port());
        let sdir = tempdir("tls-sentinel");
        let conf = sdir.join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "port {sport}\nbind 127.0.0.1\ndir {}\ntls-port {stp}\ntls-cert-file {}\ntls-key-file {}\ntls-ca-cert-file {}\n\
                 tls-replication yes\nsentinel monitor m 127.0.0.1 {mtp} 1\nsentinel down-after-milliseconds m 1000\n\
                 sentinel failover-timeout m 5000\n",
                sdir.display(),
                certs.cert.display(),
                certs.key.display(),
                certs.ca.display()
            ),
        )
        .expect("write sentinel.conf");
        let child = Command::new(bin)
            .arg(&conf)
            .arg("--sentinel")
            .current_dir(&sdir)
            .stdout(std::fs::File::create(sdir.join("log")).expect("log"))
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start a sentinel");
        let sentinel = Server { child, port: sport, dir: sdir };
        sentinel.wait_ready();
        // It sees the replica through the master's INFO, over TLS.
        let sees_replica = wait_until(LONG, || {
            q::<Vec<redis::Value>>(sport, &["SENTINEL", "REPLICAS", "m"]).is_ok_and(|r| !r.is_empty())
                && q::<Vec<String>>(sport, &["SENTINEL", "MASTER", "m"]).is_ok_and(|m| !m.join(" ").contains("disconnected"))
        });
        assert!(sees_replica, "{bin}: no replica seen\n{}", sentinel.log());
        let _ = master.child.kill();
        let _ = master.child.wait();
        let promoted = wait_until(LONG, || {
            q::<Vec<String>>(sport, &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", "m"]).is_ok_and(|a| a.get(1) == Some(&rtp.to_string()))
                && field(replica.port, "replication", "role") == "master"
        });
        assert!(promoted, "{bin}: no failover\n{}\n{}", sentinel.log(), replica.log());
        assert_eq!(tls_cli(rtp, &certs, Some(true), &["SET", "after", "failover"]), "OK");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
