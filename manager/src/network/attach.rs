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

use std::fs::File;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::cni::{self, Attachment, CniError};
use super::files;
use super::store::{self, Member, StoreError};
use super::{netns_path, NetRequest, PortMapping, CACHE_FILE, NET_DIR};

/// The interface name inside the container.
pub const IFNAME: &str = "eth0";

/// What DEL needs, kept from ADD.
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

/// Attaches `container` as its `net/config.json` asks; its address.
/// `netns_made`: wrend made the container's network namespace already
/// (it does when nothing of an earlier attachment is left, so the task can
/// be created while the plugins run); it is used as it is and left to
/// wrend if the attach fails (the task may be joining it right then).
/// Otherwise a leftover attachment is undone and the namespace made here.
pub fn attach(
    records: &Path,
    state: &Path,
    container: &str,
    netns_made: bool,
) -> Result<String, AttachError> {
    let cdir = container_dir(records, container);
    let mut req = NetRequest::load(&cdir).map_err(|source| AttachError::Request {
        container: container.to_string(),
        source,
    })?;
    if !req.uses_cni() {
        return Ok(String::new());
    }
    let _lock = store::lock(records)?;
    if !netns_made {
        // A leftover attachment (wrend died between ADD and the task):
        // undo it.
        detach_locked(records, state, container, true)?;
    }
    let net = store::ensure(records, &req.network)?;
    let conflist = store::conflist(records, &net);
    cni::check_plugins(&conflist)?;
    let ports = check_ports(records, container, &req.ports, &req.last_ports)?;
    let netns = netns_path(state, container);
    if !netns_made {
        make_netns(&netns)?;
    }
    let mut rc = Map::new();
    if !ports.is_empty() {
        rc.insert("portMappings".into(), cni::port_mappings(&ports));
    }
    let mut att = Attachment {
        container_id: container,
        netns: &netns,
        ifname: IFNAME,
        args: String::from("IgnoreUnknown=1"),
        runtime_config: rc,
    };
    // `ip`'s host part and the subnet's all-ones host part, when `ip` is
    // in the network's subnet.
    let in_subnet = |ip: &str| {
        let (net_ip, len) = store::parse_subnet(&net.subnet).ok()?;
        let ip: std::net::Ipv4Addr = ip.parse().ok()?;
        let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
        (u32::from(ip) & mask == u32::from(net_ip)).then_some((u32::from(ip) & !mask, !mask))
    };
    let mut added = None;
    if !req.ip.is_empty() {
        // --ip: this address or none; not the subnet's own, broadcast or
        // gateway address.
        let usable = in_subnet(&req.ip).is_some_and(|(host, all)| host != 0 && host != all);
        if !usable || req.ip == net.gateway {
            if !netns_made {
                remove_netns(&netns);
            }
            return Err(AttachError::Address {
                ip: req.ip.clone(),
                why: format!(
                    "not a container address of network {} ({}, gateway {})",
                    net.name, net.subnet, net.gateway
                ),
            });
        }
        att.args = format!("IgnoreUnknown=1;IP={}", req.ip);
        if cni::valid_mac(&req.last_mac) && req.last_ip == req.ip {
            att.args.push_str(&format!(";MAC={}", req.last_mac));
        }
        match cni::add(&conflist, &att) {
            Ok(r) => added = Some(r),
            Err(e) => {
                if !netns_made {
                    remove_netns(&netns);
                }
                let taken = store::members(records, &net.name)
                    .into_iter()
                    .find(|m| m.ip == req.ip && m.container != container);
                return Err(match taken {
                    Some(m) => AttachError::Address {
                        ip: req.ip.clone(),
                        why: format!(
                            "in use by container {} on network {}",
                            m.container, net.name
                        ),
                    },
                    None => e.into(),
                });
            }
        }
    } else if !req.last_ip.is_empty() && in_subnet(&req.last_ip).is_some() {
        let mut again = att.clone();
        again.args = format!("IgnoreUnknown=1;IP={}", req.last_ip);
        if cni::valid_mac(&req.last_mac) {
            // The bridge plugin takes `MAC` from CNI_ARGS (others ignore it).
            again.args.push_str(&format!(";MAC={}", req.last_mac));
        }
        match cni::add(&conflist, &again) {
            Ok(r) => {
                added = Some(r);
                att = again;
            }
            Err(e) => log::debug!(
                "{container}: address {} not available again: {}",
                req.last_ip,
                wren_runtime::error::chain(&e)
            ),
        }
    }
    let result = match added {
        Some(r) => r,
        None => match cni::add(&conflist, &att) {
            Ok(r) => r,
            Err(e) => {
                if !netns_made {
                    remove_netns(&netns);
                }
                return Err(e.into());
            }
        },
    };
    let ip = cni::result_ip(&result).unwrap_or_default();
    let cache = Cache {
        network: net.name.clone(),
        container_id: container.to_string(),
        ifname: IFNAME.to_string(),
        netns: netns.clone(),
        conflist,
        result,
        ports: ports.clone(),
    };
    let hostname = if req.hostname.is_empty() {
        container.to_string()
    } else {
        req.hostname.clone()
    };
    let member = Member {
        container: container.to_string(),
        ip: ip.clone(),
        hostname,
        aliases: req.aliases.clone(),
        ports: ports.clone(),
        hosts_file: cdir.join(NET_DIR).join("hosts"),
    };
    let done = write_cache(records, container, &cache)
        .and_then(|()| write_member(records, &net.name, &member, &req))
        .and_then(|()| {
            req.last_ip = ip.clone();
            req.last_mac = cni::result_mac(&cache.result, IFNAME).unwrap_or_default();
            req.last_ports = ports;
            req.save(&cdir).map_err(io("write", &cdir))
        });
    if let Err(e) = done {
        let _ = detach_locked(records, state, container, !netns_made);
        // The cache may not have been written: DEL with what we have.
        let _ = cni::del(&cache.conflist, &att, Some(&cache.result));
        if !netns_made {
            remove_netns(&netns);
        }
        return Err(e);
    }
    rewrite_hosts(records, &net.name, &req.add_hosts, Some(container));
    Ok(ip)
}

/// Detaches `container` if it is attached (nothing to do otherwise).
pub fn detach(records: &Path, state: &Path, container: &str) -> Result<(), AttachError> {
    let _lock = store::lock(records)?;
    detach_locked(records, state, container, true)
}

/// DEL of the cached attachment; the namespace removed too with
/// `remove_ns`.
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
        let mut rc = Map::new();
        if !c.ports.is_empty() {
            rc.insert("portMappings".into(), cni::port_mappings(&c.ports));
        }
        let att = Attachment {
            container_id: &c.container_id,
            netns: &c.netns,
            ifname: &c.ifname,
            args: String::from("IgnoreUnknown=1"),
            runtime_config: rc,
        };
        cni::del(&c.conflist, &att, Some(&c.result))?;
        std::fs::remove_file(&path).map_err(io("remove", &path))?;
        let _ = std::fs::remove_file(store::member_path(records, &c.network, container));
        rewrite_hosts(records, &c.network, &[], None);
    }
    if remove_ns {
        remove_netns(&netns_path(state, container));
    }
    Ok(())
}

/// CHECK of an attached container (`wren network check`).
pub fn check(records: &Path, container: &str) -> Result<(), AttachError> {
    let path = cache_path(records, container);
    let b = std::fs::read(&path).map_err(io("read", &path))?;
    let c: Cache =
        serde_json::from_slice(&b).map_err(|e| io("parse", &path)(std::io::Error::other(e)))?;
    let mut rc = Map::new();
    if !c.ports.is_empty() {
        rc.insert("portMappings".into(), cni::port_mappings(&c.ports));
    }
    let att = Attachment {
        container_id: &c.container_id,
        netns: &c.netns,
        ifname: &c.ifname,
        args: String::from("IgnoreUnknown=1"),
        runtime_config: rc,
    };
    Ok(cni::check(&c.conflist, &att, &c.result)?)
}

fn write_cache(records: &Path, container: &str, c: &Cache) -> Result<(), AttachError> {
    let path = cache_path(records, container);
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(c).unwrap_or_default())
        .and_then(|()| std::fs::rename(&tmp, &path))
        .map_err(io("write", &path))
}

fn write_member(
    records: &Path,
    network: &str,
    m: &Member,
    req: &NetRequest,
) -> Result<(), AttachError> {
    let path = store::member_path(records, network, &m.container);
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).map_err(io("create", d))?;
    }
    std::fs::write(&path, serde_json::to_vec_pretty(m).unwrap_or_default())
        .map_err(io("write", &path))?;
    let dir = m.hosts_file.parent().unwrap_or(Path::new("/"));
    files::write_all(
        dir,
        "",
        &files::resolv_conf(&files::host_resolv_conf(), &req.dns_flags(), false),
        &m.hostname,
    )
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

/// Rewrites /etc/hosts of every member of `network`: its own name and
/// address, then every other member's. `own_extra` are the `--add-host`s
/// of `own` (the others keep theirs from their request files).
fn rewrite_hosts(records: &Path, network: &str, own_extra: &[String], own: Option<&str>) {
    let members = store::members(records, network);
    let gateway = store::load(records, network).ok().map(|n| n.gateway);
    for m in &members {
        let extra = if Some(m.container.as_str()) == own {
            own_extra.to_vec()
        } else {
            NetRequest::load(&container_dir(records, &m.container))
                .map(|r| r.add_hosts)
                .unwrap_or_default()
        };
        let extra = files::with_host_gateway(&extra, gateway.as_deref());
        let names = names_of(m, true);
        // Peers by container name, hostname and aliases (a compose
        // service's name is one).
        let peers: Vec<(String, String)> = members
            .iter()
            .filter(|p| p.container != m.container)
            .map(|p| (names_of(p, false), p.ip.clone()))
            .collect();
        let text = files::hosts(&extra, Some((&m.ip, &names)), &peers);
        if let Err(e) = files::write_in_place(&m.hosts_file, &text) {
            log::warn!("update {}: {e}", m.hosts_file.display());
        }
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

/// A new network namespace, bind-mounted at `path`; this process stays in
/// its own.
fn make_netns(path: &Path) -> Result<(), AttachError> {
    use nix::mount::{mount, MsFlags};
    use nix::sched::{setns, unshare, CloneFlags};
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).map_err(io("create", d))?;
    }
    File::create(path).map_err(io("create", path))?;
    let ours = File::open("/proc/thread-self/ns/net")
        .map_err(io("open", Path::new("/proc/thread-self/ns/net")))?;
    let errno = |what| move |e: nix::Error| io(what, path)(e.into());
    unshare(CloneFlags::CLONE_NEWNET).map_err(errno("unshare(CLONE_NEWNET) for"))?;
    let bound = mount(
        Some("/proc/thread-self/ns/net"),
        path,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(errno("bind-mount the network namespace on"));
    // Back to wrend's namespace before anything else (plugins run there).
    setns(ours.as_fd(), CloneFlags::CLONE_NEWNET).map_err(errno("setns back from"))?;
    if let Err(e) = bound {
        let _ = std::fs::remove_file(path);
        return Err(e);
    }
    Ok(())
}

fn remove_netns(path: &Path) {
    while nix::mount::umount2(path, nix::mount::MntFlags::MNT_DETACH).is_ok() {}
    if let Err(e) = std::fs::remove_file(path) {
        if e.kind() != std::io::ErrorKind::NotFound {
            log::warn!("remove {}: {e}", path.display());
        }
    }
}
