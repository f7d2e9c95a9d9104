//! The server half of the shim's ttrpc: accepted connections (same-uid peers
//! only), request decoding, and [`Responder`]s that answer a request now or
//! later from any thread.
//!
//! Runs in the daemon; reads happen on the epoll loop thread.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::{Arc, Mutex, OnceLock};

use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
use protobuf::Message;
use wren_protocol::ttrpc_wire::{
    Code, Request, Response, Status, MESSAGE_TYPE_REQUEST, MESSAGE_TYPE_RESPONSE,
};

use crate::frame;

/// Bytes of replies a connection may have queued for a peer that does not
/// read; past this the connection is closed (a reader that slow is stuck).
const MAX_QUEUED: usize = 16 << 20;

/// The write half of a connection, shared by every pending request on it.
///
/// Writes never block the loop: what the socket does not take at once is
/// queued and written when the loop sees EPOLLOUT ([`Connection::flush`]).
/// A write that fails, or a queue past [`MAX_QUEUED`], closes the
/// connection (both directions shut down), so the peer never sees half a
/// frame followed by another one, and the loop drops the connection at its
/// next read.
pub struct ConnWriter {
    state: Mutex<WriterState>,
    /// The loop's epoll fd, the fd the loop registered (the reader's) and
    /// its token there, to ask for EPOLLOUT.
    poller: OnceLock<(RawFd, RawFd, u64)>,
}

struct WriterState {
    stream: UnixStream,
    queue: Vec<u8>,
    closed: bool,
    /// EPOLLOUT is requested for this connection (so a reply that went out
    /// at once costs no epoll_ctl).
    armed: bool,
}

impl WriterState {
    /// Writes as much of the queue as the socket takes now.
    fn drain(&mut self) -> io::Result<()> {
        while !self.queue.is_empty() {
            match self.stream.write(&self.queue) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.queue.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn close(&mut self) {
        if !self.closed {
            self.closed = true;
            self.queue = Vec::new();
            let _ = self.stream.shutdown(std::net::Shutdown::Both);
        }
    }
}

impl ConnWriter {
    fn write_frame(&self, bytes: &[u8]) -> io::Result<()> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if st.closed {
            return Err(io::ErrorKind::NotConnected.into());
        }
        if st.queue.len() + bytes.len() > MAX_QUEUED {
            st.close();
            return Err(io::Error::other("the peer does not read its replies"));
        }
        st.queue.extend_from_slice(bytes);
        if let Err(e) = st.drain() {
            st.close();
            return Err(e);
        }
        self.want_writable(&mut st);
        Ok(())
    }

    /// Asks the loop for EPOLLOUT while replies are queued, and stops
    /// asking once they are out; nothing when that is already so.
    fn want_writable(&self, st: &mut WriterState) {
        let on = !st.queue.is_empty();
        // Only while open (the caller holds the lock): the loop marks the
        // connection closed before it closes the registered fd, so `fd`
        // cannot be a reused number here.
        if st.closed || on == st.armed {
            return;
        }
        let Some(&(epfd, fd, token)) = self.poller.get() else {
            return;
        };
        let events = libc::EPOLLIN as u32 | if on { libc::EPOLLOUT as u32 } else { 0 };
        let mut ev = libc::epoll_event { events, u64: token };
        // SAFETY: epoll_ctl on the loop's epoll fd with the connection's
        // registered, still open fd and a valid event.
        if unsafe { libc::epoll_ctl(epfd, libc::EPOLL_CTL_MOD, fd, &mut ev) } == 0 {
            st.armed = on;
        }
    }

    fn is_closed(&self) -> bool {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).closed
    }
}

/// Answers one request, exactly once; may be moved to another thread or
/// parked (Wait) and used when the answer is known.
pub struct Responder {
    writer: Arc<ConnWriter>,
    stream_id: u32,
}

impl Responder {
    /// Sends a reply: the encoded response message, or an error status.
    pub fn send(self, reply: Result<Vec<u8>, Status>) {
        let mut response = Response::new();
        match reply {
            Ok(payload) => response.payload = payload,
            Err(status) => response.status = protobuf::MessageField::some(status),
        }
        let body = response.write_to_bytes().unwrap_or_default();
        let bytes = frame::encode(self.stream_id, MESSAGE_TYPE_RESPONSE, &body);
        if let Err(e) = self.writer.write_frame(&bytes) {
            log::warn!("ttrpc: write response for stream {}: {e}", self.stream_id);
        }
    }

    /// Whether the connection this answer would go to is gone (a parked
    /// Wait whose caller went away can be dropped).
    pub fn is_closed(&self) -> bool {
        self.writer.is_closed()
    }
}

/// A ttrpc status with `code` and `message`.
pub fn status(code: Code, message: impl Into<String>) -> Status {
    let mut s = Status::new();
    s.code = code.into();
    s.message = message.into();
    s
}

/// One accepted client connection.
pub struct Connection {
    reader: UnixStream,
    writer: Arc<ConnWriter>,
    buf: Vec<u8>,
}

/// What reading a connection produced: the complete requests in what
/// arrived (also those that came just before the peer closed), and whether
/// the connection is finished.
pub struct ReadOutcome {
    pub requests: Vec<(Request, Responder)>,
    pub closed: bool,
}

/// Accepts one connection, refusing peers with another uid.
pub fn accept(listener: &UnixListener) -> io::Result<Option<Connection>> {
    let (stream, _) = match listener.accept() {
        Ok(s) => s,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
        Err(e) => return Err(e),
    };
    let creds = getsockopt(&stream.as_fd(), PeerCredentials).map_err(io::Error::from)?;
    // SAFETY: geteuid(2) cannot fail.
    let uid = unsafe { libc::geteuid() };
    if creds.uid() != uid {
        log::warn!(
            "ttrpc: refused connection from uid {} pid {} (not uid {uid})",
            creds.uid(),
            creds.pid()
        );
        return Ok(None);
    }
    stream.set_nonblocking(true)?;
    let writer = Arc::new(ConnWriter {
        state: Mutex::new(WriterState {
            stream: stream.try_clone()?,
            queue: Vec::new(),
            closed: false,
            armed: false,
        }),
        poller: OnceLock::new(),
    });
    Ok(Some(Connection {
        reader: stream,
        writer,
        buf: Vec::new(),
    }))
}

impl Connection {
    pub fn as_raw_fd(&self) -> i32 {
        self.reader.as_raw_fd()
    }

    /// Tells the connection the loop's epoll fd and its token there, so a
    /// reply that does not fit the socket can ask for EPOLLOUT.
    pub fn set_poller(&self, epoll_fd: RawFd, token: u64) {
        let _ = self
            .writer
            .poller
            .set((epoll_fd, self.reader.as_raw_fd(), token));
    }

    /// On EPOLLOUT: writes queued replies; stops asking once they are out.
    pub fn flush(&self) {
        let mut st = self.writer.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = st.drain() {
            log::warn!("ttrpc: write queued replies: {e}; closing connection");
            st.close();
        }
        self.writer.want_writable(&mut st);
    }

    /// Marks the connection closed: replies still to come (parked Waits)
    /// are dropped instead of written.
    pub fn close(&self) {
        self.writer
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .close();
    }

    /// Reads what is available and decodes the complete requests in it,
    /// including those that arrived just before the peer closed (they are
    /// served; the connection is then dropped).
    /// The read buffer is one page, and `read` is never inlined: an idle
    /// shim's occasional State call re-dirties only that page of stack,
    /// below the daemon loop's frame where `memory::trim` hands it back.
    #[inline(never)]
    pub fn read(&mut self) -> ReadOutcome {
        let mut chunk = [0u8; 4096];
        let mut closed = self.writer.is_closed();
        while !closed {
            match self.reader.read(&mut chunk) {
                Ok(0) => closed = true,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => closed = true,
            }
        }
        let mut requests = Vec::new();
        loop {
            match frame::take_frame(&mut self.buf) {
                Ok(None) => break,
                Err(e) => {
                    log::warn!("ttrpc: {e}; closing connection");
                    self.buf.clear();
                    return ReadOutcome {
                        requests,
                        closed: true,
                    };
                }
                Ok(Some((header, payload))) => {
                    if header.kind != MESSAGE_TYPE_REQUEST {
                        continue;
                    }
                    let responder = Responder {
                        writer: self.writer.clone(),
                        stream_id: header.stream_id,
                    };
                    match Request::parse_from_bytes(&payload) {
                        Ok(req) => requests.push((req, responder)),
                        Err(e) => responder.send(Err(status(
                            Code::INVALID_ARGUMENT,
                            format!("decode ttrpc request: {e}"),
                        ))),
                    }
                }
            }
        }
        ReadOutcome { requests, closed }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.close();
    }
}
