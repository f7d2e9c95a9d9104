//! v1 `cpuacct`: CPU time accounting (nothing to configure).

use std::path::Path;

use crate::cgroups::fs;
use crate::cgroups::stats::CpuStats;
use crate::cgroups::CgroupError;

/// USER_HZ, the unit of cpuacct.stat on every Linux architecture we run on.
const USER_HZ: u64 = 100;

pub(crate) fn stats(dir: &Path, out: &mut CpuStats) -> Result<(), CgroupError> {
    out.usage_total_ns = fs::read_u64(dir, "cpuacct.usage")?;
    if let Some(pc) = fs::read_opt(dir, "cpuacct.usage_percpu")? {
        out.per_cpu_ns = pc
            .split_whitespace()
            .filter_map(|v| v.parse().ok())
            .collect();
    }
    // Nanosecond user/system split where the kernel has it, else the tick-based one.
    match (
        fs::read_opt(dir, "cpuacct.usage_user")?,
        fs::read_opt(dir, "cpuacct.usage_sys")?,
    ) {
        (Some(u), Some(s)) => {
            out.usage_user_ns = fs::parse_u64(dir, "cpuacct.usage_user", &u)?;
            out.usage_system_ns = fs::parse_u64(dir, "cpuacct.usage_sys", &s)?;
        }
        _ => {
            let st = fs::read_flat_keyed(dir, "cpuacct.stat")?;
            let ns = |k: &str| st.get(k).copied().unwrap_or(0) * (1_000_000_000 / USER_HZ);
            out.usage_user_ns = ns("user");
            out.usage_system_ns = ns("system");
        }
    }
    Ok(())
}
