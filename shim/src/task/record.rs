//! The one record the service keeps per container: the runtime's handle, the
//! init and every exec (status, stdio, pidfd, parked Waits, exit), the rootfs
//! and OOM-watcher bookkeeping, and the pipe owner. Nothing about a container
//! lives anywhere else in the shim.
//!
//! Runs in the daemon, on the epoll loop thread.

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::time::Instant;

use protobuf::well_known_types::timestamp::Timestamp;
use wren_protocol::task_types::Status;
use wren_runtime::cgroups::oom::OomWatcher;
use wren_ttrpc::server::Responder;

use super::error::TaskError;
use crate::stdio::ProcessIo;

/// A reaped process whose exit is not reported yet.
pub(super) struct PendingExit {
    pub status: u32,
    pub at: Timestamp,
    pub reaped: Instant,
}

/// One process (init or exec) as the shim sees it.
#[derive(Default)]
pub(super) struct Process {
    pub pid: u32,
    pub status: Status,
    pub stdin: String,
    pub stdout: String,
    pub stderr: String,
    pub terminal: bool,
    pub exit: Option<(u32, Timestamp)>,
    /// Parked Wait calls, answered when the process exits.
    pub waiters: Vec<Responder>,
    /// The shim's pidfd of the process while it runs: watched on the loop's
    /// epoll set (token `PIDFD_BIT | fd`) and used to signal execs.
    pub pidfd: Option<OwnedFd>,
    /// JSON `specs.Process` of an exec not started yet.
    pub spec: Vec<u8>,
    /// The shim's side of its stdio.
    pub io: Option<ProcessIo>,
    /// Reaped, not reported yet.
    pub pending: Option<PendingExit>,
    /// Created from a checkpoint: Start restores it (see
    /// [`Container::pending_restore`]) instead of releasing an init.
    pub restored: bool,
}

/// One container in this shim; `C` is the runtime's handle of it.
pub(super) struct Container<C> {
    /// The runtime's handle; None while a checkpoint waits for Start.
    pub runtime: Option<C>,
    /// Create with a checkpoint only prepares (stdio, rootfs); Start runs
    /// CRIU, after containerd has put the checkpoint's rootfs changes in
    /// place between the two calls, as runc's shim does.
    pub pending_restore: Option<wren_runtime::RestoreOptions>,
    pub bundle: PathBuf,
    pub init: Process,
    pub execs: HashMap<String, Process>,
    /// Did Create mount containerd's rootfs mounts on `<bundle>/rootfs`?
    pub mounted_rootfs: bool,
    /// Without a pid namespace of its own, the container's other processes
    /// are killed when the init exits.
    pub own_pid_namespace: bool,
    /// OOM-kill notifications, with the epoll token they are watched under.
    pub oom: Option<(u64, OomWatcher)>,
    /// Pipe owner from the runc options (IoUid/IoGid).
    pub io_uid: u32,
    pub io_gid: u32,
}

/// The container `id`, or NotFound. A free function so a caller can borrow
/// the record and the service's other fields at once.
pub(super) fn find<'a, C>(
    containers: &'a mut HashMap<String, Box<Container<C>>>,
    id: &str,
) -> Result<&'a mut Container<C>, TaskError> {
    containers
        .get_mut(id)
        .map(|c| &mut **c)
        .ok_or_else(|| TaskError::NotFound(format!("container {id}")))
}

impl<C> Container<C> {
    /// The runtime's handle, or NotFound for a task whose checkpoint is
    /// not restored yet (it has no process).
    pub fn rt(&mut self, id: &str) -> Result<&mut C, TaskError> {
        self.runtime.as_mut().ok_or_else(|| {
            TaskError::NotFound(format!(
                "container {id} has no process yet: its checkpoint is restored at Start"
            ))
        })
    }

    /// The init (empty `exec_id`) or an exec.
    pub fn process(&mut self, exec_id: &str) -> Result<&mut Process, TaskError> {
        if exec_id.is_empty() {
            Ok(&mut self.init)
        } else {
            self.execs
                .get_mut(exec_id)
                .ok_or_else(|| TaskError::NotFound(format!("exec {exec_id}")))
        }
    }

    /// The init and every exec.
    pub fn processes(&self) -> impl Iterator<Item = &Process> {
        std::iter::once(&self.init).chain(self.execs.values())
    }

    /// The init and every exec, with the exec id (empty for the init).
    pub fn processes_mut(&mut self) -> impl Iterator<Item = (&str, &mut Process)> {
        std::iter::once(("", &mut self.init))
            .chain(self.execs.iter_mut().map(|(e, p)| (e.as_str(), p)))
    }
}
