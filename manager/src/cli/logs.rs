//! `wren logs`: the tail of a container's log and, with `-f`, what follows
//! until the container stops, read straight from the rotated log files
//! wrend writes ([`crate::logfile`]); wrend is only asked where they are
//! and whether the container still runs.
//!
//! Runs in `wren`.

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use super::args::Logs;
use super::client::Wrend;
use super::{CliError, Global};
use crate::logfile::{self, Follower};

/// `wren logs`.
pub fn logs(g: &Global, a: &Logs) -> Result<i32, CliError> {
    let mut w = Wrend::connect(&g.socket)?;
    let c = w.inspect(&a.name)?;
    let path = PathBuf::from(&c.log_path);
    let tail = a.tail.unwrap_or(usize::MAX);
    // Open the current file first and follow from where the tail ended, so
    // nothing written in between is skipped.
    let mut current = File::open(&path).ok();
    let data = logfile::tail_from(&path, logfile::READ_KEEP, tail, current.as_mut())
        .map_err(|e| CliError::failed(format!("read {}: {e}", path.display())))?;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(&data);
    let _ = out.flush();
    if !a.follow {
        return Ok(0);
    }
    let mut follower = Follower::new(&path, current);
    loop {
        std::thread::sleep(Duration::from_millis(100));
        follower.pump(&mut out);
        let c = w.inspect(&a.name)?;
        if !matches!(
            c.status.as_str(),
            "running" | "created" | "paused" | "restarting"
        ) {
            follower.pump(&mut out);
            return Ok(0);
        }
    }
}
