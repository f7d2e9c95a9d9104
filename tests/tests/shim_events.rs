//! Events and resources through the shim under a private containerd: an
//! OOM-killed container reported with `/tasks/oom` before its exit, the
//! event order containerd relies on (start before exit, exec exits before
//! the init's), `ctr t ps` naming exec processes, and `ctr t update`
//! changing a memory limit live.
//!
//! Needs root, containerd, ctr, busybox-static and a built shim; without them
//! each test says so and skips.

use std::path::Path;

use wren_tests::containerd::{ok, run_detached, shim_tests_can_run, task_status, Containerd};
use wren_tests::wait_for;

/// `ctr events` running in the background, writing to a file.
struct Events {
    child: Option<std::process::Child>,
    file: tempfile::NamedTempFile,
}

impl Events {
    fn start(c: &Containerd) -> Events {
        let file = tempfile::NamedTempFile::new().expect("tempfile");
        let mut cmd = c.ctr_command(&["events"]);
        cmd.stdin(std::process::Stdio::null())
            .stdout(file.reopen().expect("reopen"))
            .stderr(std::process::Stdio::null());
        let child = wren_tests::spawn_registered(&mut cmd);
        // Let the subscription reach containerd before anything happens.
        std::thread::sleep(std::time::Duration::from_millis(500));
        Events {
            child: Some(child),
            file,
        }
    }

    /// Event lines as (topic, json) of container `id`.
    fn of(&self, id: &str) -> Vec<(String, String)> {
        let text = std::fs::read_to_string(self.file.path()).unwrap_or_default();
        text.lines()
            .filter(|l| l.contains(&format!("\"container_id\":\"{id}\"")))
            .filter_map(|l| {
                let topic = l.split_whitespace().find(|w| w.starts_with("/tasks/"))?;
                let json = &l[l.find('{')?..];
                Some((topic.to_string(), json.to_string()))
            })
            .collect()
    }
}

impl Drop for Events {
    fn drop(&mut self) {
        if let Some(c) = self.child.take() {
            wren_tests::kill_registered(c);
        }
    }
}

fn position(events: &[(String, String)], pred: impl Fn(&(String, String)) -> bool) -> usize {
    events
        .iter()
        .position(pred)
        .unwrap_or_else(|| panic!("event missing in {events:#?}"))
}

#[test]
fn oom_kill_is_reported_before_the_exit() {
    if !shim_tests_can_run("oom_kill_is_reported_before_the_exit") {
        return;
    }
    let ns = format!("wrenoom{}", std::process::id());
    wren_tests::containerd::for_each_version(
        "oom_kill_is_reported_before_the_exit",
        &ns,
        true,
        |c| {
            let events = Events::start(c);
            let id = "wren-oom";
            // `tail` keeps its one endless "line" in memory until the 32 MiB limit
            // kills it; the shell exits with tail's 137.
            run_detached(
                c,
                id,
                &["--memory-limit", "33554432"],
                &[
                    "/bin/sh",
                    "-c",
                    "head -c 500000000 /dev/zero | tail > /dev/null; exit $?",
                ],
            );
            assert!(
                wait_for(30, || task_status(c, id) == "STOPPED"),
                "the container was not OOM-killed: {}",
                task_status(c, id)
            );
            assert!(wait_for(10, || events
                .of(id)
                .iter()
                .any(|(t, _)| t == "/tasks/exit")));
            let ev = events.of(id);
            let oom = position(&ev, |(t, _)| t == "/tasks/oom");
            let exit = position(&ev, |(t, _)| t == "/tasks/exit");
            let start = position(&ev, |(t, _)| t == "/tasks/start");
            assert!(start < oom && oom < exit, "{ev:#?}");
            assert!(ev[exit].1.contains("\"exit_status\":137"), "{ev:#?}");
            ok(&c.ctr(&["task", "rm", id]), "task rm", c);
            ok(&c.ctr(&["container", "rm", id]), "container rm", c);
            c.assert_clean(id);
        },
    );
}

#[test]
fn exec_exits_come_before_the_init_exit_and_ps_names_execs() {
    if !shim_tests_can_run("exec_exits_come_before_the_init_exit_and_ps_names_execs") {
        return;
    }
    let ns = format!("wrenorder{}", std::process::id());
    wren_tests::containerd::for_each_version(
        "exec_exits_come_before_the_init_exit_and_ps_names_execs",
        &ns,
        true,
        |c| {
            let events = Events::start(c);
            let id = "wren-order";
            run_detached(c, id, &[], &["/bin/sleep", "60"]);
            for e in ["ex1", "ex2"] {
                ok(
                    &c.ctr(&["task", "exec", "-d", "--exec-id", e, id, "/bin/sleep", "50"]),
                    "ctr task exec -d",
                    c,
                );
            }
            let ps = c.ctr(&["task", "ps", id]);
            ok(&ps, "ctr task ps", c);
            let ps = String::from_utf8_lossy(&ps.stdout);
            assert!(ps.contains("ex1") && ps.contains("ex2"), "{ps}");

            // Killing the init takes the execs with it (own pid namespace); their
            // exits must be published first.
            ok(&c.ctr(&["task", "kill", "-s", "KILL", id]), "kill", c);
            assert!(wait_for(15, || task_status(c, id) == "STOPPED"));
            assert!(wait_for(10, || events
                .of(id)
                .iter()
                .filter(|(t, _)| t == "/tasks/exit")
                .count()
                == 3));
            let ev = events.of(id);
            let exit_of = |who: &str| {
                position(&ev, |(t, j)| {
                    t == "/tasks/exit" && j.contains(&format!("\"id\":\"{who}\""))
                })
            };
            let init_exit = exit_of(id);
            assert!(
                exit_of("ex1") < init_exit && exit_of("ex2") < init_exit,
                "{ev:#?}"
            );
            for e in ["ex1", "ex2"] {
                let started = position(&ev, |(t, j)| {
                    t == "/tasks/exec-started" && j.contains(&format!("\"exec_id\":\"{e}\""))
                });
                assert!(started < exit_of(e), "{ev:#?}");
            }
            assert!(
                position(&ev, |(t, _)| t == "/tasks/create")
                    < position(&ev, |(t, _)| t == "/tasks/start")
            );
            ok(&c.ctr(&["task", "rm", id]), "task rm", c);
            ok(&c.ctr(&["container", "rm", id]), "container rm", c);
            c.assert_clean(id);
        },
    );
}

#[test]
fn update_changes_the_memory_limit_live() {
    if !shim_tests_can_run("update_changes_the_memory_limit_live") {
        return;
    }
    let ns = format!("wrenupd{}", std::process::id());
    wren_tests::containerd::for_each_version(
        "update_changes_the_memory_limit_live",
        &ns,
        true,
        |c| {
            let id = "wren-update";
            run_detached(
                c,
                id,
                &["--memory-limit", "104857600"],
                &["/bin/sleep", "60"],
            );
            // Wherever the memory controller is (v1 here, v2 elsewhere).
            let ns = &c.namespace;
            let v1 = Path::new("/sys/fs/cgroup/memory").join(ns).join(id);
            let v2 = Path::new("/sys/fs/cgroup").join(ns).join(id);
            let (dir, file) = if v1.exists() {
                (v1, "memory.limit_in_bytes")
            } else {
                (v2, "memory.max")
            };
            let limit = || {
                std::fs::read_to_string(dir.join(file))
                    .unwrap_or_default()
                    .trim()
                    .to_string()
            };
            assert_eq!(limit(), "104857600");
            {
                // ctr has no `task update`: make the Update call containerd
                // makes for CRI's UpdateContainerResources, straight to the
                // shim's socket.
                let mut client = c.shim_client(id);
                let mut req = wren_protocol::task::UpdateTaskRequest::new();
                req.id = id.to_string();
                let mut any = wren_protocol::protobuf::well_known_types::any::Any::new();
                any.type_url = wren_protocol::type_urls::OCI_LINUX_RESOURCES.to_string();
                any.value = br#"{"memory":{"limit":209715200}}"#.to_vec();
                req.resources = wren_protocol::protobuf::MessageField::some(any);
                c.shim_call(
                    &mut client,
                    "Update",
                    &req,
                    std::time::Duration::from_secs(5),
                )
                .expect("Update");
            }
            assert_eq!(limit(), "209715200");
            ok(&c.ctr(&["task", "kill", "-s", "KILL", id]), "kill", c);
            assert!(wait_for(15, || task_status(c, id) == "STOPPED"));
            ok(&c.ctr(&["task", "rm", id]), "task rm", c);
            ok(&c.ctr(&["container", "rm", id]), "container rm", c);
            c.assert_clean(id);
        },
    );
}
