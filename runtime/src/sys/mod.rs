//! The only place raw syscalls are wrapped. Everything above works with
//! `OwnedFd`/`BorrowedFd` and typed errors.

pub mod bpf;
pub mod seccomp;
