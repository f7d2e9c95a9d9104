//! The rest of the lifecycle API on an existing container: load one
//! another process created, its status and OCI state, start (release the
//! init through the exec fifo, then poststart hooks), kill, pids, pause,
//! resume, update, stats and delete (with poststop hooks).
//!
//! Runs in the caller.

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;

use oci_spec::runtime::LinuxResources;

use super::error::{io_err, sys_err};
use super::{validate_id, Container, Error};
use crate::cgroups;
use crate::state::{self, OciState, State, Status};
use crate::sync::SetupFailure;
use crate::{hooks, sys, timing};

impl Container {
    /// Load a container another process created.
    pub fn load(state_root: &Path, id: &str) -> Result<Container, Error> {
        validate_id(id)?;
        let dir = state_root.join(id);
        let st = match State::load(&dir) {
            Ok(st) => st,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Error::NotFound(id.into()))
            }
            Err(e) => return Err(io_err("read state", &dir)(e)),
        };
        let pidfd = if state::pid_alive(st.pid, st.pid_start) {
            sys::pidfd_open(st.pid)
                .ok()
                .filter(|_| state::pid_alive(st.pid, st.pid_start))
        } else {
            None
        };
        Ok(Container {
            state: st,
            dir,
            pidfd,
            console: None,
            seccomp: None,
        })
    }

    pub fn status(&self) -> Status {
        if !state::pid_alive(self.state.pid, self.state.pid_start) {
            return Status::Stopped;
        }
        if self.dir.join(state::EXEC_FIFO).exists() {
            return Status::Created;
        }
        match self.state.cgroup.as_ref().map(|c| c.freezer_state()) {
            Some(Ok(cgroups::FreezerState::Frozen)) => Status::Paused,
            _ => Status::Running,
        }
    }

    pub fn state(&self) -> OciState {
        self.state.oci(self.status())
    }

    pub(super) fn require(
        &self,
        action: &'static str,
        wanted: &'static str,
        ok: &[Status],
    ) -> Result<Status, Error> {
        let status = self.status();
        if ok.contains(&status) {
            Ok(status)
        } else {
            Err(Error::WrongState {
                id: self.state.id.clone(),
                status,
                action,
                wanted,
            })
        }
    }

    /// Release the init blocked in create: it runs startContainer hooks and
    /// execs the process. Poststart hooks run after; if one fails the
    /// container is killed and the error returned.
    pub fn start(&mut self) -> Result<(), Error> {
        timing::mark(&self.state.id, "runtime.start");
        self.require("start", "created", &[Status::Created])?;
        let fifo_path = self.dir.join(state::EXEC_FIFO);
        let fifo = sys::open(&fifo_path, libc::O_RDONLY | libc::O_NONBLOCK, 0)
            .map_err(io_err("open", &fifo_path))?;
        let pidfd = match &self.pidfd {
            Some(fd) => fd.try_clone().map_err(sys_err("dup pidfd"))?,
            None => sys::pidfd_open(self.state.pid).map_err(sys_err("pidfd_open"))?,
        };
        let mut pfds = [
            libc::pollfd {
                fd: fifo.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: pidfd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        loop {
            // SAFETY: two valid pollfds.
            let ret = unsafe { libc::poll(pfds.as_mut_ptr(), 2, -1) };
            if ret < 0 {
                let e = io::Error::last_os_error();
                if e.raw_os_error() == Some(libc::EINTR) {
                    continue;
                }
                return Err(sys_err("poll the exec fifo")(e));
            }
            if pfds[0].revents & libc::POLLIN != 0 {
                break;
            }
            if pfds[1].revents != 0 || pfds[0].revents & libc::POLLHUP != 0 {
                return Err(Error::InitDied {
                    id: self.state.id.clone(),
                    status: -1,
                    stage: "while waiting to be started",
                });
            }
        }
        let mut byte = [0u8; 1];
        // SAFETY: reading one byte into a valid buffer.
        let n = unsafe { libc::read(fifo.as_raw_fd(), byte.as_mut_ptr().cast(), 1) };
        if n != 1 {
            return Err(Error::InitDied {
                id: self.state.id.clone(),
                status: -1,
                stage: "while being started (the exec fifo gave no byte)",
            });
        }
        let _ = std::fs::remove_file(&fifo_path);
        // The init keeps its end open until execve closes it; a step that
        // fails before (a startContainer hook, the seccomp filter, execve)
        // is written here first.
        if let Some(failure) = read_release_report(&fifo) {
            return Err(Error::Setup {
                id: self.state.id.clone(),
                failure,
            });
        }
        let st = serde_json::to_string(&self.state.oci(Status::Running)).unwrap_or_default();
        let poststart = self
            .state
            .spec
            .hooks()
            .as_ref()
            .and_then(|h| h.poststart().clone())
            .unwrap_or_default();
        if let Err(e) = hooks::run_all("poststart", &poststart, st.as_bytes()) {
            let _ = self.kill(libc::SIGKILL, true);
            return Err(e.into());
        }
        timing::mark(&self.state.id, "runtime.started");
        Ok(())
    }

    /// Send `signal` to the init, or with `all` to every process of the
    /// container.
    pub fn kill(&self, signal: i32, all: bool) -> Result<(), Error> {
        let status = self.status();
        if status == Status::Stopped && !all {
            return Err(Error::WrongState {
                id: self.state.id.clone(),
                status,
                action: "kill",
                wanted: "running",
            });
        }
        if all {
            if let Some(cg) = &self.state.cgroup {
                cg.kill_all(signal)?;
            }
        }
        if status != Status::Stopped {
            match &self.pidfd {
                // With `all`, the cgroup sweep above may already have killed
                // the init: its exit is not an error then.
                Some(fd) => match sys::pidfd_send_signal(fd.as_fd(), signal) {
                    Err(e) if all && e.raw_os_error() == Some(libc::ESRCH) => {}
                    r => r.map_err(sys_err("pidfd_send_signal"))?,
                },
                None => {
                    // SAFETY: kill with integer arguments; the pid was just
                    // checked against its start time.
                    if unsafe { libc::kill(self.state.pid, signal) } != 0 {
                        return Err(sys_err("kill")(io::Error::last_os_error()));
                    }
                }
            }
        }
        Ok(())
    }

    /// Every pid in the container's cgroup.
    pub fn pids(&self) -> Result<Vec<i32>, Error> {
        match &self.state.cgroup {
            Some(cg) => Ok(cg.pids()?),
            None => Ok(vec![self.state.pid]),
        }
    }

    pub fn pause(&self) -> Result<(), Error> {
        self.require("pause", "running", &[Status::Running])?;
        if let Some(cg) = &self.state.cgroup {
            cg.freeze()?;
        }
        Ok(())
    }

    pub fn resume(&self) -> Result<(), Error> {
        self.require("resume", "paused", &[Status::Paused])?;
        if let Some(cg) = &self.state.cgroup {
            cg.thaw()?;
        }
        Ok(())
    }

    pub fn update(&self, resources: &LinuxResources) -> Result<(), Error> {
        self.require(
            "update",
            "created, running or paused",
            &[Status::Created, Status::Running, Status::Paused],
        )?;
        if let Some(cg) = &self.state.cgroup {
            // Validates first; nothing is written for a bad value.
            cg.update(resources)?;
        }
        Ok(())
    }

    pub fn stats(&self) -> Result<cgroups::Stats, Error> {
        match &self.state.cgroup {
            Some(cg) => Ok(cg.stats()?),
            None => Err(Error::NotFound(self.state.id.clone())),
        }
    }

    /// Remove the container. A created, running or paused container needs
    /// `force`; it is then killed first. Poststop hooks run; a failing one
    /// is only a warning, as the spec says.
    pub fn delete(self, force: bool) -> Result<(), Error> {
        timing::mark(&self.state.id, "runtime.delete");
        let status = self.status();
        if matches!(status, Status::Running | Status::Paused) && !force {
            return Err(Error::WrongState {
                id: self.state.id.clone(),
                status,
                action: "delete",
                wanted: "stopped (or --force)",
            });
        }
        if status != Status::Stopped {
            if let Some(cg) = &self.state.cgroup {
                let _ = cg.kill_all(libc::SIGKILL);
                if status == Status::Paused {
                    let _ = cg.thaw();
                }
            }
            match &self.pidfd {
                Some(fd) => {
                    let _ = sys::pidfd_send_signal(fd.as_fd(), libc::SIGKILL);
                    // Reaps if we are the parent; otherwise waits for exit.
                    let _ = hooks::wait_with_timeout(fd.as_fd(), Some(10_000));
                }
                None => {
                    // SAFETY: integer kill of a pid verified alive above.
                    unsafe { libc::kill(self.state.pid, libc::SIGKILL) };
                }
            }
        }
        if let Some(before) = &self.state.host_mounts_before {
            super::host_mounts::release(&self.state.rootfs, before)?;
        }
        if let Some(cg) = &self.state.cgroup {
            cg.delete()?;
        }
        let st = serde_json::to_string(&self.state.oci(Status::Stopped)).unwrap_or_default();
        let poststop = self
            .state
            .spec
            .hooks()
            .as_ref()
            .and_then(|h| h.poststop().clone())
            .unwrap_or_default();
        if let Err(e) = hooks::run_all("poststop", &poststop, st.as_bytes()) {
            log::warn!("container {}: {e}", self.state.id);
        }
        std::fs::remove_dir_all(&self.dir).map_err(io_err("remove state dir", &self.dir))?;
        timing::mark(&self.state.id, "runtime.deleted");
        Ok(())
    }
}

/// What the init wrote on the exec fifo after the release byte: nothing
/// when execve succeeded, a [`SetupFailure`] when a later step failed.
fn read_release_report(fifo: &OwnedFd) -> Option<SetupFailure> {
    let mut report = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let mut pfd = libc::pollfd {
            fd: fifo.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let ret = unsafe { libc::poll(&mut pfd, 1, -1) };
        if ret < 0 {
            if io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            break;
        }
        // SAFETY: reading into a valid buffer of its length.
        let n = unsafe { libc::read(fifo.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        match n {
            n if n > 0 => report.extend_from_slice(&buf[..n as usize]),
            0 => break,
            _ if io::Error::last_os_error().raw_os_error() == Some(libc::EAGAIN) => continue,
            _ => break,
        }
    }
    if report.is_empty() {
        return None;
    }
    Some(
        serde_json::from_slice(&report).unwrap_or_else(|_| SetupFailure {
            step: "after start".into(),
            message: String::from_utf8_lossy(&report).into_owned(),
            errno: None,
        }),
    )
}
