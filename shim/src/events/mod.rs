//! Events the shim publishes to containerd (`/tasks/*`).
//!
//! Runs in the daemon.

pub mod publisher;
