//! Health checks through wrend end to end: a check run as an exec through
//! the shim on wrend's timers, the status in `inspect`, `list` and
//! `events`, each `--health-on-failure` action, timeouts, a command that
//! does not exist, refused flags, and no resident thread or process
//! between checks.
//!
//! Needs root and busybox-static; says so and skips otherwise.

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use serde_json::Value;
use wren_tests::wrend::{name, Wrend};
use wren_tests::{require_root, wait_for, Bundle};

fn health(w: &Wrend, n: &str) -> Value {
    w.inspect(n)["health"].clone()
}

fn wait_health(w: &Wrend, n: &str, status: &str, secs: u64) {
    assert!(
        wait_for(secs, || health(w, n)["status"] == status),
        "{n} never became {status}: {}\n{}",
        health(w, n),
        w.log()
    );
}

/// A container whose check passes while /tmp/ok-NAME exists (made at start).
fn run_checked(w: &Wrend, r: &str, n: &str, extra: &[&str]) {
    // Per container: the tests' containers share one rootfs.
    let check = format!("test -e /tmp/ok-{n} && echo fine");
    let init = format!("touch /tmp/ok-{n}; exec sleep 1000");
    let mut args = vec![
        "run",
        "-d",
        "--rootfs",
        r,
        "--health-cmd",
        &check,
        "--health-interval",
        "200ms",
        "--health-retries",
        "2",
    ];
    args.extend_from_slice(extra);
    args.extend_from_slice(&[n, "--", "sh", "-c", &init]);
    w.ok(&args);
}

fn break_check(w: &Wrend, n: &str) {
    w.ok(&["exec", n, "--", "rm", &format!("/tmp/ok-{n}")]);
}

#[test]
fn health_flips_to_unhealthy_and_kill_acts() {
    if !require_root("health_flips_to_unhealthy_and_kill_acts") {
        return;
    }
    let w = Wrend::start(&[]);
    let b = Bundle::busybox(&["true"]);
    let r = b.rootfs();
    let r = r.to_str().unwrap();
    let n = name("hk");
    let mut events = w
        .cmd()
        .args(["events"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    run_checked(&w, r, &n, &["--health-on-failure", "kill"]);
    assert_eq!(health(&w, &n)["status"], "starting");
    wait_health(&w, &n, "healthy", 10);
    let h = health(&w, &n);
    assert_eq!(h["log"][0]["exit_code"], 0);
    assert_eq!(h["log"][0]["output"], "fine\n");
    assert!(w.ok(&["list"]).contains("running (healthy)"));

    // Between checks: wrend keeps one thread, the container only its init.
    let threads = std::fs::read_dir(format!("/proc/{}/task", w.pid()))
        .unwrap()
        .count();
    assert_eq!(threads, 1);

    break_check(&w, &n);
    w.wait_status(&n, "stopped", 10);
    let i = w.inspect(&n);
    assert_eq!(i["exit_status"], 137, "{i}");
    assert_eq!(i["health"]["status"], "unhealthy");
    assert_eq!(i["health"]["failing_streak"], 2);
    let _ = events.kill();
    let mut lines = Vec::new();
    for l in BufReader::new(events.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok)
    {
        lines.push(l);
    }
    let _ = events.wait();
    let all = lines.join("\n");
    assert!(
        all.contains("health_status") && all.contains("healthy"),
        "{all}"
    );
    assert!(all.contains("unhealthy"), "{all}");
    assert!(
        all.contains("health_action") && all.contains("kill"),
        "{all}"
    );
    w.ok(&["rm", "-f", &n]);
    w.assert_clean(&n);
}

#[test]
fn restart_stop_and_none_actions() {
    if !require_root("restart_stop_and_none_actions") {
        return;
    }
    let w = Wrend::start(&[]);
    let b = Bundle::busybox(&["true"]);
    let r = b.rootfs();
    let r = r.to_str().unwrap();

    // restart: started again (no restart policy), healthy again.
    let rs = name("hr");
    run_checked(&w, r, &rs, &["--health-on-failure", "restart"]);
    wait_health(&w, &rs, "healthy", 10);
    break_check(&w, &rs);
    assert!(
        wait_for(15, || w.inspect(&rs)["restart_count"].as_u64() >= Some(1)),
        "not restarted: {}",
        w.log()
    );
    w.wait_status(&rs, "running", 10);
    wait_health(&w, &rs, "healthy", 10);

    // stop: stopped as by `wren stop`, not restarted even with always.
    let st = name("hs");
    run_checked(
        &w,
        r,
        &st,
        &["--health-on-failure", "stop", "--restart", "always"],
    );
    wait_health(&w, &st, "healthy", 10);
    break_check(&w, &st);
    w.wait_status(&st, "stopped", 20);
    let i = w.inspect(&st);
    assert_eq!(i["stopped_by_user"], true, "{i}");
    std::thread::sleep(std::time::Duration::from_millis(600));
    assert_eq!(w.status(&st), "stopped");

    // none: unhealthy and left running; five results kept.
    let no = name("hn");
    run_checked(&w, r, &no, &[]);
    wait_health(&w, &no, "healthy", 10);
    break_check(&w, &no);
    wait_health(&w, &no, "unhealthy", 10);
    assert!(
        wait_for(10, || health(&w, &no)["failing_streak"].as_u64() >= Some(6)),
        "{}\n{}",
        health(&w, &no),
        w.log()
    );
    assert_eq!(w.status(&no), "running");
    assert_eq!(health(&w, &no)["log"].as_array().unwrap().len(), 5);
    for n in [&rs, &st, &no] {
        w.ok(&["rm", "-f", n]);
        w.assert_clean(n);
    }
}

#[test]
fn timeouts_missing_commands_and_bad_flags() {
    if !require_root("timeouts_missing_commands_and_bad_flags") {
        return;
    }
    let w = Wrend::start(&[]);
    let b = Bundle::busybox(&["true"]);
    let r = b.rootfs();
    let r = r.to_str().unwrap();

    // A check that overruns its timeout is killed and fails.
    let to = name("ht");
    w.ok(&[
        "run",
        "-d",
        "--rootfs",
        r,
        "--health-cmd",
        "sleep 30",
        "--health-interval",
        "100ms",
        "--health-timeout",
        "300ms",
        "--health-retries",
        "1",
        &to,
        "--",
        "sleep",
        "1000",
    ]);
    wait_health(&w, &to, "unhealthy", 10);
    let out = health(&w, &to)["log"][0]["output"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(out.contains("timed out"), "{out}");
    // The killed check's process is gone: only the init is left.
    assert!(wait_for(5, || {
        w.ok(&["ps", &to])
            .lines()
            .filter(|l| l.contains("sleep 30"))
            .count()
            == 0
    }));

    // A command that does not exist: unhealthy, the output says why.
    let mc = name("hm");
    w.ok(&[
        "run",
        "-d",
        "--rootfs",
        r,
        "--health-cmd",
        "/no/such/check",
        "--health-interval",
        "100ms",
        "--health-retries",
        "1",
        &mc,
        "--",
        "sleep",
        "1000",
    ]);
    wait_health(&w, &mc, "unhealthy", 10);
    let h = health(&w, &mc);
    assert_eq!(h["log"][0]["exit_code"], 127, "{h}");
    assert!(
        h["log"][0]["output"]
            .as_str()
            .unwrap()
            .contains("/no/such/check"),
        "{h}"
    );

    // Refused before anything is made.
    for (args, want) in [
        (
            &["--health-retries", "2"][..],
            "--health-retries needs a health check",
        ),
        (&["--health-cmd", ""], "--health-cmd: the command is empty"),
        (
            &["--health-cmd", "true", "--health-interval", "soon"],
            "--health-interval \"soon\"",
        ),
        (
            &["--health-cmd", "true", "--health-on-failure", "explode"],
            "explode",
        ),
    ] {
        let n = name("bad");
        let mut a = vec!["run", "-d", "--rootfs", r];
        a.extend_from_slice(args);
        a.extend_from_slice(&[&n, "--", "true"]);
        let e = w.fails(&a);
        assert!(e.contains(want), "{args:?}: {e}");
        w.assert_clean(&n);
    }
    for n in [&to, &mc] {
        w.ok(&["rm", "-f", n]);
        w.assert_clean(n);
    }
}
