//! ttrpc addresses: the `unix://PATH` form containerd dials and stores, and
//! removing a socket file that no longer serves anyone.

use std::io;
use std::path::{Path, PathBuf};

/// `unix://<path>`, the form containerd dials and stores in `address`.
pub fn to_address(path: &Path) -> String {
    format!("unix://{}", path.display())
}

/// The filesystem path of a `unix://` address (abstract `@` names are not ours).
pub fn from_address(address: &str) -> Option<PathBuf> {
    let path = address.strip_prefix("unix://")?;
    (!path.starts_with('@') && !path.is_empty()).then(|| PathBuf::from(path))
}

/// Removes a socket file; a missing file is not an error.
pub fn remove(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}
