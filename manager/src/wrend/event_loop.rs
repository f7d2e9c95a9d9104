//! wrend's single epoll loop: the API socket (which also receives the shims'
//! `containerd.services.events.ttrpc.v1.Events/Forward` calls), a signalfd
//! (SIGCHLD, SIGTERM, SIGINT), the containers' stdout/stderr fifos, the
//! shims' pidfds, the network helpers' stdout pipes, and the registry's
//! timers as the epoll timeout. It only routes: requests to
//! [`super::api`], readable fifos to [`super::stdio`], shim deaths to
//! [`super::shim_lifecycle`], helper output to [`super::network`], due
//! timers to [`super::restart`].
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

use super::api;
use super::config::Config;
use super::registry::{Registry, Watch, WatchKind};
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use wren_ttrpc::server::{self, Connection};

const TOKEN_LISTENER: u64 = 0;
const TOKEN_SIGNALS: u64 = 1;
const CONN_BIT: u64 = 1 << 40;
const FIFO_BIT: u64 = 1 << 41;
const SHIM_BIT: u64 = 1 << 42;
const HELPER_BIT: u64 = 1 << 43;
const FD_MASK: u64 = (1 << 32) - 1;

/// Why wrend could not run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
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

fn make_dir(path: &Path, mode: u32) -> Result<(), RunError> {
    let err = |source| RunError::CreateDir {
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
fn listen(path: &Path) -> Result<UnixListener, RunError> {
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        return Err(RunError::AlreadyRunning {
            path: path.to_owned(),
        });
    }
    let err = |source| RunError::Listen {
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
pub fn run(cfg: Config) -> Result<(), RunError> {
    make_dir(&cfg.state_dir, 0o700)?;
    make_dir(&cfg.records_dir, 0o700)?;
    make_dir(&cfg.shim_socket_dir(), 0o700)?;
    if let Some(parent) = cfg.socket.parent() {
        make_dir(parent, 0o700)?;
    }
    let listener = listen(&cfg.socket)?;
    nix::sys::prctl::set_child_subreaper(true).map_err(RunError::Subreaper)?;
    let mut mask = SigSet::empty();
    for s in [Signal::SIGCHLD, Signal::SIGTERM, Signal::SIGINT] {
        mask.add(s);
    }
    mask.thread_block().map_err(RunError::Signals)?;
    // SAFETY: ignoring SIGPIPE is process-wide and has no handler code.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    let signals = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
        .map_err(RunError::Signals)?;
    let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).map_err(RunError::Epoll)?;
    epoll
        .add(
            &listener,
            EpollEvent::new(EpollFlags::EPOLLIN, TOKEN_LISTENER),
        )
        .map_err(RunError::Epoll)?;
    epoll
        .add(
            &signals,
            EpollEvent::new(EpollFlags::EPOLLIN, TOKEN_SIGNALS),
        )
        .map_err(RunError::Epoll)?;

    let socket = cfg.socket.clone();
    let own_cgroup = (cfg.cgroup_parent != "wren"
        && cfg.cgroup_parent == crate::paths::cgroup_parent_for(&cfg.state_dir))
    .then(|| cfg.cgroup_parent.clone());
    let mut reg = Registry::new(cfg);
    reg.restore();
    apply_watches(&epoll, &mut reg);
    log::info!("wrend listening on {}", socket.display());

    let mut conns: HashMap<u64, Connection> = HashMap::new();
    let mut events = [EpollEvent::empty(); 32];
    loop {
        let timeout = match reg.next_deadline() {
            None => EpollTimeout::NONE,
            Some(t) => {
                let ms = t.saturating_duration_since(Instant::now()).as_millis() + 1;
                EpollTimeout::try_from(ms.min(60_000) as i32).unwrap_or(EpollTimeout::NONE)
            }
        };
        let n = match epoll.wait(&mut events, timeout) {
            Ok(n) => n,
            Err(nix::Error::EINTR) => 0,
            Err(e) => return Err(RunError::Epoll(e)),
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
                t if t & FIFO_BIT != 0 => reg.fifo_readable((t & FD_MASK) as RawFd),
                t if t & SHIM_BIT != 0 => reg.shim_exited((t & FD_MASK) as RawFd),
                t if t & HELPER_BIT != 0 => reg.helper_readable((t & FD_MASK) as RawFd),
                t => {
                    let Some(c) = conns.get_mut(&t) else {
                        continue;
                    };
                    if ev.events().contains(EpollFlags::EPOLLOUT) {
                        c.flush();
                    }
                    if !ev.events().intersects(
                        EpollFlags::EPOLLIN | EpollFlags::EPOLLHUP | EpollFlags::EPOLLERR,
                    ) {
                        continue;
                    }
                    let outcome = c.read();
                    for (req, responder) in outcome.requests {
                        api::dispatch(&mut reg, &req, responder);
                        apply_watches(&epoll, &mut reg);
                    }
                    if outcome.closed {
                        if let Some(c) = conns.remove(&t) {
                            c.close();
                            // SAFETY: the fd is open, owned by `c`.
                            let fd = unsafe { BorrowedFd::borrow_raw(c.as_raw_fd()) };
                            let _ = epoll.delete(fd);
                        }
                    }
                }
            }
            apply_watches(&epoll, &mut reg);
        }
        reg.fire_timers();
        apply_watches(&epoll, &mut reg);
        if stop {
            break;
        }
    }
    let _ = std::fs::remove_file(&socket);
    if let Some(parent) = own_cgroup {
        remove_cgroup_parent(&parent);
    }
    Ok(())
}

/// rmdir of wrend's own cgroup parent (`wren/w-HASH` of its state
/// directory) in every hierarchy, on exit: it is empty unless containers
/// still run, and then the rmdir fails and it stays for the next wrend.
/// A parent the user named (`--cgroup-parent`) and the shared `wren` are
/// left alone.
#[cold]
#[inline(never)]
fn remove_cgroup_parent(parent: &str) {
    let root = std::path::Path::new("/sys/fs/cgroup");
    let _ = std::fs::remove_dir(root.join(parent));
    for h in std::fs::read_dir(root).into_iter().flatten().flatten() {
        let _ = std::fs::remove_dir(h.path().join(parent));
    }
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
                conn.set_poller(std::os::fd::AsRawFd::as_raw_fd(&epoll.0), token);
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

fn apply_watches(epoll: &Epoll, reg: &mut Registry) {
    for w in reg.take_watches() {
        match w {
            Watch::Add(fd, kind) => {
                let bit = match kind {
                    WatchKind::Fifo => FIFO_BIT,
                    WatchKind::Shim => SHIM_BIT,
                    WatchKind::Helper => HELPER_BIT,
                };
                // SAFETY: the registry keeps the fd open until it asks for
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

#[cfg(test)]
mod tests {
    use super::*;

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
            Err(RunError::AlreadyRunning { .. })
        ));
        drop(live);
        // A stale socket file (nobody listening) is replaced.
        let again = listen(&path).unwrap();
        drop(again);
    }
}
