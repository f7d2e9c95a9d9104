//! wrend's persistent container records: one `record.json` per container
//! under `<records>/containers/<name>/`, written atomically (temp file +
//! rename) whenever something a restarted wrend must know changes.
//!
//! Runs in wrend's loop thread.

use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// File name of a record inside its container directory.
pub const RECORD_FILE: &str = "record.json";

/// What survives a wrend restart (and a host reboot) about one container.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub name: String,
    /// wrend's bundle directory for this container (holds config.json).
    pub bundle: PathBuf,
    /// The rootfs or bundle the user gave, for `inspect`.
    #[serde(default)]
    pub source: String,
    #[serde(default)]
    pub restart_policy: String,
    #[serde(default)]
    pub start_at_boot: bool,
    #[serde(default)]
    pub auto_remove: bool,
    #[serde(default)]
    pub terminal: bool,
    #[serde(default)]
    pub stdin: bool,
    /// The shim serving this container, `unix://...`; empty when none runs.
    #[serde(default)]
    pub shim_address: String,
    #[serde(default)]
    pub shim_pid: u32,
    /// The init's pid when it was last started.
    #[serde(default)]
    pub pid: u32,
    /// True once the init was started (so a live shim's state can be trusted).
    #[serde(default)]
    pub started: bool,
    #[serde(default)]
    pub created_at: i64,
    #[serde(default)]
    pub stopped_by_user: bool,
    #[serde(default)]
    pub restart_count: u32,
    #[serde(default)]
    pub exit_status: Option<u32>,
    #[serde(default)]
    pub exited_at: i64,
    #[serde(default)]
    pub last_error: String,
    /// The image it was made from (name as given, manifest digest), if any.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub image: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub image_id: String,
    /// The image's layer snapshots, lowest first: the overlay's lower dirs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_layers: Vec<PathBuf>,
    /// The signal `stop` sends by default (the image's StopSignal).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub stop_signal: String,
    /// Seconds `stop` waits by default before SIGKILL (0: the default).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub stop_timeout: u32,
    /// `--label KEY=VALUE`s.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
    /// `--log-opt max-size` and `max-file`; 0: wrend's defaults.
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub log_max_size: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub log_max_files: u32,
    /// none, host, or a CNI network's name; "" for a bundle container
    /// (its own namespaces). The rest is in `net/config.json`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub network: String,
    /// `container:NAME` when the container joins NAME's pid namespace
    /// (`--pid container:NAME`); empty otherwise (private or host live in
    /// the spec alone).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pid_mode: String,
    /// `shareable` (its /dev/shm a tmpfs wrend mounts outside it, so
    /// others can join) or `container:NAME`; empty otherwise.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ipc_mode: String,
    /// `container:NAME` when the container joins NAME's UTS namespace
    /// (`--uts container:NAME`); empty otherwise.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uts_mode: String,
    /// `--shm-size` of a shareable container (0: 64 MiB).
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub shm_size: i64,
    /// The address of the current attachment, if any.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ip_address: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<String>,
    /// The health check, if any, and the health it found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// Boxed: most containers have none, and a record is resident per
    /// container in wrend.
    pub health: Option<Box<super::health::HealthConfig>>,
    #[serde(default, skip_serializing_if = "super::health::HealthState::is_empty")]
    pub health_state: super::health::HealthState,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

fn is_zero_i64(n: &i64) -> bool {
    *n == 0
}

fn is_zero_u64(n: &u64) -> bool {
    *n == 0
}

/// A record that could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("write record {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("read record {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("parse record {path}")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

impl Record {
    /// Whether it joins another container's namespaces or shares its
    /// own IPC (the rare case its task creation has more to do for).
    pub fn shares_namespaces(&self) -> bool {
        !self.pid_mode.is_empty()
            || !self.ipc_mode.is_empty()
            || !self.uts_mode.is_empty()
            || crate::network::joined(&self.network).is_some()
    }

    /// The namespaces this container joins from other containers, as
    /// (namespace type in the spec, container).
    pub fn joins(&self) -> impl Iterator<Item = (&'static str, &str)> {
        [
            ("network", &self.network),
            ("pid", &self.pid_mode),
            ("ipc", &self.ipc_mode),
            ("uts", &self.uts_mode),
        ]
        .into_iter()
        .filter_map(|(ns, mode)| crate::network::joined(mode).map(|c| (ns, c)))
    }

    /// Writes the record into `dir` atomically.
    pub fn save(&self, dir: &Path) -> Result<(), RecordError> {
        let path = dir.join(RECORD_FILE);
        let tmp = dir.join(".record.json.tmp");
        let err = |source| RecordError::Write {
            path: path.clone(),
            source,
        };
        let json = serde_json::to_vec_pretty(self).map_err(|e| err(io::Error::other(e)))?;
        std::fs::write(&tmp, json).map_err(err)?;
        std::fs::rename(&tmp, &path).map_err(err)
    }

    /// Reads the record in `dir`.
    pub fn load(dir: &Path) -> Result<Self, RecordError> {
        let path = dir.join(RECORD_FILE);
        let text = std::fs::read(&path).map_err(|source| RecordError::Read {
            path: path.clone(),
            source,
        })?;
        serde_json::from_slice(&text).map_err(|source| RecordError::Parse { path, source })
    }
}

/// Every record under `containers_dir`; unreadable ones are returned as errors
/// so the caller can log them and carry on.
pub fn load_all(containers_dir: &Path) -> Vec<Result<Record, RecordError>> {
    let Ok(entries) = std::fs::read_dir(containers_dir) else {
        return Vec::new();
    };
    let mut dirs: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    dirs.sort();
    dirs.iter()
        .filter(|d| d.join(RECORD_FILE).exists())
        .map(|d| Record::load(d))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_load_round_trip_and_skip_dirs_without_record() {
        let tmp = tempfile::tempdir().unwrap();
        let a = tmp.path().join("a");
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(tmp.path().join("half-created")).unwrap();
        let r = Record {
            name: "a".into(),
            bundle: a.join("bundle"),
            restart_policy: "on-failure:3".into(),
            exit_status: Some(3),
            ..Record::default()
        };
        r.save(&a).unwrap();
        assert_eq!(Record::load(&a).unwrap(), r);
        let all = load_all(tmp.path());
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].as_ref().unwrap().name, "a");
        std::fs::write(a.join(RECORD_FILE), "{").unwrap();
        assert!(matches!(
            load_all(tmp.path())[0],
            Err(RecordError::Parse { .. })
        ));
    }
}
