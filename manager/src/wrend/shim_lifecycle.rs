//! Each container's shim and task, as wrend drives them: launch the shim
//! (or reuse the one that serves the container), create, start and delete
//! its task, shut the shim down when the container goes, and clean up
//! after a shim that died. How to run and call one shim is in
//! [`super::shim_client`]; this is what wrend does with it.
//!
//! Runs in wrend's loop thread.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::time::{Duration, Instant};

use protobuf::well_known_types::any::Any;
use protobuf::well_known_types::empty::Empty;
use protobuf::{Message, MessageField};
use wren_protocol::task as shimapi;
use wren_protocol::ttrpc_wire::Code;

use super::config;
use super::error::ManagerError;
use super::event_log::now_nanos;
use super::registry::{encode, Registry, State, WatchKind};
use super::shim_client::{Launch, TaskClient};
use wren_runtime::timing;
use wren_ttrpc::client::CallError;
use wren_ttrpc::server::Responder;

/// Exit status recorded when a container's shim vanished with it.
pub const LOST_STATUS: u32 = 128 + libc::SIGKILL as u32;
/// How long a shim may take to exit after Shutdown before it is killed.
const SHIM_EXIT_WAIT: Duration = Duration::from_secs(3);

/// A shim told to shut down, until its pidfd says it is gone.
pub(super) struct Departing {
    pub(super) name: String,
    /// Its socket, removed once it is gone (its bundle may be gone first).
    pub(super) address: String,
    pub(super) pidfd: OwnedFd,
    pub(super) deadline: Instant,
    /// `rm` callers and their prepared answers.
    pub(super) replies: Vec<(Responder, super::network::Reply)>,
}

/// A pidfd for `pid` (a shim, our child), if the kernel gives one.
pub(super) fn pidfd_open(pid: u32) -> Option<OwnedFd> {
    // SAFETY: pidfd_open(2) takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: the kernel just returned this fd to us; nothing else owns it.
    Some(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Removes a dead shim's socket file, if it is still there.
pub(super) fn remove_socket(address: &str) {
    if let Some(path) = wren_ttrpc::address::from_address(address) {
        if let Err(e) = wren_ttrpc::address::remove(&path) {
            log::debug!("remove {}: {e}", path.display());
        }
    }
}

/// SIGKILLs the process behind `pidfd`.
pub(super) fn kill_pidfd(pidfd: &OwnedFd) {
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

/// Whether a shim call failed because the task or process does not exist.
pub(super) fn is_not_found(e: &CallError) -> bool {
    matches!(e, CallError::Status { code, .. } if *code == Code::NOT_FOUND)
}

impl Registry {
    pub(super) fn launch<'a>(&'a self, name: &'a str, bundle: &'a Path) -> Launch<'a> {
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

    /// Connects to the container's shim, starting one if none serves it.
    pub(super) fn ensure_shim(&mut self, name: &str) -> Result<(), ManagerError> {
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

    pub(super) fn adopt_shim(&mut self, name: &str, client: TaskClient, address: &str, pid: u32) {
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
    pub(super) fn shim_call<Q: Message, R: Message>(
        &mut self,
        name: &str,
        what: &'static str,
        req: &Q,
    ) -> Result<R, ManagerError> {
        self.shim_call_for(name, what, req, super::shim_client::CALL_TIMEOUT)
    }

    /// [`Self::shim_call`] waiting up to `timeout`.
    pub(super) fn shim_call_for<Q: Message, R: Message>(
        &mut self,
        name: &str,
        what: &'static str,
        req: &Q,
        timeout: Duration,
    ) -> Result<R, ManagerError> {
        let m = self.get(name)?;
        let Some(shim) = m.shim.as_mut() else {
            return Err(ManagerError::FailedPrecondition(format!(
                "container {name} has no running shim"
            )));
        };
        shim.call_for(what, req, timeout)
            .map_err(|source| ManagerError::Shim {
                name: name.to_string(),
                what,
                source,
            })
    }

    /// Creates the task in the shim (the init blocked before exec).
    pub(super) fn create_task(&mut self, name: &str) -> Result<(), ManagerError> {
        self.create_task_from(name, None)
    }

    /// [`Self::create_task`]; with `checkpoint`, the shim prepares a task
    /// that its Start restores from that CRIU image (pid 0 until then).
    /// A CNI container's attach is waited for here (the loop does not run
    /// meanwhile): the checkpoint-restore path only; everything else goes
    /// through [`Self::create_task_then`].
    pub(super) fn create_task_from(
        &mut self,
        name: &str,
        checkpoint: Option<&Path>,
    ) -> Result<(), ManagerError> {
        self.settle(name);
        let cni = {
            let m = self.get(name)?;
            crate::network::uses_cni(&m.rec.network)
        };
        if cni {
            // The namespace the spec joins by path, attached through CNI
            // by the short-lived helper.
            let ip = super::network::attach(&self.cfg, name)?;
            let ports = crate::network::NetRequest::load(&self.cfg.record_dir(name))
                .map(|r| r.published_ports().iter().map(|p| p.to_string()).collect())
                .unwrap_or_default();
            let m = self.get(name)?;
            m.rec.ip_address = ip;
            m.rec.ports = ports;
        }
        let created = self.create_task_checkpoint(name, checkpoint);
        if created.is_err() && cni {
            super::network::detach(&self.cfg, name);
        }
        created
    }

    /// Creates the task in the shim, its network (if any) attached or
    /// being attached by the caller.
    pub(super) fn create_task_without_network(&mut self, name: &str) -> Result<(), ManagerError> {
        self.create_task_checkpoint(name, None)
    }

    /// The refusal a start of image container `name` gets while `wren cp`
    /// holds its overlay lock (checked before its kept task is deleted, so
    /// the copy keeps the mount it uses); `None` when the start may go on.
    pub(super) fn overlay_busy(&self, name: &str) -> Option<ManagerError> {
        let m = self.containers.get(name)?;
        if m.rec.image_layers.is_empty() {
            return None;
        }
        match crate::overlay_lock::try_lock(&self.cfg.record_dir(name)) {
            Ok(None) => Some(copying(name)),
            // Free (released again at once), or no lock file to take:
            // the create path takes it for real.
            _ => None,
        }
    }

    fn create_task_checkpoint(
        &mut self,
        name: &str,
        checkpoint: Option<&Path>,
    ) -> Result<(), ManagerError> {
        let record_dir = self.cfg.record_dir(name);
        let image = !self.get(name)?.rec.image_layers.is_empty();
        // Held until the shim has mounted the overlay and answered: a
        // `wren cp` into the stopped container mounts the same upper dir.
        let _overlay = if image {
            let held =
                crate::overlay_lock::try_lock(&record_dir).map_err(|source| ManagerError::Io {
                    name: name.to_string(),
                    what: "lock",
                    path: record_dir.join(crate::overlay_lock::FILE),
                    source,
                })?;
            Some(held.ok_or_else(|| copying(name))?)
        } else {
            None
        };
        if self.get(name)?.rec.shares_namespaces() {
            self.prepare_shared(name)?;
        }
        self.open_stdio(name)?;
        self.ensure_shim(name)?;
        let dir = self.cfg.container_state_dir(name);
        let m = self.get(name)?;
        let mut req = shimapi::CreateTaskRequest::new();
        req.id = name.to_string();
        req.bundle = m.rec.bundle.display().to_string();
        req.terminal = m.rec.terminal;
        if !m.rec.image_layers.is_empty() {
            // The shim mounts it on <bundle>/rootfs and takes it down on
            // Delete, as it does for containerd's snapshots.
            req.rootfs
                .push(overlay_mount(&m.rec.image_layers, &record_dir));
        }
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
        if let Some(dir) = checkpoint {
            req.checkpoint = dir.display().to_string();
        }
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

    /// What sharing namespaces needs before the task is created: the
    /// shared /dev/shm, the joined namespaces' paths. Cold, out of line:
    /// wrend's resident text is the common path's.
    #[cold]
    #[inline(never)]
    fn prepare_shared(&mut self, name: &str) -> Result<(), ManagerError> {
        self.mount_shm(name)?;
        self.join_namespaces(name)
    }

    /// Mounts the /dev/shm tmpfs of an `--ipc shareable` container
    /// outside it, unless it is there (a restart keeps it, as Docker
    /// keeps a shareable container's; a host reboot took it).
    fn mount_shm(&mut self, name: &str) -> Result<(), ManagerError> {
        let m = self.get(name)?;
        if m.rec.ipc_mode != "shareable" {
            return Ok(());
        }
        let size = match m.rec.shm_size {
            0 => 64 << 20,
            n => n,
        };
        let dir = self.cfg.shm_dir(name);
        let err = |source| ManagerError::Io {
            name: name.to_string(),
            what: "mount /dev/shm",
            path: dir.clone(),
            source,
        };
        std::fs::create_dir_all(&dir).map_err(err)?;
        // Mounted already: a tmpfs is another device than the state dir.
        use std::os::unix::fs::MetadataExt;
        let dev = |p: &std::path::Path| std::fs::metadata(p).map(|m| m.dev());
        if dev(&dir).map_err(err)? != dev(&self.cfg.container_state_dir(name)).map_err(err)? {
            return Ok(());
        }
        use nix::mount::MsFlags;
        nix::mount::mount(
            Some("shm"),
            &dir,
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            Some(format!("mode=1777,size={}k", (size as u64).div_ceil(1024)).as_str()),
        )
        .map_err(|e| err(e.into()))
    }

    /// Points the config.json of a container that joins others'
    /// namespaces (`--network container:X`, `--pid container:X`) at their
    /// inits' now; each must have a task (created, running or paused).
    fn join_namespaces(&mut self, name: &str) -> Result<(), ManagerError> {
        let joins: Vec<(&'static str, String)> = self
            .get(name)?
            .rec
            .joins()
            .map(|(ns, c)| (ns, c.to_string()))
            .collect();
        if joins.is_empty() {
            return Ok(());
        }
        let mut found = Vec::new();
        for (ns, other) in joins {
            // Its own task may wait for its network helper (a boot, a
            // restart of both).
            self.settle(&other);
            let (pid, shim_pid) = match self.containers.get(other.as_str()) {
                Some(m) if m.state.is_live() => (m.rec.pid, m.rec.shim_pid),
                _ => (0, 0),
            };
            found.push((ns, other, pid, shim_pid));
        }
        let paths = super::network::joined_paths(name, &found)?;
        let config = self.get(name)?.rec.bundle.join("config.json");
        super::spec::join_namespaces(&config, &paths).map_err(|source| ManagerError::Spec {
            name: name.to_string(),
            source,
        })
    }

    pub(super) fn start_task(&mut self, name: &str) -> Result<(), ManagerError> {
        self.start_task_for(name, super::shim_client::CALL_TIMEOUT)
    }

    /// [`Self::start_task`] waiting up to `timeout` (a checkpoint's task is
    /// restored by the shim's Start).
    pub(super) fn start_task_for(
        &mut self,
        name: &str,
        timeout: Duration,
    ) -> Result<(), ManagerError> {
        let mut req = shimapi::StartRequest::new();
        req.id = name.to_string();
        let resp: shimapi::StartResponse = self.shim_call_for(name, "Start", &req, timeout)?;
        let m = self.get(name)?;
        m.rec.pid = resp.pid;
        m.rec.started = true;
        m.rec.last_error.clear();
        m.state = State::Running;
        m.started_at = Some(Instant::now());
        self.health_started(name);
        self.save(name);
        self.events
            .emit("/container/start", name, format!("pid {}", resp.pid));
        self.rejoin(name);
        Ok(())
    }

    /// After `name` started again: the running containers in the network
    /// or IPC namespace its last run had (`--network`, `--ipc
    /// container:NAME`) are restarted into its new one, as the health
    /// check's `restart` action restarts (whatever their policy); left
    /// alone, they would serve in a namespace nothing reaches any more.
    /// (A pid namespace's members die with its init.)
    fn rejoin(&mut self, name: &str) {
        if self
            .containers
            .values()
            .any(|m| m.rec.joins().any(|(_, o)| o == name))
        {
            self.rejoin_stale(name);
        }
    }

    #[cold]
    #[inline(never)]
    fn rejoin_stale(&mut self, name: &str) {
        let ns_of = |pid: u32, ns: &str| {
            std::fs::metadata(super::network::proc_ns(pid, ns))
                .ok()
                .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
        };
        let Some(pid) = self.containers.get(name).map(|m| m.rec.pid) else {
            return;
        };
        let stale: Vec<String> = self
            .containers
            .values()
            .filter(|m| m.state == State::Running)
            .filter(|m| {
                m.rec.joins().any(|(ns, o)| {
                    o == name
                        && ns != "pid"
                        && ns_of(m.rec.pid, ns).is_some_and(|j| Some(j) != ns_of(pid, ns))
                })
            })
            .map(|m| m.rec.name.clone())
            .collect();
        for j in stale {
            log::info!("{j}: {name} has new namespaces: restarting {j} into them");
            self.events
                .emit("/container/rejoin", &j, format!("{name} started again"));
            if let Err(e) = self.kill_to_restart(&j) {
                log::warn!("{}", wren_runtime::error::chain(&e));
            }
        }
    }

    /// Removes a stopped task from the shim, keeping the shim.
    pub(super) fn delete_task(&mut self, name: &str) {
        let mut req = shimapi::DeleteRequest::new();
        req.id = name.to_string();
        match self.shim_call::<_, shimapi::DeleteResponse>(name, "Delete", &req) {
            Ok(_) => {}
            Err(ManagerError::Shim { source, .. }) if is_not_found(&source) => {}
            Err(e) => log::warn!("{}", wren_runtime::error::chain(&e)),
        }
    }

    /// (Re)creates and starts the task without waiting for its network in
    /// the loop; `then` (a `Start` answer, or a restart's failure
    /// handling) follows.
    pub(super) fn run_task_then(&mut self, name: &str, then: super::network::Then) {
        self.delete_task_if_any(name);
        self.create_task_then(name, then);
    }

    /// A (re)start that failed: recorded, so the restart policy applies to
    /// it too, and its created task removed.
    pub(super) fn start_failed(&mut self, name: &str, e: &ManagerError) {
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

    pub(super) fn delete_task_if_any(&mut self, name: &str) {
        let has_shim = self.containers.get(name).is_some_and(|m| m.shim.is_some());
        if has_shim {
            self.delete_task(name);
        }
    }

    /// Asks the shim to exit (after its task is deleted). Its pidfd stays
    /// watched: the exit is noticed by the loop, which keeps serving the
    /// shim's last event deliveries meanwhile.
    pub(super) fn shutdown_shim(&mut self, name: &str) {
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
    pub(super) fn departed(&mut self, fd: RawFd) {
        if let Some(d) = self.departing.remove(&fd) {
            timing::mark(&d.name, "wrend.departed");
            self.unwatch(fd);
            remove_socket(&d.address);
            for (r, reply) in d.replies {
                // Its network helper may still run (DEL).
                self.reply_when_gone(&d.name, r, reply);
            }
            drop(d.pidfd);
        }
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
        let Some(m) = self.containers.get_mut(&*name) else {
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
}

/// The overlay of an image container: the image's layers as lower dirs
/// (overlayfs lists the topmost first), the container's own upper and work
/// dirs in its record directory.
pub(super) fn overlay_mount(
    layers: &[std::path::PathBuf],
    record_dir: &Path,
) -> wren_protocol::mount::Mount {
    let lower: Vec<String> = layers
        .iter()
        .rev()
        .map(|l| l.display().to_string())
        .collect();
    let mut m = wren_protocol::mount::Mount::new();
    m.type_ = "overlay".into();
    m.source = "overlay".into();
    m.options = vec![
        format!("lowerdir={}", lower.join(":")),
        format!(
            "upperdir={}",
            record_dir.join(super::api::create::OVERLAY_UPPER).display()
        ),
        format!(
            "workdir={}",
            record_dir.join(super::api::create::OVERLAY_WORK).display()
        ),
    ];
    m
}

/// The refusal of a start while `wren cp` holds container `name`'s overlay.
fn copying(name: &str) -> ManagerError {
    ManagerError::FailedPrecondition(format!(
        "container {name}: `wren cp` is copying its files (its overlay is mounted for that); \
         start it when the copy is done"
    ))
}
