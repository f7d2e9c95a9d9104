//! cgroup v2: one unified hierarchy; the container's directory gets the
//! controllers its ancestors delegate through `cgroup.subtree_control`. Used
//! for resources on pure v2 hosts; on hybrid hosts only for membership,
//! freeze and kill. One file per controller.

pub(crate) mod cpu;
pub(crate) mod cpuset;
pub mod devices;
pub(crate) mod freezer;
pub(crate) mod hugetlb;
pub(crate) mod io;
pub(crate) mod memory;
pub(crate) mod pids;
pub(crate) mod unified;

use std::collections::BTreeSet;
use std::path::Path;

use oci_spec::runtime::LinuxResources;

use super::devices::rules_from_oci;
use super::stats::{parse_psi, PressureStats, Stats};
use super::{fs, CgroupError};

/// Enables, in every ancestor of `dir` below and including `mount`, every
/// controller of `wanted` (the layout's) that the ancestor has, so that `dir`
/// gets them all (runc enables everything available too). Controllers that cannot be enabled are logged and skipped; a
/// resource that needs one fails later with a clear error.
pub(crate) fn enable_controllers(
    mount: &Path,
    dir: &Path,
    wanted: &BTreeSet<String>,
) -> Result<(), CgroupError> {
    let Ok(rel) = dir.strip_prefix(mount) else {
        return Ok(());
    };
    let mut cur = mount.to_path_buf();
    for comp in rel.components() {
        let have: BTreeSet<String> = fs::read_opt(&cur, "cgroup.controllers")?
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        let on: BTreeSet<String> = fs::read_opt(&cur, "cgroup.subtree_control")?
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        for c in have.difference(&on).filter(|c| wanted.contains(*c)) {
            if let Err(e) = fs::write(&cur, "cgroup.subtree_control", &format!("+{c}")) {
                log::warn!("cannot delegate the {c} controller: {e}");
            }
        }
        cur.push(comp);
    }
    Ok(())
}

/// Which controller each set field needs.
fn required(r: &LinuxResources) -> Vec<(&'static str, &'static str)> {
    let mut out = Vec::new();
    if let Some(c) = r.cpu() {
        if c.shares().is_some()
            || c.quota().is_some()
            || c.period().is_some()
            || c.burst().is_some()
            || c.idle().is_some()
        {
            out.push(("cpu", "cpu"));
        }
        if c.cpus().as_deref().is_some_and(|s| !s.trim().is_empty())
            || c.mems().as_deref().is_some_and(|s| !s.trim().is_empty())
        {
            out.push(("cpu.cpus", "cpuset"));
        }
    }
    if let Some(m) = r.memory() {
        if m.limit().is_some() || m.swap().is_some() || m.reservation().is_some() {
            out.push(("memory", "memory"));
        }
    }
    if r.pids().is_some() {
        out.push(("pids.limit", "pids"));
    }
    if let Some(b) = r.block_io() {
        if crate::cgroups::validate::block_io_requested(b) {
            out.push(("blockIO", "io"));
        }
    }
    if r.hugepage_limits().as_ref().is_some_and(|h| !h.is_empty()) {
        out.push(("hugepageLimits", "hugetlb"));
    }
    if r.rdma().as_ref().is_some_and(|h| !h.is_empty()) {
        out.push(("rdma", "rdma"));
    }
    out
}

/// Writes every resource that is set into the cgroup2 directory `dir`.
/// Controllers and `unified` files are all checked before the first write.
pub(crate) fn apply(dir: &Path, r: &LinuxResources, with_devices: bool) -> Result<(), CgroupError> {
    let have: BTreeSet<String> = fs::read_opt(dir, "cgroup.controllers")?
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    for (field, ctrl) in required(r) {
        if !have.contains(ctrl) {
            return Err(CgroupError::ControllerMissing {
                field: field.to_owned(),
                controller: ctrl.to_owned(),
            });
        }
    }
    if let Some(u) = r.unified() {
        unified::check(dir, u)?;
    }
    let rules = match r.devices() {
        Some(devs) if with_devices => Some(rules_from_oci(devs)?),
        _ => None,
    };
    if let Some(c) = r.cpu() {
        cpuset::apply(dir, c)?;
        cpu::apply(dir, c)?;
    }
    if let Some(m) = r.memory() {
        memory::apply(dir, m)?;
    }
    if let Some(p) = r.pids() {
        pids::apply(dir, p)?;
    }
    if let Some(b) = r.block_io() {
        if have.contains("io") {
            io::apply(dir, b)?;
        }
    }
    if let Some(h) = r.hugepage_limits().as_deref().filter(|h| !h.is_empty()) {
        hugetlb::apply(dir, h)?;
    }
    if let Some(rd) = r.rdma().as_ref().filter(|m| !m.is_empty()) {
        super::v1::rdma::apply(dir, rd)?;
    }
    if let Some(rules) = rules {
        devices::apply(dir, &rules)?;
    }
    if let Some(u) = r.unified() {
        unified::apply(dir, u)?;
    }
    Ok(())
}

/// Fills `out` from the cgroup2 directory `dir`.
pub(crate) fn stats(dir: &Path, out: &mut Stats) -> Result<(), CgroupError> {
    cpu::stats(dir, &mut out.cpu)?;
    memory::stats(dir, &mut out.memory)?;
    super::v1::pids::stats(dir, &mut out.pids)?;
    io::stats(dir, &mut out.io)?;
    hugetlb::stats(dir, &mut out.hugetlb)?;
    out.pressure = pressure(dir)?;
    Ok(())
}

/// cpu/memory/io.pressure, if the kernel has PSI.
pub(crate) fn pressure(dir: &Path) -> Result<Option<PressureStats>, CgroupError> {
    let cpu = fs::read_opt(dir, "cpu.pressure")?;
    let Some(cpu) = cpu else {
        return Ok(None);
    };
    Ok(Some(PressureStats {
        cpu: parse_psi(&cpu),
        memory: parse_psi(&fs::read_opt(dir, "memory.pressure")?.unwrap_or_default()),
        io: parse_psi(&fs::read_opt(dir, "io.pressure")?.unwrap_or_default()),
    }))
}
