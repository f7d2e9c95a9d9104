//! AppArmor profiles and SELinux labels for the container process, written
//! through the trusted procfs handle so they take effect at execve. Asking
//! for one on a host without that LSM is an error, never a silent no-op.
//! Detection runs in the caller; writes run in the init process.

use std::path::Path;

use crate::procfs::Procfs;

#[derive(Debug, thiserror::Error)]
pub enum LsmError {
    #[error("set AppArmor profile {profile:?}")]
    AppArmor {
        profile: String,
        #[source]
        source: std::io::Error,
    },
    #[error("set SELinux exec label {label:?}")]
    Selinux {
        label: String,
        #[source]
        source: std::io::Error,
    },
}

/// Is AppArmor enabled on this host?
pub fn apparmor_enabled() -> bool {
    std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .map(|v| v.trim_start().starts_with('Y'))
        .unwrap_or(false)
        && Path::new("/sys/kernel/security/apparmor").exists()
}

/// Is SELinux enabled on this host?
pub fn selinux_enabled() -> bool {
    Path::new("/sys/fs/selinux/enforce").exists()
}

/// Apply the profile at the next execve.
pub fn set_apparmor(procfs: &Procfs, profile: &str) -> Result<(), LsmError> {
    let value = format!("exec {profile}");
    procfs
        .write_self("attr/apparmor/exec", value.as_bytes())
        .or_else(|_| procfs.write_self("attr/exec", value.as_bytes()))
        .map_err(|source| LsmError::AppArmor {
            profile: profile.to_string(),
            source,
        })
}

/// Apply the label at the next execve.
pub fn set_selinux(procfs: &Procfs, label: &str) -> Result<(), LsmError> {
    procfs
        .write_self("attr/exec", label.as_bytes())
        .map_err(|source| LsmError::Selinux {
            label: label.to_string(),
            source,
        })
}
