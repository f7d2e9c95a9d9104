//! `wren cp`: files and directories between the host and a container
//! (running or not), with `docker cp`'s rules for where things land:
//!
//! - a file onto a file overwrites it; into a directory it keeps its name;
//!   a DEST ending in `/` must be an existing directory;
//! - a directory onto a missing DEST becomes DEST; into an existing
//!   directory it keeps its name, unless SRC ends in `/.` (then its
//!   contents are merged in); onto a file it is an error;
//! - container paths are taken from the container's `/`; symlinks are
//!   copied as symlinks (`-L` follows SRC itself);
//! - files copied in belong to the container's root (`-a`: keep their
//!   uid and gid); copied out, to the caller (`-a`: keep them).
//!
//! The container's side is reached through `/proc/PID/root` and never by a
//! path: SRC and DEST are resolved with `openat2(RESOLVE_IN_ROOT)` (so its
//! symlinks stay inside its root), and everything below them is walked
//! with `*at` calls on directory fds and `O_NOFOLLOW`, so a container that
//! swaps a directory for a symlink meanwhile makes the copy fail, never
//! escape (the `docker cp` races of CVE-2018-15664 and CVE-2019-14271).
//! A stopped container's files are its root directory, or (image
//! containers) the overlay its last task still has mounted, or else its
//! image layers and upper directory mounted as an overlay in wren's own
//! mount namespace (its volumes are not there, as with Docker), under the
//! container's overlay lock (`crate::overlay_lock`): wrend refuses to
//! start it until the copy is done, and a copy waits for a start that is
//! mounting it. Hard links are copied as separate files; devices, fifos
//! and sockets are skipped with a warning.
//!
//! Runs in `wren`.

use std::ffi::{CString, OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use clap::Args;
use wren_runtime::path::Root;
use wren_runtime::sys;

use super::client::Wrend;
use super::{CliError, Global};
use crate::overlay_lock::{self, OverlayLock};

/// `wren cp`'s arguments.
#[derive(Debug, Args)]
#[command(
    after_help = "One of SRC and DEST is NAME:PATH (a running container's path, from its /), \
the other a host path. SRC ending in /. copies a directory's contents."
)]
pub struct Cp {
    /// Keep the uid and gid of what is copied
    #[arg(short, long)]
    pub archive: bool,
    /// Follow SRC if it is a symlink
    #[arg(short = 'L', long)]
    pub follow_link: bool,
    /// NAME:PATH or a host path
    #[arg(value_name = "SRC")]
    pub src: String,
    /// NAME:PATH or a host path
    #[arg(value_name = "DEST")]
    pub dst: String,
}

/// One end of a copy, as the command line gave it.
enum Side {
    Host(String),
    Container { name: String, path: String },
}

fn side(s: &str) -> Side {
    // As Docker: a path that starts with / or . is local, whatever it holds.
    match s.split_once(':') {
        Some((name, path)) if !s.starts_with('/') && !s.starts_with('.') && !name.is_empty() => {
            Side::Container {
                name: name.to_string(),
                path: if path.is_empty() { "/" } else { path }.to_string(),
            }
        }
        _ => Side::Host(s.to_string()),
    }
}

/// Where paths are looked up: the host's filesystem, or a container's
/// root with its id maps.
enum Fs {
    Host,
    Container {
        name: String,
        root: Root,
        uids: Vec<(u32, u32, u32)>,
        gids: Vec<(u32, u32, u32)>,
        /// A stopped image container's overlay, unmounted when dropped.
        _mount: Option<TempMount>,
        /// Its overlay lock, released after the unmount (fields drop in
        /// order): wrend refuses to start the container meanwhile.
        _lock: Option<OverlayLock>,
    },
}

/// An overlay of a stopped container's layers on a temporary directory, in
/// a mount namespace of wren's own: unmounted and removed when dropped (and
/// gone with the namespace if wren dies first; only the empty directory
/// would stay).
struct TempMount {
    path: PathBuf,
}

impl TempMount {
    fn overlay(layers: &[PathBuf], record_dir: &Path, write: bool) -> io::Result<TempMount> {
        use nix::mount::{mount, MsFlags};
        use nix::sched::{unshare, CloneFlags};
        unshare(CloneFlags::CLONE_NEWNS).map_err(io::Error::from)?;
        // Nothing mounted here may reach the host's namespace.
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_REC | MsFlags::MS_PRIVATE,
            None::<&str>,
        )
        .map_err(io::Error::from)?;
        let upper = record_dir.join(crate::wrend::api::create::OVERLAY_UPPER);
        let work = record_dir.join(crate::wrend::api::create::OVERLAY_WORK);
        let lower: Vec<String> = layers
            .iter()
            .rev()
            .map(|l| l.display().to_string())
            .collect();
        let (opts, flags) = if write {
            (
                format!(
                    "lowerdir={},upperdir={},workdir={}",
                    lower.join(":"),
                    upper.display(),
                    work.display()
                ),
                MsFlags::empty(),
            )
        } else {
            // Read-only, its changes as the top layer: no claim on workdir.
            (
                format!("lowerdir={}:{}", upper.display(), lower.join(":")),
                MsFlags::MS_RDONLY,
            )
        };
        let path = std::env::temp_dir().join(format!("wren-cp-{}", std::process::id()));
        std::fs::create_dir(&path)?;
        if let Err(e) = mount(
            Some("overlay"),
            &path,
            Some("overlay"),
            flags,
            Some(opts.as_str()),
        ) {
            let _ = std::fs::remove_dir(&path);
            return Err(e.into());
        }
        Ok(TempMount { path })
    }
}

impl Drop for TempMount {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.path, nix::mount::MntFlags::MNT_DETACH);
        let _ = std::fs::remove_dir(&self.path);
    }
}

impl Fs {
    /// A container's files: a live one's through `/proc/PID/root`; a
    /// stopped one's root filesystem as its record describes it (`write`:
    /// it is the destination).
    fn container(g: &Global, w: &mut Wrend, name: &str, write: bool) -> Result<Fs, CliError> {
        // Taken before the status is read, so a start cannot slip between
        // "stopped" and the mount of its files (wrend holds it while the
        // shim mounts the overlay for a task); kept only for a stopped
        // container's copy.
        let lock = Self::lock(g, name)?;
        let c = w.inspect(name)?;
        if !matches!(c.status.as_str(), "running" | "paused" | "created") || c.pid == 0 {
            return Fs::stopped(g, name, write, lock);
        }
        drop(lock);
        let proc_root = format!("/proc/{}/root", c.pid);
        let root = Root::open(Path::new(&proc_root))
            .map_err(|e| CliError::failed(format!("open {proc_root}: {e}")))?;
        let map = |f: &str| {
            let text = std::fs::read_to_string(format!("/proc/{}/{f}", c.pid)).unwrap_or_default();
            id_map(&text)
        };
        Ok(Fs::Container {
            name: name.to_string(),
            root,
            uids: map("uid_map"),
            gids: map("gid_map"),
            _mount: None,
            _lock: None,
        })
    }

    /// The overlay lock of container `name`, once it is free; `None` when
    /// there is no such record (inspect then names the error).
    fn lock(g: &Global, name: &str) -> Result<Option<OverlayLock>, CliError> {
        if name.is_empty() || name.contains('/') || name == "." || name == ".." {
            return Ok(None);
        }
        let dir = crate::paths::containers_in(&g.records).join(name);
        if !dir.is_dir() {
            return Ok(None);
        }
        overlay_lock::lock(&dir).map(Some).map_err(|e| {
            CliError::failed(format!(
                "container {name}: lock {}: {e}",
                dir.join(overlay_lock::FILE).display()
            ))
        })
    }

    /// A stopped container: its `--rootfs` or bundle root directory, or
    /// its image layers and upper directory put together by an overlay
    /// mount in a mount namespace of this process's own (read-only, of the
    /// layers and the upper directory, when only read), which goes when
    /// wren exits.
    fn stopped(
        g: &Global,
        name: &str,
        write: bool,
        lock: Option<OverlayLock>,
    ) -> Result<Fs, CliError> {
        let dir = crate::paths::containers_in(&g.records).join(name);
        let rec = crate::wrend::record::Record::load(&dir).map_err(|e| {
            CliError::failed(format!(
                "container {name}: {}",
                wren_runtime::error::chain(&e)
            ))
        })?;
        let config = rec.bundle.join("config.json");
        let spec: serde_json::Value = std::fs::read(&config)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(|| {
                CliError::failed(format!("container {name}: read {}", config.display()))
            })?;
        let maps = |key: &str| -> Vec<(u32, u32, u32)> {
            spec["linux"][key]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|m| {
                            let n = |k: &str| m[k].as_u64().map(|v| v as u32);
                            Some((n("containerID")?, n("hostID")?, n("size")?))
                        })
                        .collect()
                })
                .unwrap_or_default()
        };
        let (uids, gids) = (maps("uidMappings"), maps("gidMappings"));
        let identity = vec![(0, 0, u32::MAX)];
        let or_identity = |m: Vec<_>| if m.is_empty() { identity.clone() } else { m };
        let (root, mount) = if rec.image_layers.is_empty() {
            let path = match spec["root"]["path"].as_str() {
                Some(p) if p.starts_with('/') => PathBuf::from(p),
                Some(p) => rec.bundle.join(p),
                None => {
                    return Err(CliError::failed(format!(
                        "container {name}: its spec has no root.path"
                    )))
                }
            };
            let root = Root::open(&path)
                .map_err(|e| CliError::failed(format!("open {}: {e}", path.display())))?;
            (root, None)
        } else if Self::still_mounted(&rec.bundle) {
            // wrend keeps an exited container's task until its next start
            // or its removal, and the shim keeps the task's overlay mounted
            // on <bundle>/rootfs (in this mount namespace) meanwhile: copy
            // through that mount, never a second overlay on the same
            // upper dir, whose results the kernel leaves undefined.
            let rootfs = rec.bundle.join("rootfs");
            let root = Root::open(&rootfs)
                .map_err(|e| CliError::failed(format!("open {}: {e}", rootfs.display())))?;
            (root, None)
        } else {
            let m = TempMount::overlay(&rec.image_layers, &dir, write)
                .map_err(|e| CliError::failed(format!("container {name}: mount its files: {e}")))?;
            let root = Root::open(&m.path)
                .map_err(|e| CliError::failed(format!("open {}: {e}", m.path.display())))?;
            (root, Some(m))
        };
        Ok(Fs::Container {
            name: name.to_string(),
            root,
            uids: or_identity(uids),
            gids: or_identity(gids),
            _mount: mount,
            _lock: lock,
        })
    }

    /// Whether `<bundle>/rootfs` is a mount point (its device differs).
    fn still_mounted(bundle: &Path) -> bool {
        let dev = |p: &Path| std::fs::metadata(p).map(|m| m.dev()).ok();
        let rootfs = dev(&bundle.join("rootfs"));
        rootfs.is_some() && rootfs != dev(bundle)
    }

    /// Opens `path` with `flags` (`O_NOFOLLOW` applies to its last part).
    fn open(&self, path: &str, flags: libc::c_int) -> io::Result<OwnedFd> {
        match self {
            Fs::Host => sys::open(Path::new(path), flags, 0),
            Fs::Container { root, .. } => root.resolve(Path::new(path), flags, false),
        }
    }

    /// How `path` is named in errors.
    fn show(&self, path: &Path) -> String {
        match self {
            Fs::Host => path.display().to_string(),
            Fs::Container { name, .. } => format!("{name}:{}", path.display()),
        }
    }

    /// The host ids of the container's `uid`/`gid` (identity on the host).
    fn to_host(&self, uid: u32, gid: u32) -> (u32, u32) {
        match self {
            Fs::Host => (uid, gid),
            Fs::Container { uids, gids, .. } => (map_id(uids, uid), map_id(gids, gid)),
        }
    }
}

/// The lines of a `/proc/PID/uid_map`: (inside, outside, count).
fn id_map(text: &str) -> Vec<(u32, u32, u32)> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace().map(|n| n.parse::<u32>());
            match (f.next(), f.next(), f.next()) {
                (Some(Ok(a)), Some(Ok(b)), Some(Ok(c))) => Some((a, b, c)),
                _ => None,
            }
        })
        .collect()
}

/// `id` of the namespace mapped to the host; unmapped: the overflow id.
fn map_id(map: &[(u32, u32, u32)], id: u32) -> u32 {
    map.iter()
        .find(|(inside, _, count)| {
            id >= *inside && u64::from(id) < u64::from(*inside) + u64::from(*count)
        })
        .map_or(65534, |(inside, outside, _)| outside + (id - inside))
}

/// Who owns what the copy makes.
enum Owner {
    /// Leave it to the creating process (root): a copy out.
    Caller,
    /// Copied in: the container's root, as host ids.
    Fixed(u32, u32),
    /// `-a`: the source's own ids, through `fs`'s map.
    Keep,
}

struct Copy<'a> {
    src_fs: &'a Fs,
    dst_fs: &'a Fs,
    owner: Owner,
}

/// `wren cp`.
pub fn cp(g: &Global, a: &Cp) -> Result<i32, CliError> {
    let (src, dst) = (side(&a.src), side(&a.dst));
    let mut w = Wrend::connect(&g.socket)?;
    let (src_fs, src_path, dst_fs, dst_path) = match (src, dst) {
        (Side::Host(_), Side::Host(_)) => {
            return Err(CliError::usage(
                "one of SRC and DEST must be a container's NAME:PATH",
            ))
        }
        (Side::Container { .. }, Side::Container { .. }) => {
            return Err(CliError::usage(
                "copying from one container to another is not supported: copy through the host",
            ))
        }
        (Side::Container { name, path }, Side::Host(h)) => {
            (Fs::container(g, &mut w, &name, false)?, path, Fs::Host, h)
        }
        (Side::Host(h), Side::Container { name, path }) => {
            (Fs::Host, h, Fs::container(g, &mut w, &name, true)?, path)
        }
    };
    let owner = match (&dst_fs, a.archive) {
        (_, true) => Owner::Keep,
        (Fs::Host, false) => Owner::Caller,
        (Fs::Container { .. }, false) => {
            let (uid, gid) = dst_fs.to_host(0, 0);
            Owner::Fixed(uid, gid)
        }
    };
    let copy = Copy {
        src_fs: &src_fs,
        dst_fs: &dst_fs,
        owner,
    };
    copy.run(&src_path, &dst_path, a.follow_link)?;
    Ok(0)
}

fn stat(fd: BorrowedFd<'_>) -> io::Result<libc::stat> {
    sys::fstat(fd)
}

fn is_dir(st: &libc::stat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFDIR
}

fn cstr(name: &OsStr) -> io::Result<CString> {
    CString::new(name.as_bytes()).map_err(|_| io::ErrorKind::InvalidInput.into())
}

impl Copy<'_> {
    fn run(&self, src: &str, dst: &str, follow: bool) -> Result<(), CliError> {
        let fail = |fs: &Fs, p: &str, what: &str, e: io::Error| {
            CliError::failed(format!("{what} {}: {e}", fs.show(Path::new(p))))
        };
        let nofollow = if follow { 0 } else { libc::O_NOFOLLOW };
        let src_fd = self
            .src_fs
            .open(src, libc::O_PATH | nofollow)
            .map_err(|e| fail(self.src_fs, src, "open", e))?;
        let src_st = stat(src_fd.as_fd()).map_err(|e| fail(self.src_fs, src, "stat", e))?;
        let contents = src.ends_with("/.") || src == ".";
        if contents && !is_dir(&src_st) {
            return Err(CliError::failed(format!(
                "{}: not a directory",
                self.src_fs.show(Path::new(src))
            )));
        }
        let base = base_name(src);
        // DEST as it is now (followed, inside the container's root).
        let existing = match self.dst_fs.open(dst, libc::O_PATH) {
            Ok(fd) => {
                let st = stat(fd.as_fd()).map_err(|e| fail(self.dst_fs, dst, "stat", e))?;
                Some((fd, st))
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => None,
            Err(e) => return Err(fail(self.dst_fs, dst, "open", e)),
        };
        let open_dir = |fd: &OwnedFd, p: &str| {
            sys::reopen(fd.as_fd(), libc::O_RDONLY | libc::O_DIRECTORY)
                .map_err(|e| fail(self.dst_fs, p, "open", e))
        };
        let (dir, name, dir_path) = match existing {
            Some((fd, st)) if is_dir(&st) => {
                if is_dir(&src_st) && contents {
                    let dir = open_dir(&fd, dst)?;
                    return self.children(&src_fd, src, dir.as_fd(), Path::new(dst));
                }
                (open_dir(&fd, dst)?, base, PathBuf::from(dst))
            }
            Some(_) if is_dir(&src_st) => {
                return Err(CliError::failed(format!(
                    "cannot copy directory {} onto file {}",
                    self.src_fs.show(Path::new(src)),
                    self.dst_fs.show(Path::new(dst))
                )))
            }
            _ if dst.ends_with('/') => {
                return Err(CliError::failed(format!(
                    "{}: no such directory",
                    self.dst_fs.show(Path::new(dst))
                )))
            }
            _ => {
                let p = Path::new(dst);
                let parent = match p.parent().map(|p| p.as_os_str()) {
                    Some(s) if !s.is_empty() => s.to_string_lossy().into_owned(),
                    _ if dst.starts_with('/') => "/".to_string(),
                    _ => ".".to_string(),
                };
                let Some(name) = p.file_name() else {
                    return Err(CliError::usage(format!("{dst}: names no file")));
                };
                let fd = self
                    .dst_fs
                    .open(&parent, libc::O_PATH)
                    .map_err(|e| fail(self.dst_fs, &parent, "open the directory", e))?;
                (
                    open_dir(&fd, &parent)?,
                    name.to_owned(),
                    PathBuf::from(parent),
                )
            }
        };
        self.entry(
            &src_fd,
            Path::new(src),
            dir.as_fd(),
            &name,
            &dir_path.join(&name),
        )
    }

    /// Copies what `src` (an `O_PATH` fd, not followed) is to `name` in
    /// directory `dir`; `shown` is the destination's path for errors.
    fn entry(
        &self,
        src: &OwnedFd,
        src_path: &Path,
        dir: BorrowedFd<'_>,
        name: &OsStr,
        shown: &Path,
    ) -> Result<(), CliError> {
        let dfail = |what: &str, e: io::Error| {
            CliError::failed(format!("{what} {}: {e}", self.dst_fs.show(shown)))
        };
        let sfail = |what: &str, e: io::Error| {
            CliError::failed(format!("{what} {}: {e}", self.src_fs.show(src_path)))
        };
        let st = stat(src.as_fd()).map_err(|e| sfail("stat", e))?;
        let (uid, gid) = match self.owner {
            Owner::Caller => (u32::MAX, u32::MAX),
            Owner::Fixed(u, g) => (u, g),
            Owner::Keep => self.dst_fs.to_host(st.st_uid, st.st_gid),
        };
        let cname = cstr(name).map_err(|e| dfail("name", e))?;
        match st.st_mode & libc::S_IFMT {
            libc::S_IFDIR => {
                match sys::mkdirat(dir, Path::new(name), 0o700) {
                    Ok(()) => {}
                    Err(e) => return Err(dfail("mkdir", e)),
                }
                // Never through a symlink someone put in its place.
                let new = sys::openat(
                    dir,
                    Path::new(name),
                    libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
                    0,
                )
                .map_err(|e| dfail("open", e))?;
                self.children(src, &src_path.to_string_lossy(), new.as_fd(), shown)?;
                finish(new.as_fd(), &st, uid, gid)
                    .map_err(|e| dfail("set owner, mode or times of", e))
            }
            libc::S_IFREG => {
                let mut from = File::from(
                    sys::reopen(src.as_fd(), libc::O_RDONLY).map_err(|e| sfail("open", e))?,
                );
                let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_NOFOLLOW;
                let to = match sys::openat(dir, Path::new(name), flags, 0o600) {
                    // A symlink where the file goes: replaced, never followed.
                    Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
                        unlink(dir, &cname).map_err(|e| dfail("replace", e))?;
                        sys::openat(dir, Path::new(name), flags | libc::O_EXCL, 0o600)
                    }
                    other => other,
                }
                .map_err(|e| dfail("create", e))?;
                let mut to = File::from(to);
                io::copy(&mut from, &mut to).map_err(|e| dfail("write", e))?;
                finish(to.as_fd(), &st, uid, gid)
                    .map_err(|e| dfail("set owner, mode or times of", e))
            }
            libc::S_IFLNK => {
                let target = sys::readlink_fd(src.as_fd()).map_err(|e| sfail("readlink", e))?;
                match sys::symlinkat(Path::new(&target), dir, Path::new(name)) {
                    Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                        unlink(dir, &cname).map_err(|e| dfail("replace", e))?;
                        sys::symlinkat(Path::new(&target), dir, Path::new(name))
                    }
                    other => other,
                }
                .map_err(|e| dfail("symlink", e))?;
                link_finish(dir, &cname, &st, uid, gid)
                    .map_err(|e| dfail("set owner or times of", e))
            }
            _ => {
                eprintln!(
                    "wren: skipped {}: not a file, directory or symlink",
                    self.src_fs.show(src_path)
                );
                Ok(())
            }
        }
    }

    /// Copies every entry of directory `src` into `dir`.
    fn children(
        &self,
        src: &OwnedFd,
        src_path: &str,
        dir: BorrowedFd<'_>,
        shown: &Path,
    ) -> Result<(), CliError> {
        let sfail = |e: io::Error| {
            CliError::failed(format!(
                "read {}: {e}",
                self.src_fs.show(Path::new(src_path))
            ))
        };
        let listing =
            sys::reopen(src.as_fd(), libc::O_RDONLY | libc::O_DIRECTORY).map_err(sfail)?;
        for name in read_dir(listing.as_fd()).map_err(sfail)? {
            let child = sys::openat(
                src.as_fd(),
                Path::new(&name),
                libc::O_PATH | libc::O_NOFOLLOW,
                0,
            )
            .map_err(sfail)?;
            let child_path = Path::new(src_path).join(&name);
            self.entry(&child, &child_path, dir, &name, &shown.join(&name))?;
        }
        Ok(())
    }
}

/// The last part of a SRC path (`/a/b/` and `/a/b/.` give `b`; `/` gives `/`'s own name, none).
fn base_name(src: &str) -> OsString {
    let trimmed = src.trim_end_matches("/.").trim_end_matches('/');
    Path::new(trimmed)
        .file_name()
        .map_or_else(|| OsString::from("root"), |n| n.to_owned())
}

/// The names in directory `fd` (not `.` and `..`).
fn read_dir(fd: BorrowedFd<'_>) -> io::Result<Vec<OsString>> {
    // fdopendir takes the fd it is given: hand it a duplicate.
    let dup = fd.try_clone_to_owned()?;
    // SAFETY: `dup` is an open directory fd whose ownership passes to the
    // DIR stream (closed by closedir below).
    let d = unsafe { libc::fdopendir(dup.as_raw_fd()) };
    if d.is_null() {
        return Err(io::Error::last_os_error());
    }
    std::mem::forget(dup);
    let mut names = Vec::new();
    loop {
        // SAFETY: `d` is a live DIR stream.
        let e = unsafe { libc::readdir(d) };
        if e.is_null() {
            break;
        }
        // SAFETY: readdir returned a valid entry whose d_name is a
        // NUL-terminated string, live until the next readdir call.
        let name = unsafe { std::ffi::CStr::from_ptr((*e).d_name.as_ptr()) };
        let bytes = name.to_bytes();
        if bytes != b"." && bytes != b".." {
            names.push(OsStr::from_bytes(bytes).to_owned());
        }
    }
    // SAFETY: `d` is a live DIR stream, closed once.
    unsafe { libc::closedir(d) };
    names.sort();
    Ok(names)
}

fn unlink(dir: BorrowedFd<'_>, name: &CString) -> io::Result<()> {
    // SAFETY: a live dir fd and a NUL-terminated name.
    if unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Owner (unless `u32::MAX`), then mode (chown clears set-id bits), then
/// the source's times, on what `fd` opened.
fn finish(fd: BorrowedFd<'_>, st: &libc::stat, uid: u32, gid: u32) -> io::Result<()> {
    if uid != u32::MAX {
        sys::fchown(fd, uid, gid)?;
    }
    // SAFETY: a live fd.
    if unsafe { libc::fchmod(fd.as_raw_fd(), st.st_mode & 0o7777) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let times = times(st);
    // SAFETY: a live fd and two valid timespecs.
    if unsafe { libc::futimens(fd.as_raw_fd(), times.as_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// [`finish`] for a symlink (no mode of its own), by name in `dir`.
fn link_finish(
    dir: BorrowedFd<'_>,
    name: &CString,
    st: &libc::stat,
    uid: u32,
    gid: u32,
) -> io::Result<()> {
    let nofollow = libc::AT_SYMLINK_NOFOLLOW;
    if uid != u32::MAX {
        // SAFETY: a live dir fd and a NUL-terminated name.
        let rc = unsafe { libc::fchownat(dir.as_raw_fd(), name.as_ptr(), uid, gid, nofollow) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    let times = times(st);
    // SAFETY: a live dir fd, a NUL-terminated name and two valid timespecs.
    if unsafe { libc::utimensat(dir.as_raw_fd(), name.as_ptr(), times.as_ptr(), nofollow) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn times(st: &libc::stat) -> [libc::timespec; 2] {
    [
        libc::timespec {
            tv_sec: st.st_atime,
            tv_nsec: st.st_atime_nsec,
        },
        libc::timespec {
            tv_sec: st.st_mtime,
            tv_nsec: st.st_mtime_nsec,
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sides_as_docker_reads_them() {
        assert!(
            matches!(side("web:/etc/x"), Side::Container { name, path } if name == "web" && path == "/etc/x")
        );
        assert!(matches!(side("web:"), Side::Container { path, .. } if path == "/"));
        assert!(matches!(side("./a:b"), Side::Host(_)));
        assert!(matches!(side("/tmp/a:b"), Side::Host(_)));
        assert!(matches!(side("plain"), Side::Host(_)));
        assert!(matches!(side(":x"), Side::Host(_)));
    }

    #[test]
    fn ids_map_through_a_user_namespace() {
        let m = id_map("         0     100000      65536\n");
        assert_eq!(map_id(&m, 0), 100000);
        assert_eq!(map_id(&m, 1000), 101000);
        assert_eq!(map_id(&m, 70000), 65534);
        let all = id_map("0 0 4294967295\n");
        assert_eq!(map_id(&all, 1234), 1234);
    }

    #[test]
    fn base_names() {
        assert_eq!(base_name("/a/b"), "b");
        assert_eq!(base_name("/a/b/"), "b");
        assert_eq!(base_name("/a/b/."), "b");
        assert_eq!(base_name("/"), "root");
    }
}
