//! Connection commands: PING, ECHO, QUIT, RESET, SELECT, AUTH, HELLO, CLIENT.

use super::table::{cmd, container, flag::*, CommandSpec, NO_KEYS};
use super::{eq, Ctx, ReplyMode, SYNTAX};
use crate::util::parse_i64;
use resp::Proto;
use std::sync::atomic::Ordering;

const CONN: &str = "@connection @fast";

pub static COMMANDS: &[CommandSpec] = &[
    cmd("ping", -1, FAST, CONN, NO_KEYS, ping),
    cmd("echo", 2, FAST | LOADING | STALE, CONN, NO_KEYS, echo),
    cmd("quit", -1, ALLOW_BUSY | NOSCRIPT | NO_AUTH | FAST | LOADING | STALE, CONN, NO_KEYS, quit),
    cmd("reset", 1, NOSCRIPT | LOADING | STALE | NO_AUTH | FAST | ALLOW_BUSY, CONN, NO_KEYS, reset),
    cmd("select", 2, LOADING | STALE | FAST, CONN, NO_KEYS, select),
    cmd("auth", -2, NOSCRIPT | LOADING | STALE | FAST | NO_AUTH | ALLOW_BUSY, CONN, NO_KEYS, auth),
    cmd("hello", -1, NOSCRIPT | LOADING | STALE | FAST | NO_AUTH | ALLOW_BUSY, CONN, NO_KEYS, hello),
    container("client", -2, "@slow", CLIENT),
];

const SLOW_CONN: &str = "@admin @slow @dangerous @connection";

static CLIENT: &[CommandSpec] = &[
    cmd("id", 2, NOSCRIPT | LOADING | STALE, "@slow @connection", NO_KEYS, client_id),
    cmd("info", 2, NOSCRIPT | LOADING | STALE, "@slow @connection", NO_KEYS, client_info),
    cmd("list", -2, ADMIN | NOSCRIPT | LOADING | STALE, SLOW_CONN, NO_KEYS, client_list),
    cmd("setname", 3, NOSCRIPT | LOADING | STALE, "@slow @connection", NO_KEYS, client_setname),
    cmd("getname", 2, NOSCRIPT | LOADING | STALE, "@slow @connection", NO_KEYS, client_getname),
    cmd("kill", -3, ADMIN | NOSCRIPT | LOADING | STALE, SLOW_CONN, NO_KEYS, client_kill),
    cmd("pause", -3, ADMIN | NOSCRIPT | LOADING | STALE, SLOW_CONN, NO_KEYS, client_pause),
    cmd("unblock", -3, ADMIN | NOSCRIPT | LOADING | STALE, SLOW_CONN, NO_KEYS, client_unblock),
    cmd("unpause", 2, ADMIN | NOSCRIPT | LOADING | STALE, SLOW_CONN, NO_KEYS, client_unpause),
    cmd("reply", 3, NOSCRIPT | LOADING | STALE, "@slow @connection", NO_KEYS, client_reply),
    cmd("no-evict", 3, ADMIN | NOSCRIPT | LOADING | STALE, SLOW_CONN, NO_KEYS, client_no_evict),
    cmd("setinfo", 4, NOSCRIPT | LOADING | STALE, "@slow @connection", NO_KEYS, client_setinfo),
    cmd("tracking", -3, NOSCRIPT | LOADING | STALE, "@slow @connection", NO_KEYS, client_tracking),
    cmd("trackinginfo", 2, NOSCRIPT | LOADING | STALE, "@slow @connection", NO_KEYS, client_trackinginfo),
    cmd("getredir", 2, NOSCRIPT | LOADING | STALE, "@slow @connection", NO_KEYS, client_getredir),
    cmd("caching", 3, NOSCRIPT | LOADING | STALE, "@slow @connection", NO_KEYS, client_caching),
    cmd("help", 2, LOADING | STALE, "@slow @connection", NO_KEYS, client_help),
];

fn ping(ctx: &mut Ctx, argv: &[&[u8]]) {
    if ctx.conn.in_subscriber_mode() && argv.len() <= 2 {
        // In subscriber mode PING answers ["pong", message].
        ctx.out.array(2);
        ctx.out.bulk(b"pong");
        ctx.out.bulk(argv.get(1).copied().unwrap_or(b""));
        return;
    }
    match argv.len() {
        1 => ctx.out.simple(b"PONG"),
        2 => ctx.out.bulk(argv[1]),
        _ => ctx.out.error("ERR wrong number of arguments for 'ping' command"),
    }
}

fn echo(ctx: &mut Ctx, argv: &[&[u8]]) {
    ctx.out.bulk(argv[1]);
}

fn quit(ctx: &mut Ctx, _argv: &[&[u8]]) {
    ctx.out.ok();
    ctx.conn.close_after_reply = true;
}

fn reset(ctx: &mut Ctx, _argv: &[&[u8]]) {
    ctx.conn.multi = None;
    let info = ctx.conn.info.clone();
    ctx.st.tracking.disable(&info, &mut ctx.conn.tracking_prefixes);
    super::multi::unwatch_all(ctx.st, ctx.conn);
    super::pubsub::unsubscribe_all(ctx.st, ctx.conn);
    ctx.conn.db = 0;
    ctx.conn.info.db.store(0, Ordering::Relaxed);
    ctx.conn.reply_mode = ReplyMode::On;
    ctx.conn.skip_this = false;
    ctx.out.proto = Proto::Resp2;
    ctx.conn.info.resp.store(2, Ordering::Relaxed);
    ctx.conn.info.name.lock().clear();
    ctx.conn.info.no_evict.store(false, Ordering::Relaxed);
    ctx.conn.asking = false;
    ctx.conn.cluster_readonly = false;
    // Back to the default user (Redis's clientSetDefaultAuth): a pooled connection handed on
    // with RESET keeps nothing of the previous user's rights.
    ctx.conn.user = ctx.st.acl.get().map(|a| a.default_user());
    *ctx.conn.info.user.lock() = "default".into();
    ctx.conn.authenticated = !ctx.st.config.hot.requirepass_set.load(Ordering::Relaxed);
    ctx.out.simple(b"RESET");
}

fn select(ctx: &mut Ctx, argv: &[&[u8]]) {
    match parse_i64(argv[1]) {
        None => ctx.out.error(super::NOT_INT),
        Some(d) if d != 0 && ctx.st.cluster.enabled.load(Ordering::Relaxed) => ctx.out.error("ERR SELECT is not allowed in cluster mode"),
        Some(d) if d < 0 || d as usize >= ctx.st.keyspace.databases => ctx.out.error("ERR DB index is out of range"),
        Some(d) => {
            ctx.conn.db = d as usize;
            ctx.conn.info.db.store(d as usize, Ordering::Relaxed);
            ctx.out.ok();
        }
    }
}

/// Checks credentials for the `default` user (the full ACL system comes later).
fn check_auth(ctx: &mut Ctx, user: &[u8], pass: &[u8]) -> bool {
    let Some(acl) = ctx.st.acl.get() else {
        let required = ctx.st.config.get("requirepass").unwrap_or_default();
        let ok = user == b"default" && (required.is_empty() || required.as_bytes() == pass);
        ctx.conn.authenticated |= ok;
        return ok;
    };
    match acl.authenticate(user, pass) {
        Some(cell) => {
            ctx.conn.authenticated = true;
            *ctx.conn.info.user.lock() = cell.name();
            ctx.conn.user = Some(cell);
            true
        }
        None => {
            let max = ctx.st.config.get_int("acllog-max-len").max(0) as usize;
            let info = ctx.conn.info.addr.clone();
            let entry = crate::state::acl::LogEntry::new(
                "auth",
                "toplevel",
                "AUTH",
                &String::from_utf8_lossy(user),
                format!("addr={info}"),
                ctx.now,
            );
            acl.log_denied(entry, max);
            false
        }
    }
}

const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";

fn auth(ctx: &mut Ctx, argv: &[&[u8]]) {
    if argv.len() > 3 {
        ctx.out.error(SYNTAX);
        return;
    }
    let (user, pass): (&[u8], &[u8]) = if argv.len() == 2 { (b"default", argv[1]) } else { (argv[1], argv[2]) };
    if argv.len() == 2 && !ctx.st.config.hot.requirepass_set.load(Ordering::Relaxed) {
        ctx.out.error(
            "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?",
        );
        return;
    }
    if check_auth(ctx, user, pass) {
        ctx.out.ok();
    } else {
        ctx.out.error(WRONGPASS);
    }
}

fn hello(ctx: &mut Ctx, argv: &[&[u8]]) {
    let mut ver = None;
    let mut i = 1;
    if argv.len() > 1 {
        match parse_i64(argv[1]) {
            None => {
                ctx.out.error("ERR Protocol version is not an integer or out of range");
                return;
            }
            Some(v) if v != 2 && v != 3 => {
                ctx.out.error("NOPROTO unsupported protocol version");
                return;
            }
            Some(v) => ver = Some(v),
        }
        i = 2;
    }
    let mut setname: Option<&[u8]> = None;
    let mut creds: Option<(&[u8], &[u8])> = None;
    while i < argv.len() {
        let more = argv.len() - i - 1;
        if eq(argv[i], "auth") && more >= 2 {
            creds = Some((argv[i + 1], argv[i + 2]));
            i += 3;
        } else if eq(argv[i], "setname") && more >= 1 {
            setname = Some(argv[i + 1]);
            i += 2;
        } else {
            ctx.out.error(&format!("ERR Syntax error in HELLO option '{}'", String::from_utf8_lossy(argv[i])));
            return;
        }
    }
    if let Some((u, p)) = creds {
        if !check_auth(ctx, u, p) {
            ctx.out.error(WRONGPASS);
            return;
        }
    }
    if !ctx.conn.authenticated && ctx.st.config.hot.requirepass_set.load(Ordering::Relaxed) {
        ctx.out.error("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time");
        return;
    }
    if let Some(n) = setname {
        if !valid_name(n) {
            ctx.out.error(BAD_NAME);
            return;
        }
        *ctx.conn.info.name.lock() = n.to_vec();
    }
    if let Some(v) = ver {
        ctx.out.proto = if v == 3 { Proto::Resp3 } else { Proto::Resp2 };
        ctx.conn.info.resp.store(v as u8, Ordering::Relaxed);
    }
    let proto = if ctx.out.resp3() { 3 } else { 2 };
    let out = &mut *ctx.out;
    out.map(7);
    out.bulk(b"server");
    out.bulk(b"redis");
    out.bulk(b"version");
    out.bulk(b"7.0.15");
    out.bulk(b"proto");
    out.int(proto);
    out.bulk(b"id");
    out.int(ctx.conn.info.id as i64);
    out.bulk(b"mode");
    out.bulk(b"standalone");
    out.bulk(b"role");
    out.bulk(b"master");
    out.bulk(b"modules");
    out.array(0);
}

const BAD_NAME: &str = "ERR Client names cannot contain spaces, newlines or special characters.";

fn valid_name(n: &[u8]) -> bool {
    n.iter().all(|&c| (b'!'..=b'~').contains(&c))
}

/// CLIENT TRACKING ON|OFF [REDIRECT id] [PREFIX p ...] [BCAST] [OPTIN] [OPTOUT] [NOLOOP], with
/// Redis's checks in Redis's order.
fn client_tracking(ctx: &mut Ctx, argv: &[&[u8]]) {
    use crate::state::tracking::{flag as tf, Tracking};
    let mut redirect = 0u64;
    let mut options = 0u32;
    let mut prefixes: Vec<&[u8]> = Vec::new();
    let mut j = 3;
    while j < argv.len() {
        let more = j + 1 < argv.len();
        let a = argv[j];
        if eq(a, "redirect") && more {
            j += 1;
            if redirect != 0 {
                return ctx.out.error("ERR A client can only redirect to a single other client");
            }
            let Some(id) = parse_i64(argv[j]) else { return ctx.out.error(super::NOT_INT) };
            // The client must exist now (it may go later: the redirection then breaks).
            let target = if id > 0 { ctx.st.clients.get(id as u64) } else { None };
            let Some(target) = target else {
                return ctx.out.error("ERR The client ID you want redirect to does not exist");
            };
            redirect = target.id;
        } else if eq(a, "bcast") {
            options |= tf::BCAST;
        } else if eq(a, "optin") {
            options |= tf::OPTIN;
        } else if eq(a, "optout") {
            options |= tf::OPTOUT;
        } else if eq(a, "noloop") {
            options |= tf::NOLOOP;
        } else if eq(a, "prefix") && more {
            j += 1;
            prefixes.push(argv[j]);
        } else {
            return ctx.out.error(SYNTAX);
        }
        j += 1;
    }
    let info = ctx.conn.info.clone();
    if eq(argv[2], "on") {
        let current = info.tracking.load(Ordering::Relaxed);
        let err = if options & tf::BCAST == 0 && !prefixes.is_empty() {
            Some("ERR PREFIX option requires BCAST mode to be enabled".to_string())
        } else if current & tf::ON != 0 && (current & tf::BCAST != 0) != (options & tf::BCAST != 0) {
            Some("ERR You can't switch BCAST mode on/off before disabling tracking for this client, and then re-enabling it with a different mode.".to_string())
        } else if options & tf::BCAST != 0 && options & (tf::OPTIN | tf::OPTOUT) != 0 {
            Some("ERR OPTIN and OPTOUT are not compatible with BCAST".to_string())
        } else if options & tf::OPTIN != 0 && options & tf::OPTOUT != 0 {
            Some("ERR You can't specify both OPTIN mode and OPTOUT mode".to_string())
        } else if (options & tf::OPTIN != 0 && current & tf::OPTOUT != 0) || (options & tf::OPTOUT != 0 && current & tf::OPTIN != 0) {
            Some("ERR You can't switch OPTIN/OPTOUT mode before disabling tracking for this client, and then re-enabling it with a different mode.".to_string())
        } else if options & tf::BCAST != 0 {
            Tracking::prefix_collision(&ctx.conn.tracking_prefixes, &prefixes)
        } else {
            None
        };
        if let Some(e) = err {
            return ctx.out.error(&e);
        }
        if redirect != 0 {
            if let Some(target) = ctx.st.clients.get(redirect) {
                ctx.st.inboxes.reach(&target);
            }
        }
        // Invalidations reach this connection through its mailbox.
        ctx.conn.inbox(&ctx.st.inboxes);
        ctx.st.tracking.enable(&info, redirect, options, &prefixes, &mut ctx.conn.tracking_prefixes);
    } else if eq(argv[2], "off") {
        ctx.st.tracking.disable(&info, &mut ctx.conn.tracking_prefixes);
    } else {
        return ctx.out.error(SYNTAX);
    }
    ctx.out.ok();
}

fn client_caching(ctx: &mut Ctx, argv: &[&[u8]]) {
    use crate::state::tracking::flag as tf;
    let f = ctx.conn.info.tracking.load(Ordering::Relaxed);
    if f & tf::ON == 0 {
        return ctx
            .out
            .error("ERR CLIENT CACHING can be called only when the client is in tracking mode with OPTIN or OPTOUT mode enabled");
    }
    if eq(argv[2], "yes") {
        if f & tf::OPTIN == 0 {
            return ctx.out.error("ERR CLIENT CACHING YES is only valid when tracking is enabled in OPTIN mode.");
        }
    } else if eq(argv[2], "no") {
        if f & tf::OPTOUT == 0 {
            return ctx.out.error("ERR CLIENT CACHING NO is only valid when tracking is enabled in OPTOUT mode.");
        }
    } else {
        return ctx.out.error(SYNTAX);
    }
    ctx.conn.info.tracking.fetch_or(tf::CACHING, Ordering::Relaxed);
    ctx.out.ok();
}

fn client_trackinginfo(ctx: &mut Ctx, _argv: &[&[u8]]) {
    use crate::state::tracking::flag as tf;
    let f = ctx.conn.info.tracking.load(Ordering::Relaxed);
    let mut flags: Vec<&[u8]> = vec![if f & tf::ON != 0 { b"on" } else { b"off" }];
    // In Redis's order; OPTIN/OPTOUT are followed by their CLIENT CACHING state when given.
    let named: [(u32, &[u8], &[u8]); 5] = [
        (tf::BCAST, b"bcast", b""),
        (tf::OPTIN, b"optin", b"caching-yes"),
        (tf::OPTOUT, b"optout", b"caching-no"),
        (tf::NOLOOP, b"noloop", b""),
        (tf::BROKEN_REDIR, b"broken_redirect", b""),
    ];
    for (bit, name, caching) in named {
        if f & bit != 0 {
            flags.push(name);
            if !caching.is_empty() && f & tf::CACHING != 0 {
                flags.push(caching);
            }
        }
    }
    ctx.out.map(3);
    ctx.out.bulk(b"flags");
    ctx.out.set(flags.len());
    for fl in flags {
        ctx.out.bulk(fl);
    }
    ctx.out.bulk(b"redirect");
    ctx.out.int(tracking_redirect(ctx));
    ctx.out.bulk(b"prefixes");
    ctx.out.array(ctx.conn.tracking_prefixes.len());
    for p in &ctx.conn.tracking_prefixes {
        ctx.out.bulk(p);
    }
}

/// The client invalidations are redirected to: 0 for none, -1 when tracking is off.
fn tracking_redirect(ctx: &Ctx) -> i64 {
    if ctx.conn.info.tracking.load(Ordering::Relaxed) & crate::state::tracking::flag::ON == 0 {
        return -1;
    }
    ctx.conn.info.tracking_redir.load(Ordering::Relaxed) as i64
}

fn client_getredir(ctx: &mut Ctx, _argv: &[&[u8]]) {
    let r = tracking_redirect(ctx);
    ctx.out.int(r);
}

fn client_id(ctx: &mut Ctx, _argv: &[&[u8]]) {
    ctx.out.int(ctx.conn.info.id as i64);
}

fn client_info(ctx: &mut Ctx, _argv: &[&[u8]]) {
    let table = ctx.table;
    let mut s = ctx.conn.info.describe(ctx.now, &|id| table.full_name(id).to_string());
    s.push('\n');
    ctx.out.verbatim(s.as_bytes());
}

fn client_list(ctx: &mut Ctx, argv: &[&[u8]]) {
    let mut ids: Option<Vec<u64>> = None;
    let mut kind = None;
    let mut i = 2;
    while i < argv.len() {
        if eq(argv[i], "type") && i + 1 < argv.len() {
            let t = argv[i + 1];
            let Some(k) = crate::state::ClientInfo::kind_named(t) else {
                ctx.out.error(&format!("ERR Unknown client type '{}'", String::from_utf8_lossy(t)));
                return;
            };
            kind = Some(k);
            i += 2;
        } else if eq(argv[i], "id") && i + 1 < argv.len() {
            let mut v = ids.take().unwrap_or_default();
            i += 1;
            while i < argv.len() {
                match parse_i64(argv[i]) {
                    Some(id) if id > 0 => v.push(id as u64),
                    _ => {
                        ctx.out.error("ERR Invalid client ID");
                        return;
                    }
                }
                i += 1;
            }
            ids = Some(v);
        } else {
            ctx.out.error(SYNTAX);
            return;
        }
    }
    let mut s = String::new();
    for c in ctx.st.clients.all() {
        if ids.as_ref().is_some_and(|v| !v.contains(&c.id)) || kind.is_some_and(|k| k != c.kind()) {
            continue;
        }
        let table = ctx.table;
        s.push_str(&c.describe(ctx.now, &|id| table.full_name(id).to_string()));
        s.push('\n');
    }
    ctx.out.verbatim(s.as_bytes());
}

fn client_setname(ctx: &mut Ctx, argv: &[&[u8]]) {
    if !valid_name(argv[2]) {
        ctx.out.error(BAD_NAME);
        return;
    }
    *ctx.conn.info.name.lock() = argv[2].to_vec();
    ctx.out.ok();
}

fn client_getname(ctx: &mut Ctx, _argv: &[&[u8]]) {
    let n = ctx.conn.info.name.lock().clone();
    if n.is_empty() {
        ctx.out.null();
    } else {
        ctx.out.bulk(&n);
    }
}

fn client_setinfo(ctx: &mut Ctx, argv: &[&[u8]]) {
    let v = argv[3];
    if eq(argv[2], "lib-name") || eq(argv[2], "lib-ver") {
        if !valid_name(v) && !v.is_empty() {
            ctx.out.error(&format!(
                "ERR {} cannot contain spaces, newlines or special characters.",
                String::from_utf8_lossy(argv[2]).to_ascii_lowercase()
            ));
            return;
        }
        let slot = if eq(argv[2], "lib-name") { &ctx.conn.info.lib_name } else { &ctx.conn.info.lib_ver };
        *slot.lock() = v.to_vec();
        ctx.out.ok();
    } else {
        ctx.out.error(&format!("ERR Unrecognized option '{}'", String::from_utf8_lossy(argv[2])));
    }
}

fn client_unblock(ctx: &mut Ctx, argv: &[&[u8]]) {
    let Some(id) = super::arg_i64(ctx, argv[2]) else { return };
    let error = match argv.get(3) {
        None => false,
        Some(a) if argv.len() == 4 && eq(a, "timeout") => false,
        Some(a) if argv.len() == 4 && eq(a, "error") => true,
        Some(_) => return ctx.out.error("ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR"),
    };
    let done = super::blocking::unblock_client(ctx.st, id as u64, error);
    ctx.out.int(done as i64);
}

fn client_kill(ctx: &mut Ctx, argv: &[&[u8]]) {
    let clients = ctx.st.clients.all();
    if argv.len() == 3 {
        // Old form: CLIENT KILL addr:port.
        let addr = String::from_utf8_lossy(argv[2]);
        match clients.iter().find(|c| c.addr == addr) {
            Some(c) => {
                if c.id == ctx.conn.info.id {
                    ctx.conn.close_after_reply = true;
                } else {
                    ctx.st.kill_client(c.id);
                }
                ctx.out.ok();
            }
            None => ctx.out.error("ERR No such client"),
        }
        return;
    }
    let (mut id, mut addr, mut laddr, mut user, mut skipme, mut typ) = (None, None, None, None, true, None);
    let mut i = 2;
    while i + 1 < argv.len() {
        let (k, v) = (argv[i], argv[i + 1]);
        if eq(k, "id") {
            match parse_i64(v) {
                Some(n) if n > 0 => id = Some(n as u64),
                _ => {
                    ctx.out.error("ERR client-id should be greater than 0");
                    return;
                }
            }
        } else if eq(k, "addr") {
            addr = Some(String::from_utf8_lossy(v).into_owned());
        } else if eq(k, "laddr") {
            laddr = Some(String::from_utf8_lossy(v).into_owned());
        } else if eq(k, "user") {
            let name = String::from_utf8_lossy(v).into_owned();
            if ctx.st.acl.get().is_some_and(|a| a.get(&name).is_none()) {
                ctx.out.error(&format!("ERR No such user '{name}'"));
                return;
            }
            user = Some(name);
        } else if eq(k, "type") {
            let Some(k) = crate::state::ClientInfo::kind_named(v) else {
                ctx.out.error(&format!("ERR Unknown client type '{}'", String::from_utf8_lossy(v)));
                return;
            };
            typ = Some(k);
        } else if eq(k, "skipme") {
            if eq(v, "yes") {
                skipme = true;
            } else if eq(v, "no") {
                skipme = false;
            } else {
                ctx.out.error(SYNTAX);
                return;
            }
        } else {
            ctx.out.error(SYNTAX);
            return;
        }
        i += 2;
    }
    if i != argv.len() {
        ctx.out.error(SYNTAX);
        return;
    }
    let mut n = 0;
    for c in clients {
        let me = c.id == ctx.conn.info.id;
        if id.is_some_and(|x| x != c.id)
            || addr.as_ref().is_some_and(|a| *a != c.addr)
            || laddr.as_ref().is_some_and(|a| *a != c.laddr)
            || user.as_ref().is_some_and(|u| *u != *c.user.lock())
            || typ.is_some_and(|k| k != c.kind())
            || (me && skipme)
        {
            continue;
        }
        if me {
            ctx.conn.close_after_reply = true;
        } else {
            ctx.st.kill_client(c.id);
        }
        n += 1;
    }
    ctx.out.int(n);
}

fn client_pause(ctx: &mut Ctx, argv: &[&[u8]]) {
    let Some(ms) = parse_i64(argv[2]) else {
        ctx.out.error("ERR timeout is not an integer or out of range");
        return;
    };
    if ms < 0 {
        ctx.out.error("ERR timeout is negative");
        return;
    }
    let writes_only = match argv.get(3) {
        None => false,
        Some(a) if eq(a, "write") => true,
        Some(a) if eq(a, "all") => false,
        Some(_) => {
            ctx.out.error("ERR CLIENT PAUSE mode must be WRITE or ALL");
            return;
        }
    };
    if argv.len() > 4 {
        ctx.out.error(SYNTAX);
        return;
    }
    ctx.st.pause_writes_only.store(writes_only, Ordering::Relaxed);
    ctx.st.pause_until.store(ctx.now.saturating_add(ms), Ordering::Relaxed);
    ctx.out.ok();
}

fn client_unpause(ctx: &mut Ctx, _argv: &[&[u8]]) {
    ctx.st.pause_until.store(0, Ordering::Relaxed);
    ctx.out.ok();
}

fn client_reply(ctx: &mut Ctx, argv: &[&[u8]]) {
    if eq(argv[2], "on") {
        // ON after SKIP answers too: it ends the skipping, its own reply included (Redis).
        ctx.conn.reply_mode = ReplyMode::On;
        ctx.conn.skip_this = false;
        ctx.out.ok();
    } else if eq(argv[2], "off") {
        ctx.conn.reply_mode = ReplyMode::Off;
    } else if eq(argv[2], "skip") {
        if ctx.conn.reply_mode != ReplyMode::Off {
            ctx.conn.reply_mode = ReplyMode::SkipNext;
        }
    } else {
        ctx.out.error(SYNTAX);
    }
}

fn client_no_evict(ctx: &mut Ctx, argv: &[&[u8]]) {
    if eq(argv[2], "on") || eq(argv[2], "off") {
        ctx.conn.info.no_evict.store(eq(argv[2], "on"), Ordering::Relaxed);
        ctx.out.ok();
    } else {
        ctx.out.error(SYNTAX);
    }
}

fn client_help(ctx: &mut Ctx, _argv: &[&[u8]]) {
    let lines = [
        "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "CACHING (YES|NO)",
        "    Enable/disable tracking of the keys for next command in OPTIN/OPTOUT modes.",
        "GETREDIR",
        "    Return the client ID we are redirecting to when tracking is enabled.",
        "ID",
        "    Return the ID of the current connection.",
        "INFO",
        "    Return information about the current client connection.",
        "KILL <ip:port>",
        "    Kill connection made from <ip:port>.",
        "KILL <option> <value> [<option> <value> [...]]",
        "    Kill connections. Options are: ID, ADDR, LADDR, TYPE, USER, SKIPME.",
        "LIST [options ...]",
        "    Return information about client connections.",
        "GETNAME",
        "    Return the name of the current connection.",
        "SETNAME <name>",
        "    Assign the name <name> to the current connection.",
        "PAUSE <timeout> [WRITE|ALL]",
        "    Suspend clients for <timeout> milliseconds.",
        "UNPAUSE",
        "    Stop the current client pause, resuming traffic.",
        "UNBLOCK <clientid> [TIMEOUT|ERROR]",
        "    Unblock the specified blocked client.",
        "REPLY (ON|OFF|SKIP)",
        "    Control the replies sent to the current connection.",
        "NO-EVICT (ON|OFF)",
        "    Protect current client connection from eviction.",
        "TRACKING (ON|OFF) [REDIRECT <id>] [BCAST] [PREFIX <prefix> [...]]",
        "         [OPTIN] [OPTOUT] [NOLOOP]",
        "    Control server assisted client side caching.",
        "TRACKINGINFO",
        "    Report tracking status for the current connection.",
        "HELP",
        "    Print this help.",
    ];
    super::reply_help(ctx, &lines);
}
