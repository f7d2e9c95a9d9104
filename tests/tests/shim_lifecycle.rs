//! The shim's `start` / daemon / `delete` lifecycle, for real: the binary run
//! by hand in a fake bundle, and under a private containerd 1.6 (own root,
//! state and sockets in a temp dir, CRI disabled) with `ctr run`.
//!
//! Needs root, `containerd`, `ctr` and a built `containerd-shim-wren-v2`
//! (`cargo build -p wren-shim`); a test that cannot run says why and fails.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use protobuf::Message;
use wren_protocol::task::DeleteResponse;

fn shim_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("WREN_SHIM_BIN") {
        return p.into();
    }
    // target/<profile>/deps/<test> -> target/<profile>/containerd-shim-wren-v2
    let exe = std::env::current_exe().unwrap();
    let bin = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("containerd-shim-wren-v2");
    assert!(
        bin.exists(),
        "{} missing: run `cargo build -p wren-shim` first (or set WREN_SHIM_BIN)",
        bin.display()
    );
    bin
}

/// One test at a time: `reap_all` (waitpid(-1)) in one test would steal a
/// child another test is waiting for.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn require_root() {
    // SAFETY: geteuid(2) cannot fail.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(euid, 0, "shim lifecycle tests need root");
    // Daemons we start are re-parented to us: reap them (PID 1 here does not).
    // SAFETY: prctl(PR_SET_CHILD_SUBREAPER) takes no pointers.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
}

fn reap_all() {
    // SAFETY: non-blocking waitpid on any child; the test owns all of them.
    while unsafe { libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) } > 0 {}
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

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        reap_all();
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn fake_bundle(dir: &Path) {
    std::fs::create_dir_all(dir.join("rootfs")).unwrap();
    std::fs::write(dir.join("config.json"), r#"{"annotations":{}}"#).unwrap();
    let log = dir.join("log");
    let c = std::ffi::CString::new(log.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo with a valid C string.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o700) }, 0);
}

#[test]
fn start_prints_plain_address_reuses_live_shim_and_delete_cleans_up() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let bundle = tmp.path().join("bundle");
    fake_bundle(&bundle);
    // containerd holds the log fifo open for reading before `start`.
    let _log_reader = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(bundle.join("log"))
        .unwrap();
    let id = format!("wren-start-{}", std::process::id());
    let address = tmp.path().join("containerd.sock");
    let run = |action: &str| {
        Command::new(shim_binary())
            .args([
                "-namespace",
                "wrentest",
                "-address",
                address.to_str().unwrap(),
            ])
            .args(["-publish-binary", "/usr/bin/containerd", "-id", &id])
            .args(["-bundle", bundle.to_str().unwrap(), action])
            .current_dir(&bundle)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };

    let first = run("start");
    assert!(
        first.status.success(),
        "start failed: {}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(
        first.stderr.is_empty(),
        "start wrote to stderr: {:?}",
        first.stderr
    );
    let addr = String::from_utf8(first.stdout).unwrap();
    assert!(
        addr.starts_with("unix:///run/containerd/s/"),
        "address {addr:?}"
    );
    let sock = PathBuf::from(addr.trim_start_matches("unix://"));
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "socket mode");
    assert_eq!(
        std::fs::read_to_string(bundle.join("address")).unwrap(),
        addr
    );
    wait_until("the daemon", || shim_pids(&id).len() == 1);

    let second = run("start");
    assert!(second.status.success());
    assert_eq!(
        String::from_utf8(second.stdout).unwrap(),
        addr,
        "live shim reused"
    );
    assert_eq!(shim_pids(&id).len(), 1, "no second daemon");

    // A dead daemon: SIGTERM, it removes its socket and exits.
    let pid = shim_pids(&id)[0];
    // SAFETY: kill(2) on the daemon we started.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    wait_until("daemon exit", || shim_pids(&id).is_empty());
    assert!(!sock.exists(), "socket removed on shutdown");

    for _ in 0..2 {
        let del = run("delete");
        assert!(
            del.status.success(),
            "delete: {}",
            String::from_utf8_lossy(&del.stderr)
        );
        let resp = DeleteResponse::parse_from_bytes(&del.stdout).unwrap();
        assert_eq!(resp.exit_status, 137);
        assert!(resp.exited_at.seconds > 0);
    }
}

struct Containerd {
    dir: tempfile::TempDir,
    child: std::process::Child,
}

impl Containerd {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("bin")).unwrap();
        std::os::unix::fs::symlink(shim_binary(), d.join("bin/containerd-shim-wren-v2")).unwrap();
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
            .expect("containerd not installed (apt-get install containerd)");
        let sock = d.join("c.sock");
        wait_until("containerd socket", || sock.exists());
        Self { dir, child }
    }

    fn ctr(&self, args: &[&str]) -> std::process::Output {
        Command::new("ctr")
            .arg("--address")
            .arg(self.dir.path().join("c.sock"))
            .args(args)
            .output()
            .unwrap()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default()
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        reap_all();
    }
}

#[test]
fn containerd_starts_the_shim_and_reaches_create() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    require_root();
    let c = Containerd::start();
    let rootfs = c.dir.path().join("rootfs");
    std::fs::create_dir_all(rootfs.join("bin")).unwrap();
    let id = format!("wren-ctr-{}", std::process::id());
    let out = c.ctr(&[
        "run",
        "--rm",
        "--runtime",
        "io.containerd.wren.v2",
        "--rootfs",
        rootfs.to_str().unwrap(),
        &id,
        "/bin/true",
    ]);
    let log = c.log();
    // containerd accepted the address from `start`, dialled it and called
    // Create on the v2 service name; the shim's log lines reached containerd
    // through the log fifo.
    assert!(
        log.contains("ttrpc: containerd.task.v2.Task/Create"),
        "Create never reached the shim; ctr said {:?}\n{log}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        log.contains("runtime=io.containerd.wren.v2"),
        "no logrus line from the shim"
    );
    if !out.status.success() {
        // The rootfs here is empty: Create must fail with the runtime's
        // clear message, not a transport error.
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("executable /bin/true"),
            "unexpected ctr error: {stderr}"
        );
    }
    // After teardown: no shim process, and containerd ran `delete`.
    wait_until("shim exit", || shim_pids(&id).is_empty());
    assert!(c.log().contains("cleaning up dead shim") || out.status.success());
}
