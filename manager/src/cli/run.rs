//! `wren run` and `wren create`: the Create request built from the command
//! line, then, for a foreground `run`, the container started and its output
//! printed until it exits (wren exits with its status). That output comes
//! from the container's log file (wrend writes it, wren on the same host
//! follows it); `run -i` feeds stdin through the container's stdin fifo,
//! `run -it` is a terminal session ([`super::tty`]). SIGINT, SIGTERM and
//! SIGHUP are passed on to the container meanwhile.
//!
//! Runs in `wren`.

use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use wren_protocol::manager as api;

use super::args::{ContainerArgs, Create, Run};
use super::client::{name_req, wait_for_exit, Wrend};
use super::{stdio, tty, CliError, Global};
use crate::logfile::Follower;

/// `wren run`.
pub fn run(g: &Global, a: &Run) -> Result<i32, CliError> {
    let c = &a.container;
    let terminal = c.tty;
    let interactive = c.interactive || terminal;
    let mut req = create_request(c)?;
    req.auto_remove = a.rm && a.detach;
    req.start = a.detach;
    let mut w = Wrend::connect(&g.socket)?;
    let created: api::ContainerResponse = w.call("Create", &req, false)?;
    if a.detach {
        println!("{}", c.name);
        return Ok(0);
    }
    let log_path = created.container.log_path.clone();
    let status = if terminal {
        tty::session(g, &mut w, &c.name, "", true)?
    } else {
        foreground(g, &mut w, &c.name, &log_path, interactive)?
    };
    if a.rm {
        let mut d = api::DeleteRequest::new();
        d.name = c.name.clone();
        d.force = true;
        let _: api::ContainerResponse = w.call("Delete", &d, false)?;
    }
    Ok(status as i32)
}

/// `wren create`.
pub fn create(g: &Global, a: &Create) -> Result<i32, CliError> {
    let req = create_request(&a.container)?;
    let mut w = Wrend::connect(&g.socket)?;
    let _: api::ContainerResponse = w.call("Create", &req, false)?;
    println!("{}", a.container.name);
    Ok(0)
}

/// The Create request `run` and `create` share.
fn create_request(c: &ContainerArgs) -> Result<api::CreateRequest, CliError> {
    if c.tty && !super::tty::is_tty(0) {
        return Err(CliError::failed("-t needs a terminal on stdin"));
    }
    let mut req = api::CreateRequest::new();
    req.name = c.name.clone();
    req.bundle = c.source.bundle.as_deref().map(abs).unwrap_or_default();
    req.rootfs = c.source.rootfs.as_deref().map(abs).unwrap_or_default();
    req.args = c.command.clone();
    req.env = c.env.clone();
    req.cwd = c.cwd.clone().unwrap_or_default();
    req.restart_policy = c.restart.clone().unwrap_or_default();
    req.start_at_boot = c.start_at_boot;
    req.terminal = c.tty;
    req.stdin = c.interactive || c.tty;
    Ok(req)
}

fn abs(p: &Path) -> String {
    std::path::absolute(p)
        .unwrap_or_else(|_| p.to_owned())
        .display()
        .to_string()
}

/// A signal caught while a foreground container runs, to pass on to it.
static PENDING_SIGNAL: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(sig: libc::c_int) {
    PENDING_SIGNAL.store(sig, Ordering::Relaxed);
}

/// SIGINT, SIGTERM and SIGHUP go to the container instead of ending wren
/// (the container decides; wren exits with its status).
fn forward_signals() {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: the handler only stores into an atomic (async-signal-safe).
        unsafe { libc::signal(sig, on_signal as *const () as libc::sighandler_t) };
    }
}

/// Starts the container and prints its log until it exits.
fn foreground(
    g: &Global,
    w: &mut Wrend,
    name: &str,
    log_path: &str,
    stdin: bool,
) -> Result<u32, CliError> {
    let mut follower = Follower::open(Path::new(log_path));
    let done = wait_for_exit(&g.socket, name, "");
    let _: api::ContainerResponse = w.call("Start", &name_req(name), false)?;
    if stdin {
        let mut a = api::AttachRequest::new();
        a.name = name.to_string();
        let paths: api::AttachResponse = w.call("Attach", &a, false)?;
        let _: api::Empty = w.call("Detach", &a, false)?;
        let f = crate::fifo::open(Path::new(&paths.stdin))?;
        stdio::feed_stdin(&g.socket, name, "", File::from(f));
    }
    forward_signals();
    let pump = |f: &mut Follower| f.pump(&mut std::io::stdout().lock());
    loop {
        pump(&mut follower);
        let sig = PENDING_SIGNAL.swap(0, Ordering::Relaxed);
        if sig != 0 {
            let mut k = api::KillRequest::new();
            k.name = name.to_string();
            k.signal = sig as u32;
            if let Err(e) = w.call::<_, api::Empty>("Kill", &k, false) {
                eprintln!(
                    "wren: forward signal {sig}: {}",
                    wren_runtime::error::chain(&e)
                );
            }
        }
        match done.recv_timeout(Duration::from_millis(50)) {
            Ok(status) => {
                pump(&mut follower);
                return Ok(status?);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(CliError::failed("lost the connection to wrend"))
            }
        }
    }
}
