//! Container networking, shared by `wren` and `wrend`: what a container
//! asked for ([`NetRequest`], saved as `net/config.json` in its record
//! directory), published-port syntax ([`PortMapping`]), the files a
//! container gets as /etc/hosts, /etc/resolv.conf and /etc/hostname
//! ([`files`]), and where everything lives on disk.
//!
//! The CNI work itself ([`cni`]: running plugins per the CNI spec;
//! [`attach`]: one container's ADD/DEL with its cache; [`store`]: the
//! networks `wren network` manages) runs in the `wren` CLI and in
//! `wren-net`, the short-lived helper wrend spawns and watches from its
//! loop. wrend links only this file and [`files`].
//!
//! Pure data and path arithmetic here; runs in `wren` and `wrend`.

pub mod attach;
pub mod cni;
pub mod files;
pub mod helper;
pub mod store;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The network every container gets unless it names another.
pub const DEFAULT_NETWORK: &str = "bridge";
/// Per container: the directory (in its record directory) with its
/// request, CNI cache and the /etc files it gets.
pub const NET_DIR: &str = "net";
/// The request's file name in [`NET_DIR`].
pub const REQUEST_FILE: &str = "config.json";
/// The CNI cache (config used, result) in [`NET_DIR`]; present exactly
/// while the container is attached.
pub const CACHE_FILE: &str = "cni-cache.json";

/// What a container asked of the network (`--network`, `-p`, `--dns`,
/// `--add-host`), and the address it last had.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetRequest {
    /// `none`, `host`, or a network's name (`bridge`: the default one).
    pub network: String,
    #[serde(default)]
    pub ports: Vec<PortMapping>,
    #[serde(default)]
    pub dns: Vec<String>,
    /// `--dns-search` domains (`.`: none) and `--dns-option`s.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_search: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_options: Vec<String>,
    /// `NAME:IP` each.
    #[serde(default)]
    pub add_hosts: Vec<String>,
    #[serde(default)]
    pub hostname: String,
    /// More names peers find it by (`--network-alias`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// `--ip`: the address it must have ("": any).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ip: String,
    /// The address the last attachment got (asked for again on a restart).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub last_ip: String,
    /// The MAC address the container's interface last had, asked for again
    /// with the address: peers and the host keep the old address in their
    /// neighbour tables (REACHABLE for up to a minute), and a new MAC
    /// behind the same address leaves the container unreachable till then.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub last_mac: String,
    /// The host ports the last attachment published, one per entry of
    /// `ports`: a free port (`-p 80`) or one of a range (`-p 8000-8010:80`)
    /// is picked at each attach, this one first if it is still free.
    /// `ports` itself stays as asked.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub last_ports: Vec<PortMapping>,
    /// More networks (`--network` given again), attached after `network`
    /// as eth1, eth2, ...: peers there find the container too, but its
    /// default route and published ports stay on `network`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub more: Vec<Endpoint>,
}

/// One more network of a container: what it asked for there, and what
/// its last attachment got (asked for again on a restart, as the first
/// network's `last_ip` and `last_mac`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub network: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ip: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub last_ip: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub last_mac: String,
}

impl NetRequest {
    /// Whether this container is attached through CNI (not none, host
    /// or another container's network).
    pub fn uses_cni(&self) -> bool {
        uses_cni(&self.network)
    }

    /// Every network it is on, its first (`network`) first: what the
    /// attach works through, one interface each.
    pub fn endpoints(&self) -> Vec<Endpoint> {
        let first = Endpoint {
            network: self.network.clone(),
            ip: self.ip.clone(),
            aliases: self.aliases.clone(),
            last_ip: self.last_ip.clone(),
            last_mac: self.last_mac.clone(),
        };
        std::iter::once(first)
            .chain(self.more.iter().cloned())
            .collect()
    }

    /// The name its peers and its /etc/hostname know it by: its hostname,
    /// else the container's name.
    pub fn hostname_or(&self, container: &str) -> String {
        if self.hostname.is_empty() {
            container.to_string()
        } else {
            self.hostname.clone()
        }
    }

    /// Whether it is on network `name` (first or not).
    pub fn on_network(&self, name: &str) -> bool {
        self.network == name || self.more.iter().any(|e| e.network == name)
    }

    /// What /etc/resolv.conf is written from.
    pub fn dns_flags(&self) -> files::Dns<'_> {
        files::Dns {
            servers: &self.dns,
            search: &self.dns_search,
            options: &self.dns_options,
        }
    }

    /// The ports as published by the last attachment (as asked, for a
    /// request saved before any attach or by an older wren).
    pub fn published_ports(&self) -> &[PortMapping] {
        if self.last_ports.len() == self.ports.len() {
            &self.last_ports
        } else {
            &self.ports
        }
    }

    pub fn load(container_dir: &Path) -> std::io::Result<NetRequest> {
        let p = container_dir.join(NET_DIR).join(REQUEST_FILE);
        let b = std::fs::read(&p)?;
        serde_json::from_slice(&b)
            .map_err(|e| std::io::Error::other(format!("{}: {e}", p.display())))
    }

    pub fn save(&self, container_dir: &Path) -> std::io::Result<()> {
        let dir = container_dir.join(NET_DIR);
        std::fs::create_dir_all(&dir)?;
        let tmp = dir.join(".config.json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(self).unwrap_or_default())?;
        std::fs::rename(&tmp, dir.join(REQUEST_FILE))
    }
}

/// The prefix of a network (or pid) mode that joins another container's
/// namespace: `container:NAME`, as Docker and Podman write it.
pub const JOIN_PREFIX: &str = "container:";

/// The container a `container:NAME` mode joins.
pub fn joined(mode: &str) -> Option<&str> {
    mode.strip_prefix(JOIN_PREFIX)
}

/// Whether network mode `mode` is a CNI network (not "" — a bundle's own
/// namespaces —, none, host, or `container:NAME`).
pub fn uses_cni(mode: &str) -> bool {
    !matches!(mode, "" | "none" | "host") && joined(mode).is_none()
}

/// A DNS-style host name: labels of letters, digits and `-` (not at
/// either end), joined by dots; at most 253 bytes.
pub fn valid_host_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 253
        && n.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-')
        })
}

/// A network name `wren network create` accepts (it names a directory and
/// appears in /etc/hosts of no one): like a container name.
pub fn valid_network_name(n: &str) -> bool {
    let b = n.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// Where `wren network` keeps networks: `<records>/networks/NAME/`.
pub fn networks_in(records_dir: &Path) -> PathBuf {
    records_dir.join("networks")
}

/// The bind-mounted network namespace of a CNI-attached container.
pub fn netns_path(state_dir: &Path, container: &str) -> PathBuf {
    state_dir.join("netns").join(container)
}

/// Makes the network namespace a CNI-attached container lives in, at
/// `path` (see [`netns_path`]): a new one with `lo` up (the CNI chain has
/// no loopback plugin), made on a short-lived thread so the caller's own
/// threads never leave their namespace, and held by a bind mount on
/// `path`. wrend makes it before the task so the shim can create the task
/// while `wren-net` runs the plugins; `wren-net` makes it when wrend did
/// not (a restore, a stale attachment). One function, so the two cannot
/// drift apart again. Nothing is left at `path` on an error, which names
/// the step but not `path` (the caller adds it).
pub fn make_netns(path: &Path) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let step = |what: &str| {
        let what = what.to_string();
        move |e: std::io::Error| std::io::Error::new(e.kind(), format!("{what}: {e}"))
    };
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).map_err(step(&format!("create {}", d.display())))?;
    }
    std::fs::File::create(path).map_err(step("create the mount point"))?;
    let made = wren_runtime::loopback::new_namespace()
        .map_err(step("make a new namespace"))
        .and_then(|ns| {
            nix::mount::mount(
                Some(format!("/proc/self/fd/{}", ns.as_raw_fd()).as_str()),
                path,
                None::<&str>,
                nix::mount::MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(|e| step("bind-mount it")(e.into()))
        });
    if made.is_err() {
        remove_netns(path);
    }
    made
}

/// Removes what [`make_netns`] made at `path` (every mount stacked on it,
/// then the file); nothing there is not an error.
pub fn remove_netns(path: &Path) {
    while nix::mount::umount2(path, nix::mount::MntFlags::MNT_DETACH).is_ok() {}
    if let Err(e) = std::fs::remove_file(path) {
        if e.kind() != std::io::ErrorKind::NotFound {
            log::warn!("remove {}: {e}", path.display());
        }
    }
}

/// One published port: `[IP:]HOST:CTR[/tcp|udp]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PortMapping {
    /// Empty: every address.
    #[serde(default)]
    pub host_ip: String,
    pub host_port: u16,
    pub container_port: u16,
    pub protocol: String,
    /// Non-zero: the host port is the first free one of
    /// `host_port..=host_port_last` (`-p 8000-8010:80`, as Docker), picked
    /// when the container is attached; 0 once picked.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub host_port_last: u16,
}

fn is_zero(n: &u16) -> bool {
    *n == 0
}

/// `N` or `N-M` (inclusive, N <= M), each in 1-65535.
fn port_range(p: &str) -> Option<(u16, u16)> {
    let one = |p: &str| p.parse::<u16>().ok().filter(|n| *n > 0);
    match p.split_once('-') {
        Some((a, b)) => Some((one(a)?, one(b)?)).filter(|(a, b)| a <= b),
        None => one(p).map(|n| (n, n)),
    }
}

impl PortMapping {
    /// Parses `-p`'s value, one mapping per port: `[IP:]HOST:CTR[/PROTO]`,
    /// where CTR may be a range `C1-C2` (with HOST a range of the same
    /// length, or empty or 0 for free ports), and HOST may be a range for a
    /// single CTR (the first free port of the range, as Docker). A missing
    /// or 0 host port (`80`, `IP::80`, `0:80`) means a free one, picked
    /// when the container is attached.
    pub fn parse(s: &str) -> Result<Vec<PortMapping>, String> {
        let bad =
            |why: &str| format!("-p {s:?}: {why}; want [IP:]HOSTPORT:CONTAINERPORT[/tcp|udp]");
        let (spec, protocol) = match s.rsplit_once('/') {
            Some((a, p)) => (a, p.to_ascii_lowercase()),
            None => (s, "tcp".to_string()),
        };
        if protocol != "tcp" && protocol != "udp" {
            return Err(bad(&format!("unknown protocol {protocol:?}")));
        }
        let parts: Vec<&str> = spec.rsplitn(3, ':').collect();
        let (ip, host, ctr) = match parts.as_slice() {
            [c, h] => ("", *h, *c),
            [c, h, ip] => (*ip, *h, *c),
            [c] => ("", "0", *c),
            _ => return Err(bad("too many parts")),
        };
        let ip = ip.trim_start_matches('[').trim_end_matches(']');
        if !ip.is_empty() && ip.parse::<std::net::IpAddr>().is_err() {
            return Err(bad(&format!("{ip:?} is not an IP address")));
        }
        let range = |p: &str, what: &str| {
            port_range(p).ok_or_else(|| {
                bad(&format!(
                    "{what} port {p:?} is not a number in 1-65535 or a range N-M of them"
                ))
            })
        };
        let (c1, c2) = range(ctr, "container")?;
        let (h1, h2) = match host {
            "" | "0" => (0, 0),
            h => range(h, "host")?,
        };
        let one = |host_port, host_port_last, container_port| PortMapping {
            host_ip: ip.to_string(),
            host_port,
            container_port,
            protocol: protocol.clone(),
            host_port_last,
        };
        if c1 == c2 {
            // One container port: a host range means "a free one of them".
            return Ok(vec![one(h1, if h2 > h1 { h2 } else { 0 }, c1)]);
        }
        if h1 != 0 && h2 - h1 != c2 - c1 {
            return Err(bad(&format!(
                "host range {host} and container range {ctr} differ in length"
            )));
        }
        Ok((0..=c2 - c1)
            .map(|i| one(if h1 == 0 { 0 } else { h1 + i }, 0, c1 + i))
            .collect())
    }

    /// The host ports this mapping may take: its one port, or its range.
    pub fn host_ports(&self) -> std::ops::RangeInclusive<u16> {
        self.host_port..=self.host_port_last.max(self.host_port)
    }
}

impl std::fmt::Display for PortMapping {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if !self.host_ip.is_empty() {
            write!(f, "{}:", self.host_ip)?;
        }
        write!(f, "{}", self.host_port)?;
        if self.host_port_last > self.host_port {
            write!(f, "-{}", self.host_port_last)?;
        }
        write!(f, ":{}/{}", self.container_port, self.protocol)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(s: &str) -> PortMapping {
        let mut v = PortMapping::parse(s).unwrap();
        assert_eq!(v.len(), 1, "{s}");
        v.remove(0)
    }

    #[test]
    fn ports() {
        let p = one("127.0.0.1:8080:80");
        assert_eq!(
            (
                p.host_ip.as_str(),
                p.host_port,
                p.container_port,
                p.protocol.as_str()
            ),
            ("127.0.0.1", 8080, 80, "tcp")
        );
        assert_eq!(p.to_string(), "127.0.0.1:8080:80/tcp");
        let p = one("5353:53/udp");
        assert_eq!((p.host_ip.as_str(), p.protocol.as_str()), ("", "udp"));
        assert_eq!(one("80").host_port, 0);
        assert_eq!(one("127.0.0.1::80").host_port, 0);
        for bad in [
            "a:80",
            "1:2/sctp",
            "x.y:1:2",
            "1:0",
            "1:70000",
            "1:2:3:4",
            "9-8:80",
            "1-:80",
            "8000-8002:80-81",
            "80-81-82",
        ] {
            assert!(PortMapping::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn port_ranges() {
        let v = PortMapping::parse("127.0.0.1:8000-8002:80-82/udp").unwrap();
        let got: Vec<String> = v.iter().map(|p| p.to_string()).collect();
        assert_eq!(
            got,
            [
                "127.0.0.1:8000:80/udp",
                "127.0.0.1:8001:81/udp",
                "127.0.0.1:8002:82/udp"
            ]
        );
        // A container range alone: free host ports, one per container port.
        let v = PortMapping::parse("9000-9001").unwrap();
        assert_eq!(
            v.iter()
                .map(|p| (p.host_port, p.container_port))
                .collect::<Vec<_>>(),
            [(0, 9000), (0, 9001)]
        );
        // A host range for one container port: the first free of them,
        // and the text form carries the range to wrend unchanged.
        let p = one("8000-8010:80");
        assert_eq!((p.host_port, p.host_port_last), (8000, 8010));
        assert_eq!(p.host_ports(), 8000..=8010);
        assert_eq!(p.to_string(), "8000-8010:80/tcp");
        assert_eq!(one(&p.to_string()), p);
        assert_eq!(one("8000-8000:80").host_port_last, 0);
    }
}
