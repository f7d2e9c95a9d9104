//! The events wrend's shims publish to it (`containerd.services.events.
//! ttrpc.v1.Events/Forward` on wrend's API socket): decoded, passed on to
//! `wren events`, and `/tasks/exit` handed to supervision.
//!
//! Runs in wrend's loop thread.

use protobuf::Message;
use wren_protocol::{events as task_events, forward};

use super::registry::Registry;

/// One event a shim published, as wrend uses it.
#[derive(Debug, PartialEq)]
pub enum ShimEvent {
    /// `/tasks/exit`: drives supervision.
    Exit {
        container: String,
        exec_id: String,
        pid: u32,
        status: u32,
        /// Nanoseconds since the epoch (0 if absent; saturated if absurd).
        at: i64,
    },
    /// Any other `/tasks/*` topic, only passed on to `wren events`.
    Other { topic: String, container: String },
}

/// Decodes an `Events/Forward` payload from a shim. `None` for anything
/// undecodable or without an event. Never panics (the `wrend_request` fuzz
/// target holds it to that).
pub fn decode_event(payload: &[u8]) -> Option<ShimEvent> {
    let req = forward::ForwardRequest::parse_from_bytes(payload).ok()?;
    let env = req.envelope.as_ref()?;
    let any = env.event.as_ref()?;
    if env.topic == "/tasks/exit" {
        let e = task_events::TaskExit::parse_from_bytes(&any.value).ok()?;
        let at = e.exited_at.as_ref().map_or(0, |t| {
            t.seconds
                .saturating_mul(1_000_000_000)
                .saturating_add(i64::from(t.nanos))
        });
        return Some(ShimEvent::Exit {
            container: e.container_id,
            exec_id: e.id,
            pid: e.pid,
            status: e.exit_status,
            at,
        });
    }
    // Every /tasks/* payload has the container id as field 1; TaskOOM has
    // only that field, so it decodes any of them.
    let container = task_events::TaskOOM::parse_from_bytes(&any.value)
        .map(|e| e.container_id)
        .unwrap_or_default();
    Some(ShimEvent::Other {
        topic: env.topic.clone(),
        container,
    })
}

/// One event a shim published: exits drive supervision; everything is
/// passed on to `wren events`.
pub fn forward(reg: &mut Registry, payload: &[u8]) {
    match decode_event(payload) {
        None => log::warn!("undecodable event from a shim"),
        Some(ShimEvent::Exit {
            container,
            exec_id,
            pid,
            status,
            at,
        }) => {
            if !is_health_check(&exec_id) {
                let detail = format!("id {exec_id} pid {pid} status {status}");
                reg.events.emit("/tasks/exit", &container, detail);
            }
            reg.task_exit(&container, &exec_id, pid, status, at);
        }
        Some(ShimEvent::Other { topic, container }) => {
            let exec = matches!(topic.as_str(), "/tasks/exec-added" | "/tasks/exec-started");
            if !(exec && is_health_check(&exec_id_of(payload))) {
                reg.events.emit(&topic, &container, String::new())
            }
        }
    }
}

/// Whether an exec id is one of wrend's health checks
/// ([`super::health`]): their four events per check are kept out of the
/// event ring (its 256 entries would churn with every check; the checks'
/// outcome is `/container/health_status`).
pub fn is_health_check(exec_id: &str) -> bool {
    exec_id.starts_with("health-")
}

/// The exec id of a `/tasks/exec-added` or `/tasks/exec-started` payload
/// (field 2 of both).
fn exec_id_of(payload: &[u8]) -> String {
    forward::ForwardRequest::parse_from_bytes(payload)
        .ok()
        .and_then(|r| r.envelope.into_option())
        .and_then(|e| e.event.into_option())
        .and_then(|a| task_events::TaskExecAdded::parse_from_bytes(&a.value).ok())
        .map(|e| e.exec_id)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forward_payload(topic: &str, value: Vec<u8>) -> Vec<u8> {
        let mut any = protobuf::well_known_types::any::Any::new();
        any.value = value;
        let mut env = wren_protocol::envelope::Envelope::new();
        env.topic = topic.into();
        env.event = protobuf::MessageField::some(any);
        let mut req = forward::ForwardRequest::new();
        req.envelope = protobuf::MessageField::some(env);
        req.write_to_bytes().unwrap()
    }

    #[test]
    fn events_decode_and_absurd_exit_times_saturate() {
        let mut exit = task_events::TaskExit::new();
        exit.container_id = "web".into();
        exit.id = "e1".into();
        exit.pid = 42;
        exit.exit_status = 3;
        let mut t = protobuf::well_known_types::timestamp::Timestamp::new();
        t.seconds = i64::MAX;
        t.nanos = 5;
        exit.exited_at = protobuf::MessageField::some(t);
        let payload = forward_payload("/tasks/exit", exit.write_to_bytes().unwrap());
        assert_eq!(
            decode_event(&payload),
            Some(ShimEvent::Exit {
                container: "web".into(),
                exec_id: "e1".into(),
                pid: 42,
                status: 3,
                at: i64::MAX,
            })
        );
        let mut oom = task_events::TaskOOM::new();
        oom.container_id = "db".into();
        let payload = forward_payload("/tasks/oom", oom.write_to_bytes().unwrap());
        assert_eq!(
            decode_event(&payload),
            Some(ShimEvent::Other {
                topic: "/tasks/oom".into(),
                container: "db".into()
            })
        );
        assert_eq!(decode_event(b"\xff\xff"), None);
        assert_eq!(decode_event(&[]), None, "no envelope");
    }
}
