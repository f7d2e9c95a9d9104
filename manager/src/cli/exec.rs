//! `wren exec`: a process in a running container, its stdio on fifos wren
//! makes itself in a private temporary directory (as `ctr` does); in the
//! foreground wren relays them ([`super::stdio`], or [`super::tty`] with
//! `-t`) and exits with the process's status.
//!
//! Runs in `wren`.

use std::fs::File;
use std::path::PathBuf;

use wren_protocol::manager as api;

use super::args::Exec;
use super::client::{wait_for_exit, Wrend};
use super::{stdio, tty, CliError, Global};

/// A private directory with the fifos of one exec, removed when dropped.
struct ExecFifos {
    dir: PathBuf,
}

impl ExecFifos {
    fn new() -> Result<Self, CliError> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir = std::env::temp_dir().join(format!("wren-exec-{}-{nanos}", std::process::id()));
        std::fs::create_dir(&dir)
            .and_then(|()| {
                std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            })
            .map_err(|e| CliError::failed(format!("create {}: {e}", dir.display())))?;
        Ok(Self { dir })
    }

    /// Makes fifo `which`; returns its path and our end of it.
    fn fifo(&self, which: &str) -> Result<(String, File), CliError> {
        let path = self.dir.join(which);
        let fd = crate::fifo::make_and_open(&path)?;
        Ok((path.display().to_string(), File::from(fd)))
    }
}

impl Drop for ExecFifos {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `wren exec`.
pub fn exec(g: &Global, a: &Exec) -> Result<i32, CliError> {
    let terminal = a.tty;
    if terminal && !tty::is_tty(0) {
        return Err(CliError::failed("-t needs a terminal on stdin"));
    }
    let detach = a.detach;
    let interactive = (a.interactive || terminal) && !detach;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let exec_id = format!("exec-{}-{nanos}", std::process::id());
    let fifos = ExecFifos::new()?;
    let mut req = api::ExecRequest::new();
    req.name = a.name.clone();
    req.exec_id = exec_id.clone();
    req.args = a.command.clone();
    req.env = a.env.clone();
    req.cwd = a.cwd.clone().unwrap_or_default();
    req.terminal = terminal;
    let mut stdin = None;
    let mut outs = Vec::new();
    if !detach {
        if interactive {
            let (path, f) = fifos.fifo("stdin")?;
            req.stdin = path;
            stdin = Some(f);
        }
        let (path, f) = fifos.fifo("stdout")?;
        req.stdout = path;
        outs.push((f, false));
        if !terminal {
            let (path, f) = fifos.fifo("stderr")?;
            req.stderr = path;
            outs.push((f, true));
        }
    }
    let mut w = Wrend::connect(&g.socket)?;
    let done = wait_for_exit(&g.socket, &a.name, &exec_id);
    let started: api::ExecResponse = w.call("Exec", &req, false)?;
    if detach {
        println!("{}", started.pid);
        return Ok(0);
    }
    if terminal {
        return tty::relay(&mut w, &a.name, &exec_id, stdin, outs, done).map(|s| s as i32);
    }
    if let Some(f) = stdin {
        stdio::feed_stdin(&g.socket, &a.name, &exec_id, f, true);
    }
    let status = stdio::pump_until(outs, &done)?;
    Ok(status as i32)
}
