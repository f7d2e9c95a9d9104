//! The `-v`, `--mount` and `--tmpfs` flags of `run` and `create`, read as
//! Docker and Podman read them, into the request's mounts.
//!
//! `-v SOURCE:TARGET[:OPTIONS]` takes a comma-separated option list:
//! `ro`/`rw`; a propagation (`[r]shared`, `[r]slave`, `[r]private`);
//! `z`/`Z` (SELinux relabelling: accepted where SELinux is off, where
//! Docker and Podman do nothing with it either, refused where it is on,
//! since wren sets no labels); `nocopy` (a named volume is not filled from
//! the image); and Podman's `[no]exec`, `[no]suid`, `[no]dev`. `--mount`
//! takes Docker's keys for the same (`bind-propagation`, `volume-nocopy`,
//! `tmpfs-size`, `tmpfs-mode`). Whether a propagation can work on its
//! source is wrend's check (`wrend::spec`), where the spec gets it.
//!
//! Runs in `wren`.

use std::path::Path;

use wren_protocol::manager as api;

use super::CliError;

/// A bind mount or named volume asked for with `-v` or `--mount`.
#[derive(Debug, Clone, PartialEq)]
pub struct Volume {
    /// A bind mount of the host path, or (source not absolute) of the
    /// named volume's data directory once the caller resolved it.
    pub spec: api::MountSpec,
    /// `nocopy`: an empty named volume is not filled from the image.
    pub nocopy: bool,
}

/// What a `--mount` comes down to.
#[derive(Debug)]
pub enum MountFlag {
    Volume(Volume),
    /// As a `--tmpfs` argument: `PATH[:OPTIONS]`.
    Tmpfs(String),
}

/// Propagation modes a bind mount takes (OCI mount options).
const PROPAGATIONS: [&str; 6] = [
    "shared", "rshared", "slave", "rslave", "private", "rprivate",
];

/// The options of one bind mount, gathered from `-v`'s list or `--mount`'s
/// keys; `flag` names the argument in errors.
#[derive(Default)]
struct BindOptions<'a> {
    mode: Option<&'a str>,
    propagation: Option<&'a str>,
    nocopy: bool,
    recursive: bool,
    /// `[no]exec`, `[no]suid`, `[no]dev`, in the order given.
    flags: Vec<&'a str>,
}

impl<'a> BindOptions<'a> {
    fn new() -> Self {
        BindOptions {
            recursive: true,
            ..Default::default()
        }
    }

    /// One `-v` option (or the matching `--mount` value).
    fn add(&mut self, o: &'a str) -> Result<(), String> {
        let once = |slot: &mut Option<&'a str>, what: &str| match slot.replace(o) {
            Some(old) if old != o => Err(format!("{old:?} and {o:?}: give one {what}")),
            _ => Ok(()),
        };
        match o {
            "ro" | "rw" => once(&mut self.mode, "mode")?,
            p if PROPAGATIONS.contains(&p) => once(&mut self.propagation, "propagation")?,
            "z" | "Z" => selinux_relabel(o)?,
            "nocopy" => self.nocopy = true,
            "exec" | "noexec" | "suid" | "nosuid" | "dev" | "nodev" => self.flags.push(o),
            "" => return Err("an empty option".into()),
            _ => {
                return Err(format!(
                    "unknown option {o:?} (ro, rw, z, Z, shared, rshared, slave, rslave, \
                     private, rprivate, nocopy, [no]exec, [no]suid, [no]dev)"
                ))
            }
        }
        Ok(())
    }

    /// The mount of `host` (an absolute path or a volume name) on `ctr`.
    fn build(self, host: &str, ctr: &str) -> Result<Volume, String> {
        if !host.starts_with('/') && named_volume(host).is_none() {
            return Err("give an absolute host path or a volume name".into());
        }
        if !ctr.starts_with('/') || ctr.split('/').any(|c| c == "..") {
            return Err("the container path must be absolute, without ..".into());
        }
        if self.nocopy && host.starts_with('/') {
            return Err("nocopy is for a named volume, not a host path".into());
        }
        let mut options = vec![if self.recursive { "rbind" } else { "bind" }.to_string()];
        options.push(self.mode.unwrap_or("rw").to_string());
        options.extend(self.propagation.map(String::from));
        options.extend(self.flags.iter().map(|f| f.to_string()));
        let mut spec = api::MountSpec::new();
        spec.type_ = "bind".into();
        spec.source = host.to_string();
        spec.destination = ctr.to_string();
        spec.options = options;
        Ok(Volume {
            spec,
            nocopy: self.nocopy,
        })
    }
}

/// `z`/`Z`: nothing to do where SELinux is off (Docker and Podman relabel
/// only where it is on); where it is on, wren cannot keep the promise.
fn selinux_relabel(o: &str) -> Result<(), String> {
    if Path::new("/sys/fs/selinux/enforce").exists() {
        return Err(format!(
            "{o:?} asks for an SELinux relabel, and wren sets no SELinux labels \
             (this host has SELinux enabled): label the source yourself and drop {o:?}"
        ));
    }
    Ok(())
}

/// `-v SOURCE:TARGET[:OPTIONS]`.
pub fn volume(v: &str) -> Result<Volume, CliError> {
    let bad = |why: &str| CliError::usage(format!("--volume {v:?}: {why}"));
    let parts: Vec<&str> = v.split(':').collect();
    let (host, ctr, opts) = match parts.as_slice() {
        [h, c] => (*h, *c, None),
        [h, c, o] => (*h, *c, Some(*o)),
        _ => return Err(bad("want SOURCE:TARGET[:OPTIONS]")),
    };
    let mut b = BindOptions::new();
    for o in opts.map(|o| o.split(',')).into_iter().flatten() {
        b.add(o).map_err(|e| bad(&e))?;
    }
    let vol = b.build(host, ctr).map_err(|e| bad(&e))?;
    exists(v, host)?;
    Ok(vol)
}

/// A bind's host path must exist (as Podman requires; Docker's making of
/// a missing one hides typos).
fn exists(flag: &str, host: &str) -> Result<(), CliError> {
    if host.starts_with('/') && !Path::new(host).exists() {
        return Err(CliError::failed(format!(
            "--volume {flag:?}: {host} does not exist"
        )));
    }
    Ok(())
}

/// `--mount type=bind|volume|tmpfs,source=S,target=T[,readonly]` with
/// Docker's keys: `src`, `dst`, `destination`, `ro`, `readonly=BOOL`,
/// `bind-propagation`, `bind-nonrecursive`, `volume-nocopy`, `tmpfs-size`,
/// `tmpfs-mode`, `consistency` (ignored on Linux, as by Docker).
pub fn mount_flag(spec: &str) -> Result<MountFlag, CliError> {
    let bad = |why: &str| CliError::usage(format!("--mount {spec:?}: {why}"));
    let truth = |k: &str, v: &str| match v {
        "" | "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(bad(&format!("{k}={v:?}: want true or false"))),
    };
    let (mut kind, mut source, mut target, mut ro) = (None, None, None, false);
    let mut b = BindOptions::new();
    let (mut bind_keys, mut volume_keys, mut tmpfs_opts) = (false, false, Vec::new());
    for kv in spec.split(',') {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        match k {
            "type" => kind = Some(v),
            "source" | "src" => source = Some(v),
            "target" | "dst" | "destination" => target = Some(v),
            "readonly" | "ro" => ro = truth(k, v)?,
            "bind-propagation" if PROPAGATIONS.contains(&v) => {
                b.add(v).map_err(|e| bad(&e))?;
                bind_keys = true;
            }
            "bind-propagation" => {
                return Err(bad(&format!(
                    "bind-propagation={v:?}: want one of {}",
                    PROPAGATIONS.join(", ")
                )))
            }
            "bind-nonrecursive" => {
                b.recursive = !truth(k, v)?;
                bind_keys = true;
            }
            "volume-nocopy" => {
                b.nocopy = truth(k, v)?;
                volume_keys = true;
            }
            "tmpfs-size" => match super::run::parse_size(v) {
                Some(n) if n > 0 => tmpfs_opts.push(format!("size={n}")),
                _ => return Err(bad(&format!("tmpfs-size={v:?}: want a size (64m)"))),
            },
            "tmpfs-mode" if u32::from_str_radix(v, 8).is_ok_and(|m| m <= 0o7777) => {
                tmpfs_opts.push(format!("mode={v}"))
            }
            "tmpfs-mode" => return Err(bad(&format!("tmpfs-mode={v:?}: want octal (1777)"))),
            "consistency" => {}
            _ => return Err(bad(&format!("unknown key {k:?}"))),
        }
    }
    let target = target.ok_or_else(|| bad("no target"))?;
    let kind = kind.unwrap_or("volume");
    let misplaced = match kind {
        "bind" => (volume_keys || !tmpfs_opts.is_empty()).then_some("bind"),
        "volume" => (bind_keys || !tmpfs_opts.is_empty()).then_some("volume"),
        "tmpfs" => (bind_keys || volume_keys).then_some("tmpfs"),
        _ => None,
    };
    if let Some(k) = misplaced {
        return Err(bad(&format!("a key of another type given with type={k}")));
    }
    if ro {
        b.add("ro").map_err(|e| bad(&e))?;
    }
    match (kind, source) {
        ("bind", Some(src)) if !src.starts_with('/') => {
            Err(bad("a bind's source is an absolute host path"))
        }
        ("volume", Some(src)) if src.starts_with('/') => Err(bad(
            "a volume's source is a volume name (type=bind for a host path)",
        )),
        ("bind" | "volume", Some(src)) => {
            let vol = b.build(src, target).map_err(|e| bad(&e))?;
            exists(spec, src)?;
            Ok(MountFlag::Volume(vol))
        }
        ("bind" | "volume", None) => Err(bad("no source")),
        ("tmpfs", None) => {
            if ro {
                tmpfs_opts.push("ro".into());
            }
            Ok(MountFlag::Tmpfs(if tmpfs_opts.is_empty() {
                target.to_string()
            } else {
                format!("{target}:{}", tmpfs_opts.join(","))
            }))
        }
        ("tmpfs", Some(_)) => Err(bad("a tmpfs takes no source")),
        (other, _) => Err(bad(&format!(
            "unknown type {other:?}: want bind, volume or tmpfs"
        ))),
    }
}

/// `NAME` in `-v NAME:/path` when it names a volume (not a host path).
pub fn named_volume(source: &str) -> Option<&str> {
    (!source.starts_with('/') && super::volumes::valid_name(source)).then_some(source)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(v: &str) -> Vec<String> {
        volume(v).unwrap().spec.options
    }

    fn err(v: &str) -> String {
        volume(v).unwrap_err().message
    }

    #[test]
    fn volume_options_as_docker_takes_them() {
        assert_eq!(opts("/tmp:/x"), ["rbind", "rw"]);
        assert_eq!(opts("/tmp:/x:ro"), ["rbind", "ro"]);
        assert_eq!(opts("/tmp:/x:ro,rslave"), ["rbind", "ro", "rslave"]);
        assert_eq!(opts("/tmp:/x:rshared,rw"), ["rbind", "rw", "rshared"]);
        assert_eq!(
            opts("/tmp:/x:noexec,nosuid,ro"),
            ["rbind", "ro", "noexec", "nosuid"]
        );
        assert_eq!(opts("/tmp:/x:ro,ro"), ["rbind", "ro"]);
        let v = volume("data:/x:nocopy").unwrap();
        assert!(v.nocopy);
        assert_eq!(v.spec.source, "data");
        if !Path::new("/sys/fs/selinux/enforce").exists() {
            assert_eq!(opts("/tmp:/x:z"), ["rbind", "rw"]);
            assert_eq!(opts("/tmp:/x:ro,Z"), ["rbind", "ro"]);
        }
    }

    #[test]
    fn bad_volume_options_are_named() {
        assert!(err("/tmp:/x:ro,rw").contains("\"ro\" and \"rw\""));
        assert!(err("/tmp:/x:slave,shared").contains("propagation"));
        assert!(err("/tmp:/x:bogus").contains("unknown option \"bogus\""));
        assert!(err("/tmp:/x:ro,").contains("empty option"));
        assert!(err("/tmp:/x:nocopy").contains("nocopy is for a named volume"));
        assert!(err("/tmp:x").contains("absolute"));
        assert!(err("/tmp:/a/../b").contains("without .."));
        assert!(err("/a:/b:c:d").contains("want SOURCE:TARGET"));
        assert!(err("/no/such/dir:/x").contains("/no/such/dir does not exist"));
    }

    fn mount(s: &str) -> Result<MountFlag, String> {
        mount_flag(s).map_err(|e| e.message)
    }

    #[test]
    fn mount_keys_as_docker_takes_them() {
        let Ok(MountFlag::Volume(v)) =
            mount("type=bind,src=/tmp,dst=/x,readonly,bind-propagation=rslave")
        else {
            panic!()
        };
        assert_eq!(v.spec.options, ["rbind", "ro", "rslave"]);
        let Ok(MountFlag::Volume(v)) = mount("type=bind,src=/tmp,dst=/x,bind-nonrecursive=true")
        else {
            panic!()
        };
        assert_eq!(v.spec.options, ["bind", "rw"]);
        let Ok(MountFlag::Volume(v)) = mount("source=data,target=/x,volume-nocopy") else {
            panic!()
        };
        assert!(v.nocopy);
        let Ok(MountFlag::Tmpfs(t)) = mount("type=tmpfs,dst=/t,tmpfs-size=64m,tmpfs-mode=700")
        else {
            panic!()
        };
        assert_eq!(t, "/t:size=67108864,mode=700");
        let Ok(MountFlag::Tmpfs(t)) = mount("type=tmpfs,dst=/t,readonly=true") else {
            panic!()
        };
        assert_eq!(t, "/t:ro");
    }

    #[test]
    fn bad_mount_keys_are_named() {
        for (s, want) in [
            (
                "type=bind,src=/tmp,dst=/x,bind-propagation=up",
                "bind-propagation=\"up\"",
            ),
            ("type=tmpfs,dst=/x,bind-propagation=rslave", "type=tmpfs"),
            ("type=bind,src=/tmp,dst=/x,volume-nocopy", "type=bind"),
            ("type=volume,src=/tmp,dst=/x", "volume name"),
            ("type=bind,src=tmp,dst=/x", "absolute host path"),
            ("type=tmpfs,dst=/x,tmpfs-mode=999", "tmpfs-mode"),
            ("type=tmpfs,dst=/x,tmpfs-size=lots", "tmpfs-size"),
            (
                "type=bind,src=/tmp,dst=/x,readonly=maybe",
                "readonly=\"maybe\"",
            ),
            (
                "type=bind,src=/tmp,dst=/x,color=red",
                "unknown key \"color\"",
            ),
        ] {
            let e = mount(s).unwrap_err();
            assert!(e.contains(want), "{s}: {e}");
        }
    }
}
