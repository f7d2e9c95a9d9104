//! wrend's event stream: a bounded ring of recent events (shim `/tasks/*`
//! events and wrend's own `/container/*` ones) and the `wren events` callers
//! parked until a newer one arrives. A slow or absent reader never blocks
//! anything: it just misses what fell off the ring.
//!
//! The ring is resident for wrend's whole life, so it is kept small: 256
//! events (Docker keeps the same number for late subscribers), each stored
//! compactly (boxed strings, no protobuf bookkeeping) and turned into the
//! API's `Event` only when a reader asks. With 1024 protobuf events it was
//! the largest single item of wrend's heap on a busy host (~200 KiB).
//!
//! Runs in wrend's loop thread.

use std::collections::VecDeque;
use std::time::{SystemTime, UNIX_EPOCH};

use protobuf::Message;
use wren_protocol::manager::{Event, EventsResponse};

use wren_ttrpc::server::Responder;

/// Events kept for late readers.
pub const RING: usize = 256;

/// Unix time now, in nanoseconds.
pub fn now_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

/// One event as the ring holds it (64 bytes plus its strings; an empty
/// detail allocates nothing).
struct Stored {
    seq: u64,
    timestamp: i64,
    topic: Box<str>,
    container: Box<str>,
    detail: Box<str>,
}

impl Stored {
    fn to_event(&self) -> Event {
        let mut e = Event::new();
        e.seq = self.seq;
        e.timestamp = self.timestamp;
        e.topic = self.topic.to_string();
        e.container = self.container.to_string();
        e.detail = self.detail.to_string();
        e
    }
}

/// The ring and its parked readers.
#[derive(Default)]
pub struct EventLog {
    ring: VecDeque<Stored>,
    seq: u64,
    waiters: Vec<(u64, Responder)>,
}

impl EventLog {
    /// Records an event and answers every parked reader.
    pub fn emit(&mut self, topic: &str, container: &str, detail: String) {
        self.seq += 1;
        log::info!("event {topic} {container} {detail}");
        if self.ring.len() == RING {
            self.ring.pop_front();
        }
        self.ring.push_back(Stored {
            seq: self.seq,
            timestamp: now_nanos(),
            topic: topic.into(),
            container: container.into(),
            detail: detail.into_boxed_str(),
        });
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
            .map(Stored::to_event)
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

    /// Answers at once with every event still kept.
    pub fn kept(&self, responder: Responder) {
        responder.send(Ok(self.since(0).write_to_bytes().unwrap_or_default()));
    }

    /// The current sequence number.
    pub fn seq(&self) -> u64 {
        self.seq
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ring_keeps_the_newest_events_in_order() {
        let mut log = EventLog::default();
        for i in 0..(RING as u64 + 10) {
            log.emit("/container/start", &format!("c{i}"), format!("pid {i}"));
        }
        let r = log.since(0);
        assert_eq!(r.events.len(), RING);
        assert_eq!(r.events[0].seq, 11);
        assert_eq!(r.events[0].container, "c10");
        assert_eq!(r.events[RING - 1].detail, format!("pid {}", RING + 9));
        assert_eq!(r.last, RING as u64 + 10);
        assert!(log.since(r.last).events.is_empty());
    }
}
