//! v2 `linux.resources.unified`: arbitrary cgroup v2 files, written last so
//! they override the typed fields (as runc does). Every file is checked to
//! exist before the first write, so an unknown key leaves nothing half set.

use std::collections::HashMap;
use std::path::Path;

use crate::cgroups::{fs, CgroupError};

pub(crate) fn check(dir: &Path, unified: &HashMap<String, String>) -> Result<(), CgroupError> {
    for key in unified.keys() {
        if !dir.join(key).is_file() {
            let ctrl = key.split('.').next().unwrap_or_default();
            return Err(CgroupError::Invalid {
                field: format!("unified[{key:?}]"),
                reason: format!("no such file in this cgroup (is the {ctrl} controller enabled?)"),
            });
        }
    }
    Ok(())
}

pub(crate) fn apply(dir: &Path, unified: &HashMap<String, String>) -> Result<(), CgroupError> {
    let mut keys: Vec<_> = unified.iter().collect();
    keys.sort();
    for (k, v) in keys {
        fs::write(dir, k, v)?;
    }
    Ok(())
}
