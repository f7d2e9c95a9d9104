//! `wrend` and `wren`: the standalone manager for hosts without containerd
//! and its command-line client. They share only wrend's wire API (from
//! `wren-protocol`), the ttrpc crate, the runtime's default spec and the
//! few on-disk conventions both sides must agree on (socket and state paths,
//! fifos, the rotated log format).

pub mod cli;
pub mod wrend;
