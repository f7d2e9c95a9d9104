//! The one error type of the cgroups module.

use std::io;
use std::path::PathBuf;

/// What went wrong while managing a container's cgroup. Variants are named
/// after the operation; `Display` names the file or field and leaves the OS
/// error to `source()`.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// Reading the mount table failed.
    #[error("read mount table {path}")]
    MountInfo {
        /// The mountinfo file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// No cgroup v1 or cgroup2 mount was found under the cgroup root.
    #[error("no cgroup filesystem mounted under {root}")]
    NoCgroupfs {
        /// The cgroup root that was searched.
        root: PathBuf,
    },
    /// `linux.cgroupsPath` cannot be used.
    #[error("invalid cgroupsPath {path:?}: {reason}")]
    InvalidPath {
        /// The path as given.
        path: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// An exec's sub-cgroup (`wren-oci exec --cgroup`) is not a relative
    /// path below the container's cgroup, or does not exist.
    #[error("sub-cgroup {path:?}: {reason}")]
    InvalidSubCgroup {
        /// The path as given.
        path: String,
        /// Why it was refused (naming the missing directory).
        reason: String,
    },
    /// systemd refused a request of the systemd cgroup driver, or could
    /// not be reached.
    #[error("systemd unit {unit}: {what}: {message}")]
    Systemd {
        /// The unit.
        unit: String,
        /// The D-Bus call and the properties sent.
        what: String,
        /// systemd's (or D-Bus's) error name and message.
        message: String,
    },
    /// A resource value is invalid (validation happens before anything is written).
    #[error("invalid linux.resources.{field}: {reason}")]
    Invalid {
        /// The field, as in config.json (`memory.limit`, `devices[2].type`, ...).
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A resource was requested whose controller is not available.
    #[error(
        "linux.resources.{field} needs the {controller} cgroup controller, which is not available"
    )]
    ControllerMissing {
        /// The field that needs it.
        field: String,
        /// The controller.
        controller: String,
    },
    /// Creating a cgroup directory failed.
    #[error("create cgroup {path}")]
    Create {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Opening a cgroup directory or file failed.
    #[error("open {path}")]
    Open {
        /// The path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Moving a process into the cgroup failed.
    #[error("add pid {pid} to {path}")]
    AddPid {
        /// The process.
        pid: i32,
        /// The `cgroup.procs` file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Writing a control file failed.
    #[error("write {value:?} to {path}")]
    Write {
        /// The control file.
        path: PathBuf,
        /// What was written.
        value: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Reading a control file failed.
    #[error("read {path}")]
    Read {
        /// The control file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A control file did not have the expected format.
    #[error("parse {path}: unexpected content {content:?}")]
    Parse {
        /// The control file.
        path: PathBuf,
        /// The offending text.
        content: String,
    },
    /// Freezing or thawing did not complete.
    #[error("{op} {path}: still {state} after {waited_ms} ms")]
    FreezeTimeout {
        /// "freeze" or "thaw".
        op: &'static str,
        /// The cgroup.
        path: PathBuf,
        /// The state it was left in.
        state: String,
        /// How long we waited.
        waited_ms: u64,
    },
    /// An operation needs a controller this cgroup does not have (e.g. freeze
    /// without a freezer).
    #[error("{op}: no {controller} controller for this cgroup")]
    NoController {
        /// The operation.
        op: &'static str,
        /// The missing controller.
        controller: &'static str,
    },
    /// Signalling a process of the cgroup failed.
    #[error("signal {signal} to pid {pid}")]
    Kill {
        /// The process.
        pid: i32,
        /// The signal.
        signal: i32,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Removing a cgroup directory failed (after retries).
    #[error("remove cgroup {path}")]
    Delete {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Setting up the OOM notification failed.
    #[error("watch for OOM kills in {path}")]
    OomWatch {
        /// The file being watched.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A `bpf(2)` step of the v2 device filter failed.
    #[error("device filter: {op} on {path}")]
    DeviceFilter {
        /// "load", "attach", "detach" or "query".
        op: &'static str,
        /// The cgroup2 directory.
        path: PathBuf,
        /// The OS error (for "load", with the verifier log).
        #[source]
        source: io::Error,
    },
}
