//! The Task service: decodes each `containerd.task.v2.Task` / `v3.Task` call
//! (same messages, both names served), keeps the state of every container
//! and process this shim owns, calls the runtime through
//! [`ContainerOps`](super::container_ops::ContainerOps), and publishes events.
//! Every RPC is present; Checkpoint answers Unimplemented explicitly.
//!
//! Exit reporting follows containerd's runc shim: a reaped process's exit is
//! published (and its Waits answered) only once its output is drained (or
//! after [`DRAIN_GRACE`], for output held open by an escaped child); an
//! init's exit comes after every exec's exit, and a final OOM check comes
//! before it, so `/tasks/oom` always precedes `/tasks/exit`.
//!
//! Runs in the daemon, on the epoll loop thread, which owns all of this state.

use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use nix::sys::epoll::{Epoll, EpollEvent, EpollFlags};
use wren_runtime::cgroups::oom::OomWatcher;

use protobuf::well_known_types::empty::Empty;
use protobuf::well_known_types::timestamp::Timestamp;
use protobuf::{Message, MessageField};
use wren_protocol::events::{
    TaskCreate, TaskDelete, TaskExecAdded, TaskExecStarted, TaskExit, TaskOOM, TaskPaused,
    TaskResumed, TaskStart,
};
use wren_protocol::task::*;
use wren_protocol::task_types::{ProcessInfo, Status};

use super::container_ops::{ContainerOps, CreateRequest};
use super::error::TaskError;
use crate::events::publisher::{timestamp, Publisher};
use crate::options::ShimOptions;
use crate::stdio::logger::{self, Logger};
use crate::stdio::relay::Relays;
use crate::stdio::{uri, ContainerFds, Owner, ProcessIo};
use wren_ttrpc::server::Responder;

/// How long an exit waits for its output to drain before it is reported
/// anyway (a daemonized child may hold the pipe forever).
pub const DRAIN_GRACE: Duration = Duration::from_secs(2);
/// How long an init's exit waits for its execs' exits.
pub const EXECS_GRACE: Duration = Duration::from_secs(10);
/// Tokens of OOM watchers carry this bit (see `daemon.rs`).
pub const OOM_BIT: u64 = 1 << 42;

/// A reaped process whose exit is not reported yet.
struct PendingExit {
    status: u32,
    at: Timestamp,
    reaped: Instant,
}

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
    /// The shim's side of its stdio.
    io: Option<ProcessIo>,
    /// Reaped, not reported yet.
    pending: Option<PendingExit>,
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
    /// OOM-kill notifications, with the epoll token they are watched under.
    oom: Option<(u64, OomWatcher)>,
    /// Pipe owner from the runc options (IoUid/IoGid).
    io_uid: u32,
    io_gid: u32,
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

/// A reaped process may be reported once its output is drained or the
/// drain grace is over.
fn exit_ready(p: &Process, relays: &Relays, now: Instant) -> bool {
    p.pending.as_ref().is_some_and(|e| {
        now >= e.reaped + DRAIN_GRACE || p.io.as_ref().is_none_or(|io| io.drained(relays))
    })
}

/// The service state.
pub struct TaskService {
    containers: HashMap<String, Container>,
    ops: Box<dyn ContainerOps>,
    publisher: Publisher,
    state_root: PathBuf,
    namespace: String,
    shutdown: bool,
    /// pidfds of inits created since the loop last looked, to watch for exit.
    new_pidfds: Vec<NewPidfd>,
    /// stdio copying, on the loop's epoll set.
    relays: Relays,
    /// The loop's epoll set, for OOM watchers.
    epoll: Epoll,
    next_oom_token: u64,
    /// Loggers asked to exit, to SIGKILL after their grace.
    dying_loggers: Vec<(Logger, Instant)>,
}

fn encode<M: Message>(m: M) -> Result<Vec<u8>, TaskError> {
    Ok(m.write_to_bytes().unwrap_or_default())
}

fn now() -> Timestamp {
    timestamp(SystemTime::now())
}

impl TaskService {
    /// `epoll` is the daemon loop's epoll set: stdio relays and OOM watchers
    /// are registered there, and the loop hands their readiness back through
    /// [`Self::fd_ready`].
    pub fn new(
        ops: Box<dyn ContainerOps>,
        publisher: Publisher,
        state_root: PathBuf,
        namespace: &str,
        epoll: &Epoll,
    ) -> std::io::Result<Self> {
        let handle = || epoll.0.try_clone().map(Epoll);
        Ok(Self {
            containers: HashMap::new(),
            ops,
            publisher,
            state_root,
            namespace: namespace.to_string(),
            shutdown: false,
            new_pidfds: Vec::new(),
            relays: Relays::new(handle()?),
            epoll: handle()?,
            next_oom_token: 0,
            dying_loggers: Vec::new(),
        })
    }

    /// Readiness of a relay or OOM fd registered by the service.
    pub fn fd_ready(&mut self, token: u64) {
        if token & crate::stdio::relay::RELAY_BIT != 0 {
            self.relays.ready(token);
            self.settle();
        } else if token & OOM_BIT != 0 {
            let id = self
                .containers
                .iter()
                .find(|(_, c)| c.oom.as_ref().is_some_and(|(t, _)| *t == token))
                .map(|(id, _)| id.clone());
            if let Some(id) = id {
                self.check_oom(&id);
            }
        }
    }

    /// Publishes `/tasks/oom` if the container's cgroup saw OOM kills since
    /// the last look.
    fn check_oom(&mut self, id: &str) {
        let Some(c) = self.containers.get_mut(id) else {
            return;
        };
        let Some((_, w)) = c.oom.as_mut() else {
            return;
        };
        match w.new_kills() {
            Ok(0) => {}
            Ok(n) => {
                log::info!("{id}: {n} OOM kill(s)");
                let mut ev = TaskOOM::new();
                ev.container_id = id.to_string();
                self.publisher.publish("/tasks/oom", &ev);
            }
            Err(e) => log::warn!("{id}: read OOM counter: {e}"),
        }
    }

    /// When the loop must call [`Self::tick`] next (a drain or logger grace
    /// ends), if ever.
    pub fn next_deadline(&self) -> Option<Instant> {
        let exits = self.containers.values().flat_map(|c| {
            std::iter::once(&c.init)
                .chain(c.execs.values())
                .filter_map(|p| p.pending.as_ref().map(|e| e.reaped + DRAIN_GRACE))
                .chain(c.init.pending.as_ref().map(|e| e.reaped + EXECS_GRACE))
        });
        exits
            .chain(self.dying_loggers.iter().map(|(_, at)| *at))
            .min()
    }

    /// Reports exits whose wait is over and kills loggers past their grace.
    pub fn tick(&mut self) {
        let now = Instant::now();
        self.dying_loggers.retain(|(l, deadline)| {
            if logger::exited(l) {
                return false;
            }
            if now >= *deadline {
                log::warn!("logging binary {} ignored SIGTERM; killing it", l.pid);
                logger::kill(l, libc::SIGKILL);
                return false;
            }
            true
        });
        self.settle();
    }

    /// Daemon exit: gives each logging binary still flushing the rest of its
    /// grace to exit (as containerd's shim blocks in Close), then kills it.
    pub fn wait_loggers(&mut self) {
        for (l, deadline) in self.dying_loggers.drain(..) {
            let left = deadline.saturating_duration_since(Instant::now());
            if !logger::wait_exit(&l, left) {
                log::warn!("logging binary {} ignored SIGTERM; killing it", l.pid);
                logger::kill(&l, libc::SIGKILL);
            }
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
            log::warn!("{method}: {}", wren_runtime::error::chain(e));
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
                .map_err(|e| TaskError::InvalidArgument(wren_runtime::error::chain(&e)))?
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
        let uris = uri::parse(&req.stdin, &req.stdout, &req.stderr)
            .map_err(|e| TaskError::InvalidArgument(format!("create {}: {e}", req.id)))?;
        let owner = Owner {
            container_id: &req.id,
            namespace: &self.namespace,
            io_uid: options.io_uid,
            io_gid: options.io_gid,
        };
        let (fds, mut io) = ProcessIo::setup(&mut self.relays, uris, req.terminal, &owner)
            .map_err(|e| {
                TaskError::InvalidArgument(format!(
                    "create {}: {}",
                    req.id,
                    wren_runtime::error::chain(&e)
                ))
            })?;
        let rootfs = bundle.join("rootfs");
        if let Err(e) = super::rootfs::mount_all(&req.rootfs, &rootfs) {
            self.release_io(io);
            return Err(TaskError::InvalidArgument(wren_runtime::error::chain(&e)));
        }
        let mounted_rootfs = !req.rootfs.is_empty();
        let ContainerFds {
            stdin,
            stdout,
            stderr,
        } = fds;
        let created = self
            .ops
            .create(CreateRequest {
                id: req.id.clone(),
                bundle: bundle.clone(),
                state_root,
                terminal: req.terminal,
                stdin,
                stdout,
                stderr,
                no_pivot_root: options.no_pivot_root,
                no_new_keyring: options.no_new_keyring,
            })
            .map_err(TaskError::from)
            .and_then(|mut created| {
                if req.terminal {
                    let master = created.console.take().ok_or_else(|| {
                        TaskError::InvalidArgument(format!(
                            "create {}: terminal requested but process.terminal is false in config.json",
                            req.id
                        ))
                    })?;
                    io.attach_console(&mut self.relays, master).map_err(|e| {
                        TaskError::InvalidArgument(format!("create {}: {}", req.id, wren_runtime::error::chain(&e)))
                    })?;
                }
                Ok(created)
            });
        let created = match created {
            Ok(c) => c,
            Err(e) => {
                // Undo in reverse: the runtime's container (if it got that
                // far), the stdio, the rootfs mounts.
                if self.ops.delete(&req.id).is_ok() {
                    log::debug!("create {}: removed the half-made container", req.id);
                }
                self.release_io(io);
                if mounted_rootfs {
                    if let Err(u) = super::rootfs::unmount_all(&rootfs) {
                        log::warn!("create {}: unmount rootfs: {u}", req.id);
                    }
                }
                return Err(e);
            }
        };
        let oom = self.ops.oom_watcher(&req.id).and_then(|w| {
            let token = OOM_BIT | self.next_oom_token;
            self.next_oom_token += 1;
            match self
                .epoll
                .add(w.as_fd(), EpollEvent::new(EpollFlags::EPOLLIN, token))
            {
                Ok(()) => Some((token, w)),
                Err(e) => {
                    log::warn!("{}: watch OOM: {e}", req.id);
                    None
                }
            }
        });
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
                    io: Some(io),
                    ..Process::default()
                },
                execs: HashMap::new(),
                mounted_rootfs,
                own_pid_namespace: created.own_pid_namespace,
                oom,
                io_uid: options.io_uid,
                io_gid: options.io_gid,
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
        let Some(mut c) = self.containers.remove(&req.id) else {
            return Err(TaskError::NotFound(format!("container {}", req.id)));
        };
        if let Some((_, w)) = c.oom.take() {
            let _ = self.epoll.delete(w.as_fd());
        }
        for p in std::iter::once(&mut c.init).chain(c.execs.values_mut()) {
            if let Some(io) = p.io.take() {
                self.release_io(io);
            }
        }
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
        let c = self.container(&req.id)?;
        let execs: HashMap<u32, String> = c
            .execs
            .iter()
            .filter(|(_, p)| p.pid != 0)
            .map(|(id, p)| (p.pid, id.clone()))
            .collect();
        let pids = self.ops.pids(&req.id)?;
        let mut r = PidsResponse::new();
        r.processes = pids
            .into_iter()
            .map(|pid| {
                let mut p = ProcessInfo::new();
                p.pid = pid;
                if let Some(exec_id) = execs.get(&pid) {
                    let mut d = wren_protocol::runc_options::ProcessDetails::new();
                    d.exec_id = exec_id.clone();
                    let mut any = protobuf::well_known_types::any::Any::new();
                    any.type_url = wren_protocol::type_urls::RUNC_PROCESS_DETAILS.to_string();
                    any.value = d.write_to_bytes().unwrap_or_default();
                    p.info = MessageField::some(any);
                }
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
                // containerd's runc shim: an exec not started yet cannot be
                // signalled (FailedPrecondition); an exited one is NotFound.
                (_, Status::CREATED) => Err(TaskError::FailedPrecondition(format!(
                    "exec {} is not started",
                    req.exec_id
                ))),
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
            .map_err(|e| TaskError::InvalidArgument(format!("exec {}: {e}", req.exec_id)))?;
        let terminal = p.terminal;
        let spec = std::mem::take(&mut p.spec);
        let owner = Owner {
            container_id: &req.id,
            namespace: &self.namespace,
            io_uid,
            io_gid,
        };
        let (fds, mut io) =
            ProcessIo::setup(&mut self.relays, uris, terminal, &owner).map_err(|e| {
                TaskError::InvalidArgument(format!(
                    "exec {}: {}",
                    req.exec_id,
                    wren_runtime::error::chain(&e)
                ))
            })?;
        let started = match self
            .ops
            .exec(&req.id, &spec, fds.stdin, fds.stdout, fds.stderr)
        {
            Ok(s) => s,
            Err(e) => {
                self.release_io(io);
                return Err(e.into());
            }
        };
        if terminal {
            let attached = match started.console {
                Some(master) => io.attach_console(&mut self.relays, master).map_err(|e| {
                    format!("exec {}: {}", req.exec_id, wren_runtime::error::chain(&e))
                }),
                None => Err(format!(
                    "exec {}: terminal requested but the process spec has terminal=false",
                    req.exec_id
                )),
            };
            if let Err(msg) = attached {
                // The process runs without a console we can serve: stop it.
                let _ = pidfd_signal(&started.pidfd, libc::SIGKILL as u32);
                log::warn!("{msg}");
            }
        }
        let own = started
            .pidfd
            .try_clone()
            .map_err(|e| TaskError::State(format!("dup exec pidfd: {e}")))?;
        let p = self.container(&req.id)?.process(&req.exec_id)?;
        p.pid = started.pid;
        p.status = Status::RUNNING;
        p.pidfd = Some(own);
        p.io = Some(io);
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
        let Some(mut p) = c.execs.remove(&req.exec_id) else {
            return Err(TaskError::NotFound(format!("exec {}", req.exec_id)));
        };
        if let Some(io) = p.io.take() {
            self.release_io(io);
        }
        let (code, at) = p.exit.clone().unwrap_or_else(|| (0, now()));
        let mut r = DeleteResponse::new();
        r.pid = p.pid;
        r.exit_status = code;
        r.exited_at = MessageField::some(at);
        Ok(r)
    }

    fn resize_pty(&mut self, req: ResizePtyRequest) -> Result<Empty, TaskError> {
        let p = self.container(&req.id)?.process(&req.exec_id)?;
        if p.status == Status::STOPPED && !req.exec_id.is_empty() {
            return Err(TaskError::State(format!(
                "resize the console of exec {}: it has exited",
                req.exec_id
            )));
        }
        // No console (no terminal): success, as containerd's runc shim does.
        if let Some(io) = &p.io {
            let rows = req.height.min(u16::MAX as u32) as u16;
            let cols = req.width.min(u16::MAX as u32) as u16;
            io.resize(rows, cols)
                .map_err(|e| TaskError::State(format!("resize the console of {}: {e}", req.id)))?;
        }
        Ok(Empty::new())
    }

    fn close_io(&mut self, req: CloseIORequest) -> Result<Empty, TaskError> {
        let c = self
            .containers
            .get_mut(&req.id)
            .ok_or_else(|| TaskError::NotFound(format!("container {}", req.id)))?;
        let p = c.process(&req.exec_id)?;
        if let Some(io) = p.io.as_mut() {
            io.close_stdin(&mut self.relays);
        }
        Ok(Empty::new())
    }

    /// Drops a process's stdio; a logging binary gets SIGTERM and is
    /// watched until it exits or its grace ends.
    fn release_io(&mut self, io: ProcessIo) {
        if let Some(dying) = io.close(&mut self.relays) {
            self.dying_loggers.push(dying);
        }
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
        if self.containers.is_empty() && !self.shutdown {
            self.shutdown = true;
            crate::socket::remove_own();
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

    /// Records the exit of a container's init or exec (from its pidfd). It is
    /// reported by [`Self::settle`] once the rules in the module docs allow.
    /// An init without a pid namespace of its own takes the container's
    /// other processes with it (runc's rule).
    pub fn process_exited(&mut self, id: &str, exec_id: &str, exit_status: u32) {
        let Some(c) = self.containers.get_mut(id) else {
            return;
        };
        let kill_rest = exec_id.is_empty() && !c.own_pid_namespace;
        let Ok(p) = c.process(exec_id) else {
            return;
        };
        p.pidfd = None;
        p.pending = Some(PendingExit {
            status: exit_status,
            at: now(),
            reaped: Instant::now(),
        });
        if kill_rest {
            if let Err(e) = self.ops.kill(id, libc::SIGKILL as u32, true) {
                log::warn!("kill the rest of {id}: {}", wren_runtime::error::chain(&e));
            }
        }
        self.settle();
    }

    /// Reports every pending exit whose conditions are met: output drained
    /// (or [`DRAIN_GRACE`] over); for an init, also no exec still to report
    /// (or [`EXECS_GRACE`] over), and a last OOM check first.
    fn settle(&mut self) {
        let now = Instant::now();
        let ids: Vec<String> = self.containers.keys().cloned().collect();
        for id in ids {
            let Some(c) = self.containers.get_mut(&id) else {
                continue;
            };
            let execs: Vec<String> = c
                .execs
                .iter()
                .filter(|(_, p)| exit_ready(p, &self.relays, now))
                .map(|(e, _)| e.clone())
                .collect();
            for exec_id in execs {
                self.report_exit(&id, &exec_id);
            }
            let Some(c) = self.containers.get(&id) else {
                continue;
            };
            let execs_done = c.execs.values().all(|p| p.status != Status::RUNNING);
            let init_ready = exit_ready(&c.init, &self.relays, now)
                && (execs_done
                    || c.init
                        .pending
                        .as_ref()
                        .is_some_and(|e| now >= e.reaped + EXECS_GRACE));
            if init_ready {
                self.check_oom(&id);
                self.report_exit(&id, "");
            }
        }
    }

    /// Publishes `/tasks/exit` and answers the parked Waits of one process.
    fn report_exit(&mut self, id: &str, exec_id: &str) {
        let Some(c) = self.containers.get_mut(id) else {
            return;
        };
        let Ok(p) = c.process(exec_id) else {
            return;
        };
        let Some(e) = p.pending.take() else {
            return;
        };
        p.status = Status::STOPPED;
        p.exit = Some((e.status, e.at.clone()));
        let pid = p.pid;
        let waiters = std::mem::take(&mut p.waiters);
        let mut ev = TaskExit::new();
        ev.container_id = id.to_string();
        ev.id = if exec_id.is_empty() { id } else { exec_id }.to_string();
        ev.pid = pid;
        ev.exit_status = e.status;
        ev.exited_at = MessageField::some(e.at.clone());
        self.publisher.publish("/tasks/exit", &ev);
        for w in waiters {
            let mut r = WaitResponse::new();
            r.exit_status = e.status;
            r.exited_at = MessageField::some(e.at.clone());
            w.send(encode(r).map_err(|e| e.to_status()));
        }
    }
}
