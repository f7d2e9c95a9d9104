//! `containerd-shim-wren-v2` as a library: the `start` / `delete` actions,
//! the daemon's epoll loop (`serve`), the Task service and its boundary with the
//! runtime, stdio plumbing and the event publisher. The binary is `main.rs`;
//! the integration tests use the library directly.

pub mod delete;
pub mod events;
pub mod flags;
pub mod info;
pub mod memory;
pub mod options;
pub mod reaper;
pub mod serve;
pub mod sha256;
pub mod socket;
pub mod start;
pub mod stdio;
pub mod task;
