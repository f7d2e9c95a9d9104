//! `wrend`, the thin manager for hosts without containerd: a registry of
//! containers, one `containerd-shim-wren-v2` per container launched exactly
//! as containerd launches it, an events receiver (the shims publish to
//! wrend's own socket), restart policies, rotated log files and persistent
//! records that let a restarted wrend pick its containers up again.
//!
//! Process model: one single-threaded epoll loop ([`event_loop`]) owns
//! everything: the API socket, the shims' event connections, every
//! container's stdio fifos, the shims' pidfds and the timers (restart
//! backoff, stop grace period). Shim calls are blocking and short.
//!
//! Where things are:
//! - [`flags`]: wrend's command line; [`config`]: the paths and limits it
//!   gives.
//! - [`event_loop`]: the epoll loop; [`api`]: one handler per API request;
//!   [`shim_events`]: the events shims forward; [`event_log`]: the stream
//!   `wren events` reads.
//! - [`registry`]: every container and what wrend holds for it;
//!   [`record`]: what of it is persisted.
//! - [`shim_client`]: running and calling one shim; [`shim_lifecycle`]:
//!   each container's shim and task as wrend drives them.
//! - [`stdio`]: the fifos and the log copying.
//! - [`restart`]: exits, restart timers and stop deadlines;
//!   [`restart_policy`]: the policies and the backoff, pure logic.
//! - [`restore`]: picking containers up after wrend restarts.
//! - [`spec`]: the config.json a container gets; [`error`]: request errors
//!   and their ttrpc codes.
//!
//! Runs in the `wrend` process.

pub mod api;
pub mod config;
pub mod copytree;
pub mod error;
pub mod event_log;
pub mod event_loop;
pub mod flags;
pub mod health;
pub mod mountinfo;
pub mod network;
pub mod record;
pub mod registry;
pub mod restart;
pub mod restart_policy;
pub mod restore;
pub mod shim_client;
pub mod shim_events;
pub mod shim_lifecycle;
pub mod spec;
pub mod stdio;
