//! The command line of `wren`, declared with clap (derive): the global
//! flags, every command with its flags, short forms and aliases, and the
//! help text of each. Shell completions are generated from the same tree.
//!
//! Parsing rules:
//! - `--help` (or `-h`, or `wren help CMD`) works on every command;
//! - every flag takes `--flag=value`, boolean ones included
//!   (`--detach=true`, `-d=false`); a boolean never takes the next word as
//!   its value, and short booleans combine (`-it`, `-dit`);
//! - flags may come after the container name; in `run`, `create` and
//!   `exec` the container's command starts at the first word after the
//!   name that is not a flag, or after `--`, and is kept verbatim;
//! - the global flags (`--root`, `--socket`, `--json`) may come before or
//!   after the command.
//!
//! Runs in `wren`, before anything else.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::builder::BoolishValueParser;
use clap::{ArgAction, Args, CommandFactory, FromArgMatches, Parser, Subcommand};

/// `wren [GLOBAL FLAGS] COMMAND [FLAGS] ARGS`.
#[derive(Debug, Parser)]
#[command(
    name = "wren",
    about = "The command-line client of wrend, wren's container manager",
    after_help = "Restart policies: no, on-failure[:N], always, unless-stopped.",
    disable_version_flag = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalFlags,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Flags of every command.
#[derive(Debug, Args)]
#[command(next_help_heading = "Global options")]
pub struct GlobalFlags {
    /// Talk to the wrend started with this --root
    #[arg(long, global = true, value_name = "DIR", conflicts_with = "socket")]
    pub root: Option<PathBuf>,
    /// wrend's API socket [default: /run/wren/wrend.sock]
    #[arg(long, global = true, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Print JSON (list, ps, stats, events)
    #[arg(long, global = true)]
    pub json: bool,
    /// Print the version and exit
    #[arg(short = 'v', long, help_heading = "Options")]
    pub version: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create and start a container; in the foreground, exit with its status
    Run(Run),
    /// Create a container; `start` starts it
    Create(Create),
    /// Start a created or stopped container
    Start(StartArgs),
    /// Stop a container: a signal (default SIGTERM), then SIGKILL after a grace period
    Stop(Stop),
    /// Stop containers (if running), then start them again
    Restart(Restart),
    /// Wait until containers exit; print each one's exit status
    Wait(Names),
    /// Connect to a running container's output (and its stdin or terminal, if it has one)
    Attach(Attach),
    /// Send a signal (default SIGKILL) to a container
    Kill(Kill),
    /// Remove containers
    #[command(visible_alias = "delete")]
    Rm(Rm),
    /// Freeze every process of a container
    Pause(Name),
    /// Thaw a paused container
    Resume(Name),
    /// Run a command in a running container; exit with its status
    Exec(Exec),
    /// List the containers
    #[command(visible_alias = "ls")]
    List(ListArgs),
    /// Print everything wrend knows of a container, as JSON
    Inspect(InspectArgs),
    /// List the processes of a container
    #[command(visible_alias = "top")]
    Ps(Name),
    /// Print the CPU, memory and pids figures of a container (or of every running one)
    Stats(StatsArgs),
    /// List a container's published ports, or the host addresses of one
    Port(Port),
    /// Copy files and directories between a running container and the host
    Cp(super::copy::Cp),
    /// Change the resource limits of a running container
    Update(Update),
    /// Print a container's output
    Logs(Logs),
    /// Dump a running container into DIR with CRIU (it stops, unless --leave-running)
    Checkpoint(super::checkpoint::CheckpointArgs),
    /// Bring a stopped container back from the checkpoint in DIR
    Restore(super::checkpoint::RestoreArgs),
    /// Print wrend's events as they happen (or those it kept, with --since)
    Events(EventsArgs),
    /// Pull an image from a registry
    Pull(Pull),
    /// Store credentials for a registry (Docker's config.json format)
    Login(Login),
    /// Forget the credentials of a registry
    Logout(Logout),
    /// Import images from an OCI layout (directory or tar) or a docker save tar
    Import(Import),
    /// Write images to an OCI layout tar
    Save(Save),
    /// List the images
    Images,
    /// Remove images
    Rmi(Rmi),
    /// Give an image another name
    Tag(Tag),
    /// Manage images: ls, inspect, rm, prune, import, tag
    Image(ImageCmd),
    /// Manage containers: prune
    Container(ContainerCmd),
    /// Disk use and clean-up: df, prune
    System(SystemCmd),
    /// Manage named volumes: create, ls, inspect, rm, prune
    Volume(VolumeCmd),
    /// Manage networks: create, ls, inspect, rm
    Network(super::network::NetworkCmd),
    /// Make labelled containers again from their image's newer version,
    /// rolling back when the new one fails (Podman's auto-update)
    AutoUpdate(AutoUpdate),
    /// Create or update the services of a compose file (a Compose subset)
    Apply(super::compose::ComposeArgs),
    /// Remove the services and networks of a compose file
    Down(super::compose::ComposeArgs),
    /// Print a shell completion script (source <(wren completion bash))
    Completion(Completion),
    /// Print the version
    #[command(hide = true)]
    Version,
}

/// A command that takes a container name and nothing else.
#[derive(Debug, Args)]
pub struct Name {
    /// The container's name
    #[arg(value_name = "NAME")]
    pub name: String,
}

#[derive(Debug, Args, Default)]
#[command(
    after_help = "Filters: status=created|running|paused|stopped|restarting, \
name=TEXT (a part of the name), label=KEY or label=KEY=VALUE, health=starting|healthy|unhealthy. \
Several filters must all match."
)]
pub struct ListArgs {
    /// Every container, stopped ones too: what `wren list` always shows
    /// (accepted for scripts written for `docker ps -a`)
    #[arg(short, long)]
    pub all: bool,
    /// Print only the names
    #[arg(short, long)]
    pub quiet: bool,
    /// Only the containers that match KEY=VALUE (repeatable)
    #[arg(short, long, value_name = "KEY=VALUE")]
    pub filter: Vec<String>,
    /// Print each container through this Go-style template over --json's
    /// fields ({{.name}}\t{{.status}}), a line each
    #[arg(long, value_name = "TEMPLATE")]
    pub format: Option<String>,
}

#[derive(Debug, Args)]
pub struct StartArgs {
    /// Stay attached: print its output (its terminal, if it has one) and
    /// exit with its status
    #[arg(short, long)]
    pub attach: bool,
    /// With -a: pass wren's stdin to it (a container made with -i or -t)
    #[arg(short, long)]
    pub interactive: bool,
    /// The container's name
    #[arg(value_name = "NAME")]
    pub name: String,
}

#[derive(Debug, Args)]
pub struct StatsArgs {
    /// The container's name [default: every running or paused container]
    #[arg(value_name = "NAME")]
    pub name: Option<String>,
}

#[derive(Debug, Args)]
#[command(
    after_help = "wrend keeps its last 256 events for --since. Filters: container=NAME, \
event=WORD (the last part of the topic: start, exit, ...) or event=TOPIC (/container/start). \
Several filters of one key match any; of different keys, all."
)]
pub struct EventsArgs {
    /// Also the kept events since TIME (a duration before now, an RFC 3339
    /// time or Unix seconds)
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Stop at TIME (as --since); a past TIME prints the kept events and ends
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// Only the events that match KEY=VALUE (repeatable)
    #[arg(short, long, value_name = "KEY=VALUE")]
    pub filter: Vec<String>,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Print each through this Go-style template over the JSON's fields
    /// ({{.status}}, {{.ip_address}}, {{json .labels}}, {{index .labels "k"}})
    #[arg(short, long, value_name = "TEMPLATE")]
    pub format: Option<String>,
    /// The containers' names (one: a JSON object; several: an array)
    #[arg(value_name = "NAME", required = true)]
    pub names: Vec<String>,
}

/// A command that takes one or more container names.
#[derive(Debug, Args)]
pub struct Names {
    /// The containers' names
    #[arg(value_name = "NAME", required = true)]
    pub names: Vec<String>,
}

#[derive(Debug, Args)]
pub struct Restart {
    /// Seconds to wait for each to stop before SIGKILL [default: 10]
    #[arg(short = 't', long = "time", value_name = "SECS")]
    pub timeout: Option<u32>,
    /// The containers' names
    #[arg(value_name = "NAME", required = true)]
    pub names: Vec<String>,
}

#[derive(Debug, Args)]
#[command(after_help = "Ctrl-P Ctrl-Q detaches from a terminal; without one, \
SIGINT, SIGTERM and SIGHUP go to the container.")]
pub struct Attach {
    /// Do not pass wren's stdin to the container
    #[arg(long)]
    pub no_stdin: bool,
    /// The container's name
    #[arg(value_name = "NAME")]
    pub name: String,
}

#[derive(Debug, Args)]
pub struct Port {
    /// The container's name
    #[arg(value_name = "NAME")]
    pub name: String,
    /// Only this container port: PORT or PORT/tcp|udp
    #[arg(value_name = "PORT[/PROTO]")]
    pub port: Option<String>,
}

/// Where a new container's root filesystem comes from: an image (the
/// first word), or one of these.
#[derive(Debug, Args, Clone, Default, serde::Serialize, serde::Deserialize)]
#[group(required = false, multiple = false)]
#[serde(default)]
pub struct Source {
    /// Use DIR as the root filesystem, with wren's default spec
    #[arg(long, value_name = "DIR")]
    pub rootfs: Option<PathBuf>,
    /// Use the OCI bundle in DIR (its config.json and rootfs)
    #[arg(long, value_name = "DIR")]
    pub bundle: Option<PathBuf>,
}

/// The flags and arguments `run` and `create` share.
#[derive(Debug, Args, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct ContainerArgs {
    /// Keep stdin open: wren's stdin feeds the container
    #[arg(short, long)]
    pub interactive: bool,
    /// Give the container a terminal (stdin must be one, unless -d)
    #[arg(short, long)]
    pub tty: bool,
    /// When to restart the container after it exits
    #[arg(long, value_name = "POLICY")]
    pub restart: Option<String>,
    /// Start the container when wrend starts
    #[arg(long)]
    pub start_at_boot: bool,
    /// Set an environment variable: KEY=VALUE, or KEY for wren's own value (repeatable)
    #[arg(short, long, value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Working directory inside the container
    #[arg(short = 'w', long, visible_alias = "workdir", value_name = "DIR")]
    pub cwd: Option<String>,
    /// The container's log: max-size=SIZE (rotate at, k/m/g), max-file=N
    /// (files kept) [default: wrend's --log-max-size and --log-keep]
    #[arg(long, value_name = "KEY=VALUE")]
    pub log_opt: Vec<String>,
    /// The cgroup to make the container's cgroup in: PATH/NAME from the root
    /// of each hierarchy [default: wrend's --cgroup-parent]
    #[arg(long, value_name = "PATH")]
    pub cgroup_parent: Option<String>,
    #[command(flatten)]
    pub source: Source,
    #[command(flatten)]
    pub image: ImageFlags,
    #[command(flatten)]
    pub network: super::network::NetworkFlags,
    #[command(flatten)]
    pub health: super::health::HealthFlags,
    /// With --rootfs or --bundle: the container's name. Else: the image
    /// (name it with --name)
    #[arg(value_name = "IMAGE|NAME")]
    pub name: String,
    /// The command and its arguments (default: the image's or bundle's)
    #[arg(
        value_name = "COMMAND",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub command: Vec<String>,
}

/// The flags of a container made from an image (`run IMAGE`).
#[derive(Debug, Args, Default, Clone, serde::Serialize, serde::Deserialize)]
#[command(next_help_heading = "Image containers")]
#[serde(default)]
pub struct ImageFlags {
    /// The container's name [default: the image's, and a random suffix]
    #[arg(long = "name", value_name = "NAME")]
    pub container_name: Option<String>,
    /// Run this instead of the image's Entrypoint ("" clears it)
    #[arg(long, value_name = "CMD", allow_hyphen_values = true)]
    pub entrypoint: Option<String>,
    /// Read KEY=VALUE lines from FILE (repeatable)
    #[arg(long, value_name = "FILE")]
    pub env_file: Vec<PathBuf>,
    /// The user: NAME|UID[:GROUP|GID], names from the image's /etc/passwd
    #[arg(short = 'u', long, value_name = "USER")]
    pub user: Option<String>,
    /// The container's hostname [default: its name]
    #[arg(long, value_name = "NAME")]
    pub hostname: Option<String>,
    /// Bind mount HOST:CONTAINER[:OPTIONS], or a named volume NAME:CONTAINER[:OPTIONS];
    /// OPTIONS: ro|rw, [r]shared|[r]slave|[r]private, z|Z, nocopy, [no]exec|[no]suid|[no]dev
    /// (repeatable)
    #[arg(short = 'v', long, value_name = "SRC:CTR[:OPTS]")]
    pub volume: Vec<String>,
    /// type=bind|volume|tmpfs,source=S,target=T[,readonly][,bind-propagation=P]
    /// [,volume-nocopy][,tmpfs-size=SIZE][,tmpfs-mode=OCTAL] (repeatable)
    #[arg(long, value_name = "SPEC")]
    pub mount: Vec<String>,
    /// Mount a tmpfs at PATH[:OPTIONS] (repeatable)
    #[arg(long, value_name = "PATH[:OPTS]")]
    pub tmpfs: Vec<String>,
    /// Mount the root filesystem read-only
    #[arg(long)]
    pub read_only: bool,
    /// Memory limit: BYTES, or a number with k, m or g
    #[arg(short = 'm', long, value_name = "SIZE")]
    pub memory: Option<String>,
    /// Maximum number of tasks
    #[arg(long, value_name = "N")]
    pub pids_limit: Option<i64>,
    /// CPU limit, in CPUs (1.5: one and a half)
    #[arg(long, value_name = "N")]
    pub cpus: Option<f64>,
    /// CPU weight relative to other containers (cgroup v1 shares)
    #[arg(long, value_name = "N")]
    pub cpu_shares: Option<u64>,
    /// Memory plus swap limit (-1: unlimited swap); needs --memory
    #[arg(long, value_name = "SIZE", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// A soft memory limit, reclaimed down to under pressure
    #[arg(long, value_name = "SIZE")]
    pub memory_reservation: Option<String>,
    /// The CPUs it may run on (0-3, 0,2)
    #[arg(long, value_name = "LIST")]
    pub cpuset_cpus: Option<String>,
    /// The NUMA memory nodes it may use (0-1, 0)
    #[arg(long, value_name = "LIST")]
    pub cpuset_mems: Option<String>,
    /// Its processes' OOM-killer score adjustment (-1000 to 1000)
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub oom_score_adj: Option<i32>,
    /// seccomp=unconfined|FILE (an OCI LinuxSeccomp JSON profile),
    /// no-new-privileges[:true|false], label=disable, apparmor=unconfined
    #[arg(long, value_name = "OPT")]
    pub security_opt: Vec<String>,
    /// Every capability and host device, no seccomp, no masked paths,
    /// /sys and the cgroup mount writable
    #[arg(long)]
    pub privileged: bool,
    /// Run a tiny reaper as the container's pid 1: it forwards signals to
    /// the process and reaps orphans
    #[arg(long)]
    pub init: bool,
    /// Add a capability (CAP_X or X; ALL) (repeatable)
    #[arg(long, value_name = "CAP")]
    pub cap_add: Vec<String>,
    /// Drop a capability (CAP_X or X; ALL) (repeatable)
    #[arg(long, value_name = "CAP")]
    pub cap_drop: Vec<String>,
    /// The signal `stop` sends [default: the image's StopSignal, else TERM]
    #[arg(long, value_name = "SIGNAL")]
    pub stop_signal: Option<String>,
    /// Seconds `stop` waits before SIGKILL [default: 10]
    #[arg(long, value_name = "SECS")]
    pub stop_timeout: Option<u32>,
    /// KEY=VALUE metadata (repeatable)
    #[arg(short = 'l', long, value_name = "KEY=VALUE")]
    pub label: Vec<String>,
    /// When to pull the image: missing (when not in the store), always, never
    #[arg(long, value_name = "POLICY", value_parser = ["missing", "always", "never"])]
    pub pull: Option<String>,
    #[command(flatten)]
    pub registry: RegistryFlags,
    /// Another supplementary group: a name from the image's /etc/group, or a GID (repeatable)
    #[arg(long, value_name = "GROUP")]
    pub group_add: Vec<String>,
    /// A host device in the container: HOST[:CONTAINER[:PERMS]], PERMS of rwm (repeatable)
    #[arg(long, value_name = "DEVICE")]
    pub device: Vec<String>,
    /// Allow a device class in the device cgroup, no node made: "c 189:* rwm"
    /// (TYPE MAJOR:MINOR ACCESS, * for any) (repeatable)
    #[arg(long, value_name = "RULE")]
    pub device_cgroup_rule: Vec<String>,
    /// A process limit: NAME=SOFT[:HARD] (nofile, nproc, core, ...; -1: unlimited) (repeatable)
    #[arg(long, value_name = "NAME=LIMIT")]
    pub ulimit: Vec<String>,
    /// A namespaced kernel setting: KEY=VALUE (net.*, kernel.shm*, fs.mqueue.*, ...) (repeatable)
    #[arg(long, value_name = "KEY=VALUE")]
    pub sysctl: Vec<String>,
    /// The size of /dev/shm: BYTES, or a number with k, m or g [default: 64m]
    #[arg(long, value_name = "SIZE")]
    pub shm_size: Option<String>,
    /// Its process ids: private (its own namespace), host (sees and is seen
    /// by every host process) or container:NAME (NAME's)
    #[arg(long, value_name = "MODE")]
    pub pid: Option<String>,
    /// Its System V IPC and POSIX message queues: private, host (the host's,
    /// with the host's /dev/shm), shareable (private, others may join) or
    /// container:NAME (a shareable NAME's, with its /dev/shm)
    #[arg(long, value_name = "MODE")]
    pub ipc: Option<String>,
    /// Its hostname: private, host (the host's; no --hostname), or
    /// container:NAME (NAME's UTS namespace, so NAME's hostname)
    #[arg(long, value_name = "MODE")]
    pub uts: Option<String>,
}

impl ImageFlags {
    /// The first image-only flag given, for the error with --rootfs/--bundle.
    pub fn given(&self) -> Option<&'static str> {
        [
            (self.container_name.is_some(), "--name"),
            (self.entrypoint.is_some(), "--entrypoint"),
            (!self.env_file.is_empty(), "--env-file"),
            (self.user.is_some(), "--user"),
            (self.hostname.is_some(), "--hostname"),
            (!self.volume.is_empty(), "--volume"),
            (!self.mount.is_empty(), "--mount"),
            (!self.tmpfs.is_empty(), "--tmpfs"),
            (self.read_only, "--read-only"),
            (self.memory.is_some(), "--memory"),
            (self.pids_limit.is_some(), "--pids-limit"),
            (self.cpus.is_some(), "--cpus"),
            (self.cpu_shares.is_some(), "--cpu-shares"),
            (self.memory_swap.is_some(), "--memory-swap"),
            (self.memory_reservation.is_some(), "--memory-reservation"),
            (self.cpuset_cpus.is_some(), "--cpuset-cpus"),
            (self.cpuset_mems.is_some(), "--cpuset-mems"),
            (self.oom_score_adj.is_some(), "--oom-score-adj"),
            (!self.security_opt.is_empty(), "--security-opt"),
            (self.privileged, "--privileged"),
            (self.init, "--init"),
            (!self.cap_add.is_empty(), "--cap-add"),
            (!self.cap_drop.is_empty(), "--cap-drop"),
            (self.stop_signal.is_some(), "--stop-signal"),
            (self.stop_timeout.is_some(), "--stop-timeout"),
            (!self.label.is_empty(), "--label"),
            (!self.device.is_empty(), "--device"),
            (!self.device_cgroup_rule.is_empty(), "--device-cgroup-rule"),
            (!self.group_add.is_empty(), "--group-add"),
            (self.pull.is_some(), "--pull"),
            (
                self.registry.given(),
                "--platform/--insecure-registry/--authfile/--ca-cert/--retry/--retry-delay",
            ),
            (!self.ulimit.is_empty(), "--ulimit"),
            (!self.sysctl.is_empty(), "--sysctl"),
            (self.shm_size.is_some(), "--shm-size"),
            (self.pid.is_some(), "--pid"),
            (self.ipc.is_some(), "--ipc"),
            (self.uts.is_some(), "--uts"),
        ]
        .into_iter()
        .find(|(given, _)| *given)
        .map(|(_, flag)| flag)
    }
}

/// How `pull` (and `run`, `create`, `apply` when they pull) reach a
/// registry.
#[derive(Debug, Args, Default, Clone, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct RegistryFlags {
    /// Platform to take from a multi-platform image [default: the host's]
    #[arg(long, value_name = "OS/ARCH")]
    pub platform: Option<String>,
    /// Treat this registry as insecure: HTTPS without verifying its
    /// certificate, or plain HTTP if it speaks no TLS (HOST[:PORT]; repeatable)
    #[arg(long, value_name = "HOST")]
    pub insecure_registry: Vec<String>,
    /// Credentials file [default: $REGISTRY_AUTH_FILE, $DOCKER_CONFIG/config.json,
    /// ~/.docker/config.json, then Podman's auth.json]
    #[arg(long, value_name = "FILE")]
    pub authfile: Option<PathBuf>,
    /// Trust this PEM CA for the registry, besides the system's and
    /// /etc/{containers,docker}/certs.d/HOST/*.crt (repeatable)
    #[arg(long, value_name = "FILE")]
    pub ca_cert: Vec<PathBuf>,
    /// Tries after the first when a pull fails for now (connection
    /// refused, reset or stalled, 5xx, 429) [default: 3]
    #[arg(long, value_name = "N")]
    pub retry: Option<u32>,
    /// The wait before the first retry, doubling after each (500ms, 2s)
    /// [default: 1s]
    #[arg(long, value_name = "DURATION")]
    pub retry_delay: Option<String>,
}

impl RegistryFlags {
    /// Whether any was given (they are for image containers only).
    pub fn given(&self) -> bool {
        self.platform.is_some()
            || !self.insecure_registry.is_empty()
            || self.authfile.is_some()
            || !self.ca_cert.is_empty()
            || self.retry.is_some()
            || self.retry_delay.is_some()
    }
}

#[derive(Debug, Args)]
pub struct Pull {
    #[command(flatten)]
    pub registry: RegistryFlags,
    /// Print only the image id
    #[arg(short, long)]
    pub quiet: bool,
    /// The image: NAME[:TAG] or NAME@sha256:DIGEST (busybox is docker.io/library/busybox:latest)
    #[arg(value_name = "IMAGE")]
    pub image: String,
}

#[derive(Debug, Args)]
pub struct Login {
    /// User name [default: asked on the terminal]
    #[arg(short, long, value_name = "USER")]
    pub username: Option<String>,
    /// Read the password from stdin [default: asked on the terminal,
    /// without echo]
    #[arg(long, requires = "username")]
    pub password_stdin: bool,
    /// The password (visible to other users in ps: prefer --password-stdin)
    #[arg(
        short,
        long,
        value_name = "PASSWORD",
        conflicts_with = "password_stdin"
    )]
    pub password: Option<String>,
    /// Credentials file (as for pull)
    #[arg(long, value_name = "FILE")]
    pub authfile: Option<PathBuf>,
    /// The registry is insecure: HTTPS without verifying its certificate,
    /// or plain HTTP (as --insecure-registry for pull)
    #[arg(long)]
    pub insecure: bool,
    /// Trust this PEM CA for the registry, besides the system's and
    /// /etc/{containers,docker}/certs.d/HOST/*.crt (repeatable)
    #[arg(long, value_name = "FILE")]
    pub ca_cert: Vec<PathBuf>,
    /// The registry: HOST[:PORT] [default: docker.io]
    #[arg(value_name = "REGISTRY", default_value = "docker.io")]
    pub registry: String,
}

/// `wren auto-update`: every container labelled
/// `io.containers.autoupdate=registry` (its image's name moved in the
/// registry) or `=local` (moved in the store) is made again from the new
/// image with the flags it was made with.
#[derive(Debug, Args)]
pub struct AutoUpdate {
    /// Only say which containers would be updated
    #[arg(long)]
    pub dry_run: bool,
    /// Go back to the old image when the new container does not run, or
    /// its health check does not pass, within --timeout
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub rollback: bool,
    /// Seconds a new container has to become healthy (or, without a health
    /// check, to run steadily)
    #[arg(long, value_name = "SECS", default_value_t = 120)]
    pub timeout: u64,
    /// Only these containers (each must carry the label)
    #[arg(value_name = "NAME")]
    pub names: Vec<String>,
}

#[derive(Debug, Args)]
pub struct Logout {
    /// Credentials file (as for pull)
    #[arg(long, value_name = "FILE")]
    pub authfile: Option<PathBuf>,
    /// The registry: HOST[:PORT] [default: docker.io]
    #[arg(value_name = "REGISTRY", default_value = "docker.io")]
    pub registry: String,
}

#[derive(Debug, Args)]
pub struct Import {
    /// Name the image (when the file holds one), instead of its own name
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Platform to take from a multi-platform image [default: the host's]
    #[arg(long, value_name = "OS/ARCH")]
    pub platform: Option<String>,
    /// Print only the image ids
    #[arg(short, long)]
    pub quiet: bool,
    /// An OCI image layout directory, its tar, or a docker save tar
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
}

#[derive(Debug, Args)]
pub struct Save {
    /// The tar file to write
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
    /// The images: names, ids or id prefixes
    #[arg(value_name = "IMAGE", required = true)]
    pub images: Vec<String>,
}

#[derive(Debug, Args)]
pub struct Rmi {
    /// The images: names, ids or id prefixes
    #[arg(value_name = "IMAGE", required = true)]
    pub images: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ImageCmd {
    #[command(subcommand)]
    pub command: ImageSub,
}

#[derive(Debug, Subcommand)]
pub enum ImageSub {
    /// List the images
    #[command(visible_alias = "list")]
    Ls,
    /// Print an image's manifest, config and layers as JSON
    Inspect(ImageName),
    /// Remove images
    Rm(Rmi),
    /// Remove layers and blobs no image uses
    Prune,
    /// Import images (as `wren import`)
    Import(Import),
    /// Give an image another name (as `wren tag`)
    Tag(Tag),
}

#[derive(Debug, Args)]
pub struct Tag {
    /// The image: a name, id or id prefix
    #[arg(value_name = "SOURCE")]
    pub source: String,
    /// Its new name: [REGISTRY/]REPOSITORY[:TAG]
    #[arg(value_name = "TARGET")]
    pub target: String,
}

#[derive(Debug, Args)]
pub struct SystemCmd {
    #[command(subcommand)]
    pub command: SystemSub,
}

#[derive(Debug, Subcommand)]
pub enum SystemSub {
    /// What images, containers and volumes take on disk, and what could be freed
    Df,
    /// Remove stopped containers, unused networks and unused layers (-a: images; --volumes)
    Prune(super::prune::SystemPrune),
}

#[derive(Debug, Args)]
pub struct ContainerCmd {
    #[command(subcommand)]
    pub command: ContainerSub,
}

#[derive(Debug, Subcommand)]
pub enum ContainerSub {
    /// Remove every stopped container
    Prune(Prune),
}

#[derive(Debug, Args)]
pub struct VolumeCmd {
    #[command(subcommand)]
    pub command: VolumeSub,
}

#[derive(Debug, Subcommand)]
pub enum VolumeSub {
    /// Create a named volume (`run -v NAME:/path` also creates one)
    Create(VolumeNames),
    /// List the volumes
    #[command(visible_alias = "list")]
    Ls,
    /// Print a volume's name, mount point and users as JSON
    Inspect(VolumeNames),
    /// Remove volumes no container uses
    Rm(VolumeNames),
    /// Remove every volume no container uses, and its data
    Prune(Prune),
}

#[derive(Debug, Args)]
pub struct Prune {
    /// Do not ask first (needed when stdin is not a terminal)
    #[arg(short, long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct VolumeNames {
    /// Volume names
    #[arg(value_name = "NAME", required = true)]
    pub names: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ImageName {
    /// A name, id or id prefix
    #[arg(value_name = "IMAGE")]
    pub image: String,
}

#[derive(Debug, Args)]
pub struct Run {
    /// Return once the container has started
    #[arg(short, long)]
    pub detach: bool,
    /// Remove the container when it exits
    #[arg(long)]
    pub rm: bool,
    #[command(flatten)]
    pub container: ContainerArgs,
}

#[derive(Debug, Args)]
pub struct Create {
    #[command(flatten)]
    pub container: ContainerArgs,
}

#[derive(Debug, Args)]
pub struct Stop {
    /// Seconds to wait before SIGKILL [default: 10]
    #[arg(short = 't', long = "time", value_name = "SECS")]
    pub timeout: Option<u32>,
    /// The signal to stop with [default: TERM]
    #[arg(short, long, value_name = "SIGNAL", value_parser = signal)]
    pub signal: Option<i32>,
    /// The container's name
    #[arg(value_name = "NAME")]
    pub name: String,
}

#[derive(Debug, Args)]
pub struct Kill {
    /// A number, a name (TERM, SIGTERM) or RTMIN+n / RTMAX-n
    #[arg(short, long, value_name = "SIGNAL", default_value = "KILL", value_parser = signal)]
    pub signal: i32,
    /// Signal every process of the container, not just its init
    #[arg(short, long)]
    pub all: bool,
    /// The container's name
    #[arg(value_name = "NAME")]
    pub name: String,
}

/// A signal as the runtime's one table reads it.
fn signal(s: &str) -> Result<i32, wren_runtime::signal::UnknownSignal> {
    wren_runtime::signal::parse(s)
}

#[derive(Debug, Args)]
pub struct Rm {
    /// Kill a running container first
    #[arg(short, long)]
    pub force: bool,
    /// The containers' names
    #[arg(value_name = "NAME", required = true)]
    pub names: Vec<String>,
}

#[derive(Debug, Args)]
pub struct Exec {
    /// Return once the process has started; print its pid
    #[arg(short, long)]
    pub detach: bool,
    /// Keep stdin open: wren's stdin feeds the process
    #[arg(short, long)]
    pub interactive: bool,
    /// Give the process a terminal (stdin must be one)
    #[arg(short, long)]
    pub tty: bool,
    /// Set an environment variable: KEY=VALUE, or KEY for wren's own value (repeatable)
    #[arg(short, long, value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Working directory inside the container
    #[arg(short = 'w', long, visible_alias = "workdir", value_name = "DIR")]
    pub cwd: Option<String>,
    /// Run as this user: NAME|UID[:GROUP|GID], names from the container's
    /// /etc/passwd and /etc/group [default: the container's user]
    #[arg(short, long, value_name = "USER")]
    pub user: Option<String>,
    /// The container's name
    #[arg(value_name = "NAME")]
    pub name: String,
    /// The command and its arguments
    #[arg(
        value_name = "COMMAND",
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub command: Vec<String>,
}

/// `update`: the per-resource flags, or a whole LinuxResources JSON; and
/// the restart policy.
#[derive(Debug, Args)]
#[group(skip)]
#[command(group(
    clap::ArgGroup::new("changes")
        .required(true)
        .multiple(true)
        .args(["memory", "cpus", "cpu_shares", "pids_limit", "memory_swap", "memory_reservation",
               "cpuset_cpus", "cpuset_mems", "resources", "restart"])
))]
pub struct Update {
    /// Memory limit: BYTES, or a number with k, m or g (-1: none)
    #[arg(short = 'm', long, value_name = "SIZE", allow_hyphen_values = true)]
    pub memory: Option<String>,
    /// CPU limit, in CPUs (1.5: one and a half; 0: none)
    #[arg(long, value_name = "N")]
    pub cpus: Option<f64>,
    /// CPU shares (relative weight)
    #[arg(long, value_name = "N")]
    pub cpu_shares: Option<u64>,
    /// Maximum number of tasks (-1: none)
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub pids_limit: Option<i64>,
    /// Memory plus swap limit (-1: unlimited swap)
    #[arg(long, value_name = "SIZE", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// A soft memory limit
    #[arg(long, value_name = "SIZE")]
    pub memory_reservation: Option<String>,
    /// The CPUs it may run on (0-3, 0,2)
    #[arg(long, value_name = "LIST")]
    pub cpuset_cpus: Option<String>,
    /// The NUMA memory nodes it may use
    #[arg(long, value_name = "LIST")]
    pub cpuset_mems: Option<String>,
    /// OCI LinuxResources JSON from FILE, instead of the flags above
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with_all = ["memory", "cpus", "cpu_shares", "pids_limit", "memory_swap",
                              "memory_reservation", "cpuset_cpus", "cpuset_mems"]
    )]
    pub resources: Option<PathBuf>,
    /// A new restart policy (no, on-failure[:N], always, unless-stopped)
    #[arg(long, value_name = "POLICY")]
    pub restart: Option<String>,
    /// The container's name
    #[arg(value_name = "NAME")]
    pub name: String,
}

#[derive(Debug, Args)]
pub struct Logs {
    /// Keep printing new output until the container stops
    #[arg(short, long)]
    pub follow: bool,
    /// Print only the last N lines first
    #[arg(long, short = 'n', value_name = "N")]
    pub tail: Option<usize>,
    /// Put the time each line was written before it (RFC 3339, UTC)
    #[arg(short, long)]
    pub timestamps: bool,
    /// Only lines written since TIME: a duration before now (10m, 1h30m),
    /// an RFC 3339 time or date (UTC unless it says), or Unix seconds
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Only lines written before TIME (as --since)
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// The container's name
    #[arg(value_name = "NAME")]
    pub name: String,
}

#[derive(Debug, Args)]
pub struct Completion {
    #[arg(value_enum, default_value_t = clap_complete::Shell::Bash)]
    pub shell: clap_complete::Shell,
}

/// The whole command tree, with booleans that take `=value`.
pub fn command() -> clap::Command {
    booleans_take_values(Cli::command())
}

/// Parses `argv` (with the program name first).
pub fn parse<I, T>(argv: I) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let matches = command().try_get_matches_from(argv)?;
    Cli::from_arg_matches(&matches)
}

/// Every boolean flag takes an optional `=value` (never the next word), so
/// that `--detach=true` and `--detach=false` mean what they say.
fn booleans_take_values(cmd: clap::Command) -> clap::Command {
    let cmd = cmd.mut_args(|a| {
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
    cmd.mut_subcommands(booleans_take_values)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::error::ErrorKind;

    fn p(args: &[&str]) -> Result<Cli, clap::Error> {
        parse(std::iter::once("wren").chain(args.iter().copied()))
    }

    fn ok(args: &[&str]) -> Command {
        match p(args) {
            Ok(Cli {
                command: Some(c), ..
            }) => c,
            other => panic!("{args:?}: {other:?}"),
        }
    }

    fn usage_error(args: &[&str]) -> clap::Error {
        let e = p(args).expect_err(&format!("{args:?} parsed"));
        assert_eq!(e.exit_code(), 2, "{args:?}: {e}");
        e
    }

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
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
            .filter(|n| n != "help")
            .collect();
        assert!(names.len() >= 18, "{names:?}");
        for name in names.iter().map(String::as_str).chain(["ls", "delete"]) {
            for flag in ["--help", "-h"] {
                let e = p(&[name, flag]).expect_err(name);
                assert_eq!(e.kind(), ErrorKind::DisplayHelp, "{name} {flag}: {e}");
                assert_eq!(e.exit_code(), 0, "{name}");
                assert!(e.to_string().contains("Usage: wren"), "{name}: {e}");
            }
            let e = p(&["help", name]).expect_err(name);
            assert_eq!(e.kind(), ErrorKind::DisplayHelp, "help {name}");
        }
        let help = p(&["run", "--help"]).unwrap_err().to_string();
        for flag in [
            "--detach",
            "--rm",
            "--interactive",
            "--tty",
            "--restart",
            "--start-at-boot",
            "--env",
            "--cwd",
            "--rootfs",
            "--bundle",
            "--root",
        ] {
            assert!(help.contains(flag), "{flag} in {help}");
        }
        assert_eq!(p(&["--help"]).unwrap_err().kind(), ErrorKind::DisplayHelp);
        assert_eq!(p(&["help"]).unwrap_err().kind(), ErrorKind::DisplayHelp);
    }

    #[test]
    fn run_flags_short_long_and_after_the_name() {
        let Command::Run(r) = ok(&[
            "run",
            "-dit",
            "--rm",
            "--restart=always",
            "--start-at-boot",
            "-e",
            "A=1",
            "--env=B=2",
            "-w",
            "/w",
            "--rootfs",
            "/r",
            "web",
            "--",
            "sh",
            "-c",
            "x",
        ]) else {
            panic!()
        };
        let c = &r.container;
        assert!(r.detach && r.rm && c.interactive && c.tty && c.start_at_boot);
        assert_eq!(c.restart.as_deref(), Some("always"));
        assert_eq!(c.env, v(&["A=1", "B=2"]));
        assert_eq!(c.cwd.as_deref(), Some("/w"));
        assert_eq!(c.source.rootfs, Some(PathBuf::from("/r")));
        assert_eq!(c.name, "web");
        assert_eq!(c.command, v(&["sh", "-c", "x"]));

        // Flags after the name, before the command.
        let Command::Run(r) = ok(&["run", "web", "-d", "--bundle", "/b", "--", "true"]) else {
            panic!()
        };
        assert!(r.detach);
        assert_eq!(r.container.source.bundle, Some(PathBuf::from("/b")));
        assert_eq!(r.container.command, v(&["true"]));

        // The command starts at its first word, flags after it are its own.
        let Command::Run(r) = ok(&["run", "--rootfs", "/r", "web", "sleep", "-d", "--rm"]) else {
            panic!()
        };
        assert!(!r.detach && !r.rm);
        assert_eq!(r.container.command, v(&["sleep", "-d", "--rm"]));
    }

    #[test]
    fn booleans_take_equals_values() {
        let detach = |args: &[&str]| match ok(args) {
            Command::Run(r) => r.detach,
            c => panic!("{c:?}"),
        };
        assert!(detach(&["run", "--detach=true", "--rootfs=/r", "n"]));
        assert!(!detach(&["run", "--detach=false", "--rootfs=/r", "n"]));
        assert!(detach(&["run", "-d=true", "--rootfs=/r", "n"]));
        assert!(!detach(&["run", "--rootfs=/r", "n"]));
        // A boolean does not take the next word as its value.
        let Command::Run(r) = ok(&["run", "--rootfs=/r", "-d", "true"]) else {
            panic!()
        };
        assert!(r.detach);
        assert_eq!(r.container.name, "true");
        let Command::Rm(rm) = ok(&["rm", "a", "--force=true", "b"]) else {
            panic!()
        };
        assert!(rm.force);
        assert_eq!(rm.names, v(&["a", "b"]));
        let Command::Kill(k) = ok(&["kill", "--all=false", "web"]) else {
            panic!()
        };
        assert!(!k.all);
        assert!(
            p(&["--json=true", "list"]).unwrap().global.json,
            "global boolean"
        );
        usage_error(&["run", "--detach=maybe", "--rootfs=/r", "n"]);
    }

    #[test]
    fn every_flag_takes_equals_values() {
        let Command::Stop(s) = ok(&["stop", "web", "--time=3", "--signal=INT"]) else {
            panic!()
        };
        assert_eq!((s.timeout, s.signal), (Some(3), Some(libc::SIGINT)));
        let Command::Stop(s) = ok(&["stop", "-t", "5", "-s", "SIGHUP", "web"]) else {
            panic!()
        };
        assert_eq!((s.timeout, s.signal), (Some(5), Some(libc::SIGHUP)));
        let Command::Kill(k) = ok(&["kill", "web", "-s", "term", "-a"]) else {
            panic!()
        };
        assert_eq!((k.signal, k.all), (libc::SIGTERM, true));
        let Command::Kill(k) = ok(&["kill", "web"]) else {
            panic!()
        };
        assert_eq!(k.signal, libc::SIGKILL);
        let Command::Logs(l) = ok(&["logs", "web", "-f", "--tail=2"]) else {
            panic!()
        };
        assert!(l.follow);
        assert_eq!(l.tail, Some(2));
        let Command::Logs(l) = ok(&["logs", "-n", "3", "web"]) else {
            panic!()
        };
        assert_eq!(l.tail, Some(3));
        let Command::Update(u) = ok(&[
            "update",
            "web",
            "--memory=-1",
            "--cpu-shares",
            "512",
            "--pids-limit=50",
        ]) else {
            panic!()
        };
        assert_eq!(
            (u.memory.as_deref(), u.cpu_shares, u.pids_limit),
            (Some("-1"), Some(512), Some(50))
        );
        let Command::Update(u) = ok(&["update", "-m", "-1", "--restart", "always", "web"]) else {
            panic!()
        };
        assert_eq!(
            (u.memory.as_deref(), u.restart.as_deref()),
            (Some("-1"), Some("always"))
        );
        let Command::Exec(x) = ok(&[
            "exec", "-i", "-e=A=1", "-w=/tmp", "web", "-t", "--", "sh", "-c", "x",
        ]) else {
            panic!()
        };
        assert!(x.interactive && x.tty && !x.detach);
        assert_eq!(x.env, v(&["A=1"]));
        assert_eq!(x.cwd.as_deref(), Some("/tmp"));
        assert_eq!(x.command, v(&["sh", "-c", "x"]));
        let cli = p(&["list", "--root=/r", "--json"]).unwrap();
        assert_eq!(cli.global.root, Some(PathBuf::from("/r")));
        assert!(cli.global.json);
        assert!(matches!(cli.command, Some(Command::List(_))));
        let cli = p(&["--socket", "/s.sock", "ls"]).unwrap();
        assert_eq!(cli.global.socket, Some(PathBuf::from("/s.sock")));
        assert!(matches!(cli.command, Some(Command::List(_))));
        let Command::Completion(c) = ok(&["completion", "fish"]) else {
            panic!()
        };
        assert_eq!(c.shell, clap_complete::Shell::Fish);
        let Command::Completion(c) = ok(&["completion"]) else {
            panic!()
        };
        assert_eq!(c.shell, clap_complete::Shell::Bash);
        assert!(matches!(ok(&["delete", "a"]), Command::Rm(_)));
        assert!(p(&["-v"]).unwrap().global.version);
        assert!(matches!(ok(&["version"]), Command::Version));
    }

    #[test]
    fn run_an_image_with_docker_flags() {
        let Command::Run(r) = ok(&[
            "run",
            "--rm",
            "--name",
            "web",
            "-e",
            "A=1",
            "-u",
            "app",
            "-v",
            "/h:/c:ro",
            "--tmpfs",
            "/t",
            "--read-only",
            "--memory",
            "64m",
            "--cap-drop",
            "ALL",
            "busybox",
            "echo",
            "-n",
            "hi",
        ]) else {
            panic!("not run");
        };
        let c = &r.container;
        assert_eq!(c.name, "busybox");
        assert_eq!(c.command, v(&["echo", "-n", "hi"]));
        assert_eq!(c.image.container_name.as_deref(), Some("web"));
        assert_eq!(c.image.user.as_deref(), Some("app"));
        assert_eq!(c.image.volume, v(&["/h:/c:ro"]));
        assert!(c.image.read_only);
        assert!(c.source.rootfs.is_none());
    }

    #[test]
    fn usage_errors_exit_2() {
        for args in [
            &["run"][..],
            &["run", "--name"],
            &["run", "--rootfs", "/r", "--bundle", "/b", "web"],
            &["create", "-d", "--rootfs", "/r", "web"],
            &["create", "--rm", "--rootfs", "/r", "web"],
            &["exec", "web"],
            &["start"],
            &["start", "a", "b"],
            &["rm"],
            &["stop", "-t", "soon", "web"],
            &["kill", "-s", "NOPE", "web"],
            &["update", "web"],
            &["update", "--resources", "/f", "--memory", "1", "web"],
            &["logs", "--tail", "x", "web"],
            &["list", "--bogus"],
            &["--root", "/r", "--socket", "/s", "list"],
            &["completion", "tcsh"],
            &["frobnicate"],
        ] {
            usage_error(args);
        }
        assert_eq!(
            usage_error(&["frobnicate"]).kind(),
            ErrorKind::InvalidSubcommand
        );
    }

    #[test]
    fn completions_generate() {
        for shell in [
            clap_complete::Shell::Bash,
            clap_complete::Shell::Zsh,
            clap_complete::Shell::Fish,
        ] {
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut command(), "wren", &mut out);
            let text = String::from_utf8(out).unwrap();
            assert!(text.contains("start-at-boot"), "{shell}: {text}");
        }
    }
}
