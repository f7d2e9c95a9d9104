//! The public lifecycle API: create, start, state, kill, exec, pause,
//! resume, update, stats, delete — the caller's side of the process model.
//!
//! Runs in the caller (the shim daemon, any thread, or `wren-oci`). It
//! validates everything it can before creating anything, starts the init
//! through [`sys::spawn`] (a clone3 + execveat of the sealed binary), serves
//! the init's requests on the channel (id maps, cgroup resources and
//! host-side hooks), and undoes whatever it made when a step fails.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use oci_spec::runtime::{LinuxNamespaceType, LinuxResources, Process, Spec};

use crate::capabilities;
use crate::cgroups::{self, Cgroup, CgroupError, CgroupRoot};
use crate::error::ErrorKind;
use crate::init::{self, CreateSetup, InitConfig, Setup};
use crate::namespaces;
use crate::seccomp::{self, SeccompProgram};
use crate::spec::{self, SpecError};
use crate::state::{self, OciState, State, Status};
use crate::sync::{Channel, Msg, SetupFailure};
use crate::{console, hooks, sys, timing};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid container id {0:?}")]
    InvalidId(String),
    #[error("container {0} already exists")]
    AlreadyExists(String),
    #[error("container {0} does not exist")]
    NotFound(String),
    #[error("container {id} is {status}, {action} needs it {wanted}")]
    WrongState {
        id: String,
        status: Status,
        action: &'static str,
        wanted: &'static str,
    },
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error("linux.seccomp")]
    Seccomp(#[from] seccomp::SeccompError),
    #[error("process.capabilities")]
    Capabilities(#[from] capabilities::CapsError),
    #[error("cgroup")]
    Cgroup(#[from] CgroupError),
    #[error(transparent)]
    Hook(#[from] hooks::HookError),
    #[error("container {id}: {failure}")]
    Setup { id: String, failure: SetupFailure },
    /// `status` is -1 when it is unknown (collected by someone else, e.g. a
    /// subreaper's reaper); `stage` says how far the init had got.
    #[error("container {id}: the init process exited with status {status} {stage}")]
    InitDied {
        id: String,
        status: i32,
        stage: &'static str,
    },
    #[error("{what} {path}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{what}")]
    Sys {
        what: &'static str,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Console(#[from] console::ConsoleError),
    #[error("process.terminal is set but no console socket was given")]
    NoConsoleSocket,
}

impl Error {
    /// The class of this failure (the shim turns it into a ttrpc code).
    pub fn kind(&self) -> ErrorKind {
        use cgroups::CgroupError as C;
        use seccomp::SeccompError as S;
        match self {
            Self::InvalidId(_) | Self::NoConsoleSocket => ErrorKind::InvalidArgument,
            Self::AlreadyExists(_) => ErrorKind::AlreadyExists,
            Self::NotFound(_) => ErrorKind::NotFound,
            Self::WrongState { .. } => ErrorKind::FailedPrecondition,
            Self::Spec(SpecError::Unsupported { .. }) => ErrorKind::Unsupported,
            Self::Spec(_) | Self::Capabilities(_) => ErrorKind::InvalidArgument,
            Self::Seccomp(
                S::UnknownName { .. }
                | S::ParseProfile { .. }
                | S::ArgIndex { .. }
                | S::ErrnoRange { .. }
                | S::NotifyRefused { .. },
            ) => ErrorKind::InvalidArgument,
            Self::Seccomp(S::ActionUnsupported { .. } | S::FlagUnsupported { .. }) => {
                ErrorKind::Unsupported
            }
            Self::Cgroup(C::InvalidPath { .. } | C::Invalid { .. }) => ErrorKind::InvalidArgument,
            Self::Cgroup(C::ControllerMissing { .. }) => ErrorKind::Unsupported,
            _ => ErrorKind::Internal,
        }
    }
}

fn sys_err(what: &'static str) -> impl FnOnce(io::Error) -> Error {
    move |source| Error::Sys { what, source }
}

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> Error + 'a {
    move |source| Error::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// Stdio for a container process; `None` inherits the caller's own fd.
#[derive(Debug, Default)]
pub struct Stdio {
    pub stdin: Option<OwnedFd>,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
}

/// Where the pty master goes when `process.terminal` is set.
#[derive(Debug, Clone, Default)]
pub enum ConsoleMode {
    /// Keep it: [`Container::take_console`] / [`ExecProcess::console`].
    #[default]
    Return,
    /// Send it down a unix socket (runc's `--console-socket`).
    Socket(PathBuf),
}

#[derive(Debug)]
pub struct CreateOptions {
    pub id: String,
    pub bundle: PathBuf,
    /// Directory holding one subdirectory of state per container.
    pub state_root: PathBuf,
    pub stdio: Stdio,
    pub console: ConsoleMode,
    /// Pass the caller's fds 3..3+n to the container process.
    pub preserve_fds: u32,
    /// MS_MOVE + chroot instead of pivot_root (rootfs on ramfs).
    pub no_pivot: bool,
    pub pid_file: Option<PathBuf>,
}

#[derive(Debug)]
pub struct ExecOptions {
    pub process: Process,
    pub stdio: Stdio,
    pub console: ConsoleMode,
    pub preserve_fds: u32,
    pub pid_file: Option<PathBuf>,
}

/// A process started in a running container.
#[derive(Debug)]
pub struct ExecProcess {
    pub pid: i32,
    pub pidfd: OwnedFd,
    pub console: Option<OwnedFd>,
}

/// A container, created or loaded from its state directory.
#[derive(Debug)]
pub struct Container {
    state: State,
    dir: PathBuf,
    pidfd: Option<OwnedFd>,
    console: Option<OwnedFd>,
    seccomp: Option<SeccompProgram>,
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

/// Check a container id: what runc accepts, so it is a safe path component.
pub fn validate_id(id: &str) -> Result<(), Error> {
    let ok = !id.is_empty()
        && id.len() <= 1024
        && id != "."
        && id != ".."
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_+-.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidId(id.into()))
    }
}

/// Undoes a half-made container unless disarmed.
struct Cleanup<'a> {
    dir: Option<&'a Path>,
    cgroup: Option<Cgroup>,
    pidfds: Vec<OwnedFd>,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        for fd in &self.pidfds {
            let _ = sys::pidfd_send_signal(fd.as_fd(), libc::SIGKILL);
            let _ = hooks::wait_with_timeout(fd.as_fd(), Some(5000));
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
    fn disarm(mut self) {
        self.dir = None;
        self.cgroup = None;
        self.pidfds.clear();
    }
}

/// Drops a pid from the child registry once the library is done with it.
struct Released(i32);

impl Drop for Released {
    fn drop(&mut self) {
        crate::children::release(self.0);
    }
}

/// What came back from a launched init.
struct Launched {
    pid: i32,
    pidfd: OwnedFd,
    console: Option<OwnedFd>,
    chan: Channel,
}

/// What to do when the init asks for its host-side hooks.
type OnHooks<'a> = dyn FnMut(i32) -> Result<String, Error> + 'a;

struct LaunchArgs<'a> {
    id: &'a str,
    config: &'a InitConfig,
    stdio: &'a Stdio,
    /// The fd that follows the config (exec fifo or the init's pidfd).
    extra: BorrowedFd<'a>,
    cgroup: Option<&'a Cgroup>,
    id_maps: Option<(String, String)>,
    /// For exec: keep serving until the exec happened (channel EOF).
    until_exec: bool,
    listener: Option<(&'a Path, &'a str, OciState)>,
    /// `process.execCPUAffinity.initial`: set before the cgroup move.
    initial_affinity: Option<&'a str>,
    /// Create only: a new cgroup of which only the cgroup2 directory
    /// exists (what clone3 needs), and its resources. The v1 directories
    /// are made while the init execs; the resources are applied once stage
    /// 1 has gone (stage 1 and 2 would count twice against `pids.max`),
    /// while stage 2 mounts, and stage 2 waits for them before it makes
    /// device nodes. All before any hook, as in runc.
    new_cgroup: Option<Option<&'a LinuxResources>>,
}

fn stdio_fd<'a>(given: &'a Option<OwnedFd>, own: i32, null: &'a OwnedFd) -> BorrowedFd<'a> {
    match given {
        Some(fd) => fd.as_fd(),
        None => sys::fd_or(own, null.as_fd()),
    }
}

fn launch(args: LaunchArgs<'_>, on_hooks: &mut OnHooks<'_>) -> Result<Launched, Error> {
    let id = args.id.to_string();
    let json = serde_json::to_vec(args.config)
        .map_err(|e| sys_err("encode init config")(io::Error::other(e)))?;
    let memfd = crate::sync::sealed_memfd(c"wren-config", &json)
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
    let exe = init_exe()?;
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
    if let (Some(cg), Some(_)) = (args.cgroup, args.new_cgroup) {
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
                if let Some(resources) = args.new_cgroup {
                    if let (Some(cg), Some(r)) = (args.cgroup, resources) {
                        cg.apply(r)?;
                    }
                    // Stage 2 may have failed a mount meanwhile: then its
                    // report is queued for us, and the next recv tells.
                    let _ = ours.send(&Msg::ResourcesApplied, &[]);
                }
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

fn ns_flags(spec_ns: &[namespaces::Namespace]) -> i32 {
    spec_ns
        .iter()
        .fold(0, |acc, n| acc | namespaces::clone_flag(n.kind))
}

impl Container {
    /// Create a container from `opts.bundle`. Returns once the init is
    /// fully set up and blocked before execve; nothing is left behind on
    /// failure.
    pub fn create(opts: CreateOptions) -> Result<Container, Error> {
        validate_id(&opts.id)?;
        timing::mark(&opts.id, "runtime.create");
        let bundle = opts
            .bundle
            .canonicalize()
            .map_err(io_err("bundle", &opts.bundle))?;
        let spec = spec::load(&bundle)?;
        spec::validate(&spec)?;
        let rootfs = spec::rootfs(&spec, &bundle)?;
        let ns = spec::namespaces(&spec)?;
        let linux = spec.linux().clone().unwrap_or_default();
        let process = spec.process().clone().unwrap_or_default();
        let seccomp = linux.seccomp().as_ref().map(seccomp::compile).transpose()?;
        let caps = process
            .capabilities()
            .as_ref()
            .map(capabilities::resolve)
            .transpose()?;
        let cgroot = CgroupRoot::host()?;
        if let Some(res) = linux.resources() {
            cgroups::validate(res, cgroot.layout())?;
        }
        let terminal = process.terminal().unwrap_or(false);

        std::fs::create_dir_all(&opts.state_root)
            .map_err(io_err("create state root", &opts.state_root))?;
        let dir = opts.state_root.join(&opts.id);
        match std::fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(Error::AlreadyExists(opts.id))
            }
            Err(e) => return Err(io_err("create state dir", &dir)(e)),
        }
        let mut guard = Cleanup {
            dir: Some(&dir),
            cgroup: None,
            pidfds: Vec::new(),
        };
        let fifo_path = dir.join(state::EXEC_FIFO);
        make_fifo(&fifo_path)?;
        let fifo = sys::open(&fifo_path, libc::O_PATH, 0).map_err(io_err("open", &fifo_path))?;

        let cgroup = Cgroup::new(
            &cgroot,
            linux.cgroups_path().as_deref().and_then(|p| p.to_str()),
            &opts.id,
        )?;
        // The v1 directories follow in `launch`, while the init execs.
        cgroup.create_unified()?;
        guard.cgroup = Some(cgroup.clone());

        let has_dev_bind = spec.mounts().as_deref().unwrap_or(&[]).iter().any(|m| {
            crate::path::clean(m.destination()) == Path::new("dev")
                && (m.typ().as_deref() == Some("bind")
                    || m.options()
                        .as_deref()
                        .unwrap_or(&[])
                        .iter()
                        .any(|o| o == "bind" || o == "rbind"))
        });
        let mut sysctl: Vec<(String, String)> = linux
            .sysctl()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect();
        sysctl.sort();
        let hooks_spec = spec.hooks().clone().unwrap_or_default();
        let id_maps = ns
            .iter()
            .any(|n| n.kind == LinuxNamespaceType::User && n.path.is_none())
            .then(|| {
                (
                    namespaces::format_id_map(linux.uid_mappings().as_deref().unwrap_or(&[])),
                    namespaces::format_id_map(linux.gid_mappings().as_deref().unwrap_or(&[])),
                )
            });
        let config = InitConfig {
            id: opts.id.clone(),
            process: process.clone(),
            caps,
            namespaces: ns.clone(),
            time_offsets: linux
                .time_offsets()
                .as_ref()
                .map(namespaces::format_time_offsets),
            seccomp: seccomp.clone(),
            preserve_fds: opts.preserve_fds,
            setup: Setup::Create(Box::new(CreateSetup {
                bundle: bundle.clone(),
                rootfs: rootfs.clone(),
                readonly_root: spec
                    .root()
                    .as_ref()
                    .and_then(|r| r.readonly())
                    .unwrap_or(false),
                no_pivot: opts.no_pivot,
                mounts: spec.mounts().clone().unwrap_or_default(),
                setup_dev: !has_dev_bind,
                devices: linux.devices().clone().unwrap_or_default(),
                masked_paths: linux.masked_paths().clone().unwrap_or_default(),
                readonly_paths: linux.readonly_paths().clone().unwrap_or_default(),
                rootfs_propagation: linux.rootfs_propagation().clone(),
                hostname: spec.hostname().clone(),
                domainname: spec.domainname().clone(),
                sysctl,
                personality: linux.personality().clone(),
                create_container_hooks: hooks_spec.create_container().clone().unwrap_or_default(),
                start_container_hooks: hooks_spec.start_container().clone().unwrap_or_default(),
                container_id_maps: id_maps.clone(),
            })),
            timing: timing::enabled(),
        };

        let mut st = State {
            id: opts.id.clone(),
            bundle: bundle.clone(),
            rootfs,
            pid: 0,
            pid_start: 0,
            created: state::rfc3339_now(),
            // SAFETY: geteuid cannot fail.
            owner: unsafe { libc::geteuid() },
            cgroup: Some(cgroup.clone()),
            spec: spec.clone(),
        };
        let creating = st.oci(Status::Creating);
        let listener = seccomp.as_ref().and_then(|s| {
            s.listener_path().map(|p| {
                (
                    p.to_path_buf(),
                    s.listener_metadata().unwrap_or("").to_string(),
                )
            })
        });
        let resources = linux
            .resources()
            .as_ref()
            .map(|r| with_default_devices(r, linux.devices().as_deref().unwrap_or(&[])));
        let mut on_hooks = |pid: i32| -> Result<String, Error> {
            let mut s = creating.clone();
            s.pid = pid;
            let json = serde_json::to_string(&s).unwrap_or_default();
            #[allow(deprecated)]
            hooks::run_all(
                "prestart",
                hooks_spec.prestart().as_deref().unwrap_or(&[]),
                json.as_bytes(),
            )?;
            hooks::run_all(
                "createRuntime",
                hooks_spec.create_runtime().as_deref().unwrap_or(&[]),
                json.as_bytes(),
            )?;
            Ok(json)
        };
        let launched = launch(
            LaunchArgs {
                id: &opts.id,
                config: &config,
                stdio: &opts.stdio,
                extra: fifo.as_fd(),
                cgroup: Some(&cgroup),
                id_maps,
                until_exec: false,
                listener: listener
                    .as_ref()
                    .map(|(p, m)| (p.as_path(), m.as_str(), creating.clone())),
                initial_affinity: None,
                new_cgroup: Some(resources.as_ref()),
            },
            &mut on_hooks,
        )?;
        guard
            .pidfds
            .push(launched.pidfd.try_clone().map_err(sys_err("dup pidfd"))?);
        drop(launched.chan);
        st.pid = launched.pid;
        st.pid_start = state::proc_stat(launched.pid).map_or(0, |s| s.1);
        let mut console = launched.console;
        if terminal {
            if let (ConsoleMode::Socket(path), Some(master)) = (&opts.console, &console) {
                console::send_to_socket(path, master.as_fd())?;
                console = None;
            }
        }
        st.save(&dir).map_err(io_err("write state", &dir))?;
        if let Some(pid_file) = &opts.pid_file {
            write_pid_file(pid_file, launched.pid)?;
        }
        guard.disarm();
        timing::mark(&opts.id, "runtime.created");
        Ok(Container {
            state: st,
            dir,
            pidfd: Some(launched.pidfd),
            console,
            seccomp,
        })
    }

    /// Load a container another process created.
    pub fn load(state_root: &Path, id: &str) -> Result<Container, Error> {
        validate_id(id)?;
        let dir = state_root.join(id);
        let st = match State::load(&dir) {
            Ok(st) => st,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Error::NotFound(id.into()))
            }
            Err(e) => return Err(io_err("read state", &dir)(e)),
        };
        let pidfd = if state::pid_alive(st.pid, st.pid_start) {
            sys::pidfd_open(st.pid)
                .ok()
                .filter(|_| state::pid_alive(st.pid, st.pid_start))
        } else {
            None
        };
        Ok(Container {
            state: st,
            dir,
            pidfd,
            console: None,
            seccomp: None,
        })
    }

    pub fn id(&self) -> &str {
        &self.state.id
    }

    pub fn init_pid(&self) -> i32 {
        self.state.pid
    }

    /// The init's pidfd (None once it is known to be gone).
    pub fn init_pidfd(&self) -> Option<BorrowedFd<'_>> {
        self.pidfd.as_ref().map(|f| f.as_fd())
    }

    pub fn spec(&self) -> &Spec {
        &self.state.spec
    }

    /// Does the container have a pid namespace of its own? If not, its
    /// other processes must be killed when the init exits (runc's rule).
    pub fn has_own_pid_namespace(&self) -> bool {
        spec::namespaces(&self.state.spec)
            .map(|ns| {
                ns.iter()
                    .any(|n| n.kind == LinuxNamespaceType::Pid && n.path.is_none())
            })
            .unwrap_or(false)
    }

    pub fn bundle(&self) -> &Path {
        &self.state.bundle
    }

    pub fn cgroup(&self) -> Option<&Cgroup> {
        self.state.cgroup.as_ref()
    }

    /// The pty master of the init, when `process.terminal` was set and no
    /// console socket was given.
    pub fn take_console(&mut self) -> Option<OwnedFd> {
        self.console.take()
    }

    pub fn status(&self) -> Status {
        if !state::pid_alive(self.state.pid, self.state.pid_start) {
            return Status::Stopped;
        }
        if self.dir.join(state::EXEC_FIFO).exists() {
            return Status::Created;
        }
        match self.state.cgroup.as_ref().map(|c| c.freezer_state()) {
            Some(Ok(cgroups::FreezerState::Frozen)) => Status::Paused,
            _ => Status::Running,
        }
    }

    pub fn state(&self) -> OciState {
        self.state.oci(self.status())
    }

    fn require(
        &self,
        action: &'static str,
        wanted: &'static str,
        ok: &[Status],
    ) -> Result<Status, Error> {
        let status = self.status();
        if ok.contains(&status) {
            Ok(status)
        } else {
            Err(Error::WrongState {
                id: self.state.id.clone(),
                status,
                action,
                wanted,
            })
        }
    }

    /// Release the init blocked in create: it runs startContainer hooks and
    /// execs the process. Poststart hooks run after; if one fails the
    /// container is killed and the error returned.
    pub fn start(&mut self) -> Result<(), Error> {
        timing::mark(&self.state.id, "runtime.start");
        self.require("start", "created", &[Status::Created])?;
        let fifo_path = self.dir.join(state::EXEC_FIFO);
        let fifo = sys::open(&fifo_path, libc::O_RDONLY | libc::O_NONBLOCK, 0)
            .map_err(io_err("open", &fifo_path))?;
        let pidfd = match &self.pidfd {
            Some(fd) => fd.try_clone().map_err(sys_err("dup pidfd"))?,
            None => sys::pidfd_open(self.state.pid).map_err(sys_err("pidfd_open"))?,
        };
        let mut pfds = [
            libc::pollfd {
                fd: fifo.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: pidfd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        loop {
            // SAFETY: two valid pollfds.
            let ret = unsafe { libc::poll(pfds.as_mut_ptr(), 2, -1) };
            if ret < 0 {
                let e = io::Error::last_os_error();
                if e.raw_os_error() == Some(libc::EINTR) {
                    continue;
                }
                return Err(sys_err("poll the exec fifo")(e));
            }
            if pfds[0].revents & libc::POLLIN != 0 {
                break;
            }
            if pfds[1].revents != 0 || pfds[0].revents & libc::POLLHUP != 0 {
                return Err(Error::InitDied {
                    id: self.state.id.clone(),
                    status: -1,
                    stage: "while waiting to be started",
                });
            }
        }
        let mut byte = [0u8; 1];
        // SAFETY: reading one byte into a valid buffer.
        let n = unsafe { libc::read(fifo.as_raw_fd(), byte.as_mut_ptr().cast(), 1) };
        if n != 1 {
            return Err(Error::InitDied {
                id: self.state.id.clone(),
                status: -1,
                stage: "while being started (the exec fifo gave no byte)",
            });
        }
        let _ = std::fs::remove_file(&fifo_path);
        let st = serde_json::to_string(&self.state.oci(Status::Running)).unwrap_or_default();
        let poststart = self
            .state
            .spec
            .hooks()
            .as_ref()
            .and_then(|h| h.poststart().clone())
            .unwrap_or_default();
        if let Err(e) = hooks::run_all("poststart", &poststart, st.as_bytes()) {
            let _ = self.kill(libc::SIGKILL, true);
            return Err(e.into());
        }
        timing::mark(&self.state.id, "runtime.started");
        Ok(())
    }

    /// Send `signal` to the init, or with `all` to every process of the
    /// container.
    pub fn kill(&self, signal: i32, all: bool) -> Result<(), Error> {
        let status = self.status();
        if status == Status::Stopped && !all {
            return Err(Error::WrongState {
                id: self.state.id.clone(),
                status,
                action: "kill",
                wanted: "running",
            });
        }
        if all {
            if let Some(cg) = &self.state.cgroup {
                cg.kill_all(signal)?;
            }
        }
        if status != Status::Stopped {
            match &self.pidfd {
                // With `all`, the cgroup sweep above may already have killed
                // the init: its exit is not an error then.
                Some(fd) => match sys::pidfd_send_signal(fd.as_fd(), signal) {
                    Err(e) if all && e.raw_os_error() == Some(libc::ESRCH) => {}
                    r => r.map_err(sys_err("pidfd_send_signal"))?,
                },
                None => {
                    // SAFETY: kill with integer arguments; the pid was just
                    // checked against its start time.
                    if unsafe { libc::kill(self.state.pid, signal) } != 0 {
                        return Err(sys_err("kill")(io::Error::last_os_error()));
                    }
                }
            }
        }
        Ok(())
    }

    /// Start `opts.process` inside the running container: it joins every
    /// namespace and the cgroup of the init, with its own user, caps, env,
    /// cwd, terminal and the container's seccomp profile.
    pub fn exec(&mut self, opts: ExecOptions) -> Result<ExecProcess, Error> {
        self.require(
            "exec",
            "created or running",
            &[Status::Created, Status::Running],
        )?;
        spec::validate_process(&opts.process, "process")?;
        let ns = spec::namespaces(&self.state.spec)?;
        if self.seccomp.is_none() {
            if let Some(s) = self
                .state
                .spec
                .linux()
                .as_ref()
                .and_then(|l| l.seccomp().clone())
            {
                self.seccomp = Some(seccomp::compile(&s)?);
            }
        }
        let caps = opts
            .process
            .capabilities()
            .as_ref()
            .map(capabilities::resolve)
            .transpose()?;
        let init_pidfd = match &self.pidfd {
            Some(fd) => fd.try_clone().map_err(sys_err("dup pidfd"))?,
            None => sys::pidfd_open(self.state.pid).map_err(sys_err("pidfd_open"))?,
        };
        let config = InitConfig {
            id: self.state.id.clone(),
            process: opts.process.clone(),
            caps,
            namespaces: ns.clone(),
            time_offsets: None,
            seccomp: self.seccomp.clone(),
            preserve_fds: opts.preserve_fds,
            setup: Setup::Exec {
                ns_flags: ns_flags(&ns),
            },
            timing: timing::enabled(),
        };
        let st = self.state.oci(Status::Running);
        let initial_affinity = opts
            .process
            .exec_cpu_affinity()
            .as_ref()
            .and_then(|a| a.initial().clone())
            .filter(|l| !l.is_empty());
        let listener = self.seccomp.as_ref().and_then(|s| {
            s.listener_path().map(|p| {
                (
                    p.to_path_buf(),
                    s.listener_metadata().unwrap_or("").to_string(),
                )
            })
        });
        let launched = launch(
            LaunchArgs {
                id: &self.state.id,
                config: &config,
                stdio: &opts.stdio,
                extra: init_pidfd.as_fd(),
                cgroup: self.state.cgroup.as_ref(),
                id_maps: None,
                until_exec: true,
                listener: listener
                    .as_ref()
                    .map(|(p, m)| (p.as_path(), m.as_str(), st.clone())),
                initial_affinity: initial_affinity.as_deref(),
                new_cgroup: None,
            },
            &mut |_| Ok(String::new()),
        )?;
        let mut console = launched.console;
        if let (ConsoleMode::Socket(path), Some(master)) = (&opts.console, &console) {
            console::send_to_socket(path, master.as_fd())?;
            console = None;
        }
        if let Some(pid_file) = &opts.pid_file {
            write_pid_file(pid_file, launched.pid)?;
        }
        Ok(ExecProcess {
            pid: launched.pid,
            pidfd: launched.pidfd,
            console,
        })
    }

    /// Every pid in the container's cgroup.
    pub fn pids(&self) -> Result<Vec<i32>, Error> {
        match &self.state.cgroup {
            Some(cg) => Ok(cg.pids()?),
            None => Ok(vec![self.state.pid]),
        }
    }

    pub fn pause(&self) -> Result<(), Error> {
        self.require("pause", "running", &[Status::Running])?;
        if let Some(cg) = &self.state.cgroup {
            cg.freeze()?;
        }
        Ok(())
    }

    pub fn resume(&self) -> Result<(), Error> {
        self.require("resume", "paused", &[Status::Paused])?;
        if let Some(cg) = &self.state.cgroup {
            cg.thaw()?;
        }
        Ok(())
    }

    pub fn update(&self, resources: &LinuxResources) -> Result<(), Error> {
        self.require(
            "update",
            "created, running or paused",
            &[Status::Created, Status::Running, Status::Paused],
        )?;
        if let Some(cg) = &self.state.cgroup {
            // Validates first; nothing is written for a bad value.
            cg.update(resources)?;
        }
        Ok(())
    }

    pub fn stats(&self) -> Result<cgroups::Stats, Error> {
        match &self.state.cgroup {
            Some(cg) => Ok(cg.stats()?),
            None => Err(Error::NotFound(self.state.id.clone())),
        }
    }

    /// Remove the container. A created, running or paused container needs
    /// `force`; it is then killed first. Poststop hooks run; a failing one
    /// is only a warning, as the spec says.
    pub fn delete(self, force: bool) -> Result<(), Error> {
        timing::mark(&self.state.id, "runtime.delete");
        let status = self.status();
        if matches!(status, Status::Running | Status::Paused) && !force {
            return Err(Error::WrongState {
                id: self.state.id.clone(),
                status,
                action: "delete",
                wanted: "stopped (or --force)",
            });
        }
        if status != Status::Stopped {
            if let Some(cg) = &self.state.cgroup {
                let _ = cg.kill_all(libc::SIGKILL);
                if status == Status::Paused {
                    let _ = cg.thaw();
                }
            }
            match &self.pidfd {
                Some(fd) => {
                    let _ = sys::pidfd_send_signal(fd.as_fd(), libc::SIGKILL);
                    // Reaps if we are the parent; otherwise waits for exit.
                    let _ = hooks::wait_with_timeout(fd.as_fd(), Some(10_000));
                }
                None => {
                    // SAFETY: integer kill of a pid verified alive above.
                    unsafe { libc::kill(self.state.pid, libc::SIGKILL) };
                }
            }
        }
        if let Some(cg) = &self.state.cgroup {
            cg.delete()?;
        }
        let st = serde_json::to_string(&self.state.oci(Status::Stopped)).unwrap_or_default();
        let poststop = self
            .state
            .spec
            .hooks()
            .as_ref()
            .and_then(|h| h.poststop().clone())
            .unwrap_or_default();
        if let Err(e) = hooks::run_all("poststop", &poststop, st.as_bytes()) {
            log::warn!("container {}: {e}", self.state.id);
        }
        std::fs::remove_dir_all(&self.dir).map_err(io_err("remove state dir", &self.dir))?;
        timing::mark(&self.state.id, "runtime.deleted");
        Ok(())
    }
}

/// The device cgroup rules to apply: the spec's, then (as runc does) the
/// default devices every container has and the nodes of `linux.devices`,
/// so a "deny all" spec still leaves /dev/null and the pty usable.
pub fn with_default_devices(
    res: &LinuxResources,
    devices: &[oci_spec::runtime::LinuxDevice],
) -> LinuxResources {
    use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};
    let mut rules = res.devices().clone().unwrap_or_default();
    rules.extend(cgroups::default_device_rules());
    for d in devices {
        let typ = match d.typ() {
            LinuxDeviceType::B => LinuxDeviceType::B,
            LinuxDeviceType::P => continue,
            _ => LinuxDeviceType::C,
        };
        let mut r = LinuxDeviceCgroup::default();
        r.set_allow(true);
        r.set_typ(Some(typ));
        r.set_major(Some(d.major()));
        r.set_minor(Some(d.minor()));
        r.set_access(Some("rwm".into()));
        rules.push(r);
    }
    let mut out = res.clone();
    out.set_devices(Some(rules));
    out
}

fn make_fifo(path: &Path) -> Result<(), Error> {
    let c = CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| io_err("mkfifo", path)(io::ErrorKind::InvalidInput.into()))?;
    // SAFETY: valid NUL-terminated path.
    if unsafe { libc::mkfifo(c.as_ptr(), 0o622) } != 0 {
        return Err(io_err("mkfifo", path)(io::Error::last_os_error()));
    }
    // mkfifo applies the umask; any container user must be able to write.
    // SAFETY: valid NUL-terminated path.
    if unsafe { libc::chmod(c.as_ptr(), 0o622) } != 0 {
        return Err(io_err("chmod", path)(io::Error::last_os_error()));
    }
    Ok(())
}

fn write_pid_file(path: &Path, pid: i32) -> Result<(), Error> {
    let tmp = path.with_extension("wren-tmp");
    std::fs::write(&tmp, pid.to_string())
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(io_err("write pid file", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_safe_path_components() {
        for ok in ["a", "c1", "my_ctr-1.2+x"] {
            validate_id(ok).unwrap();
        }
        for bad in ["", ".", "..", "a/b", "a b", "ä"] {
            assert!(validate_id(bad).is_err(), "{bad:?}");
        }
    }
}
