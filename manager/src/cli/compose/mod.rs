//! `wren apply -f FILE` and `wren down -f FILE`: a few services described
//! in a Compose-compatible YAML subset ([`model`]), parsed with
//! serde-saphyr in this short-lived CLI only (wrend never sees YAML).
//!
//! apply: the file checked whole first (unknown keys named, depends_on
//! targets and cycles, declared volumes and networks); the project's
//! networks (`PROJECT_default`, `PROJECT_NET`) made if missing; then each
//! service in dependency order, as `wren run -d` would make it, with labels
//! `wren.compose.{project,service,hash}`. A container whose hash (the
//! service's settings and env files) and image id are unchanged and that
//! runs is left alone; a changed one (or one whose image name now means
//! another image, as Compose decides) is removed and made again; a
//! dependency with `condition: service_healthy` is waited for until its
//! health check passes, one with `service_completed_successfully` until
//! it exits 0. Containers of the project whose service left the file are
//! removed, and so are networks it made (labelled `wren.compose.project`)
//! that the file no longer names, once unused. down: the project's
//! containers, then its networks (named volumes are kept, as `docker
//! compose down` keeps them).
//!
//! Runs in `wren`.

mod dotenv;
pub mod model;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Args;
use wren_protocol::manager as api;

use super::client::Wrend;
use super::{CliError, Global};
use crate::network::store;
use model::{ComposeFile, Ext};

/// The labels compose puts on the networks it makes: the project, and the
/// network's key in the file.
const PROJECT_LABEL: &str = "wren.compose.project";
const NETWORK_LABEL: &str = "wren.compose.network";

/// How long `service_healthy` waits for a dependency.
const HEALTHY_WAIT: Duration = Duration::from_secs(120);

#[derive(Debug, Args, Clone)]
pub struct ComposeArgs {
    /// The compose file
    #[arg(
        short = 'f',
        long = "file",
        value_name = "FILE",
        default_value = "compose.yaml"
    )]
    pub file: PathBuf,
    /// The project name [default: the file's `name`, else its directory's name]
    #[arg(short = 'p', long = "project-name", value_name = "NAME")]
    pub project: Option<String>,
    /// Activate a profile: its services are made too ("*": every profile)
    /// [default: COMPOSE_PROFILES, comma-separated]
    #[arg(long = "profile", value_name = "NAME")]
    pub profiles: Vec<String>,
    /// How images missing from the store (or `pull_policy: always`) are pulled
    #[command(flatten)]
    pub registry: super::args::RegistryFlags,
}

struct Loaded {
    /// The file, without the services of inactive profiles.
    file: ComposeFile,
    /// How to reach registries for the images to pull.
    registry: super::args::RegistryFlags,
    /// Services left out for their profiles: neither made nor removed.
    inactive: BTreeSet<String>,
    dir: PathBuf,
    project: String,
}

/// Takes the services none of whose profiles is active out of `f`; their
/// names. An active service that depends on one is an error naming the
/// profiles that would bring it in.
fn apply_profiles(f: &mut ComposeFile, active: &[String]) -> Result<BTreeSet<String>, String> {
    let on = |s: &model::Service| {
        s.profiles.is_empty() || active.iter().any(|a| a == "*" || s.profiles.contains(a))
    };
    let inactive: BTreeSet<String> = f
        .services
        .iter()
        .filter(|(_, s)| !on(s))
        .map(|(n, _)| n.clone())
        .collect();
    for (name, s) in f.services.iter().filter(|(_, s)| on(s)) {
        if let Some((dep, _)) = s.depends().into_iter().find(|(d, _)| inactive.contains(d)) {
            return Err(format!(
                "services.{name}.depends_on: {dep} is only in profile(s) {}, none active (--profile)",
                f.services[&dep].profiles.join(", ")
            ));
        }
    }
    if !f.services.is_empty() && inactive.len() == f.services.len() {
        return Err("every service is in a profile, and none is active (--profile NAME)".into());
    }
    f.services.retain(|n, _| !inactive.contains(n));
    Ok(inactive)
}

fn load(a: &ComposeArgs) -> Result<Loaded, CliError> {
    let path = &a.file;
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::failed(format!("read {}: {e}", path.display())))?;
    let dir = std::path::absolute(path)
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("."));
    let vars = dotenv::variables(&dir).map_err(CliError::failed)?;
    warn_unset(&text, &vars, path);
    let mut active = a.profiles.clone();
    if active.is_empty() {
        if let Some(p) = vars.get("COMPOSE_PROFILES") {
            active = p
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect();
        }
    }
    let options = serde_saphyr::options! {
        property_syntax: serde_saphyr::PropertySyntax::DockerCompose,
    }
    .with_properties(vars);
    let mut file: ComposeFile =
        serde_saphyr::from_str_with_options::<Ext<ComposeFile>>(&text, options)
            .map(|f| f.0)
            .map_err(|e| CliError::failed(format!("{}: {e}", path.display())))?;
    let inactive = apply_profiles(&mut file, &active)
        .map_err(|e| CliError::failed(format!("{}: {e}", path.display())))?;
    let project = a
        .project
        .clone()
        .or_else(|| file.name.clone())
        .unwrap_or_else(|| {
            dir.file_name()
                .map(|n| n.to_string_lossy().to_lowercase())
                .unwrap_or_else(|| "default".into())
        });
    let project: String = project
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
        .collect();
    if project.is_empty() || !project.as_bytes()[0].is_ascii_alphanumeric() {
        return Err(CliError::usage(format!(
            "project name {project:?}: give -p NAME (letters, digits, _ and -)"
        )));
    }
    check(&file, &project, path)?;
    Ok(Loaded {
        file,
        registry: a.registry.clone(),
        inactive,
        dir,
        project,
    })
}

/// Warns, once per name, of each variable a value of the file uses with
/// no default and neither the environment nor `.env` sets (Compose's
/// warning; the value gets an empty string). Reads the file's values
/// uninterpolated, so comments and keys are not taken for references; a
/// file that does not parse is left to the real read to report.
fn warn_unset(text: &str, vars: &HashMap<String, String>, path: &Path) {
    fn strings<'a>(v: &'a serde_json::Value, out: &mut Vec<&'a str>) {
        match v {
            serde_json::Value::String(s) => out.push(s),
            serde_json::Value::Array(a) => a.iter().for_each(|v| strings(v, out)),
            serde_json::Value::Object(m) => m.values().for_each(|v| strings(v, out)),
            _ => {}
        }
    }
    let Ok(raw) = serde_saphyr::from_str::<serde_json::Value>(text) else {
        return;
    };
    let mut values = Vec::new();
    strings(&raw, &mut values);
    let mut unset: Vec<&str> = values
        .iter()
        .flat_map(|v| dotenv::unset_references(v, vars))
        .collect();
    unset.sort_unstable();
    unset.dedup();
    for name in unset {
        eprintln!(
            "warning: {}: the variable {name} is not set; it becomes an empty string",
            path.display()
        );
    }
}

/// What serde cannot check: references, conditions, cycles.
fn check(f: &ComposeFile, project: &str, path: &Path) -> Result<(), CliError> {
    let bad = |m: String| Err(CliError::failed(format!("{}: {m}", path.display())));
    if f.services.is_empty() {
        return bad("no services".into());
    }
    for (n, net) in &f.networks {
        if let Some(d) = net.as_ref().and_then(|n| n.driver.as_deref()) {
            if d != "bridge" {
                return bad(format!(
                    "networks.{n}.driver: only bridge is supported, not {d:?}"
                ));
            }
        }
        let host_name = model::network_name(project, f, n);
        if !crate::network::valid_network_name(&host_name)
            || matches!(host_name.as_str(), "none" | "host")
        {
            return bad(format!(
                "networks.{n}: {host_name:?} is not a network name wren can use"
            ));
        }
    }
    let mut names: BTreeMap<String, &str> = BTreeMap::new();
    for (name, s) in &f.services {
        if !crate::network::valid_network_name(name) {
            return bad(format!("services.{name}: invalid service name"));
        }
        if let Some(other) = names.insert(model::container_name(project, name, s), name) {
            return bad(format!(
                "services.{name}.container_name: {other} has the same container name"
            ));
        }
        if let Some(model::ListOrMap::Map(m)) = &s.depends_on {
            if let Some(dep) = m.keys().find(|d| m[*d].required == Some(false)) {
                return bad(format!(
                    "services.{name}.depends_on.{dep}.required: only true is in the subset"
                ));
            }
        }
        if let Some(p) = s.pull_policy.as_deref() {
            if !matches!(p, "missing" | "if_not_present" | "always" | "never") {
                return bad(format!(
                    "services.{name}.pull_policy: {p:?} is outside the subset (missing, if_not_present, always, never)"
                ));
            }
        }
        for (svc, _) in s.links() {
            if !f.services.contains_key(&svc) {
                return bad(format!("services.{name}.links: no service {svc:?}"));
            }
        }
        for (dep, cond) in s.depends() {
            if !f.services.contains_key(&dep) {
                return bad(format!("services.{name}.depends_on: no service {dep:?}"));
            }
            if !matches!(
                cond.as_str(),
                "service_started" | "service_healthy" | "service_completed_successfully"
            ) {
                return bad(format!(
                    "services.{name}.depends_on.{dep}.condition: {cond:?} is outside the subset (service_started, service_healthy, service_completed_successfully)"
                ));
            }
            let restart = f.services[&dep].restart.as_deref().unwrap_or("no");
            if cond == "service_completed_successfully"
                && matches!(restart, "always" | "unless-stopped")
            {
                return bad(format!(
                    "services.{name}.depends_on.{dep}: service_completed_successfully waits for {dep} to exit, and restart: {restart} never lets it"
                ));
            }
            if cond == "service_healthy" && f.services[&dep].healthcheck.is_none() {
                return bad(format!(
                    "services.{name}.depends_on.{dep}: service_healthy needs a healthcheck on {dep}"
                ));
            }
        }
    }
    order(f)
        .map(|_| ())
        .map_err(|e| CliError::failed(format!("{}: {e}", path.display())))
}

/// Services, dependencies first; refuses a cycle.
fn order(f: &ComposeFile) -> Result<Vec<String>, String> {
    let mut done: Vec<String> = Vec::new();
    let mut seen = BTreeSet::new();
    fn visit(
        f: &ComposeFile,
        n: &str,
        stack: &mut Vec<String>,
        seen: &mut BTreeSet<String>,
        done: &mut Vec<String>,
    ) -> Result<(), String> {
        if seen.contains(n) {
            return Ok(());
        }
        if stack.iter().any(|s| s == n) {
            return Err(format!("depends_on cycle: {} -> {n}", stack.join(" -> ")));
        }
        stack.push(n.to_string());
        for (d, _) in f.services[n].depends() {
            visit(f, &d, stack, seen, done)?;
        }
        stack.pop();
        seen.insert(n.to_string());
        done.push(n.to_string());
        Ok(())
    }
    for n in f.services.keys() {
        visit(f, n, &mut Vec::new(), &mut seen, &mut done)?;
    }
    Ok(done)
}

fn label<'a>(c: &'a api::Container, key: &str) -> Option<&'a str> {
    c.labels
        .iter()
        .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
}

fn project_containers(w: &mut Wrend, project: &str) -> Result<Vec<api::Container>, CliError> {
    let r: api::ListResponse = w.call("List", &api::ListRequest::new(), false)?;
    Ok(r.containers
        .into_iter()
        .filter(|c| label(c, "wren.compose.project") == Some(project))
        .collect())
}

fn remove(w: &mut Wrend, name: &str) -> Result<(), CliError> {
    let mut r = api::DeleteRequest::new();
    r.name = name.to_string();
    r.force = true;
    let _: api::ContainerResponse = w.call("Delete", &r, false)?;
    Ok(())
}

/// The service's identity for change detection: its settings, the
/// content of its env files, and the host names of its networks where the
/// file gives them (`name:`, `external:`): renaming a network the service
/// is on makes it again on the new one. (Without such names the hash is
/// what earlier wrens computed, so an unchanged file changes nothing.)
fn service_hash(
    name: &str,
    s: &model::Service,
    dir: &Path,
    project: &str,
    f: &model::ComposeFile,
) -> String {
    let mut bytes = serde_json::to_vec(s).unwrap_or_default();
    for f in s.env_files(dir) {
        bytes.extend(std::fs::read(f).unwrap_or_default());
    }
    let mut keys = s.networks.as_ref().map(|n| n.names()).unwrap_or_default();
    if keys.is_empty() && s.network_mode.is_none() {
        keys.push("default".to_string());
    }
    let named: Vec<String> = keys
        .iter()
        .map(|k| model::network_name(project, f, k))
        .zip(&keys)
        .filter(|(n, k)| *n != format!("{project}_{k}"))
        .map(|(n, k)| format!("{k}={n}"))
        .collect();
    if !named.is_empty() {
        bytes.extend(format!("\0networks:{}", named.join(",")).into_bytes());
    }
    // The aliases other services link it by are its aliases too.
    let linked = model::linked_aliases(f, name);
    if !linked.is_empty() {
        bytes.extend(format!("\0linked:{}", linked.join(",")).into_bytes());
    }
    wren_images::store::sha256(&bytes)
}

fn wait_healthy(g: &Global, name: &str, for_service: &str) -> Result<(), CliError> {
    let deadline = Instant::now() + HEALTHY_WAIT;
    loop {
        let mut w = Wrend::connect(&g.socket)?;
        let c = w.inspect(name)?;
        match c.health_status.as_str() {
            "healthy" => return Ok(()),
            "unhealthy" => {
                return Err(CliError::failed(format!(
                    "{for_service} depends on {name} being healthy, and it is unhealthy"
                )))
            }
            _ if c.status != "running" && c.status != "restarting" && c.status != "created" => {
                return Err(CliError::failed(format!(
                    "{for_service} depends on {name} being healthy, and it is {}",
                    c.status
                )))
            }
            _ => {}
        }
        if Instant::now() > deadline {
            return Err(CliError::failed(format!(
                "{for_service}: {name} was not healthy after {}s",
                HEALTHY_WAIT.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits for `name` to exit, as `condition: service_completed_successfully`
/// asks (a migration, a one-shot setup): fine with status 0, an error with
/// the status and the tail of its output otherwise (the container goes
/// with the rest of a failed apply, so its log is quoted here). No time
/// limit, as in Compose: such a job takes as long as it takes.
fn wait_completed(g: &Global, name: &str, for_service: &str) -> Result<(), CliError> {
    let mut said = false;
    loop {
        let c = Wrend::connect(&g.socket)?.inspect(name)?;
        if c.status == "stopped" {
            if c.exit_status == 0 {
                return Ok(());
            }
            let path = std::path::PathBuf::from(&c.log_path);
            let mut current = std::fs::File::open(&path).ok();
            let tail =
                crate::logfile::tail_from(&path, crate::logfile::READ_KEEP, 10, current.as_mut())
                    .map(|b| String::from_utf8_lossy(&b).trim_end().to_string())
                    .unwrap_or_default();
            return Err(CliError::failed(format!(
                "{for_service} depends on {name} completing successfully, and it exited with status {}{}",
                c.exit_status,
                if tail.is_empty() {
                    String::new()
                } else {
                    format!("; its last output:\n{tail}")
                }
            )));
        }
        if !said {
            println!("{for_service}: waiting for {name} to complete");
            said = true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `wren apply`.
pub fn apply(g: &Global, a: &ComposeArgs) -> Result<i32, CliError> {
    let l = load(a)?;
    let (f, project) = (&l.file, &l.project);
    let order = order(f).map_err(CliError::failed)?;
    // Every run line first: a bad service refuses the file before anything is made.
    let mut lines = BTreeMap::new();
    for name in &order {
        let s = &f.services[name];
        let hash = service_hash(name, s, &l.dir, project, f);
        let args = model::run_args(project, name, s, f, &l.dir, &hash)
            .map_err(|e| CliError::failed(format!("{}: {e}", a.file.display())))?;
        let mut argv = vec!["wren".to_string(), "run".to_string()];
        argv.extend(args);
        let run = match super::args::parse(argv) {
            Ok(super::args::Cli {
                command: Some(super::args::Command::Run(r)),
                ..
            }) => r,
            Ok(_) => return Err(CliError::failed(format!("services.{name}: not a run"))),
            Err(e) => {
                return Err(CliError::failed(format!(
                    "{}: services.{name}: {}",
                    a.file.display(),
                    e.to_string().lines().next().unwrap_or_default()
                )))
            }
        };
        lines.insert(name.clone(), (hash, run));
    }
    let mut made_nets: Vec<String> = Vec::new();
    let mut made: Vec<String> = Vec::new();
    let result = make(g, &l, &order, &lines, &mut made_nets, &mut made);
    if let Err(e) = result {
        // Nothing half-made: what this apply made goes again.
        if let Ok(mut w) = Wrend::connect(&g.socket) {
            for c in made.iter().rev() {
                let _ = remove(&mut w, c);
            }
        }
        if let Ok(_lock) = store::lock(&g.records) {
            // The bridges are in wrend's network namespace.
            let _ = super::network::in_wrends_netns(g, || {
                for n in &made_nets {
                    let _ = store::remove(&g.records, n, Vec::new());
                }
            });
        }
        return Err(e);
    }
    Ok(0)
}

type Lines = BTreeMap<String, (String, super::args::Run)>;

fn make(
    g: &Global,
    l: &Loaded,
    order: &[String],
    lines: &Lines,
    made_nets: &mut Vec<String>,
    made: &mut Vec<String>,
) -> Result<(), CliError> {
    let (f, project) = (&l.file, &l.project);
    // Every image first, pulled as each service's pull_policy says
    // (missing by default, as Compose); each one's id now.
    let mut image_ids = BTreeMap::new();
    {
        let st = super::images::store(g)?;
        for name in order {
            let s = &f.services[name];
            let policy = match s.pull_policy.as_deref() {
                Some("if_not_present") => Some("missing"),
                p => p,
            };
            let mut registry = l.registry.clone();
            if s.platform.is_some() {
                registry.platform.clone_from(&s.platform);
            }
            let image = super::images::ensure(&st, &s.image, policy, &registry)
                .map_err(|e| CliError::failed(format!("services.{name}.image: {}", e.message)))?;
            image_ids.insert(name.clone(), image.id);
        }
    }
    // Networks the services use.
    {
        let _lock = store::lock(&g.records).map_err(|e| CliError::chain(&e))?;
        let mut nets: BTreeSet<String> = BTreeSet::new();
        for (_, run) in lines.values() {
            for n in run.container.network.network_names() {
                if crate::network::uses_cni(&n) {
                    nets.insert(n);
                }
            }
        }
        let mut specs = BTreeMap::new();
        let mut external = BTreeMap::new();
        // The file's key of each host name (`PROJECT_default` for the
        // default network the file need not declare).
        let mut keys_of: BTreeMap<String, String> = BTreeMap::new();
        keys_of.insert(model::network_name(project, f, "default"), "default".into());
        for (key, def) in &f.networks {
            let spec = match def {
                Some(d) => d.spec(key).map_err(CliError::failed)?,
                None => store::Spec::default(),
            };
            let name = model::network_name(project, f, key);
            keys_of.insert(name.clone(), key.clone());
            if f.network_is_external(key) {
                if spec != store::Spec::default() {
                    return Err(CliError::failed(format!(
                        "networks.{key}: an external network takes no ipam, driver_opts, \
                         labels or internal (it is made elsewhere)"
                    )));
                }
                external.insert(name.clone(), key.clone());
            }
            specs.insert(name, spec);
        }
        for n in nets {
            if let Some(key) = external.get(&n) {
                // Made elsewhere: it must be there, and is used as it is.
                if let Err(e) = store::load(&g.records, &n) {
                    return Err(CliError::failed(format!(
                        "networks.{key}: external network {n}: {} (make it first: wren \
                         network create {n})",
                        crate::cli::CliError::chain(&e).message
                    )));
                }
                continue;
            }
            let mut spec = specs.remove(&n).unwrap_or_default();
            match store::load(&g.records, &n) {
                Ok(have) => {
                    if let Some(d) = have.differs(&spec) {
                        return Err(CliError::failed(format!(
                            "network {n} exists with {d}: wren down first, or remove the network"
                        )));
                    }
                }
                Err(store::StoreError::NotFound(_)) => {
                    // So `down` (and a later apply) finds it even after the
                    // file renames it.
                    spec.labels
                        .insert(PROJECT_LABEL.to_string(), project.to_string());
                    if let Some(key) = keys_of.get(&n) {
                        spec.labels.insert(NETWORK_LABEL.to_string(), key.clone());
                    }
                    super::network::in_wrends_netns(g, || store::create(&g.records, &n, &spec))?
                        .map_err(|e| CliError::chain(&e))?;
                    println!("network {n}: created");
                    made_nets.push(n);
                }
                Err(e) => return Err(CliError::chain(&e)),
            }
        }
    }
    let mut w = Wrend::connect(&g.socket)?;
    let existing: BTreeMap<String, api::Container> = project_containers(&mut w, project)?
        .into_iter()
        .map(|c| (c.name.clone(), c))
        .collect();
    // Containers removed because a service whose namespaces they join is
    // made again.
    let mut gone: BTreeSet<String> = BTreeSet::new();
    for name in order {
        let (hash, run) = &lines[name];
        for (dep, cond) in f.services[name].depends() {
            let dep_name = model::container_name(project, &dep, &f.services[&dep]);
            match cond.as_str() {
                "service_healthy" => wait_healthy(g, &dep_name, name)?,
                "service_completed_successfully" => wait_completed(g, &dep_name, name)?,
                _ => {}
            }
        }
        let cname = model::container_name(project, name, &f.services[name]);
        // As Compose: a service whose settings are unchanged but whose
        // image name now means another image (pulled, tagged) is made again.
        let state = match existing.get(&cname).filter(|_| !gone.contains(&cname)) {
            None if gone.contains(&cname) => "recreated (it joins a recreated service)",
            Some(c) => {
                let same_settings = label(c, "wren.compose.hash") == Some(hash.as_str());
                let same_image = Some(&c.image_id) == image_ids.get(name);
                let runs = matches!(c.status.as_str(), "running" | "restarting");
                if same_settings && same_image && runs {
                    println!("{name}: unchanged");
                    continue;
                }
                // What joins its namespaces goes first (wrend keeps a
                // container others join), and is made again after it.
                remove_joiners(&mut w, f, project, name, &existing, &mut gone)?;
                remove(&mut w, &cname)?;
                if same_settings && !same_image {
                    "recreated (new image)"
                } else {
                    "recreated"
                }
            }
            None => "created",
        };
        for p in model::missing_bind_sources(&f.services[name], &l.dir) {
            // As Docker Compose: a bind's missing host path is made.
            std::fs::create_dir_all(&p).map_err(|e| {
                CliError::failed(format!(
                    "services.{name}.volumes: make {}: {e}",
                    p.display()
                ))
            })?;
        }
        made.push(cname.clone());
        super::run::run(g, run)?;
        println!("{name}: {state}");
    }
    for (cname, c) in &existing {
        let service = label(c, "wren.compose.service").unwrap_or_default();
        if !f.services.contains_key(service) && !l.inactive.contains(service) {
            remove(&mut w, cname)?;
            println!("{service}: removed (no longer in the file)");
        }
    }
    // Networks this project made that the file no longer names (renamed or
    // dropped), once nothing uses them.
    let _lock = store::lock(&g.records).map_err(|e| CliError::chain(&e))?;
    let named = file_networks(project, f);
    for n in store::list(&g.records) {
        if n.labels.get(PROJECT_LABEL).map(String::as_str) != Some(project)
            || named.iter().any(|(name, _)| *name == n.name)
        {
            continue;
        }
        let users = super::network::users(g, &n.name);
        if users.is_empty() {
            super::network::in_wrends_netns(g, || store::remove(&g.records, &n.name, users))?
                .map_err(|e| CliError::chain(&e))?;
            println!("network {}: removed (no longer in the file)", n.name);
        }
    }
    Ok(())
}

/// (host name, external) of each network `f` names, and of its default.
fn file_networks(project: &str, f: &ComposeFile) -> Vec<(String, bool)> {
    f.networks
        .keys()
        .map(String::as_str)
        .chain(std::iter::once("default"))
        .map(|k| (model::network_name(project, f, k), f.network_is_external(k)))
        .collect()
}

/// Removes the existing containers of the services that join `service`'s
/// namespaces (theirs first, and so on), noting them in `gone`.
fn remove_joiners(
    w: &mut Wrend,
    f: &ComposeFile,
    project: &str,
    service: &str,
    existing: &BTreeMap<String, api::Container>,
    gone: &mut BTreeSet<String>,
) -> Result<(), CliError> {
    for (name, s) in &f.services {
        if !s.joins().contains(&service) {
            continue;
        }
        let cname = model::container_name(project, name, s);
        if existing.contains_key(&cname) && !gone.contains(&cname) {
            remove_joiners(w, f, project, name, existing, gone)?;
            remove(w, &cname)?;
            gone.insert(cname);
        }
    }
    Ok(())
}

/// `wren down`.
pub fn down(g: &Global, a: &ComposeArgs) -> Result<i32, CliError> {
    let l = load(a)?;
    let mut w = Wrend::connect(&g.socket)?;
    // Dependents first.
    let order = order(&l.file).map_err(CliError::failed)?;
    let mut cs = project_containers(&mut w, &l.project)?;
    cs.sort_by_key(|c| {
        let s = label(c, "wren.compose.service").unwrap_or_default();
        std::cmp::Reverse(order.iter().position(|o| o == s).unwrap_or(usize::MAX))
    });
    for c in &cs {
        remove(&mut w, &c.name)?;
        println!("{}: removed", c.name);
    }
    // The project's networks: those named after it, those the file names
    // otherwise (`name:`), and those apply made for it under a name the
    // file no longer gives, but never an external one, nor one that
    // containers of others still use.
    let _lock = store::lock(&g.records).map_err(|e| CliError::chain(&e))?;
    let prefix = format!("{}_", l.project);
    let named = file_networks(&l.project, &l.file);
    for n in store::list(&g.records) {
        let file_says = named.iter().find(|(name, _)| *name == n.name);
        let ours = n.name.starts_with(&prefix)
            || file_says.is_some()
            || n.labels.get(PROJECT_LABEL) == Some(&l.project);
        if !ours || file_says.is_some_and(|(_, external)| *external) {
            continue;
        }
        let users = super::network::users(g, &n.name);
        if !users.is_empty() {
            println!("network {}: kept (in use by {})", n.name, users.join(", "));
            continue;
        }
        // The bridge and its rules are in wrend's network namespace.
        super::network::in_wrends_netns(g, || store::remove(&g.records, &n.name, users))?
            .map_err(|e| CliError::chain(&e))?;
        println!("network {}: removed", n.name);
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(y: &str) -> ComposeFile {
        serde_saphyr::from_str::<Ext<ComposeFile>>(y).unwrap().0
    }

    #[test]
    fn profiles_leave_out_inactive_services_and_name_what_needs_them() {
        let y =
            "services:\n  app:\n    image: a\n  debug:\n    image: a\n    profiles: [debug, all]\n";
        let mut f = file(y);
        let off = apply_profiles(&mut f, &[]).unwrap();
        assert_eq!(off.into_iter().collect::<Vec<_>>(), ["debug"]);
        assert_eq!(f.services.keys().collect::<Vec<_>>(), ["app"]);
        for active in [["all"], ["*"]] {
            let mut f = file(y);
            assert!(apply_profiles(&mut f, &active.map(String::from))
                .unwrap()
                .is_empty());
            assert_eq!(f.services.len(), 2);
        }
        let mut f = file("services:\n  app:\n    image: a\n    depends_on: [debug]\n  debug:\n    image: a\n    profiles: [debug]\n");
        let e = apply_profiles(&mut f, &[]).unwrap_err();
        assert!(
            e.contains("services.app.depends_on: debug is only in profile(s) debug"),
            "{e}"
        );
        let mut f = file("services:\n  debug:\n    image: a\n    profiles: [debug]\n");
        assert!(apply_profiles(&mut f, &[])
            .unwrap_err()
            .contains("none is active"));
    }

    #[test]
    fn a_link_to_a_service_changes_that_services_hash() {
        let d = Path::new("/nonexistent");
        let plain = file("services:\n  web:\n    image: i\n  db:\n    image: i\n");
        let linked = file(
            "services:\n  web:\n    image: i\n    links: [\"db:database\"]\n  db:\n    image: i\n",
        );
        let bare = file("services:\n  web:\n    image: i\n    links: [db]\n  db:\n    image: i\n");
        let h = |f: &ComposeFile| service_hash("db", &f.services["db"], d, "p", f);
        assert_ne!(h(&plain), h(&linked));
        // A link without an alias adds no name: db is unchanged.
        assert_eq!(h(&plain), h(&bare));
        let f = file("services:\n  web:\n    image: i\n    links: [nope]\n");
        let e = check(&f, "p", Path::new("c.yaml")).unwrap_err().message;
        assert!(e.contains("services.web.links: no service \"nope\""), "{e}");
    }

    #[test]
    fn renaming_a_services_network_changes_its_hash_and_nothing_else_does() {
        let d = Path::new("/nonexistent");
        let hash = |y: &str| {
            let f = file(y);
            service_hash("a", &f.services["a"], d, "p", &f)
        };
        let plain = "services:\n  a:\n    image: i\n    networks: [back]\nnetworks:\n  back:\n";
        // As an older wren hashed it: the settings alone.
        let f = file(plain);
        let old = wren_images::store::sha256(&serde_json::to_vec(&f.services["a"]).unwrap());
        assert_eq!(hash(plain), old);
        let named = format!("{plain}    name: shared\n");
        let renamed = format!("{plain}    name: other\n");
        assert_ne!(hash(&named), old);
        assert_ne!(hash(&named), hash(&renamed));
        // The default network too, once the file names it.
        let default = "services:\n  a:\n    image: i\n";
        let f = file(default);
        let old = wren_images::store::sha256(&serde_json::to_vec(&f.services["a"]).unwrap());
        assert_eq!(hash(default), old);
        assert_ne!(
            hash(&format!(
                "{default}networks:\n  default: {{external: true, name: proxy}}\n"
            )),
            old
        );
    }
}
