//! The channel between the caller and a container's init process: a
//! `SOCK_SEQPACKET` socketpair carrying small JSON messages, each with the
//! fds that belong to it (`SCM_RIGHTS`). The big init configuration travels
//! in a sealed memfd attached to the first message.
//!
//! Used on both sides: the caller (any thread) and the init process.

use std::io;
use std::mem;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use serde::{Deserialize, Serialize};

/// The most fds one message may carry.
/// Enough for the config, one extra fd and one cgroup file per hierarchy.
const MAX_FDS: usize = 32;
const MAX_MSG: usize = 64 * 1024;

/// A setup step that failed in the init, reported to the caller so the
/// user sees the step, the path and the errno instead of "broken pipe".
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SetupFailure {
    /// The step, e.g. "mounts[2]" (a spec field) or "set up /dev".
    pub step: String,
    /// The whole error chain, outermost first.
    pub message: String,
    pub errno: Option<i32>,
}

impl std::fmt::Display for SetupFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.step, self.message)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub enum Msg {
    // caller → init
    /// Carries the memfd with the [`crate::init::InitConfig`] and the fds
    /// the config names.
    Config,
    MapsWritten,
    /// The caller wrote stage 1's `timens_offsets`.
    TimeOffsetsWritten,
    /// The new container's cgroup resources are applied: stage 2 may make
    /// device nodes (v1 device rules are rewritten deny-all first).
    ResourcesApplied,
    /// The OCI state (JSON) to hand to createContainer/startContainer hooks.
    HooksDone {
        state: String,
    },
    // init → caller
    /// Stage 1 has unshared its user namespace; write its id maps.
    WriteMaps,
    /// Stage 1 has made a time namespace inside a new user namespace,
    /// where it no longer owns its /proc files: write its time offsets.
    WriteTimeOffsets,
    /// The container process exists (carries its pidfd).
    Child {
        pid: i32,
    },
    /// Mounts are done: run prestart and createRuntime hooks.
    RunHooks,
    /// Carries the pty master of the container's console.
    Console,
    /// Carries the seccomp notify listener fd.
    SeccompListener,
    /// Fully set up; blocked before execve (create) or about to exec (exec).
    Ready,
    Failed(SetupFailure),
}

/// One end of the channel.
#[derive(Debug)]
pub struct Channel {
    fd: OwnedFd,
}

impl Channel {
    /// A connected pair, both ends close-on-exec.
    pub fn pair() -> io::Result<(Channel, Channel)> {
        let mut fds = [0 as RawFd; 2];
        // SAFETY: `fds` is a valid out-array of two ints.
        let ret = unsafe {
            libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
                0,
                fds.as_mut_ptr(),
            )
        };
        if ret != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: socketpair just created both fds and nothing else owns them.
        let (a, b) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        Ok((Channel { fd: a }, Channel { fd: b }))
    }

    pub fn from_fd(fd: OwnedFd) -> Self {
        Channel { fd }
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        std::os::fd::AsFd::as_fd(&self.fd)
    }

    pub fn send(&self, msg: &Msg, fds: &[BorrowedFd<'_>]) -> io::Result<()> {
        let data = serde_json::to_vec(msg).map_err(io::Error::other)?;
        send_with_fds(self.fd.as_raw_fd(), &data, fds)
    }

    /// The next message, or `None` when the other end is closed.
    pub fn recv(&self) -> io::Result<Option<(Msg, Vec<OwnedFd>)>> {
        let mut buf = vec![0u8; MAX_MSG];
        let Some((n, fds)) = recv_with_fds(self.fd.as_raw_fd(), &mut buf)? else {
            return Ok(None);
        };
        Ok(Some((Msg::decode(&buf[..n])?, fds)))
    }
}

impl Msg {
    /// Decodes one message as it arrived on the channel (untrusted bytes:
    /// the init side runs inside the container's namespaces; fuzzed).
    pub fn decode(data: &[u8]) -> io::Result<Msg> {
        serde_json::from_slice(data).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }
}

/// `sendmsg` of `data` with `fds` attached.
pub fn send_with_fds(sock: RawFd, data: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<()> {
    if fds.len() > MAX_FDS {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "too many fds"));
    }
    let raw: Vec<RawFd> = fds.iter().map(|f| f.as_raw_fd()).collect();
    // SAFETY: CMSG_SPACE is a pure size computation.
    let space = unsafe { libc::CMSG_SPACE((MAX_FDS * mem::size_of::<RawFd>()) as u32) } as usize;
    let mut cbuf = vec![0u8; space];
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    // SAFETY: msghdr is plain data; zeroed is a valid empty header.
    let mut hdr: libc::msghdr = unsafe { mem::zeroed() };
    hdr.msg_iov = &mut iov;
    hdr.msg_iovlen = 1;
    if !raw.is_empty() {
        hdr.msg_control = cbuf.as_mut_ptr().cast();
        // SAFETY: pure size computation.
        hdr.msg_controllen =
            unsafe { libc::CMSG_SPACE((raw.len() * mem::size_of::<RawFd>()) as u32) } as _;
        // SAFETY: msg_control points at a buffer large enough for one
        // cmsghdr with `raw.len()` fds, so CMSG_FIRSTHDR is non-null.
        unsafe {
            let cmsg = libc::CMSG_FIRSTHDR(&hdr);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN((raw.len() * mem::size_of::<RawFd>()) as u32) as _;
            std::ptr::copy_nonoverlapping(raw.as_ptr(), libc::CMSG_DATA(cmsg).cast(), raw.len());
        }
    }
    loop {
        // SAFETY: `hdr` and everything it points to live across the call.
        let ret = unsafe { libc::sendmsg(sock, &hdr, libc::MSG_NOSIGNAL) };
        if ret >= 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
}

/// `recvmsg` into `buf`; `None` on EOF.
pub fn recv_with_fds(sock: RawFd, buf: &mut [u8]) -> io::Result<Option<(usize, Vec<OwnedFd>)>> {
    // SAFETY: pure size computation.
    let space = unsafe { libc::CMSG_SPACE((MAX_FDS * mem::size_of::<RawFd>()) as u32) } as usize;
    let mut cbuf = vec![0u8; space];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: msghdr is plain data; zeroed is a valid empty header.
    let mut hdr: libc::msghdr = unsafe { mem::zeroed() };
    hdr.msg_iov = &mut iov;
    hdr.msg_iovlen = 1;
    hdr.msg_control = cbuf.as_mut_ptr().cast();
    hdr.msg_controllen = space as _;
    let mut reset = false;
    let n = loop {
        // SAFETY: `hdr` points at live buffers of the sizes it declares.
        let ret = unsafe { libc::recvmsg(sock, &mut hdr, libc::MSG_CMSG_CLOEXEC) };
        if ret >= 0 {
            break ret as usize;
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ECONNRESET) {
            // The peer closed with a message of ours unread. The kernel
            // reports that (once) before the messages the peer sent us
            // first, such as an init's failure report: read on.
            if reset {
                return Ok(None);
            }
            reset = true;
            continue;
        }
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    };
    let mut fds = Vec::new();
    // SAFETY: walking the control messages the kernel wrote into `cbuf`,
    // bounded by msg_controllen; SCM_RIGHTS payloads are arrays of fds that
    // we now own.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&hdr);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let len = (*cmsg).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                let count = len / mem::size_of::<RawFd>();
                let data = libc::CMSG_DATA(cmsg) as *const RawFd;
                for i in 0..count {
                    fds.push(OwnedFd::from_raw_fd(std::ptr::read_unaligned(data.add(i))));
                }
            }
            cmsg = libc::CMSG_NXTHDR(&hdr, cmsg);
        }
    }
    if n == 0 && fds.is_empty() {
        return Ok(None);
    }
    if hdr.msg_flags & libc::MSG_TRUNC != 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "message truncated",
        ));
    }
    Ok(Some((n, fds)))
}

/// A sealed memfd holding `data`, for passing the init configuration.
pub fn sealed_memfd(name: &std::ffi::CStr, data: &[u8]) -> io::Result<OwnedFd> {
    // SAFETY: valid NUL-terminated name, integer flags.
    let fd =
        unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just gave us this fd.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut f = std::fs::File::from(fd.try_clone()?);
    io::Write::write_all(&mut f, data)?;
    let seals = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
    // SAFETY: fcntl on a live memfd.
    if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, seals) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn messages_and_fds_cross() {
        let (a, b) = Channel::pair().unwrap();
        let memfd = sealed_memfd(c"t", b"hello").unwrap();
        a.send(&Msg::Child { pid: 42 }, &[memfd.as_fd()]).unwrap();
        let (msg, fds) = b.recv().unwrap().unwrap();
        assert_eq!(msg, Msg::Child { pid: 42 });
        assert_eq!(fds.len(), 1);
        let mut s = String::new();
        let mut f = std::fs::File::from(fds.into_iter().next().unwrap());
        io::Seek::seek(&mut f, io::SeekFrom::Start(0)).unwrap();
        io::Read::read_to_string(&mut f, &mut s).unwrap();
        assert_eq!(s, "hello");
        let failure = SetupFailure {
            step: "mount /proc".into(),
            message: "EPERM".into(),
            errno: Some(1),
        };
        b.send(&Msg::Failed(failure.clone()), &[]).unwrap();
        assert_eq!(a.recv().unwrap().unwrap().0, Msg::Failed(failure));
        drop(b);
        assert!(a.recv().unwrap().is_none());
    }

    #[test]
    fn a_report_survives_the_peer_closing_with_our_message_unread() {
        // The init fails and exits while a message of ours waits unread:
        // the kernel flags ECONNRESET ahead of the init's report.
        let (caller, init) = Channel::pair().unwrap();
        let failure = SetupFailure {
            step: "mount /dev".into(),
            message: "a symlink".into(),
            errno: None,
        };
        init.send(&Msg::Failed(failure.clone()), &[]).unwrap();
        caller.send(&Msg::ResourcesApplied, &[]).unwrap();
        drop(init);
        assert_eq!(caller.recv().unwrap().unwrap().0, Msg::Failed(failure));
        assert!(caller.recv().unwrap().is_none());
    }

    #[test]
    fn sealed_memfd_refuses_writes() {
        let fd = sealed_memfd(c"t", b"x").unwrap();
        let mut f = std::fs::File::from(fd);
        assert!(io::Write::write_all(&mut f, b"more").is_err());
    }
}
