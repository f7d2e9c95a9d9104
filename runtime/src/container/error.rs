//! The error of the lifecycle API and its [`ErrorKind`], the class a caller
//! turns into its own code (the shim's ttrpc status, wren-oci's message).
//!
//! Runs in the caller.

use std::io;
use std::path::{Path, PathBuf};

use crate::cgroups::{self, CgroupError};
use crate::error::ErrorKind;
use crate::seccomp;
use crate::spec::SpecError;
use crate::state::Status;
use crate::sync::SetupFailure;
use crate::{capabilities, console, hooks};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid container id {0:?}")]
    InvalidId(String),
    #[error("container {0} already exists")]
    AlreadyExists(String),
    #[error("container {0} does not exist")]
    NotFound(String),
    #[error("container {id} is {status}, {action} needs it {wanted}")]
    WrongState {
        id: String,
        status: Status,
        action: &'static str,
        wanted: &'static str,
    },
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error("linux.seccomp")]
    Seccomp(#[from] seccomp::SeccompError),
    #[error("process.capabilities")]
    Capabilities(#[from] capabilities::CapsError),
    #[error("cgroup")]
    Cgroup(#[from] CgroupError),
    #[error(transparent)]
    Hook(#[from] hooks::HookError),
    #[error("container {id}: {failure}")]
    Setup { id: String, failure: SetupFailure },
    /// `status` is -1 when it is unknown (collected by someone else, e.g. a
    /// subreaper's reaper); `stage` says how far the init had got.
    #[error("container {id}: the init process exited with status {status} {stage}")]
    InitDied {
        id: String,
        status: i32,
        stage: &'static str,
    },
    #[error("{what} {path}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{what}")]
    Sys {
        what: &'static str,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Console(#[from] console::ConsoleError),
    #[error("process.terminal is set but no console socket was given")]
    NoConsoleSocket,
}

impl Error {
    /// The class of this failure (the shim turns it into a ttrpc code).
    pub fn kind(&self) -> ErrorKind {
        use cgroups::CgroupError as C;
        use seccomp::SeccompError as S;
        match self {
            Self::InvalidId(_) | Self::NoConsoleSocket => ErrorKind::InvalidArgument,
            Self::AlreadyExists(_) => ErrorKind::AlreadyExists,
            Self::NotFound(_) => ErrorKind::NotFound,
            Self::WrongState { .. } => ErrorKind::FailedPrecondition,
            Self::Spec(SpecError::Unsupported { .. }) => ErrorKind::Unsupported,
            Self::Spec(_) | Self::Capabilities(_) => ErrorKind::InvalidArgument,
            Self::Seccomp(
                S::UnknownName { .. }
                | S::ParseProfile { .. }
                | S::ArgIndex { .. }
                | S::ErrnoRange { .. }
                | S::NotifyRefused { .. },
            ) => ErrorKind::InvalidArgument,
            Self::Seccomp(S::ActionUnsupported { .. } | S::FlagUnsupported { .. }) => {
                ErrorKind::Unsupported
            }
            Self::Cgroup(C::InvalidPath { .. } | C::Invalid { .. }) => ErrorKind::InvalidArgument,
            Self::Cgroup(C::ControllerMissing { .. }) => ErrorKind::Unsupported,
            _ => ErrorKind::Internal,
        }
    }
}

pub(super) fn sys_err(what: &'static str) -> impl FnOnce(io::Error) -> Error {
    move |source| Error::Sys { what, source }
}

pub(super) fn io_err<'a>(
    what: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> Error + 'a {
    move |source| Error::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}
