//! The commands that only look: `list`, `inspect`, `ps` and `stats`.
//!
//! Runs in `wren`.

use wren_protocol::manager as api;

use super::client::{name_req, Wrend};
use super::{output, CliError, Global};

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
