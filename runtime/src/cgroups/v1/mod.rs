//! cgroup v1: one hierarchy per controller (or per group of co-mounted
//! controllers), each holding its own directory for the container. Used on v1
//! and hybrid hosts. One file per controller.

pub(crate) mod blkio;
pub(crate) mod cpu;
pub(crate) mod cpuacct;
pub(crate) mod cpuset;
pub(crate) mod devices;
pub(crate) mod freezer;
pub(crate) mod hugetlb;
pub(crate) mod memory;
pub(crate) mod net_cls;
pub(crate) mod net_prio;
pub(crate) mod pids;
pub(crate) mod rdma;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use oci_spec::runtime::LinuxResources;

use super::devices::rules_from_oci;
use super::layout::V1Controller;
use super::stats::Stats;
use super::CgroupError;

/// The container's directory in each mounted v1 hierarchy.
pub(crate) type Dirs = BTreeMap<V1Controller, PathBuf>;

fn dir<'a>(dirs: &'a Dirs, c: V1Controller, field: &str) -> Result<&'a Path, CgroupError> {
    dirs.get(&c)
        .map(PathBuf::as_path)
        .ok_or_else(|| CgroupError::ControllerMissing {
            field: field.to_owned(),
            controller: c.name().to_owned(),
        })
}

/// Writes every resource that is set. `with_devices`: whether the v1
/// devices controller enforces `devices` (else the caller uses eBPF).
pub(crate) fn apply(
    dirs: &Dirs,
    r: &LinuxResources,
    with_devices: bool,
) -> Result<(), CgroupError> {
    if let Some(c) = r.cpu() {
        if c.cpus().as_deref().is_some_and(|s| !s.trim().is_empty())
            || c.mems().as_deref().is_some_and(|s| !s.trim().is_empty())
        {
            cpuset::apply(dir(dirs, V1Controller::Cpuset, "cpu.cpus")?, c)?;
        }
        if c.shares().is_some()
            || c.quota().is_some()
            || c.period().is_some()
            || c.burst().is_some()
            || c.idle().is_some()
            || c.realtime_runtime().is_some()
            || c.realtime_period().is_some()
        {
            cpu::apply(dir(dirs, V1Controller::Cpu, "cpu")?, c)?;
        }
    }
    if let Some(m) = r.memory() {
        if m.limit().is_some()
            || m.swap().is_some()
            || m.reservation().is_some()
            || m.swappiness().is_some()
            || m.disable_oom_killer().is_some()
        {
            memory::apply(dir(dirs, V1Controller::Memory, "memory")?, m)?;
        }
    }
    if let Some(p) = r.pids() {
        pids::apply(dir(dirs, V1Controller::Pids, "pids.limit")?, p)?;
    }
    if let Some(b) = r.block_io() {
        if let Some(d) = dirs.get(&V1Controller::Blkio) {
            blkio::apply(d, b)?;
        }
    }
    if let Some(h) = r.hugepage_limits().as_deref().filter(|h| !h.is_empty()) {
        hugetlb::apply(dir(dirs, V1Controller::Hugetlb, "hugepageLimits")?, h)?;
    }
    if let Some(n) = r.network() {
        if n.class_id().is_some() {
            net_cls::apply(dir(dirs, V1Controller::NetCls, "network.classID")?, n)?;
        }
        if n.priorities().as_ref().is_some_and(|p| !p.is_empty()) {
            net_prio::apply(dir(dirs, V1Controller::NetPrio, "network.priorities")?, n)?;
        }
    }
    if let Some(rd) = r.rdma().as_ref().filter(|m| !m.is_empty()) {
        rdma::apply(dir(dirs, V1Controller::Rdma, "rdma")?, rd)?;
    }
    if with_devices {
        if let Some(devs) = r.devices() {
            let rules = rules_from_oci(devs)?;
            devices::apply(dir(dirs, V1Controller::Devices, "devices")?, &rules)?;
        }
    }
    Ok(())
}

/// Fills `out` from every mounted controller.
pub(crate) fn stats(dirs: &Dirs, out: &mut Stats) -> Result<(), CgroupError> {
    if let Some(d) = dirs.get(&V1Controller::Cpuacct) {
        cpuacct::stats(d, &mut out.cpu)?;
    }
    if let Some(d) = dirs.get(&V1Controller::Cpu) {
        cpu::stats(d, &mut out.cpu)?;
    }
    if let Some(d) = dirs.get(&V1Controller::Memory) {
        memory::stats(d, &mut out.memory)?;
    }
    if let Some(d) = dirs.get(&V1Controller::Pids) {
        pids::stats(d, &mut out.pids)?;
    }
    if let Some(d) = dirs.get(&V1Controller::Blkio) {
        blkio::stats(d, &mut out.io)?;
    }
    if let Some(d) = dirs.get(&V1Controller::Hugetlb) {
        hugetlb::stats(d, &mut out.hugetlb)?;
    }
    Ok(())
}
