//! Registry credentials where Docker and Podman keep them, so that a
//! `docker login` or `podman login` on the box serves `wren pull` too.
//!
//! - **Files.** `--authfile` or `$REGISTRY_AUTH_FILE` alone when given;
//!   else Docker's (`$DOCKER_CONFIG/config.json`, `~/.docker/config.json`,
//!   the one `wren login` writes), then Podman's
//!   (`$XDG_RUNTIME_DIR/containers/auth.json`, or
//!   `/run/containers/UID/auth.json`; then
//!   `$XDG_CONFIG_HOME/containers/auth.json`, or
//!   `~/.config/containers/auth.json`). The first file that knows the
//!   registry decides.
//! - **Entries.** `auths` → key → `auth`, base64 of `user:password`. A key
//!   may carry a scheme and `/v1/` (Docker's old Hub key) or, Podman's
//!   way, a namespace (`registry/team`): the longest one that is a prefix
//!   of the image's repository wins. An `identitytoken` (an OAuth2 refresh
//!   token, as `az acr login` writes) is exchanged for an access token at
//!   the registry's token realm for each pull ([`crate::endpoint`]).
//! - **registries.conf's `credential-helpers`**, when set (and no
//!   `--authfile` given), is the order instead, as in Podman:
//!   `containers-auth.json` stands for the files above, any other NAME for
//!   `docker-credential-NAME`.
//! - **Helpers.** `credHelpers` (registry → NAME) and `credsStore` (NAME
//!   for every other registry) name `docker-credential-NAME` on `PATH`,
//!   spoken to as Docker does: `get` (the server URL on stdin, JSON with
//!   `Username` and `Secret` back; `<token>` as the user makes the secret
//!   an identity token), `store` (that JSON on stdin), `erase`. A helper
//!   that does not know the registry means no credentials.
//!
//! Runs in the `wren` process only (feature `pull`).

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine;

use crate::pull::PullError;

/// The file `wren login` writes (and the first one a pull reads):
/// `--authfile`, `$REGISTRY_AUTH_FILE`, `$DOCKER_CONFIG/config.json`, or
/// `~/.docker/config.json`.
pub fn default_file(given: Option<&Path>) -> PathBuf {
    if let Some(p) = given {
        return p.to_owned();
    }
    if let Some(p) = std::env::var_os("REGISTRY_AUTH_FILE") {
        return p.into();
    }
    if let Some(d) = std::env::var_os("DOCKER_CONFIG") {
        return Path::new(&d).join("config.json");
    }
    home().join(".docker/config.json")
}

fn home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/root".into())
}

/// The files a pull reads, in order (see the module doc).
pub fn read_files(given: Option<&Path>) -> Vec<PathBuf> {
    if given.is_some() || std::env::var_os("REGISTRY_AUTH_FILE").is_some() {
        return vec![default_file(given)];
    }
    let mut v = vec![default_file(None)];
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(d) => v.push(Path::new(&d).join("containers/auth.json")),
        None => v.push(format!("/run/containers/{}/auth.json", nix::unistd::getuid()).into()),
    }
    match std::env::var_os("XDG_CONFIG_HOME") {
        Some(d) => v.push(Path::new(&d).join("containers/auth.json")),
        None => v.push(home().join(".config/containers/auth.json")),
    }
    v
}

/// A key of `auths` or `credHelpers` (or a registry as a user typed it
/// for `wren login`) as the registry (and, Podman's way, the namespace) it
/// names: no scheme, no `/v1/` or `/v2/`, Docker Hub's hosts as
/// `docker.io`.
pub fn normalize(key: &str) -> String {
    let k = key
        .trim()
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/');
    let (host, path) = k.split_once('/').unwrap_or((k, ""));
    let host = match host {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => "docker.io",
        h => h,
    };
    match path {
        "" | "v1" | "v2" => host.to_string(),
        p => format!("{host}/{p}"),
    }
}

/// The URL a helper knows `registry` by (Docker Hub's is its old index).
fn server_url(registry: &str) -> String {
    if registry == "docker.io" {
        "https://index.docker.io/v1/".into()
    } else {
        registry.to_string()
    }
}

fn read(path: &Path) -> Result<serde_json::Value, PullError> {
    match std::fs::read(path) {
        Ok(b) if b.iter().all(u8::is_ascii_whitespace) => Ok(serde_json::json!({})),
        Ok(b) => serde_json::from_slice(&b).map_err(|e| bad_file(path, e.to_string())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(serde_json::json!({})),
        Err(source) => Err(PullError::Auth {
            path: path.to_owned(),
            source,
        }),
    }
}

fn bad_file(path: &Path, what: String) -> PullError {
    PullError::Auth {
        path: path.to_owned(),
        source: io::Error::new(io::ErrorKind::InvalidData, what),
    }
}

/// A file's `credHelpers` entry for `registry`.
fn named_helper<'a>(v: &'a serde_json::Value, registry: &str) -> Option<&'a str> {
    v["credHelpers"]
        .as_object()?
        .iter()
        .find(|(k, _)| normalize(k) == registry)
        .and_then(|(_, h)| h.as_str())
        .filter(|h| !h.is_empty())
}

/// The helper a file names for `registry`: its `credHelpers` entry, else
/// its `credsStore`.
fn helper_for(v: &serde_json::Value, registry: &str) -> Option<String> {
    named_helper(v, registry)
        .or_else(|| v["credsStore"].as_str())
        .filter(|h| !h.is_empty())
        .map(str::to_string)
}

/// What a file or a helper holds for a registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// A user and password (or access token as the password).
    Basic(String, String),
    /// An OAuth2 refresh token (`identitytoken`; a helper's `<token>`
    /// user), exchanged at the registry's token realm before a pull.
    IdentityToken(String),
}

/// The credentials for `repository` on `registry`, from the first file
/// that has any (see the module doc); `None`: anonymous. When
/// registries.conf lists `credential-helpers` (`conf`: the list and its
/// file) and no `--authfile` was given, those are asked in their order
/// instead, `containers-auth.json` standing for the files, as Podman does.
pub fn for_image(
    given: Option<&Path>,
    conf: Option<(&[String], &Path)>,
    registry: &str,
    repository: &str,
) -> Result<Option<Credential>, PullError> {
    let files = |given| -> Result<Option<Credential>, PullError> {
        for path in read_files(given) {
            let v = read(&path)?;
            if let Some(auth) = lookup(&path, &v, registry, repository)? {
                return Ok(Some(auth));
            }
        }
        Ok(None)
    };
    let Some((helpers, conf_file)) = conf.filter(|_| given.is_none()) else {
        return files(given);
    };
    for h in helpers {
        let found = match h.as_str() {
            "containers-auth.json" => files(None)?,
            name => helper_get(name, conf_file, registry)?,
        };
        if found.is_some() {
            return Ok(found);
        }
    }
    Ok(None)
}

/// What one file says of `registry`/`repository`.
fn lookup(
    path: &Path,
    v: &serde_json::Value,
    registry: &str,
    repository: &str,
) -> Result<Option<Credential>, PullError> {
    if let Some(name) = named_helper(v, registry) {
        return helper_get(name, path, registry);
    }
    if let Some(auths) = v["auths"].as_object() {
        // The longest key that names this registry, or it and a prefix of
        // the repository (whole path segments).
        let whole = format!("{registry}/{repository}");
        let best = auths
            .iter()
            .map(|(k, e)| (k, normalize(k), e))
            .filter(|(_, n, _)| {
                *n == registry
                    || (whole.starts_with(n.as_str()) && whole[n.len()..].starts_with('/'))
                    || *n == whole
            })
            .max_by_key(|(_, n, _)| n.len());
        if let Some((k, _, e)) = best {
            if let Some(a) = e["auth"].as_str().filter(|a| !a.is_empty()) {
                return decode(path, k, a).map(Some);
            }
            if let Some(t) = e["identitytoken"].as_str().filter(|t| !t.is_empty()) {
                return Ok(Some(Credential::IdentityToken(t.to_string())));
            }
        }
    }
    match v["credsStore"].as_str().filter(|h| !h.is_empty()) {
        Some(name) => helper_get(name, path, registry),
        None => Ok(None),
    }
}

/// `auth`: base64 of `user:password`.
fn decode(path: &Path, key: &str, a: &str) -> Result<Credential, PullError> {
    let bad = |what: &str| bad_file(path, format!("auths.{key}.auth: {what}"));
    let raw = base64::engine::general_purpose::STANDARD
        .decode(a.trim())
        .map_err(|_| bad("not base64"))?;
    let s = String::from_utf8(raw).map_err(|_| bad("not UTF-8"))?;
    let (u, p) = s.split_once(':').ok_or_else(|| bad("not user:password"))?;
    Ok(Credential::Basic(u.to_string(), p.to_string()))
}

/// How a helper run ended: its stdout, or the message it failed with.
type HelperOutcome = Result<Vec<u8>, String>;

/// Runs `docker-credential-NAME ACTION` with `input` on stdin.
/// Helper `name`'s failure, with the file that named it.
fn helper_error(name: &str, file: &Path, what: String) -> PullError {
    PullError::Helper {
        helper: format!("docker-credential-{name}"),
        file: file.to_owned(),
        what,
    }
}

fn helper(name: &str, file: &Path, action: &str, input: &[u8]) -> Result<HelperOutcome, PullError> {
    let program = format!("docker-credential-{name}");
    let err = |what: String| helper_error(name, file, what);
    if name.contains('/') || name.starts_with('.') {
        return Err(err("a helper is named, not given as a path".into()));
    }
    let mut child = Command::new(&program)
        .arg(action)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => err(format!("{program} is not on PATH")),
            _ => err(format!("run {program}: {e}")),
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        // A helper that exits without reading gives EPIPE: its exit says why.
        let _ = stdin.write_all(input);
    }
    let out = child
        .wait_with_output()
        .map_err(|e| err(format!("wait for {program}: {e}")))?;
    if out.status.success() {
        return Ok(Ok(out.stdout));
    }
    let mut msg = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    if !stderr.is_empty() {
        if !msg.is_empty() {
            msg.push_str("; ");
        }
        msg.push_str(&stderr);
    }
    if msg.is_empty() {
        msg = format!("{action} failed ({})", out.status);
    }
    Ok(Err(msg))
}

/// A helper's `get`; `None` when it does not know the registry.
fn helper_get(name: &str, file: &Path, registry: &str) -> Result<Option<Credential>, PullError> {
    let err = |what: String| helper_error(name, file, what);
    let out = match helper(name, file, "get", server_url(registry).as_bytes())? {
        Ok(out) => out,
        Err(msg) if msg.to_ascii_lowercase().contains("credentials not found") => return Ok(None),
        Err(msg) => return Err(err(format!("get {registry}: {msg}"))),
    };
    let v: serde_json::Value = serde_json::from_slice(&out)
        .map_err(|e| err(format!("get {registry}: its answer is not JSON: {e}")))?;
    let (Some(user), Some(secret)) = (v["Username"].as_str(), v["Secret"].as_str()) else {
        return Err(err(format!(
            "get {registry}: its answer lacks Username or Secret"
        )));
    };
    if user.is_empty() && secret.is_empty() {
        return Ok(None);
    }
    if user == "<token>" {
        return Ok(Some(Credential::IdentityToken(secret.to_string())));
    }
    Ok(Some(Credential::Basic(
        user.to_string(),
        secret.to_string(),
    )))
}

/// Where `wren login` put the credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    /// In this file's `auths`.
    File(PathBuf),
    /// With this helper (`docker-credential-NAME`), which the file names.
    Helper(String, PathBuf),
}

impl std::fmt::Display for Stored {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stored::File(p) => write!(f, "{}", p.display()),
            Stored::Helper(h, p) => write!(f, "docker-credential-{h} (named in {})", p.display()),
        }
    }
}

/// Writes `v` to `path` atomically, mode 0600.
fn write(path: &Path, v: &serde_json::Value) -> Result<(), PullError> {
    use std::os::unix::fs::PermissionsExt;
    let err = |source| PullError::Auth {
        path: path.to_owned(),
        source,
    };
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).map_err(err)?;
    }
    let bytes = serde_json::to_vec_pretty(v).unwrap_or_default();
    crate::store::write_atomic(path, &bytes).map_err(err)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(err)
}

/// Stores `user:password` for `registry`: with the helper the file names
/// for it (the file then keeps an empty entry, as Docker's does), else in
/// the file's `auths`, under the key Docker reads (Docker Hub's old index
/// URL for `docker.io`). The file is written atomically, mode 0600.
pub fn store(
    given: Option<&Path>,
    registry: &str,
    user: &str,
    password: &str,
) -> Result<Stored, PullError> {
    let path = default_file(given);
    let mut v = read(&path)?;
    if !v.is_object() {
        return Err(bad_file(&path, "not a JSON object".into()));
    }
    if !v["auths"].is_object() {
        v["auths"] = serde_json::json!({});
    }
    // Older entries for the same registry under another key go.
    if let Some(auths) = v["auths"].as_object_mut() {
        auths.retain(|k, _| normalize(k) != registry);
    }
    let stored = match helper_for(&v, registry) {
        Some(name) => {
            let input = serde_json::json!({
                "ServerURL": server_url(registry),
                "Username": user,
                "Secret": password,
            });
            let input = serde_json::to_vec(&input).unwrap_or_default();
            if let Err(msg) = helper(&name, &path, "store", &input)? {
                return Err(helper_error(
                    &name,
                    &path,
                    format!("store {registry}: {msg}"),
                ));
            }
            v["auths"][server_url(registry)] = serde_json::json!({});
            Stored::Helper(name, path.clone())
        }
        None => {
            let token =
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            v["auths"][server_url(registry)] = serde_json::json!({ "auth": token });
            Stored::File(path.clone())
        }
    };
    write(&path, &v)?;
    Ok(stored)
}

/// Removes what is stored for `registry`, in the file and with its
/// helper; whether anything was.
pub fn remove(given: Option<&Path>, registry: &str) -> Result<bool, PullError> {
    let path = default_file(given);
    let mut v = read(&path)?;
    let mut removed = false;
    if let Some(name) = helper_for(&v, registry) {
        match helper(&name, &path, "erase", server_url(registry).as_bytes())? {
            Ok(_) => removed = true,
            Err(msg) if msg.to_ascii_lowercase().contains("not found") => {}
            Err(msg) => {
                return Err(helper_error(
                    &name,
                    &path,
                    format!("erase {registry}: {msg}"),
                ))
            }
        }
    }
    if let Some(auths) = v["auths"].as_object_mut() {
        let before = auths.len();
        auths.retain(|k, _| normalize(k) != registry);
        if auths.len() != before {
            removed = true;
            write(&path, &v)?;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_name_registries_and_namespaces() {
        assert_eq!(normalize("https://index.docker.io/v1/"), "docker.io");
        assert_eq!(normalize("registry-1.docker.io"), "docker.io");
        assert_eq!(normalize("http://127.0.0.1:5000/v2/"), "127.0.0.1:5000");
        assert_eq!(normalize("quay.io/team"), "quay.io/team");
        assert_eq!(normalize("quay.io/team/"), "quay.io/team");
    }

    fn basic(u: &str, p: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
    }

    #[test]
    fn the_longest_matching_key_wins() {
        let v = serde_json::json!({ "auths": {
            "quay.io": { "auth": basic("all", "a") },
            "quay.io/team": { "auth": basic("team", "t") },
            "quay.io/teamx": { "auth": basic("wrong", "w") },
            "https://index.docker.io/v1/": { "auth": basic("hub", "h") },
        }});
        let f = Path::new("/f");
        let get = |reg: &str, repo: &str| lookup(f, &v, reg, repo).unwrap();
        assert_eq!(
            get("quay.io", "team/app"),
            Some(Credential::Basic("team".into(), "t".into()))
        );
        assert_eq!(
            get("quay.io", "other/app"),
            Some(Credential::Basic("all".into(), "a".into()))
        );
        assert_eq!(
            get("quay.io", "teamxy/app"),
            Some(Credential::Basic("all".into(), "a".into()))
        );
        assert_eq!(
            get("docker.io", "library/busybox"),
            Some(Credential::Basic("hub".into(), "h".into()))
        );
        assert_eq!(get("ghcr.io", "x/y"), None);
    }

    #[test]
    fn bad_entries_name_their_key_and_tokens_are_kept() {
        let f = Path::new("/f");
        let v = serde_json::json!({ "auths": { "r.io": { "auth": "%%%" } } });
        let e = crate::pull::chain(&lookup(f, &v, "r.io", "a").unwrap_err());
        assert!(
            e.contains("auths.r.io.auth: not base64") && e.contains("/f"),
            "{e}"
        );
        let v = serde_json::json!({ "auths": { "r.io": { "identitytoken": "t" } } });
        assert_eq!(
            lookup(f, &v, "r.io", "a").unwrap(),
            Some(Credential::IdentityToken("t".into()))
        );
    }

    #[test]
    fn a_missing_helper_is_named() {
        let f = Path::new("/f");
        let v = serde_json::json!({ "credHelpers": { "r.io": "wren-absent-helper" } });
        let e = crate::pull::chain(&lookup(f, &v, "r.io", "a").unwrap_err());
        assert!(
            e.contains("docker-credential-wren-absent-helper is not on PATH") && e.contains("/f"),
            "{e}"
        );
        // Another registry is not the helper's.
        assert_eq!(lookup(f, &v, "s.io", "a").unwrap(), None);
        let v = serde_json::json!({ "credsStore": "../x" });
        assert!(lookup(f, &v, "r.io", "a").is_err());
    }
}
