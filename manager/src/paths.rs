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

/// The parent of wrend's container cgroups ("wren/NAME" from the root of
/// each hierarchy) when it keeps its state in `state_dir`: `wren` for the
/// default state directory, else `wren/w-HASH` of that directory, so two
/// wrends on one host (a test's, a second instance) never share a
/// same-named container's cgroup.
pub fn cgroup_parent_for(state_dir: &Path) -> String {
    if state_dir == Path::new(DEFAULT_STATE_DIR) {
        return "wren".to_string();
    }
    let abs = std::path::absolute(state_dir).unwrap_or_else(|_| state_dir.to_owned());
    format!("wren/w-{}", short_hash(&abs.display().to_string()))
}

/// The `linux.cgroupsPath` of container `name` under cgroup `parent`:
/// `/PARENT/NAME` from the root of each hierarchy.
pub fn cgroups_path(parent: &str, name: &str) -> String {
    format!("/{}/{name}", parent.trim_matches('/'))
}

/// Eight hex digits of FNV-1a of `s`: stable, short, no dependency.
pub fn short_hash(s: &str) -> String {
    let mut h: u32 = 0x811c_9dc5;
    for b in s.bytes() {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    format!("{h:08x}")
}

/// Checks a `--cgroup-parent`: a path of cgroup names, none of them `.`
/// or `..`, relative to the root of each hierarchy (a leading `/` is the
/// same).
pub fn check_cgroup_parent(p: &str) -> Result<(), &'static str> {
    let p = p.trim_matches('/');
    if p.is_empty() {
        return Err("want a cgroup path such as wren or system.slice/edge");
    }
    if p.len() > 512 {
        return Err("longer than 512 bytes");
    }
    for part in p.split('/') {
        if part.is_empty() || part == "." || part == ".." {
            return Err("every part must be a name (no empty, . or .. parts)");
        }
        if part.bytes().any(|b| b.is_ascii_control() || b == b' ') {
            return Err("no spaces or control characters");
        }
    }
    Ok(())
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
