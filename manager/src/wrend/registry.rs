//! The registry: every container wrend manages ([`Registry`]), what wrend
//! holds for each one (its record, state, shim connection, stdio fifos and
//! log files, timers, parked callers) and the fds the loop must watch for
//! them. What happens to a container lives beside it, by concern:
//! [`super::shim_lifecycle`] (shims and tasks), [`super::stdio`] (fifos and
//! logs), [`super::restart`] (exits, restart timers, stop deadlines),
//! [`super::restore`] (picking containers up after a wrend restart) and
//! [`super::api`] (one handler per API request).
//!
//! Runs in wrend's loop thread.

use std::collections::{BTreeMap, HashMap};
use std::os::fd::{OwnedFd, RawFd};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

use protobuf::{Message, MessageField};
use wren_protocol::manager as api;

use super::config::Config;
use super::error::ManagerError;
use super::event_log::EventLog;
use super::record::Record;
use super::shim_client::TaskClient;
use super::shim_lifecycle::Departing;
use crate::logfile::LogFile;
use wren_ttrpc::server::Responder;

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

    pub(super) fn is_live(self) -> bool {
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
    /// A network helper's stdout ([`super::network::Helper`]).
    Helper,
}

/// One managed container.
pub(super) struct Managed {
    pub(super) rec: Record,
    /// Health check timers ([`super::health`]).
    pub(super) health: super::health::HealthTimers,
    pub(super) state: State,
    pub(super) shim: Option<TaskClient>,
    pub(super) shim_pidfd: Option<OwnedFd>,
    pub(super) stdout: Option<OwnedFd>,
    pub(super) stderr: Option<OwnedFd>,
    pub(super) log: LogFile,
    /// The `log` fifo in the bundle: the shim daemon's stderr.
    pub(super) shim_log_fd: Option<OwnedFd>,
    /// `shim.log` beside the container's log.
    pub(super) shim_log: LogFile,
    pub(super) attached: bool,
    /// Killed to be started again whatever its restart policy says (the
    /// health check's `restart` action, a rejoin): [`Registry::kill_to_restart`].
    pub(super) restart_forced: bool,
    pub(super) started_at: Option<Instant>,
    pub(super) backoff: Option<Duration>,
    pub(super) restart_at: Option<Instant>,
    pub(super) kill_at: Option<Instant>,
    pub(super) stopping: bool,
    pub(super) waiters: Vec<Responder>,
    pub(super) stop_waiters: Vec<Responder>,
    /// Exec processes' exits and their waiters; None while there are none
    /// (dropped again once every exit was collected).
    pub(super) execs: Option<Box<Execs>>,
}

/// The exits of a container's exec processes that nobody waited for yet,
/// and the clients waiting for the others. Boxed in [`Managed`]: most
/// containers never run an exec, and a `Managed` is resident per container.
#[derive(Default)]
pub(super) struct Execs {
    pub(super) waiters: HashMap<String, Vec<Responder>>,
    pub(super) exits: HashMap<String, (u32, i64)>,
}

impl Execs {
    /// Nothing kept and nobody waiting: the box can go.
    pub(super) fn is_idle(&self) -> bool {
        self.waiters.is_empty() && self.exits.is_empty()
    }
}

/// Everything wrend manages.
pub struct Registry {
    pub(super) departing: HashMap<RawFd, Departing>,
    /// Network helpers running, by their stdout pipe.
    pub(super) helpers: HashMap<RawFd, super::network::Helper>,
    pub(super) cfg: Config,
    pub(super) address: String,
    pub(super) socket_dir: PathBuf,
    /// Boxed: a B-tree node holds up to 11 entries inline, so unboxed
    /// `Managed`s (~1 KiB each) would leave most of every node's space empty.
    pub(super) containers: BTreeMap<Rc<str>, Box<Managed>>,
    /// Which container owns each watched fd (four per container: the name
    /// is shared with the map's key, not copied).
    pub(super) owners: HashMap<RawFd, Rc<str>>,
    pub(super) watches: Vec<Watch>,
    pub events: EventLog,
}

/// A reply's bytes.
pub(super) fn encode<M: Message>(m: &M) -> Vec<u8> {
    m.write_to_bytes().unwrap_or_default()
}

impl Registry {
    pub fn new(cfg: Config) -> Self {
        Self {
            address: cfg.address(),
            socket_dir: cfg.shim_socket_dir(),
            cfg,
            departing: HashMap::new(),
            helpers: HashMap::new(),
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

    pub(super) fn watch(&mut self, name: &str, fd: RawFd, kind: WatchKind) {
        let owner = match self.containers.get_key_value(name) {
            Some((key, _)) => key.clone(),
            None => name.into(),
        };
        self.owners.insert(fd, owner);
        self.watches.push(Watch::Add(fd, kind));
    }

    pub(super) fn unwatch(&mut self, fd: RawFd) {
        self.owners.remove(&fd);
        self.watches.push(Watch::Remove(fd));
    }

    pub(super) fn get(&mut self, name: &str) -> Result<&mut Managed, ManagerError> {
        self.containers
            .get_mut(name)
            .map(|m| &mut **m)
            .ok_or_else(|| ManagerError::NotFound(name.to_string()))
    }

    pub(super) fn save(&self, name: &str) {
        if let Some(m) = self.containers.get(name) {
            if let Err(e) = m.rec.save(&self.cfg.record_dir(name)) {
                log::error!("{}", wren_runtime::error::chain(&e));
            }
        }
    }

    pub(super) fn describe(&self, name: &str) -> Result<api::Container, ManagerError> {
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
        c.stdin = m.rec.stdin;
        c.stopped_by_user = m.rec.stopped_by_user;
        c.last_error = m.rec.last_error.clone();
        c.image = m.rec.image.clone();
        c.image_id = m.rec.image_id.clone();
        c.labels = m.rec.labels.clone();
        c.network = m.rec.network.clone();
        c.ip_address = m.rec.ip_address.clone();
        c.ports = m.rec.ports.clone();
        if crate::network::uses_cni(&m.rec.network) {
            let dir = self.cfg.record_dir(name);
            c.more_networks =
                super::network::networks_after_first(&dir, !m.rec.ip_address.is_empty());
        }
        c.health_status = m.rec.health_state.status.clone();
        c.health_failing_streak = m.rec.health_state.failing_streak;
        c.health_log = m
            .rec
            .health_state
            .log
            .iter()
            .map(|r| {
                let mut h = api::HealthResult::new();
                h.start = r.start;
                h.end = r.end;
                h.exit_code = r.exit_code;
                h.output = r.output.clone();
                h
            })
            .collect();
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
                c.cgroup_path = v["linux"]["cgroupsPath"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                // Its pid, ipc and uts modes: what the record keeps (a
                // joined or shareable one), else its own namespace or the
                // host's, as the spec has it.
                let spaces = v["linux"]["namespaces"].as_array();
                let own = |ty: &str| {
                    let kept = match ty {
                        "pid" => &m.rec.pid_mode,
                        "ipc" => &m.rec.ipc_mode,
                        "uts" => &m.rec.uts_mode,
                        _ => "",
                    };
                    if !kept.is_empty() {
                        return kept.to_string();
                    }
                    let has = spaces.is_some_and(|a| a.iter().any(|n| n["type"] == ty));
                    if has { "private" } else { "host" }.to_string()
                };
                c.pid_mode = own("pid");
                c.ipc_mode = own("ipc");
                c.uts_mode = own("uts");
            }
        }
        Ok(c)
    }

    pub(super) fn container_response(
        &self,
        name: &str,
    ) -> Result<api::ContainerResponse, ManagerError> {
        let mut r = api::ContainerResponse::new();
        r.container = MessageField::some(self.describe(name)?);
        Ok(r)
    }

    pub(super) fn new_managed(&self, rec: Record) -> Box<Managed> {
        // The container's own --log-opt, else wrend's.
        let log = LogFile::new(
            self.cfg.record_dir(&rec.name).join("log"),
            match rec.log_max_size {
                0 => self.cfg.log_max_size,
                n => n,
            },
            match rec.log_max_files {
                0 => self.cfg.log_keep,
                n => n,
            },
        )
        .timed();
        let shim_log = LogFile::new(
            self.cfg.record_dir(&rec.name).join("shim.log"),
            self.cfg.log_max_size,
            self.cfg.log_keep,
        );
        Box::new(Managed {
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
            restart_forced: false,
            started_at: None,
            backoff: None,
            restart_at: None,
            kill_at: None,
            stopping: false,
            waiters: Vec::new(),
            stop_waiters: Vec::new(),
            execs: None,
            health: Default::default(),
        })
    }

    /// Forgets a container completely: shim, fifos, files.
    pub(super) fn discard(&mut self, name: &str) {
        self.shutdown_shim(name);
        self.detach_network(name);
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
        // Its detach (if one runs) still reads the record directory.
        self.remove_files_when_detached(name);
    }

    pub(super) fn remove_files(&self, name: &str) {
        // An image container's overlay, should its shim not have taken it
        // down: never delete through a mount.
        let rootfs = self.cfg.record_dir(name).join("bundle").join("rootfs");
        while nix::mount::umount2(&rootfs, nix::mount::MntFlags::MNT_DETACH).is_ok() {}
        // An `--ipc shareable` container's /dev/shm (in its state dir).
        let shm = self.cfg.shm_dir(name);
        while nix::mount::umount2(&shm, nix::mount::MntFlags::MNT_DETACH).is_ok() {}
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
}
