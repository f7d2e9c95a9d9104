//! Mounts: the new mount API (`open_tree`, `move_mount`,
//! `mount_setattr`, idmapping), classic `mount(2)` (also onto an fd),
//! `umount2` and `pivot_root`.
//!
//! Runs in the init while it builds the container's mount tree, and in the
//! caller for the sealed executable ([`super::sealed_self_exe`]).

use std::ffi::{CStr, CString};
use std::io;
use std::mem;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;

use super::abi::{
    MOUNT_ATTR_IDMAP, MOVE_MOUNT_F_EMPTY_PATH, MOVE_MOUNT_T_EMPTY_PATH, OPEN_TREE_CLOEXEC,
};
use super::{check, check_fd, cstr, fd_path};

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// `open_tree(2)`.
pub fn open_tree(dir: Option<BorrowedFd<'_>>, path: &Path, flags: u32) -> io::Result<OwnedFd> {
    let dirfd = dir.map_or(libc::AT_FDCWD, |d| d.as_raw_fd());
    let mut flags = flags | OPEN_TREE_CLOEXEC;
    let path = if path.as_os_str().is_empty() {
        flags |= libc::AT_EMPTY_PATH as u32;
        CString::default()
    } else {
        cstr(path)?
    };
    // SAFETY: valid path pointer and fd for the duration of the call.
    let ret = unsafe { libc::syscall(libc::SYS_open_tree, dirfd, path.as_ptr(), flags) };
    check_fd(ret)
}

/// `move_mount(2)` of the detached or attached mount `from` onto the inode `to`.
pub fn move_mount(from: BorrowedFd<'_>, to: BorrowedFd<'_>) -> io::Result<()> {
    let empty = c"";
    // SAFETY: both fds are live; the empty paths are static NUL-terminated strings.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            from.as_raw_fd(),
            empty.as_ptr(),
            to.as_raw_fd(),
            empty.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        )
    };
    check(ret).map(drop)
}

/// `mount_setattr(2)` on the mount `fd` refers to.
pub fn mount_setattr(
    fd: BorrowedFd<'_>,
    recursive: bool,
    set: u64,
    clear: u64,
    propagation: u64,
) -> io::Result<()> {
    setattr(fd, recursive, set, clear, propagation, 0)
}

/// Idmap the detached mount `fd` refers to (and its submounts when
/// `recursive`) with the id mappings of the user namespace `userns`.
pub fn mount_setattr_idmap(
    fd: BorrowedFd<'_>,
    recursive: bool,
    userns: BorrowedFd<'_>,
) -> io::Result<()> {
    setattr(
        fd,
        recursive,
        MOUNT_ATTR_IDMAP,
        0,
        0,
        userns.as_raw_fd() as u64,
    )
}

fn setattr(
    fd: BorrowedFd<'_>,
    recursive: bool,
    set: u64,
    clear: u64,
    propagation: u64,
    userns_fd: u64,
) -> io::Result<()> {
    let attr = MountAttr {
        attr_set: set,
        attr_clr: clear,
        propagation,
        userns_fd,
    };
    let mut flags = libc::AT_EMPTY_PATH;
    if recursive {
        flags |= libc::AT_RECURSIVE;
    }
    // SAFETY: `attr` lives across the call and the size is the v0 struct size.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            flags,
            &attr as *const MountAttr,
            mem::size_of::<MountAttr>(),
        )
    };
    check(ret).map(drop)
}

/// Classic `mount(2)`.
pub fn mount(
    source: Option<&CStr>,
    target: &CStr,
    fstype: Option<&CStr>,
    flags: libc::c_ulong,
    data: Option<&CStr>,
) -> io::Result<()> {
    let p = |s: Option<&CStr>| s.map_or(std::ptr::null(), |s| s.as_ptr());
    // SAFETY: every pointer is either null or a live NUL-terminated string.
    let ret = unsafe {
        libc::mount(
            p(source),
            target.as_ptr(),
            p(fstype),
            flags,
            p(data) as *const libc::c_void,
        )
    };
    check(ret as libc::c_long).map(drop)
}

/// `mount(2)` whose target is the inode behind `target` (through its
/// `/proc/self/fd` magic link, so no path in the container is re-resolved).
pub fn mount_on_fd(
    source: Option<&CStr>,
    target: BorrowedFd<'_>,
    fstype: Option<&CStr>,
    flags: libc::c_ulong,
    data: Option<&CStr>,
) -> io::Result<()> {
    let path = fd_path(target);
    mount(source, &path, fstype, flags, data)
}

/// `umount2(2)`.
pub fn umount(target: &Path, flags: libc::c_int) -> io::Result<()> {
    let target = cstr(target)?;
    // SAFETY: valid NUL-terminated path.
    let ret = unsafe { libc::umount2(target.as_ptr(), flags) };
    check(ret as libc::c_long).map(drop)
}

/// `pivot_root(2)`.
pub fn pivot_root(new_root: &Path, put_old: &Path) -> io::Result<()> {
    let new_root = cstr(new_root)?;
    let put_old = cstr(put_old)?;
    // SAFETY: both are valid NUL-terminated paths.
    let ret = unsafe { libc::syscall(libc::SYS_pivot_root, new_root.as_ptr(), put_old.as_ptr()) };
    check(ret).map(drop)
}
