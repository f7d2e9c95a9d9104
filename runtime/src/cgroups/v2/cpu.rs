//! v2 `cpu`: cpu.weight (from OCI shares), cpu.max, cpu.max.burst, cpu.idle;
//! usage and throttling from cpu.stat (present even without the controller).

use std::path::Path;

use oci_spec::runtime::LinuxCpu;

use crate::cgroups::convert::cpu_shares_to_weight;
use crate::cgroups::stats::CpuStats;
use crate::cgroups::{fs, CgroupError};

/// The `cpu.max` text for a quota/period pair; `current` is the file's present
/// content, used to keep the half that is not being changed.
pub(crate) fn cpu_max(quota: Option<i64>, period: Option<u64>, current: &str) -> Option<String> {
    let quota = quota.filter(|q| *q != 0);
    let period = period.filter(|p| *p != 0);
    let q = match quota {
        Some(q) if q > 0 => q.to_string(),
        Some(_) => "max".to_owned(),
        None => current
            .split_whitespace()
            .next()
            .unwrap_or("max")
            .to_owned(),
    };
    match (quota, period) {
        (None, None) => None,
        (_, Some(p)) => Some(format!("{q} {p}")),
        (Some(_), None) => Some(q),
    }
}

pub(crate) fn apply(dir: &Path, c: &LinuxCpu) -> Result<(), CgroupError> {
    if let Some(s) = c.shares().filter(|s| *s != 0) {
        fs::write(dir, "cpu.weight", &cpu_shares_to_weight(s).to_string())?;
    }
    if c.quota().is_some_and(|q| q != 0) || c.period().is_some_and(|p| p != 0) {
        let current = if c.quota().is_some_and(|q| q != 0) {
            String::new()
        } else {
            fs::read_opt(dir, "cpu.max")?.unwrap_or_default()
        };
        if let Some(v) = cpu_max(c.quota(), c.period(), &current) {
            fs::write(dir, "cpu.max", &v)?;
        }
    }
    if let Some(b) = c.burst() {
        fs::write(dir, "cpu.max.burst", &b.to_string())?;
    }
    if let Some(i) = c.idle() {
        fs::write(dir, "cpu.idle", &i.to_string())?;
    }
    Ok(())
}

pub(crate) fn stats(dir: &Path, out: &mut CpuStats) -> Result<(), CgroupError> {
    let st = fs::read_flat_keyed(dir, "cpu.stat")?;
    let g = |k: &str| st.get(k).copied().unwrap_or(0);
    out.usage_total_ns = g("usage_usec") * 1000;
    out.usage_user_ns = g("user_usec") * 1000;
    out.usage_system_ns = g("system_usec") * 1000;
    out.nr_periods = g("nr_periods");
    out.nr_throttled = g("nr_throttled");
    out.throttled_time_ns = g("throttled_usec") * 1000;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_max_forms() {
        assert_eq!(
            cpu_max(Some(50000), Some(100000), "").as_deref(),
            Some("50000 100000")
        );
        assert_eq!(cpu_max(Some(50000), None, "").as_deref(), Some("50000"));
        assert_eq!(cpu_max(Some(-1), None, "").as_deref(), Some("max"));
        assert_eq!(
            cpu_max(Some(-1), Some(20000), "").as_deref(),
            Some("max 20000")
        );
        // Period alone keeps the current quota instead of resetting it.
        assert_eq!(
            cpu_max(None, Some(20000), "30000 100000\n").as_deref(),
            Some("30000 20000")
        );
        assert_eq!(cpu_max(None, None, "x"), None);
    }
}
