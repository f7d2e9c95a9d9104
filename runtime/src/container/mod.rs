//! The public lifecycle API: create, start, state, kill, exec, pause,
//! resume, update, stats, delete — the caller's side of the process model.
//!
//! Runs in the caller (the shim daemon, any thread, or `wren-oci`). It
//! validates everything it can before creating anything, starts the init
//! through [`crate::sys::spawn`] (a clone3 + execveat of the sealed binary), serves
//! the init's requests on the channel (id maps, cgroup resources and
//! host-side hooks), and undoes whatever it made when a step fails.
//!
//! Files, by what they hold:
//! - `create.rs`: what the caller does during create;
//! - `exec.rs`: a new process in a running container;
//! - `lifecycle.rs`: load, status, start, kill, pause, resume, update,
//!   stats, delete;
//! - `init_driver.rs`: launching the init and serving its requests on the
//!   channel (id maps, cgroup resources, host-side hooks), for create and
//!   exec;
//! - `cleanup.rs`: the guard that undoes a half-made container;
//! - `error.rs`: [`Error`] and its [`ErrorKind`](crate::ErrorKind).
//!
//! This file holds the options and the [`Container`] handle.

mod checkpoint;
mod cleanup;
mod create;
mod error;
mod exec;
mod host_mounts;
mod init_driver;
mod lifecycle;
mod plain_netns;

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Process, Spec};

pub use checkpoint::{CgroupsMode, CheckpointOptions, CriuFlags, RestoreOptions, DESCRIPTORS};
pub use create::with_default_devices;
pub use error::Error;
pub use init_driver::one_init_per_process;

use crate::cgroups::Cgroup;
use crate::seccomp::SeccompProgram;
use crate::spec;
use crate::state::State;
use error::io_err;

/// Stdio for a container process; `None` inherits the caller's own fd.
#[derive(Debug, Default)]
pub struct Stdio {
    pub stdin: Option<OwnedFd>,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
}

/// Where the pty master goes when `process.terminal` is set.
#[derive(Debug, Clone, Default)]
pub enum ConsoleMode {
    /// Keep it: [`Container::take_console`] / [`ExecProcess::console`].
    #[default]
    Return,
    /// Send it down a unix socket (runc's `--console-socket`).
    Socket(PathBuf),
}

#[derive(Debug)]
pub struct CreateOptions {
    pub id: String,
    pub bundle: PathBuf,
    /// Directory holding one subdirectory of state per container.
    pub state_root: PathBuf,
    pub stdio: Stdio,
    pub console: ConsoleMode,
    /// Pass the caller's fds 3..3+n to the container process.
    pub preserve_fds: u32,
    /// MS_MOVE + chroot instead of pivot_root (rootfs on ramfs).
    pub no_pivot: bool,
    pub pid_file: Option<PathBuf>,
    /// Keep the caller's session keyring (runc's `--no-new-keyring`,
    /// containerd's `NoNewKeyring`) instead of a new one per container.
    pub no_new_keyring: bool,
    /// The systemd cgroup driver (runc's `--systemd-cgroup`, containerd's
    /// `SystemdCgroup`): systemd makes the cgroup as a transient unit.
    pub systemd_cgroup: bool,
}

#[derive(Debug)]
pub struct ExecOptions {
    pub process: Process,
    pub stdio: Stdio,
    pub console: ConsoleMode,
    pub preserve_fds: u32,
    pub pid_file: Option<PathBuf>,
    /// Exec into a paused container too (runc's `--ignore-paused`): the
    /// process starts frozen and runs once the container is resumed, so
    /// the exec returns only then.
    pub ignore_paused: bool,
    /// An existing sub-cgroup of the container's cgroup to start the
    /// process in (runc's `exec --cgroup`), relative to it.
    pub sub_cgroup: Option<String>,
}

/// A process started in a running container.
#[derive(Debug)]
pub struct ExecProcess {
    pub pid: i32,
    pub pidfd: OwnedFd,
    pub console: Option<OwnedFd>,
}

/// A container, created or loaded from its state directory.
#[derive(Debug)]
pub struct Container {
    state: State,
    dir: PathBuf,
    pidfd: Option<OwnedFd>,
    console: Option<OwnedFd>,
    seccomp: Option<SeccompProgram>,
}

/// Check a container id: what runc accepts, so it is a safe path component.
pub fn validate_id(id: &str) -> Result<(), Error> {
    let ok = !id.is_empty()
        && id.len() <= 1024
        && id != "."
        && id != ".."
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_+-.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidId(id.into()))
    }
}

impl Container {
    pub fn id(&self) -> &str {
        &self.state.id
    }

    pub fn init_pid(&self) -> i32 {
        self.state.pid
    }

    /// The init's pidfd (None once it is known to be gone).
    pub fn init_pidfd(&self) -> Option<BorrowedFd<'_>> {
        self.pidfd.as_ref().map(|f| f.as_fd())
    }

    pub fn spec(&self) -> &Spec {
        &self.state.spec
    }

    /// Does the container have a pid namespace of its own? If not, its
    /// other processes must be killed when the init exits (runc's rule).
    pub fn has_own_pid_namespace(&self) -> bool {
        spec::namespaces(&self.state.spec)
            .map(|ns| {
                ns.iter()
                    .any(|n| n.kind == LinuxNamespaceType::Pid && n.path.is_none())
            })
            .unwrap_or(false)
    }

    pub fn bundle(&self) -> &Path {
        &self.state.bundle
    }

    pub fn cgroup(&self) -> Option<&Cgroup> {
        self.state.cgroup.as_ref()
    }

    /// The pty master of the init, when `process.terminal` was set and no
    /// console socket was given.
    pub fn take_console(&mut self) -> Option<OwnedFd> {
        self.console.take()
    }
}

/// Makes `<state_root>/<id>`, the container's state directory: the claim on
/// its name. An existing one means the name is taken.
fn create_state_dir(state_root: &Path, id: &str) -> Result<std::path::PathBuf, Error> {
    std::fs::create_dir_all(state_root).map_err(error::io_err("create state root", state_root))?;
    let dir = state_root.join(id);
    match std::fs::create_dir(&dir) {
        Ok(()) => Ok(dir),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            Err(Error::AlreadyExists(id.to_string()))
        }
        Err(e) => Err(error::io_err("create state dir", &dir)(e)),
    }
}

fn write_pid_file(path: &Path, pid: i32) -> Result<(), Error> {
    let tmp = path.with_extension("wren-tmp");
    std::fs::write(&tmp, pid.to_string())
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(io_err("write pid file", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_safe_path_components() {
        for ok in ["a", "c1", "my_ctr-1.2+x"] {
            validate_id(ok).unwrap();
        }
        for bad in ["", ".", "..", "a/b", "a b", "ä"] {
            assert!(validate_id(bad).is_err(), "{bad:?}");
        }
    }
}
