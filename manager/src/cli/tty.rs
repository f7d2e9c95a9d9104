//! Interactive sessions (`run -it`, `exec -it`): the local terminal in raw
//! mode, keystrokes copied to the process's stdin fifo, its terminal output
//! copied back, the window size sent with `ResizePty` at start and on every
//! SIGWINCH, and Ctrl-P Ctrl-Q to detach (the process keeps running; for
//! `run -it`, wrend takes the output back into the log).
//!
//! Runs in `wren`.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;

use wren_protocol::manager as api;

use super::client::{wait_for_exit, ClientError, Wrend};
use super::{CliError, Global};

/// The detach sequence: Ctrl-P then Ctrl-Q.
pub const DETACH_KEYS: [u8; 2] = [0x10, 0x11];

static WINCH: AtomicBool = AtomicBool::new(false);

extern "C" fn on_winch(_: libc::c_int) {
    WINCH.store(true, Ordering::Relaxed);
}

/// Whether `fd` is a terminal.
pub fn is_tty(fd: i32) -> bool {
    // SAFETY: isatty(3) only inspects the fd.
    unsafe { libc::isatty(fd) == 1 }
}

/// Asks `prompt` on stderr and reads one line from the terminal on stdin
/// with echo off (a password), restoring the terminal's settings after.
pub fn read_secret(prompt: &str) -> std::io::Result<String> {
    use nix::sys::termios::{tcgetattr, tcsetattr, LocalFlags, SetArg};
    use std::io::Write;
    let stdin = std::io::stdin();
    let saved = tcgetattr(&stdin).map_err(std::io::Error::from)?;
    let mut quiet = saved.clone();
    quiet.local_flags.remove(LocalFlags::ECHO);
    quiet.local_flags.insert(LocalFlags::ECHONL);
    eprint!("{prompt}");
    let _ = std::io::stderr().flush();
    tcsetattr(&stdin, SetArg::TCSANOW, &quiet).map_err(std::io::Error::from)?;
    let mut line = String::new();
    let read = stdin.read_line(&mut line);
    let _ = tcsetattr(&stdin, SetArg::TCSANOW, &saved);
    read?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

/// Restores the terminal's settings when dropped.
struct RawMode {
    saved: libc::termios,
}

impl RawMode {
    fn enter() -> Option<Self> {
        // SAFETY: an all-zero termios is a valid buffer for tcgetattr to fill.
        let mut t: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: fd 0 and a valid termios pointer.
        if unsafe { libc::tcgetattr(0, &mut t) } != 0 {
            return None;
        }
        let saved = t;
        // SAFETY: cfmakeraw edits the struct in place.
        unsafe { libc::cfmakeraw(&mut t) };
        // SAFETY: fd 0 and a valid termios pointer.
        unsafe { libc::tcsetattr(0, libc::TCSANOW, &t) };
        Some(Self { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // SAFETY: fd 0 and the settings saved by `enter`.
        unsafe { libc::tcsetattr(0, libc::TCSANOW, &self.saved) };
    }
}

fn window_size() -> Option<(u32, u32)> {
    // SAFETY: an all-zero winsize is a valid buffer for TIOCGWINSZ.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ writes one winsize.
    if unsafe { libc::ioctl(0, libc::TIOCGWINSZ, &mut ws) } != 0 {
        return None;
    }
    Some((u32::from(ws.ws_col), u32::from(ws.ws_row)))
}

fn resize(w: &mut Wrend, name: &str, exec_id: &str) {
    if let Some((width, height)) = window_size() {
        let mut r = api::ResizeRequest::new();
        r.name = name.to_string();
        r.exec_id = exec_id.to_string();
        r.width = width;
        r.height = height;
        if let Err(e) = w.call::<_, api::Empty>("ResizePty", &r, false) {
            log::debug!("resize: {e}");
        }
    }
}

/// `run -it`: attaches to the created container's terminal, starts it and
/// relays until it exits or the user detaches.
pub fn session(
    g: &Global,
    w: &mut Wrend,
    name: &str,
    exec_id: &str,
    start: bool,
) -> Result<u32, CliError> {
    let mut a = api::AttachRequest::new();
    a.name = name.to_string();
    let paths: api::AttachResponse = w.call("Attach", &a, false)?;
    let open = |p: &str| crate::fifo::open(std::path::Path::new(p)).map(File::from);
    let stdin = open(&paths.stdin)?;
    let stdout = open(&paths.stdout)?;
    if start {
        let mut r = api::NameRequest::new();
        r.name = name.to_string();
        let _: api::ContainerResponse = w.call("Start", &r, false)?;
    }
    // After the start: a stopped container's Wait would answer with its
    // previous exit.
    let done = wait_for_exit(&g.socket, name, exec_id);
    let result = relay(w, name, exec_id, Some(stdin), vec![(stdout, false)], done);
    let _ = w.call::<_, api::Empty>("Detach", &a, false);
    result
}

/// Relays between the local terminal and the process until it exits
/// (returns its status) or the user detaches (returns 0).
pub fn relay(
    w: &mut Wrend,
    name: &str,
    exec_id: &str,
    mut stdin: Option<File>,
    mut outs: Vec<(File, bool)>,
    done: mpsc::Receiver<Result<u32, ClientError>>,
) -> Result<u32, CliError> {
    if let Some(f) = stdin.as_ref() {
        // Keystrokes must not be dropped on a full fifo: block instead.
        crate::fifo::set_blocking(f);
    }
    let raw = RawMode::enter();
    // SAFETY: installs an async-signal-safe handler that stores one atomic.
    unsafe { libc::signal(libc::SIGWINCH, on_winch as *const () as libc::sighandler_t) };
    resize(w, name, exec_id);
    let mut buf = [0u8; 4096];
    let mut last = 0u8;
    let mut stdin_open = true;
    let result = loop {
        let mut fds = vec![libc::pollfd {
            fd: if stdin_open { 0 } else { -1 },
            events: libc::POLLIN,
            revents: 0,
        }];
        fds.extend(outs.iter().map(|(f, _)| libc::pollfd {
            fd: f.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }));
        // SAFETY: `fds` is a valid array for the call.
        unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 50) };
        if WINCH.swap(false, Ordering::Relaxed) {
            resize(w, name, exec_id);
        }
        if fds[0].revents != 0 {
            // SAFETY: reading into a valid buffer from fd 0.
            let n = unsafe { libc::read(0, buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                stdin_open = false;
                stdin = None;
            } else {
                let data = &buf[..n as usize];
                let detach = data.windows(2).any(|p| p == DETACH_KEYS)
                    || (last == DETACH_KEYS[0] && data[0] == DETACH_KEYS[1]);
                last = data[data.len() - 1];
                if detach {
                    break Ok(None);
                }
                if let Some(f) = stdin.as_mut() {
                    let _ = f.write_all(data);
                }
            }
        }
        for (f, _) in outs.iter_mut() {
            while let Ok(n) = f.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let _ = std::io::stdout().write_all(&buf[..n]);
            }
        }
        let _ = std::io::stdout().flush();
        match done.try_recv() {
            Ok(status) => break status.map(Some).map_err(CliError::from),
            Err(mpsc::TryRecvError::Empty) => {}
            Err(mpsc::TryRecvError::Disconnected) => {
                break Err(CliError::failed("lost the connection to wrend"))
            }
        }
    };
    drop(raw);
    match result {
        Ok(Some(status)) => Ok(status),
        Ok(None) => {
            eprintln!("\r\nwren: detached from {name}");
            Ok(0)
        }
        Err(e) => Err(e),
    }
}
