//! v2 `memory`: memory.max, memory.swap.max (swap alone, converted from the
//! OCI memory+swap value), memory.low; usage, memory.stat and memory.events.

use std::path::Path;

use oci_spec::runtime::LinuxMemory;

use crate::cgroups::convert::{limit_str, swap_to_v2};
use crate::cgroups::stats::{MemoryEntry, MemoryStats};
use crate::cgroups::{fs, CgroupError};

pub(crate) fn apply(dir: &Path, m: &LinuxMemory) -> Result<(), CgroupError> {
    let swap = swap_to_v2(m.swap(), m.limit())?;
    if let Some(s) = swap {
        if dir.join("memory.swap.max").exists() {
            fs::write(dir, "memory.swap.max", &limit_str(s))?;
        } else if s != -1 {
            return Err(CgroupError::Invalid {
                field: "memory.swap".into(),
                reason: "this kernel has no swap accounting (memory.swap.max)".into(),
            });
        }
    }
    if let Some(l) = m.limit().filter(|l| *l != 0) {
        fs::write(dir, "memory.max", &limit_str(l))?;
    }
    if let Some(r) = m.reservation().filter(|r| *r != 0) {
        fs::write(dir, "memory.low", &limit_str(r))?;
    }
    if m.swappiness().is_some() {
        log::warn!("memory.swappiness has no cgroup v2 equivalent; ignored");
    }
    if m.disable_oom_killer() == Some(true) {
        log::warn!("memory.disableOOMKiller has no cgroup v2 equivalent; ignored");
    }
    Ok(())
}

pub(crate) fn stats(dir: &Path, out: &mut MemoryStats) -> Result<(), CgroupError> {
    let r = |f: &str| fs::read_u64(dir, f);
    out.usage = MemoryEntry {
        usage: r("memory.current")?,
        max_usage: r("memory.peak")?,
        limit: r("memory.max")?,
        failcnt: 0,
    };
    out.swap = MemoryEntry {
        usage: r("memory.swap.current")?,
        max_usage: r("memory.swap.peak")?,
        limit: r("memory.swap.max")?,
        failcnt: 0,
    };
    out.stat = fs::read_flat_keyed(dir, "memory.stat")?;
    let ev = fs::read_flat_keyed(dir, "memory.events")?;
    let g = |k: &str| ev.get(k).copied().unwrap_or(0);
    out.oom.low = g("low");
    out.oom.high = g("high");
    out.oom.max = g("max");
    out.oom.oom = g("oom");
    out.oom.oom_kill = g("oom_kill");
    out.usage.failcnt = out.oom.max;
    Ok(())
}
