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

/// A failure of the lifecycle API.
///
/// The text never names the container or the operation: the caller knows
/// both and says them once, as a prefix ("create c1: ", the shim's
/// `TaskError::Ops`), so variants that keep the id for callers that match
/// on it do not print it. Nested errors print their own text (a spec
/// field, a cgroup file, a hook), not a label in front of it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "invalid container id: it must be 1 to 1024 characters of A-Z a-z 0-9 _ + - . \
         and not \".\" or \"..\""
    )]
    InvalidId(String),
    #[error("container already exists")]
    AlreadyExists(String),
    #[error("container does not exist")]
    NotFound(String),
    /// `action` (the caller's operation) is kept for [`Error::kind`].
    #[error("{}", wrong_state_text(action, *status, wanted))]
    WrongState {
        id: String,
        status: Status,
        action: &'static str,
        wanted: &'static str,
    },
    /// The bundle directory cannot be resolved.
    #[error("bundle {path}")]
    Bundle {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error(transparent)]
    Seccomp(#[from] seccomp::SeccompError),
    #[error(transparent)]
    Capabilities(#[from] capabilities::CapsError),
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    #[error(transparent)]
    Hook(#[from] hooks::HookError),
    /// The init reported a failed step (`failure` names it).
    #[error("{failure}")]
    Setup { id: String, failure: SetupFailure },
    /// `status` is -1 when it is unknown (collected by someone else, e.g. a
    /// subreaper's reaper); `stage` says how far the init had got.
    #[error("the init process exited with status {status} {stage}")]
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
    #[error(transparent)]
    Criu(#[from] crate::criu::CriuError),
}

impl Error {
    /// The class of this failure, which a caller turns into its own code
    /// (the shim: a ttrpc status). Invalid input is InvalidArgument; what
    /// this host or kernel cannot do is Unsupported; a container or process
    /// that is not there (any more) is NotFound; the wrong state is
    /// FailedPrecondition; a syscall, a hook or the init failing is
    /// Internal.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::InvalidId(_) | Self::NoConsoleSocket => ErrorKind::InvalidArgument,
            Self::AlreadyExists(_) => ErrorKind::AlreadyExists,
            Self::NotFound(_) => ErrorKind::NotFound,
            // Signalling an init that has exited: the process is gone.
            Self::WrongState {
                action: "kill",
                status: Status::Stopped,
                ..
            } => ErrorKind::NotFound,
            Self::WrongState { .. } => ErrorKind::FailedPrecondition,
            Self::Bundle { source, .. } => given_path_kind(source),
            Self::Spec(e) => spec_kind(e),
            Self::Seccomp(e) => seccomp_kind(e),
            Self::Capabilities(e) => caps_kind(e),
            Self::Cgroup(e) => cgroup_kind(e),
            Self::Console(e) => console_kind(e),
            // pidfd_open, pidfd_send_signal, kill: the process has exited.
            Self::Sys { source, .. } if source.raw_os_error() == Some(libc::ESRCH) => {
                ErrorKind::NotFound
            }
            Self::Criu(crate::criu::CriuError::Unsupported(_)) => ErrorKind::Unsupported,
            Self::Criu(crate::criu::CriuError::Spawn { source, .. })
                if source.kind() == io::ErrorKind::NotFound =>
            {
                ErrorKind::Unsupported
            }
            Self::Hook(_)
            | Self::Criu(_)
            | Self::Setup { .. }
            | Self::InitDied { .. }
            | Self::Io { .. }
            | Self::Sys { .. } => ErrorKind::Internal,
        }
    }
}

/// runc's words for an operation in the wrong state, where callers match on
/// them (containerd's runc shim maps "container not running" to NotFound;
/// Podman and conmon read these); ours elsewhere.
fn wrong_state_text(action: &str, status: Status, wanted: &str) -> String {
    match (action, status) {
        ("kill" | "pause", _) => "container not running".into(),
        ("resume", _) => "container not paused".into(),
        ("start", Status::Stopped) => "cannot start a container that has stopped".into(),
        ("start", Status::Running) => "cannot start an already running container".into(),
        ("start", s) => format!("cannot start a container in the {s} state"),
        ("exec", Status::Paused) => {
            "cannot exec in a paused container (use --ignore-paused to override)".into()
        }
        ("exec", s) => format!("cannot exec in a {s} container"),
        ("delete", s) => {
            format!("cannot delete a container that is not stopped: {s} (use --force)")
        }
        (_, s) => format!("container is {s}; it must be {wanted}"),
    }
}

/// A path the caller gave that does not lead anywhere is an invalid
/// argument; any other failure to use it is ours.
fn given_path_kind(e: &io::Error) -> ErrorKind {
    match e.raw_os_error() {
        Some(libc::ENOENT | libc::ENOTDIR) => ErrorKind::InvalidArgument,
        _ => ErrorKind::Internal,
    }
}

fn spec_kind(e: &SpecError) -> ErrorKind {
    match e {
        // The bundle has no config.json.
        SpecError::Read { source, .. } => given_path_kind(source),
        SpecError::Parse { .. } | SpecError::Invalid { .. } => ErrorKind::InvalidArgument,
        SpecError::Unsupported { .. } => ErrorKind::Unsupported,
    }
}

fn seccomp_kind(e: &seccomp::SeccompError) -> ErrorKind {
    use seccomp::SeccompError as S;
    match e {
        S::UnknownName { .. }
        | S::ParseProfile { .. }
        | S::ArgIndex { .. }
        | S::ErrnoRange { .. }
        | S::NotifyRefused { .. }
        // libseccomp refused a rule of the profile, or the profile makes a
        // program the kernel would refuse.
        | S::AddRule { .. }
        | S::InvalidProgram { .. } => ErrorKind::InvalidArgument,
        // This kernel or this libseccomp cannot do it.
        S::ActionUnsupported { .. } | S::FlagUnsupported { .. } | S::AddArch { .. } => {
            ErrorKind::Unsupported
        }
        S::ProbeKernel { .. }
        | S::CreateFilter { .. }
        | S::CreateExportFile { .. }
        | S::ExportBpf { .. }
        | S::ReadBpf { .. }
        | S::LoadFilter { .. } => ErrorKind::Internal,
    }
}

fn caps_kind(e: &capabilities::CapsError) -> ErrorKind {
    use capabilities::CapsError as C;
    match e {
        C::UnknownName { .. } | C::ParseCapabilities { .. } | C::NotSubset { .. } => {
            ErrorKind::InvalidArgument
        }
        C::ReadLastCap { .. }
        | C::ParseLastCap { .. }
        | C::ReadBounding { .. }
        | C::DropBounding { .. }
        | C::SetCaps { .. }
        | C::ClearAmbient { .. }
        | C::RaiseAmbient { .. }
        | C::SetKeepCaps { .. } => ErrorKind::Internal,
    }
}

fn cgroup_kind(e: &CgroupError) -> ErrorKind {
    use cgroups::CgroupError as C;
    match e {
        C::InvalidPath { .. } | C::Invalid { .. } | C::InvalidSubCgroup { .. } => {
            ErrorKind::InvalidArgument
        }
        // systemd judged a unit name or property invalid.
        C::Systemd { message, .. }
            if message.starts_with("org.freedesktop.DBus.Error.InvalidArgs") =>
        {
            ErrorKind::InvalidArgument
        }
        // systemd unreachable or a job failed.
        C::Systemd { .. } => ErrorKind::FailedPrecondition,
        // No cgroupfs, or no controller for a resource or for freezing.
        C::NoCgroupfs { .. } | C::ControllerMissing { .. } | C::NoController { .. } => {
            ErrorKind::Unsupported
        }
        C::MountInfo { .. }
        | C::Create { .. }
        | C::Open { .. }
        | C::AddPid { .. }
        | C::Write { .. }
        | C::Read { .. }
        | C::Parse { .. }
        | C::FreezeTimeout { .. }
        | C::Kill { .. }
        | C::Delete { .. }
        | C::OomWatch { .. }
        | C::DeviceFilter { .. } => ErrorKind::Internal,
    }
}

fn console_kind(e: &console::ConsoleError) -> ErrorKind {
    use console::ConsoleError as C;
    match e {
        // The console socket the caller named is not there or not a socket.
        C::Socket { source, .. }
            if matches!(
                source.raw_os_error(),
                Some(libc::ENOENT | libc::ENOTDIR | libc::ECONNREFUSED | libc::ENOTSOCK)
            ) =>
        {
            ErrorKind::InvalidArgument
        }
        C::Ptmx(_) | C::Pty { .. } | C::DevConsole(_) | C::Socket { .. } => ErrorKind::Internal,
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::container::{Container, CreateOptions, Stdio};
    use crate::error::chain;

    fn os(errno: i32) -> io::Error {
        io::Error::from_raw_os_error(errno)
    }

    fn wrong_state(action: &'static str, status: Status) -> Error {
        Error::WrongState {
            id: "c1".into(),
            status,
            action,
            wanted: "running",
        }
    }

    fn setup_failure() -> Error {
        Error::Setup {
            id: "c1".into(),
            failure: SetupFailure {
                step: "mounts[2]".into(),
                message: "mount proc on /proc: Operation not permitted (os error 1)".into(),
                errno: Some(libc::EPERM),
            },
        }
    }

    fn create_in(bundle: &Path, state_root: &Path, id: &str) -> Error {
        Container::create(CreateOptions {
            id: id.into(),
            bundle: bundle.into(),
            state_root: state_root.into(),
            stdio: Stdio::default(),
            console: Default::default(),
            preserve_fds: 0,
            no_pivot: false,
            pid_file: None,
            no_new_keyring: false,
            systemd_cgroup: false,
        })
        .expect_err("create must fail")
    }

    #[test]
    fn invalid_argument() {
        let tmp = tempfile::tempdir().unwrap();
        let state = tmp.path().join("state");
        // An id that is not a safe path component, through the real API.
        assert_eq!(
            create_in(tmp.path(), &state, "../x").kind(),
            ErrorKind::InvalidArgument
        );
        // A bundle that does not exist, and one without config.json.
        let e = create_in(&tmp.path().join("nope"), &state, "c1");
        assert!(matches!(e, Error::Bundle { .. }), "{e}");
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        let e = create_in(tmp.path(), &state, "c1");
        assert!(matches!(e, Error::Spec(SpecError::Read { .. })), "{e}");
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        // An invalid spec, seccomp profile, capability, resource.
        std::fs::write(tmp.path().join("config.json"), "{").unwrap();
        let e = create_in(tmp.path(), &state, "c1");
        assert!(matches!(e, Error::Spec(SpecError::Parse { .. })), "{e}");
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        let profile = seccomp::from_json(&serde_json::json!({"defaultAction": "SCMP_ACT_NOPE"}));
        let e = Error::from(profile.and_then(|p| seccomp::compile(&p)).unwrap_err());
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
        for e in [
            Error::Spec(SpecError::Invalid {
                field: "process.args".into(),
                message: "must not be empty".into(),
            }),
            Error::Seccomp(seccomp::SeccompError::NotifyRefused {
                field: "linux.seccomp.defaultAction".into(),
                reason: "as the default action would deadlock",
            }),
            Error::Capabilities(capabilities::CapsError::UnknownName {
                field: "process.capabilities.bounding[0]".into(),
                name: "CAP_NOPE".into(),
            }),
            Error::Cgroup(CgroupError::Invalid {
                field: "memory.limit".into(),
                reason: "must be positive".into(),
            }),
            Error::Cgroup(CgroupError::InvalidPath {
                path: "../x".into(),
                reason: "has ..",
            }),
            Error::Console(console::ConsoleError::Socket {
                path: "/nonexistent/console.sock".into(),
                source: os(libc::ENOENT),
            }),
            Error::NoConsoleSocket,
        ] {
            assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
        }
    }

    #[test]
    fn already_exists() {
        let e = Error::AlreadyExists("c1".into());
        assert_eq!(e.kind(), ErrorKind::AlreadyExists);
        assert_eq!(e.to_string(), "container already exists");
    }

    #[test]
    fn not_found() {
        let tmp = tempfile::tempdir().unwrap();
        let e = Container::load(tmp.path(), "ghost").unwrap_err();
        assert!(matches!(e, Error::NotFound(_)), "{e}");
        assert_eq!(e.kind(), ErrorKind::NotFound);
        assert_eq!(e.to_string(), "container does not exist");
        // A process that has exited: a kill of a stopped init, or ESRCH.
        assert_eq!(
            wrong_state("kill", Status::Stopped).kind(),
            ErrorKind::NotFound
        );
        let e = Error::Sys {
            what: "pidfd_send_signal",
            source: os(libc::ESRCH),
        };
        assert_eq!(e.kind(), ErrorKind::NotFound);
    }

    #[test]
    fn failed_precondition() {
        for (action, status) in [
            ("start", Status::Stopped),
            ("exec", Status::Stopped),
            ("pause", Status::Created),
            ("delete", Status::Running),
        ] {
            let e = wrong_state(action, status);
            assert_eq!(e.kind(), ErrorKind::FailedPrecondition, "{action}: {e}");
        }
    }

    #[test]
    fn unsupported() {
        for e in [
            Error::Spec(SpecError::Unsupported {
                field: "linux.intelRdt".into(),
            }),
            Error::Seccomp(seccomp::SeccompError::ActionUnsupported {
                field: "linux.seccomp.defaultAction".into(),
                action: "SCMP_ACT_KILL_PROCESS".into(),
            }),
            Error::Seccomp(seccomp::SeccompError::FlagUnsupported {
                field: "linux.seccomp.flags[0]".into(),
                flag: "SECCOMP_FILTER_FLAG_SPEC_ALLOW".into(),
            }),
            Error::Cgroup(CgroupError::ControllerMissing {
                field: "hugepageLimits".into(),
                controller: "hugetlb".into(),
            }),
            Error::Cgroup(CgroupError::NoController {
                op: "freeze",
                controller: "freezer",
            }),
            Error::Cgroup(CgroupError::NoCgroupfs {
                root: "/sys/fs/cgroup".into(),
            }),
        ] {
            assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
        }
    }

    #[test]
    fn internal() {
        for e in [
            setup_failure(),
            Error::InitDied {
                id: "c1".into(),
                status: 1,
                stage: "during setup (in stage 2)",
            },
            Error::Hook(hooks::HookError::Failed {
                kind: "prestart",
                path: "/bin/false".into(),
                status: 1,
            }),
            Error::Io {
                what: "write state",
                path: "/run/wren/c1".into(),
                source: os(libc::ENOSPC),
            },
            Error::Sys {
                what: "socketpair",
                source: os(libc::EMFILE),
            },
            Error::Bundle {
                path: "/b".into(),
                source: os(libc::EACCES),
            },
            Error::Cgroup(CgroupError::Write {
                path: "/sys/fs/cgroup/pids/c1/pids.max".into(),
                value: "10".into(),
                source: os(libc::EBUSY),
            }),
            Error::Seccomp(seccomp::SeccompError::LoadFilter {
                flags: 0,
                source: os(libc::EINVAL),
            }),
            Error::Capabilities(capabilities::CapsError::ParseLastCap {
                path: "/proc/sys/kernel/cap_last_cap".into(),
                value: "x".into(),
            }),
            Error::Console(console::ConsoleError::Socket {
                path: "/run/console.sock".into(),
                source: os(libc::EPIPE),
            }),
        ] {
            assert_eq!(e.kind(), ErrorKind::Internal, "{e}");
        }
    }

    /// The caller prefixes "<op> <id>: "; the runtime's text must not say
    /// the id again, nor a label its source repeats.
    #[test]
    fn messages_say_each_context_once() {
        for e in [
            Error::AlreadyExists("c1".into()),
            Error::NotFound("c1".into()),
            Error::InvalidId("c1/".into()),
            wrong_state("start", Status::Stopped),
            setup_failure(),
            Error::InitDied {
                id: "c1".into(),
                status: 137,
                stage: "while waiting to be started",
            },
        ] {
            let text = chain(&e);
            assert!(!text.contains("c1"), "names the container: {text}");
        }
        assert_eq!(
            chain(&setup_failure()),
            "mounts[2]: mount proc on /proc: Operation not permitted (os error 1)"
        );
        assert_eq!(
            chain(&wrong_state("start", Status::Stopped)),
            "cannot start a container that has stopped"
        );
        let e = Error::from(seccomp::SeccompError::ArgIndex {
            field: "linux.seccomp.syscalls[0].args[0]".into(),
            index: 7,
        });
        assert_eq!(
            chain(&e),
            "linux.seccomp.syscalls[0].args[0]: argument index 7 is out of range (0-5)"
        );
        let e = Error::from(capabilities::CapsError::UnknownName {
            field: "process.capabilities.bounding[0]".into(),
            name: "CAP_NOPE".into(),
        });
        assert_eq!(
            chain(&e),
            "process.capabilities.bounding[0]: unknown capability \"CAP_NOPE\""
        );
        let e = Error::from(CgroupError::Create {
            path: "/sys/fs/cgroup/pids/c".into(),
            source: os(libc::EACCES),
        });
        assert_eq!(
            chain(&e),
            "create cgroup /sys/fs/cgroup/pids/c: Permission denied (os error 13)"
        );
    }
}
