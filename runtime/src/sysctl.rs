//! `linux.sysctl`: only keys that belong to a namespace the container owns
//! are accepted (the rest would change the host), and values are written
//! through the trusted procfs handle. Checks run in the caller; writes in
//! the init process.

use std::path::PathBuf;

use oci_spec::runtime::LinuxNamespaceType;

use crate::namespaces::Namespace;
use crate::procfs::Procfs;

#[derive(Debug, thiserror::Error)]
#[error("write sysctl {key}")]
pub struct SysctlError {
    pub key: String,
    #[source]
    pub source: std::io::Error,
}

const IPC_KEYS: [&str; 8] = [
    "kernel.msgmax",
    "kernel.msgmnb",
    "kernel.msgmni",
    "kernel.sem",
    "kernel.shmall",
    "kernel.shmmax",
    "kernel.shmmni",
    "kernel.shm_rmid_forced",
];

/// The namespace a sysctl `key` belongs to (and its name), if any.
pub fn namespace_of(key: &str) -> Option<(LinuxNamespaceType, &'static str)> {
    if IPC_KEYS.contains(&key) || key.starts_with("fs.mqueue.") {
        Some((LinuxNamespaceType::Ipc, "ipc"))
    } else if key.starts_with("net.") {
        Some((LinuxNamespaceType::Network, "network"))
    } else if key == "kernel.hostname" || key == "kernel.domainname" {
        Some((LinuxNamespaceType::Uts, "uts"))
    } else if key.starts_with("user.") {
        Some((LinuxNamespaceType::User, "user"))
    } else {
        None
    }
}

/// What a refused key is told.
pub const NOT_NAMESPACED: &str = "not a namespaced sysctl; it would change the host";

/// Is `key` namespaced by a namespace the container creates?
pub fn check_namespaced(key: &str, namespaces: &[Namespace]) -> Result<(), String> {
    let own = |t: LinuxNamespaceType| namespaces.iter().any(|n| n.kind == t && n.path.is_none());
    let joined = |t: LinuxNamespaceType| namespaces.iter().any(|n| n.kind == t);
    let Some((needs, what)) = namespace_of(key) else {
        return Err(NOT_NAMESPACED.into());
    };
    if own(needs) || joined(needs) {
        Ok(())
    } else {
        Err(format!(
            "needs the container to have its own {what} namespace"
        ))
    }
}

/// `net.ipv4.ip_forward` → `sys/net/ipv4/ip_forward`.
pub fn proc_path(key: &str) -> PathBuf {
    PathBuf::from("sys").join(key.replace('.', "/"))
}

/// Write every sysctl.
pub fn apply(procfs: &Procfs, sysctl: &[(String, String)]) -> Result<(), SysctlError> {
    for (key, value) in sysctl {
        let rel = proc_path(key);
        let rel = rel.to_string_lossy();
        procfs
            .write(&rel, value.as_bytes())
            .map_err(|source| SysctlError {
                key: key.clone(),
                source,
            })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(kinds: &[LinuxNamespaceType]) -> Vec<Namespace> {
        kinds
            .iter()
            .map(|&kind| Namespace { kind, path: None })
            .collect()
    }

    #[test]
    fn only_namespaced_keys_pass() {
        let n = ns(&[LinuxNamespaceType::Network, LinuxNamespaceType::Ipc]);
        check_namespaced("net.ipv4.ip_forward", &n).unwrap();
        check_namespaced("kernel.shmmax", &n).unwrap();
        check_namespaced("fs.mqueue.msg_max", &n).unwrap();
        assert!(check_namespaced("kernel.core_pattern", &n)
            .unwrap_err()
            .contains("host"));
        assert!(check_namespaced("vm.swappiness", &n).is_err());
        let err =
            check_namespaced("net.ipv4.ip_forward", &ns(&[LinuxNamespaceType::Ipc])).unwrap_err();
        assert!(err.contains("network"), "{err}");
    }

    #[test]
    fn keys_become_proc_paths() {
        assert_eq!(
            proc_path("net.ipv4.ip_forward"),
            PathBuf::from("sys/net/ipv4/ip_forward")
        );
    }
}
