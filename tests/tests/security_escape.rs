//! Security regression suite, part 1: container-escape attacks against
//! `wren-oci` that must fail. Runtime binary reachable from the container
//! (CVE-2019-5736), leaked fds and `/proc/self/fd` cwds (CVE-2024-21626),
//! symlinks planted in the image or in a bind-mounted /dev
//! (CVE-2023-27561, CVE-2025-31133, CVE-2025-52565, CVE-2026-41579), and
//! large numeric users (crun CVE-2026-30892 class). docs/SECURITY.md maps
//! every attack to its test.
//!
//! Each test is an attack: it passes when the attack fails. Needs root;
//! every id, bundle and canary is private to this process.

use std::os::fd::AsRawFd;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;

use serde_json::json;
use wren_tests::probe::{
    fds, mknod_dev_null, ptrace_accessible, sha256, status_field, Sampler, EXE_WATCHER,
};
use wren_tests::{assert_gone, require_root, text, wait_for, Bundle, Oci};

/// "ran" or the first line of the refusal, for the test log.
fn outcome(out: &std::process::Output) -> String {
    if out.status.success() {
        "ran".into()
    } else {
        format!(
            "refused: {}",
            text(&out.stderr).lines().next().unwrap_or("")
        )
    }
}

#[test]
fn cve_2019_5736_runtime_exe_cannot_be_rewritten_during_create_and_exec() {
    if !require_root("cve_2019_5736_runtime_exe_cannot_be_rewritten_during_create_and_exec") {
        return;
    }
    let mut a = Bundle::busybox(&["sh", "-c", EXE_WATCHER]);
    a.config["root"]["readonly"] = json!(false);
    a.save();
    // The classic payload: a "program" whose interpreter is /proc/self/exe,
    // so exec'ing it runs the runtime's own binary inside the container.
    let evil = a.rootfs().join("bin/evil");
    std::fs::write(&evil, "#!/proc/self/exe\n").unwrap();
    std::fs::set_permissions(&evil, std::fs::Permissions::from_mode(0o755)).unwrap();
    let private = tempfile::tempdir().unwrap();
    let oci = Oci::new("s5736").with_private_binary(private.path());
    let before = sha256(&oci.binary);
    let host_bin = oci.binary.display().to_string();

    let id = oci.id("a");
    oci.ok(&["run", "--detach", "--bundle", a.path_str(), &id]);
    let init = oci.init_pid(&id);
    // The probe tells dumpable from not: the watcher (busybox) is dumpable.
    assert_eq!(
        ptrace_accessible(init),
        Some(true),
        "calibration: a container's busybox must be ptrace-accessible to a same-uid caller"
    );
    let pidns = std::fs::read_link(format!("/proc/{init}/ns/pid"))
        .unwrap()
        .display()
        .to_string();
    let sampler = Sampler::start(pidns, "wren:");

    // During create: containers joining A's pid namespace put their
    // runtime-owned init into A's view while it sets up.
    let mut b = Bundle::busybox(&["true"]);
    b.config["linux"]["namespaces"] = json!([
        {"type": "pid", "path": format!("/proc/{init}/ns/pid")},
        {"type": "mount"}, {"type": "ipc"}, {"type": "uts"}, {"type": "network"}
    ]);
    b.save();
    for i in 0..15 {
        let bid = oci.id(&format!("b{i}"));
        oci.ok(&["create", "--bundle", b.path_str(), &bid]);
        std::thread::sleep(std::time::Duration::from_millis(150));
        oci.ok(&["delete", "--force", &bid]);
    }
    // During exec: the exec'd runtime stage and the #!/proc/self/exe payload.
    for _ in 0..25 {
        let _ = oci.run(&["exec", &id, "/bin/evil"]);
        oci.ok(&["exec", &id, "true"]);
    }
    let seen = sampler.finish();

    std::fs::write(a.rootfs().join("tmp/stop"), "").unwrap();
    assert!(
        wait_for(20, || a.rootfs().join("tmp/stopped").exists()),
        "the watcher did not stop"
    );
    let hits = std::fs::read_to_string(a.rootfs().join("tmp/hits")).unwrap();
    let watched = std::fs::read_to_string(a.rootfs().join("tmp/seen")).unwrap();
    assert_eq!(
        hits, "",
        "a runtime binary was opened for writing from the container; it saw:\n{watched}"
    );
    assert_eq!(
        sha256(&oci.binary),
        before,
        "the host wren-oci binary changed"
    );
    assert!(
        seen.iter().any(|s| s.1 == "wren:[2:INIT]"),
        "the sampler never saw a runtime-owned process in the container's pid namespace: {seen:?}"
    );
    eprintln!(
        "sampled {} runtime-owned processes; the watcher attacked:\n{watched}",
        seen.len()
    );
    for (pid, comm, dumpable, exe) in &seen {
        assert_eq!(
            *dumpable,
            Some(false),
            "runtime process {pid} ({comm}) visible in the container is dumpable"
        );
        assert_ne!(exe, &host_bin, "{pid} ({comm}) runs the host binary");
    }
    oci.ok(&["delete", "--force", &id]);
    assert_gone(&oci, &id);
}

#[test]
fn cve_2024_21626_proc_self_fd_cwd_in_create_cannot_escape() {
    if !require_root("cve_2024_21626_proc_self_fd_cwd_in_create_cannot_escape") {
        return;
    }
    let oci = Oci::new("s21626c");
    let mut b = Bundle::busybox(&[
        "sh",
        "-c",
        "cd ../../../../../../../..; stat -c %i /; stat -c %i .",
    ]);
    let mut escaped = Vec::new();
    let mut ran = 0;
    for n in 3..64 {
        b.config["process"]["cwd"] = json!(format!("/proc/self/fd/{n}"));
        b.save();
        let id = oci.id(&format!("n{n}"));
        let out = oci.run(&["run", "--bundle", b.path_str(), &id]);
        if out.status.success() {
            ran += 1;
            let o = text(&out.stdout);
            let l: Vec<&str> = o.lines().collect();
            if l.len() != 2 || l[0] != l[1] {
                escaped.push((n, o));
            }
        }
        assert_gone(&oci, &id);
    }
    assert!(escaped.is_empty(), "cwd escaped the rootfs: {escaped:?}");
    eprintln!("{ran} of 61 /proc/self/fd/N cwds were accepted, none escaped");
}

#[test]
fn cve_2024_21626_proc_self_fd_cwd_in_exec_cannot_escape() {
    if !require_root("cve_2024_21626_proc_self_fd_cwd_in_exec_cannot_escape") {
        return;
    }
    let oci = Oci::new("s21626e");
    let b = Bundle::busybox(&["sleep", "1000"]);
    let id = oci.id("c");
    oci.ok(&["run", "--detach", "--bundle", b.path_str(), &id]);
    let mut escaped = Vec::new();
    for n in 3..64 {
        let cwd = format!("/proc/self/fd/{n}");
        let out = oci.run(&[
            "exec",
            "--cwd",
            &cwd,
            &id,
            "sh",
            "-c",
            "cd ../../../../../../../..; stat -c %i /; stat -c %i .",
        ]);
        if out.status.success() {
            let o = text(&out.stdout);
            let l: Vec<&str> = o.lines().collect();
            if l.len() != 2 || l[0] != l[1] {
                escaped.push((n, o));
            }
        }
    }
    assert!(escaped.is_empty(), "exec cwd escaped: {escaped:?}");
    oci.ok(&["delete", "--force", &id]);
    assert_gone(&oci, &id);
}

#[test]
fn cve_2024_21626_exec_process_holds_exactly_its_stdio() {
    if !require_root("cve_2024_21626_exec_process_holds_exactly_its_stdio") {
        return;
    }
    let oci = Oci::new("sfdexec");
    let b = Bundle::busybox(&["sleep", "1000"]);
    let id = oci.id("c");
    oci.ok(&["run", "--detach", "--bundle", b.path_str(), &id]);
    let init = oci.init_pid(&id);
    // The running init: only its stdio.
    let got: Vec<i32> = fds(init).into_iter().map(|f| f.0).collect();
    assert_eq!(got, vec![0, 1, 2], "init fds: {:?}", fds(init));
    // An exec'd process, seen from the host while it runs.
    let pid = oci.exec_detached(&b, &id, "exec", &[]);
    let exec_fds = fds(pid);
    assert_eq!(
        exec_fds.iter().map(|f| f.0).collect::<Vec<_>>(),
        vec![0, 1, 2],
        "exec'd process fds: {exec_fds:?}"
    );
    // And from inside, a shell's view of its own fds after exec.
    let out = oci.ok(&["exec", &id, "sh", "-c", "ls /proc/$$/fd; true"]);
    assert_eq!(out, "0\n1\n2\n", "fds inside an exec'd shell");
    oci.ok(&["delete", "--force", &id]);
    assert_gone(&oci, &id);
}

/// Runs a bundle whose `rootfs/<path>` was replaced by `link`; the attack
/// fails when create is refused, or when the container ran with `canary`
/// untouched.
fn symlinked_image_path(oci: &Oci, name: &str, path: &str, relative: bool) {
    let canary = tempfile::tempdir().unwrap();
    std::fs::write(canary.path().join("keep"), "canary\n").unwrap();
    let b = Bundle::busybox(&["sh", "-c", "touch /proc/x /sys/x /dev/x 2>/dev/null; true"]);
    let p = b.rootfs().join(path);
    std::fs::remove_dir_all(&p).unwrap();
    let target = if relative {
        format!("{}{}", "../".repeat(12), canary.path().display())
    } else {
        canary.path().display().to_string()
    };
    symlink(&target, &p).unwrap();
    let id = oci.id(name);
    let out = oci.run(&["run", "--bundle", b.path_str(), &id]);
    let entries: Vec<_> = std::fs::read_dir(canary.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(
        entries,
        vec!["keep"],
        "{path} -> {target}: the canary dir changed"
    );
    assert!(
        !out.status.success(),
        "/{path} as a symlink must be refused"
    );
    assert!(
        text(&out.stderr).contains(&format!("/{path}")),
        "the error names /{path}: {}",
        text(&out.stderr)
    );
    assert_gone(oci, &id);
}

#[test]
fn cve_2023_27561_symlinked_proc_sys_dev_in_the_image_are_refused() {
    if !require_root("cve_2023_27561_symlinked_proc_sys_dev_in_the_image_are_refused") {
        return;
    }
    let oci = Oci::new("slink");
    for path in ["proc", "sys", "dev"] {
        symlinked_image_path(&oci, &format!("{path}-abs"), path, false);
        symlinked_image_path(&oci, &format!("{path}-rel"), path, true);
    }
}

/// A bundle whose /dev comes from the image (no /dev tmpfs, no devpts).
fn image_dev_bundle(script: &str) -> Bundle {
    let mut b = Bundle::busybox(&["sh", "-c", script]);
    b.config["root"]["readonly"] = json!(false);
    b.config["mounts"]
        .as_array_mut()
        .unwrap()
        .retain(|m| !m["destination"].as_str().unwrap_or("").starts_with("/dev"));
    b.save();
    b
}

const DEV_REPORT: &str = "for f in /dev/null /dev/console /proc/kcore /proc/keys; do \
     [ -e $f ] && echo \"$f $(stat -L -c '%F %t:%T' $f)\"; echo pwn > $f 2>/dev/null; done \
     > /tmp/report 2>&1; true";

/// Parse DEV_REPORT: every existing /dev/null and masked file must be char 1:3.
fn check_dev_report(report: &str, what: &str) {
    for l in report.lines() {
        let (path, rest) = l.split_once(' ').unwrap_or((l, ""));
        match path {
            "/dev/null" | "/proc/kcore" | "/proc/keys" => assert_eq!(
                rest, "character special file 1:3",
                "{what}: {path} is not /dev/null: {report}"
            ),
            "/dev/console" => assert!(
                rest.starts_with("character special file 88:") || rest.is_empty(),
                "{what}: /dev/console is not a pty: {report}"
            ),
            _ => {}
        }
    }
}

#[test]
fn cve_2026_41579_symlinked_dev_entries_in_the_image_reach_nothing() {
    if !require_root("cve_2026_41579_symlinked_dev_entries_in_the_image_reach_nothing") {
        return;
    }
    let oci = Oci::new("sdevimg");
    let canary_dir = tempfile::tempdir().unwrap();
    let canary = canary_dir.path().join("canary");
    for entry in ["null", "console", "ptmx", "pts", "zero", "tty"] {
        std::fs::write(&canary, "canary\n").unwrap();
        let b = image_dev_bundle(DEV_REPORT);
        symlink(&canary, b.rootfs().join("dev").join(entry)).unwrap();
        let id = oci.id(entry);
        let out = oci.run(&["run", "--bundle", b.path_str(), &id]);
        eprintln!("image /dev/{entry} -> canary: {}", outcome(&out));
        assert_eq!(
            std::fs::read_to_string(&canary).unwrap(),
            "canary\n",
            "/dev/{entry} -> canary: the host canary changed"
        );
        if out.status.success() {
            let report = std::fs::read_to_string(b.rootfs().join("tmp/report")).unwrap();
            check_dev_report(&report, &format!("image /dev/{entry} symlink"));
        }
        assert_gone(&oci, &id);
    }
}

/// The console of a `terminal: true` container, set up through a console
/// socket; returns create's output and the pty master (if one came).
fn create_with_console(
    oci: &Oci,
    b: &Bundle,
    id: &str,
) -> (std::process::Output, Option<std::fs::File>) {
    let sock_path = b.path().join("console.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock_path).unwrap();
    listener.set_nonblocking(true).unwrap();
    let root = oci.root.path().to_path_buf();
    let binary = oci.binary.clone();
    let (bundle, sp, id2) = (
        b.path_str().to_string(),
        sock_path.display().to_string(),
        id.to_string(),
    );
    let creator = std::thread::spawn(move || {
        wren_tests::run(
            std::process::Command::new(binary)
                .arg("--root")
                .arg(root)
                .args(["create", "--bundle", &bundle, "--console-socket", &sp, &id2]),
        )
    });
    let mut master = None;
    while !creator.is_finished() || master.is_none() {
        match listener.accept() {
            Ok((conn, _)) => {
                master = wren_runtime::console::recv_from_socket(&conn)
                    .ok()
                    .map(std::fs::File::from);
            }
            Err(_) if creator.is_finished() => break,
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(10)),
        }
    }
    (creator.join().unwrap(), master)
}

#[test]
fn cve_2025_52565_symlinked_dev_pts_n_cannot_become_the_console() {
    if !require_root("cve_2025_52565_symlinked_dev_pts_n_cannot_become_the_console") {
        return;
    }
    let oci = Oci::new("sptsn");
    let canary_dir = tempfile::tempdir().unwrap();
    let canary = canary_dir.path().join("canary");
    std::fs::write(&canary, "canary\n").unwrap();
    let mut b = image_dev_bundle(&format!(
        "{DEV_REPORT}; stat -c '%F %t:%T' /dev/console > /tmp/console"
    ));
    b.config["process"]["terminal"] = json!(true);
    b.save();
    let pts = b.rootfs().join("dev/pts");
    std::fs::create_dir_all(&pts).unwrap();
    for n in 0..8 {
        symlink(&canary, pts.join(n.to_string())).unwrap();
    }
    symlink(&canary, pts.join("ptmx")).unwrap();
    symlink(&canary, b.rootfs().join("dev/console")).unwrap();
    let id = oci.id("c");
    let (out, master) = create_with_console(&oci, &b, &id);
    if out.status.success() {
        oci.ok(&["start", &id]);
        assert!(wait_for(10, || oci.state(&id)["status"] == "stopped"));
        let console = std::fs::read_to_string(b.rootfs().join("tmp/console")).unwrap_or_default();
        assert!(
            console.starts_with("character special file 88:"),
            "/dev/console is not the pty: {console:?}"
        );
        let report = std::fs::read_to_string(b.rootfs().join("tmp/report")).unwrap();
        check_dev_report(&report, "image /dev/pts/N symlinks");
    }
    drop(master);
    assert_eq!(
        std::fs::read_to_string(&canary).unwrap(),
        "canary\n",
        "a /dev/pts/N or /dev/console symlink reached the host canary"
    );
    let _ = oci.run(&["delete", "--force", &id]);
    assert_gone(&oci, &id);
}

#[test]
fn cve_2025_31133_bind_mounted_dev_cannot_redirect_masked_paths() {
    if !require_root("cve_2025_31133_bind_mounted_dev_cannot_redirect_masked_paths") {
        return;
    }
    let oci = Oci::new("sdevbind");
    let canary_dir = tempfile::tempdir().unwrap();
    let canary = canary_dir.path().join("canary");
    type Plant = fn(&Path, &Path);
    let cases: Vec<(&str, Plant)> = vec![
        ("null-symlink", |dev, c| {
            symlink(c, dev.join("null")).unwrap()
        }),
        ("null-missing", |_, _| {}),
        ("null-regular", |dev, _| {
            std::fs::write(dev.join("null"), "").unwrap()
        }),
        ("null-dir", |dev, _| {
            std::fs::create_dir(dev.join("null")).unwrap()
        }),
        ("console-symlink", |dev, c| {
            mknod_dev_null(&dev.join("null"));
            symlink(c, dev.join("console")).unwrap()
        }),
        ("pts-symlink", |dev, c| {
            mknod_dev_null(&dev.join("null"));
            std::fs::create_dir(dev.join("pts")).unwrap();
            symlink(c, dev.join("pts/0")).unwrap();
        }),
    ];
    for (name, plant) in cases {
        std::fs::write(&canary, "canary\n").unwrap();
        let dev = tempfile::tempdir().unwrap();
        plant(dev.path(), &canary);
        let mut b = Bundle::busybox(&["sh", "-c", DEV_REPORT]);
        b.config["root"]["readonly"] = json!(false);
        let mounts = b.config["mounts"].as_array_mut().unwrap();
        mounts.retain(|m| m["destination"] != "/dev");
        mounts.insert(
            1,
            json!({"destination": "/dev", "type": "bind", "source": dev.path(), "options": ["rbind", "rw"]}),
        );
        b.save();
        let id = oci.id(name);
        let out = oci.run(&["run", "--bundle", b.path_str(), &id]);
        eprintln!("bind /dev {name}: {}", outcome(&out));
        assert_eq!(
            std::fs::read_to_string(&canary).unwrap(),
            "canary\n",
            "{name}: the host canary changed"
        );
        if out.status.success() {
            let report = std::fs::read_to_string(b.rootfs().join("tmp/report")).unwrap();
            // A masked file must be masked by a real /dev/null whatever the
            // bind-mounted /dev holds.
            for l in report.lines().filter(|l| l.starts_with("/proc/")) {
                assert!(
                    l.ends_with("character special file 1:3"),
                    "{name}: masked path not masked by /dev/null: {report}"
                );
            }
            assert!(
                report.contains("/proc/keys") || !Path::new("/proc/keys").exists(),
                "{name}: /proc/keys vanished instead of being masked: {report}"
            );
        }
        assert_gone(&oci, &id);
    }
}

#[test]
fn large_numeric_users_in_exec_run_as_exactly_that_user_or_are_refused() {
    if !require_root("large_numeric_users_in_exec_run_as_exactly_that_user_or_are_refused") {
        return;
    }
    let oci = Oci::new("sbiguid");
    let b = Bundle::busybox(&["sleep", "1000"]);
    let id = oci.id("c");
    oci.ok(&["run", "--detach", "--bundle", b.path_str(), &id]);
    for user in [
        "2147483647",
        "2147483648",
        "3000000000",
        "4294967294",
        "4294967295",
        "4294967295:4294967295",
        "1000:4294967295",
        "4294967296",
        "-1",
        "1:2147483648",
    ] {
        let out = oci.run(&[
            "exec",
            "--user",
            user,
            &id,
            "sh",
            "-c",
            "grep -E '^(Uid|Gid):' /proc/self/status",
        ]);
        if !out.status.success() {
            continue;
        }
        let (u, g) = user.split_once(':').unwrap_or((user, "0"));
        let o = text(&out.stdout);
        let want = format!("Uid:\t{u}\t{u}\t{u}\t{u}\nGid:\t{g}\t{g}\t{g}\t{g}\n");
        assert_eq!(o, want, "--user {user} ran with other ids");
    }
    // The same for the container's own process.user.
    let mut b2 = Bundle::busybox(&["grep", "-E", "^(Uid|Gid):", "/proc/self/status"]);
    b2.config["process"]["user"] = json!({"uid": 4294967295u64, "gid": 4294967295u64});
    b2.save();
    let id2 = oci.id("u");
    let out = oci.run(&["run", "--bundle", b2.path_str(), &id2]);
    assert!(
        !out.status.success(),
        "process.user uid 4294967295 ran: {}",
        text(&out.stdout)
    );
    assert!(
        text(&out.stderr).contains("process.user.uid"),
        "{}",
        text(&out.stderr)
    );
    assert_gone(&oci, &id2);
    oci.ok(&["delete", "--force", &id]);
    assert_gone(&oci, &id);
}

#[test]
fn init_at_created_is_not_dumpable_and_not_the_host_binary() {
    if !require_root("init_at_created_is_not_dumpable_and_not_the_host_binary") {
        return;
    }
    let oci = Oci::new("screated");
    let b = Bundle::busybox(&["sleep", "1000"]);
    let id = oci.id("c");
    oci.ok(&["create", "--bundle", b.path_str(), &id]);
    let pid = oci.init_pid(&id);
    assert_eq!(
        ptrace_accessible(pid),
        Some(false),
        "the init at created is dumpable"
    );
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    assert_ne!(exe, oci.binary, "the init runs the host binary: {exe:?}");
    assert_eq!(status_field(pid, "TracerPid").as_deref(), Some("0"));
    // Writing the sealed binary through the magic link fails.
    let err = std::fs::OpenOptions::new()
        .append(true)
        .open(format!("/proc/{pid}/exe"))
        .unwrap_err();
    assert!(
        matches!(
            err.raw_os_error(),
            Some(libc::EROFS) | Some(libc::ETXTBSY) | Some(libc::EPERM)
        ),
        "{err}"
    );
    oci.ok(&["delete", "--force", &id]);
    assert_gone(&oci, &id);
}

#[test]
fn the_init_binary_cannot_be_reopened_for_writing() {
    if !require_root("the_init_binary_cannot_be_reopened_for_writing") {
        return;
    }
    let b = Bundle::busybox(&["sleep", "1000"]);
    let oci = Oci::new("exe").with_private_binary(b.path());
    let id = oci.id("c");
    let host_bin = oci.binary.clone();
    let before = std::fs::read(&host_bin).unwrap();
    oci.ok(&["create", "--bundle", b.path_str(), &id]);
    let pid = oci.init_pid(&id);
    // The init is not dumpable while it runs host code in the container.
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let exe = std::fs::File::options()
        .custom_flags_path(&format!("/proc/{pid}/exe"))
        .expect("open O_PATH of the init's exe");
    oci.ok(&["start", &id]);
    // `start` returns once the init is released; wait until it has exec'd.
    assert!(wait_for(5, || std::fs::read_link(format!(
        "/proc/{pid}/exe"
    ))
    .map(|p| p.ends_with("busybox"))
    .unwrap_or(false)));
    // Now the sealed binary no longer runs: reopening it for writing must
    // fail because it lives on a read-only mount, not because it is busy.
    let path = format!("/proc/self/fd/{}", exe.as_raw_fd());
    let err = std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EROFS), "{err}");
    assert_eq!(std::fs::read(&host_bin).unwrap(), before);
    let _ = status;
    oci.ok(&["delete", "--force", &id]);
}

trait OpenPath {
    fn custom_flags_path(&mut self, p: &str) -> std::io::Result<std::fs::File>;
}

impl OpenPath for std::fs::OpenOptions {
    fn custom_flags_path(&mut self, p: &str) -> std::io::Result<std::fs::File> {
        use std::os::unix::fs::OpenOptionsExt;
        self.read(true).custom_flags(libc::O_PATH).open(p)
    }
}
