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
use crate::wrend::api::checkpoint::CREATE_FILE;

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
    /// The (stopped) container to restore into, or a new container to
    /// make from the checkpoint
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

/// What `wren restore` sends besides the directory.
#[derive(Default)]
struct FromCheckpoint {
    /// The checkpoint's create request (wrend uses it when no container
    /// has the name), an image container's layers resolved in this
    /// host's store; None without the file.
    create: Option<api::CreateRequest>,
    /// The store's shared lock, held until the reply (no layer goes away).
    _lock: Option<nix::fcntl::Flock<std::fs::File>>,
    /// Why the image could not be resolved: an error only if wrend needs
    /// the request.
    missing: Option<String>,
}

fn from_checkpoint(g: &Global, dir: &Path) -> Result<FromCheckpoint, CliError> {
    use protobuf::Message;
    let file = dir.join(CREATE_FILE);
    let bytes = match std::fs::read(&file) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(FromCheckpoint::default()),
        Err(e) => return Err(CliError::failed(format!("{}: {e}", file.display()))),
    };
    let mut req = api::CreateRequest::parse_from_bytes(&bytes)
        .map_err(|e| CliError::failed(format!("{}: {e}", file.display())))?;
    if req.image_id.is_empty() {
        return Ok(FromCheckpoint {
            create: Some(req),
            ..FromCheckpoint::default()
        });
    }
    let resolved = (|| -> Result<_, CliError> {
        let store = super::images::store(g)?;
        let lock = store.lock_shared()?;
        let image = store.image(&req.image_id)?;
        let layers = store.layer_dirs(&image)?;
        Ok((lock, layers))
    })();
    Ok(match resolved {
        Ok((lock, layers)) => {
            req.image_layers = layers.iter().map(|l| l.display().to_string()).collect();
            FromCheckpoint {
                create: Some(req),
                _lock: Some(lock),
                missing: None,
            }
        }
        Err(e) => FromCheckpoint {
            missing: Some(format!(
                "the checkpoint's image {} ({}) is not in this host's store: {}",
                req.image, req.image_id, e.message
            )),
            ..FromCheckpoint::default()
        },
    })
}

/// `wren restore`.
pub fn restore(g: &Global, a: &RestoreArgs) -> Result<i32, CliError> {
    let mut r = api::RestoreRequest::new();
    r.name = a.name.clone();
    r.path = absolute(&a.dir)?;
    let from = from_checkpoint(g, Path::new(&r.path))?;
    r.create = protobuf::MessageField::from_option(from.create.clone());
    let mut w = Wrend::connect(&g.socket)?;
    let res: Result<api::ContainerResponse, CliError> =
        w.call("Restore", &r, true).map_err(CliError::from);
    match (res, from.missing) {
        (Err(e), Some(why)) => return Err(CliError::failed(format!("{}; {why}", e.message))),
        (res, _) => {
            res?;
        }
    }
    println!("{}", a.name);
    Ok(0)
}
