//! Method name → handler: decodes each request, runs the handler in the file
//! that owns that RPC, and answers with the encoded response or the error's
//! ttrpc status (`error.rs`). Wait may park its responder instead.
//!
//! Runs in the daemon, on the epoll loop thread.

use protobuf::Message;
use wren_protocol::task::*;
use wren_ttrpc::server::Responder;

use super::container_ops::ContainerOps;
use super::error::TaskError;
use super::{encode, TaskService};

impl<O: ContainerOps> TaskService<O> {
    /// Handles one call to `method`. Unknown methods get Unimplemented, never
    /// ttrpc-rust's NOT_FOUND default.
    pub fn dispatch(&mut self, method: &str, payload: &[u8], responder: Responder) {
        macro_rules! call {
            ($ty:ty, $handler:ident) => {
                match <$ty>::parse_from_bytes(payload) {
                    Ok(req) => self.$handler(req).and_then(encode),
                    Err(source) => Err(TaskError::Decode {
                        method: method.to_string(),
                        source,
                    }),
                }
            };
        }
        if method == "Wait" {
            match WaitRequest::parse_from_bytes(payload) {
                Ok(req) => {
                    if let Some((r, result)) = self.wait(req, responder) {
                        r.send(result.and_then(encode).map_err(|e| e.to_status()));
                    }
                }
                Err(source) => responder.send(Err(TaskError::Decode {
                    method: method.into(),
                    source,
                }
                .to_status())),
            }
            return;
        }
        let result = match method {
            "State" => call!(StateRequest, state),
            "Create" => call!(CreateTaskRequest, create),
            "Start" => call!(StartRequest, start),
            "Delete" => call!(DeleteRequest, delete),
            "Pids" => call!(PidsRequest, pids),
            "Pause" => call!(PauseRequest, pause),
            "Resume" => call!(ResumeRequest, resume),
            "Checkpoint" => call!(CheckpointTaskRequest, checkpoint),
            "Kill" => call!(KillRequest, kill),
            "Exec" => call!(ExecProcessRequest, exec),
            "ResizePty" => call!(ResizePtyRequest, resize_pty),
            "CloseIO" => call!(CloseIORequest, close_io),
            "Update" => call!(UpdateTaskRequest, update),
            "Stats" => call!(StatsRequest, stats),
            "Connect" => call!(ConnectRequest, connect),
            "Shutdown" => call!(ShutdownRequest, shutdown),
            other => Err(TaskError::Unimplemented(other.to_string())),
        };
        if let Err(e) = &result {
            log::warn!("{method}: {}", wren_runtime::error::chain(e));
        }
        responder.send(result.map_err(|e| e.to_status()));
    }
}
