//! `wren exec`: a process in a running container, its stdio on fifos wren
//! makes itself in a private temporary directory (as `ctr` does); in the
//! foreground wren relays them ([`super::stdio`], or [`super::tty`] with
//! `-t`) and exits with the process's status.
//!
//! Runs in `wren`.

use std::fs::File;
use std::path::PathBuf;

use wren_protocol::manager as api;

use wren_images::runconfig::MissingId;

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
    req.env = a
        .env
        .iter()
        .filter_map(|e| super::run::host_env(e))
        .collect();
    req.cwd = a.cwd.clone().unwrap_or_default();
    req.terminal = terminal;
    let mut w = Wrend::connect(&g.socket)?;
    if let Some(user) = &a.user {
        let (uid, gid, more) = container_user(&mut w, &a.name, user)?;
        req.user_set = true;
        req.uid = uid;
        req.gid = gid;
        req.additional_gids = more;
    }
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

/// `exec -u USER`: the ids of `user` as the running container's own
/// /etc/passwd and /etc/group say (read through /proc/PID/root, with every
/// symlink kept inside the container's root).
fn container_user(w: &mut Wrend, name: &str, user: &str) -> Result<(u32, u32, Vec<u32>), CliError> {
    if user.is_empty() || user.starts_with(':') || user.ends_with(':') {
        return Err(CliError::usage(format!(
            "-u {user:?}: want NAME|UID[:GROUP|GID]"
        )));
    }
    let c = w.inspect(name)?;
    if c.status != "running" || c.pid == 0 {
        return Err(CliError::failed(format!(
            "container {name} is {}, not running",
            c.status
        )));
    }
    let root_path = PathBuf::from(format!("/proc/{}/root", c.pid));
    let root = wren_runtime::path::Root::open(&root_path)
        .map_err(|e| CliError::failed(format!("open {}: {e}", root_path.display())))?;
    let passwd = read_small(&root, "/etc/passwd")?;
    let groups = read_small(&root, "/etc/group")?;
    wren_images::runconfig::user_ids(&passwd, &groups, user).map_err(|m| {
        CliError::failed(match m {
            MissingId::User(u) => {
                format!("container {name}: user {u:?} is not in its /etc/passwd")
            }
            MissingId::Group(g) => {
                format!("container {name}: group {g:?} is not in its /etc/group")
            }
        })
    })
}

/// A regular file of the container (at most 1 MiB of it), or "" if it has
/// none; never a fifo or device to block on.
fn read_small(root: &wren_runtime::path::Root, path: &str) -> Result<String, CliError> {
    use std::io::Read;
    let fd = match root.resolve(
        std::path::Path::new(path),
        libc::O_RDONLY | libc::O_NONBLOCK | libc::O_CLOEXEC,
        false,
    ) {
        Ok(fd) => fd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(String::new()),
        Err(e) => {
            return Err(CliError::failed(format!(
                "open the container's {path}: {e}"
            )))
        }
    };
    let f = File::from(fd);
    let regular = f.metadata().map(|m| m.is_file()).unwrap_or(false);
    if !regular {
        return Err(CliError::failed(format!(
            "the container's {path} is not a regular file"
        )));
    }
    let mut text = String::new();
    f.take(1 << 20)
        .read_to_string(&mut text)
        .map_err(|e| CliError::failed(format!("read the container's {path}: {e}")))?;
    Ok(text)
}
