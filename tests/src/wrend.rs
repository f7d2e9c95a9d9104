//! A private `wrend` per test: its own `--root` temp dir (socket, state,
//! records, shim sockets, runtime state all under it), the `wren` CLI
//! pointed at it, and checks that nothing of a container is left behind.
//!
//! Runs in the test processes only.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::{bin, cgroup_dirs, kill_registered, run, spawn_registered, unregister, wait_for};

/// One wrend under test.
pub struct Wrend {
    pub root: tempfile::TempDir,
    child: Option<Child>,
    extra: Vec<String>,
    /// A process holding the network namespace wrend runs in (see
    /// [`Wrend::start_in_netns`]).
    netns_holder: Option<Child>,
    env: Vec<(String, String)>,
}

impl Wrend {
    /// Starts wrend with a private root; `extra` are more wrend flags.
    /// Its containers get `--network none` unless they ask for another
    /// (wrend's own default, bridge, would put a bridge and iptables rules
    /// in the host's namespace): use [`Wrend::start_in_netns`] for that.
    pub fn start(extra: &[&str]) -> Wrend {
        let mut extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        if !extra.iter().any(|a| a.starts_with("--default-network")) {
            extra.push("--default-network=none".into());
        }
        let mut w = Wrend {
            root: new_root(),
            child: None,
            extra,
            netns_holder: None,
            env: Vec::new(),
        };
        w.spawn();
        w
    }

    /// Starts wrend inside a network namespace of the test's own (a holder
    /// process keeps it across wrend restarts; `lo` is up): its bridges,
    /// veths and iptables rules never touch the host's. `env` is added to
    /// wrend's environment (and so its network helper's).
    pub fn start_in_netns(extra: &[&str], env: &[(&str, &str)]) -> Wrend {
        let holder = spawn_registered(
            Command::new("unshare")
                .args(["--net", "sleep", "infinity"])
                .stdin(Stdio::null()),
        );
        let ns = format!("/proc/{}/ns/net", holder.id());
        assert!(
            wait_for(5, || std::fs::read_link(&ns).ok()
                != std::fs::read_link("/proc/self/ns/net").ok()),
            "unshare --net did not start"
        );
        let mut w = Wrend {
            root: new_root(),
            child: None,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            netns_holder: Some(holder),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        let lo = w.in_netns(&["ip", "link", "set", "lo", "up"]);
        assert!(lo.status.success(), "lo up: {}", crate::text(&lo.stderr));
        w.spawn();
        w
    }

    /// `/proc/PID/ns/net` of wrend's network namespace (None: the host's).
    pub fn netns(&self) -> Option<String> {
        self.netns_holder
            .as_ref()
            .map(|h| format!("/proc/{}/ns/net", h.id()))
    }

    /// Runs `args` in wrend's network namespace.
    pub fn in_netns(&self, args: &[&str]) -> Output {
        let mut c = match self.netns() {
            Some(ns) => {
                let mut c = Command::new("nsenter");
                c.arg(format!("--net={ns}")).args(args);
                c
            }
            None => {
                let mut c = Command::new(args[0]);
                c.args(&args[1..]);
                c
            }
        };
        run(&mut c)
    }

    /// Runs `f` on a thread inside wrend's network namespace.
    pub fn on_netns<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        crate::on_netns(self.netns().map(PathBuf::from), f)
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.root.path().join("wrend.log"))
            .expect("wrend.log");
        let mut cmd = match self.netns() {
            Some(ns) => {
                // nsenter execs wrend: the child's pid is wrend's.
                let mut c = Command::new("nsenter");
                c.arg(format!("--net={ns}")).arg(bin("wrend"));
                c
            }
            None => Command::new(bin("wrend")),
        };
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        // `make test` runs the wrend suites again on the musl release shim.
        if let Some(shim) = std::env::var_os("WREN_SHIM_BIN").filter(|s| !s.is_empty()) {
            cmd.arg("--shim").arg(shim);
        }
        let child = spawn_registered(
            cmd.arg("--root")
                .arg(self.root.path())
                .arg("--debug")
                .args(&self.extra)
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("dup"))
                .stderr(log),
        );
        self.child = Some(child);
        let sock = self.socket();
        assert!(
            wait_for(10, || std::os::unix::net::UnixStream::connect(&sock)
                .is_ok()),
            "wrend did not come up: {}",
            self.log()
        );
    }

    pub fn socket(&self) -> PathBuf {
        self.root.path().join("run/wrend.sock")
    }

    /// wrend's own log, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.root.path().join("wrend.log")).unwrap_or_default()
    }

    /// pid of the running wrend.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, |c| c.id())
    }

    /// SIGKILLs wrend (containers and shims keep running).
    pub fn kill9(&mut self) {
        if let Some(c) = self.child.take() {
            kill_registered(c);
        }
    }

    /// SIGKILLs the shims of container `name` (a host reboot loses them)
    /// and waits until they are gone.
    pub fn kill_shims(&self, name: &str) {
        for pid in shim_pids(self.root.path(), name) {
            // SAFETY: kill(2) on a shim this test's wrend started.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
        assert!(
            wait_for(5, || shim_pids(self.root.path(), name).is_empty()),
            "the shims of {name} are still there"
        );
    }

    /// Starts wrend again on the same root.
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    /// A `wren` command for this wrend. Its pulls read no registries.conf
    /// (a missing file is an empty one): the host's mirrors or blocks must
    /// not change what a test fetches; a test that wants one sets its own.
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(bin("wren"));
        c.arg("--root").arg(self.root.path());
        c.env(
            "CONTAINERS_REGISTRIES_CONF",
            self.root.path().join("no-registries.conf"),
        );
        // No host credentials either (Docker's and Podman's files).
        c.env("REGISTRY_AUTH_FILE", self.root.path().join("no-auth.json"));
        c
    }

    /// Runs `wren ARGS`.
    pub fn wren(&self, args: &[&str]) -> Output {
        run(self.cmd().args(args))
    }

    /// `wren run -d --rootfs ROOTFS NAME -- CMD...`, asserting success.
    pub fn run_detached(&self, rootfs: &str, name: &str, cmd: &[&str]) -> String {
        let mut args = vec!["run", "-d", "--rootfs", rootfs, name, "--"];
        args.extend_from_slice(cmd);
        self.ok(&args)
    }

    /// Runs `wren ARGS`, asserting success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.wren(args);
        assert!(
            out.status.success(),
            "wren {args:?} failed ({}): {}\nwrend log:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs `wren ARGS`, asserting failure; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.wren(args);
        assert!(
            !out.status.success(),
            "wren {args:?} should have failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// `wren inspect NAME` as JSON.
    pub fn inspect(&self, name: &str) -> Value {
        serde_json::from_str(&self.ok(&["inspect", name])).expect("inspect json")
    }

    /// The `status` field of `inspect`, or "" when the container is unknown.
    pub fn status(&self, name: &str) -> String {
        let out = self.wren(&["inspect", name]);
        if !out.status.success() {
            return String::new();
        }
        serde_json::from_slice::<Value>(&out.stdout)
            .map(|v| v["status"].as_str().unwrap_or_default().to_string())
            .unwrap_or_default()
    }

    /// Waits until `name` has `status`.
    pub fn wait_status(&self, name: &str, status: &str, secs: u64) {
        assert!(
            wait_for(secs, || self.status(name) == status),
            "{name} never became {status} (is {:?})\nwrend log:\n{}",
            self.status(name),
            self.log()
        );
    }

    /// Asserts nothing of container `name` is left: no shim, no socket, no
    /// fifo, no record, no runtime state, no cgroup, no mount.
    pub fn assert_clean(&self, name: &str) {
        let root = self.root.path();
        for dir in [
            root.join("run/containers").join(name),
            root.join("lib/containers").join(name),
            root.join("run/runtime").join(name),
        ] {
            assert!(!dir.exists(), "{} left behind", dir.display());
        }
        let shim_gone = wait_for(5, || shim_pids(root, name).is_empty());
        assert!(
            shim_gone,
            "shim of {name} left: {:?}",
            shim_pids(root, name)
        );
        let dirs = cgroup_dirs(name);
        assert!(dirs.is_empty(), "cgroups of {name} left: {dirs:?}");
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let needle = root.display().to_string();
        assert!(
            !mounts.lines().any(|l| l.contains(&needle)),
            "mounts under {needle} left"
        );
    }

    /// Asserts no shim socket at all is left (after every container is gone).
    pub fn assert_no_sockets(&self) {
        let dir = self.root.path().join("run/s");
        let left = wait_for(5, || {
            std::fs::read_dir(&dir).map_or(true, |d| d.count() == 0)
        });
        let names: Vec<_> = std::fs::read_dir(&dir)
            .map(|d| d.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(left, "shim sockets left in {}: {names:?}", dir.display());
    }
}

/// pids of shims serving container `name` of the wrend rooted at `root`.
pub fn shim_pids(root: &Path, name: &str) -> Vec<u32> {
    let sock = root.join("run/wrend.sock").display().to_string();
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmd
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let is_shim = args
            .first()
            .is_some_and(|a| a.ends_with("containerd-shim-wren-v2"));
        let ours = args.windows(2).any(|w| w[0] == "-id" && w[1] == name)
            && args.iter().any(|a| a.contains(&sock));
        if is_shim && ours && crate::alive(i64::from(pid)) {
            out.push(pid);
        }
    }
    out
}

impl Drop for Wrend {
    fn drop(&mut self) {
        if self.child.is_none() {
            self.spawn();
        }
        // Remove whatever a failed test left, then stop wrend.
        let list = self.wren(&["list", "--json"]);
        if let Ok(Value::Array(all)) = serde_json::from_slice::<Value>(&list.stdout) {
            for c in all {
                if let Some(n) = c["name"].as_str() {
                    let _ = self.wren(&["rm", "-f", n]);
                }
            }
        }
        if let Some(mut c) = self.child.take() {
            // SAFETY: kill(2) on our own registered child.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let _ = c.wait();
            unregister(c.id());
        }
        if let Some(h) = self.netns_holder.take() {
            kill_registered(h);
        }
        std::thread::sleep(Duration::from_millis(50));
        crate::reap();
    }
}

fn new_root() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("wrend-")
        .tempdir_in("/tmp")
        .expect("tempdir")
}

/// A container name unique to this test process. Each test of a file
/// gives its own `base`: the tests of one file run in parallel, each with
/// its own wrend (and so its own cgroup parent, `wren/w-HASH`), but
/// [`crate::cgroup_dirs`] and the leftover checks look a name up in every
/// wrend's parent.
pub fn name(base: &str) -> String {
    format!("{base}-{}", std::process::id())
}
