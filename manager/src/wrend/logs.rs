//! Container output: the stdio fifos wrend hands the shim (exactly as `ctr`
//! does), and the log file they are copied into, rotated by size
//! (`log` → `log.1` → … → `log.<keep-1>`, the oldest dropped).
//!
//! Runs in wrend's loop thread: the fifos are read when epoll says so.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Rotate when the current file would grow past this many bytes.
pub const DEFAULT_MAX_SIZE: u64 = 10 * 1024 * 1024;
/// Files kept: the current one and `keep - 1` rotated ones.
pub const DEFAULT_KEEP: u32 = 3;

/// A stdio fifo that could not be made or opened.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("mkfifo {path}")]
    Mkfifo {
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
    #[error("open {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Makes a fifo at `path` (mode 0600) unless one is there already.
pub fn make_fifo(path: &Path) -> Result<(), LogError> {
    match nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600)) {
        Ok(()) | Err(nix::Error::EEXIST) => Ok(()),
        Err(source) => Err(LogError::Mkfifo {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Opens a fifo read+write and non-blocking: the open never waits for a
/// peer, and reads never see end-of-file while wrend holds it.
pub fn open_fifo(path: &Path) -> Result<OwnedFd, LogError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map(OwnedFd::from)
        .map_err(|source| LogError::Open {
            path: path.to_owned(),
            source,
        })
}

/// The log file of one container, with size-based rotation.
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
        let numbered = |n: u32| PathBuf::from(format!("{}.{n}", self.path.display()));
        if self.keep == 1 {
            return std::fs::remove_file(&self.path).or_else(ignore_missing);
        }
        std::fs::remove_file(numbered(self.keep - 1)).or_else(ignore_missing)?;
        for n in (1..self.keep - 1).rev() {
            std::fs::rename(numbered(n), numbered(n + 1)).or_else(ignore_missing)?;
        }
        std::fs::rename(&self.path, numbered(1)).or_else(ignore_missing)?;
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

    /// Copies what is buffered in fifo `fd` into the log; returns the bytes copied.
    pub fn drain(&mut self, fd: RawFd) -> usize {
        let mut buf = [0u8; 16 * 1024];
        let mut total = 0;
        loop {
            // SAFETY: `fd` is an open fifo owned by the caller; `buf` is valid
            // for its length.
            let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return total;
            }
            let n = n as usize;
            total += n;
            if let Err(e) = self.write(&buf[..n]) {
                log::warn!("write {}: {e}", self.path.display());
            }
        }
    }
}

fn ignore_missing(e: io::Error) -> io::Result<()> {
    if e.kind() == io::ErrorKind::NotFound {
        Ok(())
    } else {
        Err(e)
    }
}

/// The last `n` lines of `path` and its rotated files, oldest first.
pub fn tail(path: &Path, keep: u32, n: usize) -> io::Result<Vec<u8>> {
    let mut current = match File::open(path) {
        Ok(f) => Some(f),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    tail_from(path, keep, n, current.as_mut())
}

/// Like [`tail`], reading the current file through `current` (already
/// open) to its end, so a follower can go on from exactly there.
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
        match File::open(format!("{}.{i}", path.display())) {
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

/// An fd number for epoll registration.
pub fn raw(fd: &OwnedFd) -> RawFd {
    fd.as_raw_fd()
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(tail(&path, 3, 3).unwrap(), b"eeee\nffff\ngggg\n");
        assert_eq!(
            tail(&path, 3, 100).unwrap(),
            b"cccc\ndddd\neeee\nffff\ngggg\n"
        );
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
    fn drains_a_fifo_without_blocking() {
        let tmp = tempfile::tempdir().unwrap();
        let fifo = tmp.path().join("out");
        make_fifo(&fifo).unwrap();
        make_fifo(&fifo).unwrap();
        let fd = open_fifo(&fifo).unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&fifo)
            .unwrap()
            .write_all(b"hello\n")
            .unwrap();
        let mut log = LogFile::new(tmp.path().join("log"), DEFAULT_MAX_SIZE, DEFAULT_KEEP);
        assert_eq!(log.drain(raw(&fd)), 6);
        assert_eq!(log.drain(raw(&fd)), 0, "empty fifo, no block");
        assert_eq!(std::fs::read(tmp.path().join("log")).unwrap(), b"hello\n");
    }
}
