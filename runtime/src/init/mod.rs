//! The container init: the process that turns itself into a container.
//!
//! Runs in its own process only. The caller (any thread of the shim or the
//! CLI) clones and at once re-executes a sealed copy of its binary with
//! argv[0] `wren-init`; every binary that uses this library calls
//! [`run_if_init`] first thing in `main`, before any thread exists. So all of
//! this code runs in a fresh single-threaded process, where allocating and
//! logging are safe.
//!
//! Stage 1 (`wren:[1:NS]`): oom_score_adj and rlimits while still host root,
//! non-dumpable, join namespaces by path (or the running container's, for
//! exec), new user namespace with maps written by the caller, the other new
//! namespaces, time offsets; then `clone3(CLONE_PARENT)` of stage 2 and exit.
//!
//! Stage 2 (`wren:[2:INIT]`, pid 1 of a new pid namespace): mounts, /dev,
//! caller-side hooks, createContainer hooks, pivot_root, console, read-only
//! and masked paths, hostname, sysctls, LSM, seccomp, user, capabilities,
//! cwd; then "ready", the wait for start on the exec fifo, startContainer
//! hooks and execve. Every failure goes back to the caller as a
//! [`SetupFailure`] naming the step, the path and the errno.
//!
//! Files: [`run_if_init`], the configuration and what both stages share
//! are here; `stage1.rs`, `stage2.rs` (a create's container setup), and
//! `exec.rs` (process setup and execve, for a create and an exec).

mod exec;
mod reaper;
mod stage1;
mod stage2;

use std::fs::File;
use std::io::{self, Read, Seek, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::PathBuf;

use oci_spec::runtime::{Hook, LinuxDevice, LinuxPersonality, Mount, Process};
use serde::{Deserialize, Serialize};

use crate::capabilities::CapabilitySets;
use crate::namespaces::Namespace;
use crate::seccomp::SeccompProgram;
use crate::sync::{Channel, Msg, SetupFailure};
use crate::sys;

/// argv[0] of the init process.
pub const INIT_ARGV0: &str = "wren-init";
/// Environment variable naming the fd of the channel to the caller.
pub const INIT_ENV: &str = "_WREN_INIT_FD";

/// Everything the init needs, prepared and validated by the caller.
#[derive(Debug, Serialize, Deserialize)]
pub struct InitConfig {
    pub id: String,
    pub process: Process,
    /// `process.capabilities` resolved for this kernel; None leaves the
    /// capabilities as they are (runc's behaviour).
    pub caps: Option<CapabilitySets>,
    pub namespaces: Vec<Namespace>,
    /// Contents for /proc/self/timens_offsets.
    pub time_offsets: Option<String>,
    pub seccomp: Option<SeccompProgram>,
    /// fds 3..3+n are passed through to the container process.
    pub preserve_fds: u32,
    /// Join a new session keyring `_ses.<id>` (false: `NoNewKeyring`, keep
    /// the caller's).
    #[serde(default)]
    pub new_keyring: bool,
    pub setup: Setup,
    /// `WREN_TIMING` is on in the caller: the timing file follows the fd
    /// after the config (see [`crate::timing`]).
    #[serde(default)]
    pub timing: bool,
}

#[derive(Debug, Serialize, Deserialize)]
pub enum Setup {
    /// A new container. The exec fifo (an O_PATH fd) follows the config fd.
    Create(Box<CreateSetup>),
    /// A process in a running container. Its init's pidfd follows the
    /// config fd; `ns_flags` are the namespaces to join through it.
    /// `root_of` is the init's pid when the container has no mount
    /// namespace: the process then takes the init's root (a chroot).
    Exec {
        ns_flags: i32,
        #[serde(default)]
        root_of: Option<i32>,
    },
}

#[derive(Debug, Serialize, Deserialize)]
pub struct CreateSetup {
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub readonly_root: bool,
    pub no_pivot: bool,
    /// No mount namespace of its own: mount in the caller's, under the
    /// rootfs made private, and chroot instead of pivot_root.
    #[serde(default)]
    pub host_mount_ns: bool,
    pub mounts: Vec<Mount>,
    /// Populate /dev (false when the host's /dev is bound in).
    pub setup_dev: bool,
    pub devices: Vec<LinuxDevice>,
    pub masked_paths: Vec<String>,
    pub readonly_paths: Vec<String>,
    pub rootfs_propagation: Option<String>,
    pub hostname: Option<String>,
    pub domainname: Option<String>,
    pub sysctl: Vec<(String, String)>,
    pub personality: Option<LinuxPersonality>,
    /// `linux.memoryPolicy`, validated.
    #[serde(default)]
    pub memory_policy: Option<crate::mempolicy::MemoryPolicy>,
    pub create_container_hooks: Vec<Hook>,
    pub start_container_hooks: Vec<Hook>,
    /// The spec has prestart or createRuntime hooks, which the caller runs
    /// when the init asks after its mounts. With none of those and none of
    /// the two above, the init skips that round trip (and the state JSON
    /// it brings back for them).
    #[serde(default)]
    pub host_hooks: bool,
    /// The new user namespace's uid_map and gid_map, for idmapped mounts
    /// without mappings of their own.
    pub container_id_maps: Option<(String, String)>,
    /// Stay as the container's pid 1 after start, reaping and forwarding
    /// signals, and run the process as a child ([`reaper`]).
    #[serde(default)]
    pub reaper: bool,
}

/// If this process was started as a container init, become the container
/// and never return. Otherwise return at once. Call it first in `main`.
pub fn run_if_init() {
    let mut args = std::env::args_os();
    if args.next().as_deref() != Some(std::ffi::OsStr::new(INIT_ARGV0)) {
        return;
    }
    let Some(fd) = std::env::var(INIT_ENV)
        .ok()
        .and_then(|v| v.parse::<i32>().ok())
    else {
        return;
    };
    // SAFETY: the caller placed the channel at this fd for us; nothing else
    // in this fresh process owns it.
    let chan = Channel::from_fd(unsafe { OwnedFd::from_raw_fd(fd) });
    let _ = sys::set_cloexec(chan.fd(), true);
    let failure = match stage1::stage1(&chan) {
        Ok(never) => match never {},
        Err(f) => f,
    };
    report(&chan, &failure);
    std::process::exit(1)
}

enum Never {}

fn report(chan: &Channel, failure: &SetupFailure) {
    if chan.send(&Msg::Failed(failure.clone()), &[]).is_err() {
        // Nobody is listening any more (e.g. `wren-oci create` has exited):
        // the container's stderr is the only place left.
        let _ = writeln!(io::stderr(), "wren: {failure}");
    }
}

/// Turn an error and its chain into a failure report.
fn fail<E: std::error::Error + 'static>(step: impl Into<String>) -> impl FnOnce(E) -> SetupFailure {
    let step = step.into();
    move |e| {
        let message = crate::error::chain(&e);
        let mut errno = None;
        let mut src: Option<&dyn std::error::Error> = Some(&e);
        while let Some(s) = src {
            if let Some(io) = s.downcast_ref::<io::Error>() {
                errno = errno.or(io.raw_os_error());
            }
            src = s.source();
        }
        SetupFailure {
            step,
            message,
            errno,
        }
    }
}

fn set_name(name: &std::ffi::CStr) {
    // SAFETY: PR_SET_NAME reads a NUL-terminated string.
    unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr(), 0, 0, 0) };
}

fn expect(
    chan: &Channel,
    want: fn(&Msg) -> bool,
    step: &str,
) -> Result<(Msg, Vec<OwnedFd>), SetupFailure> {
    match chan.recv() {
        Ok(Some((msg, fds))) if want(&msg) => Ok((msg, fds)),
        Ok(Some((msg, _))) => Err(SetupFailure {
            step: step.into(),
            message: format!("unexpected message {msg:?}"),
            errno: None,
        }),
        Ok(None) => Err(SetupFailure {
            step: step.into(),
            message: "the runtime closed the channel".into(),
            errno: None,
        }),
        Err(e) => Err(fail(step)(e)),
    }
}

fn read_config(fd: OwnedFd) -> Result<InitConfig, SetupFailure> {
    let mut f = File::from(fd);
    let mut data = Vec::new();
    f.seek(io::SeekFrom::Start(0))
        .and_then(|_| f.read_to_end(&mut data))
        .map_err(fail("read the init configuration"))?;
    InitConfig::decode(&data).map_err(fail("decode the init configuration"))
}

impl InitConfig {
    /// What the caller writes into the sealed memfd: the configuration as
    /// JSON, then, with a seccomp filter, a NUL (which JSON text never
    /// holds) and the filter's native BPF bytes.
    pub fn encode(&self) -> Result<Vec<u8>, serde_json::Error> {
        let mut out = serde_json::to_vec(self)?;
        if let Some(program) = &self.seccomp {
            out.push(0);
            program.append_bpf(&mut out);
        }
        Ok(out)
    }

    /// Decodes what [`encode`](Self::encode) wrote, read from the caller's
    /// sealed memfd (fuzzed).
    pub fn decode(data: &[u8]) -> Result<InitConfig, serde_json::Error> {
        use serde::de::Error as _;
        let (json, bpf) = match data.iter().position(|&b| b == 0) {
            Some(at) => (&data[..at], Some(&data[at + 1..])),
            None => (data, None),
        };
        let mut config: InitConfig = serde_json::from_slice(json)?;
        match (&mut config.seccomp, bpf) {
            (Some(program), Some(bpf)) => program
                .set_bpf(bpf)
                .map_err(|e| serde_json::Error::custom(format!("seccomp program: {e}")))?,
            (None, None) => {}
            (Some(_), None) => {
                return Err(serde_json::Error::custom(
                    "seccomp filter configured but no program follows",
                ))
            }
            (None, Some(_)) => {
                return Err(serde_json::Error::custom(
                    "a seccomp program follows but no filter is configured",
                ))
            }
        }
        Ok(config)
    }
}

/// Raw fd of the channel as the init will see it, given the number of
/// preserved fds (they take 3..3+n).
pub fn channel_fd(preserve_fds: u32) -> i32 {
    3 + preserve_fds as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(seccomp: Option<SeccompProgram>) -> InitConfig {
        InitConfig {
            id: "c".into(),
            process: Process::default(),
            caps: None,
            namespaces: Vec::new(),
            time_offsets: None,
            seccomp,
            preserve_fds: 0,
            new_keyring: true,
            setup: Setup::Exec {
                ns_flags: 0,
                root_of: None,
            },
            timing: false,
        }
    }

    /// The filter's instructions travel as raw bytes after the JSON: they
    /// arrive whole, and a configuration whose two parts disagree is refused.
    #[test]
    fn the_filter_travels_after_the_json() {
        let profile = serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": "/run/agent.sock",
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]
        });
        let program =
            crate::seccomp::compile(&crate::seccomp::from_json(&profile).unwrap()).unwrap();
        let bytes = config(Some(program.clone())).encode().unwrap();
        let back = InitConfig::decode(&bytes).unwrap();
        assert_eq!(back.seccomp.as_ref(), Some(&program));
        assert_eq!(back.seccomp.unwrap().bpf(), program.bpf());

        let plain = config(None).encode().unwrap();
        assert!(!plain.contains(&0));
        assert!(InitConfig::decode(&plain).unwrap().seccomp.is_none());

        let json_only = &bytes[..bytes.iter().position(|&b| b == 0).unwrap()];
        assert!(InitConfig::decode(json_only).is_err());
        let mut extra = plain.clone();
        extra.push(0);
        extra.extend_from_slice(&program.bpf());
        assert!(InitConfig::decode(&extra).is_err());
        let mut torn = bytes.clone();
        torn.pop();
        assert!(InitConfig::decode(&torn).is_err());
    }
}
