//! SORT and SORT_RO (Redis's sort.c).
//!
//! BY and GET patterns read keys named by the elements, which no key position declares: a SORT
//! with such patterns takes every stripe lock (ascending, so no deadlock) before it reads
//! anything, which keeps it atomic as in Redis.

use super::table::{cmd, flag::*, CommandSpec, Keys};
use super::{eq, Ctx, NOT_INT, SYNTAX, WRONGTYPE};
use crate::keyspace::STRIPES;
use crate::types::{List, Value};
use crate::util::parse_i64;
use std::cmp::Ordering;

/// SORT's keys: the source, and the STORE destination.
/// SORT's keys (Redis's sortGetKeys): the sorted key and the destination of the *last* STORE
/// (the one SORT uses), skipping the arguments of LIMIT, GET and BY.
const SORT_KEYS: Keys = Keys::Custom {
    first: 1,
    last: 1,
    step: 1,
    find: |argv, out| {
        out.push(1);
        let mut store = None;
        let mut i = 2;
        while i < argv.len() {
            let a = argv[i];
            if a.eq_ignore_ascii_case(b"limit") {
                i += 2;
            } else if a.eq_ignore_ascii_case(b"get") || a.eq_ignore_ascii_case(b"by") {
                i += 1;
            } else if a.eq_ignore_ascii_case(b"store") && i + 1 < argv.len() {
                store = Some(i + 1);
            }
            i += 1;
        }
        out.extend(store);
    },
};

const SORT_RO_KEYS: Keys = Keys::Custom { first: 1, last: 1, step: 1, find: |_, out| out.push(1) };

pub static COMMANDS: &[CommandSpec] = &[
    cmd("sort", -2, WRITE | DENYOOM, "@write @set @sortedset @list @slow @dangerous", SORT_KEYS, sort),
    cmd("sort_ro", -2, READONLY, "@read @set @sortedset @list @slow @dangerous", SORT_RO_KEYS, sort_ro),
];

/// A string value's bytes at `key`, or a hash field's with `key->field` (Redis's
/// lookupKeyByPattern); `#` is the element itself.
fn by_pattern(ctx: &mut Ctx, pattern: &[u8], elem: &[u8]) -> Option<Vec<u8>> {
    if pattern == b"#" {
        return Some(elem.to_vec());
    }
    let star = pattern.iter().position(|&c| c == b'*')?;
    let after = &pattern[star + 1..];
    let (post, field) = match after.windows(2).position(|w| w == b"->") {
        Some(p) if p + 2 < after.len() => (&after[..p], Some(&after[p + 2..])),
        _ => (after, None),
    };
    let key = [&pattern[..star], elem, post].concat();
    let (e, _) = ctx.entry(&key, false);
    match (&e?.value, field) {
        (Value::Str(s), None) => Some(s.to_vec()),
        (Value::Hash(h), Some(f)) => h.get(f).map(|v| v.to_vec()),
        _ => None,
    }
}

/// strtod over the whole value as SORT reads scores: None for garbage, NaN or overflow.
fn sort_score(b: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(b).ok()?.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    if s.is_empty() {
        return Some(0.0);
    }
    let v: f64 = s.parse().ok()?;
    let literal_inf = s.trim_start_matches(['+', '-']).to_ascii_lowercase().starts_with("inf");
    (!v.is_nan() && (v.is_finite() || literal_inf)).then_some(v)
}

struct Item {
    elem: Vec<u8>,
    score: f64,
    cmp: Option<Vec<u8>>,
}

fn sort(ctx: &mut Ctx, argv: &[&[u8]]) {
    sort_generic(ctx, argv, false)
}
fn sort_ro(ctx: &mut Ctx, argv: &[&[u8]]) {
    sort_generic(ctx, argv, true)
}

/// Why SORT's BY or GET `option` may not run here: in a cluster, or for a user who may not read
/// every key.
fn pattern_denied(ctx: &Ctx, argv: &[&[u8]], option: &str) -> Option<String> {
    if ctx.st.cluster.enabled.load(std::sync::atomic::Ordering::Relaxed) {
        return Some(format!("ERR {option} option of SORT denied in Cluster mode."));
    }
    if !super::acl::reads_all_keys(ctx.table, ctx.conn.user.as_ref(), ctx.cmd_id, argv) {
        return Some(format!("ERR {option} option of SORT denied due to insufficient ACL permissions."));
    }
    None
}

fn sort_generic(ctx: &mut Ctx, argv: &[&[u8]], readonly: bool) {
    let (mut desc, mut alpha, mut dontsort) = (false, false, false);
    let (mut limit_start, mut limit_count) = (0i64, -1i64);
    let mut store: Option<&[u8]> = None;
    let mut by: Option<&[u8]> = None;
    let mut gets: Vec<&[u8]> = Vec::new();
    let mut j = 2;
    while j < argv.len() {
        let left = argv.len() - j - 1;
        let a = argv[j];
        if eq(a, "asc") {
            desc = false;
        } else if eq(a, "desc") {
            desc = true;
        } else if eq(a, "alpha") {
            alpha = true;
        } else if eq(a, "limit") && left >= 2 {
            let (Some(s), Some(c)) = (parse_i64(argv[j + 1]), parse_i64(argv[j + 2])) else { return ctx.out.error(NOT_INT) };
            limit_start = s;
            limit_count = c;
            j += 2;
        } else if !readonly && eq(a, "store") && left >= 1 {
            store = Some(argv[j + 1]);
            j += 1;
        } else if eq(a, "by") && left >= 1 {
            by = Some(argv[j + 1]);
            dontsort = !argv[j + 1].contains(&b'*');
            // A real pattern reads keys no argument names: not in a cluster, and only for a
            // user who may read every key (Redis's rules).
            if !dontsort {
                if let Some(e) = pattern_denied(ctx, argv, "BY") {
                    return ctx.out.error(&e);
                }
            }
            j += 1;
        } else if eq(a, "get") && left >= 1 {
            if let Some(e) = pattern_denied(ctx, argv, "GET") {
                return ctx.out.error(&e);
            }
            gets.push(argv[j + 1]);
            j += 1;
        } else {
            return ctx.out.error(SYNTAX);
        }
        j += 1;
    }
    // Patterns read keys nobody declared: hold every stripe, in order, for the whole command.
    if by.is_some_and(|b| b.contains(&b'*')) || gets.iter().any(|g| *g != b"#") {
        ctx.unlock_all();
        for s in 0..STRIPES {
            ctx.lock_stripe(s);
        }
    }
    // Read the elements (and the sorted set's order) out of the source.
    let (e, out) = ctx.entry(argv[1], store.is_none());
    let (kind, mut elems): (u8, Vec<Vec<u8>>) = match e.map(|e| &mut e.value) {
        None => (b'l', Vec::new()),
        Some(Value::List(l)) => (b'l', l.iter().map(|v| v.to_vec()).collect()),
        Some(Value::Set(s)) => (b's', s.members()),
        Some(Value::ZSet(z)) => {
            // Redis converts a listpack sorted set to its full form for SORT.
            z.force_full();
            (b'z', z.entries().into_iter().map(|(m, _)| m).collect())
        }
        Some(_) => return out.error(WRONGTYPE),
    };
    if dontsort && kind == b's' && store.is_some() {
        // A set's order is arbitrary: sort it so replicas and the stored list agree.
        dontsort = false;
        alpha = true;
        by = None;
    }
    let len = elems.len() as i64;
    let mut start = limit_start.max(0);
    let mut end = if limit_count < 0 { len - 1 } else { start + limit_count - 1 };
    if start >= len {
        start = len - 1;
        end = len - 2;
    }
    if end >= len {
        end = len - 1;
    }
    if dontsort && kind != b's' {
        // Lists and sorted sets keep their order (reversed by DESC), cut by LIMIT directly.
        if desc {
            elems.reverse();
        }
    }
    let mut items: Vec<Item> = elems.into_iter().map(|elem| Item { elem, score: 0.0, cmp: None }).collect();
    if !dontsort {
        let mut bad = false;
        for it in items.iter_mut() {
            let byval = match by {
                Some(p) => match by_pattern(ctx, p, &it.elem) {
                    Some(v) => v,
                    None => continue,
                },
                None => it.elem.clone(),
            };
            if alpha {
                if by.is_some() {
                    it.cmp = Some(byval);
                }
            } else {
                match sort_score(&byval) {
                    Some(s) => it.score = s,
                    None => bad = true,
                }
            }
        }
        if bad {
            return ctx.out.error("ERR One or more scores can't be converted into double");
        }
        let bypattern = by.is_some();
        items.sort_by(|a, b| {
            let c = if !alpha {
                a.score.partial_cmp(&b.score).unwrap_or(Ordering::Equal).then_with(|| a.elem.cmp(&b.elem))
            } else if bypattern {
                match (&a.cmp, &b.cmp) {
                    (None, None) => Ordering::Equal,
                    (None, Some(_)) => Ordering::Less,
                    (Some(_), None) => Ordering::Greater,
                    (Some(x), Some(y)) => x.cmp(y),
                }
            } else {
                a.elem.cmp(&b.elem)
            };
            if desc {
                c.reverse()
            } else {
                c
            }
        });
    }
    let picked: &[Item] = if end >= start && start >= 0 { &items[start as usize..=end as usize] } else { &[] };
    let per = if gets.is_empty() { 1 } else { gets.len() };
    let outputlen = per * picked.len();
    // Resolve GET patterns first (they read the keyspace), then reply or store.
    let mut rows: Vec<Option<Vec<u8>>> = Vec::with_capacity(outputlen);
    for it in picked {
        if gets.is_empty() {
            rows.push(Some(it.elem.clone()));
        }
        for g in &gets {
            let v = by_pattern(ctx, g, &it.elem);
            rows.push(v);
        }
    }
    match store {
        None => {
            ctx.out.array(rows.len());
            for r in &rows {
                match r {
                    Some(v) => ctx.out.bulk(v),
                    None => ctx.out.null(),
                }
            }
        }
        Some(dst) => {
            if rows.is_empty() {
                ctx.delete(dst);
            } else {
                let mut l = List::new();
                for r in &rows {
                    l.push(false, r.as_deref().unwrap_or(b""));
                }
                ctx.store(dst, Value::List(Box::new(l)), 0);
            }
            ctx.out.int(outputlen as i64);
        }
    }
}
