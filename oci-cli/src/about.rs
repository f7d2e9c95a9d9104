//! What this runtime is and what it starts from: `features` (runc's
//! features JSON), `version`, and `spec` (a default config.json). Runs in
//! the `wren-oci` process.

use std::process::ExitCode;

use crate::cli::Spec;
use crate::{refuse, Usage};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

pub fn version() -> Result<ExitCode> {
    println!("wren-oci version {}", env!("CARGO_PKG_VERSION"));
    println!("spec: {}", wren_runtime::spec::OCI_VERSION);
    Ok(ExitCode::SUCCESS)
}

pub fn spec(s: Spec) -> Result<()> {
    if s.rootless {
        refuse(
            "spec",
            "--rootless",
            "write the user namespace mappings by hand",
        )?;
    }
    let path = s.bundle.join("config.json");
    if path.exists() {
        return Err(Usage(format!("{} exists; remove it first", path.display())).into());
    }
    let spec = wren_runtime::spec::example(&["sh".into()], true);
    std::fs::write(&path, serde_json::to_string_pretty(&spec)?)?;
    Ok(())
}

pub fn features() -> Result<()> {
    println!("{}", serde_json::to_string_pretty(&features_json())?);
    Ok(())
}

fn features_json() -> serde_json::Value {
    serde_json::json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": wren_runtime::spec::OCI_VERSION,
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
        "mountOptions": ["async", "atime", "bind", "defaults", "dev", "diratime", "dirsync", "exec", "idmap", "iversion",
            "lazytime", "loud", "mand", "noatime", "nodev", "nodiratime", "noexec", "noiversion", "nolazytime",
            "nomand", "norelatime", "nostrictatime", "nosuid", "nosymfollow", "private", "ratime", "rbind", "rdev",
            "rdiratime", "relatime", "remount", "rexec", "ridmap", "rnoatime", "rnodev", "rnodiratime", "rnoexec",
            "rnorelatime", "rnostrictatime", "rnosuid", "rnosymfollow", "ro", "rprivate", "rrelatime", "rro", "rrw",
            "rshared", "rslave", "rstrictatime", "rsuid", "rsymfollow", "runbindable", "rw", "shared", "silent",
            "slave", "strictatime", "suid", "symfollow", "sync", "tmpcopyup", "unbindable"],
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"],
            "capabilities": (0..=wren_runtime::capabilities::last_cap().unwrap_or(40)).map(wren_runtime::capabilities::name).collect::<Vec<_>>(),
            "cgroup": {"v1": true, "v2": true, "systemd": false, "systemdUser": false, "rdma": false},
            "seccomp": {"enabled": true, "actions": ["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL",
                "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY", "SCMP_ACT_TRACE", "SCMP_ACT_TRAP"],
                "operators": ["SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_LE", "SCMP_CMP_LT", "SCMP_CMP_MASKED_EQ", "SCMP_CMP_NE"]},
            "apparmor": {"enabled": wren_runtime::lsm::apparmor_enabled()},
            "selinux": {"enabled": wren_runtime::lsm::selinux_enabled()},
            "intelRdt": {"enabled": false},
            "mountExtensions": {"idmap": {"enabled": true}},
            "memoryPolicy": {"modes": ["MPOL_DEFAULT", "MPOL_BIND", "MPOL_INTERLEAVE", "MPOL_WEIGHTED_INTERLEAVE",
                "MPOL_PREFERRED", "MPOL_PREFERRED_MANY", "MPOL_LOCAL"],
                "flags": ["MPOL_F_NUMA_BALANCING", "MPOL_F_RELATIVE_NODES", "MPOL_F_STATIC_NODES"]}
        },
        "annotations": {"io.github.wren.version": env!("CARGO_PKG_VERSION")}
    })
}
