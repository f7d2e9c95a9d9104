//! `ctr run` through the wren shim under a private containerd 1.6, with a
//! busybox image built here from Debian's busybox-static and imported as an
//! OCI layout tar: exit codes, stdout, and nothing left behind (shim process,
//! rootfs mount, cgroup).
//!
//! Needs root, `containerd`, `ctr`, `/bin/busybox` (busybox-static), `tar`,
//! `gzip`, `sha256sum` and a built `containerd-shim-wren-v2`
//! (`cargo build -p wren-shim`); without them each test says so and skips.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// One test at a time: `reap_all` (waitpid(-1)) in one test would steal the
/// `ctr` child another test is waiting for.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

const IMAGE: &str = "docker.io/library/wren-busybox:test";
const RUNTIME: &str = "io.containerd.wren.v2";

fn skip(why: &str) -> bool {
    eprintln!("SKIPPED: {why}");
    true
}

fn shim_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("WREN_SHIM_BIN") {
        return Some(p.into());
    }
    let exe = std::env::current_exe().ok()?;
    let bin = exe.parent()?.parent()?.join("containerd-shim-wren-v2");
    bin.exists().then_some(bin)
}

fn have(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {cmd}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Why this machine cannot run the tests, if it cannot.
fn cannot_run() -> bool {
    // SAFETY: geteuid(2) cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return skip("shim ctr tests need root");
    }
    for cmd in ["containerd", "ctr", "tar", "gzip", "sha256sum"] {
        if !have(cmd) {
            return skip(&format!("{cmd} not installed"));
        }
    }
    if !Path::new("/bin/busybox").exists() {
        return skip("/bin/busybox missing (apt-get install busybox-static)");
    }
    if shim_binary().is_none() {
        return skip("containerd-shim-wren-v2 not built (cargo build -p wren-shim)");
    }
    // Daemons we start are re-parented to us: reap them (PID 1 here does not).
    // SAFETY: prctl(PR_SET_CHILD_SUBREAPER) takes no pointers.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    false
}

fn reap_all() {
    // SAFETY: non-blocking waitpid on any child; the test owns all of them.
    while unsafe { libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) } > 0 {}
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        reap_all();
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn sha256(path: &Path) -> String {
    let out = run(Command::new("sha256sum").arg(path));
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// Moves `file` into `blobs/sha256/<digest>`; returns (digest, size).
fn add_blob(layout: &Path, file: &Path) -> (String, u64) {
    let digest = sha256(file);
    let size = std::fs::metadata(file).unwrap().len();
    std::fs::rename(file, layout.join("blobs/sha256").join(&digest)).unwrap();
    (format!("sha256:{digest}"), size)
}

/// Builds an OCI layout tar of a busybox image in `dir`; returns its path.
fn busybox_image(dir: &Path) -> PathBuf {
    let rootfs = dir.join("image-rootfs");
    let bin = rootfs.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    for d in ["proc", "sys", "dev", "tmp", "etc"] {
        std::fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", bin.join("busybox")).unwrap();
    let list = run(Command::new("/bin/busybox").arg("--list"));
    for applet in String::from_utf8_lossy(&list.stdout).split_whitespace() {
        if applet != "busybox" {
            std::os::unix::fs::symlink("busybox", bin.join(applet)).unwrap();
        }
    }
    let layout = dir.join("layout");
    std::fs::create_dir_all(layout.join("blobs/sha256")).unwrap();
    let layer = dir.join("layer.tar");
    run(Command::new("tar")
        .args(["--numeric-owner", "--owner=0", "--group=0", "-C"])
        .arg(&rootfs)
        .arg("-cf")
        .arg(&layer)
        .arg("."));
    let diff_id = format!("sha256:{}", sha256(&layer));
    run(Command::new("gzip").arg("-n").arg(&layer));
    let (layer_digest, layer_size) = add_blob(&layout, &dir.join("layer.tar.gz"));
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Env": ["PATH=/bin"], "Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    });
    let config_file = dir.join("config.json");
    std::fs::write(&config_file, config.to_string()).unwrap();
    let (config_digest, config_size) = add_blob(&layout, &config_file);
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": config_size,
        },
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": layer_digest,
            "size": layer_size,
        }],
    });
    let manifest_file = dir.join("manifest.json");
    std::fs::write(&manifest_file, manifest.to_string()).unwrap();
    let (manifest_digest, manifest_size) = add_blob(&layout, &manifest_file);
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest,
            "size": manifest_size,
            "annotations": {
                "io.containerd.image.name": IMAGE,
                "org.opencontainers.image.ref.name": "test",
            },
        }],
    });
    std::fs::write(layout.join("index.json"), index.to_string()).unwrap();
    std::fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    let tar = dir.join("busybox-oci.tar");
    run(Command::new("tar")
        .args(["--numeric-owner", "--owner=0", "--group=0", "-C"])
        .arg(&layout)
        .arg("-cf")
        .arg(&tar)
        .args(["index.json", "oci-layout", "blobs"]));
    tar
}

/// A private containerd: own root, state and sockets in a temp dir.
struct Containerd {
    dir: tempfile::TempDir,
    child: std::process::Child,
    namespace: String,
}

impl Containerd {
    fn start(namespace: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("bin")).unwrap();
        std::os::unix::fs::symlink(
            shim_binary().unwrap(),
            d.join("bin/containerd-shim-wren-v2"),
        )
        .unwrap();
        let config = format!(
            "version = 2\nroot = \"{0}/root\"\nstate = \"{0}/state\"\n\
             disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
             [grpc]\n  address = \"{0}/c.sock\"\n[ttrpc]\n  address = \"{0}/c.sock.ttrpc\"\n",
            d.display()
        );
        std::fs::write(d.join("config.toml"), config).unwrap();
        let path = format!(
            "{}:{}",
            d.join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let child = Command::new("containerd")
            .args([
                "--config",
                d.join("config.toml").to_str().unwrap(),
                "--log-level",
                "debug",
            ])
            .env("PATH", path)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(d.join("containerd.log")).unwrap())
            .spawn()
            .unwrap();
        let sock = d.join("c.sock");
        wait_until("containerd socket", || sock.exists());
        let c = Self {
            dir,
            child,
            namespace: namespace.to_string(),
        };
        let tar = busybox_image(c.dir.path());
        let out = c.ctr(&["images", "import", tar.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "import: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            c.log()
        );
        c
    }

    fn ctr(&self, args: &[&str]) -> Output {
        Command::new("ctr")
            .arg("--address")
            .arg(self.dir.path().join("c.sock"))
            .args(["--namespace", &self.namespace])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// `ctr run --rm` of `args` in container `id` with the wren runtime.
    fn run_rm(&self, id: &str, args: &[&str]) -> Output {
        let mut all = vec!["run", "--rm", "--runtime", RUNTIME, IMAGE, id];
        all.extend_from_slice(args);
        self.ctr(&all)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default()
    }

    /// Asserts no shim process, rootfs mount or cgroup of `id` is left.
    fn assert_clean(&self, id: &str) {
        wait_until("shim exit", || shim_pids(id).is_empty());
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let bundle_dir = self.dir.path().join("state");
        let left: Vec<_> = mounts
            .lines()
            .filter(|l| l.contains(id) && l.contains(bundle_dir.to_str().unwrap()))
            .collect();
        assert!(left.is_empty(), "mounts left behind: {left:?}");
        for entry in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
            let cg = entry.path().join(&self.namespace).join(id);
            assert!(!cg.exists(), "cgroup left behind: {}", cg.display());
        }
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        reap_all();
        // Unmount snapshots containerd may have left, then remove the dir.
        if let Ok(mounts) = std::fs::read_to_string("/proc/self/mountinfo") {
            let root = self.dir.path().to_string_lossy().into_owned();
            for target in mounts.lines().filter_map(|l| l.split(' ').nth(4)).rev() {
                if target.starts_with(&root) {
                    let _ = Command::new("umount").arg("-l").arg(target).status();
                }
            }
        }
        for entry in std::fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
        {
            let _ = std::fs::remove_dir(entry.path().join(&self.namespace));
        }
    }
}

fn shim_pids(id: &str) -> Vec<i32> {
    let mut pids = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<_> = cmd
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if args
            .first()
            .is_some_and(|a| a.ends_with("containerd-shim-wren-v2"))
            && args.windows(2).any(|w| w[0] == "-id" && w[1] == id)
        {
            let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
            if !stat.contains(") Z ") {
                pids.push(pid);
            }
        }
    }
    pids
}

#[test]
fn ctr_run_rm_reports_exit_codes_and_leaves_nothing() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if cannot_run() {
        return;
    }
    let ns = format!("wrenctr{}", std::process::id());
    let c = Containerd::start(&ns);

    let id = "wren-true";
    let out = c.run_rm(id, &["/bin/true"]);
    assert!(
        out.status.success(),
        "ctr run /bin/true: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        c.log()
    );
    c.assert_clean(id);

    let id = "wren-exit3";
    let out = c.run_rm(id, &["/bin/sh", "-c", "exit 3"]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "ctr run exit 3: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        c.log()
    );
    c.assert_clean(id);
}

#[test]
fn ctr_run_rm_delivers_stdout() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if cannot_run() {
        return;
    }
    let ns = format!("wrenout{}", std::process::id());
    let c = Containerd::start(&ns);
    let id = "wren-echo";
    let out = c.run_rm(id, &["/bin/echo", "hello"]);
    assert!(
        out.status.success(),
        "ctr run echo: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        c.log()
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello\n");
    c.assert_clean(id);
}

fn ok(out: &Output, what: &str, c: &Containerd) {
    assert!(
        out.status.success(),
        "{what}: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        c.log()
    );
}

#[test]
fn detached_run_exec_pause_metrics_kill_delete() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if cannot_run() {
        return;
    }
    let ns = format!("wrenexec{}", std::process::id());
    let c = Containerd::start(&ns);
    let id = "wren-detached";
    let out = c.ctr(&[
        "run",
        "-d",
        "--runtime",
        RUNTIME,
        IMAGE,
        id,
        "/bin/sleep",
        "60",
    ]);
    ok(&out, "ctr run -d", &c);

    let out = c.ctr(&[
        "task",
        "exec",
        "--exec-id",
        "e1",
        id,
        "/bin/echo",
        "from-exec",
    ]);
    ok(&out, "ctr task exec", &c);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "from-exec\n");

    let out = c.ctr(&["task", "ps", id]);
    ok(&out, "ctr task ps", &c);

    ok(&c.ctr(&["task", "pause", id]), "ctr task pause", &c);
    let out = c.ctr(&["task", "ls"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("PAUSED"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    ok(&c.ctr(&["task", "resume", id]), "ctr task resume", &c);

    let out = c.ctr(&["task", "metrics", id]);
    ok(&out, "ctr task metrics", &c);

    ok(
        &c.ctr(&["task", "kill", "-s", "KILL", id]),
        "ctr task kill",
        &c,
    );
    wait_until("the task to stop", || {
        String::from_utf8_lossy(&c.ctr(&["task", "ls"]).stdout).contains("STOPPED")
    });
    ok(&c.ctr(&["task", "rm", id]), "ctr task rm", &c);
    ok(&c.ctr(&["container", "rm", id]), "ctr container rm", &c);
    c.assert_clean(id);
}
