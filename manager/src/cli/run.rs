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
use super::mounts::{self, MountFlag};
use super::{stdio, tty, CliError, Global};
use crate::logfile::Follower;
use crate::network;

/// `wren run`.
pub fn run(g: &Global, a: &Run) -> Result<i32, CliError> {
    let c = &a.container;
    let terminal = c.tty;
    let interactive = c.interactive || terminal;
    if terminal && !a.detach && !tty::is_tty(0) {
        // A detached one's terminal output goes to its log until `attach`.
        return Err(CliError::failed(
            "-t in the foreground needs a terminal on stdin (or run -d, then wren attach)",
        ));
    }
    let (mut req, lock) = create_request(g, c)?;
    req.auto_remove = a.rm && a.detach;
    req.start = a.detach;
    let mut w = Wrend::connect(&g.socket)?;
    let created: api::ContainerResponse = w.call("Create", &req, false)?;
    drop(lock);
    if a.detach {
        println!("{}", req.name);
        return Ok(0);
    }
    let name = req.name.clone();
    let c = &ContainerArgs { name, ..c.clone() };
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
    let (req, _lock) = create_request(g, &a.container)?;
    let mut w = Wrend::connect(&g.socket)?;
    let _: api::ContainerResponse = w.call("Create", &req, false)?;
    println!("{}", req.name);
    Ok(0)
}

/// The Create request `run` and `create` share; for an image, also the
/// image store's shared lock, to hold until wrend has the container's
/// record (so `rmi` cannot remove the image in between).
pub(super) fn create_request(
    g: &Global,
    c: &ContainerArgs,
) -> Result<(api::CreateRequest, Option<ImageLock>), CliError> {
    let mut req = api::CreateRequest::new();
    req.restart_policy = c.restart.clone().unwrap_or_default();
    req.start_at_boot = c.start_at_boot;
    if let Some(p) = &c.cgroup_parent {
        if let Err(why) = crate::paths::check_cgroup_parent(p) {
            return Err(CliError::usage(format!("--cgroup-parent {p:?}: {why}")));
        }
        req.cgroup_parent = p.clone();
    }
    req.terminal = c.tty;
    req.stdin = c.interactive || c.tty;
    for o in &c.log_opt {
        log_opt(o, &mut req)?;
    }
    if c.source.bundle.is_none() && c.source.rootfs.is_none() {
        // The user's variables, read once: for the request and, resolved,
        // for the flags auto-update re-makes it from.
        let env = user_env(c)?;
        let lock = image_request(g, c, env.clone(), &mut req)?;
        req.recreate = recreate_args(c, env, &req.name)?;
        return Ok((req, Some(lock)));
    }
    if let Some(flag) = c.image.given() {
        return Err(CliError::usage(format!(
            "{flag} applies to image containers, not to --rootfs or --bundle"
        )));
    }
    match c.network.given() {
        Some(flag) if c.source.bundle.is_some() => {
            return Err(CliError::usage(format!(
                "{flag} applies to image and --rootfs containers (a bundle's config.json has its own namespaces)"
            )))
        }
        _ => c.network.apply(&mut req, &[])?,
    }
    c.health.apply(&mut req, None)?;
    req.name = c.name.clone();
    req.bundle = c.source.bundle.as_deref().map(abs).unwrap_or_default();
    req.rootfs = c.source.rootfs.as_deref().map(abs).unwrap_or_default();
    req.args = c.command.clone();
    req.env = c.env.iter().filter_map(|e| host_env(e)).collect();
    req.cwd = c.cwd.clone().unwrap_or_default();
    Ok((req, None))
}

type ImageLock = nix::fcntl::Flock<File>;

/// Fills `req` for `wren run IMAGE`: the image resolved in the store, its
/// config applied with the flags, the layer snapshots for the overlay.
fn image_request(
    g: &Global,
    c: &ContainerArgs,
    env: Vec<String>,
    req: &mut api::CreateRequest,
) -> Result<ImageLock, CliError> {
    let f = &c.image;
    let store = super::images::store(g)?;
    let lock = store.lock_shared()?;
    let image = super::images::ensure(&store, &c.name, f.pull.as_deref(), &f.registry)?;
    let layers = store.layer_dirs(&image)?;
    let o = wren_images::runconfig::Overrides {
        entrypoint: f.entrypoint.clone(),
        cmd: c.command.clone(),
        env,
        cwd: c.cwd.clone(),
        user: f.user.clone(),
        group_add: f.group_add.clone(),
    };
    let rc =
        wren_images::runconfig::resolve(&image, &layers, &o).map_err(|e| CliError::chain(&e))?;
    let exposed = image
        .config
        .config()
        .as_ref()
        .and_then(|c| c.exposed_ports().clone())
        .unwrap_or_default();
    c.network.apply(req, &exposed)?;
    // Docker's Healthcheck is not in the OCI config type: read the blob.
    let healthcheck = store
        .read_blob(image.manifest.config().digest().as_ref())
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .map(|v| v["config"]["Healthcheck"].clone())
        .filter(|h| h.is_object());
    c.health.apply(req, healthcheck.as_ref())?;
    req.name = match &f.container_name {
        Some(n) => n.clone(),
        None => generated_name(&image.name),
    };
    req.image = image.name.clone();
    req.image_id = image.id.clone();
    req.image_layers = layers.iter().map(|l| l.display().to_string()).collect();
    req.args = rc.args;
    req.env = rc.env;
    req.cwd = rc.cwd;
    req.has_user = true;
    req.uid = rc.uid;
    req.gid = rc.gid;
    req.additional_gids = rc.additional_gids;
    req.stop_signal = f.stop_signal.clone().or(rc.stop_signal).unwrap_or_default();
    if !req.stop_signal.is_empty() && wren_runtime::signal::parse(&req.stop_signal).is_err() {
        return Err(CliError::usage(format!(
            "--stop-signal: unknown signal {:?}",
            req.stop_signal
        )));
    }
    req.hostname = f.hostname.clone().unwrap_or_default();
    req.stop_timeout = f.stop_timeout.unwrap_or(0);
    if let Some(l) = f
        .label
        .iter()
        .find(|l| !l.contains('=') || l.starts_with('='))
    {
        return Err(CliError::usage(format!("--label {l:?}: want KEY=VALUE")));
    }
    req.labels = f.label.clone();
    req.devices = f.device.clone();
    req.device_cgroup_rules = f.device_cgroup_rule.clone();
    req.ulimits = f.ulimit.clone();
    req.sysctls = f.sysctl.clone();
    if let Some(sz) = &f.shm_size {
        req.shm_size = parse_size(sz)
            .ok_or_else(|| CliError::usage(format!("--shm-size: invalid size {sz:?}")))?;
    }
    req.pid_mode = namespace_mode("pid", &f.pid)?;
    req.ipc_mode = namespace_mode("ipc", &f.ipc)?;
    req.uts_mode = namespace_mode("uts", &f.uts)?;
    if req.uts_mode == "host" && f.hostname.is_some() {
        return Err(CliError::usage(
            "--hostname cannot go with --uts host: the container has the host's hostname",
        ));
    }
    if network::joined(&req.uts_mode).is_some() && f.hostname.is_some() {
        return Err(CliError::usage(format!(
            "--hostname cannot go with --uts {}: the container has that container's hostname",
            req.uts_mode
        )));
    }
    if req.ipc_mode == "host" && f.shm_size.is_some() {
        return Err(CliError::usage(
            "--shm-size cannot go with --ipc host: the container uses the host's /dev/shm",
        ));
    }
    if let Some(other) = network::joined(&req.ipc_mode).filter(|_| f.shm_size.is_some()) {
        return Err(CliError::usage(format!(
            "--shm-size cannot go with --ipc container:{other}: the container uses {other}'s /dev/shm"
        )));
    }
    let mut volumes = Vec::new();
    for v in &f.volume {
        volumes.push(mounts::volume(v)?);
    }
    let mut tmpfs = f.tmpfs.clone();
    for m in &f.mount {
        match mounts::mount_flag(m)? {
            MountFlag::Volume(v) => volumes.push(v),
            MountFlag::Tmpfs(t) => tmpfs.push(t),
        }
    }
    for v in volumes {
        let m = v.spec;
        let m = match mounts::named_volume(&m.source) {
            Some(name) => {
                let (data, _) = super::volumes::ensure(g, name)?;
                let empty = std::fs::read_dir(&data).is_ok_and(|mut d| d.next().is_none());
                if empty && !v.nocopy {
                    // Docker fills an empty volume from the image.
                    wren_images::copyout::copy_out(&layers, &m.destination, &data).map_err(
                        |e| {
                            CliError::failed(format!("fill volume {name} from {}: {e}", image.name))
                        },
                    )?;
                }
                api::MountSpec {
                    source: data.display().to_string(),
                    ..m
                }
            }
            None => m,
        };
        req.mounts.push(m);
    }
    for t in &tmpfs {
        let (dst, opts) = t.split_once(':').unwrap_or((t.as_str(), ""));
        let mut m = api::MountSpec::new();
        m.type_ = "tmpfs".into();
        m.source = "tmpfs".into();
        m.destination = dst.to_string();
        m.options = ["nosuid", "nodev", "mode=1777"]
            .iter()
            .map(|s| s.to_string())
            .chain(opts.split(',').filter(|o| !o.is_empty()).map(String::from))
            .collect();
        req.mounts.push(m);
    }
    req.read_only = f.read_only;
    if let Some(m) = &f.memory {
        req.memory = parse_size(m)
            .ok_or_else(|| CliError::usage(format!("--memory: invalid size {m:?}")))?;
    }
    req.pids_limit = f.pids_limit.unwrap_or(0);
    if let Some(c) = f.cpus {
        if !(c > 0.0 && c.is_finite()) {
            return Err(CliError::usage(format!(
                "--cpus: {c} is not a positive number"
            )));
        }
        req.cpus = c;
    }
    req.cpu_shares = f.cpu_shares.unwrap_or(0);
    if let Some(m) = &f.memory_swap {
        if req.memory == 0 {
            return Err(CliError::usage(
                "--memory-swap needs --memory (it is memory plus swap)",
            ));
        }
        req.memory_swap = match m.trim() {
            "-1" => -1,
            s => parse_size(s)
                .ok_or_else(|| CliError::usage(format!("--memory-swap: invalid size {m:?}")))?,
        };
        if req.memory_swap > 0 && req.memory_swap < req.memory {
            return Err(CliError::usage(format!(
                "--memory-swap {m}: less than --memory (it is memory plus swap)"
            )));
        }
    }
    if let Some(m) = &f.memory_reservation {
        req.memory_reservation = parse_size(m)
            .ok_or_else(|| CliError::usage(format!("--memory-reservation: invalid size {m:?}")))?;
    }
    for (flag, v, out) in [
        ("--cpuset-cpus", &f.cpuset_cpus, &mut req.cpuset_cpus),
        ("--cpuset-mems", &f.cpuset_mems, &mut req.cpuset_mems),
    ] {
        if let Some(v) = v {
            cpu_list(flag, v)?;
            *out = v.clone();
        }
    }
    if let Some(n) = f.oom_score_adj {
        if !(-1000..=1000).contains(&n) {
            return Err(CliError::usage(format!(
                "--oom-score-adj {n}: want -1000 to 1000"
            )));
        }
        req.oom_score_adj_set = true;
        req.oom_score_adj = n;
    }
    security_opts(f, req)?;
    req.privileged = f.privileged;
    req.init = f.init;
    req.cap_add = f.cap_add.clone();
    req.cap_drop = f.cap_drop.clone();
    Ok(lock)
}

/// The variables the user gave: `--env-file` lines, then `-e`, each
/// `KEY` alone given wren's own value (or left out).
fn user_env(c: &ContainerArgs) -> Result<Vec<String>, CliError> {
    let mut env = Vec::new();
    for file in &c.image.env_file {
        let text = std::fs::read_to_string(file)
            .map_err(|e| CliError::failed(format!("--env-file {}: {e}", file.display())))?;
        env.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .filter_map(host_env),
        );
    }
    env.extend(c.env.iter().filter_map(|e| host_env(e)));
    Ok(env)
}

/// `c` as `wren auto-update` makes the container again later, from
/// another directory and environment: `env`, the user's variables as
/// [`user_env`] resolved them (env files read, `KEY` alone given its
/// value now), paths absolute, the name
/// fixed, no pull policy (auto-update pulls first). JSON, kept by wrend
/// in the saved request (`CreateRequest.recreate`).
fn recreate_args(c: &ContainerArgs, env: Vec<String>, name: &str) -> Result<String, CliError> {
    let mut c = c.clone();
    c.env = env;
    let f = &mut c.image;
    f.env_file.clear();
    f.container_name = Some(name.to_string());
    f.pull = None;
    let absolute = |p: &mut std::path::PathBuf| {
        if let Ok(a) = std::path::absolute(&*p) {
            *p = a;
        }
    };
    if let Some(p) = f.registry.authfile.as_mut() {
        absolute(p);
    }
    f.registry.ca_cert.iter_mut().for_each(absolute);
    for opt in f.security_opt.iter_mut() {
        if let Some((key, file)) = opt.split_once(['=', ':']) {
            if key == "seccomp" && file != "unconfined" && !file.starts_with('/') {
                *opt = format!("{key}={}", abs(Path::new(file)));
            }
        }
    }
    serde_json::to_string(&c)
        .map_err(|e| CliError::failed(format!("record the flags of {name}: {e}")))
}

/// `--security-opt`, as docker and podman spell them. `label=disable` and
/// `apparmor=unconfined` ask for what wren does anyway (it sets no SELinux
/// label and no AppArmor profile on an image's container), so they are
/// accepted and change nothing; any other label or profile is refused
/// rather than ignored.
fn security_opts(
    f: &super::args::ImageFlags,
    req: &mut api::CreateRequest,
) -> Result<(), CliError> {
    let bad = |opt: &str, why: &str| CliError::usage(format!("--security-opt {opt:?}: {why}"));
    for opt in &f.security_opt {
        let (key, value) = match opt.split_once(['=', ':']) {
            Some((k, v)) => (k, Some(v)),
            None => (opt.as_str(), None),
        };
        match (key, value) {
            ("seccomp", Some("unconfined")) => req.seccomp = "unconfined".into(),
            ("seccomp", Some("")) | ("seccomp", None) => {
                return Err(bad(opt, "want seccomp=unconfined or seccomp=FILE"))
            }
            ("seccomp", Some(_)) if f.privileged => {
                return Err(bad(
                    opt,
                    "contradicts --privileged, which runs without a seccomp profile",
                ))
            }
            ("seccomp", Some(file)) => {
                req.seccomp = std::fs::read_to_string(file)
                    .map_err(|e| CliError::failed(format!("--security-opt seccomp={file}: {e}")))?;
            }
            ("no-new-privileges", None | Some("true")) => req.no_new_privileges = "true".into(),
            ("no-new-privileges", Some("false")) => req.no_new_privileges = "false".into(),
            ("no-new-privileges", Some(_)) => {
                return Err(bad(opt, "want no-new-privileges[:true|false]"))
            }
            ("label", Some("disable")) | ("apparmor", Some("unconfined")) => {}
            ("label", _) => {
                return Err(bad(
                    opt,
                    "wren sets no SELinux labels: only label=disable is accepted",
                ))
            }
            ("apparmor", _) => {
                return Err(bad(
                    opt,
                    "wren sets no AppArmor profile: only apparmor=unconfined is accepted",
                ))
            }
            _ => {
                return Err(bad(
                    opt,
                    "unknown option: want seccomp=, no-new-privileges, label=disable or apparmor=unconfined",
                ))
            }
        }
    }
    Ok(())
}

/// `--pid`, `--ipc`, `--uts`: "" (not given), "private" or "host"; for
/// `--pid` and `--ipc`, `container:NAME` too, and `--ipc shareable`.
fn namespace_mode(flag: &str, v: &Option<String>) -> Result<String, CliError> {
    match v.as_deref() {
        None => Ok(String::new()),
        Some(m @ ("private" | "host")) => Ok(m.to_string()),
        Some("shareable") if flag == "ipc" => Ok("shareable".into()),
        Some(m) if network::joined(m).is_some() => {
            match network::joined(m).filter(|c| network::valid_network_name(c)) {
                Some(_) => Ok(m.to_string()),
                None => Err(CliError::usage(format!(
                    "--{flag} {m:?}: want container:NAME, NAME a container's name"
                ))),
            }
        }
        Some(m) if m.starts_with("container:") || m.starts_with("service:") => {
            Err(CliError::usage(format!(
                "--{flag} {m:?}: want container:NAME (service: is compose's spelling)"
            )))
        }
        Some(m) if flag == "pid" => Err(CliError::usage(format!(
            "--pid {m:?}: want private, host or container:NAME"
        ))),
        Some(m) if flag == "ipc" => Err(CliError::usage(format!(
            "--ipc {m:?}: want private, host, shareable or container:NAME"
        ))),
        Some(m) => Err(CliError::usage(format!(
            "--{flag} {m:?}: want private, host or container:NAME"
        ))),
    }
}

/// One `--log-opt KEY=VALUE` (Docker's json-file keys wren's rotated log
/// files have): `max-size` and `max-file`.
fn log_opt(o: &str, req: &mut api::CreateRequest) -> Result<(), CliError> {
    let bad = |why: &str| Err(CliError::usage(format!("--log-opt {o:?}: {why}")));
    let Some((key, value)) = o.split_once('=') else {
        return bad("want KEY=VALUE");
    };
    match key {
        "max-size" => match parse_size(value) {
            Some(n) => req.log_max_size = n as u64,
            None => return bad("max-size is a size: BYTES, or a number with k, m or g"),
        },
        "max-file" => match value.parse::<u32>() {
            Ok(n) if (1..=crate::logfile::READ_KEEP).contains(&n) => req.log_max_files = n,
            _ => {
                return bad(&format!(
                    "max-file is a number of files from 1 to {}",
                    crate::logfile::READ_KEEP
                ))
            }
        },
        _ => return bad("unknown key (max-size, max-file)"),
    }
    Ok(())
}

/// Checks a cpuset list: `N`, `N-M`, joined by commas (`0-3,6`).
pub(super) fn cpu_list(flag: &str, v: &str) -> Result<(), CliError> {
    let ok = !v.is_empty()
        && v.split(',').all(|part| {
            let (a, b) = part.split_once('-').unwrap_or((part, part));
            match (a.parse::<u32>(), b.parse::<u32>()) {
                (Ok(a), Ok(b)) => a <= b,
                _ => false,
            }
        });
    if ok {
        Ok(())
    } else {
        Err(CliError::usage(format!(
            "{flag} {v:?}: want CPU or node numbers and ranges, like 0-3,6"
        )))
    }
}

/// `512`, `64k`, `100m`, `1g` (powers of 1024, as docker reads them).
pub(super) fn parse_size(s: &str) -> Option<i64> {
    let s = s.trim().to_ascii_lowercase();
    let s = s.strip_suffix('b').unwrap_or(&s);
    let (num, mult) = match s.chars().last()? {
        'k' => (&s[..s.len() - 1], 1i64 << 10),
        'm' => (&s[..s.len() - 1], 1 << 20),
        'g' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    num.parse::<i64>()
        .ok()?
        .checked_mul(mult)
        .filter(|n| *n > 0)
}

/// `busybox-1a2b3c`: the image's last path element and a random suffix.
fn generated_name(image: &str) -> String {
    let base = image.rsplit('/').next().unwrap_or(image);
    let base: String = base
        .split([':', '@'])
        .next()
        .unwrap_or("c")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        .take(40)
        .collect();
    let mut buf = [0u8; 3];
    let _ =
        File::open("/dev/urandom").and_then(|mut f| std::io::Read::read_exact(&mut f, &mut buf));
    let base = if base.is_empty() {
        "c".to_string()
    } else {
        base
    };
    format!("{base}-{:02x}{:02x}{:02x}", buf[0], buf[1], buf[2])
}

/// An `-e`/`--env-file` entry: `KEY=VALUE` as it is; `KEY` alone takes
/// wren's own value, and is left out when wren has none (as Docker).
pub(super) fn host_env(e: &str) -> Option<String> {
    if e.contains('=') {
        return Some(e.to_string());
    }
    std::env::var(e).ok().map(|v| format!("{e}={v}"))
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
    let follower = Follower::open(Path::new(log_path));
    let done = wait_for_exit(&g.socket, name, "");
    let _: api::ContainerResponse = w.call("Start", &name_req(name), false)?;
    if stdin {
        feed_stdin(g, w, name, true)?;
    }
    follow(w, name, follower, done)
}

/// Feeds wren's stdin to the container's stdin fifo on a thread; with
/// `close`, the container's stdin is closed when ours ends (a foreground
/// `run -i`), else it stays open for the next client (`attach`).
pub(super) fn feed_stdin(
    g: &Global,
    w: &mut Wrend,
    name: &str,
    close: bool,
) -> Result<(), CliError> {
    // The fifo's path, without taking the output from the log (a container
    // without a terminal logs its output whether or not a client is there).
    let mut a = api::AttachRequest::new();
    a.name = name.to_string();
    let paths: api::AttachResponse = w.call("Attach", &a, false)?;
    let _: api::Empty = w.call("Detach", &a, false)?;
    let f = crate::fifo::open(Path::new(&paths.stdin))?;
    stdio::feed_stdin(&g.socket, name, "", File::from(f), close);
    Ok(())
}

/// Prints what `follower` reads until `done` reports the container's exit
/// (returns its status), passing SIGINT, SIGTERM and SIGHUP on to it.
pub(super) fn follow(
    w: &mut Wrend,
    name: &str,
    mut follower: Follower,
    done: mpsc::Receiver<Result<u32, super::client::ClientError>>,
) -> Result<u32, CliError> {
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
