//! The systemd cgroup driver: a container's cgroup is a transient unit that
//! systemd makes and owns, asked for over systemd's D-Bus API, as runc's
//! systemd driver does, so that systemd neither moves nor removes it nor
//! takes its controllers away on `daemon-reload`/`daemon-reexec`.
//!
//! - create: `StartTransientUnit(<prefix>-<name>.scope, "replace")` in the
//!   given slice (systemd makes missing parent slices: `a-b.slice` lives in
//!   `a.slice`), with `PIDs=[stage 1 of the init]`, `Delegate=yes`,
//!   `DefaultDependencies=no` and the resources systemd knows as
//!   properties ([`properties`]); then waiting for the job's `JobRemoved`
//!   signal. The caller then writes *all* resources to the cgroup files as
//!   without systemd (both agree; systemd does not know the rest);
//! - update: `SetUnitProperties(runtime=true)`, then the files;
//! - delete: `StopUnit` and its job, `ResetFailedUnit` (an OOM-killed scope
//!   stays loaded as "failed", and its name could not be reused).
//!
//! The connection lives only for one call ([`Bus::connect`] → drop): an idle
//! shim holds no socket and no thread. The system bus is used when its
//! socket exists (as runc), else systemd's private socket (root only).
//!
//! Devices stay with wren's own eBPF program (written with the other files):
//! it implements the spec's ordered allow/deny rules exactly, which
//! `DeviceAllow=` cannot express (no deny after allow, no `m` on wildcards).
//! On cgroup v2 the unit gets no `DevicePolicy`/`DeviceAllow`, so systemd
//! attaches no device program of its own (and never detaches ours). On v1
//! and hybrid hosts systemd rewrites the unit's `devices.allow`/`deny`
//! whenever it applies the unit's cgroup: there the unit gets the spec's
//! allow list as `DevicePolicy=strict` + `DeviceAllow` ([`device_properties`]),
//! so systemd's rewrite equals wren's.

use std::time::{Duration, Instant};

use dbus::arg::{RefArg, Variant};
use dbus::channel::Channel;
use dbus::message::MessageType;
use dbus::Message;
use oci_spec::runtime::LinuxResources;
use serde::{Deserialize, Serialize};

use super::{convert, CgroupError};

/// The system bus socket (`DBUS_SYSTEM_BUS_ADDRESS` overrides it).
pub const SYSTEM_BUS: &str = "/run/dbus/system_bus_socket";
/// systemd's own socket, used when no system bus runs.
pub const PRIVATE_BUS: &str = "/run/systemd/private";
/// How long one call or one job may take (systemd in a TCG VM is slow).
const TIMEOUT: Duration = Duration::from_secs(60);

const DEST: &str = "org.freedesktop.systemd1";
const PATH: &str = "/org/freedesktop/systemd1";
const MANAGER: &str = "org.freedesktop.systemd1.Manager";

/// Annotations `org.systemd.property.<Name>=<value>` become extra unit
/// properties at create (runc's extension).
pub const PROPERTY_ANNOTATION: &str = "org.systemd.property.";

/// A container's systemd unit, recorded in the container's state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unit {
    /// `<prefix>-<name>.scope`, or a `.slice` when the name is one.
    pub name: String,
    /// The slice the unit goes into (`system.slice` when not given).
    pub slice: String,
}

impl Unit {
    /// A `.slice` unit (runc allows the container's cgroup to be a slice):
    /// it cannot hold `PIDs`, the init is moved in through cgroupfs.
    pub fn is_slice(&self) -> bool {
        self.name.ends_with(".slice")
    }
}

/// One unit property: name and D-Bus value.
pub type Property = (String, Variant<Box<dyn RefArg>>);

fn prop<T: RefArg + 'static>(name: &str, v: T) -> Property {
    (name.to_string(), Variant(Box::new(v)))
}

/// The unit properties for `r` that systemd knows, as runc sets them.
/// `v2` chooses between the v2 names (MemoryMax, CPUWeight, ...) and the
/// v1 ones (MemoryLimit, CPUShares, BlockIOWeight).
pub fn properties(r: &LinuxResources, v2: bool) -> Result<Vec<Property>, CgroupError> {
    let max = |v: i64| if v < 0 { u64::MAX } else { v as u64 };
    let mut out = Vec::new();
    if let Some(m) = r.memory() {
        if let Some(l) = m.limit() {
            out.push(prop(if v2 { "MemoryMax" } else { "MemoryLimit" }, max(l)));
        }
        if v2 {
            if let Some(l) = m.reservation() {
                out.push(prop("MemoryLow", max(l)));
            }
            if let Some(s) = convert::swap_to_v2(m.swap(), m.limit())? {
                out.push(prop("MemorySwapMax", max(s)));
            }
        }
    }
    if let Some(c) = r.cpu() {
        if let Some(s) = c.shares().filter(|s| *s > 0) {
            if v2 {
                out.push(prop("CPUWeight", convert::cpu_shares_to_weight(s)));
            } else {
                out.push(prop("CPUShares", s));
            }
        }
        let period = c.period().filter(|p| *p > 0);
        if let Some(p) = period {
            out.push(prop("CPUQuotaPeriodUSec", p));
        }
        if let Some(q) = c.quota() {
            // systemd's quota is per second, in steps of 10 ms (1 %): round
            // up as runc does, so systemd never allows less than asked.
            let per_sec = if q > 0 {
                let p = period.unwrap_or(100_000);
                let us = (q as u64).saturating_mul(1_000_000) / p;
                us.div_ceil(10_000) * 10_000
            } else {
                u64::MAX
            };
            out.push(prop("CPUQuotaPerSecUSec", per_sec));
        }
        if let Some(s) = c.cpus().as_deref().filter(|s| !s.is_empty()) {
            out.push(prop("AllowedCPUs", bitmask("cpu.cpus", s)?));
        }
        if let Some(s) = c.mems().as_deref().filter(|s| !s.is_empty()) {
            out.push(prop("AllowedMemoryNodes", bitmask("cpu.mems", s)?));
        }
    }
    if let Some(p) = r.pids() {
        out.push(prop(
            "TasksMax",
            max(if p.limit() == 0 { -1 } else { p.limit() }),
        ));
    }
    if let Some(w) = r.block_io().as_ref().and_then(|b| b.weight()) {
        let w = u64::from(w);
        if w > 0 {
            if v2 {
                out.push(prop("IOWeight", convert::blkio_weight_to_io_weight(w)));
            } else {
                out.push(prop("BlockIOWeight", w));
            }
        }
    }
    if !v2 {
        if let Some(devs) = r.devices() {
            let rules = super::devices::rules_from_oci(devs)?;
            let table = std::fs::read_to_string("/proc/devices").unwrap_or_default();
            let (props, left_out) = device_properties(&rules, &table);
            for l in left_out {
                log::warn!("systemd cannot express device rule {l}; left out of DeviceAllow");
            }
            out.extend(props);
        }
    }
    if v2 {
        if let Some(h) = r.unified().as_ref().and_then(|u| u.get("memory.high")) {
            let v = if h.trim() == "max" {
                u64::MAX
            } else {
                h.trim().parse().map_err(|_| CgroupError::Invalid {
                    field: "unified[memory.high]".into(),
                    reason: format!("{h:?} is not a number of bytes or \"max\""),
                })?
            };
            out.push(prop("MemoryHigh", v));
        }
    }
    Ok(out)
}

/// `DevicePolicy`/`DeviceAllow` for the device rules `r` on a cgroup v1
/// (or hybrid) host, where systemd's own device settings for the unit are
/// written to the v1 `devices` files whenever systemd applies the unit's
/// cgroup (`daemon-reload`, `daemon-reexec`, property changes): with no
/// device properties (policy "auto") it writes `a` to `devices.allow`,
/// which gives the container every device (measured in the hybrid VM). So,
/// as runc does, the unit gets the spec's allow list under
/// `DevicePolicy=strict`: a later rewrite by systemd leaves what wren
/// wrote. `proc_devices` is `/proc/devices` (major numbers by name, for a
/// rule with a wildcard minor). Not used on v2, where wren's eBPF program
/// applies the rules and systemd must attach none of its own.
///
/// What systemd cannot express: an allow-by-default list with denied
/// exceptions gets "strict" with no entries (deny all when systemd
/// rewrites the files; runc does the same), a rule with a wildcard major
/// and a given minor, or a major missing from `/proc/devices`, is left out.
/// The returned strings say what was left out (for a warning).
pub fn device_properties(
    rules: &[super::devices::DevRule],
    proc_devices: &str,
) -> (Vec<Property>, Vec<String>) {
    use super::devices::{access_string, v1_line, DevKind, DeviceState};
    let st = DeviceState::from_rules(rules);
    let none: Vec<(String, String)> = Vec::new();
    if st.default_allow && st.exceptions.is_empty() {
        return (
            vec![
                prop("DevicePolicy", "auto".to_string()),
                prop("DeviceAllow", none),
            ],
            Vec::new(),
        );
    }
    let mut left_out = Vec::new();
    let mut allow: Vec<(String, String)> = Vec::new();
    if st.default_allow {
        left_out.push(format!(
            "the deny list ({} exceptions to allow-all): systemd can only allow",
            st.exceptions.len()
        ));
    } else {
        for (key, bits) in &st.exceptions {
            let (kind, major, minor) = *key;
            let (word, section) = match kind {
                DevKind::Char => ("char", "Character devices:"),
                DevKind::Block => ("block", "Block devices:"),
                // "a" rules reset the state: never an exception.
                DevKind::All => continue,
            };
            let path = match (major, minor) {
                (None, None) => format!("{word}-*"),
                (Some(ma), Some(mi)) => format!("/dev/{word}/{ma}:{mi}"),
                (Some(ma), None) => match major_name(proc_devices, section, ma) {
                    Some(name) => format!("{word}-{name}"),
                    None => {
                        left_out.push(format!(
                            "{} (major not in /proc/devices)",
                            v1_line(key, *bits)
                        ));
                        continue;
                    }
                },
                (None, Some(_)) => {
                    left_out.push(format!("{} (wildcard major)", v1_line(key, *bits)));
                    continue;
                }
            };
            allow.push((path, access_string(*bits)));
        }
    }
    (
        vec![
            prop("DevicePolicy", "strict".to_string()),
            prop("DeviceAllow", allow),
        ],
        left_out,
    )
}

/// The name `/proc/devices` gives major `major` in `section`.
fn major_name(proc_devices: &str, section: &str, major: u32) -> Option<String> {
    let mut inside = false;
    for line in proc_devices.lines() {
        let line = line.trim();
        if line.ends_with(':') {
            inside = line == section;
            continue;
        }
        if !inside {
            continue;
        }
        let mut it = line.split_whitespace();
        if it.next().and_then(|n| n.parse::<u32>().ok()) == Some(major) {
            return it.next().map(str::to_owned);
        }
    }
    None
}

/// A cpuset list (`0-3,8`) as systemd's bitmask bytes: bit `n % 8` of byte
/// `n / 8` is CPU (or node) `n`.
pub fn bitmask(field: &str, list: &str) -> Result<Vec<u8>, CgroupError> {
    let bad = || CgroupError::Invalid {
        field: field.to_string(),
        reason: format!("{list:?} is not a list like 0-3,8"),
    };
    let mut out: Vec<u8> = Vec::new();
    for part in list.trim().split(',') {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (part.trim(), part.trim()),
        };
        let a: usize = a.parse().map_err(|_| bad())?;
        let b: usize = b.parse().map_err(|_| bad())?;
        if a > b || b >= 1 << 16 {
            return Err(bad());
        }
        for n in a..=b {
            if out.len() <= n / 8 {
                out.resize(n / 8 + 1, 0);
            }
            out[n / 8] |= 1 << (n % 8);
        }
    }
    Ok(out)
}

/// Extra properties from `org.systemd.property.<Name>` annotations:
/// `true`/`false` → boolean, an unsigned number → uint64, `'text'` or
/// anything else → string. systemd judges the names and values.
pub fn annotation_properties<'a>(
    annotations: impl IntoIterator<Item = (&'a String, &'a String)>,
) -> Vec<Property> {
    let mut out = Vec::new();
    for (k, v) in annotations {
        let Some(name) = k.strip_prefix(PROPERTY_ANNOTATION) else {
            continue;
        };
        let p = match v.as_str() {
            "true" | "yes" => prop(name, true),
            "false" | "no" => prop(name, false),
            s => match s.parse::<u64>() {
                Ok(n) => prop(name, n),
                Err(_) => prop(
                    name,
                    s.strip_prefix('\'')
                        .and_then(|s| s.strip_suffix('\''))
                        .unwrap_or(s)
                        .to_string(),
                ),
            },
        };
        out.push(p);
    }
    out
}

fn names(props: &[Property]) -> String {
    props
        .iter()
        .map(|(n, _)| n.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// One short-lived connection to systemd, for one unit.
pub struct Bus {
    chan: Channel,
    /// Through dbus-daemon (signals need a match rule) or directly.
    via_daemon: bool,
    unit: String,
}

/// D-Bus errors that mean systemd went away mid-call (`daemon-reexec`,
/// `daemon-reload` disconnect it from the bus for a moment): reconnect and
/// ask again, as runc does.
fn transient(message: &str) -> bool {
    [
        "org.freedesktop.DBus.Error.NoReply",
        "org.freedesktop.DBus.Error.Disconnected",
        "org.freedesktop.DBus.Error.ServiceUnknown",
        "org.freedesktop.DBus.Error.NameHasNoOwner",
    ]
    .iter()
    .any(|n| message.starts_with(n))
}

/// How often a call is sent again after systemd went away.
const RETRIES: u32 = 5;

impl Bus {
    /// Connects to the system bus, or to systemd's private socket when no
    /// system bus runs, to manage `unit` (named in errors).
    pub fn connect(unit: &str) -> Result<Bus, CgroupError> {
        let (chan, via_daemon) = Self::open(unit)?;
        Ok(Bus {
            chan,
            via_daemon,
            unit: unit.to_string(),
        })
    }

    fn open(unit: &str) -> Result<(Channel, bool), CgroupError> {
        let env = std::env::var("DBUS_SYSTEM_BUS_ADDRESS").ok();
        let (address, via_daemon) = match env {
            Some(a) => (a, true),
            None if std::path::Path::new(SYSTEM_BUS).exists() => {
                (format!("unix:path={SYSTEM_BUS}"), true)
            }
            None => (format!("unix:path={PRIVATE_BUS}"), false),
        };
        let fail = |e: dbus::Error| CgroupError::Systemd {
            unit: unit.to_string(),
            what: format!(
                "connect to systemd over D-Bus at {address} (the systemd cgroup driver needs it)"
            ),
            message: dbus_msg(&e),
        };
        let mut chan = Channel::open_private(&address).map_err(fail)?;
        if via_daemon {
            chan.register().map_err(fail)?;
        }
        Ok((chan, via_daemon))
    }

    fn err(&self, what: &str, message: String) -> CgroupError {
        CgroupError::Systemd {
            unit: self.unit.clone(),
            what: what.to_string(),
            message,
        }
    }

    /// Sends `msg` and waits for the reply; when systemd went away in
    /// between, reconnects (and re-subscribes) and sends it again.
    fn call(&mut self, what: &str, msg: Message) -> Result<Message, CgroupError> {
        let mut attempt = 0;
        loop {
            let copy = msg
                .duplicate()
                .map_err(|e| self.err(what, format!("copy the D-Bus message: {e}")))?;
            match self.chan.send_with_reply_and_block(copy, TIMEOUT) {
                Ok(reply) => return Ok(reply),
                Err(e) => {
                    let message = dbus_msg(&e);
                    if !transient(&message) || attempt >= RETRIES {
                        return Err(self.err(what, message));
                    }
                    attempt += 1;
                    log::debug!(
                        "systemd unit {}: {what}: {message}; reconnecting",
                        self.unit
                    );
                    std::thread::sleep(Duration::from_millis(200 << attempt));
                    if let Ok((chan, via)) = Self::open(&self.unit) {
                        self.chan = chan;
                        self.via_daemon = via;
                        let _ = self.subscribe();
                    }
                }
            }
        }
    }

    fn method(name: &str) -> Message {
        // The names are constants: this cannot fail.
        Message::new_method_call(DEST, PATH, MANAGER, name).expect("valid D-Bus names")
    }

    /// Receives `JobRemoved` signals (dbus-daemon forwards signals only to
    /// connections with a match rule; systemd sends them to direct ones).
    fn subscribe(&mut self) -> Result<(), CgroupError> {
        if !self.via_daemon {
            return Ok(());
        }
        let rule = format!(
            "type='signal',sender='{DEST}',path='{PATH}',interface='{MANAGER}',member='JobRemoved'"
        );
        let m = Message::new_method_call(
            "org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus",
            "AddMatch",
        )
        .expect("valid D-Bus names")
        .append1(rule);
        self.chan
            .send_with_reply_and_block(m, TIMEOUT)
            .map_err(|e| self.err("AddMatch for systemd's JobRemoved signal", dbus_msg(&e)))?;
        Ok(())
    }

    /// Waits for the `JobRemoved` signal of `job`; its result must be
    /// "done". When the connection drops (systemd re-executing), `done`
    /// tells whether the job's effect is there.
    fn wait_job(
        &mut self,
        what: &str,
        job: &dbus::Path<'_>,
        done: &dyn Fn() -> bool,
    ) -> Result<(), CgroupError> {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            while let Some(m) = self.chan.pop_message() {
                if m.msg_type() != MessageType::Signal
                    || m.member().as_deref() != Some("JobRemoved")
                {
                    continue;
                }
                let Ok((_, path, _, result)) = m.read4::<u32, dbus::Path<'_>, &str, &str>() else {
                    continue;
                };
                if path != *job {
                    continue;
                }
                if result == "done" {
                    return Ok(());
                }
                return Err(self.err(
                    what,
                    format!("systemd job {job} ended with result {result:?}"),
                ));
            }
            let lost = !self.chan.is_connected()
                || self
                    .chan
                    .read_write(Some(Duration::from_millis(200)))
                    .is_err();
            if lost || Instant::now() >= deadline {
                // The signal may be lost with the connection: judge by
                // the result, after giving systemd time to come back.
                let until = Instant::now() + Duration::from_secs(10);
                while Instant::now() < until {
                    if done() {
                        return Ok(());
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                return Err(self.err(
                    what,
                    format!("no JobRemoved signal for systemd job {job} and the job's effect is not there"),
                ));
            }
        }
    }

    /// Starts the unit holding `pid` (not for a slice unit) with `props`,
    /// and waits until systemd has made it; `placed` tells whether the
    /// process is in the unit's cgroup. A unit of that name left over in
    /// the "failed" state is reset first, as runc does.
    pub fn start(
        &mut self,
        unit: &Unit,
        pid: Option<i32>,
        props: Vec<Property>,
        placed: &dyn Fn() -> bool,
    ) -> Result<(), CgroupError> {
        let mut all = vec![prop("Description", format!("wren container {}", unit.name))];
        if unit.is_slice() {
            all.push(prop("Wants", vec![unit.slice.clone()]));
        } else {
            all.push(prop("Slice", unit.slice.clone()));
            all.push(prop("Delegate", true));
        }
        all.push(prop("DefaultDependencies", false));
        if let Some(p) = pid {
            all.push(prop("PIDs", vec![p as u32]));
        }
        let what = if props.is_empty() {
            "StartTransientUnit".to_string()
        } else {
            format!("StartTransientUnit (properties {})", names(&props))
        };
        all.extend(props);
        self.subscribe()?;
        let aux: Vec<(String, Vec<Property>)> = Vec::new();
        let msg = Self::method("StartTransientUnit")
            .append3(unit.name.as_str(), "replace", all)
            .append1(aux);
        let reply = match self.call(&what, msg.duplicate().expect("copy message")) {
            Err(CgroupError::Systemd { message, .. })
                if message.starts_with("org.freedesktop.systemd1.UnitExists") =>
            {
                // Made by our first try before systemd went away?
                if pid.is_some() && placed() {
                    return Ok(());
                }
                self.reset_failed();
                self.call(&what, msg)?
            }
            r => r?,
        };
        let job: dbus::Path<'_> = reply
            .read1()
            .map_err(|e| self.err(&what, format!("unexpected reply: {e}")))?;
        let job = job.into_static();
        self.wait_job(&what, &job, placed)
    }

    /// Changes properties of the running unit (runtime only, as runc does:
    /// they do not survive a reboot, and the unit does not either).
    pub fn set(&mut self, props: Vec<Property>) -> Result<(), CgroupError> {
        if props.is_empty() {
            return Ok(());
        }
        let what = format!("SetUnitProperties ({})", names(&props));
        let msg = Self::method("SetUnitProperties").append3(self.unit.as_str(), true, props);
        self.call(&what, msg)?;
        Ok(())
    }

    /// Stops the unit and waits for it; a unit that is not loaded is fine.
    /// `gone` tells whether its cgroup is gone.
    pub fn stop(&mut self, gone: &dyn Fn() -> bool) -> Result<(), CgroupError> {
        self.subscribe()?;
        let msg = Self::method("StopUnit").append2(self.unit.as_str(), "replace");
        match self.call("StopUnit", msg) {
            Ok(reply) => {
                let job: dbus::Path<'_> = reply
                    .read1()
                    .map_err(|e| self.err("StopUnit", format!("unexpected reply: {e}")))?;
                let job = job.into_static();
                self.wait_job("StopUnit", &job, gone)?;
            }
            Err(CgroupError::Systemd { message, .. })
                if message.starts_with("org.freedesktop.systemd1.NoSuchUnit") => {}
            Err(e) => return Err(e),
        }
        self.reset_failed();
        Ok(())
    }

    /// Forgets a failed unit (e.g. one whose container was OOM-killed).
    fn reset_failed(&mut self) {
        let msg = Self::method("ResetFailedUnit").append1(self.unit.as_str());
        if let Err(e) = self.call("ResetFailedUnit", msg) {
            log::debug!("{e}");
        }
    }
}

fn dbus_msg(e: &dbus::Error) -> String {
    match (e.name(), e.message()) {
        (Some(n), Some(m)) => format!("{n}: {m}"),
        (Some(n), None) => n.to_string(),
        (None, Some(m)) => m.to_string(),
        (None, None) => "unknown D-Bus error".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpuset_bitmask() {
        assert_eq!(bitmask("cpu.cpus", "0").unwrap(), vec![1]);
        assert_eq!(bitmask("cpu.cpus", "0-3,8").unwrap(), vec![0x0f, 0x01]);
        assert_eq!(bitmask("cpu.cpus", "9").unwrap(), vec![0, 0x02]);
        assert!(bitmask("cpu.cpus", "3-1").is_err());
        assert!(bitmask("cpu.cpus", "x").is_err());
    }

    #[test]
    fn annotations_become_typed_properties() {
        let a: std::collections::HashMap<String, String> = [
            ("org.systemd.property.TimeoutStopUSec", "5000000"),
            ("org.systemd.property.CollectMode", "'inactive-or-failed'"),
            ("org.systemd.property.IgnoreOnIsolate", "true"),
            ("other", "1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let mut p = annotation_properties(&a);
        p.sort_by(|x, y| x.0.cmp(&y.0));
        let names: Vec<&str> = p.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["CollectMode", "IgnoreOnIsolate", "TimeoutStopUSec"]);
        assert_eq!(p[0].1 .0.as_str(), Some("inactive-or-failed"));
        assert_eq!(p[1].1 .0.signature().to_string(), "b");
        assert_eq!(p[2].1 .0.as_u64(), Some(5_000_000));
    }

    fn device_allow(p: &[Property]) -> (String, Vec<(String, String)>) {
        let policy = p
            .iter()
            .find(|(n, _)| n == "DevicePolicy")
            .and_then(|(_, v)| v.0.as_str().map(str::to_owned))
            .expect("DevicePolicy");
        let (_, list) = p
            .iter()
            .find(|(n, _)| n == "DeviceAllow")
            .expect("DeviceAllow");
        assert_eq!(list.0.signature().to_string(), "a(ss)");
        let mut out = Vec::new();
        let mut it = list.0.as_iter().expect("array");
        for entry in it.by_ref() {
            let mut f = entry.as_iter().expect("struct");
            let path = f
                .next()
                .and_then(|x| x.as_str().map(str::to_owned))
                .unwrap();
            let acc = f
                .next()
                .and_then(|x| x.as_str().map(str::to_owned))
                .unwrap();
            out.push((path, acc));
        }
        (policy, out)
    }

    const PROC_DEVICES: &str =
        "Character devices:\n  1 mem\n  5 /dev/tty\n136 pts\n\nBlock devices:\n  8 sd\n";

    #[test]
    fn v1_device_rules_become_a_strict_allow_list() {
        let devs: Vec<oci_spec::runtime::LinuxDeviceCgroup> = serde_json::from_str(
            r#"[{"allow":false,"access":"rwm"},
                {"allow":true,"type":"c","access":"m"},
                {"allow":true,"type":"c","major":1,"minor":3,"access":"rwm"},
                {"allow":true,"type":"c","major":136,"access":"rw"},
                {"allow":true,"type":"b","major":8,"access":"r"},
                {"allow":true,"type":"c","major":250,"access":"r"},
                {"allow":true,"type":"c","minor":3,"access":"r"}]"#,
        )
        .unwrap();
        let rules = crate::cgroups::devices::rules_from_oci(&devs).unwrap();
        let (p, left_out) = device_properties(&rules, PROC_DEVICES);
        let (policy, allow) = device_allow(&p);
        assert_eq!(policy, "strict");
        let want: Vec<(String, String)> = [
            ("/dev/char/1:3", "rwm"),
            ("char-pts", "rw"),
            ("char-*", "m"),
            ("block-sd", "r"),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        let mut got = allow.clone();
        got.sort();
        let mut want_sorted = want.clone();
        want_sorted.sort();
        assert_eq!(got, want_sorted);
        assert_eq!(left_out.len(), 2, "{left_out:?}");
        assert!(left_out[0].contains("c 250:* r") || left_out[1].contains("c 250:* r"));
    }

    #[test]
    fn v1_allow_all_and_deny_lists() {
        let all: Vec<oci_spec::runtime::LinuxDeviceCgroup> =
            serde_json::from_str(r#"[{"allow":true,"access":"rwm"}]"#).unwrap();
        let rules = crate::cgroups::devices::rules_from_oci(&all).unwrap();
        let (p, left_out) = device_properties(&rules, PROC_DEVICES);
        assert_eq!(device_allow(&p), ("auto".to_string(), Vec::new()));
        assert!(left_out.is_empty());
        let deny: Vec<oci_spec::runtime::LinuxDeviceCgroup> = serde_json::from_str(
            r#"[{"allow":true,"access":"rwm"},{"allow":false,"type":"c","major":1,"minor":5}]"#,
        )
        .unwrap();
        let rules = crate::cgroups::devices::rules_from_oci(&deny).unwrap();
        let (p, left_out) = device_properties(&rules, PROC_DEVICES);
        assert_eq!(device_allow(&p), ("strict".to_string(), Vec::new()));
        assert_eq!(left_out.len(), 1);
        // Not on v2: the eBPF program is wren's alone.
        let r: LinuxResources =
            serde_json::from_str(r#"{"devices":[{"allow":false,"access":"rwm"}]}"#).unwrap();
        assert!(properties(&r, true).unwrap().is_empty());
        let names: Vec<String> = properties(&r, false)
            .unwrap()
            .into_iter()
            .map(|p| p.0)
            .collect();
        assert_eq!(names, ["DevicePolicy", "DeviceAllow"]);
    }

    #[test]
    fn quota_rounds_up_to_whole_percent() {
        let r: LinuxResources = serde_json::from_str(
            r#"{"cpu":{"quota":12345,"period":100000,"shares":1024},"pids":{"limit":0},
                "memory":{"limit":1048576}}"#,
        )
        .unwrap();
        let p = properties(&r, true).unwrap();
        let get = |n: &str| {
            p.iter()
                .find(|(k, _)| k == n)
                .and_then(|(_, v)| v.0.as_u64())
        };
        assert_eq!(get("CPUQuotaPerSecUSec"), Some(130_000));
        assert_eq!(get("CPUQuotaPeriodUSec"), Some(100_000));
        assert_eq!(get("CPUWeight"), Some(100));
        assert_eq!(get("TasksMax"), Some(u64::MAX));
        assert_eq!(get("MemoryMax"), Some(1_048_576));
    }
}
