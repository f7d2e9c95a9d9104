//! Loading and validating a bundle's `config.json` before anything is created.
//!
//! Runs in the caller (shim or CLI). Every check here is pure or read-only, so
//! a bad bundle is refused with an error naming the field or path and leaves
//! nothing behind. Unknown JSON properties are ignored, as the runtime-spec
//! requires; known fields that wren does not implement are refused, never
//! silently dropped.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::namespaces::Namespace;

/// The runtime-spec version wren implements.
pub const OCI_VERSION: &str = "1.3.0";

#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("parse {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    #[error("{field}: not supported by wren")]
    Unsupported { field: String },
}

/// The annotation that asks for wren's reaper as the container's pid 1
/// (`wren run --init`): `"true"` or `"false"`.
pub const INIT_ANNOTATION: &str = "run.wren.init";

/// Is the reaper asked for? Any value but `"true"` or `"false"` is refused.
pub fn init_reaper(spec: &Spec) -> Result<bool, SpecError> {
    match spec
        .annotations()
        .as_ref()
        .and_then(|a| a.get(INIT_ANNOTATION))
        .map(String::as_str)
    {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(other) => Err(invalid(
            format!("annotations[{INIT_ANNOTATION:?}]"),
            format!("{other:?}: want \"true\" or \"false\""),
        )),
    }
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> SpecError {
    SpecError::Invalid {
        field: field.into(),
        message: message.into(),
    }
}

/// An error of a part (`prefix`) whose text already names the exact field
/// (`linux.seccomp.syscalls[0].action: ...`): that field, said once.
fn nested(prefix: &str, text: String) -> SpecError {
    match text.split_once(": ") {
        Some((field, message)) if field.starts_with(prefix) => invalid(field, message),
        _ => invalid(prefix, text),
    }
}

/// Read `<bundle>/config.json`.
pub fn load(bundle: &Path) -> Result<Spec, SpecError> {
    let path = bundle.join("config.json");
    let data = std::fs::read(&path).map_err(|source| SpecError::Read {
        path: path.clone(),
        source,
    })?;
    parse(&data, &path)
}

/// Parse config.json bytes (`path` only names the source in errors).
///
/// A spec is deserialized straight from the bytes: one pass, no tree of
/// the whole document (a containerd spec with the default seccomp profile
/// is ~25 KB, most of it the profile). Only when that fails does
/// [`parse_diagnosed`] go through a `serde_json::Value`, which names the
/// exact field at fault and takes what Go's encoding/json takes and the
/// direct path refuses (a repeated key: the last one wins). Its checks
/// use the same oci-spec types as the direct path, so both accept the same
/// specs and give the same result.
pub fn parse(data: &[u8], path: &Path) -> Result<Spec, SpecError> {
    match serde_json::from_slice::<Spec>(data) {
        Ok(spec) => Ok(spec),
        Err(_) => parse_diagnosed(data, path),
    }
}

/// The slow path of [`parse`]: the seccomp profile and capabilities are
/// checked on the JSON tree first, so their errors name the exact field
/// instead of a line and column.
fn parse_diagnosed(data: &[u8], path: &Path) -> Result<Spec, SpecError> {
    let parse_err = |e: serde_json::Error| SpecError::Parse {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let value: serde_json::Value = serde_json::from_slice(data).map_err(parse_err)?;
    let seccomp = value.pointer("/linux/seccomp");
    if let Some(s) = seccomp {
        crate::seccomp::check_names(s).map_err(|e| nested("linux.seccomp", e.to_string()))?;
    }
    if let Some(c) = value.pointer("/process/capabilities") {
        crate::capabilities::from_json(c)
            .map_err(|e| nested("process.capabilities", e.to_string()))?;
    }
    // From a borrowed Value: no copy of the spec on the start path. The
    // profile is deserialized once, here; only a spec that fails is asked
    // whether its profile alone does, so that error names linux.seccomp.
    <Spec as serde::Deserialize>::deserialize(&value).map_err(|e| {
        if let Some(Err(se)) = seccomp.map(crate::seccomp::from_json) {
            return nested("linux.seccomp", se.to_string());
        }
        match locate(&value) {
            Some((field, message)) => invalid(field, message),
            None => parse_err(e),
        }
    })
}

/// Which field a config.json that does not deserialize got wrong: serde's
/// own error names a line and column at best (none at all from a `Value`),
/// so the parts are tried one by one, most specific first. `None` when no
/// single part fails on its own.
fn locate(value: &serde_json::Value) -> Option<(String, String)> {
    use oci_spec::runtime as oci;
    use serde::de::DeserializeOwned;
    use serde_json::Value;

    fn one<T: DeserializeOwned>(v: &Value, field: &str) -> Option<(String, String)> {
        T::deserialize(v)
            .err()
            .map(|e| (field.to_string(), e.to_string()))
    }
    fn each<T: DeserializeOwned>(v: &Value, field: &str) -> Option<(String, String)> {
        match v.as_array() {
            Some(items) => items
                .iter()
                .enumerate()
                .find_map(|(i, item)| one::<T>(item, &format!("{field}[{i}]"))),
            None => one::<Vec<T>>(v, field),
        }
    }
    type Check = fn(&Value, &str) -> Option<(String, String)>;
    // (JSON pointer, check), deepest first; the field named in the error
    // is the pointer in dotted form.
    let checks: &[(&str, Check)] = &[
        ("/ociVersion", one::<String>),
        ("/root", one::<oci::Root>),
        ("/mounts", each::<oci::Mount>),
        ("/process/user", one::<oci::User>),
        ("/process/rlimits", each::<oci::PosixRlimit>),
        ("/process/env", one::<Vec<String>>),
        ("/process/args", one::<Vec<String>>),
        ("/process", one::<oci::Process>),
        ("/hostname", one::<String>),
        ("/domainname", one::<String>),
        ("/hooks/prestart", each::<oci::Hook>),
        ("/hooks/createRuntime", each::<oci::Hook>),
        ("/hooks/createContainer", each::<oci::Hook>),
        ("/hooks/startContainer", each::<oci::Hook>),
        ("/hooks/poststart", each::<oci::Hook>),
        ("/hooks/poststop", each::<oci::Hook>),
        ("/hooks", one::<oci::Hooks>),
        (
            "/annotations",
            one::<std::collections::HashMap<String, String>>,
        ),
        ("/linux/namespaces", each::<oci::LinuxNamespace>),
        ("/linux/uidMappings", each::<oci::LinuxIdMapping>),
        ("/linux/gidMappings", each::<oci::LinuxIdMapping>),
        ("/linux/devices", each::<oci::LinuxDevice>),
        ("/linux/resources/devices", each::<oci::LinuxDeviceCgroup>),
        ("/linux/resources/memory", one::<oci::LinuxMemory>),
        ("/linux/resources/cpu", one::<oci::LinuxCpu>),
        ("/linux/resources/pids", one::<oci::LinuxPids>),
        ("/linux/resources/blockIO", one::<oci::LinuxBlockIo>),
        (
            "/linux/resources/hugepageLimits",
            each::<oci::LinuxHugepageLimit>,
        ),
        ("/linux/resources/network", one::<oci::LinuxNetwork>),
        ("/linux/resources", one::<oci::LinuxResources>),
        ("/linux/personality", one::<oci::LinuxPersonality>),
        ("/linux/memoryPolicy", one::<oci::LinuxMemoryPolicy>),
        (
            "/linux/sysctl",
            one::<std::collections::HashMap<String, String>>,
        ),
        ("/linux", one::<oci::Linux>),
    ];
    checks.iter().find_map(|(pointer, check)| {
        let field = pointer[1..].replace('/', ".");
        value
            .pointer(pointer)
            .filter(|v| !v.is_null())
            .and_then(|v| check(v, &field))
    })
}

/// The absolute rootfs directory of `spec`, relative paths taken from `bundle`.
pub fn rootfs(spec: &Spec, bundle: &Path) -> Result<PathBuf, SpecError> {
    let root = spec
        .root()
        .as_ref()
        .ok_or_else(|| invalid("root", "missing"))?;
    let path = root.path();
    if path.as_os_str().is_empty() {
        return Err(invalid("root.path", "empty"));
    }
    let full = if path.is_absolute() {
        path.clone()
    } else {
        bundle.join(path)
    };
    let meta = std::fs::metadata(&full)
        .map_err(|e| invalid("root.path", format!("{}: {}", full.display(), e)))?;
    if !meta.is_dir() {
        return Err(invalid(
            "root.path",
            format!("{} is not a directory", full.display()),
        ));
    }
    full.canonicalize()
        .map_err(|e| invalid("root.path", format!("{}: {}", full.display(), e)))
}

/// Check `spec` for everything that can be checked without creating anything.
pub fn validate(spec: &Spec) -> Result<(), SpecError> {
    validate_version(spec.version())?;
    if spec.solaris().is_some() {
        return Err(SpecError::Unsupported {
            field: "solaris".into(),
        });
    }
    if spec.windows().is_some() {
        return Err(SpecError::Unsupported {
            field: "windows".into(),
        });
    }
    if spec.vm().is_some() {
        return Err(SpecError::Unsupported { field: "vm".into() });
    }
    if spec.zos().is_some() {
        return Err(SpecError::Unsupported {
            field: "zos".into(),
        });
    }
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| invalid("process", "missing"))?;
    validate_process(process, "process")?;
    init_reaper(spec)?;

    let linux = spec
        .linux()
        .as_ref()
        .ok_or_else(|| invalid("linux", "missing"))?;
    if linux.intel_rdt().is_some() {
        return Err(SpecError::Unsupported {
            field: "linux.intelRdt".into(),
        });
    }
    if linux.net_devices().as_ref().is_some_and(|d| !d.is_empty()) {
        return Err(SpecError::Unsupported {
            field: "linux.netDevices".into(),
        });
    }
    if let Some(p) = linux.memory_policy() {
        crate::mempolicy::MemoryPolicy::from_spec(p)?;
    }
    let namespaces = namespaces(spec)?;
    let has = |t: LinuxNamespaceType| namespaces.iter().any(|n| n.kind == t);
    let new = |t: LinuxNamespaceType| namespaces.iter().any(|n| n.kind == t && n.path.is_none());

    let has_maps = linux.uid_mappings().as_ref().is_some_and(|m| !m.is_empty())
        || linux.gid_mappings().as_ref().is_some_and(|m| !m.is_empty());
    if has_maps && !new(LinuxNamespaceType::User) {
        // Joining a user namespace by path with mappings given (containerd
        // does this for a pod's containers): runc accepts them when they are
        // the namespace's own; so do we, and refuse any that differ.
        let joined = namespaces
            .iter()
            .find(|n| n.kind == LinuxNamespaceType::User)
            .and_then(|n| n.path.clone());
        let Some(path) = joined else {
            return Err(invalid(
                "linux.uidMappings",
                "id mappings need a user namespace",
            ));
        };
        check_joined_maps(&path, linux)?;
        check_ids_mapped(spec, linux)?;
    }
    if new(LinuxNamespaceType::User) {
        validate_id_map(
            linux.uid_mappings().as_deref().unwrap_or(&[]),
            "linux.uidMappings",
        )?;
        validate_id_map(
            linux.gid_mappings().as_deref().unwrap_or(&[]),
            "linux.gidMappings",
        )?;
        check_ids_mapped(spec, linux)?;
    }
    if spec.hostname().as_ref().is_some_and(|h| !h.is_empty()) && !new(LinuxNamespaceType::Uts) {
        return Err(invalid("hostname", "needs a new uts namespace"));
    }
    if spec.domainname().as_ref().is_some_and(|h| !h.is_empty()) && !new(LinuxNamespaceType::Uts) {
        return Err(invalid("domainname", "needs a new uts namespace"));
    }
    if let Some(offsets) = linux.time_offsets() {
        if !offsets.is_empty() && !new(LinuxNamespaceType::Time) {
            return Err(invalid("linux.timeOffsets", "needs a new time namespace"));
        }
        for key in offsets.keys() {
            if key != "monotonic" && key != "boottime" {
                return Err(invalid(
                    format!("linux.timeOffsets.{key}"),
                    "only monotonic and boottime clocks can be offset",
                ));
            }
        }
    }
    if let Some(sysctl) = linux.sysctl() {
        for key in sysctl.keys() {
            crate::sysctl::check_namespaced(key, &namespaces)
                .map_err(|m| invalid(format!("linux.sysctl.{key}"), m))?;
        }
    }
    if let Some(prop) = linux.rootfs_propagation() {
        crate::mounts::propagation_flag(prop)
            .ok_or_else(|| invalid("linux.rootfsPropagation", format!("unknown value {prop:?}")))?;
    }
    if linux.mount_label().as_ref().is_some_and(|l| !l.is_empty()) && !crate::lsm::selinux_enabled()
    {
        return Err(invalid(
            "linux.mountLabel",
            "SELinux is not enabled on this host",
        ));
    }
    for (i, m) in spec.mounts().as_deref().unwrap_or(&[]).iter().enumerate() {
        crate::mounts::validate(m).map_err(|msg| invalid(format!("mounts[{i}]"), msg))?;
        if crate::mounts::idmapped(m).is_none() {
            continue;
        }
        let (uid, gid) = crate::mounts::mount_id_maps(m);
        if uid.is_empty() {
            if !has(LinuxNamespaceType::User) {
                return Err(invalid(
                    format!("mounts[{i}]"),
                    "an idmapped mount without uidMappings/gidMappings takes the \
                     container's user namespace, and there is none",
                ));
            }
        } else {
            validate_id_map(uid, &format!("mounts[{i}].uidMappings"))?;
            validate_id_map(gid, &format!("mounts[{i}].gidMappings"))?;
        }
        if has(LinuxNamespaceType::Mount) && !new(LinuxNamespaceType::Mount) {
            return Err(invalid(
                format!("mounts[{i}]"),
                "idmapped mounts need a new mount namespace, not one given by path",
            ));
        }
    }
    for (i, d) in linux.devices().as_deref().unwrap_or(&[]).iter().enumerate() {
        crate::devices::validate(d).map_err(|msg| invalid(format!("linux.devices[{i}]"), msg))?;
    }
    for (field, paths) in [
        ("linux.maskedPaths", linux.masked_paths()),
        ("linux.readonlyPaths", linux.readonly_paths()),
    ] {
        for (i, p) in paths.as_deref().unwrap_or(&[]).iter().enumerate() {
            if !p.starts_with('/') {
                return Err(invalid(
                    format!("{field}[{i}]"),
                    format!("{p:?} is not absolute"),
                ));
            }
        }
    }
    if let Some(p) = linux.personality() {
        crate::process::personality_value(p).map_err(|m| invalid("linux.personality", m))?;
    }
    // Without a mount namespace the init mounts in the caller's, which a
    // process in another user namespace may not do.
    if !has(LinuxNamespaceType::Mount) && has(LinuxNamespaceType::User) {
        return Err(invalid(
            "linux.namespaces",
            "a user namespace needs a mount namespace too (mounts in the host's cannot \
             be made from it)",
        ));
    }
    Ok(())
}

/// Checks on a process that apply both to the container's init and to exec.
pub fn validate_process(
    process: &oci_spec::runtime::Process,
    field: &str,
) -> Result<(), SpecError> {
    let args = process.args().as_deref().unwrap_or(&[]);
    if args.is_empty() || args[0].is_empty() {
        return Err(invalid(format!("{field}.args"), "empty"));
    }
    if process.command_line().is_some() {
        return Err(SpecError::Unsupported {
            field: format!("{field}.commandLine (Windows only)"),
        });
    }
    // (uid_t)-1 is not a user: setresuid/setresgid/setgroups read it as
    // "leave this id unchanged", so the process would keep the runtime's
    // root (crun CVE-2026-30892, containerd CVE-2024-40635 class).
    let user = process.user();
    let ids = [
        (format!("{field}.user.uid"), user.uid()),
        (format!("{field}.user.gid"), user.gid()),
    ]
    .into_iter()
    .chain(
        user.additional_gids()
            .as_deref()
            .unwrap_or(&[])
            .iter()
            .enumerate()
            .map(|(i, g)| (format!("{field}.user.additionalGids[{i}]"), *g)),
    );
    for (name, id) in ids {
        if id == u32::MAX {
            return Err(invalid(name, "4294967295 is (uid_t)-1, not an id"));
        }
    }
    if !process.cwd().is_absolute() {
        return Err(invalid(
            format!("{field}.cwd"),
            format!("{:?} is not absolute", process.cwd()),
        ));
    }
    for (i, e) in process.env().as_deref().unwrap_or(&[]).iter().enumerate() {
        if !e.contains('=') || e.starts_with('=') || e.contains('\0') {
            return Err(invalid(
                format!("{field}.env[{i}]"),
                format!("{e:?} is not KEY=value"),
            ));
        }
    }
    if let Some(caps) = process.capabilities() {
        crate::capabilities::validate(caps)
            .map_err(|e| invalid(format!("{field}.capabilities"), e.to_string()))?;
    }
    if process
        .apparmor_profile()
        .as_ref()
        .is_some_and(|p| !p.is_empty())
        && !crate::lsm::apparmor_enabled()
    {
        return Err(invalid(
            format!("{field}.apparmorProfile"),
            "AppArmor is not enabled on this host",
        ));
    }
    if process
        .selinux_label()
        .as_ref()
        .is_some_and(|p| !p.is_empty())
        && !crate::lsm::selinux_enabled()
    {
        return Err(invalid(
            format!("{field}.selinuxLabel"),
            "SELinux is not enabled on this host",
        ));
    }
    if let Some(adj) = process.oom_score_adj() {
        if !(-1000..=1000).contains(&adj) {
            return Err(invalid(
                format!("{field}.oomScoreAdj"),
                format!("{adj} is outside -1000..1000"),
            ));
        }
    }
    let mut seen = HashSet::new();
    for (i, r) in process
        .rlimits()
        .as_deref()
        .unwrap_or(&[])
        .iter()
        .enumerate()
    {
        if !seen.insert(format!("{:?}", r.typ())) {
            return Err(invalid(
                format!("{field}.rlimits[{i}]"),
                format!("duplicate {:?}", r.typ()),
            ));
        }
        if r.soft() > r.hard() {
            return Err(invalid(
                format!("{field}.rlimits[{i}]"),
                "soft limit above hard limit",
            ));
        }
    }
    if let Some(s) = process.scheduler() {
        crate::process::validate_scheduler(s)
            .map_err(|m| invalid(format!("{field}.scheduler"), m))?;
    }
    if let Some(p) = process.io_priority() {
        if !(0..=7).contains(&p.priority()) {
            return Err(invalid(
                format!("{field}.ioPriority.priority"),
                "must be 0..7",
            ));
        }
    }
    if let Some(a) = process.exec_cpu_affinity() {
        for (name, v) in [("initial", a.initial()), ("final", a.cpu_affinity_final())] {
            if let Some(v) = v {
                crate::process::parse_cpu_list(v)
                    .map_err(|m| invalid(format!("{field}.execCPUAffinity.{name}"), m))?;
            }
        }
    }
    Ok(())
}

fn validate_version(version: &str) -> Result<(), SpecError> {
    let mut parts = version.split(['.', '-', '+']);
    let major = parts.next().and_then(|m| m.parse::<u32>().ok());
    match major {
        Some(1) => Ok(()),
        _ => Err(invalid(
            "ociVersion",
            format!(
                "{version:?} is not a 1.x runtime-spec version (wren implements {OCI_VERSION})"
            ),
        )),
    }
}

/// The mappings given with a user namespace joined by path must be that
/// namespace's. Checked when the path names a process's namespace
/// (`/proc/<pid>/ns/user`, whose maps are readable); otherwise the kernel's
/// maps stand and the spec's are not used.
fn check_joined_maps(path: &Path, linux: &oci_spec::runtime::Linux) -> Result<(), SpecError> {
    let mut parts = path.components().skip(1);
    let pid = match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(p), Some(pid), Some(ns), Some(user))
            if p.as_os_str() == "proc" && ns.as_os_str() == "ns" && user.as_os_str() == "user" =>
        {
            pid.as_os_str().to_string_lossy().into_owned()
        }
        _ => return Ok(()),
    };
    let norm = |text: &str| -> Vec<(u64, u64, u64)> {
        let mut v: Vec<(u64, u64, u64)> = text
            .lines()
            .filter_map(|l| {
                let f: Vec<u64> = l
                    .split_whitespace()
                    .filter_map(|x| x.parse().ok())
                    .collect();
                (f.len() == 3).then(|| (f[0], f[1], f[2]))
            })
            .collect();
        v.sort();
        v
    };
    for (field, file, map) in [
        ("linux.uidMappings", "uid_map", linux.uid_mappings()),
        ("linux.gidMappings", "gid_map", linux.gid_mappings()),
    ] {
        let Some(map) = map.as_deref().filter(|m| !m.is_empty()) else {
            continue;
        };
        let Ok(actual) = std::fs::read_to_string(format!("/proc/{pid}/{file}")) else {
            continue;
        };
        if norm(&crate::namespaces::format_id_map(map)) != norm(&actual) {
            return Err(invalid(
                field,
                format!(
                    "differ from the mappings of the user namespace {} it joins",
                    path.display()
                ),
            ));
        }
    }
    Ok(())
}

fn validate_id_map(
    map: &[oci_spec::runtime::LinuxIdMapping],
    field: &str,
) -> Result<(), SpecError> {
    if map.is_empty() {
        return Err(invalid(
            field,
            "a new user namespace needs at least one mapping",
        ));
    }
    if map.len() > 340 {
        return Err(invalid(field, "more than 340 mappings"));
    }
    let mut ranges: Vec<(u64, u64)> = Vec::new();
    for (i, m) in map.iter().enumerate() {
        if m.size() == 0 {
            return Err(invalid(format!("{field}[{i}].size"), "zero"));
        }
        let start = m.container_id() as u64;
        let end = start + m.size() as u64;
        if end > u32::MAX as u64 + 1 || m.host_id() as u64 + m.size() as u64 > u32::MAX as u64 + 1 {
            return Err(invalid(
                format!("{field}[{i}]"),
                "range overflows 32-bit ids",
            ));
        }
        if ranges.iter().any(|&(s, e)| start < e && s < end) {
            return Err(invalid(format!("{field}[{i}]"), "overlaps another mapping"));
        }
        ranges.push((start, end));
    }
    Ok(())
}

/// True when `id` (a container id) falls in one of `map`'s ranges.
fn maps_id(map: &[oci_spec::runtime::LinuxIdMapping], id: u32) -> bool {
    map.iter()
        .any(|m| id >= m.container_id() && (id as u64) < m.container_id() as u64 + m.size() as u64)
}

/// In a new user namespace the runtime works as the namespace's root (its
/// mounts carry uid/gid 0 and gid 5 for devpts), and the process must be
/// someone the namespace knows: container root and the process's ids must
/// be mapped, as runc requires. An unmapped one would otherwise fail deep
/// in the mounts with EOVERFLOW.
fn check_ids_mapped(spec: &Spec, linux: &oci_spec::runtime::Linux) -> Result<(), SpecError> {
    let uids = linux.uid_mappings().as_deref().unwrap_or(&[]);
    let gids = linux.gid_mappings().as_deref().unwrap_or(&[]);
    if !maps_id(uids, 0) {
        return Err(invalid(
            "linux.uidMappings",
            "container uid 0 (root) is not mapped",
        ));
    }
    if !maps_id(gids, 0) {
        return Err(invalid(
            "linux.gidMappings",
            "container gid 0 (root) is not mapped",
        ));
    }
    let Some(user) = spec.process().as_ref().map(|p| p.user()) else {
        return Ok(());
    };
    if !maps_id(uids, user.uid()) {
        return Err(invalid(
            "process.user.uid",
            format!("uid {} is not mapped by linux.uidMappings", user.uid()),
        ));
    }
    if !maps_id(gids, user.gid()) {
        return Err(invalid(
            "process.user.gid",
            format!("gid {} is not mapped by linux.gidMappings", user.gid()),
        ));
    }
    if let Some(g) = user
        .additional_gids()
        .iter()
        .flatten()
        .find(|&&g| !maps_id(gids, g))
    {
        return Err(invalid(
            "process.user.additionalGids",
            format!("gid {g} is not mapped by linux.gidMappings"),
        ));
    }
    Ok(())
}

/// The namespaces of `spec`, checked: no duplicate types, and every path
/// given is a namespace of the stated type.
pub fn namespaces(spec: &Spec) -> Result<Vec<Namespace>, SpecError> {
    let list = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().clone())
        .unwrap_or_default();
    let mut out: Vec<Namespace> = Vec::new();
    for (i, ns) in list.iter().enumerate() {
        let kind = ns.typ();
        if out.iter().any(|n| n.kind == kind) {
            return Err(invalid(
                format!("linux.namespaces[{i}]"),
                format!("duplicate {kind:?} namespace"),
            ));
        }
        let path = ns.path().clone().filter(|p| !p.as_os_str().is_empty());
        if let Some(p) = &path {
            crate::namespaces::check_path(kind, p)
                .map_err(|m| invalid(format!("linux.namespaces[{i}].path"), m))?;
        }
        out.push(Namespace { kind, path });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: &str) -> Spec {
        parse(json.as_bytes(), Path::new("config.json")).unwrap()
    }

    const BASE: &str = r#"{"ociVersion":"1.0.2","root":{"path":"rootfs"},
        "process":{"args":["sh"],"cwd":"/","user":{"uid":0,"gid":0}},
        "linux":{"namespaces":[{"type":"mount"},{"type":"pid"}]}}"#;

    #[test]
    fn type_errors_name_the_field() {
        let base: serde_json::Value = serde_json::from_str(BASE).unwrap();
        for (pointer, bad, field) in [
            (
                "/linux/namespaces/1/type",
                serde_json::json!("bogus"),
                "linux.namespaces[1]",
            ),
            ("/process/user/uid", serde_json::json!(-1), "process.user"),
            ("/process/args", serde_json::json!("sh"), "process.args"),
            ("/root", serde_json::json!(5), "root"),
            ("/hostname", serde_json::json!(7), "hostname"),
            (
                "/linux/resources",
                serde_json::json!({"memory": {"limit": "x"}}),
                "linux.resources.memory",
            ),
        ] {
            let mut v = base.clone();
            match v.pointer_mut(pointer) {
                Some(slot) => *slot = bad,
                None => {
                    let (parent, key) = pointer.rsplit_once('/').unwrap();
                    v.pointer_mut(parent).unwrap()[key] = bad;
                }
            }
            let err = parse(v.to_string().as_bytes(), Path::new("config.json")).unwrap_err();
            match &err {
                SpecError::Invalid { field: f, .. } => assert_eq!(f, field, "{pointer}: {err}"),
                other => panic!("{pointer}: {other}"),
            }
        }
        // Not JSON at all: the path and serde's line and column.
        let err = parse(b"{", Path::new("config.json")).unwrap_err();
        assert!(matches!(err, SpecError::Parse { .. }), "{err}");
    }

    /// The direct path and the diagnosing one give the same spec, and a
    /// repeated key (which only the diagnosing one takes) still parses,
    /// the last value winning as in Go.
    #[test]
    fn direct_and_diagnosed_parses_agree() {
        let full = serde_json::json!({
            "ociVersion": "1.1.0",
            "root": {"path": "rootfs", "readonly": true},
            "hostname": "h",
            "annotations": {"a": "b"},
            "mounts": [{"destination": "/proc", "type": "proc", "source": "proc",
                        "options": ["nosuid", "noexec"]}],
            "process": {"args": ["sh", "-c", "true"], "cwd": "/", "env": ["A=1"],
                        "user": {"uid": 1000, "gid": 1000, "additionalGids": [5]},
                        "capabilities": {"bounding": ["CAP_CHOWN", "CAP_KILL"],
                                         "effective": ["CAP_KILL"]},
                        "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
                        "noNewPrivileges": true},
            "linux": {
                "namespaces": [{"type": "mount"}, {"type": "pid"}, {"type": "network"}],
                "resources": {"memory": {"limit": 67108864},
                              "devices": [{"allow": false, "access": "rwm"}],
                              "pids": {"limit": 100}},
                "maskedPaths": ["/proc/kcore"],
                "readonlyPaths": ["/proc/sys"],
                "sysctl": {"net.ipv4.ip_forward": "1"},
                "seccomp": {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1,
                            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
                            "syscalls": [
                                {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
                                {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                                 "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]}]}
            }
        })
        .to_string();
        let direct = parse(full.as_bytes(), Path::new("c")).unwrap();
        let diagnosed = parse_diagnosed(full.as_bytes(), Path::new("c")).unwrap();
        assert_eq!(direct, diagnosed);
        assert!(
            serde_json::from_slice::<Spec>(full.as_bytes()).is_ok(),
            "the direct path took it"
        );

        let repeated = BASE.replace(
            r#""ociVersion":"1.0.2","#,
            r#""ociVersion":"0.0.0","ociVersion":"1.0.2","#,
        );
        assert!(serde_json::from_slice::<Spec>(repeated.as_bytes()).is_err());
        assert_eq!(spec(&repeated).version(), "1.0.2");
    }

    #[test]
    fn accepts_a_minimal_spec_and_newer_minor_versions() {
        validate(&spec(BASE)).unwrap();
        validate(&spec(&BASE.replace("1.0.2", "1.9.0"))).unwrap();
    }

    #[test]
    fn rejects_other_major_versions() {
        let err = validate(&spec(&BASE.replace("1.0.2", "2.0.0"))).unwrap_err();
        assert!(err.to_string().starts_with("ociVersion"), "{err}");
    }

    #[test]
    fn rejects_duplicate_namespaces() {
        let s = BASE.replace(r#"{"type":"pid"}"#, r#"{"type":"pid"},{"type":"pid"}"#);
        let err = validate(&spec(&s)).unwrap_err();
        assert!(err.to_string().contains("linux.namespaces[2]"), "{err}");
    }

    #[test]
    fn rejects_hostname_without_uts_namespace() {
        let s = BASE.replace(r#""root""#, r#""hostname":"x","root""#);
        let err = validate(&spec(&s)).unwrap_err();
        assert!(err.to_string().starts_with("hostname"), "{err}");
    }

    #[test]
    fn rejects_relative_cwd_and_bad_env() {
        let err = validate(&spec(&BASE.replace(r#""cwd":"/""#, r#""cwd":"tmp""#))).unwrap_err();
        assert!(err.to_string().contains("process.cwd"), "{err}");
        let s = BASE.replace(r#""cwd":"/""#, r#""cwd":"/","env":["PATH=/bin","NOVALUE"]"#);
        let err = validate(&spec(&s)).unwrap_err();
        assert!(err.to_string().contains("process.env[1]"), "{err}");
    }

    #[test]
    fn rejects_minus_one_as_a_user_or_group() {
        let user = |u: &str| BASE.replace(r#""user":{"uid":0,"gid":0}"#, &format!(r#""user":{u}"#));
        for (u, field) in [
            (r#"{"uid":4294967295,"gid":0}"#, "process.user.uid"),
            (r#"{"uid":1000,"gid":4294967295}"#, "process.user.gid"),
            (
                r#"{"uid":1000,"gid":1000,"additionalGids":[5,4294967295]}"#,
                "process.user.additionalGids[1]",
            ),
        ] {
            let err = validate(&spec(&user(u))).unwrap_err();
            assert!(err.to_string().contains(field), "{u}: {err}");
        }
        validate(&spec(&user(r#"{"uid":4294967294,"gid":2147483648}"#))).unwrap();
    }

    #[test]
    fn rejects_unsupported_fields() {
        let s = BASE.replace(r#""linux":{"#, r#""linux":{"intelRdt":{"closID":"x"},"#);
        let err = validate(&spec(&s)).unwrap_err();
        assert!(err.to_string().contains("linux.intelRdt"), "{err}");
    }

    #[test]
    fn a_new_user_namespace_must_map_root_and_the_process_ids() {
        let spec = |maps: &str, user: &str| -> Spec {
            serde_json::from_str(&format!(
                r#"{{"ociVersion":"1.0.2","root":{{"path":"rootfs"}},
                "process":{{"cwd":"/","args":["sh"],"user":{user}}},
                "linux":{{"namespaces":[{{"type":"user"}},{{"type":"mount"}}],{maps}}}}}"#
            ))
            .unwrap()
        };
        let both = |u: &str, g: &str| format!(r#""uidMappings":[{u}],"gidMappings":[{g}]"#);
        let m =
            |c: u32, h: u32, n: u32| format!(r#"{{"containerID":{c},"hostID":{h},"size":{n}}}"#);
        let root = r#"{"uid":0,"gid":0}"#;
        let err = |maps: String, user: &str| validate(&spec(&maps, user)).unwrap_err().to_string();
        assert!(err(both(&m(1000, 300000, 10), &m(0, 300000, 65536)), root)
            .contains("linux.uidMappings: container uid 0 (root) is not mapped"));
        assert!(
            err(both(&m(0, 300000, 65536), &m(1, 300000, 10)), root).contains("linux.gidMappings")
        );
        let e = err(
            both(&m(0, 300000, 1000), &m(0, 300000, 65536)),
            r#"{"uid":1000,"gid":0}"#,
        );
        assert!(
            e.contains("process.user.uid: uid 1000 is not mapped"),
            "{e}"
        );
        let e = err(
            both(&m(0, 300000, 65536), &m(0, 300000, 100)),
            r#"{"uid":0,"gid":0,"additionalGids":[5,4000]}"#,
        );
        assert!(e.contains("process.user.additionalGids: gid 4000"), "{e}");
        assert!(validate(&spec(
            &both(&m(0, 300000, 65536), &m(0, 300000, 65536)),
            root
        ))
        .is_ok());
    }

    #[test]
    fn rejects_overlapping_id_maps() {
        let s = BASE.replace(
            r#""linux":{"#,
            r#""linux":{"uidMappings":[{"containerID":0,"hostID":1000,"size":10},{"containerID":5,"hostID":2000,"size":10}],
              "gidMappings":[{"containerID":0,"hostID":1000,"size":10}],"#,
        )
        .replace(r#"{"type":"pid"}"#, r#"{"type":"pid"},{"type":"user"}"#);
        let err = validate(&spec(&s)).unwrap_err();
        assert!(err.to_string().contains("linux.uidMappings[1]"), "{err}");
    }

    #[test]
    fn parse_errors_name_the_file() {
        let err = parse(b"{", Path::new("/b/config.json")).unwrap_err();
        assert!(err.to_string().contains("/b/config.json"), "{err}");
    }
}

/// A default container spec like `runc spec`: the usual mounts, masked and
/// read-only paths, a small capability set, private namespaces. `args` is
/// the process to run; `terminal` whether it gets a pty.
pub fn example(args: &[String], terminal: bool) -> Spec {
    serde_json::from_value(example_json(args, terminal))
        .expect("the built-in example spec is valid")
}

/// [`example`] as JSON, for callers that only pass the spec on (wrend):
/// they need not link the typed deserializers.
pub fn example_json(args: &[String], terminal: bool) -> serde_json::Value {
    serde_json::json!({
        "ociVersion": OCI_VERSION,
        "process": {
            "terminal": terminal,
            "user": {"uid": 0, "gid": 0},
            "args": args,
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {
                "bounding": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
                "effective": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
                "permitted": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": true},
        "hostname": "wren",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
        ],
        "linux": {
            "resources": {"devices": [{"allow": false, "access": "rwm"}]},
            "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}, {"type": "cgroup"}],
            "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
        }
    })
}

#[cfg(test)]
mod example_tests {
    #[test]
    fn example_spec_validates() {
        super::validate(&super::example(&["sh".into()], true)).unwrap();
    }

    #[test]
    fn init_annotation_is_true_false_or_refused() {
        let with = |v: Option<&str>| {
            let mut j = super::example_json(&["sh".into()], false);
            if let Some(v) = v {
                j["annotations"][super::INIT_ANNOTATION] = v.into();
            }
            let spec: oci_spec::runtime::Spec = serde_json::from_value(j).unwrap();
            super::validate(&spec).map(|()| super::init_reaper(&spec).unwrap())
        };
        assert!(!with(None).unwrap());
        assert!(!with(Some("false")).unwrap());
        assert!(with(Some("true")).unwrap());
        let err = with(Some("yes")).unwrap_err().to_string();
        assert!(
            err.contains("run.wren.init") && err.contains("yes"),
            "{err}"
        );
    }
}
