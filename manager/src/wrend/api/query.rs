//! The requests that only look: `List`, `Inspect`, `Pids` (`wren ps`) and
//! `Stats`.
//!
//! Runs in wrend's loop thread.

use wren_protocol::manager as api;
use wren_protocol::task as shimapi;

use crate::wrend::error::ManagerError;
use crate::wrend::registry::Registry;

impl Registry {
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
