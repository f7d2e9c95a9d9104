//! Exec (reserve an exec id, keep its process spec, `/tasks/exec-added`) and
//! Start of an exec (its stdio, the runtime's exec, `/tasks/exec-started`).
//!
//! Runs in the daemon, on the epoll loop thread.

use protobuf::well_known_types::empty::Empty;
use wren_protocol::events::{TaskExecAdded, TaskExecStarted};
use wren_protocol::task::{ExecProcessRequest, StartRequest, StartResponse};
use wren_protocol::task_types::Status;
use wren_runtime::{ConsoleMode, ExecOptions};

use super::container_ops::ContainerOps;
use super::error::TaskError;
use super::record::{self, Process};
use super::{pidfd_signal, TaskService};
use crate::stdio::{uri, Owner, ProcessIo};

/// The exec asked for a terminal its process spec does not have.
#[derive(Debug, thiserror::Error)]
#[error("terminal requested but the process spec has terminal=false")]
struct NoConsole;

impl<O: ContainerOps> TaskService<O> {
    pub(super) fn exec(&mut self, req: ExecProcessRequest) -> Result<Empty, TaskError> {
        let c = self.container(&req.id)?;
        if c.execs.contains_key(&req.exec_id) {
            return Err(TaskError::AlreadyExists(format!("exec {}", req.exec_id)));
        }
        if c.init.status == Status::STOPPED {
            return Err(TaskError::FailedPrecondition(
                "cannot exec in a stopped container".into(),
            ));
        }
        let spec = req
            .spec
            .as_ref()
            .map(|a| a.value.clone())
            .unwrap_or_default();
        c.execs.insert(
            req.exec_id.clone(),
            Process {
                status: Status::CREATED,
                stdin: req.stdin,
                stdout: req.stdout,
                stderr: req.stderr,
                terminal: req.terminal,
                spec,
                ..Process::default()
            },
        );
        let mut ev = TaskExecAdded::new();
        ev.container_id = req.id;
        ev.exec_id = req.exec_id;
        self.publisher.publish("/tasks/exec-added", &ev);
        Ok(Empty::new())
    }

    pub(super) fn start_exec(&mut self, req: StartRequest) -> Result<StartResponse, TaskError> {
        let target = format!("{} in {}", req.exec_id, req.id);
        let c = self.container(&req.id)?;
        if c.init.status == Status::STOPPED {
            return Err(TaskError::FailedPrecondition(
                "cannot start an exec in a stopped container".into(),
            ));
        }
        if c.init.pending.is_some() {
            return Err(TaskError::FailedPrecondition(
                "cannot start an exec: the container's init has exited".into(),
            ));
        }
        let (io_uid, io_gid) = (c.io_uid, c.io_gid);
        let p = c.process(&req.exec_id)?;
        if p.status != Status::CREATED {
            return Err(TaskError::State(format!(
                "cannot start a process in state {:?}",
                p.status
            )));
        }
        let uris = uri::parse(&p.stdin, &p.stdout, &p.stderr)
            .map_err(TaskError::invalid("exec", &target))?;
        let process: oci_spec::runtime::Process =
            serde_json::from_slice(&p.spec).map_err(TaskError::invalid("exec", &target))?;
        let terminal = p.terminal;
        p.spec = Vec::new();
        let owner = Owner {
            container_id: &req.id,
            namespace: &self.namespace,
            io_uid,
            io_gid,
        };
        let (fds, mut io) = ProcessIo::setup(&mut self.relays, uris, terminal, &owner)
            .map_err(TaskError::invalid("exec", &target))?;
        let c = record::find(&mut self.containers, &req.id)?;
        let started = self
            .ops
            .exec(
                c.rt(&req.id)?,
                ExecOptions {
                    process,
                    stdio: fds.into(),
                    console: ConsoleMode::Return,
                    preserve_fds: 0,
                    pid_file: None,
                    // containerd's runc shim passes neither.
                    ignore_paused: false,
                    sub_cgroup: None,
                },
            )
            .map_err(TaskError::ops("exec", &target));
        let started = match started {
            Ok(s) => s,
            Err(e) => {
                self.release_io(io);
                return Err(e);
            }
        };
        if terminal {
            let attached = match started.console {
                Some(master) => io
                    .attach_console(&mut self.relays, master)
                    .map_err(TaskError::invalid("exec", &target)),
                None => Err(TaskError::invalid("exec", &target)(NoConsole)),
            };
            if let Err(e) = attached {
                // The process runs without a console we can serve: stop it.
                let _ = pidfd_signal(&started.pidfd, libc::SIGKILL as u32);
                log::warn!("{}", wren_runtime::error::chain(&e));
            }
        }
        let pid = started.pid as u32;
        let pidfd = self.watch_pidfd(&req.id, pid, started.pidfd);
        let p = self.container(&req.id)?.process(&req.exec_id)?;
        p.pid = pid;
        p.status = Status::RUNNING;
        p.pidfd = Some(pidfd);
        p.io = Some(io);
        let mut ev = TaskExecStarted::new();
        ev.container_id = req.id;
        ev.exec_id = req.exec_id;
        ev.pid = pid;
        self.publisher.publish("/tasks/exec-started", &ev);
        let mut r = StartResponse::new();
        r.pid = pid;
        Ok(r)
    }
}
