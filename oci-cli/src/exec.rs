//! `wren-oci exec`: a new process in a running container, from a whole
//! process.json (`--process`, what containerd and conmon pass) or from the
//! container's own process with the command and overrides given as flags.
//! Runs in the `wren-oci` process.

use std::process::ExitCode;

use oci_spec::runtime::{Capability, Process, Spec};
use wren_runtime::{ConsoleMode, ExecOptions, Stdio};

use crate::cli::{Exec, Global};
use crate::{absolute, forward, load, refuse, tty, Usage};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

pub fn exec(g: &Global, e: Exec) -> Result<ExitCode> {
    if e.pidfd_socket.is_some() {
        refuse("exec", "--pidfd-socket", "wren sends no pidfd")?;
    }
    let sub_cgroup = sub_cgroup(&e.cgroup)?;
    let mut c = load(g, &e.id)?;
    let mut process: Process = match &e.process {
        Some(p) => {
            // runc takes everything from the file; refuse what would be
            // dropped instead of dropping it. (--tty is what conmon passes
            // along with a file that already says so: the file decides.)
            if let Some(flag) = overrides(&e) {
                return Err(
                    Usage(format!("exec: {flag} cannot be combined with --process")).into(),
                );
            }
            let data = std::fs::read(p).map_err(|err| format!("read {}: {err}", p.display()))?;
            serde_json::from_slice(&data).map_err(|err| format!("parse {}: {err}", p.display()))?
        }
        None => {
            if e.command.is_empty() {
                return Err(Usage("exec: no command given".into()).into());
            }
            process_from_flags(c.spec(), &e)?
        }
    };
    let terminal = process.terminal().unwrap_or(false);
    if terminal && e.console_socket.is_none() && process.console_size().is_none() {
        // The pty is made with our terminal's size, so the process never
        // sees 0x0 (a resize after the exec would race with it).
        if let Some((rows, cols)) = tty::stdin_size() {
            let size = oci_spec::runtime::BoxBuilder::default()
                .height(rows)
                .width(cols)
                .build()?;
            process.set_console_size(Some(size));
        }
    }
    if terminal && e.detach && e.console_socket.is_none() {
        return Err(Usage("exec: a detached tty process needs --console-socket".into()).into());
    }
    let console = match &e.console_socket {
        Some(p) => ConsoleMode::Socket(p.clone()),
        None => ConsoleMode::Return,
    };
    let p = c.exec(ExecOptions {
        process,
        stdio: Stdio::default(),
        console,
        preserve_fds: e.preserve_fds,
        pid_file: e.pid_file.as_deref().map(absolute).transpose()?,
        ignore_paused: e.ignore_paused,
        sub_cgroup,
    })?;
    if e.detach {
        return Ok(ExitCode::SUCCESS);
    }
    let code = forward::wait_exec(&p)?;
    Ok(ExitCode::from(code as u8))
}

/// The sub-cgroup from runc's `--cgroup` values: `PATH` (or `:PATH`) for
/// every controller. The same path may be repeated; per-controller paths
/// (`CONTROLLERS:PATH`, cgroup v1 only in runc) are refused by name.
fn sub_cgroup(values: &[String]) -> Result<Option<String>> {
    let mut path: Option<&str> = None;
    for v in values {
        let p = match v.split_once(':') {
            Some(("", p)) => p,
            Some((ctrls, _)) => {
                return Err(Usage(format!(
                    "exec: --cgroup {v:?}: per-controller sub-cgroups ({ctrls}:PATH) are not \
                     supported; give one PATH for every controller"
                ))
                .into())
            }
            None => v.as_str(),
        };
        if p.is_empty() {
            return Err(Usage(format!("exec: --cgroup {v:?}: empty path")).into());
        }
        match path {
            Some(prev) if prev != p => {
                return Err(Usage(format!(
                    "exec: --cgroup given twice with different paths ({prev:?}, {p:?})"
                ))
                .into())
            }
            _ => path = Some(p),
        }
    }
    Ok(path.map(str::to_string))
}

/// The first flag that overrides part of the process, if any.
fn overrides(e: &Exec) -> Option<&'static str> {
    [
        (!e.command.is_empty(), "a command"),
        (e.cwd.is_some(), "--cwd"),
        (!e.env.is_empty(), "--env"),
        (e.user.is_some(), "--user"),
        (!e.additional_gids.is_empty(), "--additional-gids"),
        (e.process_label.is_some(), "--process-label"),
        (e.apparmor.is_some(), "--apparmor"),
        (e.no_new_privs.is_some(), "--no-new-privs"),
        (!e.cap.is_empty(), "--cap"),
    ]
    .into_iter()
    .find_map(|(set, flag)| set.then_some(flag))
}

/// The process for `exec ID COMMAND...`: the container's own process with
/// this command and the flags' overrides, as runc builds it.
fn process_from_flags(spec: &Spec, e: &Exec) -> Result<Process> {
    let mut p = spec.process().clone().unwrap_or_default();
    p.set_args(Some(e.command.clone()));
    p.set_terminal(Some(e.tty));
    p.set_console_size(None);
    if let Some(cwd) = &e.cwd {
        p.set_cwd(cwd.into());
    }
    let mut env = p.env().clone().unwrap_or_default();
    env.extend(e.env.iter().cloned());
    p.set_env(Some(env));
    let mut user = p.user().clone();
    if let Some(u) = &e.user {
        let (uid, gid) = match u.split_once(':') {
            Some((a, b)) => (a, Some(b)),
            None => (u.as_str(), None),
        };
        let num = |s: &str| -> Result<u32> {
            s.parse::<u32>().map_err(|_| {
                Usage(format!(
                    "--user {u:?}: uid and gid must be numbers from 0 to 4294967295"
                ))
                .into()
            })
        };
        user.set_uid(num(uid)?);
        if let Some(g) = gid {
            user.set_gid(num(g)?);
        }
    }
    if !e.additional_gids.is_empty() {
        let mut gids = user.additional_gids().clone().unwrap_or_default();
        gids.extend(&e.additional_gids);
        user.set_additional_gids(Some(gids));
    }
    p.set_user(user);
    if let Some(label) = &e.process_label {
        p.set_selinux_label(Some(label.clone()));
    }
    if let Some(profile) = &e.apparmor {
        p.set_apparmor_profile(Some(profile.clone()));
    }
    if !e.cap.is_empty() {
        let mut c = p.capabilities().clone().unwrap_or_default();
        for name in &e.cap {
            let cap: Capability =
                serde_json::from_value(serde_json::Value::String(name.clone()))
                    .map_err(|_| Usage(format!("--cap: unknown capability {name:?}")))?;
            let add = |set: &Option<_>| {
                let mut s: oci_spec::runtime::Capabilities = set.clone().unwrap_or_default();
                s.insert(cap);
                Some(s)
            };
            c.set_bounding(add(c.bounding()));
            c.set_effective(add(c.effective()));
            c.set_permitted(add(c.permitted()));
            c.set_ambient(add(c.ambient()));
        }
        p.set_capabilities(Some(c));
    }
    if let Some(nnp) = e.no_new_privs {
        p.set_no_new_privileges(Some(nnp));
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{self, Command};

    fn exec_of(args: &[&str]) -> Exec {
        let argv = ["wren-oci", "exec"].into_iter().chain(args.iter().copied());
        match cli::parse(argv).unwrap().command {
            Some(Command::Exec(e)) => *e,
            other => panic!("{other:?}"),
        }
    }

    fn spec() -> Spec {
        wren_runtime::spec::example(&["sh".into()], false)
    }

    #[test]
    fn users_must_be_numeric_and_in_range() {
        let p = process_from_flags(&spec(), &exec_of(&["-u", "4294967295:7", "c", "id"])).unwrap();
        assert_eq!(p.user().uid(), u32::MAX);
        assert_eq!(p.user().gid(), 7);
        for bad in ["4294967296", "root", "1:x"] {
            assert!(process_from_flags(&spec(), &exec_of(&["--user", bad, "c", "id"])).is_err());
        }
    }

    #[test]
    fn flags_override_the_containers_process() {
        let e = exec_of(&[
            "--cwd=/tmp",
            "-e",
            "A=1",
            "-g",
            "10",
            "--additional-gids=11",
            "--cap",
            "CAP_SYS_ADMIN",
            "--apparmor",
            "prof",
            "--process-label",
            "lbl",
            "--no-new-privs=false",
            "-t",
            "c",
            "sh",
            "-c",
            "x",
        ]);
        let p = process_from_flags(&spec(), &e).unwrap();
        assert_eq!(p.args().as_deref().unwrap(), ["sh", "-c", "x"]);
        assert_eq!(p.cwd().to_str(), Some("/tmp"));
        assert!(p.env().as_ref().unwrap().contains(&"A=1".to_string()));
        assert_eq!(p.user().additional_gids().as_deref(), Some(&[10, 11][..]));
        let caps = p.capabilities().as_ref().unwrap();
        for set in [
            caps.bounding(),
            caps.effective(),
            caps.permitted(),
            caps.ambient(),
        ] {
            assert!(set.as_ref().unwrap().contains(&Capability::SysAdmin));
        }
        assert_eq!(p.apparmor_profile().as_deref(), Some("prof"));
        assert_eq!(p.selinux_label().as_deref(), Some("lbl"));
        assert_eq!(p.no_new_privileges(), Some(false));
        assert_eq!(p.terminal(), Some(true));
        assert!(process_from_flags(&spec(), &exec_of(&["--cap", "CAP_NOPE", "c", "x"])).is_err());
    }

    #[test]
    fn overrides_with_a_process_file_are_named() {
        assert_eq!(overrides(&exec_of(&["-p", "f", "-t", "-d", "c"])), None);
        assert_eq!(
            overrides(&exec_of(&["-p", "f", "c", "sh"])),
            Some("a command")
        );
        assert_eq!(
            overrides(&exec_of(&["-p", "f", "--cwd", "/", "c"])),
            Some("--cwd")
        );
        assert_eq!(
            overrides(&exec_of(&["-p", "f", "c", "-e", "A=1"])),
            Some("--env")
        );
    }
}
