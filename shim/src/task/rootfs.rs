//! The rootfs mounts containerd passes in Create (an overlay of snapshot
//! layers, or a bind mount), mounted onto `<bundle>/rootfs` and taken down
//! again on Delete (or by `delete` when the daemon is gone).
//!
//! Runs in the daemon, for Create and Delete.

use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags};
use wren_protocol::mount::Mount;

/// A rootfs mount failed.
#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    #[error("rootfs mount {index} ({kind} from {source_path}): options {options:?}: {reason}")]
    Options {
        index: usize,
        kind: String,
        source_path: String,
        options: Vec<String>,
        reason: String,
    },
    #[error("mount {kind} from {source_path} on {target}")]
    Mount {
        kind: String,
        source_path: String,
        target: PathBuf,
        #[source]
        source: nix::Error,
    },
    #[error("create {0}")]
    Mkdir(PathBuf, #[source] std::io::Error),
    #[error("idmapped overlay: {what}")]
    Idmap {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

/// Mounts `mounts` in order onto `rootfs`. On error, whatever was mounted
/// is unmounted again.
pub fn mount_all(mounts: &[Mount], rootfs: &Path) -> Result<(), RootfsError> {
    if mounts.is_empty() {
        return Ok(());
    }
    std::fs::create_dir_all(rootfs).map_err(|e| RootfsError::Mkdir(rootfs.to_path_buf(), e))?;
    for (index, m) in mounts.iter().enumerate() {
        if let Err(e) = mount_one(index, m, rootfs) {
            let _ = unmount_all(rootfs);
            return Err(e);
        }
    }
    Ok(())
}

fn mount_one(index: usize, m: &Mount, rootfs: &Path) -> Result<(), RootfsError> {
    let opts =
        wren_runtime::mounts::parse_options(&m.options).map_err(|reason| RootfsError::Options {
            index,
            kind: m.type_.clone(),
            source_path: m.source.clone(),
            options: m.options.clone(),
            reason,
        })?;
    let target = if m.target.is_empty() {
        rootfs.to_path_buf()
    } else {
        rootfs.join(m.target.trim_start_matches('/'))
    };
    let err = |source| RootfsError::Mount {
        kind: m.type_.clone(),
        source_path: m.source.clone(),
        target: target.clone(),
        source,
    };
    let flags = MsFlags::from_bits_truncate(opts.flags);
    let data = opts.data.join(",");
    if opts.bind || m.type_ == "bind" {
        let mut bind = MsFlags::MS_BIND;
        if opts.recursive_bind {
            bind |= MsFlags::MS_REC;
        }
        nix::mount::mount(
            Some(m.source.as_str()),
            &target,
            None::<&str>,
            bind,
            None::<&str>,
        )
        .map_err(err)?;
        if flags.contains(MsFlags::MS_RDONLY) {
            nix::mount::mount(
                None::<&str>,
                &target,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REMOUNT | flags,
                None::<&str>,
            )
            .map_err(err)?;
        }
    } else if m.type_ == "overlay" && opts.data.iter().any(|d| is_idmap_option(d)) {
        idmapped_overlay(index, m, &opts.data, flags, &target)?;
    } else {
        let data = (!data.is_empty()).then_some(data.as_str());
        nix::mount::mount(
            Some(m.source.as_str()),
            &target,
            Some(m.type_.as_str()),
            flags,
            data,
        )
        .map_err(err)?;
    }
    Ok(())
}

fn is_idmap_option(o: &str) -> bool {
    o.starts_with("uidmap=") || o.starts_with("gidmap=")
}

/// containerd 2.x's overlay for a user-namespaced pod: `uidmap=` and
/// `gidmap=` options (`<container>:<host>:<size>`, several separated by
/// `,` or `;`) ask for the lower layers idmapped, so their files, owned by
/// host root, belong to the pod's root. Each lower directory is cloned,
/// idmapped through a user namespace with those maps and attached under
/// `<target>.idmap/<n>`; overlay is mounted on the clones, which are then
/// detached again (overlay keeps them).
fn idmapped_overlay(
    index: usize,
    m: &Mount,
    data: &[String],
    flags: MsFlags,
    target: &Path,
) -> Result<(), RootfsError> {
    use std::os::fd::AsFd;
    let bad = |reason: String| RootfsError::Options {
        index,
        kind: m.type_.clone(),
        source_path: m.source.clone(),
        options: m.options.clone(),
        reason,
    };
    let to_map = |v: &str| -> Result<String, RootfsError> {
        v.split([',', ';'])
            .filter(|s| !s.is_empty())
            .map(|e| {
                let f: Vec<&str> = e.split(':').collect();
                match f.as_slice() {
                    [c, h, s] if [c, h, s].iter().all(|x| x.parse::<u32>().is_ok()) => {
                        Ok(format!("{c} {h} {s}\n"))
                    }
                    _ => Err(bad(format!("id mapping {e:?}: want container:host:size"))),
                }
            })
            .collect()
    };
    let (mut uid, mut gid, mut rest) = (String::new(), String::new(), Vec::new());
    for d in data {
        if let Some(v) = d.strip_prefix("uidmap=") {
            uid = to_map(v)?;
        } else if let Some(v) = d.strip_prefix("gidmap=") {
            gid = to_map(v)?;
        } else {
            rest.push(d.clone());
        }
    }
    if uid.is_empty() || gid.is_empty() {
        return Err(bad("uidmap= and gidmap= go together".into()));
    }
    let sys_err = |what: &str, e: std::io::Error| RootfsError::Idmap {
        what: what.to_string(),
        source: e,
    };
    let userns = wren_runtime::namespaces::userns_with_maps(&uid, &gid)
        .map_err(|e| sys_err("a user namespace for the mappings", e))?;
    let stage = PathBuf::from(format!("{}.idmap", target.display()));
    let mut attached: Vec<PathBuf> = Vec::new();
    let cleanup = |attached: &[PathBuf]| {
        for p in attached {
            let _ = nix::mount::umount2(p, MntFlags::MNT_DETACH);
        }
        let _ = std::fs::remove_dir_all(&stage);
    };
    let mut data_out = Vec::new();
    for d in rest {
        let Some(lowers) = d.strip_prefix("lowerdir=") else {
            data_out.push(d);
            continue;
        };
        let mut mapped = Vec::new();
        for (n, lower) in lowers.split(':').enumerate() {
            let dir = stage.join(n.to_string());
            let step = (|| -> std::io::Result<()> {
                std::fs::create_dir_all(&dir)?;
                let tree = wren_runtime::sys::open_tree(
                    None,
                    Path::new(lower),
                    wren_runtime::sys::OPEN_TREE_CLONE,
                )?;
                wren_runtime::sys::mount_setattr_idmap(tree.as_fd(), false, userns.as_fd())?;
                let at = wren_runtime::sys::open(&dir, libc::O_PATH | libc::O_DIRECTORY, 0)?;
                wren_runtime::sys::move_mount(tree.as_fd(), at.as_fd())
            })();
            if let Err(e) = step {
                cleanup(&attached);
                return Err(sys_err(&format!("idmap the lower layer {lower}"), e));
            }
            attached.push(dir.clone());
            mapped.push(dir.display().to_string());
        }
        data_out.push(format!("lowerdir={}", mapped.join(":")));
    }
    let result = nix::mount::mount(
        Some(m.source.as_str()),
        target,
        Some("overlay"),
        flags,
        Some(data_out.join(",").as_str()),
    );
    cleanup(&attached);
    result.map_err(|source| RootfsError::Mount {
        kind: m.type_.clone(),
        source_path: m.source.clone(),
        target: target.to_path_buf(),
        source,
    })
}

/// Unmounts everything stacked on `path`, innermost first; absent or not
/// mounted is fine.
pub fn unmount_all(path: &Path) -> Result<(), nix::Error> {
    loop {
        match nix::mount::umount2(path, MntFlags::MNT_DETACH) {
            Ok(()) => continue,
            Err(nix::Error::EINVAL | nix::Error::ENOENT) => return Ok(()),
            Err(e) => return Err(e),
        }
    }
}
