//! The commands that change a container: `start`, `stop`, `restart`,
//! `kill`, `rm`, `pause`, `resume` and `update`; and `wait`.
//!
//! Runs in `wren`.

use wren_protocol::manager as api;

use super::args::{Kill, Restart, Rm, Stop, Update};
use super::client::{name_req, ClientError, Wrend};
use super::{CliError, Global};

/// `wren start NAME`.
pub fn start(g: &Global, name: &str) -> Result<i32, CliError> {
    let mut w = Wrend::connect(&g.socket)?;
    let _: api::ContainerResponse = w.call("Start", &name_req(name), false)?;
    println!("{name}");
    Ok(0)
}

/// `wren pause NAME` and `wren resume NAME`.
pub fn pause_resume(g: &Global, name: &str, pause: bool) -> Result<i32, CliError> {
    let mut w = Wrend::connect(&g.socket)?;
    let method = if pause { "Pause" } else { "Resume" };
    let _: api::Empty = w.call(method, &name_req(name), false)?;
    println!("{name}");
    Ok(0)
}

/// `wren stop`: returns once the container has stopped.
pub fn stop(g: &Global, a: &Stop) -> Result<i32, CliError> {
    let mut r = api::StopRequest::new();
    r.name = a.name.clone();
    r.timeout_secs = a.timeout.unwrap_or(0);
    r.signal = a.signal.unwrap_or(0) as u32;
    let mut w = Wrend::connect(&g.socket)?;
    let _: api::ContainerResponse = w.call("Stop", &r, true)?;
    println!("{}", a.name);
    Ok(0)
}

/// `wren restart NAME...`: each one stopped if it runs (as `stop`), then
/// started; every name is tried, status 1 if any failed.
pub fn restart(g: &Global, a: &Restart) -> Result<i32, CliError> {
    let mut w = Wrend::connect(&g.socket)?;
    let mut status = 0;
    for name in &a.names {
        let mut restart_one = || -> Result<(), ClientError> {
            let c = w.inspect(name)?;
            let live = matches!(c.status.as_str(), "running" | "paused" | "restarting");
            if live && c.auto_remove {
                // Its stop would remove it, and there would be nothing to start.
                return Err(ClientError::Refused {
                    message: format!(
                        "container {name} is removed when it stops (--rm): not restarted"
                    ),
                    not_found: false,
                });
            }
            if live {
                let mut r = api::StopRequest::new();
                r.name = name.clone();
                r.timeout_secs = a.timeout.unwrap_or(0);
                let _: api::ContainerResponse = w.call("Stop", &r, true)?;
            }
            let _: api::ContainerResponse = w.call("Start", &name_req(name), false)?;
            Ok(())
        };
        match restart_one() {
            Ok(()) => println!("{name}"),
            Err(e) => {
                eprintln!("wren: {}", wren_runtime::error::chain(&e));
                status = 1;
            }
        }
    }
    Ok(status)
}

/// `wren wait NAME...`: blocks until each has exited and prints its exit
/// status, one line per name in order; status 1 if any could not be waited
/// for.
pub fn wait(g: &Global, names: &[String]) -> Result<i32, CliError> {
    let mut status = 0;
    for name in names {
        match super::client::wait(&g.socket, name, "") {
            Ok(code) => println!("{code}"),
            Err(e) => {
                eprintln!("wren: {}", wren_runtime::error::chain(&e));
                status = 1;
            }
        }
    }
    Ok(status)
}

/// `wren kill`.
pub fn kill(g: &Global, a: &Kill) -> Result<i32, CliError> {
    let mut r = api::KillRequest::new();
    r.name = a.name.clone();
    r.signal = a.signal as u32;
    r.all = a.all;
    let mut w = Wrend::connect(&g.socket)?;
    let _: api::Empty = w.call("Kill", &r, false)?;
    Ok(0)
}

/// `wren rm NAME...`: every name is tried; status 1 if any failed.
pub fn rm(g: &Global, a: &Rm) -> Result<i32, CliError> {
    let mut w = Wrend::connect(&g.socket)?;
    let mut status = 0;
    for name in &a.names {
        let mut r = api::DeleteRequest::new();
        r.name = name.clone();
        r.force = a.force;
        match w.call::<_, api::ContainerResponse>("Delete", &r, false) {
            Ok(_) => println!("{name}"),
            Err(e) => {
                eprintln!("wren: {}", wren_runtime::error::chain(&e));
                status = 1;
            }
        }
    }
    Ok(status)
}

/// The LinuxResources JSON of `wren update`'s flags; empty when none is
/// given (only the restart policy changes).
fn resources_json(a: &Update) -> Result<String, CliError> {
    if let Some(path) = &a.resources {
        return std::fs::read_to_string(path)
            .map_err(|e| CliError::failed(format!("read {}: {e}", path.display())));
    }
    let mut v = serde_json::json!({});
    if let Some(m) = &a.memory {
        let limit = match m.trim() {
            "-1" => -1,
            s => super::run::parse_size(s).ok_or_else(|| {
                CliError::usage(format!(
                    "--memory {m:?}: want BYTES or a number with k, m or g (-1: none)"
                ))
            })?,
        };
        v["memory"] = serde_json::json!({"limit": limit});
    }
    if let Some(c) = a.cpus {
        if !(c >= 0.0 && c.is_finite()) {
            return Err(CliError::usage(format!("--cpus {c}: want 0 or more")));
        }
        // As `run --cpus`: a quota per 100 ms period; 0 (-1 to the kernel) is none.
        let quota = if c == 0.0 {
            -1
        } else {
            (c * 100_000.0).round() as i64
        };
        v["cpu"] = serde_json::json!({"quota": quota, "period": 100_000});
    }
    if let Some(s) = a.cpu_shares {
        v["cpu"]["shares"] = serde_json::json!(s);
    }
    if let Some(l) = a.pids_limit {
        v["pids"] = serde_json::json!({"limit": l});
    }
    for (flag, given, key) in [
        ("--memory-swap", &a.memory_swap, "swap"),
        ("--memory-reservation", &a.memory_reservation, "reservation"),
    ] {
        if let Some(m) = given {
            let n = match m.trim() {
                "-1" if key == "swap" => -1,
                s => super::run::parse_size(s).ok_or_else(|| {
                    CliError::usage(format!(
                        "{flag} {m:?}: want BYTES or a number with k, m or g"
                    ))
                })?,
            };
            v["memory"][key] = serde_json::json!(n);
        }
    }
    for (flag, given, key) in [
        ("--cpuset-cpus", &a.cpuset_cpus, "cpus"),
        ("--cpuset-mems", &a.cpuset_mems, "mems"),
    ] {
        if let Some(list) = given {
            super::run::cpu_list(flag, list)?;
            v["cpu"][key] = serde_json::json!(list);
        }
    }
    if v.as_object().is_some_and(|o| o.is_empty()) {
        return Ok(String::new());
    }
    Ok(v.to_string())
}

/// `wren update`.
pub fn update(g: &Global, a: &Update) -> Result<i32, CliError> {
    let mut r = api::UpdateRequest::new();
    r.name = a.name.clone();
    r.resources_json = resources_json(a)?;
    r.restart_policy = a.restart.clone().unwrap_or_default();
    let mut w = Wrend::connect(&g.socket)?;
    let _: api::Empty = w.call("Update", &r, false)?;
    Ok(0)
}
