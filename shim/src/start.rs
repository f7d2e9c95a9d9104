//! `containerd-shim-wren-v2 … start`: find or create the shim socket, spawn the
//! daemon (this binary again, no action, listener on fd 3, new session, cwd =
//! bundle, stdio /dev/null, stderr = the bundle's `log` FIFO), give it
//! containerd's oom_score_adj + 1 and the options' `ShimCgroup`, write
//! `address`, and print the address. Nothing is written to stderr on success,
//! because containerd reads stdout and stderr together.
//!
//! Output: a plain `unix://…` address, which every containerd from 1.6 on
//! accepts; a protobuf `BootstrapResult` only when a confirmed containerd 2.3
//! `BootstrapParams` arrived on stdin. We advertise task API version 2.
//!
//! Runs in the short-lived `start` process (single-threaded, cwd = bundle).

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use protobuf::Message;
use wren_protocol::bootstrap::BootstrapResult;

use crate::flags::Flags;
use crate::options::{OptionsError, StartInput, StdinError};
use crate::socket::{self, Listened, SocketError};

/// The annotations that put several containers in one shim, in priority order.
pub const GROUP_ANNOTATIONS: [&str; 2] = [
    "io.containerd.runc.v2.group",
    "io.kubernetes.cri.sandbox-id",
];
/// Task API version the shim reports (v2 lifecycle; v3 is served too).
pub const SHIM_API_VERSION: i32 = 2;

/// Why `start` failed.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("-id and -namespace are required")]
    MissingIdentity,
    #[error("read stdin")]
    ReadStdin(#[source] io::Error),
    #[error(transparent)]
    Stdin(#[from] StdinError),
    #[error("runtime options")]
    Options(#[from] OptionsError),
    #[error("read {path}")]
    ReadSpec {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Socket(#[from] SocketError),
    #[error("write {path}")]
    WriteAddress {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("find own executable")]
    CurrentExe(#[source] io::Error),
    #[error("spawn shim daemon")]
    Spawn(#[source] io::Error),
    #[error("set oom_score_adj of pid {pid}")]
    OomScore {
        pid: u32,
        #[source]
        source: io::Error,
    },
    #[error("move shim {pid} into cgroup {cgroup}")]
    ShimCgroup {
        pid: u32,
        cgroup: String,
        #[source]
        source: io::Error,
    },
    #[error("write address to stdout")]
    Print(#[source] io::Error),
}

/// The group a container's shim is keyed by: the first grouping annotation in
/// `config.json`, else the container id.
pub fn group_id(bundle: &Path, id: &str) -> Result<String, StartError> {
    let path = bundle.join("config.json");
    let text = match std::fs::read(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(id.to_string()),
        Err(source) => return Err(StartError::ReadSpec { path, source }),
    };
    let spec: serde_json::Value = serde_json::from_slice(&text).unwrap_or_default();
    let annotations = &spec["annotations"];
    Ok(GROUP_ANNOTATIONS
        .iter()
        .find_map(|k| annotations[k].as_str().filter(|v| !v.is_empty()))
        .unwrap_or(id)
        .to_string())
}

/// Runs `start` and returns what to print on stdout.
pub fn run(flags: &Flags) -> Result<Vec<u8>, StartError> {
    if flags.id.is_empty() || flags.namespace.is_empty() {
        return Err(StartError::MissingIdentity);
    }
    let mut raw = Vec::new();
    io::stdin()
        .read_to_end(&mut raw)
        .map_err(StartError::ReadStdin)?;
    let input = StartInput::decode(&raw, &flags.id, &flags.namespace)?;
    let options = input.options()?.unwrap_or_default();

    let bundle = if flags.bundle.is_empty() {
        PathBuf::from(".")
    } else {
        PathBuf::from(&flags.bundle)
    };
    let group = group_id(&bundle, &flags.id)?;
    let grpc_address = match &input {
        StartInput::Bootstrap(p) if flags.address.is_empty() => p.containerd_grpc_address.clone(),
        _ => flags.address.clone(),
    };
    let dir = input.socket_dir().unwrap_or(socket::DEFAULT_SOCKET_DIR);
    let path = socket::socket_path(Path::new(dir), &grpc_address, &flags.namespace, &group);
    let address = socket::to_address(&path);

    let listener = match socket::listen(&path)? {
        Listened::Existing => None,
        Listened::New(l) => Some(l),
    };
    let address_file = bundle.join("address");
    std::fs::write(&address_file, &address).map_err(|source| StartError::WriteAddress {
        path: address_file,
        source,
    })?;
    if let Some(listener) = listener {
        let debug = flags.debug || input.debug();
        let ttrpc_address = match &input {
            StartInput::Bootstrap(p) => Some(p.containerd_ttrpc_address.as_str()),
            _ => None,
        };
        let spawned = spawn_daemon(
            flags,
            &grpc_address,
            debug,
            ttrpc_address,
            &bundle,
            listener.into(),
        );
        let pid = match spawned {
            Ok(pid) => pid,
            Err(e) => {
                let _ = socket::remove(&path);
                return Err(e);
            }
        };
        let adjusted = adjust_oom_score(pid).and_then(|()| {
            if options.shim_cgroup.is_empty() {
                Ok(())
            } else {
                join_cgroup(pid, &options.shim_cgroup)
            }
        });
        if let Err(e) = adjusted {
            // SAFETY: kill(2) on the pid of the child we just spawned; it has
            // not been waited for, so the pid cannot have been reused.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            let _ = socket::remove(&path);
            return Err(e);
        }
    }
    Ok(match input {
        StartInput::Bootstrap(_) => {
            let mut result = BootstrapResult::new();
            result.version = SHIM_API_VERSION;
            result.address = address;
            result.protocol = "ttrpc".into();
            result.write_to_bytes().unwrap_or_default()
        }
        _ => address.into_bytes(),
    })
}

/// Prints `start`'s answer; no newline, containerd trims anyway.
pub fn print(out: &[u8]) -> Result<(), StartError> {
    let mut stdout = io::stdout().lock();
    stdout
        .write_all(out)
        .and_then(|()| stdout.flush())
        .map_err(StartError::Print)
}

/// Opens the bundle's `log` FIFO for the daemon's stderr, without blocking:
/// containerd holds it open for reading (O_RDWR) before calling `start`.
fn open_log_fifo(bundle: &Path) -> Stdio {
    OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(bundle.join("log"))
        .map(Stdio::from)
        .unwrap_or_else(|_| Stdio::null())
}

/// Re-executes this binary as the daemon and returns its pid.
fn spawn_daemon(
    flags: &Flags,
    grpc_address: &str,
    debug: bool,
    ttrpc_address: Option<&str>,
    bundle: &Path,
    listener: OwnedFd,
) -> Result<u32, StartError> {
    let exe = std::env::current_exe().map_err(StartError::CurrentExe)?;
    let mut cmd = Command::new(exe);
    cmd.arg("-namespace")
        .arg(&flags.namespace)
        .arg("-id")
        .arg(&flags.id)
        .arg("-address")
        .arg(grpc_address);
    if !flags.publish_binary.is_empty() {
        cmd.arg("-publish-binary").arg(&flags.publish_binary);
    }
    if debug {
        cmd.arg("-debug");
    }
    if let Some(addr) = ttrpc_address.filter(|a| !a.is_empty()) {
        if std::env::var_os(wren_protocol::TTRPC_ADDRESS_ENV).is_none() {
            cmd.env(wren_protocol::TTRPC_ADDRESS_ENV, addr);
        }
    }
    for (k, v) in wren_runtime::malloc_tunables::daemon_environment(
        std::env::var_os("GLIBC_TUNABLES").as_deref(),
    ) {
        cmd.env(k, v);
    }
    cmd.env(
        crate::serve::SPAWNED_AT_ENV,
        wren_runtime::timing::now_ns().to_string(),
    );
    cmd.current_dir(bundle)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(open_log_fifo(bundle));
    let fd = listener.as_raw_fd();
    // SAFETY: the closure runs in the forked child of this single-threaded
    // process and only calls async-signal-safe functions (setsid, dup2, fcntl).
    unsafe {
        cmd.pre_exec(move || {
            if libc::setsid() < 0 {
                return Err(io::Error::last_os_error());
            }
            if fd == crate::serve::LISTENER_FD {
                // dup2 onto itself keeps CLOEXEC: clear it by hand.
                if libc::fcntl(fd, libc::F_SETFD, 0) < 0 {
                    return Err(io::Error::last_os_error());
                }
            } else if libc::dup2(fd, crate::serve::LISTENER_FD) < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn().map_err(StartError::Spawn)?;
    drop(listener);
    // The child is not waited for: `start` exits right away and the daemon is
    // reparented; containerd reaps nothing of ours.
    Ok(child.id())
}

/// Gives the daemon containerd's oom_score_adj + 1, so the OOM killer picks a
/// shim before containerd.
fn adjust_oom_score(pid: u32) -> Result<(), StartError> {
    let err = |source| StartError::OomScore { pid, source };
    // SAFETY: getppid(2) cannot fail.
    let parent = unsafe { libc::getppid() };
    let text = std::fs::read_to_string(format!("/proc/{parent}/oom_score_adj")).map_err(err)?;
    let score: i32 = text.trim().parse().unwrap_or(0);
    let wanted = (score + 1).min(1000);
    std::fs::write(format!("/proc/{pid}/oom_score_adj"), wanted.to_string()).map_err(err)
}

/// Moves the daemon into the options' `ShimCgroup`: the unified hierarchy on a
/// cgroup v2 host, every v1 hierarchy that has the path otherwise.
fn join_cgroup(pid: u32, cgroup: &str) -> Result<(), StartError> {
    join_cgroup_at(Path::new("/sys/fs/cgroup"), pid, cgroup).map_err(|source| {
        StartError::ShimCgroup {
            pid,
            cgroup: cgroup.to_string(),
            source,
        }
    })
}

fn join_cgroup_at(root: &Path, pid: u32, cgroup: &str) -> io::Result<()> {
    let rel = cgroup.trim_start_matches('/');
    if root.join("cgroup.controllers").exists() {
        return std::fs::write(root.join(rel).join("cgroup.procs"), pid.to_string());
    }
    let mut joined = 0;
    for entry in std::fs::read_dir(root)? {
        let entry = entry?;
        if entry.file_name() == "unified" || !entry.file_type()?.is_dir() {
            continue;
        }
        let procs = entry.path().join(rel).join("cgroup.procs");
        if procs.exists() {
            File::options()
                .write(true)
                .open(&procs)?
                .write_all(pid.to_string().as_bytes())?;
            joined += 1;
        }
    }
    if joined == 0 {
        return Err(io::Error::from(io::ErrorKind::NotFound));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_from_annotations() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(group_id(dir.path(), "c1").unwrap(), "c1");
        std::fs::write(dir.path().join("config.json"), r#"{"annotations":{}}"#).unwrap();
        assert_eq!(group_id(dir.path(), "c1").unwrap(), "c1");
        std::fs::write(
            dir.path().join("config.json"),
            r#"{"annotations":{"io.kubernetes.cri.sandbox-id":"sb","io.containerd.runc.v2.group":"g"}}"#,
        )
        .unwrap();
        assert_eq!(group_id(dir.path(), "c1").unwrap(), "g");
        std::fs::write(
            dir.path().join("config.json"),
            r#"{"annotations":{"io.kubernetes.cri.sandbox-id":"sb"}}"#,
        )
        .unwrap();
        assert_eq!(group_id(dir.path(), "c1").unwrap(), "sb");
    }

    #[test]
    fn shim_cgroup_v1_and_v2_layouts() {
        let v1 = tempfile::tempdir().unwrap();
        for c in ["memory", "pids", "unified"] {
            std::fs::create_dir_all(v1.path().join(c).join("shims")).unwrap();
        }
        std::fs::write(v1.path().join("memory/shims/cgroup.procs"), "").unwrap();
        std::fs::write(v1.path().join("pids/shims/cgroup.procs"), "").unwrap();
        join_cgroup_at(v1.path(), 42, "/shims").unwrap();
        let got = std::fs::read_to_string(v1.path().join("pids/shims/cgroup.procs")).unwrap();
        assert_eq!(got, "42");
        assert!(join_cgroup_at(v1.path(), 42, "/absent").is_err());

        let v2 = tempfile::tempdir().unwrap();
        std::fs::write(v2.path().join("cgroup.controllers"), "").unwrap();
        std::fs::create_dir_all(v2.path().join("shims")).unwrap();
        join_cgroup_at(v2.path(), 7, "shims").unwrap();
        assert_eq!(
            std::fs::read_to_string(v2.path().join("shims/cgroup.procs")).unwrap(),
            "7"
        );
    }
}
