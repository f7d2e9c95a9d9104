//! Processes: pidfds (`pidfd_open`, `pidfd_send_signal`, `waitid(P_PIDFD)`),
//! `PR_SET_DUMPABLE`, the thread count, and `clone3` from a
//! single-threaded process whose child goes on running ordinary code (stage
//! 1 of the init cloning stage 2, or a user-namespace holder).
//!
//! The pidfd calls run in the caller and the init; the clones only in stage
//! 1 of the init. Spawning from a multi-threaded caller is [`super::spawn`].

use std::io;
use std::mem;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use super::abi::{CloneArgs, CLONE_PIDFD, P_PIDFD};
use super::{check, check_fd};

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

/// Number of threads of the calling process (from /proc/self/status).
pub fn thread_count() -> io::Result<usize> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no Threads: line"))
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
/// The child runs nothing but `pause` (async-signal-safe), so a
/// multi-threaded caller is sound too; the caller collects the child.
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
