//! Raw capability syscalls: `capget`/`capset` (v3, all three sets at once)
//! and the `prctl`s for the bounding set, the ambient set and keep-caps.
//!
//! Runs in the container's init (and exec) process while it drops
//! privileges. No allocation, no logging. Capabilities are numbers
//! (`CAP_CHOWN` = 0 …) and sets are `u64` bit masks.

use std::io;

/// `_LINUX_CAPABILITY_VERSION_3`: 64-bit sets split over two data structs.
const CAPABILITY_VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// The three per-thread sets `capget`/`capset` handle.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CapSets {
    pub effective: u64,
    pub permitted: u64,
    pub inheritable: u64,
}

fn check(ret: libc::c_long) -> io::Result<libc::c_long> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn join(lo: u32, hi: u32) -> u64 {
    u64::from(lo) | (u64::from(hi) << 32)
}

/// `capget(2)` of the calling thread.
pub fn capget() -> io::Result<CapSets> {
    let mut header = CapHeader {
        version: CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: version 3 makes the kernel write exactly two CapData structs,
    // which `data` provides; both pointers are valid for the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_capget,
            &mut header as *mut CapHeader,
            data.as_mut_ptr(),
        )
    };
    check(ret)?;
    Ok(CapSets {
        effective: join(data[0].effective, data[1].effective),
        permitted: join(data[0].permitted, data[1].permitted),
        inheritable: join(data[0].inheritable, data[1].inheritable),
    })
}

/// `capset(2)` of the calling thread: all three sets in one call, so the
/// kernel checks the new sets against the old ones atomically.
pub fn capset(sets: CapSets) -> io::Result<()> {
    let mut header = CapHeader {
        version: CAPABILITY_VERSION_3,
        pid: 0,
    };
    // Splitting a u64 into its low and high halves.
    let split = |v: u64| (v as u32, (v >> 32) as u32);
    let (e0, e1) = split(sets.effective);
    let (p0, p1) = split(sets.permitted);
    let (i0, i1) = split(sets.inheritable);
    let data = [
        CapData {
            effective: e0,
            permitted: p0,
            inheritable: i0,
        },
        CapData {
            effective: e1,
            permitted: p1,
            inheritable: i1,
        },
    ];
    // SAFETY: version 3 makes the kernel read exactly two CapData structs
    // from `data`; the header may be written back (version) and is valid.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_capset,
            &mut header as *mut CapHeader,
            data.as_ptr(),
        )
    };
    check(ret).map(drop)
}

fn prctl(option: libc::c_int, arg2: libc::c_ulong, arg3: libc::c_ulong) -> io::Result<libc::c_int> {
    // SAFETY: the options used here take integer arguments only; unused ones are 0.
    let ret = unsafe { libc::prctl(option, arg2, arg3, 0 as libc::c_ulong, 0 as libc::c_ulong) };
    check(libc::c_long::from(ret)).map(|r| r as libc::c_int)
}

/// `prctl(PR_CAPBSET_READ)`: whether `cap` is in the bounding set.
/// `EINVAL` means the kernel does not know `cap`.
pub fn bounding_contains(cap: u32) -> io::Result<bool> {
    prctl(libc::PR_CAPBSET_READ, cap.into(), 0).map(|r| r == 1)
}

/// `prctl(PR_CAPBSET_DROP)`: remove `cap` from the bounding set. Needs
/// `CAP_SETPCAP` in the effective set.
pub fn bounding_drop(cap: u32) -> io::Result<()> {
    prctl(libc::PR_CAPBSET_DROP, cap.into(), 0).map(drop)
}

/// `prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)`.
pub fn ambient_clear_all() -> io::Result<()> {
    prctl(
        libc::PR_CAP_AMBIENT,
        libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
        0,
    )
    .map(drop)
}

/// `prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap)`: `cap` must be in
/// both the permitted and the inheritable set.
pub fn ambient_raise(cap: u32) -> io::Result<()> {
    prctl(
        libc::PR_CAP_AMBIENT,
        libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
        cap.into(),
    )
    .map(drop)
}

/// `prctl(PR_SET_KEEPCAPS)`: keep the permitted set when all uids change
/// from 0 to non-zero. Cleared again by `execve`.
pub fn set_keepcaps(keep: bool) -> io::Result<()> {
    prctl(libc::PR_SET_KEEPCAPS, libc::c_ulong::from(keep), 0).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capget_and_bounding_read_answer() {
        let sets = capget().unwrap();
        // Effective is always a subset of permitted.
        assert_eq!(sets.effective & !sets.permitted, 0);
        // CAP_CHOWN (0) is known to every kernel; 63 is not.
        bounding_contains(0).unwrap();
        assert_eq!(
            bounding_contains(63).unwrap_err().raw_os_error(),
            Some(libc::EINVAL)
        );
        // Setting what we already have is always allowed.
        capset(sets).unwrap();
    }
}
