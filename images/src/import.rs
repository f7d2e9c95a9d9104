//! `wren import`: images from an OCI image layout (a directory, or a tar
//! of one, as `skopeo copy oci-archive:` or `ctr export` write) or a
//! `docker save` tar. Every blob is checked against its digest; layers go
//! through [`Store::install_layer`], so a layer already in the store (from
//! another image) is not unpacked again.
//!
//! A tar is first extracted into the store's `tmp/` (blobs in a tar come
//! in no useful order) and that copy is removed when the import ends.
//!
//! Runs in the `wren` process.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};

use oci_spec::image::{ImageIndex, ImageManifest};
use serde::Deserialize;

use crate::platform::Platform;
use crate::store::{digest_hex, sha256, Store, StoreError};
use crate::unpack::{Expected, Hashing};

/// An import that failed; each names the file, the image or the layer.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}: neither an OCI image layout (oci-layout, index.json) nor a docker save archive (manifest.json)")]
    UnknownFormat { path: PathBuf },
    #[error("parse {what} in {path}")]
    Parse {
        what: String,
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path}: blob {digest} is missing")]
    MissingBlob { path: PathBuf, digest: String },
    #[error("{path}: {what} {digest}: content hashes to {actual}")]
    Mismatch {
        path: PathBuf,
        what: &'static str,
        digest: String,
        actual: String,
    },
    #[error("{path}: bad path {entry:?} in manifest.json")]
    BadPath { path: PathBuf, entry: String },
    #[error("{path}: image {image}: no manifest for platform {platform}")]
    NoPlatform {
        path: PathBuf,
        image: String,
        platform: String,
    },
    #[error("{path}: an image has no name; give one with --name")]
    NoName { path: PathBuf },
    #[error("{path}: invalid image name {name:?}")]
    BadName { path: PathBuf, name: String },
    #[error("{path}: --name fits only a file with one image; it has {count}")]
    NameForMany { path: PathBuf, count: usize },
    #[error("image {image}")]
    Image {
        image: String,
        #[source]
        source: StoreError,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What `import` was asked for besides the file.
#[derive(Debug, Clone)]
pub struct Options {
    /// The name to give the (single) image, overriding the file's own.
    pub name: Option<String>,
    /// Which manifest of a multi-platform index to take.
    pub platform: Platform,
}

/// One image imported.
#[derive(Debug, Clone)]
pub struct Imported {
    pub name: String,
    /// Its manifest digest.
    pub id: String,
    /// Layers unpacked by this import.
    pub new_layers: usize,
    /// Layers already in the store.
    pub shared_layers: usize,
}

/// A directory removed when dropped.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Imports every image in `path` (a layout directory, or a tar of a
/// layout or of `docker save`). The caller holds the store's shared lock.
pub fn import(store: &Store, path: &Path, opts: &Options) -> Result<Vec<Imported>, ImportError> {
    let read_err = |source| ImportError::Read {
        path: path.to_owned(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(read_err)?;
    let _extracted;
    let dir = if meta.is_dir() {
        path.to_owned()
    } else {
        let d = store
            .root()
            .join("tmp")
            .join(format!("import.{}", std::process::id()));
        _extracted = TempDir(d.clone());
        std::fs::create_dir_all(&d).map_err(read_err)?;
        let f = File::open(path).map_err(read_err)?;
        // tar's unpack refuses entries that would land outside `d`.
        tar::Archive::new(io::BufReader::new(f))
            .unpack(&d)
            .map_err(read_err)?;
        d
    };
    let src = Source {
        file: path.to_owned(),
        dir,
    };
    if src.dir.join("index.json").is_file() && src.dir.join("oci-layout").is_file() {
        src.import_layout(store, opts)
    } else if src.dir.join("manifest.json").is_file() {
        src.import_docker(store, opts)
    } else {
        Err(ImportError::UnknownFormat {
            path: path.to_owned(),
        })
    }
}

/// The unpacked input: the user's file (for messages) and its contents.
struct Source {
    file: PathBuf,
    dir: PathBuf,
}

const INDEX_TYPES: &[&str] = &[
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

/// A `docker save` manifest.json entry.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

impl Source {
    fn read(&self, rel: &Path) -> Result<Vec<u8>, ImportError> {
        std::fs::read(self.dir.join(rel)).map_err(|source| ImportError::Read {
            path: self.file.join(rel),
            source,
        })
    }

    /// A blob of the layout, checked against its digest.
    fn blob(&self, digest: &str, what: &'static str) -> Result<Vec<u8>, ImportError> {
        let p = self.blob_path(digest)?;
        let bytes = std::fs::read(&p).map_err(|_| ImportError::MissingBlob {
            path: self.file.clone(),
            digest: digest.to_string(),
        })?;
        let actual = sha256(&bytes);
        if actual != digest {
            return Err(ImportError::Mismatch {
                path: self.file.clone(),
                what,
                digest: digest.to_string(),
                actual,
            });
        }
        Ok(bytes)
    }

    fn blob_path(&self, digest: &str) -> Result<PathBuf, ImportError> {
        Ok(self.dir.join("blobs/sha256").join(digest_hex(digest)?))
    }

    fn parse<T: serde::de::DeserializeOwned>(
        &self,
        bytes: &[u8],
        what: String,
    ) -> Result<T, ImportError> {
        serde_json::from_slice(bytes).map_err(|source| ImportError::Parse {
            what,
            path: self.file.clone(),
            source,
        })
    }

    fn name(&self, given: Option<&str>, count: usize) -> Result<Option<String>, ImportError> {
        match given {
            Some(_) if count != 1 => Err(ImportError::NameForMany {
                path: self.file.clone(),
                count,
            }),
            Some(n) => self.normalise(n).map(Some),
            None => Ok(None),
        }
    }

    fn normalise(&self, name: &str) -> Result<String, ImportError> {
        crate::reference::normalise(name).ok_or_else(|| ImportError::BadName {
            path: self.file.clone(),
            name: name.to_string(),
        })
    }

    fn import_layout(&self, store: &Store, opts: &Options) -> Result<Vec<Imported>, ImportError> {
        let index: ImageIndex =
            self.parse(&self.read(Path::new("index.json"))?, "index.json".into())?;
        let given = self.name(opts.name.as_deref(), index.manifests().len())?;
        let mut out = Vec::new();
        for d in index.manifests() {
            let ann = d.annotations().as_ref();
            let own = ann
                .and_then(|a| a.get("io.containerd.image.name"))
                .or_else(|| {
                    ann.and_then(|a| a.get("org.opencontainers.image.ref.name"))
                        .filter(|n| n.contains('/') || n.contains(':'))
                });
            let name = match (&given, own) {
                (Some(n), _) => n.clone(),
                (None, Some(n)) => self.normalise(n)?,
                (None, None) => {
                    return Err(ImportError::NoName {
                        path: self.file.clone(),
                    })
                }
            };
            let mut digest = d.digest().to_string();
            if INDEX_TYPES.contains(&d.media_type().to_string().as_str()) {
                let bytes = self.blob(&digest, "index")?;
                let inner: ImageIndex = self.parse(&bytes, format!("index {digest}"))?;
                let Some(m) = inner.manifests().iter().find(|m| opts.platform.matches(m)) else {
                    return Err(ImportError::NoPlatform {
                        path: self.file.clone(),
                        image: name,
                        platform: opts.platform.to_string(),
                    });
                };
                digest = m.digest().to_string();
            }
            let bytes = self.blob(&digest, "manifest")?;
            out.push(self.install(store, &name, &bytes, |d| self.blob_path(d))?);
        }
        Ok(out)
    }

    /// Installs the manifest `bytes` (already checked) and everything it
    /// names, then names the image `name`.
    fn install(
        &self,
        store: &Store,
        name: &str,
        manifest_bytes: &[u8],
        layer_path: impl Fn(&str) -> Result<PathBuf, ImportError>,
    ) -> Result<Imported, ImportError> {
        let id = sha256(manifest_bytes);
        let in_image = |source| ImportError::Image {
            image: name.to_string(),
            source,
        };
        let manifest: ImageManifest = self.parse(manifest_bytes, format!("manifest {id}"))?;
        let config_digest = manifest.config().digest().to_string();
        let config_bytes = self.blob_at(&layer_path(&config_digest)?, &config_digest, "config")?;
        let config: oci_spec::image::ImageConfiguration =
            self.parse(&config_bytes, format!("image config {config_digest}"))?;
        let diff_ids = config.rootfs().diff_ids();
        let (mut new_layers, mut shared_layers) = (0, 0);
        for (i, l) in manifest.layers().iter().enumerate() {
            let want = Expected {
                digest: l.digest().to_string(),
                size: Some(l.size()),
                diff_id: diff_ids.get(i).cloned(),
            };
            let p = layer_path(&want.digest)?;
            match store
                .install_layer(&want, || File::open(&p))
                .map_err(in_image)?
            {
                Some(_) => new_layers += 1,
                None => shared_layers += 1,
            }
        }
        store
            .put_blob(&config_digest, &config_bytes)
            .map_err(in_image)?;
        store.put_blob(&id, manifest_bytes).map_err(in_image)?;
        store.tag(name, &id).map_err(in_image)?;
        Ok(Imported {
            name: name.to_string(),
            id,
            new_layers,
            shared_layers,
        })
    }

    fn blob_at(&self, p: &Path, digest: &str, what: &'static str) -> Result<Vec<u8>, ImportError> {
        let bytes = std::fs::read(p).map_err(|_| ImportError::MissingBlob {
            path: self.file.clone(),
            digest: digest.to_string(),
        })?;
        let actual = sha256(&bytes);
        if actual != digest {
            return Err(ImportError::Mismatch {
                path: self.file.clone(),
                what,
                digest: digest.to_string(),
                actual,
            });
        }
        Ok(bytes)
    }

    /// A path from manifest.json, kept inside the archive.
    fn inside(&self, rel: &str) -> Result<PathBuf, ImportError> {
        let p = Path::new(rel);
        if p.components().all(|c| matches!(c, Component::Normal(_))) {
            Ok(self.dir.join(p))
        } else {
            Err(ImportError::BadPath {
                path: self.file.clone(),
                entry: rel.to_string(),
            })
        }
    }

    /// `docker save`: manifest.json lists each image's config and layer
    /// files by path; an OCI manifest is made for them, naming each file
    /// by the digest of its bytes.
    fn import_docker(&self, store: &Store, opts: &Options) -> Result<Vec<Imported>, ImportError> {
        let entries: Vec<DockerEntry> = self.parse(
            &self.read(Path::new("manifest.json"))?,
            "manifest.json".into(),
        )?;
        let given = self.name(opts.name.as_deref(), entries.len())?;
        let mut out = Vec::new();
        for e in &entries {
            let names: Vec<String> = match (&given, &e.repo_tags) {
                (Some(n), _) => vec![n.clone()],
                (None, Some(tags)) if !tags.is_empty() => tags
                    .iter()
                    .map(|t| self.normalise(t))
                    .collect::<Result<_, _>>()?,
                _ => {
                    return Err(ImportError::NoName {
                        path: self.file.clone(),
                    })
                }
            };
            let config_path = self.inside(&e.config)?;
            let config_bytes = std::fs::read(&config_path).map_err(|source| ImportError::Read {
                path: self.file.join(&e.config),
                source,
            })?;
            let config_digest = sha256(&config_bytes);
            let mut paths = std::collections::HashMap::new();
            paths.insert(config_digest.clone(), config_path);
            let mut layers = Vec::new();
            for l in &e.layers {
                let p = self.inside(l)?;
                let read_err = |source| ImportError::Read {
                    path: self.file.join(l),
                    source,
                };
                let mut f = File::open(&p).map_err(read_err)?;
                let mut head = [0u8; 4];
                let n = f.read(&mut head).map_err(read_err)?;
                let media = match &head[..n] {
                    [0x1f, 0x8b, ..] => "application/vnd.oci.image.layer.v1.tar+gzip",
                    [0x28, 0xb5, 0x2f, 0xfd] => "application/vnd.oci.image.layer.v1.tar+zstd",
                    _ => "application/vnd.oci.image.layer.v1.tar",
                };
                let (digest, size, _) = Hashing::new(File::open(&p).map_err(read_err)?)
                    .finish()
                    .map_err(read_err)?;
                layers
                    .push(serde_json::json!({"mediaType": media, "digest": digest, "size": size}));
                paths.insert(digest, p);
            }
            let manifest = serde_json::json!({
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {
                    "mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": config_digest,
                    "size": config_bytes.len(),
                },
                "layers": layers,
            });
            let bytes = serde_json::to_vec(&manifest).unwrap_or_default();
            let lookup = |d: &str| {
                paths
                    .get(d)
                    .cloned()
                    .ok_or_else(|| ImportError::MissingBlob {
                        path: self.file.clone(),
                        digest: d.to_string(),
                    })
            };
            let first = self.install(store, &names[0], &bytes, lookup)?;
            for n in &names[1..] {
                store.tag(n, &first.id)?;
            }
            out.push(first);
        }
        Ok(out)
    }
}
