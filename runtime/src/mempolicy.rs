//! `linux.memoryPolicy` (runtime-spec 1.3): the NUMA memory policy of the
//! container's init, set with `set_mempolicy(2)` and inherited by every
//! process it starts.
//!
//! [`MemoryPolicy::from_spec`] runs in the caller (it validates the mode,
//! the node list and the flags, so bad input fails `create` naming the
//! field); [`MemoryPolicy::apply`] runs in the init just before the
//! process is set up. Processes started by `exec` join the container's
//! namespaces, not its init's policy, as in runc.

use std::io;

use oci_spec::runtime::{LinuxMemoryPolicy, MemoryPolicyFlagType, MemoryPolicyModeType};
use serde::{Deserialize, Serialize};

const FIELD: &str = "linux.memoryPolicy";

// <linux/mempolicy.h>
const MPOL_DEFAULT: i32 = 0;
const MPOL_PREFERRED: i32 = 1;
const MPOL_BIND: i32 = 2;
const MPOL_INTERLEAVE: i32 = 3;
const MPOL_LOCAL: i32 = 4;
const MPOL_PREFERRED_MANY: i32 = 5;
const MPOL_WEIGHTED_INTERLEAVE: i32 = 6;
const MPOL_F_NUMA_BALANCING: i32 = 1 << 13;
const MPOL_F_RELATIVE_NODES: i32 = 1 << 14;
const MPOL_F_STATIC_NODES: i32 = 1 << 15;

/// Highest node number accepted in `nodes` (the kernel's MAX_NUMNODES is
/// at most 1024; a larger number is a typo, not a machine).
const MAX_NODE: usize = 4095;

/// A validated policy: the `mode` argument (mode | flags) and the node
/// mask of `set_mempolicy(2)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryPolicy {
    mode: i32,
    mask: Vec<u64>,
}

fn invalid(message: impl Into<String>) -> crate::spec::SpecError {
    crate::spec::SpecError::Invalid {
        field: FIELD.into(),
        message: message.into(),
    }
}

/// Parses a node list ("0-3,7") into a bit mask.
fn parse_nodes(list: &str) -> Result<Vec<u64>, String> {
    let mut mask: Vec<u64> = Vec::new();
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (part, part),
        };
        let num = |s: &str| {
            s.parse::<usize>()
                .ok()
                .filter(|n| *n <= MAX_NODE)
                .ok_or_else(|| {
                    format!("nodes: {part:?} is not a node number or range (0-{MAX_NODE})")
                })
        };
        let (lo, hi) = (num(lo)?, num(hi)?);
        if lo > hi {
            return Err(format!("nodes: range {part:?} is backwards"));
        }
        for n in lo..=hi {
            if mask.len() <= n / 64 {
                mask.resize(n / 64 + 1, 0);
            }
            mask[n / 64] |= 1 << (n % 64);
        }
    }
    Ok(mask)
}

impl MemoryPolicy {
    /// Validates `p` as the kernel would, naming the field.
    pub fn from_spec(p: &LinuxMemoryPolicy) -> Result<MemoryPolicy, crate::spec::SpecError> {
        use MemoryPolicyModeType as M;
        let (mode, needs_nodes, takes_nodes) = match p.mode() {
            M::MpolDefault => (MPOL_DEFAULT, false, false),
            M::MpolLocal => (MPOL_LOCAL, false, false),
            // An empty mask means "the local node".
            M::MpolPreferred => (MPOL_PREFERRED, false, true),
            M::MpolBind => (MPOL_BIND, true, true),
            M::MpolInterleave => (MPOL_INTERLEAVE, true, true),
            M::MpolWeightedInterleave => (MPOL_WEIGHTED_INTERLEAVE, true, true),
            M::MpolPreferredMany => (MPOL_PREFERRED_MANY, true, true),
        };
        let mask = parse_nodes(p.nodes().as_deref().unwrap_or("")).map_err(invalid)?;
        let empty = mask.iter().all(|w| *w == 0);
        if needs_nodes && empty {
            return Err(invalid(format!("mode {} needs nodes", p.mode())));
        }
        if !takes_nodes && !empty {
            return Err(invalid(format!("mode {} takes no nodes", p.mode())));
        }
        let mut flags = 0;
        for f in p.flags().as_deref().unwrap_or(&[]) {
            flags |= match f {
                MemoryPolicyFlagType::MpolFNumaBalancing => MPOL_F_NUMA_BALANCING,
                MemoryPolicyFlagType::MpolFRelativeNodes => MPOL_F_RELATIVE_NODES,
                MemoryPolicyFlagType::MpolFStaticNodes => MPOL_F_STATIC_NODES,
            };
        }
        if flags & MPOL_F_RELATIVE_NODES != 0 && flags & MPOL_F_STATIC_NODES != 0 {
            return Err(invalid(
                "flags: MPOL_F_RELATIVE_NODES and MPOL_F_STATIC_NODES exclude each other",
            ));
        }
        if flags & MPOL_F_NUMA_BALANCING != 0 && mode != MPOL_BIND {
            return Err(invalid(
                "flags: MPOL_F_NUMA_BALANCING goes with MPOL_BIND only",
            ));
        }
        if (mode == MPOL_DEFAULT || mode == MPOL_LOCAL) && flags != 0 {
            return Err(invalid(format!("mode {} takes no flags", p.mode())));
        }
        Ok(MemoryPolicy {
            mode: mode | flags,
            mask,
        })
    }

    /// `set_mempolicy(2)` for the calling process. A kernel without NUMA
    /// (ENOSYS) has only the default policy: that one is then a no-op,
    /// any other an error.
    pub fn apply(&self) -> io::Result<()> {
        let maxnode = (self.mask.len() * 64) as libc::c_ulong;
        let ptr = if self.mask.is_empty() {
            std::ptr::null()
        } else {
            self.mask.as_ptr()
        };
        // SAFETY: `ptr` is null or points at `mask.len()` words, which the
        // kernel reads up to `maxnode` bits of (it ignores the last bit,
        // hence the + 1).
        let ret = unsafe {
            libc::syscall(
                libc::SYS_set_mempolicy,
                self.mode,
                ptr,
                maxnode + u64::from(!self.mask.is_empty()) as libc::c_ulong,
            )
        };
        if ret == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ENOSYS) {
            if self.mode == MPOL_DEFAULT {
                return Ok(());
            }
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "set_mempolicy: the kernel has no NUMA support",
            ));
        }
        Err(io::Error::new(e.kind(), format!("set_mempolicy: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(json: &str) -> Result<MemoryPolicy, String> {
        let p: LinuxMemoryPolicy = serde_json::from_str(json).unwrap();
        MemoryPolicy::from_spec(&p).map_err(|e| e.to_string())
    }

    #[test]
    fn node_lists_become_masks() {
        assert_eq!(parse_nodes("0-2,5").unwrap(), vec![0b100111]);
        assert_eq!(parse_nodes("64").unwrap(), vec![0, 1]);
        assert!(parse_nodes("3-1").is_err());
        assert!(parse_nodes("x").unwrap_err().contains("\"x\""));
        assert!(parse_nodes("5000").is_err());
    }

    #[test]
    fn modes_flags_and_nodes_are_checked_naming_the_field() {
        assert!(policy(r#"{"mode":"MPOL_BIND","nodes":"0"}"#).is_ok());
        assert!(policy(r#"{"mode":"MPOL_PREFERRED"}"#).is_ok());
        for (bad, why) in [
            (r#"{"mode":"MPOL_BIND"}"#, "needs nodes"),
            (r#"{"mode":"MPOL_DEFAULT","nodes":"0"}"#, "takes no nodes"),
            (
                r#"{"mode":"MPOL_BIND","nodes":"0","flags":["MPOL_F_STATIC_NODES","MPOL_F_RELATIVE_NODES"]}"#,
                "exclude",
            ),
            (
                r#"{"mode":"MPOL_INTERLEAVE","nodes":"0","flags":["MPOL_F_NUMA_BALANCING"]}"#,
                "MPOL_BIND only",
            ),
        ] {
            let e = policy(bad).unwrap_err();
            assert!(
                e.starts_with("linux.memoryPolicy: ") && e.contains(why),
                "{e}"
            );
        }
    }
}
