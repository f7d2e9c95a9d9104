//! v1 `net_prio`: per-interface priorities, one `ifname prio` line each.

use std::path::Path;

use oci_spec::runtime::LinuxNetwork;

use crate::cgroups::fs;
use crate::cgroups::CgroupError;

pub(crate) fn apply(dir: &Path, n: &LinuxNetwork) -> Result<(), CgroupError> {
    for p in n.priorities().iter().flatten() {
        fs::write(
            dir,
            "net_prio.ifpriomap",
            &format!("{} {}", p.name(), p.priority()),
        )?;
    }
    Ok(())
}
