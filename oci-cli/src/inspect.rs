//! The commands that only read: `state`, `ps` and `list`. Runs in the
//! `wren-oci` process.

use crate::cli::{Format, Global, List, Ps};
use crate::{load, Usage};
use wren_runtime::Container;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

pub fn state(g: &Global, id: &str) -> Result<()> {
    let st = load(g, id)?.state();
    println!("{}", serde_json::to_string_pretty(&st)?);
    Ok(())
}

pub fn ps(g: &Global, p: Ps) -> Result<()> {
    // runc runs ps(1) with these options for the table; wren prints pids.
    // With JSON runc ignores them too (and go-runc passes an empty one).
    if p.format == Format::Table && p.ps_args.iter().any(|a| !a.is_empty()) {
        return Err(Usage(format!(
            "ps: ps(1) options ({}) are not supported; the table lists pids",
            p.ps_args.join(" ")
        ))
        .into());
    }
    let pids = load(g, &p.id)?.pids()?;
    match p.format {
        Format::Json => println!("{}", serde_json::to_string(&pids)?),
        Format::Table => {
            println!("PID");
            for pid in pids {
                println!("{pid}");
            }
        }
    }
    Ok(())
}

pub fn list(g: &Global, l: List) -> Result<()> {
    let mut states = Vec::new();
    if let Ok(dir) = std::fs::read_dir(&g.root) {
        for entry in dir.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Ok(c) = Container::load(&g.root, &name) {
                states.push(c.state());
            }
        }
    }
    states.sort_by(|a, b| a.id.cmp(&b.id));
    if l.format == Format::Json {
        println!("{}", serde_json::to_string(&states)?);
    } else if l.quiet {
        for s in &states {
            println!("{}", s.id);
        }
    } else {
        println!(
            "{:<20} {:<8} {:<10} {:<40} CREATED",
            "ID", "PID", "STATUS", "BUNDLE"
        );
        for s in &states {
            println!(
                "{:<20} {:<8} {:<10} {:<40} {}",
                s.id,
                s.pid,
                s.status.to_string(),
                s.bundle.display(),
                s.created.as_deref().unwrap_or("")
            );
        }
    }
    Ok(())
}
