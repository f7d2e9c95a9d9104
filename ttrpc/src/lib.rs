//! wren's own ttrpc (unary calls only), shared by the shim and wrend: the
//! frame codec, a server driven by the caller's single epoll loop, a blocking
//! client (event publishing, wrend's calls to its shims, the `wren` CLI) and
//! `unix://` addresses.
//!
//! Why not the `ttrpc` crate's sync server: it runs a listener thread, a
//! connection reaper thread and, per connection, a handler, a reader, a writer
//! and a pool of at least two workers — eight or more threads for one idle
//! containerd connection, against a budget of four for the whole idle shim.
//! Here one loop thread reads every connection and long calls (Wait) are
//! answered later instead of parking a thread. The `ttrpc` crate still
//! provides the wire messages (`Request`, `Response`, `Status`).
//!
//! Runs in the shim daemon, in wrend and in the `wren` CLI.

pub mod address;
pub mod client;
pub mod frame;
pub mod server;
