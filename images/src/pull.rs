//! `wren pull`: an image from an OCI distribution registry into the store,
//! with `oci-client` (reqwest + OpenSSL through native-tls, so the system's
//! CA store) on a current-thread tokio runtime that lives only as long as
//! the pull.
//!
//! The manifest (and a multi-platform index, from which the wanted
//! platform is picked) and the config are fetched whole and checked
//! against their digests. All layers are fetched at once, each streamed
//! straight into [`Store::install_layer`] on a thread of its own (the tar
//! unpack is blocking code), through a small bounded channel, so a layer is
//! never held in memory compressed; the store verifies its digest, size and
//! diff id as the bytes pass, and keeps the compressed bytes as they come
//! (`tmp/HEX.partial`, then the layer's blob). A pull that was cut off
//! (killed, or the connection lost) leaves that prefix; the next pull of
//! the layer reads it back and asks the registry for the rest only (HTTP
//! Range, `pull_blob_stream_partial`), the digest still checked over the
//! whole blob. A layer already in the store, or
//! being installed by a concurrent pull (its per-layer lock), is not
//! fetched.
//!
//! Where the bytes come from is registries.conf's business
//! ([`crate::registries`]): mirrors first, then the primary location, each
//! tried until one has the image (a later source is tried when one cannot
//! be reached, lacks the image, or gives wrong bytes); the image is named
//! as asked either way.
//!
//! Credentials come from Docker's or Podman's files or the helpers they
//! name ([`crate::auth`]); how a registry is reached (TLS, or an insecure
//! one's unverified TLS or plain HTTP) is [`crate::endpoint`]'s; the
//! registry's Bearer challenge (token auth) and Basic auth are handled by
//! oci-client.
//!
//! Runs in the `wren` process only (feature `pull`).

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::StreamExt;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use oci_spec::image::{ImageIndex, ImageManifest};

use crate::platform::Platform;
use crate::store::{sha256, Store, StoreError};
use crate::unpack::Expected;

/// A pull that failed; each names the image, and the layer or blob.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error("{0}")]
    BadReference(String),
    #[error("pull {image}: {what}")]
    Registry {
        image: String,
        what: String,
        #[source]
        source: oci_client::errors::OciDistributionError,
    },
    #[error("pull {image}: {what} {digest}: content hashes to {actual}")]
    Mismatch {
        image: String,
        what: &'static str,
        digest: String,
        actual: String,
    },
    #[error("pull {image}: parse {what}")]
    Parse {
        image: String,
        what: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("pull {image}: no manifest for platform {platform}")]
    NoPlatform { image: String, platform: String },
    #[error("pull {image}: layer {layer}: download")]
    Download {
        image: String,
        layer: String,
        #[source]
        source: io::Error,
    },
    #[error("pull {image}")]
    Store {
        image: String,
        #[source]
        source: StoreError,
    },
    #[error("read credentials {path}")]
    Auth {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("read CA certificate {path}")]
    Ca {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("start the download runtime")]
    Runtime(#[source] io::Error),
    #[error("pull {image}: registries.conf")]
    Registries {
        image: String,
        #[source]
        source: crate::registries::RegistriesError,
    },
    #[error("pull {image}: no source had it: {tried}")]
    NoSource {
        image: String,
        tried: String,
        /// Whether one of them failed in a way worth another try.
        transient: bool,
    },
    #[error("credential helper {helper} (named in {}): {what}", file.display())]
    Helper {
        helper: String,
        file: PathBuf,
        what: String,
    },
    #[error("{}registry {registry} cannot be reached: {tried}", pulling(.image))]
    Unreachable {
        /// The image being pulled (`None` for `wren login`).
        image: Option<String>,
        registry: String,
        tried: String,
    },
    #[error("login {registry}: {what}")]
    Login { registry: String, what: String },
    #[error("registry {registry}: exchange the identity token: {what}")]
    Token { registry: String, what: String },
}

/// Whether a registry's error may go away on its own: the connection
/// (refused, reset, cut, timed out), a 5xx or 429 answer. Not a 401, a
/// 404 or bytes that do not match their digest.
fn transient_oci(e: &oci_client::errors::OciDistributionError) -> bool {
    use oci_client::errors::{OciDistributionError as E, OciErrorCode};
    match e {
        E::RequestError(r) => {
            // A certificate the client refuses, or a name that does not
            // resolve, fails every time (reqwest reports both as connect
            // errors); a resolver that cannot answer now (EAI_AGAIN: the
            // network of a box still booting) may answer later.
            let why = chain(r);
            let dns = why.contains("dns error");
            let permanent = why.contains("certificate")
                || (dns && !why.contains("Temporary failure") && !why.contains("try again"));
            !permanent
                && (r.is_connect()
                    || r.is_timeout()
                    || r.is_request()
                    || r.is_body()
                    || r.is_decode())
        }
        E::IoError(_) => true,
        E::ServerError { code, .. } => *code >= 500 || *code == 429,
        E::RegistryError { envelope, .. } => envelope
            .errors
            .iter()
            .any(|x| matches!(x.code, OciErrorCode::Toomanyrequests)),
        _ => false,
    }
}

/// `pull IMAGE: ` when there is an image.
fn pulling(image: &Option<String>) -> String {
    image
        .as_ref()
        .map(|i| format!("pull {i}: "))
        .unwrap_or_default()
}

impl PullError {
    /// Whether the same pull may succeed if tried again a little later
    /// (`--retry`): the network or the registry failed for now, not the
    /// request.
    pub fn transient(&self) -> bool {
        match self {
            Self::Unreachable { .. } | Self::Download { .. } => true,
            Self::Registry { source, .. } => transient_oci(source),
            Self::NoSource { transient, .. } => *transient,
            _ => false,
        }
    }

    /// Whether another source (a mirror, the primary location) may
    /// succeed where this one failed: it did not have the image, or could
    /// not be reached, or gave bytes that were wrong.
    fn next_source_may_help(&self) -> bool {
        matches!(
            self,
            Self::Registry { .. }
                | Self::Mismatch { .. }
                | Self::Parse { .. }
                | Self::NoPlatform { .. }
                | Self::Download { .. }
                | Self::Unreachable { .. }
        )
    }
}

/// `e` and its causes, `: `-joined (a cause whose words its parent
/// already gave is left out, as reqwest's often are).
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cause = c.source();
    }
    s
}

/// What `pull` was asked for besides the reference.
#[derive(Debug, Clone)]
pub struct Options {
    pub platform: Platform,
    /// Insecure registries (`host[:port]`): HTTPS without verification,
    /// or plain HTTP when they speak no TLS.
    pub insecure: Vec<String>,
    /// A Docker-format config.json with `auths`; `None`: the default one.
    pub authfile: Option<PathBuf>,
    /// PEM CA certificates trusted besides the system's (`--ca-cert`).
    pub ca_certs: Vec<PathBuf>,
    /// registries.conf: mirrors, locations, insecure and blocked names.
    pub registries: crate::registries::Registries,
    /// Tries after the first when a pull fails for now (`--retry`), and
    /// the wait before the first of them, doubling (`--retry-delay`).
    pub retries: u32,
    pub retry_delay: Duration,
}

/// Where Docker and Podman keep a registry's own CA:
/// `/etc/{docker,containers}/certs.d/HOST[:PORT]/*.crt`.
pub fn certs_d(registry: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for base in ["/etc/containers/certs.d", "/etc/docker/certs.d"] {
        let dir = Path::new(base).join(registry);
        if let Ok(rd) = std::fs::read_dir(&dir) {
            let mut v: Vec<PathBuf> = rd
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "crt"))
                .collect();
            v.sort();
            out.extend(v);
        }
    }
    out
}

/// One layer's progress, for a progress display; each event is ignored
/// unless a display wants it.
pub trait Progress {
    /// Layer `digest` of `size` bytes is being fetched.
    fn start(&self, digest: &str, size: u64) {
        let _ = (digest, size);
    }
    /// `n` more bytes of layer `digest` arrived.
    fn bytes(&self, digest: &str, n: u64) {
        let _ = (digest, n);
    }
    /// Layer `digest` was already in the store.
    fn present(&self, digest: &str) {
        let _ = digest;
    }
    /// Layer `digest` is unpacked.
    fn done(&self, digest: &str) {
        let _ = digest;
    }
    /// The pull failed for now (`why`) and is tried again after `delay`:
    /// try `attempt` + 1 of `retries` + 1.
    fn retrying(&self, why: &str, delay: Duration, attempt: u32, retries: u32) {
        let _ = (why, delay, attempt, retries);
    }
}

/// The result of a pull.
#[derive(Debug, Clone)]
pub struct Pulled {
    pub name: String,
    pub id: String,
    pub new_layers: usize,
    pub shared_layers: usize,
    /// Compressed layer bytes fetched.
    pub bytes: u64,
    /// Where the image came from when registries.conf sent the pull
    /// elsewhere (a mirror, another location); `None` for its own name.
    pub source: Option<String>,
}

const MANIFEST_TYPES: &[&str] = &[
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

const INDEX_TYPES: &[&str] = &[
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

/// A `Read` over chunks sent from the download task.
struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<io::Result<Vec<u8>>>,
    buf: Vec<u8>,
    pos: usize,
}

impl Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.buf.len() {
            match self.rx.blocking_recv() {
                Some(Ok(chunk)) => {
                    self.buf = chunk;
                    self.pos = 0;
                }
                Some(Err(e)) => return Err(e),
                None => return Ok(0), // sender gone: end of blob
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Pulls `reference` into `store` and names it. The caller holds the
/// store's shared lock.
pub fn pull(
    store: &Store,
    reference: &str,
    opts: &Options,
    progress: &(dyn Progress + Sync),
) -> Result<Pulled, PullError> {
    // As Podman's --retry: the whole pull (every source) again after a
    // transient failure, the delay doubling; layers cut off midway resume
    // from the bytes they kept.
    let mut delay = opts.retry_delay;
    let mut attempt = 0;
    loop {
        match pull_once(store, reference, opts, progress) {
            Err(e) if e.transient() && attempt < opts.retries => {
                attempt += 1;
                progress.retrying(&chain(&e), delay, attempt, opts.retries);
                std::thread::sleep(delay);
                delay = delay.saturating_mul(2).min(MAX_RETRY_DELAY);
            }
            r => return r,
        }
    }
}

/// The longest wait between two tries of a pull.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(60);

/// The map from oci-client's error to a pull's, naming `image` and the
/// step.
fn registry_error(
    image: &str,
    what: &str,
) -> impl FnOnce(oci_client::errors::OciDistributionError) -> PullError {
    let (image, what) = (image.to_string(), what.to_string());
    move |source| PullError::Registry {
        image,
        what,
        source,
    }
}

/// `reference` as the image is named, and the places registries.conf
/// says to fetch it from, in order.
fn sources_for(
    reference: &str,
    opts: &Options,
) -> Result<(String, Vec<crate::registries::Source>), PullError> {
    let r = crate::reference::parse(reference).map_err(PullError::BadReference)?;
    let name = r.whole();
    let sources = opts
        .registries
        .sources(&r)
        .map_err(|source| PullError::Registries {
            image: name.clone(),
            source,
        })?;
    Ok((name, sources))
}

/// The single-threaded runtime a pull's (or login's) network steps run
/// on, from this thread.
fn runtime() -> Result<tokio::runtime::Runtime, PullError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(PullError::Runtime)
}

/// One try of [`pull`]: each source in turn (mirrors first) until one
/// has the image; the image is named as asked, whichever gave it.
fn pull_once(
    store: &Store,
    reference: &str,
    opts: &Options,
    progress: &(dyn Progress + Sync),
) -> Result<Pulled, PullError> {
    let (name, sources) = sources_for(reference, opts)?;
    let rt = runtime()?;
    let (mut done, s) = first_source(&name, &sources, |s| {
        let remote = remote(&rt, &name, s, opts)?;
        pull_on(&rt, &remote, store, &name, &opts.platform, progress)
    })?;
    if s.reference.whole() != name {
        done.source = Some(s.describe());
    }
    Ok(done)
}

/// `f` of each source in turn, until one succeeds: its result and that
/// source. A source's failure moves on to the next when another may help
/// ([`PullError::next_source_may_help`]); when none is left the error
/// names what each said. A single source's error is returned as it is.
fn first_source<'s, T>(
    name: &str,
    sources: &'s [crate::registries::Source],
    mut f: impl FnMut(&'s crate::registries::Source) -> Result<T, PullError>,
) -> Result<(T, &'s crate::registries::Source), PullError> {
    let mut tried = Vec::new();
    let mut transient = false;
    for (i, s) in sources.iter().enumerate() {
        match f(s) {
            Ok(t) => return Ok((t, s)),
            Err(e) if sources.len() == 1 || !e.next_source_may_help() => return Err(e),
            Err(e) => {
                transient |= e.transient();
                let why = chain(&e);
                let why = why.strip_prefix(&format!("pull {name}: ")).unwrap_or(&why);
                if i + 1 < sources.len() {
                    log::info!(
                        "pull {name}: {}: {why}; trying the next source",
                        s.describe()
                    );
                }
                tried.push(format!("{}: {why}", s.describe()));
            }
        }
    }
    Err(PullError::NoSource {
        image: name.to_string(),
        tried: tried.join("; "),
        transient,
    })
}

/// Source `s` of image `name`, ready to fetch from: reached as its
/// registry wants (TLS, insecure), with the credentials it has.
fn remote<'a>(
    rt: &tokio::runtime::Runtime,
    name: &str,
    s: &'a crate::registries::Source,
    opts: &Options,
) -> Result<Remote<'a>, PullError> {
    let registry = s.reference.registry();
    let repository = s.reference.repository();
    let credential = crate::auth::for_image(
        opts.authfile.as_deref(),
        opts.registries.credential_helpers(),
        registry,
        repository,
    )?;
    let endpoint = endpoint(rt, Some(name), registry, s.insecure, opts)?;
    let auth = registry_auth(rt, &endpoint, credential, repository)?;
    Ok(Remote {
        client: Client::new(endpoint.client_config()),
        reference: &s.reference,
        auth,
    })
}

/// What oci-client is given: an identity token is first exchanged for an
/// access token to pull `repository`.
fn registry_auth(
    rt: &tokio::runtime::Runtime,
    endpoint: &crate::endpoint::Endpoint,
    credential: Option<crate::auth::Credential>,
    repository: &str,
) -> Result<RegistryAuth, PullError> {
    use crate::auth::Credential;
    Ok(match credential {
        None => RegistryAuth::Anonymous,
        Some(Credential::Basic(u, p)) => RegistryAuth::Basic(u, p),
        Some(Credential::IdentityToken(t)) => {
            RegistryAuth::Bearer(endpoint.exchange_identity_token(rt, &t, repository)?)
        }
    })
}

/// Whether `registry` takes `user` / `password` (`wren login`), reached
/// as a pull would reach it.
pub fn check_login(
    registry: &str,
    user: &str,
    password: &str,
    opts: &Options,
) -> Result<(), PullError> {
    let rt = runtime()?;
    endpoint(&rt, None, registry, false, opts)?.check_login(&rt, user, password)
}

/// How `registry` is reached: the CAs given and its certs.d ones trusted;
/// when it is insecure (`--insecure-registry`, or registries.conf's
/// `insecure` for this source), HTTPS without verification, else plain
/// HTTP.
pub fn endpoint(
    rt: &tokio::runtime::Runtime,
    image: Option<&str>,
    registry: &str,
    insecure_source: bool,
    opts: &Options,
) -> Result<crate::endpoint::Endpoint, PullError> {
    let mut certs = Vec::new();
    for path in opts.ca_certs.iter().cloned().chain(certs_d(registry)) {
        let data = std::fs::read(&path).map_err(|source| PullError::Ca {
            path: path.clone(),
            source,
        })?;
        certs.push(data);
    }
    if insecure_source || opts.insecure.iter().any(|r| r == registry) {
        crate::endpoint::Endpoint::insecure(rt, image, registry, certs)
    } else {
        Ok(crate::endpoint::Endpoint::secure(registry, certs))
    }
}

/// One source's client, the image's name there, and the credentials.
struct Remote<'a> {
    client: Client,
    reference: &'a Reference,
    auth: RegistryAuth,
}

/// The manifest `remote` has for `platform` (through an index when it
/// serves one) and its digest, checked: what the image's id would be.
fn fetch_manifest(
    rt: &tokio::runtime::Runtime,
    remote: &Remote,
    name: &str,
    platform: &Platform,
) -> Result<(Vec<u8>, String), PullError> {
    let (client, r, auth) = (&remote.client, remote.reference, &remote.auth);
    let image = name.to_string();
    let reg = |what: &str| registry_error(name, what);
    let (mut bytes, mut digest) = rt
        .block_on(client.pull_manifest_raw(r, auth, MANIFEST_TYPES))
        .map_err(reg("fetch the manifest"))?;
    let media = |b: &[u8]| {
        serde_json::from_slice::<serde_json::Value>(b)
            .ok()
            .and_then(|v| v["mediaType"].as_str().map(String::from))
            .unwrap_or_default()
    };
    if INDEX_TYPES.contains(&media(&bytes).as_str()) {
        let index: ImageIndex =
            serde_json::from_slice(&bytes).map_err(|source| PullError::Parse {
                image: image.clone(),
                what: format!("index {digest}"),
                source,
            })?;
        let Some(m) = index.manifests().iter().find(|m| platform.matches(m)) else {
            return Err(PullError::NoPlatform {
                image,
                platform: platform.to_string(),
            });
        };
        let by_digest = r.clone_with_digest(m.digest().to_string());
        (bytes, digest) = rt
            .block_on(client.pull_manifest_raw(&by_digest, auth, MANIFEST_TYPES))
            .map_err(reg("fetch the platform's manifest"))?;
    }
    let id = sha256(&bytes);
    if id != digest {
        return Err(PullError::Mismatch {
            image,
            what: "manifest",
            digest,
            actual: id,
        });
    }
    Ok((bytes.to_vec(), id))
}

/// The id `reference` would have if pulled now (its manifest digest for
/// the platform), from the first source that has it; nothing is stored.
/// `wren auto-update` asks this to see whether an image moved.
pub fn remote_id(reference: &str, opts: &Options) -> Result<String, PullError> {
    let (name, sources) = sources_for(reference, opts)?;
    let rt = runtime()?;
    let (id, _) = first_source(&name, &sources, |s| {
        let remote = remote(&rt, &name, s, opts)?;
        Ok(fetch_manifest(&rt, &remote, &name, &opts.platform)?.1)
    })?;
    Ok(id)
}

/// The pull from `remote`, driving each network step on `rt` from this
/// thread; the image is tagged `name`.
fn pull_on(
    rt: &tokio::runtime::Runtime,
    remote: &Remote,
    store: &Store,
    name: &str,
    platform: &Platform,
    progress: &(dyn Progress + Sync),
) -> Result<Pulled, PullError> {
    let (client, r) = (&remote.client, remote.reference);
    let image = name.to_string();
    let reg = |what: &str| registry_error(name, what);
    let (bytes, id) = fetch_manifest(rt, remote, name, platform)?;
    let manifest: ImageManifest =
        serde_json::from_slice(&bytes).map_err(|source| PullError::Parse {
            image: image.clone(),
            what: format!("manifest {id}"),
            source,
        })?;
    let config_digest = manifest.config().digest().to_string();
    let mut config_bytes = Vec::new();
    rt.block_on(client.pull_blob(r, config_digest.as_str(), &mut config_bytes))
        .map_err(reg(&format!("fetch the config {config_digest}")))?;
    let actual = sha256(&config_bytes);
    if actual != config_digest {
        return Err(PullError::Mismatch {
            image,
            what: "config",
            digest: config_digest,
            actual,
        });
    }
    let config: oci_spec::image::ImageConfiguration = serde_json::from_slice(&config_bytes)
        .map_err(|source| PullError::Parse {
            image: image.clone(),
            what: format!("config {config_digest}"),
            source,
        })?;
    let diff_ids = config.rootfs().diff_ids().clone();
    let in_store = |source| PullError::Store {
        image: image.clone(),
        source,
    };
    // Every layer at once: one download future each on this runtime, one
    // unpack thread each (blocking tar code), a bounded channel between.
    let jobs = manifest.layers().iter().enumerate().map(|(i, l)| {
        let want = Expected {
            digest: l.digest().to_string(),
            size: Some(l.size()),
            diff_id: diff_ids.get(i).cloned(),
        };
        fetch_layer(client, r, store, want, progress)
    });
    let results = rt.block_on(futures_util::future::join_all(jobs));
    let (mut new_layers, mut shared_layers, mut fetched) = (0, 0, 0u64);
    for (l, result) in manifest.layers().iter().zip(results) {
        let layer = l.digest().to_string();
        match result {
            Layer::Fetched(n) => {
                new_layers += 1;
                fetched += n;
            }
            Layer::Present => shared_layers += 1,
            Layer::DownloadFailed(source) => {
                return Err(PullError::Download {
                    image,
                    layer,
                    source,
                })
            }
            Layer::Failed(e) => return Err(in_store(e)),
        }
    }
    store
        .put_blob(&config_digest, &config_bytes)
        .map_err(in_store)?;
    store.put_blob(&id, &bytes).map_err(in_store)?;
    store.tag(&image, &id).map_err(in_store)?;
    Ok(Pulled {
        name: image,
        id,
        new_layers,
        shared_layers,
        bytes: fetched,
        source: None,
    })
}

/// How one layer of a pull ended.
enum Layer {
    Fetched(u64),
    Present,
    DownloadFailed(io::Error),
    Failed(StoreError),
}

/// Installs one layer: an unpack thread takes the layer's lock and, if the
/// layer is absent, asks for its bytes, which this future streams to it.
async fn fetch_layer(
    client: &Client,
    r: &Reference,
    store: &Store,
    want: Expected,
    progress: &(dyn Progress + Sync),
) -> Layer {
    let layer = want.digest.clone();
    let size = want.size.unwrap_or(0);
    // The unpack thread says when to start, and from which byte.
    let (start_tx, start_rx) = tokio::sync::oneshot::channel::<u64>();
    let (data_tx, data_rx) = tokio::sync::mpsc::channel::<io::Result<Vec<u8>>>(8);
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let root = store.root().to_path_buf();
    let store = store.clone();
    std::thread::spawn(move || {
        let result = store.install_layer_resuming(&want, move |offset| {
            let _ = start_tx.send(offset);
            Ok(ChannelReader {
                rx: data_rx,
                buf: Vec::new(),
                pos: 0,
            })
        });
        let _ = done_tx.send(result);
    });
    let mut download_err = None;
    if let Ok(offset) = start_rx.await {
        progress.start(&layer, size);
        progress.bytes(&layer, offset);
        let fetch = async {
            let oci = |e: oci_client::errors::OciDistributionError| io::Error::other(e.to_string());
            // From `offset` on (a Range request) when an interrupted pull
            // kept the first bytes; a registry that answers with the whole
            // blob has those bytes skipped.
            let (mut stream, mut skip) = if offset == 0 {
                (
                    client
                        .pull_blob_stream(r, layer.as_str())
                        .await
                        .map_err(oci)?
                        .stream,
                    0,
                )
            } else {
                match client
                    .pull_blob_stream_partial(r, layer.as_str(), offset, None)
                    .await
                    .map_err(oci)?
                {
                    oci_client::client::BlobResponse::Partial(s) => (s.stream, 0),
                    oci_client::client::BlobResponse::Full(s) => (s.stream, offset),
                }
            };
            while let Some(chunk) = stream.next().await {
                let mut chunk = chunk?;
                if skip > 0 {
                    let n = skip.min(chunk.len() as u64);
                    skip -= n;
                    chunk = chunk.slice(n as usize..);
                    if chunk.is_empty() {
                        continue;
                    }
                }
                progress.bytes(&layer, chunk.len() as u64);
                if data_tx.send(Ok(chunk.to_vec())).await.is_err() {
                    break; // the unpacker gave up; its error says why
                }
            }
            Ok::<(), io::Error>(())
        };
        if let Err(e) = fetch.await {
            let _ = data_tx
                .send(Err(io::Error::new(e.kind(), e.to_string())))
                .await;
            download_err = Some(e);
        }
    }
    drop(data_tx);
    let result = done_rx.await.unwrap_or_else(|_| {
        Err(StoreError::Io {
            what: "unpack (thread died)",
            path: root,
            source: io::Error::other("the unpack thread ended without an answer"),
        })
    });
    match (result, download_err) {
        (_, Some(e)) => Layer::DownloadFailed(e),
        (Ok(Some(n)), None) => {
            progress.done(&layer);
            Layer::Fetched(n)
        }
        (Ok(None), None) => {
            progress.present(&layer);
            Layer::Present
        }
        (Err(e), None) => Layer::Failed(e),
    }
}
