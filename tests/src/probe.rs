//! Host-side probes for the security suite: what the host's /proc says
//! about a process (status fields, fds, namespaces, dumpability), file
//! hashes, and a ptrace-style access check that tells a dumpable process
//! from a non-dumpable one.
//!
//! Runs in the test processes only.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// One field of `/proc/<pid>/status` (e.g. "CapInh"), trimmed.
pub fn status_field(pid: i64, key: &str) -> Option<String> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .map(|v| v.trim().to_string())
}

/// The open fds of `pid` with their link targets, sorted by number.
pub fn fds(pid: i64) -> Vec<(i32, String)> {
    let mut v: Vec<(i32, String)> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().to_string_lossy().parse().ok()?;
            let target = std::fs::read_link(e.path())
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            Some((n, target))
        })
        .collect();
    v.sort();
    v
}

/// Namespace links of `pid` for each kind in `kinds` ("" when unreadable).
pub fn ns_links(pid: i64, kinds: &[&str]) -> Vec<String> {
    kinds
        .iter()
        .map(|k| {
            std::fs::read_link(format!("/proc/{pid}/ns/{k}"))
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        })
        .collect()
}

/// Every namespace kind this kernel shows under /proc/self/ns (without the
/// `*_for_children` links, which differ by design).
pub fn all_ns_kinds() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir("/proc/self/ns")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with("_for_children"))
        .collect();
    v.sort();
    v
}

/// sha256 of a file, hex.
pub fn sha256(path: &Path) -> String {
    let out = crate::run(Command::new("sha256sum").arg(path));
    assert!(out.status.success(), "sha256sum {}", path.display());
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// Whether a same-uid caller WITHOUT an effective CAP_SYS_PTRACE passes the
/// kernel's ptrace access check on `pid` (`kcmp(2)`, which checks
/// PTRACE_MODE_READ_REALCREDS and compares nothing harmful). The answer
/// differs only by the target's dumpable flag: the caller keeps every
/// capability in its permitted set, so the capability-subset rule holds,
/// and the uid is the same (root), so only `get_dumpable() != SUID_DUMP_USER`
/// can refuse. Returns `Some(true)` for accessible (dumpable), `Some(false)`
/// for EPERM (not dumpable), `None` when the pid is gone.
///
/// Runs in a fresh thread whose own credentials are changed (raw capset
/// affects only the calling thread), so the test process keeps its caps.
pub fn ptrace_accessible(pid: i64) -> Option<bool> {
    std::thread::spawn(move || {
        drop_effective_sys_ptrace();
        let me = std::process::id() as libc::c_long;
        // SAFETY: kcmp(2) with integer arguments; KCMP_VM = 1 takes no
        // index arguments.
        let r = unsafe { libc::syscall(libc::SYS_kcmp, me, pid as libc::c_long, 1, 0, 0) };
        if r >= 0 {
            Some(true)
        } else {
            match std::io::Error::last_os_error().raw_os_error() {
                Some(libc::EPERM) | Some(libc::EACCES) => Some(false),
                _ => None,
            }
        }
    })
    .join()
    .expect("probe thread")
}

/// Clears CAP_SYS_PTRACE from this thread's effective set only (the raw
/// capset the runtime uses changes only the calling thread).
fn drop_effective_sys_ptrace() {
    use wren_runtime::sys::caps;
    let mut sets = caps::capget().expect("capget");
    const CAP_SYS_PTRACE: u32 = 19;
    sets.effective &= !(1u64 << CAP_SYS_PTRACE);
    caps::capset(sets).expect("capset");
}

/// Processes whose pid namespace is `pidns` (a `pid:[N]` link), except
/// `skip`, with their comm.
pub fn procs_in_pidns(pidns: &str, skip: &[i64]) -> Vec<(i64, String)> {
    let mut v = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i64>() else {
            continue;
        };
        if skip.contains(&pid) {
            continue;
        }
        let ns = std::fs::read_link(e.path().join("ns/pid"))
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        if ns == pidns {
            let comm = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
            v.push((pid, comm.trim().to_string()));
        }
    }
    v
}

/// A watcher for the container: for every process it can see whose exe is
/// not the container's busybox, try to open that exe for writing at once,
/// and again through a held read-only fd a moment later (after the process
/// may have exited, so ETXTBSY no longer protects the file). Successes go
/// to /tmp/hits, what it saw to /tmp/seen. Stops when /tmp/stop exists.
pub const EXE_WATCHER: &str = r#": > /tmp/hits; : > /tmp/seen
while [ ! -e /tmp/stop ]; do
  for d in /proc/[0-9]*; do
    p=${d#/proc/}
    [ "$p" = 1 ] && continue
    l=$(readlink $d/exe 2>/dev/null)
    [ "$l" = /bin/busybox ] && continue
    c=$(cat $d/comm 2>/dev/null) || continue
    echo "$p $c exe=${l:-unreadable}" >> /tmp/seen
    if echo x 2>/dev/null >> $d/exe; then echo "$p $c direct" >> /tmp/hits; fi
    ( exec 7< $d/exe || exit 0
      # The process may have exec'd a container binary since readlink (this
      # container's busybox or a copy in a container sharing the pid
      # namespace): writing a container's own file is no escape, skip it.
      cmp -s /proc/self/fd/7 /bin/busybox && exit 0
      sleep 0.2
      if echo x >> /proc/self/fd/7; then
        echo "$p $c held $(stat -L -c %d:%i /proc/self/fd/7)" >> /tmp/hits
      fi ) 2>/dev/null
  done
done
echo done > /tmp/stopped
exec sleep 1000"#;

/// One sampled process: pid, comm, dumpable (see [`ptrace_accessible`]), exe.
pub type Sample = (i64, String, Option<bool>, String);

/// Records every runtime-owned process (comm starting with `owner_prefix`)
/// the host sees in pid namespace `pidns` while an attack runs.
pub struct Sampler {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<Sample>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sampler {
    pub fn start(pidns: String, owner_prefix: &'static str) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (s, v) = (stop.clone(), seen.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                for (pid, comm) in procs_in_pidns(&pidns, &[]) {
                    if !comm.starts_with(owner_prefix) {
                        continue;
                    }
                    let exe = std::fs::read_link(format!("/proc/{pid}/exe"))
                        .map(|p| p.display().to_string())
                        .unwrap_or_default();
                    // Re-check the comm: the pid may have exec'd meanwhile.
                    let dumpable = ptrace_accessible(pid);
                    let still = std::fs::read_to_string(format!("/proc/{pid}/comm"))
                        .map(|c| c.trim() == comm)
                        .unwrap_or(false);
                    if still && dumpable.is_some() {
                        v.lock().unwrap().push((pid, comm, dumpable, exe));
                    }
                }
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
        });
        Sampler {
            stop,
            seen,
            thread: Some(thread),
        }
    }

    pub fn finish(mut self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().expect("sampler");
        }
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
}

/// A real /dev/null node (char 1:3, 0666) at `path`.
pub fn mknod_dev_null(path: &Path) {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).expect("path");
    // SAFETY: a valid C path; mknod(2) with integer mode and device.
    let r = unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR | 0o666, libc::makedev(1, 3)) };
    assert_eq!(
        r,
        0,
        "mknod {}: {}",
        path.display(),
        std::io::Error::last_os_error()
    );
}
