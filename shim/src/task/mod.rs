//! The Task service containerd calls: request dispatch, per-container and
//! per-process state, error codes, and the one file that talks to the runtime.
//!
//! Runs in the daemon, on the epoll loop thread.

pub mod container_ops;
pub mod error;
pub mod metrics;
pub mod rootfs;
pub mod service;
