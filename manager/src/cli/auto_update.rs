//! `wren auto-update`: Podman's auto-update for wren's containers, for an
//! edge box that should follow a tag (run it from cron or a systemd
//! timer).
//!
//! A container labelled `io.containers.autoupdate=registry` is made again
//! when the registry's manifest for its image's name moved (`local`: when
//! the store's image of that name did, after a `wren pull` or `import`).
//! The new container gets the flags the old one was made with (the
//! `recreate` JSON `run`/`create` put in the saved request), keeps its
//! name, volumes and networks (those `wren network connect` added since
//! too, and not those it was disconnected from), and is started if the
//! old one ran. If it
//! then stops, restarts, or its health check does not pass within
//! `--timeout`, the old image gets its name back and the container is made
//! again from it (`--rollback=false` leaves the failed one). Writes inside
//! the old container's own filesystem go with it, as with any re-create.
//! A compose service's container is made through `run` too, so it is
//! updated the same way, its compose labels kept. Containers that join
//! its namespaces (`--network`/`--pid`/`--ipc`/`--uts container:NAME`) are taken down
//! before it and made again after it, from their own recorded flags.
//!
//! The store's shared lock is held through each container's update, so
//! no `rmi` or prune removes the old image while a rollback may need it;
//! a lock file in the records dir keeps two auto-updates apart.
//!
//! Runs in `wren`.

use std::fs::File;
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};
use protobuf::Message;
use wren_protocol::manager as api;

use super::args::{AutoUpdate, ContainerArgs};
use super::client::{ClientError, Wrend};
use super::{CliError, Global};

/// The label that opts a container in, and its values (Podman's).
pub const LABEL: &str = "io.containers.autoupdate";

/// How long a container must run, without a health check, to count as
/// started.
const SETTLE: Duration = Duration::from_secs(2);
const POLL: Duration = Duration::from_millis(200);

/// One container's outcome, as printed.
#[derive(Debug, serde::Serialize)]
struct Outcome {
    container: String,
    image: String,
    policy: String,
    /// false, pending (--dry-run), true, rolled back, failed.
    updated: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    detail: String,
}

impl Outcome {
    fn failed(&self) -> bool {
        matches!(self.updated.as_str(), "failed" | "rolled back")
    }
}

/// `wren auto-update [--dry-run] [--rollback=BOOL] [--timeout SECS] [NAME...]`.
pub fn auto_update(g: &Global, a: &AutoUpdate) -> Result<i32, CliError> {
    let mut w = Wrend::connect(&g.socket)?;
    let _lock = exclusive(g)?;
    let list: api::ListResponse = w.call("List", &api::ListRequest::new(), false)?;
    for n in &a.names {
        if !list.containers.iter().any(|c| &c.name == n) {
            return Err(CliError::failed(format!("no such container: {n}")));
        }
    }
    let mut out = Vec::new();
    for c in &list.containers {
        let named = a.names.contains(&c.name);
        if !a.names.is_empty() && !named {
            continue;
        }
        let policy = c
            .labels
            .iter()
            .find_map(|l| l.strip_prefix(LABEL)?.strip_prefix('='))
            .unwrap_or("");
        let mut o = Outcome {
            container: c.name.clone(),
            image: c.image.clone(),
            policy: policy.to_string(),
            updated: "false".into(),
            detail: String::new(),
        };
        match policy {
            "registry" | "local" => {}
            "" | "disabled" if !named => continue,
            "" | "disabled" => {
                o.updated = "failed".into();
                o.detail = format!("no {LABEL}=registry|local label");
                out.push(o);
                continue;
            }
            p => {
                o.updated = "failed".into();
                o.detail = format!("{LABEL}={p}: want registry or local");
                out.push(o);
                continue;
            }
        }
        if let Err(e) = one(g, &mut w, c, &list.containers, a, &mut o) {
            o.updated = "failed".into();
            o.detail = e;
        }
        out.push(o);
    }
    print(g, &out);
    Ok(i32::from(out.iter().any(Outcome::failed)))
}

fn print(g: &Global, out: &[Outcome]) {
    if g.json {
        println!("{}", serde_json::to_string_pretty(out).unwrap_or_default());
        return;
    }
    let rows: Vec<Vec<String>> = out
        .iter()
        .map(|o| {
            let updated = if o.detail.is_empty() {
                o.updated.clone()
            } else {
                format!("{}: {}", o.updated, o.detail)
            };
            vec![
                o.container.clone(),
                o.image.clone(),
                o.policy.clone(),
                updated,
            ]
        })
        .collect();
    print!(
        "{}",
        super::output::columns(&["CONTAINER", "IMAGE", "POLICY", "UPDATED"], &rows)
    );
}

/// No two auto-updates at once: a lock file in the records dir.
fn exclusive(g: &Global) -> Result<Flock<File>, CliError> {
    let path = g.records.join("auto-update.lock");
    let f = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| CliError::failed(format!("open {}: {e}", path.display())))?;
    Flock::lock(f, FlockArg::LockExclusiveNonblock)
        .map_err(|_| CliError::failed("another wren auto-update is running"))
}

/// The request container `name` was made with, as wrend saved it.
fn saved_request(g: &Global, name: &str) -> Result<api::CreateRequest, String> {
    let dir = crate::paths::containers_in(&g.records).join(name);
    let saved_path = dir.join(crate::wrend::api::create::CREATE_REQUEST);
    std::fs::read(&saved_path)
        .map_err(|e| format!("read {}: {e}", saved_path.display()))
        .and_then(|b| {
            api::CreateRequest::parse_from_bytes(&b)
                .map_err(|e| format!("read {}: {e}", saved_path.display()))
        })
}

/// The flags `run`/`create` recorded in a saved request.
fn recorded_flags(name: &str, saved: &api::CreateRequest) -> Result<ContainerArgs, String> {
    if saved.recreate.is_empty() {
        return Err(format!(
            "{name} was made by a wren that did not record its flags: make it again once by hand"
        ));
    }
    serde_json::from_str(&saved.recreate).map_err(|e| format!("{name}'s recorded flags: {e}"))
}

/// The networks after its first that container `name` is on now, as its
/// record says: `wren network connect` and `disconnect` change them after
/// `run` recorded its flags, and the container made again keeps what it
/// was on (with the address and aliases each was given), not what its
/// flags said. None when it is on none of wren's networks, or its record
/// cannot be read: the flags' networks then.
fn more_networks_now(g: &Global, name: &str) -> Option<Vec<api::NetworkEndpoint>> {
    let dir = crate::paths::containers_in(&g.records).join(name);
    let now = crate::network::NetRequest::load(&dir).ok()?;
    if !now.uses_cni() {
        return None;
    }
    let more = now.more.iter().map(|e| {
        let mut n = api::NetworkEndpoint::new();
        n.network = e.network.clone();
        n.ip = e.ip.clone();
        n.aliases = e.aliases.clone();
        n
    });
    Some(more.collect())
}

/// A container in the updated one's namespaces (`--network` or `--pid
/// container:NAME`, directly or through another joiner): wrend keeps a
/// container others join, so it is taken down first and made again after,
/// from its own recorded flags, into the new container's namespaces.
struct Joiner {
    name: String,
    saved: api::CreateRequest,
    args: ContainerArgs,
    more: Option<Vec<api::NetworkEndpoint>>,
    live: bool,
}

/// The joiners of `name`, those that join it directly first.
fn joiners_of(g: &Global, all: &[api::Container], name: &str) -> Result<Vec<Joiner>, String> {
    let mut out: Vec<Joiner> = Vec::new();
    let mut targets = vec![name.to_string()];
    let mut i = 0;
    while i < targets.len() {
        let target = targets[i].clone();
        i += 1;
        for c in all {
            if targets.contains(&c.name) {
                continue;
            }
            let Ok(saved) = saved_request(g, &c.name) else {
                continue;
            };
            let joins = [
                &saved.network,
                &saved.pid_mode,
                &saved.ipc_mode,
                &saved.uts_mode,
            ]
            .iter()
            .any(|m| crate::network::joined(m) == Some(target.as_str()));
            if !joins {
                continue;
            }
            let args = recorded_flags(&c.name, &saved)
                .map_err(|e| format!("{} joins its namespaces, and {e}", c.name))?;
            targets.push(c.name.clone());
            out.push(Joiner {
                name: c.name.clone(),
                saved,
                args,
                more: more_networks_now(g, &c.name),
                live: matches!(c.status.as_str(), "running" | "paused" | "restarting"),
            });
        }
    }
    Ok(out)
}

/// Checks and, when its image moved, updates container `c` (`all`: every
/// container, for its joiners).
fn one(
    g: &Global,
    w: &mut Wrend,
    c: &api::Container,
    all: &[api::Container],
    a: &AutoUpdate,
    o: &mut Outcome,
) -> Result<(), String> {
    let saved = saved_request(g, &c.name)?;
    if c.image.is_empty() {
        return Err("not made from an image".into());
    }
    let args = recorded_flags(&c.name, &saved)?;
    let store = super::images::store(g).map_err(|e| e.message)?;
    // Held to the end: the old image stays while a rollback may need it.
    let _store_lock = store.lock_shared().map_err(|e| e.to_string())?;
    let old_id = c.image_id.clone();
    let new_id = match o.policy.as_str() {
        "local" => {
            store
                .find(&c.image)
                .map_err(|e| format!("{}: {e}", c.image))?
                .1
        }
        _ => remote_id(&c.image, &args)?,
    };
    if new_id == old_id {
        return Ok(());
    }
    if a.dry_run {
        o.updated = "pending".into();
        o.detail = format!("{} → {}", short(&old_id), short(&new_id));
        return Ok(());
    }
    let new_id = if o.policy == "registry" {
        pull(&store, &c.image, &args)?
    } else {
        new_id
    };
    let live = matches!(c.status.as_str(), "running" | "paused" | "restarting");
    let timeout = Duration::from_secs(a.timeout);
    let more = more_networks_now(g, &c.name);
    let joiners = joiners_of(g, all, &c.name)?;
    for j in joiners.iter().rev() {
        take_down(w, &j.name)?;
    }
    let updated = match replace(g, w, c, &saved, &args, more.as_deref(), live, timeout) {
        Ok(()) => {
            o.updated = "true".into();
            o.detail = format!("{} → {}", short(&old_id), short(&new_id));
            Ok(())
        }
        Err(why) if a.rollback => store
            .tag(&c.image, &old_id)
            .map_err(|e| format!("{why}; rollback: tag {}: {e}", c.image))
            .and_then(|()| {
                replace(g, w, c, &saved, &args, more.as_deref(), live, timeout)
                    .map_err(|e| format!("{why}; rollback to {} failed: {e}", short(&old_id)))
            })
            .map(|()| {
                o.updated = "rolled back".into();
                o.detail = format!("{} {why}; back on {}", short(&new_id), short(&old_id));
            }),
        Err(why) => Err(format!("{} {why} (no rollback)", short(&new_id))),
    };
    // The joiners again, whatever happened: into the namespaces of the
    // container that runs now (the new one, or the old one back).
    let mut lost = Vec::new();
    for j in &joiners {
        if let Err(e) = make(g, w, &j.name, &j.saved, &j.args, j.more.as_deref(), j.live) {
            lost.push(format!("{} not made again: {e}", j.name));
        }
    }
    if !joiners.is_empty() && lost.is_empty() && updated.is_ok() {
        let names: Vec<&str> = joiners.iter().map(|j| j.name.as_str()).collect();
        o.detail.push_str(&format!(
            "; made again in its namespaces: {}",
            names.join(", ")
        ));
    }
    match (updated, lost.is_empty()) {
        (Ok(()), true) => Ok(()),
        (Ok(()), false) => {
            o.detail.push_str(&format!("; {}", lost.join("; ")));
            Err(o.detail.clone())
        }
        (Err(e), _) if lost.is_empty() => Err(e),
        (Err(e), _) => Err(format!("{e}; {}", lost.join("; "))),
    }
}

/// `sha256:0123456789ab`.
fn short(id: &str) -> String {
    let hex = id.trim_start_matches("sha256:");
    format!("sha256:{}", &hex[..hex.len().min(12)])
}

#[cfg(feature = "pull")]
fn remote_id(image: &str, args: &ContainerArgs) -> Result<String, String> {
    let opts = super::pull::options(&args.image.registry).map_err(|e| e.message)?;
    wren_images::pull::remote_id(image, &opts).map_err(|e| super::CliError::chain(&e).message)
}

#[cfg(not(feature = "pull"))]
fn remote_id(_: &str, _: &ContainerArgs) -> Result<String, String> {
    Err("this wren was built without registry support (cargo feature \"pull\")".into())
}

#[cfg(feature = "pull")]
fn pull(store: &wren_images::Store, image: &str, args: &ContainerArgs) -> Result<String, String> {
    super::pull::fetch(store, image, &args.image.registry, true, true)
        .map(|p| p.id)
        .map_err(|e| e.message)
}

#[cfg(not(feature = "pull"))]
fn pull(_: &wren_images::Store, _: &str, _: &ContainerArgs) -> Result<String, String> {
    Err("this wren was built without registry support (cargo feature \"pull\")".into())
}

/// Removes container `c` (stopped first, as `stop` would) and makes it
/// again from `args` with the image its name has now, on the networks
/// `more` after its first (see [`more_networks_now`]), started when `live`;
/// then waits until it has proved itself (see [`settled`]).
#[allow(clippy::too_many_arguments)]
fn replace(
    g: &Global,
    w: &mut Wrend,
    c: &api::Container,
    saved: &api::CreateRequest,
    args: &ContainerArgs,
    more: Option<&[api::NetworkEndpoint]>,
    live: bool,
    timeout: Duration,
) -> Result<(), String> {
    take_down(w, &c.name)?;
    make(g, w, &c.name, saved, args, more, live)?;
    if live {
        settled(w, &c.name, timeout)
    } else {
        Ok(())
    }
}

/// Stops (as `stop` would) and removes container `name`; gone already is
/// fine.
fn take_down(w: &mut Wrend, name: &str) -> Result<(), String> {
    let gone = |r: Result<api::ContainerResponse, ClientError>| match r {
        Ok(_)
        | Err(ClientError::Refused {
            not_found: true, ..
        }) => Ok(()),
        Err(e) => Err(format!("{name}: {e}")),
    };
    let current = w.inspect(name).map(|c| c.status);
    if matches!(current.as_deref(), Ok("running" | "paused" | "restarting")) {
        let mut s = api::StopRequest::new();
        s.name = name.to_string();
        gone(w.call("Stop", &s, true))?;
    }
    let mut d = api::DeleteRequest::new();
    d.name = name.to_string();
    d.force = true;
    gone(w.call("Delete", &d, false))
}

/// Makes container `name` again from its recorded flags, with the image
/// its name has now (never pulled here), on the networks `more` after its
/// first when given, started when `live`.
fn make(
    g: &Global,
    w: &mut Wrend,
    name: &str,
    saved: &api::CreateRequest,
    args: &ContainerArgs,
    more: Option<&[api::NetworkEndpoint]>,
    live: bool,
) -> Result<(), String> {
    let mut args = args.clone();
    args.image.pull = Some("never".into());
    // Its name now (a restore may have given it another).
    args.image.container_name = Some(name.to_string());
    let (mut req, lock) = super::run::create_request(g, &args).map_err(|e| e.message)?;
    if let Some(more) = more {
        req.more_networks = more.to_vec();
    }
    req.auto_remove = saved.auto_remove;
    req.start = live;
    let made: Result<api::ContainerResponse, _> = w.call("Create", &req, false);
    drop(lock);
    made.map(|_| ()).map_err(|e| format!("create: {e}"))
}

/// Whether the new container holds: healthy (when it has a health
/// check), else running for [`SETTLE`] without a restart; the error says
/// what it did instead.
fn settled(w: &mut Wrend, name: &str, timeout: Duration) -> Result<(), String> {
    let start = Instant::now();
    let mut running_since: Option<Instant> = None;
    loop {
        let c = w.inspect(name).map_err(|e| e.to_string())?;
        let health = c.health_status.as_str();
        if c.restart_count > 0 || c.status == "restarting" {
            return Err(format!(
                "exited with status {} and is restarting",
                c.exit_status
            ));
        }
        match c.status.as_str() {
            "running" => {}
            "stopped" => {
                let why = if c.last_error.is_empty() {
                    format!("exited with status {}", c.exit_status)
                } else {
                    c.last_error.clone()
                };
                return Err(why);
            }
            _ => {}
        }
        match health {
            "healthy" => return Ok(()),
            "unhealthy" => {
                let last = c
                    .health_log
                    .last()
                    .map(|r| {
                        format!(
                            " (last check: status {}, {:?})",
                            r.exit_code,
                            r.output.trim()
                        )
                    })
                    .unwrap_or_default();
                return Err(format!("became unhealthy{last}"));
            }
            "" if c.status == "running" => {
                let since = *running_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= SETTLE {
                    return Ok(());
                }
            }
            _ => {}
        }
        if start.elapsed() >= timeout {
            return Err(if health.is_empty() {
                format!("not running steadily within {}s", timeout.as_secs())
            } else {
                format!(
                    "not healthy within {}s (health {health})",
                    timeout.as_secs()
                )
            });
        }
        std::thread::sleep(POLL);
    }
}
