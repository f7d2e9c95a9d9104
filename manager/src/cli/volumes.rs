//! Named volumes: `wren volume create|ls|inspect|rm|prune` and `run -v NAME:/path`.
//! A volume is a directory, `<records>/volumes/NAME/_data`, bind-mounted
//! into containers. An empty one is filled from the image's content at the
//! mount path when a container is made with it, as Docker does. A volume a container's spec mounts
//! cannot be removed (the image store's exclusive lock covers `rm`, its
//! shared lock `run`, so the check and the removal are not raced).
//!
//! Runs in `wren`.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::{CliError, Global};

/// `[A-Za-z0-9][A-Za-z0-9_.-]*`, at most 64.
pub fn valid_name(n: &str) -> bool {
    let b = n.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

fn dir(g: &Global, name: &str) -> PathBuf {
    crate::paths::volumes_in(&g.records).join(name)
}

/// Where volume `name`'s files are.
pub(super) fn data_dir(g: &Global, name: &str) -> PathBuf {
    dir(g, name).join("_data")
}

/// The volume's data directory, created if needed; whether it was new.
pub fn ensure(g: &Global, name: &str) -> Result<(PathBuf, bool), CliError> {
    if !valid_name(name) {
        return Err(CliError::usage(format!(
            "invalid volume name {name:?}: use 1-64 of [A-Za-z0-9_.-], starting with a letter or digit"
        )));
    }
    let data = dir(g, name).join("_data");
    if data.is_dir() {
        return Ok((data, false));
    }
    std::fs::create_dir_all(&data)
        .map_err(|e| CliError::failed(format!("create volume {name} ({}): {e}", data.display())))?;
    Ok((data, true))
}

/// Containers whose spec mounts `data`.
pub(super) fn users(g: &Global, data: &Path) -> Vec<String> {
    let want = data.display().to_string();
    let Ok(rd) = std::fs::read_dir(crate::paths::containers_in(&g.records)) else {
        return Vec::new();
    };
    let mut out: Vec<String> = rd
        .flatten()
        .filter(|e| {
            std::fs::read(e.path().join("bundle/config.json"))
                .ok()
                .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
                .and_then(|v| v["mounts"].as_array().cloned())
                .is_some_and(|ms| ms.iter().any(|m| m["source"].as_str() == Some(&want)))
        })
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    out.sort();
    out
}

pub fn create(g: &Global, names: &[String]) -> Result<i32, CliError> {
    for n in names {
        ensure(g, n)?;
        println!("{n}");
    }
    Ok(0)
}

pub(super) fn names(g: &Global) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(crate::paths::volumes_in(&g.records))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

pub fn list(g: &Global) -> Result<i32, CliError> {
    let all = names(g);
    if g.json {
        let v: Vec<Value> = all
            .iter()
            .map(|n| json!({"name": n, "mountpoint": dir(g, n).join("_data")}))
            .collect();
        println!("{}", Value::from(v));
    } else {
        println!("VOLUME");
        for n in all {
            println!("{n}");
        }
    }
    Ok(0)
}

pub fn inspect(g: &Global, names: &[String]) -> Result<i32, CliError> {
    let mut out = Vec::new();
    for n in names {
        let data = dir(g, n).join("_data");
        if !data.is_dir() {
            return Err(CliError::failed(format!("no such volume: {n}")));
        }
        out.push(json!({"name": n, "mountpoint": data, "used_by": users(g, &data)}));
    }
    println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
    Ok(0)
}

pub fn rm(g: &Global, names: &[String]) -> Result<i32, CliError> {
    let store = super::images::store(g)?;
    let _lock = store.lock_exclusive()?;
    for n in names {
        let d = dir(g, n);
        if !valid_name(n) || !d.join("_data").is_dir() {
            return Err(CliError::failed(format!("no such volume: {n}")));
        }
        let u = users(g, &d.join("_data"));
        if !u.is_empty() {
            return Err(CliError::failed(format!(
                "volume {n} is in use by container {}; remove the container first",
                u.join(", ")
            )));
        }
        std::fs::remove_dir_all(&d)
            .map_err(|e| CliError::failed(format!("remove volume {n} ({}): {e}", d.display())))?;
        println!("{n}");
    }
    Ok(0)
}

/// `wren volume prune`: removes every volume no container's spec mounts
/// (asking first on a terminal, unless `force`).
pub fn prune(g: &Global, force: bool) -> Result<i32, CliError> {
    if !super::prune::confirm(
        force,
        "volume prune deletes data",
        "Remove every volume no container uses, with its data?",
    )? {
        return Ok(1);
    }
    for (n, _) in prune_unused(g)? {
        println!("{n}");
    }
    Ok(0)
}

/// Removes every volume no container's spec mounts: (name, bytes) each.
pub fn prune_unused(g: &Global) -> Result<Vec<(String, u64)>, CliError> {
    let store = super::images::store(g)?;
    let _lock = store.lock_exclusive()?;
    let mut out = Vec::new();
    for n in names(g) {
        let d = dir(g, &n);
        if !valid_name(&n) || !d.join("_data").is_dir() || !users(g, &d.join("_data")).is_empty() {
            continue;
        }
        let size = wren_images::Store::du(&d);
        std::fs::remove_dir_all(&d)
            .map_err(|e| CliError::failed(format!("remove volume {n} ({}): {e}", d.display())))?;
        out.push((n, size));
    }
    Ok(out)
}
