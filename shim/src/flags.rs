//! Command-line flags as containerd passes them, parsed with Go `flag` package
//! rules (`-name value`, `-name=value`, `--name`, booleans without a value,
//! parsing stops at the first non-flag argument, which is the action).
//! Hand-written on purpose: `wren` and `wren-oci` use clap, but linking it
//! here would cost every idle shim private memory (its data and relocated
//! tables) for a command line that containerd, not a person, writes.
//!
//! Runs in every process of the shim binary: `start`, `delete`, `-info`, `-v`
//! and the daemon.

use std::ffi::OsString;

/// What the binary was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// `start`: spawn (or find) the daemon and print its address.
    Start,
    /// `delete`: clean up one container without the daemon.
    Delete,
    /// No action: serve the Task API on the listener inherited as fd 3.
    Serve,
    /// `-v` / `-version`: print the version and exit.
    Version,
    /// `-info`: print a raw `RuntimeInfo`.
    Info,
}

/// The parsed command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Flags {
    pub namespace: String,
    pub id: String,
    /// containerd's gRPC address (the hash input of the socket path).
    pub address: String,
    pub publish_binary: String,
    pub bundle: String,
    pub socket: String,
    pub debug: bool,
    pub version: bool,
    pub info: bool,
    /// The first non-flag argument, if any.
    pub action: Option<String>,
}

/// A command line the shim cannot understand.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FlagsError {
    #[error("flag provided but not defined: -{0}")]
    Unknown(String),
    #[error("flag needs an argument: -{0}")]
    MissingValue(String),
    #[error("invalid boolean value {value:?} for -{name}")]
    BadBool { name: String, value: String },
    #[error("argument is not valid UTF-8: {0:?}")]
    NotUtf8(OsString),
    #[error("unknown action {0:?}")]
    UnknownAction(String),
}

impl Flags {
    /// Parses the arguments after the program name.
    pub fn parse<I: IntoIterator<Item = OsString>>(args: I) -> Result<Self, FlagsError> {
        let mut flags = Flags::default();
        let mut args = args
            .into_iter()
            .map(|a| a.into_string().map_err(FlagsError::NotUtf8))
            .collect::<Result<Vec<_>, _>>()?
            .into_iter();
        while let Some(arg) = args.next() {
            if arg == "--" {
                flags.action = args.next();
                break;
            }
            let Some(body) = arg
                .strip_prefix("--")
                .or_else(|| arg.strip_prefix('-'))
                .filter(|b| !b.is_empty() && !b.starts_with('-'))
            else {
                flags.action = Some(arg);
                break;
            };
            let (name, inline) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (body, None),
            };
            let boolean = |inline: Option<String>| -> Result<bool, FlagsError> {
                match inline.as_deref() {
                    None => Ok(true),
                    Some("1" | "t" | "T" | "true" | "TRUE" | "True") => Ok(true),
                    Some("0" | "f" | "F" | "false" | "FALSE" | "False") => Ok(false),
                    Some(v) => Err(FlagsError::BadBool {
                        name: name.to_string(),
                        value: v.to_string(),
                    }),
                }
            };
            let slot = match name {
                "debug" => {
                    flags.debug = boolean(inline)?;
                    continue;
                }
                "v" | "version" => {
                    flags.version = boolean(inline)?;
                    continue;
                }
                "info" => {
                    flags.info = boolean(inline)?;
                    continue;
                }
                "namespace" => &mut flags.namespace,
                "id" => &mut flags.id,
                "address" => &mut flags.address,
                "publish-binary" => &mut flags.publish_binary,
                "bundle" => &mut flags.bundle,
                "socket" => &mut flags.socket,
                // Accepted and ignored: 2.x's debug socket is not served.
                "debug-socket" => &mut String::new(),
                other => return Err(FlagsError::Unknown(other.to_string())),
            };
            *slot = match inline {
                Some(v) => v,
                None => args
                    .next()
                    .ok_or_else(|| FlagsError::MissingValue(name.to_string()))?,
            };
        }
        Ok(flags)
    }

    /// What to do, with `-v` and `-info` taking precedence over any action.
    pub fn action(&self) -> Result<Action, FlagsError> {
        if self.version {
            return Ok(Action::Version);
        }
        if self.info {
            return Ok(Action::Info);
        }
        match self.action.as_deref() {
            None => Ok(Action::Serve),
            Some("start") => Ok(Action::Start),
            Some("delete") => Ok(Action::Delete),
            Some(other) => Err(FlagsError::UnknownAction(other.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Flags, FlagsError> {
        Flags::parse(args.iter().map(OsString::from))
    }

    #[test]
    fn containerd_16_start_line() {
        let f = parse(&[
            "-namespace",
            "default",
            "-address",
            "/run/containerd/containerd.sock",
            "-publish-binary",
            "/usr/bin/containerd",
            "-id",
            "c1",
            "-debug",
            "start",
        ])
        .unwrap();
        assert_eq!(f.namespace, "default");
        assert_eq!(f.address, "/run/containerd/containerd.sock");
        assert_eq!(f.publish_binary, "/usr/bin/containerd");
        assert_eq!(f.id, "c1");
        assert!(f.debug);
        assert_eq!(f.action().unwrap(), Action::Start);
    }

    #[test]
    fn delete_with_bundle_and_equals_forms() {
        let f = parse(&["--namespace=k8s.io", "-id=x", "-bundle", "/b", "delete"]).unwrap();
        assert_eq!((f.namespace.as_str(), f.id.as_str()), ("k8s.io", "x"));
        assert_eq!(f.bundle, "/b");
        assert_eq!(f.action().unwrap(), Action::Delete);
    }

    #[test]
    fn no_action_is_serve_and_version_wins() {
        assert_eq!(
            parse(&["-id", "a"]).unwrap().action().unwrap(),
            Action::Serve
        );
        assert_eq!(parse(&["-v"]).unwrap().action().unwrap(), Action::Version);
        assert_eq!(
            parse(&["-version", "start"]).unwrap().action().unwrap(),
            Action::Version
        );
        assert_eq!(parse(&["-info"]).unwrap().action().unwrap(), Action::Info);
        assert!(!parse(&["-debug=false"]).unwrap().debug);
    }

    #[test]
    fn errors() {
        assert_eq!(parse(&["-bogus"]), Err(FlagsError::Unknown("bogus".into())));
        assert_eq!(parse(&["-id"]), Err(FlagsError::MissingValue("id".into())));
        assert!(matches!(
            parse(&["-debug=maybe"]),
            Err(FlagsError::BadBool { .. })
        ));
        assert_eq!(
            parse(&["frobnicate"]).unwrap().action(),
            Err(FlagsError::UnknownAction("frobnicate".into()))
        );
    }
}
