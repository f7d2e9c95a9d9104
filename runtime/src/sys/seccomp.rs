//! Raw `seccomp(2)`: installing a classic-BPF filter and asking the kernel
//! which actions and filter flags it knows.
//!
//! [`set_mode_filter`] runs in the container's init process just before
//! `execve`; the two probes run in the parent while a profile is compiled.
//! None of these functions allocate or log.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

/// `seccomp(SECCOMP_SET_MODE_FILTER, flags, prog)`: attach `prog` to the
/// calling thread (or all threads with `SECCOMP_FILTER_FLAG_TSYNC`).
///
/// Returns the user-notification listener when `flags` contains
/// `SECCOMP_FILTER_FLAG_NEW_LISTENER`, `None` otherwise. The caller must have
/// set no_new_privs or hold `CAP_SYS_ADMIN`.
pub fn set_mode_filter(prog: &[libc::sock_filter], flags: u32) -> io::Result<Option<OwnedFd>> {
    let len = u16::try_from(prog.len()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let fprog = libc::sock_fprog {
        len,
        // The kernel only reads the program.
        filter: prog.as_ptr().cast_mut(),
    };
    // SAFETY: `fprog` points at `len` initialised `sock_filter`s borrowed for the
    // duration of the call; the kernel copies them and keeps no pointer.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            libc::c_ulong::from(flags),
            &fprog as *const libc::sock_fprog,
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    if flags & listener_flag() != 0 {
        let fd = i32::try_from(ret).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
        // SAFETY: with SECCOMP_FILTER_FLAG_NEW_LISTENER a successful call returns a
        // new file descriptor that nothing else owns.
        return Ok(Some(unsafe { OwnedFd::from_raw_fd(fd) }));
    }
    Ok(None)
}

/// `seccomp(SECCOMP_GET_ACTION_AVAIL)`: whether the kernel knows the return
/// action `action` (a `SECCOMP_RET_*` value without data bits).
pub fn action_available(action: u32) -> io::Result<bool> {
    // SAFETY: the kernel reads one u32 through the pointer, which is valid for the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_GET_ACTION_AVAIL,
            0 as libc::c_ulong,
            &action as *const u32,
        )
    };
    if ret == 0 {
        return Ok(true);
    }
    match io::Error::last_os_error() {
        e if e.raw_os_error() == Some(libc::EOPNOTSUPP) => Ok(false),
        e => Err(e),
    }
}

/// Whether the kernel accepts the filter flags `flags`.
///
/// Calls `SECCOMP_SET_MODE_FILTER` with a NULL program: the kernel checks the
/// flags before it reads the program, so unknown flags give `EINVAL` and known
/// ones `EFAULT`. Nothing is installed either way.
pub fn filter_flags_supported(flags: u32) -> io::Result<bool> {
    // SAFETY: a NULL program pointer makes the kernel fail with EFAULT at the
    // latest; it never writes through it and installs nothing.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            libc::c_ulong::from(flags),
            std::ptr::null::<libc::sock_fprog>(),
        )
    };
    if ret >= 0 {
        // Cannot happen with a NULL program; treat as supported.
        return Ok(true);
    }
    match io::Error::last_os_error() {
        e if e.raw_os_error() == Some(libc::EFAULT) => Ok(true),
        e if e.raw_os_error() == Some(libc::EINVAL) => Ok(false),
        e => Err(e),
    }
}

/// `SECCOMP_FILTER_FLAG_NEW_LISTENER` as the u32 the wrappers take.
pub const fn listener_flag() -> u32 {
    libc::SECCOMP_FILTER_FLAG_NEW_LISTENER as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_answer_on_this_kernel() {
        // Every kernel we support knows ALLOW and the TSYNC flag.
        assert!(action_available(libc::SECCOMP_RET_ALLOW).unwrap());
        assert!(filter_flags_supported(libc::SECCOMP_FILTER_FLAG_TSYNC as u32).unwrap());
        // A flag bit far beyond anything defined is refused.
        assert!(!filter_flags_supported(1 << 30).unwrap());
        // An action value the kernel does not define.
        assert!(!action_available(0x7ff8_0000).unwrap());
    }

    #[test]
    fn overlong_program_is_einval() {
        let prog = vec![
            libc::sock_filter {
                code: 0,
                jt: 0,
                jf: 0,
                k: 0
            };
            70_000
        ];
        let err = set_mode_filter(&prog, 0).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EINVAL));
    }
}
