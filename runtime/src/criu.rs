//! One request to CRIU over its RPC interface: `criu swrk <fd>` is started
//! as a child of the caller, gets one protobuf request (rpc.proto, types
//! from the `rust-criu` crate) on a SOCK_SEQPACKET socket, and answers with
//! notifications (acknowledged one by one) and a final response.
//!
//! We drive swrk ourselves instead of through `rust_criu::Criu` because a
//! runtime needs what that driver does not give: the restored pid from
//! the RESTORE response, PRE_DUMP and FEATURE_CHECK requests, notify
//! handlers that are closures (hooks, console, cgroup), fds placed at known
//! numbers in criu (images/work dirs, status fd, stdio for inherit_fd) and
//! criu's pid before the request is sent (to put it into the container's
//! cgroup on restore).
//!
//! Runs in the caller (wren-oci, the shim during its RPC, wrend); no thread
//! is left behind: criu is reaped before [`call`] returns.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use protobuf::Message;
pub use rust_criu::rust_criu_protobuf::rpc;

/// criu's end of the socket, in criu.
pub const SWRK_FD: RawFd = 3;
/// Extra fds (external namespaces for inherit_fd) start here, in criu.
pub const EXTRA_FD: RawFd = 10;

/// A failure to run CRIU or a request CRIU refused.
#[derive(Debug, thiserror::Error)]
pub enum CriuError {
    #[error("start criu {path}: {source}")]
    Spawn {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("criu swrk socket: {0}")]
    Socket(#[source] io::Error),
    #[error("criu rpc message: {0}")]
    Protocol(String),
    /// CRIU answered success=false; `reason` is its errmsg and the error
    /// lines of its log, `log` the log file.
    #[error("criu {op} failed: {reason} (log: {})", log.display())]
    Failed {
        op: &'static str,
        reason: String,
        log: PathBuf,
    },
    /// A notify handler refused (a hook failed, the console could not be
    /// sent, ...); CRIU aborts the request.
    #[error("criu {op}: on {script}: {reason}")]
    Notify {
        op: &'static str,
        script: String,
        reason: String,
    },
    /// The kernel or criu lacks something the request needs.
    #[error("{0}")]
    Unsupported(String),
}

/// What criu gets besides the request. The images, work and status fds
/// are named in the request by their numbers in the caller: criu opens
/// them through /proc/<peer>/fd (the peer of the socket pair is us); they
/// stay open until the request is answered.
#[derive(Default)]
pub struct Fds {
    /// criu's stdin/stdout/stderr (restore: the new process's stdio, which
    /// inherit_fd keys of `pipe:[...]` refer to as 0, 1, 2).
    pub stdio: [Option<OwnedFd>; 3],
    /// Held open for the request (images, work dir, status fd).
    pub held: Vec<OwnedFd>,
    /// Placed at EXTRA_FD, EXTRA_FD+1, ... in criu (inherit_fd).
    pub extra: Vec<OwnedFd>,
}

/// A notification: the script name, its pid (0 when none) and an fd CRIU
/// passed with it (the pty master on "orphan-pts-master").
pub struct Notify<'a> {
    pub script: &'a str,
    pub pid: i32,
    pub fd: Option<OwnedFd>,
}

/// The criu binary: `criu` on PATH unless given.
pub fn binary(given: Option<&Path>) -> PathBuf {
    given.map_or_else(|| PathBuf::from("criu"), Path::to_path_buf)
}

/// Send `req` to a new `criu swrk`; `started` runs with criu's pid before
/// the request is sent, `notify` on each notification (an Err aborts).
/// `log` is criu's log file, for the error text.
pub fn call(
    criu: &Path,
    op: &'static str,
    req: rpc::Criu_req,
    fds: Fds,
    log: &Path,
    started: &mut dyn FnMut(u32) -> Result<(), String>,
    notify: &mut dyn FnMut(Notify<'_>) -> Result<(), String>,
) -> Result<rpc::Criu_resp, CriuError> {
    let mut sv = [-1; 2];
    // SAFETY: socketpair fills two fds into a valid array of two.
    let ret = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            sv.as_mut_ptr(),
        )
    };
    if ret != 0 {
        return Err(CriuError::Socket(io::Error::last_os_error()));
    }
    // SAFETY: both fds were just created and are owned by nobody else.
    let (ours, theirs) = unsafe { (OwnedFd::from_raw_fd(sv[0]), OwnedFd::from_raw_fd(sv[1])) };

    let Fds { stdio, held, extra } = fds;
    let mut cmd = Command::new(criu);
    cmd.arg("swrk").arg(SWRK_FD.to_string());
    let [i, o, e] = stdio;
    cmd.stdin(i.map_or_else(Stdio::null, Stdio::from));
    if let Some(o) = o {
        cmd.stdout(Stdio::from(o));
    }
    if let Some(e) = e {
        cmd.stderr(Stdio::from(e));
    }
    // (source, target) pairs; dup2 clears O_CLOEXEC on the target only.
    let mut moves: Vec<(RawFd, RawFd)> = vec![(theirs.as_raw_fd(), SWRK_FD)];
    for (n, f) in extra.iter().enumerate() {
        moves.push((f.as_raw_fd(), EXTRA_FD + n as RawFd));
    }
    // SAFETY: the closure only calls fcntl and dup2 (async-signal-safe) on
    // fds that stay open in the parent until spawn returns.
    unsafe {
        cmd.pre_exec(move || {
            // First move every source above all targets, so a source that
            // is some other pair's target is not overwritten.
            let mut high = Vec::with_capacity(moves.len());
            for &(src, _) in &moves {
                let fd = libc::fcntl(src, libc::F_DUPFD_CLOEXEC, 100);
                if fd < 0 {
                    return Err(io::Error::last_os_error());
                }
                high.push(fd);
            }
            for (&fd, &(_, dst)) in high.iter().zip(&moves) {
                if libc::dup2(fd, dst) < 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|source| CriuError::Spawn {
        path: criu.to_path_buf(),
        source,
    })?;
    drop(theirs);
    drop(extra);

    let result = (|| {
        started(child.id()).map_err(|reason| CriuError::Notify {
            op,
            script: "start".into(),
            reason,
        })?;
        let bytes = req
            .write_to_bytes()
            .map_err(|e| CriuError::Protocol(e.to_string()))?;
        send(&ours, &bytes)?;
        loop {
            let (data, fd) = recv(&ours)?;
            let resp = rpc::Criu_resp::parse_from_bytes(&data)
                .map_err(|e| CriuError::Protocol(e.to_string()))?;
            if !resp.success() {
                return Err(failed(op, &resp, log));
            }
            if resp.type_() != rpc::Criu_req_type::NOTIFY {
                return Ok(resp);
            }
            let n = &resp.notify;
            let script = n.script().to_string();
            let outcome = notify(Notify {
                script: &script,
                pid: n.pid(),
                fd,
            });
            let mut ack = rpc::Criu_req::new();
            ack.set_type(rpc::Criu_req_type::NOTIFY);
            ack.set_notify_success(outcome.is_ok());
            let bytes = ack
                .write_to_bytes()
                .map_err(|e| CriuError::Protocol(e.to_string()))?;
            send(&ours, &bytes)?;
            if let Err(reason) = outcome {
                return Err(CriuError::Notify { op, script, reason });
            }
        }
    })();
    drop(ours);
    drop(held);
    if result.is_err() {
        let _ = child.kill();
    }
    let _ = child.wait();
    result
}

fn send(sock: &OwnedFd, data: &[u8]) -> Result<(), CriuError> {
    // SAFETY: writing a valid buffer of its length.
    let n = unsafe { libc::write(sock.as_raw_fd(), data.as_ptr().cast(), data.len()) };
    if n < 0 {
        return Err(CriuError::Socket(io::Error::last_os_error()));
    }
    if n as usize != data.len() {
        return Err(CriuError::Protocol("short write to criu".into()));
    }
    Ok(())
}

/// One message and the fd passed with it, if any.
fn recv(sock: &OwnedFd) -> Result<(Vec<u8>, Option<OwnedFd>), CriuError> {
    // SAFETY: a zero-length peek with MSG_TRUNC only returns the size.
    let len = unsafe {
        libc::recv(
            sock.as_raw_fd(),
            std::ptr::null_mut(),
            0,
            libc::MSG_PEEK | libc::MSG_TRUNC,
        )
    };
    if len < 0 {
        return Err(CriuError::Socket(io::Error::last_os_error()));
    }
    if len == 0 {
        return Err(CriuError::Protocol(
            "criu closed the socket without an answer".into(),
        ));
    }
    let mut buf = vec![0u8; len as usize];
    // A u64 array keeps the control buffer aligned for cmsghdr.
    let mut control = [0u64; 8];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: all-zero is a valid msghdr.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: msg points at live buffers of the sizes given.
    let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
    if n < 0 {
        return Err(CriuError::Socket(io::Error::last_os_error()));
    }
    buf.truncate(n as usize);
    let mut fd = None;
    // SAFETY: CMSG_* walk the control buffer recvmsg filled, within
    // msg_controllen.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let raw = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<RawFd>());
                fd = Some(OwnedFd::from_raw_fd(raw));
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    Ok((buf, fd))
}

/// CRIU's reason: its errmsg and errno, and the error lines of its log.
fn failed(op: &'static str, resp: &rpc::Criu_resp, log: &Path) -> CriuError {
    let mut parts = Vec::new();
    // criu's first error, unless it is the harmless rlimit one.
    if resp.has_cr_errmsg()
        && !resp.cr_errmsg().is_empty()
        && !resp.cr_errmsg().contains("RLIMIT_NOFILE")
    {
        parts.push(resp.cr_errmsg().trim().to_string());
    }
    if resp.cr_errno() != 0 {
        parts.push(format!("{}", io::Error::from_raw_os_error(resp.cr_errno())));
    }
    for l in log_errors(log) {
        if !parts.contains(&l) {
            parts.push(l);
        }
    }
    if parts.is_empty() {
        parts.push("no reason given".into());
    }
    CriuError::Failed {
        op,
        reason: parts.join("; "),
        log: log.to_path_buf(),
    }
}

/// The "Error" lines of a criu log (the last few), without timestamps.
pub fn log_errors(log: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut lines: Vec<String> = text
        .lines()
        .filter(|l| l.contains("Error") || l.contains("error"))
        .filter(|l| !l.contains("RLIMIT_NOFILE"))
        .map(|l| match l.find(')') {
            Some(i) if l.starts_with('(') => l[i + 1..].trim().to_string(),
            _ => l.trim().to_string(),
        })
        .collect();
    let keep = lines.len().saturating_sub(4);
    lines.drain(..keep);
    lines
}

/// Ask criu whether the kernel supports memory tracking (pre-dump) and
/// lazy pages.
pub fn features(
    criu: &Path,
    want_mem_track: bool,
    want_lazy: bool,
) -> Result<(bool, bool), CriuError> {
    let mut req = rpc::Criu_req::new();
    req.set_type(rpc::Criu_req_type::FEATURE_CHECK);
    let mut f = rpc::Criu_features::new();
    if want_mem_track {
        f.set_mem_track(true);
    }
    if want_lazy {
        f.set_lazy_pages(true);
    }
    req.features = protobuf::MessageField::some(f);
    let resp = call(
        criu,
        "feature check",
        req,
        Fds::default(),
        Path::new("/dev/null"),
        &mut |_| Ok(()),
        &mut |_| Ok(()),
    )?;
    let f = resp.features.get_or_default();
    Ok((f.mem_track(), f.lazy_pages()))
}
