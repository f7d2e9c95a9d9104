//! Device access rules, shared by the v1 `devices` controller and the v2 eBPF
//! filter.
//!
//! `linux.resources.devices` is an ordered list; what it means is defined by
//! the cgroup v1 kernel semantics. [`DeviceState`] replays the list the way
//! the v1 kernel would (starting, like runc, from "deny everything"), giving a
//! default plus a set of exceptions. v1 writes that state to
//! `devices.allow`/`devices.deny`; v2 compiles it to a `BPF_CGROUP_DEVICE`
//! program. Both therefore enforce exactly the same thing.

use std::collections::BTreeMap;

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};
use serde::{Deserialize, Serialize};

use super::CgroupError;

/// mknod access bit (same value as the kernel's `BPF_DEVCG_ACC_MKNOD`).
pub const ACC_MKNOD: u8 = 1;
/// read access bit (`BPF_DEVCG_ACC_READ`).
pub const ACC_READ: u8 = 2;
/// write access bit (`BPF_DEVCG_ACC_WRITE`).
pub const ACC_WRITE: u8 = 4;
/// All three.
pub const ACC_ALL: u8 = ACC_MKNOD | ACC_READ | ACC_WRITE;

/// Device kind of a rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum DevKind {
    /// Every device (`a`).
    All,
    /// Block devices (`b`).
    Block,
    /// Character devices (`c`).
    Char,
}

impl DevKind {
    fn letter(self) -> char {
        match self {
            DevKind::All => 'a',
            DevKind::Block => 'b',
            DevKind::Char => 'c',
        }
    }
}

/// One rule, validated. `None` major/minor is the wildcard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DevRule {
    /// Allow (true) or deny (false).
    pub allow: bool,
    /// Device kind.
    pub kind: DevKind,
    /// Major number, `None` for any.
    pub major: Option<u32>,
    /// Minor number, `None` for any.
    pub minor: Option<u32>,
    /// Access bits (`ACC_*`).
    pub access: u8,
}

/// The key of an exception: kind, major, minor.
pub type DevKey = (DevKind, Option<u32>, Option<u32>);

/// Formats access bits as v1 does (`rwm` order).
pub fn access_string(bits: u8) -> String {
    let mut s = String::new();
    if bits & ACC_READ != 0 {
        s.push('r');
    }
    if bits & ACC_WRITE != 0 {
        s.push('w');
    }
    if bits & ACC_MKNOD != 0 {
        s.push('m');
    }
    s
}

/// Formats an exception as a v1 `devices.allow`/`devices.deny` line.
pub fn v1_line(key: &DevKey, access: u8) -> String {
    let num = |n: Option<u32>| n.map_or("*".to_owned(), |n| n.to_string());
    format!(
        "{} {}:{} {}",
        key.0.letter(),
        num(key.1),
        num(key.2),
        access_string(access)
    )
}

fn parse_access(s: &str) -> Option<u8> {
    if s.is_empty() {
        return None;
    }
    let mut bits = 0;
    for ch in s.chars() {
        bits |= match ch {
            'r' => ACC_READ,
            'w' => ACC_WRITE,
            'm' => ACC_MKNOD,
            _ => return None,
        };
    }
    Some(bits)
}

/// Validates `linux.resources.devices` and turns it into rules. Errors name
/// the entry (`devices[3].type`).
pub fn rules_from_oci(devs: &[LinuxDeviceCgroup]) -> Result<Vec<DevRule>, CgroupError> {
    devs.iter()
        .enumerate()
        .map(|(i, d)| {
            let bad = |what: &str, reason: String| CgroupError::Invalid {
                field: format!("devices[{i}].{what}"),
                reason,
            };
            let kind = match d.typ().unwrap_or(LinuxDeviceType::A) {
                LinuxDeviceType::A => DevKind::All,
                LinuxDeviceType::B => DevKind::Block,
                LinuxDeviceType::C | LinuxDeviceType::U => DevKind::Char,
                LinuxDeviceType::P => {
                    return Err(bad(
                        "type",
                        "\"p\" (fifo) cannot be used in a device cgroup rule; use a, b or c".into(),
                    ))
                }
            };
            let num = |what: &str, v: Option<i64>| -> Result<Option<u32>, CgroupError> {
                match v {
                    None | Some(-1) => Ok(None),
                    Some(n) => u32::try_from(n)
                        .map(Some)
                        .map_err(|_| bad(what, format!("{n} is not a device number or -1"))),
                }
            };
            let major = num("major", d.major())?;
            let minor = num("minor", d.minor())?;
            let access = match d.access().as_deref() {
                None | Some("") => ACC_ALL,
                Some(a) => parse_access(a)
                    .ok_or_else(|| bad("access", format!("{a:?} is not a combination of r, w, m")))?,
            };
            if kind == DevKind::All && (major.is_some() || minor.is_some() || access != ACC_ALL) {
                return Err(bad(
                    "type",
                    "an \"a\" rule applies to every device and must not name major, minor or partial access".into(),
                ));
            }
            Ok(DevRule {
                allow: d.allow(),
                kind,
                major,
                minor,
                access,
            })
        })
        .collect()
}

/// The effect of a rule list under v1 kernel semantics: a default plus
/// exceptions, each exception with its access bits.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeviceState {
    /// true: everything is allowed except the exceptions (a deny list).
    pub default_allow: bool,
    /// The exceptions to the default.
    pub exceptions: BTreeMap<DevKey, u8>,
}

impl DeviceState {
    /// Replays `rules` on a cgroup that starts with everything denied.
    pub fn from_rules(rules: &[DevRule]) -> Self {
        let mut st = DeviceState::default();
        for r in rules {
            st.apply(r);
        }
        st
    }

    /// Applies one rule as the v1 kernel does.
    pub fn apply(&mut self, r: &DevRule) {
        if r.kind == DevKind::All {
            self.default_allow = r.allow;
            self.exceptions.clear();
            return;
        }
        let key = (r.kind, r.major, r.minor);
        if r.allow == self.default_allow {
            // Same polarity as the default: narrows matching exceptions.
            if let Some(bits) = self.exceptions.get_mut(&key) {
                *bits &= !r.access;
                if *bits == 0 {
                    self.exceptions.remove(&key);
                }
            }
        } else {
            *self.exceptions.entry(key).or_insert(0) |= r.access;
        }
    }

    /// Parses v1 `devices.list`: `a *:* rwm` means allow-all, anything else
    /// lists the allowed exceptions of a deny-by-default cgroup.
    pub fn from_v1_list(text: &str) -> Option<Self> {
        let mut st = DeviceState::default();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let mut it = line.split_whitespace();
            let (t, nums, acc) = (it.next()?, it.next()?, it.next()?);
            let kind = match t {
                "a" => {
                    st.default_allow = true;
                    st.exceptions.clear();
                    return Some(st);
                }
                "b" => DevKind::Block,
                "c" => DevKind::Char,
                _ => return None,
            };
            let (maj, min) = nums.split_once(':')?;
            let n = |s: &str| -> Option<Option<u32>> {
                if s == "*" {
                    Some(None)
                } else {
                    s.parse().ok().map(Some)
                }
            };
            *st.exceptions.entry((kind, n(maj)?, n(min)?)).or_insert(0) |= parse_access(acc)?;
        }
        Some(st)
    }
}

/// The devices every container needs (runc's defaults): mknod of any device,
/// and rwm on null, zero, full, random, urandom, tty, console, ptmx, the pts
/// and /dev/net/tun. The create path appends these after the spec's own
/// rules (a `linux.devices` node is allowed only by the spec's rules).
pub fn default_device_rules() -> Vec<LinuxDeviceCgroup> {
    let rule = |typ, major: Option<i64>, minor: Option<i64>, access: &str| {
        let mut d = LinuxDeviceCgroup::default();
        d.set_allow(true);
        d.set_typ(Some(typ));
        d.set_major(major);
        d.set_minor(minor);
        d.set_access(Some(access.to_owned()));
        d
    };
    use LinuxDeviceType::{B, C};
    vec![
        rule(C, None, None, "m"),
        rule(B, None, None, "m"),
        rule(C, Some(1), Some(3), "rwm"),
        rule(C, Some(1), Some(5), "rwm"),
        rule(C, Some(1), Some(7), "rwm"),
        rule(C, Some(1), Some(8), "rwm"),
        rule(C, Some(1), Some(9), "rwm"),
        rule(C, Some(5), Some(0), "rwm"),
        rule(C, Some(5), Some(1), "rwm"),
        rule(C, Some(5), Some(2), "rwm"),
        rule(C, Some(136), None, "rwm"),
        rule(C, Some(10), Some(200), "rwm"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(json: &str) -> Result<Vec<DevRule>, CgroupError> {
        let devs: Vec<LinuxDeviceCgroup> = serde_json::from_str(json).unwrap();
        rules_from_oci(&devs)
    }

    #[test]
    fn deny_all_then_allow() {
        let r = rules(
            r#"[{"allow":false,"access":"rwm"},
                {"allow":true,"type":"c","major":1,"minor":3,"access":"rw"},
                {"allow":true,"type":"c","major":1,"minor":3,"access":"m"},
                {"allow":true,"type":"b","major":8,"access":"r"}]"#,
        )
        .unwrap();
        let st = DeviceState::from_rules(&r);
        assert!(!st.default_allow);
        assert_eq!(st.exceptions[&(DevKind::Char, Some(1), Some(3))], ACC_ALL);
        assert_eq!(st.exceptions[&(DevKind::Block, Some(8), None)], ACC_READ);
    }

    #[test]
    fn allow_all_then_deny_and_narrowing() {
        let r = rules(
            r#"[{"allow":true,"type":"a"},
                {"allow":false,"type":"c","major":1,"minor":5,"access":"rwm"},
                {"allow":true,"type":"c","major":1,"minor":5,"access":"r"}]"#,
        )
        .unwrap();
        let st = DeviceState::from_rules(&r);
        assert!(st.default_allow);
        assert_eq!(
            st.exceptions[&(DevKind::Char, Some(1), Some(5))],
            ACC_WRITE | ACC_MKNOD
        );
    }

    #[test]
    fn bad_rules_name_the_field() {
        let e = rules(r#"[{"allow":true,"type":"p"}]"#).unwrap_err();
        assert!(e.to_string().contains("devices[0].type"), "{e}");
        let e = rules(r#"[{"allow":true},{"allow":true,"type":"c","access":"rx"}]"#).unwrap_err();
        assert!(e.to_string().contains("devices[1].access"), "{e}");
        let e = rules(r#"[{"allow":true,"type":"c","major":-7}]"#).unwrap_err();
        assert!(e.to_string().contains("devices[0].major"), "{e}");
        let e = rules(r#"[{"allow":true,"type":"a","major":1}]"#).unwrap_err();
        assert!(e.to_string().contains("devices[0].type"), "{e}");
    }

    #[test]
    fn v1_list_roundtrip() {
        let st = DeviceState::from_v1_list("c 1:3 rwm\nc *:* m\nb 8:* r\n").unwrap();
        assert!(!st.default_allow);
        assert_eq!(st.exceptions.len(), 3);
        assert_eq!(v1_line(&(DevKind::Char, None, None), ACC_MKNOD), "c *:* m");
        assert!(
            DeviceState::from_v1_list("a *:* rwm\n")
                .unwrap()
                .default_allow
        );
    }

    #[test]
    fn defaults_are_valid() {
        let r = rules_from_oci(&default_device_rules()).unwrap();
        assert_eq!(r.len(), 12);
    }
}
