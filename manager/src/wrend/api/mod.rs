//! wrend's API, one handler per request of `wren.manager.v1.Manager`, in
//! files by what the requests do: [`create`], [`lifecycle`] (start, wait,
//! kill, stop, rm, pause, resume, update), [`checkpoint`] (checkpoint,
//! restore), [`exec`] (and the interactive
//! plumbing), [`query`] (list, inspect, ps, stats). [`dispatch`] routes a
//! decoded request to its handler; the shims' `Events/Forward` calls arrive
//! on the same socket and go to [`super::shim_events`].
//!
//! Runs in wrend's loop thread.

pub mod checkpoint;
pub mod create;
pub mod exec;
pub mod lifecycle;
pub mod query;

use protobuf::Message;
use wren_protocol::manager as api;
use wren_protocol::services;
use wren_protocol::ttrpc_wire::{Code, Request};
use wren_ttrpc::server::{self, Responder};

use super::error::ManagerError;
use super::registry::Registry;
use super::shim_events;

fn reply<M: Message>(responder: Responder, result: Result<M, ManagerError>) {
    responder.send(
        result
            .map(|m| m.write_to_bytes().unwrap_or_default())
            .map_err(|e| e.to_status()),
    );
}

/// Routes one request. A request about a container whose network is
/// still being attached waits for that first (`settle_attach`).
pub fn dispatch(reg: &mut Registry, req: &Request, responder: Responder) {
    if req.service == services::EVENTS && req.method == services::EVENTS_FORWARD {
        shim_events::forward(reg, &req.payload);
        return responder.send(Ok(Vec::new()));
    }
    if req.service != services::MANAGER {
        return responder.send(Err(server::status(
            Code::UNIMPLEMENTED,
            format!("service {} is not served here", req.service),
        )));
    }
    macro_rules! decode {
        ($t:ty) => {
            match <$t>::parse_from_bytes(&req.payload) {
                Ok(m) => m,
                Err(e) => {
                    return responder.send(Err(server::status(
                        Code::INVALID_ARGUMENT,
                        format!("decode {}: {e}", req.method),
                    )))
                }
            }
        };
    }
    match req.method.as_str() {
        "Create" => {
            let r = decode!(api::CreateRequest);
            reg.create_request(r, responder)
        }
        "Start" => {
            let r = decode!(api::NameRequest);
            reg.start_request(&r.name, responder)
        }
        "Wait" => {
            let r = decode!(api::WaitRequest);
            reg.wait(&r.name, &r.exec_id, responder)
        }
        "Kill" => {
            let r = decode!(api::KillRequest);
            reg.settle_attach(&r.name);
            reply(responder, reg.kill(&r))
        }
        "Stop" => {
            let r = decode!(api::StopRequest);
            reg.settle_attach(&r.name);
            reg.stop(&r, responder)
        }
        "Delete" => {
            let r = decode!(api::DeleteRequest);
            reg.remove_request(&r.name, r.force, responder)
        }
        "List" => reply(responder, Ok::<_, ManagerError>(reg.list())),
        "Inspect" => {
            let r = decode!(api::NameRequest);
            reply(responder, reg.inspect(&r.name))
        }
        "Exec" => {
            let r = decode!(api::ExecRequest);
            reg.settle_attach(&r.name);
            reply(responder, reg.exec(&r))
        }
        "ResizePty" => {
            let r = decode!(api::ResizeRequest);
            reg.settle_attach(&r.name);
            reply(responder, reg.resize(&r))
        }
        "CloseStdin" => {
            let r = decode!(api::CloseStdinRequest);
            reg.settle_attach(&r.name);
            reply(responder, reg.close_stdin(&r))
        }
        "Attach" => {
            let r = decode!(api::AttachRequest);
            reg.settle_attach(&r.name);
            reply(responder, reg.attach(&r.name))
        }
        "Detach" => {
            let r = decode!(api::AttachRequest);
            reply(responder, reg.detach(&r.name))
        }
        "Pause" => {
            let r = decode!(api::NameRequest);
            reg.settle_attach(&r.name);
            reply(responder, reg.pause_resume(&r.name, true))
        }
        "Resume" => {
            let r = decode!(api::NameRequest);
            reg.settle_attach(&r.name);
            reply(responder, reg.pause_resume(&r.name, false))
        }
        "Update" => {
            let r = decode!(api::UpdateRequest);
            reg.settle_attach(&r.name);
            reply(responder, reg.update(&r))
        }
        "Stats" => {
            let r = decode!(api::NameRequest);
            reply(responder, reg.stats(&r.name))
        }
        "Pids" => {
            let r = decode!(api::NameRequest);
            reply(responder, reg.pids(&r.name))
        }
        "Checkpoint" => {
            let r = decode!(api::CheckpointRequest);
            reg.settle_attach(&r.name);
            reply(responder, reg.checkpoint(&r))
        }
        "Restore" => {
            let r = decode!(api::RestoreRequest);
            reg.settle_attach(&r.name);
            reply(responder, reg.restore_from(&r))
        }
        "Events" => {
            let r = decode!(api::EventsRequest);
            if r.kept {
                reg.events.kept(responder)
            } else {
                reg.events.next(r.after, responder)
            }
        }
        m => responder.send(Err(server::status(
            Code::UNIMPLEMENTED,
            format!("method {m} is not served here"),
        ))),
    }
}
