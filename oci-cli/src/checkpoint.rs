//! `checkpoint` and `restore`: runc's flags over the runtime library's
//! CRIU support. As with runc, a checkpoint without --leave-running (and
//! not a pre-dump) deletes the container once its processes are dumped,
//! and a restore without --detach waits for the restored init and exits
//! with its status. Runs in the `wren-oci` process.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::ExitCode;

use wren_runtime::{CheckpointOptions, ConsoleMode, Container, CriuFlags, RestoreOptions, Stdio};

use crate::cli::{Checkpoint, CriuArgs, Global, Restore};
use crate::{absolute, forward, load, reaper, refuse, Usage};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn flags(g: &Global, a: &CriuArgs) -> Result<CriuFlags> {
    let image_path = match &a.image_path {
        Some(p) => absolute(p)?,
        // runc's default: ./checkpoint
        None => absolute(std::path::Path::new("checkpoint"))?,
    };
    let mut empty_ns = 0u32;
    for ns in &a.empty_ns {
        match ns.as_str() {
            "network" | "net" => empty_ns |= libc::CLONE_NEWNET as u32,
            other => {
                return Err(Usage(format!(
                    "--empty-ns {other:?}: only \"network\" can be restored empty"
                ))
                .into())
            }
        }
    }
    let cgroups_mode = a
        .manage_cgroups_mode
        .as_deref()
        .map(|m| m.parse().map_err(Usage))
        .transpose()?;
    Ok(CriuFlags {
        criu: g.criu.clone(),
        image_path,
        work_path: a.work_path.as_deref().map(absolute).transpose()?,
        tcp_established: a.tcp_established,
        ext_unix_sk: a.ext_unix_sk,
        shell_job: a.shell_job,
        file_locks: a.file_locks,
        cgroups_mode,
        empty_ns,
        lazy_pages: a.lazy_pages,
        status_fd: None,
    })
}

pub fn checkpoint(g: &Global, c: Checkpoint) -> Result<()> {
    if c.tcp_skip_in_flight {
        refuse(
            "checkpoint",
            "--tcp-skip-in-flight",
            "not implemented in wren",
        )?;
    }
    if c.link_remap {
        refuse("checkpoint", "--link-remap", "not implemented in wren")?;
    }
    let mut f = flags(g, &c.criu)?;
    if let Some(fd) = c.status_fd {
        // As runc: the fd must be open for writing. It is not passed on to
        // criu (close-on-exec), so the reader sees its end once wren wrote
        // the byte and closed it.
        // SAFETY: F_GETFL on an integer fd has no memory effects.
        let fl = unsafe { libc::fcntl(fd, libc::F_GETFL) };
        if fl < 0 || fl & libc::O_ACCMODE == libc::O_RDONLY {
            return Err(Usage(format!("--status-fd {fd}: not an fd open for writing")).into());
        }
        // SAFETY: the caller handed us this fd number to own (runc's
        // contract for --status-fd); it is closed after the dump.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: F_SETFD on the fd we now own.
        if unsafe { libc::fcntl(owned.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) } < 0 {
            return Err(format!(
                "--status-fd {fd}: fcntl: {}",
                std::io::Error::last_os_error()
            )
            .into());
        }
        f.status_fd = Some(owned);
    }
    let page_server = match &c.page_server {
        Some(s) => {
            let (addr, port) = s
                .rsplit_once(':')
                .ok_or_else(|| Usage(format!("--page-server {s:?}: want ADDRESS:PORT")))?;
            let port = port
                .parse::<i32>()
                .map_err(|_| Usage(format!("--page-server {s:?}: bad port")))?;
            Some((addr.to_string(), port))
        }
        None => None,
    };
    let container = load(g, &c.id)?;
    let leave = c.leave_running || c.pre_dump;
    container.checkpoint(CheckpointOptions {
        flags: f,
        leave_running: c.leave_running,
        pre_dump: c.pre_dump,
        parent_path: c.parent_path.clone(),
        page_server,
        auto_dedup: c.criu.auto_dedup,
    })?;
    if !leave {
        container.delete(true)?;
    }
    Ok(())
}

pub fn restore(g: &Global, r: Restore) -> Result<ExitCode> {
    if r.lsm_profile.is_some() {
        refuse("restore", "--lsm-profile", "not implemented in wren")?;
    }
    if r.lsm_mount_context.is_some() {
        refuse("restore", "--lsm-mount-context", "not implemented in wren")?;
    }
    if !r.detach && !r.no_subreaper {
        reaper::become_subreaper();
    }
    let console = match &r.console_socket {
        Some(p) => ConsoleMode::Socket(p.clone()),
        None => ConsoleMode::Return,
    };
    let pid_file: Option<PathBuf> = r.pid_file.as_deref().map(absolute).transpose()?;
    let mut c = Container::restore(RestoreOptions {
        id: r.id.clone(),
        bundle: r.bundle.clone(),
        state_root: g.root.clone(),
        flags: flags(g, &r.criu)?,
        stdio: Stdio::default(),
        console,
        pid_file,
        systemd_cgroup: g.systemd_cgroup,
    })?;
    let master = c.take_console();
    if r.detach {
        return Ok(ExitCode::SUCCESS);
    }
    let code = forward::foreground(&c, master)?;
    c.delete(true)?;
    Ok(ExitCode::from(code as u8))
}
