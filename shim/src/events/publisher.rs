//! The event publisher: a bounded FIFO queue drained by one thread that
//! forwards each event to containerd's `Events/Forward` on `TTRPC_ADDRESS`,
//! reconnecting after a broken connection and retrying an event up to five
//! times with 1 s·n backoff before dropping it (containerd's own shims do the
//! same). Retries happen at the head of the queue, so order is kept: OOM before
//! exit, start before exit, init exit after exec exits — whatever order the
//! Task service enqueued them in.
//!
//! `publish` never blocks: a full queue drops the event with an error log,
//! because a stuck containerd must not stall exit handling (the
//! rust-extensions #270/#316 lesson).
//!
//! Runs in the daemon: `publish` on the loop thread, delivery on its own thread.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime};

use protobuf::well_known_types::any::Any;
use protobuf::well_known_types::timestamp::Timestamp;
use protobuf::Message;
use wren_protocol::envelope::Envelope;
use wren_protocol::forward::ForwardRequest;
use wren_protocol::services;

use wren_ttrpc::client::{CallError, Client};

/// Queue bound (containerd's Go publisher uses 2048).
pub const QUEUE_LIMIT: usize = 2048;
const MAX_ATTEMPTS: u32 = 5;
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

struct Queue {
    events: VecDeque<Envelope>,
    closed: bool,
    /// True while the thread holds an event it has not delivered or dropped.
    in_flight: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    wake: Condvar,
    idle: Condvar,
}

/// Handle used by the Task service; cheap to clone.
#[derive(Clone)]
pub struct Publisher {
    shared: Arc<Shared>,
    namespace: String,
}

/// An event message and its type URL. Spelled out rather than taken from
/// `MessageFull::descriptor()`, whose first use builds rust-protobuf's
/// reflection tables for the whole events proto and its imports: hundreds of
/// KiB of heap kept for the life of every shim.
pub trait Event: Message {
    const TYPE_URL: &'static str;
}

macro_rules! events {
    ($($t:ident),* $(,)?) => {
        $(impl Event for wren_protocol::events::$t {
            const TYPE_URL: &'static str = concat!("containerd.events.", stringify!($t));
        })*
    };
}

events!(
    TaskCreate,
    TaskStart,
    TaskDelete,
    TaskExit,
    TaskOOM,
    TaskExecAdded,
    TaskExecStarted,
    TaskPaused,
    TaskResumed,
    TaskCheckpointed,
);

/// Protobuf timestamp of a wall-clock time.
pub fn timestamp(t: SystemTime) -> Timestamp {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let mut ts = Timestamp::new();
    ts.seconds = d.as_secs() as i64;
    ts.nanos = d.subsec_nanos() as i32;
    ts
}

impl Publisher {
    /// Starts the delivery thread. With no address (no containerd to talk to),
    /// events are logged at debug level and dropped.
    pub fn start(ttrpc_address: Option<String>, namespace: &str) -> Self {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                events: VecDeque::new(),
                closed: false,
                in_flight: false,
            }),
            wake: Condvar::new(),
            idle: Condvar::new(),
        });
        if let Some(address) = ttrpc_address.filter(|a| !a.is_empty()) {
            let thread_shared = shared.clone();
            let spawned = std::thread::Builder::new()
                .name("publisher".into())
                .stack_size(64 * 1024)
                .spawn(move || deliver(&thread_shared, &address));
            if let Err(e) = spawned {
                log::error!("events: cannot start publisher thread: {e}");
            }
        } else {
            log::warn!("events: no TTRPC_ADDRESS, events will not be published");
            shared
                .queue
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .closed = true;
        }
        Self {
            shared,
            namespace: namespace.to_string(),
        }
    }

    /// Queues `event` under `topic` (e.g. `/tasks/exit`).
    pub fn publish<M: Event>(&self, topic: &str, event: &M) {
        let mut any = Any::new();
        any.type_url = M::TYPE_URL.to_string();
        any.value = match event.write_to_bytes() {
            Ok(v) => v,
            Err(e) => {
                log::error!("events: encode {topic}: {e}");
                return;
            }
        };
        let mut env = Envelope::new();
        env.timestamp = protobuf::MessageField::some(timestamp(SystemTime::now()));
        env.namespace = self.namespace.clone();
        env.topic = topic.to_string();
        env.event = protobuf::MessageField::some(any);
        let mut q = self.shared.queue.lock().unwrap_or_else(|e| e.into_inner());
        if q.closed {
            log::debug!("events: not published (no containerd): {topic}");
            return;
        }
        if q.events.len() >= QUEUE_LIMIT {
            log::error!("events: queue full, dropping {topic}");
            return;
        }
        log::debug!("events: queue {topic}");
        q.events.push_back(env);
        self.shared.wake.notify_one();
    }

    /// Waits up to `limit` for every queued event to be delivered or dropped.
    pub fn flush(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        let mut q = self.shared.queue.lock().unwrap_or_else(|e| e.into_inner());
        while !q.closed && (!q.events.is_empty() || q.in_flight) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                log::warn!("events: {} event(s) not delivered at exit", q.events.len());
                return;
            }
            q = match self.shared.idle.wait_timeout(q, left) {
                Ok((g, _)) => g,
                Err(e) => e.into_inner().0,
            };
        }
    }
}

fn deliver(shared: &Shared, address: &str) {
    let mut client: Option<Client> = None;
    loop {
        let env = {
            let mut q = shared.queue.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                if let Some(env) = q.events.pop_front() {
                    q.in_flight = true;
                    break env;
                }
                q.in_flight = false;
                shared.idle.notify_all();
                q = shared.wake.wait(q).unwrap_or_else(|e| e.into_inner());
            }
        };
        let mut req = ForwardRequest::new();
        req.envelope = protobuf::MessageField::some(env);
        let payload = req.write_to_bytes().unwrap_or_default();
        let topic = req.envelope.topic.clone();
        for attempt in 1..=MAX_ATTEMPTS {
            match forward(&mut client, address, &payload) {
                Ok(()) => break,
                Err(e) => {
                    if e.is_transport() {
                        client = None;
                    }
                    if attempt == MAX_ATTEMPTS {
                        log::error!("events: dropping {topic} after {attempt} attempts: {e}");
                    } else {
                        log::warn!("events: forward {topic} (attempt {attempt}): {e}");
                        std::thread::sleep(Duration::from_secs(u64::from(attempt)));
                    }
                }
            }
        }
    }
}

fn forward(client: &mut Option<Client>, address: &str, payload: &[u8]) -> Result<(), CallError> {
    if client.is_none() {
        *client = Some(Client::connect(address, CALL_TIMEOUT)?);
    }
    let Some(c) = client.as_mut() else {
        return Ok(());
    };
    c.call(
        services::EVENTS,
        services::EVENTS_FORWARD,
        payload.to_vec(),
        &[],
        CALL_TIMEOUT,
    )
    .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::Event;
    use protobuf::MessageFull;
    use wren_protocol::events::*;

    fn same<M: Event + MessageFull>() {
        assert_eq!(M::TYPE_URL, M::descriptor().full_name());
    }

    #[test]
    fn spelled_out_type_urls_match_the_descriptors() {
        same::<TaskCreate>();
        same::<TaskStart>();
        same::<TaskDelete>();
        same::<TaskExit>();
        same::<TaskOOM>();
        same::<TaskExecAdded>();
        same::<TaskExecStarted>();
        same::<TaskPaused>();
        same::<TaskResumed>();
        same::<TaskCheckpointed>();
    }
}
