//! The Task service: decodes each `containerd.task.v2.Task` / `v3.Task` call
//! (same messages, both names served), keeps the state of every container
//! and process this shim owns, calls the runtime through
//! [`ContainerOps`](super::container_ops::ContainerOps), and publishes events.
//! Every RPC is present; Checkpoint answers Unimplemented explicitly.
//!
//! Runs in the daemon, on the epoll loop thread, which owns all of this state.

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::time::SystemTime;

use protobuf::well_known_types::empty::Empty;
use protobuf::well_known_types::timestamp::Timestamp;
use protobuf::{Message, MessageField};
use wren_protocol::events::{TaskCreate, TaskDelete, TaskExit, TaskPaused, TaskResumed, TaskStart};
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
}

/// One container in this shim.
struct Container {
    bundle: PathBuf,
    init: Process,
}

/// The service state.
pub struct TaskService {
    containers: HashMap<String, Container>,
    ops: Box<dyn ContainerOps>,
    publisher: Publisher,
    state_root: PathBuf,
    shutdown: bool,
    /// pidfds of inits created since the loop last looked, to watch for exit.
    new_pidfds: Vec<(String, OwnedFd)>,
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
    pub fn take_new_pidfds(&mut self) -> Vec<(String, OwnedFd)> {
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

    fn exec_not_supported(exec_id: &str) -> TaskError {
        TaskError::NotFound(format!("exec {exec_id}"))
    }

    fn state(&mut self, req: StateRequest) -> Result<StateResponse, TaskError> {
        if !req.exec_id.is_empty() {
            return Err(Self::exec_not_supported(&req.exec_id));
        }
        let c = self.container(&req.id)?;
        let p = &c.init;
        let mut r = StateResponse::new();
        r.id = req.id.clone();
        r.bundle = c.bundle.display().to_string();
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
        let created = self.ops.create(CreateRequest {
            id: req.id.clone(),
            bundle: bundle.clone(),
            state_root,
            terminal: req.terminal,
            stdin: None,
            stdout: None,
            stderr: None,
            no_pivot_root: options.no_pivot_root,
            no_new_keyring: options.no_new_keyring,
        })?;
        let _ = std::fs::write(bundle.join("init.pid"), created.pid.to_string());
        self.new_pidfds.push((req.id.clone(), created.pidfd));
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
            return Err(Self::exec_not_supported(&req.exec_id));
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
            return Err(Self::exec_not_supported(&req.exec_id));
        }
        let c = self.container(&req.id)?;
        if !matches!(c.init.status, Status::CREATED | Status::STOPPED) {
            return Err(TaskError::State("cannot delete a running process".into()));
        }
        self.ops.delete(&req.id)?;
        let Some(c) = self.containers.remove(&req.id) else {
            return Err(TaskError::NotFound(format!("container {}", req.id)));
        };
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
            return Err(Self::exec_not_supported(&req.exec_id));
        }
        let c = self.container(&req.id)?;
        if c.init.status == Status::STOPPED && !req.all {
            return Err(TaskError::NotFound("process already finished".into()));
        }
        self.ops.kill(&req.id, req.signal, req.all)?;
        Ok(Empty::new())
    }

    fn exec(&mut self, req: ExecProcessRequest) -> Result<Empty, TaskError> {
        self.container(&req.id)?;
        Err(TaskError::Ops(super::container_ops::OpsError::NotLinked {
            op: "exec",
        }))
    }

    fn resize_pty(&mut self, req: ResizePtyRequest) -> Result<Empty, TaskError> {
        if !req.exec_id.is_empty() {
            return Err(Self::exec_not_supported(&req.exec_id));
        }
        self.container(&req.id)?;
        // No console is held yet: containerd's runc shim answers success then.
        Ok(Empty::new())
    }

    fn close_io(&mut self, req: CloseIORequest) -> Result<Empty, TaskError> {
        if !req.exec_id.is_empty() {
            return Err(Self::exec_not_supported(&req.exec_id));
        }
        self.container(&req.id)?;
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
        if !req.exec_id.is_empty() {
            return Some((responder, Err(Self::exec_not_supported(&req.exec_id))));
        }
        let c = match self.container(&req.id) {
            Ok(c) => c,
            Err(e) => return Some((responder, Err(e))),
        };
        match &c.init.exit {
            Some((code, at)) => {
                let mut r = WaitResponse::new();
                r.exit_status = *code;
                r.exited_at = MessageField::some(at.clone());
                Some((responder, Ok(r)))
            }
            None => {
                c.init.waiters.push(responder);
                None
            }
        }
    }

    /// Records the exit of a container's init (from its pidfd): answers
    /// parked Waits and publishes `/tasks/exit`.
    pub fn init_exited(&mut self, id: &str, exit_status: u32) {
        let Some(c) = self.containers.get_mut(id) else {
            return;
        };
        let at = now();
        c.init.status = Status::STOPPED;
        c.init.exit = Some((exit_status, at.clone()));
        let mut ev = TaskExit::new();
        ev.container_id = id.to_string();
        ev.id = id.to_string();
        ev.pid = c.init.pid;
        ev.exit_status = exit_status;
        ev.exited_at = MessageField::some(at.clone());
        self.publisher.publish("/tasks/exit", &ev);
        for w in c.init.waiters.drain(..) {
            let mut r = WaitResponse::new();
            r.exit_status = exit_status;
            r.exited_at = MessageField::some(at.clone());
            w.send(encode(r).map_err(|e| e.to_status()));
        }
    }
}
