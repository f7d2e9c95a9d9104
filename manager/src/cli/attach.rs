//! `wren attach NAME`: a client joins a running container.
//!
//! - A container with a terminal (`run -dit`): the terminal session of
//!   `run -it` ([`super::tty`]); Ctrl-P Ctrl-Q detaches and the container
//!   runs on, its output going to its log again.
//! - Without a terminal, or with `--no-stdin`: its output from now on,
//!   followed in the log wrend writes; wren's stdin goes to the container
//!   if it was created with `-i` (its stdin stays open when ours ends, for
//!   the next client); SIGINT, SIGTERM and SIGHUP are passed on.
//!
//! Either way wren exits with the container's status when it exits.
//! `wren start -a [-i]` starts a container and attaches the same way.
//!
//! Runs in `wren`.

use std::fs::File;
use std::io::{Seek, SeekFrom};
use std::path::Path;

use wren_protocol::manager as api;

use super::args::{Attach, StartArgs};
use super::client::{name_req, wait_for_exit, Wrend};
use super::{run, tty, CliError, Global};
use crate::logfile::Follower;

/// `wren attach`.
pub fn attach(g: &Global, a: &Attach) -> Result<i32, CliError> {
    let mut w = Wrend::connect(&g.socket)?;
    let c = w.inspect(&a.name)?;
    if c.status != "running" {
        return Err(CliError::failed(format!(
            "container {} is {}: only a running container can be attached to",
            a.name, c.status
        )));
    }
    if c.terminal && !a.no_stdin {
        if !tty::is_tty(0) {
            return Err(CliError::failed(format!(
                "container {} has a terminal: attach needs one on stdin (or --no-stdin for its output)",
                a.name
            )));
        }
        return Ok(tty::session(g, &mut w, &a.name, "", false)? as i32);
    }
    let follower = from_now(&c.log_path);
    let done = wait_for_exit(&g.socket, &a.name, "");
    if c.stdin && !a.no_stdin {
        run::feed_stdin(g, &mut w, &a.name, false)?;
    }
    Ok(run::follow(&mut w, &a.name, follower, done)? as i32)
}

/// Follows the log at `path` from its current end: what the container
/// writes from now on.
fn from_now(path: &str) -> Follower {
    let log = Path::new(path);
    let file = File::open(log).ok().and_then(|mut f| {
        f.seek(SeekFrom::End(0)).ok()?;
        Some(f)
    });
    Follower::new(log, file)
}

/// `wren start -a [-i] NAME`.
pub fn start(g: &Global, a: &StartArgs) -> Result<i32, CliError> {
    if a.interactive && !a.attach {
        return Err(CliError::usage("start -i needs -a"));
    }
    let mut w = Wrend::connect(&g.socket)?;
    let c = w.inspect(&a.name)?;
    if a.interactive && !c.stdin {
        return Err(CliError::failed(format!(
            "container {} was not created with -i or -t: it has no stdin to pass on",
            a.name
        )));
    }
    if c.terminal && a.interactive {
        if !tty::is_tty(0) {
            return Err(CliError::failed(format!(
                "container {} has a terminal: start -ai needs one on stdin",
                a.name
            )));
        }
        return Ok(tty::session(g, &mut w, &a.name, "", true)? as i32);
    }
    let follower = from_now(&c.log_path);
    let _: api::ContainerResponse = w.call("Start", &name_req(&a.name), false)?;
    // After the start: a stopped container's Wait would answer with its
    // previous exit.
    let done = wait_for_exit(&g.socket, &a.name, "");
    if a.interactive {
        run::feed_stdin(g, &mut w, &a.name, true)?;
    }
    Ok(run::follow(&mut w, &a.name, follower, done)? as i32)
}
