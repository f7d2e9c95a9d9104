//! A directory tree copied as it is: file types (device nodes, so an
//! overlay's 0/0 whiteouts, and fifos), modes, owners, extended attributes
//! (an overlay's opaque markers, file capabilities) and hard links. For an
//! image container's overlay upper dir going into a checkpoint and back
//! out into a new container (`wren checkpoint` / `wren restore`). Sockets
//! are skipped (nothing can be restored from one).
//!
//! Runs in wrend's loop thread.

use std::collections::HashMap;
use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Copies the tree under `src` into `dst` (made if missing; what is in it
/// stays unless overwritten). Errors name the path.
pub fn copy_tree(src: &Path, dst: &Path) -> io::Result<()> {
    let m = src.symlink_metadata().map_err(|e| at(src, e))?;
    if !m.is_dir() {
        return Err(at(src, io::Error::other("not a directory")));
    }
    if !dst.exists() {
        std::fs::create_dir_all(dst).map_err(|e| at(dst, e))?;
    }
    let mut links = HashMap::new();
    walk(src, dst, &mut links)?;
    attrs(src, dst, &m)
}

fn at(p: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", p.display()))
}

fn cpath(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|e| at(p, io::Error::other(e)))
}

fn walk(src: &Path, dst: &Path, links: &mut HashMap<(u64, u64), PathBuf>) -> io::Result<()> {
    for e in std::fs::read_dir(src).map_err(|e| at(src, e))? {
        let e = e.map_err(|e| at(src, e))?;
        let from = e.path();
        let to = dst.join(e.file_name());
        let m = from.symlink_metadata().map_err(|e| at(&from, e))?;
        let ft = m.file_type();
        if ft.is_dir() {
            if !to.is_dir() {
                std::fs::create_dir(&to).map_err(|e| at(&to, e))?;
            }
            walk(&from, &to, links)?;
            attrs(&from, &to, &m)?;
            continue;
        }
        if ft.is_socket() {
            continue;
        }
        if to.symlink_metadata().is_ok() {
            std::fs::remove_file(&to).map_err(|e| at(&to, e))?;
        }
        if !ft.is_symlink() && m.nlink() > 1 {
            if let Some(first) = links.get(&(m.dev(), m.ino())) {
                std::fs::hard_link(first, &to).map_err(|e| at(&to, e))?;
                continue;
            }
            links.insert((m.dev(), m.ino()), to.clone());
        }
        if ft.is_symlink() {
            let target = std::fs::read_link(&from).map_err(|e| at(&from, e))?;
            std::os::unix::fs::symlink(&target, &to).map_err(|e| at(&to, e))?;
        } else if ft.is_file() {
            std::fs::copy(&from, &to).map_err(|e| at(&to, e))?;
        } else {
            let kind = if ft.is_char_device() {
                libc::S_IFCHR
            } else if ft.is_block_device() {
                libc::S_IFBLK
            } else {
                libc::S_IFIFO
            };
            let c = cpath(&to)?;
            // SAFETY: mknod with a valid NUL-terminated path.
            let rc = unsafe { libc::mknod(c.as_ptr(), kind | (m.mode() & 0o7777), m.rdev()) };
            if rc != 0 {
                return Err(at(&to, io::Error::last_os_error()));
            }
        }
        attrs(&from, &to, &m)?;
    }
    Ok(())
}

/// Owner, mode (not through a symlink) and extended attributes of `from`
/// onto `to`.
fn attrs(from: &Path, to: &Path, m: &std::fs::Metadata) -> io::Result<()> {
    std::os::unix::fs::lchown(to, Some(m.uid()), Some(m.gid())).map_err(|e| at(to, e))?;
    if !m.file_type().is_symlink() {
        std::fs::set_permissions(to, std::fs::Permissions::from_mode(m.mode() & 0o7777))
            .map_err(|e| at(to, e))?;
    }
    copy_xattrs(from, to)
}

fn copy_xattrs(from: &Path, to: &Path) -> io::Result<()> {
    let (cf, ct) = (cpath(from)?, cpath(to)?);
    let mut names = vec![0u8; 4096];
    // SAFETY: the buffer is valid for its length; the path is NUL-terminated.
    let n = unsafe { libc::llistxattr(cf.as_ptr(), names.as_mut_ptr().cast(), names.len()) };
    if n < 0 {
        let e = io::Error::last_os_error();
        // A file system without xattrs has none to copy.
        if e.raw_os_error() == Some(libc::ENOTSUP) {
            return Ok(());
        }
        return Err(at(from, e));
    }
    names.truncate(n as usize);
    for name in names.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let cname = CString::new(name).map_err(io::Error::other)?;
        let mut val = vec![0u8; 65536];
        // SAFETY: valid NUL-terminated path and name; buffer of its length.
        let len = unsafe {
            libc::lgetxattr(
                cf.as_ptr(),
                cname.as_ptr(),
                val.as_mut_ptr().cast(),
                val.len(),
            )
        };
        if len < 0 {
            return Err(at(from, io::Error::last_os_error()));
        }
        // SAFETY: as above; `len` bytes of the buffer are the value.
        let rc = unsafe {
            libc::lsetxattr(
                ct.as_ptr(),
                cname.as_ptr(),
                val.as_ptr().cast(),
                len as usize,
                0,
            )
        };
        if rc != 0 {
            let e = io::Error::last_os_error();
            return Err(at(
                to,
                io::Error::new(
                    e.kind(),
                    format!("set xattr {}: {e}", String::from_utf8_lossy(name)),
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_files_links_modes_and_fifos() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        std::fs::create_dir_all(src.join("d/e")).unwrap();
        std::fs::write(src.join("d/f"), b"data").unwrap();
        std::fs::set_permissions(src.join("d/f"), std::fs::Permissions::from_mode(0o640)).unwrap();
        std::fs::hard_link(src.join("d/f"), src.join("hl")).unwrap();
        std::os::unix::fs::symlink("d/f", src.join("ln")).unwrap();
        nix::unistd::mkfifo(
            &src.join("fifo"),
            nix::sys::stat::Mode::from_bits_truncate(0o600),
        )
        .unwrap();
        let dst = tmp.path().join("dst");
        copy_tree(&src, &dst).unwrap();
        assert_eq!(std::fs::read(dst.join("d/f")).unwrap(), b"data");
        let m = dst.join("d/f").metadata().unwrap();
        assert_eq!(m.mode() & 0o777, 0o640);
        assert_eq!(m.ino(), dst.join("hl").metadata().unwrap().ino());
        assert_eq!(
            std::fs::read_link(dst.join("ln")).unwrap(),
            Path::new("d/f")
        );
        assert!(dst
            .join("fifo")
            .symlink_metadata()
            .unwrap()
            .file_type()
            .is_fifo());
        assert!(dst.join("d/e").is_dir());
        assert!(copy_tree(&src.join("d/f"), &dst).is_err());
    }
}
