//! `containerd-shim-wren-v2 … delete`: clean up one container when its shim
//! is gone (crashed, killed) or after a normal teardown (containerd 1.6 always
//! calls it). Idempotent and scoped to `-id`: kill the container's processes
//! and remove its runtime state, unmount the bundle's `rootfs`, remove the
//! shim socket only if nothing listens on it any more (a grouped shim may still
//! serve other containers), and print `DeleteResponse{init pid, 137, now}`.
//! Problems go to stderr, which containerd logs as cleanup warnings.
//!
//! Runs in a short-lived process, cwd = the bundle, no daemon needed.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use protobuf::{Message, MessageField};
use wren_protocol::task::DeleteResponse;

use crate::events::publisher::timestamp;
use crate::flags::Flags;
use crate::options::ShimOptions;
use crate::socket;
use crate::task::container_ops::ContainerOps;

/// Exit status containerd expects for a container cleaned up by `delete`.
pub const KILLED_STATUS: u32 = 128 + libc::SIGKILL as u32;

/// Default container state root when the options name none.
pub fn default_state_root(namespace: &str) -> PathBuf {
    Path::new("/run/containerd/wren").join(namespace)
}

/// Runs `delete`, writing warnings to stderr; returns the encoded response.
pub fn run(flags: &Flags, ops: &mut impl ContainerOps) -> Vec<u8> {
    let bundle = if flags.bundle.is_empty() {
        PathBuf::from(".")
    } else {
        PathBuf::from(&flags.bundle)
    };
    let warn = |what: String| {
        let _ = writeln!(std::io::stderr(), "delete {}: {what}", flags.id);
    };
    let options: ShimOptions = std::fs::read(bundle.join("options.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let state_root = if options.root.is_empty() {
        default_state_root(&flags.namespace)
    } else {
        PathBuf::from(&options.root)
    };
    if let Err(e) = ops.force_delete(&state_root, &flags.id) {
        warn(wren_runtime::error::chain(&e));
    }
    if let Err(e) = crate::task::rootfs::unmount_all(&bundle.join("rootfs")) {
        warn(format!("unmount rootfs: {e}"));
    }
    let pid = std::fs::read_to_string(bundle.join("init.pid"))
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .unwrap_or(0);
    if let Some(path) = std::fs::read_to_string(bundle.join("address"))
        .ok()
        .and_then(|a| socket::from_address(a.trim()))
    {
        if !socket::is_live(&path) {
            if let Err(e) = socket::remove(&path) {
                warn(format!("remove socket {}: {e}", path.display()));
            }
        }
    }
    let mut r = DeleteResponse::new();
    r.pid = pid;
    r.exit_status = KILLED_STATUS;
    r.exited_at = MessageField::some(timestamp(SystemTime::now()));
    r.write_to_bytes().unwrap_or_default()
}
