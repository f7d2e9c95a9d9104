//! Loopback up in every private network namespace wrend's containers get
//! (a container's own services on 127.0.0.1 must be reachable from inside
//! it; without CNI nothing else raises `lo`, which the kernel creates down).
//!
//! Runs in wrend, once per Create, on a short-lived thread: `setns` into
//! the container's network namespace affects only that thread, and the
//! loop thread never leaves wrend's own namespace ([`lo_up`] also serves
//! the thread that makes a CNI container's namespace).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;

/// Sets `lo` up in the network namespace of `pid` (the created init),
/// unless that namespace is wrend's own (a host-network container).
pub fn up_in(pid: u32) -> io::Result<()> {
    let path = format!("/proc/{pid}/ns/net");
    let theirs = std::fs::metadata(&path)?;
    let ours = std::fs::metadata("/proc/self/ns/net")?;
    if (theirs.dev(), theirs.ino()) == (ours.dev(), ours.ino()) {
        return Ok(());
    }
    let ns = std::fs::File::open(&path)?;
    std::thread::Builder::new()
        .name("wrend-lo".into())
        .stack_size(64 << 10)
        .spawn(move || -> io::Result<()> {
            // SAFETY: setns on this thread only, with a namespace fd we hold.
            if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(io::Error::last_os_error());
            }
            lo_up()
        })?
        .join()
        .map_err(|_| io::Error::other("the loopback thread panicked"))?
}

/// Sets `lo` up in the calling thread's network namespace.
pub fn lo_up() -> io::Result<()> {
    // SAFETY: a plain socket(2) call; the fd is owned below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a new socket nothing else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: an all-zero ifreq is valid; the name is NUL-terminated.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *d = *s as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS/SIOCSIFFLAGS read and write `req`, which
    // lives across both calls.
    unsafe {
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) != 0 {
            return Err(io::Error::last_os_error());
        }
        req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}
