//! The boundary between the Task service and the runtime library: every
//! container operation the shim needs, behind one small trait, implemented in
//! this file only, on top of [`wren_runtime::Container`].
//!
//! Runs in the daemon (and in `delete` for [`ContainerOps::force_delete`]).

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::path::PathBuf;

use protobuf::well_known_types::any::Any;
use protobuf::Message;
use wren_runtime::cgroups::stats::StatsVersion;
use wren_runtime::{ConsoleMode, Container, CreateOptions, ExecOptions, Stdio};

/// What the runtime needs to create a container's init process.
#[derive(Debug)]
#[allow(
    dead_code,
    reason = "terminal/no_new_keyring: the runtime reads them from the spec"
)]
pub struct CreateRequest {
    pub id: String,
    pub bundle: PathBuf,
    pub state_root: PathBuf,
    pub terminal: bool,
    pub stdin: Option<OwnedFd>,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
    pub no_pivot_root: bool,
    pub no_new_keyring: bool,
}

/// A created container's init (or an exec'd process), as the shim tracks it.
#[derive(Debug)]
#[allow(
    dead_code,
    reason = "console is used once terminal stdio is wired to the service"
)]
pub struct CreatedInit {
    pub pid: u32,
    /// pidfd of the process: the shim waits on it instead of waitpid(-1).
    pub pidfd: OwnedFd,
    /// pty master when `terminal` was requested.
    pub console: Option<OwnedFd>,
    /// False when the container shares a pid namespace: the shim must then
    /// kill every process of the container when the init exits.
    pub own_pid_namespace: bool,
}

/// A runtime operation failed.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    #[error("{op}: the runtime's container API is not linked into this shim yet")]
    #[allow(dead_code, reason = "kept for builds without the runtime")]
    NotLinked { op: &'static str },
    #[error("container {id} not found in the runtime state")]
    NotFound { id: String },
    #[error("{op} container {id}")]
    Failed {
        op: &'static str,
        id: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Container operations the Task service performs.
pub trait ContainerOps {
    /// Creates the container; returns when its init is blocked before execve.
    fn create(&mut self, req: CreateRequest) -> Result<CreatedInit, OpsError>;
    /// Releases the init to execve.
    fn start(&mut self, id: &str) -> Result<(), OpsError>;
    /// Signals the init, or every process of the container with `all`.
    fn kill(&mut self, id: &str, signal: u32, all: bool) -> Result<(), OpsError>;
    /// Pids of every process in the container.
    fn pids(&mut self, id: &str) -> Result<Vec<u32>, OpsError>;
    fn pause(&mut self, id: &str) -> Result<(), OpsError>;
    fn resume(&mut self, id: &str) -> Result<(), OpsError>;
    /// Applies JSON `specs.LinuxResources`.
    fn update(&mut self, id: &str, resources_json: &[u8]) -> Result<(), OpsError>;
    /// cgroup metrics as an `Any` (v1 or v2 Metrics).
    fn stats(&mut self, id: &str) -> Result<Any, OpsError>;
    /// Starts JSON `specs.Process` in the running container `id`.
    fn exec(
        &mut self,
        id: &str,
        process_json: &[u8],
        stdin: Option<OwnedFd>,
        stdout: Option<OwnedFd>,
        stderr: Option<OwnedFd>,
    ) -> Result<CreatedInit, OpsError>;
    /// A pollable OOM-kill watcher on the container's memory cgroup; `None`
    /// when the container has no memory cgroup to watch.
    fn oom_watcher(&mut self, id: &str) -> Option<wren_runtime::cgroups::oom::OomWatcher>;
    /// Removes the container's runtime state (cgroup, state dir).
    fn delete(&mut self, id: &str) -> Result<(), OpsError>;
    /// `delete` binary path: kill everything of `id` and remove its state,
    /// with no daemon and no prior in-memory state. Idempotent.
    fn force_delete(&mut self, state_root: &std::path::Path, id: &str) -> Result<(), OpsError>;
}

/// Returns the runtime implementation linked into this build.
pub fn runtime() -> Box<dyn ContainerOps> {
    Box::new(Linked::default())
}

fn failed<'a>(op: &'static str, id: &'a str) -> impl FnOnce(wren_runtime::Error) -> OpsError + 'a {
    move |e| OpsError::Failed {
        op,
        id: id.to_string(),
        source: Box::new(e),
    }
}

fn failed_msg(op: &'static str, id: &str, msg: String) -> OpsError {
    OpsError::Failed {
        op,
        id: id.to_string(),
        source: msg.into(),
    }
}

/// The containers this process created, by id.
#[derive(Default)]
struct Linked {
    containers: HashMap<String, Container>,
}

impl Linked {
    fn get(&mut self, id: &str) -> Result<&mut Container, OpsError> {
        self.containers
            .get_mut(id)
            .ok_or_else(|| OpsError::NotFound { id: id.to_string() })
    }
}

/// Duplicates `pidfd` so the shim owns a copy independent of the library's.
fn own_pidfd(
    op: &'static str,
    id: &str,
    fd: Option<std::os::fd::BorrowedFd<'_>>,
) -> Result<OwnedFd, OpsError> {
    let fd = fd.ok_or_else(|| failed_msg(op, id, "the init has no pidfd".into()))?;
    fd.try_clone_to_owned().map_err(|e| OpsError::Failed {
        op,
        id: id.to_string(),
        source: Box::new(e),
    })
}

impl ContainerOps for Linked {
    fn create(&mut self, req: CreateRequest) -> Result<CreatedInit, OpsError> {
        let id = req.id.clone();
        if self.containers.contains_key(&id) {
            return Err(failed_msg(
                "create",
                &id,
                "already exists in this shim".into(),
            ));
        }
        let mut c = Container::create(CreateOptions {
            id: req.id,
            bundle: req.bundle,
            state_root: req.state_root,
            stdio: Stdio {
                stdin: req.stdin,
                stdout: req.stdout,
                stderr: req.stderr,
            },
            console: ConsoleMode::Return,
            preserve_fds: 0,
            no_pivot: req.no_pivot_root,
            pid_file: None,
        })
        .map_err(failed("create", &id))?;
        let pidfd = match own_pidfd("create", &id, c.init_pidfd()) {
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
        self.containers.insert(id, c);
        Ok(created)
    }

    fn start(&mut self, id: &str) -> Result<(), OpsError> {
        self.get(id)?.start().map_err(failed("start", id))
    }

    fn kill(&mut self, id: &str, signal: u32, all: bool) -> Result<(), OpsError> {
        self.get(id)?
            .kill(signal as i32, all)
            .map_err(failed("kill", id))
    }

    fn pids(&mut self, id: &str) -> Result<Vec<u32>, OpsError> {
        let pids = self.get(id)?.pids().map_err(failed("pids", id))?;
        Ok(pids.into_iter().map(|p| p as u32).collect())
    }

    fn pause(&mut self, id: &str) -> Result<(), OpsError> {
        self.get(id)?.pause().map_err(failed("pause", id))
    }

    fn resume(&mut self, id: &str) -> Result<(), OpsError> {
        self.get(id)?.resume().map_err(failed("resume", id))
    }

    fn update(&mut self, id: &str, resources_json: &[u8]) -> Result<(), OpsError> {
        let resources: oci_spec::runtime::LinuxResources =
            serde_json::from_slice(resources_json)
                .map_err(|e| failed_msg("update", id, format!("decode LinuxResources: {e}")))?;
        self.get(id)?
            .update(&resources)
            .map_err(failed("update", id))
    }

    fn stats(&mut self, id: &str) -> Result<Any, OpsError> {
        let stats = self.get(id)?.stats().map_err(failed("stats", id))?;
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
        let value = value.map_err(|e| failed_msg("stats", id, format!("encode metrics: {e}")))?;
        let mut any = Any::new();
        any.type_url = type_url.to_string();
        any.value = value;
        Ok(any)
    }

    fn exec(
        &mut self,
        id: &str,
        process_json: &[u8],
        stdin: Option<OwnedFd>,
        stdout: Option<OwnedFd>,
        stderr: Option<OwnedFd>,
    ) -> Result<CreatedInit, OpsError> {
        let process: oci_spec::runtime::Process = serde_json::from_slice(process_json)
            .map_err(|e| failed_msg("exec", id, format!("decode the process spec: {e}")))?;
        let c = self.get(id)?;
        let own_pid_namespace = c.has_own_pid_namespace();
        let p = c
            .exec(ExecOptions {
                process,
                stdio: Stdio {
                    stdin,
                    stdout,
                    stderr,
                },
                console: ConsoleMode::Return,
                preserve_fds: 0,
                pid_file: None,
            })
            .map_err(failed("exec", id))?;
        Ok(CreatedInit {
            pid: p.pid as u32,
            pidfd: p.pidfd,
            console: p.console,
            own_pid_namespace,
        })
    }

    fn oom_watcher(&mut self, id: &str) -> Option<wren_runtime::cgroups::oom::OomWatcher> {
        let cgroup = self.containers.get(id)?.cgroup()?;
        match cgroup.oom_watcher() {
            Ok(w) => Some(w),
            Err(e) => {
                log::warn!("{id}: no OOM notifications: {e}");
                None
            }
        }
    }

    fn delete(&mut self, id: &str) -> Result<(), OpsError> {
        let c = self
            .containers
            .remove(id)
            .ok_or_else(|| OpsError::NotFound { id: id.to_string() })?;
        let pid = c.init_pid();
        let result = c.delete(true).map_err(failed("delete", id));
        wren_runtime::children::release(pid);
        result
    }

    fn force_delete(&mut self, state_root: &std::path::Path, id: &str) -> Result<(), OpsError> {
        match Container::load(state_root, id) {
            Ok(c) => c.delete(true).map_err(failed("force delete", id)),
            Err(wren_runtime::Error::NotFound(_)) => Ok(()),
            Err(e) => Err(failed("force delete", id)(e)),
        }
    }
}
