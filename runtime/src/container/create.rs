//! What the caller does during create: validate the bundle's spec, the
//! seccomp profile, capabilities and cgroup resources before anything
//! exists; then the state directory, the exec fifo and the cgroup; the
//! init's configuration; the launch (with prestart and createRuntime hooks
//! run here when the init asks); the console, the state file and the pid
//! file. A [`Cleanup`] guard undoes it all on any error.
//!
//! Runs in the caller.

use std::borrow::Cow;
use std::ffi::CString;
use std::io;
use std::os::fd::AsFd;
use std::path::Path;

use oci_spec::runtime::{Linux, LinuxNamespaceType, LinuxResources, Process};

use super::cleanup::Cleanup;
use super::error::{io_err, sys_err};
use super::init_driver::{launch, CgroupWork, LaunchArgs};
use super::{validate_id, write_pid_file, ConsoleMode, Container, CreateOptions, Error};
use crate::capabilities;
use crate::cgroups::{self, Cgroup, CgroupRoot};
use crate::init::{CreateSetup, InitConfig, Setup};
use crate::namespaces;
use crate::seccomp;
use crate::spec;
use crate::state::{self, State, Status};
use crate::{console, hooks, sys, timing};

impl Container {
    /// Create a container from `opts.bundle`. Returns once the init is
    /// fully set up and blocked before execve; nothing is left behind on
    /// failure.
    pub fn create(opts: CreateOptions) -> Result<Container, Error> {
        validate_id(&opts.id)?;
        timing::mark(&opts.id, "runtime.create");
        let bundle = opts.bundle.canonicalize().map_err(|source| Error::Bundle {
            path: opts.bundle.clone(),
            source,
        })?;
        let spec = spec::load(&bundle)?;
        spec::validate(&spec)?;
        let rootfs = spec::rootfs(&spec, &bundle)?;
        let ns = spec::namespaces(&spec)?;
        // Borrowed, not cloned: a containerd spec's seccomp profile alone is
        // hundreds of strings, and the spec itself moves into the state.
        let linux: Cow<Linux> = spec
            .linux()
            .as_ref()
            .map_or_else(|| Cow::Owned(Linux::default()), Cow::Borrowed);
        let process: Cow<Process> = spec
            .process()
            .as_ref()
            .map_or_else(|| Cow::Owned(Process::default()), Cow::Borrowed);
        let seccomp_cache = seccomp::cache::dir_for(&opts.state_root);
        // Split the seccomp filter (cache lookup or compile) from the rest of
        // create in the WREN_TIMING breakdown.
        timing::mark(&opts.id, "runtime.spec");
        let seccomp = (linux.seccomp().as_ref())
            .map(|s| seccomp::compile_cached(s, Some(&seccomp_cache)))
            .transpose()?;
        timing::mark(&opts.id, "runtime.seccomp");
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

        let dir = super::create_state_dir(&opts.state_root, &opts.id)?;
        let mut guard = Cleanup {
            host_mounts: None,
            dir: Some(&dir),
            cgroup: None,
            pidfds: Vec::new(),
        };
        let fifo_path = dir.join(state::EXEC_FIFO);
        make_fifo(&fifo_path)?;
        let fifo = sys::open(&fifo_path, libc::O_PATH, 0).map_err(io_err("open", &fifo_path))?;

        let cgroups_path = linux.cgroups_path().as_deref().and_then(|p| p.to_str());
        let cgroup = if opts.systemd_cgroup {
            Cgroup::new_systemd(&cgroot, cgroups_path, &opts.id)?
        } else {
            Cgroup::new(&cgroot, cgroups_path, &opts.id)?
        };
        // The v1 directories follow in `launch`, while the init execs
        // (with the systemd driver, the unit is made there too).
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
            process: process.into_owned(),
            caps,
            namespaces: ns.clone(),
            time_offsets: linux
                .time_offsets()
                .as_ref()
                .map(namespaces::format_time_offsets),
            seccomp: seccomp.clone(),
            preserve_fds: opts.preserve_fds,
            new_keyring: !opts.no_new_keyring,
            setup: Setup::Create(Box::new(CreateSetup {
                bundle: bundle.clone(),
                rootfs: rootfs.clone(),
                readonly_root: spec
                    .root()
                    .as_ref()
                    .and_then(|r| r.readonly())
                    .unwrap_or(false),
                no_pivot: opts.no_pivot,
                host_mount_ns: !ns.iter().any(|n| n.kind == LinuxNamespaceType::Mount),
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
                memory_policy: linux
                    .memory_policy()
                    .as_ref()
                    .map(crate::mempolicy::MemoryPolicy::from_spec)
                    .transpose()?,
                create_container_hooks: hooks_spec.create_container().clone().unwrap_or_default(),
                start_container_hooks: hooks_spec.start_container().clone().unwrap_or_default(),
                #[allow(deprecated)]
                host_hooks: hooks_spec
                    .prestart()
                    .as_ref()
                    .is_some_and(|h| !h.is_empty())
                    || hooks_spec
                        .create_runtime()
                        .as_ref()
                        .is_some_and(|h| !h.is_empty()),
                container_id_maps: id_maps.clone(),
                reaper: crate::spec::init_reaper(&spec)?,
            })),
            timing: timing::enabled(),
        };

        // Without a mount namespace the init mounts in ours: note what is
        // there now, so delete (or this guard) can take away what it adds.
        let host_mounts_before = if ns.iter().any(|n| n.kind == LinuxNamespaceType::Mount) {
            None
        } else {
            let before = super::host_mounts::snapshot(&rootfs)?;
            guard.host_mounts = Some((rootfs.clone(), before.clone()));
            Some(before)
        };
        let resources = linux.resources().as_ref().map(with_default_devices);
        let mut st = State {
            host_mounts_before,
            no_new_keyring: opts.no_new_keyring,
            id: opts.id.clone(),
            bundle: bundle.clone(),
            rootfs,
            pid: 0,
            pid_start: 0,
            created: state::rfc3339_now(),
            // SAFETY: geteuid cannot fail.
            owner: unsafe { libc::geteuid() },
            cgroup: Some(cgroup.clone()),
            spec,
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
                cgroup_work: CgroupWork::FinishNew {
                    resources: resources.as_ref(),
                    unit_properties: st.spec.annotations().as_ref(),
                },
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
}

/// The device cgroup rules to apply: the spec's, then (as runc does) the
/// default devices every container has, so a "deny all" spec still leaves
/// /dev/null and the pty usable. A `linux.devices` node gets no rule of its
/// own: its access is what `resources.devices` grants (Docker's and
/// Podman's `--device X:r` write an `r` rule and rely on that), as in runc.
pub fn with_default_devices(res: &LinuxResources) -> LinuxResources {
    let mut rules = res.devices().clone().unwrap_or_default();
    rules.extend(cgroups::default_device_rules());
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
