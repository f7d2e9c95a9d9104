//! The child between `clone3` and `execveat`: runs in the new process that
//! [`super::spawn`] cloned from a possibly multi-threaded caller, on a
//! copy-on-write copy of the caller's memory.
//!
//! Raw syscalls only: no allocation, no locking, no logging, no
//! destructors, nothing that could wait for a lock another thread of the
//! caller held at the clone. It works on data the caller prepared before
//! the clone (fd map, argv, envp), maps the fds, marks every other fd
//! close-on-exec, resets signal dispositions and the mask, and execs; on
//! any failure it exits with status 126 (fd setup) or 127 (exec).

use std::os::fd::RawFd;

use super::SPAWN_MAX_FDS;

/// # Safety
/// Must only be called in the child right after `clone3`, with pointers that
/// stay valid (they point into the copied parent memory).
pub(super) unsafe fn child_after_clone(
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
