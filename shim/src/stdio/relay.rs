//! Copying bytes between a process's stdio and containerd's FIFOs or a log
//! file, on the daemon's one epoll loop: no thread per stream.
//!
//! A relay moves bytes from a non-blocking source (a pipe read end, a pty
//! master, the stdin FIFO) to a destination. When the destination is full the
//! unwritten rest is kept, the source is no longer polled (so the container
//! feels the back-pressure, as with a real pipe) and the destination is
//! polled for writability instead. A destination that fails (the reader went
//! away) is dropped and the source is still drained, so a vanished client
//! never blocks the container's writes. A relay is finished when its source
//! reached EOF and everything read was written: that is what "output drained"
//! means for exit reporting.
//!
//! Runs in the daemon, on the loop thread.

use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::sys::epoll::{Epoll, EpollEvent, EpollFlags};

/// Tokens of relay fds carry this bit (see `serve.rs` for the others).
pub const RELAY_BIT: u64 = 1 << 41;
const DST_BIT: u64 = 1;
/// Reads per wake-up before yielding to other fds (level-triggered epoll
/// brings us back).
const BURST: usize = 16;
/// Read size. The buffer is on the stack of [`Relays::pump`], not kept
/// with the relays: a kept one stays resident in every idle shim whose
/// container has stdio (16 KiB of its ~110 KiB), while the stack pages are
/// handed back by the loop's trim once output goes quiet.
const SCRATCH: usize = 16 * 1024;

/// Which stream of a process a relay carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdin,
    Stdout,
    Stderr,
}

/// A relay's destination.
pub struct Dest {
    pub fd: OwnedFd,
    /// A regular file: writes never return EAGAIN and epoll refuses it.
    pub regular: bool,
    /// A client FIFO opened read-write because its reader had not opened it
    /// yet (see `stdio::open_output_fifo`): closing it before the reader
    /// comes would drop what was written and leave the reader's open
    /// waiting for a writer for ever, so it lingers ([`linger`]).
    pub reader_pending: Option<PathBuf>,
}

/// Whether the FIFO behind this write end has a reader: a pipe's write end
/// polls POLLERR while no reader has it open.
fn has_reader(w: &std::fs::File) -> bool {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let mut fds = [PollFd::new(w.as_fd(), PollFlags::POLLOUT)];
    match poll(&mut fds, PollTimeout::ZERO) {
        Ok(_) => !fds[0]
            .revents()
            .is_some_and(|r| r.contains(PollFlags::POLLERR)),
        Err(_) => true,
    }
}

/// Longest wait for a late FIFO reader. containerd's reader goroutine lags
/// by milliseconds, a second under heavy load; a reader that already came
/// and went (a client that stopped reading at the exit) is not waited for
/// longer than this.
const LINGER: Duration = Duration::from_secs(5);

/// Closes a finished FIFO destination that was opened before its reader
/// came. The read-write fd is traded for a write-only one, which keeps the
/// written bytes in the FIFO; that one is closed (EOF for the reader) as
/// soon as a reader has the FIFO open, or after [`LINGER`]. Only when the
/// reader is not there yet does this take a short-lived thread: the shim's
/// loop has no timers, and an idle shim keeps no thread for it.
fn linger(dst: Dest) {
    let Some(path) = dst.reader_pending.clone() else {
        return;
    };
    // Succeeds: our own read-write fd is a reader.
    let Ok(w) = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(&path)
    else {
        return;
    };
    drop(dst);
    if has_reader(&w) {
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("fifo-linger".into())
        .stack_size(64 * 1024)
        .spawn(move || {
            let start = Instant::now();
            while !has_reader(&w) && start.elapsed() < LINGER {
                std::thread::sleep(Duration::from_millis(10));
            }
        });
    if let Err(e) = spawned {
        log::warn!("linger on {}: {e}", path.display());
    }
}

struct Relay {
    stream: Stream,
    src: Option<OwnedFd>,
    dst: Option<Dest>,
    pending: Vec<u8>,
    src_watched: bool,
    dst_watched: bool,
    /// For stdin: a writer of the FIFO held by the shim so the FIFO does not
    /// read EOF before the client is done; dropped by CloseIO.
    held_writer: Option<OwnedFd>,
}

/// Every relay of this shim.
pub struct Relays {
    epoll: Epoll,
    relays: HashMap<u64, Relay>,
    next: u64,
    /// Some relay moved bytes since [`Relays::take_moved`] last asked.
    moved: bool,
}

fn errno(e: &std::io::Error) -> i32 {
    e.raw_os_error().unwrap_or(0)
}

fn read(fd: BorrowedFd<'_>, buf: &mut [u8]) -> std::io::Result<usize> {
    // SAFETY: read(2) into a buffer we own, with its length.
    let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(n as usize)
}

fn write(fd: BorrowedFd<'_>, buf: &[u8]) -> std::io::Result<usize> {
    // SAFETY: write(2) from a buffer we own, with its length.
    let n = unsafe { libc::write(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len()) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(n as usize)
}

/// Writes as much of `buf` as the destination takes now. `Ok(n)` with
/// `n < len` means it is full.
fn write_some(dst: &Dest, buf: &[u8]) -> std::io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match write(dst.fd.as_fd(), &buf[done..]) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if errno(&e) == libc::EINTR => continue,
            Err(e) if errno(&e) == libc::EAGAIN && !dst.regular => break,
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

impl Relays {
    /// `epoll` is (a handle on) the daemon loop's epoll set.
    pub fn new(epoll: Epoll) -> Self {
        Relays {
            epoll,
            relays: HashMap::new(),
            next: 1,
            moved: false,
        }
    }

    /// Starts relaying `src` (made non-blocking here) to `dst`. Returns the
    /// relay's id.
    pub fn add(
        &mut self,
        stream: Stream,
        src: OwnedFd,
        dst: Option<Dest>,
        held_writer: Option<OwnedFd>,
    ) -> std::io::Result<u64> {
        set_nonblocking(src.as_fd())?;
        if let Some(d) = &dst {
            if !d.regular {
                set_nonblocking(d.fd.as_fd())?;
            }
        }
        let id = self.next;
        self.next += 1;
        self.relays.insert(
            id,
            Relay {
                stream,
                src: Some(src),
                dst,
                pending: Vec::new(),
                src_watched: false,
                dst_watched: false,
                held_writer,
            },
        );
        self.watch(id, false, true);
        // Data may already be waiting.
        self.pump(id);
        Ok(id)
    }

    /// True while the relay exists (it is removed once finished).
    pub fn alive(&self, id: u64) -> bool {
        self.relays.contains_key(&id)
    }

    /// Handles readiness of a relay fd (`token` has [`RELAY_BIT`]).
    pub fn ready(&mut self, token: u64) {
        let id = (token & !RELAY_BIT) >> 1;
        self.pump(id);
    }

    /// CloseIO: stop holding the stdin FIFO open, so the client's close
    /// becomes EOF for the container.
    pub fn release_stdin(&mut self, id: u64) {
        if let Some(r) = self.relays.get_mut(&id) {
            r.held_writer = None;
        }
        self.pump(id);
    }

    /// Did any relay move bytes since the last call?
    pub fn take_moved(&mut self) -> bool {
        std::mem::take(&mut self.moved)
    }

    /// Drops a relay at once, whatever is left unread.
    pub fn remove(&mut self, id: u64) {
        self.watch(id, false, false);
        self.watch(id, true, false);
        if let Some(dst) = self.relays.remove(&id).and_then(|r| r.dst) {
            linger(dst);
        }
    }

    fn watch(&mut self, id: u64, dst: bool, on: bool) {
        let Some(r) = self.relays.get_mut(&id) else {
            return;
        };
        let (fd, watched, flags) = if dst {
            match &r.dst {
                Some(d) if !d.regular => (d.fd.as_fd(), &mut r.dst_watched, EpollFlags::EPOLLOUT),
                _ => return,
            }
        } else {
            match &r.src {
                Some(s) => (s.as_fd(), &mut r.src_watched, EpollFlags::EPOLLIN),
                None => return,
            }
        };
        if *watched == on {
            return;
        }
        let token = RELAY_BIT | (id << 1) | if dst { DST_BIT } else { 0 };
        let result = if on {
            self.epoll.add(fd, EpollEvent::new(flags, token))
        } else {
            self.epoll.delete(fd)
        };
        match result {
            Ok(()) => *watched = on,
            Err(e) => log::warn!("relay {id}: epoll {}: {e}", if on { "add" } else { "del" }),
        }
    }

    /// Moves what can be moved now; finishes the relay at EOF.
    fn pump(&mut self, id: u64) {
        let mut scratch = [0u8; SCRATCH];
        for _ in 0..BURST {
            let Some(r) = self.relays.get_mut(&id) else {
                return;
            };
            // 1. Flush what the destination refused last time.
            if !r.pending.is_empty() {
                match r.dst.as_ref().map(|d| write_some(d, &r.pending)) {
                    Some(Ok(n)) if n < r.pending.len() => {
                        r.pending.drain(..n);
                        self.watch(id, false, false);
                        self.watch(id, true, true);
                        return;
                    }
                    Some(Ok(_)) => r.pending.clear(),
                    Some(Err(e)) => {
                        log::warn!("{:?}: output reader gone ({e}); discarding", r.stream);
                        r.pending.clear();
                        r.dst = None;
                    }
                    None => r.pending.clear(),
                }
                self.watch(id, true, false);
            }
            // 2. Read more.
            let Some(r) = self.relays.get_mut(&id) else {
                return;
            };
            let Some(src) = &r.src else {
                self.finish(id);
                return;
            };
            match read(src.as_fd(), &mut scratch) {
                Ok(0) => {
                    // Stdin: with our writer held, 0 cannot happen; without
                    // it this is the client's close.
                    self.watch(id, false, false);
                    if let Some(r) = self.relays.get_mut(&id) {
                        r.src = None;
                    }
                }
                Ok(n) => {
                    self.moved = true;
                    let data = &scratch[..n];
                    match r.dst.as_ref().map(|d| write_some(d, data)) {
                        Some(Ok(w)) if w < n => {
                            r.pending.extend_from_slice(&data[w..]);
                        }
                        Some(Ok(_)) | None => {}
                        Some(Err(e)) => {
                            log::warn!("{:?}: output reader gone ({e}); discarding", r.stream);
                            r.dst = None;
                        }
                    }
                    if !r.pending.is_empty() {
                        self.watch(id, false, false);
                        self.watch(id, true, true);
                        return;
                    }
                }
                Err(e) if errno(&e) == libc::EINTR => {}
                Err(e) if errno(&e) == libc::EAGAIN => {
                    self.watch(id, false, true);
                    return;
                }
                Err(e) => {
                    // EIO: the pty's other side is closed, the console's EOF.
                    if errno(&e) != libc::EIO {
                        log::warn!("{:?}: read: {e}", r.stream);
                    }
                    self.watch(id, false, false);
                    if let Some(r) = self.relays.get_mut(&id) {
                        r.src = None;
                    }
                }
            }
        }
        // The burst is used up with the destination keeping pace: the source
        // may have been unwatched while the destination was full, so watch
        // it again, or nothing would ever bring us back (level-triggered
        // epoll re-reports it at once if data is still waiting). A source
        // that reached EOF in the last round finishes here.
        match self.relays.get(&id) {
            Some(r) if r.src.is_none() => self.finish(id),
            Some(_) => self.watch(id, false, true),
            None => {}
        }
    }

    /// Source at EOF and nothing pending: close the destination (the
    /// container's stdin pipe sees EOF; the client's FIFO sees EOF once every
    /// writer is gone) and forget the relay.
    fn finish(&mut self, id: u64) {
        if let Some(r) = self.relays.get(&id) {
            if r.pending.is_empty() {
                self.remove(id);
            }
        }
    }
}

fn set_nonblocking(fd: BorrowedFd<'_>) -> std::io::Result<()> {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    let flags = fcntl(fd, FcntlArg::F_GETFL).map_err(std::io::Error::from)?;
    let flags = OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK;
    fcntl(fd, FcntlArg::F_SETFL(flags)).map_err(std::io::Error::from)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::epoll::{EpollCreateFlags, EpollTimeout};
    use std::io::{Read, Write};

    fn pipe() -> (std::fs::File, std::fs::File) {
        let (r, w) = nix::unistd::pipe().unwrap();
        (r.into(), w.into())
    }

    /// Relays from `src` to the pipe `dst` in a fresh set.
    fn relay_to_pipe(stream: Stream, src: std::fs::File, dst: std::fs::File) -> (Relays, u64) {
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).unwrap();
        let mut relays = Relays::new(epoll);
        let dest = Dest {
            fd: dst.into(),
            regular: false,
            reader_pending: None,
        };
        let id = relays.add(stream, src.into(), Some(dest), None).unwrap();
        (relays, id)
    }

    /// Serves the relays' epoll until `until` holds; panics after 5 s of
    /// waiting (a relay that nothing wakes any more stalls for good).
    fn run(relays: &mut Relays, until: impl Fn(&Relays) -> bool) {
        let epoll = Epoll(relays.epoll.0.try_clone().unwrap());
        let mut events = [EpollEvent::empty(); 8];
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while std::time::Instant::now() < deadline {
            if until(relays) {
                return;
            }
            let n = epoll.wait(&mut events, EpollTimeout::from(100u16)).unwrap();
            for ev in &events[..n] {
                relays.ready(ev.data());
            }
        }
        assert!(until(relays), "relay did not finish within 5 s");
    }

    /// Regression: a relay that resumed after back-pressure and then used up
    /// a whole burst with the destination keeping pace left its source
    /// unwatched, and the stream stalled for good (seen as a hung test).
    #[test]
    fn resumes_reading_after_a_full_burst_following_back_pressure() {
        use std::os::fd::AsRawFd;
        let set_size = |f: &std::fs::File, size: i32| {
            // SAFETY: fcntl on a pipe fd we own, integer argument.
            let r = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_SETPIPE_SZ, size) };
            assert!(r >= size, "F_SETPIPE_SZ");
        };
        let (src_r, mut src_w) = pipe();
        let (mut dst_r, dst_w) = pipe();
        let total = 2 * BURST * SCRATCH;
        set_size(&src_w, total as i32);
        // Fill the destination so the relay's first write is refused.
        set_nonblocking(dst_w.as_fd()).unwrap();
        let mut filled = 0;
        while let Ok(n) = write(dst_w.as_fd(), &[b'f'; 4096]) {
            filled += n;
        }
        src_w.write_all(&vec![b's'; total]).unwrap();
        let (mut relays, id) = relay_to_pipe(Stream::Stdout, src_r, dst_w.try_clone().unwrap());
        drop(src_w);
        // Parked now. Empty the destination and make it big enough that
        // everything fits: the resumed relay never meets EAGAIN again.
        let mut buf = vec![0; filled];
        dst_r.read_exact(&mut buf).unwrap();
        set_size(&dst_w, (2 * total) as i32);
        drop(dst_w);
        // `run` panics if the relay stalls after its burst.
        run(&mut relays, |r| !r.alive(id));
        let mut out = Vec::new();
        dst_r.read_to_end(&mut out).unwrap();
        assert_eq!(out.len(), total);
    }

    #[test]
    fn copies_everything_under_back_pressure_then_finishes() {
        let (src_r, mut src_w) = pipe();
        let (mut dst_r, dst_w) = pipe();
        let (mut relays, id) = relay_to_pipe(Stream::Stdout, src_r, dst_w);
        // 1 MiB through two 64 KiB pipes: the relay must park and resume.
        let writer = std::thread::spawn(move || {
            let chunk = vec![b'x'; 4096];
            for _ in 0..256 {
                src_w.write_all(&chunk).unwrap();
            }
        });
        let reader = std::thread::spawn(move || {
            let mut all = Vec::new();
            dst_r.read_to_end(&mut all).unwrap();
            all.len()
        });
        run(&mut relays, |r| !r.alive(id));
        writer.join().unwrap();
        assert_eq!(reader.join().unwrap(), 1 << 20);
    }

    /// The loop trims memory once stdio has been quiet: it learns from
    /// `take_moved` whether bytes moved, and nothing else sets it.
    #[test]
    fn reports_moved_bytes_once() {
        let (src_r, mut src_w) = pipe();
        let (mut dst_r, dst_w) = pipe();
        let (mut relays, id) = relay_to_pipe(Stream::Stdout, src_r, dst_w);
        assert!(!relays.take_moved(), "nothing was written yet");
        src_w.write_all(b"hello").unwrap();
        drop(src_w);
        run(&mut relays, |r| !r.alive(id));
        assert!(relays.take_moved());
        assert!(!relays.take_moved(), "asking clears it");
        let mut got = Vec::new();
        dst_r.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"hello");
    }

    #[test]
    fn a_vanished_reader_does_not_block_the_writer() {
        let (src_r, mut src_w) = pipe();
        let (dst_r, dst_w) = pipe();
        drop(dst_r);
        // SAFETY: ignoring SIGPIPE for the test process (the daemon does too).
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
        let (mut relays, id) = relay_to_pipe(Stream::Stderr, src_r, dst_w);
        let writer = std::thread::spawn(move || {
            let chunk = vec![b'y'; 65536];
            for _ in 0..8 {
                src_w.write_all(&chunk).unwrap();
            }
        });
        run(&mut relays, |r| !r.alive(id));
        writer.join().unwrap();
    }

    /// A FIFO whose reader opens only after the process wrote and the relay
    /// finished (containerd's reader goroutine can be that late): the
    /// reader still gets the bytes and then EOF, instead of waiting for a
    /// writer for ever.
    #[test]
    fn a_late_fifo_reader_gets_the_output_and_eof() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("stdout");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let dst = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&fifo)
            .unwrap();
        let (src_r, mut src_w) = pipe();
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).unwrap();
        let mut relays = Relays::new(epoll);
        let dest = Dest {
            fd: dst.into(),
            regular: false,
            reader_pending: Some(fifo.clone()),
        };
        let id = relays
            .add(Stream::Stdout, src_r.into(), Some(dest), None)
            .unwrap();
        std::io::Write::write_all(&mut src_w, b"42\n").unwrap();
        drop(src_w);
        run(&mut relays, |r| !r.alive(id));
        // Only now does the reader come; a blocking open must find a writer.
        let mut out = String::new();
        let mut reader = std::fs::File::open(&fifo).unwrap();
        std::io::Read::read_to_string(&mut reader, &mut out).unwrap();
        assert_eq!(out, "42\n");
    }
}
