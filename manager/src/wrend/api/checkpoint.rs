//! `Checkpoint` (`wren checkpoint`) and `Restore` (`wren restore`): CRIU
//! runs in the container's shim, for the length of one Task RPC
//! (`Checkpoint` with containerd's runc `CheckpointOptions`; `Create` with
//! a checkpoint, which its `Start` restores), never in wrend. A restored container is the same
//! container: its record, log file, network settings and restart policy
//! go on; only its task comes from the image instead of a fresh start.
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
        self.container_response(name)
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
        if let Err(e) = &result {
            let msg = wren_runtime::error::chain(e);
            self.events
                .emit("/container/restore-failed", name, msg.clone());
            if let Some(m) = self.containers.get_mut(name) {
                m.rec.last_error = msg;
                m.state = State::Stopped;
            }
            self.delete_task_if_any(name);
            self.save(name);
            result?;
        }
        self.events
            .emit("/container/restore", name, dir.display().to_string());
        self.container_response(name)
    }
}
