//! `wren system df`: what images, containers and volumes take on disk, and
//! how much of it removing the unused ones would give back, as Docker
//! prints it. Sizes are of the files themselves (`du` without blocks), a
//! layer shared by images counted once.
//!
//! - Images: every image id; active when a container was made from it;
//!   reclaimable: the layers and blobs only inactive images use.
//! - Containers: each one's record directory (its writable layer, logs and
//!   bundle); active when it runs; reclaimable: the stopped ones'.
//! - Volumes: active when a container mounts it; reclaimable: the others.
//!
//! Runs in `wren`.

use std::collections::BTreeSet;

use serde_json::json;
use wren_images::store::Store;
use wren_protocol::manager as api;

use super::client::Wrend;
use super::{images, volumes, CliError, Global};

/// One row of the table.
struct Row {
    kind: &'static str,
    total: usize,
    active: usize,
    size: u64,
    reclaimable: u64,
}

/// `wren system df`.
pub fn df(g: &Global) -> Result<i32, CliError> {
    let rows = [images_row(g)?, containers_row(g)?, volumes_row(g)];
    if g.json {
        let v: Vec<_> = rows
            .iter()
            .map(|r| {
                json!({"type": r.kind, "total": r.total, "active": r.active,
                       "size": r.size, "reclaimable": r.reclaimable})
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return Ok(0);
    }
    println!(
        "{:<14}{:<8}{:<8}{:<11}RECLAIMABLE",
        "TYPE", "TOTAL", "ACTIVE", "SIZE"
    );
    for r in rows {
        let pct = (r.reclaimable * 100).checked_div(r.size).unwrap_or(0);
        println!(
            "{:<14}{:<8}{:<8}{:<11}{} ({pct}%)",
            r.kind,
            r.total,
            r.active,
            human(r.size),
            human(r.reclaimable)
        );
    }
    Ok(0)
}

fn images_row(g: &Global) -> Result<Row, CliError> {
    let store = images::store(g)?;
    let _lock = store.lock_shared()?;
    let ids: BTreeSet<String> = store
        .index()?
        .images
        .values()
        .map(|e| e.digest.clone())
        .collect();
    // Blobs and layer directories each image needs; those of active ones.
    let (mut all, mut kept) = (BTreeSet::new(), BTreeSet::new());
    let mut active = 0;
    for id in &ids {
        let mut own = vec![store.blob_path(id)?];
        if let Ok(m) = store.manifest(id) {
            own.push(store.blob_path(m.config().digest().as_ref())?);
            for l in m.layers() {
                own.push(store.blob_path(l.digest().as_ref())?);
                own.push(store.layer_dir(l.digest().as_ref())?);
            }
        }
        let used = !images::users_of(&g.records, id).is_empty();
        active += usize::from(used);
        if used {
            kept.extend(own.iter().cloned());
        }
        all.extend(own);
    }
    let size: u64 = all.iter().map(|p| Store::du(p)).sum();
    let reclaimable = all.difference(&kept).map(|p| Store::du(p)).sum();
    Ok(Row {
        kind: "Images",
        total: ids.len(),
        active,
        size,
        reclaimable,
    })
}

fn containers_row(g: &Global) -> Result<Row, CliError> {
    let mut w = Wrend::connect(&g.socket)?;
    let r: api::ListResponse = w.call("List", &api::ListRequest::new(), false)?;
    let dir = crate::paths::containers_in(&g.records);
    let (mut size, mut reclaimable, mut active) = (0, 0, 0);
    for c in &r.containers {
        let du = Store::du(&dir.join(&c.name));
        size += du;
        if matches!(c.status.as_str(), "running" | "paused" | "restarting") {
            active += 1;
        } else {
            reclaimable += du;
        }
    }
    Ok(Row {
        kind: "Containers",
        total: r.containers.len(),
        active,
        size,
        reclaimable,
    })
}

fn volumes_row(g: &Global) -> Row {
    let (mut size, mut reclaimable, mut active) = (0, 0, 0);
    let names = volumes::names(g);
    for n in &names {
        let data = volumes::data_dir(g, n);
        let du = Store::du(&data);
        size += du;
        if volumes::users(g, &data).is_empty() {
            reclaimable += du;
        } else {
            active += 1;
        }
    }
    Row {
        kind: "Local Volumes",
        total: names.len(),
        active,
        size,
        reclaimable,
    }
}

/// `1.5MB`: decimal units, as Docker prints sizes.
pub(super) fn human(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u < UNITS.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        return format!("{n}B");
    }
    let s = format!("{v:.2}");
    format!(
        "{}{}",
        s.trim_end_matches('0').trim_end_matches('.'),
        UNITS[u]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_in_decimal_units() {
        assert_eq!(human(0), "0B");
        assert_eq!(human(999), "999B");
        assert_eq!(human(1500), "1.5kB");
        assert_eq!(human(16_430_000), "16.43MB");
        assert_eq!(human(2_000_000_000), "2GB");
    }
}
