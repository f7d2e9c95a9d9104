//! Delete of a container's init (its runtime state, stdio, OOM watcher and
//! rootfs mounts go; `/tasks/delete`) or of an exec (no event, as in
//! containerd's runc shim). A running process is refused with Unknown
//! ("cannot delete a running process"), as runc's shim does.
//!
//! Runs in the daemon, on the epoll loop thread.

use std::os::fd::AsFd;

use protobuf::MessageField;
use wren_protocol::events::TaskDelete;
use wren_protocol::task::{DeleteRequest, DeleteResponse};
use wren_protocol::task_types::Status;

use super::container_ops::ContainerOps;
use super::error::TaskError;
use super::record::Process;
use super::{now, TaskService};

impl<O: ContainerOps> TaskService<O> {
    pub(super) fn delete(&mut self, req: DeleteRequest) -> Result<DeleteResponse, TaskError> {
        if !req.exec_id.is_empty() {
            return self.delete_exec(req);
        }
        let c = self.container(&req.id)?;
        if !matches!(c.init.status, Status::CREATED | Status::STOPPED) {
            return Err(TaskError::State("cannot delete a running process".into()));
        }
        let Some(mut c) = self.containers.remove(&req.id) else {
            return Err(TaskError::NotFound(format!("container {}", req.id)));
        };
        // The runtime kills a created init and reaps it itself.
        for (_, p) in c.processes_mut() {
            self.unwatch_pidfd(p);
        }
        // A checkpoint never restored has no runtime state to remove.
        let deleted = match c.runtime.take() {
            Some(rt) => self.ops.delete(rt),
            None => Ok(()),
        };
        if let Some((_, w)) = c.oom.take() {
            let _ = self.epoll.delete(w.as_fd());
        }
        for p in std::iter::once(&mut c.init).chain(c.execs.values_mut()) {
            if let Some(io) = p.io.take() {
                self.release_io(io);
            }
        }
        // The record is gone either way; after a failure the rootfs stays
        // mounted for containerd's `delete` action, which finds the
        // runtime state again and cleans up.
        deleted.map_err(TaskError::ops("delete", &req.id))?;
        if c.mounted_rootfs {
            if let Err(e) = super::rootfs::unmount_all(&c.bundle.join("rootfs")) {
                log::warn!("delete {}: unmount rootfs: {e}", req.id);
            }
        }
        let (code, at) = c.init.exit.clone().unwrap_or_else(|| (0, now()));
        let mut ev = TaskDelete::new();
        ev.container_id = req.id.clone();
        ev.pid = c.init.pid;
        ev.exit_status = code;
        ev.exited_at = MessageField::some(at.clone());
        self.publisher.publish("/tasks/delete", &ev);
        let mut r = DeleteResponse::new();
        r.pid = c.init.pid;
        r.exit_status = code;
        r.exited_at = MessageField::some(at);
        Ok(r)
    }

    fn delete_exec(&mut self, req: DeleteRequest) -> Result<DeleteResponse, TaskError> {
        let c = self.container(&req.id)?;
        let p = c.process(&req.exec_id)?;
        if !matches!(p.status, Status::CREATED | Status::STOPPED) {
            return Err(TaskError::State("cannot delete a running process".into()));
        }
        let Some(mut p) = c.execs.remove(&req.exec_id) else {
            return Err(TaskError::NotFound(format!("exec {}", req.exec_id)));
        };
        self.unwatch_pidfd(&mut p);
        if let Some(io) = p.io.take() {
            self.release_io(io);
        }
        let (code, at) = p.exit.clone().unwrap_or_else(|| (0, now()));
        let mut r = DeleteResponse::new();
        r.pid = p.pid;
        r.exit_status = code;
        r.exited_at = MessageField::some(at);
        Ok(r)
    }

    /// Takes a process's pidfd off the loop's epoll set and closes it.
    pub(super) fn unwatch_pidfd(&mut self, p: &mut Process) {
        if let Some(fd) = p.pidfd.take() {
            let _ = self.epoll.delete(fd.as_fd());
        }
    }
}
