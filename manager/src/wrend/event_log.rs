//! wrend's event stream: a bounded ring of recent events (shim `/tasks/*`
//! events and wrend's own `/container/*` ones) and the `wren events` callers
//! parked until a newer one arrives. A slow or absent reader never blocks
//! anything: it just misses what fell off the ring.
//!
//! Runs in wrend's loop thread.

use std::collections::VecDeque;
use std::time::{SystemTime, UNIX_EPOCH};

use protobuf::Message;
use wren_protocol::manager::{Event, EventsResponse};

use wren_ttrpc::server::Responder;

/// Events kept for late readers.
pub const RING: usize = 1024;

/// Unix time now, in nanoseconds.
pub fn now_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

/// The ring and its parked readers.
#[derive(Default)]
pub struct EventLog {
    ring: VecDeque<Event>,
    seq: u64,
    waiters: Vec<(u64, Responder)>,
}

impl EventLog {
    /// Records an event and answers every parked reader.
    pub fn emit(&mut self, topic: &str, container: &str, detail: String) {
        self.seq += 1;
        let mut e = Event::new();
        e.seq = self.seq;
        e.timestamp = now_nanos();
        e.topic = topic.to_string();
        e.container = container.to_string();
        e.detail = detail;
        log::info!("event {topic} {container} {}", e.detail);
        if self.ring.len() == RING {
            self.ring.pop_front();
        }
        self.ring.push_back(e);
        for (after, responder) in std::mem::take(&mut self.waiters) {
            responder.send(Ok(self.since(after).write_to_bytes().unwrap_or_default()));
        }
    }

    fn since(&self, after: u64) -> EventsResponse {
        let mut r = EventsResponse::new();
        r.events = self
            .ring
            .iter()
            .filter(|e| e.seq > after)
            .cloned()
            .collect();
        r.last = self.seq;
        r
    }

    /// Answers with the events after `after` (0: from now on), or parks the
    /// caller until there is one.
    pub fn next(&mut self, after: u64, responder: Responder) {
        let after = if after == 0 { self.seq } else { after };
        if self.seq > after {
            responder.send(Ok(self.since(after).write_to_bytes().unwrap_or_default()));
        } else {
            self.waiters.push((after, responder));
        }
    }

    /// The current sequence number.
    pub fn seq(&self) -> u64 {
        self.seq
    }
}
