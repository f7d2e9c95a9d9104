//! Terminal plumbing of a foreground `run` or `exec` with a pty: our
//! terminal in raw mode, its size given to the pty, and stdin/stdout copied
//! to and from the pty master on two threads. Runs in the `wren-oci`
//! process.

use std::io::{Read, Write};
use std::os::fd::{BorrowedFd, OwnedFd};
use std::sync::mpsc::Receiver;

/// Our terminal, set raw while the container's pty is in use; restored on
/// drop.
pub struct RawStdin(Option<libc::termios>);

impl RawStdin {
    /// Give the pty our size, and put fd 0 in raw mode if it is a terminal.
    pub fn new(master: BorrowedFd<'_>) -> Self {
        resize_from_stdin(master);
        // SAFETY: isatty on fd 0.
        if unsafe { libc::isatty(0) } != 1 {
            return RawStdin(None);
        }
        // SAFETY: termios is plain data filled by tcgetattr.
        let mut t: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: valid pointer; fd 0 is a terminal.
        if unsafe { libc::tcgetattr(0, &mut t) } != 0 {
            return RawStdin(None);
        }
        let saved = t;
        // SAFETY: cfmakeraw edits the struct in place.
        unsafe { libc::cfmakeraw(&mut t) };
        // SAFETY: valid pointer; fd 0 is a terminal.
        unsafe { libc::tcsetattr(0, libc::TCSANOW, &t) };
        RawStdin(Some(saved))
    }
}

impl Drop for RawStdin {
    fn drop(&mut self) {
        if let Some(t) = &self.0 {
            // SAFETY: restoring the terminal attributes saved from fd 0.
            unsafe { libc::tcsetattr(0, libc::TCSANOW, t) };
        }
    }
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
/// never sees 0x0; and again on SIGWINCH).
pub fn resize_from_stdin(master: BorrowedFd<'_>) {
    if let Some((rows, cols)) = stdin_size() {
        let _ = wren_runtime::console::resize(master, rows, cols);
    }
}

/// Copy stdin to the pty master and the master to stdout, each on a
/// thread. Returns a receiver that gets a message when the output copy
/// ends.
pub fn copy(master: OwnedFd) -> Option<Receiver<()>> {
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
