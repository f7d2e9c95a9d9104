//! The RPCs on a process's stdio: CloseIO (the shim lets go of its stdin
//! FIFO writer, so the container sees EOF once the client closes too) and
//! ResizePty (a no-op without a console, as in containerd's runc shim).
//!
//! Runs in the daemon, on the epoll loop thread.

use protobuf::well_known_types::empty::Empty;
use wren_protocol::task::{CloseIORequest, ResizePtyRequest};
use wren_protocol::task_types::Status;

use super::container_ops::ContainerOps;
use super::error::TaskError;
use super::record;
use super::TaskService;

impl<O: ContainerOps> TaskService<O> {
    pub(super) fn resize_pty(&mut self, req: ResizePtyRequest) -> Result<Empty, TaskError> {
        let p = self.container(&req.id)?.process(&req.exec_id)?;
        if p.status == Status::STOPPED && !req.exec_id.is_empty() {
            return Err(TaskError::State(format!(
                "resize the console of exec {}: it has exited",
                req.exec_id
            )));
        }
        if let Some(io) = &p.io {
            let rows = req.height.min(u16::MAX as u32) as u16;
            let cols = req.width.min(u16::MAX as u32) as u16;
            io.resize(rows, cols)
                .map_err(|e| TaskError::State(format!("resize the console of {}: {e}", req.id)))?;
        }
        Ok(Empty::new())
    }

    pub(super) fn close_io(&mut self, req: CloseIORequest) -> Result<Empty, TaskError> {
        let p = record::find(&mut self.containers, &req.id)?.process(&req.exec_id)?;
        if let Some(io) = p.io.as_mut() {
            io.close_stdin(&mut self.relays);
        }
        Ok(Empty::new())
    }
}
