//! How `wren` prints containers, stats and events: an aligned table for
//! people, JSON for scripts.
//!
//! Runs in `wren`.

use protobuf::Message;
use serde_json::{json, Value};
use wren_protocol::manager as api;
use wren_protocol::{cgroups_v1_metrics as v1, cgroups_v2_metrics as v2, type_urls};

/// RFC 3339 time (UTC, seconds) of unix nanoseconds; `-` for 0.
pub fn time(nanos: i64) -> String {
    if nanos <= 0 {
        return "-".into();
    }
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(nanos as u64);
    let s = wren_runtime::timefmt::rfc3339_nano(t);
    // Keep seconds precision for tables.
    match s.split_once('.') {
        Some((head, _)) => format!("{head}Z"),
        None => s,
    }
}

pub fn container_json(c: &api::Container) -> Value {
    json!({
        "name": c.name,
        "status": c.status,
        "pid": c.pid,
        "exit_status": c.exit_status,
        "exited_at": if c.exited_at > 0 { Value::from(time(c.exited_at)) } else { Value::Null },
        "created_at": time(c.created_at),
        "restart_policy": c.restart_policy,
        "restart_count": c.restart_count,
        "start_at_boot": c.start_at_boot,
        "auto_remove": c.auto_remove,
        "stopped_by_user": c.stopped_by_user,
        "terminal": c.terminal,
        "stdin": c.stdin,
        "args": c.args,
        "bundle": c.bundle,
        "log_path": c.log_path,
        "shim_address": c.shim_address,
        "shim_pid": c.shim_pid,
        "last_error": c.last_error,
        "image": if c.image.is_empty() { Value::Null } else { Value::from(c.image.clone()) },
        "image_id": if c.image_id.is_empty() { Value::Null } else { Value::from(c.image_id.clone()) },
        "labels": c.labels.iter().map(|l| {
            let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
            (k.to_string(), Value::from(v))
        }).collect::<serde_json::Map<String, Value>>(),
        "cgroup_path": c.cgroup_path,
        "pid_mode": c.pid_mode,
        "ipc_mode": c.ipc_mode,
        "uts_mode": c.uts_mode,
        "network": c.network,
        "ip_address": c.ip_address,
        "networks": networks_json(c),
        "ports": c.ports,
        "health": if c.health_status.is_empty() { Value::Null } else { json!({
            "status": c.health_status,
            "failing_streak": c.health_failing_streak,
            "log": c.health_log.iter().map(|h| json!({
                "start": time(h.start),
                "end": time(h.end),
                "exit_code": h.exit_code,
                "output": h.output,
            })).collect::<Vec<_>>(),
        }) },
    })
}

/// Every CNI network of a container with its address there (empty while
/// it is not attached), its first network first; null for none, host and
/// a joined network.
fn networks_json(c: &api::Container) -> Value {
    if !crate::network::uses_cni(&c.network) {
        return Value::Null;
    }
    let first = json!({"name": c.network, "ip_address": c.ip_address});
    let more = c
        .more_networks
        .iter()
        .map(|n| json!({"name": n.network, "ip_address": n.ip, "aliases": n.aliases}));
    Value::Array(std::iter::once(first).chain(more).collect())
}

pub fn event_json(e: &api::Event) -> Value {
    json!({
        "seq": e.seq,
        "time": time(e.timestamp),
        "topic": e.topic,
        "container": e.container,
        "detail": e.detail,
    })
}

/// The table of `wren list`.
pub fn table(cs: &[api::Container]) -> String {
    let rows: Vec<Vec<String>> = cs
        .iter()
        .map(|c| {
            let status = if c.status == "stopped" {
                format!("stopped ({})", c.exit_status)
            } else if !c.health_status.is_empty() && c.status == "running" {
                format!("running ({})", c.health_status)
            } else {
                c.status.clone()
            };
            vec![
                c.name.clone(),
                status,
                if c.pid == 0 {
                    "-".into()
                } else {
                    c.pid.to_string()
                },
                c.restart_count.to_string(),
                c.restart_policy.clone(),
                c.args.join(" "),
            ]
        })
        .collect();
    columns(
        &["NAME", "STATUS", "PID", "RESTARTS", "POLICY", "COMMAND"],
        &rows,
    )
}

/// `header` and `rows` in columns as wide as their widest cell, two
/// spaces apart.
pub fn columns(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, cell) in r.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.len());
            }
        }
    }
    let head: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    let mut out = String::new();
    for r in std::iter::once(&head).chain(rows) {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// The few figures people want from a Stats answer, v1 or v2 metrics.
pub fn stats_json(r: &api::StatsResponse) -> Value {
    let name = r.type_url.rsplit('/').next().unwrap_or_default();
    if name == type_urls::CGROUPS_V1_METRICS {
        if let Ok(m) = v1::Metrics::parse_from_bytes(&r.value) {
            let usage = m.memory.usage.as_ref();
            return json!({
                "cgroup": "v1",
                "cpu_ns": m.cpu.usage.as_ref().map_or(0, |u| u.total),
                "memory_bytes": usage.map_or(0, |u| u.usage),
                "memory_limit": usage.map_or(0, |u| u.limit),
                "pids": m.pids.as_ref().map_or(0, |p| p.current),
                "pids_limit": m.pids.as_ref().map_or(0, |p| p.limit),
            });
        }
    } else if name == type_urls::CGROUPS_V2_METRICS {
        if let Ok(m) = v2::Metrics::parse_from_bytes(&r.value) {
            return json!({
                "cgroup": "v2",
                "cpu_ns": m.cpu.as_ref().map_or(0, |c| c.usage_usec * 1000),
                "memory_bytes": m.memory.as_ref().map_or(0, |x| x.usage),
                "memory_limit": m.memory.as_ref().map_or(0, |x| x.usage_limit),
                "pids": m.pids.as_ref().map_or(0, |p| p.current),
                "pids_limit": m.pids.as_ref().map_or(0, |p| p.limit),
            });
        }
    }
    json!({"type_url": r.type_url})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_and_marks_exit() {
        let mut a = api::Container::new();
        a.name = "web".into();
        a.status = "running".into();
        a.pid = 42;
        a.restart_policy = "always".into();
        a.args = vec!["sleep".into(), "9".into()];
        let mut b = api::Container::new();
        b.name = "job-long-name".into();
        b.status = "stopped".into();
        b.exit_status = 3;
        b.restart_policy = "no".into();
        let t = table(&[a, b]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[1].starts_with("web            running"), "{t}");
        assert!(lines[2].contains("stopped (3)"), "{t}");
        assert_eq!(lines[0].find("STATUS"), lines[1].find("running"));
    }

    #[test]
    fn stats_v1() {
        let mut m = v1::Metrics::new();
        let mut mem = v1::MemoryStat::new();
        let mut e = v1::MemoryEntry::new();
        e.usage = 4096;
        mem.usage = protobuf::MessageField::some(e);
        m.memory = protobuf::MessageField::some(mem);
        let mut r = api::StatsResponse::new();
        r.type_url = type_urls::CGROUPS_V1_METRICS.into();
        r.value = m.write_to_bytes().unwrap();
        let v = stats_json(&r);
        assert_eq!(v["memory_bytes"], 4096);
        assert_eq!(v["cgroup"], "v1");
    }
}
