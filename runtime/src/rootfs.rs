//! The container's root: the rootfs bound onto itself so it is a mount
//! point, `pivot_root` into it (or `MS_MOVE` + `chroot` where pivot_root is
//! impossible), root propagation, the read-only root, and the masked and
//! read-only paths. Runs in the init process, in the container's mount
//! namespace.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use crate::path::Root;
use crate::sys;

#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    #[error("make the mount tree private to the container")]
    Propagation(#[source] io::Error),
    #[error("bind the rootfs {path} onto itself")]
    BindRoot {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{call} into the rootfs")]
    Pivot {
        call: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("set the propagation of /")]
    RootPropagation(#[source] io::Error),
    #[error("make the root read-only")]
    ReadonlyRoot(#[source] io::Error),
    #[error("mask {path}")]
    Mask {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("make {path} read-only")]
    ReadonlyPath {
        path: String,
        #[source]
        source: io::Error,
    },
}

/// Set the propagation of the new mount namespace and make the rootfs a
/// mount point. Returns the root handle used for every later mount.
///
/// By default every mount becomes a slave of the host's (nothing the
/// container mounts propagates back). `linux.rootfsPropagation` replaces
/// that default, as in runc: with `rshared` the mounts stay in the host's
/// peer groups, so a volume bound later joins its source's group and what
/// the container mounts under it reaches the host (Kubernetes'
/// Bidirectional); made slave first, the volume would land in a new group
/// of its own. The rootfs's parent mount is then made a slave, so binding
/// the rootfs onto itself propagates nowhere and pivot_root accepts it.
pub fn prepare(
    rootfs: &Path,
    host_mount_ns: bool,
    propagation: Option<&str>,
) -> Result<Root, RootfsError> {
    // In the caller's mount namespace `/` is the host's: leave it alone.
    if !host_mount_ns {
        let flags = match propagation {
            Some(p) => {
                let (flag, recursive) = crate::mounts::propagation_flag(p).ok_or_else(|| {
                    RootfsError::RootPropagation(io::ErrorKind::InvalidInput.into())
                })?;
                flag | if recursive { libc::MS_REC } else { 0 }
            }
            None => libc::MS_SLAVE | libc::MS_REC,
        };
        sys::mount(None, c"/", None, flags, None).map_err(RootfsError::Propagation)?;
        if propagation.is_some() {
            parent_mount_slave(rootfs)?;
        }
    }
    let bind = |source| RootfsError::BindRoot {
        path: rootfs.to_path_buf(),
        source,
    };
    let tree = sys::open_tree(
        None,
        rootfs,
        sys::OPEN_TREE_CLONE | libc::AT_RECURSIVE as u32,
    )
    .map_err(bind)?;
    let target = sys::open(rootfs, libc::O_PATH | libc::O_DIRECTORY, 0).map_err(bind)?;
    sys::move_mount(tree.as_fd(), target.as_fd()).map_err(bind)?;
    let root = Root::open(rootfs).map_err(bind)?;
    if host_mount_ns {
        // What the container mounts under its root must not propagate into
        // the host's other namespaces.
        sys::mount_setattr(root.fd(), true, 0, 0, libc::MS_PRIVATE)
            .map_err(RootfsError::Propagation)?;
    }
    Ok(root)
}

/// Make the mount that holds `rootfs` (the nearest mount point at or above
/// it) a slave, non-recursively: a shared one would propagate the rootfs's
/// bind to its peers (the host) and make pivot_root fail; a private one
/// stays private, a slave stays a slave.
fn parent_mount_slave(rootfs: &Path) -> Result<(), RootfsError> {
    let path = std::fs::canonicalize(rootfs).map_err(RootfsError::Propagation)?;
    let mounts = crate::mountinfo::own().map_err(RootfsError::Propagation)?;
    let parent = mounts
        .iter()
        .map(|m| &m.mount_point)
        .filter(|p| path.starts_with(p))
        .max_by_key(|p| p.as_os_str().len())
        .ok_or_else(|| RootfsError::Propagation(io::ErrorKind::NotFound.into()))?;
    let c = std::ffi::CString::new(parent.as_os_str().as_encoded_bytes())
        .map_err(|_| RootfsError::Propagation(io::ErrorKind::InvalidInput.into()))?;
    sys::mount(None, &c, None, libc::MS_SLAVE, None).map_err(RootfsError::Propagation)
}

/// Make `root` the process's `/`.
pub fn pivot(root: &Root, no_pivot: bool, host_mount_ns: bool) -> Result<(), RootfsError> {
    let err = |call| move |source| RootfsError::Pivot { call, source };
    // SAFETY: fchdir on a live directory fd.
    if unsafe { libc::fchdir(std::os::fd::AsRawFd::as_raw_fd(&root.fd())) } != 0 {
        return Err(err("fchdir")(io::Error::last_os_error()));
    }
    if host_mount_ns {
        // Moving or pivoting would change the host's `/`: chroot only.
        // SAFETY: valid NUL-terminated path.
        if unsafe { libc::chroot(c".".as_ptr()) } != 0 {
            return Err(err("chroot")(io::Error::last_os_error()));
        }
    } else if no_pivot {
        sys::mount(Some(c"."), c"/", None, libc::MS_MOVE, None).map_err(err("mount --move"))?;
        // SAFETY: valid NUL-terminated path.
        if unsafe { libc::chroot(c".".as_ptr()) } != 0 {
            return Err(err("chroot")(io::Error::last_os_error()));
        }
    } else {
        let old_root = sys::open(Path::new("/"), libc::O_PATH | libc::O_DIRECTORY, 0)
            .map_err(err("open the old root"))?;
        sys::pivot_root(Path::new("."), Path::new(".")).map_err(err("pivot_root"))?;
        // The old root is now stacked on the new one. Make it a slave and
        // detach it so the unmount propagates nowhere. The slave change
        // must reach the old root only: through "." (the new root's mount)
        // it would turn every container mount into a slave, breaking a
        // shared (Bidirectional) volume's peer group.
        // SAFETY: fchdir on a live directory fd.
        if unsafe { libc::fchdir(std::os::fd::AsRawFd::as_raw_fd(&old_root)) } != 0 {
            return Err(err("fchdir to the old root")(io::Error::last_os_error()));
        }
        sys::mount(None, c".", None, libc::MS_SLAVE | libc::MS_REC, None)
            .map_err(err("make old root slave"))?;
        sys::umount(Path::new("."), libc::MNT_DETACH).map_err(err("umount old root"))?;
    }
    // SAFETY: valid NUL-terminated path.
    if unsafe { libc::chdir(c"/".as_ptr()) } != 0 {
        return Err(err("chdir /")(io::Error::last_os_error()));
    }
    Ok(())
}

/// Apply `linux.rootfsPropagation` to the new `/`.
pub fn set_root_propagation(value: &str) -> Result<(), RootfsError> {
    let (flag, recursive) = crate::mounts::propagation_flag(value)
        .ok_or_else(|| RootfsError::RootPropagation(io::ErrorKind::InvalidInput.into()))?;
    let root = sys::open(Path::new("/"), libc::O_PATH | libc::O_DIRECTORY, 0)
        .map_err(RootfsError::RootPropagation)?;
    sys::mount_setattr(root.as_fd(), recursive, 0, 0, flag).map_err(RootfsError::RootPropagation)
}

/// Remount `/` read-only (only the root mount; mounts on top keep theirs).
pub fn readonly_root() -> Result<(), RootfsError> {
    let root = sys::open(Path::new("/"), libc::O_PATH | libc::O_DIRECTORY, 0)
        .map_err(RootfsError::ReadonlyRoot)?;
    sys::mount_setattr(root.as_fd(), false, sys::MOUNT_ATTR_RDONLY, 0, 0)
        .map_err(RootfsError::ReadonlyRoot)
}

/// Hide every path of `masked`: files get a bind of the verified host
/// /dev/null (`dev_null`), directories an empty read-only tmpfs. Paths that
/// do not exist are skipped.
///
/// The directories share one tmpfs: the first gets a new one, the others a
/// clone of that mount (as runc 1.4.3 does; one superblock per container
/// instead of one per masked directory). Like runc's, the tmpfs gets the
/// default mode (1777): it is read-only and empty, so the mode only shows
/// in `ls -ld`, and tools comparing with runc see the same.
pub fn mask_paths(
    root: &Root,
    masked: &[String],
    dev_null: BorrowedFd<'_>,
) -> Result<(), RootfsError> {
    let mut first_tmpfs: Option<OwnedFd> = None;
    for path in masked {
        let err = |source| RootfsError::Mask {
            path: path.clone(),
            source,
        };
        let resolve = || root.resolve(Path::new(path), libc::O_PATH | libc::O_NOFOLLOW, false);
        let fd = match resolve() {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            Err(e) => return Err(err(e)),
        };
        let st = sys::fstat(fd.as_fd()).map_err(err)?;
        match st.st_mode & libc::S_IFMT {
            libc::S_IFDIR => match &first_tmpfs {
                Some(shared) => {
                    let tree =
                        sys::open_tree(Some(shared.as_fd()), Path::new(""), sys::OPEN_TREE_CLONE)
                            .map_err(err)?;
                    sys::move_mount(tree.as_fd(), fd.as_fd()).map_err(err)?;
                }
                None => {
                    sys::mount_on_fd(
                        Some(c"tmpfs"),
                        fd.as_fd(),
                        Some(c"tmpfs"),
                        libc::MS_RDONLY,
                        None,
                    )
                    .map_err(err)?;
                    // The path now leads to the new tmpfs's root.
                    first_tmpfs = Some(resolve().map_err(err)?);
                }
            },
            libc::S_IFLNK => continue,
            _ => {
                let tree = sys::open_tree(Some(dev_null), Path::new(""), sys::OPEN_TREE_CLONE)
                    .map_err(err)?;
                sys::move_mount(tree.as_fd(), fd.as_fd()).map_err(err)?;
            }
        }
    }
    Ok(())
}

/// Make every path of `paths` (recursively) read-only; missing ones are
/// skipped.
pub fn readonly_paths(root: &Root, paths: &[String]) -> Result<(), RootfsError> {
    for path in paths {
        let err = |source| RootfsError::ReadonlyPath {
            path: path.clone(),
            source,
        };
        let fd = match root.resolve(Path::new(path), libc::O_PATH, false) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            Err(e) => return Err(err(e)),
        };
        let tree = sys::open_tree(
            Some(fd.as_fd()),
            Path::new(""),
            sys::OPEN_TREE_CLONE | libc::AT_RECURSIVE as u32,
        )
        .map_err(err)?;
        sys::mount_setattr(tree.as_fd(), true, sys::MOUNT_ATTR_RDONLY, 0, 0).map_err(err)?;
        sys::move_mount(tree.as_fd(), fd.as_fd()).map_err(err)?;
    }
    Ok(())
}
