//! Test images made from scratch: OCI image layouts written by the tests
//! themselves (layers built with the `tar` crate from busybox-static and
//! small files, blobs named by their sha256), optionally tarred or pushed
//! to a private `docker-registry` on 127.0.0.1 with `skopeo`.
//!
//! Runs in the test processes only.

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::{kill_registered, run, spawn_registered, wait_for};

/// How a layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

/// `sha256:HEX` of `bytes`.
pub fn sha256(bytes: &[u8]) -> String {
    let d = Sha256::digest(bytes);
    let hex: String = d.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// One layer's tar, built entry by entry.
pub struct Layer {
    b: tar::Builder<Vec<u8>>,
}

impl Default for Layer {
    fn default() -> Self {
        Self::new()
    }
}

fn header(kind: tar::EntryType, mode: u32, size: u64, uid: u64, gid: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_uid(uid);
    h.set_gid(gid);
    h.set_mtime(1_700_000_000);
    h
}

impl Layer {
    pub fn new() -> Self {
        Self {
            b: tar::Builder::new(Vec::new()),
        }
    }

    pub fn dir(mut self, path: &str, mode: u32) -> Self {
        let mut h = header(tar::EntryType::Directory, mode, 0, 0, 0);
        self.b.append_data(&mut h, path, &[][..]).expect("dir");
        self
    }

    pub fn file_owned(mut self, path: &str, mode: u32, uid: u64, data: &[u8]) -> Self {
        let mut h = header(tar::EntryType::Regular, mode, data.len() as u64, uid, uid);
        self.b.append_data(&mut h, path, data).expect("file");
        self
    }

    pub fn file(self, path: &str, mode: u32, data: &[u8]) -> Self {
        self.file_owned(path, mode, 0, data)
    }

    pub fn symlink(mut self, path: &str, target: &str) -> Self {
        let mut h = header(tar::EntryType::Symlink, 0o777, 0, 0, 0);
        self.b.append_link(&mut h, path, target).expect("symlink");
        self
    }

    pub fn hardlink(mut self, path: &str, target: &str) -> Self {
        let mut h = header(tar::EntryType::Link, 0o644, 0, 0, 0);
        self.b.append_link(&mut h, path, target).expect("hardlink");
        self
    }

    /// `.wh.NAME` beside `path`: `path` is deleted by this layer.
    pub fn whiteout(self, path: &str) -> Self {
        let p = Path::new(path);
        let name = p.file_name().expect("name").to_string_lossy();
        let parent = p
            .parent()
            .map(|d| d.display().to_string())
            .unwrap_or_default();
        let wh = if parent.is_empty() {
            format!(".wh.{name}")
        } else {
            format!("{parent}/.wh.{name}")
        };
        self.file(&wh, 0o644, b"")
    }

    /// `.wh..wh..opq` in `dir`: the lower layers' content of `dir` is hidden.
    pub fn opaque(self, dir: &str) -> Self {
        self.file(&format!("{dir}/.wh..wh..opq"), 0o644, b"")
    }

    /// An entry whose stored name is `raw` exactly (e.g. with `../`), which
    /// the tar crate's own path setters refuse to write.
    pub fn raw_file(mut self, raw: &str, data: &[u8]) -> Self {
        let mut h = header(tar::EntryType::Regular, 0o644, data.len() as u64, 0, 0);
        let name = &mut h.as_old_mut().name;
        name[..raw.len()].copy_from_slice(raw.as_bytes());
        h.set_cksum();
        self.b.append(&h, data).expect("raw entry");
        self
    }

    /// busybox-static as /bin/busybox with its applets as symlinks, and an
    /// /etc/passwd and /etc/group with a user `app` (1000:1000, also in
    /// group `wheel` 10).
    pub fn busybox_base() -> Self {
        let busybox = ["/bin/busybox", "/usr/bin/busybox"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("busybox-static is not installed (make deps)");
        let data = std::fs::read(busybox).expect("read busybox");
        let mut l = Self::new()
            .dir("bin", 0o755)
            .dir("etc", 0o755)
            .dir("tmp", 0o1777)
            .dir("proc", 0o555)
            .dir("sys", 0o555)
            .dir("dev", 0o755)
            .file("bin/busybox", 0o755, &data)
            .file(
                "etc/passwd",
                0o644,
                b"root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n",
            )
            .file(
                "etc/group",
                0o644,
                b"root:x:0:\nwheel:x:10:app\napp:x:1000:\n",
            );
        let list = run(Command::new(busybox).arg("--list"));
        for applet in String::from_utf8_lossy(&list.stdout).lines() {
            if applet != "busybox" {
                l = l.symlink(&format!("bin/{applet}"), "busybox");
            }
        }
        l
    }

    /// The uncompressed tar.
    pub fn finish(self) -> Vec<u8> {
        self.b.into_inner().expect("tar")
    }
}

/// Compresses a layer tar.
pub fn compress(tar: &[u8], c: Compression) -> Vec<u8> {
    match c {
        Compression::None => tar.to_vec(),
        Compression::Gzip => {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(tar).expect("gzip");
            gz.finish().expect("gzip")
        }
        Compression::Zstd => zstd::stream::encode_all(tar, 1).expect("zstd"),
    }
}

/// An OCI image layout directory being written.
pub struct Layout {
    pub dir: tempfile::TempDir,
    manifests: Vec<Value>,
}

impl Default for Layout {
    fn default() -> Self {
        Self::new()
    }
}

impl Layout {
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("oci-layout-")
            .tempdir_in("/tmp")
            .expect("tempdir");
        std::fs::create_dir_all(dir.path().join("blobs/sha256")).expect("mkdir");
        std::fs::write(
            dir.path().join("oci-layout"),
            br#"{"imageLayoutVersion":"1.0.0"}"#,
        )
        .expect("oci-layout");
        let l = Self {
            dir,
            manifests: Vec::new(),
        };
        l.write_index();
        l
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Stores a blob; returns its descriptor fields (digest, size).
    pub fn blob(&self, bytes: &[u8]) -> (String, u64) {
        let d = sha256(bytes);
        let hex = d.trim_start_matches("sha256:");
        std::fs::write(self.dir.path().join("blobs/sha256").join(hex), bytes).expect("blob");
        (d, bytes.len() as u64)
    }

    /// The path of blob `digest`, to corrupt it.
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        self.dir
            .path()
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"))
    }

    /// Adds an image named `name` with `layers` (uncompressed tars and how
    /// to store them) and `config` (the image config's `config` object).
    /// Returns the manifest digest and the layer blob digests.
    pub fn image(
        &mut self,
        name: &str,
        layers: &[(&[u8], Compression)],
        config: Value,
    ) -> (String, Vec<String>) {
        let mut descs = Vec::new();
        let mut diff_ids = Vec::new();
        let mut digests = Vec::new();
        for (tar, c) in layers {
            let blob = compress(tar, *c);
            let (d, size) = self.blob(&blob);
            let media = match c {
                Compression::None => "application/vnd.oci.image.layer.v1.tar",
                Compression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
                Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
            };
            descs.push(json!({"mediaType": media, "digest": d, "size": size}));
            diff_ids.push(sha256(tar));
            digests.push(d);
        }
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            a => a,
        };
        let cfg = json!({
            "architecture": arch,
            "os": "linux",
            "config": config,
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        });
        let (cd, cs) = self.blob(&serde_json::to_vec(&cfg).expect("json"));
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs},
            "layers": descs,
        });
        let (md, ms) = self.blob(&serde_json::to_vec(&manifest).expect("json"));
        self.manifests.push(json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": md,
            "size": ms,
            "annotations": {"org.opencontainers.image.ref.name": name},
        }));
        self.write_index();
        (md, digests)
    }

    /// Replaces the layout's images with one multi-platform index named
    /// `name` over `manifests` (each a manifest digest and its architecture).
    pub fn platform_index(&mut self, name: &str, manifests: &[(&str, &str)]) -> String {
        let entries: Vec<Value> = manifests
            .iter()
            .map(|(d, arch)| {
                let size = std::fs::metadata(self.blob_path(d))
                    .expect("manifest blob")
                    .len();
                json!({
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": d,
                    "size": size,
                    "platform": {"os": "linux", "architecture": arch},
                })
            })
            .collect();
        let index = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": entries,
        });
        let (d, size) = self.blob(&serde_json::to_vec(&index).expect("json"));
        self.manifests = vec![json!({
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": d,
            "size": size,
            "annotations": {"org.opencontainers.image.ref.name": name},
        })];
        self.write_index();
        d
    }

    /// Writes the layout's first image as `docker save` would: manifest.json
    /// naming `tags`, the config and uncompressed `layer.tar` files by path.
    pub fn docker_save(&self, layers: &[&[u8]], config: &[u8], tags: &[&str], to: &Path) {
        let f = std::fs::File::create(to).expect("create tar");
        let mut b = tar::Builder::new(f);
        let mut add = |path: &str, data: &[u8]| {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_entry_type(tar::EntryType::Regular);
            b.append_data(&mut h, path, data).expect("append");
        };
        let config_name = format!("{}.json", &sha256(config)[7..]);
        add(&config_name, config);
        let mut paths = Vec::new();
        for (i, l) in layers.iter().enumerate() {
            let p = format!("layer{i}/layer.tar");
            add(&p, l);
            paths.push(p);
        }
        let manifest = json!([{"Config": config_name, "RepoTags": tags, "Layers": paths}]);
        add(
            "manifest.json",
            &serde_json::to_vec(&manifest).expect("json"),
        );
        b.into_inner().expect("tar").sync_all().expect("sync");
    }

    fn write_index(&self) {
        let index = json!({"schemaVersion": 2, "manifests": self.manifests});
        std::fs::write(
            self.dir.path().join("index.json"),
            serde_json::to_vec(&index).expect("json"),
        )
        .expect("index.json");
    }

    /// The layout as a tar file (as `skopeo copy oci-archive:` writes).
    pub fn tar(&self, to: &Path) {
        let f = std::fs::File::create(to).expect("create tar");
        let mut b = tar::Builder::new(f);
        b.append_dir_all(".", self.dir.path()).expect("tar layout");
        b.finish().expect("tar");
    }
}

/// A private `docker-registry` (the CNCF distribution registry) listening
/// on 127.0.0.1, storage and config in a temp dir; killed on drop.
pub struct Registry {
    pub dir: tempfile::TempDir,
    pub addr: String,
    child: Option<Child>,
    /// A process whose network namespace the registry listens in (None:
    /// this one's).
    net_of: Option<u32>,
}

/// `program` as a command run in the network namespace of `net_of`.
fn in_net(net_of: Option<u32>, program: &Path) -> Command {
    match net_of {
        Some(pid) => {
            let mut c = Command::new("nsenter");
            c.args(["--net", "--target", &pid.to_string(), "--"])
                .arg(program);
            c
        }
        None => Command::new(program),
    }
}

/// Whether something accepts TCP connections on `addr` in the network
/// namespace of `net_of`.
fn listening(net_of: Option<u32>, addr: &str) -> bool {
    let addr = addr.to_string();
    let Some(pid) = net_of else {
        return std::net::TcpStream::connect(&addr).is_ok();
    };
    std::thread::spawn(move || {
        let Ok(ns) = std::fs::File::open(format!("/proc/{pid}/ns/net")) else {
            return false;
        };
        // SAFETY: setns on this short-lived thread with a valid namespace
        // fd; no other thread is affected.
        let rc = unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&ns), libc::CLONE_NEWNET) };
        rc == 0 && std::net::TcpStream::connect(&addr).is_ok()
    })
    .join()
    .unwrap_or(false)
}

/// A CA (`ca.crt`) and a server certificate for IP 127.0.0.1 signed by it
/// (`srv.crt`, `srv.key`) in `dir`, made with the openssl command.
fn make_certs(dir: &Path) {
    let ssl = |args: &[&str]| {
        let out = run(Command::new("openssl").args(args).current_dir(dir));
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut a = vec!["req", "-x509", "-days", "2", "-subj", "/CN=wren test CA"];
    a.extend(ec);
    a.extend(["-keyout", "ca.key", "-out", "ca.crt"]);
    ssl(&a);
    let mut a = vec!["req", "-subj", "/CN=127.0.0.1"];
    a.extend(ec);
    a.extend(["-keyout", "srv.key", "-out", "srv.csr"]);
    ssl(&a);
    std::fs::write(dir.join("ext"), "subjectAltName=IP:127.0.0.1\n").expect("ext");
    ssl(&[
        "x509",
        "-req",
        "-in",
        "srv.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "ext",
        "-out",
        "srv.crt",
    ]);
}

/// The registry binary Debian's docker-registry package installs.
pub fn registry_binary() -> Option<PathBuf> {
    ["/usr/bin/docker-registry", "/usr/sbin/docker-registry"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

impl Registry {
    /// A registry anyone may push to and pull from.
    pub fn start() -> Registry {
        Self::start_with(None, false)
    }

    /// A registry anyone may push to and pull from, on 127.0.0.1 of the
    /// network namespace of process `pid` (a CRI containerd's own), where
    /// its clients pull from it; pushes run there too.
    pub fn start_in_net_of(pid: u32) -> Registry {
        Self::start_full(None, false, Some(pid))
    }

    /// A registry served over TLS with a certificate for 127.0.0.1 from a
    /// CA the test makes (`ca.crt` in its dir, see [`Registry::ca`]).
    pub fn start_tls() -> Registry {
        Self::start_with(None, true)
    }

    /// The test CA's certificate (TLS registries only).
    pub fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.crt")
    }

    /// A registry that wants `user` / `password` (htpasswd, bcrypt) for
    /// everything.
    pub fn start_with_auth(user: &str, password: &str) -> Registry {
        Self::start_with(Some((user, password)), false)
    }

    fn start_with(auth: Option<(&str, &str)>, tls: bool) -> Registry {
        Self::start_full(auth, tls, None)
    }

    fn start_full(auth: Option<(&str, &str)>, tls: bool, net_of: Option<u32>) -> Registry {
        let dir = tempfile::Builder::new()
            .prefix("registry-")
            .tempdir_in("/tmp")
            .expect("tempdir");
        // In another namespace any port is as good (nothing else listens
        // there); here, one the kernel just handed out.
        let port = if net_of.is_some() {
            5000
        } else {
            TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("free port")
                .port()
        };
        let addr = format!("127.0.0.1:{port}");
        let mut config = format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n",
            dir.path().join("storage").display()
        );
        if tls {
            make_certs(dir.path());
            config.push_str(&format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                dir.path().join("srv.crt").display(),
                dir.path().join("srv.key").display()
            ));
        }
        if let Some((user, password)) = auth {
            let out = run(Command::new("htpasswd").args(["-Bbn", user, password]));
            assert!(out.status.success(), "htpasswd failed");
            let file = dir.path().join("htpasswd");
            std::fs::write(&file, &out.stdout).expect("htpasswd file");
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: wren-test\n    path: {}\n",
                file.display()
            ));
        }
        let cfg_path = dir.path().join("config.yml");
        std::fs::write(&cfg_path, config).expect("registry config");
        let bin = registry_binary().expect("docker-registry is not installed");
        let log = std::fs::File::create(dir.path().join("registry.log")).expect("log");
        let child = spawn_registered(
            in_net(net_of, &bin)
                .arg("serve")
                .arg(&cfg_path)
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("dup"))
                .stderr(log),
        );
        let up = wait_for(10, || listening(net_of, &addr));
        assert!(up, "docker-registry did not come up on {addr}");
        Registry {
            dir,
            addr,
            child: Some(child),
            net_of,
        }
    }

    /// Pushes image `tag` of `layout` to `REPO` here with skopeo.
    pub fn push(&self, layout: &Layout, tag: &str, repo: &str) {
        self.push_as(layout, tag, repo, None)
    }

    /// As `push`, with `user:password` credentials.
    pub fn push_as(&self, layout: &Layout, tag: &str, repo: &str, creds: Option<&str>) {
        let mut cmd = in_net(self.net_of, Path::new("skopeo"));
        cmd.args(["--insecure-policy", "copy", "--dest-tls-verify=false"]);
        if let Some(c) = creds {
            cmd.arg(format!("--dest-creds={c}"));
        }
        let out = run(cmd.args([
            &format!("oci:{}:{tag}", layout.path().display()),
            &format!("docker://{}/{repo}", self.addr),
        ]));
        assert!(
            out.status.success(),
            "skopeo copy: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        if let Some(c) = self.child.take() {
            kill_registered(c);
        }
    }
}
