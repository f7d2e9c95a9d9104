//! Argument parsing and the foreground plumbing of `wren-oci`: a small
//! runc-style flag parser, signal names, sizes, building an exec process
//! from flags, and waiting on a foreground container while forwarding
//! signals and copying a terminal.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use oci_spec::runtime::{Process, Spec};
use wren_runtime::sys;
use wren_runtime::{Container, ExecProcess};

pub const HELP: &str = "\
wren-oci: a runc-compatible OCI runtime (wren)

usage: wren-oci [--root DIR] [--log FILE] [--log-format text|json] COMMAND [ARGS]

commands:
  create [--bundle B] [--pid-file F] [--console-socket S] [--preserve-fds N] [--no-pivot] ID
  start ID
  run [--bundle B] [--detach] [--keep] [create flags] ID
  state ID
  kill [--all] ID [SIGNAL]
  delete [--force] ID
  exec [--tty] [--detach] [--process FILE | --cwd D --env K=V --user U[:G] --cap C ID ARGS...] ID
  ps [--format table|json] ID
  list [--format table|json] [--quiet]
  pause ID | resume ID
  update [--resources FILE|-] [--memory N] [--cpu-quota N] [--cpu-period N] [--pids-limit N] ID
  events [--stats] [--interval 5s] ID
  features | spec [--bundle B] | version | help
";

/// A usage error (bad flags), printed as is.
#[derive(Debug)]
pub struct Usage(pub String);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

pub struct Args {
    items: VecDeque<String>,
}

impl Args {
    pub fn new(argv: Vec<String>) -> Self {
        let mut items = VecDeque::new();
        for a in argv {
            // --flag=value is the same as --flag value.
            match a.split_once('=') {
                Some((k, v)) if k.starts_with("--") => {
                    items.push_back(k.to_string());
                    items.push_back(v.to_string());
                }
                _ => items.push_back(a),
            }
        }
        Args { items }
    }

    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Option<String> {
        self.items.pop_front()
    }

    pub fn push_front(&mut self, s: &str) {
        self.items.push_front(s.to_string());
    }

    /// The next item if it is a flag (starts with '-' and is not "-").
    pub fn peek_flag(&self) -> Option<String> {
        self.items
            .front()
            .filter(|a| a.starts_with('-') && a.len() > 1)
            .cloned()
    }

    /// Consume `flag` and its value.
    pub fn value(&mut self, flag: &str) -> Result<String> {
        self.items.pop_front();
        self.items
            .pop_front()
            .ok_or_else(|| Usage(format!("{flag} needs a value")).into())
    }

    pub fn id(&mut self) -> Result<String> {
        self.next()
            .ok_or_else(|| Usage("missing container id".into()).into())
    }

    pub fn rest(&mut self) -> Vec<String> {
        self.items.drain(..).collect()
    }
}

/// A signal by number, name or SIG-name.
pub fn signal(s: &str) -> Result<i32> {
    if let Ok(n) = s.parse::<i32>() {
        if (1..=64).contains(&n) {
            return Ok(n);
        }
    }
    let name = s.trim_start_matches("SIG").to_ascii_uppercase();
    let n = match name.as_str() {
        "HUP" => libc::SIGHUP,
        "INT" => libc::SIGINT,
        "QUIT" => libc::SIGQUIT,
        "ILL" => libc::SIGILL,
        "TRAP" => libc::SIGTRAP,
        "ABRT" | "IOT" => libc::SIGABRT,
        "BUS" => libc::SIGBUS,
        "FPE" => libc::SIGFPE,
        "KILL" => libc::SIGKILL,
        "USR1" => libc::SIGUSR1,
        "SEGV" => libc::SIGSEGV,
        "USR2" => libc::SIGUSR2,
        "PIPE" => libc::SIGPIPE,
        "ALRM" => libc::SIGALRM,
        "TERM" => libc::SIGTERM,
        "CHLD" => libc::SIGCHLD,
        "CONT" => libc::SIGCONT,
        "STOP" => libc::SIGSTOP,
        "TSTP" => libc::SIGTSTP,
        "TTIN" => libc::SIGTTIN,
        "TTOU" => libc::SIGTTOU,
        "URG" => libc::SIGURG,
        "XCPU" => libc::SIGXCPU,
        "XFSZ" => libc::SIGXFSZ,
        "VTALRM" => libc::SIGVTALRM,
        "PROF" => libc::SIGPROF,
        "WINCH" => libc::SIGWINCH,
        "IO" | "POLL" => libc::SIGIO,
        "PWR" => libc::SIGPWR,
        "SYS" => libc::SIGSYS,
        _ => return Err(Usage(format!("unknown signal {s:?}")).into()),
    };
    Ok(n)
}

/// A number with an optional k/m/g suffix (binary units), or -1.
pub fn parse_size(s: &str) -> Option<i64> {
    let s = s.trim();
    let (num, mult) = match s.chars().last()?.to_ascii_lowercase() {
        'k' => (&s[..s.len() - 1], 1024),
        'm' => (&s[..s.len() - 1], 1024 * 1024),
        'g' => (&s[..s.len() - 1], 1024 * 1024 * 1024),
        _ => (s, 1),
    };
    num.parse::<i64>().ok().map(|n| n * mult)
}

/// The process for `exec ID ARGS...`: the container's own process with
/// these args and overrides, as runc does.
#[allow(clippy::too_many_arguments)]
pub fn process_from_flags(
    spec: &Spec,
    args: Vec<String>,
    tty: bool,
    cwd: Option<String>,
    env: Vec<String>,
    user: Option<&str>,
    caps: &[String],
    nnp: bool,
) -> Result<Process> {
    let mut p = spec.process().clone().unwrap_or_default();
    p.set_args(Some(args));
    p.set_terminal(Some(tty));
    p.set_console_size(None);
    if let Some(cwd) = cwd {
        p.set_cwd(cwd.into());
    }
    let mut e = p.env().clone().unwrap_or_default();
    e.extend(env);
    p.set_env(Some(e));
    if let Some(u) = user {
        let (uid, gid) = match u.split_once(':') {
            Some((a, b)) => (a, Some(b)),
            None => (u, None),
        };
        let num = |s: &str| -> Result<u32> {
            s.parse::<u32>().map_err(|_| {
                Usage(format!(
                    "--user {u:?}: uid and gid must be numbers from 0 to 4294967295"
                ))
                .into()
            })
        };
        let mut user = p.user().clone();
        user.set_uid(num(uid)?);
        if let Some(g) = gid {
            user.set_gid(num(g)?);
        }
        p.set_user(user);
    }
    if !caps.is_empty() {
        let mut c = p.capabilities().clone().unwrap_or_default();
        for name in caps {
            let cap: oci_spec::runtime::Capability =
                serde_json::from_value(serde_json::Value::String(name.clone()))
                    .map_err(|_| Usage(format!("--cap: unknown capability {name:?}")))?;
            for set in [
                c.bounding().clone(),
                c.effective().clone(),
                c.permitted().clone(),
                c.ambient().clone(),
            ]
            .iter()
            .enumerate()
            {
                let mut s = set.1.clone().unwrap_or_default();
                s.insert(cap);
                match set.0 {
                    0 => c.set_bounding(Some(s)),
                    1 => c.set_effective(Some(s)),
                    2 => c.set_permitted(Some(s)),
                    _ => c.set_ambient(Some(s)),
                };
            }
        }
        p.set_capabilities(Some(c));
    }
    if nnp {
        p.set_no_new_privileges(Some(true));
    }
    Ok(p)
}

/// Signals forwarded to the container while in the foreground.
const FORWARDED: [i32; 8] = [
    libc::SIGHUP,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGTERM,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGWINCH,
    libc::SIGCHLD,
];

struct SignalFd(OwnedFd);

impl SignalFd {
    fn new() -> std::io::Result<Self> {
        // SAFETY: sigset_t is plain data initialised by sigemptyset.
        let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: valid pointer to a sigset_t.
        unsafe { libc::sigemptyset(&mut set) };
        for s in FORWARDED {
            // SAFETY: valid pointer and signal number.
            unsafe { libc::sigaddset(&mut set, s) };
        }
        // SAFETY: block these signals so they queue on the signalfd.
        unsafe { libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
        // SAFETY: a valid set; a new fd.
        let fd = unsafe { libc::signalfd(-1, &set, libc::SFD_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: the kernel just gave us this fd.
        Ok(SignalFd(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    fn read(&self) -> Option<i32> {
        // SAFETY: signalfd_siginfo is plain data.
        let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
        let size = std::mem::size_of::<libc::signalfd_siginfo>();
        // SAFETY: reading one struct into a buffer of its size.
        let n = unsafe {
            libc::read(
                self.0.as_raw_fd(),
                (&mut info as *mut libc::signalfd_siginfo).cast(),
                size,
            )
        };
        (n as usize == size).then_some(info.ssi_signo as i32)
    }
}

/// Wait for a process, forwarding signals to it and copying the terminal
/// when there is one. Returns the exit status (128+signal when killed).
fn wait_forwarding(pid: i32, pidfd: BorrowedFd<'_>, console: Option<OwnedFd>) -> Result<i32> {
    let sigfd = SignalFd::new()?;
    let raw = console.as_ref().map(|m| setup_terminal(m.as_fd()));
    let output_done = match &console {
        Some(master) => copy_terminal(master.try_clone()?),
        None => None,
    };
    let result = loop {
        let mut pfds = [
            libc::pollfd {
                fd: pidfd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: sigfd.0.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: two valid pollfds.
        let ret = unsafe { libc::poll(pfds.as_mut_ptr(), 2, -1) };
        if ret < 0 {
            continue;
        }
        if pfds[1].revents & libc::POLLIN != 0 {
            if let Some(sig) = sigfd.read() {
                match sig {
                    libc::SIGCHLD => reap_orphans(pid),
                    libc::SIGWINCH => {
                        if let Some(m) = &console {
                            resize_from_stdin(m.as_fd());
                        }
                    }
                    _ => {
                        let _ = sys::pidfd_send_signal(pidfd, sig);
                    }
                }
            }
        }
        if pfds[0].revents != 0 {
            break sys::wait_pidfd(pidfd, false)?.map_or(255, |e| e.status());
        }
    };
    // The process is gone but its last output may still sit in the pty:
    // let the copy finish (EIO once no one holds the slave), bounded in
    // case a child it left behind keeps the terminal open.
    if let Some(done) = output_done {
        let _ = done.recv_timeout(std::time::Duration::from_secs(2));
    }
    if let Some(Some(t)) = raw {
        // SAFETY: restoring the terminal attributes saved earlier on fd 0.
        unsafe { libc::tcsetattr(0, libc::TCSANOW, &t) };
    }
    Ok(result)
}

/// Reap orphans that reparented to us (no pid namespace), but never the
/// process we wait for through its pidfd: peek first, reap only others.
fn reap_orphans(keep: i32) {
    loop {
        // SAFETY: siginfo_t is plain data.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: valid out-pointer; WNOWAIT leaves the zombie in place.
        let ret = unsafe {
            libc::waitid(
                libc::P_ALL,
                0,
                &mut info,
                libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
            )
        };
        // SAFETY: waitid filled `info` (or left it zeroed).
        let pid = unsafe { info.si_pid() };
        if ret != 0 || pid == 0 || pid == keep {
            break;
        }
        let mut status = 0;
        // SAFETY: reaping exactly the zombie we just saw.
        unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
    }
}

fn setup_terminal(master: BorrowedFd<'_>) -> Option<libc::termios> {
    resize_from_stdin(master);
    // SAFETY: isatty on fd 0.
    if unsafe { libc::isatty(0) } != 1 {
        return None;
    }
    // SAFETY: termios is plain data filled by tcgetattr.
    let mut t: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointer; fd 0 is a terminal.
    if unsafe { libc::tcgetattr(0, &mut t) } != 0 {
        return None;
    }
    let saved = t;
    // SAFETY: cfmakeraw edits the struct in place.
    unsafe { libc::cfmakeraw(&mut t) };
    // SAFETY: valid pointer; fd 0 is a terminal.
    unsafe { libc::tcsetattr(0, libc::TCSANOW, &t) };
    Some(saved)
}

/// The window size of our stdin, if it is a terminal with a size.
pub fn stdin_size() -> Option<(u16, u16)> {
    // SAFETY: winsize is plain data filled by the ioctl.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ writes a winsize to a valid pointer.
    let ok = unsafe { libc::ioctl(0, libc::TIOCGWINSZ, &mut ws) } == 0;
    (ok && ws.ws_row > 0 && ws.ws_col > 0).then_some((ws.ws_row, ws.ws_col))
}

/// Give the pty our terminal's size (before the process starts, so it
/// never sees 0x0).
pub fn resize_from_stdin(master: BorrowedFd<'_>) {
    if let Some((rows, cols)) = stdin_size() {
        let _ = wren_runtime::console::resize(master, rows, cols);
    }
}

/// Copy stdin to the pty master and the master to stdout, each on a
/// thread. Returns a receiver that gets a message when the output copy ends.
fn copy_terminal(master: OwnedFd) -> Option<std::sync::mpsc::Receiver<()>> {
    let input = master.try_clone().ok()?;
    std::thread::spawn(move || {
        let mut m = std::fs::File::from(input);
        let mut buf = [0u8; 4096];
        let mut stdin = std::io::stdin();
        while let Ok(n) = stdin.read(&mut buf) {
            if n == 0 || m.write_all(&buf[..n]).is_err() {
                break;
            }
        }
    });
    let (done, output_done) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut m = std::fs::File::from(master);
        let mut buf = [0u8; 4096];
        let mut out = std::io::stdout();
        while let Ok(n) = m.read(&mut buf) {
            if n == 0 || out.write_all(&buf[..n]).and_then(|_| out.flush()).is_err() {
                break;
            }
        }
        let _ = done.send(());
    });
    Some(output_done)
}

/// `run` in the foreground: wait for the container's init.
pub fn foreground(c: &Container, console: Option<OwnedFd>) -> Result<i32> {
    let pidfd = c.init_pidfd().ok_or("the container's init is gone")?;
    wait_forwarding(c.init_pid(), pidfd, console)
}

/// `exec` in the foreground: wait for the exec'd process.
pub fn wait_exec(p: &ExecProcess) -> Result<i32> {
    let console = match &p.console {
        Some(c) => Some(c.try_clone()?),
        None => None,
    };
    wait_forwarding(p.pid, p.pidfd.as_fd(), console)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_parse_by_name_and_number() {
        assert_eq!(signal("9").unwrap(), 9);
        assert_eq!(signal("SIGTERM").unwrap(), libc::SIGTERM);
        assert_eq!(signal("kill").unwrap(), libc::SIGKILL);
        assert!(signal("NOPE").is_err());
        assert!(signal("0").is_err());
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("64m"), Some(64 << 20));
        assert_eq!(parse_size("-1"), Some(-1));
        assert_eq!(parse_size("x"), None);
    }

    #[test]
    fn equals_flags_split() {
        let mut a = Args::new(vec!["--root=/x".into(), "state".into()]);
        assert_eq!(a.peek_flag().as_deref(), Some("--root"));
        assert_eq!(a.value("--root").unwrap(), "/x");
        assert_eq!(a.next().as_deref(), Some("state"));
    }

    #[test]
    fn exec_users_must_be_numeric_and_in_range() {
        let spec = wren_runtime::spec::example(&["sh".into()], false);
        let p = process_from_flags(
            &spec,
            vec!["id".into()],
            false,
            None,
            vec![],
            Some("4294967295:7"),
            &[],
            false,
        )
        .unwrap();
        assert_eq!(p.user().uid(), u32::MAX);
        assert_eq!(p.user().gid(), 7);
        assert!(process_from_flags(
            &spec,
            vec!["id".into()],
            false,
            None,
            vec![],
            Some("4294967296"),
            &[],
            false
        )
        .is_err());
        assert!(process_from_flags(
            &spec,
            vec!["id".into()],
            false,
            None,
            vec![],
            Some("root"),
            &[],
            false
        )
        .is_err());
    }
}
