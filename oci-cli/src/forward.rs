//! Waiting on a foreground process (`run` without `--detach`, `exec`
//! without `--detach`): signals sent to `wren-oci` are forwarded to it,
//! SIGWINCH resizes its pty, SIGCHLD reaps orphans, and its exit status
//! becomes ours. Runs in the `wren-oci` process.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use wren_runtime::sys;
use wren_runtime::{Container, ExecProcess};

use crate::{reaper, tty};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Signals taken from the default action while in the foreground.
const FORWARDED: [i32; 8] = [
    libc::SIGHUP,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGTERM,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGWINCH,
    libc::SIGCHLD,
];

/// The [`FORWARDED`] signals, blocked and queued on a signalfd.
struct SignalFd(OwnedFd);

impl SignalFd {
    fn new() -> std::io::Result<Self> {
        // SAFETY: sigset_t is plain data initialised by sigemptyset.
        let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: valid pointer to a sigset_t.
        unsafe { libc::sigemptyset(&mut set) };
        for s in FORWARDED {
            // SAFETY: valid pointer and signal number.
            unsafe { libc::sigaddset(&mut set, s) };
        }
        // SAFETY: block these signals so they queue on the signalfd.
        unsafe { libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
        // SAFETY: a valid set; a new fd.
        let fd = unsafe { libc::signalfd(-1, &set, libc::SFD_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: the kernel just gave us this fd.
        Ok(SignalFd(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    fn read(&self) -> Option<i32> {
        // SAFETY: signalfd_siginfo is plain data.
        let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
        let size = std::mem::size_of::<libc::signalfd_siginfo>();
        // SAFETY: reading one struct into a buffer of its size.
        let n = unsafe {
            libc::read(
                self.0.as_raw_fd(),
                (&mut info as *mut libc::signalfd_siginfo).cast(),
                size,
            )
        };
        (n as usize == size).then_some(info.ssi_signo as i32)
    }
}

/// `run` in the foreground: wait for the container's init.
pub fn foreground(c: &Container, console: Option<OwnedFd>) -> Result<i32> {
    let pidfd = c.init_pidfd().ok_or("the container's init is gone")?;
    wait(c.init_pid(), pidfd, console)
}

/// `exec` in the foreground: wait for the exec'd process.
pub fn wait_exec(p: &ExecProcess) -> Result<i32> {
    let console = match &p.console {
        Some(c) => Some(c.try_clone()?),
        None => None,
    };
    wait(p.pid, p.pidfd.as_fd(), console)
}

/// Wait for a process, forwarding signals to it and copying the terminal
/// when there is one. Returns the exit status (128+signal when killed).
fn wait(pid: i32, pidfd: BorrowedFd<'_>, console: Option<OwnedFd>) -> Result<i32> {
    let sigfd = SignalFd::new()?;
    let raw = console.as_ref().map(|m| tty::RawStdin::new(m.as_fd()));
    let output_done = match &console {
        Some(master) => tty::copy(master.try_clone()?),
        None => None,
    };
    let result = loop {
        let mut pfds = [
            libc::pollfd {
                fd: pidfd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: sigfd.0.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: two valid pollfds.
        let ret = unsafe { libc::poll(pfds.as_mut_ptr(), 2, -1) };
        if ret < 0 {
            continue;
        }
        if pfds[1].revents & libc::POLLIN != 0 {
            if let Some(sig) = sigfd.read() {
                match sig {
                    libc::SIGCHLD => reaper::reap_orphans(pid),
                    libc::SIGWINCH => {
                        if let Some(m) = &console {
                            tty::resize_from_stdin(m.as_fd());
                        }
                    }
                    _ => {
                        let _ = sys::pidfd_send_signal(pidfd, sig);
                    }
                }
            }
        }
        if pfds[0].revents != 0 {
            break sys::wait_pidfd(pidfd, false)?.map_or(255, |e| e.status());
        }
    };
    // The process is gone but its last output may still sit in the pty:
    // let the copy finish (EIO once no one holds the slave), bounded in
    // case a child it left behind keeps the terminal open.
    if let Some(done) = output_done {
        let _ = done.recv_timeout(std::time::Duration::from_secs(2));
    }
    drop(raw);
    Ok(result)
}
