//! `wren_runtime` cgroup statistics to containerd's
//! `io.containerd.cgroups.v1.Metrics` / `v2.Metrics` messages. Covers cpu,
//! memory (usage, limits, the main memory.stat counters), pids and hugetlb;
//! block I/O and PSI are still to do.
//!
//! Runs in the daemon, for Stats.

use protobuf::MessageField;
use wren_protocol::cgroups_v1_metrics as m1;
use wren_protocol::cgroups_v2_metrics as m2;
use wren_runtime::cgroups::stats::{MemoryEntry, Stats};

fn stat(s: &Stats, key: &str) -> u64 {
    s.memory.stat.get(key).copied().unwrap_or(0)
}

fn v1_entry(e: &MemoryEntry) -> MessageField<m1::MemoryEntry> {
    let mut m = m1::MemoryEntry::new();
    m.usage = e.usage;
    m.max = e.max_usage;
    m.limit = e.limit;
    m.failcnt = e.failcnt;
    MessageField::some(m)
}

/// v1 (and hybrid) hosts.
pub fn v1(s: &Stats) -> m1::Metrics {
    let mut usage = m1::CPUUsage::new();
    usage.total = s.cpu.usage_total_ns;
    usage.user = s.cpu.usage_user_ns;
    usage.kernel = s.cpu.usage_system_ns;
    usage.per_cpu = s.cpu.per_cpu_ns.clone();
    let mut thr = m1::Throttle::new();
    thr.periods = s.cpu.nr_periods;
    thr.throttled_periods = s.cpu.nr_throttled;
    thr.throttled_time = s.cpu.throttled_time_ns;
    let mut cpu = m1::CPUStat::new();
    cpu.usage = MessageField::some(usage);
    cpu.throttling = MessageField::some(thr);

    let mut mem = m1::MemoryStat::new();
    mem.cache = stat(s, "cache");
    mem.rss = stat(s, "rss");
    mem.rss_huge = stat(s, "rss_huge");
    mem.mapped_file = stat(s, "mapped_file");
    mem.dirty = stat(s, "dirty");
    mem.writeback = stat(s, "writeback");
    mem.pg_pg_in = stat(s, "pgpgin");
    mem.pg_pg_out = stat(s, "pgpgout");
    mem.pg_fault = stat(s, "pgfault");
    mem.pg_maj_fault = stat(s, "pgmajfault");
    mem.inactive_anon = stat(s, "inactive_anon");
    mem.active_anon = stat(s, "active_anon");
    mem.inactive_file = stat(s, "inactive_file");
    mem.active_file = stat(s, "active_file");
    mem.unevictable = stat(s, "unevictable");
    mem.hierarchical_memory_limit = stat(s, "hierarchical_memory_limit");
    mem.hierarchical_swap_limit = stat(s, "hierarchical_memsw_limit");
    mem.total_cache = stat(s, "total_cache");
    mem.total_rss = stat(s, "total_rss");
    mem.total_rss_huge = stat(s, "total_rss_huge");
    mem.total_mapped_file = stat(s, "total_mapped_file");
    mem.total_inactive_anon = stat(s, "total_inactive_anon");
    mem.total_active_anon = stat(s, "total_active_anon");
    mem.total_inactive_file = stat(s, "total_inactive_file");
    mem.total_active_file = stat(s, "total_active_file");
    mem.total_unevictable = stat(s, "total_unevictable");
    mem.usage = v1_entry(&s.memory.usage);
    mem.swap = v1_entry(&s.memory.swap);
    mem.kernel = v1_entry(&s.memory.kernel);
    mem.kernel_tcp = v1_entry(&s.memory.kernel_tcp);

    let mut pids = m1::PidsStat::new();
    pids.current = s.pids.current;
    pids.limit = s.pids.limit;

    let mut oom = m1::MemoryOomControl::new();
    oom.oom_kill_disable = u64::from(s.memory.oom.oom_kill_disable);
    oom.under_oom = u64::from(s.memory.oom.under_oom);
    oom.oom_kill = s.memory.oom.oom_kill;

    let mut m = m1::Metrics::new();
    m.cpu = MessageField::some(cpu);
    m.memory = MessageField::some(mem);
    m.pids = MessageField::some(pids);
    m.memory_oom_control = MessageField::some(oom);
    m.hugetlb = s
        .hugetlb
        .iter()
        .map(|h| {
            let mut e = m1::HugetlbStat::new();
            e.usage = h.usage;
            e.max = h.max_usage;
            e.failcnt = h.failcnt;
            e.pagesize = h.pagesize.clone();
            e
        })
        .collect();
    m
}

/// Pure v2 hosts.
pub fn v2(s: &Stats) -> m2::Metrics {
    let mut cpu = m2::CPUStat::new();
    cpu.usage_usec = s.cpu.usage_total_ns / 1000;
    cpu.user_usec = s.cpu.usage_user_ns / 1000;
    cpu.system_usec = s.cpu.usage_system_ns / 1000;
    cpu.nr_periods = s.cpu.nr_periods;
    cpu.nr_throttled = s.cpu.nr_throttled;
    cpu.throttled_usec = s.cpu.throttled_time_ns / 1000;

    let mut mem = m2::MemoryStat::new();
    mem.anon = stat(s, "anon");
    mem.file = stat(s, "file");
    mem.kernel_stack = stat(s, "kernel_stack");
    mem.slab = stat(s, "slab");
    mem.sock = stat(s, "sock");
    mem.shmem = stat(s, "shmem");
    mem.file_mapped = stat(s, "file_mapped");
    mem.file_dirty = stat(s, "file_dirty");
    mem.file_writeback = stat(s, "file_writeback");
    mem.anon_thp = stat(s, "anon_thp");
    mem.inactive_anon = stat(s, "inactive_anon");
    mem.active_anon = stat(s, "active_anon");
    mem.inactive_file = stat(s, "inactive_file");
    mem.active_file = stat(s, "active_file");
    mem.unevictable = stat(s, "unevictable");
    mem.slab_reclaimable = stat(s, "slab_reclaimable");
    mem.slab_unreclaimable = stat(s, "slab_unreclaimable");
    mem.pgfault = stat(s, "pgfault");
    mem.pgmajfault = stat(s, "pgmajfault");
    mem.usage = s.memory.usage.usage;
    mem.usage_limit = s.memory.usage.limit;
    mem.max_usage = s.memory.usage.max_usage;
    mem.swap_usage = s.memory.swap.usage;
    mem.swap_limit = s.memory.swap.limit;
    mem.swap_max_usage = s.memory.swap.max_usage;

    let mut pids = m2::PidsStat::new();
    pids.current = s.pids.current;
    pids.limit = s.pids.limit;

    let mut events = m2::MemoryEvents::new();
    events.low = s.memory.oom.low;
    events.high = s.memory.oom.high;
    events.max = s.memory.oom.max;
    events.oom = s.memory.oom.oom;
    events.oom_kill = s.memory.oom.oom_kill;

    let mut m = m2::Metrics::new();
    m.cpu = MessageField::some(cpu);
    m.memory = MessageField::some(mem);
    m.pids = MessageField::some(pids);
    m.memory_events = MessageField::some(events);
    m.hugetlb = s
        .hugetlb
        .iter()
        .map(|h| {
            let mut e = m2::HugeTlbStat::new();
            e.current = h.usage;
            e.max = h.max_usage;
            e.pagesize = h.pagesize.clone();
            e
        })
        .collect();
    m
}
