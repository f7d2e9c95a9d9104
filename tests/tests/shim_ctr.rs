//! `ctr run` through the wren shim under a private containerd 1.6, with a
//! busybox image built here from Debian's busybox-static and imported as an
//! OCI layout tar: exit codes, stdout, exec, pause, metrics, kill, and
//! nothing left behind (shim process, rootfs mount, cgroup).
//!
//! Needs root, `containerd`, `ctr`, busybox-static, `tar`, `gzip` and a built
//! `containerd-shim-wren-v2`; without them each test says so and skips.

use wren_tests::containerd::{for_each_version, ok, shim_tests_can_run, IMAGE, RUNTIME};
use wren_tests::wait_for;

#[test]
fn ctr_run_rm_reports_exit_codes_and_leaves_nothing() {
    if !shim_tests_can_run("ctr_run_rm_reports_exit_codes_and_leaves_nothing") {
        return;
    }
    let ns = format!("wrenctr{}", std::process::id());
    for_each_version(
        "ctr_run_rm_reports_exit_codes_and_leaves_nothing",
        &ns,
        true,
        |c| {
            let id = "wren-true";
            let out = c.run_rm(id, &["/bin/true"]);
            assert!(
                out.status.success(),
                "ctr run /bin/true: {}\n{}",
                String::from_utf8_lossy(&out.stderr),
                c.log()
            );
            c.assert_clean(id);

            let id = "wren-exit3";
            let out = c.run_rm(id, &["/bin/sh", "-c", "exit 3"]);
            assert_eq!(
                out.status.code(),
                Some(3),
                "ctr run exit 3: {}\n{}",
                String::from_utf8_lossy(&out.stderr),
                c.log()
            );
            c.assert_clean(id);
        },
    );
}

#[test]
fn ctr_run_rm_delivers_stdout() {
    if !shim_tests_can_run("ctr_run_rm_delivers_stdout") {
        return;
    }
    let ns = format!("wrenout{}", std::process::id());
    for_each_version("ctr_run_rm_delivers_stdout", &ns, true, |c| {
        let id = "wren-echo";
        let out = c.run_rm(id, &["/bin/echo", "hello"]);
        assert!(
            out.status.success(),
            "ctr run echo: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            c.log()
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout), "hello\n");
        c.assert_clean(id);
    });
}

#[test]
fn detached_run_exec_pause_metrics_kill_delete() {
    if !shim_tests_can_run("detached_run_exec_pause_metrics_kill_delete") {
        return;
    }
    let ns = format!("wrenexec{}", std::process::id());
    for_each_version(
        "detached_run_exec_pause_metrics_kill_delete",
        &ns,
        true,
        |c| {
            let id = "wren-detached";
            let out = c.ctr(&[
                "run",
                "-d",
                "--runtime",
                RUNTIME,
                IMAGE,
                id,
                "/bin/sleep",
                "60",
            ]);
            ok(&out, "ctr run -d", c);

            let out = c.ctr(&[
                "task",
                "exec",
                "--exec-id",
                "e1",
                id,
                "/bin/echo",
                "from-exec",
            ]);
            ok(&out, "ctr task exec", c);
            assert_eq!(String::from_utf8_lossy(&out.stdout), "from-exec\n");

            let out = c.ctr(&["task", "ps", id]);
            ok(&out, "ctr task ps", c);

            ok(&c.ctr(&["task", "pause", id]), "ctr task pause", c);
            let out = c.ctr(&["task", "ls"]);
            assert!(
                String::from_utf8_lossy(&out.stdout).contains("PAUSED"),
                "{}",
                String::from_utf8_lossy(&out.stdout)
            );
            ok(&c.ctr(&["task", "resume", id]), "ctr task resume", c);

            let out = c.ctr(&["task", "metrics", id]);
            ok(&out, "ctr task metrics", c);

            ok(
                &c.ctr(&["task", "kill", "-s", "KILL", id]),
                "ctr task kill",
                c,
            );
            assert!(
                wait_for(10, || String::from_utf8_lossy(
                    &c.ctr(&["task", "ls"]).stdout
                )
                .contains("STOPPED")),
                "the task did not stop"
            );
            ok(&c.ctr(&["task", "rm", id]), "ctr task rm", c);
            ok(&c.ctr(&["container", "rm", id]), "ctr container rm", c);
            c.assert_clean(id);
        },
    );
}
