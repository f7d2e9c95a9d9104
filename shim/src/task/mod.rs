//! The Task service containerd calls (`containerd.task.v2.Task`, and the
//! same messages as `v3.Task`): the service state, one record per container,
//! and one file per group of RPCs, so "where is Kill handled" is a file name:
//!
//! | file | holds |
//! |---|---|
//! | `dispatch.rs` | method name → handler; Unimplemented for unknown methods |
//! | `record.rs` | the one record per container: runtime handle, init, execs, stdio, pidfds, OOM watcher |
//! | `create.rs` | Create and Start (of the init) |
//! | `exec.rs` | Exec and Start of an exec |
//! | `kill.rs` | Kill |
//! | `delete.rs` | Delete (init and exec) |
//! | `state.rs` | State, Wait, Connect, Shutdown |
//! | `exit.rs` | exits: pidfd readiness, OOM events, the order of exit reports |
//! | `stats.rs` | Stats, Update, Pids |
//! | `pause.rs` | Pause, Resume, Checkpoint (CRIU) |
//! | `io.rs` | CloseIO, ResizePty |
//! | `error.rs` | errors and the RPC × condition → ttrpc code table |
//! | `container_ops.rs` | the one seam to the runtime library |
//! | `metrics.rs`, `rootfs.rs` | cgroup stats → containerd Metrics; containerd's rootfs mounts |
//!
//! Runs in the daemon, on the epoll loop thread, which owns all of this state.

pub mod container_ops;
mod create;
mod delete;
mod dispatch;
pub mod error;
mod exec;
mod exit;
mod io;
mod kill;
pub mod metrics;
mod pause;
mod record;
pub mod rootfs;
mod state;
mod stats;

#[cfg(test)]
mod fake;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::time::{Instant, SystemTime};

use nix::sys::epoll::{Epoll, EpollEvent, EpollFlags};
use protobuf::well_known_types::timestamp::Timestamp;
use protobuf::Message;

use self::container_ops::ContainerOps;
use self::error::TaskError;
use self::record::Container;
use crate::events::publisher::{timestamp, Publisher};
use crate::stdio::logger::Logger;
use crate::stdio::relay::Relays;
use crate::stdio::ProcessIo;

pub use self::exit::{DRAIN_GRACE, EXECS_GRACE};

/// Tokens of OOM watchers carry this bit (see `serve.rs`).
pub const OOM_BIT: u64 = 1 << 42;
/// Tokens of process pidfds carry this bit; the rest is the fd.
pub const PIDFD_BIT: u64 = 1 << 40;

/// The service state: every container this shim owns, by id.
pub struct TaskService<O: ContainerOps> {
    /// Boxed: a record is ~4 KiB (the runtime's handle holds the parsed
    /// spec inline), and the map's table keeps room for several entries
    /// (4 slots for a shim's one container): unboxed that is ~16 KiB of
    /// heap held by every idle shim, boxed ~4 KiB.
    containers: HashMap<String, Box<Container<O::Container>>>,
    ops: O,
    publisher: Publisher,
    state_root: PathBuf,
    namespace: String,
    shutdown: bool,
    /// stdio copying, on the loop's epoll set.
    relays: Relays,
    /// The loop's epoll set, for pidfds and OOM watchers.
    epoll: Epoll,
    next_oom_token: u64,
    /// Loggers asked to exit, to SIGKILL after their grace.
    dying_loggers: Vec<(Logger, Instant)>,
}

fn encode<M: Message>(m: M) -> Result<Vec<u8>, TaskError> {
    Ok(m.write_to_bytes().unwrap_or_default())
}

fn now() -> Timestamp {
    timestamp(SystemTime::now())
}

/// Sends `signal` through a pidfd the shim owns.
fn pidfd_signal(fd: &OwnedFd, signal: u32) -> std::io::Result<()> {
    // SAFETY: pidfd_send_signal(2) with a pidfd we own and no siginfo.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            fd.as_raw_fd(),
            signal as libc::c_int,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

impl<O: ContainerOps> TaskService<O> {
    /// `epoll` is the daemon loop's epoll set: pidfds, stdio relays and OOM
    /// watchers are registered there, and the loop hands their readiness
    /// back through [`Self::fd_ready`].
    pub fn new(
        ops: O,
        publisher: Publisher,
        state_root: PathBuf,
        namespace: &str,
        epoll: &Epoll,
    ) -> std::io::Result<Self> {
        let handle = || epoll.0.try_clone().map(Epoll);
        Ok(Self {
            containers: HashMap::new(),
            ops,
            publisher,
            state_root,
            namespace: namespace.to_string(),
            shutdown: false,
            relays: Relays::new(handle()?),
            epoll: handle()?,
            next_oom_token: 0,
            dying_loggers: Vec::new(),
        })
    }

    /// True once Shutdown was called with no container left.
    pub fn shutdown_requested(&self) -> bool {
        self.shutdown
    }

    /// Did a container's stdio move bytes since the last call? (The loop
    /// trims memory once output has been quiet for a while.)
    pub fn take_output_moved(&mut self) -> bool {
        self.relays.take_moved()
    }

    /// The publisher, for flushing at exit.
    pub fn publisher(&self) -> &Publisher {
        &self.publisher
    }

    /// Is `pid` a process of ours whose exit the loop collects through its
    /// pidfd? The orphan reaper must leave it alone.
    pub fn owns_pid(&self, pid: i32) -> bool {
        self.containers.values().any(|c| {
            c.processes()
                .any(|p| p.pidfd.is_some() && p.pid as i32 == pid)
        })
    }

    fn container(&mut self, id: &str) -> Result<&mut Container<O::Container>, TaskError> {
        record::find(&mut self.containers, id)
    }

    /// Puts a new process's pidfd on the loop's epoll set and takes the pid
    /// over from the runtime library's registry of its children. Returns
    /// the pidfd to keep in the process's record.
    fn watch_pidfd(&mut self, id: &str, pid: u32, pidfd: OwnedFd) -> OwnedFd {
        let token = PIDFD_BIT | pidfd.as_raw_fd() as u64;
        if let Err(e) = self
            .epoll
            .add(pidfd.as_fd(), EpollEvent::new(EpollFlags::EPOLLIN, token))
        {
            log::error!("watch pid {pid} of {id}: {e}");
        }
        wren_runtime::children::release(pid as i32);
        pidfd
    }

    /// Drops a process's stdio; a logging binary gets SIGTERM and is
    /// watched until it exits or its grace ends.
    fn release_io(&mut self, io: ProcessIo) {
        if let Some(dying) = io.close(&mut self.relays) {
            self.dying_loggers.push(dying);
        }
    }
}
