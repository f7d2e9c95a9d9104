//! Resolving paths inside a container's rootfs without ever leaving it.
//!
//! Every lookup is `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)` from an
//! fd of the rootfs, so a symlink in the image (absolute or `..`-laden) is
//! resolved as if the rootfs were `/`, and directories are created one
//! component at a time relative to an fd of their parent (the
//! CVE-2021-30465 / CVE-2024-45310 classes). Runs in the init process.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use crate::sys;

/// An fd of a directory that stands for `/` during resolution.
#[derive(Debug)]
pub struct Root {
    fd: OwnedFd,
}

impl Root {
    pub fn open(path: &Path) -> io::Result<Self> {
        let fd = sys::open(path, libc::O_PATH | libc::O_DIRECTORY, 0)?;
        Ok(Root { fd })
    }

    pub fn from_fd(fd: OwnedFd) -> Self {
        Root { fd }
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Open `path` (taken as relative to this root) with `flags`; symlinks
    /// are followed but cannot leave the root. `strict` refuses symlinks in
    /// any component (for /proc, /sys and /dev, which must be ordinary
    /// directories).
    pub fn resolve(&self, path: &Path, flags: libc::c_int, strict: bool) -> io::Result<OwnedFd> {
        let rel = clean(path);
        let mut resolve = sys::RESOLVE_IN_ROOT | sys::RESOLVE_NO_MAGICLINKS;
        if strict {
            resolve |= sys::RESOLVE_NO_SYMLINKS;
        }
        let rel = if rel.as_os_str().is_empty() {
            Path::new(".")
        } else {
            &rel
        };
        sys::openat2(self.fd.as_fd(), rel, flags, 0, resolve)
    }

    /// `O_PATH` handle of `path`, which must exist.
    pub fn open_path(&self, path: &Path, strict: bool) -> io::Result<OwnedFd> {
        self.resolve(path, libc::O_PATH, strict)
    }

    /// Create every missing directory of `path` and return an `O_PATH` fd of
    /// the last one.
    pub fn mkdir_all(&self, path: &Path, mode: u32, strict: bool) -> io::Result<OwnedFd> {
        self.mkdir_all_depth(path, mode, strict, 0)
    }

    fn mkdir_all_depth(
        &self,
        path: &Path,
        mode: u32,
        strict: bool,
        depth: u32,
    ) -> io::Result<OwnedFd> {
        if depth > 40 {
            return Err(io::Error::from_raw_os_error(libc::ELOOP));
        }
        let rel = clean(path);
        // Most targets exist (/proc, /dev, /sys in any image): one lookup,
        // under the same rules as the walk below.
        match self.resolve(&rel, libc::O_PATH | libc::O_DIRECTORY, strict) {
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            done => return done,
        }
        let mut prefix = PathBuf::new();
        let mut current = self.resolve(Path::new("."), libc::O_PATH | libc::O_DIRECTORY, strict)?;
        let comps: Vec<_> = rel.components().collect();
        for (i, comp) in comps.iter().enumerate() {
            let parent = prefix.clone();
            prefix.push(comp);
            match self.resolve(&prefix, libc::O_PATH | libc::O_DIRECTORY, strict) {
                Ok(fd) => current = fd,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                    let name = Path::new(comp.as_os_str());
                    // A dangling symlink inside the root: create its target
                    // (inside the root) and the rest below it.
                    if let Some(target) = self.link_target(current.as_fd(), name)? {
                        let base = if target.is_absolute() {
                            PathBuf::new()
                        } else {
                            parent
                        };
                        let mut next = base.join(target);
                        for c in &comps[i + 1..] {
                            next.push(c);
                        }
                        return self.mkdir_all_depth(&next, mode, strict, depth + 1);
                    }
                    sys::mkdirat(current.as_fd(), name, mode)?;
                    current = self.resolve(&prefix, libc::O_PATH | libc::O_DIRECTORY, strict)?;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(current)
    }

    /// The target of `name` in `dir` if it is a symlink.
    fn link_target(&self, dir: BorrowedFd<'_>, name: &Path) -> io::Result<Option<PathBuf>> {
        let fd = match sys::openat(dir, name, libc::O_PATH | libc::O_NOFOLLOW, 0) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
            Err(e) => return Err(e),
        };
        if sys::fstat(fd.as_fd())?.st_mode & libc::S_IFMT != libc::S_IFLNK {
            return Ok(None);
        }
        Ok(Some(PathBuf::from(sys::readlink_fd(fd.as_fd())?)))
    }

    /// Make sure a regular file exists at `path` (for bind-mounting a file
    /// over it) and return an `O_PATH` fd of it.
    pub fn create_file(&self, path: &Path, strict: bool) -> io::Result<OwnedFd> {
        match self.open_path(path, strict) {
            Ok(fd) => return Ok(fd),
            Err(e) if e.raw_os_error() != Some(libc::ENOENT) => return Err(e),
            Err(_) => {}
        }
        let rel = clean(path);
        let (parent, name) = split(&rel)?;
        let dir = self.mkdir_all(parent, 0o755, strict)?;
        match sys::mknodat(dir.as_fd(), name, libc::S_IFREG | 0o644, 0) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
            Err(e) => return Err(e),
        }
        self.open_path(path, strict)
    }

    /// An `O_PATH` fd of the parent directory of `path` (created if missing)
    /// and the final component name.
    pub fn parent_of(&self, path: &Path, strict: bool) -> io::Result<(OwnedFd, PathBuf)> {
        let rel = clean(path);
        let (parent, name) = split(&rel)?;
        let dir = self.mkdir_all(parent, 0o755, strict)?;
        Ok((dir, name.to_path_buf()))
    }
}

fn split(rel: &Path) -> io::Result<(&Path, &Path)> {
    let name = rel.file_name().ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidInput, "path has no final component")
    })?;
    Ok((rel.parent().unwrap_or(Path::new("")), Path::new(name)))
}

/// Lexically clean `path` into a relative path: no root, no `.`, and `..`
/// clamped at the top (so it can never climb above the root).
pub fn clean(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for comp in path.components() {
        match comp {
            Component::Normal(c) => out.push(c),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, MetadataExt};

    #[test]
    fn clean_clamps_parent_dirs() {
        assert_eq!(clean(Path::new("/a/../../b/./c")), PathBuf::from("b/c"));
        assert_eq!(clean(Path::new("/")), PathBuf::from(""));
        assert_eq!(clean(Path::new("../../etc")), PathBuf::from("etc"));
    }

    #[test]
    fn symlinks_resolve_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("inside")).unwrap();
        let outside = dir.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        // An absolute link and a ..-laden one, both aimed at the host.
        symlink(&outside, root.join("abs")).unwrap();
        symlink("../../../../outside", root.join("rel")).unwrap();
        let r = Root::open(&root).unwrap();
        r.mkdir_all(Path::new("abs/made"), 0o755, false).unwrap();
        r.mkdir_all(Path::new("rel/made2"), 0o755, false).unwrap();
        assert!(
            std::fs::read_dir(&outside).unwrap().next().is_none(),
            "nothing may appear outside"
        );
        assert!(root
            .join(outside.strip_prefix("/").unwrap())
            .join("made")
            .is_dir());
        assert!(root.join("outside/made2").is_dir());
    }

    #[test]
    fn strict_mode_refuses_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("real")).unwrap();
        symlink("real", dir.path().join("proc")).unwrap();
        let r = Root::open(dir.path()).unwrap();
        let err = r.open_path(Path::new("/proc"), true).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ELOOP));
        r.open_path(Path::new("/proc"), false).unwrap();
    }

    #[test]
    fn mkdir_all_finds_existing_targets_under_the_same_rules() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("proc")).unwrap();
        std::fs::write(root.join("file"), "").unwrap();
        let outside = dir.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        symlink(&outside, root.join("abs")).unwrap();
        symlink("proc", root.join("sys")).unwrap();
        let r = Root::open(&root).unwrap();
        let ino = |fd: OwnedFd| sys::fstat(fd.as_fd()).unwrap().st_ino;
        let proc_ino = std::fs::metadata(root.join("proc")).unwrap().ino();
        // Found at once, through an in-root link when not strict ...
        assert_eq!(
            ino(r.mkdir_all(Path::new("/proc"), 0o755, true).unwrap()),
            proc_ino
        );
        assert_eq!(
            ino(r.mkdir_all(Path::new("/sys"), 0o755, false).unwrap()),
            proc_ino
        );
        // ... refused through one when strict, and a file is no directory.
        let strict = r.mkdir_all(Path::new("/sys"), 0o755, true).unwrap_err();
        assert_eq!(strict.raw_os_error(), Some(libc::ELOOP));
        let file = r.mkdir_all(Path::new("/file"), 0o755, false).unwrap_err();
        assert_eq!(file.raw_os_error(), Some(libc::ENOTDIR));
        // A link aimed at the host is followed inside the root: the host's
        // directory is never the one returned.
        let outside_ino = std::fs::metadata(&outside).unwrap().ino();
        let made = r.mkdir_all(Path::new("/abs"), 0o755, false).unwrap();
        assert_ne!(ino(made), outside_ino);
        assert!(std::fs::read_dir(&outside).unwrap().next().is_none());
    }

    #[test]
    fn create_file_makes_parents_and_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let r = Root::open(dir.path()).unwrap();
        r.create_file(Path::new("/etc/x/resolv.conf"), false)
            .unwrap();
        r.create_file(Path::new("/etc/x/resolv.conf"), false)
            .unwrap();
        assert!(dir.path().join("etc/x/resolv.conf").is_file());
    }
}
