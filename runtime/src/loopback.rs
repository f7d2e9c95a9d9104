//! Loopback up in a network namespace the container gets of its own, as
//! runc does for every private network namespace (its "loopback" network):
//! the kernel creates `lo` down, and a container's own services on
//! 127.0.0.1 must answer from inside it.
//!
//! Runs in the init (in its new namespace, before anything else of the
//! container), in restore (a fresh namespace for an image that left its
//! plain one out, [`crate::container`]'s checkpoint) and in wrend (the
//! namespace it makes for CNI).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// Sets `lo` up in the calling thread's network namespace.
pub fn up() -> io::Result<()> {
    let (sock, mut req) = lo_request()?;
    let flags = (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
    // SAFETY: `ifru_flags` is the union member SIOCGIFFLAGS filled in.
    if unsafe { req.ifr_ifru.ifru_flags } & flags == flags {
        return Ok(());
    }
    // SAFETY: as above; SIOCSIFFLAGS reads `req`, which outlives the call.
    unsafe {
        req.ifr_ifru.ifru_flags |= flags;
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS as libc::Ioctl, &req) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Is `lo` up in the calling thread's network namespace?
pub fn is_up() -> io::Result<bool> {
    let (_, req) = lo_request()?;
    // SAFETY: `ifru_flags` is the union member SIOCGIFFLAGS filled in.
    Ok(unsafe { req.ifr_ifru.ifru_flags } & libc::IFF_UP as libc::c_short != 0)
}

/// A socket and `lo`'s flags (SIOCGIFFLAGS) in an ifreq naming it.
fn lo_request() -> io::Result<(OwnedFd, libc::ifreq)> {
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
    // SAFETY: SIOCGIFFLAGS writes into `req`, which outlives the call.
    if unsafe {
        libc::ioctl(
            sock.as_raw_fd(),
            libc::SIOCGIFFLAGS as libc::Ioctl,
            &mut req,
        )
    } != 0
    {
        return Err(io::Error::last_os_error());
    }
    Ok((sock, req))
}

/// A new network namespace with `lo` up, made on a short-lived thread
/// (unshare affects only that thread; the caller's stays as it was) and
/// held by the returned fd alone.
pub fn new_namespace() -> io::Result<OwnedFd> {
    std::thread::Builder::new()
        .name("wren-netns".into())
        .stack_size(64 << 10)
        .spawn(|| -> io::Result<OwnedFd> {
            // SAFETY: unshare on this thread only; it exits right after.
            if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
                return Err(io::Error::other(format!(
                    "unshare(CLONE_NEWNET): {}",
                    io::Error::last_os_error()
                )));
            }
            up().map_err(|e| io::Error::other(format!("set lo up: {e}")))?;
            let ns = std::fs::File::open("/proc/thread-self/ns/net")?;
            Ok(OwnedFd::from(ns))
        })?
        .join()
        .map_err(|_| io::Error::other("the network namespace thread panicked"))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn a_new_namespace_is_not_ours_and_has_lo_up() {
        // SAFETY: geteuid cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("SKIPPED: needs root");
            return;
        }
        let ns = new_namespace().expect("new namespace");
        let theirs = std::fs::metadata(format!("/proc/self/fd/{}", ns.as_raw_fd())).unwrap();
        let ours = std::fs::metadata("/proc/thread-self/ns/net").unwrap();
        assert_ne!(theirs.ino(), ours.ino(), "the caller's namespace changed");
        let (up, links) = std::thread::spawn(move || {
            // SAFETY: setns on this thread only, with a namespace fd we hold.
            let r = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(r, 0, "setns");
            let links = std::fs::read_to_string("/proc/thread-self/net/dev").unwrap();
            (is_up().unwrap(), links)
        })
        .join()
        .unwrap();
        assert!(up, "lo is down");
        assert_eq!(links.matches(':').count(), 1, "more than lo: {links}");
    }
}
