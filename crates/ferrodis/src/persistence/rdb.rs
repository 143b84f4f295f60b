//! Saving and loading RDB files, and converting values between the keyspace and the `rdb` crate.
//!
//! Saving: `save` starts a snapshot (every stripe locked for a moment to record the database
//! sizes and the aux fields, e.g. the replication offset), then visits the stripes one by one; a
//! client that touches a stripe first hands it to the snapshot under its lock, so the file holds
//! the keyspace as it was at the start. Each stripe is serialized into per-database buffers;
//! database 0 streams to the file as it fills, the others follow it. The file is written to a
//! temporary name, fsynced, then renamed over the target.

use crate::keyspace::{Entry, Keyspace, SlotTable, SnapshotSink};
use crate::types::stream::{self, StreamId};
use crate::types::{hash, zset, Hash, List, Set, SmallBytes, StrValue, Stream, Value, ZSet};
use parking_lot::Mutex;
use rdb::encode;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

/// Encoding thresholds for values built while loading (the server's current config).
#[derive(Clone, Copy)]
pub struct Limits {
    pub hash: hash::Limits,
    pub zset: hash::Limits,
    pub set_max_ints: usize,
    pub stream: crate::types::stream::NodeLimits,
    /// `key-load-delay`: microseconds a load waits after each key (test support, to make a load
    /// last); 0 for none.
    pub key_delay_us: u64,
}

/// How values are written.
#[derive(Clone, Copy)]
pub struct Format {
    pub compress: bool,
    /// Bytes per quicklist node (from list-max-listpack-size; 8 KiB for Redis's default -2).
    pub list_node_bytes: usize,
    /// Write RESP commands that rebuild the dataset instead of an RDB (an AOF base file with
    /// `aof-use-rdb-preamble no`, as Redis's rewriteAppendOnlyFileRio).
    pub commands: bool,
    /// `rdb-key-save-delay`: microseconds the writer waits per key (test support, to make a save
    /// last); 0 for none.
    pub key_delay_us: u64,
}

/// One command in RESP.
fn put_command(out: &mut Vec<u8>, args: &[&[u8]]) {
    resp::encode_command(out, args);
}

/// The commands that rebuild one key: SET, or RPUSH / SADD / ZADD / HMSET with at most 64
/// elements each (Redis's AOF_REWRITE_ITEMS_PER_CMD), then PEXPIREAT.
fn put_key_commands(out: &mut Vec<u8>, e: &Entry) {
    const PER_CMD: usize = 64;
    let key: &[u8] = &e.key;
    let batches = |out: &mut Vec<u8>, cmd: &[u8], items: Vec<&[u8]>, per: usize| {
        for chunk in items.chunks(per) {
            let mut args: Vec<&[u8]> = vec![cmd, key];
            args.extend_from_slice(chunk);
            put_command(out, &args);
        }
    };
    match &e.value {
        Value::Str(s) => {
            let mut scratch = itoa::Buffer::new();
            put_command(out, &[b"SET", key, s.bytes(&mut scratch)]);
        }
        Value::List(l) => batches(out, b"RPUSH", l.iter().collect(), PER_CMD),
        Value::Set(s) => {
            let members = s.members();
            batches(out, b"SADD", members.iter().map(|m| m.as_slice()).collect(), PER_CMD);
        }
        Value::Hash(h) => batches(out, b"HMSET", h.pairs().into_iter().flat_map(|(f, v)| [f, v]).collect(), PER_CMD * 2),
        Value::ZSet(z) => {
            let entries = z.entries();
            let scores: Vec<String> = entries.iter().map(|(_, s)| crate::util::fmt_g17(*s)).collect();
            let items: Vec<&[u8]> = entries.iter().zip(&scores).flat_map(|((m, _), s)| [s.as_bytes(), m.as_slice()]).collect();
            batches(out, b"ZADD", items, PER_CMD * 2);
        }
        Value::Stream(s) => put_stream_commands(out, key, s),
    }
    if e.expire != 0 {
        put_command(out, &[b"PEXPIREAT", key, e.expire.to_string().as_bytes()]);
    }
}

/// Writes one value (type byte, key when given, then the value) as Redis 7.0 does.
pub fn encode_value(out: &mut Vec<u8>, key: Option<&[u8]>, v: &Value, f: Format) {
    match v {
        Value::Str(s) => {
            let mut scratch = itoa::Buffer::new();
            encode::put_string_value(out, key, s.bytes(&mut scratch), f.compress);
        }
        Value::List(l) => encode::put_list_value(out, key, l.iter(), f.list_node_bytes, f.compress),
        Value::Hash(h) => encode::put_hash_value(out, key, &h.pairs(), h.encoding() == "listpack", f.compress),
        Value::Set(s) => {
            let members = s.members();
            let refs: Vec<&[u8]> = members.iter().map(|m| m.as_slice()).collect();
            encode::put_set_value(out, key, &refs, s.encoding() == "intset", f.compress);
        }
        Value::ZSet(z) => {
            let entries = z.entries();
            let refs: Vec<(&[u8], f64)> = entries.iter().map(|(m, s)| (m.as_slice(), *s)).collect();
            encode::put_zset_value(out, key, &refs, z.encoding() == "listpack", f.compress);
        }
        Value::Stream(s) => {
            out.push(rdb::types::STREAM_LISTPACKS_2);
            if let Some(k) = key {
                encode::put_string(out, k, f.compress);
            }
            rdb::stream::put(out, &stream_to_rdb(s), f.compress);
        }
    }
}

fn id_pair(id: StreamId) -> rdb::stream::Id {
    (id.ms, id.seq)
}

fn pair_id(id: rdb::stream::Id) -> StreamId {
    StreamId::new(id.0, id.1)
}

/// A stream as the `rdb` crate writes it.
pub fn stream_to_rdb(s: &Stream) -> rdb::stream::Stream {
    rdb::stream::Stream {
        entries: s.iter().map(|(id, f)| (id_pair(id), f)).collect(),
        length: s.length,
        last_id: id_pair(s.last_id),
        first_id: id_pair(s.first_id),
        max_deleted: id_pair(s.max_deleted),
        entries_added: s.entries_added,
        groups: s
            .groups
            .iter()
            .map(|(name, g)| rdb::stream::Group {
                name: name.clone(),
                last_id: id_pair(g.last_id),
                entries_read: g.entries_read,
                pel: g.pel.iter().map(|(id, n)| (id_pair(*id), n.delivery_time, n.delivery_count)).collect(),
                consumers: g
                    .consumers
                    .iter()
                    .map(|(cname, c)| rdb::stream::Consumer {
                        name: cname.clone(),
                        seen_time: c.seen_time,
                        pel: c.pel.iter().map(|id| id_pair(*id)).collect(),
                    })
                    .collect(),
            })
            .collect(),
        legacy: false,
    }
}

/// A stream from its RDB form. A pending entry names its consumer through the consumer's
/// own list (Redis resolves it the same way when loading).
pub fn stream_from_rdb(r: rdb::stream::Stream, limits: stream::NodeLimits) -> Stream {
    let mut s = Stream::new();
    for (id, fields) in &r.entries {
        let refs: Vec<(&[u8], &[u8])> = fields.iter().map(|(f, v)| (f.as_slice(), v.as_slice())).collect();
        s.add(pair_id(*id), &refs, limits);
    }
    s.last_id = pair_id(r.last_id);
    s.first_id = pair_id(r.first_id);
    s.max_deleted = pair_id(r.max_deleted);
    s.entries_added = r.entries_added;
    for g in r.groups {
        // A pre-7.0 file has no entries-read: estimated from the group's last ID, as Redis.
        let read = if r.legacy { s.entries_read_at(pair_id(g.last_id)).map_or(-1, |v| v as i64) } else { g.entries_read };
        let mut group = stream::Group::new(pair_id(g.last_id), read);
        let mut owner: std::collections::HashMap<rdb::stream::Id, Vec<u8>> = std::collections::HashMap::new();
        for c in &g.consumers {
            for id in &c.pel {
                owner.insert(*id, c.name.clone());
            }
            group
                .consumers
                .insert(c.name.clone(), stream::Consumer { seen_time: c.seen_time, pel: c.pel.iter().map(|id| pair_id(*id)).collect() });
        }
        for (id, time, count) in g.pel {
            let consumer = owner.get(&id).cloned().unwrap_or_default();
            group.pel.insert(pair_id(id), stream::Nack { delivery_time: time, delivery_count: count, consumer });
        }
        s.groups.insert(g.name, group);
    }
    s
}

/// The commands that rebuild a stream (Redis's rewriteStreamObject): XADD per entry (an empty
/// stream by `XADD key MAXLEN 0 0-1 x y`), XSETID with the counters, XGROUP CREATE per group
/// with its entries-read, then XCLAIM ... JUSTID FORCE per pending entry, or XGROUP
/// CREATECONSUMER for a consumer with none.
fn put_stream_commands(out: &mut Vec<u8>, key: &[u8], s: &Stream) {
    if s.is_empty() {
        put_command(out, &[b"XADD", key, b"MAXLEN", b"0", b"0-1", b"x", b"y"]);
    }
    for (id, fields) in s.iter() {
        let id = id.to_bytes();
        let mut args: Vec<&[u8]> = vec![b"XADD", key, &id];
        for (f, v) in &fields {
            args.push(f);
            args.push(v);
        }
        put_command(out, &args);
    }
    let (last, added, maxdel) = (s.last_id.to_bytes(), s.entries_added.to_string(), s.max_deleted.to_bytes());
    put_command(out, &[b"XSETID", key, &last, b"ENTRIESADDED", added.as_bytes(), b"MAXDELETEDID", &maxdel]);
    for (name, g) in &s.groups {
        let (gid, read) = (g.last_id.to_bytes(), g.entries_read.to_string());
        put_command(out, &[b"XGROUP", b"CREATE", key, name, &gid, b"ENTRIESREAD", read.as_bytes()]);
        for (cname, c) in &g.consumers {
            if c.pel.is_empty() {
                put_command(out, &[b"XGROUP", b"CREATECONSUMER", key, name, cname]);
            }
            for id in &c.pel {
                let Some(n) = g.pel.get(id) else { continue };
                let (idb, time, count) = (id.to_bytes(), n.delivery_time.to_string(), n.delivery_count.to_string());
                put_command(
                    out,
                    &[
                        b"XCLAIM",
                        key,
                        name,
                        cname,
                        b"0",
                        &idb,
                        b"TIME",
                        time.as_bytes(),
                        b"RETRYCOUNT",
                        count.as_bytes(),
                        b"JUSTID",
                        b"FORCE",
                    ],
                );
            }
        }
    }
}

/// Builds a value from its RDB form, in the encoding the server's limits call for. None for an
/// empty collection (Redis skips those when loading).
pub fn value_from_rdb(v: rdb::Value, lim: &Limits) -> Option<Value> {
    Some(match v {
        rdb::Value::Str(b) => Value::Str(StrValue::from_bytes(&b)),
        rdb::Value::List(items) if items.is_empty() => return None,
        rdb::Value::List(items) => {
            let mut l = List::new();
            for i in &items {
                l.push(false, i);
            }
            Value::List(Box::new(l))
        }
        rdb::Value::Set(m) if m.is_empty() => return None,
        rdb::Value::Set(members) => {
            let mut s = Set::default();
            for m in &members {
                s.add(m, lim.set_max_ints);
            }
            Value::Set(Box::new(s))
        }
        rdb::Value::Hash(p) if p.is_empty() => return None,
        rdb::Value::Hash(pairs) => {
            let mut h = Hash::default();
            for (f, v) in &pairs {
                h.set(f, v, lim.hash);
            }
            Value::Hash(h)
        }
        rdb::Value::ZSet(e) if e.is_empty() => return None,
        rdb::Value::ZSet(mut entries) => {
            // One entry per member (the last one wins), in score order.
            let mut seen = std::collections::HashSet::new();
            entries.reverse();
            entries.retain(|(m, _)| seen.insert(m.clone()));
            entries.sort_by(|a, b| zset::cmp_entry(a.1, &a.0, b.1, &b.0));
            Value::ZSet(Box::new(ZSet::from_sorted(entries, lim.zset)))
        }
        // An empty stream is kept (a stream key outlives its entries).
        rdb::Value::Stream(s) => Value::Stream(Box::new(stream_from_rdb(*s, lim.stream))),
    })
}

/// One serialized slot table and the number of keys it holds.
type Chunk = (Vec<u8>, usize);

/// Serializes each slot table it is handed into per-database lists of chunks (appending never
/// copies what is already there).
struct Sink {
    /// Per database: the serialized slots, each with its number of keys.
    dbs: Vec<Mutex<Vec<Chunk>>>,
    format: Format,
}

impl Sink {
    fn new(databases: usize, format: Format) -> Self {
        Sink { dbs: (0..databases).map(|_| Mutex::new(Vec::new())).collect(), format }
    }
}

impl SnapshotSink for Sink {
    fn slot(&self, db: usize, _slot: usize, table: &SlotTable) {
        if table.is_empty() {
            return;
        }
        let mut local = Vec::new();
        for e in table.iter() {
            if self.format.commands {
                put_key_commands(&mut local, e);
                continue;
            }
            if e.expire != 0 {
                encode::put_expire_ms(&mut local, e.expire);
            }
            encode_value(&mut local, Some(&e.key), &e.value, self.format);
        }
        self.dbs[db].lock().push((local, table.len()));
    }
}

/// Switches the file to database `db`: SELECTDB and RESIZEDB, or a SELECT command.
fn select(out: &mut Vec<u8>, db: usize, (keys, expires): (u64, u64), commands: bool) {
    if commands {
        put_command(out, &[b"SELECT", db.to_string().as_bytes()]);
    } else {
        rdb::file::put_select_db(out, db);
        rdb::file::put_resize_db(out, keys, expires);
    }
}

/// Writes serialized slots, waiting `key_delay_us` per key after each (rdb-key-save-delay).
fn write_chunks<W: std::io::Write>(w: &mut rdb::file::Writer<W>, chunks: &[Chunk], key_delay_us: u64) -> std::io::Result<()> {
    for (bytes, keys) in chunks {
        w.write(bytes)?;
        if key_delay_us > 0 {
            std::thread::sleep(std::time::Duration::from_micros(key_delay_us * *keys as u64));
        }
    }
    Ok(())
}

/// What a save wrote.
#[derive(Debug, Default)]
pub struct Saved {
    pub keys: u64,
    pub bytes: u64,
}

/// Why a save did not happen.
#[derive(Debug)]
pub enum SaveError {
    /// Another snapshot is running.
    Busy,
    Io(std::io::Error),
}

impl std::fmt::Display for SaveError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SaveError::Busy => write!(f, "a snapshot is already in progress"),
            SaveError::Io(e) => write!(f, "{e}"),
        }
    }
}

/// Saves the keyspace as an RDB file at `path` (through `path`'s temp-<pid>.rdb sibling).
/// `aux` runs at the snapshot's instant, under every stripe lock, and returns the aux fields;
/// `functions` are the FUNCTION libraries' codes. `checksum` off writes a zero CRC.
pub fn save(
    ks: &Keyspace,
    path: &Path,
    format: Format,
    checksum: bool,
    functions: &[Vec<u8>],
    aux: impl FnOnce() -> Vec<(String, String)>,
) -> Result<Saved, SaveError> {
    let snap = Snapshot::begin(ks, format, aux)?;
    let tmp = path.with_file_name(format!("temp-{}.rdb", std::process::id()));
    let mut saved = Saved::default();
    rdb::file::write_atomically(path, &tmp, |f| {
        let mut w = std::io::BufWriter::with_capacity(1 << 16, f);
        saved = snap.write_to(&mut w, checksum, functions)?;
        w.flush()
    })
    .map_err(SaveError::Io)?;
    Ok(saved)
}

/// A snapshot that has begun (its instant is past) and is to be written out once.
/// Dropping it unwritten ends the snapshot.
pub struct Snapshot<'a> {
    ks: &'a Keyspace,
    sink: Arc<Sink>,
    counts: Vec<(u64, u64)>,
    fields: Vec<(String, String)>,
    format: Format,
    done: bool,
}

impl<'a> Snapshot<'a> {
    /// Takes the snapshot's instant (`aux` runs then, under every stripe lock). Busy when
    /// another snapshot runs.
    pub fn begin(ks: &'a Keyspace, format: Format, aux: impl FnOnce() -> Vec<(String, String)>) -> Result<Self, SaveError> {
        let sink = Arc::new(Sink::new(ks.databases, format));
        let mut counts = vec![(0u64, 0u64); ks.databases];
        let mut fields = Vec::new();
        let started = ks.begin_snapshot(sink.clone(), |guards| {
            for g in guards {
                for (db, c) in counts.iter_mut().enumerate() {
                    c.0 += g.keys(db) as u64;
                    c.1 += g.volatile(db) as u64;
                }
            }
            fields = aux();
        });
        if !started {
            return Err(SaveError::Busy);
        }
        Ok(Snapshot { ks, sink, counts, fields, format, done: false })
    }

    /// Writes the whole file (header, aux fields, functions, databases, EOF and checksum) to
    /// `w`, walking the slots not yet serialized as it goes.
    pub fn write_to(mut self, w: &mut dyn std::io::Write, checksum: bool, functions: &[Vec<u8>]) -> std::io::Result<Saved> {
        let (format, ks, sink) = (self.format, self.ks, self.sink.clone());
        let mut w = rdb::file::Writer::new(w);
        let mut head = if format.commands { Vec::new() } else { rdb::file::header() };
        for (k, v) in self.fields.iter().filter(|_| !format.commands) {
            rdb::file::put_aux(&mut head, k.as_bytes(), v.as_bytes());
        }
        for code in functions {
            if format.commands {
                put_command(&mut head, &[b"FUNCTION", b"LOAD", code]);
            } else {
                rdb::file::put_function(&mut head, code, format.compress);
            }
        }
        if self.counts[0].0 > 0 {
            select(&mut head, 0, self.counts[0], format.commands);
        }
        let mut io_err = w.write(&head).err();
        // Database 0 streams out while the walk goes on.
        self.done = true;
        ks.finish_snapshot(|i| {
            if io_err.is_none() && i % 16 == 15 {
                let chunks = std::mem::take(&mut *sink.dbs[0].lock());
                if let Err(e) = write_chunks(&mut w, &chunks, format.key_delay_us) {
                    io_err = Some(e);
                }
            }
        });
        if let Some(e) = io_err {
            return Err(e);
        }
        for (db, (keys, expires)) in self.counts.iter().enumerate() {
            let chunks = std::mem::take(&mut *sink.dbs[db].lock());
            if db > 0 && *keys > 0 {
                let mut sel = Vec::new();
                select(&mut sel, db, (*keys, *expires), format.commands);
                w.write(&sel)?;
            }
            write_chunks(&mut w, &chunks, format.key_delay_us)?;
        }
        let keys = self.counts.iter().map(|c| c.0).sum();
        if format.commands {
            return Ok(Saved { keys, bytes: w.written() });
        }
        let bytes = w.written() + 9;
        w.finish(checksum)?;
        Ok(Saved { keys, bytes })
    }
}

impl Drop for Snapshot<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.ks.finish_snapshot(|_| {});
        }
    }
}

/// What a load found.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Bytes read, up to and including the EOF trailer (an AOF's commands may follow).
    pub end: usize,
    pub keys: u64,
    pub expired: u64,
    pub functions: Vec<Vec<u8>>,
    pub aux: Vec<(String, String)>,
}

/// Loads an RDB file into the keyspace (which the caller has emptied). Keys already expired at
/// `now` are skipped, as a master does. Errors name the offset in the file.
pub fn load(ks: &Keyspace, bytes: &[u8], lim: &Limits, now: i64, lru: u32) -> Result<Loaded, rdb::Error> {
    let mut r = rdb::file::Reader::new(bytes)?;
    let mut out = Loaded::default();
    let mut db = 0;
    loop {
        let at = r.offset();
        match r.next_item()? {
            rdb::file::Item::End => {
                out.end = r.offset();
                break;
            }
            rdb::file::Item::SelectDb(n) => {
                if n >= ks.databases {
                    return Err(rdb::Error {
                        offset: at,
                        msg: format!(
                            "FATAL: Data file was created with a Redis server configured to handle more than {} databases.",
                            ks.databases
                        ),
                    });
                }
                db = n;
            }
            rdb::file::Item::ResizeDb(..) => {}
            rdb::file::Item::Aux(k, v) => {
                out.aux.push((String::from_utf8_lossy(&k).into_owned(), String::from_utf8_lossy(&v).into_owned()))
            }
            rdb::file::Item::Function(code) => out.functions.push(code),
            rdb::file::Item::Key { key, value, expire_ms, .. } => {
                let expire = expire_ms.unwrap_or(0);
                if expire != 0 && expire <= now {
                    out.expired += 1;
                    continue;
                }
                let Some(value) = value_from_rdb(value, lim) else { continue };
                let loc = ks.locate(&key);
                let mut g = ks.lock(loc.stripe);
                if g.insert(db, &loc, Entry { key: SmallBytes::new(&key), value, expire, lru }, &ks.hasher).is_some() {
                    return Err(rdb::Error {
                        offset: at,
                        msg: format!("Duplicate key '{}' found in RDB file", String::from_utf8_lossy(&key)),
                    });
                }
                drop(g);
                out.keys += 1;
                if lim.key_delay_us > 0 {
                    std::thread::sleep(std::time::Duration::from_micros(lim.key_delay_us));
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FORMAT: Format = Format { compress: true, list_node_bytes: 8192, commands: false, key_delay_us: 0 };

    fn put(ks: &Keyspace, db: usize, key: &[u8], value: Value, expire: i64) {
        let loc = ks.locate(key);
        let mut g = ks.lock(loc.stripe);
        g.insert(db, &loc, Entry { key: SmallBytes::new(key), value, expire, lru: 0 }, &ks.hasher);
    }

    fn all(ks: &Keyspace, dbs: usize) -> Vec<(usize, Vec<u8>, Value, i64)> {
        let mut v = Vec::new();
        for s in 0..crate::keyspace::STRIPES {
            let g = ks.lock(s);
            for db in 0..dbs {
                v.extend(g.entries(db).map(|e| (db, e.key.to_vec(), e.value.clone(), e.expire)));
            }
        }
        v.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        v
    }

    /// Writes that land after the snapshot began (overwrites, deletes, new keys) are not in it:
    /// each stripe reaches the snapshot before its first change.
    #[test]
    fn snapshot_holds_the_keyspace_as_it_was_when_it_began() {
        let ks = Keyspace::new(1);
        for i in 0..3000 {
            put(&ks, 0, format!("k{i}").as_bytes(), Value::Str(StrValue::from_bytes(b"old")), 0);
        }
        let sink = Arc::new(Sink::new(1, FORMAT));
        assert!(ks.begin_snapshot(sink.clone(), |_| {}));
        assert!(!ks.begin_snapshot(Arc::new(Sink::new(1, FORMAT)), |_| {}), "one at a time");
        for i in (0..3000).step_by(2) {
            put(&ks, 0, format!("k{i}").as_bytes(), Value::Str(StrValue::from_bytes(b"new")), 0);
        }
        for i in 0..500 {
            put(&ks, 0, format!("added{i}").as_bytes(), Value::Str(StrValue::from_bytes(b"new")), 0);
        }
        {
            let loc = ks.locate(b"k1");
            ks.lock(loc.stripe).remove(0, &loc, b"k1");
        }
        ks.finish_snapshot(|_| {});
        let bytes: Vec<u8> = std::mem::take(&mut *sink.dbs[0].lock()).into_iter().flat_map(|c| c.0).collect();
        let mut c = rdb::decode::Cursor::new(&bytes);
        let mut seen = std::collections::HashMap::new();
        while !c.at_end() {
            let t = c.byte().unwrap();
            let key = c.string().unwrap();
            seen.insert(key, c.value(t).unwrap());
        }
        assert_eq!(seen.len(), 3000);
        assert!(seen.values().all(|v| *v == rdb::Value::Str(b"old".to_vec())));
        // And the live keyspace has the new state.
        assert_eq!(all(&ks, 1).len(), 3000 + 500 - 1);
    }

    #[test]
    fn save_then_load_gives_the_same_keyspace() {
        let ks = Keyspace::new(3);
        let lim = Limits {
            hash: hash::Limits { max_entries: 128, max_value: 64 },
            zset: hash::Limits { max_entries: 128, max_value: 64 },
            stream: stream::NodeLimits { max_bytes: 4096, max_entries: 100 },
            set_max_ints: 512,
            key_delay_us: 0,
        };
        for i in 0..200 {
            let db = i % 3;
            let mut l = List::new();
            for j in 0..(i % 40) + 1 {
                l.push(false, format!("item{j}").as_bytes());
            }
            put(&ks, db, format!("list{i}").as_bytes(), Value::List(Box::new(l)), 0);
            let mut h = Hash::default();
            for j in 0..(i * 3) % 300 + 1 {
                h.set(format!("f{j}").as_bytes(), format!("{j}").as_bytes(), lim.hash);
            }
            put(&ks, db, format!("hash{i}").as_bytes(), Value::Hash(h), if i % 5 == 0 { 4_102_444_800_000 } else { 0 });
            let mut s = Set::default();
            for j in 0..(i % 20) + 1 {
                s.add(if i % 2 == 0 { j.to_string() } else { format!("m{j}") }.as_bytes(), lim.set_max_ints);
            }
            put(&ks, db, format!("set{i}").as_bytes(), Value::Set(Box::new(s)), 0);
            let entries: Vec<(Vec<u8>, f64)> = (0..(i * 2) % 200 + 1).map(|j| (format!("z{j:04}").into_bytes(), j as f64 / 3.0)).collect();
            put(&ks, db, format!("zset{i}").as_bytes(), Value::ZSet(Box::new(ZSet::from_sorted(entries, lim.zset))), 0);
            put(&ks, db, format!("str{i}").as_bytes(), Value::Str(StrValue::from_bytes(i.to_string().repeat(i % 30).as_bytes())), 0);
        }
        let dir = std::env::temp_dir().join(format!("ferrodis-rdb-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("dump.rdb");
        let functions = vec![b"#!lua name=x\nredis.register_function('f', function() return 1 end)".to_vec()];
        let saved = save(&ks, &path, FORMAT, true, &functions, || vec![("redis-ver".into(), "7.0.15".into())]).unwrap();
        assert_eq!(saved.keys, 1000, "{saved:?}");
        let bytes = std::fs::read(&path).unwrap();
        let ks2 = Keyspace::new(3);
        let loaded = load(&ks2, &bytes, &lim, 0, 0).unwrap();
        assert_eq!(loaded.functions, functions);
        assert_eq!(all(&ks, 3), all(&ks2, 3));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
