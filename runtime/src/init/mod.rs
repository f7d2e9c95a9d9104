//! The container init: the process that turns itself into a container.
//!
//! Runs in its own process only. The caller (any thread of the shim or the
//! CLI) clones and at once re-executes a sealed copy of its binary with
//! argv[0] `wren-init`; every binary that uses this library calls
//! [`run_if_init`] first thing in `main`, before any thread exists. So all of
//! this code runs in a fresh single-threaded process, where allocating and
//! logging are safe.
//!
//! Stage 1 (`wren:[1:NS]`): oom_score_adj and rlimits while still host root,
//! non-dumpable, join namespaces by path (or the running container's, for
//! exec), new user namespace with maps written by the caller, the other new
//! namespaces, time offsets; then `clone3(CLONE_PARENT)` of stage 2 and exit.
//!
//! Stage 2 (`wren:[2:INIT]`, pid 1 of a new pid namespace): mounts, /dev,
//! caller-side hooks, createContainer hooks, pivot_root, console, read-only
//! and masked paths, hostname, sysctls, LSM, seccomp, user, capabilities,
//! cwd; then "ready", the wait for start on the exec fifo, startContainer
//! hooks and execve. Every failure goes back to the caller as a
//! [`SetupFailure`] naming the step, the path and the errno.

use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read, Seek, Write};
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{Hook, LinuxDevice, LinuxNamespaceType, LinuxPersonality, Mount, Process};
use serde::{Deserialize, Serialize};

use crate::capabilities::CapabilitySets;
use crate::console;
use crate::mounts::{self, CgroupHierarchy, MountContext};
use crate::namespaces::{self, Namespace};
use crate::path::Root;
use crate::procfs::Procfs;
use crate::seccomp::SeccompProgram;
use crate::sync::{Channel, Msg, SetupFailure};
use crate::{devices, hooks, lsm, process, rootfs, sys, sysctl, timing};

/// argv[0] of the init process.
pub const INIT_ARGV0: &str = "wren-init";
/// Environment variable naming the fd of the channel to the caller.
pub const INIT_ENV: &str = "_WREN_INIT_FD";

/// Everything the init needs, prepared and validated by the caller.
#[derive(Debug, Serialize, Deserialize)]
pub struct InitConfig {
    pub id: String,
    pub process: Process,
    /// `process.capabilities` resolved for this kernel; None leaves the
    /// capabilities as they are (runc's behaviour).
    pub caps: Option<CapabilitySets>,
    pub namespaces: Vec<Namespace>,
    /// Contents for /proc/self/timens_offsets.
    pub time_offsets: Option<String>,
    pub seccomp: Option<SeccompProgram>,
    /// fds 3..3+n are passed through to the container process.
    pub preserve_fds: u32,
    pub setup: Setup,
    /// `WREN_TIMING` is on in the caller: the timing file follows the fd
    /// after the config (see [`crate::timing`]).
    #[serde(default)]
    pub timing: bool,
}

#[derive(Debug, Serialize, Deserialize)]
pub enum Setup {
    /// A new container. The exec fifo (an O_PATH fd) follows the config fd.
    Create(Box<CreateSetup>),
    /// A process in a running container. Its init's pidfd follows the
    /// config fd; `ns_flags` are the namespaces to join through it.
    Exec { ns_flags: i32 },
}

#[derive(Debug, Serialize, Deserialize)]
pub struct CreateSetup {
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub readonly_root: bool,
    pub no_pivot: bool,
    pub mounts: Vec<Mount>,
    /// Populate /dev (false when the host's /dev is bound in).
    pub setup_dev: bool,
    pub devices: Vec<LinuxDevice>,
    pub masked_paths: Vec<String>,
    pub readonly_paths: Vec<String>,
    pub rootfs_propagation: Option<String>,
    pub hostname: Option<String>,
    pub domainname: Option<String>,
    pub sysctl: Vec<(String, String)>,
    pub personality: Option<LinuxPersonality>,
    pub create_container_hooks: Vec<Hook>,
    pub start_container_hooks: Vec<Hook>,
    /// The new user namespace's uid_map and gid_map, for idmapped mounts
    /// without mappings of their own.
    pub container_id_maps: Option<(String, String)>,
}

/// If this process was started as a container init, become the container
/// and never return. Otherwise return at once. Call it first in `main`.
pub fn run_if_init() {
    let mut args = std::env::args_os();
    if args.next().as_deref() != Some(std::ffi::OsStr::new(INIT_ARGV0)) {
        return;
    }
    let Some(fd) = std::env::var(INIT_ENV)
        .ok()
        .and_then(|v| v.parse::<i32>().ok())
    else {
        return;
    };
    // SAFETY: the caller placed the channel at this fd for us; nothing else
    // in this fresh process owns it.
    let chan = Channel::from_fd(unsafe { OwnedFd::from_raw_fd(fd) });
    let _ = sys::set_cloexec(chan.fd(), true);
    let failure = match stage1(&chan) {
        Ok(never) => match never {},
        Err(f) => f,
    };
    report(&chan, &failure);
    std::process::exit(1)
}

enum Never {}

fn report(chan: &Channel, failure: &SetupFailure) {
    if chan.send(&Msg::Failed(failure.clone()), &[]).is_err() {
        // Nobody is listening any more (e.g. `wren-oci create` has exited):
        // the container's stderr is the only place left.
        let _ = writeln!(io::stderr(), "wren: {failure}");
    }
}

/// Turn an error and its chain into a failure report.
fn fail<E: std::error::Error + 'static>(step: impl Into<String>) -> impl FnOnce(E) -> SetupFailure {
    let step = step.into();
    move |e| {
        let message = crate::error::chain(&e);
        let mut errno = None;
        let mut src: Option<&dyn std::error::Error> = Some(&e);
        while let Some(s) = src {
            if let Some(io) = s.downcast_ref::<io::Error>() {
                errno = errno.or(io.raw_os_error());
            }
            src = s.source();
        }
        SetupFailure {
            step,
            message,
            errno,
        }
    }
}

fn set_name(name: &std::ffi::CStr) {
    // SAFETY: PR_SET_NAME reads a NUL-terminated string.
    unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr(), 0, 0, 0) };
}

fn expect(
    chan: &Channel,
    want: fn(&Msg) -> bool,
    step: &str,
) -> Result<(Msg, Vec<OwnedFd>), SetupFailure> {
    match chan.recv() {
        Ok(Some((msg, fds))) if want(&msg) => Ok((msg, fds)),
        Ok(Some((msg, _))) => Err(SetupFailure {
            step: step.into(),
            message: format!("unexpected message {msg:?}"),
            errno: None,
        }),
        Ok(None) => Err(SetupFailure {
            step: step.into(),
            message: "the runtime closed the channel".into(),
            errno: None,
        }),
        Err(e) => Err(fail(step)(e)),
    }
}

fn read_config(fd: OwnedFd) -> Result<InitConfig, SetupFailure> {
    let mut f = File::from(fd);
    let mut data = Vec::new();
    f.seek(io::SeekFrom::Start(0))
        .and_then(|_| f.read_to_end(&mut data))
        .map_err(fail("read the init configuration"))?;
    InitConfig::decode(&data).map_err(fail("decode the init configuration"))
}

impl InitConfig {
    /// Decodes the configuration read from the caller's sealed memfd (fuzzed).
    pub fn decode(data: &[u8]) -> Result<InitConfig, serde_json::Error> {
        serde_json::from_slice(data)
    }
}

fn stage1(chan: &Channel) -> Result<Never, SetupFailure> {
    let t0 = timing::now_ns();
    set_name(c"wren:[1:NS]");
    // Everything below, and the fork of stage 2, relies on this process
    // having one thread; check it while /proc/self is still the host's.
    let threads = sys::thread_count().map_err(fail("count threads"))?;
    if threads != 1 {
        return Err(SetupFailure {
            step: "start the init".into(),
            message: format!(
                "refusing to set up a container from a process with {threads} threads"
            ),
            errno: None,
        });
    }
    let (_, fds) = expect(
        chan,
        |m| matches!(m, Msg::Config),
        "receive the init configuration",
    )?;
    let mut fds = fds.into_iter();
    let no_fd = || SetupFailure {
        step: "receive the init configuration".into(),
        message: "missing fd".into(),
        errno: None,
    };
    let cfg = read_config(fds.next().ok_or_else(no_fd)?)?;
    let extra = fds.next().ok_or_else(no_fd)?;
    // The timing file follows, only when the caller has timing on.
    let timing_fd = if cfg.timing { fds.next() } else { None };
    timing::init_begin(timing_fd, &cfg.id, t0);
    timing::init_mark("init.config");
    // Join the container's cgroups before anything else: the rest are
    // `tasks` / `cgroup.procs` files the caller opened for us.
    for file in fds {
        nix::unistd::write(&file, b"0").map_err(|e| {
            fail("join the container's cgroup")(io::Error::from_raw_os_error(e as i32))
        })?;
    }
    timing::init_mark("init.cgroups");

    // While still host root: things a user namespace would forbid.
    // One private procfs of the host's pid namespace for stage 1's writes.
    let procfs = if cfg.process.oom_score_adj().is_some() || cfg.time_offsets.is_some() {
        Some(Procfs::new().map_err(fail("open a private procfs"))?)
    } else {
        None
    };
    if let (Some(adj), Some(procfs)) = (cfg.process.oom_score_adj(), &procfs) {
        process::set_oom_score_adj(procfs, adj).map_err(fail("oomScoreAdj"))?;
    }
    process::set_rlimits(cfg.process.rlimits().as_deref().unwrap_or(&[]))
        .map_err(fail("rlimits"))?;
    // From here on nothing in the container may ptrace us or open our
    // /proc files (CVE-2016-9962, CVE-2019-5736).
    sys::set_dumpable(false).map_err(fail("prctl(PR_SET_DUMPABLE)"))?;

    let creating = matches!(cfg.setup, Setup::Create(_));
    let needs_cgroup_mount = match &cfg.setup {
        Setup::Create(c) => c
            .mounts
            .iter()
            .any(|m| matches!(m.typ().as_deref(), Some("cgroup") | Some("cgroup2"))),
        Setup::Exec { .. } => false,
    };
    // The host's cgroup layout, read before a cgroup namespace hides it.
    let hierarchies = if needs_cgroup_mount {
        mounts::host_cgroup_hierarchies().map_err(fail("read the host's cgroup mounts"))?
    } else {
        Vec::new()
    };

    // Idmapped mounts: only the initial user namespace may idmap a host
    // filesystem, so they are made now, before any namespace is joined.
    let idmapped = match &cfg.setup {
        Setup::Create(setup) => idmapped_trees(&cfg, setup)?,
        Setup::Exec { .. } => Vec::new(),
    };

    let new_user = creating
        && cfg
            .namespaces
            .iter()
            .any(|n| n.kind == LinuxNamespaceType::User && n.path.is_none());
    match &cfg.setup {
        Setup::Create(_) => namespaces::join(&cfg.namespaces).map_err(fail("join namespaces"))?,
        Setup::Exec { ns_flags } => {
            sys::setns(extra.as_fd(), *ns_flags)
                .map_err(fail("setns into the container's namespaces"))?;
            if ns_flags & libc::CLONE_NEWUSER != 0 {
                namespaces::become_root();
            }
        }
    }
    if new_user {
        sys::unshare(libc::CLONE_NEWUSER).map_err(fail("unshare user namespace"))?;
        // The caller writes our maps; it needs our /proc files reachable.
        sys::set_dumpable(true).map_err(fail("prctl(PR_SET_DUMPABLE)"))?;
        chan.send(&Msg::WriteMaps, &[])
            .map_err(fail("ask for id maps"))?;
        expect(chan, |m| matches!(m, Msg::MapsWritten), "wait for id maps")?;
        sys::set_dumpable(false).map_err(fail("prctl(PR_SET_DUMPABLE)"))?;
        namespaces::become_root();
    }
    if creating {
        namespaces::unshare_new(&cfg.namespaces).map_err(fail("create namespaces"))?;
    }
    if let (Some(offsets), Some(procfs)) = (&cfg.time_offsets, &procfs) {
        // SAFETY: getpid cannot fail.
        let pid = unsafe { libc::getpid() };
        procfs
            .write(&format!("{pid}/timens_offsets"), offsets.as_bytes())
            .map_err(fail("write timens_offsets"))?;
    }

    // A host procfs handle must not reach the container process.
    drop(procfs);
    timing::init_mark("init.namespaces");

    // The new pid namespace (and time namespace) only apply to children.
    // SAFETY: single-threaded: checked at the start of stage 1, which
    // starts no thread.
    match unsafe { sys::clone_sibling() }.map_err(fail("clone3 the container process"))? {
        Some((pid, pidfd)) => {
            chan.send(&Msg::Child { pid }, &[pidfd.as_fd()])
                .map_err(fail("report the container pid"))?;
            std::process::exit(0)
        }
        None => {
            let failure = match stage2(chan, cfg, extra, hierarchies, new_user, idmapped) {
                Ok(never) => match never {},
                Err(f) => f,
            };
            report(chan, &failure);
            std::process::exit(1)
        }
    }
}

/// The idmapped bind mounts of `setup`, as (index in `mounts`, detached
/// tree). Each is idmapped through a user namespace with the mount's own
/// mappings, or else the container's: joined by path, or a holder made with
/// the new namespace's maps.
fn idmapped_trees(
    cfg: &InitConfig,
    setup: &CreateSetup,
) -> Result<Vec<(usize, OwnedFd)>, SetupFailure> {
    let mut out = Vec::new();
    let mut made: Vec<((String, String), OwnedFd)> = Vec::new();
    let joined = cfg
        .namespaces
        .iter()
        .find(|n| n.kind == LinuxNamespaceType::User)
        .and_then(|n| n.path.as_ref());
    for (i, m) in setup.mounts.iter().enumerate() {
        if mounts::idmapped(m).is_none() {
            continue;
        }
        let step = format!("mount {} (idmapped)", m.destination().display());
        let (uid, gid) = mounts::mount_id_maps(m);
        let ns = match (uid.is_empty(), joined) {
            (true, Some(path)) => sys::open(path, libc::O_RDONLY | libc::O_CLOEXEC, 0)
                .map_err(fail(format!("{step}: open {}", path.display())))?,
            (without_own_maps, _) => {
                let maps = if without_own_maps {
                    setup
                        .container_id_maps
                        .clone()
                        .ok_or_else(|| SetupFailure {
                            step: step.clone(),
                            message: "no id mappings and no user namespace".into(),
                            errno: None,
                        })?
                } else {
                    (
                        namespaces::format_id_map(uid),
                        namespaces::format_id_map(gid),
                    )
                };
                // One holder namespace per distinct mapping.
                match made.iter().find(|(k, _)| *k == maps) {
                    Some((_, fd)) => fd.try_clone().map_err(fail(step.clone()))?,
                    None => {
                        let fd = userns_with_maps(&maps).map_err(fail(step.clone()))?;
                        made.push((maps, fd.try_clone().map_err(fail(step.clone()))?));
                        fd
                    }
                }
            }
        };
        out.push((
            i,
            mounts::idmapped_tree(m, &setup.bundle, ns.as_fd()).map_err(fail(step))?,
        ));
    }
    Ok(out)
}

/// An fd of a fresh user namespace with these uid and gid maps. Its holder
/// process is killed and reaped before this returns; the fd keeps the
/// namespace alive.
fn userns_with_maps((uid, gid): &(String, String)) -> io::Result<OwnedFd> {
    // SAFETY: stage 1 is single-threaded (checked when it starts).
    let (pid, pidfd) = unsafe { sys::clone_userns_holder() }?;
    let ns = namespaces::write_id_maps(pid, uid, gid)
        .map_err(io::Error::other)
        .and_then(|()| {
            sys::open(
                Path::new(&format!("/proc/{pid}/ns/user")),
                libc::O_RDONLY | libc::O_CLOEXEC,
                0,
            )
        });
    let _ = sys::pidfd_send_signal(pidfd.as_fd(), libc::SIGKILL);
    let _ = sys::wait_pidfd(pidfd.as_fd(), false);
    ns
}

fn stage2(
    chan: &Channel,
    cfg: InitConfig,
    extra: OwnedFd,
    hierarchies: Vec<CgroupHierarchy>,
    new_user: bool,
    idmapped: Vec<(usize, OwnedFd)>,
) -> Result<Never, SetupFailure> {
    set_name(c"wren:[2:INIT]");
    timing::init_mark("init.stage2");
    // SAFETY: setsid has no arguments; failing means we already lead one.
    unsafe { libc::setsid() };
    match &cfg.setup {
        Setup::Create(setup) => {
            let in_userns = new_user
                || cfg
                    .namespaces
                    .iter()
                    .any(|n| n.kind == LinuxNamespaceType::User);
            let new_cgroupns = cfg
                .namespaces
                .iter()
                .any(|n| n.kind == LinuxNamespaceType::Cgroup && n.path.is_none());
            let (state, procfs) = create_container(
                chan,
                &cfg,
                setup,
                &hierarchies,
                idmapped,
                in_userns,
                new_cgroupns,
            )?;
            finish(
                chan,
                &cfg,
                procfs,
                Some((extra, &setup.start_container_hooks, state)),
            )
        }
        Setup::Exec { .. } => {
            drop(extra);
            let root = Root::open(Path::new("/")).map_err(fail("open /"))?;
            if cfg.process.terminal().unwrap_or(false) {
                setup_console(chan, &root, &cfg.process)?;
            }
            let procfs = if wants_lsm(&cfg.process) {
                Some(Procfs::new().map_err(fail("open a private procfs"))?)
            } else {
                None
            };
            finish(chan, &cfg, procfs, None)
        }
    }
}

/// Does the process ask for an AppArmor profile or an SELinux label (set
/// through procfs)?
fn wants_lsm(p: &Process) -> bool {
    p.apparmor_profile().as_ref().is_some_and(|s| !s.is_empty())
        || p.selinux_label().as_ref().is_some_and(|s| !s.is_empty())
}

/// Everything from the first mount to the masked paths. Returns the OCI
/// state the caller sent (for startContainer hooks) and, when sysctls or an
/// LSM label need one, a procfs of the container's pid namespace.
fn create_container(
    chan: &Channel,
    cfg: &InitConfig,
    setup: &CreateSetup,
    hierarchies: &[CgroupHierarchy],
    mut idmapped: Vec<(usize, OwnedFd)>,
    in_userns: bool,
    new_cgroupns: bool,
) -> Result<(String, Option<Procfs>), SetupFailure> {
    let root = rootfs::prepare(&setup.rootfs).map_err(fail("prepare the rootfs"))?;
    let ctx = MountContext {
        root: &root,
        bundle: &setup.bundle,
        new_cgroupns,
        cgroups: hierarchies,
    };
    for (i, m) in setup.mounts.iter().enumerate() {
        let premade = idmapped
            .iter()
            .position(|(j, _)| *j == i)
            .map(|p| idmapped.swap_remove(p).1);
        mounts::mount_one(&ctx, m, premade)
            .map_err(fail(format!("mount {}", m.destination().display())))?;
    }
    // The caller applies the cgroup's device rules while we mount; v1
    // rewrites them deny-all first, which must not race our mknods.
    expect(
        chan,
        |m| matches!(m, Msg::ResourcesApplied),
        "wait for the cgroup resources",
    )?;
    if setup.setup_dev {
        devices::setup(&root, &setup.devices, in_userns).map_err(fail("set up /dev"))?;
    }
    timing::init_mark("init.mounts");

    chan.send(&Msg::RunHooks, &[])
        .map_err(fail("ask for prestart hooks"))?;
    let (msg, _) = expect(
        chan,
        |m| matches!(m, Msg::HooksDone { .. }),
        "wait for prestart hooks",
    )?;
    let Msg::HooksDone { state } = msg else {
        unreachable!("checked by expect")
    };
    hooks::run_all(
        "createContainer",
        &setup.create_container_hooks,
        state.as_bytes(),
    )
    .map_err(fail("createContainer hooks"))?;
    timing::init_mark("init.hooks");

    rootfs::pivot(&root, setup.no_pivot).map_err(fail("pivot_root"))?;
    drop(root);
    timing::init_mark("init.pivot");
    if let Some(p) = &setup.rootfs_propagation {
        rootfs::set_root_propagation(p).map_err(fail("rootfsPropagation"))?;
    }
    let root = Root::open(Path::new("/")).map_err(fail("open /"))?;
    if cfg.process.terminal().unwrap_or(false) {
        setup_console(chan, &root, &cfg.process)?;
    }
    if setup.readonly_root {
        rootfs::readonly_root().map_err(fail("root.readonly"))?;
    }
    if let Some(h) = setup.hostname.as_deref().filter(|h| !h.is_empty()) {
        sys::sethostname(h).map_err(fail("sethostname"))?;
    }
    if let Some(d) = setup.domainname.as_deref().filter(|h| !h.is_empty()) {
        sys::setdomainname(d).map_err(fail("setdomainname"))?;
    }
    // Made only when something is written through it: a procfs instance
    // costs a superblock now and a dentry sweep when it is closed.
    let procfs = if !setup.sysctl.is_empty() || wants_lsm(&cfg.process) {
        let procfs = Procfs::new().map_err(fail("open a private procfs"))?;
        sysctl::apply(&procfs, &setup.sysctl).map_err(fail("linux.sysctl"))?;
        Some(procfs)
    } else {
        None
    };
    rootfs::readonly_paths(&root, &setup.readonly_paths).map_err(fail("linux.readonlyPaths"))?;
    if !setup.masked_paths.is_empty() {
        let dev_null =
            devices::verified_dev_null(&root).map_err(fail("open the container's /dev/null"))?;
        rootfs::mask_paths(&root, &setup.masked_paths, dev_null.as_fd())
            .map_err(fail("linux.maskedPaths"))?;
    }
    if let Some(p) = &setup.personality {
        process::set_personality(p).map_err(fail("linux.personality"))?;
    }
    timing::init_mark("init.paths");
    Ok((state, procfs))
}

fn setup_console(chan: &Channel, root: &Root, p: &Process) -> Result<(), SetupFailure> {
    let size = p
        .console_size()
        .map(|b| (b.height() as u16, b.width() as u16));
    let (master, peer) =
        console::open_in_container(root, size).map_err(fail("allocate the console"))?;
    console::attach(root, peer.as_fd()).map_err(fail("attach the console"))?;
    chan.send(&Msg::Console, &[master.as_fd()])
        .map_err(fail("send the console"))
}

/// Process attributes, seccomp, user and capabilities, then the wait for
/// start (create only) and execve.
fn finish(
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
        .map_err(fail("startContainer hooks"))?;
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

/// Raw fd of the channel as the init will see it, given the number of
/// preserved fds (they take 3..3+n).
pub fn channel_fd(preserve_fds: u32) -> i32 {
    3 + preserve_fds as i32
}
