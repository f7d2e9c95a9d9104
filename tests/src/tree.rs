//! Debian trees with newer containerd (trixie: 1.7, sid: 2.1), built by
//! `scripts/debian-tree.sh` (CI runs it before the tests) under
//! `/var/tmp/wren-trees` (`WREN_TREES`). A test that needs one and finds it
//! missing records a skip (`make test` as root fails on it).
//!
//! Runs in the test processes only.

use std::path::{Path, PathBuf};

/// The containerd versions the matrix runs: None is the host's.
pub const MATRIX: [Option<&str>; 3] = [None, Some("trixie"), Some("sid")];

/// The complete tree of `suite`, or None (with a recorded skip for `test`).
pub fn get(test: &str, suite: &str) -> Option<PathBuf> {
    let base = std::env::var_os("WREN_TREES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp/wren-trees"));
    let t = base.join(suite);
    if t.join(".complete").exists() {
        Some(t)
    } else {
        crate::skip(
            test,
            crate::Skip::Missing(format!("the {suite} tree (scripts/debian-tree.sh {suite})")),
        );
        None
    }
}

/// The version of the tree's containerd Debian package (`1.7.24~ds1-6`).
pub fn containerd_version(tree: &Path) -> String {
    let status = std::fs::read_to_string(tree.join("var/lib/dpkg/status")).unwrap_or_default();
    status
        .split("\n\n")
        .find(|p| p.lines().any(|l| l == "Package: containerd"))
        .and_then(|p| p.lines().find_map(|l| l.strip_prefix("Version: ")))
        .unwrap_or("unknown")
        .to_string()
}

/// The major version of the tree's containerd (from its Debian package).
pub fn containerd_major(tree: &Path) -> u32 {
    containerd_version(tree)
        .split(['.', '~', '-', '+'])
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

/// A label for messages: "host", "trixie", "sid".
pub fn label(suite: Option<&str>) -> &str {
    suite.unwrap_or("host")
}
