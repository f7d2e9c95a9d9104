//! One container's attachment to a CNI network, made and undone by the
//! short-lived helper `wren-net attach|detach` that wrend runs beside its
//! loop while a task is created and after its init exits:
//!
//! - attach: the network (the default one made if needed), its plugins
//!   checked, published ports checked against other containers and the
//!   host, a network namespace made and bind-mounted at
//!   `<state>/netns/NAME` (the container's spec joins it by path), CNI ADD
//!   (asking for the last address again, so a restarted container keeps
//!   it where host-local allows), the config and result cached in the
//!   container's `net/cni-cache.json`, its /etc files written and its
//!   peers' /etc/hosts updated. Any failure undoes what was done.
//! - detach: CNI DEL with the cached config and result (so it works after
//!   wrend restarted, and with the network's config gone), the cache
//!   removed only then (so a failed DEL is tried again and a done one
//!   never twice), the member entry and namespace removed.
//!
//! Runs in `wren` (the helper process), holding the network store's lock.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::cni::{self, Attachment, CniError};
use super::files;
use super::store::{self, Member, StoreError};
use super::{netns_path, Endpoint, NetRequest, PortMapping, CACHE_FILE, NET_DIR};

/// The interface of the container's first network; its others are
/// eth1, eth2, ... in the order asked.
pub const IFNAME: &str = "eth0";

/// The interface name of the container's network number `i` (0: first).
pub fn ifname(i: usize) -> String {
    format!("eth{i}")
}

/// What DEL needs, kept from ADD: of the first network, and in `more` of
/// each other one (in attach order).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Cache {
    pub network: String,
    pub container_id: String,
    pub ifname: String,
    pub netns: PathBuf,
    pub conflist: Value,
    pub result: Value,
    #[serde(default)]
    pub ports: Vec<PortMapping>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub more: Vec<Cache>,
}

/// The capabilities' runtime config of an attachment: its published
/// ports, if any.
fn runtime_config(ports: &[PortMapping]) -> Map<String, Value> {
    let mut rc = Map::new();
    if !ports.is_empty() {
        rc.insert("portMappings".into(), cni::port_mappings(ports));
    }
    rc
}

impl Cache {
    /// The attachment as ADD made it (for DEL and CHECK).
    fn attachment(&self) -> Attachment<'_> {
        Attachment {
            container_id: &self.container_id,
            netns: &self.netns,
            ifname: &self.ifname,
            args: String::from("IgnoreUnknown=1"),
            runtime_config: runtime_config(&self.ports),
        }
    }

    /// The address ADD gave ("" if none).
    fn address(&self) -> String {
        cni::result_ip(&self.result).unwrap_or_default()
    }

    /// The MAC address of its interface ("" if none).
    fn mac(&self) -> String {
        cni::result_mac(&self.result, &self.ifname).unwrap_or_default()
    }

    /// Its entry in the network's members: `container` with `hostname`
    /// and `aliases`, its /etc/hosts in `net_dir`.
    fn member(&self, hostname: &str, aliases: &[String], net_dir: &Path) -> Member {
        Member {
            container: self.container_id.clone(),
            ip: self.address(),
            hostname: hostname.to_string(),
            aliases: aliases.to_vec(),
            ports: self.ports.clone(),
            hosts_file: net_dir.join("hosts"),
            ifname: self.ifname.clone(),
        }
    }

    /// DEL of this one network.
    fn del(&self) -> Result<(), CniError> {
        cni::del(&self.conflist, &self.attachment(), Some(&self.result))
    }

    /// Every network's cache, the first first.
    fn all(&self) -> impl DoubleEndedIterator<Item = &Cache> {
        std::iter::once(self).chain(self.more.iter())
    }
}

/// A failed attach or detach.
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    #[error("container {container}: read its network request")]
    Request {
        container: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Cni(#[from] CniError),
    #[error("published port {port}: {why}")]
    Port { port: String, why: String },
    #[error("--ip {ip}: {why}")]
    Address { ip: String, why: String },
    #[error("{what} {}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> AttachError + 'a {
    move |source| AttachError::Io {
        what,
        path: path.to_owned(),
        source,
    }
}

fn container_dir(records: &Path, container: &str) -> PathBuf {
    crate::paths::containers_in(records).join(container)
}

fn cache_path(records: &Path, container: &str) -> PathBuf {
    container_dir(records, container)
        .join(NET_DIR)
        .join(CACHE_FILE)
}

/// Attaches `container` as its `net/config.json` asks; its address on
/// its first network. `netns_made`: wrend made the container's network
/// namespace already (it does when nothing of an earlier attachment is
/// left, so the task can be created while the plugins run); it is used as
/// it is and left to wrend if the attach fails (the task may be joining it
/// right then). Otherwise a leftover attachment is undone and the
/// namespace made here.
///
/// Each network is one CNI ADD on its own interface (eth0, eth1, ...).
/// Only the first gets the default route (the others' IPAM routes are
/// left out) and the published ports. A failure on any network undoes
/// the ones before it.
pub fn attach(
    records: &Path,
    state: &Path,
    container: &str,
    netns_made: bool,
) -> Result<String, AttachError> {
    let cdir = container_dir(records, container);
    // The request is read under the lock: `network connect` changes it.
    let _lock = store::lock(records)?;
    let mut req = load_request(records, container)?;
    if !req.uses_cni() {
        return Ok(String::new());
    }
    if !netns_made {
        // A leftover attachment (wrend died between ADD and the task):
        // undo it.
        detach_locked(records, state, container, true)?;
    }
    // Every network and its plugins before anything is made. The default
    // route is the first network's that is not internal.
    let endpoints = req.endpoints();
    let mut nets = Vec::new();
    for ep in &endpoints {
        nets.push(store::ensure(records, &ep.network)?);
    }
    if nets[0].internal && !req.ports.is_empty() {
        return Err(AttachError::Port {
            port: req.ports[0].to_string(),
            why: format!(
                "network {} is internal: nothing on it is published",
                nets[0].name
            ),
        });
    }
    let route = nets.iter().position(|n| !n.internal);
    let nets: Vec<(store::Network, Value)> = nets
        .into_iter()
        .enumerate()
        .map(|(i, net)| {
            let fixed = !endpoints[i].ip.is_empty();
            let c = store::conflist_of(records, &net, route == Some(i), fixed);
            (net, c)
        })
        .collect();
    for (_, conflist) in &nets {
        cni::check_plugins(conflist)?;
    }
    let ports = check_ports(records, container, &req.ports, &req.last_ports)?;
    let netns = netns_path(state, container);
    if !netns_made {
        super::make_netns(&netns).map_err(io("make the network namespace", &netns))?;
    }
    let mut caches: Vec<Cache> = Vec::new();
    for (i, (ep, (net, conflist))) in endpoints.iter().zip(nets).enumerate() {
        let on = OneNetwork {
            records,
            container,
            netns: &netns,
            ifname: ifname(i),
            ports: if i == 0 { ports.clone() } else { Vec::new() },
        };
        match on.add(ep, &net, conflist) {
            Ok(c) => caches.push(c),
            Err(e) => {
                undo(&caches);
                if !netns_made {
                    super::remove_netns(&netns);
                }
                return Err(e);
            }
        }
    }
    let mut cache = caches.remove(0);
    cache.more = caches;
    let ip = cache.address();
    let hostname = req.hostname_or(container);
    let net_dir = cdir.join(NET_DIR);
    let done = write_cache(records, container, &cache)
        .and_then(|()| {
            for (c, ep) in cache.all().zip(&endpoints) {
                write_member(
                    records,
                    &c.network,
                    &c.member(&hostname, &ep.aliases, &net_dir),
                )?;
            }
            write_etc_files(&net_dir, &req, &hostname)
        })
        .and_then(|()| {
            req.last_ip = ip.clone();
            req.last_mac = cache.mac();
            req.last_ports = ports;
            for (ep, c) in req.more.iter_mut().zip(&cache.more) {
                ep.last_ip = c.address();
                ep.last_mac = c.mac();
            }
            req.save(&cdir).map_err(io("write", &cdir))
        });
    if let Err(e) = done {
        let _ = detach_locked(records, state, container, !netns_made);
        // The cache may not have been written: DEL with what we have.
        undo(&cache.all().cloned().collect::<Vec<_>>());
        if !netns_made {
            super::remove_netns(&netns);
        }
        return Err(e);
    }
    let names: Vec<&str> = cache.all().map(|c| c.network.as_str()).collect();
    rewrite_hosts(records, &names, &req.add_hosts, Some(container));
    Ok(ip)
}

/// DEL of attachments just made, the last first.
fn undo(caches: &[Cache]) {
    for c in caches.iter().rev() {
        if let Err(e) = c.del() {
            log::warn!(
                "undo the attach to {}: {}",
                c.network,
                wren_runtime::error::chain(&e)
            );
        }
    }
}

/// One network's ADD for a container.
struct OneNetwork<'a> {
    records: &'a Path,
    container: &'a str,
    netns: &'a Path,
    ifname: String,
    /// Published ports (the first network's only).
    ports: Vec<PortMapping>,
}

impl OneNetwork<'_> {
    /// ADD on `net` as `ep` asks: its `--ip`, else its last address and
    /// MAC if they are free, else any; the cache for DEL.
    fn add(
        &self,
        ep: &Endpoint,
        net: &store::Network,
        conflist: Value,
    ) -> Result<Cache, AttachError> {
        let mut att = Attachment {
            container_id: self.container,
            netns: self.netns,
            ifname: &self.ifname,
            args: String::from("IgnoreUnknown=1"),
            runtime_config: runtime_config(&self.ports),
        };
        // `ip`'s host part and the subnet's all-ones host part, when `ip`
        // is in the network's subnet.
        let in_subnet = |ip: &str| {
            let (net_ip, len) = store::parse_subnet(&net.subnet).ok()?;
            let ip: std::net::Ipv4Addr = ip.parse().ok()?;
            let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            (u32::from(ip) & mask == u32::from(net_ip)).then_some((u32::from(ip) & !mask, !mask))
        };
        let mut added = None;
        if !ep.ip.is_empty() {
            // --ip: this address or none; not the subnet's own, broadcast
            // or gateway address.
            let usable = in_subnet(&ep.ip).is_some_and(|(host, all)| host != 0 && host != all);
            if !usable || ep.ip == net.gateway {
                return Err(AttachError::Address {
                    ip: ep.ip.clone(),
                    why: format!(
                        "not a container address of network {} ({}, gateway {})",
                        net.name, net.subnet, net.gateway
                    ),
                });
            }
            att.args = format!("IgnoreUnknown=1;IP={}", ep.ip);
            if cni::valid_mac(&ep.last_mac) && ep.last_ip == ep.ip {
                att.args.push_str(&format!(";MAC={}", ep.last_mac));
            }
            match cni::add(&conflist, &att) {
                Ok(r) => added = Some(r),
                Err(e) => {
                    let taken = store::members(self.records, &net.name)
                        .into_iter()
                        .find(|m| m.ip == ep.ip && m.container != self.container);
                    return Err(match taken {
                        Some(m) => AttachError::Address {
                            ip: ep.ip.clone(),
                            why: format!(
                                "in use by container {} on network {}",
                                m.container, net.name
                            ),
                        },
                        None => e.into(),
                    });
                }
            }
        } else if !ep.last_ip.is_empty() && in_subnet(&ep.last_ip).is_some() {
            let mut again = att.clone();
            again.args = format!("IgnoreUnknown=1;IP={}", ep.last_ip);
            if cni::valid_mac(&ep.last_mac) {
                // The bridge plugin takes `MAC` from CNI_ARGS (others
                // ignore it).
                again.args.push_str(&format!(";MAC={}", ep.last_mac));
            }
            match cni::add(&conflist, &again) {
                Ok(r) => {
                    added = Some(r);
                    att = again;
                }
                Err(e) => log::debug!(
                    "{}: address {} on {} not available again: {}",
                    self.container,
                    ep.last_ip,
                    net.name,
                    wren_runtime::error::chain(&e)
                ),
            }
        }
        let result = match added {
            Some(r) => r,
            None => cni::add(&conflist, &att)?,
        };
        Ok(Cache {
            network: net.name.clone(),
            container_id: self.container.to_string(),
            ifname: self.ifname.clone(),
            netns: self.netns.to_owned(),
            conflist,
            result,
            ports: self.ports.clone(),
            more: Vec::new(),
        })
    }
}

fn load_request(records: &Path, container: &str) -> Result<NetRequest, AttachError> {
    NetRequest::load(&container_dir(records, container)).map_err(|source| AttachError::Request {
        container: container.to_string(),
        source,
    })
}

fn read_cache(records: &Path, container: &str) -> Option<Cache> {
    std::fs::read(cache_path(records, container))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
}

/// `wren network connect`: adds `network` to the networks of `container`
/// (after the ones it has), and if it is attached now, attaches it there
/// too, on the first free ethN, without a restart; its address there ("":
/// added for its next start). Its peers there find it by name at once.
pub fn connect(
    records: &Path,
    container: &str,
    network: &str,
    ip: &str,
    aliases: &[String],
) -> Result<String, AttachError> {
    let _lock = store::lock(records)?;
    let cdir = container_dir(records, container);
    let mut req = load_request(records, container)?;
    let refuse = |why: String| Err(AttachError::Store(StoreError::Invalid(why)));
    if !req.uses_cni() {
        return refuse(format!(
            "container {container} is on network {:?}: only a container on a network of \
             wren's can be on more",
            req.network
        ));
    }
    if req.on_network(network) {
        return refuse(format!(
            "container {container} is on network {network} already"
        ));
    }
    let net = store::load(records, network)?;
    // The default route is the first network's that is not internal: this
    // one's, if all the others are.
    let routed = req
        .endpoints()
        .iter()
        .any(|e| store::load(records, &e.network).is_ok_and(|n| !n.internal));
    let conflist = store::conflist_of(records, &net, !routed, !ip.is_empty());
    cni::check_plugins(&conflist)?;
    let mut ep = Endpoint {
        network: network.to_string(),
        ip: ip.to_string(),
        aliases: aliases.to_vec(),
        ..Endpoint::default()
    };
    let mut got = String::new();
    if let Some(mut cache) = read_cache(records, container) {
        let taken: Vec<&str> = cache.all().map(|c| c.ifname.as_str()).collect();
        let free = (1..)
            .map(ifname)
            .find(|n| !taken.contains(&n.as_str()))
            .unwrap_or_default();
        let on = OneNetwork {
            records,
            container,
            netns: &cache.netns.clone(),
            ifname: free,
            ports: Vec::new(),
        };
        let c = on.add(&ep, &net, conflist)?;
        got = c.address();
        ep.last_ip = got.clone();
        ep.last_mac = c.mac();
        let member = c.member(&req.hostname_or(container), aliases, &cdir.join(NET_DIR));
        cache.more.push(c);
        let written = write_cache(records, container, &cache)
            .and_then(|()| write_member(records, network, &member));
        if let Err(e) = written {
            let c = cache.more.pop();
            let _ = write_cache(records, container, &cache);
            let _ = std::fs::remove_file(store::member_path(records, network, container));
            undo(&c.into_iter().collect::<Vec<_>>());
            return Err(e);
        }
    }
    req.more.push(ep);
    req.save(&cdir).map_err(io("write", &cdir))?;
    rewrite_hosts(records, &[network], &req.add_hosts, Some(container));
    Ok(got)
}

/// `wren network disconnect`: takes `network` (not its first) from the
/// networks of `container`, detaching it there now if it is attached.
pub fn disconnect(records: &Path, container: &str, network: &str) -> Result<(), AttachError> {
    let _lock = store::lock(records)?;
    let cdir = container_dir(records, container);
    let mut req = load_request(records, container)?;
    let refuse = |why: String| Err(AttachError::Store(StoreError::Invalid(why)));
    if req.network == network {
        return refuse(format!(
            "network {network} is the first network of container {container} (its default \
             route and published ports): only the others can be disconnected"
        ));
    }
    let Some(at) = req.more.iter().position(|e| e.network == network) else {
        return refuse(format!("container {container} is not on network {network}"));
    };
    if let Some(mut cache) = read_cache(records, container) {
        if let Some(i) = cache.more.iter().position(|c| c.network == network) {
            cache.more[i].del()?;
            cache.more.remove(i);
            write_cache(records, container, &cache)?;
            let _ = std::fs::remove_file(store::member_path(records, network, container));
        }
    }
    req.more.remove(at);
    req.save(&cdir).map_err(io("write", &cdir))?;
    // Its peers there forget it; its own file loses them.
    let mut names: Vec<&str> = vec![network, &req.network];
    names.extend(req.more.iter().map(|e| e.network.as_str()));
    rewrite_hosts(records, &names, &[], None);
    Ok(())
}

/// Detaches `container` if it is attached (nothing to do otherwise).
pub fn detach(records: &Path, state: &Path, container: &str) -> Result<(), AttachError> {
    let _lock = store::lock(records)?;
    detach_locked(records, state, container, true)
}

/// DEL of the cached attachment (every network, the last attached
/// first); the namespace removed too with `remove_ns`. A DEL that fails
/// keeps the cache, so a later detach runs them all again (DEL of what is
/// gone already succeeds, as CNI requires).
fn detach_locked(
    records: &Path,
    state: &Path,
    container: &str,
    remove_ns: bool,
) -> Result<(), AttachError> {
    let path = cache_path(records, container);
    let cache: Option<Cache> = std::fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    if let Some(c) = &cache {
        let mut first = None;
        for one in c.all().rev() {
            if let Err(e) = one.del() {
                first.get_or_insert(e);
            }
        }
        if let Some(e) = first {
            return Err(e.into());
        }
        std::fs::remove_file(&path).map_err(io("remove", &path))?;
        for one in c.all() {
            let _ = std::fs::remove_file(store::member_path(records, &one.network, container));
        }
        let names: Vec<&str> = c.all().map(|c| c.network.as_str()).collect();
        rewrite_hosts(records, &names, &[], None);
    }
    if remove_ns {
        super::remove_netns(&netns_path(state, container));
    }
    Ok(())
}

/// CHECK of an attached container on each of its networks (`wren network
/// check`).
pub fn check(records: &Path, container: &str) -> Result<(), AttachError> {
    let path = cache_path(records, container);
    let b = std::fs::read(&path).map_err(io("read", &path))?;
    let c: Cache =
        serde_json::from_slice(&b).map_err(|e| io("parse", &path)(std::io::Error::other(e)))?;
    for one in c.all() {
        cni::check(&one.conflist, &one.attachment(), &one.result)?;
    }
    Ok(())
}

fn write_cache(records: &Path, container: &str, c: &Cache) -> Result<(), AttachError> {
    let path = cache_path(records, container);
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(c).unwrap_or_default())
        .and_then(|()| std::fs::rename(&tmp, &path))
        .map_err(io("write", &path))
}

fn write_member(records: &Path, network: &str, m: &Member) -> Result<(), AttachError> {
    let path = store::member_path(records, network, &m.container);
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).map_err(io("create", d))?;
    }
    std::fs::write(&path, serde_json::to_vec_pretty(m).unwrap_or_default())
        .map_err(io("write", &path))
}

/// resolv.conf and hostname in `dir` (the container's `net/`); /etc/hosts
/// is left to [`rewrite_hosts`], which knows the peers.
fn write_etc_files(dir: &Path, req: &NetRequest, hostname: &str) -> Result<(), AttachError> {
    std::fs::create_dir_all(dir).map_err(io("create", dir))?;
    let resolv = files::resolv_conf(&files::host_resolv_conf(), &req.dns_flags(), false);
    files::write_in_place(&dir.join("resolv.conf"), &resolv)
        .and_then(|()| files::write_in_place(&dir.join("hostname"), &format!("{hostname}\n")))
        .map_err(io("write", dir))
}

/// The names of a member on its /etc/hosts line: hostname first on its
/// own line (what `hostname -f` finds), container name first on its peers'.
fn names_of(m: &Member, own: bool) -> String {
    let mut names: Vec<&str> = match own {
        true => vec![&m.hostname, &m.container],
        false => vec![&m.container, &m.hostname],
    };
    names.extend(m.aliases.iter().map(String::as_str));
    let mut seen = Vec::new();
    names.retain(|n| {
        let new = !seen.contains(n);
        seen.push(*n);
        new
    });
    names.join(" ")
}

/// Rewrites /etc/hosts of every member of `networks`: its own names with
/// its address on each of its networks (the first network's first), then
/// the members of each of those networks (a peer on two shared networks is
/// listed twice, its first shared network's address first). `own_extra`
/// are the `--add-host`s of `own` (the others keep theirs from their
/// request files).
fn rewrite_hosts(records: &Path, networks: &[&str], own_extra: &[String], own: Option<&str>) {
    // Every network's members: a container's peers are on any of its
    // networks, not only the one that changed.
    let all: Vec<(store::Network, Vec<Member>)> = store::list(records)
        .into_iter()
        .map(|n| {
            let m = store::members(records, &n.name);
            (n, m)
        })
        .collect();
    let mut done: Vec<&str> = Vec::new();
    for (_, members) in all
        .iter()
        .filter(|(n, _)| networks.contains(&n.name.as_str()))
    {
        for m in members {
            if done.contains(&m.container.as_str()) {
                continue;
            }
            done.push(&m.container);
            hosts_of(records, &all, &m.container, own_extra, own);
        }
    }
}

/// Writes /etc/hosts of `container`, a member of some of `all`.
fn hosts_of(
    records: &Path,
    all: &[(store::Network, Vec<Member>)],
    container: &str,
    own_extra: &[String],
    own: Option<&str>,
) {
    // Its memberships, its first network's first.
    let mut mine: Vec<(&store::Network, &Member, &[Member])> = all
        .iter()
        .filter_map(|(n, ms)| {
            ms.iter()
                .find(|m| m.container == container)
                .map(|m| (n, m, ms.as_slice()))
        })
        .collect();
    mine.sort_by_key(|(_, m, _)| m.ifname.trim_start_matches("eth").parse::<u32>().ok());
    let Some((first_net, first, _)) = mine.first() else {
        return;
    };
    let extra = if Some(container) == own {
        own_extra.to_vec()
    } else {
        NetRequest::load(&container_dir(records, container))
            .map(|r| r.add_hosts)
            .unwrap_or_default()
    };
    let extra = files::with_host_gateway(&extra, Some(first_net.gateway.as_str()));
    let own_lines: Vec<(String, String)> = mine
        .iter()
        .map(|(_, m, _)| (names_of(m, true), m.ip.clone()))
        .collect();
    // Peers by container name, hostname and aliases (a compose service's
    // name is one).
    let peers: Vec<(String, String)> = mine
        .iter()
        .flat_map(|(_, _, ms)| ms.iter())
        .filter(|p| p.container != container)
        .map(|p| (names_of(p, false), p.ip.clone()))
        .collect();
    let text = files::hosts(&extra, &own_lines, &peers);
    if let Err(e) = files::write_in_place(&first.hosts_file, &text) {
        log::warn!("update {}: {e}", first.hosts_file.display());
    }
}

/// The host ports to publish for `asked`: each refused if another
/// container publishes it or a host process holds it (checked by binding
/// it here, in wrend's namespace). A host port of 0 becomes a free one and
/// a host range the first of its ports that is free; either way `last`'s
/// pick for that entry (the previous attachment's) is tried first, so a
/// restarted container keeps its port while it can, and takes another
/// (as Docker) once something else holds it.
fn check_ports(
    records: &Path,
    container: &str,
    asked: &[PortMapping],
    last: &[PortMapping],
) -> Result<Vec<PortMapping>, AttachError> {
    let others = store::all_members(records);
    let mut taken: Vec<PortMapping> = Vec::new();
    for (i, p) in asked.iter().enumerate() {
        let one = |port| PortMapping {
            host_port: port,
            host_port_last: 0,
            ..p.clone()
        };
        let picked = p.host_port == 0 || p.host_port_last > p.host_port;
        let before = last
            .get(i)
            .filter(|l| {
                picked
                    && l.host_port != 0
                    && (p.host_port == 0 || p.host_ports().contains(&l.host_port))
                    && **l == one(l.host_port)
            })
            .map(|l| l.host_port);
        if let Some(port) = before {
            if port_free(&one(port), container, &others, &taken).is_ok() {
                taken.push(one(port));
                continue;
            }
        }
        let first = if p.host_port == 0 {
            free_port(p)?
        } else {
            p.host_port
        };
        let mut why = String::new();
        let range = first..=p.host_port_last.max(first);
        let pick = range.into_iter().find(|&port| {
            match port_free(&one(port), container, &others, &taken) {
                Ok(()) => true,
                Err(e) => {
                    why = e;
                    false
                }
            }
        });
        let Some(port) = pick else {
            let why = if p.host_port_last > p.host_port {
                format!("no port of the range is free (the last: {why})")
            } else {
                why
            };
            return Err(AttachError::Port {
                port: p.to_string(),
                why,
            });
        };
        taken.push(one(port));
    }
    Ok(taken)
}

/// Whether `p` (one host port) is free: published by no other container
/// (`others`) nor earlier in this request (`taken`), and bindable here.
fn port_free(
    p: &PortMapping,
    container: &str,
    others: &[store::Member],
    taken: &[PortMapping],
) -> Result<(), String> {
    let clash = |q: &PortMapping| {
        q.protocol == p.protocol
            && q.host_port == p.host_port
            && (q.host_ip.is_empty() || p.host_ip.is_empty() || q.host_ip == p.host_ip)
    };
    if let Some(m) = others
        .iter()
        .find(|m| m.container != container && m.ports.iter().any(clash))
    {
        return Err(format!("already published by container {}", m.container));
    }
    if taken.iter().any(clash) {
        return Err(format!(
            "host port {}/{} is given twice",
            p.host_port, p.protocol
        ));
    }
    let ip = if p.host_ip.is_empty() {
        "0.0.0.0"
    } else {
        p.host_ip.as_str()
    };
    let addr = format!("{ip}:{}", p.host_port);
    let bound = if p.protocol == "udp" {
        std::net::UdpSocket::bind(&addr).map(drop)
    } else {
        std::net::TcpListener::bind(&addr).map(drop)
    };
    bound.map_err(|e| format!("{addr} is in use on the host ({e})"))
}

/// A port the kernel gives for an ephemeral bind (in wrend's namespace).
fn free_port(p: &PortMapping) -> Result<u16, AttachError> {
    let ip = if p.host_ip.is_empty() {
        "0.0.0.0"
    } else {
        p.host_ip.as_str()
    };
    let addr = format!("{ip}:0");
    let port = if p.protocol == "udp" {
        std::net::UdpSocket::bind(&addr).and_then(|s| s.local_addr())
    } else {
        std::net::TcpListener::bind(&addr).and_then(|s| s.local_addr())
    };
    port.map(|a| a.port()).map_err(|e| AttachError::Port {
        port: p.to_string(),
        why: format!("no free port on {ip}: {e}"),
    })
}
