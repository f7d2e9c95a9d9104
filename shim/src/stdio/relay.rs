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
    /// waiting for a writer for ever, so it waits for the reader
    /// ([`Lingering`]).
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
/// and went (a client that stopped reading) is not waited for longer than
/// this.
const LINGER: Duration = Duration::from_secs(5);
/// First and longest pause between two looks for a late reader: a reader
/// a few milliseconds late is seen at once, a missing one costs a wake-up
/// every 50 ms, not a busy loop.
const LINGER_FIRST_LOOK: Duration = Duration::from_millis(1);
const LINGER_LONGEST_LOOK: Duration = Duration::from_millis(50);

/// A finished FIFO destination that was opened before its reader came
/// (see [`Dest::reader_pending`]), waiting for that reader. The read-write
/// fd has been traded for a write-only one, which keeps the written bytes
/// in the FIFO without being a reader itself, so the FIFO's POLLERR says
/// whether the reader has opened it. The write end is closed (the reader's
/// EOF after the bytes) as soon as it has, or after [`LINGER`].
///
/// Until then the relay counts as alive, and the process's exit is not
/// reported: containerd's client cancels a FIFO open that has not
/// completed when the process is gone (`cio.Cancel` in `Delete`), so an
/// exit reported first loses the whole output. runc's shim gets the same
/// ordering by blocking Start in a write-only open. The shim's loop looks
/// again at [`Relays::next_deadline`]; no thread is spent on it.
struct Lingering {
    w: std::fs::File,
    path: PathBuf,
    until: Instant,
    next_look: Instant,
    pause: Duration,
}

impl Lingering {
    /// Starts waiting for `dst`'s reader, or returns None when there is
    /// nothing to wait for (no reader pending, or it is there already).
    fn start(dst: Dest) -> Option<Lingering> {
        let path = dst.reader_pending.clone()?;
        // Succeeds: our own read-write fd is a reader.
        let w = match std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(&path)
        {
            Ok(w) => w,
            Err(e) => {
                log::warn!("keep {} for its reader: {e}", path.display());
                return None;
            }
        };
        drop(dst);
        if has_reader(&w) {
            return None;
        }
        let now = Instant::now();
        Some(Lingering {
            w,
            path,
            until: now + LINGER,
            next_look: now + LINGER_FIRST_LOOK,
            pause: LINGER_FIRST_LOOK,
        })
    }

    /// Looks for the reader if it is time; true when the wait is over.
    fn over(&mut self, now: Instant) -> bool {
        if now < self.next_look && now < self.until {
            return false;
        }
        if has_reader(&self.w) {
            return true;
        }
        if now >= self.until {
            log::warn!(
                "no reader opened {} within {} s; its output is dropped",
                self.path.display(),
                LINGER.as_secs()
            );
            return true;
        }
        self.pause = (self.pause * 2).min(LINGER_LONGEST_LOOK);
        self.next_look = (now + self.pause).min(self.until);
        false
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
    /// Finished relays whose FIFO reader has not come yet, by relay id.
    lingering: HashMap<u64, Lingering>,
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
            lingering: HashMap::new(),
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

    /// True until the relay has finished: its source at EOF, everything
    /// written, and a FIFO reader that came late has the FIFO open.
    pub fn alive(&self, id: u64) -> bool {
        self.relays.contains_key(&id) || self.lingering.contains_key(&id)
    }

    /// True while the relay has finished copying and only waits for its
    /// late FIFO reader.
    pub fn awaiting_reader(&self, id: u64) -> bool {
        self.lingering.contains_key(&id)
    }

    /// When [`Relays::look_for_readers`] must run next, if any relay waits
    /// for its reader.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.lingering.values().map(|l| l.next_look).min()
    }

    /// Ends the waits whose reader has come or whose time is up.
    pub fn look_for_readers(&mut self, now: Instant) {
        self.lingering.retain(|_, l| !l.over(now));
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
            if let Some(l) = Lingering::start(dst) {
                self.lingering.insert(id, l);
            }
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

    /// Relays into a FIFO opened read-write before its reader came, as
    /// `stdio::open_output_fifo` does; returns the relay set, the relay's
    /// id, the FIFO's path and the source's write end, with `out` written.
    fn relay_to_early_fifo(
        dir: &std::path::Path,
        out: &[u8],
    ) -> (Relays, u64, std::path::PathBuf, std::fs::File) {
        let fifo = dir.join("stdout");
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
        src_w.write_all(out).unwrap();
        (relays, id, fifo, src_w)
    }

    /// Whether this process has `path` open.
    fn holds(path: &std::path::Path) -> bool {
        std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .flatten()
            .any(|e| std::fs::read_link(e.path()).is_ok_and(|l| l == path))
    }

    /// A FIFO whose reader opens only after the process wrote and the relay
    /// copied everything (containerd's reader goroutine can be that late):
    /// the relay stays alive, so the exit waits, until the reader has the
    /// FIFO; then the reader gets the bytes and EOF instead of waiting for a
    /// writer for ever (or, in containerd's client, being cancelled at the
    /// exit with nothing read).
    #[test]
    fn a_late_fifo_reader_is_waited_for_and_gets_the_output_and_eof() {
        let dir = tempfile::tempdir().unwrap();
        let (mut relays, id, fifo, src_w) = relay_to_early_fifo(dir.path(), b"42\n");
        drop(src_w);
        run(&mut relays, |r| r.awaiting_reader(id));
        assert!(relays.alive(id), "copied, but the reader is not there");
        let first = relays
            .next_deadline()
            .expect("a look for the reader is due");
        relays.look_for_readers(first);
        assert!(relays.alive(id), "still no reader");
        // Only now does the reader come; a blocking open must find a writer.
        let mut reader = std::fs::File::open(&fifo).unwrap();
        relays.look_for_readers(relays.next_deadline().unwrap());
        assert!(!relays.alive(id), "the reader is there: the relay is done");
        assert!(relays.next_deadline().is_none());
        let mut out = String::new();
        reader.read_to_string(&mut out).unwrap();
        assert_eq!(out, "42\n");
        drop(reader);
        assert!(!holds(&fifo), "the relay let the FIFO go");
    }

    /// A reader that never comes is waited for [`LINGER`], not for ever,
    /// and the FIFO is let go; the looks back off instead of spinning.
    #[test]
    fn a_reader_that_never_comes_is_given_up_after_the_linger() {
        let dir = tempfile::tempdir().unwrap();
        let (mut relays, id, fifo, src_w) = relay_to_early_fifo(dir.path(), b"lost\n");
        drop(src_w);
        run(&mut relays, |r| r.awaiting_reader(id));
        let start = Instant::now();
        let mut looks = 0;
        while let Some(at) = relays.next_deadline() {
            assert!(
                at <= start + LINGER + LINGER_LONGEST_LOOK,
                "looks past the linger"
            );
            relays.look_for_readers(at);
            looks += 1;
        }
        assert!(!relays.alive(id));
        assert!(
            looks < 2 * (LINGER.as_millis() / LINGER_LONGEST_LOOK.as_millis()) as usize,
            "{looks} looks in {LINGER:?}"
        );
        assert!(!holds(&fifo), "the FIFO is let go");
    }

    /// A reader already there when the relay finishes needs no wait.
    #[test]
    fn a_reader_there_at_the_finish_ends_the_relay_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let (mut relays, id, fifo, src_w) = relay_to_early_fifo(dir.path(), b"early\n");
        // The reader comes after the read-write open, before the end.
        let mut reader = std::fs::File::open(&fifo).unwrap();
        drop(src_w);
        run(&mut relays, |r| !r.alive(id));
        assert!(relays.next_deadline().is_none());
        let mut out = String::new();
        reader.read_to_string(&mut out).unwrap();
        assert_eq!(out, "early\n");
    }
}
