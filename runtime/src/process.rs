//! Attributes of the container process that are neither namespaces nor
//! mounts: rlimits, oom_score_adj, user and groups, scheduler, I/O priority,
//! personality, CPU affinity, cwd checking and executable lookup.
//!
//! The validators run in the caller; the setters run in the init process.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{
    IOPriorityClass, LinuxIOPriority, LinuxPersonality, LinuxPersonalityDomain, LinuxSchedulerFlag,
    LinuxSchedulerPolicy, PosixRlimit, PosixRlimitType, Scheduler, User,
};

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("setrlimit {name}")]
    Rlimit {
        name: String,
        #[source]
        source: io::Error,
    },
    #[error("set oom_score_adj {value}")]
    OomScoreAdj {
        value: i32,
        #[source]
        source: io::Error,
    },
    #[error("{call} for user {uid}:{gid}")]
    User {
        call: &'static str,
        uid: u32,
        gid: u32,
        #[source]
        source: io::Error,
    },
    #[error("{call}")]
    Attribute {
        call: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("{cwd}")]
    Cwd {
        cwd: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{cwd} resolves outside the container ({actual})")]
    CwdEscape { cwd: PathBuf, actual: String },
    #[error("executable {name:?} not found in $PATH")]
    NotFound { name: String },
    #[error("executable {path}")]
    Executable {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// The resource argument of `setrlimit`/`prlimit`: an enum in glibc, an int
/// in musl.
#[cfg(target_env = "gnu")]
type RlimitResource = libc::__rlimit_resource_t;
#[cfg(not(target_env = "gnu"))]
type RlimitResource = libc::c_int;

fn rlimit_resource(t: PosixRlimitType) -> (RlimitResource, &'static str) {
    use PosixRlimitType::*;
    match t {
        RlimitCpu => (libc::RLIMIT_CPU, "RLIMIT_CPU"),
        RlimitFsize => (libc::RLIMIT_FSIZE, "RLIMIT_FSIZE"),
        RlimitData => (libc::RLIMIT_DATA, "RLIMIT_DATA"),
        RlimitStack => (libc::RLIMIT_STACK, "RLIMIT_STACK"),
        RlimitCore => (libc::RLIMIT_CORE, "RLIMIT_CORE"),
        RlimitRss => (libc::RLIMIT_RSS, "RLIMIT_RSS"),
        RlimitNproc => (libc::RLIMIT_NPROC, "RLIMIT_NPROC"),
        RlimitNofile => (libc::RLIMIT_NOFILE, "RLIMIT_NOFILE"),
        RlimitMemlock => (libc::RLIMIT_MEMLOCK, "RLIMIT_MEMLOCK"),
        RlimitAs => (libc::RLIMIT_AS, "RLIMIT_AS"),
        RlimitLocks => (libc::RLIMIT_LOCKS, "RLIMIT_LOCKS"),
        RlimitSigpending => (libc::RLIMIT_SIGPENDING, "RLIMIT_SIGPENDING"),
        RlimitMsgqueue => (libc::RLIMIT_MSGQUEUE, "RLIMIT_MSGQUEUE"),
        RlimitNice => (libc::RLIMIT_NICE, "RLIMIT_NICE"),
        RlimitRtprio => (libc::RLIMIT_RTPRIO, "RLIMIT_RTPRIO"),
        RlimitRttime => (libc::RLIMIT_RTTIME, "RLIMIT_RTTIME"),
    }
}

/// Set every rlimit (before any user namespace exists, so hard limits can
/// still be raised; children inherit them).
pub fn set_rlimits(rlimits: &[PosixRlimit]) -> Result<(), ProcessError> {
    for r in rlimits {
        let (res, name) = rlimit_resource(r.typ());
        let lim = libc::rlimit {
            rlim_cur: r.soft(),
            rlim_max: r.hard(),
        };
        // SAFETY: a valid rlimit struct.
        if unsafe { libc::setrlimit(res, &lim) } != 0 {
            return Err(ProcessError::Rlimit {
                name: name.into(),
                source: io::Error::last_os_error(),
            });
        }
    }
    Ok(())
}

/// Write the process's own oom_score_adj.
pub fn set_oom_score_adj(procfs: &crate::procfs::Procfs, value: i32) -> Result<(), ProcessError> {
    procfs
        .write_self("oom_score_adj", value.to_string().as_bytes())
        .map_err(|source| ProcessError::OomScoreAdj { value, source })
}

/// Switch to the container user: supplementary groups, gid, uid. The caller
/// has arranged for capabilities to survive (see `capabilities`).
pub fn set_user(user: &User) -> Result<(), ProcessError> {
    let (uid, gid) = (user.uid(), user.gid());
    let err = |call| {
        move |source| ProcessError::User {
            call,
            uid,
            gid,
            source,
        }
    };
    let groups: Vec<libc::gid_t> = user.additional_gids().clone().unwrap_or_default();
    // SAFETY: pointer and length describe a live slice.
    let ret = unsafe { libc::setgroups(groups.len(), groups.as_ptr()) };
    if ret != 0 {
        let e = io::Error::last_os_error();
        // In a user namespace with setgroups denied only an empty list is
        // impossible to set, and it is already empty.
        if !(groups.is_empty() && e.raw_os_error() == Some(libc::EPERM)) {
            return Err(err("setgroups")(e));
        }
    }
    // SAFETY: integer syscalls.
    if unsafe { libc::setresgid(gid, gid, gid) } != 0 {
        return Err(err("setresgid")(io::Error::last_os_error()));
    }
    // SAFETY: integer syscalls.
    if unsafe { libc::setresuid(uid, uid, uid) } != 0 {
        return Err(err("setresuid")(io::Error::last_os_error()));
    }
    Ok(())
}

/// The umask from `user.umask`, or the conventional 0022.
pub fn set_umask(user: &User) {
    // SAFETY: umask cannot fail.
    unsafe { libc::umask(user.umask().unwrap_or(0o022) as libc::mode_t) };
}

/// The `personality(2)` value for `linux.personality`.
pub fn personality_value(p: &LinuxPersonality) -> Result<libc::c_ulong, String> {
    let mut v: libc::c_ulong = match p.domain() {
        LinuxPersonalityDomain::PerLinux => 0x0000,
        LinuxPersonalityDomain::PerLinux32 => 0x0008,
    };
    for f in p.flags().as_deref().unwrap_or(&[]) {
        v |= match f.as_str() {
            "ADDR_NO_RANDOMIZE" => 0x0040000,
            "FDPIC_FUNCPTRS" => 0x0080000,
            "MMAP_PAGE_ZERO" => 0x0100000,
            "ADDR_COMPAT_LAYOUT" => 0x0200000,
            "READ_IMPLIES_EXEC" => 0x0400000,
            "ADDR_LIMIT_32BIT" => 0x0800000,
            "SHORT_INODE" => 0x1000000,
            "WHOLE_SECONDS" => 0x2000000,
            "STICKY_TIMEOUTS" => 0x4000000,
            "ADDR_LIMIT_3GB" => 0x8000000,
            other => return Err(format!("unknown flag {other:?}")),
        };
    }
    Ok(v)
}

pub fn set_personality(p: &LinuxPersonality) -> Result<(), ProcessError> {
    let v = personality_value(p).map_err(|m| ProcessError::Attribute {
        call: "personality",
        source: io::Error::new(io::ErrorKind::InvalidInput, m),
    })?;
    // SAFETY: integer syscall.
    if unsafe { libc::personality(v) } < 0 {
        return Err(ProcessError::Attribute {
            call: "personality",
            source: io::Error::last_os_error(),
        });
    }
    Ok(())
}

fn policy_value(p: LinuxSchedulerPolicy) -> Result<u32, String> {
    Ok(match p {
        LinuxSchedulerPolicy::SchedOther => 0,
        LinuxSchedulerPolicy::SchedFifo => 1,
        LinuxSchedulerPolicy::SchedRr => 2,
        LinuxSchedulerPolicy::SchedBatch => 3,
        LinuxSchedulerPolicy::SchedIdle => 5,
        LinuxSchedulerPolicy::SchedDeadline => 6,
        LinuxSchedulerPolicy::SchedIso => {
            return Err("SCHED_ISO is not implemented by Linux".into())
        }
    })
}

pub fn validate_scheduler(s: &Scheduler) -> Result<(), String> {
    policy_value(*s.policy())?;
    if let Some(n) = *s.nice() {
        if !(-20..=19).contains(&n) {
            return Err(format!("nice {n} outside -20..19"));
        }
    }
    let rt = matches!(
        s.policy(),
        LinuxSchedulerPolicy::SchedFifo | LinuxSchedulerPolicy::SchedRr
    );
    if rt && !(1..=99).contains(&s.priority().unwrap_or(0)) {
        return Err("priority must be 1..99 for SCHED_FIFO and SCHED_RR".into());
    }
    Ok(())
}

#[repr(C)]
#[derive(Default)]
struct SchedAttr {
    size: u32,
    policy: u32,
    flags: u64,
    nice: i32,
    priority: u32,
    runtime: u64,
    deadline: u64,
    period: u64,
    util_min: u32,
    util_max: u32,
}

pub fn set_scheduler(s: &Scheduler) -> Result<(), ProcessError> {
    let mut flags = 0u64;
    for f in s.flags().as_deref().unwrap_or(&[]) {
        flags |= match f {
            LinuxSchedulerFlag::SchedResetOnFork => 0x01,
            LinuxSchedulerFlag::SchedFlagReclaim => 0x02,
            LinuxSchedulerFlag::SchedFlagDLOverrun => 0x04,
            LinuxSchedulerFlag::SchedFlagKeepPolicy => 0x08,
            LinuxSchedulerFlag::SchedFlagKeepParams => 0x10,
            LinuxSchedulerFlag::SchedFlagUtilClampMin => 0x20,
            LinuxSchedulerFlag::SchedFlagUtilClampMax => 0x40,
        };
    }
    let attr = SchedAttr {
        size: std::mem::size_of::<SchedAttr>() as u32,
        policy: policy_value(*s.policy()).unwrap_or(0),
        flags,
        nice: s.nice().unwrap_or(0),
        priority: s.priority().unwrap_or(0) as u32,
        runtime: s.runtime().unwrap_or(0),
        deadline: s.deadline().unwrap_or(0),
        period: s.period().unwrap_or(0),
        ..Default::default()
    };
    // SAFETY: a valid sched_attr of the size it declares, for pid 0 (self).
    let ret = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0) };
    if ret < 0 {
        return Err(ProcessError::Attribute {
            call: "sched_setattr",
            source: io::Error::last_os_error(),
        });
    }
    Ok(())
}

pub fn set_io_priority(p: &LinuxIOPriority) -> Result<(), ProcessError> {
    let class: i64 = match p.class() {
        IOPriorityClass::IoprioClassRt => 1,
        IOPriorityClass::IoprioClassBe => 2,
        IOPriorityClass::IoprioClassIdle => 3,
    };
    let value = (class << 13) | p.priority();
    // SAFETY: ioprio_set(IOPRIO_WHO_PROCESS=1, self=0, value) with integers.
    let ret = unsafe { libc::syscall(libc::SYS_ioprio_set, 1, 0, value) };
    if ret < 0 {
        return Err(ProcessError::Attribute {
            call: "ioprio_set",
            source: io::Error::last_os_error(),
        });
    }
    Ok(())
}

/// Parse a CPU list like "0-3,7".
pub fn parse_cpu_list(list: &str) -> Result<Vec<usize>, String> {
    let mut cpus = Vec::new();
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let a: usize = a.trim().parse().map_err(|_| format!("bad CPU {part:?}"))?;
        let b: usize = b.trim().parse().map_err(|_| format!("bad CPU {part:?}"))?;
        if a > b || b >= libc::CPU_SETSIZE as usize {
            return Err(format!("bad CPU range {part:?}"));
        }
        cpus.extend(a..=b);
    }
    if cpus.is_empty() {
        return Err("empty CPU list".into());
    }
    Ok(cpus)
}

pub fn set_cpu_affinity(list: &str) -> Result<(), ProcessError> {
    set_cpu_affinity_of(0, list)
}

/// `sched_setaffinity` of `pid` (0: the calling thread) to a CPU list.
pub fn set_cpu_affinity_of(pid: i32, list: &str) -> Result<(), ProcessError> {
    let cpus = parse_cpu_list(list).map_err(|m| ProcessError::Attribute {
        call: "sched_setaffinity",
        source: io::Error::new(io::ErrorKind::InvalidInput, m),
    })?;
    // SAFETY: cpu_set_t is plain data; zeroed is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for c in cpus {
        // SAFETY: c < CPU_SETSIZE, checked by parse_cpu_list.
        unsafe { libc::CPU_SET(c, &mut set) };
    }
    // SAFETY: a valid cpu_set_t of the size given.
    if unsafe { libc::sched_setaffinity(pid, std::mem::size_of::<libc::cpu_set_t>(), &set) } != 0 {
        return Err(ProcessError::Attribute {
            call: "sched_setaffinity",
            source: io::Error::last_os_error(),
        });
    }
    Ok(())
}

/// `chdir` to `cwd` and make sure the result is inside the container's root
/// (CVE-2024-21626: a cwd through a leaked fd would be "(unreachable)").
pub fn enter_cwd(cwd: &Path) -> Result<(), ProcessError> {
    let c = CString::new(cwd.as_os_str().as_bytes()).map_err(|_| ProcessError::Cwd {
        cwd: cwd.to_path_buf(),
        source: io::ErrorKind::InvalidInput.into(),
    })?;
    // SAFETY: valid NUL-terminated path.
    if unsafe { libc::chdir(c.as_ptr()) } != 0 {
        return Err(ProcessError::Cwd {
            cwd: cwd.to_path_buf(),
            source: io::Error::last_os_error(),
        });
    }
    match std::env::current_dir() {
        Ok(p) if p.is_absolute() && !p.to_string_lossy().starts_with("(unreachable)") => Ok(()),
        Ok(p) => Err(ProcessError::CwdEscape {
            cwd: cwd.to_path_buf(),
            actual: p.display().to_string(),
        }),
        Err(e) => Err(ProcessError::CwdEscape {
            cwd: cwd.to_path_buf(),
            actual: e.to_string(),
        }),
    }
}

/// Find the program to execute the way execvp would, using the process's
/// PATH (or the conventional default), inside the container's root.
pub fn find_executable(name: &str, env: &[String]) -> Result<PathBuf, ProcessError> {
    if name.contains('/') {
        let p = PathBuf::from(name);
        check_executable(&p)?;
        return Ok(p);
    }
    let path = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    for dir in path.split(':').filter(|d| !d.is_empty()) {
        let p = Path::new(dir).join(name);
        if check_executable(&p).is_ok() {
            return Ok(p);
        }
    }
    Err(ProcessError::NotFound {
        name: name.to_string(),
    })
}

fn check_executable(p: &Path) -> Result<(), ProcessError> {
    let meta = std::fs::metadata(p).map_err(|source| ProcessError::Executable {
        path: p.to_path_buf(),
        source,
    })?;
    if meta.is_dir() || meta.permissions().mode() & 0o111 == 0 {
        return Err(ProcessError::Executable {
            path: p.to_path_buf(),
            source: io::Error::from_raw_os_error(libc::EACCES),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_parse() {
        assert_eq!(parse_cpu_list("0-2,5").unwrap(), vec![0, 1, 2, 5]);
        assert!(parse_cpu_list("3-1").is_err());
        assert!(parse_cpu_list("").is_err());
        assert!(parse_cpu_list("x").is_err());
    }

    #[test]
    fn personality_flags_combine() {
        let p: LinuxPersonality =
            serde_json::from_str(r#"{"domain":"LINUX32","flags":["ADDR_NO_RANDOMIZE"]}"#).unwrap();
        assert_eq!(personality_value(&p).unwrap(), 0x0040008);
        let p: LinuxPersonality =
            serde_json::from_str(r#"{"domain":"LINUX","flags":["NOPE"]}"#).unwrap();
        assert!(personality_value(&p).unwrap_err().contains("NOPE"));
    }

    #[test]
    fn executables_are_found_on_path() {
        let sh = find_executable("sh", &["PATH=/nonexistent:/bin:/usr/bin".into()]).unwrap();
        assert!(sh.ends_with("sh"));
        assert!(matches!(
            find_executable("no-such-program-wren", &[]),
            Err(ProcessError::NotFound { .. })
        ));
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("data");
        std::fs::write(&plain, "x").unwrap();
        std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(find_executable(plain.to_str().unwrap(), &[]).is_err());
    }
}
