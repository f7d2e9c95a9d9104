//! v1 `hugetlb`: hugetlb.<size>.limit_in_bytes per page size.

use std::path::Path;

use oci_spec::runtime::LinuxHugepageLimit;

use crate::cgroups::fs;
use crate::cgroups::stats::HugetlbStats;
use crate::cgroups::CgroupError;

pub(crate) fn apply(dir: &Path, limits: &[LinuxHugepageLimit]) -> Result<(), CgroupError> {
    for h in limits {
        let file = format!("hugetlb.{}.limit_in_bytes", h.page_size());
        fs::write(dir, &file, &h.limit().to_string())?;
    }
    Ok(())
}

/// Page sizes the controller offers, from its file names.
pub(crate) fn page_sizes(dir: &Path, suffix: &str) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().into_string().ok()?;
            let size = n.strip_prefix("hugetlb.")?.strip_suffix(suffix)?;
            (!size.contains('.')).then(|| size.to_owned())
        })
        .collect();
    out.sort();
    out
}

pub(crate) fn stats(dir: &Path, out: &mut Vec<HugetlbStats>) -> Result<(), CgroupError> {
    for size in page_sizes(dir, ".limit_in_bytes") {
        let f = |s: &str| fs::read_u64(dir, &format!("hugetlb.{size}.{s}"));
        out.push(HugetlbStats {
            usage: f("usage_in_bytes")?,
            max_usage: f("max_usage_in_bytes")?,
            failcnt: f("failcnt")?,
            limit: f("limit_in_bytes")?,
            pagesize: size,
        });
    }
    Ok(())
}
