//! Kill: an exec is signalled through the shim's own pidfd of it; the init
//! (or, with `all`, every process of the container) through the runtime.
//! As in containerd's runc shim, a process that has exited is NotFound
//! ("process already finished") and an exec not started yet is
//! FailedPrecondition.
//!
//! Runs in the daemon, on the epoll loop thread.

use protobuf::well_known_types::empty::Empty;
use wren_protocol::task::KillRequest;
use wren_protocol::task_types::Status;

use super::container_ops::ContainerOps;
use super::error::TaskError;
use super::record;
use super::{pidfd_signal, TaskService};

fn finished() -> TaskError {
    TaskError::NotFound("process already finished".into())
}

impl<O: ContainerOps> TaskService<O> {
    pub(super) fn kill(&mut self, req: KillRequest) -> Result<Empty, TaskError> {
        let c = record::find(&mut self.containers, &req.id)?;
        if !req.exec_id.is_empty() {
            let p = c.process(&req.exec_id)?;
            return match (&p.pidfd, p.status) {
                (Some(fd), Status::RUNNING) => match pidfd_signal(fd, req.signal) {
                    Ok(()) => Ok(Empty::new()),
                    Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Err(finished()),
                    Err(e) => Err(TaskError::State(format!(
                        "kill exec {} in {}: {e}",
                        req.exec_id, req.id
                    ))),
                },
                (_, Status::CREATED) => Err(TaskError::FailedPrecondition(format!(
                    "exec {} is not started",
                    req.exec_id
                ))),
                _ => Err(finished()),
            };
        }
        if c.init.status == Status::STOPPED && !req.all {
            return Err(finished());
        }
        self.ops
            .kill(c.rt(&req.id)?, req.signal, req.all)
            .map_err(TaskError::ops("kill", &req.id))?;
        Ok(Empty::new())
    }
}
