//! A container's log as wrend writes it and wren reads it: one file,
//! rotated by size (`log` → `log.1` → … → `log.<keep-1>`, the oldest
//! dropped), each file cut after the last whole line that fits. wrend holds
//! the writer ([`LogFile`]); `wren logs` and a foreground `wren run` read
//! the tail ([`tail_from`]) and follow the current file across rotations
//! ([`Follower`]), on the same host, without asking wrend for the data.
//!
//! The log itself is the container's bytes, unchanged. When it was
//! written is beside it, in `log.times` (rotated with it): one 16-byte
//! record per write in which a line begins, the offset in the file where
//! that write's bytes begin and the time wrend read them (little-endian
//! u64 and i64 nanoseconds since the epoch), never more bytes of records
//! than the file's size limit (the log rotates early first). A line's
//! time is that of the write its first byte came in ([`stamped_lines`]);
//! a write that only continues a line needs no record. `wren logs -t`, `--since` and
//! `--until` read them. A missing or short record file (a log written by an
//! older wrend) gives its lines the file's modification time.
//!
//! Runs in `wrend` (writing, on its loop thread) and in `wren` (reading).

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Rotate when the current file would grow past this many bytes.
pub const DEFAULT_MAX_SIZE: u64 = 10 * 1024 * 1024;
/// Files kept: the current one and `keep - 1` rotated ones.
pub const DEFAULT_KEEP: u32 = 3;
/// How many rotated files a reader looks through: more than wrend keeps
/// with any sane `--log-keep`; the first missing one ends the search.
pub const READ_KEEP: u32 = 16;

/// Rotated file `n` of the log at `path` (`log.1` is the newest).
fn rotated(path: &Path, n: u32) -> PathBuf {
    PathBuf::from(format!("{}.{n}", path.display()))
}

/// The record file beside log file `path`.
pub fn times_path(path: &Path) -> PathBuf {
    PathBuf::from(format!("{}.times", path.display()))
}

/// Size of one record of a `.times` file.
const TIME_RECORD: usize = 16;

/// The writer: one container's log file, with size-based rotation.
pub struct LogFile {
    path: PathBuf,
    file: Option<File>,
    /// The `.times` records, when this log keeps them ([`LogFile::timed`]).
    times: Option<File>,
    timed: bool,
    /// Bytes in the current `.times` file.
    times_size: u64,
    /// The current file ends inside a line (its last byte is not `\n`).
    mid_line: bool,
    size: u64,
    max_size: u64,
    keep: u32,
}

impl LogFile {
    pub fn new(path: PathBuf, max_size: u64, keep: u32) -> Self {
        Self {
            path,
            file: None,
            times: None,
            timed: false,
            times_size: 0,
            mid_line: false,
            size: 0,
            max_size: max_size.max(1),
            keep: keep.max(1),
        }
    }

    /// Keeps a `.times` record of each write beside the log.
    pub fn timed(mut self) -> Self {
        self.timed = true;
        self
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn open(&mut self) -> io::Result<&mut File> {
        if self.file.is_none() {
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o640)
                .custom_flags(libc::O_CLOEXEC)
                .open(&self.path)?;
            self.size = f.metadata()?.len();
            self.mid_line = false;
            if self.size > 0 {
                use std::os::unix::fs::FileExt;
                let mut last = [0u8; 1];
                if f.read_exact_at(&mut last, self.size - 1).is_ok() {
                    self.mid_line = last[0] != b'\n';
                }
            }
            self.file = Some(f);
            if self.timed {
                // Best effort: a log without times still works.
                self.times = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .mode(0o640)
                    .custom_flags(libc::O_CLOEXEC)
                    .open(times_path(&self.path))
                    .ok();
                self.times_size = self
                    .times
                    .as_ref()
                    .and_then(|t| t.metadata().ok())
                    .map_or(0, |m| m.len());
            }
        }
        self.file
            .as_mut()
            .ok_or_else(|| io::Error::other("log file not open"))
    }

    /// Records that the bytes written next, at the current end, arrived at
    /// `nanos`.
    fn stamp(&mut self, nanos: i64) {
        if let Some(t) = self.times.as_mut() {
            let mut rec = [0u8; TIME_RECORD];
            rec[..8].copy_from_slice(&self.size.to_le_bytes());
            rec[8..].copy_from_slice(&nanos.to_le_bytes());
            if t.write_all(&rec).is_err() {
                self.times = None;
            }
            self.times_size += TIME_RECORD as u64;
        }
    }

    /// Shifts `log.N` up by one (dropping the oldest) and starts a new file;
    /// the `.times` files move with them.
    fn rotate(&mut self) -> io::Result<()> {
        self.file = None;
        self.times = None;
        let both = |p: PathBuf| [times_path(&p), p];
        if self.keep == 1 {
            for p in both(self.path.clone()) {
                std::fs::remove_file(p).or_else(ignore_missing)?;
            }
            return Ok(());
        }
        for p in both(rotated(&self.path, self.keep - 1)) {
            std::fs::remove_file(p).or_else(ignore_missing)?;
        }
        for n in (1..self.keep - 1).rev() {
            let (from, to) = (
                both(rotated(&self.path, n)),
                both(rotated(&self.path, n + 1)),
            );
            for (f, t) in from.into_iter().zip(to) {
                std::fs::rename(f, t).or_else(ignore_missing)?;
            }
        }
        for (f, t) in both(self.path.clone())
            .into_iter()
            .zip(both(rotated(&self.path, 1)))
        {
            std::fs::rename(f, t).or_else(ignore_missing)?;
        }
        self.size = 0;
        self.times_size = 0;
        self.mid_line = false;
        Ok(())
    }

    /// Appends `data`, rotating whenever the current file is full. A file
    /// is cut after the last whole line that fits, or at the size limit
    /// when a line is longer than that.
    pub fn write(&mut self, mut data: &[u8]) -> io::Result<()> {
        let now = if self.timed { now_nanos() } else { 0 };
        while !data.is_empty() {
            self.open()?;
            let room = self.max_size.saturating_sub(self.size) as usize;
            let cut = if data.len() <= room {
                data.len()
            } else {
                data[..room]
                    .iter()
                    .rposition(|&b| b == b'\n')
                    .map(|i| i + 1)
                    .unwrap_or(if self.size == 0 { room } else { 0 })
            };
            // Records never outgrow the file they describe (a writer of
            // many tiny lines): the log is rotated early instead.
            if self.timed && self.size > 0 && self.times_size + TIME_RECORD as u64 > self.max_size {
                self.rotate()?;
                continue;
            }
            if cut > 0 {
                let chunk = &data[..cut];
                // Only a write in which a line begins needs a record: a
                // line's time is that of the write its first byte came in.
                let starts_line =
                    self.size == 0 || !self.mid_line || chunk[..cut - 1].contains(&b'\n');
                if starts_line {
                    // The record goes down before the bytes it describes.
                    self.stamp(now);
                }
                self.open()?.write_all(chunk)?;
                self.size += cut as u64;
                self.mid_line = chunk[cut - 1] != b'\n';
                data = &data[cut..];
            }
            if !data.is_empty() {
                self.rotate()?;
            }
        }
        Ok(())
    }
}

fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

/// The lines of `data` (the contents of log file `path`) with the time
/// each began to be written, from the file's `.times` records; lines
/// before the first record, or all of them without one, get the file's
/// modification time. A last line without a newline is included.
pub fn stamped_lines<'a>(path: &Path, data: &'a [u8]) -> Vec<(i64, &'a [u8])> {
    let records = read_times(&times_path(path));
    let fallback = std::fs::metadata(path)
        .ok()
        .and_then(|m| m.modified().ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as i64);
    let mut out = Vec::new();
    let mut start = 0usize;
    let mut r = 0usize;
    let mut at = records
        .first()
        .filter(|(o, _)| *o == 0)
        .map_or(fallback, |&(_, t)| t);
    while start < data.len() {
        while r < records.len() && records[r].0 <= start as u64 {
            at = records[r].1;
            r += 1;
        }
        let end = data[start..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(data.len(), |i| start + i + 1);
        out.push((at, &data[start..end]));
        start = end;
    }
    out
}

/// The `(offset, nanos)` records of a `.times` file, in order (a torn last
/// record is left out).
pub fn read_times(path: &Path) -> Vec<(u64, i64)> {
    let Ok(bytes) = std::fs::read(path) else {
        return Vec::new();
    };
    bytes
        .chunks_exact(TIME_RECORD)
        .map(|c| {
            let mut o = [0u8; 8];
            let mut t = [0u8; 8];
            o.copy_from_slice(&c[..8]);
            t.copy_from_slice(&c[8..]);
            (u64::from_le_bytes(o), i64::from_le_bytes(t))
        })
        .collect()
}

/// Every line of the log at `path` and its rotated files (up to `keep`),
/// oldest first, with its time ([`stamped_lines`]); the current file is
/// read through `current` to its end, for a follower to go on from there.
pub fn read_stamped(
    path: &Path,
    keep: u32,
    current: Option<&mut File>,
) -> io::Result<Vec<(i64, Vec<u8>)>> {
    let mut files = Vec::new();
    for i in (1..keep.max(1)).rev() {
        let p = rotated(path, i);
        match std::fs::read(&p) {
            Ok(data) => files.push((p, data)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    let mut data = Vec::new();
    if let Some(f) = current {
        f.read_to_end(&mut data)?;
    }
    files.push((path.to_owned(), data));
    let mut out = Vec::new();
    for (p, data) in &files {
        out.extend(
            stamped_lines(p, data)
                .into_iter()
                .map(|(t, l)| (t, l.to_vec())),
        );
    }
    Ok(out)
}

fn ignore_missing(e: io::Error) -> io::Result<()> {
    if e.kind() == io::ErrorKind::NotFound {
        Ok(())
    } else {
        Err(e)
    }
}

/// The last `n` lines of the log at `path` and its rotated files, oldest
/// first, reading the current file through `current` (already open) to its
/// end, so that a [`Follower`] can go on from exactly there.
pub fn tail_from(
    path: &Path,
    keep: u32,
    n: usize,
    current: Option<&mut File>,
) -> io::Result<Vec<u8>> {
    let mut out: Vec<u8> = Vec::new();
    if let Some(f) = current {
        f.read_to_end(&mut out)?;
    }
    for i in 1..keep.max(1) {
        if count_lines(&out) > n {
            break;
        }
        let mut data = Vec::new();
        match File::open(rotated(path, i)) {
            Ok(mut file) => file.read_to_end(&mut data)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => break,
            Err(e) => return Err(e),
        };
        data.extend_from_slice(&out);
        out = data;
    }
    Ok(last_lines(&out, n).to_vec())
}

fn count_lines(data: &[u8]) -> usize {
    let newlines = data.iter().filter(|&&b| b == b'\n').count();
    newlines + usize::from(data.last().is_some_and(|&b| b != b'\n'))
}

/// The suffix of `data` holding its last `n` lines.
pub fn last_lines(data: &[u8], n: usize) -> &[u8] {
    if n == 0 {
        return &data[data.len()..];
    }
    let body = data.strip_suffix(b"\n").unwrap_or(data);
    let mut seen = 0;
    for (i, &b) in body.iter().enumerate().rev() {
        if b == b'\n' {
            seen += 1;
            if seen == n {
                return &data[i + 1..];
            }
        }
    }
    data
}

/// Whether `path` now names another file than `file` (or a file where
/// there was none): the log was rotated, or made.
pub fn replaced(path: &Path, file: Option<&File>) -> bool {
    let current = std::fs::metadata(path).ok().map(|m| m.ino());
    let mine = file.and_then(|f| f.metadata().ok()).map(|m| m.ino());
    current.is_some() && current != mine
}

/// The reader that follows a log across rotations: it copies what is new
/// in its file and, when the path names a new file (a rotation happened),
/// finishes the old one and switches.
pub struct Follower {
    path: PathBuf,
    file: Option<File>,
}

impl Follower {
    /// Follows `path` from its start (or from where `file` stands).
    pub fn new(path: &Path, file: Option<File>) -> Self {
        Self {
            path: path.to_owned(),
            file,
        }
    }

    /// Follows `path` from its start, if it exists yet.
    pub fn open(path: &Path) -> Self {
        Self::new(path, File::open(path).ok())
    }

    /// Copies what is new to `out`.
    pub fn pump(&mut self, out: &mut impl Write) {
        loop {
            if let Some(f) = self.file.as_mut() {
                let _ = io::copy(f, out);
            }
            if replaced(&self.path, self.file.as_ref()) {
                self.file = File::open(&self.path).ok();
                continue;
            }
            break;
        }
        let _ = out.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tail(path: &Path, keep: u32, n: usize) -> Vec<u8> {
        let mut current = File::open(path).ok();
        tail_from(path, keep, n, current.as_mut()).unwrap()
    }

    #[test]
    fn times_are_recorded_per_write_and_rotate_with_the_log() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("log");
        let mut log = LogFile::new(path.clone(), 12, 2).timed();
        log.write(b"one\ntwo\n").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(5));
        log.write(b"three\n").unwrap(); // 8 + 6 > 12: a new file
        let t = read_times(&times_path(&path));
        let t1 = read_times(&times_path(&rotated(&path, 1)));
        assert_eq!(t1.iter().map(|r| r.0).collect::<Vec<_>>(), vec![0]);
        assert_eq!(t.iter().map(|r| r.0).collect::<Vec<_>>(), vec![0]);
        assert!(t[0].1 > t1[0].1);
        let data = std::fs::read(rotated(&path, 1)).unwrap();
        let lines = stamped_lines(&rotated(&path, 1), &data);
        assert_eq!(
            lines,
            vec![(t1[0].1, &b"one\n"[..]), (t1[0].1, &b"two\n"[..])]
        );
        let all = read_stamped(&path, 16, File::open(&path).ok().as_mut()).unwrap();
        assert_eq!(
            all.iter().map(|(_, l)| l.as_slice()).collect::<Vec<_>>(),
            vec![&b"one\n"[..], b"two\n", b"three\n"]
        );
        assert_eq!(all[2].0, t[0].1);
        // The oldest goes with its records.
        log.write(b"four\nfive\n").unwrap();
        log.write(b"six\n").unwrap();
        assert!(!times_path(&rotated(&path, 2)).exists());
        // A log without records: its lines get the file's time.
        let old = tmp.path().join("old");
        std::fs::write(&old, "a\nb").unwrap();
        let lines = stamped_lines(&old, b"a\nb");
        assert_eq!(lines.len(), 2);
        assert!(lines[0].0 > 0 && lines[0].0 == lines[1].0);
    }

    #[test]
    fn only_writes_that_begin_a_line_are_recorded_and_records_stay_bounded() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("log");
        let mut log = LogFile::new(path.clone(), 1 << 20, 2).timed();
        // A line written a byte at a time: one record, at its start.
        for b in b"slow line\n" {
            log.write(&[*b]).unwrap();
        }
        log.write(b"tail of nothing").unwrap(); // a new line begins
        log.write(b" more").unwrap(); // continues it
        log.write(b"\nnext\n").unwrap(); // a line begins inside
        let offsets: Vec<u64> = read_times(&times_path(&path)).iter().map(|r| r.0).collect();
        assert_eq!(offsets, vec![0, 10, 30]);
        let data = std::fs::read(&path).unwrap();
        let lines = stamped_lines(&path, &data);
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[2].1, b"next\n");
        // A fresh writer on the same file knows it ends with a newline.
        drop(log);
        let mut log = LogFile::new(path.clone(), 1 << 20, 2).timed();
        log.write(b"x").unwrap();
        assert_eq!(read_times(&times_path(&path)).len(), 4);

        // Two-byte lines, one write each: the records (16 bytes a line)
        // would be 8 times the log; the log rotates once they reach its
        // size limit, so no file's records exceed it.
        let small = tmp.path().join("small");
        let mut log = LogFile::new(small.clone(), 160, 3).timed();
        for _ in 0..25 {
            log.write(b"a\n").unwrap();
        }
        for p in [small.clone(), rotated(&small, 1), rotated(&small, 2)] {
            let t = std::fs::metadata(times_path(&p)).map_or(0, |m| m.len());
            assert!(t <= 160, "{}: {t} bytes of records", p.display());
        }
        assert_eq!(read_times(&times_path(&small)).len(), 5);
    }

    #[test]
    fn rotates_by_size_and_keeps_n_files() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("log");
        let mut log = LogFile::new(path.clone(), 10, 3);
        for line in [
            "aaaa\n", "bbbb\n", "cccc\n", "dddd\n", "eeee\n", "ffff\n", "gggg\n",
        ] {
            log.write(line.as_bytes()).unwrap();
        }
        let read = |p: &str| std::fs::read_to_string(tmp.path().join(p)).unwrap_or_default();
        assert_eq!(read("log"), "gggg\n");
        assert_eq!(read("log.1"), "eeee\nffff\n");
        assert_eq!(read("log.2"), "cccc\ndddd\n");
        assert!(!tmp.path().join("log.3").exists(), "only 3 files kept");
        assert_eq!(tail(&path, 3, 3), b"eeee\nffff\ngggg\n");
        assert_eq!(tail(&path, 3, 100), b"cccc\ndddd\neeee\nffff\ngggg\n");
        assert_eq!(tail(&path, READ_KEEP, 100), tail(&path, 3, 100));
    }

    #[test]
    fn a_line_longer_than_the_limit_is_cut() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("log");
        let mut log = LogFile::new(path.clone(), 4, 2);
        log.write(b"abcdefghij").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"ij");
        assert_eq!(std::fs::read(tmp.path().join("log.1")).unwrap(), b"efgh");
    }

    #[test]
    fn last_lines_edge_cases() {
        assert_eq!(last_lines(b"a\nb\nc\n", 2), b"b\nc\n");
        assert_eq!(last_lines(b"a\nb\nc", 2), b"b\nc");
        assert_eq!(last_lines(b"a\nb\n", 5), b"a\nb\n");
        assert_eq!(last_lines(b"a\nb\n", 0), b"");
        assert_eq!(last_lines(b"", 3), b"");
    }

    #[test]
    fn the_follower_crosses_a_rotation() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("log");
        let mut log = LogFile::new(path.clone(), 6, 2);
        log.write(b"one\n").unwrap();
        let mut f = Follower::open(&path);
        let mut out = Vec::new();
        f.pump(&mut out);
        log.write(b"two\n").unwrap();
        f.pump(&mut out);
        assert_eq!(out, b"one\ntwo\n");
    }
}
