//! Stage 2 of the init (`wren:[2:INIT]`): pid 1 of the container's new pid
//! namespace, cloned by stage 1 as a sibling, so the caller is its parent.
//!
//! Runs in its own process, inside the container's namespaces. For a
//! create it builds the container: rootfs, spec mounts, /dev (after the
//! caller applied the cgroup resources), host-side hooks through the
//! caller, createContainer hooks, pivot_root, console, read-only root, host
//! and domain names, sysctls, read-only and masked paths, personality. For
//! an exec only the console. Both then go on to [`super::exec`].

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use oci_spec::runtime::{LinuxNamespaceType, Process};

use super::exec::finish;
use super::{expect, fail, set_name, CreateSetup, InitConfig, Never, Setup};
use crate::cgroups::CgroupHierarchy;
use crate::console;
use crate::mounts::{self, MountContext};
use crate::path::Root;
use crate::procfs::Procfs;
use crate::sync::{Channel, Msg, SetupFailure};
use crate::{devices, hooks, loopback, process, rootfs, sys, sysctl, timing};

pub(super) fn stage2(
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
pub(super) fn wants_lsm(p: &Process) -> bool {
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
    // A network namespace of its own starts with `lo` down; runc raises
    // it before anything else, and so do we.
    if cfg
        .namespaces
        .iter()
        .any(|n| n.kind == LinuxNamespaceType::Network && n.path.is_none())
    {
        loopback::up().map_err(fail("set lo up in the new network namespace"))?;
    }
    let root = rootfs::prepare(
        &setup.rootfs,
        setup.host_mount_ns,
        setup.rootfs_propagation.as_deref(),
    )
    .map_err(fail("root.path"))?;
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
        mounts::mount_one(&ctx, m, premade).map_err(fail(format!("mounts[{i}]")))?;
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

    // The state the hooks read comes with the caller's answer; without any
    // hook there is nothing to ask for.
    let any_hooks = setup.host_hooks
        || !setup.create_container_hooks.is_empty()
        || !setup.start_container_hooks.is_empty();
    let state = if any_hooks {
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
        hooks::run_all_with_env(
            "createContainer",
            &setup.create_container_hooks,
            state.as_bytes(),
            &super::exec::container_env(&cfg.process),
        )
        .map_err(fail("run hooks in the container"))?;
        state
    } else {
        String::new()
    };
    timing::init_mark("init.hooks");

    rootfs::pivot(&root, setup.no_pivot, setup.host_mount_ns).map_err(fail("root.path"))?;
    drop(root);
    timing::init_mark("init.pivot");
    if let Some(p) = &setup.rootfs_propagation {
        rootfs::set_root_propagation(p).map_err(fail("linux.rootfsPropagation"))?;
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
    if let Some(p) = &setup.memory_policy {
        p.apply().map_err(fail("linux.memoryPolicy"))?;
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
