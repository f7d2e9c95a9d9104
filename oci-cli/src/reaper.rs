//! Reaping for a foreground `run`: `wren-oci` becomes the subreaper of
//! what the container leaves behind (a container without its own pid
//! namespace can fork processes that outlive its init), and reaps those
//! orphans as SIGCHLD arrives, never the process it waits for through its
//! pidfd. Runs in the `wren-oci` process.

/// Make orphans of our descendants reparent to us instead of to pid 1.
pub fn become_subreaper() {
    // SAFETY: integer prctl.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
}

/// Reap every exited child except `keep`: peek first with WNOWAIT, reap
/// only others, so `keep`'s status stays for its pidfd.
pub fn reap_orphans(keep: i32) {
    loop {
        // SAFETY: siginfo_t is plain data.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: valid out-pointer; WNOWAIT leaves the zombie in place.
        let ret = unsafe {
            libc::waitid(
                libc::P_ALL,
                0,
                &mut info,
                libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
            )
        };
        // SAFETY: waitid filled `info` (or left it zeroed).
        let pid = unsafe { info.si_pid() };
        if ret != 0 || pid == 0 || pid == keep {
            break;
        }
        let mut status = 0;
        // SAFETY: reaping exactly the zombie we just saw.
        unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
    }
}
