//! wrend's single epoll loop: the API socket (which also receives the shims'
//! `containerd.services.events.ttrpc.v1.Events/Forward` calls), a signalfd
//! (SIGCHLD, SIGTERM, SIGINT), the containers' stdout/stderr fifos, the
//! shims' pidfds, and the supervisor's timers as the epoll timeout.
//!
//! wrend is a child subreaper so the shims it starts (and anything they
//! leave behind) are reaped here. SIGTERM/SIGINT stop wrend only: shims and
//! containers keep running and a new wrend picks them up.
//!
//! Runs in the `wrend` process, on its only thread.

use std::collections::HashMap;
use std::io;
use std::os::fd::{BorrowedFd, RawFd};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::time::Instant;

use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use protobuf::Message;
use wren_protocol::manager as api;
use wren_protocol::ttrpc_wire::{Code, Request};
use wren_protocol::{events as task_events, forward, services};

use super::config::Config;
use super::error::ManagerError;
use super::supervisor::{Supervisor, Watch, WatchKind};
use wren_ttrpc::server::{self, Connection, ReadOutcome, Responder};

const TOKEN_LISTENER: u64 = 0;
const TOKEN_SIGNALS: u64 = 1;
const CONN_BIT: u64 = 1 << 40;
const FIFO_BIT: u64 = 1 << 41;
const SHIM_BIT: u64 = 1 << 42;
const FD_MASK: u64 = (1 << 32) - 1;

/// Why wrend could not run.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("create {path}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("wrend is already running on {path}")]
    AlreadyRunning { path: PathBuf },
    #[error("listen on {path}")]
    Listen {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("become child subreaper")]
    Subreaper(#[source] nix::Error),
    #[error("set up signal handling")]
    Signals(#[source] nix::Error),
    #[error("set up epoll")]
    Epoll(#[source] nix::Error),
}

fn make_dir(path: &Path, mode: u32) -> Result<(), DaemonError> {
    let err = |source| DaemonError::CreateDir {
        path: path.to_owned(),
        source,
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(path)
        .map_err(err)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(err)
}

/// Binds the API socket (mode 0600), refusing to replace a live one.
fn listen(path: &Path) -> Result<UnixListener, DaemonError> {
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        return Err(DaemonError::AlreadyRunning {
            path: path.to_owned(),
        });
    }
    let err = |source| DaemonError::Listen {
        path: path.to_owned(),
        source,
    };
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(err(e)),
    }
    let listener = UnixListener::bind(path).map_err(err)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(err)?;
    listener.set_nonblocking(true).map_err(err)?;
    Ok(listener)
}

/// Reaps every exited child (shims, and orphans of dead shims).
fn reap_all() {
    loop {
        let mut status = 0;
        // SAFETY: waitpid(2) with WNOHANG on any child; `status` is valid.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid <= 0 {
            return;
        }
        log::debug!("reaped {pid}");
    }
}

/// Runs wrend until SIGTERM or SIGINT.
pub fn run(cfg: Config) -> Result<(), DaemonError> {
    make_dir(&cfg.state_dir, 0o700)?;
    make_dir(&cfg.records_dir, 0o700)?;
    make_dir(&cfg.shim_socket_dir(), 0o700)?;
    if let Some(parent) = cfg.socket.parent() {
        make_dir(parent, 0o700)?;
    }
    let listener = listen(&cfg.socket)?;
    nix::sys::prctl::set_child_subreaper(true).map_err(DaemonError::Subreaper)?;
    let mut mask = SigSet::empty();
    for s in [Signal::SIGCHLD, Signal::SIGTERM, Signal::SIGINT] {
        mask.add(s);
    }
    mask.thread_block().map_err(DaemonError::Signals)?;
    // SAFETY: ignoring SIGPIPE is process-wide and has no handler code.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    let signals = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
        .map_err(DaemonError::Signals)?;
    let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).map_err(DaemonError::Epoll)?;
    epoll
        .add(
            &listener,
            EpollEvent::new(EpollFlags::EPOLLIN, TOKEN_LISTENER),
        )
        .map_err(DaemonError::Epoll)?;
    epoll
        .add(
            &signals,
            EpollEvent::new(EpollFlags::EPOLLIN, TOKEN_SIGNALS),
        )
        .map_err(DaemonError::Epoll)?;

    let socket = cfg.socket.clone();
    let mut sup = Supervisor::new(cfg);
    sup.restore();
    apply_watches(&epoll, &mut sup);
    log::info!("wrend listening on {}", socket.display());

    let mut conns: HashMap<u64, Connection> = HashMap::new();
    let mut events = [EpollEvent::empty(); 32];
    loop {
        let timeout = match sup.next_deadline() {
            None => EpollTimeout::NONE,
            Some(t) => {
                let ms = t.saturating_duration_since(Instant::now()).as_millis() + 1;
                EpollTimeout::try_from(ms.min(60_000) as i32).unwrap_or(EpollTimeout::NONE)
            }
        };
        let n = match epoll.wait(&mut events, timeout) {
            Ok(n) => n,
            Err(nix::Error::EINTR) => 0,
            Err(e) => return Err(DaemonError::Epoll(e)),
        };
        let mut stop = false;
        for ev in &events[..n] {
            match ev.data() {
                TOKEN_LISTENER => accept_all(&epoll, &listener, &mut conns),
                TOKEN_SIGNALS => {
                    while let Ok(Some(info)) = signals.read_signal() {
                        match Signal::try_from(info.ssi_signo as i32) {
                            Ok(Signal::SIGCHLD) => reap_all(),
                            Ok(s) => {
                                log::info!("received {s}, exiting (containers keep running)");
                                stop = true;
                            }
                            Err(_) => {}
                        }
                    }
                }
                t if t & FIFO_BIT != 0 => sup.fifo_readable((t & FD_MASK) as RawFd),
                t if t & SHIM_BIT != 0 => sup.shim_exited((t & FD_MASK) as RawFd),
                t => {
                    let outcome = match conns.get_mut(&t) {
                        Some(c) => c.read(),
                        None => continue,
                    };
                    match outcome {
                        ReadOutcome::Requests(reqs) => {
                            for (req, responder) in reqs {
                                dispatch(&mut sup, &req, responder);
                                apply_watches(&epoll, &mut sup);
                            }
                        }
                        ReadOutcome::Closed => {
                            if let Some(c) = conns.remove(&t) {
                                // SAFETY: the fd is open, owned by `c`.
                                let fd = unsafe { BorrowedFd::borrow_raw(c.as_raw_fd()) };
                                let _ = epoll.delete(fd);
                            }
                        }
                    }
                }
            }
            apply_watches(&epoll, &mut sup);
        }
        sup.fire_timers();
        apply_watches(&epoll, &mut sup);
        if stop {
            break;
        }
    }
    let _ = std::fs::remove_file(&socket);
    Ok(())
}

fn accept_all(epoll: &Epoll, listener: &UnixListener, conns: &mut HashMap<u64, Connection>) {
    loop {
        match server::accept(listener) {
            Ok(Some(conn)) => {
                let token = CONN_BIT | conn.as_raw_fd() as u64;
                // SAFETY: the fd stays open while `conn` is in `conns`.
                let fd = unsafe { BorrowedFd::borrow_raw(conn.as_raw_fd()) };
                if let Err(e) = epoll.add(fd, EpollEvent::new(EpollFlags::EPOLLIN, token)) {
                    log::error!("epoll add connection: {e}");
                    continue;
                }
                conns.insert(token, conn);
            }
            Ok(None) => return,
            Err(e) => {
                log::warn!("accept: {e}");
                return;
            }
        }
    }
}

fn apply_watches(epoll: &Epoll, sup: &mut Supervisor) {
    for w in sup.take_watches() {
        match w {
            Watch::Add(fd, kind) => {
                let bit = match kind {
                    WatchKind::Fifo => FIFO_BIT,
                    WatchKind::Shim => SHIM_BIT,
                };
                // SAFETY: the supervisor keeps the fd open until it asks for
                // its removal, which comes before the close.
                let bfd = unsafe { BorrowedFd::borrow_raw(fd) };
                let ev = EpollEvent::new(EpollFlags::EPOLLIN, bit | fd as u64);
                if let Err(e) = epoll.add(bfd, ev) {
                    log::warn!("epoll add fd {fd}: {e}");
                }
            }
            Watch::Remove(fd) => {
                // SAFETY: as above; removal happens before the close.
                let bfd = unsafe { BorrowedFd::borrow_raw(fd) };
                let _ = epoll.delete(bfd);
            }
        }
    }
}

fn reply<M: Message>(responder: Responder, result: Result<M, ManagerError>) {
    responder.send(
        result
            .map(|m| m.write_to_bytes().unwrap_or_default())
            .map_err(|e| e.to_status()),
    );
}

fn dispatch(sup: &mut Supervisor, req: &Request, responder: Responder) {
    if req.service == services::EVENTS && req.method == services::EVENTS_FORWARD {
        forward_event(sup, &req.payload);
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
            reply(responder, sup.create(r))
        }
        "Start" => {
            let r = decode!(api::NameRequest);
            reply(responder, sup.start(&r.name))
        }
        "Wait" => {
            let r = decode!(api::WaitRequest);
            sup.wait(&r.name, &r.exec_id, responder)
        }
        "Kill" => {
            let r = decode!(api::KillRequest);
            reply(responder, sup.kill(&r))
        }
        "Stop" => {
            let r = decode!(api::StopRequest);
            sup.stop(&r, responder)
        }
        "Delete" => {
            let r = decode!(api::DeleteRequest);
            sup.remove_request(&r.name, r.force, responder)
        }
        "List" => reply(responder, Ok::<_, ManagerError>(sup.list())),
        "Inspect" => {
            let r = decode!(api::NameRequest);
            reply(responder, sup.inspect(&r.name))
        }
        "Exec" => {
            let r = decode!(api::ExecRequest);
            reply(responder, sup.exec(&r))
        }
        "ResizePty" => {
            let r = decode!(api::ResizeRequest);
            reply(responder, sup.resize(&r))
        }
        "CloseStdin" => {
            let r = decode!(api::CloseStdinRequest);
            reply(responder, sup.close_stdin(&r))
        }
        "Attach" => {
            let r = decode!(api::AttachRequest);
            reply(responder, sup.attach(&r.name))
        }
        "Detach" => {
            let r = decode!(api::AttachRequest);
            reply(responder, sup.detach(&r.name))
        }
        "Pause" => {
            let r = decode!(api::NameRequest);
            reply(responder, sup.pause_resume(&r.name, true))
        }
        "Resume" => {
            let r = decode!(api::NameRequest);
            reply(responder, sup.pause_resume(&r.name, false))
        }
        "Update" => {
            let r = decode!(api::UpdateRequest);
            reply(responder, sup.update(&r))
        }
        "Stats" => {
            let r = decode!(api::NameRequest);
            reply(responder, sup.stats(&r.name))
        }
        "Pids" => {
            let r = decode!(api::NameRequest);
            reply(responder, sup.pids(&r.name))
        }
        "Events" => {
            let r = decode!(api::EventsRequest);
            sup.events.next(r.after, responder)
        }
        m => responder.send(Err(server::status(
            Code::UNIMPLEMENTED,
            format!("method {m} is not served here"),
        ))),
    }
}

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
fn forward_event(sup: &mut Supervisor, payload: &[u8]) {
    match decode_event(payload) {
        None => log::warn!("undecodable event from a shim"),
        Some(ShimEvent::Exit {
            container,
            exec_id,
            pid,
            status,
            at,
        }) => {
            let detail = format!("id {exec_id} pid {pid} status {status}");
            sup.events.emit("/tasks/exit", &container, detail);
            sup.task_exit(&container, &exec_id, pid, status, at);
        }
        Some(ShimEvent::Other { topic, container }) => {
            sup.events.emit(&topic, &container, String::new())
        }
    }
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

    #[test]
    fn socket_is_private_and_not_stolen_from_a_live_wrend() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("run");
        make_dir(&dir, 0o700).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        let path = dir.join("wrend.sock");
        let live = listen(&path).unwrap();
        assert_eq!(mode(&path), 0o600);
        assert!(matches!(
            listen(&path),
            Err(DaemonError::AlreadyRunning { .. })
        ));
        drop(live);
        // A stale socket file (nobody listening) is replaced.
        let again = listen(&path).unwrap();
        drop(again);
    }
}
