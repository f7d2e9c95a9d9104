//! Talking to a container's shim the way containerd does: `start` it in the
//! bundle (with a containerd 2.3 `BootstrapParams` on stdin, which puts its
//! socket under wrend's state directory), call its `containerd.task.v2.Task`
//! API over ttrpc, and run its `delete` action to clean up after a shim that
//! died.
//!
//! Runs in wrend's loop thread; the calls block for at most [`CALL_TIMEOUT`].

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use protobuf::Message;
use wren_protocol::bootstrap::{BootstrapParams, BootstrapResult};
use wren_protocol::services;

use wren_ttrpc::client::{CallError, Client};

/// Longest wait for one Task API call.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// A shim that could not be started or cleaned up.
#[derive(Debug, thiserror::Error)]
pub enum ShimError {
    #[error("run {binary} start")]
    Spawn {
        binary: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{status}: {stderr}")]
    Failed { status: String, stderr: String },
    #[error("no address printed")]
    NoAddress,
}

/// Everything `start` needs to know.
pub struct Launch<'a> {
    pub binary: &'a Path,
    pub namespace: &'a str,
    pub id: &'a str,
    /// wrend's own socket, `unix://...`: the shim's `-address` and `TTRPC_ADDRESS`.
    pub wrend_address: &'a str,
    pub socket_dir: &'a Path,
    pub bundle: &'a Path,
    pub debug: bool,
}

impl Launch<'_> {
    fn command(&self, action: &str) -> Command {
        let mut cmd = Command::new(self.binary);
        cmd.args(["-namespace", self.namespace, "-address", self.wrend_address])
            .arg("-publish-binary")
            .arg(std::env::current_exe().unwrap_or_else(|_| PathBuf::from("wrend")))
            .args(["-id", self.id])
            .arg("-bundle")
            .arg(self.bundle);
        if self.debug {
            cmd.arg("-debug");
        }
        cmd.arg(action)
            .current_dir(self.bundle)
            .env(wren_protocol::TTRPC_ADDRESS_ENV, self.wrend_address);
        cmd
    }

    /// Runs `start` and returns the shim's address.
    pub fn start(&self) -> Result<String, ShimError> {
        let mut params = BootstrapParams::new();
        params.instance_id = self.id.to_string();
        params.namespace = self.namespace.to_string();
        params.containerd_ttrpc_address = self.wrend_address.to_string();
        params.containerd_grpc_address = self.wrend_address.to_string();
        params.socket_dir = Some(self.socket_dir.display().to_string());
        let input = params.write_to_bytes().unwrap_or_default();
        let spawn_err = |source| ShimError::Spawn {
            binary: self.binary.to_owned(),
            source,
        };
        let mut child = self
            .command("start")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(spawn_err)?;
        if let Some(mut stdin) = child.stdin.take() {
            // A shim that exits without reading stdin is reported below by
            // its status and stderr, not as a broken pipe.
            if let Err(e) = stdin.write_all(&input) {
                log::debug!("write shim start stdin: {e}");
            }
        }
        let out = child.wait_with_output().map_err(spawn_err)?;
        if !out.status.success() {
            return Err(ShimError::Failed {
                status: out.status.to_string(),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        parse_start_output(&out.stdout).ok_or(ShimError::NoAddress)
    }

    /// Runs `delete`: kills what is left of the container, removes its
    /// runtime state and the shim socket. Problems are logged, not returned:
    /// this is the last resort after a shim died.
    pub fn delete(&self) {
        match self
            .command("delete")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
        {
            Ok(out) if !out.stderr.is_empty() => log::warn!(
                "shim delete {}: {}",
                self.id,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            Ok(_) => {}
            Err(e) => log::warn!("shim delete {}: {e}", self.id),
        }
    }
}

/// The address in `start`'s output: a `BootstrapResult`, or a plain address.
pub fn parse_start_output(out: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(out);
    let text = text.trim();
    if text.starts_with("unix://") && !text.contains('\0') {
        return Some(text.to_string());
    }
    BootstrapResult::parse_from_bytes(out)
        .ok()
        .map(|r| r.address)
        .filter(|a| !a.is_empty())
}

/// A connection to one shim's Task API.
pub struct TaskClient {
    client: Client,
}

impl TaskClient {
    pub fn connect(address: &str) -> Result<Self, CallError> {
        Ok(Self {
            client: Client::connect(address, CALL_TIMEOUT)?,
        })
    }

    /// Calls `containerd.task.v2.Task/<method>`.
    pub fn call<Q: Message, R: Message>(&mut self, method: &str, req: &Q) -> Result<R, CallError> {
        self.call_for(method, req, CALL_TIMEOUT)
    }

    /// [`Self::call`] with another limit (CRIU's dump and restore of a big
    /// container take longer than [`CALL_TIMEOUT`]).
    pub fn call_for<Q: Message, R: Message>(
        &mut self,
        method: &str,
        req: &Q,
        timeout: Duration,
    ) -> Result<R, CallError> {
        self.client
            .call_message(services::TASK_V2, method, req, timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_output_forms() {
        assert_eq!(
            parse_start_output(b"unix:///run/wren/s/abc").as_deref(),
            Some("unix:///run/wren/s/abc")
        );
        let mut r = BootstrapResult::new();
        r.version = 2;
        r.address = "unix:///x/s/1".into();
        r.protocol = "ttrpc".into();
        assert_eq!(
            parse_start_output(&r.write_to_bytes().unwrap()).as_deref(),
            Some("unix:///x/s/1")
        );
        assert_eq!(parse_start_output(b""), None);
    }
}
