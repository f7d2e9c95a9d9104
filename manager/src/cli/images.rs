//! `wren import`, `wren images`, `wren rmi`, `wren image inspect|prune`:
//! the image store (`wren_images`) worked on directly by the CLI. wrend is
//! not involved: it never opens the store, it only learns an image's layer
//! paths and process when a container is created from it.
//!
//! An image a container uses cannot be removed: rmi and prune hold the
//! store's exclusive lock, run and create hold it shared until wrend has
//! the container's record, and rmi reads the records' `image_id`.
//!
//! Runs in `wren`.

use std::path::Path;

use serde_json::{json, Value};
use wren_images::import::{self, Options};
use wren_images::platform::Platform;
use wren_images::Store;

use super::args::{Import, Rmi, Save, Tag};
use super::{CliError, Global};

impl From<wren_images::StoreError> for CliError {
    fn from(e: wren_images::StoreError) -> Self {
        Self::chain(&e)
    }
}

/// Opens the store under `g.records`.
pub fn store(g: &Global) -> Result<Store, CliError> {
    Ok(Store::open(&crate::paths::images_in(&g.records))?)
}

/// `wren import FILE`.
pub fn import(g: &Global, a: &Import) -> Result<i32, CliError> {
    let store = store(g)?;
    let platform = match &a.platform {
        Some(p) => Platform::parse(p).map_err(CliError::usage)?,
        None => Platform::host(),
    };
    let _lock = store.lock_shared()?;
    let opts = Options {
        name: a.name.clone(),
        platform,
    };
    let done = import::import(&store, &a.file, &opts).map_err(|e| CliError::chain(&e))?;
    for i in done {
        if a.quiet {
            println!("{}", i.id);
        } else {
            println!(
                "imported {} ({}): {} new layers, {} already present",
                i.name,
                short_id(&i.id),
                i.new_layers,
                i.shared_layers
            );
        }
    }
    Ok(0)
}

fn short_id(id: &str) -> &str {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    &hex[..hex.len().min(12)]
}

fn human(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "kB", "MB", "GB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1000.0 && u < UNITS.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes}B")
    } else {
        format!("{v:.1}{}", UNITS[u])
    }
}

/// `wren save -o FILE IMAGE...`.
pub fn save(g: &Global, a: &Save) -> Result<i32, CliError> {
    let store = store(g)?;
    let _lock = store.lock_shared()?;
    wren_images::save::save(&store, &a.images, &a.output).map_err(|e| CliError::chain(&e))?;
    Ok(0)
}

/// `wren images`: a table, or JSON with `--json`.
pub fn list(g: &Global) -> Result<i32, CliError> {
    let store = store(g)?;
    let index = store.index()?;
    let mut rows = Vec::new();
    for (name, e) in &index.images {
        let m = store.manifest(&e.digest).ok();
        let size: u64 = m
            .as_ref()
            .map(|m| m.layers().iter().map(|l| l.size()).sum())
            .unwrap_or(0);
        let layers = m.as_ref().map(|m| m.layers().len()).unwrap_or(0);
        rows.push(
            json!({"name": name, "id": e.digest, "size": size, "layers": layers, "added": e.added}),
        );
    }
    if g.json {
        println!("{}", Value::from(rows));
        return Ok(0);
    }
    println!("{:<50} {:<14} {:>7} {:>9}", "IMAGE", "ID", "LAYERS", "SIZE");
    for r in rows {
        println!(
            "{:<50} {:<14} {:>7} {:>9}",
            r["name"].as_str().unwrap_or(""),
            short_id(r["id"].as_str().unwrap_or("")),
            r["layers"],
            human(r["size"].as_u64().unwrap_or(0)),
        );
    }
    Ok(0)
}

/// `wren image inspect IMAGE`: name, id, manifest, config, layer paths.
pub fn inspect(g: &Global, reference: &str) -> Result<i32, CliError> {
    let store = store(g)?;
    let image = store.image(reference)?;
    let layers: Vec<String> = image
        .manifest
        .layers()
        .iter()
        .map(|l| {
            store
                .layer_dir(l.digest().as_ref())
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        })
        .collect();
    let v = json!({
        "name": image.name,
        "id": image.id,
        "manifest": image.manifest,
        "config": image.config,
        "layers": layers,
    });
    println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    Ok(0)
}

/// Containers (from wrend's records) that use the image `id`.
pub fn users_of(records: &Path, id: &str) -> Vec<String> {
    let dir = crate::paths::containers_in(records);
    let Ok(rd) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut out: Vec<String> = rd
        .flatten()
        .filter_map(|e| {
            let text = std::fs::read(e.path().join("record.json")).ok()?;
            let v: Value = serde_json::from_slice(&text).ok()?;
            (v["image_id"].as_str() == Some(id)).then(|| e.file_name().to_string_lossy().into())
        })
        .collect();
    out.sort();
    out
}

/// `wren tag SOURCE TARGET`: TARGET (normalised, as `pull` names images)
/// names SOURCE's image too; a TARGET that named another image moves.
pub fn tag(g: &Global, a: &Tag) -> Result<i32, CliError> {
    if a.target.contains('@') {
        return Err(CliError::usage(format!(
            "tag {:?}: a digest cannot be a name; want [REGISTRY/]REPOSITORY[:TAG]",
            a.target
        )));
    }
    let target = wren_images::reference::parse(&a.target)
        .map_err(CliError::usage)?
        .whole();
    let store = store(g)?;
    let _lock = store.lock_exclusive()?;
    let (_, id) = store.find(&a.source)?;
    store.tag(&target, &id)?;
    println!("{target}");
    Ok(0)
}

/// `wren rmi IMAGE...`: untags, refusing an image a container uses, then
/// removes what no image uses any more.
pub fn rmi(g: &Global, a: &Rmi) -> Result<i32, CliError> {
    let store = store(g)?;
    let _lock = store.lock_exclusive()?;
    let index = store.index()?;
    let mut names = Vec::new();
    for r in &a.images {
        let (name, id) = store.find(r)?;
        let users = users_of(&g.records, &id);
        if !users.is_empty() {
            return Err(CliError::failed(format!(
                "image {name} is in use by container {}; remove the container first",
                users.join(", ")
            )));
        }
        if name == id {
            // By id: every name of it goes.
            names.extend(
                index
                    .images
                    .iter()
                    .filter(|(_, e)| e.digest == id)
                    .map(|(n, _)| n.clone()),
            );
        } else {
            names.push(name);
        }
    }
    store.untag(&names)?;
    for n in &names {
        println!("untagged {n}");
    }
    for r in store.prune()? {
        println!("deleted {r}");
    }
    Ok(0)
}

/// `wren image prune`.
pub fn prune(g: &Global) -> Result<i32, CliError> {
    let store = store(g)?;
    let _lock = store.lock_exclusive()?;
    let removed = store.prune()?;
    for r in &removed {
        println!("deleted {r}");
    }
    Ok(0)
}

/// The image `reference` in `store`, pulled first as `policy` says
/// (`missing`, the default: only when the store lacks it; `always`;
/// `never`: absent is an error).
pub fn ensure(
    store: &wren_images::Store,
    reference: &str,
    policy: Option<&str>,
    r: &super::args::RegistryFlags,
) -> Result<wren_images::Image, CliError> {
    let policy = policy.unwrap_or("missing");
    match policy {
        "always" => fetch(store, reference, r)?,
        "missing" | "never" => {}
        other => {
            return Err(CliError::usage(format!(
                "pull policy {other:?}: missing, always or never"
            )))
        }
    }
    // `--platform`: an image the store has for another platform is pulled
    // again for it (as Docker does); whatever the store ends up with must
    // be for it.
    let want = r
        .platform
        .as_deref()
        .map(wren_images::platform::Platform::parse)
        .transpose()
        .map_err(CliError::usage)?;
    let platform_of = |img: &wren_images::Image| wren_images::platform::Platform::of(&img.config);
    let img = match store.image(reference) {
        Err(wren_images::StoreError::NoImage(_)) if policy == "missing" => {
            eprintln!("{reference}: not in the store, pulling");
            fetch(store, reference, r)?;
            store.image(reference)?
        }
        Err(wren_images::StoreError::NoImage(n)) if policy == "never" => {
            return Err(CliError::failed(format!(
                "no such image: {n} (and --pull never)"
            )))
        }
        Ok(img)
            if policy == "missing"
                && want
                    .as_ref()
                    .is_some_and(|w| !w.accepts(&platform_of(&img))) =>
        {
            eprintln!(
                "{reference}: the store has it for {}, pulling it for {}",
                platform_of(&img),
                want.as_ref().map(ToString::to_string).unwrap_or_default()
            );
            fetch(store, reference, r)?;
            store.image(reference)?
        }
        other => other?,
    };
    if let Some(want) = &want {
        let have = platform_of(&img);
        if !want.accepts(&have) {
            let never = if policy == "never" {
                " (and the pull policy is never)"
            } else {
                ""
            };
            return Err(CliError::failed(format!(
                "image {reference} is for {have}, not {want}{never}"
            )));
        }
    }
    Ok(img)
}

/// A pull for `run` and `apply`: its lines on stderr.
#[cfg(feature = "pull")]
fn fetch(
    store: &wren_images::Store,
    reference: &str,
    r: &super::args::RegistryFlags,
) -> Result<(), CliError> {
    super::pull::fetch(store, reference, r, false, true).map(drop)
}

#[cfg(not(feature = "pull"))]
fn fetch(
    _: &wren_images::Store,
    reference: &str,
    _: &super::args::RegistryFlags,
) -> Result<(), CliError> {
    Err(CliError::failed(format!(
        "{reference}: not in the store, and this wren was built without registry support (cargo feature \"pull\"): import it"
    )))
}
