//! Where wrend keeps things: the API socket, runtime state (fifos, shim
//! sockets, the runtime's container state) under a tmpfs directory, and
//! persistent records, bundles and logs under a disk directory. `--root DIR`
//! moves all of it under one directory (tests, or several wrends on a host).
//!
//! The defaults and the `--root` layout are [`crate::paths`], which `wren`
//! shares; the per-container layout below is wrend's alone.
//!
//! Runs in `wrend`.

use std::path::{Path, PathBuf};

use crate::logfile;
use crate::paths;

/// The containerd namespace wrend's shims are started in.
pub const NAMESPACE: &str = "wren";

/// wrend's paths and limits.
#[derive(Debug, Clone)]
pub struct Config {
    pub state_dir: PathBuf,
    pub records_dir: PathBuf,
    pub socket: PathBuf,
    pub shim_binary: PathBuf,
    pub log_max_size: u64,
    pub log_keep: u32,
    /// The network of a container that names none (`--default-network`).
    pub default_network: String,
    /// Where containers' cgroups are made, PARENT/NAME (`--cgroup-parent`;
    /// [`paths::cgroup_parent_for`] the state directory by default).
    pub cgroup_parent: String,
    pub debug: bool,
}

impl Config {
    /// The defaults: /run/wren, /var/lib/wren, the shim next to this binary.
    pub fn new() -> Self {
        Self::with_dirs(
            PathBuf::from(paths::DEFAULT_STATE_DIR),
            PathBuf::from(paths::DEFAULT_RECORDS_DIR),
        )
    }

    /// Everything under `root`: `root/run` for state, `root/lib` for records.
    pub fn with_root(root: &Path) -> Self {
        Self::with_dirs(paths::state_dir_under(root), paths::records_dir_under(root))
    }

    /// State and records in the given directories, the socket in the state
    /// directory.
    pub fn with_dirs(state_dir: PathBuf, records_dir: PathBuf) -> Self {
        let shim_binary = std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(|d| d.join("containerd-shim-wren-v2")))
            .filter(|p| p.exists())
            .unwrap_or_else(|| PathBuf::from("containerd-shim-wren-v2"));
        Self {
            socket: paths::socket_in(&state_dir),
            cgroup_parent: paths::cgroup_parent_for(&state_dir),
            state_dir,
            records_dir,
            shim_binary,
            log_max_size: logfile::DEFAULT_MAX_SIZE,
            log_keep: logfile::DEFAULT_KEEP,
            default_network: crate::network::DEFAULT_NETWORK.to_string(),
            debug: false,
        }
    }

    /// Per-container records directory (record.json, bundle/, logs).
    pub fn record_dir(&self, name: &str) -> PathBuf {
        self.records_dir.join("containers").join(name)
    }

    /// Per-container state directory (stdio fifos).
    pub fn container_state_dir(&self, name: &str) -> PathBuf {
        self.state_dir.join("containers").join(name)
    }

    /// The /dev/shm tmpfs of an `--ipc shareable` container.
    pub fn shm_dir(&self, name: &str) -> PathBuf {
        self.container_state_dir(name).join("shm")
    }

    /// Where the shims put their sockets.
    pub fn shim_socket_dir(&self) -> PathBuf {
        self.state_dir.join("s")
    }

    /// The runtime's container state root (runc's `--root`).
    pub fn runtime_root(&self) -> PathBuf {
        self.state_dir.join("runtime")
    }

    /// The cgroupsPath of container `name` made under wrend's parent.
    pub fn cgroups_path(&self, name: &str) -> String {
        paths::cgroups_path(&self.cgroup_parent, name)
    }

    /// wrend's address as the shims see it.
    pub fn address(&self) -> String {
        format!("unix://{}", self.socket.display())
    }
}

impl Default for Config {
    fn default() -> Self {
        Self::new()
    }
}

/// A container name wrend accepts: 1–64 of `[A-Za-z0-9_.-]`, starting with
/// a letter or digit (it becomes a directory, a cgroup and a shim id).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["web", "a", "web-1.prod_x", "9"] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in ["", "-x", ".x", "a/b", "..", "a b", &"x".repeat(65)] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn root_layout() {
        let c = Config::with_root(Path::new("/tmp/t"));
        assert_eq!(c.socket, Path::new("/tmp/t/run/wrend.sock"));
        assert_eq!(c.record_dir("a"), Path::new("/tmp/t/lib/containers/a"));
        assert_eq!(c.address(), "unix:///tmp/t/run/wrend.sock");
        // Its own cgroup parent, beside the default wrend's.
        assert_eq!(
            c.cgroup_parent,
            paths::cgroup_parent_for(Path::new("/tmp/t/run"))
        );
        assert!(
            c.cgroups_path("a").starts_with("/wren/w-"),
            "{}",
            c.cgroups_path("a")
        );
        assert_ne!(
            c.cgroup_parent,
            Config::with_root(Path::new("/tmp/u")).cgroup_parent
        );
        assert_eq!(Config::new().cgroups_path("a"), "/wren/a");
    }
}
