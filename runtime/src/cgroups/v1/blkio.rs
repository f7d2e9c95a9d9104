//! v1 `blkio`: weight (CFQ `blkio.weight` or BFQ `blkio.bfq.weight`),
//! per-device weights and throttling; the recursive I/O counters for stats.

use std::path::Path;

use oci_spec::runtime::LinuxBlockIo;

use crate::cgroups::fs;
use crate::cgroups::stats::{parse_blkio, IoStats};
use crate::cgroups::CgroupError;

/// CFQ's file if the kernel has it, else BFQ's.
fn weight_file(dir: &Path, cfq: &'static str, bfq: &'static str) -> &'static str {
    if !dir.join(cfq).exists() && dir.join(bfq).exists() {
        bfq
    } else {
        cfq
    }
}

pub(crate) fn apply(dir: &Path, b: &LinuxBlockIo) -> Result<(), CgroupError> {
    if let Some(w) = b.weight().filter(|w| *w != 0) {
        let f = weight_file(dir, "blkio.weight", "blkio.bfq.weight");
        fs::write(dir, f, &w.to_string())?;
    }
    if let Some(w) = b.leaf_weight().filter(|w| *w != 0) {
        fs::write(dir, "blkio.leaf_weight", &w.to_string())?;
    }
    for d in b.weight_device().iter().flatten() {
        if let Some(w) = d.weight() {
            let f = weight_file(dir, "blkio.weight_device", "blkio.bfq.weight_device");
            fs::write(dir, f, &format!("{}:{} {}", d.major(), d.minor(), w))?;
        }
        if let Some(w) = d.leaf_weight() {
            let line = format!("{}:{} {}", d.major(), d.minor(), w);
            fs::write(dir, "blkio.leaf_weight_device", &line)?;
        }
    }
    for (file, list) in [
        (
            "blkio.throttle.read_bps_device",
            b.throttle_read_bps_device(),
        ),
        (
            "blkio.throttle.write_bps_device",
            b.throttle_write_bps_device(),
        ),
        (
            "blkio.throttle.read_iops_device",
            b.throttle_read_iops_device(),
        ),
        (
            "blkio.throttle.write_iops_device",
            b.throttle_write_iops_device(),
        ),
    ] {
        for d in list.iter().flatten() {
            fs::write(
                dir,
                file,
                &format!("{}:{} {}", d.major(), d.minor(), d.rate()),
            )?;
        }
    }
    Ok(())
}

/// First non-empty of the CFQ, BFQ and throttle variants of a counter.
fn first(
    dir: &Path,
    names: &[&str],
) -> Result<Vec<crate::cgroups::stats::BlkioEntry>, CgroupError> {
    for n in names {
        if let Some(t) = fs::read_opt(dir, n)? {
            let v = parse_blkio(&t);
            if !v.is_empty() {
                return Ok(v);
            }
        }
    }
    Ok(Vec::new())
}

pub(crate) fn stats(dir: &Path, out: &mut IoStats) -> Result<(), CgroupError> {
    out.io_service_bytes_recursive = first(
        dir,
        &[
            "blkio.io_service_bytes_recursive",
            "blkio.bfq.io_service_bytes_recursive",
            "blkio.throttle.io_service_bytes_recursive",
        ],
    )?;
    out.io_serviced_recursive = first(
        dir,
        &[
            "blkio.io_serviced_recursive",
            "blkio.bfq.io_serviced_recursive",
            "blkio.throttle.io_serviced_recursive",
        ],
    )?;
    out.io_queued_recursive = first(dir, &["blkio.io_queued_recursive"])?;
    out.io_service_time_recursive = first(dir, &["blkio.io_service_time_recursive"])?;
    out.io_wait_time_recursive = first(dir, &["blkio.io_wait_time_recursive"])?;
    out.io_merged_recursive = first(dir, &["blkio.io_merged_recursive"])?;
    out.io_time_recursive = first(dir, &["blkio.time_recursive"])?;
    out.sectors_recursive = first(dir, &["blkio.sectors_recursive"])?;
    Ok(())
}
