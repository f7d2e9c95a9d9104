//! The RPCs that report rather than change: State (from the shim's own
//! record, never a runtime call), Wait (answered at once after an exit,
//! else parked until `exit.rs` reports it), Connect (containerd's liveness
//! probe) and Shutdown (a no-op while any container remains).
//!
//! Runs in the daemon, on the epoll loop thread.

use protobuf::well_known_types::empty::Empty;
use protobuf::MessageField;
use wren_protocol::task::*;
use wren_ttrpc::server::Responder;

use super::container_ops::ContainerOps;
use super::error::TaskError;
use super::TaskService;

impl<O: ContainerOps> TaskService<O> {
    pub(super) fn state(&mut self, req: StateRequest) -> Result<StateResponse, TaskError> {
        let c = self.container(&req.id)?;
        let bundle = c.bundle.display().to_string();
        let p = c.process(&req.exec_id)?;
        let mut r = StateResponse::new();
        r.id = req.id.clone();
        r.exec_id = req.exec_id.clone();
        r.bundle = bundle;
        r.pid = p.pid;
        r.status = p.status.into();
        r.stdin = p.stdin.clone();
        r.stdout = p.stdout.clone();
        r.stderr = p.stderr.clone();
        r.terminal = p.terminal;
        if let Some((code, at)) = &p.exit {
            r.exit_status = *code;
            r.exited_at = MessageField::some(at.clone());
        }
        Ok(r)
    }

    /// Answers at once if the process has exited, else parks the responder.
    pub(super) fn wait(
        &mut self,
        req: WaitRequest,
        responder: Responder,
    ) -> Option<(Responder, Result<WaitResponse, TaskError>)> {
        let p = match self
            .container(&req.id)
            .and_then(|c| c.process(&req.exec_id))
        {
            Ok(p) => p,
            Err(e) => return Some((responder, Err(e))),
        };
        match &p.exit {
            Some((code, at)) => {
                let mut r = WaitResponse::new();
                r.exit_status = *code;
                r.exited_at = MessageField::some(at.clone());
                Some((responder, Ok(r)))
            }
            None => {
                p.waiters.push(responder);
                None
            }
        }
    }

    pub(super) fn connect(&mut self, req: ConnectRequest) -> Result<ConnectResponse, TaskError> {
        let mut r = ConnectResponse::new();
        r.shim_pid = std::process::id();
        r.task_pid = self.containers.get(&req.id).map_or(0, |c| c.init.pid);
        Ok(r)
    }

    pub(super) fn shutdown(&mut self, _req: ShutdownRequest) -> Result<Empty, TaskError> {
        // A no-op while any container remains: that is what lets a grouped
        // shim keep serving the others.
        if self.containers.is_empty() && !self.shutdown {
            self.shutdown = true;
            crate::socket::remove_own();
        }
        Ok(Empty::new())
    }
}
