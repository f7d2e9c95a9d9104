//! Named pipes as wrend and wren use them for a process's stdio: made with
//! mode 0600, opened read+write and non-blocking so that the open never
//! waits for a peer and a reader never sees end-of-file while it holds the
//! fifo. wrend makes the containers' fifos; wren makes its own for `exec`
//! and opens the ones `Attach` hands it.
//!
//! Runs in `wrend` and in `wren`.

use std::fs::OpenOptions;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// A fifo that could not be made or opened.
#[derive(Debug, thiserror::Error)]
pub enum FifoError {
    #[error("mkfifo {path}")]
    Make {
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
pub fn make(path: &Path) -> Result<(), FifoError> {
    match nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600)) {
        Ok(()) | Err(nix::Error::EEXIST) => Ok(()),
        Err(source) => Err(FifoError::Make {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Opens a fifo read+write and non-blocking.
pub fn open(path: &Path) -> Result<OwnedFd, FifoError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map(OwnedFd::from)
        .map_err(|source| FifoError::Open {
            path: path.to_owned(),
            source,
        })
}

/// [`make`] then [`open`].
pub fn make_and_open(path: &Path) -> Result<OwnedFd, FifoError> {
    make(path).and_then(|()| open(path))
}

/// Makes a blocking fd of a fifo opened by [`open`] (for a writer that must
/// not drop data on a full pipe).
pub fn set_blocking(fd: &impl std::os::fd::AsFd) {
    let _ = nix::fcntl::fcntl(
        fd,
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::empty()),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn made_twice_opened_without_a_peer() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("out");
        make(&path).unwrap();
        let mut f = std::fs::File::from(make_and_open(&path).unwrap());
        f.write_all(b"x").unwrap();
        let mut buf = [0u8; 4];
        assert_eq!(f.read(&mut buf).unwrap(), 1);
        assert!(f.read(&mut buf).is_err(), "empty fifo: EAGAIN, not EOF");
        assert!(matches!(
            open(&tmp.path().join("none")),
            Err(FifoError::Open { .. })
        ));
    }
}
