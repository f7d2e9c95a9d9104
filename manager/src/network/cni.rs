//! Running CNI plugins as the CNI specification (1.0) says: a network
//! configuration list, each plugin found by its `type` on `CNI_PATH` and
//! run with `CNI_COMMAND`, `CNI_CONTAINERID`, `CNI_NETNS`, `CNI_IFNAME`,
//! `CNI_ARGS` and `CNI_PATH` in its environment and its configuration (the
//! list's `name` and `cniVersion` added, `prevResult` and the
//! `runtimeConfig` of the capabilities it declares) on stdin. ADD runs the
//! plugins in order, each given the previous result; a failed ADD is
//! undone with DEL. DEL runs them in reverse with the cached result; CHECK
//! in order with it. A plugin's error (JSON on its stdout) is returned
//! with its code, message and details.
//!
//! Runs in `wren` (the CLI or its network helper), never in wrend.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{json, Map, Value};

/// Where plugins are looked for when `WREN_CNI_PATH` is not set.
pub const DEFAULT_PATH: &str = "/usr/lib/cni:/opt/cni/bin";

/// A failed CNI operation.
#[derive(Debug, thiserror::Error)]
pub enum CniError {
    #[error("CNI plugin {plugin:?} not found in {path}")]
    NotFound { plugin: String, path: String },
    #[error("run CNI plugin {}", plugin.display())]
    Spawn {
        plugin: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("CNI plugin {plugin} {command}: {msg}{}", if details.is_empty() { String::new() } else { format!(" ({details})") })]
    Plugin {
        plugin: String,
        command: &'static str,
        code: u64,
        msg: String,
        details: String,
    },
    #[error("CNI configuration list: {0}")]
    Config(String),
}

/// The container side of one attachment.
#[derive(Debug, Clone)]
pub struct Attachment<'a> {
    pub container_id: &'a str,
    pub netns: &'a Path,
    pub ifname: &'a str,
    /// `K=V;K=V` (CNI_ARGS).
    pub args: String,
    /// Capability name → value (`portMappings`, ...), given to the plugins
    /// that declare the capability.
    pub runtime_config: Map<String, Value>,
}

/// The plugin search path: `WREN_CNI_PATH`, else [`DEFAULT_PATH`].
pub fn search_path() -> String {
    std::env::var("WREN_CNI_PATH").unwrap_or_else(|_| DEFAULT_PATH.to_string())
}

fn find(plugin: &str, path: &str) -> Result<PathBuf, CniError> {
    if plugin.is_empty() || plugin.contains('/') {
        return Err(CniError::Config(format!("invalid plugin type {plugin:?}")));
    }
    path.split(':')
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(d).join(plugin))
        .find(|p| p.is_file())
        .ok_or_else(|| CniError::NotFound {
            plugin: plugin.to_string(),
            path: path.to_string(),
        })
}

/// Checks that every plugin of `conflist` is installed.
pub fn check_plugins(conflist: &Value) -> Result<(), CniError> {
    let path = search_path();
    for p in plugins(conflist)? {
        find(p["type"].as_str().unwrap_or_default(), &path)?;
    }
    Ok(())
}

fn plugins(conflist: &Value) -> Result<&Vec<Value>, CniError> {
    conflist["plugins"]
        .as_array()
        .filter(|p| !p.is_empty())
        .ok_or_else(|| CniError::Config("no \"plugins\"".into()))
}

/// The stdin configuration of one plugin.
fn plugin_conf(conflist: &Value, plugin: &Value, prev: Option<&Value>, att: &Attachment) -> Value {
    let mut conf = plugin.as_object().cloned().unwrap_or_default();
    conf.insert("name".into(), conflist["name"].clone());
    conf.insert("cniVersion".into(), conflist["cniVersion"].clone());
    if let Some(prev) = prev {
        conf.insert("prevResult".into(), prev.clone());
    }
    let mut rc = Map::new();
    if let Some(caps) = plugin["capabilities"].as_object() {
        for (cap, on) in caps {
            if on.as_bool() == Some(true) {
                if let Some(v) = att.runtime_config.get(cap) {
                    rc.insert(cap.clone(), v.clone());
                }
            }
        }
    }
    if !rc.is_empty() {
        conf.insert("runtimeConfig".into(), Value::Object(rc));
    }
    Value::Object(conf)
}

/// Runs one plugin; its stdout parsed as JSON (Null when empty).
fn exec(command: &'static str, conf: &Value, att: &Attachment) -> Result<Value, CniError> {
    let path = search_path();
    let plugin = conf["type"].as_str().unwrap_or_default().to_string();
    let bin = find(&plugin, &path)?;
    let spawn_err = |source| CniError::Spawn {
        plugin: bin.clone(),
        source,
    };
    let mark = |what: &str| {
        if wren_runtime::timing::enabled() {
            wren_runtime::timing::mark(att.container_id, &format!("cni.{plugin}.{command}{what}"));
        }
    };
    mark("");
    let mut child = Command::new(&bin)
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", att.container_id)
        .env("CNI_NETNS", att.netns)
        .env("CNI_IFNAME", att.ifname)
        .env("CNI_ARGS", &att.args)
        .env("CNI_PATH", &path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(spawn_err)?;
    let input = serde_json::to_vec(conf).unwrap_or_default();
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(&input).map_err(spawn_err)?;
    }
    let out = child.wait_with_output().map_err(spawn_err)?;
    mark(".done");
    let parsed: Value = if out.stdout.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
    };
    if out.status.success() {
        return Ok(parsed);
    }
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    Err(CniError::Plugin {
        plugin,
        command,
        code: parsed["code"].as_u64().unwrap_or(0),
        msg: parsed["msg"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| format!("{} {stderr}", out.status)),
        details: parsed["details"].as_str().unwrap_or_default().to_string(),
    })
}

/// ADD through every plugin of `conflist`; the final result. On a failure
/// the plugins are DELeted again (in reverse) before the error returns.
pub fn add(conflist: &Value, att: &Attachment) -> Result<Value, CniError> {
    let mut prev: Option<Value> = None;
    for p in plugins(conflist)? {
        let conf = plugin_conf(conflist, p, prev.as_ref(), att);
        match exec("ADD", &conf, att) {
            Ok(r) if r.is_null() => {}
            Ok(r) => prev = Some(r),
            Err(e) => {
                if let Err(d) = del(conflist, att, prev.as_ref()) {
                    log::warn!("undo a failed CNI ADD: {}", wren_runtime::error::chain(&d));
                }
                return Err(e);
            }
        }
    }
    prev.ok_or_else(|| CniError::Config("no plugin returned a result".into()))
}

/// DEL through every plugin in reverse order, with the cached result. Every
/// plugin runs even if one fails (so as much as possible goes); the first
/// error is returned.
pub fn del(conflist: &Value, att: &Attachment, cached: Option<&Value>) -> Result<(), CniError> {
    let mut first = None;
    for p in plugins(conflist)?.iter().rev() {
        let conf = plugin_conf(conflist, p, cached, att);
        if let Err(e) = exec("DEL", &conf, att) {
            first.get_or_insert(e);
        }
    }
    first.map_or(Ok(()), Err)
}

/// CHECK through every plugin in order, with the cached result.
pub fn check(conflist: &Value, att: &Attachment, cached: &Value) -> Result<(), CniError> {
    for p in plugins(conflist)? {
        let conf = plugin_conf(conflist, p, Some(cached), att);
        exec("CHECK", &conf, att)?;
    }
    Ok(())
}

/// The first IPv4 address of a result, without its prefix length.
pub fn result_ip(result: &Value) -> Option<String> {
    result["ips"]
        .as_array()?
        .iter()
        .filter_map(|i| i["address"].as_str())
        .map(|a| a.split('/').next().unwrap_or(a).to_string())
        .find(|a| a.parse::<std::net::Ipv4Addr>().is_ok())
}

/// The MAC address of the container's interface `ifname` in an ADD result
/// (the interface with a sandbox), if it is a well-formed one.
pub fn result_mac(result: &Value, ifname: &str) -> Option<String> {
    result["interfaces"]
        .as_array()?
        .iter()
        .filter(|i| i["name"] == ifname && i["sandbox"].as_str().is_some_and(|s| !s.is_empty()))
        .filter_map(|i| i["mac"].as_str())
        .find(|m| valid_mac(m))
        .map(str::to_string)
}

/// `aa:bb:cc:dd:ee:ff`: six hex pairs (what may go in `CNI_ARGS`' `MAC=`).
pub fn valid_mac(m: &str) -> bool {
    let parts: Vec<&str> = m.split(':').collect();
    parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.bytes().all(|c| c.is_ascii_hexdigit()))
}

/// `portMappings` as the portmap plugin reads them.
pub fn port_mappings(ports: &[super::PortMapping]) -> Value {
    Value::Array(
        ports
            .iter()
            .map(|p| {
                let mut m = json!({
                    "hostPort": p.host_port,
                    "containerPort": p.container_port,
                    "protocol": p.protocol,
                });
                if !p.host_ip.is_empty() {
                    m["hostIP"] = json!(p.host_ip);
                }
                m
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_containers_mac_comes_from_the_sandbox_interface() {
        let r = json!({"interfaces": [
            {"name": "wren0", "mac": "aa:aa:aa:aa:aa:aa"},
            {"name": "veth1", "mac": "bb:bb:bb:bb:bb:bb"},
            {"name": "eth0", "mac": "0e:12:34:56:78:9A", "sandbox": "/run/netns/x"}
        ]});
        assert_eq!(result_mac(&r, "eth0").as_deref(), Some("0e:12:34:56:78:9A"));
        assert_eq!(result_mac(&r, "eth1"), None);
        let bad = json!({"interfaces": [{"name": "eth0", "mac": "0e:12;IP=1", "sandbox": "/x"}]});
        assert_eq!(result_mac(&bad, "eth0"), None);
        assert!(!valid_mac("0e:12:34:56:78"));
        assert!(!valid_mac("0e:12:34:56:78:9g"));
    }

    #[test]
    fn plugin_conf_adds_name_version_prev_and_capabilities() {
        let list = json!({"cniVersion": "1.0.0", "name": "n", "plugins": [
            {"type": "portmap", "capabilities": {"portMappings": true}},
            {"type": "firewall"}]});
        let mut rc = Map::new();
        rc.insert("portMappings".into(), json!([{"hostPort": 1}]));
        let att = Attachment {
            container_id: "c",
            netns: Path::new("/x"),
            ifname: "eth0",
            args: String::new(),
            runtime_config: rc,
        };
        let prev = json!({"ips": [{"address": "10.0.0.2/24"}]});
        let c = plugin_conf(&list, &list["plugins"][0], Some(&prev), &att);
        assert_eq!(c["name"], "n");
        assert_eq!(c["cniVersion"], "1.0.0");
        assert_eq!(c["prevResult"], prev);
        assert_eq!(c["runtimeConfig"]["portMappings"][0]["hostPort"], 1);
        let c = plugin_conf(&list, &list["plugins"][1], None, &att);
        assert!(c.get("runtimeConfig").is_none() && c.get("prevResult").is_none());
        assert_eq!(result_ip(&prev).as_deref(), Some("10.0.0.2"));
    }

    #[test]
    fn missing_plugin_is_named() {
        let e = find("no-such-plugin", "/nonexistent").unwrap_err();
        assert!(e.to_string().contains("\"no-such-plugin\""), "{e}");
    }
}
