//! Which mount a host path is on and how that mount propagates, from
//! `/proc/self/mountinfo`: a volume asking for shared or slave propagation
//! (`-v SRC:DST:rshared`) only gets it when its source's mount is shared
//! (or, for slave, shared or itself a slave), as Docker checks before it
//! creates the container rather than leaving a mount that silently
//! propagates nothing.
//!
//! Runs in wrend (spec building); reads only.

use std::path::{Path, PathBuf};

/// How a mount propagates (mountinfo's optional fields).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagation {
    /// `shared:N` (perhaps also `master:M`).
    Shared,
    /// `master:N` only.
    Slave,
    /// Neither: private or unbindable.
    Private,
}

/// The mount point `path` lies on and its propagation, from `mountinfo`'s
/// text: the longest mount point that is a prefix of `path` by whole
/// components, the last listed of equal ones (the top of a stack).
pub fn mount_of(mountinfo: &str, path: &Path) -> Option<(PathBuf, Propagation)> {
    let mut best: Option<wren_runtime::mountinfo::Mount> = None;
    for m in wren_runtime::mountinfo::parse(mountinfo) {
        let longer = best
            .as_ref()
            .is_none_or(|b| b.mount_point.as_os_str().len() <= m.mount_point.as_os_str().len());
        if path.starts_with(&m.mount_point) && longer {
            best = Some(m);
        }
    }
    let m = best?;
    let has = |tag: &str| m.optional.iter().any(|f| f.starts_with(tag));
    let prop = if has("shared:") {
        Propagation::Shared
    } else if has("master:") {
        Propagation::Slave
    } else {
        Propagation::Private
    };
    Some((m.mount_point, prop))
}

/// Why a volume from `source` cannot have `propagation` (an OCI mount
/// option), or None when it can (or asks for none).
pub fn refuse(source: &Path, propagation: &str) -> Option<String> {
    let needs_shared = match propagation {
        "shared" | "rshared" => true,
        "slave" | "rslave" => false,
        _ => return None,
    };
    let real = std::fs::canonicalize(source).unwrap_or_else(|_| source.to_path_buf());
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let (point, prop) = mount_of(&info, &real)?;
    let ok = match prop {
        Propagation::Shared => true,
        Propagation::Slave => !needs_shared,
        Propagation::Private => false,
    };
    (!ok).then(|| {
        let p = point.display();
        if needs_shared {
            format!(
                "{propagation}: {} is on mount {p}, which is not shared \
                 (mount --make-rshared {p} first)",
                source.display()
            )
        } else {
            format!(
                "{propagation}: {} is on mount {p}, which is neither shared nor a slave, \
                 so nothing would propagate (mount --make-rshared {p} first)",
                source.display()
            )
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const INFO: &str = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
30 22 0:26 / /run rw,nosuid shared:5 - tmpfs tmpfs rw
40 22 0:30 / /srv rw,relatime - ext4 /dev/sdb1 rw
41 40 0:31 / /srv/sub rw master:7 - tmpfs tmpfs rw
42 40 0:32 / /srv/with\\040space rw shared:9 master:3 - tmpfs tmpfs rw
43 22 0:33 / /srv rw shared:12 - tmpfs tmpfs rw
";

    fn of(p: &str) -> Option<(PathBuf, Propagation)> {
        mount_of(INFO, Path::new(p))
    }

    #[test]
    fn the_longest_and_topmost_mount_wins() {
        assert_eq!(of("/etc/x"), Some(("/".into(), Propagation::Shared)));
        assert_eq!(of("/run/a"), Some(("/run".into(), Propagation::Shared)));
        // /srv is listed twice: the later mount is on top.
        assert_eq!(of("/srv/a"), Some(("/srv".into(), Propagation::Shared)));
        assert_eq!(
            of("/srv/sub/x"),
            Some(("/srv/sub".into(), Propagation::Slave))
        );
        assert_eq!(
            of("/srv/subway"),
            Some(("/srv".into(), Propagation::Shared))
        );
        assert_eq!(
            of("/srv/with space/x"),
            Some(("/srv/with space".into(), Propagation::Shared))
        );
    }

    #[test]
    fn private_mounts_are_seen() {
        let info = "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n";
        assert_eq!(
            mount_of(info, Path::new("/x")),
            Some(("/".into(), Propagation::Private))
        );
    }
}
