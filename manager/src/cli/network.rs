//! `wren network create|ls|inspect|rm`, the networking flags of `run` and
//! `create` (`--network`, `-p`, `-P`, `--dns`, `--add-host`), and the
//! hidden commands `wren network attach|detach|check NAME` (CNI ADD, DEL
//! and CHECK of one container, [`crate::network::attach`]) for debugging by
//! hand; wrend itself runs `wren-net`.
//!
//! Runs in `wren`.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde_json::{json, Value};
use wren_protocol::manager as api;

use super::{CliError, Global};
use crate::network::{self, attach, files, store, PortMapping};

/// The networking flags of `run` and `create`.
#[derive(Debug, Args, Default, Clone, serde::Serialize, serde::Deserialize)]
#[command(next_help_heading = "Networking")]
#[serde(default)]
pub struct NetworkFlags {
    /// none, host, bridge (the default network), a network's name, or container:NAME (join its network)
    #[arg(long, value_name = "NETWORK")]
    pub network: Option<String>,
    /// Publish a port: [IP:]HOSTPORT:CONTAINERPORT[/tcp|udp], either port a range N-M (repeatable)
    #[arg(short = 'p', long = "publish", value_name = "[IP:]HOST:CTR[/PROTO]")]
    pub publish: Vec<String>,
    /// Publish every port the image exposes on a free host port
    #[arg(short = 'P', long)]
    pub publish_all: bool,
    /// A DNS server for /etc/resolv.conf (repeatable)
    #[arg(long, value_name = "IP")]
    pub dns: Vec<String>,
    /// Its IPv4 address on its network (in the network's subnet; kept across restarts)
    #[arg(long, value_name = "IPV4")]
    pub ip: Option<String>,
    /// A search domain for /etc/resolv.conf, instead of the host's ("." for none; repeatable)
    #[arg(long, value_name = "DOMAIN")]
    pub dns_search: Vec<String>,
    /// A resolver option for /etc/resolv.conf (ndots:2), instead of the host's (repeatable)
    #[arg(long, visible_alias = "dns-opt", value_name = "OPTION")]
    pub dns_option: Vec<String>,
    /// An /etc/hosts entry NAME:IP (repeatable)
    #[arg(long, value_name = "NAME:IP")]
    pub add_host: Vec<String>,
    /// Another name the container's peers on its network find it by (repeatable)
    #[arg(long = "network-alias", value_name = "NAME")]
    pub network_alias: Vec<String>,
}

impl NetworkFlags {
    /// Fills the request's networking fields; `exposed` are the image's
    /// exposed ports (`80/tcp`), for `-P`.
    pub fn apply(&self, req: &mut api::CreateRequest, exposed: &[String]) -> Result<(), CliError> {
        let mode = self.network.clone().unwrap_or_default();
        if let Some(other) = network::joined(&mode) {
            // wrend names what cannot go with it (ports, names, DNS).
            if !network::valid_network_name(other) {
                return Err(CliError::usage(format!(
                    "--network {mode:?}: {other:?} is not a container name"
                )));
            }
        } else if !mode.is_empty()
            && !matches!(mode.as_str(), "none" | "host")
            && !network::valid_network_name(&mode)
        {
            return Err(CliError::usage(format!(
                "--network {mode:?}: not a network name (or none, host, container:NAME)"
            )));
        }
        let mut ports = Vec::new();
        for p in &self.publish {
            ports.extend(PortMapping::parse(p).map_err(CliError::usage)?);
        }
        if self.publish_all {
            for e in exposed {
                let (port, proto) = e.split_once('/').unwrap_or((e, "tcp"));
                let Ok(port) = port.parse::<u16>() else {
                    continue;
                };
                if !ports
                    .iter()
                    .any(|p| p.container_port == port && p.protocol == proto)
                {
                    // Host port 0: the network helper picks a free one.
                    ports.push(PortMapping {
                        host_ip: String::new(),
                        host_port: 0,
                        container_port: port,
                        protocol: proto.to_string(),
                        host_port_last: 0,
                    });
                }
            }
        }
        if !ports.is_empty() && matches!(mode.as_str(), "none" | "host") {
            return Err(CliError::usage(format!(
                "-p/-P: ports cannot be published with --network {mode}"
            )));
        }
        for d in &self.dns {
            if d.parse::<std::net::IpAddr>().is_err() {
                return Err(CliError::usage(format!("--dns {d:?}: not an IP address")));
            }
        }
        if let Some(ip) = &self.ip {
            if ip.parse::<std::net::Ipv4Addr>().is_err() {
                return Err(CliError::usage(format!("--ip {ip:?}: not an IPv4 address")));
            }
            if matches!(mode.as_str(), "none" | "host") {
                return Err(CliError::usage(format!(
                    "--ip: a container on network {mode} gets no address of its own"
                )));
            }
        }
        for d in &self.dns_search {
            if d != "." && !network::valid_host_name(d.trim_end_matches('.')) {
                return Err(CliError::usage(format!(
                    "--dns-search {d:?}: want a domain name (or \".\" for none)"
                )));
            }
        }
        if self.dns_search.len() > 1 && self.dns_search.iter().any(|d| d == ".") {
            return Err(CliError::usage(
                "--dns-search .: means no search domains, and cannot go with others",
            ));
        }
        for o in &self.dns_option {
            if o.is_empty() || o.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(CliError::usage(format!(
                    "--dns-option {o:?}: want one resolver option (ndots:2, edns0, ...)"
                )));
            }
        }
        for h in &self.add_host {
            let ok = h.split_once(':').is_some_and(|(n, ip)| {
                !n.is_empty()
                    && (ip.parse::<std::net::IpAddr>().is_ok() || ip == files::HOST_GATEWAY)
            });
            if !ok {
                return Err(CliError::usage(format!(
                    "--add-host {h:?}: want NAME:IP (or NAME:host-gateway)"
                )));
            }
            if h.ends_with(":host-gateway") && mode == "none" {
                return Err(CliError::usage(format!(
                    "--add-host {h:?}: a container on network none has no way to the host"
                )));
            }
        }
        for a in &self.network_alias {
            if !network::valid_host_name(a) {
                return Err(CliError::usage(format!(
                    "--network-alias {a:?}: want a host name (letters, digits, '-' and '.')"
                )));
            }
        }
        if !self.network_alias.is_empty() && matches!(mode.as_str(), "none" | "host") {
            return Err(CliError::usage(format!(
                "--network-alias: a container on network {mode} has no peers to be found by"
            )));
        }
        req.network = mode;
        req.publish = ports.iter().map(PortMapping::to_string).collect();
        req.dns = self.dns.clone();
        req.ip = self.ip.clone().unwrap_or_default();
        req.dns_search = self.dns_search.clone();
        req.dns_options = self.dns_option.clone();
        req.add_hosts = self.add_host.clone();
        req.network_aliases = self.network_alias.clone();
        Ok(())
    }

    /// A flag given that only applies to image and rootfs containers.
    pub fn given(&self) -> Option<&'static str> {
        if self.network.is_some() {
            Some("--network")
        } else if !self.publish.is_empty() || self.publish_all {
            Some("--publish")
        } else if !self.dns.is_empty() {
            Some("--dns")
        } else if self.ip.is_some() {
            Some("--ip")
        } else if !self.dns_search.is_empty() {
            Some("--dns-search")
        } else if !self.dns_option.is_empty() {
            Some("--dns-option")
        } else if !self.add_host.is_empty() {
            Some("--add-host")
        } else if !self.network_alias.is_empty() {
            Some("--network-alias")
        } else {
            None
        }
    }
}

#[derive(Debug, Args)]
pub struct NetworkCmd {
    #[command(subcommand)]
    pub command: NetworkSub,
}

#[derive(Debug, Subcommand)]
pub enum NetworkSub {
    /// Create a bridge network (CNI bridge, host-local, portmap, firewall)
    Create(CreateNet),
    /// List the networks
    #[command(visible_alias = "list")]
    Ls,
    /// Print networks and their containers as JSON
    Inspect(NetNames),
    /// Remove networks no container uses
    Rm(NetNames),
    /// (wrend's helper) CNI ADD of a container
    #[command(hide = true)]
    Attach(Helper),
    /// (wrend's helper) CNI DEL of a container
    #[command(hide = true)]
    Detach(Helper),
    /// (wrend's helper) CNI CHECK of a container
    #[command(hide = true)]
    Check(Helper),
}

#[derive(Debug, Args)]
pub struct CreateNet {
    /// The network's IPv4 subnet [default: the first free 10.89.N.0/24]
    #[arg(long, value_name = "CIDR")]
    pub subnet: Option<String>,
    pub name: String,
}

#[derive(Debug, Args)]
pub struct NetNames {
    #[arg(required = true)]
    pub names: Vec<String>,
}

#[derive(Debug, Args)]
pub struct Helper {
    /// wrend's records directory
    #[arg(long, value_name = "DIR")]
    pub records: PathBuf,
    /// wrend's state directory
    #[arg(long, value_name = "DIR")]
    pub state: PathBuf,
    pub container: String,
}

fn chain(e: &(dyn std::error::Error + 'static)) -> CliError {
    CliError::chain(e)
}

/// Runs a `wren network` command.
pub fn main(g: &Global, cmd: NetworkCmd) -> Result<i32, CliError> {
    match cmd.command {
        NetworkSub::Create(c) => {
            let _l = store::lock(&g.records).map_err(|e| chain(&e))?;
            let n =
                store::create(&g.records, &c.name, c.subnet.as_deref()).map_err(|e| chain(&e))?;
            println!("{}", n.name);
            Ok(0)
        }
        NetworkSub::Ls => {
            let all = {
                let _l = store::lock(&g.records).map_err(|e| chain(&e))?;
                store::ensure(&g.records, network::DEFAULT_NETWORK).map_err(|e| chain(&e))?;
                store::list(&g.records)
            };
            if g.json {
                println!(
                    "{}",
                    Value::from(all.iter().map(net_json).collect::<Vec<_>>())
                );
            } else {
                println!("{:<20} {:<16} {:<18}", "NAME", "BRIDGE", "SUBNET");
                for n in all {
                    println!("{:<20} {:<16} {:<18}", n.name, n.bridge, n.subnet);
                }
            }
            Ok(0)
        }
        NetworkSub::Inspect(a) => {
            let mut out = Vec::new();
            for n in &a.names {
                let net = store::load(&g.records, n).map_err(|e| chain(&e))?;
                let mut v = net_json(&net);
                v["containers"] = store::members(&g.records, n)
                    .iter()
                    .map(|m| {
                        json!({"name": m.container, "ip": m.ip, "hostname": m.hostname,
                               "ports": m.ports.iter().map(|p| p.to_string()).collect::<Vec<_>>()})
                    })
                    .collect();
                v["configured_by"] = json!(users(g, n));
                out.push(v);
            }
            println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
            Ok(0)
        }
        NetworkSub::Rm(a) => {
            let _l = store::lock(&g.records).map_err(|e| chain(&e))?;
            for n in &a.names {
                if n == network::DEFAULT_NETWORK {
                    return Err(CliError::failed(
                        "the default network bridge cannot be removed",
                    ));
                }
                store::remove(&g.records, n, users(g, n)).map_err(|e| chain(&e))?;
                println!("{n}");
            }
            Ok(0)
        }
        NetworkSub::Attach(h) => {
            let ip =
                attach::attach(&h.records, &h.state, &h.container, false).map_err(|e| chain(&e))?;
            println!("{ip}");
            Ok(0)
        }
        NetworkSub::Detach(h) => {
            attach::detach(&h.records, &h.state, &h.container).map_err(|e| chain(&e))?;
            Ok(0)
        }
        NetworkSub::Check(h) => {
            attach::check(&h.records, &h.container).map_err(|e| chain(&e))?;
            Ok(0)
        }
    }
}

fn net_json(n: &store::Network) -> Value {
    json!({"name": n.name, "bridge": n.bridge, "subnet": n.subnet, "gateway": n.gateway,
           "driver": "bridge", "created_at": n.created_at})
}

/// Containers whose request names network `name` (running or not).
pub(super) fn users(g: &Global, name: &str) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(crate::paths::containers_in(&g.records))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| network::NetRequest::load(&e.path()).is_ok_and(|r| r.network == name))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    out.sort();
    out
}
