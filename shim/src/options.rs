//! Runtime options and start-time input, decoded from whatever containerd
//! sends: nothing, a raw `Any` (1.6–2.2 `start` stdin, and `CreateTaskRequest.options`),
//! or containerd 2.3's `BootstrapParams` on `start` stdin.
//!
//! Three option types reach a shim called `io.containerd.wren.v2`: runc's
//! `containerd.runc.v1.Options` (ctr, and CRI for runc-typed runtimes), CRI's
//! `runtimeoptions.v1.Options` with the runtime's `[options]` TOML, and the old
//! `containerd.linux.runc.CreateOptions` that the Go client attaches to
//! non-runc runtimes. Unknown types are ignored, never fatal.
//!
//! Runs in `start`, `delete`, `-info` and the daemon (Create).

use protobuf::well_known_types::any::Any;
use protobuf::Message;
use serde::{Deserialize, Serialize};
use wren_protocol::bootstrap::BootstrapParams;
use wren_protocol::{cri_runtime_options, runc_options, runctypes, type_urls};

/// The option fields the shim acts on, whatever message carried them.
/// Persisted as `options.json` in the bundle so `delete` can find the state root.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShimOptions {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub shim_cgroup: String,
    #[serde(default)]
    pub io_uid: u32,
    #[serde(default)]
    pub io_gid: u32,
    /// Container state root for the runtime (runc's `root`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub root: String,
    #[serde(default)]
    pub no_pivot_root: bool,
    #[serde(default)]
    pub no_new_keyring: bool,
    #[serde(default)]
    pub systemd_cgroup: bool,
    /// runc's `BinaryName`: the OCI runtime binary runc's shim would call.
    /// wren's shim calls none; Create refuses a non-empty one
    /// ([`ShimOptions::refusal`]) rather than ignore it.
    #[serde(skip)]
    pub binary_name: String,
}

/// A runtime option wren cannot honour, named.
#[derive(Debug, thiserror::Error)]
#[error("runtime option {option}: {why}")]
pub struct OptionRefused {
    pub option: String,
    pub why: &'static str,
}

/// An options `Any` that could not be decoded although its type is known.
#[derive(Debug, thiserror::Error)]
#[error("decode {type_url}")]
pub struct OptionsError {
    pub type_url: String,
    #[source]
    pub source: protobuf::Error,
}

/// The message name of a type URL (`types.googleapis.com/x.Y` → `x.Y`).
fn type_name(type_url: &str) -> &str {
    type_url.rsplit('/').next().unwrap_or(type_url)
}

impl ShimOptions {
    /// Decodes an options `Any`. `Ok(None)` for a type the shim does not know.
    pub fn from_any(any: &Any) -> Result<Option<Self>, OptionsError> {
        let err = |source| OptionsError {
            type_url: any.type_url.clone(),
            source,
        };
        let name = type_name(&any.type_url);
        if name == type_urls::RUNC_OPTIONS {
            let o = runc_options::Options::parse_from_bytes(&any.value).map_err(err)?;
            Ok(Some(Self {
                shim_cgroup: o.shim_cgroup,
                io_uid: o.io_uid,
                io_gid: o.io_gid,
                root: o.root,
                no_pivot_root: o.no_pivot_root,
                no_new_keyring: o.no_new_keyring,
                systemd_cgroup: o.systemd_cgroup,
                binary_name: o.binary_name,
            }))
        } else if name == type_urls::RUNCTYPES_CREATE_OPTIONS {
            let o = runctypes::CreateOptions::parse_from_bytes(&any.value).map_err(err)?;
            Ok(Some(Self {
                shim_cgroup: o.shim_cgroup,
                io_uid: o.io_uid,
                io_gid: o.io_gid,
                no_pivot_root: o.no_pivot_root,
                no_new_keyring: o.no_new_keyring,
                ..Self::default()
            }))
        } else if name == type_urls::CRI_RUNTIME_OPTIONS {
            let o = cri_runtime_options::Options::parse_from_bytes(&any.value).map_err(err)?;
            let body = if o.config_body.is_empty() && !o.config_path.is_empty() {
                read_config_file(&o.config_path)
            } else {
                o.config_body
            };
            Ok(Some(Self::from_toml(&body)))
        } else {
            Ok(None)
        }
    }

    /// The first option wren refuses, if any. runc's shim runs the binary
    /// `BinaryName` names; wren's shim is the runtime itself, so a handler
    /// that names one (a runc or crun path) would silently get wren
    /// instead: say so.
    pub fn refusal(&self) -> Option<OptionRefused> {
        (!self.binary_name.is_empty()).then(|| OptionRefused {
            option: format!("BinaryName = {:?}", self.binary_name),
            why: "wren's shim is the runtime and runs no OCI runtime binary; \
                  remove BinaryName from the handler's options",
        })
    }

    /// Reads the runc-named keys of a runtime's `[options]` TOML table
    /// (`SystemdCgroup = true`, `ShimCgroup = "..."`, `IoUid = 0`, `Root = "..."`, ...).
    /// Only flat `key = value` lines are needed; anything else is skipped.
    pub fn from_toml(body: &str) -> Self {
        let mut o = Self::default();
        for line in body.lines() {
            let line = line.split('#').next().unwrap_or("").trim();
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            let value = value.trim();
            let text = value.trim_matches(|c| c == '"' || c == '\'').to_string();
            let flag = value == "true";
            let num = value.parse::<u32>().unwrap_or(0);
            match key.trim() {
                "ShimCgroup" => o.shim_cgroup = text,
                "IoUid" => o.io_uid = num,
                "IoGid" => o.io_gid = num,
                "Root" => o.root = text,
                "NoPivotRoot" => o.no_pivot_root = flag,
                "NoNewKeyring" => o.no_new_keyring = flag,
                "SystemdCgroup" => o.systemd_cgroup = flag,
                "BinaryName" => o.binary_name = text,
                _ => {}
            }
        }
        o
    }
}

/// The most of a CRI `config_path` file we read: a runtime's options TOML is
/// tiny, and the path is not ours to trust with an unbounded read.
const MAX_CONFIG_FILE: u64 = 1 << 20;

/// Reads CRI's `config_path` if it is a regular file: never blocks on a FIFO
/// or device, never reads more than [`MAX_CONFIG_FILE`] bytes.
fn read_config_file(path: &str) -> String {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let Ok(f) = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
    else {
        return String::new();
    };
    if !f.metadata().map(|m| m.is_file()).unwrap_or(false) {
        return String::new();
    }
    let mut body = String::new();
    let _ = f.take(MAX_CONFIG_FILE).read_to_string(&mut body);
    body
}

/// What arrived on `start`'s stdin.
#[derive(Debug, Clone, PartialEq)]
pub enum StartInput {
    /// Nothing (1.6–2.2 without options).
    Empty,
    /// A raw options `Any` (1.6–2.2).
    Options(Any),
    /// containerd 2.3+'s bootstrap parameters, confirmed by id and namespace.
    Bootstrap(BootstrapParams),
}

/// `start`'s stdin could be neither a confirmed `BootstrapParams` nor an `Any`.
#[derive(Debug, thiserror::Error)]
#[error("decode start stdin ({len} bytes) as BootstrapParams or Any")]
pub struct StdinError {
    pub len: usize,
    #[source]
    pub source: protobuf::Error,
}

impl StartInput {
    /// Decodes `start`'s stdin. An `Any` (fields 1 and 2 are strings/bytes) also
    /// decodes as a `BootstrapParams` (instance_id=1, namespace=2), so a
    /// `BootstrapParams` only counts when its id and namespace match the flags,
    /// as containerd's own shim library checks.
    pub fn decode(stdin: &[u8], id: &str, namespace: &str) -> Result<Self, StdinError> {
        if stdin.is_empty() {
            return Ok(Self::Empty);
        }
        if let Ok(params) = BootstrapParams::parse_from_bytes(stdin) {
            if params.instance_id == id && params.namespace == namespace {
                return Ok(Self::Bootstrap(params));
            }
        }
        Any::parse_from_bytes(stdin)
            .map(Self::Options)
            .map_err(|source| StdinError {
                len: stdin.len(),
                source,
            })
    }

    /// The runtime options this input carries, if any known type is present.
    pub fn options(&self) -> Result<Option<ShimOptions>, OptionsError> {
        match self {
            Self::Empty => Ok(None),
            Self::Options(any) => ShimOptions::from_any(any),
            Self::Bootstrap(params) => {
                for ext in &params.extensions {
                    if let Some(any) = ext.value.as_ref() {
                        if let Some(o) = ShimOptions::from_any(any)? {
                            return Ok(Some(o));
                        }
                    }
                }
                Ok(None)
            }
        }
    }

    /// 2.3's socket directory override, if given.
    pub fn socket_dir(&self) -> Option<&str> {
        match self {
            Self::Bootstrap(p) => p.socket_dir.as_deref().filter(|d| !d.is_empty()),
            _ => None,
        }
    }

    /// True when containerd asked for debug logs through the bootstrap log level.
    pub fn debug(&self) -> bool {
        matches!(self, Self::Bootstrap(p) if p.log_level.value() < 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wren_protocol::bootstrap::Extension;

    fn runc_any(root: &str, cgroup: &str) -> Any {
        let mut o = runc_options::Options::new();
        o.root = root.into();
        o.shim_cgroup = cgroup.into();
        o.binary_name = "/usr/sbin/runc".into();
        let mut any = Any::new();
        any.type_url = type_urls::RUNC_OPTIONS.into();
        any.value = o.write_to_bytes().unwrap();
        any
    }

    #[test]
    fn binary_name_is_refused_by_name_and_absent_is_fine() {
        let o = ShimOptions::from_any(&runc_any("/run/r", "/shim"))
            .unwrap()
            .unwrap();
        let err = o.refusal().expect("BinaryName set").to_string();
        assert!(err.contains("BinaryName = \"/usr/sbin/runc\""), "{err}");
        let t = ShimOptions::from_toml("Root = \"/r\"\nBinaryName = \"/usr/bin/crun\"\n");
        assert!(t.refusal().unwrap().to_string().contains("/usr/bin/crun"));
        assert!(ShimOptions::from_toml("Root = \"/r\"\n")
            .refusal()
            .is_none());
    }

    #[test]
    fn empty_stdin() {
        assert_eq!(
            StartInput::decode(b"", "c", "n").unwrap(),
            StartInput::Empty
        );
    }

    #[test]
    fn any_is_not_mistaken_for_bootstrap() {
        let any = runc_any("/run/r", "/shim");
        let bytes = any.write_to_bytes().unwrap();
        // The same bytes do decode as BootstrapParams, with nonsense id/namespace.
        assert!(BootstrapParams::parse_from_bytes(&bytes).is_ok());
        let input = StartInput::decode(&bytes, "c1", "default").unwrap();
        assert_eq!(input, StartInput::Options(any));
        let o = input.options().unwrap().unwrap();
        assert_eq!(
            (o.root.as_str(), o.shim_cgroup.as_str()),
            ("/run/r", "/shim")
        );
    }

    #[test]
    fn bootstrap_params_with_options_extension() {
        let mut p = BootstrapParams::new();
        p.instance_id = "c1".into();
        p.namespace = "default".into();
        p.socket_dir = Some("/run/x/s".into());
        p.log_level = wren_protocol::bootstrap::LogLevel::LOG_LEVEL_DEBUG.into();
        let mut ext = Extension::new();
        ext.value = protobuf::MessageField::some(runc_any("/r", ""));
        p.extensions.push(ext);
        let bytes = p.write_to_bytes().unwrap();
        let input = StartInput::decode(&bytes, "c1", "default").unwrap();
        assert!(matches!(input, StartInput::Bootstrap(_)));
        assert_eq!(input.socket_dir(), Some("/run/x/s"));
        assert!(input.debug());
        assert_eq!(input.options().unwrap().unwrap().root, "/r");
        // Same bytes with another id: not ours, so read as Any (and fail or not,
        // but never be taken for bootstrap params of another container).
        assert!(!matches!(
            StartInput::decode(&bytes, "other", "default"),
            Ok(StartInput::Bootstrap(_))
        ));
    }

    #[test]
    fn cri_toml_and_unknown_types() {
        let mut o = cri_runtime_options::Options::new();
        o.type_url = "io.containerd.wren.v1.Options".into();
        o.config_body =
            "SystemdCgroup = true\nShimCgroup = \"/pods/shim\" # c\nIoUid = 1000\n".into();
        let mut any = Any::new();
        any.type_url = type_urls::CRI_RUNTIME_OPTIONS.into();
        any.value = o.write_to_bytes().unwrap();
        let got = ShimOptions::from_any(&any).unwrap().unwrap();
        assert!(got.systemd_cgroup);
        assert_eq!(got.shim_cgroup, "/pods/shim");
        assert_eq!(got.io_uid, 1000);
        let mut unknown = Any::new();
        unknown.type_url = "example.com/Whatever".into();
        assert_eq!(ShimOptions::from_any(&unknown).unwrap(), None);
    }

    #[test]
    fn cri_config_path_reads_only_bounded_regular_files() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("opts.toml");
        std::fs::write(&file, "IoGid = 7\n").unwrap();
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo with a valid C string.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let any = |path: &std::path::Path| {
            let mut o = cri_runtime_options::Options::new();
            o.config_path = path.to_str().unwrap().into();
            let mut any = Any::new();
            any.type_url = type_urls::CRI_RUNTIME_OPTIONS.into();
            any.value = o.write_to_bytes().unwrap();
            ShimOptions::from_any(&any).unwrap().unwrap()
        };
        assert_eq!(any(&file).io_gid, 7);
        // Neither blocks on a FIFO nor reads an endless device.
        assert_eq!(any(&fifo), ShimOptions::default());
        assert_eq!(
            any(std::path::Path::new("/dev/zero")),
            ShimOptions::default()
        );
    }
}
