//! Namespaces and the UTS names: `setns`, `unshare`, `sethostname`,
//! `setdomainname`.
//!
//! Runs in the init (stage 1 joins and creates namespaces; stage 2 sets the
//! names).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

use super::check;

/// `setns(2)`.
pub fn setns(fd: BorrowedFd<'_>, nstype: libc::c_int) -> io::Result<()> {
    // SAFETY: a live fd and an integer argument.
    let ret = unsafe { libc::setns(fd.as_raw_fd(), nstype) };
    check(ret as libc::c_long).map(drop)
}

/// `unshare(2)`.
pub fn unshare(flags: libc::c_int) -> io::Result<()> {
    // SAFETY: integer argument.
    let ret = unsafe { libc::unshare(flags) };
    check(ret as libc::c_long).map(drop)
}

/// `sethostname(2)`.
pub fn sethostname(name: &str) -> io::Result<()> {
    // SAFETY: pointer and length describe a live byte slice.
    let ret = unsafe { libc::sethostname(name.as_ptr().cast(), name.len()) };
    check(ret as libc::c_long).map(drop)
}

/// `setdomainname(2)`.
pub fn setdomainname(name: &str) -> io::Result<()> {
    // SAFETY: pointer and length describe a live byte slice.
    let ret = unsafe { libc::setdomainname(name.as_ptr().cast(), name.len()) };
    check(ret as libc::c_long).map(drop)
}
