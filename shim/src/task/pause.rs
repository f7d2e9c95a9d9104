//! Pause and Resume (the cgroup freezer, through the runtime;
//! `/tasks/paused`, `/tasks/resumed`) and Checkpoint (CRIU through the
//! runtime, with containerd's runc `CheckpointOptions`; criu runs only
//! for the length of the RPC). Without `exit` the task keeps running;
//! with it criu kills the processes once dumped and the exit is reported
//! as any other.
//!
//! Runs in the daemon, on the epoll loop thread.

use std::path::PathBuf;

use protobuf::well_known_types::empty::Empty;
use protobuf::Message;
use wren_protocol::events::{TaskPaused, TaskResumed};
use wren_protocol::task::{CheckpointTaskRequest, PauseRequest, ResumeRequest};
use wren_protocol::task_types::Status;
use wren_protocol::{runc_options, type_urls};
use wren_runtime::{CgroupsMode, CheckpointOptions, CriuFlags};

use super::container_ops::ContainerOps;
use super::error::TaskError;
use super::record;
use super::TaskService;

impl<O: ContainerOps> TaskService<O> {
    pub(super) fn pause(&mut self, req: PauseRequest) -> Result<Empty, TaskError> {
        let c = record::find(&mut self.containers, &req.id)?;
        if c.init.status != Status::RUNNING {
            return Err(TaskError::State(format!(
                "cannot pause a {:?} container",
                c.init.status
            )));
        }
        self.ops
            .pause(c.rt(&req.id)?)
            .map_err(TaskError::ops("pause", &req.id))?;
        c.init.status = Status::PAUSED;
        let mut ev = TaskPaused::new();
        ev.container_id = req.id;
        self.publisher.publish("/tasks/paused", &ev);
        Ok(Empty::new())
    }

    pub(super) fn resume(&mut self, req: ResumeRequest) -> Result<Empty, TaskError> {
        let c = record::find(&mut self.containers, &req.id)?;
        if c.init.status != Status::PAUSED {
            return Err(TaskError::State(
                "cannot resume a container that is not paused".into(),
            ));
        }
        self.ops
            .resume(c.rt(&req.id)?)
            .map_err(TaskError::ops("resume", &req.id))?;
        c.init.status = Status::RUNNING;
        let mut ev = TaskResumed::new();
        ev.container_id = req.id;
        self.publisher.publish("/tasks/resumed", &ev);
        Ok(Empty::new())
    }

    pub(super) fn checkpoint(&mut self, req: CheckpointTaskRequest) -> Result<Empty, TaskError> {
        self.container(&req.id)?;
        let bad = |m: String| TaskError::invalid("checkpoint", &req.id)(BadOption(m));
        let mut o = runc_options::CheckpointOptions::new();
        if let Some(any) = req.options.as_ref() {
            let name = any.type_url.rsplit('/').next().unwrap_or(&any.type_url);
            if name != type_urls::RUNC_CHECKPOINT_OPTIONS {
                return Err(bad(format!(
                    "options of type {:?}: want {}",
                    any.type_url,
                    type_urls::RUNC_CHECKPOINT_OPTIONS
                )));
            }
            o = runc_options::CheckpointOptions::parse_from_bytes(&any.value)
                .map_err(TaskError::invalid("checkpoint", &req.id))?;
        }
        let image = if o.image_path.is_empty() {
            req.path.clone()
        } else {
            o.image_path.clone()
        };
        if image.is_empty() {
            return Err(bad("no image path (path or options.image_path)".into()));
        }
        let mut empty_ns = 0u32;
        for ns in &o.empty_namespaces {
            match ns.as_str() {
                "network" | "net" => empty_ns |= libc::CLONE_NEWNET as u32,
                other => {
                    return Err(bad(format!(
                        "empty_namespaces: {other:?} cannot be restored empty"
                    )))
                }
            }
        }
        let cgroups_mode = if o.cgroups_mode.is_empty() {
            None
        } else {
            Some(o.cgroups_mode.parse::<CgroupsMode>().map_err(bad)?)
        };
        let opts = CheckpointOptions {
            flags: CriuFlags {
                criu: None,
                image_path: PathBuf::from(image),
                work_path: (!o.work_path.is_empty()).then(|| PathBuf::from(&o.work_path)),
                tcp_established: o.open_tcp,
                ext_unix_sk: o.external_unix_sockets,
                shell_job: o.terminal,
                file_locks: o.file_locks,
                cgroups_mode,
                empty_ns,
                lazy_pages: false,
                status_fd: None,
            },
            leave_running: !o.exit,
            ..CheckpointOptions::default()
        };
        let c = record::find(&mut self.containers, &req.id)?;
        self.ops
            .checkpoint(c.rt(&req.id)?, opts)
            .map_err(TaskError::ops("checkpoint", &req.id))?;
        Ok(Empty::new())
    }
}

/// A checkpoint option the shim cannot honour.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct BadOption(String);
