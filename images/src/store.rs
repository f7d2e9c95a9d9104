//! The image store on disk, under wrend's records directory
//! (`/var/lib/wren/images`, or `ROOT/lib/images` with `--root ROOT`):
//!
//! ```text
//! images/
//!   lock               flock: shared by import, pull and run; exclusive by rmi, prune
//!   index.json         image name -> manifest digest, rewritten atomically
//!   index.lock         flock held while index.json is read-modified-written
//!   blobs/sha256/HEX   manifests and configs, content-addressed
//!   layers/HEX/        one unpacked snapshot per layer blob digest: an overlay lower
//!   locks/HEX          flock per layer: one process fetches and unpacks it
//!   tmp/               layers being unpacked; renamed into layers/ when whole
//! ```
//!
//! A layer appears in `layers/` only by `rename` of a complete, verified
//! unpack, so an interrupted pull leaves nothing visible; its leftover in
//! `tmp/` is removed by the next install of that layer or by prune.
//!
//! Runs in the `wren` process; wrend never opens the store.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use oci_spec::image::{ImageConfiguration, ImageManifest};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::unpack::{self, Expected, UnpackError};

/// A store operation that failed; each names the image, digest or path.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{what} {path}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("invalid digest {0:?}: want sha256:<64 hex digits>")]
    BadDigest(String),
    #[error("blob {digest}: content hashes to {actual}")]
    BlobMismatch { digest: String, actual: String },
    #[error("blob {0} is not in the store")]
    MissingBlob(String),
    #[error("parse {what} {digest}")]
    Parse {
        what: &'static str,
        digest: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("parse the image index {path}")]
    ParseIndex {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("no such image: {0}")]
    NoImage(String),
    #[error("image reference {0:?} matches several images: {1}")]
    Ambiguous(String, String),
    #[error(transparent)]
    Unpack(#[from] UnpackError),
}

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |source| StoreError::Io {
        what,
        path: path.to_owned(),
        source,
    }
}

/// One named image in the index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexEntry {
    /// The manifest's digest: the image's id.
    pub digest: String,
    /// Unix seconds when it was imported or pulled.
    #[serde(default)]
    pub added: u64,
}

/// `index.json`: every named image.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Index {
    pub images: BTreeMap<String, IndexEntry>,
}

/// An image resolved from a reference.
#[derive(Debug, Clone)]
pub struct Image {
    /// The name it was found under (or its digest when given one).
    pub name: String,
    /// The manifest digest.
    pub id: String,
    pub manifest: ImageManifest,
    pub config: ImageConfiguration,
}

/// The store rooted at one directory.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

/// Removes a file or a directory tree, ignoring errors (leftovers only).
fn remove_any(path: &Path) {
    if path.symlink_metadata().is_ok_and(|m| m.is_dir()) {
        let _ = std::fs::remove_dir_all(path);
    } else {
        let _ = std::fs::remove_file(path);
    }
}

/// A reader that copies what it passes on into a file: the compressed
/// layer, kept while it is unpacked. A failed write fails the read.
/// `source_failed` is set when the source itself fails (a download cut
/// off), as opposed to the bytes being wrong.
struct Tee<R> {
    inner: R,
    copy: io::BufWriter<File>,
    source_failed: std::rc::Rc<std::cell::Cell<bool>>,
}

impl<R: Read> Read for Tee<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self
            .inner
            .read(buf)
            .inspect_err(|_| self.source_failed.set(true))?;
        if n == 0 {
            self.copy.flush()?;
        } else {
            self.copy.write_all(&buf[..n])?;
        }
        Ok(n)
    }
}

/// Checks a `sha256:HEX` digest and returns its hex part (safe as a file name).
pub fn digest_hex(digest: &str) -> Result<&str, StoreError> {
    match digest.strip_prefix("sha256:") {
        Some(h) if h.len() == 64 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) => {
            Ok(h)
        }
        _ => Err(StoreError::BadDigest(digest.to_string())),
    }
}

/// `sha256:HEX` of `bytes`.
pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", unpack::hex(&Sha256::digest(bytes)))
}

/// The store's directory under wrend's records directory.
pub fn dir_under_records(records: &Path) -> PathBuf {
    records.join("images")
}

/// Writes `bytes` to `path` through a temp file in the same directory and a
/// rename: readers see the old file or the new one, never a part.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let result = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Store {
    /// Opens (creating if needed) the store in `root`.
    pub fn open(root: &Path) -> Result<Self, StoreError> {
        for sub in ["blobs/sha256", "layers", "locks", "tmp"] {
            let d = root.join(sub);
            std::fs::create_dir_all(&d).map_err(io_err("create", &d))?;
        }
        Ok(Self {
            root: root.to_owned(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn lock_file(&self, path: &Path, arg: FlockArg) -> Result<Flock<File>, StoreError> {
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(io_err("open lock", path))?;
        Flock::lock(f, arg).map_err(|(_, e)| StoreError::Io {
            what: "lock",
            path: path.to_owned(),
            source: e.into(),
        })
    }

    /// Held by import, pull and run (while the container is created):
    /// nothing is removed meanwhile.
    pub fn lock_shared(&self) -> Result<Flock<File>, StoreError> {
        self.lock_file(&self.root.join("lock"), FlockArg::LockShared)
    }

    /// Held by rmi and prune.
    pub fn lock_exclusive(&self) -> Result<Flock<File>, StoreError> {
        self.lock_file(&self.root.join("lock"), FlockArg::LockExclusive)
    }

    pub fn blob_path(&self, digest: &str) -> Result<PathBuf, StoreError> {
        Ok(self.root.join("blobs/sha256").join(digest_hex(digest)?))
    }

    /// Stores `bytes` as the blob `digest`, checking that they hash to it.
    pub fn put_blob(&self, digest: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let path = self.blob_path(digest)?;
        let actual = sha256(bytes);
        if actual != digest {
            return Err(StoreError::BlobMismatch {
                digest: digest.to_string(),
                actual,
            });
        }
        if path.exists() {
            return Ok(());
        }
        write_atomic(&path, bytes).map_err(io_err("write blob", &path))
    }

    pub fn read_blob(&self, digest: &str) -> Result<Vec<u8>, StoreError> {
        let path = self.blob_path(digest)?;
        match std::fs::read(&path) {
            Ok(b) => Ok(b),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(StoreError::MissingBlob(digest.to_string()))
            }
            Err(e) => Err(io_err("read blob", &path)(e)),
        }
    }

    /// The snapshot directory of the layer blob `digest`.
    pub fn layer_dir(&self, digest: &str) -> Result<PathBuf, StoreError> {
        Ok(self.root.join("layers").join(digest_hex(digest)?))
    }

    pub fn has_layer(&self, digest: &str) -> Result<bool, StoreError> {
        Ok(self.layer_dir(digest)?.is_dir())
    }

    /// Makes the snapshot of layer `want.digest`, unless it is there: takes
    /// the layer's lock (a concurrent install of the same layer waits, then
    /// finds it done), opens the blob with `open` only then, unpacks it into
    /// `tmp/` and renames it into place once verified. The compressed bytes
    /// are kept too, as `blobs/sha256/HEX` (moved in before the snapshot),
    /// so `wren save` writes the image with its own digests. Returns the
    /// bytes read, or `None` if the layer was already there. Any bytes an
    /// interrupted pull left are dropped: this reads the whole blob.
    pub fn install_layer<R: Read>(
        &self,
        want: &Expected,
        open: impl FnOnce() -> io::Result<R>,
    ) -> Result<Option<u64>, StoreError> {
        self.install(want, false, |_| open())
    }

    /// As [`Self::install_layer`], resuming: the first bytes of the blob
    /// that an interrupted install kept in `tmp/HEX.partial` are read from
    /// there, and `open(offset)` must give the rest from `offset` on (an
    /// HTTP Range request). The digest, size and diff id are checked over
    /// the whole blob as before; a blob that fails them is not kept, so the
    /// next try starts from the first byte. Returns the bytes read through
    /// `open`.
    pub fn install_layer_resuming<R: Read>(
        &self,
        want: &Expected,
        open: impl FnOnce(u64) -> io::Result<R>,
    ) -> Result<Option<u64>, StoreError> {
        self.install(want, true, open)
    }

    fn install<R: Read>(
        &self,
        want: &Expected,
        resume: bool,
        open: impl FnOnce(u64) -> io::Result<R>,
    ) -> Result<Option<u64>, StoreError> {
        let hex = digest_hex(&want.digest)?.to_string();
        let dst = self.root.join("layers").join(&hex);
        let _lock = self.lock_file(&self.root.join("locks").join(&hex), FlockArg::LockExclusive)?;
        if dst.is_dir() {
            return Ok(None);
        }
        self.remove_tmp(&hex);
        let tmp = self
            .root
            .join("tmp")
            .join(format!("{hex}.{}", std::process::id()));
        let partial = self.root.join("tmp").join(format!("{hex}.partial"));
        let kept = std::fs::metadata(&partial).map_or(0, |m| m.len());
        // A prefix as long as the blob (or longer) cannot be resumed with
        // a Range request: start again.
        let offset = match want.size {
            Some(size) if resume && kept < size => kept,
            _ => 0,
        };
        std::fs::create_dir(&tmp).map_err(io_err("create", &tmp))?;
        let blob_file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(offset == 0)
            .append(offset > 0)
            .open(&partial)
            .map_err(io_err("create", &partial))?;
        let prefix = File::open(&partial).map_err(io_err("open", &partial))?;
        let blob_dst = self.blob_path(&want.digest)?;
        let source_failed = std::rc::Rc::new(std::cell::Cell::new(false));
        let result = open(offset)
            .map_err(|source| {
                StoreError::Unpack(UnpackError::Read {
                    layer: want.digest.clone(),
                    source,
                })
            })
            .and_then(|rest| {
                let tee = Tee {
                    inner: rest,
                    copy: io::BufWriter::with_capacity(256 * 1024, blob_file),
                    source_failed: source_failed.clone(),
                };
                Ok(unpack::unpack(prefix.take(offset).chain(tee), want, &tmp)?)
            })
            .and_then(|u| {
                std::fs::rename(&partial, &blob_dst)
                    .map_err(io_err("keep layer blob", &blob_dst))?;
                std::fs::rename(&tmp, &dst).map_err(io_err("install layer", &dst))?;
                Ok(u.size - offset)
            });
        if result.is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
            // Only a download cut off leaves a prefix worth resuming; wrong
            // bytes (a bad digest, a corrupt stream) start again. The cut
            // may surface as any unpack error (in the middle of a file it
            // is the entry's), so the source's own failure decides: what
            // it gave before failing is a true prefix of the blob.
            let keep = resume
                && source_failed.get()
                && std::fs::metadata(&partial).is_ok_and(|m| m.len() > 0);
            if !keep {
                let _ = std::fs::remove_file(&partial);
            }
        }
        result.map(Some)
    }

    /// Removes leftovers of interrupted unpacks of layer `hex` (the caller
    /// holds its lock, so none of them is still being written), except the
    /// kept prefix of its blob (`HEX.partial`).
    fn remove_tmp(&self, hex: &str) {
        let tmp = self.root.join("tmp");
        let Ok(rd) = std::fs::read_dir(&tmp) else {
            return;
        };
        for e in rd.flatten() {
            let name = e.file_name();
            let name = name.to_string_lossy();
            if name.split('.').next() == Some(hex) && !name.ends_with(".partial") {
                remove_any(&e.path());
            }
        }
    }

    fn index_path(&self) -> PathBuf {
        self.root.join("index.json")
    }

    /// Reads index.json (empty if absent).
    pub fn index(&self) -> Result<Index, StoreError> {
        let path = self.index_path();
        match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|source| StoreError::ParseIndex {
                path: path.clone(),
                source,
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Index::default()),
            Err(e) => Err(io_err("read", &path)(e)),
        }
    }

    /// Read-modify-writes index.json under its lock.
    pub fn update_index<T>(
        &self,
        f: impl FnOnce(&mut Index) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let _lock = self.lock_file(&self.root.join("index.lock"), FlockArg::LockExclusive)?;
        let mut index = self.index()?;
        let out = f(&mut index)?;
        let path = self.index_path();
        let bytes = serde_json::to_vec_pretty(&index).unwrap_or_default();
        write_atomic(&path, &bytes).map_err(io_err("write", &path))?;
        Ok(out)
    }

    /// Names `name` (a normalised reference) as the image with manifest `digest`.
    pub fn tag(&self, name: &str, digest: &str) -> Result<(), StoreError> {
        digest_hex(digest)?;
        self.update_index(|idx| {
            idx.images.insert(
                name.to_string(),
                IndexEntry {
                    digest: digest.to_string(),
                    added: now(),
                },
            );
            Ok(())
        })
    }

    /// Finds an image by name (as given, or normalised: `busybox` is
    /// `docker.io/library/busybox:latest`), by full digest, or by a unique
    /// prefix of at least 4 hex digits of its id.
    pub fn find(&self, reference: &str) -> Result<(String, String), StoreError> {
        let idx = self.index()?;
        if let Some(e) = idx.images.get(reference) {
            return Ok((reference.to_string(), e.digest.clone()));
        }
        if let Some(n) = crate::reference::normalise(reference) {
            if let Some(e) = idx.images.get(&n) {
                return Ok((n, e.digest.clone()));
            }
        }
        let hex = reference.strip_prefix("sha256:").unwrap_or(reference);
        if hex.len() >= 4 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            let ids: BTreeSet<&str> = idx
                .images
                .values()
                .map(|e| e.digest.as_str())
                .filter(|d| d.trim_start_matches("sha256:").starts_with(hex))
                .collect();
            match ids.len() {
                0 => {}
                1 => {
                    let id = ids.into_iter().next().unwrap_or_default().to_string();
                    return Ok((id.clone(), id));
                }
                _ => {
                    let list: Vec<&str> = ids.into_iter().collect();
                    return Err(StoreError::Ambiguous(
                        reference.to_string(),
                        list.join(", "),
                    ));
                }
            }
        }
        Err(StoreError::NoImage(reference.to_string()))
    }

    pub fn manifest(&self, digest: &str) -> Result<ImageManifest, StoreError> {
        let b = self.read_blob(digest)?;
        serde_json::from_slice(&b).map_err(|source| StoreError::Parse {
            what: "manifest",
            digest: digest.to_string(),
            source,
        })
    }

    pub fn config(&self, digest: &str) -> Result<ImageConfiguration, StoreError> {
        let b = self.read_blob(digest)?;
        serde_json::from_slice(&b).map_err(|source| StoreError::Parse {
            what: "image config",
            digest: digest.to_string(),
            source,
        })
    }

    /// Resolves `reference` to an image with its manifest and config.
    pub fn image(&self, reference: &str) -> Result<Image, StoreError> {
        let (name, id) = self.find(reference)?;
        let manifest = self.manifest(&id)?;
        let config = self.config(manifest.config().digest().as_ref())?;
        Ok(Image {
            name,
            id,
            manifest,
            config,
        })
    }

    /// The image's layer snapshots, lowest first; every one must be present.
    pub fn layer_dirs(&self, image: &Image) -> Result<Vec<PathBuf>, StoreError> {
        image
            .manifest
            .layers()
            .iter()
            .map(|l| {
                let d = self.layer_dir(l.digest().as_ref())?;
                if d.is_dir() {
                    Ok(d)
                } else {
                    Err(StoreError::MissingBlob(format!(
                        "{} (layer of image {})",
                        l.digest(),
                        image.name
                    )))
                }
            })
            .collect()
    }

    /// Removes the names in `names` from the index; returns the digests
    /// they named. The caller holds the exclusive lock and checked use.
    pub fn untag(&self, names: &[String]) -> Result<Vec<String>, StoreError> {
        self.update_index(|idx| {
            Ok(names
                .iter()
                .filter_map(|n| idx.images.remove(n).map(|e| e.digest))
                .collect())
        })
    }

    /// Removes every blob and layer no named image refers to, and leftovers
    /// in `tmp/`. The caller holds the exclusive lock. Returns what was
    /// removed (`blob DIGEST` / `layer DIGEST`).
    pub fn prune(&self) -> Result<Vec<String>, StoreError> {
        let idx = self.index()?;
        let mut blobs = BTreeSet::new();
        let mut layers = BTreeSet::new();
        for e in idx.images.values() {
            blobs.insert(e.digest.clone());
            // A manifest that cannot be read keeps nothing else alive.
            if let Ok(m) = self.manifest(&e.digest) {
                blobs.insert(m.config().digest().to_string());
                for l in m.layers() {
                    layers.insert(l.digest().to_string());
                    blobs.insert(l.digest().to_string());
                }
            }
        }
        let mut removed = Vec::new();
        for (sub, keep, what) in [
            ("blobs/sha256", &blobs, "blob"),
            ("layers", &layers, "layer"),
        ] {
            let dir = self.root.join(sub);
            let rd = std::fs::read_dir(&dir).map_err(io_err("read", &dir))?;
            for e in rd.flatten() {
                let digest = format!("sha256:{}", e.file_name().to_string_lossy());
                if keep.contains(&digest) {
                    continue;
                }
                let p = e.path();
                let r = if p.is_dir() {
                    std::fs::remove_dir_all(&p)
                } else {
                    std::fs::remove_file(&p)
                };
                r.map_err(io_err("remove", &p))?;
                removed.push(format!("{what} {digest}"));
            }
        }
        let tmp = self.root.join("tmp");
        if let Ok(rd) = std::fs::read_dir(&tmp) {
            for e in rd.flatten() {
                remove_any(&e.path());
            }
        }
        Ok(removed)
    }

    /// Disk use of a directory tree in bytes (files' apparent sizes).
    pub fn du(path: &Path) -> u64 {
        let Ok(m) = path.symlink_metadata() else {
            return 0;
        };
        if !m.is_dir() {
            return m.len();
        }
        std::fs::read_dir(path)
            .map(|rd| rd.flatten().map(|e| Self::du(&e.path())).sum())
            .unwrap_or(0)
    }
}
