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

/// Parses an IPv4 CIDR; returns (network address, prefix length).
pub fn parse_subnet(s: &str) -> Result<(Ipv4Addr, u8), StoreError> {
    let bad = |why: &str| StoreError::Invalid(format!("--subnet {s:?}: {why}"));
    let (ip, len) = s.split_once('/').ok_or_else(|| bad("want A.B.C.D/LEN"))?;
    let ip: Ipv4Addr = ip.parse().map_err(|_| bad("not an IPv4 address"))?;
    let len: u8 = len
        .parse()
        .ok()
        .filter(|l| (8..=30).contains(l))
        .ok_or_else(|| bad("the prefix length must be 8-30"))?;
    let mask = u32::MAX << (32 - len);
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
    // FNV-1a: stable, short, no dependency.
    let mut h: u32 = 0x811c_9dc5;
    for b in name.bytes() {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    format!("wren-{h:08x}")
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
    conflist_of(records, n, true)
}

/// The CNI configuration list for a container's attachment to `n`. The
/// IPAM's default route is there only if `route` (the container's first
/// network that is not internal: a second default route would fail the
/// ADD) and `n` is not internal; an internal network masquerades nothing
/// either (its members reach each other and the bridge's address only).
pub fn conflist_of(records: &Path, n: &Network, route: bool) -> Value {
    let mut ipam = json!({"type": "host-local",
                          "dataDir": dir(records, &n.name).join("ipam"),
                          "ranges": [[{"subnet": n.subnet, "gateway": n.gateway}]]});
    if route && !n.internal {
        ipam["routes"] = json!([{"dst": "0.0.0.0/0"}]);
    }
    json!({
        "cniVersion": "1.0.0",
        "name": n.name,
        "plugins": [
            {"type": "bridge", "bridge": n.bridge, "isGateway": true, "ipMasq": !n.internal,
             "hairpinMode": true, "ipam": ipam},
            {"type": "portmap", "capabilities": {"portMappings": true}},
            {"type": "firewall", "ingressPolicy": ISOLATION}
        ]
    })
}

/// Creates network `name` on `subnet` (None: the first free 10.89.N.0/24),
/// `internal` or not. Caller holds [`lock`].
pub fn create(
    records: &Path,
    name: &str,
    subnet: Option<&str>,
    internal: bool,
) -> Result<Network, StoreError> {
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
    let taken: Vec<(Network, (Ipv4Addr, u8))> = list(records)
        .into_iter()
        .filter_map(|n| parse_subnet(&n.subnet).ok().map(|s| (n, s)))
        .collect();
    let net = match subnet {
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
    let n = Network {
        name: name.to_string(),
        bridge: bridge_name(name),
        subnet: format!("{}/{}", net.0, net.1),
        gateway: Ipv4Addr::from(u32::from(net.0) + 1).to_string(),
        created_at: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64),
        internal,
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
            create(records, name, None, false)
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
        let a = create(r, "a", None, false).unwrap();
        assert_eq!(a.subnet, "10.89.1.0/24");
        assert_eq!(a.gateway, "10.89.1.1");
        let e = create(r, "b", Some("10.89.1.128/25"), false).unwrap_err();
        assert!(e.to_string().contains("overlaps network a"), "{e}");
        assert!(matches!(
            create(r, "a", None, false),
            Err(StoreError::Exists(_))
        ));
        assert!(create(r, "host", None, false).is_err());
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
        let n = create(t.path(), "n", None, false).unwrap();
        let first = conflist_of(t.path(), &n, true);
        assert_eq!(first, conflist(t.path(), &n));
        assert_eq!(first["plugins"][0]["ipam"]["routes"][0]["dst"], "0.0.0.0/0");
        let other = conflist_of(t.path(), &n, false);
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
        let i = create(t.path(), "i", None, true).unwrap();
        let c = conflist_of(t.path(), &i, true);
        assert!(c["plugins"][0]["ipam"].get("routes").is_none(), "{c}");
        assert_eq!(c["plugins"][0]["ipMasq"], false);
    }
}
