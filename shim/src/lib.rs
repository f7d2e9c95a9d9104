//! The shim crate as a library: the containerd shim (`containerd-shim-wren-v2`)
//! is built from these modules, and so are the manager (`wrend`) and its CLI
//! (`wren`), which reuse the ttrpc plumbing, stdio and event code.

pub mod cli;
pub mod daemon;
pub mod delete;
pub mod events;
pub mod flags;
pub mod info;
pub mod log;
pub mod manager;
pub mod memory;
pub mod options;
pub mod reaper;
pub mod sha256;
pub mod socket;
pub mod start;
pub mod stdio;
pub mod task;
pub mod ttrpc;
