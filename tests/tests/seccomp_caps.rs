//! Root tests of `seccomp` and `capabilities` against the real kernel.
//!
//! Each case forks a child (or execs a real program through `pre_exec`),
//! applies the filter or the capability sets there, and reports what the
//! kernel then does — errnos, signals, `/proc/self/status` — back over a
//! pipe. Without root every case prints why it is skipped.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::Command;

use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};
use serde_json::json;
use wren_runtime::capabilities::{self, CapabilitySets};
use wren_runtime::seccomp::{self, SeccompProgram};

fn root_or_skip(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    wren_tests::skip(
        test,
        wren_tests::Skip::NotRoot(
            "needs root (seccomp without no_new_privs and capability changes need CAP_SYS_ADMIN/CAP_SETPCAP)",
        ),
    );
    false
}

fn program(profile: serde_json::Value) -> SeccompProgram {
    let spec = seccomp::from_json(&profile).expect("profile parses");
    seccomp::compile(&spec).expect("profile compiles")
}

fn cap_sets(v: serde_json::Value) -> CapabilitySets {
    capabilities::resolve(&capabilities::from_json(&v).expect("caps parse")).expect("caps resolve")
}

/// Runs `child` in a forked process. It writes its report into the pipe it
/// is given and returns an exit code. Returns the wait status and the report.
/// Held around `fork` in [`in_child`], and by a test while it holds a file
/// open for writing that a child will exec: a child forked meanwhile by a
/// parallel test would keep the write fd and make that exec fail with
/// ETXTBSY.
static FORK: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn in_child(child: impl FnOnce(&mut File) -> i32) -> (WaitStatus, Vec<u8>) {
    let (rx, tx) = nix::unistd::pipe().expect("pipe");
    let forking = FORK.lock().unwrap_or_else(|e| e.into_inner());
    // SAFETY: the child runs only `child` and then `_exit`s; glibc keeps
    // malloc usable after fork, and the child touches no other lock.
    let forked = unsafe { fork() }.expect("fork");
    drop(forking);
    match forked {
        ForkResult::Child => {
            drop(rx);
            let mut tx = File::from(tx);
            let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| child(&mut tx)))
                .unwrap_or(101);
            // SAFETY: leave the child without running the test harness.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => {
            drop(tx);
            let mut out = Vec::new();
            File::from(rx).read_to_end(&mut out).expect("read report");
            (waitpid(child, None).expect("waitpid"), out)
        }
    }
}

/// `-errno` of the last failed libc call, or the non-negative result.
fn ret(r: libc::c_long) -> i64 {
    if r < 0 {
        -i64::from(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    } else {
        r
    }
}

fn report(tx: &mut File, values: &[i64]) {
    let text: Vec<String> = values.iter().map(i64::to_string).collect();
    let _ = tx.write_all(text.join(" ").as_bytes());
}

fn values(out: &[u8]) -> Vec<i64> {
    String::from_utf8_lossy(out)
        .split_whitespace()
        .map(|v| v.parse().expect("number"))
        .collect()
}

/// The hex value of a `Cap*:` line of a /proc status text.
fn status_mask(status: &str, key: &str) -> u64 {
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .unwrap_or_else(|| panic!("no {key} in status"));
    u64::from_str_radix(line.trim(), 16).expect("hex mask")
}

fn status_field<'a>(status: &'a str, key: &str) -> &'a str {
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .unwrap_or_else(|| panic!("no {key} in status"))
        .trim()
}

fn cap_bit(cap: u32) -> u64 {
    1u64 << cap
}
const CAP_CHOWN: u32 = 0;
const CAP_KILL: u32 = 5;
const CAP_SETPCAP: u32 = 8;
const CAP_NET_BIND_SERVICE: u32 = 10;
const CAP_NET_ADMIN: u32 = 12;

#[test]
fn errno_rule_unknown_name_and_log_flag() {
    if !root_or_skip("errno_rule_unknown_name_and_log_flag") {
        return;
    }
    let prog = program(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "flags": ["SECCOMP_FILTER_FLAG_LOG"],
        "syscalls": [{"names": ["wren_no_such_syscall", "mkdir", "mkdirat"],
                      "action": "SCMP_ACT_ERRNO", "errnoRet": 1234}]
    }));
    assert_eq!(prog.flags(), libc::SECCOMP_FILTER_FLAG_LOG as u32);
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("denied");
    let ctarget = std::ffi::CString::new(target.to_str().unwrap()).unwrap();
    let (status, out) = in_child(|tx| {
        if prog.load().is_err() {
            return 2;
        }
        // SAFETY: a valid NUL-terminated path.
        let r = ret(unsafe { libc::mkdir(ctarget.as_ptr(), 0o755) }.into());
        report(tx, &[r]);
        0
    });
    assert_eq!(status, WaitStatus::Exited(status_pid(status), 0));
    assert_eq!(values(&out), vec![-1234]);
    assert!(!target.exists());

    // The same through a real program.
    let out = wren_tests::run(
        Command::new("/bin/mkdir")
            .arg(&target)
            .pre_exec_load(prog.clone()),
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("1234"),
        "{out:?}"
    );
    assert!(!target.exists());
}

fn status_pid(s: WaitStatus) -> Pid {
    s.pid().expect("child pid")
}

trait PreExecLoad {
    fn pre_exec_load(&mut self, prog: SeccompProgram) -> &mut Self;
}

impl PreExecLoad for Command {
    fn pre_exec_load(&mut self, prog: SeccompProgram) -> &mut Self {
        // SAFETY: the closure only calls seccomp(2) (after building the
        // instruction vector) in the forked child.
        unsafe {
            self.pre_exec(move || {
                prog.load()
                    .map(drop)
                    .map_err(|_| std::io::Error::from_raw_os_error(libc::EPERM))
            })
        }
    }
}

#[test]
fn proc_status_shows_one_filter() {
    if !root_or_skip("proc_status_shows_one_filter") {
        return;
    }
    let prog = program(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["kexec_load"], "action": "SCMP_ACT_ERRNO"}]
    }));
    let out = wren_tests::run(
        Command::new("/bin/cat")
            .arg("/proc/self/status")
            .pre_exec_load(prog),
    );
    assert!(out.status.success(), "{out:?}");
    let status = String::from_utf8_lossy(&out.stdout);
    assert_eq!(status_field(&status, "Seccomp"), "2");
    assert_eq!(status_field(&status, "Seccomp_filters"), "1");
    // load() does not set no_new_privs: that is the caller's decision.
    assert_eq!(status_field(&status, "NoNewPrivs"), "0");
}

#[test]
fn default_action_with_default_errno() {
    if !root_or_skip("default_action_with_default_errno") {
        return;
    }
    let prog = program(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 99,
        "syscalls": [{"names": ["write", "exit_group", "exit", "rt_sigreturn"], "action": "SCMP_ACT_ALLOW"}]
    }));
    let (status, out) = in_child(|tx| {
        if prog.load().is_err() {
            return 2;
        }
        // SAFETY: raw syscalls without pointer arguments.
        let a = ret(unsafe { libc::syscall(libc::SYS_getppid) });
        // SAFETY: as above.
        let b = ret(unsafe { libc::syscall(libc::SYS_getuid) });
        report(tx, &[a, b]);
        0
    });
    assert!(matches!(status, WaitStatus::Exited(_, 0)), "{status:?}");
    assert_eq!(values(&out), vec![-99, -99]);
}

#[test]
fn argument_comparisons() {
    if !root_or_skip("argument_comparisons") {
        return;
    }
    let prog = program(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            // Only the query form personality(0xffffffff) is allowed.
            {"names": ["personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": 77,
             "args": [{"index": 0, "value": 0xffff_ffffu64, "op": "SCMP_CMP_NE"}]},
            // Two comparisons on one argument are alternatives (runc).
            {"names": ["socket"], "action": "SCMP_ACT_ERRNO", "errnoRet": 97,
             "args": [{"index": 0, "value": libc::AF_INET, "op": "SCMP_CMP_EQ"},
                      {"index": 0, "value": libc::AF_INET6, "op": "SCMP_CMP_EQ"}]},
            // (type & 0xf) == SOCK_DGRAM, whatever SOCK_CLOEXEC says.
            {"names": ["socket"], "action": "SCMP_ACT_ERRNO", "errnoRet": 95,
             "args": [{"index": 1, "value": 0xf, "valueTwo": libc::SOCK_DGRAM, "op": "SCMP_CMP_MASKED_EQ"}]}
        ]
    }));
    let (status, out) = in_child(|tx| {
        if prog.load().is_err() {
            return 2;
        }
        // SAFETY: raw syscalls with integer arguments only.
        let r = unsafe {
            [
                ret(libc::personality(0xffff_ffff).into()),
                ret(libc::personality(0x0008).into()),
                ret(libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0).into()),
                ret(libc::socket(libc::AF_INET6, libc::SOCK_STREAM, 0).into()),
                ret(libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0).into()),
                ret(libc::socket(libc::AF_UNIX, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0).into()),
            ]
        };
        report(tx, &r);
        0
    });
    assert!(matches!(status, WaitStatus::Exited(_, 0)), "{status:?}");
    let v = values(&out);
    assert!(v[0] >= 0, "personality query allowed: {v:?}");
    assert_eq!(v[1], -77, "personality change denied: {v:?}");
    assert_eq!(&v[2..4], &[-97, -97], "AF_INET and AF_INET6 denied: {v:?}");
    assert!(v[4] >= 0, "AF_UNIX stream allowed: {v:?}");
    assert_eq!(v[5], -95, "masked compare on the type: {v:?}");
}

#[test]
fn kill_process_and_trap_end_the_process_with_sigsys() {
    if !root_or_skip("kill_process_and_trap_end_the_process_with_sigsys") {
        return;
    }
    for action in ["SCMP_ACT_KILL_PROCESS", "SCMP_ACT_TRAP", "SCMP_ACT_KILL"] {
        let prog = program(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["getppid"], "action": action}]
        }));
        let (status, _) = in_child(|_| {
            if prog.load().is_err() {
                return 2;
            }
            // SAFETY: no arguments.
            unsafe { libc::syscall(libc::SYS_getppid) };
            0
        });
        assert!(
            matches!(
                status,
                WaitStatus::Signaled(_, nix::sys::signal::Signal::SIGSYS, _)
            ),
            "{action}: {status:?}"
        );
    }
}

#[test]
fn notify_returns_a_listener_an_agent_can_answer() {
    if !root_or_skip("notify_returns_a_listener_an_agent_can_answer") {
        return;
    }
    let prog = program(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "flags": ["SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]
    }));
    assert!(prog.uses_notify());
    let dir = tempfile::tempdir().unwrap();
    let ctarget = std::ffi::CString::new(dir.path().join("n").to_str().unwrap()).unwrap();

    let (rx, tx) = nix::unistd::pipe().unwrap();
    // SAFETY: as in `in_child`.
    let child = match unsafe { fork() }.unwrap() {
        ForkResult::Child => {
            drop(rx);
            let mut tx = File::from(tx);
            let code = match prog.load() {
                Ok(Some(listener)) => {
                    let _ = tx.write_all(&listener.as_raw_fd().to_ne_bytes());
                    // SAFETY: a valid NUL-terminated path.
                    let r = ret(unsafe { libc::mkdir(ctarget.as_ptr(), 0o755) }.into());
                    let _ = tx.write_all(&r.to_ne_bytes());
                    0
                }
                Ok(None) => 3,
                Err(_) => 2,
            };
            // SAFETY: leave the child without running the test harness.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => child,
    };
    drop(tx);
    let mut rx = File::from(rx);
    let mut fd_bytes = [0u8; 4];
    rx.read_exact(&mut fd_bytes)
        .expect("child reports its listener fd");
    let child_fd = i32::from_ne_bytes(fd_bytes);

    // The agent side: take the listener out of the child, answer the mkdir.
    // SAFETY: plain integer syscalls; the results are checked.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, child.as_raw(), 0) };
    assert!(
        pidfd >= 0,
        "pidfd_open: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: pidfd_open returned a new fd that we own.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd as i32) };
    // SAFETY: integer syscall on a live pidfd.
    let listener = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), child_fd, 0) };
    assert!(
        listener >= 0,
        "pidfd_getfd: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: pidfd_getfd returned a new fd that we own.
    let listener = unsafe { OwnedFd::from_raw_fd(listener as i32) };
    let req =
        libseccomp::ScmpNotifReq::receive(listener.as_raw_fd()).expect("receive notification");
    assert!(
        matches!(
            req.data.syscall.get_name().as_deref(),
            Ok("mkdir") | Ok("mkdirat")
        ),
        "{:?}",
        req.data.syscall.get_name()
    );
    libseccomp::ScmpNotifResp::new_error(
        req.id,
        -libc::ENOBUFS,
        libseccomp::ScmpNotifRespFlags::empty(),
    )
    .respond(listener.as_raw_fd())
    .expect("respond");

    let mut r = [0u8; 8];
    rx.read_exact(&mut r)
        .expect("child reports the mkdir result");
    assert_eq!(i64::from_ne_bytes(r), -i64::from(libc::ENOBUFS));
    assert!(matches!(
        waitpid(child, None).unwrap(),
        WaitStatus::Exited(_, 0)
    ));
    assert!(!dir.path().join("n").exists());
}

/// Our own capability sets, to compare against in the child.
fn parent_bounding() -> u64 {
    status_mask(
        &std::fs::read_to_string("/proc/self/status").unwrap(),
        "CapBnd",
    )
}

#[test]
fn root_gets_exactly_the_requested_sets() {
    if !root_or_skip("root_gets_exactly_the_requested_sets") {
        return;
    }
    let sets = cap_sets(json!({
        "bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_SETPCAP"],
        "permitted": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
        "effective": ["CAP_CHOWN", "CAP_KILL"]
    }));
    let (status, out) = in_child(|tx| {
        if sets.drop_bounding().is_err() || sets.apply().is_err() {
            return 2;
        }
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let _ = tx.write_all(status.as_bytes());
        0
    });
    assert!(matches!(status, WaitStatus::Exited(_, 0)), "{status:?}");
    let st = String::from_utf8_lossy(&out);
    let bounding = cap_bit(CAP_CHOWN)
        | cap_bit(CAP_KILL)
        | cap_bit(CAP_NET_BIND_SERVICE)
        | cap_bit(CAP_SETPCAP);
    assert_eq!(status_mask(&st, "CapBnd"), bounding & parent_bounding());
    assert_eq!(
        status_mask(&st, "CapPrm"),
        cap_bit(CAP_CHOWN) | cap_bit(CAP_KILL) | cap_bit(CAP_NET_BIND_SERVICE)
    );
    assert_eq!(
        status_mask(&st, "CapEff"),
        cap_bit(CAP_CHOWN) | cap_bit(CAP_KILL)
    );
    assert_eq!(
        status_mask(&st, "CapInh"),
        0,
        "inheritable stays empty unless asked"
    );
    assert_eq!(status_mask(&st, "CapAmb"), 0);
}

/// Drops privileges to uid/gid 1000 in the documented order, then applies
/// `sets`, writes /proc/self/status, and execs `exe` (which prints its own
/// status) with stdout on the report pipe.
fn as_user_then_exec(sets: CapabilitySets, exe: &std::path::Path) -> (WaitStatus, String, String) {
    let cexe = std::ffi::CString::new(exe.to_str().unwrap()).unwrap();
    let arg = c"/proc/self/status";
    let (status, out) = in_child(|tx| {
        let gid = nix::unistd::Gid::from_raw(1000);
        let uid = nix::unistd::Uid::from_raw(1000);
        if sets.drop_bounding().is_err()
            || capabilities::keep_caps_across_setuid().is_err()
            || nix::unistd::setgroups(&[]).is_err()
            || nix::unistd::setresgid(gid, gid, gid).is_err()
            || nix::unistd::setresuid(uid, uid, uid).is_err()
        {
            return 2;
        }
        if sets.apply().is_err() {
            return 3;
        }
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let _ = tx.write_all(status.as_bytes());
        let _ = tx.write_all(b"\n--exec--\n");
        // SAFETY: dup2 onto stdout and execv with NUL-terminated strings.
        unsafe {
            libc::dup2(tx.as_raw_fd(), 1);
            libc::execv(
                cexe.as_ptr(),
                [cexe.as_ptr(), arg.as_ptr(), std::ptr::null()].as_ptr(),
            );
        }
        4
    });
    let text = String::from_utf8_lossy(&out).into_owned();
    let (before, after) = text.split_once("\n--exec--\n").unwrap_or((&text, ""));
    (status, before.to_owned(), after.to_owned())
}

#[test]
fn non_root_user_keeps_requested_caps_across_setuid() {
    if !root_or_skip("non_root_user_keeps_requested_caps_across_setuid") {
        return;
    }
    let sets = cap_sets(json!({
        "bounding": ["CAP_KILL", "CAP_NET_BIND_SERVICE"],
        "permitted": ["CAP_KILL", "CAP_NET_BIND_SERVICE"],
        "effective": ["CAP_KILL", "CAP_NET_BIND_SERVICE"],
        "inheritable": ["CAP_NET_BIND_SERVICE"],
        "ambient": ["CAP_NET_BIND_SERVICE"]
    }));
    let (status, before, after) = as_user_then_exec(sets, std::path::Path::new("/bin/cat"));
    assert!(
        matches!(status, WaitStatus::Exited(_, 0)),
        "{status:?} {before}"
    );
    let both = cap_bit(CAP_KILL) | cap_bit(CAP_NET_BIND_SERVICE);
    let nbs = cap_bit(CAP_NET_BIND_SERVICE);
    assert_eq!(
        status_field(&before, "Uid").split_whitespace().next(),
        Some("1000")
    );
    assert_eq!(status_mask(&before, "CapPrm"), both);
    assert_eq!(status_mask(&before, "CapEff"), both);
    assert_eq!(status_mask(&before, "CapInh"), nbs);
    assert_eq!(status_mask(&before, "CapAmb"), nbs);
    assert_eq!(status_mask(&before, "CapBnd"), both & parent_bounding());
    // After execve a non-root process keeps only its ambient capabilities.
    assert_eq!(status_mask(&after, "CapPrm"), nbs, "{after}");
    assert_eq!(status_mask(&after, "CapEff"), nbs);
    assert_eq!(status_mask(&after, "CapAmb"), nbs);
}

/// CVE-2022-29162: a binary with inheritable file capabilities must not give a
/// non-root container process those capabilities, because inheritable is
/// empty unless the spec asks for it.
#[test]
fn inheritable_file_caps_give_nothing_by_default() {
    if !root_or_skip("inheritable_file_caps_give_nothing_by_default") {
        return;
    }
    // Under the target dir: /work is ext4 without nosuid, so file caps count.
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let exe = dir.path().join("capcat");
    {
        let _no_fork = FORK.lock().unwrap_or_else(|e| e.into_inner());
        std::fs::copy("/bin/cat", &exe).unwrap();
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
    // struct vfs_cap_data, revision 2: "cap_net_admin+ei".
    let mut xattr = Vec::new();
    xattr.extend_from_slice(&(0x0200_0000u32 | 1).to_le_bytes()); // VFS_CAP_REVISION_2 | EFFECTIVE
    xattr.extend_from_slice(&0u32.to_le_bytes()); // permitted, low
    xattr.extend_from_slice(&(1u32 << CAP_NET_ADMIN).to_le_bytes()); // inheritable, low
    xattr.extend_from_slice(&0u32.to_le_bytes()); // permitted, high
    xattr.extend_from_slice(&0u32.to_le_bytes()); // inheritable, high
    let cpath = std::ffi::CString::new(exe.to_str().unwrap()).unwrap();
    // SAFETY: valid NUL-terminated strings and a live buffer of the given length.
    let r = unsafe {
        libc::setxattr(
            cpath.as_ptr(),
            c"security.capability".as_ptr(),
            xattr.as_ptr().cast(),
            xattr.len(),
            0,
        )
    };
    if r != 0 {
        wren_tests::skip(
            "inheritable_file_caps_give_nothing_by_default",
            wren_tests::Skip::Host(format!(
                "cannot set file capabilities here: {}",
                std::io::Error::last_os_error()
            )),
        );
        return;
    }
    let base = json!({
        "bounding": ["CAP_NET_ADMIN", "CAP_NET_BIND_SERVICE"],
        "permitted": ["CAP_NET_ADMIN", "CAP_NET_BIND_SERVICE"],
        "effective": ["CAP_NET_ADMIN", "CAP_NET_BIND_SERVICE"]
    });
    let (status, before, after) = as_user_then_exec(cap_sets(base.clone()), &exe);
    assert!(
        matches!(status, WaitStatus::Exited(_, 0)),
        "{status:?} {before}"
    );
    assert_eq!(status_mask(&before, "CapInh"), 0);
    assert_eq!(status_mask(&after, "CapInh"), 0, "{after}");
    assert_eq!(status_mask(&after, "CapPrm") & cap_bit(CAP_NET_ADMIN), 0);
    assert_eq!(status_mask(&after, "CapEff") & cap_bit(CAP_NET_ADMIN), 0);

    // Control: asking for inheritable NET_ADMIN does hand it over, so the
    // file capability really is honoured here.
    let mut asked = base;
    asked["inheritable"] = json!(["CAP_NET_ADMIN"]);
    let (status, _, after) = as_user_then_exec(cap_sets(asked), &exe);
    assert!(matches!(status, WaitStatus::Exited(_, 0)), "{status:?}");
    assert_ne!(
        status_mask(&after, "CapPrm") & cap_bit(CAP_NET_ADMIN),
        0,
        "{after}"
    );
}

#[test]
fn bad_input_names_the_field() {
    let err = seccomp::from_json(&json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["x"], "action": "SCMP_ACT_ALLOW",
                      "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_FOO"}]}]
    }))
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"linux.seccomp.syscalls[0].args[0].op: unknown operator "SCMP_CMP_FOO""#
    );
    let err = capabilities::from_json(&json!({"bounding": ["CAP_NOT_A_CAP"]})).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"process.capabilities.bounding[0]: unknown capability "CAP_NOT_A_CAP""#
    );
}
