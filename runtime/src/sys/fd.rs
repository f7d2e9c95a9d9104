//! The fd table: `close_range`, `FD_CLOEXEC`, "this fd if it is open",
//! and the peer of a pty master (`TIOCGPTPEER`).
//!
//! Runs in the caller (preparing a spawn) and in the init (before execve,
//! the console).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};

use super::abi::TIOCGPTPEER;
use super::{check, check_fd};

/// `close_range(2)`: mark (`cloexec`) or close every fd from `first` up.
pub fn close_range(first: u32, cloexec: bool) -> io::Result<()> {
    let flags: libc::c_uint = if cloexec { 1 << 2 } else { 0 };
    // SAFETY: plain integer arguments; closing fds we do not use is the point.
    let ret = unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, flags) };
    check(ret).map(drop)
}

/// Set or clear `FD_CLOEXEC`.
pub fn set_cloexec(fd: BorrowedFd<'_>, on: bool) -> io::Result<()> {
    // SAFETY: fcntl on a live fd with integer arguments.
    let ret = unsafe {
        libc::fcntl(
            fd.as_raw_fd(),
            libc::F_SETFD,
            if on { libc::FD_CLOEXEC } else { 0 },
        )
    };
    check(ret as libc::c_long).map(drop)
}

/// `fd` if it is open, else `fallback` (for passing the caller's own stdio
/// on, where it may have been closed).
pub fn fd_or<'a>(fd: RawFd, fallback: BorrowedFd<'a>) -> BorrowedFd<'a> {
    // SAFETY: F_GETFD only queries the fd.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } >= 0 {
        // SAFETY: the fd is open (checked just above); callers use the
        // borrow only for the duration of a spawn, during which it stays open.
        unsafe { BorrowedFd::borrow_raw(fd) }
    } else {
        fallback
    }
}

/// `ioctl(TIOCGPTPEER)`: open the peer of a pty master without a path lookup.
pub fn pty_peer(master: BorrowedFd<'_>, flags: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: a live fd and an integer argument.
    let ret = unsafe {
        libc::ioctl(
            master.as_raw_fd(),
            TIOCGPTPEER as _,
            flags | libc::O_CLOEXEC,
        )
    };
    check_fd(ret as libc::c_long)
}
