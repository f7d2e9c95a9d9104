//! The Task service: decodes each `containerd.task.v2.Task` / `v3.Task` call
//! (same messages, both names served), keeps the state of every container
//! and process this shim owns, calls the runtime through
//! [`ContainerOps`](super::container_ops::ContainerOps), and publishes events.
//! Every RPC is present; Checkpoint answers Unimplemented explicitly.
//!
//! Runs in the daemon, on the epoll loop thread, which owns all of this state.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::time::SystemTime;

use protobuf::well_known_types::empty::Empty;
use protobuf::well_known_types::timestamp::Timestamp;
use protobuf::{Message, MessageField};
use wren_protocol::events::{
    TaskCreate, TaskDelete, TaskExecAdded, TaskExecStarted, TaskExit, TaskPaused, TaskResumed,
    TaskStart,
};
use wren_protocol::task::*;
use wren_protocol::task_types::{ProcessInfo, Status};

use super::container_ops::{ContainerOps, CreateRequest};
use super::error::TaskError;
use crate::events::publisher::{timestamp, Publisher};
use crate::options::ShimOptions;
use crate::ttrpc::server::Responder;

/// One process (init or exec) as the shim sees it.
#[derive(Default)]
struct Process {
    pid: u32,
    status: Status,
    stdin: String,
    stdout: String,
    stderr: String,
    terminal: bool,
    exit: Option<(u32, Timestamp)>,
    /// Parked Wait calls, answered when the process exits.
    waiters: Vec<Responder>,
    /// The shim's own pidfd of the process, for signals (execs).
    pidfd: Option<OwnedFd>,
    /// JSON `specs.Process` of an exec not started yet.
    spec: Vec<u8>,
}

/// One container in this shim.
struct Container {
    bundle: PathBuf,
    init: Process,
    execs: HashMap<String, Process>,
    /// Did Create mount containerd's rootfs mounts on `<bundle>/rootfs`?
    mounted_rootfs: bool,
    /// Without a pid namespace of its own, the container's other processes
    /// are killed when the init exits.
    own_pid_namespace: bool,
}

impl Container {
    fn process(&mut self, exec_id: &str) -> Result<&mut Process, TaskError> {
        if exec_id.is_empty() {
            Ok(&mut self.init)
        } else {
            self.execs
                .get_mut(exec_id)
                .ok_or_else(|| TaskError::NotFound(format!("exec {exec_id}")))
        }
    }
}

/// A process pidfd for the loop to watch: container id, exec id (empty for
/// the init), pid, pidfd.
pub struct NewPidfd {
    pub id: String,
    pub exec_id: String,
    pub pid: u32,
    pub pidfd: OwnedFd,
}

fn pidfd_signal(fd: &OwnedFd, signal: u32) -> std::io::Result<()> {
    // SAFETY: pidfd_send_signal(2) with a pidfd we own and no siginfo.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            fd.as_raw_fd(),
            signal as libc::c_int,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// The service state.
pub struct TaskService {
    containers: HashMap<String, Container>,
    ops: Box<dyn ContainerOps>,
    publisher: Publisher,
    state_root: PathBuf,
    shutdown: bool,
    /// pidfds of inits created since the loop last looked, to watch for exit.
    new_pidfds: Vec<NewPidfd>,
}

fn encode<M: Message>(m: M) -> Result<Vec<u8>, TaskError> {
    Ok(m.write_to_bytes().unwrap_or_default())
}

fn now() -> Timestamp {
    timestamp(SystemTime::now())
}

impl TaskService {
    pub fn new(ops: Box<dyn ContainerOps>, publisher: Publisher, state_root: PathBuf) -> Self {
        Self {
            containers: HashMap::new(),
            ops,
            publisher,
            state_root,
            shutdown: false,
            new_pidfds: Vec::new(),
        }
    }

    /// True once Shutdown was called with no container left.
    pub fn shutdown_requested(&self) -> bool {
        self.shutdown
    }

    /// pidfds of newly created inits; the loop watches them and calls
    /// [`Self::init_exited`] when one becomes readable.
    pub fn take_new_pidfds(&mut self) -> Vec<NewPidfd> {
        std::mem::take(&mut self.new_pidfds)
    }

    /// The publisher, for flushing at exit.
    pub fn publisher(&self) -> &Publisher {
        &self.publisher
    }

    /// Handles one call to `method`. Unknown methods get Unimplemented, never
    /// ttrpc-rust's NOT_FOUND default.
    pub fn dispatch(&mut self, method: &str, payload: &[u8], responder: Responder) {
        macro_rules! call {
            ($ty:ty, $handler:ident) => {
                match <$ty>::parse_from_bytes(payload) {
                    Ok(req) => self.$handler(req).and_then(encode),
                    Err(source) => Err(TaskError::Decode {
                        method: method.to_string(),
                        source,
                    }),
                }
            };
        }
        if method == "Wait" {
            match WaitRequest::parse_from_bytes(payload) {
                Ok(req) => {
                    if let Some((r, result)) = self.wait(req, responder) {
                        r.send(result.and_then(encode).map_err(|e| e.to_status()));
                    }
                }
                Err(source) => responder.send(Err(TaskError::Decode {
                    method: method.into(),
                    source,
                }
                .to_status())),
            }
            return;
        }
        let result = match method {
            "State" => call!(StateRequest, state),
            "Create" => call!(CreateTaskRequest, create),
            "Start" => call!(StartRequest, start),
            "Delete" => call!(DeleteRequest, delete),
            "Pids" => call!(PidsRequest, pids),
            "Pause" => call!(PauseRequest, pause),
            "Resume" => call!(ResumeRequest, resume),
            "Checkpoint" => call!(CheckpointTaskRequest, checkpoint),
            "Kill" => call!(KillRequest, kill),
            "Exec" => call!(ExecProcessRequest, exec),
            "ResizePty" => call!(ResizePtyRequest, resize_pty),
            "CloseIO" => call!(CloseIORequest, close_io),
            "Update" => call!(UpdateTaskRequest, update),
            "Stats" => call!(StatsRequest, stats),
            "Connect" => call!(ConnectRequest, connect),
            "Shutdown" => call!(ShutdownRequest, shutdown),
            other => Err(TaskError::Unimplemented(other.to_string())),
        };
        if let Err(e) = &result {
            log::warn!("{method}: {}", super::error::chain(e));
        }
        responder.send(result.map_err(|e| e.to_status()));
    }

    fn container(&mut self, id: &str) -> Result<&mut Container, TaskError> {
        self.containers
            .get_mut(id)
            .ok_or_else(|| TaskError::NotFound(format!("container {id}")))
    }

    fn state(&mut self, req: StateRequest) -> Result<StateResponse, TaskError> {
        let c = self.container(&req.id)?;
        let bundle = c.bundle.display().to_string();
        let p = c.process(&req.exec_id)?;
        let mut r = StateResponse::new();
        r.id = req.id.clone();
        r.exec_id = req.exec_id.clone();
        r.bundle = bundle;
        r.pid = p.pid;
        r.status = p.status.into();
        r.stdin = p.stdin.clone();
        r.stdout = p.stdout.clone();
        r.stderr = p.stderr.clone();
        r.terminal = p.terminal;
        if let Some((code, at)) = &p.exit {
            r.exit_status = *code;
            r.exited_at = MessageField::some(at.clone());
        }
        Ok(r)
    }

    fn create(&mut self, req: CreateTaskRequest) -> Result<CreateTaskResponse, TaskError> {
        if self.containers.contains_key(&req.id) {
            return Err(TaskError::AlreadyExists(format!("container {}", req.id)));
        }
        let options = match req.options.as_ref() {
            Some(any) => ShimOptions::from_any(any)
                .map_err(|e| TaskError::InvalidArgument(super::error::chain(&e)))?
                .unwrap_or_default(),
            None => ShimOptions::default(),
        };
        let bundle = PathBuf::from(&req.bundle);
        let state_root = if options.root.is_empty() {
            self.state_root.clone()
        } else {
            PathBuf::from(&options.root)
        };
        if let Ok(json) = serde_json::to_vec(&options) {
            if let Err(e) = std::fs::write(bundle.join("options.json"), json) {
                log::warn!("create {}: write options.json: {e}", req.id);
            }
        }
        if req.terminal {
            return Err(TaskError::Unimplemented(
                "terminal stdio (the console is not copied to containerd yet)".into(),
            ));
        }
        let io = crate::stdio::open_all(&req.stdin, &req.stdout, &req.stderr)
            .map_err(|e| TaskError::InvalidArgument(super::error::chain(&e)))?;
        let rootfs = bundle.join("rootfs");
        super::rootfs::mount_all(&req.rootfs, &rootfs)
            .map_err(|e| TaskError::InvalidArgument(super::error::chain(&e)))?;
        let mounted_rootfs = !req.rootfs.is_empty();
        let created = match self.ops.create(CreateRequest {
            id: req.id.clone(),
            bundle: bundle.clone(),
            state_root,
            terminal: req.terminal,
            stdin: Some(io.stdin),
            stdout: Some(io.stdout),
            stderr: Some(io.stderr),
            no_pivot_root: options.no_pivot_root,
            no_new_keyring: options.no_new_keyring,
        }) {
            Ok(c) => c,
            Err(e) => {
                if mounted_rootfs {
                    if let Err(u) = super::rootfs::unmount_all(&rootfs) {
                        log::warn!("create {}: unmount rootfs: {u}", req.id);
                    }
                }
                return Err(e.into());
            }
        };
        let _ = std::fs::write(bundle.join("init.pid"), created.pid.to_string());
        self.new_pidfds.push(NewPidfd {
            id: req.id.clone(),
            exec_id: String::new(),
            pid: created.pid,
            pidfd: created.pidfd,
        });
        self.containers.insert(
            req.id.clone(),
            Container {
                bundle,
                init: Process {
                    pid: created.pid,
                    status: Status::CREATED,
                    stdin: req.stdin.clone(),
                    stdout: req.stdout.clone(),
                    stderr: req.stderr.clone(),
                    terminal: req.terminal,
                    ..Process::default()
                },
                execs: HashMap::new(),
                mounted_rootfs,
                own_pid_namespace: created.own_pid_namespace,
            },
        );
        let mut ev = TaskCreate::new();
        ev.container_id = req.id.clone();
        ev.bundle = req.bundle.clone();
        ev.rootfs = req.rootfs.clone();
        ev.pid = created.pid;
        ev.checkpoint = req.checkpoint.clone();
        let mut io = wren_protocol::events::TaskIO::new();
        io.stdin = req.stdin;
        io.stdout = req.stdout;
        io.stderr = req.stderr;
        io.terminal = req.terminal;
        ev.io = MessageField::some(io);
        self.publisher.publish("/tasks/create", &ev);
        let mut r = CreateTaskResponse::new();
        r.pid = created.pid;
        Ok(r)
    }

    fn start(&mut self, req: StartRequest) -> Result<StartResponse, TaskError> {
        if !req.exec_id.is_empty() {
            return self.start_exec(req);
        }
        let status = self.container(&req.id)?.init.status;
        if status != Status::CREATED {
            return Err(TaskError::State(format!(
                "cannot start a process in state {status:?}"
            )));
        }
        self.ops.start(&req.id)?;
        let c = self.container(&req.id)?;
        c.init.status = Status::RUNNING;
        let pid = c.init.pid;
        let mut ev = TaskStart::new();
        ev.container_id = req.id;
        ev.pid = pid;
        self.publisher.publish("/tasks/start", &ev);
        let mut r = StartResponse::new();
        r.pid = pid;
        Ok(r)
    }

    fn delete(&mut self, req: DeleteRequest) -> Result<DeleteResponse, TaskError> {
        if !req.exec_id.is_empty() {
            return self.delete_exec(req);
        }
        let c = self.container(&req.id)?;
        if !matches!(c.init.status, Status::CREATED | Status::STOPPED) {
            return Err(TaskError::State("cannot delete a running process".into()));
        }
        self.ops.delete(&req.id)?;
        let Some(c) = self.containers.remove(&req.id) else {
            return Err(TaskError::NotFound(format!("container {}", req.id)));
        };
        if c.mounted_rootfs {
            if let Err(e) = super::rootfs::unmount_all(&c.bundle.join("rootfs")) {
                log::warn!("delete {}: unmount rootfs: {e}", req.id);
            }
        }
        let (code, at) = c.init.exit.clone().unwrap_or_else(|| (0, now()));
        let mut ev = TaskDelete::new();
        ev.container_id = req.id.clone();
        ev.pid = c.init.pid;
        ev.exit_status = code;
        ev.exited_at = MessageField::some(at.clone());
        self.publisher.publish("/tasks/delete", &ev);
        let mut r = DeleteResponse::new();
        r.pid = c.init.pid;
        r.exit_status = code;
        r.exited_at = MessageField::some(at);
        Ok(r)
    }

    fn pids(&mut self, req: PidsRequest) -> Result<PidsResponse, TaskError> {
        self.container(&req.id)?;
        let pids = self.ops.pids(&req.id)?;
        let mut r = PidsResponse::new();
        r.processes = pids
            .into_iter()
            .map(|pid| {
                let mut p = ProcessInfo::new();
                p.pid = pid;
                p
            })
            .collect();
        Ok(r)
    }

    fn pause(&mut self, req: PauseRequest) -> Result<Empty, TaskError> {
        let c = self.container(&req.id)?;
        if c.init.status != Status::RUNNING {
            return Err(TaskError::State(format!(
                "cannot pause a {:?} container",
                c.init.status
            )));
        }
        self.ops.pause(&req.id)?;
        self.container(&req.id)?.init.status = Status::PAUSED;
        let mut ev = TaskPaused::new();
        ev.container_id = req.id;
        self.publisher.publish("/tasks/paused", &ev);
        Ok(Empty::new())
    }

    fn resume(&mut self, req: ResumeRequest) -> Result<Empty, TaskError> {
        let c = self.container(&req.id)?;
        if c.init.status != Status::PAUSED {
            return Err(TaskError::State(
                "cannot resume a container that is not paused".into(),
            ));
        }
        self.ops.resume(&req.id)?;
        self.container(&req.id)?.init.status = Status::RUNNING;
        let mut ev = TaskResumed::new();
        ev.container_id = req.id;
        self.publisher.publish("/tasks/resumed", &ev);
        Ok(Empty::new())
    }

    fn checkpoint(&mut self, req: CheckpointTaskRequest) -> Result<Empty, TaskError> {
        self.container(&req.id)?;
        Err(TaskError::Unimplemented(
            "checkpoint (no CRIU support)".into(),
        ))
    }

    fn kill(&mut self, req: KillRequest) -> Result<Empty, TaskError> {
        if !req.exec_id.is_empty() {
            let p = self.container(&req.id)?.process(&req.exec_id)?;
            return match (&p.pidfd, p.status) {
                (Some(fd), Status::RUNNING) => pidfd_signal(fd, req.signal)
                    .map(|()| Empty::new())
                    .map_err(|e| TaskError::State(format!("kill exec {}: {e}", req.exec_id))),
                _ => Err(TaskError::NotFound("process already finished".into())),
            };
        }
        let c = self.container(&req.id)?;
        if c.init.status == Status::STOPPED && !req.all {
            return Err(TaskError::NotFound("process already finished".into()));
        }
        self.ops.kill(&req.id, req.signal, req.all)?;
        Ok(Empty::new())
    }

    fn exec(&mut self, req: ExecProcessRequest) -> Result<Empty, TaskError> {
        let c = self.container(&req.id)?;
        if c.execs.contains_key(&req.exec_id) {
            return Err(TaskError::AlreadyExists(format!("exec {}", req.exec_id)));
        }
        if c.init.status == Status::STOPPED {
            return Err(TaskError::FailedPrecondition(
                "cannot exec in a stopped container".into(),
            ));
        }
        if req.terminal {
            return Err(TaskError::Unimplemented(
                "terminal stdio (the console is not copied to containerd yet)".into(),
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

    fn start_exec(&mut self, req: StartRequest) -> Result<StartResponse, TaskError> {
        let c = self.container(&req.id)?;
        if c.init.status == Status::STOPPED {
            return Err(TaskError::FailedPrecondition(
                "cannot start an exec in a stopped container".into(),
            ));
        }
        let p = c.process(&req.exec_id)?;
        if p.status != Status::CREATED {
            return Err(TaskError::State(format!(
                "cannot start a process in state {:?}",
                p.status
            )));
        }
        let io = crate::stdio::open_all(&p.stdin, &p.stdout, &p.stderr)
            .map_err(|e| TaskError::InvalidArgument(super::error::chain(&e)))?;
        let spec = std::mem::take(&mut p.spec);
        let started = self.ops.exec(
            &req.id,
            &spec,
            Some(io.stdin),
            Some(io.stdout),
            Some(io.stderr),
        )?;
        let own = started
            .pidfd
            .try_clone()
            .map_err(|e| TaskError::State(format!("dup exec pidfd: {e}")))?;
        let p = self.container(&req.id)?.process(&req.exec_id)?;
        p.pid = started.pid;
        p.status = Status::RUNNING;
        p.pidfd = Some(own);
        self.new_pidfds.push(NewPidfd {
            id: req.id.clone(),
            exec_id: req.exec_id.clone(),
            pid: started.pid,
            pidfd: started.pidfd,
        });
        let mut ev = TaskExecStarted::new();
        ev.container_id = req.id;
        ev.exec_id = req.exec_id;
        ev.pid = started.pid;
        self.publisher.publish("/tasks/exec-started", &ev);
        let mut r = StartResponse::new();
        r.pid = started.pid;
        Ok(r)
    }

    fn delete_exec(&mut self, req: DeleteRequest) -> Result<DeleteResponse, TaskError> {
        let c = self.container(&req.id)?;
        let p = c.process(&req.exec_id)?;
        if !matches!(p.status, Status::CREATED | Status::STOPPED) {
            return Err(TaskError::State("cannot delete a running process".into()));
        }
        let Some(p) = c.execs.remove(&req.exec_id) else {
            return Err(TaskError::NotFound(format!("exec {}", req.exec_id)));
        };
        let (code, at) = p.exit.unwrap_or_else(|| (0, now()));
        let mut r = DeleteResponse::new();
        r.pid = p.pid;
        r.exit_status = code;
        r.exited_at = MessageField::some(at);
        Ok(r)
    }

    fn resize_pty(&mut self, req: ResizePtyRequest) -> Result<Empty, TaskError> {
        self.container(&req.id)?.process(&req.exec_id)?;
        // No console is held yet: containerd's runc shim answers success then.
        Ok(Empty::new())
    }

    fn close_io(&mut self, req: CloseIORequest) -> Result<Empty, TaskError> {
        self.container(&req.id)?.process(&req.exec_id)?;
        Ok(Empty::new())
    }

    fn update(&mut self, req: UpdateTaskRequest) -> Result<Empty, TaskError> {
        self.container(&req.id)?;
        let resources = req
            .resources
            .as_ref()
            .map(|a| a.value.clone())
            .unwrap_or_default();
        self.ops.update(&req.id, &resources)?;
        Ok(Empty::new())
    }

    fn stats(&mut self, req: StatsRequest) -> Result<StatsResponse, TaskError> {
        self.container(&req.id)?;
        let any = self.ops.stats(&req.id)?;
        let mut r = StatsResponse::new();
        r.stats = MessageField::some(any);
        Ok(r)
    }

    fn connect(&mut self, req: ConnectRequest) -> Result<ConnectResponse, TaskError> {
        let mut r = ConnectResponse::new();
        r.shim_pid = std::process::id();
        r.task_pid = self.containers.get(&req.id).map_or(0, |c| c.init.pid);
        Ok(r)
    }

    fn shutdown(&mut self, _req: ShutdownRequest) -> Result<Empty, TaskError> {
        // A no-op while any container remains: that is what lets a grouped
        // shim keep serving the others.
        if self.containers.is_empty() {
            self.shutdown = true;
        }
        Ok(Empty::new())
    }

    /// Answers at once if the process has exited, else parks the responder.
    fn wait(
        &mut self,
        req: WaitRequest,
        responder: Responder,
    ) -> Option<(Responder, Result<WaitResponse, TaskError>)> {
        let p = match self
            .container(&req.id)
            .and_then(|c| c.process(&req.exec_id))
        {
            Ok(p) => p,
            Err(e) => return Some((responder, Err(e))),
        };
        match &p.exit {
            Some((code, at)) => {
                let mut r = WaitResponse::new();
                r.exit_status = *code;
                r.exited_at = MessageField::some(at.clone());
                Some((responder, Ok(r)))
            }
            None => {
                p.waiters.push(responder);
                None
            }
        }
    }

    /// Records the exit of a container's init or exec (from its pidfd):
    /// answers parked Waits and publishes `/tasks/exit`. An init without a
    /// pid namespace of its own takes the container's other processes with
    /// it (runc's rule).
    pub fn process_exited(&mut self, id: &str, exec_id: &str, exit_status: u32) {
        let Some(c) = self.containers.get_mut(id) else {
            return;
        };
        let kill_rest = exec_id.is_empty() && !c.own_pid_namespace;
        let Ok(p) = c.process(exec_id) else {
            return;
        };
        let at = now();
        p.status = Status::STOPPED;
        p.exit = Some((exit_status, at.clone()));
        p.pidfd = None;
        let pid = p.pid;
        let waiters = std::mem::take(&mut p.waiters);
        if kill_rest {
            if let Err(e) = self.ops.kill(id, libc::SIGKILL as u32, true) {
                log::warn!("kill the rest of {id}: {}", super::error::chain(&e));
            }
        }
        let mut ev = TaskExit::new();
        ev.container_id = id.to_string();
        ev.id = if exec_id.is_empty() { id } else { exec_id }.to_string();
        ev.pid = pid;
        ev.exit_status = exit_status;
        ev.exited_at = MessageField::some(at.clone());
        self.publisher.publish("/tasks/exit", &ev);
        for w in waiters {
            let mut r = WaitResponse::new();
            r.exit_status = exit_status;
            r.exited_at = MessageField::some(at.clone());
            w.send(encode(r).map_err(|e| e.to_status()));
        }
    }
}
