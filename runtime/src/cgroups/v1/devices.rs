//! v1 `devices`: devices.allow / devices.deny.
//!
//! The target state comes from [`DeviceState`]. When both the current state
//! (read back from devices.list) and the target deny by default, only the
//! difference is written, so a live update never opens or closes devices that
//! do not change. Otherwise the cgroup is reset with an `a` write first.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use crate::cgroups::devices::{v1_line, DevRule, DeviceState};
use crate::cgroups::{fs, CgroupError};

/// Each of `devices.allow` and `devices.deny` is opened once and takes one
/// rule per `write(2)` (the kernel parses every write as one rule): a new
/// container's dozen default rules cost a dozen writes, not a dozen path
/// walks from /sys.
pub(crate) fn apply(dir: &Path, rules: &[DevRule]) -> Result<(), CgroupError> {
    let target = DeviceState::from_rules(rules);
    let current = fs::read_opt(dir, "devices.list")?.and_then(|t| DeviceState::from_v1_list(&t));
    let mut open: Vec<(&str, File)> = Vec::with_capacity(2);
    for (file, line) in plan(current.as_ref(), &target) {
        let failed = |source| CgroupError::Write {
            path: dir.join(file),
            value: line.clone(),
            source,
        };
        let at = match open.iter().position(|(name, _)| *name == file) {
            Some(at) => at,
            None => {
                let f = File::options()
                    .write(true)
                    .truncate(true)
                    .open(dir.join(file))
                    .map_err(failed)?;
                open.push((file, f));
                open.len() - 1
            }
        };
        match open[at].1.write(line.as_bytes()) {
            Ok(n) if n == line.len() => {}
            Ok(_) => return Err(failed(std::io::ErrorKind::WriteZero.into())),
            Err(e) => return Err(failed(e)),
        }
    }
    Ok(())
}

/// The writes that take a cgroup from `current` to `target`, in order.
pub(crate) fn plan(
    current: Option<&DeviceState>,
    target: &DeviceState,
) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    match current {
        Some(cur) if !cur.default_allow && !target.default_allow => {
            for (k, bits) in &cur.exceptions {
                let keep = target.exceptions.get(k).copied().unwrap_or(0);
                let drop = bits & !keep;
                if drop != 0 {
                    out.push(("devices.deny", v1_line(k, drop)));
                }
            }
            for (k, bits) in &target.exceptions {
                let have = cur.exceptions.get(k).copied().unwrap_or(0);
                let add = bits & !have;
                if add != 0 {
                    out.push(("devices.allow", v1_line(k, add)));
                }
            }
        }
        _ => {
            let (reset, except) = if target.default_allow {
                ("devices.allow", "devices.deny")
            } else {
                ("devices.deny", "devices.allow")
            };
            out.push((reset, "a".to_owned()));
            for (k, bits) in &target.exceptions {
                out.push((except, v1_line(k, *bits)));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroups::devices::{DevKind, ACC_ALL, ACC_MKNOD, ACC_READ};

    #[test]
    fn first_apply_resets_then_allows() {
        let mut t = DeviceState::default();
        t.exceptions
            .insert((DevKind::Char, Some(1), Some(3)), ACC_ALL);
        let cur = DeviceState::from_v1_list("a *:* rwm\n").unwrap();
        assert_eq!(
            plan(Some(&cur), &t),
            vec![
                ("devices.deny", "a".to_owned()),
                ("devices.allow", "c 1:3 rwm".to_owned())
            ]
        );
    }

    #[test]
    fn update_writes_only_the_difference() {
        let cur = DeviceState::from_v1_list("c 1:3 rwm\nc 1:5 rwm\n").unwrap();
        let mut t = DeviceState::default();
        t.exceptions
            .insert((DevKind::Char, Some(1), Some(3)), ACC_ALL);
        t.exceptions
            .insert((DevKind::Char, Some(1), Some(5)), ACC_READ);
        t.exceptions.insert((DevKind::Block, None, None), ACC_MKNOD);
        assert_eq!(
            plan(Some(&cur), &t),
            vec![
                ("devices.deny", "c 1:5 wm".to_owned()),
                ("devices.allow", "b *:* m".to_owned())
            ]
        );
    }
}
