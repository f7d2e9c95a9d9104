//! What a container leaves on disk so another process (`wren-oci start`,
//! `kill`, `delete`) can find it: `<state root>/<id>/state.json` and the
//! exec fifo. Also the OCI state document and the status derived from the
//! live system (a pid is trusted only together with its start time).

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;
use serde::{Deserialize, Serialize};

use crate::cgroups::Cgroup;

pub const STATE_FILE: &str = "state.json";
pub const EXEC_FIFO: &str = "exec.fifo";

/// The OCI lifecycle status (plus runc's "paused").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        };
        f.write_str(s)
    }
}

/// The persisted record of a container.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    pub id: String,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub pid: i32,
    /// Start time of `pid` (field 22 of /proc/<pid>/stat), so a recycled pid
    /// is never mistaken for the container.
    pub pid_start: u64,
    /// RFC 3339, UTC.
    pub created: String,
    pub owner: u32,
    pub cgroup: Option<Cgroup>,
    pub spec: Spec,
    /// Without a mount namespace of its own: ids of the mounts under the
    /// rootfs before the init mounted there (see `container/host_mounts.rs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_mounts_before: Option<Vec<u64>>,
    /// Created with `NoNewKeyring`: execs keep the caller's keyring too.
    #[serde(default)]
    pub no_new_keyring: bool,
}

/// The OCI state document (`runtime.md#state`) with runc's extra fields.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OciState {
    #[serde(rename = "ociVersion")]
    pub oci_version: String,
    pub id: String,
    pub status: Status,
    pub pid: i32,
    pub bundle: PathBuf,
    #[serde(default, skip_serializing_if = "HashMap::is_empty")]
    pub annotations: HashMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rootfs: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

impl State {
    pub fn load(dir: &Path) -> io::Result<State> {
        let data = std::fs::read(dir.join(STATE_FILE))?;
        serde_json::from_slice(&data).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }

    /// Write atomically (temp file + rename).
    pub fn save(&self, dir: &Path) -> io::Result<()> {
        let tmp = dir.join(".state.json.tmp");
        std::fs::write(&tmp, serde_json::to_vec(self).map_err(io::Error::other)?)?;
        std::fs::rename(&tmp, dir.join(STATE_FILE))
    }

    pub fn oci(&self, status: Status) -> OciState {
        OciState {
            oci_version: crate::spec::OCI_VERSION.into(),
            id: self.id.clone(),
            status,
            pid: if status == Status::Stopped {
                0
            } else {
                self.pid
            },
            bundle: self.bundle.clone(),
            annotations: self.spec.annotations().clone().unwrap_or_default(),
            rootfs: Some(self.rootfs.clone()),
            created: Some(self.created.clone()),
            owner: Some(String::new()),
        }
    }
}

/// (state letter, start time) of a live pid, from /proc/<pid>/stat.
pub fn proc_stat(pid: i32) -> Option<(char, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses: split after the
    // last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let state = fields.first()?.chars().next()?;
    let start = fields.get(19)?.parse().ok()?;
    Some((state, start))
}

/// Is `pid` alive (and not a zombie) with this start time?
pub fn pid_alive(pid: i32, start: u64) -> bool {
    matches!(proc_stat(pid), Some((s, t)) if t == start && s != 'Z' && s != 'X')
}

pub use crate::timefmt::{rfc3339, rfc3339_now};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_pid_is_alive_and_start_time_matters() {
        let pid = std::process::id() as i32;
        let (state, start) = proc_stat(pid).unwrap();
        assert_ne!(state, 'Z');
        assert!(pid_alive(pid, start));
        assert!(!pid_alive(pid, start + 1));
    }
}
