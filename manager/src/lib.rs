//! `wrend` and `wren`: the standalone manager for hosts without containerd
//! and its command-line client.
//!
//! - [`wrend`]: the daemon (runs in the `wrend` process).
//! - [`cli`]: the command-line client (runs in the `wren` process).
//!
//! The two share only wrend's wire API (`wren-protocol`), the ttrpc crate,
//! the runtime's default spec, and the modules here at the crate root, which
//! hold what both sides must agree on:
//! - [`paths`]: the default state directory, the socket's name, the layout
//!   under `--root`;
//! - [`fifo`]: how stdio fifos are made and opened;
//! - [`logfile`]: the rotated log format wrend writes and wren tails;
//! - [`overlay_lock`]: who may mount an image container's overlay.
//!
//! `cli` never imports `wrend`, and `wrend` never imports `cli`.

pub mod cli;
pub mod fifo;
pub mod logfile;
pub mod network;
pub mod overlay_lock;
pub mod paths;
pub mod wrend;
