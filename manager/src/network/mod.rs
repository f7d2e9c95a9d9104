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
    /// `NAME:IP` each.
    #[serde(default)]
    pub add_hosts: Vec<String>,
    #[serde(default)]
    pub hostname: String,
    /// The address the last attachment got (asked for again on a restart).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub last_ip: String,
}

impl NetRequest {
    /// Whether this container is attached through CNI (not none or host).
    pub fn uses_cni(&self) -> bool {
        !matches!(self.network.as_str(), "none" | "host")
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

/// One published port: `[IP:]HOST:CTR[/tcp|udp]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PortMapping {
    /// Empty: every address.
    #[serde(default)]
    pub host_ip: String,
    pub host_port: u16,
    pub container_port: u16,
    pub protocol: String,
}

impl PortMapping {
    /// Parses `-p`'s value. A missing or 0 host port (`80`, `IP::80`,
    /// `0:80`) means a free one, picked when the container is attached.
    pub fn parse(s: &str) -> Result<PortMapping, String> {
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
        let port = |p: &str, what: &str| -> Result<u16, String> {
            p.parse::<u16>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| bad(&format!("{what} port {p:?} is not a number in 1-65535")))
        };
        let host_port = match host {
            "" | "0" => 0,
            h => port(h, "host")?,
        };
        Ok(PortMapping {
            host_ip: ip.to_string(),
            host_port,
            container_port: port(ctr, "container")?,
            protocol,
        })
    }
}

impl std::fmt::Display for PortMapping {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if !self.host_ip.is_empty() {
            write!(f, "{}:", self.host_ip)?;
        }
        write!(
            f,
            "{}:{}/{}",
            self.host_port, self.container_port, self.protocol
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports() {
        let p = PortMapping::parse("127.0.0.1:8080:80").unwrap();
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
        let p = PortMapping::parse("5353:53/udp").unwrap();
        assert_eq!((p.host_ip.as_str(), p.protocol.as_str()), ("", "udp"));
        assert_eq!(PortMapping::parse("80").unwrap().host_port, 0);
        assert_eq!(PortMapping::parse("127.0.0.1::80").unwrap().host_port, 0);
        for bad in ["a:80", "1:2/sctp", "x.y:1:2", "1:0", "1:70000", "1:2:3:4"] {
            assert!(PortMapping::parse(bad).is_err(), "{bad}");
        }
    }
}
