//! `wrend`, the thin manager for hosts without containerd: a registry of
//! containers, one `containerd-shim-wren-v2` per container launched exactly
//! as containerd launches it, an events receiver (the shims publish to
//! wrend's own socket), restart policies, rotated log files and persistent
//! records that let a restarted wrend pick its containers up again.
//!
//! Process model: one single-threaded epoll loop (see [`daemon`]) owns
//! everything: the API socket, the shims' event connections, every
//! container's stdio fifos, the shims' pidfds and the timers (restart
//! backoff, stop grace period). Shim calls are blocking and short.
//!
//! Runs in the `wrend` process.

pub mod config;
pub mod daemon;
pub mod error;
pub mod events;
pub mod logs;
pub mod policy;
pub mod record;
pub mod shim;
pub mod spec;
pub mod supervisor;
