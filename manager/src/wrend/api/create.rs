//! `Create` (`wren create`, `wren run`): the request checked before anything
//! is made, the bundle written, the record saved, the shim launched and the
//! task created (and started, for `run -d`) while the network helper
//! attaches it; answered when both are done. A failure leaves nothing.
//!
//! Runs in wrend's loop thread.

use std::path::{Path, PathBuf};

/// A container's overlay upper and work dirs, inside its record directory.
pub const OVERLAY_UPPER: &str = "overlay/upper";
pub const OVERLAY_WORK: &str = "overlay/work";
/// The request a container was made with (protobuf, `start` cleared), in
/// its record directory: `wren checkpoint` puts a copy in the checkpoint
/// so `wren restore` can make the container again under any name.
pub const CREATE_REQUEST: &str = "create-request.pb";

use serde_json::Value;
use wren_protocol::manager as api;

use crate::wrend::config;
use crate::wrend::error::ManagerError;
use crate::wrend::event_log::now_nanos;
use crate::wrend::network::Then;
use crate::wrend::record::Record;
use crate::wrend::registry::Registry;
use crate::wrend::restart_policy::RestartPolicy;
use crate::wrend::spec;
use wren_runtime::timing;
use wren_ttrpc::server::Responder;

impl Registry {
    /// `Create`: answered at once if it is refused, else when the task
    /// is created (and started) and the container attached.
    pub fn create_request(&mut self, req: api::CreateRequest, responder: Responder) {
        if let Err(e) = self.create(req, responder) {
            // `create` hands the responder on only once nothing can fail
            // before the helper.
            e.send();
        }
    }

    fn create(&mut self, req: api::CreateRequest, responder: Responder) -> Result<(), Refused> {
        let name = req.name.clone();
        timing::mark(&name, "wrend.create");
        let start = req.start;
        if let Err(e) = self.create_record(req) {
            return Err(Refused(e, responder));
        }
        // The rest (start, answer; undo on a failure) follows the attach:
        // [`crate::wrend::network`]'s `after_attach`.
        self.create_task_then(&name, Then::Create { start, responder });
        Ok(())
    }

    /// The checked request's bundle, record and network settings, without
    /// a task (`create` then creates it; a restore creates it from a
    /// checkpoint). A failure leaves nothing.
    pub(crate) fn create_record(&mut self, req: api::CreateRequest) -> Result<(), ManagerError> {
        let name = req.name.clone();
        // A detach of an earlier container of that name may still run.
        self.settle(&name);
        if self.containers.contains_key(name.as_str()) {
            return Err(ManagerError::AlreadyExists(name));
        }
        if !(req.pid_mode.is_empty() && req.ipc_mode.is_empty() && req.uts_mode.is_empty())
            || req.network.contains(':')
        {
            self.joined_exist(&req)?;
        }
        let checked = validate_create(&req).and_then(|(policy, mut spec)| {
            if spec["linux"]["cgroupsPath"].is_null() {
                spec["linux"]["cgroupsPath"] = Value::from(self.cfg.cgroups_path(&name));
            }
            if !req.ipc_mode.is_empty() {
                self.shared_shm(&req, &mut spec);
            }
            let mut net = crate::wrend::network::prepare(&self.cfg, &req, &mut spec)?;
            if let Some(other) = crate::network::joined(&req.uts_mode) {
                self.join_uts(other, &mut spec, net.as_mut())?;
            }
            let health = crate::wrend::health::HealthConfig::from_request(&req)?;
            Ok((policy, spec, net, health))
        });
        let (policy, spec, net, health) = checked?;
        let terminal = spec["process"]["terminal"].as_bool().unwrap_or(false);
        let record_dir = self.cfg.record_dir(&name);
        let bundle = record_dir.join("bundle");
        let image = !req.image_layers.is_empty();
        let written = std::fs::create_dir_all(&bundle)
            .and_then(|()| {
                if image {
                    // The overlay's mount point, and its upper and work dirs
                    // beside the bundle (removed with the container).
                    std::fs::create_dir_all(bundle.join("rootfs"))?;
                    std::fs::create_dir_all(record_dir.join(OVERLAY_UPPER))?;
                    std::fs::create_dir_all(record_dir.join(OVERLAY_WORK))
                } else {
                    Ok(())
                }
            })
            .and_then(|()| std::fs::create_dir_all(self.cfg.container_state_dir(&name)))
            .and_then(|()| {
                std::fs::write(
                    bundle.join("config.json"),
                    serde_json::to_vec_pretty(&spec).unwrap_or_default(),
                )
            })
            .and_then(|()| match &net {
                Some(n) => crate::wrend::network::save(&record_dir, n),
                None => Ok(()),
            })
            .and_then(|()| {
                let mut saved = req.clone();
                saved.start = false;
                let bytes =
                    protobuf::Message::write_to_bytes(&saved).map_err(std::io::Error::other)?;
                std::fs::write(record_dir.join(CREATE_REQUEST), bytes)
            });
        if let Err(source) = written {
            self.remove_files(&name);
            let e = ManagerError::Io {
                name,
                what: "write bundle",
                path: bundle,
                source,
            };
            return Err(e);
        }
        let rec = Record {
            name: name.clone(),
            bundle,
            source: if !req.image.is_empty() {
                req.image.clone()
            } else if req.bundle.is_empty() {
                req.rootfs
            } else {
                req.bundle
            },
            image: req.image,
            image_id: req.image_id,
            image_layers: req.image_layers.iter().map(PathBuf::from).collect(),
            stop_signal: req.stop_signal,
            stop_timeout: req.stop_timeout,
            labels: req.labels,
            log_max_size: req.log_max_size,
            log_max_files: req.log_max_files,
            network: net.as_ref().map(|n| n.network.clone()).unwrap_or_default(),
            ports: net
                .as_ref()
                .map(|n| n.ports.iter().map(|p| p.to_string()).collect())
                .unwrap_or_default(),
            pid_mode: if crate::network::joined(&req.pid_mode).is_some() {
                req.pid_mode.clone()
            } else {
                String::new()
            },
            uts_mode: if crate::network::joined(&req.uts_mode).is_some() {
                req.uts_mode.clone()
            } else {
                String::new()
            },
            ipc_mode: if req.ipc_mode == "shareable"
                || crate::network::joined(&req.ipc_mode).is_some()
            {
                req.ipc_mode.clone()
            } else {
                String::new()
            },
            shm_size: if req.ipc_mode == "shareable" {
                req.shm_size
            } else {
                0
            },
            health: health.map(Box::new),
            restart_policy: policy.to_string(),
            start_at_boot: req.start_at_boot || policy.starts_at_boot(),
            auto_remove: req.auto_remove,
            terminal,
            stdin: req.stdin || terminal,
            created_at: now_nanos(),
            ..Record::default()
        };
        self.containers
            .insert(name.as_str().into(), self.new_managed(rec));
        self.save(&name);
        Ok(())
    }
}

impl Registry {
    /// The containers a request joins exist, and one whose IPC it joins
    /// is shareable.
    #[cold]
    #[inline(never)]
    fn joined_exist(&self, req: &api::CreateRequest) -> Result<(), ManagerError> {
        for (ns, mode) in [
            ("network", &req.network),
            ("pid", &req.pid_mode),
            ("ipc", &req.ipc_mode),
            ("uts", &req.uts_mode),
        ] {
            if let Some(other) = crate::network::joined(mode) {
                let Some(o) = self.containers.get(other) else {
                    return Err(ManagerError::InvalidArgument(format!(
                        "{mode}: no such container {other}"
                    )));
                };
                if ns == "ipc" && o.rec.ipc_mode != "shareable" {
                    return Err(ManagerError::InvalidArgument(format!(
                        "--ipc {mode}: {other}'s IPC is private: make {other} with \
                         --ipc shareable to share it"
                    )));
                }
                if let Some(next) = crate::network::joined(&o.rec.uts_mode).filter(|_| ns == "uts")
                {
                    return Err(ManagerError::InvalidArgument(format!(
                        "--uts {mode}: {other} is in the UTS namespace of {next}: join {next}'s"
                    )));
                }
            }
        }
        Ok(())
    }

    /// `--ipc shareable` and `--ipc container:X`: /dev/shm is a bind of
    /// the shareable container's tmpfs outside it ([`Self::mount_shm`]),
    /// which a bind from outside can reach (a tmpfs inside its mount
    /// namespace could not be).
    #[cold]
    #[inline(never)]
    fn shared_shm(&self, req: &api::CreateRequest, spec: &mut Value) {
        let owner = match crate::network::joined(&req.ipc_mode) {
            Some(other) => other,
            None if req.ipc_mode == "shareable" => req.name.as_str(),
            None => return,
        };
        if let Some(m) = spec["mounts"]
            .as_array_mut()
            .and_then(|a| a.iter_mut().find(|m| m["destination"] == "/dev/shm"))
        {
            *m = serde_json::json!({
                "destination": "/dev/shm", "type": "bind", "source": self.cfg.shm_dir(owner),
                "options": ["rbind", "nosuid", "noexec", "nodev"],
            });
        }
    }

    /// `--uts container:X`: the spec keeps its UTS namespace entry
    /// (pointed at X's init at each task creation, as the other joins) and
    /// sets no hostname, which would rename X; /etc/hostname and the
    /// container's own names say X's hostname, as X's own net request has
    /// it (the host's when X has the host's UTS namespace, its network
    /// owner's when X joins another's network).
    #[cold]
    #[inline(never)]
    fn join_uts(
        &self,
        other: &str,
        spec: &mut Value,
        net: Option<&mut crate::network::NetRequest>,
    ) -> Result<(), ManagerError> {
        let theirs =
            crate::network::NetRequest::load(&self.cfg.record_dir(other)).map_err(|_| {
                ManagerError::InvalidArgument(format!(
                    "--uts container:{other}: {other} is a bundle container, whose hostname \
                     is its config.json's"
                ))
            })?;
        if let Some(o) = spec.as_object_mut() {
            o.remove("hostname");
        }
        if let Some(n) = net {
            n.hostname = theirs.hostname;
        }
        Ok(())
    }
}

/// A `Create` refused before anything was made, with its caller.
struct Refused(ManagerError, Responder);

impl Refused {
    fn send(self) {
        // The spec was built in memory.
        crate::wrend::health::give_back_heap();
        self.1.send(Err(self.0.to_status()));
    }
}

/// Everything about a Create request that can be checked before anything is
/// made: the name, the restart policy, bundle vs rootfs, and the spec built
/// from them with the request's overrides. Touches nothing but reads of the
/// bundle's config.json and the rootfs path; the `wrend_request` fuzz target
/// runs it on arbitrary requests.
pub fn validate_create(req: &api::CreateRequest) -> Result<(RestartPolicy, Value), ManagerError> {
    let name = &req.name;
    if !config::valid_name(name) {
        return Err(ManagerError::InvalidArgument(format!(
            "invalid container name {name:?}: use 1-64 of [A-Za-z0-9_.-], starting with a letter or digit"
        )));
    }
    let policy = RestartPolicy::parse(&req.restart_policy)
        .map_err(|e| ManagerError::InvalidArgument(e.to_string()))?;
    let sources = [
        !req.bundle.is_empty(),
        !req.rootfs.is_empty(),
        !req.image_layers.is_empty(),
    ];
    if sources.iter().filter(|s| **s).count() != 1 {
        return Err(ManagerError::InvalidArgument(
            "give exactly one of a bundle, a rootfs or an image".into(),
        ));
    }
    if let Some(l) = req.image_layers.iter().find(|l| !l.starts_with('/')) {
        return Err(ManagerError::InvalidArgument(format!(
            "image layer {l:?} is not an absolute path"
        )));
    }
    if req.log_max_files > crate::logfile::READ_KEEP {
        return Err(ManagerError::InvalidArgument(format!(
            "log_max_files {}: at most {} (wren logs reads no further)",
            req.log_max_files,
            crate::logfile::READ_KEEP
        )));
    }
    if !(req.pid_mode.is_empty() && req.ipc_mode.is_empty() && req.uts_mode.is_empty())
        || crate::network::joined(&req.network).is_some()
    {
        namespace_modes(req)?;
    }
    // --cgroup-parent: the container's cgroup there (a bundle's own
    // cgroupsPath too); else wrend's parent, unless the bundle names one.
    let cgroups_path = if req.cgroup_parent.is_empty() {
        None
    } else {
        crate::paths::check_cgroup_parent(&req.cgroup_parent).map_err(|why| {
            ManagerError::InvalidArgument(format!("cgroup_parent {:?}: {why}", req.cgroup_parent))
        })?;
        Some(crate::paths::cgroups_path(&req.cgroup_parent, name))
    };
    if req.auto_remove && policy != RestartPolicy::No {
        return Err(ManagerError::InvalidArgument(
            "--rm cannot be combined with a restart policy".into(),
        ));
    }
    let overrides = spec::Overrides {
        args: req.args.clone(),
        env: req.env.clone(),
        cwd: req.cwd.clone(),
        terminal: req.terminal,
        hostname: if req.hostname.is_empty() {
            name.clone()
        } else {
            req.hostname.clone()
        },
        image: spec::ImageOverrides {
            user: req
                .has_user
                .then(|| (req.uid, req.gid, req.additional_gids.clone())),
            mounts: req
                .mounts
                .iter()
                .map(|m| {
                    (
                        m.type_.clone(),
                        m.source.clone(),
                        m.destination.clone(),
                        m.options.clone(),
                    )
                })
                .collect(),
            read_only: req.read_only,
            memory: req.memory,
            pids_limit: req.pids_limit,
            cap_add: req.cap_add.clone(),
            cap_drop: req.cap_drop.clone(),
            cpus: req.cpus,
            cpu_shares: req.cpu_shares,
            seccomp: req.seccomp.clone(),
            privileged: req.privileged,
            init: req.init,
            devices: req.devices.clone(),
            device_cgroup_rules: req.device_cgroup_rules.clone(),
            ulimits: req.ulimits.clone(),
            sysctls: req.sysctls.clone(),
            shm_size: req.shm_size,
            memory_swap: req.memory_swap,
            memory_reservation: req.memory_reservation,
            cpuset_cpus: req.cpuset_cpus.clone(),
            cpuset_mems: req.cpuset_mems.clone(),
            oom_score_adj: req.oom_score_adj_set.then_some(req.oom_score_adj),
            host_network: req.network == "host",
            joined_network: crate::network::joined(&req.network).is_some(),
            joined_ipc: crate::network::joined(&req.ipc_mode).is_some(),
            joined_uts: crate::network::joined(&req.uts_mode).is_some(),
            host_pid: req.pid_mode == "host",
            host_ipc: req.ipc_mode == "host",
            host_uts: req.uts_mode == "host",
            no_new_privileges: match req.no_new_privileges.as_str() {
                "" => None,
                "true" => Some(true),
                "false" => Some(false),
                other => {
                    return Err(ManagerError::InvalidArgument(format!(
                        "no_new_privileges {other:?}: want \"true\" or \"false\""
                    )))
                }
            },
        },
    };
    let built = if !req.image_layers.is_empty() {
        // The shim mounts the overlay on <bundle>/rootfs; the spec names it
        // relative to the bundle, so nothing needs to exist yet.
        spec::build_image(Path::new("rootfs"), &overrides)
    } else {
        let bundle_src = (!req.bundle.is_empty()).then(|| PathBuf::from(&req.bundle));
        let rootfs_src = (!req.rootfs.is_empty()).then(|| PathBuf::from(&req.rootfs));
        spec::build(bundle_src.as_deref(), rootfs_src.as_deref(), &overrides)
    };
    let mut spec = built.map_err(|source| ManagerError::Spec {
        name: name.clone(),
        source,
    })?;
    if let Some(p) = cgroups_path {
        spec["linux"]["cgroupsPath"] = Value::from(p);
    }
    Ok((policy, spec))
}

/// The request's `pid_mode`, `ipc_mode` and `uts_mode`, and the
/// containers it joins (checked against the registry by `create_record`).
/// Cold, out of line: most requests set none.
#[cold]
#[inline(never)]
fn namespace_modes(req: &api::CreateRequest) -> Result<(), ManagerError> {
    for (flag, mode) in [
        ("pid_mode", &req.pid_mode),
        ("ipc_mode", &req.ipc_mode),
        ("uts_mode", &req.uts_mode),
    ] {
        let joins = crate::network::joined(mode).is_some();
        let shareable = flag == "ipc_mode" && mode == "shareable";
        if !joins && !shareable && !matches!(mode.as_str(), "" | "private" | "host") {
            let want = match flag {
                "pid_mode" => "\"private\", \"host\" or \"container:NAME\"",
                "ipc_mode" => "\"private\", \"host\", \"shareable\" or \"container:NAME\"",
                _ => "\"private\", \"host\" or \"container:NAME\"",
            };
            return Err(ManagerError::InvalidArgument(format!(
                "{flag} {mode:?}: want {want}"
            )));
        }
    }
    if req.shm_size > 0 && crate::network::joined(&req.ipc_mode).is_some() {
        return Err(ManagerError::InvalidArgument(format!(
            "shm_size: a container with ipc_mode {:?} uses that container's /dev/shm",
            req.ipc_mode
        )));
    }
    if !req.hostname.is_empty() && crate::network::joined(&req.uts_mode).is_some() {
        return Err(ManagerError::InvalidArgument(format!(
            "hostname: a container with uts_mode {:?} has that container's hostname",
            req.uts_mode
        )));
    }
    for (flag, mode) in [
        ("network", &req.network),
        ("pid_mode", &req.pid_mode),
        ("ipc_mode", &req.ipc_mode),
        ("uts_mode", &req.uts_mode),
    ] {
        if let Some(other) = crate::network::joined(mode) {
            if !config::valid_name(other) {
                return Err(ManagerError::InvalidArgument(format!(
                    "{flag} {mode:?}: {other:?} is not a container name"
                )));
            }
            if other == req.name.as_str() {
                return Err(ManagerError::InvalidArgument(format!(
                    "{flag} {mode:?}: a container cannot join its own namespace"
                )));
            }
            if !req.bundle.is_empty() {
                return Err(ManagerError::InvalidArgument(format!(
                    "{flag} {mode:?}: a bundle container's namespaces are its config.json's"
                )));
            }
        }
    }
    Ok(())
}
