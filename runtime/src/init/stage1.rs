//! Stage 1 of the init (`wren:[1:NS]`): the process the caller spawned.
//!
//! Runs in its own fresh, single-threaded process, still in the host's
//! namespaces and as host root: joins the container's cgroups, sets
//! oom_score_adj and rlimits, turns non-dumpable, reads the host's cgroup
//! layout, makes the idmapped mounts, joins or creates namespaces (the
//! caller writes the new user namespace's id maps), writes time offsets,
//! then clones stage 2 as a sibling (`CLONE_PARENT`) and exits.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;

use oci_spec::runtime::LinuxNamespaceType;

use super::stage2::stage2;
use super::{expect, fail, read_config, report, set_name, CreateSetup, InitConfig, Never, Setup};
use crate::cgroups;
use crate::mounts;
use crate::namespaces;
use crate::procfs::Procfs;
use crate::sync::{Channel, Msg, SetupFailure};
use crate::{process, sys, timing};

pub(super) fn stage1(chan: &Channel) -> Result<Never, SetupFailure> {
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

    let creating = matches!(cfg.setup, Setup::Create(_));
    let new_user = creating
        && cfg
            .namespaces
            .iter()
            .any(|n| n.kind == LinuxNamespaceType::User && n.path.is_none());
    // Time offsets are written after the namespaces are made: by us, or
    // by the caller when a new user namespace took our /proc files from
    // us (becoming dumpable for it would let any host process with the
    // container's uid ptrace us while we hold host fds).
    let own_time_offsets = cfg.time_offsets.is_some() && !new_user;

    // While still host root: things a user namespace would forbid.
    // One private procfs of the host's pid namespace for stage 1's writes.
    let procfs = if cfg.process.oom_score_adj().is_some() || own_time_offsets {
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

    let needs_cgroup_mount = match &cfg.setup {
        Setup::Create(c) => c
            .mounts
            .iter()
            .any(|m| matches!(m.typ().as_deref(), Some("cgroup") | Some("cgroup2"))),
        Setup::Exec { .. } => false,
    };
    // The host's cgroup layout, read before a cgroup namespace hides it.
    let hierarchies = if needs_cgroup_mount {
        cgroups::host_cgroup_hierarchies().map_err(fail("read the host's cgroup mounts"))?
    } else {
        Vec::new()
    };

    // Idmapped mounts: only the initial user namespace may idmap a host
    // filesystem, so they are made now, before any namespace is joined.
    let idmapped = match &cfg.setup {
        Setup::Create(setup) => idmapped_trees(&cfg, setup)?,
        Setup::Exec { .. } => Vec::new(),
    };

    match &cfg.setup {
        Setup::Create(_) => namespaces::join(&cfg.namespaces).map_err(fail("join namespaces"))?,
        Setup::Exec { ns_flags, root_of } => {
            if let Some(pid) = root_of {
                enter_root_of(*pid, extra.as_fd())?;
            }
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
    match (&cfg.time_offsets, &procfs) {
        (Some(offsets), Some(procfs)) if own_time_offsets => {
            // SAFETY: getpid cannot fail.
            let pid = unsafe { libc::getpid() };
            procfs
                .write(&format!("{pid}/timens_offsets"), offsets.as_bytes())
                .map_err(fail("write timens_offsets"))?;
        }
        (Some(_), _) => {
            chan.send(&Msg::WriteTimeOffsets, &[])
                .map_err(fail("ask for time offsets"))?;
            expect(
                chan,
                |m| matches!(m, Msg::TimeOffsetsWritten),
                "wait for time offsets",
            )?;
        }
        (None, _) => {}
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
        let step = format!("mounts[{i}] (idmapped)");
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

/// Take the root of the container's init `pid` (a container without its
/// own mount namespace is a chroot in ours), while our /proc is still the
/// host's. The pidfd proves `pid` was not recycled in between.
fn enter_root_of(pid: i32, pidfd: BorrowedFd<'_>) -> Result<(), SetupFailure> {
    let path = std::path::PathBuf::from(format!("/proc/{pid}/root"));
    let root = sys::open(&path, libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC, 0)
        .map_err(fail(format!("open {}", path.display())))?;
    sys::pidfd_send_signal(pidfd, 0).map_err(fail("check the container's init"))?;
    // SAFETY: fchdir to a live directory fd, then chroot of "." and chdir
    // of "/" with static NUL-terminated paths.
    let ok = unsafe {
        libc::fchdir(root.as_raw_fd()) == 0
            && libc::chroot(c".".as_ptr()) == 0
            && libc::chdir(c"/".as_ptr()) == 0
    };
    if !ok {
        return Err(fail("chroot into the container's root")(
            io::Error::last_os_error(),
        ));
    }
    Ok(())
}
