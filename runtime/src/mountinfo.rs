//! `/proc/<pid>/mountinfo` parsed once, for everything that reads the mount
//! table: cgroup layout detection, the host's cgroup hierarchies, and the
//! mounts a container without its own mount namespace made in the host's.
//!
//! Runs in the caller and in the init (stage 1 reads the host's cgroup
//! mounts before a cgroup namespace hides them).

use std::path::PathBuf;

/// One line of mountinfo (proc(5)), with the octal escapes of paths decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Unique while mounted.
    pub id: u64,
    pub parent: u64,
    /// The root of the mount within its filesystem.
    pub root: String,
    pub mount_point: PathBuf,
    pub fstype: String,
    /// Superblock options (`rw,cpu`, `rw,name=systemd`, ...).
    pub super_options: String,
    /// The optional fields: propagation tags (`shared:N`, `master:N`,
    /// `propagate_from:N`, `unbindable`).
    pub optional: Vec<String>,
}

/// Decodes the octal escapes (`\040` for space) of a mountinfo field.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() {
            if let Ok(v) = u8::from_str_radix(s.get(i + 1..i + 4).unwrap_or("-"), 8) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Every well-formed line of `text`; malformed ones are skipped.
pub fn parse(text: &str) -> Vec<Mount> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<Mount> {
    let (pre, post) = line.split_once(" - ")?;
    let pre: Vec<&str> = pre.split(' ').collect();
    let post: Vec<&str> = post.split(' ').collect();
    if pre.len() < 5 || post.len() < 3 {
        return None;
    }
    Some(Mount {
        id: pre[0].parse().ok()?,
        parent: pre[1].parse().ok()?,
        root: unescape(pre[3]),
        mount_point: PathBuf::from(unescape(pre[4])),
        fstype: post[0].to_string(),
        super_options: post[2].to_string(),
        optional: pre
            .get(6..)
            .unwrap_or_default()
            .iter()
            .map(|f| f.to_string())
            .collect(),
    })
}

/// This process's mount table.
pub fn own() -> std::io::Result<Vec<Mount>> {
    Ok(parse(&std::fs::read_to_string("/proc/self/mountinfo")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_parsed_with_escapes_and_optional_fields() {
        let m = parse(
            "40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime shared:9 - cgroup cgroup rw,name=systemd\n\
             41 31 0:38 /x /a\\040b rw - tmpfs tmpfs rw\n\
             garbage\n",
        );
        assert_eq!(m.len(), 2);
        assert_eq!((m[0].id, m[0].parent), (40, 31));
        assert_eq!(m[0].fstype, "cgroup");
        assert_eq!(m[0].super_options, "rw,name=systemd");
        assert_eq!(m[0].optional, ["shared:9"]);
        assert!(m[1].optional.is_empty());
        assert_eq!(m[1].mount_point, PathBuf::from("/a b"));
        assert_eq!(m[1].root, "/x");
        assert_eq!(unescape("/plain"), "/plain");
    }
}
