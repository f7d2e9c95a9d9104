//! Linux namespaces: the container's list, joining by path, creating new ones,
//! and the uid/gid maps and time offsets that go with them.
//!
//! `check_path` and `write_id_maps` run in the caller; `enter` runs in the
//! init process (a fresh single-threaded process) before it forks the
//! container's pid 1.

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxIdMapping, LinuxNamespaceType};
use serde::{Deserialize, Serialize};

use crate::sys;

/// One entry of `linux.namespaces`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Namespace {
    pub kind: LinuxNamespaceType,
    /// Join this namespace instead of creating one.
    pub path: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum NamespaceError {
    #[error("open namespace {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("setns {kind} namespace {path}")]
    Join {
        kind: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("unshare {kinds}")]
    Unshare {
        kinds: String,
        #[source]
        source: std::io::Error,
    },
    #[error("write {file} of pid {pid}")]
    WriteMap {
        file: &'static str,
        pid: i32,
        #[source]
        source: std::io::Error,
    },
}

/// The `CLONE_NEW*` flag of a namespace type.
pub fn clone_flag(kind: LinuxNamespaceType) -> libc::c_int {
    match kind {
        LinuxNamespaceType::Mount => libc::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => libc::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => libc::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => libc::CLONE_NEWIPC,
        LinuxNamespaceType::User => libc::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => libc::CLONE_NEWPID,
        LinuxNamespaceType::Network => libc::CLONE_NEWNET,
        LinuxNamespaceType::Time => 0x80, // CLONE_NEWTIME
    }
}

/// The name used under /proc/<pid>/ns/.
pub fn proc_name(kind: LinuxNamespaceType) -> &'static str {
    match kind {
        LinuxNamespaceType::Mount => "mnt",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "net",
        LinuxNamespaceType::Time => "time",
    }
}

/// Every namespace type, in the order a container's are listed in errors.
pub const ALL: [LinuxNamespaceType; 8] = [
    LinuxNamespaceType::User,
    LinuxNamespaceType::Pid,
    LinuxNamespaceType::Uts,
    LinuxNamespaceType::Ipc,
    LinuxNamespaceType::Network,
    LinuxNamespaceType::Cgroup,
    LinuxNamespaceType::Mount,
    LinuxNamespaceType::Time,
];

const NS_GET_NSTYPE: libc::c_ulong = 0xb703;

/// Check that `path` is a namespace of type `kind` (for a clear error before
/// anything is created).
pub fn check_path(kind: LinuxNamespaceType, path: &Path) -> Result<(), String> {
    let fd = sys::open(path, libc::O_RDONLY, 0).map_err(|e| format!("{}: {e}", path.display()))?;
    // SAFETY: NS_GET_NSTYPE takes no argument and only reads the fd.
    let ret = unsafe { libc::ioctl(fd.as_raw_fd(), NS_GET_NSTYPE as _) };
    if ret < 0 {
        return Err(format!("{} is not a namespace", path.display()));
    }
    if ret != clone_flag(kind) {
        return Err(format!(
            "{} is not a {} namespace",
            path.display(),
            proc_name(kind)
        ));
    }
    Ok(())
}

/// Join the namespaces given by path, user namespace handled the way that
/// works whichever namespace owns the others: every fd is opened first
/// (after a join the paths may be gone), non-user namespaces are joined,
/// then the user namespace, then whatever failed with EPERM is retried.
pub fn join(namespaces: &[Namespace]) -> Result<(), NamespaceError> {
    let mut fds: Vec<(LinuxNamespaceType, &Path, OwnedFd)> = Vec::new();
    for ns in namespaces {
        if let Some(path) = &ns.path {
            let fd = sys::open(path, libc::O_RDONLY, 0).map_err(|source| NamespaceError::Open {
                path: path.clone(),
                source,
            })?;
            fds.push((ns.kind, path, fd));
        }
    }
    let mut retry = Vec::new();
    for (kind, path, fd) in fds.iter().filter(|(k, ..)| *k != LinuxNamespaceType::User) {
        if let Err(e) = sys::setns(fd.as_fd(), clone_flag(*kind)) {
            if e.raw_os_error() != Some(libc::EPERM) {
                return Err(NamespaceError::Join {
                    kind: proc_name(*kind),
                    path: path.to_path_buf(),
                    source: e,
                });
            }
            retry.push((*kind, *path, fd));
        }
    }
    if let Some((kind, path, fd)) = fds.iter().find(|(k, ..)| *k == LinuxNamespaceType::User) {
        sys::setns(fd.as_fd(), clone_flag(*kind)).map_err(|source| NamespaceError::Join {
            kind: "user",
            path: path.to_path_buf(),
            source,
        })?;
        become_root();
    }
    for (kind, path, fd) in retry {
        sys::setns(fd.as_fd(), clone_flag(kind)).map_err(|source| NamespaceError::Join {
            kind: proc_name(kind),
            path: path.to_path_buf(),
            source,
        })?;
    }
    Ok(())
}

/// Become uid/gid 0 of the current user namespace (after joining or
/// creating it). Errors are ignored: in an unmapped namespace there is no 0.
pub fn become_root() {
    // SAFETY: plain integer syscalls.
    unsafe {
        libc::setresgid(0, 0, 0);
        libc::setresuid(0, 0, 0);
    }
}

/// `unshare` the namespaces to be created, except the user namespace (done
/// first, separately, so the maps can be written).
pub fn unshare_new(namespaces: &[Namespace]) -> Result<(), NamespaceError> {
    let mut flags = 0;
    let mut kinds = Vec::new();
    for ns in namespaces
        .iter()
        .filter(|n| n.path.is_none() && n.kind != LinuxNamespaceType::User)
    {
        flags |= clone_flag(ns.kind);
        kinds.push(proc_name(ns.kind));
    }
    if flags == 0 {
        return Ok(());
    }
    sys::unshare(flags).map_err(|source| NamespaceError::Unshare {
        kinds: kinds.join(","),
        source,
    })
}

/// Render an id map the way `/proc/<pid>/uid_map` takes it.
pub fn format_id_map(map: &[LinuxIdMapping]) -> String {
    map.iter()
        .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
        .collect()
}

/// Write the uid and gid maps of `pid` (which has just unshared its user
/// namespace). Runs in the caller, which has the privilege to do so.
pub fn write_id_maps(pid: i32, uid_map: &str, gid_map: &str) -> Result<(), NamespaceError> {
    let write = |file: &'static str, data: &str| {
        File::options()
            .write(true)
            .open(format!("/proc/{pid}/{file}"))
            .and_then(|mut f| f.write_all(data.as_bytes()))
            .map_err(|source| NamespaceError::WriteMap { file, pid, source })
    };
    write("uid_map", uid_map)?;
    write("gid_map", gid_map)
}

/// A user namespace with the given id maps, held by an fd (for idmapped
/// mounts): a child that only waits is cloned into a new user namespace,
/// its maps are written, its namespace opened, and it is killed and reaped.
/// The child runs nothing but `pause`, so the caller may have threads
/// (the shim does); it must collect its own children (`wait_pidfd` here).
pub fn userns_with_maps(uid_map: &str, gid_map: &str) -> std::io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::AsFd;
    // SAFETY: the child only loops on pause(2), which is async-signal-safe,
    // so it is sound from a multi-threaded caller too.
    let (pid, pidfd) = unsafe { crate::sys::clone_userns_holder() }?;
    let ns = write_id_maps(pid, uid_map, gid_map)
        .map_err(std::io::Error::other)
        .and_then(|()| {
            crate::sys::open(
                std::path::Path::new(&format!("/proc/{pid}/ns/user")),
                libc::O_RDONLY | libc::O_CLOEXEC,
                0,
            )
        });
    let _ = crate::sys::pidfd_send_signal(pidfd.as_fd(), libc::SIGKILL);
    let _ = crate::sys::wait_pidfd(pidfd.as_fd(), false);
    ns
}

/// Render `linux.timeOffsets` for `/proc/self/timens_offsets`.
pub fn format_time_offsets(
    offsets: &std::collections::HashMap<String, oci_spec::runtime::LinuxTimeOffset>,
) -> String {
    let mut keys: Vec<_> = offsets.keys().collect();
    keys.sort();
    keys.iter()
        .map(|k| {
            let o = &offsets[*k];
            format!(
                "{} {} {}\n",
                k,
                o.secs().unwrap_or(0),
                o.nanosecs().unwrap_or(0)
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_path_tells_types_apart() {
        if !Path::new("/proc/self/ns/net").exists() {
            eprintln!("skip: no /proc/self/ns");
            return;
        }
        check_path(LinuxNamespaceType::Network, Path::new("/proc/self/ns/net")).unwrap();
        let err = check_path(LinuxNamespaceType::Ipc, Path::new("/proc/self/ns/net")).unwrap_err();
        assert!(err.contains("not a ipc namespace"), "{err}");
        let err = check_path(LinuxNamespaceType::Ipc, Path::new("/etc/hostname")).unwrap_err();
        assert!(
            err.contains("is not a namespace") || err.contains("No such file"),
            "{err}"
        );
    }

    #[test]
    fn id_maps_render_one_line_each() {
        let m: Vec<LinuxIdMapping> = serde_json::from_str(
            r#"[{"containerID":0,"hostID":100000,"size":65536},{"containerID":65536,"hostID":1,"size":1}]"#,
        )
        .unwrap();
        assert_eq!(format_id_map(&m), "0 100000 65536\n65536 1 1\n");
    }
}
