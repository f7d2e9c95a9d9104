//! One layer blob, streamed once: its compressed bytes counted and hashed
//! (the layer digest and size), decompressed (gzip, zstd or plain, told
//! apart by their magic bytes), hashed again (the diff id the image config
//! names), and unpacked as a tar into a directory that becomes an overlayfs
//! lower layer.
//!
//! Whiteouts are written the way overlayfs reads them: `.wh.NAME` becomes a
//! character device 0/0 named NAME, `.wh..wh..opq` sets
//! `trusted.overlay.opaque=y` on its directory. Owners, modes (setuid
//! included), hard links, device nodes, fifos and xattrs are kept, except
//! `trusted.overlay.*` xattrs, which only wren may set in a lower layer.
//!
//! An entry is refused, failing the whole layer, if its path has `..`, if
//! a directory on its path is a symlink, or if it is a hard link whose
//! target is outside the layer: nothing is ever written through a symlink.
//! An existing symlink at an entry's own path is replaced, not followed.
//!
//! Runs in the `wren` process (import, pull), never in wrend.

use std::ffi::CString;
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use sha2::{Digest, Sha256};

/// Why a layer could not be unpacked. Every variant names the layer's digest.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("layer {layer}: entry {entry:?} escapes the layer root")]
    Escapes { layer: String, entry: String },
    #[error("layer {layer}: entry {entry:?} goes through the symlink {via:?}")]
    ThroughSymlink {
        layer: String,
        entry: String,
        via: String,
    },
    #[error("layer {layer}: digest mismatch: the blob's bytes hash to {actual}")]
    DigestMismatch { layer: String, actual: String },
    #[error("layer {layer}: size mismatch: expected {expected} bytes, read {actual}")]
    SizeMismatch {
        layer: String,
        expected: u64,
        actual: u64,
    },
    #[error("layer {layer}: diff id mismatch: the image config says {expected}, the uncompressed layer hashes to {actual}")]
    DiffIdMismatch {
        layer: String,
        expected: String,
        actual: String,
    },
    #[error("layer {layer}: read the blob (truncated or corrupt?)")]
    Read {
        layer: String,
        #[source]
        source: io::Error,
    },
    #[error("layer {layer}: unpack {entry:?}")]
    Entry {
        layer: String,
        entry: String,
        #[source]
        source: io::Error,
    },
}

/// What is known of a layer before its bytes are read.
#[derive(Debug, Clone)]
pub struct Expected {
    /// `sha256:...` of the blob as stored (compressed).
    pub digest: String,
    /// The blob's size, when a manifest gives it.
    pub size: Option<u64>,
    /// `sha256:...` of the uncompressed tar, from the image config.
    pub diff_id: Option<String>,
}

/// What was read.
#[derive(Debug, Clone, Copy)]
pub struct Unpacked {
    /// Compressed bytes read.
    pub size: u64,
}

/// A reader that hashes and counts what passes through it.
pub struct Hashing<R> {
    inner: R,
    hash: Sha256,
    count: u64,
}

impl<R: Read> Hashing<R> {
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            hash: Sha256::new(),
            count: 0,
        }
    }

    /// Reads the rest of the stream (so the digest covers it all), then
    /// returns `("sha256:...", bytes)` and the inner reader.
    pub fn finish(mut self) -> io::Result<(String, u64, R)> {
        io::copy(&mut self, &mut io::sink())?;
        let digest = format!("sha256:{}", hex(&self.hash.finalize()));
        Ok((digest, self.count, self.inner))
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Decompresses `r` by its magic bytes: gzip, zstd, or a plain tar.
fn decompressor<'a, R: BufRead + 'a>(mut r: R) -> io::Result<Box<dyn Read + 'a>> {
    let head = r.fill_buf()?;
    if head.starts_with(&[0x1f, 0x8b]) {
        Ok(Box::new(flate2::bufread::MultiGzDecoder::new(r)))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Ok(Box::new(zstd::stream::read::Decoder::with_buffer(r)?))
    } else {
        Ok(Box::new(r))
    }
}

/// Streams the layer blob `blob` into the empty directory `dst`, checking
/// it against `want` once it has all been read. On error `dst` holds a
/// partial layer: the caller throws it away.
pub fn unpack<R: Read>(blob: R, want: &Expected, dst: &Path) -> Result<Unpacked, UnpackError> {
    let layer = want.digest.clone();
    let read_err = |source| UnpackError::Read {
        layer: layer.clone(),
        source,
    };
    let mut compressed = Hashing::new(blob);
    let (diff_id, _) = {
        let buffered = BufReader::with_capacity(256 * 1024, &mut compressed);
        let tar = Hashing::new(decompressor(buffered).map_err(read_err)?);
        let mut archive = tar::Archive::new(tar);
        archive.set_preserve_permissions(true);
        archive.set_preserve_ownerships(true);
        archive.set_preserve_mtime(true);
        archive.set_unpack_xattrs(false);
        archive.set_overwrite(true);
        let entries = archive.entries().map_err(read_err)?;
        for entry in entries {
            let mut entry = entry.map_err(read_err)?;
            unpack_entry(&mut entry, &layer, dst)?;
        }
        let (diff_id, n, _) = archive.into_inner().finish().map_err(read_err)?;
        (diff_id, n)
    };
    let (digest, size, _) = compressed.finish().map_err(read_err)?;
    if let Some(expected) = want.size {
        if expected != size {
            return Err(UnpackError::SizeMismatch {
                layer,
                expected,
                actual: size,
            });
        }
    }
    if digest != want.digest {
        return Err(UnpackError::DigestMismatch {
            layer,
            actual: digest,
        });
    }
    if let Some(expected) = &want.diff_id {
        if *expected != diff_id {
            return Err(UnpackError::DiffIdMismatch {
                layer,
                expected: expected.clone(),
                actual: diff_id,
            });
        }
    }
    Ok(Unpacked { size })
}

/// The entry's path split into its normal components; `..` is refused.
fn components(path: &Path, layer: &str) -> Result<Vec<PathBuf>, UnpackError> {
    let mut out = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(p) => out.push(PathBuf::from(p)),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            Component::ParentDir => {
                return Err(UnpackError::Escapes {
                    layer: layer.to_string(),
                    entry: path.display().to_string(),
                })
            }
        }
    }
    Ok(out)
}

fn unpack_entry<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    layer: &str,
    dst: &Path,
) -> Result<(), UnpackError> {
    let path = entry
        .path()
        .map_err(|source| UnpackError::Read {
            layer: layer.to_string(),
            source,
        })?
        .into_owned();
    let name = path.display().to_string();
    let entry_err = |source| UnpackError::Entry {
        layer: layer.to_string(),
        entry: name.clone(),
        source,
    };
    let parts = components(&path, layer)?;
    let Some((last, parents)) = parts.split_last() else {
        return Ok(()); // the layer root itself ("./")
    };
    // Every directory on the way must be a real directory of this layer.
    let mut parent = dst.to_path_buf();
    for p in parents {
        parent.push(p);
        match parent.symlink_metadata() {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(UnpackError::ThroughSymlink {
                    layer: layer.to_string(),
                    entry: name,
                    via: parent
                        .strip_prefix(dst)
                        .unwrap_or(&parent)
                        .display()
                        .to_string(),
                })
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                std::fs::create_dir(&parent).map_err(entry_err)?
            }
            Err(e) => return Err(entry_err(e)),
        }
    }
    let last_bytes = last.as_os_str().as_bytes();
    if last_bytes == b".wh..wh..opq" {
        return set_xattr(&parent, "trusted.overlay.opaque", b"y").map_err(entry_err);
    }
    if let Some(hidden) = last_bytes.strip_prefix(b".wh.") {
        let target = parent.join(std::ffi::OsStr::from_bytes(hidden));
        remove_any(&target).map_err(entry_err)?;
        return mknod(&target, libc::S_IFCHR, 0, 0).map_err(entry_err);
    }
    let target = parent.join(last);
    let kind = entry.header().entry_type();
    // Replace what is there unless both are directories; never follow it.
    if let Ok(m) = target.symlink_metadata() {
        if !(m.is_dir() && kind.is_dir()) {
            remove_any(&target).map_err(entry_err)?;
        }
    }
    let xattrs = pax_xattrs(entry).map_err(entry_err)?;
    match kind {
        tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
            let h = entry.header();
            let mode = h.mode().map_err(entry_err)?;
            let major = h.device_major().map_err(entry_err)?.unwrap_or(0);
            let minor = h.device_minor().map_err(entry_err)?.unwrap_or(0);
            let fmt = match kind {
                tar::EntryType::Char => libc::S_IFCHR,
                tar::EntryType::Block => libc::S_IFBLK,
                _ => libc::S_IFIFO,
            };
            mknod(&target, fmt | (mode & 0o7777), major, minor).map_err(entry_err)?;
            let (uid, gid) = (h.uid().map_err(entry_err)?, h.gid().map_err(entry_err)?);
            std::os::unix::fs::lchown(&target, Some(uid as u32), Some(gid as u32))
                .map_err(entry_err)?;
            // chown clears setuid/setgid: set the mode again after it.
            std::fs::set_permissions(
                &target,
                std::os::unix::fs::PermissionsExt::from_mode(mode & 0o7777),
            )
            .map_err(entry_err)?;
        }
        _ => {
            // tar's own unpack_in: it re-checks that the parent and a hard
            // link's target resolve inside `dst`.
            let done = entry.unpack_in(dst).map_err(entry_err)?;
            if !done {
                return Err(UnpackError::Escapes {
                    layer: layer.to_string(),
                    entry: name,
                });
            }
        }
    }
    for (key, value) in xattrs {
        set_xattr(&target, &key, &value).map_err(entry_err)?;
    }
    Ok(())
}

/// The entry's `SCHILY.xattr.*` records, without `trusted.overlay.*`.
fn pax_xattrs<R: Read>(entry: &mut tar::Entry<'_, R>) -> io::Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    if let Some(exts) = entry.pax_extensions()? {
        for ext in exts {
            let ext = ext?;
            let Ok(key) = ext.key() else { continue };
            if let Some(name) = key.strip_prefix("SCHILY.xattr.") {
                if !name.starts_with("trusted.overlay.") {
                    out.push((name.to_string(), ext.value_bytes().to_vec()));
                }
            }
        }
    }
    Ok(out)
}

fn remove_any(path: &Path) -> io::Result<()> {
    match path.symlink_metadata() {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

fn cpath(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| io::ErrorKind::InvalidInput.into())
}

fn mknod(path: &Path, mode: u32, major: u32, minor: u32) -> io::Result<()> {
    let c = cpath(path)?;
    // SAFETY: `c` is a NUL-terminated path that outlives the call.
    let rc = unsafe { libc::mknod(c.as_ptr(), mode, libc::makedev(major, minor)) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Sets an xattr on `path` itself (a symlink is not followed).
pub fn set_xattr(path: &Path, name: &str, value: &[u8]) -> io::Result<()> {
    let c = cpath(path)?;
    let n = CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: both strings are NUL-terminated and `value` is a live slice of
    // the length passed; the kernel only reads them.
    let rc = unsafe {
        libc::lsetxattr(
            c.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{FileTypeExt, MetadataExt};

    fn header(path: &str, kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_path(path).unwrap();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_uid(1000);
        h.set_gid(1000);
        h.set_cksum();
        h
    }

    fn layer(build: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> (Vec<u8>, Expected) {
        let mut b = tar::Builder::new(Vec::new());
        build(&mut b);
        let tar = b.into_inner().unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        io::Write::write_all(&mut gz, &tar).unwrap();
        let blob = gz.finish().unwrap();
        let want = Expected {
            digest: crate::store::sha256(&blob),
            size: Some(blob.len() as u64),
            diff_id: Some(crate::store::sha256(&tar)),
        };
        (blob, want)
    }

    fn is_root() -> bool {
        nix::unistd::geteuid().is_root()
    }

    #[test]
    fn keeps_owners_setuid_links_and_writes_whiteouts() {
        if !is_root() {
            eprintln!("skipped: needs root (chown, mknod, trusted xattrs)");
            return;
        }
        let (blob, want) = layer(|b| {
            b.append(&header("d/", tar::EntryType::Directory, 0o755, 0), &[][..])
                .unwrap();
            b.append(
                &header("d/su", tar::EntryType::Regular, 0o4755, 2),
                &b"hi"[..],
            )
            .unwrap();
            let mut l = header("d/link", tar::EntryType::Link, 0o755, 0);
            l.set_link_name("d/su").unwrap();
            l.set_cksum();
            b.append(&l, &[][..]).unwrap();
            b.append(
                &header("d/.wh.gone", tar::EntryType::Regular, 0o644, 0),
                &[][..],
            )
            .unwrap();
            b.append(
                &header("o/.wh..wh..opq", tar::EntryType::Regular, 0o644, 0),
                &[][..],
            )
            .unwrap();
        });
        let dst = tempfile::tempdir().unwrap();
        unpack(&blob[..], &want, dst.path()).unwrap();
        let su = dst.path().join("d/su").symlink_metadata().unwrap();
        assert_eq!(su.mode() & 0o7777, 0o4755);
        assert_eq!((su.uid(), su.gid()), (1000, 1000));
        assert_eq!(su.nlink(), 2);
        let wh = dst.path().join("d/gone").symlink_metadata().unwrap();
        assert!(wh.file_type().is_char_device());
        assert_eq!(wh.rdev(), 0);
        let mut buf = [0u8; 1];
        let c = std::ffi::CString::new(dst.path().join("o").as_os_str().as_bytes()).unwrap();
        // SAFETY: NUL-terminated strings and a live 1-byte buffer.
        let n = unsafe {
            libc::lgetxattr(
                c.as_ptr(),
                c"trusted.overlay.opaque".as_ptr(),
                buf.as_mut_ptr().cast(),
                1,
            )
        };
        assert_eq!((n, buf[0]), (1, b'y'));
    }

    #[test]
    fn refuses_escapes_and_bad_digests() {
        let dst = tempfile::tempdir().unwrap();
        let (blob, want) = layer(|b| {
            let mut h = header("x", tar::EntryType::Regular, 0o644, 1);
            // set_path refuses "..": write the name bytes directly.
            h.as_old_mut().name[..7].copy_from_slice(b"../evil");
            h.as_old_mut().name[7] = 0;
            h.set_cksum();
            b.append(&h, &b"x"[..]).unwrap();
        });
        let e = unpack(&blob[..], &want, dst.path()).unwrap_err();
        assert!(matches!(e, UnpackError::Escapes { .. }), "{e}");

        let dst = tempfile::tempdir().unwrap();
        let (blob, want) = layer(|b| {
            let mut s = header("s", tar::EntryType::Symlink, 0o777, 0);
            s.set_link_name("/etc").unwrap();
            s.set_cksum();
            b.append(&s, &[][..]).unwrap();
            b.append(
                &header("s/evil", tar::EntryType::Regular, 0o644, 1),
                &b"x"[..],
            )
            .unwrap();
        });
        let e = unpack(&blob[..], &want, dst.path()).unwrap_err();
        assert!(matches!(e, UnpackError::ThroughSymlink { .. }), "{e}");
        assert!(!Path::new("/etc/evil").exists());

        let dst = tempfile::tempdir().unwrap();
        let (mut blob, want) = layer(|b| {
            b.append(&header("f", tar::EntryType::Regular, 0o644, 1), &b"x"[..])
                .unwrap();
        });
        let last = blob.len() - 1;
        blob[last] ^= 1;
        let e = unpack(&blob[..], &want, dst.path()).unwrap_err();
        assert!(e.to_string().contains(&want.digest), "{e}");
        let e = unpack(&blob[..blob.len() / 2], &want, dst.path()).unwrap_err();
        assert!(e.to_string().contains(&want.digest), "{e}");
    }
}
