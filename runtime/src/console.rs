//! The container's terminal: a pty allocated from the container's own devpts
//! instance, whose peer is opened with `TIOCGPTPEER` (no lookup of
//! /dev/pts/N by name, CVE-2025-52565 class) and becomes the process's stdio,
//! controlling terminal and /dev/console. The master goes back to the caller,
//! which keeps it (shim) or sends it down a console socket (runc's protocol).
//!
//! `open_in_container` runs in the init process after pivot_root;
//! `send_to_socket` and `resize` run in the caller.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use crate::path::Root;
use crate::sys;

const DEVPTS_SUPER_MAGIC: i64 = 0x1cd1;

#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error("open the container's /dev/pts/ptmx")]
    Ptmx(#[source] io::Error),
    #[error("{call} on the console pty")]
    Pty {
        call: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("bind the console onto /dev/console")]
    DevConsole(#[source] io::Error),
    #[error("send the console to socket {path}")]
    Socket {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// A new pty from the container's devpts. Returns (master, peer).
pub fn open_in_container(
    root: &Root,
    size: Option<(u16, u16)>,
) -> Result<(OwnedFd, OwnedFd), ConsoleError> {
    let master = root
        .resolve(
            Path::new("/dev/pts/ptmx"),
            libc::O_RDWR | libc::O_NOCTTY,
            true,
        )
        .map_err(ConsoleError::Ptmx)?;
    let magic = sys::fs_magic(master.as_fd()).map_err(ConsoleError::Ptmx)?;
    let st = sys::fstat(master.as_fd()).map_err(ConsoleError::Ptmx)?;
    if magic != DEVPTS_SUPER_MAGIC
        || st.st_mode & libc::S_IFMT != libc::S_IFCHR
        || st.st_rdev != libc::makedev(5, 2)
    {
        return Err(ConsoleError::Ptmx(io::Error::new(
            io::ErrorKind::InvalidData,
            "/dev/pts/ptmx is not a devpts ptmx",
        )));
    }
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads one int from a valid pointer.
    if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &unlock) } != 0 {
        return Err(ConsoleError::Pty {
            call: "unlockpt",
            source: io::Error::last_os_error(),
        });
    }
    let peer = sys::pty_peer(master.as_fd(), libc::O_RDWR | libc::O_NOCTTY).map_err(|source| {
        ConsoleError::Pty {
            call: "TIOCGPTPEER",
            source,
        }
    })?;
    if let Some((rows, cols)) = size {
        resize(master.as_fd(), rows, cols).map_err(|source| ConsoleError::Pty {
            call: "TIOCSWINSZ",
            source,
        })?;
    }
    Ok((master, peer))
}

/// Make `peer` the controlling terminal and stdio of this process, and bind
/// it over /dev/console.
pub fn attach(root: &Root, peer: BorrowedFd<'_>) -> Result<(), ConsoleError> {
    crate::mounts::bind_fd(root, peer, Path::new("/dev/console"), false)
        .map_err(ConsoleError::DevConsole)?;
    for fd in 0..3 {
        // SAFETY: dup2 between fds we own.
        if unsafe { libc::dup2(peer.as_raw_fd(), fd) } < 0 {
            return Err(ConsoleError::Pty {
                call: "dup2",
                source: io::Error::last_os_error(),
            });
        }
    }
    // SAFETY: TIOCSCTTY with argument 0 on our session's new terminal.
    if unsafe { libc::ioctl(0, libc::TIOCSCTTY, 0) } != 0 {
        return Err(ConsoleError::Pty {
            call: "TIOCSCTTY",
            source: io::Error::last_os_error(),
        });
    }
    Ok(())
}

/// Set the window size of a pty.
pub fn resize(master: BorrowedFd<'_>, rows: u16, cols: u16) -> io::Result<()> {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a winsize from a valid pointer.
    if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Send `master` to the unix socket at `path`, the way runc's
/// `--console-socket` does (one message, the fd attached).
pub fn send_to_socket(path: &Path, master: BorrowedFd<'_>) -> Result<(), ConsoleError> {
    let err = |source: io::Error| ConsoleError::Socket {
        path: path.to_path_buf(),
        source,
    };
    let sock = UnixStream::connect(path).map_err(err)?;
    crate::sync::send_with_fds(sock.as_raw_fd(), b"/dev/ptmx", &[master]).map_err(err)
}

/// Receive a pty master sent by [`send_to_socket`] (for tests and tools).
pub fn recv_from_socket(sock: &UnixStream) -> io::Result<OwnedFd> {
    let mut buf = [0u8; 4096];
    match crate::sync::recv_with_fds(sock.as_raw_fd(), &mut buf)? {
        Some((_, mut fds)) if !fds.is_empty() => Ok(fds.swap_remove(0)),
        _ => Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "no fd received",
        )),
    }
}
