//! Exits and what the loop hands back to the service: pidfd readiness (a
//! process has exited), OOM-kill notifications, relay readiness, the drain
//! and logger deadlines.
//!
//! Exit reporting follows containerd's runc shim: a reaped process's exit is
//! published (and its Waits answered) only once its output is drained (or
//! after [`DRAIN_GRACE`], for output held open by an escaped child) and a
//! FIFO reader that came late has the FIFO open (see `stdio::relay`); an
//! init's exit comes after every exec's exit, and a final OOM check comes
//! before it, so `/tasks/oom` always precedes `/tasks/exit`.
//!
//! Runs in the daemon, on the epoll loop thread.

use std::os::fd::{AsFd, AsRawFd};
use std::time::{Duration, Instant};

use protobuf::MessageField;
use wren_protocol::events::{TaskExit, TaskOOM};
use wren_protocol::task::WaitResponse;
use wren_protocol::task_types::Status;

use super::container_ops::ContainerOps;
use super::record::{PendingExit, Process};
use super::{encode, now, TaskService, OOM_BIT, PIDFD_BIT};
use crate::stdio::logger;
use crate::stdio::relay::{Relays, RELAY_BIT};

/// How long an exit waits for its output to drain before it is reported
/// anyway (a daemonized child may hold the pipe forever).
pub const DRAIN_GRACE: Duration = Duration::from_secs(2);
/// How long an init's exit waits for its execs' exits.
pub const EXECS_GRACE: Duration = Duration::from_secs(10);

/// A reaped process may be reported once its output is drained or the
/// drain grace is over; output that has been copied but whose FIFO reader
/// is late is waited for past the grace (until the reader comes or the
/// relay gives up on it): the client drops a FIFO it has not opened yet
/// once it hears of the exit.
fn exit_ready(p: &Process, relays: &Relays, now: Instant) -> bool {
    p.pending.as_ref().is_some_and(|e| {
        p.io.as_ref().is_none_or(|io| {
            io.drained(relays) || (now >= e.reaped + DRAIN_GRACE && !io.awaiting_reader(relays))
        })
    })
}

impl<O: ContainerOps> TaskService<O> {
    /// Readiness of a pidfd, relay or OOM fd registered by the service.
    pub fn fd_ready(&mut self, token: u64) {
        if token & RELAY_BIT != 0 {
            self.relays.ready(token);
            self.settle();
        } else if token & OOM_BIT != 0 {
            let id = self
                .containers
                .iter()
                .find(|(_, c)| c.oom.as_ref().is_some_and(|(t, _)| *t == token))
                .map(|(id, _)| id.clone());
            if let Some(id) = id {
                self.check_oom(&id);
            }
        } else if token & PIDFD_BIT != 0 {
            self.pidfd_ready(token);
        }
    }

    /// A process's pidfd turned readable: reap it and record its exit.
    fn pidfd_ready(&mut self, token: u64) {
        let fd = (token & !PIDFD_BIT) as i32;
        let found = self.containers.iter_mut().find_map(|(id, c)| {
            c.processes_mut()
                .find(|(_, p)| p.pidfd.as_ref().is_some_and(|f| f.as_raw_fd() == fd))
                .map(|(exec_id, p)| (id.clone(), exec_id.to_string(), p))
        });
        let Some((id, exec_id, p)) = found else {
            return;
        };
        let Some(pidfd) = p.pidfd.as_ref() else {
            return;
        };
        let status = match crate::reaper::try_reap_pidfd(pidfd.as_fd()) {
            Ok(None) => return,
            Ok(Some(status)) => {
                wren_runtime::timing::mark(&id, "shim.exited");
                status
            }
            Err(e) => {
                log::warn!("wait for pid {} of {id}: {e}", p.pid);
                255
            }
        };
        self.process_exited(&id, &exec_id, status);
    }

    /// Publishes `/tasks/oom` if the container's cgroup saw OOM kills since
    /// the last look.
    fn check_oom(&mut self, id: &str) {
        let Some(c) = self.containers.get_mut(id) else {
            return;
        };
        let Some((_, w)) = c.oom.as_mut() else {
            return;
        };
        match w.new_kills() {
            Ok(0) => {}
            Ok(n) => {
                log::info!("{id}: {n} OOM kill(s)");
                let mut ev = TaskOOM::new();
                ev.container_id = id.to_string();
                self.publisher.publish("/tasks/oom", &ev);
            }
            Err(e) => log::warn!("{id}: read OOM counter: {e}"),
        }
    }

    /// When the loop must call [`Self::tick`] next (a drain or logger grace
    /// ends, a late FIFO reader is due a look), if ever. An exit that waits
    /// for its reader past the drain grace has no deadline of its own: the
    /// relays' looks end that wait, and a grace already over would wake
    /// the loop every millisecond until then.
    pub fn next_deadline(&self) -> Option<Instant> {
        let awaiting = |p: &Process| {
            p.io.as_ref()
                .is_some_and(|io| io.awaiting_reader(&self.relays))
        };
        let exits = self.containers.values().flat_map(|c| {
            c.processes()
                .filter(|p| !awaiting(p))
                .filter_map(|p| p.pending.as_ref().map(|e| e.reaped + DRAIN_GRACE))
                .chain(c.init.pending.as_ref().map(|e| e.reaped + EXECS_GRACE))
        });
        exits
            .chain(self.dying_loggers.iter().map(|(_, at)| *at))
            .chain(self.relays.next_deadline())
            .min()
    }

    /// Drops parked Waits whose connection has closed: their caller is
    /// gone, and each would keep its connection's fd open until the exit.
    pub fn drop_closed_waiters(&mut self) {
        for c in self.containers.values_mut() {
            for (_, p) in c.processes_mut() {
                p.waiters.retain(|w| !w.is_closed());
            }
        }
    }

    /// Reports exits whose wait is over and kills loggers past their grace.
    pub fn tick(&mut self) {
        let now = Instant::now();
        self.dying_loggers.retain(|(l, deadline)| {
            if logger::exited(l) {
                return false;
            }
            if now >= *deadline {
                log::warn!("logging binary {} ignored SIGTERM; killing it", l.pid);
                logger::kill(l, libc::SIGKILL);
                return false;
            }
            true
        });
        self.relays.look_for_readers(now);
        self.settle();
    }

    /// Daemon exit: gives each logging binary still flushing the rest of its
    /// grace to exit (as containerd's shim blocks in Close), then kills it.
    pub fn wait_loggers(&mut self) {
        for (l, deadline) in self.dying_loggers.drain(..) {
            let left = deadline.saturating_duration_since(Instant::now());
            if !logger::wait_exit(&l, left) {
                log::warn!("logging binary {} ignored SIGTERM; killing it", l.pid);
                logger::kill(&l, libc::SIGKILL);
            }
        }
    }

    /// Records the exit of a container's init or exec. It is reported by
    /// [`Self::settle`] once the rules in the module docs allow. An init
    /// without a pid namespace of its own takes the container's other
    /// processes with it (runc's rule).
    pub(super) fn process_exited(&mut self, id: &str, exec_id: &str, exit_status: u32) {
        let Some(c) = self.containers.get_mut(id) else {
            return;
        };
        let kill_rest = exec_id.is_empty() && !c.own_pid_namespace;
        let Ok(p) = c.process(exec_id) else {
            return;
        };
        if let Some(fd) = p.pidfd.take() {
            let _ = self.epoll.delete(fd.as_fd());
        }
        p.pending = Some(PendingExit {
            status: exit_status,
            at: now(),
            reaped: Instant::now(),
        });
        if kill_rest {
            if let Some(rt) = c.runtime.as_ref() {
                if let Err(e) = self.ops.kill(rt, libc::SIGKILL as u32, true) {
                    log::warn!("kill the rest of {id}: {}", wren_runtime::error::chain(&e));
                }
            }
        }
        self.settle();
    }

    /// Reports every pending exit whose conditions are met: output drained
    /// (or [`DRAIN_GRACE`] over); for an init, also no exec still to report
    /// (or [`EXECS_GRACE`] over), and a last OOM check first.
    fn settle(&mut self) {
        let now = Instant::now();
        let ids: Vec<String> = self.containers.keys().cloned().collect();
        for id in ids {
            let Some(c) = self.containers.get_mut(&id) else {
                continue;
            };
            let execs: Vec<String> = c
                .execs
                .iter()
                .filter(|(_, p)| exit_ready(p, &self.relays, now))
                .map(|(e, _)| e.clone())
                .collect();
            for exec_id in execs {
                self.report_exit(&id, &exec_id);
            }
            let Some(c) = self.containers.get(&id) else {
                continue;
            };
            let execs_done = c.execs.values().all(|p| p.status != Status::RUNNING);
            let init_ready = exit_ready(&c.init, &self.relays, now)
                && (execs_done
                    || c.init
                        .pending
                        .as_ref()
                        .is_some_and(|e| now >= e.reaped + EXECS_GRACE));
            if init_ready {
                self.check_oom(&id);
                self.report_exit(&id, "");
            }
        }
    }

    /// Publishes `/tasks/exit` and answers the parked Waits of one process.
    fn report_exit(&mut self, id: &str, exec_id: &str) {
        let Some(c) = self.containers.get_mut(id) else {
            return;
        };
        let Ok(p) = c.process(exec_id) else {
            return;
        };
        let Some(e) = p.pending.take() else {
            return;
        };
        p.status = Status::STOPPED;
        p.exit = Some((e.status, e.at.clone()));
        let pid = p.pid;
        let waiters = std::mem::take(&mut p.waiters);
        let mut ev = TaskExit::new();
        ev.container_id = id.to_string();
        ev.id = if exec_id.is_empty() { id } else { exec_id }.to_string();
        ev.pid = pid;
        ev.exit_status = e.status;
        ev.exited_at = MessageField::some(e.at.clone());
        wren_runtime::timing::mark(id, "shim.exit_reported");
        self.publisher.publish("/tasks/exit", &ev);
        for w in waiters {
            let mut r = WaitResponse::new();
            r.exit_status = e.status;
            r.exited_at = MessageField::some(e.at.clone());
            w.send(encode(r).map_err(|e| e.to_status()));
        }
    }
}
