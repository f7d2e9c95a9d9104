//! Task service errors and their ttrpc status codes — the only place the
//! mapping lives, because containerd turns these codes into its own errdefs
//! (NotFound=5, AlreadyExists=6, FailedPrecondition=9, Unimplemented=12; a
//! plain refusal is Unknown=2, as in containerd's runc shim).
//!
//! Runs in the daemon.

use wren_protocol::ttrpc_wire::{Code, Status};

use super::container_ops::OpsError;
use wren_ttrpc::server::status;

/// Why a Task RPC failed.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    #[error("{0}: not found")]
    NotFound(String),
    #[error("{0}: already exists")]
    AlreadyExists(String),
    #[error("{0}")]
    #[allow(dead_code, reason = "exec start after init exit, once exec is linked")]
    FailedPrecondition(String),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}: not implemented")]
    Unimplemented(String),
    /// A refusal by the process state machine ("cannot delete a running process").
    #[error("{0}")]
    State(String),
    #[error("decode {method} request")]
    Decode {
        method: String,
        #[source]
        source: protobuf::Error,
    },
    #[error(transparent)]
    Ops(#[from] OpsError),
}

impl TaskError {
    /// The ttrpc status containerd receives; the message is the full error chain.
    pub fn to_status(&self) -> Status {
        let code = match self {
            Self::NotFound(_) => Code::NOT_FOUND,
            Self::AlreadyExists(_) => Code::ALREADY_EXISTS,
            Self::FailedPrecondition(_) => Code::FAILED_PRECONDITION,
            Self::InvalidArgument(_) | Self::Decode { .. } => Code::INVALID_ARGUMENT,
            Self::Unimplemented(_) => Code::UNIMPLEMENTED,
            Self::State(_) => Code::UNKNOWN,
            Self::Ops(OpsError::NotLinked { .. }) => Code::UNIMPLEMENTED,
            Self::Ops(OpsError::NotFound { .. }) => Code::NOT_FOUND,
            Self::Ops(_) => Code::UNKNOWN,
        };
        status(code, wren_runtime::error::chain(self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes() {
        let c = |e: TaskError| e.to_status().code.enum_value_or(Code::OK);
        assert_eq!(c(TaskError::NotFound("x".into())), Code::NOT_FOUND);
        assert_eq!(
            c(TaskError::AlreadyExists("x".into())),
            Code::ALREADY_EXISTS
        );
        assert_eq!(
            c(TaskError::FailedPrecondition("x".into())),
            Code::FAILED_PRECONDITION
        );
        assert_eq!(
            c(TaskError::Unimplemented("Checkpoint".into())),
            Code::UNIMPLEMENTED
        );
        assert_eq!(c(TaskError::State("cannot".into())), Code::UNKNOWN);
        let e = TaskError::Ops(OpsError::NotLinked { op: "create" });
        assert_eq!(c(e), Code::UNIMPLEMENTED);
    }
}
