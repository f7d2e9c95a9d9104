//! Create and Start of a container's init: options, stdio, containerd's
//! rootfs mounts, the runtime's create (the init is left blocked before
//! execve), the OOM watcher, `/tasks/create`; then Start releases the init
//! (`/tasks/start`). With a checkpoint, Create only prepares (pid 0) and
//! Start restores it with CRIU, as runc's shim does. Start of an exec is
//! in `exec.rs`.
//!
//! Runs in the daemon, on the epoll loop thread.

use std::collections::HashMap;
use std::os::fd::AsFd;
use std::path::PathBuf;

use nix::sys::epoll::{EpollEvent, EpollFlags};
use protobuf::MessageField;
use wren_protocol::events::{TaskCreate, TaskStart};
use wren_protocol::task::{CreateTaskRequest, CreateTaskResponse, StartRequest, StartResponse};
use wren_protocol::task_types::Status;
use wren_runtime::cgroups::oom::OomWatcher;
use wren_runtime::{ConsoleMode, CreateOptions};

use super::container_ops::{ContainerOps, CreatedInit};
use super::error::TaskError;
use super::record::{self, Container, Process};
use super::{TaskService, OOM_BIT};
use crate::options::ShimOptions;
use crate::stdio::{uri, Owner, ProcessIo};

/// The request has `terminal` set, the spec has not.
#[derive(Debug, thiserror::Error)]
#[error("terminal requested but process.terminal is false in config.json")]
struct NoConsole;

impl<O: ContainerOps> TaskService<O> {
    pub(super) fn create(
        &mut self,
        req: CreateTaskRequest,
    ) -> Result<CreateTaskResponse, TaskError> {
        let id = req.id.as_str();
        if self.containers.contains_key(id) {
            return Err(TaskError::AlreadyExists(format!("container {id}")));
        }
        let options = match req.options.as_ref() {
            Some(any) => ShimOptions::from_any(any)
                .map_err(TaskError::invalid("create", id))?
                .unwrap_or_default(),
            None => ShimOptions::default(),
        };
        if let Some(refused) = options.refusal() {
            return Err(TaskError::invalid("create", id)(refused));
        }
        let bundle = PathBuf::from(&req.bundle);
        let state_root = if options.root.is_empty() {
            self.state_root.clone()
        } else {
            PathBuf::from(&options.root)
        };
        let options_file = bundle.join("options.json");
        if let Ok(json) = serde_json::to_vec(&options) {
            if let Err(e) = std::fs::write(&options_file, json) {
                log::warn!("create {id}: write options.json: {e}");
            }
        }
        // A failed Create leaves nothing in the bundle.
        let forget_options = || {
            let _ = std::fs::remove_file(&options_file);
        };
        let uris = uri::parse(&req.stdin, &req.stdout, &req.stderr)
            .map_err(TaskError::invalid("create", id))
            .inspect_err(|_| forget_options())?;
        let owner = Owner {
            container_id: id,
            namespace: &self.namespace,
            io_uid: options.io_uid,
            io_gid: options.io_gid,
        };
        let (fds, mut io) = ProcessIo::setup(&mut self.relays, uris, req.terminal, &owner)
            .map_err(TaskError::invalid("create", id))
            .inspect_err(|_| forget_options())?;
        let rootfs = bundle.join("rootfs");
        if let Err(e) = super::rootfs::mount_all(&req.rootfs, &rootfs) {
            self.release_io(io);
            forget_options();
            return Err(TaskError::invalid("create", id)(e));
        }
        let mounted_rootfs = !req.rootfs.is_empty();
        if !req.checkpoint.is_empty() {
            // `ctr c restore`, CRI's StartContainer of a checkpoint: CRIU
            // runs at Start; containerd unpacks the checkpoint's rootfs
            // changes between the two calls. No process yet: pid 0.
            let pending = wren_runtime::RestoreOptions {
                id: id.to_string(),
                bundle: bundle.clone(),
                state_root,
                flags: wren_runtime::CriuFlags {
                    image_path: PathBuf::from(&req.checkpoint),
                    ..wren_runtime::CriuFlags::default()
                },
                stdio: fds.into(),
                console: ConsoleMode::Return,
                pid_file: None,
                systemd_cgroup: options.systemd_cgroup,
            };
            let init = Process {
                status: Status::CREATED,
                stdin: req.stdin.clone(),
                stdout: req.stdout.clone(),
                stderr: req.stderr.clone(),
                terminal: req.terminal,
                io: Some(io),
                restored: true,
                ..Process::default()
            };
            self.containers.insert(
                id.to_string(),
                Box::new(Container {
                    runtime: None,
                    pending_restore: Some(pending),
                    bundle,
                    init,
                    execs: HashMap::new(),
                    mounted_rootfs,
                    own_pid_namespace: true,
                    oom: None,
                    io_uid: options.io_uid,
                    io_gid: options.io_gid,
                }),
            );
            self.publish_create(&req, 0);
            return Ok(CreateTaskResponse::new());
        }
        let made = self
            .ops
            .create(CreateOptions {
                id: id.to_string(),
                bundle: bundle.clone(),
                state_root,
                stdio: fds.into(),
                console: ConsoleMode::Return,
                preserve_fds: 0,
                no_pivot: options.no_pivot_root,
                no_new_keyring: options.no_new_keyring,
                systemd_cgroup: options.systemd_cgroup,
                pid_file: None,
            })
            .map_err(TaskError::ops("create", id));
        let attached = match made {
            Ok((runtime, mut created)) => {
                match self.attach_init_console(id, req.terminal, &mut io, &mut created) {
                    Ok(()) => Ok((runtime, created)),
                    Err(e) => {
                        // Undo the runtime's container before the rest.
                        if let Err(d) = self.ops.delete(runtime) {
                            log::warn!("create {id}: remove the half-made container: {d}");
                        }
                        Err(e)
                    }
                }
            }
            Err(e) => Err(e),
        };
        let (runtime, created) = match attached {
            Ok(made) => made,
            Err(e) => {
                // Undo in reverse: the stdio, the rootfs mounts.
                self.release_io(io);
                if mounted_rootfs {
                    if let Err(u) = super::rootfs::unmount_all(&rootfs) {
                        log::warn!("create {id}: unmount rootfs: {u}");
                    }
                }
                forget_options();
                return Err(e);
            }
        };
        let oom = self.watch_oom(id, &runtime);
        let _ = std::fs::write(bundle.join("init.pid"), created.pid.to_string());
        let pidfd = self.watch_pidfd(id, created.pid, created.pidfd);
        self.containers.insert(
            id.to_string(),
            Box::new(Container {
                runtime: Some(runtime),
                pending_restore: None,
                bundle,
                init: Process {
                    pid: created.pid,
                    status: Status::CREATED,
                    stdin: req.stdin.clone(),
                    stdout: req.stdout.clone(),
                    stderr: req.stderr.clone(),
                    terminal: req.terminal,
                    pidfd: Some(pidfd),
                    io: Some(io),
                    ..Process::default()
                },
                execs: HashMap::new(),
                mounted_rootfs,
                own_pid_namespace: created.own_pid_namespace,
                oom,
                io_uid: options.io_uid,
                io_gid: options.io_gid,
            }),
        );
        self.publish_create(&req, created.pid);
        let mut r = CreateTaskResponse::new();
        r.pid = created.pid;
        Ok(r)
    }

    /// `/tasks/create` for `req`, with the init's pid (0: restored at Start).
    fn publish_create(&mut self, req: &CreateTaskRequest, pid: u32) {
        let mut ev = TaskCreate::new();
        ev.container_id = req.id.clone();
        ev.bundle = req.bundle.clone();
        ev.rootfs = req.rootfs.clone();
        ev.pid = pid;
        ev.checkpoint = req.checkpoint.clone();
        let mut io = wren_protocol::events::TaskIO::new();
        io.stdin = req.stdin.clone();
        io.stdout = req.stdout.clone();
        io.stderr = req.stderr.clone();
        io.terminal = req.terminal;
        ev.io = MessageField::some(io);
        self.publisher.publish("/tasks/create", &ev);
    }

    /// The container's OOM-kill watcher on the loop's epoll set, if it has
    /// a memory cgroup.
    fn watch_oom(&mut self, id: &str, runtime: &O::Container) -> Option<(u64, OomWatcher)> {
        self.ops.oom_watcher(runtime).and_then(|w| {
            let token = OOM_BIT | self.next_oom_token;
            self.next_oom_token += 1;
            match self
                .epoll
                .add(w.as_fd(), EpollEvent::new(EpollFlags::EPOLLIN, token))
            {
                Ok(()) => Some((token, w)),
                Err(e) => {
                    log::warn!("{id}: watch OOM: {e}");
                    None
                }
            }
        })
    }

    /// Start of a task created from a checkpoint: CRIU restores it now
    /// (the rootfs holds the checkpoint's changes by then). A failure
    /// leaves the task created, with no process, for Delete.
    fn start_restore(&mut self, id: &str) -> Result<u32, TaskError> {
        let c = record::find(&mut self.containers, id)?;
        let Some(opts) = c.pending_restore.take() else {
            return Err(TaskError::State(format!(
                "container {id}: its checkpoint restore already failed; delete it"
            )));
        };
        let terminal = c.init.terminal;
        let bundle = c.bundle.clone();
        let mut io = c.init.io.take();
        let (runtime, mut created) = self
            .ops
            .restore(opts)
            .map_err(TaskError::ops("start (restore)", id))
            .inspect_err(|_| {
                if let Some(c) = self.containers.get_mut(id) {
                    c.init.io = io.take();
                }
            })?;
        let mut io = io.unwrap_or_default();
        if let Err(e) = self.attach_init_console(id, terminal, &mut io, &mut created) {
            if let Err(d) = self.ops.delete(runtime) {
                log::warn!("start {id}: remove the half-restored container: {d}");
            }
            if let Some(c) = self.containers.get_mut(id) {
                c.init.io = Some(io);
            }
            return Err(e);
        }
        let oom = self.watch_oom(id, &runtime);
        let _ = std::fs::write(bundle.join("init.pid"), created.pid.to_string());
        let pidfd = self.watch_pidfd(id, created.pid, created.pidfd);
        let c = record::find(&mut self.containers, id)?;
        c.runtime = Some(runtime);
        c.oom = oom;
        c.own_pid_namespace = created.own_pid_namespace;
        c.init.io = Some(io);
        c.init.pid = created.pid;
        c.init.pidfd = Some(pidfd);
        Ok(created.pid)
    }

    /// With `terminal`, relays the init's pty master.
    fn attach_init_console(
        &mut self,
        id: &str,
        terminal: bool,
        io: &mut ProcessIo,
        created: &mut CreatedInit,
    ) -> Result<(), TaskError> {
        if !terminal {
            return Ok(());
        }
        let master = created
            .console
            .take()
            .ok_or_else(|| TaskError::invalid("create", id)(NoConsole))?;
        io.attach_console(&mut self.relays, master)
            .map_err(TaskError::invalid("create", id))
    }

    pub(super) fn start(&mut self, req: StartRequest) -> Result<StartResponse, TaskError> {
        if !req.exec_id.is_empty() {
            return self.start_exec(req);
        }
        let c = record::find(&mut self.containers, &req.id)?;
        if c.init.status != Status::CREATED {
            return Err(TaskError::State(format!(
                "cannot start a process in state {:?}",
                c.init.status
            )));
        }
        if c.init.restored {
            self.start_restore(&req.id)?;
        } else {
            let rt = c.rt(&req.id)?;
            self.ops
                .start(rt)
                .map_err(TaskError::ops("start", &req.id))?;
        }
        let c = record::find(&mut self.containers, &req.id)?;
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
}
