//! `wren checkpoint NAME [--leave-running] DIR` and `wren restore DIR
//! NAME`: the image directory is made absolute here (wrend and the shim
//! do not share the caller's working directory); CRIU runs in the
//! container's shim.
//!
//! Runs in `wren`.

use std::path::{Path, PathBuf};

use clap::Args;
use wren_protocol::manager as api;

use super::client::Wrend;
use super::{CliError, Global};

#[derive(Debug, Args)]
pub struct CheckpointArgs {
    /// Leave the container running after the dump
    #[arg(long)]
    pub leave_running: bool,
    /// The container's name
    #[arg(value_name = "NAME")]
    pub name: String,
    /// The directory to write the CRIU images to (made if missing)
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// A directory written by `wren checkpoint`
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// The (stopped) container to restore into
    #[arg(value_name = "NAME")]
    pub name: String,
}

fn absolute(dir: &Path) -> Result<String, CliError> {
    std::path::absolute(dir)
        .map(|p| p.display().to_string())
        .map_err(|e| CliError::failed(format!("{}: {e}", dir.display())))
}

/// `wren checkpoint`.
pub fn checkpoint(g: &Global, a: &CheckpointArgs) -> Result<i32, CliError> {
    let mut r = api::CheckpointRequest::new();
    r.name = a.name.clone();
    r.path = absolute(&a.dir)?;
    r.leave_running = a.leave_running;
    let mut w = Wrend::connect(&g.socket)?;
    let _: api::ContainerResponse = w.call("Checkpoint", &r, true)?;
    println!("{}", a.name);
    Ok(0)
}

/// `wren restore`.
pub fn restore(g: &Global, a: &RestoreArgs) -> Result<i32, CliError> {
    let mut r = api::RestoreRequest::new();
    r.name = a.name.clone();
    r.path = absolute(&a.dir)?;
    let mut w = Wrend::connect(&g.socket)?;
    let _: api::ContainerResponse = w.call("Restore", &r, true)?;
    println!("{}", a.name);
    Ok(0)
}
