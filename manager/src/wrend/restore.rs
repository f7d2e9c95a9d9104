//! wrend's start after a restart of its own (or of the host): every record
//! loaded, live shims reconnected and asked for their task's state, exits
//! that happened meanwhile handled as exits, dead shims cleaned up, and the
//! containers marked to start at boot started (as restarts are: their
//! networks attached beside the loop, a failed start retried by policy).
//!
//! Runs in wrend's loop thread, before the loop serves anything.

use std::time::Instant;

use wren_protocol::task as shimapi;
use wren_protocol::task_types::Status as TaskStatus;

use super::event_log::now_nanos;
use super::record::{self, Record};
use super::registry::{Registry, State};
use super::restart_policy::{self, RestartPolicy};
use super::shim_client::TaskClient;
use super::shim_lifecycle::LOST_STATUS;

fn task_state(s: TaskStatus) -> State {
    match s {
        TaskStatus::CREATED => State::Created,
        TaskStatus::RUNNING | TaskStatus::PAUSING => State::Running,
        TaskStatus::PAUSED => State::Paused,
        TaskStatus::STOPPED => State::Stopped,
        _ => State::Unknown,
    }
}

impl Registry {
    /// Loads every record, reconnects to live shims, learns exits that
    /// happened while wrend was down, and starts containers marked to start
    /// at boot.
    pub fn restore(&mut self) {
        let dir = self.cfg.records_dir.join("containers");
        for rec in record::load_all(&dir) {
            match rec {
                Ok(rec) => self.restore_one(rec),
                Err(e) => log::error!("{}", wren_runtime::error::chain(&e)),
            }
        }
        let names = self.boot_order();
        for name in names {
            let Some(m) = self.containers.get(name.as_str()) else {
                continue;
            };
            let policy = RestartPolicy::parse(&m.rec.restart_policy).unwrap_or_default();
            let boot = m.rec.start_at_boot
                && m.state == State::Stopped
                && (!m.rec.stopped_by_user || policy == RestartPolicy::Always);
            // A restart that was pending when wrend went down.
            let pending = m.state == State::Stopped
                && m.restart_at.is_none()
                && m.rec.exit_status.is_some_and(|status| {
                    policy.should_restart(status, m.rec.restart_count, m.rec.stopped_by_user)
                });
            if boot {
                if let Some(m) = self.containers.get_mut(name.as_str()) {
                    m.rec.stopped_by_user = false;
                }
                self.events
                    .emit("/container/boot-start", &name, String::new());
                // As a restart: the network helper runs beside the loop
                // (which serves requests while the boot's containers get
                // their networks), and a start that fails counts as a
                // failed run, so `--restart always` tries again with
                // backoff instead of leaving it down until someone looks.
                self.run_task_then(&name, super::network::Then::Restart);
            } else if pending {
                if let Some(m) = self.containers.get_mut(name.as_str()) {
                    m.restart_at = Some(Instant::now() + restart_policy::BACKOFF_INITIAL);
                    m.state = State::Restarting;
                }
                self.events.emit(
                    "/container/restart-scheduled",
                    &name,
                    format!("in {} ms", restart_policy::BACKOFF_INITIAL.as_millis()),
                );
            }
        }
    }

    /// Every container's name, each after the containers whose namespaces
    /// it joins (their tasks must exist before its own is created).
    fn boot_order(&self) -> Vec<String> {
        let mut order: Vec<String> = Vec::with_capacity(self.containers.len());
        // The longest chain of joins below it; a loop (never made by
        // wrend) ends at 8.
        fn depth(r: &Registry, name: &str, limit: usize) -> usize {
            let Some(m) = r.containers.get(name) else {
                return 0;
            };
            if limit == 0 {
                return 0;
            }
            m.rec
                .joins()
                .map(|(_, other)| 1 + depth(r, other, limit - 1))
                .max()
                .unwrap_or(0)
        }
        // Level by level (no sort: its code would stay in wrend's
        // resident text for a list that is nearly always one level).
        let depths: Vec<usize> = self.containers.keys().map(|k| depth(self, k, 8)).collect();
        let deepest = depths.iter().copied().max().unwrap_or(0);
        for level in 0..=deepest {
            for (k, d) in self.containers.keys().zip(&depths) {
                if *d == level {
                    order.push(k.to_string());
                }
            }
        }
        order
    }

    pub(super) fn restore_one(&mut self, rec: Record) {
        let name = rec.name.clone();
        let address = rec.shim_address.clone();
        let was_started = rec.started;
        self.containers
            .insert(name.as_str().into(), self.new_managed(rec));
        if address.is_empty() {
            return;
        }
        let connected = TaskClient::connect(&address).and_then(|mut c| {
            let mut req = shimapi::ConnectRequest::new();
            req.id = name.clone();
            let r: shimapi::ConnectResponse = c.call("Connect", &req)?;
            Ok((c, r.shim_pid))
        });
        let (client, pid) = match connected {
            Ok(c) => c,
            Err(e) => {
                log::warn!(
                    "{name}: shim {address} is gone ({}); cleaning up",
                    wren_runtime::error::chain(&e)
                );
                let bundle = self.containers[name.as_str()].rec.bundle.clone();
                self.launch(&name, &bundle).delete();
                if let Some(m) = self.containers.get_mut(name.as_str()) {
                    m.rec.shim_address.clear();
                    m.rec.shim_pid = 0;
                    if m.rec.started {
                        m.state = State::Running;
                    }
                }
                if self.containers[name.as_str()].rec.started {
                    self.init_exited(&name, LOST_STATUS, now_nanos());
                } else {
                    self.save(&name);
                }
                return;
            }
        };
        self.adopt_shim(&name, client, &address, pid);
        let mut req = shimapi::StateRequest::new();
        req.id = name.clone();
        match self.shim_call::<_, shimapi::StateResponse>(&name, "State", &req) {
            Ok(s) => {
                let state = task_state(s.status.enum_value_or(TaskStatus::UNKNOWN));
                if let Err(e) = self.open_stdio(&name) {
                    log::warn!("{}", wren_runtime::error::chain(&e));
                }
                let m = self.get(&name).ok();
                if let Some(m) = m {
                    m.rec.pid = s.pid;
                    m.state = if state == State::Stopped {
                        State::Running
                    } else {
                        state
                    };
                    if state == State::Running {
                        m.started_at = Some(Instant::now());
                    }
                }
                if state == State::Running {
                    // Checks go on where they were (status kept).
                    let status = self
                        .containers
                        .get(name.as_str())
                        .map(|m| m.rec.health_state.clone());
                    self.health_started(&name);
                    if let (Some(m), Some(s)) = (self.containers.get_mut(name.as_str()), status) {
                        if !s.status.is_empty() {
                            m.rec.health_state = s;
                        }
                    }
                }
                self.events.emit(
                    "/container/reconnect",
                    &name,
                    format!("{} pid {}", state.as_str(), s.pid),
                );
                if state == State::Stopped && !was_started {
                    // Its exit was handled before wrend went down.
                    if let Some(m) = self.containers.get_mut(name.as_str()) {
                        m.state = State::Stopped;
                    }
                } else if state == State::Stopped {
                    let at = s.exited_at.as_ref().map_or(now_nanos(), |t| {
                        t.seconds * 1_000_000_000 + i64::from(t.nanos)
                    });
                    self.init_exited(&name, s.exit_status, at);
                }
            }
            Err(e) => {
                log::info!("no task in its shim: {}", wren_runtime::error::chain(&e));
                if let Some(m) = self.containers.get_mut(name.as_str()) {
                    m.state = State::Stopped;
                }
            }
        }
    }
}
