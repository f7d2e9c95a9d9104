//! Checkpoint and restore of a container through CRIU (`crate::criu`):
//! what runc does, with the same image layout so either can read the
//! other's images (`descriptors.json` for the init's stdio, external mounts
//! keyed by their destination, masked files by "/dev/null").
//!
//! Checkpoint dumps the init's process tree (or pre-dumps it), leaving it
//! running or not. Restore makes a container from the bundle as create
//! would (state directory, cgroup with its resources), puts criu into the
//! cgroup so the restored tasks land there, runs the prestart and
//! createRuntime hooks on "setup-namespaces", and asks for `rst_sibling`:
//! the restored init is a child of the caller, reaped as any other.
//!
//! Runs in the caller.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Spec};

use super::cleanup::Cleanup;
use super::error::{io_err, sys_err};
use super::plain_netns;
use super::{validate_id, write_pid_file, ConsoleMode, Container, Error, Stdio};
use crate::cgroups::{self, Cgroup, CgroupRoot, V1Controller};
use crate::criu::{self, rpc, CriuError, Fds};
use crate::state::{self, State, Status};
use crate::{console, hooks, spec, sys};

/// The file runc and wren write next to the images: the targets of the
/// init's fds 0, 1 and 2 at dump time.
pub const DESCRIPTORS: &str = "descriptors.json";

/// wren's own file next to the images: the init's stdio fds that were
/// open on files of no mount of the container (the host's /dev/null a
/// shim or `run --detach` gives a process without stdin), as
/// `[[fd, "file[MNT:INO]"], ...]`, criu's external-file keys; restore
/// hands criu the new fd under each key.
pub const EXTERNAL_FILES: &str = "wren-external-files.json";

/// The init's stdio fds open on a path outside its mounts: criu cannot
/// dump them, so they are declared external (`file[mnt_id:inode]`).
fn external_stdio(pid: i32) -> Vec<(i32, String)> {
    let mounts = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap_or_default();
    let ids: std::collections::HashSet<&str> = mounts
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    let mut out = Vec::new();
    for fd in 0..3 {
        let link = format!("/proc/{pid}/fd/{fd}");
        let Ok(target) = std::fs::read_link(&link) else {
            continue;
        };
        if !target.starts_with("/") {
            continue; // pipes, sockets, anon inodes: criu's own business
        }
        let info = std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}")).unwrap_or_default();
        let Some(mnt) = info
            .lines()
            .find_map(|l| l.strip_prefix("mnt_id:"))
            .map(str::trim)
        else {
            continue;
        };
        if ids.contains(mnt) {
            continue;
        }
        let (Ok(mnt), Ok(meta)) = (mnt.parse::<u64>(), std::fs::metadata(&link)) else {
            continue;
        };
        let ino = std::os::unix::fs::MetadataExt::ino(&meta);
        out.push((fd, format!("file[{mnt:x}:{ino:x}]")));
    }
    out
}

/// wren's file of the container's cgroup bind mounts (a v1 or hybrid host
/// without a cgroup namespace: each hierarchy's container directory bound
/// at `/sys/fs/cgroup/<name>`): their mount points, external to the dump;
/// restore binds the new container's directories there.
pub const CGROUP_MOUNTS: &str = "wren-cgroup-mounts.json";

/// Mount points (in the init's mount namespace) of cgroup filesystems
/// bound from a subdirectory: criu finds no root mount for them.
fn cgroup_bind_mounts(pid: i32) -> Vec<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap_or_default();
    crate::mountinfo::parse(&text)
        .into_iter()
        .filter(|m| (m.fstype == "cgroup" || m.fstype == "cgroup2") && m.root != "/")
        .map(|m| m.mount_point.to_string_lossy().into_owned())
        .collect()
}

/// The host directory to bind at a cgroup mount point on restore: the
/// restored container's directory in that hierarchy (named after the
/// mount point's last component), else the restoring process's own (named
/// hierarchies such as name=systemd, which wren does not manage).
fn cgroup_mount_source(cgroup: &Cgroup, mount_point: &str) -> Option<PathBuf> {
    // Pure v2: the one hierarchy is mounted at /sys/fs/cgroup itself.
    if cgroup.layout().is_v2() && Path::new(mount_point) == Path::new("/sys/fs/cgroup") {
        return cgroup.unified_dir();
    }
    let name = Path::new(mount_point)
        .file_name()?
        .to_string_lossy()
        .into_owned();
    let base = Path::new("/sys/fs/cgroup").join(&name);
    if let Some(d) = cgroup.dirs().into_iter().find(|d| d.starts_with(&base)) {
        return Some(d);
    }
    cgroups::host_cgroup_hierarchies()
        .ok()?
        .into_iter()
        .find(|h| h.name == name)
        .map(|h| h.host_path)
}

/// CRIU's cgroup handling (runc's `--manage-cgroups-mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupsMode {
    Soft,
    Full,
    Strict,
    Ignore,
}

impl std::str::FromStr for CgroupsMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "soft" => Ok(Self::Soft),
            "full" => Ok(Self::Full),
            "strict" => Ok(Self::Strict),
            "ignore" => Ok(Self::Ignore),
            _ => Err(format!(
                "invalid manage-cgroups-mode {s:?}: want soft, full, strict or ignore"
            )),
        }
    }
}

/// Options shared by checkpoint and restore (runc's flags).
#[derive(Debug, Default)]
pub struct CriuFlags {
    /// The criu binary (default: `criu` on PATH).
    pub criu: Option<PathBuf>,
    pub image_path: PathBuf,
    /// Where criu writes its log and temporary files (default: image_path).
    pub work_path: Option<PathBuf>,
    pub tcp_established: bool,
    pub ext_unix_sk: bool,
    pub shell_job: bool,
    pub file_locks: bool,
    pub cgroups_mode: Option<CgroupsMode>,
    /// Namespaces (CLONE_NEW* bits) to restore empty instead of dumping.
    pub empty_ns: u32,
    pub lazy_pages: bool,
    /// An fd (in the caller) criu writes a byte to when ready (lazy pages).
    pub status_fd: Option<OwnedFd>,
}

#[derive(Debug, Default)]
pub struct CheckpointOptions {
    pub flags: CriuFlags,
    pub leave_running: bool,
    /// Dump memory only and keep the container running (iterative).
    pub pre_dump: bool,
    /// A previous pre-dump's image directory, relative to image_path.
    pub parent_path: Option<PathBuf>,
    /// Send pages to a page server at ADDRESS:PORT instead of the images.
    pub page_server: Option<(String, i32)>,
    pub auto_dedup: bool,
}

#[derive(Debug)]
pub struct RestoreOptions {
    pub id: String,
    pub bundle: PathBuf,
    pub state_root: PathBuf,
    pub flags: CriuFlags,
    /// The restored init's new stdio (keys `pipe:[...]` of descriptors.json
    /// are mapped onto it, as runc does).
    pub stdio: Stdio,
    pub console: ConsoleMode,
    pub pid_file: Option<PathBuf>,
    /// The systemd cgroup driver: the restored container's cgroup is a
    /// transient unit made with criu in it.
    pub systemd_cgroup: bool,
}

/// What criu's lazy page server needs of the host: it grows a pipe to 4 MiB
/// (its tee pipe) when `criu lazy-pages` connects and, if the kernel says
/// no, fails later with "page-pipe: splice: -1: Bad file descriptor". The
/// kernel allows that only up to fs.pipe-max-size (1 MiB by default) unless
/// the caller has CAP_SYS_RESOURCE. Probed the way criu will meet it: the
/// same resize on a pipe of our own (criu runs with our credentials).
fn lazy_pipe_allowed() -> Result<(), String> {
    const NEED: libc::c_int = 4 << 20;
    let (r, _w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| format!("lazy pages: pipe2: {e}"))?;
    // SAFETY: F_SETPIPE_SZ on a pipe fd we own; no pointers.
    if unsafe { libc::fcntl(r.as_raw_fd(), libc::F_SETPIPE_SZ, NEED) } >= 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    let max = std::fs::read_to_string("/proc/sys/fs/pipe-max-size").unwrap_or_default();
    Err(format!(
        "lazy pages: criu's page server needs a 4 MiB pipe, which this host refuses \
         (F_SETPIPE_SZ: {err}; fs.pipe-max-size is {} bytes and the caller lacks \
         CAP_SYS_RESOURCE): raise fs.pipe-max-size to {NEED}",
        max.trim()
    ))
}

fn criu_err(e: CriuError) -> Error {
    Error::Criu(e)
}

/// The image and work directories, opened (made when `create`).
fn open_dirs(flags: &CriuFlags, create: bool) -> Result<(OwnedFd, OwnedFd, PathBuf), Error> {
    let image = &flags.image_path;
    if create {
        std::fs::create_dir_all(image).map_err(io_err("create image directory", image))?;
    }
    let images = sys::open(image, libc::O_DIRECTORY | libc::O_RDONLY, 0)
        .map_err(io_err("open image directory", image))?;
    let work_path = flags.work_path.clone().unwrap_or_else(|| image.clone());
    std::fs::create_dir_all(&work_path).map_err(io_err("create work directory", &work_path))?;
    let work = sys::open(&work_path, libc::O_DIRECTORY | libc::O_RDONLY, 0)
        .map_err(io_err("open work directory", &work_path))?;
    Ok((images, work, work_path))
}

/// Options both requests carry; fds are ours (see `criu::Fds`).
fn base_opts(flags: &CriuFlags, log: &str, images: &OwnedFd, work: &OwnedFd) -> rpc::Criu_opts {
    let mut o = rpc::Criu_opts::new();
    o.set_images_dir_fd(images.as_raw_fd());
    o.set_work_dir_fd(work.as_raw_fd());
    o.set_log_level(4);
    o.set_log_file(log.into());
    o.set_manage_cgroups(true);
    o.set_notify_scripts(true);
    o.set_shell_job(flags.shell_job);
    o.set_tcp_established(flags.tcp_established);
    o.set_ext_unix_sk(flags.ext_unix_sk);
    o.set_file_locks(flags.file_locks);
    if flags.empty_ns != 0 {
        o.set_empty_ns(flags.empty_ns);
    }
    if flags.lazy_pages {
        o.set_lazy_pages(true);
    }
    if let Some(m) = flags.cgroups_mode {
        o.set_manage_cgroups_mode(match m {
            CgroupsMode::Soft => rpc::Criu_cg_mode::SOFT,
            CgroupsMode::Full => rpc::Criu_cg_mode::FULL,
            CgroupsMode::Strict => rpc::Criu_cg_mode::STRICT,
            CgroupsMode::Ignore => rpc::Criu_cg_mode::IGNORE,
        });
    }
    o
}

fn ext_mount(o: &mut rpc::Criu_opts, key: &str, val: &str) {
    let mut m = rpc::Ext_mount_map::new();
    m.set_key(key.into());
    m.set_val(val.into());
    o.ext_mnt.push(m);
}

fn is_bind(m: &oci_spec::runtime::Mount) -> bool {
    m.typ().as_deref() == Some("bind")
        || m.options()
            .as_deref()
            .unwrap_or(&[])
            .iter()
            .any(|o| o == "bind" || o == "rbind")
}

/// External mounts as runc names them: bind mounts by destination, masked
/// files by "/dev/null", device nodes by their path; `restore` maps each
/// name back to its host source. Only what comes from the host is external
/// at dump: without a user namespace wren mknods the device nodes and masks
/// files with the container's own /dev/null, which criu dumps itself.
fn external_mounts(
    o: &mut rpc::Criu_opts,
    spec: &Spec,
    restore: bool,
    pid: i32,
) -> Result<(), Error> {
    for m in spec.mounts().as_deref().unwrap_or(&[]) {
        if is_bind(m) {
            let dest = m.destination().to_string_lossy();
            let val = if restore {
                m.source()
                    .as_ref()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_else(|| dest.to_string())
            } else {
                dest.to_string()
            };
            ext_mount(o, &dest, &val);
        }
    }
    let userns = spec::namespaces(spec)?
        .iter()
        .any(|n| n.kind == LinuxNamespaceType::User);
    let linux = spec.linux().clone().unwrap_or_default();
    let masked = linux.masked_paths().clone().unwrap_or_default();
    let mut devices: Vec<String> = crate::devices::DEFAULTS
        .iter()
        .map(|d| d.0.to_string())
        .collect();
    devices.extend(
        linux
            .devices()
            .as_deref()
            .unwrap_or(&[])
            .iter()
            .map(|d| d.path().to_string_lossy().into_owned()),
    );
    if restore {
        ext_mount(o, "/dev/null", "/dev/null");
        for d in &devices {
            ext_mount(o, d, d);
        }
    } else if userns {
        // Masked files are /dev/null binds; masked directories are a
        // read-only tmpfs of the container's own, which criu dumps (a
        // /dev/null bound onto a directory fails on restore).
        for p in &masked {
            let inside = format!("/proc/{pid}/root{p}");
            if std::fs::metadata(&inside).is_ok_and(|m| !m.is_dir()) {
                ext_mount(o, p, "/dev/null");
            }
        }
        for d in &devices {
            ext_mount(o, d, d);
        }
    }
    Ok(())
}

/// Namespaces the container joined (a path in the spec) are external to
/// the dump: criu records them under runc's keys and gets them back on
/// restore as inherited fds.
const EXTERNAL_NS: [(LinuxNamespaceType, &str, &str); 2] = [
    (LinuxNamespaceType::Network, "net", plain_netns::NETNS_KEY),
    (LinuxNamespaceType::Pid, "pid", "extRootPidNS"),
];

/// Declares the namespace at `path` (a /proc or bind-mounted nsfs file)
/// external to the dump under `key`: criu records `name[inode]:key`.
fn external_ns(o: &mut rpc::Criu_opts, name: &str, key: &str, path: &Path) -> Result<(), Error> {
    let st = std::fs::metadata(path).map_err(io_err("stat namespace", path))?;
    o.external.push(format!(
        "{name}[{}]:{key}",
        std::os::unix::fs::MetadataExt::ino(&st)
    ));
    Ok(())
}

/// Hands criu `fd` under `key` (an external namespace on restore); the fd
/// lands at the next of criu's extra fd numbers.
fn inherit_ns(o: &mut rpc::Criu_opts, extra: &mut Vec<OwnedFd>, key: &str, fd: OwnedFd) {
    let mut i = rpc::Inherit_fd::new();
    i.set_key(key.into());
    i.set_fd(criu::EXTRA_FD + extra.len() as i32);
    o.inherit_fd.push(i);
    extra.push(fd);
}

impl Container {
    /// Checkpoint the container into `opts.flags.image_path`. Without
    /// `leave_running` (and not a pre-dump) criu kills the processes once
    /// dumped; the caller then deletes the container (as runc does).
    pub fn checkpoint(&self, opts: CheckpointOptions) -> Result<(), Error> {
        self.require(
            "checkpoint",
            "running or paused",
            &[Status::Running, Status::Paused],
        )?;
        let criu_bin = criu::binary(opts.flags.criu.as_deref());
        if opts.pre_dump || opts.flags.lazy_pages {
            let (mem, lazy) = criu::features(&criu_bin, opts.pre_dump, opts.flags.lazy_pages)
                .map_err(criu_err)?;
            if opts.pre_dump && !mem {
                return Err(criu_err(CriuError::Unsupported(
                    "pre-dump needs memory tracking, which this kernel does not offer \
                     (criu: \"Dirty tracking is OFF\"; CONFIG_MEM_SOFT_DIRTY)"
                        .into(),
                )));
            }
            if opts.flags.lazy_pages && !lazy {
                return Err(criu_err(CriuError::Unsupported(
                    "lazy pages need userfaultfd with non-cooperative events, which this \
                     kernel or criu does not offer"
                        .into(),
                )));
            }
            if opts.flags.lazy_pages {
                lazy_pipe_allowed().map_err(|why| criu_err(CriuError::Unsupported(why)))?;
            }
        }
        let (images, work, work_path) = open_dirs(&opts.flags, true)?;
        let log_name = if opts.pre_dump {
            "pre-dump.log"
        } else {
            "dump.log"
        };
        let mut o = base_opts(&opts.flags, log_name, &images, &work);
        o.set_pid(self.state.pid);
        o.set_root(self.state.rootfs.to_string_lossy().into_owned());
        o.set_leave_running(opts.leave_running || opts.pre_dump);
        if opts.auto_dedup {
            o.set_auto_dedup(true);
        }
        if let Some(p) = &opts.parent_path {
            o.set_track_mem(true);
            o.set_parent_img(p.to_string_lossy().into_owned());
        }
        if opts.pre_dump {
            o.set_track_mem(true);
        }
        if let Some((addr, port)) = &opts.page_server {
            let mut ps = rpc::Criu_page_server_info::new();
            ps.set_address(addr.clone());
            ps.set_port(*port);
            o.ps = protobuf::MessageField::some(ps);
        }
        if let Some(cg) = &self.state.cgroup {
            let dir = cg
                .v1_dir(V1Controller::Freezer)
                .or_else(|| cg.unified_dir());
            if let Some(d) = dir {
                o.set_freeze_cgroup(d.to_string_lossy().into_owned());
            }
        }
        external_mounts(&mut o, &self.state.spec, false, self.state.pid)?;
        let ns = spec::namespaces(&self.state.spec)?;
        for (kind, name, key) in EXTERNAL_NS {
            if let Some(path) = ns
                .iter()
                .find(|n| n.kind == kind)
                .and_then(|n| n.path.clone())
            {
                external_ns(&mut o, name, key, &path)?;
            }
        }
        // A plain network namespace of its own is left out (restore makes
        // a new one): see `plain_netns`.
        let marker = opts.flags.image_path.join(plain_netns::NETNS_LOOPBACK);
        let _ = std::fs::remove_file(&marker);
        let empty_net = opts.flags.empty_ns & libc::CLONE_NEWNET as u32 != 0;
        if !opts.pre_dump && !empty_net {
            match plain_netns::at_dump(&self.state.spec, self.state.pid) {
                plain_netns::AtDump::Plain => {
                    let path = PathBuf::from(format!("/proc/{}/ns/net", self.state.pid));
                    external_ns(&mut o, "net", plain_netns::NETNS_KEY, &path)?;
                    std::fs::write(&marker, b"").map_err(io_err("write", &marker))?;
                }
                plain_netns::AtDump::Dumped(why) => log::debug!(
                    "checkpoint {}: criu dumps the network namespace ({why})",
                    self.state.id
                ),
                plain_netns::AtDump::NotOwn => {}
            }
        }
        // A terminal: the pty slave's master is outside the container (the
        // shim, conmon, a console socket's receiver); criu dumps the slave
        // as an orphan and restore gets a new master (orphan-pts-master).
        let terminal = (self.state.spec.process().as_ref())
            .and_then(|p| p.terminal())
            .unwrap_or(false);
        if terminal {
            o.set_orphan_pts_master(true);
        }
        // runc's descriptors.json: where the init's stdio pointed.
        let fds: Vec<String> = (0..3)
            .map(|i| {
                std::fs::read_link(format!("/proc/{}/fd/{i}", self.state.pid))
                    .map(|p| p.to_string_lossy().into_owned())
                    .unwrap_or_default()
            })
            .collect();
        let desc = opts.flags.image_path.join(DESCRIPTORS);
        std::fs::write(&desc, serde_json::to_vec(&fds).unwrap_or_default())
            .map_err(io_err("write", &desc))?;
        let cg_mounts = cgroup_bind_mounts(self.state.pid);
        if !cg_mounts.is_empty() {
            let path = opts.flags.image_path.join(CGROUP_MOUNTS);
            std::fs::write(&path, serde_json::to_vec(&cg_mounts).unwrap_or_default())
                .map_err(io_err("write", &path))?;
            for m in &cg_mounts {
                ext_mount(&mut o, m, m);
            }
        }
        let ext_files = external_stdio(self.state.pid);
        if !ext_files.is_empty() {
            let path = opts.flags.image_path.join(EXTERNAL_FILES);
            std::fs::write(&path, serde_json::to_vec(&ext_files).unwrap_or_default())
                .map_err(io_err("write", &path))?;
            o.external
                .extend(ext_files.iter().map(|(_, key)| key.clone()));
        }

        let mut req = rpc::Criu_req::new();
        req.set_type(if opts.pre_dump {
            rpc::Criu_req_type::PRE_DUMP
        } else {
            rpc::Criu_req_type::DUMP
        });
        req.opts = protobuf::MessageField::some(o);
        let op = if opts.pre_dump { "pre-dump" } else { "dump" };
        // The status fd gets its \0 from us on criu's "status-ready"
        // notification (the page server listens), as runc does with criu
        // 3.15+ (criu's own status_fd option is obsolete there), then is
        // closed so a reader sees the end.
        let CriuFlags { mut status_fd, .. } = opts.flags;
        criu::call(
            &criu_bin,
            op,
            req,
            Fds {
                held: vec![images, work],
                ..Fds::default()
            },
            &work_path.join(log_name),
            &mut |_| Ok(()),
            &mut |n| {
                if n.script == "status-ready" {
                    if let Some(fd) = status_fd.take() {
                        let mut f = std::fs::File::from(fd);
                        std::io::Write::write_all(&mut f, &[0])
                            .map_err(|e| format!("write the status fd: {e}"))?;
                    }
                }
                Ok(())
            },
        )
        .map_err(criu_err)?;
        Ok(())
    }

    /// Restore a container from `opts.flags.image_path` under a new id,
    /// with the bundle's spec. The restored init is a child of the caller.
    /// Nothing is left behind on failure.
    pub fn restore(opts: RestoreOptions) -> Result<Container, Error> {
        validate_id(&opts.id)?;
        let bundle = opts.bundle.canonicalize().map_err(|source| Error::Bundle {
            path: opts.bundle.clone(),
            source,
        })?;
        let spec = spec::load(&bundle)?;
        spec::validate(&spec)?;
        let rootfs = spec::rootfs(&spec, &bundle)?;
        let ns = spec::namespaces(&spec)?;
        let linux = spec.linux().clone().unwrap_or_default();
        let terminal = spec
            .process()
            .as_ref()
            .and_then(|p| p.terminal())
            .unwrap_or(false);
        let cgroot = CgroupRoot::host()?;
        if let Some(res) = linux.resources() {
            cgroups::validate(res, cgroot.layout())?;
        }
        let image = &opts.flags.image_path;
        let inventory = image.join("inventory.img");
        if !inventory.exists() {
            return Err(Error::Io {
                what: "no checkpoint image (inventory.img) in",
                path: image.clone(),
                source: io::Error::from_raw_os_error(libc::ENOENT),
            });
        }
        let descriptors: Vec<String> = match std::fs::read(image.join(DESCRIPTORS)) {
            Ok(d) => serde_json::from_slice(&d).map_err(|e| Error::Io {
                what: "parse",
                path: image.join(DESCRIPTORS),
                source: io::Error::new(io::ErrorKind::InvalidData, e),
            })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(io_err("read", &image.join(DESCRIPTORS))(e)),
        };

        let dir = super::create_state_dir(&opts.state_root, &opts.id)?;
        let mut guard = Cleanup {
            host_mounts: None,
            dir: Some(&dir),
            cgroup: None,
            pidfds: Vec::new(),
        };
        let cgroups_path = linux.cgroups_path().as_deref().and_then(|p| p.to_str());
        let cgroup = if opts.systemd_cgroup {
            Cgroup::new_systemd(&cgroot, cgroups_path, &opts.id)?
        } else {
            Cgroup::new(&cgroot, cgroups_path, &opts.id)?
        };
        guard.cgroup = Some(cgroup.clone());
        let resources = linux.resources().as_ref().map(super::with_default_devices);
        // With the systemd driver the unit is made with criu in it
        // (`Cgroup::place_restorer` below).
        if cgroup.systemd_unit().is_none() {
            cgroup.create()?;
            if let Some(res) = &resources {
                cgroup.apply(res)?;
            }
        }

        // criu wants the root to be a mount point: a recursive bind of the
        // rootfs in the state directory (ours, gone with it).
        let criu_root = dir.join("criu-root");
        std::fs::create_dir(&criu_root).map_err(io_err("mkdir", &criu_root))?;
        let c = |p: &Path| CString::new(p.as_os_str().as_encoded_bytes()).unwrap_or_default();
        sys::mount(
            Some(&c(&rootfs)),
            &c(&criu_root),
            None,
            libc::MS_BIND | libc::MS_REC,
            None,
        )
        .map_err(io_err("bind the rootfs onto", &criu_root))?;
        let unmount = RootMount(criu_root.clone());

        let (images, work, work_path) = open_dirs(&opts.flags, false)?;
        let mut o = base_opts(&opts.flags, "restore.log", &images, &work);
        o.set_root(criu_root.to_string_lossy().into_owned());
        o.set_rst_sibling(true);
        o.set_evasive_devices(true);
        o.set_orphan_pts_master(true);
        external_mounts(&mut o, &spec, true, 0)?;
        let mut extra = Vec::new();
        for (kind, _, key) in EXTERNAL_NS {
            if let Some(path) = ns
                .iter()
                .find(|n| n.kind == kind)
                .and_then(|n| n.path.clone())
            {
                let fd =
                    sys::open(&path, libc::O_RDONLY, 0).map_err(io_err("open namespace", &path))?;
                inherit_ns(&mut o, &mut extra, key, fd);
            }
        }
        if let Some(fd) = plain_netns::for_restore(image, &spec)
            .map_err(io_err("make a network namespace for", image))?
        {
            inherit_ns(&mut o, &mut extra, plain_netns::NETNS_KEY, fd);
        }
        // The init's pipes come back as the new stdio (fds 0-2 of criu).
        for (n, d) in descriptors.iter().enumerate().take(3) {
            if d.contains("pipe:") {
                let mut i = rpc::Inherit_fd::new();
                i.set_key(d.clone());
                i.set_fd(n as i32);
                o.inherit_fd.push(i);
            }
        }
        // So do its external files (a new /dev/null where no stdio is given).
        let ext_files: Vec<(i32, String)> = match std::fs::read(image.join(EXTERNAL_FILES)) {
            Ok(d) => serde_json::from_slice(&d).map_err(|e| Error::Io {
                what: "parse",
                path: image.join(EXTERNAL_FILES),
                source: io::Error::new(io::ErrorKind::InvalidData, e),
            })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(io_err("read", &image.join(EXTERNAL_FILES))(e)),
        };
        for (n, key) in &ext_files {
            if !(0..3).contains(n) {
                return Err(Error::Io {
                    what: "fd out of 0-2 in",
                    path: image.join(EXTERNAL_FILES),
                    source: io::Error::from_raw_os_error(libc::EINVAL),
                });
            }
            let mut i = rpc::Inherit_fd::new();
            i.set_key(key.clone());
            i.set_fd(*n);
            o.inherit_fd.push(i);
        }

        let mut st = State {
            host_mounts_before: None,
            no_new_keyring: false,
            id: opts.id.clone(),
            bundle: bundle.clone(),
            rootfs,
            pid: 0,
            pid_start: 0,
            created: state::rfc3339_now(),
            // SAFETY: geteuid cannot fail.
            owner: unsafe { libc::geteuid() },
            cgroup: Some(cgroup.clone()),
            spec: spec.clone(),
        };
        let creating = st.oci(Status::Creating);
        let hooks_spec = spec.hooks().clone().unwrap_or_default();
        let mut console_master: Option<OwnedFd> = None;
        let mut notify = |n: criu::Notify<'_>| -> Result<(), String> {
            match n.script {
                "setup-namespaces" => {
                    let mut s = creating.clone();
                    s.pid = n.pid;
                    let json = serde_json::to_string(&s).unwrap_or_default();
                    #[allow(deprecated)]
                    hooks::run_all(
                        "prestart",
                        hooks_spec.prestart().as_deref().unwrap_or(&[]),
                        json.as_bytes(),
                    )
                    .map_err(|e| e.to_string())?;
                    hooks::run_all(
                        "createRuntime",
                        hooks_spec.create_runtime().as_deref().unwrap_or(&[]),
                        json.as_bytes(),
                    )
                    .map_err(|e| e.to_string())?;
                }
                "orphan-pts-master" => console_master = n.fd,
                _ => {}
            }
            Ok(())
        };
        let mut started = |pid: u32| -> Result<(), String> {
            // Restored tasks land in criu's cgroup, rooted at ours.
            let extra =
                cgroups::systemd::annotation_properties(spec.annotations().iter().flatten());
            cgroup
                .place_restorer(pid as i32, resources.as_ref(), extra)
                .map_err(|e| e.to_string())
        };
        let cg_mounts: Vec<String> = match std::fs::read(image.join(CGROUP_MOUNTS)) {
            Ok(d) => serde_json::from_slice(&d).map_err(|e| Error::Io {
                what: "parse",
                path: image.join(CGROUP_MOUNTS),
                source: io::Error::new(io::ErrorKind::InvalidData, e),
            })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(io_err("read", &image.join(CGROUP_MOUNTS))(e)),
        };
        for m in &cg_mounts {
            let Some(src) = cgroup_mount_source(&cgroup, m) else {
                return Err(Error::Io {
                    what: "no cgroup hierarchy here for the checkpoint's cgroup mount",
                    path: PathBuf::from(m),
                    source: io::Error::from_raw_os_error(libc::ENOENT),
                });
            };
            ext_mount(&mut o, m, &src.to_string_lossy());
        }
        if cgroup.unified_dir().is_some() {
            let mut r = rpc::Cgroup_root::new();
            r.set_path(format!("/{}", cgroup.path().trim_start_matches('/')));
            o.cg_root.push(r);
        }
        let mut req = rpc::Criu_req::new();
        req.set_type(rpc::Criu_req_type::RESTORE);
        req.opts = protobuf::MessageField::some(o);
        let Stdio {
            stdin,
            stdout,
            stderr,
        } = opts.stdio;
        let mut stdio = [stdin, stdout, stderr];
        for (n, _) in &ext_files {
            let slot = &mut stdio[*n as usize];
            if slot.is_none() {
                let null = Path::new("/dev/null");
                *slot = Some(sys::open(null, libc::O_RDWR, 0).map_err(io_err("open", null))?);
            }
        }
        let CriuFlags {
            status_fd, criu, ..
        } = opts.flags;
        let resp = criu::call(
            &criu::binary(criu.as_deref()),
            "restore",
            req,
            Fds {
                stdio,
                held: [Some(images), Some(work), status_fd]
                    .into_iter()
                    .flatten()
                    .collect(),
                extra,
            },
            &work_path.join("restore.log"),
            &mut started,
            &mut notify,
        );
        // The restored tasks (if any) hold the mounts they need.
        drop(unmount);
        let _ = std::fs::remove_dir(&criu_root);
        let resp = resp.map_err(criu_err)?;
        let pid = resp.restore.pid();
        let pidfd = sys::pidfd_open(pid).map_err(sys_err("pidfd_open"))?;
        guard
            .pidfds
            .push(pidfd.try_clone().map_err(sys_err("dup pidfd"))?);
        st.pid = pid;
        st.pid_start = state::proc_stat(pid).map_or(0, |s| s.1);
        let mut console = console_master;
        if terminal {
            if let (ConsoleMode::Socket(path), Some(master)) = (&opts.console, &console) {
                console::send_to_socket(path, master.as_fd())?;
                console = None;
            }
        }
        st.save(&dir).map_err(io_err("write state", &dir))?;
        if let Some(pid_file) = &opts.pid_file {
            write_pid_file(pid_file, pid)?;
        }
        guard.disarm();
        Ok(Container {
            state: st,
            dir,
            pidfd: Some(pidfd),
            console,
            seccomp: None,
        })
    }
}

/// Detaches the rootfs bind made for criu.
struct RootMount(PathBuf);

impl Drop for RootMount {
    fn drop(&mut self) {
        if let Err(e) = sys::umount(&self.0, libc::MNT_DETACH) {
            log::warn!("umount {}: {e}", self.0.display());
        }
    }
}
