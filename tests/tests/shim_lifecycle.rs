//! The shim's `start` / daemon / `delete` lifecycle, for real: the binary run
//! by hand in a fake bundle, and under a private containerd 1.6 (own root,
//! state and sockets in a temp dir, CRI disabled) with `ctr run`.
//!
//! Needs root, `containerd`, `ctr` and a built `containerd-shim-wren-v2`;
//! without them each test says so and skips.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use protobuf::Message;
use wren_protocol::task::DeleteResponse;
use wren_tests::containerd::{for_each_version, shim_binary, shim_pids, shim_tests_can_run};
use wren_tests::wait_for;

/// A bundle with its `log` fifo, and the fifo opened for reading as
/// containerd holds it before `start`; keep the file for the test.
fn fake_bundle(dir: &Path) -> std::fs::File {
    std::fs::create_dir_all(dir.join("rootfs")).unwrap();
    std::fs::write(dir.join("config.json"), r#"{"annotations":{}}"#).unwrap();
    let log = dir.join("log");
    let c = std::ffi::CString::new(log.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo with a valid C string.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o700) }, 0);
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(log)
        .unwrap()
}

#[test]
fn start_prints_plain_address_reuses_live_shim_and_delete_cleans_up() {
    if !shim_tests_can_run("start_prints_plain_address_reuses_live_shim_and_delete_cleans_up") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let bundle = tmp.path().join("bundle");
    let _log_reader = fake_bundle(&bundle);
    let id = format!("wren-start-{}", std::process::id());
    let address = tmp.path().join("containerd.sock");
    let shim = shim_binary().expect("checked by shim_tests_can_run");
    let run = |action: &str| {
        wren_tests::run(
            Command::new(&shim)
                .args([
                    "-namespace",
                    "wrentest",
                    "-address",
                    address.to_str().unwrap(),
                ])
                .args(["-publish-binary", "/usr/bin/containerd", "-id", &id])
                .args(["-bundle", bundle.to_str().unwrap(), action])
                .current_dir(&bundle),
        )
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
    assert!(wait_for(10, || shim_pids(&id).len() == 1), "no daemon");

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
    assert!(
        wait_for(10, || shim_pids(&id).is_empty()),
        "daemon did not exit"
    );
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

#[test]
fn containerd_starts_the_shim_and_reaches_create() {
    if !shim_tests_can_run("containerd_starts_the_shim_and_reaches_create") {
        return;
    }
    let ns = format!("wrenlife{}", std::process::id());
    for_each_version(
        "containerd_starts_the_shim_and_reaches_create",
        &ns,
        false,
        |c| {
            let rootfs = c.dir.path().join("rootfs");
            std::fs::create_dir_all(rootfs.join("bin")).unwrap();
            let id = format!("wren-ctr-{}", std::process::id());
            let out = c.ctr(&[
                "run",
                "--rm",
                "--runtime",
                "io.containerd.wren.v2",
                "--rootfs",
                c.inner_path(&rootfs).to_str().unwrap(),
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
            assert!(
                wait_for(10, || shim_pids(&id).is_empty()),
                "shim did not exit"
            );
            assert!(c.log().contains("cleaning up dead shim") || out.status.success());
        },
    );
}

#[test]
fn start_applies_oom_score_and_the_options_shim_cgroup() {
    if !shim_tests_can_run("start_applies_oom_score_and_the_options_shim_cgroup") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let bundle = tmp.path().join("bundle");
    let _log_reader = fake_bundle(&bundle);
    let id = format!("wren-shimcg-{}", std::process::id());
    // A cgroup for the shim in one v1 hierarchy (or cgroup2 on a v2 host).
    let v2 = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let cg_dir = if v2 {
        Path::new("/sys/fs/cgroup").join(&id)
    } else {
        Path::new("/sys/fs/cgroup/pids").join(&id)
    };
    std::fs::create_dir_all(&cg_dir).unwrap();
    // runc's Options on stdin, as containerd passes them.
    let mut opts = wren_protocol::runc_options::Options::new();
    opts.shim_cgroup = format!("/{id}");
    let mut any = protobuf::well_known_types::any::Any::new();
    any.type_url = wren_protocol::type_urls::RUNC_OPTIONS.to_string();
    any.value = opts.write_to_bytes().unwrap();
    let shim = shim_binary().expect("checked by shim_tests_can_run");
    let address = tmp.path().join("containerd.sock");
    let out = wren_tests::run_with_input(
        Command::new(&shim)
            .args([
                "-namespace",
                "wrentest",
                "-address",
                address.to_str().unwrap(),
            ])
            .args(["-publish-binary", "/usr/bin/containerd", "-id", &id])
            .args(["-bundle", bundle.to_str().unwrap(), "start"])
            .current_dir(&bundle),
        &any.write_to_bytes().unwrap(),
    );
    assert!(
        out.status.success(),
        "start: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(wait_for(10, || shim_pids(&id).len() == 1), "no daemon");
    let daemon = shim_pids(&id)[0];
    let ours: i32 = std::fs::read_to_string("/proc/self/oom_score_adj")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let theirs: i32 = std::fs::read_to_string(format!("/proc/{daemon}/oom_score_adj"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(
        theirs,
        (ours + 1).min(1000),
        "oom_score_adj = containerd's + 1"
    );
    let procs = std::fs::read_to_string(cg_dir.join("cgroup.procs")).unwrap();
    assert!(
        procs.lines().any(|p| p == daemon.to_string()),
        "the daemon is not in its ShimCgroup: {procs:?}"
    );
    // SAFETY: kill(2) on the daemon we started.
    unsafe { libc::kill(daemon, libc::SIGTERM) };
    assert!(
        wait_for(10, || shim_pids(&id).is_empty()),
        "daemon did not exit"
    );
    assert!(
        wait_for(5, || std::fs::remove_dir(&cg_dir).is_ok()),
        "cgroup busy"
    );
}
