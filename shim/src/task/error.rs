//! Task service errors and their ttrpc status codes: the one place where a
//! failure becomes a code, because containerd turns these codes into its own
//! errdefs (and ctr prints them: "not found", "already exists", "failed
//! precondition", "invalid argument", "not implemented"; Unknown prints
//! "unknown"). A runtime failure carries its [`ErrorKind`]
//! ([`OpsError::kind`]); [`code`] maps kinds, [`TaskError::to_status`] maps
//! the service's own refusals.
//!
//! # RPC × condition → code
//!
//! Matching containerd's runc shim (`runtime/v2/runc/task/service.go` and
//! `process/*.go` @v1.6/v1.7), except where marked *wren*:
//!
//! | RPC | condition | code |
//! |---|---|---|
//! | any but Create, Connect, Shutdown | unknown container id | NotFound |
//! | State, Wait, Kill, Delete, CloseIO, ResizePty, Start | unknown exec id | NotFound |
//! | Create | the id exists in this shim (*wren*: runc's shim lets `runc create` fail, Unknown) | AlreadyExists |
//! | Create | bad runtime options, stdio URI, rootfs mount, terminal without `process.terminal` | InvalidArgument |
//! | Create, Exec start, Update | invalid spec (runtime kind InvalidArgument: a field, seccomp profile, capability, id) | InvalidArgument (*wren*: runc's shim says Unknown "OCI runtime create failed") |
//! | Create, Exec start, Update | the host cannot do what the spec asks (runtime kind Unsupported: a seccomp action or flag, a missing cgroup controller) | Unimplemented (errdefs' NotImplemented; *wren*, as above) |
//! | Create, Exec start | anything else the runtime hit (kind Internal: a syscall, the init died) | Unknown |
//! | Start (init) | not in the created state | Unknown ("cannot start a process in state …") |
//! | Start (exec) | the init has exited or is exiting | FailedPrecondition |
//! | Start (exec) | the exec is not in the created state | Unknown |
//! | Exec | duplicate exec id | AlreadyExists |
//! | Exec | the init has stopped (*wren*: runc's shim refuses with Unknown here and with FailedPrecondition at Start; wren refuses as early, with the same code) | FailedPrecondition |
//! | Kill | init or exec already exited | NotFound ("process already finished") |
//! | Kill | exec not started yet | FailedPrecondition |
//! | Delete | init or exec running or paused | Unknown ("cannot delete a running process") |
//! | Pause / Resume | not running / not paused | Unknown |
//! | ResizePty | exec has exited | Unknown; no console: success |
//! | Checkpoint | no image path, bad options / criu missing / criu fails | InvalidArgument / Unimplemented / Unknown |
//! | any | a runtime failure of kind AlreadyExists / NotFound / FailedPrecondition | AlreadyExists / NotFound / FailedPrecondition |
//! | any | undecodable request, or an unknown method | InvalidArgument, Unimplemented |
//!
//! Messages say each context once: the runtime's text does not name the
//! container; the service prefixes "<op> <id>: " ([`TaskError::Ops`]).
//!
//! Runs in the daemon.

use wren_protocol::ttrpc_wire::{Code, Status};
use wren_runtime::ErrorKind;
use wren_ttrpc::server::status;

use super::container_ops::OpsError;

/// Why a Task RPC failed.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    /// No such container or exec in this shim, or the process has exited.
    #[error("{0}: not found")]
    NotFound(String),
    #[error("{0}: already exists")]
    AlreadyExists(String),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}: not implemented")]
    Unimplemented(String),
    /// A refusal by the process state machine ("cannot delete a running
    /// process"): Unknown, as in containerd's runc shim.
    #[error("{0}")]
    State(String),
    #[error("decode {method} request")]
    Decode {
        method: String,
        #[source]
        source: protobuf::Error,
    },
    /// The request itself cannot be served: its options, stdio, rootfs
    /// mounts or specs.
    #[error("{op} {target}")]
    Invalid {
        op: &'static str,
        target: String,
        #[source]
        source: Box<dyn std::error::Error>,
    },
    /// The runtime failed `op` on `target` (a container id, or an exec of
    /// one); the code follows the failure's kind.
    #[error("{op} {target}")]
    Ops {
        op: &'static str,
        target: String,
        #[source]
        source: OpsError,
    },
}

impl TaskError {
    /// `op` on `target` failed in the runtime.
    pub fn ops<'a>(op: &'static str, target: &'a str) -> impl FnOnce(OpsError) -> Self + 'a {
        move |source| Self::Ops {
            op,
            target: target.to_string(),
            source,
        }
    }

    /// `op` on `target` cannot be served as asked.
    pub fn invalid<'a, E: std::error::Error + 'static>(
        op: &'static str,
        target: &'a str,
    ) -> impl FnOnce(E) -> Self + 'a {
        move |e| Self::Invalid {
            op,
            target: target.to_string(),
            source: Box::new(e),
        }
    }

    /// The ttrpc code containerd receives.
    pub fn code(&self) -> Code {
        match self {
            Self::NotFound(_) => Code::NOT_FOUND,
            Self::AlreadyExists(_) => Code::ALREADY_EXISTS,
            Self::FailedPrecondition(_) => Code::FAILED_PRECONDITION,
            Self::Invalid { .. } | Self::Decode { .. } => Code::INVALID_ARGUMENT,
            Self::Unimplemented(_) => Code::UNIMPLEMENTED,
            Self::State(_) => Code::UNKNOWN,
            Self::Ops { source, .. } => code(source.kind()),
        }
    }

    /// The ttrpc status containerd receives; the message is the full error chain.
    pub fn to_status(&self) -> Status {
        status(self.code(), wren_runtime::error::chain(self))
    }
}

/// The ttrpc code of a runtime failure of `kind` (see the table above).
pub fn code(kind: ErrorKind) -> Code {
    match kind {
        ErrorKind::InvalidArgument => Code::INVALID_ARGUMENT,
        ErrorKind::AlreadyExists => Code::ALREADY_EXISTS,
        ErrorKind::NotFound => Code::NOT_FOUND,
        ErrorKind::FailedPrecondition => Code::FAILED_PRECONDITION,
        ErrorKind::Unsupported => Code::UNIMPLEMENTED,
        ErrorKind::Internal => Code::UNKNOWN,
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
    }

    #[test]
    fn runtime_kinds() {
        let ops = |e: wren_runtime::Error| TaskError::ops("create", "c")(e.into());
        let e = ops(wren_runtime::Error::AlreadyExists("c".into()));
        assert_eq!(e.code(), Code::ALREADY_EXISTS);
        let e = ops(wren_runtime::Error::NotFound("c".into()));
        assert_eq!(e.code(), Code::NOT_FOUND);
        let e = ops(wren_runtime::Error::InvalidId("../x".into()));
        assert_eq!(e.code(), Code::INVALID_ARGUMENT);
        assert!(e.to_status().message.starts_with("create c: "), "{e}");
        assert_eq!(code(ErrorKind::Unsupported), Code::UNIMPLEMENTED);
        assert_eq!(code(ErrorKind::Internal), Code::UNKNOWN);
        assert_eq!(
            TaskError::ops("kill", "c")(OpsError::NoPidfd).code(),
            Code::UNKNOWN
        );
    }
}
