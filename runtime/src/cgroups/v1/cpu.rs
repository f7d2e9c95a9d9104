//! v1 `cpu`: cpu.shares, CFS quota/period/burst, realtime runtime/period,
//! cpu.idle; throttling counters for stats.

use std::path::Path;

use oci_spec::runtime::LinuxCpu;

use crate::cgroups::fs;
use crate::cgroups::stats::CpuStats;
use crate::cgroups::CgroupError;

pub(crate) fn apply(dir: &Path, c: &LinuxCpu) -> Result<(), CgroupError> {
    if let Some(s) = c.shares().filter(|s| *s != 0) {
        fs::write(dir, "cpu.shares", &s.to_string())?;
    }
    // Period first: a quota is only meaningful against the period it is for.
    if let Some(p) = c.period().filter(|p| *p != 0) {
        fs::write(dir, "cpu.cfs_period_us", &p.to_string())?;
    }
    if let Some(q) = c.quota().filter(|q| *q != 0) {
        fs::write(dir, "cpu.cfs_quota_us", &q.to_string())?;
    }
    if let Some(b) = c.burst() {
        fs::write(dir, "cpu.cfs_burst_us", &b.to_string())?;
    }
    if let Some(p) = c.realtime_period().filter(|p| *p != 0) {
        fs::write(dir, "cpu.rt_period_us", &p.to_string())?;
    }
    if let Some(r) = c.realtime_runtime().filter(|r| *r != 0) {
        fs::write(dir, "cpu.rt_runtime_us", &r.to_string())?;
    }
    if let Some(i) = c.idle() {
        fs::write(dir, "cpu.idle", &i.to_string())?;
    }
    Ok(())
}

pub(crate) fn stats(dir: &Path, out: &mut CpuStats) -> Result<(), CgroupError> {
    let st = fs::read_flat_keyed(dir, "cpu.stat")?;
    out.nr_periods = st.get("nr_periods").copied().unwrap_or(0);
    out.nr_throttled = st.get("nr_throttled").copied().unwrap_or(0);
    out.throttled_time_ns = st.get("throttled_time").copied().unwrap_or(0);
    Ok(())
}
