//! Kubernetes pods through containerd's CRI plugin with wren as the
//! runtime handler, driven by the kubelet's calls (`wren_tests::cri`):
//! one shim per pod, container exit codes and reasons, ExecSync, stop with
//! a grace period, and teardown that leaves no shim, cgroup or mount.
//!
//! Root only; each test starts its own containerd (CRI on, its own root,
//! state and sockets) and removes what it made.

use wren_tests::cri::{cri_tests_can_run, Cri};

/// Mount points under `dir` in this namespace.
fn mounts_under(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
        .filter(|p| std::path::Path::new(p).starts_with(dir))
        .collect()
}

#[test]
fn a_pod_runs_its_containers_in_one_shim_and_leaves_nothing() {
    let test = "a_pod_runs_its_containers_in_one_shim_and_leaves_nothing";
    if !cri_tests_can_run(test) {
        return;
    }
    let cri = Cri::start("pod");
    let podcfg = cri.pod_config("web");
    let pod = cri
        .run_pod(&podcfg)
        .unwrap_or_else(|e| panic!("RunPodSandbox: {e}\n{}", cri.containerd.log()));

    let app = cri
        .create_container(
            &pod,
            &podcfg,
            cri.container_config("app", &["sleep", "1000"]),
        )
        .unwrap_or_else(|e| panic!("CreateContainer: {e}\n{}", cri.containerd.log()));
    cri.start_container(&app).expect("StartContainer app");
    let once = cri
        .create_container(
            &pod,
            &podcfg,
            cri.container_config("once", &["sh", "-c", "echo out; echo err >&2; exit 3"]),
        )
        .expect("CreateContainer once");
    cri.start_container(&once).expect("StartContainer once");

    // The pause container and both app containers: one shim.
    assert_eq!(cri.shims().len(), 1, "shims: {:?}", cri.shims());

    let st = cri.wait_exited(&once, 10);
    assert_eq!((st.exit_code, st.reason.as_str()), (3, "Error"), "{st:?}");
    let log = std::fs::read_to_string(&st.log_path).unwrap_or_default();
    assert!(
        log.contains(" stdout F out") && log.contains(" stderr F err"),
        "CRI log: {log:?}"
    );

    let (code, out, err) = cri
        .exec_sync(&app, &["sh", "-c", "echo hi; exit 4"], 10)
        .expect("ExecSync");
    assert_eq!((code, out.as_str(), err.as_str()), (4, "hi\n", ""));

    // A grace period: sleep ignores nothing, so TERM stops it at once.
    cri.stop_container(&app, 5).expect("StopContainer");
    let st = cri.wait_exited(&app, 10);
    assert_eq!(st.exit_code, 143, "{st:?}");

    for c in [&app, &once] {
        cri.remove_container(c).expect("RemoveContainer");
    }
    cri.stop_pod(&pod).expect("StopPodSandbox");
    cri.remove_pod(&pod).expect("RemovePodSandbox");
    assert!(
        wren_tests::wait_for(10, || cri.shims().is_empty()),
        "shim left: {:?}",
        cri.shims()
    );
    for d in cri.cgroup_dirs() {
        let children: Vec<_> = std::fs::read_dir(&d)
            .unwrap()
            .flatten()
            .filter(|e| e.path().is_dir())
            .map(|e| e.path())
            .collect();
        assert!(
            children.iter().all(|c| !c.join(&pod).exists()),
            "pod cgroup left: {children:?}"
        );
    }
    let state = cri.containerd.dir.path().join("state");
    let left: Vec<_> = mounts_under(&state)
        .into_iter()
        .filter(|m| m.contains(&pod) || m.contains(&app))
        .collect();
    assert!(left.is_empty(), "mounts left: {left:?}");
}
