//! A minimal ttrpc (unary calls only) for the shim: frame codec, a server
//! driven by the daemon's single epoll loop, and a blocking client for event
//! publishing.
//!
//! Why not the `ttrpc` crate's sync server: it runs a listener thread, a
//! connection reaper thread and, per connection, a handler, a reader, a writer
//! and a pool of at least two workers — eight or more threads for one idle
//! containerd connection, against a budget of four for the whole idle shim.
//! Here one loop thread reads every connection and long calls (Wait) are
//! answered later instead of parking a thread. The `ttrpc` crate still
//! provides the wire messages (`Request`, `Response`, `Status`).
//!
//! Runs in the daemon.

pub mod client;
pub mod frame;
pub mod server;
