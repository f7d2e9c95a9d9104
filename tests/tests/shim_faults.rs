//! Faults and scale through the shim under a private containerd: the shim
//! SIGKILLed (containerd cleans up through `delete`), containerd killed and
//! restarted with a container running (still managed, its exit seen), and
//! 20 containers at once (each shim idle at ≤ 4 threads).
//!
//! Needs root, containerd, ctr, busybox-static and a built shim; without them
//! each test says so and skips.

use wren_tests::containerd::{
    for_each_version, ok, run_detached, shim_pids_in, shim_tests_can_run, task, task_pid,
    task_status, Containerd,
};
use wren_tests::{alive, wait_for};

#[test]
fn a_killed_shim_is_cleaned_up_by_containerd() {
    if !shim_tests_can_run("a_killed_shim_is_cleaned_up_by_containerd") {
        return;
    }
    let ns = format!("wrenshimkill{}", std::process::id());
    for_each_version(
        "a_killed_shim_is_cleaned_up_by_containerd",
        &ns,
        true,
        |c| {
            let id = "wren-shimkill";
            run_detached(c, id, &[], &["/bin/sleep", "60"]);
            let pid = c.host_pid(task_pid(c, id));
            assert!(pid > 0 && alive(pid));
            let shims = shim_pids_in(&c.namespace, id);
            assert_eq!(shims.len(), 1, "{shims:?}");
            // SAFETY: kill(2) with plain integers.
            unsafe { libc::kill(shims[0], libc::SIGKILL) };
            // containerd sees the connection drop, runs `shim delete`, which kills
            // the container and unmounts its rootfs, and drops the task.
            assert!(
                wait_for(20, || task(c, id).is_none()
                    || task_status(c, id) == "STOPPED"),
                "containerd did not clean up: {:?}\n{}",
                task(c, id),
                c.log()
            );
            assert!(
                wait_for(10, || !alive(pid)),
                "the container outlived its shim"
            );
            let _ = c.ctr(&["task", "rm", id]);
            ok(&c.ctr(&["container", "rm", id]), "container rm", c);
            c.assert_clean(id);
        },
    );
}

#[test]
fn containerd_restart_keeps_the_container_managed() {
    if !shim_tests_can_run("containerd_restart_keeps_the_container_managed") {
        return;
    }
    let ns = format!("wrenrestart{}", std::process::id());
    for_each_version(
        "containerd_restart_keeps_the_container_managed",
        &ns,
        true,
        |c| {
            let id = "wren-restart";
            run_detached(c, id, &[], &["/bin/sleep", "60"]);
            let pid = task_pid(c, id);
            let shims = shim_pids_in(&c.namespace, id);
            c.restart();
            // containerd reconnects (Connect + Pids) and still sees it running.
            assert!(
                wait_for(20, || task_status(c, id) == "RUNNING"),
                "task after restart: {:?}\n{}",
                task(c, id),
                c.log()
            );
            assert_eq!(task_pid(c, id), pid);
            assert_eq!(
                shim_pids_in(&c.namespace, id),
                shims,
                "the shim was replaced"
            );
            let out = c.ctr(&[
                "task",
                "exec",
                "--exec-id",
                "after",
                id,
                "/bin/echo",
                "still-here",
            ]);
            ok(&out, "exec after restart", c);
            assert_eq!(String::from_utf8_lossy(&out.stdout), "still-here\n");
            // The exit after the restart reaches the new containerd (the shim's
            // publisher reconnected).
            ok(&c.ctr(&["task", "kill", "-s", "KILL", id]), "kill", c);
            assert!(
                wait_for(20, || task_status(c, id) == "STOPPED"),
                "exit not seen: {:?}",
                task(c, id)
            );
            ok(&c.ctr(&["task", "rm", id]), "task rm", c);
            ok(&c.ctr(&["container", "rm", id]), "container rm", c);
            c.assert_clean(id);
        },
    );
}

#[test]
fn twenty_containers_at_once() {
    if !shim_tests_can_run("twenty_containers_at_once") {
        return;
    }
    let ns = format!("wrentwenty{}", std::process::id());
    for_each_version("twenty_containers_at_once", &ns, true, |c| {
        let ids: Vec<String> = (0..20).map(|i| format!("wren-many-{i:02}")).collect();
        std::thread::scope(|s| {
            for id in &ids {
                let c: &Containerd = c;
                s.spawn(move || {
                    run_detached(c, id, &[], &["/bin/sleep", "120"]);
                });
            }
        });
        let sockets: Vec<_> = ids.iter().map(|id| c.shim_socket(id)).collect();
        for s in &sockets {
            use std::os::unix::fs::{FileTypeExt, PermissionsExt};
            let m = std::fs::symlink_metadata(s).expect("shim socket");
            assert!(m.file_type().is_socket(), "{}", s.display());
            assert_eq!(m.permissions().mode() & 0o777, 0o600, "{}", s.display());
        }
        for id in &ids {
            assert_eq!(task_status(c, id), "RUNNING", "{id}");
            let shims = shim_pids_in(&c.namespace, id);
            assert_eq!(shims.len(), 1, "{id}: {shims:?}");
            let status = std::fs::read_to_string(format!("/proc/{}/status", shims[0])).unwrap();
            let threads: u32 = status
                .lines()
                .find_map(|l| l.strip_prefix("Threads:"))
                .and_then(|t| t.trim().parse().ok())
                .unwrap_or(0);
            assert!((1..=4).contains(&threads), "{id}: {threads} threads");
        }
        std::thread::scope(|s| {
            for id in &ids {
                let c: &Containerd = c;
                s.spawn(move || {
                    ok(&c.ctr(&["task", "kill", "-s", "KILL", id]), "kill", c);
                    assert!(wait_for(20, || task_status(c, id) == "STOPPED"), "{id}");
                    ok(&c.ctr(&["task", "rm", id]), "task rm", c);
                    ok(&c.ctr(&["container", "rm", id]), "container rm", c);
                });
            }
        });
        for id in &ids {
            c.assert_clean(id);
        }
        for s in &sockets {
            assert!(!s.exists(), "socket left behind: {}", s.display());
        }
    });
}

#[test]
fn init_exit_kills_the_rest_when_the_pid_namespace_is_shared() {
    if !shim_tests_can_run("init_exit_kills_the_rest_when_the_pid_namespace_is_shared") {
        return;
    }
    let ns = format!("wrenpidhost{}", std::process::id());
    for_each_version(
        "init_exit_kills_the_rest_when_the_pid_namespace_is_shared",
        &ns,
        true,
        |c| {
            let id = "wren-pidhost";
            // In the host's pid namespace the kernel does not kill the init's
            // children when it exits: the shim must (runc's rule).
            // This test's own pid namespace is the host's (PID 1 here is not
            // readable).
            let host_pid_ns = format!("pid:{}", c.own_pid_ns());
            run_detached(
                c,
                id,
                &["--with-ns", &host_pid_ns],
                &[
                    "/bin/sh",
                    "-c",
                    "sleep 300 & echo $! > /tmp/child; exec sleep 301",
                ],
            );
            let init = c.host_pid(task_pid(c, id));
            assert!(init > 0);
            let rootfs = c
                .ns_path(&c.inner)
                .join("state/io.containerd.runtime.v2.task")
                .join(&c.namespace)
                .join(id)
                .join("rootfs");
            // Written once `sleep 300` has started: wait for the whole line.
            assert!(wait_for(10, || std::fs::read_to_string(
                rootfs.join("tmp/child")
            )
            .is_ok_and(|s| s.ends_with('\n'))));
            let child: i64 = c.host_pid(
                std::fs::read_to_string(rootfs.join("tmp/child"))
                    .unwrap()
                    .trim()
                    .parse()
                    .unwrap(),
            );
            assert!(alive(child), "the background child is running");
            // SAFETY: kill(2) with plain integers: only the init.
            unsafe { libc::kill(init as i32, libc::SIGKILL) };
            assert!(wait_for(15, || task_status(c, id) == "STOPPED"));
            assert!(
                wait_for(10, || !alive(child)),
                "the init's child outlived it"
            );
            ok(&c.ctr(&["task", "rm", id]), "task rm", c);
            ok(&c.ctr(&["container", "rm", id]), "container rm", c);
            c.assert_clean(id);
        },
    );
}

#[test]
fn grouped_containers_share_one_shim_until_the_last_is_deleted() {
    if !shim_tests_can_run("grouped_containers_share_one_shim_until_the_last_is_deleted") {
        return;
    }
    let ns = format!("wrengroup{}", std::process::id());
    for_each_version(
        "grouped_containers_share_one_shim_until_the_last_is_deleted",
        &ns,
        true,
        |c| {
            let ids = ["wren-group-a", "wren-group-b"];
            for id in ids {
                run_detached(
                    c,
                    id,
                    &["--label", "io.containerd.runc.v2.group=pod1"],
                    &["/bin/sleep", "60"],
                );
            }
            let a = shim_pids_in(&c.namespace, ids[0]);
            assert_eq!(a.len(), 1, "{a:?}");
            // The second container's `start` found the live shim: no second daemon.
            assert!(shim_pids_in(&c.namespace, ids[1]).is_empty());
            assert_eq!(c.shim_socket(ids[0]), c.shim_socket(ids[1]));
            for id in ids {
                assert_eq!(task_status(c, id), "RUNNING", "{id}");
            }
            let out = c.ctr(&["task", "exec", "--exec-id", "x", ids[1], "/bin/echo", "b"]);
            ok(&out, "exec in the second container", c);
            // Deleting the first leaves the shim serving the second.
            ok(&c.ctr(&["task", "kill", "-s", "KILL", ids[0]]), "kill a", c);
            assert!(wait_for(15, || task_status(c, ids[0]) == "STOPPED"));
            ok(&c.ctr(&["task", "rm", ids[0]]), "task rm a", c);
            ok(&c.ctr(&["container", "rm", ids[0]]), "container rm a", c);
            assert_eq!(
                shim_pids_in(&c.namespace, ids[0]),
                a,
                "the shared shim exited early"
            );
            assert_eq!(task_status(c, ids[1]), "RUNNING");
            ok(&c.ctr(&["task", "kill", "-s", "KILL", ids[1]]), "kill b", c);
            assert!(wait_for(15, || task_status(c, ids[1]) == "STOPPED"));
            ok(&c.ctr(&["task", "rm", ids[1]]), "task rm b", c);
            ok(&c.ctr(&["container", "rm", ids[1]]), "container rm b", c);
            for id in ids {
                c.assert_clean(id);
            }
        },
    );
}
