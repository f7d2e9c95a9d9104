//! A process's stdio as containerd describes it, turned into the fds the
//! container gets and the copying the shim does (see [`uri`] for the forms):
//!
//! - the container never sees containerd's FIFOs or the log file: it gets
//!   pipes (owned by IoUid/IoGid) or a pty, and the shim relays
//!   ([`relay`]) between those and the FIFOs/file, so the process cannot
//!   reopen, truncate or read back the host side;
//! - stdin: the shim holds a writer of the stdin FIFO until CloseIO, so the
//!   container sees EOF only when the client is done;
//! - `binary://`: the logging program reads the pipes itself ([`logger`]);
//! - terminal: the pty master (from the runtime) is relayed both ways;
//!   stderr is unused.
//!
//! Runs in the daemon, for Create and Exec.

pub mod logger;
pub mod relay;
pub mod uri;

use std::fs::OpenOptions;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Instant;

use relay::{Dest, Relays, Stream};
use uri::{Output, StdioUris};

/// A stdio description that could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum StdioError {
    #[error(transparent)]
    Uri(#[from] uri::UriError),
    #[error("open {which} {path}")]
    Open {
        which: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{which}: {what}")]
    Sys {
        which: &'static str,
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Logger(#[from] logger::LoggerError),
}

/// The fds the container's process gets (None: /dev/null; all None with a
/// terminal: the pty).
#[derive(Default)]
pub struct ContainerFds {
    pub stdin: Option<OwnedFd>,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
}

impl From<ContainerFds> for wren_runtime::Stdio {
    fn from(fds: ContainerFds) -> Self {
        Self {
            stdin: fds.stdin,
            stdout: fds.stdout,
            stderr: fds.stderr,
        }
    }
}

/// Who the IO belongs to, for the logger's environment.
pub struct Owner<'a> {
    pub container_id: &'a str,
    pub namespace: &'a str,
    pub io_uid: u32,
    pub io_gid: u32,
}

/// The shim's side of one process's stdio.
#[derive(Default)]
pub struct ProcessIo {
    uris: Option<StdioUris>,
    terminal: bool,
    /// Relay ids of stdout/stderr (or the console's output).
    outputs: Vec<u64>,
    stdin: Option<u64>,
    /// The pty master, for ResizePty.
    console: Option<OwnedFd>,
    logger: Option<logger::Logger>,
    /// Output destinations prepared for a terminal, used once the console
    /// arrives.
    console_out: Option<Dest>,
    console_in: Option<(OwnedFd, OwnedFd)>,
}

fn sys(which: &'static str, what: &'static str) -> impl FnOnce(nix::Error) -> StdioError {
    move |e| StdioError::Sys {
        which,
        what,
        source: e.into(),
    }
}

/// A pipe; `chown` to IoUid/IoGid when they are set so a container user can
/// reopen /proc/self/fd/N.
fn pipe(which: &'static str, owner: &Owner<'_>) -> Result<(OwnedFd, OwnedFd), StdioError> {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(sys(which, "pipe2"))?;
    if owner.io_uid != 0 || owner.io_gid != 0 {
        nix::unistd::fchown(
            &r,
            Some(nix::unistd::Uid::from_raw(owner.io_uid)),
            Some(nix::unistd::Gid::from_raw(owner.io_gid)),
        )
        .map_err(sys(which, "fchown the pipe to IoUid/IoGid"))?;
    }
    Ok((r, w))
}

fn open_err<'a>(
    which: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> StdioError + 'a {
    move |source| StdioError::Open {
        which,
        path: path.to_owned(),
        source,
    }
}

/// Opens a client FIFO for writing without blocking: write-only when a
/// reader is there, else read-write so the open neither blocks nor fails
/// while the client has not opened its end yet.
fn open_output_fifo(which: &'static str, path: &Path) -> Result<Dest, StdioError> {
    let meta = std::fs::metadata(path).map_err(open_err(which, path))?;
    if !meta.file_type().is_fifo() {
        // containerd treats a non-FIFO path as a file to append to.
        return open_output_file(which, path);
    }
    let mut o = OpenOptions::new();
    o.write(true).custom_flags(libc::O_NONBLOCK);
    let (file, reader_pending) = match o.open(path) {
        Ok(f) => (f, None),
        Err(e) if e.raw_os_error() == Some(libc::ENXIO) => (
            OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(path)
                .map_err(open_err(which, path))?,
            Some(path.to_owned()),
        ),
        Err(e) => return Err(open_err(which, path)(e)),
    };
    Ok(Dest {
        fd: file.into(),
        regular: false,
        reader_pending,
    })
}

fn open_output_file(which: &'static str, path: &Path) -> Result<Dest, StdioError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(open_err(which, parent))?;
    }
    let file = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(open_err(which, path))?;
    Ok(Dest {
        fd: file.into(),
        regular: true,
        reader_pending: None,
    })
}

/// The stdin FIFO, for reading, plus a writer the shim holds until CloseIO.
fn open_stdin_fifo(path: &Path) -> Result<(OwnedFd, OwnedFd), StdioError> {
    let reader = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(open_err("stdin", path))?;
    let writer = OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(open_err("stdin", path))?;
    Ok((reader.into(), writer.into()))
}

fn output_dest(
    which: &'static str,
    output: &Output,
    stream: Stream,
) -> Result<Option<Dest>, StdioError> {
    Ok(match output {
        Output::Null | Output::Binary { .. } => None,
        Output::Fifos { stdout, stderr } => {
            let path = if stream == Stream::Stderr {
                stderr
            } else {
                stdout
            };
            match path {
                Some(p) => Some(open_output_fifo(which, p)?),
                None => None,
            }
        }
        Output::File(p) => Some(open_output_file(which, p)?),
    })
}

impl ProcessIo {
    /// Starts a `binary://` logger on two fresh pipes (owned by the IO
    /// user) and keeps it; returns the write ends of stdout and stderr.
    fn spawn_logger(
        &mut self,
        path: &Path,
        args: &[String],
        v2: bool,
        owner: &Owner<'_>,
    ) -> Result<(OwnedFd, OwnedFd), StdioError> {
        let (r, w) = pipe("stdout", owner)?;
        let (er, ew) = pipe("stderr", owner)?;
        self.logger = Some(logger::spawn(
            path,
            args,
            v2,
            owner.container_id,
            owner.namespace,
            r,
            er,
        )?);
        Ok((w, ew))
    }

    /// Prepares the stdio of a process about to be created: returns the fds
    /// for the container (none with a terminal) and the shim's side.
    /// Nothing is left behind on error: every fd is owned by a local.
    pub fn setup(
        relays: &mut Relays,
        uris: StdioUris,
        terminal: bool,
        owner: &Owner<'_>,
    ) -> Result<(ContainerFds, ProcessIo), StdioError> {
        let mut io = ProcessIo::default();
        io.terminal = terminal;
        let mut fds = ContainerFds::default();
        if terminal {
            // The console arrives after create; open the ends now so a bad
            // path fails the request before any process exists.
            io.console_out = match &uris.output {
                Output::Binary { path, args, v2 } => {
                    // A console has one stream: the logger's stderr pipe
                    // gets no writer.
                    let (w, _) = io.spawn_logger(path, args, *v2, owner)?;
                    Some(Dest {
                        fd: w,
                        regular: false,
                        reader_pending: None,
                    })
                }
                other => output_dest("stdout", other, Stream::Stdout)?,
            };
            if let Some(p) = &uris.stdin {
                io.console_in = Some(open_stdin_fifo(p)?);
            }
            io.uris = Some(uris);
            return Ok((fds, io));
        }
        let result = (|| {
            if let Some(p) = &uris.stdin {
                let (fifo, held) = open_stdin_fifo(p)?;
                let (r, w) = pipe("stdin", owner)?;
                let id = relays
                    .add(
                        Stream::Stdin,
                        fifo,
                        Some(Dest {
                            fd: w,
                            regular: false,
                            reader_pending: None,
                        }),
                        Some(held),
                    )
                    .map_err(|source| StdioError::Sys {
                        which: "stdin",
                        what: "relay",
                        source,
                    })?;
                io.stdin = Some(id);
                fds.stdin = Some(r);
            }
            match &uris.output {
                Output::Null => {}
                Output::Binary { path, args, v2 } => {
                    let (w, ew) = io.spawn_logger(path, args, *v2, owner)?;
                    fds.stdout = Some(w);
                    fds.stderr = Some(ew);
                }
                output => {
                    for (which, stream) in [("stdout", Stream::Stdout), ("stderr", Stream::Stderr)]
                    {
                        let Some(dest) = output_dest(which, output, stream)? else {
                            continue;
                        };
                        let (r, w) = pipe(which, owner)?;
                        let id = relays.add(stream, r, Some(dest), None).map_err(|source| {
                            StdioError::Sys {
                                which,
                                what: "relay",
                                source,
                            }
                        })?;
                        io.outputs.push(id);
                        if stream == Stream::Stdout {
                            fds.stdout = Some(w);
                        } else {
                            fds.stderr = Some(w);
                        }
                    }
                }
            }
            Ok(())
        })();
        if let Err(e) = result {
            if let Some((l, _)) = io.close(relays) {
                logger::kill(&l, libc::SIGKILL);
            }
            return Err(e);
        }
        io.uris = Some(uris);
        Ok((fds, io))
    }

    /// With a terminal: start relaying the pty master the runtime returned.
    pub fn attach_console(
        &mut self,
        relays: &mut Relays,
        master: OwnedFd,
    ) -> Result<(), StdioError> {
        let dup = |fd: &OwnedFd| {
            fd.try_clone().map_err(|source| StdioError::Sys {
                which: "console",
                what: "dup the pty master",
                source,
            })
        };
        let relay_err = |source| StdioError::Sys {
            which: "console",
            what: "relay",
            source,
        };
        let out = dup(&master)?;
        let id = relays
            .add(Stream::Stdout, out, self.console_out.take(), None)
            .map_err(relay_err)?;
        self.outputs.push(id);
        if let Some((fifo, held)) = self.console_in.take() {
            let to_master = dup(&master)?;
            let id = relays
                .add(
                    Stream::Stdin,
                    fifo,
                    Some(Dest {
                        fd: to_master,
                        regular: false,
                        reader_pending: None,
                    }),
                    Some(held),
                )
                .map_err(relay_err)?;
            self.stdin = Some(id);
        }
        self.console = Some(master);
        Ok(())
    }

    pub fn terminal(&self) -> bool {
        self.terminal
    }

    /// True when every output relay has finished (source EOF, all written,
    /// a late FIFO reader there).
    pub fn drained(&self, relays: &Relays) -> bool {
        self.outputs.iter().all(|id| !relays.alive(*id))
    }

    /// True while some output has been copied but its FIFO's reader has not
    /// opened it yet.
    pub fn awaiting_reader(&self, relays: &Relays) -> bool {
        self.outputs.iter().any(|id| relays.awaiting_reader(*id))
    }

    /// CloseIO: let the client's close of stdin reach the container.
    pub fn close_stdin(&mut self, relays: &mut Relays) {
        if let Some(id) = self.stdin {
            relays.release_stdin(id);
        }
        self.console_in = None;
    }

    /// ResizePty; a process without a console ignores it (as runc's shim).
    pub fn resize(&self, rows: u16, cols: u16) -> std::io::Result<()> {
        match &self.console {
            Some(m) => wren_runtime::console::resize(m.as_fd(), rows, cols),
            None => Ok(()),
        }
    }

    /// Tears everything down: relays dropped, the logger asked to exit.
    /// Returns the logger to watch until it is gone (SIGKILL after the grace).
    pub fn close(mut self, relays: &mut Relays) -> Option<(logger::Logger, Instant)> {
        for id in self.outputs.drain(..).chain(self.stdin.take()) {
            relays.remove(id);
        }
        self.console = None;
        let logger = self.logger.take()?;
        logger::kill(&logger, libc::SIGTERM);
        Some((logger, Instant::now() + logger::TERM_GRACE))
    }

    /// The pid of the logging program, if any (for the reaper).
    pub fn logger_pid(&self) -> Option<u32> {
        self.logger.as_ref().map(|l| l.pid)
    }
}

impl Drop for ProcessIo {
    fn drop(&mut self) {
        if let Some(l) = &self.logger {
            logger::kill(l, libc::SIGKILL);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::epoll::{Epoll, EpollCreateFlags};
    use std::os::unix::fs::MetadataExt;

    fn fstat_uid_gid(fd: &OwnedFd) -> (u32, u32) {
        let m = std::fs::File::from(fd.try_clone().unwrap())
            .metadata()
            .unwrap();
        (m.uid(), m.gid())
    }

    #[test]
    fn fifo_stdio_gives_the_container_pipes_owned_by_io_uid_gid() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("SKIPPED: fchown to another uid needs root");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        for f in ["in", "out", "err"] {
            nix::unistd::mkfifo(
                &dir.path().join(f),
                nix::sys::stat::Mode::from_bits_truncate(0o600),
            )
            .unwrap();
        }
        let p = |f: &str| dir.path().join(f).display().to_string();
        let uris = uri::parse(&p("in"), &p("out"), &p("err")).unwrap();
        let mut relays = Relays::new(Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).unwrap());
        let owner = Owner {
            container_id: "c",
            namespace: "ns",
            io_uid: 1234,
            io_gid: 5678,
        };
        let (fds, io) = ProcessIo::setup(&mut relays, uris, false, &owner).unwrap();
        for fd in [&fds.stdin, &fds.stdout, &fds.stderr] {
            let fd = fd.as_ref().expect("a pipe for every stream");
            assert_eq!(fstat_uid_gid(fd), (1234, 5678));
            // A pipe, not the client's FIFO.
            let m = std::fs::File::from(fd.try_clone().unwrap())
                .metadata()
                .unwrap();
            assert_ne!(
                m.ino(),
                std::fs::metadata(dir.path().join("out")).unwrap().ino()
            );
        }
        assert!(!io.drained(&relays), "stdout/stderr relays are open");
        drop(fds);
        assert!(io.close(&mut relays).is_none());
    }

    #[test]
    fn a_missing_fifo_fails_with_its_path_and_leaves_no_relay() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope").display().to_string();
        let uris = uri::parse("", &missing, "").unwrap();
        let mut relays = Relays::new(Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).unwrap());
        let owner = Owner {
            container_id: "c",
            namespace: "ns",
            io_uid: 0,
            io_gid: 0,
        };
        let err = ProcessIo::setup(&mut relays, uris, false, &owner)
            .err()
            .unwrap();
        assert!(err.to_string().contains("nope"), "{err}");
    }
}
