//! Which keyspace events a command fires (Redis's notifyKeyspaceEvent calls, as data): after a
//! write that changed something, `dispatch::run_handler` fires the command's events, then the
//! deferred ones (the "del" of a key the command deleted, e.g. a list popped empty). "new",
//! "expired" and "del" are fired where they happen (`Ctx`, active expiry).

use super::{eq, Ctx};
use crate::config::notify::*;
use smallvec::SmallVec;

/// (class, event, argument index of the key).
type Event = (u32, &'static str, usize);

fn events(name: &str, argv: &[&[u8]]) -> SmallVec<[Event; 2]> {
    let mut v: SmallVec<[Event; 2]> = SmallVec::new();
    let one = |c, e| -> SmallVec<[Event; 2]> { smallvec::smallvec![(c, e, 1)] };
    match name {
        "set" => {
            v.push((STRING, "set", 1));
            if argv[3..].iter().any(|a| eq(a, "ex") || eq(a, "px") || eq(a, "exat") || eq(a, "pxat")) {
                v.push((GENERIC, "expire", 1));
            }
            v
        }
        "setnx" | "getset" => one(STRING, "set"),
        "setex" | "psetex" => smallvec::smallvec![(STRING, "set", 1), (GENERIC, "expire", 1)],
        "mset" | "msetnx" => (1..argv.len()).step_by(2).map(|i| (STRING, "set", i)).collect(),
        "append" => one(STRING, "append"),
        "setrange" => one(STRING, "setrange"),
        "incr" | "decr" | "incrby" | "decrby" => one(STRING, "incrby"),
        "incrbyfloat" => one(STRING, "incrbyfloat"),
        "setbit" | "bitfield" => one(STRING, "setbit"),
        "getex" => {
            if argv.len() > 2 && eq(argv[2], "persist") {
                one(GENERIC, "persist")
            } else {
                one(GENERIC, "expire")
            }
        }
        "expire" | "pexpire" | "expireat" | "pexpireat" => one(GENERIC, "expire"),
        "persist" => one(GENERIC, "persist"),
        "rename" | "renamenx" => smallvec::smallvec![(GENERIC, "rename_from", 1), (GENERIC, "rename_to", 2)],
        "copy" => smallvec::smallvec![(GENERIC, "copy_to", 2)],
        "restore" => one(GENERIC, "restore"),
        "lpush" | "lpushx" => one(LIST, "lpush"),
        "rpush" | "rpushx" => one(LIST, "rpush"),
        "lpop" => one(LIST, "lpop"),
        "rpop" => one(LIST, "rpop"),
        "linsert" => one(LIST, "linsert"),
        "lset" => one(LIST, "lset"),
        "lrem" => one(LIST, "lrem"),
        "ltrim" => one(LIST, "ltrim"),
        // RPOPLPUSH, LMOVE, LMPOP, ZMPOP, ZPOPMIN/MAX and the blocking pops fire their events
        // where they pop (the key is known only then, and a served blocked client fires them too).
        "hset" | "hmset" | "hsetnx" => one(HASH, "hset"),
        "hdel" => one(HASH, "hdel"),
        "hincrby" => one(HASH, "hincrby"),
        "hincrbyfloat" => one(HASH, "hincrbyfloat"),
        "sadd" => one(SET, "sadd"),
        "srem" => one(SET, "srem"),
        "spop" => one(SET, "spop"),
        "zadd" => {
            if argv[2..].iter().any(|a| eq(a, "incr")) {
                one(ZSET, "zincr")
            } else {
                one(ZSET, "zadd")
            }
        }
        "zincrby" => one(ZSET, "zincr"),
        "zrem" => one(ZSET, "zrem"),
        "zremrangebyscore" => one(ZSET, "zremrangebyscore"),
        "zremrangebyrank" => one(ZSET, "zremrangebyrank"),
        "zremrangebylex" => one(ZSET, "zremrangebylex"),
        "geoadd" => one(ZSET, "zadd"),
        "pfadd" | "pfmerge" => one(STRING, "pfadd"),
        // STORE commands: the destination's event, or only "del" when the result was empty.
        "sinterstore" => one(SET, "sinterstore"),
        "sunionstore" => one(SET, "sunionstore"),
        "sdiffstore" => one(SET, "sdiffstore"),
        "zunionstore" => one(ZSET, "zunionstore"),
        "zinterstore" => one(ZSET, "zinterstore"),
        "zdiffstore" => one(ZSET, "zdiffstore"),
        "zrangestore" => one(ZSET, "zrangestore"),
        "geosearchstore" => one(ZSET, "geosearchstore"),
        "georadius" | "georadiusbymember" => match argv.iter().position(|a| eq(a, "store") || eq(a, "storedist")) {
            Some(i) if i + 1 < argv.len() => smallvec::smallvec![(ZSET, "georadiusstore", i + 1)],
            _ => v,
        },
        "bitop" => smallvec::smallvec![(STRING, "set", 2)],
        "sort" => match argv.iter().position(|a| eq(a, "store")) {
            Some(i) if i + 1 < argv.len() => smallvec::smallvec![(LIST, "sortstore", i + 1)],
            _ => v,
        },
        _ => v,
    }
}

/// Fires a write command's events, then the deferred ones.
pub fn fire(ctx: &mut Ctx, name: &str, argv: &[&[u8]], changed: bool) {
    let db = ctx.conn.db;
    if changed && ctx.notifying(ALL) {
        for (class, event, i) in events(name, argv) {
            // An expiry in the past, or a STORE with an empty result, deletes the key: Redis then
            // fires only "del".
            let replaced_by_del =
                event == "expire" || event.ends_with("store") || event == "restore" || (name == "bitop" && event == "set");
            if replaced_by_del && ctx.deferred.iter().any(|d| d.3 == argv[i]) {
                continue;
            }
            ctx.notify(class, event, db, argv[i]);
        }
    }
    if changed && name == "move" && ctx.notifying(GENERIC) {
        // MOVE: "move_from" in this database, "move_to" in the target.
        if let Some(to) = crate::util::parse_i64(argv[2]) {
            ctx.notify(GENERIC, "move_from", db, argv[1]);
            ctx.notify(GENERIC, "move_to", to as usize, argv[1]);
        }
    }
    fire_deferred(ctx);
}

/// Fires the events a command deferred (the "del" of keys it emptied); also used after serving a
/// blocked client.
pub fn fire_deferred(ctx: &mut Ctx) {
    for (class, event, db, key) in std::mem::take(&mut ctx.deferred) {
        ctx.notify(class, event, db, &key);
    }
}
