//! The commands that only look: `list`, `inspect`, `ps`, `stats` and
//! `port`.
//!
//! Runs in `wren`.

use wren_protocol::manager as api;

use super::args::{InspectArgs, ListArgs, Port};
use super::client::{name_req, Wrend};
use super::template::Template;
use super::{output, CliError, Global};
use crate::network::PortMapping;

/// `wren list`: every container, or those its filters match.
pub fn list(g: &Global, a: &ListArgs) -> Result<i32, CliError> {
    let filters = a
        .filter
        .iter()
        .map(|f| Filter::parse(f))
        .collect::<Result<Vec<_>, _>>()?;
    let mut w = Wrend::connect(&g.socket)?;
    let r: api::ListResponse = w.call("List", &api::ListRequest::new(), false)?;
    let shown: Vec<api::Container> = r
        .containers
        .into_iter()
        .filter(|c| filters.iter().all(|f| f.matches(c)))
        .collect();
    if let Some(f) = &a.format {
        let t = Template::parse(f).map_err(CliError::usage)?;
        for c in &shown {
            println!(
                "{}",
                t.render(&output::container_json(c))
                    .map_err(CliError::usage)?
            );
        }
    } else if a.quiet {
        for c in &shown {
            println!("{}", c.name);
        }
    } else if g.json {
        let all: Vec<serde_json::Value> = shown.iter().map(output::container_json).collect();
        println!("{}", serde_json::to_string_pretty(&all).unwrap_or_default());
    } else {
        print!("{}", output::table(&shown));
    }
    Ok(0)
}

/// One `--filter KEY=VALUE` of `wren list`.
#[derive(Debug, PartialEq)]
enum Filter {
    Status(String),
    Name(String),
    Label(String, Option<String>),
    Health(String),
}

impl Filter {
    fn parse(s: &str) -> Result<Filter, CliError> {
        let bad = |why: &str| CliError::usage(format!("--filter {s:?}: {why}"));
        let (key, value) = s.split_once('=').ok_or_else(|| bad("want KEY=VALUE"))?;
        Ok(match key {
            "status" => match value {
                "created" | "running" | "paused" | "stopped" | "restarting" => {
                    Filter::Status(value.to_string())
                }
                // Docker's word for a stopped container.
                "exited" => Filter::Status("stopped".into()),
                _ => {
                    return Err(bad(
                        "status is created, running, paused, stopped or restarting",
                    ))
                }
            },
            "name" => Filter::Name(value.to_string()),
            "label" if !value.is_empty() => match value.split_once('=') {
                Some((k, v)) => Filter::Label(k.to_string(), Some(v.to_string())),
                None => Filter::Label(value.to_string(), None),
            },
            "health" => match value {
                "starting" | "healthy" | "unhealthy" | "none" => Filter::Health(value.to_string()),
                _ => return Err(bad("health is starting, healthy, unhealthy or none")),
            },
            _ => return Err(bad("filter by status, name, label or health")),
        })
    }

    fn matches(&self, c: &api::Container) -> bool {
        match self {
            Filter::Status(s) => c.status == *s,
            Filter::Name(n) => c.name.contains(n.as_str()),
            Filter::Label(k, v) => c.labels.iter().any(|l| {
                let (lk, lv) = l.split_once('=').unwrap_or((l.as_str(), ""));
                lk == k && v.as_deref().is_none_or(|v| v == lv)
            }),
            Filter::Health(h) if h == "none" => c.health_status.is_empty(),
            Filter::Health(h) => c.health_status == *h,
        }
    }
}

/// `wren inspect NAME`: always JSON.
pub fn inspect(g: &Global, a: &InspectArgs) -> Result<i32, CliError> {
    let t = a
        .format
        .as_deref()
        .map(Template::parse)
        .transpose()
        .map_err(CliError::usage)?;
    let mut w = Wrend::connect(&g.socket)?;
    let mut all = Vec::new();
    for name in &a.names {
        all.push(output::container_json(&w.inspect(name)?));
    }
    match (&t, all.as_slice()) {
        (Some(t), _) => {
            for c in &all {
                println!("{}", t.render(c).map_err(CliError::usage)?);
            }
        }
        (None, [one]) => println!("{}", serde_json::to_string_pretty(one).unwrap_or_default()),
        (None, _) => println!("{}", serde_json::to_string_pretty(&all).unwrap_or_default()),
    }
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

/// `wren stats [NAME]`: one container's figures, or every live one's (a
/// container that stops meanwhile is left out).
pub fn stats(g: &Global, name: Option<&str>) -> Result<i32, CliError> {
    let mut w = Wrend::connect(&g.socket)?;
    let names = match name {
        Some(n) => vec![n.to_string()],
        None => {
            let r: api::ListResponse = w.call("List", &api::ListRequest::new(), false)?;
            r.containers
                .into_iter()
                .filter(|c| matches!(c.status.as_str(), "running" | "paused"))
                .map(|c| c.name)
                .collect()
        }
    };
    let mut rows = Vec::new();
    for n in &names {
        match w.call::<_, api::StatsResponse>("Stats", &name_req(n), false) {
            Ok(r) => rows.push((n.clone(), output::stats_json(&r))),
            Err(e) if name.is_some() => return Err(e.into()),
            Err(_) => {}
        }
    }
    if g.json {
        let v = match name {
            Some(_) => rows.pop().map(|(_, v)| v).unwrap_or_default(),
            None => serde_json::Value::from(
                rows.into_iter()
                    .map(|(n, mut v)| {
                        v["name"] = serde_json::Value::from(n);
                        v
                    })
                    .collect::<Vec<_>>(),
            ),
        };
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        println!("NAME\tCPU(ns)\tMEMORY(bytes)\tLIMIT\tPIDS");
        for (n, v) in rows {
            println!(
                "{n}\t{}\t{}\t{}\t{}",
                v["cpu_ns"], v["memory_bytes"], v["memory_limit"], v["pids"]
            );
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_filters() {
        let mut c = api::Container::new();
        c.name = "shop-web-1".into();
        c.status = "running".into();
        c.labels = vec!["tier=web".into(), "flag".into()];
        let m = |f: &str| Filter::parse(f).unwrap().matches(&c);
        assert!(m("status=running") && !m("status=exited"));
        assert!(m("name=web") && !m("name=db"));
        assert!(m("label=tier") && m("label=tier=web") && !m("label=tier=db") && m("label=flag"));
        assert!(m("health=none") && !m("health=healthy"));
        for bad in ["status", "status=up", "colour=red", "label=", "health=ok"] {
            assert!(Filter::parse(bad).is_err(), "{bad}");
        }
    }
}
