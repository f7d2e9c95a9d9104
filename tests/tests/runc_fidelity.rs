//! Where wren-oci must behave as runc does, each checked through
//! `wren-oci` and, on the same bundle in the same test, through runc:
//! seccomp profiles that deny what a runtime might call after loading the
//! filter, failures after `start`, flag placement, `exec --env`, hooks'
//! environment, configs without a mount namespace, memory policy, time
//! namespaces with user namespaces, v1 `name=systemd`, masked paths and the
//! words of error messages.
//!
//! Root only; each test has its own state roots, bundles and ids and
//! leaves nothing behind.

use serde_json::json;
use wren_tests::profiles::{allow_only, default_like, ALLOWED, MINIMAL_STATIC};
use wren_tests::runc::Runc;
use wren_tests::{assert_gone, require_root, text, Bundle, Oci};

/// A bundle printing `hi` under `profile`, with no_new_privs as given.
fn seccomp_bundle(profile: serde_json::Value, nnp: bool) -> Bundle {
    let mut b = Bundle::busybox(&["echo", "hi"]);
    b.config["process"]["noNewPrivileges"] = json!(nnp);
    b.config["linux"]["seccomp"] = profile;
    b.save();
    b
}

#[test]
fn a_profile_for_a_minimal_static_binary_is_enough_with_no_new_privs() {
    let test = "a_profile_for_a_minimal_static_binary_is_enough_with_no_new_privs";
    if !require_root(test) {
        return;
    }
    let oci = Oci::new("minseccomp");
    let b = seccomp_bundle(allow_only(MINIMAL_STATIC), true);
    let id = oci.id("c");
    let (code, out, err) = oci.run_bundle(&b, &id, &[]);
    assert_eq!((code, out.as_str()), (0, "hi\n"), "wren-oci stderr: {err}");
    assert_gone(&oci, &id);
    if let Some(runc) = Runc::find(test) {
        // runc 1.1 closes its log pipe after loading the filter and dies
        // on this profile (`close` denied); 1.2 and later need `close` and
        // `close_range` there too. Recorded, not required.
        let (rcode, rout, rerr) = runc.run_bundle(&b, &runc.id("c"));
        eprintln!("runc on a minimal profile: {rcode} {rout:?} {rerr:?}");
    }
}

#[test]
fn a_profile_without_close_range_runs_without_no_new_privs() {
    let test = "a_profile_without_close_range_runs_without_no_new_privs";
    if !require_root(test) {
        return;
    }
    let mut profile = default_like();
    let allowed: Vec<&str> = ALLOWED
        .iter()
        .copied()
        .filter(|s| *s != "close_range")
        .collect();
    profile["syscalls"][0]["names"] = json!(allowed);
    let oci = Oci::new("noclrange");
    let b = seccomp_bundle(profile, false);
    let id = oci.id("c");
    let (code, out, err) = oci.run_bundle(&b, &id, &[]);
    assert_eq!((code, out.as_str()), (0, "hi\n"), "wren-oci stderr: {err}");
    assert_gone(&oci, &id);
    if let Some(runc) = Runc::find(test) {
        let (rcode, rout, rerr) = runc.run_bundle(&b, &runc.id("c"));
        assert_eq!((rcode, rout.as_str()), (0, "hi\n"), "runc stderr: {rerr}");
    }
}

/// The order of the init's `init.seccomp` and `init.released` timing marks
/// (`WREN_TIMING`) in one `run` of `b`: (filter loaded before the release,
/// exit code, stdout).
fn filter_before_release(oci: &Oci, b: &Bundle, id: &str) -> (bool, i32, String) {
    let marks = b.path().join("timing.jsonl");
    let out = wren_tests::run(oci.cmd().env("WREN_TIMING", &marks).args([
        "run",
        "--bundle",
        b.path_str(),
        id,
    ]));
    let at = |ev: &str| {
        std::fs::read_to_string(&marks)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|v| v["id"] == id && v["ev"] == ev)
            .and_then(|v| v["t"].as_u64())
            .unwrap_or_else(|| panic!("no {ev} mark: {}", text(&out.stderr)))
    };
    (
        at("init.seccomp") < at("init.released"),
        out.status.code().unwrap_or(-1),
        text(&out.stdout),
    )
}

#[test]
fn a_late_filter_loads_before_the_release_only_when_it_allows_the_rest() {
    let test = "a_late_filter_loads_before_the_release_only_when_it_allows_the_rest";
    if !require_root(test) {
        return;
    }
    let oci = Oci::new("earlyfilter");
    // A default-like profile allows everything the init does after
    // "ready": loaded right after it. The filter is in force all the same
    // (mkdir is left out of the profile on purpose).
    let mut b = seccomp_bundle(default_like(), true);
    b.config["process"]["args"] = json!(["sh", "-c", "mkdir /tmp/x 2>/dev/null || echo denied"]);
    b.save();
    let id = oci.id("default");
    assert_eq!(
        filter_before_release(&oci, &b, &id),
        (true, 0, "denied\n".to_string())
    );
    assert_gone(&oci, &id);
    // A minimal allow list does not (no rt_sigaction): loaded last.
    let b = seccomp_bundle(allow_only(MINIMAL_STATIC), true);
    let id = oci.id("minimal");
    assert_eq!(
        filter_before_release(&oci, &b, &id),
        (false, 0, "hi\n".to_string())
    );
    assert_gone(&oci, &id);
    // A startContainer hook must run unfiltered: loaded last.
    let mut b = seccomp_bundle(default_like(), true);
    b.config["hooks"] = json!({"startContainer": [{"path": "/bin/true"}]});
    b.save();
    let id = oci.id("hook");
    assert_eq!(
        filter_before_release(&oci, &b, &id),
        (false, 0, "hi\n".to_string())
    );
    assert_gone(&oci, &id);
}

/// `create` succeeds, then `start` fails: its error names the step and
/// the container is stopped, not silently gone.
fn start_fails_naming(oci: &Oci, b: &Bundle, id: &str, step: &str) {
    oci.ok(&["create", "--bundle", b.path_str(), id]);
    let out = oci.run(&["start", id]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "start: {err}");
    assert!(err.contains(&format!("start {id}: ")), "{err}");
    assert!(err.contains(step), "{err}");
    assert!(
        wren_tests::wait_for(5, || oci.state(id)["status"] == "stopped"),
        "{}",
        oci.state(id)
    );
    oci.ok(&["delete", id]);
    assert_gone(oci, id);
}

#[test]
fn a_failure_after_start_released_the_init_is_an_error_of_start() {
    let test = "a_failure_after_start_released_the_init_is_an_error_of_start";
    if !require_root(test) {
        return;
    }
    let oci = Oci::new("afterstart");
    // A startContainer hook that fails.
    let mut b = Bundle::busybox(&["echo", "hi"]);
    b.config["hooks"] = json!({"startContainer": [{"path": "/bin/false"}]});
    b.save();
    start_fails_naming(&oci, &b, &oci.id("hook"), "startContainer");
    // The filter (loaded last with no_new_privs) denies execve itself.
    let allowed: Vec<&str> = MINIMAL_STATIC
        .iter()
        .copied()
        .filter(|s| *s != "execve")
        .collect();
    let b = seccomp_bundle(allow_only(&allowed), true);
    start_fails_naming(&oci, &b, &oci.id("execve"), "exec /bin/echo");
}

/// A detached `sleep` container from `b`, started under `id`.
fn start_detached(oci: &Oci, b: &Bundle, id: &str) {
    oci.ok(&["run", "--detach", "--bundle", b.path_str(), id]);
}

#[test]
fn exec_env_replaces_the_value_from_the_spec() {
    let test = "exec_env_replaces_the_value_from_the_spec";
    if !require_root(test) {
        return;
    }
    let mut b = Bundle::busybox(&["sleep", "1000"]);
    b.config["process"]["env"]
        .as_array_mut()
        .unwrap()
        .extend([json!("X=old"), json!("Y=spec")]);
    b.save();
    // Every X and Y the process got, in order (getenv finds the first).
    let probe = ["sh", "-c", "env | grep -E '^(X|Y)=' | sort -s -t= -k1,1"];
    let oci = Oci::new("execenv");
    let id = oci.id("c");
    start_detached(&oci, &b, &id);
    let mut args = vec!["exec", "--env", "X=new", &id];
    args.extend(probe);
    assert_eq!(oci.ok(&args), "X=new\nY=spec\n");
    // The same for a whole process.json whose env repeats a name.
    let mut p = b.config["process"].clone();
    p["args"] = json!(probe);
    p["env"].as_array_mut().unwrap().push(json!("X=file"));
    let pj = b.path().join("process.json");
    std::fs::write(&pj, p.to_string()).unwrap();
    assert_eq!(
        oci.ok(&["exec", "--process", pj.to_str().unwrap(), &id]),
        "X=file\nY=spec\n"
    );
    oci.ok(&["delete", "--force", &id]);
    assert_gone(&oci, &id);
    if let Some(runc) = Runc::find(test) {
        let rid = runc.id("execenv");
        let out = runc.run(&["run", "--detach", "--bundle", b.path_str(), &rid]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let mut args = vec!["exec", "--env", "X=new", &rid];
        args.extend(probe);
        assert_eq!(text(&runc.run(&args).stdout), "X=new\nY=spec\n", "runc");
    }
}

#[test]
fn hooks_in_the_container_without_env_get_the_process_environment() {
    let test = "hooks_in_the_container_without_env_get_the_process_environment";
    if !require_root(test) {
        return;
    }
    let mut b = Bundle::busybox(&["true"]);
    b.config["root"]["readonly"] = json!(false);
    b.config["process"]["env"]
        .as_array_mut()
        .unwrap()
        .extend([json!("MARK=first"), json!("MARK=fromprocess")]);
    let created = b.rootfs().join("tmp/created-env");
    b.config["hooks"] = json!({
        // Before pivot_root: host paths, in the container's namespaces.
        "createContainer": [{"path": "/bin/sh", "args": ["sh", "-c",
            format!("echo \"$MARK\" > {}", created.display())]}],
        // After: the container's paths.
        "startContainer": [
            {"path": "/bin/sh", "args": ["sh", "-c", "echo \"$MARK\" > /tmp/start-env"]},
            {"path": "/bin/sh", "args": ["sh", "-c", "echo \"[$MARK]\" > /tmp/own-env"],
             "env": ["OTHER=1"]},
        ],
    });
    b.save();
    let read = |name: &str| std::fs::read_to_string(b.rootfs().join("tmp").join(name)).unwrap();
    let oci = Oci::new("hookenv");
    let id = oci.id("c");
    let (code, _, err) = oci.run_bundle(&b, &id, &[]);
    assert_eq!(code, 0, "{err}");
    let wren = (read("created-env"), read("start-env"), read("own-env"));
    assert_eq!(
        wren,
        (
            "fromprocess\n".into(),
            "fromprocess\n".into(),
            "[]\n".into()
        )
    );
    assert_gone(&oci, &id);
    if let Some(runc) = Runc::find(test) {
        for f in ["created-env", "start-env", "own-env"] {
            let _ = std::fs::remove_file(b.rootfs().join("tmp").join(f));
        }
        let (rcode, _, rerr) = runc.run_bundle(&b, &runc.id("hookenv"));
        assert_eq!(rcode, 0, "runc: {rerr}");
        assert_eq!(
            (read("created-env"), read("start-env"), read("own-env")),
            wren,
            "runc"
        );
    }
}

#[test]
fn exec_ignore_paused_runs_once_resumed_and_cgroup_picks_a_sub_cgroup() {
    let test = "exec_ignore_paused_runs_once_resumed_and_cgroup_picks_a_sub_cgroup";
    if !require_root(test) {
        return;
    }
    let mut b = Bundle::busybox(&["sleep", "1000"]);
    b.config["root"]["readonly"] = json!(false);
    b.save();
    let oci = Oci::new("execpaused");
    let id = oci.id("c");
    start_detached(&oci, &b, &id);

    // --cgroup: an existing sub-cgroup, in every hierarchy.
    let subs: Vec<_> = wren_tests::cgroup_dirs(&id)
        .into_iter()
        .map(|d| d.join("sub"))
        .collect();
    assert!(!subs.is_empty());
    let out = oci.run(&["exec", "--cgroup", "sub", &id, "true"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("sub-cgroup \"sub\"") && err.contains("does not exist"),
        "{err}"
    );
    for s in &subs {
        std::fs::create_dir(s).unwrap();
        // A v1 cpuset child starts empty: the container that made it
        // gives it cpus and mems (here, the parent's).
        for f in ["cpuset.cpus", "cpuset.mems"] {
            if let Ok(v) = std::fs::read_to_string(s.parent().unwrap().join(f)) {
                std::fs::write(s.join(f), v).unwrap();
            }
        }
    }
    let cg = oci.ok(&["exec", "--cgroup", "sub", &id, "cat", "/proc/self/cgroup"]);
    assert!(
        cg.lines().all(|l| l.ends_with("/sub")),
        "every hierarchy in the sub-cgroup: {cg}"
    );
    for bad in ["../escape", "/abs", "a/../b", "memory:sub"] {
        let out = oci.run(&["exec", "--cgroup", bad, &id, "true"]);
        assert_eq!(out.status.code(), Some(1), "--cgroup {bad}");
        assert!(text(&out.stderr).contains(bad), "{}", text(&out.stderr));
    }

    // --ignore-paused: refused without it; with it the process starts
    // frozen and runs once the container is resumed.
    oci.ok(&["pause", &id]);
    let out = oci.run(&["exec", &id, "true"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("paused"),
        "{}",
        text(&out.stderr)
    );
    let marker = b.rootfs().join("tmp/ran");
    let mut exec = wren_tests::spawn_registered(oci.cmd().args([
        "exec",
        "--ignore-paused",
        &id,
        "sh",
        "-c",
        "echo ran > /tmp/ran",
    ]));
    // Frozen: it cannot have run yet, however long this takes.
    assert!(!wren_tests::wait_for(1, || marker.exists()));
    assert_eq!(oci.state(&id)["status"], "paused");
    oci.ok(&["resume", &id]);
    let status = exec.wait().unwrap();
    wren_tests::unregister(exec.id());
    assert!(status.success());
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "ran\n");

    for s in &subs {
        let _ = std::fs::remove_dir(s);
    }
    oci.ok(&["delete", "--force", &id]);
    assert_gone(&oci, &id);
}

/// The line of `/proc/<pid>/cgroup` for the named `name=systemd` hierarchy.
fn systemd_line(pid: i64) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .ok()?
        .lines()
        .find(|l| l.split(':').nth(1) == Some("name=systemd"))
        .map(str::to_string)
}

#[test]
fn the_container_joins_the_named_systemd_hierarchy() {
    let test = "the_container_joins_the_named_systemd_hierarchy";
    if !require_root(test) {
        return;
    }
    if systemd_line(std::process::id() as i64).is_none() {
        wren_tests::skip(
            test,
            wren_tests::Skip::Host("no name=systemd v1 hierarchy is mounted".into()),
        );
        return;
    }
    let b = Bundle::busybox(&["sleep", "1000"]);
    let oci = Oci::new("namedsd");
    let id = oci.id("c");
    start_detached(&oci, &b, &id);
    let line = systemd_line(oci.init_pid(&id)).unwrap();
    assert!(line.ends_with(&format!("/{id}")), "{line}");
    let dir = std::path::Path::new("/sys/fs/cgroup/systemd")
        .join(line.split(':').nth(2).unwrap().trim_start_matches('/'));
    assert!(dir.is_dir(), "{}", dir.display());
    oci.ok(&["delete", "--force", &id]);
    assert_gone(&oci, &id);
    assert!(!dir.exists(), "{} left behind", dir.display());
    if let Some(runc) = Runc::find(test) {
        let rid = runc.id("namedsd");
        let out = runc.run(&["run", "--detach", "--bundle", b.path_str(), &rid]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let st: serde_json::Value =
            serde_json::from_slice(&runc.run(&["state", &rid]).stdout).unwrap();
        let rline = systemd_line(st["pid"].as_i64().unwrap()).unwrap();
        assert!(rline.ends_with(&format!("/{rid}")), "runc: {rline}");
    }
}

#[test]
fn masked_directories_are_one_read_only_tmpfs_with_runcs_mode() {
    let test = "masked_directories_are_one_read_only_tmpfs_with_runcs_mode";
    if !require_root(test) {
        return;
    }
    let dirs: Vec<&str> = ["/proc/acpi", "/sys/firmware", "/proc/scsi", "/proc/asound"]
        .into_iter()
        .filter(|d| std::path::Path::new(d).is_dir())
        .collect();
    if dirs.len() < 2 {
        wren_tests::skip(
            test,
            wren_tests::Skip::Host("fewer than two maskable directories here".into()),
        );
        return;
    }
    let script = format!(
        "for d in {}; do stat -c '%a %F' $d; ls -A $d | wc -l; touch $d/x 2>/dev/null && echo writable; done; \
         stat -c %d {} | sort -u | wc -l",
        dirs.join(" "),
        dirs.join(" ")
    );
    let mut b = Bundle::busybox(&["sh", "-c", &script]);
    b.config["linux"]["maskedPaths"] = json!(dirs);
    b.save();
    let oci = Oci::new("masktmpfs");
    let id = oci.id("c");
    let (code, out, err) = oci.run_bundle(&b, &id, &[]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    let (per_dir, devices) = lines.split_at(lines.len() - 1);
    assert_eq!(
        devices,
        ["1"],
        "one tmpfs shared by every masked directory: {out}"
    );
    for pair in per_dir.chunks(2) {
        assert_eq!(pair, ["1777 directory", "0"], "{out}");
    }
    assert_gone(&oci, &id);
    if let Some(runc) = Runc::find(test) {
        let (rcode, rout, rerr) = runc.run_bundle(&b, &runc.id("masktmpfs"));
        assert_eq!(rcode, 0, "runc: {rerr}");
        let rlines: Vec<&str> = rout.lines().collect();
        // runc before 1.4.3 mounts one tmpfs per directory: compare the rest.
        assert_eq!(&rlines[..rlines.len() - 1], per_dir, "runc: {rout}");
    }
}

#[test]
fn time_offsets_apply_with_a_new_user_namespace() {
    let test = "time_offsets_apply_with_a_new_user_namespace";
    if !require_root(test) {
        return;
    }
    let mut b = Bundle::busybox(&["cut", "-d.", "-f1", "/proc/uptime"]);
    b.config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "time"}));
    b.config["linux"]["timeOffsets"] = json!({"boottime": {"secs": 86400 * 365, "nanosecs": 0}});
    b.map_root_to(100000);
    b.save();
    let oci = Oci::new("timensuser");
    let id = oci.id("c");
    let (code, out, err) = oci.run_bundle(&b, &id, &[]);
    assert_eq!(code, 0, "{err}");
    let inside: u64 = out.trim().parse().unwrap();
    assert!(inside >= 86400 * 365, "uptime inside {inside}");
    assert_gone(&oci, &id);
    if let Some(runc) = Runc::find(test) {
        // runc has time namespaces from 1.2; 1.1 refuses the config.
        let (rcode, rout, rerr) = runc.run_bundle(&b, &runc.id("timensuser"));
        eprintln!("runc: {rcode} {rout:?} {rerr:?}");
    }
}

#[test]
fn the_memory_policy_is_the_inits_and_bad_ones_name_the_field() {
    let test = "the_memory_policy_is_the_inits_and_bad_ones_name_the_field";
    if !require_root(test) {
        return;
    }
    if !std::path::Path::new("/sys/devices/system/node/node0").exists() {
        wren_tests::skip(
            test,
            wren_tests::Skip::Host("the kernel has no NUMA nodes".into()),
        );
        return;
    }
    // No runc comparison: runc has memoryPolicy from 1.4; Debian's 1.1
    // ignores the field it does not know.
    let oci = Oci::new("mempolicy");
    // numa_maps shows each mapping's policy: the heap is the first
    // anonymous one after the binary's.
    let probe = [
        "sh",
        "-c",
        "grep -m1 heap /proc/self/numa_maps | cut -d' ' -f2",
    ];
    for (policy, shown) in [
        (json!({"mode": "MPOL_BIND", "nodes": "0"}), "bind:0"),
        (
            json!({"mode": "MPOL_INTERLEAVE", "nodes": "0"}),
            "interleave:0",
        ),
        (
            json!({"mode": "MPOL_PREFERRED", "nodes": "0", "flags": ["MPOL_F_STATIC_NODES"]}),
            "prefer=static:0",
        ),
        (json!({"mode": "MPOL_DEFAULT"}), "default"),
    ] {
        let mut b = Bundle::busybox(&probe);
        b.config["linux"]["memoryPolicy"] = policy.clone();
        b.save();
        let id = oci.id("ok");
        let (code, out, err) = oci.run_bundle(&b, &id, &[]);
        assert_eq!((code, out.trim()), (0, shown), "{policy}: {err}");
        assert_gone(&oci, &id);
    }
    for (policy, why) in [
        (json!({"mode": "MPOL_BIND"}), "needs nodes"),
        (json!({"mode": "MPOL_BIND", "nodes": "0-x"}), "\"0-x\""),
        (
            json!({"mode": "MPOL_BIND", "nodes": "4000"}),
            "set_mempolicy",
        ),
        (
            json!({"mode": "MPOL_LOCAL", "nodes": "0"}),
            "takes no nodes",
        ),
        (json!({"mode": "MPOL_NOPE"}), "memoryPolicy"),
    ] {
        let mut b = Bundle::busybox(&["true"]);
        b.config["linux"]["memoryPolicy"] = policy.clone();
        b.save();
        let id = oci.id("bad");
        let (code, _, err) = oci.run_bundle(&b, &id, &[]);
        assert_eq!(code, 1, "{policy}");
        assert!(
            err.contains("linux.memoryPolicy") && err.contains(why),
            "{policy}: {err}"
        );
        assert_gone(&oci, &id);
    }
}

/// Mount points at or under `dir` in this process's mount namespace.
fn mounts_under(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
        .filter(|p| std::path::Path::new(p).starts_with(dir))
        .collect()
}

#[test]
fn a_config_without_a_mount_namespace_runs_chrooted_and_leaves_no_mounts() {
    let test = "a_config_without_a_mount_namespace_runs_chrooted_and_leaves_no_mounts";
    if !require_root(test) {
        return;
    }
    let mut b = Bundle::busybox(&["sleep", "1000"]);
    b.config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .retain(|n| n["type"] != "mount");
    b.save();
    let rootfs = b.rootfs().canonicalize().unwrap();
    assert!(mounts_under(&rootfs).is_empty());
    let oci = Oci::new("nomntns");
    let id = oci.id("c");
    start_detached(&oci, &b, &id);
    // Its mounts are in our namespace, under the rootfs, and only there.
    let during = mounts_under(&rootfs);
    for m in ["proc", "dev", "sys"] {
        assert!(
            during.iter().any(|p| p.ends_with(&format!("/rootfs/{m}"))),
            "{m} in {during:?}"
        );
    }
    // The init and an exec see the rootfs as /.
    let pid = oci.init_pid(&id);
    assert_eq!(
        std::fs::read_link(format!("/proc/{pid}/root")).unwrap(),
        rootfs
    );
    let passwd = oci.ok(&["exec", &id, "cat", "/etc/passwd"]);
    assert!(passwd.contains("user:x:1000"), "{passwd}");
    oci.ok(&["delete", "--force", &id]);
    assert_gone(&oci, &id);
    assert_eq!(mounts_under(&rootfs), Vec::<String>::new(), "left behind");

    // A create that fails after mounting (a bind of a missing source, the
    // last mount) takes its mounts away too.
    let mut bad = b.config.clone();
    bad["mounts"].as_array_mut().unwrap().push(
        json!({"destination": "/mnt", "type": "bind", "source": "/nonexistent/wren", "options": ["bind"]}),
    );
    let bb = Bundle {
        config: bad,
        ..Bundle::busybox(&["true"])
    };
    bb.save();
    let bad_root = bb.rootfs().canonicalize().unwrap();
    let bid = oci.id("badmount");
    let (code, _, err) = oci.run_bundle(&bb, &bid, &[]);
    assert_eq!(code, 1);
    assert!(err.contains("/nonexistent/wren"), "{err}");
    assert_gone(&oci, &bid);
    assert_eq!(mounts_under(&bad_root), Vec::<String>::new(), "left behind");

    // A user namespace cannot mount in ours: refused up front, naming it.
    let mut bu = Bundle::busybox(&["true"]);
    bu.config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .retain(|n| n["type"] != "mount");
    bu.map_root_to(100000);
    bu.save();
    let bid = oci.id("userns");
    let (code, _, err) = oci.run_bundle(&bu, &bid, &[]);
    assert_eq!(code, 1);
    assert!(
        err.contains("linux.namespaces") && err.contains("mount namespace"),
        "{err}"
    );
    assert_gone(&oci, &bid);

    if let Some(runc) = Runc::find(test) {
        // runc refuses masked and read-only paths without a mount
        // namespace ("unable to restrict sys entries"); wren applies them
        // under the container's private rootfs bind.
        b.config["linux"]["maskedPaths"] = json!([]);
        b.config["linux"]["readonlyPaths"] = json!([]);
        b.save();
        let rid = runc.id("nomntns");
        let out = runc.run(&["run", "--detach", "--bundle", b.path_str(), &rid]);
        assert!(out.status.success(), "runc: {}", text(&out.stderr));
        let st: serde_json::Value =
            serde_json::from_slice(&runc.run(&["state", &rid]).stdout).unwrap();
        let rpid = st["pid"].as_i64().unwrap();
        assert_eq!(
            std::fs::read_link(format!("/proc/{rpid}/root")).unwrap(),
            rootfs,
            "runc chroots too"
        );
        runc.run(&["delete", "--force", &rid]);
        // runc leaves its mounts in the host's table: record, then clean.
        let left = mounts_under(&rootfs);
        eprintln!("runc left {} mounts under the rootfs: {left:?}", left.len());
        for m in left.iter().rev() {
            let _ = nix::mount::umount2(m.as_str(), nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

/// (exit code, stderr) of a command.
fn code_err(out: std::process::Output) -> (i32, String) {
    (out.status.code().unwrap_or(-1), text(&out.stderr))
}

#[test]
fn error_messages_use_the_words_callers_match_and_exit_1() {
    let test = "error_messages_use_the_words_callers_match_and_exit_1";
    if !require_root(test) {
        return;
    }
    let oci = Oci::new("messages");
    let runc = Runc::find(test);
    // Both must say `words` with "error", exit 1; `run` runs the command
    // on the given runtime (wren-oci or runc).
    let check = |what: &str, wren: (i32, String), runc: Option<(i32, String)>, words: &str| {
        for (who, (code, err)) in [("wren-oci", Some(wren)), ("runc", runc)]
            .into_iter()
            .filter_map(|(w, r)| r.map(|r| (w, r)))
        {
            assert_eq!(code, 1, "{who} {what}: {err}");
            assert!(
                err.contains("error") && err.contains(words),
                "{who} {what}: wanted {words:?} in {err:?}"
            );
        }
    };
    for cmd in [
        &["delete"][..],
        &["kill"],
        &["state"],
        &["start"],
        &["pause"],
        &["ps"],
    ] {
        let mut args = cmd.to_vec();
        args.push("nosuch");
        check(
            &format!("{cmd:?} of a missing container"),
            code_err(oci.run(&args)),
            runc.as_ref().map(|r| code_err(r.run(&args))),
            "container does not exist",
        );
    }

    // A stopped container: kill, start, exec, pause.
    let b = Bundle::busybox(&["true"]);
    let id = oci.id("stopped");
    oci.ok(&["create", "--bundle", b.path_str(), &id]);
    oci.ok(&["start", &id]);
    assert!(wren_tests::wait_for(5, || oci.state(&id)["status"] == "stopped"));
    let rid = runc.as_ref().map(|r| {
        let rid = r.id("stopped");
        assert!(r
            .run(&["create", "--bundle", b.path_str(), &rid])
            .status
            .success());
        assert!(r.run(&["start", &rid]).status.success());
        assert!(wren_tests::wait_for(5, || text(
            &r.run(&["state", &rid]).stdout
        )
        .contains("\"stopped\"")));
        rid
    });
    for (args, words) in [
        (&["kill", "ID", "KILL"][..], "container not running"),
        (
            &["start", "ID"],
            "cannot start a container that has stopped",
        ),
        (&["pause", "ID"], "container not running"),
    ] {
        let with = |id: &str| -> Vec<String> {
            args.iter()
                .map(|a| {
                    if *a == "ID" {
                        id.to_string()
                    } else {
                        a.to_string()
                    }
                })
                .collect()
        };
        let wargs = with(&id);
        let wargs: Vec<&str> = wargs.iter().map(String::as_str).collect();
        let rres = match (&runc, &rid) {
            (Some(r), Some(rid)) => {
                let rargs = with(rid);
                let rargs: Vec<&str> = rargs.iter().map(String::as_str).collect();
                Some(code_err(r.run(&rargs)))
            }
            _ => None,
        };
        check(
            &format!("{args:?} of a stopped container"),
            code_err(oci.run(&wargs)),
            rres,
            words,
        );
    }
    oci.ok(&["delete", &id]);
    assert_gone(&oci, &id);

    // Spec errors: a /proc destination that is a symlink, an unknown
    // capability.
    let mut b = Bundle::busybox(&["true"]);
    std::fs::remove_dir(b.rootfs().join("proc")).unwrap();
    std::os::unix::fs::symlink("/tmp", b.rootfs().join("proc")).unwrap();
    b.save();
    let id = oci.id("procsymlink");
    check(
        "/proc on a symlink",
        code_err(oci.run(&["run", "--bundle", b.path_str(), &id])),
        runc.as_ref()
            .map(|r| code_err(r.run(&["run", "--bundle", b.path_str(), &r.id("procsymlink")]))),
        "must be mounted on ordinary directory",
    );
    assert_gone(&oci, &id);
    std::fs::remove_file(b.rootfs().join("proc")).unwrap();
    std::fs::create_dir(b.rootfs().join("proc")).unwrap();
    b.config["process"]["capabilities"]["bounding"] = json!(["CAP_NOPE"]);
    b.save();
    let id = oci.id("badcap");
    // runc 1.0 said "unknown capability"; 1.1 and later warn and drop it.
    // wren refuses a name no kernel knows, in 1.0's words.
    check(
        "an unknown capability",
        code_err(oci.run(&["run", "--bundle", b.path_str(), &id])),
        None,
        "unknown capability \"CAP_NOPE\"",
    );
    assert_gone(&oci, &id);
}

/// Through a private containerd and the shim: a profile without
/// `close_range` runs; one that denies `execve` fails `ctr run` at start
/// with the step named, and the task is not left behind.
#[test]
fn under_containerd_a_profile_without_close_range_runs_and_a_late_failure_fails_start() {
    let test = "under_containerd_a_profile_without_close_range_runs_and_a_late_failure_fails_start";
    if !wren_tests::containerd::shim_tests_can_run(test) {
        return;
    }
    use wren_tests::containerd::{Containerd, IMAGE, RUNTIME};
    let c = Containerd::start(&format!("wrenfidelity{}", std::process::id()), true);
    let write_profile = |name: &str, drop: &[&str]| {
        let mut p = default_like();
        let allowed: Vec<&str> = ALLOWED
            .iter()
            .copied()
            .filter(|s| !drop.contains(s))
            .collect();
        p["syscalls"][0]["names"] = json!(allowed);
        let path = c.dir.path().join(name);
        std::fs::write(&path, p.to_string()).unwrap();
        path
    };
    let no_close_range = write_profile("no-close-range.json", &["close_range"]);
    let no_execve = write_profile("no-execve.json", &["execve", "execveat"]);
    let run = |id: &str, profile: &std::path::Path| {
        c.ctr(&[
            "run",
            "--rm",
            "--runtime",
            RUNTIME,
            "--seccomp",
            "--seccomp-profile",
            profile.to_str().unwrap(),
            IMAGE,
            id,
            "/bin/echo",
            "hi",
        ])
    };
    let out = run("wren-noclr", &no_close_range);
    assert!(out.status.success(), "{}\n{}", text(&out.stderr), c.log());
    assert_eq!(text(&out.stdout), "hi\n");
    c.assert_clean("wren-noclr");

    let out = run("wren-noexec", &no_execve);
    let err = text(&out.stderr);
    assert!(
        !out.status.success(),
        "ctr run succeeded: {}",
        text(&out.stdout)
    );
    assert!(
        err.contains("start wren-noexec") && err.contains("exec /bin/echo"),
        "{err}"
    );
    let _ = c.ctr(&["task", "rm", "-f", "wren-noexec"]);
    let _ = c.ctr(&["container", "rm", "wren-noexec"]);
    c.assert_clean("wren-noexec");
}

#[test]
fn each_container_gets_its_own_session_keyring_unless_no_new_keyring() {
    let test = "each_container_gets_its_own_session_keyring_unless_no_new_keyring";
    if !require_root(test) {
        return;
    }
    let mut b = Bundle::busybox(&["sleep", "1000"]);
    // /proc/keys lists the keyrings the process possesses.
    b.config["linux"]["maskedPaths"]
        .as_array_mut()
        .unwrap()
        .retain(|p| p != "/proc/keys");
    b.save();
    let oci = Oci::new("keyring");
    let id = oci.id("c");
    start_detached(&oci, &b, &id);
    // The init and the exec both possess the container's keyring.
    let inside = oci.ok(&["exec", &id, "cat", "/proc/keys"]);
    assert!(
        inside.contains(&format!(" keyring   _ses.{id}:")),
        "{inside}"
    );
    oci.ok(&["delete", "--force", &id]);

    let id = oci.id("nonew");
    oci.ok(&[
        "run",
        "--detach",
        "--no-new-keyring",
        "--bundle",
        b.path_str(),
        &id,
    ]);
    let inside = oci.ok(&["exec", &id, "cat", "/proc/keys"]);
    assert!(
        !inside.contains(&format!("_ses.{id}")),
        "--no-new-keyring keeps the caller's: {inside}"
    );
    oci.ok(&["delete", "--force", &id]);
    assert_gone(&oci, &id);

    if let Some(runc) = Runc::find(test) {
        let rid = runc.id("keyring");
        assert!(runc
            .run(&["run", "--detach", "--bundle", b.path_str(), &rid])
            .status
            .success());
        let out = text(&runc.run(&["exec", &rid, "cat", "/proc/keys"]).stdout);
        assert!(out.contains(&format!("_ses.{rid}")), "runc: {out}");
    }
}

/// `lo`'s state as the container sees it: "up" or "down".
const LO_STATE: &str = "ip -o link show lo | grep -q '<[^>]*UP' && echo up || echo down";

/// A private network namespace gets `lo` up before the process runs (runc's
/// "loopback" network), so the container's own 127.0.0.1 answers; a joined
/// one is left as it is.
#[test]
fn a_private_network_namespace_has_lo_up_and_a_joined_one_is_left_alone() {
    let test = "a_private_network_namespace_has_lo_up_and_a_joined_one_is_left_alone";
    if !require_root(test) {
        return;
    }
    let b = Bundle::busybox(&["sh", "-c", LO_STATE]);
    let oci = Oci::new("lo");
    let (code, out, err) = oci.run_bundle(&b, &oci.id("own"), &[]);
    assert_eq!((code, out.as_str()), (0, "up\n"), "{err}");

    // A namespace the test holds with `lo` down, joined by path.
    let mut holder = wren_tests::spawn_registered(
        std::process::Command::new("unshare").args(["--net", "sleep", "1000"]),
    );
    let ns = format!("/proc/{}/ns/net", holder.id());
    assert!(wren_tests::wait_for(5, || std::fs::read_link(&ns)
        .ok()
        .zip(std::fs::read_link("/proc/self/ns/net").ok())
        .is_some_and(|(a, b)| a != b)));
    let mut joined = Bundle::busybox(&["sh", "-c", LO_STATE]);
    for n in joined.config["linux"]["namespaces"].as_array_mut().unwrap() {
        if n["type"] == "network" {
            n["path"] = json!(ns);
        }
    }
    joined.save();
    let (code, out, err) = oci.run_bundle(&joined, &oci.id("joined"), &[]);
    let runc_out = Runc::find(test).map(|runc| {
        let a = text(
            &runc
                .run(&["run", "--bundle", b.path_str(), &runc.id("own")])
                .stdout,
        );
        let j = text(
            &runc
                .run(&["run", "--bundle", joined.path_str(), &runc.id("joined")])
                .stdout,
        );
        (a, j)
    });
    let _ = holder.kill();
    let _ = holder.wait();
    wren_tests::unregister(holder.id());
    assert_eq!((code, out.as_str()), (0, "down\n"), "{err}");
    if let Some((a, j)) = runc_out {
        assert_eq!((a.as_str(), j.as_str()), ("up\n", "down\n"), "runc");
    }
}
