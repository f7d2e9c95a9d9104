//! What this runtime is and what it starts from: `features` (runc's
//! features JSON, from `wren_runtime::features`), `version`, and `spec` (a default config.json). Runs in
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
    println!(
        "{}",
        serde_json::to_string_pretty(&wren_runtime::features::json())?
    );
    Ok(())
}
