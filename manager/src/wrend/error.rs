//! wrend's request errors and the one place they become ttrpc status codes
//! (the `wren` CLI prints the message and exits non-zero).
//!
//! Runs in wrend's loop thread.

use wren_protocol::ttrpc_wire::{Code, Status};

use super::record::RecordError;
use super::shim_client::ShimError;
use super::spec::SpecError;
use crate::fifo::FifoError;
use wren_ttrpc::client::CallError;

/// Why a request to wrend failed.
#[derive(Debug, thiserror::Error)]
pub enum ManagerError {
    #[error("no such container: {0}")]
    NotFound(String),
    #[error("container {0} already exists")]
    AlreadyExists(String),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("container {name}: {what}")]
    Shim {
        name: String,
        what: &'static str,
        #[source]
        source: CallError,
    },
    #[error("container {name}: start shim")]
    ShimStart {
        name: String,
        #[source]
        source: ShimError,
    },
    #[error("container {name}")]
    Spec {
        name: String,
        #[source]
        source: SpecError,
    },
    #[error("container {name}")]
    Record {
        name: String,
        #[source]
        source: RecordError,
    },
    #[error("container {name}")]
    Fifo {
        name: String,
        #[source]
        source: FifoError,
    },
    /// The network helper (`wren-net attach|detach`) failed; its
    /// message names the plugin, port or path.
    #[error("container {name}: network: {message}")]
    Network { name: String, message: String },
    #[error("container {name}: {what} {path}")]
    Io {
        name: String,
        what: &'static str,
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl ManagerError {
    /// The ttrpc status for this error, its message the whole chain.
    pub fn to_status(&self) -> Status {
        let code = match self {
            Self::NotFound(_) => Code::NOT_FOUND,
            Self::AlreadyExists(_) => Code::ALREADY_EXISTS,
            Self::InvalidArgument(_) | Self::Spec { .. } => Code::INVALID_ARGUMENT,
            Self::FailedPrecondition(_) | Self::Network { .. } => Code::FAILED_PRECONDITION,
            Self::Shim {
                source: CallError::Status { code, .. },
                ..
            } => *code,
            Self::Shim { .. } | Self::ShimStart { .. } => Code::UNAVAILABLE,
            Self::Record { .. } | Self::Fifo { .. } | Self::Io { .. } => Code::INTERNAL,
        };
        let message = match self {
            // The shim's own message already names the container and the step.
            Self::Shim {
                source: CallError::Status { message, .. },
                ..
            } => message.clone(),
            _ => wren_runtime::error::chain(self),
        };
        wren_ttrpc::server::status(code, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_messages() {
        let s = ManagerError::NotFound("web".into()).to_status();
        assert_eq!(s.code.enum_value_or(Code::UNKNOWN), Code::NOT_FOUND);
        assert_eq!(s.message, "no such container: web");
        let e = ManagerError::Shim {
            name: "web".into(),
            what: "start",
            source: CallError::Status {
                code: Code::FAILED_PRECONDITION,
                message: "cannot start a process in state RUNNING".into(),
            },
        };
        let s = e.to_status();
        assert_eq!(
            s.code.enum_value_or(Code::UNKNOWN),
            Code::FAILED_PRECONDITION
        );
        assert_eq!(s.message, "cannot start a process in state RUNNING");
    }
}
