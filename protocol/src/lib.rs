//! Wire definitions for wren: containerd's shim Task and Events APIs (re-exported
//! from `containerd-shim-protos`) and, later, wrend's own API. No logic lives here.
pub use containerd_shim_protos as shim;
