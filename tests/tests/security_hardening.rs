//! Security regression suite, part 2: the hardening that must hold for
//! every container process, read back from the host and probed from
//! inside, plus the symlink-exchange racers. Capabilities (CVE-2022-29162),
//! masked / readonly / cgroup mounts (CVE-2023-25809), seccomp and
//! no_new_privs for init and exec, the device cgroup (v1 through a
//! container, v2 eBPF on the unified hierarchy), exec joining every
//! namespace and the cgroup, and RENAME_EXCHANGE racers against mount
//! destinations, directory creation and procfs writes (CVE-2021-30465,
//! CVE-2024-45310, CVE-2025-52881). docs/SECURITY.md maps attacks to tests.
//!
//! Needs root; ids, bundles, volumes and cgroups are private to this process.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use serde_json::json;
use wren_tests::probe::{all_ns_kinds, ns_links, status_field};
use wren_tests::{assert_gone, require_root, skip, text, wait_for, Bundle, Oci, Skip};

const SEC_FIELDS: [&str; 8] = [
    "CapInh",
    "CapPrm",
    "CapEff",
    "CapBnd",
    "CapAmb",
    "NoNewPrivs",
    "Seccomp",
    "Seccomp_filters",
];

#[test]
fn seccomp_no_new_privs_and_caps_read_back_from_the_host_for_init_and_exec() {
    if !require_root("seccomp_no_new_privs_and_caps_read_back_from_the_host_for_init_and_exec") {
        return;
    }
    let oci = Oci::new("sstatus");
    let mut b = Bundle::busybox(&["sleep", "1000"]);
    b.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]
    });
    b.config["root"]["readonly"] = json!(false);
    b.save();
    let id = oci.id("c");
    oci.ok(&["run", "--detach", "--bundle", b.path_str(), &id]);
    let init = oci.init_pid(&id);
    let exec = oci.exec_detached(&b, &id, "e", &[]);
    for (who, pid) in [("init", init), ("exec", exec)] {
        let get = |k| status_field(pid, k).unwrap_or_default();
        // AUDIT_WRITE (29), KILL (5), NET_BIND_SERVICE (10): the default spec.
        assert_eq!(get("CapEff"), "0000000020000420", "{who}");
        assert_eq!(get("CapPrm"), "0000000020000420", "{who}");
        assert_eq!(get("CapBnd"), "0000000020000420", "{who}");
        assert_eq!(get("CapInh"), "0000000000000000", "{who}: inheritable");
        assert_eq!(get("CapAmb"), "0000000000000000", "{who}");
        assert_eq!(get("NoNewPrivs"), "1", "{who}");
        assert_eq!(get("Seccomp"), "2", "{who}: filter mode");
        assert_eq!(get("Seccomp_filters"), "1", "{who}: exactly one filter");
    }
    let same: Vec<_> = SEC_FIELDS
        .iter()
        .map(|k| (status_field(init, k), status_field(exec, k)))
        .filter(|(a, b)| a != b)
        .collect();
    assert!(same.is_empty(), "exec differs from init: {same:?}");
    // And the filter really acts in the exec'd process.
    let out = oci.run(&["exec", &id, "mkdir", "/tmp/x"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("not permitted"),
        "{}",
        text(&out.stderr)
    );
    oci.ok(&["delete", "--force", &id]);
    assert_gone(&oci, &id);
}

/// Sets `cap_net_admin+ei` on `file` with setcap, or by writing the
/// security.capability xattr (VFS_CAP_REVISION_2) when setcap is missing.
fn set_inheritable_net_admin(file: &Path) {
    let setcap = ["/usr/sbin/setcap", "/sbin/setcap", "/usr/bin/setcap"]
        .into_iter()
        .find(|p| Path::new(p).exists());
    if let Some(setcap) = setcap {
        let out = wren_tests::run(Command::new(setcap).arg("cap_net_admin+ei").arg(file));
        assert!(out.status.success(), "setcap: {}", text(&out.stderr));
        return;
    }
    // struct vfs_cap_data: magic_etc, then {permitted, inheritable} x 2.
    const REVISION_2: u32 = 0x0200_0000;
    const EFFECTIVE: u32 = 0x0000_0001;
    let bit = 1u32 << 12; // CAP_NET_ADMIN
    let words = [REVISION_2 | EFFECTIVE, 0, bit, 0, 0];
    let data: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    let path = CString::new(file.as_os_str().as_bytes()).unwrap();
    // SAFETY: valid C strings and a buffer of the length passed.
    let r = unsafe {
        libc::setxattr(
            path.as_ptr(),
            c"security.capability".as_ptr(),
            data.as_ptr().cast(),
            data.len(),
            0,
        )
    };
    assert_eq!(r, 0, "setxattr: {}", std::io::Error::last_os_error());
}

#[test]
fn cve_2022_29162_inheritable_file_caps_gain_nothing() {
    if !require_root("cve_2022_29162_inheritable_file_caps_gain_nothing") {
        return;
    }
    let oci = Oci::new("sinh");
    let script = "/bin/busybox-caps cat /proc/self/status | grep -E '^Cap(Inh|Prm|Eff):'";
    let mut b = Bundle::busybox(&["sh", "-c", script]);
    let capbb = b.rootfs().join("bin/busybox-caps");
    std::fs::copy(b.rootfs().join("bin/busybox"), &capbb).unwrap();
    set_inheritable_net_admin(&capbb);
    b.config["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    // no_new_privs would hide the attack: file caps never apply under it.
    b.config["process"]["noNewPrivileges"] = json!(false);
    b.save();
    let net_admin = 1u64 << 12;
    let caps = |out: &str, k: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(k))
            .map(|v| u64::from_str_radix(v.trim(), 16).unwrap())
            .unwrap_or_else(|| panic!("{k} missing in {out}"))
    };
    // Control: when the spec itself asks for an inheritable NET_ADMIN, the
    // file capability does take effect, so the probe can see a gain.
    let mut control = b;
    for set in ["inheritable", "bounding"] {
        control.config["process"]["capabilities"][set] = json!(["CAP_NET_ADMIN"]);
    }
    control.save();
    let (code, out) = {
        let o = oci.run(&["run", "--bundle", control.path_str(), &oci.id("ctl")]);
        (o.status.code(), text(&o.stdout) + &text(&o.stderr))
    };
    assert_eq!(code, Some(0), "{out}");
    assert_ne!(
        caps(&out, "CapPrm:") & net_admin,
        0,
        "calibration: the file's inheritable cap should apply when inheritable is asked for: {out}"
    );
    // The attack: default capabilities (no inheritable), same binary.
    control.config["process"]["capabilities"]["inheritable"] = json!([]);
    control.config["process"]["capabilities"]["bounding"] = json!([
        "CAP_AUDIT_WRITE",
        "CAP_KILL",
        "CAP_NET_BIND_SERVICE",
        "CAP_NET_ADMIN"
    ]);
    control.save();
    let o = oci.run(&["run", "--bundle", control.path_str(), &oci.id("atk")]);
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_eq!(caps(&out, "CapInh:"), 0, "{out}");
    assert_eq!(
        caps(&out, "CapPrm:") & net_admin,
        0,
        "gained NET_ADMIN: {out}"
    );
    assert_eq!(
        caps(&out, "CapEff:") & net_admin,
        0,
        "gained NET_ADMIN: {out}"
    );
    // Without any capabilities block, nothing is inheritable either.
    let mut def = Bundle::busybox(&["grep", "^CapInh:", "/proc/self/status"]);
    def.config["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    def.config["process"]["noNewPrivileges"] = json!(false);
    def.save();
    let o = oci.run(&["run", "--bundle", def.path_str(), &oci.id("def")]);
    assert_eq!(text(&o.stdout), "CapInh:\t0000000000000000\n");
}

/// The masked/readonly probe: prints one verdict line per path.
const MASK_PROBE: &str = r#"for p in $MASKED; do
  if [ -d $p ]; then
    n=$(ls -A $p | wc -l); touch $p/x 2>/dev/null && w=rw || w=ro
    echo "masked $p dir entries=$n $w $(stat -f -c %T $p)"
  elif [ -e $p ]; then
    echo "masked $p $(stat -c %t:%T $p) $(head -c 16 $p | wc -c)"
  fi
done
for p in $READONLY; do
  [ -e $p ] || continue
  f=$p; [ -d $p ] && f=$(find $p -type f -perm -u+w 2>/dev/null | head -1)
  if [ -n "$f" ]; then
    ( : >> $f ) 2>&1 | grep -q 'Read-only' && r=EROFS || r="writable:$f"
  else
    o=$(grep " $p " /proc/self/mountinfo | cut -d' ' -f6)
    case "$o" in ro*) r=mount-ro;; *) r="rw-mount:$o";; esac
  fi
  echo "readonly $p $r"
done
grep -E ' /sys/fs/cgroup' /proc/self/mounts | while read -r _ m _ o _; do
  echo "cgroup $m ${o%%,*}"
done"#;

fn check_masks(out: &str, what: &str) {
    let masked = out.lines().filter(|l| l.starts_with("masked ")).count();
    let readonly = out.lines().filter(|l| l.starts_with("readonly ")).count();
    let cgroups = out.lines().filter(|l| l.starts_with("cgroup ")).count();
    assert!(
        masked >= 3 && readonly >= 3 && cgroups >= 1,
        "{what}: too little was probed: {out}"
    );
    for l in out.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        match f[0] {
            "masked" if f[2] == "dir" => {
                assert_eq!(&f[3..], ["entries=0", "ro", "tmpfs"], "{what}: {l}")
            }
            "masked" => assert_eq!(&f[2..], ["1:3", "0"], "{what}: {l}"),
            "readonly" => assert!(
                f[2] == "EROFS" || f[2] == "mount-ro",
                "{what}: a readonly path is writable: {l}"
            ),
            "cgroup" => assert_eq!(f[2], "ro", "{what}: a writable cgroup mount: {l}"),
            _ => {}
        }
    }
}

#[test]
fn masked_paths_are_dev_null_or_empty_ro_tmpfs_readonly_paths_give_erofs_cgroups_ro() {
    if !require_root(
        "masked_paths_are_dev_null_or_empty_ro_tmpfs_readonly_paths_give_erofs_cgroups_ro",
    ) {
        return;
    }
    let oci = Oci::new("smask");
    let devdir = tempfile::tempdir().unwrap();
    wren_tests::probe::mknod_dev_null(&devdir.path().join("null"));
    for (name, dev) in [("tmpfs", "tmpfs"), ("image", "image"), ("bind", "bind")] {
        let mut b = Bundle::busybox(&["sh", "-c", MASK_PROBE]);
        let masked: Vec<String> =
            serde_json::from_value(b.config["linux"]["maskedPaths"].clone()).unwrap();
        let mut readonly: Vec<String> =
            serde_json::from_value(b.config["linux"]["readonlyPaths"].clone()).unwrap();
        readonly.push("/etc".into());
        b.config["linux"]["readonlyPaths"] = json!(readonly);
        b.config["process"]["env"] = json!([
            "PATH=/bin",
            format!("MASKED={}", masked.join(" ")),
            format!("READONLY={}", readonly.join(" ")),
        ]);
        b.config["root"]["readonly"] = json!(false);
        let mounts = b.config["mounts"].as_array_mut().unwrap();
        match dev {
            "image" => mounts.retain(|m| !m["destination"].as_str().unwrap().starts_with("/dev")),
            "bind" => {
                mounts.retain(|m| m["destination"] != "/dev");
                mounts.insert(1, json!({"destination": "/dev", "type": "bind", "source": devdir.path(), "options": ["rbind", "nosuid"]}));
            }
            _ => {}
        }
        b.save();
        let id = oci.id(name);
        let out = oci.run(&["run", "--bundle", b.path_str(), &id]);
        assert!(out.status.success(), "{name}: {}", text(&out.stderr));
        check_masks(&text(&out.stdout), &format!("/dev from {name}"));
        assert_gone(&oci, &id);
    }
}

#[test]
fn device_cgroup_v1_denies_mknod_and_open_for_init_and_exec() {
    if !require_root("device_cgroup_v1_denies_mknod_and_open_for_init_and_exec") {
        return;
    }
    if !Path::new("/sys/fs/cgroup/devices").is_dir() {
        skip(
            "device_cgroup_v1_denies_mknod_and_open_for_init_and_exec",
            Skip::Host("no v1 devices controller".into()),
        );
        return;
    }
    let oci = Oci::new("sdevcg");
    let mut b = Bundle::busybox(&["sleep", "1000"]);
    b.config["root"]["readonly"] = json!(false);
    for set in ["bounding", "effective", "permitted"] {
        b.config["process"]["capabilities"][set]
            .as_array_mut()
            .unwrap()
            .push(json!("CAP_MKNOD"));
    }
    b.save();
    let id = oci.id("c");
    oci.ok(&["run", "--detach", "--bundle", b.path_str(), &id]);
    // mknod is allowed by the default rules ("m" for any), open is not.
    for (n, cmd) in [
        "mknod /tmp/sda b 8 0 && head -c1 /tmp/sda",
        "mknod /tmp/mem c 1 1 && head -c1 /tmp/mem",
        "head -c1 /dev/null; echo allowed",
    ]
    .iter()
    .enumerate()
    {
        let out = oci.run(&[
            "exec",
            &id,
            "sh",
            "-c",
            &format!("rm -f /tmp/sda /tmp/mem; {cmd}"),
        ]);
        if n < 2 {
            assert!(!out.status.success(), "{cmd} succeeded");
            assert!(
                text(&out.stderr).contains("not permitted"),
                "{cmd}: {}",
                text(&out.stderr)
            );
        } else {
            assert_eq!(
                text(&out.stdout),
                "allowed\n",
                "control: {}",
                text(&out.stderr)
            );
        }
    }
    oci.ok(&["delete", "--force", &id]);
    assert_gone(&oci, &id);
}

#[test]
fn device_cgroup_v2_ebpf_program_denies_mknod_and_open_on_the_unified_hierarchy() {
    if !require_root("device_cgroup_v2_ebpf_program_denies_mknod_and_open_on_the_unified_hierarchy")
    {
        return;
    }
    let root = ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.join("cgroup.procs").exists() && !p.join("devices.list").exists());
    let Some(root) = root.filter(|r| {
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .any(|l| l.contains(&format!(" {} ", r.display())) && l.contains(" - cgroup2 "))
    }) else {
        skip(
            "device_cgroup_v2_ebpf_program_denies_mknod_and_open_on_the_unified_hierarchy",
            Skip::Host("no cgroup2 hierarchy mounted".into()),
        );
        return;
    };
    use wren_runtime::cgroups::devices::{DevKind, DevRule};
    let dir = root.join(format!("wren-sec-devbpf-{}", std::process::id()));
    std::fs::create_dir(&dir).unwrap();
    // Deny everything, allow /dev/null only ("rwm" = 7 is every bit).
    let rules = [
        DevRule {
            allow: false,
            kind: DevKind::All,
            major: None,
            minor: None,
            access: 7,
        },
        DevRule {
            allow: true,
            kind: DevKind::Char,
            major: Some(1),
            minor: Some(3),
            access: 7,
        },
    ];
    wren_runtime::cgroups::v2::devices::apply(&dir, &rules).expect("attach the device program");
    assert_eq!(
        wren_runtime::cgroups::v2::devices::attached(&dir)
            .unwrap()
            .len(),
        1
    );
    let scratch = tempfile::tempdir().unwrap();
    let procs = dir.join("cgroup.procs");
    let script = format!(
        "cd {}; head -c1 /dev/null && echo null-ok; \
         mknod sda b 8 0 2>&1 | grep -c 'not permitted'; \
         head -c1 /dev/zero 2>&1 | grep -c 'not permitted'",
        scratch.path().display()
    );
    let mut cmd = Command::new("/bin/busybox");
    cmd.args(["sh", "-c", &script]);
    let procs_c = CString::new(procs.as_os_str().as_bytes()).unwrap();
    // SAFETY: between fork and exec only open/write/close on prepared data.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
            let fd = libc::open(procs_c.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            let r = libc::write(fd, b"0".as_ptr().cast(), 1);
            libc::close(fd);
            if r != 1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = wren_tests::run(&mut cmd);
    let _ = std::fs::remove_dir(&dir);
    assert!(wait_for(5, || std::fs::remove_dir(&dir).is_ok() || !dir.exists()));
    assert_eq!(
        text(&out.stdout),
        "null-ok\n1\n1\n",
        "the eBPF device filter did not act: {}",
        text(&out.stderr)
    );
    assert!(
        !scratch.path().join("sda").exists(),
        "mknod of a denied device worked"
    );
}

#[test]
fn exec_joins_every_namespace_including_user_and_time_and_the_cgroup() {
    if !require_root("exec_joins_every_namespace_including_user_and_time_and_the_cgroup") {
        return;
    }
    let oci = Oci::new("sexecns");
    let mut b = Bundle::busybox(&["sleep", "1000"]);
    let kinds = all_ns_kinds();
    let mut nss = vec![json!({"type": "user"})];
    for k in ["pid", "network", "ipc", "uts", "mount", "cgroup", "time"] {
        let short = match k {
            "network" => "net",
            "mount" => "mnt",
            k => k,
        };
        if kinds.iter().any(|x| x == short) {
            nss.push(json!({"type": k}));
        }
    }
    b.config["linux"]["namespaces"] = json!(nss);
    b.config["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 200000, "size": 65536}]);
    b.config["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 200000, "size": 65536}]);
    std::fs::set_permissions(
        b.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    b.save();
    let id = oci.id("c");
    oci.ok(&["run", "--detach", "--bundle", b.path_str(), &id]);
    let init = oci.init_pid(&id);
    let exec = oci.exec_detached(&b, &id, "e", &[]);
    let k: Vec<&str> = kinds.iter().map(String::as_str).collect();
    let (a, e) = (ns_links(init, &k), ns_links(exec, &k));
    let me = ns_links(std::process::id() as i64, &k);
    for (i, kind) in k.iter().enumerate() {
        assert!(!a[i].is_empty(), "{kind} of the init unreadable");
        assert_eq!(a[i], e[i], "exec is not in the init's {kind} namespace");
        assert_ne!(
            a[i], me[i],
            "the container shares the host's {kind} namespace"
        );
    }
    let cg = |p: i64| std::fs::read_to_string(format!("/proc/{p}/cgroup")).unwrap();
    assert_eq!(cg(init), cg(exec), "exec is in another cgroup");
    assert_eq!(
        status_field(exec, "Uid").unwrap(),
        "200000\t200000\t200000\t200000"
    );
    oci.ok(&["delete", "--force", &id]);
    assert_gone(&oci, &id);
}

/// A host thread swapping two names in a shared volume with
/// `renameat2(RENAME_EXCHANGE)` until stopped; counts the swaps.
struct Racer {
    stop: Arc<AtomicBool>,
    swaps: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Racer {
    fn start(a: &Path, b: &Path) -> Racer {
        let stop = Arc::new(AtomicBool::new(false));
        let swaps = Arc::new(AtomicU64::new(0));
        let (s, n) = (stop.clone(), swaps.clone());
        let a = CString::new(a.as_os_str().as_bytes()).unwrap();
        let b = CString::new(b.as_os_str().as_bytes()).unwrap();
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                // SAFETY: two valid C paths, AT_FDCWD, a flag the kernel checks.
                let r = unsafe {
                    libc::renameat2(
                        libc::AT_FDCWD,
                        a.as_ptr(),
                        libc::AT_FDCWD,
                        b.as_ptr(),
                        libc::RENAME_EXCHANGE,
                    )
                };
                if r == 0 {
                    n.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        Racer {
            stop,
            swaps,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().expect("racer");
        }
        self.swaps.load(Ordering::Relaxed)
    }
}

impl Drop for Racer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Entries of `dir`, sorted.
fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

const RACE_ATTEMPTS: usize = 200;

/// Mounts whose destinations run through `vol/dir`, which a racer keeps
/// exchanging with `vol/link -> <canary>`; with `create_dests`, the
/// destinations do not exist yet (MkdirAll / file creation race).
fn mount_destination_race(name: &str, create_dests: bool) {
    let oci = Oci::new(name);
    let vol = tempfile::tempdir().unwrap();
    let canary = tempfile::tempdir().unwrap();
    std::fs::write(canary.path().join("keep"), "").unwrap();
    let file_src = vol.path().join("src-file");
    std::fs::write(&file_src, "bound\n").unwrap();
    let dir = vol.path().join("dir");
    std::fs::create_dir(&dir).unwrap();
    const N: usize = 8;
    if !create_dests {
        for i in 0..N {
            std::fs::create_dir(dir.join(format!("m{i}"))).unwrap();
            std::fs::write(dir.join(format!("f{i}")), "").unwrap();
        }
    }
    symlink_abs(canary.path(), &vol.path().join("link"));
    let mut b = Bundle::busybox(&[
        "sh",
        "-c",
        "grep -cE 'size=64k|/src-file ' /proc/self/mountinfo",
    ]);
    b.config["root"]["readonly"] = json!(false);
    let mounts = b.config["mounts"].as_array_mut().unwrap();
    mounts.push(
        json!({"destination": "/vol", "type": "bind", "source": vol.path(), "options": ["rbind"]}),
    );
    for i in 0..N {
        mounts.push(json!({"destination": format!("/vol/dir/m{i}"), "type": "tmpfs", "source": "tmpfs", "options": ["size=64k"]}));
        mounts.push(json!({"destination": format!("/vol/dir/f{i}"), "type": "bind", "source": file_src, "options": ["bind", "ro"]}));
    }
    b.save();
    let racer = Racer::start(&dir, &vol.path().join("link"));
    let (mut ok, mut failed) = (0, 0);
    for i in 0..RACE_ATTEMPTS {
        let id = oci.id(&format!("r{i}"));
        let out = oci.run(&["run", "--bundle", b.path_str(), &id]);
        if out.status.success() {
            ok += 1;
            // Every mount landed inside the container, at /vol/dir/...
            assert_eq!(
                text(&out.stdout).trim(),
                (2 * N).to_string(),
                "attempt {i}: some mounts left the container's rootfs (a mount that followed the swapped-in symlink stays in-root; one that escaped is missing here)"
            );
        } else {
            failed += 1;
        }
        assert_eq!(
            entries(canary.path()),
            vec!["keep"],
            "attempt {i}: the canary dir changed"
        );
        let leaked = host_mounts_under(&[vol.path(), canary.path()]);
        assert!(
            leaked.is_empty(),
            "attempt {i}: host mounts appeared: {leaked:?}"
        );
        assert_gone(&oci, &id);
    }
    let swaps = racer.finish();
    assert!(swaps > 0, "the racer never swapped");
    eprintln!("{name}: {ok} runs, {failed} refused, {swaps} swaps, canary untouched");
}

fn symlink_abs(target: &Path, link: &Path) {
    std::os::unix::fs::symlink(target, link).unwrap();
}

/// Host mount points at or under any of `dirs` (other tests mount and
/// unmount elsewhere in parallel, so only these paths are ours to watch).
fn host_mounts_under(dirs: &[&Path]) -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| dirs.iter().any(|d| Path::new(m).starts_with(d)))
        .map(String::from)
        .collect()
}

#[test]
fn cve_2021_30465_rename_exchange_racer_against_mount_destinations() {
    if !require_root("cve_2021_30465_rename_exchange_racer_against_mount_destinations") {
        return;
    }
    mount_destination_race("srace-mnt", false);
}

#[test]
fn cve_2024_45310_rename_exchange_racer_against_directory_and_file_creation() {
    if !require_root("cve_2024_45310_rename_exchange_racer_against_directory_and_file_creation") {
        return;
    }
    mount_destination_race("srace-mkdir", true);
}

#[test]
fn cve_2025_52881_rename_exchange_racer_against_procfs_writes() {
    if !require_root("cve_2025_52881_rename_exchange_racer_against_procfs_writes") {
        return;
    }
    let oci = Oci::new("srace-proc");
    // A volume mounted over /proc/sys/kernel in the container, where the
    // racer keeps swapping `shmmni` between a plain file and a symlink to
    // `target`; the sysctl must still reach the real procfs file.
    let vol = tempfile::tempdir().unwrap();
    std::fs::write(vol.path().join("shmmni"), "plain\n").unwrap();
    std::fs::write(vol.path().join("target"), "target\n").unwrap();
    std::os::unix::fs::symlink("/proc/sys/kernel/target", vol.path().join("swap")).unwrap();
    let mut b = Bundle::busybox(&["sleep", "1000"]);
    b.config["linux"]["sysctl"] = json!({"kernel.shmmni": "1234"});
    b.config["mounts"].as_array_mut().unwrap().push(
        json!({"destination": "/proc/sys/kernel", "type": "bind", "source": vol.path(), "options": ["rbind"]}),
    );
    b.save();
    let racer = Racer::start(&vol.path().join("shmmni"), &vol.path().join("swap"));
    let (mut ok, mut refused) = (0, 0);
    for i in 0..RACE_ATTEMPTS {
        let id = oci.id(&format!("r{i}"));
        let out = oci.run(&["create", "--bundle", b.path_str(), &id]);
        if out.status.success() {
            ok += 1;
            let pid = oci.init_pid(&id);
            let got = wren_tests::run(Command::new("nsenter").args([
                "-t",
                &pid.to_string(),
                "-i",
                "cat",
                "/proc/sys/kernel/shmmni",
            ]));
            assert_eq!(
                text(&got.stdout).trim(),
                "1234",
                "attempt {i}: the sysctl missed"
            );
            oci.ok(&["delete", "--force", &id]);
        } else {
            refused += 1;
        }
        let mut files = entries(vol.path());
        files.retain(|f| f != "shmmni" && f != "swap");
        assert_eq!(files, vec!["target"], "attempt {i}");
        assert_eq!(
            std::fs::read_to_string(vol.path().join("target")).unwrap(),
            "target\n",
            "attempt {i}: a procfs write was redirected"
        );
        assert_gone(&oci, &id);
    }
    let swaps = racer.finish();
    assert!(swaps > 0, "the racer never swapped");
    for f in ["shmmni", "swap"] {
        let p = vol.path().join(f);
        if !p.is_symlink() {
            assert_eq!(
                std::fs::read_to_string(&p).unwrap(),
                "plain\n",
                "a procfs write landed in the volume"
            );
        }
    }
    eprintln!("procfs racer: {ok} created, {refused} refused, {swaps} swaps");
}
