//! A process's stdio without a terminal (`run -i`, `exec`, `exec -i`): our
//! stdin copied into the process's stdin fifo on a thread of its own, its
//! stdout and stderr fifos copied to ours until it exits.
//!
//! Runs in `wren`.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::mpsc;

use wren_protocol::manager as api;

use super::client::{ClientError, Wrend};
use super::CliError;

/// Copies our stdin into the process's stdin fifo on another thread; at
/// end of input and with `close`, asks for CloseIO so the process sees EOF
/// (the shim holds a writer of the fifo until then).
pub fn feed_stdin(socket: &Path, name: &str, exec_id: &str, fifo: File, close: bool) {
    let (socket, name, exec_id) = (socket.to_owned(), name.to_string(), exec_id.to_string());
    std::thread::spawn(move || {
        let mut fifo = fifo;
        // The fifo is non-blocking (opened without waiting for a reader).
        crate::fifo::set_blocking(&fifo);
        let _ = std::io::copy(&mut std::io::stdin().lock(), &mut fifo);
        drop(fifo);
        if !close {
            return;
        }
        if let Ok(mut w) = Wrend::connect(&socket) {
            let mut r = api::CloseStdinRequest::new();
            r.name = name;
            r.exec_id = exec_id;
            let _ = w.call::<_, api::Empty>("CloseStdin", &r, false);
        }
    });
}

/// Copies fifo output (`true`: to stderr) to ours until `done` reports,
/// then drains; returns the process's exit status.
pub fn pump_until(
    mut outs: Vec<(File, bool)>,
    done: &mpsc::Receiver<Result<u32, ClientError>>,
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
                fd: f.as_raw_fd(),
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
                return Ok(status?);
            }
            Err(mpsc::TryRecvError::Empty) => {}
            Err(mpsc::TryRecvError::Disconnected) => {
                return Err(CliError::failed("lost the connection to wrend"))
            }
        }
    }
}
