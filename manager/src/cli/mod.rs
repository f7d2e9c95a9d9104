//! `wren`, the command-line client of `wrend`: parses a command
//! ([`args`]), calls wrend's `wren.manager.v1.Manager` API over its unix
//! socket ([`client`]), and prints the answer ([`output`]: a table, or
//! JSON with `--json`). One file per command group: [`run`] (`run`,
//! `create`), [`exec`], [`lifecycle`] (`start`, `stop`, `kill`, `rm`,
//! `pause`, `resume`, `update`), [`checkpoint`] (`checkpoint`,
//! `restore`), [`query`] (`list`, `inspect`, `ps`,
//! `stats`), [`logs`], [`events`], [`disk`] (`system df`), [`prune`]
//! (`container prune`, `system prune`); a process's stdio is relayed by
//! [`stdio`] (pipes) and [`tty`] (interactive terminal sessions).
//!
//! Exit status: 0 on success, 1 on an error (printed as one `wren: ...`
//! line), 2 on a usage error; `run` and `exec` in the foreground exit with
//! the container process's status.
//!
//! Runs in the short-lived `wren` process.

pub mod args;
pub mod attach;
pub mod auto_update;
pub mod checkpoint;
pub mod client;
pub mod compose;
pub mod copy;
pub mod disk;
pub mod events;
pub mod exec;
pub mod health;
pub mod images;
pub mod lifecycle;
pub mod logs;
pub mod mounts;
pub mod network;
pub mod output;
pub mod prune;
#[cfg(feature = "pull")]
pub mod pull;
pub mod query;
pub mod run;
pub mod stdio;
pub mod template;
pub mod tty;
pub mod volumes;

use std::path::PathBuf;

use clap::error::{ContextKind, ErrorKind};

use args::{Cli, Command};

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

    /// An error whose message is its whole chain, printed once.
    pub fn chain(e: &(dyn std::error::Error + 'static)) -> Self {
        Self::failed(wren_runtime::error::chain(e))
    }
}

impl From<client::ClientError> for CliError {
    fn from(e: client::ClientError) -> Self {
        Self::chain(&e)
    }
}

impl From<crate::fifo::FifoError> for CliError {
    fn from(e: crate::fifo::FifoError) -> Self {
        Self::chain(&e)
    }
}

/// What every command needs: where wrend is, and how to print.
#[derive(Debug, Clone)]
pub struct Global {
    pub socket: PathBuf,
    pub json: bool,
    /// wrend's records directory: the image store and the containers'
    /// records (to see which images they use) are under it.
    pub records: PathBuf,
}

/// Runs `wren` with `argv` (the program name first); returns the exit status.
pub fn main<I, T>(argv: I) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = match args::parse(argv) {
        Ok(cli) => cli,
        Err(e) if e.kind() == ErrorKind::InvalidSubcommand => {
            let what = e
                .get(ContextKind::InvalidSubcommand)
                .map(|v| v.to_string())
                .unwrap_or_default();
            eprintln!(
                "wren: unknown command {what:?}\n\nFor a list of commands, try 'wren --help'."
            );
            return 2;
        }
        Err(e) => {
            let _ = e.print();
            return e.exit_code();
        }
    };
    match run(cli) {
        Ok(status) => status,
        Err(e) => {
            eprintln!("wren: {}", e.message);
            if e.status == 2 {
                eprintln!("\nFor more information, try 'wren --help'.");
            }
            e.status
        }
    }
}

fn run(cli: Cli) -> Result<i32, CliError> {
    let g = &cli.global;
    let global = Global {
        socket: match (&g.socket, &g.root) {
            (Some(socket), _) => socket.clone(),
            (None, Some(root)) => crate::paths::socket_under(root),
            (None, None) => crate::paths::default_socket(),
        },
        json: g.json,
        records: match &g.root {
            Some(root) => crate::paths::records_dir_under(root),
            None => PathBuf::from(crate::paths::DEFAULT_RECORDS_DIR),
        },
    };
    if g.version {
        println!("wren {}", env!("CARGO_PKG_VERSION"));
        return Ok(0);
    }
    let Some(command) = cli.command else {
        return Err(CliError::usage("no command given"));
    };
    let g = &global;
    match command {
        Command::Run(a) => run::run(g, &a),
        Command::Create(a) => run::create(g, &a),
        Command::Start(a) if a.attach || a.interactive => attach::start(g, &a),
        Command::Start(a) => lifecycle::start(g, &a.name),
        Command::Stop(a) => lifecycle::stop(g, &a),
        Command::Restart(a) => lifecycle::restart(g, &a),
        Command::Wait(a) => lifecycle::wait(g, &a.names),
        Command::Attach(a) => attach::attach(g, &a),
        Command::Kill(a) => lifecycle::kill(g, &a),
        Command::Rm(a) => lifecycle::rm(g, &a),
        Command::Pause(a) => lifecycle::pause_resume(g, &a.name, true),
        Command::Resume(a) => lifecycle::pause_resume(g, &a.name, false),
        Command::Update(a) => lifecycle::update(g, &a),
        Command::Exec(a) => exec::exec(g, &a),
        Command::List(a) => query::list(g, &a),
        Command::Inspect(a) => query::inspect(g, &a),
        Command::Ps(a) => query::ps(g, &a.name),
        Command::Stats(a) => query::stats(g, a.name.as_deref()),
        Command::Port(a) => query::port(g, &a),
        Command::Cp(a) => copy::cp(g, &a),
        Command::Logs(a) => logs::logs(g, &a),
        Command::Checkpoint(a) => checkpoint::checkpoint(g, &a),
        Command::Restore(a) => checkpoint::restore(g, &a),
        Command::Events(a) => events::events(g, &a),
        #[cfg(feature = "pull")]
        Command::Pull(a) => pull::pull(g, &a),
        #[cfg(feature = "pull")]
        Command::Login(a) => pull::login(&a),
        #[cfg(feature = "pull")]
        Command::Logout(a) => pull::logout(&a),
        #[cfg(not(feature = "pull"))]
        Command::Pull(_) | Command::Login(_) | Command::Logout(_) => Err(CliError::failed(
            "this wren was built without registry support (cargo feature \"pull\")",
        )),
        Command::Import(a) => images::import(g, &a),
        Command::Save(a) => images::save(g, &a),
        Command::Images => images::list(g),
        Command::Rmi(a) => images::rmi(g, &a),
        Command::Tag(a) => images::tag(g, &a),
        Command::Image(a) => match a.command {
            args::ImageSub::Ls => images::list(g),
            args::ImageSub::Inspect(i) => images::inspect(g, &i.image),
            args::ImageSub::Rm(a) => images::rmi(g, &a),
            args::ImageSub::Prune => images::prune(g),
            args::ImageSub::Import(a) => images::import(g, &a),
            args::ImageSub::Tag(a) => images::tag(g, &a),
        },
        Command::System(a) => match a.command {
            args::SystemSub::Df => disk::df(g),
            args::SystemSub::Prune(p) => prune::system(g, &p),
        },
        Command::Container(a) => match a.command {
            args::ContainerSub::Prune(p) => prune::containers(g, p.force),
        },
        Command::Volume(a) => match a.command {
            args::VolumeSub::Create(v) => volumes::create(g, &v.names),
            args::VolumeSub::Ls => volumes::list(g),
            args::VolumeSub::Inspect(v) => volumes::inspect(g, &v.names),
            args::VolumeSub::Rm(v) => volumes::rm(g, &v.names),
            args::VolumeSub::Prune(p) => volumes::prune(g, p.force),
        },
        Command::Network(a) => network::main(g, a),
        Command::AutoUpdate(a) => auto_update::auto_update(g, &a),
        Command::Apply(a) => compose::apply(g, &a),
        Command::Down(a) => compose::down(g, &a),
        Command::Completion(a) => {
            let mut cmd = args::command();
            clap_complete::generate(a.shell, &mut cmd, "wren", &mut std::io::stdout());
            Ok(0)
        }
        Command::Version => {
            println!("wren {}", env!("CARGO_PKG_VERSION"));
            Ok(0)
        }
    }
}
