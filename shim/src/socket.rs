//! The shim's unix socket: its name (the same sha256 name containerd's own
//! shims use, so grouping and restore work), creating it with tight modes,
//! telling a live shim's socket from a stale file, and removing it.
//!
//! Runs in the `start` process (create, probe), `delete` (remove a dead
//! shim's socket) and the daemon (remove on shutdown).

use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

pub use wren_ttrpc::address::{from_address, remove, to_address};

use crate::sha256;

/// Where containerd's shims put their sockets unless 2.3 says otherwise.
pub const DEFAULT_SOCKET_DIR: &str = "/run/containerd/s";
/// Longest socket path containerd accepts (sun_path minus the scheme margin).
pub const MAX_SOCKET_PATH: usize = 106;

/// Errors creating or probing the socket.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    #[error("socket path {path} is longer than {MAX_SOCKET_PATH} bytes")]
    PathTooLong { path: PathBuf },
    #[error("create socket directory {path}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("listen on {path}")]
    Listen {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("chmod socket {path}")]
    Chmod {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("remove stale socket {path}")]
    RemoveStale {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Go's `filepath.Join`: join with `/`, then clean (collapse `//`, `.`, `..`).
fn go_join(parts: &[&str]) -> String {
    let joined = parts
        .iter()
        .filter(|p| !p.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join("/");
    go_clean(&joined)
}

/// Go's `path.Clean` for slash-separated paths.
fn go_clean(path: &str) -> String {
    if path.is_empty() {
        return ".".into();
    }
    let rooted = path.starts_with('/');
    let mut out: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if out.last().is_some_and(|l| *l != "..") {
                    out.pop();
                } else if !rooted {
                    out.push("..");
                }
            }
            p => out.push(p),
        }
    }
    let body = out.join("/");
    match (rooted, body.is_empty()) {
        (true, _) => format!("/{body}"),
        (false, true) => ".".into(),
        (false, false) => body,
    }
}

/// The socket path for a shim serving `group` in namespace `ns` of the
/// containerd whose gRPC address is `containerd_address`:
/// `<dir>/<sha256(join(address, ns, group))>`.
pub fn socket_path(socket_dir: &Path, containerd_address: &str, ns: &str, group: &str) -> PathBuf {
    let key = go_join(&[containerd_address, ns, group]);
    socket_dir.join(sha256::hex_digest(key.as_bytes()))
}

/// True when something accepts connections on `path`. A unix connect()
/// succeeds or fails at once (a full backlog fails with EAGAIN, which we count
/// as live), so unlike Go's 100 ms dial no timeout is needed.
pub fn is_live(path: &Path) -> bool {
    match UnixStream::connect(path) {
        Ok(_) => true,
        Err(e) => e.kind() == io::ErrorKind::WouldBlock,
    }
}

/// Outcome of [`listen`].
pub enum Listened {
    /// A fresh listener (mode 0600, in a 0700 directory).
    New(UnixListener),
    /// A live shim already serves this path: reuse it (grouping).
    Existing,
}

/// Creates the listening socket, or finds the live shim that already owns it.
/// A stale socket file (nothing listening) is removed and replaced.
pub fn listen(path: &Path) -> Result<Listened, SocketError> {
    if path.as_os_str().len() > MAX_SOCKET_PATH {
        return Err(SocketError::PathTooLong { path: path.into() });
    }
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|source| SocketError::CreateDir {
                path: dir.into(),
                source,
            })?;
    }
    for _ in 0..2 {
        match UnixListener::bind(path) {
            Ok(listener) => {
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(
                    |source| SocketError::Chmod {
                        path: path.into(),
                        source,
                    },
                )?;
                return Ok(Listened::New(listener));
            }
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
                if is_live(path) {
                    return Ok(Listened::Existing);
                }
                remove(path).map_err(|source| SocketError::RemoveStale {
                    path: path.into(),
                    source,
                })?;
            }
            Err(source) => {
                return Err(SocketError::Listen {
                    path: path.into(),
                    source,
                })
            }
        }
    }
    Err(SocketError::Listen {
        path: path.into(),
        source: io::Error::from(io::ErrorKind::AddrInUse),
    })
}

/// Removes this shim's own socket, named by the `address` file `start`
/// wrote in the bundle (the daemon's cwd). Called when Shutdown is accepted,
/// before the reply, so the socket is gone by the time containerd (or a
/// test) sees the call return; established connections are unaffected.
pub fn remove_own() {
    if let Some(path) = std::fs::read_to_string("address")
        .ok()
        .and_then(|a| from_address(a.trim()))
    {
        if let Err(e) = remove(&path) {
            log::warn!("remove socket {}: {e}", path.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_matches_go() {
        assert_eq!(go_clean("/run//containerd/./x/../y/"), "/run/containerd/y");
        assert_eq!(go_clean("a/../../b"), "../b");
        assert_eq!(go_clean("/.."), "/");
        assert_eq!(
            go_join(&["/run/containerd/containerd.sock", "default", "c1"]),
            "/run/containerd/containerd.sock/default/c1"
        );
    }

    #[test]
    fn socket_name_is_sha256_of_joined_key() {
        let p = socket_path(
            Path::new(DEFAULT_SOCKET_DIR),
            "/run/containerd/containerd.sock",
            "default",
            "c1",
        );
        let want = sha256::hex_digest(b"/run/containerd/containerd.sock/default/c1");
        assert_eq!(p, Path::new("/run/containerd/s").join(want));
        assert_eq!(
            to_address(&p),
            format!("unix://{}", p.display()),
            "plain unix:// address"
        );
        assert_eq!(from_address(&to_address(&p)), Some(p));
        assert_eq!(from_address("unix://@abstract"), None);
    }

    #[test]
    fn listen_reuses_live_and_replaces_stale() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s").join("sock");
        let Listened::New(l) = listen(&path).unwrap() else {
            panic!("expected a new listener")
        };
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dmode = std::fs::metadata(path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(dmode, 0o700);
        assert!(matches!(listen(&path).unwrap(), Listened::Existing));
        drop(l);
        // Another test's fork may still hold a copy of the listener until
        // its exec closes it; once nothing listens the file is stale.
        let t0 = std::time::Instant::now();
        while is_live(&path) && t0.elapsed() < std::time::Duration::from_secs(5) {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(matches!(listen(&path).unwrap(), Listened::New(_)));
    }
}
