//! `Checkpoint` (`wren checkpoint`) and `Restore` (`wren restore`): CRIU
//! runs in the container's shim, for the length of one Task RPC
//! (`Checkpoint` with containerd's runc `CheckpointOptions`; `Create` with
//! a checkpoint, which its `Start` restores), never in wrend. A restored container is the same
//! container: its record, log file, network settings and restart policy
//! go on; only its task comes from the image instead of a fresh start.
//!
//! A checkpoint directory also carries what makes the container again
//! (`wren restore DIR NEW-NAME`, after `rm`, or on another host's wrend):
//! [`CREATE_FILE`], the request it was created with (protobuf),
//! [`UPDATES_FILE`], its resources and restart policy as `update` left
//! them, and for an image container [`UPPER_DIR`], a copy of its overlay's
//! upper dir (the rootfs changes criu's images rely on: open files, their
//! sizes).
//! The CLI reads the request and resolves the image's layers in its own
//! store; wrend makes the record from it (new network attachment, new
//! cgroup) and restores into it. Copy the whole directory, keeping owners,
//! device nodes and xattrs (`cp -a`, `rsync -aX`), to move it.
//!
//! Runs in wrend's loop thread, which waits for the shim's answer (up to
//! [`CRIU_TIMEOUT`]): the dump or restore of a big container blocks other
//! requests meanwhile, as a slow Create does.

use std::path::Path;
use std::time::Duration;

use protobuf::well_known_types::any::Any;
use protobuf::well_known_types::empty::Empty;
use protobuf::MessageField;
use wren_protocol::manager as api;
use wren_protocol::task as shimapi;

use crate::wrend::error::ManagerError;
use crate::wrend::registry::{encode, Registry, State};

/// In a checkpoint directory: the container's create request.
pub const CREATE_FILE: &str = "wren-create.pb";
/// In a checkpoint directory: an image container's overlay upper dir.
pub const UPPER_DIR: &str = "wren-upper";
/// In a checkpoint directory: what `update` changed after the create
/// request (`{"resources": LinuxResources, "restart_policy": "..."}`).
pub const UPDATES_FILE: &str = "wren-updates.json";

/// Longest wait for a shim's Checkpoint, or Start of a checkpoint's task.
pub const CRIU_TIMEOUT: Duration = Duration::from_secs(300);

/// The image directory of a request: absolute, no `..`.
fn image_dir<'a>(what: &str, path: &'a str) -> Result<&'a Path, ManagerError> {
    let p = Path::new(path);
    if path.is_empty() || !p.is_absolute() {
        return Err(ManagerError::InvalidArgument(format!(
            "{what}: image directory {path:?} is not an absolute path"
        )));
    }
    if p.components().any(|c| c == std::path::Component::ParentDir) {
        return Err(ManagerError::InvalidArgument(format!(
            "{what}: image directory {path:?} contains \"..\""
        )));
    }
    Ok(p)
}

impl Registry {
    /// Dumps a running (or paused) container into `req.path`. Without
    /// `leave_running` it stops, as `wren stop` would stop it: its restart
    /// policy does not bring it back; the reply comes once the exit is
    /// recorded, so a `restore` right after finds it stopped.
    pub fn checkpoint(
        &mut self,
        req: &api::CheckpointRequest,
    ) -> Result<api::ContainerResponse, ManagerError> {
        let name = req.name.as_str();
        let dir = image_dir("checkpoint", &req.path)?;
        let m = self.get(name)?;
        if !matches!(m.state, State::Running | State::Paused) {
            return Err(ManagerError::FailedPrecondition(format!(
                "container {name} is {}: only a running or paused container can be checkpointed",
                m.state.as_str()
            )));
        }
        // A joined network namespace is external to the dump, and the
        // restore's task joins the other container's again (its init's
        // now, as any task creation does). A joined pid, IPC or UTS
        // namespace is not: criu restores a process tree into a pid
        // namespace of its own making only, and would dump the shared IPC
        // objects and hostname as its own.
        if let Some((ns, other)) = m.rec.joins().find(|(ns, _)| *ns != "network") {
            return Err(ManagerError::FailedPrecondition(format!(
                "container {name} joins the {ns} namespace of {other}: a checkpoint of it \
                 is not supported (its restore could not join that namespace again)"
            )));
        }
        let terminal = m.rec.terminal;
        let was_stopped_by_user = m.rec.stopped_by_user;
        if !req.leave_running {
            // The exit criu causes is the user's doing.
            m.rec.stopped_by_user = true;
            m.restart_at = None;
            self.save(name);
        }
        let mut o = wren_protocol::runc_options::CheckpointOptions::new();
        o.exit = !req.leave_running;
        o.image_path = dir.display().to_string();
        o.terminal = terminal;
        let mut any = Any::new();
        any.type_url = wren_protocol::type_urls::RUNC_CHECKPOINT_OPTIONS.to_string();
        any.value = encode(&o);
        let mut r = shimapi::CheckpointTaskRequest::new();
        r.id = name.to_string();
        r.path = dir.display().to_string();
        r.options = MessageField::some(any);
        let done = self.shim_call_for::<_, Empty>(name, "Checkpoint", &r, CRIU_TIMEOUT);
        if let Err(e) = done {
            if let Some(m) = self.containers.get_mut(name) {
                m.rec.stopped_by_user = was_stopped_by_user;
            }
            self.save(name);
            return Err(e);
        }
        self.events.emit(
            "/container/checkpoint",
            name,
            format!("{} leave_running={}", dir.display(), req.leave_running),
        );
        if !req.leave_running {
            // criu killed the processes; the shim's exit event may come
            // after this reply, so take the exit from Wait now (the event
            // is then stale and ignored).
            let mut w = shimapi::WaitRequest::new();
            w.id = name.to_string();
            match self.shim_call::<_, shimapi::WaitResponse>(name, "Wait", &w) {
                Ok(resp) => {
                    let at = resp.exited_at.as_ref().map_or(0, |t| {
                        t.seconds
                            .saturating_mul(1_000_000_000)
                            .saturating_add(i64::from(t.nanos))
                    });
                    if self.get(name)?.state.is_live() {
                        self.init_exited(name, resp.exit_status, at);
                    }
                }
                Err(e) => log::warn!("{}", wren_runtime::error::chain(&e)),
            }
        }
        self.keep_for_restore(name, dir)?;
        self.container_response(name)
    }

    /// Puts the create request and an image container's upper dir into
    /// the checkpoint directory `dir`.
    fn keep_for_restore(&self, name: &str, dir: &Path) -> Result<(), ManagerError> {
        let record_dir = self.cfg.record_dir(name);
        let io = |what, path: &Path, source| ManagerError::Io {
            name: name.to_string(),
            what,
            path: path.to_path_buf(),
            source,
        };
        let req = record_dir.join(super::create::CREATE_REQUEST);
        if req.exists() {
            std::fs::copy(&req, dir.join(CREATE_FILE))
                .map_err(|e| io("copy the create request into", dir, e))?;
        } else {
            // A container made by a wrend before requests were kept: it
            // can only be restored into itself.
            log::warn!(
                "{name}: no {}; the checkpoint restores only into {name}",
                req.display()
            );
        }
        // The create request predates any `update`: keep what that changed.
        if let Some(m) = self.containers.get(name) {
            let config = m.rec.bundle.join("config.json");
            let spec =
                crate::wrend::spec::read_spec(&config).map_err(|source| ManagerError::Spec {
                    name: name.to_string(),
                    source,
                })?;
            let updates = serde_json::json!({
                "resources": spec["linux"]["resources"],
                "restart_policy": m.rec.restart_policy,
            });
            let path = dir.join(UPDATES_FILE);
            std::fs::write(&path, updates.to_string()).map_err(|e| io("write", &path, e))?;
        }
        let image = self
            .containers
            .get(name)
            .is_some_and(|m| !m.rec.image_layers.is_empty());
        if image {
            let upper = dir.join(UPPER_DIR);
            if upper.exists() {
                std::fs::remove_dir_all(&upper).map_err(|e| io("remove", &upper, e))?;
            }
            crate::wrend::copytree::copy_tree(
                &record_dir.join(super::create::OVERLAY_UPPER),
                &upper,
            )
            .map_err(|e| io("copy the overlay upper dir to", &upper, e))?;
        }
        Ok(())
    }

    /// Brings a stopped container back from the checkpoint in `req.path`:
    /// its task is created from the image (running at once) and then
    /// managed as if started: logs, restart policy and `wren stop` apply.
    pub fn restore_from(
        &mut self,
        req: &api::RestoreRequest,
    ) -> Result<api::ContainerResponse, ManagerError> {
        let name = req.name.as_str();
        let dir = image_dir("restore", &req.path)?.to_path_buf();
        let made = !self.containers.contains_key(name);
        if made {
            self.create_for_restore(req, &dir)?;
        }
        let m = self.get(name)?;
        if m.state.is_live() {
            return Err(ManagerError::FailedPrecondition(format!(
                "container {name} is {}: stop it before restoring a checkpoint into it",
                m.state.as_str()
            )));
        }
        if !dir.join("inventory.img").is_file() {
            return Err(ManagerError::InvalidArgument(format!(
                "restore: {} holds no checkpoint (no inventory.img)",
                dir.display()
            )));
        }
        m.rec.stopped_by_user = false;
        m.restart_at = None;
        m.backoff = None;
        m.rec.restart_count = 0;
        self.delete_task_if_any(name);
        let result = self
            .create_task_from(name, Some(&dir))
            .and_then(|()| self.start_task_for(name, CRIU_TIMEOUT));
        if let Err(e) = result {
            let msg = wren_runtime::error::chain(&e);
            self.events
                .emit("/container/restore-failed", name, msg.clone());
            if made {
                // A container made for this restore is not left behind.
                self.delete_task_if_any(name);
                self.discard(name);
                return Err(e);
            }
            if let Some(m) = self.containers.get_mut(name) {
                m.rec.last_error = msg;
                m.state = State::Stopped;
            }
            self.delete_task_if_any(name);
            self.save(name);
            return Err(e);
        }
        self.events
            .emit("/container/restore", name, dir.display().to_string());
        self.container_response(name)
    }

    /// Makes container `req.name` from the checkpoint's create request
    /// (sent by the CLI) and, for an image container, its upper dir from
    /// the checkpoint's copy. Nothing is made when the directory holds no
    /// checkpoint or the request is missing; a failure removes what was.
    fn create_for_restore(
        &mut self,
        req: &api::RestoreRequest,
        dir: &Path,
    ) -> Result<(), ManagerError> {
        let name = req.name.as_str();
        if !dir.join("inventory.img").is_file() {
            return Err(ManagerError::InvalidArgument(format!(
                "restore: {} holds no checkpoint (no inventory.img)",
                dir.display()
            )));
        }
        let Some(create) = req.create.as_ref() else {
            return Err(ManagerError::NotFound(format!(
                "{name} (and {} has no {CREATE_FILE} to make it from)",
                dir.display()
            )));
        };
        let mut create = create.clone();
        create.name = name.to_string();
        create.start = false;
        let image = !create.image_layers.is_empty();
        self.create_record(create)?;
        if let Err(e) = self.apply_updates(name, dir) {
            self.discard(name);
            return Err(e);
        }
        let upper = dir.join(UPPER_DIR);
        if image && upper.is_dir() {
            let to = self.cfg.record_dir(name).join(super::create::OVERLAY_UPPER);
            if let Err(source) = crate::wrend::copytree::copy_tree(&upper, &to) {
                self.discard(name);
                return Err(ManagerError::Io {
                    name: name.to_string(),
                    what: "copy the checkpoint's upper dir to",
                    path: to,
                    source,
                });
            }
        }
        Ok(())
    }

    /// The checkpoint's [`UPDATES_FILE`] (if any) applied to container
    /// `name` just made from its create request: the resources merged into
    /// its config.json, the restart policy into its record.
    fn apply_updates(&mut self, name: &str, dir: &Path) -> Result<(), ManagerError> {
        let path = dir.join(UPDATES_FILE);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(source) => {
                return Err(ManagerError::Io {
                    name: name.to_string(),
                    what: "read",
                    path,
                    source,
                })
            }
        };
        let bad = |why: String| {
            ManagerError::InvalidArgument(format!("restore: {}: {why}", path.display()))
        };
        let v: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
        let policy = match v["restart_policy"].as_str() {
            None | Some("") => None,
            Some(p) => Some(
                crate::wrend::restart_policy::RestartPolicy::parse(p)
                    .map_err(|e| bad(e.to_string()))?,
            ),
        };
        let m = self.get(name)?;
        if v["resources"].is_object() {
            let config = m.rec.bundle.join("config.json");
            crate::wrend::spec::merge_resources(&config, &v["resources"]).map_err(|source| {
                ManagerError::Spec {
                    name: name.to_string(),
                    source,
                }
            })?;
        }
        if let Some(p) = policy {
            if !m.rec.auto_remove {
                m.rec.restart_policy = p.to_string();
            }
        }
        self.save(name);
        Ok(())
    }
}
