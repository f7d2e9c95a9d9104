//! What follows an exit: the init's exit recorded and its waiters answered,
//! the container's restart policy ([`super::restart_policy`]) applied, the
//! restart timer with its backoff armed, and the timers fired when due
//! (restarts, `wren stop`'s grace period, shims that overstay Shutdown).
//! Exec exits are answered here too.
//!
//! Runs in wrend's loop thread.

use std::os::fd::RawFd;
use std::time::{Duration, Instant};

use wren_protocol::manager as api;
use wren_protocol::task as shimapi;

use super::error::ManagerError;
use super::network::Then;
use super::registry::{encode, Registry, State};
use super::restart_policy::{self, RestartPolicy};
use super::shim_lifecycle::kill_pidfd;
use wren_runtime::timing;

/// Exit status recorded when a (re)start failed.
pub const START_FAILED_STATUS: u32 = 255;
/// How soon a restart due while the container's detach runs is tried again.
const HELPER_POLL: Duration = Duration::from_millis(20);
/// How often a restart due while `wren cp` holds the overlay looks again.
const COPY_POLL: Duration = Duration::from_millis(200);

impl Registry {
    /// The init of `name` exited with `status` (event, State, or shim death).
    pub(super) fn init_exited(&mut self, name: &str, status: u32, at: i64) {
        self.drain_stdio(name);
        // Its network goes with its processes (a restart attaches again,
        // asking for the same address), in a helper the loop does not wait
        // for: `stop` and `rm` answer once it is done, a restart waits.
        self.detach_network(name);
        self.health_stopped(name);
        let Some(m) = self.containers.get_mut(name) else {
            return;
        };
        // Killed to be started again (the health check's `restart`
        // action, a rejoin), whatever the policy.
        let forced = std::mem::take(&mut m.restart_forced);
        m.state = State::Stopped;
        m.rec.started = false;
        // Exec exits nobody waited for die with the init.
        if let Some(e) = &mut m.execs {
            e.exits.clear();
            if e.is_idle() {
                m.execs = None;
            }
        }
        m.rec.exit_status = Some(status);
        m.rec.exited_at = at;
        let ran_for = m.started_at.take().map_or(Duration::ZERO, |t| t.elapsed());
        let waiters = std::mem::take(&mut m.waiters);
        let stop_waiters = std::mem::take(&mut m.stop_waiters);
        m.stopping = false;
        m.kill_at = None;
        let policy = RestartPolicy::parse(&m.rec.restart_policy).unwrap_or_default();
        if ran_for >= restart_policy::STABLE_PERIOD {
            // A stable run starts the count `on-failure:N` compares with over.
            m.rec.restart_count = 0;
        }
        let restart =
            forced || policy.should_restart(status, m.rec.restart_count, m.rec.stopped_by_user);
        if restart {
            let delay = restart_policy::next_backoff(m.backoff, ran_for);
            m.backoff = Some(delay);
            m.restart_at = Some(Instant::now() + delay);
            m.state = State::Restarting;
        }
        let auto_remove = m.rec.auto_remove && !restart;
        let delay = m.backoff;
        self.save(name);
        self.events
            .emit("/container/exit", name, format!("status {status}"));
        let mut w = api::WaitResponse::new();
        w.exit_status = status;
        w.exited_at = at;
        for r in waiters {
            r.send(Ok(encode(&w)));
        }
        if restart {
            self.events.emit(
                "/container/restart-scheduled",
                name,
                format!("in {} ms", delay.unwrap_or_default().as_millis()),
            );
        }
        for r in stop_waiters {
            match self.container_response(name) {
                Ok(c) => self.reply_when_gone(name, r, Ok(encode(&c))),
                Err(e) => r.send(Err(e.to_status())),
            }
        }
        if auto_remove {
            if let Err(e) = self.remove(name, true) {
                log::warn!("auto-remove: {}", wren_runtime::error::chain(&e));
            }
        }
    }

    /// Kills `name`'s init so that it starts again whatever its restart
    /// policy says (with the policy's backoff).
    pub(super) fn kill_to_restart(&mut self, name: &str) -> Result<(), ManagerError> {
        if let Some(m) = self.containers.get_mut(name) {
            m.restart_forced = true;
        }
        self.signal(name, "", libc::SIGKILL as u32, true)
    }

    /// A process of `name` exited, as the shim's `/tasks/exit` says.
    pub fn task_exit(&mut self, name: &str, id: &str, pid: u32, status: u32, at: i64) {
        timing::mark(name, "wrend.exit");
        if id != name && self.health_exec_exited(name, id, status) {
            let mut req = shimapi::DeleteRequest::new();
            req.id = name.to_string();
            req.exec_id = id.to_string();
            if let Err(e) = self.shim_call::<_, shimapi::DeleteResponse>(name, "Delete", &req) {
                log::debug!("delete health check {id}: {e}");
            }
            return;
        }
        let Some(m) = self.containers.get_mut(name) else {
            return;
        };
        if id != name {
            let execs = m.execs.get_or_insert_with(Default::default);
            let waiters = execs.waiters.remove(id).unwrap_or_default();
            if waiters.is_empty() {
                execs.exits.insert(id.to_string(), (status, at));
            } else if execs.is_idle() {
                m.execs = None;
            }
            let mut w = api::WaitResponse::new();
            w.exit_status = status;
            w.exited_at = at;
            for r in waiters {
                r.send(Ok(encode(&w)));
            }
            let mut req = shimapi::DeleteRequest::new();
            req.id = name.to_string();
            req.exec_id = id.to_string();
            if let Err(e) = self.shim_call::<_, shimapi::DeleteResponse>(name, "Delete", &req) {
                log::debug!("delete exec {id}: {e}");
            }
            self.events.emit(
                "/container/exec-exit",
                name,
                format!("{id} status {status}"),
            );
            return;
        }
        if m.rec.pid != pid || !m.state.is_live() {
            log::debug!("{name}: stale exit of pid {pid}");
            return;
        }
        self.init_exited(name, status, at);
    }

    /// The earliest timer (restart or stop deadline).
    pub fn next_deadline(&self) -> Option<Instant> {
        self.containers
            .values()
            .flat_map(|m| [m.restart_at, m.kill_at])
            .flatten()
            .chain(self.departing.values().map(|d| d.deadline))
            .chain(self.health_deadline())
            .min()
    }

    /// Fires the timers that are due.
    pub fn fire_timers(&mut self) {
        let now = Instant::now();
        self.fire_health(now);
        let overdue: Vec<RawFd> = self
            .departing
            .iter()
            .filter(|(_, d)| d.deadline <= now)
            .map(|(fd, _)| *fd)
            .collect();
        for fd in overdue {
            if let Some(d) = self.departing.get(&fd) {
                log::warn!("shim of {} did not exit after Shutdown; killing it", d.name);
                kill_pidfd(&d.pidfd);
            }
            self.departed(fd);
        }
        let due: Vec<(String, bool)> = self
            .containers
            .iter()
            .flat_map(|(n, m)| {
                let restart = m
                    .restart_at
                    .filter(|t| *t <= now)
                    .map(|_| (n.to_string(), true));
                let kill = m
                    .kill_at
                    .filter(|t| *t <= now)
                    .map(|_| (n.to_string(), false));
                [restart, kill]
            })
            .flatten()
            .collect();
        for (name, is_restart) in due {
            if is_restart {
                if self.helper_of(&name).is_some() {
                    // Its last run's detach still runs: look again soon
                    // rather than wait for it in the loop.
                    if let Some(m) = self.containers.get_mut(name.as_str()) {
                        m.restart_at = Some(now + HELPER_POLL);
                    }
                    continue;
                }
                if self.overlay_busy(&name).is_some() {
                    // `wren cp` is copying its files: after the copy, and
                    // not counted as a restart.
                    if let Some(m) = self.containers.get_mut(name.as_str()) {
                        m.restart_at = Some(now + COPY_POLL);
                    }
                    continue;
                }
                if let Some(m) = self.containers.get_mut(name.as_str()) {
                    m.restart_at = None;
                    m.rec.restart_count += 1;
                }
                self.events.emit("/container/restart", &name, String::new());
                // A failed start counts as a failed run (no run time, so
                // the backoff keeps doubling): `Then::Restart`.
                self.run_task_then(&name, Then::Restart);
            } else {
                if let Some(m) = self.containers.get_mut(name.as_str()) {
                    m.kill_at = None;
                }
                self.events
                    .emit("/container/stop-timeout", &name, "SIGKILL".into());
                if let Err(e) = self.signal(&name, "", libc::SIGKILL as u32, true) {
                    log::warn!("stop deadline: {}", wren_runtime::error::chain(&e));
                }
            }
        }
    }
}
