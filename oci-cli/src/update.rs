//! `wren-oci update`: new resource limits for a running container, from a
//! LinuxResources JSON (`--resources FILE|-`, what containerd passes) or
//! from per-resource flags. Runs in the `wren-oci` process.

use oci_spec::runtime::LinuxResources;
use serde_json::{json, Map, Value};

use crate::cli::{Global, Update};
use crate::{load, Usage};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

pub fn update(g: &Global, u: Update) -> Result<()> {
    if u.l3_cache_schema.is_some() || u.mem_bw_schema.is_some() {
        let flag = if u.l3_cache_schema.is_some() {
            "--l3-cache-schema"
        } else {
            "--mem-bw-schema"
        };
        crate::refuse("update", flag, "wren has no Intel RDT support")?;
    }
    if u.kernel_memory.is_some() || u.kernel_memory_tcp.is_some() {
        eprintln!("wren-oci: update: kernel memory limits are ignored (as runc does)");
    }
    let patch = patch(&u);
    let resources: LinuxResources = match &u.resources {
        Some(f) => {
            // runc silently ignores the flags next to a file; say so.
            if let Some(flag) = patch.keys().next() {
                return Err(Usage(format!(
                    "update: --resources cannot be combined with per-resource flags ({flag})"
                ))
                .into());
            }
            let data = if f == "-" {
                let mut s = Vec::new();
                std::io::Read::read_to_end(&mut std::io::stdin(), &mut s)?;
                s
            } else {
                std::fs::read(f).map_err(|e| format!("read {f}: {e}"))?
            };
            serde_json::from_slice(&data).map_err(|e| format!("parse resources: {e}"))?
        }
        None => serde_json::from_value(sections(&patch))?,
    };
    load(g, &u.id)?.update(&resources)?;
    Ok(())
}

/// The flags given, by flag name, as (section, key, value) of
/// LinuxResources.
fn patch(u: &Update) -> Map<String, Value> {
    let mut m = Map::new();
    let mut put = |flag: &str, section: &str, key: &str, v: Option<Value>| {
        if let Some(v) = v {
            m.insert(flag.to_string(), json!([section, key, v]));
        }
    };
    let n = |v: Option<i64>| v.map(Value::from);
    let un = |v: Option<u64>| v.map(Value::from);
    let s = |v: &Option<String>| v.clone().map(Value::from);
    put("--memory", "memory", "limit", n(u.memory));
    put(
        "--memory-reservation",
        "memory",
        "reservation",
        n(u.memory_reservation),
    );
    put("--memory-swap", "memory", "swap", n(u.memory_swap));
    put("--cpu-share", "cpu", "shares", un(u.cpu_share));
    put("--cpu-quota", "cpu", "quota", n(u.cpu_quota));
    put("--cpu-period", "cpu", "period", un(u.cpu_period));
    put("--cpu-burst", "cpu", "burst", un(u.cpu_burst));
    put(
        "--cpu-rt-period",
        "cpu",
        "realtimePeriod",
        un(u.cpu_rt_period),
    );
    put(
        "--cpu-rt-runtime",
        "cpu",
        "realtimeRuntime",
        n(u.cpu_rt_runtime),
    );
    put("--cpu-idle", "cpu", "idle", n(u.cpu_idle));
    put("--cpuset-cpus", "cpu", "cpus", s(&u.cpuset_cpus));
    put("--cpuset-mems", "cpu", "mems", s(&u.cpuset_mems));
    put("--pids-limit", "pids", "limit", n(u.pids_limit));
    put(
        "--blkio-weight",
        "blockIO",
        "weight",
        u.blkio_weight.map(Value::from),
    );
    m
}

/// The patch as a LinuxResources JSON object.
fn sections(patch: &Map<String, Value>) -> Value {
    let mut out = json!({});
    for v in patch.values() {
        let (section, key) = (v[0].as_str().unwrap_or(""), v[1].as_str().unwrap_or(""));
        out[section][key] = v[2].clone();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{self, Command};

    fn update_of(args: &[&str]) -> Update {
        let argv = ["wren-oci", "update"]
            .into_iter()
            .chain(args.iter().copied());
        match cli::parse(argv).unwrap().command {
            Some(Command::Update(u)) => *u,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn flags_become_linux_resources() {
        let u = update_of(&[
            "--memory=64m",
            "--cpu-shares",
            "512",
            "--cpu-quota",
            "-1",
            "--cpuset-cpus",
            "0",
            "--pids-limit=10",
            "--blkio-weight",
            "500",
            "c",
        ]);
        let r: LinuxResources = serde_json::from_value(sections(&patch(&u))).unwrap();
        assert_eq!(r.memory().as_ref().unwrap().limit(), Some(64 << 20));
        let cpu = r.cpu().as_ref().unwrap();
        assert_eq!((cpu.shares(), cpu.quota()), (Some(512), Some(-1)));
        assert_eq!(cpu.cpus().as_deref(), Some("0"));
        assert_eq!(r.pids().as_ref().unwrap().limit(), 10);
        assert_eq!(r.block_io().as_ref().unwrap().weight(), Some(500));
        assert!(patch(&update_of(&["-r", "-", "c"])).is_empty());
    }
}
