//! The shim daemon's epoll loop (the binary run with no action, spawned by
//! `start`): the listening socket on fd 3, cwd = the bundle, stderr = the
//! `log` FIFO. It serves the Task API until Shutdown or SIGTERM.
//!
//! Thread budget (idle): this loop thread and the event publisher thread.
//! The loop multiplexes, with one epoll set: the ttrpc listener and
//! connections, a signalfd (SIGCHLD, SIGTERM, SIGINT), and the fds the Task
//! service registers (container pidfds, stdio relays, OOM watchers), whose
//! readiness it hands back to the service. All container state is the
//! service's (`task/`).
//!
//! Runs in the daemon process.

use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, RawFd};
use std::os::unix::net::UnixListener;
use std::time::Duration;

use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use wren_runtime::timing;

use crate::events::publisher::Publisher;
use crate::flags::Flags;
use crate::stdio::relay::RELAY_BIT;
use crate::task::container_ops::Runtime;
use crate::task::{TaskService, OOM_BIT, PIDFD_BIT};
use crate::{delete, reaper, socket};
use wren_ttrpc::server::{self, Connection};

/// The fd `start` passes the listening socket on.
pub const LISTENER_FD: RawFd = 3;
/// When `start` spawned us (CLOCK_MONOTONIC ns), for the debug log line
/// that says how long the daemon took to serve.
pub const SPAWNED_AT_ENV: &str = "_WREN_SHIM_SPAWNED_AT";

const TOKEN_LISTENER: u64 = 0;
const TOKEN_SIGNALS: u64 = 1;
/// How long stdio must stay quiet before the loop trims memory.
const QUIET_TRIM: Duration = Duration::from_secs(1);
// Connections use fd + 16; the service's tokens carry PIDFD_BIT, OOM_BIT
// or RELAY_BIT.

/// Why the daemon could not run.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("fd {LISTENER_FD} is not a listening socket")]
    NoListener(#[source] std::io::Error),
    #[error("become child subreaper")]
    Subreaper(#[source] nix::Error),
    #[error("set up signal handling")]
    Signals(#[source] nix::Error),
    #[error("set up epoll")]
    Epoll(#[source] nix::Error),
}

fn inherited_listener() -> Result<UnixListener, DaemonError> {
    let mut accepting: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt(SO_ACCEPTCONN) writes one c_int into `accepting`.
    let rc = unsafe {
        libc::getsockopt(
            LISTENER_FD,
            libc::SOL_SOCKET,
            libc::SO_ACCEPTCONN,
            (&mut accepting as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if rc < 0 || accepting == 0 {
        return Err(DaemonError::NoListener(std::io::Error::last_os_error()));
    }
    // SAFETY: fd 3 was handed to us by `start` as the listener and nothing
    // else in this process owns it.
    let listener = unsafe { UnixListener::from_raw_fd(LISTENER_FD) };
    // SAFETY: sets FD_CLOEXEC on our own fd so no child inherits it.
    unsafe { libc::fcntl(LISTENER_FD, libc::F_SETFD, libc::FD_CLOEXEC) };
    listener
        .set_nonblocking(true)
        .map_err(DaemonError::NoListener)?;
    Ok(listener)
}

/// Runs one Task request, logging how long it took at debug level and, with
/// `WREN_TIMING`, marking the calls of a container's life and of an exec:
/// Create, Exec, Start, State, Wait, Delete, Shutdown. Wait parks its
/// responder, so its time here is only the dispatch (the answer is
/// `shim.exit_reported`).
fn rpc_timed(id: &str, method: &str, dispatch: impl FnOnce()) {
    let marks = match method {
        "Create" => Some(("rpc.create", "rpc.created")),
        "Exec" => Some(("rpc.exec", "rpc.exec.done")),
        "Start" => Some(("rpc.start", "rpc.started")),
        "State" => Some(("rpc.state", "rpc.state.done")),
        "Wait" => Some(("rpc.wait", "rpc.wait.parked")),
        "Delete" => Some(("rpc.delete", "rpc.deleted")),
        "Shutdown" => Some(("rpc.shutdown", "rpc.shutdown.done")),
        _ => None,
    };
    if let Some((begin, _)) = marks {
        timing::mark(id, begin);
    }
    let began = std::time::Instant::now();
    dispatch();
    if let Some((_, end)) = marks {
        timing::mark(id, end);
    }
    log::debug!(
        "ttrpc: {method} took {:.3} ms",
        began.elapsed().as_secs_f64() * 1e3
    );
}

/// Serves until Shutdown (with no container left) or SIGTERM/SIGINT.
pub fn run(flags: &Flags) -> Result<(), DaemonError> {
    wren_runtime::malloc_tunables::restore_environment();
    crate::memory::tune_malloc();
    let listener = inherited_listener()?;
    // SAFETY: prctl(PR_SET_CHILD_SUBREAPER, 1) takes no pointers.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } < 0 {
        return Err(DaemonError::Subreaper(nix::Error::last()));
    }
    // Block the signals we read from the signalfd before any thread exists,
    // so every thread inherits the mask; ignore SIGPIPE (dead log reader,
    // closed client) so writes fail with EPIPE instead.
    let mut mask = SigSet::empty();
    for s in [Signal::SIGCHLD, Signal::SIGTERM, Signal::SIGINT] {
        mask.add(s);
    }
    mask.thread_block().map_err(DaemonError::Signals)?;
    // SAFETY: installing SIG_IGN has no handler code to be unsafe.
    unsafe { nix::sys::signal::signal(Signal::SIGPIPE, nix::sys::signal::SigHandler::SigIgn) }
        .map_err(DaemonError::Signals)?;
    let signals = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
        .map_err(DaemonError::Signals)?;

    wren_runtime::logrus::init(flags.debug, &[("runtime", crate::info::RUNTIME_NAME)]);
    log::info!(
        "starting wren shim {} for {} in {}",
        crate::info::VERSION,
        flags.id,
        flags.namespace
    );

    let publisher = Publisher::start(
        std::env::var(wren_protocol::TTRPC_ADDRESS_ENV).ok(),
        &flags.namespace,
    );
    let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).map_err(DaemonError::Epoll)?;
    let mut service = TaskService::new(
        Runtime,
        publisher,
        delete::default_state_root(&flags.namespace),
        &flags.namespace,
        &epoll,
    )
    .map_err(|e| DaemonError::Epoll(nix::Error::from_raw(e.raw_os_error().unwrap_or(0))))?;
    epoll
        .add(
            listener.as_fd(),
            EpollEvent::new(EpollFlags::EPOLLIN, TOKEN_LISTENER),
        )
        .map_err(DaemonError::Epoll)?;
    epoll
        .add(
            signals.as_fd(),
            EpollEvent::new(EpollFlags::EPOLLIN, TOKEN_SIGNALS),
        )
        .map_err(DaemonError::Epoll)?;

    let mut connections: HashMap<u64, Connection> = HashMap::new();
    let mut events = [EpollEvent::empty(); 16];
    let mut stop = false;
    timing::mark(&flags.id, "shim.serving");
    if let Some(t) = std::env::var(SPAWNED_AT_ENV)
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        let ms = timing::now_ns().saturating_sub(t) as f64 / 1e6;
        log::debug!("serving {ms:.3} ms after `start` spawned the daemon");
    }
    // After stdio moved bytes, memory is trimmed once it has been quiet
    // for QUIET_TRIM (a pump dirties the stack and may grow the heap; no
    // RPC follows to trim, and an idle shim must hand that back).
    let mut trim_at: Option<std::time::Instant> = None;
    while !stop && !service.shutdown_requested() {
        let deadline = match (service.next_deadline(), trim_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let timeout = match deadline {
            None => EpollTimeout::NONE,
            Some(at) => {
                let ms = at
                    .saturating_duration_since(std::time::Instant::now())
                    .as_millis()
                    .clamp(1, 60_000) as u16;
                EpollTimeout::from(ms)
            }
        };
        let n = match epoll.wait(&mut events, timeout) {
            Ok(n) => n,
            Err(nix::Error::EINTR) => continue,
            Err(e) => {
                log::error!("epoll_wait: {e}");
                break;
            }
        };
        for ev in &events[..n] {
            match ev.data() {
                TOKEN_LISTENER => loop {
                    match server::accept(&listener) {
                        Ok(Some(conn)) => {
                            let token = conn.as_raw_fd() as u64 + 16;
                            // SAFETY: the fd belongs to `conn`, which stays in
                            // `connections` until it is removed from epoll.
                            let fd =
                                unsafe { std::os::fd::BorrowedFd::borrow_raw(conn.as_raw_fd()) };
                            if let Err(e) =
                                epoll.add(fd, EpollEvent::new(EpollFlags::EPOLLIN, token))
                            {
                                log::error!("epoll add connection: {e}");
                                continue;
                            }
                            conn.set_poller(epoll.0.as_raw_fd(), token);
                            log::debug!("ttrpc: new connection");
                            connections.insert(token, conn);
                        }
                        Ok(None) => break,
                        Err(e) => {
                            log::warn!("ttrpc accept: {e}");
                            break;
                        }
                    }
                },
                TOKEN_SIGNALS => {
                    while let Ok(Some(info)) = signals.read_signal() {
                        match Signal::try_from(info.ssi_signo as i32) {
                            Ok(Signal::SIGCHLD) => {
                                let owned = |pid: i32| {
                                    wren_runtime::children::is_runtime_child(pid)
                                        || service.owns_pid(pid)
                                };
                                for (pid, status) in reaper::reap_orphans(&owned) {
                                    log::debug!("reaped orphan {pid} with status {status}");
                                }
                            }
                            Ok(s) => {
                                log::info!("received {s}, shutting down");
                                stop = true;
                            }
                            Err(_) => {}
                        }
                    }
                }
                token if token & (RELAY_BIT | OOM_BIT | PIDFD_BIT) != 0 => service.fd_ready(token),
                token => {
                    let Some(conn) = connections.get_mut(&token) else {
                        continue;
                    };
                    if ev.events().contains(EpollFlags::EPOLLOUT) {
                        conn.flush();
                    }
                    if !ev.events().intersects(
                        EpollFlags::EPOLLIN | EpollFlags::EPOLLHUP | EpollFlags::EPOLLERR,
                    ) {
                        continue;
                    }
                    let outcome = conn.read();
                    let heavy = outcome.requests.iter().any(|(r, _)| {
                        matches!(r.method.as_str(), "Create" | "Delete" | "Exec" | "Start")
                    });
                    for (req, responder) in outcome.requests {
                        log::debug!("ttrpc: {}/{}", req.service, req.method);
                        let is_task = req.service == wren_protocol::services::TASK_V2
                            || req.service == wren_protocol::services::TASK_V3;
                        if is_task {
                            rpc_timed(&flags.id, &req.method, || {
                                service.dispatch(&req.method, &req.payload, responder)
                            });
                        } else {
                            responder.send(Err(server::status(
                                wren_protocol::ttrpc_wire::Code::UNIMPLEMENTED,
                                format!("service {} is not served here", req.service),
                            )));
                        }
                    }
                    if heavy {
                        crate::memory::trim();
                        trim_at = None;
                    }
                    if outcome.closed {
                        if let Some(conn) = connections.remove(&token) {
                            // Closed first (parked Waits on it are dropped,
                            // nothing else uses its fd number), then out of
                            // epoll; the fd closes with `conn`.
                            conn.close();
                            // SAFETY: the fd is still open (owned by `conn`).
                            let fd =
                                unsafe { std::os::fd::BorrowedFd::borrow_raw(conn.as_raw_fd()) };
                            let _ = epoll.delete(fd);
                            log::debug!("ttrpc: connection closed");
                            service.drop_closed_waiters();
                        }
                    }
                }
            }
        }
        service.tick();
        let now = std::time::Instant::now();
        if service.take_output_moved() {
            trim_at = Some(now + QUIET_TRIM);
        } else if trim_at.is_some_and(|at| now >= at) {
            crate::memory::trim();
            trim_at = None;
        }
    }
    service.wait_loggers();
    service.publisher().flush(Duration::from_secs(5));
    socket::remove_own();
    log::info!("shim exiting");
    Ok(())
}
