//! The geo family (Redis's geo.c): positions are sorted set members scored by their 52-bit
//! geohash (`types::geohash`).

use super::table::{cmd, flag::*, CommandSpec, Keys, ONE_KEY};
use super::zset::{store_result, zadd_generic, zset_mut, zset_read, ScoreRange};
use super::{eq, Ctx, NOT_FLOAT, NOT_INT, SYNTAX};
use crate::types::geohash::{self, Search, Shape};
use crate::util::{fmt_human, parse_f64, parse_i64};
use resp::ReplyBuf;

/// GEORADIUS's keys: the source, and the key after STORE or STOREDIST.
const RADIUS_KEYS: Keys =
    Keys::Custom { first: 1, last: 1, step: 1, find: |argv, out| super::table::key_and_after(argv, out, &["store", "storedist"]) };

pub static COMMANDS: &[CommandSpec] = &[
    cmd("geoadd", -5, WRITE | DENYOOM, "@write @geo @slow", ONE_KEY, geoadd),
    cmd("geopos", -2, READONLY, "@read @geo @slow", ONE_KEY, geopos),
    cmd("geodist", -4, READONLY, "@read @geo @slow", ONE_KEY, geodist),
    cmd("geohash", -2, READONLY, "@read @geo @slow", ONE_KEY, geohash_cmd),
    cmd("geosearch", -7, READONLY, "@read @geo @slow", ONE_KEY, geosearch),
    cmd("geosearchstore", -8, WRITE | DENYOOM, "@write @geo @slow", Keys::Range { first: 1, last: 2, step: 1 }, geosearchstore),
    cmd("georadius", -6, WRITE | DENYOOM, "@write @geo @slow", RADIUS_KEYS, georadius),
    cmd("georadius_ro", -6, READONLY, "@read @geo @slow", ONE_KEY, georadius_ro),
    cmd("georadiusbymember", -5, WRITE | DENYOOM, "@write @geo @slow", RADIUS_KEYS, georadiusbymember),
    cmd("georadiusbymember_ro", -5, READONLY, "@read @geo @slow", ONE_KEY, georadiusbymember_ro),
];

/// Parses "longitude latitude", replying Redis's errors.
fn lon_lat(ctx: &mut Ctx, a: &[u8], b: &[u8]) -> Option<[f64; 2]> {
    let (Some(lon), Some(lat)) = (parse_f64(a), parse_f64(b)) else {
        ctx.out.error(NOT_FLOAT);
        return None;
    };
    if !(geohash::LONG_MIN..=geohash::LONG_MAX).contains(&lon) || !(geohash::LAT_MIN..=geohash::LAT_MAX).contains(&lat) {
        ctx.out.error(&format!("ERR invalid longitude,latitude pair {:.6},{:.6}", lon, lat));
        return None;
    }
    Some([lon, lat])
}

/// Meters per unit; replies Redis's error for an unknown unit.
fn unit(ctx: &mut Ctx, a: &[u8]) -> Option<f64> {
    let m = if eq(a, "m") {
        1.0
    } else if eq(a, "km") {
        1000.0
    } else if eq(a, "ft") {
        0.3048
    } else if eq(a, "mi") {
        1609.34
    } else {
        ctx.out.error("ERR unsupported unit provided. please use M, KM, FT, MI");
        return None;
    };
    Some(m)
}

fn non_negative(ctx: &mut Ctx, a: &[u8], what: &str) -> Option<f64> {
    match parse_f64(a) {
        None => {
            ctx.out.error(&format!("ERR need numeric {what}"));
            None
        }
        Some(v) => Some(v),
    }
}

fn distance_reply(out: &mut ReplyBuf, d: f64) {
    out.bulk(format!("{:.4}", d).as_bytes());
}

fn coord_reply(out: &mut ReplyBuf, xy: [f64; 2]) {
    out.array(2);
    out.double_str(fmt_human(xy[0]).as_bytes());
    out.double_str(fmt_human(xy[1]).as_bytes());
}

fn geoadd(ctx: &mut Ctx, argv: &[&[u8]]) {
    let mut i = 2;
    let (mut nx, mut xx) = (false, false);
    while i < argv.len() {
        if eq(argv[i], "nx") {
            nx = true;
        } else if eq(argv[i], "xx") {
            xx = true;
        } else if !eq(argv[i], "ch") {
            break;
        }
        i += 1;
    }
    if !(argv.len() - i).is_multiple_of(3) || (xx && nx) {
        return ctx.out.error(SYNTAX);
    }
    // Rewritten as ZADD key [options] score member ... as Redis does.
    let mut scores: Vec<Vec<u8>> = Vec::new();
    for t in argv[i..].chunks(3) {
        let Some([lon, lat]) = lon_lat(ctx, t[0], t[1]) else { return };
        let s = geohash::score_of(lon, lat).unwrap_or(0.0) as u64;
        scores.push(itoa::Buffer::new().format(s).as_bytes().to_vec());
    }
    let mut zargv: Vec<&[u8]> = vec![b"zadd"];
    zargv.extend_from_slice(&argv[1..i]);
    for (t, s) in argv[i..].chunks(3).zip(scores.iter()) {
        zargv.push(s);
        zargv.push(t[2]);
    }
    zadd_generic(ctx, &zargv, false);
}

fn geopos(ctx: &mut Ctx, argv: &[&[u8]]) {
    let Ok((z, out)) = zset_read(ctx, argv[1]) else { return };
    out.array(argv.len() - 2);
    for m in &argv[2..] {
        match z.and_then(|z| z.score(m)) {
            Some(s) => coord_reply(out, geohash::decode_score(s)),
            None => out.null_array(),
        }
    }
}

fn geodist(ctx: &mut Ctx, argv: &[&[u8]]) {
    let mut to_meter = 1.0;
    if argv.len() == 5 {
        let Some(u) = unit(ctx, argv[4]) else { return };
        to_meter = u;
    } else if argv.len() > 5 {
        return ctx.out.error(SYNTAX);
    }
    let Ok((z, out)) = zset_read(ctx, argv[1]) else { return };
    let pos = |m: &[u8]| z.and_then(|z| z.score(m)).map(geohash::decode_score);
    match (pos(argv[2]), pos(argv[3])) {
        (Some(a), Some(b)) => distance_reply(out, geohash::distance(a[0], a[1], b[0], b[1]) / to_meter),
        _ => out.null(),
    }
}

fn geohash_cmd(ctx: &mut Ctx, argv: &[&[u8]]) {
    let Ok((z, out)) = zset_read(ctx, argv[1]) else { return };
    out.array(argv.len() - 2);
    for m in &argv[2..] {
        match z.and_then(|z| z.score(m)) {
            Some(s) => out.bulk(geohash::geohash_string(s).as_bytes()),
            None => out.null(),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// GEORADIUS[_RO]: center from argv[2..4].
    Coords,
    /// GEORADIUSBYMEMBER[_RO]: center from a member at argv[2].
    Member,
    /// GEOSEARCH / GEOSEARCHSTORE: FROMMEMBER/FROMLONLAT, BYRADIUS/BYBOX options.
    Search,
}

struct Point {
    member: Vec<u8>,
    score: f64,
    dist: f64,
    xy: [f64; 2],
}

/// Redis's georadiusGeneric. `src` is the index of the source key; `store_ok` allows STORE /
/// STOREDIST (GEORADIUS), `search_store` is GEOSEARCHSTORE's destination.
fn radius_generic(ctx: &mut Ctx, argv: &[&[u8]], src: usize, kind: Kind, store_ok: bool, search_store: Option<&[u8]>) {
    let key = argv[src];
    // The source set's scores are read up front (WRONGTYPE first, as Redis checks it first).
    let exists = match zset_mut(ctx, key, true) {
        Err(()) => return,
        Ok(z) => z.is_some(),
    };
    let member_pos = |ctx: &mut Ctx, m: &[u8]| -> Option<[f64; 2]> {
        zset_mut(ctx, key, true).ok().flatten().and_then(|z| z.score(m)).map(geohash::decode_score)
    };
    let mut center = [0.0, 0.0];
    let mut shape: Option<Shape> = None;
    let mut conversion = 1.0;
    let base = match kind {
        Kind::Coords => {
            let Some(xy) = lon_lat(ctx, argv[2], argv[3]) else { return };
            center = xy;
            let Some(r) = non_negative(ctx, argv[4], "radius") else { return };
            if r < 0.0 {
                return ctx.out.error("ERR radius cannot be negative");
            }
            let Some(u) = unit(ctx, argv[5]) else { return };
            shape = Some(Shape::Radius(r));
            conversion = u;
            6
        }
        Kind::Member if !exists => 5,
        Kind::Member => {
            let Some(xy) = member_pos(ctx, argv[2]) else {
                return ctx.out.error("ERR could not decode requested zset member");
            };
            center = xy;
            let Some(r) = non_negative(ctx, argv[3], "radius") else { return };
            if r < 0.0 {
                return ctx.out.error("ERR radius cannot be negative");
            }
            let Some(u) = unit(ctx, argv[4]) else { return };
            shape = Some(Shape::Radius(r));
            conversion = u;
            5
        }
        Kind::Search => src + 1,
    };
    let (mut withdist, mut withhash, mut withcoord, mut any) = (false, false, false, false);
    let (mut frommember, mut fromloc) = (false, false);
    let mut sort: Option<bool> = None; // Some(true) ascending
    let mut count: i64 = 0;
    let mut store: Option<&[u8]> = search_store;
    let mut storedist = false;
    let rest = &argv[base..];
    let mut i = 0;
    while i < rest.len() {
        let a = rest[i];
        let left = rest.len() - i - 1;
        if eq(a, "withdist") {
            withdist = true;
        } else if eq(a, "withhash") {
            withhash = true;
        } else if eq(a, "withcoord") {
            withcoord = true;
        } else if eq(a, "any") {
            any = true;
        } else if eq(a, "asc") {
            sort = Some(true);
        } else if eq(a, "desc") {
            sort = Some(false);
        } else if eq(a, "count") && left >= 1 {
            let Some(c) = parse_i64(rest[i + 1]) else { return ctx.out.error(NOT_INT) };
            if c <= 0 {
                return ctx.out.error("ERR COUNT must be > 0");
            }
            count = c;
            i += 1;
        } else if (eq(a, "store") || eq(a, "storedist")) && left >= 1 && store_ok {
            store = Some(rest[i + 1]);
            storedist = eq(a, "storedist");
            i += 1;
        } else if eq(a, "storedist") && search_store.is_some() {
            storedist = true;
        } else if eq(a, "frommember") && left >= 1 && kind == Kind::Search && !fromloc {
            if exists {
                let Some(xy) = member_pos(ctx, rest[i + 1]) else {
                    return ctx.out.error("ERR could not decode requested zset member");
                };
                center = xy;
            }
            frommember = true;
            i += 1;
        } else if eq(a, "fromlonlat") && left >= 2 && kind == Kind::Search && !frommember {
            let Some(xy) = lon_lat(ctx, rest[i + 1], rest[i + 2]) else { return };
            center = xy;
            fromloc = true;
            i += 2;
        } else if eq(a, "byradius") && left >= 2 && kind == Kind::Search && !matches!(shape, Some(Shape::Box(..))) {
            let Some(r) = non_negative(ctx, rest[i + 1], "radius") else { return };
            if r < 0.0 {
                return ctx.out.error("ERR radius cannot be negative");
            }
            let Some(u) = unit(ctx, rest[i + 2]) else { return };
            shape = Some(Shape::Radius(r));
            conversion = u;
            i += 2;
        } else if eq(a, "bybox") && left >= 3 && kind == Kind::Search && !matches!(shape, Some(Shape::Radius(..))) {
            let Some(w) = non_negative(ctx, rest[i + 1], "width") else { return };
            let Some(h) = non_negative(ctx, rest[i + 2], "height") else { return };
            if w < 0.0 || h < 0.0 {
                return ctx.out.error("ERR height or width cannot be negative");
            }
            let Some(u) = unit(ctx, rest[i + 3]) else { return };
            shape = Some(Shape::Box(w, h));
            conversion = u;
            i += 3;
        } else {
            return ctx.out.error(SYNTAX);
        }
        i += 1;
    }
    if store.is_some() && (withdist || withhash || withcoord) {
        let what = if search_store.is_some() { "GEOSEARCHSTORE" } else { "STORE option in GEORADIUS" };
        return ctx.out.error(&format!("ERR {what} is not compatible with WITHDIST, WITHHASH and WITHCOORD options"));
    }
    let name = String::from_utf8_lossy(argv[0]).into_owned();
    if kind == Kind::Search && !(frommember || fromloc) {
        return ctx.out.error(&format!("ERR exactly one of FROMMEMBER or FROMLONLAT can be specified for {name}"));
    }
    if kind == Kind::Search && shape.is_none() {
        return ctx.out.error(&format!("ERR exactly one of BYRADIUS and BYBOX can be specified for {name}"));
    }
    if any && count == 0 {
        return ctx.out.error("ERR the ANY argument requires COUNT argument");
    }
    if !exists {
        return match store {
            Some(d) => store_result(ctx, d, Vec::new()),
            None => ctx.out.array(0),
        };
    }
    if count != 0 && sort.is_none() && !any {
        sort = Some(true);
    }
    let search = Search { center, shape: shape.expect("set above"), conversion };
    let limit = if any { count as usize } else { 0 };
    let mut points: Vec<Point> = Vec::new();
    if let Ok(Some(z)) = zset_mut(ctx, key, true) {
        'boxes: for (min, max) in search.score_ranges() {
            if limit > 0 && points.len() >= limit {
                break;
            }
            let (a, b) = ScoreRange { min, minex: false, max, maxex: true }.ranks(z);
            let mut full = false;
            z.walk(a, b, false, |m, s| {
                let xy = geohash::decode_score(s);
                if let Some(dist) = search.contains(xy[0], xy[1]) {
                    points.push(Point { member: m.to_vec(), score: s, dist, xy });
                }
                full = limit > 0 && points.len() >= limit;
                !full
            });
            if full {
                break 'boxes;
            }
        }
    }
    if points.is_empty() && store.is_none() {
        return ctx.out.array(0);
    }
    match sort {
        Some(true) => points.sort_by(|a, b| a.dist.partial_cmp(&b.dist).unwrap_or(std::cmp::Ordering::Equal)),
        Some(false) => points.sort_by(|a, b| b.dist.partial_cmp(&a.dist).unwrap_or(std::cmp::Ordering::Equal)),
        None => {}
    }
    let n = if count == 0 { points.len() } else { points.len().min(count as usize) };
    points.truncate(n);
    match store {
        Some(d) => {
            let mut entries: Vec<(Vec<u8>, f64)> =
                points.into_iter().map(|p| (p.member, if storedist { p.dist / conversion } else { p.score })).collect();
            entries.sort_by(|a, b| crate::types::zset::cmp_entry(a.1, &a.0, b.1, &b.0));
            store_result(ctx, d, entries);
        }
        None => {
            let opts = withdist as usize + withhash as usize + withcoord as usize;
            let out = &mut *ctx.out;
            out.array(n);
            for p in points {
                if opts > 0 {
                    out.array(opts + 1);
                }
                out.bulk(&p.member);
                if withdist {
                    distance_reply(out, p.dist / conversion);
                }
                if withhash {
                    out.int(p.score as i64);
                }
                if withcoord {
                    coord_reply(out, p.xy);
                }
            }
        }
    }
}

fn georadius(ctx: &mut Ctx, argv: &[&[u8]]) {
    radius_generic(ctx, argv, 1, Kind::Coords, true, None)
}
fn georadius_ro(ctx: &mut Ctx, argv: &[&[u8]]) {
    radius_generic(ctx, argv, 1, Kind::Coords, false, None)
}
fn georadiusbymember(ctx: &mut Ctx, argv: &[&[u8]]) {
    radius_generic(ctx, argv, 1, Kind::Member, true, None)
}
fn georadiusbymember_ro(ctx: &mut Ctx, argv: &[&[u8]]) {
    radius_generic(ctx, argv, 1, Kind::Member, false, None)
}
fn geosearch(ctx: &mut Ctx, argv: &[&[u8]]) {
    radius_generic(ctx, argv, 1, Kind::Search, false, None)
}
fn geosearchstore(ctx: &mut Ctx, argv: &[&[u8]]) {
    radius_generic(ctx, argv, 2, Kind::Search, false, Some(argv[1]))
}
