//! Checks `linux.resources` against the rules of the kernel and the host's
//! layout before anything is created or written, so a bad config is refused
//! whole instead of being half applied. Pure: reads no files.

use oci_spec::runtime::LinuxResources;

use super::devices::rules_from_oci;
use super::layout::{Layout, V1Controller};
use super::CgroupError;

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> CgroupError {
    CgroupError::Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

/// Which controller a field needs, under this layout.
fn need(layout: &Layout, field: &str, v1: V1Controller, v2: &str) -> Result<(), CgroupError> {
    let ok = if layout.is_v2() {
        layout.has_v2(v2)
    } else {
        layout.has_v1(v1)
    };
    if ok {
        Ok(())
    } else {
        Err(CgroupError::ControllerMissing {
            field: field.to_owned(),
            controller: if layout.is_v2() { v2 } else { v1.name() }.to_owned(),
        })
    }
}

/// Checks the cpuset list syntax `0-3,5,7-8`.
fn check_list(field: &str, s: &str) -> Result<(), CgroupError> {
    if s.trim().is_empty() {
        return Ok(());
    }
    for part in s.trim().split(',') {
        let ok = match part.split_once('-') {
            Some((a, b)) => match (a.parse::<u32>(), b.parse::<u32>()) {
                (Ok(a), Ok(b)) => a <= b,
                _ => false,
            },
            None => part.parse::<u32>().is_ok(),
        };
        if !ok {
            return Err(invalid(field, format!("{s:?} is not a list like 0-3,5")));
        }
    }
    Ok(())
}

/// Checks a hugepage size like `2MB` or `1GB`.
fn check_pagesize(field: &str, s: &str) -> Result<(), CgroupError> {
    let digits = s.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &s[digits.len()..];
    if digits.is_empty()
        || digits.parse::<u64>().is_err()
        || !matches!(unit, "KB" | "MB" | "GB" | "TB" | "PB")
    {
        return Err(invalid(
            field,
            format!("{s:?} is not a size like 2MB or 1GB"),
        ));
    }
    Ok(())
}

/// Validates `resources` for `layout`. The error names the offending field
/// (as spelled in config.json, below `linux.resources`).
pub fn validate(r: &LinuxResources, layout: &Layout) -> Result<(), CgroupError> {
    let v2 = layout.is_v2();
    if let Some(m) = r.memory() {
        let any = m.limit().is_some()
            || m.reservation().is_some()
            || m.swap().is_some()
            || m.swappiness().is_some()
            || m.disable_oom_killer() == Some(true);
        if any {
            need(layout, "memory", V1Controller::Memory, "memory")?;
        }
        for (f, v) in [
            ("memory.limit", m.limit()),
            ("memory.reservation", m.reservation()),
            ("memory.swap", m.swap()),
        ] {
            if let Some(v) = v {
                if v < -1 {
                    return Err(invalid(
                        f,
                        format!("{v} is negative (use -1 for unlimited)"),
                    ));
                }
            }
        }
        if let (Some(swap), Some(limit)) = (m.swap(), m.limit()) {
            if swap > 0 && limit > 0 && swap < limit {
                return Err(invalid(
                    "memory.swap",
                    format!("{swap} is memory+swap and must be at least memory.limit ({limit})"),
                ));
            }
        }
        if v2 {
            super::convert::swap_to_v2(m.swap(), m.limit())?;
        }
        if let Some(s) = m.swappiness() {
            if s > 100 {
                return Err(invalid("memory.swappiness", format!("{s} is above 100")));
            }
        }
    }
    if let Some(c) = r.cpu() {
        if c.shares().is_some()
            || c.quota().is_some()
            || c.period().is_some()
            || c.burst().is_some()
            || c.idle().is_some()
            || c.realtime_runtime().is_some()
            || c.realtime_period().is_some()
        {
            need(layout, "cpu", V1Controller::Cpu, "cpu")?;
        }
        if let Some(s) = c.shares() {
            if s != 0 && !(2..=262_144).contains(&s) {
                return Err(invalid("cpu.shares", format!("{s} is outside 2..262144")));
            }
        }
        if let Some(q) = c.quota() {
            if q < -1 || (1..1000).contains(&q) {
                return Err(invalid(
                    "cpu.quota",
                    format!("{q} must be -1 (unlimited) or at least 1000 µs"),
                ));
            }
        }
        if let Some(p) = c.period() {
            if p != 0 && !(1000..=1_000_000).contains(&p) {
                return Err(invalid(
                    "cpu.period",
                    format!("{p} is outside 1000..1000000 µs"),
                ));
            }
        }
        if let (Some(b), Some(q)) = (c.burst(), c.quota()) {
            if b > 0 && q > 0 && b > q as u64 {
                return Err(invalid(
                    "cpu.burst",
                    format!("{b} is larger than cpu.quota ({q})"),
                ));
            }
        }
        if let Some(i) = c.idle() {
            if !(0..=1).contains(&i) {
                return Err(invalid("cpu.idle", format!("{i} must be 0 or 1")));
            }
        }
        if v2 {
            if c.realtime_runtime().is_some_and(|v| v != 0) {
                return Err(invalid(
                    "cpu.realtimeRuntime",
                    "cgroup v2 has no realtime CPU knobs",
                ));
            }
            if c.realtime_period().is_some_and(|v| v != 0) {
                return Err(invalid(
                    "cpu.realtimePeriod",
                    "cgroup v2 has no realtime CPU knobs",
                ));
            }
        } else if let Some(rt) = c.realtime_runtime() {
            if rt < -1 {
                return Err(invalid("cpu.realtimeRuntime", format!("{rt} is negative")));
            }
        }
        for (f, v) in [("cpu.cpus", c.cpus()), ("cpu.mems", c.mems())] {
            if let Some(v) = v {
                check_list(f, v)?;
                if !v.trim().is_empty() {
                    need(layout, f, V1Controller::Cpuset, "cpuset")?;
                }
            }
        }
    }
    if let Some(p) = r.pids() {
        let _ = p.limit(); // any value: <= 0 means unlimited
        need(layout, "pids.limit", V1Controller::Pids, "pids")?;
    }
    if let Some(b) = r.block_io() {
        let check_w = |f: String, w: Option<u16>| -> Result<(), CgroupError> {
            match w {
                Some(w) if w != 0 && !(10..=1000).contains(&w) => {
                    Err(invalid(f, format!("{w} is outside 10..1000")))
                }
                _ => Ok(()),
            }
        };
        check_w("blockIO.weight".into(), b.weight())?;
        check_w("blockIO.leafWeight".into(), b.leaf_weight())?;
        for (i, d) in b.weight_device().iter().flatten().enumerate() {
            check_w(format!("blockIO.weightDevice[{i}].weight"), d.weight())?;
            check_w(
                format!("blockIO.weightDevice[{i}].leafWeight"),
                d.leaf_weight(),
            )?;
            if d.major() < 0 || d.minor() < 0 {
                return Err(invalid(
                    format!("blockIO.weightDevice[{i}]"),
                    "negative device number",
                ));
            }
        }
        for (name, list) in [
            ("throttleReadBpsDevice", b.throttle_read_bps_device()),
            ("throttleWriteBpsDevice", b.throttle_write_bps_device()),
            ("throttleReadIOPSDevice", b.throttle_read_iops_device()),
            ("throttleWriteIOPSDevice", b.throttle_write_iops_device()),
        ] {
            for (i, d) in list.iter().flatten().enumerate() {
                if d.major() < 0 || d.minor() < 0 {
                    return Err(invalid(
                        format!("blockIO.{name}[{i}]"),
                        "negative device number",
                    ));
                }
            }
        }
        if block_io_requested(b) {
            need(layout, "blockIO", V1Controller::Blkio, "io")?;
        }
    }
    for (i, h) in r.hugepage_limits().iter().flatten().enumerate() {
        let f = format!("hugepageLimits[{i}].pageSize");
        check_pagesize(&f, h.page_size())?;
        need(layout, &f, V1Controller::Hugetlb, "hugetlb")?;
    }
    if let Some(n) = r.network() {
        if v2 {
            if n.class_id().is_some() || n.priorities().as_ref().is_some_and(|p| !p.is_empty()) {
                log::warn!("linux.resources.network is cgroup v1 only; ignored on cgroup v2");
            }
        } else {
            if n.class_id().is_some() {
                need(layout, "network.classID", V1Controller::NetCls, "")?;
            }
            for (i, p) in n.priorities().iter().flatten().enumerate() {
                if p.name().is_empty() || p.name().contains(char::is_whitespace) {
                    return Err(invalid(
                        format!("network.priorities[{i}].name"),
                        "is not an interface name",
                    ));
                }
                need(layout, "network.priorities", V1Controller::NetPrio, "")?;
            }
        }
    }
    if let Some(rdma) = r.rdma() {
        for dev in rdma.keys() {
            if dev.is_empty() || dev.contains(char::is_whitespace) {
                return Err(invalid(format!("rdma[{dev:?}]"), "is not a device name"));
            }
        }
        if !rdma.is_empty() {
            need(layout, "rdma", V1Controller::Rdma, "rdma")?;
        }
    }
    if let Some(devs) = r.devices() {
        rules_from_oci(devs)?;
        if !v2 && !layout.has_v1(V1Controller::Devices) && layout.unified_mount().is_none() {
            return Err(CgroupError::ControllerMissing {
                field: "devices".into(),
                controller: "devices".into(),
            });
        }
    }
    if let Some(unified) = r.unified() {
        validate_unified(unified, layout)?;
    }
    Ok(())
}

/// Files written through `unified` must not be these: they move or kill
/// processes, or are wren's own business.
const UNIFIED_FORBIDDEN: &[&str] = &[
    "cgroup.procs",
    "cgroup.threads",
    "cgroup.kill",
    "cgroup.subtree_control",
    "cgroup.freeze",
    "cgroup.type",
];

fn validate_unified(
    unified: &std::collections::HashMap<String, String>,
    layout: &Layout,
) -> Result<(), CgroupError> {
    let available = match layout {
        Layout::V1 { .. } if !unified.is_empty() => {
            return Err(invalid(
                "unified",
                "needs cgroup v2, and this host has only cgroup v1",
            ));
        }
        Layout::V1 { .. } => return Ok(()),
        Layout::Hybrid {
            unified_controllers,
            ..
        } => unified_controllers,
        Layout::V2 { controllers, .. } => controllers,
    };
    for (key, value) in unified {
        let field = format!("unified[{key:?}]");
        let Some((ctrl, attr)) = key.split_once('.') else {
            return Err(invalid(
                field,
                "is not a cgroup v2 file name (controller.file)",
            ));
        };
        if ctrl.is_empty() || attr.is_empty() || key.contains('/') || key.contains('\0') {
            return Err(invalid(
                field,
                "is not a cgroup v2 file name (controller.file)",
            ));
        }
        if UNIFIED_FORBIDDEN.contains(&key.as_str()) {
            return Err(invalid(field, "cannot be set through unified"));
        }
        if ctrl != "cgroup" && !available.contains(ctrl) {
            return Err(invalid(
                field,
                format!("controller {ctrl:?} is not available on this host"),
            ));
        }
        if value.contains('\0') {
            return Err(invalid(field, "value contains a NUL byte"));
        }
    }
    Ok(())
}

/// Does `linux.resources.blockIO` ask for anything at all?
pub(crate) fn block_io_requested(b: &oci_spec::runtime::LinuxBlockIo) -> bool {
    let nonempty = |v: &Option<Vec<_>>| v.as_ref().is_some_and(|v: &Vec<_>| !v.is_empty());
    b.weight().is_some_and(|w| w != 0)
        || b.leaf_weight().is_some_and(|w| w != 0)
        || b.weight_device().as_ref().is_some_and(|v| !v.is_empty())
        || nonempty(b.throttle_read_bps_device())
        || nonempty(b.throttle_write_bps_device())
        || nonempty(b.throttle_read_iops_device())
        || nonempty(b.throttle_write_iops_device())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::PathBuf;

    fn v2() -> Layout {
        Layout::V2 {
            mount: PathBuf::from("/sys/fs/cgroup"),
            controllers: ["cpu", "memory", "io", "pids", "cpuset", "hugetlb"]
                .into_iter()
                .map(String::from)
                .collect::<BTreeSet<_>>(),
        }
    }

    fn v1() -> Layout {
        let controllers: BTreeMap<_, _> = V1Controller::ALL
            .into_iter()
            .filter(|c| *c != V1Controller::Hugetlb)
            .map(|c| (c, PathBuf::from("/x")))
            .collect();
        Layout::V1 { controllers }
    }

    fn res(json: &str) -> LinuxResources {
        serde_json::from_str(json).unwrap()
    }

    fn field_of(r: Result<(), CgroupError>) -> String {
        match r.unwrap_err() {
            CgroupError::Invalid { field, .. } => field,
            CgroupError::ControllerMissing { field, .. } => format!("missing:{field}"),
            e => panic!("unexpected {e}"),
        }
    }

    #[test]
    fn good_config_passes() {
        let r = res(r#"{"memory":{"limit":1048576,"swap":2097152},
            "cpu":{"shares":1024,"quota":50000,"period":100000,"cpus":"0-1"},
            "pids":{"limit":10},
            "devices":[{"allow":false,"access":"rwm"}],
            "unified":{"memory.high":"1000000"}}"#);
        validate(&r, &v2()).unwrap();
    }

    #[test]
    fn bad_values_name_the_field() {
        assert_eq!(
            field_of(validate(&res(r#"{"cpu":{"quota":-5}}"#), &v2())),
            "cpu.quota"
        );
        assert_eq!(
            field_of(validate(&res(r#"{"cpu":{"quota":500}}"#), &v1())),
            "cpu.quota"
        );
        assert_eq!(
            field_of(validate(&res(r#"{"cpu":{"shares":1}}"#), &v1())),
            "cpu.shares"
        );
        assert_eq!(
            field_of(validate(&res(r#"{"cpu":{"cpus":"0-x"}}"#), &v1())),
            "cpu.cpus"
        );
        assert_eq!(
            field_of(validate(&res(r#"{"memory":{"limit":-2}}"#), &v1())),
            "memory.limit"
        );
        assert_eq!(
            field_of(validate(
                &res(r#"{"memory":{"limit":200,"swap":100}}"#),
                &v1()
            )),
            "memory.swap"
        );
        assert_eq!(
            field_of(validate(&res(r#"{"memory":{"swappiness":101}}"#), &v1())),
            "memory.swappiness"
        );
        assert_eq!(
            field_of(validate(&res(r#"{"blockIO":{"weight":5}}"#), &v1())),
            "blockIO.weight"
        );
        assert_eq!(
            field_of(validate(
                &res(r#"{"hugepageLimits":[{"pageSize":"2XB","limit":1}]}"#),
                &v2()
            )),
            "hugepageLimits[0].pageSize"
        );
        assert_eq!(
            field_of(validate(
                &res(r#"{"devices":[{"allow":true,"type":"p"}]}"#),
                &v2()
            )),
            "devices[0].type"
        );
        assert_eq!(
            field_of(validate(&res(r#"{"cpu":{"realtimeRuntime":100}}"#), &v2())),
            "cpu.realtimeRuntime"
        );
    }

    #[test]
    fn unified_rules() {
        let e = field_of(validate(&res(r#"{"unified":{"foo.bar":"1"}}"#), &v2()));
        assert_eq!(e, "unified[\"foo.bar\"]");
        let e = field_of(validate(&res(r#"{"unified":{"nodot":"1"}}"#), &v2()));
        assert_eq!(e, "unified[\"nodot\"]");
        let e = field_of(validate(&res(r#"{"unified":{"cgroup.procs":"1"}}"#), &v2()));
        assert_eq!(e, "unified[\"cgroup.procs\"]");
        let e = field_of(validate(&res(r#"{"unified":{"memory.max":"1"}}"#), &v1()));
        assert_eq!(e, "unified");
        validate(&res(r#"{"unified":{"cgroup.max.depth":"3"}}"#), &v2()).unwrap();
    }

    #[test]
    fn missing_controllers() {
        assert_eq!(
            field_of(validate(
                &res(r#"{"hugepageLimits":[{"pageSize":"2MB","limit":1}]}"#),
                &v1()
            )),
            "missing:hugepageLimits[0].pageSize"
        );
        let l = Layout::V2 {
            mount: PathBuf::from("/x"),
            controllers: BTreeSet::new(),
        };
        assert_eq!(
            field_of(validate(&res(r#"{"pids":{"limit":3}}"#), &l)),
            "missing:pids.limit"
        );
        // An empty resources block needs nothing.
        validate(&res("{}"), &l).unwrap();
    }
}
