//! The registry and supervisor: every container wrend manages, its shim
//! connection, stdio fifos and log, and the state machine that creates,
//! starts, stops, restarts (with backoff) and removes it. The API requests
//! and the shims' events land here; the loop in [`super::daemon`] only
//! routes fds and timers.
//!
//! Runs in wrend's loop thread.

use std::collections::{BTreeMap, HashMap};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use protobuf::well_known_types::any::Any;
use protobuf::well_known_types::empty::Empty;
use protobuf::{Message, MessageField};
use serde_json::Value;
use wren_protocol::manager as api;
use wren_protocol::task as shimapi;
use wren_protocol::task_types::Status as TaskStatus;
use wren_protocol::ttrpc_wire::Code;

use super::config::{self, Config};
use super::error::ManagerError;
use super::events::{now_nanos, EventLog};
use super::logs::{self, LogFile};
use super::policy::{self, RestartPolicy};
use super::record::{self, Record};
use super::shim::{Launch, TaskClient};
use super::spec;
use wren_runtime::timing;
use wren_ttrpc::client::CallError;
use wren_ttrpc::server::Responder;

/// Default grace period of `wren stop`.
pub const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// Exit status recorded when a container's shim vanished with it.
pub const LOST_STATUS: u32 = 128 + libc::SIGKILL as u32;
/// Exit status recorded when a (re)start failed.
pub const START_FAILED_STATUS: u32 = 255;
/// How long a shim may take to exit after Shutdown before it is killed.
const SHIM_EXIT_WAIT: Duration = Duration::from_secs(3);

/// What wrend knows about a container's init.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Created,
    Running,
    Paused,
    Stopped,
    /// Exited, a restart is scheduled.
    Restarting,
    Unknown,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Running => "running",
            Self::Paused => "paused",
            Self::Stopped => "stopped",
            Self::Restarting => "restarting",
            Self::Unknown => "unknown",
        }
    }

    fn is_live(self) -> bool {
        matches!(self, Self::Created | Self::Running | Self::Paused)
    }
}

/// An fd the loop must watch, or stop watching.
pub enum Watch {
    Add(RawFd, WatchKind),
    Remove(RawFd),
}

/// What a watched fd belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchKind {
    /// A stdout/stderr fifo.
    Fifo,
    /// A shim's pidfd.
    Shim,
}

/// One managed container.
struct Managed {
    rec: Record,
    state: State,
    shim: Option<TaskClient>,
    shim_pidfd: Option<OwnedFd>,
    stdout: Option<OwnedFd>,
    stderr: Option<OwnedFd>,
    log: LogFile,
    /// The `log` fifo in the bundle: the shim daemon's stderr.
    shim_log_fd: Option<OwnedFd>,
    /// `shim.log` beside the container's log.
    shim_log: LogFile,
    attached: bool,
    started_at: Option<Instant>,
    backoff: Option<Duration>,
    restart_at: Option<Instant>,
    kill_at: Option<Instant>,
    stopping: bool,
    waiters: Vec<Responder>,
    stop_waiters: Vec<Responder>,
    exec_waiters: HashMap<String, Vec<Responder>>,
    exec_exits: HashMap<String, (u32, i64)>,
}

/// A shim told to shut down, until its pidfd says it is gone.
struct Departing {
    name: String,
    /// Its socket, removed once it is gone (its bundle may be gone first).
    address: String,
    pidfd: OwnedFd,
    deadline: Instant,
    /// `rm` callers and their prepared answers.
    replies: Vec<(Responder, Vec<u8>)>,
}

/// Everything wrend manages.
pub struct Supervisor {
    departing: HashMap<RawFd, Departing>,
    cfg: Config,
    address: String,
    socket_dir: PathBuf,
    containers: BTreeMap<String, Managed>,
    /// Which container owns each watched fd.
    owners: HashMap<RawFd, String>,
    watches: Vec<Watch>,
    pub events: EventLog,
}

fn encode<M: Message>(m: &M) -> Vec<u8> {
    m.write_to_bytes().unwrap_or_default()
}

fn pidfd_open(pid: u32) -> Option<OwnedFd> {
    // SAFETY: pidfd_open(2) takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: the kernel just returned this fd to us; nothing else owns it.
    Some(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Removes a dead shim's socket file, if it is still there.
fn remove_socket(address: &str) {
    if let Some(path) = wren_ttrpc::address::from_address(address) {
        if let Err(e) = wren_ttrpc::address::remove(&path) {
            log::debug!("remove {}: {e}", path.display());
        }
    }
}

/// SIGKILLs the process behind `pidfd`.
fn kill_pidfd(pidfd: &OwnedFd) {
    // SAFETY: pidfd_send_signal(2) on an fd we own, no siginfo, no flags.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            libc::SIGKILL,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if rc != 0 {
        log::warn!("kill shim: {}", std::io::Error::last_os_error());
    }
}

fn task_state(s: TaskStatus) -> State {
    match s {
        TaskStatus::CREATED => State::Created,
        TaskStatus::RUNNING | TaskStatus::PAUSING => State::Running,
        TaskStatus::PAUSED => State::Paused,
        TaskStatus::STOPPED => State::Stopped,
        _ => State::Unknown,
    }
}

fn is_not_found(e: &CallError) -> bool {
    matches!(e, CallError::Status { code, .. } if *code == Code::NOT_FOUND)
}

impl Supervisor {
    pub fn new(cfg: Config) -> Self {
        Self {
            address: cfg.address(),
            socket_dir: cfg.shim_socket_dir(),
            cfg,
            departing: HashMap::new(),
            containers: BTreeMap::new(),
            owners: HashMap::new(),
            watches: Vec::new(),
            events: EventLog::default(),
        }
    }

    /// fds to add to or remove from epoll since the last call.
    pub fn take_watches(&mut self) -> Vec<Watch> {
        std::mem::take(&mut self.watches)
    }

    fn watch(&mut self, name: &str, fd: RawFd, kind: WatchKind) {
        self.owners.insert(fd, name.to_string());
        self.watches.push(Watch::Add(fd, kind));
    }

    fn unwatch(&mut self, fd: RawFd) {
        self.owners.remove(&fd);
        self.watches.push(Watch::Remove(fd));
    }

    fn get(&mut self, name: &str) -> Result<&mut Managed, ManagerError> {
        self.containers
            .get_mut(name)
            .ok_or_else(|| ManagerError::NotFound(name.to_string()))
    }

    fn launch<'a>(&'a self, name: &'a str, bundle: &'a Path) -> Launch<'a> {
        Launch {
            binary: &self.cfg.shim_binary,
            namespace: config::NAMESPACE,
            id: name,
            wrend_address: &self.address,
            socket_dir: &self.socket_dir,
            bundle,
            debug: self.cfg.debug,
        }
    }

    fn save(&self, name: &str) {
        if let Some(m) = self.containers.get(name) {
            if let Err(e) = m.rec.save(&self.cfg.record_dir(name)) {
                log::error!("{}", wren_runtime::error::chain(&e));
            }
        }
    }

    fn describe(&self, name: &str) -> Result<api::Container, ManagerError> {
        let m = self
            .containers
            .get(name)
            .ok_or_else(|| ManagerError::NotFound(name.to_string()))?;
        let mut c = api::Container::new();
        c.name = name.to_string();
        c.bundle = m.rec.bundle.display().to_string();
        c.status = m.state.as_str().to_string();
        c.pid = if m.state.is_live() { m.rec.pid } else { 0 };
        c.exit_status = m.rec.exit_status.unwrap_or(0);
        c.exited_at = m.rec.exited_at;
        c.restart_policy = m.rec.restart_policy.clone();
        c.restart_count = m.rec.restart_count;
        c.start_at_boot = m.rec.start_at_boot;
        c.auto_remove = m.rec.auto_remove;
        c.shim_address = m.rec.shim_address.clone();
        c.shim_pid = m.rec.shim_pid;
        c.log_path = m.log.path().display().to_string();
        c.created_at = m.rec.created_at;
        c.terminal = m.rec.terminal;
        c.stopped_by_user = m.rec.stopped_by_user;
        c.last_error = m.rec.last_error.clone();
        if let Ok(text) = std::fs::read(m.rec.bundle.join("config.json")) {
            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&text) {
                c.args = v["process"]["args"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|s| s.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default();
            }
        }
        Ok(c)
    }

    fn container_response(&self, name: &str) -> Result<api::ContainerResponse, ManagerError> {
        let mut r = api::ContainerResponse::new();
        r.container = MessageField::some(self.describe(name)?);
        Ok(r)
    }

    fn new_managed(&self, rec: Record) -> Managed {
        let log = LogFile::new(
            self.cfg.record_dir(&rec.name).join("log"),
            self.cfg.log_max_size,
            self.cfg.log_keep,
        );
        let shim_log = LogFile::new(
            self.cfg.record_dir(&rec.name).join("shim.log"),
            self.cfg.log_max_size,
            self.cfg.log_keep,
        );
        Managed {
            shim_log,
            shim_log_fd: None,
            rec,
            state: State::Stopped,
            shim: None,
            shim_pidfd: None,
            stdout: None,
            stderr: None,
            log,
            attached: false,
            started_at: None,
            backoff: None,
            restart_at: None,
            kill_at: None,
            stopping: false,
            waiters: Vec::new(),
            stop_waiters: Vec::new(),
            exec_waiters: HashMap::new(),
            exec_exits: HashMap::new(),
        }
    }

    // ---- shim plumbing -------------------------------------------------

    /// Makes the stdio fifos and opens them for the log copier.
    fn open_stdio(&mut self, name: &str) -> Result<(), ManagerError> {
        let dir = self.cfg.container_state_dir(name);
        let m = self.get(name)?;
        if m.stdout.is_some() {
            return Ok(());
        }
        let (stdin, bundle) = (m.rec.stdin, m.rec.bundle.clone());
        let lerr = |source| ManagerError::Log {
            name: name.to_string(),
            source,
        };
        let fifo = |path: &Path| logs::make_fifo(path).and_then(|()| logs::open_fifo(path));
        let stdout = fifo(&dir.join("stdout")).map_err(lerr)?;
        let stderr = fifo(&dir.join("stderr")).map_err(lerr)?;
        // The shim daemon's own log (its stderr), as containerd provides it.
        let shim_log = fifo(&bundle.join("log")).map_err(lerr)?;
        if stdin {
            logs::make_fifo(&dir.join("stdin")).map_err(lerr)?;
        }
        let fds = [stdout.as_raw_fd(), stderr.as_raw_fd(), shim_log.as_raw_fd()];
        let m = self.get(name)?;
        m.stdout = Some(stdout);
        m.stderr = Some(stderr);
        m.shim_log_fd = Some(shim_log);
        let attached = m.attached;
        for (i, fd) in fds.into_iter().enumerate() {
            if i == 0 && attached {
                continue;
            }
            self.watch(name, fd, WatchKind::Fifo);
        }
        Ok(())
    }

    fn close_stdio(&mut self, name: &str) {
        let Some(m) = self.containers.get_mut(name) else {
            return;
        };
        if let Some(fd) = m.shim_log_fd.take() {
            m.shim_log.drain(fd.as_raw_fd());
            self.unwatch(fd.as_raw_fd());
        }
        let Some(m) = self.containers.get_mut(name) else {
            return;
        };
        let fds: Vec<OwnedFd> = [m.stdout.take(), m.stderr.take()]
            .into_iter()
            .flatten()
            .collect();
        for fd in &fds {
            if let Some(m) = self.containers.get_mut(name) {
                m.log.drain(fd.as_raw_fd());
            }
            self.unwatch(fd.as_raw_fd());
        }
    }

    /// Copies whatever the fifos hold into the log.
    fn drain_stdio(&mut self, name: &str) {
        if let Some(m) = self.containers.get_mut(name) {
            let fds: Vec<RawFd> = [&m.stdout, &m.stderr]
                .into_iter()
                .flatten()
                .map(|f| f.as_raw_fd())
                .collect();
            for (i, fd) in fds.into_iter().enumerate() {
                if i == 0 && m.attached {
                    continue;
                }
                m.log.drain(fd);
            }
        }
    }

    /// Connects to the container's shim, starting one if none serves it.
    fn ensure_shim(&mut self, name: &str) -> Result<(), ManagerError> {
        let m = self.get(name)?;
        if m.shim.is_some() {
            return Ok(());
        }
        let bundle = m.rec.bundle.clone();
        let t = Instant::now();
        timing::mark(name, "wrend.shim");
        let address =
            self.launch(name, &bundle)
                .start()
                .map_err(|source| ManagerError::ShimStart {
                    name: name.to_string(),
                    source,
                })?;
        let shim_err = |what, source| ManagerError::Shim {
            name: name.to_string(),
            what,
            source,
        };
        let mut client = TaskClient::connect(&address).map_err(|e| shim_err("connect", e))?;
        let mut req = shimapi::ConnectRequest::new();
        req.id = name.to_string();
        let resp: shimapi::ConnectResponse = client
            .call("Connect", &req)
            .map_err(|e| shim_err("connect", e))?;
        log::debug!("{name}: shim {} up in {:?}", resp.shim_pid, t.elapsed());
        timing::mark(name, "wrend.connected");
        self.adopt_shim(name, client, &address, resp.shim_pid);
        Ok(())
    }

    fn adopt_shim(&mut self, name: &str, client: TaskClient, address: &str, pid: u32) {
        let pidfd = pidfd_open(pid);
        let fd = pidfd.as_ref().map(|f| f.as_raw_fd());
        if let Some(m) = self.containers.get_mut(name) {
            m.shim = Some(client);
            m.shim_pidfd = pidfd;
            m.rec.shim_address = address.to_string();
            m.rec.shim_pid = pid;
        }
        if let Some(fd) = fd {
            self.watch(name, fd, WatchKind::Shim);
        }
        self.save(name);
    }

    /// Calls the container's shim.
    fn shim_call<Q: Message, R: Message>(
        &mut self,
        name: &str,
        what: &'static str,
        req: &Q,
    ) -> Result<R, ManagerError> {
        let m = self.get(name)?;
        let Some(shim) = m.shim.as_mut() else {
            return Err(ManagerError::FailedPrecondition(format!(
                "container {name} has no running shim"
            )));
        };
        shim.call(what, req).map_err(|source| ManagerError::Shim {
            name: name.to_string(),
            what,
            source,
        })
    }

    /// Creates the task in the shim (the init blocked before exec).
    fn create_task(&mut self, name: &str) -> Result<(), ManagerError> {
        self.open_stdio(name)?;
        self.ensure_shim(name)?;
        let dir = self.cfg.container_state_dir(name);
        let m = self.get(name)?;
        let mut req = shimapi::CreateTaskRequest::new();
        req.id = name.to_string();
        req.bundle = m.rec.bundle.display().to_string();
        req.terminal = m.rec.terminal;
        if m.rec.stdin {
            req.stdin = dir.join("stdin").display().to_string();
        }
        req.stdout = dir.join("stdout").display().to_string();
        if !m.rec.terminal {
            req.stderr = dir.join("stderr").display().to_string();
        }
        let mut opts = wren_protocol::runc_options::Options::new();
        opts.root = self.cfg.runtime_root().display().to_string();
        let mut any = Any::new();
        any.type_url = wren_protocol::type_urls::RUNC_OPTIONS.to_string();
        any.value = encode(&opts);
        req.options = MessageField::some(any);
        let t = Instant::now();
        let resp: shimapi::CreateTaskResponse = self.shim_call(name, "Create", &req)?;
        log::debug!("{name}: task created in {:?}", t.elapsed());
        timing::mark(name, "wrend.created");
        let m = self.get(name)?;
        m.rec.pid = resp.pid;
        m.rec.started = false;
        m.state = State::Created;
        self.save(name);
        self.events
            .emit("/container/create", name, format!("pid {}", resp.pid));
        Ok(())
    }

    fn start_task(&mut self, name: &str) -> Result<(), ManagerError> {
        let mut req = shimapi::StartRequest::new();
        req.id = name.to_string();
        let resp: shimapi::StartResponse = self.shim_call(name, "Start", &req)?;
        let m = self.get(name)?;
        m.rec.pid = resp.pid;
        m.rec.started = true;
        m.rec.last_error.clear();
        m.state = State::Running;
        m.started_at = Some(Instant::now());
        self.save(name);
        self.events
            .emit("/container/start", name, format!("pid {}", resp.pid));
        Ok(())
    }

    /// Removes a stopped task from the shim, keeping the shim.
    fn delete_task(&mut self, name: &str) {
        let mut req = shimapi::DeleteRequest::new();
        req.id = name.to_string();
        match self.shim_call::<_, shimapi::DeleteResponse>(name, "Delete", &req) {
            Ok(_) => {}
            Err(ManagerError::Shim { source, .. }) if is_not_found(&source) => {}
            Err(e) => log::warn!("{}", wren_runtime::error::chain(&e)),
        }
    }

    /// (Re)creates and starts the task; a failure is recorded and handled
    /// like an exit, so the restart policy applies to it too.
    fn run_task(&mut self, name: &str) -> Result<(), ManagerError> {
        self.delete_task_if_any(name);
        let result = self.create_task(name).and_then(|()| self.start_task(name));
        if let Err(e) = &result {
            let msg = wren_runtime::error::chain(e);
            self.events
                .emit("/container/start-failed", name, msg.clone());
            if let Some(m) = self.containers.get_mut(name) {
                m.rec.last_error = msg;
                m.state = State::Stopped;
            }
            // A created but unstarted task must not linger.
            self.delete_task_if_any(name);
            self.save(name);
        }
        result
    }

    fn delete_task_if_any(&mut self, name: &str) {
        let has_shim = self.containers.get(name).is_some_and(|m| m.shim.is_some());
        if has_shim {
            self.delete_task(name);
        }
    }

    /// Asks the shim to exit (after its task is deleted). Its pidfd stays
    /// watched: the exit is noticed by the loop, which keeps serving the
    /// shim's last event deliveries meanwhile.
    fn shutdown_shim(&mut self, name: &str) {
        let Some(m) = self.containers.get_mut(name) else {
            return;
        };
        let pidfd = m.shim_pidfd.take();
        let had_shim = m.shim.is_some();
        let address = m.rec.shim_address.clone();
        if had_shim {
            let req = shimapi::ShutdownRequest::new();
            if let Err(e) = self.shim_call::<_, Empty>(name, "Shutdown", &req) {
                log::debug!("shutdown shim of {name}: {e}");
            }
        }
        if let Some(m) = self.containers.get_mut(name) {
            m.shim = None;
            m.rec.shim_address.clear();
            m.rec.shim_pid = 0;
        }
        if let Some(fd) = pidfd {
            if had_shim {
                self.departing.insert(
                    fd.as_raw_fd(),
                    Departing {
                        name: name.to_string(),
                        address,
                        deadline: Instant::now() + SHIM_EXIT_WAIT,
                        pidfd: fd,
                        replies: Vec::new(),
                    },
                );
            } else {
                self.unwatch(fd.as_raw_fd());
            }
        }
    }

    /// A departing shim exited (or overstayed): answer who waited for it.
    fn departed(&mut self, fd: RawFd) {
        if let Some(d) = self.departing.remove(&fd) {
            timing::mark(&d.name, "wrend.departed");
            self.unwatch(fd);
            remove_socket(&d.address);
            for (r, reply) in d.replies {
                r.send(Ok(reply));
            }
            drop(d.pidfd);
        }
    }

    // ---- exits and restarts --------------------------------------------

    /// The init of `name` exited with `status` (event, State, or shim death).
    fn init_exited(&mut self, name: &str, status: u32, at: i64) {
        self.drain_stdio(name);
        let Some(m) = self.containers.get_mut(name) else {
            return;
        };
        m.state = State::Stopped;
        m.rec.started = false;
        // Exec exits nobody waited for die with the init.
        m.exec_exits.clear();
        m.rec.exit_status = Some(status);
        m.rec.exited_at = at;
        let ran_for = m.started_at.take().map_or(Duration::ZERO, |t| t.elapsed());
        let waiters = std::mem::take(&mut m.waiters);
        let stop_waiters = std::mem::take(&mut m.stop_waiters);
        m.stopping = false;
        m.kill_at = None;
        let policy = RestartPolicy::parse(&m.rec.restart_policy).unwrap_or_default();
        if ran_for >= policy::STABLE_PERIOD {
            // A stable run starts the count `on-failure:N` compares with over.
            m.rec.restart_count = 0;
        }
        let restart = policy.should_restart(status, m.rec.restart_count, m.rec.stopped_by_user);
        if restart {
            let delay = policy::next_backoff(m.backoff, ran_for);
            m.backoff = Some(delay);
            m.restart_at = Some(Instant::now() + delay);
            m.state = State::Restarting;
        }
        let auto_remove = m.rec.auto_remove && !restart;
        let delay = m.backoff;
        self.save(name);
        self.events
            .emit("/container/exit", name, format!("status {status}"));
        let mut w = api::WaitResponse::new();
        w.exit_status = status;
        w.exited_at = at;
        for r in waiters {
            r.send(Ok(encode(&w)));
        }
        if restart {
            self.events.emit(
                "/container/restart-scheduled",
                name,
                format!("in {} ms", delay.unwrap_or_default().as_millis()),
            );
        }
        for r in stop_waiters {
            r.send(
                self.container_response(name)
                    .map(|c| encode(&c))
                    .map_err(|e| e.to_status()),
            );
        }
        if auto_remove {
            if let Err(e) = self.remove(name, true) {
                log::warn!("auto-remove {name}: {}", wren_runtime::error::chain(&e));
            }
        }
    }

    /// A process of `name` exited, as the shim's `/tasks/exit` says.
    pub fn task_exit(&mut self, name: &str, id: &str, pid: u32, status: u32, at: i64) {
        timing::mark(name, "wrend.exit");
        let Some(m) = self.containers.get_mut(name) else {
            return;
        };
        if id != name {
            m.exec_exits.insert(id.to_string(), (status, at));
            let waiters = m.exec_waiters.remove(id).unwrap_or_default();
            if !waiters.is_empty() {
                m.exec_exits.remove(id);
            }
            let mut w = api::WaitResponse::new();
            w.exit_status = status;
            w.exited_at = at;
            for r in waiters {
                r.send(Ok(encode(&w)));
            }
            let mut req = shimapi::DeleteRequest::new();
            req.id = name.to_string();
            req.exec_id = id.to_string();
            if let Err(e) = self.shim_call::<_, shimapi::DeleteResponse>(name, "Delete", &req) {
                log::debug!("delete exec {id}: {e}");
            }
            self.events.emit(
                "/container/exec-exit",
                name,
                format!("{id} status {status}"),
            );
            return;
        }
        if m.rec.pid != pid || !m.state.is_live() {
            log::debug!("{name}: stale exit of pid {pid}");
            return;
        }
        self.init_exited(name, status, at);
    }

    /// The shim behind a watched pidfd exited.
    pub fn shim_exited(&mut self, fd: RawFd) {
        if self.departing.contains_key(&fd) {
            return self.departed(fd);
        }
        let Some(name) = self.owners.get(&fd).cloned() else {
            return;
        };
        self.unwatch(fd);
        let Some(m) = self.containers.get_mut(&name) else {
            return;
        };
        m.shim_pidfd = None;
        m.shim = None;
        let live = m.state.is_live();
        let bundle = m.rec.bundle.clone();
        m.rec.shim_address.clear();
        m.rec.shim_pid = 0;
        self.events
            .emit("/container/shim-died", &name, String::new());
        // Kill what is left and remove the runtime state and socket.
        self.launch(&name, &bundle).delete();
        if live {
            self.init_exited(&name, LOST_STATUS, now_nanos());
        } else {
            self.save(&name);
        }
    }

    /// Output is waiting in a fifo.
    pub fn fifo_readable(&mut self, fd: RawFd) {
        let Some(name) = self.owners.get(&fd) else {
            return;
        };
        if let Some(m) = self.containers.get_mut(name) {
            if m.shim_log_fd.as_ref().is_some_and(|f| f.as_raw_fd() == fd) {
                m.shim_log.drain(fd);
            } else {
                m.log.drain(fd);
            }
        }
    }

    /// The earliest timer (restart or stop deadline).
    pub fn next_deadline(&self) -> Option<Instant> {
        self.containers
            .values()
            .flat_map(|m| [m.restart_at, m.kill_at])
            .flatten()
            .chain(self.departing.values().map(|d| d.deadline))
            .min()
    }

    /// Fires the timers that are due.
    pub fn fire_timers(&mut self) {
        let now = Instant::now();
        let overdue: Vec<RawFd> = self
            .departing
            .iter()
            .filter(|(_, d)| d.deadline <= now)
            .map(|(fd, _)| *fd)
            .collect();
        for fd in overdue {
            if let Some(d) = self.departing.get(&fd) {
                log::warn!("shim of {} did not exit after Shutdown; killing it", d.name);
                kill_pidfd(&d.pidfd);
            }
            self.departed(fd);
        }
        let due: Vec<(String, bool)> = self
            .containers
            .iter()
            .flat_map(|(n, m)| {
                let restart = m
                    .restart_at
                    .filter(|t| *t <= now)
                    .map(|_| (n.clone(), true));
                let kill = m.kill_at.filter(|t| *t <= now).map(|_| (n.clone(), false));
                [restart, kill]
            })
            .flatten()
            .collect();
        for (name, is_restart) in due {
            if is_restart {
                if let Some(m) = self.containers.get_mut(&name) {
                    m.restart_at = None;
                    m.rec.restart_count += 1;
                }
                self.events.emit("/container/restart", &name, String::new());
                if self.run_task(&name).is_err() {
                    // A failed start counts as a failed run (no run time,
                    // so the backoff keeps doubling).
                    self.init_exited(&name, START_FAILED_STATUS, now_nanos());
                }
            } else {
                if let Some(m) = self.containers.get_mut(&name) {
                    m.kill_at = None;
                }
                self.events
                    .emit("/container/stop-timeout", &name, "SIGKILL".into());
                if let Err(e) = self.signal(&name, "", libc::SIGKILL as u32, true) {
                    log::warn!("stop {name}: {}", wren_runtime::error::chain(&e));
                }
            }
        }
    }

    // ---- startup -------------------------------------------------------

    /// Loads every record, reconnects to live shims, learns exits that
    /// happened while wrend was down, and starts containers marked to start
    /// at boot.
    pub fn restore(&mut self) {
        let dir = self.cfg.records_dir.join("containers");
        for rec in record::load_all(&dir) {
            match rec {
                Ok(rec) => self.restore_one(rec),
                Err(e) => log::error!("{}", wren_runtime::error::chain(&e)),
            }
        }
        let names: Vec<String> = self.containers.keys().cloned().collect();
        for name in names {
            let Some(m) = self.containers.get(&name) else {
                continue;
            };
            let policy = RestartPolicy::parse(&m.rec.restart_policy).unwrap_or_default();
            let boot = m.rec.start_at_boot
                && m.state == State::Stopped
                && (!m.rec.stopped_by_user || policy == RestartPolicy::Always);
            // A restart that was pending when wrend went down.
            let pending = m.state == State::Stopped
                && m.restart_at.is_none()
                && m.rec.exit_status.is_some_and(|status| {
                    policy.should_restart(status, m.rec.restart_count, m.rec.stopped_by_user)
                });
            if boot {
                if let Some(m) = self.containers.get_mut(&name) {
                    m.rec.stopped_by_user = false;
                }
                self.events
                    .emit("/container/boot-start", &name, String::new());
                if let Err(e) = self.run_task(&name) {
                    log::error!("start {name} at boot: {}", wren_runtime::error::chain(&e));
                }
            } else if pending {
                if let Some(m) = self.containers.get_mut(&name) {
                    m.restart_at = Some(Instant::now() + policy::BACKOFF_INITIAL);
                    m.state = State::Restarting;
                }
                self.events.emit(
                    "/container/restart-scheduled",
                    &name,
                    format!("in {} ms", policy::BACKOFF_INITIAL.as_millis()),
                );
            }
        }
    }

    fn restore_one(&mut self, rec: Record) {
        let name = rec.name.clone();
        let address = rec.shim_address.clone();
        let was_started = rec.started;
        self.containers.insert(name.clone(), self.new_managed(rec));
        if address.is_empty() {
            return;
        }
        let connected = TaskClient::connect(&address).and_then(|mut c| {
            let mut req = shimapi::ConnectRequest::new();
            req.id = name.clone();
            let r: shimapi::ConnectResponse = c.call("Connect", &req)?;
            Ok((c, r.shim_pid))
        });
        let (client, pid) = match connected {
            Ok(c) => c,
            Err(e) => {
                log::warn!("{name}: shim {address} is gone ({e}); cleaning up");
                let bundle = self.containers[&name].rec.bundle.clone();
                self.launch(&name, &bundle).delete();
                if let Some(m) = self.containers.get_mut(&name) {
                    m.rec.shim_address.clear();
                    m.rec.shim_pid = 0;
                    if m.rec.started {
                        m.state = State::Running;
                    }
                }
                if self.containers[&name].rec.started {
                    self.init_exited(&name, LOST_STATUS, now_nanos());
                } else {
                    self.save(&name);
                }
                return;
            }
        };
        self.adopt_shim(&name, client, &address, pid);
        let mut req = shimapi::StateRequest::new();
        req.id = name.clone();
        match self.shim_call::<_, shimapi::StateResponse>(&name, "State", &req) {
            Ok(s) => {
                let state = task_state(s.status.enum_value_or(TaskStatus::UNKNOWN));
                if let Err(e) = self.open_stdio(&name) {
                    log::warn!("{}", wren_runtime::error::chain(&e));
                }
                let m = self.get(&name).ok();
                if let Some(m) = m {
                    m.rec.pid = s.pid;
                    m.state = if state == State::Stopped {
                        State::Running
                    } else {
                        state
                    };
                    if state == State::Running {
                        m.started_at = Some(Instant::now());
                    }
                }
                self.events.emit(
                    "/container/reconnect",
                    &name,
                    format!("{} pid {}", state.as_str(), s.pid),
                );
                if state == State::Stopped && !was_started {
                    // Its exit was handled before wrend went down.
                    if let Some(m) = self.containers.get_mut(&name) {
                        m.state = State::Stopped;
                    }
                } else if state == State::Stopped {
                    let at = s.exited_at.as_ref().map_or(now_nanos(), |t| {
                        t.seconds * 1_000_000_000 + i64::from(t.nanos)
                    });
                    self.init_exited(&name, s.exit_status, at);
                }
            }
            Err(e) => {
                log::info!("{name}: no task in its shim ({e})");
                if let Some(m) = self.containers.get_mut(&name) {
                    m.state = State::Stopped;
                }
            }
        }
    }

    // ---- API -------------------------------------------------------------

    pub fn create(
        &mut self,
        req: api::CreateRequest,
    ) -> Result<api::ContainerResponse, ManagerError> {
        let name = req.name.clone();
        timing::mark(&name, "wrend.create");
        if self.containers.contains_key(&name) {
            return Err(ManagerError::AlreadyExists(name));
        }
        let (policy, spec) = validate_create(&req)?;
        let terminal = spec["process"]["terminal"].as_bool().unwrap_or(false);
        let record_dir = self.cfg.record_dir(&name);
        let bundle = record_dir.join("bundle");
        let written = std::fs::create_dir_all(&bundle)
            .and_then(|()| std::fs::create_dir_all(self.cfg.container_state_dir(&name)))
            .and_then(|()| {
                std::fs::write(
                    bundle.join("config.json"),
                    serde_json::to_vec_pretty(&spec).unwrap_or_default(),
                )
            });
        if let Err(source) = written {
            self.remove_files(&name);
            return Err(ManagerError::Io {
                name,
                what: "write bundle",
                path: bundle,
                source,
            });
        }
        let rec = Record {
            name: name.clone(),
            bundle,
            source: if req.bundle.is_empty() {
                req.rootfs
            } else {
                req.bundle
            },
            restart_policy: policy.to_string(),
            start_at_boot: req.start_at_boot || policy.starts_at_boot(),
            auto_remove: req.auto_remove,
            terminal,
            stdin: req.stdin || terminal,
            created_at: now_nanos(),
            ..Record::default()
        };
        self.containers.insert(name.clone(), self.new_managed(rec));
        self.save(&name);
        let created = self.create_task(&name).and_then(|()| {
            if req.start {
                self.start_task(&name)
            } else {
                Ok(())
            }
        });
        if let Err(e) = created {
            // Nothing may be left behind for a container that failed to start.
            self.delete_task_if_any(&name);
            self.discard(&name);
            return Err(e);
        }
        self.container_response(&name)
    }

    /// Forgets a container completely: shim, fifos, files.
    fn discard(&mut self, name: &str) {
        self.shutdown_shim(name);
        self.close_stdio(name);
        let bundle = self.containers.get(name).map(|m| m.rec.bundle.clone());
        if let Some(bundle) = bundle {
            // Clean the runtime state even if the shim could not.
            let has_state = self.cfg.runtime_root().join(name).exists();
            if has_state {
                self.launch(name, &bundle).delete();
            }
        }
        self.containers.remove(name);
        self.remove_files(name);
    }

    fn remove_files(&self, name: &str) {
        for dir in [
            self.cfg.container_state_dir(name),
            self.cfg.record_dir(name),
        ] {
            if let Err(e) = std::fs::remove_dir_all(&dir) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    log::warn!("remove {}: {e}", dir.display());
                }
            }
        }
    }

    pub fn start(&mut self, name: &str) -> Result<api::ContainerResponse, ManagerError> {
        timing::mark(name, "wrend.start");
        let m = self.get(name)?;
        match m.state {
            State::Running | State::Paused => {
                return Err(ManagerError::FailedPrecondition(format!(
                    "container {name} is already running"
                )))
            }
            State::Created => self.start_task(name)?,
            _ => {
                m.rec.stopped_by_user = false;
                m.restart_at = None;
                m.backoff = None;
                m.rec.restart_count = 0;
                self.run_task(name)?;
            }
        }
        self.container_response(name)
    }

    pub fn wait(&mut self, name: &str, exec_id: &str, responder: Responder) {
        let m = match self.get(name) {
            Ok(m) => m,
            Err(e) => return responder.send(Err(e.to_status())),
        };
        let mut w = api::WaitResponse::new();
        if !exec_id.is_empty() {
            if let Some((status, at)) = m.exec_exits.remove(exec_id) {
                w.exit_status = status;
                w.exited_at = at;
                return responder.send(Ok(encode(&w)));
            }
            m.exec_waiters
                .entry(exec_id.to_string())
                .or_default()
                .push(responder);
            return;
        }
        if m.state == State::Stopped {
            w.exit_status = m.rec.exit_status.unwrap_or(0);
            w.exited_at = m.rec.exited_at;
            return responder.send(Ok(encode(&w)));
        }
        m.waiters.push(responder);
    }

    fn signal(
        &mut self,
        name: &str,
        exec_id: &str,
        signal: u32,
        all: bool,
    ) -> Result<(), ManagerError> {
        let mut req = shimapi::KillRequest::new();
        req.id = name.to_string();
        req.exec_id = exec_id.to_string();
        req.signal = signal;
        req.all = all;
        self.shim_call::<_, Empty>(name, "Kill", &req).map(|_| ())
    }

    pub fn kill(&mut self, req: &api::KillRequest) -> Result<api::Empty, ManagerError> {
        let m = self.get(&req.name)?;
        if req.exec_id.is_empty() && !m.state.is_live() {
            return Err(ManagerError::FailedPrecondition(format!(
                "container {} is not running",
                req.name
            )));
        }
        let signal = if req.signal == 0 {
            libc::SIGKILL as u32
        } else {
            req.signal
        };
        self.signal(&req.name, &req.exec_id, signal, req.all)?;
        Ok(api::Empty::new())
    }

    pub fn stop(&mut self, req: &api::StopRequest, responder: Responder) {
        let name = req.name.clone();
        let m = match self.get(&name) {
            Ok(m) => m,
            Err(e) => return responder.send(Err(e.to_status())),
        };
        m.rec.stopped_by_user = true;
        m.restart_at = None;
        let state = m.state;
        if state == State::Restarting {
            m.state = State::Stopped;
        }
        if !state.is_live() {
            self.save(&name);
            return responder.send(
                self.container_response(&name)
                    .map(|c| encode(&c))
                    .map_err(|e| e.to_status()),
            );
        }
        if state == State::Created {
            // Never started: nothing to signal gracefully.
            self.delete_task(&name);
            if let Some(m) = self.containers.get_mut(&name) {
                m.state = State::Stopped;
            }
            self.save(&name);
            return responder.send(
                self.container_response(&name)
                    .map(|c| encode(&c))
                    .map_err(|e| e.to_status()),
            );
        }
        if state == State::Paused {
            let _ = self.pause_resume(&name, false);
        }
        let signal = if req.signal == 0 {
            libc::SIGTERM as u32
        } else {
            req.signal
        };
        let timeout = if req.timeout_secs == 0 {
            DEFAULT_STOP_TIMEOUT
        } else {
            Duration::from_secs(u64::from(req.timeout_secs))
        };
        self.save(&name);
        if let Err(e) = self.signal(&name, "", signal, false) {
            return responder.send(Err(e.to_status()));
        }
        if let Some(m) = self.containers.get_mut(&name) {
            m.stopping = true;
            m.kill_at = Some(Instant::now() + timeout);
            m.stop_waiters.push(responder);
        }
    }

    /// `rm`: answers once the container's shim has exited.
    pub fn remove_request(&mut self, name: &str, force: bool, responder: Responder) {
        timing::mark(name, "wrend.delete");
        let reply = match self.remove(name, force) {
            Ok(r) => encode(&r),
            Err(e) => return responder.send(Err(e.to_status())),
        };
        match self.departing.values_mut().find(|d| d.name == name) {
            Some(d) => d.replies.push((responder, reply)),
            None => responder.send(Ok(reply)),
        }
    }

    /// Removes a container; a live one needs `force` (it is killed first).
    pub fn remove(
        &mut self,
        name: &str,
        force: bool,
    ) -> Result<api::ContainerResponse, ManagerError> {
        let m = self.get(name)?;
        let state = m.state;
        if state.is_live() && state != State::Created && !force {
            return Err(ManagerError::FailedPrecondition(format!(
                "container {name} is {}: stop it first, or use rm -f",
                state.as_str()
            )));
        }
        let resp = self.container_response(name)?;
        if matches!(state, State::Running | State::Paused) {
            if state == State::Paused {
                let _ = self.pause_resume(name, false);
            }
            if let Err(e) = self.signal(name, "", libc::SIGKILL as u32, true) {
                log::warn!("rm {name}: {}", wren_runtime::error::chain(&e));
            }
            let mut req = shimapi::WaitRequest::new();
            req.id = name.to_string();
            if let Err(e) = self.shim_call::<_, shimapi::WaitResponse>(name, "Wait", &req) {
                log::warn!("rm {name}: {}", wren_runtime::error::chain(&e));
            }
        }
        self.delete_task_if_any(name);
        let (waiters, stop_waiters) = match self.containers.get_mut(name) {
            Some(m) => (
                std::mem::take(&mut m.waiters),
                std::mem::take(&mut m.stop_waiters),
            ),
            None => (Vec::new(), Vec::new()),
        };
        for r in waiters.into_iter().chain(stop_waiters) {
            r.send(Err(ManagerError::NotFound(name.to_string()).to_status()));
        }
        self.discard(name);
        self.events.emit("/container/delete", name, String::new());
        Ok(resp)
    }

    pub fn list(&self) -> api::ListResponse {
        let mut r = api::ListResponse::new();
        r.containers = self
            .containers
            .keys()
            .filter_map(|n| self.describe(n).ok())
            .collect();
        r
    }

    pub fn inspect(&self, name: &str) -> Result<api::ContainerResponse, ManagerError> {
        self.container_response(name)
    }

    pub fn exec(&mut self, req: &api::ExecRequest) -> Result<api::ExecResponse, ManagerError> {
        let m = self.get(&req.name)?;
        if m.state != State::Running {
            return Err(ManagerError::FailedPrecondition(format!(
                "container {} is {}, not running",
                req.name,
                m.state.as_str()
            )));
        }
        if req.exec_id.is_empty() || req.args.is_empty() {
            return Err(ManagerError::InvalidArgument(
                "exec needs an exec id and a command".into(),
            ));
        }
        let overrides = spec::Overrides {
            args: req.args.clone(),
            env: req.env.clone(),
            cwd: req.cwd.clone(),
            terminal: req.terminal,
            hostname: String::new(),
        };
        let process = spec::exec_process(&m.rec.bundle.join("config.json"), &overrides).map_err(
            |source| ManagerError::Spec {
                name: req.name.clone(),
                source,
            },
        )?;
        let mut x = shimapi::ExecProcessRequest::new();
        x.id = req.name.clone();
        x.exec_id = req.exec_id.clone();
        x.terminal = req.terminal;
        x.stdin = req.stdin.clone();
        x.stdout = req.stdout.clone();
        x.stderr = req.stderr.clone();
        let mut any = Any::new();
        any.type_url = wren_protocol::type_urls::OCI_PROCESS.to_string();
        any.value = serde_json::to_vec(&process).unwrap_or_default();
        x.spec = MessageField::some(any);
        self.shim_call::<_, Empty>(&req.name, "Exec", &x)?;
        let mut s = shimapi::StartRequest::new();
        s.id = req.name.clone();
        s.exec_id = req.exec_id.clone();
        let started = self.shim_call::<_, shimapi::StartResponse>(&req.name, "Start", &s);
        let started = match started {
            Ok(s) => s,
            Err(e) => {
                let mut d = shimapi::DeleteRequest::new();
                d.id = req.name.clone();
                d.exec_id = req.exec_id.clone();
                let _ = self.shim_call::<_, shimapi::DeleteResponse>(&req.name, "Delete", &d);
                return Err(e);
            }
        };
        self.events.emit(
            "/container/exec",
            &req.name,
            format!("{} pid {}", req.exec_id, started.pid),
        );
        let mut r = api::ExecResponse::new();
        r.pid = started.pid;
        Ok(r)
    }

    pub fn resize(&mut self, req: &api::ResizeRequest) -> Result<api::Empty, ManagerError> {
        let mut r = shimapi::ResizePtyRequest::new();
        r.id = req.name.clone();
        r.exec_id = req.exec_id.clone();
        r.width = req.width;
        r.height = req.height;
        self.shim_call::<_, Empty>(&req.name, "ResizePty", &r)?;
        Ok(api::Empty::new())
    }

    pub fn close_stdin(
        &mut self,
        req: &api::CloseStdinRequest,
    ) -> Result<api::Empty, ManagerError> {
        let mut r = shimapi::CloseIORequest::new();
        r.id = req.name.clone();
        r.exec_id = req.exec_id.clone();
        r.stdin = true;
        self.shim_call::<_, Empty>(&req.name, "CloseIO", &r)?;
        Ok(api::Empty::new())
    }

    /// Hands the init's terminal fifos to an interactive client; wrend stops
    /// copying its output to the log until [`Self::detach`].
    pub fn attach(&mut self, name: &str) -> Result<api::AttachResponse, ManagerError> {
        let dir = self.cfg.container_state_dir(name);
        let m = self.get(name)?;
        if !m.rec.stdin {
            return Err(ManagerError::FailedPrecondition(format!(
                "container {name} was not created with -i or -t"
            )));
        }
        if m.attached {
            return Err(ManagerError::FailedPrecondition(format!(
                "container {name} already has a client attached"
            )));
        }
        m.attached = true;
        let fd = m.stdout.as_ref().map(|f| f.as_raw_fd());
        if let Some(fd) = fd {
            self.watches.push(Watch::Remove(fd));
        }
        let mut r = api::AttachResponse::new();
        r.stdin = dir.join("stdin").display().to_string();
        r.stdout = dir.join("stdout").display().to_string();
        Ok(r)
    }

    pub fn detach(&mut self, name: &str) -> Result<api::Empty, ManagerError> {
        let m = self.get(name)?;
        if m.attached {
            m.attached = false;
            let fd = m.stdout.as_ref().map(|f| f.as_raw_fd());
            if let Some(fd) = fd {
                self.watches.push(Watch::Add(fd, WatchKind::Fifo));
            }
        }
        Ok(api::Empty::new())
    }

    pub fn pause_resume(&mut self, name: &str, pause: bool) -> Result<api::Empty, ManagerError> {
        if pause {
            let mut r = shimapi::PauseRequest::new();
            r.id = name.to_string();
            self.shim_call::<_, Empty>(name, "Pause", &r)?;
        } else {
            let mut r = shimapi::ResumeRequest::new();
            r.id = name.to_string();
            self.shim_call::<_, Empty>(name, "Resume", &r)?;
        }
        let m = self.get(name)?;
        m.state = if pause { State::Paused } else { State::Running };
        self.events.emit(
            if pause {
                "/container/pause"
            } else {
                "/container/resume"
            },
            name,
            String::new(),
        );
        Ok(api::Empty::new())
    }

    pub fn update(&mut self, req: &api::UpdateRequest) -> Result<api::Empty, ManagerError> {
        if serde_json::from_str::<serde_json::Value>(&req.resources_json).is_err() {
            return Err(ManagerError::InvalidArgument(
                "resources must be JSON OCI LinuxResources".into(),
            ));
        }
        let mut r = shimapi::UpdateTaskRequest::new();
        r.id = req.name.clone();
        let mut any = Any::new();
        any.type_url = wren_protocol::type_urls::OCI_LINUX_RESOURCES.to_string();
        any.value = req.resources_json.as_bytes().to_vec();
        r.resources = MessageField::some(any);
        self.shim_call::<_, Empty>(&req.name, "Update", &r)?;
        Ok(api::Empty::new())
    }

    pub fn stats(&mut self, name: &str) -> Result<api::StatsResponse, ManagerError> {
        let mut r = shimapi::StatsRequest::new();
        r.id = name.to_string();
        let s: shimapi::StatsResponse = self.shim_call(name, "Stats", &r)?;
        let mut out = api::StatsResponse::new();
        if let Some(any) = s.stats.as_ref() {
            out.type_url = any.type_url.clone();
            out.value = any.value.clone();
        }
        Ok(out)
    }

    pub fn pids(&mut self, name: &str) -> Result<api::PidsResponse, ManagerError> {
        let mut r = shimapi::PidsRequest::new();
        r.id = name.to_string();
        let p: shimapi::PidsResponse = self.shim_call(name, "Pids", &r)?;
        let mut out = api::PidsResponse::new();
        out.pids = p.processes.iter().map(|p| p.pid).collect();
        Ok(out)
    }
}

/// Everything about a Create request that can be checked before anything is
/// made: the name, the restart policy, bundle vs rootfs, and the spec built
/// from them with the request's overrides. Touches nothing but reads of the
/// bundle's config.json and the rootfs path; the `wrend_request` fuzz target
/// runs it on arbitrary requests.
pub fn validate_create(req: &api::CreateRequest) -> Result<(RestartPolicy, Value), ManagerError> {
    let name = &req.name;
    if !config::valid_name(name) {
        return Err(ManagerError::InvalidArgument(format!(
            "invalid container name {name:?}: use 1-64 of [A-Za-z0-9_.-], starting with a letter or digit"
        )));
    }
    let policy = RestartPolicy::parse(&req.restart_policy)
        .map_err(|e| ManagerError::InvalidArgument(e.to_string()))?;
    if req.bundle.is_empty() == req.rootfs.is_empty() {
        return Err(ManagerError::InvalidArgument(
            "give exactly one of a bundle or a rootfs".into(),
        ));
    }
    if req.auto_remove && policy != RestartPolicy::No {
        return Err(ManagerError::InvalidArgument(
            "--rm cannot be combined with a restart policy".into(),
        ));
    }
    let overrides = spec::Overrides {
        args: req.args.clone(),
        env: req.env.clone(),
        cwd: req.cwd.clone(),
        terminal: req.terminal,
        hostname: name.clone(),
    };
    let bundle_src = (!req.bundle.is_empty()).then(|| PathBuf::from(&req.bundle));
    let rootfs_src = (!req.rootfs.is_empty()).then(|| PathBuf::from(&req.rootfs));
    let spec = spec::build(bundle_src.as_deref(), rootfs_src.as_deref(), &overrides).map_err(
        |source| ManagerError::Spec {
            name: name.clone(),
            source,
        },
    )?;
    Ok((policy, spec))
}
