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
