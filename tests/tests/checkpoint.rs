//! Checkpoint and restore with a real CRIU (Debian sid's criu 4.2.1; the
//! host's 3.17 cannot run on this kernel): wren-oci runs inside the sid
//! tree's mount namespace (its root a mount point, /proc, /sys, /dev and a
//! tmpfs on /run/criu for criu's kernel-feature cache), as the containerd
//! harness does; bundles, state and images live in the tree's /tmp, so the
//! test reaches them under the tree. Root only; skipped without the tree.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::json;
use wren_tests::{cgroup_dirs, require_root, tree, Bundle};

/// One test's directory in the sid tree, with its own wren-oci copy and
/// state root.
struct Sid {
    tree: PathBuf,
    work: tempfile::TempDir,
}

const ENTER: &str = r#"T=$1; shift
mount --bind "$T" "$T"; mount --make-private "$T"
mount -t proc proc "$T/proc"
mount --rbind /sys "$T/sys"; mount --make-rslave "$T/sys"
mount --rbind /dev "$T/dev"; mount --make-rslave "$T/dev"
mkdir -p "$T/run/criu"; mount -t tmpfs tmpfs "$T/run/criu"
mkdir -p "$T/.oldroot"
cd "$T"; pivot_root . .oldroot; cd /
umount -l /.oldroot
exec "$@""#;

impl Sid {
    fn new(test: &str) -> Option<Sid> {
        if !require_root(test) {
            return None;
        }
        let tree = tree::get(test, "sid")?;
        if !tree.join("usr/sbin/criu").exists() {
            wren_tests::skip(
                test,
                wren_tests::Skip::Missing("criu in the sid tree (scripts/debian-tree.sh)".into()),
            );
            return None;
        }
        let work = tempfile::tempdir_in(tree.join("tmp")).expect("tempdir in the tree");
        std::fs::copy(wren_tests::bin("wren-oci"), work.path().join("wren-oci"))
            .expect("copy wren-oci");
        Some(Sid { tree, work })
    }

    /// A host path under the tree as the tree sees it.
    fn inner(&self, p: &Path) -> String {
        Path::new("/")
            .join(p.strip_prefix(&self.tree).expect("inside the tree"))
            .display()
            .to_string()
    }

    fn dir(&self) -> &Path {
        self.work.path()
    }

    /// Run `program args` in the tree; (exit code, stdout + stderr).
    fn run(&self, program: &[&str], args: &[&str]) -> (i32, String) {
        let out = self.dir().join("out");
        let f = std::fs::File::create(&out).expect("out file");
        let mut cmd = Command::new("unshare");
        cmd.args([
            "--mount",
            "--propagation",
            "private",
            "--",
            "/bin/sh",
            "-ec",
            ENTER,
            "sh",
        ])
        .arg(&self.tree)
        .args(program)
        .args(args)
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .stdin(Stdio::null())
        .stdout(f.try_clone().expect("dup"))
        .stderr(f);
        let mut child = wren_tests::spawn_registered(&mut cmd);
        let status = child.wait().expect("wait unshare");
        wren_tests::unregister(child.id());
        (
            status.code().unwrap_or(-1),
            std::fs::read_to_string(&out).unwrap_or_default(),
        )
    }

    /// Starts `program args` in the tree without waiting; its output goes
    /// to `out` in the test's directory. `fd`, if given, is the child's
    /// fd 5 (for `--status-fd 5`).
    fn spawn(
        &self,
        out: &str,
        program: &[&str],
        args: &[&str],
        fd: Option<&std::os::fd::OwnedFd>,
    ) -> std::process::Child {
        use std::os::fd::AsRawFd;
        use std::os::unix::process::CommandExt;
        let f = std::fs::File::create(self.dir().join(out)).expect("out file");
        let mut cmd = Command::new("unshare");
        cmd.args([
            "--mount",
            "--propagation",
            "private",
            "--",
            "/bin/sh",
            "-ec",
            ENTER,
            "sh",
        ])
        .arg(&self.tree)
        .args(program)
        .args(args)
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .stdin(Stdio::null())
        .stdout(f.try_clone().expect("dup"))
        .stderr(f);
        if let Some(fd) = fd {
            let raw = fd.as_raw_fd();
            // SAFETY: only async-signal-safe calls in the forked child
            // before exec. dup2 onto fd 5 makes a copy without FD_CLOEXEC;
            // when the pipe already is fd 5 (tests run in parallel, so any
            // number can come up) dup2 does nothing and the flag is
            // cleared instead, or the exec would close it.
            unsafe {
                cmd.pre_exec(move || {
                    let r = if raw == 5 {
                        libc::fcntl(5, libc::F_SETFD, 0)
                    } else {
                        libc::dup2(raw, 5)
                    };
                    if r < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        wren_tests::spawn_registered(&mut cmd)
    }

    /// The output of a [`Sid::spawn`]ed program so far.
    fn spawned_out(&self, out: &str) -> String {
        std::fs::read_to_string(self.dir().join(out)).unwrap_or_default()
    }

    fn oci_code(&self, args: &[&str]) -> (i32, String) {
        let bin = self.inner(&self.dir().join("wren-oci"));
        let root = self.inner(&self.dir().join("state"));
        self.run(&[&bin, "--root", &root], args)
    }

    fn oci(&self, args: &[&str]) -> (bool, String) {
        let (code, out) = self.oci_code(args);
        (code == 0, out)
    }

    fn ok(&self, args: &[&str]) -> String {
        let (ok, out) = self.oci(args);
        assert!(ok, "wren-oci {args:?}: {out}");
        out
    }

    /// `wren-oci checkpoint FLAGS --image-path IMG ID` (IMG as the tree
    /// sees it); (success, output).
    fn checkpoint(&self, id: &str, img: &str, flags: &[&str]) -> (bool, String) {
        let mut args = vec!["checkpoint"];
        args.extend_from_slice(flags);
        args.extend(["--image-path", img, id]);
        self.oci(&args)
    }

    fn checkpoint_ok(&self, id: &str, img: &str, flags: &[&str]) -> String {
        let (ok, out) = self.checkpoint(id, img, flags);
        assert!(ok, "wren-oci checkpoint {flags:?} {id}: {out}");
        out
    }

    /// `wren-oci restore --detach FLAGS --image-path IMG --bundle B ID`;
    /// (success, output).
    fn restore(&self, id: &str, img: &str, b: &Bundle, flags: &[&str]) -> (bool, String) {
        let bundle = self.inner(b.path());
        let mut args = vec!["restore", "--detach"];
        args.extend_from_slice(flags);
        args.extend(["--image-path", img, "--bundle", &bundle, id]);
        self.oci(&args)
    }

    fn restore_ok(&self, id: &str, img: &str, b: &Bundle, flags: &[&str]) -> String {
        let (ok, out) = self.restore(id, img, b, flags);
        assert!(ok, "wren-oci restore {flags:?} {id}: {out}");
        out
    }

    fn state(&self, id: &str) -> Option<serde_json::Value> {
        let (ok, out) = self.oci(&["state", id]);
        ok.then(|| serde_json::from_str(&out).expect("state json"))
    }

    fn bundle(&self, script: &str) -> Bundle {
        let mut b = Bundle::busybox_in(self.dir(), &["sh", "-c", script]);
        b.config["process"]["env"]
            .as_array_mut()
            .expect("env")
            .push(json!("SECRET=s3cr3t"));
        b.config["root"]["readonly"] = json!(false);
        b.save();
        b
    }

    /// A copy of `b` (config and rootfs) taken now: the files as a dump
    /// of the paused container saw them. criu reopens a file open for
    /// writing by its path and checks its size on restore, so an image
    /// restores only onto the rootfs as it was at the dump.
    fn snapshot(&self, b: &Bundle) -> Bundle {
        let dir = tempfile::tempdir_in(self.dir()).expect("tempdir");
        let out = wren_tests::run(
            Command::new("cp")
                .arg("-a")
                .arg(format!("{}/.", b.path().display()))
                .arg(dir.path()),
        );
        assert!(out.status.success(), "cp -a: {out:?}");
        Bundle {
            dir,
            config: b.config.clone(),
        }
    }

    fn image(&self, name: &str) -> (PathBuf, String) {
        let p = self.dir().join(name);
        let inner = self.inner(&p);
        (p, inner)
    }
}

impl Drop for Sid {
    fn drop(&mut self) {
        if let Ok(entries) = std::fs::read_dir(self.dir().join("state")) {
            for e in entries.flatten() {
                let id = e.file_name().to_string_lossy().into_owned();
                let _ = self.oci(&["delete", "--force", &id]);
            }
        }
        wren_tests::reap();
    }
}

/// The counter: every 0.1 s it writes "<i> <$SECRET> <$$> <cwd>" to
/// /tmp/count and appends i to fd 3 (an open file, /tmp/held). Its stdio
/// is redirected inside the container first: criu cannot dump fds open on
/// files outside the container's mounts.
const COUNTER: &str = "exec </dev/null >/dev/null 2>&1 3>>/tmp/held; cd /tmp; i=0; \
    while true; do i=$((i+1)); echo \"$i $SECRET $$ $(pwd)\" >/tmp/count.new; \
    mv /tmp/count.new /tmp/count; echo $i >&3; sleep 0.1; done";

fn count(b: &Bundle) -> Option<(u64, String)> {
    let s = std::fs::read_to_string(b.rootfs().join("tmp/count")).ok()?;
    let (n, rest) = s.trim().split_once(' ')?;
    Some((n.parse().ok()?, rest.to_string()))
}

fn wait_count(b: &Bundle, above: u64) -> u64 {
    assert!(
        wren_tests::wait_for(10, || count(b).is_some_and(|(n, _)| n > above)),
        "the counter did not pass {above}: {:?}",
        count(b)
    );
    count(b).expect("count").0
}

fn held_lines(b: &Bundle) -> Vec<u64> {
    std::fs::read_to_string(b.rootfs().join("tmp/held"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.parse().ok())
        .collect()
}

fn start_counter(s: &Sid, id: &str) -> Bundle {
    let b = s.bundle(COUNTER);
    s.ok(&["run", "--detach", "--bundle", &s.inner(b.path()), id]);
    wait_count(&b, 3);
    b
}

fn assert_no_cgroup(name: &str) {
    let left = cgroup_dirs(name);
    assert!(left.is_empty(), "cgroup left behind: {left:?}");
}

#[test]
fn counter_survives_checkpoint_kill_restore() {
    let t = "counter_survives_checkpoint_kill_restore";
    let Some(s) = Sid::new(t) else { return };
    let id = format!("ck-count-{}", std::process::id());
    let b = start_counter(&s, &id);
    let old_pid = s.state(&id).expect("state")["pid"].as_i64().expect("pid");
    let (img, img_in) = s.image("img");
    s.checkpoint_ok(&id, &img_in, &[]);
    // Without --leave-running the container is gone, as with runc.
    assert!(
        s.state(&id).is_none(),
        "container still there after checkpoint"
    );
    assert!(!wren_tests::alive(old_pid), "the dumped init still runs");
    assert_no_cgroup(&id);
    assert!(img.join("inventory.img").exists());
    let (at_dump, _) = count(&b).expect("count");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        count(&b).expect("count").0,
        at_dump,
        "counting after the dump"
    );

    s.restore_ok(&id, &img_in, &b, &[]);
    let st = s.state(&id).expect("restored state");
    assert_eq!(st["status"], "running", "{st}");
    let pid = st["pid"].as_i64().expect("pid");
    assert!(wren_tests::alive(pid));
    let now = wait_count(&b, at_dump);
    // Memory: the counter went on from where it was, not from 1.
    assert!(now > at_dump && now < at_dump + 50, "{at_dump} -> {now}");
    let (_, rest) = count(&b).expect("count");
    // Environment, pid inside its namespace, cwd.
    assert_eq!(rest, "s3cr3t 1 /tmp");
    // The open file: still fd 3, appending after the lines before the dump.
    let held = held_lines(&b);
    let idx = held.iter().position(|&n| n == at_dump).expect("dump line");
    assert_eq!(held.get(idx + 1), Some(&(at_dump + 1)), "{held:?}");
    // In the new container's cgroup.
    let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("cgroup");
    assert!(cg.contains(&id), "{cg}");
    s.ok(&["delete", "--force", &id]);
    assert!(!wren_tests::wait_for(2, || !wren_tests::alive(pid)) || !wren_tests::alive(pid));
    assert_no_cgroup(&id);
}

/// `--leave-running` dumps and leaves the container counting; the image
/// restores under another id while the original runs, and the restored
/// counter goes on from where the dump took it. The workload only appends
/// through a descriptor it holds (criu checks neither the size nor the
/// content of an O_APPEND file on restore), so the rootfs the original
/// keeps changing still fits the image.
#[test]
fn leave_running_keeps_the_container() {
    let t = "leave_running_keeps_the_container";
    let Some(s) = Sid::new(t) else { return };
    let id = format!("ck-leave-{}", std::process::id());
    let b = s.bundle(
        "exec </dev/null >/dev/null 2>&1 3>>/tmp/held; i=0; \
         while true; do i=$((i+1)); echo $i >&3; sleep 0.1; done",
    );
    s.ok(&["run", "--detach", "--bundle", &s.inner(b.path()), &id]);
    assert!(wren_tests::wait_for(10, || held_lines(&b).len() >= 3));
    let pid = s.state(&id).expect("state")["pid"].clone();
    let (_, img_in) = s.image("img");
    s.checkpoint_ok(&id, &img_in, &["--leave-running"]);
    let st = s.state(&id).expect("state");
    assert_eq!(st["status"], "running");
    assert_eq!(st["pid"], pid, "not the same process");
    let at_dump = held_lines(&b).len();
    assert!(
        wren_tests::wait_for(10, || held_lines(&b).len() > at_dump + 2),
        "the original stopped counting after the dump"
    );
    let id2 = format!("{id}-2");
    s.restore_ok(&id2, &img_in, &b, &[]);
    assert_eq!(s.state(&id2).expect("state")["status"], "running");
    // The restored counter writes numbers the original already passed.
    let before = held_lines(&b).len();
    assert!(
        wren_tests::wait_for(10, || {
            let l = held_lines(&b);
            l.len() > before + 4 && l[before..].windows(2).any(|w| w[1] <= w[0])
        }),
        "no second counter after the restore: {:?}",
        &held_lines(&b)[before..]
    );
    s.ok(&["delete", "--force", &id2]);
    s.ok(&["delete", "--force", &id]);
    assert_no_cgroup(&id);
    assert_no_cgroup(&id2);
}

#[test]
fn restore_refuses_a_name_in_use() {
    let t = "restore_refuses_a_name_in_use";
    let Some(s) = Sid::new(t) else { return };
    let id = format!("ck-inuse-{}", std::process::id());
    let b = start_counter(&s, &id);
    let (_, img_in) = s.image("img");
    s.checkpoint_ok(&id, &img_in, &["--leave-running"]);
    let pid = s.state(&id).expect("state")["pid"].clone();
    let (ok, out) = s.restore(&id, &img_in, &b, &[]);
    assert!(!ok, "restored over a running container: {out}");
    assert!(out.contains("already exists"), "{out}");
    let st = s.state(&id).expect("state");
    assert_eq!(st["status"], "running");
    assert_eq!(st["pid"], pid);
}

#[test]
fn restore_from_a_missing_or_corrupt_image_leaves_nothing() {
    let t = "restore_from_a_missing_or_corrupt_image_leaves_nothing";
    let Some(s) = Sid::new(t) else { return };
    let id = format!("ck-bad-{}", std::process::id());
    let b = start_counter(&s, &id);
    let (img, img_in) = s.image("img");
    s.checkpoint_ok(&id, &img_in, &[]);
    let restore = |image: &str| s.restore(&id, image, &b, &[]);

    let (_, missing) = s.image("nowhere");
    let (ok, out) = restore(&missing);
    assert!(!ok);
    assert!(
        out.contains("inventory.img") && out.contains(&missing),
        "{out}"
    );
    assert!(s.state(&id).is_none());
    assert_no_cgroup(&id);

    // A corrupt process tree image: criu's own reason comes back.
    std::fs::write(img.join("pstree.img"), b"not a criu image").expect("corrupt");
    let (ok, out) = restore(&img_in);
    assert!(!ok);
    assert!(out.contains("criu restore failed"), "{out}");
    assert!(out.contains("restore.log"), "{out}");
    assert!(s.state(&id).is_none(), "state left behind");
    assert!(!s.dir().join("state").join(&id).exists());
    assert_no_cgroup(&id);
    // No rootfs bind left in any mount table we can see.
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    assert!(!mounts.contains("criu-root"), "{mounts}");
}

/// A container listening and connected to itself over TCP inside its own
/// network namespace (lo brought up with CAP_NET_ADMIN). The server's
/// stdin is a pipe that never ends: at EOF busybox nc would hang up.
fn tcp_bundle(s: &Sid) -> Bundle {
    let mut b = s.bundle(
        "exec </dev/null >/dev/null 2>&1; ip link set lo up; \
         sleep 100000 | nc -l -p 5000 >/tmp/recv & sleep 0.5; \
         i=0; while true; do i=$((i+1)); echo $i; echo $i >/tmp/count; sleep 0.1; done \
         | nc 127.0.0.1 5000",
    );
    with_net_admin(&mut b);
    b
}

/// Gives the bundle's process CAP_NET_ADMIN (and saves the bundle).
fn with_net_admin(b: &mut Bundle) {
    for set in ["bounding", "effective", "permitted"] {
        b.config["process"]["capabilities"][set]
            .as_array_mut()
            .expect("caps")
            .push(json!("CAP_NET_ADMIN"));
    }
    b.save();
}

fn recv_last(b: &Bundle) -> u64 {
    std::fs::read_to_string(b.rootfs().join("tmp/recv"))
        .unwrap_or_default()
        .lines()
        .rev()
        .find_map(|l| l.parse().ok())
        .unwrap_or(0)
}

#[test]
fn established_tcp_needs_the_flag_and_survives_with_it() {
    let t = "established_tcp_needs_the_flag_and_survives_with_it";
    let Some(s) = Sid::new(t) else { return };
    let id = format!("ck-tcp-{}", std::process::id());
    let b = tcp_bundle(&s);
    s.ok(&["run", "--detach", "--bundle", &s.inner(b.path()), &id]);
    assert!(
        wren_tests::wait_for(10, || recv_last(&b) > 3),
        "no traffic over the connection"
    );
    let pid = s.state(&id).expect("state")["pid"].clone();

    // Bad input: criu cannot dump an established connection without the
    // flag; its reason comes back and the container keeps running.
    let (_, img_in) = s.image("img");
    let (ok, out) = s.checkpoint(&id, &img_in, &[]);
    assert!(
        !ok,
        "dumped an established connection without --tcp-established"
    );
    assert!(out.contains("criu dump failed"), "{out}");
    assert!(
        out.contains("tcp-established") || out.contains("TCP"),
        "{out}"
    );
    let st = s.state(&id).expect("state");
    assert_eq!(st["status"], "running");
    assert_eq!(st["pid"], pid);
    let before = recv_last(&b);
    assert!(
        wren_tests::wait_for(5, || recv_last(&b) > before + 2),
        "traffic stopped"
    );

    let (_, img2) = s.image("img2");
    s.checkpoint_ok(&id, &img2, &["--tcp-established"]);
    let at_dump = recv_last(&b);
    s.restore_ok(&id, &img2, &b, &["--tcp-established"]);
    // The same connection carries on: numbers continue, no restart at 1.
    assert!(
        wren_tests::wait_for(10, || recv_last(&b) > at_dump + 3),
        "no traffic after restore ({at_dump} -> {})",
        recv_last(&b)
    );
    let text = std::fs::read_to_string(b.rootfs().join("tmp/recv")).unwrap_or_default();
    assert_eq!(
        text.lines().filter(|l| *l == "1").count(),
        1,
        "reconnected: {text}"
    );
}

/// A static helper that connects a datagram socket to `argv[1]` and sends
/// its count there every 0.1 s (send errors ignored), also writing it to
/// /tmp/count: a process holding a connected unix socket whose peer is
/// outside the container (as a daemon logging to the host's /dev/log).
const DGRAM_C: &str = r#"
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
int main(int argc, char **argv) {
    if (argc < 2) return 2;
    int s = socket(AF_UNIX, SOCK_DGRAM, 0);
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    strncpy(a.sun_path, argv[1], sizeof a.sun_path - 1);
    if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof a) < 0) return 1;
    char buf[32];
    for (unsigned long i = 1;; i++) {
        int n = snprintf(buf, sizeof buf, "%lu", i);
        send(s, buf, n, MSG_DONTWAIT);
        FILE *f = fopen("/tmp/count", "w");
        if (f) { fprintf(f, "%lu x\n", i); fclose(f); }
        usleep(100000);
    }
}
"#;

/// `locker FILE -n`: exit 1 if FILE's flock is taken (busybox has no
/// flock applet); `locker FILE PROG ARGS`: take it, then exec PROG, which
/// keeps the fd and so holds the lock.
const LOCKER_C: &str = r#"
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>
int main(int argc, char **argv) {
    if (argc < 3) return 2;
    int fd = open(argv[1], O_RDWR | O_CREAT, 0644);
    if (fd < 0) return 2;
    if (strcmp(argv[2], "-n") == 0) return flock(fd, LOCK_EX | LOCK_NB) ? 1 : 0;
    if (flock(fd, LOCK_EX)) return 2;
    /* Out of the way of the shell's own redirections (fd 3). */
    if (dup2(fd, 9) != 9) return 2;
    close(fd);
    execvp(argv[2], argv + 2);
    return 127;
}
"#;

/// Builds [`DGRAM_C`] into `rootfs`/dgram; false (the test skips) without
/// a static-capable gcc.
fn build_dgram(t: &str, rootfs: &Path) -> bool {
    build_static(t, rootfs, "dgram", DGRAM_C)
}

/// Builds C `source` into `rootfs`/`name`, static; false (the test skips)
/// without a gcc that can.
fn build_static(t: &str, rootfs: &Path, name: &str, source: &str) -> bool {
    let src = rootfs.join(format!("{name}.c"));
    std::fs::write(&src, source).expect("write the C source");
    let out = wren_tests::run(
        Command::new("gcc")
            .args(["-static", "-Os", "-s", "-o"])
            .arg(rootfs.join(name))
            .arg(&src),
    );
    if !out.status.success() {
        wren_tests::skip(
            t,
            wren_tests::Skip::Missing(format!("gcc -static: {}", wren_tests::text(&out.stderr))),
        );
        return false;
    }
    true
}

/// `--ext-unix-sk`: the container's datagram socket is connected to a
/// socket the test bound outside it (a bind-mounted directory; in the
/// host's network namespace, which the container shares, so criu finds
/// the peer). Without the flag criu refuses with its reason and the
/// container keeps running; with it the dump works, and restore (with
/// the flag, as runc passes it; criu itself needs it only to dump)
/// reconnects the socket to the peer by its name: the counts arrive
/// again, continuing. The directory is mounted at the path it has
/// outside, so the peer's name resolves the same in the container.
#[test]
fn external_unix_socket_needs_the_flag_and_reconnects_on_restore() {
    let t = "external_unix_socket_needs_the_flag_and_reconnects_on_restore";
    let Some(s) = Sid::new(t) else { return };
    let id = format!("ck-extsk-{}", std::process::id());
    let ext = s.dir().join("ext");
    std::fs::create_dir_all(&ext).expect("mkdir ext");
    let sock_path = ext.join("log.sock");
    let peer = std::os::unix::net::UnixDatagram::bind(&sock_path).expect("bind the peer");
    peer.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let name = sock_path.display().to_string();
    let mut b = s.bundle("");
    if !build_dgram(t, &b.rootfs()) {
        return;
    }
    b.config["process"]["args"] = json!([
        "sh",
        "-c",
        format!("exec </dev/null >/dev/null 2>&1; exec /dgram {name}")
    ]);
    b.config["mounts"]
        .as_array_mut()
        .expect("mounts")
        .push(json!({
            "destination": ext.display().to_string(),
            "type": "bind",
            "source": s.inner(&ext),
            "options": ["rbind", "rw"]
        }));
    b.config["linux"]["namespaces"]
        .as_array_mut()
        .expect("namespaces")
        .retain(|n| n["type"] != "network");
    b.save();
    s.ok(&["run", "--detach", "--bundle", &s.inner(b.path()), &id]);
    let recv = || -> Option<u64> {
        let mut buf = [0u8; 32];
        let n = peer.recv(&mut buf).ok()?;
        std::str::from_utf8(&buf[..n]).ok()?.parse().ok()
    };
    let drain_last = || -> u64 {
        let mut last = 0;
        // Everything queued, then one fresh datagram.
        peer.set_nonblocking(true).expect("nonblocking");
        while let Some(n) = recv() {
            last = n;
        }
        peer.set_nonblocking(false).expect("blocking");
        recv().unwrap_or(last)
    };
    assert!(
        recv().is_some_and(|n| n >= 1),
        "no datagram from the container"
    );
    let pid = s.state(&id).expect("state")["pid"].clone();

    let (_, img_in) = s.image("img");
    let (ok, out) = s.checkpoint(&id, &img_in, &[]);
    assert!(!ok, "dumped an external unix socket without --ext-unix-sk");
    assert!(out.contains("criu dump failed"), "{out}");
    assert!(out.contains("ext-unix-sk"), "criu's reason missing: {out}");
    let st = s.state(&id).expect("state");
    assert_eq!(st["status"], "running");
    assert_eq!(st["pid"], pid);
    let before = drain_last();
    assert!(before > 0, "the container stopped sending");

    let (_, img2) = s.image("img2");
    s.checkpoint_ok(&id, &img2, &["--ext-unix-sk"]);
    // Under load no datagram may have come between the two drains.
    let at_dump = drain_last().max(before);
    assert!(s.state(&id).is_none(), "checkpoint left the container");
    s.restore_ok(&id, &img2, &b, &["--ext-unix-sk"]);
    let first = recv().expect("no datagram after restore");
    assert!(
        first > before && first <= at_dump + 2,
        "restored count {first} does not continue the dumped one ({before}..{at_dump})"
    );
    assert!(recv().is_some_and(|n| n > first), "counting stopped");
    s.ok(&["delete", "--force", &id]);
    assert_no_cgroup(&id);
}

/// `--file-locks`: the container's shell holds an exclusive flock on
/// /tmp/lock. Without the flag criu refuses (its reason names the locks)
/// and the container keeps running; with it the dump works and restore
/// (with the flag) takes the lock again: another process cannot get it,
/// and the counter goes on.
#[test]
fn file_lock_needs_the_flag_and_is_held_after_restore() {
    let t = "file_lock_needs_the_flag_and_is_held_after_restore";
    let Some(s) = Sid::new(t) else { return };
    let id = format!("ck-flock-{}", std::process::id());
    // The counting shell itself holds the lock (locker execs it).
    let mut b = s.bundle("");
    if !build_static(t, &b.rootfs(), "locker", LOCKER_C) {
        return;
    }
    b.config["process"]["args"] = json!(["/locker", "/tmp/lock", "sh", "-c", COUNTER]);
    b.save();
    s.ok(&["run", "--detach", "--bundle", &s.inner(b.path()), &id]);
    wait_count(&b, 3);
    let locked = || {
        let (code, out) = s.oci_code(&["exec", &id, "/locker", "/tmp/lock", "-n"]);
        assert!(code == 0 || code == 1, "flock -n: {code} {out}");
        code == 1
    };
    assert!(locked(), "the container does not hold the lock");

    let (_, img_in) = s.image("img");
    let (ok, out) = s.checkpoint(&id, &img_in, &[]);
    assert!(!ok, "dumped a held file lock without --file-locks");
    assert!(out.contains("criu dump failed"), "{out}");
    assert!(out.contains("file-locks"), "criu's reason missing: {out}");
    assert_eq!(s.state(&id).expect("state")["status"], "running");
    let before = wait_count(&b, 0);
    wait_count(&b, before + 2);

    let (_, img2) = s.image("img2");
    s.checkpoint_ok(&id, &img2, &["--file-locks"]);
    let at_dump = count(&b).expect("count").0;
    s.restore_ok(&id, &img2, &b, &["--file-locks"]);
    wait_count(&b, at_dump + 3);
    let held = held_lines(&b);
    assert!(
        held.iter().zip(1..).all(|(n, want)| *n == want),
        "the count restarted: {held:?}"
    );
    assert!(locked(), "the lock is not held after restore");
    s.ok(&["delete", "--force", &id]);
    assert_no_cgroup(&id);
}

#[test]
fn pre_dump_says_why_it_cannot_run() {
    let t = "pre_dump_says_why_it_cannot_run";
    let Some(s) = Sid::new(t) else { return };
    let (_, check) = s.run(&["criu", "check", "--feature", "mem_dirty_track"], &[]);
    let id = format!("ck-pre-{}", std::process::id());
    let b = start_counter(&s, &id);
    let (img, img_in) = s.image("pre");
    let (ok, out) = s.checkpoint(&id, &img_in, &["--pre-dump"]);
    if check.contains("OFF") || !check.contains("is supported") {
        // The code path: a clear refusal naming the missing kernel feature.
        assert!(!ok, "pre-dump succeeded without dirty tracking: {out}");
        assert!(out.contains("Dirty tracking is OFF"), "{out}");
        assert_eq!(s.state(&id).expect("state")["status"], "running");
        wren_tests::skip(
            t,
            wren_tests::Skip::Host(format!(
                "iterative pre-dump + dump: criu check --feature mem_dirty_track: {}",
                check.trim()
            )),
        );
        return;
    }
    assert!(ok, "{out}");
    assert_eq!(s.state(&id).expect("state")["status"], "running");
    let (_, fin) = s.image("final");
    s.checkpoint_ok(&id, &fin, &["--parent-path", "../pre"]);
    assert!(img.join("pagemap-1.img").exists() || img.join("inventory.img").exists());
    let n = count(&b).expect("count").0;
    s.restore_ok(&id, &fin, &b, &[]);
    wait_count(&b, n);
}

/// The pty master sent to a console socket at `path` by the command run
/// in `f`.
fn with_console(path: &Path, f: impl FnOnce()) -> std::os::fd::OwnedFd {
    let _ = std::fs::remove_file(path);
    let listener = std::os::unix::net::UnixListener::bind(path).expect("console socket");
    let t = std::thread::spawn(move || {
        let (conn, _) = listener.accept().expect("accept");
        wren_runtime::console::recv_from_socket(&conn).expect("recv master")
    });
    f();
    t.join().expect("console thread")
}

/// The last "tick N" read from `master` within `secs`.
fn last_tick(master: &std::os::fd::OwnedFd, secs: u64) -> u64 {
    use std::io::Read;
    let mut file = std::fs::File::from(master.try_clone().expect("dup master"));
    let mut text = String::new();
    let end = std::time::Instant::now() + Duration::from_secs(secs);
    let mut buf = [0u8; 4096];
    while std::time::Instant::now() < end {
        let mut pfd = libc::pollfd {
            fd: std::os::fd::AsRawFd::as_raw_fd(&file),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(&mut pfd, 1, 100) } > 0 {
            match file.read(&mut buf) {
                Ok(n) if n > 0 => text.push_str(&String::from_utf8_lossy(&buf[..n])),
                _ => break,
            }
        }
    }
    text.lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("tick ")?.parse().ok())
        .unwrap_or(0)
}

#[test]
fn terminal_container_restores_with_a_new_console() {
    let t = "terminal_container_restores_with_a_new_console";
    let Some(s) = Sid::new(t) else { return };
    let id = format!("ck-tty-{}", std::process::id());
    let mut b = s.bundle(
        "i=0; while true; do i=$((i+1)); echo tick $i; echo $i >/tmp/count; sleep 0.1; done",
    );
    b.config["process"]["terminal"] = json!(true);
    b.save();
    let sock = s.dir().join("console.sock");
    let sock_in = s.inner(&sock);
    let bundle = s.inner(b.path());
    let master = with_console(&sock, || {
        s.ok(&[
            "run",
            "--detach",
            "--console-socket",
            &sock_in,
            "--bundle",
            &bundle,
            &id,
        ]);
    });
    assert!(last_tick(&master, 1) > 0, "no output on the first console");
    let (_, img_in) = s.image("img");
    s.checkpoint_ok(&id, &img_in, &[]);
    let at_dump = last_tick(&master, 1);
    drop(master);
    let master2 = with_console(&sock, || {
        s.restore_ok(&id, &img_in, &b, &["--console-socket", &sock_in]);
    });
    // The same process goes on writing on the new console.
    let after = last_tick(&master2, 2);
    assert!(
        after > at_dump,
        "new console: tick {after}, at dump {at_dump}"
    );
    assert_eq!(s.state(&id).expect("state")["status"], "running");
    s.ok(&["delete", "--force", &id]);
    assert_no_cgroup(&id);
}

/// The shim's Checkpoint RPC under the sid tree's containerd 2.1 (the
/// shim, containerd and criu all in the tree): `ctr c checkpoint --task`
/// makes a checkpoint image and leaves the task running. Restore through
/// the shim (Create with a checkpoint) is not implemented yet.
#[test]
fn ctr_checkpoint_task_through_the_shim() {
    use wren_tests::containerd::{self, Containerd};
    let t = "ctr_checkpoint_task_through_the_shim";
    if !require_root(t) || !containerd::shim_tests_can_run(t) {
        return;
    }
    let Some(tree) = tree::get(t, "sid") else {
        return;
    };
    let c = Containerd::start_in(Some(&tree), "ck", true, None);
    let id = format!("ck-ctr-{}", std::process::id());
    containerd::run_detached(
        &c,
        &id,
        &[],
        &[
            "sh",
            "-c",
            "exec </dev/null >/dev/null 2>&1; i=0; while true; do i=$((i+1)); sleep 0.1; done",
        ],
    );
    assert!(wren_tests::wait_for(10, || containerd::task_status(
        &c, &id
    ) == "RUNNING"));
    let pid = containerd::task_pid(&c, &id);
    let r = format!("wren.test/{id}:ck");
    let out = c.ctr(&["containers", "checkpoint", "--task", "--rw", &id, &r]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "ctr c checkpoint: {text}\n{}",
        c.log()
    );
    let images = c.ctr(&["images", "ls", "-q"]);
    assert!(
        String::from_utf8_lossy(&images.stdout).contains(&r),
        "no checkpoint image {r}"
    );
    assert_eq!(containerd::task_status(&c, &id), "RUNNING");
    assert_eq!(containerd::task_pid(&c, &id), pid);
    let _ = c.ctr(&["task", "kill", "--signal", "SIGKILL", &id]);
    assert!(wren_tests::wait_for(10, || containerd::task_status(
        &c, &id
    ) == "STOPPED"));
    let _ = c.ctr(&["task", "rm", &id]);
    let _ = c.ctr(&["containers", "rm", &id]);
}

#[test]
fn foreground_restore_exits_with_the_container_status() {
    let t = "foreground_restore_exits_with_the_container_status";
    let Some(s) = Sid::new(t) else { return };
    let id = format!("ck-fg-{}", std::process::id());
    let b = s.bundle("exec </dev/null >/dev/null 2>&1; sleep 2; exit 7");
    let bundle = s.inner(b.path());
    s.ok(&["run", "--detach", "--bundle", &bundle, &id]);
    let (_, img_in) = s.image("img");
    s.checkpoint_ok(&id, &img_in, &[]);
    // The restored init is wren-oci's child: it waits and takes its status.
    let (code, out) = s.oci_code(&["restore", "--image-path", &img_in, "--bundle", &bundle, &id]);
    assert_eq!(code, 7, "{out}");
    assert!(
        s.state(&id).is_none(),
        "foreground restore left the container"
    );
    assert_no_cgroup(&id);
}

/// `ctr c checkpoint --task` then `ctr c restore` of a new container from
/// that image, through the shim (Create with a checkpoint, restored at
/// Start): /tasks/create says pid 0, /tasks/start the restored pid; the
/// task comes back RUNNING, its counter continues, and an exec runs in
/// the restored container.
#[test]
fn ctr_restore_through_the_shim() {
    ctr_checkpoint_restore_in("ctr_restore_through_the_shim", "sid");
}

/// The same under the trixie tree's containerd 1.7 and criu 4.1: 1.7's
/// Task API checkpoints (`ctr c checkpoint --task`) and restores (`ctr c
/// restore`, Create with the checkpoint) through wren's shim as 2.1 does.
/// (1.7's CRI has no CheckpointContainer: both its CRI servers answer
/// Unimplemented, so the forensic and archive tests are 2.x only.)
#[test]
fn ctr_checkpoint_restore_under_containerd_1_7() {
    ctr_checkpoint_restore_in("ctr_checkpoint_restore_under_containerd_1_7", "trixie");
}

fn ctr_checkpoint_restore_in(t: &str, tree_name: &str) {
    use wren_tests::containerd::{self, Containerd};
    if !require_root(t) || !containerd::shim_tests_can_run(t) {
        return;
    }
    let Some(tree) = tree::get(t, tree_name) else {
        return;
    };
    if !tree.join("usr/sbin/criu").exists() {
        wren_tests::skip(
            t,
            wren_tests::Skip::Missing(format!("criu in the {tree_name} tree")),
        );
        return;
    }
    if tree_name == "trixie" {
        assert_eq!(tree::containerd_major(&tree), 1, "trixie's containerd");
    }
    // containerd unpacks the checkpoint for the restore into
    // /tmp/ctrd-checkpoint* of its root and keeps it for the task's
    // life; the ones this test makes are removed at the end.
    let unpacked = || -> Vec<PathBuf> {
        std::fs::read_dir(tree.join("tmp"))
            .map(|d| {
                d.flatten()
                    .map(|e| e.path())
                    .filter(|p| {
                        p.file_name()
                            .is_some_and(|n| n.to_string_lossy().starts_with("ctrd-checkpoint"))
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let before_dirs = unpacked();
    let c = Containerd::start_in(Some(&tree), &format!("ckr-{tree_name}"), true, None);
    let id = format!("ck-ctrr-{tree_name}-{}", std::process::id());
    containerd::run_detached(
        &c,
        &id,
        &[],
        &[
            "sh",
            "-c",
            "exec </dev/null >/dev/null 2>&1; i=0; while true; do i=$((i+1)); echo $i >/tmp/n; sleep 0.1; done",
        ],
    );
    assert!(wren_tests::wait_for(10, || containerd::task_status(
        &c, &id
    ) == "RUNNING"));
    std::thread::sleep(Duration::from_millis(500));
    let r = format!("wren.test/{id}:ck");
    let out = c.ctr(&["containers", "checkpoint", "--task", "--rw", &id, &r]);
    assert!(
        out.status.success(),
        "checkpoint: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The counter, read by an exec. Its output came back empty now and
    // then under CI load until the shim held an exec's exit for its late
    // FIFO reader (shim_stdio's an_exec_exit_waits_for_its_late_fifo_reader):
    // a failed exec or an output that is not a number fails here, with
    // what ctr said.
    let read_n = |c: &Containerd, id: &str| -> u64 {
        let out = c.ctr(&["task", "exec", "--exec-id", "rd", id, "cat", "/tmp/n"]);
        let text = String::from_utf8_lossy(&out.stdout);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "exec: {:?}: {err}", out.status);
        text.trim()
            .parse()
            .unwrap_or_else(|_| panic!("exec printed {text:?} (stderr {err:?})"))
    };
    let before = read_n(&c, &id);
    assert!(before > 0);
    let _ = c.ctr(&["task", "kill", "--signal", "SIGKILL", &id]);
    assert!(wren_tests::wait_for(10, || containerd::task_status(
        &c, &id
    ) == "STOPPED"));
    let _ = c.ctr(&["task", "rm", &id]);
    let _ = c.ctr(&["containers", "rm", &id]);
    // What containerd hears: /tasks/create with no process yet (pid 0),
    // /tasks/start with the restored pid, as from runc's shim.
    let events_out = c.dir.path().join("events.out");
    let mut events = c.ctr_command(&["events"]);
    events
        .stdout(std::fs::File::create(&events_out).expect("events.out"))
        .stderr(Stdio::null());
    let events = wren_tests::spawn_registered(&mut events);
    std::thread::sleep(Duration::from_millis(300));
    let out = c.ctr(&["containers", "restore", "--rw", "--live", &id, &r]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "ctr c restore: {text}\n{}", c.log());
    assert!(wren_tests::wait_for(10, || containerd::task_status(
        &c, &id
    ) == "RUNNING"));
    let restored_pid = containerd::task_pid(&c, &id);
    let line = |topic: &str| -> Option<serde_json::Value> {
        let text = std::fs::read_to_string(&events_out).unwrap_or_default();
        text.lines()
            .filter(|l| l.contains(topic) && l.contains(&id))
            .find_map(|l| serde_json::from_str(&l[l.find('{')?..]).ok())
    };
    assert!(
        wren_tests::wait_for(5, || line("/tasks/start").is_some()),
        "no /tasks/start event: {}",
        std::fs::read_to_string(&events_out).unwrap_or_default()
    );
    let create = line("/tasks/create").expect("/tasks/create event");
    assert_eq!(create["pid"].as_i64().unwrap_or(0), 0, "create: {create}");
    assert!(
        create["checkpoint"].as_str().is_some_and(|p| !p.is_empty()),
        "{create}"
    );
    let start = line("/tasks/start").expect("/tasks/start");
    assert_eq!(start["pid"].as_i64(), Some(restored_pid), "start: {start}");
    wren_tests::kill_registered(events);
    // A fresh start would read 1 or 2 here; the restored counter goes on
    // from the dump (taken a moment before `before` was read).
    let after = read_n(&c, &id);
    assert!(
        after > 4 && after + 5 >= before,
        "counter restarted: {before} -> {after}"
    );
    let _ = c.ctr(&["task", "kill", "--signal", "SIGKILL", &id]);
    assert!(wren_tests::wait_for(10, || containerd::task_status(
        &c, &id
    ) == "STOPPED"));
    let _ = c.ctr(&["task", "rm", &id]);
    let _ = c.ctr(&["containers", "rm", &id]);
    drop(c);
    for d in unpacked() {
        if !before_dirs.contains(&d) {
            let _ = std::fs::remove_dir_all(&d);
        }
    }
}

/// A private wrend in the sid tree's mount and pid namespaces (its shims
/// run the tree's criu), rooted in the tree's /tmp; `wren` runs there too
/// (nsenter), so the paths it is given are the tree's.
struct TreeWrend {
    tree: PathBuf,
    dir: tempfile::TempDir,
    child: Option<std::process::Child>,
}

impl TreeWrend {
    fn start(test: &str) -> Option<TreeWrend> {
        Self::start_with(test, false)
    }

    /// With `net`: in a network namespace of its own too (`lo` up), its
    /// containers on wrend's default network unless they say otherwise,
    /// the tree's CNI plugins and iptables making bridges and rules there.
    fn start_with(test: &str, net: bool) -> Option<TreeWrend> {
        if !require_root(test) {
            return None;
        }
        let tree = tree::get(test, "sid")?;
        if !tree.join("usr/sbin/criu").exists() {
            wren_tests::skip(
                test,
                wren_tests::Skip::Missing("criu in the sid tree (scripts/debian-tree.sh)".into()),
            );
            return None;
        }
        let dir = tempfile::tempdir_in(tree.join("tmp")).expect("tempdir in the tree");
        std::fs::create_dir_all(dir.path().join("bin")).expect("mkdir bin");
        for b in ["wrend", "wren", "containerd-shim-wren-v2", "wren-net"] {
            std::fs::copy(wren_tests::bin(b), dir.path().join("bin").join(b)).expect("copy");
        }
        let log = std::fs::File::create(dir.path().join("wrend.log")).expect("wrend.log");
        let mut w = TreeWrend {
            tree,
            dir,
            child: None,
        };
        let inner = w.inner(w.dir.path());
        let mut cmd = Command::new("unshare");
        if net {
            cmd.arg("--net");
        }
        cmd.args([
            "--mount",
            "--pid",
            "--fork",
            "--kill-child",
            "--propagation",
            "private",
            "--",
            "/bin/sh",
            "-ec",
            r#"T=$1; D=$2; NET=$3
[ -z "$NET" ] || ip link set lo up
mount --bind "$T" "$T"; mount --make-private "$T"
mount -t proc proc "$T/proc"
mount --rbind /sys "$T/sys"; mount --make-rslave "$T/sys"
mount --rbind /dev "$T/dev"; mount --make-rslave "$T/dev"
mkdir -p "$T/run/criu"; mount -t tmpfs tmpfs "$T/run/criu"
mkdir -p "$T/.oldroot"
cd "$T"; pivot_root . .oldroot; cd /
umount -l /.oldroot
"$D/bin/wrend" --root "$D/root" --debug --default-network=${NET:-none} &
while :; do wait || :; sleep 1; done"#,
            "sh",
        ])
        .arg(&w.tree)
        .arg(&inner)
        .arg(if net { "bridge" } else { "" })
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("dup"))
        .stderr(log);
        w.child = Some(wren_tests::spawn_registered(&mut cmd));
        let sock = w.dir.path().join("root/run/wrend.sock");
        assert!(
            wren_tests::wait_for(10, || std::os::unix::net::UnixStream::connect(&sock)
                .is_ok()),
            "wrend did not come up: {}",
            w.log()
        );
        Some(w)
    }

    fn inner(&self, p: &Path) -> String {
        Path::new("/")
            .join(p.strip_prefix(&self.tree).expect("inside the tree"))
            .display()
            .to_string()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("wrend.log")).unwrap_or_default()
    }

    /// The reaper shell: the first process of the namespaces.
    fn ns_pid(&self) -> u32 {
        let u = self.child.as_ref().expect("running").id();
        std::fs::read_to_string(format!("/proc/{u}/task/{u}/children"))
            .ok()
            .and_then(|s| s.split_whitespace().next().and_then(|p| p.parse().ok()))
            .expect("unshare's child")
    }

    /// `wren ARGS` in wrend's namespaces, not run yet.
    fn cmd(&self, args: &[&str]) -> Command {
        let inner = self.inner(self.dir.path());
        let mut c = Command::new("nsenter");
        c.args(["--mount", "--pid", "--target"])
            .arg(self.ns_pid().to_string())
            .arg("--")
            .arg(format!("{inner}/bin/wren"))
            .args(["--root", &format!("{inner}/root")])
            .args(args);
        c
    }

    fn wren(&self, args: &[&str]) -> std::process::Output {
        wren_tests::run(&mut self.cmd(args))
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.wren(args);
        assert!(
            out.status.success(),
            "wren {args:?}: {}\nwrend log:\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn fails(&self, args: &[&str]) -> String {
        let out = self.wren(args);
        assert!(
            !out.status.success(),
            "wren {args:?} should have failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    fn inspect(&self, name: &str) -> serde_json::Value {
        serde_json::from_str(&self.ok(&["inspect", name])).expect("inspect json")
    }

    fn status(&self, name: &str) -> String {
        let out = self.wren(&["inspect", name]);
        serde_json::from_slice::<serde_json::Value>(&out.stdout)
            .map(|v| v["status"].as_str().unwrap_or_default().to_string())
            .unwrap_or_default()
    }

    fn wait_status(&self, name: &str, status: &str) {
        assert!(
            wren_tests::wait_for(10, || self.status(name) == status),
            "{name} never became {status} (is {:?})\n{}",
            self.status(name),
            self.log()
        );
    }

    /// The numbers of the "tick N" lines of `wren logs`.
    fn ticks(&self, name: &str) -> Vec<u64> {
        self.ok(&["logs", name])
            .lines()
            .filter_map(|l| l.trim().strip_prefix("tick ")?.parse().ok())
            .collect()
    }

    /// A busybox rootfs in the tree, as the tree sees it.
    fn rootfs(&self) -> String {
        let b = Bundle::busybox_in(self.dir.path(), &["true"]);
        let r = self.inner(&b.rootfs());
        std::mem::forget(b); // removed with the directory
        r
    }
}

impl Drop for TreeWrend {
    fn drop(&mut self) {
        if self.child.is_some() {
            let list = self.wren(&["list", "--json"]);
            if let Ok(serde_json::Value::Array(all)) = serde_json::from_slice(&list.stdout) {
                for c in all {
                    if let Some(n) = c["name"].as_str() {
                        let _ = self.wren(&["rm", "-f", n]);
                    }
                }
            }
        }
        // wrend exits on SIGTERM (removing its cgroup parent) before the
        // namespace goes: SIGKILL would leave that parent behind.
        if self.child.is_some() {
            let sh = self.ns_pid();
            let wrend = std::fs::read_to_string(format!("/proc/{sh}/task/{sh}/children"))
                .ok()
                .and_then(|s| {
                    s.split_whitespace()
                        .next()
                        .and_then(|p| p.parse::<i32>().ok())
                });
            if let Some(pid) = wrend {
                // SAFETY: kill(2) of wrend, the only child of our namespace's shell.
                unsafe { libc::kill(pid, libc::SIGTERM) };
                wren_tests::wait_for(5, || !wren_tests::alive(i64::from(pid)));
            }
        }
        if let Some(c) = self.child.take() {
            wren_tests::kill_registered(c);
        }
        wren_tests::reap();
    }
}

/// Prints "tick N" every 0.1 s on stdout (wrend's log of the container).
const TICKER: &str = "i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.1; done";

/// `wren checkpoint` stops the container (its `always` policy does not
/// bring it back); `wren restore` brings the same processes back under
/// the same record: its log goes on from the tick it had reached, `stop`
/// and the restart policy apply to it as to any container.
#[test]
fn wrend_checkpoint_restore_keeps_log_and_restart_policy() {
    let t = "wrend_checkpoint_restore_keeps_log_and_restart_policy";
    let Some(w) = TreeWrend::start(t) else { return };
    let name = format!("ck-wrend-{}", std::process::id());
    let rootfs = w.rootfs();
    w.ok(&[
        "run",
        "-d",
        "--restart",
        "always",
        "--rootfs",
        &rootfs,
        &name,
        "--",
        "sh",
        "-c",
        TICKER,
    ]);
    w.wait_status(&name, "running");
    assert!(wren_tests::wait_for(10, || w.ticks(&name).len() >= 5));
    let img = format!("{}/img", w.inner(w.dir.path()));
    w.ok(&["checkpoint", &name, &img]);
    assert_eq!(
        w.status(&name),
        "stopped",
        "checkpoint without --leave-running stops it"
    );
    assert!(w.dir.path().join("img/inventory.img").is_file(), "no image");
    let at_dump = *w.ticks(&name).last().expect("ticks");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        w.status(&name),
        "stopped",
        "the restart policy restarted a checkpointed container"
    );
    assert_eq!(
        *w.ticks(&name).last().expect("ticks"),
        at_dump,
        "it still ran"
    );
    // Restoring over a live container is refused; an empty dir is not an image.
    let empty = format!("{}/empty", w.inner(w.dir.path()));
    std::fs::create_dir(w.dir.path().join("empty")).expect("mkdir");
    let err = w.fails(&["restore", &empty, &name]);
    assert!(err.contains("inventory.img"), "{err}");
    w.ok(&["restore", &img, &name]);
    assert_eq!(w.status(&name), "running");
    assert!(
        wren_tests::wait_for(10, || w
            .ticks(&name)
            .last()
            .is_some_and(|n| *n > at_dump + 5)),
        "no new ticks after restore: {:?}",
        w.ticks(&name)
    );
    // One count, 1..N, across the dump: a fresh start would begin again at 1.
    let ticks = w.ticks(&name);
    assert!(
        ticks.iter().zip(1..).all(|(n, want)| *n == want),
        "the restored process did not continue its count: {ticks:?}"
    );
    let err = w.fails(&["restore", &img, &name]);
    assert!(err.contains("running"), "{err}");
    // The restart policy goes on: killed, it is started afresh (tick 1).
    let pid = w.inspect(&name)["pid"].as_u64().expect("pid");
    w.ok(&["kill", &name]);
    assert!(
        wren_tests::wait_for(15, || w.inspect(&name)["restart_count"].as_u64() == Some(1)
            && w.status(&name) == "running"),
        "not restarted: {}",
        w.inspect(&name)
    );
    assert_ne!(w.inspect(&name)["pid"].as_u64(), Some(pid));
    w.ok(&["stop", "-t", "1", &name]);
    assert_eq!(w.status(&name), "stopped");
    w.ok(&["rm", &name]);
    assert_no_cgroup(&name);
}

/// `--leave-running` dumps and leaves the same process running; a
/// stopped container cannot be checkpointed, an unknown one is named.
#[test]
fn wrend_checkpoint_leave_running_and_refusals() {
    let t = "wrend_checkpoint_leave_running_and_refusals";
    let Some(w) = TreeWrend::start(t) else { return };
    let name = format!("ck-wrend-lr-{}", std::process::id());
    let rootfs = w.rootfs();
    w.ok(&[
        "run", "-d", "--rootfs", &rootfs, &name, "--", "sh", "-c", TICKER,
    ]);
    w.wait_status(&name, "running");
    assert!(wren_tests::wait_for(10, || w.ticks(&name).len() >= 3));
    let pid = w.inspect(&name)["pid"].as_u64().expect("pid");
    let img = format!("{}/img", w.inner(w.dir.path()));
    w.ok(&["checkpoint", "--leave-running", &name, &img]);
    assert!(w.dir.path().join("img/inventory.img").is_file(), "no image");
    assert_eq!(w.status(&name), "running");
    assert_eq!(w.inspect(&name)["pid"].as_u64(), Some(pid));
    let n = *w.ticks(&name).last().expect("ticks");
    assert!(wren_tests::wait_for(10, || w
        .ticks(&name)
        .last()
        .is_some_and(|m| *m > n + 3)));
    let err = w.fails(&["checkpoint", "nosuch", &img]);
    assert!(err.contains("nosuch"), "{err}");
    w.ok(&["stop", "-t", "1", &name]);
    let err = w.fails(&["checkpoint", &name, &format!("{img}2")]);
    assert!(err.contains("stopped"), "{err}");
    w.ok(&["rm", &name]);
    assert_no_cgroup(&name);
}

/// CRI CheckpointContainer (the kubelet's forensic checkpoint) under the
/// sid tree's containerd 2.1: the archive holds criu's images, the
/// container's config/spec/status dumps, criu's stats-dump and the rootfs
/// changes, and the container keeps running. The handler is runc-typed
/// (`runtime_type = "io.containerd.runc.v2"`, the shim's path wren's):
/// containerd sets CheckpointOptions (work path = its container dir, where
/// it then looks for stats-dump) only for that type. Restoring the archive
/// (CreateContainer with it as the image) is not tested: containerd 2.1.9
/// always pulls the base image by NAME@DIGEST from its registry first.
#[test]
fn cri_checkpoint_container_writes_the_forensic_archive_under_containerd_2() {
    use wren_tests::cri::{cri_tests_can_run, Cri};
    let t = "cri_checkpoint_container_writes_the_forensic_archive_under_containerd_2";
    if !require_root(t) || !cri_tests_can_run(t) {
        return;
    }
    let Some(tree) = tree::get(t, "sid") else {
        return;
    };
    if !tree.join("usr/sbin/criu").exists() {
        wren_tests::skip(
            t,
            wren_tests::Skip::Missing("criu in the sid tree (scripts/debian-tree.sh)".into()),
        );
        return;
    }
    let cri = Cri::start_in(Some(&tree), "ck-cri");
    let podcfg = cri.pod_config("ck");
    let pod = cri
        .run_pod_with(&podcfg, "wren-runc-typed")
        .unwrap_or_else(|e| panic!("RunPodSandbox: {e}\n{}", cri.containerd.log()));
    let script = "echo before-dump >/tmp/marker; i=0; \
                  while true; do i=$((i+1)); echo $i >/tmp/n; echo tick $i; sleep 0.1; done";
    let id = cri
        .create_container(
            &pod,
            &podcfg,
            cri.container_config("counter", &["sh", "-c", script]),
        )
        .unwrap_or_else(|e| panic!("CreateContainer: {e}\n{}", cri.containerd.log()));
    cri.start_container(&id).expect("StartContainer");
    let read_n = |id: &str| -> u64 {
        cri.exec_sync(id, &["cat", "/tmp/n"], 5)
            .map(|(_, out, _)| out.trim().parse().unwrap_or(0))
            .unwrap_or(0)
    };
    assert!(
        wren_tests::wait_for(10, || read_n(&id) > 3),
        "counter did not run"
    );
    let archive = cri.containerd.dir.path().join("ck.tar");
    let location = cri.containerd.inner_path(&archive);
    let mut rs = cri.rs();
    let r = cri.block(
        rs.checkpoint_container(k8s_cri::v1::CheckpointContainerRequest {
            container_id: id.clone(),
            location: location.display().to_string(),
            timeout: 60,
        }),
    );
    assert!(
        r.is_ok(),
        "CheckpointContainer: {r:?}\n{}",
        cri.containerd.log()
    );
    let at_dump = read_n(&id);
    // Forensic: the container keeps running.
    let st = cri.container_status(&id).expect("status");
    assert_eq!(
        st.state,
        k8s_cri::v1::ContainerState::ContainerRunning as i32
    );
    let list = wren_tests::run(Command::new("tar").arg("-tf").arg(&archive));
    let names = String::from_utf8_lossy(&list.stdout).into_owned();
    for want in [
        "checkpoint/inventory.img",
        "config.dump",
        "spec.dump",
        "status.dump",
        "stats-dump",
        "rootfs-diff.tar",
    ] {
        assert!(
            names.lines().any(|l| l.trim_start_matches("./") == want),
            "{want} missing from the archive: {names}"
        );
    }
    // The rootfs changes and the container's log are in it too.
    let diff = wren_tests::run(
        Command::new("sh")
            .arg("-c")
            .arg("tar -xOf \"$1\" rootfs-diff.tar | tar -tzf - 2>/dev/null || tar -xOf \"$1\" rootfs-diff.tar | tar -tf -")
            .arg("sh")
            .arg(&archive),
    );
    let diff = String::from_utf8_lossy(&diff.stdout).into_owned();
    assert!(
        diff.contains("tmp/marker"),
        "rootfs-diff.tar lacks /tmp/marker: {diff}"
    );
    assert!(
        wren_tests::wait_for(10, || read_n(&id) > at_dump),
        "the counter stopped after the checkpoint"
    );
    cri.teardown(&pod);
}

/// The sid tree with its criu, or None (skipped) for CRI tests.
fn sid_tree_with_criu(t: &str) -> Option<PathBuf> {
    use wren_tests::cri::cri_tests_can_run;
    if !require_root(t) || !cri_tests_can_run(t) {
        return None;
    }
    let tree = tree::get(t, "sid")?;
    if !tree.join("usr/sbin/criu").exists() {
        wren_tests::skip(
            t,
            wren_tests::Skip::Missing("criu in the sid tree (scripts/debian-tree.sh)".into()),
        );
        return None;
    }
    Some(tree)
}

/// The kubelet's restore path under containerd 2.1: CreateContainer whose
/// image is a checkpoint archive. containerd reads the archive's metadata,
/// pulls the base image by NAME@DIGEST (so it comes from a registry: a
/// private one on 127.0.0.1 of containerd's network namespace), unpacks the
/// CRIU images and the rootfs diff, and StartContainer restores through the
/// shim's Create(checkpoint)+Start. The restored counter goes on with the
/// token it drew before the dump (its memory survived), the rootfs diff is
/// back, and removal leaves no shim or cgroup.
#[test]
fn cri_checkpoint_archive_restores_into_a_new_container_under_containerd_2() {
    use wren_tests::cri::Cri;
    use wren_tests::registry::{registry_binary, Compression, Layer, Layout, Registry};
    let t = "cri_checkpoint_archive_restores_into_a_new_container_under_containerd_2";
    let Some(tree) = sid_tree_with_criu(t) else {
        return;
    };
    if registry_binary().is_none() || !Path::new("/usr/bin/skopeo").exists() {
        wren_tests::skip(
            t,
            wren_tests::Skip::Missing("docker-registry and skopeo".into()),
        );
        return;
    }
    let cri = Cri::start_in(Some(&tree), "ck-crir");
    let reg = Registry::start_in_net_of(cri.containerd.pid().expect("containerd runs"));
    let mut layout = Layout::new();
    let base = Layer::busybox_base().finish();
    layout.image(
        "test/ck:1",
        &[(&base, Compression::Gzip)],
        json!({"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"]}),
    );
    reg.push(&layout, "test/ck:1", "ck/busybox:1");
    let image = format!("{}/ck/busybox:1", reg.addr);
    cri.pull_image(&image)
        .unwrap_or_else(|e| panic!("PullImage {image}: {e}\n{}", cri.containerd.log()));
    let podcfg = cri.pod_config("ckr");
    let pod = cri
        .run_pod_with(&podcfg, "wren-runc-typed")
        .unwrap_or_else(|e| panic!("RunPodSandbox: {e}\n{}", cri.containerd.log()));
    let script = "echo before-dump >/tmp/marker; tok=$(cat /proc/sys/kernel/random/uuid); i=0; \
                  while true; do i=$((i+1)); echo \"$i $tok\" >/tmp/n.new; mv /tmp/n.new /tmp/n; \
                  echo tick $i; sleep 0.1; done";
    let mut cfg = cri.container_config("counter", &["sh", "-c", script]);
    cfg.image = Some(k8s_cri::v1::ImageSpec {
        image: image.clone(),
        ..Default::default()
    });
    let id = cri
        .create_container(&pod, &podcfg, cfg)
        .unwrap_or_else(|e| panic!("CreateContainer: {e}\n{}", cri.containerd.log()));
    cri.start_container(&id).expect("StartContainer");
    let read = |id: &str| -> Option<(u64, String)> {
        let (_, out, _) = cri.exec_sync(id, &["cat", "/tmp/n"], 5).ok()?;
        let (n, tok) = out.trim().split_once(' ')?;
        Some((n.parse().ok()?, tok.to_string()))
    };
    assert!(
        wren_tests::wait_for(10, || read(&id).is_some_and(|(n, _)| n > 3)),
        "counter did not run"
    );
    let (before, token) = read(&id).expect("count");
    let archive = cri.containerd.dir.path().join("ck.tar");
    let location = cri.containerd.inner_path(&archive).display().to_string();
    let mut rs = cri.rs();
    let r = cri.block(
        rs.checkpoint_container(k8s_cri::v1::CheckpointContainerRequest {
            container_id: id.clone(),
            location: location.clone(),
            timeout: 60,
        }),
    );
    assert!(
        r.is_ok(),
        "CheckpointContainer: {r:?}\n{}",
        cri.containerd.log()
    );
    let (after, _) = read(&id).expect("count after the dump");
    cri.stop_container(&id, 0).expect("StopContainer");
    cri.remove_container(&id).expect("RemoveContainer");
    assert_no_cgroup(&id);

    // The archive as the image of a new container in the same pod.
    let mut cfg = cri.container_config("counter", &["sh", "-c", script]);
    cfg.image = Some(k8s_cri::v1::ImageSpec {
        image: location.clone(),
        ..Default::default()
    });
    let restored = cri
        .create_container(&pod, &podcfg, cfg)
        .unwrap_or_else(|e| {
            panic!(
                "CreateContainer from {location}: {e}\n{}",
                cri.containerd.log()
            )
        });
    assert_ne!(restored, id);
    cri.start_container(&restored)
        .unwrap_or_else(|e| panic!("StartContainer (restore): {e}\n{}", cri.containerd.log()));
    let st = cri.container_status(&restored).expect("status");
    assert_eq!(
        st.state,
        k8s_cri::v1::ContainerState::ContainerRunning as i32
    );
    assert_eq!(
        st.annotations.get("restored").map(String::as_str),
        Some("true")
    );
    let first = read(&restored).expect("count after restore");
    assert_eq!(first.1, token, "a fresh start, not the dumped process");
    assert!(
        first.0 >= before && first.0 <= after + 20,
        "restored count {} not from the dump ({before}..={after})",
        first.0
    );
    assert!(
        wren_tests::wait_for(10, || read(&restored).is_some_and(|(n, _)| n > first.0 + 3)),
        "the restored counter does not run"
    );
    let (_, marker, _) = cri
        .exec_sync(&restored, &["cat", "/tmp/marker"], 5)
        .expect("exec");
    assert_eq!(marker.trim(), "before-dump");

    cri.stop_container(&restored, 0).expect("StopContainer");
    cri.remove_container(&restored).expect("RemoveContainer");
    cri.teardown(&pod);
    assert!(
        wren_tests::wait_for(10, || cri.shims().is_empty()),
        "shim left: {:?}",
        cri.shims()
    );
    assert_no_cgroup(&restored);
    let state = cri
        .containerd
        .host_path(&cri.containerd.inner.join("wren-root").join(&restored));
    assert!(!state.exists(), "wren state left: {}", state.display());
}

/// The value of cgroup file `v2` (or `v1`) of container `id`, in whichever
/// hierarchy has it.
fn cgroup_value(id: &str, v2: &str, v1: &str) -> Option<String> {
    cgroup_dirs(id).into_iter().find_map(|d| {
        std::fs::read_to_string(d.join(v2))
            .or_else(|_| std::fs::read_to_string(d.join(v1)))
            .ok()
            .map(|s| s.trim().to_string())
    })
}

/// A restored container's cgroup gets its resources from the bundle's
/// config.json at restore time, as a created one does (values, not only
/// membership): memory and pids limits set before the restore are the
/// restored cgroup's.
#[test]
fn restored_cgroup_gets_the_bundle_limits() {
    let t = "restored_cgroup_gets_the_bundle_limits";
    let Some(s) = Sid::new(t) else { return };
    let id = format!("ck-limits-{}", std::process::id());
    let mut b = s.bundle(COUNTER);
    let set = |b: &mut Bundle, mem: u64, pids: u64| {
        b.config["linux"]["resources"]["memory"] = json!({"limit": mem});
        b.config["linux"]["resources"]["pids"] = json!({"limit": pids});
        b.save();
    };
    set(&mut b, 64 << 20, 77);
    s.ok(&["run", "--detach", "--bundle", &s.inner(b.path()), &id]);
    wait_count(&b, 2);
    let mem = || cgroup_value(&id, "memory.max", "memory.limit_in_bytes");
    let pids = || cgroup_value(&id, "pids.max", "pids.max");
    assert_eq!(mem().as_deref(), Some("67108864"));
    assert_eq!(pids().as_deref(), Some("77"));
    let (_, img_in) = s.image("img");
    s.checkpoint_ok(&id, &img_in, &[]);
    assert_no_cgroup(&id);
    set(&mut b, 96 << 20, 88);
    s.restore_ok(&id, &img_in, &b, &[]);
    let (at, _) = count(&b).expect("count");
    wait_count(&b, at);
    assert_eq!(
        mem().as_deref(),
        Some("100663296"),
        "memory limit after restore"
    );
    assert_eq!(pids().as_deref(), Some("88"), "pids limit after restore");
    s.ok(&["delete", "--force", &id]);
    assert_no_cgroup(&id);
}

/// A paused container can be checkpointed: with --leave-running it stays
/// paused (criu thaws only what it froze itself) and counts again once
/// resumed; the image restores running.
#[test]
fn paused_container_checkpoints_and_stays_paused() {
    let t = "paused_container_checkpoints_and_stays_paused";
    let Some(s) = Sid::new(t) else { return };
    let id = format!("ck-paused-{}", std::process::id());
    let b = start_counter(&s, &id);
    s.ok(&["pause", &id]);
    let (_, img_in) = s.image("img");
    s.checkpoint_ok(&id, &img_in, &["--leave-running"]);
    assert_eq!(s.state(&id).expect("state")["status"], "paused");
    // Still paused: the rootfs is as the dump saw it (the counter may be
    // between writing count.new and renaming it).
    let b2 = s.snapshot(&b);
    let (n, _) = count(&b).expect("count");
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(count(&b).expect("count").0, n, "counting while paused");
    s.ok(&["resume", &id]);
    wait_count(&b, n + 2);
    s.ok(&["delete", "--force", &id]);
    let id2 = format!("{id}-2");
    s.restore_ok(&id2, &img_in, &b2, &[]);
    assert_eq!(s.state(&id2).expect("state")["status"], "running");
    let (m, _) = count(&b2).expect("count");
    wait_count(&b2, m);
    s.ok(&["delete", "--force", &id2]);
    assert_no_cgroup(&id);
    assert_no_cgroup(&id2);
}

/// wren-oci restores runc 1.3.6's images (the same layout:
/// descriptors.json, external mounts keyed by destination): a counter
/// dumped by runc goes on under wren-oci. (The other way fails on a
/// hybrid host: wren also binds the cgroup2 hierarchy at
/// /sys/fs/cgroup/unified, an external mount runc neither makes nor maps
/// on restore — criu: "No mapping for <id>:(null) mountpoint".)
#[test]
fn wren_restores_an_image_runc_made() {
    let t = "wren_restores_an_image_runc_made";
    let Some(s) = Sid::new(t) else { return };
    let runc_root = s.inner(&s.dir().join("runc-root"));
    let runc = |args: &[&str]| -> (i32, String) { s.run(&["runc", "--root", &runc_root], args) };
    let id = format!("ck-x-runc-{}", std::process::id());
    let b = s.bundle(COUNTER);
    let bundle = s.inner(b.path());
    let (_, img_in) = s.image("img-runc");
    let (code, out) = runc(&["run", "--detach", "--bundle", &bundle, &id]);
    assert_eq!(code, 0, "runc run: {out}");
    wait_count(&b, 3);
    let (code, out) = runc(&["checkpoint", "--image-path", &img_in, &id]);
    assert_eq!(code, 0, "runc checkpoint: {out}");
    let (at, _) = count(&b).expect("count");
    s.restore_ok(&id, &img_in, &b, &[]);
    let now = wait_count(&b, at);
    assert!(now < at + 50, "counter restarted? {at} -> {now}");
    assert_eq!(s.state(&id).expect("state")["status"], "running");
    s.ok(&["delete", "--force", &id]);
    assert_no_cgroup(&id);
}

/// On restore the prestart and createRuntime hooks run (criu's
/// setup-namespaces), each given the container's state: its id, bundle
/// and the restored init's pid, status "creating".
#[test]
fn restore_runs_prestart_and_create_runtime_hooks_with_the_state() {
    let t = "restore_runs_prestart_and_create_runtime_hooks_with_the_state";
    let Some(s) = Sid::new(t) else { return };
    let id = format!("ck-hooks-{}", std::process::id());
    let mut b = s.bundle(COUNTER);
    let out_dir = s.dir().join("hooks");
    std::fs::create_dir(&out_dir).expect("mkdir");
    let out_in = s.inner(&out_dir);
    let hook = |name: &str| {
        json!({"path": "/bin/sh",
               "args": ["sh", "-c", format!("cat > {out_in}/{name}.json")]})
    };
    let bundle = s.inner(b.path());
    s.ok(&["run", "--detach", "--bundle", &bundle, &id]);
    wait_count(&b, 2);
    let (_, img_in) = s.image("img");
    s.checkpoint_ok(&id, &img_in, &[]);
    // Hooks added after the dump: only the restore can run them.
    b.config["hooks"] = json!({"prestart": [hook("prestart")],
                               "createRuntime": [hook("createRuntime")]});
    b.save();
    s.restore_ok(&id, &img_in, &b, &[]);
    let pid = s.state(&id).expect("state")["pid"].as_i64().expect("pid");
    for name in ["prestart", "createRuntime"] {
        let text = std::fs::read_to_string(out_dir.join(format!("{name}.json")))
            .unwrap_or_else(|e| panic!("{name} hook did not run: {e}"));
        let st: serde_json::Value = serde_json::from_str(&text).expect("state json");
        assert_eq!(st["id"], json!(id), "{name}: {st}");
        assert_eq!(st["bundle"], json!(bundle), "{name}: {st}");
        assert_eq!(st["status"], "creating", "{name}: {st}");
        assert!(st["pid"].as_i64().is_some_and(|p| p > 0), "{name}: {st}");
        // The pid the hooks see is the restored init, in our pid namespace.
        assert_eq!(st["pid"].as_i64(), Some(pid), "{name}: {st}");
    }
    s.ok(&["delete", "--force", &id]);
    assert_no_cgroup(&id);
}

/// `--empty-ns network` on both sides: the network namespace's contents
/// are not dumped, and restore gives the container a new, empty one (only
/// a loopback device).
#[test]
fn empty_ns_network_restores_into_an_empty_network_namespace() {
    let t = "empty_ns_network_restores_into_an_empty_network_namespace";
    let Some(s) = Sid::new(t) else { return };
    let id = format!("ck-emptyns-{}", std::process::id());
    let b = start_counter(&s, &id);
    let (img, img_in) = s.image("img");
    s.checkpoint_ok(&id, &img_in, &["--empty-ns", "network"]);
    let names: Vec<String> = std::fs::read_dir(&img)
        .expect("image dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !names
            .iter()
            .any(|n| n.starts_with("ifaddr-") || n.starts_with("route-")),
        "network contents were dumped: {names:?}"
    );
    let (at, _) = count(&b).expect("count");
    s.restore_ok(&id, &img_in, &b, &["--empty-ns", "network"]);
    wait_count(&b, at);
    let pid = s.state(&id).expect("state")["pid"].as_i64().expect("pid");
    let links = std::fs::read_to_string(format!("/proc/{pid}/net/dev")).expect("net/dev");
    let devs: Vec<&str> = links
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next().map(str::trim))
        .collect();
    assert_eq!(devs, ["lo"], "{links}");
    assert_ne!(
        std::fs::read_link(format!("/proc/{pid}/ns/net")).ok(),
        std::fs::read_link("/proc/self/ns/net").ok(),
        "restored into the host's network namespace"
    );
    s.ok(&["delete", "--force", &id]);
    assert_no_cgroup(&id);
}

/// `--lazy-pages` asks criu first: without userfaultfd's non-cooperative
/// events it refuses naming them and the container keeps running; with
/// them the dump waits for a page server, which is not tested here.
#[test]
fn lazy_pages_refuses_clearly_without_userfaultfd() {
    let t = "lazy_pages_refuses_clearly_without_userfaultfd";
    let Some(s) = Sid::new(t) else { return };
    let (_, check) = s.run(&["criu", "check", "--feature", "uffd-noncoop"], &[]);
    if check.contains("is supported") {
        wren_tests::skip(
            t,
            wren_tests::Skip::Host(format!("userfaultfd is there ({})", check.trim())),
        );
        return;
    }
    let id = format!("ck-nouffd-{}", std::process::id());
    let b = start_counter(&s, &id);
    let (_, img_in) = s.image("img");
    let (ok, out) = s.checkpoint(&id, &img_in, &["--lazy-pages"]);
    assert!(!ok, "lazy pages without uffd succeeded: {out}");
    assert!(out.contains("userfaultfd"), "{out}");
    assert_eq!(s.state(&id).expect("state")["status"], "running");
    let (n, _) = count(&b).expect("count");
    wait_count(&b, n + 2);
    s.ok(&["delete", "--force", &id]);
    assert_no_cgroup(&id);
}

/// `checkpoint --lazy-pages --page-server ADDR:PORT --status-fd 5` (runc's
/// flags; Podman and runc's tests wait on this fd): the `\0` comes while
/// the dump is still running, once its page server listens (criu's
/// "status-ready" notification), with the images but the lazy memory
/// written. A client that connects and hangs up ends the transfer; the
/// dump then finishes and the container is gone, as after any checkpoint.
#[test]
fn status_fd_gets_its_byte_when_the_page_server_listens() {
    let t = "status_fd_gets_its_byte_when_the_page_server_listens";
    let Some(s) = Sid::new(t) else { return };
    let (_, check) = s.run(&["criu", "check", "--feature", "uffd-noncoop"], &[]);
    if !check.contains("is supported") {
        wren_tests::skip(
            t,
            wren_tests::Skip::Host(format!("no userfaultfd ({})", check.trim())),
        );
        return;
    }
    let _serial = LAZY_TESTS.lock().unwrap_or_else(|e| e.into_inner());
    // A host that refuses criu's 4 MiB pipe gets a refusal up front
    // (lazy_pages_migrate_through_a_page_server checks it).
    let _raised = (!big_pipe_allowed()).then(PipeMaxSize::raise);
    let id = format!("ck-stfd-{}", std::process::id());
    let _b = start_counter(&s, &id);
    let (img, img_in) = s.image("img");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let (rd, wr) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).expect("pipe");
    let oci = s.inner(&s.dir().join("wren-oci"));
    let root = s.inner(&s.dir().join("state"));
    let mut dump = s.spawn(
        "dump.out",
        &[&oci, "--root", &root],
        &[
            "checkpoint",
            "--lazy-pages",
            "--page-server",
            &format!("127.0.0.1:{port}"),
            "--status-fd",
            "5",
            "--image-path",
            &img_in,
            &id,
        ],
        Some(&wr),
    );
    drop(wr);
    // Everything the status fd carries until its end (or 30 s).
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut all = Vec::new();
        let _ = std::io::Read::read_to_end(&mut std::fs::File::from(rd), &mut all);
        let _ = tx.send(all);
    });
    let got = rx.recv_timeout(Duration::from_secs(30));
    if got != Ok(vec![0u8]) {
        // The fd also ends when the dump fails; its error is written after.
        wren_tests::wait_for(30, || matches!(dump.try_wait(), Ok(Some(_))));
        let log = std::fs::read_to_string(img.join("dump.log")).unwrap_or_default();
        panic!(
            "the status fd did not carry one \\0 and end ({got:?}); dump {:?}: {}\ncriu's dump.log:\n{log}",
            dump.try_wait(),
            s.spawned_out("dump.out")
        );
    }
    assert!(
        matches!(dump.try_wait(), Ok(None)),
        "the dump ended before any page was asked for: {}",
        s.spawned_out("dump.out")
    );
    assert!(img.join("inventory.img").exists(), "no inventory.img yet");
    assert_eq!(s.state(&id).expect("state")["status"], "running");
    drop(std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect to the page server"));
    assert!(
        wren_tests::wait_for(30, || matches!(dump.try_wait(), Ok(Some(_)))),
        "the dump did not end after its client left"
    );
    let st = dump.wait().expect("wait");
    wren_tests::unregister(dump.id());
    assert!(st.success(), "checkpoint: {}", s.spawned_out("dump.out"));
    assert!(
        s.state(&id).is_none(),
        "the checkpointed container is still there"
    );
    assert_no_cgroup(&id);
}

/// Lazy migration as runc does it, with this kernel's userfaultfd:
/// `checkpoint --lazy-pages --page-server ADDR:PORT --status-fd 5` dumps
/// everything but the memory and serves the pages; the \0 on the status fd
/// says it is ready (criu's "status-ready" notification). `criu lazy-pages`
/// fetches from it for the restore; `restore --lazy-pages` (under another
/// id, as the dumped container is only gone once every page has moved)
/// brings the counter back, its pages faulted in on demand; then both
/// criu processes end and the old container is gone.
///
/// criu's lazy page server grows a pipe to 4 MiB as `criu lazy-pages`
/// connects, and without that fails with "page-pipe: splice: -1: Bad file
/// descriptor" (runc 1.3.6 fails the same way here). These machines' root
/// lacks CAP_SYS_RESOURCE and fs.pipe-max-size is 1 MiB: the checkpoint
/// must then refuse up front, naming the setting, and leave the container
/// running; the migration itself runs with the setting raised for the test
/// (put back afterwards).
#[test]
fn lazy_pages_migrate_through_a_page_server() {
    let t = "lazy_pages_migrate_through_a_page_server";
    let Some(s) = Sid::new(t) else { return };
    let _serial = LAZY_TESTS.lock().unwrap_or_else(|e| e.into_inner());
    let (_, check) = s.run(&["criu", "check", "--feature", "uffd-noncoop"], &[]);
    if !check.contains("is supported") {
        wren_tests::skip(
            t,
            wren_tests::Skip::Host(format!("no userfaultfd ({})", check.trim())),
        );
        return;
    }
    let id = format!("ck-lazy-{}", std::process::id());
    let id2 = format!("{id}-moved");
    let b = start_counter(&s, &id);
    let (img, img_in) = s.image("img");
    let _raised = if big_pipe_allowed() {
        None
    } else {
        let (ok, out) = s.checkpoint(
            &id,
            &img_in,
            &["--lazy-pages", "--page-server", "127.0.0.1:1"],
        );
        assert!(
            !ok,
            "a lazy checkpoint the host cannot serve was not refused"
        );
        assert!(
            out.contains("fs.pipe-max-size") && out.contains("4194304"),
            "the refusal does not name the setting: {out}"
        );
        assert_eq!(s.state(&id).expect("state")["status"], "running");
        Some(PipeMaxSize::raise())
    };
    assert!(big_pipe_allowed(), "fs.pipe-max-size could not be raised");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
        .to_string();
    let (rd, wr) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).expect("pipe");
    let oci = s.inner(&s.dir().join("wren-oci"));
    let root = s.inner(&s.dir().join("state"));
    let mut dump = s.spawn(
        "dump.out",
        &[&oci, "--root", &root],
        &[
            "checkpoint",
            "--lazy-pages",
            "--page-server",
            &format!("127.0.0.1:{port}"),
            "--status-fd",
            "5",
            "--manage-cgroups-mode",
            "ignore",
            "--image-path",
            &img_in,
            &id,
        ],
        Some(&wr),
    );
    drop(wr);
    let mut ready = [1u8; 1];
    let got = std::io::Read::read(&mut std::fs::File::from(rd), &mut ready).unwrap_or(0);
    assert_eq!(
        (got, ready[0]),
        (1, 0),
        "no \\0 on the status fd: {}",
        s.spawned_out("dump.out")
    );
    assert!(img.join("inventory.img").exists(), "no inventory.img");
    let mut lazy = s.spawn(
        "lazy.out",
        &[
            "criu",
            "lazy-pages",
            "--page-server",
            "--address",
            "127.0.0.1",
            "--port",
            &port,
            "-D",
            &img_in,
        ],
        &[],
        None,
    );
    // The restore connects to the daemon's socket in the image dir.
    assert!(
        wren_tests::wait_for(10, || img.join("lazy-pages.socket").exists()),
        "criu lazy-pages did not come up: {}",
        s.spawned_out("lazy.out")
    );
    let at_dump = count(&b).expect("count").0;
    let bundle = s.inner(b.path());
    let (code, out) = s.run(
        &["timeout", "-s", "KILL", "60", &oci, "--root", &root],
        &[
            "restore",
            "--detach",
            "--lazy-pages",
            "--manage-cgroups-mode",
            "ignore",
            "--image-path",
            &img_in,
            "--bundle",
            &bundle,
            &id2,
        ],
    );
    if code != 0 {
        let _ = lazy.kill();
        let _ = dump.kill();
        panic!(
            "restore --lazy-pages: {out}\ndump: {}\nlazy-pages: {}",
            s.spawned_out("dump.out"),
            s.spawned_out("lazy.out")
        );
    }
    wait_count(&b, at_dump + 5);
    let held = held_lines(&b);
    assert!(
        held.iter().zip(1..).all(|(n, want)| *n == want),
        "the count restarted: {held:?}"
    );
    assert!(
        wren_tests::wait_for(30, || matches!(dump.try_wait(), Ok(Some(_)))),
        "the dump did not end"
    );
    let st = dump.wait().expect("wait dump");
    wren_tests::unregister(dump.id());
    assert!(st.success(), "checkpoint: {}", s.spawned_out("dump.out"));
    assert!(
        wren_tests::wait_for(30, || matches!(lazy.try_wait(), Ok(Some(_)))),
        "criu lazy-pages did not end"
    );
    wren_tests::unregister(lazy.id());
    assert!(
        s.state(&id).is_none(),
        "the dumped container is still there"
    );
    assert_eq!(s.state(&id2).expect("state")["status"], "running");
    s.ok(&["delete", "--force", &id2]);
    assert_no_cgroup(&id);
    assert_no_cgroup(&id2);
}

/// `--manage-cgroups-mode` on checkpoint and restore: what each mode does
/// to the restored container's cgroup. wren makes the cgroup from the
/// bundle (with its limits) and puts criu in it first, so with soft, full
/// and ignore the restored processes are in the container's own cgroup
/// with the bundle's pids limit; strict makes criu refuse that existing
/// cgroup ("Abort restore of existing cgroups") and nothing is left.
#[test]
fn manage_cgroups_modes_restore_into_the_containers_cgroup() {
    let t = "manage_cgroups_modes_restore_into_the_containers_cgroup";
    let Some(s) = Sid::new(t) else { return };
    let mut results = Vec::new();
    for mode in ["soft", "full", "strict", "ignore"] {
        let id = format!("ck-cg{mode}-{}", std::process::id());
        let mut b = s.bundle(COUNTER);
        b.config["linux"]["resources"]["pids"] = json!({"limit": 55});
        b.save();
        let bundle = s.inner(b.path());
        s.ok(&["run", "--detach", "--bundle", &bundle, &id]);
        wait_count(&b, 2);
        let (_, img_in) = s.image(&format!("img-{mode}"));
        let (ok, out) = s.checkpoint(&id, &img_in, &["--manage-cgroups-mode", mode]);
        assert!(ok, "checkpoint --manage-cgroups-mode {mode}: {out}");
        let (at, _) = count(&b).expect("count");
        let (ok, out) = s.restore(&id, &img_in, &b, &["--manage-cgroups-mode", mode]);
        if mode == "strict" {
            // criu restores the cgroup tree itself and will not reuse the
            // one wren (as runc) made for the container: a clear failure
            // that leaves nothing behind.
            assert!(!ok, "restore --manage-cgroups-mode strict succeeded: {out}");
            assert!(out.contains("existing cgroups"), "{out}");
            assert!(s.state(&id).is_none(), "strict: state left");
            assert_no_cgroup(&id);
            results.push(format!("{mode}: refused"));
            continue;
        }
        assert!(ok, "restore --manage-cgroups-mode {mode}: {out}");
        wait_count(&b, at);
        let pid = s.state(&id).expect("state")["pid"].as_i64().expect("pid");
        let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("cgroup");
        let pids_line = cg
            .lines()
            .find(|l| l.split(':').nth(1) == Some("pids"))
            .unwrap_or_default()
            .to_string();
        assert!(pids_line.ends_with(&format!("/{id}")), "{mode}: {cg}");
        assert_eq!(
            cgroup_value(&id, "pids.max", "pids.max").as_deref(),
            Some("55"),
            "{mode}"
        );
        results.push(format!("{mode}: ok"));
        s.ok(&["delete", "--force", &id]);
        assert_no_cgroup(&id);
    }
    assert_eq!(results.len(), 4, "{results:?}");
}

/// A bind mount from the host and the spec's masked paths come back: the
/// restored process goes on appending to a file on the bind mount (the
/// host sees it grow), and a masked path is still masked.
#[test]
fn bind_mount_and_masked_paths_survive_restore() {
    let t = "bind_mount_and_masked_paths_survive_restore";
    let Some(s) = Sid::new(t) else { return };
    let id = format!("ck-bind-{}", std::process::id());
    let data = s.dir().join("data");
    std::fs::create_dir(&data).expect("mkdir data");
    let mut b = s.bundle(
        "exec </dev/null >/dev/null 2>&1; i=0; while true; do i=$((i+1)); echo $i >>/data/log; \
         cat /proc/kcore >/dev/null 2>&1 && echo open >/data/kcore; sleep 0.1; done",
    );
    b.config["mounts"]
        .as_array_mut()
        .expect("mounts")
        .push(json!({"destination": "/data", "type": "bind",
                     "source": s.inner(&data), "options": ["rbind", "rw"]}));
    b.config["linux"]["maskedPaths"] = json!(["/proc/kcore"]);
    b.save();
    let bundle = s.inner(b.path());
    let lines = || {
        std::fs::read_to_string(data.join("log"))
            .unwrap_or_default()
            .lines()
            .count()
    };
    s.ok(&["run", "--detach", "--bundle", &bundle, &id]);
    assert!(wren_tests::wait_for(10, || lines() > 3));
    let (_, img_in) = s.image("img");
    s.checkpoint_ok(&id, &img_in, &[]);
    let at = lines();
    s.restore_ok(&id, &img_in, &b, &[]);
    assert!(
        wren_tests::wait_for(10, || lines() > at + 3),
        "no new lines on the bind mount after restore ({at})"
    );
    let text = std::fs::read_to_string(data.join("log")).unwrap_or_default();
    let n: Vec<u64> = text.lines().filter_map(|l| l.parse().ok()).collect();
    assert!(n.windows(2).all(|w| w[1] == w[0] + 1), "count broke: {n:?}");
    assert!(
        !data.join("kcore").exists(),
        "/proc/kcore readable: not masked"
    );
    s.ok(&["delete", "--force", &id]);
    assert_no_cgroup(&id);
}

/// A container in its own user namespace (root mapped to an unprivileged
/// range) checkpoints and restores: masked paths and device nodes, bound
/// from the host there, are external mounts.
#[test]
fn user_namespace_container_survives_restore() {
    let t = "user_namespace_container_survives_restore";
    let Some(s) = Sid::new(t) else { return };
    let id = format!("ck-userns-{}", std::process::id());
    let mut b = s.bundle(COUNTER);
    let base = 200_000u32;
    let status = wren_tests::run(
        Command::new("chown")
            .args(["-R", &format!("{base}:{base}")])
            .arg(b.rootfs()),
    )
    .status;
    assert!(status.success());
    b.config["linux"]["namespaces"]
        .as_array_mut()
        .expect("namespaces")
        .push(json!({"type": "user"}));
    b.config["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": base, "size": 65536}]);
    b.config["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": base, "size": 65536}]);
    b.save();
    let bundle = s.inner(b.path());
    s.ok(&["run", "--detach", "--bundle", &bundle, &id]);
    wait_count(&b, 3);
    let (_, img_in) = s.image("img");
    s.checkpoint_ok(&id, &img_in, &[]);
    let (at, _) = count(&b).expect("count");
    s.restore_ok(&id, &img_in, &b, &[]);
    let now = wait_count(&b, at);
    assert!(now < at + 50, "{at} -> {now}");
    let pid = s.state(&id).expect("state")["pid"].as_i64().expect("pid");
    let map = std::fs::read_to_string(format!("/proc/{pid}/uid_map")).expect("uid_map");
    assert!(
        map.split_whitespace().collect::<Vec<_>>() == ["0", &base.to_string(), "65536"],
        "uid_map after restore: {map}"
    );
    s.ok(&["delete", "--force", &id]);
    assert_no_cgroup(&id);
}

/// An image container (overlay rootfs, mounted by the shim) through wrend:
/// checkpoint, restore, and its writes in the overlay's upper dir and its
/// log go on.
#[test]
fn wrend_image_container_checkpoint_restore() {
    use wren_tests::registry::{Compression, Layer, Layout};
    let t = "wrend_image_container_checkpoint_restore";
    let Some(w) = TreeWrend::start(t) else { return };
    let mut layout = Layout::new();
    let base = Layer::busybox_base().finish();
    layout.image(
        "test/ck:1",
        &[(&base, Compression::Gzip)],
        json!({"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"]}),
    );
    let tar = w.dir.path().join("image.tar");
    layout.tar(&tar);
    w.ok(&["import", &w.inner(&tar)]);
    let name = format!("ck-wimg-{}", std::process::id());
    w.ok(&[
        "run",
        "-d",
        "--name",
        &name,
        "test/ck:1",
        "sh",
        "-c",
        "echo before >/marker; i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.1; done",
    ]);
    w.wait_status(&name, "running");
    assert!(wren_tests::wait_for(10, || w.ticks(&name).len() >= 3));
    let img = format!("{}/img", w.inner(w.dir.path()));
    w.ok(&["checkpoint", &name, &img]);
    assert_eq!(w.status(&name), "stopped");
    let at_dump = *w.ticks(&name).last().expect("ticks");
    w.ok(&["restore", &img, &name]);
    assert!(
        wren_tests::wait_for(10, || w
            .ticks(&name)
            .last()
            .is_some_and(|n| *n > at_dump + 3)),
        "no ticks after restore: {:?}",
        w.ticks(&name)
    );
    let ticks = w.ticks(&name);
    assert!(
        ticks.iter().zip(1..).all(|(n, want)| *n == want),
        "did not continue its count: {ticks:?}"
    );
    let out = w.ok(&["exec", &name, "--", "cat", "/marker"]);
    assert_eq!(out.trim(), "before");
    w.ok(&["rm", "-f", &name]);
    assert_no_cgroup(&name);
}

/// A terminal container through wrend: the shim dumps with shell_job (the
/// pty's master is the shim's), restore at Start gets a new master from
/// criu and relays it, so the log goes on from the same count.
#[test]
fn wrend_terminal_container_checkpoint_restore() {
    let t = "wrend_terminal_container_checkpoint_restore";
    let Some(w) = TreeWrend::start(t) else { return };
    let name = format!("ck-wtty-{}", std::process::id());
    let rootfs = w.rootfs();
    // `-t` wants a terminal on wren's stdin.
    let out = wren_tests::pty::run_in_pty(
        &mut w.cmd(&[
            "run", "-d", "-t", "--rootfs", &rootfs, &name, "--", "sh", "-c", TICKER,
        ]),
        24,
        80,
        b"",
        Duration::ZERO,
        Duration::from_secs(20),
    );
    assert!(
        out.status.is_some_and(|s| s.success()),
        "wren run -d -t: {}\n{}",
        out.output,
        w.log()
    );
    w.wait_status(&name, "running");
    assert!(wren_tests::wait_for(10, || w.ticks(&name).len() >= 3));
    let img = format!("{}/img", w.inner(w.dir.path()));
    w.ok(&["checkpoint", &name, &img]);
    let at_dump = *w.ticks(&name).last().expect("ticks");
    w.ok(&["restore", &img, &name]);
    assert!(
        wren_tests::wait_for(10, || w
            .ticks(&name)
            .last()
            .is_some_and(|n| *n > at_dump + 3)),
        "no ticks after restore: {:?}\n{}",
        w.ticks(&name),
        w.log()
    );
    let ticks = w.ticks(&name);
    assert!(
        ticks.iter().zip(1..).all(|(n, want)| *n == want),
        "did not continue its count: {ticks:?}"
    );
    assert!(w.inspect(&name)["terminal"].as_bool().unwrap_or(false));
    w.ok(&["rm", "-f", &name]);
    assert_no_cgroup(&name);
}

/// `wren restore DIR NAME` when NAME does not exist: the checkpoint holds
/// the container's create request and its overlay upper dir, so it comes
/// back under a new name (the old one still there, stopped), under its
/// own name after `rm`, and on another wrend with another root (the image
/// imported there too): each time the count goes on from the dump and the
/// rootfs changes are there. A directory without the request, or without
/// a checkpoint, makes nothing.
#[test]
fn wrend_restore_makes_the_container_under_a_new_name_after_rm_and_elsewhere() {
    use wren_tests::registry::{Compression, Layer, Layout};
    let t = "wrend_restore_makes_the_container_under_a_new_name_after_rm_and_elsewhere";
    let Some(w) = TreeWrend::start(t) else { return };
    let mut layout = Layout::new();
    let base = Layer::busybox_base().finish();
    layout.image(
        "test/ck:1",
        &[(&base, Compression::Gzip)],
        json!({"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"]}),
    );
    let tar = w.dir.path().join("image.tar");
    layout.tar(&tar);
    w.ok(&["import", &w.inner(&tar)]);
    let pid = std::process::id();
    let (a, b, c) = (
        format!("ck-mva-{pid}"),
        format!("ck-mvb-{pid}"),
        format!("ck-mvc-{pid}"),
    );
    // fd 3 stays open on a file of the upper dir: criu checks its size.
    w.ok(&[
        "run",
        "-d",
        "--name",
        &a,
        "test/ck:1",
        "sh",
        "-c",
        "echo before >/marker; exec 3>>/held; i=0; \
         while true; do i=$((i+1)); echo tick $i; echo $i >&3; sleep 0.1; done",
    ]);
    w.wait_status(&a, "running");
    assert!(wren_tests::wait_for(10, || w.ticks(&a).len() >= 3));
    // Changed after creation: a restore under another name keeps it.
    w.ok(&[
        "update",
        "--pids-limit",
        "77",
        "--memory",
        "96m",
        "--restart",
        "unless-stopped",
        &a,
    ]);
    let img = format!("{}/img", w.inner(w.dir.path()));
    w.ok(&["checkpoint", &a, &img]);
    let img_host = w.dir.path().join("img");
    assert!(img_host.join("wren-create.pb").is_file());
    assert!(img_host.join("wren-updates.json").is_file());
    assert!(img_host.join("wren-upper/marker").is_file());
    let at_dump = *w.ticks(&a).last().expect("ticks");
    let goes_on = |w: &TreeWrend, name: &str| {
        assert!(
            wren_tests::wait_for(10, || w.ticks(name).len() >= 3),
            "{name}: no ticks after restore\n{}",
            w.log()
        );
        let ticks = w.ticks(name);
        assert!(
            ticks.iter().zip(at_dump + 1..).all(|(n, want)| *n == want),
            "{name} did not go on from tick {at_dump}: {ticks:?}"
        );
        let out = w.ok(&["exec", name, "--", "cat", "/marker"]);
        assert_eq!(out.trim(), "before");
    };

    // A new name, next to the stopped original.
    w.ok(&["restore", &img, &b]);
    goes_on(&w, &b);
    assert_eq!(w.status(&a), "stopped");
    assert_eq!(w.inspect(&b)["image"], w.inspect(&a)["image"]);
    assert_eq!(w.inspect(&b)["restart_policy"], "unless-stopped");
    let config: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            w.dir
                .path()
                .join("root/lib/containers")
                .join(&b)
                .join("bundle/config.json"),
        )
        .expect("config.json"),
    )
    .expect("json");
    let res = &config["linux"]["resources"];
    assert_eq!(res["pids"]["limit"], 77, "{res}");
    assert_eq!(res["memory"]["limit"], 100663296, "{res}");
    let out = w.ok(&["exec", &b, "--", "cat", "/sys/fs/cgroup/pids/pids.max"]);
    assert_eq!(out.trim(), "77");
    w.ok(&["rm", "-f", &b]);

    // Its own name after rm.
    w.ok(&["rm", &a]);
    w.ok(&["restore", &img, &a]);
    goes_on(&w, &a);
    w.ok(&["rm", "-f", &a]);
    assert_no_cgroup(&a);
    assert_no_cgroup(&b);

    // Another wrend (another root, the same image imported).
    let Some(w2) = TreeWrend::start(t) else {
        return;
    };
    w2.ok(&["import", &w.inner(&tar)]);
    w2.ok(&["restore", &img, &c]);
    goes_on(&w2, &c);
    w2.ok(&["rm", "-f", &c]);
    assert_no_cgroup(&c);

    // Bad input: no create request / no checkpoint: nothing is made.
    std::fs::remove_file(img_host.join("wren-create.pb")).expect("rm wren-create.pb");
    let err = w.fails(&["restore", &img, &c]);
    assert!(err.contains("wren-create.pb"), "{err}");
    let empty = w.dir.path().join("empty");
    std::fs::create_dir_all(&empty).expect("mkdir");
    let err = w.fails(&["restore", &w.inner(&empty), &c]);
    assert!(err.contains("no inventory.img"), "{err}");
    assert!(!w.wren(&["inspect", &c]).status.success(), "{c} was made");
    assert!(
        !w.dir.path().join("root/lib/containers").join(&c).exists(),
        "{c}'s record directory was left"
    );
}

/// A container's own network namespace that holds nothing but `lo` is left
/// out of the dump (the image says so: runc leaves every one out) and
/// restore makes a new one with `lo` up: the container's server on its
/// 127.0.0.1 answers again. One that holds more (an address the container
/// added, having CAP_NET_ADMIN) is dumped by criu and comes back with it.
#[test]
fn plain_network_namespace_is_made_anew_and_a_richer_one_is_dumped() {
    let t = "plain_network_namespace_is_made_anew_and_a_richer_one_is_dumped";
    let Some(s) = Sid::new(t) else { return };
    const HTTPD: &str = "exec </dev/null >/dev/null 2>&1; mkdir -p /www; \
        echo hello >/www/index.html; exec httpd -f -p 127.0.0.1:8080 -h /www";
    let get = |id: &str| s.oci_code(&["exec", id, "wget", "-q", "-O-", "http://127.0.0.1:8080/"]);
    for (name, setup) in [
        ("plain", ""),
        ("rich", "ip addr add 10.200.0.1/32 dev lo; "),
    ] {
        let id = format!("ck-netns-{name}-{}", std::process::id());
        let mut b = s.bundle(&format!("{setup}{HTTPD}"));
        if !setup.is_empty() {
            with_net_admin(&mut b);
        }
        s.ok(&["run", "--detach", "--bundle", &s.inner(b.path()), &id]);
        assert!(
            wren_tests::wait_for(10, || get(&id) == (0, "hello\n".into())),
            "{name}: httpd does not answer: {:?}",
            get(&id)
        );
        let (img, img_in) = s.image(&format!("img-{name}"));
        s.checkpoint_ok(&id, &img_in, &[]);
        let marker = img.join("wren-netns-loopback").exists();
        assert_eq!(marker, name == "plain", "{name}: the image's netns marker");
        if name == "plain" {
            // Bad input: such an image into a bundle without a network
            // namespace is refused by name, and leaves nothing.
            let mut host = s.snapshot(&b);
            host.config["linux"]["namespaces"]
                .as_array_mut()
                .expect("namespaces")
                .retain(|n| n["type"] != "network");
            host.save();
            let (ok, out) = s.restore(&id, &img_in, &host, &[]);
            assert!(!ok, "restored a left-out namespace into none");
            assert!(out.contains("linux.namespaces"), "{out}");
            assert!(s.state(&id).is_none(), "state left: {out}");
            assert_no_cgroup(&id);
        }
        s.restore_ok(&id, &img_in, &b, &[]);
        assert_eq!(get(&id), (0, "hello\n".into()), "{name}: after restore");
        let (_, lo) = s.oci_code(&["exec", &id, "ip", "-o", "addr", "show", "lo"]);
        assert!(lo.contains("127.0.0.1/8"), "{name}: {lo}");
        assert_eq!(lo.contains("10.200.0.1/32"), name == "rich", "{name}: {lo}");
        let (_, link) = s.oci_code(&["exec", &id, "ip", "-o", "link", "show", "lo"]);
        assert!(
            link.contains(",UP"),
            "{name}: lo is down after restore: {link}"
        );
        s.ok(&["delete", "--force", &id]);
        assert_no_cgroup(&id);
    }
}

/// Whether this process may grow a pipe to 4 MiB (what criu's lazy page
/// server does).
fn big_pipe_allowed() -> bool {
    use std::os::fd::AsRawFd;
    let (r, _w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).expect("pipe");
    // SAFETY: F_SETPIPE_SZ on a pipe fd we own; no pointers.
    unsafe { libc::fcntl(r.as_raw_fd(), libc::F_SETPIPE_SZ, 4 << 20) >= 0 }
}

/// Held by each lazy-pages test for its whole run: they change and look at
/// fs.pipe-max-size, a host-wide setting.
static LAZY_TESTS: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// fs.pipe-max-size raised to 4 MiB while any test holds one of these, put
/// back when the last is dropped.
struct PipeMaxSize;

/// (holders, the value to put back).
static PIPE_MAX_SIZE: std::sync::Mutex<(usize, String)> = std::sync::Mutex::new((0, String::new()));

impl PipeMaxSize {
    const PATH: &'static str = "/proc/sys/fs/pipe-max-size";

    fn raise() -> Self {
        let mut g = PIPE_MAX_SIZE.lock().unwrap_or_else(|e| e.into_inner());
        if g.0 == 0 {
            let old = std::fs::read_to_string(Self::PATH).expect("read fs.pipe-max-size");
            std::fs::write(Self::PATH, (4 << 20).to_string()).expect("raise fs.pipe-max-size");
            g.1 = old.trim().to_string();
        }
        g.0 += 1;
        Self
    }
}

impl Drop for PipeMaxSize {
    fn drop(&mut self) {
        let mut g = PIPE_MAX_SIZE.lock().unwrap_or_else(|e| e.into_inner());
        g.0 -= 1;
        if g.0 == 0 {
            let _ = std::fs::write(Self::PATH, &g.1);
        }
    }
}

/// A container on two of wrend's networks (CNI bridges, a published port)
/// checkpointed and restored: the restored httpd is on both networks
/// again at the same addresses, the published port and a peer on the back
/// network reach it by name, and `rm` and `network rm` leave the
/// namespace's links as they were. wrend, the plugins and criu are the
/// sid tree's, in a network namespace the test made.
#[test]
fn wrend_container_on_two_networks_checkpoint_restore() {
    let t = "wrend_container_on_two_networks_checkpoint_restore";
    let Some(w) = TreeWrend::start_with(t, true) else {
        return;
    };
    // A command in wrend's network namespace (the host's tools); its stdout.
    let in_ns = |args: &[&str]| {
        let out = wren_tests::run(
            Command::new("nsenter")
                .args(["--net", "--target"])
                .arg(w.ns_pid().to_string())
                .arg("--")
                .args(args),
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let links = || {
        in_ns(&["ip", "-o", "link"])
            .lines()
            .map(|l| l.split(':').nth(1).unwrap_or_default().trim().to_string())
            .collect::<Vec<_>>()
    };
    let ns = PathBuf::from(format!("/proc/{}/ns/net", w.ns_pid()));
    let get =
        |port: u16| wren_tests::on_netns(Some(ns.clone()), move || wren_tests::http_body(port));
    let before = links();
    w.ok(&["network", "create", "--subnet", "10.77.60.0/24", "front"]);
    w.ok(&["network", "create", "--subnet", "10.77.61.0/24", "back"]);
    let b = Bundle::busybox_in(w.dir.path(), &["true"]);
    std::fs::create_dir_all(b.rootfs().join("www")).unwrap();
    std::fs::write(b.rootfs().join("www/index.html"), "checkpointed\n").unwrap();
    let r = w.inner(&b.rootfs());
    std::mem::forget(b); // removed with the directory
    let web = format!("ck-net-web-{}", std::process::id());
    let peer = format!("ck-net-peer-{}", std::process::id());
    w.ok(&[
        "run",
        "-d",
        "--rootfs",
        &r,
        "--network",
        "front",
        "--network",
        "back",
        "-p",
        "127.0.0.1:18500:80",
        &web,
        "--",
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/www",
    ]);
    w.ok(&[
        "run",
        "-d",
        "--rootfs",
        &r,
        "--network",
        "back",
        &peer,
        "--",
        "sleep",
        "1000",
    ]);
    w.wait_status(&web, "running");
    w.wait_status(&peer, "running");
    assert!(
        wren_tests::wait_for(10, || get(18500) == "checkpointed\n"),
        "{}",
        w.log()
    );
    let addrs = |n: &str| {
        let v = w.inspect(n);
        v["networks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["ip_address"].as_str().unwrap_or_default().to_string())
            .collect::<Vec<_>>()
    };
    let had = addrs(&web);
    assert_eq!(had.len(), 2, "{had:?}");
    let img = format!("{}/img", w.inner(w.dir.path()));
    w.ok(&["checkpoint", &web, &img]);
    assert_eq!(w.status(&web), "stopped");
    w.ok(&["restore", &img, &web]);
    assert_eq!(w.status(&web), "running");
    assert_eq!(addrs(&web), had);
    let ifs = w.ok(&[
        "exec",
        &web,
        "--",
        "sh",
        "-c",
        "ip -o -4 addr | awk '{print $2, $4}'",
    ]);
    for (dev, ip) in ["eth0", "eth1"].iter().zip(&had) {
        assert!(ifs.contains(&format!("{dev} {ip}/24")), "{ifs}");
    }
    // Its loopback too: the namespace made for the restore has `lo` up
    // (it had not, and the container's own 127.0.0.1 timed out).
    assert!(ifs.contains("lo 127.0.0.1/8"), "{ifs}");
    // A page fetched from inside container `n`. (Not `wget -T`: busybox
    // 1.35's static wget crashes with it; `timeout` bounds it instead.)
    let fetch = |n: &str, url: &str| w.ok(&["exec", n, "--", "timeout", "10", "wget", "-qO-", url]);
    assert_eq!(fetch(&web, "http://127.0.0.1/"), "checkpointed\n");
    assert!(
        wren_tests::wait_for(10, || get(18500) == "checkpointed\n"),
        "published port after restore\n{}",
        w.log()
    );
    assert_eq!(fetch(&peer, &format!("http://{web}/")), "checkpointed\n");
    // A container joined to web's network namespace (`--network
    // container:`) is dumped with that namespace external and restored
    // into it again: same namespace, web's httpd on its loopback.
    let side = format!("ck-net-side-{}", std::process::id());
    w.ok(&[
        "run",
        "-d",
        "--rootfs",
        &r,
        "--network",
        &format!("container:{web}"),
        &side,
        "--",
        "sleep",
        "1000",
    ]);
    w.wait_status(&side, "running");
    let netns = |n: &str| w.ok(&["exec", n, "--", "readlink", "/proc/self/ns/net"]);
    let web_ns = netns(&web);
    assert_eq!(netns(&side), web_ns);
    let side_img = format!("{}/side-img", w.inner(w.dir.path()));
    w.ok(&["checkpoint", &side, &side_img]);
    assert_eq!(w.status(&side), "stopped");
    w.ok(&["restore", &side_img, &side]);
    assert_eq!(w.status(&side), "running");
    assert_eq!(netns(&side), web_ns, "restored outside web's namespace");
    assert_eq!(fetch(&side, "http://127.0.0.1/"), "checkpointed\n");
    w.ok(&["rm", "-f", &side]);
    w.ok(&["rm", "-f", &web, &peer]);
    assert_no_cgroup(&web);
    assert_no_cgroup(&side);
    w.ok(&["network", "rm", "front", "back"]);
    assert_eq!(links(), before);
    // No rule of either container is left (the plugins name them).
    let rules = in_ns(&["iptables-save"]);
    assert!(
        !rules.contains(web.as_str()) && !rules.contains(peer.as_str()),
        "{rules}"
    );
}
