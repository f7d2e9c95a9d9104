//! The container's resources: Stats (cgroup metrics as containerd's v1/v2
//! `Metrics`), Update (JSON `specs.LinuxResources`), and Pids (each exec's
//! pid tagged with its exec id, as containerd's runc shim does).
//!
//! Runs in the daemon, on the epoll loop thread.

use std::collections::HashMap;

use protobuf::well_known_types::empty::Empty;
use protobuf::{Message, MessageField};
use wren_protocol::task::*;
use wren_protocol::task_types::ProcessInfo;

use super::container_ops::ContainerOps;
use super::error::TaskError;
use super::record;
use super::TaskService;

impl<O: ContainerOps> TaskService<O> {
    pub(super) fn stats(&mut self, req: StatsRequest) -> Result<StatsResponse, TaskError> {
        let c = record::find(&mut self.containers, &req.id)?;
        let any = self
            .ops
            .stats(c.rt(&req.id)?)
            .map_err(TaskError::ops("stats", &req.id))?;
        let mut r = StatsResponse::new();
        r.stats = MessageField::some(any);
        Ok(r)
    }

    pub(super) fn update(&mut self, req: UpdateTaskRequest) -> Result<Empty, TaskError> {
        let c = record::find(&mut self.containers, &req.id)?;
        let json = req.resources.as_ref().map_or(&[][..], |a| &a.value[..]);
        let resources: oci_spec::runtime::LinuxResources =
            serde_json::from_slice(json).map_err(TaskError::invalid("update", &req.id))?;
        self.ops
            .update(c.rt(&req.id)?, &resources)
            .map_err(TaskError::ops("update", &req.id))?;
        Ok(Empty::new())
    }

    pub(super) fn pids(&mut self, req: PidsRequest) -> Result<PidsResponse, TaskError> {
        let c = record::find(&mut self.containers, &req.id)?;
        let execs: HashMap<u32, String> = c
            .execs
            .iter()
            .filter(|(_, p)| p.pid != 0)
            .map(|(id, p)| (p.pid, id.clone()))
            .collect();
        let pids = self
            .ops
            .pids(c.rt(&req.id)?)
            .map_err(TaskError::ops("pids", &req.id))?;
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
}
