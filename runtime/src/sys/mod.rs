//! The only place raw syscalls are wrapped. Everything above works with
//! `OwnedFd`/`BorrowedFd` and `io::Result`; callers add the context (which
//! path, which container) when they turn these into their own errors.
//!
//! Runs in every process: the caller (shim or CLI), the init while it sets a
//! container up, and — for [`spawn`] only — the short-lived child between
//! `clone3` and `execveat`, where nothing but raw syscalls may run.

pub mod bpf;
pub mod caps;
pub mod seccomp;

use std::ffi::{CStr, CString};
use std::io;
use std::mem;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

// Constants that are stable kernel ABI but not exported by every libc version.
pub const OPEN_TREE_CLONE: u32 = 1;
pub const OPEN_TREE_CLOEXEC: u32 = libc::O_CLOEXEC as u32;
const MOVE_MOUNT_F_EMPTY_PATH: u32 = 0x4;
const MOVE_MOUNT_T_EMPTY_PATH: u32 = 0x40;
pub const MOUNT_ATTR_RDONLY: u64 = 0x1;
pub const MOUNT_ATTR_NOSUID: u64 = 0x2;
pub const MOUNT_ATTR_NODEV: u64 = 0x4;
pub const MOUNT_ATTR_NOEXEC: u64 = 0x8;
pub const MOUNT_ATTR__ATIME: u64 = 0x70;
pub const MOUNT_ATTR_RELATIME: u64 = 0x0;
pub const MOUNT_ATTR_NOATIME: u64 = 0x10;
pub const MOUNT_ATTR_STRICTATIME: u64 = 0x20;
pub const MOUNT_ATTR_NODIRATIME: u64 = 0x80;
pub const MOUNT_ATTR_NOSYMFOLLOW: u64 = 0x0020_0000;
pub const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;
pub const RESOLVE_NO_XDEV: u64 = 0x01;
pub const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
pub const RESOLVE_NO_SYMLINKS: u64 = 0x04;
pub const RESOLVE_BENEATH: u64 = 0x08;
pub const RESOLVE_IN_ROOT: u64 = 0x10;
const CLONE_PIDFD: u64 = 0x1000;
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;
const P_PIDFD: libc::idtype_t = 3;
const TIOCGPTPEER: libc::c_ulong = 0x5441;

#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

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

/// `/proc/self/fd/N` for `fd`, as a C string.
pub fn fd_path(fd: BorrowedFd<'_>) -> CString {
    // A decimal number never contains NUL.
    CString::new(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap_or_default()
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

/// `close_range(2)`: mark (`cloexec`) or close every fd from `first` up.
pub fn close_range(first: u32, cloexec: bool) -> io::Result<()> {
    let flags: libc::c_uint = if cloexec { 1 << 2 } else { 0 };
    // SAFETY: plain integer arguments; closing fds we do not use is the point.
    let ret = unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, flags) };
    check(ret).map(drop)
}

/// `pidfd_open(2)`.
pub fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    // SAFETY: plain integer arguments.
    let ret = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    check_fd(ret)
}

/// `pidfd_send_signal(2)`.
pub fn pidfd_send_signal(pidfd: BorrowedFd<'_>, signal: i32) -> io::Result<()> {
    // SAFETY: a live pidfd and a null siginfo.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            signal,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    check(ret).map(drop)
}

/// How a process ended, as `waitid` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
}

impl Exit {
    /// The shell convention: the exit code, or 128 + signal.
    pub fn status(self) -> i32 {
        match self {
            Exit::Code(c) => c,
            Exit::Signal(s) => 128 + s,
        }
    }
}

/// `waitid(P_PIDFD)`. With `nohang`, `Ok(None)` means still running.
pub fn wait_pidfd(pidfd: BorrowedFd<'_>, nohang: bool) -> io::Result<Option<Exit>> {
    let mut flags = libc::WEXITED;
    if nohang {
        flags |= libc::WNOHANG;
    }
    loop {
        // SAFETY: siginfo_t is plain data; zeroed is a valid initial value.
        let mut info: libc::siginfo_t = unsafe { mem::zeroed() };
        // SAFETY: `info` is a valid out-pointer for the duration of the call.
        let ret =
            unsafe { libc::waitid(P_PIDFD, pidfd.as_raw_fd() as libc::id_t, &mut info, flags) };
        if ret < 0 {
            let err = io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(err);
        }
        // SAFETY: waitid filled `info` for a child event (or left it zeroed).
        let (pid, status) = unsafe { (info.si_pid(), info.si_status()) };
        if pid == 0 {
            return Ok(None);
        }
        return Ok(Some(if info.si_code == libc::CLD_EXITED {
            Exit::Code(status)
        } else {
            Exit::Signal(status)
        }));
    }
}

/// `prctl(PR_SET_DUMPABLE)`.
pub fn set_dumpable(dumpable: bool) -> io::Result<()> {
    // SAFETY: plain integer arguments.
    let ret = unsafe { libc::prctl(libc::PR_SET_DUMPABLE, dumpable as libc::c_ulong, 0, 0, 0) };
    check(ret as libc::c_long).map(drop)
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

use std::os::fd::AsFd;

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

/// What [`spawn`] executes.
#[derive(Clone, Copy)]
pub enum Exe<'a> {
    /// An open file, run with `execveat(AT_EMPTY_PATH)` (ELF binaries).
    Fd(BorrowedFd<'a>),
    /// A path, run with `execve` (works for scripts too).
    Path(&'a CStr),
}

/// What [`spawn`] needs: everything is prepared by the caller so the child
/// side runs raw syscalls only.
pub struct SpawnArgs<'a> {
    /// The executable.
    pub exe: Exe<'a>,
    pub argv: &'a [CString],
    pub envp: &'a [CString],
    /// `(source, target)` pairs: `source` is duplicated onto `target` in the
    /// child. Targets must be 0..n without gaps; every other fd, including
    /// ones the caller inherited without `O_CLOEXEC`, is closed at exec.
    pub fds: &'a [(BorrowedFd<'a>, RawFd)],
    /// A cgroup2 directory to be born in (`CLONE_INTO_CGROUP`).
    pub cgroup: Option<BorrowedFd<'a>>,
}

/// The most fds [`spawn`] can map into the child.
pub const SPAWN_MAX_FDS: usize = 32;

/// Start a new process running `args.exe`, safe to call from a
/// multi-threaded process: between `clone3` and `execveat` the child runs
/// nothing but raw syscalls on data prepared here. Returns the pid and a
/// pidfd. If the kernel cannot place the child in `args.cgroup`, it is
/// started outside it and the caller moves it.
pub fn spawn(args: &SpawnArgs<'_>) -> io::Result<(i32, OwnedFd)> {
    if args.fds.len() > SPAWN_MAX_FDS {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "too many fds to map",
        ));
    }
    let mut argv: Vec<*const libc::c_char> = args.argv.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = args.envp.iter().map(|a| a.as_ptr()).collect();
    envp.push(std::ptr::null());
    let mut srcs = [-1 as RawFd; SPAWN_MAX_FDS];
    let mut dsts = [-1 as RawFd; SPAWN_MAX_FDS];
    for (i, (src, dst)) in args.fds.iter().enumerate() {
        srcs[i] = src.as_raw_fd();
        dsts[i] = *dst;
    }
    let nfds = args.fds.len();

    // Block every signal so no handler of ours runs in the child before
    // execve resets dispositions; the parent restores its mask afterwards.
    // SAFETY: sigset_t is plain data, filled by sigfillset before use.
    let mut all: libc::sigset_t = unsafe { mem::zeroed() };
    // SAFETY: as above.
    let mut old: libc::sigset_t = unsafe { mem::zeroed() };
    // SAFETY: valid pointers to sigset_t values that live across the calls.
    unsafe {
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
    }

    let mut result = clone3_exec(args, &argv, &envp, &srcs, &dsts, nfds, args.cgroup);
    if let Err(e) = &result {
        // Kernels before 5.7 or a cgroup that cannot take processes directly:
        // fall back to a plain clone; the caller moves the process instead.
        if args.cgroup.is_some()
            && matches!(
                e.raw_os_error(),
                Some(libc::EINVAL) | Some(libc::E2BIG) | Some(libc::EOPNOTSUPP) | Some(libc::EBUSY)
            )
        {
            result = clone3_exec(args, &argv, &envp, &srcs, &dsts, nfds, None);
        }
    }
    // SAFETY: restoring the mask saved above.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut()) };
    result
}

#[inline(never)]
fn clone3_exec(
    args: &SpawnArgs<'_>,
    argv: &[*const libc::c_char],
    envp: &[*const libc::c_char],
    srcs: &[RawFd; SPAWN_MAX_FDS],
    dsts: &[RawFd; SPAWN_MAX_FDS],
    nfds: usize,
    cgroup: Option<BorrowedFd<'_>>,
) -> io::Result<(i32, OwnedFd)> {
    let mut pidfd: RawFd = -1;
    let mut cl = CloneArgs {
        flags: CLONE_PIDFD,
        pidfd: &mut pidfd as *mut RawFd as u64,
        exit_signal: libc::SIGCHLD as u64,
        ..Default::default()
    };
    if let Some(cg) = cgroup {
        cl.flags |= CLONE_INTO_CGROUP;
        cl.cgroup = cg.as_raw_fd() as u64;
    }
    let (exe_fd, exe_path) = match args.exe {
        Exe::Fd(fd) => (fd.as_raw_fd(), std::ptr::null()),
        Exe::Path(p) => (-1, p.as_ptr()),
    };
    // SAFETY: `cl` is a valid clone_args of the size passed. Without CLONE_VM
    // the child gets a copy-on-write copy of our memory, including this stack
    // frame, and continues here with a return value of 0.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &mut cl as *mut CloneArgs,
            mem::size_of::<CloneArgs>(),
        )
    };
    if ret == 0 {
        // Child: raw syscalls only; no allocation, no locks, no logging.
        // SAFETY: every pointer was prepared by the parent before clone3 and
        // is valid in our copy of its memory; on any failure we exit at once.
        unsafe { child_after_clone(exe_fd, exe_path, argv, envp, srcs, dsts, nfds) }
    }
    let pid = check(ret)? as i32;
    // SAFETY: CLONE_PIDFD stored a fresh fd that only we own.
    Ok((pid, unsafe { OwnedFd::from_raw_fd(pidfd) }))
}

/// # Safety
/// Must only be called in the child right after `clone3`, with pointers that
/// stay valid (they point into the copied parent memory).
unsafe fn child_after_clone(
    exe: RawFd,
    exe_path: *const libc::c_char,
    argv: &[*const libc::c_char],
    envp: &[*const libc::c_char],
    srcs: &[RawFd; SPAWN_MAX_FDS],
    dsts: &[RawFd; SPAWN_MAX_FDS],
    nfds: usize,
) -> ! {
    let mut tmp = [-1 as RawFd; SPAWN_MAX_FDS];
    // First move every source out of the way so a target never clobbers a
    // source that is still to be duplicated.
    for i in 0..nfds {
        // SAFETY: raw fcntl on an fd we inherited.
        let fd = unsafe { libc::syscall(libc::SYS_fcntl, srcs[i], libc::F_DUPFD_CLOEXEC, 64) };
        if fd < 0 {
            // SAFETY: exiting the child without running any destructor.
            unsafe { libc::syscall(libc::SYS_exit_group, 126) };
        }
        tmp[i] = fd as RawFd;
    }
    for i in 0..nfds {
        // SAFETY: raw dup3 between fds we own in this child.
        let r = unsafe { libc::syscall(libc::SYS_dup3, tmp[i], dsts[i], 0) };
        if r < 0 {
            // SAFETY: as above.
            unsafe { libc::syscall(libc::SYS_exit_group, 126) };
        }
    }
    // Whatever else is open (fds the caller inherited without O_CLOEXEC,
    // like a make jobserver pipe) must not reach the new program. Mark, not
    // close: the executable's own fd is in that range.
    // SAFETY: raw close_range with CLOSE_RANGE_CLOEXEC on our own fds.
    if unsafe { libc::syscall(libc::SYS_close_range, nfds as u32, u32::MAX, 1u32 << 2) } < 0 {
        // SAFETY: exiting the child without running any destructor.
        unsafe { libc::syscall(libc::SYS_exit_group, 126) };
    }
    // The new program starts with default dispositions and nothing blocked:
    // execve keeps ignored signals (the shim ignores SIGPIPE) and the mask
    // (the parent blocked everything above; the shim blocks SIGCHLD), and a
    // hook or logger with SIGCHLD blocked hangs in `wait`. Every signal is
    // still blocked here, so no handler can run before execve.
    let dfl = [0u64; 4];
    for sig in 1..=64 {
        if sig != libc::SIGKILL && sig != libc::SIGSTOP {
            // SAFETY: raw rt_sigaction installing SIG_DFL from a zeroed
            // kernel sigaction; failures (reserved signals) are harmless.
            unsafe {
                libc::syscall(
                    libc::SYS_rt_sigaction,
                    sig,
                    dfl.as_ptr(),
                    std::ptr::null_mut::<u64>(),
                    8usize,
                )
            };
        }
    }
    let empty = 0u64;
    // SAFETY: raw rt_sigprocmask with an empty 8-byte set.
    unsafe {
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK,
            &empty as *const u64,
            std::ptr::null_mut::<u64>(),
            8usize,
        )
    };
    // SAFETY: argv/envp are NUL-terminated arrays prepared before clone3.
    unsafe {
        if exe_path.is_null() {
            libc::syscall(
                libc::SYS_execveat,
                exe,
                c"".as_ptr(),
                argv.as_ptr(),
                envp.as_ptr(),
                libc::AT_EMPTY_PATH,
            );
        } else {
            libc::syscall(libc::SYS_execve, exe_path, argv.as_ptr(), envp.as_ptr());
        }
        libc::syscall(libc::SYS_exit_group, 127);
    }
    // exit_group does not return.
    #[allow(clippy::empty_loop)]
    loop {}
}

/// `clone3(CLONE_PARENT | CLONE_PIDFD)` from a single-threaded process:
/// the new process is a sibling of ours, so our parent reaps it. Returns
/// `None` in the child, which goes on running ordinary code.
///
/// # Safety
/// The calling process must be single-threaded: the child continues on a
/// copy of our memory, which is only consistent without other threads.
pub unsafe fn clone_sibling() -> io::Result<Option<(i32, OwnedFd)>> {
    // With CLONE_PARENT the kernel takes our own exit signal and insists
    // the one given is 0.
    // SAFETY: the caller guarantees we are single-threaded.
    unsafe { clone_process(libc::CLONE_PARENT as u64, 0) }
}

/// A child in a new user namespace that only waits to be killed: the
/// holder of a namespace whose id maps the caller then writes (for an
/// idmapped mount). Returns its pid and pidfd.
///
/// # Safety
/// The calling process must be single-threaded (as for
/// [`clone_sibling`]); the child runs nothing but `pause`.
pub unsafe fn clone_userns_holder() -> io::Result<(i32, OwnedFd)> {
    // SAFETY: the caller guarantees we are single-threaded.
    match unsafe { clone_process(libc::CLONE_NEWUSER as u64, libc::SIGCHLD as u64) }? {
        Some(child) => Ok(child),
        None => loop {
            // SAFETY: pause has no arguments; the parent kills us.
            unsafe { libc::pause() };
        },
    }
}

/// `clone3(CLONE_PIDFD | flags)` without a new stack: `None` in the child.
///
/// # Safety
/// The calling process must be single-threaded.
unsafe fn clone_process(flags: u64, exit_signal: u64) -> io::Result<Option<(i32, OwnedFd)>> {
    let mut pidfd: RawFd = -1;
    let mut cl = CloneArgs {
        flags: CLONE_PIDFD | flags,
        pidfd: &mut pidfd as *mut RawFd as u64,
        exit_signal,
        ..Default::default()
    };
    // SAFETY: a valid clone_args of the size passed; the caller guarantees
    // we are single-threaded.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &mut cl as *mut CloneArgs,
            mem::size_of::<CloneArgs>(),
        )
    };
    match ret {
        r if r < 0 => Err(io::Error::last_os_error()),
        0 => Ok(None),
        // SAFETY: CLONE_PIDFD stored a fresh fd that only we own.
        pid => Ok(Some((pid as i32, unsafe { OwnedFd::from_raw_fd(pidfd) }))),
    }
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

/// Number of threads of the calling process (from /proc/self/status).
pub fn thread_count() -> io::Result<usize> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no Threads: line"))
}
