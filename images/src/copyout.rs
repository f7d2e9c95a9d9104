//! Copies a directory of an image, as its merged layers show it, out into
//! a plain directory: how a new named volume is filled from the image on
//! first use (as Docker does). Layers are applied lowest first; a whiteout
//! (character device 0/0) removes what lower layers put there, an opaque
//! directory clears it first. Owners, modes and symlinks are kept; hard
//! links become copies; device nodes and fifos are skipped.
//!
//! Runs in the `wren` process (`run -v NAME:/path`).

use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::runconfig::is_opaque;

/// Copies `rel` (a directory path inside the image) of the image whose
/// snapshots are `layers` (lowest first) into `dst`. Returns whether the
/// image has anything there.
pub fn copy_out(layers: &[PathBuf], rel: &str, dst: &Path) -> io::Result<bool> {
    let rel = rel.trim_start_matches('/');
    let mut found = false;
    for layer in layers {
        let src = layer.join(rel);
        let Ok(m) = src.symlink_metadata() else {
            continue;
        };
        if m.file_type().is_char_device() && m.rdev() == 0 {
            clear(dst)?; // whited out: nothing of the lower layers stays
            found = false;
            continue;
        }
        if !m.is_dir() {
            continue;
        }
        if is_opaque(&src) {
            clear(dst)?;
        }
        merge(&src, dst)?;
        found = true;
    }
    Ok(found)
}

fn clear(dir: &Path) -> io::Result<()> {
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        if p.symlink_metadata()?.is_dir() {
            std::fs::remove_dir_all(&p)?;
        } else {
            std::fs::remove_file(&p)?;
        }
    }
    Ok(())
}

fn owner_and_mode(src: &std::fs::Metadata, dst: &Path) -> io::Result<()> {
    std::os::unix::fs::lchown(dst, Some(src.uid()), Some(src.gid()))?;
    if !src.file_type().is_symlink() {
        std::fs::set_permissions(dst, std::fs::Permissions::from_mode(src.mode() & 0o7777))?;
    }
    Ok(())
}

/// Applies one layer's directory `src` onto `dst`.
fn merge(src: &Path, dst: &Path) -> io::Result<()> {
    owner_and_mode(&src.symlink_metadata()?, dst)?;
    for e in std::fs::read_dir(src)? {
        let e = e?;
        let from = e.path();
        let to = dst.join(e.file_name());
        let m = from.symlink_metadata()?;
        let ft = m.file_type();
        let existing = to.symlink_metadata().ok();
        let replace = |to: &Path| -> io::Result<()> {
            match &existing {
                Some(x) if x.is_dir() && !ft.is_dir() => std::fs::remove_dir_all(to),
                Some(x) if !x.is_dir() => std::fs::remove_file(to),
                _ => Ok(()),
            }
        };
        if ft.is_char_device() && m.rdev() == 0 {
            replace(&to)?;
            if to.is_dir() {
                std::fs::remove_dir_all(&to)?;
            }
        } else if ft.is_dir() {
            replace(&to)?;
            if !to.exists() {
                std::fs::create_dir(&to)?;
            }
            if is_opaque(&from) {
                clear(&to)?;
            }
            merge(&from, &to)?;
        } else if ft.is_symlink() {
            replace(&to)?;
            std::os::unix::fs::symlink(std::fs::read_link(&from)?, &to)?;
            owner_and_mode(&m, &to)?;
        } else if ft.is_file() {
            replace(&to)?;
            std::fs::copy(&from, &to)?;
            owner_and_mode(&m, &to)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_merge_with_whiteouts() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root (mknod, chown)");
            return;
        }
        let t = tempfile::tempdir().unwrap();
        let (l1, l2, dst) = (t.path().join("l1"), t.path().join("l2"), t.path().join("v"));
        std::fs::create_dir_all(l1.join("data/sub")).unwrap();
        std::fs::write(l1.join("data/a"), "a").unwrap();
        std::fs::write(l1.join("data/gone"), "g").unwrap();
        std::fs::write(l1.join("data/sub/s"), "s").unwrap();
        std::fs::create_dir_all(l2.join("data")).unwrap();
        std::fs::write(l2.join("data/b"), "b").unwrap();
        let wh =
            std::ffi::CString::new(l2.join("data/gone").as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a NUL-terminated path; mknod only reads it.
        assert_eq!(unsafe { libc::mknod(wh.as_ptr(), libc::S_IFCHR, 0) }, 0);
        std::fs::create_dir(&dst).unwrap();
        assert!(copy_out(&[l1, l2], "/data", &dst).unwrap());
        let mut names: Vec<_> = std::fs::read_dir(&dst)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["a", "b", "sub"]);
        assert_eq!(std::fs::read_to_string(dst.join("sub/s")).unwrap(), "s");
    }
}
