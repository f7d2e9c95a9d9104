//! v1 `memory`: limit, soft limit (reservation), memory+swap, swappiness,
//! the OOM killer switch; usage, the memory.stat breakdown and OOM counters.

use std::path::Path;

use oci_spec::runtime::LinuxMemory;

use crate::cgroups::fs;
use crate::cgroups::stats::{MemoryEntry, MemoryStats};
use crate::cgroups::CgroupError;

const LIMIT: &str = "memory.limit_in_bytes";
const MEMSW: &str = "memory.memsw.limit_in_bytes";

pub(crate) fn apply(dir: &Path, m: &LinuxMemory) -> Result<(), CgroupError> {
    let limit = m.limit().unwrap_or(0);
    let mut swap = m.swap().unwrap_or(0);
    let has_memsw = dir.join(MEMSW).exists();
    // Unlimited memory with swap unset: unlimited memory+swap as well.
    if limit == -1 && swap == 0 && has_memsw {
        swap = -1;
    }
    if swap != 0 && !has_memsw {
        return Err(CgroupError::Invalid {
            field: "memory.swap".into(),
            reason: "this kernel has no swap accounting (memory.memsw.*)".into(),
        });
    }
    if limit != 0 && swap != 0 {
        // The kernel insists memsw >= limit at every moment: raise memsw
        // first when growing, lower the limit first when shrinking.
        let cur = fs::read_u64(dir, LIMIT)?;
        if swap == -1 || (cur as i128) < i128::from(swap) {
            fs::write(dir, MEMSW, &swap.to_string())?;
            fs::write(dir, LIMIT, &limit.to_string())?;
        } else {
            fs::write(dir, LIMIT, &limit.to_string())?;
            fs::write(dir, MEMSW, &swap.to_string())?;
        }
    } else {
        if limit != 0 {
            fs::write(dir, LIMIT, &limit.to_string())?;
        }
        if swap != 0 {
            fs::write(dir, MEMSW, &swap.to_string())?;
        }
    }
    if let Some(r) = m.reservation().filter(|r| *r != 0) {
        fs::write(dir, "memory.soft_limit_in_bytes", &r.to_string())?;
    }
    if let Some(s) = m.swappiness() {
        fs::write(dir, "memory.swappiness", &s.to_string())?;
    }
    if let Some(d) = m.disable_oom_killer() {
        fs::write(dir, "memory.oom_control", if d { "1" } else { "0" })?;
    }
    if m.kernel().is_some() || m.kernel_tcp().is_some() {
        log::warn!("memory.kernel and memory.kernelTCP are deprecated and ignored");
    }
    Ok(())
}

fn entry(dir: &Path, prefix: &str) -> Result<MemoryEntry, CgroupError> {
    let f = |s: &str| fs::read_u64(dir, &format!("{prefix}{s}"));
    Ok(MemoryEntry {
        usage: f("usage_in_bytes")?,
        max_usage: f("max_usage_in_bytes")?,
        limit: f("limit_in_bytes")?,
        failcnt: f("failcnt")?,
    })
}

pub(crate) fn stats(dir: &Path, out: &mut MemoryStats) -> Result<(), CgroupError> {
    out.usage = entry(dir, "memory.")?;
    out.swap = entry(dir, "memory.memsw.")?;
    out.kernel = entry(dir, "memory.kmem.")?;
    out.kernel_tcp = entry(dir, "memory.kmem.tcp.")?;
    out.stat = fs::read_flat_keyed(dir, "memory.stat")?;
    let oc = fs::read_flat_keyed(dir, "memory.oom_control")?;
    out.oom.oom_kill_disable = oc.get("oom_kill_disable").copied().unwrap_or(0) != 0;
    out.oom.under_oom = oc.get("under_oom").copied().unwrap_or(0) != 0;
    out.oom.oom_kill = oc.get("oom_kill").copied().unwrap_or(0);
    Ok(())
}
