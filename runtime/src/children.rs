//! Which child processes of the caller belong to this library.
//!
//! The library starts processes that are children of the caller: the init's
//! stage 1, hooks, and (through CLONE_PARENT) the container's init and exec
//! processes. A caller that reaps orphans with `waitpid(-1)`-style loops (the
//! shim, a subreaper) must not take their exit status. Every such pid is
//! recorded here from the moment it exists until the library has reaped it
//! or the caller has taken over its pidfd and called [`release`].
//!
//! Runs in the caller, any thread.

use std::collections::BTreeSet;
use std::sync::{Mutex, MutexGuard};

static OWNED: Mutex<BTreeSet<i32>> = Mutex::new(BTreeSet::new());

fn owned() -> MutexGuard<'static, BTreeSet<i32>> {
    OWNED.lock().unwrap_or_else(|e| e.into_inner())
}

/// Is `pid` a child the library (or its caller, until [`release`]) will
/// reap through a pidfd? An orphan reaper must leave it alone. Takes the
/// same lock the library holds from clone until the pid is recorded.
pub fn is_runtime_child(pid: i32) -> bool {
    owned().contains(&pid)
}

/// The caller has taken over `pid` (it waits on the pidfd itself).
pub fn release(pid: i32) {
    owned().remove(&pid);
}

/// Run `spawn` with the registry locked and record the pid it returns, so
/// no reaper can look between the clone and the record.
pub(crate) fn spawn_recorded<T>(
    spawn: impl FnOnce() -> std::io::Result<(i32, T)>,
) -> std::io::Result<(i32, T)> {
    let mut g = owned();
    let (pid, rest) = spawn()?;
    g.insert(pid);
    Ok((pid, rest))
}

/// Record a pid the library learnt of (the container process).
pub(crate) fn record(pid: i32) {
    owned().insert(pid);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_until_released() {
        let (pid, ()) = spawn_recorded(|| Ok((999_999, ()))).unwrap();
        assert!(is_runtime_child(pid));
        release(pid);
        assert!(!is_runtime_child(pid));
        record(999_998);
        assert!(is_runtime_child(999_998));
        release(999_998);
    }
}
