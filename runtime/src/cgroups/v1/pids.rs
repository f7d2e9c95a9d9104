//! v1 `pids`: pids.max; pids.current for stats.

use std::path::Path;

use oci_spec::runtime::LinuxPids;

use crate::cgroups::fs;
use crate::cgroups::stats::PidsStats;
use crate::cgroups::CgroupError;

/// `pids.max` text for an OCI limit (0 or negative: unlimited).
pub(crate) fn max_value(p: &LinuxPids) -> String {
    if p.limit() > 0 {
        p.limit().to_string()
    } else {
        "max".to_owned()
    }
}

pub(crate) fn apply(dir: &Path, p: &LinuxPids) -> Result<(), CgroupError> {
    fs::write(dir, "pids.max", &max_value(p))
}

/// Also used for v2: the files are the same.
pub(crate) fn stats(dir: &Path, out: &mut PidsStats) -> Result<(), CgroupError> {
    out.current = fs::read_u64(dir, "pids.current")?;
    let max = fs::read_u64(dir, "pids.max")?;
    out.limit = if max == u64::MAX { 0 } else { max };
    Ok(())
}
