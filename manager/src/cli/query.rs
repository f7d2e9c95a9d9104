//! The commands that only look: `list`, `inspect`, `ps`, `stats` and
//! `port`.
//!
//! Runs in `wren`.

use wren_protocol::manager as api;

use super::args::Port;
use super::client::{name_req, Wrend};
use super::{output, CliError, Global};
use crate::network::PortMapping;

/// `wren list`.
pub fn list(g: &Global) -> Result<i32, CliError> {
    let mut w = Wrend::connect(&g.socket)?;
    let r: api::ListResponse = w.call("List", &api::ListRequest::new(), false)?;
    if g.json {
        let all: Vec<serde_json::Value> = r.containers.iter().map(output::container_json).collect();
        println!("{}", serde_json::to_string_pretty(&all).unwrap_or_default());
    } else {
        print!("{}", output::table(&r.containers));
    }
    Ok(0)
}

/// `wren inspect NAME`: always JSON.
pub fn inspect(g: &Global, name: &str) -> Result<i32, CliError> {
    let mut w = Wrend::connect(&g.socket)?;
    let c = w.inspect(name)?;
    println!(
        "{}",
        serde_json::to_string_pretty(&output::container_json(&c)).unwrap_or_default()
    );
    Ok(0)
}

/// `wren ps NAME`.
pub fn ps(g: &Global, name: &str) -> Result<i32, CliError> {
    let mut w = Wrend::connect(&g.socket)?;
    let r: api::PidsResponse = w.call("Pids", &name_req(name), false)?;
    if g.json {
        println!("{}", serde_json::to_string(&r.pids).unwrap_or_default());
        return Ok(0);
    }
    println!("PID\tCMD");
    for pid in r.pids {
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|b| {
                String::from_utf8_lossy(&b)
                    .replace('\0', " ")
                    .trim()
                    .to_string()
            })
            .unwrap_or_default();
        println!("{pid}\t{cmd}");
    }
    Ok(0)
}

/// `wren stats NAME`.
pub fn stats(g: &Global, name: &str) -> Result<i32, CliError> {
    let mut w = Wrend::connect(&g.socket)?;
    let r: api::StatsResponse = w.call("Stats", &name_req(name), false)?;
    let v = output::stats_json(&r);
    if g.json {
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        println!("NAME\tCPU(ns)\tMEMORY(bytes)\tLIMIT\tPIDS");
        println!(
            "{name}\t{}\t{}\t{}\t{}",
            v["cpu_ns"], v["memory_bytes"], v["memory_limit"], v["pids"]
        );
    }
    Ok(0)
}

/// `wren port NAME [PORT[/PROTO]]`: `80/tcp -> 127.0.0.1:8080` for each port
/// a running container publishes, as Docker prints them; with a port, only
/// its host addresses, and an error if it is not published.
pub fn port(g: &Global, a: &Port) -> Result<i32, CliError> {
    let mut w = Wrend::connect(&g.socket)?;
    let c = w.inspect(&a.name)?;
    let live = matches!(c.status.as_str(), "running" | "paused");
    let mut maps = Vec::new();
    for p in c.ports.iter().filter(|_| live) {
        maps.extend(
            PortMapping::parse(p)
                .map_err(|e| CliError::failed(format!("container {}: {e}", a.name)))?,
        );
    }
    let wanted = match &a.port {
        None => None,
        Some(s) => Some(port_filter(s)?),
    };
    let mut found = false;
    for m in &maps {
        let host_ip = if m.host_ip.is_empty() {
            "0.0.0.0".to_string()
        } else if m.host_ip.contains(':') {
            format!("[{}]", m.host_ip)
        } else {
            m.host_ip.clone()
        };
        match &wanted {
            None => println!(
                "{}/{} -> {host_ip}:{}",
                m.container_port, m.protocol, m.host_port
            ),
            Some((port, proto)) if *port == m.container_port && *proto == m.protocol => {
                found = true;
                println!("{host_ip}:{}", m.host_port);
            }
            Some(_) => {}
        }
    }
    match (&a.port, wanted.is_some() && !found) {
        (Some(p), true) => Err(CliError::failed(format!(
            "container {} publishes no port {p}",
            a.name
        ))),
        _ => Ok(0),
    }
}

/// `PORT` or `PORT/tcp|udp` of `wren port`.
fn port_filter(s: &str) -> Result<(u16, String), CliError> {
    let (port, proto) = s.split_once('/').unwrap_or((s, "tcp"));
    let proto = proto.to_ascii_lowercase();
    match port.parse::<u16>() {
        Ok(n) if n > 0 && (proto == "tcp" || proto == "udp") => Ok((n, proto)),
        _ => Err(CliError::usage(format!(
            "port {s:?}: want PORT or PORT/tcp|udp"
        ))),
    }
}
