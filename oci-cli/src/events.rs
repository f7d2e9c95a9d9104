//! `wren-oci events`: runc-compatible container events. `--stats` prints
//! one `{"type":"stats","id":..,"data":{..}}` object; without it, stats
//! objects every `--interval` and `{"type":"oom"}` objects as OOM kills
//! happen, until the container stops. The JSON field names are runc's
//! (`types/events.go`), so tools written against `runc events` read ours.
//!
//! Runs in the `wren-oci` process.

use std::io::Write;
use std::os::fd::{AsFd, AsRawFd};
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};
use wren_runtime::cgroups::stats::{BlkioEntry, MemoryEntry, Psi, StatsVersion};
use wren_runtime::cgroups::Stats;
use wren_runtime::{Container, Status};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Insert `key: value` unless `value` is zero / empty (Go's `omitempty`).
fn put(m: &mut Map<String, Value>, key: &str, value: Value) {
    let empty = match &value {
        Value::Null => true,
        Value::Number(n) => n.as_u64() == Some(0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        Value::Bool(b) => !b,
    };
    if !empty {
        m.insert(key.to_string(), value);
    }
}

fn memory_entry(e: &MemoryEntry) -> Value {
    let mut m = Map::new();
    m.insert("limit".into(), json!(e.limit));
    put(&mut m, "usage", json!(e.usage));
    put(&mut m, "max", json!(e.max_usage));
    m.insert("failcnt".into(), json!(e.failcnt));
    Value::Object(m)
}

fn blkio_entries(list: &[BlkioEntry]) -> Value {
    Value::Array(
        list.iter()
            .map(|e| {
                let mut m = Map::new();
                put(&mut m, "major", json!(e.major));
                put(&mut m, "minor", json!(e.minor));
                put(&mut m, "op", json!(e.op));
                put(&mut m, "value", json!(e.value));
                Value::Object(m)
            })
            .collect(),
    )
}

fn psi(p: &Psi) -> Value {
    let data = |d: &wren_runtime::cgroups::stats::PsiData| {
        json!({
            "avg10": d.avg10 as f64 / 100.0,
            "avg60": d.avg60 as f64 / 100.0,
            "avg300": d.avg300 as f64 / 100.0,
            "total": d.total,
        })
    };
    json!({"some": data(&p.some), "full": data(&p.full)})
}

/// The `data` of a runc stats event.
pub fn runc_stats(s: &Stats) -> Value {
    let mut usage = Map::new();
    put(&mut usage, "total", json!(s.cpu.usage_total_ns));
    put(&mut usage, "percpu", json!(s.cpu.per_cpu_ns));
    usage.insert("kernel".into(), json!(s.cpu.usage_system_ns));
    usage.insert("user".into(), json!(s.cpu.usage_user_ns));
    let mut throttling = Map::new();
    put(&mut throttling, "periods", json!(s.cpu.nr_periods));
    put(
        &mut throttling,
        "throttledPeriods",
        json!(s.cpu.nr_throttled),
    );
    put(
        &mut throttling,
        "throttledTime",
        json!(s.cpu.throttled_time_ns),
    );
    let mut cpu = Map::new();
    cpu.insert("usage".into(), Value::Object(usage));
    cpu.insert("throttling".into(), Value::Object(throttling));

    let mut memory = Map::new();
    let cache = match s.version {
        StatsVersion::V1 => s.memory.stat.get("cache"),
        StatsVersion::V2 => s.memory.stat.get("file"),
    };
    put(&mut memory, "cache", json!(cache.copied().unwrap_or(0)));
    memory.insert("usage".into(), memory_entry(&s.memory.usage));
    memory.insert("swap".into(), memory_entry(&s.memory.swap));
    memory.insert("kernel".into(), memory_entry(&s.memory.kernel));
    memory.insert("kernelTCP".into(), memory_entry(&s.memory.kernel_tcp));
    put(&mut memory, "raw", json!(s.memory.stat));

    let mut pids = Map::new();
    put(&mut pids, "current", json!(s.pids.current));
    put(&mut pids, "limit", json!(s.pids.limit));

    let mut blkio = Map::new();
    let io = &s.io;
    let (service_bytes, serviced) = if io.usage.is_empty() {
        (
            io.io_service_bytes_recursive.clone(),
            io.io_serviced_recursive.clone(),
        )
    } else {
        // v2 io.stat as runc reports it: Read/Write bytes and operations.
        let entry = |u: &wren_runtime::cgroups::stats::IoUsage, op: &str, value| BlkioEntry {
            major: u.major,
            minor: u.minor,
            op: op.into(),
            value,
        };
        (
            io.usage
                .iter()
                .flat_map(|u| [entry(u, "Read", u.rbytes), entry(u, "Write", u.wbytes)])
                .collect(),
            io.usage
                .iter()
                .flat_map(|u| [entry(u, "Read", u.rios), entry(u, "Write", u.wios)])
                .collect(),
        )
    };
    for (key, list) in [
        ("ioServiceBytesRecursive", &service_bytes),
        ("ioServicedRecursive", &serviced),
        ("ioQueueRecursive", &io.io_queued_recursive),
        ("ioServiceTimeRecursive", &io.io_service_time_recursive),
        ("ioWaitTimeRecursive", &io.io_wait_time_recursive),
        ("ioMergedRecursive", &io.io_merged_recursive),
        ("ioTimeRecursive", &io.io_time_recursive),
        ("sectorsRecursive", &io.sectors_recursive),
    ] {
        put(&mut blkio, key, blkio_entries(list));
    }
    if let Some(p) = &s.pressure {
        cpu.insert("psi".into(), psi(&p.cpu));
        memory.insert("psi".into(), psi(&p.memory));
        blkio.insert("psi".into(), psi(&p.io));
    }

    let mut hugetlb = Map::new();
    for h in &s.hugetlb {
        let mut m = Map::new();
        put(&mut m, "usage", json!(h.usage));
        put(&mut m, "max", json!(h.max_usage));
        m.insert("failcnt".into(), json!(h.failcnt));
        hugetlb.insert(h.pagesize.clone(), Value::Object(m));
    }

    json!({
        "cpu": cpu,
        "cpuset": {
            "cpu_exclusive": 0, "mem_hardwall": 0, "mem_exclusive": 0,
            "memory_migrate": 0, "memory_spread_page": 0, "memory_spread_slab": 0,
            "memory_pressure": 0, "sched_load_balance": 0, "sched_relax_domain_level": 0
        },
        "memory": memory,
        "pids": pids,
        "blkio": blkio,
        "hugetlb": hugetlb,
        "intel_rdt": {},
        "network_interfaces": null,
    })
}

fn event(kind: &str, id: &str, data: Option<Value>) -> Value {
    let mut m = Map::new();
    m.insert("type".into(), json!(kind));
    m.insert("id".into(), json!(id));
    if let Some(d) = data {
        m.insert("data".into(), d);
    }
    Value::Object(m)
}

fn print(v: &Value) -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{v}")?;
    out.flush()?;
    Ok(())
}

/// `wren-oci events [--stats] [--interval D] ID`.
pub fn command(g: &crate::cli::Global, e: crate::cli::Events) -> Result<()> {
    let c = crate::load(g, &e.id)?;
    if c.status() == Status::Stopped {
        return Err(format!("container {} is not running", e.id).into());
    }
    if e.stats {
        stats_once(&c)
    } else {
        stream(&c, e.interval)
    }
}

/// `events --stats ID`: one stats object.
fn stats_once(c: &Container) -> Result<()> {
    let s = c.stats()?;
    print(&event("stats", c.id(), Some(runc_stats(&s))))
}

/// `events [--interval D] ID`: stats every `interval` and OOM events until
/// the container stops.
fn stream(c: &Container, interval: Duration) -> Result<()> {
    let mut oom = c.cgroup().map(|cg| cg.oom_watcher()).transpose()?;
    let id = c.id().to_string();
    let mut next_stats = Instant::now() + interval;
    loop {
        if let Some(w) = oom.as_mut() {
            for _ in 0..w.new_kills()? {
                print(&event("oom", &id, None))?;
            }
        }
        if c.status() == Status::Stopped {
            return Ok(());
        }
        let now = Instant::now();
        if now >= next_stats {
            match c.stats() {
                Ok(s) => print(&event("stats", &id, Some(runc_stats(&s))))?,
                // The container may have stopped between the check and
                // the read: end quietly then, as runc's loop does.
                Err(_) if c.status() == Status::Stopped => return Ok(()),
                Err(e) => return Err(e.into()),
            }
            next_stats = now + interval;
        }
        // Wake for an OOM notification, the init's exit, or the next tick
        // (at least every 200 ms to notice a stop without a pidfd).
        let wait = next_stats
            .saturating_duration_since(Instant::now())
            .min(Duration::from_millis(200));
        let mut pfds: Vec<libc::pollfd> = Vec::new();
        if let Some(w) = &oom {
            pfds.push(libc::pollfd {
                fd: w.as_fd().as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            });
        }
        if let Some(fd) = c.init_pidfd() {
            pfds.push(libc::pollfd {
                fd: fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            });
        }
        // SAFETY: a valid array of pollfds of the given length; fds live
        // for the call.
        unsafe {
            libc::poll(
                pfds.as_mut_ptr(),
                pfds.len() as libc::nfds_t,
                wait.as_millis() as i32,
            )
        };
    }
}

/// Parse a Go-style duration ("5s", "500ms", "1m", "2").
pub fn parse_interval(s: &str) -> Option<Duration> {
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map_or((s, "s"), |i| s.split_at(i));
    let n: f64 = num.parse().ok()?;
    let secs = match unit {
        "ns" => n / 1e9,
        "us" | "µs" => n / 1e6,
        "ms" => n / 1e3,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return None,
    };
    (secs > 0.0).then(|| Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_parse_like_go_durations() {
        assert_eq!(parse_interval("5s"), Some(Duration::from_secs(5)));
        assert_eq!(parse_interval("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_interval("2"), Some(Duration::from_secs(2)));
        assert_eq!(parse_interval("0s"), None);
        assert_eq!(parse_interval("5x"), None);
    }

    #[test]
    fn stats_use_runc_field_names() {
        let mut s = Stats::default();
        s.cpu.usage_total_ns = 7;
        s.memory.usage.limit = 1 << 20;
        s.memory.stat.insert("cache".into(), 3);
        s.pids.current = 2;
        let v = runc_stats(&s);
        assert_eq!(v["cpu"]["usage"]["total"], 7);
        assert_eq!(v["cpu"]["usage"]["kernel"], 0);
        assert_eq!(v["memory"]["usage"]["limit"], 1 << 20);
        assert_eq!(v["memory"]["cache"], 3);
        assert_eq!(v["memory"]["raw"]["cache"], 3);
        assert_eq!(v["pids"]["current"], 2);
        assert!(v["pids"].get("limit").is_none(), "omitempty");
        assert!(v["hugetlb"].is_object());
    }
}
