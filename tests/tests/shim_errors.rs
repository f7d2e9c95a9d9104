//! The ttrpc code containerd sees for each class of Task error, through a
//! private containerd 1.6 and `ctr` (which prints containerd's errdefs class
//! at the end of its message): an invalid spec is "invalid argument" and
//! names the field, a Kill after the init exited "not found", a duplicate
//! exec id "already exists", an exec into a stopped task "failed
//! precondition". The shim's mapping is the table in
//! shim/src/task/error.rs.
//!
//! Needs root, `containerd`, `ctr`, busybox-static and a built
//! `containerd-shim-wren-v2`; without them each test says so and skips.

use std::process::Output;

use wren_tests::containerd::{ok, run_detached, shim_tests_can_run, task_status, Containerd};
use wren_tests::{text, wait_for};

/// The failed command's stderr, asserting that it failed.
fn refused(out: &Output, what: &str, c: &Containerd) -> String {
    let err = text(&out.stderr);
    assert!(
        !out.status.success(),
        "{what} succeeded: {}\n{}",
        text(&out.stdout),
        c.log()
    );
    err
}

/// Runs `id` as `/bin/true` detached and waits until it has stopped.
fn stopped_task(c: &Containerd, id: &str) {
    run_detached(c, id, &[], &["/bin/true"]);
    assert!(
        wait_for(10, || task_status(c, id) == "STOPPED"),
        "{id} did not stop: {}",
        task_status(c, id)
    );
}

fn remove(c: &Containerd, id: &str) {
    let _ = c.ctr(&["task", "kill", "-s", "KILL", id]);
    let _ = wait_for(10, || task_status(c, id) != "RUNNING");
    let _ = c.ctr(&["task", "rm", "-f", id]);
    ok(&c.ctr(&["container", "rm", id]), "ctr container rm", c);
    c.assert_clean(id);
}

#[test]
fn an_invalid_spec_is_invalid_argument_and_names_the_field() {
    if !shim_tests_can_run("an_invalid_spec_is_invalid_argument_and_names_the_field") {
        return;
    }
    let ns = format!("wrenerrspec{}", std::process::id());
    wren_tests::containerd::for_each_version(
        "an_invalid_spec_is_invalid_argument_and_names_the_field",
        &ns,
        true,
        |c| {
            let profile = c.dir.path().join("bad-seccomp.json");
            std::fs::write(
            &profile,
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["getpid"],"action":"SCMP_ACT_BOGUS"}]}"#,
        )
        .expect("write profile");
            let id = "wren-badspec";
            let out = c.ctr(&[
                "run",
                "--rm",
                "--runtime",
                wren_tests::containerd::RUNTIME,
                "--seccomp",
                "--seccomp-profile",
                c.inner_path(&profile).to_str().expect("utf-8"),
                wren_tests::containerd::IMAGE,
                id,
                "/bin/true",
            ]);
            let err = refused(&out, "ctr run with a bad seccomp action", c);
            // ctr 1.x prints the errdefs class; 2.x only the message.
            let v2 = c
                .tree
                .as_deref()
                .is_some_and(|t| wren_tests::tree::containerd_major(t) >= 2);
            assert!(v2 || err.contains("invalid argument"), "{err}");
            assert!(err.contains("linux.seccomp"), "{err}");
            // The field is said once.
            assert_eq!(err.matches("linux.seccomp").count(), 1, "{err}");
            // Each context once: the shim's "create <id>: " and no second copy.
            assert_eq!(err.matches(id).count(), 1, "{err}");
            let _ = c.ctr(&["container", "rm", id]);
            c.assert_clean(id);
        },
    );
}

#[test]
fn kill_after_the_init_exited_is_not_found() {
    if !shim_tests_can_run("kill_after_the_init_exited_is_not_found") {
        return;
    }
    let ns = format!("wrenerrkill{}", std::process::id());
    wren_tests::containerd::for_each_version(
        "kill_after_the_init_exited_is_not_found",
        &ns,
        true,
        |c| {
            let id = "wren-killstopped";
            stopped_task(c, id);
            let out = c.ctr(&["task", "kill", "-s", "TERM", id]);
            let err = refused(&out, "ctr task kill of a stopped task", c);
            assert!(err.contains("not found"), "{err}");
            assert!(err.contains("process already finished"), "{err}");
            remove(c, id);
        },
    );
}

#[test]
fn a_duplicate_exec_id_already_exists() {
    if !shim_tests_can_run("a_duplicate_exec_id_already_exists") {
        return;
    }
    let ns = format!("wrenerrdup{}", std::process::id());
    wren_tests::containerd::for_each_version(
        "a_duplicate_exec_id_already_exists",
        &ns,
        true,
        |c| {
            let id = "wren-dupexec";
            run_detached(c, id, &[], &["/bin/sleep", "60"]);
            let exec = |c: &Containerd| {
                c.ctr(&[
                    "task",
                    "exec",
                    "--detach",
                    "--exec-id",
                    "twice",
                    id,
                    "/bin/sleep",
                    "60",
                ])
            };
            ok(&exec(c), "the first ctr task exec", c);
            let err = refused(&exec(c), "the second ctr task exec", c);
            assert!(err.contains("already exists"), "{err}");
            remove(c, id);
        },
    );
}

#[test]
fn exec_into_a_stopped_task_is_failed_precondition() {
    if !shim_tests_can_run("exec_into_a_stopped_task_is_failed_precondition") {
        return;
    }
    let ns = format!("wrenerrstate{}", std::process::id());
    wren_tests::containerd::for_each_version(
        "exec_into_a_stopped_task_is_failed_precondition",
        &ns,
        true,
        |c| {
            let id = "wren-execstopped";
            stopped_task(c, id);
            let out = c.ctr(&["task", "exec", "--exec-id", "late", id, "/bin/true"]);
            let err = refused(&out, "ctr task exec into a stopped task", c);
            // ctr 1.x prints the errdefs class; 2.x only the message.
            let v2 = c
                .tree
                .as_deref()
                .is_some_and(|t| wren_tests::tree::containerd_major(t) >= 2);
            assert!(
                err.contains("failed precondition")
                    || (v2 && err.contains("cannot exec in a stopped container")),
                "{err}"
            );
            remove(c, id);
        },
    );
}
