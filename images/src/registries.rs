//! `registries.conf`: where a pull really fetches an image from, read as
//! Podman and skopeo read containers-registries.conf(5), so an edge box
//! keeps one file for all of them: a registry or namespace served from
//! another location, mirrors tried first (a pull-through cache on the
//! local network), plain HTTP for a registry without TLS, and names that
//! must not be pulled.
//!
//! The file is `$CONTAINERS_REGISTRIES_CONF` alone if that is set, else
//! `/etc/containers/registries.conf` and then the drop-ins in
//! `/etc/containers/registries.conf.d/*.conf` in name order (a later
//! `[[registry]]` with the same prefix replaces an earlier one). A missing
//! file is an empty configuration.
//!
//! Read: `[[registry]]` tables (`prefix`, including `*.domain` wildcards,
//! `location`, `insecure`, `blocked`, `mirror-by-digest-only`, and
//! `[[registry.mirror]]` with `location`, `insecure`, `pull-from-mirror`)
//! and the old format's `[registries.insecure]` and `[registries.block]`
//! lists. Not read: short-name settings (`unqualified-search-registries`,
//! `short-name-mode`, `[aliases]`): wren names images by Docker's rule, so
//! `busybox` is always `docker.io/library/busybox`; the keys are accepted
//! and ignored. `credential-helpers` (the top-level list; the last file
//! that sets it wins) is kept for [`crate::auth`]. The image keeps the
//! name the user gave, wherever its bytes came from.
//!
//! Pure parsing and matching; runs in `wren` (feature `pull`).

use std::path::{Path, PathBuf};

use oci_spec::distribution::Reference;
use serde::Deserialize;

/// The environment variable Podman and skopeo read for the file.
pub const ENV: &str = "CONTAINERS_REGISTRIES_CONF";
const MAIN: &str = "/etc/containers/registries.conf";
const DROP_INS: &str = "/etc/containers/registries.conf.d";

/// A registries.conf that could not be used, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum RegistriesError {
    #[error("read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// Where a pull may fetch from, for one image.
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    pub reference: Reference,
    /// Plain HTTP (and unverified TLS) to this source's registry.
    pub insecure: bool,
    pub mirror: bool,
}

impl Source {
    /// "mirror HOST/REPO:TAG" or "HOST/REPO:TAG".
    pub fn describe(&self) -> String {
        if self.mirror {
            format!("mirror {}", self.reference.whole())
        } else {
            self.reference.whole()
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum PullFrom {
    All,
    DigestOnly,
    TagOnly,
}

#[derive(Debug, Clone)]
struct Mirror {
    location: String,
    insecure: bool,
    pull_from: PullFrom,
}

/// One `[[registry]]` table, its defaults filled in.
#[derive(Debug, Clone)]
struct Table {
    prefix: String,
    /// Empty for a wildcard prefix: the image's own registry.
    location: String,
    insecure: bool,
    blocked: bool,
    mirror_by_digest_only: bool,
    mirrors: Vec<Mirror>,
    file: PathBuf,
}

/// The tables of every file read, in the order they apply.
#[derive(Debug, Clone, Default)]
pub struct Registries {
    tables: Vec<Table>,
    /// `credential-helpers`, and the file that set it.
    helpers: Option<(Vec<String>, PathBuf)>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
struct RawFile {
    #[serde(default)]
    registry: Vec<RawTable>,
    credential_helpers: Option<Vec<String>>,
    /// The old (v1) format: `[registries.insecure]`, `[registries.block]`.
    registries: Option<RawV1>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RawTable {
    prefix: Option<String>,
    location: Option<String>,
    #[serde(default)]
    insecure: bool,
    #[serde(default)]
    blocked: bool,
    #[serde(default)]
    mirror_by_digest_only: bool,
    #[serde(default)]
    mirror: Vec<RawMirror>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RawMirror {
    location: String,
    #[serde(default)]
    insecure: bool,
    pull_from_mirror: Option<String>,
}

#[derive(Deserialize, Default)]
struct RawV1 {
    insecure: Option<RawList>,
    block: Option<RawList>,
}

#[derive(Deserialize, Default)]
struct RawList {
    #[serde(default)]
    registries: Vec<String>,
}

/// `host[:port]` as a reference's registry part: what a v1 list entry and
/// the part of a prefix before its first `/` are.
fn host_of(s: &str) -> &str {
    s.split('/').next().unwrap_or(s)
}

impl Registries {
    /// The configuration this host's `wren pull` uses (see the module doc).
    pub fn load() -> Result<Self, RegistriesError> {
        match std::env::var_os(ENV) {
            Some(p) if !p.is_empty() => Self::load_files(&[PathBuf::from(p)]),
            _ => {
                let mut files = vec![PathBuf::from(MAIN)];
                files.extend(Self::drop_ins(Path::new(DROP_INS))?);
                Self::load_files(&files)
            }
        }
    }

    /// The `*.conf` files of `dir`, in name order; none if it is missing.
    fn drop_ins(dir: &Path) -> Result<Vec<PathBuf>, RegistriesError> {
        let rd = match std::fs::read_dir(dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(RegistriesError::Read {
                    path: dir.to_owned(),
                    source,
                })
            }
        };
        let mut v: Vec<PathBuf> = rd
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "conf"))
            .collect();
        v.sort();
        Ok(v)
    }

    /// `files` in order, each missing one skipped.
    pub fn load_files(files: &[PathBuf]) -> Result<Self, RegistriesError> {
        let mut out = Self::default();
        for path in files {
            let text = match std::fs::read_to_string(path) {
                Ok(t) => t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(source) => {
                    return Err(RegistriesError::Read {
                        path: path.clone(),
                        source,
                    })
                }
            };
            let (tables, helpers) = Self::parse(path, &text)?;
            if let Some(h) = helpers {
                out.helpers = Some((h, path.clone()));
            }
            for t in tables {
                match out.tables.iter_mut().find(|x| x.prefix == t.prefix) {
                    Some(x) => *x = t,
                    None => out.tables.push(t),
                }
            }
        }
        Ok(out)
    }

    /// The tables of one file's `text`.
    fn parse(
        path: &Path,
        text: &str,
    ) -> Result<(Vec<Table>, Option<Vec<String>>), RegistriesError> {
        let invalid = |message: String| RegistriesError::Invalid {
            path: path.to_owned(),
            message,
        };
        let raw: RawFile = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        let mut tables = Vec::new();
        if let Some(v1) = raw.registries {
            if !raw.registry.is_empty() {
                return Err(invalid(
                    "[registries.*] (the old format) and [[registry]] tables together".into(),
                ));
            }
            let lists = [(v1.insecure, true, false), (v1.block, false, true)];
            for (list, insecure, blocked) in lists {
                for host in list.map(|l| l.registries).unwrap_or_default() {
                    let host = host.trim_end_matches('/').to_string();
                    match tables.iter_mut().find(|t: &&mut Table| t.prefix == host) {
                        Some(t) => {
                            t.insecure |= insecure;
                            t.blocked |= blocked;
                        }
                        None => tables.push(Table {
                            prefix: host.clone(),
                            location: host,
                            insecure,
                            blocked,
                            mirror_by_digest_only: false,
                            mirrors: Vec::new(),
                            file: path.to_owned(),
                        }),
                    }
                }
            }
        }
        for (i, r) in raw.registry.into_iter().enumerate() {
            let n = i + 1;
            let location = r.location.unwrap_or_default();
            let prefix = r.prefix.unwrap_or_else(|| location.clone());
            if prefix.is_empty() {
                return Err(invalid(format!(
                    "[[registry]] #{n}: neither prefix nor location"
                )));
            }
            if let Some(domain) = prefix.strip_prefix("*.") {
                if domain.is_empty() || domain.contains(['/', '*', ':']) {
                    return Err(invalid(format!(
                        "[[registry]] #{n}: prefix {prefix:?}: a wildcard prefix is *.DOMAIN"
                    )));
                }
                if !location.is_empty() {
                    return Err(invalid(format!(
                        "[[registry]] #{n}: prefix {prefix:?}: a wildcard prefix takes no location"
                    )));
                }
            } else if prefix.contains('*') {
                return Err(invalid(format!(
                    "[[registry]] #{n}: prefix {prefix:?}: a wildcard is only allowed as *.DOMAIN"
                )));
            }
            let location = if location.is_empty() && !prefix.starts_with("*.") {
                prefix.clone()
            } else {
                location
            };
            let mut mirrors = Vec::new();
            for (j, m) in r.mirror.into_iter().enumerate() {
                let pull_from = match m.pull_from_mirror.as_deref() {
                    None | Some("") | Some("all") => PullFrom::All,
                    Some("digest-only") => PullFrom::DigestOnly,
                    Some("tag-only") => PullFrom::TagOnly,
                    Some(other) => {
                        return Err(invalid(format!(
                            "[[registry]] #{n}, mirror #{}: pull-from-mirror {other:?}: \
                             one of all, digest-only, tag-only",
                            j + 1
                        )))
                    }
                };
                if m.location.is_empty() {
                    return Err(invalid(format!(
                        "[[registry]] #{n}, mirror #{}: no location",
                        j + 1
                    )));
                }
                mirrors.push(Mirror {
                    location: m.location,
                    insecure: m.insecure,
                    pull_from,
                });
            }
            let t = Table {
                prefix,
                location,
                insecure: r.insecure,
                blocked: r.blocked,
                mirror_by_digest_only: r.mirror_by_digest_only,
                mirrors,
                file: path.to_owned(),
            };
            match tables.iter_mut().find(|x| x.prefix == t.prefix) {
                Some(_) => {
                    return Err(invalid(format!(
                        "[[registry]] #{n}: prefix {:?} is given twice",
                        t.prefix
                    )))
                }
                None => tables.push(t),
            }
        }
        Ok((tables, raw.credential_helpers))
    }

    /// How much of `r` (its full name) `prefix` matches, if it does: a
    /// whole registry, or a path prefix ending where a name component, a
    /// tag or a digest begins; `*.domain` matches the registry's host.
    fn matched(prefix: &str, r: &Reference) -> Option<usize> {
        let registry = r.registry();
        if let Some(domain) = prefix.strip_prefix("*.") {
            let host = match registry.rsplit_once(':') {
                Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
                _ => registry,
            };
            return host
                .strip_suffix(domain)
                .is_some_and(|sub| sub.ends_with('.') && sub.len() > 1)
                .then_some(registry.len());
        }
        if !prefix.contains('/') {
            return (registry == prefix).then_some(prefix.len());
        }
        if host_of(prefix) != registry {
            return None;
        }
        let whole = r.whole();
        let rest = whole.strip_prefix(prefix)?;
        (rest.is_empty() || rest.starts_with(['/', ':', '@'])).then_some(prefix.len())
    }

    /// `credential-helpers` when a file set it, and that file: the
    /// places credentials are looked up, in order (`containers-auth.json`
    /// for the auth files).
    pub fn credential_helpers(&self) -> Option<(&[String], &Path)> {
        self.helpers
            .as_ref()
            .map(|(h, p)| (h.as_slice(), p.as_path()))
    }

    /// Whether the table that applies to registry `host` (a prefix of it
    /// alone, or `*.domain`) calls it insecure: what `wren login` asks.
    pub fn insecure_host(&self, host: &str) -> bool {
        let Ok(r) = crate::reference::parse(&format!("{host}/x")) else {
            return false;
        };
        self.tables
            .iter()
            .filter(|t| !t.prefix.contains('/'))
            .filter_map(|t| Self::matched(&t.prefix, &r).map(|n| (n, t)))
            .max_by_key(|(n, _)| *n)
            .is_some_and(|(_, t)| t.insecure)
    }

    /// The places to fetch `r` from, in the order to try them: the
    /// matching table's mirrors (those its digest-or-tag settings allow),
    /// then its location; or `r` itself when no table matches. A blocked
    /// name is an error naming the file (the caller names the image).
    pub fn sources(&self, r: &Reference) -> Result<Vec<Source>, RegistriesError> {
        let best = self
            .tables
            .iter()
            .filter_map(|t| Self::matched(&t.prefix, r).map(|n| (n, t)))
            .max_by_key(|(n, _)| *n);
        let Some((n, t)) = best else {
            return Ok(vec![Source {
                reference: r.clone(),
                insecure: false,
                mirror: false,
            }]);
        };
        let whole = r.whole();
        if t.blocked {
            return Err(RegistriesError::Invalid {
                path: t.file.clone(),
                message: format!("pulls of {} are blocked", t.prefix),
            });
        }
        let rest = &whole[n..];
        let rewrite = |location: &str| -> Result<Reference, RegistriesError> {
            let name = format!("{location}{rest}");
            crate::reference::parse(&name).map_err(|e| RegistriesError::Invalid {
                path: t.file.clone(),
                message: format!("prefix {}: location {location:?}: {e}", t.prefix),
            })
        };
        let by_digest = r.digest().is_some();
        let mut out = Vec::new();
        for m in &t.mirrors {
            let allowed = match m.pull_from {
                PullFrom::All => !t.mirror_by_digest_only || by_digest,
                PullFrom::DigestOnly => by_digest,
                PullFrom::TagOnly => !by_digest,
            };
            if allowed {
                out.push(Source {
                    reference: rewrite(&m.location)?,
                    insecure: m.insecure,
                    mirror: true,
                });
            }
        }
        let primary = if t.location.is_empty() {
            r.clone()
        } else {
            rewrite(&t.location)?
        };
        out.push(Source {
            reference: primary,
            insecure: t.insecure,
            mirror: false,
        });
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(text: &str) -> Registries {
        let (tables, helpers) = Registries::parse(Path::new("/test.conf"), text).unwrap();
        Registries {
            tables,
            helpers: helpers.map(|h| (h, "/test.conf".into())),
        }
    }

    #[test]
    fn credential_helpers_are_kept() {
        let c = conf("credential-helpers = [\"containers-auth.json\", \"ecr-login\"]\n");
        let (h, file) = c.credential_helpers().unwrap();
        assert_eq!(h, ["containers-auth.json", "ecr-login"]);
        assert_eq!(file, Path::new("/test.conf"));
        assert!(conf("").credential_helpers().is_none());
    }

    fn names(reg: &Registries, image: &str) -> Vec<String> {
        let r = crate::reference::parse(image).unwrap();
        reg.sources(&r)
            .unwrap()
            .iter()
            .map(|s| {
                format!(
                    "{}{}",
                    s.describe(),
                    if s.insecure { " (http)" } else { "" }
                )
            })
            .collect()
    }

    #[test]
    fn insecure_hosts_for_login() {
        let c = conf(
            r#"
[[registry]]
prefix = "plain.local:5000"
insecure = true
[[registry]]
prefix = "*.lan"
insecure = true
[[registry]]
prefix = "plain.local:5000/team"
insecure = false
[[registry]]
prefix = "tls.local"
"#,
        );
        assert!(c.insecure_host("plain.local:5000"));
        assert!(c.insecure_host("box.lan"));
        assert!(!c.insecure_host("tls.local"));
        assert!(!c.insecure_host("elsewhere.io"));
    }

    #[test]
    fn mirrors_then_location_and_the_longest_prefix_wins() {
        let reg = conf(
            r#"
unqualified-search-registries = ["example.com"]
short-name-mode = "enforcing"
[aliases]
"centos" = "quay.io/centos/centos"

[[registry]]
prefix = "example.com/foo"
location = "internal.example.net/bar"
[[registry.mirror]]
location = "mirror-0.local/mirror-for-foo"
[[registry.mirror]]
location = "mirror-1.local:5000/mirrors/foo"
insecure = true

[[registry]]
prefix = "example.com"
location = "other.example.net"
insecure = true

[[registry]]
location = "docker.io"
[[registry.mirror]]
location = "10.0.0.1:5000"
insecure = true
"#,
        );
        assert_eq!(
            names(&reg, "example.com/foo/image:latest"),
            [
                "mirror mirror-0.local/mirror-for-foo/image:latest",
                "mirror mirror-1.local:5000/mirrors/foo/image:latest (http)",
                "internal.example.net/bar/image:latest",
            ]
        );
        // `foo` is a path component of its own: foobar is not under it.
        assert_eq!(
            names(&reg, "example.com/foobar:1"),
            ["other.example.net/foobar:1 (http)"]
        );
        // Docker Hub names are matched normalised (library/).
        assert_eq!(
            names(&reg, "busybox"),
            [
                "mirror 10.0.0.1:5000/library/busybox:latest (http)",
                "docker.io/library/busybox:latest"
            ]
        );
        // A registry prefix does not match the same host on another port.
        assert_eq!(
            names(&reg, "example.com:5000/x"),
            ["example.com:5000/x:latest"]
        );
        assert_eq!(names(&reg, "quay.io/a/b"), ["quay.io/a/b:latest"]);
    }

    #[test]
    fn digest_and_tag_only_mirrors() {
        let digest = format!("sha256:{}", "a".repeat(64));
        let reg = conf(
            r#"
[[registry]]
prefix = "r.example/ns"
mirror-by-digest-only = true
[[registry.mirror]]
location = "m1.local/ns"

[[registry]]
prefix = "q.example"
[[registry.mirror]]
location = "d.local"
pull-from-mirror = "digest-only"
[[registry.mirror]]
location = "t.local"
pull-from-mirror = "tag-only"
"#,
        );
        assert_eq!(names(&reg, "r.example/ns/app:1"), ["r.example/ns/app:1"]);
        assert_eq!(
            names(&reg, &format!("r.example/ns/app@{digest}")),
            [
                format!("mirror m1.local/ns/app@{digest}"),
                format!("r.example/ns/app@{digest}")
            ]
        );
        assert_eq!(
            names(&reg, "q.example/app:1"),
            ["mirror t.local/app:1", "q.example/app:1"]
        );
        assert_eq!(
            names(&reg, &format!("q.example/app@{digest}")),
            [
                format!("mirror d.local/app@{digest}"),
                format!("q.example/app@{digest}")
            ]
        );
    }

    #[test]
    fn wildcards_blocks_and_the_old_format() {
        let reg = conf(
            r#"
[[registry]]
prefix = "*.corp.example"
insecure = true
[[registry.mirror]]
location = "cache.local:5000"

[[registry]]
prefix = "bad.example/evil"
blocked = true
"#,
        );
        assert_eq!(
            names(&reg, "reg.corp.example:8443/team/app:2"),
            [
                "mirror cache.local:5000/team/app:2",
                "reg.corp.example:8443/team/app:2 (http)"
            ]
        );
        // Only subdomains: corp.example itself is not matched.
        assert_eq!(names(&reg, "corp.example/a"), ["corp.example/a:latest"]);
        let r = crate::reference::parse("bad.example/evil/x:1").unwrap();
        let e = reg.sources(&r).unwrap_err().to_string();
        assert!(e.contains("/test.conf") && e.contains("blocked"), "{e}");
        assert_eq!(names(&reg, "bad.example/good:1"), ["bad.example/good:1"]);

        let v1 = conf(
            r#"
[registries.search]
registries = ["docker.io"]
[registries.insecure]
registries = ["10.1.1.1:5000"]
[registries.block]
registries = ["blocked.example"]
"#,
        );
        assert_eq!(
            names(&v1, "10.1.1.1:5000/a:1"),
            ["10.1.1.1:5000/a:1 (http)"]
        );
        assert!(v1
            .sources(&crate::reference::parse("blocked.example/a").unwrap())
            .is_err());
    }

    #[test]
    fn bad_files_name_the_file_and_the_table() {
        let bad = |text: &str| {
            Registries::parse(Path::new("/etc/containers/registries.conf"), text)
                .unwrap_err()
                .to_string()
        };
        let e = bad("[[registry]]\nprefix = 3\n");
        assert!(e.starts_with("/etc/containers/registries.conf: "), "{e}");
        assert!(e.contains("line 2"), "{e}");
        assert!(bad("[[registry]]\ninsecure = true\n").contains("neither prefix nor location"));
        assert!(
            bad("[[registry]]\nprefix = \"*.x.example\"\nlocation = \"y\"\n")
                .contains("takes no location")
        );
        assert!(bad("[[registry]]\nprefix = \"a*.example\"\n").contains("only allowed as"));
        assert!(bad(
            "[[registry]]\nprefix = \"a.example\"\n[[registry.mirror]]\nlocation = \"m\"\npull-from-mirror = \"some\"\n"
        )
        .contains("mirror #1: pull-from-mirror \"some\""));
        assert!(
            bad("[[registry]]\nlocation = \"a\"\n[[registry]]\nprefix = \"a\"\n")
                .contains("given twice")
        );
        assert!(bad(
            "[registries.insecure]\nregistries = [\"a\"]\n[[registry]]\nlocation = \"b\"\n"
        )
        .contains("old format"));
        // A location that makes no valid name is refused when it is used.
        let reg = conf("[[registry]]\nprefix = \"a.example\"\nlocation = \"Bad Host\"\n");
        let r = crate::reference::parse("a.example/x").unwrap();
        let e = reg.sources(&r).unwrap_err().to_string();
        assert!(e.contains("location \"Bad Host\""), "{e}");
    }

    #[test]
    fn drop_ins_replace_a_prefix_and_missing_files_are_empty() {
        let dir = tempfile::tempdir().unwrap();
        let main = dir.path().join("registries.conf");
        let d = dir.path().join("registries.conf.d");
        std::fs::create_dir(&d).unwrap();
        std::fs::write(
            &main,
            "[[registry]]\nprefix = \"a.example\"\nlocation = \"one.local\"\n\
             [[registry]]\nlocation = \"b.example\"\ninsecure = true\n",
        )
        .unwrap();
        std::fs::write(
            d.join("50-a.conf"),
            "[[registry]]\nprefix = \"a.example\"\nlocation = \"two.local\"\n",
        )
        .unwrap();
        std::fs::write(d.join("README"), "not toml [").unwrap();
        let mut files = vec![main, dir.path().join("missing.conf")];
        files.extend(Registries::drop_ins(&d).unwrap());
        let reg = Registries::load_files(&files).unwrap();
        assert_eq!(names(&reg, "a.example/x:1"), ["two.local/x:1"]);
        assert_eq!(names(&reg, "b.example/x:1"), ["b.example/x:1 (http)"]);
        assert!(Registries::drop_ins(&dir.path().join("none"))
            .unwrap()
            .is_empty());
    }
}
