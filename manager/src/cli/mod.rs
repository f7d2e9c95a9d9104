//! `wren`, the command-line client of `wrend`: parses a command, calls
//! wrend's `wren.manager.v1.Manager` API over its unix socket, and prints
//! the answer (a table, or JSON with `--json`). Exit status: 0 on success,
//! 1 on an error (printed as one `wren: ...` line), 2 on a usage error; `run`
//! and `exec` in the foreground exit with the container process's status.
//!
//! Runs in the short-lived `wren` process.

pub mod args;
pub mod client;
pub mod commands;
pub mod completion;
pub mod output;
pub mod tty;

use std::path::PathBuf;

/// A failed command: what to print, and the exit status.
#[derive(Debug)]
pub struct CliError {
    pub message: String,
    pub status: i32,
}

impl CliError {
    pub fn usage(msg: impl Into<String>) -> Self {
        Self {
            message: msg.into(),
            status: 2,
        }
    }

    pub fn failed(msg: impl Into<String>) -> Self {
        Self {
            message: msg.into(),
            status: 1,
        }
    }
}

impl From<client::ClientError> for CliError {
    fn from(e: client::ClientError) -> Self {
        Self::failed(wren_runtime::error::chain(&e))
    }
}

/// Global options before the command.
#[derive(Debug, Clone)]
pub struct Global {
    pub socket: PathBuf,
    pub json: bool,
}

pub const USAGE: &str = "usage: wren [--root DIR | --socket PATH] COMMAND [ARGS...]

commands:
  run [-d] [--rm] [-i] [-t] [--restart POLICY] [--start-at-boot] [-e K=V] [-w DIR]
      (--rootfs DIR | --bundle DIR) NAME [-- CMD ARGS...]
  create [same options as run, without -d/--rm] NAME [-- CMD ARGS...]
  start NAME            stop [-t SECS] [-s SIGNAL] NAME    kill [-s SIGNAL] [--all] NAME
  rm [-f] NAME...       pause NAME    resume NAME
  exec [-d] [-i] [-t] [-e K=V] [-w DIR] NAME -- CMD ARGS...
  list|ls [--json]      inspect NAME  ps [--json] NAME     stats [--json] NAME
  update [--memory BYTES] [--cpu-shares N] [--pids-limit N] [--resources FILE] NAME
  logs [-f] [--tail N] NAME           events [--json]      completion bash

restart policies: no, on-failure[:N], always, unless-stopped";

/// Runs `wren` with `argv` (without the program name); returns the exit status.
pub fn main(argv: Vec<String>) -> i32 {
    match run(argv) {
        Ok(status) => status,
        Err(e) => {
            eprintln!("wren: {}", e.message);
            if e.status == 2 {
                eprintln!("{USAGE}");
            }
            e.status
        }
    }
}

fn run(argv: Vec<String>) -> Result<i32, CliError> {
    let mut global = Global {
        socket: PathBuf::from(crate::wrend::config::DEFAULT_STATE_DIR)
            .join(crate::wrend::config::SOCKET_NAME),
        json: false,
    };
    let mut rest = argv.into_iter().peekable();
    while let Some(a) = rest.peek().cloned() {
        match a.as_str() {
            "--root" | "--socket" => {
                rest.next();
                let v = rest
                    .next()
                    .ok_or_else(|| CliError::usage(format!("{a} needs a value")))?;
                global.socket = if a == "--root" {
                    crate::wrend::config::Config::with_root(&PathBuf::from(v)).socket
                } else {
                    PathBuf::from(v)
                };
            }
            "--json" => {
                rest.next();
                global.json = true;
            }
            "-h" | "--help" | "help" => {
                println!("{USAGE}");
                return Ok(0);
            }
            "-v" | "--version" | "version" => {
                println!("wren {}", env!("CARGO_PKG_VERSION"));
                return Ok(0);
            }
            _ => break,
        }
    }
    let Some(cmd) = rest.next() else {
        return Err(CliError::usage("no command given"));
    };
    let args: Vec<String> = rest.collect();
    commands::dispatch(&global, &cmd, args)
}
