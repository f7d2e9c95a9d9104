//! wren's OCI runtime as a synchronous library.
//!
//! An OCI bundle (config.json + rootfs) goes in; a created, running and finally
//! deleted container comes out. Everything the kernel needs for isolation is done
//! here, with no helper runtime binary. Nothing in this crate knows about ttrpc or
//! containerd.
//!
//! Process model: the caller (the shim daemon or `wren-oci`) may be
//! multi-threaded. Container processes are never forked-and-continued from it:
//! the caller clones and immediately re-executes a sealed copy of its own binary
//! in init mode (see [`init`]), which is a fresh single-threaded process.

pub mod capabilities;
pub mod cgroups;
pub mod children;
pub mod console;
pub mod container;
pub mod criu;
pub mod devices;
pub mod error;
pub mod features;
pub mod hooks;
pub mod init;
pub mod keyring;
pub mod logrus;
pub mod loopback;
pub mod lsm;
pub mod malloc_tunables;
pub mod mempolicy;
pub mod mountinfo;
pub mod mounts;
#[cfg(target_env = "musl")]
pub mod musl_heap;
pub mod namespaces;
pub mod path;
pub mod process;
pub mod procfs;
pub mod rootfs;
pub mod seccomp;
pub mod signal;
pub mod spec;
pub mod state;
pub mod sync;
pub mod sys;
pub mod sysctl;
pub mod timefmt;
pub mod timing;

pub use container::{
    CgroupsMode, CheckpointOptions, ConsoleMode, Container, CreateOptions, CriuFlags, Error,
    ExecOptions, ExecProcess, RestoreOptions, Stdio,
};
pub use error::ErrorKind;
pub use init::run_if_init;
pub use state::{OciState, Status};
