//! The container lifecycle commands: `create`, `run` (create, start and,
//! in the foreground, wait and delete), `kill` and `delete`. Runs in the
//! `wren-oci` process; the container's init is a re-exec of this binary
//! (see `wren_runtime::init`).

use std::os::fd::AsFd;
use std::process::ExitCode;

use wren_runtime::{ConsoleMode, Container, CreateOptions, Stdio};

use crate::cli::{Create, CreateFlags, Delete, Global, Kill, Run};
use crate::{absolute, forward, load, reaper, refuse, tty, Usage};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

pub fn create(g: &Global, c: Create) -> Result<()> {
    // --detach is accepted and means nothing here: create always returns.
    let (mut container, _) = new(g, &c.flags, c.id, true)?;
    // The console (if any) went to --console-socket; nothing to keep.
    drop(container.take_console());
    Ok(())
}

pub fn run(g: &Global, r: Run) -> Result<ExitCode> {
    if !r.detach && !r.no_subreaper {
        reaper::become_subreaper();
    }
    let (mut c, master) = new(g, &r.flags, r.id, r.detach)?;
    if let Some(m) = &master {
        // Before start: the process must not see a 0x0 terminal.
        tty::resize_from_stdin(m.as_fd());
    }
    c.start()?;
    if r.detach {
        return Ok(ExitCode::SUCCESS);
    }
    let code = forward::foreground(&c, master)?;
    if !r.keep {
        c.delete(true)?;
    }
    Ok(ExitCode::from(code as u8))
}

/// Create the container; hand back the pty master when the process has a
/// terminal and no --console-socket took it.
fn new(
    g: &Global,
    f: &CreateFlags,
    id: String,
    detached: bool,
) -> Result<(Container, Option<std::os::fd::OwnedFd>)> {
    if f.pidfd_socket.is_some() {
        refuse("create", "--pidfd-socket", "wren sends no pidfd")?;
    }
    let pid_file = f.pid_file.as_deref().map(absolute).transpose()?;
    let console = match &f.console_socket {
        Some(p) => ConsoleMode::Socket(p.clone()),
        None => ConsoleMode::Return,
    };
    let mut c = Container::create(CreateOptions {
        id,
        bundle: f.bundle.clone(),
        state_root: g.root.clone(),
        stdio: Stdio::default(),
        console,
        preserve_fds: f.preserve_fds,
        no_pivot: f.no_pivot,
        no_new_keyring: f.no_new_keyring,
        systemd_cgroup: g.systemd_cgroup,
        pid_file,
    })?;
    let terminal = c
        .spec()
        .process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false);
    let master = c.take_console();
    if terminal && f.console_socket.is_none() && detached {
        let _ = c.delete(true);
        return Err(Usage("process.terminal needs --console-socket when detached".into()).into());
    }
    Ok((c, master))
}

pub fn kill(g: &Global, k: Kill) -> Result<()> {
    load(g, &k.id)?.kill(k.signal, k.all)?;
    Ok(())
}

pub fn delete(g: &Global, d: Delete) -> Result<()> {
    match Container::load(&g.root, &d.id) {
        Ok(c) => c.delete(d.force)?,
        // runc: deleting a missing container with --force is fine.
        Err(wren_runtime::Error::NotFound(_)) if d.force => {}
        Err(e) => return Err(e.into()),
    }
    Ok(())
}
