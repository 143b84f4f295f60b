//! The `sentinel ...` directives of sentinel.conf: read at start (Redis's error texts), and the
//! rewrite that keeps Sentinel's state on disk (`sentinel myid`, epochs, known replicas and
//! sentinels) after every change, so a restarted sentinel continues where it was.

use super::state::*;

fn fatal(line_no: usize, line: &str, msg: &str) -> String {
    format!(
        "\n*** FATAL CONFIG FILE ERROR (Redis 7.0.15) ***\nReading the configuration file, at line {}\n>>> '{}'\n{}\n",
        line_no, line, msg
    )
}

/// C's `atoi`, as Redis reads the numbers of these lines: leading blanks, a sign, the digits
/// that follow (saturated); 0 when there are none ("12abc" is 12, "abc" is 0).
pub fn atoi(s: &str) -> i64 {
    let t = s.trim_start();
    let (neg, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let mut v: i64 = 0;
    for b in digits.bytes().take_while(u8::is_ascii_digit) {
        v = v.saturating_mul(10).saturating_add((b - b'0') as i64);
    }
    if neg {
        -v
    } else {
        v
    }
}

/// C's `strtoull(s, NULL, 10)` for the epochs: the leading digits, 0 when there are none.
fn strtoull(s: &str) -> u64 {
    let t = s.trim_start();
    let t = t.strip_prefix('+').unwrap_or(t);
    t.bytes().take_while(u8::is_ascii_digit).fold(0u64, |v, b| v.saturating_mul(10).saturating_add((b - b'0') as u64))
}

/// Checks a host for a new instance: an IP address, or with `resolve-hostnames yes` a name that
/// resolves. Err: Redis's text.
pub fn check_host(env: &Env, host: &str) -> Result<(), &'static str> {
    if host.parse::<std::net::IpAddr>().is_ok() {
        return Ok(());
    }
    if env.resolve_hostnames && std::net::ToSocketAddrs::to_socket_addrs(&(host, 1)).map(|mut a| a.next().is_some()).unwrap_or(false) {
        return Ok(());
    }
    Err("Can't resolve instance hostname.")
}

/// The address of an instance named in the file, checked as Redis's createSentinelAddr: the
/// port first, then the host. With `resolve-hostnames yes` a name that does not resolve (yet) is
/// kept, as Redis keeps it, and resolved when the instance is connected to.
fn file_addr(env: &Env, host: &str, port: &str) -> Result<u16, &'static str> {
    let port = u16::try_from(atoi(port)).map_err(|_| "Invalid port number.")?;
    if let Err(e) = check_host(env, host) {
        tracing::warn!("Failed to resolve hostname '{}'", host);
        if !env.resolve_hostnames {
            return Err(e);
        }
    }
    Ok(port)
}

/// Where a `sentinel` line is applied: Redis applies every line of the first kind, then every
/// `sentinel monitor`, then the rest, each kind in file order, so an option may come before the
/// `monitor` line of its master (Redis Sentinel's own rewrite leaves files in that order).
fn phase(verb: &str) -> u8 {
    const PRE_MONITOR: [&str; 9] = [
        "announce-ip",
        "announce-port",
        "deny-scripts-reconfig",
        "sentinel-user",
        "sentinel-pass",
        "current-epoch",
        "myid",
        "resolve-hostnames",
        "announce-hostnames",
    ];
    if verb.eq_ignore_ascii_case("monitor") {
        1
    } else if PRE_MONITOR.iter().any(|n| verb.eq_ignore_ascii_case(n)) {
        0
    } else {
        2
    }
}

fn one(s: &mut Sentinel, a: &[String]) -> Result<(), &'static str> {
    let verb = a[0].to_ascii_lowercase();
    let argc = a.len();
    macro_rules! master {
        () => {
            s.masters.get_mut(&a[1]).ok_or("No such master with specified name.")?
        };
    }
    let yes_no = |v: &str, msg: &'static str| -> Result<bool, &'static str> {
        match v.to_ascii_lowercase().as_str() {
            "yes" => Ok(true),
            "no" => Ok(false),
            _ => Err(msg),
        }
    };
    match (verb.as_str(), argc) {
        ("monitor", 5) => {
            let quorum = atoi(&a[4]);
            if quorum <= 0 {
                return Err("Quorum must be 1 or greater.");
            }
            let port = file_addr(&s.env, &a[2], &a[3])?;
            if s.masters.contains_key(&a[1]) {
                return Err("Duplicate master name.");
            }
            s.masters.insert(a[1].clone(), Master::new(a[1].clone(), a[2].clone(), port, quorum.min(u32::MAX as i64) as u32));
        }
        ("down-after-milliseconds", 3) => {
            let m = master!();
            let v = atoi(&a[2]);
            if v <= 0 {
                return Err("negative or zero time parameter.");
            }
            m.set_down_after(v);
        }
        ("failover-timeout", 3) => {
            let m = master!();
            let v = atoi(&a[2]);
            if v <= 0 {
                return Err("negative or zero time parameter.");
            }
            m.failover_timeout = v;
        }
        ("parallel-syncs", 3) => {
            let m = master!();
            m.parallel_syncs = atoi(&a[2]).clamp(0, u32::MAX as i64) as u32;
        }
        ("notification-script", 3) | ("client-reconfig-script", 3) => {
            let m = master!();
            if !executable(&a[2]) {
                return Err(if verb == "notification-script" {
                    "Notification script seems non existing or non executable."
                } else {
                    "Client reconfiguration script seems non existing or non executable."
                });
            }
            if verb == "notification-script" {
                m.notification_script = Some(a[2].clone())
            } else {
                m.client_reconfig_script = Some(a[2].clone())
            }
        }
        ("auth-pass", 3) => {
            let m = master!();
            m.auth_pass = Some(a[2].clone());
        }
        ("auth-user", 3) => {
            let m = master!();
            m.auth_user = Some(a[2].clone());
        }
        ("current-epoch", 2) => {
            let e = strtoull(&a[1]);
            if e > s.env.current_epoch {
                s.env.current_epoch = e;
            }
        }
        ("myid", 2) => {
            if a[1].len() != 40 {
                return Err("Malformed Sentinel id in myid option.");
            }
            s.env.myid = a[1].clone();
        }
        ("config-epoch", 3) => {
            let e = strtoull(&a[2]);
            master!().config_epoch = e;
            if e > s.env.current_epoch {
                s.env.current_epoch = e;
            }
        }
        ("leader-epoch", 3) => {
            let m = master!();
            m.inst.leader_epoch = strtoull(&a[2]);
        }
        ("known-slave" | "known-replica", 4) => {
            if !s.masters.contains_key(&a[1]) {
                return Err("No such master with specified name.");
            }
            let port = file_addr(&s.env, &a[2], &a[3])?;
            let m = master!();
            let key = format!("{}:{}", a[2], port);
            if m.replicas.contains_key(&key) {
                return Err("Duplicate hostname and port for replica.");
            }
            let r = Inst::new(Kind::Replica, key.clone(), a[2].clone(), port, m.inst.down_after);
            m.replicas.insert(key, r);
        }
        // The old form without a run id is accepted and ignored, as Redis does.
        ("known-sentinel", 4) => {}
        ("known-sentinel", 5) => {
            if !s.masters.contains_key(&a[1]) {
                return Err("No such master with specified name.");
            }
            let port = file_addr(&s.env, &a[2], &a[3])?;
            let m = master!();
            if m.sentinels.values().any(|r| r.runid.as_deref() == Some(a[4].as_str())) {
                return Err("Duplicate runid for sentinel.");
            }
            let key = format!("{}:{}", a[2], port);
            let mut r = Inst::new(Kind::Sentinel, key.clone(), a[2].clone(), port, m.inst.down_after);
            r.runid = Some(a[4].clone());
            m.sentinels.insert(key, r);
        }
        ("rename-command", 4) => {
            let m = master!();
            let from = a[2].to_ascii_lowercase();
            if m.renamed.contains_key(&from) {
                return Err("Same command renamed multiple times with rename-command.");
            }
            m.renamed.insert(from, (a[2].clone(), a[3].clone()));
        }
        ("announce-ip", 2) => {
            if !a[1].is_empty() {
                s.env.announce_ip = a[1].clone()
            }
        }
        ("announce-port", 2) => s.env.announce_port = u16::try_from(atoi(&a[1])).unwrap_or(0),
        ("deny-scripts-reconfig", 2) => {
            s.env.deny_scripts_reconfig = yes_no(&a[1], "Please specify yes or no for the deny-scripts-reconfig options.")?
        }
        ("sentinel-user", 2) => {
            if !a[1].is_empty() {
                s.env.sentinel_user = a[1].clone()
            }
        }
        ("sentinel-pass", 2) => {
            if !a[1].is_empty() {
                s.env.sentinel_pass = a[1].clone()
            }
        }
        ("resolve-hostnames", 2) => s.env.resolve_hostnames = yes_no(&a[1], "Please specify yes or no for the resolve-hostnames option.")?,
        ("announce-hostnames", 2) => {
            s.env.announce_hostnames = yes_no(&a[1], "Please specify yes or no for the announce-hostnames option.")?
        }
        ("master-reboot-down-after-period", 3) => {
            let m = master!();
            let v = atoi(&a[2]);
            if v < 0 {
                return Err("negative time parameter.");
            }
            m.reboot_down_after = v;
        }
        _ => return Err("Unrecognized sentinel configuration statement."),
    }
    Ok(())
}

pub fn executable(path: &str) -> bool {
    let Ok(c) = std::ffi::CString::new(path) else {
        return false;
    };
    // SAFETY: a valid NUL-terminated path.
    unsafe { libc::access(c.as_ptr(), libc::X_OK) == 0 }
}

/// Applies the `sentinel` lines as Redis's loadSentinelConfigFromQueue: the options that no
/// master depends on, then the `monitor` lines, then the rest, each in file order; the first
/// error stops the start with its line. A missing `myid` gets a new one (written back at start).
pub fn load(s: &mut Sentinel, lines: &[(usize, String, Vec<String>)]) -> Result<(), String> {
    for p in 0..3 {
        for (no, line, a) in lines.iter().filter(|(_, _, a)| !a.is_empty() && phase(&a[0]) == p) {
            one(s, a).map_err(|e| fatal(*no, line, e))?;
        }
    }
    if s.env.myid.is_empty() {
        s.env.myid = random_id();
        s.env.myid_generated = true;
    }
    Ok(())
}

fn quoted(v: &str) -> String {
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\'' && b != b'\\') {
        v.to_string()
    } else {
        format!("{:?}", v)
    }
}

/// The `sentinel` lines that describe the current state (Redis's rewriteConfigSentinelOption).
pub fn state_lines(s: &Sentinel) -> Vec<String> {
    let e = &s.env;
    let mut out = vec![format!("sentinel myid {}", e.myid)];
    if !e.deny_scripts_reconfig {
        out.push("sentinel deny-scripts-reconfig no".into());
    }
    if e.resolve_hostnames {
        out.push("sentinel resolve-hostnames yes".into());
    }
    if e.announce_hostnames {
        out.push("sentinel announce-hostnames yes".into());
    }
    for m in s.masters.values() {
        let name = m.name();
        let (host, port) = m.current_addr();
        out.push(format!("sentinel monitor {} {} {} {}", name, host, port, m.quorum));
        if m.inst.down_after != DEFAULT_DOWN_AFTER {
            out.push(format!("sentinel down-after-milliseconds {} {}", name, m.inst.down_after));
        }
        if m.failover_timeout != DEFAULT_FAILOVER_TIMEOUT {
            out.push(format!("sentinel failover-timeout {} {}", name, m.failover_timeout));
        }
        if m.parallel_syncs != 1 {
            out.push(format!("sentinel parallel-syncs {} {}", name, m.parallel_syncs));
        }
        if let Some(p) = &m.notification_script {
            out.push(format!("sentinel notification-script {} {}", name, quoted(p)));
        }
        if let Some(p) = &m.client_reconfig_script {
            out.push(format!("sentinel client-reconfig-script {} {}", name, quoted(p)));
        }
        if let Some(p) = &m.auth_pass {
            out.push(format!("sentinel auth-pass {} {}", name, quoted(p)));
        }
        if let Some(p) = &m.auth_user {
            out.push(format!("sentinel auth-user {} {}", name, quoted(p)));
        }
        if m.reboot_down_after != 0 {
            out.push(format!("sentinel master-reboot-down-after-period {} {}", name, m.reboot_down_after));
        }
        out.push(format!("sentinel config-epoch {} {}", name, m.config_epoch));
        out.push(format!("sentinel leader-epoch {} {}", name, m.inst.leader_epoch));
        for r in m.replicas.values() {
            // The promoted replica is the master now: the old master's address takes its place.
            let (h, p) = if (r.host.as_str(), r.port) == (host.as_str(), port) {
                (m.inst.host.clone(), m.inst.port)
            } else {
                (r.host.clone(), r.port)
            };
            out.push(format!("sentinel known-replica {} {} {}", name, h, p));
        }
        for r in m.sentinels.values() {
            if let Some(id) = &r.runid {
                out.push(format!("sentinel known-sentinel {} {} {} {}", name, r.host, r.port, id));
            }
        }
        for (from, to) in m.renamed.values() {
            out.push(format!("sentinel rename-command {} {} {}", name, from, to));
        }
    }
    out.push(format!("sentinel current-epoch {}", e.current_epoch));
    if !e.announce_ip.is_empty() {
        out.push(format!("sentinel announce-ip {}", quoted(&e.announce_ip)));
    }
    if e.announce_port != 0 {
        out.push(format!("sentinel announce-port {}", e.announce_port));
    }
    if !e.sentinel_user.is_empty() {
        out.push(format!("sentinel sentinel-user {}", quoted(&e.sentinel_user)));
    }
    if !e.sentinel_pass.is_empty() {
        out.push(format!("sentinel sentinel-pass {}", quoted(&e.sentinel_pass)));
    }
    out
}

/// Rewrites the config file: its other lines as they are, then the state. Written to a temporary
/// file, fsynced and renamed over the old one (a crash leaves one or the other).
pub fn rewrite(s: &Sentinel) -> std::io::Result<()> {
    use std::io::Write;
    let path = &s.env.config_file;
    let old = std::fs::read_to_string(path).unwrap_or_default();
    let mut out: Vec<String> = Vec::new();
    for line in old.lines() {
        let t = line.trim_start();
        let first = t.split_whitespace().next().unwrap_or("");
        if first.eq_ignore_ascii_case("sentinel") || t.starts_with("# Generated by CONFIG REWRITE") {
            continue;
        }
        out.push(line.to_string());
    }
    while out.last().is_some_and(|l| l.trim().is_empty()) {
        out.pop();
    }
    out.push("# Generated by CONFIG REWRITE".into());
    out.extend(state_lines(s));
    let tmp = format!("{}.tmp-{}", path, std::process::id());
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all((out.join("\n") + "\n").as_bytes())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<(usize, String, Vec<String>)> {
        text.lines().enumerate().map(|(i, l)| (i + 1, l.to_string(), l.split_whitespace().skip(1).map(String::from).collect())).collect()
    }

    #[test]
    fn reads_state_and_writes_it_back_the_same() {
        let text = "sentinel myid 0123456789012345678901234567890123456789\n\
                    sentinel monitor m 127.0.0.1 6379 2\n\
                    sentinel down-after-milliseconds m 1000\n\
                    sentinel config-epoch m 3\n\
                    sentinel leader-epoch m 4\n\
                    sentinel known-replica m 127.0.0.1 6380\n\
                    sentinel known-sentinel m 127.0.0.1 26380 abcdefabcdefabcdefabcdefabcdefabcdefabcd\n\
                    sentinel current-epoch 5";
        let mut s = Sentinel::new("x".into(), 26379);
        load(&mut s, &lines(text)).unwrap();
        let m = &s.masters["m"];
        assert_eq!((m.quorum, m.inst.down_after, m.config_epoch, m.replicas.len(), m.sentinels.len()), (2, 1000, 3, 1, 1));
        assert_eq!(s.env.current_epoch, 5);
        assert_eq!(state_lines(&s).join("\n"), text);
    }

    #[test]
    fn options_may_come_before_their_monitor_line() {
        let text = "sentinel down-after-milliseconds m 5000\n\
                    sentinel known-replica m 127.0.0.1 6380\n\
                    sentinel monitor m 127.0.0.1 6379 2\n\
                    sentinel myid 0123456789012345678901234567890123456789";
        let mut s = Sentinel::new("x".into(), 26379);
        load(&mut s, &lines(text)).unwrap();
        let m = &s.masters["m"];
        assert_eq!((m.inst.down_after, m.replicas.len()), (5000, 1));
        assert_eq!(s.env.myid, "0123456789012345678901234567890123456789");
    }

    #[test]
    fn numbers_read_as_c_atoi() {
        assert_eq!([atoi("12abc"), atoi("abc"), atoi(" -7"), atoi("+3"), atoi("99999999999999999999")], [12, 0, -7, 3, i64::MAX]);
        assert_eq!([strtoull("5x"), strtoull("x")], [5, 0]);
    }

    #[test]
    fn errors_name_the_line_as_redis_does() {
        let mut s = Sentinel::new("x".into(), 26379);
        let e = load(&mut s, &lines("sentinel monitor m 127.0.0.1 6379 0")).unwrap_err();
        assert!(e.contains("at line 1\n>>> 'sentinel monitor m 127.0.0.1 6379 0'\nQuorum must be 1 or greater."), "{}", e);
        let e = load(&mut s, &lines("sentinel down-after-milliseconds nope 10")).unwrap_err();
        assert!(e.ends_with("No such master with specified name.\n"), "{}", e);
        let e = load(&mut s, &lines("sentinel frobnicate")).unwrap_err();
        assert!(e.ends_with("Unrecognized sentinel configuration statement.\n"), "{}", e);
    }
}
