//! THE ordered write stream. Every keyspace mutation's *effect* is appended here, in RESP, while
//! the writer still holds the stripe locks of the keys it touched, so the order of the journal is a
//! valid serial order. Its offset is the replication offset; it feeds (and only feeds) the
//! replication backlog, replicas and the AOF.
//!
//! Like Redis, the journal does nothing until it has a consumer (Redis creates the backlog when the
//! first replica attaches): `enable` switches it on, and until then appending costs one atomic load.
//!
//! On a replica the journal is a *follower*: the server's own effects are not recorded (a replica
//! does not propagate what its clients write, nor expire keys itself); instead the master's stream
//! is appended byte for byte (`append_raw`), so the replica's offsets and backlog equal its
//! master's, and its own replicas (chaining) and its AOF get the master's stream.
//!
//! Replicas read the stream through `Reader`s: a reader's position keeps the bytes after it from
//! being trimmed, up to `reader_limit` bytes behind the end (Redis 7's shared replication buffer
//! with `client-output-buffer-limit replica`); a reader further behind is dropped, so memory stays
//! bounded.
//!
//! Architecture invariant: the journal imports nothing of ours; it only sees RESP argument lists.

use parking_lot::Mutex;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

struct Inner {
    /// Bytes of the stream from `start` to `start + data.len()` (bounded: the backlog).
    data: VecDeque<u8>,
    /// Offset of the first byte still held.
    start: u64,
    /// Capacity of the backlog (`repl-backlog-size`).
    cap: usize,
    /// Database the stream last selected.
    db: Option<usize>,
    /// While the AOF is on: the bytes appended since the AOF writer last took them.
    aof: Option<Vec<u8>>,
    /// Something consumes the stream (a replica attached once, or the AOF).
    consumer: bool,
    /// A replica's journal: only the master's stream is recorded.
    follower: bool,
    /// Replicas reading the stream.
    readers: Vec<Weak<Reader>>,
}

/// One replica's place in the stream.
#[derive(Debug)]
pub struct Reader {
    pos: AtomicU64,
    dropped: AtomicBool,
}

impl Reader {
    /// The offset of the next byte this reader gets.
    pub fn pos(&self) -> u64 {
        self.pos.load(Ordering::Acquire)
    }
    /// Fell too far behind (or the stream was reset): its replica must resynchronize.
    pub fn dropped(&self) -> bool {
        self.dropped.load(Ordering::Acquire)
    }
    pub fn drop_now(&self) {
        self.dropped.store(true, Ordering::Release);
    }
}

/// A reader fell too far behind, or the stream was reset under it.
#[derive(Debug, PartialEq, Eq)]
pub struct Dropped;

pub struct Journal {
    /// Effects are recorded: a consumer exists and this is not a follower.
    enabled: AtomicBool,
    /// The offset after the last byte (read without the lock).
    end: AtomicU64,
    /// How far (bytes) a reader may fall behind the end before it is dropped; 0: no limit.
    pub reader_limit: AtomicU64,
    readers_waiting: AtomicUsize,
    changed: tokio::sync::Notify,
    inner: Mutex<Inner>,
}

fn encode(out: &mut VecDeque<u8>, args: &[&[u8]]) {
    resp::encode_command(out, args);
}

impl Inner {
    /// Copies what was appended from `at` on to the AOF buffer, when it is kept.
    fn tap(&mut self, at: usize) {
        if let Some(a) = self.aof.as_mut() {
            a.extend(self.data.range(at..));
        }
    }
    fn end(&self) -> u64 {
        self.start + self.data.len() as u64
    }
    /// Keeps the backlog within its capacity, but keeps what readers still need (up to `limit`
    /// bytes behind the end; readers further behind are dropped).
    fn trim(&mut self, limit: u64) {
        let over = self.data.len().saturating_sub(self.cap);
        if over == 0 {
            return;
        }
        let end = self.end();
        let mut keep_from = self.start + over as u64;
        self.readers.retain(|w| {
            let Some(r) = w.upgrade() else { return false };
            let pos = r.pos();
            if r.dropped() {
                return false;
            }
            if pos < keep_from {
                if limit > 0 && end - pos > limit {
                    r.drop_now();
                    return false;
                }
                keep_from = pos;
            }
            true
        });
        let n = (keep_from.max(self.start) - self.start) as usize;
        if n > 0 {
            self.data.drain(..n);
            self.start += n as u64;
        }
    }
    fn select(&mut self, db: usize) {
        if self.db != Some(db) {
            let d = itoa::Buffer::new().format(db).to_owned();
            encode(&mut self.data, &[b"SELECT", d.as_bytes()]);
            self.db = Some(db);
        }
    }
}

impl Journal {
    pub fn new(backlog_size: usize) -> Self {
        Journal {
            enabled: AtomicBool::new(false),
            end: AtomicU64::new(0),
            reader_limit: AtomicU64::new(0),
            readers_waiting: AtomicUsize::new(0),
            changed: tokio::sync::Notify::new(),
            inner: Mutex::new(Inner {
                data: Default::default(),
                start: 0,
                cap: backlog_size.max(16 * 1024),
                db: None,
                aof: None,
                consumer: false,
                follower: false,
                readers: Vec::new(),
            }),
        }
    }
    fn refresh(&self, g: &Inner) {
        self.enabled.store(g.consumer && !g.follower, Ordering::Release);
    }
    /// Starts recording (a consumer has appeared).
    pub fn enable(&self) {
        let mut g = self.inner.lock();
        g.consumer = true;
        self.refresh(&g);
    }
    /// True when effects are recorded.
    #[inline]
    pub fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }
    /// True when the stream is kept at all (a master with a backlog, or a replica).
    pub fn active(&self) -> bool {
        let g = self.inner.lock();
        g.consumer || g.follower
    }
    /// Makes this a replica's journal (only `append_raw` records) or a master's again.
    pub fn set_follower(&self, on: bool) {
        let mut g = self.inner.lock();
        // A promoted replica keeps its backlog: its old master's other replicas continue from it.
        if !on && g.follower {
            g.consumer = true;
        }
        g.follower = on;
        // A master's next effect selects its database explicitly.
        g.db = None;
        self.refresh(&g);
    }
    fn appended(&self, g: &mut Inner, at: usize) {
        g.tap(at);
        g.trim(self.reader_limit.load(Ordering::Relaxed));
        self.end.store(g.end(), Ordering::Release);
    }
    fn wake(&self) {
        if self.readers_waiting.load(Ordering::Acquire) > 0 {
            self.changed.notify_waiters();
        }
    }
    /// Appends one command's effect, selecting `db` first when the stream is elsewhere; returns
    /// the offset after it (0 when nothing is recorded).
    /// Call while holding the stripe locks of the keys the effect touches.
    #[inline]
    pub fn append(&self, db: usize, args: &[&[u8]]) -> u64 {
        if !self.enabled() {
            return 0;
        }
        let end = {
            let mut g = self.inner.lock();
            let g = &mut *g;
            let at = g.data.len();
            g.select(db);
            encode(&mut g.data, args);
            self.appended(g, at);
            g.end()
        };
        self.wake();
        end
    }
    /// Appends several effects as one uninterrupted run (an EXEC's MULTI ... EXEC block).
    pub fn append_batch(&self, items: &[(usize, Vec<Vec<u8>>)]) -> u64 {
        if !self.enabled() || items.is_empty() {
            return 0;
        }
        let end = {
            let mut g = self.inner.lock();
            let g = &mut *g;
            let at = g.data.len();
            for (db, args) in items {
                g.select(*db);
                let a: Vec<&[u8]> = args.iter().map(|x| x.as_slice()).collect();
                encode(&mut g.data, &a);
            }
            self.appended(g, at);
            g.end()
        };
        self.wake();
        end
    }
    /// Appends a command that belongs to no database (the master's PING, REPLCONF GETACK), when
    /// the stream is recorded at all; returns the offset after it.
    pub fn append_nodb(&self, args: &[&[u8]]) -> u64 {
        let end = {
            let mut g = self.inner.lock();
            if !g.consumer || g.follower {
                return g.end();
            }
            let at = g.data.len();
            encode(&mut g.data, args);
            self.appended(&mut g, at);
            g.end()
        };
        self.wake();
        end
    }
    /// Appends bytes of the master's stream as they are (a replica's journal).
    pub fn append_raw(&self, bytes: &[u8]) -> u64 {
        let end = {
            let mut g = self.inner.lock();
            let at = g.data.len();
            g.data.extend(bytes);
            // A promoted replica's first effect selects its database explicitly.
            g.db = None;
            self.appended(&mut g, at);
            g.end()
        };
        self.wake();
        end
    }
    /// Empties the backlog and continues the stream at `offset` (a replica's full resync). Every
    /// reader is dropped: its history is gone.
    pub fn reset(&self, offset: u64) {
        let mut g = self.inner.lock();
        g.data.clear();
        g.start = offset;
        g.db = None;
        for r in g.readers.drain(..).filter_map(|w| w.upgrade()) {
            r.drop_now();
        }
        self.end.store(offset, Ordering::Release);
        drop(g);
        self.changed.notify_waiters();
    }
    /// Frees the backlog (`repl-backlog-ttl` passed with no replica): the offset stays, and
    /// effects are recorded again only for the AOF or when a replica attaches.
    pub fn free_backlog(&self) {
        let mut g = self.inner.lock();
        let end = g.end();
        g.data.clear();
        g.start = end;
        g.consumer = g.aof.is_some();
        self.refresh(&g);
    }
    /// Drops every reader (their replicas reconnect and resynchronize).
    pub fn drop_readers(&self) {
        let mut g = self.inner.lock();
        for r in g.readers.drain(..).filter_map(|w| w.upgrade()) {
            r.drop_now();
        }
        drop(g);
        self.changed.notify_waiters();
    }
    /// A reader from `from` on, if the backlog still holds `from`. Records the stream from now on.
    pub fn reader(&self, from: u64) -> Option<Arc<Reader>> {
        let mut g = self.inner.lock();
        if from < g.start || from > g.end() {
            return None;
        }
        let r = Arc::new(Reader { pos: AtomicU64::new(from), dropped: AtomicBool::new(false) });
        g.readers.push(Arc::downgrade(&r));
        Some(r)
    }
    /// Starts recording (a replica's full resync) and returns a reader at the current end. Call
    /// at a snapshot's instant, under every stripe lock, so the reader starts where it ends.
    pub fn reader_at_end(&self) -> Arc<Reader> {
        let mut g = self.inner.lock();
        g.consumer = true;
        self.refresh(&g);
        // The replica learns no database from the snapshot: the stream selects one first.
        if !g.follower {
            g.db = None;
        }
        let r = Arc::new(Reader { pos: AtomicU64::new(g.end()), dropped: AtomicBool::new(false) });
        g.readers.push(Arc::downgrade(&r));
        r
    }
    /// Moves up to `max` bytes after the reader's position into `out`. Ok(0) when there is
    /// nothing new; Err when the reader was dropped.
    pub fn read(&self, r: &Reader, out: &mut Vec<u8>, max: usize) -> Result<usize, Dropped> {
        if r.dropped() {
            return Err(Dropped);
        }
        let g = self.inner.lock();
        let pos = r.pos();
        if pos < g.start || r.dropped() {
            r.drop_now();
            return Err(Dropped);
        }
        let skip = (pos - g.start) as usize;
        let n = g.data.len().saturating_sub(skip).min(max);
        out.extend(g.data.range(skip..skip + n));
        r.pos.store(pos + n as u64, Ordering::Release);
        Ok(n)
    }
    /// Waits until the stream may have grown past `pos` (or readers were dropped).
    pub async fn wait_past(&self, pos: u64) {
        let n = self.changed.notified();
        tokio::pin!(n);
        n.as_mut().enable();
        self.readers_waiting.fetch_add(1, Ordering::AcqRel);
        if self.end() <= pos {
            n.await;
        }
        self.readers_waiting.fetch_sub(1, Ordering::AcqRel);
    }
    /// Starts (or stops) keeping a copy of what is appended for the AOF writer.
    pub fn set_aof_tap(&self, on: bool) {
        let mut g = self.inner.lock();
        g.aof = if on { Some(g.aof.take().unwrap_or_default()) } else { None };
        if on {
            g.consumer = true;
        }
        self.refresh(&g);
    }
    /// Takes the bytes kept for the AOF, and the stream offset after them.
    pub fn take_aof(&self) -> (Vec<u8>, u64) {
        let mut g = self.inner.lock();
        let end = g.end();
        (g.aof.as_mut().map(std::mem::take).unwrap_or_default(), end)
    }
    /// Bytes waiting for the AOF writer.
    pub fn aof_pending(&self) -> usize {
        self.inner.lock().aof.as_ref().map_or(0, |a| a.len())
    }
    /// Makes the next effect start with a SELECT (a new AOF file begins).
    pub fn reselect(&self) {
        self.inner.lock().db = None;
    }
    /// The offset after the last byte appended (`master_repl_offset`).
    pub fn offset(&self) -> u64 {
        self.inner.lock().end()
    }
    /// `offset` without the lock.
    #[inline]
    pub fn end(&self) -> u64 {
        self.end.load(Ordering::Acquire)
    }
    /// The stream from `from` to the end, if the backlog still holds it.
    pub fn read_from(&self, from: u64) -> Option<Vec<u8>> {
        let g = self.inner.lock();
        if from < g.start || from > g.end() {
            return None;
        }
        Some(g.data.iter().skip((from - g.start) as usize).copied().collect())
    }
    /// First offset still in the backlog, the number of bytes held, and the capacity.
    pub fn backlog(&self) -> (u64, usize, usize) {
        let g = self.inner.lock();
        (g.start, g.data.len(), g.cap)
    }
    /// Changes the backlog's capacity (CONFIG SET repl-backlog-size).
    pub fn set_capacity(&self, cap: usize) {
        let mut g = self.inner.lock();
        g.cap = cap.max(16 * 1024);
        let limit = self.reader_limit.load(Ordering::Relaxed);
        g.trim(limit);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn disabled_costs_nothing_and_enabled_records_in_order() {
        let j = Journal::new(1 << 20);
        j.append(0, &[b"SET", b"a", b"1"]);
        assert_eq!(j.offset(), 0);
        j.enable();
        j.append(0, &[b"SET", b"a", b"1"]);
        j.append(1, &[b"DEL", b"a"]);
        let s = j.read_from(0).unwrap();
        assert_eq!(
            s,
            b"*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n*3\r\n$3\r\nSET\r\n$1\r\na\r\n$1\r\n1\r\n*2\r\n$6\r\nSELECT\r\n$1\r\n1\r\n*2\r\n$3\r\nDEL\r\n$1\r\na\r\n"
        );
        assert_eq!(j.offset(), s.len() as u64);
    }
    #[test]
    fn backlog_is_bounded() {
        let j = Journal::new(16 * 1024);
        j.enable();
        for _ in 0..10_000 {
            j.append(0, &[b"SET", b"key", b"value"]);
        }
        let (start, len, cap) = j.backlog();
        assert!(len <= cap);
        assert_eq!(start + len as u64, j.offset());
        assert!(j.read_from(0).is_none());
    }
    #[test]
    fn a_reader_keeps_its_bytes_until_it_falls_too_far_behind() {
        let j = Journal::new(16 * 1024);
        j.enable();
        j.reader_limit.store(64 * 1024, Ordering::Relaxed);
        let r = j.reader(j.offset()).unwrap();
        for _ in 0..1000 {
            j.append(0, &[b"SET", b"key", b"value"]);
        }
        // Past the backlog's capacity, but within the limit: all still there for the reader.
        let mut out = Vec::new();
        assert_eq!(j.read(&r, &mut out, usize::MAX), Ok(j.offset() as usize));
        assert!(out.starts_with(b"*2\r\n$6\r\nSELECT"));
        for _ in 0..10_000 {
            j.append(0, &[b"SET", b"key", b"value"]);
        }
        assert!(r.dropped(), "a reader past the limit is dropped");
        assert!(j.read(&r, &mut out, 10).is_err());
        assert!(j.backlog().1 <= 16 * 1024);
    }
    #[test]
    fn a_follower_records_only_its_masters_stream() {
        let j = Journal::new(1 << 20);
        j.enable();
        j.set_follower(true);
        assert_eq!(j.append(0, &[b"SET", b"a", b"1"]), 0);
        j.reset(1000);
        j.append_raw(b"*1\r\n$4\r\nPING\r\n");
        assert_eq!(j.offset(), 1014);
        assert_eq!(j.read_from(1000).unwrap(), b"*1\r\n$4\r\nPING\r\n");
        // Promoted: its own effects are recorded again, selecting the database first.
        j.set_follower(false);
        j.append(3, &[b"DEL", b"a"]);
        assert!(String::from_utf8(j.read_from(1014).unwrap()).unwrap().starts_with("*2\r\n$6\r\nSELECT\r\n$1\r\n3"));
    }
}
