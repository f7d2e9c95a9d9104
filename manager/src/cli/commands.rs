//! One function per `wren` command. Output of a foreground `run` comes from
//! the container's log file (wrend writes it, the client on the same host
//! follows it); `exec` output and interactive sessions go through fifos the
//! client makes itself (as `ctr` does) or, for `run -it`, the container's own
//! terminal fifos handed over by `Attach`.
//!
//! Runs in `wren`.

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use wren_protocol::manager as api;

use super::args::{self, flag, opt, Opt};
use super::client::Wrend;
use super::{output, tty, CliError, Global};

const RUN_OPTS: &[Opt] = &[
    flag(&["-d", "--detach"]),
    flag(&["--rm"]),
    flag(&["-i", "--interactive"]),
    flag(&["-t", "--tty"]),
    opt(&["--restart"]),
    flag(&["--start-at-boot"]),
    opt(&["-e", "--env"]),
    opt(&["-w", "--cwd"]),
    opt(&["--rootfs"]),
    opt(&["--bundle"]),
];

/// Runs command `cmd` with its arguments.
pub fn dispatch(g: &Global, cmd: &str, argv: Vec<String>) -> Result<i32, CliError> {
    let json_flag = [flag(&["--json"])];
    match cmd {
        "run" | "create" => run(g, cmd == "run", args::parse(argv, RUN_OPTS, Some(1))?),
        "start" => simple(g, argv, "Start"),
        "pause" => simple(g, argv, "Pause"),
        "resume" => simple(g, argv, "Resume"),
        "stop" => stop(
            g,
            args::parse(
                argv,
                &[opt(&["-t", "--time"]), opt(&["-s", "--signal"])],
                None,
            )?,
        ),
        "kill" => kill(
            g,
            args::parse(
                argv,
                &[opt(&["-s", "--signal"]), flag(&["--all", "-a"])],
                None,
            )?,
        ),
        "rm" | "delete" => rm(g, args::parse(argv, &[flag(&["-f", "--force"])], None)?),
        "list" | "ls" => list(g, args::parse(argv, &json_flag, None)?),
        "inspect" => inspect(g, args::parse(argv, &[], None)?),
        "ps" => ps(g, args::parse(argv, &json_flag, None)?),
        "stats" => stats(g, args::parse(argv, &json_flag, None)?),
        "update" => update(
            g,
            args::parse(
                argv,
                &[
                    opt(&["--memory"]),
                    opt(&["--cpu-shares"]),
                    opt(&["--pids-limit"]),
                    opt(&["--resources"]),
                ],
                None,
            )?,
        ),
        "exec" => exec(
            g,
            args::parse(
                argv,
                &[
                    flag(&["-d", "--detach"]),
                    flag(&["-i", "--interactive"]),
                    flag(&["-t", "--tty"]),
                    opt(&["-e", "--env"]),
                    opt(&["-w", "--cwd"]),
                ],
                Some(1),
            )?,
        ),
        "logs" => logs(
            g,
            args::parse(
                argv,
                &[flag(&["-f", "--follow"]), opt(&["--tail", "-n"])],
                None,
            )?,
        ),
        "events" => events(g, args::parse(argv, &json_flag, None)?),
        "completion" => {
            let p = args::parse(argv, &[], None)?;
            match p.positional.first().map(String::as_str) {
                Some("bash") | None => {
                    print!("{}", super::completion::BASH);
                    Ok(0)
                }
                Some(s) => Err(CliError::usage(format!(
                    "no completion for shell {s:?} (only bash)"
                ))),
            }
        }
        other => Err(CliError::usage(format!("unknown command {other:?}"))),
    }
}

fn connect(g: &Global) -> Result<Wrend, CliError> {
    Ok(Wrend::connect(&g.socket)?)
}

fn name_req(name: &str) -> api::NameRequest {
    let mut r = api::NameRequest::new();
    r.name = name.to_string();
    r
}

fn inspect_one(w: &mut Wrend, name: &str) -> Result<api::Container, CliError> {
    let r: api::ContainerResponse = w.call("Inspect", &name_req(name), false)?;
    Ok(r.container.into_option().unwrap_or_default())
}

fn wait(socket: &Path, name: &str, exec_id: &str) -> Result<u32, CliError> {
    let mut w = Wrend::connect(socket)?;
    let mut r = api::WaitRequest::new();
    r.name = name.to_string();
    r.exec_id = exec_id.to_string();
    let resp: api::WaitResponse = w.call("Wait", &r, true)?;
    Ok(resp.exit_status)
}

/// Waits for an exit on another thread; the receiver gets the status.
pub fn wait_for_exit(
    socket: &Path,
    name: &str,
    exec_id: &str,
) -> mpsc::Receiver<Result<u32, CliError>> {
    let (tx, rx) = mpsc::channel();
    let (socket, name, exec_id) = (socket.to_owned(), name.to_string(), exec_id.to_string());
    std::thread::spawn(move || {
        let _ = tx.send(wait(&socket, &name, &exec_id));
    });
    rx
}

fn run(g: &Global, is_run: bool, p: args::Parsed) -> Result<i32, CliError> {
    let name = p.name()?.to_string();
    let detach = p.has("-d");
    let rm = p.has("--rm");
    let terminal = p.has("-t");
    let interactive = p.has("-i") || terminal;
    if !is_run && (detach || rm) {
        return Err(CliError::usage("create takes neither -d nor --rm"));
    }
    if terminal && !tty::is_tty(0) {
        return Err(CliError::failed("-t needs a terminal on stdin"));
    }
    let mut req = api::CreateRequest::new();
    req.name = name.clone();
    req.bundle = p.value("--bundle").map(abs).unwrap_or_default();
    req.rootfs = p.value("--rootfs").map(abs).unwrap_or_default();
    if req.bundle.is_empty() == req.rootfs.is_empty() {
        return Err(CliError::usage(
            "give exactly one of --rootfs DIR or --bundle DIR",
        ));
    }
    req.args = p.command.clone();
    req.env = p.values("-e");
    req.cwd = p.value("-w").unwrap_or_default().to_string();
    req.restart_policy = p.value("--restart").unwrap_or_default().to_string();
    req.start_at_boot = p.has("--start-at-boot");
    req.terminal = terminal;
    req.stdin = interactive;
    req.auto_remove = rm && detach;
    req.start = is_run && detach;
    let mut w = connect(g)?;
    let created: api::ContainerResponse = w.call("Create", &req, false)?;
    let c = created.container.into_option().unwrap_or_default();
    if !is_run || detach {
        println!("{name}");
        return Ok(0);
    }
    let status = if terminal {
        tty::session(g, &mut w, &name, "", true)?
    } else {
        foreground(g, &mut w, &name, &c.log_path, interactive)?
    };
    if rm {
        let mut d = api::DeleteRequest::new();
        d.name = name;
        d.force = true;
        let _: api::ContainerResponse = w.call("Delete", &d, false)?;
    }
    Ok(status as i32)
}

fn abs(p: &str) -> String {
    std::path::absolute(p)
        .unwrap_or_else(|_| PathBuf::from(p))
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
        let f = crate::wrend::logs::open_fifo(Path::new(&paths.stdin))
            .map_err(|e| CliError::failed(wren_runtime::error::chain(&e)))?;
        feed_stdin(&g.socket, name, "", File::from(f));
    }
    forward_signals();
    loop {
        follower.pump();
        let sig = PENDING_SIGNAL.swap(0, Ordering::Relaxed);
        if sig != 0 {
            let mut k = api::KillRequest::new();
            k.name = name.to_string();
            k.signal = sig as u32;
            if let Err(e) = w.call::<_, api::Empty>("Kill", &k, false) {
                eprintln!("wren: forward signal {sig}: {e}");
            }
        }
        match done.recv_timeout(Duration::from_millis(50)) {
            Ok(status) => {
                follower.pump();
                return status;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(CliError::failed("lost the connection to wrend"))
            }
        }
    }
}

/// Copies our stdin into the process's stdin fifo on another thread; at
/// end of input, asks for CloseIO so the process sees EOF (the shim holds a
/// writer of the fifo until then).
fn feed_stdin(socket: &Path, name: &str, exec_id: &str, fifo: File) {
    let (socket, name, exec_id) = (socket.to_owned(), name.to_string(), exec_id.to_string());
    std::thread::spawn(move || {
        let mut fifo = fifo;
        // The fifo is non-blocking (opened without waiting for a reader).
        let _ = nix::fcntl::fcntl(
            &fifo,
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::empty()),
        );
        let _ = std::io::copy(&mut std::io::stdin().lock(), &mut fifo);
        drop(fifo);
        if let Ok(mut w) = Wrend::connect(&socket) {
            let mut r = api::CloseStdinRequest::new();
            r.name = name;
            r.exec_id = exec_id;
            let _ = w.call::<_, api::Empty>("CloseStdin", &r, false);
        }
    });
}

/// Follows a log file across rotations.
struct Follower {
    path: PathBuf,
    file: Option<File>,
}

impl Follower {
    fn open(path: &Path) -> Self {
        Self {
            path: path.to_owned(),
            file: File::open(path).ok(),
        }
    }

    /// Copies what is new to stdout; switches to a new file after rotation.
    fn pump(&mut self) {
        let mut out = std::io::stdout().lock();
        loop {
            if let Some(f) = self.file.as_mut() {
                let _ = std::io::copy(f, &mut out);
            }
            let current = std::fs::metadata(&self.path).ok().map(|m| m.ino());
            let mine = self
                .file
                .as_ref()
                .and_then(|f| f.metadata().ok())
                .map(|m| m.ino());
            if current.is_some() && current != mine {
                self.file = File::open(&self.path).ok();
                continue;
            }
            break;
        }
        let _ = out.flush();
    }
}

fn simple(g: &Global, argv: Vec<String>, method: &str) -> Result<i32, CliError> {
    let p = args::parse(argv, &[], None)?;
    let name = p.name()?;
    let mut w = connect(g)?;
    if method == "Start" {
        let _: api::ContainerResponse = w.call(method, &name_req(name), false)?;
    } else {
        let _: api::Empty = w.call(method, &name_req(name), false)?;
    }
    println!("{name}");
    Ok(0)
}

fn stop(g: &Global, p: args::Parsed) -> Result<i32, CliError> {
    let name = p.name()?;
    let mut r = api::StopRequest::new();
    r.name = name.to_string();
    r.timeout_secs = p.number("-t")?.unwrap_or(0);
    if let Some(s) = p.value("-s") {
        r.signal = parse_signal(s)?;
    }
    let mut w = connect(g)?;
    let resp: api::ContainerResponse = w.call("Stop", &r, true)?;
    let c = resp.container.into_option().unwrap_or_default();
    println!("{name}");
    let _ = c;
    Ok(0)
}

/// A signal by name (`TERM`, `SIGTERM`) or number.
pub fn parse_signal(s: &str) -> Result<u32, CliError> {
    if let Ok(n) = s.parse::<u32>() {
        return Ok(n);
    }
    let name = s.trim_start_matches("SIG").to_ascii_uppercase();
    let n = match name.as_str() {
        "HUP" => libc::SIGHUP,
        "INT" => libc::SIGINT,
        "QUIT" => libc::SIGQUIT,
        "KILL" => libc::SIGKILL,
        "USR1" => libc::SIGUSR1,
        "USR2" => libc::SIGUSR2,
        "TERM" => libc::SIGTERM,
        "CONT" => libc::SIGCONT,
        "STOP" => libc::SIGSTOP,
        "WINCH" => libc::SIGWINCH,
        "ALRM" => libc::SIGALRM,
        _ => return Err(CliError::usage(format!("unknown signal {s:?}"))),
    };
    Ok(n as u32)
}

fn kill(g: &Global, p: args::Parsed) -> Result<i32, CliError> {
    let name = p.name()?;
    let mut r = api::KillRequest::new();
    r.name = name.to_string();
    r.signal = parse_signal(p.value("-s").unwrap_or("KILL"))?;
    r.all = p.has("--all");
    let mut w = connect(g)?;
    let _: api::Empty = w.call("Kill", &r, false)?;
    Ok(0)
}

fn rm(g: &Global, p: args::Parsed) -> Result<i32, CliError> {
    if p.positional.is_empty() {
        return Err(CliError::usage("rm needs at least one container name"));
    }
    let mut w = connect(g)?;
    let mut status = 0;
    for name in &p.positional {
        let mut r = api::DeleteRequest::new();
        r.name = name.clone();
        r.force = p.has("-f");
        match w.call::<_, api::ContainerResponse>("Delete", &r, false) {
            Ok(_) => println!("{name}"),
            Err(e) => {
                eprintln!("wren: {}", wren_runtime::error::chain(&e));
                status = 1;
            }
        }
    }
    Ok(status)
}

fn list(g: &Global, p: args::Parsed) -> Result<i32, CliError> {
    let mut w = connect(g)?;
    let r: api::ListResponse = w.call("List", &api::ListRequest::new(), false)?;
    if g.json || p.has("--json") {
        let all: Vec<serde_json::Value> = r.containers.iter().map(output::container_json).collect();
        println!("{}", serde_json::to_string_pretty(&all).unwrap_or_default());
    } else {
        print!("{}", output::table(&r.containers));
    }
    Ok(0)
}

fn inspect(g: &Global, p: args::Parsed) -> Result<i32, CliError> {
    let mut w = connect(g)?;
    let c = inspect_one(&mut w, p.name()?)?;
    println!(
        "{}",
        serde_json::to_string_pretty(&output::container_json(&c)).unwrap_or_default()
    );
    Ok(0)
}

fn ps(g: &Global, p: args::Parsed) -> Result<i32, CliError> {
    let mut w = connect(g)?;
    let r: api::PidsResponse = w.call("Pids", &name_req(p.name()?), false)?;
    if g.json || p.has("--json") {
        println!("{}", serde_json::to_string(&r.pids).unwrap_or_default());
    } else {
        println!("PID\tCMD");
        for pid in r.pids {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|b| {
                    String::from_utf8_lossy(&b)
                        .replace('\0', " ")
                        .trim()
                        .to_string()
                })
                .unwrap_or_default();
            println!("{pid}\t{cmd}");
        }
    }
    Ok(0)
}

fn stats(g: &Global, p: args::Parsed) -> Result<i32, CliError> {
    let mut w = connect(g)?;
    let name = p.name()?;
    let r: api::StatsResponse = w.call("Stats", &name_req(name), false)?;
    let v = output::stats_json(&r);
    if g.json || p.has("--json") {
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        println!("NAME\tCPU(ns)\tMEMORY(bytes)\tLIMIT\tPIDS");
        println!(
            "{name}\t{}\t{}\t{}\t{}",
            v["cpu_ns"], v["memory_bytes"], v["memory_limit"], v["pids"]
        );
    }
    Ok(0)
}

fn update(g: &Global, p: args::Parsed) -> Result<i32, CliError> {
    let name = p.name()?;
    let json = if let Some(path) = p.value("--resources") {
        std::fs::read_to_string(path).map_err(|e| CliError::failed(format!("read {path}: {e}")))?
    } else {
        let mut v = serde_json::json!({});
        if let Some(m) = p.number::<i64>("--memory")? {
            v["memory"] = serde_json::json!({"limit": m});
        }
        if let Some(s) = p.number::<u64>("--cpu-shares")? {
            v["cpu"] = serde_json::json!({"shares": s});
        }
        if let Some(l) = p.number::<i64>("--pids-limit")? {
            v["pids"] = serde_json::json!({"limit": l});
        }
        if v.as_object().is_some_and(|o| o.is_empty()) {
            return Err(CliError::usage(
                "update needs --memory, --cpu-shares, --pids-limit or --resources",
            ));
        }
        v.to_string()
    };
    let mut r = api::UpdateRequest::new();
    r.name = name.to_string();
    r.resources_json = json;
    let mut w = connect(g)?;
    let _: api::Empty = w.call("Update", &r, false)?;
    Ok(0)
}

/// A private directory with the fifos of one exec.
struct ExecFifos {
    dir: PathBuf,
}

impl ExecFifos {
    fn new() -> Result<Self, CliError> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir = std::env::temp_dir().join(format!("wren-exec-{}-{nanos}", std::process::id()));
        std::fs::create_dir(&dir)
            .and_then(|()| {
                std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            })
            .map_err(|e| CliError::failed(format!("create {}: {e}", dir.display())))?;
        Ok(Self { dir })
    }

    fn fifo(&self, which: &str) -> Result<(String, File), CliError> {
        let path = self.dir.join(which);
        crate::wrend::logs::make_fifo(&path)
            .and_then(|()| crate::wrend::logs::open_fifo(&path))
            .map(|fd| (path.display().to_string(), File::from(fd)))
            .map_err(|e| CliError::failed(wren_runtime::error::chain(&e)))
    }
}

impl Drop for ExecFifos {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn exec(g: &Global, p: args::Parsed) -> Result<i32, CliError> {
    let name = p.name()?.to_string();
    if p.command.is_empty() {
        return Err(CliError::usage(
            "exec needs a command (wren exec NAME -- CMD ...)",
        ));
    }
    let terminal = p.has("-t");
    if terminal && !tty::is_tty(0) {
        return Err(CliError::failed("-t needs a terminal on stdin"));
    }
    let detach = p.has("-d");
    let interactive = (p.has("-i") || terminal) && !detach;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let exec_id = format!("exec-{}-{nanos}", std::process::id());
    let fifos = ExecFifos::new()?;
    let mut req = api::ExecRequest::new();
    req.name = name.clone();
    req.exec_id = exec_id.clone();
    req.args = p.command.clone();
    req.env = p.values("-e");
    req.cwd = p.value("-w").unwrap_or_default().to_string();
    req.terminal = terminal;
    let mut stdin = None;
    let mut outs = Vec::new();
    if !detach {
        if interactive {
            let (path, f) = fifos.fifo("stdin")?;
            req.stdin = path;
            stdin = Some(f);
        }
        let (path, f) = fifos.fifo("stdout")?;
        req.stdout = path;
        outs.push((f, false));
        if !terminal {
            let (path, f) = fifos.fifo("stderr")?;
            req.stderr = path;
            outs.push((f, true));
        }
    }
    let mut w = connect(g)?;
    let done = wait_for_exit(&g.socket, &name, &exec_id);
    let started: api::ExecResponse = w.call("Exec", &req, false)?;
    if detach {
        println!("{}", started.pid);
        return Ok(0);
    }
    if terminal {
        return tty::relay(&mut w, &name, &exec_id, stdin, outs, done).map(|s| s as i32);
    }
    if let Some(f) = stdin {
        feed_stdin(&g.socket, &name, &exec_id, f);
    }
    let status = pump_until(outs, &done)?;
    Ok(status as i32)
}

/// Copies fifo output to stdout/stderr until `done` reports, then drains.
pub fn pump_until(
    mut outs: Vec<(File, bool)>,
    done: &mpsc::Receiver<Result<u32, CliError>>,
) -> Result<u32, CliError> {
    let mut buf = [0u8; 16 * 1024];
    let copy = |outs: &mut Vec<(File, bool)>, buf: &mut [u8]| {
        for (f, is_err) in outs.iter_mut() {
            while let Ok(n) = f.read(buf) {
                if n == 0 {
                    break;
                }
                if *is_err {
                    let _ = std::io::stderr().write_all(&buf[..n]);
                } else {
                    let _ = std::io::stdout().write_all(&buf[..n]);
                }
            }
        }
        let _ = std::io::stdout().flush();
    };
    loop {
        let mut fds: Vec<libc::pollfd> = outs
            .iter()
            .map(|(f, _)| libc::pollfd {
                fd: std::os::fd::AsRawFd::as_raw_fd(f),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        // SAFETY: `fds` is a valid array of pollfds for the call.
        unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 50) };
        copy(&mut outs, &mut buf);
        match done.try_recv() {
            Ok(status) => {
                copy(&mut outs, &mut buf);
                return status;
            }
            Err(mpsc::TryRecvError::Empty) => {}
            Err(mpsc::TryRecvError::Disconnected) => {
                return Err(CliError::failed("lost the connection to wrend"))
            }
        }
    }
}

fn logs(g: &Global, p: args::Parsed) -> Result<i32, CliError> {
    let name = p.name()?;
    let mut w = connect(g)?;
    let c = inspect_one(&mut w, name)?;
    let path = PathBuf::from(&c.log_path);
    let tail: usize = p.number("--tail")?.unwrap_or(usize::MAX);
    // Open the current file first and follow from where the tail ended, so
    // nothing written in between is skipped.
    let mut current = File::open(&path).ok();
    let data = crate::wrend::logs::tail_from(&path, 16, tail, current.as_mut())
        .map_err(|e| CliError::failed(format!("read {}: {e}", path.display())))?;
    let _ = std::io::stdout().write_all(&data);
    let _ = std::io::stdout().flush();
    if !p.has("-f") {
        return Ok(0);
    }
    let mut follower = Follower {
        file: current,
        path: path.clone(),
    };
    loop {
        std::thread::sleep(Duration::from_millis(100));
        follower.pump();
        match inspect_one(&mut w, name) {
            Ok(c)
                if matches!(
                    c.status.as_str(),
                    "running" | "created" | "paused" | "restarting"
                ) => {}
            Ok(_) => {
                follower.pump();
                return Ok(0);
            }
            Err(e) => return Err(e),
        }
    }
}

fn events(g: &Global, p: args::Parsed) -> Result<i32, CliError> {
    let json = g.json || p.has("--json");
    let mut w = connect(g)?;
    let mut after = 0;
    loop {
        let mut r = api::EventsRequest::new();
        r.after = after;
        let resp: api::EventsResponse = w.call("Events", &r, true)?;
        let mut out = std::io::stdout().lock();
        for e in &resp.events {
            let line = if json {
                output::event_json(e).to_string()
            } else {
                format!(
                    "{} {} {} {}",
                    output::time(e.timestamp),
                    e.topic,
                    e.container,
                    e.detail
                )
            };
            if writeln!(out, "{}", line.trim_end()).is_err() {
                return Ok(0);
            }
        }
        let _ = out.flush();
        after = resp.last;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals() {
        assert_eq!(parse_signal("TERM").unwrap(), libc::SIGTERM as u32);
        assert_eq!(parse_signal("SIGKILL").unwrap(), 9);
        assert_eq!(parse_signal("hup").unwrap(), libc::SIGHUP as u32);
        assert_eq!(parse_signal("15").unwrap(), 15);
        assert!(parse_signal("NOPE").is_err());
    }
}
