//! The requests that change a container's state: `Start`, `Wait`, `Kill`,
//! `Stop` (signal, then SIGKILL after the grace period), `Delete` (`wren
//! rm`, answered once the shim is gone), `Pause`, `Resume` and `Update`.
//!
//! Runs in wrend's loop thread.

use std::time::{Duration, Instant};

use protobuf::well_known_types::any::Any;
use protobuf::well_known_types::empty::Empty;
use protobuf::MessageField;
use wren_protocol::manager as api;
use wren_protocol::task as shimapi;

use crate::wrend::error::ManagerError;
use crate::wrend::network::Then;
use crate::wrend::registry::{encode, Registry, State};
use crate::wrend::restart_policy::RestartPolicy;
use crate::wrend::spec;
use wren_runtime::timing;
use wren_ttrpc::server::Responder;

/// Default grace period of `wren stop`.
pub const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(10);

impl Registry {
    /// `Start`: a created task is started at once; a stopped container is
    /// created again and answered once its network is attached too.
    pub fn start_request(&mut self, name: &str, responder: Responder) {
        timing::mark(name, "wrend.start");
        self.settle(name);
        let state = match self.get(name) {
            Ok(m) => m.state,
            Err(e) => return responder.send(Err(e.to_status())),
        };
        // Asked before its kept task goes: the copy keeps the mount it uses.
        let busy = match state {
            State::Running | State::Paused | State::Created => None,
            _ => self.overlay_busy(name),
        };
        let r = match (state, busy) {
            (State::Running | State::Paused, _) => Err(ManagerError::FailedPrecondition(format!(
                "container {name} is already running"
            ))),
            (State::Created, _) => self.start_task(name),
            (_, Some(refused)) => Err(refused),
            _ => {
                let m = match self.get(name) {
                    Ok(m) => m,
                    Err(e) => return responder.send(Err(e.to_status())),
                };
                m.rec.stopped_by_user = false;
                m.restart_at = None;
                m.backoff = None;
                m.rec.restart_count = 0;
                return self.run_task_then(name, Then::Start { responder });
            }
        };
        responder.send(
            r.and_then(|()| self.container_response(name))
                .map(|c| encode(&c))
                .map_err(|e| e.to_status()),
        );
    }

    pub fn wait(&mut self, name: &str, exec_id: &str, responder: Responder) {
        let m = match self.get(name) {
            Ok(m) => m,
            Err(e) => return responder.send(Err(e.to_status())),
        };
        let mut w = api::WaitResponse::new();
        if !exec_id.is_empty() {
            let execs = m.execs.get_or_insert_with(Default::default);
            if let Some((status, at)) = execs.exits.remove(exec_id) {
                if execs.is_idle() {
                    m.execs = None;
                }
                w.exit_status = status;
                w.exited_at = at;
                return responder.send(Ok(encode(&w)));
            }
            execs
                .waiters
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

    pub(in crate::wrend) fn signal(
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
            if let Some(m) = self.containers.get_mut(name.as_str()) {
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
        let image_signal = self
            .containers
            .get(name.as_str())
            .and_then(|m| wren_runtime::signal::parse(&m.rec.stop_signal).ok());
        let signal = if req.signal == 0 {
            image_signal.map_or(libc::SIGTERM as u32, |s| s as u32)
        } else {
            req.signal
        };
        let own_timeout = self
            .containers
            .get(name.as_str())
            .map_or(0, |m| m.rec.stop_timeout);
        let timeout = if req.timeout_secs == 0 && own_timeout > 0 {
            Duration::from_secs(u64::from(own_timeout))
        } else if req.timeout_secs == 0 {
            DEFAULT_STOP_TIMEOUT
        } else {
            Duration::from_secs(u64::from(req.timeout_secs))
        };
        self.save(&name);
        if let Err(e) = self.signal(&name, "", signal, false) {
            return responder.send(Err(e.to_status()));
        }
        if let Some(m) = self.containers.get_mut(name.as_str()) {
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
        // Once its shim has exited and its network is detached.
        self.reply_when_gone(name, responder, Ok(reply));
    }

    /// Removes a container; a live one needs `force` (it is killed first).
    pub fn remove(
        &mut self,
        name: &str,
        force: bool,
    ) -> Result<api::ContainerResponse, ManagerError> {
        self.settle_attach(name);
        let joiners: Vec<&str> = self
            .containers
            .values()
            .filter(|m| m.rec.joins().any(|(_, other)| other == name))
            .map(|m| m.rec.name.as_str())
            .collect();
        if !joiners.is_empty() {
            return Err(joined_by(name, &joiners));
        }
        let m = self.get(name)?;
        let state = m.state;
        let joined: Vec<String> = m.rec.joins().map(|(_, c)| c.to_string()).collect();
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
                log::warn!("rm: {}", wren_runtime::error::chain(&e));
            }
            let mut req = shimapi::WaitRequest::new();
            req.id = name.to_string();
            if let Err(e) = self.shim_call::<_, shimapi::WaitResponse>(name, "Wait", &req) {
                log::warn!("rm: {}", wren_runtime::error::chain(&e));
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
        for other in joined {
            self.remove_if_left_for_joiners(&other);
        }
        Ok(resp)
    }

    /// A `--rm` container whose removal at its exit was refused because
    /// others joined its namespaces: removed once the last of them is, if
    /// it has not been started again meanwhile. Podman leaves it behind.
    #[cold]
    #[inline(never)]
    fn remove_if_left_for_joiners(&mut self, name: &str) {
        let Some(m) = self.containers.get(name) else {
            return;
        };
        if !m.rec.auto_remove || m.state.is_live() || m.state == State::Restarting {
            return;
        }
        let joined = self
            .containers
            .values()
            .any(|j| j.rec.joins().any(|(_, other)| other == name));
        if joined {
            return;
        }
        if let Err(e) = self.remove(name, true) {
            log::warn!(
                "auto-remove {name} after its last joiner: {}",
                wren_runtime::error::chain(&e)
            );
        }
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

    /// `Update`: new limits go to a live task through its shim and into the
    /// container's config.json, so its next start (a restart, `wren
    /// start`, a wrend restart) keeps them, as Docker's update does; a
    /// stopped container's only into config.json. A new restart policy
    /// goes into the record. Everything is checked before anything changes.
    pub fn update(&mut self, req: &api::UpdateRequest) -> Result<api::Empty, ManagerError> {
        let name = req.name.as_str();
        let resources = if req.resources_json.is_empty() {
            None
        } else {
            match serde_json::from_str::<serde_json::Value>(&req.resources_json) {
                Ok(v) if v.is_object() => Some(v),
                _ => {
                    return Err(ManagerError::InvalidArgument(
                        "resources must be a JSON object (OCI LinuxResources)".into(),
                    ))
                }
            }
        };
        let policy = if req.restart_policy.is_empty() {
            None
        } else {
            Some(
                RestartPolicy::parse(&req.restart_policy)
                    .map_err(|e| ManagerError::InvalidArgument(e.to_string()))?,
            )
        };
        if resources.is_none() && policy.is_none() {
            return Err(ManagerError::InvalidArgument(
                "update needs resources or a restart policy".into(),
            ));
        }
        let m = self.get(name)?;
        if policy.is_some() && m.rec.auto_remove {
            return Err(ManagerError::FailedPrecondition(format!(
                "container {name} is removed when it exits (--rm): it takes no restart policy"
            )));
        }
        let live = m.state.is_live();
        let config = m.rec.bundle.join("config.json");
        if let Some(res) = &resources {
            if live {
                let mut r = shimapi::UpdateTaskRequest::new();
                r.id = name.to_string();
                let mut any = Any::new();
                any.type_url = wren_protocol::type_urls::OCI_LINUX_RESOURCES.to_string();
                any.value = req.resources_json.as_bytes().to_vec();
                r.resources = MessageField::some(any);
                self.shim_call::<_, Empty>(name, "Update", &r)?;
            }
            spec::merge_resources(&config, res).map_err(|source| ManagerError::Spec {
                name: name.to_string(),
                source,
            })?;
        }
        if let Some(p) = policy {
            let m = self.get(name)?;
            m.rec.restart_policy = p.to_string();
            self.save(name);
        }
        self.events.emit("/container/update", name, String::new());
        Ok(api::Empty::new())
    }
}

/// `rm` of a container others join. Cold: out of wrend's resident text.
#[cold]
#[inline(never)]
fn joined_by(name: &str, joiners: &[&str]) -> ManagerError {
    ManagerError::FailedPrecondition(format!(
        "container {name} has namespaces that {} join{}: remove {} first",
        joiners.join(", "),
        if joiners.len() == 1 { "s" } else { "" },
        if joiners.len() == 1 { "it" } else { "them" },
    ))
}
