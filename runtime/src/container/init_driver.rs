//! Launching a container init and serving its requests: the caller's side
//! of the channel (`sync::Msg`) for both create and exec.
//!
//! Runs in the caller. [`launch`] encodes the init configuration into a
//! sealed memfd, spawns the sealed executable of this binary through
//! [`sys::spawn`] (into the cgroup, `CLONE_INTO_CGROUP`), sends the config
//! and the cgroup files stage 1 joins, and then answers the init until it
//! is ready (create) or has exec'd (exec): it writes the new user
//! namespace's id maps, collects stage 1 and records stage 2, finishes the
//! new cgroup and applies its resources, runs the host-side hooks
//! (prestart, createRuntime) through a callback, takes the console and
//! hands a seccomp notify fd to its listener. A failure the init reports,
//! or its death, comes back as an [`Error`].

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use oci_spec::runtime::LinuxResources;

use super::cleanup::{Cleanup, Released};
use super::error::{io_err, sys_err};
use super::{Error, Stdio};
use crate::cgroups::Cgroup;
use crate::init::{self, InitConfig};
use crate::spec;
use crate::state::OciState;
use crate::sync::{Channel, Msg, SetupFailure};
use crate::{hooks, namespaces, sys, timing};

/// Set by a process that launches at most one init (`wren-oci`): see
/// [`one_init_per_process`].
static ONE_INIT: AtomicBool = AtomicBool::new(false);

/// Declare that this process launches at most one init (`wren-oci`: one
/// container or exec per invocation). Its sealed executable is then made
/// for that launch and closed as soon as stage 2 exists, instead of kept
/// for the process's life: closing the detached mount waits for an
/// expedited RCU grace period (~0.1–0.3 ms in a VM), which then passes
/// while stage 2 sets up the container instead of in the exit.
pub fn one_init_per_process() {
    ONE_INIT.store(true, Ordering::Relaxed);
}

/// The sealed executable of this binary, made once per process.
fn init_exe() -> Result<BorrowedFd<'static>, Error> {
    static EXE: OnceLock<OwnedFd> = OnceLock::new();
    if let Some(fd) = EXE.get() {
        return Ok(fd.as_fd());
    }
    let fd = sys::sealed_self_exe().map_err(sys_err("seal /proc/self/exe"))?;
    Ok(EXE.get_or_init(|| fd).as_fd())
}

/// What came back from a launched init.
pub(super) struct Launched {
    pub(super) pid: i32,
    pub(super) pidfd: OwnedFd,
    pub(super) console: Option<OwnedFd>,
    pub(super) chan: Channel,
}

/// What to do when the init asks for its host-side hooks.
pub(super) type OnHooks<'a> = dyn FnMut(i32) -> Result<String, Error> + 'a;

pub(super) struct LaunchArgs<'a> {
    pub(super) id: &'a str,
    pub(super) config: &'a InitConfig,
    pub(super) stdio: &'a Stdio,
    /// The fd that follows the config (exec fifo or the init's pidfd).
    pub(super) extra: BorrowedFd<'a>,
    pub(super) cgroup: Option<&'a Cgroup>,
    pub(super) id_maps: Option<(String, String)>,
    /// For exec: keep serving until the exec happened (channel EOF).
    pub(super) until_exec: bool,
    pub(super) listener: Option<(&'a Path, &'a str, OciState)>,
    /// `process.execCPUAffinity.initial`: set before the cgroup move.
    pub(super) initial_affinity: Option<&'a str>,
    /// What is left to do for `cgroup`.
    pub(super) cgroup_work: CgroupWork<'a>,
}

/// What [`launch`] still has to do for the cgroup the init goes into.
#[derive(Clone, Copy)]
pub(super) enum CgroupWork<'a> {
    /// Exec: the container's cgroup is complete; the process only joins it.
    JoinOnly,
    /// Create: a new cgroup of which only the cgroup2 directory exists
    /// (what clone3 needs). The v1 directories are made while the init
    /// execs; `resources` are applied once stage 1 has gone (stage 1 and 2
    /// would count twice against `pids.max`), while stage 2 mounts, and
    /// stage 2 waits for them before it makes device nodes. All before any
    /// hook, as in runc.
    FinishNew {
        resources: Option<&'a LinuxResources>,
        /// The annotations, for `org.systemd.property.*` unit properties
        /// (systemd driver).
        unit_properties: Option<&'a std::collections::HashMap<String, String>>,
    },
}

fn stdio_fd<'a>(given: &'a Option<OwnedFd>, own: i32, null: &'a OwnedFd) -> BorrowedFd<'a> {
    match given {
        Some(fd) => fd.as_fd(),
        None => sys::fd_or(own, null.as_fd()),
    }
}

pub(super) fn launch(args: LaunchArgs<'_>, on_hooks: &mut OnHooks<'_>) -> Result<Launched, Error> {
    let id = args.id.to_string();
    let encoded = args
        .config
        .encode()
        .map_err(|e| sys_err("encode init config")(io::Error::other(e)))?;
    let memfd = crate::sync::sealed_memfd(c"wren-config", &encoded)
        .map_err(sys_err("memfd for init config"))?;
    let (ours, theirs) = Channel::pair().map_err(sys_err("socketpair"))?;
    let null = sys::open(Path::new("/dev/null"), libc::O_RDWR, 0)
        .map_err(io_err("open", Path::new("/dev/null")))?;
    let n = args.config.preserve_fds;
    let mut fds = vec![
        (stdio_fd(&args.stdio.stdin, 0, &null), 0),
        (stdio_fd(&args.stdio.stdout, 1, &null), 1),
        (stdio_fd(&args.stdio.stderr, 2, &null), 2),
    ];
    for i in 0..n as i32 {
        // SAFETY: the caller promised fds 3..3+n are open for us to pass.
        fds.push((unsafe { BorrowedFd::borrow_raw(3 + i) }, 3 + i));
    }
    let chan_fd = init::channel_fd(n);
    fds.push((theirs.fd(), chan_fd));
    let argv = [CString::new(init::INIT_ARGV0).unwrap_or_default()];
    let envp = [CString::new(format!("{}={chan_fd}", init::INIT_ENV)).unwrap_or_default()];
    let cgroup_fd = match args.cgroup {
        Some(cg) => cg.clone_into_fd()?,
        None => None,
    };
    let mut own_exe = match ONE_INIT.load(Ordering::Relaxed) {
        true => Some(sys::sealed_self_exe().map_err(sys_err("seal /proc/self/exe"))?),
        false => None,
    };
    let exe = match &own_exe {
        Some(fd) => fd.as_fd(),
        None => init_exe()?,
    };
    timing::mark(&id, "runtime.spawn");
    let (stage1, stage1_fd) = crate::children::spawn_recorded(|| {
        sys::spawn(&sys::SpawnArgs {
            exe: sys::Exe::Fd(exe),
            argv: &argv,
            envp: &envp,
            fds: &fds,
            cgroup: cgroup_fd.as_ref().map(|f| f.as_fd()),
        })
    })
    .map_err(sys_err("spawn the container init"))?;
    let _stage1_record = Released(stage1);
    drop(theirs);
    let mut guard = Cleanup {
        host_mounts: None,
        dir: None,
        cgroup: None,
        pidfds: vec![stage1_fd.try_clone().map_err(sys_err("dup pidfd"))?],
    };
    // Before stage 1 joins the container's cgroups (it waits for the
    // config): `initial` applies before the move, as the spec says.
    if let Some(list) = args.initial_affinity {
        crate::process::set_cpu_affinity_of(stage1, list).map_err(|e| Error::Setup {
            id: id.clone(),
            failure: SetupFailure {
                step: "process.execCPUAffinity.initial".into(),
                message: crate::error::chain(&e),
                errno: None,
            },
        })?;
    }
    if let (
        Some(cg),
        CgroupWork::FinishNew {
            resources,
            unit_properties,
        },
    ) = (args.cgroup, args.cgroup_work)
    {
        // systemd driver: the unit is made with stage 1 in it (stage 2
        // is born there); the create's guard stops it on failure.
        let extra =
            crate::cgroups::systemd::annotation_properties(unit_properties.into_iter().flatten());
        cg.start_unit(stage1, resources, extra)?;
        cg.create_v1()?;
    }
    // v1 hierarchies (and v2 when clone3 could not place it): stage 1 joins
    // them itself, first thing, through these files (see
    // `Cgroup::self_join_files` for why not from here).
    let join = match args.cgroup {
        Some(cg) => cg.self_join_files(stage1)?,
        None => Vec::new(),
    };
    let mut send: Vec<BorrowedFd<'_>> = vec![memfd.as_fd(), args.extra];
    if args.config.timing {
        send.extend(timing::sink_fd());
    }
    send.extend(join.iter().map(|f| f.as_fd()));
    ours.send(&Msg::Config, &send)
        .map_err(sys_err("send the init config"))?;
    drop(join);
    drop(memfd);

    let mut child: Option<(i32, OwnedFd)> = None;
    let mut console = None;
    let failed = |failure: SetupFailure| Error::Setup {
        id: id.clone(),
        failure,
    };
    loop {
        let msg = ours.recv().map_err(sys_err("read from the init"))?;
        let Some((msg, mut fds)) = msg else {
            if args.until_exec && child.is_some() {
                break;
            }
            // The init died without a word: report how it ended.
            let status = sys::wait_pidfd(stage1_fd.as_fd(), false)
                .ok()
                .flatten()
                .map_or(-1, |e| e.status());
            let (status, stage) = match &child {
                Some((_, fd)) => match hooks::wait_with_timeout(fd.as_fd(), Some(1000)) {
                    Ok(Some(e)) => (e.status(), "during setup (in stage 2)"),
                    Ok(None) => (
                        status,
                        "during setup: stage 2 closed the channel and was still alive 1 s later",
                    ),
                    Err(_) => (
                        status,
                        "during setup: stage 2's status was collected elsewhere",
                    ),
                },
                None if status == -1 => (
                    status,
                    "during setup, before stage 2 was cloned (stage 1's status was collected elsewhere)",
                ),
                None => (status, "during setup, before stage 2 was cloned"),
            };
            return Err(Error::InitDied { id, status, stage });
        };
        match msg {
            Msg::WriteMaps => {
                let (uid, gid) = args
                    .id_maps
                    .as_ref()
                    .map(|(u, g)| (u.as_str(), g.as_str()))
                    .unwrap_or(("", ""));
                namespaces::write_id_maps(stage1, uid, gid).map_err(|e| Error::Setup {
                    id: id.clone(),
                    failure: SetupFailure {
                        step: "linux.uidMappings / linux.gidMappings".into(),
                        message: crate::error::chain(&e),
                        errno: None,
                    },
                })?;
                ours.send(&Msg::MapsWritten, &[])
                    .map_err(sys_err("write to the init"))?;
            }
            Msg::WriteTimeOffsets => {
                let offsets = args.config.time_offsets.as_deref().unwrap_or("");
                let path = format!("/proc/{stage1}/timens_offsets");
                std::fs::write(&path, offsets).map_err(|e| Error::Setup {
                    id: id.clone(),
                    failure: SetupFailure {
                        step: "linux.timeOffsets".into(),
                        message: format!("write {path}: {e}"),
                        errno: e.raw_os_error(),
                    },
                })?;
                ours.send(&Msg::TimeOffsetsWritten, &[])
                    .map_err(sys_err("write to the init"))?;
            }
            Msg::Child { pid } => {
                let fd = fds.pop().ok_or_else(|| {
                    sys_err("receive the container pidfd")(io::ErrorKind::InvalidData.into())
                })?;
                crate::children::record(pid);
                guard
                    .pidfds
                    .push(fd.try_clone().map_err(sys_err("dup pidfd"))?);
                child = Some((pid, fd));
                // Stage 1 exits right after; collect it (the shim's reaper
                // may have been quicker, which is fine).
                let _ = sys::wait_pidfd(stage1_fd.as_fd(), false);
                if let CgroupWork::FinishNew { resources, .. } = args.cgroup_work {
                    if let (Some(cg), Some(r)) = (args.cgroup, resources) {
                        cg.apply(r)?;
                    }
                    // Stage 2 may have failed a mount meanwhile: then its
                    // report is queued for us, and the next recv tells.
                    let _ = ours.send(&Msg::ResourcesApplied, &[]);
                }
                // Both stages run from their own mappings now; see
                // `one_init_per_process`.
                drop(own_exe.take());
            }
            Msg::RunHooks => {
                let pid = child.as_ref().map_or(0, |c| c.0);
                let state = on_hooks(pid)?;
                ours.send(&Msg::HooksDone { state }, &[])
                    .map_err(sys_err("write to the init"))?;
            }
            Msg::Console => console = fds.pop(),
            Msg::SeccompListener => {
                if let (Some(fd), Some((path, meta, st))) = (fds.pop(), &args.listener) {
                    let pid = child.as_ref().map_or(0, |c| c.0);
                    seccomp_listener_send(path, meta, st, pid, fd.as_fd())?;
                }
            }
            Msg::Ready => {
                timing::mark(&id, "runtime.ready");
                if !args.until_exec {
                    break;
                }
            }
            Msg::Failed(failure) => return Err(failed(failure)),
            other => {
                return Err(sys_err("unexpected message from the init")(
                    io::Error::other(format!("{other:?}")),
                ));
            }
        }
    }
    let (pid, pidfd) = child.ok_or_else(|| Error::InitDied {
        id: id.clone(),
        status: -1,
        stage: "before reporting its pid 1 (stage 2)",
    })?;
    guard.disarm();
    Ok(Launched {
        pid,
        pidfd,
        console,
        chan: ours,
    })
}

/// Send a seccomp notify fd to the agent at `listenerPath` with the
/// container process state, as runtime-spec's `ContainerProcessState`.
fn seccomp_listener_send(
    path: &Path,
    metadata: &str,
    st: &OciState,
    pid: i32,
    fd: BorrowedFd<'_>,
) -> Result<(), Error> {
    let mut st = st.clone();
    st.pid = pid;
    let msg = serde_json::json!({
        "ociVersion": spec::OCI_VERSION,
        "fds": ["seccompFd"],
        "pid": pid,
        "metadata": metadata,
        "state": st,
    });
    let sock = std::os::unix::net::UnixStream::connect(path)
        .map_err(io_err("connect seccomp listener", path))?;
    crate::sync::send_with_fds(sock.as_raw_fd(), msg.to_string().as_bytes(), &[fd])
        .map_err(io_err("send to seccomp listener", path))
}
