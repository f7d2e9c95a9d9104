//! wrend's side of container networking, kept small on purpose: the spec
//! edits a network mode needs (host: no network namespace; a CNI network:
//! join `<state>/netns/NAME` by path; every mode: /etc/hosts,
//! /etc/resolv.conf and /etc/hostname bind-mounted from the container's
//! `net/` directory), the request saved for the helper, and running that
//! helper — `wren-net attach|detach NAME`, a separate short-lived process
//! that does the CNI work ([`crate::network::helper`]) — before a task is
//! created and after its init exits. wrend links no CNI code and holds
//! nothing between those calls; whether a container is attached is the
//! presence of its CNI cache file, so detach happens exactly once.
//!
//! The loop never waits for a plugin: a helper is spawned with its stdout
//! on a pipe the loop watches ([`Helper`]), and what follows (start the
//! task, answer `Create`, `Start` or `rm`, remove a deleted container's
//! files) runs when the pipe reaches EOF ([`Registry::helper_readable`]).
//! For a clean attach wrend makes the network namespace itself first (on
//! a short-lived thread, `lo` up), so the shim and its task are created
//! while the plugins run. A request about a container whose helper still
//! runs waits for it ([`Registry::settle`]): rare, and bounded by one
//! ADD or DEL.
//!
//! Runs in wrend's loop thread (the namespace is made on a short-lived
//! thread that `unshare`s only itself).

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use serde_json::{json, Value};
use wren_protocol::manager as api;
use wren_ttrpc::server::Responder;

use super::config::Config;
use super::error::ManagerError;
use super::registry::{Registry, WatchKind};
use crate::network::{
    files, helper, make_netns, netns_path, remove_netns, NetRequest, PortMapping, CACHE_FILE,
    NET_DIR,
};
use wren_runtime::timing;

/// The helper binary, `wren-net`: beside wrend, or on PATH.
fn helper_binary() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("wren-net")))
        .filter(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("wren-net"))
}

/// Checks the request's networking fields and edits `spec` for them; the
/// request to save in the container's record directory (None for a bundle
/// container, whose config.json keeps its own namespaces).
pub fn prepare(
    cfg: &Config,
    req: &api::CreateRequest,
    spec: &mut Value,
) -> Result<Option<NetRequest>, ManagerError> {
    if !req.bundle.is_empty() {
        return Ok(None);
    }
    let name = &req.name;
    let network = if req.network.is_empty() {
        cfg.default_network.clone()
    } else {
        req.network.clone()
    };
    if let Some(other) = crate::network::joined(&network) {
        return prepare_joined(cfg, req, spec, other).map(Some);
    }
    let mut ports = Vec::new();
    for p in &req.publish {
        ports.extend(PortMapping::parse(p).map_err(ManagerError::InvalidArgument)?);
    }
    let cni = !matches!(network.as_str(), "none" | "host");
    if cni && !crate::network::valid_network_name(&network) {
        return Err(ManagerError::InvalidArgument(format!(
            "network {network:?}: not a network name"
        )));
    }
    if !cni && !ports.is_empty() {
        return Err(ManagerError::InvalidArgument(format!(
            "ports cannot be published with network {network}"
        )));
    }
    let more = if req.more_networks.is_empty() {
        Vec::new()
    } else {
        checked_more_networks(req, &network)?
    };
    let nss = spec["linux"]["namespaces"].as_array_mut();
    if let Some(nss) = nss {
        if network == "host" {
            nss.retain(|n| n["type"] != "network");
        } else if cni {
            let path = netns_path(&cfg.state_dir, name);
            match nss.iter_mut().find(|n| n["type"] == "network") {
                Some(n) => n["path"] = json!(path),
                None => nss.push(json!({"type": "network", "path": path})),
            }
        }
    }
    bind_etc_files(spec, &cfg.record_dir(name).join(NET_DIR));
    Ok(Some(NetRequest {
        network,
        ports,
        dns: req.dns.clone(),
        ip: req.ip.clone(),
        dns_search: req.dns_search.clone(),
        dns_options: req.dns_options.clone(),
        add_hosts: req.add_hosts.clone(),
        aliases: req.network_aliases.clone(),
        hostname: match spec["hostname"].as_str() {
            Some(h) => h.to_string(),
            // --uts host: /etc/hostname says the host's name.
            None if !own_uts(spec) => std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_string())
                .unwrap_or_else(|_| name.to_string()),
            None => name.to_string(),
        },
        last_ip: String::new(),
        last_mac: String::new(),
        last_ports: Vec::new(),
        more,
    }))
}

/// The request's networks after the first, checked: each a network's
/// name, given once, with a usable `--ip` and aliases. Cold: most
/// containers have one network.
#[cold]
#[inline(never)]
fn checked_more_networks(
    req: &api::CreateRequest,
    first: &str,
) -> Result<Vec<crate::network::Endpoint>, ManagerError> {
    let bad = |m: String| Err(ManagerError::InvalidArgument(m));
    if !crate::network::uses_cni(first) {
        return bad(format!(
            "network {first} cannot go with other networks (more_networks: {})",
            req.more_networks[0].network
        ));
    }
    let mut seen = vec![first];
    let mut out = Vec::new();
    for e in &req.more_networks {
        let n = e.network.as_str();
        if !crate::network::uses_cni(n) || !crate::network::valid_network_name(n) {
            return bad(format!(
                "more_networks: {n:?} is not a network's name (none, host and container:NAME \
                 cannot be one of several networks)"
            ));
        }
        if seen.contains(&n) {
            return bad(format!("more_networks: network {n} is given twice"));
        }
        seen.push(n);
        if !e.ip.is_empty() && e.ip.parse::<std::net::Ipv4Addr>().is_err() {
            return bad(format!(
                "more_networks: {n}: ip {:?} is not an IPv4 address",
                e.ip
            ));
        }
        if let Some(a) = e
            .aliases
            .iter()
            .find(|a| !crate::network::valid_host_name(a))
        {
            return bad(format!(
                "more_networks: {n}: alias {a:?} is not a host name"
            ));
        }
        out.push(crate::network::Endpoint {
            network: n.to_string(),
            ip: e.ip.clone(),
            aliases: e.aliases.clone(),
            ..Default::default()
        });
    }
    Ok(out)
}

/// `--network container:OTHER`: the spec keeps its network namespace
/// entry (pointed at OTHER's at each task creation, [`joined_paths`]),
/// takes the hostname and binds the /etc files of the container that owns
/// the namespace (OTHER, or whom OTHER itself joins), so they follow its
/// address; what only the owner can set is refused by name, as Docker
/// does. Cold, out of line: wrend's resident text is the common path's.
#[cold]
#[inline(never)]
fn prepare_joined(
    cfg: &Config,
    req: &api::CreateRequest,
    spec: &mut Value,
    other: &str,
) -> Result<NetRequest, ManagerError> {
    let mode = &req.network;
    let conflicts = [
        ("-p/--publish", !req.publish.is_empty()),
        ("--dns", !req.dns.is_empty()),
        ("--dns-search", !req.dns_search.is_empty()),
        ("--dns-option", !req.dns_options.is_empty()),
        ("--add-host", !req.add_hosts.is_empty()),
        ("--ip", !req.ip.is_empty()),
        ("--network-alias", !req.network_aliases.is_empty()),
        ("--hostname", !req.hostname.is_empty()),
        ("a second --network", !req.more_networks.is_empty()),
    ];
    if let Some((flag, _)) = conflicts.iter().find(|(_, given)| *given) {
        return Err(ManagerError::InvalidArgument(format!(
            "{flag} cannot go with --network {mode}: the network, its names and ports are \
             {other}'s (set them there)"
        )));
    }
    // The owner: the container whose namespace it is (a short chain of
    // joins ends at one; a longer one is a loop).
    let mut owner = other.to_string();
    let mut owner_req = None;
    for _ in 0..8 {
        let r = NetRequest::load(&cfg.record_dir(&owner)).map_err(|_| {
            ManagerError::InvalidArgument(format!(
                "--network {mode}: no container {owner} with a network of wren's \
                 (a bundle container's is its config.json's)"
            ))
        })?;
        match crate::network::joined(&r.network) {
            Some(next) => owner = next.to_string(),
            None => {
                owner_req = Some(r);
                break;
            }
        }
    }
    let Some(owner_req) = owner_req else {
        return Err(ManagerError::InvalidArgument(format!(
            "--network {mode}: the containers it joins form a loop"
        )));
    };
    if own_uts(spec) {
        spec["hostname"] = json!(owner_req.hostname);
    }
    bind_etc_files(spec, &cfg.record_dir(&owner).join(NET_DIR));
    Ok(NetRequest {
        network: mode.clone(),
        hostname: owner_req.hostname,
        ..NetRequest::default()
    })
}

/// The `/proc/PID/ns/...` paths a container that joins others'
/// namespaces gets at this task creation: `joins` as (namespace type,
/// container, that container's init pid and shim pid). The init must
/// still be the shim's child (a pid reused since would not be).
pub fn joined_paths(
    name: &str,
    joins: &[(&'static str, String, u32, u32)],
) -> Result<Vec<(&'static str, PathBuf)>, ManagerError> {
    let mut out = Vec::new();
    for (ns, other, pid, shim_pid) in joins {
        let not_running = || {
            ManagerError::FailedPrecondition(format!(
                "container {name} joins the {ns} namespace of {other}, which is not running: \
                 start {other} first"
            ))
        };
        if *pid == 0 || parent_of(*pid) != Some(*shim_pid) {
            return Err(not_running());
        }
        out.push((*ns, proc_ns(*pid, ns)));
    }
    Ok(out)
}

/// `/proc/PID/ns/FILE` of a spec namespace type (`network` is `net`).
pub fn proc_ns(pid: u32, ns: &str) -> PathBuf {
    let file = if ns == "network" { "net" } else { ns };
    PathBuf::from(format!("/proc/{pid}/ns/{file}"))
}

/// The parent pid of `pid` (from /proc/PID/stat), if it lives.
fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// /etc/hosts, /etc/resolv.conf and /etc/hostname bound from `dir` (a
/// container's `net/`), replacing any mount of the spec on them.
fn bind_etc_files(spec: &mut Value, dir: &Path) {
    if let Some(mounts) = spec["mounts"].as_array_mut() {
        for (file, dest) in files::MOUNTS {
            mounts.retain(|m| m["destination"] != dest);
            mounts.push(json!({
                "destination": dest,
                "type": "bind",
                "source": dir.join(file),
                "options": ["rbind", "rprivate"],
            }));
        }
    }
}

/// Whether the spec gives the container a UTS namespace of its own.
fn own_uts(spec: &Value) -> bool {
    spec["linux"]["namespaces"]
        .as_array()
        .is_some_and(|nss| nss.iter().any(|n| n["type"] == "uts"))
}

/// Saves the request beside the record and, for none and host, writes the
/// /etc files now (a CNI network's are written by the helper, with the
/// address).
pub fn save(record_dir: &Path, r: &NetRequest) -> std::io::Result<()> {
    r.save(record_dir)?;
    if crate::network::joined(&r.network).is_some() {
        return Ok(()); // the files are the owner's
    }
    if r.uses_cni() {
        // Placeholders until the helper attaches it: the mounts need files.
        return files::write_all(&record_dir.join(NET_DIR), "", "", &r.hostname);
    }
    let host = r.network == "host";
    let hosts = if host {
        let mut h = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
        let add_hosts = files::with_host_gateway(&r.add_hosts, Some("127.0.0.1"));
        for (name, ip) in add_hosts.iter().filter_map(|a| a.split_once(':')) {
            h.push_str(&format!("{ip}\t{name}\n"));
        }
        h
    } else {
        files::hosts(&files::with_host_gateway(&r.add_hosts, None), &[], &[])
    };
    let host_file = if host {
        std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default()
    } else {
        files::host_resolv_conf()
    };
    let resolv = files::resolv_conf(&host_file, &r.dns_flags(), host);
    files::write_all(&record_dir.join(NET_DIR), &hosts, &resolv, &r.hostname)
}

/// The networks of a CNI container after its first, for its `Container`
/// answer, from its saved request: with the addresses it has while it is
/// attached (`attached`), as the first network's `ip_address` shows.
pub fn networks_after_first(record_dir: &Path, attached: bool) -> Vec<api::NetworkEndpoint> {
    let Ok(r) = NetRequest::load(record_dir) else {
        return Vec::new();
    };
    r.more
        .into_iter()
        .map(|e| {
            let mut n = api::NetworkEndpoint::new();
            n.network = e.network;
            n.ip = if attached { e.last_ip } else { String::new() };
            n.aliases = e.aliases;
            n
        })
        .collect()
}

/// Whether `name` is attached through CNI now (its cache exists).
pub fn attached(cfg: &Config, name: &str) -> bool {
    cfg.record_dir(name).join(NET_DIR).join(CACHE_FILE).exists()
        || netns_path(&cfg.state_dir, name).exists()
}

fn helper_command(cfg: &Config, name: &str, action: &str, netns_made: bool) -> Command {
    let mut cmd = Command::new(helper_binary());
    cmd.arg(action)
        .arg("--records")
        .arg(&cfg.records_dir)
        .arg("--state")
        .arg(&cfg.state_dir);
    if netns_made {
        cmd.arg("--netns-made");
    }
    cmd.arg(name).stdin(Stdio::null());
    cmd
}

fn helper_error(name: &str, message: String) -> ManagerError {
    ManagerError::Network {
        name: name.to_string(),
        message,
    }
}

/// Runs the helper and waits for it (the checkpoint-restore path, and a
/// start at wrend's boot); its address.
fn run_helper(cfg: &Config, name: &str, action: &str) -> Result<String, ManagerError> {
    let t = Instant::now();
    let out = helper_command(cfg, name, action, false)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| helper_error(name, format!("run {}: {e}", helper_binary().display())))?;
    log::debug!("{name}: network {action} took {:?}", t.elapsed());
    helper::outcome(&out.stdout).map_err(|m| helper_error(name, m))
}

/// CNI ADD of a container on a CNI network (before its task is created),
/// waited for; its address.
pub fn attach(cfg: &Config, name: &str) -> Result<String, ManagerError> {
    run_helper(cfg, name, "attach")
}

/// CNI DEL, if the container is attached, waited for.
pub fn detach(cfg: &Config, name: &str) {
    if !attached(cfg, name) {
        return;
    }
    if let Err(e) = run_helper(cfg, name, "detach") {
        log::warn!("{}", wren_runtime::error::chain(&e));
    }
}

/// What follows a helper the loop waits for.
pub(super) enum Then {
    /// `Create`: start the task if asked, answer with the container.
    Create { start: bool, responder: Responder },
    /// `Start` of a stopped container: start the task, answer.
    Start { responder: Responder },
    /// A restart (policy, health action) or a start at wrend's boot:
    /// start the task; a failure counts as a failed run.
    Restart,
    /// Nothing (a detach).
    Nothing,
}

/// A helper process the loop waits for: its stdout pipe is watched and
/// read to EOF.
pub(super) struct Helper {
    pub(super) name: String,
    pub(super) attach: bool,
    /// The task is created once the attach is done (an earlier
    /// attachment was left over, so the helper makes the namespace).
    pub(super) create_after: bool,
    pub(super) out: OwnedFd,
    pub(super) buf: Vec<u8>,
    pub(super) then: Then,
    pub(super) started: Instant,
    /// The container was removed meanwhile: its files go when this is done.
    pub(super) remove_files: bool,
    /// `rm`/`stop` callers and their prepared answers.
    pub(super) replies: Vec<(Responder, Reply)>,
}

/// A prepared answer.
pub(super) type Reply = Result<Vec<u8>, wren_protocol::ttrpc_wire::Status>;

/// Spawns the helper with its stdout on a non-blocking pipe.
fn spawn_helper(
    cfg: &Config,
    name: &str,
    action: &str,
    netns_made: bool,
) -> Result<OwnedFd, ManagerError> {
    let mut child = helper_command(cfg, name, action, netns_made)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| helper_error(name, format!("run {}: {e}", helper_binary().display())))?;
    // The loop reaps it on SIGCHLD; its outcome is its stdout line.
    let out: OwnedFd = child
        .stdout
        .take()
        .map(OwnedFd::from)
        .ok_or_else(|| helper_error(name, "no stdout pipe".into()))?;
    // SAFETY: fcntl(F_SETFL) on a pipe fd we own.
    unsafe {
        let fl = libc::fcntl(out.as_raw_fd(), libc::F_GETFL);
        libc::fcntl(out.as_raw_fd(), libc::F_SETFL, fl | libc::O_NONBLOCK);
    }
    Ok(out)
}

impl Registry {
    /// The fd of the helper running for `name`, if any.
    pub(super) fn helper_of(&self, name: &str) -> Option<RawFd> {
        self.helpers
            .iter()
            .find(|(_, h)| h.name == name)
            .map(|(fd, _)| *fd)
    }

    fn add_helper(&mut self, h: Helper) {
        let raw = h.out.as_raw_fd();
        let name = h.name.clone();
        self.helpers.insert(raw, h);
        self.watch(&name, raw, WatchKind::Helper);
    }

    /// (Re)creates the task of `name` and attaches it to its network;
    /// `then` runs when both are done (at once for none and host, after
    /// the helper otherwise) — or with the error if one failed.
    pub(super) fn create_task_then(&mut self, name: &str, then: Then) {
        self.settle(name);
        let cni = self
            .containers
            .get(name)
            .is_some_and(|m| crate::network::uses_cni(&m.rec.network));
        if !cni {
            let r = self.create_task(name);
            return self.after_attach(name, r, then);
        }
        timing::mark(name, "wrend.net.attach");
        let netns = netns_path(&self.cfg.state_dir, name);
        // Nothing left of an earlier attachment: make the namespace here,
        // so the task can be created while the plugins run.
        let made = !attached(&self.cfg, name) && {
            match make_netns(&netns) {
                Ok(()) => true,
                Err(e) => {
                    log::warn!(
                        "{name}: make its network namespace {}: {e}",
                        netns.display()
                    );
                    false
                }
            }
        };
        let fd = match spawn_helper(&self.cfg, name, "attach", made) {
            Ok(fd) => fd,
            Err(e) => {
                if made {
                    remove_netns(&netns);
                }
                return self.after_attach(name, Err(e), then);
            }
        };
        let raw = fd.as_raw_fd();
        self.add_helper(Helper {
            name: name.to_string(),
            attach: true,
            create_after: !made,
            out: fd,
            buf: Vec::new(),
            then,
            started: Instant::now(),
            remove_files: false,
            replies: Vec::new(),
        });
        if made {
            if let Err(e) = self.create_task_without_network(name) {
                // Wait for the attach and undo it; its own error (a port
                // taken, a plugin missing) says more than the task's.
                self.wait_helper(raw);
                let Some(h) = self.take_helper(raw) else {
                    return;
                };
                let e = match helper::outcome(&h.buf) {
                    Ok(_) => {
                        detach(&self.cfg, name);
                        e
                    }
                    Err(m) => {
                        self.remove_unattached_netns(name);
                        helper_error(name, m)
                    }
                };
                self.after_attach(name, Err(e), h.then);
            }
        }
    }

    /// The helper behind `fd` has output (or exited).
    pub fn helper_readable(&mut self, fd: RawFd) {
        let Some(h) = self.helpers.get_mut(&fd) else {
            return;
        };
        let mut chunk = [0u8; 512];
        loop {
            // SAFETY: read(2) into a local buffer from a pipe fd we own.
            let n =
                unsafe { libc::read(h.out.as_raw_fd(), chunk.as_mut_ptr().cast(), chunk.len()) };
            match n {
                0 => break,
                n if n > 0 => {
                    // One line is all a helper says; keep no more.
                    if h.buf.len() < 64 << 10 {
                        h.buf.extend_from_slice(&chunk[..n as usize]);
                    }
                }
                _ => {
                    let e = std::io::Error::last_os_error();
                    match e.kind() {
                        std::io::ErrorKind::Interrupted => continue,
                        std::io::ErrorKind::WouldBlock => return,
                        _ => break,
                    }
                }
            }
        }
        self.helper_done(fd);
    }

    /// Blocks until the helper behind `fd` closes its stdout (exits).
    fn wait_helper(&mut self, fd: RawFd) {
        let Some(h) = self.helpers.get_mut(&fd) else {
            return;
        };
        // SAFETY: fcntl(F_SETFL) on the pipe we own: blocking for this read
        // to EOF (the helper is done and the fd closed right after).
        unsafe { libc::fcntl(h.out.as_raw_fd(), libc::F_SETFL, 0) };
        let mut chunk = [0u8; 512];
        loop {
            // SAFETY: read(2) into a local buffer from a pipe fd we own.
            let n =
                unsafe { libc::read(h.out.as_raw_fd(), chunk.as_mut_ptr().cast(), chunk.len()) };
            if n > 0 {
                if h.buf.len() < 64 << 10 {
                    h.buf.extend_from_slice(&chunk[..n as usize]);
                }
                continue;
            }
            if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            break;
        }
    }

    fn take_helper(&mut self, fd: RawFd) -> Option<Helper> {
        let h = self.helpers.remove(&fd)?;
        self.unwatch(fd);
        Some(h)
    }

    /// Waits for the helper running for `name`, if any, and does what
    /// follows it (a request about `name` arrived meanwhile).
    pub(super) fn settle(&mut self, name: &str) {
        while let Some(fd) = self.helper_of(name) {
            log::debug!("{name}: waiting for its network helper");
            self.wait_helper(fd);
            self.helper_done(fd);
        }
    }

    /// [`Self::settle`] for an attach only (a detach may run on while the
    /// container is removed: its files and the `rm` answer wait for it).
    pub(super) fn settle_attach(&mut self, name: &str) {
        if let Some(fd) = self.helper_of(name) {
            if self.helpers.get(&fd).is_some_and(|h| h.attach) {
                self.wait_helper(fd);
                self.helper_done(fd);
            }
        }
    }

    fn helper_done(&mut self, fd: RawFd) {
        let Some(h) = self.take_helper(fd) else {
            return;
        };
        let name = h.name.clone();
        let action = if h.attach { "attach" } else { "detach" };
        log::debug!("{name}: network {action} took {:?}", h.started.elapsed());
        let outcome = helper::outcome(&h.buf).map_err(|m| helper_error(&name, m));
        if h.attach {
            timing::mark(&name, "wrend.net.attached");
            let r = match outcome {
                Ok(ip) => {
                    let record_dir = self.cfg.record_dir(&name);
                    let ports = NetRequest::load(&record_dir)
                        .map(|r| r.published_ports().iter().map(|p| p.to_string()).collect())
                        .unwrap_or_default();
                    if let Some(m) = self.containers.get_mut(name.as_str()) {
                        m.rec.ip_address = ip;
                        m.rec.ports = ports;
                    }
                    if h.create_after {
                        let r = self.create_task_without_network(&name);
                        if r.is_err() {
                            detach(&self.cfg, &name);
                        }
                        r
                    } else {
                        Ok(())
                    }
                }
                Err(e) => {
                    if !h.create_after {
                        self.remove_unattached_netns(&name);
                    }
                    Err(e)
                }
            };
            self.after_attach(&name, r, h.then);
        } else {
            timing::mark(&name, "wrend.net.detached");
            if let Err(e) = outcome {
                log::warn!("{}", wren_runtime::error::chain(&e));
            }
            if h.remove_files {
                self.remove_files(&name);
            }
        }
        for (r, reply) in h.replies {
            self.reply_when_gone(&name, r, reply);
        }
    }

    /// Removes the namespace wrend made for an attach that failed (the
    /// helper undid the rest and leaves the namespace to wrend).
    fn remove_unattached_netns(&self, name: &str) {
        let cache = self.cfg.record_dir(name).join(NET_DIR).join(CACHE_FILE);
        if !cache.exists() {
            remove_netns(&netns_path(&self.cfg.state_dir, name));
        }
    }

    /// What follows an attach (or a task created without one).
    pub(super) fn after_attach(&mut self, name: &str, r: Result<(), ManagerError>, then: Then) {
        match then {
            Then::Create { start, responder } => {
                let r = r.and_then(|()| if start { self.start_task(name) } else { Ok(()) });
                if let Err(e) = r {
                    // Nothing may be left behind for a container that
                    // failed to start.
                    self.delete_task_if_any(name);
                    self.discard(name);
                    super::health::give_back_heap();
                    // After its detach, if one runs: nothing is left then.
                    return self.reply_when_gone(name, responder, Err(e.to_status()));
                }
                super::health::give_back_heap();
                self.reply_container(name, responder);
            }
            Then::Start { responder } => match r.and_then(|()| self.start_task(name)) {
                Ok(()) => self.reply_container(name, responder),
                Err(e) => {
                    self.start_failed(name, &e);
                    responder.send(Err(e.to_status()));
                }
            },
            Then::Restart => {
                if let Err(e) = r.and_then(|()| self.start_task(name)) {
                    self.start_failed(name, &e);
                    // A failed start counts as a failed run (no run time,
                    // so the backoff keeps doubling).
                    self.init_exited(
                        name,
                        super::restart::START_FAILED_STATUS,
                        super::event_log::now_nanos(),
                    );
                }
            }
            Then::Nothing => {
                if let Err(e) = r {
                    log::warn!("{}", wren_runtime::error::chain(&e));
                }
            }
        }
    }

    fn reply_container(&self, name: &str, responder: Responder) {
        responder.send(
            self.container_response(name)
                .map(|c| super::registry::encode(&c))
                .map_err(|e| e.to_status()),
        );
    }

    /// CNI DEL of the container's attachment, if it has one (after its
    /// init exited, or when it goes), in a helper the loop does not wait
    /// for.
    pub(super) fn detach_network(&mut self, name: &str) {
        // An attach still running finishes first (what follows it may
        // itself start this detach).
        self.settle_attach(name);
        if let Some(m) = self.containers.get_mut(name) {
            if !m.rec.ip_address.is_empty() {
                m.rec.ip_address.clear();
                self.save(name);
            }
        }
        if self.helper_of(name).is_some() || !attached(&self.cfg, name) {
            return; // already detaching, or nothing to detach
        }
        timing::mark(name, "wrend.net.detach");
        match spawn_helper(&self.cfg, name, "detach", false) {
            Ok(fd) => self.add_helper(Helper {
                name: name.to_string(),
                attach: false,
                create_after: false,
                out: fd,
                buf: Vec::new(),
                then: Then::Nothing,
                started: Instant::now(),
                remove_files: false,
                replies: Vec::new(),
            }),
            Err(e) => log::warn!("{}", wren_runtime::error::chain(&e)),
        }
    }

    /// Sends an `rm`/`stop` answer (or a failed `Create`'s) once nothing
    /// of the container runs: neither its shim nor its network helper.
    pub(super) fn reply_when_gone(&mut self, name: &str, r: Responder, reply: Reply) {
        if let Some(d) = self.departing.values_mut().find(|d| d.name == name) {
            return d.replies.push((r, reply));
        }
        if let Some(fd) = self.helper_of(name) {
            if let Some(h) = self.helpers.get_mut(&fd) {
                return h.replies.push((r, reply));
            }
        }
        r.send(reply);
    }

    /// Removes a container's files now, or when its detach is done.
    pub(super) fn remove_files_when_detached(&mut self, name: &str) {
        if let Some(fd) = self.helper_of(name) {
            if let Some(h) = self.helpers.get_mut(&fd) {
                h.remove_files = true;
                return;
            }
        }
        self.remove_files(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_joined_namespace_is_the_inits_while_the_shim_is_its_parent() {
        let me = std::process::id();
        let parent = parent_of(me).unwrap();
        assert_eq!(parent, std::os::unix::process::parent_id());
        let paths = joined_paths("j", &[("network", "x".into(), me, parent)]).unwrap();
        assert_eq!(
            paths,
            vec![("network", PathBuf::from(format!("/proc/{me}/ns/net")))]
        );
        let paths = joined_paths("j", &[("pid", "x".into(), me, parent)]).unwrap();
        assert_eq!(paths[0].1, PathBuf::from(format!("/proc/{me}/ns/pid")));
        // Not running, or a pid that is someone else's child now.
        for (pid, shim) in [(0, 0), (me, parent + 1)] {
            let e = joined_paths("j", &[("pid", "x".into(), pid, shim)]).unwrap_err();
            assert!(
                e.to_string()
                    .contains("j joins the pid namespace of x, which is not running"),
                "{e}"
            );
        }
    }
}
