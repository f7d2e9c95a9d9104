//! `--init` (the `run.wren.init` annotation): the container's init stays
//! as its pid 1 after `start` and runs the process as its child. It
//! forwards the signals it is sent to that child, reaps every process that
//! is reparented to it, and exits with the child's status (128 + the
//! signal when the child was killed), which ends the pid namespace.
//!
//! It is the init process that is already running, so nothing from the
//! image is needed (a dynamically linked wren could not be exec'd inside a
//! busybox rootfs anyway) and no binary is copied in. It runs with the
//! process's user, capabilities and (without no_new_privs) its seccomp
//! filter, like tini under Docker; with no_new_privs the filter is loaded
//! in the child only, just before execve.
//!
//! Runs in the container's init process (stage 2), after the release.

use nix::sys::signal::{kill, sigprocmask, SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};

use super::fail;
use crate::sync::SetupFailure;

/// Which side of the fork this is.
pub(super) enum Side {
    /// The container process: go on to execve.
    Child,
    /// The reaper, with the container process's pid.
    Parent(Pid),
}

/// Blocks every signal (the reaper reads them from a signalfd; the child
/// unblocks them before execve), becomes a subreaper (orphans come here
/// when the container has no pid namespace of its own) and forks.
pub(super) fn fork_process() -> Result<Side, SetupFailure> {
    sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::all()), None)
        .map_err(|e| fail("block signals for the reaper")(std::io::Error::from(e)))?;
    // SAFETY: PR_SET_CHILD_SUBREAPER takes an integer flag.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
        return Err(fail("become a subreaper")(std::io::Error::last_os_error()));
    }
    // SAFETY: the init is single-threaded (a fresh exec of the binary that
    // never starts threads), so the child may go on running ordinary Rust.
    match unsafe { fork() } {
        Ok(ForkResult::Child) => Ok(Side::Child),
        Ok(ForkResult::Parent { child }) => Ok(Side::Parent(child)),
        Err(e) => Err(fail("fork the container process")(std::io::Error::from(e))),
    }
}

/// The reaper's loop; never returns. `child` is the container process.
pub(super) fn reap(child: Pid) -> ! {
    // Nothing of the setup is needed any more: keep only stdio, so the
    // channel and the exec fifo close when the child execs.
    // SAFETY: close_range on fds this process never uses again; the Rust
    // owners of the closed ones are never dropped (this function exits).
    unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) };
    let name = c"wren-init";
    // SAFETY: PR_SET_NAME with a NUL-terminated string of < 16 bytes.
    unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr(), 0, 0, 0) };
    let sfd = match SignalFd::with_flags(&SigSet::all(), SfdFlags::SFD_CLOEXEC) {
        Ok(s) => s,
        // Without a signalfd nothing can be forwarded: wait for the child
        // alone (still reaping whatever else exits first).
        Err(_) => loop {
            match waitpid(None, None) {
                Ok(s) if s.pid() == Some(child) => exit_with(s),
                Err(nix::errno::Errno::ECHILD) => std::process::exit(255),
                _ => {}
            }
        },
    };
    loop {
        // Reap first: the child may have exited before the signalfd was
        // made, its SIGCHLD then being pending and read below.
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) => break,
                Ok(s) if s.pid() == Some(child) => exit_with(s),
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => {}
                // No children at all: the child is gone without a status
                // we could read (cannot happen: it is ours).
                Err(_) => std::process::exit(255),
            }
        }
        let info = match sfd.read_signal() {
            Ok(Some(info)) => info,
            Ok(None) | Err(_) => continue,
        };
        let sig = info.ssi_signo as i32;
        if sig == libc::SIGCHLD {
            continue;
        }
        // A terminal's signals (^C, ^\, window size) already went to the
        // whole foreground process group, the child included.
        if info.ssi_code == libc::SI_KERNEL {
            continue;
        }
        if let Ok(sig) = Signal::try_from(sig) {
            let _ = kill(child, sig);
        } else {
            // A real-time signal: nix's Signal has no variant for it.
            // SAFETY: kill with a pid and a signal number.
            unsafe { libc::kill(child.as_raw(), sig) };
        }
    }
}

/// Exit as the child did: its code, or 128 + the signal that killed it.
fn exit_with(s: WaitStatus) -> ! {
    let code = match s {
        WaitStatus::Exited(_, code) => code,
        WaitStatus::Signaled(_, sig, _) => 128 + sig as i32,
        _ => 255,
    };
    std::process::exit(code)
}
