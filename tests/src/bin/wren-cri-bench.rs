//! `make bench`'s CRI figures: Kubernetes-style pod starts through
//! containerd's CRI plugin, wren's runtime handler against runc's
//! (containerd's own runc shim and runc) in the same containerd,
//! alternating, under every containerd of the matrix (the host's 1.6,
//! trixie's 1.7, sid's 2.1). A pod start is what the kubelet waits for:
//! RunPodSandbox (the pause container) + CreateContainer + StartContainer
//! of one app container with the RuntimeDefault seccomp profile, on the
//! node's network (so CNI, the same for both, does not blur the runtimes'
//! difference). Stop and removal are not timed.
//!
//! Prints one JSON document of raw samples on stdout; scripts/bench turns
//! it into the report's rows. Root only; starts and removes its own
//! containerds. Built only with the `cri-bench` feature (see Cargo.toml).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::*;
use serde_json::{json, Value};
use tonic::transport::Channel;
use wren_tests::cri::Cri;

const HANDLERS: [&str; 2] = ["runc", "wren"];

struct Args {
    n: usize,
    warmup: usize,
    pods: usize,
    parallel: usize,
    rounds: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        n: 20,
        warmup: 2,
        pods: 20,
        parallel: 4,
        rounds: 2,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it
            .next()
            .ok_or_else(|| format!("{flag} needs a value"))?
            .parse::<usize>()
            .map_err(|e| format!("{flag}: {e}"))?;
        match flag.as_str() {
            "--n" => a.n = value,
            "--warmup" => a.warmup = value,
            "--pods" => a.pods = value,
            "--parallel" => a.parallel = value.max(1),
            "--rounds" => a.rounds = value,
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(a)
}

/// The app container: a sleeping busybox with the RuntimeDefault profile.
fn app_config(cri: &Cri, name: &str) -> ContainerConfig {
    let mut c = cri.container_config(name, &["sleep", "100000"]);
    c.linux = Some(LinuxContainerConfig {
        resources: None,
        security_context: Some(LinuxContainerSecurityContext {
            seccomp: Some(SecurityProfile {
                profile_type: security_profile::ProfileType::RuntimeDefault as i32,
                localhost_ref: String::new(),
            }),
            ..Default::default()
        }),
    });
    c
}

/// Starts one pod with its app container; returns (pod id, latency).
async fn start_pod(
    mut rs: RuntimeServiceClient<Channel>,
    pod: PodSandboxConfig,
    app: ContainerConfig,
    handler: &str,
) -> Result<(String, Duration), tonic::Status> {
    let t = Instant::now();
    let id = rs
        .run_pod_sandbox(RunPodSandboxRequest {
            config: Some(pod.clone()),
            runtime_handler: handler.into(),
        })
        .await?
        .into_inner()
        .pod_sandbox_id;
    let cid = rs
        .create_container(CreateContainerRequest {
            pod_sandbox_id: id.clone(),
            config: Some(app),
            sandbox_config: Some(pod),
        })
        .await?
        .into_inner()
        .container_id;
    rs.start_container(StartContainerRequest { container_id: cid })
        .await?;
    Ok((id, t.elapsed()))
}

async fn remove_pod(
    mut rs: RuntimeServiceClient<Channel>,
    id: String,
) -> Result<(), tonic::Status> {
    rs.stop_pod_sandbox(StopPodSandboxRequest {
        pod_sandbox_id: id.clone(),
    })
    .await?;
    rs.remove_pod_sandbox(RemovePodSandboxRequest { pod_sandbox_id: id })
        .await?;
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// One pod at a time, alternating handlers: latency samples per handler.
fn sequential(cri: &Cri, a: &Args) -> Result<Value, String> {
    let mut samples: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    for i in 0..a.warmup + a.n {
        let order = if i % 2 == 0 { [0, 1] } else { [1, 0] };
        for h in order {
            let handler = HANDLERS[h];
            let pod = cri.pod_config(&format!("seq{i}-{handler}"));
            let app = app_config(cri, "app");
            let (id, took) = cri
                .block(start_pod(cri.rs(), pod, app, handler))
                .map_err(|e| format!("{handler}: pod start: {}", e.message()))?;
            cri.block(remove_pod(cri.rs(), id))
                .map_err(|e| format!("{handler}: pod removal: {}", e.message()))?;
            if i >= a.warmup {
                samples[h].push(ms(took));
            }
        }
    }
    Ok(json!({"runc": samples[0], "wren": samples[1]}))
}

/// `pods` pods started `parallel` at a time: total ms per round and handler.
fn batch(cri: &Cri, a: &Args) -> Result<Value, String> {
    let mut totals: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    for round in 0..a.rounds {
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for h in order {
            let handler = HANDLERS[h];
            let configs: Vec<(PodSandboxConfig, ContainerConfig)> = (0..a.pods)
                .map(|p| {
                    (
                        cri.pod_config(&format!("batch{round}-{p}-{handler}")),
                        app_config(cri, "app"),
                    )
                })
                .collect();
            let configs = Arc::new(configs);
            let next = Arc::new(AtomicUsize::new(0));
            let t = Instant::now();
            let started: Result<Vec<String>, tonic::Status> = cri.block(async {
                let mut set = tokio::task::JoinSet::new();
                for _ in 0..a.parallel {
                    let (rs, configs, next) = (cri.rs(), configs.clone(), next.clone());
                    set.spawn(async move {
                        let mut ids = Vec::new();
                        loop {
                            let i = next.fetch_add(1, Ordering::SeqCst);
                            let Some((pod, app)) = configs.get(i) else {
                                return Ok::<_, tonic::Status>(ids);
                            };
                            ids.push(
                                start_pod(rs.clone(), pod.clone(), app.clone(), handler)
                                    .await?
                                    .0,
                            );
                        }
                    });
                }
                let mut all = Vec::new();
                while let Some(r) = set.join_next().await {
                    all.extend(r.map_err(|e| tonic::Status::internal(e.to_string()))??);
                }
                Ok(all)
            });
            let took = t.elapsed();
            let ids = started.map_err(|e| format!("{handler}: batch start: {}", e.message()))?;
            for id in ids {
                cri.block(remove_pod(cri.rs(), id))
                    .map_err(|e| format!("{handler}: pod removal: {}", e.message()))?;
            }
            totals[h].push(ms(took));
        }
    }
    Ok(json!({"pods": a.pods, "parallel": a.parallel, "runc": totals[0], "wren": totals[1]}))
}

/// The tree of `suite`, when it has been built.
fn tree(suite: &str) -> Option<PathBuf> {
    let base = std::env::var_os("WREN_TREES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp/wren-trees"));
    let t = base.join(suite);
    t.join(".complete").exists().then_some(t)
}

fn containerd_version(tree: Option<&Path>) -> String {
    match tree {
        Some(t) => wren_tests::tree::containerd_version(t),
        None => {
            let out = wren_tests::run(std::process::Command::new("containerd").arg("--version"));
            wren_tests::text(&out.stdout)
                .split_whitespace()
                .nth(2)
                .unwrap_or("unknown")
                .to_string()
        }
    }
}

fn main() {
    let a = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("wren-cri-bench: {e}");
            std::process::exit(2);
        }
    };
    // Containers whose shim exits reparent to us: reap them.
    // SAFETY: integer prctl.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    let mut suites = Vec::new();
    for suite in wren_tests::tree::MATRIX {
        let label = wren_tests::tree::label(suite).to_string();
        let t = match suite {
            None => None,
            Some(s) => match tree(s) {
                Some(t) => Some(t),
                None => {
                    suites.push(json!({"suite": label, "not_measured":
                        format!("the {s} tree is not built (scripts/debian-tree.sh {s})")}));
                    continue;
                }
            },
        };
        eprintln!("wren-cri-bench: containerd of {label}");
        let version = containerd_version(t.as_deref());
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let cri = Cri::start_in(t.as_deref(), &format!("bench-{label}"));
            let seq = sequential(&cri, &a)?;
            let batch = batch(&cri, &a)?;
            Ok::<_, String>((seq, batch))
        }));
        suites.push(match result {
            Ok(Ok((seq, batch))) => json!({"suite": label, "containerd": version,
                                            "pod_start": seq, "batch": batch}),
            Ok(Err(e)) => json!({"suite": label, "containerd": version, "not_measured": e}),
            Err(_) => json!({"suite": label, "containerd": version,
                             "not_measured": "the private containerd failed (see stderr)"}),
        });
        wren_tests::reap();
    }
    println!(
        "{}",
        json!({"n": a.n, "warmup": a.warmup, "suites": suites})
    );
}
