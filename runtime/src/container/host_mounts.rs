//! Containers without their own mount namespace (allowed by the spec; runc
//! runs them): their init makes the rootfs bind, /proc, /dev, /sys and the
//! spec's mounts in the caller's mount namespace, under the rootfs, and
//! chroots into it. What it mounted there is found by mount id and detached
//! when the container is deleted (or its create fails), so nothing of it
//! stays in the host's mount table; runc leaves these mounts behind.
//!
//! Runs in the caller, which must be in the mount namespace of the create.

use std::path::Path;

use super::error::io_err;
use super::Error;
use crate::{mountinfo, sys};

/// Ids of the mounts at or under `rootfs` now, before the init mounts.
pub(super) fn snapshot(rootfs: &Path) -> Result<Vec<u64>, Error> {
    let mounts = mountinfo::own().map_err(io_err("read", Path::new("/proc/self/mountinfo")))?;
    Ok(mounts
        .into_iter()
        .filter(|m| m.mount_point.starts_with(rootfs))
        .map(|m| m.id)
        .collect())
}

/// Detaches every mount at or under `rootfs` that is not in `before`,
/// deepest first. Returns how many it detached.
pub(super) fn release(rootfs: &Path, before: &[u64]) -> Result<usize, Error> {
    let mounts = mountinfo::own().map_err(io_err("read", Path::new("/proc/self/mountinfo")))?;
    let mut ours: Vec<_> = mounts
        .into_iter()
        .filter(|m| m.mount_point.starts_with(rootfs) && !before.contains(&m.id))
        .map(|m| m.mount_point)
        .collect();
    ours.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    ours.dedup();
    let mut n = 0;
    for p in &ours {
        match sys::umount(p, libc::MNT_DETACH | libc::UMOUNT_NOFOLLOW) {
            Ok(()) => n += 1,
            // Already gone with a parent detached before it.
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOENT)) => {}
            Err(e) => return Err(io_err("umount", p)(e)),
        }
    }
    Ok(n)
}
