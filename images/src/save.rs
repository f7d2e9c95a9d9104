//! `wren save`: images written out as an OCI image layout tar that
//! `wren import`, `skopeo copy oci-archive:` and `ctr images import` read.
//!
//! An image whose compressed layer blobs the store kept (every layer
//! pulled or imported since the store keeps them) is written as it came:
//! the same manifest, config and layer bytes, so the same digests and id.
//! For a layer whose blob is missing (a store from before), each layer of
//! that image is tarred again from its snapshot (whiteout devices back to
//! `.wh.` entries, opaque directories to `.wh..wh..opq`, hard links as
//! links, owners, modes and device numbers kept; xattrs are not written)
//! and gzipped; then its digests differ from the pulled layer: the config
//! is rewritten with the new diff ids, and the saved image has a new id.
//!
//! Runs in the `wren` process.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use serde_json::json;
use sha2::{Digest, Sha256};

use crate::runconfig::is_opaque;
use crate::store::{Store, StoreError};
use crate::unpack::hex;

/// A save that failed; each names the image, layer or path.
#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    #[error("save {image}: layer {layer}")]
    Layer {
        image: String,
        layer: String,
        #[source]
        source: io::Error,
    },
    #[error("write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A writer that hashes and counts what it passes on.
struct HashWriter<W> {
    inner: W,
    hash: Sha256,
    count: u64,
}

impl<W: Write> Write for HashWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn hashing<W: Write>(inner: W) -> HashWriter<W> {
    HashWriter {
        inner,
        hash: Sha256::new(),
        count: 0,
    }
}

/// Tars the snapshot `dir` into `out` (gzip); returns (digest, size, diff id).
fn tar_layer(dir: &Path, out: File) -> io::Result<(String, u64, String)> {
    let blob = hashing(out);
    let gz = flate2::write::GzEncoder::new(blob, flate2::Compression::fast());
    let mut b = tar::Builder::new(hashing(gz));
    b.follow_symlinks(false);
    let mut links = HashMap::new();
    walk(dir, Path::new(""), &mut b, &mut links)?;
    let tar = b.into_inner()?;
    let diff_id = format!("sha256:{}", hex(&tar.hash.finalize()));
    let mut blob = tar.inner.finish()?;
    blob.flush()?;
    let digest = format!("sha256:{}", hex(&blob.hash.finalize()));
    Ok((digest, blob.count, diff_id))
}

fn header_for(m: &std::fs::Metadata, kind: tar::EntryType) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(m.mode() & 0o7777);
    h.set_uid(u64::from(m.uid()));
    h.set_gid(u64::from(m.gid()));
    h.set_mtime(m.mtime().max(0) as u64);
    h.set_size(0);
    h
}

fn walk<W: Write>(
    root: &Path,
    rel: &Path,
    b: &mut tar::Builder<W>,
    links: &mut HashMap<(u64, u64), PathBuf>,
) -> io::Result<()> {
    let dir = root.join(rel);
    let mut entries: Vec<_> = std::fs::read_dir(&dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    if !rel.as_os_str().is_empty() && is_opaque(&dir) {
        let m = dir.symlink_metadata()?;
        let mut h = header_for(&m, tar::EntryType::Regular);
        b.append_data(&mut h, rel.join(".wh..wh..opq"), io::empty())?;
    }
    for e in entries {
        let name = rel.join(e.file_name());
        let path = e.path();
        let m = path.symlink_metadata()?;
        let ft = m.file_type();
        if ft.is_char_device() && m.rdev() == 0 {
            let wh = rel.join(format!(".wh.{}", e.file_name().to_string_lossy()));
            let mut h = header_for(&m, tar::EntryType::Regular);
            b.append_data(&mut h, wh, io::empty())?;
        } else if ft.is_dir() {
            let mut h = header_for(&m, tar::EntryType::Directory);
            b.append_data(&mut h, &name, io::empty())?;
            walk(root, &name, b, links)?;
        } else if ft.is_symlink() {
            let mut h = header_for(&m, tar::EntryType::Symlink);
            b.append_link(&mut h, &name, std::fs::read_link(&path)?)?;
        } else if ft.is_file() {
            let key = (m.dev(), m.ino());
            if m.nlink() > 1 {
                if let Some(first) = links.get(&key) {
                    let mut h = header_for(&m, tar::EntryType::Link);
                    b.append_link(&mut h, &name, first)?;
                    continue;
                }
                links.insert(key, name.clone());
            }
            let mut h = header_for(&m, tar::EntryType::Regular);
            h.set_size(m.len());
            b.append_data(&mut h, &name, File::open(&path)?)?;
        } else {
            let kind = if ft.is_char_device() {
                tar::EntryType::Char
            } else if ft.is_block_device() {
                tar::EntryType::Block
            } else if ft.is_fifo() {
                tar::EntryType::Fifo
            } else {
                continue; // sockets are not archived
            };
            let mut h = header_for(&m, kind);
            let rdev = m.rdev();
            h.set_device_major(libc::major(rdev))?;
            h.set_device_minor(libc::minor(rdev))?;
            b.append_data(&mut h, &name, io::empty())?;
        }
    }
    Ok(())
}

/// Writes the images `references` to `out` as one OCI layout tar (through a
/// temp file and a rename). The caller holds the store's shared lock.
pub fn save(store: &Store, references: &[String], out: &Path) -> Result<(), SaveError> {
    let tmp_out = out.with_extension(format!("tmp.{}", std::process::id()));
    let werr = |path: &Path| {
        let path = path.to_owned();
        move |source| SaveError::Write { path, source }
    };
    let result = (|| {
        let f = File::create(&tmp_out).map_err(werr(&tmp_out))?;
        let mut t = tar::Builder::new(io::BufWriter::new(f));
        let add = |t: &mut tar::Builder<io::BufWriter<File>>, name: &str, data: &[u8]| {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_entry_type(tar::EntryType::Regular);
            t.append_data(&mut h, name, data)
        };
        let mut manifests = Vec::new();
        let mut written = std::collections::HashSet::new();
        for r in references {
            let image = store.image(r)?;
            let mut kept = Vec::new();
            for l in image.manifest.layers() {
                let p = store.blob_path(l.digest().as_ref())?;
                if p.is_file() {
                    kept.push((l.digest().to_string(), p));
                }
            }
            if kept.len() == image.manifest.layers().len() {
                let manifest_bytes = store.read_blob(&image.id)?;
                let config_digest = image.manifest.config().digest().to_string();
                let config_bytes = store.read_blob(&config_digest)?;
                for (digest, p) in &kept {
                    if written.insert(digest.clone()) {
                        let name = format!("blobs/sha256/{}", &digest[7..]);
                        File::open(p)
                            .and_then(|mut f| t.append_file(&name, &mut f))
                            .map_err(|source| SaveError::Layer {
                                image: image.name.clone(),
                                layer: digest.clone(),
                                source,
                            })?;
                    }
                }
                for (d, bytes) in [
                    (&config_digest, &config_bytes),
                    (&image.id, &manifest_bytes),
                ] {
                    if written.insert(d.clone()) {
                        add(&mut t, &format!("blobs/sha256/{}", &d[7..]), bytes)
                            .map_err(werr(&tmp_out))?;
                    }
                }
                let media_type = image
                    .manifest
                    .media_type()
                    .as_ref()
                    .map(|m| m.to_string())
                    .unwrap_or_else(|| "application/vnd.oci.image.manifest.v1+json".into());
                manifests.push(json!({
                    "mediaType": media_type,
                    "digest": image.id,
                    "size": manifest_bytes.len(),
                    "annotations": {
                        "io.containerd.image.name": image.name,
                        "org.opencontainers.image.ref.name": image.name,
                    },
                }));
                continue;
            }
            let mut diff_ids = Vec::new();
            let mut layers = Vec::new();
            for l in image.manifest.layers() {
                let dir = store.layer_dir(l.digest().as_ref())?;
                let lerr = |source| SaveError::Layer {
                    image: image.name.clone(),
                    layer: l.digest().to_string(),
                    source,
                };
                let tmp = store.root().join("tmp").join(format!(
                    "save.{}.{}",
                    std::process::id(),
                    layers.len()
                ));
                let f = File::create(&tmp).map_err(lerr)?;
                let tarred = tar_layer(&dir, f);
                let (digest, size, diff_id) = match tarred {
                    Ok(x) => x,
                    Err(e) => {
                        let _ = std::fs::remove_file(&tmp);
                        return Err(lerr(e));
                    }
                };
                if written.insert(digest.clone()) {
                    let name = format!("blobs/sha256/{}", &digest[7..]);
                    let added = File::open(&tmp).and_then(|mut f| t.append_file(&name, &mut f));
                    if let Err(e) = added {
                        let _ = std::fs::remove_file(&tmp);
                        return Err(lerr(e));
                    }
                }
                let _ = std::fs::remove_file(&tmp);
                layers.push(json!({
                    "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": digest,
                    "size": size,
                }));
                diff_ids.push(diff_id);
            }
            let mut config = serde_json::to_value(&image.config).map_err(|e| SaveError::Write {
                path: out.to_owned(),
                source: io::Error::other(e),
            })?;
            config["rootfs"] = json!({"type": "layers", "diff_ids": diff_ids});
            let config_bytes = serde_json::to_vec(&config).unwrap_or_default();
            let config_digest = crate::store::sha256(&config_bytes);
            let manifest = json!({
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {
                    "mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": config_digest,
                    "size": config_bytes.len(),
                },
                "layers": layers,
            });
            let manifest_bytes = serde_json::to_vec(&manifest).unwrap_or_default();
            let manifest_digest = crate::store::sha256(&manifest_bytes);
            for (d, bytes) in [
                (&config_digest, &config_bytes),
                (&manifest_digest, &manifest_bytes),
            ] {
                if written.insert(d.clone()) {
                    add(&mut t, &format!("blobs/sha256/{}", &d[7..]), bytes)
                        .map_err(werr(&tmp_out))?;
                }
            }
            manifests.push(json!({
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": manifest_digest,
                "size": manifest_bytes.len(),
                "annotations": {
                    "io.containerd.image.name": image.name,
                    "org.opencontainers.image.ref.name": image.name,
                },
            }));
        }
        let index = json!({"schemaVersion": 2, "manifests": manifests});
        add(&mut t, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#).map_err(werr(&tmp_out))?;
        add(
            &mut t,
            "index.json",
            &serde_json::to_vec(&index).unwrap_or_default(),
        )
        .map_err(werr(&tmp_out))?;
        let w = t.into_inner().map_err(werr(&tmp_out))?;
        let f = w.into_inner().map_err(|e| werr(&tmp_out)(e.into_error()))?;
        f.sync_all().map_err(werr(&tmp_out))?;
        std::fs::rename(&tmp_out, out).map_err(werr(out))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp_out);
    }
    result
}
