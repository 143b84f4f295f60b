//! ACL (Redis's acl.c): the ACL command and the permission check dispatch runs for users not
//! allowed everything: the command (or subcommand), its keys (read or write as the command
//! is), its Pub/Sub channels. Denials answer Redis's NOPERM texts and go to the ACL log.

use super::table::{cmd, container, flag::*, CommandSpec, NO_KEYS};
use super::{Ctx, SYNTAX};
use crate::state::acl::{UserCell, CATEGORIES};
use crate::state::State;
use crate::util::parse_i64;
use smallvec::SmallVec;
use std::sync::atomic::Ordering;
use std::sync::Arc;

const A: &str = "@admin @slow @dangerous";

pub static COMMANDS: &[CommandSpec] = &[container(
    "acl",
    -2,
    "@slow",
    &[
        cmd("cat", -2, NOSCRIPT | LOADING | STALE, "@slow", NO_KEYS, cat),
        cmd("deluser", -3, ADMIN | NOSCRIPT | LOADING | STALE, A, NO_KEYS, deluser),
        cmd("dryrun", -4, ADMIN | NOSCRIPT | LOADING | STALE, A, NO_KEYS, dryrun),
        cmd("genpass", -2, NOSCRIPT | LOADING | STALE, "@slow", NO_KEYS, genpass),
        cmd("getuser", 3, ADMIN | NOSCRIPT | LOADING | STALE, A, NO_KEYS, getuser),
        cmd("help", 2, LOADING | STALE, "@slow", NO_KEYS, help),
        cmd("list", 2, ADMIN | NOSCRIPT | LOADING | STALE, A, NO_KEYS, list),
        cmd("load", 2, ADMIN | NOSCRIPT | LOADING | STALE, A, NO_KEYS, load),
        cmd("log", -2, ADMIN | NOSCRIPT | LOADING | STALE, A, NO_KEYS, log),
        cmd("save", 2, ADMIN | NOSCRIPT | LOADING | STALE, A, NO_KEYS, save),
        cmd("setuser", -3, ADMIN | NOSCRIPT | LOADING | STALE, A, NO_KEYS, setuser),
        cmd("users", 2, ADMIN | NOSCRIPT | LOADING | STALE, A, NO_KEYS, users),
        cmd("whoami", 2, NOSCRIPT | LOADING | STALE, "@slow", NO_KEYS, whoami),
    ],
)];

/// Channels a Pub/Sub command names: (channels, they are patterns).
fn channels<'a>(name: &str, argv: &[&'a [u8]]) -> Option<(Vec<&'a [u8]>, bool)> {
    match name {
        "publish" | "spublish" => Some((vec![argv[1]], false)),
        "subscribe" | "ssubscribe" => Some((argv[1..].to_vec(), false)),
        "psubscribe" => Some((argv[1..].to_vec(), true)),
        _ => None,
    }
}

/// A denial: (reason for the ACL log, the object denied, the NOPERM reply).
type Denial = (&'static str, String, String);

/// Why `user` may not run this command, as the error reply; None when it may. The user's own
/// permissions and each selector are tried; when none allows the command, the denial is the
/// most relevant one, as Redis picks it (channel over key over command, then the later argument).
fn check(table: &super::CommandTable, u: &crate::state::acl::User, id: usize, argv: &[&[u8]]) -> Option<Denial> {
    let mut worst: Option<((u8, usize), Denial)> = None;
    for sel in std::iter::once(u).chain(u.selectors.iter()) {
        let (rank, denial) = check_selector(table, sel, id, argv)?;
        if worst.as_ref().is_none_or(|(r, _)| rank > *r) {
            worst = Some((rank, denial));
        }
    }
    worst.map(|(_, d)| d)
}

/// One set of permissions: None when it allows the command, else ((relevance, argument), denial).
fn check_selector(table: &super::CommandTable, u: &crate::state::acl::User, id: usize, argv: &[&[u8]]) -> Option<((u8, usize), Denial)> {
    let spec = table.spec(id);
    if !u.allowed.get(id).copied().unwrap_or(false) {
        let name = table.full_name(id).to_string();
        return Some(((1, 0), ("command", name.clone(), format!("NOPERM this user has no permissions to run the '{name}' command"))));
    }
    if !u.all_keys {
        let mut idx: SmallVec<[usize; 8]> = SmallVec::new();
        spec.key_indices(argv, &mut idx);
        let name = table.full_name(id);
        let write = spec.is_write();
        for i in idx {
            let (read, written) = key_access(name, write, argv, i);
            if !u.key_allowed(argv[i], read, written) {
                return Some((
                    (2, i),
                    (
                        "key",
                        String::from_utf8_lossy(argv[i]).into_owned(),
                        "NOPERM this user has no permissions to access one of the keys used as arguments".into(),
                    ),
                ));
            }
        }
    }
    if !u.all_channels {
        if let Some((chs, pattern)) = channels(table.full_name(id), argv) {
            for (i, c) in chs.into_iter().enumerate() {
                if !u.channel_allowed(c, pattern) {
                    return Some((
                        (4, i + 1),
                        (
                            "channel",
                            String::from_utf8_lossy(c).into_owned(),
                            "NOPERM this user has no permissions to access one of the channels used as arguments".into(),
                        ),
                    ));
                }
            }
        }
    }
    None
}

/// Redis's ACLUserCheckCmdWithUnrestrictedKeyAccess: one set of the user's permissions (its
/// own, or a selector) allows this command and reads every key (`allkeys`, or a `*` pattern
/// with read access). SORT's BY and GET patterns read keys no argument names, so they need it.
pub fn reads_all_keys(table: &super::CommandTable, cell: Option<&Arc<UserCell>>, id: usize, argv: &[&[u8]]) -> bool {
    let Some(cell) = cell.filter(|c| !c.unrestricted.load(Ordering::Acquire)) else { return true };
    let u = cell.user.read();
    std::iter::once(&*u).chain(u.selectors.iter()).any(|sel| {
        (sel.all_keys || sel.keys.iter().any(|(p, read, _)| *read && p[..] == b"*"[..])) && check_selector(table, sel, id, argv).is_none()
    })
}

/// Whether the connection's user may run `argv` (redis.acl_check_cmd): every check dispatch
/// makes, without logging. `id` is the command's (or subcommand's) id.
pub fn permitted(table: &super::CommandTable, cell: Option<&Arc<UserCell>>, id: usize, argv: &[&[u8]]) -> bool {
    let Some(cell) = cell.filter(|c| !c.unrestricted.load(Ordering::Acquire)) else { return true };
    let u = cell.user.read();
    check(table, &u, id, argv).is_none()
}

/// Write commands whose keys are only written, never read (Redis's key specs without ACCESS):
/// a `%W~` pattern is enough for them.
const WRITE_ONLY: &[&str] = &[
    "del",
    "unlink",
    "setex",
    "psetex",
    "setnx",
    "mset",
    "msetnx",
    "append",
    "setrange",
    "expire",
    "pexpire",
    "expireat",
    "pexpireat",
    "persist",
    "lpush",
    "rpush",
    "lpushx",
    "rpushx",
    "linsert",
    "lset",
    "ltrim",
    "lrem",
    "sadd",
    "srem",
    "hset",
    "hsetnx",
    "hmset",
    "hdel",
    "zadd",
    "zrem",
    "zremrangebyscore",
    "zremrangebyrank",
    "zremrangebylex",
    "pfadd",
    "restore",
];

/// Read commands that read no value of their keys (Redis's key specs without ACCESS: sizes,
/// types, existence, metadata): the key must match a pattern, with either permission.
const METADATA_ONLY: &[&str] = &[
    "exists",
    "type",
    "touch",
    "strlen",
    "llen",
    "scard",
    "zcard",
    "hlen",
    "xlen",
    "hstrlen",
    "hexists",
    "sismember",
    "object|encoding",
    "object|freq",
    "object|idletime",
    "object|refcount",
    "memory|usage",
];

/// The permissions a command needs on the key at argument `i`, (read, write), after Redis's key
/// specs: what a command reads needs `%R`, what it changes needs `%W`. A write command reads its
/// keys unless it is known not to (WRITE_ONLY); commands that read sources into a destination
/// need `%R` on the sources and `%W` on the destination; commands that read only metadata need
/// the key to match any pattern (METADATA_ONLY).
pub(crate) fn key_access(name: &str, write: bool, argv: &[&[u8]], i: usize) -> (bool, bool) {
    const R: (bool, bool) = (true, false);
    const W: (bool, bool) = (false, true);
    const RW: (bool, bool) = (true, true);
    match name {
        // A script may read and write the keys it declares (EVAL_RO and FCALL_RO only read).
        "eval" | "evalsha" | "fcall" => RW,
        _ if METADATA_ONLY.contains(&name) => (false, false),
        _ if !write => R,
        "sunionstore" | "sinterstore" | "sdiffstore" | "zunionstore" | "zinterstore" | "zdiffstore" | "zrangestore" | "geosearchstore" => {
            if i == 1 {
                W
            } else {
                R
            }
        }
        "pfmerge" => {
            if i == 1 {
                RW
            } else {
                R
            }
        }
        "bitop" => {
            if i == 2 {
                W
            } else {
                R
            }
        }
        // The source is read and emptied; the destination only gets an element (Redis's
        // "RW insert" without access: write permission is enough).
        "smove" | "rpoplpush" | "lmove" | "blmove" | "brpoplpush" => {
            if i == 1 {
                RW
            } else {
                W
            }
        }
        "copy" | "sort" | "georadius" | "georadiusbymember" => {
            if i == 1 {
                R
            } else {
                W
            }
        }
        "rename" | "renamenx" => {
            if i == 1 {
                RW
            } else {
                W
            }
        }
        // SET reads the old value only with GET.
        "set" => {
            if argv.iter().skip(3).any(|a| a.eq_ignore_ascii_case(b"get")) {
                RW
            } else {
                W
            }
        }
        _ if WRITE_ONLY.contains(&name) => W,
        _ => RW,
    }
}

/// A denial in the ACL log.
fn log_denial(st: &State, conn: &super::ConnState, user: &str, reason: &'static str, context: &'static str, object: &str) {
    let now = crate::util::now_ms();
    if let Some(acl) = st.acl.get() {
        let max = st.config.get_int("acllog-max-len").max(0) as usize;
        let client = format!("id={} addr={}", conn.info.id, conn.info.addr);
        acl.log_denied(crate::state::acl::LogEntry::new(reason, context, object, user, client, now), max);
    }
}

/// Why `cell`'s user may not run this command, logged with `context` ("toplevel", "multi",
/// "lua"): (the reason, the NOPERM reply). None when it may.
fn denial(
    st: &State,
    table: &super::CommandTable,
    conn: &super::ConnState,
    cell: &Arc<UserCell>,
    id: usize,
    argv: &[&[u8]],
    context: &'static str,
) -> Option<(&'static str, String)> {
    let u = cell.user.read();
    let (reason, object, err) = check(table, &u, id, argv)?;
    log_denial(st, conn, &u.name, reason, context, &object);
    Some((reason, err))
}

/// Dispatch's check for a user not allowed everything; logs a denial.
#[cold]
pub fn denied(
    st: &State,
    table: &super::CommandTable,
    conn: &super::ConnState,
    cell: &Arc<UserCell>,
    id: usize,
    argv: &[&[u8]],
) -> Option<String> {
    let context = if conn.multi.is_some() { "multi" } else { "toplevel" };
    denial(st, table, conn, cell, id, argv, context).map(|(_, err)| err)
}

/// The check for a command a script runs: Redis's wording ("can't run this command or
/// subcommand", ...), logged with the "lua" context.
pub fn denied_in_script(
    st: &State,
    table: &super::CommandTable,
    conn: &super::ConnState,
    cell: &Arc<UserCell>,
    id: usize,
    argv: &[&[u8]],
) -> Option<&'static str> {
    let (reason, _) = denial(st, table, conn, cell, id, argv, "lua")?;
    Some(match reason {
        "command" => "can't run this command or subcommand",
        "key" => "can't access at least one of the keys mentioned in the command arguments",
        _ => "can't publish to the channel mentioned in the command",
    })
}

fn acl<'a>(ctx: &Ctx<'a>) -> &'a crate::state::acl::Acl {
    ctx.st.acl.get().expect("ACL is set up at start-up")
}

fn setuser(ctx: &mut Ctx, argv: &[&[u8]]) {
    let name = String::from_utf8_lossy(argv[2]).into_owned();
    let a = acl(ctx);
    let existing = a.get(&name);
    let mut u = match &existing {
        Some(c) => c.user.read().clone(),
        None => a.blank(&name),
    };
    let words: Vec<String> = argv[3..].iter().map(|r| String::from_utf8_lossy(r).into_owned()).collect();
    let rules = match crate::state::acl::merge_selectors(&words) {
        Ok(r) => r,
        Err(e) => {
            ctx.out.error(&format!("ERR {}", e));
            return;
        }
    };
    for rule in &rules {
        if let Err(e) = a.apply(&mut u, rule) {
            ctx.out.error(&format!("ERR Error in ACL SETUSER modifier '{}': {}", rule, e));
            return;
        }
    }
    match existing {
        Some(c) => c.set(u),
        None => {
            let c = Arc::new(UserCell {
                user: parking_lot::RwLock::new(Default::default()),
                unrestricted: Default::default(),
                deleted: Default::default(),
            });
            c.set(u);
            a.users.lock().insert(name.clone(), c);
        }
    }
    if name == "default" {
        ctx.st.sync_default_user();
    }
    ctx.out.ok();
}

fn getuser(ctx: &mut Ctx, argv: &[&[u8]]) {
    let Some(cell) = acl(ctx).get(&String::from_utf8_lossy(argv[2])) else {
        ctx.out.null();
        return;
    };
    let u = cell.user.read().clone();
    ctx.out.map(6);
    ctx.out.bulk(b"flags");
    let flags = u.flags();
    ctx.out.array(flags.len());
    for f in flags {
        ctx.out.bulk(f.as_bytes());
    }
    ctx.out.bulk(b"passwords");
    ctx.out.array(u.passwords.len());
    for p in &u.passwords {
        ctx.out.bulk(p.as_bytes());
    }
    permissions_reply(ctx, &u);
    ctx.out.bulk(b"selectors");
    ctx.out.array(u.selectors.len());
    for sel in &u.selectors {
        ctx.out.map(3);
        permissions_reply(ctx, sel);
    }
}

/// GETUSER's "commands", "keys" and "channels" fields of a user or a selector.
fn permissions_reply(ctx: &mut Ctx, u: &crate::state::acl::User) {
    for (name, rule) in [("commands", u.commands_rule()), ("keys", u.keys_rule()), ("channels", u.channels_rule())] {
        ctx.out.bulk(name.as_bytes());
        ctx.out.bulk(rule.as_bytes());
    }
}

fn deluser(ctx: &mut Ctx, argv: &[&[u8]]) {
    if argv[2..].iter().any(|n| *n == b"default") {
        ctx.out.error("ERR The 'default' user cannot be removed");
        return;
    }
    let mut n = 0;
    for name in &argv[2..] {
        if let Some(c) = acl(ctx).users.lock().remove(&*String::from_utf8_lossy(name)) {
            // Its connections are closed at their next command.
            c.unrestricted.store(false, Ordering::Release);
            c.deleted.store(true, Ordering::Release);
            n += 1;
        }
    }
    ctx.out.int(n);
}

fn sorted_users(ctx: &Ctx) -> Vec<Arc<UserCell>> {
    let mut v: Vec<(String, Arc<UserCell>)> = acl(ctx).users.lock().iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v.into_iter().map(|(_, c)| c).collect()
}

fn list(ctx: &mut Ctx, _argv: &[&[u8]]) {
    let lines: Vec<String> = sorted_users(ctx).iter().map(|c| c.user.read().describe()).collect();
    ctx.out.array(lines.len());
    for l in lines {
        ctx.out.bulk(l.as_bytes());
    }
}

fn users(ctx: &mut Ctx, _argv: &[&[u8]]) {
    let names: Vec<String> = sorted_users(ctx).iter().map(|c| c.name()).collect();
    ctx.out.array(names.len());
    for n in names {
        ctx.out.bulk(n.as_bytes());
    }
}

fn whoami(ctx: &mut Ctx, _argv: &[&[u8]]) {
    let name = ctx.conn.user.as_ref().map_or("default".to_string(), |u| u.name());
    ctx.out.bulk(name.as_bytes());
}

fn cat(ctx: &mut Ctx, argv: &[&[u8]]) {
    if argv.len() > 3 {
        ctx.out.error(SYNTAX);
        return;
    }
    let Some(c) = argv.get(2) else {
        ctx.out.array(CATEGORIES.len());
        for c in CATEGORIES {
            ctx.out.bulk(c.as_bytes());
        }
        return;
    };
    let c = String::from_utf8_lossy(c).to_ascii_lowercase();
    if !CATEGORIES.contains(&c.as_str()) {
        ctx.out.error(&format!("ERR Unknown category '{}'", c));
        return;
    }
    let tag = format!("@{c}");
    let names: Vec<String> = (0..ctx.table.len())
        .filter(|&id| ctx.table.spec(id).acl.split_whitespace().any(|x| x == tag))
        .map(|id| ctx.table.full_name(id).to_string())
        .collect();
    ctx.out.array(names.len());
    for n in names {
        ctx.out.bulk(n.as_bytes());
    }
}

fn genpass(ctx: &mut Ctx, argv: &[&[u8]]) {
    let bits = match argv.get(2) {
        None => 256,
        Some(a) => match parse_i64(a) {
            Some(b) if (1..=4096).contains(&b) => b,
            _ => {
                ctx.out.error("ERR ACL GENPASS argument must be the number of bits for the output password, a positive number up to 4096");
                return;
            }
        },
    };
    let chars = (bits as usize).div_ceil(4);
    let mut s = String::new();
    while s.len() < chars {
        s.push_str(&crate::util::random_hex40());
    }
    s.truncate(chars);
    ctx.out.bulk(s.as_bytes());
}

fn log(ctx: &mut Ctx, argv: &[&[u8]]) {
    let count = match argv.get(2) {
        None => 10,
        Some(a) if super::eq(a, "reset") => {
            acl(ctx).log.lock().clear();
            ctx.out.ok();
            return;
        }
        Some(a) => match parse_i64(a) {
            Some(n) if n >= 0 => n as usize,
            _ => {
                ctx.out.error("ERR value is out of range, must be positive");
                return;
            }
        },
    };
    let now = ctx.now;
    let entries: Vec<_> = acl(ctx).log.lock().iter().take(count).cloned().collect();
    ctx.out.array(entries.len());
    for e in entries {
        ctx.out.map(7);
        ctx.out.bulk(b"count");
        ctx.out.int(e.count as i64);
        ctx.out.bulk(b"reason");
        ctx.out.bulk(e.reason.as_bytes());
        ctx.out.bulk(b"context");
        ctx.out.bulk(e.context.as_bytes());
        ctx.out.bulk(b"object");
        ctx.out.bulk(e.object.as_bytes());
        ctx.out.bulk(b"username");
        ctx.out.bulk(e.username.as_bytes());
        ctx.out.bulk(b"age-seconds");
        ctx.out.double_str(format!("{:.3}", (now - e.created_ms) as f64 / 1000.0).as_bytes());
        ctx.out.bulk(b"client-info");
        ctx.out.bulk(e.client_info.as_bytes());
    }
}

fn dryrun(ctx: &mut Ctx, argv: &[&[u8]]) {
    let Some(cell) = acl(ctx).get(&String::from_utf8_lossy(argv[2])) else {
        ctx.out.error(&format!("ERR User '{}' not found", String::from_utf8_lossy(argv[2])));
        return;
    };
    let args = &argv[3..];
    let Some(mut id) = ctx.table.lookup(args[0]) else {
        ctx.out.error(&format!("ERR Command '{}' not found", String::from_utf8_lossy(args[0])));
        return;
    };
    let spec = ctx.table.spec(id);
    if !spec.subcommands.is_empty() && args.len() > 1 {
        if let Some(sid) = ctx.table.lookup_sub(id, args[1]) {
            id = sid;
        }
    }
    if !ctx.table.spec(id).arity_ok(args.len()) {
        ctx.out.error(&format!("ERR wrong number of arguments for '{}' command", ctx.table.full_name(id)));
        return;
    }
    let u = cell.user.read().clone();
    match check(ctx.table, &u, id, args) {
        None => ctx.out.ok(),
        Some((reason, object, _)) => {
            let msg = match reason {
                "command" => format!("This user has no permissions to run the '{}' command", object),
                "key" => format!("This user has no permissions to access the '{}' key", object),
                _ => format!("This user has no permissions to access the '{}' channel", object),
            };
            ctx.out.bulk(msg.as_bytes());
        }
    }
}

fn aclfile(ctx: &mut Ctx) -> Option<String> {
    let f = ctx.st.config.get("aclfile").unwrap_or_default();
    if f.is_empty() {
        no_aclfile(ctx);
        return None;
    }
    Some(f)
}

fn load(ctx: &mut Ctx, _argv: &[&[u8]]) {
    let Some(f) = aclfile(ctx) else { return };
    match crate::state::acl::load_file(acl(ctx), &f) {
        Ok(()) => {
            ctx.st.sync_default_user();
            ctx.out.ok()
        }
        Err(e) => ctx.out.error(&format!("ERR {}", e)),
    }
}

fn save(ctx: &mut Ctx, _argv: &[&[u8]]) {
    let Some(f) = aclfile(ctx) else { return };
    match crate::state::acl::save_file(acl(ctx), &f) {
        Ok(()) => ctx.out.ok(),
        Err(e) => ctx.out.error(&format!("ERR {}", e)),
    }
}

fn no_aclfile(ctx: &mut Ctx) {
    ctx.out.error("ERR This Redis instance is not configured to use an ACL file. You may want to specify users via the ACL SETUSER command and then issue a CONFIG REWRITE (assuming you have a Redis configuration file set) in order to store users in the Redis configuration.");
}

fn help(ctx: &mut Ctx, _argv: &[&[u8]]) {
    let lines = [
        "ACL <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "CAT [<category>]",
        "DELUSER <username> [<username> ...]",
        "DRYRUN <username> <command> [<arg> ...]",
        "GETUSER <username>",
        "LIST",
        "USERS",
        "SETUSER <username> <attribs> ...",
        "WHOAMI",
        "LOG [<count> | RESET]",
        "GENPASS [<bits>]",
        "HELP",
    ];
    crate::commands::reply_help(ctx, &lines);
}
