//! Where wrend and wren meet on disk: the default state and records
//! directories, the API socket's name, and the layout `--root DIR` gives
//! both programs (`DIR/run` for state and the socket, `DIR/lib` for
//! records). wrend makes these; wren only needs the socket.
//!
//! Pure path arithmetic; runs in `wrend` and in `wren`.

use std::path::{Path, PathBuf};

/// Default directory for volatile state (keep it on a tmpfs).
pub const DEFAULT_STATE_DIR: &str = "/run/wren";
/// Default directory for persistent records, bundles and logs.
pub const DEFAULT_RECORDS_DIR: &str = "/var/lib/wren";
/// The API socket's file name inside the state directory.
pub const SOCKET_NAME: &str = "wrend.sock";

/// The state directory under `--root DIR`.
pub fn state_dir_under(root: &Path) -> PathBuf {
    root.join("run")
}

/// The records directory under `--root DIR`.
pub fn records_dir_under(root: &Path) -> PathBuf {
    root.join("lib")
}

/// Where wrend keeps container records (`record.json` per container).
pub fn containers_in(records_dir: &Path) -> PathBuf {
    records_dir.join("containers")
}

/// The image store (written by `wren`, read by no one else).
pub fn images_in(records_dir: &Path) -> PathBuf {
    records_dir.join("images")
}

/// Named volumes: `NAME/_data` each (written by `wren` only).
pub fn volumes_in(records_dir: &Path) -> PathBuf {
    records_dir.join("volumes")
}

/// The API socket in state directory `state_dir`.
pub fn socket_in(state_dir: &Path) -> PathBuf {
    state_dir.join(SOCKET_NAME)
}

/// The API socket without `--root` or `--socket`.
pub fn default_socket() -> PathBuf {
    socket_in(Path::new(DEFAULT_STATE_DIR))
}

/// The API socket under `--root DIR`.
pub fn socket_under(root: &Path) -> PathBuf {
    socket_in(&state_dir_under(root))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout() {
        assert_eq!(default_socket(), Path::new("/run/wren/wrend.sock"));
        assert_eq!(
            socket_under(Path::new("/tmp/t")),
            Path::new("/tmp/t/run/wrend.sock")
        );
        assert_eq!(
            records_dir_under(Path::new("/tmp/t")),
            Path::new("/tmp/t/lib")
        );
    }
}
