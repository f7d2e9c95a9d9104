//! From `linux.cgroupsPath` to the container's path inside every hierarchy.
//!
//! - unset: `/<parent>/<container-id>`;
//! - absolute (`/a/b`): used as is, below each hierarchy's mount point;
//! - relative (`a/b`): below the default parent, `/<parent>/a/b`;
//! - systemd form `slice:prefix:name`: there is no systemd to ask for a scope,
//!   so it maps to the directory systemd would have created:
//!   `a-b.slice:docker:id` → `/a.slice/a-b.slice/docker-id.scope`, which
//!   is also where systemd puts the unit the systemd driver asks for
//!   ([`systemd_unit`]).

use super::CgroupError;

/// The container's cgroup path relative to each hierarchy's root, always
/// starting with `/`, never `/` itself, never containing `..`.
pub fn cgroup_path(
    parent: &str,
    cgroups_path: Option<&str>,
    container_id: &str,
) -> Result<String, CgroupError> {
    let invalid = |reason| CgroupError::InvalidPath {
        path: cgroups_path.unwrap_or(container_id).to_owned(),
        reason,
    };
    let raw = match cgroups_path {
        None | Some("") => {
            if container_id.is_empty() || container_id.contains('/') || container_id == ".." {
                return Err(invalid("container id cannot name a cgroup"));
            }
            format!("/{parent}/{container_id}")
        }
        Some(p) if p.starts_with('/') => p.to_owned(),
        Some(p) if p.split(':').count() == 3 => systemd_path(p).map_err(invalid)?,
        Some(p) => format!("/{parent}/{p}"),
    };
    let mut out = String::new();
    for comp in raw.split('/') {
        match comp {
            "" | "." => {}
            ".." => return Err(invalid("must not contain \"..\"")),
            c => {
                out.push('/');
                out.push_str(c);
            }
        }
    }
    if out.is_empty() {
        return Err(invalid("must not be the root cgroup"));
    }
    Ok(out)
}

/// With the systemd driver: `slice:prefix:name` (unset: `system.slice`,
/// prefix `wren`, the container id) → the unit (`<prefix>-<name>.scope`,
/// or the name when it is a `.slice`) and its slice; other forms are
/// refused, as runc does.
pub fn systemd_unit(
    cgroups_path: Option<&str>,
    container_id: &str,
) -> Result<super::systemd::Unit, CgroupError> {
    let given = cgroups_path.filter(|p| !p.is_empty());
    let full = given.map_or_else(
        || format!("system.slice:wren:{container_id}"),
        str::to_owned,
    );
    let invalid = |reason| CgroupError::InvalidPath {
        path: full.clone(),
        reason,
    };
    let parts: Vec<&str> = full.split(':').collect();
    let [slice, prefix, name] = parts[..] else {
        return Err(invalid(
            "with the systemd cgroup driver it must be slice:prefix:name",
        ));
    };
    // The same checks as the cgroupfs path systemd will make.
    systemd_path(&full).map_err(invalid)?;
    let slice = if slice.is_empty() {
        "system.slice"
    } else {
        slice
    };
    let name = if name.ends_with(".slice") {
        name.to_string()
    } else if prefix.is_empty() {
        format!("{name}.scope")
    } else {
        format!("{prefix}-{name}.scope")
    };
    Ok(super::systemd::Unit {
        name,
        slice: slice.to_string(),
    })
}

/// `slice:prefix:name` → the cgroupfs directory of that systemd scope.
fn systemd_path(p: &str) -> Result<String, &'static str> {
    let mut parts = p.splitn(3, ':');
    let (slice, prefix, name) = match (parts.next(), parts.next(), parts.next()) {
        (Some(s), Some(p), Some(n)) => (s, p, n),
        _ => return Err("systemd form must be slice:prefix:name"),
    };
    if name.is_empty() || name.contains('/') || prefix.contains('/') {
        return Err("systemd form must be slice:prefix:name");
    }
    let mut out = expand_slice(if slice.is_empty() {
        "system.slice"
    } else {
        slice
    })?;
    let unit = if name.ends_with(".slice") {
        // A slice as the unit: its own expansion is the full path.
        return expand_slice(name);
    } else if prefix.is_empty() {
        format!("{name}.scope")
    } else {
        format!("{prefix}-{name}.scope")
    };
    out.push('/');
    out.push_str(&unit);
    Ok(out)
}

/// `a-b-c.slice` → `/a.slice/a-b.slice/a-b-c.slice`; `-.slice` is the root.
fn expand_slice(slice: &str) -> Result<String, &'static str> {
    const BAD: &str = "invalid systemd slice name";
    let base = slice.strip_suffix(".slice").ok_or(BAD)?;
    if slice.contains('/') {
        return Err(BAD);
    }
    if base == "-" {
        return Ok(String::new());
    }
    if base.is_empty() || base.starts_with('-') || base.ends_with('-') || base.contains("--") {
        return Err(BAD);
    }
    let mut out = String::new();
    let mut prefix = String::new();
    for (i, part) in base.split('-').enumerate() {
        if i > 0 {
            prefix.push('-');
        }
        prefix.push_str(part);
        out.push('/');
        out.push_str(&prefix);
        out.push_str(".slice");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_absolute_relative() {
        assert_eq!(cgroup_path("wren", None, "c1").unwrap(), "/wren/c1");
        assert_eq!(cgroup_path("wren", Some("/a//b/"), "c1").unwrap(), "/a/b");
        assert_eq!(cgroup_path("wren", Some("x/y"), "c1").unwrap(), "/wren/x/y");
    }

    #[test]
    fn systemd_form_maps_to_cgroupfs() {
        assert_eq!(
            cgroup_path("wren", Some("system.slice:docker:abc"), "c").unwrap(),
            "/system.slice/docker-abc.scope"
        );
        assert_eq!(
            cgroup_path("wren", Some("kubepods-burstable-pod1.slice:cri-containerd:abc"), "c")
                .unwrap(),
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice/cri-containerd-abc.scope"
        );
        assert_eq!(
            cgroup_path("wren", Some("-.slice:p:n"), "c").unwrap(),
            "/p-n.scope"
        );
        assert_eq!(
            cgroup_path("wren", Some(":p:n"), "c").unwrap(),
            "/system.slice/p-n.scope"
        );
        assert!(cgroup_path("wren", Some("bad:p:n"), "c").is_err());
        assert!(cgroup_path("wren", Some("a--b.slice:p:n"), "c").is_err());
    }

    #[test]
    fn systemd_driver_units() {
        let u = systemd_unit(
            Some("kubepods-burstable-pod1.slice:cri-containerd:abc"),
            "c",
        )
        .unwrap();
        assert_eq!(u.name, "cri-containerd-abc.scope");
        assert_eq!(u.slice, "kubepods-burstable-pod1.slice");
        let u = systemd_unit(None, "c1").unwrap();
        assert_eq!(
            (u.name.as_str(), u.slice.as_str()),
            ("wren-c1.scope", "system.slice")
        );
        let u = systemd_unit(Some(":p:n"), "c").unwrap();
        assert_eq!(
            (u.name.as_str(), u.slice.as_str()),
            ("p-n.scope", "system.slice")
        );
        let u = systemd_unit(Some("system.slice::n"), "c").unwrap();
        assert_eq!(u.name, "n.scope");
        let u = systemd_unit(Some("a.slice:p:a-b.slice"), "c").unwrap();
        assert_eq!(
            (u.name.as_str(), u.slice.as_str()),
            ("a-b.slice", "a.slice")
        );
        for bad in [
            "/a/b",
            "a/b",
            "x:y",
            "bad:p:n",
            "a--b.slice:p:n",
            "system.slice:p:",
        ] {
            let e = systemd_unit(Some(bad), "c").unwrap_err().to_string();
            assert!(e.contains(bad), "{bad}: {e}");
        }
    }

    #[test]
    fn rejects_escape_and_root() {
        assert!(cgroup_path("wren", Some("/a/../../etc"), "c").is_err());
        assert!(cgroup_path("wren", Some("../x"), "c").is_err());
        assert!(cgroup_path("wren", Some("/"), "c").is_err());
        assert!(cgroup_path("wren", None, "a/b").is_err());
    }
}
