//! Each container's stdio as wrend holds it: the stdout/stderr (and stdin)
//! fifos made under the state directory and handed to the shim, the
//! bundle's `log` fifo (the shim daemon's stderr), all held open and copied
//! into the container's log files when epoll says they are readable, and
//! drained before an exit is reported.
//!
//! Runs in wrend's loop thread.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use super::error::ManagerError;
use super::registry::{Registry, WatchKind};
use crate::fifo;
use crate::logfile::LogFile;

/// Copies what is buffered in fifo `fd` into `log`; returns the bytes copied.
pub fn drain(log: &mut LogFile, fd: RawFd) -> usize {
    let mut buf = [0u8; 16 * 1024];
    let mut total = 0;
    loop {
        // SAFETY: `fd` is an open fifo owned by the caller; `buf` is valid
        // for its length.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return total;
        }
        let n = n as usize;
        total += n;
        if let Err(e) = log.write(&buf[..n]) {
            log::warn!("write {}: {e}", log.path().display());
        }
    }
}

impl Registry {
    /// Makes the stdio fifos and opens them for the log copier.
    pub(super) fn open_stdio(&mut self, name: &str) -> Result<(), ManagerError> {
        let dir = self.cfg.container_state_dir(name);
        let m = self.get(name)?;
        if m.stdout.is_some() {
            return Ok(());
        }
        let (stdin, bundle) = (m.rec.stdin, m.rec.bundle.clone());
        let lerr = |source| ManagerError::Fifo {
            name: name.to_string(),
            source,
        };
        let stdout = fifo::make_and_open(&dir.join("stdout")).map_err(lerr)?;
        let stderr = fifo::make_and_open(&dir.join("stderr")).map_err(lerr)?;
        // The shim daemon's own log (its stderr), as containerd provides it.
        let shim_log = fifo::make_and_open(&bundle.join("log")).map_err(lerr)?;
        if stdin {
            fifo::make(&dir.join("stdin")).map_err(lerr)?;
        }
        let fds = [stdout.as_raw_fd(), stderr.as_raw_fd(), shim_log.as_raw_fd()];
        let m = self.get(name)?;
        m.stdout = Some(stdout);
        m.stderr = Some(stderr);
        m.shim_log_fd = Some(shim_log);
        let attached = m.attached;
        for (i, fd) in fds.into_iter().enumerate() {
            if i == 0 && attached {
                continue;
            }
            self.watch(name, fd, WatchKind::Fifo);
        }
        Ok(())
    }

    pub(super) fn close_stdio(&mut self, name: &str) {
        let Some(m) = self.containers.get_mut(name) else {
            return;
        };
        if let Some(fd) = m.shim_log_fd.take() {
            drain(&mut m.shim_log, fd.as_raw_fd());
            self.unwatch(fd.as_raw_fd());
        }
        let Some(m) = self.containers.get_mut(name) else {
            return;
        };
        let fds: Vec<OwnedFd> = [m.stdout.take(), m.stderr.take()]
            .into_iter()
            .flatten()
            .collect();
        for fd in &fds {
            if let Some(m) = self.containers.get_mut(name) {
                drain(&mut m.log, fd.as_raw_fd());
            }
            self.unwatch(fd.as_raw_fd());
        }
    }

    /// Copies whatever the fifos hold into the log.
    pub(super) fn drain_stdio(&mut self, name: &str) {
        if let Some(m) = self.containers.get_mut(name) {
            let fds: Vec<RawFd> = [&m.stdout, &m.stderr]
                .into_iter()
                .flatten()
                .map(|f| f.as_raw_fd())
                .collect();
            for (i, fd) in fds.into_iter().enumerate() {
                if i == 0 && m.attached {
                    continue;
                }
                drain(&mut m.log, fd);
            }
        }
    }

    /// Output is waiting in a fifo.
    pub fn fifo_readable(&mut self, fd: RawFd) {
        let Some(name) = self.owners.get(&fd) else {
            return;
        };
        if let Some(m) = self.containers.get_mut(name) {
            if m.shim_log_fd.as_ref().is_some_and(|f| f.as_raw_fd() == fd) {
                drain(&mut m.shim_log, fd);
            } else {
                drain(&mut m.log, fd);
            }
        }
    }
}
