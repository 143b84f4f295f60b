//! Streams in RDB (RDB_TYPE_STREAM_LISTPACKS, _2 and _3): the entries as Redis lays them out, a
//! list of nodes, each its first ID (16 bytes, big-endian) and a listpack; then the length, the
//! last ID, (since _2) the first ID, the largest deleted ID and the count of entries ever added;
//! then the consumer groups with their pending entries and consumers.
//!
//! A node's listpack: the master entry (live count, deleted count, the field names of the node's
//! first entry, a 0), then per entry its flags, ms and seq relative to the node's ID, either its
//! field count and field/value pairs or (flag SAMEFIELDS) only its values, and its element count.

use crate::decode::Cursor;
use crate::encode::{put_len, put_string};
use crate::listpack;
use crate::Error;

/// An entry ID: (milliseconds, sequence).
pub type Id = (u64, u64);

/// An entry: its ID and its field/value pairs.
pub type Entry = (Id, crate::Pairs);

#[derive(Clone, Debug, PartialEq, Default)]
pub struct Stream {
    /// Live entries in ID order.
    pub entries: Vec<Entry>,
    pub length: u64,
    pub last_id: Id,
    pub first_id: Id,
    pub max_deleted: Id,
    pub entries_added: u64,
    pub groups: Vec<Group>,
    /// Read from RDB_TYPE_STREAM_LISTPACKS (before 7.0): the counters were derived, and the
    /// groups' entries-read is to be estimated by the loader, as Redis does.
    pub legacy: bool,
}

#[derive(Clone, Debug, PartialEq, Default)]
pub struct Group {
    pub name: Vec<u8>,
    pub last_id: Id,
    /// -1: not known.
    pub entries_read: i64,
    /// (ID, delivery time in ms, delivery count), in ID order.
    pub pel: Vec<(Id, i64, u64)>,
    pub consumers: Vec<Consumer>,
}

#[derive(Clone, Debug, PartialEq, Default)]
pub struct Consumer {
    pub name: Vec<u8>,
    pub seen_time: i64,
    pub pel: Vec<Id>,
}

const DELETED: i64 = 1;
const SAMEFIELDS: i64 = 2;

fn be(id: Id) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&id.0.to_be_bytes());
    b[8..].copy_from_slice(&id.1.to_be_bytes());
    b
}

fn from_be(b: &[u8]) -> Option<Id> {
    (b.len() == 16)
        .then(|| (u64::from_be_bytes(b[..8].try_into().unwrap_or_default()), u64::from_be_bytes(b[8..].try_into().unwrap_or_default())))
}

fn put_id(out: &mut Vec<u8>, id: Id) {
    put_len(out, id.0);
    put_len(out, id.1);
}

/// The node listpacks for `entries`, cut as Redis cuts them (`max_bytes` per listpack,
/// `max_entries` entries per node; 0: no limit).
fn nodes(entries: &[Entry], max_bytes: usize, max_entries: usize) -> Vec<(Id, Vec<u8>)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < entries.len() {
        let (master, master_fields) = (&entries[i].0, &entries[i].1);
        let mut body = listpack::Builder::new();
        let mut n = 0usize;
        while i < entries.len() {
            let (id, fields) = &entries[i];
            if n > 0 && ((max_entries > 0 && n >= max_entries) || (max_bytes > 0 && body.len() >= max_bytes)) {
                break;
            }
            let same = fields.len() == master_fields.len() && fields.iter().zip(master_fields).all(|(a, b)| a.0 == b.0);
            let num = |v: i64| v.to_string().into_bytes();
            body.push(&num(if same { SAMEFIELDS } else { 0 }));
            body.push(&num(id.0.wrapping_sub(master.0) as i64));
            body.push(&num(id.1.wrapping_sub(master.1) as i64));
            if !same {
                body.push(&num(fields.len() as i64));
            }
            for (f, v) in fields {
                if !same {
                    body.push(f);
                }
                body.push(v);
            }
            let count = fields.len() as i64 + 3 + if same { 0 } else { fields.len() as i64 + 1 };
            body.push(&num(count));
            n += 1;
            i += 1;
        }
        // The master entry goes first: rebuild with it in front.
        let mut lp = listpack::Builder::new();
        lp.push(n.to_string().as_bytes());
        lp.push(b"0");
        lp.push(master_fields.len().to_string().as_bytes());
        for (f, _) in master_fields {
            lp.push(f);
        }
        lp.push(b"0");
        lp.append(body);
        out.push((*master, lp.finish()));
    }
    out
}

/// Writes a stream value (after its type byte) as RDB_TYPE_STREAM_LISTPACKS_2, Redis 7.0's.
pub fn put(out: &mut Vec<u8>, s: &Stream, compress: bool) {
    let nodes = nodes(&s.entries, 4096, 100);
    put_len(out, nodes.len() as u64);
    for (id, lp) in &nodes {
        put_string(out, &be(*id), false);
        put_string(out, lp, compress);
    }
    put_len(out, s.length);
    put_id(out, s.last_id);
    put_id(out, s.first_id);
    put_id(out, s.max_deleted);
    put_len(out, s.entries_added);
    put_len(out, s.groups.len() as u64);
    for g in &s.groups {
        put_string(out, &g.name, false);
        put_id(out, g.last_id);
        put_len(out, g.entries_read as u64);
        put_len(out, g.pel.len() as u64);
        for (id, time, count) in &g.pel {
            out.extend_from_slice(&be(*id));
            out.extend_from_slice(&time.to_le_bytes());
            put_len(out, *count);
        }
        put_len(out, g.consumers.len() as u64);
        for c in &g.consumers {
            put_string(out, &c.name, false);
            out.extend_from_slice(&c.seen_time.to_le_bytes());
            put_len(out, c.pel.len() as u64);
            for id in &c.pel {
                out.extend_from_slice(&be(*id));
            }
        }
    }
}

fn int(items: &[Vec<u8>], i: usize) -> Result<i64, String> {
    items
        .get(i)
        .and_then(|v| crate::strict_i64(v).or_else(|| std::str::from_utf8(v).ok()?.parse().ok()))
        .ok_or_else(|| "bad stream listpack".to_string())
}

/// The live entries of one node listpack.
fn node_entries(master: Id, lp: &[u8], out: &mut Vec<Entry>) -> Result<(), String> {
    let items = listpack::decode(lp).map_err(|e| e.msg)?;
    if items.is_empty() {
        return Err("Empty listpack inside stream".into());
    }
    let nfields = usize::try_from(int(&items, 2)?).map_err(|_| "bad stream master entry")?;
    let fields_at = 3;
    if nfields >= items.len() || items.len() < fields_at + nfields + 1 || int(&items, fields_at + nfields)? != 0 {
        return Err("bad stream master entry".into());
    }
    let master_fields = &items[fields_at..fields_at + nfields];
    let mut i = fields_at + nfields + 1;
    while i < items.len() {
        let flags = int(&items, i)?;
        let ms = master.0.wrapping_add(int(&items, i + 1)? as u64);
        let seq = master.1.wrapping_add(int(&items, i + 2)? as u64);
        i += 3;
        let mut fields = Vec::new();
        if flags & SAMEFIELDS != 0 {
            for f in master_fields {
                fields.push((f.clone(), items.get(i).ok_or("bad stream entry")?.clone()));
                i += 1;
            }
        } else {
            let n = usize::try_from(int(&items, i)?).ok().filter(|n| *n <= items.len()).ok_or("bad stream entry")?;
            i += 1;
            for _ in 0..n {
                let f = items.get(i).ok_or("bad stream entry")?.clone();
                let v = items.get(i + 1).ok_or("bad stream entry")?.clone();
                fields.push((f, v));
                i += 2;
            }
        }
        int(&items, i)?; // lp-count
        i += 1;
        if (ms, seq) < master || out.last().is_some_and(|(last, _)| *last >= (ms, seq)) {
            return Err("stream entries out of order".into());
        }
        if flags & DELETED == 0 {
            out.push(((ms, seq), fields));
        }
    }
    Ok(())
}

fn read_id(c: &mut Cursor) -> Result<Id, Error> {
    Ok((c.length()?, c.length()?))
}

fn raw_id(c: &mut Cursor) -> Result<Id, Error> {
    let b = c.take(16)?;
    from_be(b).ok_or_else(|| c.err("bad stream ID"))
}

/// Reads a stream value of type `t` (15, 19 or 21).
pub fn read(c: &mut Cursor, t: u8) -> Result<Stream, Error> {
    let mut s = Stream::default();
    let nodes = c.count(2)?;
    for _ in 0..nodes {
        let key = c.string()?;
        let master = from_be(&key).ok_or_else(|| c.err("Stream node key entry is not the size of a stream ID"))?;
        let lp = c.string()?;
        node_entries(master, &lp, &mut s.entries).map_err(|m| c.err(m))?;
    }
    s.length = c.length()?;
    s.last_id = read_id(c)?;
    if t >= crate::types::STREAM_LISTPACKS_2 {
        s.first_id = read_id(c)?;
        s.max_deleted = read_id(c)?;
        s.entries_added = c.length()?;
    } else {
        s.first_id = s.entries.first().map(|e| e.0).unwrap_or_default();
        s.entries_added = s.length;
        s.legacy = true;
    }
    if s.entries.len() as u64 != s.length {
        return Err(c.err("stream length does not match its entries"));
    }
    if s.entries.last().is_some_and(|(id, _)| *id > s.last_id) {
        return Err(c.err("stream last ID is smaller than its last entry"));
    }
    let groups = c.count(1)?;
    for _ in 0..groups {
        let mut g = Group { name: c.string()?, last_id: read_id(c)?, entries_read: -1, ..Group::default() };
        if t >= crate::types::STREAM_LISTPACKS_2 {
            g.entries_read = c.length()? as i64;
        }
        if s.groups.iter().any(|x| x.name == g.name) {
            return Err(c.err("Duplicated consumer group name"));
        }
        let pel = c.count(17)?;
        for _ in 0..pel {
            let id = raw_id(c)?;
            let time = c.u64_le()? as i64;
            let count = c.length()?;
            if g.pel.last().is_some_and(|p| p.0 >= id) {
                return Err(c.err("Duplicated global PEL entry loading stream consumer group"));
            }
            g.pel.push((id, time, count));
        }
        let mut owned = std::collections::HashSet::new();
        let consumers = c.count(1)?;
        for _ in 0..consumers {
            let name = c.string()?;
            let seen_time = c.u64_le()? as i64;
            if t >= crate::types::STREAM_LISTPACKS_3 {
                c.u64_le()?; // active time (7.2)
            }
            let n = c.count(16)?;
            let mut pel = Vec::with_capacity(n);
            for _ in 0..n {
                let id = raw_id(c)?;
                if g.pel.binary_search_by(|p| p.0.cmp(&id)).is_err() {
                    return Err(c.err("Consumer PEL entry not found in the group's PEL"));
                }
                if !owned.insert(id) {
                    return Err(c.err("Duplicated consumer PEL entry loading a stream consumer group"));
                }
                pel.push(id);
            }
            if g.consumers.iter().any(|x| x.name == name) {
                return Err(c.err("Duplicate stream consumer detected."));
            }
            pel.sort_unstable();
            g.consumers.push(Consumer { name, seen_time, pel });
        }
        if owned.len() != g.pel.len() {
            return Err(c.err("Stream PEL entry without a consumer"));
        }
        s.groups.push(g);
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let f = |k: &str, v: &str| (k.as_bytes().to_vec(), v.as_bytes().to_vec());
        let mut s = Stream::default();
        for i in 1..=150u64 {
            s.entries.push(((i, 0), if i % 2 == 0 { vec![f("a", "1")] } else { vec![f("a", "x"), f("b", "-7")] }));
        }
        s.length = 150;
        s.last_id = (150, 0);
        s.first_id = (1, 0);
        s.entries_added = 150;
        s.groups.push(Group {
            name: b"g".to_vec(),
            last_id: (3, 0),
            entries_read: 3,
            pel: vec![((1, 0), 5, 1), ((2, 0), 6, 2)],
            consumers: vec![Consumer { name: b"c".to_vec(), seen_time: 7, pel: vec![(1, 0), (2, 0)] }],
        });
        let mut out = Vec::new();
        put(&mut out, &s, false);
        out
    }

    proptest::proptest! {
        /// A valid payload with bytes changed: an error or a stream, never a panic.
        #[test]
        fn corrupted_payloads_never_panic(changes in proptest::collection::vec((0usize..4000, proptest::prelude::any::<u8>()), 1..6)) {
            let mut b = sample();
            for (at, v) in changes {
                let i = at % b.len();
                b[i] = v;
            }
            for t in [crate::types::STREAM_LISTPACKS, crate::types::STREAM_LISTPACKS_2, crate::types::STREAM_LISTPACKS_3] {
                let _ = read(&mut Cursor::new(&b), t);
            }
        }
    }

    #[test]
    fn round_trips_entries_and_groups() {
        let f = |k: &str, v: &str| (k.as_bytes().to_vec(), v.as_bytes().to_vec());
        let mut s = Stream::default();
        for i in 1..=250u64 {
            let fields = if i % 3 == 0 { vec![f("a", &i.to_string()), f("b", "x")] } else { vec![f("a", &i.to_string())] };
            s.entries.push(((1000 + i / 2, i % 2), fields));
        }
        s.length = 250;
        s.last_id = s.entries.last().unwrap().0;
        s.first_id = s.entries[0].0;
        s.entries_added = 260;
        s.max_deleted = (5, 5);
        s.groups.push(Group {
            name: b"g".to_vec(),
            last_id: (1001, 1),
            entries_read: 3,
            pel: vec![((1000, 1), 77, 2), ((1001, 0), 78, 1)],
            consumers: vec![Consumer { name: b"c".to_vec(), seen_time: 99, pel: vec![(1000, 1), (1001, 0)] }],
        });
        let mut out = Vec::new();
        put(&mut out, &s, false);
        let back = read(&mut Cursor::new(&out), crate::types::STREAM_LISTPACKS_2).unwrap();
        assert_eq!(back, s);
        // Every cut is an error, never a panic.
        for cut in 0..out.len() {
            assert!(read(&mut Cursor::new(&out[..cut]), crate::types::STREAM_LISTPACKS_2).is_err(), "cut at {cut}");
        }
        // Broken invariants are refused.
        let mut bad = s.clone();
        bad.last_id = (1, 0);
        let mut out = Vec::new();
        put(&mut out, &bad, false);
        assert!(read(&mut Cursor::new(&out), crate::types::STREAM_LISTPACKS_2).is_err());
        let mut bad = s.clone();
        bad.groups[0].consumers[0].pel.pop();
        let mut out = Vec::new();
        put(&mut out, &bad, false);
        assert!(read(&mut Cursor::new(&out), crate::types::STREAM_LISTPACKS_2).unwrap_err().msg.contains("without a consumer"));
    }
}
