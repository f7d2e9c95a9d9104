//! The boundary between the Task service and the runtime library: every
//! container operation the shim needs, behind one small trait, implemented in
//! this file only. Until `wren_runtime::container` exists the implementation
//! refuses every operation with a clear error rather than pretending.
//!
//! Runs in the daemon (and in `delete` for [`ContainerOps::force_delete`]).

use std::os::fd::OwnedFd;
use std::path::PathBuf;

/// What the runtime needs to create a container's init process.
#[derive(Debug)]
#[allow(
    dead_code,
    reason = "read by the runtime-backed implementation, not the placeholder"
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

/// A created container's init, as the shim tracks it.
#[derive(Debug)]
#[allow(
    dead_code,
    reason = "console is used once terminal stdio is wired to the runtime"
)]
pub struct CreatedInit {
    pub pid: u32,
    /// pidfd of the init: the shim waits on it instead of waitpid(-1).
    pub pidfd: OwnedFd,
    /// pty master when `terminal` was requested.
    pub console: Option<OwnedFd>,
}

/// A runtime operation failed.
#[derive(Debug, thiserror::Error)]
#[allow(
    dead_code,
    reason = "NotFound/Failed come from the runtime-backed implementation"
)]
pub enum OpsError {
    #[error("{op}: the runtime's container API is not linked into this shim yet")]
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
    fn stats(&mut self, id: &str) -> Result<protobuf::well_known_types::any::Any, OpsError>;
    /// Removes the container's runtime state (cgroup, state dir).
    fn delete(&mut self, id: &str) -> Result<(), OpsError>;
    /// `delete` binary path: kill everything of `id` and remove its state,
    /// with no daemon and no prior in-memory state. Idempotent.
    fn force_delete(&mut self, state_root: &std::path::Path, id: &str) -> Result<(), OpsError>;
}

/// Returns the runtime implementation linked into this build.
pub fn runtime() -> Box<dyn ContainerOps> {
    Box::new(NotLinked)
}

/// Placeholder until `wren_runtime::container` lands: every call fails clearly.
struct NotLinked;

impl ContainerOps for NotLinked {
    fn create(&mut self, _req: CreateRequest) -> Result<CreatedInit, OpsError> {
        Err(OpsError::NotLinked { op: "create" })
    }
    fn start(&mut self, _id: &str) -> Result<(), OpsError> {
        Err(OpsError::NotLinked { op: "start" })
    }
    fn kill(&mut self, _id: &str, _signal: u32, _all: bool) -> Result<(), OpsError> {
        Err(OpsError::NotLinked { op: "kill" })
    }
    fn pids(&mut self, _id: &str) -> Result<Vec<u32>, OpsError> {
        Err(OpsError::NotLinked { op: "pids" })
    }
    fn pause(&mut self, _id: &str) -> Result<(), OpsError> {
        Err(OpsError::NotLinked { op: "pause" })
    }
    fn resume(&mut self, _id: &str) -> Result<(), OpsError> {
        Err(OpsError::NotLinked { op: "resume" })
    }
    fn update(&mut self, _id: &str, _resources_json: &[u8]) -> Result<(), OpsError> {
        Err(OpsError::NotLinked { op: "update" })
    }
    fn stats(&mut self, _id: &str) -> Result<protobuf::well_known_types::any::Any, OpsError> {
        Err(OpsError::NotLinked { op: "stats" })
    }
    fn delete(&mut self, _id: &str) -> Result<(), OpsError> {
        Err(OpsError::NotLinked { op: "delete" })
    }
    fn force_delete(&mut self, _root: &std::path::Path, _id: &str) -> Result<(), OpsError> {
        Err(OpsError::NotLinked { op: "force delete" })
    }
}
