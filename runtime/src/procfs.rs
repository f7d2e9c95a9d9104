//! A trusted handle on procfs for every write under /proc made while a
//! container is being set up (sysctls, LSM labels, oom_score_adj).
//!
//! The handle is a private, detached procfs instance (`fsopen("proc")`), so
//! nothing the container mounts over /proc can redirect a write
//! (CVE-2025-52881 class). Paths below it are opened with
//! `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV`. Runs in the
//! init process.

use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;

use crate::sys;

const PROC_SUPER_MAGIC: i64 = 0x9fa0;

/// A procfs root that cannot be tampered with.
#[derive(Debug)]
pub struct Procfs {
    root: OwnedFd,
}

impl Procfs {
    /// A fresh private procfs for the caller's pid namespace, or, where the
    /// new mount API is missing, a detached clone of /proc checked to be
    /// procfs.
    pub fn new() -> io::Result<Self> {
        let root = match fresh_procfs() {
            Ok(fd) => fd,
            Err(_) => sys::open_tree(None, Path::new("/proc"), sys::OPEN_TREE_CLONE)?,
        };
        if sys::fs_magic(root.as_fd())? != PROC_SUPER_MAGIC {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "not a procfs"));
        }
        Ok(Procfs { root })
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.root.as_fd()
    }

    /// Open `path` below this procfs; no symlink, magic link or mount
    /// crossing is followed (so `self` must be spelt out by the caller).
    pub fn open(&self, path: &Path, flags: libc::c_int) -> io::Result<OwnedFd> {
        let fd = sys::openat2(
            self.root.as_fd(),
            path,
            flags | libc::O_NOFOLLOW,
            0,
            sys::RESOLVE_BENEATH
                | sys::RESOLVE_NO_SYMLINKS
                | sys::RESOLVE_NO_MAGICLINKS
                | sys::RESOLVE_NO_XDEV,
        )?;
        if sys::fs_magic(fd.as_fd())? != PROC_SUPER_MAGIC {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "not on procfs"));
        }
        Ok(fd)
    }

    /// Write `value` to a file of the calling thread's own /proc directory
    /// (`thread-self` is resolved here to a plain path).
    pub fn write_self(&self, rel: &str, value: &[u8]) -> io::Result<()> {
        // SAFETY: gettid has no arguments and cannot fail.
        let tid = unsafe { libc::syscall(libc::SYS_gettid) };
        // SAFETY: getpid cannot fail.
        let pid = unsafe { libc::getpid() };
        self.write(&format!("{pid}/task/{tid}/{rel}"), value)
    }

    /// Write `value` to `/proc/<rel>`.
    pub fn write(&self, rel: &str, value: &[u8]) -> io::Result<()> {
        let fd = self.open(Path::new(rel), libc::O_WRONLY)?;
        let mut f = std::fs::File::from(fd);
        f.write_all(value)
    }
}

fn fresh_procfs() -> io::Result<OwnedFd> {
    // SAFETY: static strings, integer flags.
    let fs = unsafe {
        libc::syscall(
            libc::SYS_fsopen,
            c"proc".as_ptr(),
            1, /* FSOPEN_CLOEXEC */
        )
    };
    if fs < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just gave us this fd.
    let fs: OwnedFd = unsafe { std::os::fd::FromRawFd::from_raw_fd(fs as i32) };
    // Hide other processes' details is not wanted here; defaults are fine.
    // SAFETY: FSCONFIG_CMD_CREATE (6) takes no key or value.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            6,
            std::ptr::null::<u8>(),
            std::ptr::null::<u8>(),
            0,
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a configured fs context fd; FSMOUNT_CLOEXEC (1); no attributes.
    let mnt = unsafe { libc::syscall(libc::SYS_fsmount, fs.as_raw_fd(), 1, 0) };
    if mnt < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just gave us this fd.
    Ok(unsafe { std::os::fd::FromRawFd::from_raw_fd(mnt as i32) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_procfs_reads_and_refuses_symlinks() {
        let p = match Procfs::new() {
            Ok(p) => p,
            Err(e) => {
                eprintln!("skip: no private procfs here: {e}");
                return;
            }
        };
        p.open(Path::new("sys/kernel/ostype"), libc::O_RDONLY)
            .unwrap();
        // "self" is a symlink and must not be followed.
        assert!(p.open(Path::new("self/status"), libc::O_RDONLY).is_err());
    }
}
