//! The append-only file in Redis 7.0's multi-part layout: in `appenddirname`, a manifest
//! (`<appendfilename>.manifest`) naming one base file (`<name>.<seq>.base.rdb`, an RDB, or
//! `.base.aof`, commands) and the incremental files (`<name>.<seq>.incr.aof`, commands in RESP)
//! written since. The journal keeps a copy of its stream for the AOF (`Journal::set_aof_tap`);
//! `Aof::write_pending` moves it to the last incr file, with an fsync when asked.
//!
//! Knows files and the journal; replaying commands and loading RDB bases are the caller's
//! (closures), so this module needs nothing above it.

use crate::journal::Journal;
use parking_lot::Mutex;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// `appendfsync`.
pub const FSYNC_NO: u8 = 0;
pub const FSYNC_EVERYSEC: u8 = 1;
pub const FSYNC_ALWAYS: u8 = 2;

/// What the manifest lists: the base file and the incr files in order (file name, seq).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Manifest {
    pub base: Option<(String, u64)>,
    pub incrs: Vec<(String, u64)>,
}

impl Manifest {
    /// Parses a manifest ("file <name> seq <n> type <b|h|i>" per line; `#` lines are comments).
    pub fn parse(text: &str) -> Result<Manifest, String> {
        let mut m = Manifest::default();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let words = resp::split_args(line.as_bytes()).ok_or_else(|| format!("Invalid AOF manifest file format (line {})", n + 1))?;
            let words: Vec<String> = words.into_iter().map(|w| String::from_utf8_lossy(&w).into_owned()).collect();
            if !words.len().is_multiple_of(2) {
                return Err(format!("Invalid AOF manifest file format (line {})", n + 1));
            }
            let get = |k: &str| words.chunks(2).find(|p| p[0] == k).map(|p| p[1].clone());
            let (Some(file), Some(seq), Some(kind)) = (get("file"), get("seq").and_then(|s| s.parse::<u64>().ok()), get("type")) else {
                return Err(format!("Invalid AOF manifest file format (line {})", n + 1));
            };
            if file.contains('/') {
                return Err(format!("File can't be a path: {file}"));
            }
            match kind.as_str() {
                "b" => {
                    if m.base.is_some() {
                        return Err("Found duplicate base file information".into());
                    }
                    m.base = Some((file, seq));
                }
                "i" => {
                    if m.incrs.last().is_some_and(|(_, s)| *s >= seq) {
                        return Err("Found a non-monotonic sequence number".into());
                    }
                    m.incrs.push((file, seq));
                }
                "h" => {}
                _ => return Err(format!("Unknown AOF file type: {kind}")),
            }
        }
        if m.base.is_none() && m.incrs.is_empty() {
            return Err("Found an empty AOF manifest".into());
        }
        Ok(m)
    }

    pub fn render(&self) -> String {
        let mut s = String::new();
        if let Some((f, seq)) = &self.base {
            s.push_str(&format!("file {f} seq {seq} type b\n"));
        }
        for (f, seq) in &self.incrs {
            s.push_str(&format!("file {f} seq {seq} type i\n"));
        }
        s
    }
}

struct Inner {
    manifest: Manifest,
    /// The last incr file, open for appending.
    file: Option<std::fs::File>,
    /// Bytes in the incr files since the last rewrite, and in the base.
    incr_size: u64,
    base_size: u64,
    /// Bytes a failed write could not put in the file: they go first next time.
    retry: Vec<u8>,
}

/// The AOF of a running server.
pub struct Aof {
    pub dir: PathBuf,
    pub basename: String,
    inner: Mutex<Inner>,
    pub enabled: AtomicBool,
    /// Journal offset up to which the AOF is written, and fsynced.
    pub written: AtomicU64,
    pub synced: AtomicU64,
    /// The last write or fsync failed (`aof_last_write_status:err`).
    pub write_error: AtomicBool,
    /// `synced`, for connections waiting on it (appendfsync always).
    synced_tx: tokio::sync::watch::Sender<u64>,
    /// A connection waits for an fsync: the AOF thread is woken at once.
    sync_wanted: parking_lot::Mutex<bool>,
    sync_cv: parking_lot::Condvar,
}

/// Runs one replayed command (the caller's dispatch).
pub type Exec<'a> = dyn FnMut(&[&[u8]]) -> Result<(), String> + 'a;

/// Errors loading an AOF: where and why.
#[derive(Debug)]
pub struct LoadError(pub String);

/// What loading found.
#[derive(Debug, Default)]
pub struct Loaded {
    pub commands: u64,
    /// The last incr file ended in a partial command that was dropped (aof-load-truncated).
    pub truncated: bool,
}

impl Aof {
    pub fn new(dir: PathBuf, basename: String) -> Aof {
        Aof {
            dir,
            basename,
            inner: Mutex::new(Inner { manifest: Manifest::default(), file: None, incr_size: 0, base_size: 0, retry: Vec::new() }),
            enabled: AtomicBool::new(false),
            written: AtomicU64::new(0),
            synced: AtomicU64::new(0),
            write_error: AtomicBool::new(false),
            synced_tx: tokio::sync::watch::channel(0).0,
            sync_wanted: parking_lot::Mutex::new(false),
            sync_cv: parking_lot::Condvar::new(),
        }
    }

    /// appendfsync always: waits (without blocking the worker thread, so its other connections
    /// keep adding writes) until the stream up to `target` is fsynced by the AOF thread, which
    /// does one write and one fsync for everything waiting (group commit, as Redis's event loop
    /// does once per iteration).
    pub async fn wait_synced(&self, target: u64) {
        if self.synced.load(Ordering::Acquire) >= target {
            return;
        }
        let mut rx = self.synced_tx.subscribe();
        {
            *self.sync_wanted.lock() = true;
            self.sync_cv.notify_one();
        }
        loop {
            if *rx.borrow_and_update() >= target {
                return;
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
    }

    /// The AOF thread: sleeps until a connection wants an fsync, or `timeout`. True when one does.
    pub fn wait_for_work(&self, timeout: std::time::Duration) -> bool {
        let mut wanted = self.sync_wanted.lock();
        if !*wanted {
            self.sync_cv.wait_for(&mut wanted, timeout);
        }
        std::mem::replace(&mut *wanted, false)
    }

    fn manifest_path(&self) -> PathBuf {
        self.dir.join(format!("{}.manifest", self.basename))
    }

    /// The manifest on disk, if there is one.
    pub fn read_manifest(&self) -> Result<Option<Manifest>, String> {
        match std::fs::read_to_string(self.manifest_path()) {
            Ok(t) => Manifest::parse(&t).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("Can't read the AOF manifest {}: {e}", self.manifest_path().display())),
        }
    }

    fn write_manifest(&self, m: &Manifest) -> std::io::Result<()> {
        let tmp = self.dir.join(format!("temp-{}.manifest", self.basename));
        rdb::file::write_atomically(&self.manifest_path(), &tmp, |f| f.write_all(m.render().as_bytes()))
    }

    /// Redis 7's upgrade of a pre-7.0 AOF: when `old` (the single `appendfilename` file in the
    /// working directory) exists and there is no manifest, it moves into the AOF directory as
    /// the base ("file appendonly.aof seq 1 type b") and a manifest is written. The manifest
    /// comes back.
    pub fn upgrade_single_file(&self, old: &std::path::Path) -> std::io::Result<Option<Manifest>> {
        if !old.is_file() {
            return Ok(None);
        }
        std::fs::create_dir_all(&self.dir)?;
        let name = old.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| self.basename.clone());
        std::fs::rename(old, self.dir.join(&name))?;
        let m = Manifest { base: Some((name, 1)), incrs: Vec::new() };
        self.write_manifest(&m)?;
        tracing::info!("Successfully migrated an old-style AOF into the AOF directory {}", self.dir.display());
        Ok(Some(m))
    }

    /// Bytes of the base and of the incr files (INFO's aof_base_size and aof_current_size).
    pub fn sizes(&self) -> (u64, u64) {
        let g = self.inner.lock();
        (g.base_size, g.base_size + g.incr_size)
    }

    pub fn manifest(&self) -> Manifest {
        self.inner.lock().manifest.clone()
    }

    /// Loads the files the manifest names: the base through `load_rdb` (an RDB base) or as
    /// commands, then each incr file's commands through `exec`. A partial command at the end of
    /// the last file is dropped (and the file truncated there) when `truncated_ok`; anything
    /// else malformed is an error naming the file and offset.
    pub fn load(
        &self,
        m: &Manifest,
        truncated_ok: bool,
        load_rdb: &mut dyn FnMut(&[u8]) -> Result<usize, String>,
        exec: &mut Exec<'_>,
    ) -> Result<Loaded, LoadError> {
        let mut out = Loaded::default();
        let mut files: Vec<&str> = m.base.iter().map(|(f, _)| f.as_str()).collect();
        files.extend(m.incrs.iter().map(|(f, _)| f.as_str()));
        let n = files.len();
        let mut base_size = 0;
        let mut incr_size = 0;
        for (i, f) in files.iter().enumerate() {
            let path = self.dir.join(f);
            let bytes = match std::fs::read(&path) {
                Ok(b) => b,
                // Redis tolerates a missing incr file that is the last one (created, not written).
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && i + 1 == n && i > 0 => continue,
                Err(e) => return Err(LoadError(format!("The AOF file {} doesn't exist: {e}", path.display()))),
            };
            let is_base = i == 0 && m.base.is_some();
            if is_base {
                base_size = bytes.len() as u64;
            } else {
                incr_size += bytes.len() as u64;
            }
            let mut pos = 0;
            if bytes.starts_with(b"REDIS") {
                // An RDB base (or an RDB preamble): loaded up to its EOF, then commands may follow.
                pos = load_rdb(&bytes).map_err(|e| LoadError(format!("Error reading the RDB base of {}: {e}", path.display())))?;
            }
            let last = i + 1 == n;
            match replay(&bytes[pos..], exec) {
                Ok(c) => out.commands += c,
                Err(Replay::Truncated { at, commands }) if last && truncated_ok => {
                    out.commands += commands;
                    let valid = pos + at;
                    tracing::warn!("!!! Warning: short read while loading the AOF file {}!!!", path.display());
                    tracing::warn!("!!! Truncating the AOF at offset {} !!!", valid);
                    let f = std::fs::OpenOptions::new().write(true).open(&path).and_then(|f| f.set_len(valid as u64).map(|_| f));
                    if let Err(e) = f {
                        return Err(LoadError(format!("Error truncating the AOF file {}: {e}", path.display())));
                    }
                    tracing::warn!("AOF {} loaded anyway because aof-load-truncated is enabled", path.display());
                    if is_base {
                        base_size = valid as u64;
                    } else {
                        incr_size -= (bytes.len() - valid) as u64;
                    }
                    out.truncated = true;
                }
                Err(Replay::Truncated { at, .. }) => {
                    return Err(LoadError(format!(
                        "Unexpected end of file reading the append only file {} at offset {}. You can: 1) Make a backup of your AOF file, then use ./redis-check-aof --fix <filename.manifest>. 2) Alternatively you can set the 'aof-load-truncated' configuration option to yes and restart the server.",
                        path.display(),
                        pos + at
                    )))
                }
                Err(Replay::Bad { at, why }) => {
                    return Err(LoadError(format!(
                        "Bad file format reading the append only file {} at offset {}: {why}. Make a backup of your AOF file, then use ./redis-check-aof --fix <filename.manifest>",
                        path.display(),
                        pos + at
                    )))
                }
            }
        }
        let mut g = self.inner.lock();
        g.manifest = m.clone();
        g.base_size = base_size;
        g.incr_size = incr_size;
        Ok(out)
    }

    /// Opens the last incr file the manifest lists for appending, or a new one.
    pub fn open_for_append(&self, journal: &Journal) -> std::io::Result<()> {
        let mut g = self.inner.lock();
        match g.manifest.incrs.last().cloned() {
            Some((name, _)) => {
                g.file = Some(std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join(name))?);
                journal.reselect();
            }
            None => {
                drop(g);
                self.switch_incr(journal)?;
            }
        }
        self.start_tap(journal);
        Ok(())
    }

    /// Starts keeping the journal stream for the AOF from now on.
    pub fn start_tap(&self, journal: &Journal) {
        journal.set_aof_tap(true);
        let (_, end) = journal.take_aof();
        self.written.store(end, Ordering::Release);
        self.synced.store(end, Ordering::Release);
        self.synced_tx.send_replace(end);
        self.enabled.store(true, Ordering::Release);
    }

    /// Moves what the journal kept to the incr file; fsyncs when `sync`. Returns the journal
    /// offset now written. The fsync runs outside the file lock (on a duplicate of the file
    /// handle), so connections writing through (`write_through`) never wait for a disk flush.
    pub fn write_pending(&self, journal: &Journal, sync: bool) -> std::io::Result<u64> {
        let mut guard = self.inner.lock();
        let g = &mut *guard;
        let (mut bytes, end) = journal.take_aof();
        if !g.retry.is_empty() {
            let mut all = std::mem::take(&mut g.retry);
            all.extend_from_slice(&bytes);
            bytes = all;
        }
        let Some(f) = g.file.as_mut() else { return Ok(end) };
        if !bytes.is_empty() {
            let before = f.metadata().map(|m| m.len()).ok();
            if let Err(e) = f.write_all(&bytes) {
                // Undo a partial write (as Redis truncates back) and keep the bytes for next time.
                if let Some(len) = before {
                    let _ = f.set_len(len);
                }
                g.retry = bytes;
                self.write_error.store(true, Ordering::Relaxed);
                tracing::warn!("Error writing to the AOF file: {}", e);
                return Err(e);
            }
            g.incr_size += bytes.len() as u64;
            self.written.store(end, Ordering::Release);
        } else if self.written.load(Ordering::Acquire) < end {
            self.written.store(end, Ordering::Release);
        }
        if !sync || self.synced.load(Ordering::Acquire) >= end {
            self.write_error.store(false, Ordering::Relaxed);
            return Ok(end);
        }
        let handle = f.try_clone();
        drop(guard);
        match handle.and_then(|h| h.sync_data()) {
            Ok(()) => {
                self.synced.fetch_max(end, Ordering::AcqRel);
                self.synced_tx.send_replace(self.synced.load(Ordering::Acquire));
                self.write_error.store(false, Ordering::Relaxed);
                Ok(end)
            }
            Err(e) => {
                self.write_error.store(true, Ordering::Relaxed);
                tracing::warn!("Error fsyncing the AOF file: {}", e);
                Err(e)
            }
        }
    }

    /// appendfsync everysec / no: the stream up to `target` goes to the file (the kernel) before
    /// the replies that acknowledge it, as Redis writes its AOF buffer before replying: a crash
    /// of the process then loses no acknowledged write (fsync stays on the policy's schedule).
    /// Whoever holds the file lock writes everything pending, so one write covers every
    /// connection waiting behind it.
    pub fn write_through(&self, journal: &Journal, target: u64) {
        if self.written.load(Ordering::Acquire) < target {
            let _ = self.write_pending(journal, false);
        }
    }

    /// Starts a new incr file (seq + 1) and lists it in the manifest; what was pending goes to
    /// the old one first. Call with every stripe locked when the switch must match a snapshot.
    pub fn switch_incr(&self, journal: &Journal) -> std::io::Result<u64> {
        let mut g = self.inner.lock();
        let (bytes, end) = journal.take_aof();
        if let Some(f) = g.file.as_mut() {
            f.write_all(&bytes)?;
            f.sync_data()?;
        }
        std::fs::create_dir_all(&self.dir)?;
        let seq = g.manifest.incrs.last().map_or(1, |(_, s)| s + 1);
        let name = format!("{}.{}.incr.aof", self.basename, seq);
        let f = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join(&name))?;
        let mut m = g.manifest.clone();
        m.incrs.push((name, seq));
        self.write_manifest(&m)?;
        g.manifest = m;
        g.file = Some(f);
        journal.reselect();
        self.written.store(end, Ordering::Release);
        self.synced.store(end, Ordering::Release);
        self.synced_tx.send_replace(end);
        Ok(seq)
    }

    /// After a rewrite: `base` (already written in the directory) becomes the base, the incr
    /// files before `first_incr` are dropped from the manifest and deleted.
    pub fn install_base(&self, base: &str, base_seq: u64, first_incr: u64) -> std::io::Result<()> {
        let mut g = self.inner.lock();
        let old = g.manifest.clone();
        let mut m = Manifest { base: Some((base.to_string(), base_seq)), incrs: Vec::new() };
        m.incrs = old.incrs.iter().filter(|(_, s)| *s >= first_incr).cloned().collect();
        self.write_manifest(&m)?;
        let keep: Vec<&str> = m.base.iter().map(|(f, _)| f.as_str()).chain(m.incrs.iter().map(|(f, _)| f.as_str())).collect();
        for (f, _) in old.base.iter().chain(old.incrs.iter()) {
            if !keep.contains(&f.as_str()) {
                let _ = std::fs::remove_file(self.dir.join(f));
            }
        }
        g.base_size = std::fs::metadata(self.dir.join(base)).map(|m| m.len()).unwrap_or(0);
        g.incr_size = m.incrs.iter().map(|(f, _)| std::fs::metadata(self.dir.join(f)).map(|m| m.len()).unwrap_or(0)).sum();
        g.manifest = m;
        Ok(())
    }

    /// The name the next base file gets.
    pub fn next_base(&self, rdb: bool) -> (String, u64) {
        let g = self.inner.lock();
        let seq = g.manifest.base.as_ref().map_or(1, |(_, s)| s + 1);
        (format!("{}.{}.base.{}", self.basename, seq, if rdb { "rdb" } else { "aof" }), seq)
    }

    /// Stops appending (appendonly no): writes and fsyncs what is pending, closes the file.
    pub fn stop(&self, journal: &Journal) {
        let _ = self.write_pending(journal, true);
        journal.set_aof_tap(false);
        self.enabled.store(false, Ordering::Release);
        self.inner.lock().file = None;
    }

    pub fn path_of(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

enum Replay {
    /// The data ends inside a command (or inside a MULTI block) that starts at `at`.
    Truncated {
        at: usize,
        commands: u64,
    },
    Bad {
        at: usize,
        why: String,
    },
}

/// Replays RESP commands (and skips `#` annotation lines, as Redis 7's timestamps).
fn replay(b: &[u8], exec: &mut Exec<'_>) -> Result<u64, Replay> {
    let mut pos = 0;
    let mut n = 0;
    let mut req = resp::Request::default();
    let limits = resp::Limits { max_bulk_len: i64::MAX / 4, ..resp::Limits::default() };
    // Commands of an open MULTI block wait until its EXEC (an unfinished one is dropped).
    let mut multi_at: Option<usize> = None;
    while pos < b.len() {
        if b[pos] == b'#' {
            match b[pos..].windows(2).position(|w| w == b"\r\n") {
                Some(e) => {
                    pos += e + 2;
                    continue;
                }
                None => return Err(Replay::Truncated { at: multi_at.unwrap_or(pos), commands: n }),
            }
        }
        if b[pos] != b'*' {
            return Err(Replay::Bad { at: pos, why: "expected '*'".into() });
        }
        match resp::parse_request(&b[pos..], &limits, &mut req) {
            Ok(true) => {}
            Ok(false) => return Err(Replay::Truncated { at: multi_at.unwrap_or(pos), commands: n }),
            Err(e) => return Err(Replay::Bad { at: pos, why: e.0.to_string() }),
        }
        let base = &b[pos..];
        let argv: Vec<&[u8]> = (0..req.argc()).map(|i| req.arg(base, i)).collect();
        if argv.is_empty() {
            return Err(Replay::Bad { at: pos, why: "empty command".into() });
        }
        if argv[0].eq_ignore_ascii_case(b"multi") {
            multi_at = Some(pos);
        } else if argv[0].eq_ignore_ascii_case(b"exec") {
            multi_at = None;
        }
        exec(&argv).map_err(|why| Replay::Bad { at: pos, why })?;
        n += 1;
        pos += req.consumed;
    }
    if let Some(at) = multi_at {
        return Err(Replay::Truncated { at, commands: n });
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_round_trip_and_errors() {
        let t = "file appendonly.aof.1.base.rdb seq 1 type b\nfile appendonly.aof.1.incr.aof seq 1 type i\nfile appendonly.aof.2.incr.aof seq 2 type i\n";
        let m = Manifest::parse(t).unwrap();
        assert_eq!(m.base, Some(("appendonly.aof.1.base.rdb".into(), 1)));
        assert_eq!(m.incrs.len(), 2);
        assert_eq!(m.render(), t);
        assert!(Manifest::parse("").is_err());
        assert!(Manifest::parse("file a seq 1 type x\n").is_err());
        assert!(Manifest::parse("file ../a seq 1 type b\n").is_err());
        assert!(Manifest::parse("# comment\nfile \"a b\" seq 3 type i\nfile old seq 1 type h\n").is_ok());
    }

    #[test]
    fn replay_stops_at_a_torn_command_or_transaction() {
        let mut seen = Vec::new();
        let full = b"*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n#TS:1\r\n*3\r\n$3\r\nSET\r\n$1\r\na\r\n$1\r\n1\r\n";
        let n = replay(full, &mut |a| {
            seen.push(a.iter().map(|x| x.to_vec()).collect::<Vec<_>>());
            Ok(())
        });
        assert!(matches!(n, Ok(2)));
        let torn = &full[..full.len() - 3];
        assert!(matches!(replay(torn, &mut |_| Ok(())), Err(Replay::Truncated { at: 30, commands: 1 })));
        let open_multi = b"*1\r\n$5\r\nMULTI\r\n*3\r\n$3\r\nSET\r\n$1\r\na\r\n$1\r\n1\r\n";
        assert!(matches!(replay(open_multi, &mut |_| Ok(())), Err(Replay::Truncated { at: 0, .. })));
        assert!(matches!(replay(b"garbage", &mut |_| Ok(())), Err(Replay::Bad { at: 0, .. })));
    }
}
