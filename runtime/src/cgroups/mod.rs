//! Container cgroups on cgroup v1, hybrid and v2 hosts, without systemd and
//! without a helper binary.
//!
//! Runs in the runtime's parent process (the shim daemon or `wren-oci`),
//! never in the container's init: directories are made, processes placed,
//! limits written, stats read and the cgroup removed from outside. The init
//! only benefits from being born into the cgroup through
//! [`Cgroup::clone_into_fd`] (`clone3(CLONE_INTO_CGROUP)`), and reads the
//! host's hierarchies for the container's cgroup mount ([`hierarchies`],
//! the one part that runs in the init).
//!
//! Layout of the module:
//! - [`layout`]: where cgroupfs is and whether the host is v1, hybrid or v2;
//! - [`hierarchies`]: the host's hierarchies and the container's place in
//!   each, as the init sees them, for its `cgroup` mount;
//! - [`path`]: `linux.cgroupsPath` → the container's path in each hierarchy;
//! - [`validate()`]: every resource checked before anything is written;
//! - `v1/` and `v2/`: one file per controller; [`devices`] holds the device
//!   rule semantics shared by v1 `devices.allow/deny` and the v2 eBPF filter
//!   (`v2/devices.rs`, loaded with `sys::bpf`);
//! - [`stats`], [`oom`], [`convert`] (runc's v1 → v2 value conversions);
//! - [`systemd`]: the systemd driver, where systemd makes and removes the
//!   cgroup as a transient unit ([`Cgroup::new_systemd`]) and wren still
//!   writes the resource files.
//!
//! On a hybrid host (v1 controllers plus a cgroup2 mount with no controllers,
//! like the build machines) resources go to the v1 hierarchies, and the
//! container also gets a directory in the cgroup2 hierarchy, which gives it
//! `clone3(CLONE_INTO_CGROUP)`, `cgroup.kill` and a second freezer.
//!
//! Typical use by the create path:
//! `validate` → `Cgroup::new` → `create` → spawn the init with
//! `clone_into_fd` → `add_pid` → `apply` once the init has done its mounts;
//! on delete `kill_all` + `delete`.

pub mod convert;
pub mod devices;
mod error;
mod fs;
pub mod hierarchies;
pub mod layout;
pub mod oom;
pub mod path;
pub mod stats;
pub mod systemd;
pub(crate) mod v1;
pub mod v2;
mod validate;

use std::collections::BTreeSet;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::fcntl::{open, OFlag};
use nix::sys::signal::{kill, Signal};
use nix::sys::stat::Mode;
use nix::unistd::Pid;
use oci_spec::runtime::LinuxResources;
use serde::{Deserialize, Serialize};

pub use devices::default_device_rules;
pub use error::CgroupError;
pub use hierarchies::{host_cgroup_hierarchies, CgroupHierarchy};
pub use layout::{CgroupRoot, Layout, V1Controller};
pub use oom::OomWatcher;
pub use stats::Stats;
pub use validate::validate;

/// Freezer state of a container's cgroup.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FreezerState {
    /// Running normally.
    Thawed,
    /// A freeze was requested and is in progress ("pausing").
    Freezing,
    /// Every process is frozen ("paused").
    Frozen,
}

impl FreezerState {
    /// The OCI / containerd status word: "running", "pausing" or "paused".
    pub fn status(self) -> &'static str {
        match self {
            FreezerState::Thawed => "running",
            FreezerState::Freezing => "pausing",
            FreezerState::Frozen => "paused",
        }
    }
}

/// How long [`Cgroup::delete`] keeps retrying while tasks drain.
const DELETE_TIMEOUT: Duration = Duration::from_secs(5);

/// One container's cgroup across every hierarchy of the host. Serializable,
/// so the state file can record it and a later process (the shim after a
/// restart, `wren-oci delete`) can manage the same cgroup without
/// re-detecting anything.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cgroup {
    layout: Layout,
    /// Path inside each hierarchy, starting with `/`.
    path: String,
    /// With the systemd driver: the unit systemd manages the cgroup as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    systemd: Option<systemd::Unit>,
}

fn join(mount: &Path, path: &str) -> PathBuf {
    mount.join(path.trim_start_matches('/'))
}

impl Cgroup {
    /// The cgroup for a container: `cgroups_path` is `linux.cgroupsPath`
    /// (absolute, relative to the root's default parent, or
    /// `slice:prefix:name`); unset means `<default parent>/<container_id>`.
    /// Nothing is created yet.
    pub fn new(
        root: &CgroupRoot,
        cgroups_path: Option<&str>,
        container_id: &str,
    ) -> Result<Self, CgroupError> {
        Ok(Cgroup {
            layout: root.layout().clone(),
            path: path::cgroup_path(root.default_parent(), cgroups_path, container_id)?,
            systemd: None,
        })
    }

    /// The cgroup for a container under the systemd driver: `cgroups_path`
    /// must be `slice:prefix:name` (unset: `system.slice:wren:<id>`); the
    /// path is where systemd will put the unit. Nothing is created yet:
    /// [`Cgroup::start_unit`] asks systemd once the init's first process
    /// exists.
    pub fn new_systemd(
        root: &CgroupRoot,
        cgroups_path: Option<&str>,
        container_id: &str,
    ) -> Result<Self, CgroupError> {
        let unit = path::systemd_unit(cgroups_path, container_id)?;
        let full = cgroups_path.filter(|p| !p.is_empty()).map_or_else(
            || format!("system.slice:wren:{container_id}"),
            str::to_owned,
        );
        Ok(Cgroup {
            layout: root.layout().clone(),
            path: path::cgroup_path(root.default_parent(), Some(&full), container_id)?,
            systemd: Some(unit),
        })
    }

    /// The systemd unit, with the systemd driver.
    pub fn systemd_unit(&self) -> Option<&systemd::Unit> {
        self.systemd.as_ref()
    }

    /// systemd driver: makes the transient unit holding `pid` (the init's
    /// first process), with the resources systemd knows as properties and
    /// `extra` properties, and waits for it. Then, as without systemd,
    /// [`Cgroup::create_v1`], the joins and [`Cgroup::apply`] follow. A
    /// failure leaves no unit. No-op without the systemd driver.
    pub fn start_unit(
        &self,
        pid: i32,
        resources: Option<&LinuxResources>,
        extra: Vec<systemd::Property>,
    ) -> Result<(), CgroupError> {
        let Some(unit) = &self.systemd else {
            return Ok(());
        };
        let mut props = match resources {
            Some(r) => systemd::properties(r, self.layout.is_v2())?,
            None => Vec::new(),
        };
        // Stage 1 and stage 2 both live until stage 1 exits: TasksMax now
        // could refuse stage 2 (pids.limit 1). `apply` sets it after.
        props.retain(|(n, _)| n != "TasksMax");
        props.extend(extra);
        let mut bus = systemd::Bus::connect(&unit.name)?;
        let pid_prop = (!unit.is_slice()).then_some(pid);
        let placed = || self.holds(pid);
        let gone = || self.gone();
        if let Err(e) = bus.start(unit, pid_prop, props, &placed) {
            // The job may have failed after the unit was loaded.
            let _ = bus.stop(&gone);
            return Err(e);
        }
        let res = (|| {
            // Controllers systemd does not manage (hugetlb, rdma, misc) are
            // enabled in the ancestors as without systemd; systemd leaves
            // them alone (see ARCHITECTURE).
            if let (Layout::V2 { mount, controllers }, Some(d)) = (&self.layout, self.unified_dir())
            {
                v2::enable_controllers(mount, &d, controllers)?;
            }
            if unit.is_slice() {
                self.create()?;
                self.add_pid(pid)?;
            }
            Ok(())
        })();
        if res.is_err() {
            let _ = bus.stop(&gone);
        }
        res
    }

    /// Restore: puts `pid`, the restorer (criu), into the container's
    /// cgroup before it restores the container's processes there, as runc
    /// does. Without the systemd driver the cgroup was made and its
    /// resources applied already: `pid` joins it. With the driver the unit
    /// is made now, holding `pid` ([`Cgroup::start_unit`], with `extra`
    /// properties), then the v1 directories systemd does not make, the
    /// joins and the resources follow, as for a new container. On an
    /// error the caller deletes the cgroup (which stops the unit).
    pub fn place_restorer(
        &self,
        pid: i32,
        resources: Option<&LinuxResources>,
        extra: Vec<systemd::Property>,
    ) -> Result<(), CgroupError> {
        if self.systemd.is_none() {
            return self.add_pid(pid);
        }
        self.start_unit(pid, resources, extra)?;
        self.create_v1()?;
        self.add_pid(pid)?;
        if let Some(r) = resources {
            self.apply(r)?;
        }
        Ok(())
    }

    /// Whether `/proc/<pid>/cgroup` puts `pid` in this cgroup (in any
    /// hierarchy: systemd's own on v1 hosts).
    fn holds(&self, pid: i32) -> bool {
        let want = format!(":{}", self.path);
        std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
            .is_ok_and(|s| s.lines().any(|l| l.ends_with(&want)))
    }

    /// Whether the cgroup holds no process any more (what a stopped unit
    /// leaves; v1 directories systemd does not manage may remain).
    fn gone(&self) -> bool {
        self.pids().map(|p| p.is_empty()).unwrap_or(true)
    }

    /// The existing sub-cgroup `sub` (relative, no `..`) of this cgroup in
    /// every hierarchy, for a process that an exec places below the
    /// container's cgroup (runc's `exec --cgroup`). Nothing is created: a
    /// container that manages its own sub-cgroups made them.
    pub fn sub_cgroup(&self, sub: &str) -> Result<Cgroup, CgroupError> {
        let invalid = |reason: String| CgroupError::InvalidSubCgroup {
            path: sub.to_string(),
            reason,
        };
        let rel = sub.trim_matches('/');
        if rel.is_empty() {
            return Ok(self.clone());
        }
        if sub.starts_with('/')
            || rel
                .split('/')
                .any(|c| c.is_empty() || c == "." || c == "..")
        {
            return Err(invalid(
                "must be a relative path below the container's cgroup, without . or ..".into(),
            ));
        }
        let child = Cgroup {
            layout: self.layout.clone(),
            path: format!("{}/{rel}", self.path.trim_end_matches('/')),
            systemd: None,
        };
        if let Some(missing) = child.dirs().into_iter().find(|d| !d.is_dir()) {
            return Err(invalid(format!("{} does not exist", missing.display())));
        }
        Ok(child)
    }

    /// The path inside each hierarchy (`/wren/<id>`).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The layout this cgroup lives in.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The container's directory in each mounted v1 hierarchy.
    fn v1_dirs(&self) -> v1::Dirs {
        self.layout
            .v1_controllers()
            .map(|m| {
                m.iter()
                    .map(|(c, mnt)| (*c, join(mnt, &self.path)))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The container's directory in the cgroup2 hierarchy (v2 and hybrid).
    pub fn unified_dir(&self) -> Option<PathBuf> {
        self.layout.unified_mount().map(|m| join(m, &self.path))
    }

    /// The container's directory for one v1 controller.
    pub fn v1_dir(&self, c: V1Controller) -> Option<PathBuf> {
        self.layout
            .v1_controllers()
            .and_then(|m| m.get(&c))
            .map(|mnt| join(mnt, &self.path))
    }

    /// Every distinct directory of this cgroup (co-mounted v1 controllers
    /// share one), v1 first, then cgroup2.
    pub fn dirs(&self) -> Vec<PathBuf> {
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for d in self.v1_dirs().into_values().chain(self.unified_dir()) {
            if seen.insert(d.clone()) {
                out.push(d);
            }
        }
        out
    }

    /// Makes the cgroup's directory in every hierarchy (parents included).
    /// v1 cpuset directories get the parent's cpus and mems; on v2 the
    /// ancestors delegate all their controllers. Idempotent.
    pub fn create(&self) -> Result<(), CgroupError> {
        self.create_unified()?;
        self.create_v1()
    }

    /// The part of [`Cgroup::create`] that `clone3(CLONE_INTO_CGROUP)`
    /// needs: the cgroup2 directory (v2 and hybrid), with the ancestors
    /// delegating their controllers on v2. A container start makes the v1
    /// directories with [`Cgroup::create_v1`] while its init is exec'ing.
    /// With the systemd driver nothing is made here: systemd makes the
    /// directory with the unit ([`Cgroup::start_unit`]).
    pub fn create_unified(&self) -> Result<(), CgroupError> {
        if self.systemd.is_some() {
            return Ok(());
        }
        let Some(d) = self.unified_dir() else {
            return Ok(());
        };
        std::fs::create_dir_all(&d).map_err(|source| CgroupError::Create {
            path: d.clone(),
            source,
        })?;
        if let Layout::V2 { mount, controllers } = &self.layout {
            v2::enable_controllers(mount, &d, controllers)?;
        }
        Ok(())
    }

    /// The rest of [`Cgroup::create`]: one directory per mounted v1
    /// hierarchy (co-mounted controllers share one), the cpuset one given
    /// its parent's cpus and mems. Nothing on pure v2.
    pub fn create_v1(&self) -> Result<(), CgroupError> {
        let mut made = BTreeSet::new();
        for d in self.v1_dirs().into_values() {
            if made.insert(d.clone()) {
                std::fs::create_dir_all(&d).map_err(|source| CgroupError::Create {
                    path: d.clone(),
                    source,
                })?;
            }
        }
        if let Some(mnt) = self
            .layout
            .v1_controllers()
            .and_then(|m| m.get(&V1Controller::Cpuset))
        {
            v1::cpuset::populate(mnt, &join(mnt, &self.path))?;
        }
        Ok(())
    }

    /// An `O_PATH` fd of the cgroup2 directory, for
    /// `clone3(CLONE_INTO_CGROUP)`. `None` on pure v1. On hybrid hosts the
    /// fd only places the child in the cgroup2 hierarchy: [`Cgroup::add_pid`]
    /// must still put it into the v1 ones before it runs container code.
    /// With the systemd driver also `None`: the unit's `PIDs` place it.
    pub fn clone_into_fd(&self) -> Result<Option<OwnedFd>, CgroupError> {
        if self.systemd.is_some() {
            return Ok(None);
        }
        let Some(dir) = self.unified_dir() else {
            return Ok(None);
        };
        let fd = open(
            &dir,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| CgroupError::Open {
            path: dir.clone(),
            source: e.into(),
        })?;
        Ok(Some(fd))
    }

    /// Where a process exec'd into the container goes when no sub-cgroup
    /// is named: this cgroup, unless its cgroup2 directory delegates
    /// controllers to children (a container that manages its own
    /// sub-cgroups moved its processes down), where cgroup v2's "no
    /// internal processes" rule makes joining it fail with EBUSY; then the
    /// cgroup2 sub-cgroup the init `init_pid` is in, as runc does.
    pub fn exec_target(&self, init_pid: i32) -> Result<Cgroup, CgroupError> {
        let Some(dir) = self.unified_dir() else {
            return Ok(self.clone());
        };
        let delegated =
            fs::read_opt(&dir, "cgroup.subtree_control")?.is_some_and(|s| !s.trim().is_empty());
        if !delegated {
            return Ok(self.clone());
        }
        let file = format!("/proc/{init_pid}/cgroup");
        let current = std::fs::read_to_string(&file).map_err(|source| CgroupError::Read {
            path: file.into(),
            source,
        })?;
        let init_path = current
            .lines()
            .find_map(|l| l.strip_prefix("0::"))
            .unwrap_or_default();
        let base = self.path.trim_end_matches('/');
        match init_path.strip_prefix(base) {
            Some(rest) if rest.starts_with('/') => self.sub_cgroup(rest.trim_start_matches('/')),
            _ => Ok(self.clone()),
        }
    }

    /// The directories of this cgroup that `pid` is not in yet (as seen in
    /// `/proc/<pid>/cgroup`), each once: v1 hierarchies (`true`), then the
    /// cgroup2 one (`false`).
    fn dirs_to_join(&self, pid: i32) -> Vec<(PathBuf, bool)> {
        let current = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
        let member = |name: &str| {
            current.lines().any(|l| {
                let mut it = l.splitn(3, ':');
                let (_, ctrls, p) = (it.next(), it.next().unwrap_or(""), it.next().unwrap_or(""));
                p == self.path && ctrls.split(',').any(|c| c == name)
            })
        };
        let mut dirs: Vec<(PathBuf, bool)> = Vec::new();
        for (c, d) in self.v1_dirs() {
            if !member(c.name()) && !dirs.iter().any(|(x, _)| *x == d) {
                dirs.push((d, true));
            }
        }
        if let Some(d) = self.unified_dir().filter(|_| !member("")) {
            dirs.push((d, false));
        }
        dirs
    }

    /// Moves `pid` into the cgroup in every hierarchy it is not already in.
    pub fn add_pid(&self, pid: i32) -> Result<(), CgroupError> {
        for (d, _) in self.dirs_to_join(pid) {
            self.write_pid(&d, pid)?;
        }
        Ok(())
    }

    /// Files through which the process `pid` joins the cgroup itself, in
    /// every hierarchy it is not already in: `tasks` on v1 (written with
    /// "0" by a single-threaded process, this moves it without taking the
    /// kernel's global threadgroup rwsem, whose first write-lock costs an
    /// RCU grace period, ~5-10 ms, per container start), `cgroup.procs` on
    /// cgroup2 (used only when `CLONE_INTO_CGROUP` could not place it).
    pub fn self_join_files(&self, pid: i32) -> Result<Vec<OwnedFd>, CgroupError> {
        self.dirs_to_join(pid)
            .into_iter()
            .map(|(d, v1)| {
                let path = d.join(if v1 { "tasks" } else { "cgroup.procs" });
                open(&path, OFlag::O_WRONLY | OFlag::O_CLOEXEC, Mode::empty()).map_err(|e| {
                    CgroupError::AddPid {
                        pid,
                        path,
                        source: e.into(),
                    }
                })
            })
            .collect()
    }

    fn write_pid(&self, dir: &Path, pid: i32) -> Result<(), CgroupError> {
        fs::write(dir, "cgroup.procs", &pid.to_string()).map_err(|e| match e {
            CgroupError::Write { path, source, .. } => CgroupError::AddPid { pid, path, source },
            e => e,
        })
    }

    /// Applies `resources` for the first time (after the init has done its
    /// mounts, as runc does). Everything is validated first.
    /// With the systemd driver, the unit's TasksMax is set here too (left
    /// out of [`Cgroup::start_unit`]).
    pub fn apply(&self, resources: &LinuxResources) -> Result<(), CgroupError> {
        validate(resources, &self.layout)?;
        self.write_resources(resources)?;
        if let (Some(unit), Some(_)) = (&self.systemd, resources.pids()) {
            let tasks: Vec<_> = systemd::properties(resources, self.layout.is_v2())?
                .into_iter()
                .filter(|(n, _)| n == "TasksMax")
                .collect();
            systemd::Bus::connect(&unit.name)?.set(tasks)?;
        }
        Ok(())
    }

    /// Changes resources of a running container. Only the fields that are
    /// set change; v1 device rules are updated by difference and the v2
    /// device program is replaced without a gap.
    /// With the systemd driver, systemd's properties change first
    /// (`SetUnitProperties`), so its view and the files agree.
    pub fn update(&self, resources: &LinuxResources) -> Result<(), CgroupError> {
        validate(resources, &self.layout)?;
        if let Some(unit) = &self.systemd {
            let props = systemd::properties(resources, self.layout.is_v2())?;
            // On v1 systemd rewrites the device rules deny-all first: the
            // container is frozen meanwhile (as runc does), so it never
            // sees a device refused that stays allowed.
            let freeze = props.iter().any(|(n, _)| n == "DevicePolicy")
                && self.freezer_state().ok() == Some(FreezerState::Thawed)
                && self.freeze().is_ok();
            let res = if props.is_empty() {
                Ok(())
            } else {
                systemd::Bus::connect(&unit.name).and_then(|mut b| b.set(props))
            }
            .and_then(|()| self.write_resources(resources));
            if freeze {
                self.thaw()?;
            }
            return res;
        }
        self.write_resources(resources)
    }

    fn write_resources(&self, r: &LinuxResources) -> Result<(), CgroupError> {
        match &self.layout {
            Layout::V1 { .. } => v1::apply(&self.v1_dirs(), r, true),
            Layout::Hybrid { .. } => {
                let v1_devices = self.layout.has_v1(V1Controller::Devices);
                let unified = self.unified_dir();
                if let (Some(u), Some(map)) = (&unified, r.unified()) {
                    v2::unified::check(u, map)?;
                }
                v1::apply(&self.v1_dirs(), r, v1_devices)?;
                if let Some(u) = &unified {
                    if let (false, Some(devs)) = (v1_devices, r.devices()) {
                        v2::devices::apply(u, &devices::rules_from_oci(devs)?)?;
                    }
                    if let Some(map) = r.unified() {
                        v2::unified::apply(u, map)?;
                    }
                }
                Ok(())
            }
            Layout::V2 { mount, .. } => v2::apply(&join(mount, &self.path), r, true),
        }
    }

    /// The directory whose `cgroup.procs` lists the container's processes.
    fn procs_dir(&self) -> Option<PathBuf> {
        match &self.layout {
            Layout::V2 { .. } => self.unified_dir(),
            _ => [
                V1Controller::Freezer,
                V1Controller::Memory,
                V1Controller::Pids,
                V1Controller::Cpu,
                V1Controller::Devices,
            ]
            .into_iter()
            .find_map(|c| self.v1_dir(c))
            .or_else(|| self.v1_dirs().into_values().next())
            .or_else(|| self.unified_dir()),
        }
    }

    /// Every process in the cgroup and its sub-cgroups.
    pub fn pids(&self) -> Result<Vec<i32>, CgroupError> {
        let mut out = Vec::new();
        if let Some(d) = self.procs_dir() {
            fs::pids_recursive(&d, &mut out)?;
        }
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    /// Where freezing happens: the v1 freezer, else cgroup2's cgroup.freeze.
    fn freezer(&self) -> Result<(bool, PathBuf), CgroupError> {
        if let Some(d) = self.v1_dir(V1Controller::Freezer) {
            return Ok((true, d));
        }
        match self.unified_dir() {
            Some(d) => Ok((false, d)),
            None => Err(CgroupError::NoController {
                op: "freeze",
                controller: "freezer",
            }),
        }
    }

    /// Freezes every process and waits until the kernel says frozen.
    pub fn freeze(&self) -> Result<(), CgroupError> {
        match self.freezer()? {
            (true, d) => v1::freezer::freeze(&d),
            (false, d) => v2::freezer::freeze(&d),
        }
    }

    /// Thaws the cgroup and waits until it runs again.
    pub fn thaw(&self) -> Result<(), CgroupError> {
        match self.freezer()? {
            (true, d) => v1::freezer::thaw(&d),
            (false, d) => v2::freezer::thaw(&d),
        }
    }

    /// Thawed, Freezing ("pausing") or Frozen.
    pub fn freezer_state(&self) -> Result<FreezerState, CgroupError> {
        match self.freezer()? {
            (true, d) => v1::freezer::state(&d),
            (false, d) => v2::freezer::state(&d),
        }
    }

    /// Usage, limits and counters. `stats.version` says whether they fit
    /// containerd's v1 or v2 metrics.
    pub fn stats(&self) -> Result<Stats, CgroupError> {
        let mut s = Stats::default();
        match &self.layout {
            Layout::V2 { mount, .. } => {
                s.version = stats::StatsVersion::V2;
                v2::stats(&join(mount, &self.path), &mut s)?;
            }
            _ => {
                v1::stats(&self.v1_dirs(), &mut s)?;
                if let Some(u) = self.unified_dir() {
                    s.pressure = v2::pressure(&u)?;
                }
            }
        }
        Ok(s)
    }

    /// A pollable OOM-kill notifier (see [`oom`]).
    pub fn oom_watcher(&self) -> Result<OomWatcher, CgroupError> {
        if let Some(d) = self.v1_dir(V1Controller::Memory) {
            return OomWatcher::v1(&d);
        }
        match &self.layout {
            Layout::V2 { mount, .. } => OomWatcher::v2(&join(mount, &self.path)),
            _ => Err(CgroupError::NoController {
                op: "watch for OOM kills",
                controller: "memory",
            }),
        }
    }

    /// Sends `signal` to every process of the cgroup. SIGKILL uses
    /// `cgroup.kill` where the kernel has it (atomic, no pid races); other
    /// signals, and hosts without it, freeze the cgroup (so nothing forks
    /// in between), signal every pid and thaw. On hybrid hosts the v1 list is
    /// also swept after `cgroup.kill`, for processes placed only in v1.
    pub fn kill_all(&self, signal: i32) -> Result<(), CgroupError> {
        if signal == libc::SIGKILL {
            if let Some(u) = self.unified_dir() {
                if u.join("cgroup.kill").exists() {
                    fs::write(&u, "cgroup.kill", "1")?;
                    if self.layout.is_v2() {
                        return Ok(());
                    }
                }
            }
        }
        let sig = Signal::try_from(signal).map_err(|e| CgroupError::Kill {
            pid: 0,
            signal,
            source: e.into(),
        })?;
        let frozen = match self.freeze() {
            Ok(()) => true,
            Err(e) => {
                log::debug!("kill_all without freezing: {e}");
                false
            }
        };
        let mut result = Ok(());
        for pid in self.pids()? {
            match kill(Pid::from_raw(pid), sig) {
                Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
                Err(e) => {
                    result = Err(CgroupError::Kill {
                        pid,
                        signal,
                        source: e.into(),
                    });
                    break;
                }
            }
        }
        if frozen {
            self.thaw()?;
        }
        result
    }

    /// Removes the cgroup (and any sub-cgroups the container made) from every
    /// hierarchy, retrying while exiting tasks drain. Already gone is fine.
    /// With the systemd driver the unit is stopped first (systemd removes
    /// its cgroup); directories it does not manage (v1 hierarchies systemd
    /// does not use) are removed after.
    pub fn delete(&self) -> Result<(), CgroupError> {
        let deadline = Instant::now() + DELETE_TIMEOUT;
        if let Some(unit) = &self.systemd {
            match systemd::Bus::connect(&unit.name) {
                Ok(mut bus) => bus.stop(&|| self.gone())?,
                // Never made (no systemd to make it): nothing to stop.
                Err(e) if !self.unified_dir().is_some_and(|d| d.exists()) => {
                    log::debug!("{e}")
                }
                Err(e) => return Err(e),
            }
        }
        for d in self.dirs() {
            remove_tree(&d, deadline)?;
        }
        Ok(())
    }
}

/// rmdir of `dir`'s sub-cgroups, deepest first, then of `dir` itself.
fn remove_tree(dir: &Path, deadline: Instant) -> Result<(), CgroupError> {
    // Most containers make no sub-cgroups: try the rmdir before listing a
    // directory of a few dozen kernfs files.
    match std::fs::remove_dir(dir) {
        Ok(()) => return Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(_) => {}
    }
    for child in fs::subdirs(dir)? {
        remove_tree(&child, deadline)?;
    }
    let mut delay = Duration::from_millis(1);
    loop {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                std::thread::sleep(delay);
                delay = (delay * 2).min(Duration::from_millis(100));
            }
            Err(source) => {
                return Err(CgroupError::Delete {
                    path: dir.to_owned(),
                    source,
                })
            }
        }
    }
}
