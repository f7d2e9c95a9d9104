//! The server half of the shim's ttrpc: accepted connections (same-uid peers
//! only), request decoding, and [`Responder`]s that answer a request now or
//! later from any thread.
//!
//! Runs in the daemon; reads happen on the epoll loop thread.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::{Arc, Mutex};

use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
use protobuf::Message;
use wren_protocol::ttrpc_wire::{
    Code, Request, Response, Status, MESSAGE_TYPE_REQUEST, MESSAGE_TYPE_RESPONSE,
};

use crate::frame;

/// The write half of a connection, shared by every pending request on it.
pub struct ConnWriter {
    stream: Mutex<UnixStream>,
}

impl ConnWriter {
    fn write_frame(&self, bytes: &[u8]) -> io::Result<()> {
        let mut stream = self.stream.lock().unwrap_or_else(|e| e.into_inner());
        let mut rest = bytes;
        while !rest.is_empty() {
            match stream.write(rest) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => rest = &rest[n..],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    // The socket is non-blocking for the loop's reads; wait
                    // (bounded) for room instead of spinning.
                    let mut pfd = libc::pollfd {
                        fd: stream.as_raw_fd(),
                        events: libc::POLLOUT,
                        revents: 0,
                    };
                    // SAFETY: one valid pollfd for the duration of the call.
                    if unsafe { libc::poll(&mut pfd, 1, 5000) } <= 0 {
                        return Err(io::ErrorKind::TimedOut.into());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
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

/// What reading a connection produced.
pub enum ReadOutcome {
    /// Zero or more complete requests; the connection stays open.
    Requests(Vec<(Request, Responder)>),
    /// The peer closed or broke the connection.
    Closed,
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
        stream: Mutex::new(stream.try_clone()?),
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

    /// Reads what is available and decodes the complete requests in it.
    /// The read buffer is one page, and `read` is never inlined: an idle
    /// shim's occasional State call re-dirties only that page of stack,
    /// below the daemon loop's frame where `memory::trim` hands it back.
    #[inline(never)]
    pub fn read(&mut self) -> ReadOutcome {
        let mut chunk = [0u8; 4096];
        loop {
            match self.reader.read(&mut chunk) {
                Ok(0) => return ReadOutcome::Closed,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return ReadOutcome::Closed,
            }
        }
        let mut requests = Vec::new();
        loop {
            match frame::take_frame(&mut self.buf) {
                Ok(None) => break,
                Err(e) => {
                    log::warn!("ttrpc: {e}; closing connection");
                    return ReadOutcome::Closed;
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
        ReadOutcome::Requests(requests)
    }
}
