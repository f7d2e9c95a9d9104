//! v2 `io`: weights (BFQ's io.bfq.weight takes the OCI 10..1000 value as is;
//! otherwise io.weight gets runc's conversion to 1..10000) and io.max limits.

use std::path::Path;

use oci_spec::runtime::LinuxBlockIo;

use crate::cgroups::convert::blkio_weight_to_io_weight;
use crate::cgroups::stats::{parse_io_stat, IoStats};
use crate::cgroups::{fs, CgroupError};

pub(crate) fn apply(dir: &Path, b: &LinuxBlockIo) -> Result<(), CgroupError> {
    let bfq = dir.join("io.bfq.weight").exists();
    if let Some(w) = b.weight().filter(|w| *w != 0) {
        if bfq {
            fs::write(dir, "io.bfq.weight", &w.to_string())?;
        } else {
            let v = blkio_weight_to_io_weight(u64::from(w));
            fs::write(dir, "io.weight", &v.to_string())?;
        }
    }
    for d in b.weight_device().iter().flatten() {
        if let Some(w) = d.weight() {
            let (file, v) = if bfq {
                ("io.bfq.weight", u64::from(w))
            } else {
                ("io.weight", blkio_weight_to_io_weight(u64::from(w)))
            };
            fs::write(dir, file, &format!("{}:{} {}", d.major(), d.minor(), v))?;
        }
    }
    for (key, list) in [
        ("rbps", b.throttle_read_bps_device()),
        ("wbps", b.throttle_write_bps_device()),
        ("riops", b.throttle_read_iops_device()),
        ("wiops", b.throttle_write_iops_device()),
    ] {
        for d in list.iter().flatten() {
            let v = if d.rate() == 0 {
                "max".to_owned()
            } else {
                d.rate().to_string()
            };
            fs::write(
                dir,
                "io.max",
                &format!("{}:{} {key}={v}", d.major(), d.minor()),
            )?;
        }
    }
    Ok(())
}

pub(crate) fn stats(dir: &Path, out: &mut IoStats) -> Result<(), CgroupError> {
    if let Some(t) = fs::read_opt(dir, "io.stat")? {
        out.usage = parse_io_stat(&t);
    }
    Ok(())
}
