//! `binary://` logging programs, containerd's contract: the program gets the
//! container's stdout and stderr pipes as fds 3 and 4 and a readiness pipe as
//! fd 5, the environment `CONTAINER_ID` and `CONTAINER_NAMESPACE` only, and
//! the URI's query as arguments. The shim waits until it is ready (EOF or a
//! byte for `binary`, a byte for `binary-v2`) before the container starts,
//! and on delete sends SIGTERM, then SIGKILL after a grace period.
//!
//! Runs in the daemon (spawned with `std::process::Command`, whose child
//! only calls `dup2` before `execve`).

use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long a logger may take to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a logger has to exit after SIGTERM (containerd gives 12 s).
pub const TERM_GRACE: Duration = Duration::from_secs(12);

/// A running logging program.
pub struct Logger {
    pub pid: u32,
    pub pidfd: OwnedFd,
}

/// A logger that could not be started.
#[derive(Debug, thiserror::Error)]
pub enum LoggerError {
    #[error("start logging binary {path}")]
    Spawn {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("logging binary {path} did not become ready: {why}")]
    NotReady { path: String, why: String },
}

fn dup_high(fd: RawFd) -> std::io::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC returns a new fd >= 10 that we then own.
    let new = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 10) };
    if new < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `new` was just returned by fcntl and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

fn pidfd_open(pid: u32) -> std::io::Result<OwnedFd> {
    // SAFETY: pidfd_open(2) on our own unreaped child.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a fresh fd from pidfd_open, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Starts `path args...` with `stdout_r`/`stderr_r` as fds 3 and 4 and waits
/// for readiness on fd 5.
pub fn spawn(
    path: &Path,
    args: &[String],
    v2: bool,
    container_id: &str,
    namespace: &str,
    stdout_r: OwnedFd,
    stderr_r: OwnedFd,
) -> Result<Logger, LoggerError> {
    let name = path.display().to_string();
    let spawn_err = |source| LoggerError::Spawn {
        path: name.clone(),
        source,
    };
    let (ready_r, ready_w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| spawn_err(e.into()))?;
    // Above fd 10 so the dup2 calls in the child cannot clobber each other.
    let fds = [
        dup_high(stdout_r.as_raw_fd()).map_err(spawn_err)?,
        dup_high(stderr_r.as_raw_fd()).map_err(spawn_err)?,
        dup_high(ready_w.as_raw_fd()).map_err(spawn_err)?,
    ];
    drop((stdout_r, stderr_r, ready_w));
    let raw: Vec<RawFd> = fds.iter().map(|f| f.as_raw_fd()).collect();
    let mut cmd = Command::new(path);
    cmd.args(args)
        .env_clear()
        .env("CONTAINER_ID", container_id)
        .env("CONTAINER_NAMESPACE", namespace)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: the closure runs between fork and exec and calls only dup2,
    // signal and sigprocmask, which are async-signal-safe; dup2 clears
    // FD_CLOEXEC on 3, 4 and 5. The daemon blocks SIGCHLD and ignores
    // SIGPIPE, and both would survive execve: a logger with SIGCHLD blocked
    // hangs in a shell's `wait`.
    unsafe {
        cmd.pre_exec(move || {
            for (i, fd) in raw.iter().enumerate() {
                if libc::dup2(*fd, 3 + i as RawFd) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
            let mut empty: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut empty);
            libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
            Ok(())
        });
    }
    let child = cmd.spawn().map_err(spawn_err)?;
    drop(fds);
    let pid = child.id();
    // The child is reaped by the daemon's orphan reaper; the pidfd is how we
    // signal it without pid reuse races.
    drop(child);
    let pidfd = pidfd_open(pid).map_err(spawn_err)?;
    let logger = Logger { pid, pidfd };
    if let Err(why) = wait_ready(ready_r, v2) {
        kill(&logger, libc::SIGKILL);
        return Err(LoggerError::NotReady { path: name, why });
    }
    Ok(logger)
}

fn wait_ready(ready: OwnedFd, v2: bool) -> Result<(), String> {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!("no signal within {READY_TIMEOUT:?}"));
        }
        let mut pfd = libc::pollfd {
            fd: ready.as_fd().as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: poll(2) on one pollfd we own.
        let rc = unsafe { libc::poll(&mut pfd, 1, left.as_millis().min(i32::MAX as u128) as i32) };
        if rc < 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(format!("poll: {e}"));
        }
        if rc == 0 {
            continue;
        }
        let mut b = [0u8; 1];
        return match nix::unistd::read(ready.as_fd(), &mut b) {
            Ok(1) => Ok(()),
            Ok(_) if !v2 => Ok(()),
            Ok(_) => Err("it closed fd 5 without writing a byte (binary-v2)".into()),
            Err(e) => Err(format!("read fd 5: {e}")),
        };
    }
}

/// Sends `signal` through the logger's pidfd (an exited logger is fine).
pub fn kill(logger: &Logger, signal: i32) {
    // SAFETY: pidfd_send_signal(2) with a pidfd we own and no siginfo.
    unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            logger.pidfd.as_raw_fd(),
            signal,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
}

/// True once the logger has exited (its pidfd is readable).
pub fn exited(logger: &Logger) -> bool {
    wait_exit(logger, Duration::ZERO)
}

/// Waits up to `timeout` for the logger to exit; true if it did.
pub fn wait_exit(logger: &Logger, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        let mut pfd = libc::pollfd {
            fd: logger.pidfd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = deadline
            .saturating_duration_since(Instant::now())
            .as_millis()
            .min(i32::MAX as u128) as i32;
        // SAFETY: poll(2) on one pollfd we own.
        let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
        if rc > 0 {
            return true;
        }
        if rc == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return false;
        }
    }
}
