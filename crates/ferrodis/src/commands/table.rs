//! The command table: every command's name, arity, flags, key positions, ACL categories and
//! handler, as data. COMMAND, COMMAND INFO/GETKEYS, dispatch's checks and (later) ACL, cluster
//! routing, MULTI and replication all read it. Families register their specs at start-up; the
//! engine imports no family.

use super::Ctx;
use std::collections::HashMap;

/// Command flags (Redis's CMD_* names, lower-cased in COMMAND INFO).
pub mod flag {
    pub const WRITE: u32 = 1 << 0;
    pub const READONLY: u32 = 1 << 1;
    pub const DENYOOM: u32 = 1 << 2;
    pub const ADMIN: u32 = 1 << 3;
    pub const PUBSUB: u32 = 1 << 4;
    pub const NOSCRIPT: u32 = 1 << 5;
    pub const BLOCKING: u32 = 1 << 6;
    pub const LOADING: u32 = 1 << 7;
    pub const STALE: u32 = 1 << 8;
    pub const SKIP_MONITOR: u32 = 1 << 9;
    pub const SKIP_SLOWLOG: u32 = 1 << 10;
    pub const FAST: u32 = 1 << 11;
    pub const NO_AUTH: u32 = 1 << 12;
    pub const MAY_REPLICATE: u32 = 1 << 13;
    pub const NO_MULTI: u32 = 1 << 14;
    pub const ALLOW_BUSY: u32 = 1 << 15;
    pub const NO_MANDATORY_KEYS: u32 = 1 << 16;
    pub const NO_ASYNC_LOADING: u32 = 1 << 17;
    /// Served on an importing slot without ASKING (RESTORE-ASKING).
    pub const ASKING: u32 = 1 << 18;
    /// ferrodis-only: the reply is a push (the subscription confirmations), which CLIENT REPLY
    /// OFF/SKIP does not suppress, as Redis's CLIENT_PUSHING.
    pub const PUSH_REPLY: u32 = 1 << 30;
    /// ferrodis-only: the handler walks the keyspace itself; dispatch locks no stripe for it.
    pub const WHOLE_KEYSPACE: u32 = 1 << 31;

    pub const NAMES: &[(u32, &str)] = &[
        (WRITE, "write"),
        (READONLY, "readonly"),
        (DENYOOM, "denyoom"),
        (ADMIN, "admin"),
        (PUBSUB, "pubsub"),
        (NOSCRIPT, "noscript"),
        (BLOCKING, "blocking"),
        (LOADING, "loading"),
        (STALE, "stale"),
        (SKIP_MONITOR, "skip_monitor"),
        (SKIP_SLOWLOG, "skip_slowlog"),
        (FAST, "fast"),
        (NO_AUTH, "no_auth"),
        // MAY_REPLICATE (PFCOUNT, PUBLISH, EVAL, FCALL: paused by CLIENT PAUSE WRITE) is not
        // among the flags Redis 7.0's COMMAND INFO prints.
        (NO_MULTI, "no_multi"),
        (ALLOW_BUSY, "allow_busy"),
        (NO_MANDATORY_KEYS, "no_mandatory_keys"),
        (NO_ASYNC_LOADING, "no_async_loading"),
        (ASKING, "asking"),
    ];
}

/// Where a command's keys are (the legacy first/last/step triple, plus numkeys forms).
#[derive(Clone, Copy, Debug)]
pub enum Keys {
    None,
    /// Keys at `first`, `first+step`, ... up to `last` (negative: from the end).
    Range {
        first: i32,
        last: i32,
        step: i32,
    },
    /// The count of keys is at `numkeys`, the keys follow it.
    NumKeys {
        numkeys: i32,
        first: i32,
        step: i32,
    },
    /// Keys found by a function of the arguments (ZUNIONSTORE's destination and inputs, SORT's
    /// STORE, GEORADIUS's STORE); COMMAND INFO shows the legacy triple and "movablekeys".
    Custom {
        first: i32,
        last: i32,
        step: i32,
        find: fn(&[&[u8]], &mut smallvec::SmallVec<[usize; 8]>),
    },
}

/// Keys of SORT / GEORADIUS: the key at 1, and every argument that follows one of `keywords`.
pub fn key_and_after(argv: &[&[u8]], out: &mut smallvec::SmallVec<[usize; 8]>, keywords: &[&str]) {
    out.push(1);
    let mut i = 2;
    while i + 1 < argv.len() {
        if keywords.iter().any(|k| argv[i].eq_ignore_ascii_case(k.as_bytes())) {
            out.push(i + 1);
            i += 1;
        }
        i += 1;
    }
}

/// ZUNIONSTORE-style keys: the destination at 1, numkeys at 2, the inputs after it.
pub const STORE_NUMKEYS: Keys = Keys::Custom {
    first: 1,
    last: 1,
    step: 1,
    find: |argv, out| {
        out.push(1);
        Keys::NumKeys { numkeys: 2, first: 3, step: 1 }.find(argv, out)
    },
};

pub type Handler = fn(&mut Ctx, &[&[u8]]);

/// Serves a client blocked by this command once `key` is ready: checks the key, claims the
/// waiter, does the operation and writes the waiter's reply; false when the key holds nothing
/// to serve (or the waiter was claimed by someone else).
pub type ServeFn = fn(&mut Ctx, &[u8], &crate::state::blocking::Waiter) -> bool;

pub struct CommandSpec {
    pub name: &'static str,
    pub arity: i32,
    pub flags: u32,
    pub acl: &'static str,
    pub keys: Keys,
    pub handler: Handler,
    pub subcommands: &'static [CommandSpec],
    /// For blocking commands: how a blocked client is served.
    pub serve: Option<ServeFn>,
}

/// Shorthand for declaring a spec in a family's static table.
pub const fn cmd(name: &'static str, arity: i32, flags: u32, acl: &'static str, keys: Keys, handler: Handler) -> CommandSpec {
    CommandSpec { name, arity, flags, acl, keys, handler, subcommands: &[], serve: None }
}

/// A blocking command: its handler, and how a client it blocked is served later.
pub const fn blocking_cmd(
    name: &'static str,
    arity: i32,
    flags: u32,
    acl: &'static str,
    keys: Keys,
    handler: Handler,
    serve: ServeFn,
) -> CommandSpec {
    CommandSpec { name, arity, flags, acl, keys, handler, subcommands: &[], serve: Some(serve) }
}

/// A container command (CONFIG, CLIENT, ...) with its subcommands.
pub const fn container(name: &'static str, arity: i32, acl: &'static str, subs: &'static [CommandSpec]) -> CommandSpec {
    CommandSpec { name, arity, flags: 0, acl, keys: Keys::None, handler: |_, _| {}, subcommands: subs, serve: None }
}

/// A container that may also be called bare (COMMAND): `handler` runs then.
pub const fn container_with(
    name: &'static str,
    arity: i32,
    flags: u32,
    acl: &'static str,
    handler: Handler,
    subs: &'static [CommandSpec],
) -> CommandSpec {
    CommandSpec { name, arity, flags, acl, keys: Keys::None, handler, subcommands: subs, serve: None }
}

pub const fn range(first: i32, last: i32, step: i32) -> Keys {
    Keys::Range { first, last, step }
}
pub const ONE_KEY: Keys = Keys::Range { first: 1, last: 1, step: 1 };
pub const NO_KEYS: Keys = Keys::None;

impl CommandSpec {
    pub fn is_write(&self) -> bool {
        self.flags & flag::WRITE != 0
    }
    pub fn arity_ok(&self, argc: usize) -> bool {
        let a = self.arity;
        (a > 0 && argc as i32 == a) || (a < 0 && argc as i32 >= -a)
    }
    /// Indices of the key arguments of this invocation (may be empty).
    pub fn key_indices(&self, argv: &[&[u8]], out: &mut smallvec::SmallVec<[usize; 8]>) {
        self.keys.find(argv, out)
    }
    /// (first, last, step) for COMMAND INFO's legacy triple.
    pub fn legacy_range(&self) -> (i64, i64, i64) {
        match self.keys {
            Keys::None => (0, 0, 0),
            Keys::Range { first, last, step } | Keys::Custom { first, last, step, .. } => (first as i64, last as i64, step as i64),
            Keys::NumKeys { .. } => (0, 0, 0),
        }
    }
}

impl Keys {
    /// Indices of the key arguments of an invocation.
    pub fn find(&self, argv: &[&[u8]], out: &mut smallvec::SmallVec<[usize; 8]>) {
        let argc = argv.len() as i32;
        match *self {
            Keys::None => {}
            Keys::Range { first, last, step } => {
                let last = if last < 0 { argc + last } else { last };
                let mut i = first;
                while i <= last && i < argc {
                    out.push(i as usize);
                    i += step;
                }
            }
            Keys::NumKeys { numkeys, first, step } => {
                let Some(n) = argv.get(numkeys as usize).and_then(|a| crate::util::parse_i64(a)) else {
                    return;
                };
                let mut i = first;
                for _ in 0..n.max(0) {
                    if i >= argc {
                        break;
                    }
                    out.push(i as usize);
                    i += step;
                }
            }
            Keys::Custom { find, .. } => find(argv, out),
        }
    }
}

/// The table: specs by id, and a name index ("get", "config|get").
pub struct CommandTable {
    pub specs: Vec<(&'static CommandSpec, String)>,
    index: HashMap<Vec<u8>, usize, foldhash::fast::RandomState>,
}

impl Default for CommandTable {
    fn default() -> Self {
        Self::new()
    }
}

impl CommandTable {
    pub fn new() -> Self {
        CommandTable { specs: Vec::new(), index: HashMap::default() }
    }
    /// Registers a family's commands (and their subcommands).
    pub fn register(&mut self, specs: &'static [CommandSpec]) {
        for s in specs {
            self.register_one(s);
        }
    }
    /// Registers one command (and its subcommands); a name already there now means this one.
    pub fn register_one(&mut self, s: &'static CommandSpec) {
        {
            let id = self.specs.len();
            self.specs.push((s, s.name.to_string()));
            self.index.insert(s.name.as_bytes().to_vec(), id);
            for sub in s.subcommands {
                let full = format!("{}|{}", s.name, sub.name);
                let sid = self.specs.len();
                self.specs.push((sub, full.clone()));
                self.index.insert(full.into_bytes(), sid);
            }
        }
    }
    /// Applies `rename-command old new` (an empty new name removes the command).
    pub fn rename(&mut self, old: &str, new: &str) -> bool {
        let Some(id) = self.index.remove(old.to_ascii_lowercase().as_bytes()) else {
            return false;
        };
        if !new.is_empty() {
            self.index.insert(new.to_ascii_lowercase().into_bytes(), id);
        }
        true
    }
    /// Looks a name up, case-insensitively, without allocating for short names.
    #[inline]
    pub fn lookup(&self, name: &[u8]) -> Option<usize> {
        let mut buf = [0u8; 32];
        if name.len() <= buf.len() {
            for (d, s) in buf.iter_mut().zip(name) {
                *d = s.to_ascii_lowercase();
            }
            self.index.get(&buf[..name.len()]).copied()
        } else {
            self.index.get(&name.to_ascii_lowercase()).copied()
        }
    }
    /// A command as a client names it: a top-level name only ("config|get" is no command).
    #[inline]
    pub fn lookup_command(&self, name: &[u8]) -> Option<usize> {
        if name.contains(&b'|') {
            return None;
        }
        self.lookup(name)
    }
    pub fn lookup_sub(&self, parent: usize, sub: &[u8]) -> Option<usize> {
        let mut full = self.specs[parent].1.clone().into_bytes();
        full.push(b'|');
        full.extend(sub.iter().map(|c| c.to_ascii_lowercase()));
        self.index.get(&full).copied()
    }
    pub fn spec(&self, id: usize) -> &'static CommandSpec {
        self.specs[id].0
    }
    pub fn full_name(&self, id: usize) -> &str {
        &self.specs[id].1
    }
    pub fn len(&self) -> usize {
        self.specs.len()
    }
    pub fn is_empty(&self) -> bool {
        self.specs.is_empty()
    }
    /// Top-level command ids (COMMAND, COMMAND COUNT, COMMAND LIST).
    pub fn top_level(&self) -> impl Iterator<Item = usize> + '_ {
        self.specs.iter().enumerate().filter(|(_, (_, n))| !n.contains('|')).map(|(i, _)| i)
    }
}
