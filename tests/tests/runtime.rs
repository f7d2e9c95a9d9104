//! Root integration tests of the runtime library through `wren-oci`, on real
//! busybox bundles, real namespaces, mounts and cgroups. Each test has its
//! own state root, bundle and container ids, checks results from inside the
//! container and from the host, and leaves nothing behind.

use serde_json::json;
use wren_tests::{alive, assert_gone, cgroup_dirs, require_root, text, wait_for, Bundle, Oci};

#[test]
fn run_reports_the_exit_code_and_leaves_nothing() {
    if !require_root("run_reports_the_exit_code_and_leaves_nothing") {
        return;
    }
    let oci = Oci::new("exit");
    let b = Bundle::busybox(&["sh", "-c", "echo out; echo err >&2; exit 7"]);
    let id = oci.id("c");
    let (code, out, err) = oci.run_bundle(&b, &id, &[]);
    assert_eq!(code, 7, "stderr: {err}");
    assert_eq!(out, "out\n");
    assert_eq!(err, "err\n");
    assert_gone(&oci, &id);
}

#[test]
fn create_blocks_before_exec_and_start_releases_it_from_another_process() {
    if !require_root("create_blocks_before_exec_and_start_releases_it_from_another_process") {
        return;
    }
    let oci = Oci::new("lifecycle");
    let b = Bundle::busybox(&["sh", "-c", "echo started > /tmp/marker; exec sleep 1000"]);
    let mut cfg = b.config.clone();
    cfg["root"]["readonly"] = json!(false);
    // oomScoreAdj makes stage 1 open a private procfs: it must not leak.
    cfg["process"]["oomScoreAdj"] = json!(10);
    let b = Bundle { config: cfg, ..b };
    b.save();
    let id = oci.id("c");
    let pid_file = b.path().join("pid");
    oci.ok(&[
        "create",
        "--bundle",
        b.path_str(),
        "--pid-file",
        pid_file.to_str().unwrap(),
        &id,
    ]);
    let st = oci.state(&id);
    assert_eq!(st["status"], "created");
    let pid = st["pid"].as_i64().unwrap();
    assert_eq!(std::fs::read_to_string(&pid_file).unwrap(), pid.to_string());
    assert!(alive(pid));
    // Blocked before execve: still our init, nothing of the process ran.
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
    assert_eq!(comm.trim(), "wren:[2:INIT]");
    assert!(!b.rootfs().join("tmp/marker").exists());
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert!(status.contains("\nTracerPid:\t0"), "{status}");
    // The init's fds at `created`: stdio, the exec fifo and the channel to
    // the (gone) caller, nothing else from the host.
    // Exactly: 0-2 = wren-oci's stdio, 3 = the channel, and the O_PATH
    // exec fifo. Anything else (a caller's pipe, a cgroup dirfd, a procfs
    // handle) would be a leak into the container.
    let mut fds: Vec<(i32, String)> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .map(|e| {
            let n = e.file_name().to_string_lossy().parse().unwrap();
            (
                n,
                std::fs::read_link(e.path())
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
            )
        })
        .collect();
    fds.sort();
    assert_eq!(fds.len(), 5, "fds of the init at created: {fds:?}");
    assert_eq!(
        fds.iter().map(|f| f.0).take(4).collect::<Vec<_>>(),
        vec![0, 1, 2, 3],
        "{fds:?}"
    );
    assert!(fds[3].1.starts_with("socket:"), "{fds:?}");
    assert!(fds[4].1.ends_with("exec.fifo"), "{fds:?}");

    oci.ok(&["start", &id]);
    assert!(wait_for(5, || b.rootfs().join("tmp/marker").exists()));
    assert_eq!(oci.state(&id)["status"], "running");
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    assert!(exe.ends_with("busybox"), "{exe:?}");

    // kill with a signal name; the container stops.
    oci.ok(&["kill", &id, "KILL"]);
    assert!(wait_for(5, || oci.state(&id)["status"] == "stopped"));
    let out = oci.run(&["kill", &id, "TERM"]);
    assert!(
        !out.status.success(),
        "kill of a stopped container must fail"
    );
    oci.ok(&["delete", &id]);
    assert_gone(&oci, &id);
    assert!(!alive(pid));
}

#[test]
fn the_container_has_its_own_namespaces_hostname_and_pid_1() {
    if !require_root("the_container_has_its_own_namespaces_hostname_and_pid_1") {
        return;
    }
    let oci = Oci::new("ns");
    let script = "echo pid=$$; hostname; cat /proc/sys/kernel/domainname; ls /sys/class/net; \
                  for n in pid net ipc uts mnt cgroup; do echo $n=$(readlink /proc/self/ns/$n); done";
    let mut b = Bundle::busybox(&["sh", "-c", script]);
    b.config["hostname"] = json!("box1");
    b.config["domainname"] = json!("example.org");
    b.save();
    let (code, out, err) = oci.run_bundle(&b, &oci.id("c"), &[]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "pid=1");
    assert_eq!(lines[1], "box1");
    assert_eq!(lines[2], "example.org");
    assert_eq!(lines[3], "lo", "a new network namespace has only lo: {out}");
    for l in &lines[4..] {
        let (name, link) = l.split_once('=').unwrap();
        let host = std::fs::read_link(format!("/proc/self/ns/{name}")).unwrap();
        assert_ne!(
            link,
            host.to_str().unwrap(),
            "{name} namespace is the host's"
        );
    }
}

#[test]
fn mounts_masks_and_readonly_paths_hold_inside() {
    if !require_root("mounts_masks_and_readonly_paths_hold_inside") {
        return;
    }
    let oci = Oci::new("mounts");
    let shared = tempfile::tempdir().unwrap();
    std::fs::write(shared.path().join("f"), "from host\n").unwrap();
    let script = "touch /x 2>/dev/null && echo root-rw || echo root-ro; \
                  stat -c %t:%T /proc/keys; ls -A /sys/firmware | wc -l; \
                  echo 1 > /proc/sys/kernel/domainname 2>/dev/null && echo sys-rw || echo sys-ro; \
                  cat /data/f; echo y > /data/g 2>/dev/null && echo data-rw || echo data-ro; \
                  df -k /scratch | tail -1 | awk '{print $2}'; \
                  grep ' /sys/fs/cgroup' /proc/self/mounts | grep -c ' rw,'; true";
    let mut b = Bundle::busybox(&["sh", "-c", script]);
    let mounts = b.config["mounts"].as_array_mut().unwrap();
    mounts.push(json!({"destination": "/data", "type": "bind", "source": shared.path(), "options": ["rbind", "ro"]}));
    mounts.push(json!({"destination": "/scratch", "type": "tmpfs", "source": "tmpfs", "options": ["size=2048k", "nosuid"]}));
    b.save();
    let (code, out, err) = oci.run_bundle(&b, &oci.id("c"), &[]);
    assert_eq!(code, 0, "{err}");
    let l: Vec<&str> = out.lines().collect();
    assert_eq!(l[0], "root-ro", "root.readonly");
    assert_eq!(l[1], "1:3", "a masked file is /dev/null");
    assert_eq!(l[2], "0", "a masked directory is empty");
    assert_eq!(l[3], "sys-ro", "readonlyPaths");
    assert_eq!(l[4], "from host");
    assert_eq!(l[5], "data-ro", "a ro bind mount");
    assert_eq!(l[6], "2048", "tmpfs size option");
    assert_eq!(l[7], "0", "cgroup mounts are read-only");
    assert!(!shared.path().join("g").exists());
}

#[test]
fn user_namespace_maps_root_to_an_unprivileged_host_uid() {
    if !require_root("user_namespace_maps_root_to_an_unprivileged_host_uid") {
        return;
    }
    let oci = Oci::new("userns");
    let mut b = Bundle::busybox(&["sh", "-c", "id -u; cat /proc/self/uid_map; sleep 1000"]);
    b.map_root_to(100000);
    b.save();
    let id = oci.id("c");
    let log = b.path().join("out");
    let out_file = std::fs::File::create(&log).unwrap();
    let mut cmd = oci.cmd();
    cmd.args(["create", "--bundle", b.path_str(), &id])
        .stdout(out_file);
    let st = wren_tests::run_status(&mut cmd);
    assert!(st.success());
    oci.ok(&["start", &id]);
    let pid = oci.init_pid(&id);
    assert!(wait_for(5, || std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .count()
        >= 2));
    let out = std::fs::read_to_string(&log).unwrap();
    assert!(out.starts_with("0\n"), "{out}");
    assert!(out.contains("100000"), "{out}");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert!(uid_line.contains("100000"), "host view: {uid_line}");
    oci.ok(&["delete", "--force", &id]);
    assert_gone(&oci, &id);
}

#[test]
fn capabilities_no_new_privs_seccomp_rlimits_and_oom_score_are_applied() {
    if !require_root("capabilities_no_new_privs_seccomp_rlimits_and_oom_score_are_applied") {
        return;
    }
    let oci = Oci::new("security");
    let script = "grep -E '^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp):' /proc/self/status; \
                  ulimit -n; cat /proc/self/oom_score_adj; mkdir /tmp/d 2>&1 | grep -c 'Operation not permitted'";
    let mut b = Bundle::busybox(&["sh", "-c", script]);
    b.config["root"]["readonly"] = json!(false);
    b.config["process"]["oomScoreAdj"] = json!(123);
    b.config["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "hard": 4096, "soft": 777}]);
    b.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat", "not_a_syscall_at_all"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]
    });
    b.save();
    let (code, out, err) = oci.run_bundle(&b, &oci.id("c"), &[]);
    assert_eq!(code, 0, "{err}");
    let get = |k: &str| {
        out.lines()
            .find(|l| l.starts_with(k))
            .map(|l| l.split_whitespace().nth(1).unwrap().to_string())
    };
    // AUDIT_WRITE (29), KILL (5), NET_BIND_SERVICE (10)
    assert_eq!(get("CapEff:").unwrap(), "0000000020000420");
    assert_eq!(get("CapBnd:").unwrap(), "0000000020000420");
    assert_eq!(get("CapInh:").unwrap(), "0000000000000000");
    assert_eq!(get("CapAmb:").unwrap(), "0000000000000000");
    assert_eq!(get("NoNewPrivs:").unwrap(), "1");
    assert_eq!(get("Seccomp:").unwrap(), "2");
    let tail: Vec<&str> = out.lines().rev().take(3).collect();
    assert_eq!(tail, vec!["1", "123", "777"], "{out}");
}

#[test]
fn sysctls_apply_in_the_container_and_host_keys_are_refused() {
    if !require_root("sysctls_apply_in_the_container_and_host_keys_are_refused") {
        return;
    }
    let oci = Oci::new("sysctl");
    let mut b = Bundle::busybox(&[
        "cat",
        "/proc/sys/net/ipv4/ip_forward",
        "/proc/sys/kernel/shmmni",
    ]);
    b.config["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1", "kernel.shmmni": "1234"});
    b.save();
    let host_before = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
    let (code, out, err) = oci.run_bundle(&b, &oci.id("ok"), &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "1\n1234\n");
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap(),
        host_before
    );

    b.config["linux"]["sysctl"] = json!({"kernel.core_pattern": "|/bin/evil"});
    b.save();
    let id = oci.id("bad");
    let (code, _, err) = oci.run_bundle(&b, &id, &[]);
    assert_ne!(code, 0);
    assert!(err.contains("linux.sysctl.kernel.core_pattern"), "{err}");
    assert_gone(&oci, &id);
}

#[test]
fn hooks_run_where_the_spec_says_with_state_on_stdin() {
    if !require_root("hooks_run_where_the_spec_says_with_state_on_stdin") {
        return;
    }
    let oci = Oci::new("hooks");
    let marks = tempfile::tempdir().unwrap();
    let mut b = Bundle::busybox(&["true"]);
    let hook = |name: &str| {
        let f = marks.path().join(name);
        json!({"path": "/bin/sh", "args": ["sh", "-c",
            format!("cat > {f}.state; readlink /proc/self/ns/mnt > {f}.ns; grep -E '^Sig(Blk|Ign)' /proc/self/status > {f}.sig; date +%s%N > {f}.t", f = f.display())]})
    };
    b.config["hooks"] = json!({
        "prestart": [hook("prestart")],
        "createRuntime": [hook("createRuntime")],
        "createContainer": [hook("createContainer")],
        "poststart": [hook("poststart")],
        "poststop": [hook("poststop")]
    });
    b.save();
    let id = oci.id("c");
    let (code, _, err) = oci.run_bundle(&b, &id, &[]);
    assert_eq!(code, 0, "{err}");
    let host_mnt = std::fs::read_link("/proc/self/ns/mnt").unwrap();
    let read = |n: &str, ext: &str| {
        std::fs::read_to_string(marks.path().join(format!("{n}.{ext}"))).unwrap()
    };
    for h in ["prestart", "createRuntime", "poststart", "poststop"] {
        assert_eq!(
            read(h, "ns").trim(),
            host_mnt.to_str().unwrap(),
            "{h} runs in the host namespaces"
        );
    }
    assert_ne!(
        read("createContainer", "ns").trim(),
        host_mnt.to_str().unwrap(),
        "createContainer runs in the container"
    );
    // Hooks start with nothing blocked or ignored (a hook with SIGCHLD
    // blocked hangs in a shell's `wait`).
    for h in ["prestart", "createRuntime", "poststart", "poststop"] {
        assert_eq!(
            read(h, "sig"),
            "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n",
            "{h}"
        );
    }
    let st: serde_json::Value = serde_json::from_str(&read("createRuntime", "state")).unwrap();
    assert_eq!(st["id"], id.as_str());
    assert_eq!(st["status"], "creating");
    assert!(st["pid"].as_i64().unwrap() > 0);
    let t = |n: &str| read(n, "t").trim().parse::<u128>().unwrap();
    assert!(t("prestart") <= t("createRuntime") && t("createRuntime") <= t("createContainer"));
    assert!(t("createContainer") <= t("poststart") && t("poststart") <= t("poststop"));
    assert_gone(&oci, &id);
}

#[test]
fn a_failing_hook_fails_create_and_leaves_nothing() {
    if !require_root("a_failing_hook_fails_create_and_leaves_nothing") {
        return;
    }
    let oci = Oci::new("hookfail");
    let mut b = Bundle::busybox(&["true"]);
    b.config["hooks"] =
        json!({"createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", "exit 4"]}]});
    b.save();
    let id = oci.id("c");
    let out = oci.run(&["create", "--bundle", b.path_str(), &id]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("createRuntime hook /bin/sh: exited with status 4"),
        "{}",
        text(&out.stderr)
    );
    assert_gone(&oci, &id);
}

#[test]
fn exec_joins_every_namespace_and_the_cgroup_with_its_own_user() {
    if !require_root("exec_joins_every_namespace_and_the_cgroup_with_its_own_user") {
        return;
    }
    let oci = Oci::new("exec");
    let b = Bundle::busybox(&["sleep", "1000"]);
    let id = oci.id("c");
    oci.ok(&["run", "--detach", "--bundle", b.path_str(), &id]);
    let init = oci.init_pid(&id);
    let ns = |pid: &str| -> Vec<String> {
        ["pid", "net", "ipc", "uts", "mnt", "cgroup"]
            .iter()
            .map(|n| {
                std::fs::read_link(format!("/proc/{pid}/ns/{n}"))
                    .map(|p| p.display().to_string())
                    .unwrap_or_default()
            })
            .collect()
    };
    let out = oci.ok(&[
        "exec", "--user", "1000:1000", &id, "sh", "-c",
        "id -u; id -g; for n in pid net ipc uts mnt cgroup; do readlink /proc/self/ns/$n; done; cat /proc/self/cgroup | grep memory; exit 0",
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(&lines[..2], &["1000", "1000"]);
    assert_eq!(
        lines[2..8].to_vec(),
        ns(&init.to_string()),
        "exec joined other namespaces"
    );
    let init_cg = std::fs::read_to_string(format!("/proc/{init}/cgroup")).unwrap();
    let mem = init_cg.lines().find(|l| l.contains(":memory:")).unwrap();
    assert!(
        lines[8].ends_with(mem.rsplit(':').next().unwrap()) || lines[8].ends_with(":/"),
        "{} vs {mem}",
        lines[8]
    );
    // Exit codes come back.
    let out = oci.run(&["exec", &id, "sh", "-c", "exit 5"]);
    assert_eq!(out.status.code(), Some(5));
    // A missing program is an error naming it, before anything runs.
    let out = oci.run(&["exec", &id, "no-such-program"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("no-such-program"),
        "{}",
        text(&out.stderr)
    );
    // ps lists the init.
    let ps = oci.ok(&["ps", "--format", "json", &id]);
    let pids: Vec<i64> = serde_json::from_str(&ps).unwrap();
    assert!(pids.contains(&init), "{pids:?}");
    oci.ok(&["delete", "--force", &id]);
    assert_gone(&oci, &id);
}

#[test]
fn pause_resume_kill_all_and_delete_force() {
    if !require_root("pause_resume_kill_all_and_delete_force") {
        return;
    }
    let oci = Oci::new("pause");
    let b = Bundle::busybox(&["sh", "-c", "sleep 1000 & sleep 1000"]);
    let id = oci.id("c");
    oci.ok(&["run", "--detach", "--bundle", b.path_str(), &id]);
    assert!(wait_for(5, || oci
        .ok(&["ps", "--format", "json", &id])
        .matches(',')
        .count()
        >= 1));
    oci.ok(&["pause", &id]);
    assert_eq!(oci.state(&id)["status"], "paused");
    let out = oci.run(&["delete", &id]);
    assert!(
        !out.status.success(),
        "deleting a paused container needs --force"
    );
    oci.ok(&["resume", &id]);
    assert_eq!(oci.state(&id)["status"], "running");
    let pids: Vec<i64> = serde_json::from_str(&oci.ok(&["ps", "--format", "json", &id])).unwrap();
    oci.ok(&["kill", "--all", &id, "KILL"]);
    assert!(
        wait_for(5, || pids.iter().all(|p| !alive(*p))),
        "kill --all left processes"
    );
    oci.ok(&["delete", "--force", &id]);
    assert_gone(&oci, &id);
}

#[test]
fn the_console_is_a_pty_sent_down_the_console_socket() {
    if !require_root("the_console_is_a_pty_sent_down_the_console_socket") {
        return;
    }
    let oci = Oci::new("tty");
    let mut b = Bundle::busybox(&["sh", "-c", "tty; stat -c %t /dev/console; exec sleep 1000"]);
    b.config["process"]["terminal"] = json!(true);
    b.save();
    let sock_path = b.path().join("console.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock_path).unwrap();
    let id = oci.id("c");
    let sp = sock_path.to_str().unwrap().to_string();
    let oci_root = oci.root.path().to_path_buf();
    let bundle = b.path_str().to_string();
    let id2 = id.clone();
    let creator = std::thread::spawn(move || {
        wren_tests::run(
            std::process::Command::new(wren_tests::bin("wren-oci"))
                .arg("--root")
                .arg(&oci_root)
                .args(["create", "--bundle", &bundle, "--console-socket", &sp, &id2]),
        )
    });
    let (conn, _) = listener.accept().unwrap();
    let master = wren_runtime::console::recv_from_socket(&conn).unwrap();
    let out = creator.join().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    oci.ok(&["start", &id]);
    let mut f = std::fs::File::from(master);
    let mut got = String::new();
    let mut buf = [0u8; 256];
    while !got.contains("\n88") && !got.contains("\r\n88") {
        let n = std::io::Read::read(&mut f, &mut buf).unwrap();
        assert!(n > 0);
        got.push_str(&String::from_utf8_lossy(&buf[..n]));
        if got.len() > 200 {
            break;
        }
    }
    assert!(got.contains("/dev/pts/0"), "{got:?}");
    assert!(
        got.contains("88"),
        "/dev/console is a pty (major 136 = 0x88): {got:?}"
    );
    oci.ok(&["delete", "--force", &id]);
}

#[test]
fn bad_input_names_the_field_and_leaves_nothing() {
    if !require_root("bad_input_names_the_field_and_leaves_nothing") {
        return;
    }
    let oci = Oci::new("bad");
    type Edit = fn(&mut Bundle);
    let cases: Vec<(&str, Edit, &str)> = vec![
        (
            "json",
            |b| std::fs::write(b.path().join("config.json"), "{ not json").unwrap(),
            "config.json",
        ),
        (
            "rootfs",
            |b| std::fs::remove_dir_all(b.rootfs()).unwrap(),
            "root.path",
        ),
        (
            "mountsrc",
            |b| {
                b.config["mounts"].as_array_mut().unwrap().push(
                    json!({"destination": "/x", "type": "bind", "source": "/nonexistent/src", "options": ["bind"]}),
                );
                b.save();
            },
            "/nonexistent/src",
        ),
        (
            "nspath",
            |b| {
                b.config["linux"]["namespaces"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!({"type": "ipc", "path": "/proc/self/ns/net"}));
                b.config["linux"]["namespaces"]
                    .as_array_mut()
                    .unwrap()
                    .retain(|n| n.get("path").is_some() || n["type"] != "ipc");
                b.save();
            },
            "linux.namespaces",
        ),
        (
            "seccomp",
            |b| {
                b.config["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW",
                    "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_BOGUS"}]}]});
                b.save();
            },
            "seccomp",
        ),
        (
            "uidmap",
            |b| {
                b.config["linux"]["namespaces"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!({"type": "user"}));
                b.config["linux"]["uidMappings"] =
                    json!([{"containerID": 0, "hostID": 4294967000u64, "size": 65536}]);
                b.config["linux"]["gidMappings"] =
                    json!([{"containerID": 0, "hostID": 1000, "size": 1}]);
                b.save();
            },
            "linux.uidMappings",
        ),
        (
            "idmaptmpfs",
            |b| {
                b.config["mounts"].as_array_mut().unwrap().push(
                    json!({"destination": "/x", "type": "tmpfs", "source": "tmpfs", "options": ["idmap"]}),
                );
                b.save();
            },
            "must be bind mounts",
        ),
        (
            "idmapnouserns",
            |b| {
                b.config["mounts"].as_array_mut().unwrap().push(
                    json!({"destination": "/x", "type": "bind", "source": "/tmp", "options": ["bind", "idmap"]}),
                );
                b.save();
            },
            "there is none",
        ),
        (
            "idmaphalf",
            |b| {
                b.config["mounts"].as_array_mut().unwrap().push(
                    json!({"destination": "/x", "type": "bind", "source": "/tmp", "options": ["bind", "idmap"],
                        "uidMappings": [{"containerID": 0, "hostID": 5000, "size": 10}]}),
                );
                b.save();
            },
            "given together",
        ),
        (
            "cwd",
            |b| {
                b.config["process"]["cwd"] = json!("/nonexistent-dir");
                b.save();
            },
            "process.cwd",
        ),
    ];
    for (name, edit, want) in cases {
        let mut b = Bundle::busybox(&["true"]);
        edit(&mut b);
        let id = oci.id(name);
        let out = oci.run(&["run", "--bundle", b.path_str(), &id]);
        assert!(!out.status.success(), "{name}: must fail");
        assert!(
            text(&out.stderr).contains(want),
            "{name}: error should name {want:?}: {}",
            text(&out.stderr)
        );
        assert_gone(&oci, &id);
    }
    let leftovers = cgroup_dirs(&format!("{}-json", oci.prefix));
    assert!(leftovers.is_empty());
}

#[test]
fn time_namespace_offsets_shift_the_boot_clock() {
    if !require_root("time_namespace_offsets_shift_the_boot_clock") {
        return;
    }
    let oci = Oci::new("timens");
    let mut b = Bundle::busybox(&["cut", "-d.", "-f1", "/proc/uptime"]);
    b.config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "time"}));
    b.config["linux"]["timeOffsets"] = json!({"boottime": {"secs": 86400 * 365, "nanosecs": 0}});
    b.save();
    let (code, out, err) = oci.run_bundle(&b, &oci.id("c"), &[]);
    assert_eq!(code, 0, "{err}");
    let inside: u64 = out.trim().parse().unwrap();
    assert!(inside >= 86400 * 365, "uptime inside {inside}");
}

#[test]
fn a_pids_limit_of_one_admits_the_init_and_no_fork() {
    if !require_root("a_pids_limit_of_one_admits_the_init_and_no_fork") {
        return;
    }
    // The init is set up by two processes (stage 1 clones stage 2, the
    // container's pid 1, then exits): the limit must not count them both.
    let oci = Oci::new("pids1");
    let script = "read max < /sys/fs/cgroup/pids/pids.max || read max < /sys/fs/cgroup/pids.max; \
                  echo max=$max; /bin/true; echo forked";
    let mut b = Bundle::busybox(&["sh", "-c", script]);
    b.config["linux"]["resources"]["pids"] = json!({"limit": 1});
    b.save();
    let (code, out, err) = oci.run_bundle(&b, &oci.id("c"), &[]);
    // busybox sh gives up with status 2 when it cannot fork.
    assert_eq!(out.trim(), "max=1", "{err}");
    assert!(code == 2 && err.contains("can't fork"), "{code}: {err}");
}

#[test]
fn devices_from_the_spec_exist_and_are_the_only_ones_allowed() {
    if !require_root("devices_from_the_spec_exist_and_are_the_only_ones_allowed") {
        return;
    }
    let oci = Oci::new("dev");
    let script = "stat -c '%F %t:%T %a' /dev/fuse; echo x > /dev/null && echo null-ok; \
                  mknod /tmp/sda b 8 0 && head -c1 /tmp/sda 2>&1 | grep -c 'not permitted'; \
                  (exec 3</dev/fuse) && echo fuse-read; (exec 4>/dev/fuse) && echo fuse-write; true";
    let mut b = Bundle::busybox(&["sh", "-c", script]);
    b.config["root"]["readonly"] = json!(false);
    b.config["linux"]["devices"] =
        json!([{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 0o600}]);
    // Deny everything but reads of the fuse node: the defaults are added,
    // a block device made with mknod cannot be read, and the listed node
    // gets exactly its rule (`--device /dev/fuse:r`), no implicit rwm.
    b.config["linux"]["resources"]["devices"] = json!([
        {"allow": false, "access": "rwm"},
        {"allow": true, "type": "c", "major": 10, "minor": 229, "access": "r"}
    ]);
    for set in ["bounding", "effective", "permitted"] {
        b.config["process"]["capabilities"][set]
            .as_array_mut()
            .unwrap()
            .push(json!("CAP_MKNOD"));
    }
    b.save();
    let (code, out, err) = oci.run_bundle(&b, &oci.id("c"), &[]);
    assert_eq!(code, 0, "{err}");
    let l: Vec<&str> = out.lines().collect();
    assert_eq!(l[0], "character special file a:e5 600");
    assert_eq!(l[1], "null-ok");
    assert_eq!(
        l[2], "1",
        "the device cgroup must deny an unlisted device: {out}"
    );
    assert_eq!(l.get(3), Some(&"fuse-read"), "{out}\n{err}");
    assert!(
        !out.contains("fuse-write") && err.contains("Operation not permitted"),
        "a read-only device rule let a write open through: {out}\n{err}"
    );
}

#[test]
fn flags_after_the_container_id_are_honoured() {
    if !require_root("flags_after_the_container_id_are_honoured") {
        return;
    }
    // `create ID --bundle B` from a directory with no config.json: the
    // bundle must be B, not the cwd.
    let oci = Oci::new("flagsafter");
    let b = Bundle::busybox(&["true"]);
    let elsewhere = tempfile::tempdir().unwrap();
    let id = oci.id("c");
    let out = wren_tests::run(oci.cmd().current_dir(elsewhere.path()).args([
        "create",
        &id,
        "--bundle",
        b.path_str(),
    ]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let state: serde_json::Value = serde_json::from_str(&oci.ok(&["state", &id])).unwrap();
    assert_eq!(state["bundle"].as_str(), Some(b.path_str()), "{state}");
    oci.ok(&["delete", &id, "--force=true"]);
    assert_gone(&oci, &id);
}

#[test]
fn an_error_names_the_command_and_container_once() {
    if !require_root("an_error_names_the_command_and_container_once") {
        return;
    }
    let oci = Oci::new("errctx");
    let id = oci.id("nosuch");
    let out = oci.run(&["state", &id]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!("state {id}: container does not exist")),
        "{err}"
    );
    assert_eq!(err.matches(id.as_str()).count(), 1, "{err}");
}
