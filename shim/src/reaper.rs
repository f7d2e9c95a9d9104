//! Collecting exit statuses. Container processes are tracked by pidfd and
//! reaped by the loop when their pidfd turns readable; this file handles what
//! else the subreaper inherits (orphans re-parented to the shim) without
//! stealing children someone else waits for: a pid the service tracks, or a
//! transient child of the runtime library (hooks, helpers), is skipped.
//!
//! Runs in the daemon, on the epoll loop thread, on SIGCHLD.

use std::os::fd::{AsRawFd, BorrowedFd};

/// Exit status the way containerd reports it: the code, or 128+signal.
pub fn exit_status(info: &libc::siginfo_t) -> u32 {
    // SAFETY: si_status is valid for the CLD_* codes waitid(2) fills in.
    let status = unsafe { info.si_status() } as u32;
    match info.si_code {
        libc::CLD_EXITED => status,
        _ => 128 + status,
    }
}

/// Reaps the process behind `pidfd` if it has exited; `None` while it runs.
pub fn try_reap_pidfd(pidfd: BorrowedFd<'_>) -> std::io::Result<Option<u32>> {
    // SAFETY: zeroed siginfo_t is a valid out-parameter for waitid.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: waitid(P_PIDFD) with a pidfd we hold and a valid siginfo pointer.
    let rc = unsafe {
        libc::waitid(
            libc::P_PIDFD,
            pidfd.as_raw_fd() as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOHANG,
        )
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: si_pid is valid after a successful waitid.
    if unsafe { info.si_pid() } == 0 {
        return Ok(None);
    }
    Ok(Some(exit_status(&info)))
}

/// This process's children (from every thread's `children` list).
fn children() -> Vec<i32> {
    let mut pids = Vec::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return pids;
    };
    for task in tasks.flatten() {
        if let Ok(list) = std::fs::read_to_string(task.path().join("children")) {
            pids.extend(
                list.split_whitespace()
                    .filter_map(|p| p.parse::<i32>().ok()),
            );
        }
    }
    pids
}

/// Reaps every exited child that `is_owned` does not claim. Returns the pids
/// reaped, with their statuses, for logging.
pub fn reap_orphans(is_owned: &dyn Fn(i32) -> bool) -> Vec<(i32, u32)> {
    let mut reaped = Vec::new();
    for pid in children() {
        if is_owned(pid) {
            continue;
        }
        // SAFETY: zeroed siginfo_t is a valid out-parameter for waitid.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: waitid(P_PID) on one specific child, non-blocking.
        let rc = unsafe {
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOHANG,
            )
        };
        // SAFETY: si_pid is valid after a successful waitid.
        if rc == 0 && unsafe { info.si_pid() } != 0 {
            reaped.push((pid, exit_status(&info)));
        }
    }
    reaped
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::{FromRawFd, OwnedFd};

    fn pidfd_open(pid: u32) -> OwnedFd {
        // SAFETY: pidfd_open(2) on our own child; returns a new fd or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
        assert!(fd >= 0);
        // SAFETY: fd was just returned by pidfd_open and is owned by nobody else.
        unsafe { OwnedFd::from_raw_fd(fd as i32) }
    }

    #[test]
    #[allow(
        clippy::zombie_processes,
        reason = "reaped through the pidfd, which is the point"
    )]
    fn pidfd_reaps_exit_codes_and_signals() {
        use std::os::fd::AsFd;
        let child = std::process::Command::new("sh")
            .args(["-c", "exit 7"])
            .spawn()
            .unwrap();
        let fd = pidfd_open(child.id());
        let code = loop {
            if let Some(c) = try_reap_pidfd(fd.as_fd()).unwrap() {
                break c;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        };
        assert_eq!(code, 7);

        let child = std::process::Command::new("sleep")
            .arg("10")
            .spawn()
            .unwrap();
        let fd = pidfd_open(child.id());
        assert_eq!(try_reap_pidfd(fd.as_fd()).unwrap(), None);
        // SAFETY: kill(2) on our own unreaped child.
        unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
        let code = loop {
            if let Some(c) = try_reap_pidfd(fd.as_fd()).unwrap() {
                break c;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        };
        assert_eq!(code, 137);
    }
}
