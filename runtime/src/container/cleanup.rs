//! Guards that undo what a failed create or exec left behind: the state
//! directory, the cgroup and the processes made so far ([`Cleanup`]), and
//! a pid's entry in the child registry ([`Released`]).
//!
//! Runs in the caller.

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use crate::cgroups::Cgroup;
use crate::{hooks, sys};

/// Undoes a half-made container unless disarmed.
pub(super) struct Cleanup<'a> {
    pub(super) dir: Option<&'a Path>,
    pub(super) cgroup: Option<Cgroup>,
    pub(super) pidfds: Vec<OwnedFd>,
    /// A container in the caller's mount namespace: its rootfs and the
    /// mounts that were there before (see `host_mounts.rs`).
    pub(super) host_mounts: Option<(PathBuf, Vec<u64>)>,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        for fd in &self.pidfds {
            let _ = sys::pidfd_send_signal(fd.as_fd(), libc::SIGKILL);
            let _ = hooks::wait_with_timeout(fd.as_fd(), Some(5000));
        }
        if let Some((rootfs, before)) = &self.host_mounts {
            if let Err(e) = super::host_mounts::release(rootfs, before) {
                log::warn!("cleanup: {e}");
            }
        }
        if let Some(cg) = &self.cgroup {
            let _ = cg.kill_all(libc::SIGKILL);
            if let Err(e) = cg.delete() {
                log::warn!("cleanup: delete cgroup: {e}");
            }
        }
        if let Some(dir) = self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

impl Cleanup<'_> {
    pub(super) fn disarm(mut self) {
        self.dir = None;
        self.cgroup = None;
        self.pidfds.clear();
        self.host_mounts = None;
    }
}

/// Drops a pid from the child registry once the library is done with it.
pub(super) struct Released(pub(super) i32);

impl Drop for Released {
    fn drop(&mut self) {
        crate::children::release(self.0);
    }
}
