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

use oci_spec::runtime::{Hook, Process};

use super::{fail, InitConfig, Never};
use crate::procfs::Procfs;
use crate::seccomp::PreparedFilter;
use crate::sync::{Channel, Msg, SetupFailure};
use crate::{hooks, lsm, process, sys, timing};

/// Process attributes, seccomp, user and capabilities, then the wait for
/// start (create only) and execve.
///
/// What runs after the filter is loaded must not need a syscall a profile
/// may deny: with no_new_privs (the filter is loaded last) the only one is
/// `execve`. Every fd is marked close-on-exec here, before any filter, and
/// everything the execve needs is built before the filter is attached.
/// Without no_new_privs the filter must be loaded while CAP_SYS_ADMIN is
/// still held, so the steps after it are the ones runc also makes there.
pub(super) fn finish(
    chan: &Channel,
    cfg: &InitConfig,
    procfs: Option<Procfs>,
    start: Option<(OwnedFd, &Vec<Hook>, String)>,
) -> Result<Never, SetupFailure> {
    let p = &cfg.process;
    let reaper = matches!(&cfg.setup, super::Setup::Create(c) if c.reaper);
    mark_fds_for_exec(cfg.preserve_fds).map_err(fail("mark fds close-on-exec"))?;
    if cfg.new_keyring {
        crate::keyring::join_new_session(&cfg.id).map_err(fail("join a session keyring"))?;
    }
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
    let filter = cfg
        .seccomp
        .as_ref()
        .map(|s| s.prepare())
        .transpose()
        .map_err(fail("linux.seccomp"))?;
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
        load_seccomp(chan, filter.as_ref())?;
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
        // The bounding set was dropped above.
        caps.apply_after_bounding()
            .map_err(fail("process.capabilities"))?;
    }
    process::set_umask(p.user());
    process::enter_cwd(p.cwd()).map_err(fail("process.cwd"))?;
    let args = p.args().clone().unwrap_or_default();
    let mut env = container_env(p);
    if !env.iter().any(|e| e.starts_with("HOME=") && e.len() > 5) {
        env.retain(|e| e != "HOME=");
        env.push(format!("HOME={}", home_of(p.user().uid())));
    }
    let exe = process::find_executable(&args[0], &env).map_err(fail("process.args"))?;
    let execve = Execve::new(&exe, &args, &env);

    // A filter with a notify listener is loaded before "ready" even with
    // no_new_privs (as runc does): the caller must still be listening to
    // hand the listener to the agent, and `create` is gone by `start`.
    let notify = cfg.seccomp.as_ref().is_some_and(|s| s.uses_notify());
    if nnp && notify {
        load_seccomp(chan, filter.as_ref())?;
    }
    // The late filter leaves the start's critical path when it cannot
    // matter where it is loaded: when it allows every syscall the init
    // makes from "ready" to execve whatever their arguments, no
    // startContainer hook or reaper runs in between, it is loaded right
    // after "ready", while the caller finishes create and `start` is on its
    // way, instead of after the release.
    let early = nnp
        && !notify
        && !reaper
        && start.as_ref().is_some_and(|(_, hooks, _)| hooks.is_empty())
        && filter
            .as_ref()
            .is_some_and(|f| f.always_allows(AFTER_READY_SYSCALLS));
    timing::init_mark("init.ready");
    chan.send(&Msg::Ready, &[]).map_err(fail("report ready"))?;
    let Some((fifo, hooks_list, state)) = start else {
        // An exec: the caller reads the channel until it closes at execve.
        return Err(after_ready(&execve, nnp && !notify, filter.as_ref()));
    };
    // A failure is reported once `start` reads the fifo, as after the
    // release.
    let early_failure = match filter.as_ref().filter(|_| early).map(|f| f.load()) {
        Some(Err(e)) => Some(fail("linux.seccomp")(e)),
        Some(Ok(_)) => {
            timing::init_mark("init.seccomp");
            None
        }
        None => None,
    };
    let late = nnp && !notify && !early;
    // Block until `start` opens the fifo for reading. The fd stays open
    // (close-on-exec): `start` reads until it closes, so a failure from
    // here to execve reaches `start` as its error, not a silent exit.
    let mut w =
        File::from(sys::reopen(fifo.as_fd(), libc::O_WRONLY).map_err(fail("open the exec fifo"))?);
    drop(fifo);
    w.write_all(b"0").map_err(fail("write the exec fifo"))?;
    timing::init_mark("init.released");
    // Only with hooks to give it to: parsing an empty state would fail, and
    // the error's position lookup costs a CPU feature probe (memchr).
    let hooks_state = if hooks_list.is_empty() {
        String::new()
    } else {
        created_state(&state)
    };
    let failure = match early_failure {
        Some(f) => f,
        None => match hooks::run_all_with_env(
            "startContainer",
            hooks_list,
            hooks_state.as_bytes(),
            &env,
        ) {
            Err(e) => fail("run hooks in the container")(e),
            Ok(()) if reaper => match super::reaper::fork_process() {
                Ok(super::reaper::Side::Child) => after_ready(&execve, late, filter.as_ref()),
                Ok(super::reaper::Side::Parent(child)) => {
                    drop(w);
                    super::reaper::reap(child)
                }
                Err(f) => f,
            },
            Ok(()) => after_ready(&execve, late, filter.as_ref()),
        },
    };
    if let Ok(report) = serde_json::to_vec(&failure) {
        let _ = w.write_all(&report);
    }
    Err(failure)
}

/// Every syscall the init of a create may make between "ready" and
/// `execve` when no hook or reaper runs: reopening, writing and closing the
/// exec fifo, memory for the hooks' state, the timing marks, signal reset,
/// execve, and an exit on failure. A filter that allows all of them
/// unconditionally may be loaded right after "ready" ([`finish`]).
const AFTER_READY_SYSCALLS: &[libc::c_long] = &[
    libc::SYS_openat,
    libc::SYS_fcntl,
    libc::SYS_close,
    libc::SYS_write,
    libc::SYS_brk,
    libc::SYS_mmap,
    libc::SYS_munmap,
    libc::SYS_mremap,
    libc::SYS_mprotect,
    libc::SYS_madvise,
    libc::SYS_futex,
    libc::SYS_getpid,
    libc::SYS_clock_gettime,
    libc::SYS_rt_sigaction,
    libc::SYS_rt_sigprocmask,
    libc::SYS_execve,
    libc::SYS_exit,
    libc::SYS_exit_group,
];

/// The last steps: signals as the container expects them, the filter (when
/// it is loaded last) and execve. Returns only on failure.
fn after_ready(
    execve: &Execve,
    load_filter: bool,
    filter: Option<&PreparedFilter>,
) -> SetupFailure {
    reset_signals();
    if load_filter {
        if let Some(filter) = filter {
            match filter.load() {
                // A listener is loaded earlier, never here.
                Ok(_) => timing::init_mark("init.seccomp"),
                Err(e) => return fail("linux.seccomp")(e),
            }
        }
    }
    timing::init_flush();
    execve.run()
}

fn load_seccomp(chan: &Channel, filter: Option<&PreparedFilter>) -> Result<(), SetupFailure> {
    let Some(filter) = filter else {
        return Ok(());
    };
    let listener = filter.load().map_err(fail("linux.seccomp"))?;
    timing::init_mark("init.seccomp");
    if let Some(listener) = listener {
        chan.send(&Msg::SeccompListener, &[listener.as_fd()])
            .map_err(fail("send the seccomp listener"))?;
    }
    Ok(())
}

/// Preserved fds (3..3+n) survive execve; every other fd above stdio,
/// open now or opened later by this process (all with O_CLOEXEC), closes
/// at execve: the channel too, which tells the caller the exec happened.
/// Done before any filter is loaded, so no profile needs `close_range`.
fn mark_fds_for_exec(preserve_fds: u32) -> io::Result<()> {
    for fd in 3..3 + preserve_fds as i32 {
        // SAFETY: F_SETFD on an fd the caller passed us (or EBADF).
        unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
    }
    match sys::close_range(3 + preserve_fds, true) {
        Ok(()) => Ok(()),
        // Kernels before 5.11 lack CLOSE_RANGE_CLOEXEC: walk the table.
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOSYS | libc::EINVAL)) => {
            for entry in std::fs::read_dir("/proc/self/fd")? {
                let fd: i32 = match entry?.file_name().to_str().and_then(|n| n.parse().ok()) {
                    Some(fd) => fd,
                    None => continue,
                };
                if fd >= 3 + preserve_fds as i32 {
                    // SAFETY: F_SETFD with an integer flag; an fd the walk's
                    // own directory handle used is already closed (EBADF).
                    unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
                }
            }
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// Dispositions back to default for everything (Rust ignores SIGPIPE),
/// nothing blocked. Every profile that lets a program start allows these
/// (libc's own start-up makes the same calls).
fn reset_signals() {
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
}

/// The process's environment with each name once, at its last value
/// (runc's rule: `exec --env K=V` and a later duplicate in the spec win
/// over an earlier one, and `getenv` returns the first match).
pub(super) fn container_env(p: &Process) -> Vec<String> {
    let env = p.env().as_deref().unwrap_or(&[]);
    let name = |e: &str| e.split_once('=').map_or(e, |(k, _)| k).to_string();
    let mut seen = std::collections::HashSet::new();
    let mut out: Vec<String> = env
        .iter()
        .rev()
        .filter(|e| seen.insert(name(e)))
        .cloned()
        .collect();
    out.reverse();
    out
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

/// The execve call with its C strings built in advance, so that making it
/// allocates nothing.
struct Execve {
    path: CString,
    display: String,
    _strings: Vec<CString>,
    argv: Vec<*const libc::c_char>,
    envp: Vec<*const libc::c_char>,
}

impl Execve {
    fn new(exe: &Path, args: &[String], env: &[String]) -> Execve {
        let to_c = |s: &[u8]| CString::new(s).unwrap_or_default();
        let argv: Vec<CString> = args.iter().map(|a| to_c(a.as_bytes())).collect();
        let envp: Vec<CString> = env.iter().map(|e| to_c(e.as_bytes())).collect();
        let ptrs = |v: &[CString]| {
            let mut p: Vec<*const libc::c_char> = v.iter().map(|a| a.as_ptr()).collect();
            p.push(std::ptr::null());
            p
        };
        let (argv_p, envp_p) = (ptrs(&argv), ptrs(&envp));
        let mut strings = argv;
        strings.extend(envp);
        Execve {
            path: to_c(exe.as_os_str().as_bytes()),
            display: exe.display().to_string(),
            _strings: strings,
            argv: argv_p,
            envp: envp_p,
        }
    }

    /// Returns only on failure.
    fn run(&self) -> SetupFailure {
        // SAFETY: argv/envp are NUL-terminated arrays of pointers into
        // `_strings`, which lives as long as `self` (moving a CString into
        // the Vec does not move its heap buffer).
        unsafe { libc::execve(self.path.as_ptr(), self.argv.as_ptr(), self.envp.as_ptr()) };
        fail(format!("exec {}", self.display))(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_env(env: &[&str]) -> Process {
        let mut p = Process::default();
        p.set_env(Some(env.iter().map(|s| s.to_string()).collect()));
        p
    }

    #[test]
    fn the_last_value_of_a_name_wins_in_the_place_it_was_given() {
        let p = with_env(&["A=1", "PATH=/bin", "B=2", "A=3", "C=", "B=4"]);
        assert_eq!(container_env(&p), ["PATH=/bin", "A=3", "C=", "B=4"]);
    }
}
