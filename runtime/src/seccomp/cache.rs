//! The compiled seccomp filter cache: compile a profile once, load it many
//! times.
//!
//! Runs in the **caller** only (the shim daemon, `wren-oci`), never in the
//! container init, which still just loads the program it is sent.
//! libseccomp takes ~10 ms to build containerd's default profile; a lookup
//! here costs tens of microseconds.
//!
//! # Key
//!
//! A SHA-256 over everything that decides the compiled output:
//! - the profile: `linux.seccomp` as JSON, without `listenerPath` and
//!   `listenerMetadata` (they do not reach the BPF; they are copied from the
//!   profile onto every program this module returns);
//! - wren's own build: `(dev, ino, size, mtime, ctime)` of `/proc/self/exe`,
//!   so a rebuilt or upgraded binary (whose `compile` may differ) never uses
//!   another build's output. Different wren binaries (shim, `wren-oci`) do not
//!   share entries; correctness over hit rate;
//! - libseccomp's version and the native architecture;
//! - the kernel, by its boot id: what `compile` and libseccomp's API-level
//!   probe learn from the kernel (which actions `SECCOMP_GET_ACTION_AVAIL`
//!   knows, which filter flags it takes) cannot change while it runs. A
//!   process that is itself under a seccomp filter may get other answers, so
//!   there the answers themselves (and libseccomp's API level) are hashed too.
//!
//! The environment part is read once per process: on a hit, a fresh shim
//! asks the kernel nothing but one `statx`, one read and one `prctl`, and
//! never calls libseccomp. When any of it cannot be read, nothing is cached
//! and every call compiles.
//!
//! # Two levels
//!
//! 1. [`MemoryCache`]: process-wide, the last [`MEMORY_ENTRIES`] programs
//!    (least recently used goes), `Arc`'d. The shim daemon serves a pod's
//!    containers and all their execs from it.
//! 2. [`DiskCache`]: `<state_root>/@seccomp-cache/<hex key>`, for later shims
//!    and `wren-oci` runs. The state root is normally tmpfs. `@` is not
//!    allowed in container ids, so the directory never clashes with a
//!    container's state directory.
//!
//! # On-disk entries
//!
//! ```text
//! 0       8   magic "WRENSECC"
//! 8       4   format version (u32 LE) = 1
//! 12      32  the full key digest
//! 44      4   seccomp(2) flags (u32 LE)
//! 48      4   uses SCMP_ACT_NOTIFY (u32 LE, 0 or 1)
//! 52      4   instruction count n (u32 LE, 1..=4096)
//! 56      8n  the program: native `struct sock_filter`s, as the kernel reads them
//! 56+8n   32  SHA-256 of bytes 0..56+8n
//! ```
//!
//! Trust: the directory must be ours (owner = effective uid) and mode 0700,
//! else the disk level is not used at all. An entry is used only if it is a
//! regular file we own with mode 0600, one link, of a possible size, and its
//! checksum, magic, version, key and count all agree; anything else is
//! removed (and rebuilt by the caller), never loaded. All access is relative
//! to the opened directory, with `O_NOFOLLOW`.
//!
//! Writes: a fresh temp file (`O_EXCL`, 0600) is filled and renamed over the
//! entry's name, so a concurrent reader sees the old entry, the new one, or
//! none — never half of one. After a write the directory is held to
//! [`DiskCache::max_bytes`] (default [`DEFAULT_MAX_BYTES`]): oldest entries
//! (by mtime) go first, the new entry always stays; temp files left by a
//! crashed writer are removed after a minute.
//!
//! Any cache failure is logged and falls back to compiling: the cache can
//! make a create slower, never fail it.

use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use nix::fcntl::{openat, renameat, OFlag};
use nix::sys::stat::{fchmod, fstat, fstatat, FileStat, Mode, SFlag};
use nix::unistd::{unlinkat, UnlinkatFlags};
use oci_spec::runtime::{LinuxSeccomp, LinuxSeccompAction};
use sha2::{Digest, Sha256};

use super::{compile, decode, SeccompError, SeccompProgram, INSN_SIZE, MAX_INSNS};
use crate::sys::seccomp as sys;

/// Name of the cache directory under a state root.
pub const DIR_NAME: &str = "@seccomp-cache";
/// Default bound of the disk cache's total size (~200 default profiles).
pub const DEFAULT_MAX_BYTES: u64 = 1 << 20;
/// Programs kept by the process-wide memory cache.
pub const MEMORY_ENTRIES: usize = 16;

const MAGIC: &[u8; 8] = b"WRENSECC";
// 2: programs are compiled as a binary tree (SCMP_FLTATR_CTL_OPTIMIZE = 2);
// a version-1 entry (a linear program) is never reused.
const FORMAT_VERSION: u32 = 2;
const HEADER_LEN: usize = 56;
const SUM_LEN: usize = 32;
const MAX_ENTRY_LEN: usize = HEADER_LEN + MAX_INSNS * INSN_SIZE + SUM_LEN;
/// Temp files older than this are leftovers of a crashed writer.
const STALE_TEMP_SECS: i64 = 60;
const TEMP_PREFIX: &str = ".tmp-";

/// The cache directory for a runtime state root.
pub fn dir_for(state_root: &Path) -> PathBuf {
    state_root.join(DIR_NAME)
}

/// Errors of the cache itself. They are logged, never returned to a
/// create or exec: the caller compiles instead.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// Making or opening the cache directory.
    #[error("open seccomp cache directory {path}")]
    OpenDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The directory is someone else's or too open: not used.
    #[error("seccomp cache directory {path} has owner {uid} and mode {mode:o}, want {want_uid} and 700: not used")]
    DirNotOurs {
        path: PathBuf,
        uid: u32,
        mode: u32,
        want_uid: u32,
    },
    /// Reading, writing, renaming or listing entries.
    #[error("{op} seccomp cache entry {path}")]
    Entry {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// An entry failed a check; it has been removed.
    #[error("seccomp cache entry {path}: {reason}, removed")]
    BadEntry { path: PathBuf, reason: &'static str },
}

/// The cache key: SHA-256 of the profile and its environment (module doc).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct CacheKey([u8; 32]);

impl CacheKey {
    /// The key of `seccomp` in this process's environment, or `None` when
    /// the environment cannot be established (then nothing is cached).
    pub fn new(seccomp: &LinuxSeccomp) -> Option<CacheKey> {
        let mut hasher = HashWriter(environment()?.clone());
        hasher.0.update(b"profile\n");
        // Straight into the hasher: no copy of the profile, no buffer.
        // Serializing plain data cannot fail.
        serde_json::to_writer(&mut hasher, &KeyView::of(seccomp)).ok()?;
        Some(CacheKey(hasher.0.finalize().into()))
    }

    /// The digest in lower-case hex: the entry's file name.
    pub fn hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The raw digest.
    pub fn digest(&self) -> &[u8; 32] {
        &self.0
    }
}

/// What of a profile reaches the BPF: every field of `linux.seccomp` but
/// `listenerPath` and `listenerMetadata`, borrowed. A unit test checks it
/// names every other field oci-spec knows, so a field added by a newer
/// oci-spec cannot be left out of the key unnoticed.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct KeyView<'a> {
    default_action: LinuxSeccompAction,
    default_errno_ret: Option<u32>,
    architectures: &'a Option<Vec<oci_spec::runtime::Arch>>,
    flags: &'a Option<Vec<oci_spec::runtime::LinuxSeccompFilterFlag>>,
    syscalls: &'a Option<Vec<oci_spec::runtime::LinuxSyscall>>,
}

impl<'a> KeyView<'a> {
    fn of(s: &'a LinuxSeccomp) -> KeyView<'a> {
        KeyView {
            default_action: s.default_action(),
            default_errno_ret: s.default_errno_ret(),
            architectures: s.architectures(),
            flags: s.flags(),
            syscalls: s.syscalls(),
        }
    }
}

/// Feeds what serde writes into the hasher.
struct HashWriter(Sha256);

impl Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The hasher state after the environment part of every key, probed once.
fn environment() -> Option<&'static Sha256> {
    static ENV: OnceLock<Option<Sha256>> = OnceLock::new();
    ENV.get_or_init(|| match probe_environment() {
        Ok(h) => Some(h),
        Err(e) => {
            log::debug!("seccomp cache off: {e}");
            None
        }
    })
    .as_ref()
}

fn probe_environment() -> io::Result<Sha256> {
    let mut h = Sha256::new();
    h.update(format!("wren seccomp filter cache key v{FORMAT_VERSION}\n"));
    let exe = std::fs::metadata("/proc/self/exe")?;
    h.update(format!(
        "exe {} {} {} {}.{} {}.{}\n",
        exe.dev(),
        exe.ino(),
        exe.size(),
        exe.mtime(),
        exe.mtime_nsec(),
        exe.ctime(),
        exe.ctime_nsec()
    ));
    let v = libseccomp::ScmpVersion::current().map_err(io::Error::other)?;
    h.update(format!(
        "libseccomp {}.{}.{} native {:?}\n",
        v.major,
        v.minor,
        v.micro,
        libseccomp::ScmpArch::native()
    ));
    // What compile() and libseccomp's API-level probe would learn from the
    // kernel is a property of the running kernel, fixed for as long as it
    // runs: the boot id names it (a new one every boot). Only a process
    // that is itself under a seccomp filter can get other answers (its
    // filter may refuse the probes), so there the answers are hashed.
    let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id")?;
    h.update(format!("boot {}\n", boot_id.trim_end()));
    // SAFETY: prctl(PR_GET_SECCOMP) takes no pointers.
    let mode = unsafe { libc::prctl(libc::PR_GET_SECCOMP) };
    if mode != 0 {
        h.update(format!("filtered {mode}\n"));
        probe_kernel(&mut h)?;
    }
    Ok(h)
}

/// The kernel's answers to every probe `compile` and libseccomp can make:
/// for a process whose own seccomp filter may change them.
fn probe_kernel(h: &mut Sha256) -> io::Result<()> {
    h.update(format!("libseccomp api {}\n", libseccomp::get_api()));
    // Every action compile() may ask SECCOMP_GET_ACTION_AVAIL about.
    for action in [
        LinuxSeccompAction::ScmpActKill,
        LinuxSeccompAction::ScmpActKillThread,
        LinuxSeccompAction::ScmpActKillProcess,
        LinuxSeccompAction::ScmpActTrap,
        LinuxSeccompAction::ScmpActErrno,
        LinuxSeccompAction::ScmpActTrace,
        LinuxSeccompAction::ScmpActNotify,
        LinuxSeccompAction::ScmpActLog,
        LinuxSeccompAction::ScmpActAllow,
    ] {
        let ret = action.as_u32(None) & !0xffff;
        h.update(format!("action {ret:#x} {}\n", sys::action_available(ret)?));
    }
    // Every filter flag compile() may set, with the companion it is probed with.
    let listener = sys::listener_flag();
    for flags in [
        libc::SECCOMP_FILTER_FLAG_LOG as u32,
        libc::SECCOMP_FILTER_FLAG_TSYNC as u32,
        libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW as u32,
        listener,
        libc::SECCOMP_FILTER_FLAG_TSYNC_ESRCH as u32,
        libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV as u32 | listener,
        libc::SECCOMP_FILTER_FLAG_TSYNC as u32
            | listener
            | libc::SECCOMP_FILTER_FLAG_TSYNC_ESRCH as u32,
    ] {
        h.update(format!(
            "flags {flags:#x} {}\n",
            sys::filter_flags_supported(flags)?
        ));
    }
    Ok(())
}

/// Where a program came from.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Source {
    /// The process-wide memory cache.
    Memory,
    /// An entry of the disk cache, checked.
    Disk,
    /// libseccomp, just now (then stored in both levels).
    Compiled,
}

/// A program and where it came from.
#[derive(Debug)]
pub struct Cached {
    pub program: SeccompProgram,
    pub source: Source,
}

/// Compiles `seccomp` through the given cache levels: memory, then disk,
/// then [`compile`], storing a fresh compile in both. Errors are those of
/// `compile`; cache failures only fall back to compiling.
pub fn compile_with(
    seccomp: &LinuxSeccomp,
    memory: Option<&MemoryCache>,
    disk: Option<&DiskCache>,
) -> Result<Cached, SeccompError> {
    let Some(key) = CacheKey::new(seccomp) else {
        return Ok(Cached {
            program: compile(seccomp)?,
            source: Source::Compiled,
        });
    };
    let finish = |bare: &SeccompProgram, source| Cached {
        program: SeccompProgram {
            listener_path: seccomp.listener_path().clone(),
            listener_metadata: seccomp.listener_metadata().clone(),
            ..bare.clone()
        },
        source,
    };
    if let Some(found) = memory.and_then(|m| m.get(&key)) {
        return Ok(finish(&found, Source::Memory));
    }
    if let Some(disk) = disk {
        match disk.get(&key) {
            Ok(Some(bare)) => {
                let bare = Arc::new(bare);
                if let Some(m) = memory {
                    m.insert(key, Arc::clone(&bare));
                }
                return Ok(finish(&bare, Source::Disk));
            }
            Ok(None) => {}
            Err(e) => log::warn!("{}", chain(&e)),
        }
    }
    let program = compile(seccomp)?;
    let bare = Arc::new(SeccompProgram {
        listener_path: None,
        listener_metadata: None,
        ..program.clone()
    });
    if let Some(disk) = disk {
        if let Err(e) = disk.put(&key, &bare) {
            log::warn!("{}", chain(&e));
        }
    }
    if let Some(m) = memory {
        m.insert(key, bare);
    }
    Ok(Cached {
        program,
        source: Source::Compiled,
    })
}

/// "error: cause: cause", for one log line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        text.push_str(": ");
        text.push_str(&s.to_string());
        cur = s.source();
    }
    text
}

/// A small process-wide cache of compiled programs (least recently used
/// goes first). Programs are kept without their listener path/metadata.
pub struct MemoryCache {
    entries: Mutex<Vec<(CacheKey, Arc<SeccompProgram>)>>,
    capacity: usize,
}

impl MemoryCache {
    /// An empty cache of at most `capacity` programs.
    pub const fn new(capacity: usize) -> MemoryCache {
        MemoryCache {
            entries: Mutex::new(Vec::new()),
            capacity,
        }
    }

    /// The cache shared by every create and exec of this process.
    pub fn global() -> &'static MemoryCache {
        static GLOBAL: MemoryCache = MemoryCache::new(MEMORY_ENTRIES);
        &GLOBAL
    }

    /// The program stored under `key`, now the most recently used.
    pub fn get(&self, key: &CacheKey) -> Option<Arc<SeccompProgram>> {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let at = entries.iter().position(|(k, _)| k == key)?;
        let entry = entries.remove(at);
        let program = Arc::clone(&entry.1);
        entries.push(entry);
        Some(program)
    }

    /// Stores `program` under `key`, dropping the least recently used
    /// program when full.
    pub fn insert(&self, key: CacheKey, program: Arc<SeccompProgram>) {
        if self.capacity == 0 {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.retain(|(k, _)| *k != key);
        if entries.len() >= self.capacity {
            entries.remove(0);
        }
        entries.push((key, program));
    }

    /// Number of programs held.
    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether no program is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The on-disk level: one file per key in a root-only directory.
#[derive(Clone, Debug)]
pub struct DiskCache {
    dir: PathBuf,
    max_bytes: u64,
}

impl DiskCache {
    /// The cache in `dir` (normally [`dir_for`] the state root), bounded to
    /// [`DEFAULT_MAX_BYTES`].
    pub fn new(dir: impl Into<PathBuf>) -> DiskCache {
        DiskCache::with_max_bytes(dir, DEFAULT_MAX_BYTES)
    }

    /// The cache in `dir`, bounded to `max_bytes` in total.
    pub fn with_max_bytes(dir: impl Into<PathBuf>, max_bytes: u64) -> DiskCache {
        DiskCache {
            dir: dir.into(),
            max_bytes,
        }
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The size bound.
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// Where the entry of `key` lives.
    pub fn entry_path(&self, key: &CacheKey) -> PathBuf {
        self.dir.join(key.hex())
    }

    /// Makes (0700) and opens the directory; refuses one that is not ours
    /// and private. `Ok(None)` when its parent does not exist (the state
    /// root is made by the first create).
    fn open_dir(&self, create: bool) -> Result<Option<OwnedFd>, CacheError> {
        let dir_err = |source| CacheError::OpenDir {
            path: self.dir.clone(),
            source,
        };
        let mut made = false;
        if create {
            match std::fs::DirBuilder::new().mode(0o700).create(&self.dir) {
                Ok(()) => made = true,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(dir_err(e)),
            }
        }
        let fd = match nix::fcntl::open(
            &self.dir,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(nix::Error::ENOENT) => return Ok(None),
            Err(e) => return Err(dir_err(e.into())),
        };
        if made {
            // The umask may have taken bits from 0700; put exactly 0700.
            fchmod(&fd, Mode::S_IRWXU).map_err(|e| dir_err(e.into()))?;
        }
        let st = fstat(&fd).map_err(|e| dir_err(e.into()))?;
        let want_uid = nix::unistd::geteuid().as_raw();
        if st.st_uid != want_uid || st.st_mode & 0o7777 != 0o700 {
            return Err(CacheError::DirNotOurs {
                path: self.dir.clone(),
                uid: st.st_uid,
                mode: st.st_mode & 0o7777,
                want_uid,
            });
        }
        Ok(Some(fd))
    }

    /// The checked program stored under `key` (without listener fields).
    /// `Ok(None)`: no entry (or no directory). `Err(BadEntry)`: the entry
    /// failed a check and was removed.
    pub fn get(&self, key: &CacheKey) -> Result<Option<SeccompProgram>, CacheError> {
        let Some(dir) = self.open_dir(false)? else {
            return Ok(None);
        };
        let name = key.hex();
        let path = self.dir.join(&name);
        let io_err = |op, e: nix::Error| CacheError::Entry {
            op,
            path: path.clone(),
            source: e.into(),
        };
        let fd = match openat(
            &dir,
            name.as_str(),
            OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(nix::Error::ENOENT) => return Ok(None),
            // A symlink (ELOOP) or anything else odd: remove it.
            Err(nix::Error::ELOOP) => return Err(self.reject(&dir, &name, "a symlink")),
            Err(e) => return Err(io_err("open", e)),
        };
        let st = fstat(&fd).map_err(|e| io_err("stat", e))?;
        if let Some(reason) = check_entry_stat(&st) {
            return Err(self.reject(&dir, &name, reason));
        }
        let mut bytes = Vec::with_capacity(st.st_size as usize);
        std::fs::File::from(fd)
            .take(MAX_ENTRY_LEN as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(|source| CacheError::Entry {
                op: "read",
                path: path.clone(),
                source,
            })?;
        match decode_entry(&bytes, key) {
            Ok(program) => Ok(Some(program)),
            Err(reason) => Err(self.reject(&dir, &name, reason)),
        }
    }

    /// Removes the entry `name` and says why.
    fn reject(&self, dir: &OwnedFd, name: &str, reason: &'static str) -> CacheError {
        let _ = unlinkat(dir, name, UnlinkatFlags::NoRemoveDir);
        CacheError::BadEntry {
            path: self.dir.join(name),
            reason,
        }
    }

    /// Stores `program` under `key` atomically, then holds the directory to
    /// its size bound.
    pub fn put(&self, key: &CacheKey, program: &SeccompProgram) -> Result<(), CacheError> {
        let Some(dir) = self.open_dir(true)? else {
            return Ok(());
        };
        let name = key.hex();
        let bytes = encode_entry(key, program);
        let (tmp, fd) = self.create_temp(&dir)?;
        let written = (|| {
            fchmod(&fd, Mode::S_IRUSR | Mode::S_IWUSR)?;
            std::fs::File::from(fd).write_all(&bytes)?;
            renameat(&dir, tmp.as_str(), &dir, name.as_str())?;
            Ok::<(), io::Error>(())
        })();
        if let Err(source) = written {
            let _ = unlinkat(&dir, tmp.as_str(), UnlinkatFlags::NoRemoveDir);
            return Err(CacheError::Entry {
                op: "write",
                path: self.dir.join(&name),
                source,
            });
        }
        self.evict(&dir, &name)
    }

    fn create_temp(&self, dir: &OwnedFd) -> Result<(String, OwnedFd), CacheError> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        loop {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let tmp = format!("{TEMP_PREFIX}{}-{n}", std::process::id());
            match openat(
                dir,
                tmp.as_str(),
                OFlag::O_WRONLY
                    | OFlag::O_CREAT
                    | OFlag::O_EXCL
                    | OFlag::O_NOFOLLOW
                    | OFlag::O_CLOEXEC,
                Mode::S_IRUSR | Mode::S_IWUSR,
            ) {
                Ok(fd) => return Ok((tmp, fd)),
                // A leftover of an earlier process with our pid.
                Err(nix::Error::EEXIST) => continue,
                Err(e) => {
                    return Err(CacheError::Entry {
                        op: "create",
                        path: self.dir.join(tmp),
                        source: e.into(),
                    })
                }
            }
        }
    }

    /// Removes stale temp files, then the oldest entries until the total
    /// size is within the bound. `keep` (the entry just written) stays.
    fn evict(&self, dir: &OwnedFd, keep: &str) -> Result<(), CacheError> {
        let list_err = |e: nix::Error| CacheError::Entry {
            op: "list",
            path: self.dir.clone(),
            source: e.into(),
        };
        let dup = dir.try_clone().map_err(|source| CacheError::Entry {
            op: "list",
            path: self.dir.clone(),
            source,
        })?;
        let mut listing = nix::dir::Dir::from_fd(dup).map_err(list_err)?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let mut entries = Vec::new();
        let mut total = 0u64;
        for item in listing.iter() {
            let Ok(item) = item else { continue };
            let Ok(name) = item.file_name().to_str() else {
                continue;
            };
            let is_temp = name.starts_with(TEMP_PREFIX);
            if !is_temp && !is_entry_name(name) {
                continue;
            }
            let Ok(st) = fstatat(dir, name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW) else {
                continue;
            };
            if is_temp {
                if now - st.st_mtime > STALE_TEMP_SECS {
                    let _ = unlinkat(dir, name, UnlinkatFlags::NoRemoveDir);
                }
                continue;
            }
            total += st.st_size as u64;
            if name != keep {
                entries.push((st.st_mtime, st.st_mtime_nsec, name.to_owned(), st.st_size));
            }
        }
        entries.sort();
        for (_, _, name, size) in entries {
            if total <= self.max_bytes {
                break;
            }
            match unlinkat(dir, name.as_str(), UnlinkatFlags::NoRemoveDir) {
                Ok(()) | Err(nix::Error::ENOENT) => total -= size as u64,
                Err(e) => {
                    return Err(CacheError::Entry {
                        op: "evict",
                        path: self.dir.join(name),
                        source: e.into(),
                    })
                }
            }
        }
        Ok(())
    }
}

/// 64 lower-case hex digits: the name of an entry.
fn is_entry_name(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Why an entry's inode may not be trusted, if it may not.
fn check_entry_stat(st: &FileStat) -> Option<&'static str> {
    if SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) != SFlag::S_IFREG {
        return Some("not a regular file");
    }
    if st.st_uid != nix::unistd::geteuid().as_raw() {
        return Some("owned by another user");
    }
    if st.st_mode & 0o7777 != 0o600 {
        return Some("mode is not 0600");
    }
    // 0 is an entry a concurrent `put` renamed over after we opened it:
    // its bytes are still that whole entry. More than 1 is a hard link
    // from elsewhere.
    if st.st_nlink > 1 {
        return Some("has other links");
    }
    let possible = (HEADER_LEN + INSN_SIZE + SUM_LEN) as i64..=MAX_ENTRY_LEN as i64;
    if !possible.contains(&st.st_size) {
        return Some("impossible size");
    }
    None
}

/// The bytes of an entry (format in the module doc).
pub(super) fn encode_entry(key: &CacheKey, program: &SeccompProgram) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + program.insns.len() * INSN_SIZE + SUM_LEN);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&key.0);
    out.extend_from_slice(&program.flags.to_le_bytes());
    out.extend_from_slice(&u32::from(program.notify).to_le_bytes());
    out.extend_from_slice(&(program.insns.len() as u32).to_le_bytes());
    out.extend_from_slice(&program.bpf());
    let sum: [u8; 32] = Sha256::digest(&out).into();
    out.extend_from_slice(&sum);
    out
}

/// Checks and decodes an entry for `key`; the error says what was wrong.
pub(super) fn decode_entry(bytes: &[u8], key: &CacheKey) -> Result<SeccompProgram, &'static str> {
    if bytes.len() < HEADER_LEN + INSN_SIZE + SUM_LEN || bytes.len() > MAX_ENTRY_LEN {
        return Err("impossible size");
    }
    let (body, sum) = bytes.split_at(bytes.len() - SUM_LEN);
    if Sha256::digest(body).as_slice() != sum {
        return Err("checksum mismatch");
    }
    let u32_at =
        |at: usize| u32::from_le_bytes([body[at], body[at + 1], body[at + 2], body[at + 3]]);
    if &body[..8] != MAGIC {
        return Err("bad magic");
    }
    if u32_at(8) != FORMAT_VERSION {
        return Err("other format version");
    }
    if body[12..44] != key.0 {
        return Err("written for another key");
    }
    let flags = u32_at(44);
    let notify = match u32_at(48) {
        0 => false,
        1 => true,
        _ => return Err("bad notify field"),
    };
    let count = u32_at(52) as usize;
    let insns = &body[HEADER_LEN..];
    if count * INSN_SIZE != insns.len() {
        return Err("instruction count disagrees with size");
    }
    let insns = decode(insns).map_err(|_| "not a BPF program")?;
    Ok(SeccompProgram {
        insns: insns.into(),
        flags,
        notify,
        listener_path: None,
        listener_metadata: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::os::unix::fs::PermissionsExt;

    fn profile(v: serde_json::Value) -> LinuxSeccomp {
        super::super::from_json(&v).expect("valid profile")
    }

    fn small() -> LinuxSeccomp {
        profile(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "rmdir"], "action": "SCMP_ACT_ERRNO"}]
        }))
    }

    fn key(p: &LinuxSeccomp) -> CacheKey {
        CacheKey::new(p).expect("environment probed")
    }

    /// A private cache directory in a temp dir (0700, ours).
    fn disk(max: u64) -> (tempfile::TempDir, DiskCache) {
        let tmp = tempfile::tempdir().unwrap();
        let cache = DiskCache::with_max_bytes(dir_for(tmp.path()), max);
        (tmp, cache)
    }

    /// The key hashes every field of `linux.seccomp` that oci-spec knows,
    /// except the two that never reach the BPF: a field a newer oci-spec
    /// adds fails here until [`KeyView`] takes it (or says why not).
    #[test]
    fn key_view_covers_every_field_but_the_listener() {
        let full = profile(json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "defaultErrnoRet": 1,
            "architectures": ["SCMP_ARCH_X86_64"],
            "flags": ["SECCOMP_FILTER_FLAG_LOG"],
            "listenerPath": "/run/agent.sock",
            "listenerMetadata": "m",
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ALLOW"}]
        }));
        let fields = |v: serde_json::Value| -> Vec<String> {
            let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
            k.sort();
            k
        };
        let mut all = fields(serde_json::to_value(&full).unwrap());
        all.retain(|f| f != "listenerPath" && f != "listenerMetadata");
        assert_eq!(
            fields(serde_json::to_value(KeyView::of(&full)).unwrap()),
            all
        );
        // And the listener does not change the key; anything else does.
        let mut other = full.clone();
        other.set_listener_path(None);
        other.set_listener_metadata(Some("n".into()));
        assert_eq!(key(&full), key(&other));
        other.set_default_errno_ret(Some(2));
        assert_ne!(key(&full), key(&other));
    }

    #[test]
    fn entry_round_trips_and_rejects_damage() {
        let p = small();
        let k = key(&p);
        let prog = compile(&p).unwrap();
        let bytes = encode_entry(&k, &prog);
        assert_eq!(bytes.len(), HEADER_LEN + prog.len() * INSN_SIZE + SUM_LEN);
        let back = decode_entry(&bytes, &k).unwrap();
        assert_eq!(back.insns, prog.insns);
        assert_eq!((back.flags, back.notify), (prog.flags, prog.notify));

        // Every single flipped byte is caught (by the checksum or a field).
        for at in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[at] ^= 0x40;
            assert!(decode_entry(&bad, &k).is_err(), "flip at {at} accepted");
        }
        assert_eq!(
            decode_entry(&bytes[..bytes.len() - 1], &k).unwrap_err(),
            "checksum mismatch"
        );
        assert_eq!(
            decode_entry(&bytes[..40], &k).unwrap_err(),
            "impossible size"
        );
        let other = key(&profile(json!({"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]})));
        assert_eq!(
            decode_entry(&bytes, &other).unwrap_err(),
            "written for another key"
        );
    }

    #[test]
    fn key_ignores_listener_fields_but_not_rules() {
        let base = json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}]
        });
        let k = key(&profile(base.clone()));
        let mut with_listener = base.clone();
        with_listener["listenerPath"] = json!("/run/agent.sock");
        with_listener["listenerMetadata"] = json!("x");
        assert_eq!(key(&profile(with_listener)), k);
        let mut errno = base.clone();
        errno["defaultErrnoRet"] = json!(38);
        assert_ne!(key(&profile(errno)), k);
        let mut arch = base.clone();
        arch["architectures"] = json!(["SCMP_ARCH_X86_64"]);
        assert_ne!(key(&profile(arch)), k);
        let mut rule = base;
        rule["syscalls"][0]["names"] = json!(["write"]);
        assert_ne!(key(&profile(rule)), k);
        assert!(is_entry_name(&k.hex()));
    }

    #[test]
    fn disk_put_get_and_bad_entries_are_removed() {
        let (_tmp, cache) = disk(DEFAULT_MAX_BYTES);
        let p = small();
        let k = key(&p);
        assert!(cache.get(&k).unwrap().is_none(), "no directory yet");
        let prog = compile(&p).unwrap();
        cache.put(&k, &prog).unwrap();
        let dir_mode = std::fs::metadata(cache.dir()).unwrap().permissions().mode();
        assert_eq!(dir_mode & 0o7777, 0o700);
        let entry = cache.entry_path(&k);
        let meta = std::fs::metadata(&entry).unwrap();
        assert_eq!(meta.permissions().mode() & 0o7777, 0o600);
        assert_eq!(cache.get(&k).unwrap().unwrap().insns, prog.insns);

        // Wrong mode: removed, not loaded.
        std::fs::set_permissions(&entry, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            cache.get(&k),
            Err(CacheError::BadEntry {
                reason: "mode is not 0600",
                ..
            })
        ));
        assert!(!entry.exists());

        // Truncated.
        cache.put(&k, &prog).unwrap();
        let bytes = std::fs::read(&entry).unwrap();
        std::fs::write(&entry, &bytes[..bytes.len() - 9]).unwrap();
        assert!(matches!(cache.get(&k), Err(CacheError::BadEntry { .. })));
        assert!(!entry.exists());

        // A symlink to a good entry is not followed.
        cache.put(&k, &prog).unwrap();
        let aside = cache.dir().join("aside");
        std::fs::rename(&entry, &aside).unwrap();
        std::os::unix::fs::symlink(&aside, &entry).unwrap();
        assert!(matches!(
            cache.get(&k),
            Err(CacheError::BadEntry {
                reason: "a symlink",
                ..
            })
        ));
        assert!(entry.symlink_metadata().is_err());
    }

    #[test]
    fn open_directory_is_refused() {
        let (_tmp, cache) = disk(DEFAULT_MAX_BYTES);
        let p = small();
        let k = key(&p);
        let prog = compile(&p).unwrap();
        cache.put(&k, &prog).unwrap();
        std::fs::set_permissions(cache.dir(), std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(matches!(cache.get(&k), Err(CacheError::DirNotOurs { .. })));
        assert!(matches!(
            cache.put(&k, &prog),
            Err(CacheError::DirNotOurs { .. })
        ));
        // compile_with still answers, by compiling.
        let got = compile_with(&p, None, Some(&cache)).unwrap();
        assert_eq!(got.source, Source::Compiled);
        assert_eq!(got.program, prog);
    }

    #[test]
    fn levels_answer_in_order() {
        let (_tmp, cache) = disk(DEFAULT_MAX_BYTES);
        let memory = MemoryCache::new(2);
        let p = profile(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": "/run/agent.sock",
            "listenerMetadata": "meta",
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]
        }));
        let fresh = compile(&p).unwrap();
        let first = compile_with(&p, Some(&memory), Some(&cache)).unwrap();
        assert_eq!(first.source, Source::Compiled);
        let second = compile_with(&p, Some(&memory), Some(&cache)).unwrap();
        assert_eq!(second.source, Source::Memory);
        let third = compile_with(&p, None, Some(&cache)).unwrap();
        assert_eq!(third.source, Source::Disk);
        // A memory hit shares the cached instruction buffer, not a copy
        // (a shim holds one program per profile, however many containers).
        let again = compile_with(&p, Some(&memory), Some(&cache)).unwrap();
        assert!(Arc::ptr_eq(&second.program.insns, &again.program.insns));
        for got in [first, second, third] {
            assert_eq!(got.program, fresh);
        }
    }

    #[test]
    fn memory_cache_is_bounded_lru() {
        let m = MemoryCache::new(2);
        let prog = Arc::new(compile(&small()).unwrap());
        let keys = [[1u8; 32], [2; 32], [3; 32]].map(CacheKey);
        m.insert(keys[0], Arc::clone(&prog));
        m.insert(keys[1], Arc::clone(&prog));
        assert!(m.get(&keys[0]).is_some()); // 0 is now the most recent
        m.insert(keys[2], Arc::clone(&prog));
        assert_eq!(m.len(), 2);
        assert!(m.get(&keys[1]).is_none());
        assert!(Arc::ptr_eq(&m.get(&keys[0]).unwrap(), &prog));
    }

    #[test]
    fn eviction_keeps_the_bound_and_the_newest() {
        let p = small();
        let prog = compile(&p).unwrap();
        let one = encode_entry(&key(&p), &prog).len() as u64;
        let (_tmp, cache) = disk(one * 2);
        let keys: Vec<CacheKey> = (0..4u8).map(|i| CacheKey([i; 32])).collect();
        for k in &keys {
            cache.put(k, &prog).unwrap();
            // Distinct mtimes even on coarse clocks.
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let present: Vec<bool> = keys.iter().map(|k| cache.entry_path(k).exists()).collect();
        assert_eq!(present, [false, false, true, true]);
        // A bound below one entry still keeps the entry just written.
        let tiny = DiskCache::with_max_bytes(cache.dir(), 1);
        tiny.put(&keys[0], &prog).unwrap();
        let present: Vec<bool> = keys.iter().map(|k| cache.entry_path(k).exists()).collect();
        assert_eq!(present, [true, false, false, false]);
    }
}
