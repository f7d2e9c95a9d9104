//! Shared helpers for the root integration tests: finding the built
//! binaries, busybox bundles made from Debian's busybox-static, a private
//! state root per test, and a subreaper that reaps orphaned containers
//! without stealing the exit status of commands the tests wait for.
//!
//! Runs in the test processes only.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub mod containerd;
pub mod cri;
pub mod probe;
pub mod profiles;
pub mod pty;
pub mod registry;
pub mod runc;
pub mod tree;
pub mod wrend;

/// Why a test did not run. `make test` lists every skip at the end
/// (`scripts/test-skips.sh`) and, when run as root, fails on any skip that
/// a CI machine must not have.
#[derive(Debug, Clone)]
pub enum Skip {
    /// Not root: expected for a developer's plain `cargo test`.
    NotRoot(&'static str),
    /// A tool, package or built binary is missing: CI installs and builds
    /// everything, so this fails `make test` as root.
    Missing(String),
    /// The host lacks a hardware or kernel property (an architecture, CPUs,
    /// a cgroup controller): listed, allowed.
    Host(String),
}

impl Skip {
    fn class(&self) -> &'static str {
        match self {
            Self::NotRoot(_) => "not-root",
            Self::Missing(_) => "missing",
            Self::Host(_) => "host",
        }
    }

    fn reason(&self) -> &str {
        match self {
            Self::NotRoot(r) => r,
            Self::Missing(r) | Self::Host(r) => r,
        }
    }
}

/// Records that `test` did not run and why: one line on stderr (shown by
/// `cargo test` only on failure, hence the file) and one line appended to
/// `target/test-skips/skips.tsv`, which `make test` prints and judges.
pub fn skip(test: &str, why: Skip) {
    use std::io::Write;
    eprintln!("SKIPPED {test}: {}", why.reason());
    let Some(dir) = skip_dir() else { return };
    let _ = std::fs::create_dir_all(&dir);
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("skips.tsv"))
    {
        // One write per line (O_APPEND): lines of parallel tests never mix.
        let line = format!("{}\t{test}\t{}\n", why.class(), why.reason());
        let _ = f.write_all(line.as_bytes());
    }
}

/// `target/test-skips`: beside the profile directories.
fn skip_dir() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    // target/<profile>/deps/<test>-<hash>
    let target = exe.parent()?.parent()?.parent()?;
    Some(target.join("test-skips"))
}

/// True when running as root; otherwise records why the test is skipped.
pub fn require_root(test: &str) -> bool {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        skip(
            test,
            Skip::NotRoot("needs root (namespaces, mounts, cgroups)"),
        );
        return false;
    }
    become_subreaper();
    true
}

/// A built binary of this workspace (target/<profile>/<name>).
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test>-<hash>
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let p = dir.join(name);
    assert!(
        p.exists(),
        "{} is not built: run `make test` (it builds the binaries first)",
        p.display()
    );
    p
}

static CHILDREN: Mutex<Option<HashSet<u32>>> = Mutex::new(None);
static SUBREAPER: Once = Once::new();

fn become_subreaper() {
    SUBREAPER.call_once(|| {
        // Containers whose creating command exits reparent to us (PID 1
        // here does not reap), so we reap them; see `reap`.
        // SAFETY: integer prctl.
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    });
}

/// Run a command and wait for it, registered so `reap` never takes it.
/// Output goes to files, not pipes: a detached container inherits the
/// command's stdio and would keep a pipe open forever.
pub fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null());
    run_inner(cmd)
}

/// [`run`] with `input` as the command's stdin (then EOF).
pub fn run_with_input(cmd: &mut Command, input: &[u8]) -> Output {
    use std::io::{Seek, Write};
    let mut f = tempfile::tempfile().expect("tempfile");
    f.write_all(input).expect("write input");
    f.seek(std::io::SeekFrom::Start(0)).expect("seek");
    cmd.stdin(f);
    run_inner(cmd)
}

fn run_inner(cmd: &mut Command) -> Output {
    let out_file = tempfile::tempfile().expect("tempfile");
    let err_file = tempfile::tempfile().expect("tempfile");
    cmd.stdout(out_file.try_clone().expect("dup"))
        .stderr(err_file.try_clone().expect("dup"));
    let status = run_status(cmd);
    let read = |mut f: std::fs::File| {
        use std::io::{Read, Seek};
        let mut v = Vec::new();
        f.seek(std::io::SeekFrom::Start(0))
            .and_then(|_| f.read_to_end(&mut v))
            .expect("read output");
        v
    };
    Output {
        status,
        stdout: read(out_file),
        stderr: read(err_file),
    }
}

/// Run `cmd` as it is set up (its stdio untouched) and wait for it,
/// registered so `reap` never takes it: for a command whose output goes
/// where the test points it.
pub fn run_status(cmd: &mut Command) -> std::process::ExitStatus {
    let mut child = spawn_registered(cmd);
    let status = child.wait().expect("wait");
    unregister(child.id());
    reap();
    status
}

/// Spawn `cmd`, registered so `reap` never takes its exit status; wait for
/// it with `child.wait()` and then [`unregister`] it (or use [`run`]).
pub fn spawn_registered(cmd: &mut Command) -> std::process::Child {
    let mut g = CHILDREN.lock().unwrap_or_else(|e| e.into_inner());
    let mut tries = 0;
    let child = loop {
        match cmd.spawn() {
            Ok(c) => break c,
            // A file just written by another thread may still be open
            // for writing in a concurrently forked child for a moment.
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && tries < 50 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("spawn {cmd:?}: {e}"),
        }
    };
    g.get_or_insert_with(HashSet::new).insert(child.id());
    child
}

/// Forget a child spawned with [`spawn_registered`] once it is reaped.
pub fn unregister(pid: u32) {
    CHILDREN
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get_or_insert_with(HashSet::new)
        .remove(&pid);
}

/// Kill and reap a child spawned with [`spawn_registered`].
pub fn kill_registered(mut child: std::process::Child) {
    let _ = child.kill();
    let _ = child.wait();
    unregister(child.id());
}

/// Reap zombie children that no test is waiting for (orphaned containers).
/// Every child a test waits for must be spawned through [`run`],
/// [`run_status`] or [`spawn_registered`]: one started with a bare
/// `Command::output`/`status` can be reaped here first, and its wait then
/// fails with ECHILD.
pub fn reap() {
    let g = CHILDREN.lock().unwrap_or_else(|e| e.into_inner());
    let me = std::process::id();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return;
    };
    for e in dir.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if g.as_ref().is_some_and(|s| s.contains(&pid)) {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
            continue;
        };
        let f: Vec<&str> = rest.split(' ').collect();
        if f.first() == Some(&"Z") && f.get(1).and_then(|p| p.parse::<u32>().ok()) == Some(me) {
            let mut status = 0;
            // SAFETY: reaping one specific zombie child of ours.
            unsafe { libc::waitpid(pid as i32, &mut status, libc::WNOHANG) };
        }
    }
}

/// A private `wren-oci` with its own state root and a unique prefix for
/// container ids (which also name their cgroups).
pub struct Oci {
    pub root: tempfile::TempDir,
    pub prefix: String,
    pub binary: PathBuf,
}

/// The wren-oci the suites drive: `WREN_TEST_OCI` if set (`make test`
/// runs the runtime suite again on the musl release build that way), else
/// the dev build.
fn oci_binary() -> PathBuf {
    match std::env::var_os("WREN_TEST_OCI") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => bin("wren-oci"),
    }
}

impl Oci {
    pub fn new(test: &str) -> Oci {
        Oci {
            root: tempfile::tempdir().expect("tempdir"),
            prefix: format!("{test}-{}", std::process::id()),
            binary: oci_binary(),
        }
    }

    /// Use a private copy of the binary (for tests about the binary itself,
    /// which other tests running it in parallel would disturb).
    pub fn with_private_binary(mut self, dir: &Path) -> Oci {
        let copy = dir.join("wren-oci");
        std::fs::copy(&self.binary, &copy).expect("copy wren-oci");
        self.binary = copy;
        self
    }

    pub fn id(&self, name: &str) -> String {
        format!("{}-{name}", self.prefix)
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new(&self.binary);
        c.arg("--root").arg(self.root.path());
        c
    }

    /// Run `wren-oci ARGS`; returns the output.
    pub fn run(&self, args: &[&str]) -> Output {
        run(self.cmd().args(args))
    }

    /// The container's init pid from `state`.
    pub fn init_pid(&self, id: &str) -> i64 {
        self.state(id)["pid"].as_i64().expect("pid in state")
    }

    /// Starts `sleep 1000` detached through `exec` (with `extra` options)
    /// and waits until it runs busybox; returns its pid. `name` names the
    /// pid file in the bundle.
    pub fn exec_detached(&self, b: &Bundle, id: &str, name: &str, extra: &[&str]) -> i64 {
        let pidfile = b.path().join(format!("{name}.pid"));
        let mut args = vec!["exec", "--detach", "--pid-file", pidfile.to_str().unwrap()];
        args.extend_from_slice(extra);
        args.extend_from_slice(&[id, "sleep", "1000"]);
        self.ok(&args);
        let pid: i64 = std::fs::read_to_string(&pidfile)
            .expect("pid file")
            .trim()
            .parse()
            .expect("pid");
        assert!(wait_for(5, || std::fs::read_link(format!(
            "/proc/{pid}/exe"
        ))
        .map(|p| p.ends_with("busybox"))
        .unwrap_or(false)));
        pid
    }

    /// `run` of bundle `b` in the foreground (with `extra` options):
    /// (exit code, stdout, stderr).
    pub fn run_bundle(&self, b: &Bundle, id: &str, extra: &[&str]) -> (i32, String, String) {
        let mut args = vec!["run", "--bundle", b.path_str()];
        args.extend_from_slice(extra);
        args.push(id);
        let out = self.run(&args);
        (
            out.status.code().unwrap_or(-1),
            text(&out.stdout),
            text(&out.stderr),
        )
    }

    /// Run and require success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "wren-oci {args:?} failed: {}\nstdout: {}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn state(&self, id: &str) -> Value {
        serde_json::from_str(&self.ok(&["state", id])).expect("state json")
    }
}

impl Drop for Oci {
    fn drop(&mut self) {
        // Force-delete whatever a failed test left.
        if let Ok(dir) = std::fs::read_dir(self.root.path()) {
            for e in dir.flatten() {
                let id = e.file_name().to_string_lossy().into_owned();
                let _ = run(self.cmd().args(["delete", "--force", &id]));
            }
        }
        reap();
    }
}

/// Command output as text.
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// An OCI bundle with a busybox rootfs.
pub struct Bundle {
    pub dir: tempfile::TempDir,
    pub config: Value,
}

impl Bundle {
    /// A bundle running `args` with the runc-like default spec.
    pub fn busybox(args: &[&str]) -> Bundle {
        Bundle::busybox_with(tempfile::tempdir().expect("tempdir"), args)
    }

    /// The same, in a new directory under `parent` (e.g. a Debian tree's
    /// /tmp, for a runtime that runs in that tree).
    pub fn busybox_in(parent: &Path, args: &[&str]) -> Bundle {
        Bundle::busybox_with(tempfile::tempdir_in(parent).expect("tempdir"), args)
    }

    fn busybox_with(dir: tempfile::TempDir, args: &[&str]) -> Bundle {
        let rootfs = dir.path().join("rootfs");
        for d in ["bin", "proc", "sys", "dev", "etc", "tmp", "root"] {
            std::fs::create_dir_all(rootfs.join(d)).expect("mkdir");
        }
        let busybox = ["/bin/busybox", "/usr/bin/busybox"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("busybox-static is not installed (make deps)");
        std::fs::copy(busybox, rootfs.join("bin/busybox")).expect("copy busybox");
        let list = run(Command::new(busybox).arg("--list"));
        for applet in String::from_utf8_lossy(&list.stdout).lines() {
            if applet != "busybox" {
                let _ = std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet));
            }
        }
        std::fs::write(
            rootfs.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/tmp:/bin/sh\n",
        )
        .expect("passwd");
        std::fs::write(rootfs.join("etc/group"), "root:x:0:\nuser:x:1000:\n").expect("group");
        let spec = run(Command::new(bin("wren-oci"))
            .arg("spec")
            .current_dir(dir.path()));
        assert!(
            spec.status.success(),
            "wren-oci spec: {}",
            String::from_utf8_lossy(&spec.stderr)
        );
        let mut config: Value = serde_json::from_slice(
            &std::fs::read(dir.path().join("config.json")).expect("read config"),
        )
        .expect("json");
        config["process"]["terminal"] = json!(false);
        config["process"]["args"] = json!(args);
        let b = Bundle { dir, config };
        b.save();
        b
    }

    /// A new user namespace mapping container ids 0..65536 to host ids
    /// `host_id`..; the bundle directory is made world-searchable so the
    /// mapped root can reach the rootfs. Call `save` afterwards.
    pub fn map_root_to(&mut self, host_id: u32) {
        self.config["linux"]["namespaces"]
            .as_array_mut()
            .expect("namespaces")
            .push(json!({"type": "user"}));
        let maps = json!([{"containerID": 0, "hostID": host_id, "size": 65536}]);
        self.config["linux"]["uidMappings"] = maps.clone();
        self.config["linux"]["gidMappings"] = maps;
        std::fs::set_permissions(
            self.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .expect("chmod bundle");
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn path_str(&self) -> &str {
        self.dir.path().to_str().expect("utf-8 path")
    }

    pub fn rootfs(&self) -> PathBuf {
        self.dir.path().join("rootfs")
    }

    /// Write the (modified) config back.
    pub fn save(&self) {
        std::fs::write(
            self.path().join("config.json"),
            serde_json::to_vec_pretty(&self.config).expect("json"),
        )
        .expect("write config");
    }
}

/// Every cgroup directory named `name` in any hierarchy, directly under
/// `wren` (the default wrend's, wren-oci's and the shim's default parent)
/// or one level below it (a private wrend's `wren/w-HASH`).
pub fn cgroup_dirs(name: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(hier) = std::fs::read_dir("/sys/fs/cgroup") else {
        return out;
    };
    let root = Path::new("/sys/fs/cgroup").to_path_buf();
    for h in hier.flatten().map(|h| h.path()).chain([root]) {
        let parent = h.join("wren");
        if parent.join(name).exists() {
            out.push(parent.join(name));
        }
        for sub in std::fs::read_dir(&parent).into_iter().flatten().flatten() {
            let p = sub.path().join(name);
            if sub.file_type().is_ok_and(|t| t.is_dir()) && p.exists() {
                out.push(p);
            }
        }
    }
    out
}

/// The cgroup directories of wrend's own parent `parent` (as
/// `wren/w-HASH`) in any hierarchy.
pub fn cgroup_parent_dirs(parent: &str) -> Vec<PathBuf> {
    let root = Path::new("/sys/fs/cgroup");
    std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .map(|h| h.path().join(parent))
        .chain([root.join(parent)])
        .filter(|p| p.is_dir())
        .collect()
}

/// Runs `f` on a new thread in the network namespace `ns` (a
/// `/proc/PID/ns/net` or a bind mount of one; None: this one) and returns
/// what it returns. Only that thread changes namespace.
pub fn on_netns<T: Send + 'static>(
    ns: Option<PathBuf>,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    std::thread::spawn(move || {
        if let Some(ns) = ns {
            let f = std::fs::File::open(&ns).expect("open netns");
            // SAFETY: setns on this new thread only, with a namespace fd
            // we hold; other threads are not affected.
            let rc =
                unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&f), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
        }
        f()
    })
    .join()
    .expect("thread in a network namespace")
}

/// GET / on 127.0.0.1:`port` of this thread's network namespace: the
/// body, or "" on failure (within a few seconds).
pub fn http_body(port: u16) -> String {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_secs(2),
    ) else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(3)));
    let _ = s.write_all(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default()
}

/// Wait until `f` holds, at most `secs` seconds.
pub fn wait_for(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        reap();
        std::thread::sleep(Duration::from_millis(20));
    }
    f()
}

/// Is there a live process with this pid?
pub fn alive(pid: i64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.contains(") Z "))
        .unwrap_or(false)
}

/// Assert that nothing of container `id` is left: no cgroup, no state.
pub fn assert_gone(oci: &Oci, id: &str) {
    assert!(
        !oci.root.path().join(id).exists(),
        "state dir of {id} left behind"
    );
    let dirs = cgroup_dirs(id);
    assert!(dirs.is_empty(), "cgroups of {id} left behind: {dirs:?}");
}

/// Runs `mount --bind DIR DIR; mount --make-shared DIR` and undoes it on
/// drop (lazily, with whatever was mounted below it), so a bundle or a
/// volume sits on a shared mount whatever the host's / is.
pub struct SharedMount(std::path::PathBuf);

impl SharedMount {
    pub fn new(dir: &std::path::Path) -> SharedMount {
        let mount = |args: &[&str]| {
            let out = run(Command::new("mount").args(args));
            assert!(
                out.status.success(),
                "mount {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let d = dir.to_str().expect("a UTF-8 path");
        mount(&["--bind", d, d]);
        let m = SharedMount(dir.to_path_buf());
        mount(&["--make-shared", d]);
        m
    }
}

impl Drop for SharedMount {
    fn drop(&mut self) {
        let _ = run(Command::new("umount").arg("-l").arg(&self.0));
    }
}
