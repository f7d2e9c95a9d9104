//! OCI `process.capabilities` → the five capability sets of the container
//! process.
//!
//! Two halves, in two processes:
//! - [`validate`] and [`resolve`] run in the **parent** (shim or `wren-oci`)
//!   while a container or exec is created: they check the sets are consistent
//!   and turn them into [`CapabilitySets`] bit masks for the running kernel,
//!   skipping (with a debug log) capabilities newer than its `cap_last_cap`,
//!   as runc does.
//! - [`CapabilitySets::drop_bounding`], [`keep_caps_across_setuid`] and
//!   [`CapabilitySets::apply`] run in the **container's init / exec process**,
//!   single-threaded, and never log.
//!
//! The init must call them in this order (runc's `finalizeNamespace` order):
//!
//! 1. if `process.noNewPrivileges` is false and there is a seccomp profile:
//!    `SeccompProgram::load` now, while `CAP_SYS_ADMIN` is still effective;
//! 2. [`CapabilitySets::drop_bounding`] — needs `CAP_SETPCAP`, so before the
//!    uid changes;
//! 3. [`keep_caps_across_setuid`];
//! 4. `setgroups`, `setresgid`, `setresuid` to the container user (the kernel
//!    keeps the permitted set, clears effective and ambient);
//! 5. [`CapabilitySets::apply`] — `capset` of effective/permitted/inheritable
//!    in one call, then the ambient set;
//! 6. if `noNewPrivileges`: `prctl(PR_SET_NO_NEW_PRIVS)`, then
//!    `SeccompProgram::load` as late as possible, just before `execve`.
//!
//! Inheritable is empty unless the spec lists capabilities for it
//! (CVE-2022-29162). A set that is absent from the spec is empty.

use std::path::Path;

use oci_spec::runtime::{Capabilities, Capability, LinuxCapabilities};
use serde::{Deserialize, Serialize};

use crate::sys::caps as raw;

/// Where the kernel says which capability is its last.
const CAP_LAST_CAP: &str = "/proc/sys/kernel/cap_last_cap";

/// Kernel names, indexed by capability number.
const NAMES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// Errors from checking or applying capabilities. Fields are config.json
/// paths such as `process.capabilities.effective[2]`.
#[derive(Debug, thiserror::Error)]
pub enum CapsError {
    /// A capability name the spec does not define.
    #[error("{field}: unknown capability {name:?}")]
    UnknownName { field: String, name: String },
    /// `process.capabilities` does not deserialize.
    #[error("process.capabilities: invalid capabilities")]
    ParseCapabilities {
        #[source]
        source: serde_json::Error,
    },
    /// A set asks for a capability the kernel would refuse it.
    #[error("process.capabilities.{set}: {cap} is not in process.capabilities.{superset}")]
    NotSubset {
        set: &'static str,
        cap: String,
        superset: &'static str,
    },
    /// Reading `/proc/sys/kernel/cap_last_cap`.
    #[error("read {path}")]
    ReadLastCap {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// `cap_last_cap` does not hold a number.
    #[error("parse {path}: {value:?} is not a capability number")]
    ParseLastCap { path: String, value: String },
    /// `prctl(PR_CAPBSET_READ)`.
    #[error("prctl(PR_CAPBSET_READ, {cap})")]
    ReadBounding {
        cap: String,
        #[source]
        source: std::io::Error,
    },
    /// `prctl(PR_CAPBSET_DROP)`.
    #[error("prctl(PR_CAPBSET_DROP, {cap})")]
    DropBounding {
        cap: String,
        #[source]
        source: std::io::Error,
    },
    /// `capset(2)` of effective, permitted and inheritable.
    #[error(
        "capset(effective {effective:#x}, permitted {permitted:#x}, inheritable {inheritable:#x})"
    )]
    SetCaps {
        effective: u64,
        permitted: u64,
        inheritable: u64,
        #[source]
        source: std::io::Error,
    },
    /// `prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)`.
    #[error("prctl(PR_CAP_AMBIENT_CLEAR_ALL)")]
    ClearAmbient {
        #[source]
        source: std::io::Error,
    },
    /// `prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE)`.
    #[error("prctl(PR_CAP_AMBIENT_RAISE, {cap})")]
    RaiseAmbient {
        cap: String,
        #[source]
        source: std::io::Error,
    },
    /// `prctl(PR_SET_KEEPCAPS)`.
    #[error("prctl(PR_SET_KEEPCAPS)")]
    SetKeepCaps {
        #[source]
        source: std::io::Error,
    },
}

/// The kernel number of an OCI capability.
pub fn number(cap: Capability) -> u32 {
    match cap {
        Capability::Chown => 0,
        Capability::DacOverride => 1,
        Capability::DacReadSearch => 2,
        Capability::Fowner => 3,
        Capability::Fsetid => 4,
        Capability::Kill => 5,
        Capability::Setgid => 6,
        Capability::Setuid => 7,
        Capability::Setpcap => 8,
        Capability::LinuxImmutable => 9,
        Capability::NetBindService => 10,
        Capability::NetBroadcast => 11,
        Capability::NetAdmin => 12,
        Capability::NetRaw => 13,
        Capability::IpcLock => 14,
        Capability::IpcOwner => 15,
        Capability::SysModule => 16,
        Capability::SysRawio => 17,
        Capability::SysChroot => 18,
        Capability::SysPtrace => 19,
        Capability::SysPacct => 20,
        Capability::SysAdmin => 21,
        Capability::SysBoot => 22,
        Capability::SysNice => 23,
        Capability::SysResource => 24,
        Capability::SysTime => 25,
        Capability::SysTtyConfig => 26,
        Capability::Mknod => 27,
        Capability::Lease => 28,
        Capability::AuditWrite => 29,
        Capability::AuditControl => 30,
        Capability::Setfcap => 31,
        Capability::MacOverride => 32,
        Capability::MacAdmin => 33,
        Capability::Syslog => 34,
        Capability::WakeAlarm => 35,
        Capability::BlockSuspend => 36,
        Capability::AuditRead => 37,
        Capability::Perfmon => 38,
        Capability::Bpf => 39,
        Capability::CheckpointRestore => 40,
    }
}

/// The kernel name of capability number `cap` (`CAP_<n>` for ones newer
/// than this table).
/// Every capability name the kernel headers know, in number order.
pub fn known_names() -> &'static [&'static str] {
    &NAMES
}

pub fn name(cap: u32) -> String {
    NAMES
        .get(cap as usize)
        .map_or_else(|| format!("CAP_{cap}"), |n| (*n).to_owned())
}

fn mask(set: Option<&Capabilities>) -> u64 {
    set.into_iter()
        .flatten()
        .fold(0, |m, &c| m | (1u64 << number(c)))
}

/// Capability numbers in `mask`, lowest first.
fn bits(mask: u64) -> impl Iterator<Item = u32> {
    (0..64).filter(move |b| mask & (1u64 << b) != 0)
}

const SET_NAMES: [&str; 5] = [
    "bounding",
    "effective",
    "inheritable",
    "permitted",
    "ambient",
];

/// Parses the raw `process.capabilities` JSON object, naming the exact entry
/// of an unknown capability (serde alone reports only a line and column).
pub fn from_json(value: &serde_json::Value) -> Result<LinuxCapabilities, CapsError> {
    for set in SET_NAMES {
        let entries = value.get(set).and_then(serde_json::Value::as_array);
        for (k, entry) in entries.into_iter().flatten().enumerate() {
            if let serde_json::Value::String(s) = entry {
                if serde_json::from_value::<Capability>(entry.clone()).is_err() {
                    return Err(CapsError::UnknownName {
                        field: format!("process.capabilities.{set}[{k}]"),
                        name: s.clone(),
                    });
                }
            }
        }
    }
    serde_json::from_value(value.clone()).map_err(|source| CapsError::ParseCapabilities { source })
}

/// Checks that the kernel can give the process these sets: effective within
/// permitted, inheritable within bounding. Pure; runs in the parent.
pub fn validate(caps: &LinuxCapabilities) -> Result<(), CapsError> {
    let bounding = mask(caps.bounding().as_ref());
    let effective = mask(caps.effective().as_ref());
    let permitted = mask(caps.permitted().as_ref());
    let inheritable = mask(caps.inheritable().as_ref());
    let not_subset = |set, sub: u64, superset, sup: u64| match bits(sub & !sup).next() {
        Some(cap) => Err(CapsError::NotSubset {
            set,
            cap: name(cap),
            superset,
        }),
        None => Ok(()),
    };
    not_subset("effective", effective, "permitted", permitted)?;
    // capset refuses inheritable capabilities outside the bounding set.
    not_subset("inheritable", inheritable, "bounding", bounding)
}

/// The highest capability number the running kernel knows.
pub fn last_cap() -> Result<u32, CapsError> {
    last_cap_from(Path::new(CAP_LAST_CAP))
}

fn last_cap_from(path: &Path) -> Result<u32, CapsError> {
    let text = std::fs::read_to_string(path).map_err(|source| CapsError::ReadLastCap {
        path: path.display().to_string(),
        source,
    })?;
    text.trim()
        .parse::<u32>()
        .ok()
        .filter(|&n| n < 64)
        .ok_or_else(|| CapsError::ParseLastCap {
            path: path.display().to_string(),
            value: text.trim().to_owned(),
        })
}

/// Validates `caps` and resolves them for the running kernel. Runs in the parent.
pub fn resolve(caps: &LinuxCapabilities) -> Result<CapabilitySets, CapsError> {
    resolve_for(caps, last_cap()?)
}

/// [`resolve`] for a kernel whose last capability is `last_cap`. Pure apart
/// from logging.
pub fn resolve_for(caps: &LinuxCapabilities, last_cap: u32) -> Result<CapabilitySets, CapsError> {
    validate(caps)?;
    let known = if last_cap >= 63 {
        u64::MAX
    } else {
        (1u64 << (last_cap + 1)) - 1
    };
    let sets = [
        caps.bounding(),
        caps.effective(),
        caps.inheritable(),
        caps.permitted(),
        caps.ambient(),
    ];
    let [bounding, effective, inheritable, permitted, ambient] = sets.map(|s| mask(s.as_ref()));
    for (set, m) in SET_NAMES
        .iter()
        .zip([bounding, effective, inheritable, permitted, ambient])
    {
        for cap in bits(m & !known) {
            log::debug!(
                "process.capabilities.{set}: {} is unknown to this kernel (cap_last_cap {last_cap}), skipped",
                name(cap)
            );
        }
    }
    // The kernel only raises ambient capabilities that are both permitted and
    // inheritable; like runc, warn and go on without the others.
    let raisable = permitted & inheritable & known;
    for cap in bits(ambient & known & !raisable) {
        log::warn!(
            "process.capabilities.ambient: {} is not in both permitted and inheritable, not raised",
            name(cap)
        );
    }
    Ok(CapabilitySets {
        bounding: bounding & known,
        effective: effective & known,
        inheritable: inheritable & known,
        permitted: permitted & known,
        ambient: ambient & raisable,
        last_cap,
    })
}

/// `prctl(PR_SET_KEEPCAPS, 1)`: keep the permitted set across the change from
/// uid 0 to the container user. Runs in the init, before `setresuid`;
/// `execve` clears the flag again.
pub fn keep_caps_across_setuid() -> Result<(), CapsError> {
    raw::set_keepcaps(true).map_err(|source| CapsError::SetKeepCaps { source })
}

/// Resolves and applies `caps` to the calling thread in one go (bounding,
/// then capset, then ambient). For the init, prefer [`resolve`] in the parent
/// and the split calls described in the module docs.
pub fn apply(caps: &LinuxCapabilities) -> Result<(), CapsError> {
    resolve(caps)?.apply()
}

/// Capability sets resolved for the running kernel, as bit masks by
/// capability number. Made in the parent, sent to and applied by the init.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct CapabilitySets {
    bounding: u64,
    effective: u64,
    inheritable: u64,
    permitted: u64,
    ambient: u64,
    /// The kernel's last capability: everything up to it and not in
    /// `bounding` is dropped from the bounding set.
    last_cap: u32,
}

impl CapabilitySets {
    /// The bounding set that will remain.
    pub fn bounding(&self) -> u64 {
        self.bounding
    }
    /// The effective set that will be set.
    pub fn effective(&self) -> u64 {
        self.effective
    }
    /// The inheritable set that will be set.
    pub fn inheritable(&self) -> u64 {
        self.inheritable
    }
    /// The permitted set that will be set.
    pub fn permitted(&self) -> u64 {
        self.permitted
    }
    /// The ambient set that will be raised.
    pub fn ambient(&self) -> u64 {
        self.ambient
    }

    /// Drops every capability not in the bounding set. Needs `CAP_SETPCAP`
    /// in the effective set, so the init calls it before changing uid.
    /// One `PR_CAPBSET_DROP` per capability (dropping one already gone is a
    /// no-op); only where the kernel refuses (no `CAP_SETPCAP`, as in a
    /// second call after the uid change) is the capability read back, and
    /// one already gone is fine.
    pub fn drop_bounding(&self) -> Result<(), CapsError> {
        for cap in 0..=self.last_cap {
            if self.bounding & (1u64 << cap) != 0 {
                continue;
            }
            match raw::bounding_drop(cap) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
                    let present =
                        raw::bounding_contains(cap).map_err(|source| CapsError::ReadBounding {
                            cap: name(cap),
                            source,
                        })?;
                    if present {
                        return Err(CapsError::DropBounding {
                            cap: name(cap),
                            source: e,
                        });
                    }
                }
                Err(source) => {
                    return Err(CapsError::DropBounding {
                        cap: name(cap),
                        source,
                    })
                }
            }
        }
        Ok(())
    }

    /// Applies all five sets to the calling thread: the bounding set (a no-op
    /// if [`drop_bounding`](Self::drop_bounding) ran), then effective,
    /// permitted and inheritable in one `capset`, then clears the ambient set
    /// and raises the requested ambient capabilities. Runs in the init after
    /// the uid change.
    pub fn apply(&self) -> Result<(), CapsError> {
        self.drop_bounding()?;
        self.apply_after_bounding()
    }

    /// [`apply`](Self::apply) for a caller that ran
    /// [`drop_bounding`](Self::drop_bounding) already: the other four sets.
    pub fn apply_after_bounding(&self) -> Result<(), CapsError> {
        let sets = raw::CapSets {
            effective: self.effective,
            permitted: self.permitted,
            inheritable: self.inheritable,
        };
        raw::capset(sets).map_err(|source| CapsError::SetCaps {
            effective: self.effective,
            permitted: self.permitted,
            inheritable: self.inheritable,
            source,
        })?;
        raw::ambient_clear_all().map_err(|source| CapsError::ClearAmbient { source })?;
        for cap in bits(self.ambient) {
            raw::ambient_raise(cap).map_err(|source| CapsError::RaiseAmbient {
                cap: name(cap),
                source,
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn caps(v: serde_json::Value) -> LinuxCapabilities {
        from_json(&v).expect("valid capabilities")
    }

    #[test]
    fn names_and_numbers_agree() {
        // Every OCI name maps to the kernel number whose table name it has.
        for (n, kernel_name) in NAMES.iter().enumerate() {
            let cap: Capability = serde_json::from_value(json!(kernel_name)).unwrap();
            assert_eq!(number(cap), n as u32, "{kernel_name}");
        }
        assert_eq!(name(12), "CAP_NET_ADMIN");
        assert_eq!(name(45), "CAP_45");
    }

    #[test]
    fn unknown_name_is_named() {
        let err = from_json(
            &json!({"bounding": ["CAP_CHOWN"], "permitted": ["CAP_CHOWN", "CAP_KILL", "CAP_FOO"]}),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"process.capabilities.permitted[2]: unknown capability "CAP_FOO""#
        );
        let err = from_json(&json!({"bounding": "CAP_CHOWN"})).unwrap_err();
        assert!(matches!(err, CapsError::ParseCapabilities { .. }));
    }

    #[test]
    fn inconsistent_sets_are_refused() {
        let err = validate(&caps(
            json!({"effective": ["CAP_KILL", "CAP_SYS_ADMIN"], "permitted": ["CAP_KILL"]}),
        ))
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "process.capabilities.effective: CAP_SYS_ADMIN is not in process.capabilities.permitted"
        );
        let err = validate(&caps(
            json!({"bounding": ["CAP_KILL"], "inheritable": ["CAP_NET_RAW"]}),
        ))
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "process.capabilities.inheritable: CAP_NET_RAW is not in process.capabilities.bounding"
        );
    }

    #[test]
    fn resolve_masks_skips_new_caps_and_unraisable_ambient() {
        let c = caps(json!({
            "bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_BPF", "CAP_CHECKPOINT_RESTORE"],
            "effective": ["CAP_KILL", "CAP_BPF"],
            "permitted": ["CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_BPF", "CAP_CHOWN"],
            "inheritable": ["CAP_NET_BIND_SERVICE"],
            "ambient": ["CAP_NET_BIND_SERVICE", "CAP_CHOWN"]
        }));
        // A kernel that stops at CAP_PERFMON (38) knows neither BPF nor CHECKPOINT_RESTORE.
        let r = resolve_for(&c, 38).unwrap();
        assert_eq!(r.bounding(), 1 | 1 << 5 | 1 << 10);
        assert_eq!(r.effective(), 1 << 5);
        assert_eq!(r.permitted(), 1 | 1 << 5 | 1 << 10);
        assert_eq!(r.inheritable(), 1 << 10);
        // CHOWN is not inheritable: not raisable.
        assert_eq!(r.ambient(), 1 << 10);
        let r = resolve_for(&c, 40).unwrap();
        assert_eq!(r.bounding() >> 39, 0b11);
        // Absent sets are empty: inheritable stays empty unless asked.
        let r = resolve_for(&caps(json!({"bounding": ["CAP_KILL"]})), 40).unwrap();
        assert_eq!(
            (r.effective(), r.permitted(), r.inheritable(), r.ambient()),
            (0, 0, 0, 0)
        );
    }

    #[test]
    fn last_cap_reads_an_injected_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cap_last_cap");
        std::fs::write(&path, "40\n").unwrap();
        assert_eq!(last_cap_from(&path).unwrap(), 40);
        std::fs::write(&path, "x\n").unwrap();
        assert!(matches!(
            last_cap_from(&path),
            Err(CapsError::ParseLastCap { .. })
        ));
        assert!(
            last_cap().unwrap() >= 40,
            "kernel 5.9+ knows CAP_CHECKPOINT_RESTORE"
        );
    }

    #[test]
    fn sets_round_trip_through_json() {
        let r = resolve_for(
            &caps(json!({"bounding": ["CAP_KILL"], "permitted": ["CAP_KILL"]})),
            40,
        )
        .unwrap();
        let back: CapabilitySets =
            serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(back, r);
    }
}
