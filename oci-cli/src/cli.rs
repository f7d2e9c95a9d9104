//! The command line of `wren-oci`, declared with clap: runc's global flags,
//! its commands and their flags with runc's short forms, so that
//! containerd, Docker, Podman (conmon) and scripts written for runc can
//! drive wren. Runs in the `wren-oci` process, before anything else.
//!
//! Parsing follows runc where tools depend on it:
//! - flags may come before or after the container id, and global flags
//!   after the command too; `--` ends the flags;
//! - every flag takes `--flag=value`, boolean ones included
//!   (`--detach=true`, `--detach=false`); a boolean never takes the next
//!   word as its value, so `exec -t ID sh` runs `sh`;
//! - in `exec` and `ps`, everything after the first word of the trailing
//!   command is that command's own (`exec ID sh -c 'exit 3'`).
//!
//! Flags that wren cannot honour are declared too, so that the command
//! refuses them naming the flag instead of calling it unknown; flags that
//! runc itself treats as no-ops are accepted.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::builder::BoolishValueParser;
use clap::{ArgAction, Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};

/// Where container state lives unless `--root` says otherwise.
pub const DEFAULT_ROOT: &str = "/run/wren-oci";

/// `wren-oci [GLOBAL FLAGS] COMMAND [FLAGS] ARGS`.
#[derive(Debug, Parser)]
#[command(
    name = "wren-oci",
    about = "A runc-compatible OCI runtime (wren)",
    disable_version_flag = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// runc's global flags, accepted before or after the command.
#[derive(Debug, Args)]
#[command(next_help_heading = "Global options")]
pub struct Global {
    /// Directory for container state (keep it on a tmpfs)
    #[arg(long, global = true, value_name = "DIR", default_value = DEFAULT_ROOT)]
    pub root: PathBuf,
    /// Also append errors to FILE (runc's callers read it on failure)
    #[arg(long, global = true, value_name = "FILE")]
    pub log: Option<PathBuf>,
    /// Format of the --log lines
    #[arg(long, global = true, value_enum, value_name = "FORMAT", default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Accepted for runc compatibility: wren-oci logs errors only
    #[arg(long, global = true)]
    pub debug: bool,
    /// Accepted: a cgroupsPath of the form slice:prefix:name is placed under
    /// that slice either way (wren writes cgroupfs itself)
    #[arg(long, global = true)]
    pub systemd_cgroup: bool,
    /// Accepted for runc compatibility (true, false or auto); before the
    /// command only, as `spec --rootless` is another flag
    #[arg(long, value_name = "MODE", value_parser = ["true", "false", "auto"])]
    pub rootless: Option<String>,
    /// The criu binary for checkpoint and restore (default: criu on PATH)
    #[arg(long, global = true, value_name = "PATH")]
    pub criu: Option<PathBuf>,
    /// Print the version and exit
    #[arg(short = 'v', long, help_heading = "Options")]
    pub version: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a container; its process waits before execve until `start`
    Create(Create),
    /// Create and start a container; in the foreground, exit with its status
    Run(Run),
    /// Start a created container
    Start(Id),
    /// Print the OCI state of a container as JSON
    State(Id),
    /// Send a signal (default SIGTERM) to the container's init
    Kill(Kill),
    /// Delete a container and what it holds on the host
    Delete(Delete),
    /// Run a new process inside a running container
    Exec(Box<Exec>),
    /// List the processes of a container
    Ps(Ps),
    /// List the containers under --root
    List(List),
    /// Freeze every process of a container
    Pause(Id),
    /// Thaw a paused container
    Resume(Id),
    /// Change the resource limits of a running container
    Update(Box<Update>),
    /// Print stats and OOM events of a container
    Events(Events),
    /// Print what this runtime supports, as JSON
    Features,
    /// Write a default config.json
    Spec(Spec),
    /// Print the version
    Version,
    /// Print a shell completion script
    #[command(hide = true)]
    Completion {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Checkpoint a running container with CRIU
    Checkpoint(Box<Checkpoint>),
    /// Restore a container from a CRIU checkpoint
    Restore(Box<Restore>),
}

/// Flags `checkpoint` and `restore` share (runc's).
#[derive(Debug, Args)]
pub struct CriuArgs {
    /// Directory of the checkpoint images
    #[arg(long, value_name = "DIR")]
    pub image_path: Option<PathBuf>,
    /// Directory for criu's log and temporary files (default: the images')
    #[arg(long, value_name = "DIR")]
    pub work_path: Option<PathBuf>,
    /// Allow open TCP connections
    #[arg(long)]
    pub tcp_established: bool,
    /// Allow external unix sockets
    #[arg(long)]
    pub ext_unix_sk: bool,
    /// Allow shell jobs (a controlling terminal)
    #[arg(long)]
    pub shell_job: bool,
    /// Handle file locks
    #[arg(long)]
    pub file_locks: bool,
    /// Cgroups mode: soft, full, strict or ignore
    #[arg(long, value_name = "MODE")]
    pub manage_cgroups_mode: Option<String>,
    /// Namespace to leave out of the checkpoint and restore empty (network)
    #[arg(long, value_name = "NS")]
    pub empty_ns: Vec<String>,
    /// Let pages be restored on demand (userfaultfd)
    #[arg(long)]
    pub lazy_pages: bool,
    /// Enable auto deduplication of memory images
    #[arg(long)]
    pub auto_dedup: bool,
}

#[derive(Debug, Args)]
pub struct Checkpoint {
    #[command(flatten)]
    pub criu: CriuArgs,
    /// A previous (pre-dump) checkpoint, relative to --image-path
    #[arg(long, value_name = "DIR")]
    pub parent_path: Option<PathBuf>,
    /// Leave the container running after the checkpoint
    #[arg(long)]
    pub leave_running: bool,
    /// Dump memory only, keep the container running
    #[arg(long)]
    pub pre_dump: bool,
    /// Send pages to a criu page server at ADDRESS:PORT
    #[arg(long, value_name = "ADDRESS:PORT")]
    pub page_server: Option<String>,
    /// criu writes \0 to this fd when the lazy-pages server is ready
    #[arg(long, value_name = "FD")]
    pub status_fd: Option<i32>,
    /// Not supported: refused
    #[arg(long)]
    pub tcp_skip_in_flight: bool,
    /// Not supported: refused
    #[arg(long)]
    pub link_remap: bool,
    #[arg(value_name = "CONTAINER_ID")]
    pub id: String,
}

#[derive(Debug, Args)]
pub struct Restore {
    #[command(flatten)]
    pub criu: CriuArgs,
    /// The bundle directory (config.json and the root filesystem)
    #[arg(short, long, value_name = "DIR", default_value = ".")]
    pub bundle: PathBuf,
    /// Return once the container is restored
    #[arg(short, long)]
    pub detach: bool,
    /// Write the restored init's pid to FILE
    #[arg(long, value_name = "FILE")]
    pub pid_file: Option<PathBuf>,
    /// Send the new pty master to this AF_UNIX socket (process.terminal)
    #[arg(long, value_name = "PATH")]
    pub console_socket: Option<PathBuf>,
    /// Do not become the subreaper of processes the container leaves behind
    #[arg(long)]
    pub no_subreaper: bool,
    /// Accepted: criu restores the container's own root
    #[arg(long)]
    pub no_pivot: bool,
    /// Not supported: refused
    #[arg(long, value_name = "PROFILE")]
    pub lsm_profile: Option<String>,
    /// Not supported: refused
    #[arg(long, value_name = "CONTEXT")]
    pub lsm_mount_context: Option<String>,
    #[arg(value_name = "CONTAINER_ID")]
    pub id: String,
}

/// A command that takes a container id and nothing else.
#[derive(Debug, Args)]
pub struct Id {
    #[arg(value_name = "CONTAINER_ID")]
    pub id: String,
}

/// Flags shared by `create` and `run`.
#[derive(Debug, Args)]
pub struct CreateFlags {
    /// The bundle directory (config.json and the root filesystem)
    #[arg(short, long, value_name = "DIR", default_value = ".")]
    pub bundle: PathBuf,
    /// Write the container init's pid to FILE
    #[arg(long, value_name = "FILE")]
    pub pid_file: Option<PathBuf>,
    /// Send the pty master to this AF_UNIX socket (process.terminal)
    #[arg(long, value_name = "PATH")]
    pub console_socket: Option<PathBuf>,
    /// Not supported: refused
    #[arg(long, value_name = "PATH")]
    pub pidfd_socket: Option<PathBuf>,
    /// Pass N more file descriptors (from fd 3) to the container
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub preserve_fds: u32,
    /// Use chroot-like MS_MOVE instead of pivot_root (rootfs on a ramdisk)
    #[arg(long)]
    pub no_pivot: bool,
    /// Keep the caller's session keyring instead of a new one for the
    /// container
    #[arg(long)]
    pub no_new_keyring: bool,
}

#[derive(Debug, Args)]
pub struct Create {
    #[command(flatten)]
    pub flags: CreateFlags,
    /// Accepted: create always returns once the container is created
    #[arg(short, long, hide = true)]
    pub detach: bool,
    #[arg(value_name = "CONTAINER_ID")]
    pub id: String,
}

#[derive(Debug, Args)]
pub struct Run {
    #[command(flatten)]
    pub flags: CreateFlags,
    /// Return once the container has started
    #[arg(short, long)]
    pub detach: bool,
    /// Do not delete the container after it exits
    #[arg(long)]
    pub keep: bool,
    /// Do not become the subreaper of processes the container leaves behind
    #[arg(long)]
    pub no_subreaper: bool,
    #[arg(value_name = "CONTAINER_ID")]
    pub id: String,
}

#[derive(Debug, Args)]
pub struct Kill {
    /// Signal every process of the container, not just its init
    #[arg(short, long)]
    pub all: bool,
    #[arg(value_name = "CONTAINER_ID")]
    pub id: String,
    /// A number, a name (KILL, SIGKILL, kill) or RTMIN+n / RTMAX-n
    #[arg(value_name = "SIGNAL", default_value = "SIGTERM", value_parser = signal)]
    pub signal: i32,
}

fn signal(s: &str) -> Result<i32, wren_runtime::signal::UnknownSignal> {
    wren_runtime::signal::parse(s)
}

#[derive(Debug, Args)]
pub struct Delete {
    /// Kill a running container first; a missing one is no error
    #[arg(short, long)]
    pub force: bool,
    #[arg(value_name = "CONTAINER_ID")]
    pub id: String,
}

#[derive(Debug, Args)]
pub struct Exec {
    /// Take the whole process from an OCI process.json
    #[arg(short, long, value_name = "FILE")]
    pub process: Option<PathBuf>,
    /// Allocate a pseudo-terminal
    #[arg(short, long)]
    pub tty: bool,
    /// Return once the process has started
    #[arg(short, long)]
    pub detach: bool,
    /// Write the process's pid to FILE
    #[arg(long, value_name = "FILE")]
    pub pid_file: Option<PathBuf>,
    /// Send the pty master to this AF_UNIX socket
    #[arg(long, value_name = "PATH")]
    pub console_socket: Option<PathBuf>,
    /// Not supported: refused
    #[arg(long, value_name = "PATH")]
    pub pidfd_socket: Option<PathBuf>,
    /// Working directory inside the container
    #[arg(long, value_name = "DIR")]
    pub cwd: Option<String>,
    /// Add an environment variable (repeatable)
    #[arg(short, long, value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Numeric user and group to run as
    #[arg(short, long, value_name = "UID[:GID]")]
    pub user: Option<String>,
    /// Add a supplementary group (repeatable)
    #[arg(short = 'g', long, value_name = "GID")]
    pub additional_gids: Vec<u32>,
    /// SELinux label for the process
    #[arg(long, value_name = "LABEL")]
    pub process_label: Option<String>,
    /// AppArmor profile for the process
    #[arg(long, value_name = "PROFILE")]
    pub apparmor: Option<String>,
    /// Set (or with =false clear) no_new_privileges for the process
    #[arg(
        long,
        value_name = "BOOL",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_parser = BoolishValueParser::new(),
        hide_possible_values = true
    )]
    pub no_new_privs: Option<bool>,
    /// Add a capability to every set of the process (repeatable)
    #[arg(short, long, value_name = "CAP")]
    pub cap: Vec<String>,
    /// Pass N more file descriptors (from fd 3) to the process
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub preserve_fds: u32,
    /// Start the process in this existing sub-cgroup of the container's
    /// cgroup (relative path; one for every controller)
    #[arg(long, value_name = "PATH")]
    pub cgroup: Vec<String>,
    /// Exec into a paused container too: the process runs once it is resumed
    #[arg(long)]
    pub ignore_paused: bool,
    #[arg(value_name = "CONTAINER_ID")]
    pub id: String,
    /// The command and its arguments (unless --process)
    #[arg(
        value_name = "COMMAND",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct Ps {
    /// Output format
    #[arg(short, long, value_enum, value_name = "FORMAT", default_value_t = Format::Table)]
    pub format: Format,
    #[arg(value_name = "CONTAINER_ID")]
    pub id: String,
    /// ps(1) options (refused unless empty or with --format json, where
    /// runc ignores them too)
    #[arg(
        value_name = "PS_ARGS",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub ps_args: Vec<String>,
}

#[derive(Debug, Args)]
pub struct List {
    /// Output format
    #[arg(short, long, value_enum, value_name = "FORMAT", default_value_t = Format::Table)]
    pub format: Format,
    /// Print the ids only
    #[arg(short, long)]
    pub quiet: bool,
}

/// `update`: either a whole LinuxResources JSON (`--resources`), or the
/// per-resource flags; not both.
#[derive(Debug, Args)]
pub struct Update {
    /// LinuxResources JSON from FILE, or from stdin with -
    #[arg(short, long, value_name = "FILE")]
    pub resources: Option<String>,
    /// Memory limit in bytes (k, m, g suffixes; -1 for none)
    #[arg(long, value_name = "BYTES", value_parser = size, allow_negative_numbers = true)]
    pub memory: Option<i64>,
    /// Memory soft limit in bytes
    #[arg(long, value_name = "BYTES", value_parser = size, allow_negative_numbers = true)]
    pub memory_reservation: Option<i64>,
    /// Memory plus swap limit in bytes
    #[arg(long, value_name = "BYTES", value_parser = size, allow_negative_numbers = true)]
    pub memory_swap: Option<i64>,
    /// Accepted and ignored, as runc does (kernel memory limits are gone)
    #[arg(long, value_name = "BYTES", hide = true)]
    pub kernel_memory: Option<String>,
    /// Accepted and ignored, as runc does
    #[arg(long, value_name = "BYTES", hide = true)]
    pub kernel_memory_tcp: Option<String>,
    /// CPU shares (relative weight)
    #[arg(long, visible_alias = "cpu-shares", value_name = "N")]
    pub cpu_share: Option<u64>,
    /// CFS quota in microseconds per period
    #[arg(long, value_name = "US", allow_negative_numbers = true)]
    pub cpu_quota: Option<i64>,
    /// CFS period in microseconds
    #[arg(long, value_name = "US")]
    pub cpu_period: Option<u64>,
    /// CFS burst in microseconds
    #[arg(long, value_name = "US")]
    pub cpu_burst: Option<u64>,
    /// Realtime period in microseconds
    #[arg(long, value_name = "US")]
    pub cpu_rt_period: Option<u64>,
    /// Realtime runtime in microseconds
    #[arg(long, value_name = "US", allow_negative_numbers = true)]
    pub cpu_rt_runtime: Option<i64>,
    /// SCHED_IDLE for the cgroup (1) or not (0)
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub cpu_idle: Option<i64>,
    /// CPUs the container may use (0-3, 5)
    #[arg(long, value_name = "CPUS")]
    pub cpuset_cpus: Option<String>,
    /// Memory nodes the container may use
    #[arg(long, value_name = "NODES")]
    pub cpuset_mems: Option<String>,
    /// Maximum number of tasks (-1 for none)
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub pids_limit: Option<i64>,
    /// Block IO weight (10 to 1000)
    #[arg(long, value_name = "N")]
    pub blkio_weight: Option<u16>,
    /// Not supported: refused (no Intel RDT)
    #[arg(long, value_name = "SCHEMA")]
    pub l3_cache_schema: Option<String>,
    /// Not supported: refused (no Intel RDT)
    #[arg(long, value_name = "SCHEMA")]
    pub mem_bw_schema: Option<String>,
    #[arg(value_name = "CONTAINER_ID")]
    pub id: String,
}

fn size(s: &str) -> Result<i64, String> {
    parse_size(s).ok_or_else(|| format!("{s:?} is not a size (a number with k, m or g)"))
}

/// A number of bytes with an optional binary k/m/g/t suffix (`64m`,
/// `64MiB`, `64mb`), or -1.
pub fn parse_size(s: &str) -> Option<i64> {
    let s = s.trim();
    let lower = s.to_ascii_lowercase();
    let digits_end = lower
        .find(|c: char| !(c.is_ascii_digit() || c == '-'))
        .unwrap_or(lower.len());
    let (num, unit) = lower.split_at(digits_end);
    let shift = match unit.trim_end_matches("ib").trim_end_matches('b') {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        _ => return None,
    };
    num.parse::<i64>().ok()?.checked_mul(1 << shift)
}

#[derive(Debug, Args)]
pub struct Events {
    /// Print the stats once and exit
    #[arg(long)]
    pub stats: bool,
    /// Time between stats (Go duration: 5s, 1m30s, 500ms)
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = interval)]
    pub interval: std::time::Duration,
    #[arg(value_name = "CONTAINER_ID")]
    pub id: String,
}

fn interval(s: &str) -> Result<std::time::Duration, String> {
    crate::events::parse_interval(s).ok_or_else(|| format!("{s:?} is not a duration"))
}

#[derive(Debug, Args)]
pub struct Spec {
    /// Where to write config.json
    #[arg(short, long, value_name = "DIR", default_value = ".")]
    pub bundle: PathBuf,
    /// Not supported: refused
    #[arg(long)]
    pub rootless: bool,
}

/// The whole command tree, with runc's booleans (see [`runc_booleans`]).
pub fn command() -> clap::Command {
    runc_booleans(Cli::command())
}

/// Parse `argv` (with the program name first).
///
/// Building clap's whole tree (twenty commands, two hundred flags) is most
/// of what parsing costs, and every `wren-oci run` pays it. So a line whose
/// command can be told from a plain look is parsed against a tree with
/// that one command, made from the same definitions; help, completions
/// and every error take the whole tree, so what a user reads is the same.
pub fn parse<I, T>(argv: I) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let argv: Vec<OsString> = argv.into_iter().map(Into::into).collect();
    if let Some(cmd) = command_name(&argv).and_then(with_one_command) {
        if let Ok(m) = runc_booleans(cmd).try_get_matches_from(&argv) {
            if let Ok(cli) = Cli::from_arg_matches(&m) {
                return Ok(cli);
            }
        }
    }
    let matches = command().try_get_matches_from(&argv)?;
    Cli::from_arg_matches(&matches)
}

/// The command word of `argv`: the first word after the global flags (and
/// their values), if nothing before it is unusual.
fn command_name(argv: &[OsString]) -> Option<&str> {
    let mut words = argv.iter().skip(1).map(|a| a.to_str());
    while let Some(word) = words.next() {
        let word = word?;
        if !word.starts_with('-') {
            return Some(word);
        }
        match word {
            "--root" | "--log" | "--log-format" | "--rootless" | "--criu" => {
                words.next()?;
            }
            "--debug" | "--systemd-cgroup" => {}
            _ if word.starts_with("--") && word.contains('=') => {}
            _ => return None,
        }
    }
    None
}

/// The top-level flags and one command, as [`command`] defines them.
fn with_one_command(name: &str) -> Option<clap::Command> {
    let top = Global::augment_args(clap::Command::new("wren-oci").disable_version_flag(true));
    let sub = match name {
        "create" => Create::augment_args(clap::Command::new("create")),
        "run" => Run::augment_args(clap::Command::new("run")),
        "start" => Id::augment_args(clap::Command::new("start")),
        "state" => Id::augment_args(clap::Command::new("state")),
        "kill" => Kill::augment_args(clap::Command::new("kill")),
        "delete" => Delete::augment_args(clap::Command::new("delete")),
        "exec" => Exec::augment_args(clap::Command::new("exec")),
        "ps" => Ps::augment_args(clap::Command::new("ps")),
        "list" => List::augment_args(clap::Command::new("list")),
        "pause" => Id::augment_args(clap::Command::new("pause")),
        "resume" => Id::augment_args(clap::Command::new("resume")),
        "update" => Update::augment_args(clap::Command::new("update")),
        "events" => Events::augment_args(clap::Command::new("events")),
        "features" => clap::Command::new("features"),
        "checkpoint" => Checkpoint::augment_args(clap::Command::new("checkpoint")),
        "restore" => Restore::augment_args(clap::Command::new("restore")),
        "version" => clap::Command::new("version"),
        _ => return None,
    };
    Some(top.subcommand(sub))
}

/// Every boolean flag of every command takes an optional `=value` (never
/// the next word), and any flag given twice keeps its last value, as with
/// Go's flag package that runc's callers are written against.
fn runc_booleans(cmd: clap::Command) -> clap::Command {
    let cmd = cmd.args_override_self(true).mut_args(|a| {
        if matches!(a.get_action(), ArgAction::SetTrue) {
            a.action(ArgAction::Set)
                .num_args(0..=1)
                .require_equals(true)
                .default_missing_value("true")
                .default_value("false")
                .value_name("BOOL")
                .value_parser(BoolishValueParser::new())
                .hide_default_value(true)
                .hide_possible_values(true)
        } else {
            a
        }
    });
    cmd.mut_subcommands(runc_booleans)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::error::ErrorKind;

    fn p(args: &[&str]) -> Result<Cli, clap::Error> {
        parse(std::iter::once("wren-oci").chain(args.iter().copied()))
    }

    fn ok(args: &[&str]) -> Cli {
        p(args).unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    fn err(args: &[&str]) -> String {
        match p(args) {
            Ok(c) => panic!("{args:?} parsed: {c:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn the_tree_is_consistent() {
        command().debug_assert();
    }

    #[test]
    fn every_command_has_help() {
        let names: Vec<String> = command()
            .get_subcommands()
            .map(|s| s.get_name().to_string())
            .collect();
        assert!(names.len() >= 17, "{names:?}");
        for name in &names {
            let name = name.as_str();
            for flag in ["--help", "-h"] {
                let e = p(&[name, flag]).expect_err(name);
                assert_eq!(e.kind(), ErrorKind::DisplayHelp, "{name} {flag}: {e}");
                assert!(e.to_string().contains("Usage:"), "{name}: {e}");
            }
            let e = p(&["help", name]).expect_err(name);
            assert_eq!(e.kind(), ErrorKind::DisplayHelp, "help {name}");
        }
        assert_eq!(p(&["--help"]).unwrap_err().kind(), ErrorKind::DisplayHelp);
        assert_eq!(p(&["help"]).unwrap_err().kind(), ErrorKind::DisplayHelp);
        let help = p(&["create", "--help"]).unwrap_err().to_string();
        for flag in [
            "--bundle",
            "--pid-file",
            "--console-socket",
            "--no-pivot",
            "--preserve-fds",
        ] {
            assert!(help.contains(flag), "{flag} in {help}");
        }
    }

    #[test]
    fn every_command_parses_a_minimal_line() {
        for line in [
            "create c",
            "run c",
            "start c",
            "state c",
            "kill c",
            "delete c",
            "exec c true",
            "ps c",
            "list",
            "pause c",
            "resume c",
            "update c",
            "events c",
            "features",
            "spec",
            "spec --rootless",
            "version",
            "completion bash",
            "checkpoint c",
            "restore --image-path x c",
        ] {
            let args: Vec<&str> = line.split(' ').collect();
            let c = ok(&args);
            assert!(c.command.is_some(), "{line}");
        }
        let Some(Command::Spec(s)) = ok(&["--rootless=true", "spec", "--rootless"]).command else {
            panic!()
        };
        assert!(s.rootless);
    }

    #[test]
    fn one_command_trees_parse_as_the_whole_tree() {
        let whole = |line: &[&str]| {
            let argv = std::iter::once("wren-oci").chain(line.iter().copied());
            let m = command().try_get_matches_from(argv).unwrap();
            format!("{:?}", Cli::from_arg_matches(&m).unwrap())
        };
        for line in [
            &[
                "--root",
                "/r",
                "--debug",
                "create",
                "c",
                "-b",
                "/b",
                "--no-pivot",
            ][..],
            &[
                "--log=/l",
                "--systemd-cgroup=true",
                "run",
                "-d=false",
                "--keep",
                "c",
            ],
            &["start", "c", "--root", "/x"],
            &["state", "c"],
            &["kill", "--all", "c", "9"],
            &["delete", "-f", "c"],
            &[
                "exec",
                "-t",
                "-e",
                "A=1",
                "--no-new-privs",
                "c",
                "sh",
                "-c",
                "x",
            ],
            &["ps", "-f", "json", "c"],
            &["list", "-q"],
            &["pause", "c"],
            &["resume", "c"],
            &["update", "--memory=1m", "-r", "-", "c"],
            &["events", "--interval=1s", "c"],
            &["features"],
            &["version"],
            &["--rootless", "true", "--criu", "x", "list"],
        ] {
            let argv: Vec<OsString> = std::iter::once("wren-oci")
                .chain(line.iter().copied())
                .map(OsString::from)
                .collect();
            let name = command_name(&argv).unwrap();
            let tree = runc_booleans(with_one_command(name).unwrap());
            let fast = Cli::from_arg_matches(&tree.try_get_matches_from(&argv).unwrap()).unwrap();
            assert_eq!(format!("{fast:?}"), whole(line), "{line:?}");
        }
        let name = |line: &[&str]| {
            let argv: Vec<OsString> = std::iter::once("wren-oci")
                .chain(line.iter().copied())
                .map(OsString::from)
                .collect();
            command_name(&argv).map(str::to_string)
        };
        assert_eq!(name(&["--help", "run"]), None);
        assert_eq!(name(&["--bogus", "run"]), None);
        assert_eq!(name(&["--root"]), None);
        assert_eq!(name(&["help", "run"]).as_deref(), Some("help"));
        assert!(with_one_command("help").is_none());
    }

    #[test]
    fn globals_before_and_after_the_command() {
        let c = ok(&[
            "--root",
            "/r",
            "--log=/l",
            "--log-format",
            "json",
            "--debug",
            "--systemd-cgroup",
            "--rootless=auto",
            "--criu",
            "/usr/sbin/criu",
            "state",
            "x",
        ]);
        assert_eq!(c.global.root, PathBuf::from("/r"));
        assert_eq!(c.global.log, Some(PathBuf::from("/l")));
        assert_eq!(c.global.log_format, LogFormat::Json);
        assert!(c.global.debug && c.global.systemd_cgroup);
        let c = ok(&["state", "x", "--root=/s"]);
        assert_eq!(c.global.root, PathBuf::from("/s"));
        assert!(matches!(c.command, Some(Command::State(Id { ref id })) if id == "x"));
        let c = ok(&["state", "x"]);
        assert_eq!(c.global.root, PathBuf::from(DEFAULT_ROOT));
        assert_eq!(c.global.log_format, LogFormat::Text);
        assert!(err(&["--log-format", "xml", "list"]).contains("xml"));
        assert!(err(&["--rootless", "maybe", "list"]).contains("maybe"));
        assert!(ok(&["-v"]).global.version && ok(&["--version"]).global.version);
        assert!(ok(&[]).command.is_none());
    }

    #[test]
    fn flags_after_the_container_id() {
        let Some(Command::Create(c)) = ok(&["create", "ID", "--bundle", "/b"]).command else {
            panic!()
        };
        assert_eq!((c.id.as_str(), c.flags.bundle.to_str()), ("ID", Some("/b")));
        let Some(Command::Run(r)) = ok(&["run", "ID", "-d", "-b=/b", "--keep"]).command else {
            panic!()
        };
        assert!(r.detach && r.keep);
        assert_eq!(r.flags.bundle, PathBuf::from("/b"));
        let Some(Command::Delete(d)) = ok(&["delete", "ID", "--force"]).command else {
            panic!()
        };
        assert!(d.force);
        let Some(Command::Kill(k)) = ok(&["kill", "ID", "KILL", "--all"]).command else {
            panic!()
        };
        assert!(k.all);
        assert_eq!(k.signal, libc::SIGKILL);
        let Some(Command::Create(c)) = ok(&["create", "ID"]).command else {
            panic!()
        };
        assert_eq!(c.flags.bundle, PathBuf::from("."));
    }

    #[test]
    fn flag_equals_value_including_booleans() {
        let exec = |args: &[&str]| match ok(args).command {
            Some(Command::Exec(e)) => e,
            other => panic!("{other:?}"),
        };
        let e = exec(&["exec", "--detach=true", "ID", "CMD"]);
        assert!(e.detach);
        assert_eq!(
            (e.id.as_str(), e.command.as_slice()),
            ("ID", &["CMD".to_string()][..])
        );
        let e = exec(&["exec", "--detach=false", "--tty=1", "ID", "CMD"]);
        assert!(!e.detach && e.tty);
        let e = exec(&[
            "exec",
            "-d",
            "-d",
            "--pid-file=/p",
            "--cwd=/tmp",
            "-e=A=1",
            "-e",
            "B=2",
            "ID",
            "x",
        ]);
        assert!(e.detach);
        assert_eq!(e.pid_file, Some(PathBuf::from("/p")));
        assert_eq!(e.env, ["A=1", "B=2"]);
        assert_eq!(e.cwd.as_deref(), Some("/tmp"));
        // A boolean never eats the next word.
        let e = exec(&["exec", "-t", "ID", "true"]);
        assert!(e.tty);
        assert_eq!(e.command, ["true"]);
        let e = exec(&["exec", "--no-new-privs", "ID", "x"]);
        assert_eq!(e.no_new_privs, Some(true));
        let e = exec(&["exec", "--no-new-privs=false", "ID", "x"]);
        assert_eq!(e.no_new_privs, Some(false));
        assert_eq!(exec(&["exec", "ID", "x"]).no_new_privs, None);
        assert!(err(&["exec", "--detach=maybe", "ID", "x"]).contains("maybe"));
        let Some(Command::Run(r)) = ok(&["run", "--keep=false", "--no-pivot=true", "ID"]).command
        else {
            panic!()
        };
        assert!(!r.keep && r.flags.no_pivot);
        assert!(!ok(&["--debug=false", "list"]).global.debug);
        let Some(Command::Update(u)) =
            ok(&["update", "--memory=64m", "--pids-limit=-1", "ID"]).command
        else {
            panic!()
        };
        assert_eq!((u.memory, u.pids_limit), (Some(64 << 20), Some(-1)));
    }

    #[test]
    fn the_command_of_exec_keeps_its_own_flags() {
        let Some(Command::Exec(e)) =
            ok(&["exec", "-u", "1:2", "ID", "sh", "-c", "exit 5", "--tty"]).command
        else {
            panic!()
        };
        assert!(!e.tty);
        assert_eq!(e.user.as_deref(), Some("1:2"));
        assert_eq!(e.command, ["sh", "-c", "exit 5", "--tty"]);
        let Some(Command::Exec(e)) = ok(&["exec", "ID", "--", "ls", "-l"]).command else {
            panic!()
        };
        assert_eq!(e.command, ["ls", "-l"]);
        let Some(Command::Exec(e)) = ok(&["exec", "-p", "/proc.json", "ID"]).command else {
            panic!()
        };
        assert!(e.command.is_empty());
        assert_eq!(e.process, Some(PathBuf::from("/proc.json")));
        let Some(Command::Ps(ps)) = ok(&["ps", "-f", "json", "ID", "-ef"]).command else {
            panic!()
        };
        assert_eq!(
            (ps.format, ps.ps_args.as_slice()),
            (Format::Json, &["-ef".to_string()][..])
        );
    }

    #[test]
    fn unknown_flags_and_values_are_named() {
        for (args, needle) in [
            (&["create", "--bogus", "ID"][..], "--bogus"),
            (&["run", "ID", "--nope=1"][..], "--nope"),
            (&["--nope", "list"][..], "--nope"),
            (&["kill", "ID", "SIGNOPE"][..], "SIGNOPE"),
            (&["list", "--format", "yaml"][..], "yaml"),
            (
                &["create", "--preserve-fds", "x", "ID"][..],
                "--preserve-fds",
            ),
            (&["update", "--memory", "lots", "ID"][..], "lots"),
            (&["frobnicate"][..], "frobnicate"),
            (&["start"][..], "CONTAINER_ID"),
        ] {
            let e = err(args);
            assert!(e.contains(needle), "{args:?}: {e}");
        }
    }

    #[test]
    fn signals_and_sizes() {
        let kill = |args: &[&str]| match ok(args).command {
            Some(Command::Kill(k)) => k.signal,
            other => panic!("{other:?}"),
        };
        assert_eq!(kill(&["kill", "ID"]), libc::SIGTERM);
        assert_eq!(kill(&["kill", "ID", "9"]), 9);
        assert_eq!(kill(&["kill", "ID", "hup"]), libc::SIGHUP);
        assert_eq!(
            kill(&["kill", "ID", "SIGRTMIN+3"]),
            wren_runtime::signal::rtmin() + 3
        );
        assert_eq!(parse_size("64m"), Some(64 << 20));
        assert_eq!(parse_size("64MiB"), Some(64 << 20));
        assert_eq!(parse_size("1g"), Some(1 << 30));
        assert_eq!(parse_size("512"), Some(512));
        assert_eq!(parse_size("-1"), Some(-1));
        assert_eq!(parse_size("x"), None);
        assert_eq!(parse_size("1q"), None);
        assert_eq!(parse_size(""), None);
    }

    #[test]
    fn completions_generate() {
        for shell in [
            clap_complete::Shell::Bash,
            clap_complete::Shell::Zsh,
            clap_complete::Shell::Fish,
        ] {
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut command(), "wren-oci", &mut out);
            let s = String::from_utf8(out).unwrap();
            assert!(s.contains("console-socket"), "{shell}");
        }
        let Some(Command::Completion { shell }) = ok(&["completion", "zsh"]).command else {
            panic!()
        };
        assert_eq!(shell, clap_complete::Shell::Zsh);
    }
}
