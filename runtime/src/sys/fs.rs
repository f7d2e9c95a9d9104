//! Files and inodes by fd: `openat2`, `openat`, `open`, reopening an
//! `O_PATH` fd, small reads and writes, `fstat`/`fstatfs`, `mkdirat`,
//! `mknodat`, `symlinkat`, `fchown`, `fchmod`.
//!
//! Runs in the caller (state files, cgroupfs) and in the init (the rootfs,
//! /dev, /proc), never between `clone3` and `execveat`.

use std::ffi::CString;
use std::io;
use std::mem;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;

use super::{check, check_fd, cstr};

#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// `openat2(2)`: open `path` relative to `dir` with `resolve` restrictions.
pub fn openat2(
    dir: BorrowedFd<'_>,
    path: &Path,
    flags: libc::c_int,
    mode: u32,
    resolve: u64,
) -> io::Result<OwnedFd> {
    let path = cstr(path)?;
    let how = OpenHow {
        flags: (flags | libc::O_CLOEXEC) as u64,
        mode: mode as u64,
        resolve,
    };
    loop {
        // SAFETY: `how` and `path` outlive the call; the size matches the struct.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dir.as_raw_fd(),
                path.as_ptr(),
                &how as *const OpenHow,
                mem::size_of::<OpenHow>(),
            )
        };
        match check_fd(ret) {
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => continue,
            other => return other,
        }
    }
}

/// Plain `openat(2)` with `O_CLOEXEC` always added.
pub fn openat(
    dir: BorrowedFd<'_>,
    path: &Path,
    flags: libc::c_int,
    mode: u32,
) -> io::Result<OwnedFd> {
    let path = cstr(path)?;
    // SAFETY: valid NUL-terminated path and a live dir fd.
    let ret = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            path.as_ptr(),
            flags | libc::O_CLOEXEC,
            mode as libc::c_uint,
        )
    };
    check_fd(ret as libc::c_long)
}

/// Open an absolute or cwd-relative path.
pub fn open(path: &Path, flags: libc::c_int, mode: u32) -> io::Result<OwnedFd> {
    let path = cstr(path)?;
    // SAFETY: valid NUL-terminated path.
    let ret = unsafe { libc::open(path.as_ptr(), flags | libc::O_CLOEXEC, mode as libc::c_uint) };
    check_fd(ret as libc::c_long)
}

/// `/proc/self/fd/N` for `fd`, as a C string.
pub fn fd_path(fd: BorrowedFd<'_>) -> CString {
    // A decimal number never contains NUL.
    CString::new(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap_or_default()
}

/// Read a whole small file, for /proc and /sys values.
pub fn read_to_string_at(dir: BorrowedFd<'_>, path: &Path) -> io::Result<String> {
    let fd = openat(dir, path, libc::O_RDONLY | libc::O_NOFOLLOW, 0)?;
    let mut s = String::new();
    io::Read::read_to_string(&mut std::fs::File::from(fd), &mut s)?;
    Ok(s)
}

/// Write a whole small value to a file that must already exist.
pub fn write_at(dir: BorrowedFd<'_>, path: &Path, value: &[u8]) -> io::Result<()> {
    let fd = openat(dir, path, libc::O_WRONLY | libc::O_NOFOLLOW, 0)?;
    io::Write::write_all(&mut std::fs::File::from(fd), value)
}

/// `fstat(2)`.
pub fn fstat(fd: BorrowedFd<'_>) -> io::Result<libc::stat> {
    // SAFETY: stat is plain data.
    let mut st: libc::stat = unsafe { mem::zeroed() };
    // SAFETY: a live fd and a valid out-pointer.
    let ret = unsafe { libc::fstat(fd.as_raw_fd(), &mut st) };
    check(ret as libc::c_long)?;
    Ok(st)
}

/// `fstatfs(2)`: the filesystem magic of the file behind `fd`.
pub fn fs_magic(fd: BorrowedFd<'_>) -> io::Result<i64> {
    // SAFETY: statfs is plain data.
    let mut st: libc::statfs = unsafe { mem::zeroed() };
    // SAFETY: a live fd and a valid out-pointer.
    let ret = unsafe { libc::fstatfs(fd.as_raw_fd(), &mut st) };
    check(ret as libc::c_long)?;
    Ok(st.f_type as i64)
}

/// `mkdirat(2)`; an existing entry is not an error.
pub fn mkdirat(dir: BorrowedFd<'_>, name: &Path, mode: u32) -> io::Result<()> {
    let name = cstr(name)?;
    // SAFETY: valid fd and NUL-terminated name.
    let ret = unsafe { libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), mode as libc::mode_t) };
    match check(ret as libc::c_long) {
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
        other => other.map(drop),
    }
}

/// `mknodat(2)`.
pub fn mknodat(dir: BorrowedFd<'_>, name: &Path, mode: u32, dev: u64) -> io::Result<()> {
    let name = cstr(name)?;
    // SAFETY: valid fd and NUL-terminated name.
    let ret = unsafe {
        libc::mknodat(
            dir.as_raw_fd(),
            name.as_ptr(),
            mode as libc::mode_t,
            dev as libc::dev_t,
        )
    };
    check(ret as libc::c_long).map(drop)
}

/// `symlinkat(2)`.
pub fn symlinkat(target: &Path, dir: BorrowedFd<'_>, name: &Path) -> io::Result<()> {
    let target = cstr(target)?;
    let name = cstr(name)?;
    // SAFETY: valid fd and NUL-terminated strings.
    let ret = unsafe { libc::symlinkat(target.as_ptr(), dir.as_raw_fd(), name.as_ptr()) };
    check(ret as libc::c_long).map(drop)
}

/// The target of the symlink an `O_PATH | O_NOFOLLOW` fd stands for.
pub fn readlink_fd(fd: BorrowedFd<'_>) -> io::Result<std::ffi::OsString> {
    let mut buf = vec![0u8; libc::PATH_MAX as usize];
    // SAFETY: readlinkat on a symlink fd with an empty path (the link
    // itself) and a buffer of the size given.
    let n = unsafe {
        libc::readlinkat(
            fd.as_raw_fd(),
            c"".as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate(n as usize);
    Ok(std::os::unix::ffi::OsStringExt::from_vec(buf))
}

/// `fchownat(fd, "", AT_EMPTY_PATH)`: chown the inode behind `fd`.
pub fn fchown(fd: BorrowedFd<'_>, uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: a live fd.
    let ret = unsafe {
        libc::fchownat(
            fd.as_raw_fd(),
            c"".as_ptr(),
            uid,
            gid,
            libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    check(ret as libc::c_long).map(drop)
}

/// `fchmod` through `/proc/self/fd` (works for O_PATH fds too).
pub fn fchmod(fd: BorrowedFd<'_>, mode: u32) -> io::Result<()> {
    let path = fd_path(fd);
    // SAFETY: valid NUL-terminated path.
    let ret = unsafe { libc::chmod(path.as_ptr(), mode as libc::mode_t) };
    check(ret as libc::c_long).map(drop)
}

/// Reopen an `O_PATH` fd with real access `flags`, through its magic link.
pub fn reopen(fd: BorrowedFd<'_>, flags: libc::c_int) -> io::Result<OwnedFd> {
    let path = fd_path(fd);
    // SAFETY: valid NUL-terminated path.
    let ret = unsafe { libc::open(path.as_ptr(), flags | libc::O_CLOEXEC) };
    check_fd(ret as libc::c_long)
}
