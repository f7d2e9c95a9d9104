//! wrend and wren end to end: a private wrend per test (own `--root`), real
//! shims, real containers from a busybox rootfs. Each test checks what the
//! CLI reports and what is (not) left on the host.
//!
//! Needs root and busybox-static; without root each test says so and skips.

use std::io::{Read, Write};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use wren_tests::wrend::{name, shim_pids, Wrend};
use wren_tests::{require_root, wait_for, Bundle};

fn rootfs() -> Bundle {
    Bundle::busybox(&["true"])
}

#[test]
fn run_exec_logs_stop_rm_end_to_end() {
    if !require_root("run_exec_logs_stop_rm_end_to_end") {
        return;
    }
    let w = Wrend::start(&[]);
    let b = rootfs();
    let r = b.rootfs();
    let r = r.to_str().unwrap();

    // Foreground run: output on stdout, the exit status is wren's.
    let fg = name("fg");
    let out = w.wren(&[
        "run",
        "--rm",
        "--rootfs",
        r,
        &fg,
        "--",
        "sh",
        "-c",
        "echo hello; exit 3",
    ]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello\n");
    w.assert_clean(&fg);

    // The default spec of a --rootfs container carries wren's seccomp
    // profile: one filter, and what it refuses is refused (a new user
    // namespace needs no capability, so only the filter stops `unshare -U`;
    // `unshare` and `clone` with a namespace flag both get EPERM).
    let sc = name("seccomp");
    let out = w.ok(&[
        "run",
        "--rm",
        "--rootfs",
        r,
        &sc,
        "--",
        "sh",
        "-c",
        "grep -E '^Seccomp(_filters)?:' /proc/self/status; \
         unshare -U true 2>&1 && echo UNSHARED; unshare -n true 2>&1 && echo UNSHARED; echo done",
    ]);
    assert!(out.contains("Seccomp:\t2"), "{out}");
    assert!(out.contains("Seccomp_filters:\t1"), "{out}");
    assert!(!out.contains("UNSHARED"), "{out}");
    assert!(out.contains("Operation not permitted"), "{out}");
    assert!(out.ends_with("done\n"), "{out}");
    w.assert_clean(&sc);

    // From an OCI bundle: its spec (args `true`, relative root) is used.
    let fromb = name("bundle");
    w.ok(&["create", "--bundle", b.path_str(), &fromb]);
    assert_eq!(w.status(&fromb), "created");
    assert_eq!(w.inspect(&fromb)["args"], serde_json::json!(["true"]));
    w.ok(&["start", &fromb]);
    w.wait_status(&fromb, "stopped", 10);
    assert_eq!(w.inspect(&fromb)["exit_status"], 0);
    assert!(
        b.path().join("config.json").exists(),
        "the user's bundle is untouched"
    );
    assert!(
        !b.path().join("address").exists(),
        "shim files went into the user's bundle"
    );
    w.ok(&["rm", &fromb]);
    w.assert_clean(&fromb);

    // -d --rm: wrend removes it when it exits.
    let gone = name("gone");
    w.ok(&[
        "run",
        "-d",
        "--rm",
        "--rootfs",
        r,
        &gone,
        "--",
        "sh",
        "-c",
        "sleep 0.3",
    ]);
    assert!(
        wait_for(10, || w.status(&gone).is_empty()),
        "not removed: {}",
        w.status(&gone)
    );
    w.assert_clean(&gone);

    // A signal to a foreground wren goes to the container.
    let sig = name("sig");
    let mut fgc = w.cmd();
    fgc.args(["run", "--rm", "--rootfs", r, &sig, "--"])
        .args([
            "sh",
            "-c",
            "trap 'echo got-term; exit 9' TERM; echo ready; while true; do sleep 0.1; done",
        ])
        .stdout(Stdio::piped());
    let mut child = wren_tests::spawn_registered(&mut fgc);
    let mut stdout = child.stdout.take().unwrap();
    let mut seen = [0u8; 6];
    stdout.read_exact(&mut seen).unwrap();
    assert_eq!(&seen, b"ready\n");
    // SAFETY: kill(2) on our registered child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(9), "{rest}");
    wren_tests::unregister(child.id());
    assert_eq!(rest, "got-term\n");
    w.assert_clean(&sig);

    // A detached service writing lines.
    let svc = name("svc");
    let script = "i=0; while true; do echo line $i; i=$((i+1)); sleep 0.1; done";
    assert_eq!(
        w.ok(&[
            "run",
            "-d",
            "-e",
            "GREETING=hi",
            "--rootfs",
            r,
            &svc,
            "--",
            "sh",
            "-c",
            script
        ])
        .trim(),
        svc
    );
    w.wait_status(&svc, "running", 5);
    assert!(wait_for(5, || w.ok(&["logs", &svc]).lines().count() >= 3));
    let tail = w.ok(&["logs", "--tail", "2", &svc]);
    assert_eq!(tail.lines().count(), 2, "{tail}");
    assert!(tail.lines().all(|l| l.starts_with("line ")), "{tail}");

    // exec: output, env from the container spec plus -e, exit status.
    let out = w.wren(&[
        "exec",
        "-e",
        "EXTRA=1",
        &svc,
        "--",
        "sh",
        "-c",
        "echo $GREETING $EXTRA; echo err >&2; exit 4",
    ]);
    assert_eq!(out.status.code(), Some(4));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi 1\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "err\n");

    // exec -i: our stdin reaches the process, and its end is seen as EOF.
    let mut cat = w.cmd();
    cat.args(["exec", "-i", &svc, "--", "sh", "-c", "cat; echo done"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    let mut child = wren_tests::spawn_registered(&mut cat);
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"fed through stdin\n")
        .unwrap();
    let mut text = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    assert!(child.wait().unwrap().success());
    wren_tests::unregister(child.id());
    assert_eq!(text, "fed through stdin\ndone\n");

    // list / inspect / ps / stats / --json; `-a` (docker ps -a's habit)
    // lists the same.
    assert_eq!(w.ok(&["list", "-a", "-q"]), w.ok(&["list", "-q"]));
    let list: Value = serde_json::from_str(&w.ok(&["list", "--json"])).unwrap();
    let me = list
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == svc.as_str())
        .expect("listed");
    assert_eq!(me["status"], "running");
    let pid = me["pid"].as_u64().unwrap();
    // --format, as scripts written for docker inspect -f / ps --format use it.
    assert_eq!(
        w.ok(&[
            "inspect",
            "-f",
            "{{.status}} {{.pid}} {{json .restart_policy}}",
            &svc
        ]),
        format!("running {pid} \"no\"\n")
    );
    let line = format!("{svc}\trunning\n");
    assert!(
        w.ok(&["list", "--format", "{{.name}}\\t{{.status}}"])
            .contains(&line),
        "{line}"
    );
    let both: Value = serde_json::from_str(&w.ok(&["inspect", &svc, &svc])).unwrap();
    assert_eq!(both.as_array().map(Vec::len), Some(2));
    let e = w.fails(&["inspect", "-f", "{{range .x}}", &svc]);
    assert!(e.contains("unknown word \"range\""), "{e}");
    assert!(wren_tests::alive(pid as i64));
    let ps: Vec<u64> = serde_json::from_str(&w.ok(&["ps", "--json", &svc])).unwrap();
    assert!(ps.contains(&pid), "{ps:?} lacks {pid}");
    let stats: Value = serde_json::from_str(&w.ok(&["stats", "--json", &svc])).unwrap();
    assert!(stats["memory_bytes"].as_u64().unwrap() > 0, "{stats}");
    assert!(stats["pids"].as_u64().unwrap() >= 1, "{stats}");

    // update, pause, resume.
    w.ok(&["update", "--pids-limit", "50", &svc]);
    let stats: Value = serde_json::from_str(&w.ok(&["stats", "--json", &svc])).unwrap();
    assert_eq!(stats["pids_limit"], 50, "{stats}");
    w.ok(&["pause", &svc]);
    assert_eq!(w.status(&svc), "paused");
    let before = w.ok(&["logs", &svc]).lines().count();
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(
        w.ok(&["logs", &svc]).lines().count(),
        before,
        "paused but still logging"
    );
    w.ok(&["resume", &svc]);
    assert!(wait_for(5, || w.ok(&["logs", &svc]).lines().count() > before));

    // rm of a running container is refused; stop (sh ignores TERM as pid 1,
    // so the grace period ends in SIGKILL), then start again, then rm.
    let err = w.fails(&["rm", &svc]);
    assert!(err.contains("stop it first"), "{err}");
    let t = Instant::now();
    w.ok(&["stop", "-t", "1", &svc]);
    assert!(
        t.elapsed() >= Duration::from_millis(900),
        "stop did not wait"
    );
    let c = w.inspect(&svc);
    assert_eq!(c["status"], "stopped");
    assert_eq!(c["exit_status"], 137);
    assert!(!wren_tests::alive(pid as i64));
    w.ok(&["start", &svc]);
    w.wait_status(&svc, "running", 5);
    w.ok(&["stop", "-t", "1", &svc]);
    w.ok(&["rm", &svc]);
    assert!(w.fails(&["inspect", &svc]).contains("no such container"));
    w.assert_clean(&svc);
    w.assert_no_sockets();
}

#[test]
fn logs_follow_and_rotation() {
    if !require_root("logs_follow_and_rotation") {
        return;
    }
    let w = Wrend::start(&["--log-max-size", "2000", "--log-keep", "2"]);
    let b = rootfs();
    let r = b.rootfs();
    let n = name("rot");
    // ~60 lines of 50 bytes: 3000 bytes, more than one 2000-byte file.
    let script = "i=0; while [ $i -lt 60 ]; do printf '%049d\\n' $i; i=$((i+1)); done; sleep 0.5";
    let mut follow = w.cmd();
    w.ok(&[
        "create",
        "--rootfs",
        r.to_str().unwrap(),
        &n,
        "--",
        "sh",
        "-c",
        script,
    ]);
    follow
        .args(["logs", "-f", &n])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = wren_tests::spawn_registered(&mut follow);
    w.ok(&["start", &n]);
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let status = child.wait().unwrap();
    wren_tests::unregister(child.id());
    assert!(status.success());
    assert!(
        out.contains(&format!("{:049}\n", 59)),
        "follow missed the end: {out}"
    );
    let log = w.inspect(&n)["log_path"].as_str().unwrap().to_string();
    assert!(
        std::path::Path::new(&format!("{log}.1")).exists(),
        "not rotated"
    );
    assert!(
        !std::path::Path::new(&format!("{log}.2")).exists(),
        "kept too many"
    );
    assert!(std::fs::metadata(&log).unwrap().len() <= 2000);
    let tail = w.ok(&["logs", "--tail", "3", &n]);
    assert_eq!(tail, format!("{:049}\n{:049}\n{:049}\n", 57, 58, 59));
    w.ok(&["rm", &n]);
    w.assert_clean(&n);
}

#[test]
fn log_opts_rotate_one_containers_log_and_survive_a_wrend_restart() {
    if !require_root("log_opts_rotate_one_containers_log_and_survive_a_wrend_restart") {
        return;
    }
    // wrend's defaults (10 MiB, 3 files) would not rotate 3000 bytes.
    let mut w = Wrend::start(&[]);
    let b = rootfs();
    let r = b.rootfs();
    let r = r.to_str().unwrap();
    let n = name("logopt");
    let script = "i=0; while [ $i -lt 60 ]; do printf '%049d\\n' $i; i=$((i+1)); done";
    let files = |log: &str| -> Vec<u64> {
        (0..5)
            .map(|i| match i {
                0 => log.to_string(),
                i => format!("{log}.{i}"),
            })
            .map_while(|p| std::fs::metadata(p).ok().map(|m| m.len()))
            .collect()
    };
    w.ok(&[
        "run",
        "-d",
        "--log-opt",
        "max-size=1k",
        "--log-opt",
        "max-file=2",
        "--rootfs",
        r,
        &n,
        "--",
        "sh",
        "-c",
        script,
    ]);
    w.wait_status(&n, "stopped", 10);
    let log = w.inspect(&n)["log_path"].as_str().unwrap().to_string();
    let sizes = files(&log);
    assert_eq!(sizes.len(), 2, "max-file=2 keeps two files: {sizes:?}");
    assert!(sizes.iter().all(|s| *s <= 1024), "{sizes:?}");
    let tail = w.ok(&["logs", "--tail", "2", &n]);
    assert_eq!(tail, format!("{:049}\n{:049}\n", 58, 59));
    // The options are the container's: kept across a wrend restart.
    w.restart();
    w.ok(&["start", &n]);
    w.wait_status(&n, "stopped", 10);
    let sizes = files(&log);
    assert!(
        sizes.len() == 2 && sizes.iter().all(|s| *s <= 1024),
        "{sizes:?}"
    );
    w.ok(&["rm", &n]);
    w.assert_clean(&n);

    for (opt, want) in [
        ("max-size=lots", "max-size is a size"),
        ("max-file=0", "max-file is a number of files from 1 to 16"),
        ("compress=true", "unknown key (max-size, max-file)"),
        ("max-size", "want KEY=VALUE"),
    ] {
        let bad = name("badlog");
        let e = w.fails(&[
            "run",
            "-d",
            "--log-opt",
            opt,
            "--rootfs",
            r,
            &bad,
            "--",
            "true",
        ]);
        assert!(
            e.contains(&format!("--log-opt {opt:?}")) && e.contains(want),
            "{e}"
        );
        w.assert_clean(&bad);
    }
}

/// The `restart-scheduled` delays of `name`, in ms, from `wren events`' ring.
fn restart_delays(events: &str, name: &str) -> Vec<u64> {
    events
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["topic"] == "/container/restart-scheduled" && e["container"] == name)
        .filter_map(|e| {
            e["detail"]
                .as_str()?
                .trim_start_matches("in ")
                .trim_end_matches(" ms")
                .parse()
                .ok()
        })
        .collect()
}

#[test]
fn restart_policies_backoff_and_give_up() {
    if !require_root("restart_policies_backoff_and_give_up") {
        return;
    }
    let w = Wrend::start(&[]);
    let b = rootfs();
    let r = b.rootfs();
    let r = r.to_str().unwrap();
    let mut ev = w.cmd();
    ev.args(["events", "--json"]).stdout(Stdio::piped());
    let mut events = wren_tests::spawn_registered(&mut ev);

    // on-failure:3: three restarts with doubling delays, then it stays down.
    let crash = name("crash");
    w.ok(&[
        "run",
        "-d",
        "--restart",
        "on-failure:3",
        "--rootfs",
        r,
        &crash,
        "--",
        "sh",
        "-c",
        "echo boom; exit 7",
    ]);
    assert!(
        wait_for(15, || {
            let c = w.inspect(&crash);
            c["restart_count"] == 3 && c["status"] == "stopped"
        }),
        "{}",
        w.inspect(&crash)
    );
    std::thread::sleep(Duration::from_millis(1500));
    let c = w.inspect(&crash);
    assert_eq!(c["restart_count"], 3, "gave up after 3");
    assert_eq!(c["status"], "stopped");
    assert_eq!(c["exit_status"], 7);
    assert_eq!(w.ok(&["logs", &crash]).matches("boom").count(), 4);

    // always: a clean exit is restarted too; `stop` ends it for good.
    let always = name("always");
    w.ok(&[
        "run",
        "-d",
        "--restart",
        "always",
        "--rootfs",
        r,
        &always,
        "--",
        "sh",
        "-c",
        "sleep 0.2",
    ]);
    assert!(wait_for(10, || w.inspect(&always)["restart_count"]
        .as_u64()
        .unwrap_or(0)
        >= 2));
    w.ok(&["stop", "-t", "1", &always]);
    let stopped = w.inspect(&always);
    assert_eq!(stopped["status"], "stopped");
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        w.inspect(&always)["restart_count"],
        stopped["restart_count"],
        "restarted after stop"
    );
    assert_eq!(w.status(&always), "stopped");

    // no: not restarted.
    let once = name("once");
    w.run_detached(r, &once, &["sh", "-c", "exit 1"]);
    w.wait_status(&once, "stopped", 5);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(w.inspect(&once)["restart_count"], 0);

    // The backoff doubled: 100, 200, 400 ms.
    // SAFETY: kill(2) on our registered child.
    unsafe { libc::kill(events.id() as i32, libc::SIGTERM) };
    let mut text = String::new();
    events
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    let _ = events.wait();
    wren_tests::unregister(events.id());
    assert_eq!(restart_delays(&text, &crash), vec![100, 200, 400], "{text}");

    for n in [&crash, &always, &once] {
        w.ok(&["rm", n]);
        w.assert_clean(n);
    }
    w.assert_no_sockets();
}

#[test]
fn wrend_sigkilled_and_restarted_keeps_managing() {
    if !require_root("wrend_sigkilled_and_restarted_keeps_managing") {
        return;
    }
    let mut w = Wrend::start(&[]);
    let b = rootfs();
    let r = b.rootfs();
    let r = r.to_str().unwrap();
    let long = name("long");
    let later = name("later");
    let meanwhile = name("meanwhile");
    w.run_detached(r, &long, &["sleep", "1000"]);
    w.run_detached(r, &later, &["sh", "-c", "sleep 3; exit 4"]);
    w.run_detached(r, &meanwhile, &["sh", "-c", "sleep 0.5; exit 6"]);
    let long_pid = w.inspect(&long)["pid"].as_u64().unwrap();
    let wrend_pid = w.pid();

    w.kill9();
    assert!(!wren_tests::alive(i64::from(wrend_pid)));
    // The containers do not notice.
    std::thread::sleep(Duration::from_secs(1));
    assert!(wren_tests::alive(long_pid as i64));
    assert!(w.fails(&["list"]).contains("cannot reach wrend"));

    w.restart();
    let c = w.inspect(&long);
    assert_eq!(c["status"], "running");
    assert_eq!(c["pid"].as_u64().unwrap(), long_pid);
    // The exit that happened while wrend was down was learned from the shim.
    let m = w.inspect(&meanwhile);
    assert_eq!(
        (m["status"].as_str(), m["exit_status"].as_u64()),
        (Some("stopped"), Some(6))
    );
    // A later exit is seen through the reconnected event stream.
    w.wait_status(&later, "stopped", 10);
    assert_eq!(w.inspect(&later)["exit_status"], 4);
    // And the reconnected shim serves calls.
    let out = w.wren(&["exec", &long, "--", "sh", "-c", "echo still here"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "still here\n");
    w.ok(&["stop", "-t", "1", &long]);
    for n in [&long, &later, &meanwhile] {
        w.ok(&["rm", n]);
        w.assert_clean(n);
    }
    w.assert_no_sockets();
}

#[test]
fn start_at_boot_after_wrend_restart() {
    if !require_root("start_at_boot_after_wrend_restart") {
        return;
    }
    let mut w = Wrend::start(&[]);
    let b = rootfs();
    let r = b.rootfs();
    let boot = name("boot");
    w.ok(&[
        "create",
        "--start-at-boot",
        "--rootfs",
        r.to_str().unwrap(),
        &boot,
        "--",
        "sleep",
        "1000",
    ]);
    assert_eq!(w.status(&boot), "created");
    // A host reboot loses every shim: simulate it by killing wrend and the shim.
    w.kill9();
    w.kill_shims(&boot);
    w.restart();
    w.wait_status(&boot, "running", 10);
    w.ok(&["rm", "-f", &boot]);
    w.assert_clean(&boot);
}

/// A start at wrend's boot that fails is a failed run for the restart
/// policy: with `--restart always` wrend tries again (with backoff), and
/// the container comes up once what it needs is there (here its root
/// directory, moved away over the "reboot" like a disk not yet mounted),
/// instead of staying down until someone looks.
#[test]
fn a_failed_start_at_boot_is_retried_by_policy() {
    if !require_root("a_failed_start_at_boot_is_retried_by_policy") {
        return;
    }
    let mut w = Wrend::start(&[]);
    let b = rootfs();
    let r = b.rootfs();
    let c = name("bootretry");
    w.ok(&[
        "create",
        "--restart",
        "always",
        "--rootfs",
        r.to_str().unwrap(),
        &c,
        "--",
        "sleep",
        "1000",
    ]);
    w.kill9();
    w.kill_shims(&c);
    let away = r.with_extension("away");
    std::fs::rename(&r, &away).unwrap();
    w.restart();
    assert!(
        wait_for(10, || w.inspect(&c)["last_error"]
            .as_str()
            .is_some_and(|e| !e.is_empty())),
        "{}",
        w.inspect(&c)
    );
    // wrend answers meanwhile, and the container waits for its retry.
    let status = w.status(&c);
    assert!(
        matches!(status.as_str(), "restarting" | "stopped"),
        "{status}"
    );
    std::fs::rename(&away, &r).unwrap();
    w.wait_status(&c, "running", 20);
    assert_eq!(w.ok(&["exec", &c, "echo", "up"]), "up\n");
    w.ok(&["rm", "-f", &c]);
    w.assert_clean(&c);
}

#[test]
fn twenty_containers_at_once() {
    if !require_root("twenty_containers_at_once") {
        return;
    }
    let w = Wrend::start(&[]);
    let b = rootfs();
    let r = b.rootfs().display().to_string();
    let names: Vec<String> = (0..20).map(|i| name(&format!("many{i}"))).collect();
    std::thread::scope(|s| {
        for n in &names {
            let (w, r) = (&w, &r);
            s.spawn(move || w.run_detached(r, n, &["sleep", "1000"]));
        }
    });
    let list: Value = serde_json::from_str(&w.ok(&["list", "--json"])).unwrap();
    let running = list
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "running")
        .count();
    assert_eq!(running, 20, "{list}");
    std::thread::scope(|s| {
        for n in &names {
            let w = &w;
            s.spawn(move || w.ok(&["rm", "-f", n]));
        }
    });
    for n in &names {
        w.assert_clean(n);
    }
    w.assert_no_sockets();
}

#[test]
fn bad_input_gives_clear_errors_and_leaves_nothing() {
    if !require_root("bad_input_gives_clear_errors_and_leaves_nothing") {
        return;
    }
    let w = Wrend::start(&[]);
    let b = rootfs();
    let r = b.rootfs();
    let r = r.to_str().unwrap();
    let keep = name("keep");
    w.run_detached(r, &keep, &["sleep", "1000"]);

    for cmd in [
        &["inspect"][..],
        &["rm"],
        &["stop"],
        &["start"],
        &["kill"],
        &["logs"],
        &["pause"],
    ] {
        let mut args = cmd.to_vec();
        args.push("ghost");
        let err = w.fails(&args);
        assert!(err.contains("no such container: ghost"), "{args:?}: {err}");
    }
    assert!(w
        .fails(&["exec", "ghost", "--", "true"])
        .contains("no such container"));
    let err = w.fails(&["run", "-d", "--rootfs", r, &keep, "--", "true"]);
    assert!(err.contains("already exists"), "{err}");
    let empty = tempfile::tempdir().unwrap();
    let nobundle = name("nobundle");
    let err = w.fails(&[
        "create",
        "--bundle",
        empty.path().to_str().unwrap(),
        &nobundle,
    ]);
    assert!(err.contains("has no config.json"), "{err}");
    w.assert_clean(&nobundle);
    let err = w.fails(&[
        "run",
        "-d",
        "--rootfs",
        "/nonexistent/rootfs",
        &nobundle,
        "--",
        "true",
    ]);
    assert!(err.contains("not a directory"), "{err}");
    let err = w.fails(&[
        "run",
        "-d",
        "--restart",
        "sometimes",
        "--rootfs",
        r,
        &nobundle,
        "--",
        "true",
    ]);
    assert!(err.contains("invalid restart policy"), "{err}");
    let err = w.fails(&["run", "-d", "--rootfs", r, "../evil", "--", "true"]);
    assert!(err.contains("invalid container name"), "{err}");
    // A bundle whose spec the runtime refuses: wrend does not validate specs
    // itself, so this is the shim's Create refusing; the error still names
    // the field and nothing is left.
    let badspec = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(b.rootfs(), badspec.path().join("rootfs")).unwrap();
    let mut spec =
        serde_json::to_value(wren_runtime::spec::example(&["true".into()], false)).unwrap();
    spec["root"] = serde_json::json!({"path": "rootfs"});
    spec["linux"]["namespaces"] = serde_json::json!([{"type": "bogus"}]);
    std::fs::write(badspec.path().join("config.json"), spec.to_string()).unwrap();
    let bad = name("badspec");
    let err = w.fails(&["create", "--bundle", badspec.path().to_str().unwrap(), &bad]);
    assert!(err.contains("namespaces"), "{err}");
    w.assert_clean(&bad);
    let noexec = name("noexec");
    let err = w.fails(&["run", "-d", "--rootfs", r, &noexec, "--", "/no/such/binary"]);
    assert!(err.contains("/no/such/binary"), "{err}");
    w.assert_clean(&noexec);
    assert!(w.fails(&["frobnicate"]).contains("unknown command"));
    assert_eq!(w.wren(&["run"]).status.code(), Some(2));

    // A shim that dies: the container is marked stopped, an event says so,
    // nothing of it is left, and wrend serves the others.
    let victim = name("victim");
    w.run_detached(r, &victim, &["sleep", "1000"]);
    let pids = shim_pids(w.root.path(), &victim);
    assert_eq!(pids.len(), 1);
    // SAFETY: kill(2) on the shim wrend started for this test's container.
    unsafe { libc::kill(pids[0] as i32, libc::SIGKILL) };
    w.wait_status(&victim, "stopped", 10);
    assert_eq!(w.inspect(&victim)["exit_status"], 137);
    assert!(w.log().contains("/container/shim-died"));
    assert_eq!(w.status(&keep), "running");
    w.ok(&["rm", &victim]);
    w.assert_clean(&victim);

    w.ok(&["rm", "-f", &keep]);
    w.assert_clean(&keep);
    w.assert_no_sockets();
}

#[test]
fn shim_that_fails_to_start_leaves_nothing() {
    if !require_root("shim_that_fails_to_start_leaves_nothing") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("containerd-shim-wren-v2");
    std::fs::write(&fake, "#!/bin/sh\necho 'no shim today' >&2\nexit 1\n").unwrap();
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let w = Wrend::start(&["--shim", fake.to_str().unwrap()]);
    let b = rootfs();
    let n = name("noshim");
    let err = w.fails(&[
        "run",
        "-d",
        "--rootfs",
        b.rootfs().to_str().unwrap(),
        &n,
        "--",
        "true",
    ]);
    assert!(err.contains("no shim today"), "{err}");
    w.assert_clean(&n);
    assert!(w.ok(&["list"]).lines().count() == 1, "only the header");
}

/// Opens a pty pair; returns (master, slave path).
fn openpty() -> (std::fs::File, String) {
    // SAFETY: posix_openpt/grantpt/unlockpt/ptsname on the fd we just opened.
    unsafe {
        let m = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY);
        assert!(m >= 0);
        assert_eq!(libc::grantpt(m), 0);
        assert_eq!(libc::unlockpt(m), 0);
        let name = std::ffi::CStr::from_ptr(libc::ptsname(m))
            .to_string_lossy()
            .into_owned();
        (std::os::fd::FromRawFd::from_raw_fd(m), name)
    }
}

#[test]
fn interactive_tty_session() {
    if !require_root("interactive_tty_session") {
        return;
    }
    let w = Wrend::start(&[]);
    let b = rootfs();
    let n = name("tty");
    let (mut master, slave) = openpty();
    let ws = libc::winsize {
        ws_row: 31,
        ws_col: 97,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let master_fd = std::os::fd::AsRawFd::as_raw_fd(&master);
    // SAFETY: TIOCSWINSZ with a valid winsize on our pty master.
    let rc = unsafe { libc::ioctl(master_fd, libc::TIOCSWINSZ, &ws) };
    assert_eq!(rc, 0);
    let tty = || {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&slave)
            .unwrap()
    };
    let mut cmd = w.cmd();
    cmd.args([
        "run",
        "--rm",
        "-it",
        "--rootfs",
        b.rootfs().to_str().unwrap(),
        &n,
        "--",
        "sh",
    ])
    .stdin(tty())
    .stdout(tty())
    .stderr(tty());
    let mut child = wren_tests::spawn_registered(&mut cmd);
    // Our copies of the slave must go, or the master never sees the end.
    drop(cmd);
    master
        .write_all(b"tty; stty size; echo marker-$((6*7)); exit 3\n")
        .unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        let mut pfd = libc::pollfd {
            fd: std::os::fd::AsRawFd::as_raw_fd(&master),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(&mut pfd, 1, 100) } > 0 {
            match master.read(&mut buf) {
                Ok(n) if n > 0 => out.extend_from_slice(&buf[..n]),
                _ => {}
            }
        }
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("tty session hung: {}", String::from_utf8_lossy(&out));
        }
    };
    wren_tests::unregister(child.id());
    let text = String::from_utf8_lossy(&out);
    assert_eq!(status.code(), Some(3), "{text}");
    assert!(text.contains("marker-42"), "{text}");
    assert!(text.contains("/dev/pts/"), "not a tty: {text}");
    assert!(text.contains("31 97"), "window size not passed on: {text}");
    w.assert_clean(&n);

    // Detach with Ctrl-P Ctrl-Q: wren exits 0, the container keeps running
    // and its later output goes to the log again.
    let d = name("detach");
    let (mut master, slave) = openpty();
    let tty = || {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&slave)
            .unwrap()
    };
    let mut cmd = w.cmd();
    cmd.args([
        "run",
        "-it",
        "--rootfs",
        b.rootfs().to_str().unwrap(),
        &d,
        "--",
        "sh",
    ])
    .stdin(tty())
    .stdout(tty())
    .stderr(tty());
    let mut child = wren_tests::spawn_registered(&mut cmd);
    drop(cmd);
    w.wait_status(&d, "running", 10);
    master
        .write_all(b"(sleep 1; echo after-detach) &\n")
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    master.write_all(&[0x10, 0x11]).unwrap();
    assert!(
        wait_for(10, || child.try_wait().unwrap().is_some()),
        "wren did not detach"
    );
    assert!(child.wait().unwrap().success());
    wren_tests::unregister(child.id());
    assert_eq!(w.status(&d), "running");
    assert!(
        wait_for(10, || w.ok(&["logs", &d]).contains("after-detach")),
        "output after detach not logged: {}",
        w.ok(&["logs", &d])
    );
    w.ok(&["rm", "-f", &d]);
    w.assert_clean(&d);
}

/// Reads `master` until `want` appears (or `secs` pass); everything read.
fn read_until(master: &mut std::fs::File, want: &str, secs: u64) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline && !String::from_utf8_lossy(&out).contains(want) {
        let mut pfd = libc::pollfd {
            fd: std::os::fd::AsRawFd::as_raw_fd(&*master),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(&mut pfd, 1, 100) } > 0 {
            match master.read(&mut buf) {
                Ok(n) if n > 0 => out.extend_from_slice(&buf[..n]),
                _ => {}
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether process `pid` has a handler for `sig` (its SigCgt mask).
fn catches(pid: u32, sig: i32) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("SigCgt:"))
        .and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
        .is_some_and(|m| m & (1 << (sig - 1)) != 0)
}

#[test]
fn detached_terminal_attach_wait_and_restart() {
    if !require_root("detached_terminal_attach_wait_and_restart") {
        return;
    }
    let w = Wrend::start(&[]);
    let b = rootfs();
    let r = b.rootfs();
    let r = r.to_str().unwrap();

    // `run -dit` from a script (no terminal on wren's stdin): the
    // container's terminal output goes to its log until someone attaches.
    let t = name("dtty");
    w.ok(&[
        "run",
        "-dit",
        "--rootfs",
        r,
        &t,
        "--",
        "sh",
        "-c",
        "echo before-attach; exec sh",
    ]);
    w.wait_status(&t, "running", 10);
    assert!(
        wait_for(10, || w.ok(&["logs", &t]).contains("before-attach")),
        "{}",
        w.ok(&["logs", &t])
    );
    // In the foreground, -t still wants a terminal.
    let e = w.fails(&["run", "-t", "--rootfs", r, &name("tfg"), "--", "true"]);
    assert!(e.contains("-t in the foreground needs a terminal"), "{e}");

    let attach = |input: &[u8], until: &str| {
        let (mut master, slave) = openpty();
        let tty = || {
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&slave)
                .unwrap()
        };
        let mut cmd = w.cmd();
        cmd.args(["attach", &t])
            .stdin(tty())
            .stdout(tty())
            .stderr(tty());
        let child = wren_tests::spawn_registered(&mut cmd);
        drop(cmd);
        std::thread::sleep(Duration::from_millis(300));
        master.write_all(input).unwrap();
        let text = read_until(&mut master, until, 10);
        (child, text, master)
    };
    // Attach, run a command in its shell, detach with Ctrl-P Ctrl-Q.
    let (mut child, text, mut master) = attach(b"echo attached-$((6*7))\n", "attached-42");
    assert!(text.contains("attached-42"), "{text}");
    master.write_all(&[0x10, 0x11]).unwrap();
    assert_eq!(child_wait(&mut child, 10), Some(0), "did not detach");
    assert_eq!(w.status(&t), "running");
    // Attach again; the shell's exit is attach's status.
    let (mut child, text, _m) = attach(b"exit 5\n", "");
    assert_eq!(child_wait(&mut child, 10), Some(5), "{text}");
    w.wait_status(&t, "stopped", 10);
    let e = w.fails(&["attach", &t]);
    assert!(e.contains(&t) && e.contains("is stopped"), "{e}");

    // Without a terminal: `-di` takes attach's stdin (and stays open when
    // it ends), the output comes from the log from now on.
    let i = name("dstdin");
    w.ok(&["run", "-di", "--rootfs", r, &i, "--", "sh"]);
    w.wait_status(&i, "running", 10);
    let mut cmd = w.cmd();
    cmd.args(["attach", &i])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = wren_tests::spawn_registered(&mut cmd);
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"echo piped-$((2*3))\nexit 4\n").unwrap();
    drop(stdin);
    let status = child_wait(&mut child, 10);
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert_eq!(status, Some(4), "{out}");
    assert!(out.contains("piped-6"), "{out}");

    // Output only, and attach passes SIGTERM on to the container.
    let o = name("dout");
    w.run_detached(
        r,
        &o,
        &[
            "sh",
            "-c",
            "trap 'echo got-term; exit 7' TERM; echo ready; while :; do sleep 0.1; done",
        ],
    );
    assert!(wait_for(10, || w.ok(&["logs", &o]).contains("ready")));
    let mut cmd = w.cmd();
    cmd.args(["attach", &o])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = wren_tests::spawn_registered(&mut cmd);
    assert!(
        wait_for(10, || catches(child.id(), libc::SIGTERM)),
        "attach never caught SIGTERM"
    );
    // SAFETY: kill(2) of our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child_wait(&mut child, 10);
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert_eq!(status, Some(7), "{out}");
    assert!(out.contains("got-term") && !out.contains("ready"), "{out}");

    // `wait`: the exit status, one line per name.
    let d = name("dwait");
    w.run_detached(r, &d, &["sh", "-c", "sleep 0.5; exit 3"]);
    assert_eq!(w.ok(&["wait", &d, &o]), "3\n7\n");
    let e = w.fails(&["wait", "no-such-box"]);
    assert!(e.contains("no-such-box"), "{e}");
    // `list -q` with filters: names only, every filter must match.
    assert_eq!(
        w.ok(&[
            "list",
            "-q",
            "-f",
            "status=exited",
            "-f",
            &format!("name={d}")
        ]),
        format!("{d}\n")
    );
    assert_eq!(w.ok(&["ls", "-q", "-f", "status=paused"]), "");
    let e = w.fails(&["list", "-f", "colour=red"]);
    assert!(e.contains("colour=red"), "{e}");

    // `start -a`: a stopped container again, its new status (not the old
    // one); `-ai` with stdin.
    let out = w.wren(&["start", "-a", &d]);
    assert_eq!(out.status.code(), Some(3));
    let mut cmd = w.cmd();
    cmd.args(["start", "-ai", &i])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = wren_tests::spawn_registered(&mut cmd);
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"echo again-$((3*3))\nexit 6\n").unwrap();
    drop(stdin);
    let status = child_wait(&mut child, 10);
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert_eq!(status, Some(6), "{out}");
    assert!(out.contains("again-9") && !out.contains("piped-6"), "{out}");
    let e = w.fails(&["start", "-ai", &d]);
    assert!(e.contains("not created with -i"), "{e}");

    // `restart`: a running one stopped and started (a new process), a
    // stopped one started; a bad name among good ones fails alone.
    let s = name("drestart");
    w.run_detached(r, &s, &["sleep", "1000"]);
    w.wait_status(&s, "running", 10);
    let pid = w.inspect(&s)["pid"].as_u64().unwrap();
    assert_eq!(w.ok(&["restart", "-t", "1", &s]), format!("{s}\n"));
    assert_eq!(w.status(&s), "running");
    let pid2 = w.inspect(&s)["pid"].as_u64().unwrap();
    assert_ne!(pid, pid2);
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
    w.ok(&["stop", "-t", "1", &s]);
    let out = w.wren(&["restart", &s, "no-such-box", &d]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&out.stdout), format!("{s}\n{d}\n"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-such-box"));
    assert_eq!(w.status(&s), "running");
    // A --rm container would be gone after its stop: refused, left running.
    let once = name("drm");
    w.ok(&[
        "run", "-d", "--rm", "--rootfs", r, &once, "--", "sleep", "1000",
    ]);
    let e = w.fails(&["restart", &once]);
    assert!(e.contains(&once) && e.contains("--rm"), "{e}");
    assert_eq!(w.status(&once), "running");
    w.ok(&["rm", "-f", &once]);

    for n in [&t, &i, &o, &d, &s] {
        w.ok(&["rm", "-f", n]);
        w.assert_clean(n);
    }
}

#[test]
fn exec_as_another_user_resolved_in_the_container() {
    if !require_root("exec_as_another_user_resolved_in_the_container") {
        return;
    }
    let w = Wrend::start(&[]);
    let b = rootfs();
    let r = b.rootfs();
    let n = name("execu");
    // The container's /etc/group is an absolute link to a file of its own:
    // resolved inside its root, never on the host's.
    w.run_detached(
        r.to_str().unwrap(),
        &n,
        &[
            "sh",
            "-c",
            "printf 'root:x:0:\\nuser:x:1000:\\nstaff:x:4321:user\\n' > /tmp/g; \
             ln -sf /tmp/g /etc/group; echo ready; exec sleep 1000",
        ],
    );
    assert!(wait_for(10, || w.ok(&["logs", &n]).contains("ready")));
    let id = |u: &str| w.ok(&["exec", "-u", u, &n, "--", "id"]);
    let by_name = id("user");
    assert!(
        by_name.starts_with("uid=1000(user) gid=1000(user)") && by_name.contains("4321(staff)"),
        "{by_name}"
    );
    assert!(id("user:staff").starts_with("uid=1000(user) gid=4321(staff)"));
    assert!(id("1234:5678").starts_with("uid=1234 gid=5678"));
    assert!(id("0").starts_with("uid=0(root) gid=0(root)"));
    // HOME follows the user, as in the container's init.
    let home = w.ok(&["exec", "--user", "user", &n, "--", "sh", "-c", "echo $HOME"]);
    assert_eq!(home, "/tmp\n");
    // Without -u: the container's own user.
    assert!(w.ok(&["exec", &n, "--", "id"]).starts_with("uid=0(root)"));

    let e = w.fails(&["exec", "-u", "nobody", &n, "--", "id"]);
    assert!(
        e.contains(&n) && e.contains("\"nobody\" is not in its /etc/passwd"),
        "{e}"
    );
    let e = w.fails(&["exec", "-u", "user:wheel", &n, "--", "id"]);
    assert!(e.contains("\"wheel\" is not in its /etc/group"), "{e}");
    let e = w.fails(&["exec", "-u", ":5", &n, "--", "id"]);
    assert!(e.contains("NAME|UID[:GROUP|GID]"), "{e}");
    // A fifo where /etc/passwd should be: refused, not waited on.
    w.ok(&[
        "exec",
        &n,
        "--",
        "sh",
        "-c",
        "rm /etc/passwd && mkfifo /etc/passwd",
    ]);
    let e = w.fails(&["exec", "-u", "user", &n, "--", "id"]);
    assert!(e.contains("/etc/passwd is not a regular file"), "{e}");
    w.ok(&["rm", "-f", &n]);
    w.assert_clean(&n);
}

#[test]
fn cp_copies_in_and_out_and_stays_inside_the_container() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    if !require_root("cp_copies_in_and_out_and_stays_inside_the_container") {
        return;
    }
    let w = Wrend::start(&[]);
    let b = rootfs();
    let r = b.rootfs();
    let n = name("cp");
    w.run_detached(
        r.to_str().unwrap(),
        &n,
        &[
            "sh",
            "-c",
            "mkdir -p /data/dir/sub && echo one > /data/dir/a && echo two > /data/dir/sub/b \
             && chmod 750 /data/dir/a \
             && ln -s /etc/passwd /data/dir/link && ln -s / /data/escape \
             && ln -s /etc/passwd /data/lnk && echo ready && exec sleep 1000",
        ],
    );
    assert!(
        wait_for(10, || w.ok(&["logs", &n]).contains("ready")),
        "{}",
        w.ok(&["logs", &n])
    );
    // (--rootfs containers have no CAP_CHOWN: from the host's side.)
    std::os::unix::fs::chown(r.join("data/dir/a"), Some(1000), Some(1000)).unwrap();
    let host = tempfile::tempdir().unwrap();
    let h = |p: &str| host.path().join(p);
    let hs = |p: &str| h(p).to_str().unwrap().to_string();
    let at = |p: &str| format!("{n}:{p}");

    // Out: a directory onto a missing path becomes it; links stay links;
    // modes kept, owner the caller (-a keeps it).
    w.ok(&["cp", &at("/data/dir"), &hs("out")]);
    assert_eq!(std::fs::read_to_string(h("out/a")).unwrap(), "one\n");
    assert_eq!(std::fs::read_to_string(h("out/sub/b")).unwrap(), "two\n");
    let a = std::fs::metadata(h("out/a")).unwrap();
    assert_eq!((a.permissions().mode() & 0o7777, a.uid()), (0o750, 0));
    assert_eq!(
        std::fs::read_link(h("out/link")).unwrap(),
        Path::new("/etc/passwd")
    );
    w.ok(&["cp", "-a", &at("/data/dir/a"), &hs("kept")]);
    assert_eq!(std::fs::metadata(h("kept")).unwrap().uid(), 1000);
    // Into an existing directory: by its name; `/.`: its contents.
    std::fs::create_dir(h("into")).unwrap();
    w.ok(&["cp", &at("/data/dir"), &hs("into")]);
    assert!(h("into/dir/sub/b").is_file());
    std::fs::create_dir(h("merge")).unwrap();
    w.ok(&["cp", &at("/data/dir/."), &hs("merge")]);
    assert!(h("merge/sub/b").is_file() && !h("merge/dir").exists());
    // The container's absolute links resolve inside its root: its passwd.
    w.ok(&["cp", &at("/data/escape/etc/passwd"), &hs("passwd")]);
    assert_eq!(
        std::fs::read_to_string(h("passwd")).unwrap(),
        std::fs::read_to_string(r.join("etc/passwd")).unwrap()
    );
    // -L follows SRC itself (a link to the container's passwd).
    w.ok(&["cp", "-L", &at("/data/lnk"), &hs("followed")]);
    assert!(std::fs::read_to_string(h("followed"))
        .unwrap()
        .contains("user:x:1000"));

    // In: a file, owned by the container's root; a directory by its name.
    std::fs::write(h("in.txt"), "hello\n").unwrap();
    std::fs::set_permissions(h("in.txt"), std::fs::Permissions::from_mode(0o640)).unwrap();
    std::os::unix::fs::chown(h("in.txt"), Some(1234), Some(1234)).unwrap();
    w.ok(&["cp", &hs("in.txt"), &at("/data/in.txt")]);
    assert_eq!(
        w.ok(&["exec", &n, "--", "stat", "-c", "%u:%g %a", "/data/in.txt"]),
        "0:0 640\n"
    );
    w.ok(&["cp", "-a", &hs("in.txt"), &at("/data/kept.txt")]);
    assert_eq!(
        w.ok(&["exec", &n, "--", "stat", "-c", "%u:%g", "/data/kept.txt"]),
        "1234:1234\n"
    );
    // Into a mount of the container's own (its /dev/shm tmpfs).
    w.ok(&["cp", &hs("in.txt"), &at("/dev/shm/")]);
    assert_eq!(
        w.ok(&["exec", &n, "--", "cat", "/dev/shm/in.txt"]),
        "hello\n"
    );
    w.ok(&["cp", &hs("out"), &at("/data/")]);
    assert_eq!(w.ok(&["exec", &n, "--", "cat", "/data/out/sub/b"]), "two\n");
    // Through the container's link to its /: its /tmp, not the host's.
    let marker = format!("wren-cp-{}", std::process::id());
    w.ok(&[
        "cp",
        &hs("in.txt"),
        &at(&format!("/data/escape/tmp/{marker}")),
    ]);
    assert!(
        !Path::new("/tmp").join(&marker).exists(),
        "wrote on the host"
    );
    assert_eq!(
        w.ok(&["exec", &n, "--", "cat", &format!("/tmp/{marker}")]),
        "hello\n"
    );
    // A link where a file goes is replaced, never written through.
    w.ok(&["cp", &hs("in.txt"), &at("/data/lnk")]);
    assert_eq!(w.ok(&["exec", &n, "--", "cat", "/data/lnk"]), "hello\n");
    assert!(w
        .ok(&["exec", &n, "--", "cat", "/etc/passwd"])
        .contains("root:x:0:0"));

    // Bad input: named, nothing made.
    let e = w.fails(&["cp", &hs("in.txt"), &hs("x")]);
    assert!(e.contains("NAME:PATH"), "{e}");
    let e = w.fails(&["cp", &at("/nope"), &hs("x")]);
    assert!(
        e.contains(&at("/nope")) && e.contains("No such file"),
        "{e}"
    );
    let e = w.fails(&["cp", &hs("in.txt"), &at("/data/nodir/")]);
    assert!(e.contains("no such directory"), "{e}");
    let e = w.fails(&["cp", &hs("out"), &at("/data/in.txt")]);
    assert!(e.contains("cannot copy directory"), "{e}");
    let e = w.fails(&["cp", &hs("in.txt"), &at("/data/missing/x")]);
    assert!(e.contains(&at("/data/missing")), "{e}");
    assert!(!h("x").exists());
    // A stopped container: its root directory, both ways.
    w.ok(&["stop", "-t", "1", &n]);
    w.ok(&["cp", &at("/data/in.txt"), &hs("x")]);
    assert_eq!(std::fs::read_to_string(h("x")).unwrap(), "hello\n");
    w.ok(&["cp", &hs("x"), &at("/data/while-stopped")]);
    assert_eq!(
        std::fs::read_to_string(r.join("data/while-stopped")).unwrap(),
        "hello\n"
    );
    w.ok(&["rm", "-f", &n]);
    w.assert_clean(&n);
}

#[test]
fn update_keeps_limits_and_policy_for_later_starts() {
    if !require_root("update_keeps_limits_and_policy_for_later_starts") {
        return;
    }
    let w = Wrend::start(&[]);
    let b = rootfs();
    let r = b.rootfs();
    let r = r.to_str().unwrap();
    let n = name("upd");
    w.run_detached(r, &n, &["sleep", "1000"]);
    w.wait_status(&n, "running", 10);
    let stats = || -> Value { serde_json::from_str(&w.ok(&["stats", "--json", &n])).unwrap() };
    w.ok(&[
        "update",
        "-m",
        "64m",
        "--cpus",
        "0.5",
        "--pids-limit",
        "50",
        "--restart",
        "on-failure:2",
        &n,
    ]);
    let s = stats();
    assert_eq!(
        (&s["pids_limit"], &s["memory_limit"]),
        (&json_u(50), &json_u(64 << 20)),
        "{s}"
    );
    assert_eq!(w.inspect(&n)["restart_policy"], "on-failure:2");
    // A new task (stop, start) keeps them: they are in its spec now.
    w.ok(&["stop", "-t", "1", &n]);
    w.ok(&["start", &n]);
    w.wait_status(&n, "running", 10);
    let s = stats();
    assert_eq!(
        (&s["pids_limit"], &s["memory_limit"]),
        (&json_u(50), &json_u(64 << 20)),
        "{s}"
    );
    // A stopped container's update waits for its next start.
    w.ok(&["stop", "-t", "1", &n]);
    w.ok(&["update", "--pids-limit", "60", &n]);
    w.ok(&["start", &n]);
    w.wait_status(&n, "running", 10);
    assert_eq!(stats()["pids_limit"], 60);
    // Without a name: every running container's figures.
    let all: Value = serde_json::from_str(&w.ok(&["stats", "--json"])).unwrap();
    let mine = all
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == n.as_str());
    assert_eq!(mine.map(|v| &v["pids_limit"]), Some(&json_u(60)), "{all}");
    assert!(w
        .ok(&["stats"])
        .lines()
        .any(|l| l.starts_with(&format!("{n}\t"))));
    // ... and a policy set by update applies: on-failure restarts a kill.
    w.ok(&["update", "--restart", "always", &n]);
    let pid = w.inspect(&n)["pid"].as_i64().unwrap();
    // SAFETY: kill(2) of the container's process, which this test made.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    assert!(
        wait_for(10, || w.inspect(&n)["restart_count"].as_u64() == Some(1)
            && w.status(&n) == "running"),
        "{}",
        w.inspect(&n)
    );

    // Bad input: named; nothing changes.
    let e = w.fails(&["update", "--restart", "sometimes", &n]);
    assert!(e.contains("\"sometimes\""), "{e}");
    let e = w.fails(&["update", "-m", "lots", &n]);
    assert!(e.contains("--memory \"lots\""), "{e}");
    let e = w.fails(&["update", &n]);
    assert!(e.contains("required"), "{e}");
    assert_eq!(w.inspect(&n)["restart_policy"], "always");
    let once = name("updrm");
    w.ok(&[
        "run", "-d", "--rm", "--rootfs", r, &once, "--", "sleep", "1000",
    ]);
    let e = w.fails(&["update", "--restart", "always", &once]);
    assert!(e.contains(&once) && e.contains("--rm"), "{e}");
    for c in [&n, &once] {
        w.ok(&["rm", "-f", c]);
        w.assert_clean(c);
    }
}

fn json_u(n: u64) -> Value {
    Value::from(n)
}

#[test]
fn logs_timestamps_since_and_until() {
    if !require_root("logs_timestamps_since_and_until") {
        return;
    }
    let w = Wrend::start(&[]);
    let b = rootfs();
    let r = b.rootfs();
    let n = name("logt");
    w.run_detached(
        r.to_str().unwrap(),
        &n,
        &[
            "sh",
            "-c",
            "echo early; sleep 1.5; echo late; for i in 1 2 3; do sleep 0.3; echo tick$i; done",
        ],
    );
    // Followed with times from the start, until the container exits.
    let followed = w.ok(&["logs", "-f", "-t", &n]);
    let stamped: Vec<(String, String)> = followed
        .lines()
        .map(|l| {
            let (t, rest) = l.split_once(' ').unwrap();
            (t.to_string(), rest.to_string())
        })
        .collect();
    let texts: Vec<&str> = stamped.iter().map(|(_, l)| l.as_str()).collect();
    assert_eq!(
        texts,
        ["early", "late", "tick1", "tick2", "tick3"],
        "{followed}"
    );
    for (t, _) in &stamped {
        assert!(
            t.ends_with('Z') && t.len() >= 20 && &t[10..11] == "T",
            "{t}"
        );
    }
    // Times in order, the sleep between early and late visible.
    let secs = |t: &str| -> f64 {
        let hms = &t[11..t.len() - 1];
        let mut p = hms.split(':');
        let h: f64 = p.next().unwrap().parse().unwrap();
        let m: f64 = p.next().unwrap().parse().unwrap();
        let s: f64 = p.next().unwrap().parse().unwrap();
        h * 3600.0 + m * 60.0 + s
    };
    let ts: Vec<f64> = stamped.iter().map(|(t, _)| secs(t)).collect();
    assert!(ts.windows(2).all(|w| w[0] <= w[1]), "{followed}");
    assert!(ts[1] - ts[0] >= 1.0, "{followed}");
    // The same times when read again, not followed.
    assert_eq!(w.ok(&["logs", "--timestamps", &n]), followed);

    // --since and --until at late's time split the log there.
    let late = &stamped[1].0;
    assert_eq!(
        w.ok(&["logs", "--since", late, &n]),
        "late\ntick1\ntick2\ntick3\n"
    );
    assert_eq!(w.ok(&["logs", "--until", late, &n]), "early\n");
    assert_eq!(
        w.ok(&["logs", "--since", late, "--tail", "1", &n]),
        "tick3\n"
    );
    assert_eq!(w.ok(&["logs", "--since", "1h", &n]).lines().count(), 5);
    assert_eq!(w.ok(&["logs", "--since", "2100-01-01", &n]), "");
    let e = w.fails(&["logs", "--since", "yesterday", &n]);
    assert!(e.contains("--since \"yesterday\""), "{e}");
    // Kept on disk: a restarted wrend reads the same times.
    let mut w = w;
    w.restart();
    assert_eq!(w.ok(&["logs", "-t", &n]), followed);
    w.ok(&["rm", "-f", &n]);
    w.assert_clean(&n);
}

#[test]
fn events_since_until_and_filters() {
    if !require_root("events_since_until_and_filters") {
        return;
    }
    let w = Wrend::start(&[]);
    let b = rootfs();
    let r = b.rootfs();
    let r = r.to_str().unwrap();
    let (a, z) = (name("eva"), name("evz"));
    w.ok(&["run", "--rootfs", r, &a, "--", "true"]);
    w.ok(&["run", "--rootfs", r, &z, "--", "true"]);
    // The kept events of one container, one kind, then the end (--until now).
    let out = w.ok(&[
        "events",
        "--since",
        "1h",
        "--until",
        "0s",
        "-f",
        &format!("container={a}"),
        "-f",
        "event=/container/start",
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1, "{out}");
    assert!(
        lines[0].contains(&format!("/container/start {a} ")),
        "{out}"
    );
    let starts = w.ok(&[
        "events",
        "--since",
        "1h",
        "--until",
        "0s",
        "-f",
        "event=start",
    ]);
    assert!(
        starts.lines().count() >= 4 && starts.lines().all(|l| l.contains("start ")),
        "{starts}"
    );
    let all = w.ok(&[
        "events",
        "--since",
        "1h",
        "--until",
        "0s",
        "-f",
        &format!("container={z}"),
    ]);
    assert!(
        all.lines().count() >= 3 && all.lines().all(|l| l.contains(&z)),
        "{all}"
    );
    // A future --until: new events until then, and the command ends.
    let soon = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        + 2.0;
    let mut cmd = w.cmd();
    cmd.args([
        "events",
        "--until",
        &format!("{soon:.3}"),
        "-f",
        &format!("container={a}"),
    ])
    .stdout(Stdio::piped());
    let mut child = wren_tests::spawn_registered(&mut cmd);
    std::thread::sleep(Duration::from_millis(300));
    w.ok(&["start", &a]);
    assert_eq!(
        child_wait(&mut child, 10),
        Some(0),
        "--until did not end it"
    );
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert!(
        out.contains(&format!("/container/start {a} ")) && !out.contains(&z),
        "{out}"
    );
    let e = w.fails(&["events", "-f", "image=x"]);
    assert!(e.contains("image=x"), "{e}");
    for n in [&a, &z] {
        w.ok(&["rm", "-f", n]);
        w.assert_clean(n);
    }
}

/// Waits up to `secs` for `child`'s exit code (None: killed, or it hung).
fn child_wait(child: &mut std::process::Child, secs: u64) -> Option<i32> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    wren_tests::unregister(child.id());
    status
}

#[test]
fn exec_env_replaces_the_containers_value() {
    if !require_root("exec_env_replaces_the_containers_value") {
        return;
    }
    let w = Wrend::start(&[]);
    let b = rootfs();
    let n = name("execenv");
    let root = b.rootfs();
    w.ok(&[
        "run",
        "-d",
        "-e",
        "X=old",
        "-e",
        "Y=kept",
        "--rootfs",
        root.to_str().unwrap(),
        &n,
        "--",
        "sleep",
        "1000",
    ]);
    w.wait_status(&n, "running", 10);
    // Every X and Y the process got (getenv would find the first X).
    let out = w.ok(&[
        "exec",
        "-e",
        "X=new",
        &n,
        "--",
        "sh",
        "-c",
        "env | grep -E '^(X|Y)=' | sort -s -t= -k1,1",
    ]);
    assert_eq!(out, "X=new\nY=kept\n");
    // `-e KEY` alone: wren's own value, and nothing when wren has none.
    // Through `run`: a bare `output()` races the harness's reaper (ECHILD).
    let out = wren_tests::run(
        w.cmd()
            .env("WREN_T_SET", "from-wren")
            .env_remove("WREN_T_UNSET")
            .args(["exec", "-e", "WREN_T_SET", "-e", "WREN_T_UNSET", &n, "--"])
            .args(["sh", "-c", "env | grep '^WREN_T' || true"]),
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "WREN_T_SET=from-wren\n"
    );
    w.ok(&["rm", "-f", &n]);
    w.assert_clean(&n);
}

#[test]
fn loopback_is_up_in_a_containers_own_network_namespace() {
    if !require_root("loopback_is_up_in_a_containers_own_network_namespace") {
        return;
    }
    let w = Wrend::start(&[]);
    let b = rootfs();
    let n = name("lo");
    let root = b.rootfs();
    // A service on 127.0.0.1 inside the container answers the container.
    w.ok(&[
        "run",
        "-d",
        "--rootfs",
        root.to_str().unwrap(),
        &n,
        "--",
        "sh",
        "-c",
        "mkdir -p /tmp/www && echo here > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www",
    ]);
    w.wait_status(&n, "running", 10);
    let link = w.ok(&["exec", &n, "--", "ip", "-o", "link", "show", "lo"]);
    assert!(link.contains(",UP"), "{link}");
    let mut got = String::new();
    assert!(
        wait_for(5, || {
            got = String::from_utf8_lossy(
                &w.wren(&[
                    "exec",
                    &n,
                    "--",
                    "sh",
                    "-c",
                    "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 127.0.0.1 8080",
                ])
                .stdout,
            )
            .into_owned();
            got.ends_with("here\n")
        }),
        "{got:?}"
    );
    w.ok(&["rm", "-f", &n]);
    w.assert_clean(&n);
}

/// The cgroup line of `pid` in its unified or pids hierarchy (its path).
fn cgroup_of(pid: u64) -> String {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    text.lines()
        .find(|l| l.contains(":pids:") || l.starts_with("0::"))
        .and_then(|l| l.rsplit(':').next())
        .unwrap_or_default()
        .to_string()
}

/// Two wrends on one host (each its own `--root`) run a container of the
/// same name: each wrend makes its cgroups under its own parent
/// (`wren/w-HASH` of its state directory), so removing one container
/// leaves the other running. `--cgroup-parent` puts a container's cgroup
/// where asked; `inspect` shows the cgroup and the pid, ipc and uts modes.
/// A wrend's own parent goes when it exits; the test removes the one it
/// named.
#[test]
fn two_wrends_keep_same_named_containers_apart() {
    if !require_root("two_wrends_keep_same_named_containers_apart") {
        return;
    }
    let a = Wrend::start(&[]);
    let b = Wrend::start(&[]);
    let bundle = rootfs();
    let r = bundle.rootfs();
    let r = r.to_str().unwrap();
    let n = name("twin");
    a.run_detached(r, &n, &["sleep", "1000"]);
    b.run_detached(r, &n, &["sleep", "1000"]);
    let (ia, ib) = (a.inspect(&n), b.inspect(&n));
    let (ca, cb) = (
        ia["cgroup_path"].as_str().unwrap().to_string(),
        ib["cgroup_path"].as_str().unwrap().to_string(),
    );
    assert_ne!(ca, cb);
    for c in [&ca, &cb] {
        assert!(
            c.starts_with("/wren/w-") && c.ends_with(&format!("/{n}")),
            "{c}"
        );
    }
    let (pa, pb) = (ia["pid"].as_u64().unwrap(), ib["pid"].as_u64().unwrap());
    assert_eq!(cgroup_of(pa), ca);
    assert_eq!(cgroup_of(pb), cb);
    for mode in ["pid_mode", "ipc_mode", "uts_mode"] {
        assert_eq!(ia[mode], "private", "{mode}: {ia}");
    }
    // Removing a's leaves b's running, in its cgroup.
    a.ok(&["rm", "-f", &n]);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(b.inspect(&n)["status"], "running");
    assert!(wren_tests::alive(pb as i64));
    assert_eq!(cgroup_of(pb), cb);
    let parent_a = ca
        .trim_start_matches('/')
        .trim_end_matches(&format!("/{n}"))
        .to_string();
    for d in wren_tests::cgroup_parent_dirs(&parent_a) {
        assert!(!d.join(&n).exists(), "{} left", d.join(&n).display());
    }
    b.ok(&["rm", "-f", &n]);
    b.assert_clean(&n);

    // A parent of the user's.
    let parent = format!("wren-test-parent-{}", std::process::id());
    let c = name("parented");
    a.ok(&[
        "run",
        "-d",
        "--cgroup-parent",
        &format!("/{parent}/edge"),
        "--rootfs",
        r,
        &c,
        "--",
        "sleep",
        "1000",
    ]);
    let ic = a.inspect(&c);
    let want = format!("/{parent}/edge/{c}");
    assert_eq!(ic["cgroup_path"], want.as_str(), "{ic}");
    assert_eq!(cgroup_of(ic["pid"].as_u64().unwrap()), want);
    a.ok(&["rm", "-f", &c]);
    for d in wren_tests::cgroup_parent_dirs(&format!("{parent}/edge")) {
        assert!(!d.join(&c).exists(), "{} left", d.join(&c).display());
        // The parents are the user's: wren leaves them, the test does not
        // (where hierarchies are linked, a second rmdir finds none).
        let _ = std::fs::remove_dir(&d);
        let _ = std::fs::remove_dir(d.parent().unwrap());
    }
    assert!(wren_tests::cgroup_parent_dirs(&parent).is_empty());
    let bad = name("badparent");
    let e = a.fails(&[
        "run",
        "-d",
        "--cgroup-parent",
        "a/../b",
        "--rootfs",
        r,
        &bad,
        "--",
        "true",
    ]);
    assert!(e.contains("--cgroup-parent \"a/../b\""), "{e}");
    a.assert_clean(&bad);
    // Each wrend's own parent goes with it.
    let parent_b = cb
        .trim_start_matches('/')
        .trim_end_matches(&format!("/{n}"))
        .to_string();
    assert!(!wren_tests::cgroup_parent_dirs(&parent_a).is_empty());
    drop(a);
    drop(b);
    for p in [&parent_a, &parent_b] {
        let left = wren_tests::cgroup_parent_dirs(p);
        assert!(left.is_empty(), "{left:?}");
    }
}
