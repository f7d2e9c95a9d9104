//! Root tests of the cgroup manager against the real kernel.
//!
//! On the hybrid build machines resources are checked through the v1
//! controllers, and the v2 logic (cgroup.freeze, cgroup.kill, the eBPF device
//! filter, CLONE_INTO_CGROUP) through the controller-less cgroup2 mount at
//! /sys/fs/cgroup/unified, treated as a pure v2 root. On a pure v2 host the
//! same tests exercise v2 throughout.
//!
//! Every test makes its own uniquely named cgroup under `wren-test/` and a
//! guard removes it (and kills what ran in it) even when the test fails;
//! the last guard of the run removes `wren-test/` itself.
//! Processes are `/bin/sh` children that wait on stdin until they have been
//! placed in the cgroup. Without root every test says so and returns.

use std::io::Write;
use std::os::fd::{AsFd, AsRawFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use oci_spec::runtime::LinuxResources;
use wren_runtime::cgroups::{Cgroup, CgroupRoot, FreezerState, Layout, V1Controller};

const PARENT: &str = "wren-test";

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Skips the test (recorded by `wren_tests::skip`) unless `$cond` holds;
/// `$why` is a host limit, or `Skip` itself.
macro_rules! require {
    ($cond:expr, Skip $why:expr) => {
        if !$cond {
            let test = std::thread::current().name().unwrap_or("?").to_owned();
            wren_tests::skip(&test, $why);
            return;
        }
    };
    ($cond:expr, $why:expr) => {
        require!($cond, Skip wren_tests::Skip::Host(String::from($why)))
    };
}

macro_rules! require_root {
    () => {
        require!(
            is_root(),
            Skip wren_tests::Skip::NotRoot("needs root (cgroupfs writes)")
        );
    };
}

fn unique(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn host() -> CgroupRoot {
    CgroupRoot::host()
        .expect("detect cgroup layout")
        .with_default_parent(PARENT)
}

/// The host's cgroup2 hierarchy as a pure-v2 root (no controllers used), for
/// the v2 logic the kernel offers even without controllers.
fn unified_as_v2() -> Option<CgroupRoot> {
    let mount = host().layout().unified_mount()?.to_path_buf();
    Some(
        CgroupRoot::with_layout(Layout::V2 {
            mount,
            controllers: Default::default(),
        })
        .with_default_parent(PARENT),
    )
}

/// The longest a child may take to exit: generous, because the same tests
/// run inside the TCG-emulated cgroup v2 VM (tests/tests/cgroup_v2_vm.rs),
/// where fork and exec are ~40x slower. Waits end as soon as it exits.
const SLOW_EXIT: Duration = Duration::from_secs(30);

/// Waits until the cgroup holds `n` processes (the shell and what it
/// forked), at most `SLOW_EXIT`.
fn wait_pids(cg: &Cgroup, n: usize) {
    let start = Instant::now();
    while cg.pids().unwrap().len() != n {
        assert!(
            start.elapsed() < SLOW_EXIT,
            "expected {n} processes, have {:?}",
            cg.pids()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn res(json: &str) -> LinuxResources {
    serde_json::from_str(json).expect("resources json")
}

/// Owns a test cgroup and the children started in it; cleans both up.
struct Guard {
    cg: Cgroup,
    children: Vec<Child>,
}

/// How many guards live, and every `wren-test/` directory their cgroups
/// were made in (the tests use more than one root). Creating a test cgroup
/// and removing the parents both happen under it, so the last guard to go
/// removes them without racing another test's mkdir beneath them.
static LIVE: Mutex<(usize, Vec<PathBuf>)> = Mutex::new((0, Vec::new()));

impl Guard {
    /// Creates `cg` and takes charge of it.
    fn create(cg: Cgroup) -> Guard {
        let mut live = LIVE.lock().unwrap_or_else(|e| e.into_inner());
        cg.create().expect("create cgroup");
        live.0 += 1;
        for d in cg.dirs() {
            if let Some(parent) = d.parent().filter(|p| p.ends_with(PARENT)) {
                if !live.1.iter().any(|p| p == parent) {
                    live.1.push(parent.to_path_buf());
                }
            }
        }
        Guard {
            cg,
            children: Vec::new(),
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
        }
        let _ = self.cg.thaw();
        let _ = self.cg.kill_all(libc::SIGKILL);
        for c in &mut self.children {
            let _ = c.wait();
        }
        if let Err(e) = self.cg.delete() {
            eprintln!("cleanup of {}: {e}", self.cg.path());
        }
        let mut live = LIVE.lock().unwrap_or_else(|e| e.into_inner());
        live.0 -= 1;
        if live.0 == 0 {
            for parent in live.1.drain(..) {
                if let Err(e) = std::fs::remove_dir(&parent) {
                    eprintln!("cleanup of {}: {e}", parent.display());
                }
            }
        }
    }
}

fn setup(root: &CgroupRoot, tag: &str) -> Guard {
    let cg = Cgroup::new(root, None, &unique(tag)).expect("cgroup path");
    Guard::create(cg)
}

impl Guard {
    /// Starts `/bin/sh -c script` inside the cgroup; the script begins only
    /// after the shell has been added. Returns its index in `children`.
    fn spawn(&mut self, script: &str) -> usize {
        let mut child = Command::new("/bin/sh")
            .arg("-c")
            .arg(format!("read _go; {script}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn sh");
        self.cg.add_pid(child.id() as i32).expect("add pid");
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(b"go\n").expect("release child");
        self.children.push(child);
        self.children.len() - 1
    }

    fn pid(&self, i: usize) -> i32 {
        self.children[i].id() as i32
    }

    /// Waits up to `limit` for child `i`; returns its status and output.
    fn wait(&mut self, i: usize, limit: Duration) -> (ExitStatus, String) {
        let start = Instant::now();
        let child = &mut self.children[i];
        loop {
            if let Some(st) = child.try_wait().expect("try_wait") {
                let mut out = String::new();
                use std::io::Read;
                if let Some(mut o) = child.stdout.take() {
                    let _ = o.read_to_string(&mut out);
                }
                if let Some(mut e) = child.stderr.take() {
                    let _ = e.read_to_string(&mut out);
                }
                return (st, out);
            }
            assert!(
                start.elapsed() < limit,
                "child {} did not exit within {limit:?}",
                child.id()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: i32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let after = &stat[stat.rfind(')').expect("comm") + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

fn has_memory(root: &CgroupRoot) -> bool {
    match root.layout() {
        Layout::V2 { controllers, .. } => controllers.contains("memory"),
        l => l.has_v1(V1Controller::Memory),
    }
}

#[test]
fn memory_limit_oom_kills_and_watcher_reports_it() {
    require_root!();
    let root = host();
    require!(has_memory(&root), "no memory controller on this host");
    let mut g = setup(&root, "oom");
    let mib32 = 32 << 20;
    g.cg.apply(&res(&format!(
        r#"{{"memory":{{"limit":{mib32},"swap":{mib32}}}}}"#
    )))
    .expect("apply memory limit");
    let mut w = g.cg.oom_watcher().expect("oom watcher");
    assert_eq!(w.new_kills().unwrap(), 0);
    // tail keeps a whole newline-free stream in memory: 256 MiB > 32 MiB.
    // The reporting shell protects itself from the OOM killer (a run once
    // lost it instead of tail, and with it the output); the pipeline's own
    // shell goes back to 0, which head and tail inherit.
    let i = g.spawn(
        "echo -1000 > /proc/self/oom_score_adj; \
         sh -c 'echo 0 > /proc/self/oom_score_adj; head -c 268435456 /dev/zero | tail >/dev/null'; \
         echo pipeline=$?",
    );
    let (_, out) = g.wait(i, SLOW_EXIT);
    assert!(
        out.contains("pipeline=137"),
        "tail was not SIGKILLed: {out}"
    );
    // The fd must have become readable...
    let mut fds = [nix::poll::PollFd::new(
        w.as_fd(),
        nix::poll::PollFlags::POLLIN,
    )];
    let n = nix::poll::poll(&mut fds, 1000u16).expect("poll");
    assert_eq!(n, 1, "OOM fd not readable");
    // ...and the count says one kill (and only once).
    assert!(w.new_kills().unwrap() >= 1);
    assert_eq!(w.new_kills().unwrap(), 0);
    let st = g.cg.stats().unwrap();
    assert!(st.memory.oom.oom_kill >= 1, "{:?}", st.memory.oom);
    assert_eq!(st.memory.usage.limit, mib32 as u64);
}

#[test]
fn pids_limit_makes_fork_fail() {
    require_root!();
    let root = host();
    let mut g = setup(&root, "pids");
    g.cg.apply(&res(r#"{"pids":{"limit":4}}"#))
        .expect("apply pids");
    let i = g.spawn("for i in 1 2 3 4 5 6 7 8; do sleep 1 & done; echo all-forked");
    let (_, out) = g.wait(i, SLOW_EXIT);
    assert!(
        !out.contains("all-forked"),
        "8 forks succeeded under pids.max=4: {out}"
    );
    assert!(
        out.to_lowercase().contains("fork"),
        "no fork failure reported: {out}"
    );
    let st = g.cg.stats().unwrap();
    assert_eq!(st.pids.limit, 4);
}

#[test]
fn cpu_quota_shows_throttling_in_stats() {
    require_root!();
    let root = host();
    let mut g = setup(&root, "cpu");
    g.cg.apply(&res(r#"{"cpu":{"quota":10000,"period":100000}}"#))
        .expect("apply cpu quota");
    g.spawn("while :; do :; done");
    std::thread::sleep(Duration::from_millis(600));
    let st = g.cg.stats().unwrap();
    assert!(st.cpu.nr_periods >= 3, "{:?}", st.cpu);
    assert!(st.cpu.nr_throttled >= 2, "{:?}", st.cpu);
    assert!(st.cpu.throttled_time_ns > 0, "{:?}", st.cpu);
    // 10% of one CPU for 0.6 s is ~60 ms; allow slack but not a full CPU.
    assert!(
        st.cpu.usage_total_ns < 250_000_000,
        "quota not enforced: {:?}",
        st.cpu
    );
}

/// Device nodes made by the test (outside the cgroup): zero (1:5), null (1:3).
fn device_dir() -> tempfile::TempDir {
    let d = tempfile::tempdir().expect("tempdir");
    for (name, minor) in [("zero", 5), ("null", 3)] {
        let p = d.path().join(name);
        nix::sys::stat::mknod(
            &p,
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::from_bits_truncate(0o666),
            nix::sys::stat::makedev(1, minor),
        )
        .expect("mknod in test dir");
    }
    d
}

const DENY_ALL_BUT_NULL: &str = r#"{"devices":[
    {"allow":false,"access":"rwm"},
    {"allow":true,"type":"c","major":1,"minor":3,"access":"rwm"}]}"#;

/// Runs the device probe in the guard's cgroup and returns its output.
fn probe_devices(g: &mut Guard, dir: &Path) -> String {
    let d = dir.display();
    let i = g.spawn(&format!(
        "mknod {d}/new-$$ c 1 5 2>&1 && echo MKNOD_OK; \
         head -c 1 {d}/zero 2>&1 >{d}/null && echo ZERO_OK; \
         head -c 1 {d}/null && echo NULL_OK; true"
    ));
    g.wait(i, SLOW_EXIT).1
}

fn check_denied(out: &str) {
    assert!(!out.contains("MKNOD_OK"), "mknod of 1:5 allowed: {out}");
    assert!(!out.contains("ZERO_OK"), "open of 1:5 allowed: {out}");
    assert!(out.contains("NULL_OK"), "open of allowed 1:3 failed: {out}");
    assert_eq!(
        out.matches("Operation not permitted").count(),
        2,
        "expected EPERM for mknod and open: {out}"
    );
}

#[test]
fn v1_device_rules_deny_mknod_and_open() {
    require_root!();
    let root = host();
    require!(
        root.layout().has_v1(V1Controller::Devices),
        "no v1 devices controller on this host"
    );
    let dir = device_dir();
    let mut g = setup(&root, "dev1");
    g.cg.apply(&res(DENY_ALL_BUT_NULL))
        .expect("apply device rules");
    let list = read(
        &g.cg
            .v1_dir(V1Controller::Devices)
            .unwrap()
            .join("devices.list"),
    );
    assert_eq!(list.trim(), "c 1:3 rwm");
    check_denied(&probe_devices(&mut g, dir.path()));

    // Live update: also allow reading 1:5; only the difference is written.
    g.cg.update(&res(r#"{"devices":[{"allow":false,"access":"rwm"},
        {"allow":true,"type":"c","major":1,"minor":3,"access":"rwm"},
        {"allow":true,"type":"c","major":1,"minor":5,"access":"r"}]}"#))
        .expect("update device rules");
    let out = probe_devices(&mut g, dir.path());
    assert!(out.contains("ZERO_OK"), "read of 1:5 still denied: {out}");
    assert!(!out.contains("MKNOD_OK"), "mknod of 1:5 allowed: {out}");
}

#[test]
fn v2_ebpf_device_program_denies_mknod_and_open() {
    require_root!();
    let Some(root) = unified_as_v2() else {
        require!(false, "no cgroup2 mount on this host");
        return;
    };
    let dir = device_dir();
    let mut g = setup(&root, "dev2");
    g.cg.apply(&res(DENY_ALL_BUT_NULL))
        .expect("attach device program");
    let udir = g.cg.unified_dir().unwrap();
    let progs = wren_runtime::cgroups::v2::devices::attached(&udir).unwrap();
    assert_eq!(progs.len(), 1, "one program attached");
    check_denied(&probe_devices(&mut g, dir.path()));

    g.cg.update(&res(r#"{"devices":[{"allow":false,"access":"rwm"},
        {"allow":true,"type":"c","major":1,"minor":3,"access":"rwm"},
        {"allow":true,"type":"c","major":1,"minor":5,"access":"r"}]}"#))
        .expect("replace device program");
    let after = wren_runtime::cgroups::v2::devices::attached(&udir).unwrap();
    assert_eq!(after.len(), 1, "old program detached");
    assert_ne!(after, progs, "program replaced");
    let out = probe_devices(&mut g, dir.path());
    assert!(out.contains("ZERO_OK"), "read of 1:5 still denied: {out}");
    assert!(!out.contains("MKNOD_OK"), "mknod of 1:5 allowed: {out}");
}

fn check_freeze_thaw(g: &mut Guard) {
    let i = g.spawn("while :; do :; done");
    let pid = g.pid(i);
    std::thread::sleep(Duration::from_millis(100));
    g.cg.freeze().expect("freeze");
    assert_eq!(g.cg.freezer_state().unwrap(), FreezerState::Frozen);
    let t0 = cpu_ticks(pid);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(cpu_ticks(pid), t0, "a frozen process kept running");
    g.cg.thaw().expect("thaw");
    assert_eq!(g.cg.freezer_state().unwrap(), FreezerState::Thawed);
    std::thread::sleep(Duration::from_millis(300));
    assert!(cpu_ticks(pid) > t0, "a thawed process did not resume");
}

#[test]
fn freeze_and_thaw_v1_freezer() {
    require_root!();
    let root = host();
    require!(
        root.layout().has_v1(V1Controller::Freezer),
        "no v1 freezer on this host"
    );
    let mut g = setup(&root, "frz1");
    check_freeze_thaw(&mut g);
}

#[test]
fn freeze_and_thaw_v2_cgroup_freeze() {
    require_root!();
    let Some(root) = unified_as_v2() else {
        require!(false, "no cgroup2 mount on this host");
        return;
    };
    let mut g = setup(&root, "frz2");
    check_freeze_thaw(&mut g);
}

#[test]
fn update_raises_and_lowers_limits_live() {
    require_root!();
    let root = host();
    require!(has_memory(&root), "no memory controller on this host");
    let mut g = setup(&root, "upd");
    g.cg.apply(&res(r#"{"pids":{"limit":10},"memory":{"limit":67108864}}"#))
        .unwrap();
    g.spawn("sleep 5");
    let (pids_dir, mem_dir, mem_file) = match root.layout() {
        Layout::V2 { .. } => {
            let d = g.cg.unified_dir().unwrap();
            (d.clone(), d, "memory.max")
        }
        _ => (
            g.cg.v1_dir(V1Controller::Pids).unwrap(),
            g.cg.v1_dir(V1Controller::Memory).unwrap(),
            "memory.limit_in_bytes",
        ),
    };
    assert_eq!(read(&pids_dir.join("pids.max")).trim(), "10");
    for (pids, mem) in [(20, 134217728u64), (5, 50331648)] {
        g.cg.update(&res(&format!(
            r#"{{"pids":{{"limit":{pids}}},"memory":{{"limit":{mem}}}}}"#
        )))
        .expect("live update");
        assert_eq!(read(&pids_dir.join("pids.max")).trim(), pids.to_string());
        assert_eq!(read(&mem_dir.join(mem_file)).trim(), mem.to_string());
    }
    // Unlimited again.
    g.cg.update(&res(r#"{"pids":{"limit":-1}}"#)).unwrap();
    assert_eq!(read(&pids_dir.join("pids.max")).trim(), "max");
    // A bad update is refused whole: the pids limit stays.
    let e =
        g.cg.update(&res(r#"{"pids":{"limit":7},"cpu":{"quota":-5}}"#))
            .unwrap_err();
    assert!(e.to_string().contains("cpu.quota"), "{e}");
    assert_eq!(read(&pids_dir.join("pids.max")).trim(), "max");
}

#[test]
fn stats_move_under_load() {
    require_root!();
    let root = host();
    let mut g = setup(&root, "stats");
    g.spawn("x=$(head -c 4000000 /dev/zero | tr '\\0' a); while :; do :; done");
    if has_memory(&root) {
        // Polled: in the emulated v2 VM the 4 MB take seconds to appear.
        let start = Instant::now();
        loop {
            let s = g.cg.stats().unwrap();
            if s.memory.usage.usage > 1 << 20 {
                assert!(!s.memory.stat.is_empty());
                break;
            }
            assert!(start.elapsed() < SLOW_EXIT, "{:?}", s.memory.usage);
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    std::thread::sleep(Duration::from_millis(200));
    let a = g.cg.stats().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let b = g.cg.stats().unwrap();
    assert!(
        b.cpu.usage_total_ns > a.cpu.usage_total_ns + 50_000_000,
        "cpu usage did not grow: {} -> {}",
        a.cpu.usage_total_ns,
        b.cpu.usage_total_ns
    );
    assert!(b.cpu.usage_user_ns > 0);
    assert!(b.pids.current >= 1, "{:?}", b.pids);
    // pids() agrees with what we spawned.
    assert!(g.cg.pids().unwrap().contains(&g.pid(0)));
}

#[test]
fn kill_all_and_delete_leave_nothing_behind() {
    require_root!();
    let root = host();
    let mut g = setup(&root, "del");
    let i = g.spawn("sleep 30 & sleep 30 & wait");
    // A sub-cgroup, as a container with its own cgroup namespace might make.
    for d in g.cg.dirs() {
        std::fs::create_dir(d.join("sub")).expect("sub-cgroup");
    }
    wait_pids(&g.cg, 3);
    g.cg.kill_all(libc::SIGKILL).expect("kill_all");
    let (st, _) = g.wait(i, SLOW_EXIT);
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(st.signal(), Some(libc::SIGKILL));
    g.cg.delete().expect("delete");
    let dirs = g.cg.dirs();
    // Hybrid: the v1 hierarchies and cgroup2; pure v2: one.
    assert!(!dirs.is_empty());
    for d in &dirs {
        assert!(!d.exists(), "{} still exists", d.display());
    }
    g.cg.delete().expect("delete of a deleted cgroup is fine");
}

#[test]
fn kill_all_v2_uses_cgroup_kill() {
    require_root!();
    let Some(root) = unified_as_v2() else {
        require!(false, "no cgroup2 mount on this host");
        return;
    };
    let mut g = setup(&root, "kill2");
    let udir = g.cg.unified_dir().unwrap();
    require!(
        udir.join("cgroup.kill").exists(),
        "kernel has no cgroup.kill"
    );
    let i = g.spawn("sleep 30 & sleep 30 & wait");
    wait_pids(&g.cg, 3);
    g.cg.kill_all(libc::SIGKILL).expect("cgroup.kill");
    let (st, _) = g.wait(i, SLOW_EXIT);
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(st.signal(), Some(libc::SIGKILL));
    let start = Instant::now();
    while !g.cg.pids().unwrap().is_empty() {
        assert!(start.elapsed() < SLOW_EXIT, "processes left");
        std::thread::sleep(Duration::from_millis(10));
    }
    // A non-SIGKILL signal goes through freeze + kill + thaw.
    let i = g.spawn("trap 'exit 7' TERM; while :; do sleep 0.05; done");
    std::thread::sleep(Duration::from_millis(50));
    g.cg.kill_all(libc::SIGTERM).expect("kill_all TERM");
    let (st, _) = g.wait(i, SLOW_EXIT);
    assert!(
        st.code() == Some(7) || st.signal() == Some(libc::SIGTERM),
        "{st:?}"
    );
}

#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

#[test]
fn clone_into_cgroup_places_the_child() {
    require_root!();
    let root = host();
    let g = setup(&root, "clone");
    let Some(fd) = g.cg.clone_into_fd().expect("open cgroup2 dir") else {
        require!(false, "no cgroup2 hierarchy (pure v1 host)");
        return;
    };
    const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;
    let mut args = CloneArgs {
        flags: CLONE_INTO_CGROUP,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: fd.as_raw_fd() as u64,
        ..Default::default()
    };
    // SAFETY: clone3 with no shared VM and no new stack behaves like fork; the
    // child only calls async-signal-safe pause/_exit.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &mut args as *mut CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    if pid == 0 {
        // SAFETY: pause and _exit are async-signal-safe.
        unsafe {
            libc::pause();
            libc::_exit(0)
        }
    }
    assert!(pid > 0, "clone3: {}", std::io::Error::last_os_error());
    let pid = pid as i32;
    let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    // Hybrid: placed in the cgroup2 hierarchy only; add_pid does the rest.
    let placed_v2 = cg.lines().any(|l| l == format!("0::{}", g.cg.path()));
    g.cg.add_pid(pid).expect("add_pid");
    let after = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    // SAFETY: plain kill + waitpid of our own child.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
        libc::waitpid(pid, std::ptr::null_mut(), 0);
    }
    assert!(placed_v2, "child not born in the cgroup: {cg}");
    for l in after.lines() {
        let path = l.splitn(3, ':').nth(2).unwrap();
        if l.contains("name=systemd") {
            continue;
        }
        assert_eq!(path, g.cg.path(), "not in every hierarchy: {after}");
    }
}

#[test]
fn paths_resolve_to_real_directories() {
    require_root!();
    let root = host();
    let name = unique("abs");
    let cg = Cgroup::new(&root, Some(&format!("/{PARENT}/{name}")), "ignored").unwrap();
    let g = Guard::create(cg);
    for d in g.cg.dirs() {
        assert!(d.is_dir());
        assert!(d.ends_with(PathBuf::from(PARENT).join(&name)));
    }
    // Serialised into a state file and back, it still manages the same cgroup.
    let json = serde_json::to_string(&g.cg).unwrap();
    let back: Cgroup = serde_json::from_str(&json).unwrap();
    assert_eq!(back, g.cg);
    assert_eq!(back.pids().unwrap(), Vec::<i32>::new());
}
