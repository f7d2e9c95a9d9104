//! v2 `hugetlb`: hugetlb.<size>.max per page size.

use std::path::Path;

use oci_spec::runtime::LinuxHugepageLimit;

use crate::cgroups::stats::HugetlbStats;
use crate::cgroups::{fs, CgroupError};

pub(crate) fn apply(dir: &Path, limits: &[LinuxHugepageLimit]) -> Result<(), CgroupError> {
    for h in limits {
        let v = if h.limit() < 0 {
            "max".to_owned()
        } else {
            h.limit().to_string()
        };
        fs::write(dir, &format!("hugetlb.{}.max", h.page_size()), &v)?;
    }
    Ok(())
}

pub(crate) fn stats(dir: &Path, out: &mut Vec<HugetlbStats>) -> Result<(), CgroupError> {
    for size in crate::cgroups::v1::hugetlb::page_sizes(dir, ".max") {
        let ev = fs::read_flat_keyed(dir, &format!("hugetlb.{size}.events"))?;
        out.push(HugetlbStats {
            usage: fs::read_u64(dir, &format!("hugetlb.{size}.current"))?,
            max_usage: 0,
            failcnt: ev.get("max").copied().unwrap_or(0),
            limit: fs::read_u64(dir, &format!("hugetlb.{size}.max"))?,
            pagesize: size,
        });
    }
    Ok(())
}
