//! The only place raw syscalls are wrapped. Everything above works with
//! `OwnedFd`/`BorrowedFd` and `io::Result`; callers add the context (which
//! path, which container) when they turn these into their own errors.
//!
//! Runs in every process: the caller (shim or CLI), the init while it sets a
//! container up, and — for [`spawn`] only — the short-lived child between
//! `clone3` and `execveat`, where nothing but raw syscalls may run.
//!
//! Layout, by subject:
//! - `abi`: constants and structs of the kernel ABI missing from some libcs;
//! - `fs`: files and inodes by fd (`openat2`, `mkdirat`, `fstat`, …);
//! - `fd`: the fd table (`close_range`, `FD_CLOEXEC`, pty peers);
//! - `mount`: the new mount API, `mount(2)`, `umount2`, `pivot_root`;
//! - `namespace`: `setns`, `unshare`, host and domain names;
//! - `process`: pidfds, wait, dumpable, clones from a single-threaded init;
//! - `sealed_exe`: the read-only executable re-executed as the init;
//! - `spawn` and `after_clone`: clone3 + execveat from a multi-threaded
//!   caller; `after_clone` is the only code between the two;
//! - [`bpf`], [`caps`], [`seccomp`]: the syscalls of one subsystem each.
//!
//! Every item is re-exported here, so callers write `sys::openat2`,
//! `sys::spawn`, `sys::MOUNT_ATTR_RDONLY`.

pub mod bpf;
pub mod caps;
pub mod seccomp;

mod abi;
mod after_clone;
mod fd;
mod fs;
mod mount;
mod namespace;
mod process;
mod sealed_exe;
mod spawn;

pub use abi::{
    MOUNT_ATTR_IDMAP, MOUNT_ATTR_NOATIME, MOUNT_ATTR_NODEV, MOUNT_ATTR_NODIRATIME,
    MOUNT_ATTR_NOEXEC, MOUNT_ATTR_NOSUID, MOUNT_ATTR_NOSYMFOLLOW, MOUNT_ATTR_RDONLY,
    MOUNT_ATTR_RELATIME, MOUNT_ATTR_STRICTATIME, MOUNT_ATTR__ATIME, OPEN_TREE_CLOEXEC,
    OPEN_TREE_CLONE, RESOLVE_BENEATH, RESOLVE_IN_ROOT, RESOLVE_NO_MAGICLINKS, RESOLVE_NO_SYMLINKS,
    RESOLVE_NO_XDEV,
};
pub use fd::*;
pub use fs::*;
pub use mount::*;
pub use namespace::*;
pub use process::*;
pub use sealed_exe::*;
pub use spawn::*;

use std::ffi::CString;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

fn cstr(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

fn check(ret: libc::c_long) -> io::Result<libc::c_long> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn check_fd(ret: libc::c_long) -> io::Result<OwnedFd> {
    let fd = check(ret)? as RawFd;
    // SAFETY: the kernel just returned this fd to us and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}
