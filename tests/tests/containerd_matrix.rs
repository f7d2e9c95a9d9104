//! The shim under each containerd of the matrix: the host's 1.6, trixie's
//! 1.7 and sid's 2.1 (Debian trees from `scripts/debian-tree.sh`, each
//! containerd in its own mount and pid namespace). `ctr` runs, execs,
//! kills and deletes through wren; the CRI pod tests run on each too
//! (`cri_pods.rs` for 1.6, here for the trees).
//!
//! Root only; every containerd is private and leaves nothing.

use wren_tests::containerd::{shim_tests_can_run, Containerd, IMAGE, RUNTIME};
use wren_tests::{text, tree};

fn ctr_paths_work(suite: &str) {
    let test = format!("ctr_run_exec_kill_delete_{suite}");
    if !shim_tests_can_run(&test) {
        return;
    }
    let Some(t) = tree::get(&test, suite) else {
        return;
    };
    let ns = format!("wrenmatrix{suite}{}", std::process::id());
    let c = Containerd::start_in(Some(&t), &ns, true, None);
    let out = c.ctr(&[
        "run",
        "--rm",
        "--runtime",
        RUNTIME,
        IMAGE,
        "hello",
        "/bin/echo",
        "hi",
    ]);
    assert!(
        out.status.success(),
        "{suite}: {}\n{}",
        text(&out.stderr),
        c.log()
    );
    assert_eq!(text(&out.stdout), "hi\n");

    let out = c.ctr(&[
        "run",
        "-d",
        "--runtime",
        RUNTIME,
        IMAGE,
        "long",
        "/bin/sleep",
        "1000",
    ]);
    assert!(out.status.success(), "{suite}: {}", text(&out.stderr));
    let out = c.ctr(&[
        "task",
        "exec",
        "--exec-id",
        "x1",
        "long",
        "/bin/sh",
        "-c",
        "echo in; exit 3",
    ]);
    assert_eq!(out.status.code(), Some(3), "{suite}: {}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "in\n");
    let out = c.ctr(&["task", "kill", "-s", "KILL", "long"]);
    assert!(out.status.success(), "{suite}: {}", text(&out.stderr));
    assert!(wren_tests::wait_for(10, || {
        text(&c.ctr(&["task", "ls"]).stdout)
            .lines()
            .any(|l| l.starts_with("long") && l.contains("STOPPED"))
    }));
    let out = c.ctr(&["task", "rm", "long"]);
    assert!(out.status.success(), "{suite}: {}", text(&out.stderr));
    let out = c.ctr(&["container", "rm", "long"]);
    assert!(out.status.success(), "{suite}: {}", text(&out.stderr));
    c.assert_clean("long");
    c.assert_clean("hello");
}

#[test]
fn ctr_run_exec_kill_delete_under_containerd_1_7() {
    ctr_paths_work("trixie");
}

#[test]
fn ctr_run_exec_kill_delete_under_containerd_2_1() {
    ctr_paths_work("sid");
}
