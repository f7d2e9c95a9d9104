//! OOM-kill notification for one container.
//!
//! - v1: an eventfd registered through `cgroup.event_control` on
//!   `memory.oom_control`; the count of kills is the `oom_kill` line of
//!   memory.oom_control (kernels before 4.13 lack it, then each eventfd
//!   event counts as one).
//! - v2: inotify on `memory.events`; the count is its `oom_kill` line.
//!
//! The fd is pollable (the shim's event loop waits on it); after it becomes
//! readable, or whenever the caller likes, [`OomWatcher::new_kills`] says how
//! many OOM kills happened since the last call. Because the count is read
//! from the kernel's counter rather than from the notifications, a last call
//! made after the container's init exited (and before the cgroup is deleted)
//! still sees a kill that happened just before the exit.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::sys::eventfd::{EfdFlags, EventFd};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use nix::unistd::read;

use super::{fs, CgroupError};

#[derive(Debug)]
enum Source {
    V1(EventFd),
    V2(Inotify),
}

/// A pollable source of OOM-kill notifications (see the module docs).
#[derive(Debug)]
pub struct OomWatcher {
    source: Source,
    dir: PathBuf,
    file: &'static str,
    last: u64,
    /// v1 kernels without an `oom_kill` counter: count eventfd events instead.
    count_events: bool,
}

impl OomWatcher {
    /// Watches the v1 memory cgroup `dir`.
    pub(crate) fn v1(dir: &Path) -> Result<Self, CgroupError> {
        let control = dir.join("memory.oom_control");
        let err = |source: std::io::Error| CgroupError::OomWatch {
            path: control.clone(),
            source,
        };
        let efd = EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)
            .map_err(|e| err(e.into()))?;
        let cfile = std::fs::File::open(&control).map_err(err)?;
        use std::os::fd::AsRawFd;
        let line = format!("{} {}", efd.as_fd().as_raw_fd(), cfile.as_raw_fd());
        fs::write(dir, "cgroup.event_control", &line)?;
        drop(cfile);
        let counter = fs::read_flat_keyed(dir, "memory.oom_control")?;
        Ok(OomWatcher {
            source: Source::V1(efd),
            dir: dir.to_owned(),
            file: "memory.oom_control",
            last: counter.get("oom_kill").copied().unwrap_or(0),
            count_events: !counter.contains_key("oom_kill"),
        })
    }

    /// Watches the cgroup2 directory `dir` (needs the memory controller).
    pub(crate) fn v2(dir: &Path) -> Result<Self, CgroupError> {
        let events = dir.join("memory.events");
        let err = |source: std::io::Error| CgroupError::OomWatch {
            path: events.clone(),
            source,
        };
        let ino = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK)
            .map_err(|e| err(e.into()))?;
        ino.add_watch(&events, AddWatchFlags::IN_MODIFY)
            .map_err(|e| err(e.into()))?;
        let counter = fs::read_flat_keyed(dir, "memory.events")?;
        Ok(OomWatcher {
            source: Source::V2(ino),
            dir: dir.to_owned(),
            file: "memory.events",
            last: counter.get("oom_kill").copied().unwrap_or(0),
            count_events: false,
        })
    }

    /// Drains pending notifications and returns the number of OOM kills since
    /// the previous call (or since the watcher was made). A cgroup that is
    /// already gone reports 0.
    pub fn new_kills(&mut self) -> Result<u64, CgroupError> {
        let events = match &self.source {
            Source::V1(efd) => {
                let mut buf = [0u8; 8];
                match read(efd.as_fd(), &mut buf) {
                    Ok(8) => u64::from_ne_bytes(buf),
                    _ => 0,
                }
            }
            Source::V2(ino) => {
                // Only to empty the queue: the counter below is the truth.
                while matches!(ino.read_events(), Ok(ev) if !ev.is_empty()) {}
                0
            }
        };
        if self.count_events {
            return Ok(events);
        }
        let counter = match fs::read_flat_keyed(&self.dir, self.file) {
            Ok(c) => c,
            Err(CgroupError::Read { source, .. })
                if source.raw_os_error() == Some(libc::ENODEV)
                    || source.kind() == std::io::ErrorKind::NotFound =>
            {
                return Ok(0)
            }
            Err(e) => return Err(e),
        };
        let now = counter.get("oom_kill").copied().unwrap_or(self.last);
        let delta = now.saturating_sub(self.last);
        self.last = now;
        Ok(delta)
    }
}

impl AsFd for OomWatcher {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match &self.source {
            Source::V1(efd) => efd.as_fd(),
            Source::V2(ino) => ino.as_fd(),
        }
    }
}

impl From<OomWatcher> for OwnedFd {
    fn from(w: OomWatcher) -> OwnedFd {
        match w.source {
            Source::V1(efd) => efd.into(),
            Source::V2(ino) => ino.into(),
        }
    }
}
