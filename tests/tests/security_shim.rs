//! Security regression suite, part 3: the same attacks through the shim
//! under each containerd of the matrix (1.6, 1.7, 2.1; `ctr`), plus the shim's own socket
//! (containerd CVE-2020-15257 class): not abstract, 0600 in a 0700
//! directory, peers with another uid refused, unreachable from a
//! host-network container; and wrend's API socket likewise.
//! docs/SECURITY.md maps attacks to tests.
//!
//! Needs root, containerd, ctr and a built shim; skips visibly otherwise.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

use protobuf::Message;
use wren_protocol::ttrpc_wire::Request;
use wren_tests::containerd::{
    for_each_version, ok, run_detached, shim_binary, shim_pids_in, shim_tests_can_run, task_pid,
    Containerd, IMAGE, RUNTIME,
};
use wren_tests::probe::{
    all_ns_kinds, ns_links, ptrace_accessible, sha256, status_field, Sampler, EXE_WATCHER,
};
use wren_tests::{text, wait_for};

fn exec(c: &Containerd, id: &str, exec_id: &str, flags: &[&str], args: &[&str]) -> Output {
    let mut all = vec!["task", "exec", "--exec-id", exec_id];
    all.extend_from_slice(flags);
    all.push(id);
    all.extend_from_slice(args);
    c.ctr(&all)
}

fn remove(c: &Containerd, id: &str) {
    let _ = c.ctr(&["task", "kill", "-s", "KILL", id]);
    wait_for(10, || {
        text(&c.ctr(&["task", "ls"]).stdout)
            .lines()
            .all(|l| !l.starts_with(&format!("{id} ")) || l.contains("STOPPED"))
    });
    let _ = c.ctr(&["task", "rm", "-f", id]);
    let _ = c.ctr(&["container", "rm", id]);
    c.assert_clean(id);
}

#[test]
fn shim_cve_2019_5736_runtime_exe_cannot_be_rewritten_during_create_and_exec() {
    if !shim_tests_can_run(
        "shim_cve_2019_5736_runtime_exe_cannot_be_rewritten_during_create_and_exec",
    ) {
        return;
    }
    let ns = format!("wsec5736{}", std::process::id());
    for_each_version(
        "shim_cve_2019_5736_runtime_exe_cannot_be_rewritten_during_create_and_exec",
        &ns,
        true,
        |c| {
            let id = "sec-5736";
            run_detached(c, id, &[], &["/bin/sh", "-c", EXE_WATCHER]);
            // The shim binary this containerd runs: the host's, or the
            // copy in the tree (`exe` of its processes reads as the path
            // containerd sees).
            let shim = match c.tree {
                Some(_) => c.dir.path().join("bin/containerd-shim-wren-v2"),
                None => shim_binary().unwrap(),
            };
            let shim_seen = c.inner_path(&shim);
            let before = sha256(&shim);
            // The init's pid as containerd sees it (for --with-ns) and as we do.
            let init_inner = task_pid(c, id);
            let init = c.host_pid(init_inner);
            assert!(init > 0, "no task {id}");
            assert_eq!(ptrace_accessible(init), Some(true), "calibration");
            let pidns = std::fs::read_link(format!("/proc/{init}/ns/pid"))
                .unwrap()
                .display()
                .to_string();
            ok(
                &exec(
                    c,
                    id,
                    "mk",
                    &[],
                    &[
                        "/bin/sh",
                        "-c",
                        "printf '#!/proc/self/exe\\n' > /tmp/evil; chmod 755 /tmp/evil",
                    ],
                ),
                "write payload",
                c,
            );
            let sampler = Sampler::start(pidns, "wren:");
            // During create: containers whose init joins A's pid namespace.
            let with_ns = format!("pid:/proc/{init_inner}/ns/pid");
            for i in 0..5 {
                let bid = format!("sec-5736-b{i}");
                run_detached(c, &bid, &["--with-ns", &with_ns], &["/bin/true"]);
                remove(c, &bid);
            }
            for i in 0..25 {
                let _ = exec(c, id, &format!("evil{i}"), &[], &["/tmp/evil"]);
                ok(
                    &exec(c, id, &format!("t{i}"), &[], &["/bin/true"]),
                    "exec true",
                    c,
                );
            }
            let seen = sampler.finish();
            ok(
                &exec(c, id, "stop", &[], &["/bin/touch", "/tmp/stop"]),
                "stop",
                c,
            );
            assert!(wait_for(20, || exec(
                c,
                id,
                "chk",
                &[],
                &["/bin/test", "-e", "/tmp/stopped"]
            )
            .status
            .success()));
            let hits = ok(
                &exec(c, id, "hits", &[], &["/bin/cat", "/tmp/hits"]),
                "hits",
                c,
            );
            let watched = text(&exec(c, id, "seen", &[], &["/bin/cat", "/tmp/seen"]).stdout);
            assert_eq!(
                hits, "",
                "a runtime binary was opened for writing from the container; it saw:\n{watched}"
            );
            assert_eq!(sha256(&shim), before, "the shim binary changed");
            for (pid, comm, dumpable, exe) in &seen {
                assert_eq!(
                    *dumpable,
                    Some(false),
                    "{pid} ({comm}) visible in the container is dumpable"
                );
                assert!(
                    std::path::Path::new(exe) != shim && std::path::Path::new(exe) != shim_seen,
                    "{pid} ({comm}) runs the host shim binary"
                );
            }
            eprintln!(
                "sampled {} runtime-owned processes in the container",
                seen.len()
            );
            remove(c, id);
        },
    );
}

#[test]
fn shim_cve_2024_21626_proc_self_fd_cwd_in_create_and_exec() {
    if !shim_tests_can_run("shim_cve_2024_21626_proc_self_fd_cwd_in_create_and_exec") {
        return;
    }
    let ns = format!("wsec21626{}", std::process::id());
    for_each_version(
        "shim_cve_2024_21626_proc_self_fd_cwd_in_create_and_exec",
        &ns,
        true,
        |c| {
            let probe = [
                "/bin/sh",
                "-c",
                "cd ../../../../../../../..; stat -c %i /; stat -c %i .",
            ];
            let mut escaped = Vec::new();
            for n in 3..64 {
                let cwd = format!("/proc/self/fd/{n}");
                let id = format!("sec-cwd-{n}");
                let mut args = vec![
                    "run",
                    "--rm",
                    "--runtime",
                    RUNTIME,
                    "--cwd",
                    &cwd,
                    IMAGE,
                    &id,
                ];
                args.extend_from_slice(&probe);
                let out = c.ctr(&args);
                let o = text(&out.stdout);
                let l: Vec<&str> = o.lines().collect();
                if out.status.success() && (l.len() != 2 || l[0] != l[1]) {
                    escaped.push(("create", n, o));
                }
                let _ = c.ctr(&["task", "rm", "-f", &id]);
                let _ = c.ctr(&["container", "rm", &id]);
                c.assert_clean(&id);
            }
            let id = "sec-cwd-exec";
            run_detached(c, id, &[], &["/bin/sleep", "1000"]);
            for n in 3..64 {
                let cwd = format!("/proc/self/fd/{n}");
                let out = exec(c, id, &format!("e{n}"), &["--cwd", &cwd], &probe);
                let o = text(&out.stdout);
                let l: Vec<&str> = o.lines().collect();
                if out.status.success() && (l.len() != 2 || l[0] != l[1]) {
                    escaped.push(("exec", n, o));
                }
            }
            assert!(
                escaped.is_empty(),
                "a /proc/self/fd cwd escaped: {escaped:?}"
            );
            remove(c, id);
        },
    );
}

/// The shim's open fd count.
fn fd_count(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[test]
fn shim_fd_allow_lists_and_a_thousand_execs_leak_nothing() {
    if !shim_tests_can_run("shim_fd_allow_lists_and_a_thousand_execs_leak_nothing") {
        return;
    }
    let ns = format!("wsecfd{}", std::process::id());
    for_each_version(
        "shim_fd_allow_lists_and_a_thousand_execs_leak_nothing",
        &ns,
        true,
        |c| {
            let id = "sec-fds";
            run_detached(c, id, &[], &["/bin/sleep", "1000"]);
            let init = c.host_pid(task_pid(c, id));
            assert!(init > 0, "no task {id}");
            let got: Vec<i32> = wren_tests::probe::fds(init)
                .into_iter()
                .map(|f| f.0)
                .collect();
            assert_eq!(
                got,
                vec![0, 1, 2],
                "init fds: {:?}",
                wren_tests::probe::fds(init)
            );
            // An exec'd process lists its own fds (ls looks at the shell's).
            let out = ok(
                &exec(c, id, "ls", &[], &["/bin/sh", "-c", "ls /proc/$$/fd; true"]),
                "exec ls",
                c,
            );
            assert_eq!(out, "0\n1\n2\n", "exec'd process fds");
            let shim = shim_pids_in(&c.namespace, id)[0];
            for i in 0..5 {
                ok(
                    &exec(c, id, &format!("w{i}"), &[], &["/bin/true"]),
                    "warm-up",
                    c,
                );
            }
            let before = fd_count(shim);
            let threads = 2;
            let per = 500;
            std::thread::scope(|s| {
                for t in 0..threads {
                    let c: &Containerd = c;
                    s.spawn(move || {
                        for i in 0..per {
                            let out = exec(c, id, &format!("x{t}-{i}"), &[], &["/bin/true"]);
                            assert!(out.status.success(), "exec {t}-{i}: {}", text(&out.stderr));
                        }
                    });
                }
            });
            assert!(
                wait_for(10, || fd_count(shim) <= before),
                "shim fds grew from {before} to {} over {} execs: {:?}",
                fd_count(shim),
                threads * per,
                wren_tests::probe::fds(shim as i64)
            );
            eprintln!(
                "shim fds: {before} before, {} after {} execs",
                fd_count(shim),
                threads * per
            );
            remove(c, id);
        },
    );
}

#[test]
fn shim_init_and_exec_security_state_and_namespaces_match() {
    if !shim_tests_can_run("shim_init_and_exec_security_state_and_namespaces_match") {
        return;
    }
    let ns = format!("wsecstate{}", std::process::id());
    for_each_version(
        "shim_init_and_exec_security_state_and_namespaces_match",
        &ns,
        true,
        |c| {
            let id = "sec-state";
            run_detached(c, id, &["--seccomp"], &["/bin/sleep", "1000"]);
            let init = c.host_pid(task_pid(c, id));
            assert!(init > 0, "no task {id}");
            let _ = exec(c, id, "bg", &["--detach"], &["/bin/sleep", "1000"]);
            let mut execp = None;
            assert!(
                wait_for(10, || {
                    execp = wren_tests::probe::procs_in_pidns(
                        &std::fs::read_link(format!("/proc/{init}/ns/pid"))
                            .unwrap()
                            .display()
                            .to_string(),
                        &[init],
                    )
                    .into_iter()
                    .find(|(_, comm)| comm == "sleep")
                    .map(|p| p.0);
                    execp.is_some()
                }),
                "the exec'd sleep did not appear"
            );
            let execp = execp.unwrap();
            for k in [
                "CapInh",
                "CapPrm",
                "CapEff",
                "CapBnd",
                "CapAmb",
                "NoNewPrivs",
                "Seccomp",
                "Seccomp_filters",
            ] {
                assert_eq!(
                    status_field(init, k),
                    status_field(execp, k),
                    "{k} differs between init and exec"
                );
            }
            assert_eq!(status_field(init, "CapInh").unwrap(), "0000000000000000");
            assert_eq!(status_field(init, "CapAmb").unwrap(), "0000000000000000");
            assert_eq!(status_field(init, "NoNewPrivs").unwrap(), "1");
            assert_eq!(status_field(init, "Seccomp").unwrap(), "2");
            let kinds = all_ns_kinds();
            let k: Vec<&str> = kinds.iter().map(String::as_str).collect();
            assert_eq!(
                ns_links(init, &k),
                ns_links(execp, &k),
                "exec is in other namespaces"
            );
            let cg = |p: i64| std::fs::read_to_string(format!("/proc/{p}/cgroup")).unwrap();
            assert_eq!(cg(init), cg(execp), "exec is in another cgroup");
            remove(c, id);
        },
    );
}

#[test]
fn shim_large_numeric_users_in_exec_never_run_as_root() {
    if !shim_tests_can_run("shim_large_numeric_users_in_exec_never_run_as_root") {
        return;
    }
    let ns = format!("wsecuid{}", std::process::id());
    for_each_version(
        "shim_large_numeric_users_in_exec_never_run_as_root",
        &ns,
        true,
        |c| {
            let id = "sec-uid";
            run_detached(c, id, &[], &["/bin/sleep", "1000"]);
            for user in [
                "2147483648",
                "4294967294",
                "4294967295",
                "4294967295:4294967295",
                "1000:4294967295",
            ] {
                let out = exec(
                    c,
                    id,
                    "u",
                    &["--user", user],
                    &["/bin/grep", "-E", "^(Uid|Gid):", "/proc/self/status"],
                );
                if !out.status.success() {
                    continue;
                }
                let (u, g) = user.split_once(':').unwrap_or((user, "0"));
                assert_eq!(
                    text(&out.stdout),
                    format!("Uid:\t{u}\t{u}\t{u}\t{u}\nGid:\t{g}\t{g}\t{g}\t{g}\n"),
                    "--user {user}"
                );
            }
            remove(c, id);
        },
    );
}

/// A ttrpc request frame for `Task.Connect`.
fn connect_frame(id: &str) -> Vec<u8> {
    let mut req = wren_protocol::task::ConnectRequest::new();
    req.id = id.to_string();
    let mut r = Request::new();
    r.service = "containerd.task.v2.Task".into();
    r.method = "Connect".into();
    r.payload = req.write_to_bytes().unwrap();
    r.timeout_nano = 5_000_000_000;
    let payload = r.write_to_bytes().unwrap();
    let mut f = Vec::new();
    f.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    f.extend_from_slice(&1u32.to_be_bytes());
    f.push(1); // request
    f.push(0);
    f.extend_from_slice(&payload);
    f
}

/// Connects to `sock`, sends a Connect request, returns the reply bytes
/// (empty when the shim closed the connection without answering).
fn ask(stream: &mut UnixStream, id: &str) -> Vec<u8> {
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let _ = stream.write_all(&connect_frame(id));
    let mut buf = vec![0u8; 4096];
    match stream.read(&mut buf) {
        Ok(n) => buf[..n].to_vec(),
        Err(_) => Vec::new(),
    }
}

/// In a fresh thread, switch this thread's euid to `uid` (fsuid stays 0 so
/// the 0600 socket and 0700 directory still let us through: only the
/// SO_PEERCRED check can refuse), connect, and ask.
fn ask_as_uid(sock: PathBuf, id: String, uid: u32) -> Vec<u8> {
    std::thread::spawn(move || {
        // SAFETY: raw syscalls change only this thread's credentials
        // (glibc's wrappers would change every thread's).
        unsafe {
            assert_eq!(libc::syscall(libc::SYS_setresuid, 0, uid, 0), 0);
            libc::syscall(libc::SYS_setfsuid, 0);
        }
        let mut s = UnixStream::connect(&sock).expect("connect with fsuid 0");
        ask(&mut s, &id)
    })
    .join()
    .unwrap()
}

#[test]
fn shim_socket_is_private_refuses_other_uids_and_is_out_of_reach_of_host_network_containers() {
    if !shim_tests_can_run(
        "shim_socket_is_private_refuses_other_uids_and_is_out_of_reach_of_host_network_containers",
    ) {
        return;
    }
    let ns = format!("wsecsock{}", std::process::id());
    for_each_version(
        "shim_socket_is_private_refuses_other_uids_and_is_out_of_reach_of_host_network_containers",
        &ns,
        true,
        |c| {
            let id = "sec-sock";
            run_detached(c, id, &["--net-host"], &["/bin/sleep", "1000"]);
            let shim = shim_pids_in(&c.namespace, id)[0];
            let address = std::fs::read_to_string(
                c.dir
                    .path()
                    .join("state/io.containerd.runtime.v2.task")
                    .join(&c.namespace)
                    .join(id)
                    .join("address"),
            )
            .expect("the shim's address file");
            // The path as containerd and the containers see it, and as we do.
            let sock_seen = PathBuf::from(
                address
                    .trim()
                    .strip_prefix("unix://")
                    .expect("a unix:// address"),
            );
            let sock = c.host_path(&sock_seen);
            let meta = std::fs::metadata(&sock).unwrap();
            assert_eq!(meta.permissions().mode() & 0o777, 0o600, "socket mode");
            let dir = std::fs::metadata(sock.parent().unwrap()).unwrap();
            assert_eq!(
                dir.permissions().mode() & 0o777,
                0o700,
                "socket directory mode"
            );
            // None of the shim's sockets is abstract.
            no_abstract_socket(shim as i64, "the shim");
            // Connect through a held fd of its directory: inside a tree the
            // full path is longer than a socket address may be.
            let dir_handle = std::fs::File::open(sock.parent().unwrap()).unwrap();
            let short = PathBuf::from(format!(
                "/proc/self/fd/{}/{}",
                std::os::fd::AsRawFd::as_raw_fd(&dir_handle),
                sock.file_name().unwrap().to_string_lossy()
            ));
            // Root (same uid) gets an answer: the probe works.
            let mut s = UnixStream::connect(&short).unwrap();
            assert!(
                !ask(&mut s, id).is_empty(),
                "calibration: the shim answers its own uid"
            );
            // Another uid gets nothing.
            let reply = ask_as_uid(short.clone(), id.to_string(), 1000);
            assert!(reply.is_empty(), "the shim answered uid 1000: {reply:?}");
            // A root process in a host-network container sees the socket's name in
            // /proc/net/unix, but cannot reach it: no abstract name, and the path
            // is not in its mount namespace.
            let probe = format!(
            "grep -c '{}' /proc/net/unix; grep -c ' @.*{}' /proc/net/unix; test -e {} && echo reachable || echo unreachable",
            sock.file_name().unwrap().to_string_lossy(),
            sock.file_name().unwrap().to_string_lossy(),
            sock_seen.display()
        );
            let out = ok(
                &exec(c, id, "net", &[], &["/bin/sh", "-c", &probe]),
                "probe from the container",
                c,
            );
            let l: Vec<&str> = out.lines().collect();
            assert_eq!(l.len(), 3, "{out}");
            assert_ne!(
                l[0], "0",
                "calibration: the container shares the host network namespace: {out}"
            );
            assert_eq!(l[1], "0", "an abstract shim socket is visible: {out}");
            assert_eq!(l[2], "unreachable", "{out}");
            remove(c, id);
        },
    );
}

/// Asserts that none of `pid`'s sockets is bound to an abstract name
/// (/proc/net/unix shows those with a leading '@').
fn no_abstract_socket(pid: i64, who: &str) {
    let inodes: Vec<String> = wren_tests::probe::fds(pid)
        .into_iter()
        .filter_map(|(_, t)| {
            t.strip_prefix("socket:[")?
                .strip_suffix(']')
                .map(String::from)
        })
        .collect();
    let unix = std::fs::read_to_string("/proc/net/unix").unwrap();
    for l in unix.lines().skip(1) {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() >= 8 && inodes.iter().any(|i| i == f[6]) {
            assert!(
                !f[7].starts_with('@'),
                "{who} listens on an abstract socket: {l}"
            );
        }
    }
}

#[test]
fn wrend_socket_is_private_and_refuses_other_uids() {
    if !wren_tests::require_root("wrend_socket_is_private_and_refuses_other_uids") {
        return;
    }
    let w = wren_tests::wrend::Wrend::start(&[]);
    let sock = w.socket();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&sock), 0o600, "wrend socket mode");
    assert_eq!(
        mode(sock.parent().unwrap()),
        0o700,
        "wrend socket directory mode"
    );
    no_abstract_socket(i64::from(w.pid()), "wrend");
    // Its own uid gets an answer (an error status for a service it does
    // not serve is still an answer); another uid gets nothing.
    let mut s = UnixStream::connect(&sock).unwrap();
    assert!(
        !ask(&mut s, "x").is_empty(),
        "calibration: wrend answers its own uid"
    );
    let reply = ask_as_uid(sock.clone(), "x".into(), 1000);
    assert!(reply.is_empty(), "wrend answered uid 1000: {reply:?}");
}
