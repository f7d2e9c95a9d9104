//! Pause and Resume (the cgroup freezer, through the runtime;
//! `/tasks/paused`, `/tasks/resumed`) and Checkpoint, which answers
//! Unimplemented: wren has no CRIU support.
//!
//! Runs in the daemon, on the epoll loop thread.

use protobuf::well_known_types::empty::Empty;
use wren_protocol::events::{TaskPaused, TaskResumed};
use wren_protocol::task::{CheckpointTaskRequest, PauseRequest, ResumeRequest};
use wren_protocol::task_types::Status;

use super::container_ops::ContainerOps;
use super::error::TaskError;
use super::record;
use super::TaskService;

impl<O: ContainerOps> TaskService<O> {
    pub(super) fn pause(&mut self, req: PauseRequest) -> Result<Empty, TaskError> {
        let c = record::find(&mut self.containers, &req.id)?;
        if c.init.status != Status::RUNNING {
            return Err(TaskError::State(format!(
                "cannot pause a {:?} container",
                c.init.status
            )));
        }
        self.ops
            .pause(&c.runtime)
            .map_err(TaskError::ops("pause", &req.id))?;
        c.init.status = Status::PAUSED;
        let mut ev = TaskPaused::new();
        ev.container_id = req.id;
        self.publisher.publish("/tasks/paused", &ev);
        Ok(Empty::new())
    }

    pub(super) fn resume(&mut self, req: ResumeRequest) -> Result<Empty, TaskError> {
        let c = record::find(&mut self.containers, &req.id)?;
        if c.init.status != Status::PAUSED {
            return Err(TaskError::State(
                "cannot resume a container that is not paused".into(),
            ));
        }
        self.ops
            .resume(&c.runtime)
            .map_err(TaskError::ops("resume", &req.id))?;
        c.init.status = Status::RUNNING;
        let mut ev = TaskResumed::new();
        ev.container_id = req.id;
        self.publisher.publish("/tasks/resumed", &ev);
        Ok(Empty::new())
    }

    pub(super) fn checkpoint(&mut self, req: CheckpointTaskRequest) -> Result<Empty, TaskError> {
        self.container(&req.id)?;
        Err(TaskError::Unimplemented(
            "checkpoint (no CRIU support)".into(),
        ))
    }
}
