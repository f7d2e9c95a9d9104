//! A container's log as wrend writes it and wren reads it: one file,
//! rotated by size (`log` → `log.1` → … → `log.<keep-1>`, the oldest
//! dropped), each file cut after the last whole line that fits. wrend holds
//! the writer ([`LogFile`]); `wren logs` and a foreground `wren run` read
//! the tail ([`tail_from`]) and follow the current file across rotations
//! ([`Follower`]), on the same host, without asking wrend for the data.
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

/// The writer: one container's log file, with size-based rotation.
pub struct LogFile {
    path: PathBuf,
    file: Option<File>,
    size: u64,
    max_size: u64,
    keep: u32,
}

impl LogFile {
    pub fn new(path: PathBuf, max_size: u64, keep: u32) -> Self {
        Self {
            path,
            file: None,
            size: 0,
            max_size: max_size.max(1),
            keep: keep.max(1),
        }
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
            self.file = Some(f);
        }
        self.file
            .as_mut()
            .ok_or_else(|| io::Error::other("log file not open"))
    }

    /// Shifts `log.N` up by one (dropping the oldest) and starts a new file.
    fn rotate(&mut self) -> io::Result<()> {
        self.file = None;
        if self.keep == 1 {
            return std::fs::remove_file(&self.path).or_else(ignore_missing);
        }
        std::fs::remove_file(rotated(&self.path, self.keep - 1)).or_else(ignore_missing)?;
        for n in (1..self.keep - 1).rev() {
            std::fs::rename(rotated(&self.path, n), rotated(&self.path, n + 1))
                .or_else(ignore_missing)?;
        }
        std::fs::rename(&self.path, rotated(&self.path, 1)).or_else(ignore_missing)?;
        self.size = 0;
        Ok(())
    }

    /// Appends `data`, rotating whenever the current file is full. A file
    /// is cut after the last whole line that fits, or at the size limit
    /// when a line is longer than that.
    pub fn write(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            self.open()?;
            let room = self.max_size.saturating_sub(self.size) as usize;
            if data.len() <= room {
                self.open()?.write_all(data)?;
                self.size += data.len() as u64;
                return Ok(());
            }
            let cut = data[..room]
                .iter()
                .rposition(|&b| b == b'\n')
                .map(|i| i + 1)
                .unwrap_or(if self.size == 0 { room } else { 0 });
            if cut > 0 {
                self.open()?.write_all(&data[..cut])?;
                self.size += cut as u64;
                data = &data[cut..];
            }
            self.rotate()?;
        }
        Ok(())
    }
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
            let current = std::fs::metadata(&self.path).ok().map(|m| m.ino());
            let mine = self
                .file
                .as_ref()
                .and_then(|f| f.metadata().ok())
                .map(|m| m.ino());
            if current.is_some() && current != mine {
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
