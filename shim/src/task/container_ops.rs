//! The boundary between the Task service and the runtime library: every
//! container operation the shim needs, behind one small trait
//! ([`ContainerOps`]), and its one real implementation ([`Runtime`]) on top
//! of [`wren_runtime::Container`]. The unit tests put a fake behind the same
//! trait (`fake.rs`).
//!
//! The service builds the runtime's own [`CreateOptions`] / [`ExecOptions`]
//! (plain data, no behaviour): there is no shim-side copy of those shapes.
//! A failure stays typed ([`OpsError::Runtime`] keeps the
//! [`wren_runtime::Error`]), so `error.rs` can turn its kind into a ttrpc
//! code; the text never names the container (the service prefixes
//! "<op> <id>: " once).
//!
//! Runs in the daemon (and in `delete` for [`ContainerOps::force_delete`]).

use std::os::fd::OwnedFd;
use std::path::Path;

use oci_spec::runtime::LinuxResources;
use protobuf::well_known_types::any::Any;
use protobuf::Message;
use wren_runtime::cgroups::oom::OomWatcher;
use wren_runtime::cgroups::stats::StatsVersion;
use wren_runtime::{Container, CreateOptions, ErrorKind, ExecOptions, ExecProcess};

/// A created container's init, as the service tracks it.
#[derive(Debug)]
pub struct CreatedInit {
    pub pid: u32,
    /// The shim's own pidfd of the init: the loop waits on it instead of
    /// waitpid(-1).
    pub pidfd: OwnedFd,
    /// pty master when `process.terminal` is set.
    pub console: Option<OwnedFd>,
    /// False when the container shares a pid namespace: the shim must then
    /// kill every process of the container when the init exits.
    pub own_pid_namespace: bool,
}

/// A runtime operation failed.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    /// The runtime library refused or failed; its kind decides the code.
    /// (Boxed: the runtime's error is large, and every RPC result carries it.)
    #[error(transparent)]
    Runtime(Box<wren_runtime::Error>),
    #[error("the init has no pidfd")]
    NoPidfd,
    #[error("duplicate the init's pidfd")]
    DupPidfd(#[source] std::io::Error),
    #[error("encode metrics")]
    EncodeMetrics(#[source] protobuf::Error),
}

impl From<wren_runtime::Error> for OpsError {
    fn from(e: wren_runtime::Error) -> Self {
        Self::Runtime(Box::new(e))
    }
}

impl OpsError {
    /// The class of the failure; only the runtime's own errors say more
    /// than [`ErrorKind::Internal`].
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Runtime(e) => e.kind(),
            Self::NoPidfd | Self::DupPidfd(_) | Self::EncodeMetrics(_) => ErrorKind::Internal,
        }
    }
}

/// Container operations the Task service performs. Each container's handle
/// ([`Self::Container`]) lives in the service's one record of that container.
pub trait ContainerOps {
    /// The runtime's handle of one container.
    type Container;
    /// Creates the container; returns when its init is blocked before execve.
    fn create(&mut self, opts: CreateOptions) -> Result<(Self::Container, CreatedInit), OpsError>;
    /// Restore a container from a CRIU checkpoint; it is running already.
    fn restore(
        &mut self,
        opts: wren_runtime::RestoreOptions,
    ) -> Result<(Self::Container, CreatedInit), OpsError>;
    /// Releases the init to execve.
    fn start(&mut self, c: &mut Self::Container) -> Result<(), OpsError>;
    /// Signals the init, or every process of the container with `all`.
    fn kill(&mut self, c: &Self::Container, signal: u32, all: bool) -> Result<(), OpsError>;
    /// Pids of every process in the container.
    fn pids(&mut self, c: &Self::Container) -> Result<Vec<u32>, OpsError>;
    fn pause(&mut self, c: &Self::Container) -> Result<(), OpsError>;
    fn resume(&mut self, c: &Self::Container) -> Result<(), OpsError>;
    /// Dump the container with CRIU (see `wren_runtime::Container::checkpoint`).
    fn checkpoint(
        &mut self,
        c: &Self::Container,
        opts: wren_runtime::CheckpointOptions,
    ) -> Result<(), OpsError>;
    fn update(&mut self, c: &Self::Container, resources: &LinuxResources) -> Result<(), OpsError>;
    /// cgroup metrics as an `Any` (v1 or v2 Metrics).
    fn stats(&mut self, c: &Self::Container) -> Result<Any, OpsError>;
    /// Starts a process in the running container.
    fn exec(&mut self, c: &mut Self::Container, opts: ExecOptions)
        -> Result<ExecProcess, OpsError>;
    /// A pollable OOM-kill watcher on the container's memory cgroup; `None`
    /// when the container has no memory cgroup to watch.
    fn oom_watcher(&mut self, c: &Self::Container) -> Option<OomWatcher>;
    /// Kills what is left and removes the container's runtime state
    /// (cgroup, state dir).
    fn delete(&mut self, c: Self::Container) -> Result<(), OpsError>;
    /// `delete` binary path: kill everything of `id` and remove its state,
    /// with no daemon and no prior in-memory state. Idempotent.
    fn force_delete(&mut self, state_root: &Path, id: &str) -> Result<(), OpsError>;
}

/// The runtime library, linked into the shim.
#[derive(Debug, Default)]
pub struct Runtime;

impl ContainerOps for Runtime {
    type Container = Container;

    fn create(&mut self, opts: CreateOptions) -> Result<(Container, CreatedInit), OpsError> {
        init_of(Container::create(opts)?)
    }

    fn restore(
        &mut self,
        opts: wren_runtime::RestoreOptions,
    ) -> Result<(Container, CreatedInit), OpsError> {
        init_of(Container::restore(opts)?)
    }

    fn start(&mut self, c: &mut Container) -> Result<(), OpsError> {
        Ok(c.start()?)
    }

    fn kill(&mut self, c: &Container, signal: u32, all: bool) -> Result<(), OpsError> {
        Ok(c.kill(signal as i32, all)?)
    }

    fn pids(&mut self, c: &Container) -> Result<Vec<u32>, OpsError> {
        Ok(c.pids()?.into_iter().map(|p| p as u32).collect())
    }

    fn pause(&mut self, c: &Container) -> Result<(), OpsError> {
        Ok(c.pause()?)
    }

    fn resume(&mut self, c: &Container) -> Result<(), OpsError> {
        Ok(c.resume()?)
    }

    fn checkpoint(
        &mut self,
        c: &Container,
        opts: wren_runtime::CheckpointOptions,
    ) -> Result<(), OpsError> {
        Ok(c.checkpoint(opts)?)
    }

    fn update(&mut self, c: &Container, resources: &LinuxResources) -> Result<(), OpsError> {
        Ok(c.update(resources)?)
    }

    fn stats(&mut self, c: &Container) -> Result<Any, OpsError> {
        let stats = c.stats()?;
        let (type_url, value) = match stats.version {
            StatsVersion::V1 => (
                wren_protocol::type_urls::CGROUPS_V1_METRICS,
                super::metrics::v1(&stats).write_to_bytes(),
            ),
            StatsVersion::V2 => (
                wren_protocol::type_urls::CGROUPS_V2_METRICS,
                super::metrics::v2(&stats).write_to_bytes(),
            ),
        };
        let mut any = Any::new();
        any.type_url = type_url.to_string();
        any.value = value.map_err(OpsError::EncodeMetrics)?;
        Ok(any)
    }

    fn exec(&mut self, c: &mut Container, opts: ExecOptions) -> Result<ExecProcess, OpsError> {
        Ok(c.exec(opts)?)
    }

    fn oom_watcher(&mut self, c: &Container) -> Option<OomWatcher> {
        match c.cgroup()?.oom_watcher() {
            Ok(w) => Some(w),
            Err(e) => {
                log::warn!("{}: no OOM notifications: {e}", c.id());
                None
            }
        }
    }

    fn delete(&mut self, c: Container) -> Result<(), OpsError> {
        let pid = c.init_pid();
        let result = c.delete(true);
        wren_runtime::children::release(pid);
        Ok(result?)
    }

    fn force_delete(&mut self, state_root: &Path, id: &str) -> Result<(), OpsError> {
        match Container::load(state_root, id) {
            Ok(c) => Ok(c.delete(true)?),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

/// The shim's view of a new (or restored) init: its own pidfd, console.
fn init_of(mut c: Container) -> Result<(Container, CreatedInit), OpsError> {
    let pidfd = c
        .init_pidfd()
        .ok_or(OpsError::NoPidfd)
        .and_then(|fd| fd.try_clone_to_owned().map_err(OpsError::DupPidfd));
    let pidfd = match pidfd {
        Ok(fd) => fd,
        Err(e) => {
            let _ = c.delete(true);
            return Err(e);
        }
    };
    let created = CreatedInit {
        pid: c.init_pid() as u32,
        pidfd,
        console: c.take_console(),
        own_pid_namespace: c.has_own_pid_namespace(),
    };
    Ok((c, created))
}
