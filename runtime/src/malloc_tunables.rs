//! glibc malloc tunables for wren's long-lived daemons (the shim daemon and
//! wrend), whose figure of merit is idle memory.
//!
//! glibc's per-thread cache (tcache) keeps up to seven freed chunks of every
//! small size, out of reach of `malloc_trim`. In an idle process those
//! chunks pin scattered heap pages: measured on release builds, an idle
//! shim's heap RSS went from 135 to 77 KiB without it (5 idle containers),
//! and wrend's anonymous memory with 200 idle containers from 744 to
//! 644 KiB. Neither daemon allocates on a hot path where the cache would
//! pay for itself. glibc reads tunables only when a program starts, from
//! `GLIBC_TUNABLES`, so the daemon must be exec'd with them: the shim's
//! `start` spawns its daemon with [`daemon_environment`], wrend re-executes
//! itself once ([`reexec_tuned`]). The daemon then calls
//! [`restore_environment`] so that nothing it spawns (containers' hooks,
//! loggers, CNI plugins, criu) inherits them.

use std::ffi::{OsStr, OsString};

/// The tunables a daemon runs with.
/// One arena, too: a short-lived thread would otherwise make its own (a
/// 64 MiB reservation, a page or two resident for good).
pub const DAEMON_TUNABLES: &str = "glibc.malloc.tcache_count=0:glibc.malloc.arena_max=1";
/// The caller's own GLIBC_TUNABLES, for the daemon to put back.
const CALLER_TUNABLES_ENV: &str = "_WREN_CALLER_TUNABLES";
/// Set in a daemon exec'd with [`DAEMON_TUNABLES`] (so wrend re-executes
/// itself at most once).
const TUNED_ENV: &str = "_WREN_TUNED";

/// The environment variables to give a daemon being spawned: ours first,
/// then the caller's own tunables (`caller`, the current GLIBC_TUNABLES),
/// so that a setting of theirs wins. None for a build on another libc
/// (musl's malloc keeps no per-thread cache and returns freed memory).
pub fn daemon_environment(caller: Option<&OsStr>) -> Vec<(&'static str, OsString)> {
    if !cfg!(target_env = "gnu") {
        return Vec::new();
    }
    let mut tunables = OsString::from(DAEMON_TUNABLES);
    let mut env = vec![(TUNED_ENV, OsString::from("1"))];
    if let Some(c) = caller.filter(|c| !c.is_empty()) {
        tunables.push(":");
        tunables.push(c);
        env.push((CALLER_TUNABLES_ENV, c.to_os_string()));
    }
    env.push(("GLIBC_TUNABLES", tunables));
    env
}

/// In a daemon exec'd with [`daemon_environment`]: puts the caller's
/// GLIBC_TUNABLES back (or removes ours) and drops the markers. glibc has
/// read the tunables by now. Call first thing, before any thread exists.
pub fn restore_environment() {
    if std::env::var_os(TUNED_ENV).is_none() {
        return;
    }
    std::env::remove_var(TUNED_ENV);
    match std::env::var_os(CALLER_TUNABLES_ENV) {
        Some(c) => {
            std::env::set_var("GLIBC_TUNABLES", c);
            std::env::remove_var(CALLER_TUNABLES_ENV);
        }
        None => std::env::remove_var("GLIBC_TUNABLES"),
    }
}

/// Re-executes this program (same arguments) with [`daemon_environment`],
/// unless it already runs with it; then, or if the exec fails (the error is
/// returned and the caller goes on untuned), restores the environment.
/// Only for glibc builds; a no-op elsewhere. Call first thing in `main`.
pub fn reexec_tuned() -> Option<std::io::Error> {
    if !cfg!(target_env = "gnu") || std::env::var_os(TUNED_ENV).is_some() {
        restore_environment();
        return None;
    }
    use std::os::unix::process::CommandExt;
    let mut args = std::env::args_os();
    // The binary's own path, so that the process keeps its name (`comm` is
    // taken from the path exec'd); /proc/self/exe if that path is gone.
    let exe = std::env::current_exe()
        .ok()
        .filter(|p| p.exists())
        .unwrap_or_else(|| "/proc/self/exe".into());
    let mut cmd = std::process::Command::new(exe);
    if let Some(argv0) = args.next() {
        cmd.arg0(argv0);
    }
    cmd.args(args);
    for (k, v) in daemon_environment(std::env::var_os("GLIBC_TUNABLES").as_deref()) {
        cmd.env(k, v);
    }
    // exec only returns on failure.
    Some(cmd.exec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_daemon_gets_our_tunables_before_the_callers() {
        let env = daemon_environment(None);
        assert_eq!(
            env,
            vec![
                (TUNED_ENV, "1".into()),
                ("GLIBC_TUNABLES", DAEMON_TUNABLES.into())
            ]
        );
        let env = daemon_environment(Some(OsStr::new("glibc.malloc.arena_max=2")));
        assert_eq!(
            env,
            vec![
                (TUNED_ENV, "1".into()),
                (CALLER_TUNABLES_ENV, "glibc.malloc.arena_max=2".into()),
                (
                    "GLIBC_TUNABLES",
                    format!("{DAEMON_TUNABLES}:glibc.malloc.arena_max=2").into()
                ),
            ]
        );
        assert_eq!(daemon_environment(Some(OsStr::new(""))).len(), 2);
    }
}
