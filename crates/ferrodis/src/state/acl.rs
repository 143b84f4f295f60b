//! ACL users (Redis's acl.c): passwords (SHA-256), on/off, command permissions by category,
//! command and subcommand, key patterns with read/write (`~`, `%R~`, `%W~`), channel patterns
//! (`&`), selectors (`(...)`: more sets of permissions, any one of which may allow a command),
//! the rules as ACL LIST shows them, and the ACL log.
//!
//! Plain data: the command table reaches it as (full name, categories) pairs at start-up, so
//! this module needs nothing above `state`.

use parking_lot::{Mutex, RwLock};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Redis 7.0's ACL categories, in ACL CAT's order.
pub const CATEGORIES: &[&str] = &[
    "keyspace",
    "read",
    "write",
    "set",
    "sortedset",
    "list",
    "hash",
    "string",
    "bitmap",
    "hyperloglog",
    "geo",
    "stream",
    "pubsub",
    "admin",
    "fast",
    "slow",
    "blocking",
    "dangerous",
    "connection",
    "transaction",
    "scripting",
];

#[derive(Clone, Default, Debug)]
pub struct User {
    pub name: String,
    pub enabled: bool,
    pub nopass: bool,
    /// `sanitize-payload` (Some(true)) or `skip-sanitize-payload` (Some(false)), as flags only:
    /// RESTORE payloads are always checked in full.
    pub sanitize: Option<bool>,
    /// SHA-256 of each password, as 64 lowercase hex characters.
    pub passwords: Vec<String>,
    /// Per command id (commands and subcommands): allowed.
    pub allowed: Vec<bool>,
    /// The command rules as given, normalized (ACL GETUSER's "commands").
    pub command_rules: Vec<String>,
    /// (pattern, read, write).
    pub keys: Vec<(Vec<u8>, bool, bool)>,
    pub all_keys: bool,
    pub channels: Vec<Vec<u8>>,
    pub all_channels: bool,
    /// Selectors: each a set of permissions (only the permission fields are used); a command
    /// is allowed when the user's own permissions or one selector's allow all of it.
    pub selectors: Vec<User>,
}

/// A user shared by the registry and the connections authenticated as it: changes apply at once.
pub struct UserCell {
    pub user: RwLock<User>,
    /// Enabled with every command, key and channel: dispatch checks nothing more.
    pub unrestricted: AtomicBool,
    /// Deleted (ACL DELUSER): its connections are closed.
    pub deleted: AtomicBool,
}

impl UserCell {
    fn new(u: User) -> Arc<UserCell> {
        let c = Arc::new(UserCell {
            user: RwLock::new(User::default()),
            unrestricted: AtomicBool::new(false),
            deleted: AtomicBool::new(false),
        });
        c.set(u);
        c
    }
    pub fn set(&self, u: User) {
        let free = u.enabled && u.all_keys && u.all_channels && !u.allowed.is_empty() && u.allowed.iter().all(|a| *a);
        *self.user.write() = u;
        self.unrestricted.store(free, Ordering::Release);
    }
    pub fn name(&self) -> String {
        self.user.read().name.clone()
    }
}

#[derive(Clone, Debug)]
pub struct LogEntry {
    pub count: u64,
    pub reason: &'static str,
    pub context: &'static str,
    pub object: String,
    pub username: String,
    pub created_ms: i64,
    pub updated_ms: i64,
    pub client_info: String,
}

pub struct Acl {
    /// (full name, categories) per command id.
    commands: Vec<(String, &'static str)>,
    pub users: Mutex<HashMap<String, Arc<UserCell>>>,
    pub log: Mutex<VecDeque<LogEntry>>,
    /// `acl-pubsub-default allchannels`: new users, `reset` and new selectors allow every channel.
    pub all_channels_default: AtomicBool,
}

pub fn sha256_hex(s: &[u8]) -> String {
    let d = Sha256::digest(s);
    d.iter().map(|b| format!("{:02x}", b)).collect()
}

impl Acl {
    /// The registry with the `default` user (on, nopass, every command, key and channel).
    pub fn new(commands: Vec<(String, &'static str)>) -> Acl {
        let acl = Acl {
            commands,
            users: Mutex::new(HashMap::new()),
            log: Mutex::new(VecDeque::new()),
            all_channels_default: AtomicBool::new(false),
        };
        let mut d = acl.blank("default");
        for r in ["on", "nopass", "~*", "&*", "+@all"] {
            acl.apply(&mut d, r).expect("the default user's rules");
        }
        acl.users.lock().insert("default".into(), UserCell::new(d));
        acl
    }

    /// A new user as ACL SETUSER creates it: off, no password, no commands, keys or channels.
    /// Every channel too with `acl-pubsub-default allchannels`.
    pub fn blank(&self, name: &str) -> User {
        let all = self.all_channels_default.load(Ordering::Relaxed);
        User {
            name: name.to_string(),
            allowed: vec![false; self.commands.len()],
            all_channels: all,
            channels: if all { vec![b"*".to_vec()] } else { Vec::new() },
            ..Default::default()
        }
    }

    pub fn get(&self, name: &str) -> Option<Arc<UserCell>> {
        self.users.lock().get(name).cloned()
    }

    pub fn default_user(&self) -> Arc<UserCell> {
        self.get("default").expect("the default user always exists")
    }

    fn ids_matching(&self, f: impl Fn(&str, &str) -> bool) -> Vec<usize> {
        self.commands.iter().enumerate().filter(|(_, (n, c))| f(n, c)).map(|(i, _)| i).collect()
    }

    /// Applies one rule (Redis's ACLSetUser). Err: the reason, as Redis words it.
    pub fn apply(&self, u: &mut User, rule: &str) -> Result<(), String> {
        let lower = rule.to_ascii_lowercase();
        match lower.as_str() {
            "on" => u.enabled = true,
            "off" => u.enabled = false,
            "nopass" => {
                u.nopass = true;
                u.passwords.clear();
            }
            "resetpass" => {
                u.nopass = false;
                u.passwords.clear();
            }
            "allkeys" | "~*" => {
                u.all_keys = true;
                u.keys = vec![(b"*".to_vec(), true, true)];
            }
            "resetkeys" => {
                u.all_keys = false;
                u.keys.clear();
            }
            "allchannels" | "&*" => {
                u.all_channels = true;
                u.channels = vec![b"*".to_vec()];
            }
            "resetchannels" => {
                u.all_channels = false;
                u.channels.clear();
            }
            "allcommands" | "+@all" => {
                u.allowed.iter_mut().for_each(|a| *a = true);
                u.command_rules = vec!["+@all".into()];
            }
            "nocommands" | "-@all" => {
                u.allowed.iter_mut().for_each(|a| *a = false);
                u.command_rules = vec!["-@all".into()];
            }
            "reset" => {
                let name = u.name.clone();
                *u = self.blank(&name);
                u.command_rules = vec!["-@all".into()];
                u.sanitize = Some(true);
            }
            "sanitize-payload" => u.sanitize = Some(true),
            "skip-sanitize-payload" => u.sanitize = Some(false),
            "clearselectors" => u.selectors.clear(),
            _ => {
                if let Some(inner) = rule.strip_prefix('(') {
                    let inner = inner.strip_suffix(')').ok_or("Unmatched parenthesis in acl selector starting at '('.")?;
                    let mut s = self.blank("");
                    for r in inner.split_whitespace() {
                        let lower = r.to_ascii_lowercase();
                        let permission = matches!(
                            lower.as_str(),
                            "allkeys" | "resetkeys" | "allchannels" | "resetchannels" | "allcommands" | "nocommands"
                        ) || r.starts_with(['~', '%', '&', '+', '-']);
                        if !permission {
                            return Err("Syntax error".into());
                        }
                        self.apply(&mut s, r)?;
                    }
                    u.selectors.push(s);
                } else if let Some(p) = rule.strip_prefix('>') {
                    let h = sha256_hex(p.as_bytes());
                    if !u.passwords.contains(&h) {
                        u.passwords.push(h);
                    }
                    u.nopass = false;
                } else if let Some(p) = rule.strip_prefix('<') {
                    let h = sha256_hex(p.as_bytes());
                    if !u.passwords.contains(&h) {
                        return Err("The password you are trying to remove from the user does not exist".into());
                    }
                    u.passwords.retain(|x| *x != h);
                } else if let Some(h) = rule.strip_prefix('#') {
                    if h.len() != 64 || !h.bytes().all(|c| c.is_ascii_hexdigit()) {
                        return Err(
                            "The password hash must be exactly 64 characters and contain only lowercase hexadecimal characters".into()
                        );
                    }
                    let h = h.to_ascii_lowercase();
                    if !u.passwords.contains(&h) {
                        u.passwords.push(h);
                    }
                    u.nopass = false;
                } else if let Some(h) = rule.strip_prefix('!') {
                    let h = h.to_ascii_lowercase();
                    if !u.passwords.contains(&h) {
                        return Err("The password you are trying to remove from the user does not exist".into());
                    }
                    u.passwords.retain(|x| *x != h);
                } else if let Some(p) = rule.strip_prefix('~') {
                    self.add_keys(u, p, true, true)?;
                } else if let Some(rest) = rule.strip_prefix('%') {
                    let (perm, p) = rest.split_once('~').ok_or("Syntax error")?;
                    let (mut r, mut w) = (false, false);
                    for c in perm.chars() {
                        match c.to_ascii_uppercase() {
                            'R' => r = true,
                            'W' => w = true,
                            _ => return Err("Syntax error".into()),
                        }
                    }
                    if !(r || w) {
                        return Err("Syntax error".into());
                    }
                    self.add_keys(u, p, r, w)?;
                } else if let Some(p) = rule.strip_prefix('&') {
                    if u.all_channels {
                        return Err("Adding a pattern after the * pattern (or the 'allchannels' flag) is not valid and does not have any effect. Try 'resetchannels' to start with an empty list of channels".into());
                    }
                    if p == "*" {
                        u.all_channels = true;
                        u.channels = vec![b"*".to_vec()];
                    } else if !u.channels.iter().any(|c| c[..] == *p.as_bytes()) {
                        u.channels.push(p.as_bytes().to_vec());
                    }
                } else if let Some(c) = rule.strip_prefix('+').or_else(|| rule.strip_prefix('-')) {
                    let allow = rule.starts_with('+');
                    let c = c.to_ascii_lowercase();
                    let ids = if let Some(cat) = c.strip_prefix('@') {
                        if cat != "all" && !CATEGORIES.contains(&cat) {
                            return Err("Unknown command or category name in ACL".into());
                        }
                        self.ids_matching(|_, cats| cat == "all" || cats.split_whitespace().any(|x| x == format!("@{cat}")))
                    } else if c.contains('|') {
                        if !allow && self.commands.iter().all(|(n, _)| *n != c) {
                            return Err("Unknown command or category name in ACL".into());
                        }
                        let ids = self.ids_matching(|n, _| n == c);
                        if ids.is_empty() {
                            return Err("Unknown command or category name in ACL".into());
                        }
                        ids
                    } else {
                        let ids = self.ids_matching(|n, _| n == c || n.strip_prefix(c.as_str()).is_some_and(|r| r.starts_with('|')));
                        if ids.is_empty() {
                            return Err("Unknown command or category name in ACL".into());
                        }
                        ids
                    };
                    for i in ids {
                        u.allowed[i] = allow;
                    }
                    u.command_rules.push(format!("{}{}", if allow { '+' } else { '-' }, c));
                } else {
                    return Err("Syntax error".into());
                }
            }
        }
        Ok(())
    }

    fn add_keys(&self, u: &mut User, p: &str, r: bool, w: bool) -> Result<(), String> {
        if u.all_keys {
            return Err("Adding a pattern after the * pattern (or the 'allkeys' flag) is not valid and does not have any effect. Try 'resetkeys' to start with an empty list of patterns".into());
        }
        if p == "*" && r && w {
            u.all_keys = true;
            u.keys = vec![(b"*".to_vec(), true, true)];
            return Ok(());
        }
        match u.keys.iter_mut().find(|k| k.0[..] == *p.as_bytes()) {
            Some(k) => {
                k.1 |= r;
                k.2 |= w;
            }
            None => u.keys.push((p.as_bytes().to_vec(), r, w)),
        }
        Ok(())
    }

    /// Checks a password (AUTH, HELLO AUTH). The user if it is enabled and the password fits.
    pub fn authenticate(&self, name: &[u8], pass: &[u8]) -> Option<Arc<UserCell>> {
        let cell = self.get(std::str::from_utf8(name).ok()?)?;
        let ok = {
            let u = cell.user.read();
            u.enabled && (u.nopass || u.passwords.contains(&sha256_hex(pass)))
        };
        ok.then_some(cell)
    }

    /// Records a denial (ACL LOG); an entry like it from the last minute counts it again.
    pub fn log_denied(&self, e: LogEntry, max: usize) {
        let mut log = self.log.lock();
        if let Some(old) = log.iter_mut().find(|o| {
            o.reason == e.reason
                && o.context == e.context
                && o.object == e.object
                && o.username == e.username
                && e.updated_ms - o.updated_ms < 60_000
        }) {
            old.count += 1;
            old.updated_ms = e.updated_ms;
            old.client_info = e.client_info;
            return;
        }
        log.push_front(e);
        while log.len() > max {
            log.pop_back();
        }
    }
}

/// Joins the words of a selector split by spaces (`(~a:*`, `+get)`) into one rule, as Redis
/// does for `user` lines and ACL SETUSER.
pub fn merge_selectors<S: AsRef<str>>(words: &[S]) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut open: Option<String> = None;
    for w in words {
        let w = w.as_ref();
        match open.as_mut() {
            Some(acc) => {
                acc.push(' ');
                acc.push_str(w);
                if w.ends_with(')') {
                    out.push(open.take().expect("open"));
                }
            }
            None if w.starts_with('(') && !w.ends_with(')') => open = Some(w.to_string()),
            None => out.push(w.to_string()),
        }
    }
    match open {
        Some(acc) => Err(format!("Unmatched parenthesis in acl selector starting at '{}'.", acc.split(' ').next().unwrap_or_default())),
        None => Ok(out),
    }
}

impl Acl {
    /// Users from `user` lines (redis.conf or an ACL file): every line is checked first, and
    /// nothing changes if one is wrong. `where_` names a line for the error (e.g. "/path:3").
    pub fn load_users(&self, lines: &[(String, Vec<String>)], where_: impl Fn(usize) -> String) -> Result<(), String> {
        let mut users: HashMap<String, User> = HashMap::new();
        for (i, (_, args)) in lines.iter().enumerate() {
            let Some(name) = args.first() else {
                return Err(format!("{}: user name missing", where_(i)));
            };
            if name.contains(' ') || name.is_empty() {
                return Err(format!("{}: invalid user name", where_(i)));
            }
            if users.contains_key(name) {
                return Err(format!("{}: Duplicate user '{}' found", where_(i), name));
            }
            let mut u = self.blank(name);
            let rules = merge_selectors(&args[1..]).map_err(|e| format!("{}: {}", where_(i), e))?;
            for r in &rules {
                self.apply(&mut u, r).map_err(|e| format!("{}: {}. ", where_(i), e))?;
            }
            users.insert(name.clone(), u);
        }
        let mut reg = self.users.lock();
        let default = users.remove("default");
        // Connections of users that are gone are closed; the default user always exists.
        for (name, cell) in reg.iter() {
            if name != "default" && !users.contains_key(name) {
                cell.unrestricted.store(false, Ordering::Release);
                cell.deleted.store(true, Ordering::Release);
            }
        }
        reg.retain(|name, _| name == "default");
        if let Some(d) = default {
            reg.get("default").expect("default").set(d);
        } else {
            let mut d = self.blank("default");
            for r in ["on", "nopass", "~*", "&*", "+@all"] {
                self.apply(&mut d, r).expect("the default user's rules");
            }
            reg.get("default").expect("default").set(d);
        }
        for (name, u) in users {
            reg.insert(name, UserCell::new(u));
        }
        Ok(())
    }

    /// The ACL file's text (ACL SAVE): one `user` line per user, by name.
    pub fn file_text(&self) -> String {
        let reg = self.users.lock();
        let mut names: Vec<&String> = reg.keys().collect();
        names.sort();
        names.iter().map(|n| format!("{}\n", reg[*n].user.read().describe())).collect()
    }
}

/// Loads an ACL file (blank lines and `#` comments skipped); errors name `path:line`.
pub fn load_file(acl: &Acl, path: &str) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("Error loading ACLs, opening file '{}': {}", path, e))?;
    let mut lines = Vec::new();
    let mut numbers = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let args: Vec<String> = t.split_whitespace().map(String::from).collect();
        if args[0] != "user" {
            return Err(format!("{}:{}: line should start with user keyword. ", path, i + 1));
        }
        lines.push((t.to_string(), args[1..].to_vec()));
        numbers.push(i + 1);
    }
    acl.load_users(&lines, |i| format!("{}:{}", path, numbers[i]))
}

/// Writes the ACL file (ACL SAVE): a temporary file, fsync, rename.
pub fn save_file(acl: &Acl, path: &str) -> Result<(), String> {
    let tmp = format!("{}.tmp-{}", path, std::process::id());
    let res = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        std::io::Write::write_all(&mut f, acl.file_text().as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    res.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!("There was an error trying to save the ACLs. Please check the server logs for more information: {}", e)
    })
}

impl LogEntry {
    pub fn new(reason: &'static str, context: &'static str, object: &str, username: &str, client_info: String, now_ms: i64) -> LogEntry {
        LogEntry {
            count: 1,
            reason,
            context,
            object: object.to_string(),
            username: username.to_string(),
            created_ms: now_ms,
            updated_ms: now_ms,
            client_info,
        }
    }
}

impl User {
    /// ACL LIST's line for this user.
    pub fn describe(&self) -> String {
        let mut s = format!("user {} {}", self.name, if self.enabled { "on" } else { "off" });
        for f in &self.flags()[1..] {
            s.push(' ');
            s.push_str(f);
        }
        for p in &self.passwords {
            s.push_str(&format!(" #{p}"));
        }
        s.push(' ');
        s.push_str(&self.describe_permissions());
        for sel in &self.selectors {
            s.push_str(&format!(" ({})", sel.describe_permissions()));
        }
        s
    }
    /// The flags, in Redis's order (ACL GETUSER's "flags").
    pub fn flags(&self) -> Vec<&'static str> {
        let mut f = vec![if self.enabled { "on" } else { "off" }];
        if self.nopass {
            f.push("nopass");
        }
        match self.sanitize {
            Some(false) => f.push("skip-sanitize-payload"),
            Some(true) => f.push("sanitize-payload"),
            None => {}
        }
        f
    }
    /// Keys, channels and commands, as ACL LIST writes a user's or a selector's permissions.
    pub fn describe_permissions(&self) -> String {
        let mut s = String::new();
        let keys = self.keys_rule();
        if !keys.is_empty() {
            s.push_str(&keys);
            s.push(' ');
        }
        // As Redis: "resetchannels" before any channel pattern unless every channel is allowed.
        if !self.all_channels {
            s.push_str("resetchannels ");
        }
        let ch = self.channels_rule();
        if !ch.is_empty() {
            s.push_str(&ch);
            s.push(' ');
        }
        s.push_str(&self.commands_rule());
        s
    }
    pub fn keys_rule(&self) -> String {
        self.keys
            .iter()
            .map(|(p, r, w)| {
                let p = String::from_utf8_lossy(p);
                match (r, w) {
                    (true, true) => format!("~{p}"),
                    (true, false) => format!("%R~{p}"),
                    _ => format!("%W~{p}"),
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
    pub fn channels_rule(&self) -> String {
        self.channels.iter().map(|c| format!("&{}", String::from_utf8_lossy(c))).collect::<Vec<_>>().join(" ")
    }
    pub fn commands_rule(&self) -> String {
        if self.command_rules.is_empty() {
            "-@all".into()
        } else if self.command_rules[0] != "+@all" && self.command_rules[0] != "-@all" {
            format!("-@all {}", self.command_rules.join(" "))
        } else {
            self.command_rules.join(" ")
        }
    }
    /// May access `key` for reading and/or writing.
    pub fn key_allowed(&self, key: &[u8], read: bool, write: bool) -> bool {
        if self.all_keys {
            return true;
        }
        self.keys.iter().any(|(p, r, w)| (!read || *r) && (!write || *w) && crate::util::glob_match(p, key, false))
    }
    /// May publish to or subscribe to `channel`; a pattern (PSUBSCRIBE) must equal an allowed one.
    pub fn channel_allowed(&self, channel: &[u8], is_pattern: bool) -> bool {
        if self.all_channels {
            return true;
        }
        self.channels.iter().any(|p| if is_pattern { p[..] == *channel } else { crate::util::glob_match(p, channel, false) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl() -> Acl {
        Acl::new(vec![
            ("get".into(), "@read @string @fast"),
            ("set".into(), "@write @string @slow"),
            ("config|get".into(), "@admin @slow @dangerous"),
            ("config|set".into(), "@admin @slow @dangerous"),
        ])
    }

    proptest::proptest! {
        /// Random rules are applied or refused with a reason, never panicked on, and the user
        /// they leave can always be described and checked.
        #[test]
        fn random_rules_never_panic(rules in proptest::collection::vec("[-+~%&<>#!@|RWa-z*?0-9() ]{0,12}", 0..12)) {
            let a = acl();
            let mut u = a.blank("fuzz");
            for r in &rules {
                let _ = a.apply(&mut u, r);
            }
            let _ = u.describe();
            let _ = u.key_allowed(b"key", true, true);
            let _ = u.channel_allowed(b"ch", true);
        }
    }

    #[test]
    fn rules_grant_what_they_say() {
        let a = acl();
        let mut u = a.blank("alice");
        for r in ["on", ">secret", "+@read", "+config|get", "%R~app:*", "~cache:*", "&news"] {
            a.apply(&mut u, r).unwrap();
        }
        assert_eq!(u.allowed, vec![true, false, true, false]);
        assert!(u.key_allowed(b"app:1", true, false) && !u.key_allowed(b"app:1", false, true));
        assert!(u.key_allowed(b"cache:x", true, true) && !u.key_allowed(b"other", true, false));
        assert!(u.channel_allowed(b"news", false) && !u.channel_allowed(b"n*", true));
        assert_eq!(
            u.describe(),
            format!("user alice on #{} %R~app:* ~cache:* resetchannels &news -@all +@read +config|get", sha256_hex(b"secret"))
        );
        assert!(a.apply(&mut u, "+nosuch").is_err());
        assert!(a.apply(&mut u, "+@nosuch").is_err());
        a.users.lock().insert("alice".into(), UserCell::new(u));
        assert!(a.authenticate(b"alice", b"secret").is_some());
        assert!(a.authenticate(b"alice", b"wrong").is_none());
        assert!(a.default_user().unrestricted.load(Ordering::Relaxed));
        assert_eq!(a.default_user().user.read().describe(), "user default on nopass ~* &* +@all");
    }
}
