//! wrend's command line, parsed by hand on purpose.
//!
//! wrend is a long-lived daemon whose resident memory is mostly its own
//! text: the static release binary is small enough that nearly all of it
//! is paged in, so every KiB of code costs about a KiB of RSS whether it
//! runs or not. Measured on static LTO release builds (2026-12-05, idle,
//! no containers, five runs each, identical): this parser 1,548 KiB RSS,
//! the same flags through clap (derive) 1,808 KiB; +260 KiB (+248 KiB of
//! text pages, +12 KiB anonymous), binary +286 KiB. wrend's budget is
//! 2 MB with 200 idle containers, and a parser may cost it at most about
//! 40 KiB; so wrend keeps this small parser, and `wren`, a short-lived
//! CLI, uses clap. It takes `--flag value` and `--flag=value` (booleans
//! too: `--debug=false`), answers `--help` and `--version`, and refuses
//! anything else with status 2.
//!
//! Runs in `wrend`, once, before anything else.

use std::path::PathBuf;

use super::config::Config;

/// What `wrend --help` prints.
pub const HELP: &str = "\
wrend: the wren manager daemon (containers without containerd)

Usage: wrend [OPTIONS]

Options:
      --root <DIR>           State under DIR/run, records under DIR/lib
      --state-dir <DIR>      Volatile state: fifos, shim sockets [default: /run/wren]
      --records-dir <DIR>    Records, bundles, logs [default: /var/lib/wren]
      --socket <PATH>        The API socket [default: <state-dir>/wrend.sock]
      --shim <PATH>          The shim binary [default: beside wrend, or on PATH]
      --log-max-size <BYTES> Rotate a container's log at this size [default: 10485760]
      --log-keep <N>         Log files kept per container [default: 3]
      --default-network <N>  A container's network when it names none [default: bridge]
      --cgroup-parent <PATH> Make containers' cgroups as PATH/NAME [default: wren, or
                             wren/w-HASH for another --state-dir or --root]
      --debug[=<BOOL>]       Log at debug level (shims too)
  -h, --help                 Print help
  -v, --version              Print version
";

/// wrend's flags as given; [`Flags::config`] turns them into paths.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Flags {
    pub root: Option<PathBuf>,
    pub state_dir: Option<PathBuf>,
    pub records_dir: Option<PathBuf>,
    pub socket: Option<PathBuf>,
    pub shim: Option<PathBuf>,
    pub log_max_size: Option<u64>,
    pub log_keep: Option<u32>,
    pub default_network: Option<String>,
    pub cgroup_parent: Option<String>,
    pub debug: bool,
}

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    Run(Flags),
    Help,
    Version,
}

/// A command line wrend refuses (exit status 2).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum FlagError {
    #[error("unknown argument {0:?}")]
    Unknown(String),
    #[error("{0} needs a value")]
    NoValue(&'static str),
    #[error("{flag} wants {want}, not {value:?}")]
    BadValue {
        flag: &'static str,
        want: &'static str,
        value: String,
    },
}

/// Parses wrend's arguments (without the program name).
pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Parsed, FlagError> {
    let mut f = Flags::default();
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n, Some(v.to_string())),
            _ => (arg.as_str(), None),
        };
        // The flag's canonical name, for messages.
        let flag: &'static str = match name {
            "--root" => "--root",
            "--state-dir" => "--state-dir",
            "--records-dir" => "--records-dir",
            "--socket" => "--socket",
            "--shim" => "--shim",
            "--log-max-size" => "--log-max-size",
            "--log-keep" => "--log-keep",
            "--default-network" => "--default-network",
            "--cgroup-parent" => "--cgroup-parent",
            "--debug" => {
                f.debug = match inline.as_deref() {
                    None => true,
                    Some(v) => boolish(v).ok_or_else(|| FlagError::BadValue {
                        flag: "--debug",
                        want: "true or false",
                        value: v.to_string(),
                    })?,
                };
                continue;
            }
            "-h" | "--help" if inline.is_none() => return Ok(Parsed::Help),
            "-v" | "--version" if inline.is_none() => return Ok(Parsed::Version),
            _ => return Err(FlagError::Unknown(arg)),
        };
        let value = inline
            .or_else(|| it.next())
            .ok_or(FlagError::NoValue(flag))?;
        let number = |want| FlagError::BadValue {
            flag,
            want,
            value: value.clone(),
        };
        match flag {
            "--root" => f.root = Some(value.into()),
            "--state-dir" => f.state_dir = Some(value.into()),
            "--records-dir" => f.records_dir = Some(value.into()),
            "--socket" => f.socket = Some(value.into()),
            "--shim" => f.shim = Some(value.into()),
            "--default-network" => f.default_network = Some(value),
            "--cgroup-parent" => {
                if crate::paths::check_cgroup_parent(&value).is_err() {
                    return Err(number("a cgroup path of names (no empty, . or .. parts)"));
                }
                f.cgroup_parent = Some(value.trim_matches('/').to_string());
            }
            "--log-max-size" => {
                f.log_max_size = Some(value.parse().map_err(|_| number("a number of bytes"))?)
            }
            _ => f.log_keep = Some(value.parse().map_err(|_| number("a number"))?),
        }
    }
    Ok(Parsed::Run(f))
}

fn boolish(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

impl Flags {
    /// The configuration: `--root` places state and records, which
    /// `--state-dir` and `--records-dir` override whatever their order; the
    /// socket lies in the state directory unless `--socket` says otherwise.
    pub fn config(&self) -> Config {
        let mut cfg = match &self.root {
            Some(root) => Config::with_root(root),
            None => Config::new(),
        };
        if self.state_dir.is_some() || self.records_dir.is_some() {
            let shim = cfg.shim_binary.clone();
            cfg = Config::with_dirs(
                self.state_dir.clone().unwrap_or(cfg.state_dir),
                self.records_dir.clone().unwrap_or(cfg.records_dir),
            );
            cfg.shim_binary = shim;
        }
        if let Some(s) = &self.socket {
            cfg.socket = s.clone();
        }
        if let Some(s) = &self.shim {
            // Shims are started in their bundle directory: a relative path
            // with a directory part is made absolute here (a bare name is
            // still looked up on PATH).
            cfg.shim_binary = if s.components().count() > 1 && s.is_relative() {
                std::path::absolute(s).unwrap_or_else(|_| s.clone())
            } else {
                s.clone()
            };
        }
        if let Some(n) = self.log_max_size {
            cfg.log_max_size = n;
        }
        if let Some(n) = self.log_keep {
            cfg.log_keep = n;
        }
        if let Some(n) = &self.default_network {
            cfg.default_network = n.clone();
        }
        if let Some(p) = &self.cgroup_parent {
            cfg.cgroup_parent = p.clone();
        }
        cfg.debug = self.debug;
        cfg
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::paths;
    use std::path::Path;

    fn p(args: &[&str]) -> Result<Parsed, FlagError> {
        parse(args.iter().map(|s| s.to_string()))
    }

    fn cfg(args: &[&str]) -> Config {
        match p(args) {
            Ok(Parsed::Run(f)) => f.config(),
            other => panic!("{args:?}: {other:?}"),
        }
    }

    #[test]
    fn values_inline_or_next_and_booleans_with_equals() {
        let c = cfg(&[
            "--root",
            "/r",
            "--log-max-size=2000",
            "--log-keep",
            "2",
            "--shim=/bin/shim",
            "--debug=true",
            "--default-network=none",
        ]);
        assert_eq!(c.default_network, "none");
        assert_eq!(cfg(&[]).default_network, "bridge");
        assert_eq!(cfg(&[]).cgroup_parent, "wren");
        assert_eq!(
            cfg(&["--cgroup-parent", "/system.slice/edge/"]).cgroups_path("a"),
            "/system.slice/edge/a"
        );
        assert!(matches!(
            p(&["--cgroup-parent", "a/../b"]),
            Err(FlagError::BadValue {
                flag: "--cgroup-parent",
                ..
            })
        ));
        assert_eq!(c.socket, Path::new("/r/run/wrend.sock"));
        assert_eq!(c.records_dir, Path::new("/r/lib"));
        assert_eq!((c.log_max_size, c.log_keep), (2000, 2));
        assert_eq!(c.shim_binary, Path::new("/bin/shim"));
        // Shims start in their bundle directory: a relative path is made
        // absolute, a bare name stays a PATH lookup.
        let rel = cfg(&["--shim", "target/shim"]).shim_binary;
        assert_eq!(rel, std::env::current_dir().unwrap().join("target/shim"));
        assert_eq!(
            cfg(&["--shim", "my-shim"]).shim_binary,
            Path::new("my-shim")
        );
        assert!(c.debug);
        assert!(!cfg(&["--debug=false"]).debug);
        assert!(cfg(&["--debug"]).debug);
        assert_eq!(cfg(&[]).socket, paths::default_socket());
    }

    #[test]
    fn explicit_dirs_win_over_root_in_any_order() {
        for args in [
            &["--root", "/r", "--state-dir", "/s"][..],
            &["--state-dir", "/s", "--root", "/r"],
        ] {
            let c = cfg(args);
            assert_eq!(c.state_dir, Path::new("/s"), "{args:?}");
            assert_eq!(c.socket, Path::new("/s/wrend.sock"), "{args:?}");
            assert_eq!(c.records_dir, Path::new("/r/lib"), "{args:?}");
        }
        let c = cfg(&["--socket=/x.sock", "--root", "/r"]);
        assert_eq!(c.socket, Path::new("/x.sock"));
    }

    #[test]
    fn help_version_and_refusals() {
        assert_eq!(p(&["--help"]), Ok(Parsed::Help));
        assert_eq!(p(&["--root", "/r", "-h"]), Ok(Parsed::Help));
        assert_eq!(p(&["-v"]), Ok(Parsed::Version));
        assert_eq!(p(&["--bogus"]), Err(FlagError::Unknown("--bogus".into())));
        assert_eq!(p(&["--root"]), Err(FlagError::NoValue("--root")));
        assert!(matches!(
            p(&["--log-keep=x"]),
            Err(FlagError::BadValue {
                flag: "--log-keep",
                ..
            })
        ));
        assert!(p(&["--debug=maybe"]).is_err());
        assert!(p(&["--help=1"]).is_err());
        assert!(p(&["stray"]).is_err());
    }
}
