//! The sealed executable the caller re-executes as a container init
//! (CVE-2019-5736): a read-only detached bind mount of `/proc/self/exe`, or
//! a sealed memfd copy.
//!
//! Runs in the caller, once per process (see `container::init_driver`).

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;

use super::abi::{MOUNT_ATTR_NODEV, MOUNT_ATTR_NOSUID, MOUNT_ATTR_RDONLY, OPEN_TREE_CLONE};
use super::{check, check_fd, mount_setattr, open_tree};

/// A sealed, read-only executable handle of the running binary, for
/// re-executing it as a container init (CVE-2019-5736): a detached read-only
/// bind mount of `/proc/self/exe`, or a sealed memfd copy when the new mount
/// API is missing. Writing through `/proc/<pid>/exe` of any process started
/// from it fails.
pub fn sealed_self_exe() -> io::Result<OwnedFd> {
    match open_tree(None, Path::new("/proc/self/exe"), OPEN_TREE_CLONE) {
        Ok(tree) => {
            mount_setattr(
                tree.as_fd(),
                false,
                MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
                0,
                0,
            )?;
            Ok(tree)
        }
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOSYS) | Some(libc::EPERM)) => {
            sealed_memfd_copy()
        }
        Err(e) => Err(e),
    }
}

fn sealed_memfd_copy() -> io::Result<OwnedFd> {
    let name = c"wren-init";
    // SAFETY: static name; flags are plain integers.
    let ret =
        unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING) };
    let memfd = check_fd(ret as libc::c_long)?;
    let mut src = std::fs::File::open("/proc/self/exe")?;
    let mut dst = std::fs::File::from(memfd.try_clone()?);
    io::copy(&mut src, &mut dst)?;
    let seals = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
    // SAFETY: a live memfd and integer arguments.
    let ret = unsafe { libc::fcntl(memfd.as_raw_fd(), libc::F_ADD_SEALS, seals) };
    check(ret as libc::c_long)?;
    Ok(memfd)
}
