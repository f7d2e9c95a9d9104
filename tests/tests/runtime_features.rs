//! Root integration tests of the runtime features issue 2 lists beyond the
//! basics in runtime.rs: `--no-pivot`, rootfsPropagation, personality,
//! scheduler, I/O priority, execCPUAffinity, tmpcopyup, joining namespaces
//! by path, exec/run with a terminal, startContainer hooks, the seccomp
//! notify listener, dumpability of the init, and `wren-oci events`. Each
//! checks from inside the container and from the host where it can, with
//! its own state root, bundle and container ids.

use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use wren_tests::pty::run_in_pty;
use wren_tests::{alive, assert_gone, require_root, skip, wait_for, Bundle, Oci, Skip};

/// Create (stdout and stderr to `<bundle>/out`), start, and return the
/// init's pid and the output file.
fn start_logged(oci: &Oci, b: &Bundle, id: &str) -> (i64, PathBuf) {
    let log = b.path().join("out");
    let f = std::fs::File::create(&log).unwrap();
    let mut cmd = oci.cmd();
    cmd.args(["create", "--bundle", b.path_str(), id])
        .stdin(std::process::Stdio::null())
        .stdout(f.try_clone().unwrap())
        .stderr(f);
    // Not `wren_tests::run`: that points stdout at its own files.
    let mut child = wren_tests::spawn_registered(&mut cmd);
    let status = child.wait().unwrap();
    wren_tests::unregister(child.id());
    assert!(
        status.success(),
        "create {id}: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    oci.ok(&["start", id]);
    (oci.init_pid(id), log)
}

/// Wait until the file has at least `n` lines; return its text.
fn lines_of(path: &Path, n: usize) -> String {
    wait_for(10, || {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .count()
            >= n
    });
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Field `n` (1-based, as proc(5) numbers them) of /proc/<pid>/stat.
fn stat_field(pid: i64, n: usize) -> String {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &s[s.rfind(')').unwrap() + 2..];
    rest.split(' ').nth(n - 3).unwrap().to_string()
}

fn status_line(pid: i64, key: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(key).map(|v| v.trim().to_string()))
        .unwrap_or_default()
}

/// Removes a file on drop (markers made outside any temp dir).
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn no_pivot_chroots_into_the_rootfs_and_hides_the_host_root() {
    if !require_root("no_pivot_chroots_into_the_rootfs_and_hides_the_host_root") {
        return;
    }
    let oci = Oci::new("nopivot");
    let marker_name = format!("wren-nopivot-marker-{}", std::process::id());
    let marker = RemoveOnDrop(Path::new("/").join(&marker_name));
    std::fs::write(&marker.0, "host\n").unwrap();
    // Everything a process without CAP_SYS_CHROOT can try to climb out of
    // its root with: "..", /proc's root and cwd links, a cwd kept while
    // climbing, and chroot itself (must be refused).
    let script = "ls -a /; echo ---; ls -a /..; ls -a /../..; ls -a /proc/self/root/..; \
                  ls -a /proc/1/root/; ls -a /proc/1/cwd/../..; \
                  cd /bin && cd ../../.. && ls -a .; echo ---; \
                  chroot / /bin/true 2>/dev/null && echo chroot-allowed || echo chroot-refused; \
                  stat -c %i /; stat -c %i /..; grep -c . /proc/self/mountinfo";
    let b = Bundle::busybox(&["sh", "-c", script]);
    let id = oci.id("c");
    let host_mounts_before = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let (code, out, err) = oci.run_bundle(&b, &id, &["--no-pivot"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        !out.contains(&marker_name),
        "the host root is reachable: {out}"
    );
    let first: Vec<&str> = out.split("---").next().unwrap().lines().collect();
    assert!(first.contains(&"bin") && first.contains(&"proc"), "{out}");
    assert!(out.contains("chroot-refused"), "{out}");
    let tail: Vec<&str> = out.lines().rev().take(3).collect();
    let root_ino = std::fs::metadata(b.rootfs()).unwrap().ino().to_string();
    assert_eq!(tail[2], root_ino, "/ is the bundle's rootfs: {out}");
    assert_eq!(tail[1], root_ino, "/.. is / itself: {out}");
    // The host's mount table is untouched (the move happened in the
    // container's mount namespace).
    assert_eq!(
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .filter(|l| l.contains(b.path_str()))
            .count(),
        host_mounts_before
            .lines()
            .filter(|l| l.contains(b.path_str()))
            .count()
    );
    assert_gone(&oci, &id);
}

#[test]
fn rootfs_propagation_sets_the_tags_of_the_root_mount() {
    if !require_root("rootfs_propagation_sets_the_tags_of_the_root_mount") {
        return;
    }
    let oci = Oci::new("rprop");
    // (value, has "shared:N", has "master:N"; None: not checked). The
    // root starts as a slave of the bundle's shared host mount; "shared"
    // then adds a peer group of its own, and may stay a slave too.
    for (value, shared, master) in [
        ("shared", true, None),
        ("slave", false, Some(true)),
        ("private", false, Some(false)),
        ("rprivate", false, Some(false)),
    ] {
        let mut b = Bundle::busybox(&["awk", "$5 == \"/\"", "/proc/self/mountinfo"]);
        b.config["linux"]["rootfsPropagation"] = json!(value);
        b.save();
        // The bundle on a shared host mount: the container's copy of it is
        // a slave of that peer group ("master:N") unless made private.
        let _shared = wren_tests::SharedMount::new(b.path());
        let id = oci.id(value);
        let (code, out, err) = oci.run_bundle(&b, &id, &[]);
        assert_eq!(code, 0, "{value}: {err}");
        let line = out.lines().last().unwrap_or_default();
        let optional: Vec<&str> = line
            .split(" - ")
            .next()
            .unwrap()
            .split(' ')
            .skip(6)
            .collect();
        assert_eq!(
            optional.iter().any(|t| t.starts_with("shared:")),
            shared,
            "{value}: {line}"
        );
        if let Some(master) = master {
            assert_eq!(
                optional.iter().any(|t| t.starts_with("master:")),
                master,
                "{value}: {line}"
            );
        }
        assert_gone(&oci, &id);
    }
}

#[test]
fn linux32_personality_shows_in_uname_and_proc() {
    if !require_root("linux32_personality_shows_in_uname_and_proc") {
        return;
    }
    if std::env::consts::ARCH != "x86_64" {
        skip(
            "linux32_personality_shows_in_uname_and_proc",
            Skip::Host("needs x86_64".into()),
        );
        return;
    }
    let oci = Oci::new("pers");
    let mut b = Bundle::busybox(&["sh", "-c", "uname -m; exec sleep 1000"]);
    b.config["linux"]["personality"] = json!({"domain": "LINUX32"});
    b.save();
    let id = oci.id("c");
    let (pid, log) = start_logged(&oci, &b, &id);
    let out = lines_of(&log, 1);
    assert_eq!(out.trim(), "i686", "{out}");
    assert!(wait_for(5, || std::fs::read_link(format!(
        "/proc/{pid}/exe"
    ))
    .is_ok_and(|p| p.ends_with("busybox"))));
    let host = std::fs::read_to_string(format!("/proc/{pid}/personality")).unwrap();
    assert_eq!(host.trim(), "00000008", "PER_LINUX32 from the host");
    oci.ok(&["delete", "--force", &id]);
    assert_gone(&oci, &id);
}

#[test]
fn scheduler_policy_and_nice_are_visible_from_the_host() {
    if !require_root("scheduler_policy_and_nice_are_visible_from_the_host") {
        return;
    }
    let oci = Oci::new("sched");
    let mut b = Bundle::busybox(&[
        "sh",
        "-c",
        "cut -d' ' -f19 /proc/self/stat; exec sleep 1000",
    ]);
    b.config["process"]["scheduler"] = json!({"policy": "SCHED_BATCH", "nice": 7});
    b.save();
    let id = oci.id("c");
    let (pid, log) = start_logged(&oci, &b, &id);
    assert_eq!(lines_of(&log, 1).trim(), "7", "nice inside");
    assert_eq!(stat_field(pid, 41), "3", "policy SCHED_BATCH from the host");
    assert_eq!(stat_field(pid, 19), "7", "nice from the host");
    // SAFETY: integer syscall on a pid.
    let policy = unsafe { libc::sched_getscheduler(pid as i32) };
    assert_eq!(policy, libc::SCHED_BATCH);
    oci.ok(&["delete", "--force", &id]);
    assert_gone(&oci, &id);
}

#[test]
fn io_priority_is_visible_from_the_host() {
    if !require_root("io_priority_is_visible_from_the_host") {
        return;
    }
    let oci = Oci::new("ioprio");
    let mut b = Bundle::busybox(&["sh", "-c", "ionice -p $$; exec sleep 1000"]);
    b.config["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_IDLE", "priority": 0});
    b.save();
    let id = oci.id("idle");
    let (pid, log) = start_logged(&oci, &b, &id);
    assert!(
        lines_of(&log, 1).contains("idle"),
        "inside: {}",
        lines_of(&log, 1)
    );
    // SAFETY: ioprio_get(IOPRIO_WHO_PROCESS, pid) with integers.
    let prio = unsafe { libc::syscall(libc::SYS_ioprio_get, 1, pid, 0) };
    assert_eq!(prio, 3 << 13, "IOPRIO_CLASS_IDLE from the host");
    oci.ok(&["delete", "--force", &id]);

    b.config["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_BE", "priority": 6});
    b.save();
    let id = oci.id("be");
    let (pid, _) = start_logged(&oci, &b, &id);
    // SAFETY: as above.
    let prio = unsafe { libc::syscall(libc::SYS_ioprio_get, 1, pid, 0) };
    assert_eq!(prio, (2 << 13) | 6, "IOPRIO_CLASS_BE 6 from the host");
    oci.ok(&["delete", "--force", &id]);
    assert_gone(&oci, &id);
}

fn cpus_allowed(pid: i64) -> String {
    status_line(pid, "Cpus_allowed_list:")
}

#[test]
fn exec_cpu_affinity_final_wins_and_the_init_is_left_alone() {
    if !require_root("exec_cpu_affinity_final_wins_and_the_init_is_left_alone") {
        return;
    }
    let ncpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    if ncpus < 2 {
        skip(
            "exec_cpu_affinity_final_wins_and_the_init_is_left_alone",
            Skip::Host("needs 2 CPUs".into()),
        );
        return;
    }
    let oci = Oci::new("affinity");
    let mut b = Bundle::busybox(&["sleep", "1000"]);
    // Not applicable to the init (runtime-spec): it keeps the default.
    b.config["process"]["execCPUAffinity"] = json!({"final": "1"});
    b.save();
    let id = oci.id("c");
    oci.ok(&["run", "--detach", "--bundle", b.path_str(), &id]);
    let init = oci.init_pid(&id);
    let default = cpus_allowed(std::process::id() as i64);
    assert_eq!(cpus_allowed(init), default, "the init's affinity");

    let exec_with = |affinity: Value| -> String {
        let mut p = b.config["process"].clone();
        p["args"] = json!([
            "sh",
            "-c",
            "grep Cpus_allowed_list /proc/self/status; sleep 1000"
        ]);
        p["execCPUAffinity"] = affinity;
        let file = b.path().join("process.json");
        std::fs::write(&file, p.to_string()).unwrap();
        let pid_file = b.path().join("exec.pid");
        let _ = std::fs::remove_file(&pid_file);
        oci.ok(&[
            "exec",
            "--detach",
            "--pid-file",
            pid_file.to_str().unwrap(),
            "--process",
            file.to_str().unwrap(),
            &id,
        ]);
        let pid: i64 = std::fs::read_to_string(&pid_file).unwrap().parse().unwrap();
        assert!(wait_for(5, || std::fs::read_link(format!(
            "/proc/{pid}/exe"
        ))
        .is_ok_and(|p| p.ends_with("busybox"))));
        let host = cpus_allowed(pid);
        // SAFETY: integer kill of the exec'd process we just started.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        host
    };
    let host = exec_with(json!({"initial": "0", "final": "1"}));
    assert_eq!(host, "1", "final is the exec'd process's affinity");
    let host = exec_with(json!({"final": "0"}));
    assert_eq!(host, "0");
    // Only `initial`, outside the container's cpuset: it applies before
    // the move into the cgroup, and then the kernel decides (here: the
    // cpuset's one CPU). Setting it after the move would fail with EINVAL.
    oci.ok(&["update", "--cpuset-cpus", "0", &id]);
    let host = exec_with(json!({"initial": "1"}));
    assert_eq!(host, "0", "initial only, under a cpuset of CPU 0");
    oci.ok(&["delete", "--force", &id]);
    assert_gone(&oci, &id);
}

#[test]
fn tmpcopyup_fills_a_tmpfs_with_the_image_directory() {
    if !require_root("tmpcopyup_fills_a_tmpfs_with_the_image_directory") {
        return;
    }
    let oci = Oci::new("copyup");
    let script = "stat -f -c %T /etc; cat /etc/passwd | head -1; cat /etc/sub/deep; \
                  readlink /etc/link; stat -c '%a %u:%g' /etc/sub /etc/sub/deep; \
                  echo new > /etc/created && echo wrote; echo changed > /etc/group; cat /etc/group";
    let mut b = Bundle::busybox(&["sh", "-c", script]);
    let etc = b.rootfs().join("etc");
    std::fs::create_dir(etc.join("sub")).unwrap();
    std::fs::write(etc.join("sub/deep"), "deep file\n").unwrap();
    std::os::unix::fs::symlink("passwd", etc.join("link")).unwrap();
    std::os::unix::fs::chown(etc.join("sub/deep"), Some(1000), Some(1000)).unwrap();
    std::fs::set_permissions(
        etc.join("sub"),
        std::os::unix::fs::PermissionsExt::from_mode(0o750),
    )
    .unwrap();
    b.config["mounts"].as_array_mut().unwrap().push(
        json!({"destination": "/etc", "type": "tmpfs", "source": "tmpfs",
                     "options": ["tmpcopyup", "nosuid", "mode=755"]}),
    );
    b.save();
    let id = oci.id("c");
    let (code, out, err) = oci.run_bundle(&b, &id, &[]);
    assert_eq!(code, 0, "{err}");
    let l: Vec<&str> = out.lines().collect();
    assert_eq!(l[0], "tmpfs", "{out}");
    assert!(l[1].starts_with("root:x:0:0"), "{out}");
    assert_eq!(l[2], "deep file");
    assert_eq!(l[3], "passwd", "symlinks are copied as links");
    assert_eq!(l[4], "750 0:0");
    assert_eq!(l[5], "644 1000:1000", "modes and owners are kept");
    assert_eq!(l[6], "wrote");
    assert_eq!(l[7], "changed");
    // Nothing reached the image.
    assert!(!etc.join("created").exists());
    assert_eq!(
        std::fs::read_to_string(etc.join("group")).unwrap(),
        "root:x:0:\nuser:x:1000:\n"
    );
    assert_gone(&oci, &id);
}

fn ns_inode(pid: i64, ns: &str) -> u64 {
    std::fs::metadata(format!("/proc/{pid}/ns/{ns}"))
        .unwrap()
        .ino()
}

#[test]
fn a_container_joins_another_containers_namespaces_by_path() {
    if !require_root("a_container_joins_another_containers_namespaces_by_path") {
        return;
    }
    let oci = Oci::new("join");
    let mut a = Bundle::busybox(&["sleep", "1000"]);
    a.config["hostname"] = json!("box-a");
    a.save();
    let id_a = oci.id("a");
    oci.ok(&["run", "--detach", "--bundle", a.path_str(), &id_a]);
    let pid_a = oci.state(&id_a)["pid"].as_i64().unwrap();

    let mut b = Bundle::busybox(&["sleep", "1001"]);
    let joined = ["network", "ipc", "uts", "pid"];
    let nss = b.config["linux"]["namespaces"].as_array_mut().unwrap();
    nss.retain(|n| !joined.contains(&n["type"].as_str().unwrap()));
    for (t, name) in [
        ("network", "net"),
        ("ipc", "ipc"),
        ("uts", "uts"),
        ("pid", "pid"),
    ] {
        nss.push(json!({"type": t, "path": format!("/proc/{pid_a}/ns/{name}")}));
    }
    b.config.as_object_mut().unwrap().remove("hostname");
    b.save();
    let id_b = oci.id("b");
    oci.ok(&["run", "--detach", "--bundle", b.path_str(), &id_b]);
    let pid_b = oci.state(&id_b)["pid"].as_i64().unwrap();
    for ns in ["net", "ipc", "uts", "pid"] {
        assert_eq!(ns_inode(pid_a, ns), ns_inode(pid_b, ns), "{ns} joined");
    }
    for ns in ["mnt", "cgroup"] {
        assert_ne!(ns_inode(pid_a, ns), ns_inode(pid_b, ns), "{ns} is B's own");
    }
    // Inside B: A's hostname, A's sleep as pid 1, B's own sleep too.
    let out = oci.ok(&[
        "exec",
        &id_b,
        "sh",
        "-c",
        "hostname; tr '\\0' ' ' < /proc/1/cmdline; echo; ps -o args | grep -c '^sleep'",
    ]);
    let l: Vec<&str> = out.lines().collect();
    assert_eq!(l[0], "box-a", "{out}");
    assert_eq!(l[1].trim(), "sleep 1000", "{out}");
    assert_eq!(l[2], "2", "both sleeps in one pid namespace: {out}");
    oci.ok(&["delete", "--force", &id_b]);
    oci.ok(&["delete", "--force", &id_a]);
    assert_gone(&oci, &id_a);
    assert_gone(&oci, &id_b);
}

#[test]
fn exec_and_run_with_a_terminal_from_a_pty() {
    if !require_root("exec_and_run_with_a_terminal_from_a_pty") {
        return;
    }
    let oci = Oci::new("ptyexec");
    let b = Bundle::busybox(&["sleep", "1000"]);
    let id = oci.id("c");
    oci.ok(&["run", "--detach", "--bundle", b.path_str(), &id]);
    let mut cmd = oci.cmd();
    cmd.args([
        "exec",
        "-t",
        &id,
        "sh",
        "-c",
        "tty; stty size; read line; echo got:$line; exit 3",
    ]);
    let out = run_in_pty(
        &mut cmd,
        33,
        101,
        b"hello\r",
        Duration::from_millis(1500),
        Duration::from_secs(20),
    );
    assert_eq!(out.status.and_then(|s| s.code()), Some(3), "{}", out.output);
    assert!(out.output.contains("/dev/pts/"), "{}", out.output);
    assert!(out.output.contains("33 101"), "window size: {}", out.output);
    assert!(out.output.contains("got:hello"), "stdin: {}", out.output);
    oci.ok(&["delete", "--force", &id]);
    assert_gone(&oci, &id);

    // `run` in the foreground with process.terminal: the same.
    let mut b = Bundle::busybox(&["sh", "-c", "tty; read line; echo got:$line; exit 4"]);
    b.config["process"]["terminal"] = json!(true);
    b.save();
    let id = oci.id("run");
    let mut cmd = oci.cmd();
    cmd.args(["run", "--bundle", b.path_str(), &id]);
    let out = run_in_pty(
        &mut cmd,
        24,
        80,
        b"world\r",
        Duration::from_millis(1500),
        Duration::from_secs(20),
    );
    assert_eq!(out.status.and_then(|s| s.code()), Some(4), "{}", out.output);
    assert!(out.output.contains("/dev/pts/0"), "{}", out.output);
    assert!(out.output.contains("got:world"), "{}", out.output);
    assert_gone(&oci, &id);
}

#[test]
fn start_container_hooks_run_in_the_container_after_start_before_the_process() {
    if !require_root("start_container_hooks_run_in_the_container_after_start_before_the_process") {
        return;
    }
    let oci = Oci::new("starthook");
    let mut b = Bundle::busybox(&[
        "sh",
        "-c",
        "test -e /hook.done && echo hook-ran-first > /proc.out; exec sleep 1000",
    ]);
    b.config["root"]["readonly"] = json!(false);
    // The hook writes hook.done last, after a pause: the process sees it
    // only if the hook finished before the process started.
    b.config["hooks"] = json!({"startContainer": [{"path": "/bin/sh", "args": ["sh", "-c",
        "cat > /hook.state; readlink /proc/self/ns/mnt > /hook.ns; readlink /proc/self/ns/pid >> /hook.ns; \
         sleep 0.3; touch /hook.done"]}]});
    b.save();
    let id = oci.id("c");
    oci.ok(&["create", "--bundle", b.path_str(), &id]);
    let pid = oci.init_pid(&id);
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !b.rootfs().join("hook.ns").exists(),
        "startContainer ran before start"
    );
    oci.ok(&["start", &id]);
    let out = b.rootfs().join("proc.out");
    assert!(
        wait_for(10, || std::fs::read_to_string(&out)
            .is_ok_and(|s| s.ends_with('\n'))),
        "the process did not run"
    );
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "hook-ran-first\n");
    let ns = std::fs::read_to_string(b.rootfs().join("hook.ns")).unwrap();
    let want = format!(
        "{}\n{}\n",
        std::fs::read_link(format!("/proc/{pid}/ns/mnt"))
            .unwrap()
            .display(),
        std::fs::read_link(format!("/proc/{pid}/ns/pid"))
            .unwrap()
            .display()
    );
    assert_eq!(ns, want, "the hook runs in the container's namespaces");
    let st: Value =
        serde_json::from_str(&std::fs::read_to_string(b.rootfs().join("hook.state")).unwrap())
            .unwrap();
    assert_eq!(st["id"], id.as_str());
    assert_eq!(st["status"], "created", "{st}");
    oci.ok(&["delete", "--force", &id]);
    assert_gone(&oci, &id);
}

// Seccomp user notification, as <linux/seccomp.h> defines it.
#[repr(C)]
#[derive(Default)]
struct SeccompData {
    nr: i32,
    arch: u32,
    ip: u64,
    args: [u64; 6],
}

#[repr(C)]
#[derive(Default)]
struct SeccompNotif {
    id: u64,
    pid: u32,
    flags: u32,
    data: SeccompData,
}

#[repr(C)]
#[derive(Default)]
struct SeccompNotifResp {
    id: u64,
    val: i64,
    error: i32,
    flags: u32,
}

const SECCOMP_IOCTL_NOTIF_RECV: libc::c_ulong = 0xc050_2100;
const SECCOMP_IOCTL_NOTIF_SEND: libc::c_ulong = 0xc018_2101;

/// Receive one message with up to 4 fds on a unix stream.
fn recv_with_fds(sock: &std::os::unix::net::UnixStream) -> (Vec<u8>, Vec<OwnedFd>) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut cmsg = [0u8; 128];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: msghdr is plain data; the pointers set below are valid.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cmsg.as_mut_ptr().cast();
    msg.msg_controllen = cmsg.len();
    // SAFETY: valid msghdr with live buffers.
    let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
    assert!(n >= 0, "recvmsg: {}", std::io::Error::last_os_error());
    let mut fds = Vec::new();
    // SAFETY: walking the control messages the kernel wrote into `cmsg`.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(c) as *const i32;
                let count = ((*c).cmsg_len as usize - libc::CMSG_LEN(0) as usize) / 4;
                for i in 0..count {
                    fds.push(OwnedFd::from_raw_fd(*data.add(i)));
                }
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    buf.truncate(n as usize);
    (buf, fds)
}

fn poll_in(fd: i32, ms: i32) -> bool {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    unsafe { libc::poll(&mut p, 1, ms) > 0 }
}

#[test]
fn seccomp_notify_fd_reaches_the_listener_with_the_container_state() {
    if !require_root("seccomp_notify_fd_reaches_the_listener_with_the_container_state") {
        return;
    }
    let oci = Oci::new("notify");
    let mut b = Bundle::busybox(&[
        "sh",
        "-c",
        "mkdir /denied; echo mkdir=$?; mkdir /allowed; echo mkdir=$?",
    ]);
    let sock_path = b.path().join("agent.sock");
    b.config["root"]["readonly"] = json!(false);
    // noNewPrivileges stays true (the default spec's): the filter is then
    // loaded late, and the listener must still reach the agent.
    assert_eq!(b.config["process"]["noNewPrivileges"], true);
    b.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": sock_path,
        "listenerMetadata": "meta-1",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]
    });
    b.save();
    let listener = std::os::unix::net::UnixListener::bind(&sock_path).unwrap();
    listener.set_nonblocking(true).unwrap();
    let id = oci.id("c");
    std::thread::scope(|s| {
        let runner = s.spawn(|| oci.run_bundle(&b, &id, &[]));
        assert!(
            poll_in(listener.as_raw_fd(), 20_000),
            "nobody connected to the listener"
        );
        let (conn, _) = listener.accept().unwrap();
        conn.set_nonblocking(false).unwrap();
        let (msg, mut fds) = recv_with_fds(&conn);
        let st: Value = serde_json::from_slice(&msg).unwrap();
        assert_eq!(st["fds"], json!(["seccompFd"]), "{st}");
        assert_eq!(st["metadata"], "meta-1");
        assert_eq!(st["state"]["id"], id.as_str(), "{st}");
        let pid = st["pid"].as_i64().unwrap();
        assert!(pid > 0 && st["state"]["pid"] == pid, "{st}");
        assert_eq!(fds.len(), 1);
        let notify = fds.pop().unwrap();
        // Answer the two mkdirs: the first with EACCES, the second by
        // letting the kernel run it.
        for (i, answer) in [(0, -libc::EACCES), (1, 0)] {
            assert!(poll_in(notify.as_raw_fd(), 20_000), "no notification {i}");
            let mut req = SeccompNotif::default();
            // SAFETY: NOTIF_RECV fills a zeroed seccomp_notif.
            let rc = unsafe { libc::ioctl(notify.as_raw_fd(), SECCOMP_IOCTL_NOTIF_RECV, &mut req) };
            assert_eq!(rc, 0, "NOTIF_RECV: {}", std::io::Error::last_os_error());
            assert!(
                req.data.nr == libc::SYS_mkdir as i32 || req.data.nr == libc::SYS_mkdirat as i32
            );
            assert_eq!(
                std::fs::read_to_string(format!("/proc/{}/status", req.pid))
                    .map(|s| s.contains("NSpid"))
                    .ok(),
                Some(true),
                "the notifying pid is a host pid"
            );
            let resp = SeccompNotifResp {
                id: req.id,
                val: 0,
                error: answer,
                // SECCOMP_USER_NOTIF_FLAG_CONTINUE for the allowed one.
                flags: u32::from(answer == 0),
            };
            // SAFETY: NOTIF_SEND reads a seccomp_notif_resp.
            let rc = unsafe { libc::ioctl(notify.as_raw_fd(), SECCOMP_IOCTL_NOTIF_SEND, &resp) };
            assert_eq!(rc, 0, "NOTIF_SEND: {}", std::io::Error::last_os_error());
        }
        drop(notify);
        let (code, out, err) = runner.join().unwrap();
        assert_eq!(code, 0, "{err}");
        assert_eq!(out, "mkdir=1\nmkdir=0\n", "{err}");
        assert!(err.contains("Permission denied"), "{err}");
    });
    assert!(!b.rootfs().join("denied").exists());
    assert!(b.rootfs().join("allowed").is_dir());
    assert_gone(&oci, &id);
}

#[test]
fn the_init_is_not_dumpable_until_it_execs_the_user_process() {
    if !require_root("the_init_is_not_dumpable_until_it_execs_the_user_process") {
        return;
    }
    let oci = Oci::new("dumpable");
    let mut b = Bundle::busybox(&["sleep", "1000"]);
    b.map_root_to(100000);
    b.save();
    let id = oci.id("c");
    oci.ok(&["create", "--bundle", b.path_str(), &id]);
    let pid = oci.init_pid(&id);
    let owner = |p: &str| {
        let m = std::fs::metadata(format!("/proc/{pid}/{p}")).unwrap();
        (m.uid(), m.gid())
    };
    // Its credentials are already the mapped root's...
    assert!(status_line(pid, "Uid:").starts_with("100000"), "creds");
    // ...but it is not dumpable: its /proc files stay root's.
    // (The /proc/<pid> directory itself always shows the euid.)
    assert_eq!(owner(""), (100000, 100000));
    for p in ["status", "environ", "fd", "mem", "ns"] {
        assert_eq!(owner(p), (0, 0), "/proc/{pid}/{p} at created");
    }
    oci.ok(&["start", &id]);
    assert!(wait_for(5, || std::fs::read_link(format!(
        "/proc/{pid}/exe"
    ))
    .is_ok_and(|p| p.ends_with("busybox"))));
    for p in ["status", "environ", "fd", "mem", "ns"] {
        assert_eq!(owner(p), (100000, 100000), "/proc/{pid}/{p} after execve");
    }
    oci.ok(&["delete", "--force", &id]);
    assert_gone(&oci, &id);
}

#[test]
fn events_stats_prints_one_runc_stats_object() {
    if !require_root("events_stats_prints_one_runc_stats_object") {
        return;
    }
    let oci = Oci::new("evstats");
    let mut b = Bundle::busybox(&["sh", "-c", "sleep 1000 & exec sleep 1000"]);
    b.config["linux"]["resources"] = json!({"memory": {"limit": 64 << 20}, "pids": {"limit": 50}});
    b.save();
    let id = oci.id("c");
    oci.ok(&["run", "--detach", "--bundle", b.path_str(), &id]);
    assert!(wait_for(5, || oci
        .ok(&["ps", "--format", "json", &id])
        .matches(',')
        .count()
        >= 1));
    let out = oci.ok(&["events", "--stats", &id]);
    assert_eq!(out.lines().count(), 1, "one object: {out}");
    let ev: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(ev["type"], "stats");
    assert_eq!(ev["id"], id.as_str());
    let d = &ev["data"];
    assert_eq!(d["memory"]["usage"]["limit"], 64 << 20, "{d}");
    assert!(d["memory"]["usage"]["usage"].as_u64().unwrap() > 0, "{d}");
    assert_eq!(d["pids"]["current"], 2, "{d}");
    assert_eq!(d["pids"]["limit"], 50, "{d}");
    assert!(d["cpu"]["usage"]["total"].as_u64().unwrap() > 0, "{d}");
    assert!(d["cpu"]["usage"]["kernel"].is_u64(), "{d}");
    assert!(d["cpu"]["usage"]["user"].is_u64(), "{d}");
    assert!(d["blkio"].is_object() && d["hugetlb"].is_object(), "{d}");
    assert!(d["memory"]["raw"].is_object(), "{d}");
    oci.ok(&["delete", "--force", &id]);
    // A stopped container has no stats.
    assert!(!oci.run(&["events", "--stats", &id]).status.success());
    assert_gone(&oci, &id);
}

#[test]
fn events_streams_stats_and_an_oom_until_the_container_stops() {
    if !require_root("events_streams_stats_and_an_oom_until_the_container_stops") {
        return;
    }
    let oci = Oci::new("evstream");
    let mut b = Bundle::busybox(&[
        "sh",
        "-c",
        "sleep 2; head -c 500000000 /dev/zero | tail > /dev/null; sleep 2",
    ]);
    b.config["linux"]["resources"] = json!({"memory": {"limit": 32 << 20}});
    b.save();
    let id = oci.id("c");
    oci.ok(&["run", "--detach", "--bundle", b.path_str(), &id]);
    let out_path = b.path().join("events.out");
    let mut cmd = oci.cmd();
    cmd.args(["events", "--interval", "1s", &id])
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(b.path().join("events.err")).unwrap());
    let started = Instant::now();
    let mut child = wren_tests::spawn_registered(&mut cmd);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if started.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    wren_tests::unregister(child.id());
    let mut text = String::new();
    std::fs::File::open(&out_path)
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    let err = std::fs::read_to_string(b.path().join("events.err")).unwrap();
    assert!(
        status.is_some_and(|s| s.success()),
        "events must end by itself when the container stops: {status:?} {err}\n{text}"
    );
    let events: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(events.iter().all(|e| e["id"] == id.as_str()), "{text}");
    let stats = events.iter().filter(|e| e["type"] == "stats").count();
    assert!(stats >= 2, "stats every second: {text}");
    assert!(
        events.iter().any(|e| e["type"] == "oom"),
        "an oom event: {text}"
    );
    assert!(!alive(oci.init_pid(&id)));
    oci.ok(&["delete", &id]);
    assert_gone(&oci, &id);
}

/// A host directory on the bundle's filesystem (ext4 or tmpfs here, both
/// idmappable) with one file owned by 0:0 and one by 1000:1000.
fn idmap_source(b: &Bundle) -> PathBuf {
    let dir = b.path().join("idmap-src");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("root-file"), "r\n").unwrap();
    std::fs::write(dir.join("user-file"), "u\n").unwrap();
    std::os::unix::fs::chown(dir.join("user-file"), Some(1000), Some(1000)).unwrap();
    dir
}

/// A bind mount of `src` at `dest`, with mappings of its own if given.
fn bind_json(dest: &str, src: &Path, options: &[&str], maps: Option<&Value>) -> Value {
    let mut m = json!({"destination": dest, "type": "bind", "source": src, "options": options});
    if let Some(maps) = maps {
        m["uidMappings"] = maps.clone();
        m["gidMappings"] = maps.clone();
    }
    m
}

/// Runs `b` in the foreground; it must exit 0. Its stdout lines.
fn run_ok(oci: &Oci, b: &Bundle) -> Vec<String> {
    let (code, out, err) = oci.run_bundle(b, &oci.id("c"), &[]);
    assert_eq!(code, 0, "{err}");
    out.lines().map(String::from).collect()
}

#[test]
fn an_idmapped_bind_mount_shows_files_through_its_own_mappings() {
    if !require_root("an_idmapped_bind_mount_shows_files_through_its_own_mappings") {
        return;
    }
    let oci = Oci::new("idmap");
    let mut b = Bundle::busybox(&[
        "sh",
        "-c",
        "stat -c '%u:%g %n' /data/root-file /data/user-file /plain/root-file",
    ]);
    let src = idmap_source(&b);
    let maps = json!([{"containerID": 0, "hostID": 5000, "size": 2000}]);
    let mounts = b.config["mounts"].as_array_mut().unwrap();
    mounts.push(bind_json("/data", &src, &["bind", "idmap"], Some(&maps)));
    mounts.push(bind_json("/plain", &src, &["bind"], None));
    b.save();
    // On disk 0 and 1000; through the mount, container ids 0.. are host
    // ids 5000..: the files show as 5000 and 6000. The plain bind is as is.
    assert_eq!(
        run_ok(&oci, &b),
        [
            "5000:5000 /data/root-file",
            "6000:6000 /data/user-file",
            "0:0 /plain/root-file"
        ]
    );
}

#[test]
fn idmap_without_mappings_takes_the_containers_user_namespace() {
    if !require_root("idmap_without_mappings_takes_the_containers_user_namespace") {
        return;
    }
    let oci = Oci::new("idmapns");
    let mut b = Bundle::busybox(&[
        "sh",
        "-c",
        "stat -c '%u:%g %n' /data/root-file /data/user-file /plain/root-file; \
         echo new > /data/made-inside && echo wrote",
    ]);
    b.map_root_to(100000);
    let src = idmap_source(&b);
    // The container's root cannot make directories in the host-owned image.
    for d in ["data", "plain"] {
        std::fs::create_dir(b.rootfs().join(d)).unwrap();
    }
    let mounts = b.config["mounts"].as_array_mut().unwrap();
    mounts.push(bind_json("/data", &src, &["rbind", "ridmap"], None));
    mounts.push(bind_json("/plain", &src, &["bind"], None));
    b.save();
    // The container's root (host 100000) sees the host's root-owned files
    // as its own; without the idmap they belong to nobody (65534).
    assert_eq!(
        run_ok(&oci, &b),
        [
            "0:0 /data/root-file",
            "1000:1000 /data/user-file",
            "65534:65534 /plain/root-file",
            "wrote"
        ]
    );
    // A file the container's root made lands on disk as 0:0.
    let meta = std::fs::metadata(src.join("made-inside")).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (0, 0));
}

/// Lazily unmounts a test's host mount, even when the test fails.
struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let p = std::ffi::CString::new(self.0.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        unsafe { libc::umount2(p.as_ptr(), libc::MNT_DETACH) };
    }
}

#[test]
fn ridmap_maps_submounts_and_idmap_only_the_top() {
    if !require_root("ridmap_maps_submounts_and_idmap_only_the_top") {
        return;
    }
    let oci = Oci::new("ridmap");
    let mut b = Bundle::busybox(&[
        "sh",
        "-c",
        "stat -c '%u %n' /r/root-file /r/sub/f /i/root-file /i/sub/f",
    ]);
    let src = idmap_source(&b);
    // A tmpfs (idmappable since Linux 6.3) mounted inside the source.
    let sub = src.join("sub");
    std::fs::create_dir(&sub).unwrap();
    let status = wren_tests::run(
        Command::new("mount")
            .args(["-t", "tmpfs", "tmpfs"])
            .arg(&sub),
    )
    .status;
    assert!(status.success());
    let _unmount = Unmount(sub.clone());
    std::fs::write(sub.join("f"), "f\n").unwrap();
    let maps = json!([{"containerID": 0, "hostID": 5000, "size": 2000}]);
    let mounts = b.config["mounts"].as_array_mut().unwrap();
    for (dest, opt) in [("/r", "ridmap"), ("/i", "idmap")] {
        mounts.push(bind_json(dest, &src, &["rbind", opt], Some(&maps)));
    }
    b.save();
    assert_eq!(
        run_ok(&oci, &b),
        [
            "5000 /r/root-file",
            "5000 /r/sub/f",
            "5000 /i/root-file",
            "0 /i/sub/f"
        ]
    );
}
