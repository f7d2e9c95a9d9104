//! `wren-oci`: a runc-compatible command line over wren's runtime library,
//! so anything that drives runc (containerd's runc shim, Docker, Podman,
//! CRI-O, conformance suites) can drive wren. Each invocation is one short
//! process; container state lives under `--root`.

mod args;
mod events;

use std::io::Write;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::ExitCode;

use args::{Args, Usage};
use wren_runtime::{ConsoleMode, Container, CreateOptions, ExecOptions, Stdio};

const DEFAULT_ROOT: &str = "/run/wren-oci";

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn main() -> ExitCode {
    // Must come first: this binary is also the container init.
    wren_runtime::run_if_init();
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut args = Args::new(argv);
    let global = match Global::parse(&mut args) {
        Ok(g) => g,
        Err(e) => return fail(&None, &*e),
    };
    match run(&global, args) {
        Ok(code) => code,
        Err(e) => fail(&global.log, &*e),
    }
}

/// Print the error chain once; also to `--log` (runc's shim reads it).
fn fail(log: &Option<(PathBuf, bool)>, e: &dyn std::error::Error) -> ExitCode {
    let msg = wren_runtime::error::chain(e);
    if let Some((path, json)) = log {
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let line = if *json {
                serde_json::json!({"level": "error", "msg": msg, "time": wren_runtime::state::rfc3339_now()}).to_string()
            } else {
                format!(
                    "time=\"{}\" level=error msg={msg:?}",
                    wren_runtime::state::rfc3339_now()
                )
            };
            let _ = writeln!(f, "{line}");
        }
    }
    eprintln!("wren-oci: {msg}");
    ExitCode::FAILURE
}

struct Global {
    root: PathBuf,
    log: Option<(PathBuf, bool)>,
}

impl Global {
    fn parse(args: &mut Args) -> Result<Global> {
        let mut root = PathBuf::from(DEFAULT_ROOT);
        let mut log = None;
        let mut json = false;
        while let Some(flag) = args.peek_flag() {
            match flag.as_str() {
                "--root" => root = args.value(&flag)?.into(),
                "--log" => log = Some(PathBuf::from(args.value(&flag)?)),
                "--log-format" => json = args.value(&flag)? == "json",
                "--debug" | "--systemd-cgroup" | "--no-new-keyring" => {
                    args.next();
                }
                "--criu" | "--rootless" => {
                    args.value(&flag)?;
                }
                "-v" | "--version" => {
                    args.next();
                    args.push_front("version");
                }
                "-h" | "--help" => {
                    args.next();
                    args.push_front("help");
                }
                _ => return Err(Usage(format!("unknown global flag {flag}")).into()),
            }
        }
        Ok(Global {
            root,
            log: log.map(|l| (l, json)),
        })
    }
}

fn run(g: &Global, mut args: Args) -> Result<ExitCode> {
    let cmd = args
        .next()
        .ok_or_else(|| Usage("missing command; see `wren-oci help`".into()))?;
    match cmd.as_str() {
        "create" => create(g, args, false).map(|_| ExitCode::SUCCESS),
        "run" => create(g, args, true),
        "start" => {
            let id = args.id()?;
            Container::load(&g.root, &id)?.start()?;
            Ok(ExitCode::SUCCESS)
        }
        "state" => {
            let id = args.id()?;
            let st = Container::load(&g.root, &id)?.state();
            println!("{}", serde_json::to_string_pretty(&st)?);
            Ok(ExitCode::SUCCESS)
        }
        "kill" => {
            let mut all = false;
            while let Some(f) = args.peek_flag() {
                match f.as_str() {
                    "--all" | "-a" => {
                        args.next();
                        all = true;
                    }
                    _ => return Err(Usage(format!("kill: unknown flag {f}")).into()),
                }
            }
            let id = args.id()?;
            let sig = match args.next() {
                Some(s) => args::signal(&s)?,
                None => libc::SIGTERM,
            };
            Container::load(&g.root, &id)?.kill(sig, all)?;
            Ok(ExitCode::SUCCESS)
        }
        "delete" => {
            let mut force = false;
            while let Some(f) = args.peek_flag() {
                match f.as_str() {
                    "--force" | "-f" => {
                        args.next();
                        force = true;
                    }
                    _ => return Err(Usage(format!("delete: unknown flag {f}")).into()),
                }
            }
            let id = args.id()?;
            match Container::load(&g.root, &id) {
                Ok(c) => c.delete(force)?,
                // runc: deleting a missing container with --force is fine.
                Err(wren_runtime::Error::NotFound(_)) if force => {}
                Err(e) => return Err(e.into()),
            }
            Ok(ExitCode::SUCCESS)
        }
        "exec" => exec(g, args),
        "ps" => {
            let mut json = false;
            while let Some(f) = args.peek_flag() {
                match f.as_str() {
                    "--format" | "-f" => json = args.value(&f)? == "json",
                    _ => return Err(Usage(format!("ps: unknown flag {f}")).into()),
                }
            }
            let id = args.id()?;
            let pids = Container::load(&g.root, &id)?.pids()?;
            if json {
                println!("{}", serde_json::to_string(&pids)?);
            } else {
                println!("PID");
                for p in pids {
                    println!("{p}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        "list" => list(g, args),
        "pause" => {
            Container::load(&g.root, &args.id()?)?.pause()?;
            Ok(ExitCode::SUCCESS)
        }
        "resume" => {
            Container::load(&g.root, &args.id()?)?.resume()?;
            Ok(ExitCode::SUCCESS)
        }
        "update" => update(g, args),
        "events" => events(g, args),
        "features" => {
            println!("{}", serde_json::to_string_pretty(&features())?);
            Ok(ExitCode::SUCCESS)
        }
        "spec" => {
            let mut bundle = PathBuf::from(".");
            while let Some(f) = args.peek_flag() {
                match f.as_str() {
                    "--bundle" | "-b" => bundle = args.value(&f)?.into(),
                    "--rootless" => {
                        args.next();
                    }
                    _ => return Err(Usage(format!("spec: unknown flag {f}")).into()),
                }
            }
            let path = bundle.join("config.json");
            if path.exists() {
                return Err(Usage(format!("{} exists; remove it first", path.display())).into());
            }
            let spec = wren_runtime::spec::example(&["sh".into()], true);
            std::fs::write(&path, serde_json::to_string_pretty(&spec)?)?;
            Ok(ExitCode::SUCCESS)
        }
        "version" => {
            println!("wren-oci version {}", env!("CARGO_PKG_VERSION"));
            println!("spec: {}", wren_runtime::spec::OCI_VERSION);
            Ok(ExitCode::SUCCESS)
        }
        "help" => {
            print!("{}", args::HELP);
            Ok(ExitCode::SUCCESS)
        }
        other => Err(Usage(format!("unknown command {other:?}; see `wren-oci help`")).into()),
    }
}

fn create(g: &Global, mut args: Args, run: bool) -> Result<ExitCode> {
    let mut bundle = PathBuf::from(".");
    let mut pid_file = None;
    let mut console_socket = None;
    let mut preserve_fds = 0;
    let mut no_pivot = false;
    let mut detach = false;
    let mut keep = false;
    while let Some(f) = args.peek_flag() {
        match f.as_str() {
            "--bundle" | "-b" => bundle = args.value(&f)?.into(),
            "--pid-file" => pid_file = Some(absolute(args.value(&f)?)?),
            "--console-socket" => console_socket = Some(PathBuf::from(args.value(&f)?)),
            "--preserve-fds" => {
                preserve_fds = args
                    .value(&f)?
                    .parse()
                    .map_err(|_| Usage("--preserve-fds takes a number".into()))?
            }
            "--no-pivot" => {
                args.next();
                no_pivot = true;
            }
            "--detach" | "-d" if run => {
                args.next();
                detach = true;
            }
            "--keep" if run => {
                args.next();
                keep = true;
            }
            "--no-new-keyring" | "--no-subreaper" => {
                args.next();
            }
            _ => return Err(Usage(format!("unknown flag {f}")).into()),
        }
    }
    let id = args.id()?;
    if run && !detach {
        // Orphans of the container (no pid namespace) reparent to us.
        // SAFETY: integer prctl.
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    }
    let console = match &console_socket {
        Some(p) => ConsoleMode::Socket(p.clone()),
        None => ConsoleMode::Return,
    };
    let mut c = Container::create(CreateOptions {
        id: id.clone(),
        bundle,
        state_root: g.root.clone(),
        stdio: Stdio::default(),
        console,
        preserve_fds,
        no_pivot,
        pid_file,
    })?;
    let terminal = c
        .spec()
        .process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false);
    let master = c.take_console();
    if terminal && console_socket.is_none() && (!run || detach) {
        let _ = c.delete(true);
        return Err(Usage("process.terminal needs --console-socket when detached".into()).into());
    }
    if !run {
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(m) = &master {
        // Before start: the process must not see a 0x0 terminal.
        args::resize_from_stdin(m.as_fd());
    }
    c.start()?;
    if detach {
        return Ok(ExitCode::SUCCESS);
    }
    let code = args::foreground(&c, master)?;
    if !keep {
        c.delete(true)?;
    }
    Ok(ExitCode::from(code as u8))
}

fn absolute(p: String) -> Result<PathBuf> {
    let p = PathBuf::from(p);
    Ok(if p.is_absolute() {
        p
    } else {
        std::env::current_dir()?.join(p)
    })
}

fn exec(g: &Global, mut args: Args) -> Result<ExitCode> {
    let mut process_file = None;
    let mut tty = false;
    let mut detach = false;
    let mut pid_file = None;
    let mut console_socket = None;
    let mut cwd = None;
    let mut env = Vec::new();
    let mut user = None;
    let mut caps = Vec::new();
    let mut nnp = false;
    let mut preserve_fds = 0;
    while let Some(f) = args.peek_flag() {
        match f.as_str() {
            "--process" | "-p" => process_file = Some(PathBuf::from(args.value(&f)?)),
            "--tty" | "-t" => {
                args.next();
                tty = true;
            }
            "--detach" | "-d" => {
                args.next();
                detach = true;
            }
            "--pid-file" => pid_file = Some(absolute(args.value(&f)?)?),
            "--console-socket" => console_socket = Some(PathBuf::from(args.value(&f)?)),
            "--cwd" => cwd = Some(args.value(&f)?),
            "--env" | "-e" => env.push(args.value(&f)?),
            "--user" | "-u" => user = Some(args.value(&f)?),
            "--cap" | "-c" => caps.push(args.value(&f)?),
            "--no-new-privs" => {
                args.next();
                nnp = true;
            }
            "--preserve-fds" => {
                preserve_fds = args
                    .value(&f)?
                    .parse()
                    .map_err(|_| Usage("--preserve-fds takes a number".into()))?
            }
            "--additional-gids" | "-g" | "--apparmor" | "--process-label" | "--cgroup" => {
                return Err(Usage(format!("exec: {f} is not supported; use --process")).into())
            }
            _ => return Err(Usage(format!("exec: unknown flag {f}")).into()),
        }
    }
    let id = args.id()?;
    let mut c = Container::load(&g.root, &id)?;
    let mut process: oci_spec::runtime::Process = match process_file {
        Some(p) => {
            let data = std::fs::read(&p).map_err(|e| format!("read {}: {e}", p.display()))?;
            serde_json::from_slice(&data).map_err(|e| format!("parse {}: {e}", p.display()))?
        }
        None => {
            let rest: Vec<String> = args.rest();
            if rest.is_empty() {
                return Err(Usage("exec: no command given".into()).into());
            }
            args::process_from_flags(c.spec(), rest, tty, cwd, env, user.as_deref(), &caps, nnp)?
        }
    };
    let terminal = process.terminal().unwrap_or(false);
    if terminal && console_socket.is_none() && process.console_size().is_none() {
        // The pty is made with our terminal's size, so the process never
        // sees 0x0 (a resize after the exec would race with it).
        if let Some((rows, cols)) = args::stdin_size() {
            let size = oci_spec::runtime::BoxBuilder::default()
                .height(rows)
                .width(cols)
                .build()?;
            process.set_console_size(Some(size));
        }
    }
    let console = match &console_socket {
        Some(p) => ConsoleMode::Socket(p.clone()),
        None => ConsoleMode::Return,
    };
    if terminal && detach && console_socket.is_none() {
        return Err(Usage("exec: a detached tty process needs --console-socket".into()).into());
    }
    let p = c.exec(ExecOptions {
        process,
        stdio: Stdio::default(),
        console,
        preserve_fds,
        pid_file,
    })?;
    if detach {
        return Ok(ExitCode::SUCCESS);
    }
    let code = args::wait_exec(&p)?;
    Ok(ExitCode::from(code as u8))
}

fn list(g: &Global, mut args: Args) -> Result<ExitCode> {
    let mut json = false;
    let mut quiet = false;
    while let Some(f) = args.peek_flag() {
        match f.as_str() {
            "--format" | "-f" => json = args.value(&f)? == "json",
            "--quiet" | "-q" => {
                args.next();
                quiet = true;
            }
            _ => return Err(Usage(format!("list: unknown flag {f}")).into()),
        }
    }
    let mut states = Vec::new();
    if let Ok(dir) = std::fs::read_dir(&g.root) {
        for entry in dir.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Ok(c) = Container::load(&g.root, &name) {
                states.push(c.state());
            }
        }
    }
    states.sort_by(|a, b| a.id.cmp(&b.id));
    if json {
        println!("{}", serde_json::to_string(&states)?);
    } else if quiet {
        for s in &states {
            println!("{}", s.id);
        }
    } else {
        println!(
            "{:<20} {:<8} {:<10} {:<40} CREATED",
            "ID", "PID", "STATUS", "BUNDLE"
        );
        for s in &states {
            println!(
                "{:<20} {:<8} {:<10} {:<40} {}",
                s.id,
                s.pid,
                s.status.to_string(),
                s.bundle.display(),
                s.created.as_deref().unwrap_or("")
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn update(g: &Global, mut args: Args) -> Result<ExitCode> {
    let mut file = None;
    let mut patch = serde_json::Map::new();
    let mut set = |section: &str, key: &str, value: serde_json::Value| {
        let s = patch
            .entry(section.to_string())
            .or_insert_with(|| serde_json::json!({}));
        s[key] = value;
    };
    while let Some(f) = args.peek_flag() {
        let num = |a: &mut Args| -> Result<i64> {
            let v = a.value(&f)?;
            args::parse_size(&v).ok_or_else(|| Usage(format!("{f}: bad number {v:?}")).into())
        };
        match f.as_str() {
            "--resources" | "-r" => file = Some(args.value(&f)?),
            "--memory" => set("memory", "limit", num(&mut args)?.into()),
            "--memory-reservation" => set("memory", "reservation", num(&mut args)?.into()),
            "--memory-swap" => set("memory", "swap", num(&mut args)?.into()),
            "--cpu-shares" => set("cpu", "shares", num(&mut args)?.into()),
            "--cpu-quota" => set("cpu", "quota", num(&mut args)?.into()),
            "--cpu-period" => set("cpu", "period", num(&mut args)?.into()),
            "--cpuset-cpus" => set("cpu", "cpus", args.value(&f)?.into()),
            "--cpuset-mems" => set("cpu", "mems", args.value(&f)?.into()),
            "--pids-limit" => set("pids", "limit", num(&mut args)?.into()),
            "--blkio-weight" => set("blockIO", "weight", num(&mut args)?.into()),
            _ => return Err(Usage(format!("update: unknown flag {f}")).into()),
        }
    }
    let id = args.id()?;
    let resources: oci_spec::runtime::LinuxResources = match file {
        Some(f) => {
            let data = if f == "-" {
                let mut s = Vec::new();
                std::io::Read::read_to_end(&mut std::io::stdin(), &mut s)?;
                s
            } else {
                std::fs::read(&f)?
            };
            serde_json::from_slice(&data).map_err(|e| format!("parse resources: {e}"))?
        }
        None => serde_json::from_value(serde_json::Value::Object(patch))?,
    };
    Container::load(&g.root, &id)?.update(&resources)?;
    Ok(ExitCode::SUCCESS)
}

fn events(g: &Global, mut args: Args) -> Result<ExitCode> {
    let mut stats = false;
    let mut interval = std::time::Duration::from_secs(5);
    while let Some(f) = args.peek_flag() {
        match f.as_str() {
            "--stats" => {
                args.next();
                stats = true;
            }
            "--interval" => {
                let v = args.value(&f)?;
                interval = events::parse_interval(&v)
                    .ok_or_else(|| Usage(format!("--interval: bad duration {v:?}")))?;
            }
            _ => return Err(Usage(format!("events: unknown flag {f}")).into()),
        }
    }
    let id = args.id()?;
    let c = Container::load(&g.root, &id)?;
    if c.status() == wren_runtime::Status::Stopped {
        return Err(format!("container {id} is not running").into());
    }
    if stats {
        events::stats_once(&c)?;
    } else {
        events::stream(&c, interval)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn features() -> serde_json::Value {
    serde_json::json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": wren_runtime::spec::OCI_VERSION,
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
        "mountOptions": ["async", "atime", "bind", "defaults", "dev", "diratime", "dirsync", "exec", "idmap", "iversion",
            "lazytime", "loud", "mand", "noatime", "nodev", "nodiratime", "noexec", "noiversion", "nolazytime",
            "nomand", "norelatime", "nostrictatime", "nosuid", "nosymfollow", "private", "ratime", "rbind", "rdev",
            "rdiratime", "relatime", "remount", "rexec", "ridmap", "rnoatime", "rnodev", "rnodiratime", "rnoexec",
            "rnorelatime", "rnostrictatime", "rnosuid", "rnosymfollow", "ro", "rprivate", "rrelatime", "rro", "rrw",
            "rshared", "rslave", "rstrictatime", "rsuid", "rsymfollow", "runbindable", "rw", "shared", "silent",
            "slave", "strictatime", "suid", "symfollow", "sync", "tmpcopyup", "unbindable"],
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"],
            "capabilities": (0..=wren_runtime::capabilities::last_cap().unwrap_or(40)).map(wren_runtime::capabilities::name).collect::<Vec<_>>(),
            "cgroup": {"v1": true, "v2": true, "systemd": false, "systemdUser": false, "rdma": false},
            "seccomp": {"enabled": true, "actions": ["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL",
                "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY", "SCMP_ACT_TRACE", "SCMP_ACT_TRAP"],
                "operators": ["SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_LE", "SCMP_CMP_LT", "SCMP_CMP_MASKED_EQ", "SCMP_CMP_NE"]},
            "apparmor": {"enabled": wren_runtime::lsm::apparmor_enabled()},
            "selinux": {"enabled": wren_runtime::lsm::selinux_enabled()},
            "intelRdt": {"enabled": false},
            "mountExtensions": {"idmap": {"enabled": true}}
        },
        "annotations": {"io.github.wren.version": env!("CARGO_PKG_VERSION")}
    })
}
