//! Where the cgroup filesystems are and which layout the host uses (v1, hybrid
//! or v2), read from `/proc/self/mountinfo`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::CgroupError;

/// A cgroup v1 controller that wren knows how to join and configure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum V1Controller {
    /// `cpu`: shares, CFS quota/period/burst, realtime, idle.
    Cpu,
    /// `cpuacct`: usage accounting.
    Cpuacct,
    /// `cpuset`: cpus and memory nodes.
    Cpuset,
    /// `memory`: limits, swap, OOM.
    Memory,
    /// `devices`: the allow/deny list.
    Devices,
    /// `freezer`: pause/resume.
    Freezer,
    /// `blkio`: weights and throttling.
    Blkio,
    /// `pids`: process count limit.
    Pids,
    /// `hugetlb`: huge page limits.
    Hugetlb,
    /// `net_cls`: classid for traffic control.
    NetCls,
    /// `net_prio`: per-interface priorities.
    NetPrio,
    /// `perf_event`: joined, nothing to configure.
    PerfEvent,
    /// `rdma`: HCA handle/object limits.
    Rdma,
    /// The named hierarchy `name=systemd` of hybrid and v1 hosts: no
    /// controller, joined only. runc places containers in every mounted
    /// hierarchy, and tools on such hosts (podman, docker, systemd-cgls)
    /// read a process's unit from this one.
    NameSystemd,
}

impl V1Controller {
    /// Every controller, in the order processes are added to them.
    pub const ALL: [V1Controller; 14] = [
        V1Controller::Cpu,
        V1Controller::Cpuacct,
        V1Controller::Cpuset,
        V1Controller::Memory,
        V1Controller::Devices,
        V1Controller::Freezer,
        V1Controller::Blkio,
        V1Controller::Pids,
        V1Controller::Hugetlb,
        V1Controller::NetCls,
        V1Controller::NetPrio,
        V1Controller::PerfEvent,
        V1Controller::Rdma,
        V1Controller::NameSystemd,
    ];

    /// The kernel's name for it (as in mount options and /proc/<pid>/cgroup).
    pub fn name(self) -> &'static str {
        match self {
            V1Controller::Cpu => "cpu",
            V1Controller::Cpuacct => "cpuacct",
            V1Controller::Cpuset => "cpuset",
            V1Controller::Memory => "memory",
            V1Controller::Devices => "devices",
            V1Controller::Freezer => "freezer",
            V1Controller::Blkio => "blkio",
            V1Controller::Pids => "pids",
            V1Controller::Hugetlb => "hugetlb",
            V1Controller::NetCls => "net_cls",
            V1Controller::NetPrio => "net_prio",
            V1Controller::PerfEvent => "perf_event",
            V1Controller::Rdma => "rdma",
            V1Controller::NameSystemd => "name=systemd",
        }
    }

    /// The controller called `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.name() == name)
    }
}

/// The host's cgroup layout.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    /// Only cgroup v1 hierarchies.
    V1 {
        /// Mount point of each mounted controller (co-mounted ones share one).
        controllers: BTreeMap<V1Controller, PathBuf>,
    },
    /// v1 controllers plus a cgroup2 mount (usually `/sys/fs/cgroup/unified`),
    /// which processes join too but which normally carries no controllers.
    Hybrid {
        /// Mount point of each mounted v1 controller.
        controllers: BTreeMap<V1Controller, PathBuf>,
        /// The cgroup2 mount point.
        unified: PathBuf,
        /// Controllers listed in the cgroup2 root's `cgroup.controllers`.
        unified_controllers: BTreeSet<String>,
    },
    /// Pure cgroup v2.
    V2 {
        /// The cgroup2 mount point.
        mount: PathBuf,
        /// Controllers listed in the root's `cgroup.controllers`.
        controllers: BTreeSet<String>,
    },
}

impl Layout {
    /// The v1 controllers and their mount points (empty on pure v2).
    pub fn v1_controllers(&self) -> Option<&BTreeMap<V1Controller, PathBuf>> {
        match self {
            Layout::V1 { controllers } | Layout::Hybrid { controllers, .. } => Some(controllers),
            Layout::V2 { .. } => None,
        }
    }

    /// The cgroup2 mount point, if any.
    pub fn unified_mount(&self) -> Option<&Path> {
        match self {
            Layout::V1 { .. } => None,
            Layout::Hybrid { unified, .. } => Some(unified),
            Layout::V2 { mount, .. } => Some(mount),
        }
    }

    /// Whether resources are managed through cgroup2 (pure v2 only).
    pub fn is_v2(&self) -> bool {
        matches!(self, Layout::V2 { .. })
    }

    /// Whether a v1 controller is mounted.
    pub fn has_v1(&self, c: V1Controller) -> bool {
        self.v1_controllers().is_some_and(|m| m.contains_key(&c))
    }

    /// Whether a cgroup2 controller is available at the root (pure v2 only).
    pub fn has_v2(&self, c: &str) -> bool {
        matches!(self, Layout::V2 { controllers, .. } if controllers.contains(c))
    }
}

/// Where cgroupfs is and how it is laid out. [`CgroupRoot::host`] reads the
/// real mount table; tests point [`CgroupRoot::new`] at a fake tree.
#[derive(Clone, Debug)]
pub struct CgroupRoot {
    layout: Layout,
    default_parent: String,
}

/// Parent of container cgroups when `cgroupsPath` is unset or relative.
pub const DEFAULT_PARENT: &str = "wren";

impl CgroupRoot {
    /// The host's layout: cgroupfs under `/sys/fs/cgroup`, from `/proc/self/mountinfo`.
    pub fn host() -> Result<Self, CgroupError> {
        Self::new(
            Path::new("/sys/fs/cgroup"),
            Path::new("/proc/self/mountinfo"),
        )
    }

    /// The layout of the cgroup mounts at or under `root` listed in `mountinfo`.
    pub fn new(root: &Path, mountinfo: &Path) -> Result<Self, CgroupError> {
        let text = std::fs::read_to_string(mountinfo).map_err(|source| CgroupError::MountInfo {
            path: mountinfo.to_owned(),
            source,
        })?;
        Ok(Self::with_layout(detect(root, &text)?))
    }

    /// A root with a given layout (for example: treat a hybrid host's unified
    /// hierarchy as a pure v2 one).
    pub fn with_layout(layout: Layout) -> Self {
        CgroupRoot {
            layout,
            default_parent: DEFAULT_PARENT.to_owned(),
        }
    }

    /// Changes the parent used for unset and relative `cgroupsPath`s.
    pub fn with_default_parent(mut self, parent: &str) -> Self {
        parent
            .trim_matches('/')
            .clone_into(&mut self.default_parent);
        self
    }

    /// The detected layout.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The parent for unset and relative `cgroupsPath`s (no slashes around it).
    pub fn default_parent(&self) -> &str {
        &self.default_parent
    }
}

/// Detects the layout from mountinfo text, considering mounts at or below `root`.
pub(crate) fn detect(root: &Path, mountinfo: &str) -> Result<Layout, CgroupError> {
    let mut v1: BTreeMap<V1Controller, PathBuf> = BTreeMap::new();
    let mut unified: Option<PathBuf> = None;
    for m in crate::mountinfo::parse(mountinfo) {
        let mountpoint = m.mount_point;
        if !mountpoint.starts_with(root) {
            continue;
        }
        match m.fstype.as_str() {
            "cgroup2" => {
                // Later mounts shadow earlier ones at the same place; keep the
                // one closest to the root.
                let better = match &unified {
                    None => true,
                    Some(u) => mountpoint.components().count() < u.components().count(),
                };
                if better {
                    unified = Some(mountpoint);
                }
            }
            "cgroup" => {
                for opt in m.super_options.split(',') {
                    if let Some(c) = V1Controller::from_name(opt) {
                        v1.entry(c).or_insert_with(|| mountpoint.clone());
                    }
                }
            }
            _ => {}
        }
    }
    let read_controllers = |dir: &Path| -> BTreeSet<String> {
        std::fs::read_to_string(dir.join("cgroup.controllers"))
            .map(|s| s.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default()
    };
    match (v1.is_empty(), unified) {
        (true, Some(mount)) => Ok(Layout::V2 {
            controllers: read_controllers(&mount),
            mount,
        }),
        (false, Some(unified)) => Ok(Layout::Hybrid {
            controllers: v1,
            unified_controllers: read_controllers(&unified),
            unified,
        }),
        (false, None) => Ok(Layout::V1 { controllers: v1 }),
        (true, None) => Err(CgroupError::NoCgroupfs {
            root: root.to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn detects_hybrid_with_separate_cpu_and_cpuacct() {
        let l = detect(Path::new("/sys/fs/cgroup"), HYBRID).unwrap();
        let Layout::Hybrid {
            controllers,
            unified,
            ..
        } = &l
        else {
            panic!("not hybrid: {l:?}");
        };
        assert_eq!(unified, Path::new("/sys/fs/cgroup/unified"));
        assert_eq!(
            controllers[&V1Controller::Cpu],
            Path::new("/sys/fs/cgroup/cpu")
        );
        assert_eq!(
            controllers[&V1Controller::Cpuacct],
            Path::new("/sys/fs/cgroup/cpuacct")
        );
        assert!(!controllers.contains_key(&V1Controller::Pids));
        assert_eq!(
            controllers.len(),
            4,
            "name=systemd is joined like a controller"
        );
    }

    #[test]
    fn detects_v2_and_v1_and_comounts() {
        let v2 = "30 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n";
        assert!(matches!(
            detect(Path::new("/sys/fs/cgroup"), v2).unwrap(),
            Layout::V2 { .. }
        ));
        let v1 = "32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n";
        let l = detect(Path::new("/sys/fs/cgroup"), v1).unwrap();
        let m = l.v1_controllers().unwrap();
        assert_eq!(m[&V1Controller::Cpu], m[&V1Controller::Cpuacct]);
        assert!(!l.is_v2());
    }

    #[test]
    fn ignores_mounts_outside_root_and_errors_when_none() {
        let other = "30 23 0:26 / /elsewhere rw - cgroup2 cgroup2 rw\n";
        assert!(matches!(
            detect(Path::new("/sys/fs/cgroup"), other),
            Err(CgroupError::NoCgroupfs { .. })
        ));
    }
}
