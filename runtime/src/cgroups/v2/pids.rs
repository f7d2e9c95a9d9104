//! v2 `pids`: pids.max (same format as v1).

use std::path::Path;

use oci_spec::runtime::LinuxPids;

use crate::cgroups::{fs, CgroupError};

pub(crate) fn apply(dir: &Path, p: &LinuxPids) -> Result<(), CgroupError> {
    fs::write(dir, "pids.max", &crate::cgroups::v1::pids::max_value(p))
}
