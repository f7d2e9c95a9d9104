//! A blocking unary ttrpc client over one unix socket, used by the event
//! publisher thread to call containerd's `Events/Forward`, by wrend to call
//! its shims' Task API, and by the `wren` CLI to call wrend.
//!
//! Runs in the shim daemon's publisher thread, wrend's loop and `wren`.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use protobuf::Message;
use wren_protocol::ttrpc_wire::{
    Code, KeyValue, Request, Response, MESSAGE_HEADER_LENGTH, MESSAGE_LENGTH_MAX,
    MESSAGE_TYPE_REQUEST, MESSAGE_TYPE_RESPONSE,
};

use crate::frame::{self, Header};

/// A failed call: the connection is unusable, or the server said no.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("connect to {path}")]
    Connect {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("ttrpc transport")]
    Io(#[from] io::Error),
    #[error("decode ttrpc response")]
    Decode(#[from] protobuf::Error),
    #[error("server answered {code:?}: {message}")]
    Status { code: Code, message: String },
}

impl CallError {
    /// True when reconnecting may help (as opposed to the server refusing).
    pub fn is_transport(&self) -> bool {
        !matches!(self, Self::Status { .. })
    }
}

/// One connection; stream ids are odd and increasing, as ttrpc requires of clients.
pub struct Client {
    stream: UnixStream,
    next_stream: u32,
}

impl Client {
    /// Connects to a `unix://` address or plain path, with `timeout` on every call.
    pub fn connect(address: &str, timeout: Duration) -> Result<Self, CallError> {
        let path = address.strip_prefix("unix://").unwrap_or(address);
        let connect = if let Some(name) = path.strip_prefix('@') {
            connect_abstract(name)
        } else {
            UnixStream::connect(Path::new(path))
        };
        let stream = connect.map_err(|source| CallError::Connect {
            path: path.to_string(),
            source,
        })?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        Ok(Self {
            stream,
            next_stream: 1,
        })
    }

    /// Calls `service/method` with an encoded request; returns the encoded response.
    pub fn call(
        &mut self,
        service: &str,
        method: &str,
        payload: Vec<u8>,
        metadata: &[(&str, &str)],
        timeout: Duration,
    ) -> Result<Vec<u8>, CallError> {
        let mut req = Request::new();
        req.service = service.into();
        req.method = method.into();
        req.payload = payload;
        req.timeout_nano = timeout.as_nanos() as i64;
        for (k, v) in metadata {
            let mut kv = KeyValue::new();
            kv.key = (*k).into();
            kv.value = (*v).into();
            req.metadata.push(kv);
        }
        let stream_id = self.next_stream;
        self.next_stream = self.next_stream.wrapping_add(2);
        let bytes = frame::encode(stream_id, MESSAGE_TYPE_REQUEST, &req.write_to_bytes()?);
        self.stream.write_all(&bytes)?;
        loop {
            let mut raw = [0u8; MESSAGE_HEADER_LENGTH];
            self.stream.read_exact(&mut raw)?;
            let header = Header::decode(&raw);
            // Never allocate what a broken or hostile peer claims.
            if header.length as usize > MESSAGE_LENGTH_MAX {
                return Err(CallError::Io(io::Error::new(
                    io::ErrorKind::InvalidData,
                    frame::FrameTooLong {
                        length: header.length,
                    },
                )));
            }
            let mut body = vec![0u8; header.length as usize];
            self.stream.read_exact(&mut body)?;
            if header.kind != MESSAGE_TYPE_RESPONSE || header.stream_id != stream_id {
                continue;
            }
            let resp = Response::parse_from_bytes(&body)?;
            if let Some(status) = resp.status.as_ref() {
                let code = status.code.enum_value_or(Code::UNKNOWN);
                if code != Code::OK {
                    return Err(CallError::Status {
                        code,
                        message: status.message.clone(),
                    });
                }
            }
            return Ok(resp.payload);
        }
    }
}

impl Client {
    /// Calls `service/method` with message `req` and decodes the reply as `R`.
    pub fn call_message<Q: Message, R: Message>(
        &mut self,
        service: &str,
        method: &str,
        req: &Q,
        timeout: Duration,
    ) -> Result<R, CallError> {
        let payload = req.write_to_bytes()?;
        let reply = self.call(service, method, payload, &[], timeout)?;
        Ok(R::parse_from_bytes(&reply)?)
    }

    /// Changes the timeout of reads and writes on the socket (the per-call
    /// `timeout` only tells the server how long the caller waits).
    pub fn set_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.stream.set_read_timeout(timeout)?;
        self.stream.set_write_timeout(timeout)
    }
}

fn connect_abstract(name: &str) -> io::Result<UnixStream> {
    use std::os::linux::net::SocketAddrExt;
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
    UnixStream::connect_addr(&addr)
}
