//! The stream family (Redis's t_stream.c commands): XADD, XRANGE/XREVRANGE, XLEN, XDEL, XTRIM,
//! XSETID, XREAD and XREADGROUP (blocking too), XGROUP, XACK, XPENDING, XCLAIM, XAUTOCLAIM and
//! XINFO, with Redis's replies, errors, keyspace events and propagation (an XADD's generated ID
//! and approximate trim are written out exactly; XREADGROUP, XCLAIM and XAUTOCLAIM propagate as
//! XCLAIM ... FORCE JUSTID LASTID and XGROUP SETID / CREATECONSUMER).

use super::table::{blocking_cmd, cmd, container, flag::*, CommandSpec, Keys, NO_KEYS, ONE_KEY};
use super::{eq, Ctx, NOT_INT, SYNTAX, WRONGTYPE};
use crate::config::notify::STREAM as EV;
use crate::state::blocking::{BlockOp, Waiter};
use crate::types::stream::{Consumer, Fields, Group, Nack, NodeLimits, ReadFrom, Stream, StreamId, Trim};
use crate::types::Value;
use crate::util::parse_i64;

const INVALID_ID: &str = "ERR Invalid stream ID specified as stream command argument";
const KEY2: Keys = Keys::Range { first: 2, last: 2, step: 1 };

/// XREAD / XREADGROUP keys: the first half of the arguments after STREAMS.
const XREAD_KEYS: Keys = Keys::Custom {
    first: 0,
    last: 0,
    step: 0,
    find: |argv, out| {
        // After GROUP's two arguments a key could be named "streams": skip them.
        let mut i = 1;
        while i < argv.len() {
            if eq(argv[i], "group") {
                i += 3;
                continue;
            }
            if eq(argv[i], "streams") {
                let rest = argv.len() - i - 1;
                out.extend(i + 1..i + 1 + rest / 2);
                return;
            }
            i += 1;
        }
    },
};

pub static COMMANDS: &[CommandSpec] = &[
    cmd("xadd", -5, WRITE | DENYOOM | FAST, "@write @stream @fast", ONE_KEY, xadd),
    cmd("xrange", -4, READONLY, "@read @stream @slow", ONE_KEY, xrange),
    cmd("xrevrange", -4, READONLY, "@read @stream @slow", ONE_KEY, xrevrange),
    cmd("xlen", 2, READONLY | FAST, "@read @stream @fast", ONE_KEY, xlen),
    cmd("xdel", -3, WRITE | FAST, "@write @stream @fast", ONE_KEY, xdel),
    cmd("xtrim", -4, WRITE, "@write @stream @slow", ONE_KEY, xtrim),
    cmd("xsetid", -3, WRITE | DENYOOM | FAST, "@write @stream @fast", ONE_KEY, xsetid),
    blocking_cmd("xread", -4, READONLY | BLOCKING, "@read @stream @slow @blocking", XREAD_KEYS, xread, serve_blocked),
    blocking_cmd("xreadgroup", -7, WRITE | BLOCKING, "@write @stream @slow @blocking", XREAD_KEYS, xreadgroup, serve_blocked),
    container("xgroup", -2, "@slow", XGROUP),
    cmd("xack", -4, WRITE | FAST, "@write @stream @fast", ONE_KEY, xack),
    cmd("xpending", -3, READONLY, "@read @stream @slow", ONE_KEY, xpending),
    cmd("xclaim", -6, WRITE | FAST, "@write @stream @fast", ONE_KEY, xclaim),
    cmd("xautoclaim", -6, WRITE | FAST, "@write @stream @fast", ONE_KEY, xautoclaim),
    container("xinfo", -2, "@slow", XINFO),
];

static XGROUP: &[CommandSpec] = &[
    cmd("create", -5, WRITE | DENYOOM, "@write @stream @slow", KEY2, xgroup_create),
    cmd("setid", -5, WRITE, "@write @stream @slow", KEY2, xgroup_setid),
    cmd("destroy", 4, WRITE, "@write @stream @slow", KEY2, xgroup_destroy),
    cmd("createconsumer", 5, WRITE | DENYOOM, "@write @stream @slow", KEY2, xgroup_createconsumer),
    cmd("delconsumer", 5, WRITE, "@write @stream @slow", KEY2, xgroup_delconsumer),
    cmd("help", 2, LOADING | STALE, "@stream @slow", NO_KEYS, xgroup_help),
];

static XINFO: &[CommandSpec] = &[
    cmd("stream", -3, READONLY, "@read @stream @slow", KEY2, xinfo_stream),
    cmd("groups", 3, READONLY, "@read @stream @slow", KEY2, xinfo_groups),
    cmd("consumers", 4, READONLY, "@read @stream @slow", KEY2, xinfo_consumers),
    cmd("help", 2, LOADING | STALE, "@stream @slow", NO_KEYS, xinfo_help),
];

// ---------------------------------------------------------------------------------------------
// IDs and arguments

/// Redis's string2ull: an exact decimal first, else C's strtoull (leading blanks and a sign
/// allowed, the whole string consumed, no overflow).
fn string2ull(s: &[u8]) -> Option<u64> {
    if let Some(v) = parse_i64(s) {
        return (v >= 0).then_some(v as u64);
    }
    let t = std::str::from_utf8(s).ok()?;
    let t = t.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let (neg, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let v: u64 = digits.parse().ok()?;
    Some(if neg { v.wrapping_neg() } else { v })
}

/// Redis's streamGenericParseIDOrReply without the reply: "ms", "ms-seq", "-", "+" (not when
/// `strict`), and with `seq_given` the "ms-*" form (then `Some(false)`).
fn parse_id_raw(a: &[u8], missing_seq: u64, strict: bool, allow_star: bool) -> Option<(StreamId, bool)> {
    if a.len() > 127 {
        return None;
    }
    if !strict && a == b"-" {
        return Some((StreamId::MIN, true));
    }
    if !strict && a == b"+" {
        return Some((StreamId::MAX, true));
    }
    match a.iter().position(|&b| b == b'-') {
        None => Some((StreamId::new(string2ull(a)?, missing_seq), true)),
        Some(dash) => {
            let ms = string2ull(&a[..dash])?;
            let rest = &a[dash + 1..];
            if allow_star && rest == b"*" {
                return Some((StreamId::new(ms, 0), false));
            }
            Some((StreamId::new(ms, string2ull(rest)?), true))
        }
    }
}

/// A strict ID ("-" and "+" refused), or Redis's error.
fn strict_id(ctx: &mut Ctx, a: &[u8]) -> Option<StreamId> {
    match parse_id_raw(a, 0, true, false) {
        Some((id, _)) => Some(id),
        None => {
            ctx.out.error(INVALID_ID);
            None
        }
    }
}

/// An interval bound of XRANGE/XPENDING: "(" makes it exclusive (7.0).
fn interval_id(ctx: &mut Ctx, a: &[u8], missing_seq: u64, start: bool) -> Option<StreamId> {
    let (exclusive, body) = if a.len() > 1 && a[0] == b'(' { (true, &a[1..]) } else { (false, a) };
    let Some((id, _)) = parse_id_raw(body, missing_seq, exclusive, false) else {
        ctx.out.error(INVALID_ID);
        return None;
    };
    if !exclusive {
        return Some(id);
    }
    let stepped = if start { id.next() } else { id.prev() };
    if stepped.is_none() {
        ctx.out.error(if start { "ERR invalid start ID for the interval" } else { "ERR invalid end ID for the interval" });
    }
    stepped
}

fn arg_ll(ctx: &mut Ctx, a: &[u8]) -> Option<i64> {
    let v = parse_i64(a);
    if v.is_none() {
        ctx.out.error(NOT_INT);
    }
    v
}

fn node_limits(ctx: &Ctx) -> NodeLimits {
    super::persistence::stream_limits(ctx.st)
}

/// The stream at `key`: Ok(None) when missing, Err after replying WRONGTYPE.
fn stream_mut<'a>(ctx: &'a mut Ctx, key: &[u8], read: bool) -> Result<Option<&'a mut Stream>, ()> {
    ctx.typed(key, read, |v| match v {
        Value::Stream(s) => Some(&mut **s),
        _ => None,
    })
}

/// Commands from the master or the AOF obey as written (no LIMIT on trimming).
fn must_obey(ctx: &Ctx) -> bool {
    ctx.conn.is_master || ctx.conn.loading
}

fn reply_entry(ctx: &mut Ctx, id: StreamId, fields: &Fields) {
    put_entry(ctx.out, id, fields)
}

fn put_entry(out: &mut resp::ReplyBuf, id: StreamId, fields: &Fields) {
    out.array(2);
    out.bulk(&id.to_bytes());
    out.array(fields.len() * 2);
    for (f, v) in fields {
        out.bulk(f);
        out.bulk(v);
    }
}

fn reply_entries(ctx: &mut Ctx, entries: &[(StreamId, Fields)]) {
    put_entries(ctx.out, entries)
}

fn put_entries(out: &mut resp::ReplyBuf, entries: &[(StreamId, Fields)]) {
    out.array(entries.len());
    for (id, f) in entries {
        put_entry(out, *id, f);
    }
}

/// The stream at `key` for XINFO, read in place with the reply buffer beside it (no copy of
/// the stream); None after replying "no such key" or WRONGTYPE.
fn info_stream<'a>(ctx: &'a mut Ctx, key: &[u8]) -> Option<(&'a Stream, &'a mut resp::ReplyBuf)> {
    let (e, out) = ctx.entry(key, false);
    match e.map(|e| &e.value) {
        Some(Value::Stream(s)) => Some((&**s, out)),
        Some(_) => {
            out.error(WRONGTYPE);
            None
        }
        None => {
            out.error("ERR no such key");
            None
        }
    }
}

// ---------------------------------------------------------------------------------------------
// XADD, XTRIM

struct AddTrim {
    trim: Option<Trim>,
    approx: bool,
    limit: u64,
    /// The argument index of the threshold (rewritten when trimming was approximate).
    trim_at: usize,
    nomkstream: bool,
    /// XADD: the ID argument index, the ID given (None: "*") and whether its seq was given.
    id_at: usize,
    id: Option<(StreamId, bool)>,
}

/// Redis's streamParseAddOrTrimArgsOrReply.
fn parse_add_trim(ctx: &mut Ctx, argv: &[&[u8]], xadd: bool) -> Option<AddTrim> {
    let mut a = AddTrim { trim: None, approx: false, limit: 0, trim_at: 0, nomkstream: false, id_at: 0, id: None };
    let mut limit_given = false;
    let mut i = 2;
    while i < argv.len() {
        let more = argv.len() - 1 - i;
        let opt = argv[i];
        if xadd && opt == b"*" {
            break;
        } else if (eq(opt, "maxlen") || eq(opt, "minid")) && more > 0 {
            if a.trim.is_some() {
                ctx.out.error("ERR syntax error, MAXLEN and MINID options at the same time are not compatible");
                return None;
            }
            a.approx = false;
            let next = argv[i + 1];
            if more >= 2 && next == b"~" {
                a.approx = true;
                i += 1;
            } else if more >= 2 && next == b"=" {
                i += 1;
            }
            let v = argv[i + 1];
            if eq(opt, "maxlen") {
                let n = arg_ll(ctx, v)?;
                if n < 0 {
                    ctx.out.error("ERR The MAXLEN argument must be >= 0.");
                    return None;
                }
                a.trim = Some(Trim::MaxLen(n as u64));
            } else {
                a.trim = Some(Trim::MinId(strict_id(ctx, v)?));
            }
            i += 1;
            a.trim_at = i;
        } else if eq(opt, "limit") && more > 0 {
            let n = arg_ll(ctx, argv[i + 1])?;
            if n < 0 {
                ctx.out.error("ERR The LIMIT argument must be >= 0.");
                return None;
            }
            a.limit = n as u64;
            limit_given = true;
            i += 1;
        } else if xadd && eq(opt, "nomkstream") {
            a.nomkstream = true;
        } else if xadd {
            match parse_id_raw(opt, 0, true, true) {
                Some(id) => a.id = Some(id),
                None => {
                    ctx.out.error(INVALID_ID);
                    return None;
                }
            }
            break;
        } else {
            ctx.out.error(SYNTAX);
            return None;
        }
        i += 1;
    }
    a.id_at = i;
    if a.limit > 0 && a.trim.is_none() {
        ctx.out.error("ERR syntax error, LIMIT cannot be used without specifying a trimming strategy");
        return None;
    }
    if !xadd && a.trim.is_none() {
        ctx.out.error("ERR syntax error, XTRIM must be called with a trimming strategy");
        return None;
    }
    if must_obey(ctx) {
        a.limit = 0;
    } else if limit_given {
        if !a.approx {
            ctx.out.error("ERR syntax error, LIMIT cannot be used without the special ~ option");
            return None;
        }
    } else if a.approx {
        let per = node_limits(ctx).max_entries as u64;
        a.limit = if per == 0 { 10_000 } else { (100 * per).min(1_000_000) };
    }
    Some(a)
}

/// The argv to propagate after an approximate trim: "~" becomes "=", the threshold what the
/// trim left (the length, or the first ID), so replicas and the AOF trim exactly the same.
fn rewritten_trim(argv: &[&[u8]], a: &AddTrim, s: &Stream) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = argv.iter().map(|x| x.to_vec()).collect();
    if a.trim_at >= 1 && out[a.trim_at - 1] == b"~" {
        out[a.trim_at - 1] = b"=".to_vec();
    }
    out[a.trim_at] = match a.trim {
        Some(Trim::MaxLen(_)) => s.length.to_string().into_bytes(),
        _ => s.edge(false).unwrap_or(StreamId::MIN).to_bytes(),
    };
    out
}

fn xadd(ctx: &mut Ctx, argv: &[&[u8]]) {
    let Some(a) = parse_add_trim(ctx, argv, true) else { return };
    let fields_at = a.id_at + 1;
    let nf = argv.len().saturating_sub(fields_at);
    if nf < 2 || nf % 2 == 1 {
        ctx.out.error("ERR wrong number of arguments for 'xadd' command");
        return;
    }
    if let Some((id, true)) = a.id {
        if id == StreamId::MIN {
            ctx.out.error("ERR The ID specified in XADD must be greater than 0-0");
            return;
        }
    }
    let key = argv[1];
    let limits = node_limits(ctx);
    let now = ctx.now.max(0) as u64;
    match stream_mut(ctx, key, false) {
        Err(()) => return,
        Ok(None) if a.nomkstream => return ctx.out.null(),
        Ok(None) => ctx.store(key, Value::Stream(Box::default()), 0),
        Ok(Some(_)) => {}
    }
    let Ok(Some(s)) = stream_mut(ctx, key, false) else { return };
    if s.last_id == StreamId::MAX {
        ctx.out.error("ERR The stream has exhausted the last possible ID, unable to add more items");
        return;
    }
    let id = match a.id {
        Some((id, true)) => Some(id),
        Some((id, false)) if id.ms == s.last_id.ms => (s.last_id.seq < u64::MAX).then(|| StreamId::new(id.ms, s.last_id.seq + 1)),
        Some((id, false)) => Some(id),
        None if now > s.last_id.ms => Some(StreamId::new(now, 0)),
        None => s.last_id.next(),
    };
    let id = match id {
        Some(id) if id > s.last_id => id,
        _ => {
            ctx.out.error("ERR The ID specified in XADD is equal or smaller than the target stream top item");
            return;
        }
    };
    let fields: Vec<(&[u8], &[u8])> = argv[fields_at..].chunks(2).map(|c| (c[0], c[1])).collect();
    s.add(id, &fields, limits);
    let mut removed = 0;
    if let Some(t) = a.trim {
        removed = s.trim(t, a.approx, a.limit);
    }
    let rewritten = (a.trim.is_some() && a.approx).then(|| rewritten_trim(argv, &a, s));
    ctx.out.bulk(&id.to_bytes());
    ctx.set_changes(1);
    let db = ctx.db();
    ctx.notify(EV, "xadd", db, key);
    if removed > 0 {
        ctx.notify(EV, "xtrim", db, key);
    }
    // Propagate the ID generated and the trim done.
    let mut out: Vec<Vec<u8>> = rewritten.unwrap_or_else(|| argv.iter().map(|x| x.to_vec()).collect());
    out[a.id_at] = id.to_bytes();
    let refs: Vec<&[u8]> = out.iter().map(|x| x.as_slice()).collect();
    ctx.propagate(&refs);
    if ctx.st.blocking.any() {
        ctx.ready.push((db, key.to_vec()));
    }
}

fn xtrim(ctx: &mut Ctx, argv: &[&[u8]]) {
    let key = argv[1];
    match stream_mut(ctx, key, false) {
        Err(()) => return,
        Ok(None) => return ctx.out.int(0),
        Ok(Some(_)) => {}
    }
    let Some(a) = parse_add_trim(ctx, argv, false) else { return };
    if a.id_at < argv.len() {
        // Arguments after the trim options.
        ctx.out.error(SYNTAX);
        return;
    }
    let Ok(Some(s)) = stream_mut(ctx, key, false) else { return };
    let removed = s.trim(a.trim.expect("a strategy"), a.approx, a.limit);
    let rewritten = a.approx.then(|| rewritten_trim(argv, &a, s));
    ctx.out.int(removed as i64);
    if removed > 0 {
        ctx.touched();
        let db = ctx.db();
        ctx.notify(EV, "xtrim", db, key);
        if let Some(out) = rewritten {
            let refs: Vec<&[u8]> = out.iter().map(|x| x.as_slice()).collect();
            ctx.propagate(&refs);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// XRANGE, XREVRANGE, XLEN, XDEL, XSETID

fn range_generic(ctx: &mut Ctx, argv: &[&[u8]], rev: bool) {
    let (sa, ea) = if rev { (argv[3], argv[2]) } else { (argv[2], argv[3]) };
    let Some(start) = interval_id(ctx, sa, 0, true) else { return };
    let Some(end) = interval_id(ctx, ea, u64::MAX, false) else { return };
    let mut count: i64 = -1;
    let mut j = 4;
    while j < argv.len() {
        if eq(argv[j], "count") && j + 1 < argv.len() {
            let Some(n) = arg_ll(ctx, argv[j + 1]) else { return };
            count = n.max(0);
            j += 2;
        } else {
            return ctx.out.error(SYNTAX);
        }
    }
    let s = match stream_mut(ctx, argv[1], true) {
        Err(()) => return,
        Ok(None) => return ctx.out.array(0),
        Ok(Some(s)) => s,
    };
    if count == 0 {
        return ctx.out.null_array();
    }
    let entries = s.range(start, end, rev, count.max(0) as usize);
    reply_entries(ctx, &entries);
}

fn xrange(ctx: &mut Ctx, argv: &[&[u8]]) {
    range_generic(ctx, argv, false)
}
fn xrevrange(ctx: &mut Ctx, argv: &[&[u8]]) {
    range_generic(ctx, argv, true)
}

fn xlen(ctx: &mut Ctx, argv: &[&[u8]]) {
    match stream_mut(ctx, argv[1], true) {
        Err(()) => {}
        Ok(None) => ctx.out.int(0),
        Ok(Some(s)) => {
            let n = s.len() as i64;
            ctx.out.int(n)
        }
    }
}

fn xdel(ctx: &mut Ctx, argv: &[&[u8]]) {
    match stream_mut(ctx, argv[1], false) {
        Err(()) => return,
        Ok(None) => return ctx.out.int(0),
        Ok(Some(_)) => {}
    }
    let mut ids = Vec::with_capacity(argv.len() - 2);
    for a in &argv[2..] {
        let Some(id) = strict_id(ctx, a) else { return };
        ids.push(id);
    }
    let key = argv[1];
    let s = match stream_mut(ctx, key, false) {
        Err(()) => return,
        Ok(None) => return ctx.out.int(0),
        Ok(Some(s)) => s,
    };
    let n = ids.iter().filter(|id| s.delete(**id)).count();
    ctx.out.int(n as i64);
    if n > 0 {
        for _ in 0..n {
            ctx.touched();
        }
        let db = ctx.db();
        ctx.notify(EV, "xdel", db, key);
    }
}

fn xsetid(ctx: &mut Ctx, argv: &[&[u8]]) {
    let Some(id) = strict_id(ctx, argv[2]) else { return };
    let mut added: i64 = -1;
    let mut maxdel = StreamId::MIN;
    let mut i = 3;
    while i < argv.len() {
        let more = argv.len() - 1 - i;
        if eq(argv[i], "entriesadded") && more > 0 {
            let Some(n) = arg_ll(ctx, argv[i + 1]) else { return };
            if n < 0 {
                return ctx.out.error("ERR entries_added must be positive");
            }
            added = n;
            i += 2;
        } else if eq(argv[i], "maxdeletedid") && more > 0 {
            let Some(m) = strict_id(ctx, argv[i + 1]) else { return };
            if id < m {
                return ctx.out.error("ERR The ID specified in XSETID is smaller than the provided max_deleted_entry_id");
            }
            maxdel = m;
            i += 2;
        } else {
            return ctx.out.error(SYNTAX);
        }
    }
    let key = argv[1];
    let s = match stream_mut(ctx, key, false) {
        Err(()) => return,
        Ok(None) => return ctx.out.error("ERR no such key"),
        Ok(Some(s)) => s,
    };
    if s.length > 0 {
        if id < s.edge(true).unwrap_or(StreamId::MIN) {
            return ctx.out.error("ERR The ID specified in XSETID is smaller than the target stream top item");
        }
        if added != -1 && s.length > added as u64 {
            return ctx.out.error("ERR The entries_added specified in XSETID is smaller than the target stream length");
        }
    }
    s.last_id = id;
    if added != -1 {
        s.entries_added = added as u64;
    }
    if maxdel != StreamId::MIN {
        s.max_deleted = maxdel;
    }
    ctx.out.ok();
    ctx.touched();
    let db = ctx.db();
    ctx.notify(EV, "xsetid", db, key);
}

// ---------------------------------------------------------------------------------------------
// XREAD, XREADGROUP

/// A parsed XREAD / XREADGROUP.
struct ReadArgs<'a> {
    count: usize,
    block: Option<i64>,
    group: Option<(&'a [u8], &'a [u8])>,
    noack: bool,
    keys: Vec<&'a [u8]>,
    ids: Vec<&'a [u8]>,
}

fn parse_read<'a>(ctx: &mut Ctx, argv: &[&'a [u8]], group_cmd: bool) -> Option<ReadArgs<'a>> {
    let name = if group_cmd { "xreadgroup" } else { "xread" };
    let mut r = ReadArgs { count: 0, block: None, group: None, noack: false, keys: Vec::new(), ids: Vec::new() };
    let mut streams_at = 0;
    let mut i = 1;
    while i < argv.len() {
        let more = argv.len() - i - 1;
        let o = argv[i];
        if eq(o, "block") && more > 0 {
            if ctx.conn.in_script {
                ctx.out.error(&format!("ERR {} command is not allowed with BLOCK option from scripts", name));
                return None;
            }
            i += 1;
            r.block = Some(block_ms(ctx, argv[i])?);
        } else if eq(o, "count") && more > 0 {
            i += 1;
            let n = arg_ll(ctx, argv[i])?;
            r.count = n.max(0) as usize;
        } else if eq(o, "streams") && more > 0 {
            streams_at = i + 1;
            let n = argv.len() - streams_at;
            if !n.is_multiple_of(2) {
                ctx.out.error(&format!(
                    "ERR Unbalanced {} list of streams: for each stream key an ID or '$' must be specified.",
                    name.to_ascii_uppercase()
                ));
                return None;
            }
            r.keys = argv[streams_at..streams_at + n / 2].to_vec();
            r.ids = argv[streams_at + n / 2..].to_vec();
            break;
        } else if eq(o, "group") && more >= 2 {
            if !group_cmd {
                ctx.out.error("ERR The GROUP option is only supported by XREADGROUP. You called XREAD instead.");
                return None;
            }
            r.group = Some((argv[i + 1], argv[i + 2]));
            i += 2;
        } else if eq(o, "noack") {
            if !group_cmd {
                ctx.out.error("ERR The NOACK option is only supported by XREADGROUP. You called XREAD instead.");
                return None;
            }
            r.noack = true;
        } else {
            ctx.out.error(SYNTAX);
            return None;
        }
        i += 1;
    }
    if streams_at == 0 {
        ctx.out.error(SYNTAX);
        return None;
    }
    if group_cmd && r.group.is_none() {
        ctx.out.error("ERR Missing GROUP option for XREADGROUP");
        return None;
    }
    Some(r)
}

/// BLOCK's milliseconds as Redis's getTimeoutFromObjectOrReply with UNIT_MILLISECONDS: an
/// integer, not negative.
fn block_ms(ctx: &mut Ctx, a: &[u8]) -> Option<i64> {
    match parse_i64(a) {
        None => {
            ctx.out.error("ERR timeout is not an integer or out of range");
            None
        }
        Some(n) if n < 0 => {
            ctx.out.error("ERR timeout is negative");
            None
        }
        Some(n) => Some(n),
    }
}

fn xread(ctx: &mut Ctx, argv: &[&[u8]]) {
    read_generic(ctx, argv, false)
}
fn xreadgroup(ctx: &mut Ctx, argv: &[&[u8]]) {
    read_generic(ctx, argv, true)
}

fn read_generic(ctx: &mut Ctx, argv: &[&[u8]], group_cmd: bool) {
    let Some(r) = parse_read(ctx, argv, group_cmd) else { return };
    let mut from = Vec::with_capacity(r.keys.len());
    for (k, ida) in r.keys.iter().zip(&r.ids) {
        let s = match stream_mut(ctx, k, true) {
            Err(()) => return,
            Ok(s) => s,
        };
        if let Some((g, _)) = r.group {
            if s.as_ref().is_none_or(|s| !s.groups.contains_key(g)) {
                ctx.out.error(&format!(
                    "NOGROUP No such key '{}' or consumer group '{}' in XREADGROUP with GROUP option",
                    String::from_utf8_lossy(k),
                    String::from_utf8_lossy(g)
                ));
                return;
            }
        }
        let last = s.map(|s| s.last_id).unwrap_or(StreamId::MIN);
        if *ida == b"$" {
            if group_cmd {
                ctx.out.error("ERR The $ ID is meaningless in the context of XREADGROUP: you want to read the history of this consumer by specifying a proper ID, or use the > ID to get new messages. The $ ID would just return an empty result set.");
                return;
            }
            from.push(ReadFrom::After(last));
        } else if *ida == b">" {
            if !group_cmd {
                ctx.out.error("ERR The > ID can be specified only when calling XREADGROUP using the GROUP <group> <consumer> option.");
                return;
            }
            from.push(ReadFrom::New);
        } else {
            let Some(id) = strict_id(ctx, ida) else { return };
            from.push(if group_cmd { ReadFrom::History(id) } else { ReadFrom::After(id) });
        }
    }
    let group = r.group.map(|(g, c)| (g.to_vec(), c.to_vec()));
    let mut served = 0;
    let mut out = resp::ReplyBuf::new(if ctx.out.resp3() { resp::Proto::Resp3 } else { resp::Proto::Resp2 });
    std::mem::swap(ctx.out, &mut out);
    for (k, f) in r.keys.iter().zip(&from) {
        if read_one(ctx, k, f, r.count, group.as_ref(), r.noack) {
            served += 1;
        }
    }
    std::mem::swap(ctx.out, &mut out);
    if served > 0 {
        if ctx.out.resp3() {
            ctx.out.map(served);
        } else {
            ctx.out.array(served);
        }
        ctx.out.raw(&out.buf);
        return;
    }
    if group_cmd {
        ctx.mark_propagated();
    }
    let Some(timeout) = r.block else { return ctx.out.null_array() };
    let keys: Vec<&[u8]> = r.keys.clone();
    let count = if r.count == 0 { 10 } else { r.count };
    ctx.block(&keys, BlockOp::Stream { from, count, group, noack: r.noack }, timeout);
}

/// Serves one key of a read into `ctx.out` as [key, entries] (RESP2) or key => entries (RESP3);
/// false (nothing written) when it has nothing for the reader.
fn read_one(ctx: &mut Ctx, key: &[u8], from: &ReadFrom, count: usize, group: Option<&(Vec<u8>, Vec<u8>)>, noack: bool) -> bool {
    let now = ctx.now;
    let Ok(Some(s)) = stream_mut(ctx, key, true) else { return false };
    let Some((gname, cname)) = group else {
        let ReadFrom::After(after) = from else { return false };
        if s.length == 0 || s.edge(true).is_none_or(|m| m <= *after) {
            return false;
        }
        let Some(start) = after.next() else { return false };
        let entries = s.range(start, StreamId::MAX, false, count);
        if !ctx.out.resp3() {
            ctx.out.array(2);
        }
        ctx.out.bulk(key);
        reply_entries(ctx, &entries);
        return true;
    };
    let Some(g) = s.groups.get(gname) else { return false };
    let history = match from {
        ReadFrom::History(id) => Some(*id),
        ReadFrom::New if s.length > 0 && s.edge(true).is_some_and(|m| m > g.last_id) => None,
        _ => return false,
    };
    let mut effects: Vec<Vec<Vec<u8>>> = Vec::new();
    let g = s.groups.get_mut(gname).expect("the group");
    let created = !g.consumers.contains_key(cname);
    g.consumers.entry(cname.clone()).or_default().seen_time = now;
    if created {
        effects.push(vec![b"XGROUP".to_vec(), b"CREATECONSUMER".to_vec(), key.to_vec(), gname.clone(), cname.clone()]);
    }
    let mut rows: Vec<(StreamId, Option<Fields>)> = Vec::new();
    match history {
        Some(after) => {
            // The history after the ID given (Redis's start is exclusive here too).
            let ids: Vec<StreamId> = match after.next() {
                Some(start) => g.consumers[cname].pel.range(start..).take(if count == 0 { usize::MAX } else { count }).copied().collect(),
                None => Vec::new(),
            };
            let g_last = g.last_id;
            for id in ids {
                let fields = s.get(id);
                let g = s.groups.get_mut(gname).expect("the group");
                if fields.is_some() {
                    if let Some(n) = g.pel.get_mut(&id) {
                        n.delivery_time = now;
                        n.delivery_count += 1;
                        effects.push(xclaim_effect(key, gname, cname, id, n, g_last));
                    }
                }
                rows.push((id, fields));
            }
        }
        None => {
            let start = g.last_id.next().unwrap_or(StreamId::MAX);
            let entries = s.range(start, StreamId::MAX, false, count);
            let mut last_update = None;
            for (id, fields) in entries {
                let read_at = s.entries_read_at(id);
                let tomb = s.has_tombstones_from(id);
                let g = s.groups.get_mut(gname).expect("the group");
                if id > g.last_id {
                    if g.entries_read >= 0 && !tomb {
                        g.entries_read += 1;
                    } else if s.entries_added > 0 {
                        g.entries_read = read_at.map(|v| v as i64).unwrap_or(-1);
                    }
                    g.last_id = id;
                    last_update = Some(id);
                }
                if !noack {
                    if let Some(old) = g.pel.get(&id).map(|n| n.consumer.clone()) {
                        if let Some(c) = g.consumers.get_mut(&old) {
                            c.pel.remove(&id);
                        }
                    }
                    let nack = Nack { delivery_time: now, delivery_count: 1, consumer: cname.clone() };
                    g.consumers.get_mut(cname).expect("the consumer").pel.insert(id);
                    effects.push(xclaim_effect(key, gname, cname, id, &nack, g.last_id));
                    g.pel.insert(id, nack);
                }
                rows.push((id, Some(fields)));
            }
            // The group's new last ID and entries-read, after the XCLAIMs. Redis 7.0 sends this
            // only with NOACK, and its replicas lose the entries-read count (later Redis sends it
            // always, as here).
            if last_update.is_some() {
                let g = &s.groups[gname];
                effects.push(setid_effect(key, gname, g));
            }
        }
    }
    if !ctx.out.resp3() {
        ctx.out.array(2);
    }
    ctx.out.bulk(key);
    ctx.out.array(rows.len());
    for (id, fields) in &rows {
        match fields {
            Some(f) => reply_entry(ctx, *id, f),
            None => {
                ctx.out.array(2);
                ctx.out.bulk(&id.to_bytes());
                ctx.out.null_array();
            }
        }
    }
    if created {
        let db = ctx.db();
        ctx.notify(EV, "xgroup-createconsumer", db, key);
    }
    ctx.touched();
    if effects.is_empty() {
        ctx.mark_propagated();
    }
    for e in effects {
        let refs: Vec<&[u8]> = e.iter().map(|x| x.as_slice()).collect();
        ctx.propagate(&refs);
    }
    true
}

/// XCLAIM key group consumer 0 id TIME ms RETRYCOUNT n FORCE JUSTID LASTID id: how Redis
/// propagates a delivery (streamPropagateXCLAIM).
fn xclaim_effect(key: &[u8], g: &[u8], c: &[u8], id: StreamId, n: &Nack, last: StreamId) -> Vec<Vec<u8>> {
    [
        b"XCLAIM".to_vec(),
        key.to_vec(),
        g.to_vec(),
        c.to_vec(),
        b"0".to_vec(),
        id.to_bytes(),
        b"TIME".to_vec(),
        n.delivery_time.to_string().into_bytes(),
        b"RETRYCOUNT".to_vec(),
        n.delivery_count.to_string().into_bytes(),
        b"FORCE".to_vec(),
        b"JUSTID".to_vec(),
        b"LASTID".to_vec(),
        last.to_bytes(),
    ]
    .to_vec()
}

/// XGROUP SETID key group id ENTRIESREAD n (streamPropagateGroupID).
fn setid_effect(key: &[u8], gname: &[u8], g: &Group) -> Vec<Vec<u8>> {
    [
        b"XGROUP".to_vec(),
        b"SETID".to_vec(),
        key.to_vec(),
        gname.to_vec(),
        g.last_id.to_bytes(),
        b"ENTRIESREAD".to_vec(),
        g.entries_read.to_string().into_bytes(),
    ]
    .to_vec()
}

/// Serves a client blocked by XREAD / XREADGROUP once `key` has news for it.
fn serve_blocked(ctx: &mut Ctx, key: &[u8], w: &Waiter) -> bool {
    let BlockOp::Stream { from, count, group, noack } = &w.op else { return false };
    let Some(i) = w.keys.iter().position(|k| k == key) else { return false };
    let f = &from[i];
    // A stream deleted (or replaced) or a group destroyed under its blocked group readers ends
    // their wait with an error (Redis 7.0).
    if let Some((g, _)) = group {
        let err = match ctx.entry(key, false).0.map(|e| &e.value) {
            Some(Value::Stream(s)) if s.groups.contains_key(g) => None,
            Some(Value::Stream(_)) => Some("NOGROUP the consumer group this client was blocked on no longer exists"),
            _ => Some("UNBLOCKED the stream key no longer exists"),
        };
        if let Some(err) = err {
            if !w.claim() {
                return false;
            }
            ctx.out.error(err);
            return true;
        }
    }
    // Check first (without replying) that there is something for this reader.
    let ready = match stream_mut(ctx, key, false) {
        Ok(Some(s)) => match (group, f) {
            (None, ReadFrom::After(after)) => s.edge(true).is_some_and(|m| m > *after),
            (Some((g, _)), _) => s.groups.get(g).is_some_and(|g| s.edge(true).is_some_and(|m| m > g.last_id)),
            _ => false,
        },
        _ => false,
    };
    if !ready || !w.claim() {
        return false;
    }
    let f = match f {
        ReadFrom::History(_) => ReadFrom::New,
        other => other.clone(),
    };
    if ctx.out.resp3() {
        ctx.out.map(1);
    } else {
        ctx.out.array(1);
    }
    read_one(ctx, key, &f, *count, group.as_ref(), *noack);
    true
}

// ---------------------------------------------------------------------------------------------
// XGROUP

const XGROUP_NOKEY: &str = "ERR The XGROUP subcommand requires the key to exist. Note that for CREATE you may want to use the MKSTREAM option to create an empty stream automatically.";

/// The stream at argv[2] for XGROUP subcommands; Err after replying.
fn group_stream<'a>(ctx: &'a mut Ctx, argv: &[&[u8]]) -> Result<&'a mut Stream, ()> {
    match stream_mut(ctx, argv[2], false) {
        Err(()) => return Err(()),
        Ok(None) => {
            ctx.out.error(XGROUP_NOKEY);
            return Err(());
        }
        Ok(Some(_)) => {}
    }
    match stream_mut(ctx, argv[2], false) {
        Ok(Some(s)) => Ok(s),
        _ => Err(()),
    }
}

fn nogroup(ctx: &mut Ctx, key: &[u8], g: &[u8]) {
    ctx.out.error(&format!(
        "NOGROUP No such consumer group '{}' for key name '{}'",
        String::from_utf8_lossy(g),
        String::from_utf8_lossy(key)
    ));
}

/// `ENTRIESREAD n` after the ID (CREATE, SETID); -1 when absent.
fn entries_read_arg(ctx: &mut Ctx, argv: &[&[u8]], at: usize, mkstream: &mut Option<bool>) -> Option<i64> {
    let mut read = -1;
    let mut i = at;
    while i < argv.len() {
        if mkstream.is_some() && eq(argv[i], "mkstream") {
            *mkstream = Some(true);
            i += 1;
        } else if eq(argv[i], "entriesread") && i + 1 < argv.len() {
            let n = arg_ll(ctx, argv[i + 1])?;
            if n < 0 && n != -1 {
                ctx.out.error("ERR value for ENTRIESREAD must be positive or -1");
                return None;
            }
            read = n;
            i += 2;
        } else {
            let sub = if mkstream.is_some() { "CREATE" } else { "SETID" };
            ctx.out.error(&format!("ERR unknown subcommand or wrong number of arguments for '{}'. Try XGROUP HELP.", sub));
            return None;
        }
    }
    Some(read)
}

/// XGROUP CREATE / SETID take any ID, "-" and "+" too (Redis's streamParseIDOrReply).
fn group_id(ctx: &mut Ctx, a: &[u8]) -> Option<StreamId> {
    match parse_id_raw(a, 0, false, false) {
        Some((id, _)) => Some(id),
        None => {
            ctx.out.error(INVALID_ID);
            None
        }
    }
}

fn xgroup_create(ctx: &mut Ctx, argv: &[&[u8]]) {
    let mut mk = Some(false);
    let Some(read) = entries_read_arg(ctx, argv, 5, &mut mk) else { return };
    let (key, gname) = (argv[2], argv[3]);
    let idarg = argv[4];
    let id = if idarg == b"$" {
        None
    } else {
        let Some(id) = group_id(ctx, idarg) else { return };
        Some(id)
    };
    match stream_mut(ctx, key, false) {
        Err(()) => return,
        Ok(None) if mk == Some(true) => ctx.store(key, Value::Stream(Box::default()), 0),
        Ok(None) => {
            return ctx.out.error("ERR The XGROUP subcommand requires the key to exist. Note that for CREATE you may want to use the MKSTREAM option to create an empty stream automatically.");
        }
        Ok(Some(_)) => {}
    }
    let Ok(Some(s)) = stream_mut(ctx, key, false) else { return };
    let id = id.unwrap_or(s.last_id);
    if s.groups.contains_key(gname) {
        return ctx.out.error("BUSYGROUP Consumer Group name already exists");
    }
    s.groups.insert(gname.to_vec(), Group::new(id, read));
    ctx.out.ok();
    ctx.touched();
    let db = ctx.db();
    ctx.notify(EV, "xgroup-create", db, key);
    // Propagated as written, as Redis does ("$" names the same ID on a replica in sync).
}

fn xgroup_setid(ctx: &mut Ctx, argv: &[&[u8]]) {
    let mut mk = None;
    let Some(read) = entries_read_arg(ctx, argv, 5, &mut mk) else { return };
    let (key, gname, idarg) = (argv[2], argv[3], argv[4]);
    let given = if idarg == b"$" {
        None
    } else {
        let Some(id) = group_id(ctx, idarg) else { return };
        Some(id)
    };
    let Ok(s) = group_stream(ctx, argv) else { return };
    let id = given.unwrap_or(s.last_id);
    let Some(g) = s.groups.get_mut(gname) else { return nogroup(ctx, key, gname) };
    g.last_id = id;
    g.entries_read = read;
    let e = setid_effect(key, gname, g);
    ctx.out.ok();
    ctx.touched();
    let db = ctx.db();
    ctx.notify(EV, "xgroup-setid", db, key);
    let refs: Vec<&[u8]> = e.iter().map(|x| x.as_slice()).collect();
    ctx.propagate(&refs);
}

fn xgroup_destroy(ctx: &mut Ctx, argv: &[&[u8]]) {
    let (key, gname) = (argv[2], argv[3]);
    let Ok(s) = group_stream(ctx, argv) else { return };
    let gone = s.groups.remove(gname).is_some();
    ctx.out.int(gone as i64);
    if gone {
        ctx.touched();
        let db = ctx.db();
        ctx.notify(EV, "xgroup-destroy", db, key);
        // Clients blocked on this group learn that it is gone.
        if ctx.st.blocking.any() {
            ctx.ready.push((db, key.to_vec()));
        }
    }
}

fn xgroup_createconsumer(ctx: &mut Ctx, argv: &[&[u8]]) {
    let (key, gname, cname) = (argv[2], argv[3], argv[4]);
    let now = ctx.now;
    let Ok(s) = group_stream(ctx, argv) else { return };
    let Some(g) = s.groups.get_mut(gname) else { return nogroup(ctx, key, gname) };
    let created = !g.consumers.contains_key(cname);
    if created {
        g.consumers.insert(cname.to_vec(), Consumer { seen_time: now, pel: Default::default() });
    }
    ctx.out.int(created as i64);
    if created {
        ctx.touched();
        let db = ctx.db();
        ctx.notify(EV, "xgroup-createconsumer", db, key);
    }
}

fn xgroup_delconsumer(ctx: &mut Ctx, argv: &[&[u8]]) {
    let (key, gname, cname) = (argv[2], argv[3], argv[4]);
    let Ok(s) = group_stream(ctx, argv) else { return };
    let Some(g) = s.groups.get_mut(gname) else { return nogroup(ctx, key, gname) };
    let pending = match g.consumers.remove(cname) {
        None => return ctx.out.int(0),
        Some(c) => {
            for id in &c.pel {
                g.pel.remove(id);
            }
            c.pel.len()
        }
    };
    ctx.out.int(pending as i64);
    ctx.touched();
    let db = ctx.db();
    ctx.notify(EV, "xgroup-delconsumer", db, key);
}

fn xgroup_help(ctx: &mut Ctx, _argv: &[&[u8]]) {
    super::reply_help(
        ctx,
        &[
            "XGROUP <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "CREATE <key> <groupname> <id|$> [option]",
            "    Create a new consumer group. Options are:",
            "    * MKSTREAM",
            "      Create the empty stream if it does not exist.",
            "    * ENTRIESREAD entries_read",
            "      Set the group's entries_read counter (internal use).",
            "CREATECONSUMER <key> <groupname> <consumer>",
            "    Create a new consumer in the specified group.",
            "DELCONSUMER <key> <groupname> <consumer>",
            "    Remove the specified consumer.",
            "DESTROY <key> <groupname>",
            "    Remove the specified group.",
            "SETID <key> <groupname> <id|$> [ENTRIESREAD entries_read]",
            "    Set the current group ID and entries_read counter.",
            "HELP",
            "    Prints this help.",
        ],
    )
}

// ---------------------------------------------------------------------------------------------
// XACK, XPENDING, XCLAIM, XAUTOCLAIM

fn xack(ctx: &mut Ctx, argv: &[&[u8]]) {
    // One lookup. No key or no group: nothing to acknowledge, whatever the IDs; else the IDs
    // must all parse before any is acknowledged.
    let mut ids: smallvec::SmallVec<[StreamId; 4]> = smallvec::SmallVec::new();
    let mut bad = false;
    for a in &argv[3..] {
        match parse_id_raw(a, 0, true, false) {
            Some((id, _)) => ids.push(id),
            None => bad = true,
        }
    }
    let acked = match stream_mut(ctx, argv[1], false) {
        Err(()) => return,
        Ok(None) => Some(0),
        Ok(Some(s)) => match s.groups.get_mut(argv[2]) {
            None => Some(0),
            Some(_) if bad => None,
            Some(g) => {
                let mut n = 0;
                for id in &ids {
                    if let Some(nack) = g.pel.remove(id) {
                        if let Some(c) = g.consumers.get_mut(&nack.consumer) {
                            c.pel.remove(id);
                        }
                        n += 1;
                    }
                }
                Some(n)
            }
        },
    };
    let Some(n) = acked else { return ctx.out.error(INVALID_ID) };
    ctx.out.int(n);
    for _ in 0..n {
        ctx.touched();
    }
}

fn xpending(ctx: &mut Ctx, argv: &[&[u8]]) {
    let (key, gname) = (argv[1], argv[2]);
    let justinfo = argv.len() == 3;
    if argv.len() != 3 && (argv.len() < 6 || argv.len() > 9) {
        return ctx.out.error(SYNTAX);
    }
    let mut min_idle: i64 = 0;
    let mut at = 3;
    if argv.len() >= 6 && eq(argv[3], "idle") {
        let Some(n) = arg_ll(ctx, argv[4]) else { return };
        min_idle = n.max(0);
        at = 5;
        if argv.len() < 8 {
            return ctx.out.error(SYNTAX);
        }
    }
    let (mut start, mut end, mut count, mut consumer) = (StreamId::MIN, StreamId::MAX, 0i64, None);
    if !justinfo {
        let Some(s) = interval_id(ctx, argv[at], 0, true) else { return };
        let Some(e) = interval_id(ctx, argv[at + 1], u64::MAX, false) else { return };
        let Some(c) = arg_ll(ctx, argv[at + 2]) else { return };
        start = s;
        end = e;
        count = c.max(0);
        if argv.len() > at + 3 {
            consumer = Some(argv[at + 3]);
        }
        if argv.len() > at + 4 {
            return ctx.out.error(SYNTAX);
        }
    }
    let now = ctx.now;
    // What the reply needs, read while the key is borrowed (not a copy of the group).
    enum Pending {
        Summary(usize, Option<(StreamId, StreamId)>, Vec<(Vec<u8>, usize)>),
        Rows(Vec<(StreamId, Vec<u8>, i64, u64)>),
    }
    let reply = {
        let s = match stream_mut(ctx, key, true) {
            Err(()) => return,
            Ok(s) => s,
        };
        let Some(g) = s.and_then(|s| s.groups.get(gname)) else {
            return nogroup_claim(ctx, key, gname);
        };
        if justinfo {
            let edges = g.pel.keys().next().zip(g.pel.keys().next_back()).map(|(a, b)| (*a, *b));
            let per = g.consumers.iter().filter(|(_, c)| !c.pel.is_empty()).map(|(n, c)| (n.clone(), c.pel.len())).collect();
            Pending::Summary(g.pel.len(), edges, per)
        } else {
            let mut rows = Vec::new();
            if start <= end && count > 0 {
                let ids: Box<dyn Iterator<Item = &StreamId>> = match consumer {
                    Some(c) => match g.consumers.get(c) {
                        Some(c) => Box::new(c.pel.range(start..=end)),
                        None => Box::new(std::iter::empty()),
                    },
                    None => Box::new(g.pel.range(start..=end).map(|(id, _)| id)),
                };
                for id in ids {
                    if rows.len() as i64 >= count {
                        break;
                    }
                    let n = &g.pel[id];
                    let idle = (now - n.delivery_time).max(0);
                    if min_idle > 0 && idle < min_idle {
                        continue;
                    }
                    rows.push((*id, n.consumer.clone(), idle, n.delivery_count));
                }
            }
            Pending::Rows(rows)
        }
    };
    match reply {
        Pending::Summary(n, edges, per) => {
            ctx.out.array(4);
            ctx.out.int(n as i64);
            let Some((first, last)) = edges else {
                ctx.out.null();
                ctx.out.null();
                ctx.out.null_array();
                return;
            };
            ctx.out.bulk(&first.to_bytes());
            ctx.out.bulk(&last.to_bytes());
            ctx.out.array(per.len());
            for (name, n) in per {
                ctx.out.array(2);
                ctx.out.bulk(&name);
                ctx.out.bulk(n.to_string().as_bytes());
            }
        }
        Pending::Rows(rows) => {
            ctx.out.array(rows.len());
            for (id, c, idle, count) in rows {
                ctx.out.array(4);
                ctx.out.bulk(&id.to_bytes());
                ctx.out.bulk(&c);
                ctx.out.int(idle);
                ctx.out.int(count as i64);
            }
        }
    }
}

fn min_idle_arg(ctx: &mut Ctx, a: &[u8], cmd: &str) -> Option<i64> {
    match parse_i64(a) {
        Some(n) => Some(n),
        None => {
            ctx.out.error(&format!("ERR Invalid min-idle-time argument for {}", cmd));
            None
        }
    }
}

/// Drops a pending entry (its entry was deleted from the stream) from the group and from its
/// consumer.
fn drop_pending(g: &mut Group, id: StreamId) {
    if let Some(n) = g.pel.remove(&id) {
        if let Some(c) = g.consumers.get_mut(&n.consumer) {
            c.pel.remove(&id);
        }
    }
}

/// Hands a pending entry to `cname` (created if new: returns true then): moved between the
/// consumers' lists, delivered at `time`, its delivery count set to `count` or, unless JUSTID,
/// counted up. Returns the entry's new state too.
fn claim_pending(g: &mut Group, id: StreamId, cname: &[u8], now: i64, time: i64, count: Option<u64>, justid: bool) -> (bool, Nack) {
    let old = g.pel.get(&id).map(|n| n.consumer.clone()).unwrap_or_default();
    if old != cname {
        if let Some(c) = g.consumers.get_mut(&old) {
            c.pel.remove(&id);
        }
    }
    let created = !g.consumers.contains_key(cname);
    let c = g.consumers.entry(cname.to_vec()).or_default();
    c.pel.insert(id);
    c.seen_time = now;
    let n = g.pel.get_mut(&id).expect("pending");
    n.consumer = cname.to_vec();
    n.delivery_time = time;
    match count {
        Some(c) => n.delivery_count = c,
        None if !justid => n.delivery_count += 1,
        None => {}
    }
    (created, n.clone())
}

/// XCLAIM / XAUTOCLAIM's first check: the key's type, then the group (Redis's NOGROUP).
fn claim_group_exists(ctx: &mut Ctx, key: &[u8], gname: &[u8]) -> Option<bool> {
    match stream_mut(ctx, key, false) {
        Err(()) => None,
        Ok(s) => Some(s.is_some_and(|s| s.groups.contains_key(gname))),
    }
}

fn nogroup_claim(ctx: &mut Ctx, key: &[u8], gname: &[u8]) {
    ctx.out.error(&format!(
        "NOGROUP No such key '{}' or consumer group '{}'",
        String::from_utf8_lossy(key),
        String::from_utf8_lossy(gname)
    ));
}

fn xclaim(ctx: &mut Ctx, argv: &[&[u8]]) {
    let (key, gname, cname) = (argv[1], argv[2], argv[3]);
    match claim_group_exists(ctx, key, gname) {
        None => return,
        Some(false) => return nogroup_claim(ctx, key, gname),
        Some(true) => {}
    }
    let Some(min_idle) = min_idle_arg(ctx, argv[4], "XCLAIM") else { return };
    let min_idle = min_idle.max(0);
    let now = ctx.now;
    // The IDs run until the first argument that is not one.
    let mut ids = Vec::new();
    let mut j = 5;
    while j < argv.len() {
        match parse_id_raw(argv[j], 0, true, false) {
            Some((id, _)) => ids.push(id),
            None => break,
        }
        j += 1;
    }
    let last_id_arg = j;
    let (mut deliverytime, mut retrycount, mut force, mut justid, mut lastid) = (-1i64, -1i64, false, false, StreamId::MIN);
    while j < argv.len() {
        let more = argv.len() - 1 - j;
        let o = argv[j];
        if eq(o, "force") {
            force = true;
        } else if eq(o, "justid") {
            justid = true;
        } else if eq(o, "idle") && more > 0 {
            j += 1;
            let Some(n) = arg_ll(ctx, argv[j]) else { return };
            deliverytime = now - n;
        } else if eq(o, "time") && more > 0 {
            j += 1;
            let Some(n) = arg_ll(ctx, argv[j]) else { return };
            deliverytime = n;
        } else if eq(o, "retrycount") && more > 0 {
            j += 1;
            let Some(n) = arg_ll(ctx, argv[j]) else { return };
            retrycount = n;
        } else if eq(o, "lastid") && more > 0 {
            j += 1;
            let Some(id) = strict_id(ctx, argv[j]) else { return };
            lastid = id;
        } else {
            return ctx.out.error(&format!("ERR Unrecognized XCLAIM option '{}'", String::from_utf8_lossy(o)));
        }
        j += 1;
    }
    if deliverytime != -1 {
        deliverytime = deliverytime.clamp(0, now.max(0));
    } else {
        deliverytime = now;
    }
    let _ = last_id_arg;
    let s = match stream_mut(ctx, key, false) {
        Err(()) => return,
        Ok(s) => s,
    };
    let Some(s) = s.filter(|s| s.groups.contains_key(gname)) else {
        return nogroup_claim(ctx, key, gname);
    };
    let mut effects: Vec<Vec<Vec<u8>>> = Vec::new();
    let mut rows: Vec<(StreamId, Option<Fields>)> = Vec::new();
    {
        let g = s.groups.get_mut(gname).expect("the group");
        if lastid > g.last_id {
            g.last_id = lastid;
        }
    }
    let mut created = false;
    for id in ids {
        let exists = s.get(id);
        let g = s.groups.get_mut(gname).expect("the group");
        if !g.consumers.contains_key(cname) {
            // Created on its first claim (below) like Redis's lookup with create.
        }
        let mut nack_exists = g.pel.contains_key(&id);
        if force && !nack_exists && exists.is_some() {
            g.pel.insert(id, Nack { delivery_time: now, delivery_count: 1, consumer: cname.to_vec() });
            if !g.consumers.contains_key(cname) {
                created = true;
            }
            g.consumers.entry(cname.to_vec()).or_default().pel.insert(id);
            nack_exists = true;
        }
        if !nack_exists {
            continue;
        }
        if exists.is_none() {
            // Deleted from the stream: drop it from the PEL (Redis 7.0).
            drop_pending(g, id);
            effects.push(vec![b"XACK".to_vec(), key.to_vec(), gname.to_vec(), id.to_bytes()]);
            continue;
        }
        if min_idle > 0 && now - g.pel[&id].delivery_time < min_idle {
            continue;
        }
        let (new, n) = claim_pending(g, id, cname, now, deliverytime, (retrycount >= 0).then_some(retrycount as u64), justid);
        created |= new;
        let last = g.last_id;
        rows.push((id, if justid { None } else { exists }));
        effects.push(xclaim_effect(key, gname, cname, id, &n, last));
    }
    if created {
        effects.insert(0, vec![b"XGROUP".to_vec(), b"CREATECONSUMER".to_vec(), key.to_vec(), gname.to_vec(), cname.to_vec()]);
        let db = ctx.db();
        ctx.notify(EV, "xgroup-createconsumer", db, key);
    }
    ctx.out.array(rows.len());
    for (id, f) in &rows {
        match f {
            Some(f) => reply_entry(ctx, *id, f),
            None => ctx.out.bulk(&id.to_bytes()),
        }
    }
    if !effects.is_empty() {
        ctx.touched();
        for e in effects {
            let refs: Vec<&[u8]> = e.iter().map(|x| x.as_slice()).collect();
            ctx.propagate(&refs);
        }
    }
}

fn xautoclaim(ctx: &mut Ctx, argv: &[&[u8]]) {
    let (key, gname, cname) = (argv[1], argv[2], argv[3]);
    let Some(min_idle) = min_idle_arg(ctx, argv[4], "XAUTOCLAIM") else { return };
    let min_idle = min_idle.max(0);
    let Some(start) = interval_id(ctx, argv[5], 0, true) else { return };
    let (mut count, mut justid) = (100i64, false);
    let mut j = 6;
    while j < argv.len() {
        let more = argv.len() - 1 - j;
        if eq(argv[j], "count") && more > 0 {
            let Some(n) = parse_i64(argv[j + 1]).filter(|n| (1..=i64::MAX / 10).contains(n)) else {
                return ctx.out.error("ERR COUNT must be > 0");
            };
            count = n;
            j += 2;
        } else if eq(argv[j], "justid") {
            justid = true;
            j += 1;
        } else {
            return ctx.out.error(SYNTAX);
        }
    }
    let now = ctx.now;
    let s = match stream_mut(ctx, key, false) {
        Err(()) => return,
        Ok(s) => s,
    };
    let Some(s) = s.filter(|s| s.groups.contains_key(gname)) else {
        return nogroup_claim(ctx, key, gname);
    };
    let mut attempts = count * 10;
    // Claimed and deleted entries both use up COUNT (Redis's XAUTOCLAIM).
    let mut budget = count;
    let mut rows: Vec<(StreamId, Option<Fields>)> = Vec::new();
    let mut deleted: Vec<StreamId> = Vec::new();
    let mut effects: Vec<Vec<Vec<u8>>> = Vec::new();
    let pending: Vec<StreamId> = s.groups[gname].pel.range(start..).map(|(id, _)| *id).collect();
    let mut next = StreamId::MIN;
    let mut created = false;
    let mut it = pending.into_iter();
    for id in it.by_ref() {
        if attempts == 0 || budget == 0 {
            next = id;
            break;
        }
        attempts -= 1;
        let exists = s.get(id);
        let g = s.groups.get_mut(gname).expect("the group");
        if exists.is_none() {
            drop_pending(g, id);
            deleted.push(id);
            budget -= 1;
            effects.push(vec![b"XACK".to_vec(), key.to_vec(), gname.to_vec(), id.to_bytes()]);
            continue;
        }
        if min_idle > 0 && now - g.pel[&id].delivery_time < min_idle {
            continue;
        }
        budget -= 1;
        let (new, n) = claim_pending(g, id, cname, now, now, None, justid);
        created |= new;
        let last = g.last_id;
        effects.push(xclaim_effect(key, gname, cname, id, &n, last));
        rows.push((id, if justid { None } else { exists }));
    }
    if created {
        effects.insert(0, vec![b"XGROUP".to_vec(), b"CREATECONSUMER".to_vec(), key.to_vec(), gname.to_vec(), cname.to_vec()]);
        let db = ctx.db();
        ctx.notify(EV, "xgroup-createconsumer", db, key);
    }
    ctx.out.array(3);
    ctx.out.bulk(&next.to_bytes());
    ctx.out.array(rows.len());
    for (id, f) in &rows {
        match f {
            Some(f) => reply_entry(ctx, *id, f),
            None => ctx.out.bulk(&id.to_bytes()),
        }
    }
    ctx.out.array(deleted.len());
    for id in &deleted {
        ctx.out.bulk(&id.to_bytes());
    }
    if !effects.is_empty() {
        ctx.touched();
        for e in effects {
            let refs: Vec<&[u8]> = e.iter().map(|x| x.as_slice()).collect();
            ctx.propagate(&refs);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// XINFO

fn xinfo_stream(ctx: &mut Ctx, argv: &[&[u8]]) {
    let mut full = false;
    let mut count: i64 = 10;
    const BAD: &str = "ERR unknown subcommand or wrong number of arguments for 'STREAM'. Try XINFO HELP.";
    if argv.len() > 3 {
        if !eq(argv[3], "full") {
            return ctx.out.error(BAD);
        }
        full = true;
        if argv.len() == 6 && eq(argv[4], "count") {
            let Some(n) = arg_ll(ctx, argv[5]) else { return };
            count = n.max(0);
        } else if argv.len() != 4 {
            return ctx.out.error(BAD);
        }
    }
    let Some((s, out)) = info_stream(ctx, argv[2]) else { return };
    let recorded_first = s.first_id;
    let base = |out: &mut resp::ReplyBuf, n: usize| {
        out.map(n);
        out.bulk(b"length");
        out.int(s.length as i64);
        out.bulk(b"radix-tree-keys");
        out.int(s.node_count() as i64);
        out.bulk(b"radix-tree-nodes");
        out.int(radix_nodes(s.node_count()) as i64);
        out.bulk(b"last-generated-id");
        out.bulk(&s.last_id.to_bytes());
        out.bulk(b"max-deleted-entry-id");
        out.bulk(&s.max_deleted.to_bytes());
        out.bulk(b"entries-added");
        out.int(s.entries_added as i64);
        out.bulk(b"recorded-first-entry-id");
        out.bulk(&recorded_first.to_bytes());
    };
    if !full {
        base(out, 10);
        out.bulk(b"groups");
        out.int(s.groups.len() as i64);
        for last in [false, true] {
            out.bulk(if last { b"last-entry" } else { b"first-entry" });
            match s.range(StreamId::MIN, StreamId::MAX, last, 1).first() {
                Some((id, f)) => put_entry(out, *id, f),
                None => out.null(),
            }
        }
        return;
    }
    base(out, 9);
    out.bulk(b"entries");
    let entries = s.range(StreamId::MIN, StreamId::MAX, false, count as usize);
    put_entries(out, &entries);
    out.bulk(b"groups");
    out.array(s.groups.len());
    for (name, g) in &s.groups {
        out.map(7);
        out.bulk(b"name");
        out.bulk(name);
        reply_group_progress(out, s, g);
        out.bulk(b"pel-count");
        out.int(g.pel.len() as i64);
        out.bulk(b"pending");
        let pel: Vec<(&StreamId, &Nack)> = g.pel.iter().take(if count == 0 { usize::MAX } else { count as usize }).collect();
        out.array(pel.len());
        for (id, n) in pel {
            out.array(4);
            out.bulk(&id.to_bytes());
            out.bulk(&n.consumer);
            out.int(n.delivery_time);
            out.int(n.delivery_count as i64);
        }
        out.bulk(b"consumers");
        out.array(g.consumers.len());
        for (cname, c) in &g.consumers {
            out.map(4);
            out.bulk(b"name");
            out.bulk(cname);
            out.bulk(b"seen-time");
            out.int(c.seen_time);
            out.bulk(b"pel-count");
            out.int(c.pel.len() as i64);
            out.bulk(b"pending");
            let pel: Vec<&StreamId> = c.pel.iter().take(if count == 0 { usize::MAX } else { count as usize }).collect();
            out.array(pel.len());
            for id in pel {
                let n = &g.pel[id];
                out.array(3);
                out.bulk(&id.to_bytes());
                out.int(n.delivery_time);
                out.int(n.delivery_count as i64);
            }
        }
    }
}

/// Redis's radix tree node count for `keys` 16-byte keys is an internal figure; an estimate that
/// grows with the keys (one root, one per key beyond the first shared prefix).
fn radix_nodes(keys: usize) -> usize {
    if keys == 0 {
        1
    } else {
        keys + 1
    }
}

fn reply_entries_read(out: &mut resp::ReplyBuf, g: &Group) {
    if g.entries_read >= 0 {
        out.int(g.entries_read);
    } else {
        out.null();
    }
}

/// A group's read position as XINFO shows it: last-delivered-id, entries-read and lag.
fn reply_group_progress(out: &mut resp::ReplyBuf, s: &Stream, g: &Group) {
    out.bulk(b"last-delivered-id");
    out.bulk(&g.last_id.to_bytes());
    out.bulk(b"entries-read");
    reply_entries_read(out, g);
    out.bulk(b"lag");
    reply_lag(out, s, g);
}

fn reply_lag(out: &mut resp::ReplyBuf, s: &Stream, g: &Group) {
    match s.lag(g) {
        Some(l) => out.int(l as i64),
        None => out.null(),
    }
}

fn xinfo_groups(ctx: &mut Ctx, argv: &[&[u8]]) {
    let Some((s, out)) = info_stream(ctx, argv[2]) else { return };
    out.array(s.groups.len());
    for (name, g) in &s.groups {
        out.map(6);
        out.bulk(b"name");
        out.bulk(name);
        out.bulk(b"consumers");
        out.int(g.consumers.len() as i64);
        out.bulk(b"pending");
        out.int(g.pel.len() as i64);
        reply_group_progress(out, s, g);
    }
}

fn xinfo_consumers(ctx: &mut Ctx, argv: &[&[u8]]) {
    let (key, gname) = (argv[2], argv[3]);
    let now = ctx.now;
    let s = match stream_mut(ctx, key, false) {
        Err(()) => return,
        Ok(None) => return ctx.out.error("ERR no such key"),
        Ok(Some(s)) => s,
    };
    let Some(g) = s.groups.get(gname) else { return nogroup(ctx, key, gname) };
    let rows: Vec<(Vec<u8>, usize, i64)> = g.consumers.iter().map(|(n, c)| (n.clone(), c.pel.len(), (now - c.seen_time).max(0))).collect();
    ctx.out.array(rows.len());
    for (name, pending, idle) in rows {
        ctx.out.map(3);
        ctx.out.bulk(b"name");
        ctx.out.bulk(&name);
        ctx.out.bulk(b"pending");
        ctx.out.int(pending as i64);
        ctx.out.bulk(b"idle");
        ctx.out.int(idle);
    }
}

fn xinfo_help(ctx: &mut Ctx, _argv: &[&[u8]]) {
    super::reply_help(
        ctx,
        &[
            "XINFO <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "CONSUMERS <key> <groupname>",
            "    Show consumers of <groupname>.",
            "GROUPS <key>",
            "    Show the stream consumer groups.",
            "STREAM <key> [FULL [COUNT <count>]",
            "    Show information about the stream.",
            "HELP",
            "    Prints this help.",
        ],
    )
}

#[allow(dead_code)]
fn wrongtype(ctx: &mut Ctx) {
    ctx.out.error(WRONGTYPE)
}
