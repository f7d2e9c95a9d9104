//! `wren-oci`: a runc-compatible command line over wren's runtime library,
//! so anything that drives runc (containerd's runc shim, Docker, Podman,
//! CRI-O, conformance suites) can drive wren. Each invocation is one short
//! process; container state lives under `--root`.
//!
//! This file parses the command line ([`cli`]), runs one command and turns
//! its result into an exit status: 0, the container's or process's own
//! status for a foreground `run` / `exec`, or 1 with the error printed
//! once on stderr and appended to `--log`.

mod about;
mod checkpoint;
mod cli;
mod events;
mod exec;
mod forward;
mod inspect;
mod lifecycle;
mod reaper;
mod tty;
mod update;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// talc on musl (docs/ARCHITECTURE.md, "wren-oci and the shim on musl").
#[cfg(target_env = "musl")]
#[global_allocator]
static HEAP: wren_runtime::musl_heap::Heap = wren_runtime::musl_heap::Heap::new();

use clap::error::ErrorKind;
use cli::{Cli, Command, Global, LogFormat};
use wren_runtime::Container;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// A usage error found after parsing (flags that cannot go together, a
/// flag wren cannot honour), printed as is.
#[derive(Debug)]
pub struct Usage(pub String);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

/// Refuse a flag wren cannot honour, naming it.
pub fn refuse(command: &str, flag: &str, why: &str) -> Result<()> {
    Err(Usage(format!("{command}: {flag} is not supported: {why}")).into())
}

fn main() -> ExitCode {
    // Must come first: this binary is also the container init.
    wren_runtime::run_if_init();
    // One container or exec per invocation.
    wren_runtime::container::one_init_per_process();
    let cli = match cli::parse(std::env::args_os()) {
        Ok(cli) => cli,
        Err(e) => return parse_failed(e),
    };
    let log = cli.global.log.clone().map(|l| (l, cli.global.log_format));
    let context = cli.command.as_ref().and_then(context);
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            let msg = wren_runtime::error::chain(&*e);
            // Runtime errors do not name the container: say it once here,
            // as the shim does. Usage errors already say what was wrong.
            let msg = match context {
                Some(c) if e.downcast_ref::<Usage>().is_none() => format!("{c}: {msg}"),
                _ => msg,
            };
            fail(log.as_ref(), &msg)
        }
    }
}

/// `<command> <id>` of a command that acts on one container.
fn context(command: &Command) -> Option<String> {
    let (name, id) = match command {
        Command::Create(c) => ("create", &c.id),
        Command::Run(c) => ("run", &c.id),
        Command::Start(c) => ("start", &c.id),
        Command::State(c) => ("state", &c.id),
        Command::Kill(c) => ("kill", &c.id),
        Command::Delete(c) => ("delete", &c.id),
        Command::Exec(c) => ("exec", &c.id),
        Command::Ps(c) => ("ps", &c.id),
        Command::Pause(c) => ("pause", &c.id),
        Command::Resume(c) => ("resume", &c.id),
        Command::Update(c) => ("update", &c.id),
        Command::Events(c) => ("events", &c.id),
        Command::Checkpoint(c) => ("checkpoint", &c.id),
        Command::Restore(c) => ("restore", &c.id),
        _ => return None,
    };
    Some(format!("{name} {id}"))
}

/// `--help` and `--version` go to stdout with status 0; anything else is
/// a usage error, status 1 as with every runc error.
fn parse_failed(e: clap::Error) -> ExitCode {
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = e.print();
            ExitCode::SUCCESS
        }
        _ => {
            // Parsing failed, so --log comes from a plain look at argv.
            let log = log_from_argv(std::env::args().skip(1));
            let msg = e.to_string();
            if let Some(log) = &log {
                append_log(log, msg.lines().next().unwrap_or_default());
            }
            eprint!("{msg}");
            ExitCode::FAILURE
        }
    }
}

/// `--log FILE` / `--log=FILE` and `--log-format` from raw arguments.
fn log_from_argv(args: impl Iterator<Item = String>) -> Option<(PathBuf, LogFormat)> {
    let (mut log, mut format) = (None, LogFormat::Text);
    let mut args = args.take_while(|a| a != "--");
    while let Some(a) = args.next() {
        let (flag, value) = match a.split_once('=') {
            Some((f, v)) => (f.to_string(), Some(v.to_string())),
            None => (a, None),
        };
        let mut value = || value.clone().or_else(|| args.next());
        match flag.as_str() {
            "--log" => log = value().map(PathBuf::from),
            "--log-format" if value().as_deref() == Some("json") => format = LogFormat::Json,
            _ => {}
        }
    }
    log.map(|l| (l, format))
}

/// Print the error once; also to `--log` (runc's callers read it).
fn fail(log: Option<&(PathBuf, LogFormat)>, msg: &str) -> ExitCode {
    if let Some(log) = log {
        append_log(log, msg);
    }
    // "error" as runc's level=error line has it: callers grep for it.
    eprintln!("wren-oci: error: {msg}");
    ExitCode::FAILURE
}

fn append_log((path, format): &(PathBuf, LogFormat), msg: &str) {
    let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    else {
        return;
    };
    let time = wren_runtime::state::rfc3339_now();
    let line = match format {
        LogFormat::Json => {
            serde_json::json!({"level": "error", "msg": msg, "time": time}).to_string()
        }
        LogFormat::Text => format!("time=\"{time}\" level=error msg={msg:?}"),
    };
    let _ = writeln!(f, "{line}");
}

fn run(cli: Cli) -> Result<ExitCode> {
    let g = &cli.global;
    if g.version {
        return about::version();
    }
    let Some(command) = cli.command else {
        return Err(Usage("missing command; see `wren-oci --help`".into()).into());
    };
    let ok = |r: Result<()>| r.map(|()| ExitCode::SUCCESS);
    match command {
        Command::Create(c) => ok(lifecycle::create(g, c)),
        Command::Run(r) => lifecycle::run(g, r),
        Command::Start(c) => ok(load(g, &c.id)?.start().map_err(Into::into)),
        Command::State(c) => ok(inspect::state(g, &c.id)),
        Command::Kill(k) => ok(lifecycle::kill(g, k)),
        Command::Delete(d) => ok(lifecycle::delete(g, d)),
        Command::Exec(e) => exec::exec(g, *e),
        Command::Ps(p) => ok(inspect::ps(g, p)),
        Command::List(l) => ok(inspect::list(g, l)),
        Command::Pause(c) => ok(load(g, &c.id)?.pause().map_err(Into::into)),
        Command::Resume(c) => ok(load(g, &c.id)?.resume().map_err(Into::into)),
        Command::Update(u) => ok(update::update(g, *u)),
        Command::Events(e) => ok(events::command(g, e)),
        Command::Features => ok(about::features()),
        Command::Spec(s) => ok(about::spec(s)),
        Command::Version => about::version(),
        Command::Completion { shell } => {
            let mut cmd = cli::command();
            clap_complete::generate(shell, &mut cmd, "wren-oci", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Command::Checkpoint(c) => ok(checkpoint::checkpoint(g, *c)),
        Command::Restore(r) => checkpoint::restore(g, *r),
    }
}

/// The container `id` under `--root`.
fn load(g: &Global, id: &str) -> Result<Container> {
    Ok(Container::load(&g.root, id)?)
}

/// `p` made absolute against our cwd (pid files: runc's callers may pass
/// relative ones, and the runtime writes them from elsewhere).
fn absolute(p: &Path) -> Result<PathBuf> {
    Ok(if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()?.join(p)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_flags_found_in_raw_arguments() {
        let argv = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            log_from_argv(argv(&["--log", "/l", "--bogus", "x"]).into_iter()),
            Some(("/l".into(), LogFormat::Text))
        );
        assert_eq!(
            log_from_argv(argv(&["--log-format=json", "--log=/l"]).into_iter()),
            Some(("/l".into(), LogFormat::Json))
        );
        assert_eq!(
            log_from_argv(argv(&["exec", "x", "--", "--log", "/l"]).into_iter()),
            None
        );
    }
}
