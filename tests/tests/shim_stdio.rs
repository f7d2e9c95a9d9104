//! The shim's stdio under a private containerd, through `ctr`: stdin piped
//! in and stdout/stderr out (separately), a terminal session with its size
//! and input, an exec with and without a terminal, an exec whose output
//! reader is late, and `--log-uri` to a file and to a logging binary.
//!
//! Needs root, containerd, ctr, busybox-static and a built shim; without them
//! each test says so and skips.

use std::time::Duration;

use wren_tests::containerd::{
    for_each_version, ok, run_detached, shim_tests_can_run, Containerd, IMAGE, RUNTIME,
};
use wren_tests::pty::run_in_pty;
use wren_tests::{run_with_input, wait_for};

#[test]
fn stdin_is_piped_in_and_stdout_and_stderr_come_out_separately() {
    if !shim_tests_can_run("stdin_is_piped_in_and_stdout_and_stderr_come_out_separately") {
        return;
    }
    let ns = format!("wrenstdin{}", std::process::id());
    for_each_version(
        "stdin_is_piped_in_and_stdout_and_stderr_come_out_separately",
        &ns,
        true,
        |c| {
            let id = "wren-stdin";
            // 200 KiB of input: more than a pipe holds, so the relays must resume.
            let mut input = Vec::new();
            for i in 0..20_000 {
                input.extend_from_slice(format!("line {i:05}\n").as_bytes());
            }
            let out = run_with_input(
                &mut c.ctr_command(&[
                    "run",
                    "--rm",
                    "--runtime",
                    RUNTIME,
                    IMAGE,
                    id,
                    "/bin/sh",
                    "-c",
                    "wc -l; echo to-stderr >&2; exit 4",
                ]),
                &input,
            );
            assert_eq!(
                out.status.code(),
                Some(4),
                "ctr run -i: {}\n{}",
                String::from_utf8_lossy(&out.stderr),
                c.log()
            );
            assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "20000");
            assert_eq!(String::from_utf8_lossy(&out.stderr), "to-stderr\n");
            c.assert_clean(id);

            // Output larger than any pipe buffer is fully delivered before the exit
            // is reported (ctr stops reading when it learns the exit).
            let id = "wren-bigout";
            let out = c.run_rm(id, &["/bin/sh", "-c", "seq 1 100000; echo done"]);
            ok(&out, "ctr run seq", c);
            let text = String::from_utf8_lossy(&out.stdout);
            assert_eq!(text.lines().count(), 100_001);
            assert!(text.ends_with("100000\ndone\n"));
            c.assert_clean(id);
        },
    );
}

#[test]
fn terminal_session_gets_size_input_and_output() {
    if !shim_tests_can_run("terminal_session_gets_size_input_and_output") {
        return;
    }
    let ns = format!("wrentty{}", std::process::id());
    for_each_version(
        "terminal_session_gets_size_input_and_output",
        &ns,
        true,
        |c| {
            let id = "wren-tty";
            // The shell reads one line from the terminal, then reports the terminal
            // size that ctr set through ResizePty and whether its stdio is a tty.
            let script =
            "read line; echo \"got:$line\"; stty size; [ -t 0 ] && [ -t 1 ] && echo is-a-tty; exit 5";
            let r = run_in_pty(
                &mut c.ctr_command(&[
                    "run",
                    "--rm",
                    "-t",
                    "--runtime",
                    RUNTIME,
                    IMAGE,
                    id,
                    "/bin/sh",
                    "-c",
                    script,
                ]),
                33,
                101,
                b"hello-tty\n",
                Duration::from_millis(1500),
                Duration::from_secs(30),
            );
            let status = r.status.unwrap_or_else(|| {
                panic!("ctr run -t timed out; output: {}\n{}", r.output, c.log())
            });
            assert_eq!(status.code(), Some(5), "{}\n{}", r.output, c.log());
            assert!(r.output.contains("got:hello-tty"), "{}", r.output);
            assert!(r.output.contains("33 101"), "{}", r.output);
            assert!(r.output.contains("is-a-tty"), "{}", r.output);
            c.assert_clean(id);
        },
    );
}

#[test]
fn exec_with_and_without_terminal() {
    if !shim_tests_can_run("exec_with_and_without_terminal") {
        return;
    }
    let ns = format!("wrenexectty{}", std::process::id());
    for_each_version("exec_with_and_without_terminal", &ns, true, |c| {
        let id = "wren-exectty";
        run_detached(c, id, &[], &["/bin/sleep", "60"]);
        // Without a terminal: stdin in, stdout and stderr out, exit code back.
        let out = run_with_input(
            &mut c.ctr_command(&[
                "task",
                "exec",
                "--exec-id",
                "plain",
                id,
                "/bin/sh",
                "-c",
                "cat; echo e >&2; [ -t 0 ] || echo not-a-tty; exit 6",
            ]),
            b"via-stdin\n",
        );
        assert_eq!(
            out.status.code(),
            Some(6),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "via-stdin\nnot-a-tty\n"
        );
        assert_eq!(String::from_utf8_lossy(&out.stderr), "e\n");

        // With a terminal.
        let r = run_in_pty(
            &mut c.ctr_command(&[
                "task",
                "exec",
                "-t",
                "--exec-id",
                "tty",
                id,
                "/bin/sh",
                "-c",
                "read x; echo \"exec-got:$x\"; stty size; [ -t 0 ] && echo exec-is-a-tty",
            ]),
            24,
            77,
            b"abc\n",
            Duration::from_millis(1500),
            Duration::from_secs(30),
        );
        let status = r
            .status
            .unwrap_or_else(|| panic!("ctr exec -t timed out: {}\n{}", r.output, c.log()));
        assert!(status.success(), "{}\n{}", r.output, c.log());
        assert!(r.output.contains("exec-got:abc"), "{}", r.output);
        assert!(r.output.contains("24 77"), "{}", r.output);
        assert!(r.output.contains("exec-is-a-tty"), "{}", r.output);

        ok(&c.ctr(&["task", "kill", "-s", "KILL", id]), "kill", c);
        assert!(wait_for(10, || String::from_utf8_lossy(
            &c.ctr(&["task", "ls"]).stdout
        )
        .contains("STOPPED")));
        ok(&c.ctr(&["task", "rm", id]), "task rm", c);
        ok(&c.ctr(&["container", "rm", id]), "container rm", c);
        c.assert_clean(id);
    });
}

/// An exec whose stdout FIFO has no reader yet when it starts and ends, as
/// when containerd's reader goroutine lags under load: its exit (Wait) is
/// held until the reader has the FIFO open, because containerd's client
/// cancels a FIFO open that has not completed once it hears of the exit
/// and the output would be lost (seen as an empty `ctr task exec` output
/// under CI load). A reader that never comes is given up after a few
/// seconds, and the shim keeps no fd on the FIFO. The calls are made
/// straight to the shim's socket: only so can the reader be held back.
#[test]
fn an_exec_exit_waits_for_its_late_fifo_reader() {
    use std::io::Read;
    use wren_protocol::protobuf::well_known_types::any::Any;
    use wren_protocol::protobuf::MessageField;
    use wren_protocol::task::{DeleteRequest, ExecProcessRequest, StartRequest, WaitRequest};
    let t = "an_exec_exit_waits_for_its_late_fifo_reader";
    if !shim_tests_can_run(t) {
        return;
    }
    let ns = format!("wrenlate{}", std::process::id());
    let c = Containerd::start(&ns, true);
    let id = "wren-late-reader";
    run_detached(&c, id, &[], &["/bin/sleep", "60"]);
    let shim = wren_tests::containerd::shim_pids_in(&ns, id);
    assert_eq!(shim.len(), 1, "{shim:?}");
    let shim_holds = |path: &std::path::Path| {
        std::fs::read_dir(format!("/proc/{}/fd", shim[0]))
            .map(|d| {
                d.flatten()
                    .any(|e| std::fs::read_link(e.path()).is_ok_and(|l| l == path))
            })
            .unwrap_or(false)
    };
    let mut client = c.shim_client(id);
    for (exec_id, reader_comes) in [("late", true), ("never", false)] {
        let fifo = c.dir.path().join(format!("{exec_id}-stdout"));
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600))
            .expect("mkfifo");
        let mut req = ExecProcessRequest::new();
        req.id = id.into();
        req.exec_id = exec_id.into();
        req.stdout = fifo.display().to_string();
        let mut spec = Any::new();
        spec.type_url = wren_protocol::type_urls::OCI_PROCESS.into();
        spec.value = serde_json::to_vec(&serde_json::json!({
            "args": ["/bin/echo", "hello"],
            "cwd": "/",
            "env": ["PATH=/bin"],
            "user": {"uid": 0, "gid": 0},
        }))
        .unwrap();
        req.spec = MessageField::some(spec);
        c.shim_call(&mut client, "Exec", &req, Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("Exec {exec_id}: {e}\n{}", c.log()));
        let mut start = StartRequest::new();
        start.id = id.into();
        start.exec_id = exec_id.into();
        c.shim_call(&mut client, "Start", &start, Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("Start {exec_id}: {e}"));
        // Wait on a connection of its own, as containerd does.
        let (tx, rx) = std::sync::mpsc::channel();
        let mut waiter = c.shim_client(id);
        waiter.set_timeout(None).unwrap();
        let wait_req = {
            let mut w = WaitRequest::new();
            w.id = id.into();
            w.exec_id = exec_id.into();
            w
        };
        let c_ref = &c;
        std::thread::scope(|s| {
            s.spawn(move || {
                let r = c_ref.shim_call(&mut waiter, "Wait", &wait_req, Duration::from_secs(60));
                let _ = tx.send(r.map(|_| ()));
            });
            // `echo` is long done; its exit waits for the reader.
            assert!(
                rx.recv_timeout(Duration::from_millis(700)).is_err(),
                "{exec_id}: Wait answered before the output's reader came"
            );
            if reader_comes {
                // A blocking open: the shim's write end is there.
                let mut reader = std::fs::File::open(&fifo).expect("open the FIFO");
                let mut out = String::new();
                reader.read_to_string(&mut out).expect("read the FIFO");
                assert_eq!(out, "hello\n", "{exec_id}");
                rx.recv_timeout(Duration::from_secs(10))
                    .expect("Wait answered once the reader came")
                    .expect("Wait");
            } else {
                rx.recv_timeout(Duration::from_secs(20))
                    .expect("Wait answered once the shim gave up on the reader")
                    .expect("Wait");
                assert!(
                    !shim_holds(&fifo),
                    "the shim still holds {}",
                    fifo.display()
                );
            }
        });
        let mut del = DeleteRequest::new();
        del.id = id.into();
        del.exec_id = exec_id.into();
        c.shim_call(&mut client, "Delete", &del, Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("Delete {exec_id}: {e}"));
        assert!(!shim_holds(&fifo), "{exec_id}: {}", fifo.display());
    }
    drop(client);
    ok(&c.ctr(&["task", "kill", "-s", "KILL", id]), "kill", &c);
    assert!(wait_for(10, || wren_tests::containerd::task_status(&c, id)
        == "STOPPED"));
    ok(&c.ctr(&["task", "rm", id]), "task rm", &c);
    ok(&c.ctr(&["container", "rm", id]), "container rm", &c);
    c.assert_clean(id);
}

/// `ctr run --rm --log-uri URI` of `cmd` in a wren container `id`.
fn run_logged(c: &Containerd, uri: &str, id: &str, cmd: &[&str]) -> std::process::Output {
    let mut args = vec![
        "run",
        "--rm",
        "--log-uri",
        uri,
        "--runtime",
        RUNTIME,
        IMAGE,
        id,
    ];
    args.extend_from_slice(cmd);
    c.ctr(&args)
}

#[test]
fn log_uri_file_and_binary() {
    if !shim_tests_can_run("log_uri_file_and_binary") {
        return;
    }
    let ns = format!("wrenlog{}", std::process::id());
    for_each_version("log_uri_file_and_binary", &ns, true, |c| {
        let dir = tempfile::tempdir_in(c.dir.path()).expect("tempdir");

        // file://: both streams appended to one file whose parents are created.
        let log = dir.path().join("logs/sub/c.log");
        std::fs::create_dir_all(dir.path().join("logs")).expect("mkdir");
        std::fs::write(dir.path().join("logs/marker"), "").expect("write");
        let uri = format!("file://{}", c.inner_path(&log).display());
        let id = "wren-logfile";
        let out = run_logged(
            c,
            &uri,
            id,
            &["/bin/sh", "-c", "echo to-out; echo to-err >&2"],
        );
        ok(&out, "ctr run --log-uri file://", c);
        let text = std::fs::read_to_string(&log).expect("log file");
        assert!(
            text.contains("to-out\n") && text.contains("to-err\n"),
            "{text:?}"
        );
        c.assert_clean(id);

        // binary://: the logger gets fds 3/4, signals readiness on fd 5, sees
        // CONTAINER_ID / CONTAINER_NAMESPACE and the query as arguments.
        let logger = dir.path().join("logger.sh");
        let out_dir = dir.path().join("binlog");
        std::fs::create_dir(&out_dir).expect("mkdir");
        std::fs::write(
            &logger,
            format!(
                "#!/bin/sh\ntrap '' TERM\nd={}\necho \"$CONTAINER_ID $CONTAINER_NAMESPACE $*\" > $d/env\n\
                 (cat <&3 > $d/out; echo out-eof >> $d/trace) &\n(cat <&4 > $d/err; echo err-eof >> $d/trace) &\n\
                 exec 3<&- 4<&-\nprintf r >&5\nexec 5>&-\nwait\necho waited >> $d/trace\ntouch $d/finished\n",
                c.inner_path(&out_dir).display()
            ),
        )
        .expect("write logger");
        std::fs::set_permissions(&logger, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("chmod");
        let uri = format!(
            "binary://{}?tag=web&level=info",
            c.inner_path(&logger).display()
        );
        let id = "wren-logbin";
        let out = run_logged(
            c,
            &uri,
            id,
            &["/bin/sh", "-c", "echo bin-out; echo bin-err >&2"],
        );
        ok(&out, "ctr run --log-uri binary://", c);
        assert!(
            wait_for(15, || out_dir.join("finished").exists()),
            "the logger did not finish: {:?}\n{}",
            std::fs::read_dir(&out_dir)
                .map(|d| d
                    .flatten()
                    .map(|e| (
                        e.file_name(),
                        std::fs::read_to_string(e.path()).unwrap_or_default()
                    ))
                    .collect::<Vec<_>>())
                .unwrap_or_default(),
            c.log()
        );
        let read = |f: &str| std::fs::read_to_string(out_dir.join(f)).unwrap_or_default();
        assert_eq!(read("out"), "bin-out\n");
        assert_eq!(read("err"), "bin-err\n");
        assert_eq!(
            read("env"),
            format!("{id} {} tag web level info\n", c.namespace)
        );
        c.assert_clean(id);

        // A log URI the shim cannot use fails Create with a clear error and
        // leaves nothing behind.
        let id = "wren-logbad";
        let out = run_logged(c, "binary:///nonexistent/logger", id, &["/bin/true"]);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("/nonexistent/logger"), "{err}");
        let _ = c.ctr(&["container", "rm", id]);
        c.assert_clean(id);
    });
}
