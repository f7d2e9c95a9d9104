//! wrend's side of container networking, kept small on purpose: the spec
//! edits a network mode needs (host: no network namespace; a CNI network:
//! join `<state>/netns/NAME` by path; every mode: /etc/hosts,
//! /etc/resolv.conf and /etc/hostname bind-mounted from the container's
//! `net/` directory), the request saved for the helper, and running that
//! helper — `wren network attach|detach NAME`, a separate short-lived
//! process that does the CNI work ([`crate::network::attach`]) — before a
//! task is created and after its init exits. wrend links no CNI code and
//! holds nothing between those calls; whether a container is attached is
//! the presence of its CNI cache file, so detach happens exactly once.
//!
//! Runs in wrend's loop thread (the helper is waited for, like a shim call).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{json, Value};
use wren_protocol::manager as api;

use super::config::Config;
use super::error::ManagerError;
use crate::network::{files, netns_path, NetRequest, PortMapping, CACHE_FILE, NET_DIR};

/// The `wren` binary that serves as the network helper: beside wrend, or
/// on PATH.
fn helper_binary() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("wren")))
        .filter(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("wren"))
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
    let mut ports = Vec::new();
    for p in &req.publish {
        ports.push(PortMapping::parse(p).map_err(ManagerError::InvalidArgument)?);
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
    let net_dir = cfg.record_dir(name).join(NET_DIR);
    if let Some(mounts) = spec["mounts"].as_array_mut() {
        for (file, dest) in files::MOUNTS {
            mounts.retain(|m| m["destination"] != dest);
            mounts.push(json!({
                "destination": dest,
                "type": "bind",
                "source": net_dir.join(file),
                "options": ["rbind", "rprivate"],
            }));
        }
    }
    Ok(Some(NetRequest {
        network,
        ports,
        dns: req.dns.clone(),
        add_hosts: req.add_hosts.clone(),
        hostname: spec["hostname"].as_str().unwrap_or(name).to_string(),
        last_ip: String::new(),
    }))
}

/// Saves the request beside the record and, for none and host, writes the
/// /etc files now (a CNI network's are written by the helper, with the
/// address).
pub fn save(record_dir: &Path, r: &NetRequest) -> std::io::Result<()> {
    r.save(record_dir)?;
    if r.uses_cni() {
        // Placeholders until the helper attaches it: the mounts need files.
        return files::write_all(&record_dir.join(NET_DIR), "", "", &r.hostname);
    }
    let host = r.network == "host";
    let hosts = if host {
        let mut h = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
        for (name, ip) in r.add_hosts.iter().filter_map(|a| a.split_once(':')) {
            h.push_str(&format!("{ip}\t{name}\n"));
        }
        h
    } else {
        files::hosts(&r.add_hosts, None, &[])
    };
    let resolv = files::resolv_conf(
        &std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
        &r.dns,
        host,
    );
    files::write_all(&record_dir.join(NET_DIR), &hosts, &resolv, &r.hostname)
}

/// Whether `name` is attached through CNI now (its cache exists).
pub fn attached(cfg: &Config, name: &str) -> bool {
    cfg.record_dir(name).join(NET_DIR).join(CACHE_FILE).exists()
        || netns_path(&cfg.state_dir, name).exists()
}

fn run_helper(cfg: &Config, name: &str, action: &str) -> Result<String, ManagerError> {
    let t = std::time::Instant::now();
    let out = Command::new(helper_binary())
        .args(["network", action, "--records"])
        .arg(&cfg.records_dir)
        .arg("--state")
        .arg(&cfg.state_dir)
        .arg(name)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| ManagerError::Network {
            name: name.to_string(),
            message: format!("run {}: {e}", helper_binary().display()),
        })?;
    log::debug!("{name}: network {action} took {:?}", t.elapsed());
    if !out.status.success() {
        let text = String::from_utf8_lossy(&out.stderr);
        let text = text.trim().trim_start_matches("wren: ");
        return Err(ManagerError::Network {
            name: name.to_string(),
            message: text.to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// CNI ADD of a container on a CNI network (before its task is created);
/// its address.
pub fn attach(cfg: &Config, name: &str) -> Result<String, ManagerError> {
    run_helper(cfg, name, "attach")
}

/// CNI DEL, if the container is attached.
pub fn detach(cfg: &Config, name: &str) {
    if !attached(cfg, name) {
        return;
    }
    if let Err(e) = run_helper(cfg, name, "detach") {
        log::warn!("{}", wren_runtime::error::chain(&e));
    }
}
