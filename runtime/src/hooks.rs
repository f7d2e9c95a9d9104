//! OCI hooks: each is started with the container's state JSON on stdin,
//! with its own args and env, and killed if it outlives its timeout.
//!
//! prestart, createRuntime, poststart and poststop run in the caller (host
//! namespaces); createContainer and startContainer run in the init process,
//! inside the container's namespaces. Hooks are started with
//! [`crate::sys::spawn`] and waited for through their pidfd, so a caller that
//! reaps orphans (the shim) never steals their exit status.

use std::ffi::CString;
use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use oci_spec::runtime::Hook;

use crate::sys;

#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("{kind} hook {path}: start")]
    Start {
        kind: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{kind} hook {path}: exited with status {status}")]
    Failed {
        kind: &'static str,
        path: PathBuf,
        status: i32,
    },
    #[error("{kind} hook {path}: timed out after {secs}s")]
    Timeout {
        kind: &'static str,
        path: PathBuf,
        secs: i64,
    },
}

/// Run `hooks` one after another; the first failure stops the rest. A hook
/// without `env` gets an empty environment.
pub fn run_all(kind: &'static str, hooks: &[Hook], state: &[u8]) -> Result<(), HookError> {
    run_all_with_env(kind, hooks, state, &[])
}

/// [`run_all`] for the hooks that run in the container (createContainer,
/// startContainer): a hook without `env` gets `inherited`, the container
/// process's environment, as runc and youki give it.
pub fn run_all_with_env(
    kind: &'static str,
    hooks: &[Hook],
    state: &[u8],
    inherited: &[String],
) -> Result<(), HookError> {
    for hook in hooks {
        run(kind, hook, state, inherited)?;
    }
    Ok(())
}

fn cstring(s: &[u8]) -> io::Result<CString> {
    CString::new(s)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL byte in hook argument"))
}

/// Run one hook; `inherited` is its environment when it has no `env`.
pub fn run(
    kind: &'static str,
    hook: &Hook,
    state: &[u8],
    inherited: &[String],
) -> Result<(), HookError> {
    let path = hook.path().clone();
    let start = |source: io::Error| HookError::Start {
        kind,
        path: path.clone(),
        source,
    };
    // Fail with the hook's path if it is missing, before anything starts.
    let exe = sys::open(&path, libc::O_PATH, 0).map_err(start)?;
    let args: Vec<String> = match hook.args() {
        Some(a) if !a.is_empty() => a.clone(),
        _ => vec![path.to_string_lossy().into_owned()],
    };
    let argv: Vec<CString> = args
        .iter()
        .map(|a| cstring(a.as_bytes()))
        .collect::<io::Result<_>>()
        .map_err(start)?;
    let envp: Vec<CString> = hook
        .env()
        .as_deref()
        .unwrap_or(inherited)
        .iter()
        .map(|e| cstring(e.as_bytes()))
        .collect::<io::Result<_>>()
        .map_err(start)?;
    drop(exe);
    let (rd, wr) = pipe().map_err(start)?;
    let null = sys::open(std::path::Path::new("/dev/null"), libc::O_RDWR, 0).map_err(start)?;
    let out = sys::fd_or(1, null.as_fd());
    let err = sys::fd_or(2, null.as_fd());
    let path_c = cstring(path.as_os_str().as_bytes()).map_err(start)?;
    let fds = [(rd.as_fd(), 0), (out, 1), (err, 2)];
    let (pid, pidfd) = crate::children::spawn_recorded(|| {
        sys::spawn(&sys::SpawnArgs {
            exe: sys::Exe::Path(&path_c),
            argv: &argv,
            envp: &envp,
            fds: &fds,
            cgroup: None,
        })
    })
    .map_err(start)?;
    drop(rd);
    let result = wait_hook(kind, hook, &path, pid, pidfd, wr, state);
    crate::children::release(pid);
    result
}

fn wait_hook(
    kind: &'static str,
    hook: &Hook,
    path: &std::path::Path,
    pid: i32,
    pidfd: OwnedFd,
    wr: OwnedFd,
    state: &[u8],
) -> Result<(), HookError> {
    let path = path.to_path_buf();
    // A hook that does not read its stdin must not block us: EPIPE is fine.
    let mut w = std::fs::File::from(wr);
    let _ = w.write_all(state);
    drop(w);
    let timeout = hook.timeout().filter(|t| *t > 0);
    match wait_with_timeout(pidfd.as_fd(), timeout.map(|t| t * 1000)) {
        Ok(Some(exit)) if exit.status() == 0 => Ok(()),
        Ok(Some(exit)) => Err(HookError::Failed {
            kind,
            path,
            status: exit.status(),
        }),
        Ok(None) => {
            let _ = sys::pidfd_send_signal(pidfd.as_fd(), libc::SIGKILL);
            let _ = sys::wait_pidfd(pidfd.as_fd(), false);
            log::warn!("{kind} hook {} (pid {pid}) timed out", path.display());
            Err(HookError::Timeout {
                kind,
                path,
                secs: timeout.unwrap_or(0),
            })
        }
        Err(source) => Err(HookError::Start { kind, path, source }),
    }
}

/// Wait for the process behind `pidfd`, at most `timeout_ms`.
pub fn wait_with_timeout(
    pidfd: BorrowedFd<'_>,
    timeout_ms: Option<i64>,
) -> io::Result<Option<sys::Exit>> {
    if let Some(ms) = timeout_ms {
        let mut pfd = libc::pollfd {
            fd: pidfd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_millis(ms as u64);
        loop {
            let left = deadline
                .saturating_duration_since(std::time::Instant::now())
                .as_millis() as i32;
            // SAFETY: one valid pollfd.
            let ret = unsafe { libc::poll(&mut pfd, 1, left) };
            if ret > 0 {
                break;
            }
            if ret == 0 {
                return Ok(None);
            }
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EINTR) {
                return Err(e);
            }
        }
    }
    sys::wait_pidfd(pidfd, false)
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: valid out-array of two ints.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 just created both fds.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(json: &str) -> Hook {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn state_arrives_on_stdin_and_status_is_checked() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let h = hook(&format!(
            r#"{{"path":"/bin/sh","args":["sh","-c","cat > {} && test \"$X\" = y"],"env":["X=y"]}}"#,
            out.display()
        ));
        run("prestart", &h, b"{\"id\":\"c1\"}", &[]).unwrap();
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "{\"id\":\"c1\"}");
        let bad = hook(r#"{"path":"/bin/sh","args":["sh","-c","exit 3"]}"#);
        match run("poststart", &bad, b"{}", &[]) {
            Err(HookError::Failed { status: 3, .. }) => {}
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn timeouts_kill_the_hook() {
        let h = hook(r#"{"path":"/bin/sh","args":["sh","-c","sleep 10"],"timeout":1}"#);
        let t = std::time::Instant::now();
        assert!(matches!(
            run("createRuntime", &h, b"{}", &[]),
            Err(HookError::Timeout { .. })
        ));
        assert!(t.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn missing_hook_names_its_path() {
        let h = hook(r#"{"path":"/nonexistent/hook"}"#);
        let err = run("prestart", &h, b"{}", &[]).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/hook"), "{err}");
    }
}
