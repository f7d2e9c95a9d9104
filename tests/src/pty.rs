//! Driving a command on a pseudo-terminal, as a person at a terminal would:
//! the command gets the pty's slave as its controlling terminal and stdio,
//! the test writes keystrokes to the master and reads everything back.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// What a pty session printed and how it ended.
pub struct PtyOutput {
    pub status: Option<ExitStatus>,
    pub output: String,
}

fn openpty(rows: u16, cols: u16) -> (OwnedFd, OwnedFd) {
    let mut master = -1;
    let mut slave = -1;
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: openpty(3) writes two fds; the name and termios are null, the
    // window size points to a valid winsize.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            &ws,
        )
    };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both fds were just returned by openpty and are owned here.
    unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) }
}

/// Runs `cmd` on a new `rows`x`cols` pty, types `input` after `delay`, and
/// collects the output until the command exits (or `timeout`, when it is
/// killed and `status` is None).
pub fn run_in_pty(
    cmd: &mut Command,
    rows: u16,
    cols: u16,
    input: &[u8],
    delay: Duration,
    timeout: Duration,
) -> PtyOutput {
    let (master, slave) = openpty(rows, cols);
    let slave_fd = slave.as_raw_fd();
    cmd.stdin(slave.try_clone().expect("dup"))
        .stdout(slave.try_clone().expect("dup"))
        .stderr(slave.try_clone().expect("dup"));
    // SAFETY: setsid(2) and ioctl(TIOCSCTTY) are async-signal-safe and use
    // only the fd number captured before fork.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setsid() < 0 || libc::ioctl(slave_fd, libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = crate::spawn_registered(cmd);
    // The command object keeps its stdio fds: drop ours so the master sees
    // EIO once the child's side is closed.
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    drop(slave);
    let mut reader = std::fs::File::from(master.try_clone().expect("dup"));
    let collected = std::thread::spawn(move || {
        let mut all = Vec::new();
        let mut buf = [0u8; 4096];
        // EIO once the last slave fd is closed.
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 {
                break;
            }
            all.extend_from_slice(&buf[..n]);
        }
        all
    });
    std::thread::sleep(delay);
    let mut writer = std::fs::File::from(master);
    let _ = writer.write_all(input);
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            break Some(s);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    crate::unregister(child.id());
    drop(writer);
    let output = collected.join().unwrap_or_default();
    PtyOutput {
        status,
        output: String::from_utf8_lossy(&output).into_owned(),
    }
}
