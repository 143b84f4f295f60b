//! THE ordered write stream. Every keyspace mutation's *effect* is appended here, in RESP, while
//! the writer still holds the stripe locks of the keys it touched, so the order of the journal is a
//! valid serial order. Its offset is the replication offset; it feeds (and only feeds) the
//! replication backlog, replicas and the AOF.
//!
//! Like Redis, the journal does nothing until it has a consumer (Redis creates the backlog when the
//! first replica attaches): `enable` switches it on, and until then appending costs one atomic load.
//!
//! Architecture invariant: the journal imports nothing of ours; it only sees RESP argument lists.

use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

struct Inner {
    /// Bytes of the stream from `start` to `start + data.len()` (bounded: the backlog).
    data: std::collections::VecDeque<u8>,
    /// Offset of the first byte still held.
    start: u64,
    /// Capacity of the backlog (`repl-backlog-size`).
    cap: usize,
    /// Database the stream last selected.
    db: Option<usize>,
    /// While the AOF is on: the bytes appended since the AOF writer last took them.
    aof: Option<Vec<u8>>,
}

pub struct Journal {
    enabled: AtomicBool,
    inner: Mutex<Inner>,
}

fn encode(out: &mut std::collections::VecDeque<u8>, args: &[&[u8]]) {
    resp::encode_command(out, args);
}

impl Inner {
    /// Copies what was appended from `at` on to the AOF buffer, when it is kept.
    fn tap(&mut self, at: usize) {
        if let Some(a) = self.aof.as_mut() {
            a.extend(self.data.range(at..));
        }
    }
    /// Keeps the backlog within its capacity.
    fn trim(&mut self) {
        let over = self.data.len().saturating_sub(self.cap);
        if over > 0 {
            self.data.drain(..over);
            self.start += over as u64;
        }
    }
}

impl Journal {
    pub fn new(backlog_size: usize) -> Self {
        Journal {
            enabled: AtomicBool::new(false),
            inner: Mutex::new(Inner { data: Default::default(), start: 0, cap: backlog_size.max(16 * 1024), db: None, aof: None }),
        }
    }
    /// Starts recording (a consumer has appeared).
    pub fn enable(&self) {
        self.enabled.store(true, Ordering::Release);
    }
    #[inline]
    pub fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }
    /// Appends one command's effect, selecting `db` first when the stream is elsewhere.
    /// Call while holding the stripe locks of the keys the effect touches.
    #[inline]
    pub fn append(&self, db: usize, args: &[&[u8]]) {
        if !self.enabled() {
            return;
        }
        let mut g = self.inner.lock();
        let g = &mut *g;
        let at = g.data.len();
        if g.db != Some(db) {
            let d = itoa::Buffer::new().format(db).to_owned();
            encode(&mut g.data, &[b"SELECT", d.as_bytes()]);
            g.db = Some(db);
        }
        encode(&mut g.data, args);
        g.tap(at);
        g.trim();
    }
    /// Appends several effects as one uninterrupted run (an EXEC's MULTI ... EXEC block).
    pub fn append_batch(&self, items: &[(usize, Vec<Vec<u8>>)]) {
        if !self.enabled() || items.is_empty() {
            return;
        }
        let mut g = self.inner.lock();
        let g = &mut *g;
        let at = g.data.len();
        for (db, args) in items {
            if g.db != Some(*db) {
                let d = itoa::Buffer::new().format(*db).to_owned();
                encode(&mut g.data, &[b"SELECT", d.as_bytes()]);
                g.db = Some(*db);
            }
            let a: Vec<&[u8]> = args.iter().map(|x| x.as_slice()).collect();
            encode(&mut g.data, &a);
        }
        g.tap(at);
        g.trim();
    }
    /// Starts (or stops) keeping a copy of what is appended for the AOF writer.
    pub fn set_aof_tap(&self, on: bool) {
        let mut g = self.inner.lock();
        g.aof = if on { Some(g.aof.take().unwrap_or_default()) } else { None };
        if on {
            self.enable();
        }
    }
    /// Takes the bytes kept for the AOF, and the stream offset after them.
    pub fn take_aof(&self) -> (Vec<u8>, u64) {
        let mut g = self.inner.lock();
        let end = g.start + g.data.len() as u64;
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
        let g = self.inner.lock();
        g.start + g.data.len() as u64
    }
    /// The stream from `from` to the end, if the backlog still holds it.
    pub fn read_from(&self, from: u64) -> Option<Vec<u8>> {
        let g = self.inner.lock();
        if from < g.start || from > g.start + g.data.len() as u64 {
            return None;
        }
        Some(g.data.iter().skip((from - g.start) as usize).copied().collect())
    }
    /// First offset still in the backlog and the number of bytes held.
    pub fn backlog(&self) -> (u64, usize, usize) {
        let g = self.inner.lock();
        (g.start, g.data.len(), g.cap)
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
}
