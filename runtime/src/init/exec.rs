//! The end of stage 2, for a create and an exec alike: LSM labels,
//! scheduler and I/O priority, exec CPU affinity, no_new_privs, seccomp,
//! the bounding set, user, capabilities, umask and cwd; then "ready", the
//! wait for `start` on the exec fifo and startContainer hooks (create
//! only), and the execve of the container process with clean signals and
//! no stray fds.
//!
//! Runs in the container's process (stage 2 of the init), inside the
//! container, until it becomes the container's program.

use std::ffi::CString;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use oci_spec::runtime::Hook;

use super::{fail, InitConfig, Never};
use crate::procfs::Procfs;
use crate::sync::{Channel, Msg, SetupFailure};
use crate::{hooks, lsm, process, sys, timing};

/// Process attributes, seccomp, user and capabilities, then the wait for
/// start (create only) and execve.
pub(super) fn finish(
    chan: &Channel,
    cfg: &InitConfig,
    procfs: Option<Procfs>,
    start: Option<(OwnedFd, &Vec<Hook>, String)>,
) -> Result<Never, SetupFailure> {
    let p = &cfg.process;
    if let Some(procfs) = &procfs {
        if let Some(profile) = p.apparmor_profile().as_deref().filter(|s| !s.is_empty()) {
            lsm::set_apparmor(procfs, profile).map_err(fail("process.apparmorProfile"))?;
        }
        if let Some(label) = p.selinux_label().as_deref().filter(|s| !s.is_empty()) {
            lsm::set_selinux(procfs, label).map_err(fail("process.selinuxLabel"))?;
        }
    }
    drop(procfs);
    if let Some(s) = p.scheduler() {
        process::set_scheduler(s).map_err(fail("process.scheduler"))?;
    }
    if let Some(io) = p.io_priority() {
        process::set_io_priority(io).map_err(fail("process.ioPriority"))?;
    }
    // execCPUAffinity is for exec only (the spec excludes the init):
    // `initial` was set by the caller before the cgroup move; `final`,
    // when given, replaces whatever the move left.
    if start.is_none() {
        if let Some(list) = p
            .exec_cpu_affinity()
            .as_ref()
            .and_then(|a| a.cpu_affinity_final().clone())
            .filter(|l| !l.is_empty())
        {
            process::set_cpu_affinity(&list).map_err(fail("process.execCPUAffinity.final"))?;
        }
    }
    let nnp = p.no_new_privileges().unwrap_or(false);
    if nnp {
        // SAFETY: integer prctl.
        if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
            return Err(fail("prctl(PR_SET_NO_NEW_PRIVS)")(
                io::Error::last_os_error(),
            ));
        }
    }
    // Without no_new_privs, loading a filter needs CAP_SYS_ADMIN: do it
    // before the capabilities are dropped.
    if !nnp {
        load_seccomp(chan, cfg)?;
    }
    if let Some(caps) = &cfg.caps {
        // Needs CAP_SETPCAP, so before the uid changes.
        caps.drop_bounding()
            .map_err(fail("process.capabilities.bounding"))?;
        crate::capabilities::keep_caps_across_setuid()
            .map_err(fail("keep capabilities across setuid"))?;
    }
    process::set_user(p.user()).map_err(fail("process.user"))?;
    if let Some(caps) = &cfg.caps {
        caps.apply().map_err(fail("process.capabilities"))?;
    }
    process::set_umask(p.user());
    process::enter_cwd(p.cwd()).map_err(fail("process.cwd"))?;
    let args = p.args().clone().unwrap_or_default();
    let mut env = p.env().clone().unwrap_or_default();
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", home_of(p.user().uid())));
    }
    let exe = process::find_executable(&args[0], &env).map_err(fail("process.args"))?;

    // A filter with a notify listener is loaded before "ready" even with
    // no_new_privs (as runc does): the caller must still be listening to
    // hand the listener to the agent, and `create` is gone by `start`.
    let notify = cfg.seccomp.as_ref().is_some_and(|s| s.uses_notify());
    if nnp && notify {
        load_seccomp(chan, cfg)?;
    }
    timing::init_mark("init.ready");
    if let Some((fifo, hooks_list, state)) = start {
        chan.send(&Msg::Ready, &[]).map_err(fail("report ready"))?;
        // Block until `start` opens the fifo for reading.
        let mut w = File::from(
            sys::reopen(fifo.as_fd(), libc::O_WRONLY).map_err(fail("open the exec fifo"))?,
        );
        w.write_all(b"0").map_err(fail("write the exec fifo"))?;
        drop(w);
        timing::init_mark("init.released");
        drop(fifo);
        hooks::run_all(
            "startContainer",
            hooks_list,
            created_state(&state).as_bytes(),
        )
        .map_err(fail("run hooks in the container"))?;
    } else {
        chan.send(&Msg::Ready, &[]).map_err(fail("report ready"))?;
    }
    if nnp && !notify {
        load_seccomp(chan, cfg)?;
    }
    Err(exec(cfg, &exe, &args, &env))
}

fn load_seccomp(chan: &Channel, cfg: &InitConfig) -> Result<(), SetupFailure> {
    let Some(prog) = &cfg.seccomp else {
        return Ok(());
    };
    let listener = prog.load().map_err(fail("linux.seccomp"))?;
    timing::init_mark("init.seccomp");
    if let Some(listener) = listener {
        chan.send(&Msg::SeccompListener, &[listener.as_fd()])
            .map_err(fail("send the seccomp listener"))?;
    }
    Ok(())
}

/// The state for startContainer hooks: the one prestart hooks saw, with
/// status "created" (runc's), since `start` has been called by now.
fn created_state(state: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(state) {
        Ok(mut v) => {
            v["status"] = serde_json::Value::from("created");
            v.to_string()
        }
        Err(_) => state.to_string(),
    }
}

/// The home directory of `uid` from the container's /etc/passwd, or "/".
fn home_of(uid: u32) -> String {
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.len() >= 6 && f[2].parse() == Ok(uid)).then(|| f[5].to_string())
            })
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "/".into())
}

/// Reset signals, close every fd the container must not see, and execve.
/// Returns only on failure.
fn exec(cfg: &InitConfig, exe: &Path, args: &[String], env: &[String]) -> SetupFailure {
    let to_c = |s: &[u8]| CString::new(s).unwrap_or_default();
    let argv: Vec<CString> = args.iter().map(|a| to_c(a.as_bytes())).collect();
    let envp: Vec<CString> = env.iter().map(|e| to_c(e.as_bytes())).collect();
    let mut argv_p: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_p.push(std::ptr::null());
    let mut envp_p: Vec<*const libc::c_char> = envp.iter().map(|a| a.as_ptr()).collect();
    envp_p.push(std::ptr::null());
    let path = to_c(exe.as_os_str().as_bytes());

    // Dispositions: default for everything (Rust ignores SIGPIPE), nothing
    // blocked.
    for sig in 1..libc::SIGRTMAX() {
        if sig != libc::SIGKILL && sig != libc::SIGSTOP {
            // SAFETY: resetting a signal to its default disposition.
            unsafe { libc::signal(sig, libc::SIG_DFL) };
        }
    }
    // SAFETY: an empty set and a valid pointer.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
    // Preserved fds survive; every other fd above stdio closes at execve
    // (the channel too, which tells the caller the exec happened).
    for fd in 3..3 + cfg.preserve_fds as i32 {
        // SAFETY: F_SETFD on an fd the caller passed us (or EBADF).
        unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
    }
    if let Err(e) = sys::close_range(3 + cfg.preserve_fds, true) {
        return fail("close_range")(e);
    }
    timing::init_flush();
    // SAFETY: argv/envp are NUL-terminated arrays of live C strings.
    unsafe { libc::execve(path.as_ptr(), argv_p.as_ptr(), envp_p.as_ptr()) };
    fail(format!("exec {}", exe.display()))(io::Error::last_os_error())
}
