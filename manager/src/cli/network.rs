//! `wren network create|ls|inspect|rm`, the networking flags of `run` and
//! `create` (`--network`, `-p`, `-P`, `--dns`, `--add-host`), and the
//! hidden commands `wren network attach|detach|check NAME` (CNI ADD, DEL
//! and CHECK of one container, [`crate::network::attach`]) for debugging by
//! hand; wrend itself runs `wren-net`.
//!
//! Runs in `wren`.

use std::collections::BTreeMap;
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
    /// none, host, bridge (the default network), a network's name, or container:NAME (join its network); again for more networks, each as NAME or name=NAME[,alias=A][,ip=IP]
    #[arg(long, value_name = "NETWORK")]
    #[serde(deserialize_with = "one_or_many")]
    pub network: Vec<String>,
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

/// `network` as saved by a wren that took `--network` once: a string or
/// null, besides the list it is now.
fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Saved {
        One(Option<String>),
        Many(Vec<String>),
    }
    Ok(match serde::Deserialize::deserialize(d)? {
        Saved::One(o) => o.into_iter().collect(),
        Saved::Many(v) => v,
    })
}

/// One `--network` value: `NAME`, or Docker's `name=NAME[,alias=A]...
/// [,ip=IP]` (a network's name holds no `=` or `,`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NetworkArg {
    pub name: String,
    pub aliases: Vec<String>,
    pub ip: Option<String>,
}

impl NetworkArg {
    pub fn parse(v: &str) -> Result<NetworkArg, CliError> {
        if !v.contains('=') {
            return Ok(NetworkArg {
                name: v.to_string(),
                ..NetworkArg::default()
            });
        }
        let mut a = NetworkArg::default();
        for kv in v.split(',') {
            let bad = |why: &str| CliError::usage(format!("--network {v:?}: {why}"));
            let (k, val) = kv
                .split_once('=')
                .ok_or_else(|| bad(&format!("{kv:?} is not KEY=VALUE")))?;
            match k {
                "name" if a.name.is_empty() => a.name = val.to_string(),
                "name" => return Err(bad("name is given twice")),
                "alias" => a.aliases.push(val.to_string()),
                "ip" if a.ip.is_none() => a.ip = Some(val.to_string()),
                "ip" => return Err(bad("ip is given twice")),
                other => {
                    return Err(bad(&format!(
                        "key {other:?} is not supported (name, alias, ip are)"
                    )))
                }
            }
        }
        if a.name.is_empty() {
            return Err(CliError::usage(format!(
                "--network {v:?}: name=NETWORK is missing"
            )));
        }
        Ok(a)
    }
}

impl NetworkFlags {
    /// The networks named by `--network`, in order (unparsable ones left
    /// out: [`Self::apply`] names them).
    pub fn network_names(&self) -> Vec<String> {
        self.network
            .iter()
            .filter_map(|v| NetworkArg::parse(v).ok())
            .map(|a| a.name)
            .collect()
    }

    /// Fills the request's networking fields; `exposed` are the image's
    /// exposed ports (`80/tcp`), for `-P`.
    pub fn apply(&self, req: &mut api::CreateRequest, exposed: &[String]) -> Result<(), CliError> {
        let nets = self
            .network
            .iter()
            .map(|v| NetworkArg::parse(v))
            .collect::<Result<Vec<_>, _>>()?;
        let mode = nets.first().map(|n| n.name.clone()).unwrap_or_default();
        if nets.len() > 1 {
            more_networks(req, &nets)?;
        }
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
        let first = nets.first().cloned().unwrap_or_default();
        if first.ip.is_some() && self.ip.is_some() {
            return Err(CliError::usage(format!(
                "--ip and --network {:?}: give the address once",
                self.network[0]
            )));
        }
        for (flag, given) in [
            ("--network ...,ip=", first.ip.is_some()),
            ("--network ...,alias=", !first.aliases.is_empty()),
        ] {
            if given && !network::uses_cni(&mode) {
                return Err(CliError::usage(format!(
                    "{flag}: a container on network {mode} has no address or peers of its own there"
                )));
            }
        }
        check_endpoint(&mode, first.ip.as_deref(), &first.aliases)?;
        req.network = mode;
        req.publish = ports.iter().map(PortMapping::to_string).collect();
        req.dns = self.dns.clone();
        req.ip = self.ip.clone().or(first.ip).unwrap_or_default();
        req.dns_search = self.dns_search.clone();
        req.dns_options = self.dns_option.clone();
        req.add_hosts = self.add_host.clone();
        req.network_aliases = self.network_alias.clone();
        req.network_aliases.extend(first.aliases);
        Ok(())
    }

    /// A flag given that only applies to image and rootfs containers.
    pub fn given(&self) -> Option<&'static str> {
        if !self.network.is_empty() {
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

/// The networks after the first (`--network` given again) into the
/// request: each a network's name, given once, after a first that is one
/// too.
fn more_networks(req: &mut api::CreateRequest, nets: &[NetworkArg]) -> Result<(), CliError> {
    for n in nets {
        if !network::uses_cni(&n.name) {
            return Err(CliError::usage(format!(
                "--network {}: cannot go with other networks (only networks' names can)",
                n.name
            )));
        }
        if nets.iter().filter(|o| o.name == n.name).count() > 1 {
            return Err(CliError::usage(format!(
                "--network {}: given twice",
                n.name
            )));
        }
    }
    for n in &nets[1..] {
        check_endpoint(&n.name, n.ip.as_deref(), &n.aliases)?;
        let mut e = api::NetworkEndpoint::new();
        e.network = n.name.clone();
        e.ip = n.ip.clone().unwrap_or_default();
        e.aliases = n.aliases.clone();
        req.more_networks.push(e);
    }
    Ok(())
}

/// A network's name (or mode), and the address and aliases asked there.
fn check_endpoint(name: &str, ip: Option<&str>, aliases: &[String]) -> Result<(), CliError> {
    if name.contains('=') || name.contains(',') {
        return Err(CliError::usage(format!(
            "--network {name:?}: not a network name"
        )));
    }
    if let Some(ip) = ip.filter(|ip| ip.parse::<std::net::Ipv4Addr>().is_err()) {
        return Err(CliError::usage(format!(
            "--network name={name},ip={ip}: not an IPv4 address"
        )));
    }
    if let Some(a) = aliases.iter().find(|a| !network::valid_host_name(a)) {
        return Err(CliError::usage(format!(
            "--network name={name},alias={a}: want a host name (letters, digits, '-' and '.')"
        )));
    }
    Ok(())
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
    /// Put a container on one more network (at once if it runs, else from its next start)
    Connect(Connect),
    /// Take a container off a network (not its first), at once if it runs
    Disconnect(Disconnect),
    /// Remove every network no container uses (never the default one)
    Prune(PruneNets),
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
    /// The bridge's address [default: the subnet's first] (needs --subnet)
    #[arg(long, value_name = "IPV4")]
    pub gateway: Option<String>,
    /// Give containers addresses from this part of the subnet only (a container's
    /// own --ip may lie anywhere in it; needs --subnet)
    #[arg(long, value_name = "CIDR")]
    pub ip_range: Option<String>,
    /// No way out of the subnet (no default route, no masquerade) and no published ports
    #[arg(long)]
    pub internal: bool,
    /// A driver option (repeatable): mtu=N (or com.docker.network.driver.mtu),
    /// com.docker.network.bridge.name=IFNAME, com.docker.network.bridge.enable_ip_masquerade=BOOL
    #[arg(short = 'o', long = "opt", value_name = "KEY=VALUE")]
    pub opt: Vec<String>,
    /// A label (repeatable)
    #[arg(long, value_name = "KEY=VALUE")]
    pub label: Vec<String>,
    pub name: String,
}

impl CreateNet {
    /// What it asks of the new network.
    pub fn spec(&self) -> Result<store::Spec, CliError> {
        Ok(store::Spec {
            subnet: self.subnet.clone(),
            gateway: self.gateway.clone(),
            ip_range: self.ip_range.clone(),
            internal: self.internal,
            options: key_values("-o", &self.opt)?,
            labels: key_values("--label", &self.label)?,
        })
    }
}

/// `KEY=VALUE` flags as a map (a bare `KEY` for a label is `KEY=`).
fn key_values(flag: &str, all: &[String]) -> Result<BTreeMap<String, String>, CliError> {
    let mut out = BTreeMap::new();
    for kv in all {
        let (k, v) = match kv.split_once('=') {
            Some((k, v)) => (k, v),
            None if flag == "--label" => (kv.as_str(), ""),
            None => return Err(CliError::usage(format!("{flag} {kv:?}: want KEY=VALUE"))),
        };
        if k.is_empty() {
            return Err(CliError::usage(format!("{flag} {kv:?}: want KEY=VALUE")));
        }
        out.insert(k.to_string(), v.to_string());
    }
    Ok(out)
}

/// Runs `f` in wrend's network namespace ([`enter_wrends_netns`]) and
/// comes back: `network create` checks a bridge name there, and compose
/// goes on to pull images in its own.
pub(super) fn in_wrends_netns<T>(g: &Global, f: impl FnOnce() -> T) -> Result<T, CliError> {
    let own = std::fs::File::open("/proc/thread-self/ns/net")
        .map_err(|e| CliError::failed(format!("open /proc/thread-self/ns/net: {e}")))?;
    enter_wrends_netns(g)?;
    let out = f();
    nix::sched::setns(own, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| {
        CliError::failed(format!(
            "setns back into the network namespace of wren: {e}"
        ))
    })?;
    Ok(out)
}

#[derive(Debug, Args)]
pub struct Connect {
    /// Another name its peers on this network find it by (repeatable)
    #[arg(long, value_name = "NAME")]
    pub alias: Vec<String>,
    /// Its IPv4 address on this network
    #[arg(long, value_name = "IPV4")]
    pub ip: Option<String>,
    pub network: String,
    pub container: String,
}

#[derive(Debug, Args)]
pub struct PruneNets {
    /// Only networks with this label: KEY or KEY=VALUE (repeatable: all must hold)
    #[arg(long, value_name = "label=KEY[=VALUE]")]
    pub filter: Vec<String>,
    /// Do not ask first (needed when stdin is not a terminal)
    #[arg(short, long)]
    pub force: bool,
}

/// Removes every network no container is configured with, but the default
/// one, that carries each of `labels` (KEY or KEY=VALUE); prints each.
/// Their bridges and rules go in wrend's network namespace.
pub(super) fn prune(g: &Global, labels: &[String]) -> Result<(), CliError> {
    enter_wrends_netns(g)?;
    let _l = store::lock(&g.records).map_err(|e| chain(&e))?;
    for n in store::list(&g.records) {
        let labelled = labels.iter().all(|l| match l.split_once('=') {
            Some((k, v)) => n.labels.get(k).is_some_and(|have| have == v),
            None => n.labels.contains_key(l),
        });
        if n.name == network::DEFAULT_NETWORK || !labelled || !users(g, &n.name).is_empty() {
            continue;
        }
        store::remove(&g.records, &n.name, Vec::new()).map_err(|e| chain(&e))?;
        println!("deleted network {}", n.name);
    }
    Ok(())
}

#[derive(Debug, Args)]
pub struct Disconnect {
    pub network: String,
    pub container: String,
}

/// Moves this (single-threaded) process into wrend's network namespace,
/// found by the peer credentials of its socket, so the plugins that
/// `network connect|disconnect|rm` run make and remove bridges, veths
/// and rules where wrend's own helper does: on a host both share one,
/// and a CLI started in another (`ip netns exec`, a test's) must not put
/// a bridge there. Without a wrend to ask, the CLI's own is used.
fn enter_wrends_netns(g: &Global) -> Result<(), CliError> {
    use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
    use std::os::unix::fs::MetadataExt;
    let Ok(sock) = std::os::unix::net::UnixStream::connect(&g.socket) else {
        return Ok(());
    };
    let Ok(cred) = getsockopt(&sock, PeerCredentials) else {
        return Ok(());
    };
    let theirs = format!("/proc/{}/ns/net", cred.pid());
    let same = |a: &str, b: &str| match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
        _ => true,
    };
    if same(&theirs, "/proc/self/ns/net") {
        return Ok(());
    }
    let ns = std::fs::File::open(&theirs)
        .map_err(|e| CliError::failed(format!("open {theirs}: {e}")))?;
    nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| {
        CliError::failed(format!(
            "setns into wrend's network namespace {theirs}: {e}"
        ))
    })
}

/// The container a `network connect|disconnect` names: one with a
/// network request of wren's.
fn networked_container(g: &Global, name: &str) -> Result<(), CliError> {
    let dir = crate::paths::containers_in(&g.records).join(name);
    if !network::valid_network_name(name) || !dir.is_dir() {
        return Err(CliError::failed(format!("no container {name}")));
    }
    if !dir
        .join(network::NET_DIR)
        .join(network::REQUEST_FILE)
        .exists()
    {
        return Err(CliError::failed(format!(
            "container {name} keeps its bundle's namespaces: it takes no networks"
        )));
    }
    Ok(())
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
            let spec = c.spec()?;
            let _l = store::lock(&g.records).map_err(|e| chain(&e))?;
            let n = in_wrends_netns(g, || store::create(&g.records, &c.name, &spec))?
                .map_err(|e| chain(&e))?;
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
            // The bridge goes where wrend's helper made it.
            enter_wrends_netns(g)?;
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
        NetworkSub::Connect(c) => {
            check_endpoint(&c.network, c.ip.as_deref(), &c.alias)?;
            networked_container(g, &c.container)?;
            enter_wrends_netns(g)?;
            let ip = attach::connect(
                &g.records,
                &c.container,
                &c.network,
                c.ip.as_deref().unwrap_or_default(),
                &c.alias,
            )
            .map_err(|e| chain(&e))?;
            if !ip.is_empty() {
                println!("{ip}");
            }
            Ok(0)
        }
        NetworkSub::Disconnect(d) => {
            networked_container(g, &d.container)?;
            enter_wrends_netns(g)?;
            attach::disconnect(&g.records, &d.container, &d.network).map_err(|e| chain(&e))?;
            Ok(0)
        }
        NetworkSub::Prune(p) => {
            let mut labels = Vec::new();
            for f in &p.filter {
                match f.strip_prefix("label=") {
                    Some(l) if !l.is_empty() => labels.push(l.to_string()),
                    _ => {
                        return Err(CliError::usage(format!(
                            "--filter {f:?}: only label=KEY[=VALUE] is known"
                        )))
                    }
                }
            }
            if !super::prune::confirm(
                p.force,
                "network prune removes networks",
                "Remove every network no container uses?",
            )? {
                return Ok(1);
            }
            prune(g, &labels)?;
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
           "ip_range": n.ip_range, "driver": "bridge", "internal": n.internal,
           "mtu": n.mtu(), "masquerade": n.masquerade(), "options": n.options,
           "labels": n.labels, "created_at": n.created_at})
}

/// Containers whose request names network `name` (running or not).
pub(super) fn users(g: &Global, name: &str) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(crate::paths::containers_in(&g.records))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| network::NetRequest::load(&e.path()).is_ok_and(|r| r.on_network(name)))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(nets: &[&str]) -> NetworkFlags {
        NetworkFlags {
            network: nets.iter().map(|s| s.to_string()).collect(),
            ..NetworkFlags::default()
        }
    }

    #[test]
    fn network_values_plain_and_per_network() {
        assert_eq!(NetworkArg::parse("back").unwrap().name, "back");
        let a = NetworkArg::parse("name=back,alias=api,alias=db,ip=10.1.0.9").unwrap();
        assert_eq!(
            a,
            NetworkArg {
                name: "back".into(),
                aliases: vec!["api".into(), "db".into()],
                ip: Some("10.1.0.9".into()),
            }
        );
        for (bad, want) in [
            ("alias=x", "name=NETWORK is missing"),
            ("name=a,name=b", "name is given twice"),
            ("name=a,ip6=fd00::1", "key \"ip6\""),
            ("name=a,alias", "is not KEY=VALUE"),
        ] {
            let e = NetworkArg::parse(bad).unwrap_err();
            assert!(e.message.contains(want), "{bad}: {}", e.message);
        }
    }

    #[test]
    fn the_first_network_takes_ip_and_aliases_the_others_go_to_more() {
        let mut req = api::CreateRequest::new();
        let mut f = flags(&["front", "name=back,alias=api,ip=10.1.0.9", "mid"]);
        f.network_alias = vec!["www".into()];
        f.apply(&mut req, &[]).unwrap();
        assert_eq!(req.network, "front");
        assert_eq!(req.network_aliases, ["www"]);
        let more: Vec<(&str, &str, Vec<String>)> = req
            .more_networks
            .iter()
            .map(|e| (e.network.as_str(), e.ip.as_str(), e.aliases.clone()))
            .collect();
        assert_eq!(
            more,
            [
                ("back", "10.1.0.9", vec!["api".to_string()]),
                ("mid", "", vec![])
            ]
        );
        let mut req = api::CreateRequest::new();
        flags(&["name=front,alias=a,ip=10.2.0.5"])
            .apply(&mut req, &[])
            .unwrap();
        assert_eq!(
            (req.ip.as_str(), req.network_aliases.clone()),
            ("10.2.0.5", vec!["a".to_string()])
        );
        assert!(req.more_networks.is_empty());
        for (nets, want) in [
            (&["host", "front"][..], "cannot go with other networks"),
            (&["front", "container:x"], "cannot go with other networks"),
            (&["front", "back", "front"], "given twice"),
            (&["front", "name=back,ip=300.1.1.1"], "not an IPv4 address"),
            (&["name=none,alias=x"], "has no address or peers"),
        ] {
            let e = flags(nets)
                .apply(&mut api::CreateRequest::new(), &[])
                .unwrap_err();
            assert!(e.message.contains(want), "{nets:?}: {}", e.message);
        }
    }

    #[test]
    fn recorded_flags_of_an_older_wren_still_read() {
        // `network` was one optional string before it could be repeated.
        for (json, want) in [
            (r#"{"network": "back"}"#, vec!["back"]),
            (r#"{"network": null}"#, vec![]),
            (r#"{}"#, vec![]),
            (r#"{"network": ["a", "b"]}"#, vec!["a", "b"]),
        ] {
            let f: NetworkFlags = serde_json::from_str(json).unwrap();
            assert_eq!(f.network, want, "{json}");
        }
    }
}
