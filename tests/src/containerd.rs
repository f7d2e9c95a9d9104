//! A private containerd for the shim tests: its own root, state and sockets
//! in a temp dir, CRI disabled, `containerd-shim-wren-v2` on its PATH, and a
//! busybox image built here from Debian's busybox-static, imported as an OCI
//! layout tar. Every command goes through the reaper-aware [`crate::run`], so
//! the tests can run in parallel with the subreaper reaping shims.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

pub const IMAGE: &str = "docker.io/library/wren-busybox:test";
pub const RUNTIME: &str = "io.containerd.wren.v2";

/// The built shim, or `WREN_SHIM_BIN` (`make test` runs the shim suites
/// again on the musl release build that way).
pub fn shim_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("WREN_SHIM_BIN") {
        return Some(p.into());
    }
    let exe = std::env::current_exe().ok()?;
    let bin = exe.parent()?.parent()?.join("containerd-shim-wren-v2");
    bin.exists().then_some(bin)
}

fn have(cmd: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(cmd).exists()))
        .unwrap_or(false)
}

/// True when this machine can run the shim tests (root, containerd, ctr,
/// tar, gzip, busybox, a built shim); otherwise prints why the test skips.
pub fn shim_tests_can_run(test: &str) -> bool {
    if !crate::require_root(test) {
        return false;
    }
    let missing = ["containerd", "ctr", "tar", "gzip"]
        .into_iter()
        .find(|c| !have(c))
        .map(|c| format!("{c} is not installed"))
        .or_else(|| {
            (!Path::new("/bin/busybox").exists()).then(|| "busybox-static is not installed".into())
        })
        .or_else(|| {
            shim_binary()
                .is_none()
                .then(|| "containerd-shim-wren-v2 is not built".into())
        });
    match missing {
        Some(why) => {
            crate::skip(test, crate::Skip::Missing(why));
            false
        }
        None => true,
    }
}

fn ok_run(cmd: &mut Command) -> Output {
    let out = crate::run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Moves `file` into `blobs/sha256/<digest>`; returns (digest, size).
fn add_blob(layout: &Path, file: &Path) -> (String, u64) {
    let out = ok_run(Command::new("sha256sum").arg(file));
    let digest = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string();
    let size = std::fs::metadata(file).expect("blob").len();
    std::fs::rename(file, layout.join("blobs/sha256").join(&digest)).expect("move blob");
    (format!("sha256:{digest}"), size)
}

/// Build an OCI layout tar of a busybox image in `dir`; returns its path.
pub fn busybox_image(dir: &Path) -> PathBuf {
    let rootfs = dir.join("image-rootfs");
    let bin = rootfs.join("bin");
    for d in ["bin", "proc", "sys", "dev", "tmp", "etc"] {
        std::fs::create_dir_all(rootfs.join(d)).expect("mkdir");
    }
    std::fs::copy("/bin/busybox", bin.join("busybox")).expect("copy busybox");
    let list = ok_run(Command::new("/bin/busybox").arg("--list"));
    for applet in String::from_utf8_lossy(&list.stdout).split_whitespace() {
        if applet != "busybox" {
            std::os::unix::fs::symlink("busybox", bin.join(applet)).expect("symlink");
        }
    }
    image_tar(
        dir,
        &rootfs,
        IMAGE,
        serde_json::json!({"Env": ["PATH=/bin"], "Cmd": ["/bin/sh"]}),
    )
}

/// An OCI layout tar in `dir` (named after `name`) of one layer made of
/// `rootfs`, with image config `config`; returns its path.
pub fn image_tar(dir: &Path, rootfs: &Path, name: &str, config: serde_json::Value) -> PathBuf {
    let work = dir.join(format!(
        "image-{}",
        name.replace(|c: char| !c.is_ascii_alphanumeric(), "_")
    ));
    std::fs::create_dir_all(&work).expect("mkdir");
    let dir = work.as_path();
    let rootfs = rootfs.to_path_buf();
    let layout = dir.join("layout");
    std::fs::create_dir_all(layout.join("blobs/sha256")).expect("mkdir");
    let tar = |src: &Path, out: &Path, what: &[&str]| {
        ok_run(
            Command::new("tar")
                .args(["--numeric-owner", "--owner=0", "--group=0", "-C"])
                .arg(src)
                .arg("-cf")
                .arg(out)
                .args(what),
        );
    };
    let layer = dir.join("layer.tar");
    tar(&rootfs, &layer, &["."]);
    let out = ok_run(Command::new("sha256sum").arg(&layer));
    let diff_id = format!(
        "sha256:{}",
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .next()
            .unwrap_or_default()
    );
    ok_run(Command::new("gzip").arg("-n").arg(&layer));
    let (layer_digest, layer_size) = add_blob(&layout, &dir.join("layer.tar.gz"));
    let blob = |name: &str, value: serde_json::Value| {
        let f = dir.join(name);
        std::fs::write(&f, value.to_string()).expect("write blob");
        add_blob(&layout, &f)
    };
    let (config_digest, config_size) = blob(
        "config.json",
        serde_json::json!({
            "architecture": "amd64", "os": "linux",
            "config": config,
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        }),
    );
    let (manifest_digest, manifest_size) = blob(
        "manifest.json",
        serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_size},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer_digest, "size": layer_size}],
        }),
    );
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest, "size": manifest_size,
            "annotations": {"io.containerd.image.name": name, "org.opencontainers.image.ref.name": "test"},
        }],
    });
    std::fs::write(layout.join("index.json"), index.to_string()).expect("index");
    std::fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .expect("oci-layout");
    let out = dir.join("image-oci.tar");
    tar(&layout, &out, &["index.json", "oci-layout", "blobs"]);
    out
}

/// Runs `body` with a private containerd of each version of the matrix
/// (the host's, trixie's 1.7, sid's 2.1; a missing tree is a recorded
/// skip), namespace `ns` plus the version's label.
pub fn for_each_version(test: &str, ns: &str, image: bool, body: impl Fn(&mut Containerd)) {
    for suite in crate::tree::MATRIX {
        let tree = match suite {
            None => None,
            Some(s) => match crate::tree::get(test, s) {
                Some(t) => Some(t),
                None => continue,
            },
        };
        let label = crate::tree::label(suite);
        eprintln!("== {test} under containerd of {label}");
        let mut c = Containerd::start_in(tree.as_deref(), &format!("{ns}{label}"), image, None);
        body(&mut c);
    }
}

/// A private containerd: the host's, or one from a Debian tree
/// ([`crate::tree`]) run in its own mount and pid namespace with the tree
/// as its root.
pub struct Containerd {
    /// Its directory as this process sees it (inside the tree, if any).
    pub dir: tempfile::TempDir,
    /// The same directory as containerd sees it (equal without a tree).
    pub inner: PathBuf,
    /// The tree containerd runs in.
    pub tree: Option<PathBuf>,
    /// containerd runs in a network namespace of its own (with CRI).
    pub own_net: bool,
    child: Option<Child>,
    /// A containerd restarted inside the tree's namespaces (`nsenter`).
    restarted: Option<Child>,
    pub namespace: String,
}

impl Containerd {
    /// Start containerd; with `image`, import the busybox image too.
    pub fn start(namespace: &str, image: bool) -> Containerd {
        Self::start_with(namespace, image, None)
    }

    /// Start containerd with its CRI plugin configured by `cri` (TOML
    /// tables under `[plugins."io.containerd.grpc.v1.cri"]`, where `{dir}`
    /// stands for this containerd's directory), or without CRI.
    pub fn start_with(namespace: &str, image: bool, cri: Option<&str>) -> Containerd {
        Self::start_in(None, namespace, image, cri)
    }

    /// [`Containerd::start_with`] of the containerd in `tree` (None: the
    /// host's); `cri` must suit that containerd's config version.
    pub fn start_in(
        tree: Option<&Path>,
        namespace: &str,
        image: bool,
        cri: Option<&str>,
    ) -> Containerd {
        let dir = match tree {
            Some(t) => tempfile::tempdir_in(t.join("tmp")).expect("tempdir in the tree"),
            None => tempfile::tempdir().expect("tempdir"),
        };
        let d = dir.path();
        let inner = match tree {
            Some(t) => Path::new("/").join(d.strip_prefix(t).expect("inside the tree")),
            None => d.to_path_buf(),
        };
        std::fs::create_dir_all(d.join("bin")).expect("mkdir");
        let shim = shim_binary().expect("containerd-shim-wren-v2 is not built");
        if tree.is_some() {
            // The host's paths are gone in the tree: a copy, not a link.
            std::fs::copy(shim, d.join("bin/containerd-shim-wren-v2")).expect("copy shim");
        } else {
            std::os::unix::fs::symlink(shim, d.join("bin/containerd-shim-wren-v2"))
                .expect("symlink");
        }
        let version = if tree.is_some_and(|t| crate::tree::containerd_major(t) >= 2) {
            3
        } else {
            2
        };
        // Top-level keys first: after a table header they would belong to it.
        let (top, tables) = match cri {
            Some(tables) => (
                String::new(),
                tables.replace("{dir}", &inner.display().to_string()),
            ),
            None if version >= 3 => (
                "disabled_plugins = [\"io.containerd.cri.v1.runtime\", \
                 \"io.containerd.cri.v1.images\", \"io.containerd.grpc.v1.cri\"]\n"
                    .into(),
                String::new(),
            ),
            None => (
                "disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n".into(),
                String::new(),
            ),
        };
        // containerd 2.x starts NRI by default, on the host-wide
        // /var/run/nri/nri.sock: a second private containerd (tests run in
        // parallel) then dies with "address already in use". Its own socket.
        let nri = if version >= 3 {
            format!(
                "[plugins.\"io.containerd.nri.v1.nri\"]\n  socket_path = \"{}/nri.sock\"\n",
                inner.display()
            )
        } else {
            String::new()
        };
        let config = format!(
            "version = {version}\nroot = \"{0}/root\"\nstate = \"{0}/state\"\n{top}\
             [grpc]\n  address = \"{0}/c.sock\"\n[ttrpc]\n  address = \"{0}/c.sock.ttrpc\"\n{nri}{tables}",
            inner.display(),
        );
        std::fs::write(d.join("config.toml"), config).expect("config");
        // With CRI, containerd gets a network namespace of its own: the CNI
        // bridge, veths and rules of its pods stay inside it.
        let own_net = cri.is_some();
        let child = launch(d, &inner, tree, own_net);
        let c = Containerd {
            own_net,
            dir,
            inner,
            tree: tree.map(Path::to_path_buf),
            child: Some(child),
            restarted: None,
            namespace: namespace.to_string(),
        };
        if image {
            let tar = busybox_image(c.dir.path());
            let tar = c.inner_path(&tar);
            let out = c.ctr(&["images", "import", tar.to_str().expect("utf-8")]);
            assert!(
                out.status.success(),
                "import: {}\n{}",
                String::from_utf8_lossy(&out.stderr),
                c.log()
            );
        }
        c
    }

    /// Kills containerd (SIGKILL, as a crash would) and starts it again on
    /// the same root, state and sockets; running shims stay. In a tree only
    /// the containerd process dies: the namespaces' first process (a
    /// reaper shell) keeps them and the shims alive, and the new containerd
    /// is started inside them.
    pub fn restart(&mut self) {
        let _ = std::fs::remove_file(self.dir.path().join("c.sock"));
        if self.tree.is_none() {
            if let Some(child) = self.child.take() {
                crate::kill_registered(child);
            }
            self.child = Some(launch(
                self.dir.path(),
                &self.inner,
                self.tree.as_deref(),
                self.own_net,
            ));
            return;
        }
        let pid1 = self.pid().expect("the tree's namespaces");
        let ns = std::fs::read_link(format!("/proc/{pid1}/ns/pid")).ok();
        if let Some(old) = self.restarted.take() {
            crate::kill_registered(old);
        }
        for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let comm = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
            if comm.trim() == "containerd" && std::fs::read_link(e.path().join("ns/pid")).ok() == ns
            {
                if let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() {
                    // SAFETY: kill(2) with plain integers.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
        }
        let log = std::fs::OpenOptions::new()
            .append(true)
            .open(self.dir.path().join("containerd.log"))
            .expect("log");
        let mut cmd = Command::new("nsenter");
        cmd.args(["--mount", "--pid", "--target", &pid1.to_string()]);
        if self.own_net {
            cmd.arg("--net");
        }
        cmd.args(["--", "containerd", "--config"])
            .arg(self.inner.join("config.toml"))
            .args(["--log-level", "debug"])
            .env("PATH", tree_path(&self.inner))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        self.restarted = Some(crate::spawn_registered(&mut cmd));
        let sock = self.dir.path().join("c.sock");
        assert!(
            crate::wait_for(10, || sock.exists()),
            "containerd did not restart: {}",
            self.log()
        );
    }

    /// The shim's socket path of a running task (from its bundle's
    /// `address` file), to check later that it was removed.
    pub fn shim_socket(&self, id: &str) -> PathBuf {
        let address = std::fs::read_to_string(
            self.dir
                .path()
                .join("state/io.containerd.runtime.v2.task")
                .join(&self.namespace)
                .join(id)
                .join("address"),
        )
        .expect("the task's address file");
        self.host_path(Path::new(address.trim().trim_start_matches("unix://")))
    }

    /// A ttrpc client on a running task's shim, for the calls `ctr` cannot
    /// make. Inside a tree the socket's path is longer than sun_path
    /// allows: it is reached through an fd of its directory.
    pub fn shim_client(&self, id: &str) -> wren_ttrpc::client::Client {
        let socket = self.shim_socket(id);
        let dir = std::fs::File::open(socket.parent().expect("socket dir"))
            .expect("open the socket's directory");
        let short = format!(
            "/proc/self/fd/{}/{}",
            std::os::fd::AsRawFd::as_raw_fd(&dir),
            socket.file_name().expect("name").to_string_lossy()
        );
        wren_ttrpc::client::Client::connect(&short, std::time::Duration::from_secs(5))
            .expect("connect to the shim")
    }

    /// Calls the shim's Task `method` for task `id` with `req`, in this
    /// containerd's namespace.
    pub fn shim_call(
        &self,
        client: &mut wren_ttrpc::client::Client,
        method: &str,
        req: &impl protobuf::Message,
        timeout: std::time::Duration,
    ) -> Result<Vec<u8>, wren_ttrpc::client::CallError> {
        client.call(
            wren_protocol::services::TASK_V2,
            method,
            req.write_to_bytes().expect("encode"),
            &[(
                wren_protocol::services::NAMESPACE_METADATA_KEY,
                self.namespace.as_str(),
            )],
            timeout,
        )
    }

    /// A `ctr` command line (not run), for callers that need to spawn it.
    pub fn ctr_command(&self, args: &[&str]) -> Command {
        let mut cmd = match (&self.tree, &self.child) {
            // The tree's ctr, in containerd's mount namespace (its FIFOs
            // and paths must be the ones containerd and the shim see).
            (Some(_), Some(child)) => {
                let pid = containerd_pid(child.id());
                let mut c = Command::new("nsenter");
                c.args([
                    "--mount",
                    "--pid",
                    "--target",
                    &pid.to_string(),
                    "--",
                    "ctr",
                ]);
                c
            }
            _ => Command::new("ctr"),
        };
        cmd.arg("--address")
            .arg(self.inner.join("c.sock"))
            .args(["--namespace", &self.namespace])
            .args(args);
        cmd
    }

    /// The pid (in this pid namespace) of containerd, or with a tree of the
    /// first process of its namespaces (mount, pid and, with CRI, network).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| containerd_pid(c.id()))
    }

    /// Runs `script` with `sh -ec` in containerd's mount namespace (the
    /// tree's, or this one when containerd runs on the host's root): for
    /// mounts that containerd, its shims and pods must see.
    pub fn sh(&self, script: &str) -> Output {
        let mut cmd = match (&self.tree, self.pid()) {
            (Some(_), Some(pid)) => {
                let mut c = Command::new("nsenter");
                c.args(["--mount", "--target", &pid.to_string(), "--", "sh"]);
                c
            }
            _ => Command::new("sh"),
        };
        crate::run(cmd.args(["-ec", script]))
    }

    /// A pid containerd reported (in its own pid namespace when it runs in
    /// a tree) as this process sees it; 0 when no such process is alive.
    pub fn host_pid(&self, pid: i64) -> i64 {
        let Some(pid1) = self.pid().filter(|_| self.tree.is_some()) else {
            return pid;
        };
        // Field 22 of stat: the start time, the same in every pid namespace.
        let start = |stat: String| -> Option<String> {
            let after = stat.rsplit_once(')')?.1.to_string();
            after.split_whitespace().nth(19).map(str::to_string)
        };
        let Some(want) = std::fs::read_to_string(format!("/proc/{pid1}/root/proc/{pid}/stat"))
            .ok()
            .and_then(start)
        else {
            return 0;
        };
        for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(p) = e.file_name().to_string_lossy().parse::<i64>() else {
                continue;
            };
            let status = std::fs::read_to_string(e.path().join("status")).unwrap_or_default();
            let nspid: Vec<i64> = status
                .lines()
                .find_map(|l| l.strip_prefix("NSpid:"))
                .map(|v| {
                    v.split_whitespace()
                        .filter_map(|x| x.parse().ok())
                        .collect()
                })
                .unwrap_or_default();
            if nspid.get(1) == Some(&pid)
                && std::fs::read_to_string(e.path().join("stat"))
                    .ok()
                    .and_then(start)
                    .as_ref()
                    == Some(&want)
            {
                return p;
            }
        }
        0
    }

    /// `path` as containerd sees it (e.g. a rootfs mounted in the tree's
    /// mount namespace), reachable from this process.
    pub fn ns_path(&self, path: &Path) -> PathBuf {
        match (&self.tree, self.pid()) {
            (Some(_), Some(pid1)) => Path::new(&format!("/proc/{pid1}/root"))
                .join(path.strip_prefix("/").unwrap_or(path)),
            _ => path.to_path_buf(),
        }
    }

    /// The path of the pid namespace containerd's shims run in, as they
    /// see it: for a host-pid-namespace container.
    pub fn own_pid_ns(&self) -> String {
        match self.tree {
            Some(_) => "/proc/1/ns/pid".into(),
            None => format!("/proc/{}/ns/pid", std::process::id()),
        }
    }

    /// `path` (under this containerd's directory) as containerd sees it.
    pub fn inner_path(&self, path: &Path) -> PathBuf {
        match path.strip_prefix(self.dir.path()) {
            Ok(rel) => self.inner.join(rel),
            Err(_) => path.to_path_buf(),
        }
    }

    /// A path containerd reported (inside its tree) as this process sees
    /// it (the tree's root is containerd's `/`).
    pub fn host_path(&self, path: &Path) -> PathBuf {
        match (&self.tree, path.strip_prefix("/")) {
            (Some(t), Ok(rel)) => t.join(rel),
            _ => path.to_path_buf(),
        }
    }

    pub fn ctr(&self, args: &[&str]) -> Output {
        crate::run(&mut self.ctr_command(args))
    }

    /// `ctr run --rm` of `args` in container `id` with the wren runtime.
    pub fn run_rm(&self, id: &str, args: &[&str]) -> Output {
        let mut all = vec!["run", "--rm", "--runtime", RUNTIME, IMAGE, id];
        all.extend_from_slice(args);
        self.ctr(&all)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default()
    }

    /// Assert no shim process, rootfs mount or cgroup of `id` is left.
    pub fn assert_clean(&self, id: &str) {
        assert!(
            crate::wait_for(10, || shim_pids_in(&self.namespace, id).is_empty()),
            "shim of {id} did not exit"
        );
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let state = self.dir.path().join("state");
        let state = state.to_string_lossy();
        let left: Vec<_> = mounts
            .lines()
            .filter(|l| l.contains(id) && l.contains(&*state))
            .collect();
        assert!(left.is_empty(), "mounts left behind: {left:?}");
        for entry in std::fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
        {
            let cg = entry.path().join(&self.namespace).join(id);
            assert!(!cg.exists(), "cgroup left behind: {}", cg.display());
        }
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        if let Some(child) = self.restarted.take() {
            crate::kill_registered(child);
        }
        if let Some(child) = self.child.take() {
            crate::kill_registered(child);
        }
        // `k8s.io` (CRI) is not ours alone: its cgroups are the pods'
        // parents (the CRI client removes them) and its runtime state root
        // is inside this containerd's directory.
        let unique = self.namespace != "k8s.io";
        // A failed test may leave shims and containers of this namespace:
        // kill them (cgroup members first, so nothing is re-parented and
        // left running), so the next run starts clean.
        for entry in std::fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
            .filter(|_| unique)
        {
            let ns_dir = entry.path().join(&self.namespace);
            for c in std::fs::read_dir(&ns_dir).into_iter().flatten().flatten() {
                let procs =
                    std::fs::read_to_string(c.path().join("cgroup.procs")).unwrap_or_default();
                for pid in procs.lines().filter_map(|p| p.parse::<i32>().ok()) {
                    // SAFETY: kill(2) with plain integers.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
        }
        for pid in all_shims_in(&self.namespace, &self.inner) {
            // SAFETY: kill(2) with plain integers.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        crate::reap();
        // Unmount snapshots containerd may have left, then drop the
        // namespace's cgroup parents.
        let root = self.dir.path().to_string_lossy().into_owned();
        if let Ok(mounts) = std::fs::read_to_string("/proc/self/mountinfo") {
            for target in mounts.lines().filter_map(|l| l.split(' ').nth(4)).rev() {
                if target.starts_with(&root) {
                    let _ = crate::run(Command::new("umount").arg("-l").arg(target));
                }
            }
        }
        for entry in std::fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
            .filter(|_| unique)
        {
            let ns_dir = entry.path().join(&self.namespace);
            for c in std::fs::read_dir(&ns_dir).into_iter().flatten().flatten() {
                if c.path().is_dir() {
                    let _ = crate::wait_for(2, || std::fs::remove_dir(c.path()).is_ok());
                }
            }
            let _ = std::fs::remove_dir(ns_dir);
        }
        // The runtimes' state roots for this (unique) namespace: the shim
        // keeps them, as containerd-shim-runc-v2 does, so one test run would
        // otherwise leave a directory per test behind.
        for runtime in ["wren", "runc"].into_iter().filter(|_| unique) {
            let _ = std::fs::remove_dir_all(
                Path::new("/run/containerd")
                    .join(runtime)
                    .join(&self.namespace),
            );
        }
        crate::reap();
    }
}

/// PATH inside a tree: the test's shim first.
fn tree_path(inner: &Path) -> String {
    format!(
        "{}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        inner.join("bin").display()
    )
}

fn launch(d: &Path, inner: &Path, tree: Option<&Path>, own_net: bool) -> Child {
    let path = if tree.is_some() {
        tree_path(inner)
    } else {
        format!(
            "{}:{}",
            inner.join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        )
    };
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(d.join("containerd.log"))
        .expect("log");
    let config = inner.join("config.toml");
    let mut cmd = match tree {
        // Its own mount and pid namespace with the tree as its root
        // (pivot_root, not chroot: under a chroot `task exec` would land in
        // the host's root). The namespaces' first process is a reaper
        // shell, so containerd alone can be killed and restarted
        // ([`Containerd::restart`]). Killing `unshare` takes the reaper,
        // containerd, its shims and their containers with it. The tree's
        // /run stays on disk, so the tests can reach the shims' sockets
        // under it.
        Some(t) => {
            let mut c = Command::new("unshare");
            if own_net {
                c.arg("--net");
            }
            c.args([
                "--mount",
                "--pid",
                "--fork",
                "--kill-child",
                "--propagation",
                "private",
                "--",
                "/bin/sh",
                "-ec",
                r#"T=$1; C=$2
ip link set lo up 2>/dev/null || true
mount --bind "$T" "$T"; mount --make-private "$T"
mount -t proc proc "$T/proc"
mount --rbind /sys "$T/sys"; mount --make-rslave "$T/sys"
mount --rbind /dev "$T/dev"; mount --make-rslave "$T/dev"
mkdir -p "$T/.oldroot"
cd "$T"; pivot_root . .oldroot; cd /
umount -l /.oldroot
containerd --config "$C" --log-level debug &
while :; do wait || :; sleep 1; done"#,
                "sh",
            ])
            .arg(t)
            .arg(&config);
            c
        }
        None if own_net => {
            let mut c = Command::new("unshare");
            c.args([
                "--net",
                "--",
                "/bin/sh",
                "-ec",
                "ip link set lo up; exec containerd --config \"$1\" --log-level debug",
                "sh",
            ])
            .arg(&config);
            c
        }
        None => {
            let mut c = Command::new("containerd");
            c.arg("--config")
                .arg(&config)
                .args(["--log-level", "debug"]);
            c
        }
    };
    cmd.env("PATH", path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    let child = crate::spawn_registered(&mut cmd);
    let sock = d.join("c.sock");
    assert!(
        // 30 s: containerd 1.6 with CRI took over 10 s in the TCG VM on a
        // loaded machine (cgroup_v2_vm.rs).
        crate::wait_for(30, || sock.exists()),
        "containerd did not start: {}",
        std::fs::read_to_string(d.join("containerd.log")).unwrap_or_default()
    );
    child
}

/// The process that holds containerd's namespaces: containerd itself
/// without a tree, the tree's reaper shell (`unshare`'s child) with one.
fn containerd_pid(child: u32) -> u32 {
    let comm = std::fs::read_to_string(format!("/proc/{child}/comm")).unwrap_or_default();
    if comm.trim() == "containerd" {
        return child;
    }
    std::fs::read_to_string(format!("/proc/{child}/task/{child}/children"))
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|p| p.parse().ok()))
        .unwrap_or(child)
}

/// Every live shim daemon of containerd namespace `ns` started by the
/// containerd in `dir` (its `-address` is there): never another
/// containerd's, which may use the same namespace (`k8s.io`).
pub fn all_shims_in(ns: &str, dir: &Path) -> Vec<i32> {
    let mut pids = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmd.split(|b| *b == 0).collect();
        // The daemon runs with no action; a `start`, `delete` or `-info`
        // run of the same binary (containerd's, or a second container's
        // start finding the pod's shim) is short-lived and not a shim.
        let is_shim = args
            .first()
            .is_some_and(|a| a.ends_with(b"containerd-shim-wren-v2"))
            && !args
                .iter()
                .any(|a| matches!(*a, b"start" | b"delete" | b"-info" | b"-v"));
        let ours = args.windows(2).any(|w| {
            w[0] == b"-address" && Path::new(&*String::from_utf8_lossy(w[1])).starts_with(dir)
        });
        if is_shim
            && ours
            && args
                .windows(2)
                .any(|w| w[0] == b"-namespace" && w[1] == ns.as_bytes())
        {
            pids.push(pid);
        }
    }
    pids
}

/// Asserts that a `ctr` call succeeded; on failure shows its stderr and the
/// tail of containerd's log. Returns its stdout.
pub fn ok(out: &Output, what: &str, c: &Containerd) -> String {
    assert!(
        out.status.success(),
        "{what}: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        c.log()
            .lines()
            .rev()
            .take(40)
            .collect::<Vec<_>>()
            .join("\n")
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `ctr run -d` of `args` in container `id` with the wren runtime and the
/// test image, with extra ctr `flags`; asserts it succeeded.
pub fn run_detached(c: &Containerd, id: &str, flags: &[&str], args: &[&str]) {
    let mut all = vec!["run", "-d", "--runtime", RUNTIME];
    all.extend_from_slice(flags);
    all.extend_from_slice(&[IMAGE, id]);
    all.extend_from_slice(args);
    ok(&c.ctr(&all), "ctr run -d", c);
}

/// The PID and STATUS columns of `id` in `ctr task ls` (None: no task).
pub fn task(c: &Containerd, id: &str) -> Option<(i64, String)> {
    let out = c.ctr(&["task", "ls"]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|cols| cols.first() == Some(&id))
        .map(|cols| {
            (
                cols.get(1).and_then(|p| p.parse().ok()).unwrap_or(0),
                cols.get(2).unwrap_or(&"").to_string(),
            )
        })
}

/// `id`'s task status (`RUNNING`, `STOPPED`, ...), or "" without a task.
pub fn task_status(c: &Containerd, id: &str) -> String {
    task(c, id).map(|t| t.1).unwrap_or_default()
}

/// `id`'s task pid, or 0 without a task.
pub fn task_pid(c: &Containerd, id: &str) -> i64 {
    task(c, id).map_or(0, |t| t.0)
}

/// Live shim daemons serving container `id` in containerd namespace `ns`.
pub fn shim_pids_in(ns: &str, id: &str) -> Vec<i32> {
    shim_pids(id)
        .into_iter()
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| {
                    c.split(|b| *b == 0)
                        .collect::<Vec<_>>()
                        .windows(2)
                        .any(|w| w[0] == b"-namespace" && w[1] == ns.as_bytes())
                })
                .unwrap_or(false)
        })
        .collect()
}

/// Live (non-zombie) shim daemons serving container `id`.
pub fn shim_pids(id: &str) -> Vec<i32> {
    let mut pids = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmd
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let is_shim = args
            .first()
            .is_some_and(|a| a.ends_with("containerd-shim-wren-v2"))
            && args.windows(2).any(|w| w[0] == "-id" && w[1] == id);
        if is_shim
            && !std::fs::read_to_string(e.path().join("stat"))
                .unwrap_or_default()
                .contains(") Z ")
        {
            pids.push(pid);
        }
    }
    pids
}
