//! The connection to wrend: one ttrpc client on wrend's socket, a call for
//! any Manager method, and the few calls several commands make (`Inspect`,
//! `Wait` on a thread of its own).
//!
//! Runs in `wren`.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use protobuf::Message;
use wren_protocol::manager as api;
use wren_protocol::services;

use wren_ttrpc::client::{CallError, Client};

/// How long an ordinary call may take (shim start, Create).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// A call to wrend that failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The source names the socket.
    #[error("cannot reach wrend (is it running?)")]
    Connect {
        path: PathBuf,
        #[source]
        source: CallError,
    },
    #[error("{message}")]
    Refused { message: String, not_found: bool },
    #[error("{method}")]
    Call {
        method: String,
        #[source]
        source: CallError,
    },
}

impl ClientError {
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            Self::Refused {
                not_found: true,
                ..
            }
        )
    }
}

/// A connection to wrend.
pub struct Wrend {
    client: Client,
}

impl Wrend {
    pub fn connect(socket: &Path) -> Result<Self, ClientError> {
        let client =
            Client::connect(&socket.display().to_string(), CALL_TIMEOUT).map_err(|source| {
                ClientError::Connect {
                    path: socket.to_owned(),
                    source,
                }
            })?;
        Ok(Self { client })
    }

    /// Calls `method`; `wait` lifts the read timeout (Wait, Stop, Events).
    pub fn call<Q: Message, R: Message>(
        &mut self,
        method: &str,
        req: &Q,
        wait: bool,
    ) -> Result<R, ClientError> {
        let timeout = if wait { None } else { Some(CALL_TIMEOUT) };
        let _ = self.client.set_timeout(timeout);
        self.client
            .call_message(
                services::MANAGER,
                method,
                req,
                timeout.unwrap_or(Duration::ZERO),
            )
            .map_err(|e| match e {
                CallError::Status { code, message } => ClientError::Refused {
                    not_found: code == wren_protocol::ttrpc_wire::Code::NOT_FOUND,
                    message,
                },
                source => ClientError::Call {
                    method: method.to_string(),
                    source,
                },
            })
    }
}

/// A request that names a container.
pub fn name_req(name: &str) -> api::NameRequest {
    let mut r = api::NameRequest::new();
    r.name = name.to_string();
    r
}

impl Wrend {
    /// What wrend knows of container `name`.
    pub fn inspect(&mut self, name: &str) -> Result<api::Container, ClientError> {
        let r: api::ContainerResponse = self.call("Inspect", &name_req(name), false)?;
        Ok(r.container.into_option().unwrap_or_default())
    }
}

/// Waits on a connection of its own until the process exits; its status.
pub fn wait(socket: &Path, name: &str, exec_id: &str) -> Result<u32, ClientError> {
    let mut w = Wrend::connect(socket)?;
    let mut r = api::WaitRequest::new();
    r.name = name.to_string();
    r.exec_id = exec_id.to_string();
    let resp: api::WaitResponse = w.call("Wait", &r, true)?;
    Ok(resp.exit_status)
}

/// Waits for an exit on a connection and a thread of its own; the
/// receiver gets the exit status.
pub fn wait_for_exit(
    socket: &Path,
    name: &str,
    exec_id: &str,
) -> mpsc::Receiver<Result<u32, ClientError>> {
    let (tx, rx) = mpsc::channel();
    let (socket, name, exec_id) = (socket.to_owned(), name.to_string(), exec_id.to_string());
    std::thread::spawn(move || {
        let _ = tx.send(wait(&socket, &name, &exec_id));
    });
    rx
}
