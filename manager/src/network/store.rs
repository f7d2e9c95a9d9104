//! The networks `wren network create|ls|inspect|rm` manage, one directory
//! each under `<records>/networks/NAME/`: `network.json` (name, bridge,
//! subnet, gateway), `conflist.json` (the CNI configuration list made from
//! it: bridge with host-local IPAM, portmap, firewall), `ipam/` (the
//! host-local leases, so they stay under wren's records), and `members/`
//! (one file per attached container: its address, hostname, published
//! ports and /etc/hosts, so peers find each other by name). The default
//! network `bridge` is made on first use. Every change holds `.lock`.
//!
//! Runs in `wren` (the CLI and its network helper).

use std::collections::BTreeMap;
use std::fs::File;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{networks_in, PortMapping, DEFAULT_NETWORK};

/// The default network's bridge and subnet.
pub const DEFAULT_BRIDGE: &str = "wren0";
pub const DEFAULT_SUBNET: &str = "10.89.0.0/24";

/// A network's description, `network.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Network {
    pub name: String,
    pub bridge: String,
    pub subnet: String,
    pub gateway: String,
    #[serde(default)]
    pub created_at: i64,
    /// `--internal`: no way out of the subnet (no default route, no
    /// masquerade) and no published ports, as Docker's internal networks.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub internal: bool,
    /// `--ip-range`: the part of the subnet addresses are given from
    /// (a container's own `--ip` may be anywhere in the subnet).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ip_range: String,
    /// Driver options as given (`-o`, compose `driver_opts`), checked by
    /// [`create`]: see [`OPTIONS`].
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// Labels `wren apply` puts on what it makes (`wren.compose.project`,
/// `wren.compose.network`), as Compose's `com.docker.compose.*`.
pub const COMPOSE_LABEL_PREFIX: &str = "wren.compose.";

/// What `wren network create` (or a compose file) asks of a new network.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Spec {
    /// Its IPv4 subnet (None: the first free 10.89.N.0/24).
    pub subnet: Option<String>,
    /// The bridge's address (None: the subnet's first).
    pub gateway: Option<String>,
    /// Where in the subnet addresses are given from.
    pub ip_range: Option<String>,
    pub internal: bool,
    pub options: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
}

/// The driver options a network takes: Docker's bridge driver's names
/// and Podman's `mtu`. Any other is refused by name.
pub const OPTIONS: [&str; 5] = [
    "mtu",
    "com.docker.network.driver.mtu",
    "com.docker.network.bridge.name",
    "com.docker.network.bridge.enable_ip_masquerade",
    "com.docker.network.bridge.enable_icc",
];

impl Network {
    /// The MTU of its bridge and veths (`-o mtu`), if one was asked for.
    pub fn mtu(&self) -> Option<u32> {
        ["mtu", "com.docker.network.driver.mtu"]
            .iter()
            .find_map(|k| self.options.get(*k))
            .and_then(|v| v.parse().ok())
    }

    /// Whether what leaves the subnet is masqueraded: not on an internal
    /// network, nor where `enable_ip_masquerade=false`.
    pub fn masquerade(&self) -> bool {
        !self.internal
            && self
                .options
                .get("com.docker.network.bridge.enable_ip_masquerade")
                .is_none_or(|v| v == "true")
    }

    /// How it differs from `want` (what a compose file asks of a network
    /// that exists already), as "KEY: HAVE, the file asks for WANT". The
    /// labels compose itself puts on ([`COMPOSE_LABEL_PREFIX`]) are not the
    /// file's: a network made before them still matches.
    pub fn differs(&self, want: &Spec) -> Option<String> {
        let show = |m: &BTreeMap<String, String>| {
            let v: Vec<String> = m
                .iter()
                .filter(|(k, _)| !k.starts_with(COMPOSE_LABEL_PREFIX))
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            format!("[{}]", v.join(", "))
        };
        let pairs = [
            (
                "subnet",
                want.subnet
                    .as_ref()
                    .map(|w| (self.subnet.clone(), w.clone())),
            ),
            (
                "gateway",
                want.gateway
                    .as_ref()
                    .map(|w| (self.gateway.clone(), w.clone())),
            ),
            (
                "ip_range",
                Some((
                    self.ip_range.clone(),
                    want.ip_range.clone().unwrap_or_default(),
                )),
            ),
            (
                "internal",
                Some((self.internal.to_string(), want.internal.to_string())),
            ),
            (
                "driver_opts",
                Some((show(&self.options), show(&want.options))),
            ),
            ("labels", Some((show(&self.labels), show(&want.labels)))),
        ];
        pairs.into_iter().find_map(|(key, p)| {
            let (have, want) = p?;
            (have != want).then(|| format!("{key}: {have}, the file asks for {want}"))
        })
    }
}

/// A container attached to a network, `members/NAME.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub container: String,
    pub ip: String,
    pub hostname: String,
    /// More names peers find it by.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    #[serde(default)]
    pub ports: Vec<PortMapping>,
    /// Its /etc/hosts (rewritten in place when peers come and go).
    pub hosts_file: PathBuf,
    /// Its interface on this network: eth0 on its first network.
    #[serde(default = "first_ifname")]
    pub ifname: String,
}

fn first_ifname() -> String {
    "eth0".to_string()
}

/// A refused or failed network operation.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0}")]
    Invalid(String),
    #[error("network {0} not found")]
    NotFound(String),
    #[error("network {0} already exists")]
    Exists(String),
    #[error("network {name} is in use by {}", users.join(", "))]
    InUse { name: String, users: Vec<String> },
    #[error("{what} {}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> StoreError + 'a {
    move |source| StoreError::Io {
        what,
        path: path.to_owned(),
        source,
    }
}

/// `<records>/networks/NAME`.
pub fn dir(records: &Path, name: &str) -> PathBuf {
    networks_in(records).join(name)
}

/// The store's exclusive lock, held for every change.
pub fn lock(records: &Path) -> Result<nix::fcntl::Flock<File>, StoreError> {
    let d = networks_in(records);
    std::fs::create_dir_all(&d).map_err(io("create", &d))?;
    let p = d.join(".lock");
    let f = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&p)
        .map_err(io("open", &p))?;
    nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive).map_err(|(_, e)| {
        StoreError::Io {
            what: "flock",
            path: p,
            source: e.into(),
        }
    })
}

/// Parses an IPv4 subnet (prefix length 8-30); returns (network
/// address, prefix length).
pub fn parse_subnet(s: &str) -> Result<(Ipv4Addr, u8), StoreError> {
    parse_cidr("--subnet", s, 30)
}

/// Parses the IPv4 CIDR `s` given as `flag`, prefix length 8-`max`, host
/// bits clear.
fn parse_cidr(flag: &str, s: &str, max: u8) -> Result<(Ipv4Addr, u8), StoreError> {
    let bad = |why: &str| StoreError::Invalid(format!("{flag} {s:?}: {why}"));
    let (ip, len) = s.split_once('/').ok_or_else(|| bad("want A.B.C.D/LEN"))?;
    let ip: Ipv4Addr = ip.parse().map_err(|_| bad("not an IPv4 address"))?;
    let len: u8 = len
        .parse()
        .ok()
        .filter(|l| (8..=max).contains(l))
        .ok_or_else(|| bad(&format!("the prefix length must be 8-{max}")))?;
    let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
    let net = Ipv4Addr::from(u32::from(ip) & mask);
    if net != ip {
        return Err(bad(&format!("host bits set (the network is {net}/{len})")));
    }
    Ok((net, len))
}

fn overlaps(a: (Ipv4Addr, u8), b: (Ipv4Addr, u8)) -> bool {
    let len = a.1.min(b.1);
    let mask = u32::MAX << (32 - len);
    u32::from(a.0) & mask == u32::from(b.0) & mask
}

fn bridge_name(name: &str) -> String {
    if name == DEFAULT_NETWORK {
        return DEFAULT_BRIDGE.to_string();
    }
    format!("wren-{}", crate::paths::short_hash(name))
}

/// The network `name`.
pub fn load(records: &Path, name: &str) -> Result<Network, StoreError> {
    let p = dir(records, name).join("network.json");
    let b = match std::fs::read(&p) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(StoreError::NotFound(name.to_string()))
        }
        Err(e) => return Err(io("read", &p)(e)),
    };
    serde_json::from_slice(&b).map_err(|e| io("parse", &p)(std::io::Error::other(e)))
}

/// Every network, by name.
pub fn list(records: &Path) -> Vec<Network> {
    let mut out: Vec<Network> = std::fs::read_dir(networks_in(records))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| load(records, &e.file_name().to_string_lossy()).ok())
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// The firewall plugin's `ingressPolicy`: a network's bridge forwards
/// nothing to another network's bridge, as Docker isolates its networks
/// (a container on two networks reaches each directly, on its own
/// interface there). The plugin never removes its per-bridge rules (other
/// containers may still use the bridge): [`remove`] does, with the bridge.
pub const ISOLATION: &str = "same-bridge";

/// The CNI configuration list of `n`, as a container's first network
/// has it (what `conflist.json` shows).
pub fn conflist(records: &Path, n: &Network) -> Value {
    conflist_of(records, n, true, false)
}

/// The CNI configuration list for a container's attachment to `n`. The
/// IPAM's default route is there only if `route` (the container's first
/// network that is not internal: a second default route would fail the
/// ADD) and `n` is not internal; an internal network masquerades nothing
/// either (its members reach each other and the bridge's address only).
/// Addresses come from the network's `--ip-range`, or from its whole
/// subnet if the container asks for one (`fixed`), as Docker lets a
/// fixed address lie outside the range.
pub fn conflist_of(records: &Path, n: &Network, route: bool, fixed: bool) -> Value {
    let mut range = json!({"subnet": n.subnet, "gateway": n.gateway});
    if let (false, Some((start, end))) = (fixed, ip_range_bounds(&n.subnet, &n.ip_range)) {
        range["rangeStart"] = json!(start.to_string());
        range["rangeEnd"] = json!(end.to_string());
    }
    let mut ipam = json!({"type": "host-local",
                          "dataDir": dir(records, &n.name).join("ipam"),
                          "ranges": [[range]]});
    if route && !n.internal {
        ipam["routes"] = json!([{"dst": "0.0.0.0/0"}]);
    }
    let mut bridge = json!({"type": "bridge", "bridge": n.bridge, "isGateway": true,
                            "ipMasq": n.masquerade(), "hairpinMode": true, "ipam": ipam});
    if let Some(mtu) = n.mtu() {
        bridge["mtu"] = json!(mtu);
    }
    json!({
        "cniVersion": "1.0.0",
        "name": n.name,
        "plugins": [
            bridge,
            {"type": "portmap", "capabilities": {"portMappings": true}},
            {"type": "firewall", "ingressPolicy": ISOLATION}
        ]
    })
}

/// The first and last address given out of `ip_range` in `subnet`
/// (neither the subnet's own address nor its broadcast one); None
/// without a range (or with one that does not parse).
fn ip_range_bounds(subnet: &str, ip_range: &str) -> Option<(Ipv4Addr, Ipv4Addr)> {
    if ip_range.is_empty() {
        return None;
    }
    let (net, len) = parse_subnet(subnet).ok()?;
    let (r, rlen) = parse_cidr("--ip-range", ip_range, 32).ok()?;
    let last = |a: Ipv4Addr, l: u8| u32::from(a) | u32::MAX.checked_shr(l.into()).unwrap_or(0);
    let start = u32::from(r).max(u32::from(net) + 1);
    let end = last(r, rlen).min(last(net, len) - 1);
    Some((start.into(), end.into()))
}

/// Docker's boolean option values.
fn bool_option(key: &str, v: &str) -> Result<bool, StoreError> {
    match v {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(StoreError::Invalid(format!(
            "-o {key}={v}: want true or false"
        ))),
    }
}

/// Checks driver options: the names in [`OPTIONS`] with values they can
/// take. Returns the bridge's name, if one is asked for.
fn check_options(
    options: &BTreeMap<String, String>,
    others: &[Network],
) -> Result<Option<String>, StoreError> {
    let bad = |k: &str, v: &str, why: &str| StoreError::Invalid(format!("-o {k}={v}: {why}"));
    let mut bridge = None;
    for (k, v) in options {
        match k.as_str() {
            "mtu" | "com.docker.network.driver.mtu" => {
                if !v.parse::<u32>().is_ok_and(|m| (68..=65535).contains(&m)) {
                    return Err(bad(k, v, "the MTU must be 68-65535"));
                }
            }
            "com.docker.network.bridge.name" => {
                let ok = !v.is_empty()
                    && v.len() <= 15
                    && !matches!(v.as_str(), "." | "..")
                    && v.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
                if !ok {
                    return Err(bad(k, v, "an interface name: 1-15 of [A-Za-z0-9_.-]"));
                }
                if v == DEFAULT_BRIDGE || v.starts_with("wren-") {
                    return Err(bad(k, v, "wren names its own bridges so"));
                }
                if let Some(o) = others.iter().find(|o| o.bridge == *v) {
                    return Err(bad(k, v, &format!("network {} has that bridge", o.name)));
                }
                // A bridge left without addresses (a network removed while
                // its bridge could not be) is taken over, as the bridge
                // plugin would; anything else there is someone else's
                // (docker0 has an address).
                match existing_link(v) {
                    Some((kind, _)) if kind != "bridge" => {
                        return Err(bad(
                            k,
                            v,
                            &format!("an interface of that name is there already ({kind})"),
                        ))
                    }
                    Some((_, v4)) if !v4.is_empty() => {
                        return Err(bad(
                            k,
                            v,
                            &format!("a bridge of that name is in use ({})", v4.join(", ")),
                        ))
                    }
                    _ => {}
                }
                bridge = Some(v.clone());
            }
            "com.docker.network.bridge.enable_ip_masquerade" => {
                bool_option(k, v)?;
            }
            "com.docker.network.bridge.enable_icc" => {
                if !bool_option(k, v)? {
                    return Err(bad(
                        k,
                        v,
                        "containers on one bridge always reach each other here",
                    ));
                }
            }
            _ => {
                return Err(StoreError::Invalid(format!(
                    "-o {k}: not an option of wren's bridge networks ({})",
                    OPTIONS.join(", ")
                )))
            }
        }
    }
    Ok(bridge)
}

/// The interface `name` in this network namespace, if there is one: its
/// kind ("device" for one without a kind, as a NIC or `lo`) and its IPv4
/// addresses.
fn existing_link(name: &str) -> Option<(String, Vec<String>)> {
    let out = std::process::Command::new("ip")
        .args(["-j", "-d", "addr", "show", "dev", name])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let v: Value = serde_json::from_slice(&out.stdout).ok()?;
    let link = v.get(0)?;
    let kind = link
        .pointer("/linkinfo/info_kind")
        .and_then(Value::as_str)
        .unwrap_or("device")
        .to_string();
    let v4 = link["addr_info"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["family"] == "inet")
        .filter_map(|a| Some(format!("{}/{}", a["local"].as_str()?, a["prefixlen"])))
        .collect();
    Some((kind, v4))
}

/// Creates network `name` as `spec` asks. Caller holds [`lock`]; the
/// bridge name is checked in the caller's network namespace (wrend's).
pub fn create(records: &Path, name: &str, spec: &Spec) -> Result<Network, StoreError> {
    if !super::valid_network_name(name) {
        return Err(StoreError::Invalid(format!(
            "invalid network name {name:?}: use 1-64 of [A-Za-z0-9_.-], starting with a letter or digit"
        )));
    }
    if matches!(name, "none" | "host") {
        return Err(StoreError::Invalid(format!(
            "{name:?} is a network mode, not a network name"
        )));
    }
    if dir(records, name).join("network.json").exists() {
        return Err(StoreError::Exists(name.to_string()));
    }
    let all = list(records);
    let taken: Vec<(&Network, (Ipv4Addr, u8))> = all
        .iter()
        .filter_map(|n| parse_subnet(&n.subnet).ok().map(|s| (n, s)))
        .collect();
    if spec.subnet.is_none() {
        for (flag, v) in [("--gateway", &spec.gateway), ("--ip-range", &spec.ip_range)] {
            if v.is_some() {
                return Err(StoreError::Invalid(format!("{flag} needs --subnet")));
            }
        }
    }
    let net = match &spec.subnet {
        Some(s) => {
            let want = parse_subnet(s)?;
            if let Some((other, _)) = taken.iter().find(|(_, t)| overlaps(*t, want)) {
                return Err(StoreError::Invalid(format!(
                    "--subnet {s}: overlaps network {} ({})",
                    other.name, other.subnet
                )));
            }
            want
        }
        None if name == DEFAULT_NETWORK => parse_subnet(DEFAULT_SUBNET)?,
        None => (1..=255u8)
            .map(|n| (Ipv4Addr::new(10, 89, n, 0), 24))
            .find(|c| !taken.iter().any(|(_, t)| overlaps(*t, *c)))
            .ok_or_else(|| {
                StoreError::Invalid("no free subnet in 10.89.0.0/16: give --subnet".into())
            })?,
    };
    let subnet = format!("{}/{}", net.0, net.1);
    let mask = u32::MAX << (32 - net.1);
    let host_of = |ip: Ipv4Addr| u32::from(ip) & !mask;
    let gateway = match &spec.gateway {
        Some(g) => {
            let ip: Ipv4Addr = g.parse().map_err(|_| {
                StoreError::Invalid(format!("--gateway {g:?}: not an IPv4 address"))
            })?;
            if u32::from(ip) & mask != u32::from(net.0) || host_of(ip) == 0 || host_of(ip) == !mask
            {
                return Err(StoreError::Invalid(format!(
                    "--gateway {g}: not a host address of --subnet {subnet}"
                )));
            }
            ip
        }
        None => Ipv4Addr::from(u32::from(net.0) + 1),
    };
    let ip_range = match &spec.ip_range {
        Some(r) => {
            let (rip, rlen) = parse_cidr("--ip-range", r, 32)?;
            if rlen < net.1 || u32::from(rip) & mask != u32::from(net.0) {
                return Err(StoreError::Invalid(format!(
                    "--ip-range {r}: not inside --subnet {subnet}"
                )));
            }
            let r = format!("{rip}/{rlen}");
            let usable = ip_range_bounds(&subnet, &r)
                .is_some_and(|(start, end)| start < end || (start == end && start != gateway));
            if !usable {
                return Err(StoreError::Invalid(format!(
                    "--ip-range {r}: no address to give out in it"
                )));
            }
            r
        }
        None => String::new(),
    };
    let bridge = check_options(&spec.options, &all)?.unwrap_or_else(|| bridge_name(name));
    for k in spec.labels.keys() {
        if k.is_empty() {
            return Err(StoreError::Invalid("--label: an empty key".into()));
        }
    }
    let n = Network {
        name: name.to_string(),
        bridge,
        subnet,
        gateway: gateway.to_string(),
        created_at: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64),
        internal: spec.internal,
        ip_range,
        options: spec.options.clone(),
        labels: spec.labels.clone(),
    };
    let d = dir(records, name);
    std::fs::create_dir_all(d.join("members")).map_err(io("create", &d))?;
    let write = |file: &str, v: Vec<u8>| {
        let p = d.join(file);
        let tmp = d.join(format!(".{file}.tmp"));
        std::fs::write(&tmp, v)
            .and_then(|()| std::fs::rename(&tmp, &p))
            .map_err(io("write", &p))
    };
    let done = write(
        "conflist.json",
        serde_json::to_vec_pretty(&conflist(records, &n)).unwrap_or_default(),
    )
    .and_then(|()| {
        write(
            "network.json",
            serde_json::to_vec_pretty(&n).unwrap_or_default(),
        )
    });
    if let Err(e) = done {
        let _ = std::fs::remove_dir_all(&d);
        return Err(e);
    }
    Ok(n)
}

/// The network `name`, making the default one if it is asked for and
/// missing. Caller holds [`lock`].
pub fn ensure(records: &Path, name: &str) -> Result<Network, StoreError> {
    match load(records, name) {
        Err(StoreError::NotFound(_)) if name == DEFAULT_NETWORK => {
            create(records, name, &Spec::default())
        }
        other => other,
    }
}

/// The containers attached to `name` now.
pub fn members(records: &Path, name: &str) -> Vec<Member> {
    let mut out: Vec<Member> = std::fs::read_dir(dir(records, name).join("members"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| std::fs::read(e.path()).ok())
        .filter_map(|b| serde_json::from_slice(&b).ok())
        .collect();
    out.sort_by(|a, b| a.container.cmp(&b.container));
    out
}

/// Every member of every network (for published-port conflicts).
pub fn all_members(records: &Path) -> Vec<Member> {
    list(records)
        .iter()
        .flat_map(|n| members(records, &n.name))
        .collect()
}

pub fn member_path(records: &Path, network: &str, container: &str) -> PathBuf {
    dir(records, network)
        .join("members")
        .join(format!("{container}.json"))
}

/// Removes network `name`: refused while `users` (containers configured
/// with it) is not empty. Its bridge goes too (the bridge plugin never
/// deletes one). Caller holds [`lock`].
pub fn remove(records: &Path, name: &str, users: Vec<String>) -> Result<(), StoreError> {
    let n = load(records, name)?;
    if !users.is_empty() {
        return Err(StoreError::InUse {
            name: name.to_string(),
            users,
        });
    }
    let d = dir(records, name);
    std::fs::remove_dir_all(&d).map_err(io("remove", &d))?;
    let quiet = |cmd: &str, args: &[&str]| {
        std::process::Command::new(cmd)
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .map(|s| s.success())
    };
    if let Err(e) = quiet("ip", &["link", "del", &n.bridge]) {
        log::warn!("remove bridge {}: {e}", n.bridge);
    }
    // The isolation rules the firewall plugin made for the bridge, found
    // by the bridge in their `-i`/`-o` and deleted as `iptables -S`
    // prints them (their comment differs between plugin versions).
    for chain in ["CNI-ISOLATION-STAGE-1", "CNI-ISOLATION-STAGE-2"] {
        let Ok(out) = std::process::Command::new("iptables")
            .args(["-w", "-t", "filter", "-S", chain])
            .stderr(std::process::Stdio::null())
            .output()
        else {
            continue;
        };
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let words = rule_words(line);
            let names_bridge = words
                .windows(2)
                .any(|w| matches!(w[0].as_str(), "-i" | "-o") && w[1] == n.bridge);
            if words.first().map(String::as_str) != Some("-A") || !names_bridge {
                continue;
            }
            let mut args: Vec<&str> = vec!["-w", "-t", "filter", "-D"];
            args.extend(words[1..].iter().map(String::as_str));
            if !matches!(quiet("iptables", &args), Ok(true)) {
                log::warn!("remove the isolation rule {line:?} of bridge {}", n.bridge);
            }
        }
    }
    Ok(())
}

/// The words of a rule as `iptables -S` prints it: split at spaces,
/// except inside double quotes (a comment), where `\"` is a quote.
fn rule_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let (mut quoted, mut any) = (false, false);
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                quoted = !quoted;
                any = true;
            }
            '\\' if quoted => cur.extend(chars.next()),
            ' ' if !quoted => {
                if any || !cur.is_empty() {
                    words.push(std::mem::take(&mut cur));
                }
                any = false;
            }
            c => cur.push(c),
        }
    }
    if any || !cur.is_empty() {
        words.push(cur);
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subnet(s: &str) -> Spec {
        Spec {
            subnet: Some(s.to_string()),
            ..Spec::default()
        }
    }

    #[test]
    fn rule_words_keep_a_quoted_comment_whole() {
        let w = rule_words(
            r#"-A CNI-ISOLATION-STAGE-2 -o wren-1 -m comment --comment "CNI rules (a \"b\")" -j DROP"#,
        );
        assert_eq!(
            w,
            [
                "-A",
                "CNI-ISOLATION-STAGE-2",
                "-o",
                "wren-1",
                "-m",
                "comment",
                "--comment",
                "CNI rules (a \"b\")",
                "-j",
                "DROP"
            ]
        );
    }

    #[test]
    fn subnets_and_overlaps() {
        assert_eq!(
            parse_subnet("10.1.0.0/16").unwrap(),
            (Ipv4Addr::new(10, 1, 0, 0), 16)
        );
        for bad in ["10.1.0.1/16", "10.1.0.0", "x/8", "10.0.0.0/31", "::1/64"] {
            assert!(parse_subnet(bad).is_err(), "{bad}");
        }
        let a = parse_subnet("10.1.0.0/16").unwrap();
        assert!(overlaps(a, parse_subnet("10.1.5.0/24").unwrap()));
        assert!(!overlaps(a, parse_subnet("10.2.0.0/24").unwrap()));
    }

    #[test]
    fn create_list_overlap_remove() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        let d = ensure(r, DEFAULT_NETWORK).unwrap();
        assert_eq!(
            (d.bridge.as_str(), d.subnet.as_str()),
            ("wren0", DEFAULT_SUBNET)
        );
        let a = create(r, "a", &Spec::default()).unwrap();
        assert_eq!(a.subnet, "10.89.1.0/24");
        assert_eq!(a.gateway, "10.89.1.1");
        let e = create(r, "b", &subnet("10.89.1.128/25")).unwrap_err();
        assert!(e.to_string().contains("overlaps network a"), "{e}");
        assert!(matches!(
            create(r, "a", &Spec::default()),
            Err(StoreError::Exists(_))
        ));
        assert!(create(r, "host", &Spec::default()).is_err());
        assert_eq!(list(r).len(), 2);
        let e = remove(r, "a", vec!["web".into()]).unwrap_err();
        assert_eq!(e.to_string(), "network a is in use by web");
        assert!(matches!(
            remove(r, "zz", vec![]),
            Err(StoreError::NotFound(_))
        ));
    }

    #[test]
    fn only_the_first_network_routes_by_default() {
        let t = tempfile::tempdir().unwrap();
        let n = create(t.path(), "n", &Spec::default()).unwrap();
        let first = conflist_of(t.path(), &n, true, false);
        assert_eq!(first, conflist(t.path(), &n));
        assert_eq!(first["plugins"][0]["ipam"]["routes"][0]["dst"], "0.0.0.0/0");
        let other = conflist_of(t.path(), &n, false, false);
        assert!(
            other["plugins"][0]["ipam"].get("routes").is_none(),
            "{other}"
        );
        assert_eq!(
            other["plugins"][0]["ipam"]["ranges"],
            first["plugins"][0]["ipam"]["ranges"]
        );
        assert_eq!(first["plugins"][0]["ipMasq"], true);
        // An internal network never routes out, nor masquerades.
        let i = create(
            t.path(),
            "i",
            &Spec {
                internal: true,
                ..Spec::default()
            },
        )
        .unwrap();
        let c = conflist_of(t.path(), &i, true, false);
        assert!(c["plugins"][0]["ipam"].get("routes").is_none(), "{c}");
        assert_eq!(c["plugins"][0]["ipMasq"], false);
    }

    #[test]
    fn gateway_range_options_and_labels() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        let spec = Spec {
            gateway: Some("10.7.0.254".into()),
            ip_range: Some("10.7.0.128/25".into()),
            options: [
                ("mtu".to_string(), "1400".to_string()),
                (
                    "com.docker.network.bridge.enable_ip_masquerade".into(),
                    "false".into(),
                ),
            ]
            .into(),
            labels: [("team".to_string(), "edge".to_string())].into(),
            ..subnet("10.7.0.0/24")
        };
        let n = create(r, "n", &spec).unwrap();
        assert_eq!(
            (n.gateway.as_str(), n.ip_range.as_str()),
            ("10.7.0.254", "10.7.0.128/25")
        );
        assert_eq!((n.mtu(), n.masquerade()), (Some(1400), false));
        assert_eq!(load(r, "n").unwrap(), n);
        let c = conflist_of(r, &n, true, false);
        let range = &c["plugins"][0]["ipam"]["ranges"][0][0];
        assert_eq!(range["gateway"], "10.7.0.254");
        // The range's broadcast address is the subnet's: not given out.
        assert_eq!(
            (range["rangeStart"].as_str(), range["rangeEnd"].as_str()),
            (Some("10.7.0.128"), Some("10.7.0.254"))
        );
        assert_eq!(c["plugins"][0]["mtu"], 1400);
        assert_eq!(c["plugins"][0]["ipMasq"], false);
        // A container's own address may lie anywhere in the subnet.
        let fixed = conflist_of(r, &n, true, true);
        assert!(fixed["plugins"][0]["ipam"]["ranges"][0][0]
            .get("rangeStart")
            .is_none());
        assert_eq!(n.differs(&spec), None);
        let other = Spec {
            internal: true,
            ..spec.clone()
        };
        assert_eq!(
            n.differs(&other).unwrap(),
            "internal: false, the file asks for true"
        );
        // The labels compose puts on are not the file's; the user's are.
        let mut labelled = n.clone();
        labelled
            .labels
            .insert("wren.compose.project".into(), "p".into());
        assert_eq!(labelled.differs(&spec), None);
        labelled.labels.insert("tier".into(), "back".into());
        assert_eq!(
            labelled.differs(&spec).unwrap(),
            "labels: [team=edge, tier=back], the file asks for [team=edge]"
        );
        // A range starting at the subnet's own address skips it.
        let m = create(
            r,
            "m",
            &Spec {
                ip_range: Some("10.8.0.0/30".into()),
                ..subnet("10.8.0.0/24")
            },
        )
        .unwrap();
        assert_eq!(
            ip_range_bounds(&m.subnet, &m.ip_range),
            Some((Ipv4Addr::new(10, 8, 0, 1), Ipv4Addr::new(10, 8, 0, 3)))
        );
        // A bridge name of one's own.
        let b = create(
            r,
            "b",
            &Spec {
                options: [(
                    "com.docker.network.bridge.name".to_string(),
                    "br-b".to_string(),
                )]
                .into(),
                ..Spec::default()
            },
        )
        .unwrap();
        assert_eq!(b.bridge, "br-b");
        for (spec, want) in [
            (
                Spec {
                    gateway: Some("10.9.0.1".into()),
                    ..Spec::default()
                },
                "--gateway needs --subnet",
            ),
            (
                Spec {
                    gateway: Some("10.10.0.1".into()),
                    ..subnet("10.9.0.0/24")
                },
                "--gateway 10.10.0.1: not a host address of --subnet 10.9.0.0/24",
            ),
            (
                Spec {
                    gateway: Some("10.9.0.255".into()),
                    ..subnet("10.9.0.0/24")
                },
                "not a host address",
            ),
            (
                Spec {
                    gateway: Some("x".into()),
                    ..subnet("10.9.0.0/24")
                },
                "--gateway \"x\": not an IPv4 address",
            ),
            (
                Spec {
                    ip_range: Some("10.9.1.0/25".into()),
                    ..subnet("10.9.0.0/24")
                },
                "--ip-range 10.9.1.0/25: not inside --subnet 10.9.0.0/24",
            ),
            (
                Spec {
                    ip_range: Some("10.9.0.0/23".into()),
                    ..subnet("10.9.0.0/24")
                },
                "not inside",
            ),
            (
                Spec {
                    ip_range: Some("10.9.0.1/25".into()),
                    ..subnet("10.9.0.0/24")
                },
                "host bits set",
            ),
            (
                Spec {
                    ip_range: Some("10.9.0.255/32".into()),
                    ..subnet("10.9.0.0/24")
                },
                "no address to give out",
            ),
            (
                Spec {
                    ip_range: Some("10.9.0.1/32".into()),
                    ..subnet("10.9.0.0/24")
                },
                "no address to give out",
            ),
            (
                Spec {
                    options: [("mtu".to_string(), "10".to_string())].into(),
                    ..Spec::default()
                },
                "-o mtu=10: the MTU must be 68-65535",
            ),
            (
                Spec {
                    options: [("isolate".to_string(), "true".to_string())].into(),
                    ..Spec::default()
                },
                "-o isolate: not an option",
            ),
            (
                Spec {
                    options: [(
                        "com.docker.network.bridge.name".to_string(),
                        "br-b".to_string(),
                    )]
                    .into(),
                    ..Spec::default()
                },
                "network b has that bridge",
            ),
            (
                Spec {
                    options: [(
                        "com.docker.network.bridge.name".to_string(),
                        "a-name-too-long-for-it".to_string(),
                    )]
                    .into(),
                    ..Spec::default()
                },
                "1-15 of",
            ),
            (
                Spec {
                    options: [(
                        "com.docker.network.bridge.name".to_string(),
                        "wren-1".to_string(),
                    )]
                    .into(),
                    ..Spec::default()
                },
                "wren names its own bridges",
            ),
            (
                Spec {
                    options: [(
                        "com.docker.network.bridge.enable_icc".to_string(),
                        "false".to_string(),
                    )]
                    .into(),
                    ..Spec::default()
                },
                "always reach each other",
            ),
            (
                Spec {
                    options: [(
                        "com.docker.network.bridge.enable_ip_masquerade".to_string(),
                        "no".to_string(),
                    )]
                    .into(),
                    ..Spec::default()
                },
                "want true or false",
            ),
        ] {
            let e = create(r, "x", &spec).unwrap_err().to_string();
            assert!(e.contains(want), "{spec:?}: {e}");
            assert!(!dir(r, "x").exists());
        }
    }
}
