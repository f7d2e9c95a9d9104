//! The container's stdio as containerd describes it (fifo paths; empty means
//! /dev/null), opened into fds the runtime hands to the process.
//!
//! First step: the fifos are passed to the process directly. Still to do:
//! copying through pipes so output is drained before the exit is reported,
//! `file://` and `binary://` URIs, terminals, IoUid/IoGid, CloseIO.
//!
//! Runs in the daemon, for Create and Exec.

use std::fs::OpenOptions;
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

/// A stdio path that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StdioError {
    #[error("open {which} {path}")]
    Open {
        which: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{which} {uri:?}: only fifo paths are supported so far")]
    Unsupported { which: &'static str, uri: String },
    #[error("clear O_NONBLOCK on {which}")]
    Fcntl {
        which: &'static str,
        #[source]
        source: nix::Error,
    },
}

/// The three fds of a process.
pub struct Opened {
    pub stdin: OwnedFd,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
}

fn open(which: &'static str, path: &str, input: bool) -> Result<OwnedFd, StdioError> {
    if path.contains("://") {
        return Err(StdioError::Unsupported {
            which,
            uri: path.to_string(),
        });
    }
    let (path, null) = if path.is_empty() {
        (PathBuf::from("/dev/null"), true)
    } else {
        (PathBuf::from(path), false)
    };
    let mut o = OpenOptions::new();
    if input {
        // No writer may exist yet: open without blocking, then make reads
        // blocking again for the container.
        o.read(true).custom_flags(libc::O_NONBLOCK);
    } else if null {
        o.write(true);
    } else {
        // Read+write so the open neither blocks nor fails (ENXIO) while
        // containerd has not opened its reading end yet.
        o.read(true).write(true);
    }
    let file = o.open(&path).map_err(|source| StdioError::Open {
        which,
        path: path.clone(),
        source,
    })?;
    let fd = OwnedFd::from(file);
    if input {
        nix::fcntl::fcntl(
            &fd,
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::empty()),
        )
        .map_err(|source| StdioError::Fcntl { which, source })?;
    }
    Ok(fd)
}

/// Opens containerd's stdin/stdout/stderr paths.
pub fn open_all(stdin: &str, stdout: &str, stderr: &str) -> Result<Opened, StdioError> {
    Ok(Opened {
        stdin: open("stdin", stdin, true)?,
        stdout: open("stdout", stdout, false)?,
        stderr: open("stderr", stderr, false)?,
    })
}
