//! Typed statistics of a container's cgroup, rich enough to fill both
//! containerd's `io.containerd.cgroups.v1.Metrics` and
//! `io.containerd.cgroups.v2.Metrics`. Values are raw kernel counters; fields a
//! layout cannot provide stay zero (or empty).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Which metrics message the numbers fit: v1 (also on hybrid hosts) or v2.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum StatsVersion {
    /// cgroup v1 files (v1 and hybrid hosts).
    #[default]
    V1,
    /// cgroup v2 files.
    V2,
}

/// Everything [`crate::cgroups::Cgroup::stats`] reports.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Which file set the numbers came from.
    pub version: StatsVersion,
    /// CPU usage and throttling.
    pub cpu: CpuStats,
    /// Memory usage, limits and the memory.stat breakdown.
    pub memory: MemoryStats,
    /// Process count.
    pub pids: PidsStats,
    /// Block I/O.
    pub io: IoStats,
    /// Per page size huge page usage.
    pub hugetlb: Vec<HugetlbStats>,
    /// Pressure stall information (v2 only, or when the kernel exposes it).
    pub pressure: Option<PressureStats>,
}

/// CPU time and throttling.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuStats {
    /// Total CPU time, nanoseconds (v1 cpuacct.usage; v2 usage_usec × 1000).
    pub usage_total_ns: u64,
    /// User time, nanoseconds.
    pub usage_user_ns: u64,
    /// System (kernel) time, nanoseconds.
    pub usage_system_ns: u64,
    /// Per-CPU total time, nanoseconds (v1 only).
    pub per_cpu_ns: Vec<u64>,
    /// CFS enforcement periods elapsed.
    pub nr_periods: u64,
    /// Periods in which the cgroup was throttled.
    pub nr_throttled: u64,
    /// Total throttled time, nanoseconds.
    pub throttled_time_ns: u64,
}

/// One memory counter set (v1: usage/max_usage/limit/failcnt files).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryEntry {
    /// Current usage, bytes.
    pub usage: u64,
    /// Peak usage, bytes (v1 max_usage_in_bytes, v2 memory.peak).
    pub max_usage: u64,
    /// Limit, bytes (`u64::MAX`: unlimited).
    pub limit: u64,
    /// Times the limit was hit (v1).
    pub failcnt: u64,
}

/// Memory usage and limits.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryStats {
    /// Memory (v1 memory.*, v2 memory.current/max/peak).
    pub usage: MemoryEntry,
    /// v1: memory+swap (memsw.*); v2: swap alone (memory.swap.*).
    pub swap: MemoryEntry,
    /// Kernel memory (v1 kmem.*).
    pub kernel: MemoryEntry,
    /// Kernel TCP memory (v1 kmem.tcp.*).
    pub kernel_tcp: MemoryEntry,
    /// The raw memory.stat keys and values (v1 names like `cache`, `rss`,
    /// `total_rss`, `hierarchical_memory_limit`; v2 names like `anon`, `file`,
    /// `pgfault`), from which either containerd message can be filled.
    pub stat: BTreeMap<String, u64>,
    /// OOM control state and counters.
    pub oom: OomStats,
}

/// OOM state: v1 memory.oom_control, v2 memory.events.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OomStats {
    /// The OOM killer is disabled for this cgroup (v1).
    pub oom_kill_disable: bool,
    /// Tasks are currently stalled in OOM (v1).
    pub under_oom: bool,
    /// Processes killed by the OOM killer.
    pub oom_kill: u64,
    /// Times the cgroup hit an OOM condition (v2 `oom`).
    pub oom: u64,
    /// v2 memory.events `low`.
    pub low: u64,
    /// v2 memory.events `high`.
    pub high: u64,
    /// v2 memory.events `max`.
    pub max: u64,
}

/// Process count.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PidsStats {
    /// Processes and threads now.
    pub current: u64,
    /// The limit (0: unlimited).
    pub limit: u64,
}

/// One v1 blkio entry (`major:minor Op value`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlkioEntry {
    /// Device major.
    pub major: u64,
    /// Device minor.
    pub minor: u64,
    /// Operation (`Read`, `Write`, `Sync`, `Async`, `Discard`, `Total`, or empty).
    pub op: String,
    /// Value.
    pub value: u64,
}

/// One v2 io.stat line.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IoUsage {
    /// Device major.
    pub major: u64,
    /// Device minor.
    pub minor: u64,
    /// Bytes read.
    pub rbytes: u64,
    /// Bytes written.
    pub wbytes: u64,
    /// Read operations.
    pub rios: u64,
    /// Write operations.
    pub wios: u64,
}

/// Block I/O. v1 fills the `*_recursive` lists (like containerd's
/// BlkIOStat), v2 fills `usage`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IoStats {
    /// v1 io_service_bytes_recursive.
    pub io_service_bytes_recursive: Vec<BlkioEntry>,
    /// v1 io_serviced_recursive.
    pub io_serviced_recursive: Vec<BlkioEntry>,
    /// v1 io_queued_recursive.
    pub io_queued_recursive: Vec<BlkioEntry>,
    /// v1 io_service_time_recursive.
    pub io_service_time_recursive: Vec<BlkioEntry>,
    /// v1 io_wait_time_recursive.
    pub io_wait_time_recursive: Vec<BlkioEntry>,
    /// v1 io_merged_recursive.
    pub io_merged_recursive: Vec<BlkioEntry>,
    /// v1 time_recursive.
    pub io_time_recursive: Vec<BlkioEntry>,
    /// v1 sectors_recursive.
    pub sectors_recursive: Vec<BlkioEntry>,
    /// v2 io.stat.
    pub usage: Vec<IoUsage>,
}

/// Huge pages of one size.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HugetlbStats {
    /// Page size as the kernel names it (`2MB`).
    pub pagesize: String,
    /// Usage, bytes.
    pub usage: u64,
    /// Peak usage, bytes (v1).
    pub max_usage: u64,
    /// Times the limit was hit (v1 failcnt, v2 events `max`).
    pub failcnt: u64,
    /// Limit, bytes (`u64::MAX`: unlimited).
    pub limit: u64,
}

/// One PSI line: `avg10 avg60 avg300` in hundredths of a percent, total µs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PsiData {
    /// 10 s average, in 1/100 %.
    pub avg10: u64,
    /// 60 s average, in 1/100 %.
    pub avg60: u64,
    /// 300 s average, in 1/100 %.
    pub avg300: u64,
    /// Total stall time, µs.
    pub total: u64,
}

/// `some` and `full` PSI lines of one resource.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Psi {
    /// Some tasks stalled.
    pub some: PsiData,
    /// All tasks stalled.
    pub full: PsiData,
}

/// cpu/memory/io pressure.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PressureStats {
    /// cpu.pressure.
    pub cpu: Psi,
    /// memory.pressure.
    pub memory: Psi,
    /// io.pressure.
    pub io: Psi,
}

/// Parses a `*.pressure` file.
pub(crate) fn parse_psi(text: &str) -> Psi {
    let mut psi = Psi::default();
    for line in text.lines() {
        let mut it = line.split_whitespace();
        let target = match it.next() {
            Some("some") => &mut psi.some,
            Some("full") => &mut psi.full,
            _ => continue,
        };
        for kv in it {
            let Some((k, v)) = kv.split_once('=') else {
                continue;
            };
            let hundredths = || -> u64 {
                let (i, f) = v.split_once('.').unwrap_or((v, "0"));
                let f2: String = f.chars().chain("00".chars()).take(2).collect();
                i.parse::<u64>().unwrap_or(0) * 100 + f2.parse::<u64>().unwrap_or(0)
            };
            match k {
                "avg10" => target.avg10 = hundredths(),
                "avg60" => target.avg60 = hundredths(),
                "avg300" => target.avg300 = hundredths(),
                "total" => target.total = v.parse().unwrap_or(0),
                _ => {}
            }
        }
    }
    psi
}

/// Parses a v1 blkio file (`8:0 Read 123` lines; `Total 5` summary skipped).
pub(crate) fn parse_blkio(text: &str) -> Vec<BlkioEntry> {
    text.lines()
        .filter_map(|l| {
            let parts: Vec<&str> = l.split_whitespace().collect();
            let (dev, op, value) = match parts.as_slice() {
                [dev, op, v] => (*dev, *op, *v),
                [dev, v] => (*dev, "", *v),
                _ => return None,
            };
            let (ma, mi) = dev.split_once(':')?;
            Some(BlkioEntry {
                major: ma.parse().ok()?,
                minor: mi.parse().ok()?,
                op: op.to_owned(),
                value: value.parse().ok()?,
            })
        })
        .collect()
}

/// Parses v2 io.stat (`8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0`).
pub(crate) fn parse_io_stat(text: &str) -> Vec<IoUsage> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let (ma, mi) = it.next()?.split_once(':')?;
            let mut u = IoUsage {
                major: ma.parse().ok()?,
                minor: mi.parse().ok()?,
                ..Default::default()
            };
            for kv in it {
                let (k, v) = kv.split_once('=')?;
                let v: u64 = v.parse().ok()?;
                match k {
                    "rbytes" => u.rbytes = v,
                    "wbytes" => u.wbytes = v,
                    "rios" => u.rios = v,
                    "wios" => u.wios = v,
                    _ => {}
                }
            }
            Some(u)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psi_parses() {
        let p = parse_psi(
            "some avg10=1.50 avg60=0.00 avg300=12.3 total=42\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=7\n",
        );
        assert_eq!(p.some.avg10, 150);
        assert_eq!(p.some.avg300, 1230);
        assert_eq!(p.some.total, 42);
        assert_eq!(p.full.total, 7);
    }

    #[test]
    fn blkio_and_io_stat_parse() {
        let b = parse_blkio("8:0 Read 10\n8:0 Write 20\nTotal 30\n");
        assert_eq!(b.len(), 2);
        assert_eq!(b[1].op, "Write");
        assert_eq!(b[1].value, 20);
        let u = parse_io_stat("8:16 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0\n");
        assert_eq!(
            u,
            vec![IoUsage {
                major: 8,
                minor: 16,
                rbytes: 1,
                wbytes: 2,
                rios: 3,
                wios: 4
            }]
        );
    }
}
