//! v1 `cpuset`: cpuset.cpus and cpuset.mems. A new v1 cpuset cgroup starts
//! with both empty, and no process can join it until they are filled in, so
//! [`populate`] copies the parent's values down on create.

use std::path::Path;

use oci_spec::runtime::LinuxCpu;

use crate::cgroups::fs;
use crate::cgroups::CgroupError;

pub(crate) fn apply(dir: &Path, c: &LinuxCpu) -> Result<(), CgroupError> {
    if let Some(cpus) = c.cpus().as_deref().filter(|s| !s.trim().is_empty()) {
        fs::write(dir, "cpuset.cpus", cpus)?;
    }
    if let Some(mems) = c.mems().as_deref().filter(|s| !s.trim().is_empty()) {
        fs::write(dir, "cpuset.mems", mems)?;
    }
    Ok(())
}

/// Fills empty cpuset.cpus / cpuset.mems of every directory from `mount`
/// (exclusive) down to `dir` with the parent's value.
pub(crate) fn populate(mount: &Path, dir: &Path) -> Result<(), CgroupError> {
    let Ok(rel) = dir.strip_prefix(mount) else {
        return Ok(());
    };
    let mut parent = mount.to_path_buf();
    for comp in rel.components() {
        let child = parent.join(comp);
        for file in ["cpuset.cpus", "cpuset.mems"] {
            let cur = fs::read_opt(&child, file)?.unwrap_or_default();
            if cur.trim().is_empty() {
                let from = fs::read(&parent, file)?;
                if !from.trim().is_empty() {
                    fs::write(&child, file, from.trim())?;
                }
            }
        }
        parent = child;
    }
    Ok(())
}
