//! The config.json wrend gives a container: a copy of the user's bundle spec
//! with `root.path` made absolute (the rootfs is used where it is), or, for
//! `wren run --rootfs DIR -- CMD`, the runtime's default spec (the one
//! `wren-oci spec` writes: default mounts, masked and read-only paths, a small
//! capability set) around that rootfs.
//!
//! wrend checks only what it needs itself (JSON, the rootfs, the command);
//! the spec's full validation is the runtime's, in the shim's Create, whose
//! refusal wrend passes on as it is (it names the field) and cleans up after.
//! Validating here too would link oci-spec's deserializers and the regex
//! engine into wrend, about a third of its resident text, to save one shim
//! spawn on bad input.
//!
//! Runs in wrend's loop thread (Create).

use std::path::{Path, PathBuf};

use serde_json::Value;

/// Why no spec could be made.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("bundle {path} has no config.json")]
    NoConfig { path: PathBuf },
    #[error("read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("parse {path}")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("rootfs {path} is not a directory")]
    NoRootfs { path: PathBuf },
    #[error("a command is needed with --rootfs")]
    NoArgs,
    #[error("{path}: {what} must be a JSON object")]
    NotAnObject { path: PathBuf, what: &'static str },
    #[error("seccomp profile: {0}")]
    Seccomp(String),
    #[error("unknown capability {0:?}")]
    UnknownCapability(String),
    #[error("mount on {destination}: {reason}")]
    BadMount { destination: String, reason: String },
    #[error("--{flag} {value:?}: {reason}")]
    BadFlag {
        flag: &'static str,
        value: String,
        reason: String,
    },
}

/// What the user asked for, besides the bundle or rootfs.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub terminal: bool,
    pub hostname: String,
    /// The rest apply to image runs (`wren run IMAGE`) only.
    pub image: ImageOverrides,
}

/// What an image run adds: the CLI resolved the image config into these.
#[derive(Debug, Default, Clone)]
pub struct ImageOverrides {
    /// `(uid, gid, additional gids)`.
    pub user: Option<(u32, u32, Vec<u32>)>,
    /// `(type, source, destination, options)`, after the default mounts.
    pub mounts: Vec<(String, String, String, Vec<String>)>,
    pub read_only: bool,
    pub memory: i64,
    pub pids_limit: i64,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub cpus: f64,
    pub cpu_shares: u64,
    /// "" (the default profile), "unconfined", or LinuxSeccomp JSON.
    pub seccomp: String,
    /// `--privileged` (see [`privileged`]).
    pub privileged: bool,
    /// `--security-opt no-new-privileges[:true|false]`; `None`: set, unless
    /// privileged.
    pub no_new_privileges: Option<bool>,
    /// `--init`: the runtime's reaper is the container's pid 1.
    pub init: bool,
    /// `--device HOST[:CONTAINER[:PERMS]]`s.
    pub devices: Vec<String>,
    /// `--device-cgroup-rule`s.
    pub device_cgroup_rules: Vec<String>,
    /// `--ulimit NAME=SOFT[:HARD]`s.
    pub ulimits: Vec<String>,
    /// `--sysctl KEY=VALUE`s.
    pub sysctls: Vec<String>,
    /// `--shm-size` in bytes; 0: the default (64 MiB).
    pub shm_size: i64,
    /// `--memory-swap` (memory plus swap; -1: unlimited swap; 0: not set)
    /// and `--memory-reservation` in bytes (0: none).
    pub memory_swap: i64,
    pub memory_reservation: i64,
    /// `--cpuset-cpus`, `--cpuset-mems` ("": any).
    pub cpuset_cpus: String,
    pub cpuset_mems: String,
    /// `--oom-score-adj`.
    pub oom_score_adj: Option<i32>,
    /// `--network host`: the container shares the host's network
    /// namespace, so no `net.*` sysctl is its own.
    pub host_network: bool,
    /// `--network container:NAME`: NAME's network namespace, likewise.
    pub joined_network: bool,
    /// `--ipc container:NAME`: NAME's IPC namespace, likewise.
    pub joined_ipc: bool,
    /// `--uts container:NAME`: NAME's UTS namespace, likewise.
    pub joined_uts: bool,
    /// `--pid host`, `--ipc host`, `--uts host`: the host's namespace.
    pub host_pid: bool,
    pub host_ipc: bool,
    pub host_uts: bool,
}

/// The capabilities an image's container gets by default: Docker's set, so
/// images behave as they do there (`--rootfs` keeps the smaller one).
pub const IMAGE_CAPS: &[&str] = &[
    "CAP_AUDIT_WRITE",
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_MKNOD",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_RAW",
    "CAP_SETFCAP",
    "CAP_SETGID",
    "CAP_SETPCAP",
    "CAP_SETUID",
    "CAP_SYS_CHROOT",
];

/// `net_admin`, `NET_ADMIN` and `CAP_NET_ADMIN` are `CAP_NET_ADMIN`.
fn cap_name(s: &str) -> Result<String, SpecError> {
    let up = s.to_ascii_uppercase();
    let full = if up.starts_with("CAP_") {
        up
    } else {
        format!("CAP_{up}")
    };
    if wren_runtime::capabilities::known_names().contains(&full.as_str()) {
        Ok(full)
    } else {
        Err(SpecError::UnknownCapability(s.to_string()))
    }
}

/// The capability set after `add` and `drop` (`ALL` in either).
pub fn capabilities(add: &[String], drop: &[String]) -> Result<Vec<String>, SpecError> {
    let mut caps: Vec<String> = IMAGE_CAPS.iter().map(|c| c.to_string()).collect();
    let all = |v: &[String]| v.iter().any(|c| c.eq_ignore_ascii_case("ALL"));
    if all(drop) {
        caps.clear();
    }
    for c in drop.iter().filter(|c| !c.eq_ignore_ascii_case("ALL")) {
        let c = cap_name(c)?;
        caps.retain(|x| *x != c);
    }
    if all(add) {
        caps = bounding_set();
    }
    for c in add.iter().filter(|c| !c.eq_ignore_ascii_case("ALL")) {
        let c = cap_name(c)?;
        if !caps.contains(&c) {
            caps.push(c);
        }
    }
    Ok(caps)
}

/// `ALL`: every capability wrend itself may pass on, i.e. those of its
/// bounding set (a host or VM may withhold some, and asking the kernel for
/// one outside it fails in capset), in number order.
fn bounding_set() -> Vec<String> {
    let names = wren_runtime::capabilities::known_names();
    let mask = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapBnd:"))
                .and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
        })
        .unwrap_or(u64::MAX);
    names
        .iter()
        .enumerate()
        .filter(|(i, _)| mask & (1u64 << i) != 0)
        .map(|(_, c)| c.to_string())
        .collect()
}

/// The spec of a container made from an image: the default spec with its
/// root at `rootfs` (the overlay the shim mounts there), the process the
/// CLI resolved from the image config (`o.env` is the whole environment),
/// Docker's capability set and the image run's extras.
pub fn build_image(rootfs: &Path, o: &Overrides) -> Result<Value, SpecError> {
    if o.args.is_empty() {
        return Err(SpecError::NoArgs);
    }
    let x = &o.image;
    let mut spec = wren_runtime::spec::example_json(&o.args, o.terminal);
    spec["root"] =
        serde_json::json!({"path": rootfs.display().to_string(), "readonly": x.read_only});
    spec["hostname"] = Value::from(o.hostname.clone());
    spec["linux"]["seccomp"] = default_seccomp();
    host_namespaces(&mut spec, x);
    let p = &mut spec["process"];
    let mut env = o.env.clone();
    if o.terminal && !env.iter().any(|e| e.starts_with("TERM=")) {
        env.push("TERM=xterm".into());
    }
    p["env"] = Value::from(env);
    p["cwd"] = Value::from(if o.cwd.is_empty() {
        "/"
    } else {
        o.cwd.as_str()
    });
    if let Some((uid, gid, extra)) = &x.user {
        p["user"] = serde_json::json!({"uid": uid, "gid": gid, "additionalGids": extra});
    }
    let caps = if x.privileged {
        // Every capability, less what --cap-drop names.
        let mut caps = bounding_set();
        if x.cap_drop.iter().any(|c| c.eq_ignore_ascii_case("ALL")) {
            caps.clear();
        }
        for c in x.cap_drop.iter().filter(|c| !c.eq_ignore_ascii_case("ALL")) {
            let c = cap_name(c)?;
            caps.retain(|x| *x != c);
        }
        caps
    } else {
        capabilities(&x.cap_add, &x.cap_drop)?
    };
    p["noNewPrivileges"] = Value::Bool(x.no_new_privileges.unwrap_or(!x.privileged));
    p["capabilities"] = serde_json::json!({
        "bounding": caps, "effective": caps, "permitted": caps,
    });
    for (kind, source, destination, options) in &x.mounts {
        if !destination.starts_with('/') {
            return Err(SpecError::BadMount {
                destination: destination.clone(),
                reason: "the destination must be an absolute path".into(),
            });
        }
        let propagation = options
            .iter()
            .find(|o| matches!(o.as_str(), "shared" | "rshared" | "slave" | "rslave"));
        if let Some(p) = propagation {
            if let Some(reason) = super::mountinfo::refuse(Path::new(source), p) {
                return Err(SpecError::BadMount {
                    destination: destination.clone(),
                    reason,
                });
            }
            if p.ends_with("shared") {
                // As Docker: a shared volume needs a shared root, or the
                // container's side of it starts a peer group of its own
                // (see wren_runtime::rootfs::prepare).
                spec["linux"]["rootfsPropagation"] = Value::from("rshared");
            }
        }
        if let Some(a) = spec["mounts"].as_array_mut() {
            a.retain(|m| m["destination"].as_str() != Some(destination.as_str()));
            a.push(serde_json::json!({
                "type": kind, "source": source, "destination": destination, "options": options,
            }));
        }
    }
    match x.seccomp.as_str() {
        "" if !x.privileged => {}
        "" | "unconfined" => {
            if let Some(l) = spec["linux"].as_object_mut() {
                l.remove("seccomp");
            }
        }
        _ if x.privileged => {
            return Err(SpecError::Seccomp(
                "a privileged container runs without one".into(),
            ))
        }
        json => {
            let v: Value =
                serde_json::from_str(json).map_err(|e| SpecError::Seccomp(e.to_string()))?;
            if !v.is_object() {
                return Err(SpecError::Seccomp("not a JSON object".into()));
            }
            spec["linux"]["seccomp"] = v;
        }
    }
    if x.privileged {
        privileged(&mut spec, &host_devices(Path::new("/dev")));
    }
    if x.init {
        spec["annotations"][wren_runtime::spec::INIT_ANNOTATION] = Value::from("true");
    }
    for d in &x.devices {
        add_device(&mut spec, d)?;
    }
    for r in &x.device_cgroup_rules {
        let rule = device_rule(r)?;
        put(&mut spec["linux"]["resources"]["devices"], "", rule);
    }
    for u in &x.ulimits {
        let (kind, soft, hard) = ulimit(u)?;
        let rl = serde_json::json!({"type": kind, "soft": soft, "hard": hard});
        put(&mut spec["process"]["rlimits"], "type", rl);
    }
    for kv in &x.sysctls {
        let bad = bad_flag("sysctl", kv);
        let (key, value) = kv
            .split_once('=')
            .filter(|(k, _)| {
                !k.is_empty()
                    && k.bytes()
                        .all(|c| c.is_ascii_alphanumeric() || b"._-/".contains(&c))
            })
            .ok_or_else(|| bad("want KEY=VALUE".into()))?;
        let key = key.replace('/', ".");
        // An image container has its own ipc, uts and (unless host)
        // network namespaces, and no user namespace.
        match wren_runtime::sysctl::namespace_of(&key) {
            None => return Err(bad(wren_runtime::sysctl::NOT_NAMESPACED.into())),
            Some((_, "network")) if x.host_network => {
                return Err(bad(
                    "a --network host container shares the host's network settings".into(),
                ))
            }
            Some((_, "network")) if x.joined_network => {
                return Err(bad(
                    "a --network container:NAME container shares that container's network settings"
                        .into(),
                ))
            }
            Some((_, "ipc")) if x.joined_ipc => {
                return Err(bad(
                    "a --ipc container:NAME container shares that container's IPC settings".into(),
                ))
            }
            Some((_, "ipc")) if x.host_ipc => {
                return Err(bad(
                    "a --ipc host container shares the host's IPC settings".into()
                ))
            }
            Some((_, "uts")) if x.host_uts => {
                return Err(bad(
                    "a --uts host container shares the host's hostname".into()
                ))
            }
            Some((_, "uts")) if x.joined_uts => {
                return Err(bad(
                    "a --uts container:NAME container shares that container's hostname".into(),
                ))
            }
            Some((_, "user")) => {
                return Err(bad("the container has no user namespace of its own".into()))
            }
            Some(_) => {}
        }
        spec["linux"]["sysctl"][key] = Value::from(value);
    }
    if x.shm_size > 0 && x.host_ipc {
        return Err(SpecError::BadFlag {
            flag: "shm-size",
            value: x.shm_size.to_string(),
            reason: "a --ipc host container uses the host's /dev/shm".into(),
        });
    }
    if x.shm_size > 0 {
        let size = format!("size={}k", (x.shm_size as u64).div_ceil(1024));
        if let Some(m) = spec["mounts"]
            .as_array_mut()
            .and_then(|a| a.iter_mut().find(|m| m["destination"] == "/dev/shm"))
        {
            if let Some(o) = m["options"].as_array_mut() {
                o.retain(|o| !o.as_str().is_some_and(|o| o.starts_with("size=")));
                o.push(Value::from(size));
            }
        }
    }
    if let Some(n) = x.oom_score_adj {
        spec["process"]["oomScoreAdj"] = Value::from(n);
    }
    let r = &mut spec["linux"]["resources"];
    if x.cpus > 0.0 || x.cpu_shares > 0 {
        let mut cpu = serde_json::json!({});
        if x.cpus > 0.0 {
            cpu["period"] = Value::from(100_000u64);
            cpu["quota"] = Value::from((x.cpus * 100_000.0).round() as i64);
        }
        if x.cpu_shares > 0 {
            cpu["shares"] = Value::from(x.cpu_shares);
        }
        r["cpu"] = cpu;
    }
    for (key, v) in [("cpus", &x.cpuset_cpus), ("mems", &x.cpuset_mems)] {
        if !v.is_empty() {
            r["cpu"][key] = Value::from(v.clone());
        }
    }
    if x.memory > 0 {
        r["memory"] = serde_json::json!({"limit": x.memory});
    }
    if x.memory_swap != 0 {
        r["memory"]["swap"] = Value::from(x.memory_swap);
    }
    if x.memory_reservation > 0 {
        r["memory"]["reservation"] = Value::from(x.memory_reservation);
    }
    if x.pids_limit > 0 {
        r["pids"] = serde_json::json!({"limit": x.pids_limit});
    }
    Ok(spec)
}

/// The error for a bad `--flag value`, given why.
/// `--pid/--ipc/--uts host`: the namespace left out of the spec, so the
/// container stays in the host's (wrend's). With the host's IPC namespace
/// comes the host's /dev/shm, as Docker binds it (a tmpfs of its own would
/// split the POSIX shared memory the namespace is shared for); with its
/// UTS namespace no hostname is set.
fn host_namespaces(spec: &mut Value, x: &ImageOverrides) {
    let shared: Vec<&str> = [
        (x.host_pid, "pid"),
        (x.host_ipc, "ipc"),
        (x.host_uts, "uts"),
    ]
    .into_iter()
    .filter_map(|(host, ns)| host.then_some(ns))
    .collect();
    if let Some(nss) = spec["linux"]["namespaces"].as_array_mut() {
        nss.retain(|n| !shared.iter().any(|s| n["type"] == *s));
    }
    if x.host_uts {
        if let Some(o) = spec.as_object_mut() {
            o.remove("hostname");
        }
    }
    if x.host_ipc {
        if let Some(m) = spec["mounts"]
            .as_array_mut()
            .and_then(|a| a.iter_mut().find(|m| m["destination"] == "/dev/shm"))
        {
            *m = serde_json::json!({
                "destination": "/dev/shm", "type": "bind", "source": "/dev/shm",
                "options": ["rbind", "nosuid", "noexec", "nodev"],
            });
        }
    }
}

fn bad_flag<'a>(flag: &'static str, value: &'a str) -> impl Fn(String) -> SpecError + 'a {
    move |reason| SpecError::BadFlag {
        flag,
        value: value.to_string(),
        reason,
    }
}

/// `--device HOST[:CONTAINER[:PERMS]]` (Docker's form; `HOST:PERMS` too):
/// the host node's type and numbers (through symlinks, so
/// /dev/serial/by-id/… works) under the container path, and a device-cgroup
/// rule allowing PERMS (default rwm) on it.
/// A device cgroup access: some of r, w and m.
fn device_access(a: &str) -> bool {
    !a.is_empty() && a.bytes().all(|c| b"rwm".contains(&c))
}

/// `--device-cgroup-rule "TYPE MAJOR:MINOR ACCESS"` as an OCI allow rule.
fn device_rule(r: &str) -> Result<Value, SpecError> {
    let bad = bad_flag("device-cgroup-rule", r);
    let want = "want TYPE MAJOR:MINOR ACCESS (c 189:* rwm)";
    let f: Vec<&str> = r.split_whitespace().collect();
    let [kind, numbers, access] = f[..] else {
        return Err(bad(want.into()));
    };
    if !matches!(kind, "a" | "b" | "c") {
        return Err(bad(format!("type {kind:?}: a, b or c")));
    }
    let (major, minor) = numbers.split_once(':').ok_or_else(|| bad(want.into()))?;
    let number = |n: &str| -> Result<Value, SpecError> {
        match n {
            "*" => Ok(Value::Null),
            _ => n
                .parse::<u32>()
                .map(Value::from)
                .map_err(|_| bad(format!("{n:?}: a device number or *"))),
        }
    };
    if !device_access(access) {
        return Err(bad(format!("access {access:?}: some of r, w and m")));
    }
    let mut rule = serde_json::json!({"allow": true, "type": kind, "access": access});
    for (key, n) in [("major", major), ("minor", minor)] {
        let v = number(n)?;
        if !v.is_null() {
            rule[key] = v;
        }
    }
    Ok(rule)
}

fn add_device(spec: &mut Value, d: &str) -> Result<(), SpecError> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let bad = bad_flag("device", d);
    let parts: Vec<&str> = d.split(':').collect();
    let (host, ctr, perms) = match parts[..] {
        [h] => (h, h, "rwm"),
        [h, p] if device_access(p) => (h, h, p),
        [h, c] => (h, c, "rwm"),
        [h, c, p] => (h, c, p),
        _ => return Err(bad("want HOST[:CONTAINER[:PERMS]]".into())),
    };
    if !device_access(perms) {
        return Err(bad(format!("permissions {perms:?}: some of r, w and m")));
    }
    if !host.starts_with('/') || !ctr.starts_with('/') {
        return Err(bad("device paths are absolute".into()));
    }
    let md = std::fs::metadata(host).map_err(|e| bad(format!("{host}: {e}")))?;
    let kind = if md.file_type().is_char_device() {
        "c"
    } else if md.file_type().is_block_device() {
        "b"
    } else {
        return Err(bad(format!("{host} is not a device node")));
    };
    let (major, minor) = (libc::major(md.rdev()), libc::minor(md.rdev()));
    let node = serde_json::json!({
        "path": ctr, "type": kind, "major": major, "minor": minor,
        "fileMode": md.mode() & 0o7777, "uid": md.uid(), "gid": md.gid(),
    });
    let rule = serde_json::json!({
        "allow": true, "type": kind, "major": major, "minor": minor, "access": perms,
    });
    put(&mut spec["linux"]["devices"], "path", node);
    put(&mut spec["linux"]["resources"]["devices"], "", rule);
    Ok(())
}

/// Appends `item` to the array at `slot` (made if absent), replacing an
/// entry with the same `key` field (none with an empty `key`).
fn put(slot: &mut Value, key: &str, item: Value) {
    match slot.as_array_mut() {
        Some(a) => {
            if !key.is_empty() {
                a.retain(|e| e[key] != item[key]);
            }
            a.push(item);
        }
        None => *slot = Value::from(vec![item]),
    }
}

/// `--ulimit NAME=SOFT[:HARD]` (Docker's form; -1 is unlimited, HARD
/// defaults to SOFT): `(RLIMIT_NAME, soft, hard)`.
fn ulimit(u: &str) -> Result<(String, u64, u64), SpecError> {
    const NAMES: [&str; 16] = [
        "as",
        "core",
        "cpu",
        "data",
        "fsize",
        "locks",
        "memlock",
        "msgqueue",
        "nice",
        "nofile",
        "nproc",
        "rss",
        "rtprio",
        "rttime",
        "sigpending",
        "stack",
    ];
    let bad = bad_flag("ulimit", u);
    let (name, limits) = u
        .split_once('=')
        .ok_or_else(|| bad("want NAME=SOFT[:HARD]".into()))?;
    if !NAMES.contains(&name) {
        return Err(bad(format!(
            "unknown limit {name:?} ({})",
            NAMES.join(", ")
        )));
    }
    let value = |v: &str| match v.trim() {
        "-1" | "unlimited" => Ok(u64::MAX),
        v => v
            .parse::<u64>()
            .map_err(|_| bad(format!("{v:?} is not a number (or -1, unlimited)"))),
    };
    let (soft, hard) = match limits.split_once(':') {
        Some((s, h)) => (value(s)?, value(h)?),
        None => (value(limits)?, value(limits)?),
    };
    if soft > hard {
        return Err(bad("the soft limit is above the hard one".into()));
    }
    Ok((format!("RLIMIT_{}", name.to_ascii_uppercase()), soft, hard))
}

/// What `--privileged` changes, as Docker and Podman do: no seccomp filter
/// (unless the caller put a profile back), no masked or read-only paths,
/// `/sys` and the cgroup mount writable, every host device in
/// `linux.devices` and the device cgroup open to all.
fn privileged(spec: &mut Value, devices: &[Value]) {
    if let Some(l) = spec["linux"].as_object_mut() {
        l.remove("maskedPaths");
        l.remove("readonlyPaths");
    }
    if let Some(mounts) = spec["mounts"].as_array_mut() {
        for m in mounts.iter_mut() {
            if matches!(m["type"].as_str(), Some("sysfs" | "cgroup")) {
                if let Some(o) = m["options"].as_array_mut() {
                    o.retain(|o| o != "ro");
                    o.push(Value::from("rw"));
                }
            }
        }
    }
    spec["linux"]["devices"] = Value::from(devices.to_vec());
    spec["linux"]["resources"]["devices"] = serde_json::json!([{"allow": true, "access": "rwm"}]);
}

/// The character and block devices under `dev` (the host's /dev), as
/// `linux.devices` entries with their host paths, modes and owners; the
/// kernel-managed mounts (pts, shm, mqueue), /dev/console (the
/// container's own console or none) and /dev/ptmx are left out. Unreadable entries are
/// skipped: a device that vanished while listing is no error.
fn host_devices(dev: &Path) -> Vec<Value> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let mut out = Vec::new();
    let mut dirs = vec![dev.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            let Ok(md) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            let ft = md.file_type();
            let name = e.file_name();
            if ft.is_dir() {
                let skip =
                    dir == dev && matches!(name.to_str(), Some("pts" | "shm" | "mqueue" | "fd"));
                if !skip {
                    dirs.push(path);
                }
                continue;
            }
            let kind = if ft.is_char_device() {
                "c"
            } else if ft.is_block_device() {
                "b"
            } else {
                continue;
            };
            let Ok(rel) = path.strip_prefix(dev) else {
                continue;
            };
            // /dev/ptmx stays the link to the container's own devpts
            // (the host's node would allocate ptys on the host's).
            if rel == Path::new("console") || rel == Path::new("ptmx") {
                continue;
            }
            let rdev = md.rdev();
            out.push(serde_json::json!({
                "path": Path::new("/dev").join(rel).display().to_string(),
                "type": kind,
                "major": libc::major(rdev),
                "minor": libc::minor(rdev),
                "fileMode": md.mode() & 0o7777,
                "uid": md.uid(),
                "gid": md.gid(),
            }));
        }
    }
    out.sort_by(|a, b| a["path"].as_str().cmp(&b["path"].as_str()));
    out
}

fn absolute_dir(path: &Path) -> Result<PathBuf, SpecError> {
    match path.canonicalize() {
        Ok(p) if p.is_dir() => Ok(p),
        _ => Err(SpecError::NoRootfs {
            path: path.to_owned(),
        }),
    }
}

fn apply(spec: &mut Value, o: &Overrides) {
    let process = &mut spec["process"];
    if !o.args.is_empty() {
        process["args"] = Value::from(o.args.clone());
    }
    if !o.env.is_empty() {
        let mut env: Vec<Value> = process["env"].as_array().cloned().unwrap_or_default();
        env.extend(o.env.iter().cloned().map(Value::from));
        process["env"] = Value::from(env);
    }
    if !o.cwd.is_empty() {
        process["cwd"] = Value::from(o.cwd.clone());
    }
    if o.terminal {
        process["terminal"] = Value::Bool(true);
    }
    if let Some((uid, gid, extra)) = &o.image.user {
        // `exec -u`: the ids only; the process keeps the spec's umask.
        process["user"]["uid"] = Value::from(*uid);
        process["user"]["gid"] = Value::from(*gid);
        process["user"]["additionalGids"] = Value::from(extra.clone());
    }
}

/// Syscalls the default profile refuses with EPERM: kernel modules, kexec,
/// reboot, swap, clocks, accounting, keyrings, eBPF, perf, io_uring,
/// userfaultfd, handle-based opens (the "shocker" escape), mounts and the new
/// mount API, namespace creation and joining, cross-process memory access,
/// and obsolete calls. Most of them already need a capability the default
/// set does not grant; the filter is the second wall, as in Docker's and
/// containerd's default profiles (which allow-list instead: wren lists what
/// it refuses, so a new syscall is not broken by an old profile).
const DENIED_SYSCALLS: &[&str] = &[
    "acct",
    "add_key",
    "bpf",
    "clock_adjtime",
    "clock_settime",
    "create_module",
    "delete_module",
    "finit_module",
    "fsconfig",
    "fsmount",
    "fsopen",
    "fspick",
    "get_kernel_syms",
    "init_module",
    "io_uring_enter",
    "io_uring_register",
    "io_uring_setup",
    "ioperm",
    "iopl",
    "kcmp",
    "kexec_file_load",
    "kexec_load",
    "keyctl",
    "lookup_dcookie",
    "mount",
    "mount_setattr",
    "move_mount",
    "name_to_handle_at",
    "nfsservctl",
    "open_by_handle_at",
    "open_tree",
    "perf_event_open",
    "pivot_root",
    "process_vm_readv",
    "process_vm_writev",
    "query_module",
    "quotactl",
    "quotactl_fd",
    "reboot",
    "request_key",
    "setns",
    "settimeofday",
    "stime",
    "swapoff",
    "swapon",
    "_sysctl",
    "sysfs",
    "syslog",
    "umount",
    "umount2",
    "unshare",
    "uselib",
    "userfaultfd",
    "ustat",
    "vhangup",
    "vm86",
    "vm86old",
];

/// clone(2) flags that create namespaces: refused like `unshare`.
const NAMESPACE_CLONE_FLAGS: &[u64] = &[
    libc::CLONE_NEWNS as u64,
    libc::CLONE_NEWCGROUP as u64,
    libc::CLONE_NEWUTS as u64,
    libc::CLONE_NEWIPC as u64,
    libc::CLONE_NEWUSER as u64,
    libc::CLONE_NEWPID as u64,
    libc::CLONE_NEWNET as u64,
];

/// The seccomp profile of a `wren run --rootfs` container (a bundle's own
/// spec is used as it is). Default allow; the syscalls above get EPERM;
/// clone with a namespace flag gets EPERM; clone3, whose flags a filter
/// cannot read, gets ENOSYS so libc falls back to clone. The compat
/// architectures are listed so 32-bit calls meet the same rules instead of
/// being killed as a foreign architecture.
pub fn default_seccomp() -> Value {
    let arches: &[&str] = match std::env::consts::ARCH {
        "x86_64" => &["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "aarch64" => &["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"],
        _ => &[],
    };
    let mut rules = vec![
        serde_json::json!({
            "names": DENIED_SYSCALLS,
            "action": "SCMP_ACT_ERRNO",
            "errnoRet": libc::EPERM,
        }),
        serde_json::json!({
            "names": ["clone3"],
            "action": "SCMP_ACT_ERRNO",
            "errnoRet": libc::ENOSYS,
        }),
    ];
    for flag in NAMESPACE_CLONE_FLAGS {
        rules.push(serde_json::json!({
            "names": ["clone"],
            "action": "SCMP_ACT_ERRNO",
            "errnoRet": libc::EPERM,
            "args": [{"index": 0, "value": flag, "valueTwo": flag, "op": "SCMP_CMP_MASKED_EQ"}],
        }));
    }
    serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": arches,
        "syscalls": rules,
    })
}

/// Builds the spec: from `bundle`'s config.json, or the default one around `rootfs`.
pub fn build(
    bundle: Option<&Path>,
    rootfs: Option<&Path>,
    o: &Overrides,
) -> Result<Value, SpecError> {
    let mut spec = if let Some(bundle) = bundle {
        let path = bundle.join("config.json");
        let text = match std::fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(SpecError::NoConfig {
                    path: bundle.to_owned(),
                })
            }
            Err(source) => return Err(SpecError::Read { path, source }),
        };
        let mut spec: Value = serde_json::from_slice(&text).map_err(|source| SpecError::Parse {
            path: path.clone(),
            source,
        })?;
        for (what, v) in [
            ("the spec", Some(&spec)),
            ("process", spec.get("process")),
            ("root", spec.get("root")),
            ("linux", spec.get("linux")),
        ] {
            if !v.is_none_or(Value::is_object) {
                return Err(SpecError::NotAnObject { path, what });
            }
        }
        let root = spec["root"]["path"]
            .as_str()
            .unwrap_or("rootfs")
            .to_string();
        let root = absolute_dir(&bundle.join(root))?;
        spec["root"]["path"] = Value::from(root.display().to_string());
        spec
    } else {
        let rootfs = absolute_dir(rootfs.unwrap_or(Path::new("")))?;
        if o.args.is_empty() {
            return Err(SpecError::NoArgs);
        }
        let mut spec = wren_runtime::spec::example_json(&o.args, o.terminal);
        spec["root"] = serde_json::json!({"path": rootfs.display().to_string(), "readonly": false});
        if !o.hostname.is_empty() {
            spec["hostname"] = Value::from(o.hostname.clone());
        }
        spec["linux"]["seccomp"] = default_seccomp();
        spec
    };
    apply(&mut spec, o);
    Ok(spec)
}

/// The spec at `config`, as JSON.
pub fn read_spec(config: &Path) -> Result<Value, SpecError> {
    let text = std::fs::read(config).map_err(|source| SpecError::Read {
        path: config.to_owned(),
        source,
    })?;
    serde_json::from_slice(&text).map_err(|source| SpecError::Parse {
        path: config.to_owned(),
        source,
    })
}

/// The exec process for a container: its init's process with `args`, extra
/// `env`, `cwd` and `terminal` replaced.
pub fn exec_process(config: &Path, o: &Overrides) -> Result<Value, SpecError> {
    let mut spec = read_spec(config)?;
    apply(&mut spec, o);
    let mut process = spec["process"].take();
    process["terminal"] = Value::Bool(o.terminal);
    Ok(process)
}

/// Merges `resources` (OCI LinuxResources) into the `linux.resources` of
/// the spec at `config`, key by key (an object into an object, anything
/// else replaced), and writes the spec back atomically: `wren update`.
pub fn merge_resources(config: &Path, resources: &Value) -> Result<(), SpecError> {
    let mut spec = read_spec(config)?;
    merge(&mut spec["linux"]["resources"], resources);
    write_spec(config, &spec)
}

/// Points the spec's `linux.namespaces` entries of the given types at
/// the given paths (`/proc/PID/ns/net` of the container they join), in
/// place: a container that joins another's namespace gets that container's
/// current init at each start. An entry missing is added.
pub fn join_namespaces(config: &Path, joins: &[(&str, PathBuf)]) -> Result<(), SpecError> {
    let mut spec = read_spec(config)?;
    let nss = &mut spec["linux"]["namespaces"];
    if !nss.is_array() {
        *nss = Value::Array(Vec::new());
    }
    let Some(nss) = nss.as_array_mut() else {
        return Ok(());
    };
    for (kind, path) in joins {
        match nss.iter_mut().find(|n| n["type"] == *kind) {
            Some(n) => n["path"] = serde_json::json!(path),
            None => nss.push(serde_json::json!({"type": kind, "path": path})),
        }
    }
    write_spec(config, &spec)
}

fn write_spec(config: &Path, spec: &Value) -> Result<(), SpecError> {
    let tmp = config.with_extension("json.tmp");
    let write = |source| SpecError::Write {
        path: config.to_owned(),
        source,
    };
    let json = serde_json::to_vec_pretty(spec).map_err(|e| write(std::io::Error::other(e)))?;
    std::fs::write(&tmp, json).map_err(write)?;
    std::fs::rename(&tmp, config).map_err(write)
}

fn merge(into: &mut Value, from: &Value) {
    match (into, from) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (slot, v) => *slot = v.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_cgroup_rules_as_docker_writes_them() {
        assert_eq!(
            device_rule("c 189:* rwm").unwrap(),
            serde_json::json!({"allow": true, "type": "c", "major": 189, "access": "rwm"})
        );
        assert_eq!(
            device_rule("a *:* r").unwrap(),
            serde_json::json!({"allow": true, "type": "a", "access": "r"})
        );
        assert_eq!(device_rule("b 8:16 rw").unwrap()["minor"], 16);
        for (r, want) in [
            ("c 189:*", "want TYPE MAJOR:MINOR ACCESS"),
            ("x 1:2 r", "type \"x\""),
            ("c 1-2 r", "want TYPE"),
            ("c one:2 r", "\"one\": a device number"),
            ("c 1:2 rx", "access \"rx\""),
        ] {
            let e = device_rule(r).unwrap_err().to_string();
            assert!(
                e.contains("--device-cgroup-rule") && e.contains(want),
                "{r}: {e}"
            );
        }
    }

    #[test]
    fn update_merges_resources_into_the_spec() {
        let tmp = tempfile::tempdir().unwrap();
        let config = tmp.path().join("config.json");
        std::fs::write(
            &config,
            r#"{"process":{},"linux":{"resources":{"memory":{"limit":100,"swap":200},"devices":[{"allow":false}]}}}"#,
        )
        .unwrap();
        let up = serde_json::json!({"memory": {"limit": 50}, "pids": {"limit": 7}});
        merge_resources(&config, &up).unwrap();
        let v: Value = serde_json::from_slice(&std::fs::read(&config).unwrap()).unwrap();
        let r = &v["linux"]["resources"];
        assert_eq!(r["memory"], serde_json::json!({"limit": 50, "swap": 200}));
        assert_eq!(r["pids"]["limit"], 7);
        assert_eq!(r["devices"][0]["allow"], false);
        assert!(!tmp.path().join("config.json.tmp").exists());
    }

    #[test]
    fn image_spec_takes_the_resolved_process_and_extras() {
        let o = Overrides {
            args: vec!["/bin/sh".into()],
            env: vec!["PATH=/bin".into(), "A=1".into()],
            cwd: "/data".into(),
            hostname: "box".into(),
            image: ImageOverrides {
                user: Some((1000, 1000, vec![10])),
                mounts: vec![("tmpfs".into(), "tmpfs".into(), "/tmp".into(), vec![])],
                read_only: true,
                memory: 1 << 20,
                cpus: 1.5,
                cap_drop: vec!["ALL".into()],
                cap_add: vec!["chown".into()],
                seccomp: "unconfined".into(),
                ..ImageOverrides::default()
            },
            ..Overrides::default()
        };
        let spec = build_image(Path::new("rootfs"), &o).unwrap();
        assert_eq!(spec["root"]["path"], "rootfs");
        assert_eq!(spec["root"]["readonly"], true);
        assert_eq!(
            spec["process"]["env"],
            serde_json::json!(["PATH=/bin", "A=1"])
        );
        assert_eq!(spec["process"]["cwd"], "/data");
        assert_eq!(spec["process"]["user"]["additionalGids"][0], 10);
        assert_eq!(
            spec["process"]["capabilities"]["bounding"],
            serde_json::json!(["CAP_CHOWN"])
        );
        assert_eq!(spec["linux"]["resources"]["cpu"]["quota"], 150_000);
        assert!(spec["linux"].get("seccomp").is_none());
        let tmps = spec["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["destination"] == "/tmp")
            .count();
        assert_eq!(tmps, 1);
        assert!(matches!(
            capabilities(&["CAP_NOPE".into()], &[]),
            Err(SpecError::UnknownCapability(_))
        ));
        assert_eq!(capabilities(&[], &[]).unwrap().len(), IMAGE_CAPS.len());
    }

    #[test]
    fn default_spec_around_a_rootfs() {
        let tmp = tempfile::tempdir().unwrap();
        let o = Overrides {
            args: vec!["/bin/true".into()],
            env: vec!["A=1".into()],
            hostname: "web".into(),
            ..Overrides::default()
        };
        let spec = build(None, Some(tmp.path()), &o).unwrap();
        assert_eq!(spec["process"]["args"][0], "/bin/true");
        assert_eq!(spec["hostname"], "web");
        assert_eq!(
            spec["root"]["path"],
            tmp.path().canonicalize().unwrap().to_str().unwrap()
        );
        assert!(spec["process"]["env"]
            .as_array()
            .unwrap()
            .contains(&Value::from("A=1")));
        assert!(matches!(
            build(None, Some(tmp.path()), &Overrides::default()),
            Err(SpecError::NoArgs)
        ));
        assert!(matches!(
            build(None, Some(&tmp.path().join("absent")), &o),
            Err(SpecError::NoRootfs { .. })
        ));
    }

    #[test]
    fn the_default_profile_compiles_and_denies_what_it_lists() {
        let tmp = tempfile::tempdir().unwrap();
        let o = Overrides {
            args: vec!["sh".into()],
            ..Overrides::default()
        };
        let spec = build(None, Some(tmp.path()), &o).unwrap();
        let profile = wren_runtime::seccomp::from_json(&spec["linux"]["seccomp"]).unwrap();
        let program = wren_runtime::seccomp::compile(&profile).unwrap();
        assert!(!program.is_empty());
        // The whole spec passes the runtime's validation as well.
        let parsed =
            wren_runtime::spec::parse(spec.to_string().as_bytes(), Path::new("c")).unwrap();
        wren_runtime::spec::validate(&parsed).unwrap();
        // A bundle's own spec is left alone.
        std::fs::create_dir(tmp.path().join("rootfs")).unwrap();
        std::fs::write(
            tmp.path().join("config.json"),
            r#"{"root": {"path": "rootfs"}}"#,
        )
        .unwrap();
        let own = build(Some(tmp.path()), None, &o).unwrap();
        assert!(own["linux"]["seccomp"].is_null());
    }

    /// A bundle spec whose top level, process, root or linux is not an object is
    /// refused (the overrides index into them: that used to panic wrend).
    #[test]
    fn non_object_spec_parts_are_refused_not_indexed() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("rootfs")).unwrap();
        let o = Overrides {
            args: vec!["sh".into()],
            cwd: "/".into(),
            ..Overrides::default()
        };
        for (text, what) in [
            ("5", "the spec"),
            ("[]", "the spec"),
            (r#"{"process": 5}"#, "process"),
            (r#"{"process": "x", "root": {"path": "rootfs"}}"#, "process"),
            (r#"{"root": []}"#, "root"),
            (r#"{"linux": "x", "root": {"path": "rootfs"}}"#, "linux"),
        ] {
            std::fs::write(tmp.path().join("config.json"), text).unwrap();
            match build(Some(tmp.path()), None, &o) {
                Err(SpecError::NotAnObject { what: w, .. }) => assert_eq!(w, what, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
        std::fs::write(
            tmp.path().join("config.json"),
            r#"{"root": {"path": "rootfs"}}"#,
        )
        .unwrap();
        let spec = build(Some(tmp.path()), None, &o).unwrap();
        assert_eq!(spec["process"]["args"][0], "sh");
    }

    #[test]
    fn bundle_spec_gets_an_absolute_root() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(matches!(
            build(Some(tmp.path()), None, &Overrides::default()),
            Err(SpecError::NoConfig { .. })
        ));
        std::fs::create_dir(tmp.path().join("rootfs")).unwrap();
        let mut example =
            serde_json::to_value(wren_runtime::spec::example(&["sh".into()], false)).unwrap();
        example["root"]["path"] = Value::from("rootfs");
        std::fs::write(tmp.path().join("config.json"), example.to_string()).unwrap();
        let spec = build(Some(tmp.path()), None, &Overrides::default()).unwrap();
        let root = tmp.path().join("rootfs").canonicalize().unwrap();
        assert_eq!(spec["root"]["path"], root.to_str().unwrap());
        std::fs::write(
            tmp.path().join("config.json"),
            serde_json::to_vec(&spec).unwrap(),
        )
        .unwrap();
        let o = Overrides {
            args: vec!["ls".into()],
            terminal: true,
            ..Overrides::default()
        };
        let p = exec_process(&tmp.path().join("config.json"), &o).unwrap();
        assert_eq!(p["args"][0], "ls");
        assert_eq!(p["terminal"], true);
    }
}
