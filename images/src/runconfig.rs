//! What a container made from an image runs: the image config's
//! Entrypoint, Cmd, Env, WorkingDir, User and StopSignal, with the user's
//! overrides applied as Docker applies them, and a user name resolved
//! through the image's own /etc/passwd and /etc/group (read from the layer
//! snapshots, top layer first, whiteouts honoured).
//!
//! Runs in the `wren` process (`run`, `create`).

use std::path::{Path, PathBuf};

use crate::store::Image;

/// Why an image cannot be run as asked.
#[derive(Debug, thiserror::Error)]
pub enum RunConfigError {
    #[error("image {image}: no command: it has no Entrypoint or Cmd, and none was given")]
    NoCommand { image: String },
    #[error("image {image}: user {user:?} is not in its /etc/passwd")]
    NoUser { image: String, user: String },
    #[error("image {image}: group {group:?} is not in its /etc/group")]
    NoGroup { image: String, group: String },
}

/// The user's overrides.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--entrypoint`: replaces the image's (an empty string clears it);
    /// the image's Cmd is then dropped too, as Docker does.
    pub entrypoint: Option<String>,
    /// The command after the image name: replaces Cmd.
    pub cmd: Vec<String>,
    /// `-e`, `--env-file`: added after the image's, replacing same keys.
    pub env: Vec<String>,
    /// `-w`.
    pub cwd: Option<String>,
    /// `-u`: `user`, `uid`, `user:group`, `uid:gid`.
    pub user: Option<String>,
    /// `--group-add`: more supplementary groups, names (from the image's
    /// /etc/group) or numbers.
    pub group_add: Vec<String>,
}

/// The resolved process of the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunConfig {
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    /// The image's StopSignal, if it names one.
    pub stop_signal: Option<String>,
}

const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Merges `extra` into `env`: a `KEY=...` replaces the earlier `KEY`.
pub fn merge_env(env: &mut Vec<String>, extra: &[String]) {
    for e in extra {
        let key = e.split('=').next().unwrap_or(e);
        env.retain(|x| x.split('=').next() != Some(key));
        env.push(e.clone());
    }
}

/// The container's process for `image` (whose snapshots are `layers`,
/// lowest first) with `o` applied.
pub fn resolve(
    image: &Image,
    layers: &[PathBuf],
    o: &Overrides,
) -> Result<RunConfig, RunConfigError> {
    let cfg = image.config.config().clone().unwrap_or_default();
    let mut args: Vec<String> = match &o.entrypoint {
        Some(e) if e.is_empty() => Vec::new(),
        Some(e) => vec![e.clone()],
        None => cfg.entrypoint().clone().unwrap_or_default(),
    };
    if !o.cmd.is_empty() {
        args.extend(o.cmd.iter().cloned());
    } else if o.entrypoint.is_none() {
        args.extend(cfg.cmd().clone().unwrap_or_default());
    }
    if args.is_empty() {
        return Err(RunConfigError::NoCommand {
            image: image.name.clone(),
        });
    }
    let mut env = cfg.env().clone().unwrap_or_default();
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.insert(0, DEFAULT_PATH.to_string());
    }
    merge_env(&mut env, &o.env);
    let cwd = o
        .cwd
        .clone()
        .or_else(|| cfg.working_dir().clone())
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| "/".to_string());
    let user = o
        .user
        .clone()
        .or_else(|| cfg.user().clone())
        .unwrap_or_default();
    let (uid, gid, mut additional_gids) = resolve_user(&image.name, layers, &user)?;
    if !o.group_add.is_empty() {
        let groups = read_file(layers, "etc/group").unwrap_or_default();
        for g in &o.group_add {
            let n = match g.parse::<u32>() {
                Ok(n) => n,
                Err(_) => groups
                    .lines()
                    .map(|l| l.split(':').collect::<Vec<_>>())
                    .find(|f| f.len() >= 3 && f[0] == g)
                    .and_then(|f| f[2].parse().ok())
                    .ok_or_else(|| RunConfigError::NoGroup {
                        image: image.name.clone(),
                        group: g.clone(),
                    })?,
            };
            if n != gid && !additional_gids.contains(&n) {
                additional_gids.push(n);
            }
        }
    }
    Ok(RunConfig {
        args,
        env,
        cwd,
        uid,
        gid,
        additional_gids,
        stop_signal: cfg.stop_signal().clone(),
    })
}

/// `user[:group]` to uid, gid and the supplementary groups, from the
/// image's /etc/passwd and /etc/group.
fn resolve_user(
    image: &str,
    layers: &[PathBuf],
    spec: &str,
) -> Result<(u32, u32, Vec<u32>), RunConfigError> {
    if spec.is_empty() {
        return Ok((0, 0, Vec::new()));
    }
    let passwd = read_file(layers, "etc/passwd").unwrap_or_default();
    let groups = read_file(layers, "etc/group").unwrap_or_default();
    user_ids(&passwd, &groups, spec).map_err(|m| match m {
        MissingId::User(user) => RunConfigError::NoUser {
            image: image.to_string(),
            user,
        },
        MissingId::Group(group) => RunConfigError::NoGroup {
            image: image.to_string(),
            group,
        },
    })
}

/// The name [`user_ids`] found in neither file.
#[derive(Debug, PartialEq, Eq)]
pub enum MissingId {
    User(String),
    Group(String),
}

/// `user[:group]` (names or numbers) to uid, gid and the supplementary
/// groups `groups` lists the user in, given the contents of an /etc/passwd
/// and /etc/group. Numbers need no entry; an unknown name is an error.
/// Shared by image containers (the image's files) and `wren exec -u` (the
/// running container's).
pub fn user_ids(passwd: &str, groups: &str, spec: &str) -> Result<(u32, u32, Vec<u32>), MissingId> {
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    // name:x:uid:gid:...
    let pw = passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() >= 4 && (f[0] == user || (user.parse::<u32>().is_ok() && f[2] == user)));
    let (uid, mut gid, name) = match (pw, user.parse::<u32>()) {
        (Some(f), _) => (
            f[2].parse().unwrap_or(0),
            f[3].parse().unwrap_or(0),
            Some(f[0].to_string()),
        ),
        (None, Ok(n)) => (n, 0, None),
        (None, Err(_)) => return Err(MissingId::User(user.to_string())),
    };
    // name:x:gid:member,member
    let group_lines: Vec<Vec<&str>> = groups
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .filter(|f| f.len() >= 4)
        .collect();
    if let Some(g) = group {
        gid = match (g.parse::<u32>(), group_lines.iter().find(|f| f[0] == g)) {
            (Ok(n), _) => n,
            (Err(_), Some(f)) => f[2].parse().unwrap_or(0),
            (Err(_), None) => return Err(MissingId::Group(g.to_string())),
        };
    }
    let mut extra = Vec::new();
    if let (Some(name), None) = (&name, group) {
        for f in &group_lines {
            if f[3].split(',').any(|m| m == name) {
                if let Ok(g) = f[2].parse::<u32>() {
                    if g != gid && !extra.contains(&g) {
                        extra.push(g);
                    }
                }
            }
        }
    }
    Ok((uid, gid, extra))
}

/// Reads `rel` as the merged image shows it: from the topmost layer that
/// has it, unless a layer above whites it (or a directory on its path) out.
pub fn read_file(layers: &[PathBuf], rel: &str) -> Option<String> {
    use std::os::unix::fs::FileTypeExt;
    let rel = Path::new(rel);
    for layer in layers.iter().rev() {
        let p = layer.join(rel);
        match p.symlink_metadata() {
            Ok(m) if m.file_type().is_char_device() => return None, // whiteout
            Ok(m) if m.is_file() => return std::fs::read_to_string(&p).ok(),
            Ok(_) => return None,
            Err(_) => {}
        }
        // An opaque or whited-out parent hides everything below it.
        let mut dir = layer.clone();
        for c in rel.parent().into_iter().flat_map(|p| p.components()) {
            dir.push(c);
            if let Ok(m) = dir.symlink_metadata() {
                if m.file_type().is_char_device() || is_opaque(&dir) {
                    return None;
                }
            }
        }
    }
    None
}

pub(crate) fn is_opaque(dir: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return false;
    };
    let mut buf = [0u8; 4];
    // SAFETY: `c` and the attribute name are NUL-terminated; `buf` is a live
    // buffer of the length passed, which the kernel writes at most.
    let n = unsafe {
        libc::lgetxattr(
            c.as_ptr(),
            c"trusted.overlay.opaque".as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    n == 1 && buf[0] == b'y'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_merge_replaces_keys() {
        let mut env = vec!["PATH=/bin".to_string(), "A=1".to_string()];
        merge_env(&mut env, &["A=2".into(), "B=3".into()]);
        assert_eq!(env, ["PATH=/bin", "A=2", "B=3"]);
    }

    #[test]
    fn users_from_the_image() {
        let tmp = tempfile::tempdir().unwrap();
        let l = tmp.path().join("l");
        std::fs::create_dir_all(l.join("etc")).unwrap();
        std::fs::write(
            l.join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            l.join("etc/group"),
            "root:x:0:\napp:x:1001:\nwheel:x:10:app\n",
        )
        .unwrap();
        let layers = [l];
        assert_eq!(
            resolve_user("i", &layers, "app").unwrap(),
            (1000, 1001, vec![10])
        );
        assert_eq!(
            resolve_user("i", &layers, "app:wheel").unwrap(),
            (1000, 10, vec![])
        );
        assert_eq!(
            resolve_user("i", &layers, "4242").unwrap(),
            (4242, 0, vec![])
        );
        assert_eq!(
            resolve_user("i", &layers, "1000:7").unwrap(),
            (1000, 7, vec![])
        );
        assert!(resolve_user("i", &layers, "nobody").is_err());
        assert!(resolve_user("i", &layers, "app:nogroup").is_err());
    }
}
