//! runc as the reference: a private `runc` (own `--root`) that runs the same
//! bundles as the tests' `wren-oci`, so a test can compare both on one
//! bundle in one run. Debian's runc (installed by CI) is used; a missing
//! runc is recorded as a skip of the comparison.
//!
//! Runs in the test processes only.

use std::path::PathBuf;
use std::process::{Command, Output};

use crate::{reap, run, skip, text, Bundle, Skip};

/// A runc with its own state root and a unique id prefix.
pub struct Runc {
    pub root: tempfile::TempDir,
    pub prefix: String,
    pub binary: PathBuf,
}

impl Runc {
    /// The host's runc, or None (and a recorded skip for `test`).
    pub fn find(test: &str) -> Option<Runc> {
        let binary = ["/usr/sbin/runc", "/usr/bin/runc", "/usr/local/sbin/runc"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.exists());
        let Some(binary) = binary else {
            skip(
                test,
                Skip::Missing("runc (the reference) is not installed".into()),
            );
            return None;
        };
        Some(Runc {
            root: tempfile::tempdir().expect("tempdir"),
            prefix: format!("runc-{}", std::process::id()),
            binary,
        })
    }

    pub fn id(&self, name: &str) -> String {
        format!("{}-{name}", self.prefix)
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new(&self.binary);
        c.arg("--root").arg(self.root.path());
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        run(self.cmd().args(args))
    }

    /// `run` of bundle `b` in the foreground: (exit code, stdout, stderr).
    pub fn run_bundle(&self, b: &Bundle, id: &str) -> (i32, String, String) {
        let out = self.run(&["run", "--bundle", b.path_str(), id]);
        (
            out.status.code().unwrap_or(-1),
            text(&out.stdout),
            text(&out.stderr),
        )
    }
}

impl Drop for Runc {
    fn drop(&mut self) {
        if let Ok(dir) = std::fs::read_dir(self.root.path()) {
            for e in dir.flatten() {
                let id = e.file_name().to_string_lossy().into_owned();
                let _ = run(self.cmd().args(["delete", "--force", &id]));
            }
        }
        reap();
    }
}
