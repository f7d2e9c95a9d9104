//! The spec's `mounts`, in order, onto destinations resolved inside the
//! rootfs: bind mounts through the new mount API (`open_tree` →
//! `mount_setattr` → `move_mount`, so recursive and locked attributes are
//! right), other filesystems with `mount(2)` onto an fd of the destination,
//! and the cgroup filesystem mounted the way the host's layout needs (the
//! layout itself is read by `cgroups::hierarchies`).
//!
//! Option parsing is pure and runs in the caller for validation; mounting
//! runs in the init process, in the container's mount namespace, before
//! `pivot_root`. Idmapped bind mounts (`idmap`, `ridmap`, per-mount
//! `uidMappings`/`gidMappings`) are made by stage 1 while it is still host
//! root ([`idmapped_tree`]): only the initial user namespace may idmap a
//! host filesystem. Stage 2 moves them into place.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use oci_spec::runtime::Mount;

use crate::cgroups::CgroupHierarchy;
use crate::path::Root;
use crate::sys;

#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error("mount {what} on {dest}")]
    Mount {
        what: String,
        dest: PathBuf,
        #[source]
        source: io::Error,
    },
    // runc's words, which callers match on.
    #[error("{dest}: must be mounted on ordinary directory")]
    NotDirectory {
        dest: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("prepare mount destination {dest}")]
    Destination {
        dest: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("open mount source {source_path}")]
    Source {
        source_path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Parsed mount options.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Options {
    /// `MS_*` flags for `mount(2)` (non-bind mounts).
    pub flags: libc::c_ulong,
    /// `MOUNT_ATTR_*` to set and clear on the mount itself.
    pub attr_set: u64,
    pub attr_clr: u64,
    /// `MOUNT_ATTR_*` to set and clear recursively (the `r*` options).
    pub rattr_set: u64,
    pub rattr_clr: u64,
    pub bind: bool,
    pub recursive_bind: bool,
    /// Propagation changes in order: (`MS_SHARED` etc., recursive).
    pub propagation: Vec<(u64, bool)>,
    pub tmpcopyup: bool,
    /// `idmap` (`Some(false)`) or `ridmap` (`Some(true)`, recursive).
    pub idmap: Option<bool>,
    /// Filesystem-specific data, comma separated.
    pub data: Vec<String>,
}

/// The propagation flag of a `rootfsPropagation` / mount option value.
pub fn propagation_flag(name: &str) -> Option<(u64, bool)> {
    Some(match name {
        "private" => (libc::MS_PRIVATE, false),
        "rprivate" => (libc::MS_PRIVATE, true),
        "shared" => (libc::MS_SHARED, false),
        "rshared" => (libc::MS_SHARED, true),
        "slave" => (libc::MS_SLAVE, false),
        "rslave" => (libc::MS_SLAVE, true),
        "unbindable" => (libc::MS_UNBINDABLE, false),
        "runbindable" => (libc::MS_UNBINDABLE, true),
        _ => return None,
    })
}

/// Parse OCI/mount(8) options. Unknown words go to the filesystem as data.
pub fn parse_options(options: &[String]) -> Result<Options, String> {
    use sys::*;
    let mut o = Options::default();
    for opt in options {
        let (set, clr): (libc::c_ulong, libc::c_ulong) = match opt.as_str() {
            "defaults" => (0, 0),
            "ro" => (libc::MS_RDONLY, 0),
            "rw" => (0, libc::MS_RDONLY),
            "nosuid" => (libc::MS_NOSUID, 0),
            "suid" => (0, libc::MS_NOSUID),
            "nodev" => (libc::MS_NODEV, 0),
            "dev" => (0, libc::MS_NODEV),
            "noexec" => (libc::MS_NOEXEC, 0),
            "exec" => (0, libc::MS_NOEXEC),
            "sync" => (libc::MS_SYNCHRONOUS, 0),
            "async" => (0, libc::MS_SYNCHRONOUS),
            "dirsync" => (libc::MS_DIRSYNC, 0),
            "remount" => (libc::MS_REMOUNT, 0),
            "mand" => (libc::MS_MANDLOCK, 0),
            "nomand" => (0, libc::MS_MANDLOCK),
            "atime" => (0, libc::MS_NOATIME),
            "noatime" => (libc::MS_NOATIME, 0),
            "diratime" => (0, libc::MS_NODIRATIME),
            "nodiratime" => (libc::MS_NODIRATIME, 0),
            "relatime" => (libc::MS_RELATIME, 0),
            "norelatime" => (0, libc::MS_RELATIME),
            "strictatime" => (libc::MS_STRICTATIME, 0),
            "nostrictatime" => (0, libc::MS_STRICTATIME),
            "iversion" => (libc::MS_I_VERSION, 0),
            "noiversion" => (0, libc::MS_I_VERSION),
            "lazytime" => (libc::MS_LAZYTIME, 0),
            "nolazytime" => (0, libc::MS_LAZYTIME),
            "silent" => (libc::MS_SILENT, 0),
            "loud" => (0, libc::MS_SILENT),
            "bind" => {
                o.bind = true;
                (0, 0)
            }
            "rbind" => {
                o.bind = true;
                o.recursive_bind = true;
                (0, 0)
            }
            "tmpcopyup" => {
                o.tmpcopyup = true;
                (0, 0)
            }
            "nosymfollow" => {
                o.attr_set |= MOUNT_ATTR_NOSYMFOLLOW;
                (0, 0)
            }
            "symfollow" => {
                o.attr_clr |= MOUNT_ATTR_NOSYMFOLLOW;
                (0, 0)
            }
            "idmap" => {
                o.idmap = Some(o.idmap.unwrap_or(false));
                (0, 0)
            }
            "ridmap" => {
                o.idmap = Some(true);
                (0, 0)
            }
            other => {
                if let Some(p) = propagation_flag(other) {
                    o.propagation.push(p);
                } else if let Some((set, clr)) = recursive_attr(other) {
                    o.rattr_set = (o.rattr_set & !clr) | set;
                    o.rattr_clr = (o.rattr_clr & !set) | clr;
                } else {
                    if other.is_empty() || other.contains('\0') {
                        return Err(format!("invalid option {other:?}"));
                    }
                    o.data.push(other.to_string());
                }
                (0, 0)
            }
        };
        o.flags = (o.flags & !clr) | set;
        // Track the same for the mount_setattr path of bind mounts.
        let (aset, aclr) = flags_to_attr(set, clr);
        o.attr_set = (o.attr_set & !aclr) | aset;
        o.attr_clr = (o.attr_clr & !aset) | aclr;
    }
    Ok(o)
}

fn recursive_attr(opt: &str) -> Option<(u64, u64)> {
    use sys::*;
    Some(match opt {
        "rro" => (MOUNT_ATTR_RDONLY, 0),
        "rrw" => (0, MOUNT_ATTR_RDONLY),
        "rnosuid" => (MOUNT_ATTR_NOSUID, 0),
        "rsuid" => (0, MOUNT_ATTR_NOSUID),
        "rnodev" => (MOUNT_ATTR_NODEV, 0),
        "rdev" => (0, MOUNT_ATTR_NODEV),
        "rnoexec" => (MOUNT_ATTR_NOEXEC, 0),
        "rexec" => (0, MOUNT_ATTR_NOEXEC),
        "rnodiratime" => (MOUNT_ATTR_NODIRATIME, 0),
        "rdiratime" => (0, MOUNT_ATTR_NODIRATIME),
        "rrelatime" => (MOUNT_ATTR_RELATIME, MOUNT_ATTR__ATIME),
        "rnorelatime" => (0, MOUNT_ATTR__ATIME),
        "rnoatime" => (MOUNT_ATTR_NOATIME, MOUNT_ATTR__ATIME),
        "ratime" => (0, MOUNT_ATTR__ATIME),
        "rstrictatime" => (MOUNT_ATTR_STRICTATIME, MOUNT_ATTR__ATIME),
        "rnostrictatime" => (0, MOUNT_ATTR__ATIME),
        "rnosymfollow" => (MOUNT_ATTR_NOSYMFOLLOW, 0),
        "rsymfollow" => (0, MOUNT_ATTR_NOSYMFOLLOW),
        _ => return None,
    })
}

fn flags_to_attr(set: libc::c_ulong, clr: libc::c_ulong) -> (u64, u64) {
    use sys::*;
    let map = [
        (libc::MS_RDONLY, MOUNT_ATTR_RDONLY),
        (libc::MS_NOSUID, MOUNT_ATTR_NOSUID),
        (libc::MS_NODEV, MOUNT_ATTR_NODEV),
        (libc::MS_NOEXEC, MOUNT_ATTR_NOEXEC),
        (libc::MS_NODIRATIME, MOUNT_ATTR_NODIRATIME),
    ];
    let mut aset = 0;
    let mut aclr = 0;
    for (ms, attr) in map {
        if set & ms != 0 {
            aset |= attr;
        }
        if clr & ms != 0 {
            aclr |= attr;
        }
    }
    // atime is one field of three bits: setting one mode clears the field.
    for (ms, attr) in [
        (libc::MS_NOATIME, MOUNT_ATTR_NOATIME),
        (libc::MS_STRICTATIME, MOUNT_ATTR_STRICTATIME),
    ] {
        if set & ms != 0 {
            aset |= attr;
            aclr |= MOUNT_ATTR__ATIME;
        }
    }
    if set & libc::MS_RELATIME != 0 {
        aclr |= MOUNT_ATTR__ATIME;
    }
    (aset, aclr)
}

/// Check one spec mount (called for `mounts[i]`).
pub fn validate(m: &Mount) -> Result<(), String> {
    let dest = m.destination();
    if !dest.is_absolute() {
        return Err(format!("destination {dest:?} is not absolute"));
    }
    let opts = parse_options(m.options().as_deref().unwrap_or(&[]))?;
    let (uid, gid) = mount_id_maps(m);
    if uid.is_empty() != gid.is_empty() {
        return Err("uidMappings and gidMappings must be given together".into());
    }
    let typ = m.typ().as_deref().unwrap_or("");
    let bind = opts.bind || typ == "bind";
    if bind {
        if m.source().is_none() {
            return Err("bind mount without a source".into());
        }
    } else if typ.is_empty() {
        return Err("no type and not a bind mount".into());
    }
    if idmapped(m).is_some() && !bind {
        return Err("idmapped mounts (idmap, ridmap, uidMappings) must be bind mounts".into());
    }
    if opts.tmpcopyup && typ != "tmpfs" {
        return Err("tmpcopyup needs a tmpfs mount".into());
    }
    Ok(())
}

/// The mount's own `uidMappings` and `gidMappings` (empty when absent).
pub fn mount_id_maps(
    m: &Mount,
) -> (
    &[oci_spec::runtime::LinuxIdMapping],
    &[oci_spec::runtime::LinuxIdMapping],
) {
    (
        m.uid_mappings().as_deref().unwrap_or(&[]),
        m.gid_mappings().as_deref().unwrap_or(&[]),
    )
}

/// Whether the mount is idmapped, and if so recursively (`ridmap`): an
/// `idmap`/`ridmap` option, or mappings of its own (which the spec says
/// should come with the option; without it they apply to the top mount).
pub fn idmapped(m: &Mount) -> Option<bool> {
    let opts = parse_options(m.options().as_deref().unwrap_or(&[])).ok()?;
    let (uid, _) = mount_id_maps(m);
    opts.idmap.or((!uid.is_empty()).then_some(false))
}

/// The source of a bind mount: absolute, or relative to the bundle.
fn bind_source(m: &Mount, bundle: &Path) -> PathBuf {
    let src = m.source().clone().unwrap_or_default();
    if src.is_absolute() {
        src
    } else {
        bundle.join(src)
    }
}

/// The parsed options of `m`, as a mount error naming its destination.
fn options_of(m: &Mount) -> Result<Options, MountError> {
    parse_options(m.options().as_deref().unwrap_or(&[])).map_err(|e| MountError::Mount {
        what: "options".into(),
        dest: m.destination().clone(),
        source: io::Error::new(io::ErrorKind::InvalidInput, e),
    })
}

/// A detached clone of the bind mount `m`'s source, idmapped through the
/// user namespace `userns`, with the mount's attributes set; stage 2 moves
/// it into place. Needs CAP_SYS_ADMIN in the initial user namespace.
pub fn idmapped_tree(
    m: &Mount,
    bundle: &Path,
    userns: BorrowedFd<'_>,
) -> Result<OwnedFd, MountError> {
    let dest = m.destination().clone();
    let opts = options_of(m)?;
    let src = bind_source(m, bundle);
    let tree = open_bind_source(&src, &opts)?;
    let recursive = opts.idmap.unwrap_or(false);
    sys::mount_setattr_idmap(tree.as_fd(), recursive, userns).map_err(|e| MountError::Mount {
        what: format!(
            "idmapped bind {} (mount_setattr MOUNT_ATTR_IDMAP; does its filesystem support idmapped mounts?)",
            src.display()
        ),
        dest: dest.clone(),
        source: e,
    })?;
    set_bind_attrs(&tree, &opts).map_err(|e| MountError::Mount {
        what: format!("bind {}", src.display()),
        dest,
        source: e,
    })?;
    Ok(tree)
}

/// Whether `m` is a bind mount (type `bind`, or a `bind`/`rbind` option).
pub fn is_bind(m: &Mount) -> bool {
    m.typ().as_deref() == Some("bind")
        || m.options()
            .as_deref()
            .unwrap_or(&[])
            .iter()
            .any(|o| o == "bind" || o == "rbind")
}

/// The detached tree of a plain bind mount's source, with its attributes,
/// made while the init is still host root (as runc's mount-source fds): a
/// container in a new user namespace could not open a source its mapped
/// root cannot reach (containerd's sandbox /dev/shm under a 0700 state
/// directory, a kubelet volume).
pub fn bind_source_tree(m: &Mount, bundle: &Path) -> Result<OwnedFd, MountError> {
    let dest = m.destination().clone();
    let opts = options_of(m)?;
    let src = bind_source(m, bundle);
    let tree = open_bind_source(&src, &opts)?;
    set_bind_attrs(&tree, &opts).map_err(|e| MountError::Mount {
        what: format!("bind {}", src.display()),
        dest,
        source: e,
    })?;
    Ok(tree)
}

fn open_bind_source(src: &Path, opts: &Options) -> Result<OwnedFd, MountError> {
    let mut flags = sys::OPEN_TREE_CLONE;
    if opts.recursive_bind {
        flags |= libc::AT_RECURSIVE as u32;
    }
    sys::open_tree(None, src, flags).map_err(|source| MountError::Source {
        source_path: src.to_path_buf(),
        source,
    })
}

fn set_bind_attrs(tree: &OwnedFd, opts: &Options) -> io::Result<()> {
    if opts.attr_set != 0 || opts.attr_clr != 0 {
        sys::mount_setattr(tree.as_fd(), false, opts.attr_set, opts.attr_clr, 0)?;
    }
    if opts.rattr_set != 0 || opts.rattr_clr != 0 {
        sys::mount_setattr(tree.as_fd(), true, opts.rattr_set, opts.rattr_clr, 0)?;
    }
    Ok(())
}

/// What the init knows while it mounts.
pub struct MountContext<'a> {
    pub root: &'a Root,
    pub bundle: &'a Path,
    pub new_cgroupns: bool,
    pub cgroups: &'a [CgroupHierarchy],
}

fn strict_dest(dest: &Path) -> bool {
    let d = crate::path::clean(dest);
    d.starts_with("proc") || d.starts_with("sys") || d.starts_with("dev")
}

/// Perform one spec mount. `premade` is its bind tree made before the
/// namespaces were joined ([`idmapped_tree`], [`bind_source_tree`]), if any.
pub fn mount_one(
    ctx: &MountContext<'_>,
    m: &Mount,
    premade: Option<OwnedFd>,
) -> Result<(), MountError> {
    let dest = m.destination().clone();
    let opts = options_of(m)?;
    let typ = m.typ().as_deref().unwrap_or("");
    let strict = strict_dest(&dest);
    if opts.bind || typ == "bind" {
        return bind_mount(ctx, m, &opts, strict, premade);
    }
    let destination = |e: io::Error| MountError::Destination {
        dest: dest.clone(),
        source: e,
    };
    if typ == "proc" || typ == "sysfs" {
        // These must land on a real directory, never through a symlink.
        match ctx
            .root
            .resolve(&dest, libc::O_PATH | libc::O_DIRECTORY, true)
        {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => return Err(MountError::NotDirectory { dest, source: e }),
        }
    }
    if typ == "cgroup" || typ == "cgroup2" {
        return mount_cgroup(ctx, &dest, &opts, strict);
    }
    let target = ctx
        .root
        .mkdir_all(&dest, 0o755, strict)
        .map_err(destination)?;
    let source = m
        .source()
        .as_ref()
        .map(|s| s.as_os_str().as_bytes().to_vec())
        .unwrap_or_else(|| typ.as_bytes().to_vec());
    mount_fs(ctx, &dest, target.as_fd(), &source, typ, &opts)
}

fn mount_fs(
    ctx: &MountContext<'_>,
    dest: &Path,
    target: BorrowedFd<'_>,
    source: &[u8],
    typ: &str,
    opts: &Options,
) -> Result<(), MountError> {
    let err = |source: io::Error| MountError::Mount {
        what: typ.to_string(),
        dest: dest.to_path_buf(),
        source,
    };
    let src = CString::new(source).map_err(|_| err(io::ErrorKind::InvalidInput.into()))?;
    let fstype = CString::new(typ).map_err(|_| err(io::ErrorKind::InvalidInput.into()))?;
    let data =
        CString::new(opts.data.join(",")).map_err(|_| err(io::ErrorKind::InvalidInput.into()))?;
    let flags = opts.flags & !libc::MS_REMOUNT;
    let old = if opts.tmpcopyup {
        // Keep the directory underneath: the mount is about to hide it.
        Some(target.try_clone_to_owned().map_err(err)?)
    } else {
        None
    };
    sys::mount_on_fd(
        Some(&src),
        target,
        Some(&fstype),
        flags,
        (!opts.data.is_empty()).then_some(data.as_c_str()),
    )
    .map_err(err)?;
    if opts.propagation.is_empty() && opts.rattr_set == 0 && opts.rattr_clr == 0 && old.is_none() {
        return Ok(());
    }
    // Reopen: the fd we mounted on is the directory underneath.
    let mounted = ctx.root.open_path(dest, strict_dest(dest)).map_err(err)?;
    if let Some(old) = old {
        copy_up(old.as_fd(), mounted.as_fd()).map_err(err)?;
    }
    finish_attrs(mounted.as_fd(), opts).map_err(err)
}

fn finish_attrs(mounted: BorrowedFd<'_>, opts: &Options) -> io::Result<()> {
    if opts.rattr_set != 0 || opts.rattr_clr != 0 {
        sys::mount_setattr(mounted, true, opts.rattr_set, opts.rattr_clr, 0)?;
    }
    for &(prop, recursive) in &opts.propagation {
        sys::mount_setattr(mounted, recursive, 0, 0, prop)?;
    }
    Ok(())
}

fn bind_mount(
    ctx: &MountContext<'_>,
    m: &Mount,
    opts: &Options,
    strict: bool,
    premade: Option<OwnedFd>,
) -> Result<(), MountError> {
    let dest = m.destination().clone();
    let src = bind_source(m, ctx.bundle);
    let attrs_done = premade.is_some();
    let tree = match premade {
        Some(tree) => tree,
        None => open_bind_source(&src, opts)?,
    };
    let is_dir = sys::fstat(tree.as_fd())
        .map(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR)
        .map_err(|source| MountError::Source {
            source_path: src.clone(),
            source,
        })?;
    let destination = |e: io::Error| MountError::Destination {
        dest: dest.clone(),
        source: e,
    };
    let target = if is_dir {
        ctx.root
            .mkdir_all(&dest, 0o755, strict)
            .map_err(destination)?
    } else {
        ctx.root.create_file(&dest, strict).map_err(destination)?
    };
    let err = |source: io::Error| MountError::Mount {
        what: format!("bind {}", src.display()),
        dest: dest.clone(),
        source,
    };
    if !attrs_done {
        set_bind_attrs(&tree, opts).map_err(err)?;
    }
    sys::move_mount(tree.as_fd(), target.as_fd()).map_err(err)?;
    if !opts.propagation.is_empty() {
        let mounted = ctx.root.open_path(&dest, strict).map_err(err)?;
        for &(prop, recursive) in &opts.propagation {
            sys::mount_setattr(mounted.as_fd(), recursive, 0, 0, prop).map_err(err)?;
        }
    }
    Ok(())
}

/// Bind-mount the host file or directory behind `source` (an fd) onto
/// `dest` inside the root, read-only if asked.
pub fn bind_fd(root: &Root, source: BorrowedFd<'_>, dest: &Path, readonly: bool) -> io::Result<()> {
    let tree = sys::open_tree(Some(source), Path::new(""), sys::OPEN_TREE_CLONE)?;
    let is_dir = sys::fstat(tree.as_fd())?.st_mode & libc::S_IFMT == libc::S_IFDIR;
    let strict = strict_dest(dest);
    let target = if is_dir {
        root.mkdir_all(dest, 0o755, strict)?
    } else {
        root.create_file(dest, strict)?
    };
    if readonly {
        sys::mount_setattr(tree.as_fd(), false, sys::MOUNT_ATTR_RDONLY, 0, 0)?;
    }
    sys::move_mount(tree.as_fd(), target.as_fd())
}

fn mount_cgroup(
    ctx: &MountContext<'_>,
    dest: &Path,
    opts: &Options,
    strict: bool,
) -> Result<(), MountError> {
    let err = |what: &str, source: io::Error| MountError::Mount {
        what: what.to_string(),
        dest: dest.to_path_buf(),
        source,
    };
    let target = ctx
        .root
        .mkdir_all(dest, 0o755, strict)
        .map_err(|e| MountError::Destination {
            dest: dest.to_path_buf(),
            source: e,
        })?;
    let base =
        opts.flags & (libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC | libc::MS_RELATIME);
    let ro = opts.flags & libc::MS_RDONLY;
    // Pure v2: the only hierarchy is mounted at /sys/fs/cgroup itself.
    if let Some(v2) = ctx
        .cgroups
        .iter()
        .find(|h| h.name.is_empty() && h.fstype == "cgroup2")
    {
        return mount_hierarchy(ctx, v2, target.as_fd(), base | ro).map_err(|e| err("cgroup2", e));
    }
    // v1 or hybrid: a tmpfs with one directory per hierarchy.
    sys::mount_on_fd(
        Some(c"tmpfs"),
        target.as_fd(),
        Some(c"tmpfs"),
        base,
        Some(c"mode=755"),
    )
    .map_err(|e| err("tmpfs", e))?;
    let tmpfs = Root::from_fd(
        ctx.root
            .open_path(dest, strict)
            .map_err(|e| err("tmpfs", e))?,
    );
    for h in ctx.cgroups {
        if h.name.is_empty() || h.name.contains('/') {
            continue;
        }
        // The tmpfs is ours and empty, and nothing of the container runs
        // yet: one plain directory per hierarchy, no walk.
        let name = Path::new(&h.name);
        let sub = match sys::mkdirat(tmpfs.fd(), name, 0o755) {
            Err(e) if e.raw_os_error() != Some(libc::EEXIST) => Err(e),
            _ => tmpfs.open_path(name, true),
        }
        .map_err(|e| err(&h.name, e))?;
        mount_hierarchy(ctx, h, sub.as_fd(), base | ro).map_err(|e| err(&h.name, e))?;
        // Co-mounted controllers ("cpu,cpuacct") get a link per controller.
        if h.name.contains(',') {
            for c in h.name.split(',') {
                let _ = sys::symlinkat(Path::new(&h.name), tmpfs.fd(), Path::new(c));
            }
        }
    }
    if ro != 0 {
        let mounted = ctx
            .root
            .open_path(dest, strict)
            .map_err(|e| err("tmpfs", e))?;
        sys::mount_setattr(mounted.as_fd(), false, sys::MOUNT_ATTR_RDONLY, 0, 0)
            .map_err(|e| err("tmpfs", e))?;
    }
    Ok(())
}

fn mount_hierarchy(
    ctx: &MountContext<'_>,
    h: &CgroupHierarchy,
    target: BorrowedFd<'_>,
    flags: libc::c_ulong,
) -> io::Result<()> {
    if ctx.new_cgroupns {
        // A fresh mount inside the new cgroup namespace is rooted at the
        // container's own cgroup.
        let fstype = CString::new(h.fstype.as_str()).map_err(|_| io::ErrorKind::InvalidInput)?;
        let data = CString::new(h.options.as_str()).map_err(|_| io::ErrorKind::InvalidInput)?;
        sys::mount_on_fd(
            Some(&fstype),
            target,
            Some(&fstype),
            flags,
            (!h.options.is_empty()).then_some(data.as_c_str()),
        )
    } else {
        // Without one, show the container only its own cgroup directory.
        let tree = sys::open_tree(None, &h.host_path, sys::OPEN_TREE_CLONE)?;
        let mut attrs = 0;
        for (ms, attr) in [
            (libc::MS_RDONLY, sys::MOUNT_ATTR_RDONLY),
            (libc::MS_NOSUID, sys::MOUNT_ATTR_NOSUID),
            (libc::MS_NODEV, sys::MOUNT_ATTR_NODEV),
            (libc::MS_NOEXEC, sys::MOUNT_ATTR_NOEXEC),
        ] {
            if flags & ms != 0 {
                attrs |= attr;
            }
        }
        sys::mount_setattr(tree.as_fd(), false, attrs, 0, 0)?;
        sys::move_mount(tree.as_fd(), target)
    }
}

/// Copy the contents of `from` (the directory that was under a fresh tmpfs)
/// into `to` (the tmpfs root): files, directories and symlinks, with modes
/// and owners. Symlinks are copied, never followed.
fn copy_up(from: BorrowedFd<'_>, to: BorrowedFd<'_>) -> io::Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let src = PathBuf::from(sys::fd_path(from).to_str().unwrap_or_default());
    let dst = PathBuf::from(sys::fd_path(to).to_str().unwrap_or_default());
    fn walk(src: &Path, dst: &Path) -> io::Result<()> {
        for entry in std::fs::read_dir(src)? {
            let entry = entry?;
            let meta = entry.metadata()?;
            let (s, d) = (entry.path(), dst.join(entry.file_name()));
            let ft = meta.file_type();
            if ft.is_symlink() {
                std::os::unix::fs::symlink(std::fs::read_link(&s)?, &d)?;
            } else if ft.is_dir() {
                std::fs::create_dir(&d)?;
                walk(&s, &d)?;
                std::fs::set_permissions(&d, std::fs::Permissions::from_mode(meta.mode()))?;
            } else if ft.is_file() {
                std::fs::copy(&s, &d)?;
            } else {
                continue;
            }
            std::os::unix::fs::lchown(&d, Some(meta.uid()), Some(meta.gid()))?;
        }
        Ok(())
    }
    walk(&src, &dst)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(list: &[&str]) -> Options {
        parse_options(&list.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn flags_and_data_are_separated() {
        let o = opts(&["nosuid", "noexec", "nodev", "mode=755", "size=65536k"]);
        assert_eq!(o.flags, libc::MS_NOSUID | libc::MS_NOEXEC | libc::MS_NODEV);
        assert_eq!(o.data, vec!["mode=755", "size=65536k"]);
        assert!(!o.bind);
    }

    #[test]
    fn later_options_win() {
        let o = opts(&["ro", "rw"]);
        assert_eq!(o.flags & libc::MS_RDONLY, 0);
        assert_eq!(o.attr_set & sys::MOUNT_ATTR_RDONLY, 0);
        assert_ne!(o.attr_clr & sys::MOUNT_ATTR_RDONLY, 0);
    }

    #[test]
    fn recursive_and_propagation_options() {
        let o = opts(&["rbind", "rro", "rnosuid", "rprivate", "shared"]);
        assert!(o.bind && o.recursive_bind);
        assert_eq!(o.rattr_set, sys::MOUNT_ATTR_RDONLY | sys::MOUNT_ATTR_NOSUID);
        assert_eq!(
            o.propagation,
            vec![(libc::MS_PRIVATE, true), (libc::MS_SHARED, false)]
        );
    }

    #[test]
    fn atime_modes_clear_the_field() {
        let o = opts(&["bind", "noatime"]);
        assert_eq!(o.attr_set & sys::MOUNT_ATTR__ATIME, sys::MOUNT_ATTR_NOATIME);
        assert_ne!(o.attr_clr & sys::MOUNT_ATTR__ATIME, 0);
    }

    #[test]
    fn idmap_options_parse() {
        assert_eq!(
            parse_options(&["idmap".to_string()]).unwrap().idmap,
            Some(false)
        );
        let o = parse_options(&[
            "rbind".to_string(),
            "ridmap".to_string(),
            "idmap".to_string(),
        ]);
        assert_eq!(o.unwrap().idmap, Some(true));
    }

    #[test]
    fn validate_checks_destination_and_source() {
        let m: Mount = serde_json::from_str(r#"{"destination":"rel","type":"tmpfs"}"#).unwrap();
        assert!(validate(&m).unwrap_err().contains("not absolute"));
        let m: Mount = serde_json::from_str(r#"{"destination":"/x","options":["bind"]}"#).unwrap();
        assert!(validate(&m).unwrap_err().contains("without a source"));
        let m: Mount =
            serde_json::from_str(r#"{"destination":"/x","type":"proc","source":"proc"}"#).unwrap();
        validate(&m).unwrap();
    }
}
