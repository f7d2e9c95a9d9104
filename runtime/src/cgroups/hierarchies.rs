//! The host's cgroup hierarchies and the container's place in each, as
//! stage 1 of the init sees them before it unshares its cgroup namespace:
//! what the container's `cgroup` mount shows (see `mounts::mount_one`).
//!
//! Unlike the rest of this module, this runs in the init (stage 1, still in
//! the host's mount and cgroup namespaces); it only reads
//! `/proc/self/mountinfo` and `/proc/self/cgroup`.

use std::io;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// A cgroup hierarchy of the host as the init sees it before it unshares
/// its cgroup namespace: what to mount under the container's cgroup mount.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CgroupHierarchy {
    /// Subdirectory name under /sys/fs/cgroup ("memory", "unified", "" for v2).
    pub name: String,
    /// Filesystem type: "cgroup" or "cgroup2".
    pub fstype: String,
    /// Superblock options for a fresh mount ("memory", "name=systemd").
    pub options: String,
    /// Host directory of the container's cgroup in this hierarchy.
    pub host_path: PathBuf,
}

/// Read the host's cgroup hierarchies and this process's place in them from
/// /proc/self/mountinfo and /proc/self/cgroup.
pub fn host_cgroup_hierarchies() -> io::Result<Vec<CgroupHierarchy>> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")?;
    let cgroup = std::fs::read_to_string("/proc/self/cgroup")?;
    let mut out = Vec::new();
    for m in crate::mountinfo::parse(&mountinfo) {
        let (root, fstype, superopts) = (m.root.as_str(), m.fstype.as_str(), &m.super_options);
        if fstype != "cgroup" && fstype != "cgroup2" {
            continue;
        }
        let mountpoint = m.mount_point.to_string_lossy();
        let Some(name) = mountpoint.strip_prefix("/sys/fs/cgroup") else {
            continue;
        };
        let name = name.trim_start_matches('/').to_string();
        let (options, own) = if fstype == "cgroup2" {
            (String::new(), own_cgroup(&cgroup, |c| c.is_empty()))
        } else {
            let opts: Vec<&str> = superopts
                .split(',')
                .filter(|o| *o != "rw" && *o != "ro")
                .collect();
            let own = own_cgroup(&cgroup, |c| c.split(',').any(|k| opts.contains(&k)));
            (opts.join(","), own)
        };
        let Some(own) = own else { continue };
        let rel = own
            .strip_prefix(root)
            .unwrap_or(&own)
            .trim_start_matches('/');
        out.push(CgroupHierarchy {
            name,
            fstype: fstype.to_string(),
            options,
            host_path: m.mount_point.join(rel),
        });
    }
    Ok(out)
}

fn own_cgroup(cgroup: &str, matches: impl Fn(&str) -> bool) -> Option<String> {
    cgroup.lines().find_map(|l| {
        let mut parts = l.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        matches(controllers).then(|| path.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_hierarchies_are_found() {
        let h = host_cgroup_hierarchies().unwrap();
        if h.is_empty() {
            eprintln!("skip: no cgroup mounts visible");
            return;
        }
        for x in &h {
            assert!(x.host_path.starts_with("/sys/fs/cgroup"), "{x:?}");
        }
    }
}
