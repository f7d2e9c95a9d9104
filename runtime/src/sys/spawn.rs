//! Starting a program from a possibly multi-threaded process: [`spawn`]
//! prepares everything (argv, envp, the fd map, a full signal mask), calls
//! `clone3(CLONE_PIDFD [| CLONE_INTO_CGROUP])`, and hands the child to
//! [`super::after_clone`], the only code that runs between `clone3` and
//! `execveat`.
//!
//! Runs in the caller (the shim daemon on any thread, `wren-oci`, and the
//! init for hooks). Used for the container init and for hooks.

use std::ffi::{CStr, CString};
use std::io;
use std::mem;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use super::abi::{CloneArgs, CLONE_INTO_CGROUP, CLONE_PIDFD};
use super::after_clone::child_after_clone;
use super::check;

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
