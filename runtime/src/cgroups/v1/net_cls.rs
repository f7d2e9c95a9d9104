//! v1 `net_cls`: the classid tagged on the container's packets.

use std::path::Path;

use oci_spec::runtime::LinuxNetwork;

use crate::cgroups::fs;
use crate::cgroups::CgroupError;

pub(crate) fn apply(dir: &Path, n: &LinuxNetwork) -> Result<(), CgroupError> {
    if let Some(id) = n.class_id() {
        fs::write(dir, "net_cls.classid", &id.to_string())?;
    }
    Ok(())
}
