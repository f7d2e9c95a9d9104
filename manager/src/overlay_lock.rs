//! One party at a time mounts an image container's overlay (its layers,
//! `overlay/upper` and `overlay/work`): two overlay mounts sharing an upper
//! and a work directory give undefined results (the kernel only warns).
//! wrend holds this lock while the shim mounts the overlay for a new task
//! (and refuses the start if it is taken); `wren cp` holds it while it
//! looks at the container and, for a stopped one, mounts the same
//! directories for the copy. An flock on `RECORD_DIR/overlay.lock`: it
//! goes with the process that holds it, so a killed `wren cp` leaves no
//! stale lock.
//!
//! Runs in wrend and in wren.

use std::fs::File;
use std::io;
use std::path::Path;

use nix::fcntl::{Flock, FlockArg};

/// The lock file in a container's record directory.
pub const FILE: &str = "overlay.lock";

/// The held lock; dropping it releases it.
pub struct OverlayLock {
    _held: Flock<File>,
}

fn open(record_dir: &Path) -> io::Result<File> {
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(record_dir.join(FILE))
}

/// Waits for the lock (`wren cp`).
pub fn lock(record_dir: &Path) -> io::Result<OverlayLock> {
    Flock::lock(open(record_dir)?, FlockArg::LockExclusive)
        .map(|l| OverlayLock { _held: l })
        .map_err(|(_, e)| io::Error::from(e))
}

/// Takes the lock if it is free (wrend, whose loop must not wait):
/// `None` while another process holds it.
pub fn try_lock(record_dir: &Path) -> io::Result<Option<OverlayLock>> {
    match Flock::lock(open(record_dir)?, FlockArg::LockExclusiveNonblock) {
        Ok(l) => Ok(Some(OverlayLock { _held: l })),
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(None),
        Err((_, e)) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_holder_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let held = lock(dir.path()).unwrap();
        // flock locks belong to the open file: a second open contends.
        assert!(try_lock(dir.path()).unwrap().is_none());
        drop(held);
        let again = try_lock(dir.path()).unwrap();
        assert!(again.is_some());
    }
}
