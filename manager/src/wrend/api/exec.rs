//! `Exec` (a process in a running container, its stdio on fifos the client
//! made), and the interactive plumbing: `Attach`/`Detach` of the init's
//! terminal, `ResizePty`, `CloseStdin`.
//!
//! Runs in wrend's loop thread.

use std::os::fd::AsRawFd;

use protobuf::well_known_types::any::Any;
use protobuf::well_known_types::empty::Empty;
use protobuf::MessageField;
use wren_protocol::manager as api;
use wren_protocol::task as shimapi;

use crate::wrend::error::ManagerError;
use crate::wrend::registry::{Registry, State, Watch, WatchKind};
use crate::wrend::spec;

impl Registry {
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
            image: spec::ImageOverrides {
                user: req
                    .user_set
                    .then(|| (req.uid, req.gid, req.additional_gids.clone())),
                ..Default::default()
            },
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
        if !crate::wrend::shim_events::is_health_check(&req.exec_id) {
            self.events.emit(
                "/container/exec",
                &req.name,
                format!("{} pid {}", req.exec_id, started.pid),
            );
        }
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
}
