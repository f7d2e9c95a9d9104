//! The container's own session keyring (runc's behaviour unless
//! `NoNewKeyring`): the init and every exec join a new anonymous-to-the-host
//! session keyring named `_ses.<container id>`, so keys the caller (the
//! shim, containerd, a login session) holds are not reachable from the
//! container.
//!
//! Runs in the init, before any seccomp filter (profiles such as Docker's
//! deny `keyctl`).

use std::ffi::CString;
use std::io;

const KEYCTL_SETPERM: libc::c_long = 5;
const KEYCTL_DESCRIBE: libc::c_long = 6;
const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;
/// KEY_USR_SEARCH: the keyring's owner may search it.
const KEY_USR_SEARCH: u32 = 0x0008_0000;

/// Joins a new session keyring `_ses.<id>` and lets its owner search it.
/// A kernel without keys (ENOSYS) has nothing to isolate: not an error.
pub fn join_new_session(id: &str) -> io::Result<()> {
    let name = CString::new(format!("_ses.{id}"))
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: keyctl with a valid NUL-terminated name.
    let key =
        unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, name.as_ptr()) };
    if key < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ENOSYS) {
            return Ok(());
        }
        return Err(io::Error::new(
            e.kind(),
            format!("keyctl(JOIN_SESSION_KEYRING): {e}"),
        ));
    }
    let mut buf = [0u8; 256];
    // SAFETY: keyctl writes at most `buf.len()` bytes into `buf`.
    let n = unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            KEYCTL_DESCRIBE,
            key,
            buf.as_mut_ptr(),
            buf.len(),
        )
    };
    if n < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(e.kind(), format!("keyctl(DESCRIBE): {e}")));
    }
    // "type;uid;gid;perm;description"
    let text = String::from_utf8_lossy(&buf[..(n as usize).min(buf.len())]);
    let perm = text
        .split(';')
        .nth(3)
        .and_then(|p| u32::from_str_radix(p, 16).ok())
        .ok_or_else(|| io::Error::other(format!("keyctl(DESCRIBE): unexpected {text:?}")))?;
    // SAFETY: integer keyctl arguments.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            KEYCTL_SETPERM,
            key,
            (perm | KEY_USR_SEARCH) as libc::c_ulong,
        )
    };
    if ret < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(e.kind(), format!("keyctl(SETPERM): {e}")));
    }
    Ok(())
}
