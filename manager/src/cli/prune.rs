//! `wren container prune` and `wren system prune`: what a small box's
//! owner runs when its disk fills, with Docker's meaning.
//!
//! - container prune: every container that is not running, paused or
//!   restarting (stopped, exited, created), through wrend's Delete, as
//!   `rm` does (its network, logs, writable layer and record go);
//! - system prune: those containers, then the networks no container names
//!   (never the default one), then the layers and blobs no image needs;
//!   with `-a` first every image no container was made from; with
//!   `--volumes` every volume no container mounts.
//!
//! Both ask first on a terminal and want `-f` otherwise, and end with the
//! bytes given back (sizes as `system df` counts them).
//!
//! Runs in `wren`.

use std::io::Write;

use clap::Args;
use wren_images::Store;
use wren_protocol::manager as api;

use super::client::Wrend;
use super::{images, volumes, CliError, Global};

#[derive(Debug, Args)]
pub struct SystemPrune {
    /// Remove every image no container was made from, not only unused layers
    #[arg(short, long)]
    pub all: bool,
    /// Remove the volumes no container mounts, and their data, too
    #[arg(long)]
    pub volumes: bool,
    /// Do not ask first (needed when stdin is not a terminal)
    #[arg(short, long)]
    pub force: bool,
}

/// Whether to go ahead: `force`, or "y" to `question` on a terminal;
/// without one, a usage error that says `what` and asks for `-f`.
pub fn confirm(force: bool, what: &str, question: &str) -> Result<bool, CliError> {
    if force {
        return Ok(true);
    }
    if !super::tty::is_tty(0) {
        return Err(CliError::usage(format!(
            "{what}: confirm with -f (stdin is not a terminal to ask on)"
        )));
    }
    eprint!("{question} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    let _ = std::io::stdin().read_line(&mut answer);
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}

/// `wren container prune`.
pub fn containers(g: &Global, force: bool) -> Result<i32, CliError> {
    if !confirm(
        force,
        "container prune removes containers",
        "Remove every stopped container?",
    )? {
        return Ok(1);
    }
    let (freed, failed) = remove_stopped(g)?;
    println!("Total reclaimed space: {}", super::disk::human(freed));
    Ok(i32::from(failed))
}

/// Deletes every container that is not live, printing each name: (bytes
/// freed, whether one failed).
fn remove_stopped(g: &Global) -> Result<(u64, bool), CliError> {
    let mut w = Wrend::connect(&g.socket)?;
    let list: api::ListResponse = w.call("List", &api::ListRequest::new(), false)?;
    let dir = crate::paths::containers_in(&g.records);
    let (mut freed, mut failed) = (0, false);
    for c in &list.containers {
        if matches!(c.status.as_str(), "running" | "paused" | "restarting") {
            continue;
        }
        let size = Store::du(&dir.join(&c.name));
        let mut r = api::DeleteRequest::new();
        r.name = c.name.clone();
        match w.call::<_, api::ContainerResponse>("Delete", &r, false) {
            Ok(_) => {
                println!("deleted container {}", c.name);
                freed += size;
            }
            Err(e) => {
                eprintln!("wren: {}", wren_runtime::error::chain(&e));
                failed = true;
            }
        }
    }
    Ok((freed, failed))
}

/// `wren system prune [-a] [--volumes] [-f]`.
pub fn system(g: &Global, a: &SystemPrune) -> Result<i32, CliError> {
    let mut what = vec!["every stopped container", "every network no container uses"];
    what.push(if a.all {
        "every image no container was made from"
    } else {
        "the image layers and blobs no image needs"
    });
    if a.volumes {
        what.push("every volume no container uses, with its data");
    }
    let question = format!("This removes {}. Go on?", what.join(", "));
    if !confirm(a.force, "system prune removes data", &question)? {
        return Ok(1);
    }
    let (mut freed, failed) = remove_stopped(g)?;

    super::network::prune(g, &[])?;

    {
        let store = images::store(g)?;
        let _lock = store.lock_exclusive()?;
        let root = crate::paths::images_in(&g.records);
        let before = Store::du(&root);
        if a.all {
            let index = store.index()?;
            let unused: Vec<String> = index
                .images
                .iter()
                .filter(|(_, e)| images::users_of(&g.records, &e.digest).is_empty())
                .map(|(n, _)| n.clone())
                .collect();
            store.untag(&unused)?;
            for n in &unused {
                println!("untagged {n}");
            }
        }
        for r in store.prune()? {
            println!("deleted {r}");
        }
        freed += before.saturating_sub(Store::du(&root));
    }

    if a.volumes {
        for (n, size) in volumes::prune_unused(g)? {
            println!("deleted volume {n}");
            freed += size;
        }
    }
    println!("Total reclaimed space: {}", super::disk::human(freed));
    Ok(i32::from(failed))
}
