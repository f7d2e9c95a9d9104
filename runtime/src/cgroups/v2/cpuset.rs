//! v2 `cpuset`: cpuset.cpus and cpuset.mems (empty means "inherit", so no
//! copying down as on v1).

use std::path::Path;

use oci_spec::runtime::LinuxCpu;

use crate::cgroups::{fs, CgroupError};

pub(crate) fn apply(dir: &Path, c: &LinuxCpu) -> Result<(), CgroupError> {
    if let Some(cpus) = c.cpus().as_deref().filter(|s| !s.trim().is_empty()) {
        fs::write(dir, "cpuset.cpus", cpus)?;
    }
    if let Some(mems) = c.mems().as_deref().filter(|s| !s.trim().is_empty()) {
        fs::write(dir, "cpuset.mems", mems)?;
    }
    Ok(())
}
