//! wren's cgroup v2 code on a real pure-v2 kernel, in a VM.
//!
//! The build machines are hybrid (v1 controllers, an empty cgroup2), so the
//! v2 resource code otherwise meets only fake trees. `v2_guest_suite` (the
//! one test that runs on the host) boots `scripts/cgroupv2-vm.sh` once and
//! runs this same test executable inside the guest with `--ignored guest_`:
//! the `guest_*` tests are ignored on the host and each asserts first that
//! it runs on a pure v2 kernel. Nothing is built in the guest; it sees the
//! host's `target/` at the same path. Inside, everything goes through
//! `wren-oci` on busybox bundles and the files under /sys/fs/cgroup. The
//! same boot runs `tests/tests/cgroups_kernel.rs`'s executable, whose
//! tests then exercise pure v2 throughout.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{json, Value};
use wren_tests::{alive, assert_gone, cgroup_dirs, text, wait_for, Bundle, Oci, Skip};

/// One VM at a time: the two boots of this file would otherwise share the
/// machine's cores under TCG and double the guest memory.
static VM: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The project's top directory (the guest runs in it, like the host).
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace")
        .to_path_buf()
}

fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test>-<hash>
    exe.ancestors().nth(3).expect("target dir").to_path_buf()
}

/// The tests of test executable `exe` that `args` select (`--list`).
fn listed(exe: &Path, args: &[&str], prefix: &str) -> Vec<String> {
    let out = wren_tests::run(Command::new(exe).arg("--list").args(args));
    text(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_suffix(": test"))
        .filter(|n| n.starts_with(prefix))
        .map(str::to_owned)
        .collect()
}

/// The newest built executable of the integration test file `name`
/// (`cargo test` builds every test executable before it runs any).
fn sibling_test(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let exe = std::env::current_exe().ok()?;
    let prefix = format!("{name}-");
    std::fs::read_dir(exe.parent()?)
        .ok()?
        .flatten()
        .filter(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.starts_with(&prefix) && !n.contains('.')
        })
        .filter_map(|e| {
            let m = e.metadata().ok()?;
            let runnable = m.is_file() && m.permissions().mode() & 0o111 != 0;
            runnable.then_some((m.modified().ok()?, e.path()))
        })
        .max()
        .map(|(_, p)| p)
}

#[test]
fn v2_guest_suite() {
    const TEST: &str = "cgroup_v2_vm::v2_guest_suite";
    if !wren_tests::require_root(TEST) {
        return;
    }
    if std::env::consts::ARCH != "x86_64" {
        wren_tests::skip(TEST, Skip::Host("the v2 VM runs x86_64 guests only".into()));
        return;
    }
    for tool in ["qemu-system-x86_64", "cpio", "apt-get", "dpkg"] {
        let found = wren_tests::run(Command::new("sh").args(["-c", &format!("command -v {tool}")]))
            .status
            .success();
        if !found {
            wren_tests::skip(TEST, Skip::Missing(format!("{tool} (make deps)")));
            return;
        }
    }
    let me = std::env::current_exe().expect("exe");
    let want = listed(&me, &["--ignored"], "guest_");
    assert!(!want.is_empty(), "no guest_ tests listed");
    // The kernel tests of the cgroup manager (tests/tests/cgroups_kernel.rs)
    // run in the same boot: on the hybrid host they use v1 and an empty
    // cgroup2, here pure v2 throughout.
    let Some(kernel_tests) = sibling_test("cgroups_kernel") else {
        wren_tests::skip(
            TEST,
            Skip::Missing("the cgroups_kernel test executable is not built".into()),
        );
        return;
    };
    let kernel_want = listed(&kernel_tests, &[], "");
    let _vm = VM.lock().unwrap_or_else(|e| e.into_inner());
    let skips = target_dir().join("test-skips");
    std::fs::create_dir_all(&skips).expect("mkdir test-skips");
    let started = std::time::Instant::now();
    let out = wren_tests::run(
        Command::new("bash")
            .arg(workspace().join("scripts/cgroupv2-vm.sh"))
            .arg("run")
            .arg("--rw")
            .arg(&skips)
            .args(["--env", "RUST_BACKTRACE", "--env", "RUST_LOG", "--"])
            .args([
                "sh",
                "-c",
                "\"$0\" --ignored --test-threads 2 guest_; a=$?; \
                 \"$1\" --test-threads 2; b=$?; exit $((a | b))",
            ])
            .arg(&me)
            .arg(&kernel_tests)
            .env(
                "WREN_VM_TIMEOUT",
                std::env::var("WREN_VM_TIMEOUT").unwrap_or_else(|_| "480".into()),
            )
            .current_dir(workspace()),
    );
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    eprintln!(
        "guest run: {:.0} s, status {:?}\n{stdout}\n{stderr}",
        started.elapsed().as_secs_f64(),
        out.status.code()
    );
    assert!(
        out.status.success(),
        "the guest tests failed (output above)"
    );
    for (tests, what) in [(&want, "guest_"), (&kernel_want, "cgroups_kernel")] {
        let summary = format!("test result: ok. {} passed; 0 failed", tests.len());
        assert!(
            stdout.contains(&summary),
            "expected {summary:?} for the {what} tests in the guest's output"
        );
    }
}

/// The systemd cgroup driver, in a second boot with systemd as PID 1 (the
/// first boot has a shell as PID 1, which the cgroupfs tests need: systemd
/// rewrites the root's controllers): runs the `systemd_vm_*` tests inside,
/// one at a time (in parallel, a containerd starting under TCG next to a
/// `daemon-reexec` missed its 10 s start deadline). Their names must not
/// contain `guest_`, the first boot's filter.
#[test]
fn v2_systemd_guest_suite() {
    systemd_boot(
        "cgroup_v2_vm::v2_systemd_guest_suite",
        "--systemd",
        "systemd_vm_",
    );
}

/// The systemd cgroup driver on a hybrid host (v1 controllers, systemd's
/// name=systemd hierarchy and a controller-less cgroup2 at
/// /sys/fs/cgroup/unified, as the build machines but with systemd as PID
/// 1): a third boot, `scripts/cgroupv2-vm.sh run --hybrid`, running the
/// `hybrid_vm_*` tests.
#[test]
fn hybrid_systemd_guest_suite() {
    systemd_boot(
        "cgroup_v2_vm::hybrid_systemd_guest_suite",
        "--hybrid",
        "hybrid_vm_",
    );
}

/// Boots the VM with systemd as PID 1 (`mode`: `--systemd` or `--hybrid`)
/// and runs this executable's ignored tests whose names start with
/// `prefix`, one at a time; asserts they all passed.
fn systemd_boot(test: &str, mode: &str, prefix: &str) {
    if !wren_tests::require_root(test) {
        return;
    }
    if std::env::consts::ARCH != "x86_64" {
        wren_tests::skip(test, Skip::Host("the v2 VM runs x86_64 guests only".into()));
        return;
    }
    for tool in [
        "qemu-system-x86_64",
        "cpio",
        "apt-get",
        "dpkg",
        "/lib/systemd/systemd",
    ] {
        let found = wren_tests::run(Command::new("sh").args(["-c", &format!("command -v {tool}")]))
            .status
            .success();
        if !found {
            wren_tests::skip(test, Skip::Missing(format!("{tool} (make deps)")));
            return;
        }
    }
    let me = std::env::current_exe().expect("exe");
    let want = listed(&me, &["--ignored"], prefix);
    assert!(!want.is_empty(), "no {prefix} tests listed");
    let _vm = VM.lock().unwrap_or_else(|e| e.into_inner());
    let skips = target_dir().join("test-skips");
    std::fs::create_dir_all(&skips).expect("mkdir test-skips");
    let started = std::time::Instant::now();
    let out = wren_tests::run(
        Command::new("bash")
            .arg(workspace().join("scripts/cgroupv2-vm.sh"))
            .args(["run", mode, "--rw"])
            .arg(&skips)
            .args(["--env", "RUST_BACKTRACE", "--env", "RUST_LOG", "--"])
            .args([
                "sh",
                "-c",
                "systemctl is-system-running --wait >/dev/null; \
                 \"$0\" --ignored --test-threads 1 \"$1\"",
            ])
            .arg(&me)
            .arg(prefix)
            .env(
                "WREN_VM_TIMEOUT",
                std::env::var("WREN_VM_TIMEOUT").unwrap_or_else(|_| "480".into()),
            )
            .current_dir(workspace()),
    );
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    eprintln!(
        "{mode} guest run: {:.0} s, status {:?}\n{stdout}\n{stderr}",
        started.elapsed().as_secs_f64(),
        out.status.code()
    );
    assert!(
        out.status.success(),
        "the {prefix} guest tests failed (output above)"
    );
    let summary = format!("test result: ok. {} passed; 0 failed", want.len());
    assert!(
        stdout.contains(&summary),
        "expected {summary:?} for the {prefix} tests in the guest's output"
    );
}

/// Panics unless this runs on a pure cgroup v2 kernel with every
/// controller the guest tests use (the VM), so a stray `--ignored` on the
/// host fails loudly instead of testing nothing.
fn in_v2_guest() {
    let mounts = std::fs::read_to_string("/proc/self/mounts").expect("mounts");
    assert!(
        !mounts
            .lines()
            .any(|l| l.split(' ').nth(2) == Some("cgroup")),
        "guest_ tests need a pure cgroup v2 host: run them through v2_guest_suite"
    );
    let ctl = std::fs::read_to_string("/sys/fs/cgroup/cgroup.controllers").expect("cgroup2 root");
    for c in ["cpuset", "cpu", "memory", "pids"] {
        assert!(ctl.split_whitespace().any(|x| x == c), "no {c} in {ctl}");
    }
    assert!(wren_tests::require_root("guest"), "guest tests run as root");
}

fn cg(id: &str) -> PathBuf {
    Path::new("/sys/fs/cgroup/wren").join(id)
}

fn read(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file))
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.join(file).display()))
        .trim()
        .to_owned()
}

/// A detached `sleep 1000` container with `resources`; returns its id.
fn start(oci: &Oci, b: &mut Bundle, name: &str, resources: Value) -> String {
    b.config["linux"]["resources"] = resources;
    b.save();
    let id = oci.id(name);
    oci.ok(&["run", "--detach", "--bundle", b.path_str(), &id]);
    id
}

/// `exec` of `sh -c script` in `id`: (status, stdout+stderr).
fn sh(oci: &Oci, id: &str, script: &str) -> (i32, String) {
    let out = oci.run(&["exec", id, "sh", "-c", script]);
    (
        out.status.code().unwrap_or(-1),
        text(&out.stdout) + &text(&out.stderr),
    )
}

fn update_json(oci: &Oci, b: &Bundle, id: &str, r: Value) {
    let f = b.path().join("update.json");
    std::fs::write(&f, r.to_string()).expect("write update.json");
    oci.ok(&["update", "--resources", f.to_str().unwrap(), id]);
}

#[test]
#[ignore = "runs in the v2 VM through v2_guest_suite"]
fn guest_resources_written_and_updated() {
    in_v2_guest();
    let oci = Oci::new("v2res");
    let mut b = Bundle::busybox(&["sleep", "1000"]);
    let id = start(
        &oci,
        &mut b,
        "c",
        json!({
            "memory": {"limit": 67108864, "swap": 100663296, "reservation": 16777216},
            "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0", "mems": "0", "idle": 0},
            "pids": {"limit": 50},
            "blockIO": {"weight": 500},
            "unified": {"memory.high": "104857600", "memory.oom.group": "1", "memory.min": "8192"}
        }),
    );
    let dir = cg(&id);
    // The init lives in the container's cgroup, which sees itself as the root.
    let pid = oci.init_pid(&id);
    assert_eq!(
        std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap(),
        format!("0::/wren/{id}\n")
    );
    let (st, inside) = sh(
        &oci,
        &id,
        "cat /proc/self/cgroup; ls /sys/fs/cgroup/memory.max",
    );
    assert_eq!(st, 0, "{inside}");
    assert!(inside.starts_with("0::/\n"), "cgroup namespace: {inside}");
    assert!(inside.contains("/sys/fs/cgroup/memory.max"), "{inside}");
    let expect = [
        ("memory.max", "67108864"),
        // OCI swap is memory+swap; v2's memory.swap.max is swap alone.
        ("memory.swap.max", "33554432"),
        ("memory.low", "16777216"),
        ("memory.high", "104857600"),
        ("memory.min", "8192"),
        ("memory.oom.group", "1"),
        // runc 1.3's shares→weight curve (1024 → 100), not 1.1's linear one.
        ("cpu.weight", "59"),
        ("cpu.max", "50000 100000"),
        ("cpu.idle", "0"),
        ("cpuset.cpus", "0"),
        ("cpuset.mems", "0"),
        ("pids.max", "50"),
    ];
    for (f, v) in expect {
        assert_eq!(read(&dir, f), v, "{f}");
    }
    // Stats as runc prints them, read from the v2 files.
    let ev: Value = serde_json::from_str(oci.ok(&["events", "--stats", &id]).trim())
        .expect("events --stats json");
    assert_eq!(ev["type"], "stats", "{ev}");
    let data = &ev["data"];
    assert_eq!(data["memory"]["usage"]["limit"], 67108864, "{ev}");
    assert!(
        data["memory"]["usage"]["usage"].as_u64().unwrap_or(0) > 0,
        "{ev}"
    );
    assert_eq!(data["pids"]["limit"], 50, "{ev}");
    assert!(data["pids"]["current"].as_u64().unwrap_or(0) >= 1, "{ev}");
    assert!(
        data["cpu"]["usage"]["total"].as_u64().unwrap_or(0) > 0,
        "{ev}"
    );
    let ctl = read(&dir, "cgroup.controllers");
    if ctl.split_whitespace().any(|c| c == "io") {
        if dir.join("io.bfq.weight").exists() {
            assert!(read(&dir, "io.bfq.weight").starts_with("default 500"));
        } else if dir.join("io.weight").exists() {
            // 1 + (500 - 10) * 9999 / 990
            assert_eq!(read(&dir, "io.weight"), "default 4950");
        }
    }
    // The pids limit holds inside.
    let (st, out) = sh(
        &oci,
        &id,
        "i=0; while [ $i -lt 60 ]; do sleep 5 & i=$((i+1)); done 2>&1 | head -n1",
    );
    assert!(
        out.contains("Resource temporarily unavailable") || out.contains("fork"),
        "60 children under pids.max 50: status {st}, {out}"
    );
    assert!(read(&dir, "pids.events").contains("max "), "pids.events");

    // update through the flags, then a whole LinuxResources document.
    oci.ok(&[
        "update",
        "--memory",
        "128m",
        "--memory-swap",
        "256m",
        "--cpu-share",
        "1024",
        "--cpu-quota",
        "20000",
        "--pids-limit",
        "200",
        "--cpuset-cpus",
        "0-1",
        &id,
    ]);
    for (f, v) in [
        ("memory.max", "134217728"),
        ("memory.swap.max", "134217728"),
        ("cpu.weight", "100"),
        ("cpu.max", "20000 100000"),
        ("pids.max", "200"),
        ("cpuset.cpus", "0-1"),
    ] {
        assert_eq!(read(&dir, f), v, "{f} after update");
    }
    update_json(
        &oci,
        &b,
        &id,
        json!({"memory": {"limit": -1}, "pids": {"limit": -1}, "cpu": {"quota": -1, "idle": 1},
               "unified": {"memory.high": "max", "memory.oom.group": "0"}}),
    );
    for (f, v) in [
        ("memory.max", "max"),
        ("pids.max", "max"),
        ("cpu.max", "max 100000"),
        ("cpu.idle", "1"),
        ("memory.high", "max"),
        ("memory.oom.group", "0"),
    ] {
        assert_eq!(read(&dir, f), v, "{f} after update --resources");
    }
    oci.ok(&["delete", "--force", &id]);
    assert_gone(&oci, &id);
    assert!(!dir.exists());
}

#[test]
#[ignore = "runs in the v2 VM through v2_guest_suite"]
fn guest_bad_resources_leave_nothing() {
    in_v2_guest();
    let oci = Oci::new("v2bad");
    let mut b = Bundle::busybox(&["sleep", "1000"]);
    // A unified key of a controller file that does not exist.
    b.config["linux"]["resources"] = json!({"unified": {"memory.nonsense": "1"}});
    b.save();
    let id = oci.id("u");
    let (st, _, err) = oci.run_bundle(&b, &id, &["--detach"]);
    assert_ne!(st, 0);
    assert!(
        err.contains("memory.nonsense"),
        "error names the key: {err}"
    );
    assert_gone(&oci, &id);
    // A cpuset outside the machine's CPUs: the kernel refuses the write.
    b.config["linux"]["resources"] = json!({"cpu": {"cpus": "63"}});
    b.save();
    let id = oci.id("cpus");
    let (st, _, err) = oci.run_bundle(&b, &id, &["--detach"]);
    assert_ne!(st, 0);
    assert!(err.contains("cpuset.cpus"), "error names the file: {err}");
    assert_gone(&oci, &id);
}

#[test]
#[ignore = "runs in the v2 VM through v2_guest_suite"]
fn guest_device_filter_allows_denies_and_is_replaced() {
    in_v2_guest();
    let oci = Oci::new("v2dev");
    let mut b = Bundle::busybox(&["sleep", "1000"]);
    // A node of /dev/kmsg (c 1 11), which is not among the default devices,
    // made inside (on /dev, the writable tmpfs) with CAP_MKNOD (mknod is allowed for every device, as
    // runc does): writing to it needs no capability, so only the device
    // filter decides. (Nodes of linux.devices are allowed automatically.)
    for set in ["bounding", "effective", "permitted"] {
        b.config["process"]["capabilities"][set]
            .as_array_mut()
            .unwrap()
            .push(json!("CAP_MKNOD"));
    }
    let id = start(
        &oci,
        &mut b,
        "d",
        json!({"devices": [{"allow": false, "access": "rwm"}]}),
    );
    let (st, out) = sh(&oci, &id, "mknod /dev/xkmsg c 1 11");
    assert_eq!(st, 0, "mknod: {out}");
    let (st, out) = sh(&oci, &id, "echo wren-v2-test >/dev/xkmsg");
    assert_ne!(st, 0, "denied device written: {out}");
    assert!(out.contains("Operation not permitted"), "{out}");
    let (st, out) = sh(&oci, &id, "head -c 4 /dev/zero | wc -c; echo x >/dev/null");
    assert_eq!((st, out.trim()), (0, "4"), "default devices stay allowed");
    // update replaces the program: now c 1 11 may be written.
    update_json(
        &oci,
        &b,
        &id,
        json!({"devices": [{"allow": false, "access": "rwm"},
                           {"allow": true, "type": "c", "major": 1, "minor": 11, "access": "w"}]}),
    );
    let (st, out) = sh(&oci, &id, "echo wren-v2-test >/dev/xkmsg");
    assert_eq!(st, 0, "allowed after update: {out}");
    // ... but not read (access "w" only).
    let (st, out) = sh(&oci, &id, "head -c1 /dev/xkmsg");
    assert_ne!(st, 0, "read of a write-only rule: {out}");
    assert!(out.contains("Operation not permitted"), "{out}");
    // And back: deny again.
    update_json(
        &oci,
        &b,
        &id,
        json!({"devices": [{"allow": false, "access": "rwm"}]}),
    );
    let (st, out) = sh(&oci, &id, "echo wren-v2-test >/dev/xkmsg");
    assert_ne!(st, 0, "denied again after the second update: {out}");
    oci.ok(&["delete", "--force", &id]);
    assert_gone(&oci, &id);
}

#[test]
#[ignore = "runs in the v2 VM through v2_guest_suite"]
fn guest_pause_resume_through_cgroup_freeze() {
    in_v2_guest();
    let oci = Oci::new("v2frz");
    let mut b = Bundle::busybox(&["sleep", "1000"]);
    let id = start(&oci, &mut b, "f", json!({}));
    let dir = cg(&id);
    oci.ok(&["pause", &id]);
    assert_eq!(read(&dir, "cgroup.freeze"), "1");
    assert!(read(&dir, "cgroup.events").contains("frozen 1"));
    assert_eq!(oci.state(&id)["status"], "paused");
    let pid = oci.init_pid(&id);
    let st = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert!(
        st.contains("State:\tS"),
        "frozen task sleeps in the freezer"
    );
    oci.ok(&["resume", &id]);
    assert_eq!(read(&dir, "cgroup.freeze"), "0");
    assert!(read(&dir, "cgroup.events").contains("frozen 0"));
    assert_eq!(oci.state(&id)["status"], "running");
    let (st, out) = sh(&oci, &id, "echo alive");
    assert_eq!((st, out.trim()), (0, "alive"));
    oci.ok(&["delete", "--force", &id]);
    assert_gone(&oci, &id);
}

#[test]
#[ignore = "runs in the v2 VM through v2_guest_suite"]
fn guest_oom_kill_reported_by_events() {
    in_v2_guest();
    let oci = Oci::new("v2oom");
    let mut b = Bundle::busybox(&["sleep", "1000"]);
    let id = start(
        &oci,
        &mut b,
        "o",
        json!({"memory": {"limit": 33554432, "swap": 33554432}}),
    );
    let dir = cg(&id);
    let log = b.path().join("events.log");
    let events = wren_tests::spawn_registered(
        oci.cmd()
            .args(["events", "--interval", "1h", &id])
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(Stdio::null())
            .stdin(Stdio::null()),
    );
    // Let events start watching memory.events before the hog runs.
    std::thread::sleep(std::time::Duration::from_millis(500));
    // tail keeps an endless line of /dev/zero in memory.
    let (st, out) = sh(&oci, &id, "tail /dev/zero");
    assert_eq!(st, 137, "the hog is SIGKILLed by the OOM killer: {out}");
    let ev = read(&dir, "memory.events");
    assert!(
        ev.lines()
            .any(|l| l.starts_with("oom_kill ") && l != "oom_kill 0"),
        "memory.events: {ev}"
    );
    let seen = wait_for(20, || {
        std::fs::read_to_string(&log)
            .map(|s| s.contains(r#""type":"oom""#))
            .unwrap_or(false)
    });
    wren_tests::kill_registered(events);
    assert!(
        seen,
        "no oom event: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    // The init survived (memory.oom.group unset): only the hog died.
    assert!(alive(oci.init_pid(&id)));
    oci.ok(&["delete", "--force", &id]);
    assert_gone(&oci, &id);
}

#[test]
#[ignore = "runs in the v2 VM through v2_guest_suite"]
fn guest_nested_cgroups_delegated_to_the_container() {
    in_v2_guest();
    let oci = Oci::new("v2nest");
    let mut b = Bundle::busybox(&["sleep", "1000"]);
    // A writable cgroupfs in the container's cgroup namespace.
    for m in b.config["mounts"].as_array_mut().unwrap() {
        if m["type"] == "cgroup" {
            m["options"] = json!(["nosuid", "noexec", "nodev", "relatime", "rw"]);
        }
    }
    let id = start(&oci, &mut b, "n", json!({"pids": {"limit": 100}}));
    let dir = cg(&id);
    // What a container's own manager does: move itself (and this shell)
    // out of the root (no internal processes), enable controllers, make a
    // limited child.
    let (st, out) = sh(
        &oci,
        &id,
        "cd /sys/fs/cgroup && mkdir init child && echo 1 >init/cgroup.procs && \
         echo $$ >init/cgroup.procs && \
         echo +pids +memory >cgroup.subtree_control && echo 7 >child/pids.max && \
         cat cgroup.subtree_control",
    );
    assert_eq!(st, 0, "delegation inside: {out}");
    assert_eq!(out.trim(), "memory pids");
    assert_eq!(read(&dir.join("child"), "pids.max"), "7");
    assert_eq!(
        read(&dir.join("init"), "cgroup.procs"),
        oci.init_pid(&id).to_string()
    );
    // exec --cgroup places a process in the sub-cgroup; its limit holds.
    let (st, out) = {
        let o = oci.run(&[
            "exec",
            "--cgroup",
            "child",
            &id,
            "sh",
            "-c",
            "cat /proc/self/cgroup; for i in 1 2 3 4 5 6 7 8; do sleep 5 & done 2>&1 | head -n1",
        ]);
        (
            o.status.code().unwrap_or(-1),
            text(&o.stdout) + &text(&o.stderr),
        )
    };
    assert!(
        out.starts_with("0::/child\n"),
        "exec --cgroup child: {st} {out}"
    );
    assert!(
        out.contains("Resource temporarily unavailable") || out.contains("fork"),
        "child's pids.max 7: {out}"
    );
    // A plain exec cannot join the container's root cgroup any more (it
    // has controllers in subtree_control, EBUSY): like runc it follows the
    // init into its sub-cgroup.
    let (st, out) = sh(&oci, &id, "cat /proc/self/cgroup");
    assert_eq!(
        (st, out.as_str()),
        (0, "0::/init\n"),
        "plain exec after delegation"
    );
    oci.ok(&["delete", "--force", &id]);
    assert_gone(&oci, &id);
    assert!(!dir.exists(), "nested cgroups removed with the container");
}

#[test]
#[ignore = "runs in the v2 VM through v2_guest_suite"]
fn guest_no_cgroup_left_after_sigkill_of_init() {
    in_v2_guest();
    let oci = Oci::new("v2kill");
    let mut b = Bundle::busybox(&["sleep", "1000"]);
    let id = start(&oci, &mut b, "k", json!({"memory": {"limit": 67108864}}));
    let extra = oci.exec_detached(&b, &id, "x", &[]);
    let pid = oci.init_pid(&id);
    assert!(cg(&id).exists());
    // SAFETY: signalling the container's init, a process this test made.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    assert!(wait_for(10, || !alive(pid) && !alive(extra)));
    assert!(wait_for(10, || oci.state(&id)["status"] == "stopped"));
    oci.ok(&["delete", &id]);
    assert_gone(&oci, &id);
    assert!(cgroup_dirs(&id).is_empty());
}

#[test]
#[ignore = "runs in the v2 VM through v2_guest_suite"]
fn guest_same_files_as_runc() {
    in_v2_guest();
    let Some(runc) = wren_tests::runc::Runc::find("cgroup_v2_vm::guest_same_files_as_runc") else {
        return;
    };
    let oci = Oci::new("v2runc");
    let resources = json!({
        "memory": {"limit": 67108864, "swap": 100663296, "reservation": 16777216},
        "cpu": {"quota": 50000, "period": 100000, "cpus": "0", "mems": "0"},
        "pids": {"limit": 50},
        "blockIO": {"weight": 500},
        "unified": {"memory.high": "104857600", "memory.oom.group": "1"}
    });
    // Explicit cgroupsPath for both: runc's default parent differs.
    let start_with = |name: &str, id: &str| {
        let mut b = Bundle::busybox(&["sleep", "1000"]);
        b.config["linux"]["resources"] = resources.clone();
        b.config["linux"]["cgroupsPath"] = json!(format!("/v2cmp/{name}-{id}"));
        b.save();
        b
    };
    let wid = oci.id("w");
    let rid = runc.id("r");
    let wb = start_with("wren", &wid);
    let rb = start_with("runc", &rid);
    oci.ok(&["run", "--detach", "--bundle", wb.path_str(), &wid]);
    let out = runc.run(&["run", "--detach", "--bundle", rb.path_str(), &rid]);
    assert!(out.status.success(), "runc run: {}", text(&out.stderr));
    let wdir = PathBuf::from(format!("/sys/fs/cgroup/v2cmp/wren-{wid}"));
    let rdir = PathBuf::from(format!("/sys/fs/cgroup/v2cmp/runc-{rid}"));
    let files = [
        "memory.max",
        "memory.swap.max",
        "memory.low",
        "memory.high",
        "memory.oom.group",
        "cpu.max",
        "cpuset.cpus",
        "cpuset.mems",
        "pids.max",
        "io.weight",
        "io.bfq.weight",
    ];
    let compare = |when: &str| {
        for f in files {
            if !rdir.join(f).exists() {
                continue;
            }
            assert_eq!(read(&wdir, f), read(&rdir, f), "{f} {when}: wren vs runc");
        }
    };
    compare("after run");
    for (bin, id) in [(&oci.binary, &wid), (&runc.binary, &rid)] {
        let root = if bin == &oci.binary {
            oci.root.path()
        } else {
            runc.root.path()
        };
        let out = wren_tests::run(
            Command::new(bin)
                .arg("--root")
                .arg(root)
                .args(["update", "--memory", "128m", "--memory-swap", "256m"])
                .args(["--pids-limit", "200", "--cpu-quota", "20000", id]),
        );
        assert!(
            out.status.success(),
            "{} update: {}",
            bin.display(),
            text(&out.stderr)
        );
    }
    compare("after update");
    let out = runc.run(&["delete", "--force", &rid]);
    assert!(out.status.success(), "runc delete: {}", text(&out.stderr));
    oci.ok(&["delete", "--force", &wid]);
    assert!(!wdir.exists() && !rdir.exists());
    let _ = std::fs::remove_dir("/sys/fs/cgroup/v2cmp");
}

/// On a host where systemd does not run (these build machines: hybrid, no
/// systemd), `--systemd-cgroup` fails naming the socket it tried, and
/// leaves no state, cgroup or process.
#[test]
fn systemd_driver_without_systemd_fails_cleanly() {
    const TEST: &str = "cgroup_v2_vm::systemd_driver_without_systemd_fails_cleanly";
    if !wren_tests::require_root(TEST) {
        return;
    }
    if Path::new("/run/systemd/system").exists() {
        wren_tests::skip(TEST, Skip::Host("systemd runs here".into()));
        return;
    }
    let oci = Oci::new("sdnone");
    let mut b = Bundle::busybox(&["sleep", "1000"]);
    let id = oci.id("c");
    b.config["linux"]["cgroupsPath"] = json!(format!("system.slice:wren:{id}"));
    b.config["linux"]["resources"] = json!({"pids": {"limit": 20}});
    b.save();
    let out = oci.run(&[
        "--systemd-cgroup",
        "run",
        "--detach",
        "--bundle",
        b.path_str(),
        &id,
    ]);
    let err = text(&out.stderr);
    assert!(!out.status.success(), "created without systemd");
    assert!(
        err.contains(&format!("systemd unit wren-{id}.scope"))
            && err.contains("over D-Bus at unix:path=")
            && err.contains("No such file or directory"),
        "names the unit and the socket: {err}"
    );
    assert_gone(&oci, &id);
    let procs = wren_tests::run(Command::new("sh").args([
        "-c",
        &format!("grep -l 'wren-{id}.scope' /proc/[0-9]*/cgroup 2>/dev/null || true"),
    ]));
    assert_eq!(text(&procs.stdout).trim(), "", "processes left");
    // Nothing was made, not even the slice's directory.
    let made: Vec<_> = std::fs::read_dir("/sys/fs/cgroup")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| {
            e.path()
                .join("system.slice")
                .join(format!("wren-{id}.scope"))
        })
        .filter(|p| p.exists())
        .collect();
    assert!(made.is_empty(), "cgroups made: {made:?}");
}

/// As [`in_v2_guest`], and systemd is PID 1.
fn in_systemd_guest() {
    in_v2_guest();
    assert!(
        Path::new("/run/systemd/system").is_dir(),
        "systemd_vm_ tests need systemd as PID 1: run them through v2_systemd_guest_suite"
    );
}

/// `systemctl show -p NAME --value UNIT`.
fn unit_prop(unit: &str, name: &str) -> String {
    let out =
        wren_tests::run(Command::new("systemctl").args(["show", "-p", name, "--value", unit]));
    text(&out.stdout).trim().to_owned()
}

/// The unit is unknown to systemd and its cgroup and processes are gone.
fn assert_unit_gone(oci: &Oci, id: &str, unit: &str, dir: &Path) {
    assert_eq!(
        unit_prop(unit, "LoadState"),
        "not-found",
        "unit {unit} left behind"
    );
    assert!(!dir.exists(), "cgroup {} left behind", dir.display());
    assert_gone(oci, id);
    let procs = wren_tests::run(Command::new("sh").args([
        "-c",
        &format!("grep -l '{unit}' /proc/[0-9]*/cgroup 2>/dev/null || true"),
    ]));
    assert_eq!(text(&procs.stdout).trim(), "", "processes left in {unit}");
}

/// A detached container through `--systemd-cgroup` with `cgroups_path`.
fn sd_start(oci: &Oci, b: &mut Bundle, id: &str, cgroups_path: &str, resources: Value) {
    b.config["linux"]["resources"] = resources;
    b.config["linux"]["cgroupsPath"] = json!(cgroups_path);
    b.save();
    oci.ok(&[
        "--systemd-cgroup",
        "run",
        "--detach",
        "--bundle",
        b.path_str(),
        id,
    ]);
}

#[test]
#[ignore = "runs in the systemd v2 VM through v2_systemd_guest_suite"]
fn systemd_vm_scope_limits_update_reexec_delete() {
    in_systemd_guest();
    let oci = Oci::new("sdscope");
    let mut b = Bundle::busybox(&["sleep", "1000"]);
    let id = oci.id("c");
    // A nested slice that does not exist yet: systemd makes its parents.
    sd_start(
        &oci,
        &mut b,
        &id,
        &format!("wrentest-sub.slice:wren:{id}"),
        json!({
            "memory": {"limit": 67108864, "swap": 100663296, "reservation": 16777216},
            "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0"},
            "pids": {"limit": 50},
            "unified": {"memory.high": "104857600"}
        }),
    );
    let unit = format!("wren-{id}.scope");
    let rel = format!("/wrentest.slice/wrentest-sub.slice/{unit}");
    let dir = Path::new("/sys/fs/cgroup").join(rel.trim_start_matches('/'));
    let pid = oci.init_pid(&id);
    assert_eq!(
        std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap(),
        format!("0::{rel}\n")
    );
    let status = wren_tests::run(Command::new("systemctl").args(["status", "--no-pager", &unit]));
    assert!(
        status.status.success(),
        "systemctl status {unit}: {}",
        text(&status.stdout)
    );
    for (p, v) in [
        ("ActiveState", "active"),
        ("Slice", "wrentest-sub.slice"),
        ("Delegate", "yes"),
        ("MemoryMax", "67108864"),
        ("MemoryLow", "16777216"),
        ("MemoryHigh", "104857600"),
        ("MemorySwapMax", "33554432"),
        ("TasksMax", "50"),
        ("CPUWeight", "59"),
        ("CPUQuotaPerSecUSec", "500ms"),
        ("AllowedCPUs", "0"),
    ] {
        assert_eq!(unit_prop(&unit, p), v, "systemctl show -p {p} {unit}");
    }
    for (f, v) in [
        ("memory.max", "67108864"),
        ("memory.swap.max", "33554432"),
        ("memory.high", "104857600"),
        ("pids.max", "50"),
        ("cpu.weight", "59"),
        ("cpu.max", "50000 100000"),
        ("cpuset.cpus", "0"),
    ] {
        assert_eq!(read(&dir, f), v, "{f}");
    }
    // A fork bomb stops at the pids limit.
    let (st, out) = sh(
        &oci,
        &id,
        "i=0; while [ $i -lt 60 ]; do sleep 5 & i=$((i+1)); done 2>&1 | head -n1",
    );
    assert!(
        out.contains("Resource temporarily unavailable") || out.contains("fork"),
        "60 children under TasksMax 50: status {st}, {out}"
    );
    assert!(read(&dir, "pids.events").contains("max "), "pids.events");

    // update: systemd's view and the files.
    oci.ok(&[
        "update",
        "--memory",
        "128m",
        "--memory-swap",
        "256m",
        "--cpu-share",
        "1024",
        "--cpu-quota",
        "20000",
        "--pids-limit",
        "200",
        &id,
    ]);
    let after = [
        ("MemoryMax", "134217728", "memory.max"),
        ("MemorySwapMax", "134217728", "memory.swap.max"),
        ("TasksMax", "200", "pids.max"),
        ("CPUWeight", "100", "cpu.weight"),
        ("CPUQuotaPerSecUSec", "200ms", "cpu.max"),
    ];
    let check = |when: &str| {
        for (p, v, f) in after {
            assert_eq!(unit_prop(&unit, p), v, "systemctl show -p {p} {when}");
            let want = if f == "cpu.max" { "20000 100000" } else { v };
            assert_eq!(read(&dir, f), want, "{f} {when}");
        }
        assert_eq!(unit_prop(&unit, "ActiveState"), "active", "{when}");
        assert!(alive(oci.init_pid(&id)), "container runs {when}");
        let ctl = read(&dir, "cgroup.controllers");
        for c in ["cpu", "cpuset", "memory", "pids"] {
            assert!(
                ctl.split_whitespace().any(|x| x == c),
                "{c} in {ctl} {when}"
            );
        }
    };
    check("after update");
    // systemd re-executes itself: it keeps the unit, its limits and the
    // controllers (a cgroup made behind its back lost cpu here).
    let out = wren_tests::run(Command::new("systemctl").arg("daemon-reexec"));
    assert!(out.status.success(), "daemon-reexec: {}", text(&out.stderr));
    let out = wren_tests::run(Command::new("systemctl").arg("daemon-reload"));
    assert!(out.status.success(), "daemon-reload: {}", text(&out.stderr));
    check("after daemon-reexec and daemon-reload");
    assert_eq!(oci.state(&id)["status"], "running");

    oci.ok(&["delete", "--force", &id]);
    assert_unit_gone(&oci, &id, &unit, &dir);
}

#[test]
#[ignore = "runs in the systemd v2 VM through v2_systemd_guest_suite"]
fn systemd_vm_memory_hog_is_oom_killed() {
    in_systemd_guest();
    let oci = Oci::new("sdoom");
    let mut b = Bundle::busybox(&["sleep", "1000"]);
    let id = oci.id("o");
    sd_start(
        &oci,
        &mut b,
        &id,
        &format!("system.slice:wren:{id}"),
        json!({"memory": {"limit": 33554432, "swap": 33554432}}),
    );
    let unit = format!("wren-{id}.scope");
    let dir = Path::new("/sys/fs/cgroup/system.slice").join(&unit);
    assert_eq!(unit_prop(&unit, "MemoryMax"), "33554432");
    let (st, out) = sh(&oci, &id, "tail /dev/zero");
    assert_eq!(st, 137, "the hog is SIGKILLed by the OOM killer: {out}");
    let ev = read(&dir, "memory.events");
    assert!(
        ev.lines()
            .any(|l| l.starts_with("oom_kill ") && l != "oom_kill 0"),
        "memory.events: {ev}"
    );
    assert!(alive(oci.init_pid(&id)));
    oci.ok(&["delete", "--force", &id]);
    assert_unit_gone(&oci, &id, &unit, &dir);
}

#[test]
#[ignore = "runs in the systemd v2 VM through v2_systemd_guest_suite"]
fn systemd_vm_bad_input_leaves_nothing() {
    in_systemd_guest();
    let oci = Oci::new("sdbad");
    let mut b = Bundle::busybox(&["sleep", "1000"]);
    let try_create = |b: &mut Bundle, id: &str, path: &str, env: Option<(&str, &str)>| {
        b.config["linux"]["cgroupsPath"] = json!(path);
        b.config["linux"]["resources"] = json!({"pids": {"limit": 20}});
        b.save();
        let mut c = oci.cmd();
        c.args([
            "--systemd-cgroup",
            "run",
            "--detach",
            "--bundle",
            b.path_str(),
            id,
        ]);
        if let Some((k, v)) = env {
            c.env(k, v);
        }
        let out = wren_tests::run(&mut c);
        assert!(!out.status.success(), "create {id} with {path} succeeded");
        eprintln!("create with {path}: {}", text(&out.stderr).trim());
        text(&out.stderr)
    };
    // A unit name systemd refuses (a space).
    let id = oci.id("name");
    let err = try_create(&mut b, &id, "system.slice:wren:bad name", None);
    assert!(
        err.contains("wren-bad name.scope") && err.contains("StartTransientUnit"),
        "names the unit and the call: {err}"
    );
    assert_unit_gone(
        &oci,
        &id,
        "wren-bad name.scope",
        Path::new("/sys/fs/cgroup/system.slice/wren-bad name.scope"),
    );
    // A property systemd rejects (runc's org.systemd.property.* annotations).
    let id = oci.id("prop");
    b.config["annotations"] = json!({"org.systemd.property.NoSuchProperty": "1"});
    let err = try_create(&mut b, &id, &format!("system.slice:wren:{id}"), None);
    let unit = format!("wren-{id}.scope");
    assert!(
        err.contains(&unit) && err.contains("NoSuchProperty"),
        "names the unit and the property: {err}"
    );
    assert_unit_gone(
        &oci,
        &id,
        &unit,
        &Path::new("/sys/fs/cgroup/system.slice").join(&unit),
    );
    b.config["annotations"] = json!({});
    // A slice systemd does not take, and a path that is not slice:prefix:name.
    let id = oci.id("slice");
    let err = try_create(&mut b, &id, "bad@x.slice:wren:x", None);
    assert!(err.contains("bad@x.slice"), "names the slice: {err}");
    assert_gone(&oci, &id);
    let id = oci.id("path");
    let err = try_create(&mut b, &id, "/not/systemd", None);
    assert!(err.contains("slice:prefix:name"), "says the form: {err}");
    assert_gone(&oci, &id);
    // A failure after systemd made the unit (the kernel refuses a cpuset
    // outside the machine): the unit is stopped, nothing is left.
    let id = oci.id("late");
    b.config["linux"]["cgroupsPath"] = json!(format!("system.slice:wren:{id}"));
    b.config["linux"]["resources"] = json!({"cpu": {"cpus": "63"}});
    b.save();
    let out = oci.run(&[
        "--systemd-cgroup",
        "run",
        "--detach",
        "--bundle",
        b.path_str(),
        &id,
    ]);
    assert!(!out.status.success(), "cpuset 63 accepted");
    let err = text(&out.stderr);
    eprintln!("create with cpus 63: {}", err.trim());
    assert!(err.contains("cpuset.cpus"), "names the file: {err}");
    let unit = format!("wren-{id}.scope");
    assert_unit_gone(
        &oci,
        &id,
        &unit,
        &Path::new("/sys/fs/cgroup/system.slice").join(&unit),
    );
    // systemd not reachable: the error names the socket.
    let id = oci.id("nobus");
    let err = try_create(
        &mut b,
        &id,
        &format!("system.slice:wren:{id}"),
        Some(("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/run/wren-no-such-bus")),
    );
    let unit = format!("wren-{id}.scope");
    assert!(
        err.contains("/run/wren-no-such-bus"),
        "names the socket: {err}"
    );
    assert_unit_gone(
        &oci,
        &id,
        &unit,
        &Path::new("/sys/fs/cgroup/system.slice").join(&unit),
    );
}

#[test]
#[ignore = "runs in the systemd v2 VM through v2_systemd_guest_suite"]
fn systemd_vm_shim_under_containerd_makes_and_stops_the_scope() {
    use wren_tests::containerd::{ok, run_detached, task_pid, Containerd};
    in_systemd_guest();
    // The host's Debian containerd (1.6), its ctr passing the options file
    // as the runtime's ConfigPath.
    let c = Containerd::start("sdshim", true);
    let opts = c.dir.path().join("wren-options.toml");
    std::fs::write(&opts, "SystemdCgroup = true\n").expect("write options");
    let id = format!("sdshim{}", std::process::id());
    let unit = format!("wren-{id}.scope");
    let dir = Path::new("/sys/fs/cgroup/system.slice").join(&unit);
    run_detached(
        &c,
        &id,
        &[
            "--runtime-config-path",
            opts.to_str().unwrap(),
            "--cgroup",
            &format!("system.slice:wren:{id}"),
            "--memory-limit",
            "67108864",
        ],
        &["sleep", "1000"],
    );
    let pid = task_pid(&c, &id);
    assert_eq!(
        std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap(),
        format!("0::/system.slice/{unit}\n")
    );
    let status = wren_tests::run(Command::new("systemctl").args(["status", "--no-pager", &unit]));
    assert!(
        status.status.success(),
        "systemctl status {unit}: {}",
        text(&status.stdout)
    );
    assert_eq!(unit_prop(&unit, "MemoryMax"), "67108864");
    assert_eq!(read(&dir, "memory.max"), "67108864");
    // The shim talks to systemd only while creating: no D-Bus socket open
    // in the idle shim.
    let shims = wren_tests::containerd::shim_pids_in("sdshim", &id);
    assert!(!shims.is_empty(), "no shim for {id}");
    let bus_peers = bus_peer_inodes();
    for shim in &shims {
        let mine: Vec<String> = std::fs::read_dir(format!("/proc/{shim}/fd"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| std::fs::read_link(e.path()).ok())
            .filter_map(|l| {
                let l = l.to_string_lossy().into_owned();
                l.strip_prefix("socket:[")?
                    .strip_suffix(']')
                    .map(str::to_owned)
            })
            .collect();
        let threads = std::fs::read_dir(format!("/proc/{shim}/task")).map_or(0, |d| d.count());
        eprintln!(
            "idle shim {shim}: {threads} threads, {} sockets",
            mine.len()
        );
        assert!(
            !mine.iter().any(|i| bus_peers.contains(i)),
            "the idle shim {shim} holds a D-Bus connection"
        );
    }
    // Against a shim of the same build with the cgroupfs driver: the same
    // threads once idle; memory printed for the record (debug build).
    let plain = format!("{id}plain");
    run_detached(
        &c,
        &plain,
        &["--memory-limit", "67108864"],
        &["sleep", "1000"],
    );
    std::thread::sleep(std::time::Duration::from_secs(2));
    let sample = |cid: &str| {
        let shim = wren_tests::containerd::shim_pids_in("sdshim", cid)[0];
        let threads = std::fs::read_dir(format!("/proc/{shim}/task")).map_or(0, |d| d.count());
        let rollup =
            std::fs::read_to_string(format!("/proc/{shim}/smaps_rollup")).unwrap_or_default();
        let kb = |k: &str| {
            rollup
                .lines()
                .find(|l| l.starts_with(k))
                .and_then(|l| l.split_whitespace().nth(1))
                .unwrap_or("?")
                .to_string()
        };
        eprintln!(
            "idle shim of {cid}: {threads} threads, Pss {} kB, Private_Dirty {} kB",
            kb("Pss:"),
            kb("Private_Dirty:")
        );
        threads
    };
    assert_eq!(sample(&id), sample(&plain), "threads of the idle shims");
    ok(
        &c.ctr(&["task", "kill", "-s", "SIGKILL", &plain]),
        "task kill",
        &c,
    );
    assert!(wait_for(20, || wren_tests::containerd::task_status(
        &c, &plain
    ) == "STOPPED"));
    ok(&c.ctr(&["task", "delete", &plain]), "task delete", &c);
    ok(
        &c.ctr(&["container", "delete", &plain]),
        "container delete",
        &c,
    );
    ok(
        &c.ctr(&["task", "kill", "-s", "SIGKILL", &id]),
        "task kill",
        &c,
    );
    assert!(wait_for(20, || wren_tests::containerd::task_status(
        &c, &id
    ) == "STOPPED"));
    ok(&c.ctr(&["task", "delete", &id]), "task delete", &c);
    ok(
        &c.ctr(&["container", "delete", &id]),
        "container delete",
        &c,
    );
    assert!(
        wait_for(10, || unit_prop(&unit, "LoadState") == "not-found"),
        "unit {unit} left behind"
    );
    assert!(!dir.exists(), "cgroup {} left behind", dir.display());
    c.assert_clean(&id);
}

/// Inodes of the client ends of every connection to the system bus or to
/// systemd's private socket (`ss -x`: local path, local inode, peer inode).
fn bus_peer_inodes() -> Vec<String> {
    let out = wren_tests::run(Command::new("ss").args(["-x", "-H"]));
    text(&out.stdout)
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let local = f.get(4)?;
            (local.ends_with("system_bus_socket") || local.ends_with("systemd/private"))
                .then(|| f.get(7).map(|s| s.to_string()))
                .flatten()
        })
        .collect()
}

#[test]
#[ignore = "runs in the systemd v2 VM through v2_systemd_guest_suite"]
fn systemd_vm_cri_pod_under_a_kubelet_style_slice() {
    use wren_tests::cri::{cri_tests_can_run, Cri};
    in_systemd_guest();
    // The guest has the host's tools: a skip here would hide the test.
    assert!(
        cri_tests_can_run("cgroup_v2_vm::systemd_vm_cri_pod_under_a_kubelet_style_slice"),
        "the CRI test cannot run in the guest (see the skip above)"
    );
    // The host's containerd 1.6 with CRI; the "wren-systemd" handler has
    // SystemdCgroup = true. A kubelet with the systemd driver names the
    // pod's slice as its parent; containerd then asks for
    // `<slice>:cri-containerd:<id>`, and systemd makes the missing
    // kubepods.slice/kubepods-burstable.slice on the way.
    let cri = Cri::start("sdcri");
    let uid = format!("{}", std::process::id());
    let slice = format!("kubepods-burstable-pod{uid}.slice");
    let slice_dir =
        Path::new("/sys/fs/cgroup/kubepods.slice/kubepods-burstable.slice").join(&slice);
    let mut podcfg = cri.pod_config("sd");
    if let Some(l) = podcfg.linux.as_mut() {
        l.cgroup_parent = slice.clone();
    }
    let pod = cri
        .run_pod_with(&podcfg, "wren-systemd")
        .unwrap_or_else(|e| panic!("RunPodSandbox: {e}\n{}", cri.containerd.log()));
    let mut cfg = cri.container_config("app", &["sleep", "1000"]);
    cfg.linux = None;
    let id = cri
        .create_container(&pod, &podcfg, cfg)
        .unwrap_or_else(|e| panic!("CreateContainer: {e}\n{}", cri.containerd.log()));
    cri.start_container(&id).expect("StartContainer");
    let units = [
        format!("cri-containerd-{pod}.scope"),
        format!("cri-containerd-{id}.scope"),
    ];
    for unit in &units {
        let status =
            wren_tests::run(Command::new("systemctl").args(["status", "--no-pager", unit]));
        assert!(
            status.status.success(),
            "systemctl status {unit}: {}",
            text(&status.stdout)
        );
        assert_eq!(unit_prop(unit, "Slice"), slice, "{unit}");
        assert_eq!(unit_prop(unit, "ActiveState"), "active", "{unit}");
        let procs = read(&slice_dir.join(unit), "cgroup.procs");
        assert!(!procs.is_empty(), "no process in {unit}");
    }
    // In-place resize through CRI: the shim updates systemd's view and
    // the files.
    let unit = &units[1];
    let mut rs = cri.rs();
    cri.block(
        rs.update_container_resources(k8s_cri::v1::UpdateContainerResourcesRequest {
            container_id: id.clone(),
            linux: Some(k8s_cri::v1::LinuxContainerResources {
                memory_limit_in_bytes: 64 << 20,
                cpu_period: 100_000,
                cpu_quota: 50_000,
                ..Default::default()
            }),
            ..Default::default()
        }),
    )
    .expect("UpdateContainerResources");
    assert_eq!(unit_prop(unit, "MemoryMax"), "67108864");
    assert_eq!(unit_prop(unit, "CPUQuotaPerSecUSec"), "500ms");
    let dir = slice_dir.join(unit);
    assert_eq!(read(&dir, "memory.max"), "67108864");
    assert_eq!(read(&dir, "cpu.max"), "50000 100000");
    cri.teardown(&pod);
    for unit in &units {
        assert!(
            wait_for(10, || unit_prop(unit, "LoadState") == "not-found"),
            "unit {unit} left behind"
        );
        assert!(
            !slice_dir.join(unit).exists(),
            "cgroup of {unit} left behind"
        );
    }
    // The kubelet removes the pod's slice; here the test does.
    let out = wren_tests::run(Command::new("systemctl").args(["stop", &slice]));
    assert!(out.status.success(), "stop {slice}: {}", text(&out.stderr));
}

#[test]
#[ignore = "runs in the systemd v2 VM through v2_systemd_guest_suite"]
fn systemd_vm_pids_limit_of_one() {
    in_systemd_guest();
    // The init's two stages share the scope for a moment: TasksMax must
    // come after the first has gone, as pids.max does without systemd.
    let oci = Oci::new("sdpids");
    let mut b = Bundle::busybox(&["sleep", "1000"]);
    let id = oci.id("p");
    sd_start(
        &oci,
        &mut b,
        &id,
        &format!("system.slice:wren:{id}"),
        json!({"pids": {"limit": 1}}),
    );
    let unit = format!("wren-{id}.scope");
    let dir = Path::new("/sys/fs/cgroup/system.slice").join(&unit);
    assert_eq!(unit_prop(&unit, "TasksMax"), "1");
    assert_eq!(read(&dir, "pids.max"), "1");
    assert!(alive(oci.init_pid(&id)));
    oci.ok(&["delete", "--force", &id]);
    assert_unit_gone(&oci, &id, &unit, &dir);
}

/// Panics unless this runs on a hybrid host (v1 controllers, cgroup2 at
/// /sys/fs/cgroup/unified) with systemd as PID 1: the `--hybrid` VM.
fn in_hybrid_guest() {
    let mounts = std::fs::read_to_string("/proc/self/mounts").expect("mounts");
    let has = |dir: &str, fs: &str| {
        mounts.lines().any(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            f.get(1) == Some(&dir) && f.get(2) == Some(&fs)
        })
    };
    assert!(
        has("/sys/fs/cgroup/unified", "cgroup2")
            && has("/sys/fs/cgroup/memory", "cgroup")
            && has("/sys/fs/cgroup/systemd", "cgroup"),
        "hybrid_vm_ tests need a hybrid host: run them through hybrid_systemd_guest_suite"
    );
    assert!(
        Path::new("/run/systemd/system").is_dir(),
        "hybrid_vm_ tests need systemd as PID 1"
    );
    assert!(wren_tests::require_root("guest"), "guest tests run as root");
}

/// The directories named `rel` (`/system.slice/x.scope`) in every v1
/// hierarchy and the cgroup2 one (co-mounted ones through their mount),
/// except v1 `misc`, which neither wren nor runc manages (OCI has no v1
/// misc resource; the container stays in its root there).
fn hybrid_dirs(rel: &str) -> Vec<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").expect("mounts");
    mounts
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (matches!(f.get(2), Some(&"cgroup") | Some(&"cgroup2"))
                && f[1] != "/sys/fs/cgroup/misc")
                .then(|| Path::new(f[1]).join(rel.trim_start_matches('/')))
        })
        .collect()
}

/// No directory of `unit` in any hierarchy, and systemd forgot it.
fn assert_hybrid_unit_gone(oci: &Oci, id: &str, unit: &str) {
    assert_eq!(
        unit_prop(unit, "LoadState"),
        "not-found",
        "unit {unit} left behind"
    );
    let left: Vec<_> = hybrid_dirs(&format!("/system.slice/{unit}"))
        .into_iter()
        .filter(|d| d.exists())
        .collect();
    assert!(left.is_empty(), "cgroups of {unit} left behind: {left:?}");
    assert_gone(oci, id);
    let procs = wren_tests::run(Command::new("sh").args([
        "-c",
        &format!("grep -l '{unit}' /proc/[0-9]*/cgroup 2>/dev/null || true"),
    ]));
    assert_eq!(text(&procs.stdout).trim(), "", "processes left in {unit}");
}

#[test]
#[ignore = "runs in the hybrid systemd VM through hybrid_systemd_guest_suite"]
fn hybrid_vm_scope_in_every_hierarchy_limits_devices_update_reexec_delete() {
    in_hybrid_guest();
    let oci = Oci::new("hyscope");
    let mut b = Bundle::busybox(&["sleep", "1000"]);
    let id = oci.id("c");
    sd_start(
        &oci,
        &mut b,
        &id,
        &format!("system.slice:wren:{id}"),
        json!({
            "memory": {"limit": 67108864},
            "cpu": {"shares": 512, "quota": 50000, "period": 100000},
            "pids": {"limit": 50},
            "devices": [{"allow": false, "access": "rwm"}]
        }),
    );
    let unit = format!("wren-{id}.scope");
    let rel = format!("/system.slice/{unit}");
    let v1 = |c: &str| Path::new("/sys/fs/cgroup").join(c).join(&rel[1..]);
    let pid = oci.init_pid(&id);
    // In the scope in every hierarchy: systemd's (name=systemd, unified,
    // memory, pids, cpu, devices, blkio) and wren's (cpuset, freezer...).
    let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    for l in cg.lines().filter(|l| !l.ends_with(":misc:/")) {
        assert!(l.ends_with(&format!(":{rel}")), "{l} in\n{cg}");
    }
    for d in hybrid_dirs(&rel) {
        assert!(d.is_dir(), "{} missing", d.display());
    }
    let status = wren_tests::run(Command::new("systemctl").args(["status", "--no-pager", &unit]));
    assert!(
        status.status.success(),
        "systemctl status {unit}: {}",
        text(&status.stdout)
    );
    // The v1 property names.
    for (p, v) in [
        ("ActiveState", "active"),
        ("Delegate", "yes"),
        ("MemoryLimit", "67108864"),
        ("CPUShares", "512"),
        ("CPUQuotaPerSecUSec", "500ms"),
        ("TasksMax", "50"),
        ("DevicePolicy", "strict"),
    ] {
        assert_eq!(unit_prop(&unit, p), v, "systemctl show -p {p} {unit}");
    }
    for (c, f, v) in [
        ("memory", "memory.limit_in_bytes", "67108864"),
        ("cpu,cpuacct", "cpu.shares", "512"),
        ("cpu,cpuacct", "cpu.cfs_quota_us", "50000"),
        ("pids", "pids.max", "50"),
    ] {
        assert_eq!(read(&v1(c), f), v, "{c}/{f}");
    }
    // Devices: wren's list (deny all + the defaults) is what systemd
    // writes back when it re-applies the unit (a daemon-reload gave "a
    // *:* rwm", every device, before the unit got DevicePolicy=strict).
    let devices = read(&v1("devices"), "devices.list");
    eprintln!("devices.list:\n{devices}");
    assert!(!devices.contains("a *:*"), "allow-all: {devices}");
    for want in ["c 1:3 rwm", "c 136:* rwm", "c *:* m", "b *:* m"] {
        assert!(devices.lines().any(|l| l == want), "{want} in {devices}");
    }
    let allow = unit_prop(&unit, "DeviceAllow");
    assert!(allow.contains("/dev/char/1:3 rwm"), "DeviceAllow: {allow}");
    let sorted = |s: &str| {
        let mut v: Vec<String> = s.lines().map(str::to_owned).collect();
        v.sort();
        v
    };
    let (st, out) = sh(&oci, &id, "echo x >/dev/null && head -c1 /dev/zero | wc -c");
    assert_eq!((st, out.trim()), (0, "1"), "/dev/null and /dev/zero");
    // A fork bomb stops at the pids limit.
    let (st, out) = sh(
        &oci,
        &id,
        "i=0; while [ $i -lt 60 ]; do sleep 5 & i=$((i+1)); done 2>&1 | head -n1",
    );
    assert!(
        out.contains("Resource temporarily unavailable") || out.contains("fork"),
        "60 children under TasksMax 50: status {st}, {out}"
    );
    // update: systemd's view and the files.
    oci.ok(&[
        "update",
        "--memory",
        "128m",
        "--cpu-share",
        "1024",
        "--cpu-quota",
        "20000",
        "--pids-limit",
        "200",
        &id,
    ]);
    let check = |when: &str| {
        for (p, v, c, f, fv) in [
            (
                "MemoryLimit",
                "134217728",
                "memory",
                "memory.limit_in_bytes",
                "134217728",
            ),
            ("CPUShares", "1024", "cpu,cpuacct", "cpu.shares", "1024"),
            (
                "CPUQuotaPerSecUSec",
                "200ms",
                "cpu,cpuacct",
                "cpu.cfs_quota_us",
                "20000",
            ),
            ("TasksMax", "200", "pids", "pids.max", "200"),
        ] {
            assert_eq!(unit_prop(&unit, p), v, "systemctl show -p {p} {when}");
            assert_eq!(read(&v1(c), f), fv, "{c}/{f} {when}");
        }
        assert_eq!(unit_prop(&unit, "ActiveState"), "active", "{when}");
        assert!(alive(oci.init_pid(&id)), "container runs {when}");
        assert_eq!(
            sorted(&read(&v1("devices"), "devices.list")),
            sorted(&devices),
            "devices.list {when}"
        );
    };
    check("after update");
    for cmd in ["daemon-reload", "daemon-reexec", "daemon-reload"] {
        let out = wren_tests::run(Command::new("systemctl").arg(cmd));
        assert!(out.status.success(), "{cmd}: {}", text(&out.stderr));
    }
    check("after daemon-reload and daemon-reexec");
    let (st, out) = sh(&oci, &id, "echo x >/dev/null && echo ok");
    assert_eq!((st, out.trim()), (0, "ok"), "/dev/null after reload");
    assert_eq!(oci.state(&id)["status"], "running");
    oci.ok(&["delete", "--force", &id]);
    assert_hybrid_unit_gone(&oci, &id, &unit);
}

#[test]
#[ignore = "runs in the hybrid systemd VM through hybrid_systemd_guest_suite"]
fn hybrid_vm_memory_hog_is_oom_killed() {
    in_hybrid_guest();
    let oci = Oci::new("hyoom");
    let mut b = Bundle::busybox(&["sleep", "1000"]);
    let id = oci.id("o");
    sd_start(
        &oci,
        &mut b,
        &id,
        &format!("system.slice:wren:{id}"),
        json!({"memory": {"limit": 33554432, "swap": 33554432}}),
    );
    let unit = format!("wren-{id}.scope");
    assert_eq!(unit_prop(&unit, "MemoryLimit"), "33554432");
    let (st, out) = sh(&oci, &id, "tail /dev/zero");
    assert_eq!(st, 137, "the hog is SIGKILLed by the OOM killer: {out}");
    let dir = Path::new("/sys/fs/cgroup/memory/system.slice").join(&unit);
    let oom = read(&dir, "memory.oom_control");
    assert!(
        oom.lines()
            .any(|l| l.starts_with("oom_kill ") && l != "oom_kill 0"),
        "memory.oom_control: {oom}"
    );
    assert!(alive(oci.init_pid(&id)));
    oci.ok(&["delete", "--force", &id]);
    assert_hybrid_unit_gone(&oci, &id, &unit);
}

#[test]
#[ignore = "runs in the hybrid systemd VM through hybrid_systemd_guest_suite"]
fn hybrid_vm_bad_input_leaves_nothing() {
    in_hybrid_guest();
    let oci = Oci::new("hybad");
    let mut b = Bundle::busybox(&["sleep", "1000"]);
    // A property systemd rejects.
    let id = oci.id("prop");
    b.config["annotations"] = json!({"org.systemd.property.NoSuchProperty": "1"});
    b.config["linux"]["cgroupsPath"] = json!(format!("system.slice:wren:{id}"));
    b.config["linux"]["resources"] = json!({"pids": {"limit": 20}, "memory": {"limit": 67108864}});
    b.save();
    let out = oci.run(&[
        "--systemd-cgroup",
        "run",
        "--detach",
        "--bundle",
        b.path_str(),
        &id,
    ]);
    let err = text(&out.stderr);
    let unit = format!("wren-{id}.scope");
    assert!(!out.status.success(), "created with NoSuchProperty");
    assert!(
        err.contains(&unit) && err.contains("NoSuchProperty"),
        "names the unit and the property: {err}"
    );
    assert_hybrid_unit_gone(&oci, &id, &unit);
    // A failure after systemd made the unit: a cpuset outside the machine
    // (v1 cpuset is wren's: systemd does not manage it on v1).
    b.config["annotations"] = json!({});
    let id = oci.id("late");
    b.config["linux"]["cgroupsPath"] = json!(format!("system.slice:wren:{id}"));
    b.config["linux"]["resources"] = json!({"cpu": {"cpus": "63"}});
    b.save();
    let out = oci.run(&[
        "--systemd-cgroup",
        "run",
        "--detach",
        "--bundle",
        b.path_str(),
        &id,
    ]);
    let err = text(&out.stderr);
    assert!(!out.status.success(), "cpuset 63 accepted");
    assert!(err.contains("cpuset.cpus"), "names the file: {err}");
    assert_hybrid_unit_gone(&oci, &id, &format!("wren-{id}.scope"));
}

#[test]
#[ignore = "runs in the hybrid systemd VM through hybrid_systemd_guest_suite"]
fn hybrid_vm_shim_under_containerd_makes_and_stops_the_scope() {
    use wren_tests::containerd::{ok, run_detached, task_pid, Containerd};
    in_hybrid_guest();
    let c = Containerd::start("hyshim", true);
    let opts = c.dir.path().join("wren-options.toml");
    std::fs::write(&opts, "SystemdCgroup = true\n").expect("write options");
    let id = format!("hyshim{}", std::process::id());
    let unit = format!("wren-{id}.scope");
    run_detached(
        &c,
        &id,
        &[
            "--runtime-config-path",
            opts.to_str().unwrap(),
            "--cgroup",
            &format!("system.slice:wren:{id}"),
            "--memory-limit",
            "67108864",
        ],
        &["sleep", "1000"],
    );
    let pid = task_pid(&c, &id);
    let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    for l in cg.lines().filter(|l| !l.ends_with(":misc:/")) {
        assert!(
            l.ends_with(&format!(":/system.slice/{unit}")),
            "{l} in\n{cg}"
        );
    }
    assert_eq!(unit_prop(&unit, "ActiveState"), "active");
    assert_eq!(unit_prop(&unit, "MemoryLimit"), "67108864");
    assert_eq!(unit_prop(&unit, "DevicePolicy"), "strict");
    let mem = Path::new("/sys/fs/cgroup/memory/system.slice").join(&unit);
    assert_eq!(read(&mem, "memory.limit_in_bytes"), "67108864");
    let devices = Path::new("/sys/fs/cgroup/devices/system.slice").join(&unit);
    let sorted = |s: String| {
        let mut v: Vec<String> = s.lines().map(str::to_owned).collect();
        v.sort();
        v
    };
    let before = sorted(read(&devices, "devices.list"));
    assert!(
        !before.iter().any(|l| l.starts_with("a ")),
        "allow-all: {before:?}"
    );
    let out = wren_tests::run(Command::new("systemctl").arg("daemon-reload"));
    assert!(out.status.success(), "daemon-reload: {}", text(&out.stderr));
    assert_eq!(
        sorted(read(&devices, "devices.list")),
        before,
        "after daemon-reload"
    );
    ok(
        &c.ctr(&["task", "kill", "-s", "SIGKILL", &id]),
        "task kill",
        &c,
    );
    assert!(wait_for(20, || wren_tests::containerd::task_status(
        &c, &id
    ) == "STOPPED"));
    ok(&c.ctr(&["task", "delete", &id]), "task delete", &c);
    ok(
        &c.ctr(&["container", "delete", &id]),
        "container delete",
        &c,
    );
    assert!(
        wait_for(10, || unit_prop(&unit, "LoadState") == "not-found"),
        "unit {unit} left behind"
    );
    let left: Vec<_> = hybrid_dirs(&format!("/system.slice/{unit}"))
        .into_iter()
        .filter(|d| d.exists())
        .collect();
    assert!(left.is_empty(), "cgroups left behind: {left:?}");
    c.assert_clean(&id);
}

/// Enters the sid tree (criu 4.2.1) as tests/tests/checkpoint.rs does, with
/// systemd's and the system bus's sockets bound in, so wren-oci there
/// reaches systemd: `$1` is the tree, the rest the command.
const SID_ENTER: &str = r#"T=$1; shift
mount --bind "$T" "$T"; mount --make-private "$T"
mount -t proc proc "$T/proc"
mount --rbind /sys "$T/sys"; mount --make-rslave "$T/sys"
mount --rbind /dev "$T/dev"; mount --make-rslave "$T/dev"
mkdir -p "$T/run/criu" "$T/run/dbus" "$T/run/systemd"
mount -t tmpfs tmpfs "$T/run/criu"
mount --bind /run/dbus "$T/run/dbus"
mount --rbind /run/systemd "$T/run/systemd"
mkdir -p "$T/.oldroot"
cd "$T"; pivot_root . .oldroot; cd /
umount -l /.oldroot
exec "$@""#;

/// Checkpoint and restore with the systemd driver: a counter container in
/// a scope is dumped (the unit goes with it), then restored under
/// `--systemd-cgroup` into a new scope made through systemd with criu in
/// it, where it counts on; delete stops the unit. criu runs from the sid
/// tree after the modules its kernel probe needs are loaded (the guest
/// kernel has sock-diag, tun, veth and nfnetlink as modules: without them
/// `criu check` fails with "Diag module missing", "Unable to create a veth
/// pair", "Unable to initialize Netlink socket").
#[test]
#[ignore = "runs in the systemd v2 VM through v2_systemd_guest_suite"]
fn systemd_vm_checkpoint_restore_into_a_scope() {
    const TEST: &str = "cgroup_v2_vm::systemd_vm_checkpoint_restore_into_a_scope";
    in_systemd_guest();
    let Some(tree) = wren_tests::tree::get(TEST, "sid") else {
        return;
    };
    if !tree.join("usr/sbin/criu").exists() {
        wren_tests::skip(TEST, Skip::Missing("criu in the sid tree".into()));
        return;
    }
    for m in [
        "unix_diag",
        "inet_diag",
        "tcp_diag",
        "udp_diag",
        "netlink_diag",
        "af_packet_diag",
        "tun",
        "veth",
        "macvlan",
        "nfnetlink",
        "crc32c_generic",
        "libcrc32c",
        "nf_tables",
    ] {
        let _ = wren_tests::run(Command::new("busybox").args(["modprobe", m]));
    }
    let work = tempfile::tempdir_in(tree.join("tmp")).expect("tempdir in the tree");
    std::fs::copy(wren_tests::bin("wren-oci"), work.path().join("wren-oci")).expect("copy");
    let inner = |p: &Path| {
        Path::new("/")
            .join(p.strip_prefix(&tree).expect("in the tree"))
            .display()
            .to_string()
    };
    let oci = |args: &[&str]| -> (bool, String) {
        let mut cmd = Command::new("unshare");
        cmd.args([
            "--mount",
            "--propagation",
            "private",
            "--",
            "/bin/sh",
            "-ec",
        ])
        .args([SID_ENTER, "sh"])
        .arg(&tree)
        .arg(inner(&work.path().join("wren-oci")))
        .args(["--root", &inner(&work.path().join("state"))])
        .args(args);
        let o = wren_tests::run(&mut cmd);
        let st = o.status;
        let mut text = self::text(&o.stdout) + &self::text(&o.stderr);
        if !st.success() {
            text += &format!("\n({st:?})");
            for log in ["dump.log", "restore.log"] {
                if let Ok(l) = std::fs::read_to_string(work.path().join("img").join(log)) {
                    let tail: Vec<&str> = l.lines().rev().take(15).collect();
                    text += &format!(
                        "\n{log}:\n{}",
                        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                    );
                }
            }
        }
        (st.success(), text)
    };
    let ok = |args: &[&str]| {
        let (good, out) = oci(args);
        assert!(good, "wren-oci {args:?}: {out}");
        out
    };
    let (_, check) = {
        let mut cmd = Command::new("unshare");
        cmd.args([
            "--mount",
            "--propagation",
            "private",
            "--",
            "/bin/sh",
            "-ec",
        ])
        .args([SID_ENTER, "sh"])
        .arg(&tree)
        .args(["criu", "check"]);
        let o = wren_tests::run(&mut cmd);
        (o.status.success(), text(&o.stdout) + &text(&o.stderr))
    };
    eprintln!("criu check in the guest: {}", check.trim());
    assert!(check.contains("Looks good"), "criu check: {check}");

    let id = format!("sdck{}", std::process::id());
    let unit = format!("wren-{id}.scope");
    let dir = Path::new("/sys/fs/cgroup/system.slice").join(&unit);
    let counter = "exec </dev/null >/dev/null 2>&1; cd /tmp; i=0; \
        while true; do i=$((i+1)); echo $i >/tmp/count.new; \
        mv /tmp/count.new /tmp/count; sleep 0.1; done";
    let mut b = Bundle::busybox_in(work.path(), &["sh", "-c", counter]);
    b.config["root"]["readonly"] = json!(false);
    // The host's network namespace: criu locks a dumped one with
    // iptables-restore, whose nf_tables backend this guest kernel's
    // modules do not give it ("Could not fetch rule set generation id").
    b.config["linux"]["namespaces"]
        .as_array_mut()
        .expect("namespaces")
        .retain(|n| n["type"] != "network");
    b.config["linux"]["cgroupsPath"] = json!(format!("system.slice:wren:{id}"));
    b.config["linux"]["resources"] = json!({"memory": {"limit": 67108864}, "pids": {"limit": 64}});
    b.save();
    let count = || -> u64 {
        std::fs::read_to_string(b.rootfs().join("tmp/count"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    };
    let bundle = inner(b.path());
    ok(&[
        "--systemd-cgroup",
        "run",
        "--detach",
        "--bundle",
        &bundle,
        &id,
    ]);
    assert!(wait_for(30, || count() > 3), "the counter does not count");
    assert_eq!(unit_prop(&unit, "ActiveState"), "active");
    let img = inner(&work.path().join("img"));
    ok(&["checkpoint", "--image-path", &img, &id]);
    assert!(
        wait_for(10, || unit_prop(&unit, "LoadState") == "not-found"),
        "the dumped container's unit is left"
    );
    assert!(!dir.exists(), "cgroup left after checkpoint");
    let at_dump = count();

    ok(&[
        "--systemd-cgroup",
        "restore",
        "--detach",
        "--image-path",
        &img,
        "--bundle",
        &bundle,
        &id,
    ]);
    let st: Value = serde_json::from_str(&ok(&["state", &id])).expect("state json");
    assert_eq!(st["status"], "running", "{st}");
    let pid = st["pid"].as_i64().expect("pid");
    assert_eq!(
        std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap(),
        format!("0::/system.slice/{unit}\n"),
        "the restored init is in the new scope"
    );
    for (p, v) in [
        ("ActiveState", "active"),
        ("Delegate", "yes"),
        ("MemoryMax", "67108864"),
        ("TasksMax", "64"),
    ] {
        assert_eq!(unit_prop(&unit, p), v, "systemctl show -p {p} {unit}");
    }
    assert_eq!(read(&dir, "memory.max"), "67108864");
    assert_eq!(read(&dir, "pids.max"), "64");
    // The container's processes are in the scope, criu is not (it has
    // exited).
    let procs = read(&dir, "cgroup.procs");
    assert!(
        procs.lines().any(|p| p == pid.to_string()),
        "init {pid} in {procs}"
    );
    for p in procs.lines() {
        let comm = std::fs::read_to_string(format!("/proc/{p}/comm")).unwrap_or_default();
        assert_ne!(comm.trim(), "criu", "criu {p} left in the scope");
    }
    assert!(
        wait_for(30, || count() > at_dump),
        "the restored counter does not count on from {at_dump}"
    );
    let now = count();
    assert!(
        now < at_dump + 300,
        "counted from {at_dump} to {now}: restarted?"
    );
    ok(&["delete", "--force", &id]);
    assert!(
        wait_for(10, || unit_prop(&unit, "LoadState") == "not-found"),
        "unit {unit} left behind"
    );
    assert!(!dir.exists(), "cgroup {} left behind", dir.display());
    assert!(!alive(pid), "the restored init survived delete");
}
